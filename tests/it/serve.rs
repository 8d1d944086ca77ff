//! `weir serve` end to end: the real binary on a temporary repository,
//! spoken to over real HTTP.

use serde_json::Value;

use crate::common::{Daemon, GitRepo, TestDb, eventually, http, weir_json};

const FLOW: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: tick }
spec:
  inputs: { at: { type: datetime } }
  outputs: { seen: { type: string } }
  script:
    interpreter: bash
    source: |
      sleep 3
      echo "{\"seen\": \"$WEIR_INPUT_AT\"}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: tick-flow }
spec:
  inputs: { at: { type: datetime } }
  nodes: [ { id: tick, task: tick, inputs: { at: "{{ inputs.at }}" } } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: every-2s }
spec:
  workflow: tick-flow
  schedule: { every: 2s, kickoffTimeInput: at, catchUp: all }
"#;

fn executions(db: &TestDb) -> Vec<Value> {
    let (_, list) = weir_json(
        &["executions", "--launch-plan", "every-2s", "-o", "json"],
        db,
    );
    list.as_array().cloned().unwrap_or_default()
}

#[test]
fn serve_reconciles_commits_schedules_and_survives_kill_9() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/flow.yaml", FLOW);
    repo.commit("A two-second schedule");
    let repo_path = repo.path().to_str().expect("utf-8").to_owned();
    let daemon = Daemon::start(
        &db,
        &["--repo", &repo_path, "--path", "defs", "--interval", "60s"],
    );

    // Ready means reconciled: the launch plan is active.
    let (_, versions) = weir_json(&["versions", "--name", "every-2s", "-o", "json"], &db);
    assert_eq!(versions[0]["active"], true, "{versions:#}");

    // A commit is picked up by watching the refs (the poll is a minute).
    repo.write(
        "defs/flow.yaml",
        &FLOW.replace("echo \"{", "echo >&2 tick; echo \"{"),
    );
    let head = repo.commit("Log each tick");
    eventually("the new commit is reconciled", || {
        let (_, sources) = weir_json(&["status", "-o", "json"], &db);
        sources.to_string().contains(&head)
    });

    // The schedule runs every two seconds.
    eventually("three scheduled executions succeeded", || {
        executions(&db)
            .iter()
            .filter(|e| e["status"] == "succeeded")
            .count()
            >= 3
    });
    let (code, metrics) = http(&daemon.addr, "GET", "/metrics", &[], b"");
    assert_eq!(code, 200);
    // Two commits were made: a handful of passes, not a busy loop (a pass
    // reads the repository, and reads are not changes).
    let passes: f64 = metrics
        .lines()
        .find(|l| l.starts_with("weir_reconcile_duration_seconds_count"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the reconcile count");
    assert!(passes <= 6.0, "{passes} reconcile passes for two commits");
    assert!(metrics.contains("weir_executions_total"), "{metrics}");
    assert!(metrics.contains("weir_schedule_lag_seconds"), "{metrics}");

    // kill -9 while executions run, then start again: nothing scheduled
    // runs twice, the interrupted nodes are retried, lineage is complete.
    eventually("an execution is running", || {
        executions(&db).iter().any(|e| e["status"] == "running")
    });
    daemon.kill9();
    let before: Vec<String> = executions(&db)
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    let interrupted: Vec<String> = executions(&db)
        .iter()
        .filter(|e| e["status"] == "running")
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(
        !interrupted.is_empty(),
        "{:#}",
        serde_json::Value::Array(executions(&db))
    );
    let daemon = Daemon::start(
        &db,
        &["--repo", &repo_path, "--path", "defs", "--interval", "60s"],
    );
    eventually("every execution from before the kill succeeded", || {
        let now = executions(&db);
        before.iter().all(|id| {
            now.iter()
                .any(|e| e["id"] == id.as_str() && e["status"] == "succeeded")
        })
    });
    let runs = executions(&db);
    let mut instants: Vec<&str> = runs
        .iter()
        .map(|e| e["scheduledAt"].as_str().expect("scheduled"))
        .collect();
    let count = instants.len();
    instants.sort_unstable();
    instants.dedup();
    assert_eq!(instants.len(), count, "no scheduled instant ran twice (I4)");
    for id in &interrupted {
        let (_, one) = weir_json(&["executions", id, "-o", "json"], &db);
        assert_eq!(
            one["nodes"][0]["attempts"], 2,
            "the interrupted node was retried: {one:#}"
        );
        let (_, lineage) = weir_json(&["lineage", id, "-o", "json"], &db);
        assert_eq!(
            lineage["edges"].as_array().map(Vec::len),
            Some(2),
            "its input and output are in the lineage: {lineage:#}"
        );
    }
    daemon.stop();
    assert!(
        executions(&db).iter().all(|e| e["status"] != "failed"),
        "a graceful stop fails nothing"
    );
}

/// A remote source (a `file://` clone, so nothing watches it): a GitHub
/// push with a bad signature is refused and fetches nothing; a good one is
/// reconciled at once, without waiting for the poll.
#[test]
fn a_signed_webhook_triggers_a_fetch_and_a_bad_one_does_not() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/flow.yaml", FLOW);
    let first = repo.commit("A two-second schedule");
    let secret_dir = tempfile::tempdir().expect("secret");
    let secret_file = secret_dir.path().join("github");
    std::fs::write(&secret_file, "It's a Secret to Everybody\n").expect("write");
    let url = format!("file://{}", repo.path().display());
    let log_path = secret_dir.path().join("daemon.log");
    let daemon = Daemon::start_logged(
        &db,
        &[
            "--repo",
            &url,
            "--path",
            "defs",
            "--interval",
            "10m",
            "--github-webhook-secret-file",
            secret_file.to_str().expect("utf-8"),
        ],
        &[],
        std::fs::File::create(&log_path).expect("a log file"),
    );
    let log = || std::fs::read_to_string(&log_path).expect("the daemon's log");
    // Reconcile passes so far (the poll is ten minutes away, and nothing
    // watches a remote: only a webhook starts one).
    let passes = || reconcile_passes(&daemon);
    let reconciled = |sha: &str| {
        let (_, status) = weir_json(&["status", "-o", "json"], &db);
        status.to_string().contains(sha)
    };
    assert!(reconciled(&first));

    // GitHub's own push example, pointed at this repository and branch.
    let mut payload: Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::common::root().join("tests/fixtures/webhooks/github-push.json"),
        )
        .expect("fixture"),
    )
    .expect("json");
    payload["ref"] = "refs/heads/main".into();
    payload["repository"]["clone_url"] = url.clone().into();
    let body = serde_json::to_vec(&payload).expect("body");
    let sign = |secret: &[u8]| weir::outbound::sign(secret, &body);

    repo.write("defs/flow.yaml", &FLOW.replace("sleep 3", "sleep 1"));
    let second = repo.commit("Shorter ticks");
    let bad = sign(b"not the secret");
    let (code, _) = http(
        &daemon.addr,
        "POST",
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &bad),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert_eq!(code, 401);
    // The handler decides before it answers, and says so in the log: the
    // refusal, and no reconcile requested (the only way a webhook makes
    // the loop fetch).
    let said = log();
    assert!(
        said.contains("GitHub webhook with a bad signature refused"),
        "{said}"
    );
    assert!(
        !said.contains("webhook: reconcile requested"),
        "a refused webhook fetches nothing: {said}"
    );
    assert!(!reconciled(&second));
    let before = passes();

    let good = sign(b"It's a Secret to Everybody");
    let (code, answer) = http(
        &daemon.addr,
        "POST",
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &good),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert_eq!(code, 202, "{answer}");
    eventually("the pushed commit is reconciled", || reconciled(&second));
    eventually("its pass is counted", || passes() > before);
    assert_eq!(passes(), before + 1.0, "one pass, the good webhook's");
    assert_eq!(
        log().matches("webhook: reconcile requested").count(),
        1,
        "{}",
        log()
    );
    daemon.stop();
}

/// With trusted keys, an unsigned head is refused and reported (status,
/// API, metrics) while the last signed commit keeps running; the next
/// signed commit is reconciled.
#[test]
fn an_unsigned_commit_is_refused_when_trusted_keys_are_configured() {
    use crate::signed::{SshKey, commit_signed};

    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    let alice = SshKey::new("alice@example.com");
    let keys_dir = tempfile::tempdir().expect("keys");
    let keys = keys_dir.path().join("allowed_signers");
    std::fs::write(&keys, format!("{}\n", alice.allowed_signer())).expect("write");
    repo.write("defs/flow.yaml", FLOW);
    let signed = commit_signed(&repo, "A two-second schedule", &|t| alice.sign(t));
    let repo_path = repo.path().to_str().expect("utf-8").to_owned();
    let daemon = Daemon::start(
        &db,
        &[
            "--repo",
            &repo_path,
            "--path",
            "defs",
            "--interval",
            "60s",
            "--trusted-keys",
            keys.to_str().expect("utf-8"),
        ],
    );
    let status = || weir_json(&["status", "-o", "json"], &db).1[0].clone();
    assert_eq!(status()["lastReconciledCommit"], signed.as_str());

    repo.write("defs/flow.yaml", &FLOW.replace("sleep 3", "sleep 1"));
    let unsigned = repo.commit("Shorter ticks, unsigned");
    eventually("the unsigned commit is refused", || {
        status()["lastAttemptedCommit"] == unsigned.as_str()
    });
    let s = status();
    assert_eq!(s["lastReconciledCommit"], signed.as_str(), "{s:#}");
    assert_eq!(s["error"]["reason"], "UnsignedCommit", "{s:#}");
    assert!(
        s["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&alice.fingerprint())),
        "the expected key is named: {s:#}"
    );
    let (code, api) = http(&daemon.addr, "GET", "/api/v1/sources", &[], b"");
    assert_eq!(code, 200);
    assert!(api.contains("UnsignedCommit"), "{api}");
    let (_, metrics) = http(&daemon.addr, "GET", "/metrics", &[], b"");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("weir_reconcile_errors_total") && l.contains("UnsignedCommit")),
        "{metrics}"
    );
    // The signed definitions still run: the schedule goes on.
    eventually("a scheduled execution succeeded", || {
        executions(&db).iter().any(|e| e["status"] == "succeeded")
    });

    repo.write("defs/flow.yaml", &FLOW.replace("sleep 3", "sleep 2"));
    let signed_again = commit_signed(&repo, "Signed again", &|t| alice.sign(t));
    eventually("the signed commit is reconciled", || {
        status()["lastReconciledCommit"] == signed_again.as_str()
    });
    assert_eq!(status()["error"], Value::Null);
    daemon.stop();
}

/// Without `WEIR_LOG`, the daemon says at `info` what an operator needs:
/// where it listens, each source's reconciled commit, its schedules. A
/// state that lasts (a refused head, polled again and again) is said once,
/// when it begins, not on every pass.
#[test]
fn the_daemon_says_what_it_does_and_a_lasting_state_once() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("flow.yaml", &FLOW.replace("every: 2s", "every: 1h"));
    let first = repo.commit("An hourly schedule");
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("daemon.log");
    let daemon = Daemon::start_configured(
        &db,
        &[
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--interval",
            "1s",
        ],
        std::fs::File::create(&log_path).expect("a log file"),
        |_| {},
    );
    let log = || std::fs::read_to_string(&log_path).expect("the daemon's log");
    let count = |text: &str| log().lines().filter(|l| l.contains(text)).count();
    eventually(
        "the daemon says it started, what it reconciled and its schedules",
        || {
            let log = log();
            log.contains("weir serve started")
                && log.contains(&daemon.addr)
                && log.contains("source reconciled")
                && log.contains(&first)
                && log.contains("schedules=1")
        },
    );
    assert!(
        !log().contains("DEBUG"),
        "info and above by default:\n{}",
        log()
    );

    let passes = || reconcile_passes(&daemon);
    repo.write("broken.yaml", "kind: Nonsense\n");
    repo.commit("A broken file");
    eventually("the refused head is said", || {
        count("head commit refused") == 1
    });
    let seen = passes();
    eventually("three more passes over the same refused head", || {
        passes() >= seen + 3.0
    });
    assert_eq!(count("head commit refused"), 1, "said once:\n{}", log());
    assert_eq!(count("source reconciled"), 1, "said once:\n{}", log());
    daemon.stop();
}

/// The reconcile passes a daemon has made so far, from its metrics.
fn reconcile_passes(daemon: &Daemon) -> f64 {
    let (_, metrics) = http(&daemon.addr, "GET", "/metrics", &[], b"");
    metrics
        .lines()
        .find(|l| l.starts_with("weir_reconcile_duration_seconds_count"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the reconcile count")
}
