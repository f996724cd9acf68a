//! The UDP scan: one connected socket per probe, an empty datagram, and a wait for an
//! answer or the ICMP error, at most `parallel` probes in flight on one tokio thread.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::tcp::{Plan, is_fd_shortage};
use super::{PortResult, PortState, bind_source, is_local_error, self_connected};
use crate::error::{Error, ErrorKind, Result};

/// The source ports that the probes of one scan hold, and when each was last let go: an
/// answer from one of them is another probe of the same scan, never a service.
///
/// Two probes can cross: one bound to port X probing Y while another, bound to Y, probes X.
/// Their datagrams then reach each other and both would report open. The kernel hands a
/// probe a source port only where nothing is bound, so a port that a probe of ours holds
/// is closed.
#[derive(Debug, Default)]
pub(crate) struct OwnPorts {
    /// Port -> (probes holding it now, when the last one let it go).
    ports: std::sync::Mutex<HashMap<u16, (usize, Option<Instant>)>>,
}

impl OwnPorts {
    /// Notes that a probe holds `port` until the returned guard is dropped.
    fn hold(self: &Arc<Self>, port: u16) -> OwnPort {
        if let Ok(mut map) = self.ports.lock() {
            map.entry(port).or_default().0 += 1;
        }
        OwnPort {
            ports: Arc::clone(self),
            port,
        }
    }

    /// True when a probe of ours held `port` at some time since `since`.
    fn held_since(&self, port: u16, since: Instant) -> bool {
        self.ports.lock().is_ok_and(|map| {
            map.get(&port)
                .is_some_and(|&(n, last)| n > 0 || last.is_some_and(|t| t >= since))
        })
    }
}

/// A source port held by a probe ([`OwnPorts::hold`]).
struct OwnPort {
    ports: Arc<OwnPorts>,
    port: u16,
}

impl Drop for OwnPort {
    fn drop(&mut self) {
        if let Ok(mut map) = self.ports.ports.lock()
            && let Some(entry) = map.get_mut(&self.port)
        {
            entry.0 = entry.0.saturating_sub(1);
            entry.1 = Some(Instant::now());
        }
    }
}

/// The error that says the answer came from another probe of the same scan, if so.
fn crossed(own: Option<&Arc<OwnPorts>>, addr: SocketAddr, since: Instant) -> Option<Error> {
    own.filter(|o| o.held_since(addr.port(), since)).map(|_| {
        Error::new(
            ErrorKind::Os,
            "connect",
            None,
            format!(
                "answered by another probe of this scan (port {} is its source port; nothing listens)",
                addr.port()
            ),
        )
    })
}

/// Probes one UDP port (see [`super::probe_udp`]), noting its source port in `own`.
pub(crate) async fn probe(
    addr: SocketAddr,
    timeout: Duration,
    source: Option<SocketAddr>,
    own: Option<&Arc<OwnPorts>>,
) -> Result<PortResult> {
    let start = Instant::now();
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(
        domain,
        socket2::Type::DGRAM.nonblocking().cloexec(),
        Some(socket2::Protocol::UDP),
    )
    .map_err(|e| Error::from_io("socket", e))?;
    bind_source(&sock, source)?;
    let sock =
        tokio::net::UdpSocket::from_std(sock.into()).map_err(|e| Error::from_io("socket", e))?;
    sock.connect(addr)
        .await
        .map_err(|e| Error::from_io("connect", e))?;
    let _held = own
        .zip(sock.local_addr().ok())
        .map(|(o, a)| o.hold(a.port()));
    let done = |state, reason| PortResult {
        host: addr.ip(),
        port: addr.port(),
        state,
        elapsed: start.elapsed(),
        reason,
    };
    // A socket whose source port is the target port would send the datagram to itself
    // and take its own datagram for an answer.
    if let Some(err) = self_connected(sock.local_addr().ok(), sock.peer_addr().ok()) {
        return Ok(done(PortState::Closed, Some(err)));
    }
    let exchange = async {
        sock.send(&[])
            .await
            .map_err(|e| Error::from_io("send", e))?;
        let mut buf = [0u8; 1];
        sock.recv(&mut buf)
            .await
            .map_err(|e| Error::from_io("recv", e))
    };
    let outcome = tokio::time::timeout(timeout, exchange).await;
    Ok(match outcome {
        Ok(Ok(_n)) => match crossed(own, addr, start) {
            Some(err) => done(PortState::Closed, Some(err)),
            None => done(PortState::Open, None),
        },
        Ok(Err(err)) if err.is_errno(libc::ECONNREFUSED) => done(PortState::Closed, Some(err)),
        Ok(Err(err)) if is_local_error(&err) => return Err(err),
        Ok(Err(err)) => done(PortState::Filtered, Some(err)),
        Err(_) => done(PortState::OpenFiltered, Some(Error::timeout("recv"))),
    })
}

/// Runs the UDP scan of `plan` on a one-thread tokio runtime, calling `each` in the
/// caller's thread; returns the parallelism at the end and the probes tried again.
///
/// When a probe cannot get a socket (`EMFILE`/`ENFILE`), the parallelism drops to the
/// probes still in flight and the port is probed again when one of them ends.
pub(crate) fn run(plan: &Plan, each: &mut dyn FnMut(PortResult)) -> Result<(usize, usize)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::from_io("scan: tokio runtime", e))?;
    rt.block_on(async {
        let mut set: JoinSet<(usize, Result<PortResult>)> = JoinSet::new();
        let mut again: VecDeque<usize> = VecDeque::new();
        let mut limit = plan.opts.parallel;
        let own = Arc::new(OwnPorts::default());
        let mut retried = 0;
        // Bounded: a probe is spawned only while fewer than `limit` are in flight, and each
        // one that gets no socket lowers `limit` to those still in flight, so a port is tried
        // again at most `parallel` times before the scan gives up.
        loop {
            while set.len() < limit {
                let Some(item) = again
                    .pop_front()
                    .map(|i| plan.item(i))
                    .or_else(|| plan.claim())
                else {
                    break;
                };
                let (timeout, source, own) =
                    (plan.opts.timeout, plan.opts.source, Arc::clone(&own));
                set.spawn(async move {
                    (
                        item.index,
                        probe(item.addr, timeout, source, Some(&own)).await,
                    )
                });
            }
            match set.join_next().await {
                None => return Ok((limit, retried)),
                Some(Ok((_, Ok(r)))) => each(r),
                Some(Ok((index, Err(e)))) if is_fd_shortage(&e) && !set.is_empty() => {
                    limit = limit.min(set.len());
                    retried += 1;
                    again.push_back(index);
                }
                Some(Ok((_, Err(e)))) => return Err(e),
                Some(Err(join)) => {
                    return Err(Error::new(ErrorKind::Os, "scan", None, join.to_string()));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port where nothing is bound, released again (tiny race with other tests).
    fn unbound_port() -> u16 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    }

    #[test]
    fn two_crossed_probes_are_closed_not_open() {
        // Regression: probes of one scan crossed (one bound to X probing Y, another bound
        // to Y probing X) got each other's datagram and both ports were reported open.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let addr = |p| SocketAddr::new("127.0.0.1".parse().unwrap(), p);
        let (x, y) = (unbound_port(), unbound_port());
        let t = Duration::from_secs(2);
        let run = |own: Option<Arc<OwnPorts>>| {
            rt.block_on(async {
                let (a, b) = tokio::join!(
                    probe(addr(y), t, Some(addr(x)), own.as_ref()),
                    probe(addr(x), t, Some(addr(y)), own.as_ref()),
                );
                (a.unwrap(), b.unwrap())
            })
        };
        // Without the scan's registry they really do answer each other.
        let (a, b) = run(None);
        assert_eq!((a.state, b.state), (PortState::Open, PortState::Open));
        let (a, b) = run(Some(Arc::new(OwnPorts::default())));
        assert_eq!((a.state, b.state), (PortState::Closed, PortState::Closed));
        let why = a.reason.unwrap().to_string();
        assert!(why.contains("another probe of this scan"), "{why}");
    }
}
