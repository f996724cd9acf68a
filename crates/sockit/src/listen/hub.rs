//! `-k` and `--broker` over streams: every client served at once, the local input to all
//! of them, what they send to the local output (and, brokering, to each other).
//!
//! The local input is read only while a client is connected (as ncat -k): what arrives
//! before waits in its pipe (backpressure, never dropped) and goes to the first
//! client(s); a chunk read just as the last client left waits for the next one. A client
//! gets only what is read while it is connected (ncat's broadcast).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc, watch};

use super::{Ctx, Local, Mode};
use crate::error::{Error, Result};
use crate::relay::{self, Counters, Direction, Tap};
use crate::serve::close::{close_as, relay_end};
use crate::serve::{BoxStream, CloseReason, Ending, Event, Session, StreamListener};

/// A chunk for one client's writer or for the local output.
type Chunk = Arc<[u8]>;

/// How many chunks wait for one client's writer (or the local output) at most.
const QUEUE: usize = 64;

struct Hub {
    clients: Mutex<HashMap<u64, mpsc::Sender<Chunk>>>,
    /// How many clients are connected (the input reader waits for one).
    count: watch::Sender<usize>,
    /// Set once the hub is done: the local output is gone, or (`send_only`) the local
    /// input ended. Every client is then closed and accepting ends.
    done: watch::Sender<bool>,
}

impl Hub {
    /// Sends `chunk` to every client except `except`; how many took it.
    async fn broadcast(&self, chunk: &Chunk, except: Option<u64>) -> usize {
        let targets: Vec<mpsc::Sender<Chunk>> = {
            let map = self.clients.lock().await;
            map.iter()
                .filter(|(id, _)| Some(**id) != except)
                .map(|(_, tx)| tx.clone())
                .collect()
        };
        let mut took = 0;
        for tx in targets {
            if tx.send(chunk.clone()).await.is_ok() {
                took += 1;
            }
        }
        took
    }

    async fn add(&self, id: u64, tx: mpsc::Sender<Chunk>) {
        let mut map = self.clients.lock().await;
        if *self.done.borrow() {
            return;
        }
        map.insert(id, tx);
        self.count.send_replace(map.len());
    }

    async fn remove(&self, id: u64) {
        let mut map = self.clients.lock().await;
        map.remove(&id);
        self.count.send_replace(map.len());
    }

    /// Ends the hub: every client's writer ends (its session closes), accepting ends.
    async fn end(&self) {
        let mut map = self.clients.lock().await;
        self.done.send_replace(true);
        map.clear();
        self.count.send_replace(0);
    }
}

/// Serves clients until a stop, the end of the local output, or (`send_only`) the end
/// of the local input.
pub(crate) async fn serve(listener: StreamListener, ctx: &Arc<Ctx>, local: Local) -> Result<()> {
    let hub = Arc::new(Hub {
        clients: Mutex::new(HashMap::new()),
        count: watch::Sender::new(0),
        done: watch::Sender::new(false),
    });
    let Local { input, output, .. } = local;
    let (out_tx, out_rx) = mpsc::channel::<Chunk>(QUEUE);
    let writer = tokio::spawn(write_output(output, out_rx, hub.clone()));
    let reader = tokio::spawn(input_to_clients(hub.clone(), input, ctx.clone()));
    let mut done = hub.done.subscribe();
    let mut acceptor = ctx.acceptor(&listener);
    let result = loop {
        let next = tokio::select! {
            biased;
            _ = done.wait_for(|d| *d) => break Ok(()),
            n = acceptor.next(&ctx.stop) => n,
        };
        let (stream, session) = match next {
            Ok(Some(x)) => x,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        ctx.accepted(&session);
        let stream = match ctx.wrap(stream) {
            Ok(s) => s,
            Err(e) => {
                ctx.closed(&session, Ending::new(CloseReason::Error).error(Some(e)));
                continue;
            }
        };
        let (tx, rx) = mpsc::channel::<Chunk>(QUEUE);
        hub.add(session.id(), tx).await;
        tokio::spawn(client(
            stream,
            session,
            rx,
            ctx.clone(),
            hub.clone(),
            out_tx.clone(),
        ));
    };
    drop(acceptor);
    drop(listener);
    if result.is_err() {
        ctx.stop.abort();
    }
    ctx.finish().await;
    reader.abort();
    // The output's writer ends once every client's sender is gone: what they sent is
    // written before the listener returns.
    drop(out_tx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
    result
}

/// One writer for the local output, so chunks from several clients never interleave. A
/// failed write (a closed stdout) ends the hub.
async fn write_output(
    mut output: Box<dyn AsyncWrite + Unpin + Send>,
    mut rx: mpsc::Receiver<Chunk>,
    hub: Arc<Hub>,
) {
    while let Some(chunk) = rx.recv().await {
        if output.write_all(&chunk).await.is_err() || output.flush().await.is_err() {
            hub.end().await;
            return;
        }
    }
}

/// The local input to every client, read only while one is connected.
async fn input_to_clients(
    hub: Arc<Hub>,
    mut input: Box<dyn AsyncRead + Unpin + Send>,
    ctx: Arc<Ctx>,
) {
    let mut count = hub.count.subscribe();
    let mut buf = vec![0u8; relay::STREAM_CHUNK];
    loop {
        if count.wait_for(|n| *n > 0).await.is_err() {
            return;
        }
        let n = match input.read(&mut buf).await {
            Ok(0) => {
                if ctx.opts.send_only {
                    // Nothing more can be exchanged: every client is closed, as ncat quits.
                    hub.end().await;
                }
                return;
            }
            Ok(n) => n,
            Err(e) => {
                // The listener goes on serving what clients send; say why stdin stopped.
                let err = Error::from_io("stdin: read", e);
                ctx.emit(Event::Warning {
                    message: format!("{err}; nothing more is sent to the clients"),
                });
                return;
            }
        };
        let chunk: Chunk = Arc::from(&buf[..n]);
        // Each pass either delivers or waits for the next client: bounded by arrivals.
        while hub.broadcast(&chunk, None).await == 0 {
            if *hub.done.borrow() || count.wait_for(|n| *n > 0).await.is_err() {
                return;
            }
            // The clients counted may have left already: let them be removed first.
            tokio::task::yield_now().await;
        }
    }
}

/// How a client's session ended.
enum End {
    /// The client ended its stream, or the local output is gone.
    Peer,
    /// The hub ended this client (its writer's queue closed).
    Local,
    Failed(Error),
    Idle,
    Aborted,
}

async fn client(
    mut stream: BoxStream,
    session: Session,
    mut rx: mpsc::Receiver<Chunk>,
    ctx: Arc<Ctx>,
    hub: Arc<Hub>,
    out: mpsc::Sender<Chunk>,
) {
    let id = session.id();
    let counters = Counters::new();
    // Bytes still reaching a slow reader are traffic (relay::idle).
    counters.watch_send_queues(&[std::os::fd::AsFd::as_fd(&*stream)]);
    let tap = session.tap(ctx.opts.log.as_ref());
    let tap = tap.as_ref().map(|t| t as &dyn Tap);
    let opts = &ctx.opts;
    let relay_to_others = opts.mode == Mode::Broker && !opts.send_only && !opts.recv_only;
    let end = {
        let (mut r, mut w) = tokio::io::split(&mut stream);
        let reader = async {
            let mut buf = vec![0u8; relay::STREAM_CHUNK];
            loop {
                let n = r
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::from_io("recv", e))?;
                if n == 0 {
                    return Ok::<(), Error>(());
                }
                counters.touch();
                counters.add(Direction::Recv, n, false);
                if let Some(t) = tap {
                    t.data(Direction::Recv, &buf[..n]);
                }
                let chunk: Chunk = Arc::from(&buf[..n]);
                if relay_to_others {
                    hub.broadcast(&chunk, Some(id)).await;
                }
                if !opts.send_only && out.send(chunk).await.is_err() {
                    return Ok(());
                }
            }
        };
        let writer = async {
            while let Some(chunk) = rx.recv().await {
                if let Some(t) = tap {
                    t.data(Direction::Send, &chunk);
                }
                w.write_all(&chunk)
                    .await
                    .map_err(|e| Error::from_io("send", e))?;
                w.flush().await.map_err(|e| Error::from_io("send", e))?;
                counters.touch();
                counters.add(Direction::Send, chunk.len(), false);
            }
            Ok::<(), Error>(())
        };
        tokio::pin!(reader, writer);
        tokio::select! {
            r = &mut reader => match r {
                Ok(()) => End::Peer,
                Err(e) => End::Failed(e),
            },
            r = &mut writer => match r {
                Ok(()) => End::Local,
                // The client is gone (reset): what it sent before going is still queued,
                // and so is why. Let the reader finish (bounded, as the relays do) so no
                // byte is lost and its error is the one reported.
                Err(e) if relay::peer_gone(&e) => {
                    match tokio::time::timeout(relay::PEER_GONE_GRACE, &mut reader).await {
                        Ok(Err(cause)) => End::Failed(cause),
                        _ => End::Failed(e),
                    }
                }
                Err(e) => End::Failed(e),
            },
            _ = counters.idle_expired(opts.idle_timeout) => End::Idle,
            _ = ctx.stop.aborted() => End::Aborted,
        }
    };
    hub.remove(id).await;
    let (reason, error) = match end {
        End::Peer | End::Local => (CloseReason::Eof, None),
        End::Idle => (CloseReason::Idle, Some(Error::timeout("idle"))),
        End::Aborted => (CloseReason::Aborted, None),
        End::Failed(e) => relay_end(&Err(e)),
    };
    let closing = relay::idle::close_reason(reason, &stream);
    close_as(stream, closing, error.as_ref()).await;
    ctx.closed(
        &session,
        Ending::new(reason).totals(counters.totals()).error(error),
    );
}
