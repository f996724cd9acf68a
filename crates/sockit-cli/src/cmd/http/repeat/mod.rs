//! `--repeat N`: the transfer N times, each phase's times kept in an HDR histogram and
//! summed up as p50/p90/p99/max; cold (a new connection each run) or warm (`--reuse`: one
//! keep-alive connection); paced by `--rate`; `--json` writes the histograms in bench's
//! compressed form, and `--merge` adds such files up. SIGINT or SIGTERM stops the runs:
//! what was measured is reported, marked partial.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sockit::bench::hdrhistogram::Histogram;

use super::record::{Record, us};
use super::transfer::{Ctx, Pooled, transfer};

mod merge;

pub use self::merge::merge;

/// The phases of the table, with their JSON names: each a time since the request began.
const PHASES: &[(&str, &str)] = &[
    ("name lookup", "name_lookup"),
    ("connect", "connect"),
    ("TLS", "tls"),
    ("request sent", "request_sent"),
    ("first byte", "first_byte"),
    ("total", "total"),
];

/// One phase in `--json`: sample count, percentiles in µs, the histogram (ns).
#[derive(Debug, Serialize, Deserialize)]
struct PhaseJson {
    phase: String,
    count: u64,
    min_us: Option<f64>,
    p50_us: Option<f64>,
    p90_us: Option<f64>,
    p99_us: Option<f64>,
    max_us: Option<f64>,
    histogram: String,
    histogram_unit: String,
}

/// The `--repeat --json` object (and what `--merge` reads back).
#[derive(Debug, Serialize, Deserialize)]
struct StatsJson {
    event: String,
    url: String,
    method: String,
    runs: u64,
    ok: u64,
    failed: u64,
    reuse: bool,
    connects: u64,
    rate_per_s: Option<f64>,
    duration_us: u64,
    /// `count` (every run done), `stopped` (SIGINT/SIGTERM) or `merged`.
    #[serde(default = "count_word")]
    stopped_by: String,
    /// True when a signal stopped the runs before their count.
    #[serde(default)]
    partial: bool,
    errors_by_kind: BTreeMap<String, u64>,
    first_error: Option<serde_json::Value>,
    phases: Vec<PhaseJson>,
}

fn count_word() -> String {
    "count".to_string()
}

/// What the runs measured: counts, errors and one histogram (ns) per phase.
struct Summary {
    url: String,
    method: String,
    runs: u64,
    ok: u64,
    failed: u64,
    reuse: bool,
    connects: u64,
    rate_per_s: Option<f64>,
    duration: Duration,
    stopped_by: &'static str,
    partial: bool,
    by_kind: BTreeMap<String, u64>,
    first_error: Option<serde_json::Value>,
    hists: Vec<Histogram<u64>>,
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// Runs the transfer `n` times and reports.
pub fn run(ctx: &mut Ctx<'_>, n: u64) -> anyhow::Result<ExitCode> {
    let (args, plan) = (ctx.args, ctx.plan);
    let stop = crate::lifecycle::stop_on_signals("http")?;
    let mut hists: Vec<Histogram<u64>> = PHASES
        .iter()
        .map(|_| sockit::bench::new_histogram())
        .collect();
    let progress = (!super::silent(args) && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(n);
        b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        b.set_style(
            indicatif::ProgressStyle::with_template("{pos}/{len} runs {bar:30} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut pool: Option<Pooled<'_>> = None;
    let (mut ok, mut failed, mut connects, mut done) = (0u64, 0u64, 0u64, 0u64);
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_error: Option<anyhow::Error> = None;
    let began = Instant::now();
    for i in 0..n {
        if let Some(every) = plan.rate_interval {
            let at = began + every.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
            sleep_until(at, &stop);
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        ctx.outs.reset();
        let mut rec = Record::new(plan);
        let mut result = transfer(ctx, &mut pool, &mut rec);
        if result.is_err() && rec.reused_without_answer() {
            // the server closed the kept connection meanwhile: once more on a new one
            pool = None;
            rec = Record::new(plan);
            result = transfer(ctx, &mut pool, &mut rec);
        }
        rec.finish(&result);
        done += 1;
        connects += rec.values.num_connects;
        super::write_out(&ctx.reporter, plan, &rec, result.is_err());
        match &result {
            Ok(()) => {
                ok += 1;
                if let Some(t) = rec.last_timings {
                    let samples = [
                        t.dns,
                        t.connect,
                        t.tls,
                        t.request_sent,
                        t.first_byte,
                        t.total,
                    ];
                    for (h, d) in hists.iter_mut().zip(samples) {
                        if let Some(d) = d {
                            h.saturating_record(ns(d).max(1));
                        }
                    }
                }
            }
            Err(e) => {
                failed += 1;
                pool = None;
                let kind = crate::exit::sockit_error(e).map_or("other", |s| s.kind().as_str());
                *by_kind.entry(kind.to_string()).or_default() += 1;
                if crate::exit::is_broken_pipe(e) {
                    return Err(result.unwrap_err());
                }
                if first_error.is_none() {
                    first_error = result.err();
                }
            }
        }
        if let Some(b) = &progress {
            b.set_position(i + 1);
            if let Some(t) = rec.last_timings.and_then(|t| t.total) {
                b.set_message(format!("last {} ms", ms(ns(t))));
            }
        }
    }
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    if let Some(path) = &args.plot {
        let ms = |ns: u64| ns as f64 / 1e6;
        let rows: Vec<crate::plot::PhaseRow> = PHASES
            .iter()
            .zip(&hists)
            .filter(|(_, h)| !h.is_empty())
            .map(|((label, _), h)| crate::plot::PhaseRow {
                label: format!("{label} (n={})", h.len()),
                bar: (ms(h.value_at_quantile(0.25)), ms(h.value_at_quantile(0.75))),
                whiskers: Some((ms(h.min()), ms(h.max()))),
                median: Some(ms(h.value_at_quantile(0.5))),
            })
            .collect();
        crate::plot::waterfall(
            path,
            &format!(
                "{done} runs of {} {}: box p25-p75, whiskers min-max, mark p50",
                plan.method, plan.url
            ),
            &rows,
        )
        .map_err(|e| e.context("--plot"))?;
    }
    let partial = done < n;
    let summary = Summary {
        url: plan.url.to_string(),
        method: plan.method.clone(),
        runs: done,
        ok,
        failed,
        reuse: plan.keep_alive,
        connects,
        rate_per_s: plan.rate_interval.map(|d| 1.0 / d.as_secs_f64()),
        duration: began.elapsed(),
        stopped_by: if partial { "stopped" } else { "count" },
        partial,
        by_kind,
        first_error: first_error.as_ref().map(crate::output::json_error),
        hists,
    };
    print(&summary, args.json)?;
    if partial {
        let signal = crate::lifecycle::stopped_by();
        let name = if signal == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        crate::exit::stderr_line(format_args!(
            "sockit: http: stopped by {name} after {done} of {n} runs: the figures are those \
             measured until then"
        ));
        if signal == libc::SIGINT {
            return Ok(ExitCode::from(130));
        }
    }
    match first_error {
        Some(e) => {
            if !super::silent(args) {
                crate::exit::stderr_line(format_args!(
                    "sockit: {failed} of {done} runs failed; the first: {}",
                    crate::exit::python_text(&e)
                ));
            }
            Ok(ExitCode::from(crate::exit::code_for(&e)))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Waits until `at`, or until a signal sets `stop` (checked every 50 ms).
fn sleep_until(at: Instant, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Prints the summary: the table, or the `--json` object.
fn print(s: &Summary, json: bool) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json {
        let phases = PHASES
            .iter()
            .zip(&s.hists)
            .map(|((_, name), h)| {
                let q = |f: f64| (!h.is_empty()).then(|| h.value_at_quantile(f) as f64 / 1e3);
                PhaseJson {
                    phase: name.to_string(),
                    count: h.len(),
                    min_us: (!h.is_empty()).then(|| h.min() as f64 / 1e3),
                    p50_us: q(0.5),
                    p90_us: q(0.9),
                    p99_us: q(0.99),
                    max_us: (!h.is_empty()).then(|| h.max() as f64 / 1e3),
                    histogram: sockit::bench::encode_histogram(h).unwrap_or_default(),
                    histogram_unit: "ns".to_string(),
                }
            })
            .collect();
        let obj = StatsJson {
            event: "stats".to_string(),
            url: s.url.clone(),
            method: s.method.clone(),
            runs: s.runs,
            ok: s.ok,
            failed: s.failed,
            reuse: s.reuse,
            connects: s.connects,
            rate_per_s: s.rate_per_s,
            duration_us: us(s.duration),
            stopped_by: s.stopped_by.to_string(),
            partial: s.partial,
            errors_by_kind: s.by_kind.clone(),
            first_error: s.first_error.clone(),
            phases,
        };
        writeln!(stdout, "{}", serde_json::to_string(&obj)?)?;
    } else {
        let mode = if s.reuse {
            "warm (--reuse: one keep-alive connection, so connect and TLS show once)"
        } else {
            "cold (a new connection each run)"
        };
        let what = match s.stopped_by {
            "merged" => "merged runs",
            _ => "runs",
        };
        writeln!(
            stdout,
            "{} {what} of {} {} in {:.3} s, {mode}: {} ok, {} failed, {} connection{}{}",
            s.runs,
            s.method,
            s.url,
            s.duration.as_secs_f64(),
            s.ok,
            s.failed,
            s.connects,
            if s.connects == 1 { "" } else { "s" },
            if s.partial {
                " [partial: stopped before its end]"
            } else {
                ""
            }
        )?;
        writeln!(
            stdout,
            "{:<14}{:>6}{:>10}{:>10}{:>10}{:>10}   (ms since the request began)",
            "phase", "n", "p50", "p90", "p99", "max"
        )?;
        for ((label, _), h) in PHASES.iter().zip(&s.hists) {
            if h.is_empty() {
                writeln!(
                    stdout,
                    "{label:<14}{:>6}{:>10}{:>10}{:>10}{:>10}",
                    0, "-", "-", "-", "-"
                )?;
            } else {
                writeln!(
                    stdout,
                    "{label:<14}{:>6}{:>10}{:>10}{:>10}{:>10}",
                    h.len(),
                    ms(h.value_at_quantile(0.5)),
                    ms(h.value_at_quantile(0.9)),
                    ms(h.value_at_quantile(0.99)),
                    ms(h.max())
                )?;
            }
        }
    }
    stdout.flush()?;
    Ok(())
}

/// Nanoseconds, saturating.
fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
