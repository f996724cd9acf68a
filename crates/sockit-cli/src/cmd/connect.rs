//! `sockit connect`.

use std::process::ExitCode;

/// Arguments of `sockit connect`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit connect`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit connect is not implemented yet")
}
