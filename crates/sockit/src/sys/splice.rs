//! Moving bytes inside the kernel: `pipe2(2)` with a chosen size, `splice(2)`, and the
//! plain `read(2)`/`write(2)` a splice relay falls back to (Linux).
//!
//! A splice relay moves bytes from a socket or file into a pipe and from the pipe on to
//! the other side, without copying them through user space. Every call here is
//! non-blocking on the pipe (`SPLICE_F_NONBLOCK`); the other descriptor blocks or not as
//! its own `O_NONBLOCK` flag says, so callers pass sockets that are non-blocking, pipes,
//! or regular files (which never wait).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A pipe owned by one relay direction: both ends non-blocking and close-on-exec.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    /// `pipe2(O_NONBLOCK | O_CLOEXEC)`, then `fcntl(F_SETPIPE_SZ, want)`, best effort (an
    /// unprivileged user past `fs.pipe-user-pages-soft`, or a `want` above
    /// `fs.pipe-max-size`, keeps the size the kernel gave). The capacity is read back with
    /// `F_GETPIPE_SZ`.
    ///
    /// # Errors
    /// The errno of `pipe2` (`EMFILE`, `ENFILE`).
    pub fn new(want: usize) -> io::Result<Pipe> {
        let mut fds = [-1 as libc::c_int; 2];
        // SAFETY: fds is a valid array of two ints for pipe2 to fill.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let want = want.min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: fcntl on a descriptor we own; F_SETPIPE_SZ takes an int and fails
        // without side effects.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
        // SAFETY: as above; F_GETPIPE_SZ takes no argument.
        let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        Ok(Pipe {
            read,
            write,
            capacity: if got > 0 { got as usize } else { 65536 },
        })
    }

    /// The read end.
    pub fn read_end(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.read.as_fd()
    }

    /// The write end.
    pub fn write_end(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.write.as_fd()
    }

    /// The pipe's size in bytes (`F_GETPIPE_SZ`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// `splice(from, NULL, to, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)`: moves up to
/// `len` bytes; one of the two descriptors must be a pipe. Offsets are the descriptors'
/// own file positions. Retried on `EINTR`.
///
/// Returns the bytes moved; 0 means the source is at its end (or `len` was 0).
///
/// # Errors
/// The errno: `EAGAIN` when the pipe (or a non-blocking other side) cannot move a byte
/// now, `EINVAL` when the kernel cannot splice these descriptors (a file opened with
/// `O_APPEND`, a descriptor without splice support), and the descriptors' own errors
/// (`ECONNRESET`, `EPIPE` …).
pub fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are open for the borrow's lifetime; null offsets tell
        // the kernel to use (and advance) the file positions; no memory is passed.
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `read(2)` into `buf`, retried on `EINTR`.
///
/// # Errors
/// The errno of the call (`EAGAIN` on a non-blocking descriptor with nothing to read).
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for writes of buf.len() bytes; fd is open for the borrow.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `write(2)` of `buf` (some of it), retried on `EINTR`. On a socket the signal
/// `SIGPIPE` is not raised (`send(2)` with `MSG_NOSIGNAL` is not needed: Rust programs
/// ignore `SIGPIPE`).
///
/// # Errors
/// The errno of the call (`EAGAIN`, `EPIPE`, `ECONNRESET` …).
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for reads of buf.len() bytes; fd is open for the borrow.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// True when `fd`'s file status flags include `O_APPEND` (`fcntl(F_GETFL)`): splice(2)
/// refuses to write to such a file.
pub fn is_append(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GETFL on an open descriptor reads its flags and changes nothing.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_APPEND != 0
}

/// What a descriptor refers to, as far as splicing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pipe or FIFO.
    Pipe,
    /// A regular file.
    File,
    /// Anything else (a terminal, a socket, a device, a directory).
    Other,
}

/// `fstat(2)`: whether `fd` is a pipe, a regular file, or something else.
///
/// # Errors
/// The errno of `fstat` (`EBADF`).
pub fn file_kind(fd: BorrowedFd<'_>) -> io::Result<Kind> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st is valid for writes of one struct stat; fd is open for the borrow.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded and filled st.
    let mode = unsafe { st.assume_init() }.st_mode & libc::S_IFMT;
    Ok(match mode {
        libc::S_IFIFO => Kind::Pipe,
        libc::S_IFREG => Kind::File,
        _ => Kind::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_two_pipes_by_splice() {
        let a = Pipe::new(1 << 20).unwrap();
        let b = Pipe::new(4096).unwrap();
        assert!(a.capacity() >= 4096);
        assert_eq!(write(a.write_end(), b"hello").unwrap(), 5);
        assert_eq!(splice(a.read_end(), b.write_end(), 100).unwrap(), 5);
        let mut buf = [0u8; 16];
        assert_eq!(read(b.read_end(), &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        // empty source pipe: EAGAIN, not a block
        let e = splice(a.read_end(), b.write_end(), 100).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
    }
}
