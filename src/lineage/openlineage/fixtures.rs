//! What the OpenLineage tests share: one execution of `churn-training` in
//! project `acme`, its `train` node, and that node's states; and
//! validators of the OpenLineage schemas (`tests/fixtures/openlineage/`)
//! and of weir's own facets (`schema/openlineage/`).

use std::path::Path;

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

const OPENLINEAGE_ID: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";
const SOURCE_CODE_LOCATION_ID: &str =
    "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json";

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// An official OpenLineage schema, from `tests/fixtures/openlineage/`.
pub(super) fn schema(name: &str) -> Value {
    read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/openlineage")
            .join(name),
    )
}

/// One of weir's own facet schemas, from `schema/openlineage/`.
pub(super) fn weir_schema(file: &str) -> Value {
    read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("schema/openlineage")
            .join(file),
    )
}

/// A validator for `root`, with the official schemas registered under
/// their `$id`s and no network (`offline`), checking formats.
pub(super) fn validator(root: &Value) -> jsonschema::Validator {
    let registry = jsonschema::Registry::new()
        .add(OPENLINEAGE_ID, schema("OpenLineage.json"))
        .unwrap()
        .add(
            SOURCE_CODE_LOCATION_ID,
            schema("SourceCodeLocationJobFacet.json"),
        )
        .unwrap()
        .prepare()
        .unwrap();
    jsonschema::options()
        .offline()
        .with_registry(&registry)
        .should_validate_formats(true)
        .build(root)
        .unwrap()
}

#[track_caller]
pub(super) fn assert_valid(validator: &jsonschema::Validator, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{instance:#}");
}
