//! The commands that do more than read, against a running daemon: `weir
//! logs --follow`, `run`, `cancel` and `backfill` with `--server URL`
//! print what they print against the store (the daemon's engine drives
//! the executions either way), `logs --follow --server` streams a running
//! node's lines as they are written and ends with the node, and the API
//! token is needed.
//!
//! One daemon serves the whole story; its schedule is yearly and catches
//! nothing up, so only what the test starts runs.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    Daemon, GitRepo, TestDb, assert_same_both_ways, eventually, stderr, stdout, weir, weir_json,
    weir_with,
};

const DEFINITIONS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: gate }
spec:
  inputs: { gate: { type: string } }
  script:
    interpreter: bash
    source: |
      echo "before the gate"
      while [ ! -e "$WEIR_INPUT_GATE" ]; do sleep 0.05; done
      echo "after the gate"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: gated }
spec:
  inputs: { gate: { type: string, default: /never } }
  nodes: [ { id: wait, task: gate, inputs: { gate: "{{ inputs.gate }}" } } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: gated-adhoc }
spec: { workflow: gated }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: hello }
spec:
  script: { interpreter: bash, source: 'echo hello' }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: greet }
spec:
  nodes: [ { id: hello, task: hello } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: greet-adhoc }
spec: { workflow: greet }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: yearly }
spec:
  workflow: greet
  schedule: { cron: "0 0 1 1 *", timezone: Europe/Berlin, catchUp: none }
"#;

const TOKEN: &str = "s3cret-api-token";

/// A daemon over `db` following the definitions, with an API token; the
/// flags that reach it with that token; and what must live as long.
struct Story {
    db: TestDb,
    daemon: Daemon,
    token_file: String,
    gates: tempfile::TempDir,
    _repo: GitRepo,
    _secrets: tempfile::TempDir,
}

impl Story {
    fn start() -> Story {
        let db = TestDb::sqlite();
        let repo = GitRepo::new();
        repo.write("defs/all.yaml", DEFINITIONS);
        repo.commit("Gated, greeting and yearly runs");
        let secrets = tempfile::tempdir().expect("tempdir");
        let token_file = secrets.path().join("api-token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write the token");
        let token_file = token_file.to_str().expect("utf-8").to_owned();
        let path = repo.path().to_str().expect("utf-8");
        let daemon = Daemon::start(
            &db,
            &[
                "--repo",
                path,
                "--path",
                "defs",
                "--interval",
                "1h",
                "--api-token-file",
                &token_file,
            ],
        );
        Story {
            db,
            daemon,
            token_file,
            gates: tempfile::tempdir().expect("tempdir"),
            _repo: repo,
            _secrets: secrets,
        }
    }

    fn server(&self) -> [&str; 4] {
        [
            "--server",
            &self.daemon.url,
            "--api-token-file",
            &self.token_file,
        ]
    }

    /// `weir ARGS --server …`.
    fn served(&self, args: &[&str]) -> std::process::Output {
        weir(&[args, &self.server()[..]].concat())
    }

    /// A gate file's path (closed until [`Story::open`]).
    fn gate(&self, name: &str) -> String {
        self.gates.path().join(name).display().to_string()
    }

    fn open(&self, gate: &str) {
        std::fs::write(gate, "").expect("open the gate");
    }

    /// Starts `gated-adhoc` through the daemon; its id.
    fn start_gated(&self, gate: &str) -> String {
        let input = format!("gate={gate}");
        let out = self.served(&["run", "gated-adhoc", "--input", &input, "-o", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let started: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        started["id"].as_str().expect("an id").to_owned()
    }

    fn node_status(&self, id: &str, node: &str) -> Value {
        let (_, execution) = weir_json(&["executions", id, "-o", "json"], &self.db);
        crate::common::node(&execution, node)["status"].clone()
    }
}

/// An execution's JSON without what differs between two runs of the
/// same thing: its id, instants, trigger.
fn masked(mut execution: Value) -> Value {
    for key in ["id", "createdAt", "startedAt", "finishedAt", "trigger"] {
        execution[key] = Value::Null;
    }
    for node in execution["nodes"].as_array_mut().into_iter().flatten() {
        for key in ["startedAt", "finishedAt"] {
            node[key] = Value::Null;
        }
    }
    execution
}

#[test]
fn logs_follow_streams_a_running_nodes_lines_through_the_daemon() {
    let story = Story::start();
    let gate = story.gate("follow");
    let id = story.start_gated(&gate);
    eventually("the gated node runs", || {
        story.node_status(&id, "wait") == "running"
    });

    let mut follow = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["logs", &id, "--node", "wait", "--follow"])
        .args(story.server())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir logs --follow starts");
    let (lines, received) = mpsc::channel();
    let reader = BufReader::new(follow.stdout.take().expect("stdout"));
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // The gate is closed: this line can only have come while the node runs.
    let bound = Duration::from_secs(60);
    let first = received.recv_timeout(bound).expect("a line while it runs");
    assert_eq!(first, "[wait stdout] before the gate");
    assert_eq!(story.node_status(&id, "wait"), "running");
    story.open(&gate);
    let mut rest = Vec::new();
    loop {
        match received.recv_timeout(bound) {
            Ok(line) => rest.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the follow did not end: {rest:?}"),
        }
    }
    assert_eq!(rest, ["[wait stdout] after the gate"]);
    let status = follow.wait().expect("weir logs ends with the node");
    assert!(status.success(), "{status:?}");
    assert_eq!(story.node_status(&id, "wait"), "succeeded");

    // Once ended, the same both ways; a follow of what has ended ends.
    let server = story.server();
    for command in [
        vec!["logs", &id],
        vec!["logs", &id, "--follow"],
        vec!["logs", &id, "--node", "wait", "-f"],
    ] {
        assert_same_both_ways(&command, &story.db, &server);
    }
}

#[test]
fn run_cancel_and_backfill_print_the_same_through_the_daemon() {
    let story = Story::start();
    let server = story.server();

    // run: started, with its nodes (the daemon's engine may already have
    // started them by the time either is read, so their state is masked).
    let (code, direct) = weir_json(&["run", "greet-adhoc", "-o", "json"], &story.db);
    assert_eq!(code, 0, "{direct:#}");
    let through = story.served(&["run", "greet-adhoc", "-o", "json"]);
    let through: Value = serde_json::from_slice(&through.stdout).expect("JSON");
    let started = |execution: &Value| {
        let mut execution = masked(execution.clone());
        execution["status"] = Value::Null;
        for node in execution["nodes"].as_array_mut().into_iter().flatten() {
            node["status"] = Value::Null;
            node["attempts"] = Value::Null;
        }
        execution
    };
    assert_eq!(started(&through), started(&direct));
    assert_eq!(through["nodes"][0]["id"], "hello", "{through:#}");
    // ... and, with --wait, waited for, by the daemon's engine either way
    // (from the store, this command hands it over).
    let through = story.served(&["run", "greet-adhoc", "--wait", "-o", "json"]);
    assert_eq!(through.status.code(), Some(0), "{}", stderr(&through));
    let through: Value = serde_json::from_slice(&through.stdout).expect("JSON");
    let (code, direct) = weir_json(&["run", "greet-adhoc", "--wait", "-o", "json"], &story.db);
    assert_eq!(code, 0, "{direct:#}");
    assert_eq!(through["status"], "succeeded", "{through:#}");
    assert_eq!(through["trigger"], "api");
    assert_eq!(masked(through.clone()), masked(direct));
    let id = through["id"].as_str().expect("an id");
    assert_same_both_ways(&["logs", id], &story.db, &server);
    // What does not exist is exit 3 both ways; a bad input exit 2.
    assert_same_both_ways(&["run", "no-such-plan"], &story.db, &server);
    assert_eq!(
        story.served(&["run", "no-such-plan"]).status.code(),
        Some(3)
    );
    let bad = story.served(&["run", "greet-adhoc", "--input", "novalue"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));

    // cancel: asks the daemon's engine, and with --wait sees it end.
    let cancelled: Vec<String> = ["through", "direct"]
        .iter()
        .map(|way| {
            let id = story.start_gated(&story.gate(&format!("never-{way}")));
            eventually("the gated node runs", || {
                story.node_status(&id, "wait") == "running"
            });
            let out = match *way {
                "through" => story.served(&["cancel", &id, "--wait"]),
                _ => weir_with(&["cancel", &id, "--wait"], &story.db),
            };
            assert_eq!(out.status.code(), Some(0), "{way}: {}", stderr(&out));
            assert_eq!(story.node_status(&id, "wait"), "cancelled");
            stdout(&out).replace(&id, "ID")
        })
        .collect();
    assert_eq!(cancelled[0], cancelled[1]);
    assert!(
        cancelled[0].starts_with("cancelling ID: asked engine ")
            && cancelled[0].ends_with(", which drives this store\nID cancelled\n"),
        "{}",
        cancelled[0]
    );
    // -o json: one object, whom it asked and how the execution ended.
    let gated = story.start_gated(&story.gate("never-json"));
    eventually("the gated node runs", || {
        story.node_status(&gated, "wait") == "running"
    });
    let out = story.served(&["cancel", &gated, "--wait", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["id"], gated.as_str(), "{json:#}");
    assert_eq!(json["status"], "running", "{json:#}");
    assert!(json["engine"].is_string(), "{json:#}");
    assert_eq!(json["ended"], "cancelled", "{json:#}");
    // Ended, or not there: the same refusal both ways (1, 3).
    let ended = assert_same_both_ways(&["cancel", id], &story.db, &server);
    assert_eq!(ended.status.code(), Some(1), "{}", stderr(&ended));
    let missing = assert_same_both_ways(&["cancel", "no-such-execution"], &story.db, &server);
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));

    // backfill: the same dry run, then made through the daemon and found
    // made from the store, then waited for.
    let range = [
        "backfill",
        "yearly",
        "--from",
        "2020-01-01",
        "--to",
        "2023-01-01",
    ];
    let dry: Vec<&str> = [&range[..], &["--dry-run"]].concat();
    assert_same_both_ways(&dry, &story.db, &server);
    let dry_json = [&dry[..], &["-o", "json"]].concat();
    let planned = stdout(&assert_same_both_ways(&dry_json, &story.db, &server));
    let planned: Value = serde_json::from_str(&planned).expect("JSON");
    assert_eq!(planned["entries"].as_array().map(Vec::len), Some(3));
    assert_eq!(planned["entries"][0]["instant"], "2019-12-31T23:00:00.000Z");
    let made = story.served(&[&range[..], &["-o", "json"]].concat());
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    let made: Value = serde_json::from_slice(&made.stdout).expect("JSON");
    assert!(
        made["entries"]
            .as_array()
            .is_some_and(|e| e.iter().all(|e| e["status"] == "created")),
        "{made:#}"
    );
    let waited = [&range[..], &["--wait"]].concat();
    let through = story.served(&waited);
    let direct = weir_with(&waited, &story.db);
    assert_eq!(through.status.code(), Some(0), "{}", stderr(&through));
    assert_eq!(direct.status.code(), Some(0), "{}", stderr(&direct));
    assert_eq!(stdout(&through), stdout(&direct));
    assert!(stdout(&through).contains("3 instants, 0 created, 3 existed"));
    // All ended: nothing changes between the two readings.
    assert_same_both_ways(&range, &story.db, &server);
    let unknown = [
        "backfill",
        "nope",
        "--from",
        "2020-01-01",
        "--to",
        "2021-01-01",
    ];
    let unknown = assert_same_both_ways(&unknown, &story.db, &server);
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));
}

#[test]
fn the_api_token_file_is_needed_and_a_wrong_one_refused() {
    let story = Story::start();
    let wrong = story.gates.path().join("wrong-token");
    std::fs::write(&wrong, "a-guess\n").expect("write");
    let wrong = wrong.to_str().expect("utf-8");
    let url = story.daemon.url.as_str();
    for command in [
        &["run", "greet-adhoc"][..],
        &["cancel", "x"],
        &["logs", "x"],
        &["audit"],
        &["diff", "x"],
        &[
            "backfill",
            "yearly",
            "--from",
            "2020-01-01",
            "--to",
            "2021-01-01",
        ],
    ] {
        let right = story.served(command);
        assert_ne!(
            right.status.code(),
            Some(2),
            "{command:?}: {}",
            stderr(&right)
        );
        let args = [command, &["--server", url, "--api-token-file", wrong][..]].concat();
        let out = weir(&args);
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        assert!(
            stderr(&out).starts_with(&format!(
                "error: the weir server at {url} refused the request: the API token is missing or wrong\n"
            )),
            "{command:?}: {}",
            stderr(&out)
        );
    }
}

/// `executions ID --watch` follows an execution until it ends and exits
/// with its outcome (as `argocd app wait`), through the daemon or the
/// store alike; each node's start and duration are in its table.
#[test]
fn executions_watch_follows_a_run_to_its_end_and_exits_with_its_status() {
    let story = Story::start();
    let gate = story.gate("watched");
    let id = story.start_gated(&gate);
    let mut watching = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["executions", &id, "--watch"])
        .args(story.server())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir executions --watch starts");
    eventually("the node runs", || {
        story.node_status(&id, "wait") == "running"
    });
    assert!(
        watching.try_wait().expect("wait").is_none(),
        "still watching while it runs"
    );
    story.open(&gate);
    let out = watching.wait_with_output().expect("it ends");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("STARTED (UTC)") && text.contains("DURATION"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .lines()
            .any(|l| l.contains("wait") && l.contains("succeeded")),
        "{text}"
    );

    // A run that is cancelled: the watch says so by its exit status.
    let never = story.start_gated(&story.gate("never"));
    let cancelled = story.served(&["cancel", &never]);
    assert_eq!(cancelled.status.code(), Some(0), "{}", stderr(&cancelled));
    let (code, _) = weir_json(&["executions", &never, "--watch", "-o", "json"], &story.db);
    assert_eq!(code, 1, "a cancelled run is not a success");
    let missing = weir_with(&["executions", "no-such-run", "--watch"], &story.db);
    assert_eq!(missing.status.code(), Some(3));
}
