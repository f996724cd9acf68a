//! Proxies: reaching a target through a SOCKS4/4a, SOCKS5 or HTTP CONNECT proxy (the
//! client side, [`client`]), and the wire formats a proxy server reads and answers.
//!
//! As [`crate::http`] does, the module keeps the bytes on the wire apart from doing an
//! exchange:
//!
//! **Bytes on the wire** — pure functions, no I/O, one module per protocol:
//! [`socks5`] (RFC 1928, with RFC 1929 username/password), [`socks4`] (SOCKS4 and the
//! SOCKS4a extension for names) and [`http`] (the `CONNECT` method of RFC 9110 §9.3.6,
//! `Basic` proxy authentication of RFC 7617, and absolute-URI requests of RFC 9112 §3.2.2).
//! Each has the client's builders and reply parsers, and the server's request parsers and
//! reply builders.
//!
//! **Doing the exchange** — [`client`]: a sans-IO handshake ([`client::Handshake`]) with an
//! async driver over any tokio stream and a blocking one over `std::io` streams, and
//! [`client::connect`], which connects to the proxy and asks it for the target, with
//! ncat's `--proxy-dns` rules for where a name is resolved.
//!
//! **The server** — [`server::ProxyServer`], `sockit proxy`: SOCKS5, SOCKS4/4a and HTTP
//! on one port, a mode on the [`serve`](crate::serve) core. [`session`] is a session's
//! side up to the relay (the handshake, bounded in time and bytes; the destination policy
//! of [`policy`] checked on resolved addresses; the target connect), and [`udp`] the relay
//! of a SOCKS5 `UDP ASSOCIATE`.
//!
//! # Server-side parsers
//! Every server-side parser has the same shape: it is given the bytes received so far and
//! answers `Ok(None)` (incomplete: read more), `Ok(Some((message, used)))` (complete, and
//! `used` bytes belong to it; what follows belongs to the next message or the relayed
//! stream), or `Err(`[`Refusal`]`)`: the input is malformed, and the refusal carries the
//! reply the protocol defines for it, ready to send before closing, and the reason as a
//! short word for events ([`Malformed::as_str`]). Every message has a bounded size (SOCKS
//! fields are length-prefixed or capped at [`MAX_NAME`] bytes; an HTTP head is capped by
//! [`http::Limits`]), so a parser never asks for unbounded input: a peer that sends more
//! than the limit without completing a message is refused. Time limits belong to the
//! caller, which owns the clock.
//!
//! # Examples
//! ```
//! use sockit::proxy::{socks5, TargetAddr};
//! // A client's greeting offering "no authentication" and username/password...
//! let greeting = socks5::greeting(true);
//! assert_eq!(greeting, [5, 2, 0, 2]);
//! // ...as the server reads it.
//! let (methods, used) = socks5::parse_greeting(&greeting).unwrap().unwrap();
//! assert_eq!((methods, used), (vec![0, 2], 4));
//! // A truncated greeting is incomplete, not an error: the server reads on.
//! assert!(socks5::parse_greeting(&greeting[..3]).unwrap().is_none());
//! let target = TargetAddr::domain("example.org", 443).unwrap();
//! assert_eq!(target.to_string(), "example.org:443");
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::error::{Error, Result};

pub mod client;
pub mod http;
pub mod one_request;
pub mod policy;
pub mod server;
pub mod session;
pub mod socks4;
pub mod socks5;
pub mod udp;

/// The longest host name a request may carry (255 bytes): SOCKS5's one-byte length
/// prefix allows no more (RFC 1928 §5), and the same cap bounds SOCKS4a names, SOCKS4 user
/// ids and HTTP targets.
pub const MAX_NAME: usize = 255;

/// Where a proxy is asked to connect: an address, or a host name the proxy resolves.
///
/// SOCKS5 carries either (address types 1, 3 and 4); SOCKS4 an IPv4 address, SOCKS4a also
/// a name; HTTP `CONNECT` either, as text. `Display` prints `host:port`, an IPv6 address
/// in brackets (`[::1]:80`), as an HTTP authority and the `-v` lines show it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetAddr {
    /// An IP address and port.
    Ip(SocketAddr),
    /// A host name (1 to [`MAX_NAME`] bytes, checked by [`TargetAddr::domain`]) and port.
    Domain(String, u16),
}

impl TargetAddr {
    /// A target by name, checked: 1 to [`MAX_NAME`] bytes of printable ASCII or UTF-8
    /// without spaces, control characters, `/`, `@` or brackets — text that cannot smuggle
    /// a second line or another authority into a request. An IP address literal gives
    /// [`TargetAddr::Ip`] (brackets around an IPv6 address are removed).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty or too
    /// long name, or one with a forbidden character.
    ///
    /// # Examples
    /// ```
    /// use sockit::proxy::TargetAddr;
    /// assert!(matches!(TargetAddr::domain("[::1]", 80).unwrap(), TargetAddr::Ip(_)));
    /// assert!(TargetAddr::domain("a b", 80).is_err());
    /// assert!(TargetAddr::domain("", 80).is_err());
    /// ```
    pub fn domain(host: &str, port: u16) -> Result<TargetAddr> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(TargetAddr::Ip(SocketAddr::new(ip, port)));
        }
        check_name(host.as_bytes())
            .map_err(|why| Error::invalid_input("proxy", format!("target host {host:?}: {why}")))?;
        Ok(TargetAddr::Domain(host.to_string(), port))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            TargetAddr::Ip(a) => a.port(),
            TargetAddr::Domain(_, p) => *p,
        }
    }

    /// The host as text: a name, or an address (IPv6 without brackets, as
    /// [`crate::addr::host_text`] prints it for `target_host` in events).
    pub fn host(&self) -> String {
        match self {
            TargetAddr::Ip(a) => crate::addr::host_text(a),
            TargetAddr::Domain(h, _) => h.clone(),
        }
    }
}

impl fmt::Display for TargetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetAddr::Ip(SocketAddr::V4(a)) => write!(f, "{}:{}", a.ip(), a.port()),
            TargetAddr::Ip(SocketAddr::V6(a)) => write!(f, "[{}]:{}", a.ip(), a.port()),
            TargetAddr::Domain(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// Why a name is refused, or `Ok` (see [`TargetAddr::domain`]).
pub(crate) fn check_name(name: &[u8]) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty host name");
    }
    if name.len() > MAX_NAME {
        return Err("host name longer than 255 bytes");
    }
    let bad = |b: &u8| {
        b.is_ascii_control() || matches!(b, b' ' | b'/' | b'@' | b'[' | b']' | b'\\' | b'%')
    };
    if name.iter().any(bad) {
        return Err("host name with a space, control character or one of / @ [ ] \\ %");
    }
    let Ok(text) = std::str::from_utf8(name) else {
        return Err("host name that is not UTF-8");
    };
    // what the lookup would refuse is a malformed name here, not a failed lookup
    if text == "." || crate::resolve::encode_host("host", text).is_err() {
        return Err(
            "host name with an empty label, a label over 63 bytes, over 253 bytes, or one \
             IDNA cannot encode",
        );
    }
    Ok(())
}

/// A username and password: RFC 1929 for SOCKS5, `Basic` (RFC 7617) for HTTP; SOCKS4
/// sends the username alone as its user id.
///
/// `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// The username (1 to 255 bytes for SOCKS5).
    pub username: String,
    /// The password (0 to 255 bytes for SOCKS5).
    pub password: String,
}

impl Credentials {
    /// Parses `USER:PASS` (ncat's `--proxy-auth`); text without a colon is a username with
    /// an empty password (SOCKS4 sends only the username). The first colon splits, so a
    /// password may contain colons.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty username,
    /// a username or password longer than 255 bytes (RFC 1929's limit), or a NUL byte.
    ///
    /// # Examples
    /// ```
    /// use sockit::proxy::Credentials;
    /// let c = Credentials::parse("joe:se:cret").unwrap();
    /// assert_eq!((c.username.as_str(), c.password.as_str()), ("joe", "se:cret"));
    /// assert_eq!(format!("{c:?}"), "Credentials { username: \"joe\", password: \"***\" }");
    /// ```
    pub fn parse(text: &str) -> Result<Credentials> {
        let (user, pass) = text.split_once(':').unwrap_or((text, ""));
        Credentials::new(user, pass)
    }

    /// Credentials from a username and a password, checked as [`Credentials::parse`]
    /// checks them.
    ///
    /// # Errors
    /// As [`Credentials::parse`].
    pub fn new(user: &str, pass: &str) -> Result<Credentials> {
        let err = |m: &str| Error::invalid_input("proxy auth", m.to_string());
        if user.is_empty() {
            return Err(err("empty username (USER:PASS)"));
        }
        if user.len() > MAX_NAME || pass.len() > MAX_NAME {
            return Err(err("username and password must be at most 255 bytes each"));
        }
        if user.contains('\0') || pass.contains('\0') {
            return Err(err("username or password contains a NUL byte"));
        }
        Ok(Credentials {
            username: user.to_string(),
            password: pass.to_string(),
        })
    }

    /// True when `username` and `password` are these, compared without stopping at the
    /// first differing byte (so the time taken does not tell how much of a guess was right).
    pub fn matches(&self, username: &[u8], password: &[u8]) -> bool {
        // `&` (not `&&`): both comparisons always run.
        same_bytes(self.username.as_bytes(), username)
            & same_bytes(self.password.as_bytes(), password)
    }
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Credentials as a client presented them to a server (RFC 1929 `UNAME`/`PASSWD`, or a
/// decoded `Basic` token): bytes, which need not be UTF-8. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The username.
    pub username: Vec<u8>,
    /// The password.
    pub password: Vec<u8>,
}

impl Login {
    /// The username as text for events (invalid UTF-8 replaced).
    pub fn user(&self) -> String {
        String::from_utf8_lossy(&self.username).into_owned()
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.user())
            .field("password", &"***")
            .finish()
    }
}

/// The protocol a proxy client speaks, told apart by its first byte
/// ([`Protocol::detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SOCKS version 4 (and 4a): first byte 4.
    Socks4,
    /// SOCKS version 5: first byte 5.
    Socks5,
    /// HTTP/1.x: a request line starts with a method token, an upper-case ASCII letter.
    Http,
}

impl Protocol {
    /// Which protocol a connection speaks, from its first byte: 4 SOCKS4, 5 SOCKS5, `A`-`Z`
    /// HTTP (every method token in use starts with an upper-case letter); `None` for
    /// anything else, which no supported protocol starts with.
    ///
    /// # Examples
    /// ```
    /// use sockit::proxy::Protocol;
    /// assert_eq!(Protocol::detect(5), Some(Protocol::Socks5));
    /// assert_eq!(Protocol::detect(b'C'), Some(Protocol::Http));
    /// assert_eq!(Protocol::detect(6), None);
    /// ```
    pub fn detect(first: u8) -> Option<Protocol> {
        match first {
            socks4::VERSION => Some(Protocol::Socks4),
            socks5::VERSION => Some(Protocol::Socks5),
            b'A'..=b'Z' => Some(Protocol::Http),
            _ => None,
        }
    }

    /// `socks4`, `socks5` or `http`, as events name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Socks4 => "socks4",
            Protocol::Socks5 => "socks5",
            Protocol::Http => "http",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a server refused a client's handshake: one word per malformed case, the same
/// across protocols (the `reason` of a proxy's events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Malformed {
    /// A version byte other than the protocol's (`bad_version`).
    BadVersion,
    /// The connection ended before a message was complete (`truncated`).
    Truncated,
    /// The handshake did not complete in time (`timeout`).
    Timeout,
    /// A SOCKS5 greeting offering no method at all (`no_methods`).
    NoMethods,
    /// A SOCKS5 greeting offering no method the server accepts (`no_acceptable_method`).
    NoAcceptableMethod,
    /// A SOCKS5 address type other than 1, 3 and 4 (`bad_address_type`).
    BadAddressType,
    /// A host name of length zero (`empty_domain`).
    EmptyDomain,
    /// A host name that is too long or has forbidden bytes (`bad_domain`).
    BadDomain,
    /// A `CONNECT` without a port, or with port 0 (`no_port`).
    NoPort,
    /// An HTTP head with more header lines or bytes than the limits (`header_flood`).
    HeaderFlood,
    /// A request the protocol does not allow (`bad_request`).
    BadRequest,
    /// A command or method the server does not serve (`unsupported`).
    Unsupported,
    /// Missing or wrong credentials (`auth_failed`).
    AuthFailed,
    /// A first byte no supported protocol starts with (`unknown_protocol`).
    UnknownProtocol,
}

impl Malformed {
    /// The snake_case word for events' `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::BadVersion => "bad_version",
            Malformed::Truncated => "truncated",
            Malformed::Timeout => "timeout",
            Malformed::NoMethods => "no_methods",
            Malformed::NoAcceptableMethod => "no_acceptable_method",
            Malformed::BadAddressType => "bad_address_type",
            Malformed::EmptyDomain => "empty_domain",
            Malformed::BadDomain => "bad_domain",
            Malformed::NoPort => "no_port",
            Malformed::HeaderFlood => "header_flood",
            Malformed::BadRequest => "bad_request",
            Malformed::Unsupported => "unsupported",
            Malformed::AuthFailed => "auth_failed",
            Malformed::UnknownProtocol => "unknown_protocol",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A server's answer to a malformed or refused handshake: the reply to send (the
/// protocol's own error reply; empty when the protocol defines none), then close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The protocol the client spoke, when known (set by
    /// [`session::accept_request`]; the parsers leave it `None`).
    pub protocol: Option<Protocol>,
    /// Which case it is.
    pub reason: Malformed,
    /// Human text for events (`SOCKS5 request: address type 9 is not 1, 3 or 4`).
    pub message: String,
    /// The bytes to send before closing.
    pub reply: Vec<u8>,
}

impl Refusal {
    /// A refusal from its parts.
    pub fn new(reason: Malformed, message: impl Into<String>, reply: Vec<u8>) -> Refusal {
        Refusal {
            protocol: None,
            reason,
            message: message.into(),
            reply,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.reason)
    }
}

/// The result of a server-side parser: `Ok(None)` incomplete, `Ok(Some((msg, used)))`
/// complete, `Err` refused (see the module docs).
pub type Parsed<T> = std::result::Result<Option<(T, usize)>, Refusal>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_display_and_parts() {
        let t = TargetAddr::domain("::1", 80).unwrap();
        assert_eq!(t.to_string(), "[::1]:80");
        assert_eq!(t.host(), "::1");
        let t = TargetAddr::domain("example.org", 8080).unwrap();
        assert_eq!((t.host().as_str(), t.port()), ("example.org", 8080));
    }

    #[test]
    fn names_that_could_smuggle_text_are_refused() {
        for bad in [
            "a\r\nb",
            "a b",
            "user@host",
            "a/b",
            "[x]",
            "x%y",
            &"a".repeat(256),
        ] {
            assert!(TargetAddr::domain(bad, 1).is_err(), "{bad:?}");
        }
        assert!(TargetAddr::domain("bücher.example", 1).is_ok());
        assert!(TargetAddr::domain("example.org.", 1).is_ok());
        // Regression: names the lookup refuses (over 253 bytes, a 64-byte label, an empty
        // label) went on to a `connect_failed` (HTTP 502) instead of `bad_domain` (400).
        for bad in [
            "a".repeat(255),
            format!("{}.b", "a".repeat(64)),
            "a..b".to_string(),
            ".".to_string(),
        ] {
            assert!(TargetAddr::domain(&bad, 1).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_parse_and_match() {
        let c = Credentials::parse("u:p").unwrap();
        assert!(c.matches(b"u", b"p"));
        assert!(!c.matches(b"u", b"q"));
        assert!(!c.matches(b"u", b"pp"));
        assert!(!c.matches(b"", b"p"));
        assert_eq!(Credentials::parse("u").unwrap().password, "");
        assert!(Credentials::parse(":p").is_err());
        assert!(Credentials::parse(&format!("u:{}", "p".repeat(256))).is_err());
        assert!(same_bytes(b"", b""));
        assert!(!same_bytes(b"\xff", b""));
    }

    #[test]
    fn detect_by_first_byte() {
        assert_eq!(Protocol::detect(4), Some(Protocol::Socks4));
        assert_eq!(Protocol::detect(b'G'), Some(Protocol::Http));
        assert_eq!(Protocol::detect(b'g'), None);
        assert_eq!(
            Protocol::detect(0x16),
            None,
            "a TLS record is not a proxy request"
        );
    }
}
