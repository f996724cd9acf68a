//! What every server runs beside its job: its counters fed from its events
//! ([`sockit::serve::Metrics`]), the totals line on SIGUSR1 and every `--stats-interval`,
//! and the `--metrics` endpoint.
//!
//! Order (so that a signal or a scrape sent as soon as a line is read is served):
//! [`ServerOps::new`] inside the runtime, before the server's `listening` line (registers
//! SIGUSR1, binds the endpoint); the server's `listening` line(s); then
//! [`ServerOps::start`] (the endpoint's `listening HOST PORT metrics` line, serving).

use std::sync::Arc;

use anyhow::Context as _;
use sockit::serve::metrics::Endpoint;
use sockit::serve::{Event, EventSink, Metrics, Stop};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::{FamilyArgs, MetricsArgs, StatsArgs};
use crate::report::Reporter;

/// A server's counters, totals line and metrics endpoint.
pub struct ServerOps {
    metrics: Arc<Metrics>,
    reporter: Arc<Reporter>,
    endpoint: Option<Endpoint>,
    show_datagrams: bool,
}

impl ServerOps {
    /// Registers SIGUSR1 and starts the `--stats-interval` ticker (both print the `stats`
    /// event through `reporter`), and binds the `--metrics` endpoint. Call inside the
    /// runtime, before the server's `listening` line. `show_datagrams`: the reporter
    /// shows per-datagram events (`-vv`, `--json`); otherwise they only feed the counters.
    ///
    /// # Errors
    /// When the handler cannot be registered or the endpoint cannot be bound.
    pub fn new(
        reporter: &Arc<Reporter>,
        stats: &StatsArgs,
        metrics: &MetricsArgs,
        family: &FamilyArgs,
        show_datagrams: bool,
    ) -> anyhow::Result<ServerOps> {
        let counters = Arc::new(Metrics::new());
        watch_stats(reporter, stats, {
            let m = Arc::clone(&counters);
            move || m.stats_event()
        })?;
        let endpoint = match metrics.addr(family)? {
            Some(addr) => {
                let text = metrics.metrics.as_deref().unwrap_or_default();
                Some(
                    Endpoint::bind(addr)
                        .map_err(|e| crate::args::address_error(Some("--metrics"), text, e))?,
                )
            }
            None => None,
        };
        Ok(ServerOps {
            metrics: counters,
            reporter: Arc::clone(reporter),
            endpoint,
            show_datagrams,
        })
    }

    /// Should the server report every datagram (the endpoint counts the echo server's
    /// round trips from them)?
    pub fn wants_datagrams(&self) -> bool {
        self.show_datagrams || self.endpoint.is_some()
    }

    /// The server's event callback: counts every event, then reports it.
    pub fn sink(&self) -> EventSink {
        let (m, report, show) = (
            Arc::clone(&self.metrics),
            self.reporter.sink(),
            self.show_datagrams,
        );
        Arc::new(move |ev| {
            m.observe(&ev);
            if show || !matches!(ev, Event::Datagram { .. }) {
                report(ev);
            }
        })
    }

    /// Names the series of a transport the server serves (see
    /// [`Metrics::prepare`]).
    pub fn serving(&self, transport: sockit::serve::Transport) {
        self.metrics.prepare(transport);
    }

    /// Prints the endpoint's `listening … metrics` line and serves it until `stop`. Call
    /// inside the runtime, after the server's `listening` line(s).
    ///
    /// # Errors
    /// The write error of the `listening` line.
    pub fn start(self, stop: Stop) -> anyhow::Result<()> {
        if let Some(endpoint) = self.endpoint {
            self.reporter.listening(&endpoint.listening(), None)?;
            let loopback = match endpoint.local() {
                sockit::serve::Peer::Ip(a) => a.ip().is_loopback(),
                _ => true,
            };
            if !loopback {
                self.reporter.warn_on_stderr(format!(
                    "--metrics on {}: anyone who can reach it can read the counters (give a \
                     loopback address)",
                    endpoint.local()
                ));
            }
            tokio::spawn(endpoint.run(self.metrics, stop));
        }
        Ok(())
    }
}

/// Prints `stats()` through `reporter` on each SIGUSR1 and every `--stats-interval`, from
/// a task of the current runtime (the handler is registered before this returns).
///
/// # Errors
/// When the SIGUSR1 handler cannot be registered.
pub fn watch_stats(
    reporter: &Arc<Reporter>,
    args: &StatsArgs,
    stats: impl Fn() -> Event + Send + 'static,
) -> anyhow::Result<()> {
    let reporter = Arc::clone(reporter);
    on_stats_signal(args.interval, move || reporter.event(&stats()))
}

/// Runs `show` on each SIGUSR1 and every `every` (socat 1.8's totals on SIGUSR1, and
/// `--stats-interval`), from a task of the current runtime: the one ticker of servers
/// ([`watch_stats`]) and transfers (connect, listen). The handler is registered before
/// this returns.
///
/// # Errors
/// When the SIGUSR1 handler cannot be registered.
pub fn on_stats_signal(
    every: Option<std::time::Duration>,
    show: impl Fn() + Send + 'static,
) -> anyhow::Result<()> {
    let mut usr1 = signal(SignalKind::user_defined1()).context("SIGUSR1 handler")?;
    tokio::spawn(async move {
        let mut tick = every.map(|d| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            let ticked = async {
                match tick.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                got = usr1.recv() => {
                    if got.is_none() {
                        return;
                    }
                }
                () = ticked => {}
            }
            show();
        }
    });
    Ok(())
}
