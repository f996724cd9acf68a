//! `sockit protocol`.

use std::process::ExitCode;

/// Arguments of `sockit protocol`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit protocol`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit protocol is not implemented yet")
}
