//! Layer 1, size and safety: hostile trees get a clear error per file and
//! never crash or hang the loader.

use std::fs;

use weir::source::dir::read_tree;
use weir::validate::{Code, Options, validate};

const TASK: &str = "apiVersion: weir.dev/v1alpha1\nkind: Task\nmetadata: { name: ok }\nspec:\n  script: { interpreter: bash, source: \"true\" }\n";

#[test]
fn a_symlink_leaving_the_repository_is_refused_and_named() {
    let outside = tempfile::tempdir().expect("tempdir");
    fs::write(outside.path().join("secret.yaml"), TASK).expect("write");
    let repo = tempfile::tempdir().expect("tempdir");
    fs::write(
        repo.path().join("ok.yaml"),
        TASK.replace("name: ok", "name: fine"),
    )
    .expect("write");
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        repo.path().join("leak.yaml"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), repo.path().join("elsewhere")).expect("symlink");
    // A link that stays inside is followed; a loop is cut.
    std::os::unix::fs::symlink(repo.path().join("ok.yaml"), repo.path().join("alias.yml"))
        .expect("symlink");
    std::os::unix::fs::symlink(repo.path(), repo.path().join("loop")).expect("symlink");

    let tree = read_tree(repo.path(), 1 << 20).expect("readable root");
    let escapes: Vec<_> = tree
        .read_errors
        .iter()
        .filter(|d| d.code == Code::SymlinkEscape)
        .collect();
    assert_eq!(escapes.len(), 2, "{:#?}", tree.read_errors);
    assert!(
        escapes
            .iter()
            .any(|d| d.message.contains("leak.yaml") && d.message.contains("outside"))
    );
    assert!(escapes.iter().any(|d| d.message.contains("elsewhere")));
    let paths: Vec<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["alias.yml", "ok.yaml"]);
    let report = validate(tree, &Options::default());
    assert!(!report.is_valid());
}

#[test]
fn a_file_over_the_size_limit_is_refused_with_its_size() {
    let repo = tempfile::tempdir().expect("tempdir");
    let big = format!("{TASK}# {}\n", "x".repeat(4096));
    fs::write(repo.path().join("big.yaml"), &big).expect("write");
    let out = crate::common::weir(&[
        "validate",
        repo.path().to_str().expect("utf-8"),
        "--max-file-size",
        "1024",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let d = &json["diagnostics"][0];
    assert_eq!(d["code"], "W001");
    assert!(
        d["message"]
            .as_str()
            .expect("message")
            .contains(&format!("{} bytes", big.len()))
    );
    assert!(d["message"].as_str().expect("message").contains("1024"));
}

#[test]
fn alias_bombs_and_deep_nesting_hit_the_budget() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let report = crate::common::validate_files(&[("bomb.yaml", &bomb), ("deep.yaml", &deep)]);
    let codes: Vec<(String, Code)> = report
        .diagnostics
        .iter()
        .map(|d| (d.file.display().to_string(), d.code))
        .collect();
    assert!(
        codes.contains(&("bomb.yaml".to_owned(), Code::YamlLimit)),
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .any(|(f, c)| f == "deep.yaml" && matches!(c, Code::YamlLimit | Code::YamlSyntax)),
        "{codes:?}"
    );
}

#[test]
fn non_utf8_files_are_reported_not_skipped() {
    let repo = tempfile::tempdir().expect("tempdir");
    fs::write(repo.path().join("latin1.yaml"), b"name: caf\xe9\n").expect("write");
    let tree = read_tree(repo.path(), 1 << 20).expect("root");
    assert_eq!(tree.read_errors.len(), 1);
    assert_eq!(tree.read_errors[0].code, Code::UnreadableFile);
    assert!(tree.read_errors[0].message.contains("UTF-8"));
}
