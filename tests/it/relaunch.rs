//! `weir relaunch` and `weir recover` (issue 18, item 4): an ended
//! execution runs again from what it recorded; recover re-runs only the
//! failed node and what depends on it, the nodes that succeeded served
//! from the original, with lineage.

use serde_json::Value;

use crate::common::{Daemon, GitRepo, TestDb, node, stderr, weir_json, weir_with};

const CHAIN: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: count }
spec:
  inputs: { counter: { type: string } }
  outputs: { n: { type: int } }
  script:
    interpreter: bash
    source: |
      echo ran >> "$WEIR_INPUT_COUNTER"
      echo "{\"n\": $(wc -l < "$WEIR_INPUT_COUNTER")}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: flaky }
spec:
  inputs: { gate: { type: string }, n: { type: int } }
  script:
    interpreter: bash
    source: test -e "$WEIR_INPUT_GATE"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: after }
spec:
  script: { interpreter: bash, source: "true" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: chain }
spec:
  inputs: { counter: { type: string }, gate: { type: string } }
  nodes:
    - { id: count, task: count, inputs: { counter: "{{ inputs.counter }}" } }
    - { id: flaky, task: flaky, inputs: { gate: "{{ inputs.gate }}", n: "{{ nodes.count.outputs.n }}" } }
    - { id: after, task: after, after: [flaky] }
"#;

#[test]
fn recover_reruns_only_what_failed_and_relaunch_everything() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("chain.yaml", CHAIN);
    repo.commit("A chain with a flaky step");
    let daemon = Daemon::start(
        &db,
        &[
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--interval",
            "1h",
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = dir.path().join("counter");
    let gate = dir.path().join("gate");
    let counted = || {
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let watch = |id: &str| {
        weir_with(&["executions", id, "--watch", "-o", "json"], &db)
            .status
            .code()
    };
    let (code, first) = weir_json(
        &[
            "run",
            "chain",
            "--input",
            &format!("counter={}", counter.display()),
            "--input",
            &format!("gate={}", gate.display()),
            "-o",
            "json",
        ],
        &db,
    );
    assert_eq!(code, 0, "{first:#}");
    let first = first["id"].as_str().expect("an id").to_owned();
    assert_eq!(watch(&first), Some(1), "the flaky step fails");
    assert_eq!(counted(), 1);

    std::fs::write(&gate, "").expect("open the gate");
    let (code, recovered) = weir_json(&["recover", &first, "-o", "json"], &db);
    assert_eq!(code, 0, "{recovered:#}");
    let count = node(&recovered, "count");
    assert_eq!(count["status"], "succeeded", "{recovered:#}");
    assert_eq!(count["cachedFrom"], Value::from(first.as_str()));
    assert_eq!(count["outputs"]["n"], 1);
    assert_eq!(node(&recovered, "flaky")["status"], "pending");
    let recovered = recovered["id"].as_str().expect("an id").to_owned();
    assert_eq!(watch(&recovered), Some(0), "recovered");
    assert_eq!(counted(), 1, "the node that succeeded did not run again");
    let (_, lineage) = weir_json(&["lineage", &recovered, "-o", "json"], &db);
    assert!(
        lineage["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .any(|e| e["node"] == "count" && e["name"] == "n"),
        "the served node is in the recovery's lineage: {lineage:#}"
    );

    let refused = weir_with(&["recover", &recovered], &db);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("nothing to recover"),
        "{}",
        stderr(&refused)
    );

    let (code, relaunched) = weir_json(&["relaunch", &recovered, "-o", "json"], &db);
    assert_eq!(code, 0, "{relaunched:#}");
    assert!(
        relaunched["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .all(|n| n["status"] == "pending"),
        "{relaunched:#}"
    );
    let (_, before) = weir_json(&["executions", &recovered, "-o", "json"], &db);
    assert_eq!(relaunched["inputs"], before["inputs"], "the same inputs");
    assert_eq!(relaunched["workflowVersion"], before["workflowVersion"]);
    let relaunched = relaunched["id"].as_str().expect("an id").to_owned();
    assert_eq!(watch(&relaunched), Some(0));
    assert_eq!(counted(), 2, "relaunch runs every node");

    assert_eq!(
        weir_with(&["relaunch", "no-such-run"], &db).status.code(),
        Some(3)
    );
    drop(daemon);
}
