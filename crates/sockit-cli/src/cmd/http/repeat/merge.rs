//! `sockit http --merge FILE…`: saved `--repeat --json` results added up into one.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use sockit::Error;

use super::{PHASES, StatsJson, Summary, print};

/// The largest saved file `--merge` reads: 64 MiB, as `bench --merge`.
const MAX_SAVED_FILE: u64 = 64 << 20;

/// `sockit http --merge FILE…`: adds up saved `--repeat --json` results (taken on several
/// machines, or one after another): counts summed, histograms merged, the longest
/// duration kept; then the same table or `--json` object as one run.
///
/// # Errors
/// InvalidInput (exit 2) for a file that is not such a result, naming the file and line;
/// results of different methods or of cold and warm runs together; Os for a file that
/// cannot be read.
pub fn merge(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let mut total: Option<Summary> = None;
    for f in files {
        let bytes = sockit::files::read_capped(f, MAX_SAVED_FILE, None, "saved result")
            .with_context(|| format!("--merge {}", f.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let mut found = 0;
        for (no, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("--merge {} line {}", f.display(), no + 1);
            let one = read_saved(line).with_context(|| at.clone())?;
            found += 1;
            total = Some(match total {
                None => one,
                Some(t) => add(t, one).with_context(|| at.clone())?,
            });
        }
        if found == 0 {
            return Err(Error::invalid_input(
                format!("--merge {}", f.display()),
                "no `sockit http --repeat --json` result in the file (it is empty)",
            )
            .into());
        }
    }
    let Some(mut total) = total else {
        return Err(Error::invalid_input("--merge", "no files given").into());
    };
    if files.len() > 1 || total.stopped_by == "merged" {
        total.stopped_by = "merged";
    }
    print(&total, json)?;
    Ok(ExitCode::SUCCESS)
}

/// One saved `--repeat --json` line.
fn read_saved(line: &str) -> anyhow::Result<Summary> {
    let bad = |m: String| anyhow::Error::new(Error::invalid_input("json", m));
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
    match v.get("event").and_then(|e| e.as_str()) {
        Some("stats") => {}
        Some("summary") => {
            return Err(bad(
                "this is a `sockit bench --json` result: merge it with sockit bench --merge"
                    .to_string(),
            ));
        }
        Some("error") => {
            return Err(bad(
                "a failed command (`\"event\":\"error\"`): only completed runs can be merged"
                    .to_string(),
            ));
        }
        _ => {
            return Err(bad(
                "not a `sockit http --repeat --json` result (`\"event\":\"stats\"`)".to_string(),
            ));
        }
    }
    let s: StatsJson = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
    let mut hists = Vec::with_capacity(PHASES.len());
    for (_, name) in PHASES {
        let p = s
            .phases
            .iter()
            .find(|p| p.phase == *name)
            .ok_or_else(|| bad(format!("no phase {name:?}")))?;
        if p.histogram_unit != "ns" {
            return Err(bad(format!(
                "phase {name:?}: histogram_unit {:?}, not \"ns\"",
                p.histogram_unit
            )));
        }
        let h = if p.histogram.is_empty() {
            sockit::bench::new_histogram()
        } else {
            sockit::bench::decode_histogram(&p.histogram)
                .with_context(|| format!("phase {name:?}"))?
        };
        hists.push(h);
    }
    Ok(Summary {
        url: s.url,
        method: s.method,
        runs: s.runs,
        ok: s.ok,
        failed: s.failed,
        reuse: s.reuse,
        connects: s.connects,
        rate_per_s: s.rate_per_s,
        duration: Duration::from_micros(s.duration_us),
        stopped_by: if s.stopped_by == "merged" {
            "merged"
        } else {
            "count"
        },
        partial: s.partial,
        by_kind: s.errors_by_kind,
        first_error: s.first_error,
        hists,
    })
}

/// Two results added up; refused when they measured different things.
fn add(mut a: Summary, b: Summary) -> anyhow::Result<Summary> {
    let bad = |m: String| anyhow::Error::new(Error::invalid_input("http --merge", m));
    if a.method != b.method {
        return Err(bad(format!(
            "another method ({} here, {} in the first): only runs of the same request merge",
            b.method, a.method
        )));
    }
    if a.reuse != b.reuse {
        return Err(bad(
            "cold and warm (--reuse) runs measure different things: they do not merge".to_string(),
        ));
    }
    if !a.url.split(", ").any(|u| u == b.url) {
        a.url = format!("{}, {}", a.url, b.url);
    }
    let sum = |x: u64, y: u64, what: &str| {
        x.checked_add(y)
            .ok_or_else(|| bad(format!("{what}: the sum passes 2^64")))
    };
    a.runs = sum(a.runs, b.runs, "runs")?;
    a.ok = sum(a.ok, b.ok, "ok")?;
    a.failed = sum(a.failed, b.failed, "failed")?;
    a.connects = sum(a.connects, b.connects, "connects")?;
    a.rate_per_s = match (a.rate_per_s, b.rate_per_s) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    };
    a.duration = a.duration.max(b.duration);
    a.partial |= b.partial;
    for (k, v) in b.by_kind {
        let e = a.by_kind.entry(k).or_default();
        *e = sum(*e, v, "errors_by_kind")?;
    }
    a.first_error = a.first_error.or(b.first_error);
    for (h, other) in a.hists.iter_mut().zip(&b.hists) {
        h.add(other)
            .map_err(|e| bad(format!("histograms do not add up: {e}")))?;
    }
    a.stopped_by = "merged";
    Ok(a)
}
