//! A proxy server's side of one client session, up to the relay: read the handshake in
//! whichever protocol the first byte names ([`Protocol::detect`]), authenticate, decide
//! where to connect ([`accept_request`]); resolve and check the destination, connect
//! ([`connect_target`]); answer ([`Request::success_reply`], [`Request::failure_reply`]).
//! The accept loop, admission, events and the relay itself belong to the caller,
//! [`ProxyServer`](super::server::ProxyServer).
//!
//! Contracts:
//! - Bounded in time: the whole handshake must complete within
//!   [`ServerConfig::handshake_timeout`]. A client that stops halfway is answered with the
//!   reply of the stage it stopped in ([`Refusal`] with [`Malformed::Timeout`]), then
//!   closed; one that closes halfway likewise ([`Malformed::Truncated`]).
//! - Bounded in bytes: each message is capped by its parser (see [`super`]); reads are at
//!   most [`READ_CHUNK`] bytes beyond a message's start.
//! - Every refusal is answered with the protocol's own error reply, sent here before
//!   [`accept_request`] returns; the caller only closes the connection and reports it.
//! - Bytes a client sent after its request (a TLS ClientHello right behind `CONNECT`) are
//!   kept in [`Request::leftover`], for the caller to send to the target first.
//! - Credentials are compared without early exit ([`Credentials::matches`]); SOCKS4, which
//!   has no password, is refused when credentials are required.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::policy::DestPolicy;
use super::{
    Credentials, Login, Malformed, Parsed, Protocol, Refusal, TargetAddr, http, socks4, socks5,
};
use crate::addr::{Family, Port, SockType};
use crate::client::{ConnectOptions, connect_happy_addrs, happy_order};
use crate::error::{Error, ErrorKind, Result};

/// How long a client may take for its whole handshake when nothing else is configured
/// (10 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes read from a client in one read during the handshake (4 KiB).
pub const READ_CHUNK: usize = 4096;
/// How long sending a refusal may take before the connection is closed anyway (1 s).
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// How a proxy server treats its clients' handshakes.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Accepted credentials (`--auth USER:PASS`, `--auth-file`); empty: no authentication.
    pub users: Vec<Credentials>,
    /// The longest a handshake may take.
    pub handshake_timeout: Duration,
    /// Bounds on an HTTP request head.
    pub http_limits: http::Limits,
    /// Whether SOCKS5 `UDP ASSOCIATE` is served (else refused with reply 7).
    pub udp_associate: bool,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            users: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            http_limits: http::Limits::default(),
            udp_associate: true,
        }
    }
}

impl ServerConfig {
    fn auth_required(&self) -> bool {
        !self.users.is_empty()
    }

    /// True when the credentials are one of the accepted ones.
    fn check(&self, login: &Login) -> bool {
        // Every user is compared, so the time taken does not tell which one matched.
        self.users.iter().fold(false, |ok, u| {
            u.matches(&login.username, &login.password) | ok
        })
    }
}

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A TCP connection to the target (SOCKS `CONNECT`, HTTP `CONNECT`).
    Connect,
    /// SOCKS `BIND` (RFC 1928 §4, SOCKS4 command 2): listen for one connection from the
    /// target (the host expected to connect; unspecified: any), then relay.
    Bind,
    /// SOCKS5 `UDP ASSOCIATE`: relay datagrams; the target is where the client says it
    /// will send from (often `0.0.0.0:0`).
    UdpAssociate,
    /// A plain HTTP request with an absolute URI: connect, send `head` (rewritten for the
    /// origin server), then relay.
    HttpForward {
        /// The request head to send to the origin server.
        head: Vec<u8>,
        /// How the request's body ends: the client's bytes are relayed to that end and no
        /// further (one request per connection; [`OneRequest`](super::one_request::OneRequest)).
        body: crate::http::Framing,
    },
}

impl Command {
    /// `connect`, `bind`, `udp_associate` or `forward` (a plain HTTP request forwarded to
    /// the origin server), as events name it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Connect => "connect",
            Command::Bind => "bind",
            Command::UdpAssociate => "udp_associate",
            Command::HttpForward { .. } => "forward",
        }
    }
}

/// A handshake read and accepted: what to do for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The protocol the client spoke.
    pub protocol: Protocol,
    /// What it asked for.
    pub command: Command,
    /// Where (as the client named it).
    pub target: TargetAddr,
    /// The authenticated user, or SOCKS4's user id; `None` when there was none.
    pub user: Option<String>,
    /// Bytes the client sent after its request, to be sent to the target first.
    pub leftover: Vec<u8>,
}

impl Request {
    /// The answer that tells the client it is connected: SOCKS5 reply 0 and SOCKS4 reply
    /// 90 with `bound` (the proxy's address toward the target, for `UDP ASSOCIATE` where
    /// to send datagrams, for `BIND` where it listens, then the peer that connected;
    /// SOCKS4 names an IPv6 address as 0.0.0.0 with its port), HTTP `200 Connection established`; nothing for a plain
    /// HTTP request, whose answer comes from the origin server.
    pub fn success_reply(&self, bound: SocketAddr) -> Vec<u8> {
        match (&self.protocol, &self.command) {
            (_, Command::HttpForward { .. }) => Vec::new(),
            (Protocol::Socks5, _) => socks5::reply(socks5::REP_SUCCEEDED, &TargetAddr::Ip(bound)),
            (Protocol::Socks4, _) => {
                // SOCKS4 has no IPv6: 0.0.0.0 tells the client "the proxy's address", and
                // the port is kept (a BIND's client needs it).
                let v4 = match bound {
                    SocketAddr::V4(a) => a,
                    SocketAddr::V6(a) => std::net::SocketAddrV4::new([0, 0, 0, 0].into(), a.port()),
                };
                socks4::reply(socks4::REP_GRANTED, v4).to_vec()
            }
            (Protocol::Http, _) => http::connect_established(),
        }
    }

    /// The answer for a target that could not be reached (or was denied): SOCKS5's reply
    /// code for the error ([`socks5::reply_for_error`], 2 when denied), SOCKS4's 91, HTTP
    /// 403 when denied, 504 for a timeout, 502 otherwise.
    pub fn failure_reply(&self, failure: &TargetError) -> Vec<u8> {
        let unspecified = TargetAddr::Ip(SocketAddr::from(([0, 0, 0, 0], 0)));
        match (self.protocol, failure) {
            (Protocol::Socks5, TargetError::Denied { .. }) => {
                socks5::reply(socks5::REP_NOT_ALLOWED, &unspecified)
            }
            (Protocol::Socks5, TargetError::Failed(e)) => {
                socks5::reply(socks5::reply_for_error(e), &unspecified)
            }
            (Protocol::Socks4, _) => {
                socks4::reply(socks4::REP_REJECTED, "0.0.0.0:0".parse().expect("literal")).to_vec()
            }
            (Protocol::Http, f) => {
                let (status, reason) = match f {
                    TargetError::Denied { .. } => (403, "Forbidden"),
                    TargetError::Failed(e) if e.kind() == ErrorKind::Timeout => {
                        (504, "Gateway Timeout")
                    }
                    TargetError::Failed(_) => (502, "Bad Gateway"),
                };
                http::error_response(status, reason, &[], &f.to_string())
            }
        }
    }
}

/// Where a handshake is: what a timeout or an end of input would be answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    First,
    Socks5Greeting,
    Socks5Auth,
    Socks5Request,
    Socks4Request,
    HttpHead,
}

impl Stage {
    /// The protocol a handshake in this stage speaks.
    fn protocol(self) -> Option<Protocol> {
        match self {
            Stage::First => None,
            Stage::Socks5Greeting | Stage::Socks5Auth | Stage::Socks5Request => {
                Some(Protocol::Socks5)
            }
            Stage::Socks4Request => Some(Protocol::Socks4),
            Stage::HttpHead => Some(Protocol::Http),
        }
    }

    /// The refusal for a handshake that ended (`reason`: timeout or truncated) here.
    fn refusal(self, reason: Malformed, got: usize) -> Refusal {
        let what = match reason {
            Malformed::Timeout => "did not complete in time",
            _ => "ended early (the client closed the connection)",
        };
        let (name, reply) = match self {
            Stage::First => ("handshake", Vec::new()),
            Stage::Socks5Greeting => (
                "SOCKS5 greeting",
                socks5::method_selection(socks5::METHOD_NO_ACCEPTABLE).to_vec(),
            ),
            Stage::Socks5Auth => ("SOCKS5 authentication", socks5::auth_status(false).to_vec()),
            Stage::Socks5Request => (
                "SOCKS5 request",
                socks5::reply(
                    socks5::REP_GENERAL_FAILURE,
                    &TargetAddr::Ip(SocketAddr::from(([0, 0, 0, 0], 0))),
                ),
            ),
            Stage::Socks4Request => (
                "SOCKS4 request",
                socks4::reply(socks4::REP_REJECTED, "0.0.0.0:0".parse().expect("literal")).to_vec(),
            ),
            Stage::HttpHead => {
                let (status, text) = http::status_for(reason);
                let m = format!("request head {what}");
                (
                    "HTTP request head",
                    http::error_response(status, text, &[], &m),
                )
            }
        };
        Refusal::new(
            reason,
            format!("{name} {what} ({got} bytes received)"),
            reply,
        )
    }
}

/// The handshake's reading state.
struct Reader<'a, S: ?Sized> {
    stream: &'a mut S,
    buf: Vec<u8>,
    stage: Stage,
}

impl<S: AsyncRead + AsyncWrite + Unpin + ?Sized> Reader<'_, S> {
    /// Reads until `parse` completes a message, then removes it from the buffer.
    async fn next<T>(
        &mut self,
        parse: impl Fn(&[u8]) -> Parsed<T>,
    ) -> std::result::Result<T, Refusal> {
        loop {
            if let Some((msg, used)) = parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(msg);
            }
            let mut chunk = [0u8; READ_CHUNK];
            let n = match self.stream.read(&mut chunk).await {
                Ok(n) => n,
                Err(e) => {
                    let e = Error::from_io("recv", e);
                    return Err(Refusal::new(
                        Malformed::Truncated,
                        format!("handshake: {e}"),
                        Vec::new(),
                    ));
                }
            };
            if n == 0 {
                return Err(self.stage.refusal(Malformed::Truncated, self.buf.len()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::result::Result<(), Refusal> {
        let sent = self.stream.write_all(bytes).await;
        let sent = match sent {
            Ok(()) => self.stream.flush().await,
            e => e,
        };
        sent.map_err(|e| {
            let e = Error::from_io("send", e);
            Refusal::new(Malformed::Truncated, format!("handshake: {e}"), Vec::new())
        })
    }
}

/// Reads a client's handshake and answers it up to the point of connecting: the request,
/// or a refusal that has already been answered.
///
/// SOCKS5: the greeting (username/password is chosen when `cfg.users` is not empty, else
/// no authentication), the RFC 1929 exchange, the request (`CONNECT`, `BIND`, and
/// `UDP ASSOCIATE` when enabled; others are refused with reply 7). SOCKS4/4a: the request
/// (`CONNECT` or `BIND`; refused when credentials are required, as SOCKS4 carries no
/// password).
/// HTTP: the request head, `Proxy-Authorization: Basic` checked (407 with a challenge
/// otherwise), `CONNECT` or a request with an absolute `http://` URI.
///
/// # Errors
/// A [`Refusal`] (its reply already sent, best effort within 1 s) for every malformed or
/// refused case of the [module docs](super), for a handshake that did not complete
/// within `cfg.handshake_timeout` ([`Malformed::Timeout`]), and for a client that closed
/// or reset the connection halfway ([`Malformed::Truncated`]).
pub async fn accept_request<S>(
    stream: &mut S,
    cfg: &ServerConfig,
) -> std::result::Result<Request, Refusal>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut reader = Reader {
        stream,
        buf: Vec::new(),
        stage: Stage::First,
    };
    let outcome = tokio::time::timeout(cfg.handshake_timeout, handshake(&mut reader, cfg)).await;
    let mut refusal = match outcome {
        Ok(Ok(request)) => return Ok(request),
        Ok(Err(r)) => r,
        Err(_) => reader.stage.refusal(Malformed::Timeout, reader.buf.len()),
    };
    refusal.protocol = reader.stage.protocol();
    if !refusal.reply.is_empty() {
        let _ = tokio::time::timeout(REPLY_TIMEOUT, reader.send(&refusal.reply)).await;
    }
    Err(refusal)
}

async fn handshake<S>(
    r: &mut Reader<'_, S>,
    cfg: &ServerConfig,
) -> std::result::Result<Request, Refusal>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let first = r.next(|b| Ok(b.first().map(|&f| (f, 0)))).await?;
    let protocol = Protocol::detect(first).ok_or_else(|| {
        Refusal::new(
            Malformed::UnknownProtocol,
            format!("first byte {first:#04x} starts no SOCKS4, SOCKS5 or HTTP request"),
            Vec::new(),
        )
    })?;
    let (command, target, user) = match protocol {
        Protocol::Socks5 => socks5_handshake(r, cfg).await?,
        Protocol::Socks4 => {
            r.stage = Stage::Socks4Request;
            let req = r.next(socks4::parse_request).await?;
            let command = match req.command {
                socks4::CMD_CONNECT => Command::Connect,
                socks4::CMD_BIND => Command::Bind,
                c => {
                    return Err(socks4::refuse_request(
                        Malformed::Unsupported,
                        format!("SOCKS4 command {c} is not served"),
                    ));
                }
            };
            if cfg.auth_required() {
                return Err(socks4::refuse_request(
                    Malformed::AuthFailed,
                    "SOCKS4 carries no password: this proxy requires SOCKS5 or HTTP with \
                     credentials",
                ));
            }
            let user = (!req.user_id.is_empty())
                .then(|| String::from_utf8_lossy(&req.user_id).into_owned());
            (command, req.target, user)
        }
        Protocol::Http => {
            r.stage = Stage::HttpHead;
            let limits = cfg.http_limits;
            let req = r.next(|b| http::parse_request(b, &limits)).await?;
            let user = match (&req.login, cfg.auth_required()) {
                (_, false) => req.login.as_ref().map(Login::user),
                (Some(l), true) if cfg.check(l) => Some(l.user()),
                (login, true) => return Err(http::refuse_auth(login.as_ref())),
            };
            let command = match req.forward_head {
                None => Command::Connect,
                Some(head) => Command::HttpForward {
                    head,
                    body: req.body,
                },
            };
            (command, req.target, user)
        }
    };
    Ok(Request {
        protocol,
        command,
        target,
        user,
        leftover: std::mem::take(&mut r.buf),
    })
}

async fn socks5_handshake<S>(
    r: &mut Reader<'_, S>,
    cfg: &ServerConfig,
) -> std::result::Result<(Command, TargetAddr, Option<String>), Refusal>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    r.stage = Stage::Socks5Greeting;
    let methods = r.next(socks5::parse_greeting).await?;
    let method = socks5::choose_method(&methods, cfg.auth_required());
    if method == socks5::METHOD_NO_ACCEPTABLE {
        return Err(socks5::refuse_methods(&methods, cfg.auth_required()));
    }
    r.send(&socks5::method_selection(method)).await?;
    let mut user = None;
    if method == socks5::METHOD_USERPASS {
        r.stage = Stage::Socks5Auth;
        let login = r.next(socks5::parse_auth_request).await?;
        if !cfg.check(&login) {
            return Err(socks5::refuse_auth(&login.username));
        }
        r.send(&socks5::auth_status(true)).await?;
        user = Some(login.user());
    }
    r.stage = Stage::Socks5Request;
    let req = r.next(socks5::parse_request).await?;
    let unsupported = |what: &str| {
        Refusal::new(
            Malformed::Unsupported,
            format!("SOCKS5 {what} is not served"),
            socks5::reply(
                socks5::REP_COMMAND_NOT_SUPPORTED,
                &TargetAddr::Ip(SocketAddr::from(([0, 0, 0, 0], 0))),
            ),
        )
    };
    let command = match req.command {
        socks5::CMD_CONNECT => Command::Connect,
        socks5::CMD_UDP_ASSOCIATE if cfg.udp_associate => Command::UdpAssociate,
        socks5::CMD_UDP_ASSOCIATE => return Err(unsupported("UDP ASSOCIATE")),
        socks5::CMD_BIND => Command::Bind,
        c => return Err(unsupported(&format!("command {c}"))),
    };
    Ok((command, req.target, user))
}

/// Why a target could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// Every address the target resolved to is denied by the destination policy.
    Denied {
        /// The target as requested.
        target: TargetAddr,
        /// Its denied addresses.
        addresses: Vec<SocketAddr>,
    },
    /// The lookup or the connect failed.
    Failed(Error),
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Denied { target, addresses } => {
                let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
                if matches!(target, TargetAddr::Ip(_)) {
                    write!(f, "destination {target} is denied")
                } else {
                    write!(f, "destination {target} ({}) is denied", list.join(", "))
                }
            }
            TargetError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl TargetError {
    /// The error for events: [`ErrorKind::Proxy`] `destination … is denied`, or the
    /// lookup's or connect's own error.
    pub fn to_error(&self) -> Error {
        match self {
            TargetError::Denied { .. } => {
                Error::new(ErrorKind::Proxy, "proxy", None, self.to_string())
            }
            TargetError::Failed(e) => e.clone(),
        }
    }
}

/// Resolves `target` (one `getaddrinfo(3)` call on tokio's blocking pool, `family` as
/// `-4`/`-6` say), keeps the addresses `policy` permits, and connects to them with
/// Happy Eyeballs within `timeout`.
///
/// Returns the stream and the address that answered.
///
/// # Errors
/// [`TargetError::Denied`] when every address is denied; [`TargetError::Failed`] with
/// [`ErrorKind::Gai`] for a failed lookup, [`ErrorKind::Timeout`] or
/// [`ErrorKind::Os`] for a failed connect.
pub async fn connect_target(
    target: &TargetAddr,
    policy: &DestPolicy,
    family: Option<Family>,
    timeout: Option<Duration>,
) -> std::result::Result<(TcpStream, SocketAddr), TargetError> {
    let addrs = resolve(target, family, timeout)
        .await
        .map_err(TargetError::Failed)?;
    let (allowed, denied): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| policy.permits(*a));
    if allowed.is_empty() {
        return Err(TargetError::Denied {
            target: target.clone(),
            addresses: denied,
        });
    }
    let opts = ConnectOptions {
        timeout,
        ..ConnectOptions::default()
    };
    let c = connect_happy_addrs(happy_order(allowed), &opts)
        .await
        .map_err(TargetError::Failed)?;
    Ok((c.stream, c.peer))
}

/// The addresses of a target: itself, or a name's answers (one `getaddrinfo(3)` call).
///
/// # Errors
/// [`ErrorKind::Gai`] for a failed lookup, [`ErrorKind::Timeout`] when `timeout`
/// expires first.
pub async fn resolve(
    target: &TargetAddr,
    family: Option<Family>,
    timeout: Option<Duration>,
) -> Result<Vec<SocketAddr>> {
    let (name, port) = match target {
        TargetAddr::Ip(a) => return Ok(vec![*a]),
        TargetAddr::Domain(n, p) => (n.clone(), *p),
    };
    let lookup = tokio::task::spawn_blocking(move || {
        let opts = ConnectOptions {
            family,
            ..ConnectOptions::default()
        };
        crate::client::resolve(&name, &Port::Number(port), SockType::Stream, &opts)
    });
    let joined = match timeout {
        Some(t) => tokio::time::timeout(t, lookup)
            .await
            .map_err(|_| Error::timeout("getaddrinfo"))?,
        None => lookup.await,
    };
    joined.map_err(|e| Error::new(ErrorKind::Os, "getaddrinfo", None, e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    fn cfg() -> ServerConfig {
        ServerConfig {
            handshake_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        }
    }

    fn with_users() -> ServerConfig {
        ServerConfig {
            users: vec![Credentials::parse("u:p").unwrap()],
            ..cfg()
        }
    }

    /// Runs `accept_request` with `input` written by a client that then keeps the
    /// connection open (or closes its side when `close`); returns the result and every
    /// byte the server sent.
    async fn serve(
        cfg: &ServerConfig,
        input: &[u8],
        close: bool,
    ) -> (std::result::Result<Request, Refusal>, Vec<u8>) {
        let (mut client, mut server) = duplex(64 * 1024);
        client.write_all(input).await.unwrap();
        if close {
            client.shutdown().await.unwrap();
        }
        let result = accept_request(&mut server, cfg).await;
        drop(server);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        (result, out)
    }

    #[tokio::test]
    async fn socks5_connect_with_and_without_auth() {
        let req = socks5::request(1, &TargetAddr::domain("example.org", 443).unwrap()).unwrap();
        let input = [&[5, 1, 0][..], &req, b"early"].concat();
        let (r, out) = serve(&cfg(), &input, false).await;
        let r = r.unwrap();
        assert_eq!(
            (r.protocol, &r.command),
            (Protocol::Socks5, &Command::Connect)
        );
        assert_eq!(r.target.to_string(), "example.org:443");
        assert_eq!(r.leftover, b"early");
        assert_eq!(out, [5, 0]);
        let auth = socks5::auth_request(&Credentials::parse("u:p").unwrap()).unwrap();
        let input = [&[5, 2, 0, 2][..], &auth, &req].concat();
        let (r, out) = serve(&with_users(), &input, false).await;
        assert_eq!(r.unwrap().user.as_deref(), Some("u"));
        assert_eq!(out, [5, 2, 1, 0]);
        assert_eq!(socks5_reply("10.0.0.1:5")[..2], [5, 0]);
    }

    fn socks5_reply(bound: &str) -> Vec<u8> {
        let req = Request {
            protocol: Protocol::Socks5,
            command: Command::Connect,
            target: TargetAddr::domain("a", 1).unwrap(),
            user: None,
            leftover: vec![],
        };
        req.success_reply(bound.parse().unwrap())
    }

    #[tokio::test]
    async fn every_malformed_case_gets_its_reply() {
        let v4_req = [5, 1, 0, 1, 127, 0, 0, 1, 0, 80];
        let wrong = socks5::auth_request(&Credentials::parse("u:x").unwrap()).unwrap();
        let flood = {
            let mut h = b"CONNECT a:1 HTTP/1.1\r\n".to_vec();
            for i in 0..100 {
                h.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
            }
            h
        };
        // (case, config, client bytes, client closes after them, reason, server's bytes)
        type Case = (
            &'static str,
            ServerConfig,
            Vec<u8>,
            bool,
            Malformed,
            Vec<u8>,
        );
        let cases: Vec<Case> = vec![
            (
                "bad version (request)",
                cfg(),
                [&[5, 1, 0][..], &[4, 1, 0, 1]].concat(),
                false,
                Malformed::BadVersion,
                [&[5, 0][..], &[5, 1, 0, 1, 0, 0, 0, 0, 0, 0]].concat(),
            ),
            (
                "unknown first byte",
                cfg(),
                vec![0x16, 3, 1],
                false,
                Malformed::UnknownProtocol,
                vec![],
            ),
            (
                "truncated greeting, then close",
                cfg(),
                vec![5, 2, 0],
                true,
                Malformed::Truncated,
                vec![5, 0xFF],
            ),
            (
                "truncated greeting, then silence",
                cfg(),
                vec![5, 2, 0],
                false,
                Malformed::Timeout,
                vec![5, 0xFF],
            ),
            (
                "zero methods",
                cfg(),
                vec![5, 0],
                false,
                Malformed::NoMethods,
                vec![5, 0xFF],
            ),
            (
                "no acceptable method",
                with_users(),
                vec![5, 1, 0],
                false,
                Malformed::NoAcceptableMethod,
                vec![5, 0xFF],
            ),
            (
                "wrong credentials",
                with_users(),
                [&[5, 1, 2][..], &wrong].concat(),
                false,
                Malformed::AuthFailed,
                vec![5, 2, 1, 1],
            ),
            (
                "unknown address type",
                cfg(),
                [&[5, 1, 0][..], &[5, 1, 0, 9]].concat(),
                false,
                Malformed::BadAddressType,
                [&[5, 0][..], &[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]].concat(),
            ),
            (
                "zero-length domain",
                cfg(),
                [&[5, 1, 0][..], &[5, 1, 0, 3, 0, 0, 80]].concat(),
                false,
                Malformed::EmptyDomain,
                [&[5, 0][..], &[5, 1, 0, 1, 0, 0, 0, 0, 0, 0]].concat(),
            ),
            (
                "request stops halfway",
                cfg(),
                [&[5, 1, 0][..], &v4_req[..6]].concat(),
                false,
                Malformed::Timeout,
                [&[5, 0][..], &[5, 1, 0, 1, 0, 0, 0, 0, 0, 0]].concat(),
            ),
            (
                "unknown command",
                cfg(),
                [&[5, 1, 0][..], &[5, 9, 0, 1, 127, 0, 0, 1, 0, 80]].concat(),
                false,
                Malformed::Unsupported,
                [&[5, 0][..], &[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]].concat(),
            ),
            (
                "SOCKS4 when auth is required",
                with_users(),
                vec![4, 1, 0, 80, 127, 0, 0, 1, 0],
                false,
                Malformed::AuthFailed,
                vec![0, 91, 0, 0, 0, 0, 0, 0],
            ),
            (
                "SOCKS4 halfway",
                cfg(),
                vec![4, 1, 0, 80, 127],
                false,
                Malformed::Timeout,
                vec![0, 91, 0, 0, 0, 0, 0, 0],
            ),
        ];
        for (name, cfg, input, close, reason, reply) in cases {
            let (r, out) = serve(&cfg, &input, close).await;
            let refusal = r.expect_err(name);
            assert_eq!(refusal.reason, reason, "{name}: {refusal}");
            assert_eq!(out, reply, "{name}");
        }
        let http_cases: Vec<(&str, ServerConfig, Vec<u8>, Malformed, &str)> = vec![
            (
                "CONNECT without a port",
                cfg(),
                b"CONNECT a HTTP/1.1\r\n\r\n".to_vec(),
                Malformed::NoPort,
                "HTTP/1.1 400 ",
            ),
            (
                "header flood",
                cfg(),
                flood,
                Malformed::HeaderFlood,
                "HTTP/1.1 431 ",
            ),
            (
                "no credentials",
                with_users(),
                b"CONNECT a:1 HTTP/1.1\r\n\r\n".to_vec(),
                Malformed::AuthFailed,
                "HTTP/1.1 407 ",
            ),
            (
                "wrong credentials",
                with_users(),
                b"CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic dTp4\r\n\r\n".to_vec(),
                Malformed::AuthFailed,
                "HTTP/1.1 407 ",
            ),
            (
                "head stops halfway",
                cfg(),
                b"CONNECT a:1 HTTP/1.1\r\nHost: a".to_vec(),
                Malformed::Timeout,
                "HTTP/1.1 408 ",
            ),
        ];
        for (name, cfg, input, reason, status) in http_cases {
            let (r, out) = serve(&cfg, &input, false).await;
            let refusal = r.expect_err(name);
            assert_eq!(refusal.reason, reason, "{name}: {refusal}");
            let out = String::from_utf8(out).unwrap();
            assert!(out.starts_with(status), "{name}: {out}");
        }
    }

    #[tokio::test]
    async fn http_auth_and_plain_requests() {
        let ok = b"GET http://127.0.0.1:8/x HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\n\r\n";
        let (r, out) = serve(&with_users(), ok, false).await;
        let r = r.unwrap();
        assert!(out.is_empty());
        assert_eq!(r.user.as_deref(), Some("u"));
        let Command::HttpForward { head, .. } = &r.command else {
            panic!("{r:?}")
        };
        assert!(head.starts_with(b"GET /x HTTP/1.1\r\n"));
        assert!(r.success_reply("1.2.3.4:5".parse().unwrap()).is_empty());
    }

    #[tokio::test]
    async fn socks4a_and_udp_associate() {
        let req = socks4::request(1, &TargetAddr::domain("host.test", 22).unwrap(), b"me").unwrap();
        let (r, _) = serve(&cfg(), &req, false).await;
        let r = r.unwrap();
        assert_eq!(
            (r.protocol, r.user.as_deref()),
            (Protocol::Socks4, Some("me"))
        );
        assert_eq!(
            r.success_reply("1.2.3.4:5".parse().unwrap()),
            [0, 90, 0, 5, 1, 2, 3, 4]
        );
        let udp = [&[5, 1, 0][..], &[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]].concat();
        let (r, _) = serve(&cfg(), &udp, false).await;
        assert_eq!(r.unwrap().command, Command::UdpAssociate);
        let off = ServerConfig {
            udp_associate: false,
            ..cfg()
        };
        let (r, out) = serve(&off, &udp, false).await;
        assert_eq!(r.unwrap_err().reason, Malformed::Unsupported);
        assert_eq!(out[2..4], [5, 7]);
    }

    #[tokio::test]
    async fn bind_is_accepted_in_both_socks_versions() {
        let v5 = [&[5, 1, 0][..], &[5, 2, 0, 1, 127, 0, 0, 2, 0, 0]].concat();
        let (r, out) = serve(&cfg(), &v5, false).await;
        let r = r.unwrap();
        assert_eq!((r.protocol, &r.command), (Protocol::Socks5, &Command::Bind));
        assert_eq!(
            (r.target.to_string().as_str(), &out[..]),
            ("127.0.0.2:0", &[5, 0][..])
        );
        let v4 = [4, 2, 0, 0, 127, 0, 0, 2, 0];
        let (r, out) = serve(&cfg(), &v4, false).await;
        let r = r.unwrap();
        assert_eq!((r.protocol, &r.command), (Protocol::Socks4, &Command::Bind));
        assert!(out.is_empty());
        assert_eq!(r.command.as_str(), "bind");
    }

    #[tokio::test]
    async fn targets_are_checked_after_resolving() {
        let deny = DestPolicy::parse(&[] as &[&str], &["127.0.0.0/8"]).unwrap();
        // `localhost` resolves from /etc/hosts: the name does not get past the policy.
        let t = TargetAddr::domain("localhost", 9).unwrap();
        let e = connect_target(&t, &deny, Some(Family::Inet), Some(Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, TargetError::Denied { addresses, .. } if addresses.len() == 1),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "destination localhost:9 (127.0.0.1:9) is denied"
        );
        assert_eq!(e.to_error().kind(), ErrorKind::Proxy);
        let req = Request {
            protocol: Protocol::Http,
            command: Command::Connect,
            target: t,
            user: None,
            leftover: vec![],
        };
        assert!(
            req.failure_reply(&e)
                .starts_with(b"HTTP/1.1 403 Forbidden\r\n")
        );
        let refused = TargetError::Failed(Error::from_errno("connect", libc::ECONNREFUSED));
        assert!(req.failure_reply(&refused).starts_with(b"HTTP/1.1 502 "));
        let socks = Request {
            protocol: Protocol::Socks5,
            ..req
        };
        assert_eq!(socks.failure_reply(&refused)[1], 5);
        assert_eq!(socks.failure_reply(&e)[1], 2);
    }
}
