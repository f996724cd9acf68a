//! Reaching a target through a proxy: ncat's `--proxy HOST:PORT --proxy-type
//! socks4|socks5|http --proxy-auth USER:PASS --proxy-dns local|remote|both|none`.
//!
//! Three layers, each usable alone:
//! - [`Handshake`]: the client's side of one handshake as a sans-IO state machine. It
//!   says what to send ([`Step::Send`]) and how many bytes to read next ([`Step::Recv`]),
//!   never more than the proxy's reply has left, so the bytes after the reply (a server
//!   that speaks first, such as SSH or SMTP) stay in the socket for the caller.
//! - Drivers: [`handshake`] over any tokio `AsyncRead + AsyncWrite` stream, bounded by a
//!   timeout, and [`handshake_blocking`] over any `std::io::Read + Write` stream (a
//!   [`Socket`](crate::Socket) or `TcpStream` with its timeouts set).
//! - [`connect`]: where the target's name is resolved ([`ProxyDns`]), the connect to the
//!   proxy ([`crate::client::connect_happy`]) and the handshake, under one deadline.
//!
//! Contracts:
//! - Bounded in bytes: SOCKS replies have a fixed or length-prefixed size (at most 262
//!   bytes); an HTTP response head is read up to [`http::MAX_RESPONSE_HEAD`](crate::proxy::http::MAX_RESPONSE_HEAD).
//! - Bounded in time: the async driver by its timeout ([`connect`]: the smaller of
//!   [`Proxy::handshake_timeout`] and what is left of the connect timeout); the blocking
//!   one by the stream's timeouts.
//! - A refusal is [`ErrorKind::Proxy`] (exit code 8) with the
//!   proxy's reply in the message and its code in [`Error::code`]:
//!   `proxy: SOCKS5 reply 5: connection refused by destination`,
//!   `proxy: SOCKS4 reply 91: request rejected or failed`,
//!   `proxy: HTTP CONNECT 407 Proxy Authentication Required`. A reply that breaks its
//!   protocol is [`ErrorKind::Protocol`]; the proxy closing the
//!   connection mid-handshake is `Proxy`; a timeout is
//!   [`ErrorKind::Timeout`] (`proxy handshake: timed out`).
//!
//! ```no_run
//! use sockit::proxy::client::{connect, Proxy, ProxyType};
//! use sockit::client::ConnectOptions;
//!
//! # async fn demo() -> sockit::Result<()> {
//! let proxy = Proxy::new(ProxyType::Socks5, "127.0.0.1", 1080);
//! let c = connect(&proxy, "example.org", &80.into(), &ConnectOptions::default()).await?;
//! println!("through {} to {}: {}", c.proxy_peer, c.target, c.established.reply);
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Credentials, TargetAddr};
use crate::addr::{Family, Port, SockType};
use crate::client::{ConnectOptions, connect_happy};
use crate::error::{Error, ErrorKind, Result};

mod handshake;

pub use handshake::{Established, Handshake, Step, handshake, handshake_blocking};

/// How long a handshake may take when nothing shorter is asked for (30 s): it includes
/// the proxy's own connect to the target.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Which protocol to speak to the proxy (ncat's `--proxy-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProxyType {
    /// SOCKS4; a name goes as SOCKS4a unless resolved locally.
    Socks4,
    /// SOCKS5 (RFC 1928), with username/password (RFC 1929).
    Socks5,
    /// HTTP `CONNECT`, with `Basic` authentication: ncat's default.
    #[default]
    Http,
}

impl ProxyType {
    /// `socks4`, `socks5` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyType::Socks4 => "socks4",
            ProxyType::Socks5 => "socks5",
            ProxyType::Http => "http",
        }
    }

    /// The port a proxy of this type listens on when none is given, as ncat assumes:
    /// 1080 for SOCKS, 3128 for HTTP.
    pub fn default_port(self) -> u16 {
        match self {
            ProxyType::Socks4 | ProxyType::Socks5 => 1080,
            ProxyType::Http => 3128,
        }
    }

    /// The name in messages: `SOCKS4`, `SOCKS5`, `HTTP CONNECT`.
    fn label(self) -> &'static str {
        match self {
            ProxyType::Socks4 => "SOCKS4",
            ProxyType::Socks5 => "SOCKS5",
            ProxyType::Http => "HTTP CONNECT",
        }
    }
}

impl FromStr for ProxyType {
    type Err = Error;

    /// Parses `socks4`, `socks5` or `http` (any case; `socks4a` is taken as `socks4`,
    /// which sends names as SOCKS4a anyway).
    fn from_str(text: &str) -> Result<ProxyType> {
        match text.to_ascii_lowercase().as_str() {
            "socks4" | "socks4a" => Ok(ProxyType::Socks4),
            "socks5" => Ok(ProxyType::Socks5),
            "http" => Ok(ProxyType::Http),
            _ => Err(Error::invalid_input(
                "proxy type",
                format!("{text:?} is not socks4, socks5 or http"),
            )),
        }
    }
}

impl fmt::Display for ProxyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the target's host name is resolved (ncat's `--proxy-dns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProxyDns {
    /// Here, with `getaddrinfo(3)`; a name that does not resolve is an error.
    Local,
    /// By the proxy: the name is sent to it and never looked up here (ncat's default).
    #[default]
    Remote,
    /// Here first; a name that does not resolve here is sent to the proxy.
    Both,
    /// Nowhere: the target must be a numeric IPv4 or IPv6 address.
    None,
}

impl ProxyDns {
    /// `local`, `remote`, `both` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyDns::Local => "local",
            ProxyDns::Remote => "remote",
            ProxyDns::Both => "both",
            ProxyDns::None => "none",
        }
    }
}

impl FromStr for ProxyDns {
    type Err = Error;

    /// Parses `local`, `remote`, `both` or `none`.
    fn from_str(text: &str) -> Result<ProxyDns> {
        match text.to_ascii_lowercase().as_str() {
            "local" => Ok(ProxyDns::Local),
            "remote" => Ok(ProxyDns::Remote),
            "both" => Ok(ProxyDns::Both),
            "none" => Ok(ProxyDns::None),
            _ => Err(Error::invalid_input(
                "proxy dns",
                format!("{text:?} is not local, remote, both or none"),
            )),
        }
    }
}

impl fmt::Display for ProxyDns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A proxy to go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The protocol.
    pub kind: ProxyType,
    /// The proxy's host: a name or an address (looked up as any peer is, `-4`/`-6`/`-n`).
    pub host: String,
    /// The proxy's port.
    pub port: Port,
    /// Credentials (`--proxy-auth`): SOCKS5 username/password, HTTP Basic, SOCKS4's user
    /// id (the username alone).
    pub auth: Option<Credentials>,
    /// Where the target's name is resolved.
    pub dns: ProxyDns,
    /// The longest a handshake may take ([`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Duration,
}

impl Proxy {
    /// A proxy of `kind` at `host` `port`, without credentials, with remote DNS and the
    /// default handshake timeout.
    pub fn new(kind: ProxyType, host: impl Into<String>, port: impl Into<Port>) -> Proxy {
        Proxy {
            kind,
            host: host.into(),
            port: port.into(),
            auth: None,
            dns: ProxyDns::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

impl Proxy {
    /// Parses curl's `-x` proxy URL: `[SCHEME://][USER[:PASS]@]HOST[:PORT][/]`.
    ///
    /// Schemes, as curl reads them: `http` (the default; `CONNECT`), `socks4` (names
    /// resolved here, IPv4), `socks4a` (names sent to the proxy), `socks5` (names resolved
    /// here), `socks5h` (names sent to the proxy). The port defaults to 1080, as in curl;
    /// an IPv6 address goes in brackets. User and password are percent-decoded.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for another scheme
    /// (`https` proxies are not supported), an empty host, a bad port, or credentials
    /// [`Credentials::parse`] refuses.
    ///
    /// # Examples
    /// ```
    /// use sockit::proxy::client::{Proxy, ProxyDns, ProxyType};
    /// let p = Proxy::parse_url("socks5h://me:p%40ss@[::1]:9050").unwrap();
    /// assert_eq!((p.kind, p.dns, p.host.as_str()), (ProxyType::Socks5, ProxyDns::Remote, "::1"));
    /// assert_eq!(p.auth.unwrap().password, "p@ss");
    /// let p = Proxy::parse_url("127.0.0.1").unwrap();
    /// assert_eq!((p.kind, p.port), (ProxyType::Http, 1080.into()));
    /// ```
    pub fn parse_url(text: &str) -> Result<Proxy> {
        let bad = |m: &str| Error::invalid_input("proxy", format!("{m} in proxy URL {text:?}"));
        let (scheme, rest) = match text.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => ("http".to_string(), text),
        };
        let (kind, dns) = match scheme.as_str() {
            "http" => (ProxyType::Http, ProxyDns::Remote),
            "socks4" => (ProxyType::Socks4, ProxyDns::Local),
            "socks4a" => (ProxyType::Socks4, ProxyDns::Remote),
            "socks5" => (ProxyType::Socks5, ProxyDns::Local),
            "socks5h" => (ProxyType::Socks5, ProxyDns::Remote),
            "https" => return Err(bad("https proxies are not supported")),
            _ => {
                return Err(bad(
                    "unknown scheme (http, socks4, socks4a, socks5, socks5h)",
                ));
            }
        };
        let authority = rest.split('/').next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = match port {
            None | Some("") => 1080,
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
        };
        let mut proxy = Proxy::new(kind, host, port);
        proxy.dns = dns;
        if let Some(u) = userinfo {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            proxy.auth = Some(Credentials::new(
                &percent_decode(user),
                &percent_decode(pass),
            )?);
        }
        Ok(proxy)
    }
}

/// `%XX` sequences decoded (invalid ones kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(Some(h)), Some(Some(l))) = (
                bytes.get(i + 1).map(|b| hex(*b)),
                bytes.get(i + 2).map(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Connects a connected blocking TCP stream to `host` `port` through `proxy` (the
/// blocking counterpart of [`connect`]'s last two steps, for [`crate::http`]): the target
/// decided by [`resolve_target`], then [`handshake_blocking`] with the stream's timeouts
/// set to the smaller of what is left before `deadline` and
/// [`Proxy::handshake_timeout`] (and cleared after).
///
/// # Errors
/// As [`resolve_target`], [`Handshake::new`] and [`handshake_blocking`];
/// [`ErrorKind::Timeout`] when `deadline` has passed.
pub fn tunnel_blocking(
    stream: &mut std::net::TcpStream,
    proxy: &Proxy,
    host: &str,
    port: u16,
    family: Option<Family>,
    deadline: Option<std::time::Instant>,
) -> Result<Established> {
    let target = resolve_target(proxy.kind, proxy.dns, host, port, family)?;
    let hs = Handshake::new(proxy.kind, target, proxy.auth.clone())?;
    let limit = match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Error::timeout("proxy handshake"));
            }
            left.min(proxy.handshake_timeout)
        }
        None => proxy.handshake_timeout,
    };
    let set = |s: &std::net::TcpStream, t| {
        s.set_read_timeout(t)
            .and_then(|()| s.set_write_timeout(t))
            .map_err(|e| Error::from_io("setsockopt", e))
    };
    set(stream, Some(limit))?;
    let done = handshake_blocking(stream, hs)?;
    set(stream, None)?;
    Ok(done)
}

/// Decides what to ask the proxy for, by [`ProxyDns`]: an address literal as itself; a
/// name sent as is (`remote`), resolved here (`local`; only IPv4 for SOCKS4, else
/// `family`), resolved here when it can be and sent as is otherwise (`both`), or refused
/// (`none`). Local lookups are one `getaddrinfo(3)` call, and the first answer is used.
///
/// # Errors
/// - [`ErrorKind::Gai`] when a `local` lookup fails.
/// - [`ErrorKind::InvalidInput`] for a name with `none`,
///   or a name [`TargetAddr::domain`] refuses.
pub fn resolve_target(
    kind: ProxyType,
    dns: ProxyDns,
    host: &str,
    port: u16,
    family: Option<Family>,
) -> Result<TargetAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(TargetAddr::Ip(SocketAddr::new(ip, port)));
    }
    match dns {
        ProxyDns::None => Err(Error::invalid_input(
            "proxy",
            format!("--proxy-dns none: the target must be a numeric address, not {host:?}"),
        )),
        ProxyDns::Remote => TargetAddr::domain(host, port),
        ProxyDns::Local | ProxyDns::Both => {
            let family = if kind == ProxyType::Socks4 {
                Some(Family::Inet)
            } else {
                family
            };
            let opts = ConnectOptions {
                family,
                ..ConnectOptions::default()
            };
            match crate::client::resolve(host, &Port::Number(port), SockType::Stream, &opts) {
                Ok(addrs) => Ok(TargetAddr::Ip(addrs[0])),
                Err(e) if dns == ProxyDns::Both && e.kind() == ErrorKind::Gai => {
                    TargetAddr::domain(host, port)
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// A connection through a proxy that [`connect`] made.
#[derive(Debug)]
pub struct Connected {
    /// The stream: connected to the proxy, which now relays it to the target.
    pub stream: TcpStream,
    /// The proxy's address that answered.
    pub proxy_peer: SocketAddr,
    /// What the proxy was asked for (a name, or the address resolved here).
    pub target: TargetAddr,
    /// The proxy's answer.
    pub established: Established,
}

impl Connected {
    /// The event's words for this hop: what the proxy was asked for, its type and its
    /// reply ([`Via`](crate::serve::Via)).
    pub fn via(&self) -> crate::serve::Via {
        crate::serve::Via {
            target_host: self.target.host(),
            target_port: self.target.port(),
            proxy_type: self.established.kind.as_str(),
            proxy_reply: self.established.reply.clone(),
        }
    }
}

/// A port's number: itself, or a service name looked up in the services database
/// (`getservbyname(name, "tcp")`): a proxy is always sent a number.
///
/// # Errors
/// [`ErrorKind::Os`] when the service name is unknown (as Python's `getservbyname`).
pub fn port_number(port: &Port) -> Result<u16> {
    match port {
        Port::Number(n) => Ok(*n),
        Port::Service(name) => crate::resolve::getservbyname(name, Some("tcp")),
    }
}

/// Connects to `host` `port` through `proxy`.
///
/// The target is first resolved as [`resolve_target`] says (on tokio's blocking pool; a
/// service name for the port by [`port_number`]), then
/// the proxy is reached with [`connect_happy`] under `opts` (`-4`/`-6`, `-n`, `-s`/`-p`
/// apply to the proxy's address), then the handshake runs. `opts.timeout` is one deadline
/// for all three; the handshake alone is also bounded by [`Proxy::handshake_timeout`].
///
/// # Errors
/// - Those of [`resolve_target`] and [`Handshake::new`].
/// - Those of [`connect_happy`] for the proxy, with the operation `proxy connect`
///   (`proxy connect: [Errno 111] Connection refused`).
/// - Those of [`handshake`].
pub async fn connect(
    proxy: &Proxy,
    host: &str,
    port: &Port,
    opts: &ConnectOptions,
) -> Result<Connected> {
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let target = {
        let (kind, dns, family) = (proxy.kind, proxy.dns, opts.family);
        let (host, port) = (host.to_string(), port.clone());
        let lookup = tokio::task::spawn_blocking(move || {
            let port = port_number(&port)?;
            resolve_target(kind, dns, &host, port, family)
        });
        let joined = match left() {
            Some(t) => tokio::time::timeout(t, lookup)
                .await
                .map_err(|_| Error::timeout("connect"))?,
            None => lookup.await,
        };
        joined.map_err(|e| Error::new(ErrorKind::Os, "getaddrinfo", None, e.to_string()))??
    };
    let hs = Handshake::new(proxy.kind, target.clone(), proxy.auth.clone())?;
    let proxy_opts = ConnectOptions {
        timeout: left(),
        ..opts.clone()
    };
    let c = connect_happy(&proxy.host, &proxy.port, &proxy_opts)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::Os | ErrorKind::Timeout => e.with_op("proxy connect"),
            _ => e,
        })?;
    let mut stream = c.stream;
    let limit = match left() {
        Some(t) => t.min(proxy.handshake_timeout),
        None => proxy.handshake_timeout,
    };
    let established = handshake(&mut stream, hs, Some(limit)).await?;
    Ok(Connected {
        stream,
        proxy_peer: c.peer,
        target,
        established,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{socks4, socks5};

    fn t(s: &str) -> TargetAddr {
        TargetAddr::domain(
            s.rsplit_once(':').unwrap().0,
            s.rsplit_once(':').unwrap().1.parse().unwrap(),
        )
        .unwrap()
    }

    /// Drives `hs` against a scripted proxy: `script` is what the proxy answers to each
    /// Send, in order. Returns everything sent and the outcome.
    fn run(mut hs: Handshake, script: &[&[u8]]) -> (Vec<Vec<u8>>, Result<Established>) {
        let mut sent = Vec::new();
        let mut answers = script.iter();
        let mut pending: Vec<u8> = Vec::new();
        for _ in 0..1000 {
            let step = match hs.step() {
                Ok(s) => s,
                Err(e) => return (sent, Err(e)),
            };
            match step {
                Step::Send(b) => {
                    sent.push(b);
                    pending.extend_from_slice(answers.next().copied().unwrap_or(b""));
                }
                Step::Recv(n) => {
                    let take = n.min(pending.len());
                    let chunk: Vec<u8> = pending.drain(..take).collect();
                    if let Err(e) = hs.feed(&chunk) {
                        return (sent, Err(e));
                    }
                }
                Step::Done(d) => {
                    assert!(pending.is_empty(), "read past the reply: {pending:?} left");
                    return (sent, Ok(d));
                }
            }
        }
        panic!("handshake did not end");
    }

    #[test]
    fn socks5_with_auth_and_domain() {
        let creds = Credentials::parse("u:p").unwrap();
        let hs = Handshake::new(ProxyType::Socks5, t("example.org:80"), Some(creds)).unwrap();
        let reply = socks5::reply(0, &t("10.0.0.1:1234"));
        let (sent, r) = run(hs, &[&[5, 2], &[1, 0], &reply]);
        assert_eq!(sent[0], [5, 2, 0, 2]);
        assert_eq!(sent[1], [1, 1, b'u', 1, b'p']);
        assert_eq!(sent[2][..5], [5, 1, 0, 3, 11]);
        let done = r.unwrap();
        assert_eq!(done.bound, Some(t("10.0.0.1:1234")));
        assert_eq!(done.reply, "SOCKS5 reply 0: succeeded");
    }

    #[test]
    fn socks5_refusals() {
        let target = t("127.0.0.1:9");
        let hs = || Handshake::new(ProxyType::Socks5, target.clone(), None).unwrap();
        let e = run(hs(), &[&[5, 0], &socks5::reply(5, &target)])
            .1
            .unwrap_err();
        assert_eq!((e.kind(), e.code()), (ErrorKind::Proxy, Some(5)));
        assert_eq!(
            e.to_string(),
            "proxy: SOCKS5 reply 5: connection refused by destination"
        );
        // Only two bytes, then close: still the refusal.
        let e = run(hs(), &[&[5, 0], &[5, 2]]).1.unwrap_err();
        assert!(
            e.to_string()
                .contains("reply 2: connection not allowed by ruleset"),
            "{e}"
        );
        let e = run(hs(), &[&[5, 0xFF]]).1.unwrap_err();
        assert!(
            e.to_string().contains("give credentials with --proxy-auth"),
            "{e}"
        );
        let e = run(hs(), &[&[5, 2]]).1.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        let e = run(hs(), &[&[5, 0], &[5, 0, 0, 1, 127]]).1.unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy: the proxy closed the connection during the SOCKS5 handshake after 5 bytes of its reply"
        );
        let e = run(hs(), &[b"HTTP/1.1 400 Bad Request\r\n\r\n"])
            .1
            .unwrap_err();
        assert!(e.to_string().contains("version 72, not 5"), "{e}");
        let with_auth = Handshake::new(
            ProxyType::Socks5,
            target.clone(),
            Some(Credentials::parse("u:bad").unwrap()),
        )
        .unwrap();
        let e = run(with_auth, &[&[5, 2], &[1, 1]]).1.unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy: SOCKS5 authentication failed (status 1): wrong username or password"
        );
        // After a failure, the machine stays failed.
        let mut h = hs();
        h.step().unwrap();
        assert!(h.feed(&[9, 9]).is_err());
        assert!(h.step().is_err());
    }

    #[test]
    fn socks4_and_4a() {
        let hs = Handshake::new(
            ProxyType::Socks4,
            t("127.0.0.1:22"),
            Some(Credentials::parse("joe").unwrap()),
        )
        .unwrap();
        let (sent, r) = run(hs, &[&socks4::reply(90, "0.0.0.0:0".parse().unwrap())]);
        assert_eq!(sent[0], [4, 1, 0, 22, 127, 0, 0, 1, b'j', b'o', b'e', 0]);
        assert_eq!(r.unwrap().reply, "SOCKS4 reply 90: request granted");
        let hs = Handshake::new(ProxyType::Socks4, t("host.test:22"), None).unwrap();
        let (sent, r) = run(hs, &[&[0, 91, 0, 0, 0, 0, 0, 0]]);
        assert!(sent[0].ends_with(b"\0host.test\0"));
        let e = r.unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                Some(91),
                "proxy: SOCKS4 reply 91: request rejected or failed"
            )
        );
        let e = Handshake::new(ProxyType::Socks4, t("[::1]:22"), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn http_connect() {
        let hs = Handshake::new(ProxyType::Http, t("127.0.0.1:22"), None).unwrap();
        let (sent, r) = run(
            hs,
            &[b"HTTP/1.0 200 Connection established\r\nVia: x\r\n\r\n"],
        );
        assert!(sent[0].starts_with(b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n"));
        assert_eq!(r.unwrap().reply, "HTTP/1.0 200 Connection established");
        let hs = Handshake::new(ProxyType::Http, t("127.0.0.1:22"), None).unwrap();
        let e = run(hs, &[b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"])
            .1
            .unwrap_err();
        assert_eq!((e.kind(), e.code()), (ErrorKind::Proxy, Some(407)));
        assert_eq!(
            e.to_string(),
            "proxy: HTTP CONNECT 407 Proxy Authentication Required"
        );
        let hs = Handshake::new(ProxyType::Http, t("127.0.0.1:22"), None).unwrap();
        let e = run(hs, &[b"HTTP/1.1 502\r\n\r\n"]).1.unwrap_err();
        assert_eq!(e.to_string(), "proxy: HTTP CONNECT 502");
    }

    #[test]
    fn curl_proxy_urls() {
        let p = Proxy::parse_url("socks4://u@127.0.0.1:1081/").unwrap();
        assert_eq!(
            (p.kind, p.dns, p.port.clone()),
            (ProxyType::Socks4, ProxyDns::Local, 1081.into())
        );
        assert_eq!(p.auth.unwrap().username, "u");
        assert_eq!(
            Proxy::parse_url("SOCKS4A://h").unwrap().dns,
            ProxyDns::Remote
        );
        assert_eq!(Proxy::parse_url("socks5://h").unwrap().dns, ProxyDns::Local);
        assert_eq!(
            Proxy::parse_url("http://a%3Ab:c@h:3128")
                .unwrap()
                .auth
                .unwrap()
                .username,
            "a:b"
        );
        for bad in [
            "https://h",
            "ftp://h",
            "http://",
            "http://h:99999",
            "http://[::1",
        ] {
            assert!(Proxy::parse_url(bad).is_err(), "{bad}");
        }
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn proxy_dns_modes() {
        let r = |dns, host| resolve_target(ProxyType::Socks5, dns, host, 80, None);
        assert_eq!(
            r(ProxyDns::None, "127.0.0.1").unwrap().to_string(),
            "127.0.0.1:80"
        );
        assert_eq!(
            r(ProxyDns::Remote, "[::1]").unwrap().to_string(),
            "[::1]:80"
        );
        assert!(
            r(ProxyDns::None, "example.org")
                .unwrap_err()
                .to_string()
                .contains("--proxy-dns none")
        );
        // Remote: the name goes as is, with no lookup (a name that cannot resolve).
        assert_eq!(
            r(ProxyDns::Remote, "no-such-name.invalid").unwrap(),
            TargetAddr::Domain("no-such-name.invalid".into(), 80)
        );
        // `localhost` resolves from /etc/hosts (no DNS query).
        let local =
            resolve_target(ProxyType::Socks4, ProxyDns::Local, "localhost", 80, None).unwrap();
        assert_eq!(local.to_string(), "127.0.0.1:80");
        assert_eq!(ProxyDns::default(), ProxyDns::Remote);
        assert_eq!(ProxyType::default(), ProxyType::Http);
        assert_eq!("SOCKS5".parse::<ProxyType>().unwrap(), ProxyType::Socks5);
        assert!("socks6".parse::<ProxyType>().is_err());
        assert_eq!("both".parse::<ProxyDns>().unwrap(), ProxyDns::Both);
    }
}
