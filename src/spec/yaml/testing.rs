//! What the tests of the fast readers share: serde-saphyr's reading to
//! compare against, a generated file and the repository's own YAML.

use serde_json::Value;

use super::{Limits, Pos};

/// serde-saphyr's reading of `text`, the one every fast reader must match.
pub(super) fn saphyr(text: &str) -> Result<Vec<(Pos, Value)>, String> {
    serde_saphyr::from_multiple_with_options::<serde_saphyr::Spanned<Value>>(
        text,
        super::options(Limits::default()),
    )
    .map(|docs| {
        docs.into_iter()
            .map(|d| (Pos::from_location(d.referenced), d.value))
            .collect()
    })
    .map_err(|e| e.to_string())
}

/// A fast reader: the documents of a text with their positions, or `None`
/// for a text it leaves to the parsers behind it.
type Reader = fn(&str, Limits) -> Option<Vec<(Pos, Value)>>;

/// The repository's examples and fixtures: wherever `parse` reads one, it
/// reads it as serde-saphyr does; and it reads every example.
pub(super) fn every_example_and_fixture(parse: Reader, reader: &str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut unread = Vec::new();
    let mut dirs = vec![root.join("examples"), root.join("tests/fixtures")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if !path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            match parse(&text, Limits::default()) {
                Some(read) => assert_eq!(Ok(read), saphyr(&text), "{}", path.display()),
                None if path.starts_with(root.join("examples")) => unread.push(path),
                None => {}
            }
        }
    }
    assert_eq!(
        unread,
        Vec::<std::path::PathBuf>::new(),
        "{reader} reads the examples"
    );
}

/// A file as the benchmarks generate them (`benches/support/generate.rs`).
pub(super) const GENERATED: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: task-7-0, project: team-7, description: Step 0 of pipeline 7. }
spec:
  inputs:
    raw: { type: file }
    sample: { type: float, default: 1.0 }
  outputs:
    rows: { type: int }
  script:
    interpreter: python3
    image: python:3.12-slim
    source: |
      import json, os
      print("processing", os.environ["WEIR_INPUT_DAY"], "at {{ inputs.sample }}")
  retries: { attempts: 2, backoff: 30s }
  timeout: 1h30m
  cache: { enabled: true, version: "7" }
  resources: { requests: { cpu: 500m, memory: 1Gi }, limits: { memory: 2Gi } }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: pipeline-7, project: team-7 }
spec:
  nodes:
    - id: extract
      task: task-7-0
      inputs: { raw: "{{ inputs.source }}", day: "{{ inputs.day }}" }
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: pipeline-7-nightly, project: team-7 }
spec:
  workflow: pipeline-7
  schedule:
    cron: "7 2 * * *"
    timezone: Europe/Berlin
  notify:
    - on: [failed, timedOut]
      webhook: { url: "https://hooks.example.com/ml" }
"#;
