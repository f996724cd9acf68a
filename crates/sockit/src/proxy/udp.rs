//! SOCKS5 `UDP ASSOCIATE` (RFC 1928 §7): a UDP relay for one client, alive as long as the
//! client's TCP connection.
//!
//! [`UdpAssociation::bind`] binds the client-facing UDP socket on the address the client
//! reached the proxy at (so a loopback proxy relays on loopback); its address is the
//! `BND.ADDR`/`BND.PORT` of the success reply. [`UdpAssociation::run`] then relays:
//! - a datagram from the client (its TCP peer's IP, and the port it named in its request,
//!   or the first one it sends from when it named port 0) carries a header naming the
//!   destination ([`socks5::parse_udp`]); the payload goes there, if the destination
//!   policy permits the (resolved) address, from an outbound socket of the destination's
//!   family (bound to the unspecified address and an ephemeral port, as any UDP client);
//! - a datagram from a destination the client has sent to goes back to the client with a
//!   header naming its sender;
//! - everything else is dropped and counted: datagrams from other sources, fragments
//!   (`FRAG` ≠ 0, which RFC 1928 lets a server drop), malformed headers, denied or
//!   unresolvable destinations, replies from addresses never sent to.
//!
//! The association ends when the TCP connection ends (EOF, error), on the idle timeout,
//! or when the caller drops the future. Name lookups are bounded by
//! [`LOOKUP_TIMEOUT`] and remembered for the association's life (at most
//! [`MAX_DESTINATIONS`] destinations).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UdpSocket;

use super::policy::DestPolicy;
use super::{TargetAddr, socks5};
use crate::addr::Family;
use crate::error::{Error, Result};

/// How long a destination's name lookup may take (5 s).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The most distinct destinations one association remembers (1024); past it, datagrams
/// to new destinations are dropped.
pub const MAX_DESTINATIONS: usize = 1024;
const DATAGRAM_BUF: usize = 65_536;

/// Counts of one association, from the client's point of view (as a `closed` event's
/// fields are).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpTotals {
    /// Datagrams sent to the client.
    pub datagrams_sent: u64,
    /// Datagrams received from the client and relayed.
    pub datagrams_received: u64,
    /// Payload bytes sent to the client (headers not counted).
    pub bytes_sent: u64,
    /// Payload bytes received from the client and relayed.
    pub bytes_received: u64,
    /// Datagrams dropped (either way).
    pub dropped: u64,
}

/// One datagram an association relayed or dropped, for per-datagram events
/// ([`UdpAssociation::run`]'s `seen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpSeen {
    /// A payload of `bytes` relayed between the client and `target`: to the target
    /// (`to_target`) or back to the client.
    Relayed {
        /// The client's address.
        client: SocketAddr,
        /// The destination (`to_target`) or the sender of a reply.
        target: SocketAddr,
        /// Payload bytes (the SOCKS header not counted).
        bytes: usize,
        /// True from the client to the target, false for a reply to the client.
        to_target: bool,
    },
    /// A datagram of `bytes` from `from` dropped for `reason`: `not_client` (another
    /// source), `fragment` (`FRAG` ≠ 0), `malformed` (a bad header), `denied` (the
    /// destination policy), `unresolved` (the name lookup failed, or too many names),
    /// `unsolicited` (a reply from an address never sent to), `send_failed`.
    Dropped {
        /// The sender.
        from: SocketAddr,
        /// Datagram bytes.
        bytes: usize,
        /// Why (see above).
        reason: &'static str,
    },
}

/// Why an association ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpEnd {
    /// The client closed its TCP connection.
    Eof,
    /// No datagram either way for the idle timeout.
    Idle,
    /// The TCP connection or a socket failed.
    Error(Error),
}

/// One client's UDP relay.
#[derive(Debug)]
pub struct UdpAssociation {
    socket: UdpSocket,
    client_ip: IpAddr,
    client_port: Option<u16>,
}

impl UdpAssociation {
    /// Binds the client-facing socket on `local_ip` (the address the client's TCP
    /// connection reached), port 0, for the client at `client_ip`; `declared` is where the
    /// client said it will send from (port 0: not known yet).
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) when `bind(2)` fails.
    pub async fn bind(
        local_ip: IpAddr,
        client_ip: IpAddr,
        declared: &TargetAddr,
    ) -> Result<UdpAssociation> {
        let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .await
            .map_err(|e| Error::from_io("bind", e))?;
        let client_port = match declared.port() {
            0 => None,
            p => Some(p),
        };
        Ok(UdpAssociation {
            socket,
            client_ip: canonical(client_ip),
            client_port,
        })
    }

    /// Where the client is to send its datagrams (the success reply's bound address).
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockname(2)`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.socket
            .local_addr()
            .map_err(|e| Error::from_io("getsockname", e))
    }

    /// Relays until the control connection ends, `idle` passes without a datagram, or a
    /// socket fails; `totals` is updated as datagrams pass (the caller may read it
    /// afterwards, also when the future is dropped on a stop), and `seen` hears of each
    /// datagram relayed or dropped ([`UdpSeen`]). `family` restricts name lookups
    /// (`-4`/`-6`).
    pub async fn run<C>(
        mut self,
        control: &mut C,
        policy: &DestPolicy,
        family: Option<Family>,
        idle: Option<Duration>,
        totals: &mut UdpTotals,
        seen: &(dyn Fn(UdpSeen) + Send + Sync),
    ) -> UdpEnd
    where
        C: AsyncRead + Unpin + ?Sized,
    {
        let mut out4: Option<UdpSocket> = None;
        let mut out6: Option<UdpSocket> = None;
        let mut names: HashMap<(String, u16), Option<SocketAddr>> = HashMap::new();
        let mut sent_to: HashSet<SocketAddr> = HashSet::new();
        let mut from_client = vec![0u8; DATAGRAM_BUF];
        let mut from_target = vec![0u8; DATAGRAM_BUF];
        let mut control_buf = [0u8; 512];
        loop {
            let idle_sleep = async {
                match idle {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = control.read(&mut control_buf) => match r {
                    Ok(0) => return UdpEnd::Eof,
                    Ok(_) => {} // a client has nothing to say here: ignored
                    Err(e) => return UdpEnd::Error(Error::from_io("recv", e)),
                },
                r = self.socket.recv_from(&mut from_client) => {
                    let (n, src) = match r {
                        Ok(x) => x,
                        Err(e) => return UdpEnd::Error(Error::from_io("recvfrom", e)),
                    };
                    let drop_it = |totals: &mut UdpTotals, reason| {
                        totals.dropped += 1;
                        seen(UdpSeen::Dropped { from: src, bytes: n, reason });
                    };
                    if !self.is_client(src) {
                        drop_it(totals, "not_client");
                        continue;
                    }
                    let dest = match self
                        .destination(&from_client[..n], &mut names, policy, family)
                        .await
                    {
                        Ok(d) => d,
                        Err(reason) => {
                            drop_it(totals, reason);
                            continue;
                        }
                    };
                    let Ok(parsed) = socks5::parse_udp(&from_client[..n]) else {
                        drop_it(totals, "malformed");
                        continue;
                    };
                    let out = match dest {
                        SocketAddr::V4(_) => &mut out4,
                        SocketAddr::V6(_) => &mut out6,
                    };
                    let sock = match out {
                        Some(s) => s,
                        None => match outbound(dest).await {
                            Ok(s) => out.insert(s),
                            Err(e) => return UdpEnd::Error(e),
                        },
                    };
                    match sock.send_to(parsed.data, dest).await {
                        Ok(_) => {
                            if sent_to.len() < MAX_DESTINATIONS {
                                sent_to.insert(dest);
                            }
                            totals.datagrams_received += 1;
                            totals.bytes_received += parsed.data.len() as u64;
                            seen(UdpSeen::Relayed {
                                client: src,
                                target: dest,
                                bytes: parsed.data.len(),
                                to_target: true,
                            });
                        }
                        Err(_) => drop_it(totals, "send_failed"),
                    }
                }
                r = recv_either(&out4, &out6, &mut from_target) => {
                    let (n, src) = match r {
                        Ok(x) => x,
                        Err(e) => return UdpEnd::Error(Error::from_io("recvfrom", e)),
                    };
                    let drop_it = |totals: &mut UdpTotals, reason| {
                        totals.dropped += 1;
                        seen(UdpSeen::Dropped { from: src, bytes: n, reason });
                    };
                    let (Some(port), true) = (self.client_port, sent_to.contains(&src)) else {
                        drop_it(totals, "unsolicited");
                        continue;
                    };
                    let Ok(mut datagram) = socks5::udp_header(&TargetAddr::Ip(src)) else {
                        drop_it(totals, "malformed");
                        continue;
                    };
                    datagram.extend_from_slice(&from_target[..n]);
                    let client = SocketAddr::new(self.client_ip, port);
                    match self.socket.send_to(&datagram, client).await {
                        Ok(_) => {
                            totals.datagrams_sent += 1;
                            totals.bytes_sent += n as u64;
                            seen(UdpSeen::Relayed {
                                client,
                                target: src,
                                bytes: n,
                                to_target: false,
                            });
                        }
                        Err(_) => drop_it(totals, "send_failed"),
                    }
                }
                _ = idle_sleep => return UdpEnd::Idle,
            }
        }
    }

    /// True for a datagram from the client; the first one fixes the client's port when
    /// its request named port 0.
    fn is_client(&mut self, src: SocketAddr) -> bool {
        if canonical(src.ip()) != self.client_ip {
            return false;
        }
        match self.client_port {
            Some(p) => p == src.port(),
            None => {
                self.client_port = Some(src.port());
                true
            }
        }
    }

    /// The permitted destination of a client's datagram, resolving (and remembering) a
    /// name; the reason to drop it otherwise ([`UdpSeen::Dropped`]).
    async fn destination(
        &self,
        datagram: &[u8],
        names: &mut HashMap<(String, u16), Option<SocketAddr>>,
        policy: &DestPolicy,
        family: Option<Family>,
    ) -> std::result::Result<SocketAddr, &'static str> {
        let parsed = socks5::parse_udp(datagram).map_err(|_| "malformed")?;
        if parsed.frag != 0 {
            return Err("fragment");
        }
        let dest = match &parsed.target {
            TargetAddr::Ip(a) => Some(*a),
            TargetAddr::Domain(name, port) => {
                let key = (name.clone(), *port);
                match names.get(&key) {
                    Some(found) => *found,
                    None if names.len() >= MAX_DESTINATIONS => None,
                    None => {
                        let found =
                            super::session::resolve(&parsed.target, family, Some(LOOKUP_TIMEOUT))
                                .await
                                .ok()
                                .and_then(|addrs| addrs.into_iter().find(|a| policy.permits(*a)));
                        names.insert(key, found);
                        found
                    }
                }
            }
        }
        .ok_or("unresolved")?;
        policy.permits(dest).then_some(dest).ok_or("denied")
    }
}

/// An outbound socket for destinations of `dest`'s family.
async fn outbound(dest: SocketAddr) -> Result<UdpSocket> {
    let any: IpAddr = match dest {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    UdpSocket::bind(SocketAddr::new(any, 0))
        .await
        .map_err(|e| Error::from_io("bind", e))
}

/// The next datagram on either outbound socket (pending while neither exists).
async fn recv_either(
    a: &Option<UdpSocket>,
    b: &Option<UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    std::future::poll_fn(|cx| {
        for sock in [a, b].into_iter().flatten() {
            let mut rb = tokio::io::ReadBuf::new(buf);
            if let std::task::Poll::Ready(r) = sock.poll_recv_from(cx, &mut rb) {
                return std::task::Poll::Ready(r.map(|src| (rb.filled().len(), src)));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn echo() -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let _ = s.send_to(&buf[..n], from).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn datagrams_go_through_and_back() {
        let target = echo().await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
        let declared = TargetAddr::Ip(SocketAddr::from(([0, 0, 0, 0], 0)));
        let assoc = UdpAssociation::bind(lo, lo, &declared).await.unwrap();
        let relay = assoc.local_addr().unwrap();
        let (mut ctl_client, mut ctl_server) = tokio::io::duplex(64);
        let deny = DestPolicy::parse(&[] as &[&str], &["127.0.0.9/32"]).unwrap();
        let run = tokio::spawn(async move {
            let mut totals = UdpTotals::default();
            let said = std::sync::Mutex::new(Vec::new());
            let seen = |s: UdpSeen| said.lock().unwrap().push(s);
            let end = assoc
                .run(
                    &mut ctl_server,
                    &deny,
                    None,
                    Some(Duration::from_secs(10)),
                    &mut totals,
                    &seen,
                )
                .await;
            (end, totals, said.into_inner().unwrap())
        });
        let limit = Duration::from_secs(5);
        for payload in [&b"one"[..], b"", b"three"] {
            let mut d = socks5::udp_header(&TargetAddr::Ip(target)).unwrap();
            d.extend_from_slice(payload);
            client.send_to(&d, relay).await.unwrap();
            let mut buf = [0u8; 2048];
            let (n, from) = tokio::time::timeout(limit, client.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(from, relay);
            let back = socks5::parse_udp(&buf[..n]).unwrap();
            assert_eq!((back.target, back.data), (TargetAddr::Ip(target), payload));
        }
        // Dropped: a fragment, a denied destination, a malformed header.
        let mut frag = socks5::udp_header(&TargetAddr::Ip(target)).unwrap();
        frag[2] = 1;
        let denied = socks5::udp_header(&TargetAddr::Ip("127.0.0.9:9".parse().unwrap())).unwrap();
        for d in [frag, denied, vec![0, 0, 0, 9]] {
            client.send_to(&d, relay).await.unwrap();
        }
        // A datagram from another port of the client's address is not the client's.
        let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut d = socks5::udp_header(&TargetAddr::Ip(target)).unwrap();
        d.extend_from_slice(b"x");
        other.send_to(&d, relay).await.unwrap();
        // Order after the drops: one more round trip, then end the control connection.
        let mut d = socks5::udp_header(&TargetAddr::Ip(target)).unwrap();
        d.extend_from_slice(b"last");
        client.send_to(&d, relay).await.unwrap();
        let mut buf = [0u8; 64];
        tokio::time::timeout(limit, client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        ctl_client.shutdown().await.unwrap();
        let (end, totals, seen) = tokio::time::timeout(limit, run).await.unwrap().unwrap();
        assert_eq!(end, UdpEnd::Eof);
        assert_eq!((totals.datagrams_received, totals.datagrams_sent), (4, 4));
        assert_eq!((totals.bytes_received, totals.bytes_sent), (12, 12));
        assert_eq!(totals.dropped, 4);
        // Every datagram is told of: relayed both ways, or dropped with its reason.
        let me = client.local_addr().unwrap();
        assert_eq!(
            seen[..2],
            [
                UdpSeen::Relayed {
                    client: me,
                    target,
                    bytes: 3,
                    to_target: true
                },
                UdpSeen::Relayed {
                    client: me,
                    target,
                    bytes: 3,
                    to_target: false
                },
            ]
        );
        let dropped: Vec<&str> = seen
            .iter()
            .filter_map(|s| match s {
                UdpSeen::Dropped { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect();
        assert_eq!(dropped, ["fragment", "denied", "malformed", "not_client"]);
        assert_eq!(seen.len(), 8 + 4);
    }
}
