//! Port scanning: which ports of a host accept a TCP connection or answer a UDP datagram.
//!
//! [`parse_ports`] reads port lists (`22`, `20-25`, `22,80,8000-8010`, `http`);
//! [`scan`] probes them concurrently (at most `parallel` probes in flight, each bounded by
//! its own timeout) and hands each [`PortResult`] to a callback as it completes.
//!
//! - TCP ([`probe_tcp`]): a non-blocking `connect(2)`; success is [`PortState::Open`]
//!   (but a socket connected to itself, its source port being the port probed, is
//!   [`PortState::Closed`]),
//!   `ECONNREFUSED` [`PortState::Closed`], no answer within the timeout (or an ICMP
//!   unreachable other than "port unreachable") [`PortState::Filtered`].
//! - UDP ([`probe_udp`]): a connected UDP socket sends one empty datagram; an answer is
//!   [`PortState::Open`], an ICMP port unreachable (reported by the kernel as
//!   `ECONNREFUSED` on the connected socket) [`PortState::Closed`], silence
//!   [`PortState::OpenFiltered`] (a UDP service need not answer an empty datagram); a
//!   socket connected to itself is [`PortState::Closed`], not sent from.
//! - Two probes of one scan can cross (one bound to port X probing Y, another bound to Y
//!   probing X) and answer each other; [`scan`] keeps the source ports of its probes and
//!   reports a port answered from one of them [`PortState::Closed`].
//!
//! Contract: every probe ends within its timeout; errors that are about this machine rather
//! than the port (`EADDRNOTAVAIL` for a bad source address) end the scan with that error
//! instead of being reported as a port state. Running out of file descriptors (`EMFILE`,
//! `ENFILE`: `--parallel` above `ulimit -n`) lowers the parallelism to the probes that did
//! get a socket and retries the port later; only a probe that gets none while no other is
//! in flight ends the scan.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::addr::Port;
use crate::error::{Error, ErrorKind, Result};

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

/// The result of probing one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortResult {
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
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            transport: Transport::Tcp,
            parallel: 64,
            timeout: Duration::from_secs(2),
            source: None,
        }
    }
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

/// A non-blocking socket of `ty`/`proto` for `addr`'s family, bound to `source` if given.
fn probe_socket(
    addr: SocketAddr,
    ty: socket2::Type,
    proto: socket2::Protocol,
    source: Option<SocketAddr>,
) -> Result<socket2::Socket> {
    let domain = socket2::Domain::for_address(addr);
    let sock =
        socket2::Socket::new(domain, ty, Some(proto)).map_err(|e| Error::from_io("socket", e))?;
    sock.set_nonblocking(true)
        .map_err(|e| Error::from_io("setblocking", e))?;
    bind_source(&sock, source)?;
    Ok(sock)
}

/// The source ports that the probes of one scan hold, and when each was last let go: an
/// answer from one of them is another probe of the same scan, never a service.
///
/// Two probes can cross: one bound to port X probing Y while another, bound to Y, probes X.
/// Their SYNs (TCP simultaneous open) or datagrams (UDP) then reach each other and both
/// would report open. The kernel hands a probe a source port only where nothing is bound,
/// so a port that a probe of ours holds is closed.
#[derive(Debug, Default)]
struct OwnPorts {
    /// Port -> (probes holding it now, when the last one let it go).
    ports: std::sync::Mutex<HashMap<u16, (usize, Option<Instant>)>>,
}

impl OwnPorts {
    /// Notes that a probe holds `port` until the returned guard is dropped.
    fn hold(self: &Arc<Self>, port: u16) -> OwnPort {
        if let Ok(mut map) = self.ports.lock() {
            map.entry(port).or_default().0 += 1;
        }
        OwnPort {
            ports: Arc::clone(self),
            port,
        }
    }

    /// True when a probe of ours held `port` at some time since `since`.
    fn held_since(&self, port: u16, since: Instant) -> bool {
        self.ports.lock().is_ok_and(|map| {
            map.get(&port)
                .is_some_and(|&(n, last)| n > 0 || last.is_some_and(|t| t >= since))
        })
    }
}

/// A source port held by a probe ([`OwnPorts::hold`]).
struct OwnPort {
    ports: Arc<OwnPorts>,
    port: u16,
}

impl Drop for OwnPort {
    fn drop(&mut self) {
        if let Ok(mut map) = self.ports.ports.lock()
            && let Some(entry) = map.get_mut(&self.port)
        {
            entry.0 = entry.0.saturating_sub(1);
            entry.1 = Some(Instant::now());
        }
    }
}

/// Registers `sock`'s source port in `own`, if a registry is given.
fn hold_source(own: Option<&Arc<OwnPorts>>, local: Option<SocketAddr>) -> Option<OwnPort> {
    Some(own?.hold(local?.port()))
}

/// The error that says the answer came from another probe of the same scan, if so.
fn crossed(own: Option<&Arc<OwnPorts>>, addr: SocketAddr, since: Instant) -> Option<Error> {
    own.filter(|o| o.held_since(addr.port(), since)).map(|_| {
        Error::new(
            ErrorKind::Os,
            "connect",
            None,
            format!(
                "answered by another probe of this scan (port {} is its source port; nothing listens)",
                addr.port()
            ),
        )
    })
}

/// Probes one TCP port: a non-blocking `connect(2)` bounded by `timeout`.
///
/// # Errors
/// Only errors about this machine (socket creation, binding `source`, `EADDRNOTAVAIL`,
/// `EMFILE`); everything the target answers is a [`PortResult`].
pub async fn probe_tcp(
    addr: SocketAddr,
    timeout: Duration,
    source: Option<SocketAddr>,
) -> Result<PortResult> {
    probe_tcp_in(addr, timeout, source, None).await
}

async fn probe_tcp_in(
    addr: SocketAddr,
    timeout: Duration,
    source: Option<SocketAddr>,
    own: Option<&Arc<OwnPorts>>,
) -> Result<PortResult> {
    let start = Instant::now();
    let sock = probe_socket(addr, socket2::Type::STREAM, socket2::Protocol::TCP, source)?;
    // connect(2) by hand rather than tokio's TcpSocket::connect, so that the source port
    // the kernel picked is registered before any other probe can see this one's SYN.
    let started = match sock.connect(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        Err(e) => Err(e),
    };
    let _held = hold_source(own, sock.local_addr().ok().and_then(|a| a.as_socket()));
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
    let elapsed = start.elapsed();
    let (state, reason) = match outcome {
        Ok(Ok(stream)) => match self_connected(stream.local_addr().ok(), stream.peer_addr().ok())
            .or_else(|| crossed(own, addr, start))
        {
            Some(err) => (PortState::Closed, Some(err)),
            None => (PortState::Open, None),
        },
        Ok(Err(e)) => {
            let err = Error::from_io("connect", e);
            if is_local_error(&err) {
                return Err(err);
            }
            let state = if err.is_errno(libc::ECONNREFUSED) || err.is_errno(libc::ECONNRESET) {
                PortState::Closed
            } else {
                PortState::Filtered
            };
            (state, Some(err))
        }
        Err(_) => (PortState::Filtered, Some(Error::timeout("connect"))),
    };
    Ok(PortResult {
        port: addr.port(),
        state,
        elapsed,
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
    probe_udp_in(addr, timeout, source, None).await
}

async fn probe_udp_in(
    addr: SocketAddr,
    timeout: Duration,
    source: Option<SocketAddr>,
    own: Option<&Arc<OwnPorts>>,
) -> Result<PortResult> {
    let start = Instant::now();
    let sock = probe_socket(addr, socket2::Type::DGRAM, socket2::Protocol::UDP, source)?;
    let sock =
        tokio::net::UdpSocket::from_std(sock.into()).map_err(|e| Error::from_io("socket", e))?;
    sock.connect(addr)
        .await
        .map_err(|e| Error::from_io("connect", e))?;
    let _held = hold_source(own, sock.local_addr().ok());
    // A socket whose source port is the target port would send the datagram to itself
    // and take its own datagram for an answer.
    if let Some(err) = self_connected(sock.local_addr().ok(), sock.peer_addr().ok()) {
        return Ok(PortResult {
            port: addr.port(),
            state: PortState::Closed,
            elapsed: start.elapsed(),
            reason: Some(err),
        });
    }
    let exchange = async {
        sock.send(&[])
            .await
            .map_err(|e| Error::from_io("send", e))?;
        let mut buf = [0u8; 1];
        sock.recv(&mut buf)
            .await
            .map_err(|e| Error::from_io("recv", e))
    };
    let outcome = tokio::time::timeout(timeout, exchange).await;
    let elapsed = start.elapsed();
    let (state, reason) = match outcome {
        Ok(Ok(_n)) => match crossed(own, addr, start) {
            Some(err) => (PortState::Closed, Some(err)),
            None => (PortState::Open, None),
        },
        Ok(Err(err)) if err.is_errno(libc::ECONNREFUSED) => (PortState::Closed, Some(err)),
        Ok(Err(err)) if is_local_error(&err) => return Err(err),
        Ok(Err(err)) => (PortState::Filtered, Some(err)),
        Err(_) => (PortState::OpenFiltered, Some(Error::timeout("recv"))),
    };
    Ok(PortResult {
        port: addr.port(),
        state,
        elapsed,
        reason,
    })
}

/// What a finished scan tells besides the port results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanSummary {
    /// The parallelism at the end: `opts.parallel`, or less when sockets ran out
    /// (`EMFILE`/`ENFILE`) and the scan went on with fewer probes in flight.
    pub parallel: usize,
    /// Probes that could not get a socket (`EMFILE`/`ENFILE`) and were tried again.
    pub retried: usize,
}

/// True for running out of file descriptors (per process or system-wide).
fn is_fd_shortage(e: &Error) -> bool {
    e.is_errno(libc::EMFILE) || e.is_errno(libc::ENFILE)
}

/// Probes `ports` of `ip`, at most `opts.parallel` at a time, calling `each` with every
/// result as it completes (not in port order). Must run inside a tokio runtime.
///
/// When a probe cannot get a socket (`socket(2)` fails with `EMFILE`/`ENFILE`: more probes
/// than the open-file limit, `RLIMIT_NOFILE`), the parallelism drops to the probes still in
/// flight and the port is probed again when one of them ends; [`ScanSummary`] says so.
///
/// Python has no counterpart; `nc -z HOST PORTS` is the command-line one.
///
/// # Errors
/// - [`ErrorKind::InvalidInput`] for `parallel` 0, or a source address of another family.
/// - The first error about this machine a probe met (see [`probe_tcp`]), and `EMFILE`/
///   `ENFILE` when no other probe is in flight; probes still in flight are cancelled.
pub async fn scan(
    ip: IpAddr,
    ports: &[u16],
    opts: &ScanOptions,
    mut each: impl FnMut(PortResult),
) -> Result<ScanSummary> {
    if opts.parallel == 0 {
        return Err(Error::invalid_input("scan", "parallel must be at least 1"));
    }
    if let Some(src) = opts.source
        && src.is_ipv4() != ip.is_ipv4()
    {
        return Err(Error::invalid_input(
            "bind",
            format!("source address {} is not of the target's family", src.ip()),
        ));
    }
    let mut set: JoinSet<(u16, Result<PortResult>)> = JoinSet::new();
    let mut next = ports.iter();
    let mut again: std::collections::VecDeque<u16> = std::collections::VecDeque::new();
    let mut limit = opts.parallel;
    let own = Arc::new(OwnPorts::default());
    let mut retried = 0;
    // Bounded: a probe is spawned only while fewer than `limit` are in flight, and each
    // one that gets no socket lowers `limit` to those still in flight, so a port is tried
    // again at most `parallel` times before the scan gives up.
    loop {
        while set.len() < limit {
            let Some(port) = again.pop_front().or_else(|| next.next().copied()) else {
                break;
            };
            let addr = SocketAddr::new(ip, port);
            let (timeout, source, own) = (opts.timeout, opts.source, Arc::clone(&own));
            match opts.transport {
                Transport::Tcp => set.spawn(async move {
                    (port, probe_tcp_in(addr, timeout, source, Some(&own)).await)
                }),
                Transport::Udp => set.spawn(async move {
                    (port, probe_udp_in(addr, timeout, source, Some(&own)).await)
                }),
            };
        }
        match set.join_next().await {
            None => {
                return Ok(ScanSummary {
                    parallel: limit,
                    retried,
                });
            }
            Some(Ok((_, Ok(r)))) => each(r),
            Some(Ok((port, Err(e)))) if is_fd_shortage(&e) && !set.is_empty() => {
                limit = limit.min(set.len());
                retried += 1;
                again.push_back(port);
            }
            Some(Ok((_, Err(e)))) => return Err(e),
            Some(Err(join)) => {
                return Err(Error::new(ErrorKind::Os, "scan", None, join.to_string()));
            }
        }
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
    fn open_and_closed_tcp_ports() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let ports = [open.local_addr().unwrap().port(), closed];
        let mut got = Vec::new();
        rt.block_on(scan(
            "127.0.0.1".parse().unwrap(),
            &ports,
            &ScanOptions {
                timeout: Duration::from_secs(3),
                ..Default::default()
            },
            |r| got.push((r.port, r.state)),
        ))
        .unwrap();
        got.sort();
        let mut want = vec![(ports[0], PortState::Open), (closed, PortState::Closed)];
        want.sort();
        assert_eq!(got, want);
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
    fn two_crossed_probes_are_closed_not_open() {
        // Regression: probes of one scan crossed (one bound to X probing Y, another bound
        // to Y probing X) got each other's datagram and both ports were reported open.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let addr = |p| SocketAddr::new("127.0.0.1".parse().unwrap(), p);
        let (x, y) = (unbound_port(true), unbound_port(true));
        let t = Duration::from_secs(2);
        let run = |own: Option<Arc<OwnPorts>>| {
            rt.block_on(async {
                let (a, b) = tokio::join!(
                    probe_udp_in(addr(y), t, Some(addr(x)), own.as_ref()),
                    probe_udp_in(addr(x), t, Some(addr(y)), own.as_ref()),
                );
                (a.unwrap(), b.unwrap())
            })
        };
        // Without the scan's registry they really do answer each other.
        let (a, b) = run(None);
        assert_eq!((a.state, b.state), (PortState::Open, PortState::Open));
        let (a, b) = run(Some(Arc::new(OwnPorts::default())));
        assert_eq!((a.state, b.state), (PortState::Closed, PortState::Closed));
        let why = a.reason.unwrap().to_string();
        assert!(why.contains("another probe of this scan"), "{why}");
    }

    #[test]
    fn bad_source_address_ends_the_scan() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // 192.0.2.1 (TEST-NET-1) is not an address of this machine: bind fails locally.
        let e = rt
            .block_on(scan(
                "127.0.0.1".parse().unwrap(),
                &[1, 2],
                &ScanOptions {
                    source: Some("192.0.2.1:0".parse().unwrap()),
                    ..Default::default()
                },
                |_| {},
            ))
            .unwrap_err();
        assert!(e.is_errno(libc::EADDRNOTAVAIL), "{e}");
    }
}
