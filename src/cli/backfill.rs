//! `weir backfill`: one execution per scheduled instant of a launch plan in
//! `[--from, --to)` ([`crate::engine::backfill`]), each with the id the
//! scheduler gives that instant, so nothing runs twice. The executions are
//! created `queued`; `weir serve` runs them, at most `--max-parallel` at a
//! time. `--wait` waits for them the way `weir run --wait` does
//! (`wait.rs`): it takes the store's engine lease and runs them here, or
//! hands them to the engine holding it (a daemon) and waits; an interrupt
//! cancels those it drives, and leaves those it handed over running.
//!
//! With `--server`, the daemon makes the backfill (`POST
//! /api/v1/backfills`) and its engine runs the executions; `--wait` asks
//! the daemon until they have ended, and an interrupt leaves them there.
//! Either way it prints the same document ([`BackfillView`]).
//!
//! Exit status: 0 when the backfill was made (with `--wait`: and every
//! execution succeeded), 1 when an execution it waited for did not
//! succeed, 3 when no launch plan has that name, 2 when it could not be
//! made otherwise (no schedule, a bad or too large range, a store
//! error), 130 or 143 when `--wait` was interrupted by SIGINT or SIGTERM.

use std::sync::Arc;

use chrono::Utc;

use super::Output;
use super::duration_arg::DurationArg;
use super::exit::{self, Error, ExitStatus, notice};
use super::origin::{ReadError, ServerArgs};
use super::store_args::{StoreArgs, block_on};
use super::wait::{self, Waited};
use crate::artifact::LocalArtifacts;
use crate::engine::Engine;
use crate::engine::backfill::{self, Backfill, EntryStatus, Request};
use crate::executor::environment::Inherited;
use crate::http::client::Client;
use crate::spec::ExecutionId;
use crate::store::execution::Status;
use crate::views::{self, BackfillBody, BackfillView};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The launch plan (its active version; it needs a schedule).
    pub launch_plan: String,
    /// The launch plan's project, when the name is active in several.
    #[arg(long)]
    pub project: Option<String>,
    /// The first instant included: a date (midnight) or a local time
    /// (2026-03-25T06:00), both in the schedule's time zone, or an RFC 3339
    /// time with an offset (absolute).
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// The end of the range, excluded; written as --from.
    #[arg(long, value_name = "TIME")]
    pub to: String,
    /// At most N executions of this backfill run at once, oldest instant
    /// first [default: 1 for `concurrency: Forbid` or `Replace`, no bound
    /// for `Allow`].
    #[arg(long, value_name = "N")]
    pub max_parallel: Option<u32>,
    /// List the instants and which already have an execution; create nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until every execution has finished, running them here, or,
    /// when another engine (a daemon) drives the store, waiting for it to.
    #[arg(long, conflicts_with = "dry_run")]
    pub wait: bool,
    /// With --wait: how long the engine lease this command takes lasts
    /// unrenewed (a daemon started meanwhile follows until it is released).
    #[arg(long, default_value_t = DurationArg(wait::LEASE_DURATION), conflicts_with = "server")]
    pub lease_duration: DurationArg,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// With --wait: what the tasks run here inherit of this environment.
    #[command(flatten)]
    pub task_env: super::serve::TaskEnvArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &Args) -> exit::Result {
    let body = BackfillBody {
        launch_plan: args.launch_plan.clone(),
        project: args.project.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        max_parallel: args.max_parallel,
        dry_run: args.dry_run,
    };
    if let Some(client) = args.server.client()? {
        return backfill_through(&client, &body, args);
    }
    let request = Request::from(body);
    let result: exit::Result<Result<Backfill, wait::Interrupt>> = block_on(async {
        let store = args.store.open().await.map_err(Error::failed)?;
        let mut done = backfill::backfill(store.as_ref(), &request, Utc::now())
            .await
            .map_err(|e| match e {
                e @ backfill::Error::NotFound(_) => Error::not_found(e),
                e => Error::failed(e),
            })?;
        if args.wait && !done.entries.is_empty() {
            let mut interrupts = wait::Interrupts::catch().map_err(Error::failed)?;
            let artifacts = Arc::new(LocalArtifacts::new(args.store.state_dir.join("artifacts")));
            let engine = Engine::new(store.clone(), artifacts, args.store.state_dir.clone())
                .with_task_env(Inherited::from_process(args.task_env.allow_list()));
            let ids: Vec<ExecutionId> = done
                .entries
                .iter()
                .map(|e| e.execution_id.clone())
                .collect();
            let waited = wait::drive_or_follow_all(
                &store,
                engine,
                &ids,
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
                    let cancelled = execution
                        .iter()
                        .filter(|e| e.status == Status::Cancelled)
                        .count();
                    notice(format_args!(
                        "interrupted ({}): {cancelled} of the backfill's {} executions cancelled; {stopped} running attempt(s) stopped",
                        signal.name(),
                        execution.len(),
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
                        "interrupted ({}): the backfill's executions continue in engine {engine}; `weir cancel ID` stops one",
                        signal.name(),
                    ));
                    return Ok(Err(signal));
                }
            };
            for (entry, execution) in done.entries.iter_mut().zip(finished) {
                entry.execution_status = Some(execution.status);
            }
        }
        Ok(Ok(done))
    });
    let done = match result? {
        Ok(done) => done,
        Err(signal) => return Ok(ExitStatus::Interrupted(signal)),
    };
    print_backfill(&BackfillView::new(&done, args.dry_run), args)
}

/// `weir backfill --server`: the daemon makes the backfill and its engine
/// runs the executions; `--wait` asks the daemon until they have ended.
fn backfill_through(client: &Client, body: &BackfillBody, args: &Args) -> exit::Result {
    let mut done = client.backfill(body).map_err(ReadError::from)?;
    if args.wait && !done.entries.is_empty() {
        let ids: Vec<ExecutionId> = done
            .entries
            .iter()
            .map(|e| e.execution_id.clone())
            .collect();
        let ended = block_on(async {
            let mut interrupts = wait::Interrupts::catch().map_err(Error::failed)?;
            let ended = wait::poll_until_ended(client, &ids, &mut interrupts).await;
            ended.map_err(|e| Error::from(ReadError::from(e)))
        })?;
        match ended {
            Ok(ended) => {
                for (entry, execution) in done.entries.iter_mut().zip(ended) {
                    entry.execution_status = Some(execution.status);
                }
            }
            Err(signal) => {
                notice(format_args!(
                    "interrupted ({}): the backfill's executions continue in the daemon; `weir cancel ID --server URL` stops one",
                    signal.name(),
                ));
                return Ok(ExitStatus::Interrupted(signal));
            }
        }
    }
    print_backfill(&done, args)
}

/// Prints the backfill; exit 1 when `--wait` saw an execution that did not
/// succeed.
fn print_backfill(done: &BackfillView, args: &Args) -> exit::Result {
    match args.output {
        Output::Json => println!("{:#}", views::to_json(done)),
        Output::Table => print!("{}", text(done, args)),
    }
    let failed = args.wait
        && done
            .entries
            .iter()
            .any(|e| e.execution_status != Some(Status::Succeeded));
    Ok(ExitStatus::success_if(!failed))
}

/// The backfill for people: a summary line, then one row per instant in
/// the schedule's time zone.
fn text(done: &BackfillView, args: &Args) -> String {
    let tz: chrono_tz::Tz = done.timezone.parse().unwrap_or(chrono_tz::UTC);
    let local = |t: chrono::DateTime<Utc>| {
        t.with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    };
    let mut out = format!(
        "backfill of {}/{}@{} in {tz}, [{}, {}): {} instants",
        done.project,
        done.launch_plan,
        done.version,
        local(done.from),
        local(done.to),
        done.entries.len(),
    );
    if args.dry_run {
        out.push_str(&format!(
            ", {} new, {} exist (dry run: nothing was created)\n",
            done.count(EntryStatus::New),
            done.count(EntryStatus::Exists)
        ));
    } else {
        out.push_str(&format!(
            ", {} created, {} existed\n",
            done.count(EntryStatus::Created),
            done.count(EntryStatus::Exists)
        ));
    }
    if done.cut_at_now {
        out.push_str("the range ends after now: later instants are the scheduler's\n");
    }
    match done.max_parallel {
        Some(n) => out.push_str(&format!(
            "at most {n} of its executions run at once, oldest first\n"
        )),
        None => out.push_str(&format!(
            "its executions may all run at once (concurrency: {:?}; --max-parallel bounds them)\n",
            done.concurrency
        )),
    }
    if done.entries.is_empty() {
        out.push_str("no instant of the schedule falls in the range\n");
        return out;
    }
    let header = ["INSTANT", "EXECUTION", "BACKFILL", "STATUS"].map(str::to_owned);
    let rows: Vec<Vec<String>> = done
        .entries
        .iter()
        .map(|e| {
            vec![
                local(e.instant),
                e.execution_id.to_string(),
                e.status.as_str().to_owned(),
                e.execution_status
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&super::render::table(&header, &rows));
    if !args.wait && done.count(EntryStatus::Created) > 0 {
        out.push_str("created executions are queued: `weir serve` runs them (or --wait, here)\n");
    }
    out
}
