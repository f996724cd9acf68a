//! `sockit resolve`.

use std::process::ExitCode;

/// Arguments of `sockit resolve`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit resolve`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit resolve is not implemented yet")
}
