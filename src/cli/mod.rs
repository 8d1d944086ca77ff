//! The `weir` command line: argument parsing and dispatch. One file per
//! subcommand; rendering of results lives in [`render`]. A subcommand
//! returns how it ended ([`exit::Result`]: an exit status, or an error)
//! and [`main`] turns that into the exit code, rendering an error once
//! ([`exit`]): 0 success, 1 invalid definitions or a failed execution, 2
//! weir could not run as asked (a bad argument among others), 3 not found.

mod again;
mod approve;
mod artifacts;
mod backfill;
mod completions;
mod diff;
mod duration_arg;
mod exec_task;
mod executions;
pub mod exit;
mod launchplans;
mod lineage;
mod origin;
mod plan;
mod preview;
pub mod render;
mod rollback;
mod run;
mod schema;
mod serve;
mod source_args;
mod status;
mod store_args;
mod sync;
mod validate;
mod versions;
mod wait;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// How a command prints: `table` for people, `json` for scripts. Every
/// command that prints takes `-o table|json` (`text` and `human`, which
/// some commands called it, still read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[value(alias = "text", alias = "human")]
    Table,
    Json,
}

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
    /// Reconcile a Git branch into the registry once (exit 1 if its head is invalid).
    Sync(sync::Args),
    /// List registered versions.
    Versions(versions::Args),
    /// Show each active launch plan: its schedule in words, next instants, last run, paused or not.
    #[command(name = "launchplans", alias = "launch-plans")]
    LaunchPlans(launchplans::Args),
    /// Pause a launch plan's schedule without a commit (recorded in the audit log).
    Pause(launchplans::PauseArgs),
    /// Resume a paused launch plan's schedule (the instants it missed are skipped unless --catch-up).
    Resume(launchplans::ResumeArgs),
    /// Show each source's last reconciled and attempted commit.
    Status(status::Args),
    /// Show the audit log, newest first.
    Audit(status::AuditArgs),
    /// Show what merging a branch would change (versions and schedules); no store needed.
    Plan(plan::Args),
    /// Commit the restoration of an entity's previous version (Git stays the source of truth).
    Rollback(rollback::Args),
    /// Start an execution of a launch plan or workflow.
    Run(run::Args),
    /// Run a launch plan's schedule over a past range: one execution per instant, none twice.
    Backfill(backfill::Args),
    /// List executions, or show one with its nodes.
    Executions(executions::Args),
    /// Print the logs of an execution's nodes.
    Logs(executions::LogsArgs),
    /// Cancel an unfinished execution.
    Cancel(executions::CancelArgs),
    /// Approve (or --reject) an approval gate of an execution that waits for a decision.
    Approve(approve::Args),
    /// Run an ended execution again: the same versions and inputs, every node.
    Relaunch(again::Args),
    /// Run a failed execution again from where it stopped: the nodes that
    /// succeeded are served from it (Flyte's recover).
    Recover(again::Args),
    /// What changed between two executions of a workflow (commits, versions, inputs, outputs).
    Diff(diff::Args),
    /// Where an artifact came from and went, back to the commits.
    Lineage(lineage::Args),
    /// Get an artifact, or an execution's output, out of the artifact store.
    Artifacts(artifacts::Args),
    /// The daemon: keep executions and schedules converged to Git.
    Serve(serve::Args),
    /// Run one node attempt inside a Kubernetes task pod (its entrypoint).
    ExecTask(exec_task::Args),
    /// Print the completion script of a shell (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
}

/// Logs go to stderr; `WEIR_LOG` sets the filter (default `warn`; for
/// `weir serve`, a daemon, weir's own at `info`: what it listens on, each
/// source's reconciled commit, its schedules). Results go to stdout.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs the CLI with the process arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.only_prints() {
        end_quietly_on_a_closed_pipe();
    }
    init_logging(match cli.command {
        Command::Serve(_) => "warn,weir=info",
        _ => "warn",
    });
    ExitCode::from(exit::finish(run(cli.command)))
}

impl Command {
    /// Whether the command only reads (a store, a folder, a daemon's API)
    /// and prints: no Git remote, no task, no daemon. Its sockets are
    /// Rust's, which never raise SIGPIPE; libgit2's, which do, are not.
    fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Validate(_)
                | Command::Schema(_)
                | Command::Versions(_)
                | Command::LaunchPlans(_)
                | Command::Status(_)
                | Command::Audit(_)
                | Command::Executions(_)
                | Command::Logs(_)
                | Command::Diff(_)
                | Command::Lineage(_)
                | Command::Artifacts(_)
                | Command::Completions(_)
        )
    }
}

/// A command that only prints, whose reader has gone (`weir versions |
/// head -1`), is ended by SIGPIPE as Unix tools are, quietly, instead of
/// panicking on the failed write (Rust ignores SIGPIPE by default). Not
/// for commands that fetch from Git remotes (libgit2 writes to sockets
/// without guarding against SIGPIPE: a closed connection must stay an
/// error) or run tasks and daemons.
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing, before any other thread exists; it only
    // restores the default disposition of one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs one subcommand.
fn run(command: Command) -> exit::Result {
    match command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Sync(args) => sync::run(&args),
        Command::Versions(args) => versions::run(&args),
        Command::LaunchPlans(args) => launchplans::run(&args),
        Command::Pause(args) => launchplans::pause(&args),
        Command::Resume(args) => launchplans::resume(&args),
        Command::Status(args) => status::run(&args),
        Command::Audit(args) => status::run_audit(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Rollback(args) => rollback::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Backfill(args) => backfill::run(&args),
        Command::Executions(args) => executions::run(&args),
        Command::Logs(args) => executions::logs(&args),
        Command::Cancel(args) => executions::cancel(&args),
        Command::Approve(args) => approve::run(&args),
        Command::Relaunch(args) => again::run(&args, crate::engine::relaunch::Again::Relaunch),
        Command::Recover(args) => again::run(&args, crate::engine::relaunch::Again::Recover),
        Command::Diff(args) => diff::run(&args),
        Command::Lineage(args) => lineage::run(&args),
        Command::Artifacts(args) => artifacts::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::ExecTask(args) => exec_task::run(&args),
        Command::Completions(args) => completions::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    /// Every argument of every command says what it is for in `--help`.
    #[test]
    fn every_flag_and_argument_has_help() {
        fn missing(command: &clap::Command, path: &str, out: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    out.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                missing(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut out = Vec::new();
        missing(&Cli::command(), "weir", &mut out);
        assert!(out.is_empty(), "without help: {out:#?}");
    }

    /// `weir --help` and every subcommand's help, as people read them: a
    /// change to any shows in review as a changed snapshot.
    #[test]
    fn every_command_s_help_is_as_reviewed() {
        fn walk(command: &mut clap::Command, path: &str) {
            let help = command.render_long_help().to_string();
            insta::assert_snapshot!(format!("help_{}", path.replace(' ', "_")), help);
            let names: Vec<String> = command
                .get_subcommands()
                .map(|s| s.get_name().to_owned())
                .filter(|n| n != "help")
                .collect();
            for name in names {
                let sub = command
                    .find_subcommand_mut(&name)
                    .expect("a listed subcommand");
                walk(sub, &format!("{path} {name}"));
            }
        }
        let mut cli = Cli::command();
        cli.build();
        walk(&mut cli, "weir");
    }
}
