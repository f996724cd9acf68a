//! Setting up the connections before the clock starts (with the 8-byte connection
//! check on streams), and the words errors are counted under.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::config::Target;
use super::engine::{Conn, Shared};
use crate::error::Error;

/// Connection setups in flight at once, per thread.
pub(super) const CONNECT_CONCURRENCY: usize = 8;
/// The setup echo sent on each stream connection before the clock starts.
pub(super) const HELLO: &[u8; 8] = b"SOCKIT\0\0";
/// The operation named in the setup echo's errors.
pub(super) const CHECK: &str = "connection check (8-byte echo)";

/// An error with the word [`Report::errors_by_kind`](super::Report::errors_by_kind)
/// counts it under.
pub(super) type ConnError = (&'static str, Error);

pub(super) fn kind_of(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::TimedOut => "timeout",
        io::ErrorKind::ConnectionRefused => "refused",
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "reset",
        io::ErrorKind::UnexpectedEof => "closed",
        _ => "os",
    }
}

/// [`kind_of`] for an error the library already made (its errno, or a timeout).
pub(super) fn kind_of_error(e: &Error) -> &'static str {
    match (e.kind(), e.code()) {
        (crate::ErrorKind::Timeout, _) => "timeout",
        (_, Some(errno)) => kind_of(&io::Error::from_raw_os_error(errno)),
        _ => "os",
    }
}

/// The word [`Report::errors_by_kind`](super::Report::errors_by_kind) counts an error under (`refused`, `reset`, `closed`,
/// `timeout`, `os`, `check`), for an error [`run`](super::run) returned: a run that failed as a whole
/// names its error as a partly failed run counts it.
/// Errors of other kinds (a name lookup's, bad input) keep their kind's name.
pub fn error_kind_name(e: &Error) -> &'static str {
    match e.kind() {
        crate::ErrorKind::Protocol if e.op() == CHECK => "check",
        crate::ErrorKind::Os if e.code().is_none() && e.message() == CLOSED => "closed",
        crate::ErrorKind::Os | crate::ErrorKind::Timeout => kind_of_error(e),
        k => k.as_str(),
    }
}

/// The message of a peer's close.
pub(super) const CLOSED: &str = "the peer closed the connection";

pub(super) fn io_err(op: &'static str, e: io::Error) -> ConnError {
    (kind_of(&e), Error::from_io(op, e))
}

pub(super) fn timeout_err(op: &'static str) -> ConnError {
    ("timeout", Error::timeout(op))
}

pub(super) fn closed_err(op: &'static str) -> ConnError {
    ("closed", Error::new(crate::ErrorKind::Os, op, None, CLOSED))
}

/// Sets up `n` connections, `CONNECT_CONCURRENCY` at a time, all by `deadline`.
pub(super) async fn connect_all(
    n: usize,
    shared: &Arc<Shared>,
    deadline: Instant,
) -> (Vec<Conn>, Vec<ConnError>) {
    let sem = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let mut set = Vec::with_capacity(n);
    for _ in 0..n {
        let (sem, shared) = (sem.clone(), shared.clone());
        set.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            connect_one(&shared, deadline).await
        }));
    }
    let (mut ok, mut errs) = (Vec::new(), Vec::new());
    for h in set {
        match h.await {
            Ok(Ok(c)) => ok.push(c),
            Ok(Err(e)) => errs.push(e),
            Err(_) => errs.push((
                "os",
                Error::new(crate::ErrorKind::Os, "connect", None, "task failed"),
            )),
        }
    }
    (ok, errs)
}

/// Connects one socket; TCP and Unix then do one 8-byte echo, the connection check (so
/// every connection has been accepted before the clock starts). With verification on,
/// an echo with other bytes fails the connection with a `check` error.
///
/// Bounded by `deadline` (the connect phase's end): running out while connecting is a
/// `connect` timeout, while checking a timeout of the check (its op names it).
pub(super) async fn connect_one(
    shared: &Shared,
    deadline: Instant,
) -> std::result::Result<Conn, ConnError> {
    /// The connection check, within one request timeout (a server that accepts and
    /// never answers fails here, not after the whole connect phase). Its errors name it.
    pub(super) async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
        s: &mut S,
        timeout: Duration,
        deadline: Instant,
        verify: bool,
    ) -> std::result::Result<(), ConnError> {
        let exchange = async {
            s.write_all(HELLO).await.map_err(|e| io_err("send", e))?;
            let mut back = [0u8; 8];
            s.read_exact(&mut back).await.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    closed_err("recv")
                } else {
                    io_err("recv", e)
                }
            })?;
            Ok(back)
        };
        let until = (Instant::now() + timeout).min(deadline);
        let back = tokio::time::timeout_at(tokio::time::Instant::from_std(until), exchange)
            .await
            .unwrap_or_else(|_| Err(timeout_err("recv")))
            .map_err(|(kind, e)| {
                let op = format!("{CHECK}: {}", e.op());
                (kind, e.with_op(op))
            })?;
        if verify && &back != HELLO {
            return Err((
                "check",
                Error::protocol(
                    CHECK,
                    format!("the echo came back as {back:02x?}, not the 8 bytes sent"),
                ),
            ));
        }
        Ok(())
    }
    let (timeout, verify) = (shared.timeout, shared.cfg.verify);
    let dl = tokio::time::Instant::from_std(deadline);
    match &shared.cfg.target {
        Target::Tcp(a) => {
            let mut s = tokio::time::timeout_at(dl, tokio::net::TcpStream::connect(a))
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
                .map_err(|e| {
                    if e.kind() == io::ErrorKind::TimedOut {
                        timeout_err("connect")
                    } else {
                        io_err("connect", e)
                    }
                })?;
            s.set_nodelay(true).map_err(|e| io_err("setsockopt", e))?;
            hello(&mut s, timeout, deadline, verify).await?;
            Ok(Conn::Tcp(s))
        }
        Target::Unix(a) => {
            // The library's connect (path or abstract name), off the runtime thread:
            // a full backlog blocks it, for at most the connect timeout.
            let (a, limit) = (a.clone(), shared.cfg.connect_timeout);
            let blocking =
                tokio::task::spawn_blocking(move || crate::unix::connect_stream(&a, Some(limit)));
            let std = tokio::time::timeout_at(dl, blocking)
                .await
                .map_err(|_| timeout_err("connect"))?
                .map_err(|_| {
                    (
                        "os",
                        Error::new(crate::ErrorKind::Os, "connect", None, "task failed"),
                    )
                })?
                .map_err(|e| (kind_of_error(&e), e))?;
            let mut s = tokio::net::UnixStream::from_std(std).map_err(|e| io_err("connect", e))?;
            hello(&mut s, timeout, deadline, verify).await?;
            Ok(Conn::Unix(s))
        }
        Target::UnixDgram(a) => {
            let std = crate::unix::connect_datagram(a).map_err(|e| (kind_of_error(&e), e))?;
            // room for the largest datagram (as echo-server's): a send buffer of N bytes
            // holds only N minus the kernel's overhead
            let _ = socket2::SockRef::from(&std).set_send_buffer_size(crate::echo::MAX_UNIX_DGRAM);
            let s = tokio::net::UnixDatagram::from_std(std).map_err(|e| io_err("connect", e))?;
            Ok(Conn::UnixDgram(s))
        }
        Target::Udp(a) => {
            let bind: SocketAddr = if a.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = tokio::net::UdpSocket::bind(bind)
                .await
                .map_err(|e| io_err("bind", e))?;
            s.connect(a).await.map_err(|e| io_err("connect", e))?;
            Ok(Conn::Udp(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn a_failed_run_names_its_error_as_the_report_counts_it() {
        // Regression: a wrong check echo was `protocol` and a reset during the check `os`
        // in a failed run's error object, `check` and `reset` in errors_by_kind.
        let check = |e: ConnError| {
            let (kind, e) = e;
            (kind, e.clone().with_op(format!("{CHECK}: {}", e.op())))
        };
        let cases = [
            io_err("recv", io::Error::from_raw_os_error(libc::ECONNRESET)),
            check(io_err(
                "recv",
                io::Error::from_raw_os_error(libc::ECONNRESET),
            )),
            io_err("connect", io::Error::from_raw_os_error(libc::ECONNREFUSED)),
            io_err("send", io::Error::from_raw_os_error(libc::EPIPE)),
            io_err("recv", io::Error::from_raw_os_error(libc::EHOSTUNREACH)),
            closed_err("recv"),
            check(closed_err("recv")),
            timeout_err("recv"),
            check(timeout_err("recv")),
            (
                "check",
                Error::protocol(CHECK, "the echo came back as [..]"),
            ),
        ];
        for (kind, e) in cases {
            assert_eq!(error_kind_name(&e), kind, "{e}");
        }
    }
}
