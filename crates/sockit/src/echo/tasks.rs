//! The tokio engine of the echo server: one current-thread runtime per worker thread,
//! a task per stream connection (Unix streams always; TCP with [`TcpEngine::Tasks`]),
//! polled by hand so that a read and its write happen in one poll.
//!
//! [`TcpEngine::Tasks`]: super::TcpEngine::Tasks

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::dgram::{udp_loop, unix_dgram_loop};
use super::{ACCEPT_PAUSE, BUF_BYTES, CloseReason, Shared, WorkerSockets};
use crate::error::Error;
use crate::serve::{Event, Peer, Transport};

pub(super) async fn worker(sockets: WorkerSockets, shared: Arc<Shared>) {
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(l) = sockets.tcp {
        match tokio::net::TcpListener::from_std(l) {
            Ok(l) => {
                tasks.spawn(accept_loop(TcpAcceptor(l), Arc::clone(&shared)));
            }
            Err(e) => shared.emit(|| Event::AcceptPaused {
                transport: Transport::Tcp,
                error: Error::from_io("epoll_ctl", e),
                pause_ms: 0,
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
    shared.stop.stopping().await;
    tasks.abort_all();
    // Open connections finish, or abort at the drain deadline (each selects on it); the
    // runtime's drop then closes what is left.
    tokio::select! {
        _ = shared.admission.idle() => {}
        _ = async {
            shared.stop.aborted().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        } => {}
    }
}

// ---------------------------------------------------------------- streams

/// What accept loops need from TCP and Unix listeners.
trait Acceptor: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + std::os::fd::AsFd + Unpin + Send + 'static;
    const TRANSPORT: Transport;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Stream, Peer)>> + Send;
    fn prepare(stream: &Self::Stream);
    /// The core's accept path for TCP with `--accept-proxy-from`: the PROXY header, then
    /// admission (reported); `None` when the connection is not to be served.
    fn admit_proxied(
        stream: &Self::Stream,
        peer: &Peer,
        shared: &Shared,
    ) -> impl Future<Output = Option<(crate::serve::Permit, Peer)>> + Send;
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
    async fn admit_proxied(
        stream: &Self::Stream,
        peer: &Peer,
        shared: &Shared,
    ) -> Option<(crate::serve::Permit, Peer)> {
        let Peer::Ip(addr) = peer else { return None };
        let decided = shared.admission.admit_tcp(stream, *addr).await;
        shared.report(Transport::Tcp, decided)
    }
}

impl Acceptor for UnixAcceptor {
    type Stream = tokio::net::UnixStream;
    const TRANSPORT: Transport = Transport::Unix;
    async fn accept(&self) -> std::io::Result<(Self::Stream, Peer)> {
        let (s, a) = self.0.accept().await?;
        Ok((s, Peer::from_tokio_unix(&a)))
    }
    fn prepare(_stream: &Self::Stream) {}
    async fn admit_proxied(
        _stream: &Self::Stream,
        peer: &Peer,
        shared: &Shared,
    ) -> Option<(crate::serve::Permit, Peer)> {
        let permit = shared.admit(Transport::Unix, peer)?;
        Some((permit, peer.clone()))
    }
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
                let proxied = !shared.admission.proxy_sources().is_empty();
                let admitted = if proxied {
                    None
                } else {
                    let Some(permit) = shared.admit(A::TRANSPORT, &peer) else {
                        tokio::spawn(crate::serve::close::linger_close(stream));
                        continue;
                    };
                    Some((permit, peer.clone()))
                };
                A::prepare(&stream);
                let shared2 = Arc::clone(&shared);
                tokio::spawn(async move {
                    // With --accept-proxy-from the header is read here, off the accept
                    // loop; a stop meanwhile closes the connection.
                    let mut stream = stream;
                    let (permit, peer) = match admitted {
                        Some(a) => a,
                        None => {
                            let decided = tokio::select! {
                                biased;
                                a = A::admit_proxied(&stream, &peer, &shared2) => a,
                                _ = shared2.stop.stopping() => return,
                            };
                            match decided {
                                Some(a) => a,
                                None => {
                                    crate::serve::close::linger_close(&mut stream).await;
                                    return;
                                }
                            }
                        }
                    };
                    let started = std::time::Instant::now();
                    let mut conn = Conn::new(stream, &shared2);
                    let reason = tokio::select! {
                        r = poll_fn(|cx| conn.poll_echo(cx)) => r,
                        _ = shared2.stop.aborted() => CloseReason::Aborted,
                    };
                    let (echoed, unechoed) =
                        (conn.echoed, (conn.pending.len() - conn.pending_off) as u64);
                    match reason {
                        CloseReason::Aborted => crate::serve::close::set_abortive(&conn.stream),
                        CloseReason::Idle => {
                            crate::serve::close::linger_close(&mut conn.stream).await;
                        }
                        _ => {}
                    }
                    drop(conn);
                    shared2.closed(
                        permit,
                        A::TRANSPORT,
                        peer,
                        echoed,
                        unechoed,
                        started,
                        reason,
                    );
                });
            }
            Err(e) if is_resource_shortage(&e) => {
                shared.emit(|| Event::AcceptPaused {
                    transport: A::TRANSPORT,
                    error: Error::from_io("accept", e),
                    pause_ms: ACCEPT_PAUSE.as_millis() as u64,
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
                    pause_ms: ACCEPT_PAUSE.as_millis() as u64,
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
