//! An execution and its nodes: `weir executions [ID] -o json`, `weir run
//! -o json`, `GET /api/v1/executions[/{id}]` and `POST /api/v1/runs`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{QueryError, instant, present, to_millis};
use crate::engine::plan::{APPROVE, Plan};
use crate::spec::{CommitId, ExecutionId, SourceKey, Trigger};
use crate::store::execution::{Execution, ExecutionFilter, NodeState, NodeStatus, Status};
use crate::store::{self, Delivery, DeliveryStatus, Store};

/// How many executions a list shows when the query does not say.
pub const DEFAULT_LIMIT: u32 = 100;

/// One execution; `nodes` is empty in lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    pub id: ExecutionId,
    pub status: Status,
    pub project: String,
    pub workflow: String,
    /// 12 hex, as versions are shown.
    pub workflow_version: String,
    pub launch_plan: Option<String>,
    pub launch_plan_version: Option<String>,
    pub source: SourceKey,
    pub commit: CommitId,
    pub trigger: Trigger,
    /// The event a launch plan's trigger ran it for (its trigger, its
    /// identity, what is shown of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<crate::store::trigger::EventRef>,
    #[serde(serialize_with = "instant::millis_opt")]
    pub scheduled_at: Option<DateTime<Utc>>,
    pub inputs: Value,
    pub outputs: Option<Value>,
    pub error: Option<String>,
    #[serde(serialize_with = "instant::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "instant::millis_opt")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "instant::millis_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    pub nodes: Vec<NodeView>,
    /// How many nodes it has, when `nodes` is a page of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_total: Option<u64>,
    /// The `after` of the next page of its nodes, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_next: Option<String>,
    /// Its notifications and every attempt at them (one execution only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<DeliveryView>,
}

/// One notification of an execution's end, with every attempt at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    pub event: Status,
    pub rule: u32,
    pub target: String,
    pub destination: String,
    pub status: DeliveryStatus,
    pub attempts: Vec<AttemptView>,
    #[serde(serialize_with = "instant::millis_opt")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "instant::millis_opt")]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One try at sending a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    #[serde(serialize_with = "instant::millis")]
    pub at: DateTime<Utc>,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub millis: u64,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> DeliveryView {
        DeliveryView {
            id: d.id.clone(),
            event: d.event,
            rule: d.rule,
            target: d.target.clone(),
            destination: d.destination.clone(),
            status: d.status,
            attempts: d
                .attempts
                .iter()
                .map(|a| AttemptView {
                    at: to_millis(a.at),
                    http_status: a.http_status,
                    error: a.error.clone(),
                    millis: a.millis,
                })
                .collect(),
            next_attempt_at: d.next_attempt_at.map(to_millis),
            delivered_at: d.delivered_at.map(to_millis),
        }
    }
}

/// One node of an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// The node's path: `train`, or `fit/train` inside sub-workflow `fit`.
    pub id: String,
    pub task: String,
    /// 12 hex.
    pub task_version: String,
    pub status: NodeStatus,
    pub attempts: u32,
    pub cached: bool,
    /// The execution whose cached result it reused.
    pub cached_from: Option<ExecutionId>,
    pub inputs: Option<Value>,
    pub outputs: Option<Value>,
    pub error: Option<String>,
    #[serde(serialize_with = "instant::millis_opt")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "instant::millis_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    /// An approval gate's question (`approve.prompt`); decide it with
    /// `weir approve` while the node is `waiting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

impl ExecutionView {
    /// `e` with `nodes` (none for a list).
    pub fn new(e: &Execution, nodes: &[NodeState]) -> ExecutionView {
        ExecutionView {
            id: e.id.clone(),
            status: e.status,
            project: e.project.clone(),
            workflow: e.workflow.clone(),
            workflow_version: e.workflow_version.short().to_owned(),
            launch_plan: e.launch_plan.clone(),
            launch_plan_version: e.launch_plan_version.as_ref().map(|d| d.short().to_owned()),
            source: e.source.clone(),
            commit: e.commit.clone(),
            trigger: e.trigger,
            event: e.options.event.clone(),
            scheduled_at: e.scheduled_at.map(to_millis),
            inputs: e.inputs.clone(),
            outputs: present(&e.outputs),
            error: e.error.clone(),
            created_at: to_millis(e.created_at),
            started_at: e.started_at.map(to_millis),
            finished_at: e.finished_at.map(to_millis),
            nodes: with_prompts(e, nodes),
            nodes_total: None,
            nodes_next: None,
            deliveries: Vec::new(),
        }
    }
}

/// The nodes' views, each approval gate with its prompt from the plan
/// (read only when the execution has a gate).
fn with_prompts(e: &Execution, nodes: &[NodeState]) -> Vec<NodeView> {
    let mut views: Vec<NodeView> = nodes.iter().map(NodeView::from).collect();
    if !nodes.iter().any(|n| n.task == APPROVE) {
        return views;
    }
    let Ok(plan) = Plan::deserialize(e.plan.as_ref()) else {
        return views;
    };
    for view in views.iter_mut().filter(|v| v.task == APPROVE) {
        view.prompt = plan
            .nodes
            .iter()
            .find(|n| n.path == view.id)
            .and_then(|n| n.gate())
            .map(|g| g.prompt);
    }
    views
}

impl From<&NodeState> for NodeView {
    fn from(n: &NodeState) -> NodeView {
        NodeView {
            id: n.node.clone(),
            task: n.task.clone(),
            task_version: n.task_version.short().to_owned(),
            status: n.status,
            attempts: n.attempts,
            cached: n.cached_from.is_some(),
            cached_from: n.cached_from.clone(),
            inputs: present(&n.inputs),
            outputs: present(&n.outputs),
            error: n.error.clone(),
            started_at: n.started_at.map(to_millis),
            finished_at: n.finished_at.map(to_millis),
            prompt: None,
        }
    }
}

/// What to run: the body of `POST /api/v1/runs`, which `weir run
/// --server` sends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunBody {
    /// A launch plan's or a workflow's name (launch plans first).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Inputs by name: values, or strings parsed by the input's type.
    #[serde(default)]
    pub inputs: std::collections::BTreeMap<String, Value>,
    #[serde(default)]
    pub no_cache: bool,
}

/// Which executions: `weir executions --launch-plan --workflow --status
/// --limit`, or the same names (camelCase) as query parameters of `GET
/// /api/v1/executions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` or `timedOut`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `manual`, `schedule`, `backfill`, `preview`, `api`, `artifact`,
    /// `upstream` or `webhook`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// Only executions older than this one (an execution's id): the next
    /// page of a list whose last row it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<ExecutionId>,
    /// At most this many, newest first ([`DEFAULT_LIMIT`] when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl ExecutionQuery {
    /// The store's filter; an unknown status is refused.
    pub fn filter(&self) -> Result<ExecutionFilter, QueryError> {
        let status = match self.status.as_deref() {
            None => None,
            Some(text) => Some(Status::parse(text).ok_or_else(|| {
                QueryError(format!(
                    "unknown status `{text}` (one of: {})",
                    Status::ALL.map(Status::as_str).join(", ")
                ))
            })?),
        };
        let trigger = match self.trigger.as_deref() {
            None => None,
            Some(text) => Some(Trigger::parse(text).ok_or_else(|| {
                QueryError(format!(
                    "unknown trigger `{text}` (one of: {})",
                    Trigger::ALL.map(Trigger::as_str).join(", ")
                ))
            })?),
        };
        Ok(ExecutionFilter {
            project: None,
            launch_plan: self.launch_plan.clone(),
            workflow: self.workflow.clone(),
            status,
            trigger,
            before: None,
            limit: Some(self.limit.unwrap_or(DEFAULT_LIMIT)),
        })
    }
}

/// The executions `query` selects, newest first, without their nodes; a
/// `before` that names no execution is refused.
pub async fn executions(
    store: &dyn Store,
    query: &ExecutionQuery,
) -> Result<Vec<ExecutionView>, PageError> {
    let mut filter = query.filter()?;
    if let Some(before) = &query.before {
        let Some(last) = store.execution(before).await? else {
            return Err(PageError::Query(QueryError(format!(
                "`before`: no execution `{before}`"
            ))));
        };
        filter.before = Some((last.created_at, last.id));
    }
    Ok(store
        .executions(&filter)
        .await?
        .iter()
        .map(|e| ExecutionView::new(e, &[]))
        .collect())
}

/// How many nodes a page of an execution's shows when the query does not
/// say, and the most it may ask for.
pub const NODES_PER_PAGE: u32 = 1_000;
pub const MAX_NODES_PER_PAGE: u32 = 10_000;

/// Which of an execution's nodes: `weir executions ID --nodes N --after
/// PATH`, or the query parameters `nodes` and `after` of `GET
/// /api/v1/executions/{id}`. A big execution (a map of 10,000 items) is
/// read a page at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePage {
    /// At most this many nodes ([`NODES_PER_PAGE`] when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u32>,
    /// The nodes after this one (a node's path), in plan order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// One execution with a page of its nodes (`nodesTotal`, and `nodesNext`
/// when more follow); `None` when the store has no such id. A page size
/// out of range or an `after` that names no node of it is refused.
pub async fn execution_page(
    store: &dyn Store,
    id: &ExecutionId,
    page: &NodePage,
) -> Result<Option<ExecutionView>, PageError> {
    let limit = page.nodes.unwrap_or(NODES_PER_PAGE);
    if limit == 0 || limit > MAX_NODES_PER_PAGE {
        return Err(PageError::Query(QueryError(format!(
            "`nodes` must be 1 to {MAX_NODES_PER_PAGE}, not {limit}"
        ))));
    }
    let Some(execution) = store.execution(id).await? else {
        return Ok(None);
    };
    // One more than asked says whether a page follows.
    let mut read = store
        .nodes_page(id, page.after.as_deref(), limit + 1)
        .await?;
    if !read.after_found {
        return Err(PageError::Query(QueryError(format!(
            "`after`: execution `{id}` has no node `{}`",
            page.after.as_deref().unwrap_or_default()
        ))));
    }
    let more = read.nodes.len() > limit as usize;
    read.nodes.truncate(limit as usize);
    let mut view = ExecutionView::new(&execution, &read.nodes);
    if more || page.after.is_some() {
        view.nodes_total = Some(read.total);
    }
    if more {
        view.nodes_next = read.nodes.last().map(|n| n.node.clone());
    }
    view.deliveries = deliveries(store, id).await?;
    Ok(Some(view))
}

/// An execution's notifications, each with every attempt at it.
async fn deliveries(
    store: &dyn Store,
    id: &ExecutionId,
) -> Result<Vec<DeliveryView>, store::Error> {
    let deliveries = store.deliveries(id).await?;
    Ok(deliveries.iter().map(DeliveryView::from).collect())
}

/// Why a page of an execution's nodes cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// One execution with its nodes; `None` when the store has no such id.
pub async fn execution(
    store: &dyn Store,
    id: &ExecutionId,
) -> Result<Option<ExecutionView>, store::Error> {
    let Some(execution) = store.execution(id).await? else {
        return Ok(None);
    };
    let nodes = store.nodes(id).await?;
    let mut view = ExecutionView::new(&execution, &nodes);
    view.deliveries = deliveries(store, id).await?;
    Ok(Some(view))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::Digest;
    use crate::views::{precise_instant, round_trip, to_json};

    fn execution() -> Execution {
        Execution {
            id: "nightly-0123456789ab".into(),
            project: "churn".into(),
            workflow: "training".into(),
            workflow_version: Digest::from_hex("a".repeat(64)),
            launch_plan: Some("nightly".into()),
            launch_plan_version: Some(Digest::from_hex("b".repeat(64))),
            source: SourceKey("/srv/repo#main:".into()),
            commit: CommitId("c".repeat(40)),
            trigger: Trigger::Schedule,
            scheduled_at: Some(precise_instant()),
            inputs: json!({ "day": "2026-03-29", "sample": 0.25 }),
            plan: json!({}).into(),
            options: Default::default(),
            status: Status::Succeeded,
            outputs: Some(Value::Null),
            error: None,
            created_at: precise_instant(),
            started_at: Some(precise_instant()),
            finished_at: None,
            cancel_requested: false,
        }
    }

    fn node() -> NodeState {
        NodeState {
            execution: "nightly-0123456789ab".into(),
            node: "fit/train".into(),
            task: "train".into(),
            task_version: Digest::from_hex("d".repeat(64)),
            status: NodeStatus::Succeeded,
            attempts: 2,
            inputs: Some(json!({ "features": format!("sha256:{}", "e".repeat(64)) })),
            outputs: Some(json!({ "auc": 0.91 })),
            error: None,
            cached_from: Some("nightly-ba9876543210".into()),
            started_at: Some(precise_instant()),
            finished_at: Some(precise_instant()),
            next_attempt_at: None,
            handle: Some(json!({ "pgid": 42 })),
        }
    }

    #[test]
    fn an_execution_with_its_nodes_reads_back_as_written() {
        let view = ExecutionView::new(&execution(), &[node()]);
        assert_eq!(round_trip(&view), view);
        let json = to_json(&view);
        assert_eq!(json["createdAt"], "2026-03-29T00:30:05.123Z");
        assert_eq!(json["workflowVersion"], "aaaaaaaaaaaa");
        assert_eq!(json["outputs"], Value::Null);
        assert_eq!(json["nodes"][0]["cached"], true);
        assert_eq!(json["nodes"][0]["taskVersion"], "dddddddddddd");
        assert!(json["nodes"][0].get("handle").is_none(), "engine-owned");
    }

    #[test]
    fn deliveries_read_back_as_written_with_times_in_milliseconds() {
        let delivery = Delivery {
            id: Delivery::id_of(&"nightly-0123456789ab".into(), Status::Failed, 0),
            execution: "nightly-0123456789ab".into(),
            event: Status::Failed,
            rule: 0,
            target: "webhook".into(),
            destination: "https://hooks.example.com/alerts".into(),
            status: DeliveryStatus::Delivered,
            attempts: vec![crate::store::DeliveryAttempt {
                at: precise_instant(),
                http_status: Some(200),
                error: None,
                millis: 12,
            }],
            next_attempt_at: None,
            created_at: precise_instant(),
            delivered_at: Some(precise_instant()),
        };
        let mut view = ExecutionView::new(&execution(), &[node()]);
        view.deliveries = vec![DeliveryView::from(&delivery)];
        assert_eq!(round_trip(&view), view);
        let json = to_json(&view);
        let at = json["deliveries"][0]["attempts"][0]["at"]
            .as_str()
            .expect("at");
        assert_eq!(at.len(), "2026-03-29T00:30:05.123Z".len(), "{at}");
        assert_eq!(json["deliveries"][0]["status"], "delivered");
    }

    #[test]
    fn statuses_are_checked_and_the_limit_has_a_default() {
        let filter = ExecutionQuery::default().filter().expect("valid");
        assert_eq!(filter.limit, Some(DEFAULT_LIMIT));
        let query = ExecutionQuery {
            status: Some("done".into()),
            ..ExecutionQuery::default()
        };
        assert!(
            query
                .filter()
                .is_err_and(|e| e.0.starts_with("unknown status `done` (one of: queued,"))
        );
    }
}
