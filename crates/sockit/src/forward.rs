//! Port forwarding: accept on one address and relay each connection (or UDP peer) to a
//! target — socat's `TCP-LISTEN:PORT,fork TCP:HOST:PORT`.
//!
//! Either side may be TCP, UDP or a Unix stream socket ([`Endpoint`]). Contract:
//! - Connections are served concurrently; each gets its own connection to the target,
//!   made with [`connect_happy`](crate::client::connect_happy) (TCP) under the connect
//!   timeout. A target that refuses (or times out) closes that client cleanly (its pending
//!   bytes are drained, then FIN) and the forwarder keeps running.
//! - Stream to stream: [`relay_stream`](crate::relay::relay_stream) both ways; one side's
//!   end of input becomes `shutdown(SHUT_WR)` on the other (half-close propagated); the
//!   session ends when both directions are done, on the idle timeout, or on an error.
//! - Stream client to UDP target: each chunk the client sends is one datagram; when the
//!   client ends its input (EOF, or it disconnected), the session waits
//!   [`ForwardOptions::eof_grace`] (default [`UDP_EOF_GRACE`], like socat's `-t 0.5`) for
//!   the last replies, then closes the client (FIN), so the client sees EOF. Stopping the
//!   forwarder does not wait for such sessions.
//! - UDP listener: one session per peer address, with its own socket (or stream) to the
//!   target; answers go back to that peer from the listening socket; a session ends after
//!   [`ForwardOptions::idle_timeout`] (default [`UDP_SESSION_IDLE`]) without a datagram
//!   either way. Datagrams are forwarded whole.
//! - Past [`ForwardOptions::max_conns`] sessions, and for peers the [`AccessList`] refuses,
//!   a connection is accepted and closed at once (a datagram is dropped); an
//!   [`Event::Refused`] says so.
//! - `EMFILE`/`ENFILE` on accept pause accepting for 100 ms instead of ending the server.
//!
//! The library never prints: everything that happens is an [`Event`] given to a callback.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::access::AccessList;
use crate::addr::{Port, SockType, parse_host_port};
use crate::client::{self, ConnectOptions};
use crate::dump::{SessionTap, SharedLog};
use crate::error::{Error, ErrorKind, Result};
use crate::relay::{self, DatagramSocket, RelayOptions, Tap};
use crate::sockopt::SocketOptions;
use crate::unix::UnixAddr;

/// How long a UDP session lives without traffic when no idle timeout is given (60 s).
pub const UDP_SESSION_IDLE: Duration = Duration::from_secs(60);
/// How long a stream-to-UDP session still relays replies after its client's end of input
/// (0.5 s, socat's `-t` default), unless [`ForwardOptions::eof_grace`] says otherwise.
pub const UDP_EOF_GRACE: Duration = Duration::from_millis(500);
/// Default limit of concurrent sessions (`--max-conns`).
pub const DEFAULT_MAX_CONNS: usize = 1024;
const LISTEN_BACKLOG: i32 = 1024;
const UDP_QUEUE: usize = 1024;
const DATAGRAM_BUF: usize = 65_536;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// A TCP stream.
    Tcp,
    /// UDP datagrams.
    Udp,
}

/// One side of a forward: an IP address and port (TCP or UDP), or a Unix stream socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp:HOST:PORT` / `udp:HOST:PORT`; a listen side without host binds 127.0.0.1.
    Ip {
        /// TCP or UDP.
        proto: Proto,
        /// Host name or address (`None`: only a port was given).
        host: Option<String>,
        /// Port number or service name.
        port: Port,
    },
    /// `unix:PATH` (or a word starting with `/`, `./` or `@`).
    Unix(UnixAddr),
    /// `unixgram:PATH` (Go's and the ss tool's name for it): a Unix datagram socket, as a
    /// target only. The forwarder's socket is bound by Linux autobind, so the target
    /// answers to it.
    UnixDgram(UnixAddr),
}

impl Endpoint {
    /// Parses one address word of `sockit forward`.
    ///
    /// Forms: `PORT`, `HOST:PORT`, `[V6]:PORT`, each optionally prefixed `tcp:` or `udp:`
    /// (without a prefix, `udp` decides: the `-u` flag); `unix:PATH`, `/path`, `./path`,
    /// `@abstract` for a Unix stream socket; `unixgram:PATH` (or `unixgram:@name`) for a
    /// Unix datagram socket.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a missing or bad port or host, as
    /// [`parse_host_port`] says, a bad Unix path, or an empty abstract name (`@`).
    ///
    /// # Examples
    /// ```
    /// use sockit::forward::{Endpoint, Proto};
    /// let e = Endpoint::parse("udp:[::1]:53", false).unwrap();
    /// assert_eq!(e.to_string(), "udp:[::1]:53");
    /// assert_eq!(Endpoint::parse("8080", true).unwrap().to_string(), "udp:8080");
    /// assert_eq!(Endpoint::parse("/tmp/s", false).unwrap().to_string(), "unix:/tmp/s");
    /// ```
    pub fn parse(text: &str, udp: bool) -> Result<Endpoint> {
        let unix = |path: &str| {
            if path == "@" {
                return Err(Error::invalid_input(
                    "unix",
                    "empty abstract Unix socket name (@ needs a name after it)",
                ));
            }
            Ok(Endpoint::Unix(UnixAddr::parse(path)?))
        };
        if let Some(path) = text.strip_prefix("unix:") {
            return unix(path);
        }
        if let Some(path) = text.strip_prefix("unixgram:") {
            return match unix(path)? {
                Endpoint::Unix(a) => Ok(Endpoint::UnixDgram(a)),
                other => Ok(other),
            };
        }
        if text.starts_with('/') || text.starts_with("./") || text.starts_with('@') {
            return unix(text);
        }
        let (proto, rest) = if let Some(r) = text.strip_prefix("tcp:") {
            (Proto::Tcp, r)
        } else if let Some(r) = text.strip_prefix("udp:") {
            (Proto::Udp, r)
        } else if udp {
            (Proto::Udp, text)
        } else {
            (Proto::Tcp, text)
        };
        let hp = parse_host_port(&[rest])?;
        Ok(Endpoint::Ip {
            proto,
            host: hp.host,
            port: hp.port,
        })
    }

    /// Checks that this address can be a target: port 0 picks a free port for a listener,
    /// but there is nothing to connect to at port 0.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for port 0.
    pub fn check_target(&self) -> Result<()> {
        match self {
            Endpoint::Ip {
                port: Port::Number(0),
                ..
            } => Err(Error::invalid_input(
                "target",
                format!("{self}: a target needs a real port, not 0"),
            )),
            _ => Ok(()),
        }
    }

    fn socktype(&self) -> SockType {
        match self {
            Endpoint::Ip {
                proto: Proto::Udp, ..
            }
            | Endpoint::UnixDgram(_) => SockType::Dgram,
            _ => SockType::Stream,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Ip { proto, host, port } => {
                let p = match proto {
                    Proto::Tcp => "tcp",
                    Proto::Udp => "udp",
                };
                match host {
                    Some(h) if h.contains(':') => write!(f, "{p}:[{h}]:{port}"),
                    Some(h) => write!(f, "{p}:{h}:{port}"),
                    None => write!(f, "{p}:{port}"),
                }
            }
            Endpoint::Unix(a) => write!(f, "unix:{a}"),
            Endpoint::UnixDgram(a) => write!(f, "unixgram:{a}"),
        }
    }
}

/// How a forwarder behaves.
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    /// At most this many sessions at once (`--max-conns`); more are closed at once.
    pub max_conns: usize,
    /// End a session after this long without a byte either way (`-i`); UDP sessions use
    /// [`UDP_SESSION_IDLE`] when it is `None`.
    pub idle_timeout: Option<Duration>,
    /// Time allowed to connect to the target (`-w`), lookup included.
    pub connect_timeout: Option<Duration>,
    /// Stream client to UDP target: after the client's end of input, relay replies for
    /// this long, then close the session (`-q`; default [`UDP_EOF_GRACE`]).
    pub eof_grace: Duration,
    /// Which peers may use the forwarder (`--allow`/`--deny`).
    pub access: AccessList,
    /// Family and numeric-only flags for the lookups of both addresses (`-4`/`-6`/`-n`).
    pub lookup: ConnectOptions,
    /// Socket options for the listener (inherited by accepted sockets) and the target
    /// connections.
    pub sockopts: SocketOptions,
    /// Where `-x`/`-o` record both directions of every session, if anywhere (each
    /// session labelled `#id peer`; a write error stops it, see [`SharedLog`]).
    pub log: Option<Arc<SharedLog>>,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            max_conns: DEFAULT_MAX_CONNS,
            idle_timeout: None,
            connect_timeout: None,
            eof_grace: UDP_EOF_GRACE,
            access: AccessList::default(),
            lookup: ConnectOptions::default(),
            sockopts: SocketOptions::default(),
            log: None,
        }
    }
}

/// Something a forwarder did (for `-v` and `--json`).
#[derive(Debug, Clone)]
pub enum Event {
    /// A session began: a connection was accepted, or a new UDP peer sent a datagram.
    Accepted {
        /// Session number, from 1.
        id: u64,
        /// The client's address (numeric), or `unix` for a Unix client.
        peer: String,
    },
    /// A client was refused and closed at once (`reason`: access list or max-conns).
    Refused {
        /// The client's address.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The session's connection to the target is up.
    Connected {
        /// Session number.
        id: u64,
        /// The target address that answered.
        target: String,
    },
    /// Connecting to the target failed; the client was closed.
    ConnectFailed {
        /// Session number.
        id: u64,
        /// Why.
        error: Error,
    },
    /// A session ended.
    Closed {
        /// Session number.
        id: u64,
        /// The client's address.
        peer: String,
        /// Bytes relayed from the client to the target.
        bytes_to_target: u64,
        /// Bytes relayed from the target to the client.
        bytes_to_client: u64,
        /// How long the session lasted.
        duration: Duration,
        /// The error that ended it, if one did (`idle: timed out` for the idle timeout).
        error: Option<Error>,
    },
}

/// The callback that receives [`Event`]s.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// The address a forwarder listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAddr {
    /// An IP listener (TCP or UDP).
    Ip(SocketAddr, Proto),
    /// A Unix stream listener.
    Unix(UnixAddr),
}

enum Bound {
    Tcp(TcpListener),
    Udp(Arc<UdpSocket>),
    Unix(UnixListener, UnixAddr),
}

/// A bound forwarder, ready to [`run`](Forwarder::run).
pub struct Forwarder {
    bound: Bound,
    applied: Vec<crate::sockopt::Applied>,
    target: Arc<Endpoint>,
    opts: Arc<ForwardOptions>,
}

impl fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarder")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The host an address without one stands for: `::1` when only IPv6 is asked for (`-6`),
/// else 127.0.0.1 (as `listen` and `echo-server` do).
pub fn default_host(lookup: &ConnectOptions) -> &'static str {
    if lookup.family == Some(crate::addr::Family::Inet6) {
        "::1"
    } else {
        "127.0.0.1"
    }
}

fn first_addr(
    host: &str,
    port: &Port,
    socktype: SockType,
    opts: &ConnectOptions,
) -> Result<SocketAddr> {
    let addrs = client::resolve(host, port, socktype, opts)?;
    addrs
        .first()
        .copied()
        .ok_or_else(|| Error::gai("getaddrinfo", libc::EAI_NONAME))
}

fn ip_socket(addr: SocketAddr, socktype: SockType) -> Result<socket2::Socket> {
    let ty = match socktype {
        SockType::Dgram => socket2::Type::DGRAM,
        _ => socket2::Type::STREAM,
    };
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), ty.cloexec(), None)
        .map_err(|e| Error::from_io("socket", e))?;
    s.set_nonblocking(true)
        .map_err(|e| Error::from_io("fcntl", e))?;
    Ok(s)
}

impl Forwarder {
    /// Binds the listening side (`socket(2)`, `SO_REUSEADDR`, the socket options, `bind(2)`,
    /// `listen(2)`). Must run inside a tokio runtime.
    ///
    /// A listen address without a host binds 127.0.0.1 (`::1` when the lookup options ask
    /// for IPv6 only, see [`default_host`]); a host name is looked up with one
    /// `getaddrinfo(3)` call and its first address bound; IPv6 listeners set
    /// `IPV6_V6ONLY`. A Unix path left by a dead server is removed first (only after a
    /// connect to it is refused).
    ///
    /// # Errors
    /// - [`ErrorKind::Gai`] when the listen host cannot be looked up.
    /// - [`ErrorKind::InvalidInput`] for `max_conns` 0, a target with port 0, a socket
    ///   option that does not apply or is out of range, or an access list on a Unix listener (its peers have no IP address).
    /// - [`ErrorKind::Os`] from `bind(2)` (`[Errno 98] Address already in use`) or another
    ///   call.
    pub fn bind(listen: &Endpoint, target: Endpoint, opts: ForwardOptions) -> Result<Forwarder> {
        if opts.max_conns == 0 {
            return Err(Error::invalid_input(
                "max-conns",
                "at least 1 session is needed (0 would refuse every client)",
            ));
        }
        target.check_target()?;
        opts.sockopts.validate()?;
        if matches!(listen, Endpoint::Unix(_)) && !opts.access.is_open() {
            return Err(Error::invalid_input(
                "access",
                "--allow/--deny match IP peers; a Unix listener has none",
            ));
        }
        let applied;
        let bound = match listen {
            Endpoint::UnixDgram(_) => {
                return Err(Error::invalid_input(
                    "listen",
                    format!("{listen}: a Unix datagram socket can be a target, not yet a listener"),
                ));
            }
            Endpoint::Unix(addr) => {
                let l = crate::unix::bind_listener(addr, LISTEN_BACKLOG)?;
                applied = opts.sockopts.apply(&l)?;
                let l = UnixListener::from_std(l).map_err(|e| Error::from_io("listen", e))?;
                Bound::Unix(l, addr.clone())
            }
            Endpoint::Ip { proto, host, port } => {
                let host = host.as_deref().unwrap_or(default_host(&opts.lookup));
                let addr = first_addr(host, port, listen.socktype(), &opts.lookup)?;
                let s = ip_socket(addr, listen.socktype())?;
                s.set_reuse_address(true)
                    .map_err(|e| Error::from_io("setsockopt(SO_REUSEADDR)", e))?;
                if addr.is_ipv6() {
                    s.set_only_v6(true)
                        .map_err(|e| Error::from_io("setsockopt(IPV6_V6ONLY)", e))?;
                }
                applied = opts.sockopts.apply(&s)?;
                s.bind(&addr.into())
                    .map_err(|e| Error::from_io("bind", e))?;
                match proto {
                    Proto::Tcp => {
                        s.listen(LISTEN_BACKLOG)
                            .map_err(|e| Error::from_io("listen", e))?;
                        let l = TcpListener::from_std(s.into())
                            .map_err(|e| Error::from_io("listen", e))?;
                        Bound::Tcp(l)
                    }
                    Proto::Udp => {
                        let u =
                            UdpSocket::from_std(s.into()).map_err(|e| Error::from_io("bind", e))?;
                        Bound::Udp(Arc::new(u))
                    }
                }
            }
        };
        Ok(Forwarder {
            bound,
            applied,
            target: Arc::new(target),
            opts: Arc::new(opts),
        })
    }

    /// The address bound (the port the system chose for port 0).
    ///
    /// # Errors
    /// [`ErrorKind::Os`] from `getsockname(2)`.
    pub fn local_addr(&self) -> Result<LocalAddr> {
        let e = |e| Error::from_io("getsockname", e);
        Ok(match &self.bound {
            Bound::Tcp(l) => LocalAddr::Ip(l.local_addr().map_err(e)?, Proto::Tcp),
            Bound::Udp(u) => LocalAddr::Ip(u.local_addr().map_err(e)?, Proto::Udp),
            Bound::Unix(_, a) => LocalAddr::Unix(a.clone()),
        })
    }

    /// The socket options set on the listening socket, as read back with `getsockopt(2)`.
    pub fn applied(&self) -> &[crate::sockopt::Applied] {
        &self.applied
    }

    /// Serves until an accept error that is not about one connection (it never returns
    /// `Ok` by itself; the caller stops it by dropping the future). See
    /// [`run_until`](Forwarder::run_until).
    ///
    /// # Errors
    /// As [`run_until`](Forwarder::run_until).
    pub async fn run(self, events: EventSink) -> Result<()> {
        self.run_until(events, std::future::pending()).await
    }

    /// Serves until `stop` completes, then stops accepting (the listening socket is
    /// closed) and waits for the stream sessions in flight to finish; UDP sessions end at
    /// once (a datagram session has no end to wait for), and so do stream-to-UDP sessions
    /// whose client has already ended its input (only replies could still come). The caller bounds the wait by
    /// dropping the future (a second signal).
    ///
    /// # Errors
    /// [`ErrorKind::Os`] from `accept(2)`/`recvfrom(2)` for an error that would repeat
    /// (not `EMFILE`/`ENFILE`, which pause accepting, nor `ECONNABORTED`).
    pub async fn run_until(
        self,
        events: EventSink,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let active = Arc::new(AtomicUsize::new(0));
        let lingering = Arc::new(AtomicUsize::new(0));
        let Forwarder {
            bound,
            target,
            opts,
            ..
        } = self;
        tokio::pin!(stop);
        let mut sessions = Sessions {
            target: target.clone(),
            opts: opts.clone(),
            events: events.clone(),
            active: active.clone(),
            lingering: lingering.clone(),
            next_id: 0,
        };
        match bound {
            Bound::Tcp(l) => loop {
                let (stream, peer) = tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    r = l.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            accept_error(e).await?;
                            continue;
                        }
                    },
                };
                let ip = Some(peer.ip());
                sessions
                    .start(stream, TcpStream::into_split, peer.to_string(), ip)
                    .await;
            },
            Bound::Unix(l, _) => loop {
                let (stream, peer) = tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    r = l.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            accept_error(e).await?;
                            continue;
                        }
                    },
                };
                let peer_text = peer
                    .as_pathname()
                    .map_or("unix".to_string(), |p| format!("unix:{}", p.display()));
                sessions
                    .start(stream, UnixStream::into_split, peer_text, None)
                    .await;
            },
            Bound::Udp(sock) => {
                return tokio::select! {
                    r = udp_dispatch(sock, target, opts, events, active) => r,
                    _ = &mut stop => Ok(()),
                };
            }
        }
        // Stream sessions in flight finish their work; a stream-to-UDP session whose client
        // has ended its input has no work left but replies, and is not waited for.
        while active.load(Ordering::SeqCst) > lingering.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

async fn accept_error(e: std::io::Error) -> Result<()> {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        }
        Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM) => Ok(()),
        _ => Err(Error::from_io("accept", e)),
    }
}

/// What every accepted stream session shares: the target, the options, the event sink and
/// the counters; [`Sessions::start`] admits a client and spawns its session.
struct Sessions {
    target: Arc<Endpoint>,
    opts: Arc<ForwardOptions>,
    events: EventSink,
    active: Arc<AtomicUsize>,
    lingering: Arc<AtomicUsize>,
    next_id: u64,
}

impl Sessions {
    /// Checks the access list and `--max-conns` (a refused client is closed at once), then
    /// splits the stream with `split` and relays it to the target in its own task.
    async fn start<S, R, W>(
        &mut self,
        stream: S,
        split: fn(S) -> (R, W),
        peer: String,
        ip: Option<IpAddr>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        if !admit(&self.opts, &self.active, ip, &peer, &self.events) {
            close_now(stream).await;
            return;
        }
        self.next_id += 1;
        let (r, w) = split(stream);
        spawn_stream_session(
            self.next_id,
            peer,
            r,
            w,
            self.target.clone(),
            self.opts.clone(),
            self.events.clone(),
            self.active.clone(),
            self.lingering.clone(),
        );
    }
}

/// Access list and max-conns check; on success counts the session as active.
fn admit(
    opts: &ForwardOptions,
    active: &AtomicUsize,
    ip: Option<IpAddr>,
    peer: &str,
    events: &EventSink,
) -> bool {
    if let Some(ip) = ip
        && !opts.access.permits(ip)
    {
        events(Event::Refused {
            peer: peer.to_string(),
            reason: "not allowed by --allow/--deny".into(),
        });
        return false;
    }
    if active.fetch_add(1, Ordering::SeqCst) >= opts.max_conns {
        active.fetch_sub(1, Ordering::SeqCst);
        events(Event::Refused {
            peer: peer.to_string(),
            reason: format!("--max-conns {} reached", opts.max_conns),
        });
        return false;
    }
    true
}

/// Closes a client cleanly: half-close, drain what it already sent (so the close is a FIN,
/// not a reset), then drop.
async fn close_now<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let _ = s.shutdown().await;
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
}

/// The session's tap of the shared traffic log, labelled `#id peer`.
fn tap_for(opts: &ForwardOptions, id: u64, peer: &str) -> Option<SessionTap> {
    opts.log
        .as_ref()
        .map(|log| log.tap(Some(format!("#{id} {peer}"))))
}

/// A connected target: a stream (split) or a connected UDP socket.
enum TargetConn {
    Stream(
        Box<dyn AsyncRead + Unpin + Send>,
        Box<dyn AsyncWrite + Unpin + Send>,
        String,
    ),
    Datagram(DgramTarget, String),
}

/// A connected datagram target: a UDP socket or a Unix datagram socket.
enum DgramTarget {
    Udp(UdpSocket),
    Unix(tokio::net::UnixDatagram),
}

impl relay::DatagramSocket for DgramTarget {
    async fn send_datagram(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            DgramTarget::Udp(u) => u.send(buf).await,
            DgramTarget::Unix(u) => u.send(buf).await,
        }
    }
    async fn recv_datagram(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DgramTarget::Udp(u) => u.recv(buf).await,
            DgramTarget::Unix(u) => u.recv(buf).await,
        }
    }
}

async fn connect_target(target: &Endpoint, opts: &ForwardOptions) -> Result<TargetConn> {
    let timeout = opts.connect_timeout;
    match target {
        Endpoint::Ip {
            proto: Proto::Tcp,
            host,
            port,
        } => {
            let host = host.as_deref().unwrap_or(default_host(&opts.lookup));
            let copts = ConnectOptions {
                timeout,
                ..opts.lookup.clone()
            };
            let c = client::connect_happy(host, port, &copts).await?;
            opts.sockopts.apply(&c.stream)?;
            let (r, w) = c.stream.into_split();
            Ok(TargetConn::Stream(
                Box::new(r),
                Box::new(w),
                c.peer.to_string(),
            ))
        }
        Endpoint::Ip {
            proto: Proto::Udp,
            host,
            port,
        } => {
            let host = host
                .as_deref()
                .unwrap_or(default_host(&opts.lookup))
                .to_string();
            let (port, lookup) = (port.clone(), opts.lookup.clone());
            let addr = tokio::task::spawn_blocking(move || {
                first_addr(&host, &port, SockType::Dgram, &lookup)
            })
            .await
            .map_err(|e| Error::new(ErrorKind::Os, "getaddrinfo", None, e.to_string()))??;
            let s = ip_socket(addr, SockType::Dgram)?;
            opts.sockopts.apply(&s)?;
            let u = UdpSocket::from_std(s.into()).map_err(|e| Error::from_io("socket", e))?;
            u.connect(addr)
                .await
                .map_err(|e| Error::from_io("connect", e))?;
            Ok(TargetConn::Datagram(DgramTarget::Udp(u), addr.to_string()))
        }
        Endpoint::UnixDgram(addr) => {
            let s = crate::unix::connect_datagram(addr)?;
            opts.sockopts.apply(&s)?;
            let u =
                tokio::net::UnixDatagram::from_std(s).map_err(|e| Error::from_io("connect", e))?;
            Ok(TargetConn::Datagram(
                DgramTarget::Unix(u),
                format!("unixgram:{addr}"),
            ))
        }
        Endpoint::Unix(addr) => {
            let a = addr.clone();
            let s = tokio::task::spawn_blocking(move || crate::unix::connect_stream(&a, timeout))
                .await
                .map_err(|e| Error::new(ErrorKind::Os, "connect", None, e.to_string()))??;
            opts.sockopts.apply(&s)?;
            let s =
                tokio::net::UnixStream::from_std(s).map_err(|e| Error::from_io("connect", e))?;
            let (r, w) = s.into_split();
            Ok(TargetConn::Stream(
                Box::new(r),
                Box::new(w),
                format!("unix:{addr}"),
            ))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_stream_session<R, W>(
    id: u64,
    peer: String,
    mut r: R,
    mut w: W,
    target: Arc<Endpoint>,
    opts: Arc<ForwardOptions>,
    events: EventSink,
    active: Arc<AtomicUsize>,
    lingering: Arc<AtomicUsize>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let started = Instant::now();
        events(Event::Accepted {
            id,
            peer: peer.clone(),
        });
        let conn = match connect_target(&target, &opts).await {
            Ok(c) => c,
            Err(error) => {
                events(Event::ConnectFailed { id, error });
                let _ = w.shutdown().await;
                let mut buf = [0u8; 4096];
                for _ in 0..16 {
                    match tokio::time::timeout(Duration::from_millis(1), r.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => break,
                    }
                }
                active.fetch_sub(1, Ordering::SeqCst);
                return;
            }
        };
        let tap = tap_for(&opts, id, &peer);
        let tap_ref = tap.as_ref().map(|t| t as &dyn Tap);
        let outcome = match conn {
            TargetConn::Stream(mut tr, mut tw, addr) => {
                events(Event::Connected { id, target: addr });
                let ropts = RelayOptions {
                    idle_timeout: opts.idle_timeout,
                    quit_after_eof: None,
                    shutdown_on_eof: true,
                    end_on_remote_eof: false,
                };
                relay::relay_stream(&mut r, &mut w, &mut tr, &mut tw, &ropts, tap_ref).await
            }
            TargetConn::Datagram(u, addr) => {
                events(Event::Connected { id, target: addr });
                let idle = opts.idle_timeout.unwrap_or(UDP_SESSION_IDLE);
                let ropts = RelayOptions {
                    idle_timeout: Some(idle),
                    quit_after_eof: Some(opts.eof_grace),
                    shutdown_on_eof: true,
                    end_on_remote_eof: false,
                };
                let mut watched = EofWatch {
                    inner: &mut r,
                    lingering: &lingering,
                    seen: false,
                };
                let outcome =
                    relay::relay_datagrams(&mut watched, &mut w, &u, &ropts, tap_ref).await;
                if watched.seen {
                    lingering.fetch_sub(1, Ordering::SeqCst);
                }
                // The client sees EOF now, not when the task is dropped.
                let _ = tokio::time::timeout(Duration::from_millis(100), w.shutdown()).await;
                outcome
            }
        };
        active.fetch_sub(1, Ordering::SeqCst);
        events(Event::Closed {
            id,
            peer,
            bytes_to_target: outcome.totals.bytes_sent,
            bytes_to_client: outcome.totals.bytes_received,
            duration: started.elapsed(),
            error: outcome.result.err(),
        });
    });
}

/// A client reader that counts its session as `lingering` once the client's input ends
/// (read returned 0 bytes): from then on only replies can flow, so a stop does not wait.
struct EofWatch<'a, R> {
    inner: &'a mut R,
    lingering: &'a AtomicUsize,
    seen: bool,
}

impl<R: AsyncRead + Unpin> AsyncRead for EofWatch<'_, R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut *this.inner).poll_read(cx, buf);
        let eof = matches!(r, std::task::Poll::Ready(Ok(()))) && buf.filled().len() == before;
        let gone = matches!(r, std::task::Poll::Ready(Err(_)));
        if (eof && buf.remaining() > 0 || gone) && !this.seen {
            this.seen = true;
            this.lingering.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
}

type UdpSessions = Arc<Mutex<HashMap<SocketAddr, (u64, mpsc::Sender<Vec<u8>>)>>>;

async fn udp_dispatch(
    sock: Arc<UdpSocket>,
    target: Arc<Endpoint>,
    opts: Arc<ForwardOptions>,
    events: EventSink,
    active: Arc<AtomicUsize>,
) -> Result<()> {
    let sessions: UdpSessions = Arc::new(Mutex::new(HashMap::new()));
    let mut buf = vec![0u8; DATAGRAM_BUF];
    let mut id = 0u64;
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => match e.raw_os_error() {
                Some(
                    libc::ECONNREFUSED
                    | libc::EHOSTUNREACH
                    | libc::ENETUNREACH
                    | libc::EINTR
                    | libc::ENOBUFS
                    | libc::ENOMEM,
                ) => continue,
                _ => return Err(Error::from_io("recvfrom", e)),
            },
        };
        let mut data = buf[..n].to_vec();
        let existing = sessions
            .lock()
            .ok()
            .and_then(|m| m.get(&peer).map(|(_, tx)| tx.clone()));
        if let Some(tx) = existing {
            match tx.try_send(data) {
                Ok(()) => continue,
                // The session is behind: drop the datagram, as a full socket buffer would.
                Err(mpsc::error::TrySendError::Full(_)) => continue,
                // The session just ended: start a new one with this datagram.
                Err(mpsc::error::TrySendError::Closed(d)) => data = d,
            }
        }
        let peer_text = peer.to_string();
        if !admit(&opts, &active, Some(peer.ip()), &peer_text, &events) {
            continue;
        }
        id += 1;
        let (tx, rx) = mpsc::channel(UDP_QUEUE);
        let _ = tx.try_send(data);
        if let Ok(mut m) = sessions.lock() {
            m.insert(peer, (id, tx));
        }
        let (sock, target, opts, events, active, sessions) = (
            sock.clone(),
            target.clone(),
            opts.clone(),
            events.clone(),
            active.clone(),
            sessions.clone(),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            events(Event::Accepted {
                id,
                peer: peer_text.clone(),
            });
            let (up, down, error) = match connect_target(&target, &opts).await {
                Err(error) => {
                    events(Event::ConnectFailed { id, error });
                    (0, 0, None)
                }
                Ok(conn) => {
                    let tap = tap_for(&opts, id, &peer_text);
                    udp_session(conn, rx, &sock, peer, &opts, tap.as_ref(), &events, id).await
                }
            };
            if let Ok(mut m) = sessions.lock()
                && m.get(&peer).is_some_and(|(sid, _)| *sid == id)
            {
                m.remove(&peer);
            }
            active.fetch_sub(1, Ordering::SeqCst);
            if up + down > 0 || error.is_some() {
                events(Event::Closed {
                    id,
                    peer: peer_text,
                    bytes_to_target: up,
                    bytes_to_client: down,
                    duration: started.elapsed(),
                    error,
                });
            }
        });
    }
}

/// One UDP peer's session: datagrams from `rx` go to the target; what the target sends goes
/// back to `peer` from the listening socket. Returns (bytes to target, bytes to client,
/// error).
#[allow(clippy::too_many_arguments)]
async fn udp_session(
    mut conn: TargetConn,
    mut rx: mpsc::Receiver<Vec<u8>>,
    sock: &UdpSocket,
    peer: SocketAddr,
    opts: &ForwardOptions,
    tap: Option<&SessionTap>,
    events: &EventSink,
    id: u64,
) -> (u64, u64, Option<Error>) {
    let idle = opts.idle_timeout.unwrap_or(UDP_SESSION_IDLE);
    let (mut up, mut down) = (0u64, 0u64);
    let mut last = Instant::now();
    let mut buf = vec![0u8; DATAGRAM_BUF];
    let record = |dir, bytes: &[u8]| {
        if let Some(t) = tap {
            t.data(dir, bytes);
        }
    };
    events(Event::Connected {
        id,
        target: conn.addr().to_owned(),
    });
    loop {
        tokio::select! {
            d = rx.recv() => {
                let Some(d) = d else { return (up, down, None) };
                last = Instant::now();
                record(relay::Direction::Send, &d);
                if let Err(e) = conn.send(&d).await {
                    return (up, down, Some(Error::from_io("send", e)));
                }
                up += d.len() as u64;
            }
            r = conn.recv(&mut buf) => match r {
                Ok(None) => return (up, down, None),
                Ok(Some(n)) => {
                    last = Instant::now();
                    record(relay::Direction::Recv, &buf[..n]);
                    if let Err(e) = sock.send_to(&buf[..n], peer).await {
                        return (up, down, Some(Error::from_io("sendto", e)));
                    }
                    down += n as u64;
                }
                Err(e) => return (up, down, Some(Error::from_io("recv", e))),
            },
            _ = tokio::time::sleep_until(last + idle) => {
                return (up, down, Some(Error::timeout("idle")));
            }
        }
    }
}

impl TargetConn {
    /// The target's address, as the `connected` event names it.
    fn addr(&self) -> &str {
        match self {
            TargetConn::Stream(_, _, a) | TargetConn::Datagram(_, a) => a,
        }
    }

    /// One client datagram to the target: `send(2)` as one datagram, or its bytes written
    /// whole to a stream (boundaries are not kept there).
    async fn send(&mut self, d: &[u8]) -> io::Result<()> {
        match self {
            TargetConn::Datagram(u, _) => u.send_datagram(d).await.map(|_| ()),
            TargetConn::Stream(_, w, _) => w.write_all(d).await,
        }
    }

    /// What the target sent next: one datagram (which may be empty), or the bytes one
    /// `read(2)` of a stream got; `None` once the stream has ended.
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            TargetConn::Datagram(u, _) => u.recv_datagram(buf).await.map(Some),
            TargetConn::Stream(r, _, _) => r.read(buf).await.map(|n| (n > 0).then_some(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_words() {
        let e = Endpoint::parse("127.0.0.1:80", false).unwrap();
        assert_eq!(
            e,
            Endpoint::Ip {
                proto: Proto::Tcp,
                host: Some("127.0.0.1".into()),
                port: Port::Number(80)
            }
        );
        assert_eq!(
            Endpoint::parse("udp:5353", false).unwrap().to_string(),
            "udp:5353"
        );
        assert_eq!(Endpoint::parse("tcp:9", true).unwrap().to_string(), "tcp:9");
        assert_eq!(
            Endpoint::parse("unix:@x", false).unwrap().to_string(),
            "unix:@x"
        );
        assert!(Endpoint::parse("", false).is_err());
        assert!(Endpoint::parse("host", false).is_err());
        assert!(Endpoint::parse("tcp:70000", false).is_err());
        // Regression: an empty abstract name was accepted.
        assert!(Endpoint::parse("@", false).is_err());
        assert!(Endpoint::parse("unix:@", false).is_err());
    }
}
