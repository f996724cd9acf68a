//! The address words of `sockit forward`: [`Endpoint`] (`tcp:HOST:PORT`, `udp:…`,
//! `unix:PATH`, `unixgram:PATH` …), parsed and printed.

use std::fmt;

use crate::addr::{Port, SockType, parse_host_port};
use crate::error::{Error, Result};
use crate::serve::Transport;
use crate::unix::UnixAddr;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// A TCP stream.
    Tcp,
    /// UDP datagrams.
    Udp,
}

/// One side of a forward: an IP address and port (TCP or UDP), or a Unix stream socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp:HOST:PORT` / `udp:HOST:PORT`; a listen side without host binds 127.0.0.1.
    Ip {
        /// TCP or UDP.
        proto: Proto,
        /// Host name or address (`None`: only a port was given).
        host: Option<String>,
        /// Port number or service name.
        port: Port,
    },
    /// `unix:PATH` (or a word starting with `/`, `./` or `@`).
    Unix(UnixAddr),
    /// `unixgram:PATH` (Go's and the ss tool's name for it): a Unix datagram socket, as a
    /// target only. The forwarder's socket is bound by Linux autobind, so the target
    /// answers to it.
    UnixDgram(UnixAddr),
}

impl Endpoint {
    /// Can this listen side terminate TLS (`forward --tls`)? A stream listener can; checked
    /// before a certificate is loaded or made.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a datagram listener.
    pub fn check_tls_listener(&self) -> crate::error::Result<()> {
        if self.transport().is_datagram() {
            return Err(crate::error::Error::invalid_input(
                "tls",
                "--tls terminates TLS on a stream listener (TCP or Unix), not UDP",
            ));
        }
        Ok(())
    }

    /// The endpoint as a target is named in events before it is reached ([`Aim`]): its
    /// host (127.0.0.1 when none was given) and port, or its path.
    ///
    /// [`Aim`]: crate::serve::Aim
    pub fn aim(&self) -> crate::serve::Aim {
        match self {
            Endpoint::Ip { host, port, .. } => crate::serve::Aim::Ip {
                host: host.clone().unwrap_or_else(|| "127.0.0.1".into()),
                port: port.clone(),
            },
            Endpoint::Unix(a) | Endpoint::UnixDgram(a) => crate::serve::Aim::Path(a.to_string()),
        }
    }

    /// Parses one address word of `sockit forward`.
    ///
    /// Forms: `PORT`, `HOST:PORT`, `[V6]:PORT`, each optionally prefixed `tcp:` or `udp:`
    /// (without a prefix, `udp` decides: the `-u` flag); `unix:PATH`, `/path`, `./path`,
    /// `@abstract` for a Unix stream socket; `unixgram:PATH` (or `unixgram:@name`) for a
    /// Unix datagram socket.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a missing or bad port or host, as
    /// [`parse_host_port`] says, a bad Unix path, or an empty abstract name (`@`).
    ///
    /// # Examples
    /// ```
    /// use sockit::forward::{Endpoint, Proto};
    /// let e = Endpoint::parse("udp:[::1]:53", false).unwrap();
    /// assert_eq!(e.to_string(), "udp:[::1]:53");
    /// assert_eq!(Endpoint::parse("8080", true).unwrap().to_string(), "udp:8080");
    /// assert_eq!(Endpoint::parse("/tmp/s", false).unwrap().to_string(), "unix:/tmp/s");
    /// ```
    pub fn parse(text: &str, udp: bool) -> Result<Endpoint> {
        let unix = |path: &str| {
            if path == "@" {
                return Err(Error::invalid_input(
                    "unix",
                    "empty abstract Unix socket name (@ needs a name after it)",
                ));
            }
            Ok(Endpoint::Unix(UnixAddr::parse(path)?))
        };
        if let Some(path) = text.strip_prefix("unix:") {
            return unix(path);
        }
        if let Some(path) = text.strip_prefix("unixgram:") {
            return match unix(path)? {
                Endpoint::Unix(a) => Ok(Endpoint::UnixDgram(a)),
                other => Ok(other),
            };
        }
        if text.starts_with('/') || text.starts_with("./") || text.starts_with('@') {
            return unix(text);
        }
        let (proto, rest) = if let Some(r) = text.strip_prefix("tcp:") {
            (Proto::Tcp, r)
        } else if let Some(r) = text.strip_prefix("udp:") {
            (Proto::Udp, r)
        } else if udp {
            (Proto::Udp, text)
        } else {
            (Proto::Tcp, text)
        };
        let hp = parse_host_port(&[rest])?;
        Ok(Endpoint::Ip {
            proto,
            host: hp.host,
            port: hp.port,
        })
    }

    /// Checks that this address can be a target: port 0 picks a free port for a listener,
    /// but there is nothing to connect to at port 0.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for port 0.
    pub fn check_target(&self) -> Result<()> {
        match self {
            Endpoint::Ip {
                port: Port::Number(0),
                ..
            } => Err(
                Error::invalid_input("target", "a target needs a real port, not 0")
                    .at(self.to_string()),
            ),
            _ => Ok(()),
        }
    }

    /// The transport the address names.
    pub fn transport(&self) -> Transport {
        match self {
            Endpoint::Ip {
                proto: Proto::Tcp, ..
            } => Transport::Tcp,
            Endpoint::Ip {
                proto: Proto::Udp, ..
            } => Transport::Udp,
            Endpoint::Unix(_) => Transport::Unix,
            Endpoint::UnixDgram(_) => Transport::Unixgram,
        }
    }

    pub(crate) fn socktype(&self) -> SockType {
        match self {
            Endpoint::Ip {
                proto: Proto::Udp, ..
            }
            | Endpoint::UnixDgram(_) => SockType::Dgram,
            _ => SockType::Stream,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Ip { proto, host, port } => {
                let p = match proto {
                    Proto::Tcp => "tcp",
                    Proto::Udp => "udp",
                };
                match host {
                    Some(h) if h.contains(':') => write!(f, "{p}:[{h}]:{port}"),
                    Some(h) => write!(f, "{p}:{h}:{port}"),
                    None => write!(f, "{p}:{port}"),
                }
            }
            Endpoint::Unix(a) => write!(f, "unix:{a}"),
            Endpoint::UnixDgram(a) => write!(f, "unixgram:{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_words() {
        let e = Endpoint::parse("127.0.0.1:80", false).unwrap();
        assert_eq!(
            e,
            Endpoint::Ip {
                proto: Proto::Tcp,
                host: Some("127.0.0.1".into()),
                port: Port::Number(80)
            }
        );
        assert_eq!(
            Endpoint::parse("udp:5353", false).unwrap().to_string(),
            "udp:5353"
        );
        assert_eq!(Endpoint::parse("tcp:9", true).unwrap().to_string(), "tcp:9");
        assert_eq!(
            Endpoint::parse("unix:@x", false).unwrap().to_string(),
            "unix:@x"
        );
        assert!(Endpoint::parse("", false).is_err());
        assert!(Endpoint::parse("host", false).is_err());
        assert!(Endpoint::parse("tcp:70000", false).is_err());
        // Regression: an empty abstract name was accepted.
        assert!(Endpoint::parse("@", false).is_err());
        assert!(Endpoint::parse("unix:@", false).is_err());
    }
}
