//! Python's `repr()` of the values the slides print: bytes and socket addresses.
//!
//! For programs that print what Python would (`Received b'hello'`,
//! `Connected by ('127.0.0.1', 50007)`), so their output can be compared line for line.

use crate::socket::SockAddr;

/// Python's `repr()` of a `bytes` object.
///
/// Single quotes unless the bytes contain `'` and no `"`; `\t`, `\n`, `\r`, `\\` and the
/// quote escaped; other bytes outside printable ASCII as `\xNN`.
///
/// # Examples
/// ```
/// use sockit::repr::bytes_repr;
/// assert_eq!(bytes_repr(b"hello"), "b'hello'");
/// assert_eq!(bytes_repr(b"it's"), "b\"it's\"");
/// assert_eq!(bytes_repr(b"q\"'\\\t\x00"), "b'q\"\\'\\\\\\t\\x00'");
/// ```
pub fn bytes_repr(data: &[u8]) -> String {
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut s = String::with_capacity(data.len() + 3);
    s.push('b');
    s.push(quote as char);
    for &b in data {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b if b == quote => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push(quote as char);
    s
}

/// Python's `repr()` of a socket address as `accept()`/`getsockname()` return it.
///
/// IPv4 `('127.0.0.1', 80)`, IPv6 `('::1', 80, 0, 0)` (flowinfo, scope id), a Unix path
/// `'/tmp/s'`, an abstract name `b'\x00name'`, an unnamed Unix socket `''`.
///
/// # Examples
/// ```
/// use sockit::repr::addr_repr;
/// use sockit::socket::SockAddr;
/// let a = SockAddr::Ip("127.0.0.1:50007".parse().unwrap());
/// assert_eq!(addr_repr(&a), "('127.0.0.1', 50007)");
/// let a = SockAddr::Ip("[::1]:80".parse().unwrap());
/// assert_eq!(addr_repr(&a), "('::1', 80, 0, 0)");
/// ```
pub fn addr_repr(addr: &SockAddr) -> String {
    match addr {
        SockAddr::Ip(std::net::SocketAddr::V4(a)) => format!("('{}', {})", a.ip(), a.port()),
        SockAddr::Ip(std::net::SocketAddr::V6(a)) => format!(
            "('{}', {}, {}, {})",
            a.ip(),
            a.port(),
            a.flowinfo(),
            a.scope_id()
        ),
        SockAddr::Unix(p) => format!("'{}'", p.display()),
        SockAddr::Abstract(name) => {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(name);
            bytes_repr(&bytes)
        }
        SockAddr::Unnamed => "''".to_string(),
    }
}
