//! Retrying a connect with exponential back-off (`--retry N --retry-delay SECS`).
//!
//! curl's `--retry` and `--retry-delay`, for `forward` (each session's connect to its
//! target) and `connect`. Contract:
//! - [`Retry::retries`] more attempts after the first one fail, so at most
//!   `retries + 1` attempts in all ([`Retry::attempts`]); at most [`MAX_RETRIES`].
//! - Before retry *k* (1-based) the caller waits `delay × 2^(k-1)`, capped at
//!   [`MAX_DELAY`] (30 s): `1, 2, 4, 8, 16, 30, 30 …` seconds from a 1 s delay. The delay
//!   is at least [`MIN_DELAY`], so there is never a busy loop, and the whole wait is
//!   bounded by [`Retry::total_delay`].
//! - Only failures that may pass are retried ([`Retry::retryable`]): system errors
//!   (refused, unreachable, reset …), timeouts and a temporary lookup failure
//!   (`EAI_AGAIN`). A bad address, a name that does not exist, a TLS or protocol failure
//!   end at once.
//! - [`Retry::run`] sleeps on tokio's timer: dropping its future (a stop) ends the waits.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use sockit::retry::Retry;
//! let r = Retry::new(7, Duration::from_secs(1)).unwrap();
//! let waits: Vec<u64> = (1..=7).map(|k| r.delay_before(k).as_secs()).collect();
//! assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
//! assert_eq!(r.total_delay(), Duration::from_secs(91));
//! assert_eq!(r.attempts(), 8);
//! ```

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// The longest wait between two attempts (30 s).
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// The shortest first delay (10 ms): a retry never spins.
pub const MIN_DELAY: Duration = Duration::from_millis(10);
/// The most retries (1000: at most about 8.3 hours of waiting at [`MAX_DELAY`]).
pub const MAX_RETRIES: u32 = 1000;
/// The first delay when none is given (1 s, as curl's).
pub const DEFAULT_DELAY: Duration = Duration::from_secs(1);

/// How often, and how patiently, to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    retries: u32,
    delay: Duration,
}

impl Default for Retry {
    /// No retry: one attempt.
    fn default() -> Self {
        Retry {
            retries: 0,
            delay: DEFAULT_DELAY,
        }
    }
}

/// One failed attempt, as [`Retry::run`] reports it before it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed<'a> {
    /// The attempt that failed (from 1).
    pub attempt: u32,
    /// Attempts allowed in all.
    pub attempts: u32,
    /// Why it failed.
    pub error: &'a Error,
    /// The wait before the next attempt.
    pub delay: Duration,
}

impl Retry {
    /// `retries` more attempts after a failed first one, the first wait `delay`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when `retries` is over [`MAX_RETRIES`] or `delay` is
    /// under [`MIN_DELAY`] or over [`MAX_DELAY`].
    pub fn new(retries: u32, delay: Duration) -> Result<Retry> {
        if retries > MAX_RETRIES {
            return Err(Error::invalid_input(
                "retry",
                format!("at most {MAX_RETRIES} retries, not {retries}"),
            ));
        }
        if !(MIN_DELAY..=MAX_DELAY).contains(&delay) {
            return Err(Error::invalid_input(
                "retry",
                format!(
                    "the retry delay must be {}-{} s, not {} s",
                    MIN_DELAY.as_secs_f64(),
                    MAX_DELAY.as_secs(),
                    delay.as_secs_f64()
                ),
            ));
        }
        Ok(Retry { retries, delay })
    }

    /// Retries after the first attempt.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Attempts in all: `retries + 1`.
    pub fn attempts(&self) -> u32 {
        self.retries + 1
    }

    /// The wait before retry `k` (from 1): `delay × 2^(k-1)`, at most [`MAX_DELAY`].
    pub fn delay_before(&self, k: u32) -> Duration {
        let factor = 1u32 << k.saturating_sub(1).min(16);
        self.delay.saturating_mul(factor).min(MAX_DELAY)
    }

    /// The longest the waits can add up to (every attempt failing).
    pub fn total_delay(&self) -> Duration {
        (1..=self.retries).map(|k| self.delay_before(k)).sum()
    }

    /// May `error` pass if tried again? System errors and timeouts, and `EAI_AGAIN`
    /// from a lookup; not invalid input, other lookup failures, TLS, protocol or proxy
    /// refusals.
    pub fn retryable(error: &Error) -> bool {
        match error.kind() {
            ErrorKind::Os | ErrorKind::Timeout => true,
            ErrorKind::Gai => error.code() == Some(libc::EAI_AGAIN),
            _ => false,
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are used up;
    /// `on_failure` hears of each failure that will be retried, before the wait.
    ///
    /// # Errors
    /// The last attempt's error.
    pub async fn run<T, F, Fut>(
        &self,
        mut attempt: F,
        mut on_failure: impl FnMut(Failed<'_>),
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut n = 1;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if n <= self.retries && Retry::retryable(&e) => {
                    let delay = self.delay_before(n);
                    on_failure(Failed {
                        attempt: n,
                        attempts: self.attempts(),
                        error: &e,
                        delay,
                    });
                    tokio::time::sleep(delay).await;
                    n += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_cap() {
        let r = Retry::new(MAX_RETRIES, Duration::from_millis(500)).unwrap();
        assert_eq!(r.delay_before(1), Duration::from_millis(500));
        assert_eq!(r.delay_before(3), Duration::from_secs(2));
        assert_eq!(r.delay_before(7), MAX_DELAY);
        assert_eq!(r.delay_before(MAX_RETRIES), MAX_DELAY);
        assert!(r.total_delay() <= MAX_DELAY * MAX_RETRIES);
        assert!(Retry::new(MAX_RETRIES + 1, DEFAULT_DELAY).is_err());
        assert!(Retry::new(1, Duration::ZERO).is_err());
        assert!(Retry::new(1, Duration::from_secs(31)).is_err());
        assert_eq!(Retry::default().attempts(), 1);
    }

    #[test]
    fn retryable_errors() {
        assert!(Retry::retryable(&Error::from_errno(
            "connect",
            libc::ECONNREFUSED
        )));
        assert!(Retry::retryable(&Error::timeout("connect")));
        assert!(Retry::retryable(&Error::gai(
            "getaddrinfo",
            libc::EAI_AGAIN
        )));
        assert!(!Retry::retryable(&Error::gai(
            "getaddrinfo",
            libc::EAI_NONAME
        )));
        assert!(!Retry::retryable(&Error::invalid_input("x", "y")));
        assert!(!Retry::retryable(&Error::tls("bad certificate")));
    }

    #[tokio::test]
    async fn runs_until_success_and_reports_each_failure() {
        let r = Retry::new(5, Duration::from_millis(10)).unwrap();
        let mut tries = 0;
        let mut seen = Vec::new();
        let t0 = tokio::time::Instant::now();
        let got = r
            .run(
                || {
                    tries += 1;
                    let n = tries;
                    async move {
                        if n < 4 {
                            Err(Error::from_errno("connect", libc::ECONNREFUSED))
                        } else {
                            Ok(n)
                        }
                    }
                },
                |f| seen.push((f.attempt, f.attempts, f.delay.as_millis())),
            )
            .await
            .unwrap();
        assert_eq!(got, 4);
        assert_eq!(seen, [(1, 6, 10), (2, 6, 20), (3, 6, 40)]);
        assert!(t0.elapsed() >= Duration::from_millis(70));
        // Used up: the last error comes back after retries + 1 attempts.
        let r = Retry::new(2, Duration::from_millis(10)).unwrap();
        let mut tries = 0;
        let e = r
            .run(
                || {
                    tries += 1;
                    async { Err::<(), _>(Error::from_errno("connect", libc::ECONNREFUSED)) }
                },
                |_| {},
            )
            .await
            .unwrap_err();
        assert!(e.is_errno(libc::ECONNREFUSED));
        assert_eq!(tries, 3);
        // Not retryable: one attempt.
        let mut tries = 0;
        let _ = r
            .run(
                || {
                    tries += 1;
                    async { Err::<(), _>(Error::invalid_input("x", "y")) }
                },
                |_| {},
            )
            .await;
        assert_eq!(tries, 1);
    }
}
