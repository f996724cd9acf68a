//! Access control by peer address: `--allow CIDR…` / `--deny CIDR…`.
//!
//! An [`AccessList`] answers one question, [`AccessList::permits`]: may this peer in? A
//! peer matching any `deny` network is refused; otherwise, when `allow` networks are given,
//! only a peer matching one of them is let in; with neither, everyone is. IPv4-mapped IPv6
//! peers (`::ffff:127.0.0.1`, seen on dual-stack listeners) are checked as the IPv4
//! address they carry. Networks are parsed with the `ipnet` crate; a bare address is a
//! network of one (`/32`, `/128`).
//!
//! ```
//! use sockit::access::AccessList;
//! let acl = AccessList::parse(&["127.0.0.2/32"], &[]).unwrap();
//! assert!(acl.permits("127.0.0.2".parse().unwrap()));
//! assert!(!acl.permits("127.0.0.1".parse().unwrap()));
//! ```

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};

/// Networks let in and networks refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

/// Parses `10.0.0.0/8`, `::1/128`, or a bare address (a network of one).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for text that is neither.
pub fn parse_cidr(text: &str) -> Result<IpNet> {
    let t = text.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        return Ok(net);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(Error::invalid_input(
        "access",
        format!("not an address or network (ADDR/PREFIX): {text:?}"),
    ))
}

impl AccessList {
    /// An access list from the `--allow` and `--deny` words; a word may hold several
    /// networks separated by commas.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a word that is not a
    /// network ([`parse_cidr`]).
    pub fn parse<S: AsRef<str>>(allow: &[S], deny: &[S]) -> Result<AccessList> {
        let nets = |words: &[S]| -> Result<Vec<IpNet>> {
            words
                .iter()
                .flat_map(|w| {
                    w.as_ref()
                        .split(',')
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .filter(|w| !w.trim().is_empty())
                .map(|w| parse_cidr(&w))
                .collect()
        };
        Ok(AccessList {
            allow: nets(allow)?,
            deny: nets(deny)?,
        })
    }

    /// True when neither list has a network: everyone is let in.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// May `peer` in? Deny wins over allow; a non-empty allow list admits only its networks.
    pub fn permits(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        if self.deny.iter().any(|n| n.contains(&peer)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allow_and_deny() {
        let open = AccessList::default();
        assert!(open.is_open() && open.permits(ip("192.0.2.1")));
        let acl = AccessList::parse(&["127.0.0.0/8", "::1"], &["127.0.0.9"]).unwrap();
        assert!(acl.permits(ip("127.0.0.1")));
        assert!(acl.permits(ip("::1")));
        assert!(!acl.permits(ip("127.0.0.9")), "deny wins");
        assert!(!acl.permits(ip("10.0.0.1")));
        assert!(acl.permits(ip("::ffff:127.0.0.5")), "mapped IPv4 is IPv4");
        let deny_only = AccessList::parse::<&str>(&[], &["10.0.0.0/8,192.168.0.0/16"]).unwrap();
        assert!(deny_only.permits(ip("127.0.0.1")));
        assert!(!deny_only.permits(ip("192.168.3.4")));
    }

    #[test]
    fn bad_networks() {
        for bad in ["", "x", "10.0.0.0/33", "1.2.3", "::1/129"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }
}
