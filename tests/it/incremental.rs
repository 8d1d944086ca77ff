//! A pass loaded against the last reconciled commit's snapshot reads only
//! what changed; it must decide exactly what a whole-tree read decides.
//! Property: over random sequences of commits (edits, interface changes,
//! removals, moves, duplicates, cycles, syntax errors, a notebook that comes
//! and goes), both loads agree on validity, on every version, and on the
//! snapshot kept for the next pass — and a valid commit after a valid base
//! is really loaded incrementally.

use proptest::prelude::*;
use weir::reconcile::{self, Loaded, Snapshot};
use weir::source::git::{GitSource, SourceSpec};

use crate::common::GitRepo;

const TASK_A: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: a }
spec:
  inputs: { day: { type: datetime } }
  outputs: { x: { type: int } }
  script: { interpreter: bash, source: "echo SCRIPT" }
"#;

const TASK_A_RENAMED_OUTPUT: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: a }
spec:
  inputs: { day: { type: datetime } }
  outputs: { y: { type: int } }
  script: { interpreter: bash, source: "echo a" }
"#;

const TASK_B: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: b }
spec:
  inputs: { x: { type: int } }
  outputs: { z: { type: int } }
  script: { interpreter: python3, source: "print(1)" }
"#;

const TASK_B_NOTEBOOK: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: b }
spec:
  inputs: { x: { type: int } }
  notebook: { path: nb/report.ipynb }
"#;

const MAIN: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: main }
spec:
  inputs: { day: { type: datetime } }
  nodes:
    - { id: a, task: a, inputs: { day: "{{ inputs.day }}" } }
    - { id: b, task: b, inputs: { x: "{{ nodes.a.outputs.x }}" } }
"#;

const MAIN_WITH_SUB: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: main }
spec:
  inputs: { day: { type: datetime } }
  nodes:
    - { id: a, task: a, inputs: { day: "{{ inputs.day }}" } }
    - { id: s, workflow: sub, inputs: { day: "{{ inputs.day }}" } }
"#;

const SUB: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: sub }
spec:
  inputs: { day: { type: datetime } }
  nodes:
    - { id: a, task: a, inputs: { day: "{{ inputs.day }}" } }
"#;

const SUB_CALLING_MAIN: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: sub }
spec:
  inputs: { day: { type: datetime } }
  nodes:
    - { id: m, workflow: main, inputs: { day: "{{ inputs.day }}" } }
"#;

const NIGHTLY: &str = r#"apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: nightly }
spec:
  workflow: main
  schedule: { cron: "CRON", kickoffTimeInput: day }
"#;

const GROUP: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: c }
spec:
  outputs: { n: { type: int } }
  script: { interpreter: bash, source: "echo SCRIPT" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: cw }
spec:
  nodes:
    - { id: c, task: c }
"#;

/// The files of the repository and the contents each can take (`None`:
/// absent).
fn slots() -> Vec<(&'static str, Vec<Option<String>>)> {
    let a = |script: &str| Some(TASK_A.replace("SCRIPT", script));
    let group = |script: &str| Some(GROUP.replace("SCRIPT", script));
    vec![
        (
            "tasks/a.yaml",
            vec![a("a1"), a("a2"), Some(TASK_A_RENAMED_OUTPUT.into()), None],
        ),
        (
            "tasks/b.yaml",
            vec![Some(TASK_B.into()), Some(TASK_B_NOTEBOOK.into()), None],
        ),
        (
            "nb/report.ipynb",
            vec![Some("{}".into()), Some(r#"{"cells": []}"#.into()), None],
        ),
        (
            "wf/main.yaml",
            vec![
                Some(MAIN.into()),
                Some(MAIN_WITH_SUB.into()),
                Some("kind: [".into()),
                None,
            ],
        ),
        (
            "wf/sub.yaml",
            vec![Some(SUB.into()), Some(SUB_CALLING_MAIN.into()), None],
        ),
        (
            "lp/nightly.yaml",
            vec![
                Some(NIGHTLY.replace("CRON", "0 2 * * *")),
                Some(NIGHTLY.replace("CRON", "0 3 * * *")),
                Some(NIGHTLY.replace("CRON", "0 25 * * *")),
                None,
            ],
        ),
        // A second definition of task `a`: a duplicate, or a move when
        // tasks/a.yaml is absent.
        ("dup/a.yaml", vec![None, a("a1"), a("moved")]),
        (
            "group.yaml",
            vec![group("c1"), group("c2"), None, Some(String::new())],
        ),
        // Hidden and non-definition files are not definitions.
        (
            ".hidden/x.yaml",
            vec![None, Some("kind: [".into()), Some(TASK_B.into())],
        ),
        ("README.md", vec![None, Some("# pipelines".into())]),
    ]
}

/// A repository holding every slot's first content, committed, and a source
/// reading it.
fn initial_repository() -> (GitRepo, tempfile::TempDir, GitSource) {
    let repo = GitRepo::new();
    let state = tempfile::tempdir().expect("state");
    for (path, variants) in slots() {
        if let Some(text) = &variants[0] {
            repo.write(path, text);
        }
    }
    repo.commit("initial");
    let spec = SourceSpec {
        repo: repo.path().display().to_string(),
        branch: None,
        path: String::new(),
        credentials: Default::default(),
    };
    let source = GitSource::open(&spec, state.path()).expect("source");
    (repo, state, source)
}

fn load(source: &GitSource, base: Option<&Snapshot>) -> Loaded {
    reconcile::load(source, &reconcile::Options::default(), base).expect("load")
}

fn json(snapshot: &Option<Snapshot>) -> serde_json::Value {
    serde_json::to_value(snapshot).expect("snapshot serializes")
}

fn check_history(steps: &[(usize, usize)]) -> Result<(), TestCaseError> {
    let slots = slots();
    let (repo, _state, source) = initial_repository();
    let first = load(&source, None);
    prop_assert!(first.report.is_valid(), "{:?}", first.report.diagnostics);
    let mut base = first.snapshot;
    for (step, &(slot, variant)) in steps.iter().enumerate() {
        let (path, variants) = &slots[slot % slots.len()];
        match &variants[variant % variants.len()] {
            Some(text) => repo.write(path, text),
            None if repo.path().join(path).exists() => repo.remove(path),
            None => {}
        }
        repo.commit(&format!("step {step}"));
        let whole = load(&source, None);
        let changed = load(&source, base.as_ref());
        prop_assert_eq!(
            whole.report.is_valid(),
            changed.report.is_valid(),
            "step {} ({}): whole {:?} vs incremental {:?}",
            step,
            path,
            whole.report.diagnostics,
            changed.report.diagnostics
        );
        if whole.report.is_valid() {
            prop_assert!(
                changed.base.is_some(),
                "step {step}: a valid commit after a valid one is loaded incrementally"
            );
            prop_assert_eq!(&whole.active, &changed.active, "step {}", step);
            prop_assert_eq!(json(&whole.snapshot), json(&changed.snapshot));
            base = changed.snapshot;
        } else {
            prop_assert_eq!(whole.report.error_count(), changed.report.error_count());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn incremental_loads_decide_what_whole_tree_loads_decide(
        steps in prop::collection::vec((0usize..10, 0usize..4), 1..14)
    ) {
        check_history(&steps)?;
    }
}

#[test]
fn a_changed_task_reparses_its_callers_and_versions_them_again() {
    // a → main → nightly: changing a's script gives all three new versions;
    // b and the group keep theirs.
    let (repo, _state, source) = initial_repository();
    let first = load(&source, None);
    repo.write("tasks/a.yaml", &TASK_A.replace("SCRIPT", "changed"));
    repo.commit("change a");
    let next = load(&source, first.snapshot.as_ref());
    assert!(next.base.is_some());
    let changed: Vec<String> = next
        .active
        .iter()
        .filter(|(id, digest)| first.active.get(*id) != Some(*digest))
        .map(|(id, _)| id.name.clone())
        .collect();
    assert_eq!(changed, ["a", "main", "sub", "nightly"]);
    let mut parsed: Vec<&str> = next
        .report
        .sources
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    parsed.sort_unstable();
    // Only the changed file, its callers' files and what those call.
    assert_eq!(
        parsed,
        [
            "lp/nightly.yaml",
            "tasks/a.yaml",
            "tasks/b.yaml",
            "wf/main.yaml",
            "wf/sub.yaml"
        ]
    );
    assert!(!parsed.contains(&"group.yaml"));
}

#[test]
fn the_histories_that_matter_most_agree() {
    let histories: [&[(usize, usize)]; 7] = [
        // b becomes a notebook task, then its notebook is deleted.
        &[(1, 1), (2, 2)],
        // b becomes a notebook task, then its notebook changes.
        &[(1, 1), (2, 1)],
        // main calls sub, then sub calls main: a cycle.
        &[(3, 1), (4, 1)],
        // task a moves to another file (invalid in between).
        &[(0, 3), (6, 2)],
        // a's output is renamed under main's binding, then restored.
        &[(0, 2), (0, 0)],
        // a second definition of a, then it goes away again.
        &[(6, 1), (6, 0)],
        // main stops parsing, then comes back changed.
        &[(3, 2), (3, 1)],
    ];
    for steps in histories {
        check_history(steps).unwrap_or_else(|e| panic!("{steps:?}: {e}"));
    }
}

#[test]
fn a_notebook_tasks_version_covers_its_notebook() {
    let (repo, _state, source) = initial_repository();
    repo.write("tasks/b.yaml", TASK_B_NOTEBOOK);
    repo.commit("b runs a notebook");
    let before = load(&source, None);
    assert!(before.report.is_valid(), "{:?}", before.report.diagnostics);
    repo.write("nb/report.ipynb", r#"{"cells": [{"cell_type": "code"}]}"#);
    repo.commit("Change the notebook only");
    let after = load(&source, before.snapshot.as_ref());
    assert!(after.base.is_some(), "loaded incrementally");
    let changed: Vec<&str> = after
        .active
        .iter()
        .filter(|(id, digest)| before.active.get(*id) != Some(*digest))
        .map(|(id, _)| id.name.as_str())
        .collect();
    assert_eq!(
        changed,
        ["b", "main", "nightly"],
        "a new notebook is a new version"
    );
}
