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
