//! `weir run`: start an execution of the active version of a launch plan or
//! workflow; with `--wait`, drive it to the end in this process (the local
//! executor), or hand it to the engine that drives the store (a daemon)
//! and wait, and print the finished execution (`wait.rs`: an interrupt
//! cancels what this process drives, and leaves a daemon's run to it).
//! With `--ref REV`, run the
//! versions at that commit instead, without activating them (a preview,
//! see `preview.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::Output;
use super::duration_arg::DurationArg;
use super::exit::{self, Error, ExitStatus, notice};
use super::store_args::{StoreArgs, block_on};
use super::wait::{self, Waited};
use crate::artifact::LocalArtifacts;
use crate::engine::Engine;
use crate::engine::create::{self, Request};
use crate::executor::environment::Inherited;
use crate::lineage::openlineage::{Emitter, FileSink, HttpSink};
use crate::spec::{ExecutionId, Trigger};
use crate::store::execution::Status;
use crate::views::{self, ExecutionView};

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
    #[arg(long, default_value_t = DurationArg(wait::LEASE_DURATION))]
    pub lease_duration: DurationArg,
    /// Run every node, even those whose result is cached.
    #[arg(long)]
    pub no_cache: bool,
    /// With --wait: append an OpenLineage RunEvent per node transition to
    /// this file, one JSON object a line.
    #[arg(long, env = "WEIR_OPENLINEAGE_FILE", value_name = "PATH")]
    pub openlineage_file: Option<PathBuf>,
    /// With --wait: POST OpenLineage RunEvents to `<URL>/api/v1/lineage`
    /// (Marquez).
    #[arg(
        long,
        env = "WEIR_OPENLINEAGE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub openlineage_url: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub preview: super::preview::PreviewArgs,
    /// With --wait: what the tasks run here inherit of this environment.
    #[command(flatten)]
    pub task_env: super::serve::TaskEnvArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Every failure of `weir run` exits 1, as the request's own problems do.
pub fn run(args: &Args) -> exit::Result {
    let mut inputs = BTreeMap::new();
    for pair in &args.inputs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(Error::invalid(format!(
                "--input `{pair}` is not name=value"
            )));
        };
        inputs.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    let request = Request {
        name: args.name.clone(),
        project: args.project.clone(),
        inputs,
        trigger: Trigger::Manual,
        scheduled_at: None,
        no_cache: args.no_cache,
        preview: None,
    };
    let emitter = openlineage(args).map_err(Error::invalid)?;
    let result: exit::Result<Result<_, wait::Interrupt>> = block_on(async {
        let store = args.store.open().await.map_err(Error::invalid)?;
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
            .map_err(Error::invalid)?;
        if !args.wait {
            return Ok(Ok((execution, Vec::new())));
        }
        let mut interrupts = wait::Interrupts::catch().map_err(Error::invalid)?;
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
        .map_err(Error::invalid)?;
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
        let nodes = store.nodes(&finished.id).await.map_err(Error::invalid)?;
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
    let view = ExecutionView::new(&execution, &nodes);
    match args.output {
        Output::Json => {
            let mut json = views::to_json(&view);
            if execution.trigger == Trigger::Preview {
                json["preview"] = Value::Bool(true);
            }
            println!("{json:#}")
        }
        Output::Table => print!("{}", execution_text(&view)),
    }
    Ok(ExitStatus::success_if(matches!(
        execution.status,
        Status::Succeeded | Status::Queued | Status::Running
    )))
}

/// The OpenLineage emitter the flags ask for, if any.
fn openlineage(args: &Args) -> Result<Option<Arc<Emitter>>, crate::lineage::openlineage::Error> {
    if args.openlineage_file.is_none() && args.openlineage_url.is_none() {
        return Ok(None);
    }
    let file = args
        .openlineage_file
        .as_deref()
        .map(FileSink::open)
        .transpose()?;
    let http = args
        .openlineage_url
        .as_deref()
        .map(HttpSink::new)
        .transpose()?;
    Ok(Some(Arc::new(Emitter::start(file, http)?)))
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
    if let Some(error) = &e.error {
        out.push_str(&format!("  error: {error}\n"));
    }
    let header = ["NODE", "TASK", "STATUS", "ATTEMPTS", "CACHED"].map(str::to_owned);
    let rows: Vec<Vec<String>> = e
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.id.clone(),
                n.task.clone(),
                n.status.to_string(),
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
