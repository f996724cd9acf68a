//! `sockit bench`: round trips per second, latency percentiles and throughput against an
//! echo-style server, and `--merge` of saved `--json` results. The figures, their JSON
//! and text forms and the merge are the library's ([`sockit::bench::Report`]).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sockit::bench::{self, Config, Merge, Mode, Report, RunError, Target};
use sockit::{Error, Family};

/// Arguments of `sockit bench`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  sockit bench 127.0.0.1 7000 -c 50 --duration 5\n  sockit bench -u 127.0.0.1:7000 --rate 1000 --duration 2\n  sockit bench --unix /tmp/echo.sock --mode stream --size 16384\n  sockit bench 127.0.0.1 7000 --json > a.json; sockit bench --merge a.json b.json"
)]
pub struct Args {
    /// Server: HOST PORT, HOST:PORT or [V6]:PORT (a bare PORT means 127.0.0.1).
    #[arg(value_name = "ADDR", num_args = 0..=2)]
    pub addr: Vec<String>,
    /// Benchmark a Unix stream socket at PATH instead (`@name`: a Linux abstract name;
    /// with -u a Unix datagram socket, answered at the client's autobind name).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["addr"])]
    pub unix: Option<String>,
    /// Datagram ping-pong over UDP (with --unix: Unix datagrams); lost and truncated
    /// replies are counted.
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// Concurrent connections (UDP: sockets).
    #[arg(
        short = 'c',
        long = "connections",
        value_name = "N",
        default_value_t = 1
    )]
    pub connections: usize,
    /// Load threads (default: the CPUs this process may use).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Message size (ping-pong) or write size (stream), bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub size: usize,
    /// Measured seconds after the warm-up, more than 0 and at most 3600 (default 10;
    /// with --count alone: up to 3600).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Measured requests in total (stream: chunks), split evenly over the connections.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Seconds of load before measuring starts, 0 to 3600.
    #[arg(long, value_name = "SECS", default_value = "0", allow_negative_numbers = true,
          value_parser = parse_warmup)]
    pub warmup: Duration,
    /// Open loop: requests per second over all connections; latency is measured from
    /// each request's intended send time (more than 0, at most 10000000).
    #[arg(long, value_name = "PER_SEC", allow_negative_numbers = true, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// pingpong: send, read the echo whole, verify; stream: write continuously while
    /// reading the echo back (MB/s).
    #[arg(long, value_enum, default_value = "pingpong")]
    pub mode: ModeArg,
    /// Per-request reply timeout in seconds (UDP: a datagram is lost after it;
    /// default 0.2 for UDP, 5 otherwise; at least 0.001, at most 1e9).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_request_timeout)]
    pub timeout: Option<Duration>,
    /// Connect timeout for all connections together, seconds (more than 0, at most 1e9).
    #[arg(short = 'w', value_name = "SECS", default_value = "10", allow_negative_numbers = true,
          value_parser = parse_timeout)]
    pub connect_timeout: Duration,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Numeric host only: no name lookup.
    #[arg(short = 'n')]
    pub numeric: bool,
    /// Do not compare echoed bytes with those sent.
    #[arg(long)]
    pub no_verify: bool,
    /// One JSON object on stdout (units in field names, histogram in HdrHistogram's
    /// compressed base64 form).
    #[arg(long)]
    pub json: bool,
    /// Print the settings before the run and the connect phase's outcome on stderr.
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Merge saved --json results and print the combined figures (no load is sent; only
    /// --json applies).
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = [
        "addr", "unix", "udp", "connections", "threads", "size", "duration", "count", "warmup",
        "rate", "mode", "timeout", "connect_timeout", "ipv4", "ipv6", "numeric", "no_verify",
        "verbose",
    ])]
    pub merge: Vec<PathBuf>,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    /// Send a message, read its echo, verify, repeat.
    Pingpong,
    /// Write continuously while reading the echo back.
    Stream,
}

/// Runs `sockit bench`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = match measure(&args) {
        Ok(r) => r,
        Err(err) => {
            if args.json && !crate::exit::is_broken_pipe(&err) {
                print_failed(&args, &err);
            }
            return Err(err);
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{report}")?;
    }
    out.flush()?;
    Ok(exit_code(&report))
}

/// A run (or merge) that failed as a whole, under `--json`: the vocabulary's error
/// event, with the target (or the merged files) it was about.
#[derive(serde::Serialize)]
struct Failed<'a> {
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merge: Option<&'a [PathBuf]>,
    #[serde(flatten)]
    error: RunError,
}

fn print_failed(args: &Args, err: &anyhow::Error) {
    let merging = !args.merge.is_empty();
    let error = match crate::exit::sockit_error(err) {
        // `reason`: the word errors_by_kind counts it under (`check`, `reset`, …)
        Some(e) if merging => RunError::new(e.kind().as_str(), e),
        Some(e) => RunError::new(bench::error_kind_name(e), e),
        None => RunError::new(
            "os",
            &Error::new(sockit::ErrorKind::Os, "bench", None, format!("{err:#}")),
        ),
    };
    let failed = Failed {
        event: "error",
        target: (!merging).then(|| target_text(args)),
        merge: merging.then_some(args.merge.as_slice()),
        error,
    };
    if let Ok(line) = serde_json::to_string(&failed) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// 7 for wrong or lost data, or no reply at all; else the first error's kind; else 0.
fn exit_code(r: &Report) -> ExitCode {
    if let Some(n) = r.unanswered() {
        let s = if n == 1 { "" } else { "s" };
        if r.requests == 0 {
            crate::exit::stderr_line(format_args!(
                "sockit: bench: no reply in the measured window: {n} request{s} sent, 0 answered"
            ));
        } else {
            crate::exit::stderr_line(format_args!(
                "sockit: bench: a run got no reply in the measured window: {n} request{s} sent to it, 0 answered"
            ));
        }
        return ExitCode::from(7);
    }
    if r.data_errors() {
        crate::exit::stderr_line(format_args!(
            "sockit: bench: data came back wrong: {} mismatched, {} lost, {} truncated, {} bytes lost, {} extra bytes",
            r.mismatches, r.lost, r.truncated, r.lost_bytes, r.extra_bytes
        ));
        return ExitCode::from(7);
    }
    if r.errors > 0 {
        return ExitCode::from(
            r.first_error
                .as_ref()
                .map_or(1, |e| crate::exit::code_for_kind(e.kind)),
        );
    }
    ExitCode::SUCCESS
}

/// The target as the success JSON writes it (`HOST:PORT`, `[V6]:PORT`, the Unix
/// address), from the words given: the error JSON may come before any resolution.
fn target_text(args: &Args) -> String {
    if let Some(u) = &args.unix {
        return u.clone();
    }
    match sockit::addr::parse_host_port(&args.addr) {
        Ok(hp) => {
            let host = hp.host.as_deref().unwrap_or("127.0.0.1");
            if host.contains(':') {
                format!("[{host}]:{}", hp.port)
            } else {
                format!("{host}:{}", hp.port)
            }
        }
        Err(_) => args.addr.join(" "),
    }
}

/// Seconds for the progress line: up to 3 decimals, none when whole (`1.5`, `2`).
fn secs_text(d: Duration) -> String {
    format!("{}", (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// The merged files, or one run.
fn measure(args: &Args) -> anyhow::Result<Report> {
    if !args.merge.is_empty() {
        return merge_files(&args.merge);
    }
    check_flags(args)?;
    let config = config_of(args)?;
    if args.verbose > 0 {
        crate::exit::stderr_line(format_args!("sockit: bench {config}"));
    }
    let report = run_with_progress(&config)?;
    if args.verbose > 0 {
        crate::exit::stderr_line(format_args!(
            "sockit: bench: {} of {} connections set up; stopped by {}; load threads used {:.0} % of a CPU and waited for one {:.1} % of the time",
            report.connected,
            report.connections,
            report.stopped_by,
            report.cpu_pct.unwrap_or(0.0),
            report.cpu_wait_pct.unwrap_or(0.0)
        ));
        if let Some(e) = &report.first_error {
            crate::exit::stderr_line(format_args!("sockit: bench: first error: {}", e.message));
        }
    }
    Ok(report)
}

/// The flag checks that need more than one flag, or name the flag (before any lookup).
fn check_flags(args: &Args) -> anyhow::Result<()> {
    if args.count == Some(0) {
        return Err(Error::invalid_input("bench", "--count must be at least 1").into());
    }
    if args.udp && args.size < 8 {
        return Err(Error::invalid_input(
            "bench",
            format!(
                "-u needs --size of at least 8 bytes: each datagram carries its 8-byte sequence number (not {})",
                args.size
            ),
        )
        .into());
    }
    Ok(())
}

/// `--duration`: the library's limit, [`bench::MAX_DURATION`].
fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::args::parse_secs_in(text, false, bench::MAX_DURATION.as_secs_f64())
}

/// `--warmup`: 0 is no warm-up; at most [`bench::MAX_DURATION`].
fn parse_warmup(text: &str) -> Result<Duration, String> {
    crate::args::parse_secs_in(text, true, bench::MAX_DURATION.as_secs_f64())
}

/// `--timeout`, `-w`: more than 0 (no limit is not offered), at most 1e9 as `parse_secs`.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    crate::args::parse_secs_in(text, false, 1e9)
}

/// `--timeout`: at least [`bench::MIN_TIMEOUT`] (1 ms, the timer's resolution: a shorter
/// one would be rounded up), at most 1e9 as `parse_secs`.
fn parse_request_timeout(text: &str) -> Result<Duration, String> {
    crate::args::parse_secs_in(text, false, 1e9)
        .ok()
        .filter(|d| *d >= bench::MIN_TIMEOUT)
        .ok_or_else(|| "must be at least 0.001 and at most 1e9 seconds".into())
}

/// `--rate`: requests per second, more than 0 and at most 10,000,000 as the library takes.
fn parse_rate(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0 && *r <= 10_000_000.0)
        .ok_or_else(|| "must be more than 0 and at most 10000000 per second".to_string())
}

fn config_of(args: &Args) -> anyhow::Result<Config> {
    let target = if let Some(p) = &args.unix {
        let addr = sockit::unix::UnixAddr::parse(p)?;
        if args.udp {
            Target::UnixDgram(addr)
        } else {
            Target::Unix(addr)
        }
    } else {
        let family = match (args.ipv4, args.ipv6) {
            (true, _) => Some(Family::Inet),
            (_, true) => Some(Family::Inet6),
            _ => None,
        };
        let (target, others) = Target::lookup(&args.addr, args.udp, family, args.numeric)?;
        if args.verbose > 0 && !others.is_empty() {
            let hp = sockit::addr::parse_host_port(&args.addr)?;
            let others: Vec<String> = others.iter().map(sockit::addr::host_text).collect();
            crate::exit::stderr_line(format_args!(
                "sockit: bench: {} is {} (its IPv4 address first, as echo-server binds); also {}",
                hp.host.as_deref().unwrap_or("127.0.0.1"),
                target.peer().0.unwrap_or_default(),
                others.join(", "),
            ));
        }
        target
    };
    let mut c = Config::new(target);
    c.mode = match args.mode {
        ModeArg::Pingpong => Mode::PingPong,
        ModeArg::Stream => Mode::Stream,
    };
    c.connections = args.connections;
    if let Some(t) = args.threads {
        c.threads = t;
    }
    c.size = args.size;
    c.duration = args.duration;
    c.count = args.count;
    c.warmup = args.warmup;
    c.rate = args.rate;
    c.timeout = args.timeout;
    c.connect_timeout = args.connect_timeout;
    c.verify = !args.no_verify;
    c.validate()?;
    Ok(c)
}

/// Runs the benchmark with a progress line on stderr when stderr is a terminal.
fn run_with_progress(config: &Config) -> anyhow::Result<Report> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        b
    });
    let mut last_requests = 0u64;
    let mut last_t = Duration::ZERO;
    let report = bench::run(config, |p| {
        let Some(b) = &bar else { return };
        let dt = (p.elapsed.saturating_sub(last_t)).as_secs_f64();
        let rate = if dt > 0.0 {
            (p.requests.saturating_sub(last_requests)) as f64 / dt
        } else {
            0.0
        };
        last_requests = p.requests;
        last_t = p.elapsed;
        b.set_message(format!(
            "{} {:.1}/{} s  {} connections  {} requests  {:.0} rps",
            if p.measuring { "bench" } else { "warm-up" },
            p.elapsed.as_secs_f64(),
            secs_text(p.planned),
            p.connected,
            p.requests,
            rate
        ));
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    report.context("bench")
}

/// Reads saved `--json` results and adds them up ([`Merge::add_text`]).
fn merge_files(files: &[PathBuf]) -> anyhow::Result<Report> {
    let mut merge = Merge::default();
    for f in files {
        let text = read_text(f)?;
        merge
            .add_text(&f.display().to_string(), &text)
            .context("--merge")?;
    }
    merge
        .finish()
        .ok_or_else(|| Error::invalid_input("json", "no results in the --merge files").into())
}

/// A saved result file as text: at most 64 MiB (`/dev/zero` is refused, not read), UTF-8
/// (bad bytes are bad input naming the file and the line).
fn read_text(f: &Path) -> anyhow::Result<String> {
    let bytes = sockit::files::read_capped(f, 64 << 20, Some("open"), "bench result")
        .with_context(|| format!("--merge {}", f.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow::Error::new(Error::invalid_input(
            "json",
            format!("not text: bytes that are not UTF-8 at offset {at}"),
        ))
        .context(format!("--merge {} line {line}", f.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_the_planned_seconds_as_given() {
        // Regression: `--duration 1.5` showed "0.1/2 s".
        assert_eq!(secs_text(Duration::from_millis(1500)), "1.5");
        assert_eq!(secs_text(Duration::from_secs(2)), "2");
        assert_eq!(secs_text(Duration::from_millis(250)), "0.25");
    }
}
