//! Latency histograms: HdrHistogram in nanoseconds, its V2 compressed base64 text (what
//! HdrHistogram's own tools read), merging, and the percentiles printed from it.

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Histogram range: 1 ns to one hour, 3 significant digits.
pub(crate) const HIST_HIGHEST_NS: u64 = 3_600_000_000_000;
const HIST_SIGFIG: u8 = 3;

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

/// Serde form of a histogram: [`encode_histogram`]'s text (`"histogram"` in a result).
pub(crate) mod base64_form {
    use super::*;

    pub(crate) fn serialize<S: serde::Serializer>(
        h: &Histogram<u64>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let text = encode_histogram(h).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Histogram<u64>, D::Error> {
        let text = String::deserialize(d)?;
        decode_histogram(&text).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

/// Latency percentiles of a histogram recorded in nanoseconds, in microseconds.
///
/// In JSON each figure is named with its unit (`latency_p99_us`) and rounded to 0.1 µs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Smallest value, µs.
    #[serde(rename = "latency_min_us", serialize_with = "tenths")]
    pub min_us: f64,
    /// Mean, µs.
    #[serde(rename = "latency_mean_us", serialize_with = "tenths")]
    pub mean_us: f64,
    /// Median, µs.
    #[serde(rename = "latency_p50_us", serialize_with = "tenths")]
    pub p50_us: f64,
    /// 90th percentile, µs.
    #[serde(rename = "latency_p90_us", serialize_with = "tenths")]
    pub p90_us: f64,
    /// 99th percentile, µs.
    #[serde(rename = "latency_p99_us", serialize_with = "tenths")]
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    #[serde(rename = "latency_p999_us", serialize_with = "tenths")]
    pub p999_us: f64,
    /// Largest value, µs.
    #[serde(rename = "latency_max_us", serialize_with = "tenths")]
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

/// A figure rounded to 0.1 (µs, %) for JSON.
pub(crate) fn tenths<S: serde::Serializer>(x: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64((x * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
