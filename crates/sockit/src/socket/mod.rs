//! [`Socket`]: a blocking socket with the shape and semantics of Python's `socket.socket`.
//!
//! A thin layer over [`socket2::Socket`] that adds Python's timeout modes:
//!
//! | `timeout()`      | Python                       | behaviour of every call                         |
//! | ---------------- | ---------------------------- | ----------------------------------------------- |
//! | `None`           | `settimeout(None)` (default) | blocks until done; EINTR retried (PEP 475)      |
//! | `Some(ZERO)`     | `setblocking(False)`         | one attempt; `Os` error EAGAIN/EINPROGRESS       |
//! | `Some(t)`, t > 0 | `settimeout(t)`              | a deadline for the whole call ([`Socket::send_all`] included); an expired deadline is [`ErrorKind::Timeout`] (`timed out`), never EAGAIN |
//!
//! As in CPython, a socket with a timeout has `O_NONBLOCK` set and waits with `poll(2)`;
//! EINTR is retried against the same deadline. sockit has no process-wide default timeout
//! (Python's `setdefaulttimeout`): every new socket, accepted ones included, starts blocking.
//!
//! ```no_run
//! use std::time::Duration;
//! use sockit::{Family, Socket, SockType};
//!
//! let s = Socket::new(Family::Inet, SockType::Stream, None)?;
//! s.bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())?;
//! s.listen(1)?;
//! let mut s = s;
//! s.set_timeout(Some(Duration::from_millis(500)))?;
//! let err = s.accept().unwrap_err();
//! assert_eq!(err.to_string(), "accept: timed out");
//! # Ok::<(), sockit::Error>(())
//! ```

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::addr::{Family, Protocol, SockType};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

mod options;
mod sockaddr;

pub use sockaddr::SockAddr;

/// A blocking socket with Python's `socket.socket` semantics (see the [module docs](self)).
///
/// Every I/O method takes `&self` and honours the socket's timeout mode. After
/// [`close`](Socket::close), [`fileno`](Socket::fileno) is -1 and every call fails with
/// `[Errno 9] Bad file descriptor`, as in Python.
pub struct Socket {
    inner: Option<socket2::Socket>,
    family: Family,
    socktype: SockType,
    protocol: i32,
    timeout: Option<Duration>,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("fd", &self.fileno())
            .field("family", &self.family)
            .field("type", &self.socktype)
            .field("proto", &self.protocol)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Converts Python-style seconds to a timeout the way `settimeout` does.
///
/// `None` stays `None` (blocking); the value is rounded up to whole nanoseconds
/// (CPython's `_PyTime_ROUND_TIMEOUT`: `1e-10` becomes 1 ns, `1.5e-9` 2 ns); `-0.0` is zero.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for NaN (`Invalid value NaN (not a number)`), a negative value
/// (`Timeout value out of range`) or one too large for the platform
/// (`timestamp out of range for platform time_t`).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use sockit::socket::timeout_from_secs_f64;
/// assert_eq!(timeout_from_secs_f64(Some(1e-10)).unwrap(), Some(Duration::from_nanos(1)));
/// assert_eq!(timeout_from_secs_f64(Some(-0.0)).unwrap(), Some(Duration::ZERO));
/// assert!(timeout_from_secs_f64(Some(-0.5)).is_err());
/// ```
pub fn timeout_from_secs_f64(secs: Option<f64>) -> Result<Option<Duration>> {
    const OP: &str = "settimeout";
    let Some(secs) = secs else { return Ok(None) };
    if secs.is_nan() {
        return Err(Error::invalid_input(OP, "Invalid value NaN (not a number)"));
    }
    if secs.is_infinite() || secs.abs() >= i64::MAX as f64 / 1e9 {
        return Err(Error::invalid_input(
            OP,
            "timestamp out of range for platform time_t",
        ));
    }
    if secs < 0.0 {
        return Err(Error::invalid_input(OP, "Timeout value out of range"));
    }
    let nanos = (secs * 1e9).ceil();
    Ok(Some(Duration::from_nanos(nanos as u64)))
}

impl Socket {
    fn wrap(inner: socket2::Socket, family: Family, socktype: SockType, protocol: i32) -> Socket {
        Socket {
            inner: Some(inner),
            family,
            socktype,
            protocol,
            timeout: None,
        }
    }

    /// Creates a socket.
    ///
    /// Python: `socket.socket(family, type, proto)`; `socket(2)` with `SOCK_CLOEXEC`.
    /// `protocol` `None` is 0 (the default protocol of the type: TCP for INET stream).
    /// The new socket is blocking (`timeout()` is `None`).
    ///
    /// # Errors
    /// [`ErrorKind::Os`] with the errno (`EAFNOSUPPORT`, `EPROTONOSUPPORT`, `EMFILE` ...).
    #[doc(alias = "socket")]
    pub fn new(family: Family, socktype: SockType, protocol: Option<Protocol>) -> Result<Socket> {
        let proto = protocol.map_or(0, |p| p.0);
        let inner = socket2::Socket::new(
            socket2::Domain::from(family.as_raw()),
            socket2::Type::from(socktype.as_raw()),
            protocol.map(|p| socket2::Protocol::from(p.0)),
        )
        .map_err(|e| Error::from_io("socket", e))?;
        Ok(Socket::wrap(inner, family, socktype, proto))
    }

    /// Creates a pair of connected sockets.
    ///
    /// Python: `socket.socketpair(family=AF_UNIX, type=SOCK_STREAM)`; `socketpair(2)`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`] with the errno (`EOPNOTSUPP` for a family other than Unix).
    #[doc(alias = "socketpair")]
    pub fn pair(family: Family, socktype: SockType) -> Result<(Socket, Socket)> {
        let (a, b) = socket2::Socket::pair(
            socket2::Domain::from(family.as_raw()),
            socket2::Type::from(socktype.as_raw()),
            None,
        )
        .map_err(|e| Error::from_io("socketpair", e))?;
        Ok((
            Socket::wrap(a, family, socktype, 0),
            Socket::wrap(b, family, socktype, 0),
        ))
    }

    /// The address family (Python: `sock.family`).
    pub fn family(&self) -> Family {
        self.family
    }

    /// The socket type (Python: `sock.type`).
    #[doc(alias = "type")]
    pub fn socket_type(&self) -> SockType {
        self.socktype
    }

    /// The protocol number given at creation (Python: `sock.proto`).
    #[doc(alias = "proto")]
    pub fn protocol(&self) -> i32 {
        self.protocol
    }

    /// The underlying socket2 socket, or EBADF after close.
    fn sock(&self, op: &'static str) -> Result<&socket2::Socket> {
        self.inner
            .as_ref()
            .ok_or_else(|| Error::from_errno(op, libc::EBADF))
    }

    /// The deadline for one call under the current timeout mode.
    fn deadline(&self) -> Option<Instant> {
        match self.timeout {
            // MAX_TIMEOUT keeps this in range; a clock that cannot add it waits forever
            Some(t) if !t.is_zero() => Instant::now().checked_add(t),
            _ => None,
        }
    }

    /// Runs `f` until it succeeds, retrying EINTR, and with a deadline waiting on `poll(2)`
    /// for `events` after EAGAIN. Non-blocking mode (`Some(ZERO)`) reports EAGAIN as is.
    fn call<T>(
        &self,
        op: &'static str,
        events: i16,
        deadline: Option<Instant>,
        mut f: impl FnMut(&socket2::Socket) -> io::Result<T>,
    ) -> Result<T> {
        let sock = self.sock(op)?;
        loop {
            match f(sock) {
                Ok(v) => return Ok(v),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && deadline.is_some() => {
                    wait(sock, op, events, deadline)?;
                }
                Err(e) => return Err(Error::from_io(op, e)),
            }
        }
    }

    /// Binds the socket to an address.
    ///
    /// Python: `sock.bind(address)`; `bind(2)`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`]: `[Errno 98] Address already in use`, `[Errno 99] Cannot assign
    /// requested address`, EACCES; [`ErrorKind::InvalidInput`] for a Unix path over the
    /// system limit.
    pub fn bind(&self, addr: impl Into<SockAddr>) -> Result<()> {
        let sa = addr.into().to_socket2("bind")?;
        self.sock("bind")?
            .bind(&sa)
            .map_err(|e| Error::from_io("bind", e))
    }

    /// Marks the socket as listening for connections.
    ///
    /// Python: `sock.listen(backlog)`; `listen(2)`. The kernel caps `backlog` at
    /// `net.core.somaxconn`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`] with the errno (EOPNOTSUPP for a datagram socket).
    pub fn listen(&self, backlog: i32) -> Result<()> {
        self.sock("listen")?
            .listen(backlog)
            .map_err(|e| Error::from_io("listen", e))
    }

    /// Accepts a connection: returns the new socket and the peer's address.
    ///
    /// Python: `sock.accept()`; `accept4(2)` with `SOCK_CLOEXEC`. The new socket is blocking
    /// (timeout `None`) whatever this socket's timeout is, as in Python without a default
    /// timeout.
    ///
    /// # Errors
    /// - [`ErrorKind::Timeout`] (`accept: timed out`) when the timeout expires first.
    /// - [`ErrorKind::Os`] EAGAIN in non-blocking mode with nothing pending; EMFILE etc.
    pub fn accept(&self) -> Result<(Socket, SockAddr)> {
        let (s, sa) = self.call("accept", sys::POLLIN, self.deadline(), |s| s.accept())?;
        // accept4(2) gives a blocking descriptor on Linux; make that explicit for portability.
        s.set_nonblocking(false)
            .map_err(|e| Error::from_io("accept", e))?;
        let addr = SockAddr::from_socket2(&sa);
        Ok((
            Socket::wrap(s, self.family, self.socktype, self.protocol),
            addr,
        ))
    }

    /// Connects to a remote address.
    ///
    /// Python: `sock.connect(address)`; `connect(2)`, then with a timeout `poll(2)` for
    /// writability and `getsockopt(SO_ERROR)`.
    ///
    /// # Errors
    /// - [`ErrorKind::Os`]: `[Errno 111] Connection refused`, ENETUNREACH ...; in
    ///   non-blocking mode `[Errno 115] Operation now in progress`.
    /// - [`ErrorKind::Timeout`] (`connect: timed out`) when the timeout expires first.
    pub fn connect(&self, addr: impl Into<SockAddr>) -> Result<()> {
        let sa = addr.into().to_socket2("connect")?;
        let sock = self.sock("connect")?;
        let deadline = self.deadline();
        match sock.connect(&sa) {
            Ok(()) => Ok(()),
            Err(e) => {
                let errno = e.raw_os_error();
                let in_progress = errno == Some(libc::EINPROGRESS);
                let interrupted = errno == Some(libc::EINTR);
                let waits = (in_progress && deadline.is_some())
                    || (interrupted && self.timeout != Some(Duration::ZERO));
                if !waits {
                    return Err(Error::from_io("connect", e));
                }
                // PEP 475: an interrupted blocking connect goes on in the kernel; wait for it.
                wait(sock, "connect", sys::POLLOUT, deadline)?;
                match sock.take_error() {
                    Ok(None) => Ok(()),
                    Ok(Some(e)) | Err(e) => Err(Error::from_io("connect", e)),
                }
            }
        }
    }

    /// Connects, returning the errno instead of an error: 0 on success.
    ///
    /// Python: `sock.connect_ex(address)`. A timeout gives `EAGAIN` (11), as in CPython.
    ///
    /// # Errors
    /// Only errors that are not OS errors: [`ErrorKind::InvalidInput`] for an address the
    /// system cannot take.
    pub fn connect_ex(&self, addr: impl Into<SockAddr>) -> Result<i32> {
        match self.connect(addr) {
            Ok(()) => Ok(0),
            Err(e) if e.kind() == ErrorKind::Timeout => Ok(libc::EAGAIN),
            Err(e) if e.kind() == ErrorKind::Os => Ok(e.code().unwrap_or(libc::EIO)),
            Err(e) => Err(e),
        }
    }

    /// Sends bytes on a connected socket; returns how many were sent (maybe fewer).
    ///
    /// Python: `sock.send(data)`; one `send(2)` with `MSG_NOSIGNAL` (retried on EINTR).
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`] when the timeout expires before any byte can be sent;
    /// [`ErrorKind::Os`] with the errno otherwise (EPIPE, ECONNRESET, EAGAIN non-blocking).
    pub fn send(&self, data: &[u8]) -> Result<usize> {
        self.call("send", sys::POLLOUT, self.deadline(), |s| s.send(data))
    }

    /// Sends all of `data`, calling `send(2)` as often as needed.
    ///
    /// Python: `sock.sendall(data)`. With a timeout, the timeout bounds the whole call,
    /// not each `send(2)`.
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`] when the deadline expires before everything was sent (how much
    /// was sent is then unknown, as in Python); [`ErrorKind::Os`] with the errno otherwise.
    #[doc(alias = "sendall")]
    pub fn send_all(&self, data: &[u8]) -> Result<()> {
        let deadline = self.deadline();
        let mut sent = 0;
        while sent < data.len() {
            sent += self.call("sendall", sys::POLLOUT, deadline, |s| s.send(&data[sent..]))?;
        }
        Ok(())
    }

    /// Sends a datagram to `addr`; returns the number of bytes sent.
    ///
    /// Python: `sock.sendto(data, address)`; `sendto(2)`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`] (EMSGSIZE for a datagram over the limit, EAGAIN non-blocking ...);
    /// [`ErrorKind::Timeout`] when the timeout expires.
    #[doc(alias = "sendto")]
    pub fn send_to(&self, data: &[u8], addr: impl Into<SockAddr>) -> Result<usize> {
        let sa = addr.into().to_socket2("sendto")?;
        self.call("sendto", sys::POLLOUT, self.deadline(), |s| {
            s.send_to(data, &sa)
        })
    }

    /// Receives up to `bufsize` bytes (at most [`MAX_RECV_BUFFER`] in one call); an empty
    /// vector means the peer shut down its side.
    ///
    /// Python: `sock.recv(bufsize)`; one `recv(2)` (retried on EINTR).
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`] when no byte arrives before the timeout; [`ErrorKind::Os`]
    /// with the errno otherwise (ECONNRESET; EAGAIN in non-blocking mode).
    pub fn recv(&self, bufsize: usize) -> Result<Vec<u8>> {
        let mut buf = recv_buffer(bufsize);
        let n = self.recv_into(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Receives up to `buf.len()` bytes into `buf`; returns how many; `Ok(0)` means EOF.
    ///
    /// Python: `sock.recv_into(buf)`; one `recv(2)` (retried on EINTR).
    ///
    /// # Errors
    /// As [`recv`](Socket::recv).
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.call("recv", sys::POLLIN, self.deadline(), |s| {
            s.recv(sys::as_uninit(buf))
        })
    }

    /// Reads up to `bufsize` bytes (at most [`MAX_RECV_BUFFER`]) without consuming them.
    ///
    /// Python: `sock.recv(bufsize, socket.MSG_PEEK)`; `recv(2)` with `MSG_PEEK`.
    ///
    /// # Errors
    /// As [`recv`](Socket::recv).
    #[doc(alias = "MSG_PEEK")]
    pub fn peek(&self, bufsize: usize) -> Result<Vec<u8>> {
        let mut buf = recv_buffer(bufsize);
        let n = self.call("recv", sys::POLLIN, self.deadline(), |s| {
            s.peek(sys::as_uninit(&mut buf))
        })?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Receives a datagram of up to `bufsize` bytes (at most [`MAX_RECV_BUFFER`]) and its
    /// sender's address.
    ///
    /// Python: `sock.recvfrom(bufsize)`; `recvfrom(2)`. A longer datagram is cut to
    /// `bufsize` (the rest is lost, as in Python).
    ///
    /// # Errors
    /// As [`recv`](Socket::recv) (`recvfrom: timed out`).
    #[doc(alias = "recvfrom")]
    pub fn recv_from(&self, bufsize: usize) -> Result<(Vec<u8>, SockAddr)> {
        let mut buf = recv_buffer(bufsize);
        let (n, addr) = self.recv_from_into(&mut buf)?;
        buf.truncate(n);
        Ok((buf, addr))
    }

    /// Receives a datagram into `buf`; returns its length (cut to `buf.len()`) and sender.
    ///
    /// Python: `sock.recvfrom_into(buf)`; `recvfrom(2)`.
    ///
    /// # Errors
    /// As [`recv`](Socket::recv).
    #[doc(alias = "recvfrom_into")]
    pub fn recv_from_into(&self, buf: &mut [u8]) -> Result<(usize, SockAddr)> {
        let (n, sa) = self.call("recvfrom", sys::POLLIN, self.deadline(), |s| {
            s.recv_from(sys::as_uninit(buf))
        })?;
        Ok((n, SockAddr::from_socket2(&sa)))
    }

    /// Shuts down one or both directions.
    ///
    /// Python: `sock.shutdown(how)` with `SHUT_RD`/`SHUT_WR`/`SHUT_RDWR`; `shutdown(2)`.
    /// Shutting down writing sends FIN: the peer's `recv` returns EOF.
    ///
    /// # Errors
    /// [`ErrorKind::Os`]: ENOTCONN on an unconnected socket.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        self.sock("shutdown")?
            .shutdown(how)
            .map_err(|e| Error::from_io("shutdown", e))
    }

    /// Closes the socket. Idempotent: closing twice is not an error.
    ///
    /// Python: `sock.close()`; `close(2)`. Afterwards [`fileno`](Socket::fileno) is -1.
    pub fn close(&mut self) {
        self.inner = None;
    }

    /// The socket's own address.
    ///
    /// Python: `sock.getsockname()`; `getsockname(2)`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`] (EBADF after close).
    #[doc(alias = "getsockname")]
    pub fn local_addr(&self) -> Result<SockAddr> {
        let sa = self
            .sock("getsockname")?
            .local_addr()
            .map_err(|e| Error::from_io("getsockname", e))?;
        Ok(SockAddr::from_socket2(&sa))
    }

    /// The connected peer's address.
    ///
    /// Python: `sock.getpeername()`; `getpeername(2)`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`]: `[Errno 107] Transport endpoint is not connected`.
    #[doc(alias = "getpeername")]
    pub fn peer_addr(&self) -> Result<SockAddr> {
        let sa = self
            .sock("getpeername")?
            .peer_addr()
            .map_err(|e| Error::from_io("getpeername", e))?;
        Ok(SockAddr::from_socket2(&sa))
    }

    /// The file descriptor, or -1 after [`close`](Socket::close).
    ///
    /// Python: `sock.fileno()`.
    pub fn fileno(&self) -> RawFd {
        self.inner.as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    /// A second socket on the same open file description, with the same timeout.
    ///
    /// Python: `sock.dup()`; `fcntl(F_DUPFD_CLOEXEC)`. The two share `O_NONBLOCK`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`] (EMFILE, EBADF after close).
    #[doc(alias = "dup")]
    pub fn try_clone(&self) -> Result<Socket> {
        let inner = self
            .sock("dup")?
            .try_clone()
            .map_err(|e| Error::from_io("dup", e))?;
        let mut s = Socket::wrap(inner, self.family, self.socktype, self.protocol);
        s.timeout = self.timeout;
        Ok(s)
    }

    /// Sets the timeout mode: `None` blocking, `Some(ZERO)` non-blocking, `Some(t)` a
    /// deadline of `t` for each call.
    ///
    /// Python: `sock.settimeout(t)`; sets or clears `O_NONBLOCK` with `fcntl(2)`. As in
    /// CPython the new timeout is recorded even when the descriptor is closed.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a timeout above [`MAX_TIMEOUT`] (CPython's
    /// `OverflowError`), before anything changes; [`ErrorKind::Os`] `[Errno 9] Bad file
    /// descriptor` after close.
    #[doc(alias = "settimeout")]
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        if timeout.is_some_and(|t| t > MAX_TIMEOUT) {
            return Err(Error::invalid_input(
                "settimeout",
                "timestamp out of range for platform time_t",
            ));
        }
        self.timeout = timeout;
        self.sock("settimeout")?
            .set_nonblocking(timeout.is_some())
            .map_err(|e| Error::from_io("settimeout", e))
    }

    /// The timeout mode (Python: `sock.gettimeout()`).
    #[doc(alias = "gettimeout")]
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// `set_blocking(true)` is `set_timeout(None)`, `false` is `set_timeout(Some(ZERO))`.
    ///
    /// Python: `sock.setblocking(flag)`.
    ///
    /// # Errors
    /// As [`set_timeout`](Socket::set_timeout).
    #[doc(alias = "setblocking")]
    pub fn set_blocking(&mut self, blocking: bool) -> Result<()> {
        self.set_timeout(if blocking { None } else { Some(Duration::ZERO) })
            .map_err(|e| e.with_op("setblocking"))
    }

    /// False only in non-blocking mode (timeout zero). Python: `sock.getblocking()`.
    #[doc(alias = "getblocking")]
    pub fn blocking(&self) -> bool {
        self.timeout != Some(Duration::ZERO)
    }

    /// The underlying socket2 socket, for options and calls this type does not wrap.
    ///
    /// # Errors
    /// [`ErrorKind::Os`] EBADF after close.
    pub fn as_socket2(&self) -> Result<&socket2::Socket> {
        self.sock("socket")
    }
}

/// Waits with `poll(2)` until `events` are ready or the deadline passes (`None`: forever).
fn wait(
    sock: &socket2::Socket,
    op: &'static str,
    events: i16,
    deadline: Option<Instant>,
) -> Result<()> {
    loop {
        let remaining = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::timeout(op));
                }
                Some(left)
            }
            None => None,
        };
        match sys::poll_fd(sock.as_raw_fd(), events, remaining) {
            Ok(true) => return Ok(()),
            Ok(false) => return Err(Error::timeout(op)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::from_io(op, e)),
        }
    }
}

/// The longest timeout [`Socket::set_timeout`] takes: CPython's limit (its clock counts
/// nanoseconds in an `i64`, about 292 years).
pub const MAX_TIMEOUT: Duration = Duration::from_nanos(i64::MAX as u64);

/// The largest buffer one receive call allocates, in bytes (64 MiB): a larger `bufsize`
/// is cut to it. A stream `recv(2)` may always return less than asked, and no datagram is
/// longer on Linux with its default limits (UDP: 65,507 bytes; Unix: the sender's
/// `SO_SNDBUF`, at most twice `net.core.wmem_max`).
pub const MAX_RECV_BUFFER: usize = 64 << 20;

/// A zeroed buffer of `bufsize` bytes, at most [`MAX_RECV_BUFFER`] (so a huge `bufsize`
/// cannot abort the process as an impossible allocation would).
fn recv_buffer(bufsize: usize) -> Vec<u8> {
    vec![0u8; bufsize.min(MAX_RECV_BUFFER)]
}

/// Refuses a socket buffer size that does not fit the option's C `int`.
fn check_buffer_size(name: &str, bytes: usize) -> Result<()> {
    if bytes > i32::MAX as usize {
        return Err(Error::invalid_input(
            "setsockopt",
            format!("{name} must be 0-{} bytes, not {bytes}", i32::MAX),
        ));
    }
    Ok(())
}

impl AsRawFd for Socket {
    /// The descriptor, or -1 after close.
    fn as_raw_fd(&self) -> RawFd {
        self.fileno()
    }
}

impl AsFd for Socket {
    /// # Panics
    /// After [`close`](Socket::close) (there is no descriptor to borrow).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_ref().expect("socket is closed").as_fd()
    }
}

impl IntoRawFd for Socket {
    /// Gives up the descriptor (-1 after close); the caller must close it.
    fn into_raw_fd(mut self) -> RawFd {
        self.inner.take().map_or(-1, |s| s.into_raw_fd())
    }
}

impl TryFrom<OwnedFd> for Socket {
    type Error = Error;

    /// Adopts an open socket descriptor, reading its family, type and protocol with
    /// `getsockopt(SO_DOMAIN/SO_TYPE/SO_PROTOCOL)`; the timeout is `None`.
    ///
    /// Python: `socket.socket(fileno=fd)`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`] `[Errno 88] Socket operation on non-socket` for a descriptor that
    /// is not a socket (a file, a pipe), as Python; [`ErrorKind::InvalidInput`] for a
    /// socket of a family or type this crate does not model (the descriptor is closed).
    fn try_from(fd: OwnedFd) -> Result<Socket> {
        let inner = socket2::Socket::from(fd);
        let raw_family = inner
            .domain()
            .map_err(|e| Error::from_io("getsockopt", e))?;
        let family = Family::from_raw(raw_family.into()).ok_or_else(|| {
            Error::invalid_input(
                "socket",
                format!("unsupported address family {}", i32::from(raw_family)),
            )
        })?;
        let raw_type = inner
            .r#type()
            .map_err(|e| Error::from_io("getsockopt", e))?;
        let socktype = SockType::from_raw(raw_type.into()).ok_or_else(|| {
            Error::invalid_input(
                "socket",
                format!("unsupported socket type {}", i32::from(raw_type)),
            )
        })?;
        let protocol = inner.protocol().ok().flatten().map_or(0, i32::from);
        Ok(Socket::wrap(inner, family, socktype, protocol))
    }
}

impl From<Socket> for socket2::Socket {
    /// The socket2 socket (an invalid descriptor after close is impossible: closed sockets
    /// give a fresh unusable socket).
    ///
    /// # Panics
    /// After [`close`](Socket::close).
    fn from(mut s: Socket) -> socket2::Socket {
        s.inner.take().expect("socket is closed")
    }
}

impl From<Socket> for std::net::TcpStream {
    /// A std TCP stream on the same descriptor (for `io::Read`/`Write` adapters).
    ///
    /// # Panics
    /// After [`close`](Socket::close).
    fn from(s: Socket) -> std::net::TcpStream {
        socket2::Socket::from(s).into()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn huge_values_are_refused_or_capped_not_a_panic() {
        // Regression: recv(usize::MAX) panicked (capacity overflow), recv(1 << 36) aborted,
        // set_timeout(Duration::MAX) made every later call panic, set_linger(u64::MAX s)
        // and set_recv_buffer_size(usize::MAX) were taken, 1.5 s of linger became 1 s.
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut a = Socket::try_from(OwnedFd::from(a)).unwrap();
        let b = Socket::try_from(OwnedFd::from(b)).unwrap();
        b.send_all(b"hi").unwrap();
        assert_eq!(a.recv(usize::MAX).unwrap(), b"hi");
        b.send_all(b"there").unwrap();
        assert_eq!(a.peek(1 << 40).unwrap(), b"there");
        assert_eq!(a.recv(1 << 36).unwrap(), b"there");
        let e = a.set_timeout(Some(Duration::MAX)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(a.timeout(), None, "a refused timeout changes nothing");
        a.set_timeout(Some(MAX_TIMEOUT)).unwrap();
        b.send_all(b"!").unwrap();
        assert_eq!(a.recv(8).unwrap(), b"!", "the longest timeout still works");
        for bad in [Duration::from_secs(u64::MAX), Duration::from_millis(1500)] {
            let e = a.set_linger(Some(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
        a.set_linger(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(a.linger().unwrap(), Some(Duration::from_secs(2)));
        for e in [
            a.set_recv_buffer_size(usize::MAX).unwrap_err(),
            a.set_send_buffer_size(i32::MAX as usize + 1).unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn a_descriptor_that_is_not_a_socket_is_refused() {
        // Regression: From<OwnedFd> took /etc/hosts as a Unix stream socket.
        let f = std::fs::File::open("/etc/hosts").unwrap();
        let e = Socket::try_from(OwnedFd::from(f)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Os);
        assert_eq!(e.code(), Some(libc::ENOTSOCK));
        assert!(
            e.to_string()
                .contains("[Errno 88] Socket operation on non-socket"),
            "{e}"
        );
    }

    fn listener() -> (Socket, SocketAddr) {
        let l = Socket::new(Family::Inet, SockType::Stream, None).unwrap();
        l.bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
            .unwrap();
        l.listen(8).unwrap();
        let addr = l.local_addr().unwrap().as_ip().unwrap();
        (l, addr)
    }

    #[test]
    fn echo_over_loopback() {
        let (l, addr) = listener();
        let c = Socket::new(Family::Inet, SockType::Stream, None).unwrap();
        c.connect(addr).unwrap();
        let (a, peer) = l.accept().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        c.send_all(b"hello").unwrap();
        assert_eq!(a.recv(10).unwrap(), b"hello");
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(a.recv(10).unwrap(), b"");
    }

    #[test]
    fn accept_times_out_with_pythons_text() {
        let (mut l, _) = listener();
        l.set_timeout(Some(Duration::from_millis(50))).unwrap();
        let e = l.accept().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(e.to_string(), "accept: timed out");
    }

    #[test]
    fn closed_socket_is_ebadf_and_close_is_idempotent() {
        let mut s = Socket::new(Family::Inet, SockType::Dgram, None).unwrap();
        s.close();
        s.close();
        assert_eq!(s.fileno(), -1);
        assert!(s.recv(1).unwrap_err().is_errno(libc::EBADF));
    }

    #[test]
    fn send_all_under_a_deadline_times_out_when_the_peer_never_reads() {
        let (a, mut b) = Socket::pair(Family::Unix, SockType::Stream).unwrap();
        b.set_timeout(Some(Duration::from_millis(100))).unwrap();
        let big = vec![0u8; 64 << 20];
        let e = b.send_all(&big).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        drop(a);
    }

    #[test]
    fn unix_path_too_long_is_invalid_input() {
        let s = Socket::new(Family::Unix, SockType::Stream, None).unwrap();
        let long = PathBuf::from("/tmp/".to_string() + &"x".repeat(200));
        assert_eq!(s.bind(long).unwrap_err().kind(), ErrorKind::InvalidInput);
    }
}
