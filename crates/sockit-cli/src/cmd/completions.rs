//! `sockit completions SHELL`: the shell's completion script on stdout (clap_complete),
//! generated from the same clap definitions as the parser, so it never lags behind.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// Arguments of `sockit completions`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Where each goes (see the README's Install section):\n  \
bash        sockit completions bash > ~/.local/share/bash-completion/completions/sockit\n  \
zsh         sockit completions zsh > ~/.zfunc/_sockit   (with fpath+=~/.zfunc before compinit)\n  \
fish        sockit completions fish > ~/.config/fish/completions/sockit.fish\n  \
elvish      sockit completions elvish >> ~/.config/elvish/rc.elv\n  \
powershell  sockit completions powershell >> $PROFILE"
)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// Writes the completion script.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::cli::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "sockit", &mut out);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
