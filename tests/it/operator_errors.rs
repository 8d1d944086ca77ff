//! What an operator sees when something around weir is wrong: a database
//! URL with a password, a database that does not answer, an empty database
//! file, a FIFO among the definitions, a mistyped `--path` on the pull
//! request's gate. Each is said at once, precisely, and never shows a
//! secret.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{GitRepo, weir};

const PASSWORD: &str = "Sup3rS3cretPW";

const TASK: &str = "apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: hello }
spec:
  script: { interpreter: bash, source: echo hello }
";

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Runs weir with `WEIR_DB=url`, stopping it after a generous bound (a
/// daemon that did start would run forever).
fn weir_with_db(args: &[&str], url: &str) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .env("WEIR_DB", url)
        .env("NO_COLOR", "1")
        .env("WEIR_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() && std::time::Instant::now() < deadline {
        // Polling the `weir` process for its exit: its pace, not a decision.
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Item 9 and 14: a PostgreSQL URL with a password, on a port where nothing
/// listens. `status`, `sync` and `serve` each fail at once (no 30 s pool
/// timeout), name the host and port, and never print the password, neither
/// in the URL's user part nor as a `password=` parameter.
#[test]
fn a_database_that_does_not_answer_is_named_at_once_without_its_password() {
    let repo = GitRepo::new();
    repo.write("defs/hello.yaml", TASK);
    repo.commit("hello");
    let state = tempfile::tempdir().expect("tempdir");
    let repo_path = repo.path().to_str().expect("utf-8");
    let state_path = state.path().to_str().expect("utf-8");
    let port = closed_port();
    let urls = [
        format!("postgres://weir:{PASSWORD}@127.0.0.1:{port}/missing"),
        format!("postgres://127.0.0.1:{port}/missing?user=weir&password={PASSWORD}"),
    ];
    let listen = crate::common::free_addr();
    let commands: [&[&str]; 3] = [
        &["status", "--state-dir", state_path],
        &["sync", "--repo", repo_path, "--state-dir", state_path],
        &[
            "serve",
            "--repo",
            repo_path,
            "--state-dir",
            state_path,
            "--listen",
            &listen,
        ],
    ];
    for url in &urls {
        for args in commands {
            let (code, text) = weir_with_db(args, url);
            assert_eq!(code, Some(2), "weir {args:?} with {url}: {text}");
            assert!(
                !text.contains(PASSWORD),
                "weir {args:?} printed the password: {text}"
            );
            assert!(
                text.contains(&format!("127.0.0.1:{port}")),
                "weir {args:?} names the host and port: {text}"
            );
            assert!(
                !text.contains("pool timed out"),
                "weir {args:?} fails on the refusal, not a pool timeout: {text}"
            );
        }
    }
}

/// Item 14: an empty `weir.db` is not a new store: weir refuses it, says
/// what is wrong and what to do, and leaves it alone; where no file exists
/// a command that writes creates the store as before (one that only reads
/// says there is none, issue 18).
#[test]
fn an_empty_database_file_is_refused_not_taken_for_a_new_store() {
    let state = tempfile::tempdir().expect("tempdir");
    let db = state.path().join("weir.db");
    std::fs::write(&db, b"").expect("touch");
    let state_path = state.path().to_str().expect("utf-8");
    let out = weir(&["status", "--state-dir", state_path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("weir.db") && stderr.contains("empty file"),
        "{stderr}"
    );
    assert!(stderr.contains("remove it"), "says what to do: {stderr}");
    assert_eq!(std::fs::metadata(&db).expect("still there").len(), 0);

    std::fs::remove_file(&db).expect("rm");
    let out = weir(&["status", "--state-dir", state_path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!db.exists(), "a read creates no store");
    // `run` writes: it creates the store, then finds no such launch plan.
    let out = weir(&["run", "nope", "--state-dir", state_path]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata(&db).expect("created").len() > 0);
}

/// Item 10: a FIFO named like a definition (or a notebook) is refused with
/// W003 at once, never opened for reading (which would wait forever for a
/// writer), and the rest of the folder validates.
#[test]
fn a_fifo_among_the_definitions_is_refused_and_the_rest_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hello.yaml"), TASK).expect("write");
    for name in ["pipe.yaml", "notebook.ipynb"] {
        let status = Command::new("mkfifo")
            .arg(dir.path().join(name))
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
    }
    std::os::unix::fs::symlink("pipe.yaml", dir.path().join("link.yaml")).expect("symlink");

    let (code, json) = crate::common::validate_json(dir.path());
    assert_eq!(code, 1, "{json:#}");
    let diagnostics = json["diagnostics"].as_array().expect("diagnostics");
    let refused: Vec<(&str, &str)> = diagnostics
        .iter()
        .map(|d| {
            (
                d["file"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default(),
                d["code"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("link.yaml", "W003"),
            ("notebook.ipynb", "W003"),
            ("pipe.yaml", "W003")
        ],
        "{json:#}"
    );
    let message = diagnostics[2]["message"].as_str().expect("message");
    assert!(message.contains("named pipe (FIFO)"), "{message}");
    let entities = json["entities"].as_array().expect("entities");
    assert!(
        entities.iter().any(|e| e["name"] == "hello"),
        "hello.yaml was read: {json:#}"
    );
}

/// Item 13: `weir plan` is the pull request's gate, so a `--path` that does
/// not exist at the head fails (exit 2, naming the path and the commit);
/// missing only at the base it is an empty base, as a pull request that
/// creates the folder has.
#[test]
fn a_mistyped_path_fails_the_plan_and_a_new_folder_plans_from_empty() {
    let repo = GitRepo::new();
    repo.write("README.md", "nothing yet\n");
    let base = repo.commit("empty");
    repo.write("pipelines/hello.yaml", TASK);
    let head = repo.commit("hello");
    let path = repo.path().to_str().expect("utf-8");

    let out = weir(&[
        "plan", "--repo", path, "--base", &base, "--head", &head, "--path", "pipeline",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`pipeline`") && stderr.contains(&head),
        "names the path and the commit: {stderr}"
    );

    let out = weir(&[
        "plan",
        "--repo",
        path,
        "--base",
        &base,
        "--head",
        &head,
        "--path",
        "pipelines",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 added"), "{stdout}");
}

/// Item 14: a value of the wrong type says what was expected, in the
/// field's own terms (a duration, a mapping with `path`, an `.ipynb`),
/// never the validator's generic "not valid under any of the schemas".
#[test]
fn schema_errors_say_what_was_expected() {
    for name in [
        "every-bare-number",
        "notebook-as-a-path",
        "notebook-not-ipynb",
    ] {
        let out = weir(&["validate", &format!("tests/fixtures/messages/{name}.yaml")]);
        assert_eq!(out.status.code(), Some(1));
        let text = crate::common::stdout(&out);
        assert!(!text.contains("anyOf"), "{text}");
        insta::assert_snapshot!(name, text);
    }
}

/// `--help` shows which environment variable an option reads, never its
/// value: a database URL, an artifact store's, an OpenLineage endpoint's or a
/// server's may carry a password or a token.
#[test]
fn help_never_prints_the_value_of_a_credential_bearing_variable() {
    for args in [
        &["status", "--help"][..],
        &["serve", "--help"][..],
        &["run", "--help"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .env("WEIR_DB", format!("postgres://u:{PASSWORD}@db:5432/weir"))
            .env("WEIR_SERVER", format!("http://u:{PASSWORD}@host:7878"))
            .env("WEIR_ARTIFACTS", format!("s3://u:{PASSWORD}@bucket"))
            .env("WEIR_OPENLINEAGE_URL", format!("https://{PASSWORD}@ol"))
            .env("NO_COLOR", "1")
            .output()
            .expect("weir runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("WEIR_DB"),
            "{args:?}: the variable is named: {text}"
        );
        assert!(!text.contains(PASSWORD), "{args:?} shows a secret: {text}");
    }
}

/// `serve --config` takes what tasks inherit from the file's `[tasks] env`:
/// a `--task-env` beside it is refused, naming both, never silently ignored.
#[test]
fn task_env_beside_a_config_file_is_refused_not_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("weir.toml");
    std::fs::write(&config, "[[sources]]\nrepo = \"/nowhere\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--task-env", "AWS_*"])
        .env("NO_COLOR", "1")
        .output()
        .expect("weir runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("--task-env") && said.contains("--config"),
        "{said}"
    );
}
