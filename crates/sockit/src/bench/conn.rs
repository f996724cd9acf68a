//! One connection's view of the run ([`Ctx`]): its clock, its share of the count, the
//! open-loop pacing of its requests, the wait for a reply ([`Wait`]), the payload, and
//! the recording of what it measured.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

use super::connect::{ConnError, timeout_err};
use super::engine::{DONE, HIST, Shared};
use super::histogram::HIST_HIGHEST_NS;
use crate::error::Error;
use crate::sys::timer::TimerFd;

/// Prime period of the payload pattern.
pub(super) const PERIOD: usize = 251;
/// Read buffer: larger than a reply, so a complete read is a short read, which lets tokio
/// drop the socket's readiness without one more `read(2)` that would fail with EAGAIN.
pub(super) const READ_BUF: usize = 64 * 1024;

#[derive(Clone, Copy)]
pub(super) struct Clock {
    pub(super) start: Instant,
    pub(super) measure: Instant,
    pub(super) end: Instant,
}

/// Builds the payload pattern: bytes 0..PERIOD repeated.
pub(super) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % PERIOD) as u8).collect()
}

/// Message `seq` of connection `id`: a slice of the pattern at a rotating offset, with
/// the sequence number in its first 8 bytes (when it fits).
pub(super) fn fill_msg(buf: &mut [u8], pat: &[u8], id: usize, seq: u64) {
    let off = (id.wrapping_mul(37) + (seq as usize).wrapping_mul(13)) % PERIOD;
    let m = buf.len();
    buf.copy_from_slice(&pat[off..off + m]);
    if m >= 8 {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
    }
}

/// A stop from outside ([`Config::stop`](super::Config::stop): SIGINT or SIGTERM in the
/// CLI), seen by every connection of a thread: requests in flight are abandoned (neither
/// errors nor counted, as at the end of the duration) and no more are sent.
#[derive(Default)]
pub(super) struct Halt {
    set: Cell<bool>,
    notify: tokio::sync::Notify,
}

impl Halt {
    pub(super) fn is_set(&self) -> bool {
        self.set.get()
    }

    pub(super) fn trigger(&self) {
        self.set.set(true);
        self.notify.notify_waiters();
    }

    /// Resolves once the run is halted.
    pub(super) async fn wait(&self) {
        // created before the check: notify_waiters wakes it even if not yet polled
        let notified = self.notify.notified();
        if self.is_set() {
            return;
        }
        notified.await;
    }
}

/// One connection's view of the run.
pub(super) struct Ctx {
    pub(super) halt: Rc<Halt>,
    pub(super) shared: Arc<Shared>,
    pub(super) thread: usize,
    pub(super) clock: Clock,
    pub(super) id: usize,
    /// Measured requests this connection may make.
    pub(super) budget: Option<u64>,
    /// Open loop: the first intended send time and the interval.
    pub(super) first_send: Option<Instant>,
    pub(super) interval: Option<Duration>,
}

impl Ctx {
    /// Counts one measured request: the latency, the thread's progress.
    pub(super) fn record(&self, latency: Duration) {
        let ns = (latency.as_nanos().min(u128::from(HIST_HIGHEST_NS)) as u64).max(1);
        HIST.with(|h| {
            let _ = h.borrow_mut().record(ns);
        });
        if let Some(iv) = &self.shared.intervals {
            // uncontended but for the main thread's take at each interval's end
            if let Ok(mut h) = iv[self.thread].lock() {
                let _ = h.record(ns);
            }
        }
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
    pub(super) fn pacer(&self) -> Option<AsyncFd<TimerFd>> {
        self.interval?;
        crate::sys::timer::register(TimerFd::new().ok()?).ok()
    }

    /// The intended time of the next request (open loop) or now, or `None` when the run
    /// is over for this connection (its count done, or the end reached: no request is
    /// sent after the end). Sleeps until an open-loop request is due.
    pub(super) async fn next_start(
        &self,
        seq: u64,
        measured: u64,
        pacer: &Option<AsyncFd<TimerFd>>,
    ) -> Option<Instant> {
        if self.budget.is_some_and(|b| measured >= b) || self.halt.is_set() {
            return None;
        }
        let t = match (self.first_send, self.interval) {
            (Some(first), Some(iv)) => {
                let due = first + iv.mul_f64(seq as f64);
                if due >= self.clock.end {
                    // Open loop: the run lasts its duration even when no request is due
                    // before the end (`--rate 0.001 --duration 0.5` takes 0.5 s).
                    self.wait_until(self.clock.end, pacer).await;
                    return None;
                }
                // overdue requests go out back to back, but none after the end
                if Instant::now() >= self.clock.end {
                    return None;
                }
                self.wait_until(due, pacer).await;
                if self.halt.is_set() {
                    return None;
                }
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

    /// Waits until `due` (see [`wait_until_fine`]), or a halt.
    async fn wait_until(&self, due: Instant, pacer: &Option<AsyncFd<TimerFd>>) {
        tokio::select! {
            biased;
            _ = wait_until_fine(due, pacer) => {}
            _ = self.halt.wait() => {}
        }
    }

    /// Open loop: how many requests were due in the measured window (the end of the
    /// warm-up to the end), at most this connection's count; 0 in closed loop.
    pub(super) fn due_in_window(&self) -> u64 {
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
async fn wait_until_fine(due: Instant, pacer: &Option<AsyncFd<TimerFd>>) {
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
pub(super) const ABANDONED: &str = "abandoned";

/// How long one request waits for its reply: until its timeout (then it is an error, or
/// for UDP lost), or until the end of the run if that comes first (then it is abandoned:
/// neither an error nor counted).
#[derive(Clone, Copy)]
pub(super) struct Wait {
    pub(super) until: Instant,
    pub(super) timeout: bool,
}

impl Wait {
    pub(super) fn new(sent: Instant, timeout: Duration, end: Instant) -> Wait {
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

    /// The error for a wait that ran out (or was cut short by a halt: abandoned).
    pub(super) fn expired(self, op: &'static str, halt: &Halt) -> ConnError {
        if self.timeout && !halt.is_set() {
            timeout_err(op)
        } else {
            (ABANDONED, Error::timeout(op))
        }
    }

    /// Resolves at `self.until`, reusing `sleep`: it is reset only when it has fired (or
    /// would fire late), so a busy connection rarely touches the timer wheel, and an
    /// early wake-up (a deadline of an earlier request) just re-arms it.
    /// A halt ends the wait at once.
    pub(super) async fn elapsed(self, sleep: &mut Pin<Box<Sleep>>, halt: &Halt) {
        tokio::select! {
            biased;
            _ = self.sleep(sleep) => {}
            _ = halt.wait() => {}
        }
    }

    async fn sleep(self, sleep: &mut Pin<Box<Sleep>>) {
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

impl Ctx {
    /// Counts `n` measured requests for the progress line only (stream mode).
    pub(super) fn record_progress(&self, n: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn messages_carry_their_sequence_number() {
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
}
