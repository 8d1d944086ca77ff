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

/// Every version of `examples/repo`, as released: a change to how
/// definitions are read, canonicalized or hashed (task bodies read through
/// their plugins, say) must not move any of them, or every deployed task
/// would get a new version (and a cold cache) on upgrade.
#[test]
fn the_examples_keep_their_versions() {
    let (code, json) = crate::common::validate_json(&crate::common::root().join("examples/repo"));
    assert_eq!(code, 0, "{json:#}");
    let found: BTreeMap<String, String> = json["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .map(|e| {
            let id = format!(
                "{}/{}/{}",
                e["project"].as_str().expect("project"),
                e["kind"].as_str().expect("kind"),
                e["name"].as_str().expect("name")
            );
            (id, e["digest"].as_str().expect("digest").to_owned())
        })
        .collect();
    let pinned: BTreeMap<String, String> = PINNED
        .iter()
        .map(|(id, digest)| ((*id).to_owned(), (*digest).to_owned()))
        .collect();
    assert_eq!(found, pinned);
}

const PINNED: &[(&str, &str)] = &[
    (
        "churn/LaunchPlan/churn-sweep-adhoc",
        "32e06f1c4b10c258ed06265e49e1f6cfc9bfa6a1a09c43843205f54d2a9591ef",
    ),
    (
        "churn/Task/pick-model",
        "e1a381ae2be3c783891fa9bd080f55cc631e49a94fcda9ff908a90596d8490f2",
    ),
    (
        "churn/Task/publish-model",
        "f86a13dcffdef4f8a546a6a7c7ceee6acb6a0095c63dd715120d2e8976326945",
    ),
    (
        "churn/Task/split-folds",
        "0ac340cf7e7e1c21f465c1d9ba1d522dfc38ff5661a9ce7298005bb325a3e4ab",
    ),
    (
        "churn/Task/train-fold",
        "28aad5f4990910182d83f838f522f35d184bcbfdb440805fa43e8a6067b6b25b",
    ),
    (
        "churn/Workflow/churn-sweep",
        "89787a95233f712817d7f3d03d8c62194779500411804077869539475633a1bd",
    ),
    (
        "churn/LaunchPlan/churn-adhoc",
        "5ab1d54e804e082a310b372453a6d8fa72f69ed5e3340987731663d744249d58",
    ),
    (
        "churn/LaunchPlan/churn-nightly",
        "3f3ac9a5695589bd626f57c547a29808ea156a8977cd55003c1b1c2108fe74f2",
    ),
    (
        "churn/Task/build-features",
        "0ab1c18757b94da9100fd67f89e5a3a4bbd1c873ea20a60ef69ef15cd97a5fe8",
    ),
    (
        "churn/Task/churn-report",
        "53f05a464587cfa73662c0853605bad44c1dde3dd6bac49335c525a15a3dffd6",
    ),
    (
        "churn/Task/evaluate-model",
        "9b5ddbf0236d3869e1ea109ebb4e89569856764fbf5de20a737a0bfbdccdd8d5",
    ),
    (
        "churn/Task/extract-events",
        "6e92ec95d627221869772b66efa3a879694dfcc2c9bce03aafe25c8db6bb0041",
    ),
    (
        "churn/Task/train-model",
        "a219c48de67b0332af4f6b860d3fbc24fd5ee002eb9a0e8642c0429133a09cb1",
    ),
    (
        "churn/Workflow/churn-training",
        "2660cc779727bf8d316111e258b0898b69904a7dab759ecf77816a7b8de751f0",
    ),
    (
        "etl/LaunchPlan/hourly-etl-schedule",
        "16e4592a5a24ff7f4745232c7b824f8974334d5d7c6cb51580bb7f285be483f5",
    ),
    (
        "etl/Task/aggregate-orders",
        "248647a846045397b19bbfcd4bd8beb64f3196ab8e685a057c327642f657ac64",
    ),
    (
        "etl/Task/check-row-count",
        "903cc6a2a12f832241037152b4b5cfacefee278d7ad7d3eb43cf8a001bb2dd18",
    ),
    (
        "etl/Task/list-partitions",
        "11812e0a7c195690eb9bfd2c234344c2eb5e585d8021c4f790e17a70209c655a",
    ),
    (
        "etl/Task/load-region",
        "0298bcf6a82d55d9393b79f63eacb365ab74eef01934606cc19ff9fa23b42b59",
    ),
    (
        "etl/Task/merge-regions",
        "47fd807890082fa62b699d81090e28e049db824db13bec7041a072e570f94399",
    ),
    (
        "etl/Task/publish-dataset",
        "c47ec8eed56582b14f7036787f2689e794dc93479da569291456f803f1ecee3b",
    ),
    (
        "etl/Workflow/hourly-etl",
        "9363f430c6bccd28c223026c25d64ab16dc959333bac5610738a8e5c7d443a2d",
    ),
    (
        "sales/LaunchPlan/daily-sales-report",
        "f35d863f6b8e624bec1ff96370581fb308551769818f81df7fb3a44c713231a1",
    ),
    (
        "sales/Task/daily-revenue",
        "b76d30a4c53aeb2dd8ce2ad1009853c80c1ac59c233b3bad0276fb3ad1915a29",
    ),
    (
        "sales/Task/export-orders",
        "93fcb0161b91c40a2d1388150f0131af6dc310cb7d419275b4058fc1d18c3a49",
    ),
    (
        "sales/Task/top-products",
        "6d0fe77b2770520fd37dc45c6dcb3ac96c0eb5cd0e33890b35c8a8161b279417",
    ),
    (
        "sales/Workflow/daily-sales",
        "c0f2f6b40c06e720033bf050dad9604a4ac07defe0d9e9a51bbfac0d98b95af6",
    ),
];

/// A spec's digest is written straight from the typed spec
/// (`Definition::spec_digest`): for every definition of the examples and
/// the fixtures, it is the digest of the spec as JSON, as it always was.
#[test]
fn a_spec_s_digest_is_the_digest_of_its_json() {
    let root = crate::common::root();
    let mut checked = 0;
    for dir in ["examples", "tests/fixtures"] {
        let tree =
            weir::source::dir::read_tree(&root.join(dir), weir::source::dir::DEFAULT_MAX_FILE_SIZE)
                .expect("a tree");
        let report = weir::validate::validate(tree, &weir::validate::Options::default());
        for e in &report.entities {
            assert_eq!(
                e.definition.spec_digest(),
                weir::spec::Digest::of_json(&e.definition.canonical_spec()),
                "{} in {}",
                e.id.name,
                e.file
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} definitions were read");
}
