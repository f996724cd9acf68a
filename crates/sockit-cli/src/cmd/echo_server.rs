//! `sockit echo-server`.

use std::process::ExitCode;

/// Arguments of `sockit echo-server`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit echo-server`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit echo-server is not implemented yet")
}
