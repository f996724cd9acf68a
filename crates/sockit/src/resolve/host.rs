//! Host names: this machine's name, names to addresses and back, and the checks and IDNA
//! encoding every host name goes through before a system call.

use std::net::{IpAddr, Ipv4Addr};

use crate::addr::Family;
use crate::error::{Error, Result};

/// The longest host name accepted, in bytes, without a trailing dot (RFC 1035 §2.3.4:
/// 255 octets on the wire are 253 characters of text).
pub const MAX_HOST_LEN: usize = 253;

/// The longest label, in bytes (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// This machine's host name: Python's `socket.gethostname()`; one `gethostname(2)` call.
///
/// # Errors
/// [`ErrorKind::Os`](crate::ErrorKind::Os) with the errno if the call fails.
///
/// # Examples
/// ```
/// let name = sockit::resolve::gethostname().unwrap();
/// assert!(!name.is_empty());
/// ```
#[doc(alias = "gethostname(2)")]
pub fn gethostname() -> Result<String> {
    crate::sys::netdb::gethostname().map_err(|errno| Error::from_errno("gethostname", errno))
}

/// Checks a host name and encodes it for the resolver, as Python's `idna` codec does
/// before every host lookup.
///
/// ASCII names pass unchanged (case kept) after the label checks; a name with non-ASCII
/// characters is mapped and Punycode-encoded label by label with UTS 46 *transitional*
/// processing (the `idna` crate), the closest to the IDNA 2003 codec Python uses:
/// `Bücher.invalid` → `xn--bcher-kva.invalid`, `ＬＯＣＡＬＨＯＳＴ` → `localhost`,
/// `ß` → `ss`, and the dots `。．｡` separate labels.
///
/// Remaining differences from Python's codec (checked against CPython 3.11):
/// - ASCII labels of a name with non-ASCII characters are lower-cased (`Bücher.EXAMPLE` →
///   `xn--bcher-kva.example`; Python keeps `EXAMPLE`). DNS and `/etc/hosts` ignore case.
/// - UTS 46 applies the RFC 5893 bidi rule: `١٢a.invalid` (Arabic-Indic digits next to a
///   Latin letter) is refused here, accepted by Python (`xn--a-9pcd.invalid`).
/// - UTS 46 maps by a current Unicode version, IDNA 2003 by Unicode 3.2: characters added or
///   re-classified since can be mapped differently.
/// - Names over 253 bytes are refused here (Python passes them on and the C library answers
///   EAI_NONAME).
///
/// The same: `ß` → `ss`, `ς` → `σ`, zero-width joiners removed, fullwidth letters and
/// digits folded, `。．｡` as dots, `☃`/`🦀` accepted, empty labels and labels over 63 bytes
/// refused, ASCII-only names passed unchanged.
///
/// The empty name is returned as is (the callers give it Python's wildcard meaning).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), before any system call, for
/// a NUL byte (`embedded null character`), an empty label (`a..b`, `.a`; a single trailing
/// dot is fine), a label over 63 bytes, a name over 253 bytes, or a name IDNA refuses.
///
/// # Examples
/// ```
/// use sockit::resolve::encode_host;
/// assert_eq!(encode_host("x", "Bücher.invalid").unwrap(), "xn--bcher-kva.invalid");
/// assert_eq!(encode_host("x", "LOCALHOST").unwrap(), "LOCALHOST");
/// assert!(encode_host("x", "bad..name").is_err());
/// ```
pub fn encode_host(op: &'static str, name: &str) -> Result<String> {
    if name.contains('\0') {
        return Err(Error::invalid_input(op, "embedded null character"));
    }
    if name.is_empty() {
        return Ok(String::new());
    }
    let ascii = if name.is_ascii() {
        name.to_string()
    } else {
        idna_transitional(op, name)?
    };
    check_labels(op, &ascii)?;
    Ok(ascii)
}

/// UTS 46 to-ASCII with transitional processing (ß → ss, ς → σ, ZWJ/ZWNJ removed first).
fn idna_transitional(op: &'static str, name: &str) -> Result<String> {
    let mut mapped = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        match c {
            '\u{200C}' | '\u{200D}' => {}
            'ß' | 'ẞ' => mapped.push_str("ss"),
            'ς' => mapped.push('σ'),
            c => mapped.push(c),
        }
    }
    let out = idna::uts46::Uts46::new()
        .to_ascii(
            mapped.as_bytes(),
            idna::uts46::AsciiDenyList::EMPTY,
            idna::uts46::Hyphens::Allow,
            idna::uts46::DnsLength::Ignore,
        )
        .map_err(|_| Error::invalid_input(op, format!("IDNA cannot encode host name {name:?}")))?;
    Ok(out.into_owned())
}

/// Python's codec label rules plus the 253-byte limit.
fn check_labels(op: &'static str, name: &str) -> Result<()> {
    let body = name.strip_suffix('.').unwrap_or(name);
    if body.len() > MAX_HOST_LEN {
        return Err(Error::invalid_input(
            op,
            format!(
                "host name too long ({} bytes, at most {MAX_HOST_LEN})",
                body.len()
            ),
        ));
    }
    for label in body.split('.') {
        if label.is_empty() {
            return Err(Error::invalid_input(
                op,
                format!("empty label in host name {name:?}"),
            ));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(Error::invalid_input(
                op,
                format!(
                    "label too long in host name ({} bytes, at most {MAX_LABEL_LEN})",
                    label.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The IPv4 address of a host: Python's `socket.gethostbyname(name)`.
///
/// As CPython: the empty name is the wildcard (`0.0.0.0`, from a passive `getaddrinfo(3)`),
/// `<broadcast>` is `255.255.255.255`, dotted-quad text is taken as is, and anything else
/// is one `getaddrinfo(3)` call with `AF_INET` (so `127.1`, `0x7f.1` and names in
/// `/etc/hosts` work, and IPv6 text is refused). The name is checked and IDNA-encoded
/// first ([`encode_host`]).
///
/// # Errors
/// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) with the EAI code: `-2` unknown name, `-9`
///   for IPv6 text such as `::1` ("Address family for hostname not supported").
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) from [`encode_host`].
///
/// # Examples
/// ```
/// use std::net::Ipv4Addr;
/// assert_eq!(sockit::resolve::gethostbyname("127.0.0.1").unwrap(), Ipv4Addr::LOCALHOST);
/// assert_eq!(sockit::resolve::gethostbyname("::1").unwrap_err().code(), Some(-9));
/// ```
#[doc(alias = "gethostbyname(3)")]
pub fn gethostbyname(name: &str) -> Result<Ipv4Addr> {
    const OP: &str = "gethostbyname";
    let host = encode_host(OP, name)?;
    match setipaddr(OP, &host, Some(Family::Inet))? {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(Error::gai(OP, super::EAI_ADDRFAMILY)),
    }
}

/// CPython's `setipaddr`: one address for an encoded host name, for `family` (`None` is
/// AF_UNSPEC).
pub(crate) fn setipaddr(op: &'static str, host: &str, family: Option<Family>) -> Result<IpAddr> {
    if host.is_empty() {
        let recs = super::getaddrinfo(
            None,
            Some(&crate::Port::Number(0)),
            family,
            Some(crate::SockType::Dgram),
            0,
            libc::AI_PASSIVE,
        )
        .map_err(|e| e.with_op(op))?;
        return match recs.as_slice() {
            [one] => Ok(one.address.ip()),
            [] => Err(Error::gai(op, libc::EAI_NONAME)),
            _ => Err(Error::new(
                crate::ErrorKind::Os,
                op,
                None,
                "wildcard resolved to multiple address",
            )),
        };
    }
    if host == "255.255.255.255" || host == "<broadcast>" {
        return Ok(IpAddr::V4(Ipv4Addr::BROADCAST));
    }
    if family != Some(Family::Inet6) {
        if let Ok(a) = host.parse::<Ipv4Addr>() {
            return Ok(IpAddr::V4(a));
        }
    }
    if family != Some(Family::Inet) && !host.contains('%') {
        if let Ok(a) = host.parse::<std::net::Ipv6Addr>() {
            return Ok(IpAddr::V6(a));
        }
    }
    let recs =
        super::getaddrinfo(Some(host), None, family, None, 0, 0).map_err(|e| e.with_op(op))?;
    recs.first()
        .map(|r| r.address.ip())
        .ok_or_else(|| Error::gai(op, libc::EAI_NONAME))
}

/// A host's names and addresses: Python's `(hostname, aliaslist, ipaddrlist)` triple of
/// `gethostbyname_ex` and `gethostbyaddr` (C `struct hostent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEnt {
    /// The primary (official) name.
    pub name: String,
    /// Other names of the host.
    pub aliases: Vec<String>,
    /// The host's addresses, all of one family.
    pub addresses: Vec<IpAddr>,
}

/// Turns a C hostent (or h_errno) into Python's answer, checking the family as CPython's
/// `gethost_common` does.
fn hostent(
    op: &'static str,
    raw: std::result::Result<crate::sys::netdb::RawHostent, i32>,
    af: i32,
) -> Result<HostEnt> {
    let raw = raw.map_err(|h_errno| Error::host(op, h_errno))?;
    if raw.addrtype != af {
        return Err(Error::from_errno(op, libc::EAFNOSUPPORT));
    }
    Ok(HostEnt {
        name: raw.name,
        aliases: raw.aliases,
        addresses: raw.addrs,
    })
}

/// A host's primary name, aliases and IPv4 addresses: Python's
/// `socket.gethostbyname_ex(name)`.
///
/// As CPython: the name is first checked like [`gethostbyname`] (so IPv6 text is a Gai
/// error), then looked up with one `gethostbyname_r(3)` call (`/etc/hosts`, then DNS as
/// nsswitch says).
///
/// # Errors
/// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) from the first check (`-9` for `::1`).
/// - [`ErrorKind::Host`](crate::ErrorKind::Host) with h_errno from the lookup (`1` "Unknown
///   host").
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) from [`encode_host`].
///
/// # Examples
/// ```
/// let h = sockit::resolve::gethostbyname_ex("127.0.0.1").unwrap();
/// assert_eq!(h.name, "127.0.0.1");
/// assert_eq!(h.addresses, vec![std::net::Ipv4Addr::LOCALHOST]);
/// ```
#[doc(alias = "gethostbyname_r(3)")]
pub fn gethostbyname_ex(name: &str) -> Result<HostEnt> {
    const OP: &str = "gethostbyname_ex";
    let host = encode_host(OP, name)?;
    setipaddr(OP, &host, Some(Family::Inet))?;
    let c = std::ffi::CString::new(host)
        .map_err(|_| Error::invalid_input(OP, "embedded null character"))?;
    let raw = super::limited(OP, move || crate::sys::netdb::gethostbyname(&c))?;
    hostent(OP, raw, libc::AF_INET)
}

/// The names of a host given by address (or by name): Python's
/// `socket.gethostbyaddr(ip_address)`.
///
/// As CPython: the text is turned into one address (CPython's `setipaddr`: numeric text as
/// is, else `getaddrinfo(3)` with AF_UNSPEC), then one `gethostbyaddr_r(3)` call asks for
/// its names (`/etc/hosts`, then a DNS PTR query as nsswitch says).
///
/// # Errors
/// - [`ErrorKind::Host`](crate::ErrorKind::Host) with h_errno: `1` "Unknown host" for an
///   address without a name.
/// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) when the text is neither an address nor a
///   known name.
/// - [`ErrorKind::Os`](crate::ErrorKind::Os) for `""` ("wildcard resolved to multiple
///   address").
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) from [`encode_host`].
///
/// # Examples
/// ```no_run
/// let h = sockit::resolve::gethostbyaddr("127.0.0.1").unwrap();
/// assert_eq!(h.name, "localhost");
/// ```
#[doc(alias = "gethostbyaddr_r(3)")]
pub fn gethostbyaddr(address: &str) -> Result<HostEnt> {
    const OP: &str = "gethostbyaddr";
    let host = encode_host(OP, address)?;
    let ip = setipaddr(OP, &host, None)?;
    let af = match ip {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    };
    let raw = super::limited(OP, move || crate::sys::netdb::gethostbyaddr(ip))?;
    hostent(OP, raw, af)
}

/// A fully qualified name for `name` (this machine when empty): Python's
/// `socket.getfqdn(name='')`.
///
/// As Python: surrounding spaces are removed; an empty name, `0.0.0.0` or `::` means
/// [`gethostname`]; then [`gethostbyaddr`] is asked, and the first of its name and aliases
/// that contains a dot is the answer, else its primary name. When the lookup fails the name
/// itself is returned. Never fails.
///
/// # Examples
/// ```no_run
/// println!("{}", sockit::resolve::getfqdn(""));
/// ```
pub fn getfqdn(name: &str) -> String {
    let mut name = name.trim().to_string();
    if name.is_empty() || name == "0.0.0.0" || name == "::" {
        match gethostname() {
            Ok(n) => name = n,
            Err(_) => return name,
        }
    }
    match gethostbyaddr(&name) {
        Ok(h) => std::iter::once(&h.name)
            .chain(&h.aliases)
            .find(|n| n.contains('.'))
            .unwrap_or(&h.name)
            .clone(),
        Err(_) => name,
    }
}

/// `NI_NUMERICHOST`: the host as numeric text, no lookup.
pub const NI_NUMERICHOST: i32 = libc::NI_NUMERICHOST;
/// `NI_NUMERICSERV`: the port as a number, no services lookup.
pub const NI_NUMERICSERV: i32 = libc::NI_NUMERICSERV;
/// `NI_NOFQDN`: only the host part of local names.
pub const NI_NOFQDN: i32 = libc::NI_NOFQDN;
/// `NI_NAMEREQD`: fail (EAI_NONAME) when the address has no name.
pub const NI_NAMEREQD: i32 = libc::NI_NAMEREQD;
/// `NI_DGRAM`: the service is datagram (UDP) based.
pub const NI_DGRAM: i32 = libc::NI_DGRAM;

/// The host and service names of a socket address: Python's
/// `socket.getnameinfo(sockaddr, flags)`; one `getnameinfo(3)` call.
///
/// Returns `(host, service)`: a name from `/etc/hosts` or DNS (or numeric text when there is
/// none, unless [`NI_NAMEREQD`]), an IPv6 scope as `%ifname`; the service from the services
/// database (`http`) or the port as text. Python's tuple forms map to `SocketAddr`:
/// `(host, port)` is a `SocketAddrV4`, `(host, port, flowinfo, scope_id)` a `SocketAddrV6`.
///
/// # Errors
/// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) with the EAI code: `-2` with [`NI_NAMEREQD`]
///   and no name, `-1` for bad flags.
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an IPv6 flowinfo over
///   20 bits (`flowinfo must be 0-1048575.`), before any system call, as CPython.
///
/// # Examples
/// ```
/// use sockit::resolve::{getnameinfo, NI_NUMERICHOST, NI_NUMERICSERV};
/// let a = "127.0.0.1:80".parse().unwrap();
/// let (h, s) = getnameinfo(&a, NI_NUMERICHOST | NI_NUMERICSERV).unwrap();
/// assert_eq!((h.as_str(), s.as_str()), ("127.0.0.1", "80"));
/// ```
#[doc(alias = "getnameinfo(3)")]
pub fn getnameinfo(addr: &std::net::SocketAddr, flags: i32) -> Result<(String, String)> {
    if let std::net::SocketAddr::V6(a) = addr {
        if a.flowinfo() > 0xF_FFFF {
            return Err(Error::invalid_input(
                "getnameinfo",
                "flowinfo must be 0-1048575.",
            ));
        }
    }
    let a = *addr;
    let call = move || crate::sys::netdb::getnameinfo(&a, flags);
    // Numeric answers ask no resolver: no thread, no limit.
    let numeric = flags & NI_NUMERICHOST != 0;
    if numeric {
        call()
    } else {
        super::limited("getnameinfo", call)?
    }
    .map_err(|code| Error::gai("getnameinfo", code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_checks() {
        assert_eq!(encode_host("t", "").unwrap(), "");
        assert_eq!(encode_host("t", "a.b.").unwrap(), "a.b.");
        assert_eq!(encode_host("t", "ＬＯＣＡＬＨＯＳＴ").unwrap(), "localhost");
        assert_eq!(encode_host("t", "127。0。0。1").unwrap(), "127.0.0.1");
        assert_eq!(encode_host("t", "ß.invalid").unwrap(), "ss.invalid");
        // Python (IDNA 2003) agrees on these ...
        assert_eq!(encode_host("t", "ς.invalid").unwrap(), "xn--4xa.invalid");
        assert_eq!(encode_host("t", "🦀.invalid").unwrap(), "xn--zs9h.invalid");
        assert_eq!(
            encode_host("t", "a\u{200d}b.invalid").unwrap(),
            "ab.invalid"
        );
        // ... and differs on these (documented on encode_host).
        assert_eq!(
            encode_host("t", "Bücher.EXAMPLE").unwrap(),
            "xn--bcher-kva.example"
        );
        assert!(encode_host("t", "\u{0661}\u{0662}a.invalid").is_err());
        for bad in ["a..b", ".a", ".", "..", "local\0host"] {
            let e = encode_host("t", bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(encode_host("t", &"a".repeat(64)).is_err());
        assert!(encode_host("t", &"a".repeat(300)).is_err());
        let long = [
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(62),
        ]
        .join(".");
        assert_eq!(long.len(), 254);
        assert!(encode_host("t", &long).is_err());
        assert!(encode_host("t", &long[1..]).is_ok());
    }

    #[test]
    fn numeric_gethostbyname() {
        assert_eq!(gethostbyname("").unwrap(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(gethostbyname("<broadcast>").unwrap(), Ipv4Addr::BROADCAST);
        assert_eq!(gethostbyname("127.1").unwrap(), Ipv4Addr::LOCALHOST);
        assert_eq!(gethostbyname("0x7f.1").unwrap(), Ipv4Addr::LOCALHOST);
        assert_eq!(gethostbyname("localhost").unwrap(), Ipv4Addr::LOCALHOST);
        let e = gethostbyname("::1").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Gai);
        assert_eq!(e.code(), Some(crate::resolve::EAI_ADDRFAMILY));
    }
}
