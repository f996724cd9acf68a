//! `sockit http`: an HTTP/1.x request over a plain or TLS socket, with the exact bytes and
//! phase timings. Its flags are curl's letters with curl's meanings (DESIGN.md), `-w`
//! included; curl's options it lacks are refused by name (`curl`); `--repeat` adds
//! percentiles per phase.
//!
//! The parts: `opts` (the flags), `plan` (flags to a checked request; `urls` and
//! `connect_to` its URLs and `--resolve`/`--connect-to` entries), `data` (the body flags),
//! `transfer` (one request and its redirects; `record` its figures, `retry` `--retry`'s
//! rules), `output` (where bodies and heads go), `writeout` (curl's `-w`), `repeat`
//! (`--repeat`), `verbose` (`-v`), `curl` and `curl_flags` (curl's other flags).

mod connect_to;
mod curl;
mod curl_flags;
mod data;
mod opts;
mod output;
mod plan;
mod record;
mod repeat;
mod retry;
mod transfer;
mod urls;
mod verbose;
mod writeout;

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use sockit::Error;

pub use self::curl::tidy_parse_error;
pub use self::opts::Opts;
use self::output::Outputs;
use self::plan::Plan;
use self::record::Record;
use self::retry::{retry_after, transient};
use self::transfer::{Ctx, FailedAt, TlsSetup, transfer};
use self::writeout::Target;

/// Arguments of `sockit http` (boxed: the options are many, and the subcommand enum stays
/// small).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The options.
    #[command(flatten)]
    pub opts: Box<Opts>,
}

/// `-s` without `-S`: no messages.
fn silent(args: &Opts) -> bool {
    args.silent && !args.show_error
}

/// Runs `sockit http`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let args = *args.opts;
    if !args.merge.is_empty() {
        if let Some(url) = args.urls.iter().chain(&args.url_flag).next() {
            return Err(Error::invalid_input(
                "http",
                format!("--merge adds up saved results: it takes no URL (got {url})"),
            )
            .into());
        }
        return repeat::merge(&args.merge, args.json);
    }
    // The command line is checked before anything is sent, and what is wrong with it is
    // reported even with -s: -s hides the transfer's failures, not a refused flag, a
    // missing file or a bad value (curl prints its option errors whatever -s says).
    let plan = prepare(&args)?;
    // --plot is checked (created) before anything is sent, as bench's
    if let Some(p) = &args.plot {
        crate::plot::check_target(p)?;
    }
    let result = execute(&args, &plan);
    if result.is_err()
        && let Some(p) = &args.plot
        && std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() == 0)
    {
        let _ = std::fs::remove_file(p);
    }
    match result {
        Err(e) if silent(&args) && !crate::exit::is_broken_pipe(&e) => {
            Ok(ExitCode::from(crate::exit::code_for(&e)))
        }
        other => other,
    }
}

/// The checked command line: the plan, or the error that refuses it.
fn prepare(args: &Opts) -> anyhow::Result<Plan> {
    if let Some(refusal) = args.curl_only.refusal() {
        return Err(Error::invalid_input("http", refusal).into());
    }
    let urls: Vec<&String> = args.urls.iter().chain(&args.url_flag).collect();
    let Some(first) = urls.first() else {
        return Err(
            Error::invalid_input("http", "no URL given: sockit http URL (or --url URL)").into(),
        );
    };
    if let Some(second) = urls.get(1) {
        let hint = if args.json && (second.starts_with('{') || first.starts_with('{')) {
            " (--json is sockit's JSON output, not curl's --json DATA: send JSON with -d \
             DATA -H 'Content-Type: application/json')"
        } else {
            ""
        };
        return Err(Error::invalid_input(
            "http",
            format!(
                "one URL per command, got {} ({first}, {second}…){hint}",
                urls.len()
            ),
        )
        .into());
    }
    Plan::new(args, first).map_err(|e| json_failure(args, first, e))
}

/// The transfer (or the `--repeat` runs) of a checked command line.
fn execute(args: &Opts, plan: &Plan) -> anyhow::Result<ExitCode> {
    let output = crate::args::OutputArgs {
        verbose: 0,
        json: args.json,
    };
    let reporter = crate::report::Reporter::new(&output, crate::report::JsonTo::Stdout);
    if args.insecure {
        warn(
            &reporter,
            args,
            "--insecure: the server's certificate is not verified; anyone on the path can \
             read and change this exchange"
                .into(),
        );
    }
    let mut ctx = Ctx {
        args,
        plan,
        tls: TlsSetup::default(),
        outs: Outputs::new(plan, args.json || args.repeat.is_some()),
        reporter,
    };
    let code = match args.repeat {
        Some(n) => repeat::run(&mut ctx, n),
        None => single(&mut ctx),
    };
    // repeated warnings held back by the reporter's rate limit
    ctx.reporter.flush();
    code
}

/// The longest wait between two attempts (curl's `RETRY_SLEEP_MAX`, 10 minutes).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(600);

/// One transfer, retried as `--retry` says; then `-w` and `--json`.
fn single(ctx: &mut Ctx<'_>) -> anyhow::Result<ExitCode> {
    let (args, plan) = (ctx.args, ctx.plan);
    let first_start = std::time::Instant::now();
    let mut retries_left = args.retry;
    let mut sleep = Duration::from_secs(1);
    let (mut rec, result) = loop {
        let mut rec = Record::new(plan);
        let result = transfer(ctx, &mut None, &mut rec);
        rec.finish(&result);
        let why = if retries_left > 0 {
            transient(args, &result, rec.values.http_code)
        } else {
            None
        };
        let Some(why) = why else {
            break (rec, result);
        };
        let mut wait = args.retry_delay.unwrap_or(sleep);
        if why == "HTTP error"
            && let Some(after) = retry_after(&rec.values)
        {
            wait = after;
        }
        // every wait is bounded: at most 10 minutes (curl's longest backoff), and at most
        // -m (a server's Retry-After cannot hold the command longer than one transfer may
        // take); --retry-max-time below refuses a wait that would pass it
        wait = wait.min(MAX_RETRY_WAIT);
        if let Some(m) = args.max_time() {
            wait = wait.min(m);
        }
        if let Some(max) = args.retry_max_time
            && first_start.elapsed() + wait > max
        {
            break (rec, result);
        }
        {
            let message = format!(
                "problem: {why}{}. Will retry in {} second{}. {retries_left} retr{} left.",
                match &result {
                    Err(e) => format!(" ({})", crate::exit::python_text(e)),
                    Ok(()) => format!(" ({})", rec.values.http_code),
                },
                wait.as_secs_f64(),
                if wait == Duration::from_secs(1) {
                    ""
                } else {
                    "s"
                },
                if retries_left == 1 { "y" } else { "ies" }
            );
            warn(&ctx.reporter, args, message);
        }
        std::thread::sleep(wait);
        retries_left -= 1;
        sleep = (sleep * 2).min(Duration::from_secs(600));
        ctx.outs.reset();
    };
    // a file the transfer failed to write keeps its error (and is not flushed again)
    let result = match result {
        Ok(()) => ctx.outs.flush(),
        Err(e) => Err(e),
    };
    if result.is_err() && rec.values.exitcode == 0 {
        rec.finish(&result);
    }
    write_out(&ctx.reporter, plan, &rec, result.is_err());
    if let (Some(path), Some(t)) = (&args.plot, rec.last_timings)
        && result.is_ok()
    {
        crate::plot::waterfall(
            path,
            &format!("{} {}", plan.method, plan.url),
            &waterfall_rows(&t),
        )
        .map_err(|e| e.context("--plot"))?;
    }
    match result {
        Ok(()) => {
            if args.json {
                let mut stdout = io::stdout().lock();
                writeln!(stdout, "{}", rec.json())?;
                stdout.flush()?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(json_failure(args, &plan.url_text, e)),
    }
}

/// The rows of one exchange's waterfall: each phase from the end of the one before it
/// (phases a reused or plain connection skips are left out).
fn waterfall_rows(t: &sockit::http::Timings) -> Vec<crate::plot::PhaseRow> {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let phases = [
        ("name lookup", t.dns),
        ("connect", t.connect),
        ("TLS", t.tls),
        ("request sent", t.request_sent),
        ("first byte", t.first_byte),
        ("body", t.total),
    ];
    let mut rows = Vec::new();
    let mut at = 0.0;
    for (label, end) in phases {
        let Some(end) = end.map(ms) else { continue };
        rows.push(crate::plot::PhaseRow {
            label: format!("{label} {:.3} ms", end - at),
            bar: (at, end),
            whiskers: None,
            median: None,
        });
        at = end;
    }
    rows
}

/// With `--json`, an error that ends the command is also a JSON object on stdout:
/// `{"event":"error","url":…,"kind","op","code","message"}` — the URL that failed (a
/// redirect's, with -L) and, for a timeout, the limit that expired in the message.
fn json_failure(args: &Opts, url: &str, err: anyhow::Error) -> anyhow::Error {
    if args.json && !crate::exit::is_broken_pipe(&err) {
        let at = err.downcast_ref::<FailedAt>();
        let mut obj = crate::output::error_event(&err);
        if let Some(limit) = at.and_then(|a| a.limit.as_ref())
            && let Some(m) = obj["message"].as_str().map(str::to_owned)
        {
            obj["message"] = format!("{limit} expired: {m}").into();
        }
        obj["url"] = at.map_or_else(|| url.to_string(), |a| a.url.clone()).into();
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{obj}");
        let _ = out.flush();
    }
    err
}

/// A warning of the command, through its one reporter: `sockit: warning: …` on stderr
/// (curl's `-s` silences it), or with `--json` a `warning` event on stdout.
fn warn(reporter: &crate::report::Reporter, args: &Opts, message: String) {
    if args.json || !silent(args) {
        reporter.event(&sockit::serve::Event::Warning { message });
    }
}

/// Prints `-w`'s text for a finished transfer (warnings for unknown variables on stderr,
/// through the reporter).
fn write_out(reporter: &crate::report::Reporter, plan: &Plan, rec: &Record, failed: bool) {
    let Some(format) = &plan.write_out else {
        return;
    };
    let (pieces, warnings) = writeout::render(format, &rec.values, failed);
    for message in warnings {
        reporter.event(&sockit::serve::Event::Warning { message });
    }
    for (target, bytes) in pieces {
        match target {
            Target::Stdout => {
                let mut out = io::stdout().lock();
                let _ = out.write_all(&bytes);
                let _ = out.flush();
            }
            Target::Stderr => {
                let mut err = io::stderr().lock();
                let _ = err.write_all(&bytes);
                let _ = err.flush();
            }
        }
    }
}
