//! One engine drives a store at a time (the store's engine lease), with
//! real processes: two `weir serve` on one SQLite store drive every
//! execution once between them and none kills the other's attempts; the
//! follower takes over when the leader is killed; a daemon restarted after
//! a kill -9 on the same host takes the dead one's lease over at once;
//! `weir run --wait` and `weir backfill --wait` beside
//! a daemon hands its run to it; an interrupted `weir run --wait` cancels
//! what it drives and stops its tasks; `weir cancel` with no engine left
//! finishes a stuck execution itself.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};

use weir::engine::NodeHandle;
use weir::spec::{ExecutionId, Trigger};
use weir::store::{ENGINE_LEASE, NodeState, Status, Store};

use crate::common::{Daemon, GitRepo, TestDb, eventually, every_second, http, weir, weir_with};

/// A workflow whose only task sleeps until it is stopped.
const SLEEPER: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: nap }
spec:
  script: { interpreter: bash, source: "exec sleep 300" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: sleeper }
spec:
  nodes: [ { id: nap, task: nap } ]
"#;

/// A manual workflow of two quick nodes.
const QUICK: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: quick }
spec:
  script: { interpreter: bash, source: "sleep 0.5" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: quick-flow }
spec:
  nodes:
    - { id: one, task: quick }
    - { id: two, task: quick, after: [one] }
"#;

fn repo_with(text: &str) -> GitRepo {
    let repo = GitRepo::new();
    repo.write("defs/flow.yaml", text);
    repo.commit("Definitions");
    repo
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn store(db: &TestDb) -> std::sync::Arc<dyn Store> {
    block_on(weir::store::open(&db.url())).expect("open the store")
}

fn executions(store: &dyn Store) -> Vec<weir::store::Execution> {
    block_on(store.executions(&Default::default())).expect("executions")
}

fn nodes(store: &dyn Store, id: &ExecutionId) -> Vec<NodeState> {
    block_on(store.nodes(id)).expect("nodes")
}

/// The engines that started the attempts of every node of `store`.
fn owners(store: &dyn Store) -> BTreeSet<String> {
    executions(store)
        .iter()
        .flat_map(|e| nodes(store, &e.id))
        .filter_map(|n| NodeHandle::read(&n).owner)
        .map(|o| o.engine)
        .collect()
}

fn is_leading(daemon: &Daemon) -> bool {
    let (_, metrics) = http(&daemon.addr, "GET", "/metrics", &[], b"");
    metrics.lines().any(|l| l.trim() == "weir_leader 1")
}

fn succeeded(store: &dyn Store) -> usize {
    executions(store)
        .iter()
        .filter(|e| e.status == Status::Succeeded)
        .count()
}

fn assert_none_failed(store: &dyn Store) {
    for e in executions(store) {
        assert!(
            matches!(
                e.status,
                Status::Succeeded | Status::Running | Status::Queued
            ),
            "execution {} {}: {:?} (nodes {:#?})",
            e.id,
            e.status,
            e.error,
            nodes(store, &e.id)
        );
    }
}

#[test]
fn two_daemons_on_one_store_drive_each_execution_once_and_the_follower_takes_over() {
    let db = TestDb::sqlite();
    let repo = repo_with(&every_second("sleep 0.3", "all"));
    let path = repo.path().to_str().expect("utf-8").to_owned();
    let args = [
        "--repo",
        &path,
        "--path",
        "defs",
        "--interval",
        "60s",
        "--lease-duration",
        "2s",
    ];
    let a = Daemon::start(&db, &args);
    let b = Daemon::start(&db, &args);
    let store = store(&db);

    eventually("one daemon leads", || is_leading(&a) || is_leading(&b));
    eventually("six scheduled executions succeeded", || {
        succeeded(store.as_ref()) >= 6
    });
    assert!(is_leading(&a) != is_leading(&b), "exactly one daemon leads");
    assert_none_failed(store.as_ref());
    let drivers = owners(store.as_ref());
    assert_eq!(
        drivers.len(),
        1,
        "one engine drove every attempt: {drivers:?}"
    );

    // The leader dies without a word; the follower takes over once its
    // lease has expired, retries what it left running, and goes on.
    let (leader, follower) = if is_leading(&a) { (a, b) } else { (b, a) };
    leader.kill9();
    eventually("the follower leads", || is_leading(&follower));
    let before = succeeded(store.as_ref());
    eventually("the follower drives new executions to success", || {
        succeeded(store.as_ref()) >= before + 4
    });
    follower.stop();
    assert_none_failed(store.as_ref());
    assert_eq!(
        owners(store.as_ref()).len(),
        2,
        "the follower drove the rest"
    );
    assert_eq!(
        block_on(store.lease(ENGINE_LEASE)).expect("lease"),
        None,
        "a daemon stopping cleanly releases the lease"
    );
}

#[test]
fn a_daemon_restarted_after_kill_9_takes_over_at_once_without_waiting_for_expiry() {
    let db = TestDb::sqlite();
    let repo = repo_with(&every_second("sleep 0.3", "all"));
    let path = repo.path().to_str().expect("utf-8").to_owned();
    // The lease duration is left at its default (15 s).
    let args = ["--repo", &path, "--path", "defs", "--interval", "60s"];
    let first = Daemon::start(&db, &args);
    let store = store(&db);
    eventually("the first daemon drives", || {
        is_leading(&first) && succeeded(store.as_ref()) >= 1
    });
    first.kill9();
    let dead = block_on(store.lease(ENGINE_LEASE))
        .expect("lease")
        .expect("the killed daemon's lease is left behind");

    let second = Daemon::start(&db, &args);
    eventually("the restarted daemon leads", || is_leading(&second));
    let taken = block_on(store.lease(ENGINE_LEASE))
        .expect("lease")
        .expect("held");
    assert_ne!(taken.holder, dead.holder, "a new engine holds it");
    assert!(
        taken.acquired_at < dead.expires_at,
        "taken over before the dead lease expired: {taken:?} after {dead:?}"
    );
    eventually(
        "the restarted daemon drives a scheduled execution before the dead lease's expiry",
        || {
            executions(store.as_ref()).iter().any(|e| {
                let nodes = nodes(store.as_ref(), &e.id);
                e.status == Status::Succeeded
                    && nodes.iter().all(|n| {
                        n.started_at.is_some_and(|at| at < dead.expires_at)
                            && NodeHandle::read(n)
                                .owner
                                .is_some_and(|o| o.engine == taken.holder)
                    })
            })
        },
    );
    let still = block_on(store.lease(ENGINE_LEASE))
        .expect("lease")
        .expect("held");
    assert_eq!(
        (still.holder.as_str(), still.acquired_at),
        (taken.holder.as_str(), taken.acquired_at),
        "held throughout"
    );
    second.stop();
    assert_none_failed(store.as_ref());
}

#[test]
fn run_wait_beside_a_daemon_hands_the_run_to_it() {
    let db = TestDb::sqlite();
    let repo = repo_with(QUICK);
    let path = repo.path().to_str().expect("utf-8").to_owned();
    let daemon = Daemon::start(&db, &["--repo", &path, "--path", "defs"]);
    eventually("the daemon leads", || is_leading(&daemon));

    let out = weir_with(&["run", "quick-flow", "--wait"], &db);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("is handed to it"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"));

    let store = store(&db);
    let run = &executions(store.as_ref())[0];
    assert_eq!(run.status, Status::Succeeded);
    for node in nodes(store.as_ref(), &run.id) {
        assert_eq!(node.attempts, 1, "no attempt killed or retried: {node:?}");
    }
    assert_eq!(owners(store.as_ref()).len(), 1, "the daemon drove it alone");
    daemon.stop();
}

#[test]
fn status_and_readyz_show_which_engine_leads() {
    let db = TestDb::sqlite();
    let repo = repo_with(QUICK);
    let path = repo.path().to_str().expect("utf-8").to_owned();
    let args = ["--repo", &path, "--path", "defs"];
    let leader = Daemon::start(&db, &args);
    eventually("the first daemon leads", || is_leading(&leader));
    let follower = Daemon::start(&db, &args);
    let store = store(&db);
    let lease = block_on(store.lease(ENGINE_LEASE))
        .expect("lease")
        .expect("held");

    // From the store and from a daemon, the same bytes (read again should
    // a renewal fall between the two reads).
    let mut shown = String::new();
    eventually(
        "status shows the same from the store and the server",
        || {
            let local = weir_with(&["status"], &db);
            let served = weir(&["status", "--server", &follower.url]);
            assert!(local.status.success() && served.status.success());
            shown = String::from_utf8_lossy(&local.stdout).into_owned();
            local.stdout == served.stdout
        },
    );
    assert!(
        shown.contains("engine lease: live: this engine drives the store"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("  holder      {}\n", lease.holder)),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "  since       {} (UTC)\n",
            lease
                .acquired_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        "{shown}"
    );

    for (daemon, leading) in [(&leader, true), (&follower, false)] {
        let (code, body) = http(&daemon.addr, "GET", "/readyz", &[], b"");
        assert_eq!(code, 200, "a follower is ready too: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(body["leading"], leading, "{body}");
        assert_eq!(body["leader"], lease.holder.as_str(), "{body}");
    }
    follower.stop();
    leader.stop();
    let out = weir_with(&["status"], &db);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("engine lease: none (no engine drives this store)"),
        "released at a clean stop"
    );
}

/// An hourly plan of a quick task, to backfill.
const HOURLY: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: quick }
spec:
  script: { interpreter: bash, source: "sleep 0.3" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: quick-flow }
spec:
  nodes: [ { id: quick, task: quick } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: hourly }
spec:
  workflow: quick-flow
  schedule: { cron: "0 * * * *" }
"#;

#[test]
fn backfill_wait_beside_a_daemon_hands_its_executions_to_it() {
    let db = TestDb::sqlite();
    let repo = repo_with(HOURLY);
    let path = repo.path().to_str().expect("utf-8").to_owned();
    let daemon = Daemon::start(&db, &["--repo", &path, "--path", "defs"]);
    eventually("the daemon leads", || is_leading(&daemon));

    let out = weir_with(
        &[
            "backfill",
            "hourly",
            "--from",
            "2025-01-01T00:00:00Z",
            "--to",
            "2025-01-01T05:00:00Z",
            "--max-parallel",
            "2",
            "--wait",
        ],
        &db,
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("5 executions are handed to it"), "{stderr}");
    assert!(stdout.contains("5 instants, 5 created"), "{stdout}");

    let store = store(&db);
    let backfilled: Vec<_> = executions(store.as_ref())
        .into_iter()
        .filter(|e| e.trigger == Trigger::Backfill)
        .collect();
    assert_eq!(backfilled.len(), 5);
    let mut drivers = BTreeSet::new();
    for execution in &backfilled {
        assert_eq!(execution.status, Status::Succeeded, "{execution:?}");
        for node in nodes(store.as_ref(), &execution.id) {
            assert_eq!(node.attempts, 1, "no attempt killed or retried: {node:?}");
            drivers.extend(NodeHandle::read(&node).owner.map(|o| o.engine));
        }
    }
    assert_eq!(drivers.len(), 1, "the daemon drove them alone: {drivers:?}");
    daemon.stop();
}

/// `weir run sleeper --wait` on `db`, its output piped.
fn run_sleeper(db: &TestDb, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "sleeper", "--wait"])
        .args(extra)
        .args(db.args())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir run starts")
}

/// The process group of the running `nap` attempt, once it has one.
fn running_group(store: &dyn Store) -> (ExecutionId, u32) {
    let mut found = None;
    eventually("the task runs with a process group", || {
        let Some(e) = executions(store).into_iter().next() else {
            return false;
        };
        let pgid = nodes(store, &e.id)
            .iter()
            .find_map(|n| NodeHandle::read(n).pgid());
        found = pgid.map(|p| (e.id.clone(), p));
        found.is_some()
    });
    found.expect("found")
}

/// Whether any live (not zombie) process is in group `pgid`.
fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn interrupted_run_wait_cancels_and_stops_its_task(signal_name: &str, code: i32) {
    let db = TestDb::sqlite();
    let repo = repo_with(SLEEPER);
    let path = repo.path().to_str().expect("utf-8").to_owned();
    let synced = weir_with(&["sync", "--repo", &path, "--path", "defs"], &db);
    assert!(synced.status.success(), "{synced:?}");
    let run = run_sleeper(&db, &[]);
    let store = store(&db);
    let (id, pgid) = running_group(store.as_ref());
    assert!(group_alive(pgid));

    signal(run.id(), signal_name);
    let out = run.wait_with_output().expect("weir run ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "interrupted (SIG{signal_name}): execution {id} cancelled"
        )),
        "{stderr}"
    );
    let execution = block_on(store.execution(&id))
        .expect("read")
        .expect("exists");
    assert_eq!(execution.status, Status::Cancelled);
    assert_eq!(nodes(store.as_ref(), &id)[0].status.as_str(), "cancelled");
    assert!(!group_alive(pgid), "the task's process group is gone");
    assert_eq!(block_on(store.lease(ENGINE_LEASE)).expect("lease"), None);
}

#[test]
fn ctrl_c_on_run_wait_cancels_the_execution_and_stops_its_task() {
    interrupted_run_wait_cancels_and_stops_its_task("INT", 130);
}

#[test]
fn sigterm_on_run_wait_cancels_the_execution_and_stops_its_task() {
    interrupted_run_wait_cancels_and_stops_its_task("TERM", 143);
}

#[test]
fn cancel_with_no_engine_left_finishes_a_stuck_execution() {
    let db = TestDb::sqlite();
    let repo = repo_with(SLEEPER);
    let path = repo.path().to_str().expect("utf-8").to_owned();
    let synced = weir_with(&["sync", "--repo", &path, "--path", "defs"], &db);
    assert!(synced.status.success(), "{synced:?}");
    // The process driving the run dies without a word: its execution
    // stays running, its task goes on, orphaned.
    let mut run = run_sleeper(&db, &["--lease-duration", "1s"]);
    let store = store(&db);
    let (id, pgid) = running_group(store.as_ref());
    run.kill().expect("SIGKILL");
    let _ = run.wait();
    assert!(group_alive(pgid), "the orphaned task still runs");

    let out = weir_with(&["cancel", id.as_str(), "--wait"], &db);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("{id} cancelled")), "{stdout}");
    let execution = block_on(store.execution(&id))
        .expect("read")
        .expect("exists");
    assert_eq!(execution.status, Status::Cancelled);
    assert_eq!(nodes(store.as_ref(), &id)[0].status.as_str(), "cancelled");
    assert!(!group_alive(pgid), "the orphaned task was stopped");
}

/// A `run --wait` stopped (SIGSTOP, a laptop suspend) past its lease's
/// term, while another engine took the lease, stops driving when it wakes:
/// its task is killed, and recorded interrupted, not failed (the task has
/// no retries), once the run takes its execution back.
#[test]
fn a_run_wait_that_lost_the_lease_stops_its_task_and_retries_it_as_interrupted() {
    let db = TestDb::sqlite();
    let repo = repo_with(SLEEPER);
    let path = repo.path().to_str().expect("utf-8").to_owned();
    let synced = weir_with(&["sync", "--repo", &path, "--path", "defs"], &db);
    assert!(synced.status.success(), "{synced:?}");
    let run = run_sleeper(&db, &["--lease-duration", "1s"]);
    let store = store(&db);
    let (id, pgid) = running_group(store.as_ref());

    stop_while_another_takes_the_lease(&run, store.as_ref());
    signal(run.id(), "CONT");
    eventually("the run stops its task", || !group_alive(pgid));
    let node = &nodes(store.as_ref(), &id)[0];
    assert_eq!(
        node.status.as_str(),
        "running",
        "left to the lease's holder"
    );
    assert_eq!(node.attempts, 1);

    // The run, following, asks for the lease all the while: a busy store
    // is asked again.
    eventually("the other engine releases the lease", || {
        block_on(store.release_lease(ENGINE_LEASE, "elsewhere")).is_ok_and(|released| released)
    });
    let mut last = None;
    let retried = (0..600).any(|_| {
        let node = nodes(store.as_ref(), &id).remove(0);
        let interruptions = NodeHandle::read(&node).interruptions;
        let done = node.attempts == 2 && node.status.as_str() == "running" && interruptions == 1;
        last = Some(node);
        done || {
            // Polling the `weir run` process's progress in the store.
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        }
    });
    if !retried {
        signal(run.id(), "KILL");
        let out = run.wait_with_output().expect("weir run ends");
        panic!(
            "the run never retried it as interrupted: {last:#?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    signal(run.id(), "INT");
    let out = run.wait_with_output().expect("weir run ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lost the engine lease"), "{stderr}");
    assert_eq!(out.status.code(), Some(130), "{stderr}");
}

/// Stops `run` (SIGSTOP) and takes its lease, once expired, as another
/// engine. A process stopped inside a write transaction holds SQLite's
/// write lock until it runs again (nobody can take anything then): such a
/// stop is undone and tried again at another moment.
fn stop_while_another_takes_the_lease(run: &Child, store: &dyn Store) {
    for _ in 0..20 {
        signal(run.id(), "STOP");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            let taken = block_on(store.acquire_lease(
                ENGINE_LEASE,
                "elsewhere",
                chrono::Utc::now(),
                std::time::Duration::from_secs(600),
            ));
            if taken.is_ok_and(|l| l.holder == "elsewhere") {
                return;
            }
            // Until the stopped run's lease expires in the store: the
            // lease's term is real time in another process.
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        signal(run.id(), "CONT");
        // Let the resumed process run a moment before stopping it again.
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    panic!("another engine never took the stopped run's lease");
}

/// A workflow whose only task ignores SIGTERM: cancelling it takes the
/// whole grace.
const STUBBORN: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: stubborn }
spec:
  script: { interpreter: bash, source: "trap '' TERM; while :; do sleep 0.2; done" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: sleeper }
spec:
  nodes: [ { id: nap, task: stubborn } ]
"#;

/// A second Ctrl-C while the cancellation drains (here a task that
/// ignores SIGTERM; with the store down, anything) ends `run --wait` at
/// once, saying what was left undone, and kills its task.
#[test]
fn a_second_ctrl_c_while_cancelling_exits_at_once() {
    let db = TestDb::sqlite();
    let repo = repo_with(STUBBORN);
    let path = repo.path().to_str().expect("utf-8").to_owned();
    let synced = weir_with(&["sync", "--repo", &path, "--path", "defs"], &db);
    assert!(synced.status.success(), "{synced:?}");
    let run = run_sleeper(&db, &[]);
    let store = store(&db);
    let (id, pgid) = running_group(store.as_ref());

    signal(run.id(), "INT");
    eventually("the cancellation is requested", || {
        block_on(store.execution(&id))
            .ok()
            .flatten()
            .is_some_and(|e| e.cancel_requested)
    });
    signal(run.id(), "INT");
    let out = run.wait_with_output().expect("weir run ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted again (SIGINT): stopped at once"),
        "{stderr}"
    );
    eventually("its task is killed", || !group_alive(pgid));
}
