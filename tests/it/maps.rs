//! Map nodes (`map:`): a task runs once per item of a list, each item a
//! node of its own (`train[3]`) with its attempts, cache entry and
//! lineage; at most `maxParallel` run at once; the node's outputs are
//! lists in item order, which the next node reads whole (a list of files
//! as local files). A rerun with one
//! item changed runs only that item. Under `minSuccessRatio` below 1 a
//! failed item leaves a null and the node succeeds; at 1 (the default) a
//! failed item fails the node and the execution. `weir validate` refuses,
//! where they are written, a list that is not one, items that do not fit,
//! an `as` that names no input or is bound twice, a map of a sub-workflow,
//! and a consumer that does not expect a list (or its nulls).

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
        } else {
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
);

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
    eventually("the execution ends", || {
        let (_, execution) = weir_json(&["executions", &id, "-o", "json"], &db);
        execution["status"] != "running" && execution["status"] != "queued"
    });
    let (_, execution) = weir_json(&["executions", &id, "-o", "json"], &db);
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
    use crate::common::{Daemon, TestDb, eventually, weir_json};
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
    let ended = |id: &str| {
        let mut last = Value::Null;
        eventually("the execution ends", || {
            last = weir_json(&["executions", id, "-o", "json"], &db).1;
            !matches!(last["status"].as_str(), Some("running" | "queued"))
        });
        last
    };
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
    let failed = ended(&id);
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
    let recovered = ended(&recovered_id);
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
            "node `pick` maps workflow `inner`: `map:` runs a task",
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
    for (text, code, says, at) in cases {
        let report = validate_files(&[("sweep.yaml", &text)]);
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
    for good in [DEFS.to_owned(), tolerant()] {
        let report = validate_files(&[("sweep.yaml", &good)]);
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }
}
