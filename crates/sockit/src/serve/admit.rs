//! Admission: who may open a session (`--allow`/`--deny`, and the PROXY protocol's
//! original client under `--accept-proxy-from`) and how many at once (`--max-conns`), in
//! one place. An admitted session holds a [`Permit`] that frees its
//! slot when dropped; a refusal is data ([`Refusal`]) the server reports as a `refused`
//! event. The count of permits out is also what a drain waits for ([`Admission::idle`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::peer::Peer;
use super::proxied::{self, Check, ProxySources};
use crate::access::AccessList;
use crate::error::Error;

/// The default limit of concurrent sessions (`--max-conns`).
pub const DEFAULT_MAX_CONNS: usize = 1024;
/// The largest `--max-conns`.
pub const MAX_CONNS: usize = 1 << 24;

/// Why a peer was turned away; serialised as the event's `reason` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The access list refused its address (`--allow`/`--deny`).
    Denied,
    /// `--max-conns` sessions were open.
    MaxConns,
    /// Sources are listed with `--accept-proxy-from` and this connection's is not one.
    UnlistedSource,
    /// A listed source sent no valid PROXY header in time (the event carries the error).
    ProxyHeader,
}

impl Refusal {
    /// The word: `denied`, `max_conns`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Denied => "denied",
            Refusal::MaxConns => "max_conns",
            Refusal::UnlistedSource => "unlisted_source",
            Refusal::ProxyHeader => "proxy_header",
        }
    }
}

/// The admission rules of one server and the count of sessions open.
#[derive(Debug)]
pub struct Admission {
    access: AccessList,
    proxy_from: ProxySources,
    max_conns: usize,
    open: AtomicUsize,
    next_id: AtomicU64,
    changed: tokio::sync::Notify,
}

impl Admission {
    /// Rules: the access list and the limit of open sessions (at least 1: a limit of 0 is
    /// refused by the command line before it gets here, and treated as 1).
    pub fn new(access: AccessList, max_conns: usize) -> Arc<Admission> {
        Admission::with_proxy_sources(access, max_conns, ProxySources::default())
    }

    /// As [`Admission::new`], with the sources that must open with a PROXY header
    /// (`--accept-proxy-from`; see [`proxied`]).
    pub fn with_proxy_sources(
        access: AccessList,
        max_conns: usize,
        proxy_from: ProxySources,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            access,
            proxy_from,
            max_conns: max_conns.max(1),
            open: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// The limit of open sessions.
    pub fn max_conns(&self) -> usize {
        self.max_conns
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Sessions admitted so far (the last id given).
    pub fn admitted(&self) -> u64 {
        self.next_id.load(Ordering::SeqCst)
    }

    /// May `peer` open a session? A Unix peer passes the access list (it has no IP
    /// address). On success the permit holds a slot and the session's id (from 1, in
    /// order of admission).
    ///
    /// # Errors
    /// The [`Refusal`]: `Denied` by the access list, `MaxConns` when the limit is reached.
    pub fn admit(self: &Arc<Self>, peer: &Peer) -> Result<Permit, Refusal> {
        if let Some(ip) = peer.ip()
            && !self.access.permits(ip)
        {
            return Err(Refusal::Denied);
        }
        if self.open.fetch_add(1, Ordering::SeqCst) >= self.max_conns {
            self.open.fetch_sub(1, Ordering::SeqCst);
            return Err(Refusal::MaxConns);
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Permit {
            admission: Arc::clone(self),
            id,
        })
    }

    /// [`Admission::admit`] for a connection that sends no PROXY header: refused as
    /// [`Refusal::UnlistedSource`] when sources are listed and `peer` is not one of them.
    /// (A listed source's connection goes through [`Admission::admit_tcp`].)
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn admit_direct(self: &Arc<Self>, peer: &Peer) -> Result<Permit, Refusal> {
        match self.proxy_from.check(peer) {
            Check::Refuse => Err(Refusal::UnlistedSource),
            Check::Plain => self.admit(peer),
            // Never a session without its header.
            Check::Header => Err(Refusal::ProxyHeader),
        }
    }

    /// The `--accept-proxy-from` sources.
    pub fn proxy_sources(&self) -> &ProxySources {
        &self.proxy_from
    }

    /// The accept path of a tokio TCP server: the PROXY check (reading the header of a
    /// listed source within [`HEADER_TIMEOUT`](proxied::HEADER_TIMEOUT)), then
    /// [`Admission::admit`] for the original client.
    ///
    /// Returns the permit and who the session is with.
    ///
    /// # Errors
    /// The refusal, with the peer to report it for (the connection's own) and, for a bad
    /// header, the error.
    pub async fn admit_tcp(
        self: &Arc<Self>,
        stream: &tokio::net::TcpStream,
        peer: std::net::SocketAddr,
    ) -> Result<(Permit, Admitted), Refused> {
        let conn = Peer::Ip(peer);
        let admitted = match self.proxy_from.check(&conn) {
            Check::Plain => Admitted {
                peer: conn,
                via: None,
                destination: None,
            },
            Check::Refuse => return Err(Refused::new(conn, Refusal::UnlistedSource, None)),
            Check::Header => match proxied::read_header(stream, proxied::HEADER_TIMEOUT).await {
                Ok(h) => Admitted {
                    peer: Peer::Ip(proxied::original_peer(&h, peer)),
                    via: Some(conn),
                    destination: h.destination(),
                },
                Err(e) => return Err(Refused::new(conn, Refusal::ProxyHeader, Some(e))),
            },
        };
        match self.admit(&admitted.peer) {
            Ok(permit) => Ok((permit, admitted)),
            Err(reason) => Err(Refused::new(admitted.peer, reason, None)),
        }
    }

    /// Resolves once no session is open.
    pub async fn idle(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Who an admitted session is with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The peer: the connection's, or the original client a PROXY header named.
    pub peer: Peer,
    /// The listed source the PROXY header came from, if one did.
    pub via: Option<Peer>,
    /// The address the original client connected to, as its PROXY header gave it
    /// (`None` without a header, or for a `LOCAL`/`UNKNOWN` one).
    pub destination: Option<std::net::SocketAddr>,
}

/// A connection turned away, as [`Admission::admit_tcp`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The peer to report (the original client when its header was read).
    pub peer: Peer,
    /// Why.
    pub reason: Refusal,
    /// The header's error, for [`Refusal::ProxyHeader`].
    pub error: Option<Error>,
}

impl Refused {
    fn new(peer: Peer, reason: Refusal, error: Option<Error>) -> Refused {
        Refused {
            peer,
            reason,
            error,
        }
    }
}

/// One admitted session's slot: freed when dropped.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    id: u64,
}

impl Permit {
    /// The session's id (from 1, per server).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.open.fetch_sub(1, Ordering::SeqCst);
        self.admission.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_free_their_slot() {
        let acl = AccessList::parse(&["127.0.0.0/8"], &[]).unwrap();
        let a = Admission::new(acl, 1);
        let p: Peer = "127.0.0.1:1"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into();
        let far: Peer = "192.0.2.1:1"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into();
        assert_eq!(a.admit(&far).unwrap_err(), Refusal::Denied);
        let first = a.admit(&p).unwrap();
        assert_eq!(first.id(), 1);
        assert_eq!(a.admit(&p).unwrap_err(), Refusal::MaxConns);
        drop(first);
        assert_eq!(a.admit(&p).unwrap().id(), 2);
        assert_eq!(a.open(), 0);
    }
}
