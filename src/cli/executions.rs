//! `weir executions [ID]`, `weir logs ID`, `weir cancel ID`.

use std::io::Write as _;
use std::sync::Arc;

use super::Output;
use super::exit::{self, Error, ExitStatus};
use super::origin::{ReadError, ServerArgs};
use super::run::execution_text;
use super::store_args::{StoreArgs, block_on};
use super::wait;
use crate::artifact::LocalArtifacts;
use crate::daemon::lease::{Hold, StoreLease};
use crate::engine::Engine;
use crate::executor::environment::{AllowList, Inherited};
use crate::executor::local::attempt_dir;
use crate::spec::ExecutionId;
use crate::views::{self, ExecutionQuery, ExecutionView};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One execution, with its nodes.
    pub id: Option<ExecutionId>,
    /// Only executions of this launch plan.
    #[arg(long)]
    pub launch_plan: Option<String>,
    /// Only executions of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` or `timedOut`.
    #[arg(long)]
    pub status: Option<String>,
    /// Most executions listed, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &Args) -> exit::Result {
    let query = ExecutionQuery {
        launch_plan: args.launch_plan.clone(),
        workflow: args.workflow.clone(),
        status: args.status.clone(),
        limit: Some(args.limit),
    };
    // The flags are checked even with an id: a typo is said, not ignored.
    let checked = query.filter().map_err(ReadError::from);
    let origin = checked.and_then(|_| args.server.origin(&args.store))?;
    let text = match &args.id {
        Some(id) => origin.execution(id).map(|found| {
            found.map(|execution| match args.output {
                Output::Json => format!("{:#}\n", views::to_json(&execution)),
                Output::Table => execution_text(&execution),
            })
        }),
        None => origin.executions(&query).map(|list| {
            Some(match args.output {
                Output::Json => format!("{:#}\n", views::to_json(&list)),
                Output::Table => table(&list),
            })
        }),
    };
    let text = text?.ok_or_else(|| {
        Error::invalid(format!(
            "no execution `{}`",
            args.id.as_ref().map_or("", ExecutionId::as_str)
        ))
    })?;
    print!("{text}");
    Ok(ExitStatus::Success)
}

/// The list: one row an execution, newest first.
fn table(list: &[ExecutionView]) -> String {
    let header = [
        "ID",
        "STATUS",
        "LAUNCH PLAN",
        "WORKFLOW",
        "COMMIT",
        "CREATED",
    ]
    .map(str::to_owned);
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                e.status.to_string(),
                e.launch_plan.clone().unwrap_or_default(),
                e.workflow.clone(),
                e.commit.short().to_owned(),
                e.created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ]
        })
        .collect();
    super::render::table(&header, &rows)
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The execution whose logs to print.
    pub id: ExecutionId,
    /// Only this node (its path, e.g. `train` or `fit/train`).
    #[arg(long)]
    pub node: Option<String>,
    /// Keep printing as the logs grow, until the execution ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Prints each node's latest attempt's stdout and stderr.
pub fn logs(args: &LogsArgs) -> exit::Result {
    block_on(async {
        let store = args.store.open().await.map_err(Error::failed)?;
        let mut printed: std::collections::HashMap<std::path::PathBuf, u64> = Default::default();
        loop {
            let Some(execution) = store.execution(&args.id).await.map_err(Error::failed)? else {
                return Err(Error::invalid(format!("no execution `{}`", args.id)));
            };
            let nodes = store.nodes(&args.id).await.map_err(Error::failed)?;
            if let Some(node) = &args.node {
                if !nodes.iter().any(|n| &n.node == node) {
                    return Err(Error::invalid(format!(
                        "execution `{}` has no node `{node}`",
                        args.id
                    )));
                }
            }
            let mut out = std::io::stdout().lock();
            for n in nodes
                .iter()
                .filter(|n| args.node.as_ref().is_none_or(|w| w == &n.node))
            {
                if n.attempts == 0 {
                    continue;
                }
                let dir = attempt_dir(&args.store.state_dir, &args.id, &n.node, n.attempts);
                for stream in ["stdout.log", "stderr.log"] {
                    let path = dir.join(stream);
                    let Ok(bytes) = std::fs::read(&path) else {
                        continue;
                    };
                    let seen = printed.entry(path).or_insert(0);
                    let new = &bytes[(*seen as usize).min(bytes.len())..];
                    if new.is_empty() {
                        continue;
                    }
                    for line in String::from_utf8_lossy(new).lines() {
                        let _ = writeln!(out, "[{} {}] {line}", n.node, &stream[..6]);
                    }
                    *seen = bytes.len() as u64;
                }
            }
            drop(out);
            if !args.follow || execution.status.is_terminal() {
                return Ok(ExitStatus::Success);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    })
}

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The execution to cancel.
    pub id: ExecutionId,
    /// Wait until the engine driving the execution has ended it.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Cancels an unfinished execution: asks the engine driving the store (a
/// daemon) to, or, when none holds the engine lease, finishes the
/// cancellation here: stops this host's attempts of the execution and
/// records its nodes and itself cancelled.
pub fn cancel(args: &CancelArgs) -> exit::Result {
    block_on(cancel_execution(args))
}

async fn cancel_execution(args: &CancelArgs) -> exit::Result {
    let id = &args.id;
    let store = args.store.open().await.map_err(Error::failed)?;
    if !store.request_cancel(id).await.map_err(Error::failed)? {
        return Err(Error::invalid(format!("no unfinished execution `{id}`")));
    }
    let artifacts = Arc::new(LocalArtifacts::new(args.store.state_dir.join("artifacts")));
    let engine = Engine::new(store.clone(), artifacts, args.store.state_dir.clone())
        .with_task_env(Inherited::from_process(AllowList::default()));
    let lease = StoreLease::new(
        store.clone(),
        engine.owner().engine.clone(),
        wait::LEASE_DURATION,
    );
    let mut asked = None;
    loop {
        match lease.clone().try_hold().await.map_err(Error::failed)? {
            Hold::Held(held) => {
                // No engine drives the store: finish the cancellation here.
                let running = wait::running_nodes(&store, id).await;
                let ended = engine.run_until_finished(id).await;
                held.release().await;
                let running = running.map_err(Error::failed)?;
                let ended = ended.map_err(Error::failed)?;
                println!(
                    "{id} {}: no engine was driving it; {running} running attempt(s) stopped here",
                    ended.status
                );
                return Ok(ExitStatus::Success);
            }
            Hold::Following { holder } => {
                if asked.is_none() {
                    println!("cancelling {id}: asked engine {holder}, which drives this store");
                    asked = Some(holder);
                }
                if !args.wait {
                    return Ok(ExitStatus::Success);
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let execution = store.execution(id).await.map_err(Error::failed)?;
                if let Some(execution) = execution.filter(|e| e.status.is_terminal()) {
                    println!("{id} {}", execution.status);
                    return Ok(ExitStatus::Success);
                }
            }
        }
    }
}
