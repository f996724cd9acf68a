//! What servers report, in one vocabulary: [`Event`] serialises (serde) to the `--json`
//! object of every server, prints (`Display`) as its `-v` line, and says by its
//! [`Severity`] whether a reporter shows it without `-v`.
//!
//! Field names (HELPERS.md, README "JSON events"): `event`, `id`, `transport`,
//! `peer_host`/`peer_port` or `peer_path`, `local_*`, `target_*`, `bytes_sent` /
//! `bytes_received` (for a session: sent to / received from the peer), `duration_us`,
//! `reason`, and errors as `{"kind","op","code","message"}`.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::admit::Refusal;
use super::peer::{Peer, Transport};
use crate::error::Error;

/// Who sees an event: a reporter prints `Info` with `-v`, `Debug` with `-vv`, and
/// `Notice` and `Error` always (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Per-datagram detail (`-vv`).
    Debug,
    /// Sessions beginning and ending normally (`-v`).
    Info,
    /// Something a user must hear of without asking: resets, cut sessions, `EMFILE`
    /// pauses, unreachable targets, warnings.
    Notice,
    /// An error.
    Error,
}

/// A local address, serialised as `local_host`/`local_port` or `local_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local(pub Peer);

/// A target's address (forward, proxy), serialised as `target_host`/`target_port` or
/// `target_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(pub Peer);

/// A target as given, before it is reached (the `retry` event): `target_host` (a name
/// or an address; IPv6 without brackets) and `target_port` (a number, or a service name
/// as given), or `target_path` (a Unix socket: its path, `@name` for an abstract one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aim {
    /// A host and a port.
    Ip {
        /// The host as given.
        host: String,
        /// The port as given.
        port: crate::addr::Port,
    },
    /// A Unix socket's address.
    Path(String),
}

impl Serialize for Aim {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        match self {
            Aim::Ip { host, port } => {
                m.serialize_entry(
                    "target_host",
                    host.trim_start_matches('[').trim_end_matches(']'),
                )?;
                match port {
                    crate::addr::Port::Number(n) => m.serialize_entry("target_port", n)?,
                    crate::addr::Port::Service(name) => m.serialize_entry("target_port", name)?,
                }
            }
            Aim::Path(p) => m.serialize_entry("target_path", p)?,
        }
        m.end()
    }
}

impl fmt::Display for Aim {
    /// `HOST:PORT` (`[V6]:PORT`) or the path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aim::Ip { host, port } => {
                let h = host.trim_start_matches('[').trim_end_matches(']');
                if h.contains(':') {
                    write!(f, "[{h}]:{port}")
                } else {
                    write!(f, "{h}:{port}")
                }
            }
            Aim::Path(p) => f.write_str(p),
        }
    }
}

/// How a session's target was reached: directly (`target_host`/`target_port` or
/// `target_path`: the address that answered), or through a proxy (`forward --proxy`):
/// then `target_host`/`target_port` are what the proxy was asked for (a name stays a
/// name: the proxy may resolve it), and `proxy_host`/`proxy_port`, `proxy_type` and
/// `proxy_reply` name the proxy and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reached {
    /// The target's own address.
    Direct(Target),
    /// Through the proxy at `proxy`.
    Proxied {
        /// The proxy's address that answered.
        proxy: Peer,
        /// What it was asked for, and its answer.
        via: Via,
    },
}

impl From<Target> for Reached {
    fn from(t: Target) -> Reached {
        Reached::Direct(t)
    }
}

impl Serialize for Reached {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Reached::Direct(t) => t.serialize(s),
            Reached::Proxied { proxy, via } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("target_host", &via.target_host)?;
                m.serialize_entry("target_port", &via.target_port)?;
                if let Peer::Ip(a) = proxy {
                    m.serialize_entry("proxy_host", &crate::addr::host_text(a))?;
                    m.serialize_entry("proxy_port", &a.port())?;
                }
                m.serialize_entry("proxy_type", via.proxy_type)?;
                m.serialize_entry("proxy_reply", &via.proxy_reply)?;
                m.end()
            }
        }
    }
}

impl fmt::Display for Reached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reached::Direct(t) => write!(f, "{}", t.0),
            Reached::Proxied { proxy, via } => write!(
                f,
                "{} {} through {} proxy {proxy} ({})",
                via.target_host, via.target_port, via.proxy_type, via.proxy_reply
            ),
        }
    }
}

/// The source a PROXY protocol header came from (`--accept-proxy-from`), serialised as
/// `via_host`/`via_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedFrom(pub Peer);

impl Serialize for ProxiedFrom {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.fields("via").serialize(s)
    }
}

impl Serialize for Local {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.fields("local").serialize(s)
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.fields("target").serialize(s)
    }
}

/// Why a session ended (the `reason` word of a `closed` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Both sides ended their streams (or the session's work was done).
    Eof,
    /// A side reset its connection (`reset_by` says which); the other side was aborted
    /// with a RST in turn.
    Reset,
    /// No traffic for the idle timeout.
    Idle,
    /// Ended by a stop before the drain deadline (datagram sessions, which have no end
    /// of their own).
    Drained,
    /// Cut by a stop: aborted with a RST at the drain deadline or on an abort.
    Aborted,
    /// A system call failed (`error` says which).
    Error,
}

impl CloseReason {
    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Eof => "eof",
            CloseReason::Reset => "reset",
            CloseReason::Idle => "idle",
            CloseReason::Drained => "drained",
            CloseReason::Aborted => "aborted",
            CloseReason::Error => "error",
        }
    }
}

/// Which side of a relayed session did something (reset): the `peer` (the client of
/// the server) or the `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The server's client.
    Peer,
    /// The server's target (forward, proxy).
    Target,
}

/// The end of a session: the shared fields of every server's `closed` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closed {
    /// Session id.
    pub id: u64,
    /// The session's transport.
    pub transport: Transport,
    /// The peer.
    #[serde(flatten)]
    pub peer: Peer,
    /// Bytes sent to the peer.
    pub bytes_sent: u64,
    /// Bytes received from the peer.
    pub bytes_received: u64,
    /// Datagrams sent to the peer (datagram sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams_sent: Option<u64>,
    /// Datagrams received from the peer (datagram sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams_received: Option<u64>,
    /// How long the session lasted, in microseconds.
    pub duration_us: u64,
    /// Why it ended.
    pub reason: CloseReason,
    /// Which side reset, for [`CloseReason::Reset`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_by: Option<Side>,
    /// The error behind `reset`, `idle` or `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
    /// For a relayed stream session: how each direction moved its bytes (`sent`: to the
    /// peer); JSON `true` only when every byte moved with `splice(2)` (zero-copy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero_copy: Option<crate::relay::ZeroCopy>,
}

/// Something a server did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// Bound and ready: `listening HOST PORT`.
    Listening {
        /// The transport.
        transport: Transport,
        /// Where.
        #[serde(flatten)]
        local: Local,
        /// What the socket is for, when not the server's own job (`metrics`).
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<&'static str>,
    },
    /// A session began (a connection accepted, a datagram peer's first datagram).
    Accepted {
        /// Session id.
        id: u64,
        /// The transport.
        transport: Transport,
        /// The peer (the original client, when a PROXY header named one).
        #[serde(flatten)]
        peer: Peer,
        /// The listed source whose PROXY header named the peer (`--accept-proxy-from`).
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        via: Option<ProxiedFrom>,
    },
    /// A peer was turned away (closed at once; a datagram dropped).
    Refused {
        /// The transport.
        transport: Transport,
        /// The peer.
        #[serde(flatten)]
        peer: Peer,
        /// Why.
        reason: Refusal,
        /// What was wrong with its PROXY header ([`Refusal::ProxyHeader`]).
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<Error>,
    },
    /// A session's connection to its target is up.
    Connected {
        /// Session id.
        id: u64,
        /// The target: the address that answered, or what a proxy was asked for.
        #[serde(flatten)]
        target: Reached,
    },
    /// A proxy's `BIND` listens (`bound`): the address and port told to the client, where
    /// the target is expected to connect.
    Bound {
        /// Session id.
        id: u64,
        /// The listening address.
        #[serde(flatten)]
        local: Local,
    },
    /// A connection to a proxy's `BIND` socket from another host than the one the
    /// request named was refused (`refused`, reason `unexpected_peer`); the socket keeps
    /// waiting.
    #[serde(rename = "refused")]
    BindRefused {
        /// Session id.
        id: u64,
        /// The peer that connected.
        #[serde(flatten)]
        peer: Peer,
        /// Always `unexpected_peer`.
        reason: &'static str,
    },
    /// A session's target could not be reached; its client was closed.
    ConnectFailed {
        /// Session id.
        id: u64,
        /// The target as given.
        target: String,
        /// Why.
        error: Error,
    },
    /// A proxy's client asked for a target, and the handshake was accepted (`request`).
    Request {
        /// Session id.
        id: u64,
        /// `socks4`, `socks5` or `http`.
        protocol: &'static str,
        /// `connect`, `udp_associate` or `forward` (a plain HTTP request with an absolute
        /// URI, forwarded to the origin server).
        command: &'static str,
        /// The authenticated user (SOCKS5, HTTP), or SOCKS4's user id.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// The target as requested: a name or an address (the `connected` event has the
        /// address it resolved to).
        target_host: String,
        /// The requested port.
        target_port: u16,
    },
    /// A proxy's client was refused during its handshake (`handshake_failed`): malformed,
    /// unsupported, wrong credentials, too slow. The protocol's own error reply was sent
    /// and the client closed.
    HandshakeFailed {
        /// Session id.
        id: u64,
        /// The protocol, when the first byte named one.
        #[serde(skip_serializing_if = "Option::is_none")]
        protocol: Option<&'static str>,
        /// The case, one word (`no_methods`, `auth_failed`, `timeout` …).
        reason: &'static str,
        /// What was wrong, in words.
        message: String,
    },
    /// A session's connect to its target failed and will be tried again after `delay_us`
    /// (`--retry`; forward and connect alike).
    Retry {
        /// Session id.
        id: u64,
        /// The target as given (`target_host`/`target_port` or `target_path`).
        #[serde(flatten)]
        target: Aim,
        /// The attempt that failed (from 1).
        attempt: u32,
        /// Attempts allowed in all.
        attempts: u32,
        /// The wait before the next attempt, in microseconds.
        delay_us: u64,
        /// Why the attempt failed.
        error: Error,
    },
    /// A session ended.
    Closed(Closed),
    /// A datagram was echoed or relayed (`-vv`).
    Datagram {
        /// The transport.
        transport: Transport,
        /// The sender.
        #[serde(flatten)]
        peer: Peer,
        /// Payload bytes.
        bytes: usize,
    },
    /// A datagram a proxy's `UDP ASSOCIATE` relayed between its client and a target
    /// (`-vv`): JSON `"event":"datagram"` with the client as the peer, the target, the
    /// payload `bytes` and the `direction` (`to_target` or `to_client`).
    #[serde(rename = "datagram")]
    Relayed {
        /// Session id (the association's control connection).
        id: u64,
        /// The transport (`udp`).
        transport: Transport,
        /// The client.
        #[serde(flatten)]
        peer: Peer,
        /// The destination, or the sender of a reply.
        #[serde(flatten)]
        target: Target,
        /// Payload bytes (the SOCKS header not counted).
        bytes: usize,
        /// `to_target` (from the client) or `to_client` (a reply).
        direction: &'static str,
    },
    /// Traffic of an open datagram session (forward -u, listen -u -k), as it happens: never
    /// shown, it feeds the counters ([`Metrics`](super::Metrics)), so the totals and the
    /// metrics count a session before it ends (its `closed` adds only the rest). From the
    /// peer's point of view, as `closed`.
    Traffic {
        /// Session id.
        id: u64,
        /// The transport.
        transport: Transport,
        /// Bytes sent to the peer.
        bytes_sent: u64,
        /// Bytes received from the peer.
        bytes_received: u64,
        /// Datagrams sent to the peer.
        datagrams_sent: u64,
        /// Datagrams received from the peer.
        datagrams_received: u64,
    },
    /// A datagram was dropped.
    Dropped {
        /// The transport.
        transport: Transport,
        /// The sender.
        #[serde(flatten)]
        peer: Peer,
        /// Payload bytes.
        bytes: usize,
        /// Why (`unbound_sender`, `send_failed` …).
        reason: &'static str,
        /// The error, where one was behind it.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<Error>,
    },
    /// `accept(2)` failed for want of a resource (`EMFILE` …): accepting pauses.
    AcceptPaused {
        /// The transport.
        transport: Transport,
        /// The error.
        error: Error,
        /// How long accepting pauses, in milliseconds.
        pause_ms: u64,
    },
    /// An ephemeral self-signed certificate was made for this run (`--tls` without
    /// `--cert`/`--key`): a client compares its fingerprint.
    Certificate {
        /// The names and addresses it is made for (its subject alternative names).
        names: Vec<String>,
        /// Its SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it
        /// (upper-case hex pairs joined by colons).
        sha256_fingerprint: String,
    },
    /// Something worth a word that ends nothing.
    Warning {
        /// What.
        message: String,
    },
    /// An error that ends the server.
    Error(Error),
    /// A stop began: accepting ended; `open` sessions may finish for `drain_us`.
    Stopping {
        /// Sessions open.
        open: usize,
        /// The drain time left them, in microseconds.
        drain_us: u64,
    },
    /// The totals so far (`kill -USR1`, `--stats-interval`).
    Stats(super::metrics::Stats),
    /// The server stopped.
    Stopped {
        /// Sessions served.
        sessions: u64,
        /// Sessions cut by the stop (aborted with a RST).
        cut: u64,
    },
    /// A client's connection is up (`connect`): the peer it reached and, where it has
    /// one, the local address it was bound to. Its JSON `event` is `connected`.
    #[serde(rename = "connected")]
    ClientConnected {
        /// The transport.
        transport: Transport,
        /// The peer reached.
        #[serde(flatten)]
        peer: Peer,
        /// The local address (a Unix datagram client's bound name).
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        local: Option<Local>,
        /// How many addresses were tried (TCP, Happy Eyeballs).
        #[serde(skip_serializing_if = "Option::is_none")]
        attempts: Option<u32>,
        /// The proxy it went through (`--proxy`; the peer is the proxy then).
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        via: Option<Via>,
    },
    /// A TLS handshake is done.
    Tls {
        /// `TLSv1.3` or `TLSv1.2`.
        version: String,
        /// The cipher suite.
        cipher: String,
    },
    /// A socket option as set and read back (`SO_RCVBUF 131072 (asked 65536)`). Its JSON
    /// `event` is `sockopt`.
    #[serde(rename = "sockopt")]
    SocketOption {
        /// The C name (`SO_RCVBUF`).
        name: &'static str,
        /// The value asked for.
        requested: String,
        /// The value `getsockopt(2)` read back.
        effective: String,
    },
}

/// The proxy a client's connection went through, and what it was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Via {
    /// The target asked of the proxy, as given (a name is resolved by the proxy).
    pub target_host: String,
    /// The target's port.
    pub target_port: u16,
    /// `socks4`, `socks5` or `http`.
    pub proxy_type: &'static str,
    /// The proxy's reply in words (`SOCKS5 reply 0: succeeded`).
    pub proxy_reply: String,
}

impl From<&crate::sockopt::Applied> for Event {
    fn from(a: &crate::sockopt::Applied) -> Event {
        Event::SocketOption {
            name: a.name,
            requested: a.requested.clone(),
            effective: a.effective.clone(),
        }
    }
}

fn us(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

impl Closed {
    /// The duration in microseconds, for [`Closed::duration_us`].
    pub fn micros(d: Duration) -> u64 {
        us(d)
    }

    /// The end of a session relayed to a local side (listen's stdin/stdout or program,
    /// connect's): `totals` as the relay counts them (`bytes_sent`: to the peer; datagram
    /// counts for a datagram transport), the duration since `started`, and for a `reset`
    /// the peer as the side that reset.
    pub fn of(
        id: u64,
        transport: Transport,
        peer: Peer,
        started: std::time::Instant,
        totals: &crate::relay::Totals,
        reason: CloseReason,
        error: Option<Error>,
    ) -> Closed {
        let datagram = transport.is_datagram();
        Closed {
            id,
            transport,
            peer,
            bytes_sent: totals.bytes_sent,
            bytes_received: totals.bytes_received,
            datagrams_sent: datagram.then_some(totals.datagrams_sent),
            datagrams_received: datagram.then_some(totals.datagrams_received),
            duration_us: us(started.elapsed()),
            reason,
            reset_by: (reason == CloseReason::Reset).then_some(Side::Peer),
            error,
            zero_copy: None,
        }
    }
}

impl Event {
    /// Who sees it (see [`Severity`]).
    pub fn severity(&self) -> Severity {
        match self {
            Event::Datagram { .. } | Event::Relayed { .. } | Event::Traffic { .. } => {
                Severity::Debug
            }
            Event::Closed(c) if matches!(c.reason, CloseReason::Reset | CloseReason::Aborted) => {
                Severity::Notice
            }
            // A listed proxy that speaks no PROXY protocol is a configuration to fix.
            Event::Refused {
                reason: Refusal::ProxyHeader,
                ..
            } => Severity::Notice,
            Event::Stopped { cut, .. } if *cut > 0 => Severity::Notice,
            // asked for (a signal, an interval): always shown
            Event::Stats(_) => Severity::Notice,
            Event::ConnectFailed { .. }
            | Event::AcceptPaused { .. }
            | Event::Warning { .. }
            | Event::Certificate { .. }
            | Event::HandshakeFailed { .. }
            | Event::BindRefused { .. } => Severity::Notice,
            Event::Error(_) => Severity::Error,
            _ => Severity::Info,
        }
    }

    /// The snake_case name (`closed`, `connect_failed` …), as the JSON `event` field.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Listening { .. } => "listening",
            Event::Accepted { .. } => "accepted",
            Event::Refused { .. } => "refused",
            Event::Connected { .. } => "connected",
            Event::Bound { .. } => "bound",
            Event::BindRefused { .. } => "refused",
            Event::ConnectFailed { .. } => "connect_failed",
            Event::Request { .. } => "request",
            Event::HandshakeFailed { .. } => "handshake_failed",
            Event::Retry { .. } => "retry",
            Event::Closed(_) => "closed",
            Event::Datagram { .. } => "datagram",
            Event::Traffic { .. } => "traffic",
            Event::Dropped { .. } => "dropped",
            Event::Relayed { .. } => "datagram",
            Event::AcceptPaused { .. } => "accept_paused",
            Event::Warning { .. } => "warning",
            Event::Certificate { .. } => "certificate",
            Event::Error(_) => "error",
            Event::Stopping { .. } => "stopping",
            Event::Stats(_) => "stats",
            Event::Stopped { .. } => "stopped",
            Event::ClientConnected { .. } => "connected",
            Event::Tls { .. } => "tls",
            Event::SocketOption { .. } => "sockopt",
        }
    }

    /// What makes two events "the same" for rate limiting (one line a second with a
    /// count): the name and the cause, not the peer. `None` for events that are one per
    /// session and never limited (accepted, closed normally …).
    pub fn repeat_key(&self) -> Option<String> {
        match self {
            Event::ConnectFailed { target, error, .. } => {
                Some(format!("connect_failed {target} {error}"))
            }
            Event::Closed(c) if c.reason == CloseReason::Reset => {
                Some(format!("closed reset {:?}", c.reset_by))
            }
            Event::Closed(c) if c.reason == CloseReason::Aborted => {
                Some("closed aborted".to_string())
            }
            Event::Refused {
                reason,
                error: None,
                ..
            } => Some(format!("refused {}", reason.as_str())),
            Event::Refused {
                reason,
                error: Some(e),
                ..
            } => Some(format!("refused {} {e}", reason.as_str())),
            Event::HandshakeFailed { reason, .. } => Some(format!("handshake_failed {reason}")),
            Event::BindRefused { id, .. } => Some(format!("refused #{id} unexpected_peer")),
            Event::Dropped { reason, .. } => Some(format!("dropped {reason}")),
            // one a second per direction: a busy association does not flood the output
            Event::Relayed { id, direction, .. } => Some(format!("datagram #{id} {direction}")),
            Event::AcceptPaused { error, .. } => Some(format!("accept_paused {error}")),
            Event::Warning { message } => Some(format!("warning {message}")),
            _ => None,
        }
    }
}

/// The `-v` line (without the `sockit: ` prefix).
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Listening {
                local, role: None, ..
            } => write!(f, "listening {}", local.0),
            Event::Listening {
                local,
                role: Some(r),
                ..
            } => write!(f, "listening {} {r}", local.0),
            Event::Accepted {
                id,
                transport,
                peer,
                via: None,
            } => write!(f, "#{id} accepted {peer} ({transport})"),
            Event::Accepted {
                id,
                transport,
                peer,
                via: Some(via),
            } => write!(
                f,
                "#{id} accepted {peer} ({transport}) via {} (PROXY header)",
                via.0
            ),
            Event::Refused {
                transport,
                peer,
                reason,
                error,
            } => {
                let why = match reason {
                    Refusal::Denied => "not allowed by --allow/--deny",
                    Refusal::MaxConns => "--max-conns reached",
                    Refusal::UnlistedSource => "not a source listed in --accept-proxy-from",
                    Refusal::ProxyHeader => "no valid PROXY header",
                };
                write!(f, "refused {peer} ({transport}): {why}, closed at once")?;
                match error {
                    Some(e) => write!(f, " ({e})"),
                    None => Ok(()),
                }
            }
            Event::Connected { id, target } => write!(f, "#{id} connected to {target}"),
            Event::Bound { id, local } => write!(f, "#{id} bound {}", local.0),
            Event::BindRefused { id, peer, .. } => write!(
                f,
                "#{id} refused {peer} on the BIND socket: not the host the request named"
            ),
            Event::ConnectFailed { id, target, error } => {
                write!(f, "#{id} target {target} failed, client closed: {error}")
            }
            Event::Request {
                id,
                protocol,
                command,
                user,
                target_host,
                target_port,
            } => {
                let host = if target_host.contains(':') {
                    format!("[{target_host}]")
                } else {
                    target_host.clone()
                };
                write!(f, "#{id} {protocol} {command} {host}:{target_port}")?;
                match user {
                    Some(u) => write!(f, " (user {u:?})"),
                    None => Ok(()),
                }
            }
            Event::HandshakeFailed {
                id,
                protocol,
                reason,
                message,
            } => {
                let proto = protocol.map_or(String::new(), |p| format!("{p}, "));
                write!(
                    f,
                    "#{id} handshake refused ({proto}{reason}): {message}; replied and closed"
                )
            }
            Event::Retry {
                id,
                target,
                attempt,
                attempts,
                delay_us,
                error,
            } => write!(
                f,
                "#{id} target {target} attempt {attempt} of {attempts} failed: {error}; \
                 retrying in {:.3} s",
                *delay_us as f64 / 1e6
            ),
            Event::Closed(c) => {
                write!(
                    f,
                    "#{} closed {} ({}): {} bytes sent, {} bytes received, {:.3} s, {}",
                    c.id,
                    c.peer,
                    c.transport,
                    c.bytes_sent,
                    c.bytes_received,
                    c.duration_us as f64 / 1e6,
                    c.reason.as_str()
                )?;
                match c.reset_by {
                    Some(Side::Peer) => f.write_str(" by the peer")?,
                    Some(Side::Target) => f.write_str(" by the target")?,
                    None => {}
                }
                if c.reason == CloseReason::Aborted {
                    f.write_str(" (cut by the stop, RST sent)")?;
                }
                if let Some(e) = &c.error {
                    write!(f, " ({e})")?;
                }
                match c.zero_copy {
                    Some(z) => write!(f, ", {z}"),
                    None => Ok(()),
                }
            }
            Event::Datagram {
                transport,
                peer,
                bytes,
            } => write!(f, "echoed {bytes} bytes to {peer} ({transport})"),
            Event::Traffic {
                id,
                bytes_sent,
                bytes_received,
                ..
            } => write!(
                f,
                "#{id} {bytes_sent} bytes sent, {bytes_received} received"
            ),
            Event::Relayed {
                id,
                transport,
                peer,
                target,
                bytes,
                direction,
            } => {
                let (from, to) = if *direction == "to_client" {
                    (&target.0, peer)
                } else {
                    (peer, &target.0)
                };
                write!(
                    f,
                    "#{id} relayed {bytes} bytes {from} -> {to} ({transport})"
                )
            }
            Event::Dropped {
                transport,
                peer,
                bytes,
                reason,
                error,
            } => {
                write!(
                    f,
                    "dropped {bytes} bytes from {peer} ({transport}): {reason}"
                )?;
                match error {
                    Some(e) => write!(f, " ({e})"),
                    None => Ok(()),
                }
            }
            Event::AcceptPaused {
                transport,
                error,
                pause_ms,
            } => write!(
                f,
                "{error} ({transport}): accepting paused for {pause_ms} ms"
            ),
            Event::Warning { message } => write!(f, "warning: {message}"),
            // Two lines, the second as `openssl x509 -fingerprint -sha256` prints it.
            Event::Certificate {
                names,
                sha256_fingerprint,
            } => write!(
                f,
                "--tls without --cert/--key: ephemeral self-signed certificate for {} \
                 (this run only)\nsockit: sha256 Fingerprint={sha256_fingerprint}",
                names.join(", ")
            ),
            Event::Error(e) => write!(f, "{e}"),
            Event::Stopping { open, drain_us } => write!(
                f,
                "stopping: {open} open, draining for at most {:.3} s",
                *drain_us as f64 / 1e6
            ),
            Event::Stats(s) => {
                write!(
                    f,
                    "stats: {} accepted, {} refused, {} active, {} closed, {} bytes sent, {} \
                     bytes received, ",
                    s.accepted, s.refused, s.active, s.closed, s.bytes_sent, s.bytes_received
                )?;
                if s.datagrams_sent + s.datagrams_received > 0 {
                    write!(
                        f,
                        "{} datagrams sent, {} datagrams received, ",
                        s.datagrams_sent, s.datagrams_received
                    )?;
                }
                write!(
                    f,
                    "{} errors, {:.3} s",
                    s.errors,
                    s.duration_us as f64 / 1e6
                )
            }
            Event::Stopped { sessions, cut } => {
                write!(f, "stopped: {sessions} sessions served, {cut} cut")
            }
            Event::ClientConnected {
                peer, via: Some(v), ..
            } => {
                let host = if v.target_host.contains(':') {
                    format!("[{}]", v.target_host)
                } else {
                    v.target_host.clone()
                };
                write!(
                    f,
                    "connected to {host}:{} through {} proxy {peer} ({})",
                    v.target_port, v.proxy_type, v.proxy_reply
                )
            }
            Event::ClientConnected {
                transport,
                peer,
                local,
                ..
            } => {
                write!(f, "connected to {peer} ({transport})")?;
                match local {
                    Some(l) => write!(f, " from {}", l.0),
                    None => Ok(()),
                }
            }
            Event::Tls { version, cipher } => write!(f, "TLS handshake done: {version} {cipher}"),
            Event::SocketOption {
                name,
                requested,
                effective,
            } if requested == effective => write!(f, "{name} {effective}"),
            Event::SocketOption {
                name,
                requested,
                effective,
            } => write!(f, "{name} {effective} (asked {requested})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_carries_the_shared_fields() {
        let ev = Event::Closed(Closed {
            id: 3,
            transport: Transport::Tcp,
            peer: Peer::Ip("127.0.0.1:4000".parse().unwrap()),
            bytes_sent: 5,
            bytes_received: 6,
            datagrams_sent: None,
            datagrams_received: None,
            duration_us: 1500,
            reason: CloseReason::Reset,
            reset_by: Some(Side::Target),
            error: Some(Error::from_errno("recv", libc::ECONNRESET)),
            zero_copy: None,
        });
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"event":"closed","id":3,"transport":"tcp","peer_host":"127.0.0.1","peer_port":4000,"bytes_sent":5,"bytes_received":6,"duration_us":1500,"reason":"reset","reset_by":"target","error":{"kind":"os","op":"recv","code":104,"message":"recv: [Errno 104] Connection reset by peer"}}"#
        );
        assert_eq!(ev.severity(), Severity::Notice);
        assert_eq!(
            ev.to_string(),
            "#3 closed 127.0.0.1 4000 (tcp): 5 bytes sent, 6 bytes received, 0.002 s, reset by the target (recv: [Errno 104] Connection reset by peer)"
        );
        let err = Event::Error(Error::from_errno("connect", libc::ECONNREFUSED));
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"event":"error","kind":"os","op":"connect","code":111,"message":"connect: [Errno 111] Connection refused"}"#
        );
        let l = Event::Listening {
            transport: Transport::Udp,
            local: Local(Peer::Ip("[::1]:9".parse().unwrap())),
            role: None,
        };
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"event":"listening","transport":"udp","local_host":"::1","local_port":9}"#
        );
        assert_eq!(l.to_string(), "listening ::1 9");
    }
}
