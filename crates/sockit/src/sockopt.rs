//! Socket options the command lets a user set: applied with socket2, verified with
//! `getsockopt(2)`.
//!
//! [`SocketOptions`] holds the options of the `--nodelay`, `--keepalive`, `--ttl`, `--tos`,
//! `--rcvbuf`, `--sndbuf`, `--reuseport` and `--linger` flags. [`SocketOptions::apply`] sets
//! each one that was asked for with `setsockopt(2)`, reads it back with `getsockopt(2)` and
//! returns what the kernel kept ([`Applied`]): Linux doubles `SO_RCVBUF`/`SO_SNDBUF` (for its
//! bookkeeping) and caps them at `net.core.rmem_max`/`wmem_max`, and keeps the two ECN bits
//! of a TCP socket's TOS to itself, so the value read back is the one that is reported.
//!
//! Contract: values outside what the option can hold are refused before any system call
//! ([`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput): `--ttl 300`); an option that
//! does not apply to the socket (TTL on a Unix socket) is refused the same way; an option the
//! kernel refuses is an [`ErrorKind::Os`](crate::ErrorKind::Os) error naming the option
//! (`setsockopt(IP_TTL): [Errno 22] Invalid argument`).
//!
//! ```
//! use sockit::sockopt::SocketOptions;
//! let opts = SocketOptions { ttl: Some(300), ..Default::default() };
//! let err = opts.validate().unwrap_err();
//! assert_eq!(err.to_string(), "setsockopt(IP_TTL): ttl must be 1-255, not 300");
//! ```

use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{SockRef, Type};

use crate::error::{Error, Result};

/// The socket options a user asked for; `Default` asks for none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// `TCP_NODELAY` on: send small segments at once (no Nagle). TCP only.
    pub nodelay: bool,
    /// `SO_KEEPALIVE` on: probe an idle connection. Stream sockets.
    pub keepalive: bool,
    /// `IP_TTL` (IPv4) or `IPV6_UNICAST_HOPS` (IPv6), 1..=255.
    pub ttl: Option<u32>,
    /// `IP_TOS` (IPv4) or `IPV6_TCLASS` (IPv6), 0..=255.
    pub tos: Option<u32>,
    /// `SO_RCVBUF` in bytes (the kernel doubles it and caps it at `rmem_max`).
    pub rcvbuf: Option<usize>,
    /// `SO_SNDBUF` in bytes (the kernel doubles it and caps it at `wmem_max`).
    pub sndbuf: Option<usize>,
    /// `SO_REUSEPORT` on: several sockets may bind the same address and port. Set before
    /// `bind(2)` to matter.
    pub reuseport: bool,
    /// `SO_LINGER` with this time: `close(2)` waits up to it for unsent data (0: reset).
    pub linger: Option<Duration>,
}

/// One option as set and as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The C name of the option, e.g. `SO_RCVBUF`.
    pub name: &'static str,
    /// The value asked for, as text (`65536`, `on`).
    pub requested: String,
    /// The value `getsockopt(2)` returned after setting it (`131072`).
    pub effective: String,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.requested == self.effective {
            write!(f, "{} {}", self.name, self.effective)
        } else {
            write!(
                f,
                "{} {} (asked {})",
                self.name, self.effective, self.requested
            )
        }
    }
}

fn op(name: &str) -> String {
    format!("setsockopt({name})")
}

fn os(name: &str, e: std::io::Error) -> Error {
    Error::from_io(op(name), e)
}

fn mismatch(name: &str, asked: impl std::fmt::Display, got: impl std::fmt::Display) -> Error {
    Error::new(
        crate::ErrorKind::Os,
        op(name),
        None,
        format!("the kernel kept {got}, not {asked}"),
    )
}

impl SocketOptions {
    /// True when no option is asked for.
    pub fn is_empty(&self) -> bool {
        *self == SocketOptions::default()
    }

    /// Checks the values before any system call.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a TTL outside
    /// 1..=255, a TOS outside 0..=255, a buffer size of 0 or above `i32::MAX`, or a linger
    /// time above `i32::MAX` seconds.
    pub fn validate(&self) -> Result<()> {
        if let Some(ttl) = self.ttl
            && !(1..=255).contains(&ttl)
        {
            return Err(Error::invalid_input(
                op("IP_TTL"),
                format!("ttl must be 1-255, not {ttl}"),
            ));
        }
        if let Some(tos) = self.tos
            && tos > 255
        {
            return Err(Error::invalid_input(
                op("IP_TOS"),
                format!("tos must be 0-255, not {tos}"),
            ));
        }
        for (name, v) in [("SO_RCVBUF", self.rcvbuf), ("SO_SNDBUF", self.sndbuf)] {
            if let Some(n) = v
                && (n == 0 || n > i32::MAX as usize)
            {
                return Err(Error::invalid_input(
                    op(name),
                    format!("buffer size must be 1-{}, not {n}", i32::MAX),
                ));
            }
        }
        if let Some(l) = self.linger
            && l.as_secs() > i32::MAX as u64
        {
            return Err(Error::invalid_input(
                op("SO_LINGER"),
                format!("linger must be 0-{} seconds", i32::MAX),
            ));
        }
        Ok(())
    }

    /// Sets every option asked for on `socket` and reads each back.
    ///
    /// Python: `sock.setsockopt(level, name, value)` then `sock.getsockopt(level, name)`;
    /// one `setsockopt(2)` and one `getsockopt(2)` per option. Options of a listening socket
    /// are inherited by the sockets it accepts (Linux), so a listener may be given all of
    /// them; `SO_REUSEPORT` and the buffer sizes should be set before `bind(2)`/`connect(2)`.
    ///
    /// Returns one [`Applied`] per option asked for, in the order of the fields.
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) as in
    ///   [`validate`](Self::validate), or for an option that does not apply to this socket
    ///   (`--nodelay` on a non-TCP socket, `--ttl`/`--tos` on a Unix socket).
    /// - [`ErrorKind::Os`](crate::ErrorKind::Os) when the kernel refuses an option (its errno
    ///   kept, the option named in the operation), or keeps another value for an on/off
    ///   option, TTL or linger than the one set.
    pub fn apply<S: AsFd>(&self, socket: &S) -> Result<Vec<Applied>> {
        self.validate()?;
        let sock = SockRef::from(socket);
        let mut out = Vec::new();
        if self.is_empty() {
            return Ok(out);
        }
        let local = sock
            .local_addr()
            .map_err(|e| Error::from_io("getsockname", e))?;
        let is_v4 = local.is_ipv4();
        let is_v6 = local.is_ipv6();
        let ty = sock
            .r#type()
            .map_err(|e| Error::from_io("getsockopt(SO_TYPE)", e))?;
        let is_stream = ty == Type::STREAM;
        let not_for = |name: &str, what: &str| {
            Error::invalid_input(
                op(name),
                format!(
                    "{what} applies to {} only",
                    match what {
                        "--nodelay" => "TCP sockets",
                        "--keepalive" => "stream sockets",
                        _ => "IP sockets",
                    }
                ),
            )
        };

        if self.nodelay {
            const N: &str = "TCP_NODELAY";
            if !(is_stream && (is_v4 || is_v6)) {
                return Err(not_for(N, "--nodelay"));
            }
            sock.set_tcp_nodelay(true).map_err(|e| os(N, e))?;
            let got = sock.tcp_nodelay().map_err(|e| os(N, e))?;
            if !got {
                return Err(mismatch(N, "on", "off"));
            }
            out.push(applied(N, "on", "on"));
        }
        if self.keepalive {
            const N: &str = "SO_KEEPALIVE";
            if !is_stream {
                return Err(not_for(N, "--keepalive"));
            }
            sock.set_keepalive(true).map_err(|e| os(N, e))?;
            if !sock.keepalive().map_err(|e| os(N, e))? {
                return Err(mismatch(N, "on", "off"));
            }
            out.push(applied(N, "on", "on"));
        }
        if let Some(ttl) = self.ttl {
            let got = if is_v4 {
                const N: &str = "IP_TTL";
                sock.set_ttl_v4(ttl).map_err(|e| os(N, e))?;
                sock.ttl_v4().map_err(|e| os(N, e))?
            } else if is_v6 {
                const N: &str = "IPV6_UNICAST_HOPS";
                sock.set_unicast_hops_v6(ttl).map_err(|e| os(N, e))?;
                sock.unicast_hops_v6().map_err(|e| os(N, e))?
            } else {
                return Err(not_for("IP_TTL", "--ttl"));
            };
            let name = if is_v4 { "IP_TTL" } else { "IPV6_UNICAST_HOPS" };
            if got != ttl {
                return Err(mismatch(name, ttl, got));
            }
            out.push(applied(name, ttl, got));
        }
        if let Some(tos) = self.tos {
            let (name, got) = if is_v4 {
                const N: &str = "IP_TOS";
                sock.set_tos_v4(tos).map_err(|e| os(N, e))?;
                (N, sock.tos_v4().map_err(|e| os(N, e))?)
            } else if is_v6 {
                const N: &str = "IPV6_TCLASS";
                sock.set_tclass_v6(tos).map_err(|e| os(N, e))?;
                (N, sock.tclass_v6().map_err(|e| os(N, e))?)
            } else {
                return Err(not_for("IP_TOS", "--tos"));
            };
            // The kernel owns the two ECN bits of a TCP socket's TOS byte.
            if got & !3 != tos & !3 {
                return Err(mismatch(name, tos, got));
            }
            out.push(applied(name, tos, got));
        }
        if let Some(n) = self.rcvbuf {
            const N: &str = "SO_RCVBUF";
            sock.set_recv_buffer_size(n).map_err(|e| os(N, e))?;
            let got = sock.recv_buffer_size().map_err(|e| os(N, e))?;
            out.push(applied(N, n, got));
        }
        if let Some(n) = self.sndbuf {
            const N: &str = "SO_SNDBUF";
            sock.set_send_buffer_size(n).map_err(|e| os(N, e))?;
            let got = sock.send_buffer_size().map_err(|e| os(N, e))?;
            out.push(applied(N, n, got));
        }
        if self.reuseport {
            const N: &str = "SO_REUSEPORT";
            sock.set_reuse_port(true).map_err(|e| os(N, e))?;
            if !sock.reuse_port().map_err(|e| os(N, e))? {
                return Err(mismatch(N, "on", "off"));
            }
            out.push(applied(N, "on", "on"));
        }
        if let Some(l) = self.linger {
            const N: &str = "SO_LINGER";
            sock.set_linger(Some(l)).map_err(|e| os(N, e))?;
            let got = sock.linger().map_err(|e| os(N, e))?;
            if got != Some(l) {
                return Err(mismatch(
                    N,
                    format!("{}s", l.as_secs()),
                    got.map_or("off".to_string(), |g| format!("{}s", g.as_secs())),
                ));
            }
            out.push(applied(
                N,
                format!("{}s", l.as_secs()),
                format!("{}s", l.as_secs()),
            ));
        }
        Ok(out)
    }
}

fn applied(name: &'static str, requested: impl ToString, effective: impl ToString) -> Applied {
    Applied {
        name,
        requested: requested.to_string(),
        effective: effective.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn out_of_range_values_are_refused_before_any_call() {
        let e = SocketOptions {
            ttl: Some(300),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            SocketOptions {
                ttl: Some(0),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            SocketOptions {
                tos: Some(256),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            SocketOptions {
                rcvbuf: Some(0),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn options_are_set_and_read_back() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let opts = SocketOptions {
            nodelay: true,
            keepalive: true,
            ttl: Some(7),
            tos: Some(0x10),
            rcvbuf: Some(65536),
            sndbuf: Some(65536),
            reuseport: true,
            linger: Some(Duration::from_secs(2)),
        };
        let got = opts.apply(&s).unwrap();
        let rcv = got.iter().find(|a| a.name == "SO_RCVBUF").unwrap();
        assert_eq!(rcv.requested, "65536");
        assert_eq!(rcv.effective, "131072", "Linux doubles SO_RCVBUF");
        assert_eq!(got.len(), 8);
        assert_eq!(s.ttl().unwrap(), 7);
        assert!(s.nodelay().unwrap());
    }

    #[test]
    fn ip_options_on_a_unix_socket_are_refused() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let e = SocketOptions {
            ttl: Some(5),
            ..Default::default()
        }
        .apply(&a)
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            e.to_string(),
            "setsockopt(IP_TTL): --ttl applies to IP sockets only"
        );
        let e = SocketOptions {
            nodelay: true,
            ..Default::default()
        }
        .apply(&a)
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn ipv6_hops_and_tclass() {
        let Ok(u) = std::net::UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback on this machine
        };
        let got = SocketOptions {
            ttl: Some(9),
            tos: Some(0x20),
            ..Default::default()
        }
        .apply(&u)
        .unwrap();
        assert_eq!(got[0].name, "IPV6_UNICAST_HOPS");
        assert_eq!(got[1].effective, "32");
    }
}
