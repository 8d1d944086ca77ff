//! Map nodes (`map:`): a task runs once per item of a list, each item a
//! node of its own (`train[3]`) with its attempts, cache entry and
//! lineage; at most `maxParallel` run at once; the node's outputs are
//! lists in item order, which the next node reads whole (a list of files
//! as local files). A rerun with one
//! item changed runs only that item. Under `minSuccessRatio` below 1 a
//! failed item leaves a null and the node succeeds; at 1 (the default) a
//! failed item fails the node and the execution. `weir validate` refuses,
//! where they are written, a list that is not one, items that do not fit,
//! an `as` that names no input or is bound twice, a map of a gate, and a
//! consumer that does not expect a list (or its nulls). A map of a
//! sub-workflow runs the workflow per item (`fold[3]/prep`), its nodes'
//! failures judged by their item, their cache entries their own.

use serde_json::{Value, json};
use weir::store::execution::NodeStatus;
use weir::validate::Code;

use crate::common::{Backend, GitRepo, on_every_backend, run_head, run_head_in, validate_files};

/// Each item records when it starts and ends in `log` (to count how many
/// run at once), then scores its fold; fold 5 fails when `fragile` while
/// the file `LOG.broken` exists.
const DEFS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: train }
spec:
  inputs:
    fold: { type: int }
    lr: { type: float }
    log: { type: string }
    fragile: { type: bool, default: false }
  outputs: { score: { type: float }, model: { type: file } }
  cache: { enabled: true, ignoreInputs: [log] }
  script:
    interpreter: bash
    source: |
      echo "start $WEIR_INPUT_FOLD" >> "$WEIR_INPUT_LOG"
      sleep 0.2
      echo "end $WEIR_INPUT_FOLD" >> "$WEIR_INPUT_LOG"
      if [ "$WEIR_INPUT_FRAGILE" = true ] && [ "$WEIR_INPUT_FOLD" = 5 ] && [ -e "$WEIR_INPUT_LOG.broken" ]; then
        echo "fold 5 diverged" >&2; exit 1
      fi
      echo "model for fold $WEIR_INPUT_FOLD" > "$WEIR_OUTPUTS/model"
      echo "{\"score\": $WEIR_INPUT_FOLD.5}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: pick }
spec:
  inputs: { scores: { type: "list<float?>" }, models: { type: "list<file?>" } }
  outputs: { best: { type: float }, seen: { type: int }, loaded: { type: int } }
  script:
    interpreter: python3
    source: |
      import json, os
      scores = json.loads(os.environ["WEIR_INPUT_SCORES"])
      kept = [s for s in scores if s is not None]
      best = max(kept) if kept else -1.0
      # Each model is a local file (a failed item's is null).
      models = json.loads(os.environ["WEIR_INPUT_MODELS"])
      loaded = sum(open(m).read().startswith("model for fold") for m in models if m)
      with open(os.path.join(os.environ["WEIR_OUTPUTS"], "outputs.json"), "w") as f:
          json.dump({"best": best, "seen": len(scores), "loaded": loaded}, f)
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: sweep }
spec:
  inputs:
    folds: { type: "list<int>" }
    log: { type: string }
    fragile: { type: bool, default: false }
  nodes:
    - id: train
      task: train
      map: { over: "{{ inputs.folds }}", as: fold, maxParallel: 4 }
      inputs: { lr: 0.1, log: "{{ inputs.log }}", fragile: "{{ inputs.fragile }}" }
    - id: pick
      task: pick
      inputs:
        scores: "{{ nodes.train.outputs.score }}"
        models: "{{ nodes.train.outputs.model }}"
  outputs:
    best: "{{ nodes.pick.outputs.best }}"
    models: "{{ nodes.train.outputs.model }}"
"#;

/// `DEFS` with the sweep tolerating one item in ten failing.
fn tolerant() -> String {
    DEFS.replace("maxParallel: 4 }", "maxParallel: 4, minSuccessRatio: 0.9 }")
}

fn node<'a>(nodes: &'a [weir::store::NodeState], path: &str) -> &'a weir::store::NodeState {
    nodes
        .iter()
        .find(|n| n.node == path)
        .unwrap_or_else(|| panic!("no node {path} in {nodes:#?}"))
}

/// The most items the log shows running at once.
fn most_at_once(log: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(log).expect("the items' log");
    let (mut now, mut most) = (0usize, 0usize);
    for line in text.lines() {
        if line.starts_with("start") {
            now += 1;
            most = most.max(now);
        } else if line.starts_with("end") {
            now -= 1;
        }
    }
    most
}

async fn a_map_runs_an_item_per_value_and_a_changed_item_alone_on_rerun(b: Backend) {
    let repo = GitRepo::new();
    repo.write("sweep.yaml", DEFS);
    repo.commit("A sweep over folds");
    let types = weir::task::TaskTypes::builtin();
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("first.log");
    let inputs = |folds: Value, log: &std::path::Path| json!({ "folds": folds, "log": log.display().to_string() });

    let folds: Vec<u32> = (0..25).collect();
    let first = run_head(
        &repo,
        types.clone(),
        &b,
        "sweep",
        inputs(json!(folds), &log),
    )
    .await;
    assert_eq!(first.status, "succeeded", "{:#?}", first.nodes);
    let paths: Vec<&str> = first.nodes.iter().map(|n| n.node.as_str()).collect();
    let items: Vec<String> = (0..25).map(|i| format!("train[{i}]")).collect();
    assert_eq!(paths[..2], ["train", "pick"], "the plan's nodes first");
    assert_eq!(paths[2..], items, "then the items, in item order");
    for i in 0..25 {
        let item = node(&first.nodes, &format!("train[{i}]"));
        assert_eq!(item.status, NodeStatus::Succeeded);
        assert_eq!(item.attempts, 1);
        assert_eq!(item.task, "train");
        let bound = item.inputs.as_ref().expect("inputs");
        assert_eq!(bound["fold"], i, "each item gets its value");
        assert_eq!(bound["lr"], 0.1, "and the node's other inputs");
    }
    let train = node(&first.nodes, "train");
    assert_eq!(train.status, NodeStatus::Succeeded);
    assert_eq!(train.attempts, 0, "a map node runs nothing itself");
    let outputs = train.outputs.as_ref().expect("outputs");
    let scores: Vec<f64> = (0..25).map(|i| f64::from(i) + 0.5).collect();
    assert_eq!(outputs["score"], json!(scores), "in item order");
    let models = outputs["model"].as_array().expect("a list of files");
    assert_eq!(models.len(), 25);
    assert_eq!(
        node(&first.nodes, "pick").outputs,
        Some(json!({ "best": 24.5, "seen": 25, "loaded": 25 }))
    );
    let most = most_at_once(&log);
    assert_eq!(most, 4, "maxParallel: 4 items at once, no more");

    // Each item has its lineage: its fold in, its model out.
    let execution = &first.nodes[0].execution;
    let edges = b
        .store
        .lineage_of_execution(execution)
        .await
        .expect("lineage");
    let item3: Vec<_> = edges.iter().filter(|e| e.node == "train[3]").collect();
    assert!(
        item3.iter().any(|e| e.name == "model"
            && models[3]
                .as_str()
                .is_some_and(|m| m.contains(e.digest.as_str()))),
        "{item3:#?}"
    );
    // The list the node made is what `pick` read.
    let list_out = edges
        .iter()
        .find(|e| e.node == "train" && e.name == "score")
        .expect("the node's list");
    assert!(
        edges
            .iter()
            .any(|e| e.node == "pick" && e.name == "scores" && e.digest == list_out.digest)
    );

    // One fold changed: only its item runs; the others come from the cache
    // (their models from the first run's artifacts).
    let log = logs.path().join("second.log");
    let mut changed: Vec<u32> = (0..25).collect();
    changed[3] = 30;
    let folds = inputs(json!(changed), &log);
    let second = run_head_in(&repo, types, &b, first.state, "sweep", folds).await;
    assert_eq!(second.status, "succeeded", "{:#?}", second.nodes);
    for i in (0..25).filter(|&i| i != 3) {
        let item = node(&second.nodes, &format!("train[{i}]"));
        assert_eq!(item.cached_from.as_ref(), Some(execution), "train[{i}]");
    }
    let changed = node(&second.nodes, "train[3]");
    assert_eq!(changed.cached_from, None);
    assert_eq!(changed.attempts, 1);
    assert_eq!(
        std::fs::read_to_string(&log).expect("log"),
        "start 30\nend 30\n",
        "only the changed item ran"
    );
    assert_eq!(
        node(&second.nodes, "pick").outputs,
        Some(json!({ "best": 30.5, "seen": 25, "loaded": 25 }))
    );
}

async fn a_failed_item_fails_the_map_unless_the_ratio_allows_it(b: Backend) {
    let logs = tempfile::tempdir().expect("tempdir");
    let types = weir::task::TaskTypes::builtin();
    // Fold 5 fails.
    for log in ["tolerant.log", "strict.log"] {
        std::fs::write(logs.path().join(format!("{log}.broken")), "").expect("marker");
    }
    let inputs = |name: &str| {
        json!({
            "folds": (0..10).collect::<Vec<u32>>(),
            "log": logs.path().join(name).display().to_string(),
            "fragile": true,
        })
    };

    // minSuccessRatio 0.9: fold 5 fails, its place is null, the node succeeds.
    let repo = GitRepo::new();
    repo.write("sweep.yaml", &tolerant());
    repo.commit("A sweep that tolerates a failed fold");
    let ran = run_head(&repo, types.clone(), &b, "sweep", inputs("tolerant.log")).await;
    assert_eq!(ran.status, "succeeded", "{:#?}", ran.nodes);
    assert_eq!(node(&ran.nodes, "train[5]").status, NodeStatus::Failed);
    let outputs = node(&ran.nodes, "train").outputs.clone().expect("outputs");
    let mut scores: Vec<Value> = (0..10).map(|i| json!(f64::from(i) + 0.5)).collect();
    scores[5] = Value::Null;
    assert_eq!(outputs["score"], Value::Array(scores));
    assert_eq!(outputs["model"][5], Value::Null);
    assert_eq!(
        node(&ran.nodes, "pick").outputs,
        Some(json!({ "best": 9.5, "seen": 10, "loaded": 9 }))
    );

    // The default (every item must succeed): the node fails, and with it
    // the execution, naming the item.
    repo.write("sweep.yaml", DEFS);
    repo.commit("A sweep where every fold counts");
    let ran = run_head(&repo, types, &b, "sweep", inputs("strict.log")).await;
    assert_eq!(ran.status, "failed", "{:#?}", ran.nodes);
    let train = node(&ran.nodes, "train");
    assert_eq!(train.status, NodeStatus::Failed);
    let error = train.error.as_deref().unwrap_or_default();
    assert!(error.starts_with("item `train[5]` failed: "), "{error}");
    assert_eq!(node(&ran.nodes, "pick").status, NodeStatus::Skipped);
}

async fn a_map_over_an_empty_list_succeeds_with_empty_lists(b: Backend) {
    let repo = GitRepo::new();
    repo.write("sweep.yaml", DEFS);
    repo.commit("A sweep");
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("empty.log").display().to_string();
    let inputs = json!({ "folds": [], "log": log });
    let ran = run_head(&repo, weir::task::TaskTypes::builtin(), &b, "sweep", inputs).await;
    assert_eq!(ran.status, "succeeded", "{:#?}", ran.nodes);
    assert_eq!(ran.nodes.len(), 2, "no items: {:#?}", ran.nodes);
    assert_eq!(
        node(&ran.nodes, "train").outputs,
        Some(json!({ "score": [], "model": [] }))
    );
    assert_eq!(
        node(&ran.nodes, "pick").outputs,
        Some(json!({ "best": -1.0, "seen": 0, "loaded": 0 }))
    );
}

on_every_backend!(
    a_map_runs_an_item_per_value_and_a_changed_item_alone_on_rerun,
    a_failed_item_fails_the_map_unless_the_ratio_allows_it,
    a_map_over_an_empty_list_succeeds_with_empty_lists,
    a_map_of_a_sub_workflow_runs_it_per_item_and_a_changed_item_alone_on_rerun,
    a_failed_node_fails_its_item_which_its_map_judges,
);

/// Execution `id` once it has ended, as `weir executions ID -o json`
/// shows it.
fn ended(db: &crate::common::TestDb, id: &str) -> Value {
    let mut last = Value::Null;
    crate::common::eventually("the execution ends", || {
        last = crate::common::weir_json(&["executions", id, "-o", "json"], db).1;
        !matches!(last["status"].as_str(), Some("running" | "queued"))
    });
    last
}

/// `weir serve` killed with SIGKILL in the middle of a map, and restarted:
/// the map finishes, and no item that had succeeded runs again (those
/// running when it died were interrupted, and run again as any node's
/// interrupted attempt does; a local process dies with its engine).
#[test]
fn a_map_survives_kill_9_of_its_engine_and_runs_no_finished_item_again() {
    use crate::common::{Daemon, TestDb, assert_same_both_ways, eventually, weir_json};
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/sweep.yaml", DEFS);
    repo.commit("A sweep");
    let path = repo.path().to_str().expect("utf-8");
    let args = ["--repo", path, "--path", "defs", "--lease-duration", "1s"];
    let daemon = Daemon::start(&db, &args);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("items.log");
    let folds: Vec<u32> = (0..25).collect();
    let (code, started) = weir_json(
        &[
            "run",
            "sweep",
            "--input",
            &format!("folds={}", json!(folds)),
            "--input",
            &format!("log={}", log.display()),
            "-o",
            "json",
        ],
        &db,
    );
    assert_eq!(code, 0, "{started:#}");
    let id = started["id"].as_str().expect("an id").to_owned();
    let starts = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("start"))
            .count()
    };
    eventually("the map is under way", || starts() >= 6);
    daemon.kill9();
    let (_, killed) = weir_json(&["executions", &id, "-o", "json"], &db);
    let done_before: Vec<String> = killed["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["status"] == "succeeded")
        .filter_map(|n| n["id"].as_str().filter(|p| p.starts_with("train[")))
        .map(str::to_owned)
        .collect();
    assert!(
        !done_before.is_empty() && done_before.len() < 25,
        "killed in the middle of the map: {done_before:?}"
    );
    let daemon = Daemon::start(&db, &args);
    let execution = ended(&db, &id);
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    let scores: Vec<f64> = (0..25).map(|i| f64::from(i) + 0.5).collect();
    let train = crate::common::node(&execution, "train");
    assert_eq!(train["outputs"]["score"], json!(scores));
    let text = std::fs::read_to_string(&log).expect("log");
    let count = |line: String| text.lines().filter(|l| *l == line).count();
    for path in &done_before {
        let i = &path["train[".len()..path.len() - 1];
        assert_eq!(count(format!("start {i}")), 1, "{path} ran again:\n{text}");
    }
    for i in 0..25 {
        assert!(
            count(format!("end {i}")) >= 1,
            "item {i} never ended:\n{text}"
        );
        let item = crate::common::node(&execution, &format!("train[{i}]"));
        assert_eq!(item["status"], "succeeded", "{item:#}");
    }

    // Its 27 nodes, a page at a time, the same from the store and through
    // the daemon.
    let server = ["--server", daemon.url.as_str()];
    let first = assert_same_both_ways(&["executions", &id, "--nodes", "10"], &db, &server);
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(
        text.contains(&format!(
            "10 of 27 nodes shown; the next: weir executions {id} --after 'train[7]'"
        )),
        "{text}"
    );
    let page = |args: &[&str]| {
        let all: Vec<&str> = [&["executions", &id][..], args, &["-o", "json"]].concat();
        let out = assert_same_both_ways(&all, &db, &server);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
    };
    let first = page(&["--nodes", "10"]);
    assert_eq!(first["nodesTotal"], 27);
    assert_eq!(first["nodesNext"], "train[7]");
    let rest = page(&["--after", "train[7]", "--nodes", "100"]);
    let ids: Vec<&str> = rest["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let expected: Vec<String> = (8..25).map(|i| format!("train[{i}]")).collect();
    assert_eq!(ids, expected, "the rest, in order");
    assert_eq!(rest["nodesNext"], Value::Null, "the last page");
    // A cursor that names no node, or a page size out of range: refused.
    for bad in [&["--after", "train[99]"][..], &["--nodes", "0"]] {
        let all: Vec<&str> = [&["executions", &id][..], bad].concat();
        let out = assert_same_both_ways(&all, &db, &server);
        assert_ne!(out.status.code(), Some(0), "{bad:?}");
    }
    daemon.stop();
}

/// `weir recover` of an execution whose map node failed runs only the
/// items that did not succeed: the others are served from the execution
/// it recovers (even without the cache), and the outputs are whole, in
/// item order.
#[test]
fn recover_runs_only_the_items_that_did_not_succeed() {
    use crate::common::{Daemon, TestDb, weir_json};
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/sweep.yaml", DEFS);
    repo.commit("A sweep");
    let path = repo.path().to_str().expect("utf-8");
    let daemon = Daemon::start(&db, &["--repo", path, "--path", "defs"]);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("items.log");
    let broken = logs.path().join("items.log.broken");
    std::fs::write(&broken, "").expect("marker");
    let folds: Vec<u32> = (0..10).collect();
    let (code, started) = weir_json(
        &[
            "run",
            "sweep",
            "--no-cache",
            "--input",
            &format!("folds={}", json!(folds)),
            "--input",
            &format!("log={}", log.display()),
            "--input",
            "fragile=true",
            "-o",
            "json",
        ],
        &db,
    );
    assert_eq!(code, 0, "{started:#}");
    let id = started["id"].as_str().expect("an id").to_owned();
    let failed = ended(&db, &id);
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let done_before: Vec<String> = failed["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["status"] == "succeeded")
        .filter_map(|n| n["id"].as_str())
        .map(str::to_owned)
        .collect();
    assert!(!done_before.is_empty(), "{failed:#}");
    let before = std::fs::read_to_string(&log).expect("log");

    std::fs::remove_file(&broken).expect("mended");
    let (code, recovering) = weir_json(&["recover", &id, "-o", "json"], &db);
    assert_eq!(code, 0, "{recovering:#}");
    let recovered_id = recovering["id"].as_str().expect("an id").to_owned();
    let recovered = ended(&db, &recovered_id);
    assert_eq!(recovered["status"], "succeeded", "{recovered:#}");
    let scores: Vec<f64> = (0..10).map(|i| f64::from(i) + 0.5).collect();
    let train = crate::common::node(&recovered, "train");
    assert_eq!(
        train["outputs"]["score"],
        json!(scores),
        "whole, in item order"
    );
    let after = std::fs::read_to_string(&log).expect("log");
    let rerun = &after[before.len()..];
    for path in &done_before {
        let node = crate::common::node(&recovered, path);
        assert_eq!(node["cachedFrom"], id.as_str(), "{path}: {node:#}");
        let i = &path["train[".len()..path.len() - 1];
        assert!(
            !rerun.lines().any(|l| l == format!("start {i}")),
            "{path} ran again:\n{rerun}"
        );
    }
    assert!(
        rerun.contains("start 5\n"),
        "the failed item ran again:\n{rerun}"
    );
    daemon.stop();
}

/// Each case's text refused once with its code, saying what it says, at
/// the place that starts with its last string; each good text accepted.
fn refused_where_written(file: &str, cases: Vec<(String, Code, &str, &str)>, good: [String; 2]) {
    for (text, code, says, at) in cases {
        let report = validate_files(&[(file, &text)]);
        let found: Vec<_> = report
            .diagnostics
            .iter()
            .filter(|d| d.code == code)
            .collect();
        assert_eq!(found.len(), 1, "{says}: {:#?}", report.diagnostics);
        let d = found[0];
        assert!(d.message.contains(says), "{says}: {}", d.message);
        let pos = d.pos.expect("a position");
        let line = text.lines().nth(pos.line as usize - 1).expect("the line");
        assert!(
            line[pos.column as usize - 1..].starts_with(at),
            "{says}: reported at {}:{} `{line}`",
            pos.line,
            pos.column
        );
    }
    for good in good {
        let report = validate_files(&[(file, &good)]);
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }
}

/// Each bad map, at the value it is about.
#[test]
fn validate_refuses_bad_maps_where_they_are_written() {
    let sub = r#"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: inner }
spec:
  inputs: { fold: { type: int } }
  nodes:
    - { id: p, task: pick, inputs: { scores: [] } }
    - { id: ok, approve: { prompt: "Go on?", timeout: 1h }, after: [p] }
"#;
    let cases: Vec<(String, Code, &str, &str)> = vec![
        (
            DEFS.replace("over: \"{{ inputs.folds }}\"", "over: \"{{ inputs.log }}\""),
            Code::MapOver,
            "`map.over` must be a list, but `{{ inputs.log }}` is string",
            "\"{{ inputs.log",
        ),
        (
            DEFS.replace(
                "folds: { type: \"list<int>\" }",
                "folds: { type: \"list<string>\" }",
            ),
            Code::MapOver,
            "the items of `{{ inputs.folds }}` are string, but input `fold` of task `train` is int",
            "\"{{ inputs.folds",
        ),
        (
            DEFS.replace("over: \"{{ inputs.folds }}\"", "over: [1, two]"),
            Code::MapOver,
            "`map.over`: item 1: expected int, found a string",
            "[1, two]",
        ),
        (
            DEFS.replace("as: fold", "as: folds"),
            Code::MapItem,
            "`map.as: folds`: task `train` has no input `folds`",
            "folds,",
        ),
        (
            DEFS.replace("inputs: { lr: 0.1,", "inputs: { fold: 1, lr: 0.1,"),
            Code::MapItem,
            "input `fold` of task `train` is bound to each item by `map.as`",
            "fold: 1",
        ),
        (
            DEFS.replace(
                "      task: pick\n",
                "      workflow: inner\n      map: { over: [1], as: fold }\n",
            ) + sub,
            Code::MapItem,
            "node `pick` maps workflow `inner`, but its node `ok` is an approval gate",
            "{ over: [1]",
        ),
        (
            DEFS.replace(
                "scores: { type: \"list<float?>\" }",
                "scores: { type: float }",
            ),
            Code::TypeMismatch,
            "input `scores` of task `pick` is float, but `{{ nodes.train.outputs.score }}` is list<float>",
            "\"{{ nodes.train",
        ),
        (
            tolerant().replace(
                "scores: { type: \"list<float?>\" }",
                "scores: { type: \"list<float>\" }",
            ),
            Code::TypeMismatch,
            "is list<float>, but `{{ nodes.train.outputs.score }}` is list<float?>",
            "\"{{ nodes.train",
        ),
    ];
    refused_where_written("sweep.yaml", cases, [DEFS.to_owned(), tolerant()]);
}

/// A map over a sub-workflow: per fold, `prep` then `fit` (logged, to
/// count how many items run at once), and a `report` only when `lr` is
/// above 1 (so the optional output `note` is null otherwise). `prep` of
/// fold 5 fails while `LOG.broken` exists.
const PIPELINE: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: prep }
spec:
  inputs: { fold: { type: int }, log: { type: string } }
  outputs: { rows: { type: int } }
  cache: { enabled: true, ignoreInputs: [log] }
  script:
    interpreter: bash
    source: |
      echo "prep $WEIR_INPUT_FOLD" >> "$WEIR_INPUT_LOG"
      if [ "$WEIR_INPUT_FOLD" = 5 ] && [ -e "$WEIR_INPUT_LOG.broken" ]; then
        echo "fold 5 is unreadable" >&2; exit 1
      fi
      echo "{\"rows\": $((WEIR_INPUT_FOLD * 10))}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: fit }
spec:
  inputs: { rows: { type: int }, lr: { type: float }, log: { type: string } }
  outputs: { score: { type: float } }
  cache: { enabled: true, ignoreInputs: [log] }
  script:
    interpreter: bash
    source: |
      echo "start $WEIR_INPUT_ROWS" >> "$WEIR_INPUT_LOG"
      sleep 0.2
      echo "end $WEIR_INPUT_ROWS" >> "$WEIR_INPUT_LOG"
      echo "{\"score\": $WEIR_INPUT_ROWS.5}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: report }
spec:
  inputs: { score: { type: float } }
  outputs: { text: { type: string } }
  script:
    interpreter: bash
    source: |
      echo "{\"text\": \"scored $WEIR_INPUT_SCORE\"}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: total }
spec:
  inputs: { scores: { type: "list<float?>" } }
  outputs: { sum: { type: float } }
  script:
    interpreter: python3
    source: |
      import json, os
      scores = json.loads(os.environ["WEIR_INPUT_SCORES"])
      with open(os.path.join(os.environ["WEIR_OUTPUTS"], "outputs.json"), "w") as f:
          json.dump({"sum": sum(s for s in scores if s is not None)}, f)
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: fold-pipeline }
spec:
  inputs: { fold: { type: int }, lr: { type: float }, log: { type: string } }
  nodes:
    - { id: prep, task: prep, inputs: { fold: "{{ inputs.fold }}", log: "{{ inputs.log }}" } }
    - id: fit
      task: fit
      inputs: { rows: "{{ nodes.prep.outputs.rows }}", lr: "{{ inputs.lr }}", log: "{{ inputs.log }}" }
    - id: report
      task: report
      when: "inputs.lr > 1.0"
      inputs: { score: "{{ nodes.fit.outputs.score }}" }
  outputs:
    score: "{{ nodes.fit.outputs.score }}"
    note: { from: "{{ nodes.report.outputs.text }}", optional: true }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: cv }
spec:
  inputs:
    folds: { type: "list<int>" }
    log: { type: string }
    lr: { type: float, default: 0.5 }
  nodes:
    - id: fold
      workflow: fold-pipeline
      map: { over: "{{ inputs.folds }}", as: fold, maxParallel: 2 }
      inputs: { lr: "{{ inputs.lr }}", log: "{{ inputs.log }}" }
    - id: total
      task: total
      inputs: { scores: "{{ nodes.fold.outputs.score }}" }
  outputs:
    scores: "{{ nodes.fold.outputs.score }}"
    notes: "{{ nodes.fold.outputs.note }}"
    total: "{{ nodes.total.outputs.sum }}"
"#;

/// `PIPELINE` with the map tolerating one fold in five failing.
fn tolerant_pipeline() -> String {
    PIPELINE.replace("maxParallel: 2 }", "maxParallel: 2, minSuccessRatio: 0.8 }")
}

async fn a_map_of_a_sub_workflow_runs_it_per_item_and_a_changed_item_alone_on_rerun(b: Backend) {
    let repo = GitRepo::new();
    repo.write("cv.yaml", PIPELINE);
    repo.commit("Cross-validation: a pipeline per fold");
    let types = weir::task::TaskTypes::builtin();
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("first.log");
    let inputs = |folds: Value, log: &std::path::Path| json!({ "folds": folds, "log": log.display().to_string() });

    let first = run_head(
        &repo,
        types.clone(),
        &b,
        "cv",
        inputs(json!([0, 1, 2, 3, 4, 5]), &log),
    )
    .await;
    assert_eq!(first.status, "succeeded", "{:#?}", first.nodes);
    let paths: Vec<&str> = first.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(paths[..2], ["fold", "total"], "the plan's nodes first");
    for i in 0..6 {
        let item = node(&first.nodes, &format!("fold[{i}]"));
        assert_eq!(item.status, NodeStatus::Succeeded);
        assert_eq!(
            item.attempts, 0,
            "an item of a workflow runs its nodes, nothing itself"
        );
        assert_eq!(item.task, "fold-pipeline");
        let bound = item.inputs.as_ref().expect("inputs");
        assert_eq!(bound["fold"], i, "each item gets its value");
        assert_eq!(bound["lr"], 0.5, "and the node's other inputs");
        let score = f64::from(i * 10) + 0.5;
        assert_eq!(item.outputs, Some(json!({ "score": score, "note": null })));
        // Its nodes, under its path, each with its attempt.
        let prep = node(&first.nodes, &format!("fold[{i}]/prep"));
        assert_eq!((prep.status, prep.attempts), (NodeStatus::Succeeded, 1));
        assert_eq!(prep.inputs.as_ref().expect("inputs")["fold"], i);
        let fit = node(&first.nodes, &format!("fold[{i}]/fit"));
        assert_eq!(fit.outputs, Some(json!({ "score": score })));
        let report = node(&first.nodes, &format!("fold[{i}]/report"));
        assert_eq!(
            report.status,
            NodeStatus::Skipped,
            "`when: inputs.lr > 1.0`"
        );
        let at = |p: &str| paths.iter().position(|q| *q == p).expect("a row");
        assert!(
            at(&format!("fold[{i}]")) < at(&format!("fold[{i}]/prep")),
            "an item before its nodes"
        );
    }
    let fold = node(&first.nodes, "fold");
    assert_eq!(fold.attempts, 0, "a map node runs nothing itself");
    let scores: Vec<f64> = (0..6).map(|i| f64::from(i * 10) + 0.5).collect();
    assert_eq!(
        fold.outputs,
        Some(json!({ "score": scores, "note": [null, null, null, null, null, null] })),
        "lists in item order; a skipped optional output is null"
    );
    assert_eq!(
        node(&first.nodes, "total").outputs,
        Some(json!({ "sum": 153.0 }))
    );
    assert_eq!(
        most_at_once(&log),
        2,
        "maxParallel: 2 items at once, no more"
    );

    // Each item's nodes have their lineage.
    let execution = &first.nodes[0].execution;
    let edges = b
        .store
        .lineage_of_execution(execution)
        .await
        .expect("lineage");
    assert!(
        edges
            .iter()
            .any(|e| e.node == "fold[3]/fit" && e.name == "score"),
        "{edges:#?}"
    );

    // One fold changed: only its item's nodes run; the others' come from
    // the cache.
    let log = logs.path().join("second.log");
    let second = run_head_in(
        &repo,
        types,
        &b,
        first.state,
        "cv",
        inputs(json!([0, 1, 2, 7, 4, 5]), &log),
    )
    .await;
    assert_eq!(second.status, "succeeded", "{:#?}", second.nodes);
    for i in [0, 1, 2, 4, 5] {
        for step in ["prep", "fit"] {
            let n = node(&second.nodes, &format!("fold[{i}]/{step}"));
            assert_eq!(n.cached_from.as_ref(), Some(execution), "fold[{i}]/{step}");
        }
    }
    assert_eq!(
        std::fs::read_to_string(&log).expect("log"),
        "prep 7\nstart 70\nend 70\n",
        "only the changed item ran"
    );
    assert_eq!(
        node(&second.nodes, "fold[3]").outputs,
        Some(json!({ "score": 70.5, "note": null }))
    );
}

async fn a_failed_node_fails_its_item_which_its_map_judges(b: Backend) {
    let logs = tempfile::tempdir().expect("tempdir");
    let types = weir::task::TaskTypes::builtin();
    for log in ["tolerant.log", "strict.log"] {
        std::fs::write(logs.path().join(format!("{log}.broken")), "").expect("marker");
    }
    let inputs = |name: &str| {
        json!({
            "folds": (1..=5).collect::<Vec<u32>>(),
            "log": logs.path().join(name).display().to_string(),
            "lr": 2.0,
        })
    };
    // minSuccessRatio 0.8: fold 5's item fails (its `prep` did, its `fit`
    // never ran), its place is null, and the map succeeds.
    let repo = GitRepo::new();
    repo.write("cv.yaml", &tolerant_pipeline());
    repo.commit("Cross-validation that tolerates a bad fold");
    let ran = run_head(&repo, types.clone(), &b, "cv", inputs("tolerant.log")).await;
    assert_eq!(ran.status, "succeeded", "{:#?}", ran.nodes);
    let item = node(&ran.nodes, "fold[4]");
    assert_eq!(item.status, NodeStatus::Failed);
    let error = item.error.as_deref().unwrap_or_default();
    assert!(error.starts_with("node `fold[4]/prep` failed: "), "{error}");
    assert_eq!(node(&ran.nodes, "fold[4]/fit").status, NodeStatus::Skipped);
    let outputs = node(&ran.nodes, "fold").outputs.clone().expect("outputs");
    assert_eq!(outputs["score"], json!([10.5, 20.5, 30.5, 40.5, null]));
    assert_eq!(
        outputs["note"][0], "scored 10.5",
        "`when: inputs.lr > 1.0` held"
    );
    assert_eq!(outputs["note"][4], Value::Null);

    // Every item must succeed (the default): the map fails, and with it
    // the execution, naming the item and its node.
    repo.write("cv.yaml", PIPELINE);
    repo.commit("Every fold counts");
    let ran = run_head(&repo, types, &b, "cv", inputs("strict.log")).await;
    assert_eq!(ran.status, "failed", "{:#?}", ran.nodes);
    let fold = node(&ran.nodes, "fold");
    let error = fold.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("item `fold[4]` failed: node `fold[4]/prep` failed: "),
        "{error}"
    );
    assert_eq!(node(&ran.nodes, "total").status, NodeStatus::Skipped);
    assert!(
        ran.nodes
            .iter()
            .all(|n| n.status != NodeStatus::Running && n.status != NodeStatus::Pending),
        "{:#?}",
        ran.nodes
    );
}

/// A map of a sub-workflow is checked as a map of a task is, against the
/// workflow's inputs and outputs (an optional output makes a list of
/// `T?`), and a workflow that holds a gate or a map of its own is refused.
#[test]
fn validate_checks_a_map_of_a_sub_workflow_where_it_is_written() {
    let cases: Vec<(String, Code, &str, &str)> = vec![
        (
            PIPELINE.replace("as: fold,", "as: folds,"),
            Code::MapItem,
            "`map.as: folds`: workflow `fold-pipeline` has no input `folds`",
            "folds,",
        ),
        (
            PIPELINE.replace("folds: { type: \"list<int>\" }", "folds: { type: \"list<string>\" }"),
            Code::MapOver,
            "the items of `{{ inputs.folds }}` are string, but input `fold` of workflow `fold-pipeline` is int",
            "\"{{ inputs.folds",
        ),
        (
            PIPELINE.replace(
                "scores: \"{{ nodes.fold.outputs.score }}\"",
                "scores: \"{{ nodes.fold.outputs.note }}\"",
            ),
            Code::TypeMismatch,
            "is list<float?>, but `{{ nodes.fold.outputs.note }}` is list<string?>",
            "\"{{ nodes.fold",
        ),
        (
            PIPELINE.replace(
                "    - { id: prep, task: prep, inputs: { fold: \"{{ inputs.fold }}\", log: \"{{ inputs.log }}\" } }",
                "    - { id: prep, task: prep, map: { over: [1], as: fold }, inputs: { log: \"{{ inputs.log }}\" } }",
            )
            .replace("rows: \"{{ nodes.prep.outputs.rows }}\"", "rows: 1"),
            Code::MapItem,
            "node `fold` maps workflow `fold-pipeline`, but its node `prep` maps",
            "{ over: \"{{ inputs.folds",
        ),
    ];
    refused_where_written("cv.yaml", cases, [PIPELINE.to_owned(), tolerant_pipeline()]);
}

/// `weir recover` of an execution whose map of a sub-workflow failed runs
/// only the item that failed, all of its nodes; the items that succeeded
/// and their nodes are served from the execution it recovers.
#[test]
fn recover_of_a_map_of_a_sub_workflow_runs_only_the_failed_item() {
    use crate::common::{Daemon, TestDb, weir_json};
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/cv.yaml", PIPELINE);
    repo.commit("Cross-validation");
    let path = repo.path().to_str().expect("utf-8");
    let daemon = Daemon::start(&db, &["--repo", path, "--path", "defs"]);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("items.log");
    let broken = logs.path().join("items.log.broken");
    std::fs::write(&broken, "").expect("marker");
    let (code, started) = weir_json(
        &[
            "run",
            "cv",
            "--no-cache",
            "--input",
            "folds=[1,2,3,4,5]",
            "--input",
            &format!("log={}", log.display()),
            "-o",
            "json",
        ],
        &db,
    );
    assert_eq!(code, 0, "{started:#}");
    let id = started["id"].as_str().expect("an id").to_owned();
    let failed = ended(&db, &id);
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let item = crate::common::node(&failed, "fold[4]");
    assert_eq!(item["status"], "failed", "{item:#}");
    let before = std::fs::read_to_string(&log).expect("log");

    std::fs::remove_file(&broken).expect("mended");
    let (code, recovering) = weir_json(&["recover", &id, "-o", "json"], &db);
    assert_eq!(code, 0, "{recovering:#}");
    let recovered_id = recovering["id"].as_str().expect("an id").to_owned();
    let recovered = ended(&db, &recovered_id);
    assert_eq!(recovered["status"], "succeeded", "{recovered:#}");
    let fold = crate::common::node(&recovered, "fold");
    assert_eq!(
        fold["outputs"]["score"],
        json!([10.5, 20.5, 30.5, 40.5, 50.5])
    );
    // An item interrupted by fail-fast may have run in part: it begins
    // again whole (a member that succeeded in it runs again, as the cache
    // is off), and only the items that succeeded are served, with their
    // nodes.
    for n in failed["nodes"].as_array().expect("nodes") {
        let path = n["id"].as_str().expect("a path");
        let item = path.split('/').next().expect("an item's path");
        let item_succeeded = crate::common::node(&failed, item)["status"] == "succeeded";
        if n["status"] == "succeeded" && path.starts_with("fold[") && item_succeeded {
            let served = crate::common::node(&recovered, path);
            assert_eq!(served["cachedFrom"], id.as_str(), "{path}: {served:#}");
        }
    }
    let after = std::fs::read_to_string(&log).expect("log");
    let rerun = &after[before.len()..];
    assert!(
        rerun.contains("prep 5\n"),
        "the failed item ran again:\n{rerun}"
    );
    assert!(
        !rerun.contains("prep 1\n"),
        "a succeeded item ran again:\n{rerun}"
    );
    daemon.stop();
}
