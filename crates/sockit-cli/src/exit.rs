//! Errors printed once, at the top, and the one mapping from error kind to exit code.

use std::io::{self, Write};
use std::process::ExitCode;

use sockit::ErrorKind;

/// The exit code for an error kind (DESIGN.md, "Errors and exit codes").
pub fn code_for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Os => 1,
        ErrorKind::InvalidInput => 2,
        ErrorKind::Gai => 3,
        ErrorKind::Host => 4,
        ErrorKind::Timeout => 5,
        ErrorKind::Tls => 6,
        ErrorKind::Protocol => 7,
        ErrorKind::Proxy => 8,
        _ => 1,
    }
}

/// The library error somewhere in an anyhow chain, if any.
pub fn sockit_error(err: &anyhow::Error) -> Option<&sockit::Error> {
    err.chain().find_map(|c| c.downcast_ref::<sockit::Error>())
}

/// True when the error is a broken pipe (stdout closed by the reader): a quiet end.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The exit code for an error: its sockit kind's code, else 1.
pub fn code_for(err: &anyhow::Error) -> u8 {
    sockit_error(err).map_or(1, |e| code_for_kind(e.kind()))
}

/// Prints `sockit: <error with context>` on stderr and returns the exit code.
/// A broken pipe on stdout ends quietly with 0.
pub fn report(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    stderr_line(format_args!("sockit: {}", python_text(err)));
    ExitCode::from(code_for(err))
}

/// The error chain as anyhow's `{:#}` prints it (`context: …: cause`), but a system error
/// at its root in Python's words (`[Errno 28] No space left on device`, not Rust's
/// `No space left on device (os error 28)`).
pub fn python_text(err: &anyhow::Error) -> String {
    let text = err
        .chain()
        .map(|c| {
            match c
                .downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error)
            {
                Some(errno) if c.source().is_none() => {
                    sockit::Error::from_errno("", errno).python_text()
                }
                _ => c.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(": ");
    if is_emfile(err) && !text.contains("ulimit -n") {
        return format!("{text} (the open-file limit, ulimit -n, is too small)");
    }
    text
}

/// Did the error come from running out of descriptors (`EMFILE`)?
fn is_emfile(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
            == Some(libc::EMFILE)
            || c.downcast_ref::<sockit::Error>()
                .is_some_and(|e| e.is_errno(libc::EMFILE))
    })
}

/// Writes one line on stderr, ignoring write errors: `eprintln!` panics when stderr is a
/// closed pipe (EPIPE), and a message nobody can read must not turn the exit code into 101.
/// Every stderr line of the CLI goes through here (one `write(2)` per line).
/// A progress line on stderr is cleared for the line and drawn again after it.
pub fn stderr_line(line: std::fmt::Arguments<'_>) {
    let mut text = line.to_string();
    text.push('\n');
    let write = || {
        let _ = io::stderr().lock().write_all(text.as_bytes());
    };
    let bar = PROGRESS.lock().ok().and_then(|p| p.clone());
    match bar {
        Some(b) => b.suspend(write),
        None => write(),
    }
}

/// The progress line shown on stderr now, if any (see [`stderr_line`]).
static PROGRESS: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Sets (or with `None` clears) the progress line [`stderr_line`] makes room for.
pub fn set_progress(bar: Option<indicatif::ProgressBar>) {
    if let Ok(mut p) = PROGRESS.lock() {
        *p = bar;
    }
}

/// Clears the progress line shown now, if any (a signal ends the command).
pub fn clear_progress() {
    let bar = PROGRESS.lock().ok().and_then(|mut p| p.take());
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}
