//! Socket options of [`Socket`]: one pair of methods per option (`setsockopt(2)` /
//! `getsockopt(2)`), as Python's `setsockopt`/`getsockopt` with the constant named.

use std::io;
use std::time::Duration;

use super::{Socket, check_buffer_size};
use crate::addr::Family;
use crate::error::{Error, Result};

/// Socket options, one pair of methods per option (`setsockopt(2)` / `getsockopt(2)`).
impl Socket {
    /// `SO_REUSEADDR`: bind again right after a server stops (TIME_WAIT).
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `setsockopt(2)`.
    pub fn set_reuse_address(&self, on: bool) -> Result<()> {
        opt(self, "setsockopt", |s| s.set_reuse_address(on))
    }
    /// Reads `SO_REUSEADDR`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockopt(2)`.
    pub fn reuse_address(&self) -> Result<bool> {
        opt(self, "getsockopt", |s| s.reuse_address())
    }
    /// `SO_REUSEPORT`: several sockets bound to one port, the kernel balancing between them.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `setsockopt(2)`.
    pub fn set_reuse_port(&self, on: bool) -> Result<()> {
        opt(self, "setsockopt", |s| s.set_reuse_port(on))
    }
    /// Reads `SO_REUSEPORT`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockopt(2)`.
    pub fn reuse_port(&self) -> Result<bool> {
        opt(self, "getsockopt", |s| s.reuse_port())
    }
    /// `TCP_NODELAY`: send small segments at once (no Nagle delay).
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `setsockopt(2)` (EOPNOTSUPP on a non-TCP socket).
    pub fn set_nodelay(&self, on: bool) -> Result<()> {
        opt(self, "setsockopt", |s| s.set_tcp_nodelay(on))
    }
    /// Reads `TCP_NODELAY`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockopt(2)`.
    pub fn nodelay(&self) -> Result<bool> {
        opt(self, "getsockopt", |s| s.tcp_nodelay())
    }
    /// `SO_KEEPALIVE`: probe an idle connection.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `setsockopt(2)`.
    pub fn set_keepalive(&self, on: bool) -> Result<()> {
        opt(self, "setsockopt", |s| s.set_keepalive(on))
    }
    /// Reads `SO_KEEPALIVE`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockopt(2)`.
    pub fn keepalive(&self) -> Result<bool> {
        opt(self, "getsockopt", |s| s.keepalive())
    }
    /// `SO_RCVBUF` in bytes (Linux doubles the value asked for, and reads back the double).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) above `i32::MAX` (the option is a C `int`);
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `setsockopt(2)`.
    pub fn set_recv_buffer_size(&self, bytes: usize) -> Result<()> {
        check_buffer_size("SO_RCVBUF", bytes)?;
        opt(self, "setsockopt", |s| s.set_recv_buffer_size(bytes))
    }
    /// Reads `SO_RCVBUF` in bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockopt(2)`.
    pub fn recv_buffer_size(&self) -> Result<usize> {
        opt(self, "getsockopt", |s| s.recv_buffer_size())
    }
    /// `SO_SNDBUF` in bytes (Linux doubles the value asked for).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) above `i32::MAX` (the option is a C `int`);
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `setsockopt(2)`.
    pub fn set_send_buffer_size(&self, bytes: usize) -> Result<()> {
        check_buffer_size("SO_SNDBUF", bytes)?;
        opt(self, "setsockopt", |s| s.set_send_buffer_size(bytes))
    }
    /// Reads `SO_SNDBUF` in bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockopt(2)`.
    pub fn send_buffer_size(&self) -> Result<usize> {
        opt(self, "getsockopt", |s| s.send_buffer_size())
    }
    /// `IPV6_V6ONLY`: an IPv6 socket takes IPv6 only (no IPv4-mapped peers).
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `setsockopt(2)` (on a non-IPv6 socket, or after bind).
    pub fn set_only_v6(&self, on: bool) -> Result<()> {
        opt(self, "setsockopt", |s| s.set_only_v6(on))
    }
    /// Reads `IPV6_V6ONLY`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockopt(2)`.
    pub fn only_v6(&self) -> Result<bool> {
        opt(self, "getsockopt", |s| s.only_v6())
    }
    /// `IP_TTL` (IPv4) or `IPV6_UNICAST_HOPS` (IPv6): hop limit, 1..=255.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for 0 or a value over 255 (before any system call);
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `setsockopt(2)`.
    pub fn set_ttl(&self, ttl: u32) -> Result<()> {
        if !(1..=255).contains(&ttl) {
            return Err(Error::invalid_input(
                "setsockopt",
                format!("ttl must be 1-255, not {ttl}"),
            ));
        }
        match self.family {
            Family::Inet6 => opt(self, "setsockopt", |s| s.set_unicast_hops_v6(ttl)),
            _ => opt(self, "setsockopt", |s| s.set_ttl_v4(ttl)),
        }
    }
    /// Reads the hop limit (`IP_TTL` or `IPV6_UNICAST_HOPS`).
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockopt(2)`.
    pub fn ttl(&self) -> Result<u32> {
        match self.family {
            Family::Inet6 => opt(self, "getsockopt", |s| s.unicast_hops_v6()),
            _ => opt(self, "getsockopt", |s| s.ttl_v4()),
        }
    }
    /// `SO_BROADCAST`: allow datagrams to a broadcast address.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `setsockopt(2)`.
    pub fn set_broadcast(&self, on: bool) -> Result<()> {
        opt(self, "setsockopt", |s| s.set_broadcast(on))
    }
    /// Reads `SO_BROADCAST`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockopt(2)`.
    pub fn broadcast(&self) -> Result<bool> {
        opt(self, "getsockopt", |s| s.broadcast())
    }
    /// `SO_LINGER`: `Some(d)` makes `close` wait up to `d` for unsent data (`Some(ZERO)`
    /// resets the connection); `None` is the default background close. `d` is whole
    /// seconds, 0 to `i32::MAX` (`struct linger`'s `l_linger` is a C `int` of seconds).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a fraction of a second or more than `i32::MAX`
    /// seconds (before any system call); [`ErrorKind::Os`](crate::ErrorKind::Os) from `setsockopt(2)`.
    pub fn set_linger(&self, linger: Option<Duration>) -> Result<()> {
        if let Some(d) = linger
            && (d.subsec_nanos() != 0 || d.as_secs() > i32::MAX as u64)
        {
            return Err(Error::invalid_input(
                "setsockopt",
                format!("linger must be whole seconds 0-{}, not {d:?}", i32::MAX),
            ));
        }
        opt(self, "setsockopt", |s| s.set_linger(linger))
    }
    /// Reads `SO_LINGER`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockopt(2)`.
    pub fn linger(&self) -> Result<Option<Duration>> {
        opt(self, "getsockopt", |s| s.linger())
    }
}

fn opt<T>(
    s: &Socket,
    op: &'static str,
    f: impl FnOnce(&socket2::Socket) -> io::Result<T>,
) -> Result<T> {
    f(s.sock(op)?).map_err(|e| Error::from_io(op, e))
}
