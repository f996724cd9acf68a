//! Client connects: Python's [`create_connection`] (blocking, every address in turn),
//! RFC 8305 Happy Eyeballs ([`connect_happy`], on tokio) and the address lookup behind
//! both ([`resolve()`]).
//!
//! Contract: a name is looked up with ONE `getaddrinfo(3)` call (`AF_UNSPEC` unless a
//! family is forced), never separate A and AAAA queries. [`connect_happy`] races the
//! answers as RFC 8305 says — IPv6 first, then the families interleaved, a new attempt
//! every 250 ms or as soon as the previous one fails — and the first connect to succeed
//! wins; the losers are closed. One deadline ([`ConnectOptions::timeout`]) bounds the
//! whole call, lookup included.
//!
//! ```no_run
//! use std::time::Duration;
//! use sockit::client::{connect_happy, ConnectOptions};
//!
//! # async fn demo() -> sockit::Result<()> {
//! let opts = ConnectOptions { timeout: Some(Duration::from_secs(3)), ..Default::default() };
//! let c = connect_happy("localhost", &sockit::Port::Number(8080), &opts).await?;
//! println!("connected to {} after {} attempt(s)", c.peer, c.attempts);
//! # Ok(()) }
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::addr::{Family, Port, Protocol, SockType};
use crate::error::{Error, ErrorKind, Result};
use crate::resolve;
use crate::socket::Socket;

/// RFC 8305's "Connection Attempt Delay": the time between two connect attempts (250 ms).
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// How to look a host up and connect to it.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Only this family (`-4` / `-6`); `None` is `AF_UNSPEC`.
    pub family: Option<Family>,
    /// Numeric host only (`-n`): `AI_NUMERICHOST`, so no name lookup can happen.
    pub numeric: bool,
    /// One deadline for the whole call (lookup and every attempt), `None` for no limit.
    pub timeout: Option<Duration>,
    /// Source address to bind before connecting (`-s`); only addresses of its family are
    /// tried.
    pub source: Option<IpAddr>,
    /// Source port to bind before connecting (`-p`); `0` lets the system choose.
    pub source_port: u16,
}

/// A connection [`connect_happy`] made.
#[derive(Debug)]
pub struct Connected {
    /// The connected stream (non-blocking, registered with the current tokio runtime).
    pub stream: TcpStream,
    /// The address that answered.
    pub peer: SocketAddr,
    /// How many connect attempts were started (1 when the first address answered).
    pub attempts: usize,
}

/// Looks `host` and `port` up for `socktype` with one `getaddrinfo(3)` call.
///
/// Python: `socket.getaddrinfo(host, port, family, type)` with `AF_UNSPEC` unless
/// `opts.family` is set, and `AI_NUMERICHOST` when `opts.numeric` is. Duplicate addresses
/// are dropped; the C library's order (RFC 6724) is kept.
///
/// # Errors
/// - [`ErrorKind::Gai`] with the EAI code from `getaddrinfo(3)`.
/// - [`ErrorKind::InvalidInput`] for a host with a NUL.
pub fn resolve(
    host: &str,
    port: &Port,
    socktype: SockType,
    opts: &ConnectOptions,
) -> Result<Vec<SocketAddr>> {
    let flags = if opts.numeric {
        resolve::AI_NUMERICHOST
    } else {
        0
    };
    let infos = resolve::getaddrinfo(
        Some(host),
        Some(port),
        opts.family,
        Some(socktype),
        0,
        flags,
    )?;
    let mut out: Vec<SocketAddr> = Vec::with_capacity(infos.len());
    for info in infos {
        if !out.contains(&info.address) {
            out.push(info.address);
        }
    }
    if out.is_empty() {
        return Err(Error::gai("getaddrinfo", libc::EAI_NONAME));
    }
    Ok(out)
}

/// Connects a blocking TCP socket to `host` `port`, trying every address in turn.
///
/// Python: `socket.create_connection((host, port), timeout, source_address)`: one
/// `getaddrinfo(3)` call (`AF_UNSPEC`, `SOCK_STREAM`), then for each answer in the C
/// library's order `socket(2)`, the timeout, `bind(2)` of `source_address` when given,
/// and `connect(2)`; the first success is returned. Unlike CPython, whose timeout applies
/// to each attempt anew, `timeout` here is ONE deadline for all attempts together
/// (DESIGN.md); the returned socket keeps `timeout` as its timeout mode, as in Python
/// (`None` blocking; `Some(ZERO)` non-blocking, so the connect fails with
/// `[Errno 115] Operation now in progress`, as in Python).
///
/// # Errors
/// - [`ErrorKind::Gai`] when the lookup fails.
/// - [`ErrorKind::Timeout`] (`connect: timed out`) when the deadline expires.
/// - The last attempt's error otherwise (Python raises the last one), for example
///   [`ErrorKind::Os`] `[Errno 111] Connection refused`.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// let s = sockit::client::create_connection("127.0.0.1", &80.into(), Some(Duration::from_secs(5)), None)?;
/// s.send_all(b"GET / HTTP/1.0\r\n\r\n")?;
/// # Ok::<(), sockit::Error>(())
/// ```
pub fn create_connection(
    host: &str,
    port: &Port,
    timeout: Option<Duration>,
    source_address: Option<SocketAddr>,
) -> Result<Socket> {
    let infos = resolve::getaddrinfo(Some(host), Some(port), None, Some(SockType::Stream), 0, 0)?;
    let deadline = timeout
        .filter(|t| !t.is_zero())
        .map(|t| std::time::Instant::now() + t);
    let mut last: Option<Error> = None;
    for info in infos {
        let this_timeout = match (timeout, deadline) {
            (Some(t), None) => Some(t),
            (_, Some(d)) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(Error::timeout("connect"));
                }
                Some(left)
            }
            (None, None) => None,
        };
        let attempt = (|| {
            let proto = (info.protocol != 0).then_some(Protocol(info.protocol));
            let mut sock = Socket::new(info.family, SockType::Stream, proto)?;
            sock.set_timeout(this_timeout)?;
            if let Some(src) = source_address {
                sock.bind(src)?;
            }
            sock.connect(info.address)?;
            sock.set_timeout(timeout)?;
            Ok::<Socket, Error>(sock)
        })();
        match attempt {
            Ok(sock) => return Ok(sock),
            Err(e) if e.kind() == ErrorKind::Timeout => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::new(
            ErrorKind::Os,
            "getaddrinfo",
            None,
            "getaddrinfo returns an empty list",
        )
    }))
}

/// Orders addresses for Happy Eyeballs (RFC 8305 section 4): IPv6 first when there is one,
/// then the two families alternate, each family keeping its own order.
///
/// # Examples
/// ```
/// use std::net::SocketAddr;
/// let a: Vec<SocketAddr> = ["127.0.0.1:1", "127.0.0.2:1", "[::1]:1"]
///     .iter().map(|s| s.parse().unwrap()).collect();
/// let sorted = sockit::client::happy_order(a);
/// assert_eq!(sorted[0], "[::1]:1".parse::<SocketAddr>().unwrap());
/// assert_eq!(sorted[1], "127.0.0.1:1".parse::<SocketAddr>().unwrap());
/// ```
pub fn happy_order(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let (v6, v4): (Vec<_>, Vec<_>) = addrs.into_iter().partition(SocketAddr::is_ipv6);
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
    out
}

/// Connects to `host` `port` over TCP with Happy Eyeballs (RFC 8305).
///
/// The CLI's connect (DESIGN.md). One `getaddrinfo(3)` call (`AF_UNSPEC` unless
/// `opts.family`), the answers ordered by [`happy_order`], then [`connect_happy_addrs`].
/// The lookup runs on tokio's blocking pool and counts against `opts.timeout`.
///
/// # Errors
/// - [`ErrorKind::Gai`] when the lookup fails.
/// - [`ErrorKind::Timeout`] (`connect: timed out`) when the
///   deadline expires first.
/// - [`ErrorKind::Os`] with the last attempt's errno when every
///   address failed (for example `[Errno 111] Connection refused`).
pub async fn connect_happy(host: &str, port: &Port, opts: &ConnectOptions) -> Result<Connected> {
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    // An address literal with a port number needs no lookup (getaddrinfo only converts
    // it): done here, so a tiny deadline cannot expire in the blocking pool's queue and
    // turn a refusal into `timed out`.
    let literal = host.parse::<IpAddr>().is_ok() && matches!(port, Port::Number(_));
    if literal {
        let addrs = resolve(host, port, SockType::Stream, opts)?;
        return connect_happy_addrs(happy_order(addrs), opts).await;
    }
    let lookup = {
        let (host, port, opts) = (host.to_string(), port.clone(), opts.clone());
        tokio::task::spawn_blocking(move || resolve(&host, &port, SockType::Stream, &opts))
    };
    let addrs = match deadline {
        Some(d) => tokio::time::timeout_at(d, lookup)
            .await
            .map_err(|_| Error::timeout("connect"))?,
        None => lookup.await,
    }
    .map_err(|e| Error::new(crate::ErrorKind::Os, "getaddrinfo", None, e.to_string()))??;
    let rest = opts.timeout.map(|_| {
        deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    });
    let opts = ConnectOptions {
        timeout: rest,
        ..opts.clone()
    };
    connect_happy_addrs(happy_order(addrs), &opts).await
}

/// Races TCP connects to `addrs` in the given order (RFC 8305 section 5): the first
/// attempt starts at once, each next one [`CONNECTION_ATTEMPT_DELAY`] later or as soon as
/// every started attempt has failed; the first to connect wins and the others are closed.
///
/// Uses `opts.timeout` (whole call), `opts.source` and `opts.source_port` (`bind(2)`
/// with `SO_REUSEADDR` before `connect(2)`); `opts.family` and `opts.numeric` are not used
/// (the addresses are already chosen). Addresses of another family than `opts.source` are
/// skipped.
///
/// # Errors
/// - [`ErrorKind::Timeout`] when the deadline expires first.
/// - [`ErrorKind::Os`] with the last failure when every attempt
///   failed (a source that cannot be bound: `bind: … (source ADDR)`), or `bind:`
///   `EAFNOSUPPORT` when no address matches the source's family ([`source_family_error`]).
/// - [`ErrorKind::Gai`] (`EAI_NONAME`) when `addrs` is empty.
pub async fn connect_happy_addrs(
    addrs: Vec<SocketAddr>,
    opts: &ConnectOptions,
) -> Result<Connected> {
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    if addrs.is_empty() {
        return Err(Error::gai("getaddrinfo", libc::EAI_NONAME));
    }
    let addrs: Vec<SocketAddr> = match opts.source {
        Some(src) => addrs
            .into_iter()
            .filter(|a| a.is_ipv4() == src.is_ipv4())
            .collect(),
        None => addrs,
    };
    if let (true, Some(src)) = (addrs.is_empty(), opts.source) {
        return Err(source_family_error(src));
    }
    // The attempts in flight: each socket's non-blocking connect(2) is under way.
    let mut pending: Vec<(SocketAddr, TcpStream)> = Vec::new();
    let mut next = 0usize;
    let mut next_start = Instant::now();
    let mut last_err: Option<Error> = None;
    loop {
        if next < addrs.len() && (pending.is_empty() || Instant::now() >= next_start) {
            let addr = addrs[next];
            next += 1;
            next_start = Instant::now() + CONNECTION_ATTEMPT_DELAY;
            match start_connect(addr, opts.source, opts.source_port) {
                Ok(stream) => pending.push((addr, stream)),
                Err(e) => {
                    last_err = Some(e);
                    // RFC 8305: a failure starts the next attempt at once.
                    next_start = Instant::now();
                }
            }
            continue;
        }
        if pending.is_empty() {
            return Err(
                last_err.unwrap_or_else(|| Error::from_errno("connect", libc::ECONNREFUSED))
            );
        }
        let more = next < addrs.len();
        // Biased: an attempt that ended (a refusal, a connect) is seen before a deadline
        // that passed meanwhile; and at the deadline `last_look` asks each socket once
        // more, so a refusal is never reported as a timeout.
        tokio::select! {
            biased;
            i = first_writable(&pending) => {
                let (peer, stream) = pending.swap_remove(i);
                match finish_connect(&stream) {
                    Ok(()) => return Ok(Connected { stream, peer, attempts: next }),
                    Err(e) => {
                        last_err = Some(e);
                        // RFC 8305: a failure starts the next attempt at once.
                        next_start = Instant::now();
                    }
                }
            },
            _ = tokio::time::sleep_until(next_start), if more => {}
            _ = sleep_until_opt(deadline) => return last_look(pending, last_err, more, next),
        }
    }
}

/// Looks `host` up for a blocking client: [`resolve()`] (one `getaddrinfo(3)` call,
/// `SOCK_STREAM`, `AI_NUMERICHOST` for an address literal, which may carry a zone id
/// `fe80::1%lo`), run on a helper thread when there is a deadline so that a slow resolver
/// cannot outlast it. A literal never waits, so no deadline applies to it.
///
/// Python: `socket.getaddrinfo(host, port, family, SOCK_STREAM)` under a timeout.
///
/// # Errors
/// - [`ErrorKind::Gai`] with the EAI code from `getaddrinfo(3)`.
/// - [`ErrorKind::Timeout`] (op `getaddrinfo`) when `deadline` passes first.
pub fn resolve_until(
    host: &str,
    port: u16,
    family: Option<Family>,
    deadline: Option<std::time::Instant>,
) -> Result<Vec<SocketAddr>> {
    let numeric = host
        .split('%')
        .next()
        .unwrap_or(host)
        .parse::<IpAddr>()
        .is_ok();
    let opts = ConnectOptions {
        family,
        numeric,
        ..ConnectOptions::default()
    };
    let host_owned = host.to_string();
    let lookup = move || resolve(&host_owned, &Port::Number(port), SockType::Stream, &opts);
    let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
    match left {
        // A numeric lookup never waits: no deadline applies to it.
        None => lookup(),
        Some(_) if numeric => lookup(),
        Some(left) if left.is_zero() => Err(Error::timeout("getaddrinfo")),
        Some(left) => crate::resolve::within("getaddrinfo", Some(left), lookup)?,
    }
}

/// Happy Eyeballs (RFC 8305) for blocking code: [`connect_happy_addrs`] over `addrs` (in
/// the order given: see [`happy_order`]) on a one-thread tokio runtime, the winner handed
/// back as a blocking std socket, with the number of attempts started.
///
/// A deadline already passed is handed on as a zero timeout, exactly as
/// [`connect_happy`] hands on what its lookup left: the race then decides, so a refusal
/// stays a refusal (`[Errno 111]`) even at the deadline. Safe to call from inside a tokio
/// runtime (the race then runs on a thread of its own).
///
/// # Errors
/// As [`connect_happy_addrs`].
pub fn connect_happy_blocking(
    addrs: Vec<SocketAddr>,
    deadline: Option<std::time::Instant>,
) -> Result<(std::net::TcpStream, usize)> {
    let timeout = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
    let opts = ConnectOptions {
        timeout,
        ..ConnectOptions::default()
    };
    let race = move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::from_io("tokio runtime", e))?;
        rt.block_on(connect_happy_addrs(addrs, &opts))
    };
    // Called from inside a tokio runtime (a blocking call in async code), creating or
    // dropping a runtime there would panic: race on a thread of our own instead.
    let conn = if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(race).join())
            .map_err(|_| Error::new(ErrorKind::Os, "connect", None, "connect thread failed"))??
    } else {
        race()?
    };
    let tcp = conn
        .stream
        .into_std()
        .map_err(|e| Error::from_io("connect", e))?;
    tcp.set_nonblocking(false)
        .map_err(|e| Error::from_io("fcntl", e))?;
    Ok((tcp, conn.attempts))
}

/// The index of the first attempt whose socket is writable: its connect(2) ended, either
/// way (the socket is writable when connected and when `SO_ERROR` is set).
async fn first_writable(pending: &[(SocketAddr, TcpStream)]) -> usize {
    std::future::poll_fn(|cx| {
        for (i, (_, stream)) in pending.iter().enumerate() {
            if stream.poll_write_ready(cx).is_ready() {
                return std::task::Poll::Ready(i);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// How a connect(2) that ended went: `getsockopt(SO_ERROR)` (Python:
/// `sock.getsockopt(SOL_SOCKET, SO_ERROR)`), 0 meaning connected.
fn finish_connect(stream: &TcpStream) -> Result<()> {
    match stream.take_error() {
        Ok(None) => Ok(()),
        Ok(Some(e)) | Err(e) => Err(Error::from_io("connect", e)),
    }
}

/// At the deadline, one last non-blocking look at every attempt still in flight
/// (`SO_ERROR`, then `getpeername(2)`), so that what the kernel already knows wins over
/// the clock: a connection made is returned, and when every attempt started has failed
/// and no address is left untried, the last failure is returned (a refusal that came at
/// the deadline stays `[Errno 111]`); otherwise `connect: timed out`.
fn last_look(
    pending: Vec<(SocketAddr, TcpStream)>,
    mut last_err: Option<Error>,
    untried: bool,
    attempts: usize,
) -> Result<Connected> {
    let mut in_flight = false;
    for (peer, stream) in pending {
        match stream.take_error() {
            Ok(Some(e)) | Err(e) => last_err = Some(Error::from_io("connect", e)),
            Ok(None) if stream.peer_addr().is_ok() => {
                return Ok(Connected {
                    stream,
                    peer,
                    attempts,
                });
            }
            Ok(None) => in_flight = true,
        }
    }
    match last_err {
        Some(e) if !in_flight && !untried => Err(e),
        _ => Err(Error::timeout("connect")),
    }
}

/// The error for a source address (`-s`) of another family than every peer address: the
/// failing step is the source's `bind(2)`, which on a socket of the peer's family fails
/// with `EAFNOSUPPORT`, so that is what it says — naming the source, not blaming `connect`.
///
/// `bind: [Errno 97] Address family not supported by protocol (source ::1 is IPv6; no
/// address of the peer is)`.
pub fn source_family_error(source: IpAddr) -> Error {
    let family = if source.is_ipv4() { "IPv4" } else { "IPv6" };
    Error::new(
        ErrorKind::Os,
        "bind",
        Some(libc::EAFNOSUPPORT),
        format!(
            "{} (source {source} is {family}; no address of the peer is)",
            crate::sys::strerror(libc::EAFNOSUPPORT)
        ),
    )
}

/// A failed `bind(2)` of the source address, naming it: `bind: [Errno 99] Cannot assign
/// requested address (source 192.0.2.1 port 0)`.
pub fn source_bind_error(source: SocketAddr, err: std::io::Error) -> Error {
    let e = Error::from_io("bind", err);
    let message = format!(
        "{} (source {} port {})",
        e.message(),
        crate::addr::host_text(&source),
        source.port()
    );
    Error::new(e.kind(), "bind", e.code(), message)
}

/// The source address `-s TEXT` names: an IP literal (`::1`, `[::1]`), else the first
/// address of the name (one `getaddrinfo(3)` with `opts`' family and `-n`).
///
/// # Errors
/// [`ErrorKind::Gai`] from the lookup, its op named `source address: getaddrinfo`;
/// `EAI_NONAME` when it gave nothing.
pub fn source_address(text: &str, opts: &ConnectOptions) -> Result<IpAddr> {
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(ip);
    }
    let named = |e: Error| {
        let op = format!("source address: {}", e.op());
        e.with_op(op)
    };
    let addrs = resolve(text, &Port::Number(0), SockType::Stream, opts).map_err(named)?;
    addrs
        .first()
        .map(SocketAddr::ip)
        .ok_or_else(|| named(Error::gai("getaddrinfo", libc::EAI_NONAME)))
}

/// A UDP socket connected to `host`, `port` (`connect(2)`, so only its datagrams are
/// received): the first address of the name in RFC 6724/8305 order whose family matches
/// the source, bound first to `opts.source`/`opts.source_port` when given (else the
/// wildcard of the address's family, port chosen by the system).
///
/// Python: `s = socket(family, SOCK_DGRAM); s.bind((src, sport)); s.connect((host, port))`.
/// Returns the socket (registered with the current tokio runtime) and the peer address.
///
/// # Errors
/// - [`ErrorKind::Gai`] from the lookup ([`resolve()`]), `EAI_NONAME` when it gave nothing.
/// - [`ErrorKind::Os`] `bind` for a source that cannot be bound ([`source_bind_error`]) or
///   of no family of the peer's addresses ([`source_family_error`]); `connect` errors.
pub async fn connect_udp(
    host: &str,
    port: &Port,
    opts: &ConnectOptions,
) -> Result<(tokio::net::UdpSocket, SocketAddr)> {
    let addrs = resolve(host, port, SockType::Dgram, opts)?;
    let mut candidates = happy_order(addrs).into_iter();
    let peer = match opts.source {
        Some(src) => candidates
            .find(|a| src.is_ipv4() == a.is_ipv4())
            .ok_or_else(|| source_family_error(src))?,
        None => candidates
            .next()
            .ok_or_else(|| Error::gai("getaddrinfo", libc::EAI_NONAME))?,
    };
    let wildcard = if peer.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let at = SocketAddr::new(opts.source.unwrap_or(wildcard), opts.source_port);
    let sock = tokio::net::UdpSocket::bind(at).await.map_err(|e| {
        if opts.source.is_some() || opts.source_port != 0 {
            source_bind_error(at, e)
        } else {
            Error::from_io("bind", e)
        }
    })?;
    sock.connect(peer)
        .await
        .map_err(|e| Error::from_io("connect", e))?;
    Ok((sock, peer))
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Starts one TCP connect attempt: `socket(2)` (non-blocking), optional `bind(2)` of the
/// source (with `SO_REUSEADDR`), and `connect(2)`, which on a non-blocking socket returns
/// at once (`EINPROGRESS`); [`first_writable`] and [`finish_connect`] see how it ends.
fn start_connect(addr: SocketAddr, source: Option<IpAddr>, source_port: u16) -> Result<TcpStream> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM.nonblocking(),
        Some(socket2::Protocol::TCP),
    )
    .map_err(|e| Error::from_io("socket", e))?;
    if source.is_some() || source_port != 0 {
        let ip = source.unwrap_or(if addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        });
        sock.set_reuse_address(true)
            .map_err(|e| Error::from_io("setsockopt", e))?;
        let src = SocketAddr::new(ip, source_port);
        sock.bind(&src.into())
            .map_err(|e| source_bind_error(src, e))?;
    }
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(Error::from_io("connect", e)),
    }
    TcpStream::from_std(std::net::TcpStream::from(sock)).map_err(|e| Error::from_io("connect", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn order_interleaves_v6_first() {
        let got = happy_order(vec![
            a("127.0.0.1:1"),
            a("127.0.0.2:1"),
            a("127.0.0.3:1"),
            a("[::1]:1"),
            a("[::2]:1"),
        ]);
        assert_eq!(
            got,
            vec![
                a("[::1]:1"),
                a("127.0.0.1:1"),
                a("[::2]:1"),
                a("127.0.0.2:1"),
                a("127.0.0.3:1")
            ]
        );
        assert_eq!(happy_order(vec![a("127.0.0.1:1")]), vec![a("127.0.0.1:1")]);
    }

    #[tokio::test]
    async fn first_answering_address_wins_after_refusals() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = l.local_addr().unwrap();
        // A closed port: a bound socket that does not listen (connects are refused), held
        // so no parallel test can listen there meanwhile (as after closing a listener).
        let (_holder, closed) = crate::test_support::closed_port();
        let opts = ConnectOptions {
            timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let c = connect_happy_addrs(vec![closed, good], &opts)
            .await
            .unwrap();
        assert_eq!(c.peer, good);
        assert_eq!(c.attempts, 2);
        let e = connect_happy_addrs(vec![closed], &opts).await.unwrap_err();
        assert!(e.is_errno(libc::ECONNREFUSED), "{e}");
    }

    #[tokio::test]
    async fn a_refusal_at_the_deadline_stays_a_refusal() {
        // Regression: `connect -w 1e-9` to a refusing port said `connect: timed out`
        // (the deadline won the race before the attempt was looked at).
        // A bound socket that does not listen: connects are refused, and no other test
        // can take the port meanwhile. On a loaded machine the kernel may handle the RST
        // after the deadline (softirq work deferred): then a timeout is right, so most
        // attempts, not all, must report the refusal.
        let (_holder, closed) = crate::test_support::closed_port();
        let mut refused = 0;
        for timeout in [Duration::from_nanos(1), Duration::ZERO].repeat(10) {
            let opts = ConnectOptions {
                timeout: Some(timeout),
                ..Default::default()
            };
            let e = connect_happy_addrs(vec![closed], &opts).await.unwrap_err();
            if e.is_errno(libc::ECONNREFUSED) {
                refused += 1;
            } else {
                assert_eq!(e.kind(), crate::ErrorKind::Timeout, "{e}");
            }
        }
        assert!(
            refused >= 15,
            "only {refused} of 20 attempts reported the refusal"
        );
    }

    #[test]
    fn create_connection_connects_refuses_and_times_out() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let s = create_connection(
            "127.0.0.1",
            &Port::Number(port),
            Some(Duration::from_secs(5)),
            None,
        )
        .unwrap();
        assert_eq!(s.timeout(), Some(Duration::from_secs(5)));
        assert_eq!(s.peer_addr().unwrap().as_ip().unwrap().port(), port);
        // Refused: a bound socket that does not listen, held so no parallel test can
        // listen on its port meanwhile (as on the port of a dropped listener).
        let (_holder, closed_addr) = crate::test_support::closed_port();
        let closed = closed_addr.port();
        let e = create_connection("127.0.0.1", &Port::Number(closed), None, None).unwrap_err();
        assert!(e.is_errno(libc::ECONNREFUSED), "{e}");
        // A listen(0) listener holding one queued connection never answers the next one.
        let full = Socket::new(Family::Inet, SockType::Stream, None).unwrap();
        full.bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
            .unwrap();
        full.listen(0).unwrap();
        let fport = full.local_addr().unwrap().as_ip().unwrap().port();
        let _queued = create_connection(
            "127.0.0.1",
            &Port::Number(fport),
            Some(Duration::from_secs(2)),
            None,
        )
        .unwrap();
        let t0 = std::time::Instant::now();
        let e = create_connection(
            "127.0.0.1",
            &Port::Number(fport),
            Some(Duration::from_millis(300)),
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(t0.elapsed() >= Duration::from_millis(250));
    }

    #[tokio::test]
    async fn numeric_lookup_refuses_names() {
        let opts = ConnectOptions {
            numeric: true,
            ..Default::default()
        };
        let e = resolve(
            "no.such.name.invalid",
            &Port::Number(1),
            SockType::Stream,
            &opts,
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Gai);
        let got = resolve("127.0.0.1", &Port::Number(7), SockType::Stream, &opts).unwrap();
        assert_eq!(got, vec![a("127.0.0.1:7")]);
    }
}
