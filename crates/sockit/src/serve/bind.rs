//! The one binder of every server: which address of a name to bind ([`bind_addr`]), IP
//! sockets ([`bind_ip`]), Unix sockets with the stale-file check ([`bind_unix`]), the
//! guard that removes the socket file this process created ([`SocketFile`]), and
//! listeners inherited from the parent ([`Listener::inherited`]).
//!
//! Contract:
//! - Under socket activation ([`activation`](super::activation): `LISTEN_FDS` for this
//!   process) [`bind_ip`] and [`bind_unix`] take an inherited socket of the transport
//!   asked for instead of binding.
//! - Options are set before `bind(2)`: `SO_REUSEADDR` on streams, `IPV6_V6ONLY` always set
//!   explicitly on IPv6 (off only with [`BindOptions::dual_stack`], which needs `::`),
//!   `SO_REUSEPORT` as [`BindOptions::reuse_port`] says, then the user's
//!   [`SocketOptions`].
//! - A failed `bind(2)` is named with the address tried:
//!   `bind 127.0.0.1:7000: [Errno 98] Address already in use`.
//! - A Unix socket file is removed by the [`SocketFile`] guard only while it is still the
//!   file this process created (same device and inode); an inherited listener's file is
//!   never removed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use socket2::{Domain, Socket, Type};

use super::peer::{Peer, Transport};
use crate::addr::{Family, Port, SockType};
use crate::error::{Error, Result};
use crate::sockopt::{Applied, SocketOptions};
use crate::unix::UnixAddr;

/// The default `listen(2)` backlog of servers (the kernel caps it at `somaxconn`).
pub const DEFAULT_BACKLOG: i32 = 1024;

/// How a server picks the address of its host: the family flags and `--dual-stack`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrRule {
    /// `-4` / `-6`: only addresses of this family.
    pub family: Option<Family>,
    /// `-n`: `AI_NUMERICHOST`, no name lookup at all.
    pub numeric: bool,
    /// `--dual-stack`: the default host is `::` and IPv4 is accepted on it.
    pub dual_stack: bool,
}

impl AddrRule {
    /// The host a server binds when none is given: 127.0.0.1; `::1` with `-6`; `::` with
    /// `--dual-stack`.
    pub fn default_ip(&self) -> IpAddr {
        if self.dual_stack {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else if self.family == Some(Family::Inet6) {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    }
}

/// The one rule for which address of `host` a server binds.
///
/// - No host: [`AddrRule::default_ip`].
/// - A numeric host and a numeric port: no `getaddrinfo(3)` call at all (a literal of the
///   other family than `-4`/`-6` ask for is refused).
/// - Otherwise one `getaddrinfo(3)` call with `AI_PASSIVE` (and `AI_NUMERICHOST` with
///   `-n`); of its answers the first IPv4 one is bound unless `-6`, as Python's default
///   `AF_INET` socket binds `('localhost', port)` to 127.0.0.1 even where the hosts file
///   lists `::1` first; else the first answer.
///
/// # Errors
/// Each names the address ([`Error::place`]: `HOST:PORT`).
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a literal of the
///   family `-4`/`-6` exclude.
/// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) from `getaddrinfo(3)` (with `-n`, a name is
///   `EAI_NONAME`).
pub fn bind_addr(
    host: Option<&str>,
    port: &Port,
    socktype: SockType,
    rule: &AddrRule,
) -> Result<SocketAddr> {
    // Every error names the address it is about (`Error::at`).
    let place = || {
        let h = host.map_or_else(|| rule.default_ip().to_string(), str::to_string);
        if h.contains(':') {
            format!("[{h}]:{port}")
        } else {
            format!("{h}:{port}")
        }
    };
    let literal = match host {
        None => Some(rule.default_ip()),
        Some(h) => h.parse::<IpAddr>().ok(),
    };
    if let Some(ip) = literal {
        let wrong = match rule.family {
            Some(Family::Inet) if ip.is_ipv6() => Some("-4 given but {} is an IPv6 address"),
            Some(Family::Inet6) if ip.is_ipv4() => Some("-6 given but {} is an IPv4 address"),
            _ => None,
        };
        if let Some(w) = wrong {
            return Err(Error::invalid_input("bind", w.replace("{}", &ip.to_string())).at(place()));
        }
        if let Port::Number(p) = port {
            return Ok(SocketAddr::new(ip, *p));
        }
    }
    let mut flags = crate::resolve::AI_PASSIVE;
    if rule.numeric {
        flags |= crate::resolve::AI_NUMERICHOST;
    }
    let host_text = match host {
        Some(h) => h.to_string(),
        None => rule.default_ip().to_string(),
    };
    let found = crate::resolve::getaddrinfo(
        Some(&host_text),
        Some(port),
        rule.family,
        Some(socktype),
        0,
        flags,
    )
    .map_err(|e| e.at(place()))?;
    found
        .iter()
        .find(|i| i.address.is_ipv4() && rule.family != Some(Family::Inet6))
        .or_else(|| found.first())
        .map(|i| i.address)
        .ok_or_else(|| Error::gai("getaddrinfo", libc::EAI_NONAME).at(place()))
}

/// Whether a socket joins a `SO_REUSEPORT` group (the echo server's workers share one
/// port that way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReusePort {
    /// No group (unless the user's [`SocketOptions::reuseport`] asks for one).
    #[default]
    Off,
    /// The first socket of a group: binds without `SO_REUSEPORT` (so a port another
    /// server holds is refused as usual), then sets it before `listen(2)`.
    First,
    /// A further socket of the group: sets `SO_REUSEPORT` before `bind(2)`.
    Join,
}

/// Options of one bind.
#[derive(Debug, Clone, Default)]
pub struct BindOptions {
    /// `listen(2)` backlog for streams (0: [`DEFAULT_BACKLOG`]).
    pub backlog: i32,
    /// `IPV6_V6ONLY` off: accept IPv4 too; only on the wildcard `::`.
    pub dual_stack: bool,
    /// `SO_REUSEPORT` group membership.
    pub reuse_port: ReusePort,
    /// The user's socket options, set before `bind(2)` (accepted sockets inherit them).
    pub sockopts: SocketOptions,
}

/// A socket file this process created by binding a Unix socket: removed when the guard is
/// dropped (or [`remove`](SocketFile::remove)d), and only while the path still holds the
/// same file (device and inode), so a file another server made meanwhile is left alone.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The guard of the socket file at `path`, as it is now (`stat(2)`).
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `stat(2)`.
    pub fn of(path: PathBuf) -> Result<SocketFile> {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::from_io("stat", e))?;
        Ok(SocketFile {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The path of the file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Removes the file now if it is still ours (`unlink(2)`); idempotent.
    pub fn remove(&self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && m.file_type().is_socket()
            && m.dev() == self.dev
            && m.ino() == self.ino
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Where a [`Listener`]'s socket came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This process bound it.
    Bound,
    /// It was inherited, already bound (socket activation, `LISTEN_FDS`): its file is
    /// never removed.
    Inherited,
}

/// A bound socket of a server (listening, for streams), not yet registered with any event
/// loop: the socket, its transport and local address, and the guard of its socket file.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    transport: Transport,
    local: Peer,
    file: Option<SocketFile>,
    origin: Origin,
    applied: Vec<Applied>,
}

impl Listener {
    /// The socket (non-blocking, close-on-exec).
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// TCP, UDP, Unix stream or Unix datagram.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The local address (`getsockname(2)`: the real port when port 0 was asked).
    pub fn local(&self) -> &Peer {
        &self.local
    }

    /// The local IP address, for an IP listener.
    pub fn local_ip(&self) -> Option<SocketAddr> {
        match self.local {
            Peer::Ip(a) => Some(a),
            Peer::Unix(_) => None,
        }
    }

    /// Bound here or inherited.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The user's socket options as read back after setting them.
    pub fn applied(&self) -> &[Applied] {
        &self.applied
    }

    /// Sets the user's socket options on an inherited socket (those that only act before
    /// `bind(2)` have no effect there).
    fn with_sockopts(mut self, opts: &SocketOptions) -> Result<Listener> {
        self.applied = opts.apply(&self.socket)?;
        Ok(self)
    }

    /// The socket and the guard of its socket file (keep the guard alive as long as the
    /// server runs: dropping it removes the file).
    pub fn into_parts(self) -> (Socket, Option<SocketFile>) {
        (self.socket, self.file)
    }

    /// A listener from an inherited, already bound socket (socket activation hands them
    /// over as `LISTEN_FDS`; issue 15 reads that protocol). Its transport and address are
    /// read back with `getsockopt(SO_TYPE)` and `getsockname(2)`; it is made non-blocking;
    /// its socket file, if any, is never removed.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `getsockname(2)`, `getsockopt(2)` or
    /// `fcntl(2)`; [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a
    /// socket that is neither IP nor Unix, stream nor datagram.
    pub fn inherited(fd: OwnedFd) -> Result<Listener> {
        let socket = Socket::from(fd);
        let addr = socket
            .local_addr()
            .map_err(|e| Error::from_io("getsockname", e))?;
        let ty = socket
            .r#type()
            .map_err(|e| Error::from_io("getsockopt", e))?;
        let stream = ty == Type::STREAM;
        let (transport, local) = match addr.as_socket() {
            Some(a) if stream => (Transport::Tcp, Peer::Ip(a)),
            Some(a) => (Transport::Udp, Peer::Ip(a)),
            None if addr.is_unix() && stream => (Transport::Unix, Peer::from_unix_sockaddr(&addr)),
            None if addr.is_unix() => (Transport::Unixgram, Peer::from_unix_sockaddr(&addr)),
            None => {
                return Err(Error::invalid_input(
                    "listen",
                    "an inherited socket that is neither IP nor Unix",
                ));
            }
        };
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::from_io("fcntl", e))?;
        Ok(Listener {
            socket,
            transport,
            local,
            file: None,
            origin: Origin::Inherited,
            applied: Vec::new(),
        })
    }
}

/// Binds an IP socket at `addr` for `transport` (TCP or UDP): `socket(2)`, the options
/// (see the module docs), `bind(2)`, and `listen(2)` for TCP. Non-blocking, close-on-exec.
///
/// Under socket activation ([`activation`](super::activation)) the first inherited socket
/// of `transport` is returned instead and `addr` is not bound.
///
/// # Errors
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for `dual_stack` on an
///   address other than `::`, or a Unix transport; under socket activation, when no
///   inherited socket of `transport` is left.
/// - [`ErrorKind::Os`](crate::ErrorKind::Os) with the errno of the failing call, the bind
///   named with its address (`bind 127.0.0.1:7000: [Errno 98] Address already in use`).
pub fn bind_ip(addr: SocketAddr, transport: Transport, opts: &BindOptions) -> Result<Listener> {
    if let Some(l) = super::activation::take(transport)? {
        return l.with_sockopts(&opts.sockopts);
    }
    bind_ip_fresh(addr, transport, opts)
}

/// [`bind_ip`] without socket activation: always binds a new socket.
pub(crate) fn bind_ip_fresh(
    addr: SocketAddr,
    transport: Transport,
    opts: &BindOptions,
) -> Result<Listener> {
    let ty = match transport {
        Transport::Tcp => Type::STREAM,
        Transport::Udp => Type::DGRAM,
        _ => return Err(Error::invalid_input("bind", "not an IP transport")),
    };
    if opts.dual_stack && addr.ip() != IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        return Err(Error::invalid_input(
            "bind",
            format!(
                "--dual-stack needs the IPv6 wildcard address ::, not {}",
                addr.ip()
            ),
        ));
    }
    let s = Socket::new(Domain::for_address(addr), ty.nonblocking().cloexec(), None)
        .map_err(|e| Error::from_io("socket", e))?;
    if ty == Type::STREAM {
        s.set_reuse_address(true)
            .map_err(|e| Error::from_io("setsockopt(SO_REUSEADDR)", e))?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(!opts.dual_stack)
            .map_err(|e| Error::from_io("setsockopt(IPV6_V6ONLY)", e))?;
    }
    let applied = opts.sockopts.apply(&s)?;
    let reuse = |s: &Socket| {
        s.set_reuse_port(true)
            .map_err(|e| Error::from_io("setsockopt(SO_REUSEPORT)", e))
    };
    if opts.reuse_port == ReusePort::Join {
        reuse(&s)?;
    }
    s.bind(&addr.into())
        .map_err(|e| Error::from_io("bind", e).at(addr.to_string()))?;
    if opts.reuse_port == ReusePort::First {
        reuse(&s)?;
    }
    if ty == Type::STREAM {
        let backlog = if opts.backlog > 0 {
            opts.backlog
        } else {
            DEFAULT_BACKLOG
        };
        s.listen(backlog).map_err(|e| Error::from_io("listen", e))?;
    }
    let local = s
        .local_addr()
        .map_err(|e| Error::from_io("getsockname", e))?
        .as_socket()
        .ok_or_else(|| Error::invalid_input("getsockname", "not an IP socket"))?;
    Ok(Listener {
        socket: s,
        transport,
        local: Peer::Ip(local),
        file: None,
        origin: Origin::Bound,
        applied,
    })
}

/// Binds a Unix socket at `addr` for `transport` (`unix` or `unixgram`), after removing a
/// stale socket file a dead server left (only once a connect to it is refused; a live
/// server's socket or a file that is not a socket is left alone), and `listen(2)` for
/// streams. The returned listener's [`SocketFile`] guard removes the file on drop.
///
/// Under socket activation ([`activation`](super::activation)) the first inherited socket
/// of `transport` is returned instead: nothing is bound and its file is never removed.
///
/// # Errors
/// [`ErrorKind::Os`](crate::ErrorKind::Os) named `bind PATH` for a path in use
/// (`EADDRINUSE`, "… left untouched") or another failing call;
/// `AF_UNIX path too long`.
pub fn bind_unix(addr: &UnixAddr, transport: Transport, opts: &BindOptions) -> Result<Listener> {
    if matches!(transport, Transport::Unix | Transport::Unixgram)
        && let Some(l) = super::activation::take(transport)?
    {
        return l.with_sockopts(&opts.sockopts);
    }
    let rename = |e: Error| {
        if e.op() == "bind" {
            e.at(addr.to_string())
        } else {
            e
        }
    };
    let socket: Socket = match transport {
        Transport::Unix => {
            let backlog = if opts.backlog > 0 {
                opts.backlog
            } else {
                DEFAULT_BACKLOG
            };
            crate::unix::bind_listener(addr, backlog)
                .map_err(rename)?
                .into()
        }
        Transport::Unixgram => crate::unix::bind_datagram(addr).map_err(rename)?.into(),
        _ => return Err(Error::invalid_input("bind", "not a Unix transport")),
    };
    let applied = opts.sockopts.apply(&socket)?;
    let file = match addr.path() {
        Some(p) => Some(SocketFile::of(p.to_path_buf())?),
        None => None,
    };
    Ok(Listener {
        socket,
        transport,
        local: Peer::Unix(Some(addr.clone())),
        file,
        origin: Origin::Bound,
        applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_the_address() {
        let rule = AddrRule::default();
        let p = Port::Number(7);
        let st = SockType::Stream;
        assert_eq!(
            bind_addr(None, &p, st, &rule).unwrap(),
            "127.0.0.1:7".parse().unwrap()
        );
        let six = AddrRule {
            family: Some(Family::Inet6),
            ..rule
        };
        assert_eq!(
            bind_addr(None, &p, st, &six).unwrap(),
            "[::1]:7".parse().unwrap()
        );
        let dual = AddrRule {
            dual_stack: true,
            ..rule
        };
        assert_eq!(
            bind_addr(None, &p, st, &dual).unwrap(),
            "[::]:7".parse().unwrap()
        );
        let e = bind_addr(Some("127.0.0.1"), &p, st, &six).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bind 127.0.0.1:7: -6 given but 127.0.0.1 is an IPv4 address"
        );
        assert_eq!((e.op(), e.place()), ("bind", Some("127.0.0.1:7")));
        let numeric = AddrRule {
            numeric: true,
            ..rule
        };
        assert!(bind_addr(Some("localhost"), &p, st, &numeric).is_err());
        // A name with both families binds its IPv4 address (no DNS: localhost is in hosts).
        assert_eq!(
            bind_addr(Some("localhost"), &p, st, &rule).unwrap(),
            "127.0.0.1:7".parse().unwrap()
        );
    }

    #[test]
    fn bind_errors_name_the_address_and_files_are_removed() {
        let l = bind_ip(
            "127.0.0.1:0".parse().unwrap(),
            Transport::Tcp,
            &BindOptions::default(),
        )
        .unwrap();
        let at = l.local_ip().unwrap();
        let e = bind_ip(at, Transport::Tcp, &BindOptions::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("bind {at}: [Errno 98] Address already in use")
        );
        let dir = std::env::temp_dir().join(format!("sockit-serve-bind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let u = bind_unix(
            &UnixAddr::Path(path.clone()),
            Transport::Unix,
            &BindOptions::default(),
        )
        .unwrap();
        assert!(path.exists());
        drop(u);
        assert!(!path.exists(), "the guard removes the file it created");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
