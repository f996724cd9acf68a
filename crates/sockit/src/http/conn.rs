//! The connection under an exchange: a TCP or Unix stream socket, under TLS for
//! `https://`, with the deadline turned into socket timeouts.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::tls;

/// The connected socket under the (optional) TLS layer.
pub(super) enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    pub(super) fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(t).and_then(|()| s.set_write_timeout(t)),
            Conn::Unix(s) => s.set_read_timeout(t).and_then(|()| s.set_write_timeout(t)),
        }
    }

    /// True when the peer has closed (or reset) the connection and nothing is left to
    /// read: `recv(MSG_PEEK | MSG_DONTWAIT)` returns 0 or an error other than EAGAIN.
    pub(super) fn peer_closed(&self) -> bool {
        let fd = match self {
            Conn::Tcp(s) => socket2::SockRef::from(s),
            Conn::Unix(s) => socket2::SockRef::from(s),
        };
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match fd.recv_with_flags(&mut buf, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) enum Stream {
    Plain(Conn),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, Conn>>),
}

impl Stream {
    pub(super) fn conn(&self) -> &Conn {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Connects a Unix stream socket, bounded by `deadline` (a listener whose backlog is full
/// refuses at once with `EAGAIN` rather than making us wait).
pub(super) fn connect_unix(path: &Path, deadline: Option<Instant>) -> Result<UnixStream> {
    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
        .map_err(|e| Error::from_io("socket", e))?;
    let addr = socket2::SockAddr::unix(path)
        .map_err(|e| Error::invalid_input("connect", format!("{}: {e}", path.display())))?;
    match remaining(deadline) {
        Some(None) => return Err(Error::timeout("connect")),
        Some(Some(_)) => sock
            .set_nonblocking(true)
            .map_err(|e| Error::from_io("fcntl", e))?,
        None => {}
    }
    sock.connect(&addr).map_err(|e| {
        let e = Error::from_io("connect", e);
        Error::new(
            e.kind(),
            "connect",
            e.code(),
            format!("{} ({})", e.message(), path.display()),
        )
    })?;
    sock.set_nonblocking(false)
        .map_err(|e| Error::from_io("fcntl", e))?;
    Ok(UnixStream::from(std::os::fd::OwnedFd::from(sock)))
}

/// `Some(None)` when the deadline has passed, `Some(Some(left))` before it, `None` without.
pub(super) fn remaining(deadline: Option<Instant>) -> Option<Option<Duration>> {
    deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    })
}

pub(super) fn set_timeouts(conn: &Conn, deadline: Option<Instant>, op: &'static str) -> Result<()> {
    let t = match remaining(deadline) {
        Some(Some(t)) => Some(t),
        Some(None) => return Err(Error::timeout(op)),
        None => None,
    };
    conn.set_timeouts(t)
        .map_err(|e| Error::from_io("setsockopt", e))
}

pub(super) fn io_error(op: &'static str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::timeout(op),
        _ => tls::from_io(op, e),
    }
}
