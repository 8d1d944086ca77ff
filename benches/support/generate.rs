#![allow(dead_code)] // each benchmark uses part of it
//! The generated repository shared by the benchmarks: pipeline `i` is one
//! file with three tasks, a workflow wiring them, and a scheduled launch
//! plan (five definitions), in one of 20 projects.

use std::fmt::Write as _;

/// The text of pipeline `i`'s file. `revision` changes one task's script so
/// a new commit can change one file.
pub fn group_at(i: usize, revision: usize) -> String {
    group(i).replace(
        "print(\"processing",
        &format!("print(\"r{revision} processing"),
    )
}

/// The path of pipeline `i`'s file.
pub fn path(i: usize) -> String {
    format!("team-{}/pipeline-{i}.yaml", i % 20)
}

pub fn group(i: usize) -> String {
    let mut s = String::with_capacity(3_000);
    let project = format!("team-{}", i % 20);
    let steps = [
        ("raw", "events", "file"),
        ("events", "features", "file"),
        ("features", "score", "float"),
    ];
    for (t, (input, output, ty)) in steps.into_iter().enumerate() {
        write!(
            s,
            r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: task-{i}-{t}, project: {project}, description: Step {t} of pipeline {i}. }}
spec:
  inputs:
    {input}: {{ type: file }}
    day: {{ type: datetime }}
    sample: {{ type: float, default: 1.0 }}
  outputs:
    {output}: {{ type: {ty} }}
    rows: {{ type: int }}
  script:
    interpreter: python3
    image: python:3.12-slim
    source: |
      import json, os
      print("processing", os.environ["WEIR_INPUT_DAY"], "at {{{{ inputs.sample }}}}")
      json.dump({{"rows": 1}}, open(os.environ["WEIR_OUTPUTS"] + "/outputs.json", "w"))
  retries: {{ attempts: 2, backoff: 30s }}
  timeout: 1h30m
  cache: {{ enabled: true, version: "{i}" }}
  resources: {{ requests: {{ cpu: 500m, memory: 1Gi }}, limits: {{ memory: 2Gi }} }}
---
"#
        )
        .expect("writing to a String");
    }
    write!(
        s,
        r#"apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: pipeline-{i}, project: {project} }}
spec:
  inputs:
    day: {{ type: datetime }}
    source: {{ type: file, default: "s3://bucket/raw/{i}.parquet" }}
  nodes:
    - id: extract
      task: task-{i}-0
      inputs: {{ raw: "{{{{ inputs.source }}}}", day: "{{{{ inputs.day }}}}" }}
    - id: features
      task: task-{i}-1
      inputs: {{ events: "{{{{ nodes.extract.outputs.events }}}}", day: "{{{{ inputs.day }}}}", sample: 0.5 }}
    - id: train
      task: task-{i}-2
      inputs: {{ features: "{{{{ nodes.features.outputs.features }}}}", day: "{{{{ inputs.day }}}}" }}
  outputs:
    score: "{{{{ nodes.train.outputs.score }}}}"
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: {{ name: pipeline-{i}-nightly, project: {project} }}
spec:
  workflow: pipeline-{i}
  schedule:
    cron: "{} 2 * * *"
    timezone: Europe/Berlin
    kickoffTimeInput: day
    concurrency: Forbid
    catchUp: latest
  notify:
    - on: [failed, timedOut]
      webhook: {{ url: "https://hooks.example.com/ml" }}
"#,
        i % 60
    )
    .expect("writing to a String");
    s
}
