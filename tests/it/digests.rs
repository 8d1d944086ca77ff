//! Version digests (DESIGN.md section 2): formatting never changes a
//! version; changing a task changes every workflow and launch plan above it,
//! and nothing else.

use std::collections::BTreeMap;

use crate::common::validate_files;

const TASKS: &str = r#"
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: extract, project: p }
spec:
  inputs: { day: { type: datetime } }
  outputs: { rows: { type: int } }
  script: { interpreter: bash, source: "echo '{\"rows\": 1}' > $WEIR_OUTPUTS/outputs.json" }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: unrelated, project: p }
spec:
  script: { interpreter: bash, source: "true" }
"#;

const PIPELINE: &str = r#"
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: inner, project: p }
spec:
  inputs: { day: { type: datetime } }
  nodes:
    - { id: extract, task: extract, inputs: { day: "{{ inputs.day }}" } }
  outputs: { rows: "{{ nodes.extract.outputs.rows }}" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: outer, project: p }
spec:
  inputs: { day: { type: datetime } }
  nodes:
    - { id: sub, workflow: inner, inputs: { day: "{{ inputs.day }}" } }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: nightly, project: p }
spec:
  workflow: outer
  schedule: { cron: "0 2 * * *", kickoffTimeInput: day }
"#;

fn versions(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    let report = validate_files(files);
    assert!(report.is_valid(), "{:#?}", report.diagnostics);
    report
        .entities
        .iter()
        .map(|e| {
            (
                e.id.name.clone(),
                e.digest.clone().expect("valid").as_str().to_owned(),
            )
        })
        .collect()
}

#[test]
fn reformatting_reordering_and_comments_change_no_version() {
    let before = versions(&[("tasks.yaml", TASKS), ("pipeline.yaml", PIPELINE)]);
    let reformatted = r#"# Tasks of project p, now in block style with comments.
kind: Task
apiVersion: weir.dev/v1alpha1
metadata:
  project: p
  name: extract
spec:
  # keys in another order
  script:
    source: "echo '{\"rows\": 1}' > $WEIR_OUTPUTS/outputs.json"
    interpreter: bash
  outputs:
    rows:
      type: int
  inputs:
    day: {type: datetime}   # flow style
  retries: { backoff: 10s }  # the default, written out
---
metadata: { project: p, name: unrelated }
apiVersion: weir.dev/v1alpha1
kind: Task
spec: { script: { source: "true", interpreter: 'bash' } }
"#;
    // Documents may also move between files.
    let after = versions(&[("all/tasks.yml", reformatted), ("pipeline.yaml", PIPELINE)]);
    assert_eq!(before, after);
}

#[test]
fn changing_a_task_changes_its_closure_and_nothing_else() {
    let before = versions(&[("tasks.yaml", TASKS), ("pipeline.yaml", PIPELINE)]);
    let changed = TASKS.replace(
        "interpreter: bash, source: \"echo",
        "interpreter: sh, source: \"echo",
    );
    let after = versions(&[("tasks.yaml", &changed), ("pipeline.yaml", PIPELINE)]);
    for name in ["extract", "inner", "outer", "nightly"] {
        assert_ne!(before[name], after[name], "{name} must get a new version");
    }
    assert_eq!(before["unrelated"], after["unrelated"]);
}

#[test]
fn changing_a_launch_plan_leaves_the_workflows_alone() {
    let before = versions(&[("tasks.yaml", TASKS), ("pipeline.yaml", PIPELINE)]);
    let changed = PIPELINE.replace("0 2 * * *", "0 3 * * *");
    let after = versions(&[("tasks.yaml", TASKS), ("pipeline.yaml", &changed)]);
    assert_ne!(before["nightly"], after["nightly"]);
    for name in ["extract", "unrelated", "inner", "outer"] {
        assert_eq!(before[name], after[name], "{name}");
    }
}

#[test]
fn metadata_descriptions_are_not_part_of_the_version() {
    let before = versions(&[("tasks.yaml", TASKS), ("pipeline.yaml", PIPELINE)]);
    let described = TASKS.replace(
        "metadata: { name: unrelated, project: p }",
        "metadata: { name: unrelated, project: p, description: Does nothing., labels: { team: data } }",
    );
    let after = versions(&[("tasks.yaml", &described), ("pipeline.yaml", PIPELINE)]);
    assert_eq!(before, after);
}
