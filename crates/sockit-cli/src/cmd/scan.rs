//! `sockit scan HOST PORTS`: which ports accept a connection (nc -z).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use sockit::addr::{Family, SockType};
use sockit::scan::{PortResult, PortState, ScanOptions, Transport};

/// `-w SECS`: more than 0 (every probe needs some time); scan always has a limit (2 s
/// unless told), so the message does not offer leaving `-w` out as "no limit".
fn parse_wait(text: &str) -> Result<Duration, String> {
    crate::args::parse_secs_in(text, false, 1e9).map_err(|range| format!("{range} (default 2)"))
}

/// Arguments of `sockit scan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Host to scan, or HOST:PORTS / [V6]:PORTS (a name is looked up once; its first IPv4
    /// address is scanned when it has one, unless -6, as nmap does; else its first address).
    pub host: String,
    /// Ports, one or more words: 22, 20-25, 22,80,8000-8010, service names (http).
    #[arg(value_name = "PORTS")]
    pub ports: Vec<String>,
    /// UDP: send an empty datagram; an answer is open, ICMP unreachable closed, silence
    /// open|filtered.
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Numeric host only: no name lookup.
    #[arg(short = 'n', long = "numeric")]
    pub numeric: bool,
    /// Time each port may take to answer, in seconds.
    #[arg(short = 'w', value_name = "SECS", default_value = "2", allow_negative_numbers = true, value_parser = parse_wait)]
    pub wait: Duration,
    /// At most N probes in flight.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub parallel: u32,
    /// Source address of the probes.
    #[arg(short = 's', value_name = "ADDR")]
    pub source: Option<IpAddr>,
    /// Source port of the probes (with SO_REUSEADDR).
    #[arg(short = 'p', value_name = "PORT")]
    pub source_port: Option<u16>,
    /// Print every port with its state (open, closed, filtered, open|filtered), and a
    /// summary on stderr.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// One JSON object per port on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The host and the port words: `HOST PORTS...`, or one `HOST:PORTS` / `[V6]:PORTS` word
/// (as every subcommand takes `HOST:PORT`). The host comes back without brackets.
fn host_and_ports(args: &Args) -> sockit::Result<(String, Vec<String>)> {
    const OP: &str = "address";
    let word = args.host.as_str();
    let missing = || {
        sockit::Error::invalid_input(
            OP,
            format!("no ports to scan in {word:?} (write HOST PORTS, HOST:PORTS or [V6]:PORTS)"),
        )
    };
    let unbracket = |h: &str| {
        h.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h)
            .to_string()
    };
    let (host, port) = if let Some(rest) = word.strip_prefix('[')
        && let Some((v6, after)) = rest.split_once(']')
    {
        match after.strip_prefix(':') {
            Some(p) => (v6.to_string(), Some(p)),
            None if after.is_empty() => (v6.to_string(), None),
            None => {
                return Err(sockit::Error::invalid_input(
                    OP,
                    format!("expected ':' after ']' in {word:?}"),
                ));
            }
        }
    } else if word.matches(':').count() == 1 {
        let (h, p) = word.split_once(':').unwrap_or((word, ""));
        (h.to_string(), Some(p))
    } else {
        (unbracket(word), None)
    };
    match (port, args.ports.is_empty()) {
        (Some(p), true) if !p.is_empty() => Ok((host, vec![p.to_string()])),
        (Some(_), true) | (None, true) => Err(missing()),
        (Some(_), false) => Err(sockit::Error::invalid_input(
            OP,
            format!("{word:?} names its ports and more port words follow (give the ports once)"),
        )),
        (None, false) => Ok((host, args.ports.clone())),
    }
}

/// Every port of the port words, in the order given, without repeats.
fn parse_port_words(words: &[String], transport: Transport) -> sockit::Result<Vec<u16>> {
    let mut seen = std::collections::HashSet::new();
    let mut ports = Vec::new();
    for word in words {
        for p in sockit::scan::parse_ports(word, transport)? {
            if seen.insert(p) {
                ports.push(p);
            }
        }
    }
    Ok(ports)
}

/// The address to scan and the name's other addresses: one getaddrinfo call; of a name
/// with both families the first IPv4 answer unless `-6` (as nmap does), else the first.
fn target(args: &Args, host: &str, transport: Transport) -> sockit::Result<(IpAddr, Vec<IpAddr>)> {
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Some(Family::Inet),
        (_, true) => Some(Family::Inet6),
        _ => None,
    };
    let socktype = match transport {
        Transport::Tcp => SockType::Stream,
        Transport::Udp => SockType::Dgram,
    };
    let flags = if args.numeric {
        sockit::resolve::AI_NUMERICHOST
    } else {
        0
    };
    let infos = sockit::resolve::getaddrinfo(Some(host), None, family, Some(socktype), 0, flags)?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for info in &infos {
        if !ips.contains(&info.address.ip()) {
            ips.push(info.address.ip());
        }
    }
    let chosen = ips
        .iter()
        .copied()
        .find(IpAddr::is_ipv4)
        .or_else(|| ips.first().copied())
        .ok_or_else(|| sockit::Error::gai("getaddrinfo", libc::EAI_NONAME))?;
    ips.retain(|ip| *ip != chosen);
    Ok((chosen, ips))
}

fn line(r: &PortResult, transport: Transport, ip: IpAddr, json: bool) -> String {
    if json {
        let mut obj = serde_json::json!({
            "host": ip.to_string(),
            "port": r.port,
            "proto": transport.as_str(),
            "state": r.state.as_str(),
            "time_us": r.elapsed.as_micros() as u64,
        });
        if let Some(e) = &r.reason {
            obj["reason"] = serde_json::Value::String(e.to_string());
        }
        obj.to_string()
    } else {
        format!("{}/{} {}", r.port, transport.as_str(), r.state)
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
/// stdout as `{"host":HOST,"error":{"kind","code","message"}}`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match scan(&args) {
        Ok(code) => Ok(code),
        Err(err) => {
            if args.json && !crate::exit::is_broken_pipe(&err) {
                let obj = serde_json::json!({
                    "host": args.host,
                    "error": crate::output::json_error(&err),
                });
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{obj}");
                let _ = out.flush();
            }
            Err(err)
        }
    }
}

fn scan(args: &Args) -> anyhow::Result<ExitCode> {
    let transport = if args.udp {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let (host, words) = host_and_ports(args)?;
    let ports = parse_port_words(&words, transport)?;
    let (ip, others) = target(args, &host, transport)?;
    if args.verbose > 0 && !others.is_empty() {
        let others: Vec<String> = others.iter().map(IpAddr::to_string).collect();
        crate::exit::stderr_line(format_args!(
            "scan {host}: scanning {ip}; the name also has {} (not scanned{})",
            others.join(", "),
            if ip.is_ipv4() { "; -6 scans IPv6" } else { "" },
        ));
    }
    let source = match (args.source, args.source_port) {
        (Some(a), p) => Some(SocketAddr::new(a, p.unwrap_or(0))),
        (None, Some(p)) => Some(SocketAddr::new(
            if ip.is_ipv4() {
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
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;

    // Results arrive out of order; print them in the order the ports were asked.
    let index: std::collections::HashMap<u16, usize> =
        ports.iter().enumerate().map(|(i, &p)| (p, i)).collect();
    let mut slots: Vec<Option<PortResult>> = vec![None; ports.len()];
    let mut cursor = 0;
    let mut counts = [0usize; 4];
    let mut out = std::io::stdout().lock();
    let mut write_err: Option<std::io::Error> = None;
    let started = Instant::now();
    let verbose = args.verbose > 0;
    let summary = rt.block_on(sockit::scan::scan(ip, &ports, &opts, |r| {
        counts[r.state as usize] += 1;
        if let Some(&i) = index.get(&r.port) {
            slots[i] = Some(r);
        }
        while let Some(Some(r)) = slots.get(cursor) {
            if (verbose || args.json || r.state == PortState::Open) && write_err.is_none() {
                let text = line(r, transport, ip, args.json);
                if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush()) {
                    write_err = Some(e);
                }
            }
            cursor += 1;
        }
    }))?;
    if let Some(e) = write_err {
        return Err(anyhow::Error::new(e).context("stdout"));
    }
    if verbose && summary.retried > 0 {
        let limit = open_file_limit().map_or_else(String::new, |n| format!(", is {n}"));
        crate::exit::stderr_line(format_args!(
            "scan {ip}: --parallel {} lowered to {}: too many open files (EMFILE; the \
             open-file limit, ulimit -n{limit}); {} probes tried again",
            opts.parallel, summary.parallel, summary.retried,
        ));
    }
    if verbose {
        crate::exit::stderr_line(format_args!(
            "scan {ip}: {} {} ports in {:.2} s: {} open, {} closed, {} filtered, {} open|filtered",
            ports.len(),
            transport.as_str(),
            started.elapsed().as_secs_f64(),
            counts[PortState::Open as usize],
            counts[PortState::Closed as usize],
            counts[PortState::Filtered as usize],
            counts[PortState::OpenFiltered as usize],
        ));
    }
    Ok(if counts[PortState::Open as usize] == ports.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
