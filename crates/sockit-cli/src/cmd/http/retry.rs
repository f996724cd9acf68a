//! `--retry`'s rules (curl's): which failures are transient, and a server's
//! `Retry-After`.

use std::time::Duration;

use sockit::ErrorKind;

use super::Opts;
use super::writeout::Values;

/// Whether an error or status is transient for `--retry` (curl's rules): a timeout, a
/// failed name lookup, HTTP 408, 429, 500, 502, 503 or 504; a refused connection with
/// `--retry-connrefused`; anything with `--retry-all-errors`. Returns curl's word for it.
pub fn transient(args: &Opts, result: &anyhow::Result<()>, status: u16) -> Option<&'static str> {
    match result {
        Ok(()) => matches!(status, 408 | 429 | 500 | 502 | 503 | 504).then_some("HTTP error"),
        Err(e) => {
            let err = crate::exit::sockit_error(e);
            match err.map(sockit::Error::kind) {
                Some(ErrorKind::Timeout) => Some("timeout"),
                Some(ErrorKind::Gai) => Some("name lookup failure"),
                _ if args.retry_all_errors => Some("error"),
                Some(ErrorKind::Os)
                    if args.retry_connrefused
                        && err.is_some_and(|e| e.is_errno(libc::ECONNREFUSED)) =>
                {
                    Some("connection refused")
                }
                Some(ErrorKind::Protocol) if args.fail && (400..600).contains(&status) => {
                    matches!(status, 408 | 429 | 500 | 502 | 503 | 504).then_some("HTTP error")
                }
                _ => None,
            }
        }
    }
}

/// The `Retry-After` of the last response, in seconds (RFC 9110 §10.2.3; the date form
/// is not read), when above 0. A number past curl's range (a signed 64-bit count, so
/// `18446744073709551615`) is not one, as in curl: the usual wait applies.
pub fn retry_after(values: &Values) -> Option<Duration> {
    values
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Retry-After"))
        .and_then(|(_, v)| String::from_utf8_lossy(v).trim().parse::<i64>().ok())
        // as curl: `Retry-After: 0` leaves the usual wait
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s.unsigned_abs()))
}
