//! Stream sessions of the forwarder: the accept loop, and one session per client relayed
//! to its target (a stream, or a datagram socket).

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::target::{self, TargetConn};
use super::{Ctx, StreamListener, UDP_SESSION_IDLE};
use crate::error::{Error, ErrorKind, Result};
use crate::relay::{self, Counters, RelayOptions, ResetSide, Tap};
use crate::serve::close::{abort, abort_after_sent, linger_close};
use crate::serve::{BoxStream, CloseReason, Ending, Event, Session, Side, Stop};

/// Accepts until the stop says stop (`Ok`) or `accept(2)` fails for good (`Err`).
pub(crate) async fn accept_loop(listener: StreamListener, ctx: &Arc<Ctx>) -> Result<()> {
    let c = Arc::clone(ctx);
    ctx.accept_each(&listener, move |stream, session| {
        tokio::spawn(session_task(stream, session, Arc::clone(&c)));
    })
    .await
}

async fn session_task(mut client: BoxStream, session: Session, ctx: Arc<Ctx>) {
    let id = session.id();
    ctx.accepted(&session);
    // The address the client reached, for --send-proxy: as its own PROXY header said
    // (haproxy passes it on), else this socket's (before TLS wraps the stream).
    let local = session.destination().or_else(|| {
        socket2::SockRef::from(&client)
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
    });
    if let Some(config) = &ctx.opts.tls {
        let handshake = tokio::select! {
            r = tls_accept(client, config.clone()) => r,
            _ = ctx.stop.aborted() => {
                return ctx.closed(&session, Ending::new(CloseReason::Aborted));
            }
        };
        client = match handshake {
            Ok(s) => s,
            Err(e) => {
                return ctx.closed(&session, Ending::new(CloseReason::Error).error(Some(e)));
            }
        };
    }
    let header = match ctx.opts.send_proxy {
        Some(v) => match target::proxy_header(v, session.peer(), local) {
            Ok(h) => Some(h),
            Err(e) => {
                linger_close(&mut client).await;
                return ctx.closed(&session, Ending::new(CloseReason::Error).error(Some(e)));
            }
        },
        None => None,
    };
    // Once a connect failed and is retried, a client that leaves ends the session: no
    // slot held and no target connection for nobody (haproxy's abortonclose).
    let retried = tokio::sync::Notify::new();
    let watch = dup_fd(&client);
    let waited = {
        let gone = async {
            retried.notified().await;
            client_gone(watch).await
        };
        tokio::select! {
            c = target::connect_retrying(id, &ctx, header.as_deref(), &retried) => Ok(c),
            g = gone => Err(Some(g)),
            _ = ctx.stop.aborted() => Err(None),
        }
    };
    let conn = match waited {
        Ok(c) => c,
        Err(None) => {
            abort(client);
            ctx.closed(&session, Ending::new(CloseReason::Aborted));
            return;
        }
        Err(Some(reset)) => {
            let error = Error::new(
                ErrorKind::Os,
                "retry",
                None,
                "the client left while the target was retried; retries stopped",
            );
            let (reason, by) = if reset {
                abort(client);
                (CloseReason::Reset, Some(Side::Peer))
            } else {
                linger_close(&mut client).await;
                (CloseReason::Eof, None)
            };
            ctx.closed(
                &session,
                Ending::new(reason).reset_by(by).error(Some(error)),
            );
            return;
        }
    };
    let conn = match conn {
        Ok(c) => c,
        Err(error) => {
            ctx.emit(Event::ConnectFailed {
                id,
                target: ctx.target_text.clone(),
                error: error.clone(),
            });
            linger_close(&mut client).await;
            ctx.closed(&session, Ending::new(CloseReason::Error).error(Some(error)));
            return;
        }
    };
    ctx.emit(Event::Connected {
        id,
        target: conn.reached(),
    });
    let tap = session.tap(ctx.opts.log.as_ref());
    let tap = tap.as_ref().map(|t| t as &dyn Tap);
    let counters = Counters::new();
    match conn {
        TargetConn::Stream(t, _) => {
            let end = relay_streams(
                client,
                t,
                ctx.opts.idle_timeout,
                tap,
                &counters,
                &ctx.stop,
                // A PROXY header keeps the copying path (issue 16), as TLS does.
                ctx.opts.splice && ctx.opts.send_proxy.is_none(),
            )
            .await;
            ctx.closed(&session, end);
        }
        TargetConn::Datagram(u, _) => {
            let ropts = RelayOptions {
                idle_timeout: Some(ctx.opts.idle_timeout.unwrap_or(UDP_SESSION_IDLE)),
                quit_after_eof: Some(ctx.opts.eof_grace),
                shutdown_on_eof: true,
                end_on_remote_eof: false,
            };
            let input_ended = AtomicBool::new(false);
            let result = {
                let (cr, mut cw) = tokio::io::split(&mut client);
                let mut watched = EofWatch {
                    inner: cr,
                    ended: &input_ended,
                };
                tokio::select! {
                    r = relay::relay_datagrams_counted(&mut watched, &mut cw, &u, &ropts, tap, &counters) => Ok(r),
                    _ = ctx.stop.aborted() => Err(CloseReason::Aborted),
                    // Only replies can still come once the client's input ended: a stop
                    // does not wait for them.
                    _ = drained(&ctx, &input_ended) => Err(CloseReason::Drained),
                }
            };
            let totals = counters.totals();
            // Datagrams cannot be spliced: the session copied.
            let copied = Some(relay::ZeroCopy::COPIED);
            match result {
                Err(CloseReason::Aborted) => {
                    abort(client);
                    ctx.closed(
                        &session,
                        Ending::new(CloseReason::Aborted)
                            .totals(totals)
                            .zero_copy(copied),
                    );
                }
                Err(reason) => {
                    linger_close(client).await;
                    ctx.closed(
                        &session,
                        Ending::new(reason).totals(totals).zero_copy(copied),
                    );
                }
                Ok(r) => {
                    let (reason, error) = end_of(r);
                    // The client sees EOF now, not when the task is dropped.
                    linger_close(client).await;
                    ctx.closed(
                        &session,
                        Ending::new(reason)
                            .totals(totals)
                            .error(error)
                            .zero_copy(copied),
                    );
                }
            }
        }
    }
}

/// Relays a client stream and a target stream both ways until both ends are done, one
/// side resets, `idle` passes without traffic, or the stop aborts; then closes both as
/// every relaying server does (DESIGN.md): a reset is passed on as a reset (`SO_LINGER`
/// 0), a stop's abort cuts both with RST, an idle or failed session gets a lingering close
/// (a side that still has bytes queued it never took gets RST instead, [`close_or_cut`]).
/// One mechanism for `forward` and `proxy`. With `splice`, two plain sockets and no tap,
/// the bytes move zero-copy ([`relay_both`]). Returns what the session's `closed` event
/// says ([`Ending`]: the relay's totals, seen from the client side, and whether it ran
/// zero-copy).
pub(crate) async fn relay_streams(
    mut client: BoxStream,
    mut t: BoxStream,
    idle: Option<Duration>,
    tap: Option<&dyn Tap>,
    counters: &Counters,
    stop: &Stop,
    splice: bool,
) -> Ending {
    let ropts = RelayOptions {
        idle_timeout: idle,
        quit_after_eof: None,
        shutdown_on_eof: true,
        end_on_remote_eof: false,
    };
    // Bytes still reaching a slow reader on either side are traffic (relay::idle).
    counters.watch_send_queues(&[client.as_fd(), t.as_fd()]);
    let result = tokio::select! {
        r = relay_both(&mut client, &mut t, &ropts, tap, counters, splice) => Some(r),
        _ = stop.aborted() => None,
    };
    let totals = counters.totals();
    let zero_copy = counters.zero_copy_by_direction();
    let end = |reason, reset_by, error| {
        Ending::new(reason)
            .totals(totals)
            .reset_by(reset_by)
            .error(error)
            .zero_copy(Some(zero_copy))
    };
    let Some(result) = result else {
        abort(client);
        abort(t);
        return end(CloseReason::Aborted, None, None);
    };
    let outcome = relay::Outcome { totals, result };
    match outcome.reset() {
        // A reset is passed on as a reset, never as a FIN.
        Some(ResetSide::Local) => {
            // What the client sent before its reset reaches the target first.
            abort_after_sent(t).await;
            end(CloseReason::Reset, Some(Side::Peer), outcome.result.err())
        }
        Some(ResetSide::Remote) => {
            abort_after_sent(client).await;
            end(CloseReason::Reset, Some(Side::Target), outcome.result.err())
        }
        None => {
            let (reason, error) = end_of(outcome.result);
            if reason != CloseReason::Eof {
                // A side that still has bytes it never took (an idle cut of a peer that
                // stopped reading, a failed session) is cut with RST: a FIN would let it
                // read the part that did arrive as a complete stream.
                tokio::join!(close_or_cut(client), close_or_cut(t));
            }
            end(reason, None, error)
        }
    }
}

/// Closes a side the lingering way, or aborts it (RST) when bytes written to it are still
/// queued ([`relay::has_unsent`]): it stopped taking them, and they would be lost under a
/// FIN.
async fn close_or_cut(s: BoxStream) {
    if relay::has_unsent(&s) {
        abort(s);
    } else {
        linger_close(s).await;
    }
}

/// The server side of a client's TLS handshake (`--tls`), within
/// [`TLS_HANDSHAKE_TIMEOUT`](super::TLS_HANDSHAKE_TIMEOUT); a failed one closes the
/// client (dropped: the handshake's alert, if any, was sent).
async fn tls_accept(
    client: BoxStream,
    config: Arc<crate::tls::rustls::ServerConfig>,
) -> Result<BoxStream> {
    let fd = dup_fd(&client)?;
    let mut s = crate::tls::Stream::accept(client, config);
    match tokio::time::timeout(super::TLS_HANDSHAKE_TIMEOUT, s.handshake()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(Error::timeout("tls handshake")),
    }
    Ok(Box::new(crate::serve::WithFd::new(s, fd)))
}

/// A duplicate of `socket`'s descriptor, for a [`WithFd`](crate::serve::WithFd) around the
/// TLS stream over it.
pub(crate) fn dup_fd<S: std::os::fd::AsFd>(socket: &S) -> Result<std::os::fd::OwnedFd> {
    socket
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::from_io("dup", e))
}

/// Relays a client and its stream target both ways: zero-copy (`splice(2)`) when asked
/// and both are plain sockets and no tap needs the bytes, else through user space.
async fn relay_both(
    client: &mut BoxStream,
    target: &mut BoxStream,
    ropts: &RelayOptions,
    tap: Option<&dyn Tap>,
    counters: &Counters,
    splice: bool,
) -> Result<relay::End> {
    #[cfg(target_os = "linux")]
    if splice && tap.is_none() {
        use relay::{Leg, SpliceEnd};
        let (c, t) = (
            SpliceEnd::socket((**client).as_any()),
            SpliceEnd::socket((**target).as_any()),
        );
        if let (Some(c), Some(t)) = (c, t) {
            let (send, recv) = (Leg::Splice(c, t), Leg::Splice(t, c));
            return relay::relay_legs_counted(send, recv, ropts, None, counters).await;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = splice;
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut tr, mut tw) = tokio::io::split(target);
    relay::relay_stream_counted(&mut cr, &mut cw, &mut tr, &mut tw, ropts, tap, counters).await
}

/// Resolves once the client is gone: `true` when it reset its connection, `false` when it
/// ended its stream without sending anything (`EPOLLRDHUP` on a duplicate of its
/// descriptor, then `recv(2)` with `MSG_PEEK`). A client that sent bytes is still
/// waiting for the answer, even if it shut down its side: never resolves then, nor when
/// the descriptor cannot be watched.
async fn client_gone(client: Result<std::os::fd::OwnedFd>) -> bool {
    let watched = client.and_then(|fd| {
        crate::sys::register_readable(fd.into()).map_err(|e| Error::from_io("watch", e))
    });
    let Ok(watched) = watched else {
        return std::future::pending().await;
    };
    loop {
        let Ok(mut ready) = watched.readable().await else {
            return std::future::pending().await;
        };
        if !ready.ready().is_read_closed() {
            // Bytes only: wait for the next change (each wakeup is a new edge).
            ready.clear_ready();
            continue;
        }
        let sock = socket2::SockRef::from(watched.get_ref());
        let mut one = [std::mem::MaybeUninit::<u8>::uninit()];
        return match sock.peek(&mut one) {
            Ok(0) => false,
            Ok(_) => std::future::pending().await,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                ready.clear_ready();
                continue;
            }
            Err(_) => true,
        };
    }
}

/// Resolves once a stop began and the client's input has ended.
async fn drained(ctx: &Ctx, input_ended: &AtomicBool) {
    ctx.stop.stopping().await;
    while !input_ended.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The reason word and error of a relay's end (a reset was handled before).
pub(crate) fn end_of(result: Result<relay::End>) -> (CloseReason, Option<Error>) {
    match result {
        Ok(_) => (CloseReason::Eof, None),
        Err(e) if e.kind() == ErrorKind::Timeout && e.op() == "idle" => {
            (CloseReason::Idle, Some(e))
        }
        Err(e) => (CloseReason::Error, Some(e)),
    }
}

/// A client reader that notes when the client's input ended (a read of 0 bytes, or an
/// error).
struct EofWatch<'a, R> {
    inner: R,
    ended: &'a AtomicBool,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for EofWatch<'_, R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        let eof = matches!(r, std::task::Poll::Ready(Ok(()))) && buf.filled().len() == before;
        if (eof && buf.remaining() > 0) || matches!(r, std::task::Poll::Ready(Err(_))) {
            this.ended.store(true, Ordering::SeqCst);
        }
        r
    }
}
