//! UDP sessions of the forwarder: one session per peer address, kept in the core's
//! bounded [`PeerTable`]; datagrams from the peer go to the target, answers come back
//! from the listening socket.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::target::{self, TargetConn};
use super::{Ctx, UDP_SESSION_IDLE};
use crate::error::{Error, Result};
use crate::relay::{Counters, Direction, Tap};
use crate::serve::{
    CloseReason, Ending, Event, Peer, PeerTable, Session, Side, Transport, offer_datagram,
};

const UDP_QUEUE: usize = 1024;
const DATAGRAM_BUF: usize = 65_536;

type Table = Arc<crate::serve::SessionChannels<SocketAddr>>;

/// Reads datagrams until the stop says stop (`Ok`) or `recvfrom(2)` fails for good.
pub(crate) async fn dispatch(sock: Arc<UdpSocket>, ctx: &Arc<Ctx>) -> Result<()> {
    let table: Table = Arc::new(Mutex::new(PeerTable::new(ctx.admission.max_conns())));
    let mut buf = vec![0u8; DATAGRAM_BUF];
    loop {
        let received = tokio::select! {
            biased;
            _ = ctx.stop.stopping() => return Ok(()),
            r = sock.recv_from(&mut buf) => r,
        };
        let (n, peer) = match received {
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
        // Its session takes it (or, behind, drops it); else a new session starts with it.
        let Some(data) = offer_datagram(&table, &peer, buf[..n].to_vec()) else {
            continue;
        };
        let permit = match ctx.admission.admit(&Peer::Ip(peer)) {
            Ok(p) => p,
            Err(reason) => {
                ctx.emit(Event::Refused {
                    transport: Transport::Udp,
                    peer: Peer::Ip(peer),
                    reason,
                    error: None,
                });
                continue;
            }
        };
        let session = Session::new(permit, Peer::Ip(peer), Transport::Udp);
        let (tx, rx) = mpsc::channel(UDP_QUEUE);
        let _ = tx.try_send(data);
        if let Ok(mut t) = table.lock() {
            // Admission bounds the sessions to the table's capacity.
            let _ = t.insert(peer, (session.id(), tx));
        }
        let (sock, ctx, table) = (sock.clone(), Arc::clone(ctx), table.clone());
        tokio::spawn(async move {
            let id = session.id();
            ctx.accepted(&session);
            let counters = Counters::new();
            // A datagram peer cannot be seen leaving: nobody waits on this.
            let retried = tokio::sync::Notify::new();
            let (reason, reset_by, error) = tokio::select! {
                c = target::connect_retrying(id, &ctx, None, &retried) => match c {
                    Err(error) => {
                        ctx.emit(Event::ConnectFailed {
                            id,
                            target: ctx.target_text.clone(),
                            error: error.clone(),
                        });
                        (CloseReason::Error, None, Some(error))
                    }
                    Ok(conn) => {
                        ctx.emit(Event::Connected { id, target: conn.reached() });
                        let tap = session.tap(ctx.opts.log.as_ref());
                        let tap = tap.as_ref().map(|t| t as &dyn Tap);
                        peer_session(id, conn, rx, &sock, peer, &ctx, tap, &counters).await
                    }
                },
                _ = ctx.stop.announced() => (CloseReason::Drained, None, None),
            };
            if let Ok(mut t) = table.lock() {
                t.remove_if(&peer, |(sid, _)| *sid == id);
            }
            ctx.closed(
                &session,
                Ending::new(reason)
                    .totals(counters.totals())
                    .reset_by(reset_by)
                    .error(error),
            );
        });
    }
}

/// One UDP peer's session: datagrams from `rx` go to the target; what the target sends goes
/// back to `peer` from the listening socket, until idle, the target's end, an error or a
/// stop.
#[allow(clippy::too_many_arguments)]
async fn peer_session(
    id: u64,
    mut conn: TargetConn,
    mut rx: mpsc::Receiver<Vec<u8>>,
    sock: &UdpSocket,
    peer: SocketAddr,
    ctx: &Ctx,
    tap: Option<&dyn Tap>,
    counters: &Counters,
) -> (CloseReason, Option<Side>, Option<Error>) {
    let idle = ctx.opts.idle_timeout.unwrap_or(UDP_SESSION_IDLE);
    let mut last = Instant::now();
    let mut buf = vec![0u8; DATAGRAM_BUF];
    let reset = |e: &Error| {
        if e.is_errno(libc::ECONNRESET) || e.is_errno(libc::EPIPE) {
            (CloseReason::Reset, Some(Side::Target))
        } else {
            (CloseReason::Error, None)
        }
    };
    loop {
        tokio::select! {
            d = rx.recv() => {
                let Some(d) = d else { return (CloseReason::Eof, None, None) };
                last = Instant::now();
                if let Some(t) = tap {
                    t.data(Direction::Send, &d);
                }
                if let Err(e) = conn.send(&d).await {
                    let e = Error::from_io("send", e);
                    let (r, s) = reset(&e);
                    return (r, s, Some(e));
                }
                counters.add(Direction::Send, d.len(), true);
                ctx.emit(traffic(id, 0, d.len()));
            }
            r = conn.recv(&mut buf) => match r {
                Ok(None) => return (CloseReason::Eof, None, None),
                Ok(Some(n)) => {
                    last = Instant::now();
                    if let Some(t) = tap {
                        t.data(Direction::Recv, &buf[..n]);
                    }
                    if let Err(e) = sock.send_to(&buf[..n], peer).await {
                        return (CloseReason::Error, None, Some(Error::from_io("sendto", e)));
                    }
                    counters.add(Direction::Recv, n, true);
                    ctx.emit(traffic(id, n, 0));
                }
                Err(e) => {
                    let e = Error::from_io("recv", e);
                    let (r, s) = reset(&e);
                    return (r, s, Some(e));
                }
            },
            _ = tokio::time::sleep_until(last + idle) => {
                return (CloseReason::Idle, None, Some(Error::timeout("idle")));
            }
            _ = ctx.stop.announced() => return (CloseReason::Drained, None, None),
        }
    }
}

/// One datagram of an open session, for the live counters: `sent` bytes to the peer or
/// `received` from it.
fn traffic(id: u64, sent: usize, received: usize) -> Event {
    Event::Traffic {
        id,
        transport: Transport::Udp,
        bytes_sent: sent as u64,
        bytes_received: received as u64,
        datagrams_sent: u64::from(sent > 0),
        datagrams_received: u64::from(received > 0),
    }
}
