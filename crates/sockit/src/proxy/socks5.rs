//! SOCKS version 5 on the wire: RFC 1928, with the username/password method of RFC 1929.
//!
//! A handshake is four messages, each parsed and built here without I/O:
//!
//! ```text
//! client                                   server
//! greeting   VER=5 NMETHODS METHODS...  ->
//!                                       <- VER=5 METHOD            method selection
//! (method 2) VER=1 ULEN UNAME PLEN PASSWD ->
//!                                       <- VER=1 STATUS            (0 = success)
//! request    VER=5 CMD RSV=0 ATYP DST.ADDR DST.PORT ->
//!                                       <- VER=5 REP RSV=0 ATYP BND.ADDR BND.PORT
//! ```
//!
//! Addresses are `ATYP` 1 (4 bytes of IPv4), 3 (a length byte and a host name) or 4
//! (16 bytes of IPv6), then a port in network byte order. UDP datagrams relayed for
//! `UDP ASSOCIATE` carry the same address in a header ([`udp_header`], [`parse_udp`]).
//!
//! Server-side parsers follow the shape of the [module docs](super) and refuse with the
//! reply RFC 1928 gives each stage: `05 FF` for a greeting, `01 01` for a failed
//! authentication, `05 REP 00 01 0.0.0.0:0` for a request.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::{Credentials, Login, Malformed, Parsed, Refusal, TargetAddr, check_name};
use crate::error::{Error, Result};

/// The protocol version byte, 5.
pub const VERSION: u8 = 5;
/// The username/password sub-negotiation's version byte, 1 (RFC 1929).
pub const AUTH_VERSION: u8 = 1;

/// Method 0: no authentication required.
pub const METHOD_NONE: u8 = 0x00;
/// Method 1: GSSAPI (RFC 1961); not implemented by sockit.
pub const METHOD_GSSAPI: u8 = 0x01;
/// Method 2: username/password (RFC 1929).
pub const METHOD_USERPASS: u8 = 0x02;
/// The server's answer when no offered method is acceptable (0xFF).
pub const METHOD_NO_ACCEPTABLE: u8 = 0xFF;

/// Command 1: `CONNECT`.
pub const CMD_CONNECT: u8 = 0x01;
/// Command 2: `BIND`.
pub const CMD_BIND: u8 = 0x02;
/// Command 3: `UDP ASSOCIATE`.
pub const CMD_UDP_ASSOCIATE: u8 = 0x03;

/// Address type 1: IPv4, 4 bytes.
pub const ATYP_IPV4: u8 = 0x01;
/// Address type 3: a host name, one length byte then the name.
pub const ATYP_DOMAIN: u8 = 0x03;
/// Address type 4: IPv6, 16 bytes.
pub const ATYP_IPV6: u8 = 0x04;

/// Reply 0: succeeded.
pub const REP_SUCCEEDED: u8 = 0x00;
/// Reply 1: general SOCKS server failure.
pub const REP_GENERAL_FAILURE: u8 = 0x01;
/// Reply 2: connection not allowed by ruleset.
pub const REP_NOT_ALLOWED: u8 = 0x02;
/// Reply 3: network unreachable.
pub const REP_NETWORK_UNREACHABLE: u8 = 0x03;
/// Reply 4: host unreachable.
pub const REP_HOST_UNREACHABLE: u8 = 0x04;
/// Reply 5: connection refused.
pub const REP_CONNECTION_REFUSED: u8 = 0x05;
/// Reply 6: TTL expired.
pub const REP_TTL_EXPIRED: u8 = 0x06;
/// Reply 7: command not supported.
pub const REP_COMMAND_NOT_SUPPORTED: u8 = 0x07;
/// Reply 8: address type not supported.
pub const REP_ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;

/// The text for a reply code (RFC 1928 §6), as errors print it:
/// `5` → `connection refused by destination`.
pub fn reply_text(rep: u8) -> &'static str {
    match rep {
        REP_SUCCEEDED => "succeeded",
        REP_GENERAL_FAILURE => "general SOCKS server failure",
        REP_NOT_ALLOWED => "connection not allowed by ruleset",
        REP_NETWORK_UNREACHABLE => "network unreachable",
        REP_HOST_UNREACHABLE => "host unreachable",
        REP_CONNECTION_REFUSED => "connection refused by destination",
        REP_TTL_EXPIRED => "TTL expired",
        REP_COMMAND_NOT_SUPPORTED => "command not supported",
        REP_ADDRESS_TYPE_NOT_SUPPORTED => "address type not supported",
        _ => "unassigned reply code",
    }
}

/// The name of an authentication method, for messages (`username/password`).
pub fn method_name(method: u8) -> &'static str {
    match method {
        METHOD_NONE => "no authentication",
        METHOD_GSSAPI => "GSSAPI",
        METHOD_USERPASS => "username/password",
        METHOD_NO_ACCEPTABLE => "no acceptable method",
        0x03..=0x7F => "IANA-assigned method",
        _ => "private method",
    }
}

/// The reply code for an error connecting to a target (RFC 1928 §6): refused 5, network
/// unreachable 3, host unreachable 4 (also for a failed name lookup), TTL expired 6 for a
/// timeout, a general failure 1 otherwise.
pub fn reply_for_error(err: &Error) -> u8 {
    use crate::error::ErrorKind;
    match err.kind() {
        ErrorKind::Gai | ErrorKind::Host => REP_HOST_UNREACHABLE,
        ErrorKind::Timeout => REP_TTL_EXPIRED,
        _ => match err.code() {
            Some(libc::ECONNREFUSED) => REP_CONNECTION_REFUSED,
            Some(libc::ENETUNREACH) => REP_NETWORK_UNREACHABLE,
            Some(libc::EHOSTUNREACH) => REP_HOST_UNREACHABLE,
            Some(libc::ETIMEDOUT) => REP_TTL_EXPIRED,
            _ => REP_GENERAL_FAILURE,
        },
    }
}

// ---------------------------------------------------------------------------------------
// Addresses: ATYP DST.ADDR DST.PORT, shared by requests, replies and UDP headers.

/// Why an address could not be read.
enum AddrError {
    BadType(u8),
    EmptyDomain,
    BadDomain(&'static str),
}

/// Reads `ATYP ADDR PORT` at the start of `buf`: `Ok(None)` when incomplete.
fn parse_address(buf: &[u8]) -> std::result::Result<Option<(TargetAddr, usize)>, AddrError> {
    let Some(&atyp) = buf.first() else {
        return Ok(None);
    };
    let port_at = |at: usize| u16::from_be_bytes([buf[at], buf[at + 1]]);
    match atyp {
        ATYP_IPV4 => {
            if buf.len() < 7 {
                return Ok(None);
            }
            let ip = Ipv4Addr::new(buf[1], buf[2], buf[3], buf[4]);
            let addr = SocketAddr::V4(SocketAddrV4::new(ip, port_at(5)));
            Ok(Some((TargetAddr::Ip(addr), 7)))
        }
        ATYP_IPV6 => {
            if buf.len() < 19 {
                return Ok(None);
            }
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&buf[1..17]);
            let addr = SocketAddrV6::new(Ipv6Addr::from(octets), port_at(17), 0, 0);
            Ok(Some((TargetAddr::Ip(SocketAddr::V6(addr)), 19)))
        }
        ATYP_DOMAIN => {
            let Some(&len) = buf.get(1) else {
                return Ok(None);
            };
            if len == 0 {
                return Err(AddrError::EmptyDomain);
            }
            let len = usize::from(len);
            if buf.len() < 2 + len + 2 {
                return Ok(None);
            }
            let name = &buf[2..2 + len];
            check_name(name).map_err(AddrError::BadDomain)?;
            let name = String::from_utf8_lossy(name);
            let target = TargetAddr::domain(&name, port_at(2 + len))
                .map_err(|_| AddrError::BadDomain("host name that is not a host"))?;
            Ok(Some((target, 4 + len)))
        }
        other => Err(AddrError::BadType(other)),
    }
}

/// Appends `ATYP ADDR PORT` for `target`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a name that
/// [`TargetAddr::domain`] would refuse (a `Domain` built by hand).
fn put_address(out: &mut Vec<u8>, target: &TargetAddr) -> Result<()> {
    match target {
        TargetAddr::Ip(SocketAddr::V4(a)) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&a.ip().octets());
        }
        TargetAddr::Ip(SocketAddr::V6(a)) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&a.ip().octets());
        }
        TargetAddr::Domain(name, _) => {
            check_name(name.as_bytes()).map_err(|why| {
                Error::invalid_input("proxy", format!("target host {name:?}: {why}"))
            })?;
            out.push(ATYP_DOMAIN);
            out.push(name.len() as u8); // at most MAX_NAME = 255, checked above
            out.extend_from_slice(name.as_bytes());
        }
    }
    out.extend_from_slice(&target.port().to_be_bytes());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Client side: what a client sends and how it reads the server's answers.

/// The client's greeting: `05 01 00` (no authentication), or `05 02 00 02` when
/// credentials can be offered too.
pub fn greeting(with_userpass: bool) -> Vec<u8> {
    if with_userpass {
        vec![VERSION, 2, METHOD_NONE, METHOD_USERPASS]
    } else {
        vec![VERSION, 1, METHOD_NONE]
    }
}

/// Reads the server's method selection (`05 METHOD`): the chosen method and 2.
///
/// # Errors
/// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) when the version is not 5.
pub fn parse_method_selection(buf: &[u8]) -> Result<Option<(u8, usize)>> {
    check_reply_version(buf, "method selection")?;
    Ok((buf.len() >= 2).then(|| (buf[1], 2)))
}

/// The username/password request of RFC 1929 §2: `01 ULEN UNAME PLEN PASSWD`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty username or
/// a field longer than 255 bytes.
pub fn auth_request(creds: &Credentials) -> Result<Vec<u8>> {
    let (u, p) = (creds.username.as_bytes(), creds.password.as_bytes());
    if u.is_empty() || u.len() > 255 || p.len() > 255 {
        return Err(Error::invalid_input(
            "proxy auth",
            "SOCKS5 username must be 1-255 bytes and password 0-255 bytes",
        ));
    }
    let mut out = Vec::with_capacity(3 + u.len() + p.len());
    out.extend_from_slice(&[AUTH_VERSION, u.len() as u8]);
    out.extend_from_slice(u);
    out.push(p.len() as u8);
    out.extend_from_slice(p);
    Ok(out)
}

/// Reads the server's answer to [`auth_request`] (`01 STATUS`): the status (0 is
/// success) and 2. A version byte of 5 is accepted too, as some servers send it.
///
/// # Errors
/// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for another version byte.
pub fn parse_auth_status(buf: &[u8]) -> Result<Option<(u8, usize)>> {
    match buf {
        [] | [AUTH_VERSION | VERSION] => Ok(None),
        [AUTH_VERSION | VERSION, status, ..] => Ok(Some((*status, 2))),
        [v, ..] => Err(Error::protocol(
            "proxy",
            format!("SOCKS5 authentication reply has version {v}, not 1"),
        )),
    }
}

/// A request: `05 CMD 00 ATYP DST.ADDR DST.PORT`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a host name that
/// [`TargetAddr::domain`] refuses.
pub fn request(command: u8, target: &TargetAddr) -> Result<Vec<u8>> {
    let mut out = vec![VERSION, command, 0];
    put_address(&mut out, target)?;
    Ok(out)
}

/// How long a reply (or request: the layout is the same) is, once the first 5 bytes
/// are known; `None` before, or when the address type is unknown. A reader that reads
/// `min(5, reply_len)` bytes first never reads past the message.
pub fn message_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 5 {
        return None;
    }
    match buf[3] {
        ATYP_IPV4 => Some(10),
        ATYP_IPV6 => Some(22),
        ATYP_DOMAIN => Some(7 + usize::from(buf[4])),
        _ => None,
    }
}

/// A server's reply to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `REP`: 0 succeeded, else a failure ([`reply_text`]).
    pub code: u8,
    /// `BND.ADDR`/`BND.PORT`: for `CONNECT` the address the proxy connected from; for
    /// `UDP ASSOCIATE` where to send datagrams.
    pub bound: TargetAddr,
}

/// Reads a server's reply: `05 REP 00 ATYP BND.ADDR BND.PORT`.
///
/// # Errors
/// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for a version other than 5, an
/// unknown address type, or a malformed bound name.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>> {
    check_reply_version(buf, "reply")?;
    if buf.len() < 4 {
        return Ok(None);
    }
    let bad = |m: String| Error::protocol("proxy", format!("SOCKS5 reply: {m}"));
    match parse_address(&buf[3..]) {
        Ok(None) => Ok(None),
        Ok(Some((bound, used))) => Ok(Some((
            Reply {
                code: buf[1],
                bound,
            },
            3 + used,
        ))),
        Err(AddrError::BadType(t)) => Err(bad(format!("address type {t} is not 1, 3 or 4"))),
        Err(AddrError::EmptyDomain) => Err(bad("empty bound host name".into())),
        Err(AddrError::BadDomain(why)) => Err(bad(format!("bound address: {why}"))),
    }
}

fn check_reply_version(buf: &[u8], what: &str) -> Result<()> {
    match buf.first() {
        Some(&v) if v != VERSION => Err(Error::protocol(
            "proxy",
            format!("SOCKS5 {what} has version {v}, not 5 (is it a SOCKS5 proxy?)"),
        )),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Server side: reading a client's messages, building the answers.

/// The refusal of a greeting: `05 FF`.
fn refuse_greeting(reason: Malformed, message: impl Into<String>) -> Refusal {
    Refusal::new(
        reason,
        message,
        method_selection(METHOD_NO_ACCEPTABLE).to_vec(),
    )
}

/// The refusal of a request: `05 REP 00 01 0.0.0.0:0`.
fn refuse_request(reason: Malformed, rep: u8, message: impl Into<String>) -> Refusal {
    Refusal::new(reason, message, reply(rep, &unspecified()))
}

fn unspecified() -> TargetAddr {
    TargetAddr::Ip(SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Reads a client's greeting: the offered methods, and the bytes used (`2 + NMETHODS`).
///
/// # Errors
/// A [`Refusal`] answered with `05 FF`: [`Malformed::BadVersion`] for a version other
/// than 5, [`Malformed::NoMethods`] for `NMETHODS` 0.
pub fn parse_greeting(buf: &[u8]) -> Parsed<Vec<u8>> {
    match buf {
        [] => Ok(None),
        [v, ..] if *v != VERSION => Err(refuse_greeting(
            Malformed::BadVersion,
            format!("SOCKS5 greeting: version {v}, not 5"),
        )),
        [_] => Ok(None),
        [_, 0, ..] => Err(refuse_greeting(
            Malformed::NoMethods,
            "SOCKS5 greeting: no authentication method offered (NMETHODS 0)",
        )),
        [_, n, rest @ ..] => {
            let n = usize::from(*n);
            Ok((rest.len() >= n).then(|| (rest[..n].to_vec(), 2 + n)))
        }
    }
}

/// The method a server picks from the offered ones: username/password when it requires
/// credentials, else no authentication; [`METHOD_NO_ACCEPTABLE`] when the one it needs is
/// not offered.
pub fn choose_method(offered: &[u8], require_auth: bool) -> u8 {
    let want = if require_auth {
        METHOD_USERPASS
    } else {
        METHOD_NONE
    };
    if offered.contains(&want) {
        want
    } else {
        METHOD_NO_ACCEPTABLE
    }
}

/// The server's method selection: `05 METHOD`.
pub fn method_selection(method: u8) -> [u8; 2] {
    [VERSION, method]
}

/// The refusal of a greeting whose methods do not include what the server needs, with
/// its `05 FF` reply.
pub fn refuse_methods(offered: &[u8], require_auth: bool) -> Refusal {
    let names: Vec<&str> = offered.iter().map(|m| method_name(*m)).collect();
    let needed = if require_auth {
        "username/password"
    } else {
        "no authentication"
    };
    refuse_greeting(
        Malformed::NoAcceptableMethod,
        format!(
            "SOCKS5 greeting: offered {}; the server needs {needed}",
            names.join(", ")
        ),
    )
}

/// Reads a username/password request: `01 ULEN UNAME PLEN PASSWD`.
///
/// # Errors
/// A [`Refusal`] answered with `01 01` (failure): [`Malformed::BadVersion`] for a
/// sub-negotiation version other than 1.
pub fn parse_auth_request(buf: &[u8]) -> Parsed<Login> {
    match buf {
        [] => Ok(None),
        [v, ..] if *v != AUTH_VERSION => Err(Refusal::new(
            Malformed::BadVersion,
            format!("SOCKS5 authentication: version {v}, not 1"),
            auth_status(false).to_vec(),
        )),
        [_, ulen, rest @ ..] => {
            let ulen = usize::from(*ulen);
            let Some(&plen) = rest.get(ulen) else {
                return Ok(None);
            };
            let plen = usize::from(plen);
            if rest.len() < ulen + 1 + plen {
                return Ok(None);
            }
            let request = Login {
                username: rest[..ulen].to_vec(),
                password: rest[ulen + 1..ulen + 1 + plen].to_vec(),
            };
            Ok(Some((request, 3 + ulen + plen)))
        }
        [_] => Ok(None),
    }
}

/// The server's answer to a username/password request: `01 00` success, `01 01` failure.
pub fn auth_status(success: bool) -> [u8; 2] {
    [AUTH_VERSION, if success { 0 } else { 1 }]
}

/// The refusal for wrong credentials, with its `01 01` reply.
pub fn refuse_auth(username: &[u8]) -> Refusal {
    Refusal::new(
        Malformed::AuthFailed,
        format!(
            "SOCKS5 authentication failed for user {:?}",
            String::from_utf8_lossy(username)
        ),
        auth_status(false).to_vec(),
    )
}

/// A client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// [`CMD_CONNECT`], [`CMD_BIND`] or [`CMD_UDP_ASSOCIATE`].
    pub command: u8,
    /// `DST.ADDR`/`DST.PORT`: the target (for `UDP ASSOCIATE`, where the client will send
    /// from, often `0.0.0.0:0`).
    pub target: TargetAddr,
}

/// Reads a client's request: `05 CMD 00 ATYP DST.ADDR DST.PORT`.
///
/// # Errors
/// A [`Refusal`] with a `05 REP …` reply: [`Malformed::BadVersion`] (REP 1) for a version
/// other than 5; [`Malformed::Unsupported`] (REP 7) for a command other than 1, 2, 3;
/// [`Malformed::BadAddressType`] (REP 8) for an address type other than 1, 3, 4;
/// [`Malformed::EmptyDomain`] (REP 1) for a name of length 0, [`Malformed::BadDomain`]
/// (REP 1) for a name [`TargetAddr::domain`] refuses; [`Malformed::NoPort`] (REP 1) for a
/// `CONNECT` to port 0.
pub fn parse_request(buf: &[u8]) -> Parsed<Request> {
    if let Some(&v) = buf.first()
        && v != VERSION
    {
        return Err(refuse_request(
            Malformed::BadVersion,
            REP_GENERAL_FAILURE,
            format!("SOCKS5 request: version {v}, not 5"),
        ));
    }
    if let Some(&cmd) = buf.get(1)
        && !matches!(cmd, CMD_CONNECT | CMD_BIND | CMD_UDP_ASSOCIATE)
    {
        return Err(refuse_request(
            Malformed::Unsupported,
            REP_COMMAND_NOT_SUPPORTED,
            format!("SOCKS5 request: command {cmd} is not CONNECT, BIND or UDP ASSOCIATE"),
        ));
    }
    if buf.len() < 4 {
        return Ok(None);
    }
    let (target, used) = match parse_address(&buf[3..]) {
        Ok(None) => return Ok(None),
        Ok(Some(found)) => found,
        Err(AddrError::BadType(t)) => {
            return Err(refuse_request(
                Malformed::BadAddressType,
                REP_ADDRESS_TYPE_NOT_SUPPORTED,
                format!("SOCKS5 request: address type {t} is not 1, 3 or 4"),
            ));
        }
        Err(AddrError::EmptyDomain) => {
            return Err(refuse_request(
                Malformed::EmptyDomain,
                REP_GENERAL_FAILURE,
                "SOCKS5 request: zero-length host name",
            ));
        }
        Err(AddrError::BadDomain(why)) => {
            return Err(refuse_request(
                Malformed::BadDomain,
                REP_GENERAL_FAILURE,
                format!("SOCKS5 request: {why}"),
            ));
        }
    };
    let command = buf[1];
    if command == CMD_CONNECT && target.port() == 0 {
        return Err(refuse_request(
            Malformed::NoPort,
            REP_GENERAL_FAILURE,
            format!("SOCKS5 request: CONNECT to {target} (port 0)"),
        ));
    }
    Ok(Some((Request { command, target }, 3 + used)))
}

/// The server's reply: `05 REP 00 ATYP BND.ADDR BND.PORT`. `bound` is normally an address;
/// a name that [`TargetAddr::domain`] would refuse is replaced by `0.0.0.0:0`.
pub fn reply(rep: u8, bound: &TargetAddr) -> Vec<u8> {
    let mut out = vec![VERSION, rep, 0];
    if put_address(&mut out, bound).is_err() {
        out.truncate(3);
        let _ = put_address(&mut out, &unspecified());
    }
    out
}

// ---------------------------------------------------------------------------------------
// UDP ASSOCIATE datagrams (RFC 1928 §7).

/// The header before each datagram relayed for `UDP ASSOCIATE`:
/// `00 00 FRAG=0 ATYP DST.ADDR DST.PORT`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a name that
/// [`TargetAddr::domain`] refuses.
pub fn udp_header(target: &TargetAddr) -> Result<Vec<u8>> {
    let mut out = vec![0, 0, 0];
    put_address(&mut out, target)?;
    Ok(out)
}

/// A datagram relayed for `UDP ASSOCIATE`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// `FRAG`: 0 for a whole datagram; sockit drops fragments (RFC 1928 allows that).
    pub frag: u8,
    /// Where the payload goes (from a client) or came from (to a client).
    pub target: TargetAddr,
    /// The payload.
    pub data: &'a [u8],
}

/// Reads a `UDP ASSOCIATE` datagram: header ([`udp_header`]) and payload.
///
/// # Errors
/// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for a datagram shorter than its
/// header, non-zero `RSV`, or an unknown address type or malformed name.
pub fn parse_udp(datagram: &[u8]) -> Result<UdpDatagram<'_>> {
    let bad = |m: &str| Error::protocol("socks5 udp", m.to_string());
    if datagram.len() < 4 {
        return Err(bad("datagram shorter than its SOCKS5 header"));
    }
    if datagram[..2] != [0, 0] {
        return Err(bad("RSV is not zero"));
    }
    match parse_address(&datagram[3..]) {
        Ok(Some((target, used))) => Ok(UdpDatagram {
            frag: datagram[2],
            target,
            data: &datagram[3 + used..],
        }),
        Ok(None) => Err(bad("datagram shorter than its SOCKS5 header")),
        Err(AddrError::BadType(_)) => Err(bad("unknown address type")),
        Err(AddrError::EmptyDomain) => Err(bad("zero-length host name")),
        Err(AddrError::BadDomain(why)) => Err(bad(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> TargetAddr {
        TargetAddr::Ip(s.parse().unwrap())
    }

    #[test]
    fn rfc1928_request_bytes() {
        assert_eq!(
            request(CMD_CONNECT, &ip("127.0.0.1:80")).unwrap(),
            [5, 1, 0, 1, 127, 0, 0, 1, 0, 80]
        );
        let name = TargetAddr::domain("ab", 443).unwrap();
        assert_eq!(
            request(CMD_CONNECT, &name).unwrap(),
            [5, 1, 0, 3, 2, b'a', b'b', 1, 187]
        );
        let v6 = request(CMD_CONNECT, &ip("[::1]:1")).unwrap();
        assert_eq!(v6.len(), 22);
        assert_eq!((v6[3], v6[19], v6[21]), (ATYP_IPV6, 1, 1));
        // A Domain built by hand is still checked.
        let smuggled = TargetAddr::Domain("a\r\nb".into(), 1);
        assert!(request(CMD_CONNECT, &smuggled).is_err());
    }

    #[test]
    fn rfc1929_auth_bytes() {
        let c = Credentials::parse("joe:pw").unwrap();
        assert_eq!(
            auth_request(&c).unwrap(),
            [1, 3, b'j', b'o', b'e', 2, b'p', b'w']
        );
        let (req, used) = parse_auth_request(&auth_request(&c).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            (req.username.as_slice(), req.password.as_slice(), used),
            (&b"joe"[..], &b"pw"[..], 8)
        );
        assert_eq!(
            format!("{req:?}"),
            "Login { username: \"joe\", password: \"***\" }"
        );
        // Truncated anywhere: incomplete.
        let full = auth_request(&c).unwrap();
        for n in 0..full.len() {
            assert_eq!(parse_auth_request(&full[..n]).unwrap(), None, "{n}");
        }
        let refused = parse_auth_request(&[5, 3]).unwrap_err();
        assert_eq!(
            (refused.reason, refused.reply.as_slice()),
            (Malformed::BadVersion, &[1, 1][..])
        );
    }

    #[test]
    fn client_reads_replies() {
        assert_eq!(parse_method_selection(&[5]).unwrap(), None);
        assert_eq!(parse_method_selection(&[5, 2]).unwrap(), Some((2, 2)));
        let e = parse_method_selection(b"HT").unwrap_err();
        assert!(e.to_string().contains("version 72, not 5"), "{e}");
        assert_eq!(parse_auth_status(&[1, 0]).unwrap(), Some((0, 2)));
        assert_eq!(parse_auth_status(&[1]).unwrap(), None);
        assert!(parse_auth_status(&[7, 0]).is_err());

        let r = reply(REP_SUCCEEDED, &ip("10.0.0.1:4000"));
        assert_eq!(message_len(&r), Some(10));
        let (parsed, used) = parse_reply(&r).unwrap().unwrap();
        assert_eq!(
            (parsed.code, parsed.bound, used),
            (0, ip("10.0.0.1:4000"), 10)
        );
        for n in 0..r.len() {
            assert_eq!(parse_reply(&r[..n]).unwrap(), None, "{n}");
        }
        let bad = [5, 0, 0, 9, 0, 0];
        assert!(
            parse_reply(&bad)
                .unwrap_err()
                .to_string()
                .contains("address type 9")
        );
        assert_eq!(message_len(&bad), None);
        let empty = [5, 0, 0, 3, 0, 0, 0];
        assert!(
            parse_reply(&empty)
                .unwrap_err()
                .to_string()
                .contains("empty bound")
        );
        assert_eq!(reply_text(5), "connection refused by destination");
        assert_eq!(reply_text(200), "unassigned reply code");
    }

    #[test]
    fn greeting_cases() {
        assert_eq!(greeting(false), [5, 1, 0]);
        // Truncated: NMETHODS says 2, one method came.
        assert_eq!(parse_greeting(&[5, 2, 0]).unwrap(), None);
        assert_eq!(parse_greeting(&[5]).unwrap(), None);
        let zero = parse_greeting(&[5, 0]).unwrap_err();
        assert_eq!(
            (zero.reason, zero.reply.as_slice()),
            (Malformed::NoMethods, &[5, 0xFF][..])
        );
        let v = parse_greeting(&[4, 1, 0]).unwrap_err();
        assert_eq!(v.reason, Malformed::BadVersion);
        // Bytes after the greeting are not consumed.
        assert_eq!(
            parse_greeting(&[5, 1, 0, 5, 1]).unwrap(),
            Some((vec![0], 3))
        );
        assert_eq!(choose_method(&[0, 2], true), METHOD_USERPASS);
        assert_eq!(choose_method(&[0], true), METHOD_NO_ACCEPTABLE);
        assert_eq!(choose_method(&[2], false), METHOD_NO_ACCEPTABLE);
        let r = refuse_methods(&[0], true);
        assert_eq!(r.reason, Malformed::NoAcceptableMethod);
        assert!(
            r.message.contains("offered no authentication"),
            "{}",
            r.message
        );
    }

    #[test]
    fn request_cases() {
        let ok = request(CMD_CONNECT, &TargetAddr::domain("example.org", 80).unwrap()).unwrap();
        let (req, used) = parse_request(&ok).unwrap().unwrap();
        assert_eq!(
            (req.command, req.target.to_string(), used),
            (1, "example.org:80".into(), ok.len())
        );
        for n in 0..ok.len() {
            assert_eq!(parse_request(&ok[..n]).unwrap(), None, "{n}");
        }
        let cases: [(&[u8], Malformed, u8); 6] = [
            (&[4, 1, 0, 1], Malformed::BadVersion, REP_GENERAL_FAILURE),
            (&[5, 9], Malformed::Unsupported, REP_COMMAND_NOT_SUPPORTED),
            (
                &[5, 1, 0, 2, 0],
                Malformed::BadAddressType,
                REP_ADDRESS_TYPE_NOT_SUPPORTED,
            ),
            (
                &[5, 1, 0, 3, 0, 0, 80],
                Malformed::EmptyDomain,
                REP_GENERAL_FAILURE,
            ),
            (
                &[5, 1, 0, 3, 2, b'a', b' ', 0, 80],
                Malformed::BadDomain,
                REP_GENERAL_FAILURE,
            ),
            (
                &[5, 1, 0, 1, 127, 0, 0, 1, 0, 0],
                Malformed::NoPort,
                REP_GENERAL_FAILURE,
            ),
        ];
        for (bytes, reason, rep) in cases {
            let r = parse_request(bytes).unwrap_err();
            assert_eq!(r.reason, reason, "{bytes:?}");
            assert_eq!(r.reply, [5, rep, 0, 1, 0, 0, 0, 0, 0, 0], "{bytes:?}");
        }
        // UDP ASSOCIATE may name port 0 (the client does not know its port yet).
        let udp = [5, 3, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_request(&udp).unwrap().unwrap().0.command,
            CMD_UDP_ASSOCIATE
        );
        // A name that is an address literal is an address.
        let lit = [5, 1, 0, 3, 3, b':', b':', b'1', 0, 80];
        assert_eq!(
            parse_request(&lit).unwrap().unwrap().0.target,
            ip("[::1]:80")
        );
    }

    #[test]
    fn errors_map_to_reply_codes() {
        assert_eq!(
            reply_for_error(&Error::from_errno("connect", libc::ECONNREFUSED)),
            5
        );
        assert_eq!(
            reply_for_error(&Error::gai("getaddrinfo", libc::EAI_NONAME)),
            4
        );
        assert_eq!(reply_for_error(&Error::timeout("connect")), 6);
        assert_eq!(
            reply_for_error(&Error::from_errno("connect", libc::ENETUNREACH)),
            3
        );
        assert_eq!(
            reply_for_error(&Error::from_errno("connect", libc::EACCES)),
            1
        );
    }

    #[test]
    fn udp_datagrams() {
        let mut d = udp_header(&ip("127.0.0.1:53")).unwrap();
        d.extend_from_slice(b"hi");
        let p = parse_udp(&d).unwrap();
        assert_eq!(
            (p.frag, p.target, p.data),
            (0, ip("127.0.0.1:53"), &b"hi"[..])
        );
        assert!(parse_udp(&[0, 0, 0]).is_err());
        assert!(parse_udp(&[1, 0, 0, 1, 1, 2, 3, 4, 0, 1]).is_err());
        assert!(parse_udp(&[0, 0, 0, 1, 1, 2]).is_err());
        assert!(parse_udp(&[0, 0, 0, 7, 1, 2]).is_err());
    }

    fn any_target() -> impl Strategy<Value = TargetAddr> {
        prop_oneof![
            any::<(std::net::Ipv4Addr, u16)>()
                .prop_map(|(a, p)| TargetAddr::Ip(SocketAddr::from((a, p)))),
            any::<(std::net::Ipv6Addr, u16)>()
                .prop_map(|(a, p)| TargetAddr::Ip(SocketAddr::from((a, p)))),
            (
                "[a-z0-9][a-z0-9-]{0,62}(\\.[a-z0-9-]{1,62}){0,2}",
                any::<u16>()
            )
                .prop_map(|(h, p)| TargetAddr::domain(&h, p).unwrap()),
        ]
    }

    proptest! {
        #[test]
        fn request_round_trip(target in any_target(), cmd in 1u8..=3) {
            prop_assume!(cmd != CMD_CONNECT || target.port() != 0);
            let bytes = request(cmd, &target).unwrap();
            let (req, used) = parse_request(&bytes).unwrap().unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(req.command, cmd);
            prop_assert_eq!(req.target, target);
        }

        #[test]
        fn reply_round_trip(target in any_target(), rep in any::<u8>()) {
            let bytes = reply(rep, &target);
            prop_assert_eq!(message_len(&bytes), Some(bytes.len()));
            let (r, used) = parse_reply(&bytes).unwrap().unwrap();
            prop_assert_eq!((r.code, r.bound, used), (rep, target, bytes.len()));
        }

        #[test]
        fn udp_round_trip(target in any_target(), data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = udp_header(&target).unwrap();
            d.extend_from_slice(&data);
            let p = parse_udp(&d).unwrap();
            prop_assert_eq!(p.target, target);
            prop_assert_eq!(p.data, &data[..]);
        }

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_greeting(&bytes);
            let _ = parse_auth_request(&bytes);
            let _ = parse_request(&bytes);
            let _ = parse_reply(&bytes);
            let _ = parse_udp(&bytes);
        }
    }
}
