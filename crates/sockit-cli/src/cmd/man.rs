//! `sockit man [SUBCOMMAND]`: the manual page in roff on stdout (clap_mangen), made from
//! the clap definitions: every option with its long help, and the long explanations
//! (`after_long_help`) that `-h` leaves out.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

/// Arguments of `sockit man`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Read one now: sockit man connect | man -l -\n\
Install them all (see the README's Install section):\n  \
for c in '' $(sockit man --list); do sockit man $c > sockit${c:+-$c}.1; done")]
pub struct Args {
    /// The subcommand whose page to print (`connect`, `echo-server` …); none: sockit(1).
    #[arg(value_name = "SUBCOMMAND", conflicts_with = "list")]
    pub subcommand: Option<String>,
    /// List the subcommands that have a page, one per line.
    #[arg(long = "list")]
    pub list: bool,
}

/// Writes the page (or the list).
///
/// # Errors
/// [`sockit::ErrorKind::InvalidInput`] for a name that is not a subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::cli::Cli::command();
    // Built, subcommands get their display names (`sockit-connect`) for the pages.
    cmd.build();
    let mut out = Vec::new();
    if args.list {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            writeln!(out, "{}", sub.get_name())?;
        }
    } else {
        let page = match &args.subcommand {
            None => cmd,
            Some(name) => cmd
                .find_subcommand(name)
                .filter(|s| s.get_name() != "help")
                .cloned()
                .ok_or_else(|| {
                    sockit::Error::invalid_input(
                        "man",
                        format!("no subcommand {name:?} (sockit man --list names them)"),
                    )
                })?,
        };
        clap_mangen::Man::new(page).render(&mut out)?;
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
