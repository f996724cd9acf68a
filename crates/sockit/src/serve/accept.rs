//! Accepting connections on a stream listener (TCP or Unix) the one way every tokio
//! server of the core does: until [`Stop::stopping`], pausing on a shortage of resources
//! and skipping the errors that lose only one connection.
//!
//! Contract of [`StreamListener::next`]:
//! - `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`: accepting pauses for [`ACCEPT_PAUSE`] (an
//!   [`Event::AcceptPaused`] says so), then goes on: never a busy loop, never an end.
//! - `ECONNABORTED`, `EPERM` (a firewall), `EPROTO`, `EINTR`: that connection is lost;
//!   the next one is awaited.
//! - Any other error ends accepting (`Err`); [`Stop::stopping`] ends it cleanly (`None`).
//!
//! [`accept_each`] adds admission, the PROXY protocol's included: a connection from an
//! `--accept-proxy-from` source reads its header ([`Admission::admit_tcp`]) in a task of
//! its own, so a slow header never holds the loop; every other connection is admitted
//! in the loop, as before.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::admit::Admission;
use super::bind::{Listener, SocketFile};
use super::close::linger_close;
use super::event::Event;
use super::peer::{Peer, Transport};
use super::proxied::Check;
use super::session::Session;
use super::stop::Stop;
use super::{BoxStream, EventSink};
use crate::error::{Error, Result};

/// How long accepting pauses after `EMFILE`/`ENFILE` and other resource shortages.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// A listening stream socket registered with tokio: TCP or Unix.
#[derive(Debug)]
pub enum StreamListener {
    /// TCP.
    Tcp(TcpListener),
    /// A Unix stream socket.
    Unix(UnixListener),
}

/// A connection as `accept(2)` gave it, TCP kept as it is (its PROXY header is read on
/// the socket itself, [`Admission::admit_tcp`]).
#[derive(Debug)]
pub enum Accepted {
    /// TCP, with the peer's address.
    Tcp(TcpStream, SocketAddr),
    /// A Unix stream, with its peer.
    Unix(UnixStream, Peer),
}

impl Accepted {
    /// The connection's own peer.
    pub fn peer(&self) -> Peer {
        match self {
            Accepted::Tcp(_, a) => Peer::Ip(*a),
            Accepted::Unix(_, p) => p.clone(),
        }
    }

    /// The stream, boxed, and its peer.
    pub fn into_parts(self) -> (BoxStream, Peer) {
        match self {
            Accepted::Tcp(s, a) => (Box::new(s), Peer::Ip(a)),
            Accepted::Unix(s, p) => (Box::new(s), p),
        }
    }
}

/// True for `accept(2)` errors that mean "out of a resource": pause, then retry.
pub fn is_resource_shortage(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

impl StreamListener {
    /// Registers a bound stream [`Listener`] with the current tokio runtime; the guard of
    /// its socket file comes back beside it (keep it while the server runs).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a datagram
    /// listener; [`ErrorKind::Os`](crate::ErrorKind::Os) when the reactor refuses it.
    pub fn register(listener: Listener) -> Result<(StreamListener, Option<SocketFile>)> {
        let transport = listener.transport();
        let (socket, file) = listener.into_parts();
        let io = |e| Error::from_io("listen", e);
        let l = match transport {
            Transport::Tcp => {
                StreamListener::Tcp(TcpListener::from_std(socket.into()).map_err(io)?)
            }
            Transport::Unix => {
                StreamListener::Unix(UnixListener::from_std(socket.into()).map_err(io)?)
            }
            _ => return Err(Error::invalid_input("listen", "not a stream listener")),
        };
        Ok((l, file))
    }

    /// The transport: `tcp` or `unix`.
    pub fn transport(&self) -> Transport {
        match self {
            StreamListener::Tcp(_) => Transport::Tcp,
            StreamListener::Unix(_) => Transport::Unix,
        }
    }

    /// One `accept(2)`: the connection and its peer.
    ///
    /// # Errors
    /// The `accept(2)` error as it came.
    pub async fn accept(&self) -> std::io::Result<(BoxStream, Peer)> {
        self.accept_one().await.map(Accepted::into_parts)
    }

    /// One `accept(2)`, the TCP stream kept as it is.
    ///
    /// # Errors
    /// The `accept(2)` error as it came.
    pub async fn accept_one(&self) -> std::io::Result<Accepted> {
        match self {
            StreamListener::Tcp(l) => {
                let (s, a) = l.accept().await?;
                Ok(Accepted::Tcp(s, a))
            }
            StreamListener::Unix(l) => {
                let (s, a) = l.accept().await?;
                Ok(Accepted::Unix(s, Peer::from_tokio_unix(&a)))
            }
        }
    }

    /// The next connection, as the module docs say: `None` once `stop` says stop
    /// accepting.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) named `accept` for an error that would
    /// repeat.
    pub async fn next(
        &self,
        events: &(dyn Fn(Event) + Sync),
        stop: &Stop,
    ) -> Result<Option<(BoxStream, Peer)>> {
        Ok(self.next_one(events, stop).await?.map(Accepted::into_parts))
    }

    /// As [`StreamListener::next`], the TCP stream kept as it is ([`Accepted`]).
    ///
    /// # Errors
    /// As [`StreamListener::next`].
    pub async fn next_one(
        &self,
        events: &(dyn Fn(Event) + Sync),
        stop: &Stop,
    ) -> Result<Option<Accepted>> {
        loop {
            let accepted = tokio::select! {
                biased;
                _ = stop.stopping() => return Ok(None),
                r = self.accept_one() => r,
            };
            match accepted {
                Ok(x) => return Ok(Some(x)),
                Err(e) if is_resource_shortage(&e) => {
                    events(Event::AcceptPaused {
                        transport: self.transport(),
                        error: Error::from_io("accept", e),
                        pause_ms: ACCEPT_PAUSE.as_millis() as u64,
                    });
                    tokio::select! {
                        _ = stop.stopping() => return Ok(None),
                        _ = tokio::time::sleep(ACCEPT_PAUSE) => {}
                    }
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM)
                    ) => {}
                Err(e) => return Err(Error::from_io("accept", e)),
            }
        }
    }
}

/// Accepting and admitting on a stream listener: the one accept path of the tokio stream
/// servers (forward, proxy, listen; [`accept_each`] is its loop). [`Acceptor::next`]
/// gives the next admitted connection with its [`Session`]:
/// - connections come as [`StreamListener::next_one`] says (`EMFILE` pauses, a stop ends);
/// - a TCP connection from an `--accept-proxy-from` source reads its PROXY header
///   ([`Admission::admit_tcp`], bounded by [`HEADER_TIMEOUT`](super::proxied::HEADER_TIMEOUT))
///   in a task of its own, so a slow header never holds the others; the session's peer is
///   the client the header names, `via` the source;
/// - every other connection is admitted at once ([`Admission::admit_direct`]);
/// - a refused one gets an [`Event::Refused`] and a lingering close.
///
/// Dropping the acceptor closes the connections whose header is still awaited.
pub struct Acceptor<'a> {
    listener: &'a StreamListener,
    admission: Arc<Admission>,
    events: EventSink,
    headers: tokio::task::JoinSet<Option<(BoxStream, Session)>>,
}

impl std::fmt::Debug for Acceptor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("listener", self.listener)
            .field("headers_awaited", &self.headers.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Acceptor<'a> {
    /// Accepts on `listener` for `admission`, reporting to `events`.
    pub fn new(
        listener: &'a StreamListener,
        admission: Arc<Admission>,
        events: EventSink,
    ) -> Acceptor<'a> {
        Acceptor {
            listener,
            admission,
            events,
            headers: tokio::task::JoinSet::new(),
        }
    }

    /// The next admitted connection and its session (type docs); `None` once `stop`
    /// says stop accepting.
    ///
    /// # Errors
    /// As [`StreamListener::next`]: an `accept(2)` error that would repeat.
    pub async fn next(&mut self, stop: &Stop) -> Result<Option<(BoxStream, Session)>> {
        let transport = self.listener.transport();
        loop {
            let conn = tokio::select! {
                biased;
                Some(done) = self.headers.join_next(), if !self.headers.is_empty() => {
                    if let Ok(Some(admitted)) = done {
                        return Ok(Some(admitted));
                    }
                    continue;
                }
                c = self.listener.next_one(&*self.events, stop) => c?,
            };
            let Some(conn) = conn else {
                return Ok(None);
            };
            match conn {
                Accepted::Tcp(stream, addr)
                    if self.admission.proxy_sources().check(&Peer::Ip(addr)) == Check::Header =>
                {
                    let (admission, events) = (self.admission.clone(), self.events.clone());
                    self.headers.spawn(async move {
                        match admission.admit_tcp(&stream, addr).await {
                            Err(r) => {
                                events(Event::Refused {
                                    transport,
                                    peer: r.peer,
                                    reason: r.reason,
                                    error: r.error,
                                });
                                tokio::spawn(linger_close(stream));
                                None
                            }
                            Ok((permit, who)) => {
                                let session = Session::new(permit, who.peer, transport)
                                    .with_via(who.via)
                                    .with_destination(who.destination);
                                Some((Box::new(stream) as BoxStream, session))
                            }
                        }
                    });
                }
                conn => {
                    let (stream, peer) = conn.into_parts();
                    match self.admission.admit_direct(&peer) {
                        Err(reason) => {
                            (self.events)(Event::Refused {
                                transport,
                                peer,
                                reason,
                                error: None,
                            });
                            tokio::spawn(linger_close(stream));
                        }
                        Ok(permit) => {
                            return Ok(Some((stream, Session::new(permit, peer, transport))));
                        }
                    }
                }
            }
        }
    }
}

/// The accept loop of the stream servers (forward, proxy): an [`Acceptor`] until the stop
/// says stop (`Ok`) or `accept(2)` fails for good (`Err`); each admitted connection is
/// handed to `serve` with its new [`Session`].
pub async fn accept_each(
    listener: &StreamListener,
    stop: &Stop,
    admission: &Arc<Admission>,
    events: &EventSink,
    mut serve: impl FnMut(BoxStream, Session),
) -> Result<()> {
    let mut acceptor = Acceptor::new(listener, admission.clone(), events.clone());
    while let Some((stream, session)) = acceptor.next(stop).await? {
        serve(stream, session);
    }
    Ok(())
}
