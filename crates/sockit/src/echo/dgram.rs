//! Datagrams of the echo server on the tokio engine: UDP (batched with
//! `recvmmsg(2)`/`sendmmsg(2)` on Linux) and Unix datagrams, each echoed whole to its
//! sender.

use std::sync::Arc;
use std::sync::atomic::Ordering;

#[cfg(target_os = "linux")]
use super::UDP_BATCH;
use super::{BUF_BYTES, MAX_UNIX_DGRAM, Shared, os};
use crate::error::{Error, Result};
use crate::serve::{Event, Peer, Transport};
use crate::unix::UnixAddr;

// ---------------------------------------------------------------- datagrams

/// UDP on Linux: one `recvmmsg(2)` takes every queued datagram (up to [`UDP_BATCH`]), one
/// `sendmmsg(2)` sends them all back. A batch that comes back less than full means the
/// queue was drained: readiness is cleared without the extra `EAGAIN` call.
#[cfg(target_os = "linux")]
pub(super) async fn udp_loop(sock: tokio::net::UdpSocket, shared: Arc<Shared>) {
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
                                reason: "send_failed",
                                error: Some(Error::from_io("sendmmsg", e)),
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
