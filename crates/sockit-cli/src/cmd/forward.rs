//! `sockit forward`.

use std::process::ExitCode;

/// Arguments of `sockit forward`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit forward`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit forward is not implemented yet")
}
