//! `sockit bench`: round trips per second, latency percentiles and throughput against an
//! echo-style server, and `--merge` of saved `--json` results. The figures, their JSON
//! and text forms and the merge are the library's ([`sockit::bench::Report`]); here are
//! the flags (`args`), the live side of a run (`live`: progress, intervals, signals) and
//! the output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sockit::Error;
use sockit::bench::hdrhistogram::Histogram;
use sockit::bench::{self, Merge, Report, RunError};

mod args;
mod live;

pub use args::Args;
use args::{check_flags, config_of, target_text};
use live::run_with_progress;

/// Each merged run's name and histogram (for `--plot`).
type Parts = Vec<(String, Histogram<u64>)>;

/// Runs `sockit bench`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (report, parts) = match args
        .plot
        .as_deref()
        .map_or(Ok(()), crate::plot::check_target)
        .and_then(|()| measure(&args))
    {
        Ok(r) => r,
        Err(err) => {
            // the empty file --plot created before a run that failed is not left behind
            if let Some(p) = &args.plot
                && std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() == 0)
            {
                let _ = std::fs::remove_file(p);
            }
            if args.json && !crate::exit::is_broken_pipe(&err) {
                print_failed(&args, &err);
            }
            return Err(err);
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{report}")?;
    }
    out.flush()?;
    if let Some(svg) = &args.plot {
        let mut series: Vec<(String, &Histogram<u64>)> =
            parts.iter().map(|(n, h)| (n.clone(), h)).collect();
        let name = if report.is_merged() {
            "merged".to_string()
        } else {
            report.target.clone()
        };
        series.push((name, &report.histogram));
        crate::plot::latency_by_percentile(svg, "sockit bench: latency by percentile", &series)
            .context("--plot")?;
    }
    // a merge marked partial (a run in it was stopped) is no stop of this command
    if report.partial && !report.is_merged() {
        let signal = crate::lifecycle::stopped_by();
        let name = if signal == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        crate::exit::stderr_line(format_args!(
            "sockit: bench: stopped by {name}: the figures are those measured until then"
        ));
        if signal == libc::SIGINT {
            return Ok(ExitCode::from(130));
        }
    }
    Ok(exit_code(&report))
}

/// A run (or merge) that failed as a whole, under `--json`: the vocabulary's error
/// event, with the target (or the merged files) it was about.
#[derive(serde::Serialize)]
struct Failed<'a> {
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merge: Option<&'a [PathBuf]>,
    #[serde(flatten)]
    error: RunError,
}

fn print_failed(args: &Args, err: &anyhow::Error) {
    let merging = !args.merge.is_empty();
    let error = match crate::exit::sockit_error(err) {
        // `reason`: the word errors_by_kind counts it under (`check`, `reset`, …)
        Some(e) if merging => RunError::new(e.kind().as_str(), e),
        Some(e) => RunError::new(bench::error_kind_name(e), e),
        None => RunError::new(
            "os",
            &Error::new(sockit::ErrorKind::Os, "bench", None, format!("{err:#}")),
        ),
    };
    let failed = Failed {
        event: "error",
        target: (!merging).then(|| target_text(args)),
        merge: merging.then_some(args.merge.as_slice()),
        error,
    };
    if let Ok(line) = serde_json::to_string(&failed) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// 7 for wrong or lost data, or no reply at all; else the first error's kind; else 0.
fn exit_code(r: &Report) -> ExitCode {
    if let Some(n) = r.unanswered() {
        let s = if n == 1 { "" } else { "s" };
        if r.requests == 0 {
            crate::exit::stderr_line(format_args!(
                "sockit: bench: no reply in the measured window: {n} request{s} sent, 0 answered"
            ));
        } else {
            crate::exit::stderr_line(format_args!(
                "sockit: bench: a run got no reply in the measured window: {n} request{s} sent to it, 0 answered"
            ));
        }
        return ExitCode::from(7);
    }
    if r.data_errors() {
        crate::exit::stderr_line(format_args!(
            "sockit: bench: data came back wrong: {} mismatched, {} lost, {} truncated, {} bytes lost, {} extra bytes",
            r.mismatches, r.lost, r.truncated, r.lost_bytes, r.extra_bytes
        ));
        return ExitCode::from(7);
    }
    if r.errors > 0 {
        return ExitCode::from(
            r.first_error
                .as_ref()
                .map_or(1, |e| crate::exit::code_for_kind(e.kind)),
        );
    }
    ExitCode::SUCCESS
}

/// The merged files (with each merged run's histogram), or one run.
fn measure(args: &Args) -> anyhow::Result<(Report, Parts)> {
    if !args.merge.is_empty() {
        return merge_files(&args.merge);
    }
    check_flags(args)?;
    let mut config = config_of(args)?;
    if args.hdr_log.is_some() {
        config.interval = config.interval.or(Some(std::time::Duration::from_secs(1)));
    }
    config.stop = Some(crate::lifecycle::stop_on_signals("bench")?);
    if args.verbose > 0 {
        crate::exit::stderr_line(format_args!("sockit: bench {config}"));
    }
    let report = run_with_progress(&config, args)?;
    if args.verbose > 0 {
        crate::exit::stderr_line(format_args!(
            "sockit: bench: {} of {} connections set up; stopped by {}; load threads used {:.0} % of a CPU and waited for one {:.1} % of the time",
            report.connected,
            report.connections,
            report.stopped_by,
            report.cpu_pct.unwrap_or(0.0),
            report.cpu_wait_pct.unwrap_or(0.0)
        ));
        if let Some(e) = &report.first_error {
            crate::exit::stderr_line(format_args!("sockit: bench: first error: {}", e.message));
        }
    }
    Ok((report, Vec::new()))
}

/// Reads saved `--json` results and adds them up ([`Merge::add_text`]).
fn merge_files(files: &[PathBuf]) -> anyhow::Result<(Report, Parts)> {
    let mut merge = Merge::default();
    for f in files {
        let text = read_text(f)?;
        merge
            .add_text(&f.display().to_string(), &text)
            .context("--merge")?;
    }
    let parts = merge
        .parts()
        .map(|(n, h)| (n.to_string(), h.clone()))
        .collect();
    let report = merge
        .finish()
        .ok_or_else(|| Error::invalid_input("json", "no results in the --merge files"))?;
    Ok((report, parts))
}

/// A saved result file as text: at most 64 MiB (`/dev/zero` is refused, not read), UTF-8
/// (bad bytes are bad input naming the file and the line).
fn read_text(f: &Path) -> anyhow::Result<String> {
    let bytes = sockit::files::read_capped(f, 64 << 20, Some("open"), "bench result")
        .with_context(|| format!("--merge {}", f.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow::Error::new(Error::invalid_input(
            "json",
            format!("not text: bytes that are not UTF-8 at offset {at}"),
        ))
        .context(format!("--merge {} line {line}", f.display()))
    })
}
