//! `sockit bench`: round trips per second, latency percentiles and throughput against an
//! echo-style server, and `--merge` of saved `--json` results.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use sockit::bench::{self, Config, Latency, Mode, Report, Target};
use sockit::{Error, Family, SockType};

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
    let summary = match measure(&args) {
        Ok(s) => s,
        Err(err) => {
            if args.json && !crate::exit::is_broken_pipe(&err) {
                let mut error = crate::output::json_error(&err);
                let e = crate::exit::sockit_error(&err);
                error["op"] = e.map(|e| e.op()).into();
                if let (Some(e), true) = (e, args.merge.is_empty()) {
                    // the word errors_by_kind counts it under (`check`, `reset`, …)
                    error["kind"] = bench::error_kind_name(e).into();
                }
                let obj = if args.merge.is_empty() {
                    json!({"target": target_text(&args), "error": error})
                } else {
                    json!({"merge": args.merge, "error": error})
                };
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{obj}");
                let _ = out.flush();
            }
            return Err(err);
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", summary.to_json())?;
    } else {
        summary.print_human(&mut out)?;
    }
    out.flush()?;
    Ok(summary.exit_code())
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
fn measure(args: &Args) -> anyhow::Result<Summary> {
    if !args.merge.is_empty() {
        return merge_files(&args.merge);
    }
    check_flags(args)?;
    let config = config_of(args)?;
    if args.verbose > 0 {
        crate::exit::stderr_line(format_args!(
            "sockit: bench {} {} ({}): {} connection{} over {} thread{}, {} B, {}{}{}",
            config.target.protocol(),
            config.target,
            config.mode.as_str(),
            config.connections,
            if config.connections == 1 { "" } else { "s" },
            config.threads.min(config.connections),
            if config.threads.min(config.connections) == 1 {
                ""
            } else {
                "s"
            },
            config.size,
            config
                .count
                .map_or(String::new(), |n| format!("{n} requests within ")),
            format_args!("{:.3} s", config.effective_duration().as_secs_f64()),
            config.rate.map_or(String::new(), |r| format!(" at {r}/s")),
        ));
    }
    let report = run_with_progress(&config)?;
    if args.verbose > 0 {
        crate::exit::stderr_line(format_args!(
            "sockit: bench: {} of {} connections set up; stopped by {}; load threads used {:.0} % of a CPU and waited for one {:.1} % of the time",
            report.connected,
            report.connections,
            report.stopped_by.as_str(),
            report.cpu_pct(),
            report.cpu_wait_pct()
        ));
        if let Some(e) = &report.first_error {
            crate::exit::stderr_line(format_args!("sockit: bench: first error: {e}"));
        }
    }
    Summary::of_report(&report)
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

/// A rate per second for people: whole numbers from 100 up, three significant digits
/// below (a slow run's 0.13 is not "0").
fn rate_text(per_s: f64) -> String {
    match per_s {
        r if r >= 100.0 || r == 0.0 => format!("{r:.0}"),
        r if r >= 10.0 => format!("{r:.1}"),
        r if r >= 1.0 => format!("{r:.2}"),
        r => format!("{r:.3}"),
    }
}

/// `--rate`: requests per second, more than 0 and at most 10,000,000 as the library takes.
fn parse_rate(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0 && *r <= 10_000_000.0)
        .ok_or_else(|| "must be more than 0 and at most 10000000 per second".to_string())
}

/// The one address every connection of the run uses, of a name's `addrs` (getaddrinfo
/// order): the first IPv4 address when the name has both families (as nmap and Python's
/// default `AF_INET` do, and as `echo-server`/`listen` bind such a name), else the first.
/// No probe connection is made: a server that serves one client gets only the run's.
fn pick_address(addrs: &[std::net::SocketAddr]) -> Option<std::net::SocketAddr> {
    addrs
        .iter()
        .copied()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first().copied())
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
        if args.addr.is_empty() {
            return Err(Error::invalid_input(
                "bench",
                "missing address (HOST PORT or --unix PATH)",
            )
            .into());
        }
        let hp = sockit::addr::parse_host_port(&args.addr)?;
        let host = hp.host.as_deref().unwrap_or("127.0.0.1");
        let family = match (args.ipv4, args.ipv6) {
            (true, _) => Some(Family::Inet),
            (_, true) => Some(Family::Inet6),
            _ => None,
        };
        let socktype = if args.udp {
            SockType::Dgram
        } else {
            SockType::Stream
        };
        let flags = if args.numeric {
            sockit::resolve::AI_NUMERICHOST
        } else {
            0
        };
        let infos = sockit::resolve::getaddrinfo(
            Some(host),
            Some(&hp.port),
            family,
            Some(socktype),
            0,
            flags,
        )?;
        let mut addrs: Vec<std::net::SocketAddr> = Vec::new();
        for info in &infos {
            if !addrs.contains(&info.address) {
                addrs.push(info.address);
            }
        }
        let addr =
            pick_address(&addrs).ok_or_else(|| Error::gai("getaddrinfo", libc::EAI_NONAME))?;
        if args.verbose > 0 && addrs.len() > 1 {
            let others: Vec<String> = addrs
                .iter()
                .filter(|a| **a != addr)
                .map(sockit::addr::host_text)
                .collect();
            crate::exit::stderr_line(format_args!(
                "sockit: bench: {host} is {} (its IPv4 address first, as echo-server binds); also {}",
                sockit::addr::host_text(&addr),
                others.join(", "),
            ));
        }
        if addr.port() == 0 {
            return Err(Error::invalid_input("bench", "port 0 cannot be benchmarked").into());
        }
        if args.udp {
            Target::Udp(addr)
        } else {
            Target::Tcp(addr)
        }
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

/// What is printed: from one report, or merged from saved JSON results.
struct Summary {
    merged: bool,
    runs: usize,
    target: String,
    protocol: String,
    mode: String,
    connections: u64,
    connected: u64,
    threads: u64,
    size: u64,
    rate: Option<f64>,
    warmup_s: f64,
    duration_s: f64,
    requests: u64,
    requests_per_connection: Vec<u64>,
    rps: f64,
    bytes_sent: u64,
    bytes_received: u64,
    mb_per_s: f64,
    errors: std::collections::BTreeMap<String, u64>,
    first_error: Option<Value>,
    /// The exit code of the first error (exit::code_for_kind of its kind).
    first_error_exit: Option<u8>,
    mismatches: u64,
    lost: u64,
    truncated: u64,
    late: u64,
    duplicates: u64,
    /// Requests sent and requests due but never sent (open loop).
    sent: u64,
    /// Requests sent in the whole run, warm-up included (merged: the measured ones).
    sent_total: u64,
    unsent: u64,
    lost_bytes: u64,
    /// Stream: bytes the server sent beyond those written to it.
    extra_bytes: u64,
    stopped_by: String,
    histogram: bench::hdrhistogram::Histogram<u64>,
    cpu_pct: Option<f64>,
    cpu_wait_pct: Option<f64>,
}

impl Summary {
    fn of_report(r: &Report) -> anyhow::Result<Summary> {
        Ok(Summary {
            merged: false,
            runs: 1,
            target: r.target.to_string(),
            protocol: r.target.protocol().into(),
            mode: r.mode.as_str().into(),
            connections: r.connections as u64,
            connected: r.connected as u64,
            threads: r.threads as u64,
            size: r.size as u64,
            rate: r.rate,
            warmup_s: r.warmup.as_secs_f64(),
            duration_s: r.elapsed.as_secs_f64(),
            requests: r.requests,
            requests_per_connection: r.requests_per_connection.clone(),
            rps: r.rps(),
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
            mb_per_s: r.mb_per_s(),
            errors: r.errors.clone(),
            // `kind` as errors_by_kind counts it (`closed`, `refused`, …), so the two agree.
            first_error: r.first_error.as_ref().map(|e| {
                let kind = r.first_error_kind.as_deref().unwrap_or(e.kind().as_str());
                json!({"kind": kind, "op": e.op(), "code": e.code(), "message": e.to_string()})
            }),
            first_error_exit: r
                .first_error
                .as_ref()
                .map(|e| crate::exit::code_for_kind(e.kind())),
            mismatches: r.mismatches,
            lost: r.lost,
            truncated: r.truncated,
            late: r.late,
            duplicates: r.duplicates,
            sent: r.sent,
            sent_total: r.sent_total,
            unsent: r.unsent,
            lost_bytes: r.lost_bytes,
            extra_bytes: r.extra_bytes,
            stopped_by: r.stopped_by.as_str().into(),
            histogram: r.histogram.clone(),
            cpu_pct: Some(r.cpu_pct()),
            cpu_wait_pct: Some(r.cpu_wait_pct()),
        })
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn data_errors(&self) -> bool {
        self.mismatches + self.lost + self.truncated + self.lost_bytes + self.extra_bytes > 0
    }

    /// `Some(sent)` when requests were sent and none was answered in the measured window.
    fn unanswered(&self) -> Option<u64> {
        (self.requests == 0 && self.sent_total > 0).then_some(self.sent_total)
    }

    /// 7 for wrong or lost data, or no reply at all; else the first error's kind; else 0.
    fn exit_code(&self) -> ExitCode {
        if let Some(n) = self.unanswered() {
            crate::exit::stderr_line(format_args!(
                "sockit: bench: no reply in the measured window: {n} request{} sent, 0 answered",
                if n == 1 { "" } else { "s" }
            ));
            return ExitCode::from(7);
        }
        if self.data_errors() {
            crate::exit::stderr_line(format_args!(
                "sockit: bench: data came back wrong: {} mismatched, {} lost, {} truncated, {} bytes lost, {} extra bytes",
                self.mismatches, self.lost, self.truncated, self.lost_bytes, self.extra_bytes
            ));
            return ExitCode::from(7);
        }
        if self.error_count() > 0 {
            if let Some(code) = self.first_error_exit {
                return ExitCode::from(code);
            }
            // merged: the saved kind (as errors_by_kind counts it; older files: the error kind)
            let kind = self
                .first_error
                .as_ref()
                .and_then(|e| e["kind"].as_str())
                .unwrap_or("os");
            return ExitCode::from(match kind {
                "timeout" => 5,
                "invalid_input" => 2,
                "protocol" | "check" => 7,
                _ => 1,
            });
        }
        ExitCode::SUCCESS
    }

    fn to_json(&self) -> Value {
        let lat = Latency::of(&self.histogram);
        let l = |f: fn(&Latency) -> f64| lat.as_ref().map(|x| (f(x) * 10.0).round() / 10.0);
        let hist = bench::encode_histogram(&self.histogram).unwrap_or_default();
        let mut v = json!({
            "target": self.target,
            "protocol": self.protocol,
            "mode": self.mode,
            "connections": self.connections,
            "connected": self.connected,
            "threads": self.threads,
            "size_bytes": self.size,
            "rate_per_s": self.rate,
            "warmup_s": self.warmup_s,
            "duration_s": self.duration_s,
            "requests": self.requests,
            "requests_per_connection": self.requests_per_connection,
            "rps": self.rps,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "mb_per_s": self.mb_per_s,
            "latency_min_us": l(|x| x.min_us),
            "latency_mean_us": l(|x| x.mean_us),
            "latency_p50_us": l(|x| x.p50_us),
            "latency_p90_us": l(|x| x.p90_us),
            "latency_p99_us": l(|x| x.p99_us),
            "latency_p999_us": l(|x| x.p999_us),
            "latency_max_us": l(|x| x.max_us),
            "errors": self.error_count(),
            "errors_by_kind": self.errors,
            "first_error": self.first_error,
            "mismatches": self.mismatches,
            "lost": self.lost,
            "truncated": self.truncated,
            "late": self.late,
            "duplicates": self.duplicates,
            "sent_requests": self.sent,
            "unsent_requests": self.unsent,
            "lost_bytes": self.lost_bytes,
            "extra_bytes": self.extra_bytes,
            "stopped_by": self.stopped_by,
            "histogram": hist,
            "histogram_unit": "ns",
            "cpu_pct": self.cpu_pct.map(|x| (x * 10.0).round() / 10.0),
            "cpu_wait_pct": self.cpu_wait_pct.map(|x| (x * 10.0).round() / 10.0),
        });
        if self.merged {
            v["runs"] = json!(self.runs);
        }
        v
    }

    fn print_human(&self, out: &mut impl Write) -> std::io::Result<()> {
        let what = if self.merged {
            format!(
                "{} merged run{}: {}, {}, {} B, {}/{} connections",
                self.runs,
                if self.runs == 1 { "" } else { "s" },
                self.protocol,
                self.mode,
                self.size,
                self.connected,
                self.connections,
            )
        } else {
            format!(
                "{}, {}, {} B, {}/{} connections on {} thread{}{}",
                self.protocol,
                self.mode,
                self.size,
                self.connected,
                self.connections,
                self.threads,
                if self.threads == 1 { "" } else { "s" },
                self.rate.map_or(String::new(), |r| format!(", rate {r}/s"))
            )
        };
        writeln!(out, "target      {} ({what})", self.target)?;
        let unit = if self.mode == "stream" {
            "chunks echoed"
        } else {
            "requests"
        };
        if self.merged {
            // The runs are taken as concurrent: their rates add up; no one duration fits.
            writeln!(
                out,
                "requests    {} {unit} from {} run{}; combined rate {} per second (sum of each run's rate)",
                self.requests,
                self.runs,
                if self.runs == 1 { "" } else { "s" },
                rate_text(self.rps)
            )?;
            writeln!(
                out,
                "throughput  {:.2} MB/s echoed (sum of each run's; {} bytes sent, {} received)",
                self.mb_per_s, self.bytes_sent, self.bytes_received
            )?;
        } else {
            writeln!(
                out,
                "requests    {} {unit} in {:.2} s: {} per second",
                self.requests,
                self.duration_s,
                rate_text(self.rps)
            )?;
            writeln!(
                out,
                "throughput  {:.2} MB/s echoed ({} bytes sent, {} received)",
                self.mb_per_s, self.bytes_sent, self.bytes_received
            )?;
        }
        if self.unsent > 0 {
            writeln!(
                out,
                "rate        target not reached: {} requests were due, {} sent ({} never sent)",
                self.sent + self.unsent,
                self.sent,
                self.unsent
            )?;
        }
        match Latency::of(&self.histogram) {
            Some(l) => writeln!(
                out,
                "latency µs  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean {:.1}, min {:.1})",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.mean_us, l.min_us
            )?,
            None => writeln!(out, "latency µs  -")?,
        }
        let kinds: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        write!(out, "errors      {}", self.error_count())?;
        if !kinds.is_empty() {
            write!(out, " ({})", kinds.join(", "))?;
        }
        if let Some(m) = self
            .first_error
            .as_ref()
            .and_then(|e| e["message"].as_str())
        {
            write!(out, "; first: {m}")?;
        }
        writeln!(out)?;
        writeln!(out, "mismatches  {}", self.mismatches)?;
        if self.protocol == "udp" || self.protocol == "unix-dgram" {
            writeln!(
                out,
                "datagrams   {} lost, {} truncated, {} late, {} duplicate",
                self.lost, self.truncated, self.late, self.duplicates
            )?;
        }
        if self.lost_bytes > 0 {
            writeln!(out, "lost bytes  {}", self.lost_bytes)?;
        }
        if self.extra_bytes > 0 {
            writeln!(
                out,
                "extra bytes {} (sent by the server beyond those written)",
                self.extra_bytes
            )?;
        }
        if let (Some(c), Some(w)) = (self.cpu_pct, self.cpu_wait_pct) {
            writeln!(
                out,
                "load CPU    {c:.0} % of a CPU; waited for a CPU {w:.1} % of the time{}",
                if w > 5.0 {
                    " (other processes disturbed this run)"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

/// Reads saved `--json` results (one object per line, any number per file) and adds
/// them up: counts and rates are summed (the runs are taken as concurrent), the
/// histograms merged. Every line is checked first (see [`Saved::read`]); runs of another
/// protocol, mode or size than the first, and failed runs, are refused.
fn merge_files(files: &[PathBuf]) -> anyhow::Result<Summary> {
    let mut s = Summary {
        merged: true,
        runs: 0,
        target: String::new(),
        protocol: String::new(),
        mode: String::new(),
        connections: 0,
        connected: 0,
        threads: 0,
        size: 0,
        rate: None,
        warmup_s: 0.0,
        duration_s: 0.0,
        requests: 0,
        requests_per_connection: Vec::new(),
        rps: 0.0,
        bytes_sent: 0,
        bytes_received: 0,
        mb_per_s: 0.0,
        errors: Default::default(),
        first_error: None,
        first_error_exit: None,
        mismatches: 0,
        lost: 0,
        truncated: 0,
        late: 0,
        duplicates: 0,
        sent: 0,
        sent_total: 0,
        unsent: 0,
        lost_bytes: 0,
        extra_bytes: 0,
        stopped_by: "merged".into(),
        histogram: bench::new_histogram(),
        cpu_pct: None,
        cpu_wait_pct: None,
    };
    let mut hists = Vec::new();
    let mut targets = Vec::<String>::new();
    // protocol, mode, size of the first run and where it was read
    let mut kind_of_runs: Option<(String, String, u64, String)> = None;
    for f in files {
        // a saved result is a few KiB: a huge file (`/dev/zero`) is refused, not read
        let bytes = sockit::files::read_capped(f, 64 << 20, Some("open"), "bench result")
            .with_context(|| format!("--merge {}", f.display()))?;
        // Bad input, not a system error: name the file and the line with the bad bytes.
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            anyhow::Error::new(Error::invalid_input(
                "json",
                format!("not text: bytes that are not UTF-8 at offset {at}"),
            ))
            .context(format!("--merge {} line {line}", f.display()))
        })?;
        if text.trim().is_empty() {
            // Refused like an empty file alone: a run that is not there cannot be added.
            return Err(Error::invalid_input(
                "json",
                "no results in the file (it is empty)".to_string(),
            ))
            .with_context(|| format!("--merge {}", f.display()));
        }
        for (no, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let at = format!("{} line {}", f.display(), no + 1);
            let v: Value = serde_json::from_str(line)
                .map_err(|e| Error::invalid_input("json", e.to_string()))
                .with_context(|| format!("--merge {at}"))?;
            if let Some(err) = v.get("error").filter(|_| v.get("histogram").is_none()) {
                let m = err["message"]
                    .as_str()
                    .map_or(err.to_string(), str::to_string);
                return Err(Error::invalid_input(
                    "bench --merge",
                    format!(
                        "{} is a failed run (error: {}; line {}): only completed runs can be merged",
                        f.display(),
                        short(&m, 200),
                        no + 1
                    ),
                )
                .into());
            }
            let r = Saved::read(&v)
                .map_err(|m| Error::invalid_input("json", m))
                .with_context(|| format!("--merge {at}"))?;
            let this = (r.protocol.clone(), r.mode.clone(), r.size);
            match &kind_of_runs {
                None => kind_of_runs = Some((this.0, this.1, this.2, at.clone())),
                Some((p, m, z, first)) => {
                    let mut differ = Vec::new();
                    if *p != this.0 {
                        differ.push(format!("protocol {p} and {}", this.0));
                    }
                    if *m != this.1 {
                        differ.push(format!("mode {m} and {}", this.1));
                    }
                    if *z != this.2 {
                        differ.push(format!("size_bytes {z} and {}", this.2));
                    }
                    if !differ.is_empty() {
                        return Err(Error::invalid_input(
                            "bench --merge",
                            format!(
                                "{at} is not the same benchmark as {first}: {}; only runs of one protocol, mode and size add up",
                                differ.join(", ")
                            ),
                        )
                        .into());
                    }
                }
            }
            let h =
                bench::decode_histogram(&r.histogram).with_context(|| format!("--merge {at}"))?;
            hists.push(h);
            let sum = |a: u64, b: u64, k: &str| {
                a.checked_add(b).ok_or_else(|| {
                    anyhow::Error::new(Error::invalid_input(
                        "json",
                        format!("field \"{k}\": the sum over the runs passes 2^64"),
                    ))
                    .context(format!("--merge {at}"))
                })
            };
            s.runs += r.runs as usize;
            s.connections = sum(s.connections, r.connections, "connections")?;
            s.connected = sum(s.connected, r.connected, "connected")?;
            s.threads = sum(s.threads, r.threads, "threads")?;
            s.requests = sum(s.requests, r.requests, "requests")?;
            s.bytes_sent = sum(s.bytes_sent, r.bytes_sent, "bytes_sent")?;
            s.bytes_received = sum(s.bytes_received, r.bytes_received, "bytes_received")?;
            s.mismatches = sum(s.mismatches, r.mismatches, "mismatches")?;
            s.lost = sum(s.lost, r.lost, "lost")?;
            s.truncated = sum(s.truncated, r.truncated, "truncated")?;
            s.late = sum(s.late, r.late, "late")?;
            s.duplicates = sum(s.duplicates, r.duplicates, "duplicates")?;
            s.sent = sum(s.sent, r.sent, "sent_requests")?;
            s.unsent = sum(s.unsent, r.unsent, "unsent_requests")?;
            s.lost_bytes = sum(s.lost_bytes, r.lost_bytes, "lost_bytes")?;
            s.extra_bytes = sum(s.extra_bytes, r.extra_bytes, "extra_bytes")?;
            for (k, n) in r.errors_by_kind {
                let e = s.errors.entry(k).or_insert(0);
                *e = sum(*e, n, "errors_by_kind")?;
            }
            s.requests_per_connection.extend(r.requests_per_connection);
            s.size = r.size;
            s.duration_s = s.duration_s.max(r.duration_s);
            s.warmup_s = s.warmup_s.max(r.warmup_s);
            s.rps += r.rps;
            s.mb_per_s += r.mb_per_s;
            if s.first_error.is_none() {
                s.first_error = r.first_error;
            }
            if !targets.contains(&r.target) {
                targets.push(r.target);
            }
        }
    }
    let Some((protocol, mode, _, _)) = kind_of_runs else {
        return Err(Error::invalid_input("json", "no results in the --merge files").into());
    };
    if !(s.rps.is_finite() && s.mb_per_s.is_finite()) {
        return Err(Error::invalid_input(
            "bench --merge",
            "the summed rates are too large to be a number",
        )
        .into());
    }
    s.sent_total = s.sent;
    s.protocol = protocol;
    s.mode = mode;
    s.target = targets.join(", ");
    s.histogram = bench::merge_histograms(&hists);
    Ok(s)
}

/// `text` cut to `max` characters (with `…`), for echoing a bad value.
fn short(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// One saved `--json` result, checked field by field.
struct Saved {
    runs: u64,
    target: String,
    protocol: String,
    mode: String,
    size: u64,
    connections: u64,
    connected: u64,
    threads: u64,
    requests: u64,
    requests_per_connection: Vec<u64>,
    bytes_sent: u64,
    bytes_received: u64,
    mismatches: u64,
    lost: u64,
    truncated: u64,
    late: u64,
    duplicates: u64,
    sent: u64,
    unsent: u64,
    lost_bytes: u64,
    extra_bytes: u64,
    errors_by_kind: Vec<(String, u64)>,
    first_error: Option<Value>,
    duration_s: f64,
    warmup_s: f64,
    rps: f64,
    mb_per_s: f64,
    histogram: String,
}

impl Saved {
    /// Checks every field `Summary::to_json` writes: counts are non-negative integers
    /// below 2^64, rates and times non-negative numbers, optional figures a number or
    /// null, names among those the encoder writes, `histogram_unit` `ns`. The error names
    /// the field and the value (cut short).
    fn read(v: &Value) -> Result<Saved, String> {
        let o = v
            .as_object()
            .ok_or_else(|| format!("not a JSON object but {}", short(&v.to_string(), 40)))?;
        let field = |k: &str| {
            o.get(k)
                .ok_or_else(|| format!("no \"{k}\" field (not a sockit bench --json result)"))
        };
        let bad = |k: &str, what: &str, x: &Value| {
            format!(
                "field \"{k}\" must be {what}, not {}",
                short(&x.to_string(), 40)
            )
        };
        let uint = |k: &str| {
            let x = field(k)?;
            x.as_u64()
                .ok_or_else(|| bad(k, "an integer from 0 to 2^64-1", x))
        };
        let num = |k: &str| {
            let x = field(k)?;
            x.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .ok_or_else(|| bad(k, "a number of at least 0", x))
        };
        // fields added later: 0 when a saved result does not have them
        let opt_uint = |k: &str| match o.get(k) {
            None => Ok(0),
            Some(_) => uint(k),
        };
        let opt_num = |k: &str| match o.get(k) {
            None | Some(Value::Null) => Ok(()),
            Some(x) => x
                .as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|_| ())
                .ok_or_else(|| bad(k, "a number of at least 0 or null", x)),
        };
        let one_of = |k: &str, words: &[&str]| {
            let x = field(k)?;
            let quoted: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
            let what = match quoted.as_slice() {
                [one] => one.clone(),
                _ => format!("one of {}", quoted.join(", ")),
            };
            x.as_str()
                .filter(|t| words.contains(t))
                .map(str::to_string)
                .ok_or_else(|| bad(k, &what, x))
        };
        let string = |k: &str| {
            let x = field(k)?;
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(k, "a string", x))
        };
        one_of("histogram_unit", &["ns"])?;
        for k in [
            "latency_min_us",
            "latency_mean_us",
            "latency_p50_us",
            "latency_p90_us",
            "latency_p99_us",
            "latency_p999_us",
            "latency_max_us",
            "rate_per_s",
            "cpu_pct",
            "cpu_wait_pct",
        ] {
            opt_num(k)?;
        }
        uint("errors")?;
        string("stopped_by")?;
        let per = field("requests_per_connection")?;
        let requests_per_connection = per
            .as_array()
            .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
            .ok_or_else(|| bad("requests_per_connection", "a list of integers from 0", per))?;
        let kinds = field("errors_by_kind")?;
        let errors_by_kind = kinds
            .as_object()
            .and_then(|m| {
                m.iter()
                    .map(|(k, n)| n.as_u64().map(|n| (k.clone(), n)))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| bad("errors_by_kind", "an object of integer counts", kinds))?;
        let first_error = match o.get("first_error") {
            None | Some(Value::Null) => None,
            Some(x @ Value::Object(_)) => Some(x.clone()),
            Some(x) => return Err(bad("first_error", "an object or null", x)),
        };
        let runs = match o.get("runs") {
            None => 1,
            Some(_) => uint("runs")?.max(1),
        };
        Ok(Saved {
            runs,
            target: string("target")?,
            protocol: one_of("protocol", &["tcp", "udp", "unix", "unix-dgram"])?,
            mode: one_of("mode", &["pingpong", "stream"])?,
            size: uint("size_bytes")?,
            connections: uint("connections")?,
            connected: uint("connected")?,
            threads: uint("threads")?,
            requests: uint("requests")?,
            requests_per_connection,
            bytes_sent: uint("bytes_sent")?,
            bytes_received: uint("bytes_received")?,
            mismatches: uint("mismatches")?,
            lost: uint("lost")?,
            truncated: uint("truncated")?,
            late: uint("late")?,
            duplicates: opt_uint("duplicates")?,
            sent: opt_uint("sent_requests")?,
            unsent: opt_uint("unsent_requests")?,
            lost_bytes: uint("lost_bytes")?,
            extra_bytes: opt_uint("extra_bytes")?,
            errors_by_kind,
            first_error,
            duration_s: num("duration_s")?,
            warmup_s: num("warmup_s")?,
            rps: num("rps")?,
            mb_per_s: num("mb_per_s")?,
            histogram: string("histogram")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_rate_is_not_shown_as_zero() {
        assert_eq!(rate_text(0.13), "0.130");
        assert_eq!(rate_text(2.5), "2.50");
        assert_eq!(rate_text(42.25), "42.2");
        assert_eq!(rate_text(133686.4), "133686");
        assert_eq!(rate_text(0.0), "0");
    }

    #[test]
    fn progress_shows_the_planned_seconds_as_given() {
        // Regression: `--duration 1.5` showed "0.1/2 s".
        assert_eq!(secs_text(Duration::from_millis(1500)), "1.5");
        assert_eq!(secs_text(Duration::from_secs(2)), "2");
        assert_eq!(secs_text(Duration::from_millis(250)), "0.25");
    }
}
