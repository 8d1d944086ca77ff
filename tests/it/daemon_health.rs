//! `weir serve` keeps running, and says so truthfully, when parts of its
//! world fail (issue 13, items 1 and 7): a definition whose durations no
//! calendar holds is refused at validation, and a source that cannot be
//! cloned is retried and shown while the other sources, the scheduler and
//! the engine run on.

use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::common::{
    Daemon, GitRepo, TestDb, eventually, every_second, free_addr, http, weir_json,
};

const FLAKY: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: flaky }
spec:
  script: { interpreter: bash, source: "exit 1" }
  retries: { attempts: 1, backoff: 100000000d }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: flaky-flow }
spec:
  nodes: [ { id: try, task: flaky } ]
"#;

#[test]
fn a_retry_backoff_beyond_the_calendar_is_refused_at_validation() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/flaky.yaml", FLAKY);
    repo.commit("Retry after 274,000 years");
    let repo_path = repo.path().to_str().expect("utf-8").to_owned();
    let daemon = Daemon::start(&db, &["--repo", &repo_path, "--path", "defs"]);

    // The head was refused (a completed pass: ready), with the W-code at
    // the line of the backoff.
    let (_, status) = weir_json(&["status", "-o", "json"], &db);
    let text = status.to_string();
    assert!(text.contains("W035"), "{status:#}");
    assert!(text.contains("exceeds the maximum of 7d"), "{status:#}");
    let (_, versions) = weir_json(&["versions", "-o", "json"], &db);
    assert_eq!(versions, Value::Array(Vec::new()), "nothing registered");
    assert_eq!(http(&daemon.addr, "GET", "/healthz", &[], b"").0, 200);
    daemon.stop();
}

const LATER: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: later, project: remote }
spec:
  script: { interpreter: bash, source: "true" }
"#;

/// `weir serve --config` with the daemon's own weir.toml; killed on drop.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sources(db: &TestDb) -> Vec<Value> {
    let (_, status) = weir_json(&["status", "-o", "json"], db);
    match status.get("sources") {
        Some(Value::Array(list)) => list.clone(),
        _ => status.as_array().cloned().unwrap_or_default(),
    }
}

#[test]
fn a_source_that_cannot_be_cloned_is_retried_while_the_others_run() {
    let db = TestDb::sqlite();
    let TestDb::Sqlite(state) = &db else {
        unreachable!("a SQLite store")
    };
    let local = GitRepo::new();
    local.write("defs/flow.yaml", &every_second("true", "none"));
    local.commit("A schedule every second");
    // The remote does not exist yet: cloning it fails until it does.
    let remotes = tempfile::tempdir().expect("tempdir");
    let remote_path = remotes.path().join("later.git");
    let remote_url = format!("file://{}", remote_path.display());
    let addr = free_addr();
    let config = state.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{state}"
listen = "{addr}"
tick = "200ms"

[[sources]]
repo = "{remote_url}"
branch = "main"
project = "remote"
interval = "1s"

[[sources]]
repo = "{local}"
path = "defs"
interval = "60s"
"#,
            state = state.path().display(),
            local = local.path().display(),
        ),
    )
    .expect("write weir.toml");
    let child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("WEIR_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir serve starts");
    let served = Served { child, addr };

    // Ready: every source completed a pass, the failing one included, and
    // /readyz says which failed and why.
    eventually("/readyz answers 200", || {
        http(&served.addr, "GET", "/readyz", &[], b"").0 == 200
    });
    let (_, body) = http(&served.addr, "GET", "/readyz", &[], b"");
    let readyz: Value = serde_json::from_str(&body).expect("JSON");
    let failing = readyz["failing"].as_array().expect("failing");
    assert_eq!(failing.len(), 1, "{readyz:#}");
    assert!(
        failing[0]["source"]
            .as_str()
            .expect("source")
            .contains("later.git"),
        "{readyz:#}"
    );

    // The good source's schedule runs.
    eventually("the local schedule ran", || {
        let (_, list) = weir_json(
            &["executions", "--launch-plan", "every-second", "-o", "json"],
            &db,
        );
        list.as_array()
            .is_some_and(|l| l.iter().any(|e| e["status"] == "succeeded"))
    });

    // Status names the failing source with its error.
    let shown = sources(&db);
    let remote = shown
        .iter()
        .find(|s| s.to_string().contains("later.git"))
        .unwrap_or_else(|| panic!("the failing source in status: {shown:#?}"));
    assert!(remote.to_string().contains("FetchFailed"), "{remote:#}");
    let (_, metrics) = http(&served.addr, "GET", "/metrics", &[], b"");
    assert!(
        metrics.contains("weir_reconcile_errors_total{") && metrics.contains("FetchFailed"),
        "{metrics}"
    );

    // The remote appears: it is cloned and reconciled without a restart.
    let upstream = GitRepo::new();
    upstream.write("later.yaml", LATER);
    upstream.commit("A task in the remote");
    let status = Command::new("git")
        .args(["clone", "--bare", "-q"])
        .arg(upstream.path())
        .arg(&remote_path)
        .status()
        .expect("git clone");
    assert!(status.success());
    eventually("the remote's task is active", || {
        let (_, versions) = weir_json(&["versions", "--name", "later", "-o", "json"], &db);
        versions[0]["active"] == true
    });
    let (_, body) = http(&served.addr, "GET", "/readyz", &[], b"");
    let readyz: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(readyz["failing"], Value::Array(Vec::new()), "{readyz:#}");
}
