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
    #[arg(long = "fqdn", conflicts_with = "numeric")]
    pub fqdn: bool,
    /// Numeric only, no host name lookups: gethostname(2) looks nothing up, so this changes
    /// nothing (it refuses --fqdn, which is a lookup).
    #[arg(short = 'n', long = "numeric")]
    pub numeric: bool,
    /// Print each call made, Python-style, on stderr.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// One JSON object on stdout.
    #[arg(long = "json")]
    pub json: bool,
}

/// Runs `sockit hostname`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.verbose > 0 {
        crate::exit::stderr_line(format_args!("sockit: hostname: gethostname()"));
    }
    let name = resolve::gethostname()?;
    let mut out = std::io::stdout().lock();
    if args.fqdn {
        if args.verbose > 0 {
            crate::exit::stderr_line(format_args!("sockit: hostname: getfqdn({name:?})"));
        }
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
