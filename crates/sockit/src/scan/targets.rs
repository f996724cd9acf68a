//! What a scan covers: address ranges (CIDR), the bounds of one scan, and which targets
//! are this machine.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{Error, Result};

/// The most addresses one range may hold: 65,536 (an IPv4 `/16`, an IPv6 `/112`).
pub const MAX_RANGE: u64 = 65_536;

/// The most probes (hosts × ports) one scan may make: 16,777,216 (2^24: a `/16` × 256
/// ports, or 256 hosts × every port).
pub const MAX_PROBES: u64 = 1 << 24;

/// True when `text` is written as a range (`ADDR/LEN`) rather than one address or name.
pub fn is_range(text: &str) -> bool {
    text.contains('/')
}

/// Every address of the range `ADDR/LEN` (`127.0.0.0/29`, `10.1.2.3/30`, `::1/128`,
/// `fd00::/120`), in ascending order, the network and broadcast addresses included (as
/// nmap scans them). Host bits in `ADDR` are ignored: `10.1.2.3/30` is `10.1.2.0` to
/// `10.1.2.3`.
///
/// Python: `list(ipaddress.ip_network(text, strict=False))`.
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] for text that is not `ADDR/LEN` with a prefix length
/// in range for the family, or a range of more than [`MAX_RANGE`] addresses
/// (`127.0.0.0/8 holds 16777216 addresses; a range may hold at most 65536 (a /16 for
/// IPv4, a /112 for IPv6)`).
///
/// # Examples
/// ```
/// use sockit::scan::targets::parse_range;
/// let hosts = parse_range("127.0.0.0/30").unwrap();
/// assert_eq!(hosts.len(), 4);
/// assert_eq!(hosts[3].to_string(), "127.0.0.3");
/// assert!(parse_range("10.0.0.0/8").is_err());
/// ```
pub fn parse_range(text: &str) -> Result<Vec<IpAddr>> {
    const OP: &str = "range";
    let net: ipnet::IpNet = text.trim().parse().map_err(|_| {
        Error::invalid_input(
            OP,
            format!("{text:?} is not an address range (write ADDR/LEN: 127.0.0.0/29, fd00::/120)"),
        )
    })?;
    let bits = match net {
        ipnet::IpNet::V4(_) => 32,
        ipnet::IpNet::V6(_) => 128,
    };
    let host_bits = u32::from(bits - net.prefix_len());
    if host_bits > MAX_RANGE.trailing_zeros() {
        let count = match host_bits {
            0..=32 => (1u64 << host_bits).to_string(),
            _ => format!("2^{host_bits}"),
        };
        return Err(Error::invalid_input(
            OP,
            format!(
                "{text} holds {count} addresses; a range may hold at most {MAX_RANGE} (a /16 \
                 for IPv4, a /112 for IPv6)"
            ),
        ));
    }
    let count = 1u32 << host_bits;
    Ok(match net {
        ipnet::IpNet::V4(n) => {
            let first = u32::from(n.network());
            (0..count)
                .map(|i| IpAddr::V4(Ipv4Addr::from(first + i)))
                .collect()
        }
        ipnet::IpNet::V6(n) => {
            let first = u128::from(n.network());
            (0..u128::from(count))
                .map(|i| IpAddr::V6(Ipv6Addr::from(first + i)))
                .collect()
        }
    })
}

/// Checks that `hosts` × `ports` probes fit in one scan ([`MAX_PROBES`]).
///
/// # Errors
/// [`crate::ErrorKind::InvalidInput`] naming the product and the bound, or for no host or
/// no port at all.
pub fn check_size(hosts: usize, ports: usize) -> Result<()> {
    const OP: &str = "scan";
    if hosts == 0 || ports == 0 {
        return Err(Error::invalid_input(
            OP,
            "nothing to scan (no host or no port)",
        ));
    }
    let probes = hosts as u128 * ports as u128;
    if probes > u128::from(MAX_PROBES) {
        return Err(Error::invalid_input(
            OP,
            format!(
                "{hosts} hosts x {ports} ports = {probes} probes; one scan makes at most \
                 {MAX_PROBES} (scan fewer hosts or ports at a time)"
            ),
        ));
    }
    Ok(())
}

/// The source address this machine's routing table picks for `ip`: a UDP socket's
/// `connect(2)` (which sends nothing) and `getsockname(2)`. `None` when there is no route.
pub(crate) fn route_source(ip: IpAddr) -> Option<IpAddr> {
    let target = SocketAddr::new(ip, 9);
    let s = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::DGRAM.cloexec(),
        None,
    )
    .ok()?;
    s.connect(&target.into()).ok()?;
    s.local_addr()
        .ok()?
        .as_socket()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
}

/// True when packets sent to `ip` come back to this machine: a loopback or unspecified
/// address, or one this machine can `bind(2)` to (one of its own). Only such targets can
/// be answered by the scan's own probes.
pub(crate) fn is_local(ip: IpAddr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    let domain = socket2::Domain::for_address(SocketAddr::new(ip, 0));
    socket2::Socket::new(domain, socket2::Type::DGRAM, None)
        .and_then(|s| s.bind(&SocketAddr::new(ip, 0).into()))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn ranges_hold_every_address() {
        let v: Vec<String> = parse_range("127.0.0.1/30")
            .unwrap()
            .iter()
            .map(IpAddr::to_string)
            .collect();
        assert_eq!(v, ["127.0.0.0", "127.0.0.1", "127.0.0.2", "127.0.0.3"]);
        assert_eq!(parse_range("127.0.0.1/32").unwrap().len(), 1);
        assert_eq!(parse_range("10.0.0.0/16").unwrap().len(), 65_536);
        let six = parse_range("::1/128").unwrap();
        assert_eq!(six, vec!["::1".parse::<IpAddr>().unwrap()]);
        let six = parse_range("fd00::ff/120").unwrap();
        assert_eq!(six.len(), 256);
        assert_eq!(six[0].to_string(), "fd00::");
        assert_eq!(six[255].to_string(), "fd00::ff");
        assert_eq!(parse_range("fd00::/112").unwrap().len(), 65_536);
    }

    #[test]
    fn too_large_or_malformed_ranges_are_refused() {
        for (bad, want) in [
            ("10.0.0.0/15", "holds 131072 addresses"),
            ("0.0.0.0/0", "holds 4294967296 addresses"),
            ("fd00::/64", "holds 2^64 addresses"),
            ("::/0", "holds 2^128 addresses"),
            ("10.0.0.0/33", "not an address range"),
            ("10.0.0/8", "not an address range"),
            ("host/24", "not an address range"),
            ("/24", "not an address range"),
        ] {
            let e = parse_range(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
            assert!(e.to_string().contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn size_bound() {
        assert!(check_size(65_536, 256).is_ok());
        assert!(check_size(256, 65_535).is_ok());
        let e = check_size(257, 65_535).unwrap_err();
        assert!(e.to_string().contains("16842495 probes"), "{e}");
        assert!(check_size(0, 1).is_err());
    }

    #[test]
    fn route_sources() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(route_source(v4), Some(v4));
        assert_eq!(
            route_source("127.0.0.2".parse().unwrap()).map(|ip| ip.is_loopback()),
            Some(true)
        );
        assert_eq!(route_source("0.0.0.0".parse().unwrap()), Some(v4));
    }

    #[test]
    fn loopback_and_own_addresses_are_local() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(is_local("127.5.6.7".parse().unwrap()));
        assert!(is_local("::1".parse().unwrap()));
        assert!(is_local("0.0.0.0".parse().unwrap()));
        // TEST-NET-1 is nobody's address.
        assert!(!is_local("192.0.2.1".parse().unwrap()));
    }
}
