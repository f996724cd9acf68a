//! `sockit scan HOST... PORTS...`: which ports of which hosts accept a connection (nc -z,
//! nmap -sT).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sockit::scan::{PortResult, PortState, ScanOptions, ScanSummary, Transport};

/// `-w SECS`: more than 0 (every probe needs some time); scan always has a limit (2 s
/// unless told), so the message does not offer leaving `-w` out as "no limit".
fn parse_wait(text: &str) -> Result<Duration, String> {
    crate::args::parse_secs_in(text, false, 1e9).map_err(|range| format!("{range} (default 2)"))
}

/// Scans of at least this many probes show a progress line (when stderr is a terminal).
const PROGRESS_FROM: usize = 1000;

/// Arguments of `sockit scan`.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "sockit scan [OPTIONS] HOST... PORTS...",
    after_long_help = "\
Words: hosts first, then ports. The first word is a host and the last word is ports; \
a word made only of digits, ',' and '-' (22, 20-25, 80,443), or holding a ',', starts the \
ports, and every word after it is ports too. One word HOST:PORTS or [V6]:PORTS also works.

Examples:
  sockit scan 127.0.0.1 22 80 8000-8010
  sockit scan 127.0.0.0/29 22,80
  sockit scan 127.0.0.1 127.0.0.2 ::1 http
  sockit scan -v --json 127.0.0.1 1-65535

TCP connects run on io_uring where the kernel allows it (else on epoll; --no-io-uring \
forces epoll), with one worker thread per core."
)]
pub struct Args {
    /// Hosts, then ports. A host is an address, a name (looked up once: its first IPv4
    /// address unless -6, as nmap does, else its first) or a range ADDR/LEN (127.0.0.0/29,
    /// fd00::/120; every address of it, at most 65,536). Ports: 22, 20-25,
    /// 22,80,8000-8010, service names (http).
    #[arg(value_name = "HOST|PORTS", required = true, num_args = 1..)]
    pub words: Vec<String>,
    /// UDP: send an empty datagram; an answer is open, ICMP unreachable closed, silence
    /// open|filtered.
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// -4, -6, -n.
    #[command(flatten)]
    pub family: crate::args::FamilyArgs,
    /// Time each port may take to answer, in seconds.
    #[arg(help_heading = "Connection", short = 'w', value_name = "SECS", default_value = "2", allow_negative_numbers = true, value_parser = parse_wait)]
    pub wait: Duration,
    /// At most N probes in flight.
    #[arg(help_heading = "Limits", long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub parallel: u32,
    /// Source address of the probes.
    #[arg(help_heading = "Connection", short = 's', value_name = "ADDR")]
    pub source: Option<IpAddr>,
    /// Source port of the probes (with SO_REUSEADDR).
    #[arg(help_heading = "Connection", short = 'p', value_name = "PORT")]
    pub source_port: Option<u16>,
    /// TCP connects on epoll even where the kernel allows io_uring (for comparisons and
    /// tests of the fallback).
    #[arg(help_heading = "Connection", long = "no-io-uring")]
    pub no_io_uring: bool,
    /// Print every port with its state (open, closed, filtered, open|filtered), and a
    /// summary on stderr.
    #[arg(help_heading = "Output", short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// One JSON object per port on stdout.
    #[arg(help_heading = "Output", long)]
    pub json: bool,
}

mod hosts;

use self::hosts::{hosts, parse_port_words, split_words};

/// A port's JSON object (the shared vocabulary: `peer_host`, `peer_port`, `transport`,
/// `duration_us`, a snake_case `reason` and the nested `error`).
#[derive(serde::Serialize)]
struct PortLine<'a> {
    event: &'static str,
    peer_host: String,
    peer_port: u16,
    transport: &'static str,
    state: &'static str,
    duration_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a sockit::Error>,
}

/// One port's line: `HOST PORT/PROTO STATE`, or its JSON object.
fn line(r: &PortResult, transport: Transport, json: bool) -> String {
    if json {
        let obj = PortLine {
            event: "port",
            peer_host: r.host.to_string(),
            peer_port: r.port,
            transport: transport.as_str(),
            state: r.state.as_str(),
            duration_us: r.elapsed.as_micros() as u64,
            reason: r.reason_word(),
            error: r.reason.as_ref(),
        };
        serde_json::to_string(&obj).unwrap_or_default()
    } else {
        format!("{} {}/{} {}", r.host, r.port, transport.as_str(), r.state)
    }
}

/// The soft open-file limit (`RLIMIT_NOFILE`, `ulimit -n`) from /proc/self/limits.
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs `sockit scan`. With `--json`, an error that ends the scan is also printed on
/// stdout, after the ports, as `{"event":"error","kind","op","code","message"}`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let result = scan(&args);
    if let Err(err) = &result
        && args.json
        && !crate::exit::is_broken_pipe(err)
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", crate::output::error_event(err));
        let _ = out.flush();
    }
    result
}

/// Prints the results in the order of the probes (host by host, ports in the order
/// asked), though they arrive in any order, and counts them.
struct Printer<'a> {
    args: &'a Args,
    transport: Transport,
    host_index: HashMap<IpAddr, usize>,
    port_index: Vec<u32>,
    ports: usize,
    /// Results that came before an earlier probe's.
    early: HashMap<usize, PortResult>,
    cursor: usize,
    counts: [usize; 4],
    out: std::io::StdoutLock<'static>,
    write_err: Option<std::io::Error>,
    bar: Option<indicatif::ProgressBar>,
    /// Lines must clear the progress line first (stdout is the same terminal).
    suspend: bool,
}

impl Printer<'_> {
    fn take(&mut self, r: PortResult) {
        self.counts[r.state as usize] += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if r.state == PortState::Open {
                bar.set_message(format!("{} open", self.counts[PortState::Open as usize]));
            }
        }
        let index = self.host_index.get(&r.host).copied().unwrap_or(0) * self.ports
            + self.port_index[usize::from(r.port)] as usize;
        if index != self.cursor {
            self.early.insert(index, r);
            return;
        }
        self.print(r);
        while let Some(r) = self.early.remove(&self.cursor) {
            self.print(r);
        }
    }

    fn print(&mut self, r: PortResult) {
        self.cursor += 1;
        let shown = self.args.verbose > 0 || self.args.json || r.state == PortState::Open;
        if !shown || self.write_err.is_some() {
            return;
        }
        let text = line(&r, self.transport, self.args.json);
        let out = &mut self.out;
        let mut write = || writeln!(out, "{text}").and_then(|_| out.flush());
        let written = match (&self.bar, self.suspend) {
            (Some(bar), true) => bar.suspend(write),
            _ => write(),
        };
        if let Err(e) = written {
            self.write_err = Some(e);
        }
    }
}

fn scan(args: &Args) -> anyhow::Result<ExitCode> {
    // Ctrl-C ends a scan at once, even in the middle of a long `-w` (exit 130).
    crate::lifecycle::exit_on_interrupt("scan")?;
    let transport = if args.udp {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let (host_words, port_words) = split_words(&args.words)?;
    let ports = parse_port_words(&port_words, transport)?;
    let hosts = hosts(args, &host_words, transport, ports.len())?;
    let first = hosts[0];
    let source = match (args.source, args.source_port) {
        (Some(a), p) => Some(SocketAddr::new(a, p.unwrap_or(0))),
        (None, Some(p)) => Some(SocketAddr::new(
            if first.is_ipv4() {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u16; 8])
            },
            p,
        )),
        (None, None) => None,
    };
    let opts = ScanOptions {
        transport,
        parallel: args.parallel as usize,
        timeout: args.wait,
        source,
        io_uring: !args.no_io_uring,
        threads: 0,
    };
    let total = hosts.len() * ports.len();
    let bar = (total >= PROGRESS_FROM && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "scan {pos}/{len} probes {per_sec} eta {eta} {msg}",
        ) {
            bar.set_style(style);
        }
        crate::exit::set_progress(Some(bar.clone()));
        bar
    });
    let mut port_index = vec![0u32; 65536];
    for (i, &p) in ports.iter().enumerate() {
        port_index[usize::from(p)] = i as u32;
    }
    let mut printer = Printer {
        args,
        transport,
        host_index: hosts.iter().enumerate().map(|(i, &h)| (h, i)).collect(),
        port_index,
        ports: ports.len(),
        early: HashMap::new(),
        cursor: 0,
        counts: [0; 4],
        out: std::io::stdout().lock(),
        write_err: None,
        suspend: bar.is_some() && std::io::stdout().is_terminal(),
        bar,
    };
    let started = Instant::now();
    let summary = sockit::scan::scan(&hosts, &ports, &opts, |r| printer.take(r));
    if let Some(bar) = &printer.bar {
        bar.finish_and_clear();
        crate::exit::set_progress(None);
    }
    let summary = summary?;
    if let Some(e) = printer.write_err.take() {
        return Err(anyhow::Error::new(e).context("stdout"));
    }
    if args.verbose > 0 {
        report(&opts, &summary, &printer.counts, hosts.len(), started);
    }
    Ok(if printer.counts[PortState::Open as usize] == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The `-v` lines on stderr: io_uring refused, parallelism lowered, the summary.
fn report(
    opts: &ScanOptions,
    summary: &ScanSummary,
    counts: &[usize; 4],
    hosts: usize,
    started: Instant,
) {
    let total: usize = counts.iter().sum();
    if let Some(e) = &summary.io_uring_refused {
        crate::exit::stderr_line(format_args!(
            "scan: io_uring refused ({e}); the connects run on epoll"
        ));
    }
    if summary.retried > 0 {
        let limit = open_file_limit().map_or_else(String::new, |n| format!(", is {n}"));
        crate::exit::stderr_line(format_args!(
            "scan: --parallel {} lowered to {}: too many open files (EMFILE; the \
             open-file limit, ulimit -n{limit}); {} probes tried again",
            opts.parallel, summary.parallel, summary.retried,
        ));
    }
    crate::exit::stderr_line(format_args!(
        "scan: {total} {} probes ({hosts} host{}) in {:.2} s ({}, {} thread{}): {} open, {} \
         closed, {} filtered, {} open|filtered",
        opts.transport.as_str(),
        if hosts == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64(),
        summary.engine.as_str(),
        summary.threads,
        if summary.threads == 1 { "" } else { "s" },
        counts[PortState::Open as usize],
        counts[PortState::Closed as usize],
        counts[PortState::Filtered as usize],
        counts[PortState::OpenFiltered as usize],
    ));
}
