//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, versions 1 and 2): the header a
//! relay puts before a connection's first byte to tell the server who the original
//! client was. Bytes on the wire only: [`parse`] and [`Header::to_bytes`], no I/O.
//!
//! - **Version 1** is one line of text, at most 107 bytes with its CRLF:
//!   `PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n`, `PROXY TCP6 …`, or
//!   `PROXY UNKNOWN …\r\n` (the receiver uses the connection's own addresses).
//! - **Version 2** is binary: a 12-byte signature, version and command (`LOCAL` for a
//!   connection the relay made itself, such as a health check; `PROXY` for a relayed one),
//!   address family and transport (TCP or UDP over IPv4 or IPv6, Unix stream or datagram,
//!   or unspecified), a length, the addresses, then optional TLVs.
//!
//! Contracts of [`parse`]:
//! - It is incremental: `Ok(None)` asks for more bytes, but only while the bytes seen can
//!   still begin a valid header; anything else is refused at once.
//! - It is bounded: a v1 line must end within 107 bytes; a v2 header may announce at most
//!   [`MAX_HEADER_BYTES`] in all (the spec allows 65,551). A caller that reads in chunks
//!   never needs more than that.
//! - It is strict where the spec says "must": exactly one space between fields, CRLF and
//!   never a lone CR or LF, no leading zeros, the family's own address format, version 2
//!   and commands 0 and 1 only, known families and transports only, an address block as
//!   long as its family needs, TLVs that fit the header. TLVs are skipped (returned as
//!   found, not interpreted) except `PP2_TYPE_CRC32C`, which is verified.
//! - Errors are [`ErrorKind::Protocol`](crate::ErrorKind::Protocol), operation
//!   `proxy protocol`, naming the fault.
//!
//! # Examples
//! ```
//! use sockit::proxy_protocol::{parse, Header, Version};
//! // The spec's example (section 2.1), followed by the first request bytes.
//! let wire = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
//! let (header, used) = parse(wire)?.unwrap();
//! assert_eq!(header.source(), Some("192.168.0.1:56324".parse().unwrap()));
//! assert_eq!(&wire[used..], b"GET / HTTP/1.1\r\n");
//! // Built again, in either version.
//! let src = "192.168.0.1:56324".parse().unwrap();
//! let dst = "192.168.0.11:443".parse().unwrap();
//! let h = Header::proxied(Version::V1, src, dst);
//! assert_eq!(h.to_bytes()?, &wire[..used]);
//! let v2 = Header::proxied(Version::V2, src, dst).to_bytes()?;
//! assert_eq!(v2.len(), 16 + 12);
//! # Ok::<(), sockit::Error>(())
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{Error, Result};

/// The 12 bytes that open a version 2 header.
pub const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
/// The longest version 1 line, CRLF included (107 bytes).
pub const V1_MAX_LINE: usize = 107;
/// The largest version 2 header this parser accepts, the 16 fixed bytes included
/// (4096). Real headers are far smaller (IPv6 with a few TLVs: under 300 bytes).
pub const MAX_HEADER_BYTES: usize = 4096;
/// The length of each address in a v2 `AF_UNIX` block (108 bytes, `sun_path`).
pub const UNIX_ADDR_LEN: usize = 108;

/// TLV type `PP2_TYPE_ALPN`.
pub const PP2_TYPE_ALPN: u8 = 0x01;
/// TLV type `PP2_TYPE_AUTHORITY` (the host name the client asked for, e.g. SNI).
pub const PP2_TYPE_AUTHORITY: u8 = 0x02;
/// TLV type `PP2_TYPE_CRC32C`: a CRC32c of the whole header, verified by [`parse`].
pub const PP2_TYPE_CRC32C: u8 = 0x03;
/// TLV type `PP2_TYPE_NOOP` (padding).
pub const PP2_TYPE_NOOP: u8 = 0x04;
/// TLV type `PP2_TYPE_UNIQUE_ID`.
pub const PP2_TYPE_UNIQUE_ID: u8 = 0x05;

const V1_PREFIX: &[u8] = b"PROXY ";
const OP: &str = "proxy protocol";

fn bad(message: impl Into<String>) -> Error {
    Error::protocol(OP, message)
}

/// Which version of the protocol a header is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// Version 1: one line of text.
    V1,
    /// Version 2: binary.
    V2,
}

/// What the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// The relay made the connection itself (a health check): use the connection's own
    /// addresses. Version 1 writes it as `UNKNOWN`.
    Local,
    /// The relay carries a client's connection: the addresses are the client's.
    Proxy,
}

/// The transport the original connection used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unspecified.
    Unspec,
    /// `SOCK_STREAM`: TCP, or a Unix stream socket.
    Stream,
    /// `SOCK_DGRAM`: UDP, or a Unix datagram socket.
    Datagram,
}

/// The original connection's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// None given (v1 `UNKNOWN`, v2 `AF_UNSPEC`, or a `LOCAL` command).
    Unspec,
    /// IPv4 or IPv6 addresses and ports, both of one family.
    Inet {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// Unix socket paths (v2 only): the bytes before the first NUL, or for an abstract
    /// name a NUL followed by the name (trailing NULs removed).
    Unix {
        /// The client's path.
        source: Vec<u8>,
        /// The path the client connected to.
        destination: Vec<u8>,
    },
}

/// One type-length-value entry of a v2 header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tlv {
    /// The type (`PP2_TYPE_*`).
    pub kind: u8,
    /// The value.
    pub value: Vec<u8>,
}

/// A PROXY protocol header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The version it was (or will be) written in.
    pub version: Version,
    /// `LOCAL` or `PROXY`.
    pub command: Command,
    /// The original transport.
    pub transport: Transport,
    /// The original endpoints.
    pub addresses: Addresses,
    /// v2 TLVs, in order (empty for v1).
    pub tlvs: Vec<Tlv>,
}

impl Header {
    /// The header for a relayed TCP connection from `source` to `destination`. When the
    /// families differ, the IPv4 one is written as an IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`), as a header carries one family.
    pub fn proxied(version: Version, source: SocketAddr, destination: SocketAddr) -> Header {
        let (source, destination) = match (source, destination) {
            (SocketAddr::V4(_), SocketAddr::V6(_)) => (mapped(source), destination),
            (SocketAddr::V6(_), SocketAddr::V4(_)) => (source, mapped(destination)),
            _ => (source, destination),
        };
        Header {
            version,
            command: Command::Proxy,
            transport: Transport::Stream,
            addresses: Addresses::Inet {
                source,
                destination,
            },
            tlvs: Vec::new(),
        }
    }

    /// A `LOCAL` header (v2) or `PROXY UNKNOWN` (v1): no addresses.
    pub fn local(version: Version) -> Header {
        Header {
            version,
            command: Command::Local,
            transport: Transport::Unspec,
            addresses: Addresses::Unspec,
            tlvs: Vec::new(),
        }
    }

    /// The original client's address: `Some` for a `PROXY` command with IP addresses;
    /// `None` when the receiver should use the connection's own peer address.
    pub fn source(&self) -> Option<SocketAddr> {
        match (&self.command, &self.addresses) {
            (Command::Proxy, Addresses::Inet { source, .. }) => Some(*source),
            _ => None,
        }
    }

    /// The address the original client connected to, when given (as [`Header::source`]).
    pub fn destination(&self) -> Option<SocketAddr> {
        match (&self.command, &self.addresses) {
            (Command::Proxy, Addresses::Inet { destination, .. }) => Some(*destination),
            _ => None,
        }
    }

    /// The header's bytes.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for what the version
    /// cannot carry: in v1 anything but TCP over IPv4/IPv6 (or `UNKNOWN`), or TLVs; in
    /// either, addresses of two families, a Unix path over 108 bytes, or a v2 header over
    /// 65,551 bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let invalid = |m: &str| Error::invalid_input(OP, m.to_string());
        if let Addresses::Inet {
            source,
            destination,
        } = &self.addresses
            && source.is_ipv4() != destination.is_ipv4()
        {
            return Err(invalid("source and destination of two address families"));
        }
        match self.version {
            Version::V1 => {
                if !self.tlvs.is_empty() {
                    return Err(invalid("version 1 carries no TLVs"));
                }
                match (&self.command, self.transport, &self.addresses) {
                    (Command::Local, _, _) | (_, _, Addresses::Unspec) => {
                        Ok(b"PROXY UNKNOWN\r\n".to_vec())
                    }
                    (
                        Command::Proxy,
                        Transport::Stream,
                        Addresses::Inet {
                            source,
                            destination,
                        },
                    ) => {
                        let proto = if source.is_ipv4() { "TCP4" } else { "TCP6" };
                        Ok(format!(
                            "PROXY {proto} {} {} {} {}\r\n",
                            source.ip(),
                            destination.ip(),
                            source.port(),
                            destination.port()
                        )
                        .into_bytes())
                    }
                    _ => Err(invalid(
                        "version 1 carries only TCP over IPv4 or IPv6 (use version 2)",
                    )),
                }
            }
            Version::V2 => self.to_v2(),
        }
    }

    fn to_v2(&self) -> Result<Vec<u8>> {
        let invalid = |m: &str| Error::invalid_input(OP, m.to_string());
        let mut out = V2_SIGNATURE.to_vec();
        out.push(match self.command {
            Command::Local => 0x20,
            Command::Proxy => 0x21,
        });
        let proto = match self.transport {
            Transport::Unspec => 0,
            Transport::Stream => 1,
            Transport::Datagram => 2,
        };
        let mut block = Vec::new();
        let family = match &self.addresses {
            Addresses::Unspec => 0,
            Addresses::Inet {
                source,
                destination,
            } => {
                match (source.ip(), destination.ip()) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        block.extend_from_slice(&s.octets());
                        block.extend_from_slice(&d.octets());
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        block.extend_from_slice(&s.octets());
                        block.extend_from_slice(&d.octets());
                    }
                    _ => unreachable!("families checked in to_bytes"),
                }
                block.extend_from_slice(&source.port().to_be_bytes());
                block.extend_from_slice(&destination.port().to_be_bytes());
                if source.is_ipv4() { 1 } else { 2 }
            }
            Addresses::Unix {
                source,
                destination,
            } => {
                for path in [source, destination] {
                    if path.len() > UNIX_ADDR_LEN {
                        return Err(invalid("Unix path longer than 108 bytes"));
                    }
                    let mut field = [0u8; UNIX_ADDR_LEN];
                    field[..path.len()].copy_from_slice(path);
                    block.extend_from_slice(&field);
                }
                3
            }
        };
        out.push((family << 4) | proto);
        for tlv in &self.tlvs {
            let len =
                u16::try_from(tlv.value.len()).map_err(|_| invalid("TLV over 65535 bytes"))?;
            block.push(tlv.kind);
            block.extend_from_slice(&len.to_be_bytes());
            block.extend_from_slice(&tlv.value);
        }
        let len = u16::try_from(block.len()).map_err(|_| invalid("header over 65551 bytes"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&block);
        Ok(out)
    }
}

fn mapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) => SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port()),
        v6 => v6,
    }
}

/// Reads a PROXY protocol header (either version) at the start of `buf`: the header and
/// the number of bytes it took; what follows belongs to the connection.
///
/// # Errors
/// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for bytes that do not begin a
/// header, or a header that breaks the spec (see the module docs).
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if buf.len() < 16 {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        return parse_v1(buf);
    }
    Err(bad(format!(
        "no PROXY protocol header: the connection starts with {}",
        buf[..buf.len().min(16)].escape_ascii()
    )))
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>> {
    let window = &buf[..buf.len().min(V1_MAX_LINE)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if let Some(cr) = window.iter().position(|&b| b == b'\r')
            && cr + 1 < window.len()
        {
            return Err(bad("v1 line has a CR without LF"));
        }
        if buf.len() >= V1_MAX_LINE {
            return Err(bad("v1 line longer than 107 bytes"));
        }
        return Ok(None);
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(bad("v1 line ends with a bare LF, not CRLF"));
    }
    let line = &window[..lf - 1];
    if line.contains(&b'\r') {
        return Err(bad("v1 line has a CR without LF"));
    }
    let used = lf + 1;
    let text = std::str::from_utf8(line).map_err(|_| bad("v1 line is not ASCII"))?;
    let fields: Vec<&str> = text.split(' ').collect();
    match fields.get(1).copied() {
        Some("UNKNOWN") => {
            return Ok(Some((
                Header {
                    version: Version::V1,
                    command: Command::Proxy,
                    transport: Transport::Unspec,
                    addresses: Addresses::Unspec,
                    tlvs: Vec::new(),
                },
                used,
            )));
        }
        Some("TCP4" | "TCP6") => {}
        Some(other) => {
            return Err(bad(format!(
                "v1 protocol {:?} is not TCP4, TCP6 or UNKNOWN",
                other.escape_default().to_string()
            )));
        }
        None => return Err(bad("v1 line has no protocol")),
    }
    let [_, proto, src, dst, sport, dport] = fields[..] else {
        return Err(bad(format!(
            "v1 line has {} fields, not 6 (PROXY TCP4 SRC DST SPORT DPORT, one space each)",
            fields.len()
        )));
    };
    let ip = |t: &str| -> Result<IpAddr> {
        let parsed = if proto == "TCP4" {
            t.parse::<Ipv4Addr>().map(IpAddr::V4)
        } else {
            t.parse::<Ipv6Addr>().map(IpAddr::V6)
        };
        parsed.map_err(|_| bad(format!("v1 {proto} address {t:?} is not valid")))
    };
    let port = |t: &str| -> Result<u16> {
        let ok = !t.is_empty()
            && t.len() <= 5
            && t.bytes().all(|b| b.is_ascii_digit())
            && (t == "0" || !t.starts_with('0'));
        ok.then(|| t.parse::<u16>().ok()).flatten().ok_or_else(|| {
            bad(format!(
                "v1 port {t:?} is not 0-65535 without leading zeros"
            ))
        })
    };
    let source = SocketAddr::new(ip(src)?, port(sport)?);
    let destination = SocketAddr::new(ip(dst)?, port(dport)?);
    Ok(Some((
        Header {
            version: Version::V1,
            command: Command::Proxy,
            transport: Transport::Stream,
            addresses: Addresses::Inet {
                source,
                destination,
            },
            tlvs: Vec::new(),
        },
        used,
    )))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>> {
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(bad(format!("v2 version {} is not 2", ver_cmd >> 4)));
    }
    let command = match ver_cmd & 0x0F {
        0 => Command::Local,
        1 => Command::Proxy,
        c => return Err(bad(format!("v2 command {c} is not LOCAL (0) or PROXY (1)"))),
    };
    let (family, proto) = (buf[13] >> 4, buf[13] & 0x0F);
    if family > 3 {
        return Err(bad(format!("v2 address family {family} is not 0-3")));
    }
    let transport = match proto {
        0 => Transport::Unspec,
        1 => Transport::Stream,
        2 => Transport::Datagram,
        p => return Err(bad(format!("v2 transport {p} is not 0-2"))),
    };
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + len;
    if total > MAX_HEADER_BYTES {
        return Err(bad(format!(
            "v2 header of {total} bytes is over the limit of {MAX_HEADER_BYTES}"
        )));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let block = &buf[16..total];
    let need = match family {
        1 => 12,
        2 => 36,
        3 => 2 * UNIX_ADDR_LEN,
        _ => 0,
    };
    if block.len() < need {
        return Err(bad(format!(
            "v2 address block of {} bytes is shorter than the {need} its family needs",
            block.len()
        )));
    }
    // LOCAL: the receiver uses the connection's own endpoints and discards the block.
    if command == Command::Local {
        return Ok(Some((
            Header {
                version: Version::V2,
                command,
                transport,
                addresses: Addresses::Unspec,
                tlvs: Vec::new(),
            },
            total,
        )));
    }
    let port_at = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    let addresses = match family {
        1 => {
            let s = Ipv4Addr::new(block[0], block[1], block[2], block[3]);
            let d = Ipv4Addr::new(block[4], block[5], block[6], block[7]);
            Addresses::Inet {
                source: SocketAddr::new(IpAddr::V4(s), port_at(8)),
                destination: SocketAddr::new(IpAddr::V4(d), port_at(10)),
            }
        }
        2 => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&block[..16]);
            d.copy_from_slice(&block[16..32]);
            Addresses::Inet {
                source: SocketAddr::new(IpAddr::V6(Ipv6Addr::from(s)), port_at(32)),
                destination: SocketAddr::new(IpAddr::V6(Ipv6Addr::from(d)), port_at(34)),
            }
        }
        3 => Addresses::Unix {
            source: unix_path(&block[..UNIX_ADDR_LEN]),
            destination: unix_path(&block[UNIX_ADDR_LEN..2 * UNIX_ADDR_LEN]),
        },
        _ => Addresses::Unspec,
    };
    // With an unspecified transport the receiver ignores the addresses.
    let addresses = if transport == Transport::Unspec {
        Addresses::Unspec
    } else {
        addresses
    };
    let tlvs = parse_tlvs(&block[need..])?;
    if let Some(crc) = tlvs.iter().find(|t| t.kind == PP2_TYPE_CRC32C) {
        verify_crc(&buf[..total], &crc.value, 16 + need)?;
    }
    Ok(Some((
        Header {
            version: Version::V2,
            command,
            transport,
            addresses,
            tlvs,
        },
        total,
    )))
}

fn unix_path(field: &[u8]) -> Vec<u8> {
    if field.first() == Some(&0) {
        // An abstract name: a NUL, then the name; the field is NUL-padded.
        let end = field.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        field[..end.max(1)].to_vec()
    } else {
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        field[..end].to_vec()
    }
}

fn parse_tlvs(mut rest: &[u8]) -> Result<Vec<Tlv>> {
    let mut tlvs = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err(bad("v2 TLV cut short (fewer than 3 bytes left)"));
        }
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        if rest.len() < 3 + len {
            return Err(bad(format!(
                "v2 TLV of type {:#04x} announces {len} bytes, {} are left",
                rest[0],
                rest.len() - 3
            )));
        }
        tlvs.push(Tlv {
            kind: rest[0],
            value: rest[3..3 + len].to_vec(),
        });
        rest = &rest[3 + len..];
    }
    Ok(tlvs)
}

/// Checks a `PP2_TYPE_CRC32C` TLV: the CRC32c (RFC 4960 appendix B) of the whole header
/// with the checksum's four bytes set to zero.
fn verify_crc(header: &[u8], value: &[u8], tlvs_at: usize) -> Result<()> {
    let Ok(expected) = <[u8; 4]>::try_from(value) else {
        return Err(bad("v2 CRC32C TLV is not 4 bytes"));
    };
    // Find the checksum's position again by walking the TLVs.
    let mut at = tlvs_at;
    let mut zeroed = header.to_vec();
    while at + 3 <= header.len() {
        let len = usize::from(u16::from_be_bytes([header[at + 1], header[at + 2]]));
        if header[at] == PP2_TYPE_CRC32C {
            zeroed[at + 3..at + 7].fill(0);
            break;
        }
        at += 3 + len;
    }
    let got = crc32c(&zeroed);
    if got != u32::from_be_bytes(expected) {
        return Err(bad(format!(
            "v2 CRC32C mismatch: header says {:#010x}, bytes give {got:#010x}",
            u32::from_be_bytes(expected)
        )));
    }
    Ok(())
}

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: headers are short.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn err(buf: &[u8]) -> String {
        parse(buf).unwrap_err().to_string()
    }

    #[test]
    fn v1_examples_from_the_spec() {
        let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
        let (h, used) = parse(line).unwrap().unwrap();
        assert_eq!(used, line.len());
        assert_eq!(h.source(), Some(sa("192.168.0.1:56324")));
        assert_eq!(h.destination(), Some(sa("192.168.0.11:443")));
        // Every prefix is incomplete, never an error.
        for n in 0..line.len() {
            assert_eq!(parse(&line[..n]).unwrap(), None, "{n}");
        }
        // The longest lines the spec lists (56, 104 and 107 bytes) are accepted.
        let v4 = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        assert_eq!(v4.len(), 56);
        assert!(parse(v4).unwrap().is_some());
        let f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let v6 = format!("PROXY TCP6 {f} {f} 65535 65535\r\n");
        assert_eq!(v6.len(), 104);
        assert!(parse(v6.as_bytes()).unwrap().is_some());
        let worst = format!("PROXY UNKNOWN {f} {f} 65535 65535\r\n");
        assert_eq!(worst.len(), 107);
        let (h, _) = parse(worst.as_bytes()).unwrap().unwrap();
        assert_eq!((&h.addresses, h.source()), (&Addresses::Unspec, None));
        let (h, used) = parse(b"PROXY UNKNOWN\r\nX").unwrap().unwrap();
        assert_eq!((h.transport, used), (Transport::Unspec, 15));
    }

    #[test]
    fn v1_malformed() {
        let cases: [(&[u8], &str); 11] = [
            (b"GET / HTTP/1.1\r\n", "no PROXY protocol header"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "bare LF"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\r\n", "CR without LF"),
            (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "7 fields"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "5 fields"),
            (
                b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
                "not TCP4, TCP6 or UNKNOWN",
            ),
            (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "address \"::1\""),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "address \"1.2.3.4\""),
            (
                b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
                "address \"01.2.3.4\"",
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "leading zeros"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "not 0-65535"),
        ];
        for (bytes, want) in cases {
            let e = err(bytes);
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(bytes));
            assert!(e.starts_with("proxy protocol: "), "{e}");
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 100]].concat();
        assert!(err(&long).contains("longer than 107"));
        assert!(parse(&long[..106]).unwrap().is_none());
        assert!(err(b"PROXZ").contains("no PROXY protocol header"));
        assert!(err(b"\r\n\r\n\x00\r\nQUIX").contains("no PROXY protocol header"));
    }

    /// The spec's section 2.2 layout, written out by hand: TCP over IPv4.
    #[test]
    fn v2_tcp4_by_hand() {
        let mut wire = V2_SIGNATURE.to_vec();
        wire.extend_from_slice(&[0x21, 0x11, 0x00, 0x0C]);
        wire.extend_from_slice(&[192, 168, 0, 1, 192, 168, 0, 11]);
        wire.extend_from_slice(&56324u16.to_be_bytes());
        wire.extend_from_slice(&443u16.to_be_bytes());
        let (h, used) = parse(&wire).unwrap().unwrap();
        assert_eq!(used, 28);
        assert_eq!(
            (h.version, h.command, h.transport),
            (Version::V2, Command::Proxy, Transport::Stream)
        );
        assert_eq!(h.source(), Some(sa("192.168.0.1:56324")));
        assert_eq!(
            Header::proxied(Version::V2, sa("192.168.0.1:56324"), sa("192.168.0.11:443"))
                .to_bytes()
                .unwrap(),
            wire
        );
        for n in 0..wire.len() {
            assert_eq!(parse(&wire[..n]).unwrap(), None, "{n}");
        }
    }

    #[test]
    fn v2_local_unspec_unix_and_udp() {
        // LOCAL with a family and addresses: the block is discarded.
        let mut wire = V2_SIGNATURE.to_vec();
        wire.extend_from_slice(&[0x20, 0x11, 0x00, 0x0C]);
        wire.extend_from_slice(&[0; 12]);
        let (h, used) = parse(&wire).unwrap().unwrap();
        assert_eq!(
            (h.command, h.addresses, used),
            (Command::Local, Addresses::Unspec, 28)
        );
        let local = Header::local(Version::V2).to_bytes().unwrap();
        assert_eq!(local[12..], [0x20, 0x00, 0, 0]);
        assert_eq!(
            Header::local(Version::V1).to_bytes().unwrap(),
            b"PROXY UNKNOWN\r\n"
        );
        // AF_UNIX stream, one path and one abstract name.
        let unix = Header {
            version: Version::V2,
            command: Command::Proxy,
            transport: Transport::Stream,
            addresses: Addresses::Unix {
                source: b"/run/a.sock".to_vec(),
                destination: b"\0abstract".to_vec(),
            },
            tlvs: vec![],
        };
        let bytes = unix.to_bytes().unwrap();
        assert_eq!((bytes[13], bytes.len()), (0x31, 16 + 216));
        assert_eq!(parse(&bytes).unwrap().unwrap().0, unix);
        // UDP over IPv6.
        let mut udp = Header::proxied(Version::V2, sa("[::1]:5"), sa("[::2]:6"));
        udp.transport = Transport::Datagram;
        let bytes = udp.to_bytes().unwrap();
        assert_eq!(bytes[13], 0x22);
        assert_eq!(parse(&bytes).unwrap().unwrap().0, udp);
        // Version 1 cannot carry UDP.
        assert!(
            Header {
                version: Version::V1,
                ..udp
            }
            .to_bytes()
            .is_err()
        );
    }

    #[test]
    fn v2_malformed() {
        let base = Header::proxied(Version::V2, sa("1.2.3.4:1"), sa("5.6.7.8:2"))
            .to_bytes()
            .unwrap();
        let with = |at: usize, byte: u8| {
            let mut b = base.clone();
            b[at] = byte;
            err(&b)
        };
        assert!(with(12, 0x11).contains("version 1 is not 2"));
        assert!(with(12, 0x22).contains("command 2"));
        assert!(with(13, 0x41).contains("family 4"));
        assert!(with(13, 0x13).contains("transport 3"));
        // A length shorter than the family's addresses.
        let mut short = base.clone();
        short[15] = 8;
        short.truncate(24);
        assert!(err(&short).contains("shorter than the 12"));
        // Over the limit: refused from the 16 fixed bytes, before reading the rest.
        let mut huge = base[..16].to_vec();
        huge[14..16].copy_from_slice(&5000u16.to_be_bytes());
        assert!(err(&huge).contains("over the limit"));
    }

    #[test]
    fn v2_tlvs_are_skipped_safely_and_crc_checked() {
        let mut h = Header::proxied(
            Version::V2,
            sa("[2001:db8::1]:1000"),
            sa("[2001:db8::2]:443"),
        );
        h.tlvs = vec![
            Tlv {
                kind: PP2_TYPE_AUTHORITY,
                value: b"example.org".to_vec(),
            },
            Tlv {
                kind: PP2_TYPE_NOOP,
                value: vec![],
            },
            Tlv {
                kind: 0xE0,
                value: vec![1, 2, 3],
            },
        ];
        let bytes = h.to_bytes().unwrap();
        assert_eq!(parse(&bytes).unwrap().unwrap(), (h.clone(), bytes.len()));
        // A TLV that overruns the header.
        let mut over = bytes.clone();
        let last = over.len() - 5; // the 0xE0 TLV's length field
        over[last..last + 2].copy_from_slice(&9u16.to_be_bytes());
        assert!(err(&over).contains("announces 9 bytes, 3 are left"));
        let mut cut = bytes.clone();
        cut[15] -= 5;
        cut.truncate(cut.len() - 5);
        assert!(err(&cut).contains("TLV cut short"));
        // CRC32C: a right checksum passes, a wrong one is refused.
        h.tlvs = vec![Tlv {
            kind: PP2_TYPE_CRC32C,
            value: vec![0; 4],
        }];
        let mut bytes = h.to_bytes().unwrap();
        let crc = crc32c(&bytes);
        let n = bytes.len();
        bytes[n - 4..].copy_from_slice(&crc.to_be_bytes());
        assert!(parse(&bytes).unwrap().is_some());
        bytes[20] ^= 1;
        assert!(err(&bytes).contains("CRC32C mismatch"));
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn mixed_families_are_mapped() {
        let h = Header::proxied(Version::V1, sa("1.2.3.4:1"), sa("[::1]:2"));
        assert_eq!(
            h.to_bytes().unwrap(),
            b"PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n"
        );
        let bad = Header {
            addresses: Addresses::Inet {
                source: sa("1.2.3.4:1"),
                destination: sa("[::1]:2"),
            },
            ..h
        };
        assert!(bad.to_bytes().is_err());
    }

    fn any_addr_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
        prop_oneof![
            any::<(Ipv4Addr, u16, Ipv4Addr, u16)>()
                .prop_map(|(a, p, b, q)| (SocketAddr::from((a, p)), SocketAddr::from((b, q)))),
            any::<(Ipv6Addr, u16, Ipv6Addr, u16)>()
                .prop_map(|(a, p, b, q)| (SocketAddr::from((a, p)), SocketAddr::from((b, q)))),
        ]
    }

    proptest! {
        #[test]
        fn round_trip((src, dst) in any_addr_pair(), v2 in any::<bool>(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let version = if v2 { Version::V2 } else { Version::V1 };
            let h = Header::proxied(version, src, dst);
            let mut bytes = h.to_bytes().unwrap();
            let len = bytes.len();
            bytes.extend_from_slice(&tail);
            let (back, used) = parse(&bytes).unwrap().unwrap();
            prop_assert_eq!(used, len);
            prop_assert_eq!(back, h);
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
            let mut sig = V2_SIGNATURE.to_vec();
            sig.extend_from_slice(&bytes);
            let _ = parse(&sig);
            let mut v1 = b"PROXY ".to_vec();
            v1.extend_from_slice(&bytes);
            let _ = parse(&v1);
        }
    }
}
