//! Destination policy of a proxy server: `--allow-dest` / `--deny-dest CIDR[:PORTS]`.
//!
//! A [`DestPolicy`] answers one question, [`DestPolicy::permits`]: may a client be
//! connected to this address and port? It is asked about every *resolved* address, never
//! about a name, so a name cannot smuggle in a denied address: a request for a name whose
//! addresses are all denied is refused, and denied addresses among allowed ones are
//! skipped. A destination matching any deny rule is refused; otherwise, when allow rules
//! are given, only one matching an allow rule is permitted; with neither, every
//! destination is. IPv4-mapped IPv6 addresses are checked as the IPv4 address they
//! carry.
//!
//! Rule syntax: a network (`10.0.0.0/8`, `::1/128`, or a bare address, a network of one),
//! optionally followed by `:` and ports — `80`, `8000-8080`, or a comma-separated list of
//! both (`127.0.0.1/32:22,80,8000-8080`). An IPv6 network with ports needs its prefix
//! (`::1/128:22`) or brackets (`[::1]:22`), so the ports cannot be read as part of the
//! address.
//!
//! ```
//! use sockit::proxy::policy::DestPolicy;
//! let p = DestPolicy::parse(&[] as &[&str], &["127.0.0.2/32", "0.0.0.0/0:25"]).unwrap();
//! assert!(!p.permits("127.0.0.2:80".parse().unwrap()));
//! assert!(!p.permits("192.0.2.1:25".parse().unwrap()));
//! assert!(p.permits("127.0.0.1:80".parse().unwrap()));
//! ```

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use ipnet::IpNet;

use crate::access::parse_cidr;
use crate::error::{Error, Result};

/// One rule: a network and, optionally, ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestRule {
    /// The network.
    pub net: IpNet,
    /// The ports (inclusive ranges); empty means every port.
    pub ports: Vec<RangeInclusive<u16>>,
}

impl DestRule {
    /// Parses `CIDR[:PORTS]` (see the module docs).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a network or port
    /// list that does not parse, or a range whose start is above its end.
    ///
    /// # Examples
    /// ```
    /// use sockit::proxy::policy::DestRule;
    /// let r = DestRule::parse("[::1]:22,8000-8080").unwrap();
    /// assert!(r.matches("[::1]:8001".parse().unwrap()));
    /// assert!(!r.matches("[::1]:80".parse().unwrap()));
    /// assert!(DestRule::parse("10.0.0.0/8:70000").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<DestRule> {
        let t = text.trim();
        let err = |m: String| Error::invalid_input("dest", format!("{m} in {text:?}"));
        let (net, ports) = if let Some(rest) = t.strip_prefix('[') {
            let (addr, after) = rest
                .split_once(']')
                .ok_or_else(|| err("unclosed '['".into()))?;
            match after {
                "" => (addr, None),
                a => (
                    addr,
                    Some(
                        a.strip_prefix(':')
                            .ok_or_else(|| err("text after ']' that is not :PORTS".into()))?,
                    ),
                ),
            }
        } else if let Some(slash) = t.find('/') {
            match t[slash..].find(':') {
                Some(colon) => (&t[..slash + colon], Some(&t[slash + colon + 1..])),
                None => (t, None),
            }
        } else if t.matches(':').count() == 1 {
            let (a, p) = t.split_once(':').unwrap_or((t, ""));
            (a, Some(p))
        } else {
            (t, None)
        };
        let net = parse_cidr(net).map_err(|e| err(e.message().to_string()))?;
        let ports = match ports {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|p| parse_port_range(p).ok_or_else(|| err(format!("bad port range {p:?}"))))
                .collect::<Result<_>>()?,
        };
        Ok(DestRule {
            net: net.trunc(),
            ports,
        })
    }

    /// True when `dest` is in the network and, if ports are given, one of them.
    pub fn matches(&self, dest: SocketAddr) -> bool {
        let ip = canonical(dest.ip());
        self.net.contains(&ip)
            && (self.ports.is_empty() || self.ports.iter().any(|r| r.contains(&dest.port())))
    }
}

fn parse_port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let port = |s: &str| -> Option<u16> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    // port 0 is never a destination: a rule naming it would match nothing
    let port = |s: &str| port(s).filter(|&p| p != 0);
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            (a <= b).then_some(a..=b)
        }
        None => port(text).map(|p| p..=p),
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The allow and deny rules of a proxy's destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestPolicy {
    allow: Vec<DestRule>,
    deny: Vec<DestRule>,
}

impl DestPolicy {
    /// A policy from the `--allow-dest` and `--deny-dest` words, one rule each.
    ///
    /// # Errors
    /// As [`DestRule::parse`].
    pub fn parse<S: AsRef<str>>(allow: &[S], deny: &[S]) -> Result<DestPolicy> {
        let rules = |words: &[S]| -> Result<Vec<DestRule>> {
            words.iter().map(|w| DestRule::parse(w.as_ref())).collect()
        };
        Ok(DestPolicy {
            allow: rules(allow)?,
            deny: rules(deny)?,
        })
    }

    /// True when there is no rule at all (every destination is permitted).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// May a client be connected to `dest`? An unspecified address (`0.0.0.0`, `::`,
    /// `::ffff:0.0.0.0`) is checked as itself and as the loopback address Linux's
    /// `connect(2)` reaches through it (127.0.0.1, ::1): it is permitted only when both
    /// are, so `--deny-dest 127.0.0.0/8` cannot be passed by asking for `0.0.0.0`.
    pub fn permits(&self, dest: SocketAddr) -> bool {
        let one = |d: SocketAddr| {
            !self.deny.iter().any(|r| r.matches(d))
                && (self.allow.is_empty() || self.allow.iter().any(|r| r.matches(d)))
        };
        one(dest) && reached_through(dest).is_none_or(one)
    }
}

/// The address the kernel connects to for an unspecified destination: 127.0.0.1 for
/// `0.0.0.0` (and `::ffff:0.0.0.0`), `::1` for `::`.
fn reached_through(dest: SocketAddr) -> Option<SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match dest.ip() {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified()) => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, dest.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rule_forms() {
        let r = DestRule::parse("127.0.0.1").unwrap();
        assert!(r.matches(sa("127.0.0.1:1")) && !r.matches(sa("127.0.0.2:1")));
        let r = DestRule::parse("127.0.0.0/8:22,80-81").unwrap();
        assert!(r.matches(sa("127.9.9.9:81")));
        assert!(!r.matches(sa("127.9.9.9:82")));
        let r = DestRule::parse("::1/128:22").unwrap();
        assert!(r.matches(sa("[::1]:22")) && !r.matches(sa("[::1]:23")));
        let r = DestRule::parse("::1").unwrap();
        assert!(r.matches(sa("[::1]:9")));
        let r = DestRule::parse("1.2.3.4:5").unwrap();
        assert_eq!(r.ports, vec![5..=5]);
        // Host bits are cleared: 10.1.2.3/8 is 10.0.0.0/8.
        assert_eq!(
            DestRule::parse("10.1.2.3/8").unwrap().net.to_string(),
            "10.0.0.0/8"
        );
        for bad in [
            // regression: port 0 was taken (a rule that can match nothing)
            "127.0.0.1:0",
            "127.0.0.0/8:0-80",
            "",
            "x",
            "1.2.3.4:",
            "1.2.3.4:9-1",
            "[::1",
            "[::1]x",
            "10.0.0.0/33",
            "1.2.3.4:a",
        ] {
            assert!(DestRule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unspecified_destinations_are_checked_as_the_loopback_they_reach() {
        // Regression: `--deny-dest 127.0.0.0/8` let `CONNECT 0.0.0.0:PORT` through, and
        // Linux connects that to 127.0.0.1.
        let deny = DestPolicy::parse::<&str>(&[], &["127.0.0.0/8", "::1/128"]).unwrap();
        for d in ["0.0.0.0:7001", "[::]:7003", "[::ffff:0.0.0.0]:7001"] {
            assert!(!deny.permits(sa(d)), "{d}");
        }
        assert!(deny.permits(sa("192.0.2.1:80")));
        // an allow list must cover both what was asked and what it reaches
        let allow = DestPolicy::parse::<&str>(&["0.0.0.0/0"], &[]).unwrap();
        assert!(allow.permits(sa("0.0.0.0:1")));
        let allow = DestPolicy::parse::<&str>(&["0.0.0.0/32"], &[]).unwrap();
        assert!(!allow.permits(sa("0.0.0.0:1")));
        assert!(DestPolicy::default().permits(sa("0.0.0.0:1")));
    }

    #[test]
    fn policy_decisions() {
        let open = DestPolicy::default();
        assert!(open.is_open() && open.permits(sa("192.0.2.1:1")));
        let p = DestPolicy::parse(&["127.0.0.0/8"], &["127.0.0.2/32"]).unwrap();
        assert!(p.permits(sa("127.0.0.1:80")));
        assert!(!p.permits(sa("127.0.0.2:80")));
        assert!(!p.permits(sa("192.0.2.1:80")));
        // A mapped address is checked as IPv4.
        assert!(!p.permits(sa("[::ffff:127.0.0.2]:80")));
        assert!(p.permits(sa("[::ffff:127.0.0.1]:80")));
    }
}
