//! `sockit service`.

use std::process::ExitCode;

/// Arguments of `sockit service`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit service`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit service is not implemented yet")
}
