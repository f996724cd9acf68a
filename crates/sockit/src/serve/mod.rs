//! The one server core: what every server of the library (echo, forward, and the coming
//! listen, proxy, metrics …) is made of, so that none carries its own copy.
//!
//! | concern | here |
//! | --- | --- |
//! | which address of a name to bind | [`bind_addr`] with an [`AddrRule`] |
//! | bind (IP, Unix, inherited fds), socket-file removal | [`bind_ip`], [`bind_unix`], [`Listener`], [`SocketFile`] |
//! | socket activation (`LISTEN_FDS`) | [`activation`] |
//! | accepting: pause on `EMFILE`, skip lost connections, end at a stop | [`StreamListener`] |
//! | transport word, peers in one spelling | [`Transport`], [`Peer`] |
//! | who may in, how many at once | [`Admission`], [`Permit`], [`Refusal`] |
//! | the PROXY protocol on the accept path (`--accept-proxy-from`) | [`proxied`], [`Admission::admit_tcp`] |
//! | ids, `#N peer` labels, traffic taps, the UDP peer table | [`Session`], [`PeerTable`] |
//! | closing: lingering close, abort with RST (TLS too: [`WithFd`]) | [`close`] |
//! | stop: drain with a deadline, then abort | [`Stop`] |
//! | what a server's sessions share; how a session's end is reported and counted | `context::Core` |
//! | what happened, in one vocabulary | [`Event`], [`Severity`] |
//! | counters of the events: totals, Prometheus endpoint | [`metrics`] |
//!
//! Contract for a server built on it:
//! - it binds through [`bind`] and keeps the [`SocketFile`] guard until it stops;
//! - it admits each peer through one [`Admission`] and holds the [`Permit`] for the life
//!   of the session (a stop waits on [`Admission::idle`]);
//! - every accept loop selects on [`Stop::stopping`] and every session on
//!   [`Stop::aborted`], aborting its sockets with [`close::abort`] when it resolves;
//! - a session the server ends itself closes with [`close::linger_close`]; a reset from
//!   one side is passed on to the other with [`close::abort`], never as a FIN;
//! - everything it has to say is an [`Event`] given to an [`EventSink`]; it never prints.

pub mod accept;
pub mod activation;
pub mod admit;
pub mod bind;
pub mod close;
pub(crate) mod context;
pub mod event;
pub mod metrics;
pub mod peer;
pub mod proxied;
pub mod session;
pub mod stop;

use std::sync::Arc;

pub use accept::{ACCEPT_PAUSE, Accepted, Acceptor, StreamListener, accept_each};
pub use admit::{Admission, Admitted, DEFAULT_MAX_CONNS, MAX_CONNS, Permit, Refusal, Refused};
pub use bind::{
    AddrRule, BindOptions, Listener, Origin, ReusePort, SocketFile, bind_addr, bind_ip, bind_unix,
};
pub(crate) use context::{Core, Ending, RelayTo};
pub use event::{
    Aim, CloseReason, Closed, Event, Local, ProxiedFrom, Reached, Severity, Side, Target, Via,
};
pub use metrics::{Metrics, Stats};
pub use peer::{Peer, Transport};
pub use proxied::ProxySources;
pub use session::{PeerTable, Session, SessionChannels, offer_datagram};
pub use stop::{Phase, Stop, wind_down};

/// The callback a server gives its [`Event`]s to (it may run on any thread: keep it
/// short).
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// A connected stream a server can relay, close the lingering way, or abort: TCP or Unix,
/// boxed as [`BoxStream`] so one session type serves both.
pub trait Stream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + std::os::fd::AsFd + Unpin + Send + 'static
{
    /// The stream as [`Any`](std::any::Any), so a relay can find the plain socket under a
    /// box and splice it ([`SpliceEnd::socket`](crate::relay::SpliceEnd::socket)). Call it
    /// on the stream, not the box: `(*boxed).as_any()`.
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<T> Stream for T
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + std::os::fd::AsFd + Unpin + Send + 'static,
{
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A boxed [`Stream`].
pub type BoxStream = Box<dyn Stream>;

/// A stream over a socket (TLS) paired with a duplicate of the socket's descriptor, so it
/// is a [`Stream`]: it closes the lingering way through its own `shutdown` and is aborted
/// (`SO_LINGER` 0 on the socket) as the plain socket would be.
#[derive(Debug)]
pub struct WithFd<S> {
    inner: S,
    fd: std::os::fd::OwnedFd,
}

impl<S> WithFd<S> {
    /// `inner` with `fd`, a descriptor of the socket under it (`dup(2)` one with
    /// [`AsFd::as_fd`](std::os::fd::AsFd::as_fd)`.try_clone_to_owned()`).
    pub fn new(inner: S, fd: std::os::fd::OwnedFd) -> WithFd<S> {
        WithFd { inner, fd }
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S> std::os::fd::AsFd for WithFd<S> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WithFd<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WithFd<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
