//! `weir executions [ID]`, `weir logs ID`, `weir cancel ID`: from the
//! store, or with `--server` through a running daemon's API.

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
use crate::http::client::Client;
use crate::spec::ExecutionId;
use crate::store::execution::Status;
use crate::views::{
    self, CancelError, ExecutionQuery, ExecutionView, FOLLOW_EVERY, LogQuery, LogTail, LogsError,
    NodePage,
};

#[derive(Debug, clap::Args)]
#[command(mut_arg("api_token_file", super::origin::token_file_alias))]
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
    /// `manual`, `schedule`, `backfill`, `preview` or `api`.
    #[arg(long)]
    pub trigger: Option<String>,
    /// Only executions older than this one: the next page of a list whose
    /// last line it was.
    #[arg(long, value_name = "ID", conflicts_with = "id")]
    pub before: Option<ExecutionId>,
    /// Most executions listed, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// With an id: at most this many of its nodes (default 1,000; a big
    /// execution is read a page at a time).
    #[arg(long, value_name = "N", requires = "id")]
    pub nodes: Option<u32>,
    /// With an id: its nodes after this one (a node's path, as the last
    /// page's last line says).
    #[arg(long, value_name = "NODE", requires = "id")]
    pub after: Option<String>,
    /// Follow the execution until it ends (its table again each time a
    /// node moves on; with `-o json`, the last state); exit 0 if it
    /// succeeded, 1 if it did not (as `argocd app wait`).
    #[arg(long, requires = "id")]
    pub watch: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How often `--watch` looks again.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

pub fn run(args: &Args) -> exit::Result {
    if let (true, Some(id)) = (args.watch, &args.id) {
        return watch(args, id);
    }
    let query = ExecutionQuery {
        launch_plan: args.launch_plan.clone(),
        workflow: args.workflow.clone(),
        status: args.status.clone(),
        trigger: args.trigger.clone(),
        before: args.before.clone(),
        limit: Some(args.limit),
    };
    let page = NodePage {
        nodes: args.nodes,
        after: args.after.clone(),
    };
    // The flags are checked even with an id: a typo is said, not ignored.
    let checked = query.filter().map_err(ReadError::from);
    let origin = checked.and_then(|_| args.server.origin(&args.store))?;
    let text = match &args.id {
        Some(id) => origin.execution(id, &page).map(|found| {
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
        Error::not_found(format!(
            "no execution `{}`",
            args.id.as_ref().map_or("", ExecutionId::as_str)
        ))
    })?;
    print!("{text}");
    Ok(ExitStatus::Success)
}

/// `--watch`: the execution printed each time its state moves, until it
/// has ended; its outcome is the exit status.
fn watch(args: &Args, id: &ExecutionId) -> exit::Result {
    let origin = args.server.origin(&args.store)?;
    let mut last = None;
    loop {
        let execution = origin
            .execution(id, &NodePage::default())?
            .ok_or_else(|| Error::not_found(format!("no execution `{id}`")))?;
        let ended = execution.status.is_terminal();
        let nodes: Vec<_> = execution
            .nodes
            .iter()
            .map(|n| (n.status, n.attempts))
            .collect();
        let state = (execution.status, nodes);
        if last.as_ref() != Some(&state) {
            match args.output {
                Output::Table => {
                    print!("{}", execution_text(&execution));
                    println!();
                }
                Output::Json if ended => println!("{:#}", views::to_json(&execution)),
                Output::Json => {}
            }
            last = Some(state);
        }
        if ended {
            return Ok(ExitStatus::success_if(
                execution.status == Status::Succeeded,
            ));
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

/// The list: one row an execution, newest first.
fn table(list: &[ExecutionView]) -> String {
    let header = [
        "ID",
        "STATUS",
        "LAUNCH PLAN",
        "WORKFLOW",
        "COMMIT",
        "CREATED (UTC)",
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
                super::render::utc(&e.created_at),
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
    /// Keep printing as the logs grow, until the node (or, without
    /// --node, the execution) ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Prints each node's latest attempt's stdout and stderr
/// ([`crate::views::LogTail`]): read here from the store and the state
/// directory, or streamed by the daemon with `--server`.
pub fn logs(args: &LogsArgs) -> exit::Result {
    let query = LogQuery {
        node: args.node.clone(),
        follow: args.follow,
    };
    if let Some(client) = args.server.client()? {
        let mut out = std::io::stdout().lock();
        client
            .logs(&args.id, &query, &mut out)
            .map_err(ReadError::from)?;
        return Ok(ExitStatus::Success);
    }
    block_on(async {
        let store = args.store.open_existing().await?;
        let state_dir = &args.store.state_dir;
        let (mut tail, mut chunk) = LogTail::open(store.as_ref(), state_dir, &args.id, &query)
            .await
            .map_err(logs_error)?;
        loop {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(chunk.text.as_bytes());
            let _ = out.flush();
            drop(out);
            if chunk.ended {
                return Ok(ExitStatus::Success);
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
            chunk = tail.read(store.as_ref()).await.map_err(logs_error)?;
        }
    })
}

/// Not found (exit 3), as the API's 404; or the store failed (exit 2).
fn logs_error(e: LogsError) -> Error {
    match e {
        LogsError::Store(e) => Error::failed(e),
        e => Error::not_found(e),
    }
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
    #[command(flatten)]
    pub server: ServerArgs,
    /// How to print: `table` for people, or `json` for scripts (one
    /// object once the command is done: whom it asked, and with `--wait`
    /// how the execution ended).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// What `weir cancel -o json` prints: the request's answer and, once
/// known (`--wait`, or finished here), the status the execution ended in.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Cancelled {
    #[serde(flatten)]
    asked: views::CancelView,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended: Option<Status>,
}

impl Cancelled {
    fn print(&self, output: Output) -> exit::Result {
        if output == Output::Json {
            println!("{:#}", views::to_json(self));
        }
        Ok(ExitStatus::Success)
    }
}

/// Cancels an unfinished execution: asks the engine driving the store (a
/// daemon) to, or, when none holds the engine lease, finishes the
/// cancellation here: stops this host's attempts of the execution and
/// records its nodes and itself cancelled. With `--server`, asks the
/// daemon (`POST /api/v1/executions/{id}/cancel`), and with `--wait`
/// polls it until the execution has ended.
pub fn cancel(args: &CancelArgs) -> exit::Result {
    match args.server.client()? {
        Some(client) => cancel_through(&client, args),
        None => block_on(cancel_execution(args)),
    }
}

/// What `weir cancel` says once it has asked `engine`.
fn asked(id: &ExecutionId, engine: &str) -> String {
    format!("cancelling {id}: asked engine {engine}, which drives this store")
}

fn cancel_through(client: &Client, args: &CancelArgs) -> exit::Result {
    let id = &args.id;
    let table = args.output == Output::Table;
    let asked_to = client.cancel(id).map_err(ReadError::from)?;
    if table {
        match &asked_to.engine {
            Some(engine) => println!("{}", asked(id, engine)),
            None => println!(
                "cancelling {id}: no engine drives the store now; the next to start finishes it"
            ),
        }
    }
    let mut cancelled = Cancelled {
        asked: asked_to,
        ended: None,
    };
    if !args.wait {
        return cancelled.print(args.output);
    }
    let ended = block_on(async {
        let mut interrupts = wait::Interrupts::catch().map_err(Error::failed)?;
        let ids = std::slice::from_ref(id);
        let ended = wait::poll_until_ended(client, ids, &mut interrupts).await;
        ended.map_err(|e| Error::from(ReadError::from(e)))
    })?;
    match ended {
        Ok(ended) => {
            for e in ended {
                if table {
                    println!("{} {}", e.id, e.status);
                }
                cancelled.ended = Some(e.status);
            }
            cancelled.print(args.output)
        }
        Err(signal) => Ok(ExitStatus::Interrupted(signal)),
    }
}

async fn cancel_execution(args: &CancelArgs) -> exit::Result {
    let id = &args.id;
    let table = args.output == Output::Table;
    let store = args.store.open_existing().await?;
    let asked_to = views::request_cancel(store.as_ref(), id, chrono::Utc::now())
        .await
        .map_err(|e| match e {
            CancelError::Store(e) => Error::failed(e),
            e @ CancelError::Unknown(_) => Error::not_found(e),
            e @ CancelError::Ended { .. } => Error::invalid(e),
        })?;
    let mut cancelled = Cancelled {
        asked: asked_to,
        ended: None,
    };
    let artifacts = Arc::new(LocalArtifacts::new(args.store.state_dir.join("artifacts")));
    let engine = Engine::new(store.clone(), artifacts, args.store.state_dir.clone())
        .with_task_env(Inherited::from_process(AllowList::default()));
    let lease = StoreLease::new(
        store.clone(),
        engine.owner().engine.clone(),
        wait::LEASE_DURATION,
    );
    let mut told = None;
    loop {
        match lease.clone().try_hold().await.map_err(Error::failed)? {
            Hold::Held(held) => {
                // No engine drives the store: finish the cancellation here.
                let running = wait::running_nodes(&store, id).await;
                let ended = engine.run_until_finished(id).await;
                held.release().await;
                let running = running.map_err(Error::failed)?;
                let ended = ended.map_err(Error::failed)?;
                if table {
                    println!(
                        "{id} {}: no engine was driving it; {running} running attempt(s) stopped here",
                        ended.status
                    );
                }
                cancelled.asked.engine = None;
                cancelled.ended = Some(ended.status);
                return cancelled.print(args.output);
            }
            Hold::Following { holder } => {
                if told.is_none() {
                    if table {
                        println!("{}", asked(id, &holder));
                    }
                    cancelled.asked.engine = Some(holder.clone());
                    told = Some(holder);
                }
                if !args.wait {
                    return cancelled.print(args.output);
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let execution = store.execution(id).await.map_err(Error::failed)?;
                if let Some(execution) = execution.filter(|e| e.status.is_terminal()) {
                    if table {
                        println!("{id} {}", execution.status);
                    }
                    cancelled.ended = Some(execution.status);
                    return cancelled.print(args.output);
                }
            }
        }
    }
}
