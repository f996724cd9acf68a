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
//! - Admission is the core's ([`Admission`]): past [`EchoConfig::max_conns`] open
//!   connections, or for a peer [`EchoConfig::access`] refuses, a connection is accepted
//!   and closed at once ([`Event::Refused`]).
//! - Stop is the core's [`Stop`]: accepting ends at once; open connections are served
//!   until they end or the drain deadline, when they are aborted with RST (counted as cut
//!   in [`Event::Stopped`]); the Unix socket file the server created is removed. The
//!   library never prints: everything it has to say is an [`Event`] given to the sink,
//!   and [`EchoHandle::join`] returns the [`EchoStats`].
//! - The worker count is fitted to the open-file limit (`RLIMIT_NOFILE`) at bind: each
//!   worker costs about [`FDS_PER_WORKER`] descriptors, and room is kept for clients; a
//!   limit too small for one worker and one client is refused at once, naming
//!   `ulimit -n`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::access::AccessList;
use crate::error::{Error, ErrorKind, Result};
use crate::serve::{
    self, Admission, Admitted, BindOptions, Closed, Event, EventSink, Origin, Permit, ProxySources,
    Refused, ReusePort, SocketFile, Stop,
};
use crate::unix::UnixAddr;

pub use crate::serve::{Peer, Transport};

mod dgram;
// The event-loop engine batches UDP with recvmmsg/sendmmsg (Linux only); elsewhere every
// transport is served by the tokio tasks engine, whatever `tcp_engine` says.
#[cfg(target_os = "linux")]
mod event_loop;
mod tasks;

/// The slides' port, used when no port is given: 50007.
pub const DEFAULT_PORT: u16 = 50007;
/// How long accepting pauses after `EMFILE`/`ENFILE` (and other resource shortages).
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long [`EchoHandle::stop`] lets open connections finish before aborting them.
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
/// Descriptors one worker costs: its epoll instance, its waker, its listening socket
/// (and one more with `--tcp --udp`).
pub const FDS_PER_WORKER: usize = 3;
/// Descriptors kept free for clients (and a lingering close) when the worker count is
/// fitted to the open-file limit.
pub const FDS_FOR_CLIENTS: usize = 2;
/// How many times `--tcp --udp` on port 0 tries a new port when UDP's is taken.
const TCP_UDP_TRIES: usize = 16;
/// Datagrams one `recvmmsg(2)`/`sendmmsg(2)` call carries.
#[cfg(target_os = "linux")]
const UDP_BATCH: usize = 32;

/// Unix datagrams one `recvmmsg(2)`/`sendmmsg(2)` call carries (slots of
/// [`MAX_UNIX_DGRAM`] each, zero-allocated: ~6.5 MiB of address space, touched only as
/// far as datagrams fill them).
#[cfg(target_os = "linux")]
const UNIX_BATCH: usize = 32;

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
    /// Open stream connections allowed at once (at least 1); past it a connection is
    /// accepted and closed at once. Default 1024.
    pub max_conns: usize,
    /// Which peers may connect (`--allow`/`--deny`); everyone by default.
    pub access: AccessList,
    /// TCP sources whose connections must open with a PROXY protocol header
    /// (`--accept-proxy-from`): the header is read before the connection is served, and
    /// the client it names is the peer (see [`serve::proxied`]).
    pub proxy_from: ProxySources,
    /// A stream connection with no traffic either way for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// Worker threads; 0 means one per CPU this process may run on
    /// (`std::thread::available_parallelism`, which honours `taskset`), fitted to the
    /// open-file limit. Unix sockets are served by the first worker only.
    pub threads: usize,
    /// `IPV6_V6ONLY` for IPv6 listeners, always set explicitly. Default true; false
    /// (dual-stack) makes sense only for the wildcard address `::`.
    pub only_v6: bool,
    /// Report every datagram as [`Event::Datagram`] (off by default: a busy UDP server
    /// would report millions).
    pub datagram_events: bool,
    /// How TCP connections are served (default [`TcpEngine::EventLoop`]).
    pub tcp_engine: TcpEngine,
    /// Busy polling (off by default): after each turn that served something, an event
    /// loop keeps asking `epoll_wait(2)` with a zero timeout for up to this long before
    /// it sleeps. A client's next request then finds the worker awake, which takes the
    /// wake-up of a sleeping thread (tens of microseconds on a virtual machine) out of
    /// the round trip, at the cost of that much CPU after each burst. Linux's
    /// `net.core.busy_poll` / `SO_BUSY_POLL` idea in user space (those poll a device
    /// queue, which loopback does not have). [`TcpEngine::EventLoop`] only (TCP and
    /// UDP); at most [`MAX_BUSY_POLL`].
    pub busy_poll: Option<Duration>,
}

/// The longest [`EchoConfig::busy_poll`]: one second.
pub const MAX_BUSY_POLL: Duration = Duration::from_secs(1);

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
    /// Settings with the defaults: 1024 connections, everyone admitted, no idle timeout,
    /// one worker per CPU, IPv6 only on IPv6 addresses, no per-datagram events.
    pub fn new(listen: Listen) -> EchoConfig {
        EchoConfig {
            listen,
            max_conns: serve::DEFAULT_MAX_CONNS,
            access: AccessList::default(),
            proxy_from: ProxySources::default(),
            idle_timeout: None,
            threads: 0,
            only_v6: true,
            datagram_events: false,
            tcp_engine: TcpEngine::EventLoop,
            busy_poll: None,
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

impl Bound {
    /// The `listening` event of this socket.
    pub fn listening(&self) -> Event {
        let (transport, local) = match self {
            Bound::Ip(t, a) => (*t, Peer::Ip(*a)),
            Bound::Unix(t, a) => (*t, Peer::Unix(Some(a.clone()))),
        };
        Event::Listening {
            transport,
            local: serve::Local(local),
            role: None,
        }
    }
}

/// Why a connection ended, inside the engines (turned into the core's reason words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The client shut down its side and every byte was echoed.
    Eof,
    /// No traffic for the idle timeout.
    Idle,
    /// Cut by a stop: aborted with RST.
    Aborted,
    /// A system call failed (`ECONNRESET`: the client reset).
    Error(Error),
}

/// Totals of a server's life, returned by [`EchoHandle::join`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Stream connections accepted and served.
    pub connections: u64,
    /// Stream connections accepted and closed at once (refused by admission).
    pub rejected: u64,
    /// Bytes echoed over streams.
    pub stream_bytes: u64,
    /// Datagrams echoed.
    pub datagrams: u64,
    /// Payload bytes of the datagrams echoed.
    pub datagram_bytes: u64,
    /// Datagrams dropped (unanswerable sender or failed send).
    pub dropped: u64,
    /// Connections cut by the stop (aborted with RST).
    pub cut: u64,
}

#[derive(Default)]
struct Totals {
    connections: AtomicU64,
    rejected: AtomicU64,
    stream_bytes: AtomicU64,
    datagrams: AtomicU64,
    datagram_bytes: AtomicU64,
    dropped: AtomicU64,
    cut: AtomicU64,
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
            cut: self.cut.load(Ordering::Relaxed),
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
    unix_file: Option<SocketFile>,
}

#[derive(Debug, Default)]
struct WorkerSockets {
    tcp: Option<std::net::TcpListener>,
    udp: Option<std::net::UdpSocket>,
    unix_stream: Option<std::os::unix::net::UnixListener>,
    unix_dgram: Option<std::os::unix::net::UnixDatagram>,
}

fn os(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::from_io(op, e)
}

/// Binds one IP socket of the server with the core's binder.
fn ip_socket(
    addr: SocketAddr,
    transport: Transport,
    reuse_port: ReusePort,
    only_v6: bool,
) -> Result<(socket2::Socket, SocketAddr, Origin)> {
    let opts = BindOptions {
        backlog: BACKLOG,
        dual_stack: !only_v6 && addr.is_ipv6(),
        reuse_port,
        ..BindOptions::default()
    };
    let l = serve::bind_ip(addr, transport, &opts)?;
    let got = l.local_ip().unwrap_or(addr);
    let origin = l.origin();
    Ok((l.into_parts().0, got, origin))
}

/// A further worker's socket for the port `first` got: a new member of its
/// `SO_REUSEPORT` group, or for an inherited socket (socket activation) a duplicate of it
/// (`fcntl(F_DUPFD_CLOEXEC)`), served by every worker.
fn sibling(
    first: &socket2::Socket,
    origin: Origin,
    got: SocketAddr,
    transport: Transport,
    only_v6: bool,
) -> Result<socket2::Socket> {
    match origin {
        Origin::Inherited => first.try_clone().map_err(os("dup")),
        Origin::Bound => Ok(ip_socket(got, transport, ReusePort::Join, only_v6)?.0),
    }
}

/// The address a Unix listener serves: the one asked for, or an inherited socket's own.
fn unix_local(l: &serve::Listener, asked: &UnixAddr) -> UnixAddr {
    match l.local() {
        Peer::Unix(Some(a)) => a.clone(),
        _ => asked.clone(),
    }
}

/// The most worker threads [`EchoConfig::threads`] may ask for.
pub const MAX_THREADS: usize = 1024;
/// The largest [`EchoConfig::max_conns`].
pub const MAX_CONNS: usize = serve::MAX_CONNS;

/// The soft open-file limit (`RLIMIT_NOFILE`, as `/proc/self/limits` shows it) and the
/// descriptors open now; `None` where that cannot be read.
fn fd_room() -> Option<(usize, usize)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    let soft: usize = soft.parse().ok()?;
    // (the directory handle of the listing is one of the entries)
    let open = std::fs::read_dir("/proc/self/fd")
        .ok()?
        .count()
        .saturating_sub(1);
    Some((soft, open))
}

/// Worker threads to use: `threads`, or one per CPU this process may run on; fitted to
/// the open-file limit (see the module docs).
///
/// # Errors
/// [`ErrorKind::Os`] naming `ulimit -n` when the limit leaves no room for one worker and
/// one client.
fn worker_count(threads: usize, per_worker: usize) -> Result<usize> {
    let wanted = if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let Some((soft, open)) = fd_room() else {
        return Ok(wanted);
    };
    let free = soft.saturating_sub(open);
    let fit = free.saturating_sub(FDS_FOR_CLIENTS) / per_worker;
    if fit == 0 {
        return Err(Error::new(
            ErrorKind::Os,
            "echo",
            Some(libc::EMFILE),
            format!(
                "open-file limit too small: ulimit -n is {soft}, {open} descriptors are open, \
                 and one worker with one client needs {} more (raise ulimit -n)",
                per_worker + FDS_FOR_CLIENTS
            ),
        ));
    }
    Ok(wanted.min(fit))
}

impl EchoServer {
    /// Creates, binds and listens on every socket the configuration asks for, with the
    /// core's binder ([`serve::bind_ip`], [`serve::bind_unix`]).
    ///
    /// System calls: `socket(2)`, `setsockopt(2)` (`SO_REUSEADDR` for TCP, `SO_REUSEPORT`
    /// when there is more than one worker, `IPV6_V6ONLY` on IPv6), `bind(2)`, `listen(2)`
    /// with [`BACKLOG`]. With [`Listen::TcpUdp`] and port 0, UDP binds the port TCP got;
    /// if that UDP port is taken, a new pair is tried (16 times at most). A Unix path
    /// holding a stale socket file (a connect to it is refused) is removed first. The
    /// worker count is fitted to the open-file limit first.
    ///
    /// # Errors
    /// - [`ErrorKind::Os`] with the errno of the failing call
    ///   (`bind 127.0.0.1:7000: [Errno 98] Address already in use`, also for a Unix path
    ///   that holds a live server or a file that is not a socket).
    /// - [`ErrorKind::Os`] `EMFILE` naming `ulimit -n` when the open-file limit leaves no
    ///   room for one worker and one client.
    /// - [`ErrorKind::InvalidInput`] for `threads` or `max_conns` out of range, or
    ///   `proxy_from` on anything but a TCP listener.
    pub fn bind(config: EchoConfig) -> Result<EchoServer> {
        if !config.proxy_from.is_empty() && !matches!(config.listen, Listen::Tcp(_)) {
            return Err(Error::invalid_input(
                "accept-proxy-from",
                "a PROXY header is read on TCP listeners only (not -u or --unix)",
            ));
        }
        if config.threads > MAX_THREADS {
            return Err(Error::invalid_input(
                "echo",
                format!("threads must be 0-{MAX_THREADS}, not {}", config.threads),
            ));
        }
        if config.max_conns == 0 || config.max_conns > MAX_CONNS {
            return Err(Error::invalid_input(
                "echo",
                format!("max_conns must be 1-{MAX_CONNS}, not {}", config.max_conns),
            ));
        }
        let per_worker = match config.listen {
            Listen::TcpUdp(_) => FDS_PER_WORKER + 1,
            _ => FDS_PER_WORKER,
        };
        let n = match config.listen {
            Listen::UnixStream(_) | Listen::UnixDgram(_) => worker_count(1, per_worker)?,
            _ => worker_count(config.threads, per_worker)?,
        };
        let first = if n > 1 {
            ReusePort::First
        } else {
            ReusePort::Off
        };
        let mut workers: Vec<WorkerSockets> = (0..n).map(|_| WorkerSockets::default()).collect();
        let mut bound = Vec::new();
        let mut unix_file = None;
        let v6 = config.only_v6;
        match &config.listen {
            Listen::Tcp(addr) => {
                let (s0, got, origin) = ip_socket(*addr, Transport::Tcp, first, v6)?;
                for w in workers.iter_mut().skip(1) {
                    w.tcp = Some(sibling(&s0, origin, got, Transport::Tcp, v6)?.into());
                }
                workers[0].tcp = Some(s0.into());
                bound.push(Bound::Ip(Transport::Tcp, got));
            }
            Listen::Udp(addr) => {
                let (s0, got, origin) = ip_socket(*addr, Transport::Udp, first, v6)?;
                for w in workers.iter_mut().skip(1) {
                    w.udp = Some(sibling(&s0, origin, got, Transport::Udp, v6)?.into());
                }
                workers[0].udp = Some(s0.into());
                bound.push(Bound::Ip(Transport::Udp, got));
            }
            Listen::TcpUdp(addr) => {
                let mut tries = 0;
                let (tcp0, udp0, got, got_udp) = loop {
                    tries += 1;
                    let (tcp0, got, t_origin) = ip_socket(*addr, Transport::Tcp, first, v6)?;
                    match ip_socket(got, Transport::Udp, first, v6) {
                        Ok((udp0, got_udp, u_origin)) => {
                            break ((tcp0, t_origin), (udp0, u_origin), got, got_udp);
                        }
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
                for w in workers.iter_mut().skip(1) {
                    w.tcp = Some(sibling(&tcp0.0, tcp0.1, got, Transport::Tcp, v6)?.into());
                    w.udp = Some(sibling(&udp0.0, udp0.1, got_udp, Transport::Udp, v6)?.into());
                }
                workers[0].tcp = Some(tcp0.0.into());
                workers[0].udp = Some(udp0.0.into());
                bound.push(Bound::Ip(Transport::Tcp, got));
                bound.push(Bound::Ip(Transport::Udp, got_udp));
            }
            Listen::UnixStream(addr) => {
                let opts = BindOptions {
                    backlog: BACKLOG,
                    ..BindOptions::default()
                };
                let l = serve::bind_unix(addr, Transport::Unix, &opts)?;
                let at = unix_local(&l, addr);
                let (s, file) = l.into_parts();
                workers[0].unix_stream = Some(s.into());
                unix_file = file;
                bound.push(Bound::Unix(Transport::Unix, at));
            }
            Listen::UnixDgram(addr) => {
                let opts = BindOptions::default();
                let l = serve::bind_unix(addr, Transport::Unixgram, &opts)?;
                let at = unix_local(&l, addr);
                let (s, file) = l.into_parts();
                workers[0].unix_dgram = Some(s.into());
                unix_file = file;
                bound.push(Bound::Unix(Transport::Unixgram, at));
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

    /// Worker threads that will serve (after fitting to the open-file limit).
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Starts serving on the worker threads with a stop controller of its own (see
    /// [`start_with`](EchoServer::start_with)).
    ///
    /// # Errors
    /// As [`start_with`](EchoServer::start_with).
    pub fn start(self, events: Option<EventSink>) -> Result<EchoHandle> {
        self.start_with(events, Stop::new())
    }

    /// Starts serving on the worker threads and returns at once; `stop` ends it (see the
    /// module docs).
    ///
    /// `events` receives every [`Event`] (on the worker threads); `None` reports nothing.
    ///
    /// # Errors
    /// [`ErrorKind::Os`] when a worker thread or its runtime cannot be created (`EAGAIN`,
    /// `EMFILE` for the runtime's epoll descriptor ...).
    #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
    pub fn start_with(self, events: Option<EventSink>, stop: Stop) -> Result<EchoHandle> {
        let shared = Arc::new(Shared {
            events,
            admission: Admission::with_proxy_sources(
                self.config.access.clone(),
                self.config.max_conns,
                self.config.proxy_from.clone(),
            ),
            idle: self.config.idle_timeout,
            busy_poll: self
                .config
                .busy_poll
                .filter(|d| !d.is_zero())
                .map(|d| d.min(MAX_BUSY_POLL)),
            datagram_events: self.config.datagram_events,
            pending: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            stop: stop.clone(),
            loop_wakers: std::sync::Mutex::new(Vec::new()),
            totals: Totals::default(),
        });
        {
            let s = Arc::downgrade(&shared);
            stop.on_change(move || {
                if let Some(s) = s.upgrade() {
                    // the first change of phase is the stop: reported as every server does
                    if !s.stopping.swap(true, Ordering::SeqCst) {
                        let drain_us = match s.stop.phase() {
                            serve::Phase::Draining { deadline } => serve::Closed::micros(
                                deadline.saturating_duration_since(std::time::Instant::now()),
                            ),
                            _ => 0,
                        };
                        s.emit(|| Event::Stopping {
                            open: s.admission.open(),
                            drain_us,
                        });
                    }
                    if let Ok(wakers) = s.loop_wakers.lock() {
                        for w in wakers.iter() {
                            let _ = w.wake();
                        }
                    }
                }
            });
        }
        let mut threads = Vec::new();
        let mut result = Ok(());
        for (i, mut sockets) in self.workers.into_iter().enumerate() {
            #[cfg(target_os = "linux")]
            if self.config.tcp_engine == TcpEngine::EventLoop
                && (sockets.tcp.is_some() || sockets.udp.is_some())
            {
                let (tcp, udp) = (sockets.tcp.take(), sockets.udp.take());
                let (event_loop, waker) = match event_loop::Loop::new(tcp, udp, Arc::clone(&shared))
                {
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
                    .name(format!("sockit-echo-loop-{i}"))
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
                    rt.block_on(tasks::worker(sockets, shared2));
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
        if shared.stop.phase() != serve::Phase::Running {
            shared.stopping.store(true, Ordering::SeqCst);
        }
        let handle = EchoHandle {
            shared,
            threads,
            unix_file: self.unix_file,
        };
        match result {
            Ok(()) => Ok(handle),
            Err(e) => {
                handle.abort();
                let _ = handle.join();
                Err(e)
            }
        }
    }
}

/// A running echo server: stop it with [`stop`](EchoHandle::stop) or through its [`Stop`]
/// controller (from any thread), then [`join`](EchoHandle::join) it for the totals.
pub struct EchoHandle {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    unix_file: Option<SocketFile>,
}

impl std::fmt::Debug for EchoHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoHandle")
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl EchoHandle {
    /// Asks the server to stop: accepting ends at once, open connections may finish for
    /// up to [`STOP_GRACE`], then they are aborted. Returns at once; idempotent.
    pub fn stop(&self) {
        self.shared.stop.drain(STOP_GRACE);
    }

    /// Aborts every connection now (RST) and stops. Returns at once; idempotent.
    pub fn abort(&self) {
        self.shared.stop.abort();
    }

    /// The totals so far.
    pub fn stats(&self) -> EchoStats {
        self.shared.totals.snapshot()
    }

    /// Waits for the workers to end (after a stop), removes the Unix socket file the
    /// server created (if it is still the same file), reports [`Event::Stopped`], and
    /// returns the totals.
    ///
    /// # Errors
    /// [`ErrorKind::Os`] when a worker thread panicked.
    pub fn join(self) -> Result<EchoStats> {
        let mut panicked = false;
        for t in self.threads {
            panicked |= t.join().is_err();
        }
        drop(self.unix_file);
        if panicked {
            return Err(Error::new(
                ErrorKind::Os,
                "echo",
                None,
                "a worker thread panicked",
            ));
        }
        let stats = self.shared.totals.snapshot();
        self.shared.emit(|| Event::Stopped {
            sessions: stats.connections,
            cut: stats.cut,
        });
        Ok(stats)
    }
}

pub(crate) struct Shared {
    events: Option<EventSink>,
    admission: Arc<Admission>,
    idle: Option<Duration>,
    /// [`EchoConfig::busy_poll`], non-zero.
    busy_poll: Option<Duration>,
    datagram_events: bool,
    /// Connections holding bytes not yet echoed (read, waiting for the client to take).
    pending: AtomicUsize,
    /// Set (by the [`Stop`] callback) once a stop began: one relaxed load for the loops.
    stopping: AtomicBool,
    stop: Stop,
    /// Wakers of the TCP event loops, woken by a stop.
    loop_wakers: std::sync::Mutex<Vec<Arc<mio::Waker>>>,
    totals: Totals,
}

impl Shared {
    /// Admits a new stream connection (the core's [`Admission`]): its permit, or `None`
    /// (counted as rejected and reported; the caller closes it).
    fn admit(&self, transport: Transport, peer: &Peer) -> Option<Permit> {
        self.admit_via(transport, peer, None)
    }

    /// As [`Shared::admit`], for a peer a PROXY header from `via` named.
    fn admit_via(&self, transport: Transport, peer: &Peer, via: Option<Peer>) -> Option<Permit> {
        let decided = self
            .admission
            .admit(peer)
            .map(|p| {
                let who = Admitted {
                    peer: peer.clone(),
                    via,
                    destination: None,
                };
                (p, who)
            })
            .map_err(|reason| Refused {
                peer: peer.clone(),
                reason,
                error: None,
            });
        self.report(transport, decided).map(|(p, _)| p)
    }

    /// Counts and reports an admission's outcome: the permit and the session's peer, or
    /// `None` (the caller closes the connection).
    fn report(
        &self,
        transport: Transport,
        decided: std::result::Result<(Permit, Admitted), Refused>,
    ) -> Option<(Permit, Peer)> {
        match decided {
            Ok((p, who)) => {
                self.totals.connections.fetch_add(1, Ordering::Relaxed);
                self.emit(|| Event::Accepted {
                    id: p.id(),
                    transport,
                    peer: who.peer.clone(),
                    via: who.via.map(serve::ProxiedFrom),
                });
                Some((p, who.peer))
            }
            Err(r) => {
                self.totals.rejected.fetch_add(1, Ordering::Relaxed);
                self.emit(|| Event::Refused {
                    transport,
                    peer: r.peer,
                    reason: r.reason,
                    error: r.error,
                });
                None
            }
        }
    }

    /// Reports a stream connection's end: `echoed` bytes sent back, `unechoed` read but
    /// not sent back, why.
    #[allow(clippy::too_many_arguments)]
    fn closed(
        &self,
        permit: Permit,
        transport: Transport,
        peer: Peer,
        echoed: u64,
        unechoed: u64,
        started: Instant,
        why: CloseReason,
    ) {
        self.totals
            .stream_bytes
            .fetch_add(echoed, Ordering::Relaxed);
        if why == CloseReason::Aborted {
            self.totals.cut.fetch_add(1, Ordering::Relaxed);
        }
        let id = permit.id();
        drop(permit);
        self.emit(|| {
            use serve::CloseReason as R;
            let (reason, reset_by, error) = match why {
                CloseReason::Eof => (R::Eof, None, None),
                CloseReason::Idle => (R::Idle, None, Some(Error::timeout("idle"))),
                CloseReason::Aborted => (R::Aborted, None, None),
                CloseReason::Error(e)
                    if e.is_errno(libc::ECONNRESET) || e.is_errno(libc::EPIPE) =>
                {
                    (R::Reset, Some(serve::Side::Peer), Some(e))
                }
                CloseReason::Error(e) => (R::Error, None, Some(e)),
            };
            Event::Closed(Closed {
                id,
                transport,
                peer,
                bytes_sent: echoed,
                bytes_received: echoed + unechoed,
                datagrams_sent: None,
                datagrams_received: None,
                duration_us: Closed::micros(started.elapsed()),
                reason,
                reset_by,
                error,
                zero_copy: None,
            })
        });
    }

    fn emit(&self, make: impl FnOnce() -> Event) {
        if let Some(f) = &self.events {
            f(make());
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
