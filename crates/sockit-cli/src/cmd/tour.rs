//! `sockit tour`.

use std::process::ExitCode;

/// Arguments of `sockit tour`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit tour`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit tour is not implemented yet")
}
