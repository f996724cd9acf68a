//! The one reporter of the command: every library event is printed here, as a text line
//! (`-v`) or a JSON object (`--json`), with repeats limited to one line a second.
//!
//! Rules (DESIGN.md, "Output conventions"):
//! - `--json`: every event as one JSON object per line, on stdout for servers (whose
//!   stdout carries no data) and on stderr for connect and listen ([`JsonTo`]).
//! - Text: `sockit: LINE` on stderr for events of [`Severity::Info`] with `-v`,
//!   [`Severity::Debug`] with `-vv`; [`Severity::Notice`] and [`Severity::Error`] always
//!   (resets, cut sessions, `EMFILE` pauses, unreachable targets, warnings), unless
//!   `--json` (without `-v`) already carries them. Where `--json` goes to stderr
//!   (connect, listen), no text line joins it, with or without `-v`.
//! - Repeats: events with the same [`Event::repeat_key`] print at most once a second; the
//!   next one printed says how many were held back (`(+N more like this)`, JSON
//!   `"repeated":N`), and [`Reporter::flush`] prints what is still held at the end.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sockit::serve::{Event, EventSink, Severity};

use crate::args::OutputArgs;
use crate::exit::stderr_line;

/// How often one kind of repeated event prints at most.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(1);

/// Where `--json` objects go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonTo {
    /// Servers without data on stdout (echo-server, forward).
    Stdout,
    /// Commands whose stdout carries data (connect, listen).
    Stderr,
}

#[derive(Debug)]
struct Held {
    last_printed: Instant,
    held: u64,
    last: Option<Event>,
}

/// Prints events as the flags say; share it (`Arc`) between threads.
#[derive(Debug)]
pub struct Reporter {
    verbose: u8,
    json: bool,
    json_to: JsonTo,
    /// The session is the command (connect, listen with one peer): how it ended is said
    /// by the exit status and the error line, so its `closed` event is a `-v` line even
    /// when it reports a reset.
    one_session: bool,
    repeats: Mutex<HashMap<String, Held>>,
    /// Itself, for the thread that prints held events once their second has passed
    /// (started at the first event held back; it ends with the reporter).
    me: std::sync::Weak<Reporter>,
    releaser: std::sync::atomic::AtomicBool,
    /// Events told ([`Reporter::tell`]) before the `listening` line, when that line must
    /// be the first of the JSON stream (stdout): printed right after it. `None` once it
    /// was printed.
    early: Mutex<Option<Vec<Event>>>,
}

impl Reporter {
    /// A reporter for `-v`/`--json`.
    pub fn new(out: &OutputArgs, json_to: JsonTo) -> Arc<Reporter> {
        Arc::new_cyclic(|me| Reporter {
            verbose: out.verbose,
            json: out.json,
            json_to,
            one_session: false,
            repeats: Mutex::new(HashMap::new()),
            me: me.clone(),
            releaser: std::sync::atomic::AtomicBool::new(false),
            early: Mutex::new(Some(Vec::new())),
        })
    }

    /// A reporter for a command that is one session (connect; listen with one peer):
    /// JSON on stderr, and the session's `closed` event a `-v` line (see [`Reporter`]).
    pub fn one_session(out: &OutputArgs) -> Arc<Reporter> {
        Arc::new_cyclic(|me| Reporter {
            verbose: out.verbose,
            json: out.json,
            json_to: JsonTo::Stderr,
            one_session: true,
            repeats: Mutex::new(HashMap::new()),
            me: me.clone(),
            releaser: std::sync::atomic::AtomicBool::new(false),
            early: Mutex::new(Some(Vec::new())),
        })
    }

    /// The socket options a server read back after setting them: one `sockopt` event each
    /// (a `sockit: …` line under `-v`, a JSON object under `--json`): listen, forward, proxy.
    pub fn applied(&self, applied: &[sockit::sockopt::Applied]) {
        for a in applied {
            self.event(&Event::from(a));
        }
    }

    /// A warning a person must see (a server reachable from the network): the `warning`
    /// event, and on stderr also when `--json` sends the events to stdout.
    pub fn warn_on_stderr(&self, message: String) {
        self.tell(&Event::Warning { message });
    }

    /// An event a person must see (a warning, an ephemeral certificate's fingerprint): as
    /// [`Reporter::event`], and on stderr also when `--json` sends the events to stdout
    /// (where it waits for the `listening` line, the first of that stream).
    pub fn tell(&self, ev: &Event) {
        if self.json && self.json_to == JsonTo::Stdout {
            if !self.text_shown(ev) {
                crate::exit::stderr_line(format_args!("sockit: {ev}"));
            }
            if let Ok(mut early) = self.early.lock()
                && let Some(held) = early.as_mut()
            {
                held.push(ev.clone());
                return;
            }
        }
        self.event(ev);
    }

    /// Prints the events told before the `listening` line (once).
    fn release_early(&self) {
        let held = match self.early.lock() {
            Ok(mut early) => early.take().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for ev in held {
            self.event(&ev);
        }
    }

    /// The reporter as the library's event callback.
    pub fn sink(self: &Arc<Self>) -> EventSink {
        let me = Arc::clone(self);
        Arc::new(move |ev| me.event(&ev))
    }

    /// Does `ev` print as a text line? With `-v` at its level; a notice or an error
    /// always, unless `--json` carries it.
    fn text_shown(&self, ev: &Event) -> bool {
        if self.json && self.json_to == JsonTo::Stderr {
            // stderr is the JSON stream: one object per line, never a text line between
            return false;
        }
        if self.one_session && matches!(ev, Event::Closed(_)) {
            return self.verbose >= 1;
        }
        match ev.severity() {
            Severity::Debug => self.verbose >= 2,
            Severity::Info => self.verbose >= 1,
            Severity::Notice | Severity::Error => self.verbose >= 1 || !self.json,
        }
    }

    /// Would `ev` print at all?
    fn shown(&self, ev: &Event) -> bool {
        self.json || self.text_shown(ev)
    }

    /// Is `ev` subject to the repeat limit? Closed events, and a proxy's refused
    /// handshakes, are one per session: with `-v` or `--json` they are the session's
    /// record and all print.
    fn limited(&self, ev: &Event) -> bool {
        ev.repeat_key().is_some()
            && !(matches!(ev, Event::Closed(_) | Event::HandshakeFailed { .. })
                && (self.json || self.verbose > 0))
    }

    /// Prints one event (see the module docs).
    pub fn event(&self, ev: &Event) {
        self.release_due();
        // a live session's traffic only feeds the counters
        if !self.shown(ev) || matches!(ev, Event::Traffic { .. }) {
            return;
        }
        let mut repeated = 0;
        if self.limited(ev)
            && let Some(key) = ev.repeat_key()
            && let Ok(mut map) = self.repeats.lock()
        {
            let now = Instant::now();
            match map.get_mut(&key) {
                Some(h) if now.duration_since(h.last_printed) < REPEAT_WINDOW => {
                    h.held += 1;
                    h.last = Some(ev.clone());
                    drop(map);
                    self.start_releaser();
                    return;
                }
                Some(h) => {
                    repeated = std::mem::take(&mut h.held);
                    h.last_printed = now;
                    h.last = None;
                }
                None => {
                    map.insert(
                        key,
                        Held {
                            last_printed: now,
                            held: 0,
                            last: None,
                        },
                    );
                }
            }
        }
        self.print(ev, repeated);
    }

    /// Starts, once, the thread that prints a held event when its second has passed,
    /// though no other event comes to release it (QA: a quiet server printed it only at
    /// its stop). It holds the reporter only for each look, every 100 ms.
    fn start_releaser(&self) {
        use std::sync::atomic::Ordering;
        if self.releaser.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.me.clone();
        let _ = std::thread::Builder::new()
            .name("sockit-report".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(REPEAT_WINDOW / 10);
                    match me.upgrade() {
                        Some(r) => r.release_due(),
                        None => return,
                    }
                }
            });
    }

    /// Prints the last held event of each kind whose window has passed.
    fn release_due(&self) {
        self.release(false);
    }

    /// Prints every event still held back (call once at the end).
    pub fn flush(&self) {
        self.release(true);
    }

    /// Prints the last held event of each kind (all, or those whose window has passed)
    /// with the count of the others held with it.
    fn release(&self, all: bool) {
        let mut out: Vec<(Instant, Event, u64)> = match self.repeats.lock() {
            Ok(mut map) => {
                let now = Instant::now();
                map.values_mut()
                    .filter(|h| {
                        h.held > 0 && (all || now.duration_since(h.last_printed) >= REPEAT_WINDOW)
                    })
                    .filter_map(|h| {
                        let since = h.last_printed;
                        h.last_printed = now;
                        let n = std::mem::take(&mut h.held);
                        h.last.take().map(|ev| (since, ev, n - 1))
                    })
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        // in the order their kinds were last printed (a map has none)
        out.sort_by_key(|(since, _, _)| *since);
        let out = out.into_iter().map(|(_, ev, n)| (ev, n));
        for (ev, n) in out {
            self.print(&ev, n);
        }
    }

    fn print(&self, ev: &Event, repeated: u64) {
        if self.json {
            let mut v = serde_json::to_value(ev).unwrap_or_default();
            if repeated > 0
                && let serde_json::Value::Object(o) = &mut v
            {
                o.insert("repeated".into(), repeated.into());
            }
            self.json_line(&v);
        }
        if !self.text_shown(ev) {
            return;
        }
        if repeated > 0 {
            stderr_line(format_args!(
                "sockit: {ev} (+{repeated} more like this in the last second)"
            ));
        } else {
            stderr_line(format_args!("sockit: {ev}"));
        }
    }

    /// Writes one JSON object on the JSON stream (flushed; write errors ignored).
    pub fn json_line(&self, v: &serde_json::Value) {
        match self.json_to {
            JsonTo::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{v}");
                let _ = out.flush();
            }
            JsonTo::Stderr => stderr_line(format_args!("{v}")),
        }
    }

    /// Prints the `listening` line: `listening HOST PORT[ SUFFIX]` (`listening unix PATH`)
    /// on stdout for servers, or the `{"event":"listening",…}` object under `--json`;
    /// flushed at once.
    ///
    /// # Errors
    /// The write error of stdout (a closed stdout ends the server).
    pub fn listening(&self, ev: &Event, suffix: Option<&str>) -> std::io::Result<()> {
        let r = self.listening_line(ev, suffix);
        self.release_early();
        r
    }

    fn listening_line(&self, ev: &Event, suffix: Option<&str>) -> std::io::Result<()> {
        if self.json {
            let v = serde_json::to_value(ev).unwrap_or_default();
            if self.json_to == JsonTo::Stdout {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{v}")?;
                return out.flush();
            }
            stderr_line(format_args!("{v}"));
            return Ok(());
        }
        let line = match suffix {
            Some(s) => format!("{ev} {s}"),
            None => ev.to_string(),
        };
        if self.json_to == JsonTo::Stdout {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")?;
            return out.flush();
        }
        stderr_line(format_args!("{line}"));
        Ok(())
    }

    /// Runs a server's `serve` with a reporter for `out`: an error that ends it is
    /// reported through [`Reporter::fail`] (its exit code returned).
    pub fn run_server(
        out: &OutputArgs,
        json_to: JsonTo,
        serve: impl FnOnce(&Arc<Reporter>) -> anyhow::Result<std::process::ExitCode>,
    ) -> anyhow::Result<std::process::ExitCode> {
        let reporter = Reporter::new(out, json_to);
        match serve(&reporter) {
            Ok(code) => Ok(code),
            Err(e) => Ok(reporter.fail(&e)),
        }
    }

    /// Reports the error that ends the command and returns its exit code: the
    /// `{"event":"error",…}` object under `--json` (servers: on stdout, and the
    /// `sockit: <error>` line on stderr too; connect and listen: on stderr, alone), else
    /// `sockit: <error>`. A broken pipe on stdout ends quietly with 0.
    pub fn fail(&self, err: &anyhow::Error) -> std::process::ExitCode {
        self.release_early();
        if self.json && !crate::exit::is_broken_pipe(err) {
            self.json_line(&crate::output::error_event(err));
            if self.json_to == JsonTo::Stderr {
                return std::process::ExitCode::from(crate::exit::code_for(err));
            }
        }
        crate::exit::report(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockit::Error;
    use std::time::Duration;

    #[test]
    fn json_on_stderr_is_never_mixed_with_text_lines() {
        // Regression: `connect --json -v` wrote each event twice on stderr, as JSON and
        // as a `sockit: …` line, so the JSON stream did not parse.
        let out = OutputArgs {
            verbose: 2,
            json: true,
        };
        let ev = Event::ConnectFailed {
            id: 1,
            target: "tcp:127.0.0.1:1".into(),
            error: Error::from_errno("connect", libc::ECONNREFUSED),
        };
        assert!(!Reporter::one_session(&out).text_shown(&ev));
        assert!(!Reporter::new(&out, JsonTo::Stderr).text_shown(&ev));
        assert!(Reporter::new(&out, JsonTo::Stdout).text_shown(&ev));
    }

    #[test]
    fn a_held_event_is_printed_when_its_second_passed_without_another() {
        // Regression (QA): a held event waited for the next event (or the stop).
        let r = Reporter::new(&OutputArgs::default(), JsonTo::Stdout);
        let ev = Event::ConnectFailed {
            id: 1,
            target: "tcp:127.0.0.1:1".into(),
            error: Error::from_errno("connect", libc::ECONNREFUSED),
        };
        r.event(&ev);
        r.event(&ev);
        let held = |r: &Reporter| {
            r.repeats
                .lock()
                .unwrap()
                .values()
                .map(|h| h.held)
                .sum::<u64>()
        };
        assert_eq!(held(&r), 1);
        let start = std::time::Instant::now();
        while held(&r) > 0 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(held(&r), 0, "still held after {:?}", start.elapsed());
    }

    #[test]
    fn repeats_are_held_and_counted() {
        let r = Reporter::new(&OutputArgs::default(), JsonTo::Stdout);
        let ev = Event::ConnectFailed {
            id: 1,
            target: "tcp:127.0.0.1:1".into(),
            error: Error::from_errno("connect", libc::ECONNREFUSED),
        };
        r.event(&ev);
        for _ in 0..5 {
            r.event(&ev);
        }
        let held = r
            .repeats
            .lock()
            .unwrap()
            .values()
            .map(|h| h.held)
            .sum::<u64>();
        assert_eq!(held, 5);
        r.flush();
        let held = r
            .repeats
            .lock()
            .unwrap()
            .values()
            .map(|h| h.held)
            .sum::<u64>();
        assert_eq!(held, 0);
    }
}
