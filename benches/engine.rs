//! Benchmark: the engine's overhead per node beyond the process itself.
//!
//! `cargo bench --bench engine` registers (through a real Git repository and
//! a SQLite store) a no-op task (`/bin/true`, a container task run on the
//! host), chains of 10, 1,000 and 10,000 of them, a fan-out of 1,000 and a
//! map over 10,000 items (`maxParallel: 100`) and a map of a two-node
//! sub-workflow over 2,500 items (5,000 nodes), runs each workflow to the end
//! with the local executor, and subtracts what the same number of
//! `/bin/true` processes cost when spawned and awaited by the same process
//! supervisor without the engine (one after another for a chain, all at
//! once for the fan-out, 100 at a time for the map). Target: under 2 ms per
//! node at every size, flat: the cost per node must not grow with the
//! workflow. `WEIR_BENCH_CHAINS=10,1000` picks the chains; `WEIR_BENCH_MAP`
//! the map's size, `WEIR_BENCH_MAP_WORKFLOW` the sub-workflow map's.

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
/// Items of the map running at once.
const MAP_PARALLEL: usize = 100;

/// A number list from the environment, or `default`.
fn sizes(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn definitions(chains: &[usize], map: usize, map_workflow: usize) -> String {
    let mut s = String::from(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: noop }
spec:
  container: { image: busybox, command: ["true"] }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: noop-item }
spec:
  inputs: { i: { type: int } }
  container: { image: busybox, command: ["true"] }
"#,
    );
    for &length in chains {
        write!(
            s,
            "---\napiVersion: weir.dev/v1alpha1\nkind: Workflow\nmetadata: {{ name: chain-{length} }}\nspec:\n  nodes:\n    - {{ id: n0, task: noop }}\n"
        )
        .expect("string");
        for i in 1..length {
            writeln!(s, "    - {{ id: n{i}, task: noop, after: [n{}] }}", i - 1).expect("string");
        }
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
    let items: Vec<String> = (0..map).map(|i| i.to_string()).collect();
    write!(
        s,
        "---\napiVersion: weir.dev/v1alpha1\nkind: Workflow\nmetadata: {{ name: map }}\nspec:\n  nodes:\n    - id: each\n      task: noop-item\n      map: {{ over: [{}], as: i, maxParallel: {MAP_PARALLEL} }}\n",
        items.join(", ")
    )
    .expect("string");
    let items: Vec<String> = (0..map_workflow).map(|i| i.to_string()).collect();
    write!(
        s,
        r#"---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: pair }}
spec:
  inputs: {{ i: {{ type: int }} }}
  nodes:
    - {{ id: first, task: noop-item, inputs: {{ i: "{{{{ inputs.i }}}}" }} }}
    - {{ id: second, task: noop, after: [first] }}
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: map-workflow }}
spec:
  nodes:
    - id: each
      workflow: pair
      map: {{ over: [{}], as: i, maxParallel: {MAP_PARALLEL} }}
"#,
        items.join(", ")
    )
    .expect("string");
    s
}

fn repository(definitions: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = Repository::init_opts(dir.path(), &opts).expect("init");
    std::fs::write(dir.path().join("flows.yaml"), definitions).expect("write");
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

/// `count` `/bin/true` processes through the supervisor alone, at most
/// `window` at a time.
async fn baseline(dir: &std::path::Path, count: usize, window: usize) -> Duration {
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
    let mut next = 0;
    while next < count {
        let batch = window.min(count - next);
        let children: Vec<_> = (next..next + batch)
            .map(|i| process::spawn(&command(i)).expect("spawn"))
            .collect();
        for child in children {
            child
                .wait(None, &cancel, Duration::from_secs(1))
                .await
                .expect("wait");
        }
        next += batch;
    }
    start.elapsed()
}

fn main() {
    let chains = sizes("WEIR_BENCH_CHAINS", &[10, 1_000, 10_000]);
    let map = sizes("WEIR_BENCH_MAP", &[10_000])[0];
    let map_workflow = sizes("WEIR_BENCH_MAP_WORKFLOW", &[2_500])[0];
    let repo = repository(&definitions(&chains, map, map_workflow));
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
        let mut runs: Vec<(String, usize, usize)> = chains
            .iter()
            .map(|&n| (format!("chain-{n}"), n, 1))
            .collect();
        runs.push(("fan-out".into(), FAN_OUT, FAN_OUT));
        runs.push(("map".into(), map, MAP_PARALLEL));
        // Two nodes per item, one after the other: at most 100 at once.
        runs.push(("map-workflow".into(), 2 * map_workflow, MAP_PARALLEL));
        for (name, nodes, window) in runs {
            let request = Request {
                name: name.clone(),
                ..Request::default()
            };
            let start = Instant::now();
            let (execution, _) = create::create(store.as_ref(), &request).await.expect("create");
            let done = engine.run_until_finished(&execution.id).await.expect("run");
            let took = start.elapsed();
            assert_eq!(done.status.as_str(), "succeeded", "{done:?}");
            // A fresh folder each time: one holding the logs of earlier
            // runs slows every file created in it.
            let scratch = tempfile::tempdir().expect("scratch");
            let base = baseline(scratch.path(), nodes, window).await;
            let per_node = |d: Duration| d.as_secs_f64() * 1000.0 / nodes as f64;
            // Spawned by the engine's executor, a process may cost less than
            // through the bare supervisor: then the overhead reads 0.
            let overhead = took.saturating_sub(base).as_secs_f64() * 1000.0 / nodes as f64;
            println!(
                "engine: {name} ({nodes} no-op tasks) in {:.2} s ({:.2} ms per node); the same processes alone {:.2} s ({:.2} ms per node); overhead {overhead:.2} ms per node",
                took.as_secs_f64(),
                per_node(took),
                base.as_secs_f64(),
                per_node(base),
            );
        }
    });
}
