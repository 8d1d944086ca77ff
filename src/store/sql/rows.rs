//! Turning [`Changes`] into the rows to write, and rows read back into the
//! store's types (registry and executions alike).
//!
//! Everything here is pure (no connection, no statements: only the column
//! lists the row types decode), so both databases write the same rows and
//! read them back the same way. The row types decode on both (SQLite's
//! RFC 3339 text and JSON text, PostgreSQL's timestamptz and jsonb).
//! Malformed stored values, including a status this version does not know,
//! become [`Error::Corrupt`], never a panic.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::types::Json;

use crate::spec::{CommitId, Digest, EntityRef, ExecutionId, Kind, SourceKey, Trigger};
use crate::store::execution::{
    CacheEntry, Direction, Execution, ExecutionFilter, LineageEdge, NodeState, NodeStatus,
    RunOptions, Status,
};
use crate::store::{
    ActiveSet, ActiveVersion, AuditEntry, Changes, CommitInfo, Error, NewVersion, Person,
    SourceError, SourceStatus, VersionKey, VersionRecord,
};

/// Parses a stored kind.
fn parse_kind(text: &str, doing: &'static str) -> Result<Kind, Error> {
    Kind::parse(text).ok_or_else(|| Error::Corrupt {
        doing,
        message: format!("unknown kind {text:?}"),
    })
}

/// Rebuilds a version key from its four stored columns.
fn version_key(
    project: String,
    kind: &str,
    name: String,
    digest: String,
    doing: &'static str,
) -> Result<VersionKey, Error> {
    Ok(VersionKey {
        entity: EntityRef {
            project,
            kind: parse_kind(kind, doing)?,
            name,
        },
        digest: Digest::from_hex(digest),
    })
}

/// The versions to insert, sorted by key and without duplicates. A fixed
/// order makes concurrent writers take row locks in the same order
/// (no deadlock on PostgreSQL).
pub(crate) fn new_versions(registered: &[NewVersion]) -> Vec<&NewVersion> {
    let mut rows: Vec<&NewVersion> = registered.iter().collect();
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    rows.dedup_by(|a, b| a.key == b.key);
    rows
}

/// One activation record to insert: a version and why it is recorded
/// (`registered`, `activated`, `updated` or `reactivated`).
pub(crate) struct NewActivation<'a> {
    pub key: &'a VersionKey,
    pub change: &'static str,
}

/// One record per activated, updated and reactivated version, and one per
/// registered version that is none of those (registered without becoming
/// active), so every version has at least its registration.
pub(crate) fn new_activations(changes: &Changes) -> Vec<NewActivation<'_>> {
    let mut rows = Vec::new();
    let tagged = [
        (&changes.activated, "activated"),
        (&changes.updated, "updated"),
        (&changes.reactivated, "reactivated"),
    ];
    for (keys, change) in tagged {
        rows.extend(keys.iter().map(|key| NewActivation { key, change }));
    }
    let recorded: std::collections::HashSet<&VersionKey> = rows.iter().map(|r| r.key).collect();
    for version in &changes.registered {
        if !recorded.contains(&version.key) {
            rows.push(NewActivation {
                key: &version.key,
                change: "registered",
            });
        }
    }
    rows
}

/// How the stored active set must change to become `next` exactly (I2):
/// entities to remove, and entries to insert or repoint.
pub(crate) struct ActiveDiff<'a> {
    pub removed: Vec<&'a EntityRef>,
    pub upserted: Vec<(&'a EntityRef, &'a Digest)>,
}

/// How the active set moves from the one `changes` was planned against to
/// `changes.active`. Applied under the compare-and-swap on the source's last
/// reconciled commit, so the stored set is the one planned against: no need
/// to read it again.
pub(crate) fn active_diff(changes: &Changes) -> ActiveDiff<'_> {
    ActiveDiff {
        removed: changes.deactivated.iter().map(|k| &k.entity).collect(),
        upserted: changes
            .activated
            .iter()
            .chain(&changes.updated)
            .chain(&changes.reactivated)
            .map(|k| (&k.entity, &k.digest))
            .collect(),
    }
}

/// The audit details of a reconciled commit: for each kind of change, the
/// versions it concerns as `{project, kind, name, version, digest}`.
pub(crate) fn audit_details(changes: &Changes) -> Value {
    fn list<'a>(keys: impl Iterator<Item = &'a VersionKey>) -> Value {
        Value::Array(
            keys.map(|key| {
                json!({
                    "project": key.entity.project,
                    "kind": key.entity.kind.as_str(),
                    "name": key.entity.name,
                    "version": key.digest.short(),
                    "digest": key.digest.as_str(),
                })
            })
            .collect(),
        )
    }
    json!({
        "registered": list(changes.registered.iter().map(|v| &v.key)),
        "activated": list(changes.activated.iter()),
        "updated": list(changes.updated.iter()),
        "reactivated": list(changes.reactivated.iter()),
        "deactivated": list(changes.deactivated.iter()),
    })
}

/// The four columns that name a version, as read.
#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    project: String,
    kind: String,
    name: String,
    digest: String,
}

impl KeyRow {
    pub(crate) fn into_key(self, doing: &'static str) -> Result<VersionKey, Error> {
        version_key(self.project, &self.kind, self.name, self.digest, doing)
    }
}

/// A row of `SELECT project, kind, name, digest FROM active` as a set.
pub(crate) fn active_set(rows: Vec<KeyRow>, doing: &'static str) -> Result<ActiveSet, Error> {
    rows.into_iter()
        .map(|row| row.into_key(doing).map(|key| (key.entity, key.digest)))
        .collect()
}

/// An active version as creating an execution reads it: with the source
/// that has it active, the commit where it first appeared and its document.
#[derive(sqlx::FromRow)]
pub(crate) struct ActiveVersionRow {
    source: String,
    #[sqlx(flatten)]
    key: KeyRow,
    first_commit: String,
    document: Json<Value>,
}

/// The rows of an active-versions query, which come ordered by version and
/// then by source: a version active in several sources is kept once, with
/// the first source by key.
pub(crate) fn active_versions(
    rows: Vec<ActiveVersionRow>,
    doing: &'static str,
) -> Result<Vec<ActiveVersion>, Error> {
    let mut found: Vec<ActiveVersion> = Vec::with_capacity(rows.len());
    for row in rows {
        let key = row.key.into_key(doing)?;
        if found.last().is_some_and(|v| v.key == key) {
            continue;
        }
        found.push(ActiveVersion {
            key,
            source: SourceKey(row.source),
            commit: CommitId(row.first_commit),
            document: row.document.0,
        });
    }
    Ok(found)
}

/// A version as listed, before its activations are attached.
#[derive(sqlx::FromRow)]
pub(crate) struct VersionRow {
    #[sqlx(flatten)]
    key: KeyRow,
    first_commit: String,
    path: String,
    registered_at: DateTime<Utc>,
    active: bool,
}

/// One activation of a version, as read.
#[derive(sqlx::FromRow)]
pub(crate) struct ActivationRow {
    #[sqlx(flatten)]
    key: KeyRow,
    id: i64,
    commit_sha: String,
    at: DateTime<Utc>,
}

/// Attaches to each version the commits of its activation records, which
/// must come oldest first (one query for each, not one per version).
pub(crate) fn version_records(
    rows: Vec<VersionRow>,
    activations: Vec<ActivationRow>,
    doing: &'static str,
) -> Result<Vec<VersionRecord>, Error> {
    type Activations = (Vec<CommitId>, i64, Option<DateTime<Utc>>);
    let mut by_key: HashMap<VersionKey, Activations> = HashMap::new();
    for row in activations {
        let key = row.key.into_key(doing)?;
        let entry = by_key.entry(key).or_default();
        entry.0.push(CommitId(row.commit_sha));
        entry.1 = entry.1.max(row.id);
        entry.2 = Some(row.at);
    }
    rows.into_iter()
        .map(|row| {
            let key = row.key.into_key(doing)?;
            let (activations, last_activation, last_activated_at) =
                by_key.remove(&key).unwrap_or_default();
            Ok(VersionRecord {
                activations,
                last_activation,
                last_activated_at,
                key,
                commit: CommitId(row.first_commit),
                path: row.path,
                registered_at: row.registered_at,
                active: row.active,
            })
        })
        .collect()
}

/// A row of `commits`.
#[derive(sqlx::FromRow)]
pub(crate) struct CommitRow {
    sha: String,
    author_name: String,
    author_email: String,
    committer_name: String,
    committer_email: String,
    time: DateTime<Utc>,
    message: String,
}

impl CommitRow {
    pub(crate) fn into_info(self) -> CommitInfo {
        CommitInfo {
            id: CommitId(self.sha),
            author: Person {
                name: self.author_name,
                email: self.author_email,
            },
            committer: Person {
                name: self.committer_name,
                email: self.committer_email,
            },
            time: self.time,
            message: self.message,
        }
    }
}

/// A row of `sources`.
#[derive(sqlx::FromRow)]
pub(crate) struct SourceRow {
    key: String,
    last_reconciled: Option<String>,
    last_reconciled_at: Option<DateTime<Utc>>,
    last_attempted: Option<String>,
    last_attempted_at: Option<DateTime<Utc>>,
    error: Option<Json<Value>>,
}

impl SourceRow {
    pub(crate) fn into_status(self, doing: &'static str) -> Result<SourceStatus, Error> {
        let error = self.error.map(|Json(value)| serde_json::from_value(value));
        Ok(SourceStatus {
            source: SourceKey(self.key),
            last_reconciled: self.last_reconciled.map(CommitId),
            last_reconciled_at: self.last_reconciled_at,
            last_attempted: self.last_attempted.map(CommitId),
            last_attempted_at: self.last_attempted_at,
            error: error.transpose().map_err(|e| Error::Corrupt {
                doing,
                message: format!("invalid source error JSON: {e}"),
            })?,
        })
    }
}

/// A row of `audit`.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    source: Option<String>,
    commit_sha: Option<String>,
    actor_name: String,
    actor_email: String,
    action: String,
    details: Json<Value>,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> AuditEntry {
        AuditEntry {
            id: row.id,
            at: row.at,
            source: row.source.map(SourceKey),
            commit: row.commit_sha.map(CommitId),
            actor: Person {
                name: row.actor_name,
                email: row.actor_email,
            },
            action: row.action,
            details: row.details.0,
        }
    }
}

/// A `SourceError` as stored (status and audit details).
pub(crate) fn error_json(error: &SourceError) -> Value {
    json!({
        "reason": error.reason,
        "message": error.message,
        "diagnostics": error.diagnostics,
    })
}

/// Rows of `SELECT project, kind, name, source FROM active` as identities.
pub(crate) fn owned_entities(
    rows: Vec<(String, String, String, String)>,
    doing: &'static str,
) -> Result<Vec<(EntityRef, SourceKey)>, Error> {
    rows.into_iter()
        .map(|(project, kind, name, source)| {
            let kind = Kind::parse(&kind).ok_or_else(|| Error::Corrupt {
                doing,
                message: format!("unknown kind `{kind}`"),
            })?;
            Ok((EntityRef::new(project, kind, name), SourceKey(source)))
        })
        .collect()
}

// ------------------------------------------------------------- executions

/// The columns [`ExecutionRow`] decodes, in the order the statements
/// select and insert them.
pub(crate) const EXECUTION_COLUMNS: &str = "id, project, workflow, workflow_version, \
     launch_plan, launch_plan_version, source, commit_sha, trigger, scheduled_at, inputs, plan, \
     options, status, outputs, error, created_at, started_at, finished_at, cancel_requested";

/// The columns [`NodeRow`] decodes.
pub(crate) const NODE_COLUMNS: &str = "execution, node, task, task_version, status, attempts, \
     inputs, outputs, error, cached_from, started_at, finished_at, next_attempt_at, handle";

/// The columns [`LineageRow`] decodes.
pub(crate) const LINEAGE_COLUMNS: &str =
    "execution, node, direction, name, digest, task, task_version, commit_sha, at";

/// The columns [`CacheRow`] decodes.
pub(crate) const CACHE_COLUMNS: &str = "key, execution, node, outputs, created_at";

/// How many executions `executions(filter)` returns when the filter sets
/// no limit.
const DEFAULT_EXECUTION_LIMIT: u32 = 100;

/// The `LIMIT` of `executions(filter)`.
pub(crate) fn execution_limit(filter: &ExecutionFilter) -> i64 {
    i64::from(filter.limit.unwrap_or(DEFAULT_EXECUTION_LIMIT))
}

/// A node's attempts as stored (an SQL `INTEGER` on both databases).
/// More than 2³¹ attempts cannot happen (retries are counted in units), so
/// the value saturates rather than fails.
pub(crate) fn attempts_column(node: &NodeState) -> i32 {
    i32::try_from(node.attempts).unwrap_or(i32::MAX)
}

/// A lineage direction as stored.
pub(crate) fn direction_column(direction: Direction) -> &'static str {
    match direction {
        Direction::Input => "input",
        Direction::Output => "output",
    }
}

fn parse_direction(text: &str, doing: &'static str) -> Result<Direction, Error> {
    match text {
        "input" => Ok(Direction::Input),
        "output" => Ok(Direction::Output),
        _ => Err(Error::Corrupt {
            doing,
            message: format!("unknown lineage direction {text:?}"),
        }),
    }
}

pub(crate) fn parse_status(text: &str, doing: &'static str) -> Result<Status, Error> {
    Status::parse(text).ok_or_else(|| Error::Corrupt {
        doing,
        message: format!("unknown execution status {text:?}"),
    })
}

pub(crate) fn parse_trigger(text: &str, doing: &'static str) -> Result<Trigger, Error> {
    Trigger::parse(text).ok_or_else(|| Error::Corrupt {
        doing,
        message: format!("unknown execution trigger {text:?}"),
    })
}

fn parse_node_status(text: &str, doing: &'static str) -> Result<NodeStatus, Error> {
    NodeStatus::parse(text).ok_or_else(|| Error::Corrupt {
        doing,
        message: format!("unknown node status {text:?}"),
    })
}

/// The lineage edges to insert, sorted by their identity and without
/// duplicates: one statement never inserts an edge twice, and concurrent
/// writers take the unique index's locks in the same order (no deadlock on
/// PostgreSQL). Edges of one `at` therefore read back in this order.
pub(crate) fn new_lineage(edges: &[LineageEdge]) -> Vec<&LineageEdge> {
    fn identity(e: &LineageEdge) -> (&str, &str, &'static str, &str, &str) {
        let direction = direction_column(e.direction);
        (
            e.execution.as_str(),
            &e.node,
            direction,
            &e.name,
            e.digest.as_str(),
        )
    }
    let mut rows: Vec<&LineageEdge> = edges.iter().collect();
    rows.sort_by(|a, b| identity(a).cmp(&identity(b)));
    rows.dedup_by(|a, b| identity(a) == identity(b));
    rows
}

/// A row of `executions`.
#[derive(sqlx::FromRow)]
pub(crate) struct ExecutionRow {
    id: String,
    project: String,
    workflow: String,
    workflow_version: String,
    launch_plan: Option<String>,
    launch_plan_version: Option<String>,
    source: String,
    commit_sha: String,
    trigger: String,
    scheduled_at: Option<DateTime<Utc>>,
    inputs: Json<Value>,
    plan: Json<Value>,
    options: Json<RunOptions>,
    status: String,
    outputs: Option<Json<Value>>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    cancel_requested: bool,
}

impl ExecutionRow {
    pub(crate) fn into_execution(self, doing: &'static str) -> Result<Execution, Error> {
        Ok(Execution {
            status: parse_status(&self.status, doing)?,
            id: ExecutionId::from(self.id),
            project: self.project,
            workflow: self.workflow,
            workflow_version: Digest::from_hex(self.workflow_version),
            launch_plan: self.launch_plan,
            launch_plan_version: self.launch_plan_version.map(Digest::from_hex),
            source: SourceKey(self.source),
            commit: CommitId(self.commit_sha),
            trigger: parse_trigger(&self.trigger, doing)?,
            scheduled_at: self.scheduled_at,
            inputs: self.inputs.0,
            plan: self.plan.0.into(),
            options: self.options.0,
            outputs: self.outputs.map(|Json(value)| value),
            error: self.error,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            cancel_requested: self.cancel_requested,
        })
    }
}

/// Rows of `executions` as executions; the first corrupt one fails all.
pub(crate) fn executions(
    rows: Vec<ExecutionRow>,
    doing: &'static str,
) -> Result<Vec<Execution>, Error> {
    rows.into_iter()
        .map(|row| row.into_execution(doing))
        .collect()
}

/// A row of `node_executions`.
#[derive(sqlx::FromRow)]
pub(crate) struct NodeRow {
    execution: String,
    node: String,
    task: String,
    task_version: String,
    status: String,
    attempts: i32,
    inputs: Option<Json<Value>>,
    outputs: Option<Json<Value>>,
    error: Option<String>,
    cached_from: Option<String>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    next_attempt_at: Option<DateTime<Utc>>,
    handle: Option<Json<Value>>,
}

impl NodeRow {
    fn into_state(self, doing: &'static str) -> Result<NodeState, Error> {
        Ok(NodeState {
            status: parse_node_status(&self.status, doing)?,
            attempts: u32::try_from(self.attempts).map_err(|_| Error::Corrupt {
                doing,
                message: format!("negative attempts {} of node {}", self.attempts, self.node),
            })?,
            execution: ExecutionId::from(self.execution),
            node: self.node,
            task: self.task,
            task_version: Digest::from_hex(self.task_version),
            inputs: self.inputs.map(|Json(value)| value),
            outputs: self.outputs.map(|Json(value)| value),
            error: self.error,
            cached_from: self.cached_from.map(ExecutionId::from),
            started_at: self.started_at,
            finished_at: self.finished_at,
            next_attempt_at: self.next_attempt_at,
            handle: self.handle.map(|Json(value)| value),
        })
    }
}

/// Rows of `node_executions` as node states.
pub(crate) fn node_states(
    rows: Vec<NodeRow>,
    doing: &'static str,
) -> Result<Vec<NodeState>, Error> {
    rows.into_iter().map(|row| row.into_state(doing)).collect()
}

/// A row of `lineage`.
#[derive(sqlx::FromRow)]
pub(crate) struct LineageRow {
    execution: String,
    node: String,
    direction: String,
    name: String,
    digest: String,
    task: String,
    task_version: String,
    commit_sha: String,
    at: DateTime<Utc>,
}

/// Rows of `lineage` as edges.
pub(crate) fn lineage_edges(
    rows: Vec<LineageRow>,
    doing: &'static str,
) -> Result<Vec<LineageEdge>, Error> {
    rows.into_iter()
        .map(|row| {
            Ok(LineageEdge {
                direction: parse_direction(&row.direction, doing)?,
                execution: ExecutionId::from(row.execution),
                node: row.node,
                name: row.name,
                digest: Digest::from_hex(row.digest),
                task: row.task,
                task_version: Digest::from_hex(row.task_version),
                commit: CommitId(row.commit_sha),
                at: row.at,
            })
        })
        .collect()
}

/// A row of `cache_entries`.
#[derive(sqlx::FromRow)]
pub(crate) struct CacheRow {
    key: String,
    execution: String,
    node: String,
    outputs: Json<Value>,
    created_at: DateTime<Utc>,
}

impl From<CacheRow> for CacheEntry {
    fn from(row: CacheRow) -> CacheEntry {
        CacheEntry {
            key: Digest::from_hex(row.key),
            execution: ExecutionId::from(row.execution),
            node: row.node,
            outputs: row.outputs.0,
            created_at: row.created_at,
        }
    }
}
