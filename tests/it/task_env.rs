//! Issue 13, items 3 and 4: a task is code from the repository, so it gets
//! a clean environment (never the daemon's credentials), and its inputs are
//! data (never spliced into code).
//!
//! - A daemon holding a database password, an API token, a Git token, a
//!   webhook secret and a Slack URL in its environment runs a task that
//!   prints its environment and fails: none of those values is in the
//!   task's log, in the webhook or Slack message carrying the log's tail,
//!   or in the daemon's own log; what the operator allowed is there.
//! - A hostile input (`"; id > pwned; echo "`) given to `weir run` reaches
//!   a script through `WEIR_INPUT_X` and a container as one argv element,
//!   byte for byte, and runs nowhere; a script that writes a string input
//!   into its source is refused at sync (W036).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::common::{Daemon, GitRepo, TestDb, eventually, http, node, weir_json, weir_with};
use crate::notify::{Behaviour, Receiver};

const DB_PASSWORD: &str = "db-pa55word-s3cret";
const API_TOKEN: &str = "api-t0ken-s3cret";
const GIT_TOKEN: &str = "ghp_git-t0ken-s3cret";
const HOOK_SECRET: &str = "hook-signing-s3cret";
const SLACK_PATH: &str = "/slack/T000/B000/slack-path-s3cret";

fn secrets() -> [&'static str; 5] {
    [
        DB_PASSWORD,
        API_TOKEN,
        GIT_TOKEN,
        HOOK_SECRET,
        "slack-path-s3cret",
    ]
}

fn state_dir(db: &TestDb) -> PathBuf {
    let args = db.args();
    let at = args
        .iter()
        .position(|a| a == "--state-dir")
        .expect("a state dir");
    PathBuf::from(&args[at + 1])
}

fn leaks(text: &str) -> Vec<&'static str> {
    secrets()
        .into_iter()
        .filter(|secret| text.contains(secret))
        .collect()
}

fn print_env_and_fail(fail_url: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: nosy }}
spec:
  script:
    interpreter: bash
    source: |
      env >&2
      exit 1
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: nosy-flow }}
spec:
  nodes: [ {{ id: nosy, task: nosy }} ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: {{ name: nosy-alerts }}
spec:
  workflow: nosy-flow
  notify:
    - on: [failed]
      webhook: {{ url: "{fail_url}", secret: {{ env: ALERTS_SECRET }} }}
    - on: [failed]
      slack: {{ webhookUrl: {{ env: SLACK_URL }} }}
"#
    )
}

#[test]
fn a_failing_task_that_prints_its_environment_reveals_none_of_the_daemon_s_credentials() {
    for db in [Some(TestDb::sqlite()), TestDb::postgres()]
        .into_iter()
        .flatten()
    {
        no_credential_reaches_a_task(&db);
    }
}

fn no_credential_reaches_a_task(db: &TestDb) {
    let behaviour: Arc<Behaviour> = Arc::new(|_: &str, _: usize| Some(200));
    let receiver = Receiver::start(behaviour);
    let repo = GitRepo::new();
    repo.write(
        "defs/nosy.yaml",
        &print_env_and_fail(&receiver.url("/fail")),
    );
    repo.commit("A task that prints its environment");
    let secrets_dir = tempfile::tempdir().expect("tempdir");
    let token_file = secrets_dir.path().join("api");
    std::fs::write(&token_file, format!("{API_TOKEN}\n")).expect("write");
    let log_path = secrets_dir.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).expect("log file");

    // `WEIR_DB` holds a password; `--db` points the daemon at the test store
    // (a flag wins over the variable), so the variable is only a secret in
    // the daemon's environment.
    let mut args = vec![
        "--repo".to_owned(),
        repo.path().display().to_string(),
        "--path".into(),
        "defs".into(),
        "--api-token-file".into(),
        token_file.display().to_string(),
        "--token-env".into(),
        "GIT_TOKEN".into(),
        "--task-env".into(),
        "TEAM_*".into(),
    ];
    if let TestDb::Sqlite(_) = db {
        args.extend(["--db".to_owned(), db.url()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let slack_url = receiver.url(SLACK_PATH);
    let db_url = format!("postgres://weir:{DB_PASSWORD}@127.0.0.1:9/weir");
    let daemon = Daemon::start_logged(
        db,
        &args,
        &[
            ("WEIR_DB", db_url.as_str()),
            ("WEIR_API_TOKEN", API_TOKEN),
            ("GIT_TOKEN", GIT_TOKEN),
            ("ALERTS_SECRET", HOOK_SECRET),
            ("SLACK_URL", slack_url.as_str()),
            ("TEAM_NAME", "forecasting"),
        ],
        log,
    );

    let body = serde_json::json!({ "name": "nosy-alerts" }).to_string();
    let authorization = format!("Bearer {API_TOKEN}");
    let (code, reply) = http(
        &daemon.addr,
        "POST",
        "/api/v1/runs",
        &[
            ("Authorization", authorization.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(code, 201, "{reply}");
    let reply: Value = serde_json::from_str(&reply).expect("json");
    let execution = reply["id"].as_str().expect("id").to_owned();
    eventually("the failure is delivered to the webhook and Slack", || {
        !receiver.requests("/fail").is_empty() && !receiver.requests(SLACK_PATH).is_empty()
    });
    daemon.stop();

    let stderr_log = state_dir(db)
        .join("runs")
        .join(&execution)
        .join("nosy/1/stderr.log");
    let task_log = std::fs::read_to_string(&stderr_log).expect("the task's log");
    assert!(
        task_log.contains("WEIR_OUTPUTS="),
        "the task printed its environment: {task_log}"
    );
    assert!(
        task_log.contains("TEAM_NAME=forecasting"),
        "what the operator allowed is there: {task_log}"
    );
    assert!(task_log.contains("PATH="), "{task_log}");
    assert_eq!(
        leaks(&task_log),
        Vec::<&str>::new(),
        "in the task's log: {task_log}"
    );
    for name in [
        "WEIR_DB",
        "WEIR_API_TOKEN",
        "GIT_TOKEN",
        "ALERTS_SECRET",
        "SLACK_URL",
    ] {
        assert!(
            !task_log.contains(&format!("{name}=")),
            "{name} reached the task: {task_log}"
        );
    }

    let webhook = String::from_utf8_lossy(&receiver.requests("/fail")[0].body).into_owned();
    assert!(
        webhook.contains("WEIR_OUTPUTS="),
        "the log's tail is in the webhook: {webhook}"
    );
    assert_eq!(
        leaks(&webhook),
        Vec::<&str>::new(),
        "in the webhook: {webhook}"
    );
    let slack = String::from_utf8_lossy(&receiver.requests(SLACK_PATH)[0].body).into_owned();
    assert_eq!(
        leaks(&slack),
        Vec::<&str>::new(),
        "in the Slack message: {slack}"
    );

    let daemon_log = std::fs::read_to_string(&log_path).expect("the daemon's log");
    assert!(daemon_log.contains("weir serve started"), "{daemon_log}");
    assert_eq!(
        leaks(&daemon_log),
        Vec::<&str>::new(),
        "in the daemon's log: {daemon_log}"
    );
}

const HOSTILE: &str = r#""; id > pwned; echo ""#;

const ECHO_INPUTS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: echo-env, project: lab }
spec:
  inputs: { x: { type: string }, n: { type: int } }
  outputs: { said: { type: file } }
  script:
    interpreter: bash
    source: |
      printf '%s' "$WEIR_INPUT_X" > "$WEIR_OUTPUTS/said"
      echo "n is {{ inputs.n }}"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: echo-argv, project: lab }
spec:
  inputs: { x: { type: string } }
  outputs: { said: { type: file } }
  container:
    image: alpine:3.20
    command: [/bin/sh, -c, 'printf "<%s>" "$@" > "$WEIR_OUTPUTS/said"', sh]
    args: ["{{ inputs.x }}"]
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: echo, project: lab }
spec:
  inputs: { x: { type: string } }
  nodes:
    - { id: env, task: echo-env, inputs: { x: "{{ inputs.x }}", n: 3 } }
    - { id: argv, task: echo-argv, inputs: { x: "{{ inputs.x }}" } }
"#;

/// The bytes of the file artifact `reference` (`sha256:<hex>`).
fn artifact(state: &Path, reference: &Value) -> String {
    let hex = reference
        .as_str()
        .and_then(|r| r.strip_prefix("sha256:"))
        .unwrap_or_else(|| panic!("not an artifact: {reference}"));
    let (head, tail) = hex.split_at(2);
    std::fs::read_to_string(state.join("artifacts/sha256").join(head).join(tail))
        .expect("the artifact")
}

fn pwned_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "pwned") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_hostile_input_arrives_verbatim_and_runs_nowhere() {
    for db in [Some(TestDb::sqlite()), TestDb::postgres()]
        .into_iter()
        .flatten()
    {
        hostile_input_is_data(&db);
    }
}

fn hostile_input_is_data(db: &TestDb) {
    let repo = GitRepo::new();
    repo.write("defs/echo.yaml", ECHO_INPUTS);
    repo.commit("Tasks that read their inputs as data");
    let repo_path = repo.path().display().to_string();
    let out = weir_with(&["sync", "--repo", &repo_path, "--path", "defs"], db);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let input = format!("x={HOSTILE}");
    let (code, execution) = weir_json(
        &[
            "run",
            "echo",
            "--project",
            "lab",
            "--input",
            &input,
            "--wait",
            "-o",
            "json",
        ],
        db,
    );
    assert_eq!(code, 0, "{execution:#}");
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    let state = state_dir(db);
    let by_env = artifact(&state, &node(&execution, "env")["outputs"]["said"]);
    assert_eq!(
        by_env, HOSTILE,
        "WEIR_INPUT_X carries the value byte for byte"
    );
    let by_argv = artifact(&state, &node(&execution, "argv")["outputs"]["said"]);
    assert_eq!(
        by_argv,
        format!("<{HOSTILE}>"),
        "one argv element, never split by a shell"
    );
    assert_eq!(pwned_under(&state), Vec::<PathBuf>::new());
    assert_eq!(pwned_under(repo.path()), Vec::<PathBuf>::new());

    // The same value written into a script's source is refused before it
    // could ever run: the commit changes nothing (I3).
    repo.write(
        "defs/splice.yaml",
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: splice, project: lab }
spec:
  inputs: { x: { type: string } }
  script: { interpreter: bash, source: "echo \"{{ inputs.x }}\"" }
"#,
    );
    repo.commit("A task that splices an input into its source");
    let out = weir_with(&["sync", "--repo", &repo_path, "--path", "defs"], db);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("W036"), "{said}");
    assert!(
        said.contains("$WEIR_INPUT_X"),
        "the help shows the environment form: {said}"
    );
}
