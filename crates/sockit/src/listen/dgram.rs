//! `-k` over datagrams: every sender heard is a session (the core's bounded
//! [`PeerTable`], up to `--max-conns`), what they send goes to the local output, and the
//! local input goes to the most recent sender.
//!
//! The local input is read only while there is a sender to answer; a chunk read just as
//! that sender was forgotten waits for the next one (never dropped). `-i`: a session
//! idle that long ends (`closed`, reason `idle`, its own totals); if it was the most
//! recent sender, the next datagram, from anyone, makes its sender the one answered. A
//! stop ends every session at once (`drained`). An unbound Unix sender cannot be
//! answered: its datagrams are printed, it is never the one answered.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::{Ctx, Dgram, Local, name_stdin};
use crate::dump::SessionTap;
use crate::error::{Error, Result};
use crate::relay::{self, Counters, Direction, Tap};
use crate::serve::{CloseReason, Ending, Event, Peer, PeerTable, Session, Transport};

/// One sender's session.
struct PeerSession {
    session: Session,
    counters: Counters,
    tap: Option<SessionTap>,
}

type Table = Mutex<PeerTable<Peer, Arc<PeerSession>>>;

pub(crate) async fn serve(sock: Dgram, ctx: &Arc<Ctx>, local: Local) -> Result<()> {
    let sock = Arc::new(sock);
    let table: Arc<Table> = Arc::new(Mutex::new(PeerTable::new(ctx.admission.max_conns())));
    let (target_tx, target_rx) = watch::channel::<Option<Arc<PeerSession>>>(None);
    let target_tx = Arc::new(target_tx);
    // Set when the listener ends without a stop (its local output closed).
    let (ended, _) = watch::channel(false);
    let Local {
        input, mut output, ..
    } = local;
    let sender = tokio::spawn(input_to_target(input, sock.clone(), target_rx, ctx.clone()));
    let mut buf = vec![0u8; relay::DATAGRAM_RECV_BUFFER];
    let result: Result<()> = loop {
        let received = tokio::select! {
            biased;
            _ = ctx.stop.stopping() => break Ok(()),
            r = sock.recv_from(&mut buf) => r,
        };
        let (n, peer) = match received {
            Ok(x) => x,
            // An ICMP error from an earlier send_to: not fatal for a server.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => continue,
            Err(e) => break Err(Error::from_io("recvfrom", e)),
        };
        let existing = table.lock().ok().and_then(|t| t.get(&peer).cloned());
        let ps = match existing {
            Some(ps) => ps,
            None => {
                let Some(session) = ctx.admit(peer.clone(), ctx.transport) else {
                    continue;
                };
                if peer == Peer::Unix(None) {
                    ctx.emit(Event::Warning {
                        message: format!("{peer} is an unbound sender: it cannot be answered"),
                    });
                }
                let ps = Arc::new(PeerSession {
                    tap: session.tap(ctx.opts.log.as_ref()),
                    session,
                    counters: Counters::new(),
                });
                if let Ok(mut t) = table.lock() {
                    // Admission bounds the sessions to the table's capacity.
                    let _ = t.insert(peer.clone(), ps.clone());
                }
                tokio::spawn(watch_session(
                    ps.clone(),
                    table.clone(),
                    target_tx.clone(),
                    ended.subscribe(),
                    ctx.clone(),
                ));
                ps
            }
        };
        ps.counters.touch();
        ps.counters.add(Direction::Recv, n, true);
        ctx.emit(traffic(&ps, ctx.transport, 0, n));
        if let Some(t) = &ps.tap {
            t.data(Direction::Recv, &buf[..n]);
        }
        // The reply target changes before the datagram is shown, so a line typed in
        // answer to it goes to its sender.
        if peer != Peer::Unix(None) {
            target_tx.send_replace(Some(ps));
        }
        let written = async {
            output.write_all(&buf[..n]).await?;
            output.flush().await
        };
        // A closed local output ends the listener.
        if written.await.is_err() {
            break Ok(());
        }
    };
    // Every session ends now (drained): they have no end of their own. After a stop they
    // end once it is reported (`stopping` first, then their `closed`).
    target_tx.send_replace(None);
    if ctx.stop.phase() == crate::serve::Phase::Running {
        ended.send_replace(true);
    }
    ctx.finish().await;
    sender.abort();
    result
}

/// Ends a session when it has been idle for `-i` (forgetting it as the target), or at
/// a stop or the listener's end.
async fn watch_session(
    ps: Arc<PeerSession>,
    table: Arc<Table>,
    target: Arc<watch::Sender<Option<Arc<PeerSession>>>>,
    mut ended: watch::Receiver<bool>,
    ctx: Arc<Ctx>,
) {
    let id = ps.session.id();
    let reason = tokio::select! {
        _ = ps.counters.idle_expired(ctx.opts.idle_timeout) => CloseReason::Idle,
        _ = ctx.stop.announced() => CloseReason::Drained,
        _ = ended.wait_for(|e| *e) => CloseReason::Drained,
    };
    if let Ok(mut t) = table.lock() {
        t.remove_if(ps.session.peer(), |p| p.session.id() == id);
    }
    target.send_if_modified(|t| {
        if t.as_ref().is_some_and(|p| p.session.id() == id) {
            *t = None;
            return true;
        }
        false
    });
    let error = (reason == CloseReason::Idle).then(|| Error::timeout("idle"));
    ctx.closed(
        &ps.session,
        Ending::new(reason)
            .totals(ps.counters.totals())
            .error(error),
    );
}

/// The local input to the most recent sender, read only while there is one.
async fn input_to_target(
    mut input: Box<dyn AsyncRead + Unpin + Send>,
    sock: Arc<Dgram>,
    mut target: watch::Receiver<Option<Arc<PeerSession>>>,
    ctx: Arc<Ctx>,
) {
    let mut buf = vec![0u8; relay::MAX_DATAGRAM_SEND];
    loop {
        if target.wait_for(Option::is_some).await.is_err() {
            return;
        }
        let n = match input.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                let err = name_stdin(Error::from_io("read", e));
                ctx.emit(Event::Warning {
                    message: format!("{err}; nothing more is sent to the peers"),
                });
                return;
            }
        };
        // The sender may have been forgotten meanwhile: wait for the next one.
        let Ok(to) = target.wait_for(Option::is_some).await.map(|t| t.clone()) else {
            return;
        };
        let Some(to) = to else { continue };
        let peer = to.session.peer();
        match sock.send_to(&buf[..n], peer).await {
            Ok(_) => {
                if let Some(t) = &to.tap {
                    t.data(Direction::Send, &buf[..n]);
                }
                to.counters.touch();
                to.counters.add(Direction::Send, n, true);
                ctx.emit(traffic(&to, ctx.transport, n, 0));
            }
            Err(e) => ctx.emit(Event::Dropped {
                transport: ctx.transport,
                peer: peer.clone(),
                bytes: n,
                reason: "send_failed",
                error: Some(Error::from_io("sendto", e)),
            }),
        }
    }
}

/// One datagram of an open session, for the live counters (`Event::Traffic`): `sent`
/// bytes to the peer or `received` from it.
fn traffic(ps: &PeerSession, transport: Transport, sent: usize, received: usize) -> Event {
    Event::Traffic {
        id: ps.session.id(),
        transport,
        bytes_sent: sent as u64,
        bytes_received: received as u64,
        datagrams_sent: u64::from(sent > 0),
        datagrams_received: u64::from(received > 0),
    }
}
