//! Standard input for the relays, read without tokio's blocking pool when it can be.
//!
//! `tokio::io::stdin()` reads on a blocking-pool thread into its own buffer and copies the
//! bytes out: a thread hop and a copy per chunk, which costs a pipe-fed `sockit connect`
//! about 15% more CPU per GiB than nc. When stdin is a pipe or a socket, [`stdin`] instead
//! registers a duplicate of the descriptor with the runtime's epoll and, once it is
//! readable (confirmed by a zero-timeout `poll(2)`, so a `read(2)` on the still-blocking
//! descriptor cannot block), reads straight into the caller's buffer. The descriptor's
//! flags are left as they are (no O_NONBLOCK on a description other processes may share).
//! Terminals and regular files (which epoll refuses) keep tokio's stdin.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileTypeExt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// True when stdin is a terminal: then the command ends as soon as the peer closes
/// (netcat's behaviour). A pipe or file is sent to the end first, so a peer that only
/// half-closed still gets every byte.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Stdin for a relay: readiness-driven for a pipe or socket, tokio's stdin otherwise.
/// Must be called inside a tokio runtime.
pub fn stdin() -> Box<dyn AsyncRead + Unpin + Send> {
    match PipeStdin::new() {
        Some(p) => Box::new(p),
        None => Box::new(tokio::io::stdin()),
    }
}

struct PipeStdin {
    fd: AsyncFd<File>,
}

impl PipeStdin {
    fn new() -> Option<PipeStdin> {
        let owned = io::stdin().as_fd().try_clone_to_owned().ok()?;
        let file = File::from(owned);
        let kind = file.metadata().ok()?.file_type();
        if !(kind.is_fifo() || kind.is_socket()) {
            return None;
        }
        let fd = sockit::sys::register_readable(file).ok()?;
        Some(PipeStdin { fd })
    }
}

impl AsyncRead for PipeStdin {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let raw = self.fd.get_ref().as_raw_fd();
            match sockit::sys::poll_fd(raw, sockit::sys::POLLIN, Some(std::time::Duration::ZERO)) {
                Ok(true) => {}
                Ok(false) => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
            let unfilled = buf.initialize_unfilled();
            match self.fd.get_ref().read(unfilled) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A descriptor someone made non-blocking, drained meanwhile: wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Stdout for a relay: tokio's stdout, except that its `shutdown` (the relay's end of
/// the peer's stream) flushes it and then closes it for the reader downstream — file
/// descriptor 1 is pointed at /dev/null — so `sockit connect … | wc -c` sees its end of
/// file when the peer's stream ends, not when sockit exits (ncat closes stdout there too).
/// The command may go on sending stdin meanwhile.
pub fn stdout() -> Box<dyn AsyncWrite + Unpin + Send> {
    Box::new(ClosingStdout {
        inner: tokio::io::stdout(),
        closed: false,
    })
}

struct ClosingStdout {
    inner: tokio::io::Stdout,
    closed: bool,
}

impl AsyncWrite for ClosingStdout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        if !self.closed {
            self.closed = true;
            sockit::sys::point_at_dev_null(1)?;
        }
        Poll::Ready(Ok(()))
    }
}
