//! Port forwarding: accept on one address and relay each connection (or UDP peer) to a
//! target — socat's `TCP-LISTEN:PORT,fork TCP:HOST:PORT` — as a mode on the
//! [`serve`] core.
//!
//! Either side may be TCP, UDP or a Unix stream socket ([`Endpoint`]); a target may also
//! be a Unix datagram socket. Contract:
//! - Connections are served concurrently; each gets its own connection to the target,
//!   made with [`connect_happy`](crate::client::connect_happy) (TCP) under the connect
//!   timeout. A target that refuses (or times out) closes that client with a lingering
//!   close and the forwarder keeps running ([`Event::ConnectFailed`]). With
//!   [`ForwardOptions::retry`] a failed connect is tried again after a back-off
//!   ([`Retry`], each failure an [`Event::Retry`]) while the client waits. With
//!   [`ForwardOptions::send_proxy`] each target connection opens with a PROXY header
//!   naming the client; with [`ForwardOptions::proxy_from`] listed sources must send one
//!   (the core's [`proxied`](crate::serve::proxied) accept path).
//! - TLS (stunnel's two modes, either or both): with [`ForwardOptions::tls`] each client's
//!   handshake is done before its target is connected (a failed one closes the client,
//!   `closed` with the TLS error); with [`ForwardOptions::tls_target`] each target
//!   connection does a verified client handshake (after the PROXY header, if any), part
//!   of connecting to it. A TLS side is relayed by copying; its resets and lingering
//!   closes act on the socket under it.
//! - Stream to stream: [`relay_stream`](crate::relay::relay_stream) both ways; one side's
//!   end of input becomes `shutdown(SHUT_WR)` on the other (half-close propagated). A
//!   reset on one side is passed on as a reset to the other (`SO_LINGER` 0, close), and
//!   the `closed` event says `reason: reset` and `reset_by` which side. Between two plain
//!   TCP or Unix stream sockets, with no log, no TLS and no PROXY header sent, each
//!   direction moves its bytes with
//!   `splice(2)` through a pipe of its own ([`relay::splice`](crate::relay::splice)),
//!   falling back to copying where the kernel refuses; [`ForwardOptions::splice`] off
//!   copies always. The `closed` event says which (`zero_copy`).
//! - Stream client to datagram target: each chunk the client sends is one datagram; when
//!   the client ends its input, the session relays replies for
//!   [`ForwardOptions::eof_grace`] (default [`UDP_EOF_GRACE`], like socat's `-t 0.5`),
//!   then closes the client (FIN).
//! - UDP listener: one session per peer address (a bounded [`PeerTable`]), with its own
//!   socket (or stream) to the target; answers go back to that peer from the listening
//!   socket; a session ends after [`ForwardOptions::idle_timeout`] (default
//!   [`UDP_SESSION_IDLE`]) without a datagram either way.
//! - Admission (`--allow`/`--deny`, `--max-conns`) is the core's [`Admission`]: a refused
//!   client is closed at once (a datagram dropped) with an [`Event::Refused`].
//! - `EMFILE`/`ENFILE` on accept pause accepting for 100 ms ([`Event::AcceptPaused`]).
//! - Stop ([`Stop`]): accepting ends at [`Stop::stopping`]; datagram sessions, and stream
//!   to datagram sessions whose client has ended its input, end at once (`drained`);
//!   stream sessions go on until [`Stop::aborted`], then both their connections are
//!   aborted with RST (`aborted`, counted as cut in [`Event::Stopped`]). The Unix socket
//!   file the forwarder created is removed when [`Forwarder::run`] returns.
//!
//! The library never prints: everything that happens is an [`Event`] given to the sink.
//!
//! [`PeerTable`]: crate::serve::PeerTable

mod dgram;
mod endpoint;
pub(crate) mod stream;
mod target;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket, UnixListener};

use crate::access::AccessList;
use crate::client::ConnectOptions;
use crate::dump::SharedLog;
use crate::error::{Error, Result};
use crate::retry::Retry;
use crate::serve::{
    self, AddrRule, Admission, BindOptions, Event, EventSink, Local, Peer, ProxySources,
    SocketFile, Stop, Transport,
};
use crate::sockopt::SocketOptions;

pub use endpoint::{Endpoint, Proto};
// The core's, used by forward and proxy.
pub(crate) use crate::serve::StreamListener;
pub use target::default_host;

/// How long a UDP session lives without traffic when no idle timeout is given (60 s).
pub const UDP_SESSION_IDLE: Duration = Duration::from_secs(60);
/// How long a stream-to-UDP session still relays replies after its client's end of input
/// (0.5 s, socat's `-t` default), unless [`ForwardOptions::eof_grace`] says otherwise.
pub const UDP_EOF_GRACE: Duration = Duration::from_millis(500);
/// Default limit of concurrent sessions (`--max-conns`).
pub const DEFAULT_MAX_CONNS: usize = serve::DEFAULT_MAX_CONNS;
/// How long accepting pauses after `EMFILE`/`ENFILE` and other resource shortages.
pub const ACCEPT_PAUSE: Duration = serve::ACCEPT_PAUSE;

/// How long a TLS handshake with a client (or, without a connect timeout, with the
/// target) may take (10 s).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS toward the target (`--tls-target`).
#[derive(Debug, Clone)]
pub struct TargetTls {
    /// The client configuration: what is trusted (`--cacert`, or nothing with
    /// `--insecure`).
    pub config: Arc<crate::tls::rustls::ClientConfig>,
    /// The name sent as SNI and verified in the certificate (`--sni`); `None`: the
    /// target's host (an IP address is verified against the certificate's addresses, and
    /// sent without SNI).
    pub name: Option<String>,
}

/// How a forwarder behaves.
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    /// At most this many sessions at once (`--max-conns`); more are closed at once.
    pub max_conns: usize,
    /// End a session after this long without a byte either way (`-i`); UDP sessions use
    /// [`UDP_SESSION_IDLE`] when it is `None`.
    pub idle_timeout: Option<Duration>,
    /// Time allowed to connect to the target (`-w`), lookup included; per attempt.
    pub connect_timeout: Option<Duration>,
    /// How often to try the target again when a connect fails (`--retry`,
    /// `--retry-delay`); none by default.
    pub retry: Retry,
    /// Open every target connection with a PROXY protocol header in this version
    /// (`--send-proxy v1|v2`), naming the client (source) and the address it reached
    /// (destination); a Unix client is sent as `LOCAL` (v2) / `UNKNOWN` (v1). Stream
    /// listeners and stream targets only.
    pub send_proxy: Option<crate::proxy_protocol::Version>,
    /// Terminate TLS from each client with this configuration (`--tls`, stunnel's server
    /// mode): the handshake is done (within [`TLS_HANDSHAKE_TIMEOUT`]) before the target
    /// is connected. Stream listeners only.
    pub tls: Option<Arc<crate::tls::rustls::ServerConfig>>,
    /// Originate TLS to the target (`--tls-target`, stunnel's client mode). Stream
    /// targets only.
    pub tls_target: Option<TargetTls>,
    /// Stream client to UDP target: after the client's end of input, relay replies for
    /// this long, then close the session (`-q`; default [`UDP_EOF_GRACE`]).
    pub eof_grace: Duration,
    /// Which peers may use the forwarder (`--allow`/`--deny`).
    pub access: AccessList,
    /// The sources whose connections must open with a PROXY protocol header, naming the
    /// original client (`--accept-proxy-from`; TCP listeners only).
    pub proxy_from: ProxySources,
    /// Family and numeric-only flags for the lookups of both addresses (`-4`/`-6`/`-n`).
    pub lookup: ConnectOptions,
    /// Socket options for the listener (inherited by accepted sockets) and the target
    /// connections.
    pub sockopts: SocketOptions,
    /// Where `-x`/`-o` record both directions of every session, if anywhere (each
    /// session labelled `#id peer`; a write error stops it, see [`SharedLog`]).
    pub log: Option<Arc<SharedLog>>,
    /// Reach a TCP target through this proxy (`--proxy …`; [`crate::proxy::client`]):
    /// the `connected` event then names the proxy's address.
    pub proxy: Option<crate::proxy::client::Proxy>,
    /// Relay TCP and Unix stream sessions with `splice(2)` (zero-copy) when nothing needs
    /// to see the bytes (no `log`, no TLS, no `send_proxy`: plain sockets on both sides);
    /// default on. Off
    /// (`--no-splice`), every byte is copied through user space.
    pub splice: bool,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            max_conns: DEFAULT_MAX_CONNS,
            idle_timeout: None,
            connect_timeout: None,
            retry: Retry::default(),
            send_proxy: None,
            tls: None,
            tls_target: None,
            eof_grace: UDP_EOF_GRACE,
            access: AccessList::default(),
            proxy_from: ProxySources::default(),
            lookup: ConnectOptions::default(),
            sockopts: SocketOptions::default(),
            log: None,
            proxy: None,
            splice: true,
        }
    }
}

enum Bound {
    Tcp(TcpListener),
    Udp(Arc<UdpSocket>),
    Unix(UnixListener),
}

/// A bound forwarder, ready to [`run`](Forwarder::run).
pub struct Forwarder {
    bound: Bound,
    local: Peer,
    transport: Transport,
    file: Option<SocketFile>,
    applied: Vec<crate::sockopt::Applied>,
    target: Endpoint,
    opts: ForwardOptions,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("local", &self.local)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// What every session of one forwarder shares: the core ([`serve::Core`]: events, stop,
/// admission, how a session's end is reported) and the target.
pub(crate) struct Ctx {
    pub(crate) target: Endpoint,
    pub(crate) target_text: String,
    pub(crate) opts: ForwardOptions,
    pub(crate) core: serve::Core,
}

impl std::ops::Deref for Ctx {
    type Target = serve::Core;
    fn deref(&self) -> &serve::Core {
        &self.core
    }
}

impl Forwarder {
    /// Binds the listening side with the core's binder ([`serve::bind_ip`] after
    /// [`serve::bind_addr`]'s address rule, or [`serve::bind_unix`]). Must run inside a
    /// tokio runtime.
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a Unix datagram
    ///   listener (not supported), `--allow`/`--deny` on a Unix listener, a proxy for a
    ///   target that is not TCP.
    /// - [`ErrorKind::Gai`](crate::ErrorKind::Gai) when the listen host does not resolve.
    /// - [`ErrorKind::Os`](crate::ErrorKind::Os) from `socket(2)`, `setsockopt(2)`,
    ///   `bind(2)` (named with the address: `bind 127.0.0.1:80: [Errno 13] Permission
    ///   denied`) or `listen(2)`.
    pub fn bind(listen: &Endpoint, target: Endpoint, opts: ForwardOptions) -> Result<Forwarder> {
        if opts.proxy.is_some()
            && !matches!(
                target,
                Endpoint::Ip {
                    proto: Proto::Tcp,
                    ..
                }
            )
        {
            return Err(Error::invalid_input(
                "proxy",
                format!("--proxy reaches TCP targets only, not {target}"),
            ));
        }
        if matches!(listen, Endpoint::Unix(_)) && !opts.access.is_open() {
            return Err(Error::invalid_input(
                "access",
                "--allow/--deny match IP peers; a Unix listener has none",
            ));
        }
        if opts.send_proxy.is_some()
            && (listen.transport().is_datagram() || target.transport().is_datagram())
        {
            return Err(Error::invalid_input(
                "send-proxy",
                "a PROXY header is sent from a stream listener to a stream target (not UDP)",
            ));
        }
        if opts.tls.is_some() {
            listen.check_tls_listener()?;
        }
        if let Some(t) = &opts.tls_target {
            match &target {
                Endpoint::Ip {
                    proto: Proto::Tcp, ..
                } => {}
                Endpoint::Unix(_) if t.name.is_some() => {}
                Endpoint::Unix(_) => {
                    return Err(Error::invalid_input(
                        "tls",
                        "--tls-target to a Unix socket needs --sni NAME (the name to verify)",
                    ));
                }
                _ => {
                    return Err(Error::invalid_input(
                        "tls",
                        "--tls-target needs a stream target (TCP or Unix), not UDP",
                    ));
                }
            }
        }
        if listen.transport() != Transport::Tcp && !opts.proxy_from.is_empty() {
            return Err(Error::invalid_input(
                "accept-proxy-from",
                format!("{listen}: a PROXY header is read on TCP listeners only"),
            ));
        }
        let bopts = BindOptions {
            sockopts: opts.sockopts.clone(),
            ..BindOptions::default()
        };
        let listener = match listen {
            Endpoint::UnixDgram(_) => {
                return Err(Error::invalid_input(
                    "listen",
                    format!("{listen}: a Unix datagram socket can be a target, not yet a listener"),
                ));
            }
            Endpoint::Unix(addr) => serve::bind_unix(addr, Transport::Unix, &bopts)?,
            Endpoint::Ip { host, port, .. } => {
                let rule = AddrRule {
                    family: opts.lookup.family,
                    numeric: opts.lookup.numeric,
                    dual_stack: false,
                };
                let addr = serve::bind_addr(host.as_deref(), port, listen.socktype(), &rule)?;
                serve::bind_ip(addr, listen.transport(), &bopts)?
            }
        };
        let (local, transport) = (listener.local().clone(), listener.transport());
        let applied = listener.applied().to_vec();
        let (socket, file) = listener.into_parts();
        let io = |e| Error::from_io("listen", e);
        let bound = match transport {
            Transport::Tcp => Bound::Tcp(TcpListener::from_std(socket.into()).map_err(io)?),
            Transport::Udp => Bound::Udp(Arc::new(UdpSocket::from_std(socket.into()).map_err(io)?)),
            _ => Bound::Unix(UnixListener::from_std(socket.into()).map_err(io)?),
        };
        Ok(Forwarder {
            bound,
            local,
            transport,
            file,
            applied,
            target,
            opts,
        })
    }

    /// The address bound (the port the system chose for port 0).
    pub fn local(&self) -> &Peer {
        &self.local
    }

    /// The listening transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The `listening` event of this forwarder.
    pub fn listening(&self) -> Event {
        Event::Listening {
            transport: self.transport,
            local: Local(self.local.clone()),
            role: None,
        }
    }

    /// The socket options set on the listening socket, as read back with `getsockopt(2)`.
    pub fn applied(&self) -> &[crate::sockopt::Applied] {
        &self.applied
    }

    /// Serves until `stop` says stop (see the module docs), then drains: waits for the
    /// sessions still open until they end or are aborted, reports
    /// [`Event::Stopping`] and [`Event::Stopped`] (with the number cut), and removes the
    /// Unix socket file it created.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `accept(2)`/`recvfrom(2)` for an error
    /// that would repeat (not `EMFILE`/`ENFILE`, which pause accepting, nor
    /// `ECONNABORTED`); the sessions open then are aborted.
    pub async fn run(self, events: EventSink, stop: Stop) -> Result<()> {
        let Forwarder {
            bound,
            file,
            target,
            opts,
            ..
        } = self;
        let admission = Admission::with_proxy_sources(
            opts.access.clone(),
            opts.max_conns,
            opts.proxy_from.clone(),
        );
        let ctx = Arc::new(Ctx {
            target_text: target.to_string(),
            target,
            opts,
            core: serve::Core::new(events, stop.clone(), admission, serve::RelayTo::Target),
        });
        let result = match bound {
            Bound::Tcp(l) => stream::accept_loop(StreamListener::Tcp(l), &ctx).await,
            Bound::Unix(l) => stream::accept_loop(StreamListener::Unix(l), &ctx).await,
            Bound::Udp(s) => dgram::dispatch(s, &ctx).await,
        };
        if result.is_err() {
            stop.abort();
        }
        ctx.wind_down().await;
        drop(file);
        result
    }
}
