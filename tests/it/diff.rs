//! `weir diff`: what changed between two runs. The story: a two-node
//! pipeline runs; a commit changes the script of `train` only (another
//! commit touches nothing the source reads); sync; it runs again. The diff
//! names `train` as changed, with the commit and the output that changed,
//! and `prepare` as the same and served from the cache.

use serde_json::Value;

use crate::common::{GitRepo, TestDb, node, stdout, weir_json, weir_with};

/// `prepare` writes a file; `train` reads it and writes a model and a
/// score. `DEPTH` is what the second commit changes.
fn pipeline(depth: u32) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: prepare, project: lab }}
spec:
  outputs: {{ rows: {{ type: file }} }}
  script:
    interpreter: bash
    source: |
      seq 1 5 > "$WEIR_OUTPUTS/rows"
  cache: {{ enabled: true }}
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: train, project: lab }}
spec:
  inputs: {{ rows: {{ type: file }} }}
  outputs: {{ model: {{ type: file }}, depth: {{ type: int }} }}
  script:
    interpreter: bash
    source: |
      rows=$(wc -l < "$WEIR_INPUT_ROWS")
      echo "depth {depth} on $rows rows" > "$WEIR_OUTPUTS/model"
      echo '{{"depth": {depth}}}' > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: pipeline, project: lab }}
spec:
  nodes:
    - {{ id: prepare, task: prepare }}
    - {{ id: train, task: train, inputs: {{ rows: "{{{{ nodes.prepare.outputs.rows }}}}" }} }}
  outputs: {{ model: "{{{{ nodes.train.outputs.model }}}}" }}
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: {{ name: nightly, project: lab }}
spec:
  workflow: pipeline
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: other, project: lab }}
spec:
  nodes: [ {{ id: prepare, task: prepare }} ]
"#
    )
}

fn sync(repo: &GitRepo, db: &TestDb) {
    let path = repo.path().to_str().expect("utf-8");
    let out = weir_with(&["sync", "--repo", path, "--path", "defs"], db);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `weir run NAME --wait -o json`, succeeded.
fn run(db: &TestDb, name: &str) -> Value {
    let (code, execution) = weir_json(&["run", name, "--wait", "-o", "json"], db);
    assert_eq!(code, 0, "{execution:#}");
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    execution
}

fn id(execution: &Value) -> &str {
    execution["id"].as_str().expect("an id")
}

/// `weir diff ARGS`: exit `code` and the message on stderr (3: nothing
/// to compare with; 2: two executions that cannot be compared).
#[track_caller]
fn refused(db: &TestDb, args: &[&str], code: i32) -> String {
    let mut all = vec!["diff"];
    all.extend_from_slice(args);
    let out = weir_with(&all, db);
    assert_eq!(
        out.status.code(),
        Some(code),
        "weir {all:?}: {}",
        stdout(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn diff_names_the_changed_task_its_commit_and_output() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/pipeline.yaml", &pipeline(2));
    let first_commit = repo.commit("Pipeline: prepare and train");
    sync(&repo, &db);
    let a = run(&db, "nightly");
    assert_eq!(
        refused(&db, &[id(&a)], 3),
        format!(
            "error: no execution of launch plan lab/nightly succeeded before `{}`: name the one to compare it with (weir diff {} BASE)\n",
            id(&a),
            id(&a)
        ),
        "the first run has nothing before it"
    );

    repo.write("README.md", "# pipelines\n");
    repo.commit("Say what the repository is for");
    repo.write("defs/pipeline.yaml", &pipeline(3));
    let second_commit = repo.commit("Train a deeper model\n\nDepth 3 fits better.");
    sync(&repo, &db);
    let b = run(&db, "nightly");

    let (code, diff) = weir_json(&["diff", id(&b), id(&a), "-o", "json"], &db);
    assert_eq!(code, 0, "{diff:#}");
    assert_eq!(diff["from"]["id"], id(&a));
    assert_eq!(diff["to"]["id"], id(&b));
    assert_eq!(diff["from"]["commit"], first_commit.as_str());
    assert_eq!(diff["to"]["commit"], second_commit.as_str());
    let added = diff["commits"]["added"].as_array().expect("commits");
    assert_eq!(
        added.len(),
        1,
        "only the commit that touched the definitions: {diff:#}"
    );
    assert_eq!(added[0]["id"], second_commit.as_str());
    assert_eq!(added[0]["subject"], "Train a deeper model");
    assert_eq!(added[0]["author"], "Ada Lovelace");
    assert_eq!(diff["commits"]["error"], Value::Null);

    let prepare = node(&diff, "prepare");
    assert_eq!(prepare["change"], "same");
    assert_eq!(prepare["to"]["cached"], true);
    assert_eq!(prepare["to"]["cachedFrom"], id(&a));
    assert_eq!(prepare["outputs"], serde_json::json!([]));

    let train = node(&diff, "train");
    assert_eq!(train["change"], "changed");
    assert_eq!(train["to"]["cached"], false);
    assert_ne!(train["from"]["taskVersion"], train["to"]["taskVersion"]);
    let definition = train["definition"].as_str().expect("the definition's diff");
    assert!(
        definition.contains("-      echo '{\"depth\": 2}'")
            && definition.contains("+      echo '{\"depth\": 3}'"),
        "{definition}"
    );
    let outputs = train["outputs"].as_array().expect("outputs");
    let depth = outputs
        .iter()
        .find(|o| o["name"] == "depth")
        .expect("depth changed");
    assert_eq!((&depth["from"], &depth["to"]), (&2.into(), &3.into()));
    let model = outputs
        .iter()
        .find(|o| o["name"] == "model")
        .expect("model changed");
    assert!(
        model["to"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "files as artifact digests: {model}"
    );
    assert_eq!(
        diff["outputs"][0]["name"], "model",
        "the workflow's output too"
    );

    // One argument: the last succeeded run of the same launch plan.
    let (code, last) = weir_json(&["diff", id(&b), "-o", "json"], &db);
    assert_eq!(code, 0, "{last:#}");
    assert_eq!(last, diff);

    // The other way round, the commit is the base's only.
    let (_, back) = weir_json(&["diff", id(&a), id(&b), "-o", "json"], &db);
    assert_eq!(back["commits"]["added"], serde_json::json!([]));
    assert_eq!(back["commits"]["removed"][0]["id"], second_commit.as_str());
    assert_eq!(node(&back, "train")["change"], "changed");

    // For people: the commit's subject, then a line per node.
    let out = weir_with(&["diff", id(&b)], &db);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("Train a deeper model"), "{text}");
    assert!(
        text.contains("  = prepare  prepare@")
            && text.contains(&format!("cached (from {})", id(&a))),
        "{text}"
    );
    assert!(text.contains("  ~ train    train@"), "{text}");
    assert!(text.contains("depth: 2 → 3"), "{text}");

    // What cannot be compared is refused, saying why.
    assert_eq!(
        refused(&db, &[id(&b), "nope"], 3),
        "error: no execution `nope`\n"
    );
    let other = run(&db, "other");
    let message = refused(&db, &[id(&b), id(&other)], 2);
    assert!(
        message.contains("ran workflow lab/pipeline but") && message.contains("ran lab/other"),
        "{message}"
    );
    let direct = run(&db, "pipeline");
    let message = refused(&db, &[id(&direct)], 2);
    assert!(
        message.contains("was not started from a launch plan"),
        "{message}"
    );
}
