//! `sockit http`.

use std::process::ExitCode;

/// Arguments of `sockit http`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit http`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit http is not implemented yet")
}
