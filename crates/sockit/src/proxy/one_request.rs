//! One request per plain-HTTP proxy connection: the client's bytes reach the origin
//! server up to the end of the first request's body and never further.
//!
//! The proxy forwards a plain (non-`CONNECT`) request with `Connection: close` and relays
//! the rest; a second request the client pipelines after it — its own absolute URI, its
//! own `Proxy-Authorization` — must not reach the origin unparsed (fresh-eyes QA). The
//! parser refuses one that came with the first head; [`OneRequest`] stands between the
//! client and the relay for the rest: it frames the body (`Content-Length`, or the
//! chunked coding decoded as it passes, RFC 9112 §6.3 and §7.1) and reads and drops what
//! follows, so the session closes after the first response (the origin closes, the
//! client gets the answer and EOF). Dropping is bounded: past [`MAX_DISCARD`] bytes the
//! relay ends with an error.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::{BodyDecoder, Framing};
use crate::serve::BoxStream;

/// The most bytes a client may send after its request before the session ends (1 MiB).
pub const MAX_DISCARD: u64 = 1 << 20;

/// A plain-HTTP client stream that reads as the first request's body and then ends
/// nothing more (module docs): bytes after the body are dropped, and noted
/// ([`OneRequest::pipelined`]).
pub struct OneRequest {
    inner: BoxStream,
    body: BodyDecoder,
    scratch: Vec<u8>,
    discarded: u64,
    pipelined: Arc<AtomicBool>,
}

impl std::fmt::Debug for OneRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneRequest")
            .field("discarded", &self.discarded)
            .finish_non_exhaustive()
    }
}

impl OneRequest {
    /// The client stream `inner`, whose request body ends as `body` says.
    pub fn new(inner: BoxStream, body: Framing) -> OneRequest {
        OneRequest {
            inner,
            body: BodyDecoder::new(body),
            scratch: Vec::new(),
            discarded: 0,
            pipelined: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Takes the bytes the client sent with its head (read before the relay): returns how
    /// many of them belong to the body; the rest are dropped as [`OneRequest::poll_read`]
    /// drops them.
    ///
    /// # Errors
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for a malformed chunked body.
    pub fn feed(&mut self, early: &[u8]) -> crate::Result<usize> {
        let used = self.take(early)?;
        self.drop_rest(early.len() - used);
        Ok(used)
    }

    /// Set once the client sent something after its request (a pipelined request).
    pub fn pipelined(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.pipelined)
    }

    fn take(&mut self, bytes: &[u8]) -> crate::Result<usize> {
        if self.body.is_done() {
            return Ok(0);
        }
        self.scratch.clear();
        self.body.decode(bytes, &mut self.scratch)
    }

    fn drop_rest(&mut self, n: usize) {
        if n > 0 {
            self.pipelined.store(true, Ordering::SeqCst);
            self.discarded += n as u64;
        }
    }
}

fn too_much() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "a second request follows the first (pipelining): one request per connection",
    )
}

impl AsyncRead for OneRequest {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.discarded > MAX_DISCARD {
                return Poll::Ready(Err(too_much()));
            }
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let got = buf.filled().len() - before;
            if got == 0 {
                // the client's end of stream (or a full buffer) passes as it is
                return Poll::Ready(Ok(()));
            }
            let bytes = buf.filled()[before..].to_vec();
            let used = this
                .take(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            this.drop_rest(got - used);
            buf.set_filled(before + used);
            if used > 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncWrite for OneRequest {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsFd for OneRequest {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn through(framing: Framing, early: &[u8], later: &[u8]) -> (Vec<u8>, bool) {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let mut one = OneRequest::new(Box::new(a), framing);
        let mut out = early[..one.feed(early).unwrap()].to_vec();
        let mut b = b;
        b.write_all(later).await.unwrap();
        b.shutdown().await.unwrap();
        one.read_to_end(&mut out).await.unwrap();
        (out, one.pipelined().load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn the_body_passes_and_a_pipelined_request_does_not() {
        // Regression (QA proxy-scan.md D4): a second request sent after the first head
        // reached the origin raw.
        let second = b"GET http://127.0.0.2:9/b HTTP/1.1\r\nProxy-Authorization: x\r\n\r\n";
        assert_eq!(through(Framing::Empty, b"", second).await, (vec![], true));
        let mut later = b"lo".to_vec();
        later.extend_from_slice(second);
        assert_eq!(
            through(Framing::Length(5), b"hel", &later).await,
            (b"hello".to_vec(), true)
        );
        let chunked = b"3\r\nabc\r\n0\r\n\r\n";
        let mut later = chunked[4..].to_vec();
        later.extend_from_slice(second);
        assert_eq!(
            through(Framing::Chunked, &chunked[..4], &later).await,
            (chunked.to_vec(), true)
        );
        assert_eq!(
            through(Framing::Length(5), b"", b"hello").await,
            (b"hello".to_vec(), false)
        );
    }
}
