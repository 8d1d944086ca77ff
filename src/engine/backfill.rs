//! A backfill (DESIGN.md section 6): one execution of a launch plan's
//! active version per instant of its schedule in a past range `[from, to)`,
//! what `weir backfill` and `POST /api/v1/backfills` do.
//!
//! What it guarantees:
//! - The instants are the scheduler's own ([`crate::schedule::backfill`]),
//!   and each execution is created through the scheduler's path (the
//!   launch plan prepared once, [`LaunchPlanVersion::prepare`], the missing instants
//!   written in batches) with the same deterministic id, so an
//!   instant the scheduler already ran, or an earlier or overlapping
//!   backfill created, is found and reported `exists`, never run twice
//!   (I4). A new version of the plan is a new launch plan version: a
//!   backfill after a change runs the range under the new version.
//! - `--max-parallel` is kept with each execution ([`BackfillGroup`]), and
//!   the engine's admission ([`super::admission`]) starts at most that many
//!   of this backfill at a time, oldest instant first; the rest wait
//!   `queued`. Without it the bound follows the plan's `concurrency`
//!   ([`default_max_parallel`]).
//! - A dry run reads the store and writes nothing.
//!
//! What it must not do: drive executions (the engine does, in `weir serve`
//! or in `weir backfill --wait` through [`Engine::run_until_all_finished`]).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::create::{self, LaunchPlanVersion};
use super::{Engine, scheduler};
use crate::clock::Since;
use crate::schedule::backfill::{self as range, RangeError};
use crate::schedule::{Rule, execution_id};
use crate::spec::Trigger;
use crate::spec::{Concurrency, Digest, EntityRef, ExecutionId};
use crate::store::execution::BackfillGroup;
use crate::store::execution::{Execution, Status};
use crate::store::{self, Store};

/// What to backfill.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub launch_plan: String,
    pub project: Option<String>,
    /// A date, a local time (both read in the schedule's time zone) or an
    /// RFC 3339 time; inclusive.
    pub from: String,
    /// As `from`; exclusive.
    pub to: String,
    /// At most this many of the backfill run at once; `None`: as the
    /// plan's `concurrency` says.
    pub max_parallel: Option<u32>,
    /// List the instants and which exist; create nothing.
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("no active launch plan is named `{0}` (`weir versions --kind LaunchPlan` lists them)")]
    NotFound(String),
    #[error("`{name}` is active in several projects ({projects}); name one with --project")]
    Ambiguous { name: String, projects: String },
    #[error(
        "launch plan `{0}` has no schedule, so it has no instants to backfill (`weir run` starts one execution)"
    )]
    NoSchedule(String),
    #[error("the launch plan `{name}` cannot be read: {message}")]
    Unreadable { name: String, message: String },
    #[error("--max-parallel must be at least 1")]
    MaxParallel,
    #[error(transparent)]
    Range(#[from] RangeError),
    #[error(
        "cannot create the execution of {instant}: {source} (the executions created so far \
         stay; running the same backfill again creates only the rest)"
    )]
    Create {
        instant: DateTime<Utc>,
        source: create::Error,
    },
}

impl Error {
    /// The store failed (rather than the request being wrong).
    pub fn is_store(&self) -> bool {
        matches!(
            self,
            Error::Store(_)
                | Error::Create {
                    source: create::Error::Store(_),
                    ..
                }
        )
    }
}

/// What a backfill did with one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryStatus {
    /// This backfill created its execution.
    Created,
    /// Its execution existed: the scheduler or an earlier backfill made it.
    Exists,
    /// A dry run: it has no execution yet.
    New,
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Created => "created",
            EntryStatus::Exists => "exists",
            EntryStatus::New => "new",
        }
    }
}

/// One instant of a backfill, as `-o json` and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// RFC 3339 in UTC.
    pub instant: DateTime<Utc>,
    pub execution_id: ExecutionId,
    pub status: EntryStatus,
    /// The execution's own status, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_status: Option<Status>,
}

/// What a backfill covered.
#[derive(Debug, Clone)]
pub struct Backfill {
    pub launch_plan: EntityRef,
    pub version: Digest,
    pub timezone: Tz,
    pub concurrency: Concurrency,
    pub group: BackfillGroup,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The range reached past `now`: later instants are the scheduler's.
    pub cut_at_now: bool,
    /// Oldest first.
    pub entries: Vec<Entry>,
}

impl Backfill {
    pub fn count(&self, status: EntryStatus) -> usize {
        self.entries.iter().filter(|e| e.status == status).count()
    }
}

/// A backfill's bound when none is given, from the plan's `concurrency`:
/// `Forbid` and `Replace` run one instant at a time (the plan's runs never
/// overlap), `Allow` all of them at once.
pub fn default_max_parallel(concurrency: Concurrency) -> Option<u32> {
    match concurrency {
        Concurrency::Allow => None,
        Concurrency::Forbid | Concurrency::Replace => Some(1),
    }
}

/// The group of a backfill: the same launch plan version and range give
/// the same id, so running a backfill again joins its first run.
fn group_id(
    launch_plan: &EntityRef,
    version: &Digest,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let key = format!(
        "backfill/{}/{}@{}@{}@{}",
        launch_plan.project,
        launch_plan.name,
        version.as_str(),
        from.to_rfc3339(),
        to.to_rfc3339()
    );
    let digest = Digest::of_json(&serde_json::Value::String(key));
    let name: String = launch_plan.name.chars().take(40).collect();
    format!("{}-backfill-{}", name.trim_end_matches('-'), digest.short())
}

/// The active launch plan named in `request` and its schedule.
async fn resolve(store: &dyn Store, request: &Request) -> Result<(LaunchPlanVersion, Rule), Error> {
    let name = &request.launch_plan;
    let unreadable = |message: String| Error::Unreadable {
        name: name.clone(),
        message,
    };
    let version = match create::active_launch_plan(store, name, request.project.as_deref()).await {
        Ok(version) => version,
        Err(create::Error::Store(e)) => return Err(Error::Store(e)),
        Err(create::Error::Ambiguous { name, projects }) => {
            return Err(Error::Ambiguous { name, projects });
        }
        Err(e @ create::Error::Document(..)) => return Err(unreadable(e.to_string())),
        Err(_) => return Err(Error::NotFound(name.clone())),
    };
    let schedule = version
        .spec
        .schedule
        .as_ref()
        .ok_or_else(|| Error::NoSchedule(name.clone()))?;
    let rule = Rule::from_spec(schedule).map_err(|e| unreadable(e.to_string()))?;
    Ok((version, rule))
}

/// Creates (or, with `dry_run`, only looks up) the execution of every
/// instant of the launch plan's schedule in `[from, to)` up to `now`.
pub async fn backfill(
    store: &dyn Store,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Backfill, Error> {
    if request.max_parallel == Some(0) {
        return Err(Error::MaxParallel);
    }
    let (resolved, rule) = resolve(store, request).await?;
    let (launch_plan, version) = (resolved.key.entity.clone(), resolved.key.digest.clone());
    let from = range::parse_bound("from", &request.from, rule.timezone)?;
    let to = range::parse_bound("to", &request.to, rule.timezone)?;
    let covered = range::instants(&rule, from, to, now)?;
    let group = BackfillGroup {
        id: group_id(&launch_plan, &version, from, to),
        max_parallel: request
            .max_parallel
            .or_else(|| default_max_parallel(rule.concurrency)),
    };
    let mut entries = Vec::with_capacity(covered.instants.len());
    // The entries whose execution does not exist yet, to create.
    let mut missing = Vec::new();
    for instant in covered.instants {
        let id = execution_id(&launch_plan, &version, instant);
        match store.execution(&id).await? {
            Some(found) => entries.push(entry(instant, &found, EntryStatus::Exists)),
            None => {
                missing.push(entries.len());
                entries.push(Entry {
                    instant,
                    execution_id: id,
                    status: EntryStatus::New,
                    execution_status: None,
                });
            }
        }
    }
    if !request.dry_run && !missing.is_empty() {
        create_missing(store, resolved, &group, &mut entries, &missing, now).await?;
    }
    if !request.dry_run {
        tracing::info!(
            launch_plan = %launch_plan.name,
            group = %group.id,
            instants = entries.len(),
            created = entries.iter().filter(|e| e.status == EntryStatus::Created).count(),
            "backfill"
        );
    }
    Ok(Backfill {
        launch_plan,
        version,
        timezone: rule.timezone,
        concurrency: rule.concurrency,
        group,
        from,
        to,
        cut_at_now: covered.cut_at_now,
        entries,
    })
}

/// Creates the executions of `entries[i]` for each `i` of `missing`
/// through the scheduler's path: the launch plan version whose instants
/// and ids they are prepared once ([`LaunchPlanVersion::prepare`]), its
/// executions written in batches of
/// [`scheduler::BATCH`] (the ids the scheduler gives the same instants, so
/// neither runs one twice, I4). Each entry is then `created`, or `exists`
/// when another process created it meanwhile.
async fn create_missing(
    store: &dyn Store,
    launch_plan: LaunchPlanVersion,
    group: &BackfillGroup,
    entries: &mut [Entry],
    missing: &[usize],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    fn failed(instant: DateTime<Utc>) -> impl FnOnce(create::Error) -> Error {
        move |source| Error::Create { instant, source }
    }
    let clock = Since::new(now);
    let prepared = launch_plan
        .prepare(store)
        .await
        .map_err(failed(entries[missing[0]].instant))?;
    for chunk in missing.chunks(scheduler::BATCH) {
        // Each batch is created at its own time, after the one before
        // (what `UnfinishedSummary::newest` relies on).
        let now = clock.now();
        let mut batch = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let request = create::Request {
                trigger: Trigger::Backfill,
                scheduled_at: Some(entries[i].instant),
                ..create::Request::default()
            };
            let new = prepared.execution(&request, Some(group), now);
            batch.push(new.map_err(failed(entries[i].instant))?);
        }
        let created = store
            .create_executions(&batch)
            .await
            .map_err(|e| failed(entries[chunk[0]].instant)(create::Error::Store(e)))?;
        for ((&i, new), created) in chunk.iter().zip(&batch).zip(created) {
            entries[i] = if created {
                entry(entries[i].instant, &new.execution, EntryStatus::Created)
            } else {
                match store.execution(&new.execution.id).await? {
                    Some(found) => entry(entries[i].instant, &found, EntryStatus::Exists),
                    None => Entry {
                        status: EntryStatus::Exists,
                        ..entries[i].clone()
                    },
                }
            };
        }
    }
    Ok(())
}

fn entry(instant: DateTime<Utc>, execution: &Execution, status: EntryStatus) -> Entry {
    Entry {
        instant,
        execution_id: execution.id.clone(),
        status,
        execution_status: Some(execution.status),
    }
}

impl Engine {
    /// Drives the executions `ids` in this process until each has finished,
    /// holding back what their backfill's bound holds back (the engine's
    /// admission, as in [`Engine::tick`]); returns them in the order of
    /// `ids`. Other unfinished executions are left to whoever drives them.
    pub async fn run_until_all_finished(
        &self,
        ids: &[ExecutionId],
    ) -> Result<Vec<Execution>, super::Error> {
        self.drive_until_finished(ids, std::time::Duration::from_millis(200))
            .await?;
        let mut finished = Vec::with_capacity(ids.len());
        for id in ids {
            finished.extend(self.store.execution(id).await?);
        }
        Ok(finished)
    }
}
