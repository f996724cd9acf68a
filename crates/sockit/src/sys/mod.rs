//! The only place with `unsafe` and direct libc calls.
//!
//! Each function wraps one C library call and returns owned, safe values.

use std::ffi::CStr;

#[cfg(target_os = "linux")]
pub mod mmsg;
pub mod netdb;
#[cfg(target_os = "linux")]
pub mod splice;
pub mod timer;
#[cfg(target_os = "linux")]
pub mod uring;

/// `strerror_r(3)` (the XSI version): the C library's text for an errno.
pub fn strerror(errno: i32) -> String {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: buf is a valid writable buffer of the length passed; strerror_r NUL-terminates
    // on success, and we fall back to a generic text on failure.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return format!("Unknown error {errno}");
    }
    // SAFETY: on success the buffer holds a NUL-terminated string.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Takes ownership of descriptor `fd` that this process inherited (socket activation's
/// `LISTEN_FDS`): checks it is open (`fcntl(F_GETFD)`), sets `FD_CLOEXEC` (as
/// `sd_listen_fds(3)` does), and returns it owned.
///
/// The caller takes each inherited number at most once.
///
/// # Errors
/// `EBADF` when `fd` is not open; the error of `fcntl(2)`.
pub fn adopt_inherited_fd(fd: std::os::fd::RawFd) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD only reads the descriptor's flags; an fd that is not open fails with
    // EBADF and is never adopted.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above, on a descriptor known to be open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open and was handed to this process by its parent; the
    // caller (serve::activation) adopts each number once, so it has one owner.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// `recvfrom(2)` with `MSG_TRUNC`: one datagram into `buf`, returning its real length
/// (larger than `buf` when it was cut) and the sender's address.
///
/// # Errors
/// The error of `recvfrom` (`EAGAIN` on a non-blocking socket with nothing queued).
pub fn recv_from_trunc(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
) -> std::io::Result<(usize, socket2::SockAddr)> {
    // SAFETY: buf is valid for writes of its length; try_init hands recvfrom zeroed
    // storage of the length it passes, and the address is read only up to what the kernel
    // wrote.
    unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            let n = libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                storage.cast(),
                len,
            );
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        })
    }
}

/// `gai_strerror(3)`: the C library's text for an EAI code.
pub fn gai_strerror(code: i32) -> String {
    // SAFETY: gai_strerror returns a pointer to a static NUL-terminated string for any code.
    let p = unsafe { libc::gai_strerror(code) };
    if p.is_null() {
        return format!("Unknown error {code}");
    }
    // SAFETY: non-null pointer to a static C string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_come_from_libc() {
        assert_eq!(super::strerror(libc::ECONNREFUSED), "Connection refused");
        assert_eq!(
            super::gai_strerror(libc::EAI_NONAME),
            "Name or service not known"
        );
    }
}

/// `if_indextoname(3)`: the interface name for a scope id, or the number as text.
pub fn if_indextoname(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes as the call requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return index.to_string();
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// One record of a `getaddrinfo(3)` answer, copied out of the C list.
#[derive(Debug, Clone)]
pub struct RawAddrInfo {
    /// `ai_family`.
    pub family: i32,
    /// `ai_socktype`.
    pub socktype: i32,
    /// `ai_protocol`.
    pub protocol: i32,
    /// `ai_canonname`, empty when absent.
    pub canonname: String,
    /// `ai_addr`, when it is an IPv4 or IPv6 address.
    pub addr: Option<std::net::SocketAddr>,
}

/// `getaddrinfo(3)`. Returns the records or the EAI code (with errno set for EAI_SYSTEM).
pub fn getaddrinfo(
    host: Option<&CStr>,
    service: Option<&CStr>,
    family: i32,
    socktype: i32,
    protocol: i32,
    flags: i32,
) -> Result<Vec<RawAddrInfo>, i32> {
    // SAFETY: addrinfo is a plain C struct; all-zero is its documented empty hints value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = family;
    hints.ai_socktype = socktype;
    hints.ai_protocol = protocol;
    hints.ai_flags = flags;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: the C strings outlive the call, hints is initialised, res is an out pointer.
    let rc = unsafe {
        libc::getaddrinfo(
            host.map_or(std::ptr::null(), CStr::as_ptr),
            service.map_or(std::ptr::null(), CStr::as_ptr),
            &hints,
            &mut res,
        )
    };
    if rc != 0 {
        return Err(rc);
    }
    let mut out = Vec::new();
    let mut cur = res;
    while !cur.is_null() {
        // SAFETY: cur points into the list getaddrinfo returned, freed only below.
        let ai = unsafe { &*cur };
        let canonname = if ai.ai_canonname.is_null() {
            String::new()
        } else {
            // SAFETY: ai_canonname is a NUL-terminated string owned by the list.
            unsafe { CStr::from_ptr(ai.ai_canonname) }
                .to_string_lossy()
                .into_owned()
        };
        let addr = if ai.ai_addr.is_null() {
            None
        } else {
            // SAFETY: ai_addr points to ai_addrlen valid bytes of a sockaddr.
            unsafe { sockaddr_to_std(ai.ai_addr, ai.ai_addrlen) }
        };
        out.push(RawAddrInfo {
            family: ai.ai_family,
            socktype: ai.ai_socktype,
            protocol: ai.ai_protocol,
            canonname,
            addr,
        });
        cur = ai.ai_next;
    }
    // SAFETY: res came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

/// Copies a C `sockaddr` of `len` bytes into a std address (IPv4/IPv6 only).
///
/// # Safety
/// `addr` must point to at least `len` readable bytes holding a sockaddr.
pub unsafe fn sockaddr_to_std(
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    let len = len as usize;
    // SAFETY: the caller guarantees `len` readable bytes; each branch checks the length of
    // the struct it reads and uses an unaligned read.
    unsafe {
        match (*addr).sa_family as i32 {
            libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                let a = std::ptr::read_unaligned(addr as *const libc::sockaddr_in);
                Some(
                    SocketAddrV4::new(
                        Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                        u16::from_be(a.sin_port),
                    )
                    .into(),
                )
            }
            libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let a = std::ptr::read_unaligned(addr as *const libc::sockaddr_in6);
                Some(
                    SocketAddrV6::new(
                        Ipv6Addr::from(a.sin6_addr.s6_addr),
                        u16::from_be(a.sin6_port),
                        u32::from_be(a.sin6_flowinfo),
                        a.sin6_scope_id,
                    )
                    .into(),
                )
            }
            _ => None,
        }
    }
}

/// Views an initialised byte buffer as the `MaybeUninit` slice socket2's receive calls take.
pub fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: MaybeUninit<u8> has the same layout as u8; socket2's recv calls only write
    // initialised bytes into the slice, so the bytes stay initialised.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}

/// `poll(2)` on one descriptor for `events` (POLLIN/POLLOUT), at most `timeout`.
///
/// Returns `Ok(true)` when the descriptor is ready (or has an error or hang-up pending, which
/// the next call reports), `Ok(false)` when the time ran out. EINTR is returned as an error
/// (`ErrorKind::Interrupted`) so the caller retries against its own deadline.
pub fn poll_fd(
    fd: std::os::fd::RawFd,
    events: i16,
    timeout: Option<std::time::Duration>,
) -> std::io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms: libc::c_int = match timeout {
        None => -1,
        // Round up so a sub-millisecond remainder still waits instead of spinning.
        Some(t) => t
            .as_nanos()
            .div_ceil(1_000_000)
            .min(libc::c_int::MAX as u128) as libc::c_int,
    };
    // SAFETY: pfd is a valid pollfd and we pass a count of 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc > 0)
}

/// `POLLIN`.
pub const POLLIN: i16 = libc::POLLIN;
/// `POLLOUT`.
pub const POLLOUT: i16 = libc::POLLOUT;

/// Wraps a raw descriptor the caller owns in a socket2 socket.
///
/// # Safety
/// `fd` must be an open socket descriptor that nothing else will close.
pub unsafe fn socket_from_raw_fd(fd: std::os::fd::RawFd) -> socket2::Socket {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller transfers ownership of an open socket descriptor.
    unsafe { socket2::Socket::from_raw_fd(fd) }
}

/// Registers an owned socket with the current tokio runtime's reactor for write readiness
/// (a pending `connect(2)` ends writable): `AsyncFd::register_with_interest` (epoll). Must
/// be called inside a tokio runtime.
///
/// # Errors
/// The reactor's error (`epoll_ctl(2)`: `ENOMEM`, `ENOSPC`).
pub fn register_writable(
    socket: socket2::Socket,
) -> std::io::Result<tokio::io::unix::AsyncFd<socket2::Socket>> {
    // SAFETY: the Socket owns its descriptor, and the AsyncFd owns the Socket from here on:
    // nothing else can close or replace the descriptor while it is registered.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(socket, tokio::io::Interest::WRITABLE)
    }
    .map_err(std::io::Error::from)
}

/// Registers an owned file (a pipe or socket) with the current tokio runtime's reactor for
/// read readiness: `AsyncFd::register_with_interest` (epoll). Must be called inside a tokio
/// runtime.
///
/// # Errors
/// The reactor's error, e.g. `EPERM` for a regular file, which epoll refuses.
pub fn register_readable(
    file: std::fs::File,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::fs::File>> {
    register(file, tokio::io::Interest::READABLE)
}

/// Registers an owned file (a pipe or socket) with the current tokio runtime's reactor for
/// `interest` (epoll), as [`register_readable`] does for reading.
///
/// # Errors
/// The reactor's error, e.g. `EPERM` for a regular file, which epoll refuses.
pub fn register(
    file: std::fs::File,
    interest: tokio::io::Interest,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::fs::File>> {
    // SAFETY: the File owns its descriptor, and the AsyncFd owns the File from here on:
    // nothing else can close or replace the descriptor while it is registered.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(file, interest) }
        .map_err(std::io::Error::from)
}

/// Descriptor 1, standard output, borrowed for the program's life.
pub fn stdout_fd() -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: descriptor 1 is open when a Rust program starts (the runtime opens
    // /dev/null on a closed standard descriptor) and the program never closes it: its
    // output's end points it at /dev/null instead (`point_at_dev_null`).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(1) }
}

/// Points descriptor `fd` at `/dev/null` (`open(2)` then `dup2(2)`): what `fd` referred
/// to (a pipe's write end, say) is closed in this process, so a reader at the other end
/// sees end of file, while later writes to `fd` still succeed (and go nowhere) and the
/// number cannot be taken by another file. Used to close stdout at a socket's end of
/// stream, as ncat does, without exiting.
///
/// # Errors
/// The errno of `open(2)` or `dup2(2)`.
pub fn point_at_dev_null(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    // SAFETY: both descriptors are open; dup2 atomically replaces `fd` (closing what it
    // referred to) and `null` is closed when dropped, leaving `fd` open on /dev/null.
    if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Bytes in a stream socket's send queue not yet acknowledged by the peer (TCP: sent but
/// unacknowledged plus not yet sent; a Unix stream: not yet read by the peer):
/// `ioctl(SIOCOUTQ)`. 0 once everything sent arrived. The one test of "delivered" behind
/// [`crate::serve::close`]'s acknowledged close and abort-after-sent.
///
/// # Errors
/// The errno of `ioctl(2)` (`ENOTTY`/`EINVAL` for a socket without a send queue).
pub fn unacked_bytes(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: fd is open for the borrow; SIOCOUTQ (== TIOCOUTQ) writes one int through the
    // pointer, which points to a live c_int.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n.max(0) as usize)
}

/// `sched_yield(2)`: lets another runnable thread on this CPU run first (a busy-polling
/// loop yields each turn, so a client that shares its CPU is not starved).
pub fn sched_yield() {
    // SAFETY: sched_yield takes no arguments; on Linux it always succeeds.
    unsafe { libc::sched_yield() };
}
