//! What a `connect` or `listen` transfer shows while it runs: the totals line on SIGUSR1
//! and every `--stats-interval SECS` (on stderr, text or `--json`: stdout carries the
//! data), and with `-v` a progress line (bytes each way, rate) on stderr when stderr is a
//! terminal.
//!
//! The relay counts into the transfer's [`Counters`] ([`Transfer::counters`]: connect's
//! relay, listen's one peer); everything shown is read from them.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sockit::relay::Counters;

use crate::args::{OutputArgs, StatsArgs};

/// How often the progress line is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(250);

/// The `stats` event of a transfer.
#[derive(Debug, Serialize)]
struct TransferStats {
    event: &'static str,
    bytes_sent: u64,
    bytes_received: u64,
    #[serde(skip_serializing_if = "is_zero")]
    datagrams_sent: u64,
    #[serde(skip_serializing_if = "is_zero")]
    datagrams_received: u64,
    duration_us: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One transfer's counters, totals line and progress line. Create it inside the runtime
/// before the `listening` line (listen) or the connect (connect).
pub struct Transfer {
    counters: Arc<Counters>,
    progress: Option<ProgressBar>,
}

impl Transfer {
    /// Registers SIGUSR1, starts the `--stats-interval` ticker, and with `-v` on a
    /// terminal the progress line.
    ///
    /// # Errors
    /// When the SIGUSR1 handler cannot be registered.
    pub fn start(out: &OutputArgs, stats: &StatsArgs) -> anyhow::Result<Transfer> {
        let counters = Arc::new(Counters::new());
        let started = Instant::now();
        let (c, json) = (Arc::clone(&counters), out.json);
        crate::ops::on_stats_signal(stats.interval, move || print_stats(&c, started, json))?;
        let progress = (out.verbose > 0 && !out.json && std::io::stderr().is_terminal())
            .then(|| progress_line(Arc::clone(&counters), started));
        Ok(Transfer { counters, progress })
    }

    /// The counters the transfer shows (a relay elsewhere, listen's one peer, counts
    /// into them).
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// Clears the progress line (the totals follow as events).
    fn end(&self) {
        if let Some(p) = &self.progress {
            p.finish_and_clear();
            crate::exit::set_progress(None);
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.end();
    }
}

fn print_stats(c: &Counters, started: Instant, json: bool) {
    let t = c.totals();
    let s = TransferStats {
        event: "stats",
        bytes_sent: t.bytes_sent,
        bytes_received: t.bytes_received,
        datagrams_sent: t.datagrams_sent,
        datagrams_received: t.datagrams_received,
        duration_us: started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64,
    };
    if json {
        let v = serde_json::to_value(&s).unwrap_or_default();
        crate::exit::stderr_line(format_args!("{v}"));
        return;
    }
    let dgrams = if s.datagrams_sent + s.datagrams_received > 0 {
        format!(
            ", {} datagrams sent, {} datagrams received",
            s.datagrams_sent, s.datagrams_received
        )
    } else {
        String::new()
    };
    crate::exit::stderr_line(format_args!(
        "sockit: stats: {} bytes sent, {} bytes received{dgrams}, {:.3} s",
        s.bytes_sent,
        s.bytes_received,
        s.duration_us as f64 / 1e6
    ));
}

/// A spinner on stderr: `↑ sent ↓ received  rate  elapsed`, redrawn every 250 ms from
/// the counters, the rate over the last second.
fn progress_line(c: Arc<Counters>, started: Instant) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    crate::exit::set_progress(Some(bar.clone()));
    let b = bar.clone();
    tokio::spawn(async move {
        let mut window: std::collections::VecDeque<(Instant, u64)> = Default::default();
        let mut tick = tokio::time::interval(PROGRESS_TICK);
        while !b.is_finished() {
            tick.tick().await;
            let t = c.totals();
            let now = Instant::now();
            let total = t.bytes_sent + t.bytes_received;
            window.push_back((now, total));
            while window.len() > 1 && now.duration_since(window[0].0) > Duration::from_secs(1) {
                window.pop_front();
            }
            let (t0, b0) = window[0];
            let secs = now.duration_since(t0).as_secs_f64();
            let rate = if secs > 0.0 {
                (total - b0) as f64 / secs
            } else {
                0.0
            };
            b.set_message(format!(
                "↑ {}  ↓ {}  {}/s",
                HumanBytes(t.bytes_sent),
                HumanBytes(t.bytes_received),
                HumanBytes(rate as u64)
            ));
            b.tick();
        }
        let _ = started;
    });
    bar
}
