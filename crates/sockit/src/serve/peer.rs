//! Who is on each end: the [`Transport`] word and the [`Peer`] / local address of a
//! session, with the one JSON spelling every server uses (`peer_host`/`peer_port` or
//! `peer_path`, `local_host`/`local_port` or `local_path`).

use std::fmt;
use std::net::SocketAddr;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::addr::host_text;
use crate::unix::UnixAddr;

/// The transport of a socket, in one spelling: `tcp`, `udp`, `unix` (Unix stream),
/// `unixgram` (Unix datagram, as Go and `ss` name it). Read back from JSON too, where
/// `unix-dgram`, the old spelling of files saved before the vocabulary, is still taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP (`AF_INET`/`AF_INET6`, `SOCK_STREAM`).
    Tcp,
    /// UDP (`AF_INET`/`AF_INET6`, `SOCK_DGRAM`).
    Udp,
    /// A Unix stream socket (`AF_UNIX`, `SOCK_STREAM`).
    Unix,
    /// A Unix datagram socket (`AF_UNIX`, `SOCK_DGRAM`).
    #[serde(alias = "unix-dgram")]
    Unixgram,
}

impl Transport {
    /// The word: `tcp`, `udp`, `unix`, `unixgram`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Unix => "unix",
            Transport::Unixgram => "unixgram",
        }
    }

    /// Parses the word; `unix-dgram`, the old spelling, is still read (from old files).
    pub fn parse(text: &str) -> Option<Transport> {
        match text {
            "tcp" => Some(Transport::Tcp),
            "udp" => Some(Transport::Udp),
            "unix" => Some(Transport::Unix),
            "unixgram" | "unix-dgram" => Some(Transport::Unixgram),
            _ => None,
        }
    }

    /// True for the datagram transports (`udp`, `unixgram`).
    pub fn is_datagram(self) -> bool {
        matches!(self, Transport::Udp | Transport::Unixgram)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One end of a session: an IP address and port, or a Unix address (a path, an abstract
/// name, or `None` for an unnamed socket). Never looked up by name.
///
/// Serialised (flattened into an event) with a prefix chosen by [`Peer::fields`]:
/// `peer_host` (numeric, IPv6 without brackets) and `peer_port`, or `peer_path` (`@name`
/// for an abstract name, `null` for an unnamed socket).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// An IP address and port.
    Ip(SocketAddr),
    /// A Unix socket's address; `None` for an unnamed (unbound) socket.
    Unix(Option<UnixAddr>),
}

impl Peer {
    /// The same address serialised with `prefix` (`peer`, `local`, `target`):
    /// `{prefix}_host`/`{prefix}_port` or `{prefix}_path`.
    pub fn fields(&self, prefix: &'static str) -> Fields<'_> {
        Fields { peer: self, prefix }
    }

    /// The address of a Unix socket as `accept(2)`/`recvfrom(2)` gave it.
    pub fn from_unix_sockaddr(addr: &socket2::SockAddr) -> Peer {
        if let Some(p) = addr.as_pathname() {
            return Peer::Unix(Some(UnixAddr::Path(p.to_path_buf())));
        }
        #[cfg(target_os = "linux")]
        if let Some(n) = addr.as_abstract_namespace() {
            return Peer::Unix(Some(UnixAddr::Abstract(n.to_vec())));
        }
        Peer::Unix(None)
    }

    /// The address of a tokio Unix socket's peer.
    pub fn from_tokio_unix(addr: &tokio::net::unix::SocketAddr) -> Peer {
        if let Some(p) = addr.as_pathname() {
            return Peer::Unix(Some(UnixAddr::Path(p.to_path_buf())));
        }
        #[cfg(target_os = "linux")]
        if let Some(n) = addr.as_abstract_name() {
            return Peer::Unix(Some(UnixAddr::Abstract(n.to_vec())));
        }
        Peer::Unix(None)
    }

    /// The IP address, for an IP peer.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Peer::Ip(a) => Some(a.ip()),
            Peer::Unix(_) => None,
        }
    }
}

/// `HOST PORT` (numeric, IPv6 without brackets), `unix PATH`, `unix @name` or
/// `unix (unnamed)`: the words of a `listening` line and of `-v` lines.
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(a) => write!(f, "{} {}", host_text(a), a.port()),
            Peer::Unix(Some(u)) => write!(f, "unix {u}"),
            Peer::Unix(None) => f.write_str("unix (unnamed)"),
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        Peer::Ip(a)
    }
}

/// A [`Peer`] serialised under a prefix (see [`Peer::fields`]); flatten it into an event.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    peer: &'a Peer,
    prefix: &'static str,
}

fn key(prefix: &str, field: &str) -> String {
    format!("{prefix}_{field}")
}

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.peer {
            Peer::Ip(a) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry(&key(self.prefix, "host"), &host_text(a))?;
                m.serialize_entry(&key(self.prefix, "port"), &a.port())?;
                m.end()
            }
            Peer::Unix(u) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(
                    &key(self.prefix, "path"),
                    &u.as_ref().map(|u| u.to_string()),
                )?;
                m.end()
            }
        }
    }
}

/// Serialised as the peer of a session: `peer_host`/`peer_port` or `peer_path`.
impl Serialize for Peer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.fields("peer").serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling() {
        let v6 = Peer::Ip("[::1]:7".parse().unwrap());
        assert_eq!(
            serde_json::to_string(&v6).unwrap(),
            r#"{"peer_host":"::1","peer_port":7}"#
        );
        assert_eq!(
            serde_json::to_string(&v6.fields("local")).unwrap(),
            r#"{"local_host":"::1","local_port":7}"#
        );
        let unnamed = Peer::Unix(None);
        assert_eq!(
            serde_json::to_string(&unnamed).unwrap(),
            r#"{"peer_path":null}"#
        );
        let abs = Peer::Unix(Some(UnixAddr::Abstract(b"x".to_vec())));
        assert_eq!(
            serde_json::to_string(&abs).unwrap(),
            r#"{"peer_path":"@x"}"#
        );
        assert_eq!(abs.to_string(), "unix @x");
        assert_eq!(v6.to_string(), "::1 7");
        assert_eq!(
            serde_json::to_string(&Transport::Unixgram).unwrap(),
            r#""unixgram""#
        );
        assert_eq!(Transport::parse("unix-dgram"), Some(Transport::Unixgram));
    }
}
