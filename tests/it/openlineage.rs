//! OpenLineage from the daemon (DESIGN.md section 8): `weir serve` sends
//! the RunEvents `weir run --wait` sends, for every execution it drives
//! whatever started it. An execution is an OpenLineage run of its own, the
//! parent of its nodes' runs: START, then COMPLETE, FAIL (with the error)
//! or ABORT. Checked on the real binary, a real repository and a real
//! schedule, against the official 2-0-2 schema; and, below the binary, the
//! engine's promise to its observers: an execution's start is told once,
//! only after its write is committed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;
use weir::artifact::LocalArtifacts;
use weir::engine::create::{self, Request};
use weir::engine::{Engine, NodeEvent, Observer, PlanNode};
use weir::lineage::openlineage::RunId;
use weir::store::execution::{Execution, NodeState, Status};

use crate::common::{
    Backend, Daemon, GitRepo, TestDb, eventually, free_addr, http, on_every_backend, root,
    weir_json,
};

/// Two workflows on two-second schedules sharing a cached first node:
/// `report` succeeds, `audit` fails in its second node.
const DEFINITIONS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: extract }
spec:
  outputs: { data: { type: file } }
  script:
    interpreter: bash
    source: |
      seq 1 5 > "$WEIR_OUTPUTS/data"
  cache: { enabled: true }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: count }
spec:
  inputs: { data: { type: file } }
  outputs: { rows: { type: int } }
  script:
    interpreter: bash
    source: |
      echo "{\"rows\": $(wc -l < "$WEIR_INPUT_DATA")}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: check }
spec:
  inputs: { data: { type: file } }
  script:
    interpreter: bash
    source: |
      echo "no audit rows in the extract" >&2
      exit 3
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: report }
spec:
  nodes:
    - { id: extract, task: extract }
    - { id: count, task: count, inputs: { data: "{{ nodes.extract.outputs.data }}" } }
  outputs: { rows: "{{ nodes.count.outputs.rows }}" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: audit }
spec:
  nodes:
    - { id: extract, task: extract }
    - { id: check, task: check, inputs: { data: "{{ nodes.extract.outputs.data }}" } }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: report-every-2s }
spec:
  workflow: report
  schedule: { every: 2s }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: audit-every-2s }
spec:
  workflow: audit
  schedule: { every: 2s }
"#;

/// The events of a JSON-lines file, one a line (none while it is missing).
fn events(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|line| line.ends_with('}'))
        .map(|line| serde_json::from_str(line).expect("one JSON event a line"))
        .collect()
}

fn schema(name: &str) -> Value {
    let path = root().join("tests/fixtures/openlineage").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("JSON")
}

/// The official OpenLineage 2-0-2 RunEvent schema, offline (the facet
/// schema it may name registered under its `$id`), formats checked.
fn run_event_validator() -> jsonschema::Validator {
    let registry = jsonschema::Registry::new()
        .add(
            "https://openlineage.io/spec/2-0-2/OpenLineage.json",
            schema("OpenLineage.json"),
        )
        .expect("add")
        .add(
            "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json",
            schema("SourceCodeLocationJobFacet.json"),
        )
        .expect("add")
        .prepare()
        .expect("registry");
    jsonschema::options()
        .offline()
        .with_registry(&registry)
        .should_validate_formats(true)
        .build(&schema("OpenLineage.json"))
        .expect("validator")
}

fn str_at<'a>(event: &'a Value, pointer: &str) -> &'a str {
    event
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {event:#}"))
}

fn instant(text: &str) -> DateTime<Utc> {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The executions of launch plan `name`, as the store has them.
fn executions(db: &TestDb, name: &str) -> Vec<Value> {
    let (_, list) = weir_json(&["executions", "--launch-plan", name, "-o", "json"], db);
    list.as_array().cloned().unwrap_or_default()
}

/// The ended executions of launch plan `name` (id → the execution).
fn ended(db: &TestDb, name: &str) -> BTreeMap<String, Value> {
    executions(db, name)
        .into_iter()
        .filter(|e| !matches!(e["status"].as_str(), Some("queued" | "running")))
        .map(|e| (str_at(&e, "/id").to_owned(), e))
        .collect()
}

/// The story the issue asks for: the daemon's OpenLineage file for
/// scheduled runs validates against the 2-0-2 schema, with each execution
/// a run (START, then COMPLETE or FAIL) that is the parent of its nodes'
/// runs; FAIL says why; a node served from the cache says where from; and
/// every event is stamped with the instant the store recorded.
#[test]
fn the_daemons_openlineage_file_for_a_scheduled_run_validates_with_parent_and_child_runs() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/flows.yaml", DEFINITIONS);
    let head = repo.commit("Two schedules, one failing");
    let lineage = tempfile::tempdir().expect("tempdir");
    let path = lineage.path().join("events/lineage.jsonl");
    let repo_path = repo.path().to_str().expect("utf-8");
    let daemon = Daemon::start(
        &db,
        &[
            "--repo",
            repo_path,
            "--path",
            "defs",
            "--interval",
            "60s",
            "--openlineage-file",
            path.to_str().expect("utf-8"),
        ],
    );
    // Two ended executions of each schedule, and their events written.
    let events_of_ended = |name: &str| {
        let ended = ended(&db, name);
        let events = events(&path);
        let ended_runs = ended
            .keys()
            .filter(|id| {
                let run = RunId::of_execution(&id.as_str().into());
                events.iter().any(|e| {
                    e["run"]["runId"] == run.as_str()
                        && matches!(e["eventType"].as_str(), Some("COMPLETE" | "FAIL"))
                })
            })
            .count();
        ended_runs >= 2
    };
    eventually("two runs of each schedule ended, in the file", || {
        events_of_ended("report-every-2s") && events_of_ended("audit-every-2s")
    });
    daemon.stop();

    let events = events(&path);
    let validator = run_event_validator();
    for event in &events {
        let errors: Vec<String> = validator
            .iter_errors(event)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\n{event:#}");
    }
    let runs =
        |run: &str| -> Vec<&Value> { events.iter().filter(|e| e["run"]["runId"] == run).collect() };
    let types = |run: &[&Value]| -> Vec<String> {
        run.iter()
            .map(|e| str_at(e, "/eventType").to_owned())
            .collect()
    };

    // Each execution the store has ended: one run of job `<workflow>`,
    // START at its recorded start, then its end at its recorded end.
    let mut execution_runs = BTreeMap::new();
    for (plan, workflow, end) in [
        ("report-every-2s", "report", "COMPLETE"),
        ("audit-every-2s", "audit", "FAIL"),
    ] {
        for (id, execution) in &ended(&db, plan) {
            let run_id = RunId::of_execution(&id.as_str().into());
            // Delivered before the daemon exited, whenever it ended.
            let run = runs(run_id.as_str());
            assert_eq!(types(&run), ["START", end], "{id}: {run:#?}");
            let (start, last) = (run[0], run[1]);
            for event in [start, last] {
                assert_eq!(event["job"]["namespace"], "weir/default");
                assert_eq!(event["job"]["name"], workflow);
                assert_eq!(
                    event["job"]["facets"]["sourceCodeLocation"]["version"],
                    head.as_str()
                );
                let facets = &event["run"]["facets"];
                assert!(facets.get("parent").is_none(), "{event:#}");
                assert_eq!(facets["weir_execution"]["execution"], id.as_str());
                assert_eq!(facets["weir_execution"]["trigger"], "schedule");
                assert_eq!(facets["weir_execution"]["launchPlan"], plan);
                assert_eq!(
                    instant(str_at(event, "/run/facets/nominalTime/nominalStartTime")),
                    instant(str_at(execution, "/scheduledAt")),
                    "the nominal time is the scheduled instant"
                );
            }
            assert_eq!(
                instant(str_at(start, "/eventTime")),
                instant(str_at(execution, "/startedAt")),
                "START at the recorded start"
            );
            assert_eq!(
                instant(str_at(last, "/eventTime")),
                instant(str_at(execution, "/finishedAt")),
                "the end at the recorded end"
            );
            if end == "FAIL" {
                let error = &last["run"]["facets"]["errorMessage"];
                assert_eq!(error["programmingLanguage"], "weir", "{last:#}");
                assert_eq!(error["message"], execution["error"], "{last:#}");
                assert!(
                    str_at(error, "/message").contains("check"),
                    "names the node: {error:#}"
                );
            } else {
                assert!(last["run"]["facets"].get("errorMessage").is_none());
            }
            execution_runs.insert(run_id.as_str().to_owned(), workflow);
        }
    }
    assert!(execution_runs.len() >= 4, "{execution_runs:?}");

    // Every node run names its execution's run as its parent, and that
    // run started before it; node runs are one START and one end each.
    let mut node_runs: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for (i, event) in events.iter().enumerate() {
        let job = str_at(event, "/job/name");
        let Some((workflow, _node)) = job.split_once('.') else {
            continue;
        };
        let parent = &event["run"]["facets"]["parent"];
        assert_eq!(parent["job"]["name"], workflow, "{event:#}");
        assert_eq!(parent["job"]["namespace"], "weir/default");
        let parent_run = str_at(parent, "/run/runId");
        let started = events[..i]
            .iter()
            .any(|e| e["run"]["runId"] == parent_run && e["eventType"] == "START");
        assert!(started, "the parent started first: {event:#}");
        node_runs
            .entry(str_at(event, "/run/runId"))
            .or_default()
            .push(event);
    }
    // Each ended execution's run is the parent of one run per node.
    for (run_id, workflow) in &execution_runs {
        let children: BTreeSet<&str> = node_runs
            .values()
            .filter(|run| run[0]["run"]["facets"]["parent"]["run"]["runId"] == run_id.as_str())
            .map(|run| str_at(run[0], "/job/name"))
            .collect();
        let expected = match *workflow {
            "report" => BTreeSet::from(["report.extract", "report.count"]),
            _ => BTreeSet::from(["audit.extract", "audit.check"]),
        };
        assert_eq!(children, expected, "the node runs of {run_id}");
    }
    let mut cached = 0;
    let mut failed = 0;
    for run in node_runs.values() {
        let parent = str_at(run[0], "/run/facets/parent/run/runId");
        if !execution_runs.contains_key(parent) {
            continue; // an execution still running at the stop
        }
        let seen = types(run);
        assert_eq!(seen[0], "START", "{run:#?}");
        assert_eq!(seen.len(), 2, "{run:#?}");
        let end = run[1];
        match (str_at(end, "/job/name"), seen[1].as_str()) {
            ("audit.check", "FAIL") => {
                failed += 1;
                let error = &end["run"]["facets"]["errorMessage"];
                assert_eq!(error["programmingLanguage"], "bash", "{end:#}");
                let message = str_at(error, "/message");
                assert!(
                    message.contains("exited with status 3")
                        && message.contains("no audit rows in the extract"),
                    "the node's recorded error: {message}"
                );
            }
            (_, "COMPLETE") => {
                assert!(end["run"]["facets"].get("errorMessage").is_none());
                if let Some(cache) = end["run"]["facets"].get("weir_cache") {
                    cached += 1;
                    assert_eq!(
                        end["job"]["name"].as_str().map(|j| j.ends_with(".extract")),
                        Some(true)
                    );
                    let from = str_at(cache, "/cachedFrom");
                    assert_eq!(
                        cache["cachedFromRunId"],
                        RunId::of_execution(&from.into()).as_str()
                    );
                    assert!(
                        run[0]["run"]["facets"].get("weir_cache").is_some(),
                        "its START says so too"
                    );
                }
            }
            other => panic!("unexpected end {other:?}: {run:#?}"),
        }
    }
    assert!(failed >= 2, "a FAIL per failed audit");
    assert!(cached >= 1, "the shared extract was served from the cache");
}

/// The same, configured by `weir.toml`'s `[openlineage]` (and a file that
/// cannot be opened stops the start-up, saying which).
#[test]
fn the_daemon_sends_events_where_weir_toml_says() {
    let repo = GitRepo::new();
    repo.write("defs/flows.yaml", DEFINITIONS);
    repo.commit("Two schedules");
    let state = tempfile::tempdir().expect("tempdir");
    let path = state.path().join("lineage.jsonl");
    let addr = free_addr();
    let config = state.path().join("weir.toml");
    let write_config = |lineage_file: &Path| {
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{state}\"\nlisten = \"{addr}\"\ntick = \"200ms\"\n\n\
                 [openlineage]\nfile = \"{file}\"\n\n\
                 [[sources]]\nrepo = \"{repo}\"\npath = \"defs\"\ninterval = \"60s\"\n",
                state = state.path().display(),
                file = lineage_file.display(),
                repo = repo.path().display(),
            ),
        )
        .expect("write weir.toml");
    };
    let serve = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("WEIR_OPENLINEAGE_FILE")
            .env_remove("WEIR_OPENLINEAGE_URL")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null());
        command
    };

    // A file under a file cannot be opened: exit 2, naming it.
    let blocker = state.path().join("not-a-folder");
    std::fs::write(&blocker, "").expect("write");
    write_config(&blocker.join("lineage.jsonl"));
    let refused = serve().output().expect("weir runs");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("cannot open the OpenLineage file") && said.contains("not-a-folder"),
        "{said}"
    );

    write_config(&path);
    let child = serve()
        .stderr(Stdio::null())
        .spawn()
        .expect("weir serve starts");
    let served = Served { child };
    eventually("/readyz answers 200", || {
        http(&addr, "GET", "/readyz", &[], b"").0 == 200
    });
    eventually("an execution run ended in the file", || {
        events(&path)
            .iter()
            .any(|e| e["job"]["name"] == "report" && e["eventType"] == "COMPLETE")
    });
    drop(served);
    let events = events(&path);
    let validator = run_event_validator();
    assert!(events.iter().all(|e| validator.is_valid(e)));
    let report = events
        .iter()
        .find(|e| e["job"]["name"] == "report" && e["eventType"] == "COMPLETE")
        .expect("a COMPLETE of report");
    let run = str_at(report, "/run/runId");
    assert!(
        events
            .iter()
            .any(|e| e["eventType"] == "START" && e["run"]["runId"] == run),
        "its START"
    );
    assert!(
        events.iter().any(|e| e["job"]["name"] == "report.count"
            && e["run"]["facets"]["parent"]["run"]["runId"] == run),
        "its nodes' runs name it as their parent"
    );
}

/// A `weir serve` started from a `weir.toml`, killed when dropped.
struct Served {
    child: std::process::Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

on_every_backend!(an_execution_s_start_is_told_once_its_write_is_committed);

/// What an observer heard, in order.
#[derive(Default)]
struct Heard(Mutex<Vec<String>>);

impl Heard {
    fn said(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

impl Observer for Heard {
    fn node_event(&self, event: NodeEvent, _: &Execution, node: &PlanNode, _: &NodeState) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("{} {event:?}", node.path));
    }

    fn execution_started(&self, execution: &Execution) {
        assert_eq!(execution.status, Status::Running);
        assert!(execution.started_at.is_some(), "{execution:?}");
        self.0
            .lock()
            .expect("lock")
            .push("execution started".into());
    }

    fn execution_finished(&self, execution: &Execution) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("execution {}", execution.status.as_str()));
    }
}

const PAIR: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: noop, project: lab }
spec:
  script: { interpreter: bash, source: "true" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: pair, project: lab }
spec:
  nodes:
    - { id: first, task: noop }
    - { id: second, task: noop, after: [first] }
"#;

/// Makes (`true`) or stops making every write that marks an execution
/// running fail, through a connection of its own (as a full disk would).
async fn fail_starting(url: &str, fail: bool) {
    let statements: Vec<String> = if url.starts_with("sqlite:") {
        if fail {
            vec![
                "CREATE TRIGGER injected_fault BEFORE UPDATE ON executions \
                 WHEN NEW.status = 'running' \
                 BEGIN SELECT RAISE(ROLLBACK, 'disk I/O error (injected)'); END"
                    .into(),
            ]
        } else {
            vec!["DROP TRIGGER injected_fault".into()]
        }
    } else if fail {
        vec![
            "CREATE OR REPLACE FUNCTION injected_fault() RETURNS trigger AS $$ \
             BEGIN IF NEW.status = 'running' THEN \
             RAISE EXCEPTION 'disk I/O error (injected)'; END IF; RETURN NEW; END $$ \
             LANGUAGE plpgsql"
                .into(),
            "CREATE TRIGGER injected_fault BEFORE UPDATE ON executions \
             FOR EACH ROW EXECUTE FUNCTION injected_fault()"
                .into(),
        ]
    } else {
        vec!["DROP TRIGGER injected_fault ON executions".into()]
    };
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        for sql in statements {
            sqlx::query(&sql).execute(&pool).await.expect("trigger");
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        for sql in statements {
            sqlx::query(&sql).execute(&pool).await.expect("trigger");
        }
        pool.close().await;
    }
}

/// `Observer::execution_started` is told when the engine moves an
/// execution from queued to running, once, and only after that write is
/// committed: a pass whose write fails tells nothing, and the pass that
/// writes it tells it before any of its nodes' events.
async fn an_execution_s_start_is_told_once_its_write_is_committed(b: Backend) {
    let _repo = crate::backfill::register(b.store.as_ref(), PAIR).await;
    let state = tempfile::tempdir().expect("state dir");
    let artifacts = Arc::new(LocalArtifacts::new(state.path().join("artifacts")));
    let heard = Arc::new(Heard::default());
    let engine = Engine::new(b.store.clone(), artifacts, state.path().to_path_buf())
        .with_task_env(weir::executor::environment::Inherited::from_process(
            Default::default(),
        ))
        .observe(heard.clone());
    let request = Request {
        name: "pair".into(),
        project: Some("lab".into()),
        ..Request::default()
    };
    let (execution, _) = create::create(b.store.as_ref(), &request)
        .await
        .expect("create");

    fail_starting(&b.url, true).await;
    assert!(engine.tick().await.is_err(), "the write fails");
    let stored = b.store.execution(&execution.id).await.expect("read");
    assert_eq!(stored.expect("exists").status, Status::Queued);
    assert_eq!(heard.said(), Vec::<String>::new(), "nothing told");

    fail_starting(&b.url, false).await;
    let finished = engine
        .run_until_finished(&execution.id)
        .await
        .expect("runs");
    assert_eq!(finished.status, Status::Succeeded);
    assert_eq!(
        heard.said(),
        [
            "execution started",
            "first Started",
            "first Succeeded",
            "second Started",
            "second Succeeded",
            "execution succeeded",
        ]
    );
}
