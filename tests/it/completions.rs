//! `weir completions SHELL` (issue 18): a script the shell itself accepts,
//! completing every command and its flags.

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
