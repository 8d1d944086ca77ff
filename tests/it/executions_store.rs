//! What the store keeps of executions (`ExecutionStore`), run alike against
//! SQLite (a temporary file) and PostgreSQL (a fresh schema at
//! `WEIR_TEST_POSTGRES_URL`; skipped when it is unset, a failure when
//! `CI=true`), as `tests/it/store.rs` runs the registry's contract.
//!
//! Each story is what the scheduler, the engine or the CLI asks of the
//! store: create an execution once however many ask (I4), follow its nodes
//! in plan order across restarts, list and cancel executions, record where
//! each artifact came from (I5) and keep the first cached result.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use weir::spec::{CommitId, Digest, ExecutionId, SourceKey, Trigger};
use weir::store::execution::EngineWrite;
use weir::store::{
    self, CacheEntry, Delivery, DeliveryAttempt, DeliveryStatus, Direction, Execution,
    ExecutionFilter, LineageEdge, NewExecution, NodeState, NodeStatus, Status, Store,
};

use crate::common::{Backend, on_every_backend};

on_every_backend!(
    an_execution_and_its_nodes_round_trip_every_field,
    creating_an_existing_id_returns_the_first_and_adds_nothing,
    two_creators_racing_on_each_id_get_exactly_one_true,
    a_batch_creates_the_new_ids_and_leaves_the_existing_ones,
    a_batch_larger_than_one_statement_is_created_whole_and_once,
    two_batch_creators_racing_on_overlapping_ids_get_exactly_one_true,
    nodes_come_back_in_plan_order,
    executions_are_read_by_id_many_at_once,
    node_and_execution_updates_persist,
    unfinished_executions_are_the_queued_and_running_ones_oldest_first,
    executions_filter_by_launch_plan_workflow_status_and_trigger_newest_first_a_page_at_a_time,
    cancel_is_granted_to_unfinished_executions_only,
    lineage_is_recorded_once_and_found_by_artifact_and_by_execution,
    the_first_cache_entry_for_a_key_wins,
    completing_a_node_writes_its_state_cache_entry_and_lineage,
    completing_a_node_writes_nothing_when_one_edge_is_refused,
    an_engine_pass_writes_all_its_steps_or_none,
    an_unknown_stored_status_is_reported_as_corrupt,
    an_unknown_stored_trigger_is_reported_as_corrupt,
    finished_executions_are_found_oldest_first_from_an_instant,
    deliveries_are_created_once_and_their_attempts_persist,
);

// ---------------------------------------------------------------- fixtures

/// `minutes` after a fixed instant, with microseconds (what both backends
/// keep) so that precision is checked too.
fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0)
        .single()
        .expect("a valid instant")
        + Duration::minutes(minutes)
        + Duration::microseconds(123_456)
}

fn digest(text: &str) -> Digest {
    Digest::of_json(&json!(text))
}

/// A scheduled execution of `ml/train` by the launch plan `nightly`,
/// created at `at(created)`, with nothing optional set beyond that.
pub(crate) fn execution(id: &str, status: Status, created: i64) -> Execution {
    Execution {
        id: id.into(),
        project: "ml".into(),
        workflow: "train".into(),
        workflow_version: digest("train v1"),
        launch_plan: Some("nightly".into()),
        launch_plan_version: Some(digest("nightly v1")),
        source: SourceKey("file:///srv/repo#main:pipelines".into()),
        commit: CommitId(format!("{:040x}", 7)),
        trigger: Trigger::Schedule,
        scheduled_at: Some(at(created)),
        inputs: json!({ "date": "2026-03-29" }),
        plan: json!({ "nodes": ["prepare", "train"] }).into(),
        options: Default::default(),
        status,
        outputs: None,
        error: None,
        created_at: at(created),
        started_at: None,
        finished_at: None,
        cancel_requested: false,
    }
}

/// A pending node of `execution` at `path`, never started.
fn node(execution: &str, path: &str) -> NodeState {
    NodeState::pending(
        execution.into(),
        path.into(),
        path.rsplit('/').next().unwrap_or(path).into(),
        digest(path),
    )
}

/// Creates `execution` with `nodes` and checks that this call created it.
async fn create(store: &dyn Store, execution: &Execution, nodes: &[NodeState]) {
    let (stored, created) = store
        .create_execution(execution, nodes)
        .await
        .expect("create an execution");
    assert!(created, "{} existed already", execution.id);
    assert_eq!(&stored, execution);
}

fn ids(executions: &[Execution]) -> Vec<&str> {
    executions.iter().map(|e| e.id.as_str()).collect()
}

fn edge(
    execution: &str,
    node: &str,
    direction: Direction,
    name: &str,
    artifact: &Digest,
    minutes: i64,
) -> LineageEdge {
    LineageEdge {
        execution: execution.into(),
        node: node.into(),
        direction,
        name: name.into(),
        digest: artifact.clone(),
        task: node.into(),
        task_version: digest(node),
        commit: CommitId(format!("{:040x}", 7)),
        at: at(minutes),
    }
}

/// Runs one statement on the backend's database behind the store's back.
async fn tamper(url: &str, statement: &str) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        sqlx::query(statement).execute(&pool).await.expect("tamper");
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        sqlx::query(statement).execute(&pool).await.expect("tamper");
    }
}

// ----------------------------------------------------------------- stories

async fn an_execution_and_its_nodes_round_trip_every_field(b: Backend) {
    let store = &*b.store;
    let full = Execution {
        launch_plan: None,
        launch_plan_version: None,
        trigger: Trigger::Backfill,
        inputs: json!({ "date": "2026-03-29", "rows": 10_000_000_000u64, "ratio": 0.25,
                        "tags": ["a", "b"], "note": "naïve — ünïcode" }),
        plan: json!({ "nodes": [{ "id": "prepare", "after": [] }, { "id": "sub/train" }] }).into(),
        options: weir::store::execution::RunOptions {
            no_cache: true,
            ..Default::default()
        },
        outputs: Some(json!({ "model": { "digest": digest("model").as_str() } })),
        error: Some("node train: exit code 3".into()),
        started_at: Some(at(1)),
        finished_at: Some(at(90)),
        cancel_requested: true,
        ..execution("train-full", Status::Failed, 0)
    };
    let full_node = NodeState {
        status: NodeStatus::Retrying,
        attempts: 2,
        inputs: Some(json!({ "data": digest("data").as_str(), "epochs": 3 })),
        outputs: Some(json!({})),
        error: Some("OOMKilled".into()),
        cached_from: Some("train-yesterday".into()),
        started_at: Some(at(2)),
        finished_at: Some(at(3)),
        next_attempt_at: Some(at(4)),
        handle: Some(json!({ "pgid": 4242, "dir": "/var/lib/weir/runs/x" })),
        ..node("train-full", "sub/train")
    };
    let nodes = vec![node("train-full", "prepare"), full_node];
    create(store, &full, &nodes).await;
    assert_eq!(
        store.execution(&"train-full".into()).await.expect("read"),
        Some(full)
    );
    assert_eq!(
        store.nodes(&"train-full".into()).await.expect("nodes"),
        nodes
    );

    // Nothing optional set: every None stays None, and no nodes at all.
    let bare = Execution {
        launch_plan: None,
        launch_plan_version: None,
        scheduled_at: None,
        trigger: Trigger::Manual,
        ..execution("train-bare", Status::Queued, 5)
    };
    create(store, &bare, &[]).await;
    assert_eq!(
        store.execution(&"train-bare".into()).await.expect("read"),
        Some(bare)
    );
    assert!(
        store
            .nodes(&"train-bare".into())
            .await
            .expect("nodes")
            .is_empty()
    );

    assert_eq!(store.execution(&"never".into()).await.expect("read"), None);
    assert!(
        store
            .nodes(&"never".into())
            .await
            .expect("nodes")
            .is_empty()
    );
}

/// A scheduler that restarts (or a second replica) creates the same id
/// again: it gets the first execution back, and nothing changes (I4).
async fn creating_an_existing_id_returns_the_first_and_adds_nothing(b: Backend) {
    let store = &*b.store;
    let first = execution("nightly-1", Status::Queued, 0);
    let nodes = [node("nightly-1", "prepare"), node("nightly-1", "train")];
    create(store, &first, &nodes).await;
    let running = Execution {
        status: Status::Running,
        started_at: Some(at(1)),
        ..first.clone()
    };
    store.update_execution(&running).await.expect("update");

    let again = Execution {
        inputs: json!({ "date": "another day" }),
        created_at: at(60),
        ..first.clone()
    };
    let (stored, created) = store
        .create_execution(&again, &[node("nightly-1", "other")])
        .await
        .expect("create again");
    assert!(!created);
    assert_eq!(stored, running, "the stored execution, as it is now");
    assert_eq!(
        store.nodes(&"nightly-1".into()).await.expect("nodes"),
        nodes
    );
    assert_eq!(
        store
            .executions(&ExecutionFilter::default())
            .await
            .expect("list")
            .len(),
        1
    );
}

/// Two replicas (two pools on one database) create each of 20 ids at the
/// same moment: every id gets one row, one `true`, and the winner's nodes.
async fn two_creators_racing_on_each_id_get_exactly_one_true(b: Backend) {
    let second = store::open(&b.url).await.expect("open a second time");
    let mut races = Vec::new();
    for i in 0..20 {
        let id = format!("race-{i:02}");
        let start = Arc::new(Barrier::new(2));
        for (side, store) in [("a", b.store.clone()), ("b", second.clone())] {
            let execution = Execution {
                inputs: json!({ "side": side }),
                ..execution(&id, Status::Queued, i)
            };
            let nodes = vec![node(&id, &format!("from-{side}"))];
            let start = start.clone();
            races.push(tokio::spawn(async move {
                start.wait().await;
                let (stored, created) = store
                    .create_execution(&execution, &nodes)
                    .await
                    .expect("create");
                (execution.id, side, stored, created)
            }));
        }
    }
    let mut outcomes: HashMap<ExecutionId, Vec<(&str, Execution, bool)>> = HashMap::new();
    for race in races {
        let (id, side, stored, created) = race.await.expect("a creator panicked");
        outcomes
            .entry(id)
            .or_default()
            .push((side, stored, created));
    }
    assert_eq!(outcomes.len(), 20);
    let trues: usize = outcomes
        .values()
        .map(|o| o.iter().filter(|(_, _, created)| *created).count())
        .sum();
    assert_eq!(trues, 20, "exactly one creator per id gets true");
    for (id, outcome) in &outcomes {
        let (winner, _, _) = outcome
            .iter()
            .find(|(_, _, created)| *created)
            .expect("a winner");
        assert_eq!(outcome[0].1, outcome[1].1, "{id}: both see one execution");
        assert_eq!(outcome[0].1.inputs, json!({ "side": winner }), "{id}");
        let nodes = b.store.nodes(id).await.expect("nodes");
        assert_eq!(
            nodes,
            vec![node(id.as_str(), &format!("from-{winner}"))],
            "{id}"
        );
    }
}

/// A queued execution `id` with the nodes `prepare` and `train`, to create
/// in a batch.
fn new_execution(id: &str, created: i64) -> NewExecution {
    NewExecution {
        execution: execution(id, Status::Queued, created),
        nodes: vec![node(id, "prepare"), node(id, "train")],
    }
}

/// The scheduler's burst: new and existing ids in one batch. Exactly the
/// new ones are created (with their nodes, in plan order), an existing one
/// keeps its row and nodes, an id given twice is created once, and the
/// same batch again creates nothing (I4).
async fn a_batch_creates_the_new_ids_and_leaves_the_existing_ones(b: Backend) {
    let store = &*b.store;
    let existing = execution("nightly-2", Status::Running, 0);
    create(store, &existing, &[node("nightly-2", "only")]).await;
    let batch = vec![
        new_execution("nightly-3", 1),
        NewExecution {
            execution: Execution {
                inputs: json!({ "date": "another day" }),
                ..execution("nightly-2", Status::Queued, 2)
            },
            nodes: vec![node("nightly-2", "other")],
        },
        new_execution("nightly-1", 3),
        new_execution("nightly-3", 4),
    ];
    let created = store.create_executions(&batch).await.expect("create");
    assert_eq!(created, [true, false, true, false]);
    for new in [&batch[0], &batch[2]] {
        let id = &new.execution.id;
        assert_eq!(
            store.execution(id).await.expect("read").as_ref(),
            Some(&new.execution)
        );
        assert_eq!(store.nodes(id).await.expect("nodes"), new.nodes, "{id}");
    }
    assert_eq!(
        store.execution(&"nightly-2".into()).await.expect("read"),
        Some(existing),
        "an existing execution stays as it is"
    );
    assert_eq!(
        store.nodes(&"nightly-2".into()).await.expect("nodes"),
        [node("nightly-2", "only")]
    );

    let again = store.create_executions(&batch).await.expect("again");
    assert_eq!(again, [false; 4], "the same batch again creates nothing");
    assert!(
        store
            .create_executions(&[])
            .await
            .expect("empty")
            .is_empty()
    );
    let all = store
        .executions(&ExecutionFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 3);
}

/// More executions than one statement may bind on either database (20
/// parameters a row: 1,638 rows on SQLite, 3,276 on PostgreSQL): every one
/// is created with its nodes, and a second call creates none.
async fn a_batch_larger_than_one_statement_is_created_whole_and_once(b: Backend) {
    let store = &*b.store;
    let batch: Vec<NewExecution> = (0..4_000)
        .map(|i| new_execution(&format!("burst-{i:04}"), i % 60))
        .collect();
    let created = store.create_executions(&batch).await.expect("create");
    assert_eq!(created.len(), batch.len());
    assert!(created.iter().all(|c| *c), "every id was new");
    let unfinished = store.unfinished_executions().await.expect("unfinished");
    assert_eq!(unfinished.len(), batch.len());
    for i in [0, 1_637, 1_638, 3_275, 3_276, 3_999] {
        let new = &batch[i];
        let id = &new.execution.id;
        assert_eq!(store.nodes(id).await.expect("nodes"), new.nodes, "{id}");
    }
    let again = store.create_executions(&batch).await.expect("again");
    assert!(again.iter().all(|c| !*c), "nothing is created twice");
    assert_eq!(
        store
            .unfinished_executions()
            .await
            .expect("unfinished")
            .len(),
        batch.len()
    );
}

/// Two replicas create overlapping batches at the same moment, in
/// opposite orders: each id is created once, by one of them, and neither
/// waits for the other forever (rows are written in id order).
async fn two_batch_creators_racing_on_overlapping_ids_get_exactly_one_true(b: Backend) {
    let second = store::open(&b.url).await.expect("open a second time");
    let ids: Vec<String> = (0..300).map(|i| format!("race-{i:03}")).collect();
    let forward: Vec<NewExecution> = ids[..200].iter().map(|id| new_execution(id, 0)).collect();
    let backward: Vec<NewExecution> = ids[100..]
        .iter()
        .rev()
        .map(|id| new_execution(id, 0))
        .collect();
    let start = Arc::new(Barrier::new(2));
    let mut sides = Vec::new();
    for (store, batch) in [(b.store.clone(), forward), (second, backward)] {
        let start = start.clone();
        sides.push(tokio::spawn(async move {
            start.wait().await;
            let created = store.create_executions(&batch).await.expect("create");
            batch
                .into_iter()
                .zip(created)
                .map(|(new, created)| (new.execution.id, created))
                .collect::<Vec<_>>()
        }));
    }
    let mut trues: HashMap<ExecutionId, usize> = HashMap::new();
    for side in sides {
        for (id, created) in side.await.expect("a creator panicked") {
            *trues.entry(id).or_default() += usize::from(created);
        }
    }
    assert_eq!(trues.len(), ids.len());
    assert!(
        trues.values().all(|n| *n == 1),
        "exactly one creator per id gets true"
    );
    for id in [&ids[0], &ids[150], &ids[299]] {
        assert_eq!(
            b.store.nodes(&id.as_str().into()).await.expect("nodes"),
            [node(id, "prepare"), node(id, "train")]
        );
    }
}

/// `executions_of` reads many executions by id at once (what the engine
/// reads of those it was told of): each that exists, as `execution` reads
/// it; an unknown id is left out and one given twice is read once.
async fn executions_are_read_by_id_many_at_once(b: Backend) {
    let store = &*b.store;
    let first = execution("e1", Status::Queued, 0);
    let second = Execution {
        cancel_requested: true,
        ..execution("e2", Status::Running, 1)
    };
    create(store, &first, &[node("e1", "train")]).await;
    create(store, &second, &[node("e2", "train")]).await;
    let ids: Vec<ExecutionId> = ["e2", "nope", "e1", "e2"].map(ExecutionId::from).to_vec();
    let read = store.executions_of(&ids).await.expect("read");
    let expected: HashMap<ExecutionId, Execution> = [first, second]
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    assert_eq!(read, expected);
    assert!(store.executions_of(&[]).await.expect("read").is_empty());
}

async fn nodes_come_back_in_plan_order(b: Backend) {
    let store = &*b.store;
    // Plan order is neither alphabetical nor by length: the engine's
    // topological order, as given.
    let paths: Vec<String> = (0..60)
        .map(|i| match i % 3 {
            0 => format!("z{}", 60 - i),
            1 => format!("sub/a{i}"),
            _ => format!("m{}", (i * 37) % 61),
        })
        .collect();
    let nodes: Vec<NodeState> = paths.iter().map(|p| node("big", p)).collect();
    create(store, &execution("big", Status::Queued, 0), &nodes).await;
    let small = [node("small", "zeta"), node("small", "alpha")];
    create(store, &execution("small", Status::Queued, 1), &small).await;

    assert_eq!(store.nodes(&"big".into()).await.expect("nodes"), nodes);
    assert_eq!(store.nodes(&"small".into()).await.expect("nodes"), small);
}

/// The engine persists each step, so a restarted process continues from
/// what it reads back.
async fn node_and_execution_updates_persist(b: Backend) {
    let store = &*b.store;
    let queued = execution("run", Status::Queued, 0);
    let nodes = [node("run", "prepare"), node("run", "train")];
    create(store, &queued, &nodes).await;

    let running = NodeState {
        status: NodeStatus::Running,
        attempts: 1,
        inputs: Some(json!({ "date": "2026-03-29" })),
        started_at: Some(at(1)),
        handle: Some(json!({ "pgid": 77 })),
        ..nodes[0].clone()
    };
    store.update_node(&running).await.expect("update node");
    assert_eq!(
        store.nodes(&"run".into()).await.expect("nodes"),
        vec![running.clone(), nodes[1].clone()]
    );
    // Retrying clears what the first attempt set; NULLs are written too.
    let retrying = NodeState {
        status: NodeStatus::Retrying,
        error: Some("exit code 1".into()),
        finished_at: Some(at(2)),
        next_attempt_at: Some(at(3)),
        handle: None,
        ..running
    };
    store.update_node(&retrying).await.expect("update node");
    let succeeded = NodeState {
        status: NodeStatus::Succeeded,
        attempts: 2,
        outputs: Some(json!({ "rows": 12 })),
        error: None,
        next_attempt_at: None,
        cached_from: Some("yesterday".into()),
        ..retrying
    };
    store.update_node(&succeeded).await.expect("update node");
    assert_eq!(
        store.nodes(&"run".into()).await.expect("nodes")[0],
        succeeded
    );

    // Status, outputs, error and times are written; the rest is fixed at
    // creation, and a cancellation asked meanwhile is not lost.
    assert!(store.request_cancel(&"run".into()).await.expect("cancel"));
    let finished = Execution {
        status: Status::Succeeded,
        outputs: Some(json!({ "model": "m" })),
        error: Some("none, really".into()),
        started_at: Some(at(1)),
        finished_at: Some(at(9)),
        workflow: "renamed".into(),
        inputs: json!("changed"),
        plan: json!("changed").into(),
        cancel_requested: false,
        ..queued.clone()
    };
    store.update_execution(&finished).await.expect("update");
    let stored = store
        .execution(&"run".into())
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        stored,
        Execution {
            workflow: queued.workflow.clone(),
            inputs: queued.inputs.clone(),
            plan: queued.plan.clone(),
            cancel_requested: true,
            ..finished.clone()
        }
    );

    // Writing what was never created is the caller's bug, not a no-op.
    let ghost = store.update_node(&node("run", "ghost")).await;
    assert!(
        matches!(ghost, Err(store::Error::NotFound { .. })),
        "{ghost:?}"
    );
    let ghost = store
        .update_execution(&execution("ghost", Status::Running, 0))
        .await;
    assert!(
        matches!(ghost, Err(store::Error::NotFound { .. })),
        "{ghost:?}"
    );
}

async fn unfinished_executions_are_the_queued_and_running_ones_oldest_first(b: Backend) {
    let store = &*b.store;
    let made = [
        ("running-3", Status::Running, 3),
        ("succeeded-1", Status::Succeeded, 1),
        ("queued-2", Status::Queued, 2),
        ("failed-4", Status::Failed, 4),
        ("cancelled-5", Status::Cancelled, 5),
        ("timed-out-6", Status::TimedOut, 6),
        ("queued-0", Status::Queued, 0),
    ];
    for (id, status, created) in made {
        create(store, &execution(id, status, created), &[]).await;
    }
    let unfinished = store.unfinished_executions().await.expect("unfinished");
    assert_eq!(ids(&unfinished), ["queued-0", "queued-2", "running-3"]);

    let done = Execution {
        status: Status::Succeeded,
        finished_at: Some(at(10)),
        ..unfinished[0].clone()
    };
    store.update_execution(&done).await.expect("update");
    let unfinished = store.unfinished_executions().await.expect("unfinished");
    assert_eq!(ids(&unfinished), ["queued-2", "running-3"]);
}

async fn executions_filter_by_launch_plan_workflow_status_and_trigger_newest_first_a_page_at_a_time(
    b: Backend,
) {
    let store = &*b.store;
    let of = |id: &str, launch_plan: Option<&str>, workflow: &str, status, created| Execution {
        launch_plan: launch_plan.map(str::to_owned),
        workflow: workflow.into(),
        ..execution(id, status, created)
    };
    let made = [
        of("n1", Some("nightly"), "train", Status::Succeeded, 1),
        of("h2", Some("hourly"), "etl", Status::Failed, 2),
        of("n3", Some("nightly"), "train", Status::Failed, 3),
        Execution {
            trigger: Trigger::Api,
            ..of("m4", None, "train", Status::Running, 4)
        },
        of("h5", Some("hourly"), "etl", Status::Succeeded, 5),
        of("n6", Some("nightly"), "train", Status::Queued, 6),
    ];
    for e in &made {
        create(store, e, &[]).await;
    }
    let list = |filter: ExecutionFilter| async move {
        let found = store.executions(&filter).await.expect("list");
        found.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        list(ExecutionFilter::default()).await,
        ["n6", "h5", "m4", "n3", "h2", "n1"]
    );
    let nightly = ExecutionFilter {
        launch_plan: Some("nightly".into()),
        ..ExecutionFilter::default()
    };
    assert_eq!(list(nightly.clone()).await, ["n6", "n3", "n1"]);
    let etl = ExecutionFilter {
        workflow: Some("etl".into()),
        ..ExecutionFilter::default()
    };
    assert_eq!(list(etl).await, ["h5", "h2"]);
    let failed = ExecutionFilter {
        status: Some(Status::Failed),
        ..ExecutionFilter::default()
    };
    assert_eq!(list(failed).await, ["n3", "h2"]);
    let nightly_failed = ExecutionFilter {
        status: Some(Status::Failed),
        ..nightly.clone()
    };
    assert_eq!(list(nightly_failed).await, ["n3"]);
    let latest_two = ExecutionFilter {
        limit: Some(2),
        ..nightly
    };
    assert_eq!(list(latest_two).await, ["n6", "n3"]);
    let nothing = ExecutionFilter {
        launch_plan: Some("weekly".into()),
        ..ExecutionFilter::default()
    };
    assert!(list(nothing).await.is_empty());
    let limit_zero = ExecutionFilter {
        limit: Some(0),
        ..ExecutionFilter::default()
    };
    assert!(list(limit_zero).await.is_empty());
    let by_api = ExecutionFilter {
        trigger: Some(Trigger::Api),
        ..ExecutionFilter::default()
    };
    assert_eq!(list(by_api).await, ["m4"]);
    // A page after `n3` (keyset): what is older, whatever the filter.
    let after_n3 = ExecutionFilter {
        before: Some((made[2].created_at, "n3".into())),
        ..ExecutionFilter::default()
    };
    assert_eq!(list(after_n3).await, ["h2", "n1"]);
    // Two created in the same instant are told apart by id.
    let twin = Execution {
        id: "n3b".into(),
        ..made[2].clone()
    };
    create(store, &twin, &[]).await;
    let after_n3b = ExecutionFilter {
        before: Some((made[2].created_at, "n3b".into())),
        limit: Some(1),
        ..ExecutionFilter::default()
    };
    assert_eq!(list(after_n3b).await, ["n3"]);

    // Without a limit, the newest 100.
    for i in 0..100 {
        let id = format!("bulk-{i:03}");
        create(store, &execution(&id, Status::Succeeded, 100 + i), &[]).await;
    }
    let page = list(ExecutionFilter::default()).await;
    assert_eq!((page.len(), page[0].as_str()), (100, "bulk-099"));
    assert_eq!(page[99], "bulk-000");
}

/// `weir cancel`: granted while an execution is queued or running (asking
/// twice is harmless), refused once it finished or when it never existed.
async fn cancel_is_granted_to_unfinished_executions_only(b: Backend) {
    let store = &*b.store;
    for (id, status) in [
        ("running", Status::Running),
        ("queued", Status::Queued),
        ("succeeded", Status::Succeeded),
        ("cancelled", Status::Cancelled),
    ] {
        create(store, &execution(id, status, 0), &[]).await;
    }
    assert!(
        store
            .request_cancel(&"running".into())
            .await
            .expect("cancel")
    );
    assert!(
        store
            .request_cancel(&"running".into())
            .await
            .expect("cancel again")
    );
    assert!(
        store
            .request_cancel(&"queued".into())
            .await
            .expect("cancel")
    );
    assert!(
        !store
            .request_cancel(&"succeeded".into())
            .await
            .expect("cancel")
    );
    assert!(
        !store
            .request_cancel(&"cancelled".into())
            .await
            .expect("cancel")
    );
    assert!(!store.request_cancel(&"never".into()).await.expect("cancel"));

    for (id, requested) in [
        ("running", true),
        ("queued", true),
        ("succeeded", false),
        ("cancelled", false),
    ] {
        let stored = store
            .execution(&id.into())
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(stored.cancel_requested, requested, "{id}");
    }
    let stored = store.execution(&"running".into()).await.expect("read");
    assert_eq!(stored.map(|e| e.status), Some(Status::Running));
}

/// `prepare` writes `data`, `train` reads it and writes `model`, which an
/// evaluation in another execution reads: each artifact leads back to the
/// node executions that produced and used it (I5).
async fn lineage_is_recorded_once_and_found_by_artifact_and_by_execution(b: Backend) {
    let store = &*b.store;
    let nodes = [node("e1", "prepare"), node("e1", "train")];
    create(store, &execution("e1", Status::Running, 0), &nodes).await;
    create(
        store,
        &execution("e2", Status::Running, 1),
        &[node("e2", "evaluate")],
    )
    .await;
    let (data, model) = (digest("data bytes"), digest("model bytes"));
    let produced = edge("e1", "prepare", Direction::Output, "data", &data, 1);
    let read = edge("e1", "train", Direction::Input, "data", &data, 2);
    let trained = edge("e1", "train", Direction::Output, "model", &model, 3);
    let evaluated = edge("e2", "evaluate", Direction::Input, "model", &model, 4);

    // Recorded out of order, twice, and with a duplicate in one call.
    store
        .record_lineage(&[trained.clone(), read.clone(), read.clone()])
        .await
        .expect("record");
    store
        .record_lineage(&[evaluated.clone(), produced.clone(), trained.clone()])
        .await
        .expect("record again");
    store.record_lineage(&[]).await.expect("record nothing");

    assert_eq!(
        store.lineage_of_artifact(&data).await.expect("lineage"),
        vec![produced.clone(), read.clone()],
        "oldest first"
    );
    assert_eq!(
        store.lineage_of_artifact(&model).await.expect("lineage"),
        vec![trained.clone(), evaluated.clone()]
    );
    assert_eq!(
        store
            .lineage_of_execution(&"e1".into())
            .await
            .expect("lineage"),
        vec![produced, read, trained]
    );
    assert_eq!(
        store
            .lineage_of_execution(&"e2".into())
            .await
            .expect("lineage"),
        vec![evaluated]
    );
    let unknown = digest("never produced");
    assert!(
        store
            .lineage_of_artifact(&unknown)
            .await
            .expect("lineage")
            .is_empty()
    );
    assert!(
        store
            .lineage_of_execution(&"never".into())
            .await
            .expect("lineage")
            .is_empty()
    );

    // An edge names a node execution that exists.
    let orphan = edge("e1", "ghost", Direction::Output, "x", &data, 5);
    assert!(store.record_lineage(&[orphan]).await.is_err());
}

async fn the_first_cache_entry_for_a_key_wins(b: Backend) {
    let store = &*b.store;
    let key = digest("train@v1 inputs");
    assert_eq!(store.cache_get(&key).await.expect("get"), None);
    let first = CacheEntry {
        key: key.clone(),
        execution: "e1".into(),
        node: "train".into(),
        outputs: json!({ "model": digest("model").as_str(), "accuracy": 0.93 }),
        created_at: at(1),
    };
    store.cache_put(&first).await.expect("put");
    let second = CacheEntry {
        execution: "e2".into(),
        outputs: json!({ "model": "other" }),
        created_at: at(2),
        ..first.clone()
    };
    store
        .cache_put(&second)
        .await
        .expect("second put is a no-op");
    assert_eq!(store.cache_get(&key).await.expect("get"), Some(first));

    let other = CacheEntry {
        key: digest("train@v1 other inputs"),
        outputs: Value::Null,
        ..second
    };
    store.cache_put(&other).await.expect("put");
    assert_eq!(store.cache_get(&other.key).await.expect("get"), Some(other));
}

/// A node that ran, with inputs and outputs, ready to be completed.
fn succeeded(execution: &str, path: &str, model: &Digest) -> NodeState {
    NodeState {
        status: NodeStatus::Succeeded,
        attempts: 1,
        inputs: Some(json!({ "rate": 0.05 })),
        outputs: Some(json!({ "model": model.as_str() })),
        started_at: Some(at(1)),
        finished_at: Some(at(2)),
        ..node(execution, path)
    }
}

/// The cache entry of `done` (a succeeded node of `e1`, as [`succeeded`]).
fn cache_entry(done: &NodeState) -> CacheEntry {
    CacheEntry {
        key: digest("train@v1 rate=0.05"),
        execution: "e1".into(),
        node: "train".into(),
        outputs: done.outputs.clone().expect("outputs"),
        created_at: at(2),
    }
}

/// `complete_node` writes a succeeded node, its cache entry and its edges
/// together (I5 by one transaction).
async fn completing_a_node_writes_its_state_cache_entry_and_lineage(b: Backend) {
    let store = &*b.store;
    create(
        store,
        &execution("e1", Status::Running, 0),
        &[node("e1", "train")],
    )
    .await;
    let model = digest("model bytes");
    let done = succeeded("e1", "train", &model);
    let entry = cache_entry(&done);
    let edges = [
        edge("e1", "train", Direction::Input, "rate", &digest("0.05"), 2),
        edge("e1", "train", Direction::Output, "model", &model, 2),
    ];
    store
        .complete_node(&done, Some(&entry), &edges)
        .await
        .expect("complete");
    assert_eq!(store.nodes(&"e1".into()).await.expect("nodes"), vec![done]);
    assert_eq!(store.cache_get(&entry.key).await.expect("get"), Some(entry));
    assert_eq!(
        store
            .lineage_of_execution(&"e1".into())
            .await
            .expect("lineage"),
        edges.to_vec()
    );
}

/// When one write of `complete_node` fails (here an edge naming a node the
/// store does not have), none of the three is kept: the node is still
/// running, so the engine records it again, and no cache entry or edge
/// exists without it.
async fn completing_a_node_writes_nothing_when_one_edge_is_refused(b: Backend) {
    let store = &*b.store;
    let running = NodeState {
        status: NodeStatus::Running,
        attempts: 1,
        started_at: Some(at(1)),
        ..node("e1", "train")
    };
    create(
        store,
        &execution("e1", Status::Running, 0),
        std::slice::from_ref(&running),
    )
    .await;
    let model = digest("model bytes");
    let done = succeeded("e1", "train", &model);
    let entry = cache_entry(&done);
    let edges = [
        edge("e1", "train", Direction::Output, "model", &model, 2),
        edge("e1", "no-such-node", Direction::Output, "model", &model, 2),
    ];
    let refused = store.complete_node(&done, Some(&entry), &edges).await;
    assert!(refused.is_err(), "an edge of a missing node is refused");
    assert_eq!(
        store.nodes(&"e1".into()).await.expect("nodes"),
        vec![running],
        "the node's success was rolled back"
    );
    assert_eq!(store.cache_get(&entry.key).await.expect("get"), None);
    assert_eq!(
        store
            .lineage_of_execution(&"e1".into())
            .await
            .expect("lineage"),
        []
    );
}

/// An engine pass's writes (`apply_engine_writes`) are one transaction:
/// when one in the middle fails (a node the store does not have), none of
/// the batch is kept, neither the writes before it nor those after; the
/// same batch without it is then written whole, in order.
async fn an_engine_pass_writes_all_its_steps_or_none(b: Backend) {
    let store = &*b.store;
    let pending = [node("e1", "prepare"), node("e1", "train")];
    create(store, &execution("e1", Status::Running, 0), &pending).await;
    let prepared = NodeState {
        status: NodeStatus::Succeeded,
        attempts: 1,
        started_at: Some(at(1)),
        finished_at: Some(at(1)),
        ..node("e1", "prepare")
    };
    let model = digest("model bytes");
    let trained = succeeded("e1", "train", &model);
    let entry = cache_entry(&trained);
    let edges = vec![edge("e1", "train", Direction::Output, "model", &model, 2)];
    let finished = Execution {
        status: Status::Succeeded,
        outputs: Some(json!({ "model": model.as_str() })),
        started_at: Some(at(0)),
        finished_at: Some(at(2)),
        ..execution("e1", Status::Running, 0)
    };
    let mut writes = vec![
        EngineWrite::Node(prepared.clone()),
        EngineWrite::Completed {
            node: trained.clone(),
            cache: Some(entry.clone()),
            edges: edges.clone(),
        },
        EngineWrite::Node(node("e1", "no-such-node")),
        EngineWrite::Execution(finished.clone()),
    ];
    let refused = store.apply_engine_writes(&writes).await;
    assert!(
        matches!(refused, Err(store::Error::NotFound { .. })),
        "a missing node is refused: {refused:?}"
    );
    assert_eq!(
        store.nodes(&"e1".into()).await.expect("nodes"),
        pending.to_vec(),
        "no node write before the failed one is kept"
    );
    assert_eq!(store.cache_get(&entry.key).await.expect("get"), None);
    let lineage = store.lineage_of_execution(&"e1".into()).await;
    assert_eq!(lineage.expect("lineage"), []);
    let kept = store.execution(&"e1".into()).await.expect("read");
    assert_eq!(
        kept.expect("exists").status,
        Status::Running,
        "no write after the failed one is kept"
    );

    writes.remove(2);
    store.apply_engine_writes(&writes).await.expect("apply");
    assert_eq!(
        store.nodes(&"e1".into()).await.expect("nodes"),
        vec![prepared, trained]
    );
    assert_eq!(store.cache_get(&entry.key).await.expect("get"), Some(entry));
    let lineage = store.lineage_of_execution(&"e1".into()).await;
    assert_eq!(lineage.expect("lineage"), edges);
    let stored = store.execution(&"e1".into()).await.expect("read");
    assert_eq!(stored, Some(finished));
}

/// A row written by a newer weir (or by hand) with a status this version
/// does not know is reported, naming it, rather than guessed at.
async fn an_unknown_stored_status_is_reported_as_corrupt(b: Backend) {
    let store = &*b.store;
    create(
        store,
        &execution("odd", Status::Running, 0),
        &[node("odd", "train")],
    )
    .await;
    tamper(&b.url, "UPDATE executions SET status = 'paused'").await;
    tamper(&b.url, "UPDATE node_executions SET status = 'dozing'").await;

    reading_odd_is_corrupt_naming(store, "\"paused\"").await;
    let error = store
        .nodes(&"odd".into())
        .await
        .expect_err("an unknown node status");
    assert!(matches!(error, store::Error::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("\"dozing\""), "{error}");
}

/// Reading execution `odd`, alone or in a listing, is `Corrupt`, naming
/// the stored value it cannot read.
async fn reading_odd_is_corrupt_naming(store: &dyn store::Store, value: &str) {
    for error in [
        store.execution(&"odd".into()).await.map(|_| ()),
        store
            .executions(&ExecutionFilter::default())
            .await
            .map(|_| ()),
    ] {
        let error = error.expect_err("an unreadable stored value");
        assert!(matches!(error, store::Error::Corrupt { .. }), "{error:?}");
        assert!(error.to_string().contains(value), "{error}");
    }
}

/// Likewise a trigger this version does not know: reported, naming it.
async fn an_unknown_stored_trigger_is_reported_as_corrupt(b: Backend) {
    let store = &*b.store;
    create(
        store,
        &execution("odd", Status::Running, 0),
        &[node("odd", "train")],
    )
    .await;
    tamper(&b.url, "UPDATE executions SET trigger = 'whim'").await;

    reading_odd_is_corrupt_naming(store, "\"whim\"").await;
}

async fn finished_executions_are_found_oldest_first_from_an_instant(b: Backend) {
    let store = &*b.store;
    for (id, finished) in [
        ("c", Some(30)),
        ("a", Some(10)),
        ("b", Some(20)),
        ("open", None),
    ] {
        let mut e = execution(id, Status::Succeeded, 0);
        if finished.is_none() {
            e.status = Status::Running;
        }
        e.finished_at = finished.map(at);
        create(store, &e, &[]).await;
    }
    let all = store.finished_since(at(0), 10).await.expect("scan");
    assert_eq!(ids(&all), ["a", "b", "c"]);
    let later = store.finished_since(at(20), 10).await.expect("scan");
    assert_eq!(ids(&later), ["b", "c"], "from the instant on, inclusive");
    let page = store.finished_since(at(0), 2).await.expect("scan");
    assert_eq!(ids(&page), ["a", "b"]);
}

async fn deliveries_are_created_once_and_their_attempts_persist(b: Backend) {
    let store = &*b.store;
    let mut e = execution("failed-run", Status::Failed, 0);
    e.finished_at = Some(at(1));
    create(store, &e, &[]).await;
    let delivery = |rule: u32, due: i64| Delivery {
        id: Delivery::id_of(&"failed-run".into(), Status::Failed, rule),
        execution: "failed-run".into(),
        event: Status::Failed,
        rule,
        target: "webhook".into(),
        destination: "https://hooks.example.com/alerts".into(),
        status: DeliveryStatus::Pending,
        attempts: Vec::new(),
        next_attempt_at: Some(at(due)),
        created_at: at(1),
        delivered_at: None,
    };
    let first = [delivery(0, 2), delivery(1, 5)];
    assert_eq!(store.add_deliveries(&first).await.expect("add"), 2);
    assert_eq!(
        store.add_deliveries(&first).await.expect("add again"),
        0,
        "the same (execution, event, rule) is one delivery"
    );

    let due = store.due_deliveries(at(3), 10).await.expect("due");
    assert_eq!(due, [delivery(0, 2)], "only what is due, as written");

    // A failed attempt, then a delivered one: each recorded.
    let mut retried = due[0].clone();
    retried.attempts.push(DeliveryAttempt {
        at: at(2),
        http_status: Some(500),
        error: Some("answered 500".into()),
        millis: 12,
    });
    retried.next_attempt_at = Some(at(4));
    store.update_delivery(&retried).await.expect("update");
    assert!(
        store
            .due_deliveries(at(3), 10)
            .await
            .expect("due")
            .is_empty()
    );
    let mut delivered = retried.clone();
    delivered.attempts.push(DeliveryAttempt {
        at: at(4),
        http_status: Some(200),
        error: None,
        millis: 8,
    });
    delivered.status = DeliveryStatus::Delivered;
    delivered.next_attempt_at = None;
    delivered.delivered_at = Some(at(4));
    store.update_delivery(&delivered).await.expect("update");

    let due = store.due_deliveries(at(60), 10).await.expect("due");
    assert_eq!(due, [delivery(1, 5)], "a delivered one is never due again");
    let all = store.deliveries(&"failed-run".into()).await.expect("list");
    assert_eq!(all, [delivered, delivery(1, 5)]);
    assert!(
        store
            .deliveries(&"other".into())
            .await
            .expect("list")
            .is_empty()
    );

    let mut unknown = delivery(7, 1);
    unknown.id = "dlv-missing".into();
    let error = store.update_delivery(&unknown).await.expect_err("missing");
    assert!(matches!(error, store::Error::NotFound { .. }), "{error:?}");
}
