//! Address families, socket types, protocols, ports and address text.
//!
//! The constants of Python's module as Rust types ([`Family`], [`SockType`], [`Protocol`]),
//! the one port type ([`Port`]: a number or a service name), and parsing of the address
//! words the command takes (`HOST PORT`, `HOST:PORT`, `[V6]:PORT`).

use std::fmt;

use crate::error::{Error, Result};

/// An address family: Python's `AF_INET`, `AF_INET6`, `AF_UNIX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[doc(alias = "AF_INET")]
#[doc(alias = "AF_INET6")]
#[doc(alias = "AF_UNIX")]
pub enum Family {
    /// IPv4 (`AF_INET`, 2).
    Inet,
    /// IPv6 (`AF_INET6`, 10 on Linux).
    Inet6,
    /// Unix domain sockets (`AF_UNIX`, 1).
    Unix,
}

impl Family {
    /// The C constant's value.
    pub fn as_raw(self) -> i32 {
        match self {
            Family::Inet => libc::AF_INET,
            Family::Inet6 => libc::AF_INET6,
            Family::Unix => libc::AF_UNIX,
        }
    }

    /// The family for a C constant, if it is one of the three.
    pub fn from_raw(raw: i32) -> Option<Family> {
        match raw {
            libc::AF_INET => Some(Family::Inet),
            libc::AF_INET6 => Some(Family::Inet6),
            libc::AF_UNIX => Some(Family::Unix),
            _ => None,
        }
    }

    /// The family of an IP socket address.
    pub fn of(addr: &std::net::SocketAddr) -> Family {
        if addr.is_ipv4() {
            Family::Inet
        } else {
            Family::Inet6
        }
    }

    /// Python's name for it: `AF_INET`, `AF_INET6`, `AF_UNIX`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "AF_INET",
            Family::Inet6 => "AF_INET6",
            Family::Unix => "AF_UNIX",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A socket type: Python's `SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_RAW`, `SOCK_SEQPACKET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[doc(alias = "SOCK_STREAM")]
#[doc(alias = "SOCK_DGRAM")]
pub enum SockType {
    /// A byte stream (`SOCK_STREAM`, 1): TCP, or a Unix stream socket.
    Stream,
    /// Datagrams (`SOCK_DGRAM`, 2): UDP, or a Unix datagram socket.
    Dgram,
    /// Raw packets (`SOCK_RAW`, 3).
    Raw,
    /// Sequenced packets (`SOCK_SEQPACKET`, 5).
    SeqPacket,
}

impl SockType {
    /// The C constant's value.
    pub fn as_raw(self) -> i32 {
        match self {
            SockType::Stream => libc::SOCK_STREAM,
            SockType::Dgram => libc::SOCK_DGRAM,
            SockType::Raw => libc::SOCK_RAW,
            SockType::SeqPacket => libc::SOCK_SEQPACKET,
        }
    }

    /// The type for a C constant, if it is one of the four.
    pub fn from_raw(raw: i32) -> Option<SockType> {
        match raw {
            libc::SOCK_STREAM => Some(SockType::Stream),
            libc::SOCK_DGRAM => Some(SockType::Dgram),
            libc::SOCK_RAW => Some(SockType::Raw),
            libc::SOCK_SEQPACKET => Some(SockType::SeqPacket),
            _ => None,
        }
    }

    /// Python's name for it: `SOCK_STREAM` ...
    pub fn name(self) -> &'static str {
        match self {
            SockType::Stream => "SOCK_STREAM",
            SockType::Dgram => "SOCK_DGRAM",
            SockType::Raw => "SOCK_RAW",
            SockType::SeqPacket => "SOCK_SEQPACKET",
        }
    }
}

impl fmt::Display for SockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An IP protocol number (`IPPROTO_*`), the third argument of `socket(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Protocol(pub i32);

impl Protocol {
    /// `IPPROTO_TCP` (6).
    pub const TCP: Protocol = Protocol(libc::IPPROTO_TCP);
    /// `IPPROTO_UDP` (17).
    pub const UDP: Protocol = Protocol(libc::IPPROTO_UDP);
    /// `IPPROTO_ICMP` (1).
    pub const ICMP: Protocol = Protocol(libc::IPPROTO_ICMP);
    /// `IPPROTO_ICMPV6` (58).
    pub const ICMPV6: Protocol = Protocol(libc::IPPROTO_ICMPV6);

    /// Python's constant name where it has one (`IPPROTO_TCP`), else the number.
    pub fn name(self) -> String {
        match self.0 {
            0 => "0".into(),
            libc::IPPROTO_TCP => "IPPROTO_TCP".into(),
            libc::IPPROTO_UDP => "IPPROTO_UDP".into(),
            libc::IPPROTO_ICMP => "IPPROTO_ICMP".into(),
            libc::IPPROTO_ICMPV6 => "IPPROTO_ICMPV6".into(),
            n => n.to_string(),
        }
    }
}

/// A port argument: a number, or a service name looked up in the services database.
///
/// Numbers are `u16`, so a port outside 0..=65535 cannot be expressed; [`Port::parse`]
/// refuses such text before any system call (Python's `getaddrinfo` wraps 70000 to 4464).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Port {
    /// A port number.
    Number(u16),
    /// A service name such as `http` (`getservbyname(3)` turns it into a number).
    Service(String),
}

impl Port {
    /// Parses port text: decimal digits are a number (0..=65535), anything else a name.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty string, a
    /// number outside 0..=65535 (`port must be 0-65535.`), or a name with a NUL, space or
    /// slash.
    ///
    /// # Examples
    /// ```
    /// use sockit::Port;
    /// assert_eq!(Port::parse("80").unwrap(), Port::Number(80));
    /// assert_eq!(Port::parse("http").unwrap(), Port::Service("http".into()));
    /// assert!(Port::parse("70000").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Port> {
        if text.is_empty() {
            return Err(Error::invalid_input("port", "empty port"));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u32>() {
                Ok(n) if n <= 65535 => Ok(Port::Number(n as u16)),
                _ => Err(Error::invalid_input(
                    "port",
                    format!("port must be 0-65535, not {text}"),
                )),
            };
        }
        if text.starts_with('-') && text[1..].bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid_input(
                "port",
                format!("port must be 0-65535, not {text}"),
            ));
        }
        if text
            .bytes()
            .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
        {
            return Err(Error::invalid_input(
                "port",
                format!("not a port number or service name: {text:?}"),
            ));
        }
        Ok(Port::Service(text.to_string()))
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Number(n) => write!(f, "{n}"),
            Port::Service(s) => f.write_str(s),
        }
    }
}

impl From<u16> for Port {
    fn from(n: u16) -> Port {
        Port::Number(n)
    }
}

/// A host and a port as the command's words give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host: a name, IPv4 or IPv6 text (brackets removed, `%scope` kept), or `None`
    /// when only a port was given.
    pub host: Option<String>,
    /// The port.
    pub port: Port,
}

/// Parses address words: `HOST PORT` (two words), `HOST:PORT`, `[V6]:PORT`, or `PORT`.
///
/// A single word with more than one `:` and no brackets is an IPv6 address without a port,
/// which is refused (write `[::1]:80` or `::1 80`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a missing or bad port,
/// an empty host, an unclosed bracket, or more than two words.
///
/// # Examples
/// ```
/// use sockit::addr::{parse_host_port, HostPort};
/// use sockit::Port;
/// let hp = parse_host_port(&["[::1]:8080"]).unwrap();
/// assert_eq!(hp, HostPort { host: Some("::1".into()), port: Port::Number(8080) });
/// let hp = parse_host_port(&["localhost", "http"]).unwrap();
/// assert_eq!(hp.port, Port::Service("http".into()));
/// ```
pub fn parse_host_port<S: AsRef<str>>(words: &[S]) -> Result<HostPort> {
    const OP: &str = "address";
    let host_of = |h: &str| -> Result<String> {
        let h = h
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h);
        if h.is_empty() {
            return Err(Error::invalid_input(OP, "empty host"));
        }
        if h.contains('\0') {
            return Err(Error::invalid_input(OP, "host contains a NUL byte"));
        }
        // A bracket left over is a malformed IPv6 literal (`[::1`): never a name to look up.
        if h.contains(['[', ']']) {
            return Err(Error::invalid_input(
                OP,
                format!("unbalanced '[' or ']' in host {h:?} (write [V6]:PORT or V6 PORT)"),
            ));
        }
        Ok(h.to_string())
    };
    match words {
        [host, port] => Ok(HostPort {
            host: Some(host_of(host.as_ref())?),
            port: Port::parse(port.as_ref())?,
        }),
        [word] => {
            let word = word.as_ref();
            if let Some(rest) = word.strip_prefix('[') {
                let (host, after) = rest
                    .split_once(']')
                    .ok_or_else(|| Error::invalid_input(OP, format!("unclosed '[' in {word:?}")))?;
                let port = after.strip_prefix(':').ok_or_else(|| {
                    Error::invalid_input(OP, format!("missing port after ']' in {word:?}"))
                })?;
                return Ok(HostPort {
                    host: Some(host_of(host)?),
                    port: Port::parse(port)?,
                });
            }
            match word.matches(':').count() {
                0 if word.bytes().all(|b| b.is_ascii_digit()) => Ok(HostPort {
                    host: None,
                    port: Port::parse(word)?,
                }),
                0 => Err(Error::invalid_input(
                    OP,
                    format!("missing port in {word:?} (HOST PORT or HOST:PORT)"),
                )),
                1 => {
                    let (host, port) = word.split_once(':').unwrap_or((word, ""));
                    Ok(HostPort {
                        host: Some(host_of(host)?),
                        port: Port::parse(port)?,
                    })
                }
                _ => Err(Error::invalid_input(
                    OP,
                    format!("missing port in {word:?} (write [V6]:PORT or V6 PORT)"),
                )),
            }
        }
        [] => Err(Error::invalid_input(OP, "missing address")),
        _ => Err(Error::invalid_input(OP, "too many address words")),
    }
}

/// Formats an IP address the way the `listening` line shows it: IPv6 without brackets.
pub fn host_text(addr: &std::net::SocketAddr) -> String {
    match addr {
        std::net::SocketAddr::V4(a) => a.ip().to_string(),
        std::net::SocketAddr::V6(a) => match a.scope_id() {
            0 => a.ip().to_string(),
            id => format!("{}%{}", a.ip(), crate::sys::if_indextoname(id)),
        },
    }
}

/// The 4 bytes of IPv4 text in any classic form: Python's `socket.inet_aton(text)`;
/// one `inet_aton(3)` call.
///
/// Accepts what the C library accepts: `1.2.3.4`, `127.1`, `0x7f.1`, `017700000001`,
/// `2130706433`, and text after the address if a space ends it (`1.2.3.4 junk`).
///
/// # Errors
/// - [`ErrorKind::Os`](crate::ErrorKind::Os) without a code, `illegal IP address string
///   passed to inet_aton`, as Python.
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a NUL byte.
///
/// # Examples
/// ```
/// assert_eq!(sockit::addr::inet_aton("127.1").unwrap(), [127, 0, 0, 1]);
/// assert!(sockit::addr::inet_aton("256.1.1.1").is_err());
/// ```
#[doc(alias = "inet_aton(3)")]
pub fn inet_aton(text: &str) -> Result<[u8; 4]> {
    const OP: &str = "inet_aton";
    let c = std::ffi::CString::new(text)
        .map_err(|_| Error::invalid_input(OP, "embedded null character"))?;
    crate::sys::netdb::inet_aton_raw(&c).ok_or_else(|| {
        Error::new(
            crate::ErrorKind::Os,
            OP,
            None,
            "illegal IP address string passed to inet_aton",
        )
    })
}

/// Dotted-quad text of 4 packed bytes: Python's `socket.inet_ntoa(packed)`.
///
/// # Errors
/// [`ErrorKind::Os`](crate::ErrorKind::Os) without a code, `packed IP wrong length for
/// inet_ntoa`, unless `packed` has exactly 4 bytes.
///
/// # Examples
/// ```
/// assert_eq!(sockit::addr::inet_ntoa(&[127, 0, 0, 1]).unwrap(), "127.0.0.1");
/// ```
pub fn inet_ntoa(packed: &[u8]) -> Result<String> {
    let b: [u8; 4] = packed.try_into().map_err(|_| {
        Error::new(
            crate::ErrorKind::Os,
            "inet_ntoa",
            None,
            "packed IP wrong length for inet_ntoa",
        )
    })?;
    Ok(std::net::Ipv4Addr::from(b).to_string())
}

/// The packed bytes of address text: Python's `socket.inet_pton(family, text)`; one
/// `inet_pton(3)` call (strict: `1.2.3.4` only for IPv4, no scope id for IPv6).
///
/// Returns 4 bytes for [`Family::Inet`], 16 for [`Family::Inet6`].
///
/// # Errors
/// - [`ErrorKind::Os`](crate::ErrorKind::Os) without a code, `illegal IP address string
///   passed to inet_pton`, for text the call refuses.
/// - [`ErrorKind::Os`](crate::ErrorKind::Os) `EAFNOSUPPORT` (97) for [`Family::Unix`].
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a NUL byte.
///
/// # Examples
/// ```
/// use sockit::{addr::inet_pton, Family};
/// assert_eq!(inet_pton(Family::Inet6, "::1").unwrap()[15], 1);
/// assert!(inet_pton(Family::Inet, "127.1").is_err());
/// ```
#[doc(alias = "inet_pton(3)")]
pub fn inet_pton(family: Family, text: &str) -> Result<Vec<u8>> {
    const OP: &str = "inet_pton";
    let c = std::ffi::CString::new(text)
        .map_err(|_| Error::invalid_input(OP, "embedded null character"))?;
    match crate::sys::netdb::inet_pton_raw(family.as_raw(), &c) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(Error::new(
            crate::ErrorKind::Os,
            OP,
            None,
            "illegal IP address string passed to inet_pton",
        )),
        Err(errno) => Err(Error::from_errno(OP, errno)),
    }
}

/// Address text of packed bytes: Python's `socket.inet_ntop(family, packed)`; one
/// `inet_ntop(3)` call (so `::ffff:1.2.3.4` and `::1.2.3.4` are written as the C library
/// writes them).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a length other than 4
/// (IPv4) or 16 (IPv6) bytes (`invalid length of packed IP address string`), or for
/// [`Family::Unix`] (`unknown address family 1`), as Python's `ValueError`.
///
/// # Examples
/// ```
/// use sockit::{addr::inet_ntop, Family};
/// assert_eq!(inet_ntop(Family::Inet, &[10, 0, 0, 1]).unwrap(), "10.0.0.1");
/// ```
#[doc(alias = "inet_ntop(3)")]
pub fn inet_ntop(family: Family, packed: &[u8]) -> Result<String> {
    const OP: &str = "inet_ntop";
    let need = match family {
        Family::Inet => 4,
        Family::Inet6 => 16,
        Family::Unix => {
            return Err(Error::invalid_input(
                OP,
                format!("unknown address family {}", family.as_raw()),
            ));
        }
    };
    if packed.len() != need {
        return Err(Error::invalid_input(
            OP,
            "invalid length of packed IP address string",
        ));
    }
    crate::sys::netdb::inet_ntop_raw(family.as_raw(), packed)
        .map_err(|errno| Error::from_errno(OP, errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_text() {
        assert_eq!(Port::parse("0").unwrap(), Port::Number(0));
        assert_eq!(Port::parse("65535").unwrap(), Port::Number(65535));
        assert!(Port::parse("65536").is_err());
        assert!(Port::parse("99999999999999999999").is_err());
        assert!(Port::parse("-1").is_err());
        assert!(Port::parse("").is_err());
        assert!(Port::parse("a b").is_err());
    }

    #[test]
    fn address_words() {
        let hp = parse_host_port(&["127.0.0.1:80"]).unwrap();
        assert_eq!(hp.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(hp.port, Port::Number(80));
        let hp = parse_host_port(&["fe80::1%lo", "22"]).unwrap();
        assert_eq!(hp.host.as_deref(), Some("fe80::1%lo"));
        let hp = parse_host_port(&["8080"]).unwrap();
        assert_eq!(hp.host, None);
        assert!(parse_host_port(&["::1"]).is_err());
        assert!(parse_host_port(&["[::1"]).is_err());
        // A malformed bracketed literal must not reach the resolver (it could ask DNS).
        assert!(parse_host_port(&["[::1", "80"]).is_err());
        assert!(parse_host_port(&["::1]", "80"]).is_err());
        assert!(parse_host_port(&["[::1]", "80"]).is_ok());
        assert!(parse_host_port(&["[::1]"]).is_err());
        assert!(parse_host_port(&["localhost"]).is_err());
        assert!(parse_host_port(&[":80"]).is_err());
        assert!(parse_host_port(&["a", "b", "c"]).is_err());
    }
}
