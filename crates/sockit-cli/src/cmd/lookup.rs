//! What the database lookups (`service`, `protocol`, `resolve`) share: the `-n`/`-v`/`--json`
//! flags of `service` and `protocol`, their fallback to the embedded table, and the
//! answers, one per key.

use std::io::{BufWriter, Stdout, Write};
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

/// `-n`, `-v`, `--json` of `service` and `protocol` (one meaning, one help text).
#[derive(Debug, clap::Args)]
pub struct DbFlags {
    /// Accepted for the flag's one meaning across subcommands (numeric only, no host name
    /// lookups): this command never looks a host name up, so it changes nothing.
    #[arg(short = 'n', long = "numeric")]
    pub numeric: bool,
    /// Say on stderr which source answered.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// One JSON object per key on stdout.
    #[arg(long = "json")]
    pub json: bool,
}

/// With `-v`: `sockit CMD: source: SOURCE` on stderr.
pub fn say_source(cmd: &str, flags: &DbFlags, source: &dyn std::fmt::Display) {
    if flags.verbose > 0 {
        crate::exit::stderr_line(format_args!("sockit: {cmd}: source: {source}"));
    }
}

/// The database read from `path` (`opened`), or, when it cannot be read, the embedded
/// table (`embedded`) after one line on stderr saying so; a file too large to be a database
/// (`/dev/zero`: InvalidInput) is an error, not a fallback.
pub fn or_embedded<T>(
    cmd: &str,
    path: &Path,
    opened: sockit::Result<T>,
    embedded: impl FnOnce() -> T,
) -> sockit::Result<T> {
    match opened {
        Ok(db) => Ok(db),
        Err(e) if e.kind() == sockit::ErrorKind::InvalidInput => Err(e),
        Err(e) => {
            crate::exit::stderr_line(format_args!(
                "sockit: {cmd}: {}: {}; answering from the embedded table (source: embedded)",
                path.display(),
                e.python_text()
            ));
            Ok(embedded())
        }
    }
}

/// The answers of a several-key lookup command: one stdout line (or JSON object) per key,
/// errors on stderr (or as JSON objects), and the exit code of the first failure.
pub(crate) struct Answers {
    cmd: &'static str,
    json: bool,
    out: BufWriter<Stdout>,
    first_failure: Option<sockit::ErrorKind>,
}

impl Answers {
    /// Answers of `sockit CMD`, as text or JSON lines.
    pub(crate) fn new(cmd: &'static str, json: bool) -> Answers {
        Answers {
            cmd,
            json,
            out: BufWriter::new(std::io::stdout()),
            first_failure: None,
        }
    }

    /// One answer: `text` (one or more lines) or its JSON object.
    pub(crate) fn ok(&mut self, text: String, object: serde_json::Value) -> std::io::Result<()> {
        if self.json {
            writeln!(self.out, "{object}")
        } else {
            writeln!(self.out, "{text}")
        }
    }

    /// One failed key: `sockit CMD KEY: error` on stderr, or `{"key":…,"error":{…}}`.
    pub(crate) fn err(&mut self, key: &str, e: sockit::Error) -> std::io::Result<()> {
        self.first_failure.get_or_insert(e.kind());
        if self.json {
            let err = crate::output::json_error(&anyhow::Error::from(e));
            writeln!(self.out, "{}", json!({"key": key, "error": err}))
        } else {
            // Keep stdout and stderr in order for a reader of both.
            self.out.flush()?;
            if key.is_empty() || key.contains(char::is_whitespace) {
                crate::exit::stderr_line(format_args!("sockit: {} {key:?}: {e}", self.cmd));
            } else {
                crate::exit::stderr_line(format_args!("sockit: {} {key}: {e}", self.cmd));
            }
            Ok(())
        }
    }

    /// Flushes stdout; 0 when every key was answered, else the first failure's exit code.
    pub(crate) fn finish(mut self) -> anyhow::Result<ExitCode> {
        self.out.flush()?;
        Ok(match self.first_failure {
            None => ExitCode::SUCCESS,
            Some(kind) => ExitCode::from(crate::exit::code_for_kind(kind)),
        })
    }
}
