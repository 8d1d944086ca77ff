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
//! and, with 10,000 definitions, one scheduler tick at which all 2,000
//! launch plans are due in the same minute: how long until all are created,
//! and the creation lag (from the tick's start to each execution's
//! `created_at`), p50 and p95. It prints figures; it asserts nothing on time.

#[path = "support/generate.rs"]
mod generate;
#[path = "support/repo.rs"]
mod repo;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use git2::Repository;
use repo::commit;
use weir::engine::create::{self, Request};
use weir::engine::scheduler::{self, Scheduler};
use weir::reconcile::{self, Outcome};
use weir::source::git::{GitSource, SourceSpec};
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

/// Registers the repository's head, as a first `weir sync` does.
async fn register(store: &dyn Store, repo_dir: &std::path::Path, state: &std::path::Path) {
    let spec = SourceSpec {
        repo: repo_dir.display().to_string(),
        branch: Some("main".into()),
        path: "defs".into(),
        credentials: Default::default(),
    };
    let source = GitSource::open(&spec, state).expect("source");
    let loaded = reconcile::load(&source, &reconcile::Options::default(), None).expect("load");
    match reconcile::register(store, loaded, chrono::Utc::now())
        .await
        .expect("register")
    {
        Outcome::Reconciled { .. } => {}
        Outcome::Rejected { report, .. } => panic!("invalid: {:?}", report.diagnostics.first()),
        Outcome::Untrusted { refusal, .. } => panic!("{refusal}"),
    }
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
/// and each execution's lag from the tick's start.
async fn burst(backend: &str, store: Arc<dyn Store>, definitions: usize) {
    let mut scheduler = Scheduler::new();
    let now = Utc::now();
    let first = scheduler.tick(store.as_ref(), now).await.expect("tick");
    let Some(due) = scheduler.next_due(now) else {
        println!("create [{backend}] burst: no schedule is due");
        return;
    };
    let start_wall = Utc::now();
    let start = Instant::now();
    let report = scheduler
        .tick(store.as_ref(), due + chrono::Duration::seconds(1))
        .await
        .expect("tick");
    let took = start.elapsed();
    let mut lags = Vec::with_capacity(report.created.len());
    for id in &report.created {
        let e = store
            .execution(id)
            .await
            .expect("execution")
            .expect("created");
        lags.push((e.created_at - start_wall).to_std().unwrap_or_default());
    }
    lags.sort();
    if lags.is_empty() {
        println!("create [{backend}] burst: nothing created");
        return;
    }
    println!(
        "create [{backend}] {} launch plans due in the same minute, {definitions} definitions: \
         all created in {:.2} s; creation lag p50 {:.2} s, p95 {:.2} s \
         ({} existing, {} skipped, {} errors; the tick before created {})",
        report.created.len(),
        took.as_secs_f64(),
        percentile(&lags, 0.5).as_secs_f64(),
        percentile(&lags, 0.95).as_secs_f64(),
        report.existing.len(),
        report.skipped.len(),
        report.errors.len(),
        first.created.len(),
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
                if definitions >= 10_000 {
                    burst(backend, store, definitions).await;
                }
            });
        }
    }
}
