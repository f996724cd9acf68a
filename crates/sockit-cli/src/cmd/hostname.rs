//! `sockit hostname`: this machine's name (gethostname), or its fully qualified name with
//! `--fqdn` (Python's getfqdn: one gethostbyaddr lookup). No tokio on this path.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;
use sockit::resolve;

/// Arguments of `sockit hostname`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The fully qualified name (Python's socket.getfqdn(): asks the resolver, which may
    /// send a DNS query).
    #[arg(long = "fqdn")]
    pub fqdn: bool,
    /// One JSON object on stdout.
    #[arg(long = "json")]
    pub json: bool,
}

/// Runs `sockit hostname`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let name = resolve::gethostname()?;
    let mut out = std::io::stdout().lock();
    if args.fqdn {
        let fqdn = resolve::getfqdn(&name);
        if args.json {
            writeln!(out, "{}", json!({"hostname": name, "fqdn": fqdn}))?;
        } else {
            writeln!(out, "{fqdn}")?;
        }
    } else if args.json {
        writeln!(out, "{}", json!({"hostname": name}))?;
    } else {
        writeln!(out, "{name}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
