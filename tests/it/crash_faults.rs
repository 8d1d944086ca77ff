//! The crash-and-fault suite (issue 13, "What it must show"): on each
//! database, `weir serve` runs a schedule `every: 1s` of a fan-out workflow
//! and is killed with SIGKILL at random moments 20 times, restarted each
//! time; then it runs undisturbed until the schedule is removed and every
//! execution has finished. What must hold whatever the moments were:
//! - no scheduled instant has two executions, and none is missing between
//!   the first and the last (the plan catches up `all`): I4;
//! - no execution is stuck: every one reaches a terminal state, and with
//!   these tasks (which cannot fail) it succeeds;
//! - every succeeded node has its outputs and a lineage edge for each of
//!   them, and for each of its inputs (I5).
//!
//! The moments come from a seed printed at the start (set
//! `WEIR_CRASH_SEED` to replay one). Ticks are 200 ms; each database takes
//! well under a minute and a half.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::common::{Daemon, GitRepo, TestDb, eventually, eventually_within};
use weir::store::execution::{Direction, ExecutionFilter, NodeStatus};

const DEFS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: split, project: crash }
spec:
  inputs: { day: { type: datetime } }
  outputs: { parts: { type: file }, count: { type: int } }
  script:
    interpreter: bash
    source: |
      echo "$WEIR_INPUT_DAY" > "$WEIR_OUTPUTS/parts"
      echo '{"count": 3}' > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: work, project: crash }
spec:
  inputs: { parts: { type: file }, count: { type: int }, lane: { type: string } }
  outputs: { result: { type: file }, rows: { type: int } }
  script:
    interpreter: bash
    source: |
      sleep 0.$((RANDOM % 4))
      { cat "$WEIR_INPUT_PARTS"; echo "$WEIR_INPUT_LANE"; } > "$WEIR_OUTPUTS/result"
      echo "{\"rows\": $WEIR_INPUT_COUNT}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: join, project: crash }
spec:
  inputs: { a: { type: file }, b: { type: file }, c: { type: file } }
  outputs: { all: { type: file } }
  script:
    interpreter: bash
    source: |
      cat "$WEIR_INPUT_A" "$WEIR_INPUT_B" "$WEIR_INPUT_C" > "$WEIR_OUTPUTS/all"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: fan, project: crash }
spec:
  inputs: { day: { type: datetime } }
  nodes:
    - { id: split, task: split, inputs: { day: "{{ inputs.day }}" } }
    - id: a
      task: work
      inputs: { parts: "{{ nodes.split.outputs.parts }}", count: "{{ nodes.split.outputs.count }}", lane: a }
    - id: b
      task: work
      inputs: { parts: "{{ nodes.split.outputs.parts }}", count: "{{ nodes.split.outputs.count }}", lane: b }
    - id: c
      task: work
      inputs: { parts: "{{ nodes.split.outputs.parts }}", count: "{{ nodes.split.outputs.count }}", lane: c }
    - id: join
      task: join
      inputs: { a: "{{ nodes.a.outputs.result }}", b: "{{ nodes.b.outputs.result }}", c: "{{ nodes.c.outputs.result }}" }
  outputs: { all: "{{ nodes.join.outputs.all }}" }
"#;

const PLAN: &str = r#"apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: every-second, project: crash }
spec:
  workflow: fan
  schedule:
    every: 1s
    kickoffTimeInput: day
    catchUp: all
    maxCatchUp: 1000
"#;

const KILLS: usize = 20;

/// A small deterministic generator (xorshift), so a failing seed replays.
struct Moments(u64);

impl Moments {
    fn new() -> Moments {
        let seed = std::env::var("WEIR_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("crash suite: WEIR_CRASH_SEED={seed}");
        Moments(seed)
    }

    /// A moment in `0..max_ms` milliseconds.
    fn next(&mut self, max_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(self.0 % max_ms)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn story(db: &TestDb) {
    let repo = GitRepo::new();
    repo.write("defs/fan.yaml", DEFS);
    repo.write("defs/plan.yaml", PLAN);
    repo.commit("a fan-out every second");
    let repo_path = repo.path().to_str().expect("utf-8").to_owned();
    // A killed daemon's store lease lapses after a second, so that each
    // restart drives executions (and is killed while doing so) soon.
    let args = [
        "--repo",
        repo_path.as_str(),
        "--path",
        "defs",
        "--lease-duration",
        "1s",
    ];
    let mut moments = Moments::new();

    for _ in 0..KILLS {
        let daemon = Daemon::start(db, &args);
        std::thread::sleep(moments.next(2_500));
        daemon.kill9();
    }

    // Undisturbed: once the daemon has caught up with every instant missed
    // (the last one it created is past its start), remove the schedule, so
    // that no instant falls due any more, and let every execution finish.
    let runtime = runtime();
    let store = runtime
        .block_on(weir::store::open(&db.url()))
        .expect("open the store");
    let filter = ExecutionFilter {
        launch_plan: Some("every-second".to_owned()),
        limit: Some(100_000),
        ..ExecutionFilter::default()
    };
    let restarted = Utc::now();
    let log_dir = tempfile::tempdir().expect("tempdir");
    let log_path = log_dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let daemon = Daemon::start_logged(db, &args, &[], log);
    // Each phase's time is printed, so that a slow run shows where it was slow.
    let phase = |what: &str| {
        let ms = (Utc::now() - restarted).num_milliseconds();
        eprintln!(
            "crash suite: {what} {:.1} s after the undisturbed start",
            ms as f64 / 1000.0
        );
    };
    phase("undisturbed daemon ready");
    eventually("the schedule has caught up", || {
        let all = runtime
            .block_on(store.executions(&filter))
            .expect("executions");
        all.iter()
            .any(|e| e.scheduled_at.is_some_and(|at| at > restarted))
    });
    phase("caught up");
    repo.remove("defs/plan.yaml");
    let removed = repo.commit("stop the schedule");
    // Once the removal is reconciled, no tick creates an instant any more.
    eventually("the schedule's removal is reconciled", || {
        let sources = runtime.block_on(store.sources()).expect("sources");
        sources
            .iter()
            .any(|s| s.last_reconciled.as_ref().is_some_and(|c| c.0 == removed))
    });
    phase("removal reconciled");
    // A generous bound, only against a hang (idle, this phase takes about a
    // second; under a load average of 9 it once took two minutes, which is
    // not understood yet: see the phase times above); when it is reached,
    // what is stuck and where is printed, with the daemon's log.
    let unfinished = || -> Vec<weir::store::execution::Execution> {
        let all = runtime
            .block_on(store.executions(&filter))
            .expect("executions");
        all.into_iter()
            .filter(|e| !e.status.is_terminal())
            .collect()
    };
    eventually_within(
        "every execution has finished",
        Duration::from_secs(300),
        || unfinished().is_empty(),
        || {
            let stuck: Vec<String> = unfinished()
                .iter()
                .map(|e| {
                    let nodes = runtime.block_on(store.nodes(&e.id)).expect("nodes");
                    let nodes: Vec<String> = nodes
                        .iter()
                        .map(|n| {
                            format!(
                                "{} {:?} attempts={} next={:?} handle={:?} error={:?}",
                                n.node, n.status, n.attempts, n.next_attempt_at, n.handle, n.error
                            )
                        })
                        .collect();
                    format!("{} {} at {:?}: {nodes:#?}", e.id, e.status, e.scheduled_at)
                })
                .collect();
            format!(
                "never finished:\n{}\n--- daemon log ---\n{}",
                stuck.join("\n"),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            )
        },
    );
    phase("every execution finished");
    daemon.stop();
    phase("daemon stopped");

    let executions = runtime
        .block_on(store.executions(&filter))
        .expect("executions");
    // I4: one execution per instant, none missing from the first to the last.
    let mut by_instant: BTreeMap<DateTime<Utc>, Vec<weir::spec::ExecutionId>> = BTreeMap::new();
    for execution in &executions {
        let at = execution
            .scheduled_at
            .unwrap_or_else(|| panic!("{} has no instant", execution.id));
        by_instant.entry(at).or_default().push(execution.id.clone());
    }
    let twice: Vec<_> = by_instant.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "instants run twice: {twice:?}");
    let instants: Vec<DateTime<Utc>> = by_instant.keys().copied().collect();
    assert!(
        instants[instants.len() - 1] > restarted,
        "the schedule ran up to the undisturbed start ({restarted}): {instants:?}"
    );
    let missing: Vec<DateTime<Utc>> = instants
        .windows(2)
        .flat_map(|w| {
            let mut gap = Vec::new();
            let mut at = w[0] + chrono::TimeDelta::seconds(1);
            while at < w[1] {
                gap.push(at);
                at += chrono::TimeDelta::seconds(1);
            }
            gap
        })
        .collect();
    assert!(
        missing.is_empty(),
        "instants missing between {} and {}: {missing:?}",
        instants[0],
        instants[instants.len() - 1]
    );

    // Nothing stuck, nothing failed: these tasks cannot fail. The one
    // failure allowed is the documented bound on interruptions (DESIGN.md
    // section 6: an attempt whose process keeps dying with its engine is
    // retried at most 3 times): a node killed with the daemon 4 times in a
    // row, which a few short-lived restarts in a row can do. It must be
    // exactly that: the node's handle counts 4 interruptions.
    let mut capped = 0;
    let mut unfinished: Vec<(&str, String)> = Vec::new();
    for execution in executions
        .iter()
        .filter(|e| e.status != weir::store::Status::Succeeded)
    {
        let nodes = runtime.block_on(store.nodes(&execution.id)).expect("nodes");
        let interrupted_out = nodes.iter().any(|n| {
            n.status == NodeStatus::Failed
                && n.error.as_deref()
                    == Some("interrupted 4 times: the processes running it kept stopping")
                && weir::engine::NodeHandle::read(n).interruptions == 4
        });
        if execution.status == weir::store::Status::Failed && interrupted_out {
            capped += 1;
        } else {
            unfinished.push((
                execution.id.as_str(),
                format!("{} {:?}", execution.status, execution.error),
            ));
        }
    }
    assert!(
        unfinished.is_empty(),
        "executions that did not succeed: {unfinished:?}"
    );
    if capped > 0 {
        eprintln!("crash suite: {capped} execution(s) failed by the interruption bound");
    }

    // I5: every succeeded node has its outputs and their lineage edges.
    let mut incomplete = Vec::new();
    for execution in &executions {
        let nodes = runtime.block_on(store.nodes(&execution.id)).expect("nodes");
        let edges = runtime
            .block_on(store.lineage_of_execution(&execution.id))
            .expect("lineage");
        let recorded: HashSet<(String, Direction, String)> = edges
            .iter()
            .map(|e| (e.node.clone(), e.direction, e.name.clone()))
            .collect();
        for node in nodes.iter().filter(|n| n.status == NodeStatus::Succeeded) {
            let ports = |values: &Option<Value>| -> Vec<String> {
                values
                    .as_ref()
                    .and_then(Value::as_object)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default()
            };
            let outputs = ports(&node.outputs);
            if outputs.is_empty() {
                incomplete.push(format!("{}/{}: no outputs", execution.id, node.node));
            }
            for (direction, names) in [
                (Direction::Input, ports(&node.inputs)),
                (Direction::Output, outputs),
            ] {
                for name in names {
                    if !recorded.contains(&(node.node.clone(), direction, name.clone())) {
                        incomplete.push(format!(
                            "{}/{}: no lineage for {direction:?} {name}",
                            execution.id, node.node
                        ));
                    }
                }
            }
        }
    }
    assert!(
        incomplete.is_empty(),
        "{} of {} executions' nodes lack outputs or lineage: {incomplete:#?}",
        incomplete.len(),
        executions.len()
    );
    eprintln!(
        "crash suite: {} instants from {} to {}, every one run once and complete",
        instants.len(),
        instants[0],
        instants[instants.len() - 1]
    );
}

#[test]
fn kill_9_twenty_times_loses_and_duplicates_nothing_on_sqlite() {
    story(&TestDb::sqlite());
}

#[test]
fn kill_9_twenty_times_loses_and_duplicates_nothing_on_postgres() {
    if let Some(db) = TestDb::postgres() {
        story(&db);
    }
}
