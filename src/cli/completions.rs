//! `weir completions SHELL`: the shell's completion script for every
//! command and flag, generated from the same clap definitions the CLI
//! parses with (so it cannot fall behind them).

use clap::CommandFactory as _;

use super::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete in: load the script with, e.g., `source <(weir completions bash)`.
    pub shell: clap_complete::Shell,
}

pub fn run(args: &Args) -> exit::Result {
    let mut command = super::Cli::command();
    clap_complete::generate(args.shell, &mut command, "weir", &mut std::io::stdout());
    Ok(exit::ExitStatus::Success)
}
