//! TLS over tokio streams: client and server handshakes, and [`Stream`], whose handshake
//! runs on first use.

use std::io;
use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};

use super::config::{SessionInfo, server_name};
use super::errors::from_io;
use crate::error::{Error, ErrorKind, Result};

/// Does a client handshake over a tokio stream: SNI and verification as `config` says.
///
/// Python: `ctx.wrap_socket(sock, server_hostname=host)` then `do_handshake()`.
///
/// # Errors
/// [`ErrorKind::Tls`] when the handshake fails (certificate refused, alert received,
/// peer not speaking TLS); [`ErrorKind::Os`] for a socket error;
/// [`ErrorKind::InvalidInput`] for a host that cannot be a server name.
pub async fn connect<IO>(
    io: IO,
    host: &str,
    config: Arc<ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = server_name(host)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, io)
        .await
        .map_err(|e| from_io("tls handshake", e))
}

/// Does a server handshake over a tokio stream.
///
/// Python: `ctx.wrap_socket(sock, server_side=True)`.
///
/// # Errors
/// [`ErrorKind::Tls`] when the handshake fails (the client refused the certificate or
/// does not speak TLS); [`ErrorKind::Os`] for a socket error.
pub async fn accept<IO>(
    io: IO,
    config: Arc<ServerConfig>,
) -> Result<tokio_rustls::server::TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio_rustls::TlsAcceptor::from(config)
        .accept(io)
        .await
        .map_err(|e| from_io("tls handshake", e))
}

/// A TLS stream over a tokio stream whose handshake runs on first use (or on
/// [`handshake`](Stream::handshake)), so that a server can hand it to a per-connection
/// task at once and a slow client never holds the accept loop.
///
/// Python: `ctx.wrap_socket(sock, do_handshake_on_connect=True)` on a non-blocking socket.
///
/// Contracts: I/O errors of the TLS layer come out as `io::Error`s that carry a
/// [`crate::Error`] of kind [`ErrorKind::Tls`] (so [`Error::from_io`] gives it back); a
/// peer that closes the TCP connection without TLS `close_notify` reads as a plain end of
/// stream, as for a TCP socket (the relays are byte pipes with no framing to protect);
/// `poll_shutdown` sends `close_notify` and then shuts down the TCP write side, so
/// half-close works as over TCP.
pub struct Stream<IO> {
    state: StreamState<IO>,
}

enum StreamState<IO> {
    Accepting(tokio_rustls::Accept<IO>),
    Connecting(tokio_rustls::Connect<IO>),
    Ready(Box<tokio_rustls::TlsStream<IO>>),
    Failed(Error),
}

impl<IO> std::fmt::Debug for Stream<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            StreamState::Accepting(_) => "accepting",
            StreamState::Connecting(_) => "connecting",
            StreamState::Ready(_) => "ready",
            StreamState::Failed(_) => "failed",
        };
        f.debug_struct("tls::Stream")
            .field("state", &state)
            .finish()
    }
}

impl<IO> Stream<IO>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    /// The server side of a connection (`accept`ed socket), handshake pending.
    pub fn accept(io: IO, config: Arc<ServerConfig>) -> Stream<IO> {
        Stream {
            state: StreamState::Accepting(tokio_rustls::TlsAcceptor::from(config).accept(io)),
        }
    }

    /// The client side of a connection to `host` (SNI and verification name), handshake
    /// pending.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a host that cannot be a TLS server name.
    pub fn connect(io: IO, host: &str, config: Arc<ClientConfig>) -> Result<Stream<IO>> {
        let name = server_name(host)?;
        Ok(Stream {
            state: StreamState::Connecting(
                tokio_rustls::TlsConnector::from(config).connect(name, io),
            ),
        })
    }

    /// Runs the handshake to its end (a no-op once done).
    ///
    /// # Errors
    /// [`ErrorKind::Tls`] when it fails (certificate refused, alert, peer not speaking
    /// TLS, peer closed during the handshake); [`ErrorKind::Os`] for a socket error.
    pub async fn handshake(&mut self) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_handshake(cx))
            .await
            .map_err(|e| Error::from_io("tls handshake", e))
    }

    /// What the handshake agreed on, once it is done.
    pub fn session_info(&self) -> Option<SessionInfo> {
        match &self.state {
            StreamState::Ready(s) => Some(SessionInfo::of(s.get_ref().1)),
            _ => None,
        }
    }

    fn poll_handshake(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::future::Future;
        use std::pin::Pin;
        use std::task::Poll;
        let done = match &mut self.state {
            StreamState::Ready(_) => return Poll::Ready(Ok(())),
            StreamState::Failed(e) => return Poll::Ready(Err(e.clone().into())),
            StreamState::Accepting(fut) => match Pin::new(fut).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r.map(tokio_rustls::TlsStream::from),
            },
            StreamState::Connecting(fut) => match Pin::new(fut).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r.map(tokio_rustls::TlsStream::from),
            },
        };
        match done {
            Ok(s) => {
                self.state = StreamState::Ready(Box::new(s));
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                let err = match e.kind() {
                    io::ErrorKind::UnexpectedEof => {
                        Error::tls("the peer closed the connection during the TLS handshake")
                    }
                    _ => from_io("tls handshake", e),
                };
                self.state = StreamState::Failed(err.clone());
                Poll::Ready(Err(err.into()))
            }
        }
    }
}

/// An `io::Error` carrying the sockit error of a TLS failure (errno errors stay errno).
fn tls_io_error(op: &'static str, e: io::Error) -> io::Error {
    if e.raw_os_error().is_some() {
        return e;
    }
    match from_io(op, e) {
        err if err.kind() == ErrorKind::Tls => io::Error::other(err),
        err => err.into(),
    }
}

impl<IO> tokio::io::AsyncRead for Stream<IO>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        match this.poll_handshake(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let StreamState::Ready(s) = &mut this.state else {
            return Poll::Ready(Err(io::Error::other("tls stream not ready")));
        };
        match std::pin::Pin::new(&mut **s).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(tls_io_error("recv", e))),
            other => other,
        }
    }
}

impl<IO> tokio::io::AsyncWrite for Stream<IO>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        use std::task::Poll;
        let this = self.get_mut();
        match this.poll_handshake(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        let StreamState::Ready(s) = &mut this.state else {
            return Poll::Ready(Err(io::Error::other("tls stream not ready")));
        };
        std::pin::Pin::new(&mut **s)
            .poll_write(cx, buf)
            .map_err(|e| tls_io_error("send", e))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            StreamState::Ready(s) => std::pin::Pin::new(&mut **s)
                .poll_flush(cx)
                .map_err(|e| tls_io_error("send", e)),
            _ => std::task::Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        match this.poll_handshake(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        match &mut this.state {
            StreamState::Ready(s) => std::pin::Pin::new(&mut **s)
                .poll_shutdown(cx)
                .map_err(|e| tls_io_error("shutdown", e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}
