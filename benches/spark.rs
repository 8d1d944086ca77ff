//! Benchmark: what weir adds to a Spark task, against the same
//! `spark-submit` run by hand.
//!
//! `cargo bench --bench spark` registers (through a real Git repository
//! and a SQLite store) a one-node workflow whose `spark` task counts a
//! small range and writes it as an output, then, ROUNDS times in turn:
//! runs it through the engine and the local executor (a new execution,
//! the cache off), and runs by hand the very command weir runs
//! (`spark-submit --master local[1] …` with the same driver program and
//! files, in a folder of its own). It prints the median of each and their
//! difference: weir's overhead (creating the execution, planning, staging,
//! starting, reading the outputs back, recording). Target: under 100 ms.
//! Needs Java 17 and pyspark (`scripts/test-env`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use git2::{Repository, Signature};
use weir::artifact::LocalArtifacts;
use weir::engine::Engine;
use weir::engine::create::{self, Request};
use weir::reconcile::{self, Outcome};
use weir::source::git::{GitSource, SourceSpec};
use weir::task::{Context, TaskTypes};

const ROUNDS: usize = 5;

const DEFINITIONS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: count }
spec:
  outputs: { n: { type: int } }
  spark:
    source: |
      outputs["n"] = spark.range(1000).count()
    executor: { instances: 1, cores: 1 }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: count }
spec:
  nodes: [ { id: count, task: count } ]
"#;

fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = Repository::init_opts(dir.path(), &opts).expect("init");
    std::fs::write(dir.path().join("flows.yaml"), DEFINITIONS).expect("write");
    let mut index = repo.index().expect("index");
    index
        .add_path(std::path::Path::new("flows.yaml"))
        .expect("add");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig = Signature::now("Bench", "bench@example.com").expect("signature");
    repo.commit(Some("HEAD"), &sig, &sig, "A Spark task", &tree, &[])
        .expect("commit");
    dir
}

/// The command weir runs for the task, run by hand in a fresh folder.
fn by_hand(round: usize, scratch: &std::path::Path) -> Duration {
    // The task of DEFINITIONS.
    let spec: weir::spec::TaskSpec = serde_json::from_value(serde_json::json!({
        "outputs": { "n": { "type": "int" } },
        "spark": {
            "source": "outputs[\"n\"] = spark.range(1000).count()\n",
            "executor": { "instances": 1, "cores": 1 },
        },
    }))
    .expect("a task spec");
    let launch = TaskTypes::builtin()
        .launch(&Context {
            spec: &spec,
            inputs: &BTreeMap::new(),
            files: &Default::default(),
        })
        .expect("a launch");
    let dir = scratch.join(round.to_string());
    std::fs::create_dir_all(dir.join("outputs")).expect("mkdir");
    for (path, text) in &launch.files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    std::fs::write(dir.join("inputs.json"), "{}").expect("write");
    let start = Instant::now();
    let status = std::process::Command::new(&launch.program)
        .args(&launch.args)
        .current_dir(&dir)
        .env("WEIR_INPUTS", dir.join("inputs.json"))
        .env("WEIR_OUTPUTS", dir.join("outputs"))
        .stdout(std::fs::File::create(dir.join("stdout.log")).expect("log"))
        .stderr(std::fs::File::create(dir.join("stderr.log")).expect("log"))
        .status()
        .expect("spark-submit runs");
    let took = start.elapsed();
    assert!(
        status.success(),
        "spark-submit failed: see {}",
        dir.display()
    );
    took
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let repo = repository();
    let state = tempfile::tempdir().expect("state");
    let scratch = tempfile::tempdir().expect("scratch");
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
    let (mut weir_runs, mut hand_runs) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        let store = weir::store::open(&url).await.expect("store");
        match reconcile::register(store.as_ref(), loaded, chrono::Utc::now())
            .await
            .expect("register")
        {
            Outcome::Reconciled { .. } => {}
            Outcome::Rejected { report, .. } => panic!("invalid: {:?}", report.diagnostics),
            Outcome::Untrusted { refusal, .. } => panic!("{refusal}"),
        }
        let artifacts = Arc::new(LocalArtifacts::new(state.path().join("artifacts")));
        let engine = Engine::new(store.clone(), artifacts, state.path().to_path_buf())
            .with_task_env(weir::executor::environment::Inherited::from_process(
                Default::default(),
            ));
        for round in 0..ROUNDS {
            let request = Request {
                name: "count".into(),
                no_cache: true,
                ..Request::default()
            };
            let start = Instant::now();
            let (execution, _) = create::create(store.as_ref(), &request)
                .await
                .expect("create");
            let done = engine.run_until_finished(&execution.id).await.expect("run");
            weir_runs.push(start.elapsed());
            assert_eq!(done.status.as_str(), "succeeded", "{done:?}");
            hand_runs.push(by_hand(round, scratch.path()));
        }
    });
    let (through_weir, alone) = (median(weir_runs), median(hand_runs));
    let overhead = through_weir.as_secs_f64() - alone.as_secs_f64();
    println!(
        "spark: a one-node Spark task through weir {:.3} s (median of {ROUNDS}); the same spark-submit by hand {:.3} s; weir's overhead {:.1} ms",
        through_weir.as_secs_f64(),
        alone.as_secs_f64(),
        overhead * 1000.0
    );
}
