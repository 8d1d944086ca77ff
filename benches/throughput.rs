//! Benchmark: executions per minute of many small executions, what
//! `weir backfill --max-parallel 50 --wait` does with no daemon.
//!
//! `cargo bench --bench throughput` registers (through a real Git
//! repository) a 2-node no-op workflow (`/bin/true` twice, one after the
//! other) and a launch plan of it, backfills 500 instants with
//! `--max-parallel 50` and drives them in this process to the end
//! ([`Engine::run_until_all_finished`], as the command does), on SQLite
//! and, when `WEIR_TEST_POSTGRES_URL` answers (`scripts/test-env`), on
//! PostgreSQL in a fresh schema. Prints the time to create the backfill
//! and the executions per minute of running it. Targets (issue 20):
//! SQLite ≥ 20,000/min, PostgreSQL ≥ 10,000/min.
//!
//! `cargo bench --bench throughput -- sqlite` (or `postgres`) runs one.

use std::sync::Arc;
use std::time::Instant;

use git2::Repository;
use weir::artifact::LocalArtifacts;
use weir::engine::Engine;
use weir::engine::backfill::{self, Request};
use weir::reconcile::{self, Outcome};
use weir::source::git::{GitSource, SourceSpec};

#[path = "support/repo.rs"]
mod repo;
#[path = "support/select.rs"]
mod select;

const EXECUTIONS: usize = 500;
const MAX_PARALLEL: u32 = 50;

const DEFINITIONS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: noop }
spec:
  container: { image: busybox, command: ["true"] }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: pair }
spec:
  nodes:
    - { id: first, task: noop }
    - { id: second, task: noop, after: [first] }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: pair-minutely }
spec:
  workflow: pair
  schedule: { every: 1m }
"#;

fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let git = Repository::init_opts(dir.path(), &opts).expect("init");
    repo::commit(
        &git,
        &[("flows.yaml".into(), DEFINITIONS.into())],
        "A no-op pair",
    );
    dir
}

/// A fresh schema in the PostgreSQL database of the tests, and its URL
/// (`None` when it does not answer).
fn postgres_schema() -> Option<(String, String, String)> {
    let base = std::env::var("WEIR_TEST_POSTGRES_URL").ok()?;
    let schema = format!("weir_bench_{}", std::process::id());
    let created = std::process::Command::new("psql")
        .args([base.as_str(), "-qc", &format!("create schema {schema}")])
        .status()
        .ok()?;
    if !created.success() {
        return None;
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    Some((base, schema, url))
}

async fn run(name: &str, url: &str, repo: &std::path::Path, state: &std::path::Path) {
    let spec = SourceSpec {
        repo: repo.display().to_string(),
        branch: Some("main".into()),
        path: "defs".into(),
        credentials: Default::default(),
    };
    let source = GitSource::open(&spec, state).expect("source");
    let loaded = reconcile::load(&source, &reconcile::Options::default(), None).expect("load");
    let store = weir::store::open(url).await.expect("store");
    match reconcile::register(store.as_ref(), loaded, chrono::Utc::now())
        .await
        .expect("register")
    {
        Outcome::Reconciled { .. } => {}
        Outcome::Rejected { report, .. } => panic!("invalid: {:?}", report.diagnostics),
        Outcome::Untrusted { refusal, .. } => panic!("{refusal}"),
    }
    let artifacts = Arc::new(LocalArtifacts::new(state.join("artifacts")));
    let engine = Engine::new(store.clone(), artifacts, state.to_path_buf()).with_task_env(
        weir::executor::environment::Inherited::from_process(Default::default()),
    );
    let request = Request {
        launch_plan: "pair-minutely".into(),
        from: "2026-01-01T00:00:00Z".into(),
        to: format!(
            "2026-01-01T{:02}:{:02}:00Z",
            EXECUTIONS / 60,
            EXECUTIONS % 60
        ),
        max_parallel: Some(MAX_PARALLEL),
        ..Request::default()
    };
    let start = Instant::now();
    let done = backfill::backfill(store.as_ref(), &request, chrono::Utc::now())
        .await
        .expect("backfill");
    let created = start.elapsed();
    let ids: Vec<weir::spec::ExecutionId> = done
        .entries
        .iter()
        .map(|e| e.execution_id.clone())
        .collect();
    assert_eq!(ids.len(), EXECUTIONS, "one execution per instant");
    let start = Instant::now();
    let finished = engine.run_until_all_finished(&ids).await.expect("run");
    let took = start.elapsed();
    assert!(
        finished.iter().all(|e| e.status.as_str() == "succeeded"),
        "every execution succeeds"
    );
    let per_minute = EXECUTIONS as f64 / took.as_secs_f64() * 60.0;
    println!(
        "throughput: {name}: {EXECUTIONS} executions of a 2-node no-op workflow, --max-parallel {MAX_PARALLEL}: created in {:.2} s, run in {:.2} s: {per_minute:.0} executions/min",
        created.as_secs_f64(),
        took.as_secs_f64(),
    );
}

fn main() {
    let wanted = select::wanted();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let repo = repository();
    if wanted("sqlite") {
        let state = tempfile::tempdir().expect("state");
        let url = format!("sqlite://{}", state.path().join("weir.db").display());
        runtime.block_on(run("SQLite", &url, repo.path(), state.path()));
    }
    if wanted("postgres") {
        match postgres_schema() {
            Some((base, schema, url)) => {
                let state = tempfile::tempdir().expect("state");
                runtime.block_on(run("PostgreSQL", &url, repo.path(), state.path()));
                let _ = std::process::Command::new("psql")
                    .args([
                        base.as_str(),
                        "-qc",
                        &format!("drop schema {schema} cascade"),
                    ])
                    .status();
            }
            None => {
                println!("throughput: PostgreSQL skipped (WEIR_TEST_POSTGRES_URL does not answer)")
            }
        }
    }
}
