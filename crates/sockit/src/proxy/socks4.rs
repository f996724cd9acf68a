//! SOCKS version 4 on the wire, with the SOCKS4a extension for host names.
//!
//! (The protocol has no RFC: its reference is NEC's "SOCKS: A protocol for TCP proxy
//! across firewalls" and, for 4a, "SOCKS 4A: A Simple Extension to SOCKS 4 Protocol".)
//!
//! ```text
//! request  VN=4 CD DSTPORT(2) DSTIP(4) USERID... 0x00 [HOSTNAME... 0x00]
//! reply    VN=0 CD DSTPORT(2) DSTIP(4)
//! ```
//!
//! `CD` is 1 `CONNECT` or 2 `BIND` in a request; in a reply 90 granted, 91 rejected or
//! failed, 92 and 93 rejected for identd reasons. SOCKS4a: a `DSTIP` of `0.0.0.x` with
//! `x` not 0 means a host name follows the user id, for the server to resolve. SOCKS4
//! carries no IPv6 address and no password: only a user id.
//!
//! The server-side parser ([`parse_request`]) refuses with the one reply the protocol has,
//! `00 5B 0000 00000000` (91), and caps the user id and the name at
//! [`MAX_NAME`] bytes each.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use super::{MAX_NAME, Malformed, Parsed, Refusal, TargetAddr, check_name};
use crate::error::{Error, Result};

/// The request's version byte, 4.
pub const VERSION: u8 = 4;
/// The reply's version byte, 0.
pub const REPLY_VERSION: u8 = 0;
/// Command 1: `CONNECT`.
pub const CMD_CONNECT: u8 = 1;
/// Command 2: `BIND`.
pub const CMD_BIND: u8 = 2;
/// Reply 90: request granted.
pub const REP_GRANTED: u8 = 90;
/// Reply 91: request rejected or failed.
pub const REP_REJECTED: u8 = 91;
/// Reply 92: rejected, the server cannot reach identd on the client.
pub const REP_NO_IDENTD: u8 = 92;
/// Reply 93: rejected, identd and the client report different user ids.
pub const REP_IDENTD_MISMATCH: u8 = 93;
/// The length of a reply: 8 bytes.
pub const REPLY_LEN: usize = 8;

/// The text for a reply code, as errors print it: `91` → `request rejected or failed`.
pub fn reply_text(code: u8) -> &'static str {
    match code {
        REP_GRANTED => "request granted",
        REP_REJECTED => "request rejected or failed",
        REP_NO_IDENTD => "request rejected: the server cannot reach identd on the client",
        REP_IDENTD_MISMATCH => "request rejected: identd reports another user id",
        _ => "unassigned reply code",
    }
}

// ---------------------------------------------------------------------------------------
// Client side.

/// A request for `target`: SOCKS4 for an IPv4 address, SOCKS4a (`DSTIP` 0.0.0.1 and the
/// name after the user id) for a name.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an IPv6 target (SOCKS4
/// cannot carry one) or one of `0.0.0.1`-`0.0.0.255` (SOCKS4a's marker), a user id longer than 255 bytes or with a NUL, or a name that
/// [`TargetAddr::domain`] refuses.
pub fn request(command: u8, target: &TargetAddr, user_id: &[u8]) -> Result<Vec<u8>> {
    if user_id.len() > MAX_NAME || user_id.contains(&0) {
        return Err(Error::invalid_input(
            "proxy auth",
            "SOCKS4 user id must be at most 255 bytes, without NUL",
        ));
    }
    let mut out = vec![VERSION, command];
    out.extend_from_slice(&target.port().to_be_bytes());
    match target {
        TargetAddr::Ip(SocketAddr::V4(a)) => {
            let o = a.ip().octets();
            if o[..3] == [0, 0, 0] && o[3] != 0 {
                return Err(Error::invalid_input(
                    "proxy",
                    format!(
                        "SOCKS4 cannot carry {} (0.0.0.x marks a SOCKS4a name)",
                        a.ip()
                    ),
                ));
            }
            out.extend_from_slice(&o);
            out.extend_from_slice(user_id);
            out.push(0);
        }
        TargetAddr::Ip(SocketAddr::V6(a)) => {
            return Err(Error::invalid_input(
                "proxy",
                format!(
                    "SOCKS4 cannot carry an IPv6 address ({}); use --proxy-type socks5 or http",
                    a.ip()
                ),
            ));
        }
        TargetAddr::Domain(name, _) => {
            check_name(name.as_bytes()).map_err(|why| {
                Error::invalid_input("proxy", format!("target host {name:?}: {why}"))
            })?;
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(user_id);
            out.push(0);
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
    }
    Ok(out)
}

/// A server's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// `CD`: 90 granted, else a refusal ([`reply_text`]).
    pub code: u8,
    /// `DSTIP`/`DSTPORT`: for `BIND` where the server listens; for `CONNECT` usually
    /// `0.0.0.0:0`.
    pub bound: SocketAddrV4,
}

/// Reads a server's 8-byte reply. A version byte of 4 is accepted as well as 0, as some
/// servers send it.
///
/// # Errors
/// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for another version byte.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>> {
    if let Some(&v) = buf.first()
        && v != REPLY_VERSION
        && v != VERSION
    {
        return Err(Error::protocol(
            "proxy",
            format!("SOCKS4 reply has version {v}, not 0 (is it a SOCKS4 proxy?)"),
        ));
    }
    if buf.len() < REPLY_LEN {
        return Ok(None);
    }
    let port = u16::from_be_bytes([buf[2], buf[3]]);
    let ip = Ipv4Addr::new(buf[4], buf[5], buf[6], buf[7]);
    Ok(Some((
        Reply {
            code: buf[1],
            bound: SocketAddrV4::new(ip, port),
        },
        REPLY_LEN,
    )))
}

// ---------------------------------------------------------------------------------------
// Server side.

/// A client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// [`CMD_CONNECT`] or [`CMD_BIND`].
    pub command: u8,
    /// The target: an IPv4 address, or (SOCKS4a) a name.
    pub target: TargetAddr,
    /// The user id (may be empty; not necessarily UTF-8).
    pub user_id: Vec<u8>,
}

impl Request {
    /// True when the request used the SOCKS4a extension (a name).
    pub fn is_4a(&self) -> bool {
        matches!(self.target, TargetAddr::Domain(..))
    }
}

fn refuse(reason: Malformed, message: impl Into<String>) -> Refusal {
    let unspecified = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
    Refusal::new(reason, message, reply(REP_REJECTED, unspecified).to_vec())
}

/// The bytes before the next NUL in `buf`, capped: `Ok(None)` incomplete, `Err` when more
/// than [`MAX_NAME`] bytes came without a NUL.
fn nul_terminated(buf: &[u8]) -> std::result::Result<Option<&[u8]>, ()> {
    match buf.iter().take(MAX_NAME + 1).position(|&b| b == 0) {
        Some(i) => Ok(Some(&buf[..i])),
        None if buf.len() > MAX_NAME => Err(()),
        None => Ok(None),
    }
}

/// Reads a client's request.
///
/// # Errors
/// A [`Refusal`] with reply 91: [`Malformed::BadVersion`] for a version other than 4,
/// [`Malformed::Unsupported`] for a command other than 1 and 2, [`Malformed::BadRequest`]
/// for a user id over 255 bytes, [`Malformed::EmptyDomain`] / [`Malformed::BadDomain`]
/// for a SOCKS4a name that is empty, over 255 bytes or refused by
/// [`TargetAddr::domain`], [`Malformed::NoPort`] for a `CONNECT` to port 0.
pub fn parse_request(buf: &[u8]) -> Parsed<Request> {
    if let Some(&v) = buf.first()
        && v != VERSION
    {
        return Err(refuse(
            Malformed::BadVersion,
            format!("SOCKS4 request: version {v}, not 4"),
        ));
    }
    if let Some(&cmd) = buf.get(1)
        && cmd != CMD_CONNECT
        && cmd != CMD_BIND
    {
        return Err(refuse(
            Malformed::Unsupported,
            format!("SOCKS4 request: command {cmd} is not CONNECT or BIND"),
        ));
    }
    if buf.len() < 8 {
        return Ok(None);
    }
    let port = u16::from_be_bytes([buf[2], buf[3]]);
    let ip = Ipv4Addr::new(buf[4], buf[5], buf[6], buf[7]);
    let user_id = match nul_terminated(&buf[8..]) {
        Ok(Some(u)) => u,
        Ok(None) => return Ok(None),
        Err(()) => {
            return Err(refuse(
                Malformed::BadRequest,
                "SOCKS4 request: user id longer than 255 bytes",
            ));
        }
    };
    let mut used = 8 + user_id.len() + 1;
    let octets = ip.octets();
    let target = if octets[..3] == [0, 0, 0] && octets[3] != 0 {
        let name = match nul_terminated(&buf[used..]) {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(None),
            Err(()) => {
                return Err(refuse(
                    Malformed::BadDomain,
                    "SOCKS4a request: host name longer than 255 bytes",
                ));
            }
        };
        used += name.len() + 1;
        if name.is_empty() {
            return Err(refuse(
                Malformed::EmptyDomain,
                "SOCKS4a request: zero-length host name",
            ));
        }
        check_name(name)
            .map_err(|why| refuse(Malformed::BadDomain, format!("SOCKS4a request: {why}")))?;
        TargetAddr::domain(&String::from_utf8_lossy(name), port)
            .map_err(|e| refuse(Malformed::BadDomain, e.message().to_string()))?
    } else {
        TargetAddr::Ip(SocketAddr::V4(SocketAddrV4::new(ip, port)))
    };
    let command = buf[1];
    if command == CMD_CONNECT && port == 0 {
        return Err(refuse(
            Malformed::NoPort,
            format!("SOCKS4 request: CONNECT to {target} (port 0)"),
        ));
    }
    Ok(Some((
        Request {
            command,
            target,
            user_id: user_id.to_vec(),
        },
        used,
    )))
}

/// The server's reply: `00 CD DSTPORT DSTIP`.
pub fn reply(code: u8, bound: SocketAddrV4) -> [u8; REPLY_LEN] {
    let [p0, p1] = bound.port().to_be_bytes();
    let [a, b, c, d] = bound.ip().octets();
    [REPLY_VERSION, code, p0, p1, a, b, c, d]
}

/// The refusal of a request the server will not serve (a policy or a failed connect),
/// with its reply 91.
pub fn refuse_request(reason: Malformed, message: impl Into<String>) -> Refusal {
    refuse(reason, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> TargetAddr {
        TargetAddr::Ip(s.parse().unwrap())
    }

    #[test]
    fn socks4_and_4a_request_bytes() {
        assert_eq!(
            request(CMD_CONNECT, &ip("127.0.0.1:80"), b"joe").unwrap(),
            [4, 1, 0, 80, 127, 0, 0, 1, b'j', b'o', b'e', 0]
        );
        let name = TargetAddr::domain("ab", 80).unwrap();
        assert_eq!(
            request(CMD_CONNECT, &name, b"").unwrap(),
            [4, 1, 0, 80, 0, 0, 0, 1, 0, b'a', b'b', 0]
        );
        let e = request(CMD_CONNECT, &ip("[::1]:80"), b"").unwrap_err();
        assert!(e.to_string().contains("cannot carry an IPv6"), "{e}");
        assert!(request(CMD_CONNECT, &ip("127.0.0.1:80"), b"a\0b").is_err());
    }

    #[test]
    fn replies() {
        let r = reply(REP_GRANTED, SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 5));
        assert_eq!(r, [0, 90, 0, 5, 1, 2, 3, 4]);
        for n in 0..r.len() {
            assert_eq!(parse_reply(&r[..n]).unwrap(), None);
        }
        let (p, used) = parse_reply(&r).unwrap().unwrap();
        assert_eq!(
            (p.code, p.bound.to_string(), used),
            (90, "1.2.3.4:5".into(), 8)
        );
        assert!(
            parse_reply(b"HTTP/1.0")
                .unwrap_err()
                .to_string()
                .contains("version 72")
        );
        assert_eq!(reply_text(91), "request rejected or failed");
    }

    #[test]
    fn server_reads_requests() {
        let full = request(
            CMD_CONNECT,
            &TargetAddr::domain("host.test", 22).unwrap(),
            b"me",
        )
        .unwrap();
        for n in 0..full.len() {
            assert_eq!(parse_request(&full[..n]).unwrap(), None, "{n}");
        }
        let mut more = full.clone();
        more.extend_from_slice(b"data");
        let (req, used) = parse_request(&more).unwrap().unwrap();
        assert!(req.is_4a());
        assert_eq!(
            (req.target.to_string(), req.user_id, used),
            ("host.test:22".into(), b"me".to_vec(), full.len())
        );

        let rejected = [0, 91, 0, 0, 0, 0, 0, 0];
        let long_user = [&[4u8, 1, 0, 80, 1, 1, 1, 1][..], &[b'u'; 256]].concat();
        let long_name = [&[4u8, 1, 0, 80, 0, 0, 0, 1, 0][..], &[b'h'; 256]].concat();
        let cases: [(&[u8], Malformed); 6] = [
            (&[5, 1], Malformed::BadVersion),
            (&[4, 3], Malformed::Unsupported),
            (&long_user, Malformed::BadRequest),
            (&long_name, Malformed::BadDomain),
            (&[4, 1, 0, 80, 0, 0, 0, 1, 0, 0], Malformed::EmptyDomain),
            (&[4, 1, 0, 0, 127, 0, 0, 1, 0], Malformed::NoPort),
        ];
        for (bytes, reason) in cases {
            let r = parse_request(bytes).unwrap_err();
            assert_eq!(
                (r.reason, r.reply.as_slice()),
                (reason, &rejected[..]),
                "{bytes:?}"
            );
        }
        // 0.0.0.0 is an address, not the 4a marker.
        let zero = [4, 2, 0, 80, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_request(&zero).unwrap().unwrap().0.target,
            ip("0.0.0.0:80")
        );
    }

    proptest! {
        #[test]
        fn request_round_trip(a in any::<std::net::Ipv4Addr>(), port in 1u16.., user in "[a-z]{0,20}", name in proptest::option::of("[a-z][a-z0-9-]{0,20}(\\.[a-z0-9-]{1,20}){0,2}")) {
            let target = match name {
                Some(n) => TargetAddr::domain(&n, port).unwrap(),
                None => TargetAddr::Ip(SocketAddr::from((a, port))),
            };
            // 0.0.0.x is SOCKS4a's marker, refused as an address.
            let marker = matches!(&target, TargetAddr::Ip(SocketAddr::V4(v)) if v.ip().octets()[..3] == [0, 0, 0] && v.ip().octets()[3] != 0);
            prop_assert_eq!(request(CMD_CONNECT, &target, b"").is_err(), marker);
            prop_assume!(!marker);
            let bytes = request(CMD_CONNECT, &target, user.as_bytes()).unwrap();
            let (req, used) = parse_request(&bytes).unwrap().unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(req.target, target);
            prop_assert_eq!(req.user_id, user.into_bytes());
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_request(&bytes);
            let _ = parse_reply(&bytes);
        }
    }
}
