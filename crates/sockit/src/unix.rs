//! Unix domain socket addresses and the careful bind the servers need.
//!
//! Address text: a path (`/tmp/s.sock`), or on Linux `@name` for an abstract name (no
//! file). [`bind_listener`] and [`bind_datagram`] remove a socket file left behind by a
//! dead server — only after a connect to it is refused — and never remove a live
//! listener's socket or a file that is not a socket.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::error::{Error, ErrorKind, Result};

/// The longest path `sun_path` holds, without its terminating NUL (107 on Linux).
pub const MAX_PATH_LEN: usize = 107;

/// A Unix socket address: a file system path, or a Linux abstract name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UnixAddr {
    /// A socket file at this path.
    Path(PathBuf),
    /// A Linux abstract name (written `@name`; no file exists).
    Abstract(Vec<u8>),
}

impl UnixAddr {
    /// Parses address text: `@name` is an abstract name, anything else a path.
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidInput`] for an empty text or a NUL byte.
    /// - [`ErrorKind::Os`] `AF_UNIX path too long` (Python's text) when the path does not
    ///   fit in `sun_path` ([`MAX_PATH_LEN`] bytes; 108 for an abstract name).
    pub fn parse(text: &str) -> Result<UnixAddr> {
        if text.is_empty() {
            return Err(Error::invalid_input("unix", "empty Unix socket path"));
        }
        if text.contains('\0') {
            return Err(Error::invalid_input("unix", "embedded null character"));
        }
        let addr = match text.strip_prefix('@') {
            Some(name) if cfg!(target_os = "linux") => UnixAddr::Abstract(name.as_bytes().to_vec()),
            _ => UnixAddr::Path(PathBuf::from(text)),
        };
        // the path is where it went wrong (`unix /tmp/…: AF_UNIX path too long`), however
        // the address was written (`unix:/tmp/…` for forward)
        addr.sockaddr().map_err(|e| e.at(text))?;
        Ok(addr)
    }

    /// The `sockaddr_un` for `bind(2)`/`connect(2)`.
    ///
    /// # Errors
    /// [`ErrorKind::Os`] `AF_UNIX path too long` when it does not fit.
    pub fn sockaddr(&self) -> Result<SockAddr> {
        let raw: Vec<u8> = match self {
            UnixAddr::Path(p) => p.as_os_str().as_bytes().to_vec(),
            UnixAddr::Abstract(n) => std::iter::once(0).chain(n.iter().copied()).collect(),
        };
        SockAddr::unix(std::ffi::OsStr::from_bytes(&raw))
            .map_err(|_| Error::new(ErrorKind::Os, "unix", None, "AF_UNIX path too long"))
    }

    /// The path, for a path address.
    pub fn path(&self) -> Option<&Path> {
        match self {
            UnixAddr::Path(p) => Some(p),
            UnixAddr::Abstract(_) => None,
        }
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixAddr::Path(p) => write!(f, "{}", p.display()),
            UnixAddr::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
        }
    }
}

/// The text of a peer's Unix address as `recvfrom(2)` gives it: its path, `@name`, or
/// `None` for an unbound (unnamed) sender.
pub fn peer_text(addr: &SockAddr) -> Option<String> {
    if let Some(p) = addr.as_pathname() {
        return Some(p.display().to_string());
    }
    if let Some(n) = addr.as_abstract_namespace() {
        return Some(format!("@{}", String::from_utf8_lossy(n)));
    }
    None
}

fn ty(stype: Type) -> Type {
    stype.cloexec()
}

/// Checks what is at `path` before a bind: nothing, or a stale socket (removed), or
/// something that must be kept (error).
fn clear_stale(path: &Path, stype: Type) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::from_io("bind", e)),
    };
    let in_use = |why: &str| {
        Error::new(
            ErrorKind::Os,
            "bind",
            Some(libc::EADDRINUSE),
            format!(
                "{} ({}: {why}; left untouched)",
                crate::sys::strerror(libc::EADDRINUSE),
                path.display()
            ),
        )
    };
    if !meta.file_type().is_socket() {
        return Err(in_use("exists and is not a socket"));
    }
    // A socket bound to this path is listed in /proc/net/unix while its owner lives: then
    // no probe connection is needed (a probe would use up a one-client server's accept).
    if bound_in_proc(path) {
        return Err(in_use("a live server is bound to it"));
    }
    let probe =
        Socket::new(Domain::UNIX, ty(stype), None).map_err(|e| Error::from_io("socket", e))?;
    let addr = UnixAddr::Path(path.to_path_buf()).sockaddr()?;
    match probe.connect(&addr) {
        Ok(()) => Err(in_use("a live server is listening on it")),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            // Nobody is listening: a stale file from a dead server.
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::from_io("unlink", e)),
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
            Err(in_use("a live socket of another type is bound to it"))
        }
        Err(e) => Err(Error::from_io("connect", e)),
    }
}

/// True when `/proc/net/unix` (Linux) lists a socket bound to `path`.
fn bound_in_proc(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return false;
    };
    let abs = std::env::current_dir()
        .map(|d| d.join(path))
        .unwrap_or_else(|_| path.to_path_buf());
    let wanted = [path.to_path_buf(), abs];
    let suffixes: Vec<Vec<u8>> = wanted
        .iter()
        .map(|w| {
            let mut v = b" ".to_vec();
            v.extend_from_slice(w.as_os_str().as_bytes());
            v
        })
        .collect();
    // Num RefCount Protocol Flags Type St Inode Path (the path last, spaces kept).
    table
        .lines()
        .skip(1)
        .any(|line| suffixes.iter().any(|s| line.as_bytes().ends_with(s)))
}

/// Binds a socket of `stype` at `addr`, clearing a stale socket file first.
fn bind_checked(addr: &UnixAddr, stype: Type) -> Result<Socket> {
    let sa = addr.sockaddr()?;
    if let Some(path) = addr.path() {
        clear_stale(path, stype)?;
    }
    let sock =
        Socket::new(Domain::UNIX, ty(stype), None).map_err(|e| Error::from_io("socket", e))?;
    sock.bind(&sa).map_err(|e| Error::from_io("bind", e))?;
    Ok(sock)
}

/// Binds and listens on a Unix stream socket at `addr` (`socket(2)`, `bind(2)`,
/// `listen(2)`), after removing a stale socket file a dead server left behind.
///
/// Python: `s = socket(AF_UNIX, SOCK_STREAM); s.bind(path); s.listen(backlog)`, plus
/// the stale-file check: an existing socket file is removed only after a `connect(2)` to
/// it is refused (`ECONNREFUSED`: nobody listens). The returned listener is non-blocking.
///
/// # Errors
/// - [`ErrorKind::Os`] `EADDRINUSE` ("Address already in use (PATH: …; left untouched)")
///   when a live server listens there or the path is not a socket.
/// - [`ErrorKind::Os`] `AF_UNIX path too long`, or the errno of a failed call.
pub fn bind_listener(addr: &UnixAddr, backlog: i32) -> Result<std::os::unix::net::UnixListener> {
    let sock = bind_checked(addr, Type::STREAM)?;
    sock.listen(backlog)
        .map_err(|e| Error::from_io("listen", e))?;
    sock.set_nonblocking(true)
        .map_err(|e| Error::from_io("fcntl", e))?;
    Ok(sock.into())
}

/// Binds a Unix datagram socket at `addr`, after the same stale-file check as
/// [`bind_listener`]. The returned socket is non-blocking.
///
/// # Errors
/// As [`bind_listener`].
pub fn bind_datagram(addr: &UnixAddr) -> Result<std::os::unix::net::UnixDatagram> {
    let sock = bind_checked(addr, Type::DGRAM)?;
    sock.set_nonblocking(true)
        .map_err(|e| Error::from_io("fcntl", e))?;
    Ok(sock.into())
}

/// Connects a Unix stream socket to `addr` (`connect(2)`; `timeout` bounds a connect that
/// waits on a full backlog, through `SO_SNDTIMEO`). The returned stream is non-blocking.
///
/// # Errors
/// [`ErrorKind::Os`] with the errno (`[Errno 2] No such file or directory`,
/// `[Errno 111] Connection refused`); [`ErrorKind::Timeout`] when `timeout` expires.
pub fn connect_stream(
    addr: &UnixAddr,
    timeout: Option<Duration>,
) -> Result<std::os::unix::net::UnixStream> {
    let sa = addr.sockaddr()?;
    let sock = Socket::new(Domain::UNIX, ty(Type::STREAM), None)
        .map_err(|e| Error::from_io("socket", e))?;
    if let Some(t) = timeout.filter(|t| !t.is_zero()) {
        sock.set_write_timeout(Some(t))
            .map_err(|e| Error::from_io("setsockopt", e))?;
    }
    match sock.connect(&sa) {
        Ok(()) => {}
        Err(e) if timeout.is_some() && e.raw_os_error() == Some(libc::EAGAIN) => {
            return Err(Error::timeout("connect"));
        }
        Err(e) => return Err(Error::from_io("connect", e)),
    }
    sock.set_write_timeout(None)
        .map_err(|e| Error::from_io("setsockopt", e))?;
    sock.set_nonblocking(true)
        .map_err(|e| Error::from_io("fcntl", e))?;
    Ok(sock.into())
}

/// A Unix datagram socket connected to `addr`, bound first so the peer can answer it:
/// to `source` when given (`nc -U -u -s PATH`), else to an address the system picks
/// (Linux autobind: a unique abstract name). Non-blocking.
///
/// Why autobind rather than a temporary file (OpenBSD `nc -uU` binds `/tmp/nc.XXXXXXXXXX`):
/// the kernel picks a name unique among live sockets, nothing is created in the file
/// system, so nothing is left behind when the process is killed (SIGINT, SIGKILL) and no
/// `$TMPDIR` permission, length (107 bytes) or clean-up race can break it. A server must
/// answer the `recvfrom(2)` address as given (an abstract name, `@xxxxx`), as socat,
/// Python and `sockit listen -u --unix` do. Other systems have no autobind: there the
/// socket stays unbound and cannot be answered.
///
/// A `source` path is bound as [`bind_datagram`] binds (a stale socket file is replaced,
/// a live one or another file is left alone); the caller removes the file it created
/// (`serve::SocketFile`) once connected; when the connect fails, the file is removed here.
///
/// # Errors
/// [`ErrorKind::Os`] with the errno of `socket(2)`, `bind(2)` (named `bind SOURCE` for a
/// source) or `connect(2)`.
pub fn connect_datagram_from(
    addr: &UnixAddr,
    source: Option<&UnixAddr>,
) -> Result<std::os::unix::net::UnixDatagram> {
    let sa = addr.sockaddr()?;
    let sock = match source {
        Some(src) => bind_checked(src, Type::DGRAM).map_err(|e| {
            if e.op() == "bind" {
                e.at(src.to_string())
            } else {
                e
            }
        })?,
        None => {
            let sock = Socket::new(Domain::UNIX, ty(Type::DGRAM), None)
                .map_err(|e| Error::from_io("socket", e))?;
            #[cfg(target_os = "linux")]
            {
                // An empty sun_path (address length = sizeof(sa_family_t)) asks for autobind.
                let auto = SockAddr::unix("").map_err(|e| Error::from_io("bind", e))?;
                sock.bind(&auto).map_err(|e| Error::from_io("bind", e))?;
            }
            sock
        }
    };
    if let Err(e) = sock.connect(&sa) {
        // The source's file is ours (bind_checked made it): it goes with the failure.
        if let Some(path) = source.and_then(UnixAddr::path) {
            let _ = std::fs::remove_file(path);
        }
        return Err(Error::from_io("connect", e));
    }
    sock.set_nonblocking(true)
        .map_err(|e| Error::from_io("fcntl", e))?;
    Ok(sock.into())
}

/// [`connect_datagram_from`] without a source: bound by autobind.
///
/// # Errors
/// As [`connect_datagram_from`].
pub fn connect_datagram(addr: &UnixAddr) -> Result<std::os::unix::net::UnixDatagram> {
    connect_datagram_from(addr, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(
            UnixAddr::parse("/tmp/x").unwrap(),
            UnixAddr::Path("/tmp/x".into())
        );
        assert_eq!(
            UnixAddr::parse("@name").unwrap(),
            UnixAddr::Abstract(b"name".to_vec())
        );
        let long = format!("/tmp/{}", "a".repeat(200));
        let e = UnixAddr::parse(&long).unwrap_err();
        assert_eq!(e.to_string(), format!("unix {long}: AF_UNIX path too long"));
        assert!(UnixAddr::parse("").is_err());
    }

    #[test]
    fn a_failed_connect_leaves_no_source_file() {
        // Regression: `connect -u -s src.sock --unix missing.sock` left src.sock behind.
        let dir = std::env::temp_dir().join(format!("sockit-unix-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = UnixAddr::parse(dir.join("src.sock").to_str().unwrap()).unwrap();
        let missing = UnixAddr::parse(dir.join("missing.sock").to_str().unwrap()).unwrap();
        let e = connect_datagram_from(&missing, Some(&src)).unwrap_err();
        assert!(e.is_errno(libc::ENOENT), "{e}");
        assert!(!dir.join("src.sock").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_removed_live_and_regular_kept() {
        let dir = std::env::temp_dir().join(format!("sockit-unix-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let addr = UnixAddr::Path(path.clone());
        let l = bind_listener(&addr, 1).unwrap();
        // Live: refused, listener intact.
        let e = bind_listener(&addr, 1).unwrap_err();
        assert!(e.is_errno(libc::EADDRINUSE), "{e}");
        drop(l);
        // Stale (file left, nobody listening): replaced.
        let l2 = bind_listener(&addr, 1).unwrap();
        drop(l2);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"keep").unwrap();
        let e = bind_listener(&addr, 1).unwrap_err();
        assert!(e.is_errno(libc::EADDRINUSE), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
