//! Benchmark: `weir sync` on a generated repository of 10,000 definitions
//! (2,000 files) with 1,000 commits of history.
//!
//! `cargo bench --bench sync` builds the repository with git2 (each history
//! commit changes one file), then measures, in process and on SQLite in a
//! fresh state directory:
//! - cold: the first reconcile (read the tree, validate, register 10,000
//!   versions, write the active set), three times in fresh state
//!   directories (median), with the first pass's peak resident memory and
//!   what stays resident after it (what a daemon keeps after its first
//!   reconcile);
//! - one-file change: commit a change to one file and reconcile again.
//!
//! Targets (DESIGN.md section 10: cost grows with what changed; issue 20):
//! cold under 1 s and 150 MB, one-file change under 100 ms on a 2-core
//! machine.

#[path = "support/generate.rs"]
mod generate;
#[path = "support/memory.rs"]
mod memory;
#[path = "support/repo.rs"]
mod repo;

use std::time::{Duration, Instant};

use git2::Repository;
use repo::commit;
use weir::reconcile::{self, Outcome, Snapshot};
use weir::source::git::{GitSource, SourceSpec};

const GROUPS: usize = 2_000;
const HISTORY: usize = 1_000;
const COLD_RUNS: usize = 3;

/// Time of one pass, of its Git-and-validation half, and versions registered.
fn sync(repo_dir: &std::path::Path, state: &std::path::Path) -> (Duration, Duration, usize) {
    let start = Instant::now();
    let spec = SourceSpec {
        repo: repo_dir.display().to_string(),
        branch: Some("main".into()),
        path: "defs".into(),
        credentials: Default::default(),
    };
    let source = GitSource::open(&spec, state).expect("source");
    let snapshot_path = Snapshot::path(state, &source.key());
    let base = Snapshot::read(&snapshot_path);
    let loaded =
        reconcile::load(&source, &reconcile::Options::default(), base.as_ref()).expect("load");
    let load = start.elapsed();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime.block_on(async {
        let store = weir::store::open(&format!("sqlite://{}", state.join("weir.db").display()))
            .await
            .expect("store");
        reconcile::register(store.as_ref(), loaded, chrono::Utc::now())
            .await
            .expect("register")
    });
    let registered = match outcome {
        Outcome::Reconciled {
            changes, snapshot, ..
        } => {
            snapshot
                .expect("a valid commit has a snapshot")
                .write(&snapshot_path)
                .expect("snapshot");
            changes.registered.len()
        }
        Outcome::Rejected { report, .. } => panic!("invalid: {:?}", report.diagnostics.first()),
        Outcome::Untrusted { refusal, .. } => panic!("{refusal}"),
    };
    (start.elapsed(), load, registered)
}

fn main() {
    let repo_dir = tempfile::tempdir().expect("tempdir");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = Repository::init_opts(repo_dir.path(), &opts).expect("init");
    let build = Instant::now();
    let all: Vec<(String, String)> = (0..GROUPS)
        .map(|i| (generate::path(i), generate::group(i)))
        .collect();
    commit(&repo, &all, "Initial pipelines");
    for c in 1..HISTORY {
        let i = (c * 7919) % GROUPS;
        commit(
            &repo,
            &[(generate::path(i), generate::group_at(i, c))],
            &format!("Tune pipeline {i}"),
        );
    }
    println!(
        "sync: built a repository of {} definitions and {HISTORY} commits in {:.1} s",
        GROUPS * 5,
        build.elapsed().as_secs_f64()
    );

    // What building the repository left behind is not the reconcile's.
    drop(all);
    let before = memory::resident_mb();
    let peak_measured = memory::reset_peak();
    let state = tempfile::tempdir().expect("state");
    let (cold, cold_load, registered) = sync(repo_dir.path(), state.path());
    let peak = memory::peak_mb().filter(|_| peak_measured);
    let after = memory::resident_mb();
    println!(
        "sync: first cold pass {:.3} s, of which reading and validating the tree {:.3} s ({registered} versions registered)",
        cold.as_secs_f64(),
        cold_load.as_secs_f64()
    );
    println!(
        "sync: cold pass memory: resident before {}, peak {}, resident after {}",
        memory::show(before),
        memory::show(peak),
        memory::show(after)
    );
    let mut colds = vec![cold];
    let mut cold_loads = vec![cold_load];
    for _ in 1..COLD_RUNS {
        let fresh = tempfile::tempdir().expect("state");
        let (took, load, _) = sync(repo_dir.path(), fresh.path());
        colds.push(took);
        cold_loads.push(load);
    }
    colds.sort();
    cold_loads.sort();
    println!(
        "sync: cold median {:.3} s (min {:.3} s, max {:.3} s) over {COLD_RUNS} runs; reading and validating the tree: median {:.3} s",
        colds[COLD_RUNS / 2].as_secs_f64(),
        colds[0].as_secs_f64(),
        colds[COLD_RUNS - 1].as_secs_f64(),
        cold_loads[COLD_RUNS / 2].as_secs_f64()
    );

    let mut changes = Vec::new();
    let mut loads = Vec::new();
    for round in 0..5 {
        let i = 17 + round;
        commit(
            &repo,
            &[(generate::path(i), generate::group_at(i, HISTORY + round))],
            "one-file change",
        );
        let (took, load, registered) = sync(repo_dir.path(), state.path());
        loads.push(load);
        assert_eq!(
            registered, 5,
            "one file: three tasks, their workflow and launch plan"
        );
        changes.push(took);
    }
    changes.sort();
    loads.sort();
    println!(
        "sync: one-file change median {:.3} s (min {:.3} s) over {} runs; reading and validating the tree: median {:.3} s",
        changes[changes.len() / 2].as_secs_f64(),
        changes[0].as_secs_f64(),
        changes.len(),
        loads[loads.len() / 2].as_secs_f64()
    );
}
