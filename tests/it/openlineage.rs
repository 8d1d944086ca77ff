//! OpenLineage from the engine and the daemon (DESIGN.md section 8): an
//! execution is an OpenLineage run of its own, the parent of its nodes'
//! runs. Below the binary, the engine's promise to its observers: an
//! execution's start is told once, only after its write is committed.

use std::sync::{Arc, Mutex};

use weir::artifact::LocalArtifacts;
use weir::engine::create::{self, Request};
use weir::engine::{Engine, NodeEvent, Observer, PlanNode};
use weir::store::execution::{Execution, NodeState, Status};

use crate::common::{Backend, on_every_backend};

on_every_backend!(an_execution_s_start_is_told_once_its_write_is_committed);

/// What an observer heard, in order.
#[derive(Default)]
struct Heard(Mutex<Vec<String>>);

impl Heard {
    fn said(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

impl Observer for Heard {
    fn node_event(&self, event: NodeEvent, _: &Execution, node: &PlanNode, _: &NodeState) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("{} {event:?}", node.path));
    }

    fn execution_started(&self, execution: &Execution) {
        assert_eq!(execution.status, Status::Running);
        assert!(execution.started_at.is_some(), "{execution:?}");
        self.0
            .lock()
            .expect("lock")
            .push("execution started".into());
    }

    fn execution_finished(&self, execution: &Execution) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("execution {}", execution.status.as_str()));
    }
}

const PAIR: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: noop, project: lab }
spec:
  script: { interpreter: bash, source: "true" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: pair, project: lab }
spec:
  nodes:
    - { id: first, task: noop }
    - { id: second, task: noop, after: [first] }
"#;

/// Makes (`true`) or stops making every write that marks an execution
/// running fail, through a connection of its own (as a full disk would).
async fn fail_starting(url: &str, fail: bool) {
    let statements: Vec<String> = if url.starts_with("sqlite:") {
        if fail {
            vec![
                "CREATE TRIGGER injected_fault BEFORE UPDATE ON executions \
                 WHEN NEW.status = 'running' \
                 BEGIN SELECT RAISE(ROLLBACK, 'disk I/O error (injected)'); END"
                    .into(),
            ]
        } else {
            vec!["DROP TRIGGER injected_fault".into()]
        }
    } else if fail {
        vec![
            "CREATE OR REPLACE FUNCTION injected_fault() RETURNS trigger AS $$ \
             BEGIN IF NEW.status = 'running' THEN \
             RAISE EXCEPTION 'disk I/O error (injected)'; END IF; RETURN NEW; END $$ \
             LANGUAGE plpgsql"
                .into(),
            "CREATE TRIGGER injected_fault BEFORE UPDATE ON executions \
             FOR EACH ROW EXECUTE FUNCTION injected_fault()"
                .into(),
        ]
    } else {
        vec!["DROP TRIGGER injected_fault ON executions".into()]
    };
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        for sql in statements {
            sqlx::query(&sql).execute(&pool).await.expect("trigger");
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        for sql in statements {
            sqlx::query(&sql).execute(&pool).await.expect("trigger");
        }
        pool.close().await;
    }
}

/// `Observer::execution_started` is told when the engine moves an
/// execution from queued to running, once, and only after that write is
/// committed: a pass whose write fails tells nothing, and the pass that
/// writes it tells it before any of its nodes' events.
async fn an_execution_s_start_is_told_once_its_write_is_committed(b: Backend) {
    let _repo = crate::backfill::register(b.store.as_ref(), PAIR).await;
    let state = tempfile::tempdir().expect("state dir");
    let artifacts = Arc::new(LocalArtifacts::new(state.path().join("artifacts")));
    let heard = Arc::new(Heard::default());
    let engine = Engine::new(b.store.clone(), artifacts, state.path().to_path_buf())
        .with_task_env(weir::executor::environment::Inherited::from_process(
            Default::default(),
        ))
        .observe(heard.clone());
    let request = Request {
        name: "pair".into(),
        project: Some("lab".into()),
        ..Request::default()
    };
    let (execution, _) = create::create(b.store.as_ref(), &request)
        .await
        .expect("create");

    fail_starting(&b.url, true).await;
    assert!(engine.tick().await.is_err(), "the write fails");
    let stored = b.store.execution(&execution.id).await.expect("read");
    assert_eq!(stored.expect("exists").status, Status::Queued);
    assert_eq!(heard.said(), Vec::<String>::new(), "nothing told");

    fail_starting(&b.url, false).await;
    let finished = engine
        .run_until_finished(&execution.id)
        .await
        .expect("runs");
    assert_eq!(finished.status, Status::Succeeded);
    assert_eq!(
        heard.said(),
        [
            "execution started",
            "first Started",
            "first Succeeded",
            "second Started",
            "second Succeeded",
            "execution succeeded",
        ]
    );
}
