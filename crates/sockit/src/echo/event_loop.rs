//! The event loop of the echo server: one mio (epoll) loop per worker thread serves its
//! TCP listener and connections and its UDP socket.
//!
//! Why not a tokio task per connection: on loopback the kernel's TCP work is ~90 % of a
//! round trip, and the rest is what the server adds. A tokio task per connection costs
//! ~1,400 user-space instructions per round trip (waking, scheduling and polling the task,
//! measured with callgrind); this loop, which handles each readiness event in place, costs
//! a small fraction of that. The system calls are those of a C epoll server: one `recv` and
//! one `send` per echo, `epoll_wait` shared by every connection ready at once.
//!
//! Each connection is registered once, edge-triggered, for reading and writing, and keeps
//! its own readiness flags (as tokio does), so there is no `epoll_ctl` per message and no
//! read after an event that only said "writable". A read shorter than the buffer means the
//! socket was drained (edge-triggered epoll reports the next arrival), so no read ends in
//! `EAGAIN` on the ping-pong path.
//!
//! UDP in the same loop: one `recvmmsg(2)` takes every queued datagram (up to
//! `UDP_BATCH`), one `sendmmsg(2)` sends them back whole; a short batch means drained.
//!
//! With `--accept-proxy-from`, a connection from a listed source waits in a table of its
//! own (tokens with [`PENDING`] set) until its PROXY header is read (the core's
//! [`HeaderReader`]); only then is it admitted and registered as a connection, so the
//! echo path never looks at a header.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::{ACCEPT_PAUSE, BUF_BYTES, CloseReason, Shared};
use crate::error::Error;
use crate::serve::proxied::{Check, HEADER_TIMEOUT, HeaderReader, original_peer};
use crate::serve::{Event, Peer, Permit, Phase, Refusal, Transport};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const UDP: Token = Token(2);
const FIRST_CONN: usize = 3;
/// The token bit of a connection still sending its PROXY header.
const PENDING: usize = 1 << (usize::BITS - 2);
/// Reads of a full buffer in a row before a connection yields to the others.
const READS_PER_TURN: usize = 16;

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// The admission slot (and id) of the connection.
    permit: Permit,
    readable: bool,
    writable: bool,
    /// The peer shut down its side (EPOLLRDHUP) or the socket has an error: reading stays
    /// "ready" until a read says so, since no further edge will come.
    read_closed: bool,
    /// Bytes read but not yet written back (allocated on first use, then reused).
    pending: Vec<u8>,
    pending_off: usize,
    echoed: u64,
    eof: bool,
    started: Instant,
    last_activity: Instant,
}

/// A connection from a `--accept-proxy-from` source whose header is not complete yet.
struct Pending {
    stream: TcpStream,
    peer: SocketAddr,
    reader: HeaderReader,
    deadline: Instant,
}

/// What handling a connection's readiness ended with.
enum Outcome {
    /// Waiting for the next readiness event.
    Wait,
    /// It still has bytes to read: handle it again after the others.
    Again,
    /// Closed.
    Close(CloseReason),
}

/// A mio-driven TCP echo loop; [`Loop::run`] returns when the server stops.
pub(super) struct Loop {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    buf: Box<[u8]>,
    shared: Arc<Shared>,
    accept_paused_until: Option<Instant>,
    again: Vec<usize>,
    udp: Option<Udp>,
    /// Connections awaiting their PROXY header (empty without `--accept-proxy-from`).
    pending: Vec<Option<Pending>>,
}

/// The UDP socket of the loop (`--tcp --udp` or `-u`): datagrams batched with
/// `recvmmsg(2)`/`sendmmsg(2)`, every queued datagram taken per readiness event.
struct Udp {
    sock: mio::net::UdpSocket,
    batch: crate::sys::mmsg::DgramBatch,
    readable: bool,
    writable: bool,
    /// Datagrams `next..filled` of the batch still to send (the send buffer was full).
    next: usize,
}

impl Loop {
    /// Registers `listener` and a waker (returned, for [`EchoHandle::stop`]).
    pub(super) fn new(
        listener: Option<std::net::TcpListener>,
        udp: Option<std::net::UdpSocket>,
        shared: Arc<Shared>,
    ) -> io::Result<(Loop, Arc<Waker>)> {
        let poll = Poll::new()?;
        let listener = match listener {
            Some(l) => {
                let mut l = TcpListener::from_std(l);
                poll.registry()
                    .register(&mut l, LISTENER, Interest::READABLE)?;
                Some(l)
            }
            None => None,
        };
        let udp = match udp {
            Some(u) => {
                let mut sock = mio::net::UdpSocket::from_std(u);
                poll.registry().register(
                    &mut sock,
                    UDP,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Some(Udp {
                    sock,
                    batch: crate::sys::mmsg::DgramBatch::new(super::UDP_BATCH, BUF_BYTES),
                    readable: true,
                    writable: true,
                    next: 0,
                })
            }
            None => None,
        };
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok((
            Loop {
                poll,
                listener,
                conns: Vec::new(),
                free: Vec::new(),
                buf: vec![0u8; BUF_BYTES].into_boxed_slice(),
                shared,
                accept_paused_until: None,
                again: Vec::new(),
                udp,
                pending: Vec::new(),
            },
            waker,
        ))
    }

    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Relaxed)
    }

    /// Serves until the server stops: at the stop it stops accepting, serves the open
    /// connections until they end or the drain deadline, then aborts the rest (RST).
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut draining = false;
        let idle_tick = self
            .shared
            .idle
            .map(|d| (d / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
        let mut next_idle_check = idle_tick.map(|t| Instant::now() + t);
        loop {
            if !draining && self.stopping() {
                // Stop accepting at once; open connections go on until the deadline.
                if let Some(mut l) = self.listener.take() {
                    let _ = self.poll.registry().deregister(&mut l);
                }
                if let Some(mut u) = self.udp.take() {
                    let _ = self.poll.registry().deregister(&mut u.sock);
                }
                // Not admitted yet: closed (their sockets are dropped).
                for mut p in std::mem::take(&mut self.pending).into_iter().flatten() {
                    let _ = self.poll.registry().deregister(&mut p.stream);
                }
                draining = true;
            }
            let mut deadline = None;
            if draining {
                match self.shared.stop.phase() {
                    Phase::Aborted => {
                        for i in 0..self.conns.len() {
                            if self.conns[i].is_some() {
                                self.close(i, CloseReason::Aborted);
                            }
                        }
                        return;
                    }
                    Phase::Draining { deadline: d } => deadline = Some(d),
                    Phase::Running => {}
                }
                if self.conns.iter().all(Option::is_none) {
                    return;
                }
            }
            let timeout = self.timeout(next_idle_check, deadline);
            // (`events` still holds the last turn's: busy polling follows only a turn that
            // served something, so an idle server sleeps.)
            let ready = match self.shared.busy_poll {
                Some(spin) if !events.is_empty() => self.busy_poll(&mut events, spin, timeout),
                _ => false,
            };
            if !ready
                && let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                // epoll_wait failing is not recoverable for this loop; pause, then retry.
                std::thread::sleep(ACCEPT_PAUSE);
                continue;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    UDP => {
                        if let Some(u) = self.udp.as_mut() {
                            u.readable |= ev.is_readable() || ev.is_error();
                            u.writable |= ev.is_writable() || ev.is_error();
                            udp_echo(u, &self.shared);
                        }
                    }
                    Token(t) if t & PENDING != 0 => self.read_header(t & !PENDING),
                    Token(t) => {
                        let i = t - FIRST_CONN;
                        if let Some(Some(c)) = self.conns.get_mut(i) {
                            c.read_closed |= ev.is_read_closed() || ev.is_error();
                            c.readable |= ev.is_readable() || c.read_closed;
                            c.writable |= ev.is_writable() || ev.is_write_closed() || ev.is_error();
                            self.serve(i);
                        }
                    }
                }
            }
            // Connections that yielded with bytes still to read.
            for i in std::mem::take(&mut self.again) {
                if self.conns.get(i).is_some_and(Option::is_some) {
                    self.serve(i);
                }
            }
            if self
                .accept_paused_until
                .is_some_and(|t| Instant::now() >= t)
            {
                self.accept_paused_until = None;
                self.accept_all();
            }
            if let (Some(tick), Some(at)) = (idle_tick, next_idle_check)
                && Instant::now() >= at
            {
                self.close_idle();
                next_idle_check = Some(Instant::now() + tick);
            }
            if !self.pending.is_empty() {
                self.expire_headers();
            }
        }
    }

    /// Busy polling ([`super::EchoConfig::busy_poll`]): `epoll_wait` with a zero timeout
    /// until something is ready, `spin` has passed, or `timeout` is due, whichever is
    /// first. True when `events` holds what came; false: nothing did (the caller then
    /// sleeps in `epoll_wait` as usual).
    fn busy_poll(
        &mut self,
        events: &mut Events,
        spin: Duration,
        timeout: Option<Duration>,
    ) -> bool {
        if timeout == Some(Duration::ZERO) {
            return false;
        }
        let until = Instant::now() + timeout.map_or(spin, |t| t.min(spin));
        loop {
            if self.poll.poll(events, Some(Duration::ZERO)).is_err() {
                return false;
            }
            if !events.is_empty() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            // Yield, not spin: a client sharing this CPU runs first (the spin found it
            // doubling the round trip of an unpinned client otherwise).
            crate::sys::sched_yield();
        }
    }

    fn timeout(&self, idle: Option<Instant>, deadline: Option<Instant>) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        // (no PROXY header pending is the common case: no walk over the table then)
        let header = if self.pending.is_empty() {
            None
        } else {
            self.pending.iter().flatten().map(|p| p.deadline).min()
        };
        let soonest = [idle, deadline, self.accept_paused_until, header]
            .into_iter()
            .flatten()
            .min()?;
        // The clock is read only when something is due (not once per loop turn: 31 of
        // 509 instructions per round trip, callgrind, issue 16).
        Some(soonest.saturating_duration_since(Instant::now()))
    }

    fn accept_all(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    match self.shared.admission.proxy_sources().check(&Peer::Ip(peer)) {
                        Check::Plain => self.add(stream, peer, None),
                        Check::Header => self.add_pending(stream, peer),
                        Check::Refuse => {
                            self.refuse(stream, peer, Refusal::UnlistedSource, None);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EPERM | libc::EPROTO | libc::EINTR)
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM or something unexpected: the queued
                    // connections wait in the backlog; try again after a pause.
                    self.shared.emit(|| Event::AcceptPaused {
                        transport: Transport::Tcp,
                        error: Error::from_io("accept", e),
                        pause_ms: ACCEPT_PAUSE.as_millis() as u64,
                    });
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// Turns a connection away (reported), before it was admitted.
    fn refuse(&self, stream: TcpStream, peer: SocketAddr, reason: Refusal, error: Option<Error>) {
        let decided = Err(crate::serve::Refused {
            peer: Peer::Ip(peer),
            reason,
            error,
        });
        let _ = self.shared.report(Transport::Tcp, decided);
        let _ = stream.shutdown(Shutdown::Write);
    }

    /// A connection from a listed source: its PROXY header is read first.
    fn add_pending(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let i = match self.pending.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.pending.push(None);
                self.pending.len() - 1
            }
        };
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, Token(PENDING | i), Interest::READABLE)
        {
            let e = Error::from_io("epoll_ctl", e);
            self.refuse(stream, peer, Refusal::ProxyHeader, Some(e));
            return;
        }
        self.pending[i] = Some(Pending {
            stream,
            peer,
            reader: HeaderReader::new(),
            deadline: Instant::now() + HEADER_TIMEOUT,
        });
        self.read_header(i);
    }

    /// Reads what came of pending connection `i`'s header; once complete the connection
    /// is admitted as the client it names.
    fn read_header(&mut self, i: usize) {
        let Some(p) = self.pending.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let result = loop {
            match p.reader.read_from(socket2::SockRef::from(&p.stream)) {
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Some(h)) => break Ok(h),
                Err(e) => break Err(Error::from_io("recv", e)),
            }
        };
        let Some(mut p) = self.pending[i].take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut p.stream);
        self.trim_pending();
        match result {
            Ok(h) => {
                let client = original_peer(&h, p.peer);
                self.add(p.stream, client, Some(p.peer));
            }
            Err(e) => self.refuse(p.stream, p.peer, Refusal::ProxyHeader, Some(e)),
        }
    }

    /// Closes the pending connections whose header is late.
    fn expire_headers(&mut self) {
        let now = Instant::now();
        for i in 0..self.pending.len() {
            if self.pending[i].as_ref().is_some_and(|p| now >= p.deadline)
                && let Some(mut p) = self.pending[i].take()
            {
                let _ = self.poll.registry().deregister(&mut p.stream);
                let e = Error::timeout("proxy protocol");
                self.refuse(p.stream, p.peer, Refusal::ProxyHeader, Some(e));
            }
        }
        self.trim_pending();
    }

    /// Drops the free slots at the end of the pending table (empty again when idle).
    fn trim_pending(&mut self) {
        while self.pending.last().is_some_and(Option::is_none) {
            self.pending.pop();
        }
    }

    /// Admits a connection as `peer` (from a PROXY header sent by `via`, if any) and
    /// registers it for echoing.
    fn add(&mut self, mut stream: TcpStream, peer: SocketAddr, via: Option<SocketAddr>) {
        let shared = &self.shared;
        let Some(permit) = shared.admit_via(Transport::Tcp, &Peer::Ip(peer), via.map(Peer::Ip))
        else {
            let _ = stream.shutdown(Shutdown::Write);
            return;
        };
        // TCP_NODELAY: an echo must leave at once, not wait for Nagle's timer.
        let _ = stream.set_nodelay(true);
        let i = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(i + FIRST_CONN),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.free.push(i);
            let why = CloseReason::Error(Error::from_io("epoll_ctl", e));
            shared.closed(
                permit,
                Transport::Tcp,
                Peer::Ip(peer),
                0,
                0,
                Instant::now(),
                why,
            );
            return;
        }
        let now = Instant::now();
        self.conns[i] = Some(Conn {
            stream,
            peer,
            permit,
            readable: true,
            writable: true,
            read_closed: false,
            pending: Vec::new(),
            pending_off: 0,
            echoed: 0,
            eof: false,
            started: now,
            last_activity: now,
        });
    }

    fn close(&mut self, i: usize, reason: CloseReason) {
        let Some(mut c) = self.conns[i].take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.stream);
        let unechoed = (c.pending.len() - c.pending_off) as u64;
        if !c.pending.is_empty() {
            self.shared.pending.fetch_sub(1, Ordering::SeqCst);
        }
        self.free.push(i);
        match reason {
            // A stop's cut is a reset, never a FIN a reader would take for the end.
            CloseReason::Aborted => crate::serve::close::set_abortive(&c.stream),
            // The server ends an idle connection: its FIN first (nothing is unread after
            // an idle period, so the close sends no RST).
            CloseReason::Idle => {
                let _ = c.stream.shutdown(Shutdown::Write);
            }
            _ => {}
        }
        let Conn {
            stream,
            peer,
            permit,
            echoed,
            started,
            ..
        } = c;
        drop(stream);
        let peer = Peer::Ip(peer);
        self.shared.closed(
            permit,
            Transport::Tcp,
            peer,
            echoed,
            unechoed,
            started,
            reason,
        );
        // Closing a descriptor may let a paused accept go on.
        if self.accept_paused_until.is_some() {
            self.accept_paused_until = Some(Instant::now());
        }
    }

    fn close_idle(&mut self) {
        let Some(idle) = self.shared.idle else { return };
        let now = Instant::now();
        for i in 0..self.conns.len() {
            if self.conns[i]
                .as_ref()
                .is_some_and(|c| now.duration_since(c.last_activity) >= idle)
            {
                self.close(i, CloseReason::Idle);
            }
        }
    }

    fn serve(&mut self, i: usize) {
        let track_time = self.shared.idle.is_some();
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        let outcome = echo(c, &mut self.buf, &self.shared, track_time);
        match outcome {
            Outcome::Wait => {}
            Outcome::Again => self.again.push(i),
            Outcome::Close(r) => self.close(i, r),
        }
    }
}

/// Echoes what the connection's readiness allows, from the worker's buffer.
fn echo(c: &mut Conn, buf: &mut [u8], shared: &Shared, track_time: bool) -> Outcome {
    let mut full_reads = 0;
    loop {
        // 1. Bytes the client has not taken yet go first; nothing is read meanwhile, so a
        //    client that does not read is held back by TCP's flow control.
        while c.pending_off < c.pending.len() {
            if !c.writable {
                return Outcome::Wait;
            }
            match (&c.stream).write(&c.pending[c.pending_off..]) {
                Ok(0) => {
                    return Outcome::Close(CloseReason::Error(Error::from_errno(
                        "send",
                        libc::EPIPE,
                    )));
                }
                Ok(n) => {
                    c.pending_off += n;
                    c.echoed += n as u64;
                    if track_time {
                        c.last_activity = Instant::now();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.writable = false;
                    return Outcome::Wait;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Outcome::Close(CloseReason::Error(Error::from_io("send", e))),
            }
        }
        if !c.pending.is_empty() {
            c.pending.clear();
            c.pending_off = 0;
            shared.pending.fetch_sub(1, Ordering::SeqCst);
        }
        if c.eof {
            // Half-close as the client did, then end.
            let _ = c.stream.shutdown(Shutdown::Write);
            return Outcome::Close(CloseReason::Eof);
        }
        // 2. Read into the worker's buffer and write straight back from it.
        if !c.readable {
            return Outcome::Wait;
        }
        if full_reads == READS_PER_TURN {
            return Outcome::Again;
        }
        let n = match (&c.stream).read(buf) {
            Ok(0) => {
                c.eof = true;
                continue;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.readable = false;
                return Outcome::Wait;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Outcome::Close(CloseReason::Error(Error::from_io("recv", e))),
        };
        if n < buf.len() {
            // Drained: edge-triggered epoll reports the next arrival (but not a FIN that
            // came with these bytes, hence read_closed).
            c.readable = c.read_closed;
        } else {
            full_reads += 1;
        }
        if track_time {
            c.last_activity = Instant::now();
        }
        let written = if c.writable {
            match (&c.stream).write(&buf[..n]) {
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.writable = false;
                    0
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => return Outcome::Close(CloseReason::Error(Error::from_io("send", e))),
            }
        } else {
            0
        };
        c.echoed += written as u64;
        if written < n {
            if c.pending.is_empty() {
                shared.pending.fetch_add(1, Ordering::SeqCst);
            }
            c.pending.extend_from_slice(&buf[written..n]);
        }
    }
}

/// Echoes every queued datagram: one `recvmmsg` per batch, one `sendmmsg` to send the
/// batch back. A batch shorter than [`super::UDP_BATCH`] means the queue was drained.
fn udp_echo(u: &mut Udp, shared: &Shared) {
    use std::os::fd::AsRawFd;
    let fd = u.sock.as_raw_fd();
    let (mut datagrams, mut bytes) = (0u64, 0u64);
    let mut errors = 0;
    loop {
        // 1. What the last batch could not send yet.
        let filled = u.batch.filled();
        while u.next < filled {
            if !u.writable {
                break;
            }
            match u.batch.echo(fd, u.next..filled) {
                Ok(sent) => {
                    for i in u.next..u.next + sent {
                        let len = u.batch.payload(i).len();
                        bytes += len as u64;
                        if shared.datagram_events
                            && let Some(peer) = u.batch.sender(i)
                        {
                            shared.emit(|| Event::Datagram {
                                transport: Transport::Udp,
                                peer: Peer::Ip(peer),
                                bytes: len,
                            });
                        }
                    }
                    datagrams += sent as u64;
                    u.next += sent;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => u.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The first datagram of the rest cannot be sent: drop it, go on.
                    shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
                    let len = u.batch.payload(u.next).len();
                    if let Some(peer) = u.batch.sender(u.next) {
                        shared.emit(|| Event::Dropped {
                            transport: Transport::Udp,
                            peer: Peer::Ip(peer),
                            bytes: len,
                            reason: "send_failed",
                            error: Some(Error::from_io("sendmmsg", e)),
                        });
                    }
                    u.next += 1;
                }
            }
        }
        if u.next < filled || !u.readable {
            break;
        }
        // 2. The next batch.
        u.next = 0;
        match u.batch.recv(fd) {
            Ok(n) => {
                if n < u.batch.capacity() {
                    u.readable = false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                u.readable = false;
                break;
            }
            // An error queued by ICMP concerns one earlier peer: go on reading (bounded).
            Err(_) => {
                errors += 1;
                if errors > 8 {
                    u.readable = false;
                    break;
                }
            }
        }
    }
    shared.totals.add_datagrams(datagrams, bytes);
}
