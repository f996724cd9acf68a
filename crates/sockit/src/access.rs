//! Access control by peer address: `--allow CIDR…` / `--deny CIDR…`.
//!
//! An [`AccessList`] answers one question, [`AccessList::permits`]: may this peer in? A
//! peer matching any `deny` network is refused; otherwise, when `allow` networks are given,
//! only a peer matching one of them is let in; with neither, everyone is. IPv4-mapped IPv6
//! peers (`::ffff:127.0.0.1`, seen on dual-stack listeners) are checked as the IPv4
//! address they carry. Networks are parsed with the `ipnet` crate; a bare address is a
//! network of one (`/32`, `/128`).
//!
//! The same networks may come from files (ncat's `--allowfile`/`--denyfile`):
//! [`parse_list`] reads one address or network per line, `#` starting a comment, and
//! names the line of any bad entry. An allow file makes the list restrictive even when it
//! is empty: nobody is let in (ncat's behaviour; an empty allow list from a file is a
//! locked door, never an open one).
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
    /// Only `allow` networks may in (set by a non-empty `--allow` or any allow file).
    restricted: bool,
}

/// The largest access-list file read (4 MiB: about 200,000 lines of networks).
pub const MAX_LIST_FILE: u64 = 4 << 20;

/// Parses `10.0.0.0/8`, `::1/128`, or a bare address (a network of one). An
/// IPv4-mapped network (`::ffff:10.0.0.0/104`, `::ffff:127.0.0.2`) is its IPv4 network,
/// as peers are compared in IPv4 (ncat does the same).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for text that is neither.
///
/// # Examples
/// ```
/// let n = sockit::access::parse_cidr("::ffff:10.0.0.0/104").unwrap();
/// assert_eq!(n.to_string(), "10.0.0.0/8");
/// ```
pub fn parse_cidr(text: &str) -> Result<IpNet> {
    let t = text.trim();
    let mapped = |net: IpNet| match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    };
    if let Ok(net) = t.parse::<IpNet>() {
        return Ok(mapped(net));
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(mapped(IpNet::from(ip)));
    }
    Err(Error::invalid_input(
        "access",
        format!("not an address or network (ADDR/PREFIX): {text:?}"),
    ))
}

/// Parses the text of an access-list file: one address or network ([`parse_cidr`]) per
/// line; `#` starts a comment (a whole line or the rest of one); blank lines are skipped.
/// `name` (the file's path) is used in errors.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the first bad
/// line: `allowfile hosts.txt: line 3: not an address or network (ADDR/PREFIX): "x"`;
/// also for text that is not UTF-8 (naming the line too).
///
/// # Examples
/// ```
/// let nets = sockit::access::parse_list("# lab\n10.0.0.0/8\n::1 # me\n\n", "f").unwrap();
/// assert_eq!(nets.len(), 2);
/// let e = sockit::access::parse_list("10.0.0.1\n10.0.0.0/33\n", "f").unwrap_err();
/// assert!(e.to_string().contains("line 2"), "{e}");
/// ```
pub fn parse_list(text: &str, name: &str) -> Result<Vec<IpNet>> {
    let mut nets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let net = parse_cidr(entry).map_err(|e| {
            Error::invalid_input(name.to_string(), format!("line {}: {}", i + 1, e.message()))
        })?;
        nets.push(net);
    }
    Ok(nets)
}

/// Reads an access-list file (at most [`MAX_LIST_FILE`] bytes) with [`parse_list`];
/// `flag` (`allowfile`, `denyfile`) opens the errors' operation.
fn read_list(path: &std::path::Path, flag: &str) -> Result<Vec<IpNet>> {
    let shown = path.display().to_string();
    let bytes = crate::files::read_capped(path, MAX_LIST_FILE, Some(flag), "list of networks")?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(Error::invalid_input(
                flag.to_string(),
                format!("line {line}: not UTF-8 text"),
            )
            .at(shown));
        }
    };
    parse_list(text, flag).map_err(|e| e.at(shown))
}

/// The networks of a flag's words (`--allow`, `--deny`, `--accept-proxy-from`): each
/// word holds one or more networks ([`parse_cidr`]) separated by commas (empty items
/// between commas are skipped). `flag` (without dashes) opens the errors' operation.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an item that is not a
/// network, and for a word with no network at all (`--allow ""`, say from an empty
/// variable): it would otherwise mean "no restriction".
///
/// # Examples
/// ```
/// assert_eq!(sockit::access::parse_words(&["10.0.0.0/8,::1"], "allow").unwrap().len(), 2);
/// assert!(sockit::access::parse_words(&[" , "], "allow").is_err());
/// ```
pub fn parse_words<S: AsRef<str>>(words: &[S], flag: &str) -> Result<Vec<IpNet>> {
    let mut nets = Vec::new();
    for w in words {
        let before = nets.len();
        for item in w.as_ref().split(',').filter(|i| !i.trim().is_empty()) {
            nets.push(parse_cidr(item).map_err(|e| e.with_op(flag.to_string()))?);
        }
        if nets.len() == before {
            return Err(Error::invalid_input(
                flag.to_string(),
                format!(
                    "--{flag} {:?} names no network (an empty variable?)",
                    w.as_ref()
                ),
            ));
        }
    }
    Ok(nets)
}

impl AccessList {
    /// An access list from the `--allow` and `--deny` words; a word may hold several
    /// networks separated by commas ([`parse_words`]).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a word that is not a
    /// network ([`parse_cidr`]) or holds none.
    pub fn parse<S: AsRef<str>>(allow: &[S], deny: &[S]) -> Result<AccessList> {
        let allow = parse_words(allow, "allow")?;
        Ok(AccessList {
            restricted: !allow.is_empty(),
            allow,
            deny: parse_words(deny, "deny")?,
        })
    }

    /// Adds the networks of an allow file (`--allowfile`, format of [`parse_list`]); from
    /// now on only listed peers may in, even if the file lists none.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) when the file cannot be read;
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad line (named)
    /// or a file larger than [`MAX_LIST_FILE`].
    pub fn add_allow_file(&mut self, path: &std::path::Path) -> Result<()> {
        self.allow.extend(read_list(path, "allowfile")?);
        self.restricted = true;
        Ok(())
    }

    /// Adds the networks of a deny file (`--denyfile`, format of [`parse_list`]).
    ///
    /// # Errors
    /// As [`AccessList::add_allow_file`].
    pub fn add_deny_file(&mut self, path: &std::path::Path) -> Result<()> {
        self.deny.extend(read_list(path, "denyfile")?);
        Ok(())
    }

    /// True when nothing is refused: no deny network, no allow list.
    pub fn is_open(&self) -> bool {
        !self.restricted && self.deny.is_empty()
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
        !self.restricted || self.allow.iter().any(|n| n.contains(&peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_entry_admits_its_ipv4_peer_and_an_empty_word_is_refused() {
        // Regression: an allowfile line ::ffff:127.0.0.2 did not admit 127.0.0.2.
        let acl = AccessList::parse(&["::ffff:127.0.0.2", "::ffff:10.0.0.0/104"], &[]).unwrap();
        for ok in ["127.0.0.2", "::ffff:127.0.0.2", "10.9.8.7"] {
            assert!(acl.permits(ok.parse().unwrap()), "{ok}");
        }
        assert!(!acl.permits("127.0.0.3".parse().unwrap()));
        assert!(matches!(parse_cidr("::ffff:0:0/95").unwrap(), IpNet::V6(_)));
        // Regression: `--allow ""` (an empty variable) meant "everyone".
        for empty in ["", " ", ",", " , "] {
            let e = AccessList::parse(&[empty], &[]).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("--allow"), "{e}");
            let e = AccessList::parse(&["10.0.0.0/8"], &[empty]).unwrap_err();
            assert!(e.to_string().contains("--deny"), "{e}");
            let e = crate::serve::ProxySources::parse(&[empty]).unwrap_err();
            assert!(e.to_string().contains("--accept-proxy-from"), "{e}");
        }
        assert_eq!(
            parse_words(&["10.0.0.0/8,,::1,"], "allow").unwrap().len(),
            2
        );
    }

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
    fn list_files() {
        let dir = std::env::temp_dir().join(format!("sockit-acl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "# nobody\n\n").unwrap();
        let mut acl = AccessList::default();
        acl.add_allow_file(&empty).unwrap();
        assert!(!acl.is_open());
        assert!(
            !acl.permits(ip("127.0.0.1")),
            "an empty allow file admits nobody"
        );
        let list = dir.join("list");
        std::fs::write(&list, "127.0.0.0/8 # loopback\n  ::1\n").unwrap();
        acl.add_allow_file(&list).unwrap();
        assert!(acl.permits(ip("127.0.0.3")) && acl.permits(ip("::1")));
        std::fs::write(&list, "127.0.0.3\n").unwrap();
        acl.add_deny_file(&list).unwrap();
        assert!(!acl.permits(ip("127.0.0.3")) && acl.permits(ip("127.0.0.2")));
        std::fs::write(&list, "10.0.0.1\n\nlocalhost\n").unwrap();
        let e = acl.add_deny_file(&list).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(
            e.to_string().contains("line 3") && e.to_string().contains("localhost"),
            "{e}"
        );
        assert!(e.to_string().starts_with("denyfile "), "{e}");
        std::fs::write(&list, b"10.0.0.1\n\xff\n").unwrap();
        let e = acl.add_deny_file(&list).unwrap_err();
        assert!(e.to_string().contains("line 2: not UTF-8"), "{e}");
        let e = acl.add_allow_file(&dir.join("missing")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Os);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_networks() {
        for bad in ["", "x", "10.0.0.0/33", "1.2.3", "::1/129"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }
}
