//! `sockit echo-server`: the concurrent echo server of the library, with its events printed.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sockit::echo::{
    Bound, CloseReason, DEFAULT_PORT, EchoConfig, EchoServer, EchoStats, Event, Listen, TcpEngine,
};
use sockit::echo::{MAX_CONNS, MAX_THREADS, Peer};
use sockit::unix::UnixAddr;
use sockit::{Error, Family, Port, SockType};

use crate::args::parse_secs_in;
use crate::exit::stderr_line;

/// Arguments of `sockit echo-server`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to listen: `HOST PORT`, `HOST:PORT`, `[V6]:PORT` or `PORT`
    /// (default 127.0.0.1 50007; port 0 picks a free port).
    #[arg(value_name = "ADDR", num_args = 0..=2)]
    pub addr: Vec<String>,
    /// UDP: echo each datagram whole to its sender.
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
    /// TCP (the default); with --udp, both on one port.
    #[arg(long = "tcp")]
    pub tcp: bool,
    /// Listen on a Unix socket at PATH instead (stream; datagram with -u); `@name` is a
    /// Linux abstract name (no file).
    #[arg(long = "unix", value_name = "PATH", conflicts_with_all = ["addr", "tcp"])]
    pub unix: Option<String>,
    /// Open connections allowed at once (0-16777216); past it a connection is accepted
    /// and closed.
    #[arg(long = "max-conns", value_name = "N", default_value_t = 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_CONNS as u64))]
    pub max_conns: usize,
    /// Close a connection after SECS (more than 0, at most 1e9) without traffic either way.
    #[arg(short = 'i', long = "idle-timeout", value_name = "SECS", allow_negative_numbers = true,
          value_parser = parse_idle)]
    pub idle_timeout: Option<Duration>,
    /// Worker threads, 0-1024 (default 0: one per CPU this process may use).
    #[arg(long = "threads", value_name = "N", default_value_t = 0,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_THREADS as u64))]
    pub threads: usize,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Numeric addresses only: no name lookups at all.
    #[arg(short = 'n')]
    pub numeric: bool,
    /// On an IPv6 wildcard address, also accept IPv4 (IPV6_V6ONLY off).
    #[arg(long = "dual-stack")]
    pub dual_stack: bool,
    /// Print connections and bytes served on stderr (-vv: every datagram too).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// One JSON object per event on stdout (after the `listening` line).
    #[arg(long = "json")]
    pub json: bool,
    /// How TCP connections are served: `loop` (one epoll event loop per worker, the
    /// default) or `tasks` (one tokio task per connection), for comparing them.
    #[arg(long = "engine", value_name = "ENGINE", default_value = "loop", value_parser = ["loop", "tasks"])]
    pub engine: String,
}

/// `--idle-timeout SECS`: seconds up to 1e9 as connect and listen read them, but more
/// than 0 (an idle limit of 0 would close every connection at once); one message states
/// that range for every refusal.
fn parse_idle(text: &str) -> Result<Duration, String> {
    parse_secs_in(text, false, 1e9).map_err(|range| format!("{range} (leave it out for no limit)"))
}

fn invalid(message: impl Into<String>) -> anyhow::Error {
    Error::invalid_input("echo-server", message).into()
}

/// The IP address to bind, from the address words and -4/-6/-n.
fn ip_addr(args: &Args, socktype: SockType) -> anyhow::Result<SocketAddr> {
    let (host, port) = if args.addr.is_empty() {
        (None, Port::Number(DEFAULT_PORT))
    } else {
        let hp = sockit::addr::parse_host_port(&args.addr)?;
        (hp.host, hp.port)
    };
    let default_ip = if args.ipv6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    // Numeric host and port: no lookup at all.
    let numeric_host = match &host {
        None => Some(default_ip),
        Some(h) => h.parse::<IpAddr>().ok(),
    };
    if let (Some(ip), Port::Number(p)) = (numeric_host, &port)
        && !(h_has_scope(&host))
    {
        check_family(args, ip)?;
        return Ok(SocketAddr::new(ip, *p));
    }
    let family = if args.ipv4 {
        Some(Family::Inet)
    } else if args.ipv6 {
        Some(Family::Inet6)
    } else {
        None
    };
    let mut flags = sockit::resolve::AI_PASSIVE;
    if args.numeric {
        flags |= sockit::resolve::AI_NUMERICHOST;
    }
    let host = host.or_else(|| Some(default_ip.to_string()));
    let found = sockit::resolve::getaddrinfo(
        host.as_deref(),
        Some(&port),
        family,
        Some(socktype),
        0,
        flags,
    )?;
    crate::args::bind_choice(&found)
        .ok_or_else(|| Error::gai("getaddrinfo", libc::EAI_NONAME).into())
}

fn h_has_scope(host: &Option<String>) -> bool {
    host.as_deref().is_some_and(|h| h.contains('%'))
}

fn check_family(args: &Args, ip: IpAddr) -> anyhow::Result<()> {
    if args.ipv4 && ip.is_ipv6() {
        return Err(invalid(format!("-4 given but {ip} is an IPv6 address")));
    }
    if args.ipv6 && ip.is_ipv4() {
        return Err(invalid(format!("-6 given but {ip} is an IPv4 address")));
    }
    Ok(())
}

fn config(args: &Args) -> anyhow::Result<EchoConfig> {
    let listen = match &args.unix {
        Some(text) if args.udp => Listen::UnixDgram(UnixAddr::parse(text)?),
        Some(text) => Listen::UnixStream(UnixAddr::parse(text)?),
        None if args.udp && args.tcp => Listen::TcpUdp(ip_addr(args, SockType::Stream)?),
        None if args.udp => Listen::Udp(ip_addr(args, SockType::Dgram)?),
        None => Listen::Tcp(ip_addr(args, SockType::Stream)?),
    };
    if let Listen::Tcp(a) | Listen::Udp(a) | Listen::TcpUdp(a) = &listen
        && args.dual_stack
        && !(a.is_ipv6() && a.ip().is_unspecified())
    {
        return Err(invalid("--dual-stack needs the IPv6 wildcard address ::"));
    }
    let mut cfg = EchoConfig::new(listen);
    cfg.max_conns = args.max_conns;
    cfg.idle_timeout = args.idle_timeout;
    cfg.threads = args.threads;
    cfg.only_v6 = !args.dual_stack;
    cfg.datagram_events = args.verbose >= 2 || args.json;
    cfg.tcp_engine = if args.engine == "tasks" {
        TcpEngine::Tasks
    } else {
        TcpEngine::EventLoop
    };
    Ok(cfg)
}

/// Prints one event: a line on stderr with -v, a JSON object on stdout with --json.
fn print_event(ev: &Event, verbose: u8, json: bool) {
    let mut d = EventReport::of(ev);
    let line = d.line.take().filter(|_| verbose >= d.min_verbose);
    if json {
        let v = d.json();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    }
    if let Some(line) = line {
        stderr_line(format_args!("{line}"));
    }
}

/// One event's data, taken out of its variant once for both outputs: the JSON object's
/// `event` name, peer and other fields, and the `-v` line (shown from `min_verbose` on;
/// none for an event this version does not know).
struct EventReport<'a> {
    name: &'static str,
    peer: Option<&'a Peer>,
    fields: serde_json::Value,
    line: Option<String>,
    min_verbose: u8,
}

impl<'a> EventReport<'a> {
    fn of(ev: &'a Event) -> EventReport<'a> {
        use serde_json::json;
        let report = |name, transport: &sockit::echo::Transport, peer, mut fields, line| {
            if let serde_json::Value::Object(o) = &mut fields {
                o.insert("transport".into(), json!(transport.as_str()));
            }
            EventReport {
                name,
                peer,
                fields,
                line: Some(line),
                min_verbose: 1,
            }
        };
        match ev {
            Event::Accepted {
                transport,
                peer,
                open,
            } => report(
                "accepted",
                transport,
                Some(peer),
                json!({"open": open}),
                format!(
                    "accepted {} ({}, {open} open)",
                    PeerText(peer),
                    transport.as_str()
                ),
            ),
            Event::Closed {
                transport,
                peer,
                bytes_echoed,
                duration,
                reason,
            } => report(
                "closed",
                transport,
                Some(peer),
                json!({"bytes_echoed": bytes_echoed,
                       "duration_ms": duration.as_secs_f64() * 1e3,
                       "reason": reason_text(reason)}),
                format!(
                    "closed {} ({}): {bytes_echoed} bytes echoed in {:.3} s, {}",
                    PeerText(peer),
                    transport.as_str(),
                    duration.as_secs_f64(),
                    reason_text(reason)
                ),
            ),
            Event::Rejected {
                transport,
                peer,
                max_conns,
            } => report(
                "rejected",
                transport,
                Some(peer),
                json!({"max_conns": max_conns}),
                format!(
                    "rejected {} ({}): --max-conns {max_conns} reached, closed at once",
                    PeerText(peer),
                    transport.as_str()
                ),
            ),
            Event::AcceptPaused {
                transport,
                error,
                pause,
            } => report(
                "accept_paused",
                transport,
                None,
                json!({"kind": error.kind().as_str(), "code": error.code(),
                       "message": error.to_string(), "pause_ms": pause.as_millis() as u64}),
                format!(
                    "{error} ({}): accepting paused for {} ms",
                    transport.as_str(),
                    pause.as_millis()
                ),
            ),
            Event::Datagram {
                transport,
                peer,
                bytes,
            } => EventReport {
                min_verbose: 2,
                ..report(
                    "datagram",
                    transport,
                    Some(peer),
                    json!({"bytes": bytes}),
                    format!(
                        "echoed {bytes} bytes to {} ({})",
                        PeerText(peer),
                        transport.as_str()
                    ),
                )
            },
            Event::Dropped {
                transport,
                peer,
                bytes,
                reason,
            } => report(
                "dropped",
                transport,
                Some(peer),
                json!({"bytes": bytes, "reason": reason}),
                format!(
                    "dropped {bytes} bytes from {} ({}): {reason}",
                    PeerText(peer),
                    transport.as_str()
                ),
            ),
            other => EventReport {
                name: "other",
                peer: None,
                fields: json!({"debug": format!("{other:?}")}),
                line: None,
                min_verbose: 1,
            },
        }
    }

    /// The `--json` object: `event`, the fields, and the peer's fields ([`peer_json`]).
    fn json(self) -> serde_json::Value {
        let mut v = self.fields;
        if let serde_json::Value::Object(o) = &mut v {
            o.insert("event".into(), self.name.into());
            if let Some(serde_json::Value::Object(p)) = self.peer.map(peer_json) {
                o.extend(p);
            }
        }
        v
    }
}

fn reason_text(r: &CloseReason) -> String {
    match r {
        CloseReason::Eof => "client closed".into(),
        CloseReason::Idle => "idle timeout".into(),
        CloseReason::Stopped => "server stopped".into(),
        CloseReason::Error(e) => e.to_string(),
    }
}

/// A peer as listen prints it: `HOST PORT` (numeric), `unix PATH`, `unix @name` or
/// `unix (unnamed)`.
struct PeerText<'a>(&'a Peer);

impl std::fmt::Display for PeerText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Peer::Ip(a) => write!(f, "{} {}", sockit::addr::host_text(a), a.port()),
            Peer::Unix(Some(u)) => write!(f, "unix {u}"),
            Peer::Unix(None) => f.write_str("unix (unnamed)"),
        }
    }
}

/// A peer's JSON fields, as listen writes them: `peer_host` and `peer_port`, or
/// `peer_path` (null for an unnamed Unix socket).
fn peer_json(peer: &Peer) -> serde_json::Value {
    use serde_json::json;
    match peer {
        Peer::Ip(a) => json!({"peer_host": sockit::addr::host_text(a), "peer_port": a.port()}),
        Peer::Unix(Some(u)) => json!({"peer_path": u.to_string()}),
        Peer::Unix(None) => json!({"peer_path": null}),
    }
}

fn print_listening(bound: &[Bound]) -> anyhow::Result<()> {
    let both = bound.len() > 1;
    for b in bound {
        match b {
            Bound::Ip(t, a) => {
                crate::output::print_listening(a, both.then_some(t.as_str()))?;
            }
            Bound::Unix(_, a) => crate::output::print_listening_unix(&a.to_string())?,
        }
    }
    Ok(())
}

/// `1 connection`, `2 connections`.
fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn print_totals(stats: &EchoStats, signal: &str, verbose: u8, json: bool) {
    if json {
        let v = serde_json::json!({"event": "stopped", "signal": signal,
            "connections": stats.connections, "rejected": stats.rejected,
            "stream_bytes": stats.stream_bytes, "datagrams": stats.datagrams,
            "datagram_bytes": stats.datagram_bytes, "dropped": stats.dropped});
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    }
    if verbose > 0 {
        stderr_line(format_args!(
            "stopped by {signal}: served {} ({} bytes), {} ({} bytes); {} rejected, {} dropped",
            plural(stats.connections, "connection"),
            stats.stream_bytes,
            plural(stats.datagrams, "datagram"),
            stats.datagram_bytes,
            stats.rejected,
            stats.dropped
        ));
    }
}

/// Runs `sockit echo-server`. With `--json`, an error that ends it is also one JSON object
/// on stdout (`{"event":"error","kind":…,"code":…,"message":…,"op":…}`), after the events.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let json = args.json;
    serve(args).inspect_err(|err| {
        if json && !crate::exit::is_broken_pipe(err) {
            let mut obj = crate::output::json_error(err);
            obj["event"] = "error".into();
            obj["op"] = crate::exit::sockit_error(err).map(|e| e.op()).into();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{obj}");
            let _ = out.flush();
        }
    })
}

fn serve(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = config(&args)?;
    let where_ = match &cfg.listen {
        Listen::Tcp(a) | Listen::Udp(a) | Listen::TcpUdp(a) => a.to_string(),
        Listen::UnixStream(u) | Listen::UnixDgram(u) => u.to_string(),
    };
    // The library's text stays Python's; the CLI names the address it tried:
    // `echo-server: bind 127.0.0.1:7000: [Errno 98] Address already in use`.
    let bind_error = |e: Error| -> anyhow::Error {
        anyhow::Error::new(crate::args::name_bind_error(e, &where_)).context("echo-server")
    };
    // Signals are registered before the `listening` line, so a SIGTERM sent as soon as
    // the line is read already stops the server cleanly.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("echo-server: runtime")?;
    let (mut term, mut int, mut hup) = {
        let _guard = rt.enter();
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).context("echo-server: SIGTERM handler")?,
            signal(SignalKind::interrupt()).context("echo-server: SIGINT handler")?,
            signal(SignalKind::hangup()).context("echo-server: SIGHUP handler")?,
        )
    };
    let server = EchoServer::bind(cfg).map_err(bind_error)?;
    print_listening(server.bound())?;
    let (verbose, json) = (args.verbose, args.json);
    let events: Option<sockit::echo::EventFn> = if verbose > 0 || json {
        Some(Arc::new(move |ev: Event| print_event(&ev, verbose, json)))
    } else {
        None
    };
    let handle = server.start(events)?;
    let (signal, code) = rt.block_on(async {
        tokio::select! {
            _ = term.recv() => ("SIGTERM", ExitCode::SUCCESS),
            _ = int.recv() => ("SIGINT", ExitCode::from(130)),
            // the terminal went away: stop as for SIGINT (and remove a Unix socket file)
            _ = hup.recv() => ("SIGHUP", ExitCode::from(129)),
        }
    });
    handle.stop();
    let stats = handle.join()?;
    print_totals(&stats, signal, verbose, json);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockit::echo::Transport;

    /// The `--json` text and the `-v` line (with its level) of an event.
    fn outputs(ev: &Event) -> (String, Option<(u8, String)>) {
        let mut d = EventReport::of(ev);
        let line = d.line.take().map(|l| (d.min_verbose, l));
        (d.json().to_string(), line)
    }

    #[test]
    fn each_event_prints_as_before() {
        // Pins the output of the one-match EventReport to what the two matches printed.
        let peer = Peer::Ip("127.0.0.1:4000".parse().expect("addr"));
        let v6 = Peer::Ip("[::1]:4001".parse().expect("addr"));
        let cases = [
            (
                Event::Accepted {
                    transport: Transport::Tcp,
                    peer: peer.clone(),
                    open: 2,
                },
                r#"{"event":"accepted","open":2,"peer_host":"127.0.0.1","peer_port":4000,"transport":"tcp"}"#,
                Some((1, "accepted 127.0.0.1 4000 (tcp, 2 open)")),
            ),
            (
                Event::Closed {
                    transport: Transport::Tcp,
                    peer: v6.clone(),
                    bytes_echoed: 12,
                    duration: Duration::from_millis(1500),
                    reason: CloseReason::Eof,
                },
                r#"{"bytes_echoed":12,"duration_ms":1500.0,"event":"closed","peer_host":"::1","peer_port":4001,"reason":"client closed","transport":"tcp"}"#,
                Some((
                    1,
                    "closed ::1 4001 (tcp): 12 bytes echoed in 1.500 s, client closed",
                )),
            ),
            (
                Event::Rejected {
                    transport: Transport::Tcp,
                    peer: peer.clone(),
                    max_conns: 5,
                },
                r#"{"event":"rejected","max_conns":5,"peer_host":"127.0.0.1","peer_port":4000,"transport":"tcp"}"#,
                Some((
                    1,
                    "rejected 127.0.0.1 4000 (tcp): --max-conns 5 reached, closed at once",
                )),
            ),
            (
                Event::AcceptPaused {
                    transport: Transport::Tcp,
                    error: Error::from_errno("accept", libc::EMFILE),
                    pause: Duration::from_millis(100),
                },
                r#"{"code":24,"event":"accept_paused","kind":"os","message":"accept: [Errno 24] Too many open files","pause_ms":100,"transport":"tcp"}"#,
                Some((
                    1,
                    "accept: [Errno 24] Too many open files (tcp): accepting paused for 100 ms",
                )),
            ),
            (
                Event::Datagram {
                    transport: Transport::Udp,
                    peer: peer.clone(),
                    bytes: 7,
                },
                r#"{"bytes":7,"event":"datagram","peer_host":"127.0.0.1","peer_port":4000,"transport":"udp"}"#,
                Some((2, "echoed 7 bytes to 127.0.0.1 4000 (udp)")),
            ),
            (
                Event::Dropped {
                    transport: Transport::UnixDgram,
                    peer: Peer::Unix(None),
                    bytes: 3,
                    reason: "unbound sender".to_string(),
                },
                r#"{"bytes":3,"event":"dropped","peer_path":null,"reason":"unbound sender","transport":"unixgram"}"#,
                Some((
                    1,
                    "dropped 3 bytes from unix (unnamed) (unixgram): unbound sender",
                )),
            ),
        ];
        for (ev, json, line) in cases {
            let (got_json, got_line) = outputs(&ev);
            assert_eq!(got_json, json);
            assert_eq!(
                got_line.as_ref().map(|(v, l)| (*v, l.as_str())),
                line,
                "{ev:?}"
            );
        }
    }
}
