//! Figures per interval of a run in progress ([`Interval`], as iperf3's `-i` prints
//! them), and HdrHistogram's interval log of them ([`HdrLog`]).

use std::fmt;
use std::io::Write;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriter, IntervalLogWriterBuilder};
use serde::Serialize;

use super::histogram::Latency;
use crate::error::{Error, Result};

/// What one interval of the measured time saw ([`Config::interval`](super::Config::interval)).
///
/// JSON: `{"event":"interval","start_us":0,"end_us":1000000,"requests":…,"rps":…,
/// "latency_p50_us":…}` (times from the end of the warm-up; the latency fields are
/// absent when no round trip ended in the interval).
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    /// `"interval"`.
    pub event: &'static str,
    /// Start, from the end of the warm-up.
    #[serde(rename = "start_us", serialize_with = "micros")]
    pub start: Duration,
    /// End, from the end of the warm-up (the last interval ends with the run).
    #[serde(rename = "end_us", serialize_with = "micros")]
    pub end: Duration,
    /// Measured requests answered in the interval (stream: chunks echoed).
    pub requests: u64,
    /// Requests per second over the interval.
    pub rps: f64,
    /// Latency percentiles of the round trips that ended in the interval.
    #[serde(flatten)]
    pub latency: Option<Latency>,
    /// Those round trips' latencies, in nanoseconds.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Interval {
    pub(super) fn new(start: Duration, end: Duration, requests: u64, h: Histogram<u64>) -> Self {
        let secs = end.saturating_sub(start).as_secs_f64().max(1e-9);
        Interval {
            event: "interval",
            start,
            end,
            requests,
            rps: requests as f64 / secs,
            latency: Latency::of(&h),
            histogram: h,
        }
    }
}

impl fmt::Display for Interval {
    /// `[  1.00-  2.00 s]  41235 requests  41235 per second  µs p50 23.1  p90 25.3  p99
    /// 40.2  max 130.0`, as iperf3 `-i` lines up.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:7.2}-{:7.2} s] {:9} requests {:>9} per second",
            self.start.as_secs_f64(),
            self.end.as_secs_f64(),
            self.requests,
            super::rate_text(self.rps)
        )?;
        match &self.latency {
            Some(l) => write!(
                f,
                "  µs p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
                l.p50_us, l.p90_us, l.p99_us, l.max_us
            ),
            None => write!(f, "  µs -"),
        }
    }
}

/// Writes HdrHistogram interval logs (`.hlog`): the format HdrHistogram's own tools
/// (`HistogramLogProcessor`, HdrHistogram's plotter) read, one V2-compressed histogram
/// per interval, values in nanoseconds, interval times in seconds since the log's
/// `BaseTime` (the end of the warm-up).
pub struct HdrLog<W: Write> {
    out: W,
    serializer: V2DeflateSerializer,
}

impl<W: Write> HdrLog<W> {
    /// Starts a log on `out` with its header (a comment, `#[StartTime: …]` and
    /// `#[BaseTime: …]` both `base`: when measuring started).
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) when writing fails.
    pub fn new(mut out: W, base: SystemTime) -> Result<Self> {
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment("sockit bench: round-trip latencies in nanoseconds")
            .with_start_time(base)
            .with_base_time(base)
            .begin_log_with(&mut out, &mut serializer)
            .map_err(|e| Error::from_io("write", e))?;
        writeln!(
            out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )
        .map_err(|e| Error::from_io("write", e))?;
        Ok(HdrLog { out, serializer })
    }

    /// Appends one interval and flushes.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) when writing or encoding fails.
    pub fn write(&mut self, iv: &Interval) -> Result<()> {
        let failed = |e: String| Error::new(crate::ErrorKind::Os, "write", None, e);
        let mut w: IntervalLogWriter<'_, '_, W, V2DeflateSerializer> =
            IntervalLogWriterBuilder::new()
                .begin_log_with(&mut self.out, &mut self.serializer)
                .map_err(|e| Error::from_io("write", e))?;
        w.write_histogram(
            &iv.histogram,
            iv.start,
            iv.end.saturating_sub(iv.start),
            None,
        )
        .map_err(|e| failed(format!("{e:?}")))?;
        self.out.flush().map_err(|e| Error::from_io("write", e))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    use super::*;
    use crate::bench::new_histogram;

    #[test]
    fn the_log_reads_back_with_hdrhistograms_own_reader() {
        let mut out = Vec::new();
        let mut log = HdrLog::new(
            &mut out,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        for i in 0..3u64 {
            let mut h = new_histogram();
            for v in 1..=100 * (i + 1) {
                h.record(v * 1000).unwrap();
            }
            let (a, b) = (Duration::from_secs(i), Duration::from_secs(i + 1));
            log.write(&Interval::new(a, b, h.len(), h)).unwrap();
        }
        drop(log);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("#[BaseTime: 1700000000.000"), "{text}");
        let mut counts = Vec::new();
        for entry in IntervalLogIterator::new(text.as_bytes()) {
            if let LogEntry::Interval(iv) = entry.unwrap() {
                let bytes = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    iv.encoded_histogram(),
                )
                .unwrap();
                let h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
                assert_eq!(iv.duration(), Duration::from_secs(1));
                counts.push((iv.start_timestamp().as_secs(), h.len()));
            }
        }
        assert_eq!(counts, vec![(0, 100), (1, 200), (2, 300)]);
    }
}
