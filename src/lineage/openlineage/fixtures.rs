//! What the OpenLineage tests share: one execution of `churn-training` in
//! project `acme`, its `train` node, and that node's states.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::engine::PlanNode;
use crate::spec::{CommitId, Digest, SourceKey, Trigger};
use crate::store::execution::{Execution, NodeState, NodeStatus, Status};

pub(super) const COMMIT: &str = "8c2d41e07a9b5f3c1d2e4f6a8b0c2d4e6f8a0b1c";
pub(super) const DATA: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub(super) const MODEL: &str =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";

pub(super) fn at() -> DateTime<Utc> {
    "2026-11-24T09:30:00Z".parse().unwrap()
}

pub(super) fn execution(source: &str) -> Execution {
    Execution {
        id: "churn-adhoc-3f9a1c2b7d4e".into(),
        project: "acme".into(),
        workflow: "churn-training".into(),
        workflow_version: Digest::from_hex("a".repeat(64)),
        launch_plan: None,
        launch_plan_version: None,
        source: SourceKey(source.into()),
        commit: CommitId(COMMIT.into()),
        trigger: Trigger::Manual,
        scheduled_at: None,
        inputs: json!({ "day": "2026-11-24" }),
        plan: json!({}).into(),
        options: Default::default(),
        status: Status::Running,
        outputs: None,
        error: None,
        created_at: at(),
        started_at: Some(at()),
        finished_at: None,
        cancel_requested: false,
    }
}

pub(super) fn plan_node(path: &str) -> PlanNode {
    serde_json::from_value(json!({
        "path": path,
        "task": "train",
        "taskVersion": "b".repeat(64),
        "spec": { "script": { "interpreter": "bash", "source": "true" } },
        "inputs": {},
        "deps": [],
    }))
    .unwrap()
}

pub(super) fn node_state(status: NodeStatus, attempts: u32, outputs: Option<Value>) -> NodeState {
    NodeState {
        execution: "churn-adhoc-3f9a1c2b7d4e".into(),
        node: "train".into(),
        task: "train".into(),
        task_version: Digest::from_hex("b".repeat(64)),
        status,
        attempts,
        inputs: Some(json!({ "data": DATA, "epochs": 3, "also": DATA })),
        outputs,
        error: None,
        cached_from: None,
        started_at: Some(at()),
        finished_at: None,
        next_attempt_at: None,
        handle: None,
    }
}

pub(super) const LOCAL: &str = "file:///srv/repos/churn model#main:pipelines/churn";
