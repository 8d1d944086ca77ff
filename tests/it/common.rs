//! Shared helpers: run the built `weir` binary, read fixtures, build trees.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use weir::validate::{self, Options, Report, SourceFile, Tree};

/// The repository root (where `Cargo.toml` is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Runs `weir ARGS` from the repository root, with colours off.
pub fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("the weir binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `weir validate ARGS -o json` and parses the result.
pub fn validate_json(path: &Path) -> (i32, serde_json::Value) {
    let out = weir(&["validate", path.to_str().expect("utf-8 path"), "-o", "json"]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "invalid JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().expect("exited"), json)
}

/// Validates in-memory files with the library.
pub fn validate_files(files: &[(&str, &str)]) -> Report {
    let tree = Tree {
        files: files
            .iter()
            .map(|(path, text)| SourceFile {
                path: (*path).to_owned(),
                text: (*text).to_owned(),
            })
            .collect(),
        ..Tree::default()
    };
    validate::validate(&tree, &Options::default())
}
