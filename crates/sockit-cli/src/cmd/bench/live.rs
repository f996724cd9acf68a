//! The live side of a run: the progress line (stderr, only on a terminal), the
//! `--interval` lines and the `--hdr-log` file (SIGINT/SIGTERM stopping the run is
//! `crate::lifecycle::stop_on_signals`, shared with `http --repeat`).

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use sockit::Error;
use sockit::bench::{self, Config, Event, HdrLog, Report};

use super::Args;

/// Seconds for the progress line: up to 3 decimals, none when whole (`1.5`, `2`).
fn secs_text(d: Duration) -> String {
    format!("{}", (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Runs the benchmark with a progress line on stderr when stderr is a terminal, the
/// `--interval` lines on stdout and the `--hdr-log` file.
pub(super) fn run_with_progress(config: &Config, args: &Args) -> anyhow::Result<Report> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        b
    });
    let mut log = match &args.hdr_log {
        Some(f) => Some(
            std::fs::File::create(f)
                .map_err(|e| Error::from_io("open", e))
                .with_context(|| format!("--hdr-log {}", f.display()))?,
        ),
        None => None,
    };
    let mut hdr: Option<HdrLog<std::io::BufWriter<std::fs::File>>> = None;
    let mut failed: Option<anyhow::Error> = None;
    let (mut last_requests, mut last_t) = (0u64, Duration::ZERO);
    let report = bench::run_with(config, |e| match e {
        Event::Progress(p) => {
            let Some(b) = &bar else { return };
            let dt = (p.elapsed.saturating_sub(last_t)).as_secs_f64();
            let rate = if dt > 0.0 {
                (p.requests.saturating_sub(last_requests)) as f64 / dt
            } else {
                0.0
            };
            (last_requests, last_t) = (p.requests, p.elapsed);
            b.set_message(format!(
                "{} {:.1}/{} s  {} connections  {} requests  {rate:.0} rps",
                if p.measuring { "bench" } else { "warm-up" },
                p.elapsed.as_secs_f64(),
                secs_text(p.planned),
                p.connected,
                p.requests,
            ));
        }
        Event::Interval(iv) => {
            if failed.is_some() {
                return;
            }
            let mut write = || -> anyhow::Result<()> {
                if let Some(f) = log.take() {
                    let base = std::time::SystemTime::now() - iv.end;
                    hdr = Some(HdrLog::new(std::io::BufWriter::new(f), base)?);
                }
                if let Some(h) = &mut hdr {
                    h.write(iv)?;
                }
                if args.interval.is_some() {
                    let line = if args.json {
                        serde_json::to_string(iv)?
                    } else {
                        iv.to_string()
                    };
                    let print = || {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "{line}").and_then(|()| out.flush())
                    };
                    match &bar {
                        Some(b) => b.suspend(print),
                        None => print(),
                    }?;
                }
                Ok(())
            };
            if let Err(e) = write() {
                failed = Some(e);
                if let Some(stop) = &config.stop {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(e) = failed {
        let what = args
            .hdr_log
            .as_ref()
            .map_or("stdout".into(), |f| format!("--hdr-log {}", f.display()));
        return Err(e.context(what));
    }
    report.context("bench")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_the_planned_seconds_as_given() {
        // Regression: `--duration 1.5` showed "0.1/2 s".
        assert_eq!(secs_text(Duration::from_millis(1500)), "1.5");
        assert_eq!(secs_text(Duration::from_secs(2)), "2");
        assert_eq!(secs_text(Duration::from_millis(250)), "0.25");
    }
}
