//! Socket activation: listening sockets handed over by systemd (or any parent that speaks
//! the protocol of `sd_listen_fds(3)`), taken by the binder instead of binding anew.
//!
//! The protocol: the parent binds the sockets, passes them as descriptors 3, 4, … and sets
//! `LISTEN_FDS` (how many), `LISTEN_PID` (the pid they are for) and optionally
//! `LISTEN_FDNAMES` (colon-separated names, systemd's `FileDescriptorName=`).
//!
//! Contract:
//! - Without `LISTEN_PID`/`LISTEN_FDS` nothing changes: every server binds its own
//!   sockets.
//! - A `LISTEN_PID` that is not this process's pid means "not for us" and the variables
//!   are ignored, as `sd_listen_fds(3)` does (a child that inherited them by mistake).
//! - The variables are read once, at the first use of this module (a program calls
//!   [`active`] first thing, before it opens any descriptor of its own, so descriptor 3
//!   is still the one its parent passed); every inherited descriptor gets `FD_CLOEXEC`
//!   then, so no program a server starts inherits it.
//!   Programs started by a server are given an environment without the variables
//!   ([`VARIABLES`]).
//! - [`bind_ip`](super::bind_ip) and [`bind_unix`](super::bind_unix) take the first
//!   inherited socket of the transport asked for (in descriptor order); the address asked
//!   for is then not bound (the parent chose it). A socket named `metrics` in
//!   `LISTEN_FDNAMES` is kept for a metrics endpoint ([`take_named`]).
//! - When sockets were inherited but none of the transport asked for is left, the bind is
//!   an [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error naming what was
//!   passed; a descriptor that is not a socket of a kind a server can use (IP or Unix,
//!   stream or datagram; a stream socket must be listening) is one too.
//! - An inherited Unix socket's file belongs to whoever made it: it is never removed
//!   ([`Origin::Inherited`](super::Origin::Inherited)).

use std::os::fd::RawFd;
use std::sync::Mutex;

use super::bind::Listener;
use super::peer::{Peer, Transport};
use crate::error::{Error, Result};

/// The first descriptor the protocol passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;
/// The most descriptors accepted from `LISTEN_FDS` (a larger count is refused as bad
/// input rather than adopting thousands of descriptors).
pub const MAX_LISTEN_FDS: usize = 1024;
/// The variables of the protocol, to remove from the environment of programs a server
/// runs (`--exec`).
pub const VARIABLES: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];
/// The `LISTEN_FDNAMES` name that marks a socket for the metrics endpoint.
pub const METRICS_NAME: &str = "metrics";

const OP: &str = "socket activation";

/// A descriptor the parent passed and its name in `LISTEN_FDNAMES`, if any.
pub type PassedFd = (RawFd, Option<String>);

/// What the variables say: the descriptors passed and their names, or `None` when they
/// are absent or not for this process.
///
/// Pure: `pid`, `fds` and `names` are the variables' values, `our_pid` this process's.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a value that is not a
/// number, more than [`MAX_LISTEN_FDS`] descriptors, or a `LISTEN_FDNAMES` whose count
/// differs from `LISTEN_FDS`.
pub fn parse(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    our_pid: u32,
) -> Result<Option<Vec<PassedFd>>> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| Error::invalid_input(OP, format!("LISTEN_PID={pid:?} is not a process id")))?;
    if pid != our_pid {
        return Ok(None);
    }
    let n: usize = fds
        .trim()
        .parse()
        .map_err(|_| Error::invalid_input(OP, format!("LISTEN_FDS={fds:?} is not a number")))?;
    if n > MAX_LISTEN_FDS {
        return Err(Error::invalid_input(
            OP,
            format!("LISTEN_FDS={n}: at most {MAX_LISTEN_FDS} descriptors"),
        ));
    }
    let names: Vec<Option<String>> = match names {
        None => vec![None; n],
        Some(text) => {
            let list: Vec<Option<String>> = text
                .split(':')
                .map(|s| (!s.is_empty()).then(|| s.to_string()))
                .collect();
            if list.len() != n {
                return Err(Error::invalid_input(
                    OP,
                    format!(
                        "LISTEN_FDNAMES names {} sockets but LISTEN_FDS={n}",
                        list.len()
                    ),
                ));
            }
            list
        }
    };
    Ok(Some(
        names
            .into_iter()
            .enumerate()
            .map(|(i, name)| (LISTEN_FDS_START + i as RawFd, name))
            .collect(),
    ))
}

/// One inherited socket not yet taken.
#[derive(Debug)]
struct Passed {
    listener: Listener,
    name: Option<String>,
}

#[derive(Debug)]
struct Pool {
    /// Sockets not yet taken, in descriptor order.
    left: Vec<Passed>,
    /// What was passed, for error messages (`tcp 127.0.0.1 8080, udp …`).
    passed: String,
}

/// Reads the variables and adopts the descriptors (once per process).
fn load() -> Result<Option<Pool>> {
    let var = |k: &str| std::env::var(k).ok();
    let Some(fds) = parse(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )?
    else {
        return Ok(None);
    };
    let mut left = Vec::new();
    for (fd, name) in fds {
        let owned = crate::sys::adopt_inherited_fd(fd)
            .map_err(|e| Error::from_io(format!("{OP}: descriptor {fd}"), e))?;
        if let Err(e) = socket2::SockRef::from(&owned).r#type() {
            // Not a socket: not ours to close either.
            let _ = std::os::fd::IntoRawFd::into_raw_fd(owned);
            return Err(Error::invalid_input(
                OP,
                format!("descriptor {fd} is not a socket ({e})"),
            ));
        }
        let listener = Listener::inherited(owned)
            .map_err(|e| Error::invalid_input(OP, format!("descriptor {fd}: {}", e.message())))?;
        let stream = matches!(listener.transport(), Transport::Tcp | Transport::Unix);
        if stream && !listener.socket().is_listener().unwrap_or(true) {
            return Err(Error::invalid_input(
                OP,
                format!(
                    "descriptor {fd} ({}) is a stream socket that is not listening",
                    described(&listener)
                ),
            ));
        }
        left.push(Passed { listener, name });
    }
    let passed = left
        .iter()
        .map(|p| {
            let named = p
                .name
                .as_deref()
                .map(|n| format!(" (named {n})"))
                .unwrap_or_default();
            format!("{}{named}", described(&p.listener))
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Some(Pool { left, passed }))
}

/// A passed socket as the errors name it: its transport and address, each said once
/// (`tcp 127.0.0.1 8080`, `unix /run/s.sock`, `unixgram /run/d.sock`).
fn described(l: &Listener) -> String {
    match l.local() {
        Peer::Unix(Some(path)) => format!("{} {path}", l.transport()),
        Peer::Unix(None) => format!("{} (unnamed)", l.transport()),
        ip => format!("{} {ip}", l.transport()),
    }
}

/// `None`: not read yet; `Some(Ok(None))`: read, no sockets for us; `Some(Err(_))`: the
/// variables were wrong (every later use says so again; nothing is adopted twice).
type State = Option<Result<Option<Pool>>>;
static POOL: Mutex<State> = Mutex::new(None);

/// Runs `f` on the pool, reading the variables first if this is the first use (under the
/// lock, so each descriptor is adopted once).
fn with_pool<R>(f: impl FnOnce(&mut Option<Pool>) -> R) -> Result<R> {
    let mut guard = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let state = guard.get_or_insert_with(load);
    match state {
        Ok(pool) => Ok(f(pool)),
        Err(e) => Err(e.clone()),
    }
}

/// Were sockets handed to this process (`LISTEN_PID` is ours and `LISTEN_FDS` > 0)?
///
/// # Errors
/// As [`parse`], and [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a
/// passed descriptor that is not a usable socket.
pub fn active() -> Result<bool> {
    with_pool(|p| p.as_ref().is_some_and(|p| !p.passed.is_empty()))
}

/// The transports of the inherited sockets not yet taken (except one named `metrics`),
/// in descriptor order; empty without socket activation.
///
/// # Errors
/// As [`active`].
pub fn transports() -> Result<Vec<Transport>> {
    with_pool(|p| {
        p.as_ref().map_or_else(Vec::new, |p| {
            p.left
                .iter()
                .filter(|s| s.name.as_deref() != Some(METRICS_NAME))
                .map(|s| s.listener.transport())
                .collect()
        })
    })
}

/// Takes the first inherited socket of `transport` (not one named `metrics`): `Ok(None)`
/// without socket activation.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when sockets were passed
/// but none of `transport` is left (the message lists what was passed).
pub fn take(transport: Transport) -> Result<Option<Listener>> {
    with_pool(|p| {
        let Some(p) = p.as_mut() else {
            return Ok(None);
        };
        if p.passed.is_empty() {
            return Ok(None);
        }
        match p.left.iter().position(|s| {
            s.listener.transport() == transport && s.name.as_deref() != Some(METRICS_NAME)
        }) {
            Some(i) => Ok(Some(p.left.remove(i).listener)),
            None => Err(Error::invalid_input(
                OP,
                format!(
                    "a {transport} socket is needed but none is left of those passed in \
                 LISTEN_FDS ({})",
                    p.passed
                ),
            )),
        }
    })?
}

/// Takes the inherited socket named `name` in `LISTEN_FDNAMES` (of `transport`):
/// `Ok(None)` when there is none (then the caller binds its own).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the socket of that
/// name is not of `transport`; as [`active`].
pub fn take_named(name: &str, transport: Transport) -> Result<Option<Listener>> {
    with_pool(|p| {
        let Some(p) = p.as_mut() else {
            return Ok(None);
        };
        let Some(i) = p.left.iter().position(|s| s.name.as_deref() == Some(name)) else {
            return Ok(None);
        };
        let got = p.left[i].listener.transport();
        if got != transport {
            return Err(Error::invalid_input(
                OP,
                format!("the socket named {name} is {got}, not {transport}"),
            ));
        }
        Ok(Some(p.left.remove(i).listener))
    })?
}

/// After a server took the sockets it serves: an error when inherited sockets are left
/// unused (their clients would wait forever in the backlog), a socket named `metrics`
/// without `--metrics` among them. `who` names the server (`forward`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming what was passed and
/// what is left; as [`active`].
pub fn check_all_taken(who: &str) -> Result<()> {
    with_pool(|p| {
        let Some(p) = p.as_ref() else {
            return Ok(());
        };
        if p.left.is_empty() {
            return Ok(());
        }
        let left: Vec<String> = p
            .left
            .iter()
            .map(|s| match s.name.as_deref() {
                Some(METRICS_NAME) => "the one named metrics (give --metrics to serve it)".into(),
                _ => s.listener.transport().as_str().to_string(),
            })
            .collect();
        Err(Error::invalid_input(
            OP,
            format!(
                "{who} would leave sockets passed in LISTEN_FDS ({}) unserved: {}",
                p.passed,
                left.join(", ")
            ),
        ))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_as_sd_listen_fds_reads_them() {
        assert_eq!(parse(None, None, None, 7).unwrap(), None);
        assert_eq!(parse(Some("7"), None, None, 7).unwrap(), None);
        // Not for us: ignored.
        assert_eq!(parse(Some("8"), Some("2"), None, 7).unwrap(), None);
        assert_eq!(
            parse(Some("7"), Some("2"), None, 7).unwrap(),
            Some(vec![(3, None), (4, None)])
        );
        assert_eq!(
            parse(Some("7"), Some("2"), Some("web:metrics"), 7).unwrap(),
            Some(vec![(3, Some("web".into())), (4, Some("metrics".into()))])
        );
        assert_eq!(parse(Some("7"), Some("0"), None, 7).unwrap(), Some(vec![]));
        for (pid, fds, names) in [
            ("x", "1", None),
            ("7", "-1", None),
            ("7", "one", None),
            ("7", "100000", None),
            ("7", "2", Some("a")),
        ] {
            let e = parse(Some(pid), Some(fds), names, 7).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{e}");
        }
    }
}
