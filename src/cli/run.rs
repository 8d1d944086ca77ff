//! `weir run`: start an execution of the active version of a launch plan or
//! workflow; with `--wait`, drive it to the end in this process (the local
//! executor), or hand it to the engine that drives the store (a daemon)
//! and wait, and print the finished execution (`wait.rs`: an interrupt
//! cancels what this process drives, and leaves a daemon's run to it).
//! With `--ref REV`, run the
//! versions at that commit instead, without activating them (a preview,
//! see `preview.rs`). With `--server`, the daemon starts it (`POST
//! /api/v1/runs`), and `--wait` asks the daemon until it has ended.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::Output;
use super::duration_arg::DurationArg;
use super::exit::{self, Error, ExitStatus, notice};
use super::origin::{ReadError, ServerArgs};
use super::store_args::{StoreArgs, block_on};
use super::wait::{self, Waited};
use crate::artifact::LocalArtifacts;
use crate::engine::Engine;
use crate::engine::create::{self, Request};
use crate::executor::environment::Inherited;
use crate::http::client::Client;
use crate::lineage::openlineage::Emitter;
use crate::spec::{ExecutionId, Trigger};
use crate::store::execution::Status;
use crate::views::{self, ExecutionView, RunBody};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A launch plan's or a workflow's name (launch plans first).
    pub name: String,
    /// The project, when the name is active in several.
    #[arg(long)]
    pub project: Option<String>,
    /// An input, `name=value` (repeatable); parsed by the input's type.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Run until the execution ends, executing its nodes here, or, when
    /// another engine (a daemon) drives the store, waiting for it to.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: how long the engine lease this command takes lasts
    /// unrenewed (a daemon started meanwhile follows until it is released).
    #[arg(long, default_value_t = DurationArg(wait::LEASE_DURATION), conflicts_with = "server")]
    pub lease_duration: DurationArg,
    /// Run every node, even those whose result is cached.
    #[arg(long)]
    pub no_cache: bool,
    /// With --wait: append an OpenLineage RunEvent per execution and node
    /// transition to this file, one JSON object a line.
    #[arg(
        long,
        env = "WEIR_OPENLINEAGE_FILE",
        hide_env_values = true,
        value_name = "PATH",
        conflicts_with = "server"
    )]
    pub openlineage_file: Option<PathBuf>,
    /// With --wait: POST OpenLineage RunEvents to `<URL>/api/v1/lineage`
    /// (Marquez).
    #[arg(
        long,
        env = "WEIR_OPENLINEAGE_URL",
        value_name = "URL",
        hide_env_values = true,
        conflicts_with = "server"
    )]
    pub openlineage_url: Option<String>,
    /// With --openlineage-url: a file holding the API key sent with each
    /// POST as `Authorization: Bearer`.
    #[arg(long, value_name = "FILE", requires = "openlineage_url")]
    pub openlineage_api_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub preview: super::preview::PreviewArgs,
    /// With --wait: what the tasks run here inherit of this environment.
    #[command(flatten)]
    pub task_env: super::serve::TaskEnvArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Exit 0 when the execution started (with `--wait`: and succeeded), 1
/// when one waited for did not succeed (or an invalid preview), 3 when no
/// launch plan or workflow has the name, 2 for anything else it cannot do
/// (a bad input, a store or server that fails).
pub fn run(args: &Args) -> exit::Result {
    let mut inputs = BTreeMap::new();
    for pair in &args.inputs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(Error::failed(format!("--input `{pair}` is not name=value")));
        };
        inputs.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    if let Some(client) = args.server.client()? {
        return run_through(&client, args, inputs);
    }
    let request = Request {
        name: args.name.clone(),
        project: args.project.clone(),
        inputs,
        trigger: Trigger::Manual,
        scheduled_at: None,
        no_cache: args.no_cache,
        preview: None,
        event: None,
    };
    let emitter = openlineage(args)?;
    let result: exit::Result<Result<_, wait::Interrupt>> = block_on(async {
        let store = args.store.open().await.map_err(Error::failed)?;
        let mut request = request.clone();
        if let Some(revision) = &args.preview.revision {
            let project = args.project.as_deref().unwrap_or("default");
            let (store, state_dir) = (store.as_ref(), &args.store.state_dir);
            let preview =
                super::preview::prepare(&args.preview, revision, project, store, state_dir)
                    .await
                    .map_err(Error::invalid)?;
            request.preview = Some(preview);
            request.trigger = Trigger::Preview;
        }
        let (execution, _) = create::create(store.as_ref(), &request)
            .await
            .map_err(create_error)?;
        if !args.wait {
            // Its nodes, pending, as `POST /api/v1/runs` answers too.
            let nodes = store.nodes(&execution.id).await.map_err(Error::failed)?;
            return Ok(Ok((execution, nodes)));
        }
        let mut interrupts = wait::Interrupts::catch().map_err(Error::failed)?;
        let artifacts = Arc::new(LocalArtifacts::new(args.store.state_dir.join("artifacts")));
        let mut engine = Engine::new(store.clone(), artifacts, args.store.state_dir.clone())
            .with_task_env(Inherited::from_process(args.task_env.allow_list()));
        if let Some(emitter) = &emitter {
            engine = engine.observe(emitter.clone());
        }
        let waited = wait::drive_or_follow(
            &store,
            engine,
            &execution.id,
            args.lease_duration.0,
            &mut interrupts,
        )
        .await
        .map_err(Error::failed)?;
        let finished = match waited {
            Waited::Finished(finished) => finished,
            Waited::Cancelled {
                execution,
                signal,
                stopped,
            } => {
                notice(format_args!(
                    "interrupted ({}): execution {} {}; {stopped} running attempt(s) stopped",
                    signal.name(),
                    execution.id,
                    execution.status,
                ));
                return Ok(Err(signal));
            }
            Waited::Abandoned { signal, undone } => {
                notice(format_args!(
                    "interrupted again ({}): {undone}",
                    signal.name()
                ));
                return Ok(Err(signal));
            }
            Waited::LeftTo { engine, signal } => {
                notice(format_args!(
                    "interrupted ({}): execution {} continues in engine {engine}; `weir cancel {}` stops it",
                    signal.name(),
                    execution.id,
                    execution.id,
                ));
                return Ok(Err(signal));
            }
        };
        let nodes = store.nodes(&finished.id).await.map_err(Error::failed)?;
        Ok(Ok((finished, nodes)))
    });
    if let Some(emitter) = &emitter {
        // Outside the runtime: waits for the last events to be written.
        emitter.flush();
    }
    let (execution, nodes) = match result? {
        Ok(done) => done,
        Err(signal) => return Ok(ExitStatus::Interrupted(signal)),
    };
    print_run(&ExecutionView::new(&execution, &nodes), args.output)
}

/// No launch plan or workflow of that name: exit 3; anything else the
/// request gets wrong or the store fails at: 2.
fn create_error(e: create::Error) -> Error {
    match e {
        e @ create::Error::NotFound(_) => Error::not_found(e),
        e => Error::failed(e),
    }
}

/// `weir run --server`: the daemon creates the execution and its engine
/// runs it; `--wait` asks the daemon until it has ended. An interrupt
/// leaves it running there.
fn run_through(client: &Client, args: &Args, inputs: BTreeMap<String, Value>) -> exit::Result {
    let body = RunBody {
        name: args.name.clone(),
        project: args.project.clone(),
        inputs,
        no_cache: args.no_cache,
    };
    let started = client.run(&body).map_err(ReadError::from)?;
    if !args.wait {
        return print_run(&started, args.output);
    }
    let ended = block_on(async {
        let mut interrupts = wait::Interrupts::catch().map_err(Error::failed)?;
        let ids = std::slice::from_ref(&started.id);
        let ended = wait::poll_until_ended(client, ids, &mut interrupts).await;
        ended.map_err(|e| Error::from(ReadError::from(e)))
    })?;
    match ended {
        Ok(mut ended) => {
            let finished = ended.pop().unwrap_or(started);
            print_run(&finished, args.output)
        }
        Err(signal) => {
            notice(format_args!(
                "interrupted ({}): execution {} continues in the daemon; `weir cancel {} --server URL` stops it",
                signal.name(),
                started.id,
                started.id,
            ));
            Ok(ExitStatus::Interrupted(signal))
        }
    }
}

/// Prints the execution `weir run` started (or waited for); exit 1 when
/// it has ended without succeeding.
fn print_run(view: &ExecutionView, output: Output) -> exit::Result {
    match output {
        Output::Json => {
            let mut json = views::to_json(view);
            if view.trigger == Trigger::Preview {
                json["preview"] = Value::Bool(true);
            }
            println!("{json:#}")
        }
        Output::Table => print!("{}", execution_text(view)),
    }
    Ok(ExitStatus::success_if(matches!(
        view.status,
        Status::Succeeded | Status::Queued | Status::Running
    )))
}

/// The OpenLineage emitter the flags ask for, if any.
fn openlineage(args: &Args) -> exit::Result<Option<Arc<Emitter>>> {
    let key = match &args.openlineage_api_key_file {
        Some(path) => {
            Some(super::serve::read_secret(path, "OpenLineage API key").map_err(Error::failed)?)
        }
        None => None,
    };
    let emitter = Emitter::open(
        args.openlineage_file.as_deref(),
        args.openlineage_url.as_deref(),
        key.as_deref(),
    )
    .map_err(Error::failed)?;
    Ok(emitter.map(Arc::new))
}

/// An execution and its nodes for people: what `weir run` and `weir
/// executions ID` print (`-o json` prints the view itself).
pub fn execution_text(e: &ExecutionView) -> String {
    let mut out = format!(
        "execution {} {} (workflow {}@{}, commit {})\n",
        e.id,
        e.status,
        e.workflow,
        e.workflow_version,
        e.commit.short()
    );
    if let Some(event) = &e.event {
        out.push_str(&format!(
            "  {} trigger {}: event {}\n",
            e.trigger, event.trigger, event.event
        ));
    }
    if let Some(error) = &e.error {
        out.push_str(&format!("  error: {error}\n"));
    }
    let header = [
        "NODE",
        "TASK",
        "STATUS",
        "STARTED (UTC)",
        "DURATION",
        "ATTEMPTS",
        "CACHED",
    ]
    .map(str::to_owned);
    let rows: Vec<Vec<String>> = e
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.id.clone(),
                n.task.clone(),
                n.status.to_string(),
                n.started_at
                    .as_ref()
                    .map(super::render::utc)
                    .unwrap_or_default(),
                match (n.started_at, n.finished_at) {
                    (Some(start), Some(end)) => crate::views::took(end - start),
                    _ => String::new(),
                },
                n.attempts.to_string(),
                n.cached_from
                    .as_ref()
                    .map(ExecutionId::to_string)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&super::render::table(&header, &rows));
    }
    if let (Some(total), Some(next)) = (e.nodes_total, &e.nodes_next) {
        out.push_str(&format!(
            "{} of {total} nodes shown; the next: weir executions {} --after '{next}'\n",
            e.nodes.len(),
            e.id
        ));
    }
    if let Some(outputs) = &e.outputs {
        out.push_str(&format!("outputs: {outputs}\n"));
    }
    if !e.deliveries.is_empty() {
        let header = ["NOTIFIED", "ON", "TO", "STATUS", "ATTEMPTS", "LAST"].map(str::to_owned);
        let rows: Vec<Vec<String>> =
            e.deliveries
                .iter()
                .map(|d| {
                    let last = d.attempts.last().map_or(String::new(), |a| {
                        match (&a.error, a.http_status) {
                            (Some(error), _) => error.clone(),
                            (None, Some(status)) => status.to_string(),
                            (None, None) => String::new(),
                        }
                    });
                    vec![
                        d.target.clone(),
                        d.event.to_string(),
                        d.destination.clone(),
                        d.status.as_str().to_owned(),
                        d.attempts.len().to_string(),
                        last,
                    ]
                })
                .collect();
        out.push_str(&super::render::table(&header, &rows));
    }
    out
}
