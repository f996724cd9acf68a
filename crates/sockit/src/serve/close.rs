//! Closing a session's socket, the two ways a server may.
//!
//! - [`linger_close`]: the server is done sending. `shutdown(SHUT_WR)` (the peer reads
//!   EOF after every byte sent), then read and discard what the peer still sends until its
//!   EOF, for at most [`LINGER_TIME`] and [`LINGER_BYTES`], then `close(2)`. Closing with
//!   unread input would send a RST, which destroys bytes not yet delivered (RFC 9293,
//!   3.6): the lingering close keeps the reply whole.
//! - [`abort`]: `SO_LINGER` 0 and `close(2)`: the peer gets a RST, never a FIN it would
//!   take for a complete stream. For resets passed on by a relay, and for sessions cut by
//!   a stop. A relay passing on a reset uses [`abort_after_sent`]: the bytes it already
//!   wrote leave first (a RST discards the send queue), then the RST.

use std::os::fd::AsFd;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::event::CloseReason;
use crate::error::{Error, ErrorKind, Result};
use crate::relay::End;

/// How long a lingering close waits for the peer's EOF (2 s).
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// How many bytes a lingering close reads and discards at most (16 MiB).
pub const LINGER_BYTES: u64 = 16 << 20;

/// Sets `SO_LINGER` to 0 on `socket`, so that its `close(2)` sends a RST.
pub fn set_abortive<S: AsFd>(socket: &S) {
    let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
}

/// Aborts a connection: `SO_LINGER` 0, then `close(2)` (a RST on TCP; a Unix stream peer
/// reads `ECONNRESET` when data was unread, else EOF).
pub fn abort<S: AsFd>(socket: S) {
    set_abortive(&socket);
    drop(socket);
}

/// How often [`abort_after_sent`] and [`acked_close`] look at the send queue (10 ms).
const SENT_POLL: Duration = Duration::from_millis(10);

/// True once everything written on `socket` was delivered: its send queue is empty
/// (`ioctl(SIOCOUTQ)` 0, [`crate::sys::unacked_bytes`]), or the queue cannot be read
/// (nothing to wait for). The one test behind [`abort_after_sent`] and [`acked_close`].
fn all_sent<S: AsFd>(socket: &S) -> bool {
    crate::sys::unacked_bytes(socket.as_fd()).map_or(true, |n| n == 0)
}

/// Aborts a connection once everything written on it was delivered (`SIOCOUTQ` 0), or
/// after [`LINGER_TIME`]: a reset passed on by a relay never destroys bytes the other side
/// sent before it (a RST discards the send queue). Looks every 10 ms.
pub async fn abort_after_sent<S: AsFd>(socket: S) {
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    while !all_sent(&socket) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(SENT_POLL).await;
    }
    abort(socket);
}

/// Closes a stream the lingering way (module docs): `shutdown(SHUT_WR)`, read and discard
/// until EOF within [`LINGER_TIME`] and [`LINGER_BYTES`], then drop (`close(2)`).
/// Returns how many bytes were discarded.
pub async fn linger_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> u64 {
    if stream.shutdown().await.is_err() {
        return 0;
    }
    let mut discarded = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    while discarded < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => discarded += n as u64,
            _ => break,
        }
    }
    discarded
}

/// Closes a stream a client ends itself (`connect -q`, `--send-only`): `shutdown(SHUT_WR)`,
/// then read and discard until everything sent (the FIN too) is acknowledged
/// (`ioctl(SIOCOUTQ)` reads 0), the peer's end of stream, or [`LINGER_TIME`], then
/// `close(2)`. Unlike [`linger_close`] it does not wait for the peer to close: the client
/// asked not to (`-q`), and once its bytes arrived a RST the peer's later data draws
/// cannot destroy them. Returns how many bytes were discarded.
pub async fn acked_close<S: AsyncRead + AsyncWrite + AsFd + Unpin>(mut stream: S) -> u64 {
    if stream.shutdown().await.is_err() {
        return 0;
    }
    let mut discarded = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    while discarded < LINGER_BYTES && tokio::time::Instant::now() < deadline {
        if all_sent(&stream) {
            break;
        }
        let tick = tokio::time::Instant::now() + SENT_POLL;
        match tokio::time::timeout_at(tick.min(deadline), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => discarded += n as u64,
            Err(_) => {}
        }
    }
    discarded
}

/// The `reason` of a session that a relay with its peer ended (see
/// [`crate::relay`]: errors name the side in their op, `recv`/`send` for the peer's
/// socket): `eof` for a clean end, `idle` for the idle timeout, `reset` for a reset or
/// broken pipe of the peer's socket, `error` for anything else; with the error.
pub fn relay_end(result: &Result<End>) -> (CloseReason, Option<Error>) {
    match result {
        Ok(_) => (CloseReason::Eof, None),
        Err(e) if e.kind() == ErrorKind::Timeout && e.op() == "idle" => {
            (CloseReason::Idle, Some(e.clone()))
        }
        Err(e)
            if matches!(e.op(), "recv" | "send")
                && (e.is_errno(libc::ECONNRESET) || e.is_errno(libc::EPIPE)) =>
        {
            (CloseReason::Reset, Some(e.clone()))
        }
        Err(e) => (CloseReason::Error, Some(e.clone())),
    }
}

/// Closes the peer's stream of a session as its end asks ([`relay_end`]'s reason and
/// error): a [`linger_close`] after a clean end or an error of the local side (the reply
/// stays whole), `shutdown(SHUT_WR)` and close when idle (nothing is unread), an
/// [`abort`] for a stop's cut and for a reset of the local side (passed on as a reset),
/// and a plain close after an error of the peer's socket (a reset one is gone already).
pub async fn close_as<S: AsyncRead + AsyncWrite + AsFd + Unpin>(
    mut stream: S,
    reason: CloseReason,
    error: Option<&Error>,
) {
    let local = error.filter(|e| !matches!(e.op(), "recv" | "send"));
    match reason {
        CloseReason::Aborted => abort(stream),
        CloseReason::Idle => {
            let _ = stream.shutdown().await;
        }
        _ if local.is_some_and(|e| e.is_errno(libc::ECONNRESET)) => abort(stream),
        CloseReason::Eof => {
            linger_close(stream).await;
        }
        CloseReason::Error if local.is_some() => {
            linger_close(stream).await;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn lingering_close_keeps_the_reply_and_abort_resets() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // The client sends 1 MiB it never has read, then reads the reply.
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(&vec![7u8; 1 << 20]).await.unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).await.unwrap();
            got.len()
        });
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(&vec![1u8; 256 * 1024]).await.unwrap();
        linger_close(s).await;
        assert_eq!(client.await.unwrap(), 256 * 1024);

        let mut c = TcpStream::connect(addr).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        abort(s);
        let mut got = Vec::new();
        let r = c.read_to_end(&mut got).await.map_err(|e| e.raw_os_error());
        assert_eq!(r, Err(Some(libc::ECONNRESET)));
    }
}
