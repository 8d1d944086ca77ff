//! Approval gates (`approve:`): the execution waits at the gate until
//! someone decides. Approved, what follows runs and the execution
//! succeeds; rejected, the gate fails with who and why, and so does the
//! execution; nobody in time, it times out. Each decision is recorded once
//! (with an audit entry); deciding a node that does not wait is refused.

use std::sync::Arc;
use std::time::Duration;

use weir::spec::ExecutionId;
use weir::store::execution::{NodeStatus, Status};
use weir::views::{self, ApprovalBody, ApprovalError, Verdict};

use crate::common::{Backend, GitRepo, TestDb, backend, eventually_within};

const DEFS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: step }
spec:
  script: { interpreter: bash, source: 'echo step' }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: release }
spec:
  nodes:
    - id: evaluate
      task: step
    - id: sign-off
      approve: { prompt: "Ship the model evaluated above?", timeout: 1h }
      after: [evaluate]
    - id: publish
      task: step
      after: [sign-off]
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: hasty }
spec:
  nodes:
    - id: sign-off
      approve: { prompt: "Quick?", timeout: 1s }
    - id: publish
      task: step
      after: [sign-off]
"#;

/// An engine driving `workflow` of the repository's head in the background.
struct Running {
    id: ExecutionId,
    done: tokio::task::JoinHandle<weir::store::execution::Execution>,
    _state: tempfile::TempDir,
}

async fn start(repo: &GitRepo, b: &Backend, workflow: &str) -> Running {
    let state = tempfile::tempdir().expect("tempdir");
    let spec = weir::source::git::SourceSpec {
        repo: repo.path().display().to_string(),
        branch: None,
        path: String::new(),
        credentials: Default::default(),
    };
    let source =
        weir::source::git::GitSource::open(&spec, &state.path().join("source")).expect("source");
    let options = weir::reconcile::Options::default();
    let loaded = weir::reconcile::load(&source, &options, None).expect("load");
    weir::reconcile::register(b.store.as_ref(), loaded, chrono::Utc::now())
        .await
        .expect("register");
    let artifacts = Arc::new(weir::artifact::LocalArtifacts::new(
        state.path().join("artifacts"),
    ));
    let engine = weir::engine::Engine::new(b.store.clone(), artifacts, state.path().to_path_buf())
        .with_task_env(weir::executor::environment::Inherited::from_process(
            Default::default(),
        ));
    let request = weir::engine::create::Request {
        name: workflow.into(),
        ..weir::engine::create::Request::default()
    };
    let (execution, _) = weir::engine::create::create(b.store.as_ref(), &request)
        .await
        .expect("create");
    let id = execution.id.clone();
    let driven = id.clone();
    let done = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(120), engine.run_until_finished(&driven))
            .await
            .expect("the execution ends")
            .expect("run")
    });
    Running {
        id,
        done,
        _state: state,
    }
}

async fn node_status(b: &Backend, id: &ExecutionId, node: &str) -> NodeStatus {
    let nodes = b.store.nodes(id).await.expect("nodes");
    nodes
        .iter()
        .find(|n| n.node == node)
        .expect("the node")
        .status
}

/// Waits until the gate of `id` waits.
async fn reached(b: &Backend, id: &ExecutionId) {
    let handle = tokio::runtime::Handle::current();
    let (store, id) = (b.store.clone(), id.clone());
    tokio::task::spawn_blocking(move || {
        eventually_within(
            "the gate waits",
            Duration::from_secs(60),
            || {
                let nodes = handle.block_on(store.nodes(&id)).expect("nodes");
                nodes
                    .iter()
                    .any(|n| n.node == "sign-off" && n.status == NodeStatus::Waiting)
            },
            || "the gate never waited".to_owned(),
        );
    })
    .await
    .expect("waited");
}

fn body(verdict: Verdict, by: &str, comment: Option<&str>) -> ApprovalBody {
    ApprovalBody {
        decision: verdict,
        comment: comment.map(Into::into),
        by: Some(by.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_waits_for_its_decision_and_each_decision_counts_once() {
    let repo = GitRepo::new();
    repo.write("release.yaml", DEFS);
    repo.commit("A release behind a sign-off");
    let b = backend(TestDb::sqlite()).await;
    let store = b.store.as_ref();
    let now = chrono::Utc::now;

    // Approved: the gate succeeds, publish runs, the execution succeeds.
    let approved = start(&repo, &b, "release").await;
    reached(&b, &approved.id).await;
    assert_eq!(
        node_status(&b, &approved.id, "publish").await,
        NodeStatus::Pending
    );
    let view = views::execution(store, &approved.id)
        .await
        .expect("read")
        .expect("there");
    let gate = view
        .nodes
        .iter()
        .find(|n| n.id == "sign-off")
        .expect("the gate");
    assert_eq!(
        gate.prompt.as_deref(),
        Some("Ship the model evaluated above?")
    );
    let early = views::decide(
        store,
        &approved.id,
        "publish",
        &body(Verdict::Approve, "ada", None),
        "",
        now(),
    )
    .await;
    assert!(
        matches!(early, Err(ApprovalError::NotWaiting { .. })),
        "{early:?}"
    );
    let unknown = views::decide(
        store,
        &approved.id,
        "nope",
        &body(Verdict::Approve, "ada", None),
        "",
        now(),
    )
    .await;
    assert!(
        matches!(unknown, Err(ApprovalError::UnknownNode { .. })),
        "{unknown:?}"
    );
    let decided = views::decide(
        store,
        &approved.id,
        "sign-off",
        &body(Verdict::Approve, "ada", Some("AUC 0.93, ship it")),
        "",
        now(),
    )
    .await
    .expect("decided");
    assert_eq!(decided.by, "ada");
    let again = views::decide(
        store,
        &approved.id,
        "sign-off",
        &body(Verdict::Reject, "bob", None),
        "",
        now(),
    )
    .await;
    assert!(
        matches!(
            again,
            Err(ApprovalError::Decided { .. } | ApprovalError::NotWaiting { .. })
        ),
        "the first decision stands: {again:?}"
    );
    let ended = approved.done.await.expect("driven");
    assert_eq!(ended.status, Status::Succeeded, "{ended:?}");
    assert_eq!(
        node_status(&b, &approved.id, "publish").await,
        NodeStatus::Succeeded
    );

    // Rejected: the gate fails with who and why; publish never runs.
    let rejected = start(&repo, &b, "release").await;
    reached(&b, &rejected.id).await;
    views::decide(
        store,
        &rejected.id,
        "sign-off",
        &body(Verdict::Reject, "bob", Some("AUC dropped")),
        "",
        now(),
    )
    .await
    .expect("decided");
    let ended = rejected.done.await.expect("driven");
    assert_eq!(ended.status, Status::Failed);
    let error = ended.error.expect("an error");
    assert!(error.contains("rejected by bob: AUC dropped"), "{error}");
    assert_eq!(
        node_status(&b, &rejected.id, "publish").await,
        NodeStatus::Skipped
    );

    // Nobody decides in time: the gate times out, and the execution.
    let hasty = start(&repo, &b, "hasty").await;
    let ended = hasty.done.await.expect("driven");
    assert_eq!(ended.status, Status::TimedOut, "{ended:?}");
    assert!(
        ended
            .error
            .expect("an error")
            .contains("no decision within 1s")
    );

    // Each decision once in the audit log, from no commit.
    let audit = store.audit(10).await.expect("audit");
    let decisions: Vec<(&str, &str)> = audit
        .iter()
        .filter(|a| a.action == "approval")
        .map(|a| {
            (
                a.actor.name.as_str(),
                a.details["decision"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(decisions, [("bob", "rejected"), ("ada", "approved")]);
    assert!(
        audit
            .iter()
            .filter(|a| a.action == "approval")
            .all(|a| a.source.is_none())
    );
}

#[test]
fn a_gate_has_no_outputs_and_takes_no_inputs() {
    let text = DEFS.replace(
        "    - id: publish\n      task: step\n      after: [sign-off]\n---",
        "    - id: publish\n      task: step\n      inputs: { x: \"{{ nodes.sign-off.outputs.ok }}\" }\n---",
    );
    let report = crate::common::validate_files(&[("release.yaml", &text)]);
    assert!(
        report.diagnostics.iter().any(|d| d
            .message
            .contains("is an approval gate, which has no outputs")),
        "{:#?}",
        report.diagnostics
    );
    let long = DEFS.replace("timeout: 1h", "timeout: 90d");
    let report = crate::common::validate_files(&[("release.yaml", &long)]);
    assert!(
        report.diagnostics.iter().any(|d| d
            .message
            .contains("approve.timeout `90d` exceeds the maximum")),
        "{:#?}",
        report.diagnostics
    );
}

/// `weir approve` through a running daemon, as through the store: the
/// daemon's engine waits at the gate, the decision lets it go on; a
/// mistake exits as from the store (not found 3, not waiting 1).
#[test]
fn weir_approve_through_a_daemon() {
    use crate::common::{Daemon, assert_same_both_ways, eventually, stderr, stdout, weir_json};
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("release.yaml", DEFS);
    repo.commit("A release behind a sign-off");
    let served = Daemon::with_token(&db, &repo, "approvals-token");
    let server = served.server();
    let run = served.weir(&["run", "release", "-o", "json"]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let run: serde_json::Value = serde_json::from_slice(&run.stdout).expect("json");
    let id = run["id"].as_str().expect("an id").to_owned();
    let gate = |db: &TestDb| {
        let (_, view) = weir_json(&["executions", &id, "-o", "json"], db);
        crate::common::node(&view, "sign-off")["status"].clone()
    };
    eventually("the daemon's gate waits", || gate(&db) == "waiting");

    let not_waiting = assert_same_both_ways(&["approve", &id, "publish"], &db, &server);
    assert_eq!(
        not_waiting.status.code(),
        Some(1),
        "{}",
        stderr(&not_waiting)
    );
    let unknown = assert_same_both_ways(&["approve", &id, "nope"], &db, &server);
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));

    let approved = served.weir(&["approve", &id, "sign-off", "--by", "ada"]);
    assert_eq!(approved.status.code(), Some(0), "{}", stderr(&approved));
    assert_eq!(
        stdout(&approved).trim(),
        format!("approved sign-off of {id} as ada")
    );
    eventually("the execution succeeds", || {
        let (_, view) = weir_json(&["executions", &id, "-o", "json"], &db);
        view["status"] == "succeeded"
    });
}
