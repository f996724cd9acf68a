//! `--accept-proxy-from CIDR…`: the PROXY protocol (HAProxy's, v1 and v2) on the accept
//! path of every TCP server, once.
//!
//! Contract:
//! - With no source listed ([`ProxySources::is_empty`]) nothing changes: no byte is read
//!   before the session.
//! - A connection from a listed source must open with a valid header (either version),
//!   complete within [`HEADER_TIMEOUT`] and [`MAX_HEADER_BYTES`]. The header is read with
//!   `recv(MSG_PEEK)` and then consumed up to its last byte only, so the bytes after it
//!   stay in the socket for the session (a splice or the echo loop sees the raw socket).
//!   The original client it names is the session's peer: in the events, and for
//!   `--allow`/`--deny`; the listed source is reported beside it (`via`). A `LOCAL`
//!   header (v2) or `PROXY UNKNOWN` (v1), sent by a proxy's health check, leaves the
//!   connection's own address as the peer.
//! - A connection from any other source is refused ([`Refusal::UnlistedSource`]):
//!   otherwise anyone could claim any address. A missing, slow or malformed header closes
//!   the connection with [`Refusal::ProxyHeader`] and the error.
//! - Unix and datagram listeners have no PROXY header here: a server refuses the flag for
//!   them at bind time.
//!
//! [`Refusal::UnlistedSource`]: super::Refusal::UnlistedSource
//! [`Refusal::ProxyHeader`]: super::Refusal::ProxyHeader

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use socket2::SockRef;

use super::peer::Peer;
use crate::error::{Error, Result};
use crate::proxy_protocol::{self, Header};

pub use crate::proxy_protocol::MAX_HEADER_BYTES;

/// How long a listed source has to send its whole header (5 s).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The sources that must open every connection with a PROXY header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySources {
    nets: Vec<IpNet>,
}

/// What the accept path does with a new connection ([`ProxySources::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// No source is listed: the connection is a session as it is.
    Plain,
    /// A listed source: read its header first.
    Header,
    /// Sources are listed and this is not one of them: refuse it.
    Refuse,
}

impl ProxySources {
    /// The `--accept-proxy-from` words: networks or addresses, a word may hold several
    /// separated by commas.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a word that is not
    /// one ([`parse_cidr`](crate::access::parse_cidr)), or holds none
    /// ([`parse_words`](crate::access::parse_words)).
    pub fn parse<S: AsRef<str>>(words: &[S]) -> Result<ProxySources> {
        let nets = crate::access::parse_words(words, "accept-proxy-from")?;
        Ok(ProxySources { nets })
    }

    /// True when no source is listed.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Is `ip` listed? IPv4-mapped IPv6 addresses are checked as IPv4.
    pub fn lists(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// What to do with a connection from `peer` (a Unix peer is [`Check::Plain`]: the
    /// flag is refused for Unix listeners before any accept).
    pub fn check(&self, peer: &Peer) -> Check {
        match peer.ip() {
            _ if self.is_empty() => Check::Plain,
            Some(ip) if self.lists(ip) => Check::Header,
            Some(_) => Check::Refuse,
            None => Check::Plain,
        }
    }
}

/// The client a header names: its source address, or `conn_peer` (the connection's own
/// peer) for a `LOCAL` / `UNKNOWN` header.
pub fn original_peer(header: &Header, conn_peer: SocketAddr) -> SocketAddr {
    header.source().unwrap_or(conn_peer)
}

/// Reads a PROXY header from a non-blocking stream socket, never taking a byte past it
/// (`recv(2)` with `MSG_PEEK`, then a `recv` of exactly what belongs to the header).
/// Poll it whenever the socket is readable; it keeps what it consumed between calls.
#[derive(Debug, Default)]
pub struct HeaderReader {
    seen: Vec<u8>,
}

impl HeaderReader {
    /// A reader with nothing seen yet.
    pub fn new() -> HeaderReader {
        HeaderReader::default()
    }

    /// Takes what the socket holds toward the header: `Ok(Some(header))` once it is
    /// complete (the socket then holds exactly what followed it), `Ok(None)` when more
    /// bytes are needed (after consuming those that came).
    ///
    /// # Errors
    /// `WouldBlock` when nothing is ready; `UnexpectedEof` when the peer closed first; a
    /// system error from `recv(2)`; [`ErrorKind::Protocol`](crate::ErrorKind::Protocol)
    /// (inside the `io::Error`, see [`Error::from_io`]) for bytes that are no header.
    pub fn read_from(&mut self, sock: SockRef<'_>) -> io::Result<Option<Header>> {
        let room = MAX_HEADER_BYTES.saturating_sub(self.seen.len()).max(1);
        let mut buf = vec![0u8; room];
        let n = sock.peek(crate::sys::as_uninit(&mut buf))?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                Error::protocol(
                    "proxy protocol",
                    "the connection closed before a complete PROXY header",
                ),
            ));
        }
        let start = self.seen.len();
        self.seen.extend_from_slice(&buf[..n]);
        match proxy_protocol::parse(&self.seen) {
            Ok(Some((header, used))) => {
                consume(&sock, used - start)?;
                Ok(Some(header))
            }
            Ok(None) if self.seen.len() >= MAX_HEADER_BYTES => Err(Error::protocol(
                "proxy protocol",
                format!("no complete PROXY header in {MAX_HEADER_BYTES} bytes"),
            )
            .into()),
            Ok(None) => {
                // Every byte seen belongs to the header (it is not complete yet).
                consume(&sock, n)?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Takes exactly `n` bytes the socket is known to hold (they were peeked).
fn consume(sock: &SockRef<'_>, mut n: usize) -> io::Result<()> {
    let mut buf = [0u8; 512];
    while n > 0 {
        let k = n.min(buf.len());
        match sock.recv(crate::sys::as_uninit(&mut buf[..k])) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(got) => n -= got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads the PROXY header of an accepted tokio TCP stream within `limit`
/// ([`HEADER_TIMEOUT`] for the servers).
///
/// # Errors
/// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) (`proxy protocol: timed out`) when
/// the header is not complete in time; [`ErrorKind::Protocol`](crate::ErrorKind::Protocol)
/// for a malformed or missing one (the peer's first bytes are something else, or it
/// closed first); [`ErrorKind::Os`](crate::ErrorKind::Os) from `recv(2)`.
pub async fn read_header(stream: &tokio::net::TcpStream, limit: Duration) -> Result<Header> {
    let mut reader = HeaderReader::new();
    let read = async {
        loop {
            stream
                .readable()
                .await
                .map_err(|e| Error::from_io("recv", e))?;
            match stream.try_io(tokio::io::Interest::READABLE, || {
                reader.read_from(SockRef::from(stream))
            }) {
                Ok(Some(h)) => return Ok(h),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::from_io("recv", e)),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| Err(Error::timeout("proxy protocol")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy_protocol::Version;
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn sources() {
        let s = ProxySources::parse(&["127.0.0.1/32,::1"]).unwrap();
        let p = |a: &str| Peer::Ip(a.parse().unwrap());
        assert_eq!(s.check(&p("127.0.0.1:5")), Check::Header);
        assert_eq!(s.check(&p("[::ffff:127.0.0.1]:5")), Check::Header);
        assert_eq!(s.check(&p("[::1]:5")), Check::Header);
        assert_eq!(s.check(&p("127.0.0.2:5")), Check::Refuse);
        assert_eq!(
            ProxySources::default().check(&p("127.0.0.2:5")),
            Check::Plain
        );
        let e = ProxySources::parse(&["10.0.0.0/33"]).unwrap_err();
        assert!(e.to_string().starts_with("accept-proxy-from: "), "{e}");
    }

    async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, s)
    }

    #[tokio::test]
    async fn the_header_is_taken_and_what_follows_stays() {
        let src = "192.0.2.7:4242".parse().unwrap();
        let dst = "127.0.0.1:80".parse().unwrap();
        for version in [Version::V1, Version::V2] {
            let (mut c, mut s) = pair().await;
            let mut wire = Header::proxied(version, src, dst).to_bytes().unwrap();
            wire.extend_from_slice(b"GET / HTTP/1.0\r\n");
            // One byte at a time: the reader waits for more without taking a payload byte.
            let writer = tokio::spawn(async move {
                for b in wire {
                    c.write_all(&[b]).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                c
            });
            let h = read_header(&s, Duration::from_secs(5)).await.unwrap();
            assert_eq!(original_peer(&h, "127.0.0.1:1".parse().unwrap()), src);
            let _c = writer.await.unwrap();
            let mut rest = [0u8; 16];
            s.read_exact(&mut rest).await.unwrap();
            assert_eq!(&rest, b"GET / HTTP/1.0\r\n");
        }
    }

    #[tokio::test]
    async fn bad_missing_and_slow_headers_fail() {
        let (mut c, s) = pair().await;
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let e = read_header(&s, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Protocol, "{e}");
        let (mut c, s) = pair().await;
        c.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
        drop(c);
        let e = read_header(&s, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Protocol, "{e}");
        let (mut c, s) = pair().await;
        c.write_all(b"PROXY TCP4 ").await.unwrap();
        let e = read_header(&s, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Timeout, "{e}");
        assert_eq!(e.to_string(), "proxy protocol: timed out");
    }
}
