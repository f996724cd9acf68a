//! `sockit`: the socket toolkit command. A thin binary over the `sockit` library.

mod args;
mod cli;
mod cmd;
mod exit;
mod lifecycle;
mod ops;
mod output;
mod plot;
mod report;
mod stdio;
mod transfer;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Socket activation's descriptors (3, 4 …) are adopted before anything of this
    // process opens one; a wrong LISTEN_* is reported when a server binds.
    let _ = sockit::serve::activation::active();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(mut e) => {
            cmd::http::tidy_parse_error(&mut e);
            // help and version go to stdout: a full or closed one is an error (exit 1),
            // as GNU tools say "write error"; a usage message to stderr is best effort
            if let Err(io) = e.print()
                && e.exit_code() == 0
            {
                return exit::report(&anyhow::Error::from(io).context("write"));
            }
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    sockit::resolve::set_lookup_timeout(Some(cli.dns_timeout).filter(|d| !d.is_zero()));
    match cli.command.run() {
        // a failed -x/-o write was reported when it happened; the status says so too
        Ok(code) if code == ExitCode::SUCCESS && args::log_failed() => ExitCode::FAILURE,
        Ok(code) => code,
        Err(err) => exit::report(&err),
    }
}
