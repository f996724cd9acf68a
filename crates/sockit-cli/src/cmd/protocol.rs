//! `sockit protocol KEY…`: protocol numbers and names (getprotobyname, getprotobynumber):
//! `tcp` → 6, `6` → tcp. No tokio and no resolver: one read of the protocols file.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use sockit::Error;
use sockit::resolve::{Protocols, Protoent, SYSTEM_PROTOCOLS};

use super::lookup::{self, Answers, DbFlags};

/// Arguments of `sockit protocol`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to look up: a protocol name (tcp, ICMP, ipv6-icmp) or number (6).
    #[arg(value_name = "KEY", required = true)]
    pub keys: Vec<String>,
    /// Read this protocols file instead of /etc/protocols (the embedded table answers when
    /// it cannot be read).
    #[arg(long = "protocols-file", value_name = "FILE")]
    pub protocols_file: Option<PathBuf>,
    /// `-n`, `-v`, `--json`.
    #[command(flatten)]
    pub flags: DbFlags,
}

/// Runs `sockit protocol`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // an error that ends the command (a database file refused) is JSON too with --json
    let json = args.flags.json;
    crate::output::also_json(json, lookup_all(args))
}

fn lookup_all(args: Args) -> anyhow::Result<ExitCode> {
    let path = args
        .protocols_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_PROTOCOLS));
    let db = lookup::or_embedded(
        "protocol",
        &path,
        Protocols::open(&path),
        Protocols::embedded,
    )?;
    lookup::say_source("protocol", &args.flags, &db.source());
    let source = db.source().to_string();
    let mut answers = Answers::new("protocol", args.flags.json);
    for key in &args.keys {
        match lookup(&db, key) {
            Ok(e) => {
                let mut text = format!("{:<21} {}", e.name, e.number);
                for a in &e.aliases {
                    text.push(' ');
                    text.push_str(a);
                }
                answers.ok(
                    text,
                    json!({
                        "key": key,
                        "name": e.name,
                        "number": e.number,
                        "aliases": e.aliases,
                        "source": source,
                    }),
                )?;
            }
            Err(e) => answers.err(key, e)?,
        }
    }
    answers.finish()
}

/// A number (decimal digits) or a name.
fn lookup<'a>(db: &'a Protocols, key: &str) -> sockit::Result<&'a Protoent> {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
        // IP's protocol field is one byte (RFC 791): 256 and up is a range error (exit 2),
        // as `service 65536` is, not "not found"
        let n = key.parse::<u8>().map_err(|_| {
            Error::invalid_input(
                "protocol",
                format!("protocol number must be 0-255, not {key}"),
            )
        })?;
        return db.getprotobynumber(i32::from(n));
    }
    if key.is_empty() {
        return Err(Error::invalid_input("protocol", "empty protocol name"));
    }
    db.getprotobyname(key)
}
