//! `sockit bench`.

use std::process::ExitCode;

/// Arguments of `sockit bench`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit bench`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit bench is not implemented yet")
}
