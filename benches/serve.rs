//! Benchmark: the daemon's latencies, in process (`weir::daemon::run`).
//!
//! `cargo bench --bench serve` measures, on SQLite and the local executor:
//! - commit → active: 50 commits to a local repository (change detected by
//!   watching its refs), then 50 to a remote one (`file://`, cloned; change
//!   signalled by `POST /hooks/generic`), each timed from the commit until
//!   the store's last reconciled commit is the new head;
//! - schedule lag: for an `every: 1s` launch plan, from each scheduled
//!   instant to its node's process start, over 20 instants;
//! - API run → first node: `POST /api/v1/runs` of a one-node no-op
//!   workflow, from the request until its node's process starts (the
//!   node's recorded start), over 30 runs one after another.
//!
//! Prints p50 and p95. Targets: p95 under 1 s for the first two; the API
//! run's first node under 20 ms (issue 20). `cargo bench --bench serve --
//! api` (or `commit`) runs one part.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use git2::{Repository, Signature};
use tokio_util::sync::CancellationToken;
use weir::daemon::{self, Config, SourceConfig};
use weir::http::Secrets;
use weir::source::git::SourceSpec;
use weir::store::execution::ExecutionFilter;

#[path = "support/repo.rs"]
mod repo;
#[path = "support/select.rs"]
mod select;

const COMMITS: usize = 50;

fn task(revision: usize) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: stamp }}
spec:
  container: {{ image: busybox, command: ["true", "{revision}"] }}
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: stamp-flow }}
spec:
  nodes: [ {{ id: stamp, task: stamp }} ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: {{ name: every-second }}
spec:
  workflow: stamp-flow
  schedule: {{ every: 1s }}
"#
    )
}

fn commit(repo: &Repository, dir: &std::path::Path, revision: usize) -> String {
    std::fs::write(dir.join("flow.yaml"), task(revision)).expect("write");
    let mut index = repo.index().expect("index");
    index
        .add_path(std::path::Path::new("flow.yaml"))
        .expect("add");
    index.write().expect("index");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig = Signature::now("Bench", "bench@example.com").expect("signature");
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(
        Some("HEAD"),
        &sig,
        &sig,
        &format!("revision {revision}"),
        &tree,
        &parents,
    )
    .expect("commit")
    .to_string()
}

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at =
        |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.95))
}

fn post(addr: &str, path: &str, token: &str) {
    post_json(addr, path, token, "");
}

/// POSTs `body` (JSON); the response, headers and body.
fn post_json(addr: &str, path: &str, token: &str, body: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

async fn commit_latency(remote: bool) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("repo");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = Repository::init_opts(dir.path(), &opts).expect("init");
    commit(&repo, dir.path(), 0);
    let state = tempfile::tempdir().expect("state");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let repo_url = if remote {
        format!("file://{}", dir.path().display())
    } else {
        dir.path().display().to_string()
    };
    let config = Config {
        sources: vec![SourceConfig {
            spec: SourceSpec {
                repo: repo_url,
                branch: Some("main".into()),
                path: String::new(),
                credentials: Default::default(),
            },
            interval: Duration::from_secs(600),
            options: Default::default(),
        }],
        state_dir: state.path().to_path_buf(),
        db_url: format!("sqlite://{}", state.path().join("weir.db").display()),
        listen: addr,
        secrets: Secrets {
            github_webhook_secret: None,
            generic_webhook_token: Some("bench".into()),
            api_token: None,
        },
        tick: Duration::from_secs(1),
        lease_duration: weir::daemon::config::DEFAULT_LEASE_DURATION,
        grace: Duration::from_secs(1),
        public_url: None,
        http: weir::http::Limits::default(),
        executor: daemon::Executor::Local,
        artifacts: None,
        task_env: Default::default(),
        openlineage: Default::default(),
        console_rollback: Default::default(),
    };
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(daemon::run(config, shutdown.clone()));
    let store = weir::store::open(&format!(
        "sqlite://{}",
        state.path().join("weir.db").display()
    ))
    .await
    .expect("store");
    let reconciled = |head: String| {
        let store = store.clone();
        async move {
            loop {
                let sources = store.sources().await.unwrap_or_default();
                if sources
                    .iter()
                    .any(|s| s.last_reconciled.as_ref().is_some_and(|c| c.0 == head))
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    let first = repo
        .head()
        .expect("head")
        .peel_to_commit()
        .expect("commit")
        .id()
        .to_string();
    tokio::time::timeout(Duration::from_secs(60), reconciled(first))
        .await
        .expect("the first reconcile");
    let mut times = Vec::new();
    for revision in 1..=COMMITS {
        let start = Instant::now();
        let head = commit(&repo, dir.path(), revision);
        if remote {
            let addr = addr.to_string();
            tokio::task::spawn_blocking(move || post(&addr, "/hooks/generic", "bench"))
                .await
                .expect("post");
        }
        tokio::time::timeout(Duration::from_secs(60), reconciled(head))
            .await
            .expect("reconciled");
        times.push(start.elapsed());
    }
    if !remote {
        // Schedule lag, while this daemon runs the every-second plan.
        tokio::time::sleep(Duration::from_secs(22)).await;
        let filter = ExecutionFilter {
            launch_plan: Some("every-second".into()),
            ..ExecutionFilter::default()
        };
        let mut lags = Vec::new();
        for e in store.executions(&filter).await.expect("executions") {
            let nodes = store.nodes(&e.id).await.expect("nodes");
            if let (Some(at), Some(started)) =
                (e.scheduled_at, nodes.first().and_then(|n| n.started_at))
            {
                lags.push((started - at).to_std().unwrap_or_default());
            }
        }
        let n = lags.len();
        let (p50, p95) = percentiles(lags);
        println!(
            "serve: schedule lag (instant → process start) p50 {p50:.1} ms, p95 {p95:.1} ms over {n} instants"
        );
    }
    shutdown.cancel();
    let _ = daemon.await;
    times
}

const API_RUNS: usize = 30;

const NOOP: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: noop }
spec:
  container: { image: busybox, command: ["true"] }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: noop-flow }
spec:
  nodes: [ { id: noop, task: noop } ]
"#;

/// From `POST /api/v1/runs` to the process start of the run's node, for
/// [`API_RUNS`] runs one after another.
async fn api_run_latency() -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("repo");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let git = Repository::init_opts(dir.path(), &opts).expect("init");
    repo::commit(&git, &[("flow.yaml".into(), NOOP.into())], "A no-op flow");
    let state = tempfile::tempdir().expect("state");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let db_url = format!("sqlite://{}", state.path().join("weir.db").display());
    let config = Config {
        sources: vec![SourceConfig {
            spec: SourceSpec {
                repo: dir.path().display().to_string(),
                branch: Some("main".into()),
                path: "defs".into(),
                credentials: Default::default(),
            },
            interval: Duration::from_secs(600),
            options: Default::default(),
        }],
        state_dir: state.path().to_path_buf(),
        db_url: db_url.clone(),
        listen: addr,
        secrets: Secrets {
            github_webhook_secret: None,
            generic_webhook_token: None,
            api_token: Some("bench".into()),
        },
        tick: weir::daemon::config::DEFAULT_TICK,
        lease_duration: weir::daemon::config::DEFAULT_LEASE_DURATION,
        grace: Duration::from_secs(1),
        public_url: None,
        http: weir::http::Limits::default(),
        executor: daemon::Executor::Local,
        artifacts: None,
        task_env: Default::default(),
        openlineage: Default::default(),
        console_rollback: Default::default(),
    };
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(daemon::run(config, shutdown.clone()));
    let store = weir::store::open(&db_url).await.expect("store");
    // The first reconcile, and the engine leading.
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let sources = store.sources().await.unwrap_or_default();
            let lease = store.lease(weir::store::ENGINE_LEASE).await.ok().flatten();
            if sources.iter().any(|s| s.last_reconciled.is_some()) && lease.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the first reconcile");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut times = Vec::new();
    for _ in 0..API_RUNS {
        let addr = addr.to_string();
        let posted = chrono::Utc::now();
        let response = tokio::task::spawn_blocking(move || {
            post_json(&addr, "/api/v1/runs", "bench", r#"{"name": "noop-flow"}"#)
        })
        .await
        .expect("post");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        let view: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("a run: {e}: {response}"));
        let id = weir::spec::ExecutionId::from(view["id"].as_str().expect("an execution id"));
        let started = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let nodes = store.nodes(&id).await.expect("nodes");
                if let Some(at) = nodes.first().and_then(|n| n.started_at) {
                    return at;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the node starts");
        times.push((started - posted).to_std().unwrap_or_default());
        // Let the run end before the next, so each is measured alone.
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let done = store.execution(&id).await.expect("execution");
                if done.is_some_and(|e| e.status.is_terminal()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the run ends");
    }
    shutdown.cancel();
    let _ = daemon.await;
    times
}

fn main() {
    let wanted = select::wanted();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if wanted("commit") {
            let (p50, p95) = percentiles(commit_latency(false).await);
            println!("serve: commit → active with filesystem watching: p50 {p50:.1} ms, p95 {p95:.1} ms over {COMMITS} commits");
            let (p50, p95) = percentiles(commit_latency(true).await);
            println!("serve: commit → active with a webhook (file:// clone, fetch): p50 {p50:.1} ms, p95 {p95:.1} ms over {COMMITS} commits");
        }
        if wanted("api") {
            let (p50, p95) = percentiles(api_run_latency().await);
            println!("serve: POST /api/v1/runs → first node's process start: p50 {p50:.1} ms, p95 {p95:.1} ms over {API_RUNS} runs");
        }
    });
}
