//! One peer (`nc -l`): the first admitted connection, or the first datagram's sender,
//! relayed to the local side; the listener closes once it came.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::{Ctx, Dgram, Local, name_stdin, relay_local};
use crate::error::{Error, Result};
use crate::relay::{self, Counters, Direction, Tap};
use crate::serve::close::{close_as, relay_end};
use crate::serve::{CloseReason, Ending, Event, Peer, StreamListener};

/// How long the local output may take to write what a relay left in flight (tokio's
/// stdout writes on a thread) after the relay ended.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

async fn flush_rest(local: &mut Local) {
    let _ = tokio::time::timeout(FLUSH_GRACE, local.output.flush()).await;
}

/// Accepts one peer, stops listening, relays it to `local`.
pub(crate) async fn stream(
    listener: StreamListener,
    ctx: &Arc<Ctx>,
    mut local: Local,
) -> Result<()> {
    let mut acceptor = ctx.acceptor(&listener);
    let Some((stream, session)) = acceptor.next(&ctx.stop).await? else {
        ctx.finish().await;
        return Ok(());
    };
    drop(acceptor);
    drop(listener);
    ctx.accepted(&session);
    let mut stream = ctx.wrap(stream)?;
    let tap = ctx.opts.log.as_ref().map(|l| l.tap(None));
    let tap = tap.as_ref().map(|t| t as &dyn Tap);
    let counters = ctx.counters();
    let ropts = ctx.relay_options();
    #[cfg(target_os = "linux")]
    {
        // Bytes nobody may see go through user space: the discarded output of
        // --send-only, the never-read input of --recv-only.
        if ctx.opts.send_only {
            local.output_fd = None;
        }
        if ctx.opts.recv_only {
            local.input_fd = None;
        }
    }
    let result = tokio::select! {
        r = relay_local(&mut stream, &mut local, &ropts, tap, &counters) => {
            Some(r.map_err(name_stdin))
        }
        _ = ctx.stop.aborted() => None,
    };
    flush_rest(&mut local).await;
    let totals = counters.totals();
    let zero_copy = Some(counters.zero_copy_by_direction());
    let Some(result) = result else {
        close_as(stream, CloseReason::Aborted, None).await;
        ctx.closed(
            &session,
            Ending::new(CloseReason::Aborted)
                .totals(totals)
                .zero_copy(zero_copy),
        );
        drop(session);
        ctx.finish().await;
        return Ok(());
    };
    let (reason, error) = relay_end(&result);
    // (an idle peer that stopped reading with bytes still queued is cut with RST)
    let closing = relay::idle::close_reason(reason, &stream);
    close_as(stream, closing, error.as_ref()).await;
    ctx.closed(
        &session,
        Ending::new(reason)
            .totals(totals)
            .error(error)
            .zero_copy(zero_copy),
    );
    drop(session);
    ctx.finish().await;
    result.map(|_| ())
}

/// Waits for the first datagram, follows only its sender (`connect(2)`), relays it.
pub(crate) async fn datagram(sock: Dgram, ctx: &Arc<Ctx>, mut local: Local) -> Result<()> {
    let mut buf = vec![0u8; relay::DATAGRAM_RECV_BUFFER];
    let (n, session) = loop {
        let received = tokio::select! {
            biased;
            _ = ctx.stop.stopping() => {
                ctx.finish().await;
                return Ok(());
            }
            r = sock.recv_from(&mut buf) => r,
        };
        let (n, peer) = match received {
            Ok(x) => x,
            // An ICMP error from an earlier datagram: not this listener's business.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => continue,
            Err(e) => return Err(Error::from_io("recvfrom", e)),
        };
        if let Some(s) = ctx.admit(peer, ctx.transport) {
            break (n, s);
        }
    };
    let peer = session.peer().clone();
    let tap = ctx.opts.log.as_ref().map(|l| l.tap(None));
    let tap = tap.as_ref().map(|t| t as &dyn Tap);
    let counters = ctx.counters();
    // Follow only this peer: connect(2) first, then take what it queued meanwhile and
    // drop what others sent.
    let mut first = vec![buf[..n].to_vec()];
    let named = peer != Peer::Unix(None);
    if named {
        sock.connect(&peer)
            .map_err(|e| Error::from_io("connect", e))?;
        for _ in 0..10_000 {
            match sock.try_recv_from(&mut buf) {
                Ok((m, from)) if from == peer => first.push(buf[..m].to_vec()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    let result = async {
        for d in &first {
            // The first datagrams are logged as every later one is.
            if let Some(t) = tap {
                t.data(Direction::Recv, d);
            }
            local
                .output
                .write_all(d)
                .await
                .map_err(|e| Error::from_io("write", e))?;
            counters.add(Direction::Recv, d.len(), true);
        }
        local
            .output
            .flush()
            .await
            .map_err(|e| Error::from_io("write", e))?;
        Ok(())
    }
    .await;
    drop(buf);
    let ropts = ctx.relay_options();
    let result = match result {
        Err(e) => Some(Err(e)),
        Ok(()) if !named => {
            ctx.emit(Event::Warning {
                message: format!(
                    "{peer} is an unbound sender: its datagrams are printed, stdin is not sent"
                ),
            });
            tokio::select! {
                r = unnamed(&sock, &mut local, tap, &counters) => Some(r),
                _ = ctx.stop.stopping() => None,
            }
        }
        Ok(()) => tokio::select! {
            r = relay::relay_datagrams_counted(
                &mut local.input, &mut local.output, &sock, &ropts, tap, &counters,
            ) => Some(r.map_err(name_stdin)),
            _ = ctx.stop.stopping() => None,
        },
    };
    flush_rest(&mut local).await;
    let totals = counters.totals();
    let (reason, error, result) = match result {
        None => (CloseReason::Drained, None, Ok(())),
        Some(r) => {
            let (reason, error) = relay_end(&r);
            (reason, error, r.map(|_| ()))
        }
    };
    ctx.closed(&session, Ending::new(reason).totals(totals).error(error));
    drop(session);
    ctx.finish().await;
    result
}

/// An unbound Unix sender cannot be answered: what it sends is printed, stdin ignored.
async fn unnamed(
    sock: &Dgram,
    local: &mut Local,
    tap: Option<&dyn Tap>,
    counters: &Counters,
) -> Result<crate::relay::End> {
    let mut buf = vec![0u8; relay::DATAGRAM_RECV_BUFFER];
    loop {
        let (n, _) = sock
            .recv_from(&mut buf)
            .await
            .map_err(|e| Error::from_io("recvfrom", e))?;
        if let Some(t) = tap {
            t.data(Direction::Recv, &buf[..n]);
        }
        local
            .output
            .write_all(&buf[..n])
            .await
            .map_err(|e| Error::from_io("write", e))?;
        local
            .output
            .flush()
            .await
            .map_err(|e| Error::from_io("write", e))?;
        counters.touch();
        counters.add(Direction::Recv, n, true);
    }
}
