//! `sockit service KEY…`: service names and ports (getservbyport/getservbyname), with
//! getent's key syntax: `80`, `80/udp`, `http`, `http/tcp`.
//!
//! No tokio and no resolver here: one read of the services file, then O(1) lookups.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use sockit::Port;
use sockit::resolve::{SYSTEM_SERVICES, Servent, Services, Source};

use super::lookup::{self, Answers, DbFlags};

/// Arguments of `sockit service`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to look up: PORT, PORT/PROTO, NAME or NAME/PROTO (80, 80/udp, http, http/tcp).
    #[arg(value_name = "KEY", required = true)]
    pub keys: Vec<String>,
    /// Keys without a protocol ask for UDP (default: the first entry, whatever its protocol).
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
    /// Read this services file instead of /etc/services (the embedded table answers when it
    /// cannot be read).
    #[arg(long = "services-file", value_name = "FILE")]
    pub services_file: Option<PathBuf>,
    /// `-n`, `-v`, `--json`.
    #[command(flatten)]
    pub flags: DbFlags,
}

/// Runs `sockit service`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // an error that ends the command (a database file refused) is JSON too with --json
    let json = args.flags.json;
    crate::output::also_json(json, lookup_all(args))
}

fn lookup_all(args: Args) -> anyhow::Result<ExitCode> {
    let path = args
        .services_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_SERVICES));
    // One read of the file (or the embedded text); a few keys are answered by scanning it
    // up to the first match, more keys by parsing it once into the O(1) database.
    // A file that cannot be read falls back to the embedded table; one too large to be a
    // services file (`/dev/zero`) is an error.
    let (text, source) = lookup::or_embedded(
        "service",
        &path,
        sockit::resolve::read_database(&path, "services file")
            .map(|text| (text, Source::File(path.clone()))),
        || (Services::embedded_text().to_string(), Source::Embedded),
    )?;
    lookup::say_source("service", &args.flags, &source);
    let db = (args.keys.len() > SCAN_KEYS).then(|| Services::parse(&text, source.clone()));
    let source = source.to_string();
    let default_proto = args.udp.then_some("udp");
    let mut answers = Answers::new("service", args.flags.json);
    for key in &args.keys {
        match lookup(&text, db.as_ref(), key, default_proto) {
            Ok(e) => {
                let text = line(&e);
                answers.ok(
                    text,
                    json!({
                        "key": key,
                        "name": e.name,
                        "port": e.port,
                        "proto": e.proto,
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

/// Up to this many keys are answered by scanning the text; more build the database.
const SCAN_KEYS: usize = 8;

/// One key: a port (number) or a name, with an optional `/proto`.
fn lookup(
    text: &str,
    db: Option<&Services>,
    key: &str,
    default_proto: Option<&str>,
) -> sockit::Result<Servent> {
    let (what, proto) = split_key("service", key)?;
    let proto = proto.or(default_proto);
    match Port::parse(what).map_err(|e| e.with_op("getservbyport"))? {
        Port::Number(n) => match db {
            Some(db) => db.getservbyport(n, proto).cloned(),
            None => Services::scan_port(text, n, proto),
        },
        Port::Service(name) => match db {
            Some(db) => db.getservbyname(&name, proto).cloned(),
            None => Services::scan_name(text, &name, proto),
        },
    }
}

/// getent's line: `name (padded to 21) port/proto aliases…`.
fn line(e: &Servent) -> String {
    let mut s = format!("{:<21} {}/{}", e.name, e.port, e.proto);
    for a in &e.aliases {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Splits getent's `WHAT/PROTO` key (`80/udp`, `http/tcp`); the protocol is optional.
///
/// # Errors
/// InvalidInput for an empty part (`/tcp`, `80/`).
pub(crate) fn split_key<'a>(
    op: &'static str,
    key: &'a str,
) -> sockit::Result<(&'a str, Option<&'a str>)> {
    let (what, proto) = match key.rsplit_once('/') {
        Some((w, p)) => (w, Some(p)),
        None => (key, None),
    };
    if what.is_empty() {
        return Err(sockit::Error::invalid_input(
            op,
            format!("empty key in {key:?}"),
        ));
    }
    if proto == Some("") {
        return Err(sockit::Error::invalid_input(
            op,
            format!("empty protocol in {key:?}"),
        ));
    }
    Ok((what, proto))
}
