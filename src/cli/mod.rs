//! The `weir` command line: argument parsing and dispatch. One file per
//! subcommand; rendering of results lives in [`render`]. Subcommands return
//! an exit code: 0 success, 1 the input is invalid, 2 weir could not run.

pub mod render;
mod schema;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: everything is fine.
pub const EXIT_OK: u8 = 0;
/// Exit code: the definitions (or the request) are invalid.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: weir could not run (bad arguments, unreadable path).
pub const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "A Git-native orchestrator for ML and data workflows"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check definition files: YAML, JSON Schema and semantics (exit 1 on any error).
    Validate(validate::Args),
    /// Print the JSON Schema of definition files.
    Schema(schema::Args),
}

/// Runs the CLI with the process arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema(args) => schema::run(&args),
    };
    ExitCode::from(code)
}
