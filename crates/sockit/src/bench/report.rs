//! What a run measured ([`Report`]), as one model: [`run`](super::run) returns it, its
//! serde form is the `--json` result (one vocabulary with every other subcommand), its
//! `Display` is the text summary, [`read_line`](super::read_line) reads it back from
//! saved files (also those written before the vocabulary) and [`Merge`](super::Merge)
//! adds runs up.
//!
//! # JSON
//! One object per result, `"event":"summary"`, units in the field names:
//! `transport` (`tcp`, `udp`, `unix`, `unixgram`), the server as `peer_host`/`peer_port` or
//! `peer_path`, `duration_us`/`warmup_us` (integer microseconds), `bytes_sent`/
//! `bytes_received`, `latency_p99_us` & co. (0.1 µs), `first_error` as the vocabulary's
//! error object `{kind, op, code, message}` plus `reason` (the word `errors_by_kind`
//! counts it under), and `histogram`: HdrHistogram's V2 compressed form in base64, in
//! nanoseconds.
//!
//! Files saved before say `"protocol"` (with `unix-dgram`), `duration_s`/`warmup_s`
//! (seconds) and a `first_error` whose `kind` is the `errors_by_kind` word;
//! [`read_line`](super::read_line) reads them as the same model. `duration_s` is not written any more: its only reader
//! in the project was `--merge`, which reads both.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::config::{Mode, Transport};
use super::histogram::{Latency, base64_form, new_histogram, tenths};
use crate::error::{Error, ErrorKind};

/// Why a run ended; JSON `"stopped_by"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The duration was over.
    Duration,
    /// Every connection did its share of the count.
    Count,
    /// A count was given and the time limit came first.
    TimeLimit,
    /// Every connection ended with an error.
    Errors,
    /// Stopped from outside before its end (SIGINT, SIGTERM): the figures are partial.
    Stopped,
    /// Not a run: saved runs added up by [`Merge`](super::Merge).
    Merged,
}

impl StopReason {
    /// `"duration"`, `"count"`, `"time_limit"`, `"errors"`, `"stopped"` or `"merged"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Count => "count",
            StopReason::TimeLimit => "time_limit",
            StopReason::Errors => "errors",
            StopReason::Stopped => "stopped",
            StopReason::Merged => "merged",
        }
    }
}

/// The unit of a result's `histogram`: nanoseconds, the only one written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HistogramUnit {
    /// Nanoseconds (`"ns"`).
    #[default]
    #[serde(rename = "ns")]
    Ns,
}

/// An error a run counted, in the vocabulary's error object: `kind` (the
/// [`ErrorKind`] word: `os`, `timeout`, `protocol` …), `op`, `code` (errno or null),
/// `message` (the error's full text, `recv: [Errno 104] Connection reset by peer`), and
/// `reason`: the word [`Report::errors_by_kind`] counts it under (`refused`, `reset`,
/// `closed`, `timeout`, `os`, `check`), so the two agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// Which Python exception it is.
    #[serde(with = "kind_word")]
    pub kind: ErrorKind,
    /// The operation that failed (`connect`, `recv`, `connection check (8-byte echo): recv`).
    pub op: String,
    /// The errno, when there is one.
    pub code: Option<i32>,
    /// The error's text as `sockit::Error` displays it.
    pub message: String,
    /// The word `errors_by_kind` counts it under.
    pub reason: String,
}

impl RunError {
    /// The error `e`, counted under `reason`.
    pub fn new(reason: &str, e: &Error) -> RunError {
        RunError {
            kind: e.kind(),
            op: e.op().to_string(),
            code: e.code(),
            message: e.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Serde form of an [`ErrorKind`]: its [`as_str`](ErrorKind::as_str) word.
pub(super) mod kind_word {
    use super::*;

    const KINDS: [ErrorKind; 7] = [
        ErrorKind::Os,
        ErrorKind::InvalidInput,
        ErrorKind::Gai,
        ErrorKind::Host,
        ErrorKind::Timeout,
        ErrorKind::Tls,
        ErrorKind::Protocol,
    ];

    pub(in crate::bench) fn parse(word: &str) -> Option<ErrorKind> {
        KINDS.into_iter().find(|k| k.as_str() == word)
    }

    pub(super) fn serialize<S: serde::Serializer>(
        k: &ErrorKind,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(k.as_str())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<ErrorKind, D::Error> {
        let w = String::deserialize(d)?;
        parse(&w).ok_or_else(|| {
            let words: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
            serde::de::Error::custom(format!(
                "unknown error kind {w:?}, expected one of {}",
                words.join(", ")
            ))
        })
    }
}

/// Serde form of a [`Duration`]: integer microseconds (`duration_us`).
mod micros {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Duration,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}

/// A rate or share that cannot be below 0 (JSON numbers are finite).
fn non_negative<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    let x = f64::deserialize(d)?;
    if x >= 0.0 {
        Ok(x)
    } else {
        Err(serde::de::Error::custom(format!(
            "must be a number of at least 0, not {x}"
        )))
    }
}

fn opt_non_negative<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<f64>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        Some(x) if x < 0.0 => Err(serde::de::Error::custom(format!(
            "must be a number of at least 0 or null, not {x}"
        ))),
        x => Ok(x),
    }
}

fn opt_tenths<S: serde::Serializer>(x: &Option<f64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match x {
        Some(x) => tenths(x, s),
        None => s.serialize_none(),
    }
}

fn one() -> u64 {
    1
}

fn summary() -> String {
    "summary".into()
}

/// What a run measured, or what saved runs add up to ([`Merge`](super::Merge)).
///
/// Field names are the JSON names (`serde` derive); counts are over the measured window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `"summary"`: the line that holds a result (beside `interval` lines).
    #[serde(default = "summary")]
    pub event: String,
    /// The server as given (`127.0.0.1:7000`, `[::1]:7000`, a Unix path or `@name`);
    /// merged: the servers of the runs, `, `-separated.
    pub target: String,
    /// The socket kind.
    #[serde(alias = "protocol")]
    pub transport: Transport,
    /// The server's numeric host (IPv6 without brackets); `None` for Unix sockets, and
    /// when merged runs had several servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_host: Option<String>,
    /// The server's port (with `peer_host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
    /// The Unix server's path or `@name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_path: Option<String>,
    /// Ping-pong or stream.
    pub mode: Mode,
    /// Connections asked for.
    pub connections: u64,
    /// Connections that were set up (connected, and for TCP/Unix one echo returned).
    pub connected: u64,
    /// Load threads used.
    pub threads: u64,
    /// Message or chunk size, bytes.
    #[serde(rename = "size_bytes")]
    pub size: u64,
    /// The open-loop rate asked for, requests per second.
    #[serde(rename = "rate_per_s", default, deserialize_with = "opt_non_negative")]
    pub rate: Option<f64>,
    /// The warm-up before measuring (merged: the longest).
    #[serde(rename = "warmup_us", with = "micros")]
    pub warmup: Duration,
    /// Measured time: from the end of the warm-up until every connection stopped, at
    /// most the duration (stream mode with a duration: the duration). Merged: the longest.
    #[serde(rename = "duration_us", with = "micros")]
    pub elapsed: Duration,
    /// Measured requests answered (round trips; UDP: without the lost ones; stream:
    /// chunks echoed, that is bytes received / size).
    pub requests: u64,
    /// Measured requests per connection that was set up, in connection order; their
    /// sum is `requests`.
    pub requests_per_connection: Vec<u64>,
    /// Requests per second over the measured time (merged: the sum of each run's: the
    /// runs are taken as concurrent).
    #[serde(deserialize_with = "non_negative")]
    pub rps: f64,
    /// Measured payload bytes sent: every byte written in the measured window
    /// (ping-pong: of every request sent, answered or not).
    pub bytes_sent: u64,
    /// Measured payload bytes received back.
    pub bytes_received: u64,
    /// Payload MB (10^6 bytes) echoed back per second (merged: the sum of each run's).
    #[serde(deserialize_with = "non_negative")]
    pub mb_per_s: f64,
    /// Latency percentiles of [`histogram`](Report::histogram), when a round trip was
    /// measured (JSON: `latency_min_us` … `latency_max_us`; recomputed when read).
    #[serde(flatten, skip_deserializing)]
    pub latency: Option<Latency>,
    /// All errors counted: the sum of `errors_by_kind`.
    #[serde(skip_deserializing)]
    pub errors: u64,
    /// Errors by kind: `refused`, `reset`, `closed` (the peer closed the connection),
    /// `timeout`, `os` (another system error), `check` (the connection check's 8-byte
    /// echo came back different); connect failures count under their kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The first error seen.
    #[serde(default)]
    pub first_error: Option<RunError>,
    /// Echoes whose bytes differed from those sent (stream: chunks with any byte that
    /// differed).
    pub mismatches: u64,
    /// Datagrams with no reply within the timeout.
    pub lost: u64,
    /// Datagram replies shorter than the datagram sent.
    pub truncated: u64,
    /// Datagram replies to datagrams already counted as lost.
    pub late: u64,
    /// Datagram replies to datagrams that had already been answered.
    #[serde(default)]
    pub duplicates: u64,
    /// Measured requests sent (ping-pong: those abandoned in flight at the end
    /// included; stream: chunks written).
    #[serde(rename = "sent_requests", default)]
    pub sent: u64,
    /// Requests (stream: chunks) sent in the whole run, warm-up included (files saved
    /// before: `sent_requests`).
    #[serde(rename = "sent_requests_total", default)]
    pub sent_total: u64,
    /// Requests sent by runs whose server answered none in the measured window: with
    /// [`requests`](Report::requests) at 0, a run's `sent_requests_total`. Merged: the
    /// sum over the runs, so one silent server among several is not hidden.
    #[serde(rename = "unanswered_requests", default)]
    pub unanswered: u64,
    /// Open loop: requests due in the measured window that were never sent (the
    /// connections fell behind the rate, or stopped on an error).
    #[serde(rename = "unsent_requests", default)]
    pub unsent: u64,
    /// TCP/Unix bytes sent that never came back (the peer closed, or no echoed byte
    /// came for one timeout, or the drain after the end timed out).
    pub lost_bytes: u64,
    /// Stream: bytes the server sent beyond those written to it (not echoes: they are
    /// neither chunks echoed nor compared).
    #[serde(default)]
    pub extra_bytes: u64,
    /// Why the run ended.
    pub stopped_by: StopReason,
    /// True when the run was stopped before its end (SIGINT, SIGTERM): the figures are
    /// those measured until then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// Round-trip latencies in nanoseconds (empty in stream mode).
    #[serde(with = "base64_form")]
    pub histogram: Histogram<u64>,
    /// The histogram's unit: `"ns"`.
    pub histogram_unit: HistogramUnit,
    /// CPU the load threads used, percent of one CPU over the load phase (Linux
    /// `/proc/thread-self/schedstat`; `None` merged).
    #[serde(
        default,
        serialize_with = "opt_tenths",
        deserialize_with = "opt_non_negative"
    )]
    pub cpu_pct: Option<f64>,
    /// Time the load threads were runnable but waited for a CPU, percent of the load
    /// phase per thread: above a few percent, other processes disturbed the run.
    #[serde(
        default,
        serialize_with = "opt_tenths",
        deserialize_with = "opt_non_negative"
    )]
    pub cpu_wait_pct: Option<f64>,
    /// Runs added up (1 for one run).
    #[serde(default = "one")]
    pub runs: u64,
}

impl Report {
    /// Measured requests per second.
    pub fn rps(&self) -> f64 {
        self.rps
    }

    /// Latency percentiles, when any round trip was measured.
    pub fn latency(&self) -> Option<Latency> {
        Latency::of(&self.histogram)
    }

    /// All errors.
    pub fn error_count(&self) -> u64 {
        self.errors_by_kind.values().sum()
    }

    /// True when data came back wrong or not at all: mismatches, lost or truncated
    /// datagrams, lost or extra bytes, or a run whose requests none were answered in
    /// the measured window.
    pub fn data_errors(&self) -> bool {
        self.mismatches + self.lost + self.truncated + self.lost_bytes + self.extra_bytes > 0
            || self.unanswered().is_some()
    }

    /// `Some(sent)` when requests (stream: chunks) were sent, warm-up included, and none
    /// was answered in the measured window: a server that does not reply (merged: the
    /// requests of such runs).
    pub fn unanswered(&self) -> Option<u64> {
        (self.unanswered > 0).then_some(self.unanswered)
    }

    /// True for merged runs.
    pub fn is_merged(&self) -> bool {
        self.stopped_by == StopReason::Merged
    }

    /// Fills the figures derived from the counts: `rps`, `mb_per_s`, `latency`, `errors`,
    /// `unanswered` (a run's own, from `requests` and `sent_total`).
    pub(crate) fn derive(&mut self) {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        self.rps = self.requests as f64 / secs;
        self.mb_per_s = self.bytes_received as f64 / 1e6 / secs;
        self.unanswered = if self.requests == 0 {
            self.sent_total
        } else {
            0
        };
        self.refresh();
    }

    /// Fills what is computed from other fields: `latency` and `errors`.
    pub(super) fn refresh(&mut self) {
        self.latency = Latency::of(&self.histogram);
        self.errors = self.error_count();
    }

    /// An empty report of a run of `transport`/`mode`/`size` against `target`.
    pub(crate) fn empty(target: &super::Target, mode: Mode, size: usize) -> Report {
        let (peer_host, peer_port, peer_path) = target.peer();
        Report {
            event: summary(),
            target: target.to_string(),
            transport: target.transport(),
            peer_host,
            peer_port,
            peer_path,
            mode,
            connections: 0,
            connected: 0,
            threads: 0,
            size: size as u64,
            rate: None,
            warmup: Duration::ZERO,
            elapsed: Duration::ZERO,
            requests: 0,
            requests_per_connection: Vec::new(),
            rps: 0.0,
            bytes_sent: 0,
            bytes_received: 0,
            mb_per_s: 0.0,
            latency: None,
            errors: 0,
            errors_by_kind: BTreeMap::new(),
            first_error: None,
            mismatches: 0,
            lost: 0,
            truncated: 0,
            late: 0,
            duplicates: 0,
            sent: 0,
            sent_total: 0,
            unanswered: 0,
            unsent: 0,
            lost_bytes: 0,
            extra_bytes: 0,
            stopped_by: StopReason::Duration,
            partial: false,
            histogram: new_histogram(),
            histogram_unit: HistogramUnit::Ns,
            cpu_pct: None,
            cpu_wait_pct: None,
            runs: 1,
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
