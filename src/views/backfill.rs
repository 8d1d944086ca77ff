//! A backfill: `weir backfill -o json`, and the answer of `POST
//! /api/v1/backfills`. What it covered (the launch plan's version, its
//! time zone, the range, how many of its executions may run at once) and
//! one entry an instant, so that `weir backfill --server` prints what
//! `weir backfill` prints.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{instant, to_millis};
use crate::engine::backfill::{Backfill, EntryStatus, Request};
use crate::spec::{Concurrency, ExecutionId};
use crate::store::execution::Status;

/// What to backfill: the body of `POST /api/v1/backfills`, which `weir
/// backfill --server` sends; the times as `weir backfill` reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackfillBody {
    pub launch_plan: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    #[serde(default)]
    pub dry_run: bool,
}

impl From<BackfillBody> for Request {
    fn from(body: BackfillBody) -> Request {
        Request {
            launch_plan: body.launch_plan,
            project: body.project,
            from: body.from,
            to: body.to,
            max_parallel: body.max_parallel,
            dry_run: body.dry_run,
        }
    }
}

/// What a backfill covered and did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillView {
    pub project: String,
    pub launch_plan: String,
    /// The launch plan's version, 12 hex.
    pub version: String,
    /// The schedule's time zone (IANA name), where dates and local times
    /// of `--from` and `--to` were read.
    pub timezone: String,
    pub concurrency: Concurrency,
    /// At most this many of its executions run at once; `null`: no bound.
    pub max_parallel: Option<u32>,
    #[serde(serialize_with = "instant::millis")]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "instant::millis")]
    pub to: DateTime<Utc>,
    /// The range reached past now: later instants are the scheduler's.
    pub cut_at_now: bool,
    /// Nothing was created.
    pub dry_run: bool,
    /// Oldest first.
    pub entries: Vec<BackfillEntryView>,
}

/// One instant of a backfill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillEntryView {
    #[serde(serialize_with = "instant::millis")]
    pub instant: DateTime<Utc>,
    pub execution_id: ExecutionId,
    /// `created`, `exists`, or in a dry run `new`.
    pub status: EntryStatus,
    /// The execution's own status, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_status: Option<Status>,
}

impl BackfillView {
    pub fn new(done: &Backfill, dry_run: bool) -> BackfillView {
        BackfillView {
            project: done.launch_plan.project.clone(),
            launch_plan: done.launch_plan.name.clone(),
            version: done.version.short().to_owned(),
            timezone: done.timezone.name().to_owned(),
            concurrency: done.concurrency,
            max_parallel: done.group.max_parallel,
            from: to_millis(done.from),
            to: to_millis(done.to),
            cut_at_now: done.cut_at_now,
            dry_run,
            entries: done
                .entries
                .iter()
                .map(|e| BackfillEntryView {
                    instant: to_millis(e.instant),
                    execution_id: e.execution_id.clone(),
                    status: e.status,
                    execution_status: e.execution_status,
                })
                .collect(),
        }
    }

    /// How many entries have `status`.
    pub fn count(&self, status: EntryStatus) -> usize {
        self.entries.iter().filter(|e| e.status == status).count()
    }
}
