//! OpenLineage RunEvents (spec 2-0-2) for node executions (DESIGN.md
//! section 8), appended to a JSON-lines file and/or POSTed to an HTTP
//! endpoint such as Marquez's `POST <base>/api/v1/lineage`.
//!
//! Why: lineage tools (Marquez, DataHub, OpenMetadata, …) read OpenLineage.
//! Emitting it lets them show which commit and which node produced an
//! artifact without reading weir's store.
//!
//! What it guarantees:
//! - **One OpenLineage run per node of an execution**, across its attempts:
//!   the run id is derived from (execution id, node path), so every event of
//!   a node, even one sent again after a restart, names the same run. The
//!   first attempt sends START, each retry RUNNING (the spec wants a single
//!   START per run), and the end one of COMPLETE, FAIL or ABORT. A node
//!   served from the cache runs no attempt: it sends START and COMPLETE
//!   together.
//! - **The engine is never slowed**: [`Emitter::node_event`] builds the event
//!   and hands it to a background thread over a channel; that thread writes
//!   and POSTs, in order. [`Emitter::flush`], and dropping the emitter, wait
//!   for the events handed over so far.
//! - **A sink failure never reaches the engine**: it is logged with
//!   `tracing::warn!`. A POST is retried with doubling backoff, then the
//!   event is dropped; while the endpoint stays unreachable, later events
//!   get one try each, so a dead endpoint cannot hold `weir run` for long.
//!
//! Naming (OpenLineage's `Naming.md` leaves job namespaces to the
//! scheduler): job namespace `weir/<project>`, job name `<workflow>.<node
//! path>`, and a `parent` run facet naming the execution (job `<workflow>`,
//! run id derived from the execution id). The `sourceCodeLocation` job facet
//! carries the source's repository, branch, path and commit. Each input or
//! output that is an artifact (`sha256:<hex>`) is a dataset in namespace
//! `weir` named by that reference; scalars are not datasets and are left
//! out.
//!
//! It must not read the store, nor block or fail its caller.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::artifact;
use crate::engine::{NodeEvent, Observer, PlanNode};
use crate::source::git::redact_url;
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
/// Where Marquez takes events, below its base URL.
pub const LINEAGE_PATH: &str = "/api/v1/lineage";

/// Tries of one POST, and the wait before the first retry (doubled each
/// time after).
const HTTP_ATTEMPTS: u32 = 4;
const HTTP_BACKOFF: Duration = Duration::from_millis(250);
/// Connect, send and read of one POST together.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the OpenLineage file `{}`: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the OpenLineage URL `{url}` is not an http:// or https:// URL")]
    Url { url: String },
    #[error("cannot start the OpenLineage sender thread: {0}")]
    Spawn(#[source] std::io::Error),
}

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
    pub fn of_node(execution: &str, node: &str) -> RunId {
        RunId::derive(&["node", execution, node])
    }

    /// The run of a whole execution (the parent of its nodes' runs).
    pub fn of_execution(execution: &str) -> RunId {
        RunId::derive(&["execution", execution])
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
/// `<repo>#<branch>:<path>` (`GitSource::key`; a branch cannot contain `:`).
/// `None` for a key of another shape.
fn source_code_location(execution: &Execution) -> Option<Value> {
    let (repo, rest) = execution.source.0.split_once('#')?;
    let (branch, path) = rest.split_once(':')?;
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

/// Appends each event as one line of JSON.
pub struct FileSink {
    path: PathBuf,
    file: File,
}

impl FileSink {
    /// Opens `path` for appending, creating it and its parent folders.
    pub fn open(path: &Path) -> Result<FileSink, Error> {
        let fail = |source| Error::File {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(fail)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
        })
    }

    fn append(&mut self, line: &str) {
        // One write of the whole line: appends from processes sharing the
        // file do not interleave within a line.
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if let Err(e) = self.file.write_all(&bytes) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot append an OpenLineage event");
        }
    }
}

/// POSTs each event as JSON to `<base>/api/v1/lineage`.
pub struct HttpSink {
    endpoint: String,
    agent: ureq::Agent,
    attempts: u32,
    backoff: Duration,
    /// The last event got through (or none was sent yet).
    reachable: bool,
}

impl HttpSink {
    /// A sink for the OpenLineage endpoint below `base` (e.g.
    /// `http://marquez:5000`); a `base` that already ends in
    /// `/api/v1/lineage` is taken as it is.
    pub fn new(base: &str) -> Result<HttpSink, Error> {
        let invalid = || Error::Url {
            url: redact_url(base),
        };
        let uri: ureq::http::Uri = base.parse().map_err(|_| invalid())?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(invalid());
        }
        let base = base.trim_end_matches('/');
        let endpoint = if base.ends_with(LINEAGE_PATH) {
            base.to_owned()
        } else {
            format!("{base}{LINEAGE_PATH}")
        };
        let agent = crate::http::client::agent_config(HTTP_TIMEOUT)
            .build()
            .into();
        Ok(HttpSink {
            endpoint,
            agent,
            attempts: HTTP_ATTEMPTS,
            backoff: HTTP_BACKOFF,
            reachable: true,
        })
    }

    /// Tries each event up to `attempts` times, waiting `backoff` before the
    /// first retry and twice as long before each next one.
    pub fn with_retries(mut self, attempts: u32, backoff: Duration) -> HttpSink {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    fn post(&mut self, body: &str) {
        let endpoint = redact_url(&self.endpoint);
        let attempts = if self.reachable { self.attempts } else { 1 };
        for attempt in 1..=attempts {
            let sent = self
                .agent
                .post(&self.endpoint)
                .header("Content-Type", "application/json")
                .send(body.as_bytes());
            match sent {
                Ok(_) => {
                    self.reachable = true;
                    return;
                }
                Err(e) => {
                    tracing::warn!(%endpoint, attempt, error = %e, "cannot send an OpenLineage event");
                    if attempt < attempts {
                        std::thread::sleep(self.backoff.saturating_mul(1 << (attempt - 1).min(16)));
                    }
                }
            }
        }
        self.reachable = false;
        tracing::warn!(%endpoint, attempts, "OpenLineage event dropped");
    }
}

enum Message {
    Event(Box<RunEvent>),
    /// Answered once every event sent before it is delivered.
    Flush(mpsc::Sender<()>),
}

/// The [`Observer`] that turns node events into OpenLineage RunEvents and
/// delivers them from a background thread.
pub struct Emitter {
    sender: Option<mpsc::Sender<Message>>,
    worker: Option<JoinHandle<()>>,
}

impl Emitter {
    /// Starts the thread that delivers events to `file` and `http` (either
    /// may be absent).
    pub fn start(file: Option<FileSink>, http: Option<HttpSink>) -> Result<Emitter, Error> {
        let (sender, receiver) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("openlineage".into())
            .spawn(move || deliver(&receiver, file, http))
            .map_err(Error::Spawn)?;
        Ok(Emitter {
            sender: Some(sender),
            worker: Some(worker),
        })
    }

    /// Hands `event` to the delivery thread; never waits.
    pub fn emit(&self, event: RunEvent) {
        let handed = self
            .sender
            .as_ref()
            .is_some_and(|s| s.send(Message::Event(Box::new(event))).is_ok());
        if !handed {
            tracing::warn!("the OpenLineage sender has stopped; event dropped");
        }
    }

    /// Waits until every event emitted so far is written or dropped.
    pub fn flush(&self) {
        let (ack, done) = mpsc::channel();
        if let Some(sender) = &self.sender {
            if sender.send(Message::Flush(ack)).is_ok() {
                // An error means the thread ended: nothing left to wait for.
                let _ = done.recv();
            }
        }
    }
}

impl Observer for Emitter {
    fn node_event(
        &self,
        event: NodeEvent,
        execution: &Execution,
        node: &PlanNode,
        state: &NodeState,
    ) {
        let at = Utc::now();
        for &event_type in EventType::of(event, state) {
            self.emit(run_event(event_type, execution, node, state, at));
        }
    }
}

impl Drop for Emitter {
    /// Delivers what is pending, then ends the thread.
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(worker) = self.worker.take() {
            if worker.join().is_err() {
                tracing::warn!("the OpenLineage sender thread panicked");
            }
        }
    }
}

/// The delivery thread: each event, in order, to each sink, until every
/// sender is gone.
fn deliver(
    messages: &mpsc::Receiver<Message>,
    mut file: Option<FileSink>,
    mut http: Option<HttpSink>,
) {
    for message in messages {
        match message {
            Message::Event(event) => {
                let body = match serde_json::to_string(&event) {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot serialise an OpenLineage event");
                        continue;
                    }
                };
                if let Some(file) = &mut file {
                    file.append(&body);
                }
                if let Some(http) = &mut http {
                    http.post(&body);
                }
            }
            Message::Flush(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Read as _};
    use std::net::TcpListener;

    use serde_json::Value;

    use super::*;
    use crate::spec::Digest;
    use crate::store::execution::{NodeStatus, Status};
    use crate::store::{CommitId, SourceKey};

    const OPENLINEAGE_ID: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";
    const FACET_ID: &str =
        "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json";
    const COMMIT: &str = "8c2d41e07a9b5f3c1d2e4f6a8b0c2d4e6f8a0b1c";
    const DATA: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const MODEL: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn at() -> DateTime<Utc> {
        "2026-11-24T09:30:00Z".parse().unwrap()
    }

    fn execution(source: &str) -> Execution {
        Execution {
            id: "churn-adhoc-3f9a1c2b7d4e".into(),
            project: "acme".into(),
            workflow: "churn-training".into(),
            workflow_version: Digest::from_hex("a".repeat(64)),
            launch_plan: None,
            launch_plan_version: None,
            source: SourceKey(source.into()),
            commit: CommitId(COMMIT.into()),
            trigger: "manual".into(),
            scheduled_at: None,
            inputs: json!({ "day": "2026-11-24" }),
            plan: json!({}),
            options: json!({}),
            status: Status::Running,
            outputs: None,
            error: None,
            created_at: at(),
            started_at: Some(at()),
            finished_at: None,
            cancel_requested: false,
        }
    }

    fn plan_node(path: &str) -> PlanNode {
        serde_json::from_value(json!({
            "path": path,
            "task": "train",
            "taskVersion": "b".repeat(64),
            "spec": {},
            "inputs": {},
            "deps": [],
        }))
        .unwrap()
    }

    fn node_state(status: NodeStatus, attempts: u32, outputs: Option<Value>) -> NodeState {
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

    const LOCAL: &str = "file:///srv/repos/churn model#main:pipelines/churn";

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
        let id = RunId::of_node("exec-1", "fit/train");
        assert_eq!(id, RunId::of_node("exec-1", "fit/train"));
        assert_ne!(id, RunId::of_node("exec-1", "fit/evaluate"));
        assert_ne!(id, RunId::of_node("exec-1/fit", "train"));
        assert_ne!(id, RunId::of_execution("exec-1"));
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
            RunId::of_execution("churn-adhoc-3f9a1c2b7d4e").as_str()
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
            assert_eq!(facet["repoUrl"], key.split_once('#').unwrap().0);
            assert_eq!(facet["version"], COMMIT);
            assert_eq!(facet["path"].as_str(), path);
        }
        let facet = source_code_location(&execution(LOCAL)).unwrap();
        assert_eq!(facet["branch"], "main");
        assert_eq!(source_code_location(&execution("no-branch")), None);
    }

    fn emit_node_story(emitter: &Emitter) {
        let execution = execution(LOCAL);
        let node = plan_node("train");
        let running = node_state(NodeStatus::Running, 1, None);
        let succeeded = node_state(NodeStatus::Succeeded, 1, Some(json!({ "model": MODEL })));
        emitter.node_event(NodeEvent::Started, &execution, &node, &running);
        emitter.node_event(NodeEvent::Succeeded, &execution, &node, &succeeded);
    }

    #[test]
    fn file_sink_appends_one_event_a_line_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lineage/nested/events.jsonl");
        for _ in 0..2 {
            let emitter = Emitter::start(Some(FileSink::open(&path).unwrap()), None).unwrap();
            emit_node_story(&emitter);
            // Dropping delivers what is pending.
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let types: Vec<&str> = events
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["START", "COMPLETE", "START", "COMPLETE"],
            "appended, in order"
        );
        assert_eq!(events[0]["run"]["runId"], events[1]["run"]["runId"]);
    }

    struct Request {
        line: String,
        content_type: String,
        body: String,
    }

    /// A tiny HTTP server on a free local port: answers its connections, one
    /// request each, with `statuses` in turn, and reports each request.
    fn serve(statuses: Vec<u16>) -> (String, mpsc::Receiver<Request>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for status in statuses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let (mut length, mut content_type) = (0, String::new());
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    let Some((name, value)) = header.trim_end().split_once(':') else {
                        break;
                    };
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "content-type" => content_type = value.trim().to_owned(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let reply = format!(
                    "HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                reader.get_mut().write_all(reply.as_bytes()).unwrap();
                let line = line.trim_end().to_owned();
                let body = String::from_utf8(body).unwrap();
                tx.send(Request {
                    line,
                    content_type,
                    body,
                })
                .unwrap();
            }
        });
        (base, rx)
    }

    fn received(requests: &mpsc::Receiver<Request>) -> Request {
        requests.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn http_sink_posts_each_event_to_the_lineage_endpoint() {
        let (base, requests) = serve(vec![200, 201]);
        let http = HttpSink::new(&format!("{base}/")).unwrap();
        let emitter = Emitter::start(None, Some(http)).unwrap();
        emit_node_story(&emitter);
        emitter.flush();
        for expected in ["START", "COMPLETE"] {
            let request = received(&requests);
            assert_eq!(request.line, "POST /api/v1/lineage HTTP/1.1");
            assert_eq!(request.content_type, "application/json");
            let event: Value = serde_json::from_str(&request.body).unwrap();
            assert_eq!(event["eventType"], expected);
            assert_eq!(event["job"]["name"], "churn-training.train");
        }
    }

    #[test]
    fn http_sink_retries_after_a_server_error() {
        let (base, requests) = serve(vec![503, 200]);
        let http = HttpSink::new(&format!("{base}{LINEAGE_PATH}"))
            .unwrap()
            .with_retries(3, Duration::from_millis(1));
        let emitter = Emitter::start(None, Some(http)).unwrap();
        emitter.emit(run_event(
            EventType::Start,
            &execution(LOCAL),
            &plan_node("train"),
            &node_state(NodeStatus::Running, 1, None),
            at(),
        ));
        emitter.flush();
        let (first, second) = (received(&requests), received(&requests));
        assert_eq!(first.line, "POST /api/v1/lineage HTTP/1.1");
        assert_eq!(first.body, second.body, "the same event, sent again");
    }

    #[test]
    fn http_sink_wants_an_http_url() {
        for url in ["marquez:5000", "ftp://marquez/", "not a url"] {
            assert!(
                matches!(HttpSink::new(url), Err(Error::Url { .. })),
                "{url}"
            );
        }
        assert!(HttpSink::new("https://marquez.example.com").is_ok());
    }
}
