//! `sockit scan`.

use std::process::ExitCode;

/// Arguments of `sockit scan`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit scan`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit scan is not implemented yet")
}
