//! `--repeat N`: the transfer N times, each phase's times kept in an HDR histogram and
//! summed up as p50/p90/p99/max; cold (a new connection each run) or warm (`--reuse`: one
//! keep-alive connection); paced by `--rate`; `--json` writes the histograms in bench's
//! compressed form so that runs from several machines merge.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;
use sockit::bench::hdrhistogram::Histogram;

use super::transfer::{Ctx, Pooled, Record, transfer, us};

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
#[derive(Debug, Serialize)]
struct PhaseJson {
    phase: &'static str,
    count: u64,
    min_us: Option<f64>,
    p50_us: Option<f64>,
    p90_us: Option<f64>,
    p99_us: Option<f64>,
    max_us: Option<f64>,
    histogram: String,
    histogram_unit: &'static str,
}

/// The `--repeat --json` object.
#[derive(Debug, Serialize)]
struct StatsJson {
    event: &'static str,
    url: String,
    method: String,
    runs: u64,
    ok: u64,
    failed: u64,
    reuse: bool,
    connects: u64,
    rate_per_s: Option<f64>,
    duration_us: u64,
    errors_by_kind: BTreeMap<&'static str, u64>,
    first_error: Option<serde_json::Value>,
    phases: Vec<PhaseJson>,
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// Runs the transfer `n` times and reports.
pub fn run(ctx: &mut Ctx<'_>, n: u64) -> anyhow::Result<ExitCode> {
    let (args, plan) = (ctx.args, ctx.plan);
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
    let (mut ok, mut failed, mut connects) = (0u64, 0u64, 0u64);
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut first_error: Option<anyhow::Error> = None;
    let began = Instant::now();
    for i in 0..n {
        if let Some(every) = plan.rate_interval {
            let at = began + every.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
            let wait = at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
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
        connects += rec.values.num_connects;
        super::write_out(plan, &rec, result.is_err());
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
                            let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
                            h.saturating_record(ns);
                        }
                    }
                }
            }
            Err(e) => {
                failed += 1;
                pool = None;
                let kind = crate::exit::sockit_error(e).map_or("other", |s| s.kind().as_str());
                *by_kind.entry(kind).or_default() += 1;
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
    let elapsed = began.elapsed();
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
                "{n} runs of {} {}: box p25-p75, whiskers min-max, mark p50",
                plan.method, plan.url
            ),
            &rows,
        )
        .map_err(|e| e.context("--plot"))?;
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let phases = PHASES
            .iter()
            .zip(&hists)
            .map(|((_, name), h)| {
                let q = |f: f64| (!h.is_empty()).then(|| h.value_at_quantile(f) as f64 / 1e3);
                PhaseJson {
                    phase: name,
                    count: h.len(),
                    min_us: (!h.is_empty()).then(|| h.min() as f64 / 1e3),
                    p50_us: q(0.5),
                    p90_us: q(0.9),
                    p99_us: q(0.99),
                    max_us: (!h.is_empty()).then(|| h.max() as f64 / 1e3),
                    histogram: sockit::bench::encode_histogram(h).unwrap_or_default(),
                    histogram_unit: "ns",
                }
            })
            .collect();
        let obj = StatsJson {
            event: "stats",
            url: plan.url.to_string(),
            method: plan.method.clone(),
            runs: n,
            ok,
            failed,
            reuse: plan.keep_alive,
            connects,
            rate_per_s: plan.rate_interval.map(|d| 1.0 / d.as_secs_f64()),
            duration_us: us(elapsed),
            errors_by_kind: by_kind,
            first_error: first_error.as_ref().map(crate::output::json_error),
            phases,
        };
        writeln!(stdout, "{}", serde_json::to_string(&obj)?)?;
    } else {
        let mode = if plan.keep_alive {
            "warm (--reuse: one keep-alive connection, so connect and TLS show once)"
        } else {
            "cold (a new connection each run)"
        };
        writeln!(
            stdout,
            "{n} runs of {} {} in {:.3} s, {mode}: {ok} ok, {failed} failed, {connects} \
             connection{}",
            plan.method,
            plan.url,
            elapsed.as_secs_f64(),
            if connects == 1 { "" } else { "s" }
        )?;
        writeln!(
            stdout,
            "{:<14}{:>6}{:>10}{:>10}{:>10}{:>10}   (ms since the request began)",
            "phase", "n", "p50", "p90", "p99", "max"
        )?;
        for ((label, _), h) in PHASES.iter().zip(&hists) {
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
    drop(stdout);
    match first_error {
        Some(e) => {
            if !super::silent(args) || args.show_error {
                crate::exit::stderr_line(format_args!(
                    "sockit: {failed} of {n} runs failed; the first: {}",
                    crate::exit::python_text(&e)
                ));
            }
            Ok(ExitCode::from(crate::exit::code_for(&e)))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Nanoseconds, saturating.
fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
