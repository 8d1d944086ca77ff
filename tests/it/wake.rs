//! What wakes the engine (DESIGN.md section 6, "Wake-ups"): an execution
//! created through the engine's own store wakes it, and a pass then starts
//! and finishes it with no tick or full pass; one written by another
//! process (another store handle here) is not seen by a pass until the
//! cheap check of the store (`look_outside`) notices it, even when another
//! execution finished meanwhile.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use weir::artifact::LocalArtifacts;
use weir::engine::Engine;
use weir::engine::create::{self, Request};
use weir::spec::ExecutionId;
use weir::store::execution::{NewExecution, Status};

use crate::common::{Backend, on_every_backend};

const DEFINITIONS: &str = r#"apiVersion: weir.dev/v1alpha1
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

async fn status(b: &Backend, id: &ExecutionId) -> Status {
    b.store
        .execution(id)
        .await
        .expect("read")
        .expect("the execution exists")
        .status
}

/// The definitions registered, an engine on `b`'s store after its first
/// full pass, and a request to run `pair` (plus what must outlive them).
async fn engine_after_a_full_pass(b: &Backend) -> (Engine, Request, impl Sized) {
    let repo = crate::backfill::register(b.store.as_ref(), DEFINITIONS).await;
    let state = tempfile::tempdir().expect("state dir");
    let artifacts = Arc::new(LocalArtifacts::new(state.path().join("artifacts")));
    let engine = Engine::new(b.store.clone(), artifacts, state.path().to_path_buf()).with_task_env(
        weir::executor::environment::Inherited::from_process(Default::default()),
    );
    engine.tick().await.expect("the first, full pass");
    let request = Request {
        name: "pair".into(),
        project: Some("lab".into()),
        ..Request::default()
    };
    (engine, request, (repo, state))
}

async fn only_wake_ups_drive_the_engine(b: Backend) {
    let (engine, request, _kept) = engine_after_a_full_pass(&b).await;

    // Written by another process: a pass reads nothing it was not told of.
    let other = weir::store::open(&b.url).await.expect("a second handle");
    let (outside, _) = create::create(other.as_ref(), &request)
        .await
        .expect("create");
    engine.pass().await.expect("a pass");
    assert_eq!(status(&b, &outside.id).await, Status::Queued);
    // The cheap check notices it; the next pass drives it.
    engine.look_outside().await.expect("the cheap check");
    engine.pass().await.expect("a pass");
    assert_eq!(status(&b, &outside.id).await, Status::Running);

    // Created through the engine's store: the creation wakes the engine,
    // and so does each attempt's end. Nothing else runs a pass here (the
    // timeout only guards against a hang).
    let (inside, _) = create::create(b.store.as_ref(), &request)
        .await
        .expect("create");
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            engine.wake.notified().await;
            engine.pass().await.expect("a pass");
            let first = status(&b, &outside.id).await;
            let second = status(&b, &inside.id).await;
            if first.is_terminal() && second.is_terminal() {
                return;
            }
        }
    })
    .await
    .expect("both executions finish on wake-ups alone");
    assert_eq!(status(&b, &outside.id).await, Status::Succeeded);
    assert_eq!(status(&b, &inside.id).await, Status::Succeeded);
}

/// `pair`'s execution with the id `id`, created at `at` (ready to insert).
async fn pair_with_id(b: &Backend, request: &Request, id: &str, at: DateTime<Utc>) -> NewExecution {
    let prepared = create::prepare(b.store.as_ref(), "pair", Some("lab"), None)
        .await
        .expect("prepare");
    let mut new = prepared.execution(request, None, at).expect("execution");
    new.execution.id = ExecutionId::from(id);
    for node in &mut new.nodes {
        node.execution = new.execution.id.clone();
    }
    new
}

/// Execution ids are hashes, and another process can create one while
/// another finishes one this engine holds: the count and the smallest and
/// largest id of the unfinished executions stay as they were, yet the
/// cheap check notices the new one (it is newer than all this engine
/// holds), and the next pass drives it. No full pass runs after the first.
async fn a_new_execution_is_noticed_when_another_finishes_meanwhile(b: Backend) {
    let (engine, request, _kept) = engine_after_a_full_pass(&b).await;
    let at = Utc::now();
    // Manual ids are `pair-` and 12 hex digits: between these two.
    let mut held = Vec::new();
    for id in ["pair-0", "pair-1", "pair-z"] {
        held.push(pair_with_id(&b, &request, id, at).await);
    }
    b.store.create_executions(&held).await.expect("create");
    engine
        .pass()
        .await
        .expect("a pass drives those it was told of");
    for new in &held {
        assert_eq!(status(&b, &new.execution.id).await, Status::Running);
    }

    // Another process creates one and finishes one of the three.
    let other = weir::store::open(&b.url).await.expect("a second handle");
    let (outside, _) = create::create(other.as_ref(), &request)
        .await
        .expect("create");
    assert!((ExecutionId::from("pair-0")..ExecutionId::from("pair-z")).contains(&outside.id));
    let mut finished = other
        .execution(&held[1].execution.id)
        .await
        .expect("read")
        .expect("exists");
    finished.status = Status::Succeeded;
    finished.finished_at = Some(Utc::now());
    other.update_execution(&finished).await.expect("finish");

    engine.look_outside().await.expect("the cheap check");
    engine.pass().await.expect("a pass");
    assert_eq!(status(&b, &outside.id).await, Status::Running);
}

/// Writes `plan` as execution `id`'s stored plan, behind the store's back.
async fn overwrite_plan(url: &str, id: &ExecutionId, plan: &str) {
    let changed = if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        sqlx::query("UPDATE executions SET plan = $1::jsonb WHERE id = $2")
            .bind(plan)
            .bind(id.as_str())
            .execute(&pool)
            .await
            .map(|done| done.rows_affected())
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        sqlx::query("UPDATE executions SET plan = ? WHERE id = ?")
            .bind(plan)
            .bind(id.as_str())
            .execute(&pool)
            .await
            .map(|done| done.rows_affected())
    };
    assert_eq!(changed.expect("overwrite"), 1);
}

/// An execution the engine cannot drive (its stored plan no longer reads)
/// holds up no other: its step alone is undone, the pass succeeds, and the
/// execution beside it runs to the end on wake-ups.
async fn one_execution_that_cannot_be_driven_holds_up_no_other(b: Backend) {
    let (engine, request, _kept) = engine_after_a_full_pass(&b).await;
    let (broken, _) = create::create(b.store.as_ref(), &request)
        .await
        .expect("create");
    let (sound, _) = create::create(b.store.as_ref(), &request)
        .await
        .expect("create");
    overwrite_plan(&b.url, &broken.id, r#"{"unreadable": true}"#).await;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            engine
                .pass()
                .await
                .expect("the pass succeeds for the others");
            if status(&b, &sound.id).await.is_terminal() {
                return;
            }
            engine.wake.notified().await;
        }
    })
    .await
    .expect("the sound execution finishes");
    assert_eq!(status(&b, &sound.id).await, Status::Succeeded);
    assert_eq!(
        status(&b, &broken.id).await,
        Status::Queued,
        "left as it was"
    );
}

on_every_backend!(
    only_wake_ups_drive_the_engine,
    a_new_execution_is_noticed_when_another_finishes_meanwhile,
    one_execution_that_cannot_be_driven_holds_up_no_other
);
