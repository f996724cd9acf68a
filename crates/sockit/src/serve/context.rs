//! What every session of one server shares ([`Core`]): where its events go, its stop, its
//! admission, and the one place a session's end is reported and counted
//! ([`Core::closed`]). `forward`, `listen` (one peer, `-k`, `--broker`, `--exec`) and
//! `proxy` each hold one in their context, next to what is their own (options, target).
//!
//! The echo server is not on it: its event loops count into their own atomics, off the
//! tokio runtime, and report with the same [`Closed`] event.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::accept::{Acceptor, StreamListener, accept_each};
use super::admit::Admission;
use super::event::{CloseReason, Closed, Event, ProxiedFrom, Side};
use super::peer::{Peer, Transport};
use super::session::Session;
use super::stop::{Phase, Stop, wind_down};
use super::{BoxStream, EventSink};
use crate::error::{Error, Result};
use crate::relay::Totals;

/// Where a server relays its sessions, which decides how a relay's [`Totals`] read in a
/// `closed` event (whose `bytes_sent` are the bytes sent to the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelayTo {
    /// The local side (listen's stdin/stdout, a program): the relay's socket is the
    /// peer's, so its totals are the peer's view already, and a reset can only be the
    /// peer's.
    Local,
    /// A target (forward, proxy): the totals are counted at the client side of the relay
    /// (`bytes_sent`: client to target), so they are turned around.
    Target,
}

/// How one session ended: what its `closed` event says besides the session itself.
#[derive(Debug)]
pub(crate) struct Ending {
    totals: Totals,
    datagrams: Option<Totals>,
    reason: CloseReason,
    reset_by: Option<Side>,
    error: Option<Error>,
    zero_copy: Option<crate::relay::ZeroCopy>,
}

impl Ending {
    /// An end for `reason`, nothing moved.
    pub(crate) fn new(reason: CloseReason) -> Ending {
        Ending {
            totals: Totals::default(),
            datagrams: None,
            reason,
            reset_by: None,
            error: None,
            zero_copy: None,
        }
    }

    /// The relay's totals (read as the server's [`RelayTo`] says).
    pub(crate) fn totals(mut self, totals: Totals) -> Ending {
        self.totals = totals;
        self
    }

    /// Datagram counts of a stream session that relays datagrams (SOCKS5 UDP
    /// ASSOCIATE), seen from the peer (`bytes_sent`: to the peer); they stand for the
    /// relay's totals.
    pub(crate) fn datagrams(mut self, peer_view: Totals) -> Ending {
        self.datagrams = Some(peer_view);
        self
    }

    /// The error behind the end.
    pub(crate) fn error(mut self, error: Option<Error>) -> Ending {
        self.error = error;
        self
    }

    /// Which side reset (relays to a target say it; see [`RelayTo::Local`]).
    pub(crate) fn reset_by(mut self, side: Option<Side>) -> Ending {
        self.reset_by = side;
        self
    }

    /// How the stream relay moved its bytes, per direction, oriented as the relay counts
    /// them (turned into the peer's view as the totals are, [`RelayTo`]).
    pub(crate) fn zero_copy(mut self, zero_copy: Option<crate::relay::ZeroCopy>) -> Ending {
        self.zero_copy = zero_copy;
        self
    }
}

/// What every session of one server shares (see the module docs).
pub(crate) struct Core {
    pub(crate) events: EventSink,
    pub(crate) stop: Stop,
    pub(crate) admission: Arc<Admission>,
    relay_to: RelayTo,
    /// Sessions the stop cut (reported by `stopped`).
    cut: AtomicU64,
}

impl Core {
    /// The core of a server that admits through `admission` and relays to `relay_to`.
    pub(crate) fn new(
        events: EventSink,
        stop: Stop,
        admission: Arc<Admission>,
        relay_to: RelayTo,
    ) -> Core {
        Core {
            events,
            stop,
            admission,
            relay_to,
            cut: AtomicU64::new(0),
        }
    }

    /// Gives `ev` to the server's sink.
    pub(crate) fn emit(&self, ev: Event) {
        (self.events)(ev);
    }

    /// The accept path of a stream server ([`Acceptor`]: admission, the PROXY header of a
    /// listed source, refusals reported).
    pub(crate) fn acceptor<'a>(&self, listener: &'a StreamListener) -> Acceptor<'a> {
        Acceptor::new(listener, self.admission.clone(), self.events.clone())
    }

    /// Accepts until a stop, an accept error that would repeat, or the end of accepting,
    /// giving each admitted stream and its session to `serve` ([`accept_each`]).
    ///
    /// # Errors
    /// As [`accept_each`].
    pub(crate) async fn accept_each(
        &self,
        listener: &StreamListener,
        serve: impl FnMut(BoxStream, Session),
    ) -> Result<()> {
        accept_each(listener, &self.stop, &self.admission, &self.events, serve).await
    }

    /// Admits a datagram `peer` over `transport` (an [`Event::Refused`] when not),
    /// opening and reporting its session.
    pub(crate) fn admit(&self, peer: Peer, transport: Transport) -> Option<Session> {
        match self.admission.admit(&peer) {
            Ok(permit) => {
                let s = Session::new(permit, peer, transport);
                self.accepted(&s);
                Some(s)
            }
            Err(reason) => {
                self.emit(Event::Refused {
                    transport,
                    peer,
                    reason,
                    error: None,
                });
                None
            }
        }
    }

    /// Reports a session opened ([`Event::Accepted`]; `via` the PROXY header's source).
    pub(crate) fn accepted(&self, s: &Session) {
        self.emit(Event::Accepted {
            id: s.id(),
            transport: s.transport(),
            peer: s.peer().clone(),
            via: s.via().cloned().map(ProxiedFrom),
        });
    }

    /// Reports the end of `session`: the one place a session's end becomes a `closed`
    /// event (in the peer's view, [`RelayTo`]) and a session cut by the stop
    /// (`aborted`) is counted for `stopped`.
    pub(crate) fn closed(&self, session: &Session, end: Ending) {
        let Ending {
            totals,
            datagrams,
            reason,
            reset_by,
            error,
            zero_copy,
        } = end;
        if reason == CloseReason::Aborted {
            self.cut.fetch_add(1, Ordering::SeqCst);
        }
        let (peer_view, reset_by, zero_copy) = match self.relay_to {
            RelayTo::Local => (
                totals,
                reset_by.or((reason == CloseReason::Reset).then_some(Side::Peer)),
                zero_copy,
            ),
            RelayTo::Target => (
                Totals {
                    bytes_sent: totals.bytes_received,
                    bytes_received: totals.bytes_sent,
                    datagrams_sent: totals.datagrams_received,
                    datagrams_received: totals.datagrams_sent,
                },
                reset_by,
                // seen from the client, as the byte counts
                zero_copy.map(crate::relay::ZeroCopy::turned),
            ),
        };
        let (counts, datagram) = match datagrams {
            Some(d) => (d, true),
            None => (peer_view, session.transport().is_datagram()),
        };
        self.emit(Event::Closed(Closed {
            id: session.id(),
            transport: session.transport(),
            peer: session.peer().clone(),
            bytes_sent: counts.bytes_sent,
            bytes_received: counts.bytes_received,
            datagrams_sent: datagram.then_some(counts.datagrams_sent),
            datagrams_received: datagram.then_some(counts.datagrams_received),
            duration_us: Closed::micros(session.started().elapsed()),
            reason,
            reset_by,
            error,
            zero_copy,
        }));
    }

    /// Once accepting ended: reports a stop ([`wind_down`]: [`Event::Stopping`], the wait
    /// for the sessions, [`Event::Stopped`] with the number cut).
    pub(crate) async fn wind_down(&self) {
        let emit = |ev| self.emit(ev);
        wind_down(&self.admission, &self.stop, &emit, &self.cut).await;
    }

    /// Once accepting ended by itself or by a stop: a stop is wound down as
    /// [`Core::wind_down`] says; otherwise the sessions still open are waited for, until
    /// they end or (once a stop aborts them) for their lingering closes.
    pub(crate) async fn finish(&self) {
        if self.stop.phase() != Phase::Running {
            return self.wind_down().await;
        }
        tokio::select! {
            _ = self.admission.idle() => {}
            _ = async {
                self.stop.aborted().await;
                tokio::time::sleep(super::close::LINGER_TIME + Duration::from_secs(1)).await;
            } => {}
        }
    }
}
