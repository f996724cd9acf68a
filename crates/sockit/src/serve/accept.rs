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

/// The accept loop of the stream servers (forward, proxy): accepts until the stop says
/// stop (`Ok`) or `accept(2)` fails for good (`Err`), as [`StreamListener::next`] says
/// (`EMFILE` and its kin pause accepting with an [`Event::AcceptPaused`]); a client the
/// admission refuses gets a lingering close and an [`Event::Refused`]; an admitted one is
/// handed to `serve` as a new [`Session`].
///
/// A TCP connection from an `--accept-proxy-from` source goes through
/// [`Admission::admit_tcp`] (its header, then admission of the client it names) in a task
/// of its own, so a slow header never holds the loop; a stop that begins meanwhile
/// closes it. Every other connection is admitted in the loop.
pub async fn accept_each<F>(
    listener: &StreamListener,
    transport: Transport,
    stop: &Stop,
    admission: &Arc<Admission>,
    events: &EventSink,
    serve: F,
) -> Result<()>
where
    F: Fn(BoxStream, Session) + Clone + Send + 'static,
{
    while let Some(conn) = listener.next_one(&**events, stop).await? {
        match conn {
            Accepted::Tcp(stream, addr)
                if admission.proxy_sources().check(&Peer::Ip(addr)) == Check::Header =>
            {
                let (stop, admission, events) = (stop.clone(), admission.clone(), events.clone());
                let serve = serve.clone();
                tokio::spawn(async move {
                    let admitted = tokio::select! {
                        biased;
                        r = admission.admit_tcp(&stream, addr) => r,
                        _ = stop.stopping() => return,
                    };
                    match admitted {
                        Err(r) => {
                            events(Event::Refused {
                                transport,
                                peer: r.peer,
                                reason: r.reason,
                                error: r.error,
                            });
                            linger_close(stream).await;
                        }
                        Ok((permit, who)) => {
                            let session =
                                Session::new(permit, who.peer, transport).with_via(who.via);
                            serve(Box::new(stream), session);
                        }
                    }
                });
            }
            conn => {
                let (stream, peer) = conn.into_parts();
                match admission.admit_direct(&peer) {
                    Err(reason) => {
                        events(Event::Refused {
                            transport,
                            peer,
                            reason,
                            error: None,
                        });
                        tokio::spawn(linger_close(stream));
                    }
                    Ok(permit) => serve(stream, Session::new(permit, peer, transport)),
                }
            }
        }
    }
    Ok(())
}
