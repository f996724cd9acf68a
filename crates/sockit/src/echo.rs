//! The echo server (tokio): TCP, UDP and Unix, concurrent and bounded.
//!
//! Python: the slides' `echo_server.py` (`bind`, `listen`, `accept`, `recv`, `sendall` in a
//! loop), grown into a server that serves every client at once.
//!
//! # Contract
//! - [`EchoServer::bind`] creates, binds and (for streams) listens on every socket before it
//!   returns, so a caller can print the bound addresses and clients can connect at once.
//! - [`EchoServer::start`] serves on one current-thread tokio runtime per worker thread
//!   (thread per core; TCP and UDP sockets are bound once per worker with `SO_REUSEPORT`,
//!   so the kernel spreads connections and peers over the workers).
//! - Every byte a stream client sends comes back in order. A connection whose client does
//!   not read stops being read (at most one read buffer of bytes waits per connection), so
//!   a flooding, silent or slow client never delays another.
//! - Each UDP datagram comes back whole to its sender (up to 65,507 bytes on IPv4 and
//!   65,527 on IPv6); a zero-length datagram is echoed and ends nothing. A Unix datagram
//!   from an unbound sender cannot be answered and is dropped ([`Event::Dropped`]).
//! - Reads go into one buffer per worker thread; bytes a client has not yet taken are kept
//!   per connection in a buffer allocated once, so serving allocates nothing per message.
//! - `EMFILE`/`ENFILE`/`ENOBUFS`/`ENOMEM` from `accept(2)` pause accepting for
//!   [`ACCEPT_PAUSE`] and then retry: the server neither exits nor spins.
//! - Past [`EchoConfig::max_conns`] open connections a new one is accepted and closed at
//!   once ([`Event::Rejected`]).
//! - [`EchoHandle::stop`] ends accepting; bytes already read are echoed for up to
//!   [`STOP_GRACE`], then every connection is closed and a Unix socket file the server
//!   created is removed. The library never prints: everything it has to say goes through
//!   the [`Event`] callback and the returned [`EchoStats`].

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{Domain, Socket as RawSocket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{Error, Result};
use crate::unix::UnixAddr;

// The event-loop engine batches UDP with recvmmsg/sendmmsg (Linux only); elsewhere every
// transport is served by the tokio tasks engine (`worker`), whatever `tcp_engine` says.
#[cfg(target_os = "linux")]
mod tcp;

/// The slides' port, used when no port is given: 50007.
pub const DEFAULT_PORT: u16 = 50007;
/// How long accepting pauses after `EMFILE`/`ENFILE` (and other resource shortages).
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long a stop waits for bytes already read to be echoed before closing connections.
pub const STOP_GRACE: Duration = Duration::from_secs(1);
/// The largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
pub const MAX_UDP_V4: usize = 65_507;
/// The largest UDP payload over IPv6 (without jumbograms): 65,535 − 8.
pub const MAX_UDP_V6: usize = 65_527;
/// The largest Unix datagram echoed, in bytes: Linux's default `net.core.wmem_max`, so
/// every datagram a sender with the default limits can send comes back whole; longer ones
/// are dropped and reported ([`Event::Dropped`]).
pub const MAX_UNIX_DGRAM: usize = 212_992;
/// The `listen(2)` backlog of stream listeners (the kernel caps it at `somaxconn`).
pub const BACKLOG: i32 = 4096;
/// Size of the read buffer of each worker thread, in bytes (also the largest datagram).
pub const BUF_BYTES: usize = 65_536;
/// How many times `--tcp --udp` on port 0 tries a new port when UDP's is taken.
const TCP_UDP_TRIES: usize = 16;

/// What to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// TCP on an IP address (`SOCK_STREAM`).
    Tcp(SocketAddr),
    /// UDP on an IP address (`SOCK_DGRAM`).
    Udp(SocketAddr),
    /// TCP and UDP on the same port: UDP binds the port TCP got (port 0 picks one free for
    /// both).
    TcpUdp(SocketAddr),
    /// A Unix stream socket at a path, or at a Linux abstract name (`@name`).
    UnixStream(UnixAddr),
    /// A Unix datagram socket at a path, or at a Linux abstract name (`@name`).
    UnixDgram(UnixAddr),
}

/// Settings of an echo server.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// What to listen on.
    pub listen: Listen,
    /// Open stream connections allowed at once; past it a connection is accepted and
    /// closed at once. Default 1024.
    pub max_conns: usize,
    /// A stream connection with no traffic either way for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// Worker threads; 0 means one per CPU this process may run on
    /// (`std::thread::available_parallelism`, which honours `taskset`). Unix sockets
    /// are served by the first worker only.
    pub threads: usize,
    /// `IPV6_V6ONLY` for IPv6 listeners, always set explicitly. Default true; false
    /// (dual-stack) makes sense only for the wildcard address `::`.
    pub only_v6: bool,
    /// Report every datagram as [`Event::Datagram`] (off by default: a busy UDP server
    /// would report millions).
    pub datagram_events: bool,
    /// How TCP connections are served (default [`TcpEngine::EventLoop`]).
    pub tcp_engine: TcpEngine,
}

/// How the server drives its TCP connections. Both keep every guarantee of the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpEngine {
    /// One mio (epoll) event loop per worker thread that handles each readiness event in
    /// place: the system calls of a C epoll server and a fraction of the user-space work
    /// of a task per connection. The default. Linux only (its UDP batches use
    /// `recvmmsg(2)`/`sendmmsg(2)`): elsewhere the server runs [`TcpEngine::Tasks`].
    #[default]
    EventLoop,
    /// One tokio task per connection on the worker's current-thread runtime (as Unix
    /// stream connections are served).
    Tasks,
}

impl EchoConfig {
    /// Settings with the defaults: 1024 connections, no idle timeout, one worker per CPU,
    /// IPv6 only on IPv6 addresses, no per-datagram events.
    pub fn new(listen: Listen) -> EchoConfig {
        EchoConfig {
            listen,
            max_conns: 1024,
            idle_timeout: None,
            threads: 0,
            only_v6: true,
            datagram_events: false,
            tcp_engine: TcpEngine::EventLoop,
        }
    }
}

/// The transport a socket of the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Unix stream.
    UnixStream,
    /// Unix datagram.
    UnixDgram,
}

impl Transport {
    /// Short name: `tcp`, `udp`, `unix`, `unixgram` (as socat names them).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::UnixStream => "unix",
            Transport::UnixDgram => "unixgram",
        }
    }
}

/// Where the server listens, once bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// An IP socket's local address (`getsockname(2)`).
    Ip(Transport, SocketAddr),
    /// A Unix socket's address (a path or an abstract name).
    Unix(Transport, UnixAddr),
}

/// A peer of the server, as text-ready data (never looked up by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// An IP peer.
    Ip(SocketAddr),
    /// A Unix peer: its bound path or abstract name (Linux autobind gives one), or
    /// `None` for an unnamed socket.
    Unix(Option<UnixAddr>),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Ip(a) => write!(f, "{a}"),
            Peer::Unix(Some(a)) => write!(f, "{a}"),
            Peer::Unix(None) => f.write_str("(unnamed)"),
        }
    }
}

/// Why a stream connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client shut down its side and every byte was echoed.
    Eof,
    /// No traffic for the idle timeout.
    Idle,
    /// The server stopped.
    Stopped,
    /// A system call failed (for example `ECONNRESET`).
    Error(Error),
}

/// Something the server has to report. The library never prints; the caller does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A stream connection was accepted; `open` connections are now open (this one included).
    Accepted {
        /// TCP or Unix stream.
        transport: Transport,
        /// The client.
        peer: Peer,
        /// Open connections now, server-wide.
        open: usize,
    },
    /// A stream connection ended.
    Closed {
        /// TCP or Unix stream.
        transport: Transport,
        /// The client.
        peer: Peer,
        /// Bytes echoed back to it.
        bytes_echoed: u64,
        /// How long it was open.
        duration: Duration,
        /// Why it ended.
        reason: CloseReason,
    },
    /// A connection past `max_conns` was accepted and closed at once.
    Rejected {
        /// TCP or Unix stream.
        transport: Transport,
        /// The client.
        peer: Peer,
        /// The limit in force.
        max_conns: usize,
    },
    /// `accept(2)` failed with a resource shortage (`EMFILE`, `ENFILE` ...) or an
    /// unexpected error: accepting pauses for `pause`, then retries.
    AcceptPaused {
        /// TCP or Unix stream.
        transport: Transport,
        /// The error.
        error: Error,
        /// How long accepting pauses.
        pause: Duration,
    },
    /// A datagram was echoed (only with [`EchoConfig::datagram_events`]).
    Datagram {
        /// UDP or Unix datagram.
        transport: Transport,
        /// The sender.
        peer: Peer,
        /// Payload bytes.
        bytes: usize,
    },
    /// A datagram was not echoed: its sender cannot be answered (an unbound Unix socket)
    /// or `sendto(2)` failed.
    Dropped {
        /// UDP or Unix datagram.
        transport: Transport,
        /// The sender.
        peer: Peer,
        /// Payload bytes.
        bytes: usize,
        /// Why.
        reason: String,
    },
}

/// A callback receiving [`Event`]s; it runs on the worker threads, so keep it short.
pub type EventFn = Arc<dyn Fn(Event) + Send + Sync>;

/// Totals of a server's life, returned by [`EchoHandle::join`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Stream connections accepted and served.
    pub connections: u64,
    /// Stream connections accepted and closed at once (past `max_conns`).
    pub rejected: u64,
    /// Bytes echoed over streams.
    pub stream_bytes: u64,
    /// Datagrams echoed.
    pub datagrams: u64,
    /// Payload bytes of the datagrams echoed.
    pub datagram_bytes: u64,
    /// Datagrams dropped (unanswerable sender or failed send).
    pub dropped: u64,
}

#[derive(Default)]
struct Totals {
    connections: AtomicU64,
    rejected: AtomicU64,
    stream_bytes: AtomicU64,
    datagrams: AtomicU64,
    datagram_bytes: AtomicU64,
    dropped: AtomicU64,
}

impl Totals {
    /// Counts `datagrams` echoed datagrams of `bytes` bytes in all.
    fn add_datagrams(&self, datagrams: u64, bytes: u64) {
        self.datagrams.fetch_add(datagrams, Ordering::Relaxed);
        self.datagram_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn snapshot(&self) -> EchoStats {
        EchoStats {
            connections: self.connections.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            stream_bytes: self.stream_bytes.load(Ordering::Relaxed),
            datagrams: self.datagrams.load(Ordering::Relaxed),
            datagram_bytes: self.datagram_bytes.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// A bound, not yet serving, echo server.
#[derive(Debug)]
pub struct EchoServer {
    config: EchoConfig,
    /// One set of sockets per worker.
    workers: Vec<WorkerSockets>,
    bound: Vec<Bound>,
    unix_file: Option<UnixFile>,
}

#[derive(Debug, Default)]
struct WorkerSockets {
    tcp: Option<std::net::TcpListener>,
    udp: Option<std::net::UdpSocket>,
    unix_stream: Option<std::os::unix::net::UnixListener>,
    unix_dgram: Option<std::os::unix::net::UnixDatagram>,
}

/// A Unix socket file this server created: removed on stop if it is still ours.
#[derive(Debug)]
struct UnixFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl UnixFile {
    fn remove(&self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && m.file_type().is_socket()
            && m.dev() == self.dev
            && m.ino() == self.ino
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn os(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::from_io(op, e)
}

/// Creates a non-blocking IP socket bound to `addr` (and listening, for streams).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReusePort {
    No,
    First,
    Sibling,
}

fn ip_socket(
    addr: SocketAddr,
    ty: Type,
    reuse_port: ReusePort,
    only_v6: bool,
) -> Result<RawSocket> {
    let domain = Domain::for_address(addr);
    let s = RawSocket::new(domain, ty.nonblocking().cloexec(), None).map_err(os("socket"))?;
    if ty == Type::STREAM {
        s.set_reuse_address(true)
            .map_err(os("setsockopt(SO_REUSEADDR)"))?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(only_v6)
            .map_err(os("setsockopt(IPV6_V6ONLY)"))?;
    }
    // SO_REUSEPORT lets the workers' sockets share the port. The first socket binds
    // without it (so a port some other server holds, with or without SO_REUSEPORT, is
    // refused with EADDRINUSE as usual) and sets it after `bind`, before `listen`, which is
    // when it joins the kernel's reuse-port group; the other workers' sockets bind with it.
    match reuse_port {
        ReusePort::No => s.bind(&addr.into()).map_err(os("bind"))?,
        ReusePort::First => {
            s.bind(&addr.into()).map_err(os("bind"))?;
            s.set_reuse_port(true)
                .map_err(os("setsockopt(SO_REUSEPORT)"))?;
        }
        ReusePort::Sibling => {
            s.set_reuse_port(true)
                .map_err(os("setsockopt(SO_REUSEPORT)"))?;
            s.bind(&addr.into()).map_err(os("bind"))?;
        }
    }
    if ty == Type::STREAM {
        s.listen(BACKLOG).map_err(os("listen"))?;
    }
    Ok(s)
}

fn local_ip(s: &RawSocket) -> Result<SocketAddr> {
    s.local_addr()
        .map_err(os("getsockname"))?
        .as_socket()
        .ok_or_else(|| Error::invalid_input("getsockname", "not an IP socket"))
}

/// The socket file a Unix bind at `addr` created (none for an abstract name).
fn unix_file_of(addr: &UnixAddr) -> Result<Option<UnixFile>> {
    let Some(path) = addr.path() else {
        return Ok(None);
    };
    let meta = std::fs::symlink_metadata(path).map_err(os("stat"))?;
    Ok(Some(UnixFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    }))
}

/// The Unix address `recvfrom(2)`/`accept(2)` gave: a path, an abstract name (what Linux
/// autobind gives a client), or `None` for a truly unnamed socket.
fn unix_peer(a: &tokio::net::unix::SocketAddr) -> Option<UnixAddr> {
    if let Some(p) = a.as_pathname() {
        return Some(UnixAddr::Path(p.to_path_buf()));
    }
    #[cfg(target_os = "linux")]
    {
        if let Some(n) = a.as_abstract_name() {
            return Some(UnixAddr::Abstract(n.to_vec()));
        }
    }
    None
}

/// The Unix address of a datagram's sender: its path or abstract name, `None` unnamed.
fn unix_sockaddr_peer(a: &socket2::SockAddr) -> Option<UnixAddr> {
    if let Some(p) = a.as_pathname() {
        return Some(UnixAddr::Path(p.to_path_buf()));
    }
    #[cfg(target_os = "linux")]
    if let Some(n) = a.as_abstract_namespace() {
        return Some(UnixAddr::Abstract(n.to_vec()));
    }
    None
}

/// The most worker threads [`EchoConfig::threads`] may ask for.
pub const MAX_THREADS: usize = 1024;
/// The largest [`EchoConfig::max_conns`].
pub const MAX_CONNS: usize = 1 << 24;

/// Worker threads to use: `threads`, or one per CPU this process may run on.
fn worker_count(threads: usize) -> usize {
    if threads > 0 {
        return threads;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl EchoServer {
    /// Creates, binds and listens on every socket the configuration asks for.
    ///
    /// System calls: `socket(2)`, `setsockopt(2)` (`SO_REUSEADDR` for TCP, `SO_REUSEPORT`
    /// when there is more than one worker, `IPV6_V6ONLY` on IPv6), `bind(2)`, `listen(2)`
    /// with [`BACKLOG`]. With [`Listen::TcpUdp`] and port 0, UDP binds the port TCP got;
    /// if that UDP port is taken, a new pair is tried (16 times at most). A Unix path
    /// holding a stale socket file (a connect to it is refused) is removed first.
    ///
    /// # Errors
    /// - [`ErrorKind::Os`](crate::ErrorKind::Os) with the errno of the failing call
    ///   (`bind: [Errno 98] Address already in use`, also for a Unix path that holds a
    ///   live server or a file that is not a socket).
    pub fn bind(config: EchoConfig) -> Result<EchoServer> {
        if config.threads > MAX_THREADS {
            return Err(Error::invalid_input(
                "echo",
                format!("threads must be 0-{MAX_THREADS}, not {}", config.threads),
            ));
        }
        if config.max_conns > MAX_CONNS {
            return Err(Error::invalid_input(
                "echo",
                format!("max_conns must be 0-{MAX_CONNS}, not {}", config.max_conns),
            ));
        }
        let n = worker_count(config.threads);
        let (first, sib) = if n > 1 {
            (ReusePort::First, ReusePort::Sibling)
        } else {
            (ReusePort::No, ReusePort::No)
        };
        let mut workers: Vec<WorkerSockets> = (0..n).map(|_| WorkerSockets::default()).collect();
        let mut bound = Vec::new();
        let mut unix_file = None;
        let v6 = config.only_v6;
        match &config.listen {
            Listen::Tcp(addr) => {
                let s0 = ip_socket(*addr, Type::STREAM, first, v6)?;
                let got = local_ip(&s0)?;
                workers[0].tcp = Some(s0.into());
                for w in workers.iter_mut().skip(1) {
                    w.tcp = Some(ip_socket(got, Type::STREAM, sib, v6)?.into());
                }
                bound.push(Bound::Ip(Transport::Tcp, got));
            }
            Listen::Udp(addr) => {
                let s0 = ip_socket(*addr, Type::DGRAM, first, v6)?;
                let got = local_ip(&s0)?;
                workers[0].udp = Some(s0.into());
                for w in workers.iter_mut().skip(1) {
                    w.udp = Some(ip_socket(got, Type::DGRAM, sib, v6)?.into());
                }
                bound.push(Bound::Ip(Transport::Udp, got));
            }
            Listen::TcpUdp(addr) => {
                let mut tries = 0;
                let (tcp0, udp0, got) = loop {
                    tries += 1;
                    let tcp0 = ip_socket(*addr, Type::STREAM, first, v6)?;
                    let got = local_ip(&tcp0)?;
                    match ip_socket(got, Type::DGRAM, first, v6) {
                        Ok(udp0) => break (tcp0, udp0, got),
                        Err(e)
                            if addr.port() == 0
                                && e.is_errno(libc::EADDRINUSE)
                                && tries < TCP_UDP_TRIES =>
                        {
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                };
                workers[0].tcp = Some(tcp0.into());
                workers[0].udp = Some(udp0.into());
                for w in workers.iter_mut().skip(1) {
                    w.tcp = Some(ip_socket(got, Type::STREAM, sib, v6)?.into());
                    w.udp = Some(ip_socket(got, Type::DGRAM, sib, v6)?.into());
                }
                bound.push(Bound::Ip(Transport::Tcp, got));
                bound.push(Bound::Ip(Transport::Udp, got));
            }
            Listen::UnixStream(addr) => {
                workers[0].unix_stream = Some(crate::unix::bind_listener(addr, BACKLOG)?);
                unix_file = unix_file_of(addr)?;
                bound.push(Bound::Unix(Transport::UnixStream, addr.clone()));
            }
            Listen::UnixDgram(addr) => {
                workers[0].unix_dgram = Some(crate::unix::bind_datagram(addr)?);
                unix_file = unix_file_of(addr)?;
                bound.push(Bound::Unix(Transport::UnixDgram, addr.clone()));
            }
        }
        workers.retain(|w| {
            w.tcp.is_some() || w.udp.is_some() || w.unix_stream.is_some() || w.unix_dgram.is_some()
        });
        Ok(EchoServer {
            config,
            workers,
            bound,
            unix_file,
        })
    }

    /// Where the server listens: one entry per transport (two with [`Listen::TcpUdp`],
    /// TCP first), with the real port when port 0 was asked.
    pub fn bound(&self) -> &[Bound] {
        &self.bound
    }

    /// Starts serving on the worker threads and returns at once.
    ///
    /// `events` receives every [`Event`] (on the worker threads); `None` reports nothing.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) when a worker thread or its runtime cannot
    /// be created (`EAGAIN`, `EMFILE` for the runtime's epoll descriptor ...).
    #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
    pub fn start(self, events: Option<EventFn>) -> Result<EchoHandle> {
        let shared = Arc::new(Shared {
            events,
            max_conns: self.config.max_conns,
            idle: self.config.idle_timeout,
            datagram_events: self.config.datagram_events,
            open: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            stop: tokio::sync::Notify::new(),
            loop_wakers: std::sync::Mutex::new(Vec::new()),
            totals: Totals::default(),
        });
        let mut threads = Vec::new();
        let mut result = Ok(());
        for (i, mut sockets) in self.workers.into_iter().enumerate() {
            #[cfg(target_os = "linux")]
            if self.config.tcp_engine == TcpEngine::EventLoop
                && (sockets.tcp.is_some() || sockets.udp.is_some())
            {
                let (tcp, udp) = (sockets.tcp.take(), sockets.udp.take());
                let (event_loop, waker) = match tcp::Loop::new(tcp, udp, Arc::clone(&shared)) {
                    Ok(x) => x,
                    Err(e) => {
                        result = Err(Error::from_io("epoll_create", e));
                        break;
                    }
                };
                if let Ok(mut w) = shared.loop_wakers.lock() {
                    w.push(waker);
                }
                match std::thread::Builder::new()
                    .name(format!("sockit-echo-tcp-{i}"))
                    .spawn(move || event_loop.run())
                {
                    Ok(t) => threads.push(t),
                    Err(e) => {
                        result = Err(Error::from_io("echo thread", e));
                        break;
                    }
                }
            }
            if sockets.tcp.is_none()
                && sockets.udp.is_none()
                && sockets.unix_stream.is_none()
                && sockets.unix_dgram.is_none()
            {
                continue;
            }
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    result = Err(Error::from_io("echo runtime", e));
                    break;
                }
            };
            let shared2 = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("sockit-echo-{i}"))
                .spawn(move || {
                    rt.block_on(worker(sockets, shared2));
                    rt.shutdown_timeout(Duration::ZERO);
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    result = Err(Error::from_io("echo thread", e));
                    break;
                }
            }
        }
        let handle = EchoHandle {
            shared,
            threads,
            unix_file: self.unix_file,
        };
        match result {
            Ok(()) => Ok(handle),
            Err(e) => {
                handle.stop();
                let _ = handle.join();
                Err(e)
            }
        }
    }
}

/// A running echo server: stop it with [`stop`](EchoHandle::stop) (from any thread), then
/// [`join`](EchoHandle::join) it for the totals.
pub struct EchoHandle {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    unix_file: Option<UnixFile>,
}

impl std::fmt::Debug for EchoHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoHandle")
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl EchoHandle {
    /// Asks the server to stop: accepting ends at once, bytes already read are echoed for
    /// up to [`STOP_GRACE`], then every connection closes. Returns at once; idempotent.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.stop.notify_waiters();
        if let Ok(wakers) = self.shared.loop_wakers.lock() {
            for w in wakers.iter() {
                let _ = w.wake();
            }
        }
    }

    /// The totals so far.
    pub fn stats(&self) -> EchoStats {
        self.shared.totals.snapshot()
    }

    /// Waits for the workers to end (after [`stop`](EchoHandle::stop)), removes the Unix
    /// socket file the server created (if it is still the same file), and returns the
    /// totals.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) when a worker thread panicked.
    pub fn join(self) -> Result<EchoStats> {
        let mut panicked = false;
        for t in self.threads {
            panicked |= t.join().is_err();
        }
        if let Some(f) = &self.unix_file {
            f.remove();
        }
        if panicked {
            return Err(Error::new(
                crate::ErrorKind::Os,
                "echo",
                None,
                "a worker thread panicked",
            ));
        }
        Ok(self.shared.totals.snapshot())
    }
}

struct Shared {
    events: Option<EventFn>,
    max_conns: usize,
    idle: Option<Duration>,
    datagram_events: bool,
    open: AtomicUsize,
    /// Connections holding bytes not yet echoed (read, waiting for the client to take).
    pending: AtomicUsize,
    stopping: AtomicBool,
    stop: tokio::sync::Notify,
    /// Wakers of the TCP event loops, woken by a stop.
    loop_wakers: std::sync::Mutex<Vec<Arc<mio::Waker>>>,
    totals: Totals,
}

impl Shared {
    /// Counts a new stream connection against `max_conns`: `Some(open)`, the connections
    /// now open (this one included), when it is admitted; else `None`, counted as rejected
    /// and reported, and the caller closes it.
    fn admit(&self, transport: Transport, peer: &Peer) -> Option<usize> {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if open <= self.max_conns {
            return Some(open);
        }
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.totals.rejected.fetch_add(1, Ordering::Relaxed);
        self.emit(|| Event::Rejected {
            transport,
            peer: peer.clone(),
            max_conns: self.max_conns,
        });
        None
    }

    fn emit(&self, make: impl FnOnce() -> Event) {
        if let Some(f) = &self.events {
            f(make());
        }
    }

    /// Resolves once [`EchoHandle::stop`] was called.
    async fn stopped(&self) {
        loop {
            let notified = self.stop.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

async fn worker(sockets: WorkerSockets, shared: Arc<Shared>) {
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(l) = sockets.tcp {
        match tokio::net::TcpListener::from_std(l) {
            Ok(l) => {
                tasks.spawn(accept_loop(TcpAcceptor(l), Arc::clone(&shared)));
            }
            Err(e) => shared.emit(|| Event::AcceptPaused {
                transport: Transport::Tcp,
                error: Error::from_io("epoll_ctl", e),
                pause: Duration::ZERO,
            }),
        }
    }
    if let Some(l) = sockets.unix_stream
        && let Ok(l) = tokio::net::UnixListener::from_std(l)
    {
        tasks.spawn(accept_loop(UnixAcceptor(l), Arc::clone(&shared)));
    }
    if let Some(u) = sockets.udp
        && let Ok(u) = tokio::net::UdpSocket::from_std(u)
    {
        tasks.spawn(udp_loop(u, Arc::clone(&shared)));
    }
    if let Some(u) = sockets.unix_dgram
        && let Ok(u) = tokio::net::UnixDatagram::from_std(u)
    {
        tasks.spawn(unix_dgram_loop(u, Arc::clone(&shared)));
    }
    // The listening and datagram loops never look at the stop flag (nothing on their
    // hot path): they are aborted here, which closes their sockets at once.
    shared.stopped().await;
    tasks.abort_all();
    // Give connections holding bytes not yet echoed a short grace; then the runtime's
    // drop closes every connection.
    let grace = tokio::time::Instant::now() + STOP_GRACE;
    while shared.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------- streams

/// What accept loops need from TCP and Unix listeners.
trait Acceptor: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    const TRANSPORT: Transport;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Stream, Peer)>> + Send;
    fn prepare(stream: &Self::Stream);
}

struct TcpAcceptor(tokio::net::TcpListener);
struct UnixAcceptor(tokio::net::UnixListener);

impl Acceptor for TcpAcceptor {
    type Stream = tokio::net::TcpStream;
    const TRANSPORT: Transport = Transport::Tcp;
    async fn accept(&self) -> std::io::Result<(Self::Stream, Peer)> {
        let (s, a) = self.0.accept().await?;
        Ok((s, Peer::Ip(a)))
    }
    fn prepare(stream: &Self::Stream) {
        // TCP_NODELAY: an echo must leave at once, not wait for Nagle's timer.
        let _ = stream.set_nodelay(true);
    }
}

impl Acceptor for UnixAcceptor {
    type Stream = tokio::net::UnixStream;
    const TRANSPORT: Transport = Transport::UnixStream;
    async fn accept(&self) -> std::io::Result<(Self::Stream, Peer)> {
        let (s, a) = self.0.accept().await?;
        Ok((s, Peer::Unix(unix_peer(&a))))
    }
    fn prepare(_stream: &Self::Stream) {}
}

/// True for `accept(2)` errors that mean "out of a resource": pause, then retry.
fn is_resource_shortage(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

async fn accept_loop<A: Acceptor>(listener: A, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(open) = shared.admit(A::TRANSPORT, &peer) else {
                    drop(stream);
                    continue;
                };
                A::prepare(&stream);
                shared.totals.connections.fetch_add(1, Ordering::Relaxed);
                shared.emit(|| Event::Accepted {
                    transport: A::TRANSPORT,
                    peer: peer.clone(),
                    open,
                });
                let shared2 = Arc::clone(&shared);
                tokio::spawn(async move {
                    let started = tokio::time::Instant::now();
                    let mut conn = Conn::new(stream, &shared2);
                    let reason = poll_fn(|cx| conn.poll_echo(cx)).await;
                    let bytes_echoed = conn.echoed;
                    drop(conn);
                    shared2.open.fetch_sub(1, Ordering::Relaxed);
                    shared2
                        .totals
                        .stream_bytes
                        .fetch_add(bytes_echoed, Ordering::Relaxed);
                    shared2.emit(|| Event::Closed {
                        transport: A::TRANSPORT,
                        peer,
                        bytes_echoed,
                        duration: started.elapsed(),
                        reason,
                    });
                });
            }
            Err(e) if is_resource_shortage(&e) => {
                shared.emit(|| Event::AcceptPaused {
                    transport: A::TRANSPORT,
                    error: Error::from_io("accept", e),
                    pause: ACCEPT_PAUSE,
                });
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
            // ECONNABORTED, EPERM (firewall), EPROTO, EINTR: that one connection is lost.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNABORTED | libc::EPERM | libc::EPROTO | libc::EINTR)
                ) =>
            {
                tokio::task::yield_now().await
            }
            // Anything else is unexpected: report it and pause, so it cannot spin.
            Err(e) => {
                shared.emit(|| Event::AcceptPaused {
                    transport: A::TRANSPORT,
                    error: Error::from_io("accept", e),
                    pause: ACCEPT_PAUSE,
                });
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

thread_local! {
    /// The read buffer of this worker thread: every connection on it reads here and
    /// writes from here, so serving allocates nothing per message.
    static BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; BUF_BYTES].into_boxed_slice());
}

/// One stream connection's echo state. Polled by hand (no `async` state machine) so that
/// a read and its write happen in one poll, from the worker's shared buffer.
struct Conn<'a, S> {
    stream: S,
    shared: &'a Shared,
    /// Bytes read but not yet written back (allocated on first use, then reused).
    pending: Vec<u8>,
    pending_off: usize,
    echoed: u64,
    eof: bool,
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    last_activity: tokio::time::Instant,
}

enum ReadStep {
    Echoed { written: usize },
    Eof,
    Pending,
    Failed(std::io::Error),
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Conn<'a, S> {
    fn new(stream: S, shared: &'a Shared) -> Self {
        let now = tokio::time::Instant::now();
        Conn {
            stream,
            shared,
            pending: Vec::new(),
            pending_off: 0,
            echoed: 0,
            eof: false,
            idle: shared
                .idle
                .map(|d| (d, Box::pin(tokio::time::sleep_until(now + d)))),
            last_activity: now,
        }
    }

    fn touch(&mut self) {
        if self.idle.is_some() {
            self.last_activity = tokio::time::Instant::now();
        }
    }

    fn set_pending(&mut self, bytes: &[u8]) {
        if self.pending.is_empty() {
            self.shared.pending.fetch_add(1, Ordering::SeqCst);
        }
        self.pending.extend_from_slice(bytes);
    }

    fn clear_pending(&mut self) {
        self.pending.clear();
        self.pending_off = 0;
        self.shared.pending.fetch_sub(1, Ordering::SeqCst);
    }

    /// Returns `Pending` after checking the idle timer (which may end the connection).
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        if self.shared.stopping.load(Ordering::Relaxed) && self.pending.is_empty() {
            return Poll::Ready(CloseReason::Stopped);
        }
        let Some((d, sleep)) = self.idle.as_mut() else {
            return Poll::Pending;
        };
        let d = *d;
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.last_activity + d;
            if deadline <= tokio::time::Instant::now() {
                return Poll::Ready(CloseReason::Idle);
            }
            sleep.as_mut().reset(deadline);
        }
    }

    fn poll_echo(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        loop {
            // 1. Bytes the client has not taken yet go first; nothing is read meanwhile,
            //    so a client that does not read is held back by TCP's flow control.
            while self.pending_off < self.pending.len() {
                match Pin::new(&mut self.stream).poll_write(cx, &self.pending[self.pending_off..]) {
                    Poll::Ready(Ok(0)) => {
                        self.clear_pending();
                        return Poll::Ready(CloseReason::Error(Error::from_errno(
                            "send",
                            libc::EPIPE,
                        )));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.pending_off += n;
                        self.echoed += n as u64;
                        self.touch();
                    }
                    Poll::Ready(Err(e)) => {
                        self.clear_pending();
                        return Poll::Ready(CloseReason::Error(Error::from_io("send", e)));
                    }
                    Poll::Pending => return self.wait(cx),
                }
            }
            if !self.pending.is_empty() {
                self.clear_pending();
            }
            if self.eof {
                // Half-close as the client did, then end.
                return match Pin::new(&mut self.stream).poll_shutdown(cx) {
                    Poll::Ready(_) => Poll::Ready(CloseReason::Eof),
                    Poll::Pending => self.wait(cx),
                };
            }
            // 2. Read into the worker's buffer and write straight back from it.
            let stream = &mut self.stream;
            let step = BUF.with_borrow_mut(|buf| {
                let mut rb = ReadBuf::new(&mut buf[..]);
                match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return (ReadStep::Failed(e), None),
                    Poll::Pending => return (ReadStep::Pending, None),
                }
                let read = rb.filled().len();
                if read == 0 {
                    return (ReadStep::Eof, None);
                }
                match Pin::new(&mut *stream).poll_write(cx, &buf[..read]) {
                    Poll::Ready(Ok(written)) if written == read => {
                        (ReadStep::Echoed { written }, None)
                    }
                    Poll::Ready(Ok(written)) => (
                        ReadStep::Echoed { written },
                        Some(buf[written..read].to_vec()),
                    ),
                    Poll::Pending => (ReadStep::Echoed { written: 0 }, Some(buf[..read].to_vec())),
                    Poll::Ready(Err(e)) => (ReadStep::Failed(e), None),
                }
            });
            match step {
                (ReadStep::Echoed { written, .. }, rest) => {
                    self.echoed += written as u64;
                    self.touch();
                    if let Some(rest) = rest {
                        self.set_pending(&rest);
                    }
                }
                (ReadStep::Eof, _) => self.eof = true,
                (ReadStep::Pending, _) => return self.wait(cx),
                (ReadStep::Failed(e), _) => {
                    return Poll::Ready(CloseReason::Error(Error::from_io("recv", e)));
                }
            }
        }
    }
}

impl<S> Drop for Conn<'_, S> {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.shared.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

// ---------------------------------------------------------------- datagrams

/// Datagrams one `recvmmsg(2)`/`sendmmsg(2)` call carries.
#[cfg(target_os = "linux")]
const UDP_BATCH: usize = 32;

/// UDP on Linux: one `recvmmsg(2)` takes every queued datagram (up to [`UDP_BATCH`]), one
/// `sendmmsg(2)` sends them all back. A batch that comes back less than full means the
/// queue was drained: readiness is cleared without the extra `EAGAIN` call.
#[cfg(target_os = "linux")]
async fn udp_loop(sock: tokio::net::UdpSocket, shared: Arc<Shared>) {
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;
    let fd = sock.as_raw_fd();
    let mut batch = crate::sys::mmsg::DgramBatch::new(UDP_BATCH, BUF_BYTES);
    loop {
        if sock.readable().await.is_err() {
            break;
        }
        let (mut datagrams, mut bytes) = (0u64, 0u64);
        loop {
            let mut drained = false;
            let got = sock.try_io(Interest::READABLE, || {
                let n = batch.recv(fd)?;
                if n < batch.capacity() {
                    // Returning WouldBlock clears tokio's readiness: the queue is empty.
                    drained = true;
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            let n = match got {
                Ok(n) => n,
                Err(_) if drained => batch.filled(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // An error queued by ICMP (ECONNREFUSED ...) concerns one earlier peer.
                Err(_) => continue,
            };
            let mut next = 0;
            while next < n {
                match sock.try_io(Interest::WRITABLE, || batch.echo(fd, next..n)) {
                    Ok(sent) => {
                        for i in next..next + sent {
                            bytes += batch.payload(i).len() as u64;
                            if shared.datagram_events {
                                let peer = batch.sender(i);
                                let len = batch.payload(i).len();
                                if let Some(peer) = peer {
                                    shared.emit(|| Event::Datagram {
                                        transport: Transport::Udp,
                                        peer: Peer::Ip(peer),
                                        bytes: len,
                                    });
                                }
                            }
                        }
                        datagrams += sent as u64;
                        next += sent;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if sock.writable().await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        // The first datagram of the rest cannot be sent: drop it, go on.
                        shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
                        let len = batch.payload(next).len();
                        if let Some(peer) = batch.sender(next) {
                            shared.emit(|| Event::Dropped {
                                transport: Transport::Udp,
                                peer: Peer::Ip(peer),
                                bytes: len,
                                reason: Error::from_io("sendmmsg", e).to_string(),
                            });
                        }
                        next += 1;
                    }
                }
            }
            if drained {
                break;
            }
        }
        shared.totals.add_datagrams(datagrams, bytes);
    }
}

/// UDP elsewhere: `recvfrom(2)` and `sendto(2)`, one datagram at a time.
#[cfg(not(target_os = "linux"))]
async fn udp_loop(sock: tokio::net::UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; BUF_BYTES];
    let (mut datagrams, mut bytes) = (0u64, 0u64);
    loop {
        if sock.readable().await.is_err() {
            break;
        }
        // Drain what is there: one readiness wake-up serves every queued datagram.
        loop {
            let (n, peer) = match sock.try_recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => continue,
            };
            let sent = loop {
                match sock.try_send_to(&buf[..n], peer) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if sock.writable().await.is_err() {
                            break Err(e);
                        }
                    }
                    r => break r,
                }
            };
            match sent {
                Ok(_) => {
                    datagrams += 1;
                    bytes += n as u64;
                    if shared.datagram_events {
                        shared.emit(|| Event::Datagram {
                            transport: Transport::Udp,
                            peer: Peer::Ip(peer),
                            bytes: n,
                        });
                    }
                }
                Err(e) => {
                    shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
                    shared.emit(|| Event::Dropped {
                        transport: Transport::Udp,
                        peer: Peer::Ip(peer),
                        bytes: n,
                        reason: Error::from_io("sendto", e).to_string(),
                    });
                }
            }
        }
        shared.totals.add_datagrams(datagrams, bytes);
        (datagrams, bytes) = (0, 0);
    }
}

async fn unix_dgram_loop(sock: tokio::net::UnixDatagram, shared: Arc<Shared>) {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; MAX_UNIX_DGRAM];
    let fd = sock.as_raw_fd();
    // Room to send back the largest datagram: a send buffer of MAX_UNIX_DGRAM holds only
    // a little less (the kernel counts its own overhead); Linux doubles the value asked
    // for, up to twice `net.core.wmem_max`.
    let _ = socket2::SockRef::from(&sock).set_send_buffer_size(MAX_UNIX_DGRAM);
    loop {
        // recvfrom with MSG_TRUNC: a datagram longer than the buffer is known as such.
        let got = match sock.readable().await {
            Ok(()) => sock.try_io(tokio::io::Interest::READABLE, || {
                crate::sys::recv_from_trunc(fd, &mut buf)
            }),
            Err(e) => Err(e),
        };
        let Ok((n, from)) = got else {
            continue;
        };
        let from = unix_sockaddr_peer(&from);
        if n > MAX_UNIX_DGRAM {
            shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
            shared.emit(|| Event::Dropped {
                transport: Transport::UnixDgram,
                peer: Peer::Unix(from),
                bytes: n,
                reason: format!("longer than {MAX_UNIX_DGRAM} bytes: not echoed"),
            });
            continue;
        }
        // Answer whatever address recvfrom gave (a path, or the abstract name Linux
        // autobind gives `sockit connect -u --unix` and socat); only an unnamed sender
        // cannot be answered.
        let Some(peer) = from else {
            shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
            shared.emit(|| Event::Dropped {
                transport: Transport::UnixDgram,
                peer: Peer::Unix(None),
                bytes: n,
                reason: "unbound sender cannot be answered".into(),
            });
            continue;
        };
        match unix_send_to(&sock, &buf[..n], &peer).await {
            Ok(_) => {
                shared.totals.add_datagrams(1, n as u64);
                if shared.datagram_events {
                    shared.emit(|| Event::Datagram {
                        transport: Transport::UnixDgram,
                        peer: Peer::Unix(Some(peer)),
                        bytes: n,
                    });
                }
            }
            Err(e) => {
                shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
                shared.emit(|| Event::Dropped {
                    transport: Transport::UnixDgram,
                    peer: Peer::Unix(Some(peer)),
                    bytes: n,
                    reason: e.to_string(),
                });
            }
        }
    }
}

/// `sendto(2)` to a Unix address, a path or an abstract name (tokio's `send_to` takes
/// paths only), waiting for writability when the peer's queue is full.
async fn unix_send_to(sock: &tokio::net::UnixDatagram, buf: &[u8], to: &UnixAddr) -> Result<usize> {
    let sa = to.sockaddr()?;
    loop {
        sock.writable().await.map_err(os("sendto"))?;
        match sock.try_io(tokio::io::Interest::WRITABLE, || {
            socket2::SockRef::from(sock).send_to(buf, &sa)
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r.map_err(os("sendto")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn start(listen: Listen) -> (EchoHandle, Vec<Bound>) {
        let mut cfg = EchoConfig::new(listen);
        cfg.threads = 2;
        let server = EchoServer::bind(cfg).unwrap();
        let bound = server.bound().to_vec();
        (server.start(None).unwrap(), bound)
    }

    #[test]
    fn tcp_and_udp_share_a_port_and_echo() {
        let (h, bound) = start(Listen::TcpUdp("127.0.0.1:0".parse().unwrap()));
        let (Bound::Ip(Transport::Tcp, t), Bound::Ip(Transport::Udp, u)) = (&bound[0], &bound[1])
        else {
            panic!("{bound:?}")
        };
        assert_eq!(t, u);
        let mut c = std::net::TcpStream::connect(t).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        let d = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        d.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        d.send_to(b"", u).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(d.recv_from(&mut buf).unwrap().0, 0);
        drop(c);
        h.stop();
        let stats = h.join().unwrap();
        assert_eq!(stats.datagrams, 1);
        assert_eq!(stats.connections, 1);
    }
}
