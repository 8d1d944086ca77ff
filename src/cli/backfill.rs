//! `weir backfill`: one execution per scheduled instant of a launch plan in
//! `[--from, --to)` ([`crate::engine::backfill`]), each with the id the
//! scheduler gives that instant, so nothing runs twice. The executions are
//! created `queued`; `weir serve` runs them, at most `--max-parallel` at a
//! time. `--wait` waits for them the way `weir run --wait` does
//! (`wait.rs`): it takes the store's engine lease and runs them here, or
//! hands them to the engine holding it (a daemon) and waits; an interrupt
//! cancels those it drives, and leaves those it handed over running.
//!
//! Exit status: 0 when the backfill was made (with `--wait`: and every
//! execution succeeded), 1 when an execution it waited for did not
//! succeed, 2 when it could not be made (unknown launch plan, no schedule,
//! a bad or too large range, a store error), 130 or 143 when `--wait` was
//! interrupted by SIGINT or SIGTERM.

use std::sync::Arc;

use chrono::Utc;

use super::Output;
use super::duration_arg::DurationArg;
use super::exit::{self, Error, ExitStatus, notice};
use super::store_args::{StoreArgs, block_on};
use super::wait::{self, Waited};
use crate::artifact::LocalArtifacts;
use crate::engine::Engine;
use crate::engine::backfill::{self, Backfill, EntryStatus, Request};
use crate::executor::environment::Inherited;
use crate::spec::ExecutionId;
use crate::store::execution::Status;

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
    #[arg(long, default_value_t = DurationArg(wait::LEASE_DURATION))]
    pub lease_duration: DurationArg,
    #[command(flatten)]
    pub store: StoreArgs,
    /// With --wait: what the tasks run here inherit of this environment.
    #[command(flatten)]
    pub task_env: super::serve::TaskEnvArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &Args) -> exit::Result {
    let request = Request {
        launch_plan: args.launch_plan.clone(),
        project: args.project.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        max_parallel: args.max_parallel,
        dry_run: args.dry_run,
    };
    let result: exit::Result<Result<Backfill, wait::Interrupt>> = block_on(async {
        let store = args.store.open().await.map_err(Error::failed)?;
        let mut done = backfill::backfill(store.as_ref(), &request, Utc::now())
            .await
            .map_err(Error::failed)?;
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
    match args.output {
        Output::Json => println!(
            "{:#}",
            serde_json::to_value(&done.entries).expect("entries serialize")
        ),
        Output::Table => print!("{}", text(&done, args)),
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
fn text(done: &Backfill, args: &Args) -> String {
    let tz = done.timezone;
    let local = |t: chrono::DateTime<Utc>| {
        t.with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    };
    let mut out = format!(
        "backfill of {}/{}@{} in {tz}, [{}, {}): {} instants",
        done.launch_plan.project,
        done.launch_plan.name,
        done.version.short(),
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
    match done.group.max_parallel {
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
