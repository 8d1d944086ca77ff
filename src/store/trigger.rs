//! What the store keeps of event triggers (DESIGN.md section 13): every
//! event a trigger saw, once, with the id its execution gets; and where
//! each trigger stands.
//!
//! Exactly once per event (I4 extended): an event is recorded with
//! `INSERT … ON CONFLICT DO NOTHING` on (launch plan, trigger, event), its
//! execution's id fixed then; the execution is created with that id
//! afterwards (insert-or-get), and the event marked created. Whoever
//! records an event second (a restart that sees it again, a second
//! replica, a replayed call, the next version of the launch plan) reads
//! the first record back and creates nothing new: at worst it creates the
//! recorded id, which exists.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StoreFuture;
use super::execution::Status;
use crate::spec::{Digest, ExecutionId, Trigger};

/// Names one trigger of one launch plan, across the launch plan's
/// versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerKey {
    pub project: String,
    pub launch_plan: String,
    /// [`crate::spec::EventTrigger::key`].
    pub trigger: String,
}

/// One event a trigger saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    #[serde(flatten)]
    pub key: TriggerKey,
    /// The event's identity within its trigger.
    pub event: String,
    /// The id its execution gets; `None` for an object that was there
    /// before the trigger began (it never runs).
    pub execution: Option<ExecutionId>,
    /// The launch plan version that saw it first.
    pub version: Digest,
    /// What its execution receives from it (a file input's artifact, an
    /// upstream's bound values, a call's body).
    pub inputs: Value,
    /// What is shown of it (an object's URL, ETag and size; an upstream
    /// execution's id and phase; a call's Idempotency-Key).
    pub detail: Value,
    pub seen_at: DateTime<Utc>,
    /// When its execution was created; `None` (with an execution) while
    /// it waits for room under the trigger's `maxPending`.
    pub created_at: Option<DateTime<Utc>>,
}

impl EventRecord {
    /// Recorded, to run, and not created yet.
    pub fn is_deferred(&self) -> bool {
        self.execution.is_some() && self.created_at.is_none()
    }
}

/// Where one trigger stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerCursor {
    #[serde(flatten)]
    pub key: TriggerKey,
    /// When it began watching: what happened before is not its to run.
    pub since: DateTime<Utc>,
    /// How far it has read, where that is one value (an upstream
    /// trigger: the end of the last execution it saw).
    pub cursor: Option<String>,
    pub polled_at: Option<DateTime<Utc>>,
    /// Why its last poll failed; `None` once one succeeds.
    pub error: Option<String>,
    pub error_since: Option<DateTime<Utc>>,
}

/// A trigger's cursor with its counts, for `weir status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    #[serde(flatten)]
    pub cursor: TriggerCursor,
    /// Events it recorded to run (baseline objects not counted).
    pub events: i64,
    /// Of those, how many wait for room under `maxPending`.
    pub deferred: i64,
    pub last_event_at: Option<DateTime<Utc>>,
}

/// What the store keeps of triggers. Every method is one transaction.
pub trait TriggerStore: Send + Sync {
    /// Records each event unless its (trigger, event) is recorded already,
    /// and returns, in the order given, the record as stored (the one
    /// given, or the first one's) and whether this call recorded it.
    /// `cursors` are written in the same transaction (a trigger's baseline
    /// and its first poll are one fact: a crash between them would take
    /// the baseline again, over objects landed meanwhile).
    fn record_events<'a>(
        &'a self,
        events: &'a [EventRecord],
        cursors: &'a [TriggerCursor],
    ) -> StoreFuture<'a, Vec<(EventRecord, bool)>>;

    /// The events of `key` recorded to run whose execution is not created
    /// yet, oldest first, at most `limit`.
    fn deferred_events<'a>(
        &'a self,
        key: &'a TriggerKey,
        limit: u32,
    ) -> StoreFuture<'a, Vec<EventRecord>>;

    /// Marks `events` of `key` as created at `at`.
    fn mark_created<'a>(
        &'a self,
        key: &'a TriggerKey,
        events: &'a [String],
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()>;

    /// How many executions of `key`'s events are queued or running.
    fn unfinished_of_trigger<'a>(&'a self, key: &'a TriggerKey) -> StoreFuture<'a, i64>;

    /// The `detail` of every event `key` recorded (an artifact trigger
    /// reads which object versions it saw, after a restart).
    fn event_details<'a>(&'a self, key: &'a TriggerKey) -> StoreFuture<'a, Vec<Value>>;

    /// `key`'s cursor, if it has begun.
    fn trigger_cursor<'a>(&'a self, key: &'a TriggerKey) -> StoreFuture<'a, Option<TriggerCursor>>;

    /// Writes `cursor` (inserting it, or replacing what is stored; `since`
    /// is kept from the first write).
    fn write_trigger_cursor<'a>(&'a self, cursor: &'a TriggerCursor) -> StoreFuture<'a, ()>;

    /// Each trigger with deferred events, and how many (served by a
    /// partial index of the deferred rows alone).
    fn deferred_counts(&self) -> StoreFuture<'_, Vec<(TriggerKey, i64)>>;

    /// Every trigger's cursor and counts, by key.
    fn trigger_statuses(&self) -> StoreFuture<'_, Vec<TriggerStatus>>;

    /// Executions that ended after `after` (an end instant and an id: a
    /// keyset), in the order they ended, then by id, at most `limit`:
    /// what upstream triggers read (no plan, no nodes).
    fn ended_executions<'a>(
        &'a self,
        after: (DateTime<Utc>, &'a str),
        limit: u32,
    ) -> StoreFuture<'a, Vec<Ended>>;
}

/// An execution that ended, as upstream triggers read it: what they
/// match on and bind from.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub id: ExecutionId,
    pub project: String,
    pub launch_plan: Option<String>,
    pub trigger: Trigger,
    pub status: Status,
    pub inputs: Value,
    pub outputs: Option<Value>,
    pub finished_at: DateTime<Utc>,
}

/// The event an execution runs for, kept in its
/// [`RunOptions`](super::execution::RunOptions): which trigger, which
/// event, and what is shown of it (`weir executions ID`, the API, the
/// console).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRef {
    /// [`crate::spec::EventTrigger::key`].
    pub trigger: String,
    /// The event's identity within it.
    pub event: String,
    pub detail: Value,
}
