//! A version registered before validation refused its durations (here: its
//! stored text edited behind the store's back, as an older release could
//! have left it) is never run on a guessed value: the engine fails the node
//! naming the field and its text, and the scheduler skips the schedule
//! saying so (issue 14, item 2).

use std::sync::Arc;

use crate::common::{GitRepo, TestDb, weir_with};

const DEFS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: flaky, project: lab }
spec:
  script: { interpreter: bash, source: "echo broken >&2; exit 3" }
  retries: { attempts: 1, backoff: 100ms }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: quick, project: lab }
spec:
  script: { interpreter: bash, source: "true" }
  timeout: 7m
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: flaky-flow, project: lab }
spec:
  nodes: [ { id: flaky, task: flaky } ]
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: quick-flow, project: lab }
spec:
  nodes: [ { id: quick, task: quick } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: every-minute, project: lab }
spec:
  workflow: quick-flow
  schedule: { every: 1m }
"#;

/// Replaces the quoted `from` with `to` in every stored version's texts.
async fn rewrite_stored(url: &str, from: &str, to: &str) {
    let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
    let statement = format!(
        "UPDATE versions SET document = replace(document, '\"{from}\"', '\"{to}\"'), \
         spec = replace(spec, '\"{from}\"', '\"{to}\"')"
    );
    let done = sqlx::query(&statement)
        .execute(&pool)
        .await
        .expect("rewrite");
    assert!(done.rows_affected() > 0, "{from} is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_duration_that_does_not_parse_fails_loudly() {
    use weir::artifact::LocalArtifacts;
    use weir::engine::Engine;
    use weir::engine::create::{self, Request};
    use weir::engine::scheduler::Scheduler;
    use weir::store::execution::NodeStatus;

    let db = TestDb::sqlite();
    let TestDb::Sqlite(state) = &db else {
        unreachable!()
    };
    let repo = GitRepo::new();
    repo.write("defs/lab.yaml", DEFS);
    repo.commit("Durations as validation reads them today");
    let out = weir_with(
        &[
            "sync",
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--path",
            "defs",
        ],
        &db,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = db.url();
    rewrite_stored(&url, "100ms", "soon").await;
    rewrite_stored(&url, "7m", "whenever").await;
    rewrite_stored(&url, "1m", "hourly").await;

    let store = weir::store::open(&url).await.expect("store");
    let artifacts = Arc::new(LocalArtifacts::new(state.path().join("artifacts")));
    let engine = Engine::new(store.clone(), artifacts, state.path().to_path_buf()).with_task_env(
        weir::executor::environment::Inherited::from_process(Default::default()),
    );
    let run = |name: &str| {
        let request = Request {
            name: name.into(),
            ..Request::default()
        };
        let (store, engine) = (store.clone(), &engine);
        async move {
            let (execution, _) = create::create(store.as_ref(), &request)
                .await
                .expect("create");
            let finished = tokio::time::timeout(
                std::time::Duration::from_secs(60),
                engine.run_until_finished(&execution.id),
            )
            .await
            .expect("the execution ends")
            .expect("run");
            assert_eq!(finished.status.as_str(), "failed", "{finished:?}");
            let nodes = store.nodes(&execution.id).await.expect("nodes");
            nodes.into_iter().next().expect("one node")
        }
    };

    // The attempt failed; its retry is not scheduled after a default wait.
    let flaky = run("flaky-flow").await;
    assert_eq!(flaky.status, NodeStatus::Failed);
    assert_eq!(flaky.attempts, 1, "not retried");
    let error = flaky.error.expect("an error");
    assert!(
        error.contains("; not retried: retries.backoff: `soon` is not a duration"),
        "{error}"
    );

    // No attempt starts without its bound.
    let quick = run("quick-flow").await;
    assert_eq!(quick.status, NodeStatus::Failed);
    assert_eq!(quick.attempts, 0, "no attempt started");
    let error = quick.error.expect("an error");
    assert!(
        error.starts_with("timeout: `whenever` is not a duration"),
        "{error}"
    );

    // The schedule is skipped, and the scheduler says which and why.
    let report = Scheduler::new()
        .tick(store.as_ref(), chrono::Utc::now())
        .await
        .expect("tick");
    assert!(report.created.is_empty(), "{report:?}");
    assert_eq!(report.errors.len(), 1, "{report:?}");
    let (plan, error) = &report.errors[0];
    assert_eq!(plan, "every-minute");
    assert!(
        error.starts_with("schedule.every: `hourly` is not a duration"),
        "{error}"
    );
}
