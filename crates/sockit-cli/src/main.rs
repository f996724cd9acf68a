//! `sockit`: the socket toolkit command. A thin binary over the `sockit` library.

#[allow(dead_code)] // used as the subcommands land
mod args;
mod cli;
mod cmd;
mod exec;
mod exit;
#[allow(dead_code)] // used as the subcommands land
mod output;
mod stdio;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    match cli.command.run() {
        // a failed -x/-o write was reported when it happened; the status says so too
        Ok(code) if code == ExitCode::SUCCESS && args::log_failed() => ExitCode::FAILURE,
        Ok(code) => code,
        Err(err) => exit::report(&err),
    }
}
