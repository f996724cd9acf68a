//! Stopping a server: one controller ([`Stop`]) that every session and accept loop
//! selects on.
//!
//! Contract (DESIGN.md, "Output conventions"):
//! - [`Stop::drain`] (the first SIGTERM): accepting stops ([`Stop::stopping`] resolves);
//!   open sessions go on until the drain deadline; then [`Stop::aborted`] resolves and
//!   every session still open aborts its sockets with RST and reports itself as cut.
//!   A drain of 0 aborts at once.
//! - [`Stop::abort`] (a second SIGTERM, SIGINT, SIGHUP): [`Stop::aborted`] resolves at
//!   once.
//! - Threads that are not tokio tasks (the echo server's event loops) register a callback
//!   with [`Stop::on_change`] (a `mio::Waker`) and read [`Stop::phase`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::admit::Admission;
use super::event::{Closed, Event};

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepting and serving.
    Running,
    /// Not accepting; sessions may finish until `deadline`, then they are aborted.
    Draining {
        /// When the sessions still open are aborted.
        deadline: Instant,
    },
    /// Every session still open is aborted now.
    Aborted,
}

type Callback = Box<dyn Fn() + Send + Sync>;

/// The stop controller of one server; clones share it.
#[derive(Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<Phase>>,
    callbacks: Arc<Mutex<Vec<Callback>>>,
    /// [`wind_down`] has reported [`Event::Stopping`].
    announced: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("phase", &self.phase())
            .finish()
    }
}

impl Default for Stop {
    fn default() -> Self {
        Stop::new()
    }
}

impl Stop {
    /// A controller in [`Phase::Running`].
    pub fn new() -> Stop {
        let (tx, _) = watch::channel(Phase::Running);
        Stop {
            tx: Arc::new(tx),
            callbacks: Arc::new(Mutex::new(Vec::new())),
            announced: Arc::new(watch::channel(false).0),
        }
    }

    /// The phase now. A drain whose deadline has passed reads as [`Phase::Aborted`].
    pub fn phase(&self) -> Phase {
        match *self.tx.borrow() {
            Phase::Draining { deadline } if Instant::now() >= deadline => Phase::Aborted,
            p => p,
        }
    }

    fn set(&self, phase: Phase) {
        self.tx.send_replace(phase);
        if let Ok(cbs) = self.callbacks.lock() {
            for cb in cbs.iter() {
                cb();
            }
        }
    }

    /// Stops accepting; sessions may finish for at most `grace` (zero: abort at once). A
    /// drain asked while draining or aborted changes nothing.
    pub fn drain(&self, grace: Duration) {
        if grace.is_zero() {
            return self.abort();
        }
        if *self.tx.borrow() == Phase::Running {
            self.set(Phase::Draining {
                deadline: Instant::now() + grace,
            });
        }
    }

    /// Aborts every session now (RST). Idempotent.
    pub fn abort(&self) {
        if *self.tx.borrow() != Phase::Aborted {
            self.set(Phase::Aborted);
        }
    }

    /// Calls `f` (on the stopping thread) at each change of phase; for event loops that
    /// are not tokio tasks (wake them with a `mio::Waker`). The drain deadline is not a
    /// change: such a loop checks [`Stop::phase`] on its own timer.
    pub fn on_change(&self, f: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut cbs) = self.callbacks.lock() {
            cbs.push(Box::new(f));
        }
    }

    /// Resolves once a drain or an abort was asked: stop accepting.
    pub async fn stopping(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|p| *p != Phase::Running).await;
    }

    /// Resolves once the stop was reported ([`wind_down`]'s [`Event::Stopping`]), or
    /// sessions must abort: sessions that end at once on a drain (datagram sessions,
    /// `drained`) wait for it, so their `closed` events come after `stopping`.
    pub async fn announced(&self) {
        let mut rx = self.announced.subscribe();
        tokio::select! {
            _ = rx.wait_for(|a| *a) => {}
            () = self.aborted() => {}
        }
    }

    /// Resolves once sessions must abort: at [`Stop::abort`], or at the drain deadline.
    pub async fn aborted(&self) {
        let mut rx = self.tx.subscribe();
        loop {
            let phase = *rx.borrow_and_update();
            match phase {
                Phase::Aborted => return,
                Phase::Draining { deadline } => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline.into()) => return,
                        r = rx.changed() => if r.is_err() { return std::future::pending().await },
                    }
                }
                Phase::Running => {
                    if rx.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                }
            }
        }
    }
}

/// The end of a server's run (forward, proxy, listen), once accepting stopped: reports
/// [`Event::Stopping`] (sessions open, drain time left), waits for the sessions until they
/// end by themselves or are aborted at the drain deadline (each session selects on it;
/// the wait is bounded past the deadline by the lingering close of the slowest), then
/// reports [`Event::Stopped`] with the number `cut` counted.
pub async fn wind_down(
    admission: &Admission,
    stop: &Stop,
    emit: &(dyn Fn(Event) + Sync),
    cut: &AtomicU64,
) {
    let drain_us = match stop.phase() {
        Phase::Draining { deadline } => {
            Closed::micros(deadline.saturating_duration_since(Instant::now()))
        }
        _ => 0,
    };
    emit(Event::Stopping {
        open: admission.open(),
        drain_us,
    });
    stop.announced.send_replace(true);
    tokio::select! {
        _ = admission.idle() => {}
        _ = async {
            stop.aborted().await;
            tokio::time::sleep(super::close::LINGER_TIME + Duration::from_secs(1)).await;
        } => {}
    }
    emit(Event::Stopped {
        sessions: admission.admitted(),
        cut: cut.load(Ordering::SeqCst),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_then_deadline_then_abort() {
        let stop = Stop::new();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        stop.on_change(move || {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        assert_eq!(stop.phase(), Phase::Running);
        stop.drain(Duration::from_millis(50));
        stop.stopping().await;
        let t = Instant::now();
        stop.aborted().await;
        assert!(t.elapsed() >= Duration::from_millis(40));
        assert_eq!(stop.phase(), Phase::Aborted);
        stop.abort();
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
        let zero = Stop::new();
        zero.drain(Duration::ZERO);
        zero.aborted().await;
    }
}
