//! [`SockAddr`]: the addresses a [`Socket`](super::Socket) binds, connects and receives
//! from, as Python's tuples and paths.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::addr::Family;
use crate::error::{Error, Result};

/// A socket address: an IP address and port, or a Unix socket address.
///
/// Python gives these as `(host, port)` tuples, `(host, port, flowinfo, scope_id)` for
/// IPv6, and `str`/`bytes` paths for Unix sockets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SockAddr {
    /// An IPv4 or IPv6 address with port (scope id kept for IPv6).
    Ip(SocketAddr),
    /// A Unix socket bound to a path in the file system.
    Unix(PathBuf),
    /// A Linux abstract Unix socket name (shown as `@name`), without the leading NUL.
    Abstract(Vec<u8>),
    /// An unnamed Unix socket (a client that never bound, or one end of a socketpair).
    Unnamed,
}

impl SockAddr {
    /// The IP address, if this is one.
    pub fn as_ip(&self) -> Option<SocketAddr> {
        match self {
            SockAddr::Ip(a) => Some(*a),
            _ => None,
        }
    }

    /// A Unix socket address from text: `@name` is an abstract name, anything else a path.
    pub fn unix(text: &str) -> SockAddr {
        match text.strip_prefix('@') {
            Some(name) => SockAddr::Abstract(name.as_bytes().to_vec()),
            None => SockAddr::Unix(PathBuf::from(text)),
        }
    }

    /// The address family.
    pub fn family(&self) -> Family {
        match self {
            SockAddr::Ip(a) => Family::of(a),
            _ => Family::Unix,
        }
    }

    pub(super) fn to_socket2(&self, op: &'static str) -> Result<socket2::SockAddr> {
        match self {
            SockAddr::Ip(a) => Ok(socket2::SockAddr::from(*a)),
            SockAddr::Unix(p) => socket2::SockAddr::unix(p).map_err(|e| unix_path_error(op, p, e)),
            SockAddr::Abstract(name) => {
                let mut bytes = Vec::with_capacity(name.len() + 1);
                bytes.push(0);
                bytes.extend_from_slice(name);
                let path = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&bytes);
                socket2::SockAddr::unix(path).map_err(|e| unix_path_error(op, Path::new(path), e))
            }
            SockAddr::Unnamed => Err(Error::invalid_input(op, "an unnamed Unix address")),
        }
    }

    pub(super) fn from_socket2(sa: &socket2::SockAddr) -> SockAddr {
        if let Some(a) = sa.as_socket() {
            return SockAddr::Ip(a);
        }
        if let Some(p) = sa.as_pathname() {
            return SockAddr::Unix(p.to_path_buf());
        }
        if let Some(name) = sa.as_abstract_namespace() {
            return SockAddr::Abstract(name.to_vec());
        }
        SockAddr::Unnamed
    }
}

fn unix_path_error(op: &'static str, path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::InvalidInput {
        Error::invalid_input(
            op,
            format!(
                "Unix socket path too long ({} bytes; the limit is 107): {}",
                path.as_os_str().len(),
                path.display()
            ),
        )
    } else {
        Error::from_io(op, e)
    }
}

impl fmt::Display for SockAddr {
    /// `127.0.0.1:80`, `[::1]:80`, a path, `@name`, or `(unnamed)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Ip(a) => write!(f, "{a}"),
            SockAddr::Unix(p) => write!(f, "{}", p.display()),
            SockAddr::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
            SockAddr::Unnamed => f.write_str("(unnamed)"),
        }
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(a: SocketAddr) -> SockAddr {
        SockAddr::Ip(a)
    }
}

impl From<std::net::SocketAddrV4> for SockAddr {
    fn from(a: std::net::SocketAddrV4) -> SockAddr {
        SockAddr::Ip(a.into())
    }
}

impl From<std::net::SocketAddrV6> for SockAddr {
    fn from(a: std::net::SocketAddrV6) -> SockAddr {
        SockAddr::Ip(a.into())
    }
}

impl From<&Path> for SockAddr {
    fn from(p: &Path) -> SockAddr {
        SockAddr::Unix(p.to_path_buf())
    }
}

impl From<PathBuf> for SockAddr {
    fn from(p: PathBuf) -> SockAddr {
        SockAddr::Unix(p)
    }
}

impl From<&SockAddr> for SockAddr {
    fn from(a: &SockAddr) -> SockAddr {
        a.clone()
    }
}
