//! What the store keeps of executions (DESIGN.md sections 6–8): one row per
//! execution with its compiled plan, one per node with its persisted state
//! (the engine is level-triggered: a restarted process reads these and
//! continues), lineage edges from node executions to artifact digests, and
//! cache entries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StoreFuture;
use crate::spec::{CommitId, Digest, ExecutionId, SourceKey, Trigger};

/// How an execution runs beyond its inputs, fixed when it is created and
/// stored with it as JSON (`{"backfill": {…}, "noCache": true}`, the keys
/// this version writes; unknown keys of a later version are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOptions {
    /// The backfill it belongs to ([`crate::engine::admission`] bounds how
    /// many of a group run at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillGroup>,
    /// Run every node: none is served from the cache.
    #[serde(default)]
    pub no_cache: bool,
    /// The event a trigger ran it for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<super::trigger::EventRef>,
}

/// The backfill an execution belongs to, kept in its [`RunOptions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillGroup {
    /// Names the request (deterministic: the same request, the same group).
    pub id: String,
    /// At most this many of the group run at once; `None`: no bound.
    pub max_parallel: Option<u32>,
}

/// The state of an execution. `Succeeded`, `Failed`, `Cancelled` and
/// `TimedOut` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Cancelled,
        Status::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::TimedOut => "timedOut",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Queued | Status::Running)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one node of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeStatus {
    /// Not started: waiting for its dependencies.
    Pending,
    /// An attempt is running.
    Running,
    /// An approval gate waiting for a decision (`weir approve`) since
    /// `started_at`, for at most its timeout.
    Waiting,
    /// An attempt failed; the next one starts at `next_attempt_at`.
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    /// Never ran: an upstream node failed (fail-fast) or the execution ended.
    Skipped,
}

impl NodeStatus {
    pub const ALL: [NodeStatus; 9] = [
        NodeStatus::Pending,
        NodeStatus::Running,
        NodeStatus::Waiting,
        NodeStatus::Retrying,
        NodeStatus::Succeeded,
        NodeStatus::Failed,
        NodeStatus::Cancelled,
        NodeStatus::TimedOut,
        NodeStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Running => "running",
            NodeStatus::Waiting => "waiting",
            NodeStatus::Retrying => "retrying",
            NodeStatus::Succeeded => "succeeded",
            NodeStatus::Failed => "failed",
            NodeStatus::Cancelled => "cancelled",
            NodeStatus::TimedOut => "timedOut",
            NodeStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<NodeStatus> {
        NodeStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            NodeStatus::Pending | NodeStatus::Running | NodeStatus::Waiting | NodeStatus::Retrying
        )
    }
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One execution of a workflow version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    /// Deterministic for scheduled runs (`schedule::execution_id`), so a
    /// second create finds the first (I4).
    pub id: ExecutionId,
    pub project: String,
    pub workflow: String,
    pub workflow_version: Digest,
    pub launch_plan: Option<String>,
    pub launch_plan_version: Option<Digest>,
    pub source: SourceKey,
    /// The commit where the workflow version first appeared.
    pub commit: CommitId,
    pub trigger: Trigger,
    /// The scheduled instant, for scheduled and backfilled runs.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The workflow's inputs, name → value.
    pub inputs: Value,
    /// The compiled DAG the engine follows (engine-owned JSON, fixed at
    /// creation: later commits never change a running execution). Shared:
    /// the engine holds executions as it drives them, and a plan is as
    /// large as its workflow.
    pub plan: std::sync::Arc<Value>,
    /// How it runs beyond its inputs, fixed at creation.
    pub options: RunOptions,
    pub status: Status,
    /// The workflow's outputs once succeeded.
    pub outputs: Option<Value>,
    /// Why it failed, timed out or was cancelled.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `weir cancel` asked for it; the engine acts on it at its next tick.
    pub cancel_requested: bool,
}

/// The persisted state of one node of an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    pub execution: ExecutionId,
    /// The node's path in the plan: `train`, or `sub/train` inside the
    /// sub-workflow node `sub`.
    pub node: String,
    pub task: String,
    pub task_version: Digest,
    pub status: NodeStatus,
    /// Attempts started so far (0 before the first).
    pub attempts: u32,
    /// The inputs of the latest attempt, name → value (files as artifact
    /// digests).
    pub inputs: Option<Value>,
    /// The outputs once succeeded, name → value (files as artifact digests).
    pub outputs: Option<Value>,
    pub error: Option<String>,
    /// Served from the cache of this execution.
    pub cached_from: Option<ExecutionId>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When a `Retrying` node starts its next attempt.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// What the executor needs to find the running attempt again after a
    /// restart (the local executor: its process group and folder).
    pub handle: Option<Value>,
}

impl NodeState {
    /// A node of a new execution: pending, no attempt yet.
    pub fn pending(
        execution: ExecutionId,
        node: String,
        task: String,
        task_version: Digest,
    ) -> NodeState {
        NodeState {
            execution,
            node,
            task,
            task_version,
            status: NodeStatus::Pending,
            attempts: 0,
            inputs: None,
            outputs: None,
            error: None,
            cached_from: None,
            started_at: None,
            finished_at: None,
            next_attempt_at: None,
            handle: None,
        }
    }
}

/// An execution to create with its nodes (in plan order): one item of
/// [`ExecutionStore::create_executions`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewExecution {
    pub execution: Execution,
    pub nodes: Vec<NodeState>,
}

/// Filter of `weir executions`.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub project: Option<String>,
    pub launch_plan: Option<String>,
    pub workflow: Option<String>,
    pub status: Option<Status>,
    pub trigger: Option<Trigger>,
    /// Only those older than this execution (its creation instant and id):
    /// the next page of a list.
    pub before: Option<(DateTime<Utc>, ExecutionId)>,
    /// At most this many, newest first (`None`: 100).
    pub limit: Option<u32>,
}

/// Which side of a node execution an artifact is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    Input,
    Output,
}

/// One lineage edge: a node execution read (input) or produced (output) the
/// artifact `digest` under the port `name` (I5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineageEdge {
    pub execution: ExecutionId,
    pub node: String,
    pub direction: Direction,
    pub name: String,
    pub digest: Digest,
    pub task: String,
    pub task_version: Digest,
    pub commit: CommitId,
    pub at: DateTime<Utc>,
}

/// A memoised node result (Flyte's cache): outputs by cache key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    pub key: Digest,
    pub execution: ExecutionId,
    pub node: String,
    pub outputs: Value,
    pub created_at: DateTime<Utc>,
}

/// What the unfinished executions look like from afar, in one cheap query
/// (the partial index of unfinished rows): how many there are, how many
/// were asked to cancel, the smallest and largest id and the latest
/// creation instant. An engine compares it with what it holds to notice
/// work another process wrote (a `weir run` or `weir cancel` beside a
/// daemon) without reading every execution.
///
/// Ids are hashes, so a new execution can fall between the smallest and
/// the largest; and while it is created, another process may finish one
/// the engine holds, leaving the count as it was. `newest` is what such a
/// creation still changes: an execution is created at its creator's
/// clock, after those created before it (what it cannot tell, creators on
/// hosts whose clocks disagree, the engine's full pass finds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnfinishedSummary {
    pub count: i64,
    pub cancel_requested: i64,
    pub first: Option<ExecutionId>,
    pub last: Option<ExecutionId>,
    /// The latest `created_at`.
    pub newest: Option<DateTime<Utc>>,
}

impl UnfinishedSummary {
    /// The summary of `executions` (the unfinished ones an engine holds).
    pub fn of<'a>(executions: impl IntoIterator<Item = &'a Execution>) -> UnfinishedSummary {
        let mut summary = UnfinishedSummary::default();
        for e in executions {
            summary.count += 1;
            summary.cancel_requested += i64::from(e.cancel_requested);
            if summary.first.as_ref().is_none_or(|f| e.id < *f) {
                summary.first = Some(e.id.clone());
            }
            if summary.last.as_ref().is_none_or(|l| e.id > *l) {
                summary.last = Some(e.id.clone());
            }
            if summary.newest.is_none_or(|n| e.created_at > n) {
                summary.newest = Some(e.created_at);
            }
        }
        summary
    }
}

/// One of the writes a pass of the engine makes, applied with the others
/// of the pass, in order, in one transaction
/// ([`ExecutionStore::apply_engine_writes`]).
#[derive(Debug, Clone, PartialEq)]
pub enum EngineWrite {
    /// A node's state, as [`ExecutionStore::update_node`].
    Node(NodeState),
    /// A node's success with its cache entry and lineage, as
    /// [`ExecutionStore::complete_node`] (I5: one transaction holds all
    /// three).
    Completed {
        node: NodeState,
        cache: Option<CacheEntry>,
        edges: Vec<LineageEdge>,
    },
    /// An execution's status, as [`ExecutionStore::update_execution`].
    Execution(Execution),
    /// A map node starting its items: the node's state, and a new row per
    /// item, numbered after the execution's rows, in item order.
    Expanded {
        node: NodeState,
        items: Vec<NodeState>,
    },
}

/// A page of an execution's nodes ([`ExecutionStore::nodes_page`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodesPage {
    pub nodes: Vec<NodeState>,
    /// How many nodes the execution has.
    pub total: u64,
    /// Whether the node the page starts after exists (`true` without one).
    pub after_found: bool,
}

/// Told the id of every execution created, or asked to cancel, through a
/// store handle (in this process): what wakes the engine at once
/// ([`ExecutionStore::on_work`]). Must not block.
pub type WorkListener = dyn Fn(&ExecutionId) + Send + Sync;

/// What the store keeps of executions. Every method is one transaction.
pub trait ExecutionStore: Send + Sync {
    /// Inserts `execution` and its `nodes` unless an execution with the same
    /// id exists; either way returns the stored execution and whether this
    /// call created it. Two processes creating the same id at once get one
    /// row and exactly one `true` (I4).
    fn create_execution<'a>(
        &'a self,
        execution: &'a Execution,
        nodes: &'a [NodeState],
    ) -> StoreFuture<'a, (Execution, bool)>;

    /// [`create_execution`](Self::create_execution) with lineage edges of
    /// its nodes, in the same transaction (a recovery's nodes served from
    /// the execution it recovers: I5); the edges are written only when
    /// this call creates it.
    fn create_execution_with_lineage<'a>(
        &'a self,
        execution: &'a Execution,
        nodes: &'a [NodeState],
        edges: &'a [LineageEdge],
    ) -> StoreFuture<'a, (Execution, bool)>;

    /// Creates many executions as [`create_execution`](Self::create_execution)
    /// creates one: each whose id does not exist yet is inserted with its
    /// nodes, any other is left as it is; returns, in the order given,
    /// whether this call created each (an id given twice is created once,
    /// for its first occurrence). Multi-row statements within the
    /// database's parameter limit, one transaction per statement's worth
    /// of executions: a failure leaves the earlier ones created, so that
    /// calling again with the same batch creates only the rest (I4).
    fn create_executions<'a>(&'a self, batch: &'a [NewExecution]) -> StoreFuture<'a, Vec<bool>>;

    fn execution<'a>(&'a self, id: &'a ExecutionId) -> StoreFuture<'a, Option<Execution>>;

    /// Each of `ids` that exists, by id: one query where
    /// [`execution`](Self::execution) would take one per id.
    fn executions_of<'a>(
        &'a self,
        ids: &'a [ExecutionId],
    ) -> StoreFuture<'a, std::collections::HashMap<ExecutionId, Execution>>;

    /// Executions matching `filter`, newest first.
    fn executions<'a>(&'a self, filter: &'a ExecutionFilter) -> StoreFuture<'a, Vec<Execution>>;

    /// Every execution that is `queued` or `running`, oldest first.
    fn unfinished_executions(&self) -> StoreFuture<'_, Vec<Execution>>;

    /// The [`UnfinishedSummary`] of the unfinished executions, in one query
    /// reading no plan or node.
    fn unfinished_summary(&self) -> StoreFuture<'_, UnfinishedSummary>;

    /// Calls `listener` with the id of each execution this handle (or a
    /// clone of it) creates or asks to cancel, once the write committed; for
    /// as long as the listener lives (the store keeps it weakly). Writes by
    /// other processes are not told: the engine finds those with
    /// [`unfinished_summary`](Self::unfinished_summary).
    fn on_work(&self, _listener: std::sync::Weak<WorkListener>) {}

    /// The nodes of an execution, in plan order.
    fn nodes<'a>(&'a self, execution: &'a ExecutionId) -> StoreFuture<'a, Vec<NodeState>>;

    /// A page of an execution's nodes in plan order: at most `limit` of
    /// those after the node at path `after` (from the first when `None`).
    fn nodes_page<'a>(
        &'a self,
        execution: &'a ExecutionId,
        after: Option<&'a str>,
        limit: u32,
    ) -> StoreFuture<'a, NodesPage>;

    /// The nodes of each of `executions` (those it has), in plan order: one
    /// query where [`nodes`](Self::nodes) would take one per execution.
    fn nodes_of<'a>(
        &'a self,
        executions: &'a [ExecutionId],
    ) -> StoreFuture<'a, std::collections::HashMap<ExecutionId, Vec<NodeState>>>;

    /// Writes a node's state (by execution and node path).
    fn update_node<'a>(&'a self, node: &'a NodeState) -> StoreFuture<'a, ()>;

    /// Records a node's success in one transaction: its state (as
    /// [`update_node`](Self::update_node)), its cache entry if any (as
    /// [`cache_put`](Self::cache_put)) and its lineage edges (as
    /// [`record_lineage`](Self::record_lineage)). All three are written or
    /// none is, so a crash can never leave a succeeded node without its
    /// lineage (I5); on an error the node keeps its previous state.
    fn complete_node<'a>(
        &'a self,
        node: &'a NodeState,
        cache: Option<&'a CacheEntry>,
        edges: &'a [LineageEdge],
    ) -> StoreFuture<'a, ()>;

    /// Writes an execution's status, outputs, error and times (the rest is
    /// fixed at creation).
    fn update_execution<'a>(&'a self, execution: &'a Execution) -> StoreFuture<'a, ()>;

    /// Applies `writes` in order, in one transaction: all of them or none
    /// (a node that does not exist is [`Error::NotFound`](super::Error::NotFound)
    /// and writes nothing). One round trip per pass of the engine instead
    /// of one per node transition.
    fn apply_engine_writes<'a>(&'a self, writes: &'a [EngineWrite]) -> StoreFuture<'a, ()>;

    /// Asks for an unfinished execution to be cancelled; `false` when it is
    /// unknown or already finished.
    fn request_cancel<'a>(&'a self, id: &'a ExecutionId) -> StoreFuture<'a, bool>;

    /// Records lineage edges (idempotent: the same edge twice is one).
    fn record_lineage<'a>(&'a self, edges: &'a [LineageEdge]) -> StoreFuture<'a, ()>;

    /// Edges touching an artifact, oldest first.
    fn lineage_of_artifact<'a>(&'a self, digest: &'a Digest) -> StoreFuture<'a, Vec<LineageEdge>>;

    /// Edges of an execution's nodes, oldest first.
    fn lineage_of_execution<'a>(
        &'a self,
        execution: &'a ExecutionId,
    ) -> StoreFuture<'a, Vec<LineageEdge>>;

    /// Edges touching any of `digests` (one query per batch: following
    /// lineage costs one round trip per level, not per artifact).
    fn lineage_of_artifacts<'a>(
        &'a self,
        digests: &'a [Digest],
    ) -> StoreFuture<'a, Vec<LineageEdge>>;

    /// Edges of the given (execution, node) pairs.
    fn lineage_of_nodes<'a>(
        &'a self,
        nodes: &'a [(ExecutionId, String)],
    ) -> StoreFuture<'a, Vec<LineageEdge>>;

    fn cache_get<'a>(&'a self, key: &'a Digest) -> StoreFuture<'a, Option<CacheEntry>>;

    /// Keeps the first entry for a key (a second put is a no-op).
    fn cache_put<'a>(&'a self, entry: &'a CacheEntry) -> StoreFuture<'a, ()>;

    /// Records the decision on approval gate `decision.node` of
    /// `decision.execution`, with its audit entry, in one transaction, and
    /// tells this process's engine; `false`, writing nothing, when a
    /// decision was recorded before (the first stands). Whether the node
    /// is a gate waiting for one is the caller's to check.
    fn decide<'a>(&'a self, decision: &'a Decision) -> StoreFuture<'a, bool>;

    /// The decision on gate `node` of `execution`, if one was made.
    fn decision<'a>(
        &'a self,
        execution: &'a ExecutionId,
        node: &'a str,
    ) -> StoreFuture<'a, Option<Decision>>;
}

/// A decision on an approval gate (`weir approve`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub execution: ExecutionId,
    /// The gate's path.
    pub node: String,
    /// Approved; `false`: rejected.
    pub approved: bool,
    pub at: DateTime<Utc>,
    /// Who decided.
    pub by: String,
    pub comment: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::{BackfillGroup, RunOptions};

    /// Options are stored as the JSON earlier versions wrote (a key per
    /// option, `backfill` only when there is one), and read back whatever
    /// keys a later version adds.
    #[test]
    fn run_options_keep_their_stored_json() {
        let plain = RunOptions::default();
        assert_eq!(
            serde_json::to_string(&plain).expect("json"),
            r#"{"noCache":false}"#
        );
        let grouped = RunOptions {
            backfill: Some(BackfillGroup {
                id: "bf-1".into(),
                max_parallel: Some(2),
            }),
            no_cache: true,
            event: None,
        };
        let text = r#"{"backfill":{"id":"bf-1","maxParallel":2},"noCache":true}"#;
        assert_eq!(serde_json::to_string(&grouped).expect("json"), text);
        assert_eq!(
            serde_json::from_str::<RunOptions>(text).expect("read"),
            grouped
        );
        assert_eq!(
            serde_json::from_str::<RunOptions>(r#"{"noCache":true,"later":1}"#).expect("read"),
            RunOptions {
                no_cache: true,
                ..RunOptions::default()
            }
        );
    }
}
