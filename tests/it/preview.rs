//! Preview runs (`weir run NAME --ref REV`), the story of a pull request:
//! main is synced; a branch `feature` changes the script of one task; the
//! branch runs with `--ref feature`. Its execution records the branch head
//! and its output is the branch's; `weir versions` lists the branch's new
//! versions inactive while main's stay active; `weir status` still shows
//! main's commit and a plain `weir run` still runs main. Previewing again
//! registers nothing (I1); an invalid branch is refused and writes nothing.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::{GitRepo, TestDb, weir_json, weir_with};

/// `prepare` is the same everywhere; `greet` says `word`.
fn flow(word: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: prepare, project: lab }}
spec:
  outputs: {{ n: {{ type: int }} }}
  script: {{ interpreter: bash, source: "echo '{{\"n\": 3}}' > \"$WEIR_OUTPUTS/outputs.json\"" }}
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: greet, project: lab }}
spec:
  inputs: {{ n: {{ type: int }} }}
  outputs: {{ says: {{ type: string }} }}
  script: {{ interpreter: bash, source: "echo '{{\"says\": \"{word}\"}}' > \"$WEIR_OUTPUTS/outputs.json\"" }}
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: flow, project: lab }}
spec:
  nodes:
    - {{ id: prepare, task: prepare }}
    - {{ id: greet, task: greet, inputs: {{ n: "{{{{ nodes.prepare.outputs.n }}}}" }} }}
  outputs: {{ says: "{{{{ nodes.greet.outputs.says }}}}" }}
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: {{ name: nightly, project: lab }}
spec:
  workflow: flow
  schedule: {{ cron: "0 2 * * *" }}
"#
    )
}

/// Commits `text` at `rel` on a new branch `branch` (from main's head),
/// leaving main and the work tree as they were.
fn commit_on_branch(repo: &GitRepo, branch: &str, rel: &str, text: &str) -> String {
    let git = &repo.repo;
    let main = git
        .head()
        .and_then(|h| h.peel_to_commit())
        .expect("main's head");
    git.branch(branch, &main, false).expect("branch");
    git.set_head(&format!("refs/heads/{branch}"))
        .expect("switch");
    repo.write(rel, text);
    let sha = repo.commit(&format!("Change {rel} on {branch}"));
    git.set_head("refs/heads/main").expect("back to main");
    git.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .expect("checkout main");
    sha
}

/// `weir versions -o json` as (name, version) → active.
fn versions(db: &TestDb) -> BTreeMap<(String, String), bool> {
    let (code, json) = weir_json(&["versions", "-o", "json"], db);
    assert_eq!(code, 0, "{json:#}");
    json.as_array()
        .expect("a list")
        .iter()
        .map(|v| {
            let name = v["name"].as_str().expect("name").to_owned();
            let version = v["version"].as_str().expect("version").to_owned();
            ((name, version), v["active"].as_bool().expect("active"))
        })
        .collect()
}

fn versions_of(all: &BTreeMap<(String, String), bool>, name: &str) -> Vec<(String, bool)> {
    all.iter()
        .filter(|((n, _), _)| n == name)
        .map(|((_, v), active)| (v.clone(), *active))
        .collect()
}

fn run(db: &TestDb, args: &[&str]) -> Value {
    let all: Vec<&str> = ["run", "flow", "--wait", "-o", "json"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let (code, execution) = weir_json(&all, db);
    assert_eq!(code, 0, "{execution:#}");
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    execution
}

fn status(db: &TestDb) -> Value {
    let (code, json) = weir_json(&["status", "-o", "json"], db);
    assert_eq!(code, 0, "{json:#}");
    json
}

fn story(db: &TestDb) {
    let repo = GitRepo::new();
    repo.write("defs/flow.yaml", &flow("hello"));
    let main = repo.commit("Add the flow");
    let path = repo.path().to_str().expect("utf-8");
    let synced = weir_with(&["sync", "--repo", path, "--path", "defs"], db);
    assert_eq!(synced.status.code(), Some(0), "{synced:?}");
    let status_before = status(db);
    let before = versions(db);
    assert_eq!(before.len(), 4);

    let head = commit_on_branch(&repo, "feature", "defs/flow.yaml", &flow("bonjour"));
    // The pull request's plan says how to preview each changed workflow
    // and launch plan.
    let plan = crate::common::weir(&[
        "plan", "--repo", path, "--base", "main", "--head", "feature", "--path", "defs",
        "--format", "markdown",
    ]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    for line in [
        format!("- Workflow `flow`: `weir run flow --project lab --ref {head}`"),
        format!("- LaunchPlan `nightly`: `weir run nightly --project lab --ref {head}`"),
    ] {
        assert!(plan.contains(&line), "{line} missing in:\n{plan}");
    }
    assert!(!plan.contains("weir run greet"), "a task is not run alone");
    let preview = run(db, &["--ref", "feature"]);
    assert_eq!(
        preview["commit"], head,
        "the execution records the branch head"
    );
    assert_eq!(preview["trigger"], "preview");
    assert_eq!(preview["preview"], true);
    assert_eq!(preview["outputs"]["says"], "bonjour");

    // The branch's task and everything that calls it are new and inactive;
    // main's stay active; `prepare` is the same version on both.
    let after = versions(db);
    for name in ["greet", "flow", "nightly"] {
        let listed = versions_of(&after, name);
        assert_eq!(listed.len(), 2, "{name}: {listed:?}");
        assert_eq!(
            listed.iter().filter(|(_, active)| *active).count(),
            1,
            "{name}: {listed:?}"
        );
        assert_eq!(
            versions_of(&before, name),
            listed
                .iter()
                .filter(|(_, a)| *a)
                .cloned()
                .collect::<Vec<_>>(),
            "{name}: main's version is still the active one"
        );
    }
    assert_eq!(
        versions_of(&after, "prepare"),
        versions_of(&before, "prepare")
    );
    let (_, greet) = weir_json(&["versions", "--name", "greet", "-o", "json"], db);
    let branch_greet = greet
        .as_array()
        .expect("a list")
        .iter()
        .find(|v| v["active"] == false)
        .expect("the branch's greet");
    assert_eq!(
        branch_greet["commit"], head,
        "first seen at the branch head"
    );
    assert_eq!(
        status(db),
        status_before,
        "status still shows main's commit"
    );
    assert_eq!(status_before[0]["lastReconciledCommit"], main);

    // The same ref again: the same versions (I1), nothing registered.
    let again = run(db, &["--ref", "feature"]);
    assert_eq!(again["workflowVersion"], preview["workflowVersion"]);
    assert_ne!(again["id"], preview["id"]);
    assert_eq!(versions(db), after);

    // A plain run still runs main's active versions.
    let active = run(db, &[]);
    assert_eq!(active["commit"], main);
    assert_eq!(active["trigger"], "manual");
    assert_eq!(active["outputs"]["says"], "hello");
    assert!(active.get("preview").is_none());

    // An invalid branch is refused with its diagnostics; nothing is written.
    let broken = commit_on_branch(
        &repo,
        "broken",
        "defs/flow.yaml",
        &flow("x").replace("task: greet", "task: missing"),
    );
    let refused = weir_with(&["run", "flow", "--ref", &broken, "--wait"], db);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("defs/flow.yaml"), "{stderr}");
    assert!(stderr.contains("nothing was registered"), "{stderr}");
    assert_eq!(versions(db), after);
    assert_eq!(status(db), status_before);
}

#[test]
fn a_branch_runs_without_being_activated_on_sqlite() {
    story(&TestDb::sqlite());
}

#[test]
fn a_branch_runs_without_being_activated_on_postgres() {
    if let Some(db) = TestDb::postgres() {
        story(&db);
    }
}

#[test]
fn with_several_sources_the_repository_must_be_named() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("a/flow.yaml", &flow("a"));
    repo.write("b/other.yaml", &flow("b").replace("lab", "other"));
    repo.commit("Two folders");
    let path = repo.path().to_str().expect("utf-8");
    for folder in ["a", "b"] {
        let synced = weir_with(&["sync", "--repo", path, "--path", folder], &db);
        assert_eq!(synced.status.code(), Some(0), "{synced:?}");
    }
    let ambiguous = weir_with(&["run", "flow", "--ref", "main"], &db);
    let stderr = String::from_utf8_lossy(&ambiguous.stderr);
    assert_eq!(ambiguous.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("name one with --repo"), "{stderr}");

    let named = weir_with(
        &[
            "run",
            "flow",
            "--ref",
            "main",
            "--repo",
            path,
            "--path",
            "a",
            "--project",
            "lab",
        ],
        &db,
    );
    let stderr = String::from_utf8_lossy(&named.stderr);
    assert_eq!(named.status.code(), Some(0), "{stderr}");
}
