//! Datagrams of the echo server on the tokio engine: UDP (batched with
//! `recvmmsg(2)`/`sendmmsg(2)` on Linux) and Unix datagrams, each echoed whole to its
//! sender.

use std::sync::Arc;
use std::sync::atomic::Ordering;

#[cfg(not(target_os = "linux"))]
use super::os;
use super::{BUF_BYTES, MAX_UNIX_DGRAM, Shared};
#[cfg(target_os = "linux")]
use super::{UDP_BATCH, UNIX_BATCH};
use crate::error::Error;
#[cfg(not(target_os = "linux"))]
use crate::error::Result;
use crate::serve::{Event, Peer, Transport};
#[cfg(not(target_os = "linux"))]
use crate::unix::UnixAddr;

// ---------------------------------------------------------------- datagrams

/// UDP on Linux: one `recvmmsg(2)` takes every queued datagram (up to [`UDP_BATCH`]), one
/// `sendmmsg(2)` sends them all back ([`batched_loop`]).
#[cfg(target_os = "linux")]
pub(super) async fn udp_loop(sock: tokio::net::UdpSocket, shared: Arc<Shared>) {
    let batch = crate::sys::mmsg::DgramBatch::new(UDP_BATCH, BUF_BYTES);
    batched_loop(&sock, batch, 0, &shared).await;
}

/// Unix datagrams on Linux, batched as UDP is ([`batched_loop`]); `MSG_TRUNC` makes a
/// datagram longer than [`MAX_UNIX_DGRAM`] known as such.
#[cfg(target_os = "linux")]
pub(super) async fn unix_dgram_loop(sock: tokio::net::UnixDatagram, shared: Arc<Shared>) {
    // Room to send back the largest datagram (see the portable loop below).
    let _ = socket2::SockRef::from(&sock).set_send_buffer_size(MAX_UNIX_DGRAM);
    // Zero-allocated: a slot's pages cost memory only once a datagram that long came.
    let batch = crate::sys::mmsg::DgramBatch::new(UNIX_BATCH, MAX_UNIX_DGRAM);
    batched_loop(&sock, batch, libc::MSG_TRUNC, &shared).await;
}

/// A datagram socket [`batched_loop`] serves: UDP or Unix.
#[cfg(target_os = "linux")]
trait BatchSocket: std::os::fd::AsRawFd + Sync {
    const TRANSPORT: Transport;

    /// tokio's readiness-clearing `try_io`.
    fn try_io<R>(
        &self,
        interest: tokio::io::Interest,
        f: impl FnOnce() -> std::io::Result<R>,
    ) -> std::io::Result<R>;

    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;

    fn writable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;

    /// The sender of received datagram `i`, as events name it.
    fn sender(batch: &crate::sys::mmsg::DgramBatch, i: usize) -> Peer;

    /// Whether datagram `i` can be echoed: `None`, or the `dropped` event's reason.
    fn refusal(batch: &crate::sys::mmsg::DgramBatch, i: usize) -> Option<&'static str>;
}

#[cfg(target_os = "linux")]
impl BatchSocket for tokio::net::UdpSocket {
    const TRANSPORT: Transport = Transport::Udp;
    fn try_io<R>(
        &self,
        interest: tokio::io::Interest,
        f: impl FnOnce() -> std::io::Result<R>,
    ) -> std::io::Result<R> {
        tokio::net::UdpSocket::try_io(self, interest, f)
    }
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        tokio::net::UdpSocket::readable(self)
    }
    fn writable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        tokio::net::UdpSocket::writable(self)
    }
    fn sender(batch: &crate::sys::mmsg::DgramBatch, i: usize) -> Peer {
        // (recvmmsg on a UDP socket always names an IP sender)
        Peer::Ip(
            batch
                .sender(i)
                .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        )
    }
    fn refusal(batch: &crate::sys::mmsg::DgramBatch, i: usize) -> Option<&'static str> {
        // (a slot holds the largest UDP payload: never truncated, always answerable)
        batch.truncated(i).then_some("too_long")
    }
}

#[cfg(target_os = "linux")]
impl BatchSocket for tokio::net::UnixDatagram {
    const TRANSPORT: Transport = Transport::Unixgram;
    fn try_io<R>(
        &self,
        interest: tokio::io::Interest,
        f: impl FnOnce() -> std::io::Result<R>,
    ) -> std::io::Result<R> {
        tokio::net::UnixDatagram::try_io(self, interest, f)
    }
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        tokio::net::UnixDatagram::readable(self)
    }
    fn writable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        tokio::net::UnixDatagram::writable(self)
    }
    fn sender(batch: &crate::sys::mmsg::DgramBatch, i: usize) -> Peer {
        Peer::from_unix_sockaddr(&batch.sender_sockaddr(i))
    }
    fn refusal(batch: &crate::sys::mmsg::DgramBatch, i: usize) -> Option<&'static str> {
        if batch.payload_len(i) > MAX_UNIX_DGRAM || batch.truncated(i) {
            return Some("too_long");
        }
        // Any name recvmmsg gave (a path, or the abstract name Linux autobind gives
        // `sockit connect -u --unix` and socat) is answered; only an unnamed sender is not.
        match Self::sender(batch, i) {
            Peer::Unix(Some(_)) => None,
            _ => Some("unbound_sender"),
        }
    }
}

/// The batched datagram echo (Linux): one `recvmmsg(2)` (with `recv_flags`) takes every
/// queued datagram, up to the batch; one `sendmmsg(2)` sends each run of answerable ones
/// back; one that cannot be answered is reported dropped and splits the run. A batch that
/// comes back less than full means the queue was drained: readiness is cleared without the
/// extra `EAGAIN` call.
#[cfg(target_os = "linux")]
async fn batched_loop<S: BatchSocket>(
    sock: &S,
    mut batch: crate::sys::mmsg::DgramBatch,
    recv_flags: libc::c_int,
    shared: &Shared,
) {
    use tokio::io::Interest;
    let fd = sock.as_raw_fd();
    loop {
        if sock.readable().await.is_err() {
            break;
        }
        loop {
            let mut drained = false;
            let got = sock.try_io(Interest::READABLE, || {
                let n = batch.recv_flags(fd, recv_flags)?;
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
            let mut start = 0;
            while start < n {
                let mut end = start;
                while end < n && S::refusal(&batch, end).is_none() {
                    end += 1;
                }
                echo_run(sock, &mut batch, start..end, shared).await;
                if let Some(reason) = (end < n).then(|| S::refusal(&batch, end)).flatten() {
                    shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
                    shared.emit(|| Event::Dropped {
                        transport: S::TRANSPORT,
                        peer: S::sender(&batch, end),
                        bytes: batch.payload_len(end),
                        reason,
                        error: None,
                    });
                    end += 1;
                }
                start = end;
            }
            if drained {
                break;
            }
        }
    }
}

/// Sends datagrams `run` of the last receive back to their senders with `sendmmsg`,
/// waiting while the socket's send buffer is full; one that cannot be sent is reported
/// dropped and the rest go on.
#[cfg(target_os = "linux")]
async fn echo_run<S: BatchSocket>(
    sock: &S,
    batch: &mut crate::sys::mmsg::DgramBatch,
    run: std::ops::Range<usize>,
    shared: &Shared,
) {
    let fd = sock.as_raw_fd();
    let (mut datagrams, mut bytes) = (0u64, 0u64);
    let mut next = run.start;
    while next < run.end {
        match sock.try_io(tokio::io::Interest::WRITABLE, || {
            batch.echo(fd, next..run.end)
        }) {
            Ok(sent) => {
                for i in next..next + sent {
                    let len = batch.payload(i).len();
                    bytes += len as u64;
                    if shared.datagram_events {
                        shared.emit(|| Event::Datagram {
                            transport: S::TRANSPORT,
                            peer: S::sender(batch, i),
                            bytes: len,
                        });
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
                // The first datagram of the rest cannot be sent (its sender is gone, …).
                shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
                shared.emit(|| Event::Dropped {
                    transport: S::TRANSPORT,
                    peer: S::sender(batch, next),
                    bytes: batch.payload(next).len(),
                    reason: "send_failed",
                    error: Some(Error::from_io("sendmmsg", e)),
                });
                next += 1;
            }
        }
    }
    shared.totals.add_datagrams(datagrams, bytes);
}

/// UDP elsewhere: `recvfrom(2)` and `sendto(2)`, one datagram at a time.
#[cfg(not(target_os = "linux"))]
pub(super) async fn udp_loop(sock: tokio::net::UdpSocket, shared: Arc<Shared>) {
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
                        reason: "send_failed",
                        error: Some(Error::from_io("sendto", e)),
                    });
                }
            }
        }
        shared.totals.add_datagrams(datagrams, bytes);
        (datagrams, bytes) = (0, 0);
    }
}

/// Unix datagrams elsewhere: `recvfrom(2)` and `sendto(2)`, one datagram at a time.
#[cfg(not(target_os = "linux"))]
pub(super) async fn unix_dgram_loop(sock: tokio::net::UnixDatagram, shared: Arc<Shared>) {
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
        let from = match Peer::from_unix_sockaddr(&from) {
            Peer::Unix(u) => u,
            Peer::Ip(_) => None,
        };
        if n > MAX_UNIX_DGRAM {
            shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
            shared.emit(|| Event::Dropped {
                transport: Transport::Unixgram,
                peer: Peer::Unix(from),
                bytes: n,
                reason: "too_long",
                error: None,
            });
            continue;
        }
        // Answer whatever address recvfrom gave (a path, or the abstract name Linux
        // autobind gives `sockit connect -u --unix` and socat); only an unnamed sender
        // cannot be answered.
        let Some(peer) = from else {
            shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
            shared.emit(|| Event::Dropped {
                transport: Transport::Unixgram,
                peer: Peer::Unix(None),
                bytes: n,
                reason: "unbound_sender",
                error: None,
            });
            continue;
        };
        match unix_send_to(&sock, &buf[..n], &peer).await {
            Ok(_) => {
                shared.totals.add_datagrams(1, n as u64);
                if shared.datagram_events {
                    shared.emit(|| Event::Datagram {
                        transport: Transport::Unixgram,
                        peer: Peer::Unix(Some(peer)),
                        bytes: n,
                    });
                }
            }
            Err(e) => {
                shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
                shared.emit(|| Event::Dropped {
                    transport: Transport::Unixgram,
                    peer: Peer::Unix(Some(peer)),
                    bytes: n,
                    reason: "send_failed",
                    error: Some(e),
                });
            }
        }
    }
}

/// `sendto(2)` to a Unix address, a path or an abstract name (tokio's `send_to` takes
/// paths only), waiting for writability when the peer's queue is full.
#[cfg(not(target_os = "linux"))]
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
