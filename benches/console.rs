//! Benchmark: the web console's server time with 100,000 executions in
//! the store (issue 17: p95 under 50 ms).
//!
//! `cargo bench --bench console` registers `examples/repo` through the
//! reconciler, creates one real execution of `hourly-etl-schedule` (8
//! nodes), and copies it into 100,000 executions (statuses and triggers
//! mixed, one created every second), on SQLite, and on PostgreSQL in a
//! fresh schema when `WEIR_TEST_POSTGRES_URL` is set. It then serves the
//! real router on loopback (no token: pages open) and times, from the
//! request written to the whole page read, p50 and p95 over 200 requests
//! each, of:
//! - the executions list, its first page, a page 90,000 rows deep (the
//!   keyset cursor), and filtered by status, trigger and launch plan;
//! - one execution's page (graph, timeline, nodes, inputs and outputs);
//! - the overview.
//!
//! It prints figures; it asserts nothing on time.

#[path = "support/register.rs"]
mod register;
#[path = "support/repo.rs"]
mod repo;

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use register::register;
use tokio_util::sync::CancellationToken;
use weir::engine::create::{self, Request};
use weir::http::{AppState, Metrics, Readiness, Secrets};
use weir::spec::Trigger;
use weir::store::Store;
use weir::store::execution::{NewExecution, NodeStatus, Status};

const EXECUTIONS: usize = 100_000;
const REQUESTS: usize = 200;

/// `examples/repo`, committed in a fresh repository.
fn examples() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repository = git2::Repository::init_opts(dir.path(), &opts).expect("init");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/repo");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                let rel = path.strip_prefix(&root).expect("inside").display();
                files.push((rel.to_string(), text));
            }
        }
    }
    repo::commit(&repository, &files, "The examples");
    dir
}

/// The id of copy `i` (the newest is the last).
fn copy_id(i: usize) -> String {
    format!("bench-{i:06}")
}

/// One real execution of the hourly ETL, copied `EXECUTIONS` times.
async fn fill(store: &dyn Store) {
    let request = Request {
        name: "hourly-etl-schedule".into(),
        project: Some("etl".into()),
        inputs: [("hour".to_owned(), "2026-12-01T10:00:00Z".into())].into(),
        trigger: Trigger::Api,
        ..Request::default()
    };
    let (model, _) = create::create(store, &request).await.expect("a run");
    let mut nodes = store.nodes(&model.id).await.expect("nodes");
    let start = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("an instant");
    let statuses = [
        Status::Succeeded,
        Status::Succeeded,
        Status::Succeeded,
        Status::Failed,
    ];
    for chunk in (0..EXECUTIONS).collect::<Vec<_>>().chunks(1_000) {
        let batch: Vec<NewExecution> = chunk
            .iter()
            .map(|&i| {
                let at = start + chrono::Duration::seconds(i as i64);
                let mut execution = model.clone();
                execution.id = copy_id(i).into();
                execution.created_at = at;
                execution.started_at = Some(at);
                execution.finished_at = Some(at + chrono::Duration::seconds(42));
                execution.status = statuses[i % statuses.len()];
                execution.trigger = Trigger::ALL[i % Trigger::ALL.len()];
                let nodes = nodes
                    .iter_mut()
                    .enumerate()
                    .map(|(k, node)| {
                        let mut node = node.clone();
                        node.execution = execution.id.clone();
                        node.status = NodeStatus::Succeeded;
                        node.attempts = 1;
                        node.started_at = Some(at + chrono::Duration::seconds(k as i64 * 4));
                        node.finished_at = Some(at + chrono::Duration::seconds(k as i64 * 4 + 3));
                        node
                    })
                    .collect();
                NewExecution { execution, nodes }
            })
            .collect();
        store.create_executions(&batch).await.expect("a batch");
    }
}

/// Whole-page time of `GET path`, one request on a fresh connection.
fn get(addr: &str, path: &str) -> Duration {
    let start = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let took = start.elapsed();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "{path}: {}",
        &response[..response.len().min(300)]
    );
    took
}

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at =
        |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.95))
}

async fn measure(label: &str, db_url: &str) {
    let repo_dir = examples();
    let state = tempfile::tempdir().expect("state");
    let store = weir::store::open(db_url).await.expect("store");
    register(store.as_ref(), repo_dir.path(), state.path()).await;
    let filled = Instant::now();
    fill(store.as_ref()).await;
    println!(
        "console ({label}): {EXECUTIONS} executions written in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let app = AppState {
        store: store.clone(),
        metrics: Arc::new(Metrics::new()),
        sources: Vec::new(),
        readiness: Arc::new(Readiness::new(&[])),
        secrets: Secrets::default(),
        max_payload: weir::http::DEFAULT_MAX_PAYLOAD,
        state_dir: Some(state.path().to_path_buf()),
        clock: weir::clock::Clock::system(),
        artifacts: None,
        rollback: None,
    };
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(weir::http::serve(
        listener,
        weir::http::router(app),
        shutdown.clone(),
    ));
    let pages = [
        ("executions, first page", "/executions".to_owned()),
        (
            "executions, 90,000 rows deep",
            format!("/executions?before={}", copy_id(EXECUTIONS - 90_000)),
        ),
        (
            "executions, status=failed",
            "/executions?status=failed".to_owned(),
        ),
        (
            "executions, trigger=backfill",
            "/executions?trigger=backfill".to_owned(),
        ),
        (
            "executions, launchPlan=",
            "/executions?launchPlan=hourly-etl-schedule".to_owned(),
        ),
        (
            "one execution (8 nodes)",
            format!("/executions/{}", copy_id(EXECUTIONS / 2)),
        ),
        ("overview", "/".to_owned()),
    ];
    for (what, path) in pages {
        let addr = addr.clone();
        let times = tokio::task::spawn_blocking(move || {
            get(&addr, &path); // warm
            (0..REQUESTS).map(|_| get(&addr, &path)).collect::<Vec<_>>()
        })
        .await
        .expect("requests");
        let (p50, p95) = percentiles(times);
        println!("console ({label}): {what}: p50 {p50:.1} ms, p95 {p95:.1} ms");
    }
    shutdown.cancel();
    let _ = served.await;
}

#[tokio::main]
async fn main() {
    let sqlite = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", sqlite.path().join("weir.db").display());
    measure("SQLite", &url).await;
    if let Ok(base) = std::env::var("WEIR_TEST_POSTGRES_URL") {
        let schema = format!("weir_bench_console_{}", std::process::id());
        let created = Command::new("psql")
            .args([&base, "-qc", &format!("create schema {schema}")])
            .status()
            .expect("psql runs");
        assert!(created.success(), "cannot create schema {schema}");
        let sep = if base.contains('?') { '&' } else { '?' };
        measure(
            "PostgreSQL",
            &format!("{base}{sep}options=-csearch_path%3D{schema}"),
        )
        .await;
        let _ = Command::new("psql")
            .args([&base, "-qc", &format!("drop schema {schema} cascade")])
            .status();
    }
}
