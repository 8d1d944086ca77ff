//! The store: everything weir remembers, behind one trait with one SQL
//! implementation ([`sql::SqlStore`], sqlx with migrations) on two
//! databases: SQLite, the embedded default, and PostgreSQL for several
//! replicas and large histories. Every statement is written once; what
//! differs between the databases (opening, transactions, encoding) is each
//! one's dialect, `sqlite.rs` and `postgres.rs`.
//!
//! The store *applies* decisions; it does not make them. `registry::plan`
//! decides purely what a commit changes ([`Changes`]); [`Store::apply`]
//! writes all of it in one transaction, so a reader sees either the old
//! active set or the new one, never a mix (I2), and a crash mid-way loses
//! nothing. Versions are only ever inserted, never updated or deleted (I1).
//! A commit that fails validation is recorded with [`Store::record_failure`],
//! which touches the source's status and the audit log only (I3).
//!
//! Executions, their nodes, lineage and the cache are kept by the same
//! store ([`ExecutionStore`], which [`Store`] requires), so one
//! `Arc<dyn Store>` serves the reconciler, the scheduler and the engine;
//! so is the lease that lets one engine at a time drive them ([`LeaseStore`]),
//! and what event triggers saw ([`TriggerStore`]).

pub mod delivery;
pub mod execution;
pub mod lease;
pub mod postgres;
pub(crate) mod sql;
pub mod sqlite;
pub mod trigger;

pub use delivery::{Delivery, DeliveryAttempt, DeliveryStatus, DeliveryStore};
pub use execution::{
    CacheEntry, Direction, Execution, ExecutionFilter, ExecutionStore, LineageEdge, NewExecution,
    NodeState, NodeStatus, Status,
};
pub use lease::{ENGINE_LEASE, Lease, LeaseStore};
pub use trigger::{EventRecord, TriggerCursor, TriggerKey, TriggerStatus, TriggerStore};

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::spec::{CommitId, Digest, EntityRef, Kind, SourceKey};

/// A boxed future, so that `dyn Store` can be chosen at run time.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub email: String,
}

/// What weir records of a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub id: CommitId,
    pub author: Person,
    pub committer: Person,
    /// The committer's time.
    pub time: DateTime<Utc>,
    pub message: String,
}

/// One version: an entity and the digest of its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionKey {
    pub entity: EntityRef,
    pub digest: Digest,
}

/// The active version of every entity of one source.
pub type ActiveSet = BTreeMap<EntityRef, Digest>;

/// A JSON document kept as its compact text, as the store writes it: a
/// fraction of a `serde_json::Value`'s memory (a first reconcile holds
/// every new version's spec and document at once: 10,000 `Value`s were
/// most of its peak). Serialized as the JSON it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// `value` as compact text (keys in the order a `Value` keeps them).
    pub fn of(value: &serde_json::Value) -> JsonText {
        JsonText(value.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The document, parsed again.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).expect("a JsonText holds JSON it was made from")
    }
}

impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<JsonText, D::Error> {
        serde_json::Value::deserialize(deserializer).map(|value| JsonText::of(&value))
    }
}

/// A version seen for the first time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewVersion {
    pub key: VersionKey,
    /// The canonical spec (defaults filled in) as JSON text.
    pub spec: JsonText,
    /// The document as written, as JSON text (what `rollback` restores).
    pub document: JsonText,
    /// The file it was defined in, relative to the source's path.
    pub path: String,
}

/// Everything one valid commit changes, decided by `registry::plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Changes {
    pub source: SourceKey,
    pub commit: CommitInfo,
    /// The source's last reconciled commit when this was planned. `apply`
    /// refuses with [`Error::Conflict`] when it has moved since (another
    /// process reconciled in between), so a stale plan never overwrites a
    /// newer one; the caller plans again.
    pub previous: Option<CommitId>,
    /// Versions to insert (digests never seen before for their entity).
    pub registered: Vec<NewVersion>,
    /// Entities that were not active and now are, with a brand-new version.
    pub activated: Vec<VersionKey>,
    /// Entities whose active version changes to one registered earlier
    /// (a `git revert` brings old content back).
    pub reactivated: Vec<VersionKey>,
    /// Entities that disappeared from the tree (their versions stay).
    pub deactivated: Vec<VersionKey>,
    /// Entities whose active version changes to a brand-new version.
    pub updated: Vec<VersionKey>,
    /// The complete active set after this commit (I2).
    pub active: ActiveSet,
}

impl Changes {
    /// Whether the commit changes the active set or registers anything.
    pub fn is_empty(&self) -> bool {
        self.registered.is_empty()
            && self.activated.is_empty()
            && self.reactivated.is_empty()
            && self.deactivated.is_empty()
            && self.updated.is_empty()
    }
}

/// A registered version as listed by `weir versions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub key: VersionKey,
    /// The commit where it first appeared.
    pub commit: CommitId,
    pub path: String,
    pub registered_at: DateTime<Utc>,
    /// Active in at least one source.
    pub active: bool,
    /// Every commit at which it became active (first registration, then each
    /// reactivation), oldest first.
    pub activations: Vec<CommitId>,
    /// Position of its latest activation in the store's global sequence
    /// (larger is later; 0 when none): which version was active before.
    pub last_activation: i64,
    /// When it last became active: a launch plan's schedule starts there,
    /// never in its past.
    pub last_activated_at: Option<DateTime<Utc>>,
}

/// An active version with what creating an execution of it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveVersion {
    pub key: VersionKey,
    /// The source that has it active (the first by key, should several).
    pub source: SourceKey,
    /// The commit where it first appeared.
    pub commit: CommitId,
    /// The document as written, as JSON.
    pub document: serde_json::Value,
}

/// Filter of `weir versions`.
#[derive(Debug, Clone, Default)]
pub struct VersionFilter {
    pub kind: Option<Kind>,
    pub name: Option<String>,
    pub project: Option<String>,
}

/// The reconcile status of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub source: SourceKey,
    pub last_reconciled: Option<CommitId>,
    pub last_reconciled_at: Option<DateTime<Utc>>,
    pub last_attempted: Option<CommitId>,
    pub last_attempted_at: Option<DateTime<Utc>>,
    /// Set when the last attempted commit was refused: what went wrong, and
    /// the diagnostics (as `weir validate -o json` prints them).
    pub error: Option<SourceError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceError {
    /// A short reason usable as a metric label, e.g. `ValidationFailed`.
    pub reason: String,
    pub message: String,
    pub diagnostics: serde_json::Value,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The source and commit of a reconciled or rejected commit; `None`
    /// for a change no commit made (a pause or a resume).
    pub source: Option<SourceKey>,
    pub commit: Option<CommitId>,
    /// Who made the change: the commit's author, or who paused or resumed.
    pub actor: Person,
    /// `reconciled`, `rejected`, `paused` or `resumed`.
    pub action: String,
    /// `{registered, activated, updated, reactivated, deactivated}` lists of
    /// `{project, kind, name, version}`, the rejection's error, or the
    /// paused or resumed launch plan (`{project, kind, name, comment,
    /// catchUp}`).
    pub details: serde_json::Value,
}

/// A launch plan's last pause or resume, made without a commit (`weir
/// pause`, `weir resume`): it holds for the launch plan by project and
/// name, whichever of its versions is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub project: String,
    pub name: String,
    /// Paused; `false`: resumed.
    pub paused: bool,
    /// When it was paused or resumed: after a resume without `catch_up`
    /// the schedule starts only instants after this.
    pub at: DateTime<Utc>,
    pub actor: Person,
    pub comment: Option<String>,
    /// A resume that runs the instants missed while paused, as the plan's
    /// `catchUp` and `maxCatchUp` allow after an outage.
    pub catch_up: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the database at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// PostgreSQL did not accept a first connection: refused, unknown
    /// host, no answer within [`postgres::CONNECT_TIMEOUT`], authentication.
    /// Said at once, naming where weir tried (the URL without credentials).
    #[error("cannot connect to PostgreSQL at {host}:{port} ({url}): {reason}")]
    Unreachable {
        url: String,
        host: String,
        port: u16,
        reason: String,
    },
    /// A SQLite database file that is empty: not a store weir made (weir
    /// creates a new store only where no file exists).
    #[error(
        "`{path}` is an empty file, not a weir database; remove it to start a new store, or point --state-dir or --db at the existing one"
    )]
    EmptyDatabase { path: String },
    #[error("cannot migrate the database at {url}: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error while {doing}: {source}")]
    Query {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("corrupt row while {doing}: {message}")]
    Corrupt {
        doing: &'static str,
        message: String,
    },
    /// A write to a row that does not exist (an execution or node that was
    /// never created): a caller's bug, reported rather than ignored.
    #[error("{what} does not exist (while {doing})")]
    NotFound { doing: &'static str, what: String },
    #[error(
        "source {source_key} was reconciled by someone else meanwhile (expected {expected:?}, found {found:?}); plan again"
    )]
    Conflict {
        source_key: String,
        expected: Option<String>,
        found: Option<String>,
    },
}

impl Error {
    /// A stable label for metrics and status reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Connect { .. } | Error::Unreachable { .. } => "StoreUnavailable",
            Error::EmptyDatabase { .. } => "StoreEmptyFile",
            Error::Migrate { .. } => "StoreMigrationFailed",
            Error::Query { .. } => "StoreQueryFailed",
            Error::Corrupt { .. } => "StoreCorrupt",
            Error::Conflict { .. } => "StoreConflict",
            Error::NotFound { .. } => "StoreNotFound",
        }
    }
}

/// What weir remembers: the registry here, executions in the supertrait.
/// Every method is one transaction. The store never reads the clock: each
/// time it writes is given by its caller (the daemon's, the CLI's or a
/// test's [`Clock`](crate::clock::Clock)), so a test can pin it.
pub trait Store: ExecutionStore + DeliveryStore + LeaseStore + TriggerStore {
    /// Whether the store answers at all: `SELECT 1`, reading no table, so
    /// that a readiness probe costs the database next to nothing.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// The active set of `source` (empty for a source never reconciled).
    fn active_set<'a>(&'a self, source: &'a SourceKey) -> StoreFuture<'a, ActiveSet>;

    /// Entities active in sources other than `source`, with their source:
    /// an identity may be defined by one source only.
    fn active_in_other_sources<'a>(
        &'a self,
        source: &'a SourceKey,
    ) -> StoreFuture<'a, Vec<(EntityRef, SourceKey)>>;

    /// Which of `keys` are registered already.
    fn known_versions<'a>(&'a self, keys: &'a [VersionKey])
    -> StoreFuture<'a, HashSet<VersionKey>>;

    /// Writes a valid commit's changes in one transaction: the commit, new
    /// versions (inserting a digest that exists is a no-op, I1), one
    /// activation record per activated/updated/reactivated version, the new
    /// active set replacing the old one (I2), an audit entry when anything
    /// changed, and the source's status (reconciled = attempted = commit,
    /// error cleared). Everything it stamps (registration, activation,
    /// reconcile and audit times) is stamped `at`, the caller's now.
    fn apply<'a>(&'a self, changes: &'a Changes, at: DateTime<Utc>) -> StoreFuture<'a, ()>;

    /// Registers the versions of a commit without activating them (a
    /// preview run's commit, `weir run --ref`): the commit and each version
    /// are inserted if absent. A digest that exists is a no-op and keeps the
    /// commit where it first appeared (I1). No activation record, active
    /// set, source status or audit entry is written, so the versions are
    /// listed inactive and schedules never see them. New versions are
    /// registered `at`.
    fn register_inactive<'a>(
        &'a self,
        commit: &'a CommitInfo,
        versions: &'a [NewVersion],
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()>;

    /// Records that `commit` was refused: the source's status (attempted =
    /// commit, the error) and an audit entry, both stamped `at`. The active
    /// set is untouched (I3).
    fn record_failure<'a>(
        &'a self,
        source: &'a SourceKey,
        commit: &'a CommitInfo,
        error: &'a SourceError,
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()>;

    /// Records that the source could not be read at all (unreachable
    /// remote, missing branch or path): the status's error and attempt
    /// time, `at`. The active set and the last attempted commit are
    /// untouched.
    fn record_source_error<'a>(
        &'a self,
        source: &'a SourceKey,
        error: &'a SourceError,
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()>;

    /// Registered versions, newest registration first.
    fn versions<'a>(&'a self, filter: &'a VersionFilter) -> StoreFuture<'a, Vec<VersionRecord>>;

    /// The active versions of `kind` and `name` (in `project` when
    /// given), newest registration first, each with its source, first
    /// commit and document: what creating an execution resolves, in one
    /// indexed query whose cost does not grow with the registry.
    fn active_versions<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        project: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<ActiveVersion>>;

    /// The active versions of each of `names` in `project`, grouped by
    /// name and each name's newest registration first: what resolving the
    /// callees of a workflow reads, in one indexed query for all of them.
    fn active_versions_of<'a>(
        &'a self,
        project: &'a str,
        names: &'a [(Kind, &'a str)],
    ) -> StoreFuture<'a, Vec<ActiveVersion>>;

    /// The document of a version as it was written (for rollback).
    fn version_document<'a>(
        &'a self,
        key: &'a VersionKey,
    ) -> StoreFuture<'a, Option<serde_json::Value>>;

    /// What the store recorded of each of `ids` that it knows (author,
    /// committer, time, message), in no particular order.
    fn commits<'a>(&'a self, ids: &'a [CommitId]) -> StoreFuture<'a, Vec<CommitInfo>>;

    /// Every source's status, ordered by key.
    fn sources(&self) -> StoreFuture<'_, Vec<SourceStatus>>;

    /// The audit log, newest first, at most `limit` entries.
    fn audit(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>>;

    /// Pauses or resumes a launch plan (`pause.paused`), with its audit
    /// entry, in one transaction; `false`, writing nothing, when it is
    /// already so (a launch plan never paused is resumed). Whether the
    /// launch plan exists is the caller's to check.
    fn set_pause<'a>(&'a self, pause: &'a Pause) -> StoreFuture<'a, bool>;

    /// Every launch plan's last pause or resume.
    fn pauses(&self) -> StoreFuture<'_, Vec<Pause>>;
}

/// Opens the store at `url`: `sqlite://PATH` (created if no file exists;
/// an empty file is refused) or `postgres://…` (a first connection is made
/// at once, so a wrong host or port fails fast); runs pending migrations.
/// Errors and logs show `url` without credentials (`crate::redact`).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url).await?))
    } else {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    }
}
