//! Connecting a session to its target: a stream (TCP with
//! [`connect_happy`](crate::client::connect_happy), or Unix) or a connected datagram
//! socket (UDP, Unix datagram).

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

use super::ForwardOptions;
use super::endpoint::{Endpoint, Proto};
use crate::addr::{Port, SockType};
use crate::client::{self, ConnectOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::relay;
use crate::serve::{BoxStream, Peer, Reached, Target};

/// The host an address without one stands for: `::1` when only IPv6 is asked for (`-6`),
/// else 127.0.0.1 (the servers' rule, [`AddrRule::default_ip`](crate::serve::AddrRule)).
pub fn default_host(lookup: &ConnectOptions) -> &'static str {
    if lookup.family == Some(crate::addr::Family::Inet6) {
        "::1"
    } else {
        "127.0.0.1"
    }
}

/// A connected target: a stream, or a connected datagram socket; with the address that
/// answered, or the proxy it went through.
pub(crate) enum TargetConn {
    Stream(BoxStream, Reached),
    Datagram(DgramTarget, Reached),
}

/// A connected datagram target: a UDP socket or a Unix datagram socket.
pub(crate) enum DgramTarget {
    Udp(UdpSocket),
    Unix(tokio::net::UnixDatagram),
}

impl relay::DatagramSocket for DgramTarget {
    async fn send_datagram(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            DgramTarget::Udp(u) => u.send(buf).await,
            DgramTarget::Unix(u) => u.send(buf).await,
        }
    }
    async fn recv_datagram(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DgramTarget::Udp(u) => u.recv(buf).await,
            DgramTarget::Unix(u) => u.recv(buf).await,
        }
    }
}

async fn lookup_first(
    host: &str,
    port: &Port,
    socktype: SockType,
    opts: &ConnectOptions,
) -> Result<SocketAddr> {
    let (host, port, opts) = (host.to_string(), port.clone(), opts.clone());
    tokio::task::spawn_blocking(move || {
        client::resolve(&host, &port, socktype, &opts)?
            .first()
            .copied()
            .ok_or_else(|| Error::gai("getaddrinfo", libc::EAI_NONAME))
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Os, "getaddrinfo", None, e.to_string()))?
}

/// Connects session `id` to the forwarder's target, tried again as
/// [`ForwardOptions::retry`] says (each failure to be retried an [`Event::Retry`]).
///
/// [`Event::Retry`]: crate::serve::Event::Retry
///
/// `header`: the PROXY protocol header to open each stream connection with; `retried` is
/// notified at each failure that will be retried.
pub(crate) async fn connect_retrying(
    id: u64,
    ctx: &super::Ctx,
    header: Option<&[u8]>,
    retried: &tokio::sync::Notify,
) -> Result<TargetConn> {
    ctx.opts
        .retry
        .run(
            || async {
                let mut conn = connect(&ctx.target, &ctx.opts).await?;
                if let (Some(h), TargetConn::Stream(s, _)) = (header, &mut conn) {
                    s.write_all(h)
                        .await
                        .map_err(|e| Error::from_io("send-proxy", e))?;
                }
                match (&ctx.opts.tls_target, conn) {
                    (Some(tls), TargetConn::Stream(s, addr)) => {
                        let s = tls_connect(s, &ctx.target, tls, &ctx.opts).await?;
                        Ok(TargetConn::Stream(s, addr))
                    }
                    (_, conn) => Ok(conn),
                }
            },
            |f| {
                retried.notify_one();
                ctx.emit(crate::serve::Event::Retry {
                    id,
                    target: ctx.target.aim(),
                    attempt: f.attempt,
                    attempts: f.attempts,
                    delay_us: crate::serve::Closed::micros(f.delay),
                    error: f.error.clone(),
                })
            },
        )
        .await
}

/// Connects to `target` under the options' connect timeout and socket options.
pub(crate) async fn connect(target: &Endpoint, opts: &ForwardOptions) -> Result<TargetConn> {
    let timeout = opts.connect_timeout;
    match target {
        Endpoint::Ip {
            proto: Proto::Tcp,
            host,
            port,
        } => {
            let host = host.as_deref().unwrap_or(default_host(&opts.lookup));
            let copts = ConnectOptions {
                timeout,
                ..opts.lookup.clone()
            };
            let (stream, reached) = match &opts.proxy {
                Some(p) => {
                    let c = crate::proxy::client::connect(p, host, port, &copts).await?;
                    let via = c.via();
                    let proxy = Peer::Ip(c.proxy_peer);
                    (c.stream, Reached::Proxied { proxy, via })
                }
                None => {
                    let c = client::connect_happy(host, port, &copts).await?;
                    (c.stream, Target(Peer::Ip(c.peer)).into())
                }
            };
            opts.sockopts.apply(&stream)?;
            Ok(TargetConn::Stream(Box::new(stream), reached))
        }
        Endpoint::Ip {
            proto: Proto::Udp,
            host,
            port,
        } => {
            let host = host.as_deref().unwrap_or(default_host(&opts.lookup));
            let addr = lookup_first(host, port, SockType::Dgram, &opts.lookup).await?;
            let s = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::DGRAM.nonblocking().cloexec(),
                None,
            )
            .map_err(|e| Error::from_io("socket", e))?;
            opts.sockopts.apply(&s)?;
            let u = UdpSocket::from_std(s.into()).map_err(|e| Error::from_io("socket", e))?;
            u.connect(addr)
                .await
                .map_err(|e| Error::from_io("connect", e))?;
            Ok(TargetConn::Datagram(
                DgramTarget::Udp(u),
                Target(Peer::Ip(addr)).into(),
            ))
        }
        Endpoint::UnixDgram(addr) => {
            let s = crate::unix::connect_datagram(addr)?;
            opts.sockopts.apply(&s)?;
            let u =
                tokio::net::UnixDatagram::from_std(s).map_err(|e| Error::from_io("connect", e))?;
            Ok(TargetConn::Datagram(
                DgramTarget::Unix(u),
                Target(Peer::Unix(Some(addr.clone()))).into(),
            ))
        }
        Endpoint::Unix(addr) => {
            let a = addr.clone();
            let s = tokio::task::spawn_blocking(move || crate::unix::connect_stream(&a, timeout))
                .await
                .map_err(|e| Error::new(ErrorKind::Os, "connect", None, e.to_string()))??;
            opts.sockopts.apply(&s)?;
            let s =
                tokio::net::UnixStream::from_std(s).map_err(|e| Error::from_io("connect", e))?;
            Ok(TargetConn::Stream(
                Box::new(s),
                Target(Peer::Unix(Some(addr.clone()))).into(),
            ))
        }
    }
}

/// The client side of the TLS handshake with the target (`--tls-target`): the name is
/// `--sni` or the target's host; bounded by the connect timeout, or
/// [`TLS_HANDSHAKE_TIMEOUT`](super::TLS_HANDSHAKE_TIMEOUT).
async fn tls_connect(
    s: BoxStream,
    target: &Endpoint,
    tls: &super::TargetTls,
    opts: &ForwardOptions,
) -> Result<BoxStream> {
    let name = match (&tls.name, target) {
        (Some(n), _) => n.clone(),
        (None, Endpoint::Ip { host, .. }) => host
            .clone()
            .unwrap_or_else(|| default_host(&opts.lookup).to_string()),
        (None, _) => return Err(Error::invalid_input("tls", "--tls-target needs --sni NAME")),
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let fd = super::stream::dup_fd(&s)?;
    let mut s = crate::tls::Stream::connect(s, name, tls.config.clone())?;
    let limit = opts.connect_timeout.unwrap_or(super::TLS_HANDSHAKE_TIMEOUT);
    match tokio::time::timeout(limit, s.handshake()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(Error::timeout("tls handshake")),
    }
    Ok(Box::new(crate::serve::WithFd::new(s, fd)))
}

/// The PROXY header a session sends its target (`--send-proxy`): `client` reached
/// `local`; a Unix client (no IP address) is sent as `LOCAL`/`UNKNOWN`.
///
/// # Errors
/// As [`Header::to_bytes`](crate::proxy_protocol::Header::to_bytes).
pub(crate) fn proxy_header(
    version: crate::proxy_protocol::Version,
    client: &Peer,
    local: Option<SocketAddr>,
) -> Result<Vec<u8>> {
    use crate::proxy_protocol::Header;
    match (client, local) {
        (Peer::Ip(src), Some(dst)) => Header::proxied(version, *src, dst),
        _ => Header::local(version),
    }
    .to_bytes()
}

impl TargetConn {
    /// The target's address that answered.
    /// How the target was reached: its address, or the proxy it went through.
    pub(crate) fn reached(&self) -> Reached {
        match self {
            TargetConn::Stream(_, a) | TargetConn::Datagram(_, a) => a.clone(),
        }
    }

    /// One client datagram to the target: `send(2)` as one datagram, or its bytes written
    /// whole to a stream (boundaries are not kept there).
    pub(crate) async fn send(&mut self, d: &[u8]) -> io::Result<()> {
        use relay::DatagramSocket;
        match self {
            TargetConn::Datagram(u, _) => u.send_datagram(d).await.map(|_| ()),
            TargetConn::Stream(s, _) => s.write_all(d).await,
        }
    }

    /// What the target sent next: one datagram (which may be empty), or the bytes one
    /// `read(2)` of a stream got; `None` once the stream has ended.
    pub(crate) async fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        use relay::DatagramSocket;
        match self {
            TargetConn::Datagram(u, _) => u.recv_datagram(buf).await.map(Some),
            TargetConn::Stream(s, _) => s.read(buf).await.map(|n| (n > 0).then_some(n)),
        }
    }
}
