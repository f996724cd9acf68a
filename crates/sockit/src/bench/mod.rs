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
//! The library never prints; [`run`] reports progress through a callback. What a run
//! measured is one model, [`Report`]: its serde form is the `--json` result, its
//! `Display` the text summary, [`read_line`] reads saved results back (also those saved
//! before the shared JSON vocabulary) and [`Merge`] adds runs up.
//!
//! Modules: `config` (settings), `engine` (threads and the clock), `connect` (setup
//! and the connection check), `conn` (one connection's pacing and waits), `stream` and
//! `dgram` (the load itself), `histogram`, `report` and `text`.
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
//! let p99 = report.latency.map(|l| l.p99_us);
//! println!("{:.0} round trips/s, p99 {p99:?} µs, {} mismatches", report.rps, report.mismatches);
//! println!("{report}"); // the text summary
//! # Ok::<(), sockit::Error>(())
//! ```

mod config;
mod conn;
mod connect;
mod dgram;
mod engine;
mod histogram;
mod interval;
mod merge;
mod report;
mod stream;
mod text;

pub use hdrhistogram;

pub use config::{
    Config, MAX_CONNECTIONS, MAX_DURATION, MAX_SIZE, MIN_INTERVAL, MIN_TIMEOUT, Mode, Target,
    Transport, default_threads,
};
pub use connect::error_kind_name;
pub use engine::{Event, Progress, run, run_with};
pub use histogram::{Latency, decode_histogram, encode_histogram, merge_histograms, new_histogram};
pub use interval::{HdrLog, Interval};
pub use merge::{Merge, Saved, read_line};
pub use report::{HistogramUnit, Report, RunError, StopReason};
pub use text::rate_text;
