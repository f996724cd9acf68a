//! Host, address, service and protocol lookups: Python's `socket.get*` functions.
//!
//! Host lookups go through the C library (`getaddrinfo(3)`, `getnameinfo(3)`,
//! `gethostbyname_r(3)`, `gethostbyaddr_r(3)`), so `/etc/hosts` and nsswitch apply; the EAI
//! code is kept in [`ErrorKind::Gai`] errors (std's `ToSocketAddrs` loses it) and h_errno
//! in [`ErrorKind::Host`] errors. Host names are checked before any system call (NUL bytes,
//! empty labels, labels over 63 bytes, names over 253 bytes are
//! [`ErrorKind::InvalidInput`]) and non-ASCII names are IDNA-encoded ([`encode_host`]).
//!
//! Every host lookup (`getaddrinfo(3)`, `getnameinfo(3)`, `gethostbyname_r(3)`,
//! `gethostbyaddr_r(3)`) runs under the process's lookup time limit
//! ([`set_lookup_timeout`]; none by default, as in Python): the C call blocks and cannot be
//! cancelled, so it runs on a thread of its own, and when the limit passes first the
//! caller gets [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) at once while the thread
//! is left to finish (its answer is dropped). Numeric hosts and `AI_NUMERICHOST` lookups,
//! which never ask a resolver, run in place.
//!
//! Services and protocols come from parsed databases ([`Services`], [`Protocols`]): the
//! system files, read once, else embedded tables; lookups are O(1) and make no system call.
//!
//! [`ErrorKind::Gai`]: crate::ErrorKind::Gai
//! [`ErrorKind::Host`]: crate::ErrorKind::Host
//! [`ErrorKind::InvalidInput`]: crate::ErrorKind::InvalidInput

mod host;
mod protocols;
mod services;

pub use host::{
    HostEnt, MAX_HOST_LEN, MAX_LABEL_LEN, NI_DGRAM, NI_NAMEREQD, NI_NOFQDN, NI_NUMERICHOST,
    NI_NUMERICSERV, encode_host, getfqdn, gethostbyaddr, gethostbyname, gethostbyname_ex,
    gethostname, getnameinfo,
};
pub use protocols::{Protocols, Protoent, SYSTEM_PROTOCOLS};
pub use services::{SYSTEM_SERVICES, Servent, Services, Source};

use std::ffi::CString;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::addr::{Family, Port, SockType};
use crate::error::{Error, Result};

/// The process's lookup time limit in milliseconds; `u64::MAX` for none.
static LOOKUP_TIMEOUT_MS: AtomicU64 = AtomicU64::new(u64::MAX);

/// Sets the time limit of every host lookup of this process (`None`: no limit, the
/// default, as Python's `socket.getaddrinfo`). The `sockit` command sets it from
/// `--dns-timeout SECS`.
///
/// A lookup that runs out returns [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)
/// (`getaddrinfo: timed out`); the blocked C call goes on on its own thread and its answer
/// is dropped.
pub fn set_lookup_timeout(limit: Option<Duration>) {
    let ms = limit.map_or(u64::MAX, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1).max(1)
    });
    LOOKUP_TIMEOUT_MS.store(ms, Ordering::Relaxed);
}

/// The process's lookup time limit ([`set_lookup_timeout`]).
pub fn lookup_timeout() -> Option<Duration> {
    match LOOKUP_TIMEOUT_MS.load(Ordering::Relaxed) {
        u64::MAX => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

/// Runs the blocking lookup `call` under the process's time limit (see the module docs).
pub(crate) fn limited<T: Send + 'static>(
    op: &'static str,
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    within(op, lookup_timeout(), call)
}

/// Runs the blocking lookup `call` on a thread of its own for at most `limit` (`None`:
/// in place, no limit): the one way a lookup is given a time limit (the process's, or a
/// caller's deadline as in [`client::resolve_until`](crate::client::resolve_until)).
///
/// # Errors
/// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) named `op` when `limit` passes
/// first; [`ErrorKind::Os`](crate::ErrorKind::Os) when no thread can be started.
pub(crate) fn within<T: Send + 'static>(
    op: &'static str,
    limit: Option<Duration>,
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let Some(limit) = limit else {
        return Ok(call());
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("sockit-lookup".into())
        .spawn(move || {
            let _ = tx.send(call());
        });
    if let Err(e) = spawned {
        return Err(Error::from_io(op, e));
    }
    match rx.recv_timeout(limit) {
        Ok(v) => Ok(v),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::timeout(op)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Error::new(
            crate::ErrorKind::Os,
            op,
            None,
            "the lookup thread ended without an answer",
        )),
    }
}

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

/// `EAI_ADDRFAMILY` (glibc: -9): the host has no address of the family asked for.
/// Missing from the `libc` crate, which follows POSIX here.
pub const EAI_ADDRFAMILY: i32 = -9;
/// `EAI_NONAME` (-2): name or service not known.
pub const EAI_NONAME: i32 = libc::EAI_NONAME;
/// `EAI_SERVICE` (-8): the service is not known for the socket type.
pub const EAI_SERVICE: i32 = libc::EAI_SERVICE;
/// `EAI_FAMILY` (-6): the address family is not supported.
pub const EAI_FAMILY: i32 = libc::EAI_FAMILY;

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
/// Runs under the lookup time limit ([`set_lookup_timeout`]).
///
/// # Errors
/// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) with the EAI code (`-2` "Name or service not
///   known", `-9` "Address family for hostname not supported" ...).
/// - [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) when the lookup time limit passes.
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
        Some(h) => Some(
            CString::new(encode_host(OP, h)?)
                .map_err(|_| Error::invalid_input(OP, "embedded null character"))?,
        ),
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
    let (af, st) = (
        family.map_or(libc::AF_UNSPEC, Family::as_raw),
        socktype.map_or(0, SockType::as_raw),
    );
    // A numeric host asks no resolver: no thread, no limit.
    let numeric =
        flags & AI_NUMERICHOST != 0 || host.is_some_and(|h| h.parse::<std::net::IpAddr>().is_ok());
    let call = move || {
        crate::sys::getaddrinfo(
            host_c.as_deref(),
            serv_c.as_deref(),
            af,
            st,
            protocol,
            flags,
        )
    };
    let raw =
        if numeric { call() } else { limited(OP, call)? }.map_err(|code| Error::gai(OP, code))?;
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

/// The service name for a port: Python's `socket.getservbyport(port, proto=None)`.
///
/// Looks the port up in the system services database ([`Services::system`]: `/etc/services`
/// parsed once, else the embedded table); no system call after the first use. `proto`
/// `None` takes the first entry for the port whatever its protocol, as glibc does
/// (`514` is `shell`, `514/udp` is `syslog`). Protocol names are case-sensitive.
///
/// # Errors
/// - [`ErrorKind::Os`](crate::ErrorKind::Os) without a code, `port/proto not found`, when no
///   entry matches (as Python's `OSError`).
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a protocol with a NUL.
///
/// # Examples
/// ```
/// assert_eq!(sockit::resolve::getservbyport(80, Some("tcp")).unwrap(), "http");
/// assert!(sockit::resolve::getservbyport(1, Some("nosuchproto")).is_err());
/// ```
#[doc(alias = "getservbyport(3)")]
pub fn getservbyport(port: u16, proto: Option<&str>) -> Result<String> {
    Services::system()
        .getservbyport(port, proto)
        .map(|e| e.name.clone())
}

/// The port of a service name: Python's `socket.getservbyname(name, proto=None)`.
///
/// Looks the name (or an alias; case-sensitive) up in the system services database
/// ([`Services::system`]); `proto` `None` takes the first entry whatever its protocol.
///
/// # Errors
/// - [`ErrorKind::Os`](crate::ErrorKind::Os) without a code, `service/proto not found`.
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a NUL in either text.
///
/// # Examples
/// ```
/// assert_eq!(sockit::resolve::getservbyname("www", Some("tcp")).unwrap(), 80);
/// ```
#[doc(alias = "getservbyname(3)")]
pub fn getservbyname(name: &str, proto: Option<&str>) -> Result<u16> {
    Services::system()
        .getservbyname(name, proto)
        .map(|e| e.port)
}

/// The number of a protocol name: Python's `socket.getprotobyname(name)`.
///
/// Looks the name (or an alias; case-sensitive: `tcp` and `TCP` are both listed, `Tcp` is
/// not) up in the system protocols database ([`Protocols::system`]: `/etc/protocols` parsed
/// once, else the embedded table).
///
/// # Errors
/// - [`ErrorKind::Os`](crate::ErrorKind::Os) without a code, `protocol not found`.
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a name with a NUL.
///
/// # Examples
/// ```
/// assert_eq!(sockit::resolve::getprotobyname("tcp").unwrap(), 6);
/// ```
#[doc(alias = "getprotobyname(3)")]
pub fn getprotobyname(name: &str) -> Result<i32> {
    Protocols::system().getprotobyname(name).map(|e| e.number)
}

/// Refuses text with a NUL byte (C would silently cut it there).
/// The largest services or protocols file read, in bytes (16 MiB; the system's files are
/// about 13 KiB): a larger one (or an endless one, `/dev/zero`) is refused, not read into
/// memory.
pub const MAX_DATABASE_FILE: u64 = 16 << 20;

/// Reads a services/protocols database file (its text, invalid UTF-8 replaced), at most
/// [`MAX_DATABASE_FILE`] bytes.
///
/// # Errors
/// [`ErrorKind::Os`](crate::ErrorKind::Os) with the errno when it cannot be read (`op`
/// names the file's role); [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
/// when it is larger than [`MAX_DATABASE_FILE`].
pub fn read_database(path: &std::path::Path, op: &'static str) -> Result<String> {
    let bytes = crate::files::read_capped(path, MAX_DATABASE_FILE, Some(op), op)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn check_no_nul(op: &'static str, text: &str) -> Result<()> {
    if text.contains('\0') {
        return Err(Error::invalid_input(op, "embedded null character"));
    }
    Ok(())
}
