//! The TCP scan: the work list shared by the workers, the probe sockets, what a
//! `connect(2)` result means, and the epoll engine (tokio) that is the fallback of the
//! io_uring one ([`super::uring`]).
//!
//! Cost per port, measured with `strace -c -f` over 1–65535 on loopback: the first
//! scanner made a socket per port and paid nine system calls for it (`socket`, two
//! `fcntl`, `connect`, two `epoll_ctl`, `getsockopt`, `getsockname`, `close`); perf put a
//! third of its kernel time in making and closing sockets. Here a probe socket is kept
//! while its connects are refused: a TCP socket whose `connect` failed is unconnected
//! again and may connect anew (Linux), so a refused port costs no socket of its own. On
//! epoll it costs two `connect` calls (the first starts it; on loopback the answer is
//! already there when the second asks, which also makes the socket unconnected again);
//! only a pending connect (a remote host) waits on epoll. On io_uring the connects of a
//! turn go in one `io_uring_enter`, but the kernel runs each through a poll and task work
//! (and, on a kept socket, one more round: its first attempt only finds the last
//! connect's end), which cost about as much as the two system calls saved (perf stat on
//! Linux 6.18, 1-65535 on loopback: 0.53 CPU s on io_uring, 0.50 on epoll; `nc -z` 1.0).
//! Probe sockets are bound to the source address the route picks for their host: a
//! wildcard-bound socket has its source chosen and its bind-table entry rehashed on every
//! connect, which cost 15% more.
//!
//! Own answers: a probe socket is bound once, to a port it keeps for its life (one of the
//! ephemeral range, or `-p PORT`), so its source port is known without a `getsockname(2)`
//! per port. Every such port is noted in [`HeldPorts`]: `bind(2)` refuses a port where
//! something listens, and nothing can listen on it while the probe holds it, so a held
//! port of this machine is closed. A target of this machine (loopback, or one of its
//! addresses) on a held port is reported closed without a probe: probing it could only
//! reach a probe of ours — the socket itself (the source port is the port probed: TCP
//! simultaneous open with itself) or another probe bound there that probes back (two
//! probes crossing). Those would be reported open where nothing listens (`nc -z` does).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::{PortResult, PortState, ScanOptions};
use crate::error::{Error, ErrorKind, Result};

/// Source ports that probe sockets of this scan were bound to.
pub(crate) struct HeldPorts {
    bits: Vec<AtomicU64>,
}

impl HeldPorts {
    pub(crate) fn new() -> HeldPorts {
        HeldPorts {
            bits: (0..1024).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn hold(&self, port: u16) {
        self.bits[usize::from(port >> 6)].fetch_or(1 << (port & 63), Ordering::SeqCst);
    }

    pub(crate) fn held(&self, port: u16) -> bool {
        self.bits[usize::from(port >> 6)].load(Ordering::SeqCst) & (1 << (port & 63)) != 0
    }
}

/// One target of the scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Host {
    pub(crate) ip: IpAddr,
    /// The address its probe sockets are bound to: the one the routing table picks for
    /// it (a connect from a socket bound to its address skips the source selection and
    /// the bind-table update that a wildcard-bound socket pays each time), or the scan's
    /// `-s ADDR`; `None` (the wildcard) when no route was found.
    source: Option<IpAddr>,
    /// Where a SYN to it arrives: its own address, or for `0.0.0.0`/`::` (which the kernel
    /// sends to loopback) the source address.
    reach: Option<IpAddr>,
    /// Packets sent to it come back to this machine ([`super::targets::is_local`]); only
    /// looked at when some probe socket is bound to the wildcard address.
    local: bool,
}

/// The ports held by the probe sockets bound to one source address (`None`: wildcard).
struct Held {
    source: Option<IpAddr>,
    ports: HeldPorts,
}

/// The work shared by every worker: probe `i` is host `i / ports.len()`, port
/// `ports[i % ports.len()]`, handed out in order; errors and the stop flag.
pub(crate) struct Plan {
    pub(crate) hosts: Vec<Host>,
    pub(crate) ports: Vec<u16>,
    pub(crate) opts: ScanOptions,
    next: AtomicUsize,
    total: usize,
    /// Probes given back by a worker that could not get a socket (`EMFILE`).
    again: Mutex<VecDeque<usize>>,
    again_len: AtomicUsize,
    /// One entry per source address the probe sockets bind to.
    held: Vec<Held>,
    source_ports: SourcePorts,
    /// Probe slots (lanes, ring slots) still at work; see [`Plan::retire`].
    alive: AtomicUsize,
    pub(crate) retried: AtomicUsize,
    stop: AtomicBool,
    error: Mutex<Option<Error>>,
}

/// A probe to make: its index, address and host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item {
    pub(crate) index: usize,
    pub(crate) addr: SocketAddr,
    host: usize,
}

impl Plan {
    /// The plan for `hosts` × `ports`. For TCP it finds each host's source address
    /// ([`super::targets::route_source`], a UDP `connect(2)`: no packet) unless the
    /// options name one.
    pub(crate) fn new(hosts: &[IpAddr], ports: Vec<u16>, opts: ScanOptions, slots: usize) -> Plan {
        let tcp = opts.transport == super::Transport::Tcp;
        let given = opts
            .source
            .map(|s| s.ip())
            .filter(|ip| !ip.is_unspecified());
        let mut hosts: Vec<Host> = hosts
            .iter()
            .map(|&ip| {
                let source = match (tcp, given) {
                    (false, _) => None,
                    (true, Some(g)) => Some(g),
                    (true, None) => super::targets::route_source(ip),
                };
                Host {
                    ip,
                    source,
                    reach: if ip.is_unspecified() {
                        source
                    } else {
                        Some(ip)
                    },
                    local: false,
                }
            })
            .collect();
        let mut held: Vec<Held> = Vec::new();
        if tcp {
            for h in &hosts {
                if !held.iter().any(|e| e.source == h.source) {
                    held.push(Held {
                        source: h.source,
                        ports: HeldPorts::new(),
                    });
                }
            }
            if held.iter().any(|e| e.source.is_none()) {
                for h in &mut hosts {
                    h.local = super::targets::is_local(h.ip);
                }
            }
        }
        let total = hosts.len() * ports.len();
        Plan {
            hosts,
            ports,
            opts,
            next: AtomicUsize::new(0),
            total,
            again: Mutex::new(VecDeque::new()),
            again_len: AtomicUsize::new(0),
            held,
            source_ports: SourcePorts::new(),
            alive: AtomicUsize::new(slots),
            retried: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }

    pub(crate) fn item(&self, index: usize) -> Item {
        let host = index / self.ports.len();
        Item {
            index,
            addr: SocketAddr::new(self.hosts[host].ip, self.ports[index % self.ports.len()]),
            host,
        }
    }

    /// The next probe to make, or `None` when every probe was handed out (or the scan
    /// stopped).
    pub(crate) fn claim(&self) -> Option<Item> {
        if self.stopped() {
            return None;
        }
        if self.again_len.load(Ordering::Acquire) > 0
            && let Ok(mut again) = self.again.lock()
            && let Some(i) = again.pop_front()
        {
            self.again_len.fetch_sub(1, Ordering::AcqRel);
            return Some(self.item(i));
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.total).then(|| self.item(i))
    }

    /// A probe slot could not get a socket (`EMFILE`/`ENFILE`): when other slots are still
    /// at work, the probe goes back to the list for them and this slot stops (true);
    /// when it was the last one, the scan cannot go on (false).
    pub(crate) fn retire(&self, item: Item) -> bool {
        if self.alive.fetch_sub(1, Ordering::AcqRel) > 1 {
            if let Ok(mut again) = self.again.lock() {
                again.push_back(item.index);
                self.again_len.fetch_add(1, Ordering::AcqRel);
            }
            self.retried.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// The probe slots still at work.
    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::Acquire)
    }

    /// Ends the scan with `err` (the first error wins).
    pub(crate) fn fail(&self, err: Error) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(err);
        }
        self.stop.store(true, Ordering::Release);
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn take_error(&self) -> Option<Error> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    /// The result for a probe of a port that a probe socket of this scan holds on the
    /// address the probe would reach, made without a probe.
    pub(crate) fn own_port(&self, item: &Item) -> Option<PortResult> {
        let host = &self.hosts[item.host];
        let port = item.addr.port();
        let own = self.held.iter().any(|e| {
            (match e.source {
                Some(s) => host.reach == Some(s),
                None => host.local,
            }) && e.ports.held(port)
        });
        own.then(|| PortResult {
            host: item.addr.ip(),
            port,
            state: PortState::Closed,
            elapsed: Duration::ZERO,
            reason: Some(Error::new(
                ErrorKind::Os,
                "connect",
                None,
                format!(
                    "port {port} is a source port of this scan's own probes (nothing listens \
                     there; a probe would reach itself or another probe)"
                ),
            )),
        })
    }

    /// The source address of `item`'s probe sockets.
    fn source(&self, item: &Item) -> Option<IpAddr> {
        self.hosts[item.host].source
    }

    /// Notes that a probe socket holds `port` on `source`.
    fn hold(&self, source: Option<IpAddr>, port: u16) {
        if let Some(e) = self.held.iter().find(|e| e.source == source) {
            e.ports.hold(port);
        }
    }
}

/// Source ports for probe sockets: the ephemeral range, walked from a point that differs
/// from run to run.
pub(crate) struct SourcePorts {
    low: u32,
    size: u32,
    next: AtomicU32,
}

impl SourcePorts {
    /// The range of `/proc/sys/net/ipv4/ip_local_port_range` (32768-60999 where it cannot
    /// be read), starting somewhere in it.
    pub(crate) fn new() -> SourcePorts {
        let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|t| {
                let mut it = t.split_whitespace().map(|w| w.parse::<u32>().ok());
                Some((it.next()??, it.next()??))
            })
            .filter(|&(l, h)| 0 < l && l <= h && h <= 65535)
            .unwrap_or((32768, 60999));
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id().wrapping_mul(2_654_435_761);
        SourcePorts {
            low,
            size: high - low + 1,
            next: AtomicU32::new(seed),
        }
    }
}

/// A probe socket: TCP, for `target`'s family, non-blocking, bound to the scan's source
/// address and port, or else to a port of the ephemeral range chosen here, and that port
/// noted in the plan's held ports.
///
/// The port is always given to `bind(2)` by number: a socket bound to port 0 lets its port
/// go when a connect fails (no `SOCK_BINDPORT_LOCK`) and takes whatever port its next
/// `connect` picks, unknown to the scan. A numbered port stays the socket's for its life.
pub(crate) fn probe_socket(item: &Item, plan: &Plan) -> Result<socket2::Socket> {
    let target = item.addr;
    let domain = socket2::Domain::for_address(target);
    let socket = socket2::Socket::new(
        domain,
        socket2::Type::STREAM.nonblocking().cloexec(),
        Some(socket2::Protocol::TCP),
    )
    .map_err(|e| Error::from_io("socket", e))?;
    // An open port's probe ends with RST, as nmap's: a FIN would leave the numbered
    // source port in TIME_WAIT for a minute, and a scan finding ~28,000 open ports ran
    // out of the ephemeral range (bind: EADDRINUSE) and stopped.
    socket
        .set_linger(Some(Duration::ZERO))
        .map_err(|e| Error::from_io("setsockopt(SO_LINGER)", e))?;
    let source_ip = plan.source(item);
    let mut source = SocketAddr::new(
        source_ip.unwrap_or(match target {
            SocketAddr::V4(_) => IpAddr::from([0u8; 4]),
            SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
        }),
        plan.opts.source.map_or(0, |s| s.port()),
    );
    if source.port() != 0 {
        socket
            .set_reuse_address(true)
            .map_err(|e| Error::from_io("setsockopt(SO_REUSEADDR)", e))?;
        socket
            .bind(&source.into())
            .map_err(|e| Error::from_io("bind", e))?;
    } else {
        // Bounded: one try per port of the range.
        let ports = &plan.source_ports;
        let mut tries = 0;
        loop {
            let n = ports.next.fetch_add(1, Ordering::Relaxed) % ports.size;
            source.set_port((ports.low + n) as u16);
            match socket.bind(&source.into()) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) && tries < ports.size => {
                    tries += 1;
                }
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                    let high = ports.low + ports.size - 1;
                    let e = Error::from_io("bind", e);
                    return Err(Error::new(
                        ErrorKind::Os,
                        "bind",
                        e.code(),
                        format!(
                            "{e}: no free source port in the ephemeral range {}-{high} \
                             (net.ipv4.ip_local_port_range)",
                            ports.low
                        ),
                    ));
                }
                Err(e) => return Err(Error::from_io("bind", e)),
            }
        }
    }
    plan.hold(source_ip, source.port());
    Ok(socket)
}

/// A probe socket kept from a refused connect for the next probe, and what it is bound to.
pub(crate) struct Kept {
    socket: socket2::Socket,
    source: Option<IpAddr>,
    v4: bool,
}

impl Kept {
    pub(crate) fn new(socket: socket2::Socket, item: &Item, plan: &Plan) -> Kept {
        Kept {
            socket,
            source: plan.source(item),
            v4: item.addr.is_ipv4(),
        }
    }
}

/// The socket for `item`: the kept one when it is bound as `item`'s probes are (source
/// address, family), else a new one.
pub(crate) fn socket_for(
    kept: &mut Option<Kept>,
    item: &Item,
    plan: &Plan,
) -> Result<socket2::Socket> {
    match kept.take() {
        Some(k) if k.source == plan.source(item) && k.v4 == item.addr.is_ipv4() => Ok(k.socket),
        _ => probe_socket(item, plan),
    }
}

/// What a probe's `connect(2)` result means.
pub(crate) enum Outcome {
    /// Connected: open.
    Open,
    /// Refused (RST): closed, and the socket may connect again.
    Refused(Error),
    /// Another answer about the port (closed or filtered); the socket is dropped.
    Port(PortState, Error),
    /// An error about this machine, not the port: the scan ends.
    Local(Error),
}

/// The meaning of a finished connect's `errno` (`0`: connected).
pub(crate) fn outcome(errno: i32) -> Outcome {
    match errno {
        0 | libc::EISCONN => Outcome::Open,
        libc::ECONNREFUSED => Outcome::Refused(Error::from_errno("connect", errno)),
        libc::ECONNRESET => Outcome::Port(PortState::Closed, Error::from_errno("connect", errno)),
        libc::ETIMEDOUT | libc::ECANCELED => {
            Outcome::Port(PortState::Filtered, Error::timeout("connect"))
        }
        _ => {
            let err = Error::from_errno("connect", errno);
            if super::is_local_error(&err) {
                Outcome::Local(err)
            } else {
                Outcome::Port(PortState::Filtered, err)
            }
        }
    }
}

/// True for running out of file descriptors (per process or system-wide).
pub(crate) fn is_fd_shortage(e: &Error) -> bool {
    e.is_errno(libc::EMFILE) || e.is_errno(libc::ENFILE)
}

/// Where workers send their results, in batches.
pub(crate) type Results = mpsc::Sender<Vec<PortResult>>;

/// Results held back to be sent together: at most [`Batch::MAX`], none longer than
/// [`Batch::AGE`] (one wake-up of the caller's thread per batch, not per result).
pub(crate) struct Batch<'a> {
    tx: &'a Results,
    buf: Vec<PortResult>,
    /// When the oldest result held back came.
    since: Instant,
}

impl<'a> Batch<'a> {
    const MAX: usize = 1024;
    const AGE: Duration = Duration::from_millis(50);

    pub(crate) fn new(tx: &'a Results) -> Batch<'a> {
        Batch {
            tx,
            buf: Vec::new(),
            since: Instant::now(),
        }
    }

    pub(crate) fn push(&mut self, r: PortResult) {
        if self.buf.is_empty() {
            self.since = Instant::now();
        }
        self.buf.push(r);
        if self.buf.len() >= Self::MAX || self.since.elapsed() >= Self::AGE {
            self.flush();
        }
    }

    /// How long the batch may still wait before it must go (`None`: it is empty).
    pub(crate) fn due(&self) -> Option<Duration> {
        (!self.buf.is_empty()).then(|| Self::AGE.saturating_sub(self.since.elapsed()))
    }

    pub(crate) fn flush(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.tx.send(std::mem::take(&mut self.buf));
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The result of a finished probe of `item` that started at `start`.
pub(crate) fn result(
    item: &Item,
    start: Instant,
    state: PortState,
    reason: Option<Error>,
) -> PortResult {
    PortResult {
        host: item.addr.ip(),
        port: item.addr.port(),
        state,
        elapsed: start.elapsed(),
        reason,
    }
}

/// The epoll engine: `parallel` lanes on a tokio runtime with `threads` workers, each lane
/// a loop over the shared plan with one probe socket.
pub(crate) fn run_epoll(plan: &Arc<Plan>, threads: usize, lanes: usize, tx: Results) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("sockit-scan")
        .enable_all()
        .build()
        .map_err(|e| Error::from_io("scan: tokio runtime", e))?;
    let mut handles = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        let (plan, tx) = (Arc::clone(plan), tx.clone());
        handles.push(rt.spawn(async move { lane(&plan, &tx).await }));
    }
    drop(tx);
    rt.block_on(async {
        for h in handles {
            if let Err(e) = h.await {
                plan.fail(Error::new(ErrorKind::Os, "scan", None, e.to_string()));
            }
        }
    });
    Ok(())
}

/// One lane of the epoll engine.
async fn lane(plan: &Plan, tx: &Results) {
    let mut batch = Batch::new(tx);
    let mut kept: Option<Kept> = None;
    while let Some(item) = plan.claim() {
        let sock = match socket_for(&mut kept, &item, plan) {
            Ok(s) => s,
            Err(e) if is_fd_shortage(&e) && plan.retire(item) => return,
            Err(e) => return plan.fail(e),
        };
        // Checked once this lane's socket exists, so that its own port counts too.
        if let Some(r) = plan.own_port(&item) {
            batch.push(r);
            kept = Some(Kept::new(sock, &item, plan));
            continue;
        }
        let start = Instant::now();
        match probe(sock, &item, plan.opts.timeout, &mut batch).await {
            Ok((state, reason, sock)) => {
                kept = sock.map(|s| Kept::new(s, &item, plan));
                batch.push(result(&item, start, state, reason));
            }
            Err(e) => return plan.fail(e),
        }
    }
}

/// `connect(2)` as a probe: returns the state, why, and the socket when it may be used
/// again (after a refusal).
async fn probe(
    sock: socket2::Socket,
    item: &Item,
    timeout: Duration,
    batch: &mut Batch<'_>,
) -> Result<(PortState, Option<Error>, Option<socket2::Socket>)> {
    let addr: socket2::SockAddr = item.addr.into();
    let errno = |r: std::io::Result<()>| match r {
        Ok(()) => 0,
        Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
    };
    let mut code = errno(sock.connect(&addr));
    if code == libc::EINPROGRESS {
        // Asked again, connect(2) reports the answer if it is already there (loopback:
        // the SYN was answered before the first call returned), else EALREADY.
        code = errno(sock.connect(&addr));
    }
    if code == libc::EALREADY || code == libc::EINPROGRESS {
        // Pending: wait on epoll for the answer, at most the probe's timeout. Results held
        // back in the batch go out first.
        batch.flush();
        let fd = crate::sys::register_writable(sock).map_err(|e| Error::from_io("epoll_ctl", e))?;
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let mut guard = fd.writable().await?;
                let code = errno(fd.get_ref().connect(&addr));
                if code != libc::EALREADY && code != libc::EINPROGRESS {
                    return Ok::<i32, std::io::Error>(code);
                }
                guard.clear_ready();
            }
        })
        .await;
        return Ok(match waited {
            Err(_) => (PortState::Filtered, Some(Error::timeout("connect")), None),
            Ok(Err(e)) => return Err(Error::from_io("epoll_wait", e)),
            Ok(Ok(code)) => match outcome(code) {
                Outcome::Open => (PortState::Open, None, None),
                Outcome::Refused(e) => (PortState::Closed, Some(e), None),
                Outcome::Port(state, e) => (state, Some(e), None),
                Outcome::Local(e) => return Err(e),
            },
        });
    }
    Ok(match outcome(code) {
        Outcome::Open => (PortState::Open, None, None),
        Outcome::Refused(e) => (PortState::Closed, Some(e), Some(sock)),
        Outcome::Port(state, e) => (state, Some(e), None),
        Outcome::Local(e) => return Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_ports() {
        let h = HeldPorts::new();
        assert!(!h.held(0) && !h.held(65535));
        h.hold(65535);
        h.hold(64);
        assert!(h.held(65535) && h.held(64));
        assert!(!h.held(63) && !h.held(65));
    }

    #[test]
    fn connect_results() {
        assert!(matches!(outcome(0), Outcome::Open));
        assert!(matches!(outcome(libc::ECONNREFUSED), Outcome::Refused(_)));
        assert!(matches!(
            outcome(libc::ECANCELED),
            Outcome::Port(PortState::Filtered, e) if e.kind() == ErrorKind::Timeout
        ));
        assert!(matches!(
            outcome(libc::EHOSTUNREACH),
            Outcome::Port(PortState::Filtered, _)
        ));
        assert!(matches!(outcome(libc::EADDRNOTAVAIL), Outcome::Local(_)));
    }
}
