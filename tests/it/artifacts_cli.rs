//! `weir artifacts get` (issue 18, item 5): the bytes a task wrote, by an
//! execution's output or by digest, a directory output as a tree, a value
//! output as its JSON; what does not exist exits 3.

use crate::common::{GitRepo, TestDb, node, weir_json, weir_with};

const DEFS: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: write }
spec:
  outputs: { report: { type: file }, parts: { type: directory }, rows: { type: int } }
  script:
    interpreter: bash
    source: |
      printf 'region,total\neu,42\n' > "$WEIR_OUTPUTS/report"
      mkdir -p "$WEIR_OUTPUTS/parts/2026"
      echo one > "$WEIR_OUTPUTS/parts/2026/a.txt"
      echo '{"rows": 1}' > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: reports }
spec:
  nodes: [ { id: write, task: write } ]
"#;

#[test]
fn an_output_comes_out_as_the_task_wrote_it() {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("reports.yaml", DEFS);
    repo.commit("Reports");
    let out = weir_with(
        &["sync", "--repo", repo.path().to_str().expect("utf-8")],
        &db,
    );
    assert_eq!(out.status.code(), Some(0));
    let (code, ran) = weir_json(&["run", "reports", "--wait", "-o", "json"], &db);
    assert_eq!(code, 0, "{ran:#}");
    let id = ran["id"].as_str().expect("an id");

    let get = |args: &[&str]| {
        let mut all = vec!["artifacts", "get"];
        all.extend_from_slice(args);
        weir_with(&all, &db)
    };
    let report = get(&[&format!("{id}/write/report")]);
    assert_eq!(
        report.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert_eq!(report.stdout, b"region,total\neu,42\n");
    let digest = node(&ran, "write")["outputs"]["report"]
        .as_str()
        .expect("a reference")
        .to_owned();
    assert_eq!(get(&[&digest]).stdout, report.stdout, "by digest");
    let bare = digest.trim_start_matches("sha256:");
    assert_eq!(get(&[bare]).stdout, report.stdout, "by its hex");

    let dir = tempfile::tempdir().expect("tempdir");
    let parts = dir.path().join("parts");
    let tree = get(&[
        &format!("{id}/write/parts"),
        "-o",
        parts.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        tree.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&tree.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(parts.join("2026/a.txt")).expect("the tree"),
        "one\n"
    );
    let no_path = get(&[&format!("{id}/write/parts")]);
    assert_eq!(no_path.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_path.stderr).contains("give -o PATH"));

    let rows = get(&[&format!("{id}/write/rows")]);
    assert_eq!(
        String::from_utf8_lossy(&rows.stdout).trim(),
        "1",
        "a value as JSON"
    );

    for missing in [
        format!("{id}/write/nope"),
        format!("{id}/nope/report"),
        "no-such-execution/write/report".to_owned(),
        format!("sha256:{}", "0".repeat(64)),
    ] {
        let out = get(&[&missing]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{missing}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// With `--server`, the daemon resolves the output and sends the bytes
/// out of its own artifact store: the same bytes as from the store, a
/// directory refused with what to do instead, and what does not exist
/// exits 3.
#[test]
fn an_output_comes_out_of_a_running_daemon_the_same() {
    use crate::common::{Daemon, stderr, weir};
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    repo.write("reports.yaml", DEFS);
    repo.commit("Reports");
    let daemon = Daemon::with_token(&db, &repo, "artifacts-token");
    let server = daemon.server();
    let served = |args: &[&str]| weir(&[&["artifacts", "get"][..], args, &server].concat());
    let ran = daemon.weir(&["run", "reports", "--wait", "-o", "json"]);
    assert_eq!(ran.status.code(), Some(0), "{}", stderr(&ran));
    let ran: serde_json::Value = serde_json::from_slice(&ran.stdout).expect("json");
    let id = ran["id"].as_str().expect("an id");

    let report = served(&[&format!("{id}/write/report")]);
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    assert_eq!(report.stdout, b"region,total\neu,42\n");
    let from_store = weir_with(&["artifacts", "get", &format!("{id}/write/report")], &db);
    assert_eq!(
        from_store.stdout, report.stdout,
        "the same as from the store"
    );
    let digest = node(&ran, "write")["outputs"]["report"]
        .as_str()
        .expect("a reference")
        .to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("report.csv");
    let to_file = served(&[&digest, "-o", copy.to_str().expect("utf-8")]);
    assert_eq!(to_file.status.code(), Some(0), "{}", stderr(&to_file));
    assert_eq!(std::fs::read(&copy).expect("written"), report.stdout);
    let rows = served(&[&format!("{id}/write/rows")]);
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), "1");

    let tree = served(&[
        &format!("{id}/write/parts"),
        "-o",
        dir.path().join("parts").to_str().expect("utf-8"),
    ]);
    assert_eq!(tree.status.code(), Some(1), "{}", stderr(&tree));
    assert!(
        stderr(&tree).contains("is a directory artifact"),
        "{}",
        stderr(&tree)
    );
    for missing in [
        format!("{id}/write/nope"),
        "no-such-execution/write/report".to_owned(),
        format!("sha256:{}", "0".repeat(64)),
    ] {
        let out = served(&[&missing]);
        assert_eq!(out.status.code(), Some(3), "{missing}: {}", stderr(&out));
    }
    let both = served(&[&digest, "--artifacts", "/tmp"]);
    assert_eq!(
        both.status.code(),
        Some(2),
        "--artifacts names a store, --server asks a daemon"
    );
}
