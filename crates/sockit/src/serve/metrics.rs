//! A server's counters, fed from its [`Event`]s in one place ([`Metrics::observe`]), read
//! as totals ([`Metrics::stats`], the `stats` event of SIGUSR1 and `--stats-interval`) and
//! served to Prometheus by a small HTTP endpoint on the core ([`Endpoint`]).
//!
//! Metrics (Prometheus names, base units; every one with `# HELP` and `# TYPE`):
//!
//! | name | type | labels | from |
//! | --- | --- | --- | --- |
//! | `sockit_connections_accepted_total` | counter | `transport` | `accepted` |
//! | `sockit_connections_refused_total` | counter | `transport`, `reason` | `refused` |
//! | `sockit_connections_active` | gauge | `transport` | `accepted` − `closed` |
//! | `sockit_sessions_closed_total` | counter | `transport`, `reason` | `closed` |
//! | `sockit_received_bytes_total`, `sockit_sent_bytes_total` | counter | `transport` | `closed`, `datagram` |
//! | `sockit_session_duration_seconds` | histogram | `transport` | `closed` |
//! | `sockit_errors_total` | counter | `kind` | sessions ended by an error (`closed`, reason `error`: a failed target once, not also its `connect_failed`), dropped datagrams with an error, paused accepts, `error` events; `kind="os"` at 0 from the start |
//! | `sockit_echo_round_trips_total` | counter | `transport` | `datagram` (the echo server's datagrams, each echoed once) |
//!
//! Byte counts of a stream session are added when it ends (its `closed` event); those of
//! an open datagram session as they happen (`traffic` events, forward -u, listen -u -k).
//!
//! Formats: the Prometheus text format 0.0.4 ([`TEXT_CONTENT_TYPE`]), which every
//! Prometheus and `promtool check metrics` read; OpenMetrics 1.0 text
//! ([`OPENMETRICS_CONTENT_TYPE`]) when the scraper's `Accept` header prefers
//! `application/openmetrics-text` (RFC 9110 weights, `q=0` refusing it). Both are written by the `prometheus-client` crate.
//!
//! The endpoint contract: `GET /metrics` (or `HEAD`) answers 200 with the metrics; any other
//! path 404, any other method 405, a malformed or oversized request 400; one request per
//! connection (`Connection: close`), a request head of at most 8 KiB read within 5 s, at
//! most 16 connections at once (more are closed at once), each closed the lingering way;
//! it stops with the server's [`Stop`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::admit::Admission;
use super::bind::BindOptions;
use super::event::{Event, Local};
use super::peer::{Peer, Transport};
use super::stop::Stop;
use crate::access::AccessList;
use crate::error::{Error, Result};

/// `Content-Type` of the Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of the OpenMetrics 1.0 text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The most bytes of a request head the endpoint reads.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long the endpoint waits for a request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once; more are closed at once.
pub const MAX_SCRAPES: usize = 16;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByTransport {
    transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByReason {
    transport: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByKind {
    kind: &'static str,
}

/// Totals of a server so far: the `stats` event (`kill -USR1`, `--stats-interval`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Sessions accepted.
    pub accepted: u64,
    /// Peers refused (`--allow`/`--deny`, `--max-conns`, `--accept-proxy-from`).
    pub refused: u64,
    /// Sessions open now.
    pub active: u64,
    /// Sessions ended.
    pub closed: u64,
    /// Bytes sent to peers (of ended stream sessions, and every datagram).
    pub bytes_sent: u64,
    /// Bytes received from peers (likewise).
    pub bytes_received: u64,
    /// Datagrams sent to peers.
    pub datagrams_sent: u64,
    /// Datagrams received from peers.
    pub datagrams_received: u64,
    /// Errors reported (sessions ended by an error, a failed target among them, counted
    /// once; dropped datagrams with an error, paused accepts).
    pub errors: u64,
    /// Time since the counters began, in microseconds.
    pub duration_us: u64,
}

#[derive(Debug, Default)]
struct Sums {
    accepted: AtomicU64,
    refused: AtomicU64,
    closed: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    datagrams_sent: AtomicU64,
    datagrams_received: AtomicU64,
    errors: AtomicU64,
}

/// The counters of one server (see the module docs). Share it (`Arc`): every method takes
/// `&self` and may run on any thread.
pub struct Metrics {
    registry: Registry,
    accepted: Family<ByTransport, Counter>,
    refused: Family<ByReason, Counter>,
    active: Family<ByTransport, Gauge>,
    closed: Family<ByReason, Counter>,
    received: Family<ByTransport, Counter>,
    sent: Family<ByTransport, Counter>,
    durations: Family<ByTransport, Histogram>,
    errors: Family<ByKind, Counter>,
    round_trips: Family<ByTransport, Counter>,
    sums: Sums,
    /// Per open session (transport, id) reporting its traffic live ([`Event::Traffic`]):
    /// what was counted already, which its `closed` event does not count again.
    live: std::sync::Mutex<std::collections::HashMap<(&'static str, u64), crate::relay::Totals>>,
    started: Instant,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn duration_histogram() -> Histogram {
    // 1 ms … about 4.5 h in 24 steps of ×2.
    Histogram::new(exponential_buckets(0.001, 2.0, 24))
}

impl Metrics {
    /// Counters at zero, registered under the names of the module docs.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sockit");
        let accepted = Family::<ByTransport, Counter>::default();
        let refused = Family::<ByReason, Counter>::default();
        let active = Family::<ByTransport, Gauge>::default();
        let closed = Family::<ByReason, Counter>::default();
        let received = Family::<ByTransport, Counter>::default();
        let sent = Family::<ByTransport, Counter>::default();
        let durations =
            Family::<ByTransport, Histogram>::new_with_constructor(duration_histogram as fn() -> _);
        let errors = Family::<ByKind, Counter>::default();
        let round_trips = Family::<ByTransport, Counter>::default();
        // a series at 0 from the start: HELP/TYPE are there, "no errors" is not "missing"
        let _ = errors.get_or_create(&ByKind { kind: "os" });
        registry.register(
            "connections_accepted",
            "Connections (sessions) accepted",
            accepted.clone(),
        );
        registry.register(
            "connections_refused",
            "Peers refused: reason denied (--allow/--deny), max_conns (--max-conns), \
             unlisted_source or proxy_header (--accept-proxy-from)",
            refused.clone(),
        );
        registry.register("connections_active", "Sessions open now", active.clone());
        registry.register(
            "sessions_closed",
            "Sessions ended, by reason (eof, reset, idle, drained, aborted, error)",
            closed.clone(),
        );
        registry.register_with_unit(
            "received",
            "Bytes received from peers (stream sessions counted when they end)",
            Unit::Bytes,
            received.clone(),
        );
        registry.register_with_unit(
            "sent",
            "Bytes sent to peers (stream sessions counted when they end)",
            Unit::Bytes,
            sent.clone(),
        );
        registry.register_with_unit(
            "session_duration",
            "How long sessions lasted",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register(
            "errors",
            "Errors reported, by kind (os, gai, timeout, tls, protocol, proxy ...)",
            errors.clone(),
        );
        registry.register(
            "echo_round_trips",
            "Datagrams the echo server sent back to their sender (one round trip each)",
            round_trips.clone(),
        );
        Metrics {
            registry,
            accepted,
            refused,
            active,
            closed,
            received,
            sent,
            durations,
            errors,
            round_trips,
            sums: Sums::default(),
            live: Default::default(),
            started: Instant::now(),
        }
    }

    /// Creates the series of a server serving `transport` at zero (accepted, active,
    /// refused and closed by every reason, bytes, durations), so a scrape before the first
    /// session already names them.
    pub fn prepare(&self, transport: Transport) {
        let t = ByTransport {
            transport: transport.as_str(),
        };
        let _ = self.accepted.get_or_create(&t);
        let _ = self.active.get_or_create(&t);
        let _ = self.received.get_or_create(&t);
        let _ = self.sent.get_or_create(&t);
        let _ = self.durations.get_or_create(&t);
        for reason in [super::Refusal::Denied, super::Refusal::MaxConns] {
            let _ = self.refused.get_or_create(&ByReason {
                transport: t.transport,
                reason: reason.as_str(),
            });
        }
        use super::CloseReason as R;
        for reason in [R::Eof, R::Reset, R::Idle, R::Drained, R::Aborted, R::Error] {
            let _ = self.closed.get_or_create(&ByReason {
                transport: t.transport,
                reason: reason.as_str(),
            });
        }
    }

    fn error(&self, e: &Error) {
        self.errors
            .get_or_create(&ByKind {
                kind: e.kind().as_str(),
            })
            .inc();
        self.sums.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts what `ev` says happened (events that count nothing are ignored).
    pub fn observe(&self, ev: &Event) {
        let add = |c: &AtomicU64, n: u64| {
            c.fetch_add(n, Ordering::Relaxed);
        };
        match ev {
            Event::Accepted { transport, .. } => {
                let t = ByTransport {
                    transport: transport.as_str(),
                };
                self.accepted.get_or_create(&t).inc();
                self.active.get_or_create(&t).inc();
                add(&self.sums.accepted, 1);
            }
            Event::Refused {
                transport, reason, ..
            } => {
                self.refused
                    .get_or_create(&ByReason {
                        transport: transport.as_str(),
                        reason: reason.as_str(),
                    })
                    .inc();
                add(&self.sums.refused, 1);
            }
            Event::Closed(c) => {
                let t = ByTransport {
                    transport: c.transport.as_str(),
                };
                // what a live session reported already is not counted again
                let done = self
                    .live
                    .lock()
                    .ok()
                    .and_then(|mut l| l.remove(&(t.transport, c.id)))
                    .unwrap_or_default();
                let bytes_received = c.bytes_received.saturating_sub(done.bytes_received);
                let bytes_sent = c.bytes_sent.saturating_sub(done.bytes_sent);
                let datagrams_sent = c
                    .datagrams_sent
                    .unwrap_or(0)
                    .saturating_sub(done.datagrams_sent);
                let datagrams_received = c
                    .datagrams_received
                    .unwrap_or(0)
                    .saturating_sub(done.datagrams_received);
                self.active.get_or_create(&t).dec();
                self.closed
                    .get_or_create(&ByReason {
                        transport: c.transport.as_str(),
                        reason: c.reason.as_str(),
                    })
                    .inc();
                self.received.get_or_create(&t).inc_by(bytes_received);
                self.sent.get_or_create(&t).inc_by(bytes_sent);
                self.durations
                    .get_or_create(&t)
                    .observe(c.duration_us as f64 / 1e6);
                add(&self.sums.closed, 1);
                add(&self.sums.bytes_received, bytes_received);
                add(&self.sums.bytes_sent, bytes_sent);
                add(&self.sums.datagrams_sent, datagrams_sent);
                add(&self.sums.datagrams_received, datagrams_received);
                if let Some(e) = &c.error
                    && c.reason == super::CloseReason::Error
                {
                    self.error(e);
                }
            }
            Event::Datagram {
                transport, bytes, ..
            } => {
                let t = ByTransport {
                    transport: transport.as_str(),
                };
                let n = *bytes as u64;
                self.round_trips.get_or_create(&t).inc();
                self.received.get_or_create(&t).inc_by(n);
                self.sent.get_or_create(&t).inc_by(n);
                add(&self.sums.bytes_received, n);
                add(&self.sums.bytes_sent, n);
                add(&self.sums.datagrams_received, 1);
                add(&self.sums.datagrams_sent, 1);
            }
            Event::Traffic {
                id,
                transport,
                bytes_sent,
                bytes_received,
                datagrams_sent,
                datagrams_received,
            } => {
                let t = ByTransport {
                    transport: transport.as_str(),
                };
                if let Ok(mut l) = self.live.lock() {
                    let done = l.entry((t.transport, *id)).or_default();
                    done.bytes_sent += bytes_sent;
                    done.bytes_received += bytes_received;
                    done.datagrams_sent += datagrams_sent;
                    done.datagrams_received += datagrams_received;
                }
                self.received.get_or_create(&t).inc_by(*bytes_received);
                self.sent.get_or_create(&t).inc_by(*bytes_sent);
                add(&self.sums.bytes_received, *bytes_received);
                add(&self.sums.bytes_sent, *bytes_sent);
                add(&self.sums.datagrams_sent, *datagrams_sent);
                add(&self.sums.datagrams_received, *datagrams_received);
            }
            // A failed target's `connect_failed` is followed by its session's `closed`
            // (reason `error`, the same error), which counts it: one error per failure.
            Event::AcceptPaused { error, .. } => self.error(error),
            Event::Dropped {
                error: Some(error), ..
            } => self.error(error),
            Event::Error(e) => self.error(e),
            _ => {}
        }
    }

    /// The totals so far.
    pub fn stats(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.sums;
        let (accepted, closed) = (get(&s.accepted), get(&s.closed));
        Stats {
            accepted,
            refused: get(&s.refused),
            active: accepted.saturating_sub(closed),
            closed,
            bytes_sent: get(&s.bytes_sent),
            bytes_received: get(&s.bytes_received),
            datagrams_sent: get(&s.datagrams_sent),
            datagrams_received: get(&s.datagrams_received),
            errors: get(&s.errors),
            duration_us: super::Closed::micros(self.started.elapsed()),
        }
    }

    /// The metrics in the Prometheus text format 0.0.4 ([`TEXT_CONTENT_TYPE`]).
    pub fn encode_text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// The metrics in the OpenMetrics 1.0 text format ([`OPENMETRICS_CONTENT_TYPE`]),
    /// ending with `# EOF`.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The `stats` event of the totals now.
    pub fn stats_event(&self) -> Event {
        Event::Stats(self.stats())
    }
}

/// A bound metrics endpoint, ready to [`run`](Endpoint::run).
#[derive(Debug)]
pub struct Endpoint {
    listener: TcpListener,
    local: Peer,
}

impl Endpoint {
    /// Binds the endpoint at `addr` with the core's binder (TCP), or takes the inherited
    /// socket named `metrics` under socket activation. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) from `bind(2)` (named with the address) or
    /// `listen(2)`; [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an
    /// inherited `metrics` socket that is not TCP.
    pub fn bind(addr: std::net::SocketAddr) -> Result<Endpoint> {
        let l =
            match super::activation::take_named(super::activation::METRICS_NAME, Transport::Tcp)? {
                Some(l) => l,
                None => {
                    // The server's own inherited sockets are not for this one.
                    bind_own(addr)?
                }
            };
        let local = l.local().clone();
        let (socket, _) = l.into_parts();
        let listener =
            TcpListener::from_std(socket.into()).map_err(|e| Error::from_io("listen", e))?;
        Ok(Endpoint { listener, local })
    }

    /// The address bound.
    pub fn local(&self) -> &Peer {
        &self.local
    }

    /// Its `listening` event (`listening HOST PORT metrics`, `"role":"metrics"`).
    pub fn listening(&self) -> Event {
        Event::Listening {
            transport: Transport::Tcp,
            local: Local(self.local.clone()),
            role: Some("metrics"),
        }
    }

    /// Serves scrapes of `metrics` until `stop` says stop (see the module docs). Errors of
    /// single connections end only that connection; an `accept(2)` error pauses accepting
    /// for 100 ms.
    pub async fn run(self, metrics: Arc<Metrics>, stop: Stop) {
        let admission = Admission::new(AccessList::default(), MAX_SCRAPES);
        loop {
            let accepted = tokio::select! {
                _ = stop.stopping() => return,
                a = self.listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = admission.admit(&Peer::Ip(peer)) else {
                super::close::abort(stream);
                continue;
            };
            let (m, stop) = (Arc::clone(&metrics), stop.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.aborted() => {}
                    _ = scrape(stream, &m) => {}
                }
                drop(permit);
            });
        }
    }
}

/// Binds the endpoint's own socket, bypassing socket activation's pool (whose sockets are
/// the server's).
fn bind_own(addr: std::net::SocketAddr) -> Result<super::Listener> {
    super::bind::bind_ip_fresh(addr, Transport::Tcp, &BindOptions::default())
}

/// The answer to one request head: status line, content type, body.
fn answer(head: &[u8], metrics: &Metrics) -> (&'static str, &'static str, String, bool) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let plain = "text/plain; charset=utf-8";
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return ("400 Bad Request", plain, "bad request\n".into(), false),
    }
    let head_only = req.method == Some("HEAD");
    if !matches!(req.method, Some("GET" | "HEAD")) {
        return (
            "405 Method Not Allowed",
            plain,
            "only GET /metrics\n".into(),
            false,
        );
    }
    let path = req.path.unwrap_or("");
    if path.split('?').next() != Some("/metrics") {
        return ("404 Not Found", plain, "only /metrics\n".into(), head_only);
    }
    let accept: Vec<String> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("accept"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .collect();
    if prefers_openmetrics(&accept.join(",")) {
        (
            "200 OK",
            OPENMETRICS_CONTENT_TYPE,
            metrics.encode_openmetrics(),
            head_only,
        )
    } else {
        (
            "200 OK",
            TEXT_CONTENT_TYPE,
            metrics.encode_text(),
            head_only,
        )
    }
}

/// Serves one scrape on `stream`.
/// True when an `Accept` field value (several fields joined with commas) prefers
/// OpenMetrics text to the Prometheus text format (RFC 9110, 12.5.1): each format's
/// weight is the `q` of the most specific media range matching it (`type/subtype`, then
/// `type/*`, then `*/*`; the highest among equally specific ones; parameters other than
/// `q` are not compared), 0 meaning "not acceptable". OpenMetrics wins with the higher
/// weight, or an equal one when a range names it; no field, or nothing acceptable,
/// gives the Prometheus text. A malformed element (a `q` that is no qvalue) is skipped.
fn prefers_openmetrics(accept: &str) -> bool {
    // (weight, specificity) of the best match so far for one offer.
    fn weigh(accept: &str, ty: &str, sub: &str) -> Option<(u16, u8)> {
        let mut best: Option<(u16, u8)> = None;
        for element in accept.split(',') {
            let mut parts = element.split(';').map(str::trim);
            let range = parts.next().unwrap_or("");
            let Some((t, s)) = range.split_once('/') else {
                continue;
            };
            let spec = match (t, s) {
                ("*", "*") => 0,
                (t, "*") if t.eq_ignore_ascii_case(ty) => 1,
                (t, s) if t.eq_ignore_ascii_case(ty) && s.eq_ignore_ascii_case(sub) => 2,
                _ => continue,
            };
            let mut q = Some(1000);
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = qvalue(v.trim());
                    }
                }
            }
            let Some(q) = q else { continue };
            best = match best {
                Some((bq, bs)) if bs > spec || (bs == spec && bq >= q) => Some((bq, bs)),
                _ => Some((q, spec)),
            };
        }
        best
    }
    // A qvalue in thousandths: 0, 0.xyz, 1, 1.000 (RFC 9110, 12.4.2).
    fn qvalue(v: &str) -> Option<u16> {
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
        match int {
            "0" => Some(thousandths),
            "1" if thousandths == 0 => Some(1000),
            _ => None,
        }
    }
    let Some((om, om_spec)) = weigh(accept, "application", "openmetrics-text") else {
        return false;
    };
    let text = weigh(accept, "text", "plain").map_or(0, |(q, _)| q);
    om > 0 && (om > text || (om == text && om_spec == 2))
}

async fn scrape(mut stream: TcpStream, metrics: &Metrics) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Ok(true);
            }
            if head.len() > MAX_REQUEST_HEAD {
                return Ok(true);
            }
        }
    })
    .await;
    if !matches!(read, Ok(Ok(true))) {
        super::close::abort(stream);
        return;
    }
    let (status, ctype, body, head_only) = if head.len() > MAX_REQUEST_HEAD {
        (
            "431 Request Header Fields Too Large",
            "text/plain; charset=utf-8",
            "request head too large\n".to_string(),
            false,
        )
    } else {
        answer(&head, metrics)
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    if stream.write_all(&out).await.is_ok() {
        super::close::linger_close(stream).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::{CloseReason, Closed, Refusal};

    #[test]
    fn accept_weights_decide_the_format() {
        // Regression (QA): `openmetrics-text;q=0, text/plain` still got OpenMetrics.
        for (accept, want) in [
            ("", false),
            ("text/plain", false),
            ("*/*", false),
            ("application/openmetrics-text", true),
            ("application/openmetrics-text; version=1.0.0", true),
            ("application/openmetrics-text;q=0, text/plain", false),
            ("application/openmetrics-text;q=0", false),
            ("text/plain;q=0.5, application/openmetrics-text;q=0.6", true),
            (
                "application/openmetrics-text;q=0.5, text/plain;q=0.6",
                false,
            ),
            ("application/openmetrics-text, */*", true),
            ("application/openmetrics-text;q=0.2, */*", false),
            ("application/*;q=0, text/plain", false),
            ("application/*, application/openmetrics-text;q=0", false),
            ("Application/OpenMetrics-Text;Q=1.000", true),
            ("application/openmetrics-text;q=2", false),
            ("application/openmetrics-text;q=0.1234", false),
            // Prometheus 2.x's scrape header
            (
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                true,
            ),
        ] {
            assert_eq!(prefers_openmetrics(accept), want, "{accept}");
        }
    }

    #[test]
    fn events_feed_the_counters() {
        let m = Metrics::new();
        let peer = Peer::Ip("127.0.0.1:4000".parse().unwrap());
        for id in 1..=3 {
            m.observe(&Event::Accepted {
                id,
                transport: Transport::Tcp,
                peer: peer.clone(),
                via: None,
            });
        }
        m.observe(&Event::Refused {
            transport: Transport::Tcp,
            peer: peer.clone(),
            reason: Refusal::MaxConns,
            error: None,
        });
        m.observe(&Event::Closed(Closed {
            id: 1,
            transport: Transport::Tcp,
            peer: peer.clone(),
            bytes_sent: 5,
            bytes_received: 7,
            datagrams_sent: None,
            datagrams_received: None,
            duration_us: 2500,
            reason: CloseReason::Reset,
            reset_by: None,
            error: None,
            zero_copy: None,
        }));
        let s = m.stats();
        assert_eq!(
            (
                s.accepted,
                s.refused,
                s.active,
                s.closed,
                s.bytes_sent,
                s.bytes_received
            ),
            (3, 1, 2, 1, 5, 7)
        );
        let text = m.encode_text();
        for line in [
            "# TYPE sockit_connections_accepted_total counter",
            "sockit_connections_accepted_total{transport=\"tcp\"} 3",
            "sockit_connections_refused_total{transport=\"tcp\",reason=\"max_conns\"} 1",
            "sockit_connections_active{transport=\"tcp\"} 2",
            "sockit_sessions_closed_total{transport=\"tcp\",reason=\"reset\"} 1",
            "sockit_received_bytes_total{transport=\"tcp\"} 7",
            "sockit_session_duration_seconds_count{transport=\"tcp\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("# EOF"));
        assert!(m.encode_openmetrics().ends_with("# EOF\n"));
        let (status, ..) = answer(b"GET /other HTTP/1.1\r\n\r\n", &m);
        assert_eq!(status, "404 Not Found");
        let (status, ..) = answer(b"POST /metrics HTTP/1.1\r\n\r\n", &m);
        assert_eq!(status, "405 Method Not Allowed");
        let (status, ctype, ..) = answer(
            b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
            &m,
        );
        assert_eq!((status, ctype), ("200 OK", OPENMETRICS_CONTENT_TYPE));
    }

    #[test]
    fn a_failed_target_is_one_error_and_the_series_exists_from_the_start() {
        // Regression: connect_failed and its session's closed (same error) counted twice,
        // and sockit_errors_total had no HELP/TYPE nor series before the first error.
        let m = Metrics::new();
        let text = m.encode_text();
        assert!(
            text.contains("# TYPE sockit_errors_total counter"),
            "{text}"
        );
        assert!(
            text.contains("sockit_errors_total{kind=\"os\"} 0"),
            "{text}"
        );
        let peer = Peer::Ip("127.0.0.1:4000".parse().unwrap());
        let error = Error::from_errno("connect", libc::ECONNREFUSED);
        m.observe(&Event::ConnectFailed {
            id: 1,
            target: "127.0.0.1:9".into(),
            error: error.clone(),
        });
        m.observe(&Event::Closed(Closed {
            id: 1,
            transport: Transport::Tcp,
            peer,
            bytes_sent: 0,
            bytes_received: 0,
            datagrams_sent: None,
            datagrams_received: None,
            duration_us: 10,
            reason: CloseReason::Error,
            reset_by: None,
            error: Some(error),
            zero_copy: None,
        }));
        assert_eq!(m.stats().errors, 1);
        assert!(
            m.encode_text()
                .contains("sockit_errors_total{kind=\"os\"} 1")
        );
    }
}
