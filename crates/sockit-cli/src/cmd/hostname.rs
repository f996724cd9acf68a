//! `sockit hostname`.

use std::process::ExitCode;

/// Arguments of `sockit hostname`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `sockit hostname`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sockit hostname is not implemented yet")
}
