//! The OpenLineage RunEvents of an execution's and its nodes'
//! transitions, built purely: the same execution, node, state and instant
//! give the same event, so an event sent again after a restart says the
//! same thing.
//!
//! What it decides: which event types a node event or an execution's end
//! stands for ([`EventType::of`], [`EventType::of_execution`]), the run ids
//! (derived from execution and node, so every event of an execution or a
//! node names one run), and each event's job, datasets and which facets
//! it carries (built in `facets.rs`), named as the module docs say.
//!
//! It must not write, send or read anything: the emitter hands what it
//! builds to the sinks.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::facets;
use crate::artifact;
use crate::engine::{NodeEvent, PlanNode};
use crate::spec::ExecutionId;
use crate::store::execution::{Execution, NodeState, Status};

/// The `producer` of every event and `_producer` of every facet.
pub const PRODUCER: &str = concat!(
    "https://github.com/weir-dev/weir/tree/",
    env!("CARGO_PKG_VERSION")
);
/// The `schemaURL` of every event.
pub const RUN_EVENT_SCHEMA: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
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
    /// success with no attempt, so no START sent yet) or a node that failed
    /// before any attempt (an input that cannot be bound) from a run.
    pub fn of(event: NodeEvent, state: &NodeState) -> &'static [EventType] {
        match event {
            NodeEvent::Started if state.attempts > 1 => &[EventType::Running],
            NodeEvent::Started => &[EventType::Start],
            NodeEvent::Succeeded if state.attempts == 0 => &[EventType::Start, EventType::Complete],
            NodeEvent::Succeeded => &[EventType::Complete],
            NodeEvent::Failed if state.attempts == 0 => &[EventType::Start, EventType::Fail],
            NodeEvent::Failed => &[EventType::Fail],
            NodeEvent::Aborted => &[EventType::Abort],
        }
    }

    /// The OpenLineage end of an execution run in `status`: COMPLETE when
    /// it succeeded, FAIL when it failed or timed out, ABORT when it was
    /// cancelled; `None` while it has not ended.
    pub fn of_execution(status: Status) -> Option<EventType> {
        match status {
            Status::Succeeded => Some(EventType::Complete),
            Status::Failed | Status::TimedOut => Some(EventType::Fail),
            Status::Cancelled => Some(EventType::Abort),
            Status::Queued | Status::Running => None,
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
///
/// Its run's facets: `parent` (the execution's run) always; on FAIL,
/// `errorMessage` with the node's recorded error in its task's language
/// ([`task_language`](facets::task_language)); for a node served from the
/// cache, `weir_cache` naming the execution it was served from.
pub fn run_event(
    event_type: EventType,
    execution: &Execution,
    node: &PlanNode,
    state: &NodeState,
    at: DateTime<Utc>,
) -> RunEvent {
    let namespace = namespace(execution);
    let mut run_facets = Map::new();
    run_facets.insert(
        "parent".into(),
        facets::parent(execution, &namespace, &state.node),
    );
    if event_type == EventType::Fail {
        let message = state
            .error
            .clone()
            .unwrap_or_else(|| format!("node `{}` {}", node.path, state.status));
        let language = facets::task_language(node);
        run_facets.insert(
            "errorMessage".into(),
            facets::error_message(&message, &language),
        );
    }
    if let Some(from) = &state.cached_from {
        run_facets.insert("weir_cache".into(), facets::weir_cache(from));
    }
    let outputs = match event_type {
        EventType::Complete => datasets(state.outputs.as_ref()),
        _ => Vec::new(),
    };
    RunEvent {
        event_type,
        event_time: timestamp(at),
        producer: PRODUCER,
        schema_url: RUN_EVENT_SCHEMA,
        run: Run {
            // Each item of a map node is a run of its own (of the same job).
            run_id: RunId::of_node(&execution.id, &state.node),
            facets: run_facets,
        },
        job: Job {
            // Every item's runs are of the same jobs (`fit/train` for
            // `fit[3]/train`).
            name: format!(
                "{}.{}",
                execution.workflow,
                crate::engine::plan::job_path(&node.path)
            ),
            namespace,
            facets: job_facets(execution),
        },
        inputs: datasets(state.inputs.as_ref()),
        outputs,
    }
}

/// The event of `event_type` for `execution` itself, at `at`: the run
/// (id [`RunId::of_execution`]) that is the parent of its nodes' runs, of
/// job `<workflow>`. Pure: the same arguments give the same event.
///
/// Its run's facets: `weir_execution` (what started it, the versions it
/// runs); `nominalTime` when it runs at a scheduled or backfilled instant;
/// on FAIL, `errorMessage` with the execution's recorded error (which node
/// failed, and how) in [`WORKFLOW_LANGUAGE`](facets::WORKFLOW_LANGUAGE).
/// Its datasets are the workflow's artifact inputs, and on COMPLETE its
/// artifact outputs.
pub fn execution_event(
    event_type: EventType,
    execution: &Execution,
    at: DateTime<Utc>,
) -> RunEvent {
    let mut run_facets = Map::new();
    run_facets.insert("weir_execution".into(), facets::weir_execution(execution));
    if let Some(scheduled_at) = execution.scheduled_at {
        run_facets.insert("nominalTime".into(), facets::nominal_time(scheduled_at));
    }
    if event_type == EventType::Fail {
        let message = execution
            .error
            .clone()
            .unwrap_or_else(|| format!("execution {}", execution.status));
        run_facets.insert(
            "errorMessage".into(),
            facets::error_message(&message, facets::WORKFLOW_LANGUAGE),
        );
    }
    let outputs = match event_type {
        EventType::Complete => datasets(execution.outputs.as_ref()),
        _ => Vec::new(),
    };
    RunEvent {
        event_type,
        event_time: timestamp(at),
        producer: PRODUCER,
        schema_url: RUN_EVENT_SCHEMA,
        run: Run {
            run_id: RunId::of_execution(&execution.id),
            facets: run_facets,
        },
        job: Job {
            namespace: namespace(execution),
            name: execution.workflow.clone(),
            facets: job_facets(execution),
        },
        inputs: datasets(Some(&execution.inputs)),
        outputs,
    }
}

/// The job namespace of an execution's runs: `weir/<project>`.
fn namespace(execution: &Execution) -> String {
    format!("weir/{}", execution.project)
}

/// The job facets of an execution's and its nodes' runs: where their code
/// is.
fn job_facets(execution: &Execution) -> Map<String, Value> {
    let mut job_facets = Map::new();
    if let Some(facet) = facets::source_code_location(execution) {
        job_facets.insert("sourceCodeLocation".into(), facet);
    }
    job_facets
}

/// An `eventTime`: RFC 3339, UTC, milliseconds.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The artifacts among a node's or a workflow's inputs or outputs (name
/// → value), each once, in port order.
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::fixtures::*;
    use super::*;
    use crate::store::execution::NodeStatus;

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

    fn execution_in(status: Status, error: Option<&str>) -> Execution {
        let mut execution = execution(LOCAL);
        execution.status = status;
        execution.error = error.map(str::to_owned);
        execution.launch_plan = Some("nightly".into());
        execution.trigger = crate::spec::Trigger::Schedule;
        execution.scheduled_at = Some("2026-11-24T09:00:00Z".parse().unwrap());
        execution.inputs = json!({ "day": "2026-11-24", "data": DATA });
        execution.outputs = status_outputs(status);
        execution
    }

    fn status_outputs(status: Status) -> Option<Value> {
        (status == Status::Succeeded).then(|| json!({ "model": MODEL, "accuracy": 0.93 }))
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
        assert_eq!(
            EventType::of(NodeEvent::Failed, &state(0)),
            [Start, Fail],
            "failed before any attempt: its run still starts"
        );
        assert_eq!(EventType::of(NodeEvent::Aborted, &state(1)), [Abort]);
    }

    #[test]
    fn an_execution_ends_as_complete_fail_or_abort() {
        use EventType::*;
        let ends: Vec<(Status, Option<EventType>)> = Status::ALL
            .into_iter()
            .map(|s| (s, EventType::of_execution(s)))
            .collect();
        assert_eq!(
            ends,
            [
                (Status::Queued, None),
                (Status::Running, None),
                (Status::Succeeded, Some(Complete)),
                (Status::Failed, Some(Fail)),
                (Status::Cancelled, Some(Abort)),
                (Status::TimedOut, Some(Fail)),
            ]
        );
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
        let mut failed = node_state(NodeStatus::Failed, 3, None);
        failed.error = Some("exit status 1: ValueError: no rows".into());
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

        // FAIL alone says why, in the task's language (its interpreter).
        let error = &events[3]["run"]["facets"]["errorMessage"];
        assert_eq!(error["message"], "exit status 1: ValueError: no rows");
        assert_eq!(error["programmingLanguage"], "bash");
        for (i, event) in events.iter().enumerate().filter(|(i, _)| *i != 3) {
            assert!(event["run"]["facets"].get("errorMessage").is_none(), "{i}");
        }
        // A FAIL with no recorded error still says what failed.
        let silent = event(EventType::Fail, &node_state(NodeStatus::TimedOut, 1, None));
        assert_eq!(
            silent["run"]["facets"]["errorMessage"]["message"],
            "node `train` timedOut"
        );

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
        let mut broken = events[3].clone();
        let facet = broken.pointer_mut("/run/facets/errorMessage").unwrap();
        facet.as_object_mut().unwrap().remove("_schemaURL");
        assert!(!validator.is_valid(&broken), "a facet needs its _schemaURL");
    }

    /// A node served from the cache is START and COMPLETE together, each
    /// saying (`weir_cache`) which execution it was served from.
    #[test]
    fn a_cached_node_says_where_it_was_served_from() {
        let validator = validator(&schema("OpenLineage.json"));
        let mut cached = node_state(NodeStatus::Succeeded, 0, Some(json!({ "model": MODEL })));
        cached.cached_from = Some("churn-adhoc-000000000001".into());
        let types = EventType::of(NodeEvent::Succeeded, &cached);
        for &event_type in types {
            let event = event(event_type, &cached);
            assert_valid(&validator, &event);
            let facet = &event["run"]["facets"]["weir_cache"];
            assert_eq!(facet["cachedFrom"], "churn-adhoc-000000000001", "{event:#}");
            assert_eq!(
                facet["cachedFromRunId"],
                RunId::of_execution(&"churn-adhoc-000000000001".into()).as_str()
            );
        }
        let ran = event(
            EventType::Complete,
            &node_state(NodeStatus::Succeeded, 1, None),
        );
        assert!(ran["run"]["facets"].get("weir_cache").is_none());
    }

    /// The execution is a run of its own, job `<workflow>`: the run its
    /// nodes' `parent` facets name, with the nominal time it was scheduled
    /// for and weir's account of what started it.
    #[test]
    fn an_execution_is_the_parent_run_of_its_nodes() {
        let validator = validator(&schema("OpenLineage.json"));
        let events: Vec<Value> = [
            (EventType::Start, Status::Running, None),
            (EventType::Complete, Status::Succeeded, None),
            (
                EventType::Fail,
                Status::Failed,
                Some("node `train` failed: exit status 1"),
            ),
            (
                EventType::Abort,
                Status::Cancelled,
                Some("cancelled on request"),
            ),
        ]
        .into_iter()
        .map(|(event_type, status, error)| {
            let event = execution_event(event_type, &execution_in(status, error), at());
            serde_json::to_value(event).unwrap()
        })
        .collect();
        for event in &events {
            assert_valid(&validator, event);
            assert_eq!(event["job"]["namespace"], "weir/acme");
            assert_eq!(event["job"]["name"], "churn-training");
            assert_eq!(event["eventTime"], "2026-11-24T09:30:00.000Z");
            assert_eq!(
                event["job"]["facets"]["sourceCodeLocation"]["version"],
                COMMIT
            );
            let facets = &event["run"]["facets"];
            assert!(facets.get("parent").is_none(), "an execution has no parent");
            assert_eq!(
                facets["nominalTime"]["nominalStartTime"],
                "2026-11-24T09:00:00.000Z"
            );
            assert_eq!(facets["weir_execution"]["trigger"], "schedule");
            assert_eq!(facets["weir_execution"]["launchPlan"], "nightly");
            assert_eq!(
                event["inputs"],
                json!([{ "namespace": "weir", "name": DATA }])
            );
        }
        let node = event(EventType::Start, &node_state(NodeStatus::Running, 1, None));
        let parent = &node["run"]["facets"]["parent"];
        assert_eq!(parent["run"]["runId"], events[0]["run"]["runId"]);
        assert_eq!(
            parent["job"],
            json!({ "namespace": "weir/acme", "name": "churn-training" })
        );
        assert!(parent.get("root").is_none(), "{parent:#}");

        // An item of map node `train` is a run of its own, whose parent is
        // the map node's run and whose root is the execution's.
        let mut item = node_state(NodeStatus::Running, 1, None);
        item.node = "train[3]".into();
        let item = event(EventType::Start, &item);
        assert_valid(&validator, &item);
        assert_ne!(item["run"]["runId"], node["run"]["runId"]);
        assert_eq!(item["job"]["name"], "churn-training.train");
        let parent = &item["run"]["facets"]["parent"];
        assert_eq!(parent["run"]["runId"], node["run"]["runId"]);
        assert_eq!(parent["job"]["name"], "churn-training.train");
        assert_eq!(parent["root"]["run"]["runId"], events[0]["run"]["runId"]);

        // A node of item 3 of a map over a sub-workflow (`fit[3]/train`):
        // a run of job `fit/train` (every item's), whose parent is the
        // item's run and whose root is the execution's.
        let mut member = node_state(NodeStatus::Running, 1, None);
        member.node = "fit[3]/train".into();
        let member = run_event(
            EventType::Start,
            &execution(LOCAL),
            &plan_node("fit[3]/train"),
            &member,
            at(),
        );
        let member = serde_json::to_value(member).unwrap();
        assert_valid(&validator, &member);
        assert_eq!(member["job"]["name"], "churn-training.fit/train");
        let mut fit3 = node_state(NodeStatus::Running, 0, None);
        fit3.node = "fit[3]".into();
        let fit3 = serde_json::to_value(run_event(
            EventType::Start,
            &execution(LOCAL),
            &plan_node("fit"),
            &fit3,
            at(),
        ))
        .unwrap();
        let parent = &member["run"]["facets"]["parent"];
        assert_eq!(parent["run"]["runId"], fit3["run"]["runId"]);
        assert_eq!(parent["job"]["name"], "churn-training.fit");
        assert_eq!(parent["root"]["run"]["runId"], events[0]["run"]["runId"]);

        let types: Vec<&str> = events
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["START", "COMPLETE", "FAIL", "ABORT"]);
        assert_eq!(
            events[1]["outputs"],
            json!([{ "namespace": "weir", "name": MODEL }])
        );
        assert_eq!(events[0]["outputs"], json!([]));
        let error = &events[2]["run"]["facets"]["errorMessage"];
        assert_eq!(error["message"], "node `train` failed: exit status 1");
        assert_eq!(error["programmingLanguage"], "weir");
        for i in [0, 1, 3] {
            assert!(events[i]["run"]["facets"].get("errorMessage").is_none());
        }

        // Run by hand: no nominal time.
        let manual = execution_event(EventType::Start, &execution(LOCAL), at());
        let manual = serde_json::to_value(manual).unwrap();
        assert_valid(&validator, &manual);
        assert!(manual["run"]["facets"].get("nominalTime").is_none());
        assert_eq!(
            manual["run"]["facets"]["weir_execution"]["trigger"],
            "manual"
        );
    }
}
