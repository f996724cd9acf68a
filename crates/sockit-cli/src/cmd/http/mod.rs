//! `sockit http`: an HTTP/1.x request over a plain or TLS socket, with the exact bytes and
//! phase timings. Its flags are curl's letters with curl's meanings (DESIGN.md), `-w`
//! included; curl's options it lacks are refused by name (`curl`); `--repeat` adds
//! percentiles per phase.
//!
//! The parts: `plan` (flags to a checked request), `data` (the body flags), `transfer`
//! (one request and its redirects, the figures), `output` (where bodies and heads go), `writeout` (curl's `-w`),
//! `repeat` (`--repeat`), `verbose` (`-v`), `curl` and `curl_flags` (curl's other flags).

mod curl;
mod curl_flags;
mod data;
mod output;
mod plan;
mod repeat;
mod transfer;
mod verbose;
mod writeout;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sockit::Error;

pub use self::curl::tidy_parse_error;
use self::output::Outputs;
use self::plan::Plan;
use self::transfer::{Ctx, FailedAt, Record, TlsSetup, retry_after, transfer, transient};
use self::writeout::Target;

/// Arguments of `sockit http` (boxed: the options are many, and the subcommand enum stays
/// small).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The options.
    #[command(flatten)]
    pub opts: Box<Opts>,
}

/// The options of `sockit http`: curl's letters. As in curl, a flag given twice takes
/// its last value (`-m 5 -m 6` is `-m 6`; `-4 -6` is `-6`).
#[derive(Debug, clap::Args)]
#[command(
    args_override_self = true,
    after_long_help = "Where sockit differs from curl: --json is sockit's JSON output (not \
    curl 7.82's --json DATA: use -d DATA -H 'Content-Type: application/json'); repeated runs \
    are --repeat (curl's -n is --netrc); -w's %{exitcode} is sockit's exit code and \
    %{ssl_verify_result} is 0 (verified) or 1; --max-redirs -1 stops at a repeated URL and \
    after 1000 redirects. As in curl, a flag given twice takes its last value, and -s hides \
    the transfer's failures, not a bad command line. curl's options sockit lacks are \
    refused by name; -N, -g, --tlsv1.2 and a few more that sockit already satisfies are \
    accepted.\n\n\
    Examples:\n  sockit http http://127.0.0.1:8000/\n  \
    sockit http -i -L https://example.com/\n  \
    sockit http -s -o /dev/null -w '%{http_code} %{time_total}\\n' http://127.0.0.1:8000/\n  \
    sockit http -d @body.json -H 'Content-Type: application/json' http://[::1]:8080/api\n  \
    sockit http --repeat 100 --reuse --rate 20/s http://127.0.0.1:8000/\n  \
    sockit http --raw-request get.txt --show-request http://127.0.0.1:8000/\n  \
    sockit http --json https://localhost:8443/ --cacert ca.pem"
)]
pub struct Opts {
    /// http://HOST[:PORT]/PATH or https://…; a URL without scheme is http://. IPv6 in
    /// brackets. One URL per command (more are refused with a message).
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,

    /// The URL, as a flag (curl's --url).
    #[arg(long = "url", value_name = "URL", action = clap::ArgAction::Append)]
    pub url_flag: Vec<String>,

    /// Send the URL's path as it is: no removal of its . and .. segments (curl's).
    #[arg(help_heading = "Data", long = "path-as-is")]
    pub path_as_is: bool,

    /// Request method (default GET, POST with a data flag, PUT with -T, HEAD with -I).
    #[arg(
        help_heading = "Data",
        short = 'X',
        long = "request",
        value_name = "METHOD"
    )]
    pub method: Option<String>,

    /// Extra header 'Name: value' (repeatable); 'Name:' removes a default header, 'Name;'
    /// sends it empty, @FILE reads one header per line.
    #[arg(
        help_heading = "Data",
        short = 'H',
        long = "header",
        value_name = "HEADER",
        allow_hyphen_values = true
    )]
    pub headers: Vec<String>,

    /// The request body flags (-d, --data-binary, --data-raw, --data-urlencode, --data-file).
    #[command(flatten)]
    pub data: data::DataArgs,

    /// Send the data flags' body as the URL's query, with GET (or HEAD with -I).
    #[arg(help_heading = "Data", short = 'G', long = "get")]
    pub get: bool,

    /// Upload FILE (- is stdin) with PUT; a URL ending in / gets the file's name.
    #[arg(
        help_heading = "Data",
        short = 'T',
        long = "upload-file",
        value_name = "FILE"
    )]
    pub upload_file: Option<PathBuf>,

    /// Print the response head (status line and headers) before the body.
    #[arg(help_heading = "Output", short = 'i', long = "include")]
    pub include: bool,

    /// Send HEAD and print the response head only.
    #[arg(help_heading = "Data", short = 'I', long = "head")]
    pub head: bool,

    /// Follow redirects (301, 302, 303, 307, 308).
    #[arg(help_heading = "Data", short = 'L', long = "location")]
    pub location: bool,

    /// Most redirects followed with -L; -1: no count limit (a repeated URL, or 1000
    /// redirects, still stop it: exit 7).
    #[arg(
        help_heading = "Data",
        long = "max-redirs",
        value_name = "N",
        default_value_t = 50,
        allow_negative_numbers = true
    )]
    pub max_redirs: i64,

    /// Write the body (and the head with -i) to FILE instead of stdout (- is stdout).
    #[arg(
        help_heading = "Output",
        short = 'o',
        long = "output",
        value_name = "FILE",
        overrides_with = "remote_name"
    )]
    pub output: Option<PathBuf>,

    /// Write the body to a file named as the URL's last path segment.
    #[arg(
        help_heading = "Output",
        short = 'O',
        long = "remote-name",
        overrides_with = "output"
    )]
    pub remote_name: bool,

    /// Write the response heads to FILE (- is stdout).
    #[arg(
        help_heading = "Output",
        short = 'D',
        long = "dump-header",
        value_name = "FILE"
    )]
    pub dump_header: Option<PathBuf>,

    /// Silent: no warnings, no progress, no message about the transfer's failure (the
    /// exit code stays). A bad command line is still reported.
    #[arg(help_heading = "Output", short = 's', long = "silent")]
    pub silent: bool,

    /// With -s, still print the transfer's error message.
    #[arg(help_heading = "Output", short = 'S', long = "show-error")]
    pub show_error: bool,

    /// Show connection events, both directions of the exchange and timings on stderr.
    #[arg(help_heading = "Output", short = 'v', long = "verbose")]
    pub verbose: bool,

    /// curl's write-out: print FORMAT after the transfer (%{http_code}, %{time_total},
    /// %{json}, %header{name}, %{stderr}, \n …; @FILE reads it from a file).
    #[arg(
        help_heading = "Output",
        short = 'w',
        long = "write-out",
        value_name = "FORMAT",
        allow_hyphen_values = true
    )]
    pub write_out: Option<String>,

    /// Limit for the name lookup and connect in seconds (all addresses); 0: none.
    #[arg(help_heading = "Connection", long = "connect-timeout", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs_or_zero)]
    pub connect_timeout: Option<Duration>,

    /// Limit for each whole transfer in seconds; 0: none (as curl).
    #[arg(help_heading = "Limits", short = 'm', long = "max-time", value_name = "SECS", allow_negative_numbers = true, value_parser = parse_secs_or_zero)]
    pub max_time: Option<Duration>,

    /// Send an HTTP/1.0 request.
    #[arg(
        help_heading = "Data",
        short = '0',
        long = "http1.0",
        overrides_with = "http11"
    )]
    pub http10: bool,

    /// Send an HTTP/1.1 request (the default).
    #[arg(help_heading = "Data", long = "http1.1", overrides_with = "http10")]
    pub http11: bool,

    /// Send FILE's bytes exactly as the request (`-` for stdin) and print the answer's bytes.
    #[arg(help_heading = "Data",
        long = "raw-request",
        value_name = "FILE",
        conflicts_with_all = ["method", "headers", "data", "data-ascii", "data-binary", "data-raw", "data-urlencode", "data-file", "head", "http10", "location", "include", "upload_file", "get"]
    )]
    pub raw_request: Option<PathBuf>,

    /// Print the exact request bytes before the answer (on stdout; stderr with --json).
    #[arg(help_heading = "Output", long = "show-request")]
    pub show_request: bool,

    /// Trust the certificates in this PEM file instead of the system's roots; a server
    /// certificate that is itself in the file is trusted as it is.
    #[arg(help_heading = "TLS", long = "cacert", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Present this client certificate chain (PEM) when the server asks for one (mutual
    /// TLS; curl's -E/--cert, without curl's `:password`); needs --key.
    #[arg(
        help_heading = "TLS",
        short = 'E',
        long = "cert",
        value_name = "FILE",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,

    /// With --cert: the client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        help_heading = "TLS",
        long = "key",
        value_name = "FILE",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,

    /// Do not verify the server's certificate (curl's -k). Dangerous.
    #[arg(help_heading = "TLS", short = 'k', long = "insecure")]
    pub insecure: bool,

    /// Exit 7 without printing the body when the status is 4xx or 5xx.
    #[arg(help_heading = "Output", short = 'f', long = "fail")]
    pub fail: bool,

    /// sockit's JSON output (not curl's --json DATA): one object (status, headers, sizes,
    /// timings in µs) on stdout; the body goes only to -o FILE.
    #[arg(help_heading = "Output", long = "json", conflicts_with = "write_out")]
    pub json: bool,

    /// IPv4 addresses only (the --resolve addresses too).
    #[arg(
        help_heading = "Connection",
        short = '4',
        long = "ipv4",
        overrides_with = "ipv6"
    )]
    pub ipv4: bool,

    /// IPv6 addresses only (the --resolve addresses too).
    #[arg(
        help_heading = "Connection",
        short = '6',
        long = "ipv6",
        overrides_with = "ipv4"
    )]
    pub ipv6: bool,

    /// User-Agent to send ("" sends none).
    #[arg(
        help_heading = "Data",
        short = 'A',
        long = "user-agent",
        value_name = "NAME"
    )]
    pub user_agent: Option<String>,

    /// Referer to send; URL;auto also sets it on redirects.
    #[arg(
        help_heading = "Data",
        short = 'e',
        long = "referer",
        value_name = "URL"
    )]
    pub referer: Option<String>,

    /// Basic authentication: USER:PASSWORD.
    #[arg(
        help_heading = "Data",
        short = 'u',
        long = "user",
        value_name = "USER:PASSWORD"
    )]
    pub user: Option<String>,

    /// Cookie to send: 'NAME=VALUE[; NAME=VALUE]' (repeatable; no cookie files).
    #[arg(
        help_heading = "Data",
        short = 'b',
        long = "cookie",
        value_name = "NAME=VALUE"
    )]
    pub cookie: Vec<String>,

    /// Ask for a compressed body (Accept-Encoding: deflate, gzip) and decode it.
    #[arg(help_heading = "Data", long = "compressed")]
    pub compressed: bool,

    /// Connect to ADDRESS for HOST:PORT, with no lookup (repeatable; IPv6 in brackets;
    /// HOST * is any host, as in curl).
    #[arg(
        help_heading = "Connection",
        long = "resolve",
        value_name = "HOST:PORT:ADDRESS",
        allow_hyphen_values = true
    )]
    pub resolve: Vec<String>,

    /// Connect to HOST2:PORT2 for HOST1:PORT1 (empty parts: any, or the same).
    #[arg(
        help_heading = "Connection",
        long = "connect-to",
        value_name = "HOST1:PORT1:HOST2:PORT2"
    )]
    pub connect_to: Vec<String>,

    /// Connect to this Unix stream socket instead of the URL's host.
    #[arg(help_heading = "Connection", long = "unix-socket", value_name = "PATH")]
    pub unix_socket: Option<PathBuf>,

    /// Use this proxy: [SCHEME://][USER:PASS@]HOST[:PORT] (default port 1080). Schemes as
    /// curl's: http (CONNECT for https://, the absolute URL for http://), socks4 and socks5
    /// (names resolved here), socks4a and socks5h (names resolved by the proxy).
    #[arg(
        help_heading = "Connection",
        short = 'x',
        long = "proxy",
        value_name = "URL",
        conflicts_with = "unix_socket"
    )]
    pub proxy: Option<String>,

    /// USER:PASSWORD for the proxy (instead of the URL's).
    #[arg(
        help_heading = "Connection",
        short = 'U',
        long = "proxy-user",
        value_name = "USER:PASSWORD",
        requires = "proxy"
    )]
    pub proxy_user: Option<String>,

    /// Tunnel through an HTTP proxy with CONNECT for http:// URLs too.
    #[arg(
        help_heading = "Connection",
        short = 'p',
        long = "proxytunnel",
        requires = "proxy"
    )]
    pub proxytunnel: bool,

    /// Retry a transient failure N times (curl's rules: timeouts, failed lookups, HTTP
    /// 408/429/500/502/503/504), waiting 1 s, 2 s, 4 s … or Retry-After.
    #[arg(help_heading = "Limits",
        long = "retry",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true,
        value_parser = parse_retry
    )]
    pub retry: u32,

    /// Wait this long between retries instead of doubling from 1 s.
    #[arg(help_heading = "Limits", long = "retry-delay", value_name = "SECS", value_parser = parse_secs_or_zero)]
    pub retry_delay: Option<Duration>,

    /// No retry starts later than this after the first attempt began.
    #[arg(help_heading = "Limits", long = "retry-max-time", value_name = "SECS", value_parser = parse_secs_or_zero)]
    pub retry_max_time: Option<Duration>,

    /// With --retry, also retry a refused connection.
    #[arg(help_heading = "Limits", long = "retry-connrefused")]
    pub retry_connrefused: bool,

    /// With --retry, retry every error.
    #[arg(help_heading = "Limits", long = "retry-all-errors")]
    pub retry_all_errors: bool,

    /// Run the request N times and print p50/p90/p99/max of each phase (curl's -n is
    /// --netrc: sockit's repeats are --repeat).
    #[arg(help_heading = "Limits",
        long = "repeat",
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = parse_repeat
    )]
    pub repeat: Option<u64>,

    /// With --repeat: one keep-alive connection for every run (warm), not one per run.
    #[arg(help_heading = "Limits", long = "reuse", requires = "repeat")]
    pub reuse: bool,

    /// With --repeat: start at most N runs per second, minute, hour or day (N/s, N/m,
    /// N/h, N/d; curl's syntax).
    #[arg(
        help_heading = "Limits",
        long = "rate",
        value_name = "N/UNIT",
        requires = "repeat",
        allow_hyphen_values = true
    )]
    pub rate: Option<String>,

    /// Draw the phases as an SVG waterfall in FILE (one exchange: a bar per phase; with
    /// --repeat: the spread of each phase, box p25-p75, whiskers min-max, mark p50).
    #[arg(help_heading = "Output", long = "plot", value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,

    /// Add up saved `--repeat --json` results (from several machines, or one after
    /// another) and print them as one: the table, or one object with --json (as bench
    /// --merge does for bench's results).
    #[arg(help_heading = "Output", long = "merge", value_name = "FILE", num_args = 1..)]
    pub merge: Vec<PathBuf>,

    /// curl's options sockit does not have (refused by name).
    #[command(flatten)]
    pub curl_only: curl::CurlOnly,
}

/// A whole number in `min..=max`; the message gives the range (for `-1` too, where clap's
/// own parser says "invalid digit").
fn count_in(text: &str, min: u64, max: u64) -> Result<u64, String> {
    text.trim()
        .parse::<i128>()
        .ok()
        .filter(|n| (i128::from(min)..=i128::from(max)).contains(n))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("must be a whole number from {min} to {max}"))
}

/// `--repeat N`: 1 to 10,000,000 runs.
fn parse_repeat(text: &str) -> Result<u64, String> {
    count_in(text, 1, 10_000_000)
}

/// `--retry N`: 0 to 1,000,000 retries.
fn parse_retry(text: &str) -> Result<u32, String> {
    count_in(text, 0, 1_000_000).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// Seconds as a number in [0, 1e9].
fn parse_secs_or_zero(text: &str) -> Result<Duration, String> {
    crate::args::parse_secs_in(text, true, 1e9)
}

impl Opts {
    /// `-m`: `None` without it or with `-m 0` (no limit, as in curl).
    pub fn max_time(&self) -> Option<Duration> {
        self.max_time.filter(|d| !d.is_zero())
    }

    /// `--connect-timeout`: `None` without it or with 0 (no limit of sockit's own; curl's
    /// 0 is its default).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout.filter(|d| !d.is_zero())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_secs_or_zero("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_secs_or_zero("0"), Ok(Duration::ZERO));
        for bad in ["-1", "nan", "inf", "x", ""] {
            assert!(parse_secs_or_zero(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_say_their_range() {
        // Regression: --repeat -1 and --retry -1 got clap's "a value is required" or
        // "invalid digit found in string".
        assert_eq!(parse_repeat("3"), Ok(3));
        assert_eq!(parse_retry("0"), Ok(0));
        for bad in ["-1", "0", "10000001", "x", "1.5"] {
            assert_eq!(
                parse_repeat(bad),
                Err("must be a whole number from 1 to 10000000".to_string()),
                "{bad}"
            );
        }
        assert!(parse_retry("-1").unwrap_err().contains("from 0 to 1000000"));
    }
}
