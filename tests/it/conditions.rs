//! Conditional nodes (`when:`, CEL): a false condition skips its node and
//! the nodes that read its outputs, a node after it only by `after:` still
//! runs, an optional workflow output of a skipped node is null, and the
//! execution succeeds; a true one runs them all. `weir validate` refuses,
//! at the `when:` value's line and column, a condition comparing a string
//! to a number, one reading an output that does not exist, and a workflow
//! output bound to a skippable node that is not declared optional.

use serde_json::{Value, json};
use weir::store::execution::NodeStatus;
use weir::validate::Code;

use crate::common::{GitRepo, TestDb, backend, run_head, validate_files};

const DEFS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: evaluate }
spec:
  outputs: { auc: { type: float }, region: { type: string } }
  script:
    interpreter: bash
    source: |
      echo '{"auc": 0.93, "region": "eu"}' > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: publish }
spec:
  inputs: { auc: { type: float } }
  outputs: { url: { type: string } }
  script:
    interpreter: bash
    source: |
      echo "{\"url\": \"https://models.example/$WEIR_INPUT_AUC\"}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: announce }
spec:
  inputs: { url: { type: string } }
  outputs: { said: { type: string } }
  script:
    interpreter: bash
    source: |
      echo "{\"said\": \"new model at $WEIR_INPUT_URL\"}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: report }
spec:
  script: { interpreter: bash, source: 'echo report' }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: release }
spec:
  inputs:
    deploy: { type: bool }
    threshold: { type: float, default: 0.8 }
  nodes:
    - id: evaluate
      task: evaluate
    - id: celebrate               # declared before what its condition reads
      task: report
      when: "nodes.announce.outputs.said != ''"
    - id: publish
      task: publish
      when: "nodes.evaluate.outputs.auc > inputs.threshold && inputs.deploy && nodes.evaluate.outputs.region == 'eu'"
      inputs: { auc: "{{ nodes.evaluate.outputs.auc }}" }
    - id: announce
      task: announce
      inputs: { url: "{{ nodes.publish.outputs.url }}" }
    - id: report
      task: report
      after: [publish]
  outputs:
    auc: "{{ nodes.evaluate.outputs.auc }}"
    said: { from: "{{ nodes.announce.outputs.said }}", optional: true }
"#;

fn status(nodes: &[weir::store::NodeState], node: &str) -> NodeStatus {
    nodes
        .iter()
        .find(|n| n.node == node)
        .unwrap_or_else(|| panic!("no node {node}"))
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_condition_skips_its_node_and_its_consumers_and_the_execution_succeeds() {
    let repo = GitRepo::new();
    repo.write("release.yaml", DEFS);
    repo.commit("A release gated on the model's quality");
    let b = backend(TestDb::sqlite()).await;
    let types = weir::task::TaskTypes::builtin();

    let held = run_head(
        &repo,
        types.clone(),
        &b,
        "release",
        json!({ "deploy": false }),
    )
    .await;
    assert_eq!(held.status, "succeeded", "{:#?}", held.nodes);
    let statuses: Vec<NodeStatus> = ["evaluate", "publish", "announce", "report", "celebrate"]
        .iter()
        .map(|n| status(&held.nodes, n))
        .collect();
    assert_eq!(
        statuses,
        [
            NodeStatus::Succeeded,
            NodeStatus::Skipped,
            NodeStatus::Skipped,
            NodeStatus::Succeeded,
            NodeStatus::Skipped,
        ],
        "publish is skipped, announce reads its output, report only comes after it, celebrate's condition reads announce"
    );
    let execution = b
        .store
        .execution(&held.nodes[0].execution)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        execution.outputs,
        Some(json!({ "auc": 0.93, "said": Value::Null }))
    );
    assert!(
        !held.attempt_dir("publish", 1).exists(),
        "a skipped node runs no attempt"
    );

    let shipped = run_head(&repo, types, &b, "release", json!({ "deploy": true })).await;
    assert_eq!(shipped.status, "succeeded", "{:#?}", shipped.nodes);
    assert!(
        shipped
            .nodes
            .iter()
            .all(|n| n.status == NodeStatus::Succeeded)
    );
    let execution = b
        .store
        .execution(&shipped.nodes[0].execution)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        execution.outputs.expect("outputs")["said"],
        "new model at https://models.example/0.93"
    );
}

/// Each bad condition, at the `when:` value (or the output) it is about.
#[test]
fn validate_refuses_bad_conditions_where_they_are_written() {
    let cases = [
        (
            r#"nodes.evaluate.outputs.region > 0.8"#,
            "said: { from: \"{{ nodes.announce.outputs.said }}\", optional: true }",
            Code::ConditionType,
            "one side is string and the other double",
        ),
        (
            r#"nodes.evaluate.outputs.recall > 0.8"#,
            "said: { from: \"{{ nodes.announce.outputs.said }}\", optional: true }",
            Code::UnknownOutput,
            "has no output `recall`",
        ),
        (
            r#"inputs.deploy &&"#,
            "said: { from: \"{{ nodes.announce.outputs.said }}\", optional: true }",
            Code::InvalidCondition,
            "is not a CEL expression",
        ),
        (
            r#"inputs.deploy"#,
            "said: \"{{ nodes.announce.outputs.said }}\"",
            Code::SkippableOutput,
            "bound to node `announce`, which a `when:` may skip",
        ),
    ];
    for (condition, output, code, says) in cases {
        let text = DEFS
            .replace(
                "\"nodes.evaluate.outputs.auc > inputs.threshold && inputs.deploy && nodes.evaluate.outputs.region == 'eu'\"",
                &format!("\"{condition}\""),
            )
            .replace(
                "said: { from: \"{{ nodes.announce.outputs.said }}\", optional: true }",
                output,
            );
        let report = validate_files(&[("release.yaml", &text)]);
        let found: Vec<_> = report
            .diagnostics
            .iter()
            .filter(|d| d.code == code)
            .collect();
        assert_eq!(found.len(), 1, "{condition}: {:#?}", report.diagnostics);
        let d = found[0];
        assert!(d.message.contains(says), "{condition}: {}", d.message);
        let pos = d.pos.expect("a position");
        let line = text.lines().nth(pos.line as usize - 1).expect("the line");
        let at = &line[pos.column as usize - 1..];
        let expected = if code == Code::SkippableOutput {
            "\"{{ nodes.announce"
        } else {
            "\""
        };
        assert!(
            at.starts_with(expected) && (code == Code::SkippableOutput || line.contains("when:")),
            "{condition}: reported at {}:{} `{line}`",
            pos.line,
            pos.column
        );
        assert_eq!(report.diagnostics.len(), 1, "{:#?}", report.diagnostics);
    }
    assert!(
        validate_files(&[("release.yaml", DEFS)])
            .diagnostics
            .is_empty(),
        "the story's own definitions are valid"
    );
}
