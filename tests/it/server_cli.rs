//! The CLI against a running daemon: `weir status`, `versions`,
//! `executions`, `lineage`, `audit`, `diff` and `logs` with `--server URL`
//! print, byte for byte, what they print reading the store, in every
//! format, and what is not there exits 3 both ways; a daemon that is down
//! or a missing token is said plainly. (The commands that write through
//! the daemon are `server_writes.rs`'s.)
//!
//! One daemon serves the whole story. Nothing is masked: once the run has
//! finished nothing changes in the store (no schedule, an hour between
//! polls, an unchanged repository), so the two readings see the same data.

use crate::common::{
    Daemon, GitRepo, TestDb, assert_same_both_ways, eventually, free_addr, stderr, stdout, weir,
    weir_env, weir_json,
};

/// Two steps, a file passed between them, and an unscheduled launch plan
/// (`cli_conventions.rs` adds a scheduled one).
pub const PIPELINE: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: make }
spec:
  outputs: { data: { type: file } }
  script: { interpreter: bash, source: 'seq 1 3 > "$WEIR_OUTPUTS/data"; echo made; echo "to stderr" >&2' }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: count }
spec:
  inputs: { data: { type: file } }
  outputs: { lines: { type: int } }
  script:
    interpreter: bash
    source: |
      echo "{\"lines\": $(wc -l < "$WEIR_INPUT_DATA")}" > "$WEIR_OUTPUTS/outputs.json"
      echo "counted"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: pipeline }
spec:
  nodes:
    - { id: make, task: make }
    - { id: count, task: count, inputs: { data: "{{ nodes.make.outputs.data }}" } }
  outputs: { lines: "{{ nodes.count.outputs.lines }}" }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: pipeline-adhoc }
spec: { workflow: pipeline }
"#;

const TOKEN: &str = "s3cret-api-token";

#[test]
fn the_cli_prints_the_same_through_a_daemon_as_from_the_store() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("defs/pipeline.yaml", PIPELINE);
    repo.commit("A two-step pipeline");
    let secrets = tempfile::tempdir().expect("tempdir");
    let token_file = secrets.path().join("api-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write the token");
    let token_file = token_file.to_str().expect("utf-8");
    let daemon = Daemon::start(
        &db,
        &[
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--path",
            "defs",
            "--interval",
            "1h",
            "--api-token-file",
            token_file,
        ],
    );

    // A run queued in the store; the daemon's engine executes it.
    let (code, queued) = weir_json(&["run", "pipeline-adhoc", "-o", "json"], &db);
    assert_eq!(code, 0, "{queued:#}");
    let id = queued["id"].as_str().expect("an execution id").to_owned();
    let mut finished = serde_json::Value::Null;
    eventually("the daemon ran the execution to success", || {
        finished = weir_json(&["executions", &id, "-o", "json"], &db).1;
        finished["status"] == "succeeded"
    });
    // A second run, to diff with the first.
    let (_, again) = weir_json(&["run", "pipeline-adhoc", "-o", "json"], &db);
    let second = again["id"].as_str().expect("an execution id").to_owned();
    eventually("the daemon ran the second execution", || {
        weir_json(&["executions", &second, "-o", "json"], &db).1["status"] == "succeeded"
    });
    let make = finished["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"] == "make"))
        .expect("node `make`");
    let artifact = make["outputs"]["data"]
        .as_str()
        .expect("`make` produced a file")
        .to_owned();

    let server = [
        "--server",
        daemon.url.as_str(),
        "--api-token-file",
        token_file,
    ];
    for command in [
        vec!["status"],
        vec!["versions"],
        vec![
            "versions",
            "--kind",
            "launchplan",
            "--name",
            "pipeline-adhoc",
        ],
        vec!["executions"],
        vec![
            "executions",
            "--launch-plan",
            "pipeline-adhoc",
            "--workflow",
            "pipeline",
            "--status",
            "succeeded",
            "--limit",
            "1",
        ],
        vec!["executions", "--status", "failed"],
        vec!["executions", &id],
        vec!["lineage", &id],
        vec!["lineage", &artifact, "--upstream"],
        vec!["lineage", &artifact, "--downstream"],
        vec!["audit"],
        vec!["audit", "--limit", "1"],
        vec!["diff", &second],
        vec!["diff", &second, &id],
        // What is not there: the same message and exit code (3) both ways.
        vec!["executions", "no-such-execution"],
        vec!["lineage", "no-such-execution"],
        vec!["diff", "no-such-execution"],
        vec!["diff", &id],
    ] {
        assert_same_both_ways(&command, &db, &server);
        let json: Vec<&str> = command.iter().copied().chain(["-o", "json"]).collect();
        assert_same_both_ways(&json, &db, &server);
    }
    for command in [
        vec!["logs", &id],
        vec!["logs", &id, "--node", "count"],
        vec!["logs", &id, "--node", "make", "--follow"],
        vec!["logs", "no-such-execution"],
        vec!["logs", &id, "--node", "no-such-node"],
    ] {
        assert_same_both_ways(&command, &db, &server);
    }
    let logs = stdout(&assert_same_both_ways(&["logs", &id], &db, &server));
    assert_eq!(
        logs,
        "[make stdout] made\n[make stderr] to stderr\n[count stdout] counted\n"
    );
    for missing in [
        &["executions", "no-such-execution"][..],
        &["lineage", "no-such-execution"],
        &["diff", "no-such-execution"],
        &["diff", &id],
        &["logs", "no-such-execution"],
        &["logs", &id, "--node", "no-such-node"],
    ] {
        let out = weir(&[missing, &server[..]].concat());
        assert_eq!(out.status.code(), Some(3), "{missing:?}: {}", stderr(&out));
    }
    // `--token-file`, its name before `--api-token-file`, still reads
    // where it did.
    let old = weir(&[
        "status",
        "--server",
        &daemon.url,
        "--token-file",
        token_file,
    ]);
    assert_eq!(old.status.code(), Some(0), "{}", stderr(&old));
    // The comparison compared something.
    let listed = stdout(&weir(&[&["executions"][..], &server[..]].concat()));
    assert!(listed.contains(&id), "{listed}");

    // The token from the environment works too; none, or a wrong one, is
    // refused with a message that says so.
    let url = daemon.url.as_str();
    let out = weir_env(
        &["status", "--server", url, "-o", "json"],
        &[("WEIR_API_TOKEN", TOKEN)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for env in [&[][..], &[("WEIR_API_TOKEN", "a-guess")][..]] {
        let out = weir_env(&["versions", "--server", url], env);
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        assert!(
            stderr(&out).starts_with(&format!(
                "error: the weir server at {url} refused the request: the API token is missing or wrong\n"
            )),
            "{env:?}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_daemon_that_is_down_is_named_with_its_url() {
    let url = format!("http://{}", free_addr());
    for command in [
        &["status"][..],
        &["versions"],
        &["executions"],
        &["executions", "some-id"],
        &["lineage", "some-id"],
        &["audit"],
        &["diff", "some-id"],
        &["logs", "some-id", "--follow"],
        &["cancel", "some-id"],
        &["run", "some-plan", "--wait"],
        &[
            "backfill",
            "some-plan",
            "--from",
            "2020-01-01",
            "--to",
            "2021-01-01",
        ],
    ] {
        let args: Vec<&str> = command.iter().copied().chain(["--server", &url]).collect();
        let out = weir(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            stderr(&out),
            format!("error: cannot reach the weir server at {url}: connection refused\n"),
            "{args:?}"
        );
    }
}
