//! Lineage follows what really flowed (issue 13, item 11): a value (the
//! same `day`, the same row count) links the nodes of one execution only,
//! while a file links every execution that really shares it. Before, the
//! walk joined equal values across executions, so the lineage of one run
//! reached every run of the workflow.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::{GitRepo, TestDb, node, weir_json, weir_with};

const DEFS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: count, project: lab }
spec:
  inputs: { day: { type: string }, tag: { type: string } }
  outputs: { rows: { type: int }, report: { type: file } }
  script:
    interpreter: bash
    source: |
      echo "report $WEIR_INPUT_TAG" > "$WEIR_OUTPUTS/report"
      echo '{"rows": 3}' > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: sum, project: lab }
spec:
  inputs: { rows: { type: int }, report: { type: file } }
  outputs: { total: { type: int } }
  script:
    interpreter: bash
    source: |
      echo "{\"total\": $WEIR_INPUT_ROWS}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: publish, project: lab }
spec:
  inputs: { total: { type: int }, tag: { type: string } }
  outputs: { summary: { type: file } }
  script:
    interpreter: bash
    source: |
      echo "total $WEIR_INPUT_TOTAL for $WEIR_INPUT_TAG" > "$WEIR_OUTPUTS/summary"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: daily, project: lab }
spec:
  inputs: { day: { type: string }, tag: { type: string } }
  nodes:
    - { id: count, task: count, inputs: { day: "{{ inputs.day }}", tag: "{{ inputs.tag }}" } }
    - id: sum
      task: sum
      inputs: { rows: "{{ nodes.count.outputs.rows }}", report: "{{ nodes.count.outputs.report }}" }
    - id: publish
      task: publish
      inputs: { total: "{{ nodes.sum.outputs.total }}", tag: "{{ inputs.tag }}" }
  outputs: { summary: "{{ nodes.publish.outputs.summary }}" }
"#;

fn run(db: &TestDb, tag: &str) -> Value {
    let (code, execution) = weir_json(
        &[
            "run",
            "daily",
            "--input",
            "day=2026-03-01",
            "--input",
            &format!("tag={tag}"),
            "--wait",
            "-o",
            "json",
        ],
        db,
    );
    assert_eq!(code, 0, "{execution:#}");
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    execution
}

/// The executions an edge list reaches.
fn executions(lineage: &Value) -> BTreeSet<String> {
    lineage["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["execution"].as_str().expect("execution").to_owned())
        .collect()
}

fn lineage(db: &TestDb, target: &str, way: &str) -> Value {
    let mut args = vec!["lineage", target, "-o", "json"];
    if !way.is_empty() {
        args.push(way);
    }
    let (code, found) = weir_json(&args, db);
    assert_eq!(code, 0, "{found:#}");
    found
}

fn story(db: &TestDb) {
    let repo = GitRepo::new();
    repo.write("defs/daily.yaml", DEFS);
    repo.commit("daily");
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

    // Three runs on the same day, with the same row count: `a` writes its
    // own report, `b` and `c` write the same one (one artifact).
    let a = run(db, "a");
    let b = run(db, "b");
    let c = run(db, "b");
    let id = |e: &Value| e["id"].as_str().expect("id").to_owned();
    let (a, b, c) = (id(&a), id(&b), id(&c));

    // The lineage of `a`, either way, is `a` alone: the same day and the
    // same row count in other runs are not lineage.
    for way in ["", "--upstream", "--downstream"] {
        let found = lineage(db, &a, way);
        assert_eq!(
            executions(&found),
            BTreeSet::from([a.clone()]),
            "{way}: {found:#}"
        );
    }
    // Inside `a`, values still lead from node to node: the summary was
    // written from `sum`'s total, which came from `count`'s row count.
    let a_doc = weir_json(&["executions", &a, "-o", "json"], db).1;
    let summary = node(&a_doc, "publish")["outputs"]["summary"]
        .as_str()
        .expect("summary")
        .to_owned();
    let up = lineage(db, &summary, "--upstream");
    let reached: BTreeSet<(String, String)> = up["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["execution"].as_str().expect("execution").to_owned(),
                e["node"].as_str().expect("node").to_owned(),
            )
        })
        .collect();
    let own = |nodes: &[&str]| -> BTreeSet<(String, String)> {
        nodes.iter().map(|n| (a.clone(), (*n).to_owned())).collect()
    };
    assert_eq!(reached, own(&["count", "publish", "sum"]), "{up:#}");

    // `b` and `c` really share their report: each one's lineage reaches the
    // other, and never `a`.
    for (one, other) in [(&b, &c), (&c, &b)] {
        let found = lineage(db, one, "");
        assert_eq!(
            executions(&found),
            BTreeSet::from([one.clone(), other.clone()]),
            "{found:#}"
        );
    }
}

#[test]
fn values_link_one_execution_and_files_link_the_runs_that_share_them_on_sqlite() {
    story(&TestDb::sqlite());
}

#[test]
fn values_link_one_execution_and_files_link_the_runs_that_share_them_on_postgres() {
    if let Some(db) = TestDb::postgres() {
        story(&db);
    }
}
