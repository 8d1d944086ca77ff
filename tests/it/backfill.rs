//! Backfill stories (DESIGN.md section 6): definitions committed to Git and
//! registered through the real reconcile steps, the clock injected. A daily
//! 02:30 Europe/Berlin plan backfilled over the spring-forward week gets
//! one execution a day (29 March once); running it again, overlapping it,
//! or covering instants the scheduler already ran creates nothing twice;
//! `--max-parallel` holds the rest queued while the engine runs the oldest.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use weir::artifact::LocalArtifacts;
use weir::engine::Engine;
use weir::engine::backfill::{self, Entry, EntryStatus, Error, Request};
use weir::engine::scheduler::Scheduler;
use weir::schedule::backfill::RangeError;
use weir::source::git::{GitSource, SourceSpec};
use weir::spec::{EntityRef, ExecutionId, Kind, Trigger};
use weir::store::Store;
use weir::store::execution::BackfillGroup;
use weir::store::execution::{Execution, ExecutionFilter, Status};

use crate::common::{
    Backend, GitRepo, TestDb, assert_created_batch_after_batch, on_every_backend, weir_json,
    weir_with,
};

on_every_backend!(
    the_spring_forward_week_runs_each_day_once_and_never_twice,
    instants_the_scheduler_already_ran_are_skipped,
    each_batch_of_a_backfill_is_created_after_the_one_before,
);

/// A task that stamps the scheduled day, and the plans that run it.
const NIGHTLY: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: stamp, project: lab }
spec:
  inputs: { day: { type: datetime } }
  script: { interpreter: bash, source: "echo \"$WEIR_INPUT_DAY\"" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: stamp-flow, project: lab }
spec:
  inputs: { day: { type: datetime } }
  nodes: [ { id: stamp, task: stamp, inputs: { day: "{{ inputs.day }}" } } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: nightly, project: lab }
spec:
  workflow: stamp-flow
  schedule:
    cron: "30 2 * * *"
    timezone: Europe/Berlin
    kickoffTimeInput: day
    concurrency: Forbid
    catchUp: all
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: daily, project: lab }
spec:
  workflow: stamp-flow
  schedule:
    cron: "30 2 * * *"
    timezone: Europe/Berlin
    kickoffTimeInput: day
    catchUp: all
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: minutely, project: lab }
spec:
  workflow: stamp-flow
  schedule: { every: 1m, kickoffTimeInput: day }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: adhoc, project: lab }
spec:
  workflow: stamp-flow
  defaults: { day: "2026-01-01T00:00:00Z" }
"#;

/// A plan whose runs wait until the file `{release}` exists, or fail once
/// its folder `{folder}` is gone: a test that ends, and deletes its
/// folder, before a run saw the release leaves no process behind.
const GATED: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: gate, project: lab }
spec:
  script: { interpreter: bash, source: "while [ ! -e '{release}' ]; do [ -d '{folder}' ] || exit 1; sleep 0.05; done" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: gate-flow, project: lab }
spec:
  nodes: [ { id: gate, task: gate } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: gated, project: lab }
spec:
  workflow: gate-flow
  schedule: { cron: "30 2 * * *", timezone: Europe/Berlin, concurrency: Allow }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: newest-wins, project: lab }
spec:
  workflow: gate-flow
  schedule: { cron: "30 2 * * *", timezone: Europe/Berlin, concurrency: Replace }
"#;

/// [`GATED`] for runs released by the file `release`.
fn gated_definitions(release: &std::path::Path) -> String {
    let folder = release.parent().expect("a file in a folder");
    GATED
        .replace("{release}", &release.display().to_string())
        .replace("{folder}", &folder.display().to_string())
}

/// After the week below: every instant of it is due.
fn after_the_week() -> DateTime<Utc> {
    at("2026-04-10T00:00:00Z")
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// A repository whose first commit holds `definitions` in `defs/`.
fn committed(definitions: &str) -> GitRepo {
    let repo = GitRepo::new();
    repo.write("defs/lab.yaml", definitions);
    repo.commit("Lab schedules");
    repo
}

/// Commits `definitions` and registers them through reconcile's load and
/// register; the repository stays alive as long as the returned guard.
/// A SQLite store with [`GATED`] registered: its tasks wait until the file
/// `release` exists (in the store's folder, also the engine's state dir).
struct Gated {
    b: Backend,
    release: std::path::PathBuf,
    state_dir: std::path::PathBuf,
    _repo: (GitRepo, tempfile::TempDir),
}

async fn gated() -> Gated {
    let db = TestDb::sqlite();
    let TestDb::Sqlite(state) = &db else {
        unreachable!()
    };
    let release = state.path().join("release");
    let state_dir = state.path().to_path_buf();
    let b = crate::common::backend(db).await;
    let _repo = register(b.store.as_ref(), &gated_definitions(&release)).await;
    Gated {
        b,
        release,
        state_dir,
        _repo,
    }
}

pub(crate) async fn register(store: &dyn Store, definitions: &str) -> (GitRepo, tempfile::TempDir) {
    let repo = committed(definitions);
    let state = tempfile::tempdir().expect("state dir");
    let spec = SourceSpec {
        repo: repo.path().display().to_string(),
        branch: None,
        path: "defs".into(),
        credentials: Default::default(),
    };
    let source = GitSource::open(&spec, state.path()).expect("open the source");
    let loaded = weir::reconcile::load(&source, &Default::default(), None).expect("load");
    match weir::reconcile::register(store, loaded, chrono::Utc::now())
        .await
        .expect("register")
    {
        weir::reconcile::Outcome::Reconciled { .. } => (repo, state),
        weir::reconcile::Outcome::Rejected { report, .. } => {
            panic!("the definitions are invalid: {:?}", report.diagnostics)
        }
        weir::reconcile::Outcome::Untrusted { refusal, .. } => panic!("{refusal}"),
    }
}

fn request(launch_plan: &str, from: &str, to: &str) -> Request {
    Request {
        launch_plan: launch_plan.into(),
        from: from.into(),
        to: to.into(),
        ..Request::default()
    }
}

fn statuses(entries: &[Entry]) -> Vec<EntryStatus> {
    entries.iter().map(|e| e.status).collect()
}

fn ids(entries: &[Entry]) -> Vec<ExecutionId> {
    entries.iter().map(|e| e.execution_id.clone()).collect()
}

/// When the launch plan `name` was activated (the scheduler starts there).
async fn activated_at(store: &dyn Store, name: &str) -> DateTime<Utc> {
    let versions = store.versions(&Default::default()).await.expect("versions");
    let plan = versions.into_iter().find(|v| v.key.entity.name == name);
    plan.and_then(|v| v.last_activated_at)
        .unwrap_or_else(|| panic!("{name} is not active"))
}

async fn execution(store: &dyn Store, id: &ExecutionId) -> Execution {
    store
        .execution(id)
        .await
        .expect("store")
        .unwrap_or_else(|| panic!("no execution {id}"))
}

async fn the_spring_forward_week_runs_each_day_once_and_never_twice(b: Backend) {
    let store = b.store.as_ref();
    let _repo = register(store, NIGHTLY).await;
    let week = request("nightly", "2026-03-25", "2026-04-03");

    // A dry run lists the nine days and writes nothing.
    let dry = Request {
        dry_run: true,
        ..week.clone()
    };
    let listed = backfill::backfill(store, &dry, after_the_week())
        .await
        .expect("a dry run");
    assert_eq!(statuses(&listed.entries), [EntryStatus::New; 9]);
    let none = store.executions(&Default::default()).await.expect("list");
    assert!(none.is_empty(), "a dry run creates nothing: {none:?}");

    let done = backfill::backfill(store, &week, after_the_week())
        .await
        .expect("a backfill");
    assert_eq!(statuses(&done.entries), [EntryStatus::Created; 9]);
    let instants: Vec<String> = done
        .entries
        .iter()
        .map(|e| e.instant.format("%m-%dT%H:%MZ").to_string())
        .collect();
    // 02:30 CET is 01:30Z; 29 March has no 02:30, so it runs once at 03:00
    // CEST (01:00Z), right after the gap; then 02:30 CEST is 00:30Z.
    assert_eq!(
        instants,
        [
            "03-25T01:30Z",
            "03-26T01:30Z",
            "03-27T01:30Z",
            "03-28T01:30Z",
            "03-29T01:00Z",
            "03-30T00:30Z",
            "03-31T00:30Z",
            "04-01T00:30Z",
            "04-02T00:30Z"
        ]
    );
    assert_eq!(
        ids(&listed.entries),
        ids(&done.entries),
        "the dry run named them"
    );
    let plan = EntityRef::new("lab", Kind::LaunchPlan, "nightly");
    let group = BackfillGroup {
        id: done.group.id.clone(),
        max_parallel: Some(1),
    };
    assert_eq!(done.group, group, "Forbid: one at a time by default");
    for entry in &done.entries {
        assert_eq!(
            entry.execution_id,
            weir::schedule::execution_id(&plan, &done.version, entry.instant),
            "the id the scheduler gives the instant"
        );
        let run = execution(store, &entry.execution_id).await;
        assert_eq!(run.trigger, Trigger::Backfill);
        assert_eq!(run.status, Status::Queued);
        assert_eq!(run.scheduled_at, Some(entry.instant));
        assert_eq!(
            run.inputs["day"],
            entry
                .instant
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "kickoffTimeInput carries the instant"
        );
        assert_eq!(run.options.backfill, Some(group.clone()));
    }

    // The same backfill again: everything exists.
    let again = backfill::backfill(store, &week, after_the_week())
        .await
        .expect("again");
    assert_eq!(statuses(&again.entries), [EntryStatus::Exists; 9]);
    assert_eq!(ids(&again.entries), ids(&done.entries));

    // An overlapping one creates only the two days the first did not cover.
    let overlap = backfill::backfill(
        store,
        &request("nightly", "2026-03-30", "2026-04-05"),
        after_the_week(),
    )
    .await
    .expect("an overlapping backfill");
    assert_eq!(
        statuses(&overlap.entries),
        [
            EntryStatus::Exists,
            EntryStatus::Exists,
            EntryStatus::Exists,
            EntryStatus::Exists,
            EntryStatus::Created,
            EntryStatus::Created
        ]
    );
    assert_eq!(ids(&overlap.entries)[..4], ids(&done.entries)[5..]);
    let all = store.executions(&Default::default()).await.expect("list");
    assert_eq!(all.len(), 11, "nine days, then two more");
}

/// A backfill of more instants than one batch writes them in batches, each
/// created at its own time: a later batch after the earlier one, so that an
/// engine comparing the unfinished executions' newest creation instant
/// notices each (`UnfinishedSummary::newest`).
async fn each_batch_of_a_backfill_is_created_after_the_one_before(b: Backend) {
    let store = b.store.as_ref();
    let _repo = register(store, NIGHTLY).await;
    let year = request("daily", "2025-01-01", "2025-12-01");
    let done = backfill::backfill(store, &year, after_the_week())
        .await
        .expect("a backfill");
    let mut created = Vec::new();
    for id in ids(&done.entries) {
        created.push(execution(store, &id).await.created_at);
    }
    assert_created_batch_after_batch(&created);
}

async fn instants_the_scheduler_already_ran_are_skipped(b: Backend) {
    let store = b.store.as_ref();
    let _repo = register(store, NIGHTLY).await;
    let activated = activated_at(store, "daily").await;
    let daily = |ids: &[ExecutionId]| -> BTreeSet<ExecutionId> {
        ids.iter()
            .filter(|id| id.as_str().starts_with("daily-"))
            .cloned()
            .collect()
    };

    // Three days of the scheduler (it never runs a plan's past).
    let report = Scheduler::new()
        .tick(store, activated + Duration::days(3))
        .await
        .expect("a scheduler tick");
    let scheduled = daily(&report.created);
    assert_eq!(scheduled.len(), 3, "{report:?}");

    // A backfill over those days and around them.
    let berlin = chrono_tz::Europe::Berlin;
    let day = |offset: i64| {
        (activated.with_timezone(&berlin).date_naive() + Duration::days(offset))
            .format("%Y-%m-%d")
            .to_string()
    };
    let around = request("daily", &day(-3), &day(5));
    let done = backfill::backfill(store, &around, activated + Duration::days(6))
        .await
        .expect("a backfill");
    assert_eq!(done.entries.len(), 8, "one instant a day");
    let existing: BTreeSet<ExecutionId> = done
        .entries
        .iter()
        .filter(|e| e.status == EntryStatus::Exists)
        .map(|e| e.execution_id.clone())
        .collect();
    assert_eq!(existing, scheduled, "the scheduler's runs are found by id");
    assert_eq!(done.count(EntryStatus::Created), 5);
    for id in &scheduled {
        assert_eq!(execution(store, id).await.trigger, Trigger::Schedule);
    }

    // The scheduler, later, finds what the backfill created.
    let later = Scheduler::new()
        .tick(store, activated + Duration::days(4))
        .await
        .expect("a scheduler tick");
    assert!(daily(&later.created).is_empty(), "{later:?}");
    assert_eq!(daily(&later.existing).len(), 4, "{later:?}");
    let filter = ExecutionFilter {
        launch_plan: Some("daily".into()),
        ..ExecutionFilter::default()
    };
    let all = store.executions(&filter).await.expect("list");
    assert_eq!(all.len(), 8, "one execution per instant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_precisely() {
    let b = crate::common::backend(TestDb::sqlite()).await;
    let store = b.store.as_ref();
    let _repo = register(store, NIGHTLY).await;
    let now = after_the_week();
    let refused = |r: Request| async move {
        backfill::backfill(store, &r, now)
            .await
            .expect_err("refused")
    };

    let e = refused(request("nope", "2026-03-25", "2026-04-03")).await;
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    let e = refused(request("adhoc", "2026-03-25", "2026-04-03")).await;
    assert!(matches!(e, Error::NoSchedule(_)), "{e}");
    assert!(e.to_string().contains("weir run"), "{e}");
    let e = refused(request("nightly", "2026-04-03", "2026-03-25")).await;
    assert!(matches!(e, Error::Range(RangeError::Empty { .. })), "{e}");
    let e = refused(request("nightly", "yesterday", "2026-03-25")).await;
    assert!(
        matches!(e, Error::Range(RangeError::Unreadable { .. })),
        "{e}"
    );
    let e = refused(request("minutely", "2026-03-01", "2026-03-25")).await;
    assert!(matches!(e, Error::Range(RangeError::TooMany { .. })), "{e}");
    assert!(e.to_string().contains("--from"), "says how to narrow: {e}");
    let e = refused(Request {
        max_parallel: Some(0),
        ..request("nightly", "2026-03-25", "2026-04-03")
    })
    .await;
    assert!(matches!(e, Error::MaxParallel), "{e}");
    let all = store.executions(&Default::default()).await.expect("list");
    assert!(all.is_empty(), "nothing was created: {all:?}");
}

/// `--max-parallel 2` over four days: the engine runs the two oldest, the
/// others wait queued however often it ticks, and start as those finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallel_holds_the_rest_queued() {
    let Gated {
        b,
        release,
        state_dir,
        _repo,
    } = gated().await;
    let store = b.store.clone();
    let four = Request {
        max_parallel: Some(2),
        ..request("gated", "2026-03-25", "2026-03-29")
    };
    let done = backfill::backfill(store.as_ref(), &four, after_the_week())
        .await
        .expect("a backfill");
    assert_eq!(statuses(&done.entries), [EntryStatus::Created; 4]);
    let ids = ids(&done.entries);

    let artifacts = Arc::new(LocalArtifacts::new(state_dir.join("artifacts")));
    let engine = Engine::new(store.clone(), artifacts, state_dir).with_task_env(
        weir::executor::environment::Inherited::from_process(Default::default()),
    );
    for _ in 0..3 {
        engine.tick().await.expect("an engine tick");
        let mut now = Vec::new();
        for id in &ids {
            now.push(execution(store.as_ref(), id).await.status);
        }
        assert_eq!(
            now,
            [
                Status::Running,
                Status::Running,
                Status::Queued,
                Status::Queued
            ],
            "the two oldest run, the others wait"
        );
    }

    std::fs::write(&release, "").expect("release the gate");
    let finished = engine.run_until_all_finished(&ids).await.expect("run");
    assert!(
        finished.iter().all(|e| e.status == Status::Succeeded),
        "{finished:?}"
    );
    // Never more than two at once, by the times the store recorded.
    for e in &finished {
        let started = e.started_at.expect("started");
        let overlapping = finished
            .iter()
            .filter(|o| {
                o.started_at.is_some_and(|s| s <= started)
                    && o.finished_at.is_some_and(|f| f > started)
            })
            .count();
        assert!(overlapping <= 2, "{overlapping} ran at once: {finished:?}");
    }
}

/// `concurrency: Replace` cancels a plan's running execution for the newest
/// instant, but not the executions a backfill asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_does_not_cancel_a_backfill() {
    let b = crate::common::backend(TestDb::sqlite()).await;
    let store = b.store.as_ref();
    let _repo = register(
        store,
        &gated_definitions(std::path::Path::new("/nonexistent")),
    )
    .await;
    let activated = activated_at(store, "newest-wins").await;
    let done = backfill::backfill(
        store,
        &request("newest-wins", "2026-03-25", "2026-03-28"),
        activated,
    )
    .await
    .expect("a backfill");
    assert_eq!(done.group.max_parallel, Some(1), "Replace: one at a time");
    let report = Scheduler::new()
        .tick(store, activated + Duration::days(1))
        .await
        .expect("a scheduler tick");
    let started: Vec<&ExecutionId> = report
        .created
        .iter()
        .filter(|id| id.as_str().starts_with("newest-wins-"))
        .collect();
    assert_eq!(started.len(), 1, "{report:?}");
    assert!(report.cancelled.is_empty(), "{report:?}");
    for entry in &done.entries {
        assert!(!execution(store, &entry.execution_id).await.cancel_requested);
    }
}

/// `weir sync` of a repository holding `definitions` into `db`.
fn synced(definitions: &str, db: &TestDb) -> GitRepo {
    let repo = committed(definitions);
    let path = repo.path().to_str().expect("utf-8");
    let out = weir_with(&["sync", "--repo", path, "--path", "defs"], db);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    repo
}

/// The command line: a dry run, the table in the schedule's time zone,
/// JSON, a rerun, and a precise message for what it refuses: exit 3 for
/// a launch plan that is not there, 2 for the rest.
#[test]
fn the_cli_backfills_and_refuses_with_exit_2_or_3() {
    let db = TestDb::sqlite();
    let _repo = synced(NIGHTLY, &db);
    let week = [
        "backfill",
        "nightly",
        "--from",
        "2026-03-25",
        "--to",
        "2026-04-03",
    ];

    let (code, dry) = weir_json(&[&week[..], &["--dry-run", "-o", "json"]].concat(), &db);
    assert_eq!(code, 0);
    assert_eq!(dry["timezone"], "Europe/Berlin");
    assert_eq!(dry["maxParallel"], 1);
    assert_eq!(dry["dryRun"], true);
    let dry = dry["entries"].as_array().expect("an array").clone();
    assert_eq!(dry.len(), 9);
    assert!(dry.iter().all(|e| e["status"] == "new"), "{dry:?}");
    assert_eq!(dry[4]["instant"], "2026-03-29T01:00:00.000Z");

    let table = weir_with(&week, &db);
    assert_eq!(table.status.code(), Some(0));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("9 instants, 9 created, 0 existed"), "{text}");
    assert!(
        text.contains("at most 1 of its executions run at once"),
        "{text}"
    );
    assert!(text.contains("2026-03-28T02:30:00+01:00"), "{text}");
    assert!(
        text.contains("2026-03-29T03:00:00+02:00"),
        "the gap day: {text}"
    );
    assert!(text.contains("2026-03-30T02:30:00+02:00"), "{text}");

    let (code, again) = weir_json(&[&week[..], &["-o", "json"]].concat(), &db);
    assert_eq!(code, 0);
    let again = again["entries"].as_array().expect("an array").clone();
    assert!(again.iter().all(|e| e["status"] == "exists"), "{again:?}");
    assert!(again.iter().all(|e| e["executionStatus"] == "queued"));
    assert_eq!(again[4]["executionId"], dry[4]["executionId"]);
    let (_, listed) = weir_json(
        &["executions", "--launch-plan", "nightly", "-o", "json"],
        &db,
    );
    assert_eq!(listed.as_array().map(Vec::len), Some(9));

    let out = weir_with(
        &[
            "backfill",
            "nope",
            "--from",
            "2026-03-25",
            "--to",
            "2026-04-03",
        ],
        &db,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no active launch plan"), "{stderr}");
    for (args, says) in [
        (
            &[
                "backfill",
                "adhoc",
                "--from",
                "2026-03-25",
                "--to",
                "2026-04-03",
            ],
            "has no schedule",
        ),
        (
            &[
                "backfill",
                "nightly",
                "--from",
                "2026-04-03",
                "--to",
                "2026-03-25",
            ],
            "is not before --to",
        ),
        (
            &[
                "backfill",
                "minutely",
                "--from",
                "2026-01-01",
                "--to",
                "2026-03-25",
            ],
            "narrow it",
        ),
        (
            &[
                "backfill",
                "nightly",
                "--from",
                "someday",
                "--to",
                "2026-03-25",
            ],
            "is not a date",
        ),
    ] {
        let out = weir_with(args, &db);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let (_, listed) = weir_json(&["executions", "-o", "json"], &db);
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(9),
        "refusals create nothing"
    );
}

/// `--wait` runs the backfill here, bounded, to the end.
#[test]
fn the_cli_waits_for_a_bounded_backfill() {
    let db = TestDb::sqlite();
    let TestDb::Sqlite(state) = &db else {
        unreachable!()
    };
    let release = state.path().join("release");
    std::fs::write(&release, "").expect("an open gate");
    let gated = gated_definitions(&release);
    let _repo = synced(&gated, &db);
    let (code, done) = weir_json(
        &[
            "backfill",
            "gated",
            "--from",
            "2026-03-25",
            "--to",
            "2026-03-30",
            "--max-parallel",
            "2",
            "--wait",
            "-o",
            "json",
        ],
        &db,
    );
    assert_eq!(code, 0, "{done:#}");
    let done = done["entries"].as_array().expect("an array").clone();
    assert_eq!(done.len(), 5);
    assert!(
        done.iter()
            .all(|e| e["status"] == "created" && e["executionStatus"] == "succeeded"),
        "{done:?}"
    );
    let first: &Value = &done[0];
    let (_, one) = weir_json(
        &[
            "executions",
            first["executionId"].as_str().expect("id"),
            "-o",
            "json",
        ],
        &db,
    );
    assert_eq!(one["trigger"], "backfill", "{one:#}");
}

/// Leadership that ends during a tick stops the engine from starting any
/// further attempt in it: the engine asks right before each one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_stops_leading_mid_tick_starts_nothing_more() {
    let Gated {
        b,
        release,
        state_dir,
        _repo,
    } = gated().await;
    let store = b.store.clone();
    let done = backfill::backfill(
        store.as_ref(),
        &request("gated", "2026-03-25", "2026-03-27"),
        after_the_week(),
    )
    .await
    .expect("a backfill");
    let ids = ids(&done.entries);
    assert!(ids.len() >= 2, "{ids:?}");

    // Leading for the first two questions only: the first execution's
    // "may I start?" at its step 4 and right before its attempt.
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let artifacts = Arc::new(LocalArtifacts::new(state_dir.join("artifacts")));
    let engine = Engine::new(store.clone(), artifacts, state_dir)
        .with_task_env(weir::executor::environment::Inherited::from_process(
            Default::default(),
        ))
        .lead_while({
            let asked = asked.clone();
            move || asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2
        });
    engine.tick().await.expect("an engine tick");
    engine.tick().await.expect("another tick, not leading");
    let mut started = 0;
    for id in &ids {
        started += store
            .nodes(id)
            .await
            .expect("nodes")
            .iter()
            .filter(|n| n.attempts > 0)
            .count();
    }
    assert_eq!(started, 1, "one attempt started while leading, none after");
    assert_eq!(engine.running(), 1);
    std::fs::write(&release, "").expect("release the gate");
}
