//! Closing a session's socket, the two ways a server may.
//!
//! - [`linger_close`]: the server is done sending. `shutdown(SHUT_WR)` (the peer reads
//!   EOF after every byte sent), then read and discard what the peer still sends until its
//!   EOF, for at most [`LINGER_TIME`] and [`LINGER_BYTES`], then `close(2)`. Closing with
//!   unread input would send a RST, which destroys bytes not yet delivered (RFC 9293,
//!   3.6): the lingering close keeps the reply whole.
//! - [`abort`]: `SO_LINGER` 0 and `close(2)`: the peer gets a RST, never a FIN it would
//!   take for a complete stream. For resets passed on by a relay, and for sessions cut by
//!   a stop.

use std::os::fd::AsFd;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
