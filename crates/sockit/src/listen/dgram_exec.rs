//! `-u --exec`: a program per datagram peer (ncat's UDP exec).
//!
//! Contract:
//! - Each sender heard is a session (the core's admission and bounded [`PeerTable`]: at
//!   most `--max-conns` programs at once; a datagram from a new peer past it is dropped
//!   with an [`Event::Refused`]). One peer (no `-k`): the first sender only (the socket
//!   is `connect(2)`ed to it, as one-peer `-u` does), and the listener ends with its
//!   program.
//! - Each datagram from the peer is written to the program's stdin; each read of its
//!   stdout (at most [`MAX_DATAGRAM_SEND`](crate::relay::MAX_DATAGRAM_SEND) bytes) goes
//!   back to that peer as one datagram (`-C`: with CRLF line ends). The program gets
//!   ncat's environment ([`program_env`], `NCAT_PROTO=UDP`).
//! - The session ends when the program closes its stdout, or after the idle time (`-i`,
//!   default [`UDP_SESSION_IDLE`], 60 s) without a datagram either way: then its stdin is
//!   closed and it has [`GRACE`] to write what is left and exit, or it is killed. A later
//!   datagram from the same peer starts a new program.
//! - A stop ends every session at once (`drained`, the program killed). A datagram that
//!   finds its session's queue full is dropped, as a full socket buffer would.
//! - An unbound Unix sender cannot be answered: its datagrams are dropped with a warning.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::exec::{GRACE, Run, program_env, spawn};
use super::{Ctx, Dgram, Mode};
use crate::error::{Error, Result};
use crate::forward::UDP_SESSION_IDLE;
use crate::relay::{self, Counters, Direction, Tap};
use crate::serve::{CloseReason, Ending, Event, Peer, PeerTable, Session, offer_datagram};

/// Datagrams queued for one program's stdin.
const QUEUE: usize = 1024;

type Table = Arc<crate::serve::SessionChannels<Peer>>;

/// Reads datagrams and runs a program per peer until a stop (or, one peer, its program's
/// end).
pub(crate) async fn serve(sock: Dgram, ctx: &Arc<Ctx>) -> Result<()> {
    let sock = Arc::new(sock);
    let keep = ctx.opts.mode != Mode::One;
    let table: Table = Arc::new(Mutex::new(PeerTable::new(ctx.admission.max_conns())));
    let mut buf = vec![0u8; relay::DATAGRAM_RECV_BUFFER];
    let mut warned_unnamed = false;
    // One peer: its session's task, once it came.
    let mut only: Option<tokio::task::JoinHandle<Result<()>>> = None;
    let result = loop {
        let received = tokio::select! {
            biased;
            _ = ctx.stop.stopping() => break Ok(()),
            r = async { only.as_mut().expect("guarded").await }, if only.is_some() => {
                break r.unwrap_or_else(|e| Err(Error::invalid_input("exec", e.to_string())));
            }
            r = sock.recv_from(&mut buf) => r,
        };
        let (n, peer) = match received {
            Ok(x) => x,
            // An ICMP error from an earlier send_to: not fatal for a server.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => continue,
            Err(e) => break Err(Error::from_io("recvfrom", e)),
        };
        if peer == Peer::Unix(None) {
            if !std::mem::replace(&mut warned_unnamed, true) {
                ctx.emit(Event::Warning {
                    message: format!(
                        "{peer} is an unbound sender: its program could not answer it; dropped"
                    ),
                });
            }
            continue;
        }
        // Its program takes it (or, behind, drops it); else a new program starts with it.
        let Some(data) = offer_datagram(&table, &peer, buf[..n].to_vec()) else {
            continue;
        };
        if !keep && only.is_some() {
            continue;
        }
        let Some(session) = ctx.admit(peer.clone(), ctx.transport) else {
            continue;
        };
        if !keep {
            // Only this peer from now on.
            if let Err(e) = sock.connect(&peer) {
                break Err(Error::from_io("connect", e));
            }
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let _ = tx.try_send(data);
        if let Ok(mut t) = table.lock() {
            // Admission bounds the sessions to the table's capacity.
            let _ = t.insert(peer.clone(), (session.id(), tx));
        }
        let task = tokio::spawn(session_task(
            sock.clone(),
            session,
            rx,
            ctx.clone(),
            table.clone(),
        ));
        if !keep {
            only = Some(task);
        }
    };
    if let Some(task) = only
        && !task.is_finished()
    {
        // A stop came first: the session ends (drained) and reports.
        let _ = task.await;
    }
    ctx.finish().await;
    result
}

/// One peer's program, from its first datagram to its end; reports `closed`. The spawn
/// error comes back.
async fn session_task(
    sock: Arc<Dgram>,
    session: Session,
    rx: mpsc::Receiver<Vec<u8>>,
    ctx: Arc<Ctx>,
    table: Table,
) -> Result<()> {
    let peer = session.peer().clone();
    let counters = Counters::new();
    let run = Run {
        argv: &ctx.opts.exec,
        env: program_env(ctx.transport, Some(&ctx.local), &peer),
        crlf: ctx.opts.exec_crlf,
    };
    let tap = session.tap(ctx.opts.log.as_ref());
    let tap = tap.as_ref().map(|t| t as &dyn Tap);
    let idle = ctx.opts.idle_timeout.unwrap_or(UDP_SESSION_IDLE);
    let ended = tokio::select! {
        r = run_program(&run, rx, &sock, &peer, idle, tap, &counters) => r,
        _ = ctx.stop.stopping() => Ok((CloseReason::Drained, None)),
    };
    if let Ok(mut t) = table.lock() {
        t.remove_if(&peer, |(id, _)| *id == session.id());
    }
    match ended {
        Ok((reason, error)) => {
            ctx.closed(
                &session,
                Ending::new(reason).totals(counters.totals()).error(error),
            );
            Ok(())
        }
        Err(spawn) => {
            ctx.closed(
                &session,
                Ending::new(CloseReason::Error)
                    .totals(counters.totals())
                    .error(Some(spawn.clone())),
            );
            Err(spawn)
        }
    }
}

/// Runs the program for `peer`: datagrams from `rx` to its stdin, its output back as
/// datagrams; until its output ends, or `idle` passes (then its stdin is closed and it
/// has [`GRACE`] to finish). The end's reason and error; `Err` when it cannot be started.
async fn run_program(
    run: &Run<'_>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    sock: &Dgram,
    peer: &Peer,
    idle: Duration,
    tap: Option<&dyn Tap>,
    counters: &Counters,
) -> Result<(CloseReason, Option<Error>)> {
    let (mut child, stdin, mut output) = spawn(run)?;
    let mut stdin = Some(stdin);
    let mut buf = vec![0u8; relay::MAX_DATAGRAM_SEND];
    // Set once idle: the program's input is closed, it has until then to finish.
    let mut deadline: Option<tokio::time::Instant> = None;
    counters.touch();
    let end = loop {
        tokio::select! {
            d = rx.recv(), if deadline.is_none() => {
                let Some(d) = d else {
                    deadline = Some(tokio::time::Instant::now() + GRACE);
                    stdin = None;
                    continue;
                };
                counters.touch();
                counters.add(Direction::Recv, d.len(), true);
                if let Some(t) = tap {
                    t.data(Direction::Recv, &d);
                }
                if let Some(w) = stdin.as_mut()
                    && w.write_all(&d).await.is_err()
                {
                    // The program stopped reading: what comes next is discarded.
                    stdin = None;
                }
            }
            n = output.read(&mut buf) => match n {
                Ok(0) => break (CloseReason::Eof, None),
                Ok(n) => {
                    counters.touch();
                    if let Err(e) = sock.send_to(&buf[..n], peer).await {
                        break (CloseReason::Error, Some(Error::from_io("sendto", e)));
                    }
                    counters.add(Direction::Send, n, true);
                    if let Some(t) = tap {
                        t.data(Direction::Send, &buf[..n]);
                    }
                }
                Err(e) => break (CloseReason::Error, Some(Error::from_io("read", e))),
            },
            _ = counters.idle_expired(Some(idle)), if deadline.is_none() => {
                // The program's end of input; it may still answer until the deadline.
                stdin = None;
                rx.close();
                deadline = Some(tokio::time::Instant::now() + GRACE);
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => break (CloseReason::Idle, Some(Error::timeout("idle"))),
        }
    };
    drop(stdin);
    let (reason, error) = match end {
        // Ended by itself after the idle close of its input: the session was idle.
        (CloseReason::Eof, None) if deadline.is_some() => {
            (CloseReason::Idle, Some(Error::timeout("idle")))
        }
        other => other,
    };
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
    Ok((reason, error))
}
