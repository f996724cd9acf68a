//! Relays: a local byte stream (stdin/stdout, or another socket) to a socket and back,
//! half-close aware, on tokio.
//!
//! Contract:
//! - Both directions are pumped at the same time (a peer that writes everything before it
//!   reads never deadlocks the relay). Every chunk read is written whole and flushed before
//!   the next read in that direction; nothing read is dropped.
//! - End of the local input (`read` returns 0) becomes `shutdown(SHUT_WR)` on the remote
//!   side unless [`RelayOptions::shutdown_on_eof`] is off; with
//!   [`RelayOptions::quit_after_eof`] the relay ends that long after it (netcat's `-q`).
//! - End of the remote side ends the relay ([`End::RemoteClosed`]) when
//!   [`RelayOptions::end_on_remote_eof`] is on (netcat: exit when the peer closes);
//!   otherwise it becomes a shutdown of the local writer and the relay ends when both
//!   directions are done (a forwarder; a client whose input is a pipe or file), or when a
//!   send fails with `EPIPE`/`ECONNRESET` after the remote end (the peer closed entirely).
//! - [`RelayOptions::idle_timeout`] ends the relay with [`ErrorKind::Timeout`] after that
//!   long without a byte in either direction; bytes still leaving a watched socket's send
//!   queue count ([`idle`]: the one idle rule of every relaying command).
//! - A reset is never turned into a clean end: an `ECONNRESET` (or `EPIPE`) on either
//!   side ends the relay with that error, and [`Outcome::reset`] says which side it came
//!   from, so the caller aborts the other side (`SO_LINGER` 0, close: a RST) instead of
//!   closing it with a FIN a reader would take for a complete stream.
//! - Datagram relays ([`relay_datagrams`]) send each local read as one datagram and write
//!   each received datagram whole; a datagram socket has no end, so they end only by
//!   `quit_after_eof`, the idle timeout or an error.
//!
//! Hook points: the local reader and writer are any `AsyncRead`/`AsyncWrite`, so line
//! delays or CRLF translation wrap the reader; a [`Tap`] sees every chunk in both
//! directions (hex dumps, raw logs).
//!
//! Zero-copy: where neither a tap nor a transform is in the way, a direction between two
//! sockets, or between a socket and a pipe or file, can move its bytes with `splice(2)`
//! instead ([`splice`]: [`Leg::Splice`], [`relay_legs_counted`]), under this same
//! contract; [`Counters::path`] says which way each direction ran.
//!
//! ```
//! use sockit::relay::{relay_stream, End, RelayOptions};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! rt.block_on(async {
//!     // The "socket": one end of an in-memory pipe; the peer echoes and closes.
//!     let (mut ours, mut peer) = tokio::io::duplex(1024);
//!     tokio::spawn(async move {
//!         let mut got = Vec::new();
//!         peer.read_to_end(&mut got).await.unwrap(); // ends at our half-close
//!         peer.write_all(&got).await.unwrap();
//!     });
//!     let (mut rr, mut rw) = tokio::io::split(&mut ours);
//!     let (mut input, mut output) = (&b"hello"[..], Vec::new());
//!     let out = relay_stream(&mut input, &mut output, &mut rr, &mut rw, &RelayOptions::default(), None).await;
//!     assert_eq!(out.result.unwrap(), End::RemoteClosed);
//!     assert_eq!((out.totals.bytes_sent, out.totals.bytes_received), (5, 5));
//!     assert_eq!(output, b"hello");
//! });
//! ```
//!
//! [`ErrorKind::Timeout`]: crate::ErrorKind::Timeout

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::error::{Error, Result};

pub mod idle;
pub use idle::has_unsent;
mod zero_copy;
pub use zero_copy::ZeroCopy;
#[cfg(target_os = "linux")]
pub mod splice;
#[cfg(target_os = "linux")]
pub use splice::{Leg, LocalFd, SpliceEnd, relay_legs_counted};

/// Bytes read per chunk by stream relays (64 KiB).
pub const STREAM_CHUNK: usize = 64 * 1024;

/// True for the errors of a write to a peer that is gone: `EPIPE` (it closed and then
/// reset) and `ECONNRESET`.
pub fn peer_gone(e: &Error) -> bool {
    e.is_errno(libc::EPIPE) || e.is_errno(libc::ECONNRESET)
}

/// How long [`relay_stream`] lets the receive side finish after a send found the peer
/// gone (`EPIPE`, `ECONNRESET`): it delivers what the peer sent before going, and its
/// error (the reset, a TLS alert) is reported rather than the broken pipe.
pub const PEER_GONE_GRACE: Duration = Duration::from_secs(1);
/// The largest UDP payload over IPv4 (65,507 bytes): the most one local read sends as one
/// datagram.
pub const MAX_DATAGRAM_SEND: usize = 65_507;
/// Receive buffer for datagrams (256 KiB: above any UDP payload and the default Unix
/// datagram limit), so a datagram is never cut.
pub const DATAGRAM_RECV_BUFFER: usize = 256 * 1024;

/// Which way bytes travel through a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Local input to the socket (stdin → peer).
    Send = 0,
    /// The socket to the local output (peer → stdout).
    Recv = 1,
}

/// Sees every chunk a relay moves, before it is written (hex dumps `-x`, raw logs `-o`).
pub trait Tap: Send + Sync {
    /// Called once per chunk, in order within each direction.
    fn data(&self, dir: Direction, bytes: &[u8]);
}

/// How a relay behaves at end of input and when idle.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// End with a Timeout error after this long without traffic in either direction (`-i`).
    pub idle_timeout: Option<Duration>,
    /// After the local input ends, wait at most this long, then end (`-q`).
    pub quit_after_eof: Option<Duration>,
    /// `shutdown(SHUT_WR)` the socket when the local input ends (default on;
    /// `--no-shutdown` turns it off). Stream relays only.
    pub shutdown_on_eof: bool,
    /// End the relay as soon as the remote side ends (default on, netcat's behaviour with
    /// a terminal); off, the local writer is shut down instead and the relay goes on until
    /// the local input ends too (or a send fails because the peer closed entirely, which is
    /// a normal end): no local input is dropped when the peer only half-closed.
    pub end_on_remote_eof: bool,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            idle_timeout: None,
            quit_after_eof: None,
            shutdown_on_eof: true,
            end_on_remote_eof: true,
        }
    }
}

/// Bytes moved by a relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Bytes written to the socket (local → remote).
    pub bytes_sent: u64,
    /// Bytes read from the socket and written locally (remote → local).
    pub bytes_received: u64,
    /// Datagrams sent (datagram relays only).
    pub datagrams_sent: u64,
    /// Datagrams received (datagram relays only).
    pub datagrams_received: u64,
}

/// Why a relay ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The remote side closed (read returned 0) and `end_on_remote_eof` was on.
    RemoteClosed,
    /// `quit_after_eof` expired after the local input ended.
    QuitAfterEof,
    /// Both directions reached their end.
    BothClosed,
}

/// What a relay did: its byte counts (also when it failed) and how it ended.
#[derive(Debug)]
pub struct Outcome {
    /// Bytes each way.
    pub totals: Totals,
    /// How it ended, or the error that ended it. Errors name the side in their operation:
    /// `read`/`write` for the local side, `recv`/`send` for the socket, `idle` for the idle
    /// timeout.
    pub result: Result<End>,
}

/// Which end of a relay a reset came from (see [`Outcome::reset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetSide {
    /// The local side (`read`/`write` failed with `ECONNRESET`, or `write` with `EPIPE`).
    Local,
    /// The socket side (`recv`/`send` failed with `ECONNRESET`, or `send` with `EPIPE`).
    Remote,
}

impl Outcome {
    /// The side that reset its connection, if a reset ended the relay: the caller passes
    /// it on as a reset (`SO_LINGER` 0 and close) to the other side, never as a FIN.
    pub fn reset(&self) -> Option<ResetSide> {
        let e = self.result.as_ref().err()?;
        if !(e.is_errno(libc::ECONNRESET) || e.is_errno(libc::EPIPE)) {
            return None;
        }
        match e.op() {
            "read" | "write" => Some(ResetSide::Local),
            "recv" | "send" => Some(ResetSide::Remote),
            _ => None,
        }
    }
}

/// Shared counters and the last-activity clock of one relay.
#[derive(Debug)]
pub struct Counters {
    base: Instant,
    last_ns: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    dgrams_sent: AtomicU64,
    dgrams_received: AtomicU64,
    /// [`Path`] of each direction (send, recv) as a number: 0 not started, 1 splice, 2 copy.
    paths: [AtomicU8; 2],
    /// One side was found reset (or gone) by the other direction's write: the end of
    /// input a direction reads after that is the reset, not a clean end.
    reset_seen: AtomicBool,
    /// The send queues the idle clock watches ([`Counters::watch_send_queues`]).
    queues: std::sync::Mutex<Vec<idle::Queue>>,
}

/// How one direction of a stream relay moves its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `splice(2)` through a pipe: the bytes never enter user space (zero-copy).
    Splice,
    /// `read(2)` into a buffer and `write(2)` out of it (taps, transforms, TLS, and
    /// where the kernel refuses splice).
    Copy,
}

impl Default for Counters {
    fn default() -> Self {
        Counters::new()
    }
}

impl Counters {
    /// New counters, with "now" as the last activity.
    pub fn new() -> Self {
        Counters {
            base: Instant::now(),
            last_ns: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            dgrams_sent: AtomicU64::new(0),
            dgrams_received: AtomicU64::new(0),
            paths: [AtomicU8::new(0), AtomicU8::new(0)],
            reset_seen: AtomicBool::new(false),
            queues: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Notes that a write found its peer reset or gone (see [`Counters::reset_instead_of_eof`]).
    pub(crate) fn mark_reset(&self) {
        self.reset_seen.store(true, Ordering::SeqCst);
    }

    /// The error a direction reports instead of its end of input once a reset was seen:
    /// the reset's error (`ECONNRESET`) on the reading side. The kernel reports a reset to
    /// one call only, so when the other direction's write took it, a read here returns 0;
    /// passing that on as `shutdown(SHUT_WR)` would turn the reset into a clean end.
    pub(crate) fn reset_instead_of_eof(&self, dir: Direction) -> Option<Error> {
        self.reset_seen
            .load(Ordering::SeqCst)
            .then(|| Error::from_errno(ops(dir).0, libc::ECONNRESET))
    }

    /// Records how direction `dir` moves its bytes from now on. A direction that falls
    /// back from splice to copying stays [`Path::Copy`]: it no longer ran zero-copy.
    pub fn set_path(&self, dir: Direction, path: Path) {
        let v = match path {
            Path::Splice => 1,
            Path::Copy => 2,
        };
        self.paths[dir as usize].fetch_max(v, Ordering::Relaxed);
    }

    /// How direction `dir` moved its bytes (`None` before it started).
    pub fn path(&self, dir: Direction) -> Option<Path> {
        match self.paths[dir as usize].load(Ordering::Relaxed) {
            1 => Some(Path::Splice),
            2 => Some(Path::Copy),
            _ => None,
        }
    }

    /// True when every byte moved went by `splice(2)`: the relay ran zero-copy (a
    /// direction that moved no byte does not decide; [`ZeroCopy`]).
    pub fn zero_copy(&self) -> bool {
        self.zero_copy_by_direction().is_zero_copy()
    }

    /// Marks traffic now (resets the idle clock).
    pub fn touch(&self) {
        let ns = self.base.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        self.last_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// When the last traffic was seen.
    pub fn last_activity(&self) -> Instant {
        self.base + Duration::from_nanos(self.last_ns.load(Ordering::Relaxed))
    }

    /// Adds `n` bytes (one chunk or datagram) in direction `dir`.
    pub fn add(&self, dir: Direction, n: usize, datagram: bool) {
        let (bytes, dgrams) = match dir {
            Direction::Send => (&self.sent, &self.dgrams_sent),
            Direction::Recv => (&self.received, &self.dgrams_received),
        };
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        if datagram {
            dgrams.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The totals so far.
    pub fn totals(&self) -> Totals {
        Totals {
            bytes_sent: self.sent.load(Ordering::Relaxed),
            bytes_received: self.received.load(Ordering::Relaxed),
            datagrams_sent: self.dgrams_sent.load(Ordering::Relaxed),
            datagrams_received: self.dgrams_received.load(Ordering::Relaxed),
        }
    }

    /// Resolves when `idle` has passed since the last traffic (`None`: never); a change in
    /// a watched send queue ([`Counters::watch_send_queues`]) is traffic ([`idle`]).
    pub async fn idle_expired(&self, idle: Option<Duration>) {
        let Some(idle) = idle else {
            return std::future::pending().await;
        };
        loop {
            let due = self.last_activity() + idle;
            if Instant::now() >= due {
                if self.send_queues_moved() {
                    self.touch();
                    continue;
                }
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

fn ops(dir: Direction) -> (&'static str, &'static str) {
    match dir {
        Direction::Send => ("read", "send"),
        Direction::Recv => ("recv", "write"),
    }
}

/// Copies `r` to `w` chunk by chunk until `r` ends, then shuts `w` down if `shutdown`.
async fn pump<R, W>(
    r: &mut R,
    w: &mut W,
    dir: Direction,
    counters: &Counters,
    tap: Option<&dyn Tap>,
    shutdown: bool,
) -> Result<()>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let (rop, wop) = ops(dir);
    counters.set_path(dir, Path::Copy);
    let mut buf = vec![0u8; STREAM_CHUNK];
    loop {
        let n = r.read(&mut buf).await.map_err(|e| Error::from_io(rop, e))?;
        if n == 0 {
            if let Some(e) = counters.reset_instead_of_eof(dir) {
                return Err(e);
            }
            if shutdown {
                match w.shutdown().await {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {}
                    Err(e) => return Err(Error::from_io("shutdown", e)),
                }
            } else {
                w.flush().await.map_err(|e| Error::from_io(wop, e))?;
            }
            return Ok(());
        }
        counters.touch();
        if let Some(t) = tap {
            t.data(dir, &buf[..n]);
        }
        w.write_all(&buf[..n])
            .await
            .map_err(|e| Error::from_io(wop, e))?;
        // Counted once written, before the flush: a relay ended by the other direction
        // while this flush waits (tokio's stdout flushes on a thread) has still passed the
        // chunk on, and its totals must say so.
        counters.add(dir, n, false);
        w.flush().await.map_err(|e| Error::from_io(wop, e))?;
        counters.touch();
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// netcat's `-C` on a byte stream: reading through it, each `\n` not already preceded by
/// `\r` comes out as `\r\n` (a `\r\n` stays as it is, ncat's rule), across reads. For
/// the local input of `connect`/`listen`, and for what an `--exec` program writes.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use tokio::io::AsyncReadExt;
/// let mut r = sockit::relay::Crlf::new(&b"a\nb\r\nc"[..]);
/// let mut out = Vec::new();
/// r.read_to_end(&mut out).await.unwrap();
/// assert_eq!(out, b"a\r\nb\r\nc");
/// # });
/// ```
#[derive(Debug)]
pub struct Crlf<R> {
    inner: R,
    last_cr: bool,
    pending: Vec<u8>,
    at: usize,
    buf: Box<[u8]>,
}

impl<R> Crlf<R> {
    /// Reads `inner` with its line ends turned into CRLF.
    pub fn new(inner: R) -> Crlf<R> {
        Crlf {
            inner,
            last_cr: false,
            pending: Vec::new(),
            at: 0,
            buf: vec![0u8; 16 * 1024].into_boxed_slice(),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Crlf<R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.at < this.pending.len() {
                let n = out.remaining().min(this.pending.len() - this.at);
                out.put_slice(&this.pending[this.at..this.at + n]);
                this.at += n;
                if this.at == this.pending.len() {
                    this.pending.clear();
                    this.at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut rb = tokio::io::ReadBuf::new(&mut this.buf);
            match std::pin::Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let got = rb.filled();
            if got.is_empty() {
                return Poll::Ready(Ok(()));
            }
            for &b in got {
                if b == b'\n' && !this.last_cr {
                    this.pending.push(b'\r');
                }
                this.pending.push(b);
                this.last_cr = b == b'\r';
            }
        }
    }
}

/// Relays a local stream and a socket stream both ways (netcat's main loop; socat's).
///
/// `local_r` → `remote_w` is [`Direction::Send`], `remote_r` → `local_w` is
/// [`Direction::Recv`]. Behaviour at end of input, on idle and with a tap: see the module
/// docs. Returns the byte totals and how it ended.
///
/// # Errors
/// In [`Outcome::result`]: [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) (`idle: timed
/// out`) when the idle timeout expires; [`ErrorKind::Os`](crate::ErrorKind::Os) with the
/// errno of a failed `read`, `write`, `recv`, `send` or `shutdown` (for example
/// `recv: [Errno 104] Connection reset by peer`, `write: [Errno 32] Broken pipe`).
pub async fn relay_stream<LR, LW, RR, RW>(
    local_r: &mut LR,
    local_w: &mut LW,
    remote_r: &mut RR,
    remote_w: &mut RW,
    opts: &RelayOptions,
    tap: Option<&dyn Tap>,
) -> Outcome
where
    LR: AsyncRead + Unpin + ?Sized,
    LW: AsyncWrite + Unpin + ?Sized,
    RR: AsyncRead + Unpin + ?Sized,
    RW: AsyncWrite + Unpin + ?Sized,
{
    let counters = Counters::new();
    let result =
        relay_stream_counted(local_r, local_w, remote_r, remote_w, opts, tap, &counters).await;
    Outcome {
        totals: counters.totals(),
        result,
    }
}

/// [`relay_stream`] counting into `counters`, which the caller keeps: a server that
/// drops the relay (a stop cuts the session) still knows how many bytes it moved.
///
/// # Errors
/// As [`relay_stream`].
pub async fn relay_stream_counted<LR, LW, RR, RW>(
    local_r: &mut LR,
    local_w: &mut LW,
    remote_r: &mut RR,
    remote_w: &mut RW,
    opts: &RelayOptions,
    tap: Option<&dyn Tap>,
    counters: &Counters,
) -> Result<End>
where
    LR: AsyncRead + Unpin + ?Sized,
    LW: AsyncWrite + Unpin + ?Sized,
    RR: AsyncRead + Unpin + ?Sized,
    RW: AsyncWrite + Unpin + ?Sized,
{
    let send = pump(
        local_r,
        remote_w,
        Direction::Send,
        counters,
        tap,
        opts.shutdown_on_eof,
    );
    let recv = pump(
        remote_r,
        local_w,
        Direction::Recv,
        counters,
        tap,
        !opts.end_on_remote_eof,
    );
    drive(send, recv, opts, counters).await
}

/// The one loop of every stream relay: runs the two directions (`send`: local to remote,
/// `recv`: remote to local, each ending `Ok` at its end of input) at the same time and
/// decides how the relay ends, as the module docs say (end of input, `-q`, the idle
/// timeout, a peer gone or reset).
pub(crate) async fn drive<S, R>(
    send: S,
    recv: R,
    opts: &RelayOptions,
    counters: &Counters,
) -> Result<End>
where
    S: Future<Output = Result<()>>,
    R: Future<Output = Result<()>>,
{
    tokio::pin!(send, recv);
    let (mut send_done, mut recv_done) = (false, false);
    let mut quit_at: Option<Instant> = None;
    loop {
        tokio::select! {
            r = &mut send, if !send_done => {
                send_done = true;
                match r {
                    // The peer went away entirely after its EOF: a normal end.
                    Err(e) if recv_done && e.op() == "send"
                        && (e.is_errno(libc::EPIPE) || e.is_errno(libc::ECONNRESET)) => {
                        break Ok(End::RemoteClosed);
                    }
                    // The peer may be gone while its side is still being read.
                    Err(e) => break Err(failed(Direction::Send, e, recv_done, recv.as_mut(), counters).await),
                    Ok(()) => {}
                }
                if recv_done { break Ok(End::BothClosed); }
                quit_at = opts.quit_after_eof.map(|q| Instant::now() + q);
            }
            r = &mut recv, if !recv_done => {
                recv_done = true;
                // A local side that is a socket may have reset.
                if let Err(e) = r {
                    break Err(failed(Direction::Recv, e, send_done, send.as_mut(), counters).await);
                }
                if opts.end_on_remote_eof { break Ok(End::RemoteClosed); }
                if send_done { break Ok(End::BothClosed); }
            }
            _ = sleep_until_opt(quit_at), if quit_at.is_some() => break Ok(End::QuitAfterEof),
            _ = counters.idle_expired(opts.idle_timeout) => break Err(Error::timeout("idle")),
        }
    }
}

/// The error a relay ends with when the direction `ended` failed with `e` (`other` is
/// the other direction, `other_done` whether it ended already).
///
/// When a side is gone (reset, broken) while the other direction still runs, what it sent
/// before going is still queued there, and so is why (a reset, a TLS alert): the relay is
/// marked reset and `other` may finish for at most [`PEER_GONE_GRACE`], so no byte is
/// lost; its error, the cause, is the one reported, else `e`. A side is gone when:
/// - `Send` (towards the peer): a send or shutdown failed with `EPIPE`/`ECONNRESET` (not
///   a read of the local side: a reset read from the local side is its own end, nothing
///   is left to deliver to it, and the other side is aborted at once). A reset reported
///   to the send side is not reported again: the receive side's read then returns 0,
///   which it reports as the reset rather than passing on a FIN.
/// - `Recv` (towards the local side): a local side that is a socket (a forwarder's
///   client) reset on a write; a closed stdout pipe gives `EPIPE`, never `ECONNRESET`,
///   and ends at once.
///
/// Otherwise `e` stands.
async fn failed<F>(
    ended: Direction,
    e: Error,
    other_done: bool,
    other: std::pin::Pin<&mut F>,
    counters: &Counters,
) -> Error
where
    F: Future<Output = Result<()>>,
{
    let gone = match ended {
        Direction::Send => e.op() != "read" && peer_gone(&e),
        Direction::Recv => e.op() == "write" && e.is_errno(libc::ECONNRESET),
    };
    if other_done || !gone {
        return e;
    }
    counters.mark_reset();
    match tokio::time::timeout(PEER_GONE_GRACE, other).await {
        Ok(Err(cause)) => cause,
        _ => e,
    }
}

/// A connected datagram socket a relay can use: `send(2)` and `recv(2)`.
pub trait DatagramSocket: Send + Sync {
    /// Sends one datagram to the connected peer.
    fn send_datagram(&self, buf: &[u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Receives one datagram from the connected peer (cut to `buf.len()` if longer).
    fn recv_datagram(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
}

impl DatagramSocket for tokio::net::UdpSocket {
    fn send_datagram(&self, buf: &[u8]) -> impl Future<Output = io::Result<usize>> + Send {
        self.send(buf)
    }
    fn recv_datagram(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send {
        self.recv(buf)
    }
}

#[cfg(unix)]
impl DatagramSocket for tokio::net::UnixDatagram {
    fn send_datagram(&self, buf: &[u8]) -> impl Future<Output = io::Result<usize>> + Send {
        self.send(buf)
    }
    fn recv_datagram(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send {
        self.recv(buf)
    }
}

/// Relays a local stream and a connected datagram socket both ways.
///
/// Each local read (at most [`MAX_DATAGRAM_SEND`] bytes) is sent as one datagram; each
/// datagram received (up to [`DATAGRAM_RECV_BUFFER`] bytes, so never cut in practice) is
/// written whole and flushed. The relay ends `quit_after_eof` after the local input ends
/// (never, when it is `None`), on the idle timeout, or on an error; `shutdown_on_eof` and
/// `end_on_remote_eof` do not apply.
///
/// # Errors
/// In [`Outcome::result`]: [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) on idle
/// expiry; [`ErrorKind::Os`](crate::ErrorKind::Os) for a failed call, for example
/// `recv: [Errno 111] Connection refused` after an ICMP port unreachable.
pub async fn relay_datagrams<LR, LW, D>(
    local_r: &mut LR,
    local_w: &mut LW,
    sock: &D,
    opts: &RelayOptions,
    tap: Option<&dyn Tap>,
) -> Outcome
where
    LR: AsyncRead + Unpin + ?Sized,
    LW: AsyncWrite + Unpin + ?Sized,
    D: DatagramSocket + ?Sized,
{
    let counters = Counters::new();
    let result = relay_datagrams_counted(local_r, local_w, sock, opts, tap, &counters).await;
    Outcome {
        totals: counters.totals(),
        result,
    }
}

/// [`relay_datagrams`] counting into `counters`, which the caller keeps.
///
/// # Errors
/// As [`relay_datagrams`].
pub async fn relay_datagrams_counted<LR, LW, D>(
    local_r: &mut LR,
    local_w: &mut LW,
    sock: &D,
    opts: &RelayOptions,
    tap: Option<&dyn Tap>,
    counters: &Counters,
) -> Result<End>
where
    LR: AsyncRead + Unpin + ?Sized,
    LW: AsyncWrite + Unpin + ?Sized,
    D: DatagramSocket + ?Sized,
{
    {
        let send = async move {
            let mut buf = vec![0u8; MAX_DATAGRAM_SEND];
            loop {
                let n = local_r
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::from_io("read", e))?;
                if n == 0 {
                    return Ok::<(), Error>(());
                }
                counters.touch();
                if let Some(t) = tap {
                    t.data(Direction::Send, &buf[..n]);
                }
                sock.send_datagram(&buf[..n])
                    .await
                    .map_err(|e| Error::from_io("send", e))?;
                counters.add(Direction::Send, n, true);
            }
        };
        let recv = async move {
            let mut buf = vec![0u8; DATAGRAM_RECV_BUFFER];
            loop {
                let n = sock
                    .recv_datagram(&mut buf)
                    .await
                    .map_err(|e| Error::from_io("recv", e))?;
                counters.touch();
                if let Some(t) = tap {
                    t.data(Direction::Recv, &buf[..n]);
                }
                local_w
                    .write_all(&buf[..n])
                    .await
                    .map_err(|e| Error::from_io("write", e))?;
                local_w
                    .flush()
                    .await
                    .map_err(|e| Error::from_io("write", e))?;
                counters.add(Direction::Recv, n, true);
            }
            #[allow(unreachable_code)]
            Ok::<(), Error>(())
        };
        tokio::pin!(send, recv);
        let mut send_done = false;
        let mut quit_at: Option<Instant> = None;
        loop {
            tokio::select! {
                r = &mut send, if !send_done => {
                    send_done = true;
                    if let Err(e) = r { break Err(e); }
                    quit_at = opts.quit_after_eof.map(|q| Instant::now() + q);
                }
                r = &mut recv => {
                    match r {
                        Err(e) => break Err(e),
                        Ok(()) => break Ok(End::RemoteClosed),
                    }
                }
                _ = sleep_until_opt(quit_at), if quit_at.is_some() => break Ok(End::QuitAfterEof),
                _ = counters.idle_expired(opts.idle_timeout) => break Err(Error::timeout("idle")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn half_close_then_remote_end() {
        // Local input "hello" then EOF; the remote echoes what it got and closes.
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        let peer = tokio::spawn(async move {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            theirs.write_all(&got).await.unwrap();
            theirs.shutdown().await.unwrap();
            got
        });
        let (mut rr, mut rw) = tokio::io::split(&mut ours);
        let mut input: &[u8] = b"hello";
        let mut output = Vec::new();
        let out = relay_stream(
            &mut input,
            &mut output,
            &mut rr,
            &mut rw,
            &RelayOptions::default(),
            None,
        )
        .await;
        assert_eq!(out.result.unwrap(), End::RemoteClosed);
        assert_eq!(out.totals.bytes_sent, 5);
        assert_eq!(out.totals.bytes_received, 5);
        assert_eq!(output, b"hello");
        assert_eq!(peer.await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn idle_timeout_ends_silent_relay() {
        let (mut ours, _theirs) = tokio::io::duplex(1024);
        let (mut rr, mut rw) = tokio::io::split(&mut ours);
        let (mut lr, _keep) = tokio::io::duplex(16);
        let mut output = Vec::new();
        let opts = RelayOptions {
            idle_timeout: Some(Duration::from_millis(200)),
            ..Default::default()
        };
        let out = relay_stream(&mut lr, &mut output, &mut rr, &mut rw, &opts, None).await;
        let err = out.result.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Timeout);
        assert_eq!(err.to_string(), "idle: timed out");
    }
}
