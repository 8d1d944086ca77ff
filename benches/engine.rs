//! Benchmark: the engine's overhead per node beyond the process itself.
//!
//! `cargo bench --bench engine` registers (through a real Git repository and
//! a SQLite store) a no-op task (`/bin/true`, a container task run on the
//! host), a chain of 100 of them and a fan-out of 1,000, runs each workflow
//! to the end with the local executor, and subtracts what the same number of
//! `/bin/true` processes cost when spawned and awaited by the same process
//! supervisor without the engine (one after another for the chain, all at
//! once for the fan-out). Target: under 5 ms per node on 2 cores, the same
//! for a chain of 1,000 (`WEIR_BENCH_CHAIN=1000`): the cost per node must
//! not grow with the workflow.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use git2::{Repository, Signature};
use tokio_util::sync::CancellationToken;
use weir::artifact::LocalArtifacts;
use weir::engine::Engine;
use weir::engine::create::{self, Request};
use weir::executor::process::{self, Command};
use weir::reconcile::{self, Outcome};
use weir::source::git::{GitSource, SourceSpec};

const FAN_OUT: usize = 1_000;

/// The chain's length: 100, or `WEIR_BENCH_CHAIN`.
fn chain() -> usize {
    std::env::var("WEIR_BENCH_CHAIN")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
}

fn definitions() -> String {
    let mut s = String::from(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: noop }
spec:
  container: { image: busybox, command: ["true"] }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: chain }
spec:
  nodes:
    - { id: n0, task: noop }
"#,
    );
    for i in 1..chain() {
        writeln!(s, "    - {{ id: n{i}, task: noop, after: [n{}] }}", i - 1).expect("string");
    }
    s.push_str(
        r#"---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: fan-out }
spec:
  nodes:
"#,
    );
    for i in 0..FAN_OUT {
        writeln!(s, "    - {{ id: n{i}, task: noop }}").expect("string");
    }
    s
}

fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = Repository::init_opts(dir.path(), &opts).expect("init");
    std::fs::write(dir.path().join("flows.yaml"), definitions()).expect("write");
    let mut index = repo.index().expect("index");
    index
        .add_path(std::path::Path::new("flows.yaml"))
        .expect("add");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig = Signature::now("Bench", "bench@example.com").expect("signature");
    repo.commit(Some("HEAD"), &sig, &sig, "No-op flows", &tree, &[])
        .expect("commit");
    dir
}

/// `count` `/bin/true` processes through the supervisor alone.
async fn baseline(dir: &std::path::Path, count: usize, parallel: bool) -> Duration {
    let command = |i: usize| Command {
        program: "true".into(),
        args: Vec::new(),
        env: Default::default(),
        cwd: dir.to_path_buf(),
        stdout: dir.join(format!("{i}.out")),
        stderr: dir.join(format!("{i}.err")),
    };
    let cancel = CancellationToken::new();
    let start = Instant::now();
    if parallel {
        let children: Vec<_> = (0..count)
            .map(|i| process::spawn(&command(i)).expect("spawn"))
            .collect();
        for child in children {
            child
                .wait(None, &cancel, Duration::from_secs(1))
                .await
                .expect("wait");
        }
    } else {
        for i in 0..count {
            let child = process::spawn(&command(i)).expect("spawn");
            child
                .wait(None, &cancel, Duration::from_secs(1))
                .await
                .expect("wait");
        }
    }
    start.elapsed()
}

fn main() {
    let repo = repository();
    let state = tempfile::tempdir().expect("state");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let spec = SourceSpec {
        repo: repo.path().display().to_string(),
        branch: Some("main".into()),
        path: String::new(),
        credentials: Default::default(),
    };
    let source = GitSource::open(&spec, state.path()).expect("source");
    let loaded = reconcile::load(&source, &reconcile::Options::default(), None).expect("load");
    let url = format!("sqlite://{}", state.path().join("weir.db").display());
    runtime.block_on(async {
        let store = weir::store::open(&url).await.expect("store");
        match reconcile::register(store.as_ref(), loaded, chrono::Utc::now()).await.expect("register") {
            Outcome::Reconciled { .. } => {}
            Outcome::Rejected { report, .. } => panic!("invalid: {:?}", report.diagnostics),
            Outcome::Untrusted { refusal, .. } => panic!("{refusal}"),
        }
        let artifacts = Arc::new(LocalArtifacts::new(state.path().join("artifacts")));
        let engine = Engine::new(store.clone(), artifacts, state.path().to_path_buf())
        .with_task_env(weir::executor::environment::Inherited::from_process(Default::default()));
        let scratch = tempfile::tempdir().expect("scratch");
        for (name, nodes, parallel) in [("chain", chain(), false), ("fan-out", FAN_OUT, true)] {
            let request = Request {
                name: name.into(),
                ..Request::default()
            };
            let start = Instant::now();
            let (execution, _) = create::create(store.as_ref(), &request).await.expect("create");
            let done = engine.run_until_finished(&execution.id).await.expect("run");
            let took = start.elapsed();
            assert_eq!(done.status.as_str(), "succeeded", "{done:?}");
            let base = baseline(scratch.path(), nodes, parallel).await;
            let overhead = took.saturating_sub(base).as_secs_f64() * 1000.0 / nodes as f64;
            println!(
                "engine: {name} of {nodes} no-op tasks in {:.2} s; the same processes alone {:.2} s; overhead {overhead:.2} ms per node",
                took.as_secs_f64(),
                base.as_secs_f64()
            );
        }
    });
}
