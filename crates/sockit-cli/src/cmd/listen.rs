//! `sockit listen`.

use std::process::ExitCode;

/// Arguments of `sockit listen`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit listen`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit listen is not implemented yet")
}
