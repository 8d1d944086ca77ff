//! The CLI's conventions (issue 18): `weir completions SHELL` is a script
//! the shell itself accepts, completing every command and its flags; a
//! command whose reader has gone ends quietly.

use crate::common::weir;

#[test]
fn bash_loads_the_completion_script_and_it_knows_every_command() {
    let out = weir(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let script = String::from_utf8(out.stdout).expect("utf-8");
    for word in [
        "executions",
        "backfill",
        "lineage",
        "--launch-plan",
        "--output",
    ] {
        assert!(script.contains(word), "`{word}` is not completed");
    }
    // Bash itself loads it and registers the completion.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("weir.bash");
    std::fs::write(&path, &script).expect("write");
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p weir", path.display()))
        .output()
        .expect("bash runs");
    assert!(
        loaded.status.success() && String::from_utf8_lossy(&loaded.stdout).contains("_weir"),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
}

#[test]
fn an_unknown_shell_is_refused_with_the_ones_there_are() {
    let out = weir(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("possible values: bash, elvish, fish, powershell, zsh"),
        "{error}"
    );
}

/// `weir … | head -1`: once the reader has gone, the command ends by
/// SIGPIPE as Unix tools do, printing nothing (it panicked with exit 101).
#[test]
fn a_command_whose_reader_has_gone_ends_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    for args in [&["schema"][..], &["completions", "zsh"]] {
        // The reader is gone before weir starts: its first write fails.
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .stdout(writer)
            .output()
            .expect("weir runs");
        assert_eq!(out.status.signal(), Some(13), "{args:?}: {:?}", out.status);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every command that prints takes `-o table|json`; the names some of them
/// used before (`text`, `human`) still read.
#[test]
fn every_printing_command_takes_table_or_json_and_the_old_names_still_read() {
    for command in [
        "run",
        "versions",
        "launchplans",
        "pause",
        "resume",
        "approve",
        "executions",
        "diff",
        "lineage",
        "status",
        "audit",
        "backfill",
        "validate",
        "sync",
        "plan",
    ] {
        let out = crate::common::weir(&[command, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("[default: table]") && help.contains("table") && help.contains("json"),
            "`weir {command} --help`:\n{help}"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.yaml"), "kind: Nope\n").expect("write");
    let path = dir.path().to_str().expect("utf-8");
    let table = crate::common::weir(&["validate", path, "-o", "table"]);
    for old in ["human", "text"] {
        let same = crate::common::weir(&["validate", path, "-o", old]);
        assert_eq!(same.stdout, table.stdout, "-o {old}");
        assert_eq!(same.status.code(), table.status.code());
    }
}

/// A command that reads a store, run where there is none (the wrong
/// folder), says so and exits 2, creating nothing: it used to create an
/// empty `.weir/weir.db` and answer from it.
#[test]
fn a_read_without_a_store_says_so_and_creates_none() {
    let folder = tempfile::tempdir().expect("tempdir");
    for command in [
        &["versions"][..],
        &["launchplans"],
        &["pause", "some-plan"],
        &["resume", "some-plan"],
        &["approve", "some-id", "some-node"],
        &["status"],
        &["audit"],
        &["executions"],
        &["executions", "some-id"],
        &["logs", "some-id"],
        &["cancel", "some-id"],
        &["diff", "some-id"],
        &["lineage", "some-id"],
        &["rollback", "some-task"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(command)
            .current_dir(folder.path())
            .env_remove("WEIR_STATE_DIR")
            .env_remove("WEIR_DB")
            .env_remove("WEIR_SERVER")
            .output()
            .expect("weir runs");
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: no weir store at `.weir/weir.db`\n  = help: run `weir sync` or `weir serve` here first to create it, or point at one with --state-dir, --db or --server\n",
            "{command:?}"
        );
        assert!(out.stdout.is_empty(), "{command:?}");
        assert!(
            !folder.path().join(".weir").exists(),
            "{command:?} created a state directory"
        );
    }
    // The same for a SQLite file named with --db that is not there.
    let missing = folder.path().join("elsewhere").join("weir.db");
    let url = format!("sqlite://{}", missing.display());
    for command in [&["versions"][..], &["executions"], &["status"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(command)
            .args(["--db", &url])
            .current_dir(folder.path())
            .env_remove("WEIR_SERVER")
            .output()
            .expect("weir runs");
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "error: no weir store at `{}`\n  = help: run `weir sync` or `weir serve` here first to create it, or point at one with --state-dir, --db or --server\n",
                missing.display()
            ),
            "{command:?}"
        );
        assert!(
            !missing.exists(),
            "{command:?} created {}",
            missing.display()
        );
        assert!(
            !missing.parent().expect("a folder").exists(),
            "{command:?} made its folder"
        );
    }
}

/// The pipeline of `server_cli.rs`, and a yearly launch plan to backfill.
const YEARLY: &str = r#"
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: yearly }
spec:
  workflow: pipeline
  schedule: { cron: "0 0 1 1 *", timezone: Europe/Berlin, catchUp: none }
"#;

/// Every time in every command's `-o json` is RFC 3339 in UTC with
/// milliseconds (`2026-12-04T05:12:03.120Z`), whatever the command.
#[test]
fn every_json_time_is_rfc3339_utc_with_milliseconds() {
    use crate::common::{GitRepo, TestDb, weir_json};
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    let definitions = format!("{}{YEARLY}", crate::server_cli::PIPELINE);
    repo.write("defs/pipeline.yaml", &definitions);
    repo.commit("A pipeline");
    let path = repo.path().to_str().expect("utf-8");
    let (code, _) = weir_json(
        &["sync", "--repo", path, "--path", "defs", "-o", "json"],
        &db,
    );
    assert_eq!(code, 0);
    let (code, ran) = weir_json(&["run", "yearly", "--wait", "-o", "json"], &db);
    assert_eq!(code, 0, "{ran:#}");
    let id = ran["id"].as_str().expect("an id").to_owned();
    let range = ["--from", "2020-01-01", "--to", "2022-01-01"];
    let mut documents = vec![("run", ran.clone())];
    for command in [
        vec!["versions"],
        vec!["launchplans"],
        vec!["status"],
        vec!["audit"],
        vec!["executions"],
        vec!["executions", &id],
        vec!["diff", &id, &id],
        vec!["lineage", &id],
        [&["backfill", "yearly", "--dry-run"][..], &range].concat(),
    ] {
        let args: Vec<&str> = command.iter().copied().chain(["-o", "json"]).collect();
        let (code, json) = weir_json(&args, &db);
        assert_eq!(code, 0, "{command:?}: {json:#}");
        documents.push((command[0], json));
    }
    for (command, json) in &documents {
        let mut times = Vec::new();
        collect_times(json, &mut times);
        assert!(!times.is_empty(), "`weir {command} -o json` shows no time");
        for time in times {
            let parsed = chrono::DateTime::parse_from_rfc3339(&time);
            assert!(
                parsed.is_ok()
                    && time.len() == "2026-12-04T05:12:03.120Z".len()
                    && time.ends_with('Z')
                    && time.as_bytes()[19] == b'.',
                "`weir {command} -o json`: {time}"
            );
        }
    }
}

/// The values of the time fields of a document: keys ending in `At`, and
/// `at`, `time`, `since`, `until`, `instant`, `from`, `to`.
fn collect_times(json: &serde_json::Value, out: &mut Vec<String>) {
    match json {
        serde_json::Value::Object(fields) => {
            for (key, value) in fields {
                let timed = key.ends_with("At")
                    || ["at", "time", "since", "until", "instant", "from", "to"]
                        .contains(&key.as_str());
                match value {
                    serde_json::Value::String(text) if timed => out.push(text.clone()),
                    other => collect_times(other, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_times(v, out)),
        _ => {}
    }
}
