//! The flags of `sockit bench` and the [`Config`] they make.

use std::path::PathBuf;
use std::time::Duration;

use sockit::bench::{self, Config, Mode, Target};
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
        help_heading = "Connection",
        short = 'c',
        long = "connections",
        value_name = "N",
        default_value_t = 1
    )]
    pub connections: usize,
    /// Load threads (default: the CPUs this process may use).
    #[arg(help_heading = "Connection", long, value_name = "N")]
    pub threads: Option<usize>,
    /// Message size (ping-pong) or write size (stream), bytes.
    #[arg(
        help_heading = "Data",
        long,
        value_name = "BYTES",
        default_value_t = 64
    )]
    pub size: usize,
    /// Measured seconds after the warm-up, more than 0 and at most 3600 (default 10;
    /// with --count alone: up to 3600).
    #[arg(help_heading = "Limits", long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Measured requests in total (stream: chunks), split evenly over the connections.
    #[arg(help_heading = "Limits", long, value_name = "N")]
    pub count: Option<u64>,
    /// Seconds of load before measuring starts, 0 to 3600.
    #[arg(help_heading = "Limits", long, value_name = "SECS", default_value = "0", allow_negative_numbers = true,
          value_parser = parse_warmup)]
    pub warmup: Duration,
    /// Open loop: requests per second over all connections; latency is measured from
    /// each request's intended send time (more than 0, at most 10000000).
    #[arg(help_heading = "Limits", long, value_name = "PER_SEC", allow_negative_numbers = true, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// pingpong: send, read the echo whole, verify; stream: write continuously while
    /// reading the echo back (MB/s).
    #[arg(help_heading = "Data", long, value_enum, default_value = "pingpong")]
    pub mode: ModeArg,
    /// Per-request reply timeout in seconds (UDP: a datagram is lost after it;
    /// default 0.2 for UDP, 5 otherwise; at least 0.001, at most 1e9).
    #[arg(help_heading = "Limits", long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_request_timeout)]
    pub timeout: Option<Duration>,
    /// Connect timeout for all connections together, seconds (more than 0, at most 1e9).
    #[arg(help_heading = "Connection", short = 'w', value_name = "SECS", default_value = "10", allow_negative_numbers = true,
          value_parser = parse_timeout)]
    pub connect_timeout: Duration,
    /// IPv4 only.
    #[arg(help_heading = "Connection", short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(help_heading = "Connection", short = '6')]
    pub ipv6: bool,
    /// Numeric host only: no name lookup.
    #[arg(help_heading = "Connection", short = 'n')]
    pub numeric: bool,
    /// Do not compare echoed bytes with those sent.
    #[arg(help_heading = "Data", long)]
    pub no_verify: bool,
    /// One JSON object on stdout (units in field names, histogram in HdrHistogram's
    /// compressed base64 form).
    #[arg(help_heading = "Output", long)]
    pub json: bool,
    /// Print the settings before the run and the connect phase's outcome on stderr.
    #[arg(help_heading = "Output", short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print requests per second and latency percentiles for every SECS of the measured
    /// time, before the summary, as iperf3 -i (at least 0.01).
    #[arg(help_heading = "Output", long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_interval)]
    pub interval: Option<Duration>,
    /// Draw latency against percentile (on a 1/(1-p) axis, as HdrHistogram's plotter) to
    /// an SVG file: one curve per run; with --merge one per merged run and the merge.
    #[arg(help_heading = "Output", long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Run slice I of N (1 <= I <= N) of the connections, the --count and the --rate: one
    /// command per machine, then --merge their --json results.
    #[arg(help_heading = "Limits", long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u64, u64)>,
    /// Write an HdrHistogram interval log (one histogram per --interval, 1 s without it),
    /// readable by HdrHistogram's own tools.
    #[arg(help_heading = "Output", long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
    /// Merge saved --json results and print the combined figures (no load is sent; only
    /// --json and --plot apply).
    #[arg(help_heading = "Output", long, value_name = "FILE", num_args = 1.., conflicts_with_all = [
        "addr", "unix", "udp", "connections", "threads", "size", "duration", "count", "warmup",
        "rate", "mode", "timeout", "connect_timeout", "ipv4", "ipv6", "numeric", "no_verify",
        "verbose", "interval", "shard", "hdr_log",
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

/// The target as the success JSON writes it (`HOST:PORT`, `[V6]:PORT`, the Unix
/// address), from the words given: the error JSON may come before any resolution.
pub(super) fn target_text(args: &Args) -> String {
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

/// The flag checks that need more than one flag, or name the flag (before any lookup).
pub(super) fn check_flags(args: &Args) -> anyhow::Result<()> {
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

/// `--interval`: at least [`bench::MIN_INTERVAL`], at most [`bench::MAX_DURATION`].
fn parse_interval(text: &str) -> Result<Duration, String> {
    crate::args::parse_secs_in(text, false, bench::MAX_DURATION.as_secs_f64())
        .ok()
        .filter(|d| *d >= bench::MIN_INTERVAL)
        .ok_or_else(|| "must be at least 0.01 and at most 3600 seconds".into())
}

/// `--shard I/N`: 1 <= I <= N.
fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    text.split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse::<u64>().ok()?, n.trim().parse::<u64>().ok()?)))
        .filter(|(i, n)| (1..=*n).contains(i))
        .ok_or_else(|| "must be I/N with 1 <= I <= N (for example 1/2)".into())
}

/// `--rate`: requests per second, more than 0 and at most 10,000,000 as the library takes.
fn parse_rate(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0 && *r <= 10_000_000.0)
        .ok_or_else(|| "must be more than 0 and at most 10000000 per second".to_string())
}

pub(super) fn config_of(args: &Args) -> anyhow::Result<Config> {
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
    c.interval = args.interval;
    if let Some((i, n)) = args.shard {
        c = c.shard(i, n)?;
    }
    c.validate()?;
    Ok(c)
}
