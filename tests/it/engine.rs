//! The engine on real processes, driven through the binary: commit → sync →
//! `weir run --wait -o json` → assert on the finished execution, its nodes,
//! the cache and the logs.

use serde_json::Value;

use crate::common::{GitRepo, TestDb, node, weir_json, weir_with};

const TASKS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: make, project: lab }
spec:
  inputs: { count: { type: int, default: 3 } }
  outputs: { data: { type: file }, n: { type: int } }
  script:
    interpreter: bash
    source: |
      seq 1 "$WEIR_INPUT_COUNT" > "$WEIR_OUTPUTS/data"
      echo "{\"n\": {{ inputs.count }}}" > "$WEIR_OUTPUTS/outputs.json"
      echo "made {{ inputs.count }} rows"
  cache: { enabled: true }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: total, project: lab }
spec:
  inputs: { data: { type: file }, n: { type: int } }
  outputs: { sum: { type: int } }
  script:
    interpreter: python3
    source: |
      import json, os
      inputs = json.load(open(os.environ["WEIR_INPUTS"]))
      total = sum(int(line) for line in open(inputs["data"]))
      assert inputs["n"] == sum(1 for _ in open(inputs["data"]))
      json.dump({"sum": total}, open(os.path.join(os.environ["WEIR_OUTPUTS"], "outputs.json"), "w"))
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: chain, project: lab }
spec:
  inputs: { count: { type: int, default: 3 } }
  nodes:
    - { id: make, task: make, inputs: { count: "{{ inputs.count }}" } }
    - id: total
      task: total
      inputs: { data: "{{ nodes.make.outputs.data }}", n: "{{ nodes.make.outputs.n }}" }
  outputs: { sum: "{{ nodes.total.outputs.sum }}" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: outer, project: lab }
spec:
  nodes:
    - { id: inner, workflow: chain, inputs: { count: 5 } }
    - { id: tail, task: make, inputs: { count: 1 }, after: [inner] }
  outputs: { sum: "{{ nodes.inner.outputs.sum }}", n: "{{ nodes.tail.outputs.n }}" }
"#;

const FAULTS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: flaky, project: lab }
spec:
  script: { interpreter: bash, source: "echo trying; echo broken >&2; exit 3" }
  retries: { attempts: 1, backoff: 100ms }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: slow, project: lab }
spec:
  script: { interpreter: bash, source: "sleep 30 & sleep 30" }
  timeout: 1s
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: liar, project: lab }
spec:
  outputs: { rows: { type: int } }
  script: { interpreter: bash, source: "echo '{\"rows\": \"abc\"}' > $WEIR_OUTPUTS/outputs.json" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: flaky-flow, project: lab }
spec:
  nodes: [ { id: flaky, task: flaky } ]
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: slow-flow, project: lab }
spec:
  nodes: [ { id: slow, task: slow } ]
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: liar-flow, project: lab }
spec:
  nodes: [ { id: liar, task: liar }, { id: after, task: flaky, after: [liar] } ]
"#;

const HELLO: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: hello, project: lab }
spec:
  inputs: { who: { type: string, default: world } }
  container: { image: "alpine:3.20", command: [echo], args: ["hello {{ inputs.who }}"] }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: hello-flow, project: lab }
spec:
  nodes: [ { id: hello, task: hello } ]
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: bundle, project: lab }
spec:
  outputs: { model: { type: directory } }
  script:
    interpreter: bash
    source: |
      mkdir -p "$WEIR_OUTPUTS/model/weights"
      echo '{"layers": 2}' > "$WEIR_OUTPUTS/model/config.json"
      printf 'abc' > "$WEIR_OUTPUTS/model/weights/w.bin"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: inspect, project: lab }
spec:
  inputs: { model: { type: directory } }
  outputs: { files: { type: int }, layers: { type: int } }
  script:
    interpreter: python3
    source: |
      import json, os
      model = os.environ["WEIR_INPUT_MODEL"]
      files = sum(len(f) for _, _, f in os.walk(model))
      layers = json.load(open(os.path.join(model, "config.json")))["layers"]
      assert open(os.path.join(model, "weights", "w.bin")).read() == "abc"
      json.dump({"files": files, "layers": layers}, open(os.environ["WEIR_OUTPUTS"] + "/outputs.json", "w"))
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: bundle-flow, project: lab }
spec:
  nodes:
    - { id: bundle, task: bundle }
    - { id: inspect, task: inspect, inputs: { model: "{{ nodes.bundle.outputs.model }}" } }
  outputs: { files: "{{ nodes.inspect.outputs.files }}", layers: "{{ nodes.inspect.outputs.layers }}" }
"#;

fn setup(db: &TestDb) -> GitRepo {
    let repo = GitRepo::new();
    repo.write("defs/lab.yaml", TASKS);
    repo.write("defs/faults.yaml", FAULTS);
    repo.write("defs/hello.yaml", HELLO);
    repo.commit("Lab pipelines");
    let out = weir_with(
        &[
            "sync",
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--path",
            "defs",
        ],
        db,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo
}

fn run(db: &TestDb, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--wait", "-o", "json"]);
    weir_json(&all, db)
}

fn engine_story(db: &TestDb) {
    let repo = setup(db);
    let head = repo
        .repo
        .head()
        .expect("head")
        .peel_to_commit()
        .expect("commit")
        .id()
        .to_string();

    // Data passes through a file artifact and a scalar; the result comes back.
    let (code, first) = run(db, &["chain"]);
    assert_eq!(code, 0, "{first:#}");
    assert_eq!(first["status"], "succeeded", "{first:#}");
    assert_eq!(first["outputs"]["sum"], 6);
    assert_eq!(
        first["commit"], head,
        "an execution records the commit of its version"
    );
    let make = node(&first, "make");
    assert_eq!(make["attempts"], 1);
    assert_eq!(make["cached"], false);
    assert!(
        make["outputs"]["data"]
            .as_str()
            .expect("file")
            .starts_with("sha256:"),
        "files pass as artifact digests: {make}"
    );

    // Lineage: the summed output leads back, through `total` and the file
    // `make` wrote, to the commit that defined them (I5).
    let data = make["outputs"]["data"].as_str().expect("file");
    let (code, up) = weir_json(&["lineage", data, "--upstream", "-o", "json"], db);
    assert_eq!(code, 0, "{up:#}");
    assert_eq!(up["commits"], serde_json::json!([head]), "{up:#}");
    let produced_by = up["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|e| e["direction"] == "output" && e["artifact"] == data)
        .expect("the producing edge");
    assert_eq!(produced_by["node"], "make");
    assert_eq!(produced_by["execution"], first["id"]);
    let (_, down) = weir_json(&["lineage", data, "--downstream", "-o", "json"], db);
    assert!(
        down["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .any(|e| e["node"] == "total" && e["direction"] == "input" && e["name"] == "data"),
        "{down:#}"
    );
    let (_, whole) = weir_json(
        &["lineage", first["id"].as_str().expect("id"), "-o", "json"],
        db,
    );
    assert!(
        whole["edges"].as_array().expect("edges").len() >= 5,
        "{whole:#}"
    );

    // OpenLineage: the execution is one run, and each node one run within
    // it, START then COMPLETE, carrying the commit (the events themselves
    // are checked against the official schema in the emitter's tests and
    // `openlineage.rs`).
    let events_file = tempfile::NamedTempFile::new().expect("file");
    let events_path = events_file.path().to_str().expect("utf-8");
    let (_, with_events) = run(
        db,
        &["chain", "--no-cache", "--openlineage-file", events_path],
    );
    assert_eq!(with_events["status"], "succeeded");
    let events: Vec<Value> = std::fs::read_to_string(events_file.path())
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event a line"))
        .collect();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["job"]["name"].as_str().expect("job"),
                e["eventType"].as_str().expect("type"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("chain", "START"),
            ("chain.make", "START"),
            ("chain.make", "COMPLETE"),
            ("chain.total", "START"),
            ("chain.total", "COMPLETE"),
            ("chain", "COMPLETE")
        ]
    );
    assert_eq!(
        events[2]["job"]["facets"]["sourceCodeLocation"]["version"], head,
        "{:#}",
        events[2]
    );
    assert_eq!(
        events[2]["run"]["facets"]["parent"]["run"]["runId"], events[0]["run"]["runId"],
        "a node's parent is the execution's run"
    );

    // The second run of a cached task with the same inputs is served from the cache.
    let (_, second) = run(db, &["chain"]);
    assert_eq!(second["status"], "succeeded");
    assert_eq!(node(&second, "make")["cached"], true);
    assert_eq!(node(&second, "make")["cachedFrom"], first["id"]);
    assert_eq!(node(&second, "total")["cached"], false);
    // --no-cache and other inputs both run it again.
    let (_, third) = run(db, &["chain", "--no-cache"]);
    assert_eq!(node(&third, "make")["cached"], false);
    let (_, fourth) = run(db, &["chain", "--input", "count=4"]);
    assert_eq!(fourth["outputs"]["sum"], 10);
    assert_eq!(node(&fourth, "make")["cached"], false);

    // The logs of a node's attempt.
    let id = first["id"].as_str().expect("id");
    let logs = weir_with(&["logs", id, "--node", "make"], db);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("[make stdout] made 3 rows"),
        "{}",
        String::from_utf8_lossy(&logs.stdout)
    );
    let (_, listed) = weir_json(&["executions", "--workflow", "chain", "-o", "json"], db);
    assert_eq!(listed.as_array().expect("list").len(), 5);

    // A sub-workflow runs inline: its nodes are `inner/…`, its outputs
    // feed the caller's, and `after:` it waits for all of them.
    let (code, outer) = run(db, &["outer"]);
    assert_eq!(code, 0, "{outer:#}");
    assert_eq!(outer["outputs"]["sum"], 15);
    assert_eq!(outer["outputs"]["n"], 1);
    let ids: Vec<&str> = outer["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["inner/make", "inner/total", "tail"]);
    let tail_started = node(&outer, "tail")["startedAt"].as_str().expect("started");
    let total_finished = node(&outer, "inner/total")["finishedAt"]
        .as_str()
        .expect("finished");
    assert!(
        tail_started >= total_finished,
        "`after:` a sub-workflow waits for all of it"
    );

    // A container task runs its command on the host, and says so once.
    let (_, hello) = run(db, &["hello-flow"]);
    assert_eq!(hello["status"], "succeeded", "{hello:#}");
    let logs = weir_with(&["logs", hello["id"].as_str().expect("id")], db);
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.contains("[hello stdout] hello world"), "{logs}");
    assert_eq!(
        logs.matches("image `alpine:3.20` is not used").count(),
        1,
        "{logs}"
    );

    // A directory output passes whole to the next node.
    let (_, bundle) = run(db, &["bundle-flow"]);
    assert_eq!(bundle["status"], "succeeded", "{bundle:#}");
    assert_eq!(bundle["outputs"]["files"], 2);
    assert_eq!(bundle["outputs"]["layers"], 2);

    // A failing task is retried, then fails the execution with its stderr.
    let (code, flaky) = run(db, &["flaky-flow"]);
    assert_eq!(code, 1);
    assert_eq!(flaky["status"], "failed", "{flaky:#}");
    assert_eq!(node(&flaky, "flaky")["attempts"], 2);
    let error = flaky["error"].as_str().expect("error");
    assert!(
        error.contains("exited with status 3") && error.contains("broken"),
        "{error}"
    );

    // A timeout kills the task's whole process group.
    let (_, slow) = run(db, &["slow-flow"]);
    assert_eq!(slow["status"], "timedOut", "{slow:#}");
    assert_eq!(node(&slow, "slow")["status"], "timedOut");

    // A wrong-typed output fails clearly, and nothing after it runs.
    let (_, liar) = run(db, &["liar-flow"]);
    assert_eq!(liar["status"], "failed");
    let error = node(&liar, "liar")["error"].as_str().expect("error");
    assert!(
        error.contains("output `rows` of task `liar`: expected int"),
        "{error}"
    );
    assert_eq!(node(&liar, "after")["status"], "skipped");

    // Unknown names (not found: exit 3) and bad inputs (exit 2) are
    // clear errors.
    let out = weir_with(&["run", "nope"], db);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no active launch plan or workflow is named `nope`")
    );
    let out = weir_with(&["run", "chain", "--input", "count=many"], db);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("input `count`: expected int"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn engine_story_on_sqlite() {
    engine_story(&TestDb::sqlite());
}

#[test]
fn engine_story_on_postgres() {
    if let Some(db) = TestDb::postgres() {
        engine_story(&db);
    }
}

/// Whether a process is gone (or a zombie nobody reaped yet).
fn gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The engine keeps every node's state in the store: a process that dies
/// mid-attempt leaves a `running` node behind, and the next engine kills
/// what is left of that attempt's process group and retries it per its
/// policy, then finishes the execution.
#[test]
fn a_restarted_engine_kills_the_interrupted_attempt_and_retries_it() {
    use std::sync::Arc;
    use weir::artifact::LocalArtifacts;
    use weir::engine::Engine;
    use weir::engine::create::{self, Request};
    use weir::store::execution::NodeStatus;

    let db = TestDb::sqlite();
    let TestDb::Sqlite(state) = &db else {
        unreachable!()
    };
    let marker = state.path().join("first-attempt-ran");
    let repo = GitRepo::new();
    repo.write(
        "defs/hang.yaml",
        &format!(
            r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: hang }}
spec:
  script:
    interpreter: bash
    source: |
      if [ -e "{marker}" ]; then echo second; exit 0; fi
      touch "{marker}"
      sleep 60
  retries: {{ attempts: 1, backoff: 100ms }}
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: hang-flow }}
spec:
  nodes: [ {{ id: hang, task: hang }} ]
"#,
            marker = marker.display()
        ),
    );
    repo.commit("A task that hangs once");
    let out = weir_with(
        &[
            "sync",
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--path",
            "defs",
        ],
        &db,
    );
    assert_eq!(out.status.code(), Some(0));
    let url = db.url();
    let engine = |runtime: &tokio::runtime::Runtime| {
        runtime.block_on(async {
            let store = weir::store::open(&url).await.expect("store");
            let artifacts = Arc::new(LocalArtifacts::new(state.path().join("artifacts")));
            Engine::new(store, artifacts, state.path().to_path_buf()).with_task_env(
                weir::executor::environment::Inherited::from_process(Default::default()),
            )
        })
    };

    // The first process: starts the attempt, then dies with it running.
    let first = tokio::runtime::Runtime::new().expect("runtime");
    let a = engine(&first);
    let request = Request {
        name: "hang-flow".into(),
        ..Request::default()
    };
    let (execution, created) = first
        .block_on(create::create(a.store().as_ref(), &request))
        .expect("create");
    assert!(created);
    let pgid = first.block_on(async {
        a.tick().await.expect("tick");
        loop {
            let nodes = a.store().nodes(&execution.id).await.expect("nodes");
            if let Some(pgid) = weir::engine::NodeHandle::read(&nodes[0])
                .pgid()
                .map(u64::from)
            {
                if marker.exists() {
                    break pgid;
                }
            }
            // Until the real task process has started and been recorded.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    drop(a);
    first.shutdown_background();
    assert!(
        !gone(pgid),
        "the attempt outlives the process that started it"
    );

    // The next process continues where the first stopped.
    let second = tokio::runtime::Runtime::new().expect("runtime");
    let b = engine(&second);
    let finished = second
        .block_on(b.run_until_finished(&execution.id))
        .expect("run");
    assert_eq!(finished.status.as_str(), "succeeded", "{finished:?}");
    let nodes = second
        .block_on(b.store().nodes(&execution.id))
        .expect("nodes");
    assert_eq!(nodes[0].status, NodeStatus::Succeeded);
    assert_eq!(nodes[0].attempts, 2, "the interrupted attempt counts");
    assert!(
        gone(pgid),
        "the interrupted attempt's processes were killed"
    );
}

/// `weir cancel` from another process: the engine running the execution
/// sees the request at its next tick, kills the attempt's process group and
/// ends the execution `cancelled`.
#[test]
fn cancel_from_another_process_stops_a_running_execution() {
    let db = TestDb::sqlite();
    setup(&db);
    let mut args = vec![
        "run".to_owned(),
        "slow-flow".into(),
        "--wait".into(),
        "-o".into(),
        "json".into(),
    ];
    args.extend(db.args());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(&args)
        .current_dir(crate::common::root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("weir runs");
    let id = loop {
        let (_, running) = weir_json(&["executions", "--status", "running", "-o", "json"], &db);
        if let Some(e) = running.as_array().and_then(|a| a.first()) {
            let id = e["id"].as_str().expect("id").to_owned();
            let (_, one) = weir_json(&["executions", &id, "-o", "json"], &db);
            if node(&one, "slow")["status"] == "running" {
                break id;
            }
        }
        // Until the `weir run` process's attempt runs (its pace, not ours).
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = weir_with(&["cancel", &id], &db);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = child.wait_with_output().expect("weir ends");
    assert_eq!(done.status.code(), Some(1));
    let execution: Value = serde_json::from_slice(&done.stdout).expect("json");
    assert_eq!(execution["status"], "cancelled", "{execution:#}");
    assert_eq!(node(&execution, "slow")["status"], "cancelled");
    let again = weir_with(&["cancel", &id], &db);
    assert_eq!(
        again.status.code(),
        Some(1),
        "a finished execution cannot be cancelled"
    );
}

/// I4: the scheduler's ids are deterministic and creation is insert-or-get,
/// so two schedulers ticking over the same window at once (two processes on
/// one database), and a third after a "restart", create each due execution
/// exactly once.
fn scheduler_story(db: &TestDb) {
    use weir::engine::scheduler::Scheduler;
    use weir::spec::Trigger;
    use weir::store::execution::ExecutionFilter;

    let repo = GitRepo::new();
    repo.write(
        "defs/tick.yaml",
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: stamp }
spec:
  inputs: { at: { type: datetime } }
  container: { image: busybox, command: ["true"] }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: stamp-flow }
spec:
  inputs: { at: { type: datetime } }
  nodes: [ { id: stamp, task: stamp, inputs: { at: "{{ inputs.at }}" } } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: every-minute }
spec:
  workflow: stamp-flow
  schedule: { every: 1m, kickoffTimeInput: at, catchUp: all }
"#,
    );
    repo.commit("A schedule");
    let out = weir_with(
        &[
            "sync",
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--path",
            "defs",
        ],
        db,
    );
    assert_eq!(out.status.code(), Some(0));
    let url = db.url();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let a = weir::store::open(&url).await.expect("store");
        let b = weir::store::open(&url).await.expect("store");
        let plan = a
            .versions(&Default::default())
            .await
            .expect("versions")
            .into_iter()
            .find(|v| v.key.entity.name == "every-minute")
            .expect("the launch plan");
        let activated = plan.last_activated_at.expect("activated");
        // Half a minute past the fifth whole minute after activation.
        let minute = activated.timestamp() - activated.timestamp().rem_euclid(60);
        let now = chrono::DateTime::from_timestamp(minute + 5 * 60 + 30, 0).expect("time");
        let (mut one, mut two) = (Scheduler::new(), Scheduler::new());
        let (first, second) = tokio::join!(one.tick(a.as_ref(), now), two.tick(b.as_ref(), now));
        let (first, second) = (first.expect("tick"), second.expect("tick"));
        let created = first.created.len() + second.created.len();
        assert_eq!(created, 5, "each due instant once: {first:?} {second:?}");
        assert_eq!(first.existing.len() + second.existing.len(), 5);

        let again = Scheduler::new().tick(a.as_ref(), now).await.expect("tick");
        assert!(
            again.created.is_empty(),
            "a restarted scheduler finds them: {again:?}"
        );
        assert_eq!(again.existing.len(), 5);

        let filter = ExecutionFilter {
            launch_plan: Some("every-minute".into()),
            ..ExecutionFilter::default()
        };
        let runs = a.executions(&filter).await.expect("executions");
        assert_eq!(runs.len(), 5);
        for run in &runs {
            let at = run.scheduled_at.expect("scheduled");
            assert_eq!(run.trigger, Trigger::Schedule);
            assert_eq!(
                run.inputs["at"],
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "kickoffTimeInput carries the instant"
            );
            assert!(at > activated && at <= now, "never before activation");
        }
    });
}

#[test]
fn scheduler_story_on_sqlite() {
    scheduler_story(&TestDb::sqlite());
}

#[test]
fn scheduler_story_on_postgres() {
    if let Some(db) = TestDb::postgres() {
        scheduler_story(&db);
    }
}

/// A scheduler keeps what it resolved of a launch plan between ticks; a
/// commit that changes the task the plan runs makes the next instants run
/// the new task version, never the one resolved before.
fn a_changed_task_runs_at_the_next_instant(db: &TestDb) {
    use weir::engine::scheduler::Scheduler;
    use weir::spec::Kind;

    let repo = GitRepo::new();
    let sync = |repo: &GitRepo| {
        let path = repo.path().to_str().expect("utf-8").to_owned();
        let out = weir_with(&["sync", "--repo", &path, "--path", "defs"], db);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    };
    repo.write(
        "defs/plan.yaml",
        &crate::common::every_second("true", "none"),
    );
    repo.commit("A schedule");
    sync(&repo);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = weir::store::open(&db.url()).await.expect("store");
        // The active version of `kind` named `name`, and when it became so.
        let active = |kind: Kind, name: &'static str| {
            let store = store.clone();
            async move {
                let found = store
                    .active_versions(kind, name, None)
                    .await
                    .expect("active");
                let digest = found[0].key.digest.clone();
                let versions = store.versions(&Default::default()).await.expect("list");
                let record = versions
                    .into_iter()
                    .find(|v| v.key.digest == digest)
                    .expect("its record");
                (digest, record.last_activated_at.expect("activated"))
            }
        };
        let mut scheduler = Scheduler::new();
        let (task_v1, _) = active(Kind::Task, "tick").await;
        let (_, activated) = active(Kind::LaunchPlan, "every-second").await;
        let now = activated + chrono::Duration::seconds(2);
        let first = scheduler.tick(store.as_ref(), now).await.expect("tick");
        let run = first.created.last().expect("an instant was due");
        let nodes = store.nodes(run).await.expect("nodes");
        assert_eq!(nodes[0].task_version, task_v1);

        repo.write(
            "defs/plan.yaml",
            &crate::common::every_second("echo changed", "none"),
        );
        repo.commit("Change the task");
        sync(&repo);
        let (task_v2, _) = active(Kind::Task, "tick").await;
        assert_ne!(task_v1, task_v2);
        let (_, activated) = active(Kind::LaunchPlan, "every-second").await;
        let later = activated.max(now) + chrono::Duration::seconds(2);
        let next = scheduler.tick(store.as_ref(), later).await.expect("tick");
        assert!(!next.created.is_empty(), "{next:?}");
        for run in &next.created {
            let nodes = store.nodes(run).await.expect("nodes");
            assert_eq!(nodes[0].task_version, task_v2, "{run} runs the new task");
        }
    });
}

#[test]
fn a_changed_task_runs_at_the_next_instant_on_sqlite() {
    a_changed_task_runs_at_the_next_instant(&TestDb::sqlite());
}

#[test]
fn a_changed_task_runs_at_the_next_instant_on_postgres() {
    if let Some(db) = TestDb::postgres() {
        a_changed_task_runs_at_the_next_instant(&db);
    }
}

/// A notebook task runs its notebook, as of its version's commit, with
/// papermill (inputs as parameters), and keeps the executed notebook as the
/// output `notebook`; without papermill it fails saying so.
#[test]
fn a_notebook_task_runs_with_papermill_or_says_it_is_missing() {
    let db = TestDb::sqlite();
    let TestDb::Sqlite(state) = &db else {
        unreachable!()
    };
    let repo = GitRepo::new();
    repo.write(
        "defs/report.yaml",
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: report }
spec:
  inputs: { day: { type: string } }
  outputs: { pages: { type: int } }
  notebook: { path: nb/report.ipynb }
  retries: { attempts: 3, backoff: 10m }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: report-flow }
spec:
  nodes: [ { id: report, task: report, inputs: { day: "2026-11-24" } } ]
"#,
    );
    let notebook = r#"{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#;
    repo.write("defs/nb/report.ipynb", notebook);
    repo.commit("A report notebook");
    let out = weir_with(
        &[
            "sync",
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--path",
            "defs",
        ],
        &db,
    );
    assert_eq!(out.status.code(), Some(0));
    // Later edits of the notebook on disk are not what runs.
    repo.write("defs/nb/report.ipynb", "uncommitted");

    let run_with_path = |path: &str| -> Value {
        let mut args = vec!["run", "report-flow", "--wait", "-o", "json"];
        let store = db.args();
        args.extend(store.iter().map(String::as_str));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(&args)
            .env("PATH", path)
            .output()
            .expect("weir runs");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
        })
    };

    let missing = run_with_path("/usr/bin:/bin");
    assert_eq!(missing["status"], "failed");
    let error = node(&missing, "report")["error"].as_str().expect("error");
    assert!(
        error.contains("papermill, which is not installed"),
        "{error}"
    );
    // Another attempt could not fare better: failed at once, not after
    // three retries ten minutes apart.
    assert_eq!(node(&missing, "report")["attempts"], 1, "{missing:#}");
    assert!(
        error.ends_with("not retried: another attempt would fail the same way"),
        "{error}"
    );

    // A stand-in papermill that does what the real one does with files.
    let bin = tempfile::tempdir().expect("bin");
    let fake = bin.path().join("papermill");
    std::fs::write(
        &fake,
        "#!/bin/sh\n# papermill IN OUT -f PARAMS --cwd DIR\ncp \"$1\" \"$2\"\n\
         grep -q '\"day\":\"2026-11-24\"' \"$4\" || exit 9\n\
         echo '{\"pages\": 2}' > \"$WEIR_OUTPUTS/outputs.json\"\n",
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let ran = run_with_path(&format!("{}:/usr/bin:/bin", bin.path().display()));
    assert_eq!(ran["status"], "succeeded", "{ran:#}");
    let report = node(&ran, "report");
    assert_eq!(report["outputs"]["pages"], 2);
    let executed = report["outputs"]["notebook"]
        .as_str()
        .expect("the executed notebook");
    let digest = executed.strip_prefix("sha256:").expect("artifact");
    let kept = state
        .path()
        .join("artifacts/sha256")
        .join(&digest[..2])
        .join(&digest[2..]);
    assert_eq!(
        std::fs::read_to_string(kept).expect("kept"),
        notebook,
        "the committed notebook ran, not the working copy"
    );
}

/// A repository holding `examples/repo` under `pipelines/`, synced into
/// `db`.
pub fn sync_examples(db: &TestDb) -> GitRepo {
    let repo = GitRepo::new();
    copy_into(
        &repo,
        &crate::common::root().join("examples/repo"),
        "pipelines",
    );
    repo.commit("The examples");
    let out = weir_with(
        &[
            "sync",
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--path",
            "pipelines",
        ],
        db,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo
}

/// Copies a folder of the crate into `repo` (files only, recursively).
pub fn copy_into(repo: &GitRepo, from: &std::path::Path, to: &str) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let rel = format!("{to}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().expect("type").is_dir() {
            copy_into(repo, &entry.path(), &rel);
        } else {
            repo.write(&rel, &std::fs::read_to_string(entry.path()).expect("read"));
        }
    }
}

/// The examples run to success on the local executor: the churn pipeline
/// (python3 scripts, files between nodes, a papermill notebook) and the
/// hourly ETL (a fan-out over regions).
#[test]
fn the_examples_run_to_success() {
    let db = TestDb::sqlite();
    let _repo = sync_examples(&db);

    let (code, churn) = run(&db, &["churn-adhoc"]);
    assert_eq!(code, 0, "{churn:#}");
    assert_eq!(churn["status"], "succeeded");
    assert!(churn["outputs"]["auc"].as_f64().is_some(), "{churn:#}");
    let report = node(&churn, "report");
    assert!(
        report["outputs"]["notebook"]
            .as_str()
            .is_some_and(|n| n.starts_with("sha256:")),
        "the executed notebook is kept: {report:#}"
    );

    let (code, etl) = run(&db, &["hourly-etl", "--input", "hour=2026-11-24T10:00:00Z"]);
    assert_eq!(code, 0, "{etl:#}");
    assert_eq!(etl["status"], "succeeded");
    assert_eq!(etl["nodes"].as_array().expect("nodes").len(), 8);

    // The sweep: a training item per fold; a mean AUC below the bar skips
    // the sign-off and the publish, and the run still succeeds.
    let (code, sweep) = run(&db, &["churn-sweep-adhoc", "--input", "min_auc=1"]);
    assert_eq!(code, 0, "{sweep:#}");
    assert_eq!(sweep["status"], "succeeded", "{sweep:#}");
    let folds = sweep["outputs"]["fold_aucs"].as_array().expect("a list");
    assert_eq!(folds.len(), 4, "{sweep:#}");
    for i in 0..4 {
        assert_eq!(node(&sweep, &format!("train[{i}]"))["status"], "succeeded");
    }
    assert_eq!(node(&sweep, "sign-off")["status"], "skipped");
    assert_eq!(node(&sweep, "publish")["status"], "skipped");
    assert_eq!(sweep["outputs"]["url"], Value::Null);

    // Above the bar, `run --wait` waits at the sign-off until `weir approve`
    // (another process) decides; then the model is published.
    let mut args = vec![
        "run",
        "churn-sweep-adhoc",
        "--input",
        "min_auc=0.5",
        "--wait",
    ];
    let store = db.args();
    args.extend(store.iter().map(String::as_str));
    args.extend(["-o", "json"]);
    let mut waiting = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("weir run");
    let mut id = String::new();
    crate::common::eventually("the sweep waits at its sign-off", || {
        let (_, list) = weir_json(&["executions", "-o", "json"], &db);
        let Some(first) = list.as_array().and_then(|l| l.first()) else {
            return false;
        };
        id = first["id"].as_str().expect("an id").to_owned();
        let (_, execution) = weir_json(&["executions", &id, "-o", "json"], &db);
        node(&execution, "sign-off")["status"] == "waiting"
    });
    let approved = weir_with(&["approve", &id, "sign-off", "--by", "ada"], &db);
    assert_eq!(approved.status.code(), Some(0));
    crate::common::eventually("the approved run ends", || {
        waiting.try_wait().expect("wait").is_some()
    });
    let out = waiting.wait_with_output().expect("the run's output");
    let published: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(published["status"], "succeeded", "{published:#}");
    assert!(
        published["outputs"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://models.example/churn/")),
        "{published:#}"
    );
}

/// A relative `--state-dir` works: attempts run in their own folders, so
/// every path handed to them is absolute.
#[test]
fn a_relative_state_directory_works() {
    let repo = GitRepo::new();
    repo.write("defs/lab.yaml", TASKS);
    repo.commit("Lab pipelines");
    let cwd = tempfile::tempdir().expect("cwd");
    let weir_in = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .args(["--state-dir", "state"])
            .current_dir(cwd.path())
            .output()
            .expect("weir runs")
    };
    let repo_path = repo.path().to_str().expect("utf-8");
    assert!(
        weir_in(&["sync", "--repo", repo_path, "--path", "defs"])
            .status
            .success()
    );
    let out = weir_in(&["run", "chain", "--wait", "-o", "json"]);
    let execution: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
}

/// The engine reads time from its clock, never the system's: on a clock
/// set years ahead, the execution's instants are the clock's, and a retry
/// falls due a backoff after the failure by that clock (were any decision
/// taken on the system clock, the retry due in 2031 would never start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_decides_on_its_own_clock() {
    use std::sync::Arc;
    use weir::artifact::LocalArtifacts;
    use weir::clock::Clock;
    use weir::engine::Engine;
    use weir::engine::create::{self, Request};
    use weir::store::execution::NodeStatus;

    let db = TestDb::sqlite();
    let _repo = setup(&db);
    let TestDb::Sqlite(state) = &db else {
        unreachable!()
    };
    let start = chrono::DateTime::parse_from_rfc3339("2031-03-30T01:30:00Z")
        .expect("an instant")
        .with_timezone(&chrono::Utc);
    let store = weir::store::open(&db.url()).await.expect("store");
    let artifacts = Arc::new(LocalArtifacts::new(state.path().join("artifacts")));
    let engine = Engine::new(store.clone(), artifacts, state.path().to_path_buf())
        .with_task_env(weir::executor::environment::Inherited::from_process(
            Default::default(),
        ))
        .with_clock(Clock::virtual_from(start));
    let request = Request {
        name: "flaky-flow".into(),
        ..Request::default()
    };
    let (execution, _) = create::create(store.as_ref(), &request)
        .await
        .expect("create");
    let finished = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        engine.run_until_finished(&execution.id),
    )
    .await
    .expect("the retry falls due by the engine's clock")
    .expect("run");
    assert_eq!(finished.status.as_str(), "failed", "{finished:?}");
    let within = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.is_some_and(|at| at >= start && at < start + chrono::Duration::minutes(1))
    };
    assert!(within(finished.started_at), "{finished:?}");
    assert!(within(finished.finished_at), "{finished:?}");
    let nodes = store.nodes(&execution.id).await.expect("nodes");
    assert_eq!(nodes[0].status, NodeStatus::Failed);
    assert_eq!(nodes[0].attempts, 2, "retried once, 100 ms later");
    assert!(within(nodes[0].started_at) && within(nodes[0].finished_at));
}

/// A launch plan whose schedule fills a `kickoffTimeInput`, run by hand
/// without it (as `weir plan` suggests for a preview), runs as if kicked
/// off now; given, the value given is kept.
#[test]
fn a_run_by_hand_of_a_scheduled_plan_is_kicked_off_now() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write(
        "defs/daily.yaml",
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: echo-day }
spec:
  inputs: { day: { type: datetime } }
  outputs: { day: { type: string } }
  script:
    interpreter: bash
    source: |
      echo "{\"day\": \"$WEIR_INPUT_DAY\"}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: day-flow }
spec:
  inputs: { day: { type: datetime } }
  nodes: [ { id: echo, task: echo-day, inputs: { day: "{{ inputs.day }}" } } ]
  outputs: { day: "{{ nodes.echo.outputs.day }}" }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: nightly }
spec:
  workflow: day-flow
  schedule: { cron: "0 2 * * *", kickoffTimeInput: day }
"#,
    );
    repo.commit("A nightly plan");
    let out = weir_with(
        &["sync", "--repo", repo.path().to_str().expect("utf-8")],
        &db,
    );
    assert_eq!(out.status.code(), Some(0));
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let (code, ran) = run(&db, &["nightly"]);
    assert_eq!(code, 0, "{ran:#}");
    let day = ran["outputs"]["day"].as_str().expect("the day");
    let day = chrono::DateTime::parse_from_rfc3339(day).expect("an instant");
    assert!(
        day >= before && day <= chrono::Utc::now(),
        "kicked off now: {day}"
    );
    let (code, given) = run(&db, &["nightly", "--input", "day=2026-03-29T02:00:00Z"]);
    assert_eq!(code, 0, "{given:#}");
    assert_eq!(given["outputs"]["day"], "2026-03-29T02:00:00Z");
}
