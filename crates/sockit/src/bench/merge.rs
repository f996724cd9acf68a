//! Saved results: [`read_line`] reads one line of `bench --json` output (in this
//! vocabulary or the one before it), [`Merge`] adds results up.

use hdrhistogram::Histogram;

use super::histogram::{merge_histograms, new_histogram};
use super::report::{Report, RunError, StopReason, kind_word};
use crate::error::{Error, ErrorKind, Result};

/// One line of a saved `--json` output, as [`read_line`] finds it.
#[derive(Debug, Clone)]
pub enum Saved {
    /// A result (`"event":"summary"`, or a line saved before events had names).
    Summary(Box<Report>),
    /// A run that failed as a whole: its error.
    Failed(RunError),
    /// Another line (an `interval` line): nothing to add.
    Other,
}

/// Reads one line of saved `bench --json` output, in this vocabulary or the one before
/// it (`protocol`/`unix-dgram`, `duration_s`/`warmup_s` in seconds, `first_error.kind`
/// the `errors_by_kind` word, a failed run as `{"target","error":{…}}`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] (op `json`) naming the field and what is wrong with it
/// (`field "requests": invalid type: string "many", expected u64`), for text that is
/// not one JSON object, or a result without a field it must have.
pub fn read_line(line: &str) -> Result<Saved> {
    use serde_json::Value;
    let bad = |m: String| Error::invalid_input("json", m);
    let mut v: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
    let Some(o) = v.as_object_mut() else {
        return Err(bad(format!("not a JSON object but {}", short(line, 40))));
    };
    // a failed run: `{"event":"error",…}`, before: `{"target","error":{…}}`
    let event = o.get("event").and_then(Value::as_str).map(str::to_string);
    if event.as_deref() == Some("error") || (event.is_none() && o.contains_key("error")) {
        let mut e = match o.remove("error") {
            Some(Value::Object(e)) => e,
            _ => o.clone(),
        };
        upgrade_error(&mut e);
        let e = serde_path_to_error::deserialize(Value::Object(e))
            .map_err(|e| bad(format!("error object: {e}")))?;
        return Ok(Saved::Failed(e));
    }
    if event.as_deref() == Some("stats") && o.contains_key("phases") {
        // not skipped as an interval line is: the file is another command's result
        return Err(bad(
            "this is a `sockit http --repeat --json` result: merge such files with sockit \
             http --merge"
                .to_string(),
        ));
    }
    if event.as_deref().is_some_and(|e| e != "summary") {
        return Ok(Saved::Other);
    }
    // before the vocabulary: seconds, and first_error.kind as errors_by_kind's word
    for (old, new) in [("duration_s", "duration_us"), ("warmup_s", "warmup_us")] {
        if let Some(x) = o.get(old).filter(|_| !o.contains_key(new)) {
            let secs = x.as_f64().filter(|s| *s >= 0.0).ok_or_else(|| {
                bad(format!(
                    "field \"{old}\": must be a number of at least 0, not {}",
                    short(&x.to_string(), 40)
                ))
            })?;
            o.insert(new.into(), Value::from((secs * 1e6).round() as u64));
        }
    }
    if !o.contains_key("sent_requests_total") {
        let sent = o.get("sent_requests").cloned().unwrap_or(Value::from(0));
        o.insert("sent_requests_total".into(), sent);
    }
    if let Some(Value::Object(e)) = o.get_mut("first_error") {
        upgrade_error(e);
    }
    let had_unanswered = o.contains_key("unanswered_requests");
    let mut r: Report = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            bad(inner.to_string())
        } else {
            bad(format!("field \"{path}\": {inner}"))
        }
    })?;
    if !had_unanswered {
        r.unanswered = if r.requests == 0 { r.sent_total } else { 0 };
    }
    r.refresh();
    Ok(Saved::Summary(Box::new(r)))
}

/// An error object saved before `reason` existed: its `kind` was the `errors_by_kind`
/// word (`closed`, `check` …) or, before that, the error kind.
fn upgrade_error(e: &mut serde_json::Map<String, serde_json::Value>) {
    if e.contains_key("reason") {
        return;
    }
    let word = e
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("os")
        .to_string();
    let kind = match word.as_str() {
        "check" => ErrorKind::Protocol,
        "refused" | "reset" | "closed" => ErrorKind::Os,
        w => kind_word::parse(w).unwrap_or(ErrorKind::Os),
    };
    e.insert("kind".into(), kind.as_str().into());
    e.insert("reason".into(), word.into());
    e.entry("op").or_insert_with(|| "bench".into());
}

/// `text` cut to `max` characters (with `…`), for echoing a bad value.
fn short(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Adds saved runs up: counts and rates are summed (the runs are taken as concurrent),
/// the histograms merged, the longest duration kept.
///
/// ```no_run
/// # fn main() -> sockit::Result<()> {
/// use sockit::bench::Merge;
/// let mut merge = Merge::default();
/// for f in ["a.json", "b.json"] {
///     merge.add_text(f, &std::fs::read_to_string(f).unwrap())?;
/// }
/// let total = merge.finish().expect("a result was added");
/// println!("{total}");
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Merge {
    sum: Option<Report>,
    /// Where the first result was read ([`Merge::add_text`]).
    first: Option<String>,
    hists: Vec<Histogram<u64>>,
    /// What each histogram is (the target, or where [`Merge::add_text`] read it).
    labels: Vec<String>,
    targets: Vec<String>,
}

impl Merge {
    /// Adds every result in `text`, saved `--json` output (one object per line, blank
    /// and `interval` lines skipped), and returns how many there were; `name` (a file
    /// name) names the place in errors: `a.json line 3: json: field "requests": …`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a line [`read_line`] refuses, a failed run (`NAME
    /// is a failed run (error: …; line N): only completed runs can be merged`), text
    /// without any result (`no results in the file (it is empty)`), and as
    /// [`Merge::add`] (naming the line, and the first run's place).
    pub fn add_text(&mut self, name: &str, text: &str) -> Result<usize> {
        let mut results = 0;
        for (no, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let at = format!("{name} line {}", no + 1);
            let locate = |e: Error, at: &str| {
                Error::invalid_input(format!("{at}: {}", e.op()), e.message().to_string())
            };
            match read_line(line).map_err(|e| locate(e, &at))? {
                Saved::Other => {}
                Saved::Failed(e) => {
                    return Err(Error::invalid_input(
                        "bench --merge",
                        format!(
                            "{name} is a failed run (error: {}; line {}): only completed runs can be merged",
                            short(&e.message, 200),
                            no + 1
                        ),
                    ));
                }
                Saved::Summary(r) => {
                    let place = match &self.first {
                        Some(first) => format!("{at} (the first run: {first})"),
                        None => at.clone(),
                    };
                    self.add(*r).map_err(|e| locate(e, &place))?;
                    if let Some(l) = self.labels.last_mut() {
                        l.clone_from(&at);
                    }
                    self.first.get_or_insert(at);
                    results += 1;
                }
            }
        }
        if results == 0 {
            // refused like an empty file alone: a run that is not there cannot be added
            return Err(Error::invalid_input(
                format!("{name}: json"),
                "no results in the file (it is empty)",
            ));
        }
        Ok(results)
    }

    /// Adds one result.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when `r` is not the same benchmark as the first run
    /// (another transport, mode or size: the message says which), or when a sum passes
    /// 2^64 or the summed rates are too large to be a number.
    pub fn add(&mut self, r: Report) -> Result<()> {
        let bad = |m: String| Error::invalid_input("bench --merge", m);
        let Some(s) = &mut self.sum else {
            self.targets.push(r.target.clone());
            self.labels.push(r.target.clone());
            let mut r = r;
            self.hists
                .push(std::mem::replace(&mut r.histogram, new_histogram()));
            self.sum = Some(r);
            return Ok(());
        };
        let mut differ = Vec::new();
        if s.transport != r.transport {
            differ.push(format!("transport {} and {}", s.transport, r.transport));
        }
        if s.mode != r.mode {
            differ.push(format!("mode {} and {}", s.mode.as_str(), r.mode.as_str()));
        }
        if s.size != r.size {
            differ.push(format!("size_bytes {} and {}", s.size, r.size));
        }
        if !differ.is_empty() {
            return Err(bad(format!(
                "not the same benchmark as the first run: {}; only runs of one transport, mode and size add up",
                differ.join(", ")
            )));
        }
        let sum = |a: &mut u64, b: u64, k: &str| -> Result<()> {
            *a = a.checked_add(b).ok_or_else(|| {
                Error::invalid_input(
                    "json",
                    format!("field \"{k}\": the sum over the runs passes 2^64"),
                )
            })?;
            Ok(())
        };
        // one stopped run makes the sum partial
        s.partial |= r.partial;
        sum(&mut s.runs, r.runs, "runs")?;
        sum(&mut s.connections, r.connections, "connections")?;
        sum(&mut s.connected, r.connected, "connected")?;
        sum(&mut s.threads, r.threads, "threads")?;
        sum(&mut s.requests, r.requests, "requests")?;
        sum(&mut s.bytes_sent, r.bytes_sent, "bytes_sent")?;
        sum(&mut s.bytes_received, r.bytes_received, "bytes_received")?;
        sum(&mut s.mismatches, r.mismatches, "mismatches")?;
        sum(&mut s.lost, r.lost, "lost")?;
        sum(&mut s.truncated, r.truncated, "truncated")?;
        sum(&mut s.late, r.late, "late")?;
        sum(&mut s.duplicates, r.duplicates, "duplicates")?;
        sum(&mut s.sent, r.sent, "sent_requests")?;
        sum(&mut s.sent_total, r.sent_total, "sent_requests_total")?;
        sum(&mut s.unanswered, r.unanswered, "unanswered_requests")?;
        sum(&mut s.unsent, r.unsent, "unsent_requests")?;
        sum(&mut s.lost_bytes, r.lost_bytes, "lost_bytes")?;
        sum(&mut s.extra_bytes, r.extra_bytes, "extra_bytes")?;
        for (k, n) in r.errors_by_kind {
            sum(s.errors_by_kind.entry(k).or_insert(0), n, "errors_by_kind")?;
        }
        s.requests_per_connection.extend(r.requests_per_connection);
        s.elapsed = s.elapsed.max(r.elapsed);
        s.warmup = s.warmup.max(r.warmup);
        s.rps += r.rps;
        s.mb_per_s += r.mb_per_s;
        if !(s.rps.is_finite() && s.mb_per_s.is_finite()) {
            return Err(bad(
                "the summed rates are too large to be a number".to_string()
            ));
        }
        if s.first_error.is_none() {
            s.first_error = r.first_error;
        }
        if (&s.peer_host, &s.peer_port, &s.peer_path) != (&r.peer_host, &r.peer_port, &r.peer_path)
        {
            (s.peer_host, s.peer_port, s.peer_path) = (None, None, None);
        }
        self.labels.push(r.target.clone());
        if !self.targets.contains(&r.target) {
            self.targets.push(r.target);
        }
        self.hists.push(r.histogram);
        Ok(())
    }

    /// Each result added so far: its place (`a.json line 1` from [`Merge::add_text`],
    /// else its target) and its latency histogram.
    pub fn parts(&self) -> impl Iterator<Item = (&str, &Histogram<u64>)> {
        self.labels.iter().map(String::as_str).zip(&self.hists)
    }

    /// The sum of the runs added (`None` when none was): `stopped_by` `merged`, no CPU
    /// figures, no rate; `partial` when a run added was.
    pub fn finish(self) -> Option<Report> {
        let mut s = self.sum?;
        s.target = self.targets.join(", ");
        s.histogram = merge_histograms(&self.hists);
        s.stopped_by = StopReason::Merged;
        s.rate = None;
        s.cpu_pct = None;
        s.cpu_wait_pct = None;
        s.refresh();
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Mode, Target};

    fn run_like(requests: u64, sent_total: u64) -> Report {
        let t = Target::Udp("127.0.0.1:7".parse().unwrap());
        let mut r = Report::empty(&t, Mode::PingPong, 64);
        r.requests = requests;
        r.sent = requests;
        r.sent_total = sent_total;
        r.elapsed = std::time::Duration::from_millis(1500);
        for v in 1..=requests {
            r.histogram.record(v * 1000).unwrap();
        }
        r.derive();
        r
    }

    #[test]
    fn a_result_reads_back_as_written() {
        let r = run_like(10, 10);
        let line = serde_json::to_string(&r).unwrap();
        let Saved::Summary(back) = read_line(&line).unwrap() else {
            panic!("not a summary: {line}")
        };
        assert_eq!(serde_json::to_string(&back).unwrap(), line);
        assert!(line.contains(r#""transport":"udp""#), "{line}");
        assert!(line.contains(r#""duration_us":1500000"#), "{line}");
        assert!(
            line.contains(r#""peer_host":"127.0.0.1","peer_port":7"#),
            "{line}"
        );
    }

    #[test]
    fn an_old_line_reads_in_the_new_vocabulary() {
        let mut v: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&run_like(3, 3)).unwrap()).unwrap();
        let o = v.as_object_mut().unwrap();
        for k in [
            "event",
            "transport",
            "duration_us",
            "warmup_us",
            "sent_requests_total",
        ] {
            o.remove(k);
        }
        o.insert("protocol".into(), "unix-dgram".into());
        o.insert("duration_s".into(), 0.25.into());
        o.insert("warmup_s".into(), 0.into());
        o.insert(
            "first_error".into(),
            serde_json::json!({"kind": "check", "op": "x", "code": null, "message": "x: bad"}),
        );
        let Saved::Summary(r) = read_line(&v.to_string()).unwrap() else {
            panic!()
        };
        assert_eq!(r.transport, crate::bench::Transport::Unixgram);
        assert_eq!(r.elapsed, std::time::Duration::from_millis(250));
        let e = r.first_error.unwrap();
        assert_eq!((e.kind, e.reason.as_str()), (ErrorKind::Protocol, "check"));
        // a failed run, old and new
        let old = r#"{"error":{"code":111,"kind":"refused","message":"connect: [Errno 111] Connection refused","op":"connect"},"target":"127.0.0.1:1"}"#;
        let Saved::Failed(e) = read_line(old).unwrap() else {
            panic!()
        };
        assert_eq!(
            (e.kind, e.reason.as_str(), e.code),
            (ErrorKind::Os, "refused", Some(111))
        );
        assert!(matches!(
            read_line(r#"{"event":"interval"}"#),
            Ok(Saved::Other)
        ));
    }

    #[test]
    fn an_http_repeat_result_says_what_it_is() {
        // Regression: `bench --merge` on an `http --repeat --json` file said "no results
        // in the file (it is empty)".
        let mut m = Merge::default();
        let e = m
            .add_text("h.json", r#"{"event":"stats","runs":3,"phases":[]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("sockit http --merge"), "{e}");
    }

    #[test]
    fn a_merge_with_a_stopped_run_is_partial() {
        // Regression: a merged summary did not say that a run in it was stopped early.
        let mut stopped = run_like(3, 3);
        stopped.partial = true;
        let mut m = Merge::default();
        m.add(run_like(10, 10)).unwrap();
        m.add(stopped).unwrap();
        let r = m.finish().unwrap();
        assert!(r.partial);
        assert!(
            r.to_string()
                .contains("[partial: a merged run was stopped before its end]")
        );
        let mut m = Merge::default();
        m.add(run_like(10, 10)).unwrap();
        assert!(!m.finish().unwrap().partial);
    }

    #[test]
    fn merged_runs_keep_a_silent_one() {
        let mut m = Merge::default();
        m.add(run_like(10, 10)).unwrap();
        m.add(run_like(0, 2)).unwrap();
        let r = m.finish().unwrap();
        assert_eq!((r.requests, r.unanswered(), r.runs), (10, Some(2), 2));
        assert!(r.data_errors());
        assert_eq!(r.stopped_by, StopReason::Merged);
        let mut other = run_like(1, 1);
        other.size = 128;
        let mut m = Merge::default();
        m.add(run_like(1, 1)).unwrap();
        let e = m.add(other).unwrap_err();
        assert!(e.to_string().contains("size_bytes 64 and 128"), "{e}");
    }
}
