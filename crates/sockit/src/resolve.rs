//! Host, address and service lookups through the system resolver.
//!
//! Every lookup goes through the C library (`getaddrinfo(3)`, `getnameinfo(3)`), so
//! `/etc/hosts` and nsswitch apply and the EAI code is kept in [`ErrorKind::Gai`] errors
//! (std's `ToSocketAddrs` loses it).
//!
//! [`ErrorKind::Gai`]: crate::ErrorKind::Gai

use std::ffi::CString;
use std::net::SocketAddr;

use crate::addr::{Family, Port, SockType};
use crate::error::{Error, Result};

/// `AI_PASSIVE`: the address is for `bind(2)` (a missing host means the wildcard).
pub const AI_PASSIVE: i32 = libc::AI_PASSIVE;
/// `AI_CANONNAME`: fill in the canonical name of the first record.
pub const AI_CANONNAME: i32 = libc::AI_CANONNAME;
/// `AI_NUMERICHOST`: the host must be numeric; no name lookup at all.
pub const AI_NUMERICHOST: i32 = libc::AI_NUMERICHOST;
/// `AI_NUMERICSERV`: the port must be numeric.
pub const AI_NUMERICSERV: i32 = libc::AI_NUMERICSERV;
/// `AI_ADDRCONFIG`: only families configured on this machine.
pub const AI_ADDRCONFIG: i32 = libc::AI_ADDRCONFIG;
/// `AI_V4MAPPED`: IPv4 answers as IPv4-mapped IPv6 when asking for AF_INET6.
pub const AI_V4MAPPED: i32 = libc::AI_V4MAPPED;
/// `AI_ALL`: with AI_V4MAPPED, both IPv6 and mapped IPv4 answers.
pub const AI_ALL: i32 = libc::AI_ALL;

/// One record of a [`getaddrinfo`] answer: Python's `(family, type, proto, canonname,
/// sockaddr)` tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// Address family of `address`.
    pub family: Family,
    /// Socket type the record is for (`None` for a type sockit has no name for).
    pub socktype: Option<SockType>,
    /// Protocol number (6 TCP, 17 UDP, 0 for raw).
    pub protocol: i32,
    /// Canonical name (only on the first record, and only with [`AI_CANONNAME`]); else "".
    pub canonname: String,
    /// The socket address.
    pub address: SocketAddr,
}

/// Resolves a host and port to socket addresses.
///
/// Python: `socket.getaddrinfo(host, port, family=0, type=0, proto=0, flags=0)`; one
/// `getaddrinfo(3)` call. `family` `None` is `AF_UNSPEC`, `socktype` `None` is any type.
///
/// # Errors
/// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) with the EAI code (`-2` "Name or service not
///   known", `-9` "Address family for hostname not supported" ...).
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a host with a NUL
///   byte, or both host and port missing.
pub fn getaddrinfo(
    host: Option<&str>,
    port: Option<&Port>,
    family: Option<Family>,
    socktype: Option<SockType>,
    protocol: i32,
    flags: i32,
) -> Result<Vec<AddrInfo>> {
    const OP: &str = "getaddrinfo";
    let host_c = match host {
        Some(h) => {
            Some(CString::new(h).map_err(|_| Error::invalid_input(OP, "embedded null character"))?)
        }
        None => None,
    };
    let serv_c = match port {
        Some(p) => Some(
            CString::new(p.to_string())
                .map_err(|_| Error::invalid_input(OP, "embedded null character"))?,
        ),
        None => None,
    };
    if host_c.is_none() && serv_c.is_none() {
        return Err(Error::gai(OP, libc::EAI_NONAME));
    }
    let raw = crate::sys::getaddrinfo(
        host_c.as_deref(),
        serv_c.as_deref(),
        family.map_or(libc::AF_UNSPEC, Family::as_raw),
        socktype.map_or(0, SockType::as_raw),
        protocol,
        flags,
    )
    .map_err(|code| Error::gai(OP, code))?;
    Ok(raw
        .into_iter()
        .filter_map(|r| {
            Some(AddrInfo {
                family: Family::from_raw(r.family)?,
                socktype: SockType::from_raw(r.socktype),
                protocol: r.protocol,
                canonname: r.canonname,
                address: r.addr?,
            })
        })
        .collect())
}
