//! Benchmark: the cost of creating one execution, and whether it grows with
//! the registry (issue 20: about 3 ms with 16 active definitions, about
//! 75 ms with 10,000, so the scheduler fell behind a burst).
//!
//! `cargo bench --bench create` registers a generated repository (the
//! pipelines of `support/generate.rs`: three tasks, a workflow and a launch
//! plan each, every launch plan `every: 1m`) through the reconciler, as
//! `benches/sync.rs` does, on SQLite in a fresh directory, and on
//! PostgreSQL in a fresh schema when `WEIR_TEST_POSTGRES_URL` is set. Then,
//! for 16 and for 10,000 active definitions, it prints the median and p95 of
//! - `scheduler::create_at` (the scheduler's and a backfill's path), each
//!   call at a distinct instant so that each creates a new execution;
//! - `create::create` (what `POST /api/v1/runs` and `weir run` do);
//!
//! - a backfill of 500 instants of one launch plan (`engine::backfill`):
//!   how long until all 500 executions exist;
//!
//! and, with 10,000 definitions, one scheduler tick at which all 2,000
//! launch plans are due in the same minute: how long until all are created,
//! and the creation lag (from the tick's start to the moment the store
//! returned each execution's batch, as the daemon's engine is woken), p50
//! and p95; also how long the tick before took (it first sees, and
//! prepares, every launch plan). It prints figures; it asserts nothing on
//! time.

#[path = "support/generate.rs"]
mod generate;
#[path = "support/register.rs"]
mod register;
#[path = "support/repo.rs"]
mod repo;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use git2::Repository;
use register::register;
use repo::commit;
use weir::engine::backfill;
use weir::engine::create::{self, Request};
use weir::engine::scheduler::{self, Scheduler};
use weir::spec::{EntityRef, Kind};
use weir::store::Store;

/// Calls timed per figure.
const CALLS: usize = 200;

/// Pipeline `i`, its launch plan due every minute.
fn every_minute(i: usize) -> String {
    let text = generate::group(i);
    let cron = format!("cron: \"{} 2 * * *\"", i % 60);
    assert!(text.contains(&cron), "the generated launch plan has a cron");
    text.replace(&cron, "every: 1m")
}

/// A lone task, to make up a count that is not a multiple of five.
fn lone_task(i: usize) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: lone-{i}, project: team-0 }}
spec:
  outputs:
    rows: {{ type: int }}
  script:
    interpreter: python3
    image: python:3.12-slim
    source: print({i})
"#
    )
}

/// A repository of exactly `definitions` definitions.
fn repository(definitions: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = Repository::init_opts(dir.path(), &opts).expect("init");
    let mut files: Vec<(String, String)> = (0..definitions / 5)
        .map(|i| (generate::path(i), every_minute(i)))
        .collect();
    files.extend((0..definitions % 5).map(|i| (format!("lone/task-{i}.yaml"), lone_task(i))));
    commit(&repo, &files, "Pipelines");
    dir
}

/// A database to register into: a SQLite file, or a fresh PostgreSQL
/// schema (dropped at the end).
enum Database {
    Sqlite(tempfile::TempDir),
    Postgres { base: String, schema: String },
}

impl Database {
    fn url(&self) -> String {
        match self {
            Database::Sqlite(dir) => format!("sqlite://{}", dir.path().join("weir.db").display()),
            Database::Postgres { base, schema } => {
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}options=-csearch_path%3D{schema}")
            }
        }
    }

    fn postgres(base: &str, label: usize) -> Database {
        let schema = format!("weir_bench_create_{}_{label}", std::process::id());
        let status = Command::new("psql")
            .args([base, "-qc", &format!("create schema {schema}")])
            .status()
            .expect("psql runs");
        assert!(status.success(), "cannot create schema {schema}");
        Database::Postgres {
            base: base.to_owned(),
            schema,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Database::Postgres { base, schema } = self {
            let _ = Command::new("psql")
                .args([
                    base.as_str(),
                    "-qc",
                    &format!("drop schema if exists {schema} cascade"),
                ])
                .status();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_figure(backend: &str, what: &str, definitions: usize, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "create [{backend}] {what}: creating one execution with {definitions} active definitions: \
         median {:.2} ms (p95 {:.2} ms) over {} calls",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.95)),
        times.len()
    );
}

async fn one_size(backend: &str, store: Arc<dyn Store>, definitions: usize) {
    let lp = EntityRef::new("team-0", Kind::LaunchPlan, "pipeline-0-nightly");
    let base: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    // One call first, outside the figures: connections, prepared statements.
    scheduler::create_at(store.as_ref(), &lp, base, None, chrono::Utc::now())
        .await
        .expect("create_at");
    let mut times = Vec::with_capacity(CALLS);
    for i in 1..=CALLS {
        let instant = base + chrono::Duration::minutes(i as i64);
        let start = Instant::now();
        let (_, created) =
            scheduler::create_at(store.as_ref(), &lp, instant, None, chrono::Utc::now())
                .await
                .expect("create_at");
        times.push(start.elapsed());
        assert!(created, "each instant is a new execution");
    }
    print_figure(backend, "scheduler::create_at", definitions, times);

    // The scheduler's and a backfill's work per instant: the launch plan
    // prepared once, then each execution built and written.
    let prepared = create::prepare(store.as_ref(), &lp.name, Some(&lp.project), None)
        .await
        .expect("prepare");
    let mut times = Vec::with_capacity(CALLS);
    for i in 1..=CALLS {
        let request = Request {
            trigger: weir::spec::Trigger::Schedule,
            scheduled_at: Some(base - chrono::Duration::minutes(i as i64)),
            ..Request::default()
        };
        let start = Instant::now();
        let new = prepared
            .execution(&request, None, Utc::now())
            .expect("execution");
        let (_, created) = store
            .create_execution(&new.execution, &new.nodes)
            .await
            .expect("create");
        times.push(start.elapsed());
        assert!(created, "each instant is a new execution");
    }
    print_figure(backend, "prepared launch plan", definitions, times);

    let request = Request {
        name: "pipeline-0-nightly".into(),
        project: Some("team-0".into()),
        inputs: [("day".to_owned(), "2026-01-01T00:00:00Z".into())].into(),
        ..Request::default()
    };
    let mut times = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let start = Instant::now();
        create::create(store.as_ref(), &request)
            .await
            .expect("create");
        times.push(start.elapsed());
    }
    print_figure(backend, "create::create", definitions, times);
}

/// One tick at which every launch plan is due: all created in how long,
/// and each execution's lag from the tick's start to its batch's return.
async fn burst(backend: &str, store: Arc<dyn Store>, definitions: usize) {
    let mut scheduler = Scheduler::new();
    let now = Utc::now();
    let start = Instant::now();
    let first = scheduler.tick(store.as_ref(), now).await.expect("tick");
    let first_took = start.elapsed();
    let Some(due) = scheduler.next_due(now) else {
        println!("create [{backend}] burst: no schedule is due");
        return;
    };
    let start = Instant::now();
    let mut lags = Vec::new();
    let mut stored =
        |ids: &[weir::spec::ExecutionId]| lags.extend(ids.iter().map(|_| start.elapsed()));
    let sources = store.sources().await.expect("sources");
    let report = scheduler
        .tick_notifying(
            store.as_ref(),
            due + chrono::Duration::seconds(1),
            sources,
            &mut stored,
        )
        .await
        .expect("tick");
    let took = start.elapsed();
    lags.sort();
    if lags.is_empty() {
        println!("create [{backend}] burst: nothing created");
        return;
    }
    println!(
        "create [{backend}] {} launch plans due in the same minute, {definitions} definitions: \
         all created in {:.2} s; creation lag p50 {:.2} s, p95 {:.2} s \
         ({} existing, {} skipped, {} errors; the tick before took {:.2} s and created {})",
        report.created.len(),
        took.as_secs_f64(),
        percentile(&lags, 0.5).as_secs_f64(),
        percentile(&lags, 0.95).as_secs_f64(),
        report.existing.len(),
        report.skipped.len(),
        report.errors.len(),
        first_took.as_secs_f64(),
        first.created.len(),
    );
}

/// A backfill of 500 minutes of an every-minute launch plan: how long
/// until all 500 executions exist.
async fn backfill_500(backend: &str, store: Arc<dyn Store>, definitions: usize) {
    let request = backfill::Request {
        launch_plan: "pipeline-1-nightly".into(),
        project: Some("team-1".into()),
        from: "2025-06-01T00:00:00Z".into(),
        to: "2025-06-01T08:20:00Z".into(),
        max_parallel: None,
        dry_run: false,
    };
    let start = Instant::now();
    let done = backfill::backfill(store.as_ref(), &request, Utc::now())
        .await
        .expect("backfill");
    let took = start.elapsed();
    let created = done.count(backfill::EntryStatus::Created);
    assert_eq!(created, 500, "every instant is new");
    println!(
        "create [{backend}] backfill of {created} instants with {definitions} active \
         definitions: created in {:.2} s ({:.2} ms an execution)",
        took.as_secs_f64(),
        ms(took) / created as f64
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let postgres = std::env::var("WEIR_TEST_POSTGRES_URL").ok();
    for definitions in [16, 10_000] {
        let repo = repository(definitions);
        let mut databases = vec![(
            "sqlite",
            Database::Sqlite(tempfile::tempdir().expect("dir")),
        )];
        if let Some(base) = &postgres {
            databases.push(("postgres", Database::postgres(base, definitions)));
        }
        for (backend, database) in &databases {
            let state = tempfile::tempdir().expect("state");
            runtime.block_on(async {
                let store = weir::store::open(&database.url()).await.expect("store");
                let start = Instant::now();
                register(store.as_ref(), repo.path(), state.path()).await;
                println!(
                    "create [{backend}] registered {definitions} definitions in {:.1} s",
                    start.elapsed().as_secs_f64()
                );
                one_size(backend, store.clone(), definitions).await;
                backfill_500(backend, store.clone(), definitions).await;
                if definitions >= 10_000 {
                    burst(backend, store, definitions).await;
                }
            });
        }
    }
}
