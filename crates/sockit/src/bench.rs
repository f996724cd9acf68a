//! The load generator: ping-pong and stream, TCP, UDP and Unix, with an HDR histogram.
//!
//! [`run`] opens [`Config::connections`] connections (or connected UDP sockets) spread
//! over [`Config::threads`] OS threads, each running its own single-threaded tokio
//! runtime, and drives them against an echo-style server:
//!
//! - **ping-pong** ([`Mode::PingPong`]): send a message of [`Config::size`] bytes, read
//!   exactly that many bytes back, compare them with what was sent, record the round
//!   trip's latency; repeat. Over UDP one datagram is in flight per socket; a reply that
//!   does not come within [`Config::timeout`] counts as *lost* (the datagram still uses
//!   up one request of the count), a shorter one as *truncated*, one with other bytes as
//!   a *mismatch*, a reply to an earlier datagram already counted lost as *late*, and a
//!   second reply to an answered datagram as a *duplicate*.
//! - **stream** ([`Mode::Stream`], TCP and Unix): write `size`-byte chunks continuously
//!   while reading the echo back and comparing it; the figures count what came back
//!   (chunks echoed = bytes received / size, MB/s echoed).
//! - **open loop** ([`Config::rate`]): requests are due at fixed intended times (the rate
//!   is split evenly over the connections) and latency is measured from the *intended*
//!   send time, so a stalled server shows in the percentiles instead of silently slowing
//!   the sender down (coordinated omission corrected, as wrk2 does).
//!
//! Contract: every run stops by itself. It is bounded in time ([`Config::duration`], or
//! at most [`MAX_DURATION`] with [`Config::count`] alone: ping-pong requests still in
//! flight then are abandoned, neither errors nor counted; stream mode waits at most one
//! timeout more for the echo of what it wrote) and in count ([`Config::count`], split
//! evenly over the connections). The connect phase is bounded by [`Config::connect_timeout`] as a whole.
//! Requests started during [`Config::warmup`] are not measured and do not use up the
//! count; data errors (mismatches, losses) are counted over the whole run.
//!
//! Latencies are recorded in nanoseconds in an [`hdrhistogram::Histogram`] (3 significant
//! digits, 1 ns to one hour); [`encode_histogram`] gives HdrHistogram's V2 compressed form
//! in base64 (the text HdrHistogram's own tools read), so results taken on several
//! machines can be merged with [`decode_histogram`] and [`merge_histograms`].
//!
//! The library never prints; [`run`] reports progress through a callback.
//!
//! # Examples
//! ```no_run
//! use std::time::Duration;
//! use sockit::bench::{self, Config, Target};
//!
//! let mut config = Config::new(Target::Tcp("127.0.0.1:7000".parse().unwrap()));
//! config.connections = 50;
//! config.duration = Some(Duration::from_secs(5));
//! let report = bench::run(&config, |_progress| {})?;
//! let p99 = report.latency().map(|l| l.p99_us);
//! println!("{:.0} round trips/s, p99 {p99:?} µs, {} mismatches", report.rps(), report.mismatches);
//! # Ok::<(), sockit::Error>(())
//! ```

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
pub use hdrhistogram;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Sleep;

use crate::error::{Error, Result};
use crate::sys::timer::TimerFd;

/// Longest run: the time limit of a run given only a count, and the largest `duration`.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Largest message (ping-pong) or chunk (stream) size in bytes: 16 MiB.
pub const MAX_SIZE: usize = 16 << 20;
/// Largest number of connections.
pub const MAX_CONNECTIONS: usize = 100_000;
/// Histogram range: 1 ns to one hour, 3 significant digits.
const HIST_HIGHEST_NS: u64 = 3_600_000_000_000;
const HIST_SIGFIG: u8 = 3;
/// Prime period of the payload pattern.
const PERIOD: usize = 251;
/// Read buffer: larger than a reply, so a complete read is a short read, which lets tokio
/// drop the socket's readiness without one more `read(2)` that would fail with EAGAIN.
const READ_BUF: usize = 64 * 1024;
/// Above this size a ping-pong message is written while its echo is read (else the
/// server's send buffer could fill while we are still writing).
const SEQUENTIAL_MAX: usize = 16 * 1024;
/// Connection setups in flight at once, per thread.
const CONNECT_CONCURRENCY: usize = 8;
/// The setup echo sent on each stream connection before the clock starts.
const HELLO: &[u8; 8] = b"SOCKIT\0\0";
/// The operation named in the setup echo's errors.
const CHECK: &str = "connection check (8-byte echo)";
/// Shortest per-request timeout: tokio's timer has a 1 ms resolution.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// UDP: how many recent datagrams' outcomes are remembered to tell a duplicate reply
/// (to an answered datagram) from a late one (to a lost datagram).
const UDP_HISTORY: usize = 4096;

/// Where the load goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP server (`SOCK_STREAM` over IP).
    Tcp(SocketAddr),
    /// A UDP server: one connected `SOCK_DGRAM` socket per connection.
    Udp(SocketAddr),
    /// A Unix stream socket: a path, or a Linux abstract name (`@name`).
    Unix(crate::unix::UnixAddr),
    /// A Unix datagram socket (`SOCK_DGRAM`): ping-pong as over UDP, from a client socket
    /// bound by Linux autobind so the server can answer it.
    UnixDgram(crate::unix::UnixAddr),
}

impl Target {
    /// The largest message of a datagram target (`None` for a stream): UDP's payload
    /// limit (65,507 bytes over IPv4, 65,527 over IPv6), and for Unix datagrams what
    /// the default socket buffer (212,992 bytes) lets one `send(2)` carry.
    pub fn max_datagram(&self) -> Option<usize> {
        match self {
            Target::Udp(a) => Some(if a.is_ipv4() {
                crate::echo::MAX_UDP_V4
            } else {
                crate::echo::MAX_UDP_V6
            }),
            Target::UnixDgram(_) => Some(crate::echo::MAX_UNIX_DGRAM),
            Target::Tcp(_) | Target::Unix(_) => None,
        }
    }

    /// `"tcp"`, `"udp"`, `"unix"` or `"unix-dgram"`.
    pub fn protocol(&self) -> &'static str {
        match self {
            Target::Tcp(_) => "tcp",
            Target::Udp(_) => "udp",
            Target::Unix(_) => "unix",
            Target::UnixDgram(_) => "unix-dgram",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) | Target::Udp(a) => write!(f, "{a}"),
            Target::Unix(a) | Target::UnixDgram(a) => write!(f, "{a}"),
        }
    }
}

/// What each connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send a message, read its echo whole, verify it, repeat (one request in flight).
    PingPong,
    /// Write continuously while reading the echo back (TCP and Unix only).
    Stream,
}

impl Mode {
    /// `"pingpong"` or `"stream"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::PingPong => "pingpong",
            Mode::Stream => "stream",
        }
    }
}

/// A benchmark's settings. [`Config::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server.
    pub target: Target,
    /// Ping-pong or stream.
    pub mode: Mode,
    /// Concurrent connections (UDP: sockets); default 1.
    pub connections: usize,
    /// OS threads, each with a single-threaded tokio runtime; connections are dealt out
    /// round-robin. Default: the number of CPUs this process may run on. Never more
    /// threads than connections are started.
    pub threads: usize,
    /// Message size (ping-pong) or write size (stream), in bytes; default 64.
    pub size: usize,
    /// Measured time (after the warm-up). `None`: 10 s, or with a `count` alone the
    /// time limit [`MAX_DURATION`].
    pub duration: Option<Duration>,
    /// Measured requests in total (UDP: datagrams sent, answered or lost; stream: chunks
    /// written), split evenly over the connections. `None`: as many as fit in the
    /// duration.
    pub count: Option<u64>,
    /// Load before measuring starts; default none.
    pub warmup: Duration,
    /// Open loop: requests per second over all connections, with latency measured from
    /// each request's intended send time. A connection that falls behind (one request
    /// in flight each) sends its overdue requests back to back until the end; requests
    /// due in the measured window that were never sent are counted in
    /// [`Report::unsent`]. `None`: closed loop (send as soon as the previous reply is in).
    pub rate: Option<f64>,
    /// Time limit of the whole connect phase (all connections); default 10 s.
    pub connect_timeout: Duration,
    /// Per-request reply timeout, at least [`MIN_TIMEOUT`], counted from the send. UDP:
    /// a datagram with no reply by then is lost (default 200 ms). TCP and Unix: a
    /// request still unanswered by then ends its connection with a `timeout` error
    /// (default 5 s). Stream mode: a connection owed echoed bytes that receives none
    /// for this long (a writer blocked by a server that stopped reading is owed its bytes in
    /// flight) ends with a `timeout`
    /// error (the bytes not back are lost); it also bounds the wait for the echo after
    /// the end.
    pub timeout: Option<Duration>,
    /// Compare echoed bytes with the bytes sent (default true).
    pub verify: bool,
}

impl Config {
    /// The defaults for a target: ping-pong, 1 connection, 64 bytes, 10 s, no warm-up.
    pub fn new(target: Target) -> Config {
        Config {
            target,
            mode: Mode::PingPong,
            connections: 1,
            threads: default_threads(),
            size: 64,
            duration: None,
            count: None,
            warmup: Duration::ZERO,
            rate: None,
            connect_timeout: Duration::from_secs(10),
            timeout: None,
            verify: true,
        }
    }

    /// The per-request timeout in effect (the default depends on the protocol).
    pub fn effective_timeout(&self) -> Duration {
        self.timeout.unwrap_or(match self.target {
            Target::Udp(_) | Target::UnixDgram(_) => Duration::from_millis(200),
            _ => Duration::from_secs(5),
        })
    }

    /// The measured time limit in effect.
    pub fn effective_duration(&self) -> Duration {
        match (self.duration, self.count) {
            (Some(d), _) => d,
            (None, Some(_)) => MAX_DURATION,
            (None, None) => Duration::from_secs(10),
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the setting:
    /// connections outside 1..=100,000, zero threads, a size outside 1..=16 MiB (UDP:
    /// 8 (the sequence number) to 65,507 bytes over IPv4, 65,527 over IPv6), a zero or longer-than-an-hour duration,
    /// a zero count, a warm-up over an hour, a rate that is not a positive number up to
    /// 10,000,000/s, a timeout under [`MIN_TIMEOUT`], a zero connect timeout, stream mode
    /// over UDP, or a rate with stream mode.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid_input("bench", m));
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return bad(format!(
                "connections must be 1-{MAX_CONNECTIONS}, not {}",
                self.connections
            ));
        }
        if self.threads == 0 {
            return bad("threads must be at least 1".into());
        }
        if self.size == 0 || self.size > MAX_SIZE {
            return bad(format!(
                "size must be 1-{MAX_SIZE} bytes, not {}",
                self.size
            ));
        }
        if let Some(max) = self.target.max_datagram() {
            let what = if let Target::Udp(_) = self.target {
                "a UDP datagram"
            } else {
                "a Unix datagram (Linux's default net.core.wmem_max)"
            };
            if self.size > max {
                return bad(format!(
                    "{what} holds at most {max} bytes, not {}",
                    self.size
                ));
            }
            if self.mode == Mode::Stream {
                return bad(
                    "stream mode needs a stream socket, TCP or Unix (datagrams are ping-pong only)"
                        .into(),
                );
            }
            if self.size < 8 {
                return bad(format!(
                    "datagrams need a size of at least 8 bytes: each carries its 8-byte sequence number (not {})",
                    self.size
                ));
            }
        }
        if let Some(d) = self.duration
            && (d.is_zero() || d > MAX_DURATION)
        {
            return bad(format!(
                "duration must be above 0 and at most {MAX_DURATION:?}"
            ));
        }
        if self.count == Some(0) {
            return bad("count must be at least 1".into());
        }
        if self.warmup > MAX_DURATION {
            return bad(format!("warm-up must be at most {MAX_DURATION:?}"));
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0 && r <= 10_000_000.0) {
                return bad(format!(
                    "rate must be above 0 and at most 10000000 per second, not {r}"
                ));
            }
            if self.mode == Mode::Stream {
                return bad("a rate applies to ping-pong, not stream mode".into());
            }
        }
        if let Some(t) = self.timeout
            && t < MIN_TIMEOUT
        {
            return bad(format!(
                "timeout must be at least 0.001 s (1 ms, the timer's resolution), not {t:?}"
            ));
        }
        if self.connect_timeout.is_zero() {
            return bad("timeouts must be above 0".into());
        }
        Ok(())
    }
}

/// The number of CPUs this process may run on (its affinity mask), at least 1.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The duration was over.
    Duration,
    /// Every connection did its share of the count.
    Count,
    /// A count was given and the time limit came first.
    TimeLimit,
    /// Every connection ended with an error.
    Errors,
}

impl StopReason {
    /// `"duration"`, `"count"`, `"time_limit"` or `"errors"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Count => "count",
            StopReason::TimeLimit => "time_limit",
            StopReason::Errors => "errors",
        }
    }
}

/// Latency percentiles of a histogram recorded in nanoseconds, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Smallest value, µs.
    pub min_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Largest value, µs.
    pub max_us: f64,
}

impl Latency {
    /// The percentiles of a nanosecond histogram; `None` when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(Latency {
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        })
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The server.
    pub target: Target,
    /// Ping-pong or stream.
    pub mode: Mode,
    /// Connections asked for.
    pub connections: usize,
    /// Connections that were set up (connected, and for TCP/Unix one echo returned).
    pub connected: usize,
    /// Threads used.
    pub threads: usize,
    /// Message or chunk size, bytes.
    pub size: usize,
    /// The open-loop rate asked for, requests per second.
    pub rate: Option<f64>,
    /// The warm-up before measuring.
    pub warmup: Duration,
    /// Measured time: from the end of the warm-up until every connection stopped, at
    /// most the duration (stream mode with a duration: the duration).
    pub elapsed: Duration,
    /// Measured requests answered (round trips; UDP: without the lost ones; stream:
    /// chunks echoed, that is bytes received / size).
    pub requests: u64,
    /// Measured requests sent (ping-pong: those abandoned in flight at the end
    /// included; stream: chunks written).
    pub sent: u64,
    /// Requests (stream: chunks) sent in the whole run, warm-up included: with
    /// [`requests`](Report::requests) at 0, the server answered none of them in the
    /// measured window (see [`Report::unanswered`]).
    pub sent_total: u64,
    /// Open loop: requests due in the measured window that were never sent (the
    /// connections fell behind the rate, or stopped on an error).
    pub unsent: u64,
    /// Measured requests per connection that was set up, in connection order; their
    /// sum is `requests`.
    pub requests_per_connection: Vec<u64>,
    /// Measured payload bytes sent: every byte written in the measured window
    /// (ping-pong: of every request sent, answered or not).
    pub bytes_sent: u64,
    /// Measured payload bytes received back.
    pub bytes_received: u64,
    /// Errors by kind: `refused`, `reset`, `closed` (the peer closed the connection),
    /// `timeout`, `os` (another system error), `check` (the connection check's 8-byte
    /// echo came back different); connect failures count under their kind.
    pub errors: BTreeMap<String, u64>,
    /// The first error seen, with its operation.
    pub first_error: Option<Error>,
    /// The kind [`errors`](Report::errors) counts `first_error` under (`closed`, …).
    pub first_error_kind: Option<String>,
    /// Echoes whose bytes differed from those sent (stream: chunks with any byte that
    /// differed).
    pub mismatches: u64,
    /// UDP datagrams with no reply within the timeout.
    pub lost: u64,
    /// UDP replies shorter than the datagram sent.
    pub truncated: u64,
    /// UDP replies to datagrams already counted as lost.
    pub late: u64,
    /// UDP replies to datagrams that had already been answered.
    pub duplicates: u64,
    /// TCP/Unix bytes sent that never came back (the peer closed, or no echoed byte
    /// came for one timeout, or the drain after the end timed out).
    pub lost_bytes: u64,
    /// Stream: bytes the server sent beyond those written to it (not echoes: they are
    /// neither chunks echoed nor compared).
    pub extra_bytes: u64,
    /// Why the run ended.
    pub stopped_by: StopReason,
    /// Round-trip latencies in nanoseconds (empty in stream mode).
    pub histogram: Histogram<u64>,
    /// Wall time of the load phase (warm-up, measured time and the last replies).
    pub load_time: Duration,
    /// CPU time the load threads used in the load phase (Linux
    /// `/proc/thread-self/schedstat`; zero elsewhere).
    pub cpu_time: Duration,
    /// Time the load threads were runnable but waiting for a CPU in the load phase: a
    /// direct measure of contention from other processes (zero where unknown).
    pub cpu_wait: Duration,
}

impl Report {
    /// Measured requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Measured payload MB (10^6 bytes) echoed back per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes_received as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency percentiles, when any round trip was measured.
    pub fn latency(&self) -> Option<Latency> {
        Latency::of(&self.histogram)
    }

    /// CPU used by the load threads, percent of one CPU over the load phase.
    pub fn cpu_pct(&self) -> f64 {
        100.0 * self.cpu_time.as_secs_f64() / self.load_time.as_secs_f64().max(1e-9)
    }

    /// Time the load threads waited for a CPU, percent of the load phase per thread
    /// (above a few percent, other processes disturbed the measurement).
    pub fn cpu_wait_pct(&self) -> f64 {
        100.0 * self.cpu_wait.as_secs_f64()
            / (self.load_time.as_secs_f64() * self.threads as f64).max(1e-9)
    }

    /// All errors.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// True when data came back wrong or not at all: mismatches, lost or truncated
    /// datagrams, lost or extra bytes, or requests sent and none answered in the
    /// measured window.
    pub fn data_errors(&self) -> bool {
        self.mismatches + self.lost + self.truncated + self.lost_bytes + self.extra_bytes > 0
            || self.unanswered().is_some()
    }

    /// `Some(sent)` when requests (stream: chunks) were sent, warm-up included, and none
    /// was answered in the measured window: a server that does not reply.
    pub fn unanswered(&self) -> Option<u64> {
        (self.requests == 0 && self.sent_total > 0).then_some(self.sent_total)
    }
}

/// A look at a run in progress, given to [`run`]'s callback about ten times a second.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Time since the load started (warm-up included).
    pub elapsed: Duration,
    /// Warm-up plus the measured time limit.
    pub planned: Duration,
    /// False during the warm-up.
    pub measuring: bool,
    /// Measured requests so far.
    pub requests: u64,
    /// Connections set up.
    pub connected: usize,
}

// ---------------------------------------------------------------- histograms

/// A new empty latency histogram (nanoseconds, 1 ns to one hour, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_HIGHEST_NS, HIST_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// Encodes a histogram in HdrHistogram's V2 compressed (deflate) form, in base64.
///
/// # Errors
/// [`ErrorKind::Os`](crate::ErrorKind::Os) if the serializer fails (it does not for
/// histograms made by this module).
pub fn encode_histogram(h: &Histogram<u64>) -> Result<String> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| Error::new(crate::ErrorKind::Os, "histogram", None, format!("{e:?}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// Decodes a histogram from base64 HdrHistogram V2 form (compressed or not).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for text that is not
/// base64 or bytes that are not an HdrHistogram.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>> {
    const V2: u32 = 0x1c84_9313;
    const V2_DEFLATE: u32 = 0x1c84_9314;
    /// Largest uncompressed histogram accepted (a 1 ns..1 h histogram is far smaller).
    const MAX_BYTES: u64 = 64 << 20;
    let bad = |m: String| Error::invalid_input("histogram", m);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| bad(format!("not base64: {e}")))?;
    let cookie = |b: &[u8]| {
        b.get(..4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    };
    // Inflate here, bounded, and check the declared payload length against the bytes
    // there are: the deserializer would allocate whatever length the header claims.
    let plain = match cookie(&bytes) {
        Some(V2_DEFLATE) => {
            use std::io::Read as _;
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(bytes.get(8..).unwrap_or_default())
                .take(MAX_BYTES)
                .read_to_end(&mut out)
                .map_err(|e| bad(format!("bad compressed histogram: {e}")))?;
            out
        }
        Some(V2) => bytes,
        _ => return Err(bad("not an HdrHistogram V2 encoding".into())),
    };
    let declared = plain.get(4..8).map_or(u64::MAX, |c| {
        u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    });
    if cookie(&plain) != Some(V2) || declared > plain.len() as u64 {
        return Err(bad("truncated or inconsistent HdrHistogram".into()));
    }
    Deserializer::new()
        .deserialize(&mut &plain[..])
        .map_err(|e| bad(format!("not an HdrHistogram: {e:?}")))
}

/// Adds histograms together (their ranges may differ).
pub fn merge_histograms<'a>(hs: impl IntoIterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut out = new_histogram();
    out.auto(true);
    for h in hs {
        // with auto-resize on, adding cannot fail for want of range
        let _ = out.add(h);
    }
    out
}

// ---------------------------------------------------------------- the run

/// Runs a benchmark to its end, calling `on_progress` about ten times a second.
///
/// Blocks the calling thread; starts `min(threads, connections)` OS threads.
///
/// # Errors
/// - [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) from
///   [`Config::validate`].
/// - The first connect error (for example `connect: [Errno 111] Connection refused`, or
///   [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)) when no connection could be set
///   up. Errors after that are counted in the [`Report`], not returned.
pub fn run(config: &Config, mut on_progress: impl FnMut(&Progress)) -> Result<Report> {
    config.validate()?;
    let nthreads = config.threads.min(config.connections).max(1);
    let shared = Arc::new(Shared {
        cfg: config.clone(),
        timeout: config.effective_timeout(),
        pat: pattern(config.size.max(READ_BUF) + PERIOD),
        slots: (0..nthreads).map(|_| Slot(AtomicU64::new(0))).collect(),
    });
    let (ready_tx, ready_rx) = mpsc::channel::<(usize, usize, Vec<ConnError>)>();
    let mut go_txs = Vec::with_capacity(nthreads);
    let mut handles = Vec::with_capacity(nthreads);
    let connect_deadline = Instant::now() + config.connect_timeout;
    for t in 0..nthreads {
        let n = (config.connections - t).div_ceil(nthreads);
        let (go_tx, go_rx) = mpsc::channel::<Option<Go>>();
        go_txs.push(go_tx);
        let (shared, ready_tx) = (shared.clone(), ready_tx.clone());
        let h = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || worker(t, n, shared, connect_deadline, ready_tx, go_rx))
            .map_err(|e| Error::from_io("bench thread", e))?;
        handles.push(h);
    }
    drop(ready_tx);

    // 1. every thread sets up its connections
    let mut ok_per_thread = vec![0usize; nthreads];
    let mut connect_errors = Vec::new();
    for _ in 0..nthreads {
        match ready_rx.recv() {
            Ok((t, ok, errs)) => {
                ok_per_thread[t] = ok;
                connect_errors.extend(errs);
            }
            Err(_) => break, // a thread died; its join below reports it
        }
    }
    let connected: usize = ok_per_thread.iter().sum();
    if connected == 0 {
        for tx in &go_txs {
            let _ = tx.send(None);
        }
        for h in handles {
            let _ = h.join();
        }
        return Err(connect_errors
            .into_iter()
            .next()
            .map(|(_, e)| e)
            .unwrap_or_else(|| Error::new(crate::ErrorKind::Os, "bench", None, "no connection")));
    }

    // 2. the clock starts for everyone at once
    let start = Instant::now();
    let measure = start + config.warmup;
    let end = measure + config.effective_duration();
    let mut first = 0;
    for (t, tx) in go_txs.iter().enumerate() {
        let _ = tx.send(Some(Go {
            clock: Clock {
                start,
                measure,
                end,
            },
            first_index: first,
            connected,
        }));
        first += ok_per_thread[t];
    }
    let planned = config.warmup + config.effective_duration();
    let snapshot = |shared: &Shared| {
        let now = Instant::now();
        Progress {
            elapsed: now - start,
            planned,
            measuring: now >= measure,
            requests: shared
                .slots
                .iter()
                .map(|s| s.0.load(Ordering::Relaxed))
                .sum(),
            connected,
        }
    };
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        on_progress(&snapshot(&shared));
    }
    on_progress(&snapshot(&shared));

    // 3. results
    let mut per_conn: Vec<(usize, ConnStats)> = Vec::with_capacity(connected);
    let mut hists = Vec::with_capacity(nthreads);
    let mut finished: Option<Instant> = None;
    let (mut cpu, mut wait) = (Duration::ZERO, Duration::ZERO);
    for h in handles {
        let tr = h.join().map_err(|_| {
            Error::new(
                crate::ErrorKind::Os,
                "bench",
                None,
                "a load thread panicked",
            )
        })?;
        per_conn.extend(tr.conns);
        hists.push(tr.hist);
        finished = finished.max(Some(tr.finished));
        cpu += tr.cpu;
        wait += tr.wait;
    }
    let load_time = start.elapsed();
    per_conn.sort_by_key(|(i, _)| *i);
    let histogram = merge_histograms(&hists);
    let mut errors = BTreeMap::new();
    let mut first_error = None;
    let mut first_error_kind = None;
    for (kind, e) in connect_errors {
        *errors.entry(kind.to_string()).or_insert(0) += 1;
        first_error_kind.get_or_insert_with(|| kind.to_string());
        first_error.get_or_insert(e);
    }
    let mut r = Report {
        target: config.target.clone(),
        mode: config.mode,
        connections: config.connections,
        connected,
        threads: nthreads,
        size: config.size,
        rate: config.rate,
        warmup: config.warmup,
        elapsed: Duration::ZERO,
        requests: 0,
        sent: 0,
        sent_total: 0,
        unsent: 0,
        requests_per_connection: Vec::with_capacity(connected),
        bytes_sent: 0,
        bytes_received: 0,
        errors,
        first_error,
        first_error_kind,
        mismatches: 0,
        lost: 0,
        truncated: 0,
        late: 0,
        duplicates: 0,
        lost_bytes: 0,
        extra_bytes: 0,
        stopped_by: StopReason::Duration,
        histogram,
        load_time,
        cpu_time: cpu,
        cpu_wait: wait,
    };
    let mut errored = 0;
    for (_, c) in per_conn {
        r.requests += c.requests;
        r.sent += c.sent;
        r.sent_total += c.sent_all;
        r.extra_bytes += c.extra_bytes;
        r.unsent += c.unsent;
        r.requests_per_connection.push(c.requests);
        r.bytes_sent += c.bytes_sent;
        r.bytes_received += c.bytes_received;
        r.mismatches += c.mismatches;
        r.lost += c.lost;
        r.truncated += c.truncated;
        r.late += c.late;
        r.duplicates += c.duplicates;
        r.lost_bytes += c.lost_bytes;
        if let Some((kind, e)) = c.error {
            errored += 1;
            *r.errors.entry(kind.to_string()).or_insert(0) += 1;
            if r.first_error.is_none() {
                r.first_error_kind = Some(kind.to_string());
            }
            r.first_error.get_or_insert(e);
        }
    }
    // The run's real measured time: from the end of the warm-up until the last connection
    // stopped (not until the last reply, which made one quick request look like thousands
    // per second), and never past the end (requests in flight then were abandoned).
    // Stream mode too: connections that all died early end the measured time there.
    r.elapsed = finished.unwrap_or_else(Instant::now).min(end).max(measure) - measure;
    r.stopped_by = if errored == connected {
        StopReason::Errors
    } else if let Some(n) = config.count {
        if r.requests + r.lost >= n {
            StopReason::Count
        } else {
            StopReason::TimeLimit
        }
    } else {
        StopReason::Duration
    };
    Ok(r)
}

/// Builds the payload pattern: bytes 0..PERIOD repeated.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % PERIOD) as u8).collect()
}

/// Message `seq` of connection `id`: a slice of the pattern at a rotating offset, with
/// the sequence number in its first 8 bytes (when it fits).
fn fill_msg(buf: &mut [u8], pat: &[u8], id: usize, seq: u64) {
    let off = (id.wrapping_mul(37) + (seq as usize).wrapping_mul(13)) % PERIOD;
    let m = buf.len();
    buf.copy_from_slice(&pat[off..off + m]);
    if m >= 8 {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
    }
}

/// A progress counter on its own cache line (one writer: its thread).
#[repr(align(128))]
struct Slot(AtomicU64);

struct Shared {
    cfg: Config,
    timeout: Duration,
    pat: Vec<u8>,
    slots: Vec<Slot>,
}

#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    measure: Instant,
    end: Instant,
}

struct Go {
    clock: Clock,
    first_index: usize,
    connected: usize,
}

type ConnError = (&'static str, Error);

#[derive(Default)]
struct ConnStats {
    requests: u64,
    sent: u64,
    /// Requests (stream: chunks) sent, warm-up included.
    sent_all: u64,
    /// Stream: bytes received beyond those written.
    extra_bytes: u64,
    unsent: u64,
    duplicates: u64,
    bytes_sent: u64,
    bytes_received: u64,
    mismatches: u64,
    lost: u64,
    truncated: u64,
    late: u64,
    lost_bytes: u64,
    error: Option<ConnError>,
    last_done: Option<Instant>,
}

struct ThreadResult {
    conns: Vec<(usize, ConnStats)>,
    hist: Histogram<u64>,
    /// When this thread's connections had all stopped.
    finished: Instant,
    /// On-CPU and runnable-but-waiting time of this thread during the load phase.
    cpu: Duration,
    wait: Duration,
}

/// This thread's (on-CPU, waiting-for-a-CPU) times from `/proc/thread-self/schedstat`
/// (zero where there is no such file).
fn sched_times() -> (Duration, Duration) {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut f = text
        .split_whitespace()
        .map(|x| Duration::from_nanos(x.parse().unwrap_or(0)));
    (f.next().unwrap_or_default(), f.next().unwrap_or_default())
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Udp(tokio::net::UdpSocket),
    Unix(tokio::net::UnixStream),
    UnixDgram(tokio::net::UnixDatagram),
}

thread_local! {
    /// This thread's latency histogram (every connection of a thread records here).
    static HIST: RefCell<Histogram<u64>> = RefCell::new(new_histogram());
    /// This thread's measured requests, published to its progress slot.
    static DONE: Cell<u64> = const { Cell::new(0) };
}

fn kind_of(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::TimedOut => "timeout",
        io::ErrorKind::ConnectionRefused => "refused",
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "reset",
        io::ErrorKind::UnexpectedEof => "closed",
        _ => "os",
    }
}

/// [`kind_of`] for an error the library already made (its errno, or a timeout).
fn kind_of_error(e: &Error) -> &'static str {
    match (e.kind(), e.code()) {
        (crate::ErrorKind::Timeout, _) => "timeout",
        (_, Some(errno)) => kind_of(&io::Error::from_raw_os_error(errno)),
        _ => "os",
    }
}

/// The word [`Report::errors`] counts an error under (`refused`, `reset`, `closed`,
/// `timeout`, `os`, `check`), for an error [`run`] returned: a run that failed as a whole
/// names its error as a partly failed run counts it.
/// Errors of other kinds (a name lookup's, bad input) keep their kind's name.
pub fn error_kind_name(e: &Error) -> &'static str {
    match e.kind() {
        crate::ErrorKind::Protocol if e.op() == CHECK => "check",
        crate::ErrorKind::Os if e.code().is_none() && e.message() == CLOSED => "closed",
        crate::ErrorKind::Os | crate::ErrorKind::Timeout => kind_of_error(e),
        k => k.as_str(),
    }
}

/// The message of a peer's close.
const CLOSED: &str = "the peer closed the connection";

fn io_err(op: &'static str, e: io::Error) -> ConnError {
    (kind_of(&e), Error::from_io(op, e))
}

fn timeout_err(op: &'static str) -> ConnError {
    ("timeout", Error::timeout(op))
}

fn closed_err(op: &'static str) -> ConnError {
    ("closed", Error::new(crate::ErrorKind::Os, op, None, CLOSED))
}

/// One load thread: set up its connections, wait for the clock, run them.
fn worker(
    t: usize,
    n: usize,
    shared: Arc<Shared>,
    connect_deadline: Instant,
    ready: mpsc::Sender<(usize, usize, Vec<ConnError>)>,
    go: mpsc::Receiver<Option<Go>>,
) -> ThreadResult {
    let empty = || ThreadResult {
        conns: Vec::new(),
        hist: new_histogram(),
        finished: Instant::now(),
        cpu: Duration::ZERO,
        wait: Duration::ZERO,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send((t, 0, vec![io_err("bench runtime", e)]));
            return empty();
        }
    };
    if shared.cfg.rate.is_some() {
        // open-loop pacing: let the kernel fire this thread's timers within 1 µs
        let _ = crate::sys::timer::set_timer_slack(1_000);
    }
    let (conns, errs) = rt.block_on(connect_all(n, &shared, connect_deadline));
    let _ = ready.send((t, conns.len(), errs));
    // drop the sender now: if another thread died before reporting, the main thread's
    // wait for reports ends once every live thread has reported
    drop(ready);
    let Ok(Some(go)) = go.recv() else {
        return empty();
    };
    let (cpu0, wait0) = sched_times();
    let local = tokio::task::LocalSet::new();
    let results = local.block_on(&rt, async {
        let mut tasks = Vec::with_capacity(conns.len());
        for (i, conn) in conns.into_iter().enumerate() {
            let gidx = go.first_index + i;
            let budget = shared.cfg.count.map(|c| {
                let k = go.connected as u64;
                c / k + u64::from((gidx as u64) < c % k)
            });
            let ctx = Ctx {
                shared: shared.clone(),
                thread: t,
                clock: go.clock,
                id: gidx,
                budget,
                first_send: shared.cfg.rate.map(|r| {
                    let interval = go.connected as f64 / r;
                    go.clock.start
                        + Duration::from_secs_f64(interval * gidx as f64 / go.connected as f64)
                }),
                interval: shared
                    .cfg
                    .rate
                    .map(|r| Duration::from_secs_f64(go.connected as f64 / r)),
            };
            tasks.push(tokio::task::spawn_local(async move {
                let st = match conn {
                    Conn::Tcp(mut s) => {
                        let (r, w) = s.split();
                        drive_stream(r, w, &ctx).await
                    }
                    Conn::Unix(mut s) => {
                        let (r, w) = s.split();
                        drive_stream(r, w, &ctx).await
                    }
                    Conn::Udp(s) => udp_pingpong(&s, &ctx).await,
                    Conn::UnixDgram(s) => udp_pingpong(&s, &ctx).await,
                };
                (gidx, st)
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await {
                Ok(r) => out.push(r),
                Err(_) => out.push((
                    go.first_index + i,
                    ConnStats {
                        error: Some((
                            "os",
                            Error::new(crate::ErrorKind::Os, "bench", None, "task failed"),
                        )),
                        ..ConnStats::default()
                    },
                )),
            }
        }
        out
    });
    let finished = Instant::now();
    let (cpu1, wait1) = sched_times();
    let hist = HIST.with(|h| std::mem::replace(&mut *h.borrow_mut(), new_histogram()));
    ThreadResult {
        conns: results,
        hist,
        finished,
        cpu: cpu1.saturating_sub(cpu0),
        wait: wait1.saturating_sub(wait0),
    }
}

/// Sets up `n` connections, `CONNECT_CONCURRENCY` at a time, all by `deadline`.
async fn connect_all(
    n: usize,
    shared: &Arc<Shared>,
    deadline: Instant,
) -> (Vec<Conn>, Vec<ConnError>) {
    let sem = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let mut set = Vec::with_capacity(n);
    for _ in 0..n {
        let (sem, shared) = (sem.clone(), shared.clone());
        set.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            connect_one(&shared, deadline).await
        }));
    }
    let (mut ok, mut errs) = (Vec::new(), Vec::new());
    for h in set {
        match h.await {
            Ok(Ok(c)) => ok.push(c),
            Ok(Err(e)) => errs.push(e),
            Err(_) => errs.push((
                "os",
                Error::new(crate::ErrorKind::Os, "connect", None, "task failed"),
            )),
        }
    }
    (ok, errs)
}

/// Connects one socket; TCP and Unix then do one 8-byte echo, the connection check (so
/// every connection has been accepted before the clock starts). With verification on,
/// an echo with other bytes fails the connection with a `check` error.
///
/// Bounded by `deadline` (the connect phase's end): running out while connecting is a
/// `connect` timeout, while checking a timeout of the check (its op names it).
async fn connect_one(shared: &Shared, deadline: Instant) -> std::result::Result<Conn, ConnError> {
    /// The connection check, within one request timeout (a server that accepts and
    /// never answers fails here, not after the whole connect phase). Its errors name it.
    async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
        s: &mut S,
        timeout: Duration,
        deadline: Instant,
        verify: bool,
    ) -> std::result::Result<(), ConnError> {
        let exchange = async {
            s.write_all(HELLO).await.map_err(|e| io_err("send", e))?;
            let mut back = [0u8; 8];
            s.read_exact(&mut back).await.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    closed_err("recv")
                } else {
                    io_err("recv", e)
                }
            })?;
            Ok(back)
        };
        let until = (Instant::now() + timeout).min(deadline);
        let back = tokio::time::timeout_at(tokio::time::Instant::from_std(until), exchange)
            .await
            .unwrap_or_else(|_| Err(timeout_err("recv")))
            .map_err(|(kind, e)| {
                let op = format!("{CHECK}: {}", e.op());
                (kind, e.with_op(op))
            })?;
        if verify && &back != HELLO {
            return Err((
                "check",
                Error::protocol(
                    CHECK,
                    format!("the echo came back as {back:02x?}, not the 8 bytes sent"),
                ),
            ));
        }
        Ok(())
    }
    let (timeout, verify) = (shared.timeout, shared.cfg.verify);
    let dl = tokio::time::Instant::from_std(deadline);
    match &shared.cfg.target {
        Target::Tcp(a) => {
            let mut s = tokio::time::timeout_at(dl, tokio::net::TcpStream::connect(a))
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
                .map_err(|e| {
                    if e.kind() == io::ErrorKind::TimedOut {
                        timeout_err("connect")
                    } else {
                        io_err("connect", e)
                    }
                })?;
            s.set_nodelay(true).map_err(|e| io_err("setsockopt", e))?;
            hello(&mut s, timeout, deadline, verify).await?;
            Ok(Conn::Tcp(s))
        }
        Target::Unix(a) => {
            // The library's connect (path or abstract name), off the runtime thread:
            // a full backlog blocks it, for at most the connect timeout.
            let (a, limit) = (a.clone(), shared.cfg.connect_timeout);
            let blocking =
                tokio::task::spawn_blocking(move || crate::unix::connect_stream(&a, Some(limit)));
            let std = tokio::time::timeout_at(dl, blocking)
                .await
                .map_err(|_| timeout_err("connect"))?
                .map_err(|_| {
                    (
                        "os",
                        Error::new(crate::ErrorKind::Os, "connect", None, "task failed"),
                    )
                })?
                .map_err(|e| (kind_of_error(&e), e))?;
            let mut s = tokio::net::UnixStream::from_std(std).map_err(|e| io_err("connect", e))?;
            hello(&mut s, timeout, deadline, verify).await?;
            Ok(Conn::Unix(s))
        }
        Target::UnixDgram(a) => {
            let std = crate::unix::connect_datagram(a).map_err(|e| (kind_of_error(&e), e))?;
            // room for the largest datagram (as echo-server's): a send buffer of N bytes
            // holds only N minus the kernel's overhead
            let _ = socket2::SockRef::from(&std).set_send_buffer_size(crate::echo::MAX_UNIX_DGRAM);
            let s = tokio::net::UnixDatagram::from_std(std).map_err(|e| io_err("connect", e))?;
            Ok(Conn::UnixDgram(s))
        }
        Target::Udp(a) => {
            let bind: SocketAddr = if a.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = tokio::net::UdpSocket::bind(bind)
                .await
                .map_err(|e| io_err("bind", e))?;
            s.connect(a).await.map_err(|e| io_err("connect", e))?;
            Ok(Conn::Udp(s))
        }
    }
}

/// One connection's view of the run.
struct Ctx {
    shared: Arc<Shared>,
    thread: usize,
    clock: Clock,
    id: usize,
    /// Measured requests this connection may make.
    budget: Option<u64>,
    /// Open loop: the first intended send time and the interval.
    first_send: Option<Instant>,
    interval: Option<Duration>,
}

impl Ctx {
    /// Counts one measured request: the latency, the thread's progress.
    fn record(&self, latency: Duration) {
        let ns = (latency.as_nanos().min(u128::from(HIST_HIGHEST_NS)) as u64).max(1);
        HIST.with(|h| {
            let _ = h.borrow_mut().record(ns);
        });
        let done = DONE.with(|d| {
            let v = d.get() + 1;
            d.set(v);
            v
        });
        self.shared.slots[self.thread]
            .0
            .store(done, Ordering::Relaxed);
    }

    /// A timer finer than tokio's 1 ms wheel for open-loop pacing (`None`: closed loop,
    /// or no timerfd available, then tokio's timer is used).
    fn pacer(&self) -> Option<AsyncFd<TimerFd>> {
        self.interval?;
        crate::sys::timer::register(TimerFd::new().ok()?).ok()
    }

    /// The intended time of the next request (open loop) or now, or `None` when the run
    /// is over for this connection (its count done, or the end reached: no request is
    /// sent after the end). Sleeps until an open-loop request is due.
    async fn next_start(
        &self,
        seq: u64,
        measured: u64,
        pacer: &Option<AsyncFd<TimerFd>>,
    ) -> Option<Instant> {
        if self.budget.is_some_and(|b| measured >= b) {
            return None;
        }
        let t = match (self.first_send, self.interval) {
            (Some(first), Some(iv)) => {
                let due = first + iv.mul_f64(seq as f64);
                if due >= self.clock.end {
                    // Open loop: the run lasts its duration even when no request is due
                    // before the end (`--rate 0.001 --duration 0.5` takes 0.5 s).
                    wait_until(self.clock.end, pacer).await;
                    return None;
                }
                // overdue requests go out back to back, but none after the end
                if Instant::now() >= self.clock.end {
                    return None;
                }
                wait_until(due, pacer).await;
                due
            }
            _ => {
                let now = Instant::now();
                if now >= self.clock.end {
                    return None;
                }
                now
            }
        };
        Some(t)
    }

    /// Open loop: how many requests were due in the measured window (the end of the
    /// warm-up to the end), at most this connection's count; 0 in closed loop.
    fn due_in_window(&self) -> u64 {
        let (Some(first), Some(iv)) = (self.first_send, self.interval) else {
            return 0;
        };
        let due = |k: u64| first + iv.mul_f64(k as f64);
        // the number of requests due before `t`, computed as `next_start` computes times
        let before = |t: Instant| -> u64 {
            if t <= first {
                return 0;
            }
            let mut k = ((t - first).as_secs_f64() / iv.as_secs_f64()).ceil() as u64;
            for _ in 0..4 {
                if k > 0 && due(k - 1) >= t {
                    k -= 1;
                } else if due(k) < t {
                    k += 1;
                } else {
                    break;
                }
            }
            k
        };
        let n = before(self.clock.end).saturating_sub(before(self.clock.measure));
        self.budget.map_or(n, |b| n.min(b))
    }
}

/// Waits until `due`: with the timerfd when there is one (tokio's timer wheel fires up to
/// 1 ms late, which open-loop latency would count against the server), else tokio's timer.
async fn wait_until(due: Instant, pacer: &Option<AsyncFd<TimerFd>>) {
    let now = Instant::now();
    if due <= now {
        return;
    }
    if let Some(t) = pacer
        && t.get_ref().set_after(due - now).is_ok()
    {
        // bounded: the timer fires once, at `due`
        for _ in 0..1_000_000 {
            let Ok(mut guard) = t.readable().await else {
                break;
            };
            match t.get_ref().expirations() {
                Ok(0) => guard.clear_ready(),
                Ok(_) => {
                    guard.clear_ready();
                    return;
                }
                Err(_) => break,
            }
        }
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
}

/// The kind of the pseudo-error that ends a request abandoned in flight at the end.
const ABANDONED: &str = "abandoned";

/// How long one request waits for its reply: until its timeout (then it is an error, or
/// for UDP lost), or until the end of the run if that comes first (then it is abandoned:
/// neither an error nor counted).
#[derive(Clone, Copy)]
struct Wait {
    until: Instant,
    timeout: bool,
}

impl Wait {
    fn new(sent: Instant, timeout: Duration, end: Instant) -> Wait {
        let t = sent + timeout;
        if t <= end {
            Wait {
                until: t,
                timeout: true,
            }
        } else {
            Wait {
                until: end,
                timeout: false,
            }
        }
    }

    /// The error for a wait that ran out.
    fn expired(self, op: &'static str) -> ConnError {
        if self.timeout {
            timeout_err(op)
        } else {
            (ABANDONED, Error::timeout(op))
        }
    }

    /// Resolves at `self.until`, reusing `sleep`: it is reset only when it has fired (or
    /// would fire late), so a busy connection rarely touches the timer wheel, and an
    /// early wake-up (a deadline of an earlier request) just re-arms it.
    async fn elapsed(self, sleep: &mut Pin<Box<Sleep>>) {
        let until = tokio::time::Instant::from_std(self.until);
        // bounded: each pass either resets the sleep to `until` or ends
        for _ in 0..3 {
            if sleep.is_elapsed() || sleep.deadline() > until {
                sleep.as_mut().reset(until);
            }
            sleep.as_mut().await;
            if tokio::time::Instant::now() >= until {
                return;
            }
        }
        tokio::time::sleep_until(until).await;
    }
}

/// A TCP or Unix connection: ping-pong or stream.
async fn drive_stream<R, W>(r: R, w: W, ctx: &Ctx) -> ConnStats
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match ctx.shared.cfg.mode {
        Mode::PingPong => stream_pingpong(r, w, ctx).await,
        Mode::Stream => stream_flow(r, w, ctx).await,
    }
}

/// Reads until `buf[..want]` is filled (`*got` bytes are already there), within `wait`.
async fn read_reply<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    got: &mut usize,
    want: usize,
    wait: Wait,
    sleep: &mut Pin<Box<Sleep>>,
) -> std::result::Result<(), ConnError> {
    while *got < want {
        let n = tokio::select! {
            biased;
            res = r.read(&mut buf[*got..]) => res.map_err(|e| io_err("recv", e))?,
            _ = wait.elapsed(sleep) => return Err(wait.expired("recv")),
        };
        if n == 0 {
            return Err(closed_err("recv"));
        }
        *got += n;
    }
    Ok(())
}

async fn stream_pingpong<R, W>(mut r: R, mut w: W, ctx: &Ctx) -> ConnStats
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let sh = &*ctx.shared;
    let m = sh.cfg.size;
    let verify = sh.cfg.verify;
    let mut st = ConnStats::default();
    let mut sbuf = vec![0u8; m];
    let mut rbuf = vec![0u8; m.max(READ_BUF)];
    let mut carry = 0usize;
    let mut sleep = Box::pin(tokio::time::sleep(sh.timeout));
    let (mut seq, mut measured) = (0u64, 0u64);
    let pacer = ctx.pacer();
    while let Some(t0) = ctx.next_start(seq, measured, &pacer).await {
        // closed loop: t0 is now; open loop: t0 is the intended time, maybe long past
        let now = if ctx.interval.is_some() {
            Instant::now()
        } else {
            t0
        };
        let wait = Wait::new(now, sh.timeout, ctx.clock.end);
        fill_msg(&mut sbuf, &sh.pat, ctx.id, seq);
        st.sent_all += 1;
        if t0 >= ctx.clock.measure {
            st.sent += 1;
            st.bytes_sent += m as u64;
        }
        let mut got = carry;
        let res = if m <= SEQUENTIAL_MAX {
            let wr = tokio::select! {
                biased;
                res = w.write_all(&sbuf) => res.map_err(|e| io_err("send", e)),
                _ = wait.elapsed(&mut sleep) => Err(wait.expired("send")),
            };
            match wr {
                Ok(()) => read_reply(&mut r, &mut rbuf, &mut got, m, wait, &mut sleep).await,
                Err(e) => Err(e),
            }
        } else {
            let write = async {
                tokio::select! {
                    biased;
                    res = w.write_all(&sbuf) => res.map_err(|e| io_err("send", e)),
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wait.until)) => {
                        Err(wait.expired("send"))
                    }
                }
            };
            let (wr, rd) = tokio::join!(
                write,
                read_reply(&mut r, &mut rbuf, &mut got, m, wait, &mut sleep)
            );
            wr.and(rd)
        };
        if let Err(e) = res {
            if e.0 == ABANDONED {
                break; // in flight at the end: not an error, not counted
            }
            if e.0 == "closed" {
                st.lost_bytes += (m - got.min(m)) as u64;
            }
            st.error = Some(e);
            break;
        }
        let t1 = Instant::now();
        if verify && rbuf[..m] != sbuf[..] {
            st.mismatches += 1;
        }
        carry = got - m;
        if carry > 0 {
            // bytes beyond the echo (a server that sends more): they start the next reply
            rbuf.copy_within(m..got, 0);
        }
        if t0 >= ctx.clock.measure {
            measured += 1;
            st.requests += 1;
            st.bytes_received += m as u64;
            st.last_done = Some(t1);
            ctx.record(t1 - t0);
        }
        seq += 1;
    }
    st.unsent = ctx.due_in_window().saturating_sub(st.sent);
    st
}

async fn stream_flow<R, W>(mut r: R, mut w: W, ctx: &Ctx) -> ConnStats
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let sh = &*ctx.shared;
    let chunk = sh.cfg.size;
    let csize = chunk as u64;
    let clock = ctx.clock;
    let hard_stop = tokio::time::Instant::from_std(clock.end + sh.timeout);
    let run_end = tokio::time::Instant::from_std(clock.end);
    let start_off = (ctx.id * 37) % PERIOD;
    // bytes handed to the kernel so far (updated after every partial write, so a byte
    // received at a position below it is an echo, and one at or above it is extra)
    let written_total = Cell::new(0u64);
    // stream position of the first chunk written in the measured window
    let measure_pos = Cell::new(u64::MAX);
    let writer_done = Cell::new(false);
    let notify = tokio::sync::Notify::new();
    let mut st = ConnStats::default();
    let mut w_err = None;
    let (mut w_reqs, mut w_all, mut w_bytes) = (0u64, 0u64, 0u64);
    let mut r_err = None;
    let (mut r_chunks, mut r_mis, mut r_bytes, mut r_total, mut extra) = (0u64, 0, 0, 0u64, 0);
    let mut last = None;
    {
        let writer = async {
            let mut off = start_off;
            'chunks: loop {
                let now = Instant::now();
                if now >= clock.end || ctx.budget.is_some_and(|b| w_reqs >= b) {
                    break;
                }
                if now >= clock.measure && measure_pos.get() == u64::MAX {
                    measure_pos.set(written_total.get());
                }
                // A blocked write has no timeout of its own: it is blocked because bytes
                // already written are still in the socket buffers, so they are owed, and
                // the reader ends the connection when none come back for one timeout. A
                // slow server that keeps echoing keeps it going, whatever the chunk size
                // (the kernel wakes a writer only once a third of its buffer is free, so
                // a write's own progress can pause longer than the echo's).
                let data = &sh.pat[off..off + chunk];
                let mut done = 0;
                while done < chunk {
                    let res = tokio::select! {
                        biased;
                        res = w.write(&data[done..]) => res.map_err(|e| io_err("send", e)),
                        // a write still blocked when the run ends is abandoned, not an
                        // error (as ping-pong requests in flight are): the reader counts
                        // what does not come back as lost
                        _ = tokio::time::sleep_until(run_end) => break 'chunks,
                    };
                    match res {
                        Ok(0) => {
                            w_err = Some(io_err("send", io::ErrorKind::WriteZero.into()));
                            break 'chunks;
                        }
                        Ok(n) => {
                            done += n;
                            written_total.set(written_total.get() + n as u64);
                        }
                        Err(e) => {
                            w_err = Some(e);
                            break 'chunks;
                        }
                    }
                }
                w_all += 1;
                if now >= clock.measure {
                    w_reqs += 1;
                    w_bytes += csize;
                }
                off = (off + chunk) % PERIOD;
            }
            let _ = tokio::time::timeout_at(hard_stop, w.shutdown()).await;
            writer_done.set(true);
            notify.notify_one();
        };
        let reader = async {
            let mut buf = vec![0u8; READ_BUF];
            let window_only = sh.cfg.count.is_none();
            // the chunk being received has a wrong byte
            let mut bad = false;
            // echoed bytes must keep coming: none for one timeout while some are owed
            // ends the connection (a server that reads but never echoes, or never reads)
            let mut last_rx = Instant::now();
            loop {
                if writer_done.get() && r_total >= written_total.get() {
                    break;
                }
                let stall = tokio::time::Instant::from_std(last_rx + sh.timeout).min(hard_stop);
                let n = tokio::select! {
                    biased;
                    res = r.read(&mut buf) => match res {
                        Ok(0) => {
                            if r_total < written_total.get() || !writer_done.get() {
                                r_err = Some(closed_err("recv"));
                            }
                            break;
                        }
                        Ok(n) => n,
                        Err(e) => {
                            r_err = Some(io_err("recv", e));
                            break;
                        }
                    },
                    _ = notify.notified() => continue,
                    _ = tokio::time::sleep_until(stall) => {
                        if tokio::time::Instant::now() >= hard_stop {
                            break;
                        }
                        if r_total < written_total.get() {
                            r_err = Some(timeout_err("recv"));
                            break;
                        }
                        last_rx = Instant::now(); // nothing owed: keep waiting
                        continue;
                    }
                };
                let now = Instant::now();
                last_rx = now;
                let in_time = now >= clock.measure && (!window_only || now <= clock.end);
                // bytes beyond what was written are not echoes
                let echoed = (n as u64).min(written_total.get().saturating_sub(r_total)) as usize;
                extra += (n - echoed) as u64;
                // chunk by chunk: a chunk counts (echoed, and a mismatch if any byte of
                // it was wrong) when its last byte arrives in the measured window
                let mut i = 0;
                while i < echoed {
                    let pos = r_total + i as u64;
                    let idx = pos / csize;
                    let len = ((idx + 1) * csize - pos).min((echoed - i) as u64) as usize;
                    if sh.cfg.verify {
                        let off = (start_off + (pos % PERIOD as u64) as usize) % PERIOD;
                        bad |= buf[i..i + len] != sh.pat[off..off + len];
                    }
                    i += len;
                    let complete = (pos + len as u64) % csize == 0;
                    if complete {
                        let counted = in_time && (window_only || idx * csize >= measure_pos.get());
                        if counted {
                            r_chunks += 1;
                            r_bytes += csize;
                            r_mis += u64::from(bad);
                            last = Some(now);
                            ctx.record_progress(1);
                        }
                        bad = false;
                    }
                }
                r_total += echoed as u64;
            }
        };
        tokio::pin!(writer, reader);
        let mut writing = true;
        loop {
            tokio::select! {
                _ = &mut writer, if writing => writing = false,
                // the reader's end (an error, a stall, or every byte back) ends the writer
                _ = &mut reader => break,
            }
        }
    }
    // what came back counts: whole chunks echoed in the measured window
    st.requests = r_chunks;
    st.sent = w_reqs;
    st.sent_all = w_all;
    st.bytes_sent = w_bytes;
    st.bytes_received = r_bytes;
    st.mismatches = r_mis;
    st.extra_bytes = extra;
    st.lost_bytes = written_total.get().saturating_sub(r_total);
    st.last_done = last;
    st.error = w_err.or(r_err);
    st
}

impl Ctx {
    /// Counts `n` measured requests for the progress line only (stream mode).
    fn record_progress(&self, n: u64) {
        if n == 0 {
            return;
        }
        let done = DONE.with(|d| {
            let v = d.get() + n;
            d.set(v);
            v
        });
        self.shared.slots[self.thread]
            .0
            .store(done, Ordering::Relaxed);
    }
}

/// UDP: what became of a recent datagram.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Unknown,
    Answered,
    Lost,
}

/// A connected datagram socket for [`udp_pingpong`]: UDP or Unix.
trait Datagrams: crate::relay::DatagramSocket {
    /// Tells the runtime the socket is drained without the `recv(2)` that would fail
    /// with `EAGAIN` (the next datagram's edge wakes the task).
    fn drained(&self);
}

impl Datagrams for tokio::net::UdpSocket {
    fn drained(&self) {
        let _ = self.try_io(tokio::io::Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
}

impl Datagrams for tokio::net::UnixDatagram {
    fn drained(&self) {
        let _ = self.try_io(tokio::io::Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
}

/// Datagram ping-pong (UDP or Unix datagrams) on one connected socket.
async fn udp_pingpong<S: Datagrams>(s: &S, ctx: &Ctx) -> ConnStats {
    let sh = &*ctx.shared;
    let m = sh.cfg.size;
    let verify = sh.cfg.verify;
    let mut st = ConnStats::default();
    let mut sbuf = vec![0u8; m];
    let mut old = vec![0u8; m];
    // one byte more than a request: a longer reply is seen as such (a mismatch)
    let mut rbuf = vec![0u8; (m + 1).max(65_536)];
    let mut fates = vec![Fate::Unknown; UDP_HISTORY];
    let mut sleep = Box::pin(tokio::time::sleep(sh.timeout));
    let (mut seq, mut measured) = (0u64, 0u64);
    let pacer = ctx.pacer();
    'requests: while let Some(t0) = ctx.next_start(seq, measured, &pacer).await {
        fill_msg(&mut sbuf, &sh.pat, ctx.id, seq);
        if let Err(e) = s.send_datagram(&sbuf).await {
            st.error = Some(io_err("send", e));
            break;
        }
        let is_measured = t0 >= ctx.clock.measure;
        st.sent_all += 1;
        if is_measured {
            // a datagram sent uses up one request of the count, answered or lost
            measured += 1;
            st.sent += 1;
            st.bytes_sent += m as u64;
        }
        let wait = Wait::new(Instant::now(), sh.timeout, ctx.clock.end);
        fates[(seq % UDP_HISTORY as u64) as usize] = Fate::Unknown;
        let n = loop {
            let n = tokio::select! {
                biased;
                res = s.recv_datagram(&mut rbuf) => match res {
                    Ok(n) => n,
                    Err(e) => {
                        st.error = Some(io_err("recv", e));
                        break 'requests;
                    }
                },
                _ = wait.elapsed(&mut sleep) => {
                    if !wait.timeout {
                        break 'requests; // in flight at the end: abandoned, not counted
                    }
                    st.lost += 1;
                    fates[(seq % UDP_HISTORY as u64) as usize] = Fate::Lost;
                    break None;
                }
            };
            // A reply carrying an earlier sequence number (and, verifying, exactly that
            // datagram's bytes) answers an earlier datagram: late if that one was lost,
            // a duplicate if it was answered. Anything else is this datagram's reply.
            if m >= 8 && n >= 8 {
                let s_seq = u64::from_le_bytes(rbuf[..8].try_into().unwrap_or([0; 8]));
                let earlier = s_seq < seq
                    && (!verify
                        || n == m && {
                            fill_msg(&mut old, &sh.pat, ctx.id, s_seq);
                            rbuf[..n] == old[..]
                        });
                if earlier {
                    let fate = if seq - s_seq < UDP_HISTORY as u64 {
                        fates[(s_seq % UDP_HISTORY as u64) as usize]
                    } else {
                        Fate::Lost
                    };
                    if fate == Fate::Answered {
                        st.duplicates += 1;
                    } else {
                        st.late += 1;
                    }
                    continue;
                }
            }
            break Some(n);
        };
        if let Some(n) = n {
            // One datagram was in flight and its reply is in: tell tokio the socket is
            // drained without the recv(2) that would fail with EAGAIN (the next reply's
            // edge wakes us; a late datagram queued meanwhile is read first, and skipped).
            s.drained();
            let t1 = Instant::now();
            fates[(seq % UDP_HISTORY as u64) as usize] = Fate::Answered;
            if n < m {
                st.truncated += 1;
            } else if verify && rbuf[..n] != sbuf[..] {
                st.mismatches += 1;
            }
            if is_measured {
                st.requests += 1;
                st.bytes_received += n as u64;
                st.last_done = Some(t1);
                ctx.record(t1 - t0);
            }
        }
        seq += 1;
    }
    st.unsent = ctx.due_in_window().saturating_sub(st.sent);
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_names_its_error_as_the_report_counts_it() {
        // Regression: a wrong check echo was `protocol` and a reset during the check `os`
        // in a failed run's error object, `check` and `reset` in errors_by_kind.
        let check = |e: ConnError| {
            let (kind, e) = e;
            (kind, e.clone().with_op(format!("{CHECK}: {}", e.op())))
        };
        let cases = [
            io_err("recv", io::Error::from_raw_os_error(libc::ECONNRESET)),
            check(io_err(
                "recv",
                io::Error::from_raw_os_error(libc::ECONNRESET),
            )),
            io_err("connect", io::Error::from_raw_os_error(libc::ECONNREFUSED)),
            io_err("send", io::Error::from_raw_os_error(libc::EPIPE)),
            io_err("recv", io::Error::from_raw_os_error(libc::EHOSTUNREACH)),
            closed_err("recv"),
            check(closed_err("recv")),
            timeout_err("recv"),
            check(timeout_err("recv")),
            (
                "check",
                Error::protocol(CHECK, "the echo came back as [..]"),
            ),
        ];
        for (kind, e) in cases {
            assert_eq!(error_kind_name(&e), kind, "{e}");
        }
    }

    #[test]
    fn histogram_round_trip_and_merge() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        let mut both = new_histogram();
        for v in 1..=1000u64 {
            a.record(v * 1000).unwrap();
            both.record(v * 1000).unwrap();
        }
        for v in 1..=100u64 {
            b.record(v * 1_000_000).unwrap();
            both.record(v * 1_000_000).unwrap();
        }
        let (ta, tb) = (encode_histogram(&a).unwrap(), encode_histogram(&b).unwrap());
        assert!(ta.starts_with("HISTFAAA"), "{ta}");
        let (da, db) = (
            decode_histogram(&ta).unwrap(),
            decode_histogram(&tb).unwrap(),
        );
        assert_eq!(da, a);
        let merged = merge_histograms([&da, &db]);
        assert_eq!(merged.len(), both.len());
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(merged.value_at_quantile(q), both.value_at_quantile(q));
        }
        assert_eq!(Latency::of(&merged), Latency::of(&both));
        // the uncompressed V2 form decodes too; lies about lengths are refused
        let mut plain = Vec::new();
        hdrhistogram::serialization::V2Serializer::new()
            .serialize(&a, &mut plain)
            .unwrap();
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        assert_eq!(decode_histogram(&b64(&plain)).unwrap(), a);
        let mut liar = plain.clone();
        liar[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_histogram(&b64(&liar)).is_err());
        assert!(decode_histogram(&b64(&plain[..plain.len() / 2])).is_err());
        assert!(decode_histogram("not base64!").is_err());
        assert!(decode_histogram("aGVsbG8=").is_err());
    }

    #[test]
    fn messages_carry_their_sequence_number() {
        let pat = pattern(1024 + PERIOD);
        let mut a = vec![0u8; 64];
        let mut b = vec![0u8; 64];
        fill_msg(&mut a, &pat, 3, 7);
        fill_msg(&mut b, &pat, 3, 8);
        assert_eq!(a[..8], 7u64.to_le_bytes());
        assert_ne!(a, b);
        let mut tiny = vec![0u8; 3];
        fill_msg(&mut tiny, &pat, 0, 1);
    }

    #[test]
    fn settings_are_checked() {
        let t = Target::Udp("127.0.0.1:9".parse().unwrap());
        let mut c = Config::new(t);
        assert!(c.validate().is_ok());
        c.size = 70_000;
        assert!(c.validate().is_err());
        c.size = 64;
        c.mode = Mode::Stream;
        assert!(c.validate().is_err());
        let mut c = Config::new(Target::Tcp("127.0.0.1:9".parse().unwrap()));
        c.rate = Some(f64::NAN);
        assert!(c.validate().is_err());
        c.rate = None;
        c.connections = 0;
        assert!(c.validate().is_err());
        c.connections = 1;
        c.count = Some(0);
        assert!(c.validate().is_err());
        c.count = Some(5);
        assert_eq!(c.effective_duration(), MAX_DURATION);
        // below the timer's resolution a timeout is refused, not rounded up
        c.timeout = Some(Duration::from_micros(10));
        assert!(c.validate().is_err());
        c.timeout = Some(MIN_TIMEOUT);
        assert!(c.validate().is_ok());
    }

    /// A small blocking echo server thread on 127.0.0.1 for one test.
    fn echo_thread() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().take(16) {
                let Ok(mut s) = s else { break };
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut b = [0u8; 4096];
                    loop {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&b[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        a
    }

    #[test]
    fn count_is_split_over_connections() {
        let a = echo_thread();
        let mut c = Config::new(Target::Tcp(a));
        c.connections = 3;
        c.threads = 2;
        c.count = Some(100);
        c.duration = Some(Duration::from_secs(10));
        let r = run(&c, |_| {}).unwrap();
        assert_eq!(r.requests, 100);
        assert_eq!(r.requests_per_connection, vec![34, 33, 33]);
        assert_eq!(r.stopped_by, StopReason::Count);
        assert_eq!(r.histogram.len(), 100);
        assert!(!r.data_errors());
        assert_eq!(r.error_count(), 0);
    }

    #[test]
    fn stream_mode_echoes_everything() {
        let a = echo_thread();
        let mut c = Config::new(Target::Tcp(a));
        c.mode = Mode::Stream;
        c.size = 16384;
        c.duration = Some(Duration::from_millis(300));
        let r = run(&c, |_| {}).unwrap();
        assert!(r.bytes_received > 0);
        assert_eq!(r.lost_bytes, 0);
        assert_eq!(r.mismatches, 0);
        assert_eq!(r.error_count(), 0, "{:?}", r.first_error);
    }

    #[test]
    fn refused_is_an_error() {
        // A bound socket that does not listen: refused, and held so no parallel test can
        // listen on the port meanwhile (as on the port of a dropped listener).
        let (_holder, a) = crate::test_support::closed_port();
        let c = Config::new(Target::Tcp(a));
        let e = run(&c, |_| {}).unwrap_err();
        assert!(e.is_errno(libc::ECONNREFUSED), "{e}");
    }
}
