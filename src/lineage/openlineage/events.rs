//! The OpenLineage RunEvents of a node's transitions, built purely: the
//! same node, state and instant give the same event, so an event sent
//! again after a restart says the same thing.
//!
//! What it decides: which event types a node event stands for
//! ([`EventType::of`]), the run ids (derived from execution and node, so
//! every event of a node names one run), and each event's job, facets and
//! datasets, named as the module docs say.
//!
//! It must not write, send or read anything: the emitter hands what it
//! builds to the sinks.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::artifact;
use crate::engine::{NodeEvent, PlanNode};
use crate::spec::{ExecutionId, SourceParts};
use crate::store::execution::{Execution, NodeState};

/// The `producer` of every event and `_producer` of every facet.
pub const PRODUCER: &str = concat!(
    "https://github.com/weir-dev/weir/tree/",
    env!("CARGO_PKG_VERSION")
);
/// The `schemaURL` of every event.
pub const RUN_EVENT_SCHEMA: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const SOURCE_CODE_LOCATION_SCHEMA: &str = "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet";
const PARENT_RUN_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet";
/// The namespace of artifact datasets.
pub const DATASET_NAMESPACE: &str = "weir";

/// The OpenLineage `eventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    Start,
    Running,
    Complete,
    Fail,
    Abort,
}

impl EventType {
    /// The OpenLineage transitions a node event stands for. `state` is the
    /// node after the event: its attempt count tells a retry (RUNNING, the
    /// run has started already) from a first attempt, and a cache hit (a
    /// success with no attempt, so no START sent yet) from a run.
    pub fn of(event: NodeEvent, state: &NodeState) -> &'static [EventType] {
        match event {
            NodeEvent::Started if state.attempts > 1 => &[EventType::Running],
            NodeEvent::Started => &[EventType::Start],
            NodeEvent::Succeeded if state.attempts == 0 => &[EventType::Start, EventType::Complete],
            NodeEvent::Succeeded => &[EventType::Complete],
            NodeEvent::Failed => &[EventType::Fail],
            NodeEvent::Aborted => &[EventType::Abort],
        }
    }
}

/// An OpenLineage run id: a UUID derived from what the run is, so events
/// sent at different times (or by different processes) agree on it. The
/// first 16 bytes of a sha256 with the version set to 8 and the RFC 9562
/// variant: RFC 9562 reserves version 5 for SHA-1 and shows SHA-256
/// name-based ids as version 8.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// The run of node `node` (its path) of execution `execution`.
    pub fn of_node(execution: &ExecutionId, node: &str) -> RunId {
        RunId::derive(&["node", execution.as_str(), node])
    }

    /// The run of a whole execution (the parent of its nodes' runs).
    pub fn of_execution(execution: &ExecutionId) -> RunId {
        RunId::derive(&["execution", execution.as_str()])
    }

    fn derive(parts: &[&str]) -> RunId {
        let mut hasher = Sha256::new();
        hasher.update(b"weir/openlineage/run");
        for part in parts {
            // Length-prefixed, so ("a/b", "c") and ("a", "b/c") differ.
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        let hash = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        RunId(format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One OpenLineage RunEvent, as sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    pub event_type: EventType,
    /// RFC 3339, UTC, milliseconds.
    pub event_time: String,
    pub producer: &'static str,
    #[serde(rename = "schemaURL")]
    pub schema_url: &'static str,
    pub run: Run,
    pub job: Job,
    pub inputs: Vec<Dataset>,
    pub outputs: Vec<Dataset>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub run_id: RunId,
    pub facets: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub namespace: String,
    pub name: String,
    pub facets: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dataset {
    pub namespace: String,
    pub name: String,
}

/// The event of `event_type` for node `node` of `execution`, in `state`,
/// at `at`. Pure: the same arguments give the same event.
pub fn run_event(
    event_type: EventType,
    execution: &Execution,
    node: &PlanNode,
    state: &NodeState,
    at: DateTime<Utc>,
) -> RunEvent {
    let namespace = format!("weir/{}", execution.project);
    let mut run_facets = Map::new();
    run_facets.insert(
        "parent".into(),
        json!({
            "_producer": PRODUCER,
            "_schemaURL": PARENT_RUN_SCHEMA,
            "run": { "runId": RunId::of_execution(&execution.id) },
            "job": { "namespace": namespace, "name": execution.workflow },
        }),
    );
    let mut job_facets = Map::new();
    if let Some(facet) = source_code_location(execution) {
        job_facets.insert("sourceCodeLocation".into(), facet);
    }
    let outputs = match event_type {
        EventType::Complete => datasets(state.outputs.as_ref()),
        _ => Vec::new(),
    };
    RunEvent {
        event_type,
        event_time: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        producer: PRODUCER,
        schema_url: RUN_EVENT_SCHEMA,
        run: Run {
            run_id: RunId::of_node(&execution.id, &node.path),
            facets: run_facets,
        },
        job: Job {
            name: format!("{}.{}", execution.workflow, node.path),
            namespace,
            facets: job_facets,
        },
        inputs: datasets(state.inputs.as_ref()),
        outputs,
    }
}

/// The artifacts among a node's inputs or outputs (name → value), each
/// once, in port order.
fn datasets(values: Option<&Value>) -> Vec<Dataset> {
    let mut out: Vec<Dataset> = Vec::new();
    let Some(Value::Object(map)) = values else {
        return out;
    };
    for value in map.values() {
        let Some(digest) = value.as_str().and_then(artifact::parse_reference) else {
            continue;
        };
        let name = artifact::reference(&digest);
        if !out.iter().any(|d| d.name == name) {
            out.push(Dataset {
                namespace: DATASET_NAMESPACE.into(),
                name,
            });
        }
    }
    out
}

/// The `sourceCodeLocation` facet of the execution's source, whose key is
/// `<repo>#<branch>:<path>` ([`SourceKey::parts`](crate::spec::SourceKey::parts)).
/// `None` for a key of another shape.
fn source_code_location(execution: &Execution) -> Option<Value> {
    let SourceParts { repo, branch, path } = execution.source.parts()?;
    let mut facet = json!({
        "_producer": PRODUCER,
        "_schemaURL": SOURCE_CODE_LOCATION_SCHEMA,
        "type": "git",
        "url": repo_uri(repo),
        "repoUrl": repo,
        "version": execution.commit.0,
        "branch": branch,
    });
    if !path.is_empty() {
        facet["path"] = Value::String(path.to_owned());
    }
    Some(facet)
}

/// A repository as a URI (the facet's `url` must be one): a `file://` path
/// percent-encoded, an scp-like `user@host:path` as `ssh://user@host/path`,
/// any other URL as it is.
fn repo_uri(repo: &str) -> String {
    if let Some(path) = repo.strip_prefix("file://") {
        let mut out = String::from("file://");
        for byte in path.bytes() {
            if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        return out;
    }
    if repo.contains("://") {
        return repo.to_owned();
    }
    match repo.split_once(':') {
        Some((host, path)) => format!("ssh://{host}/{}", path.trim_start_matches('/')),
        None => repo.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::Value;

    use super::super::fixtures::*;
    use super::*;
    use crate::spec::SourceKey;
    use crate::store::execution::NodeStatus;

    const OPENLINEAGE_ID: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";
    const FACET_ID: &str =
        "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json";

    fn event(event_type: EventType, state: &NodeState) -> Value {
        let event = run_event(
            event_type,
            &execution(LOCAL),
            &plan_node("train"),
            state,
            at(),
        );
        serde_json::to_value(event).unwrap()
    }

    fn schema(name: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/openlineage")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// A validator for `root`, with both OpenLineage schemas registered
    /// under their `$id`s and no network (`offline`), checking formats.
    fn validator(root: &Value) -> jsonschema::Validator {
        let registry = jsonschema::Registry::new()
            .add(OPENLINEAGE_ID, schema("OpenLineage.json"))
            .unwrap()
            .add(FACET_ID, schema("SourceCodeLocationJobFacet.json"))
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

    fn assert_valid(validator: &jsonschema::Validator, instance: &Value) {
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\n{instance:#}");
    }

    #[test]
    fn run_id_is_one_uuid_per_node_of_an_execution() {
        let id = RunId::of_node(&"exec-1".into(), "fit/train");
        assert_eq!(id, RunId::of_node(&"exec-1".into(), "fit/train"));
        assert_ne!(id, RunId::of_node(&"exec-1".into(), "fit/evaluate"));
        assert_ne!(id, RunId::of_node(&"exec-1/fit".into(), "train"));
        assert_ne!(id, RunId::of_execution(&"exec-1".into()));
        let text = id.as_str();
        let groups: Vec<usize> = text.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{text}");
        assert_eq!(&text[14..15], "8", "version 8: {text}");
        assert!("89ab".contains(&text[19..20]), "RFC 9562 variant: {text}");
    }

    #[test]
    fn a_node_is_one_run_through_retries_and_the_cache() {
        use EventType::*;
        let state = |attempts| node_state(NodeStatus::Running, attempts, None);
        assert_eq!(EventType::of(NodeEvent::Started, &state(1)), [Start]);
        assert_eq!(EventType::of(NodeEvent::Started, &state(2)), [Running]);
        assert_eq!(EventType::of(NodeEvent::Succeeded, &state(2)), [Complete]);
        assert_eq!(
            EventType::of(NodeEvent::Succeeded, &state(0)),
            [Start, Complete]
        );
        assert_eq!(EventType::of(NodeEvent::Failed, &state(3)), [Fail]);
        assert_eq!(EventType::of(NodeEvent::Aborted, &state(1)), [Abort]);
    }

    #[test]
    fn every_event_type_validates_against_the_openlineage_schema() {
        let validator = validator(&schema("OpenLineage.json"));
        let running = node_state(NodeStatus::Running, 1, None);
        let succeeded = node_state(
            NodeStatus::Succeeded,
            1,
            Some(json!({ "model": MODEL, "accuracy": 0.93 })),
        );
        let failed = node_state(NodeStatus::Failed, 3, None);
        let cancelled = node_state(NodeStatus::Cancelled, 1, None);
        let events = [
            event(EventType::Start, &running),
            event(EventType::Running, &running),
            event(EventType::Complete, &succeeded),
            event(EventType::Fail, &failed),
            event(EventType::Abort, &cancelled),
        ];
        for event in &events {
            assert_valid(&validator, event);
        }
        let types: Vec<&str> = events
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["START", "RUNNING", "COMPLETE", "FAIL", "ABORT"]);

        let complete = &events[2];
        assert_eq!(complete["job"]["namespace"], "weir/acme");
        assert_eq!(complete["job"]["name"], "churn-training.train");
        assert_eq!(
            complete["inputs"],
            json!([{ "namespace": "weir", "name": DATA }])
        );
        assert_eq!(
            complete["outputs"],
            json!([{ "namespace": "weir", "name": MODEL }])
        );
        assert_eq!(
            complete["run"]["facets"]["parent"]["run"]["runId"],
            RunId::of_execution(&"churn-adhoc-3f9a1c2b7d4e".into()).as_str()
        );
        assert_eq!(complete["eventTime"], "2026-11-24T09:30:00.000Z");
        let run_ids: Vec<&Value> = events.iter().map(|e| &e["run"]["runId"]).collect();
        assert!(
            run_ids.iter().all(|id| *id == run_ids[0]),
            "one run: {run_ids:?}"
        );
        assert_eq!(events[0]["outputs"], json!([]), "outputs only on COMPLETE");

        // The validator is not vacuous: facets need `_producer`, and
        // formats (uuid, uri, date-time) are checked.
        for (pointer, wrong) in [
            ("/run/facets/parent/_producer", Value::Null),
            ("/run/runId", json!("not-a-uuid")),
            ("/producer", json!("not a uri")),
            ("/eventTime", json!("yesterday")),
            ("/eventType", json!("DONE")),
        ] {
            let mut broken = complete.clone();
            *broken.pointer_mut(pointer).unwrap() = wrong;
            if pointer.ends_with("_producer") {
                let parent = broken.pointer_mut("/run/facets/parent").unwrap();
                parent.as_object_mut().unwrap().remove("_producer");
            }
            assert!(!validator.is_valid(&broken), "{pointer} should be rejected");
        }
    }

    #[test]
    fn source_code_location_validates_against_its_facet_schema() {
        let validator = validator(&schema("SourceCodeLocationJobFacet.json"));
        let cases = [
            (
                LOCAL,
                "file:///srv/repos/churn%20model",
                Some("pipelines/churn"),
            ),
            (
                "https://github.com/acme/ml.git#release/1.x:",
                "https://github.com/acme/ml.git",
                None,
            ),
            (
                "git@github.com:acme/ml.git#main:flows",
                "ssh://git@github.com/acme/ml.git",
                Some("flows"),
            ),
        ];
        for (key, url, path) in cases {
            let facet = source_code_location(&execution(key)).unwrap();
            assert_valid(&validator, &json!({ "sourceCodeLocation": facet }));
            assert_eq!(facet["type"], "git");
            assert_eq!(facet["url"], url);
            assert_eq!(
                facet["repoUrl"],
                SourceKey(key.into()).parts().unwrap().repo
            );
            assert_eq!(facet["version"], COMMIT);
            assert_eq!(facet["path"].as_str(), path);
        }
        let facet = source_code_location(&execution(LOCAL)).unwrap();
        assert_eq!(facet["branch"], "main");
        assert_eq!(source_code_location(&execution("no-branch")), None);
    }
}
