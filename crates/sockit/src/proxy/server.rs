//! `sockit proxy`: a SOCKS5, SOCKS4/4a and HTTP proxy server on one TCP port, a mode on
//! the [`serve`] core.
//!
//! Contract:
//! - The protocol of each connection is told by its first byte ([`Protocol::detect`]);
//!   the handshake is [`session::accept_request`]'s: bounded in time
//!   ([`ProxyOptions::session`]'s `handshake_timeout`) and bytes, every malformed or
//!   refused case answered with the protocol's own reply, then the client closed with a
//!   lingering close and an [`Event::HandshakeFailed`].
//! - An accepted request is reported ([`Event::Request`]: protocol, command, user, the
//!   target as named); the target is resolved once, its addresses checked against the
//!   destination policy ([`ProxyOptions::dest`]) — so a name cannot smuggle in a denied
//!   address — and connected with Happy Eyeballs within [`ProxyOptions::connect_timeout`]
//!   ([`Event::Connected`] with the address, or [`Event::ConnectFailed`] and the
//!   protocol's failure reply).
//! - `CONNECT` (SOCKS and HTTP) and plain HTTP requests with an absolute URI are relayed
//!   by the same relay as [`forward`](crate::forward)'s: half-close passed on, a reset
//!   passed on as a reset, the idle timeout, the stop's drain and abort. A plain HTTP
//!   request goes to the origin server rewritten ([`http::parse_request`]) and the
//!   session ends with that exchange (`Connection: close`).
//! - SOCKS5 and SOCKS4 `BIND` get a listening socket on the address the client reached
//!   and one incoming connection from the host the request named, relayed the same way
//!   (see [`ProxyOptions::bind_timeout`]).
//! - SOCKS5 `UDP ASSOCIATE` gets a relay socket on the address the client reached
//!   ([`UdpAssociation`]) for as long as its TCP connection lasts.
//! - Admission (`--allow`/`--deny`, `--max-conns`), `EMFILE` pauses, `-x`/`-o` taps and
//!   the stop (drain with a deadline, then RST) are the core's, as for every server.
//!
//! [`http::parse_request`]: super::http::parse_request

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::one_request::OneRequest;
use super::policy::DestPolicy;
use super::session::{self, Command, ServerConfig, TargetError};
use super::udp::{UdpAssociation, UdpEnd, UdpSeen, UdpTotals};
use super::{Malformed, Protocol};
use crate::access::AccessList;
use crate::addr::{Port, SockType};
use crate::client::ConnectOptions;
use crate::dump::SharedLog;
use crate::error::{Error, ErrorKind, Result};
use crate::forward::StreamListener;
use crate::forward::stream::relay_streams;
use crate::relay::{Counters, Direction, Tap, Totals};
use crate::serve::close::{abort, linger_close};
use crate::serve::{
    self, AddrRule, Admission, BindOptions, BoxStream, CloseReason, Ending, Event, EventSink,
    Local, Peer, ProxySources, Session, Stop, Target, Transport,
};
use crate::sockopt::SocketOptions;

/// The port `sockit proxy` listens on when none is given (1080, SOCKS's).
pub const DEFAULT_PORT: u16 = 1080;
/// How long connecting to a target may take when nothing else is asked (30 s).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a `BIND` waits for its one incoming connection when nothing else is asked
/// (60 s, `--bind-timeout`).
pub const DEFAULT_BIND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long writing a reply to a client may take (5 s).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a proxy server behaves.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// At most this many sessions at once (`--max-conns`).
    pub max_conns: usize,
    /// End a session after this long without a byte either way (`-i`).
    pub idle_timeout: Option<Duration>,
    /// Time to resolve and connect to a target (`-w`).
    pub connect_timeout: Option<Duration>,
    /// How long a `BIND` waits for its incoming connection (`--bind-timeout`).
    pub bind_timeout: Duration,
    /// Which clients may use the proxy (`--allow`/`--deny`).
    pub access: AccessList,
    /// Sources whose connections must open with a PROXY protocol header naming the
    /// client (`--accept-proxy-from`, the core's [`proxied`](crate::serve::proxied)).
    pub proxy_from: ProxySources,
    /// Where clients may be connected (`--allow-dest`/`--deny-dest`).
    pub dest: DestPolicy,
    /// The handshakes: credentials, time limit, HTTP head limits, UDP ASSOCIATE.
    pub session: ServerConfig,
    /// `-4`/`-6`/`-n` for the listen address; `-4`/`-6` for target lookups.
    pub lookup: ConnectOptions,
    /// Socket options for the listener and the target connections.
    pub sockopts: SocketOptions,
    /// Where `-x`/`-o` record both directions of every relayed session.
    pub log: Option<Arc<SharedLog>>,
    /// Report every datagram a `UDP ASSOCIATE` relays ([`Event::Relayed`], `-vv`; off by
    /// default: a busy association would make one event per datagram). Dropped ones are
    /// always reported ([`Event::Dropped`]).
    pub datagram_events: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            max_conns: serve::DEFAULT_MAX_CONNS,
            idle_timeout: None,
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            bind_timeout: DEFAULT_BIND_TIMEOUT,
            access: AccessList::default(),
            proxy_from: ProxySources::default(),
            dest: DestPolicy::default(),
            session: ServerConfig::default(),
            lookup: ConnectOptions::default(),
            sockopts: SocketOptions::default(),
            log: None,
            datagram_events: false,
        }
    }
}

/// A bound proxy server, ready to [`run`](ProxyServer::run).
#[derive(Debug)]
pub struct ProxyServer {
    listener: TcpListener,
    local: Peer,
    applied: Vec<crate::sockopt::Applied>,
    opts: ProxyOptions,
}

/// What every session of one proxy shares: the core ([`serve::Core`]) and the options.
struct Ctx {
    opts: ProxyOptions,
    core: serve::Core,
}

impl std::ops::Deref for Ctx {
    type Target = serve::Core;
    fn deref(&self) -> &serve::Core {
        &self.core
    }
}

impl ProxyServer {
    /// Binds `host` `port` (TCP) with the core's binder: [`serve::bind_addr`]'s rule (no
    /// host: 127.0.0.1, or ::1 with `-6`), then [`serve::bind_ip`]. Must run inside a tokio
    /// runtime.
    ///
    /// # Errors
    /// - [`ErrorKind::Gai`] when the host does not resolve.
    /// - [`ErrorKind::Os`] from `socket(2)`, `setsockopt(2)`, `bind(2)` (named with the
    ///   address) or `listen(2)`.
    pub fn bind(host: Option<&str>, port: &Port, opts: ProxyOptions) -> Result<ProxyServer> {
        let rule = AddrRule {
            family: opts.lookup.family,
            numeric: opts.lookup.numeric,
            dual_stack: false,
        };
        let addr = serve::bind_addr(host, port, SockType::Stream, &rule)?;
        let bopts = BindOptions {
            sockopts: opts.sockopts.clone(),
            ..BindOptions::default()
        };
        let listener = serve::bind_ip(addr, Transport::Tcp, &bopts)?;
        let local = listener.local().clone();
        let applied = listener.applied().to_vec();
        let (socket, _) = listener.into_parts();
        let listener =
            TcpListener::from_std(socket.into()).map_err(|e| Error::from_io("listen", e))?;
        Ok(ProxyServer {
            listener,
            local,
            applied,
            opts,
        })
    }

    /// The address bound.
    pub fn local(&self) -> &Peer {
        &self.local
    }

    /// True when the bound address is a loopback address (the CLI warns about a proxy
    /// reachable from elsewhere without credentials).
    pub fn is_loopback(&self) -> bool {
        matches!(&self.local, Peer::Ip(a) if a.ip().is_loopback())
    }

    /// The `listening` event of this server.
    pub fn listening(&self) -> Event {
        Event::Listening {
            transport: Transport::Tcp,
            local: Local(self.local.clone()),
            role: None,
        }
    }

    /// The socket options set on the listening socket, as read back.
    pub fn applied(&self) -> &[crate::sockopt::Applied] {
        &self.applied
    }

    /// Serves until `stop` says stop, then drains as every server does (see
    /// [`Forwarder::run`](crate::forward::Forwarder::run)).
    ///
    /// # Errors
    /// [`ErrorKind::Os`] from `accept(2)` for an error that would repeat; the sessions
    /// open then are aborted.
    pub async fn run(self, events: EventSink, stop: Stop) -> Result<()> {
        let admission = Admission::with_proxy_sources(
            self.opts.access.clone(),
            self.opts.max_conns,
            self.opts.proxy_from.clone(),
        );
        let ctx = Arc::new(Ctx {
            opts: self.opts,
            core: serve::Core::new(
                events,
                stop.clone(),
                admission.clone(),
                serve::RelayTo::Target,
            ),
        });
        let listener = StreamListener::Tcp(self.listener);
        let c = Arc::clone(&ctx);
        let result = ctx
            .accept_each(&listener, move |stream, session| {
                tokio::spawn(session_task(stream, session, Arc::clone(&c)));
            })
            .await;
        if result.is_err() {
            stop.abort();
        }
        ctx.wind_down().await;
        result
    }
}

/// Writes `bytes` to the client within [`REPLY_TIMEOUT`].
async fn reply(client: &mut BoxStream, bytes: &[u8]) -> Result<()> {
    let write = async {
        client.write_all(bytes).await?;
        client.flush().await
    };
    match tokio::time::timeout(REPLY_TIMEOUT, write).await {
        Ok(r) => r.map_err(|e| Error::from_io("send", e)),
        Err(_) => Err(Error::timeout("send")),
    }
}

async fn session_task(mut client: BoxStream, session: Session, ctx: Arc<Ctx>) {
    let id = session.id();
    ctx.accepted(&session);
    let handshake = tokio::select! {
        r = session::accept_request(&mut client, &ctx.opts.session) => Some(r),
        _ = ctx.stop.aborted() => None,
    };
    let Some(handshake) = handshake else {
        abort(client);
        return ctx.closed(&session, Ending::new(CloseReason::Aborted));
    };
    let req = match handshake {
        Ok(req) => req,
        Err(refusal) => {
            ctx.emit(Event::HandshakeFailed {
                id,
                protocol: refusal.protocol.map(Protocol::as_str),
                reason: refusal.reason.as_str(),
                message: refusal.message.clone(),
            });
            linger_close(&mut client).await;
            let kind = match refusal.reason {
                Malformed::AuthFailed => ErrorKind::Proxy,
                Malformed::Timeout => ErrorKind::Timeout,
                _ => ErrorKind::Protocol,
            };
            let error = Error::new(kind, "proxy handshake", None, refusal.message);
            return ctx.closed(&session, Ending::new(CloseReason::Error).error(Some(error)));
        }
    };
    ctx.emit(Event::Request {
        id,
        protocol: req.protocol.as_str(),
        command: req.command.as_str(),
        user: req.user.clone(),
        target_host: req.target.host(),
        target_port: req.target.port(),
    });
    if req.command == Command::UdpAssociate {
        return udp_session(client, session, req, ctx).await;
    }
    if req.command == Command::Bind {
        return bind_session(client, session, req, ctx).await;
    }
    let family = ctx.opts.lookup.family;
    let connected = tokio::select! {
        c = session::connect_target(&req.target, &ctx.opts.dest, family, ctx.opts.connect_timeout) => Some(c),
        _ = ctx.stop.aborted() => None,
    };
    let Some(connected) = connected else {
        abort(client);
        return ctx.closed(&session, Ending::new(CloseReason::Aborted));
    };
    let (target, addr) = match connected {
        Ok(c) => c,
        Err(failure) => return failed(client, &session, &req, failure, &ctx).await,
    };
    if let Err(e) = ctx.opts.sockopts.apply(&target) {
        return failed(client, &session, &req, TargetError::Failed(e), &ctx).await;
    }
    ctx.emit(Event::Connected {
        id,
        target: Target(Peer::Ip(addr)).into(),
    });
    let bound = target
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut target: BoxStream = Box::new(target);
    // The answer to the client, then what the target must see first: a plain HTTP
    // request's rewritten head, and the bytes the client sent after its request (of a
    // plain request, its body and nothing after it: OneRequest).
    let mut first = Vec::new();
    let mut pipelined = None;
    if let Command::HttpForward { head, body } = &req.command {
        first.extend_from_slice(head);
        let mut one = OneRequest::new(client, *body);
        match one.feed(&req.leftover) {
            Ok(n) => first.extend_from_slice(&req.leftover[..n]),
            Err(e) => {
                tokio::join!(linger_close(one), linger_close(target));
                return ctx.closed(&session, Ending::new(CloseReason::Error).error(Some(e)));
            }
        }
        pipelined = Some(one.pipelined());
        client = Box::new(one);
    } else {
        first.extend_from_slice(&req.leftover);
    }
    let start = async {
        reply(&mut client, &req.success_reply(bound)).await?;
        if !first.is_empty() {
            reply(&mut target, &first).await?;
        }
        Ok::<(), Error>(())
    };
    if let Err(e) = start.await {
        tokio::join!(linger_close(client), linger_close(target));
        return ctx.closed(&session, Ending::new(CloseReason::Error).error(Some(e)));
    }
    let end = relay(client, target, first.len(), &session, &ctx).await;
    if pipelined.is_some_and(|p| p.load(std::sync::atomic::Ordering::SeqCst)) {
        ctx.emit(Event::Warning {
            message: format!(
                "#{id}: the client sent more after its plain HTTP request (a pipelined \
                 request?): dropped, not relayed; one request per connection"
            ),
        });
    }
    ctx.closed(&session, end);
}

/// Relays `client` and `target` with the relay every session uses (`forward`'s), `sent`
/// bytes already sent to the target on the client's behalf.
async fn relay(
    client: BoxStream,
    target: BoxStream,
    sent: usize,
    session: &Session,
    ctx: &Ctx,
) -> Ending {
    let tap = session.tap(ctx.opts.log.as_ref());
    let tap = tap.as_ref().map(|t| t as &dyn Tap);
    let counters = Counters::new();
    // What went to the target before the relay counts as the client's bytes.
    counters.add(Direction::Send, sent, false);
    relay_streams(
        client,
        target,
        ctx.opts.idle_timeout,
        tap,
        &counters,
        &ctx.stop,
        true,
    )
    .await
}

/// SOCKS `BIND` (RFC 1928 §4 and §6; SOCKS4 command 2): the request's address checked
/// against the destination policy, a listening socket on the address the client reached
/// (port 0), the first reply naming it, one incoming connection within
/// [`ProxyOptions::bind_timeout`] from the requested host (any host when the request
/// names the unspecified address; a connection from another host is refused with an
/// [`Event::BindRefused`] and the socket keeps waiting), the second reply naming the
/// peer, then the relay. A client that closes while waiting ends it.
async fn bind_session(
    mut client: BoxStream,
    session: Session,
    req: session::Request,
    ctx: Arc<Ctx>,
) {
    let id = session.id();
    let family = ctx.opts.lookup.family;
    // The host expected to connect: checked against the policy as a CONNECT target is.
    let expected = match session::resolve(&req.target, family, ctx.opts.connect_timeout).await {
        Ok(a) => a,
        Err(e) => return failed(client, &session, &req, TargetError::Failed(e), &ctx).await,
    };
    let (allowed, denied): (Vec<_>, Vec<_>) = expected
        .into_iter()
        .partition(|a| ctx.opts.dest.permits(*a));
    if allowed.is_empty() {
        let denied = TargetError::Denied {
            target: req.target.clone(),
            addresses: denied,
        };
        return failed(client, &session, &req, denied, &ctx).await;
    }
    let local_ip = socket2::SockRef::from(&client)
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.ip());
    let Some(local_ip) = local_ip else {
        let e = Error::invalid_input("proxy", "BIND needs an IP connection");
        return failed(client, &session, &req, TargetError::Failed(e), &ctx).await;
    };
    let listener = match TcpListener::bind(SocketAddr::new(local_ip, 0)).await {
        Ok(l) => l,
        Err(e) => {
            let e = Error::from_io("bind", e);
            return failed(client, &session, &req, TargetError::Failed(e), &ctx).await;
        }
    };
    let bound = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            let e = Error::from_io("getsockname", e);
            return failed(client, &session, &req, TargetError::Failed(e), &ctx).await;
        }
    };
    ctx.emit(Event::Bound {
        id,
        local: Local(Peer::Ip(bound)),
    });
    if let Err(e) = reply(&mut client, &req.success_reply(bound)).await {
        linger_close(&mut client).await;
        return ctx.closed(&session, Ending::new(CloseReason::Error).error(Some(e)));
    }
    let waited = tokio::select! {
        w = wait_for_peer(&listener, &mut client, &allowed, ctx.opts.bind_timeout, id, &ctx) => Some(w),
        _ = ctx.stop.aborted() => None,
    };
    drop(listener);
    let (incoming, peer, early) = match waited {
        None => {
            abort(client);
            return ctx.closed(&session, Ending::new(CloseReason::Aborted));
        }
        Some(Waited::Peer(s, p, early)) => (s, p, early),
        Some(Waited::ClientClosed) => {
            linger_close(&mut client).await;
            return ctx.closed(&session, Ending::new(CloseReason::Eof));
        }
        Some(Waited::Failed(e)) => {
            return failed(client, &session, &req, TargetError::Failed(e), &ctx).await;
        }
    };
    if let Err(e) = ctx.opts.sockopts.apply(&incoming) {
        return failed(client, &session, &req, TargetError::Failed(e), &ctx).await;
    }
    ctx.emit(Event::Connected {
        id,
        target: Target(Peer::Ip(peer)).into(),
    });
    let mut incoming: BoxStream = Box::new(incoming);
    let start = async {
        reply(&mut client, &req.success_reply(peer)).await?;
        let first = [&req.leftover[..], &early].concat();
        if !first.is_empty() {
            reply(&mut incoming, &first).await?;
        }
        Ok::<usize, Error>(first.len())
    };
    let sent = match start.await {
        Ok(n) => n,
        Err(e) => {
            tokio::join!(linger_close(client), linger_close(incoming));
            return ctx.closed(&session, Ending::new(CloseReason::Error).error(Some(e)));
        }
    };
    let end = relay(client, incoming, sent, &session, &ctx).await;
    ctx.closed(&session, end);
}

/// How a `BIND`'s wait ended.
enum Waited {
    /// The expected host connected (from this address); the bytes the client sent while
    /// it waited.
    Peer(tokio::net::TcpStream, SocketAddr, Vec<u8>),
    /// The client closed its connection first.
    ClientClosed,
    /// The time ran out (`ErrorKind::Timeout`) or `accept(2)` failed.
    Failed(Error),
}

/// Waits up to `timeout` for one connection to `listener` from an address in `expected`
/// (any when that address is unspecified), refusing others, while watching the client
/// for its close (keeping at most [`session::READ_CHUNK`] bytes it sends meanwhile).
async fn wait_for_peer(
    listener: &TcpListener,
    client: &mut BoxStream,
    expected: &[SocketAddr],
    timeout: Duration,
    id: u64,
    ctx: &Ctx,
) -> Waited {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut early = Vec::new();
    let mut chunk = [0u8; session::READ_CHUNK];
    // The address is checked, not the port (the peer's port is its own choice); a peer
    // let in by an unspecified address must still pass the destination policy.
    let matches = |p: SocketAddr| {
        ctx.opts.dest.permits(p)
            && expected
                .iter()
                .any(|e| e.ip().is_unspecified() || e.ip() == p.ip())
    };
    loop {
        let room = early.len() < session::READ_CHUNK;
        tokio::select! {
            a = listener.accept() => match a {
                Ok((s, p)) if matches(p) => return Waited::Peer(s, p, early),
                Ok((s, p)) => {
                    ctx.emit(Event::BindRefused { id, peer: Peer::Ip(p), reason: "unexpected_peer" });
                    abort(Box::new(s));
                }
                Err(e) => return Waited::Failed(Error::from_io("accept", e)),
            },
            r = client.read(&mut chunk), if room => match r {
                Ok(0) | Err(_) => return Waited::ClientClosed,
                Ok(n) => early.extend_from_slice(&chunk[..n]),
            },
            _ = tokio::time::sleep_until(deadline) => {
                return Waited::Failed(Error::timeout("accept"));
            }
        }
    }
}

/// A target that could not be reached or was denied: the protocol's failure reply, a
/// `connect_failed` event, a lingering close.
async fn failed(
    mut client: BoxStream,
    session: &Session,
    req: &session::Request,
    failure: TargetError,
    ctx: &Ctx,
) {
    let error = failure.to_error();
    let _ = reply(&mut client, &req.failure_reply(&failure)).await;
    ctx.emit(Event::ConnectFailed {
        id: session.id(),
        target: req.target.to_string(),
        error: error.clone(),
    });
    linger_close(&mut client).await;
    ctx.closed(session, Ending::new(CloseReason::Error).error(Some(error)));
}

/// SOCKS5 `UDP ASSOCIATE`: a relay socket on the address the client reached, for as long
/// as the TCP connection lasts.
async fn udp_session(
    mut client: BoxStream,
    session: Session,
    req: session::Request,
    ctx: Arc<Ctx>,
) {
    let local_ip = socket2::SockRef::from(&client)
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.ip());
    let peer_ip = match session.peer() {
        Peer::Ip(a) => Some(a.ip()),
        _ => None,
    };
    let (Some(local_ip), Some(peer_ip)) = (local_ip, peer_ip) else {
        let e = Error::invalid_input("proxy", "UDP ASSOCIATE needs an IP connection");
        return failed(client, &session, &req, TargetError::Failed(e), &ctx).await;
    };
    let assoc = match UdpAssociation::bind(local_ip, peer_ip, &req.target).await {
        Ok(a) => a,
        Err(e) => return failed(client, &session, &req, TargetError::Failed(e), &ctx).await,
    };
    let relay_addr = match assoc.local_addr() {
        Ok(a) => a,
        Err(e) => return failed(client, &session, &req, TargetError::Failed(e), &ctx).await,
    };
    if let Err(e) = reply(&mut client, &req.success_reply(relay_addr)).await {
        linger_close(&mut client).await;
        return ctx.closed(&session, Ending::new(CloseReason::Error).error(Some(e)));
    }
    let mut totals = UdpTotals::default();
    let id = session.id();
    let seen = |s: UdpSeen| match s {
        UdpSeen::Relayed {
            client,
            target,
            bytes,
            to_target,
        } if ctx.opts.datagram_events => ctx.emit(Event::Relayed {
            id,
            transport: Transport::Udp,
            peer: Peer::Ip(client),
            target: Target(Peer::Ip(target)),
            bytes,
            direction: if to_target { "to_target" } else { "to_client" },
        }),
        UdpSeen::Relayed { .. } => {}
        UdpSeen::Dropped {
            from,
            bytes,
            reason,
        } => ctx.emit(Event::Dropped {
            transport: Transport::Udp,
            peer: Peer::Ip(from),
            bytes,
            reason,
            error: None,
        }),
    };
    let end = {
        let run = assoc.run(
            &mut client,
            &ctx.opts.dest,
            ctx.opts.lookup.family,
            ctx.opts.idle_timeout,
            &mut totals,
            &seen,
        );
        tokio::select! {
            end = run => Some(end),
            _ = ctx.stop.aborted() => None,
        }
    };
    let (reason, error) = match end {
        None => {
            abort(client);
            return ctx.closed(
                &session,
                Ending::new(CloseReason::Aborted).datagrams(datagram_totals(totals)),
            );
        }
        Some(UdpEnd::Eof) => (CloseReason::Eof, None),
        Some(UdpEnd::Idle) => (CloseReason::Idle, Some(Error::timeout("idle"))),
        Some(UdpEnd::Error(e)) => (CloseReason::Error, Some(e)),
    };
    linger_close(&mut client).await;
    ctx.closed(
        &session,
        Ending::new(reason)
            .datagrams(datagram_totals(totals))
            .error(error),
    );
}

/// An association's counts as the totals of its `closed` event (the client's view).
fn datagram_totals(u: UdpTotals) -> Totals {
    Totals {
        bytes_sent: u.bytes_sent,
        bytes_received: u.bytes_received,
        datagrams_sent: u.datagrams_sent,
        datagrams_received: u.datagrams_received,
    }
}
