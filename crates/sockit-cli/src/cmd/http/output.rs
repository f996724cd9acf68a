//! Where a transfer's body and heads go: stdout, a file (`-o`, `-O`, `-D`), or nowhere.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sockit::Error;

use super::plan::Plan;

/// Where a body or the heads go: stdout, a file created when the first byte comes (and
/// again for each new attempt or run, as curl truncates it), or nowhere.
pub enum Sink {
    /// stdout.
    Stdout,
    /// A file, opened at the first write; with what it holds (`the body (-o)`).
    File(PathBuf, Option<BufWriter<File>>, &'static str),
    /// Nothing (a `--json` or `--repeat` body without `-o`).
    Discard,
}

/// A failed open or write of an output file: the operation and the file as Python words
/// it (`write: [Errno 28] No space left on device: '/dev/full'`), in the context of what
/// the file holds.
fn file_error(op: &'static str, path: &Path, role: &str, e: io::Error) -> anyhow::Error {
    let err = Error::from_io(op, e);
    let err = Error::new(
        err.kind(),
        op,
        err.code(),
        format!("{}: '{}'", err.message(), path.display()),
    );
    anyhow::Error::new(err).context(format!("cannot write {role}"))
}

impl Sink {
    pub fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()?;
            }
            Sink::File(path, file, role) => {
                if file.is_none() {
                    let f = File::create(&*path).map_err(|e| file_error("open", path, role, e))?;
                    *file = Some(BufWriter::new(f));
                }
                if let Some(f) = file.as_mut() {
                    f.write_all(bytes)
                        .map_err(|e| file_error("write", path, role, e))?;
                }
            }
            Sink::Discard => {}
        }
        Ok(())
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        if let Sink::File(path, Some(f), role) = self {
            f.flush().map_err(|e| file_error("write", path, role, e))?;
        }
        Ok(())
    }

    /// Closes the file so that the next write creates it anew.
    pub fn reset(&mut self) {
        if let Sink::File(_, file, _) = self {
            *file = None;
        }
    }
}

/// The body's and the heads' destinations.
pub struct Outputs {
    /// The body (and the head with `-i`).
    pub body: Sink,
    /// `-D`: every head.
    pub dump: Option<Sink>,
}

impl Outputs {
    /// The destinations the options ask for; `quiet_body` sends a body without `-o`
    /// nowhere (`--json`, `--repeat`).
    pub fn new(plan: &Plan, quiet_body: bool) -> Outputs {
        let body = match &plan.output {
            Some(p) => Sink::File(p.clone(), None, "the body (-o)"),
            None if quiet_body => Sink::Discard,
            None => Sink::Stdout,
        };
        let dump = plan.dump_header.as_ref().map(|p| {
            if p.as_os_str() == "-" {
                Sink::Stdout
            } else {
                Sink::File(p.clone(), None, "the heads (-D)")
            }
        });
        Outputs { body, dump }
    }

    /// A new attempt or run: files are written anew.
    pub fn reset(&mut self) {
        self.body.reset();
        if let Some(d) = self.dump.as_mut() {
            d.reset();
        }
    }

    /// Flushes the files.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.body.flush()?;
        if let Some(d) = self.dump.as_mut() {
            d.flush()?;
        }
        Ok(())
    }
}
