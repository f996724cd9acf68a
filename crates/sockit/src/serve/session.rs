//! One session of a server: its id and peer (from admission), its `#N peer` label, its
//! tap of the shared `-x`/`-o` traffic log, and the bounded table datagram servers keep
//! of their peers ([`PeerTable`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Instant;

use super::admit::Permit;
use super::peer::{Peer, Transport};
use crate::dump::{SessionTap, SharedLog};

/// An admitted session: its permit (slot and id), peer and transport, and when it began.
#[derive(Debug)]
pub struct Session {
    permit: Permit,
    peer: Peer,
    via: Option<Peer>,
    destination: Option<std::net::SocketAddr>,
    transport: Transport,
    started: Instant,
}

impl Session {
    /// A session for the admitted `peer`, beginning now.
    pub fn new(permit: Permit, peer: Peer, transport: Transport) -> Session {
        Session {
            permit,
            peer,
            via: None,
            destination: None,
            transport,
            started: Instant::now(),
        }
    }

    /// The same session, its peer named by a PROXY protocol header that `via` sent
    /// (`--accept-proxy-from`).
    pub fn with_via(mut self, via: Option<Peer>) -> Session {
        self.via = via;
        self
    }

    /// The same session, with the address its PROXY header says the client connected to.
    pub fn with_destination(mut self, destination: Option<std::net::SocketAddr>) -> Session {
        self.destination = destination;
        self
    }

    /// The address the client connected to as its PROXY header said (HAProxy passes it
    /// on as the destination of the header it sends in turn), if one did.
    pub fn destination(&self) -> Option<std::net::SocketAddr> {
        self.destination
    }

    /// The source of the PROXY header that named the peer, if one did.
    pub fn via(&self) -> Option<&Peer> {
        self.via.as_ref()
    }

    /// Its id, from 1 per server.
    pub fn id(&self) -> u64 {
        self.permit.id()
    }

    /// The peer.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// When it began.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Its label in traffic logs: `#N 127.0.0.1:37940`, `#N [::1]:40000`, `#N unix PATH`.
    pub fn label(&self) -> String {
        match &self.peer {
            Peer::Ip(a) => format!("#{} {a}", self.id()),
            other => format!("#{} {other}", self.id()),
        }
    }

    /// Its tap of the shared traffic log, labelled as [`Session::label`] says (`None`
    /// without a log).
    pub fn tap(&self, log: Option<&Arc<SharedLog>>) -> Option<SessionTap> {
        log.map(|l| l.tap(Some(self.label())))
    }
}

/// The sessions of a datagram server by peer, with a bound on how many it holds (a
/// datagram from a new peer past it is not given a session).
#[derive(Debug)]
pub struct PeerTable<K, V> {
    map: HashMap<K, V>,
    capacity: usize,
}

impl<K: Eq + Hash, V> PeerTable<K, V> {
    /// An empty table holding at most `capacity` peers (at least 1).
    pub fn new(capacity: usize) -> Self {
        PeerTable {
            map: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The entry of `peer`.
    pub fn get(&self, peer: &K) -> Option<&V> {
        self.map.get(peer)
    }

    /// Adds or replaces the entry of `peer`.
    ///
    /// # Errors
    /// Gives `value` back when the table is full and `peer` is new.
    pub fn insert(&mut self, peer: K, value: V) -> Result<(), V> {
        if self.map.len() >= self.capacity && !self.map.contains_key(&peer) {
            return Err(value);
        }
        self.map.insert(peer, value);
        Ok(())
    }

    /// Removes the entry of `peer` when `pred` holds for it (a session removes itself,
    /// not a newer session of the same peer).
    pub fn remove_if(&mut self, peer: &K, pred: impl FnOnce(&V) -> bool) -> Option<V> {
        if self.map.get(peer).is_some_and(pred) {
            return self.map.remove(peer);
        }
        None
    }

    /// Peers held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no peer is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A datagram server's sessions: per peer, the session id and the channel that feeds it.
pub type SessionChannels<K> =
    std::sync::Mutex<PeerTable<K, (u64, tokio::sync::mpsc::Sender<Vec<u8>>)>>;

/// Hands a datagram to `peer`'s session in a table of session channels, as every
/// datagram server does (forward -u, listen -u --exec): `None` when the session took it,
/// or when it is behind and the datagram is dropped (as a full socket buffer would);
/// `Some(data)` back when `peer` has no session, or its session just ended — the caller
/// starts one with it.
pub fn offer_datagram<K: Eq + Hash>(
    table: &SessionChannels<K>,
    peer: &K,
    data: Vec<u8>,
) -> Option<Vec<u8>> {
    use tokio::sync::mpsc::error::TrySendError;
    let existing = table
        .lock()
        .ok()
        .and_then(|t| t.get(peer).map(|(_, tx)| tx.clone()));
    let Some(tx) = existing else {
        return Some(data);
    };
    match tx.try_send(data) {
        Ok(()) | Err(TrySendError::Full(_)) => None,
        Err(TrySendError::Closed(d)) => Some(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_goes_to_its_session_or_back_for_a_new_one() {
        let table = std::sync::Mutex::new(PeerTable::new(4));
        assert_eq!(
            offer_datagram(&table, &1, b"a".to_vec()),
            Some(b"a".to_vec())
        );
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        table.lock().unwrap().insert(1, (7, tx)).unwrap();
        assert_eq!(offer_datagram(&table, &1, b"b".to_vec()), None);
        // behind: dropped, not given back
        assert_eq!(offer_datagram(&table, &1, b"c".to_vec()), None);
        drop(rx);
        assert_eq!(
            offer_datagram(&table, &1, b"d".to_vec()),
            Some(b"d".to_vec())
        );
    }

    #[test]
    fn table_is_bounded() {
        let mut t = PeerTable::new(1);
        t.insert(1, "a").unwrap();
        assert_eq!(t.insert(2, "b"), Err("b"));
        t.insert(1, "c").unwrap();
        assert!(t.remove_if(&1, |v| *v == "a").is_none());
        assert_eq!(t.remove_if(&1, |v| *v == "c"), Some("c"));
        assert!(t.is_empty());
    }
}
