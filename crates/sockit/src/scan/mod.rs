//! Port scanning: which ports of which hosts accept a TCP connection or answer a UDP
//! datagram.
//!
//! [`parse_ports`] reads port lists (`22`, `20-25`, `22,80,8000-8010`, `http`);
//! [`targets::parse_range`] reads address ranges (`127.0.0.0/29`, `fd00::/120`);
//! [`scan`] probes every port of every host, at most `parallel` probes in flight, each
//! bounded by its own timeout, and hands each [`PortResult`] to a callback as it completes.
//!
//! - TCP: a `connect(2)`; success is [`PortState::Open`], `ECONNREFUSED`
//!   [`PortState::Closed`], no answer within the timeout (or an ICMP unreachable other than
//!   "port unreachable") [`PortState::Filtered`]. The connects run on io_uring where the
//!   kernel allows it (one ring per core, every connect of a turn in one
//!   `io_uring_enter(2)`), else on epoll (tokio, one worker per core): see [`Engine`].
//!   A probe socket whose port refused connects again for the next port, so a closed port
//!   costs one `connect` and no socket of its own. A port of this machine that is the
//!   source port of one of the scan's probes is [`PortState::Closed`] without a probe: a
//!   probe there could only reach the scan's own sockets (itself, or another probe that
//!   probes back), never a listener.
//! - UDP ([`probe_udp`]): a connected UDP socket sends one empty datagram; an answer is
//!   [`PortState::Open`], an ICMP port unreachable (reported by the kernel as
//!   `ECONNREFUSED` on the connected socket) [`PortState::Closed`], silence
//!   [`PortState::OpenFiltered`] (a UDP service need not answer an empty datagram); a
//!   socket connected to itself, or answered from the source port of another probe of the
//!   same scan, is [`PortState::Closed`].
//!
//! Contract: every probe ends within its timeout; errors that are about this machine rather
//! than the port (`EADDRNOTAVAIL` for a bad source address) end the scan with that error
//! instead of being reported as a port state. Running out of file descriptors (`EMFILE`,
//! `ENFILE`: `--parallel` above `ulimit -n`) lowers the parallelism to the probes that did
//! get a socket and retries the port later; only a probe that gets none while no other is
//! in flight ends the scan.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::addr::Port;
use crate::error::{Error, ErrorKind, Result};

pub mod targets;
mod tcp;
mod udp;
#[cfg(target_os = "linux")]
mod uring;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP: a connect per port.
    Tcp,
    /// UDP: an empty datagram per port.
    Udp,
}

impl Transport {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// What a probe learned about a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortState {
    /// TCP: the connect succeeded. UDP: a datagram came back.
    Open,
    /// TCP: refused (RST). UDP: ICMP port unreachable.
    Closed,
    /// TCP: no answer within the timeout, or ICMP host/network unreachable.
    Filtered,
    /// UDP: no answer within the timeout (open and silent, or dropped on the way).
    OpenFiltered,
}

impl PortState {
    /// `open`, `closed`, `filtered` or `open|filtered` (nmap's words).
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::OpenFiltered => "open|filtered",
        }
    }
}

impl std::fmt::Display for PortState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of probing one port of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortResult {
    /// The host probed.
    pub host: IpAddr,
    /// The port probed.
    pub port: u16,
    /// What the probe learned.
    pub state: PortState,
    /// Time from the probe's start to its answer (or to the timeout).
    pub elapsed: Duration,
    /// Why the port is not open, when the system said why (`connect: [Errno 111] …`,
    /// `connect: timed out`).
    pub reason: Option<Error>,
}

impl PortResult {
    /// One snake_case word for why the port is not open, `None` when it is: `refused`
    /// (RST, or ICMP port unreachable for UDP), `reset`, `timeout` (no answer in time),
    /// `own_probe` (the answer could only come from the scan's own probes), `unreachable`
    /// (ICMP host or network unreachable, no route), `error` (another errno).
    pub fn reason_word(&self) -> Option<&'static str> {
        let e = self.reason.as_ref()?;
        Some(match (e.kind(), e.code()) {
            (ErrorKind::Timeout, _) => "timeout",
            (_, Some(libc::ECONNREFUSED)) => "refused",
            (_, Some(libc::ECONNRESET)) => "reset",
            (_, Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN)) => "unreachable",
            (ErrorKind::Os, None) => "own_probe",
            _ => "error",
        })
    }
}

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// TCP or UDP.
    pub transport: Transport,
    /// At most this many probes in flight (at least 1).
    pub parallel: usize,
    /// Time each probe may take.
    pub timeout: Duration,
    /// Source address (and port, when not 0) to bind each probe's socket to.
    pub source: Option<SocketAddr>,
    /// TCP: run the connects on io_uring when the kernel allows it (true, the default);
    /// false runs them on epoll.
    pub io_uring: bool,
    /// Worker threads for TCP (0: one per core, `available_parallelism`).
    pub threads: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            transport: Transport::Tcp,
            parallel: 64,
            timeout: Duration::from_secs(2),
            source: None,
            io_uring: true,
            threads: 0,
        }
    }
}

/// What ran the connects of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// io_uring (Linux 5.11+): `IORING_OP_CONNECT`, a ring per worker thread.
    IoUring,
    /// epoll through tokio: non-blocking `connect(2)` calls (every UDP scan, and TCP where
    /// io_uring is refused or not asked for).
    Epoll,
}

impl Engine {
    /// `io_uring` or `epoll`.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::IoUring => "io_uring",
            Engine::Epoll => "epoll",
        }
    }
}

/// What a finished scan tells besides the port results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanSummary {
    /// The parallelism at the end: `opts.parallel`, or less when sockets ran out
    /// (`EMFILE`/`ENFILE`) and the scan went on with fewer probes in flight.
    pub parallel: usize,
    /// Probes that could not get a socket (`EMFILE`/`ENFILE`) and were tried again.
    pub retried: usize,
    /// What ran the connects.
    pub engine: Engine,
    /// Worker threads that made the probes.
    pub threads: usize,
    /// Why io_uring was not used although asked for (`io_uring_setup: [Errno 1] …`).
    pub io_uring_refused: Option<Error>,
}

/// Parses a port list: comma-separated numbers (`22`), ranges (`20-25`) and service names
/// (`http`, `http-alt`), in the order given, without repeats.
///
/// Service names are looked up in the services database for `transport`
/// ([`service_port`]).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for an empty list or item, a number outside 1..=65535 (port
/// 0 cannot be probed), a range whose start is above its end, a malformed range (`7101-`,
/// `1--2`, `-`: `ports: malformed port range "7101-" (write START-END, ports 1-65535)`),
/// or an unknown service name
/// (`ports: unknown service "nosuch" for tcp (getservbyname: service/proto not found)`).
///
/// # Examples
/// ```
/// use sockit::scan::{parse_ports, Transport};
/// assert_eq!(parse_ports("22,80,8000-8002,80", Transport::Tcp).unwrap(),
///            vec![22, 80, 8000, 8001, 8002]);
/// assert!(parse_ports("25-20", Transport::Tcp).is_err());
/// ```
pub fn parse_ports(text: &str, transport: Transport) -> Result<Vec<u16>> {
    const OP: &str = "ports";
    let mut seen = vec![false; 65536];
    let mut out = Vec::new();
    let mut push = |p: u16, out: &mut Vec<u16>| {
        if !seen[p as usize] {
            seen[p as usize] = true;
            out.push(p);
        }
    };
    if text.trim().is_empty() {
        return Err(Error::invalid_input(OP, "empty port list"));
    }
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(Error::invalid_input(
                OP,
                format!("empty item in port list {text:?}"),
            ));
        }
        let number = |s: &str| -> Result<u16> {
            match s.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
                _ => Err(Error::invalid_input(
                    OP,
                    format!("port must be 1-65535, not {s}"),
                )),
            }
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if digits(item) {
            push(number(item)?, &mut out);
        } else if let Some((a, b)) = item.split_once('-')
            && digits(a)
            && digits(b)
        {
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(Error::invalid_input(
                    OP,
                    format!("range {item} runs backwards"),
                ));
            }
            for p in a..=b {
                push(p, &mut out);
            }
        } else if item.contains('-') && item.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            // `7101-`, `-5`, `1--2`, `-`: a range gone wrong, not a service name.
            return Err(Error::invalid_input(
                OP,
                format!("malformed port range {item:?} (write START-END, ports 1-65535)"),
            ));
        } else {
            // An unknown name is bad input in the list (exit 2), not a closed port.
            let port = service_port(item, transport).map_err(|e| {
                if e.kind() == ErrorKind::Os {
                    Error::invalid_input(
                        OP,
                        format!("unknown service {item:?} for {} ({e})", transport.as_str()),
                    )
                } else {
                    Error::invalid_input(OP, e.message().to_string())
                }
            })?;
            push(port, &mut out);
        }
    }
    Ok(out)
}

/// The port of a service name for a transport (`http` → 80); digits are the number itself.
///
/// Python: `socket.getservbyname(name, proto)`, through [`crate::resolve::getservbyname`]
/// (the system services database, else the embedded table); no DNS query is ever sent.
///
/// # Errors
/// [`ErrorKind::Os`] without a code (`service/proto not found`) for an unknown name;
/// [`ErrorKind::InvalidInput`] for text that cannot be a service name.
pub fn service_port(name: &str, transport: Transport) -> Result<u16> {
    match Port::parse(name)? {
        Port::Number(n) => Ok(n),
        Port::Service(s) => crate::resolve::getservbyname(&s, Some(transport.as_str())),
    }
}

/// True for errors that are about this machine, not the port probed.
fn is_local_error(e: &Error) -> bool {
    e.kind() == ErrorKind::InvalidInput
        || [
            libc::EADDRNOTAVAIL,
            libc::EADDRINUSE,
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EAFNOSUPPORT,
            libc::EINVAL,
        ]
        .iter()
        .any(|&errno| e.is_errno(errno))
}

/// The error that says a probe's socket is connected to itself (`getsockname(2)` equal to
/// `getpeername(2)`), or `None` for a real peer.
///
/// A probe of a port in the ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`)
/// can be given that very port as its source: TCP then completes a "simultaneous open"
/// with itself and UDP receives its own datagram, which would report a port where nothing
/// listens as open. The kernel hands out as source only a port where nothing is bound, so
/// such a port is closed (`nc -z` has no such check and reports it open).
fn self_connected(local: Option<SocketAddr>, peer: Option<SocketAddr>) -> Option<Error> {
    match (local, peer) {
        (Some(l), Some(p)) if l == p => Some(Error::new(
            ErrorKind::Os,
            "connect",
            None,
            format!(
                "connected to itself ({l} is both ends: the source port is the port probed; nothing listens)"
            ),
        )),
        _ => None,
    }
}

fn bind_source(sock: &socket2::Socket, source: Option<SocketAddr>) -> Result<()> {
    if let Some(src) = source {
        if src.port() != 0 {
            sock.set_reuse_address(true)
                .map_err(|e| Error::from_io("setsockopt(SO_REUSEADDR)", e))?;
        }
        sock.bind(&src.into())
            .map_err(|e| Error::from_io("bind", e))?;
    }
    Ok(())
}

/// Probes one TCP port: a non-blocking `connect(2)` bounded by `timeout`. A socket
/// connected to itself (its source port is the port probed) is [`PortState::Closed`].
///
/// # Errors
/// Only errors about this machine (socket creation, binding `source`, `EADDRNOTAVAIL`,
/// `EMFILE`); everything the target answers is a [`PortResult`].
pub async fn probe_tcp(
    addr: SocketAddr,
    timeout: Duration,
    source: Option<SocketAddr>,
) -> Result<PortResult> {
    let start = Instant::now();
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM.nonblocking().cloexec(),
        Some(socket2::Protocol::TCP),
    )
    .map_err(|e| Error::from_io("socket", e))?;
    bind_source(&sock, source)?;
    let started = match sock.connect(&addr.into()) {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        other => other,
    };
    let outcome = match started {
        Err(e) => Ok(Err(e)),
        Ok(()) => {
            let stream = tokio::net::TcpStream::from_std(sock.into())
                .map_err(|e| Error::from_io("socket", e))?;
            tokio::time::timeout(timeout, async {
                stream.writable().await?;
                if let Some(e) = stream.take_error()? {
                    return Err(e);
                }
                // Writable without an error but not connected: ENOTCONN, as tokio checks.
                stream.peer_addr()?;
                Ok(stream)
            })
            .await
        }
    };
    let (state, reason) = match outcome {
        Ok(Ok(stream)) => match self_connected(stream.local_addr().ok(), stream.peer_addr().ok()) {
            Some(err) => (PortState::Closed, Some(err)),
            None => (PortState::Open, None),
        },
        Ok(Err(e)) => match tcp::outcome(e.raw_os_error().unwrap_or(libc::EIO)) {
            tcp::Outcome::Open => (PortState::Open, None),
            tcp::Outcome::Refused(err) => (PortState::Closed, Some(err)),
            tcp::Outcome::Port(state, err) => (state, Some(err)),
            tcp::Outcome::Local(err) => return Err(err),
        },
        Err(_) => (PortState::Filtered, Some(Error::timeout("connect"))),
    };
    Ok(PortResult {
        host: addr.ip(),
        port: addr.port(),
        state,
        elapsed: start.elapsed(),
        reason,
    })
}

/// Probes one UDP port: one empty datagram on a connected socket, then waits up to
/// `timeout` for an answer or the ICMP error.
///
/// # Errors
/// Only errors about this machine, as for [`probe_tcp`].
pub async fn probe_udp(
    addr: SocketAddr,
    timeout: Duration,
    source: Option<SocketAddr>,
) -> Result<PortResult> {
    udp::probe(addr, timeout, source, None).await
}

/// Probes `ports` of every host in `hosts` (host by host, ports in the order given),
/// at most `opts.parallel` probes in flight, calling `each` with every result as it
/// completes (not in order). Blocks until the scan is done; it runs its own threads (and
/// tokio runtime for epoll), so call it outside an async runtime (or in
/// `spawn_blocking`).
///
/// TCP runs on one worker thread per core (`opts.threads`), on io_uring when
/// `opts.io_uring` and the kernel allows it, else on epoll; [`ScanSummary`] says which,
/// and why io_uring was refused. UDP runs on one thread.
///
/// When a probe cannot get a socket (`socket(2)` fails with `EMFILE`/`ENFILE`: more probes
/// than the open-file limit, `RLIMIT_NOFILE`), the parallelism drops to the probes still in
/// flight and the port is probed again later; [`ScanSummary`] says so.
///
/// Python has no counterpart; `nc -z HOST PORTS` and `nmap -sT` are the command-line ones.
///
/// # Errors
/// - [`ErrorKind::InvalidInput`] for `parallel` 0, no host or port, more probes than
///   [`targets::MAX_PROBES`], or a source address of another family than a host.
/// - The first error about this machine a probe met (see [`probe_tcp`]), and `EMFILE`/
///   `ENFILE` when no other probe is in flight; the probes still in flight are abandoned.
pub fn scan(
    hosts: &[IpAddr],
    ports: &[u16],
    opts: &ScanOptions,
    mut each: impl FnMut(PortResult),
) -> Result<ScanSummary> {
    if opts.parallel == 0 {
        return Err(Error::invalid_input("scan", "parallel must be at least 1"));
    }
    targets::check_size(hosts.len(), ports.len())?;
    if let Some(src) = opts.source
        && let Some(ip) = hosts.iter().find(|ip| ip.is_ipv4() != src.is_ipv4())
    {
        return Err(Error::invalid_input(
            "bind",
            format!("source address {} is not of the family of {ip}", src.ip()),
        ));
    }
    // An IPv4-mapped IPv6 address is scanned as the IPv4 address it is.
    let hosts: Vec<IpAddr> = hosts.iter().map(IpAddr::to_canonical).collect();
    let total = hosts.len() * ports.len();
    let plan = Arc::new(tcp::Plan::new(
        &hosts,
        ports.to_vec(),
        opts.clone(),
        opts.parallel,
    ));
    if opts.transport == Transport::Udp {
        let (parallel, retried) = udp::run(&plan, &mut each)?;
        return Ok(ScanSummary {
            parallel,
            retried,
            engine: Engine::Epoll,
            threads: 1,
            io_uring_refused: None,
        });
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = match opts.threads {
        0 => cores,
        n => n,
    }
    .min(opts.parallel)
    .min(total.div_ceil(64))
    .max(1);
    let (engine, io_uring_refused) = choose_engine(opts.io_uring);
    let (tx, rx) = std::sync::mpsc::channel::<Vec<PortResult>>();
    std::thread::scope(|s| {
        let plan = &plan;
        let runner = move || match engine {
            #[cfg(target_os = "linux")]
            Engine::IoUring => {
                let slots: Vec<usize> = (0..threads)
                    .map(|i| opts.parallel / threads + usize::from(i < opts.parallel % threads))
                    .collect();
                uring::run(plan, &slots, &tx);
            }
            _ => {
                if let Err(e) = tcp::run_epoll(plan, threads, opts.parallel, tx) {
                    plan.fail(e);
                }
            }
        };
        std::thread::Builder::new()
            .name("sockit-scan".into())
            .spawn_scoped(s, runner)
            .map_err(|e| plan.fail(Error::from_io("scan: thread", e)))
            .ok();
        for batch in rx {
            batch.into_iter().for_each(&mut each);
        }
    });
    if let Some(e) = plan.take_error() {
        return Err(e);
    }
    Ok(ScanSummary {
        parallel: plan.alive(),
        retried: plan.retried.load(std::sync::atomic::Ordering::Relaxed),
        engine,
        threads,
        io_uring_refused,
    })
}

/// io_uring when asked for and this kernel lets this process have it, else epoll and why.
fn choose_engine(io_uring: bool) -> (Engine, Option<Error>) {
    if !io_uring {
        return (Engine::Epoll, None);
    }
    #[cfg(target_os = "linux")]
    {
        match uring::available() {
            Ok(()) => (Engine::IoUring, None),
            Err(e) => (Engine::Epoll, Some(e)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        (
            Engine::Epoll,
            Some(Error::new(ErrorKind::Os, "io_uring", None, "Linux only")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists() {
        let t = Transport::Tcp;
        assert_eq!(parse_ports("22", t).unwrap(), vec![22]);
        assert_eq!(
            parse_ports("20-25", t).unwrap(),
            vec![20, 21, 22, 23, 24, 25]
        );
        assert_eq!(
            parse_ports("22,80,8000-8002", t).unwrap(),
            vec![22, 80, 8000, 8001, 8002]
        );
        assert_eq!(parse_ports(" 5 , 3-4,5", t).unwrap(), vec![5, 3, 4]);
        assert_eq!(parse_ports("65535", t).unwrap(), vec![65535]);
        assert_eq!(parse_ports("1-65535", t).unwrap().len(), 65535);
        for bad in [
            "",
            "0",
            "65536",
            "1,,2",
            "9-3",
            "-",
            "1-",
            "70000-70001",
            "a b",
        ] {
            let e = parse_ports(bad, t).unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Os),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn malformed_ranges_name_the_range_and_the_real_bounds() {
        // Regression: `7101-` and `1--2` were "unknown service", `-` "port must be
        // 0-65535" (scan's ports are 1-65535).
        for bad in ["7101-", "1--2", "-", "-5", "1-2-3", "80,--"] {
            let e = parse_ports(bad, Transport::Tcp).unwrap_err();
            let text = e.to_string();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {text}");
            assert!(
                text.starts_with("ports: malformed port range"),
                "{bad}: {text}"
            );
            assert!(
                text.contains("1-65535") && !text.contains("0-65535"),
                "{bad}: {text}"
            );
            assert!(!text.contains("service"), "{bad}: {text}");
        }
        let e = parse_ports("a b", Transport::Tcp).unwrap_err();
        assert!(e.to_string().starts_with("ports: "), "{e}");
    }

    #[test]
    fn service_names_from_the_database() {
        // /etc/services on Debian names these; skip where the database is missing.
        assert_eq!(
            parse_ports("http,ssh", Transport::Tcp).unwrap(),
            vec![80, 22]
        );
        assert_eq!(parse_ports("domain", Transport::Udp).unwrap(), vec![53]);
        // Regression: an unknown service was an Os error (exit 1, like a closed port).
        let e = parse_ports("no-such-service", Transport::Tcp).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("\"no-such-service\""), "{e}");
    }

    #[test]
    fn open_and_closed_tcp_ports_on_both_engines() {
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (_holder, closed) = crate::test_support::closed_port();
        let ports = [open.local_addr().unwrap().port(), closed.port()];
        for io_uring in [true, false] {
            let mut got = Vec::new();
            let summary = scan(
                &["127.0.0.1".parse().unwrap()],
                &ports,
                &ScanOptions {
                    timeout: Duration::from_secs(3),
                    io_uring,
                    ..Default::default()
                },
                |r| got.push((r.host, r.port, r.state, r.reason_word())),
            )
            .unwrap();
            got.sort();
            let host: IpAddr = "127.0.0.1".parse().unwrap();
            let mut want = vec![
                (host, ports[0], PortState::Open, None),
                (host, ports[1], PortState::Closed, Some("refused")),
            ];
            want.sort();
            assert_eq!(got, want, "io_uring {io_uring}: {summary:?}");
            if !io_uring {
                assert_eq!(summary.engine, Engine::Epoll);
            } else if summary.engine == Engine::Epoll {
                eprintln!("io_uring refused here: {:?}", summary.io_uring_refused);
            }
        }
    }

    #[test]
    fn several_hosts() {
        // A listener on 127.0.0.1 only: 127.0.0.2 refuses the same port.
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = open.local_addr().unwrap().port();
        let hosts: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
        for io_uring in [true, false] {
            let mut got = Vec::new();
            scan(
                &hosts,
                &[port],
                &ScanOptions {
                    timeout: Duration::from_secs(3),
                    io_uring,
                    ..Default::default()
                },
                |r| got.push((r.host, r.state)),
            )
            .unwrap();
            got.sort();
            assert_eq!(
                got,
                vec![(hosts[0], PortState::Open), (hosts[1], PortState::Closed)],
                "io_uring {io_uring}"
            );
        }
    }

    #[test]
    fn an_unanswered_connect_is_filtered_in_time_on_both_engines() {
        // A listener with backlog 0 that holds one queued connection drops further SYNs:
        // the connect stays pending until the probe's timeout (io_uring: a cancel).
        let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        l.listen(0).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        let queued = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
        for io_uring in [true, false] {
            let t = Instant::now();
            let mut got = Vec::new();
            scan(
                &[addr.ip()],
                &[addr.port()],
                &ScanOptions {
                    timeout: Duration::from_millis(300),
                    io_uring,
                    ..Default::default()
                },
                |r| got.push((r.state, r.reason_word())),
            )
            .unwrap();
            let took = t.elapsed();
            assert_eq!(
                got,
                vec![(PortState::Filtered, Some("timeout"))],
                "io_uring {io_uring}"
            );
            assert!(
                took >= Duration::from_millis(300) && took < Duration::from_secs(3),
                "io_uring {io_uring}: {took:?}"
            );
        }
        drop(queued);
    }

    #[test]
    fn a_source_port_of_the_scan_is_closed_without_a_probe() {
        // Regression: a probe bound to port X probing X connected to itself (TCP
        // simultaneous open) and was reported open. `-p X` forces the case; the port is
        // closed on either engine, and the reason says why.
        let p = unbound_port(false);
        let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), p);
        for io_uring in [true, false] {
            let mut got = Vec::new();
            scan(
                &[addr.ip()],
                &[p],
                &ScanOptions {
                    source: Some(addr),
                    io_uring,
                    ..Default::default()
                },
                |r| got.push(r),
            )
            .unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].state, PortState::Closed, "{got:?}");
            assert_eq!(got[0].reason_word(), Some("own_probe"), "{got:?}");
        }
    }

    #[test]
    fn udp_answer_and_unreachable() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            if let Ok((_, peer)) = server.recv_from(&mut buf) {
                let _ = server.send_to(b"x", peer);
            }
        });
        let closed = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let addr = |p| SocketAddr::new("127.0.0.1".parse().unwrap(), p);
        let r = rt
            .block_on(probe_udp(addr(port), Duration::from_secs(3), None))
            .unwrap();
        assert_eq!(r.state, PortState::Open);
        let r = rt
            .block_on(probe_udp(addr(closed), Duration::from_secs(3), None))
            .unwrap();
        assert_eq!(r.state, PortState::Closed);
        t.join().unwrap();
    }

    /// A port where nothing is bound, released again (tiny race with other tests).
    fn unbound_port(udp: bool) -> u16 {
        if udp {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        } else {
            let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        }
    }

    #[test]
    fn self_connected_compares_both_ends() {
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let e = self_connected(Some(a), Some(a)).expect("same ends");
        assert!(e.to_string().contains("connected to itself"), "{e}");
        assert!(self_connected(Some(a), Some(b)).is_none());
        assert!(self_connected(None, Some(a)).is_none());
    }

    #[test]
    fn a_probe_connected_to_itself_is_closed_not_open() {
        // Regression: a probe whose source port equals the port probed (as an ephemeral
        // source port sometimes does) connected to itself and was reported open. Binding
        // the source port forces the case.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let addr = |p| SocketAddr::new("127.0.0.1".parse().unwrap(), p);
        let p = unbound_port(false);
        let r = rt
            .block_on(probe_tcp(addr(p), Duration::from_secs(3), Some(addr(p))))
            .unwrap();
        assert_eq!(r.state, PortState::Closed, "{r:?}");
        let p = unbound_port(true);
        let r = rt
            .block_on(probe_udp(addr(p), Duration::from_secs(3), Some(addr(p))))
            .unwrap();
        assert_eq!(r.state, PortState::Closed, "{r:?}");
        assert!(r.elapsed < Duration::from_secs(1), "{r:?}");
    }

    #[test]
    fn bad_source_address_ends_the_scan() {
        // 192.0.2.1 (TEST-NET-1) is not an address of this machine: bind fails locally.
        for io_uring in [true, false] {
            let e = scan(
                &["127.0.0.1".parse().unwrap()],
                &[1, 2],
                &ScanOptions {
                    source: Some("192.0.2.1:0".parse().unwrap()),
                    io_uring,
                    ..Default::default()
                },
                |_| {},
            )
            .unwrap_err();
            assert!(e.is_errno(libc::EADDRNOTAVAIL), "{e}");
        }
        let e = scan(
            &["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
            &[1],
            &ScanOptions {
                source: Some("127.0.0.1:0".parse().unwrap()),
                ..Default::default()
            },
            |_| {},
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
}
