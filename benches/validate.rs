//! Benchmark: validate a generated repository of 10,000 definitions.
//!
//! `cargo bench --bench validate` writes 2,000 files (each: three tasks, a
//! workflow wiring them, and a scheduled launch plan — 10,000 definitions)
//! to a temporary folder, then times what `weir validate` does: read the
//! tree, parse, check the schema and semantics, compute every digest. It
//! prints definitions per second (median of the runs) and the process's
//! peak resident memory. Target on a 2-core machine: under 1 s, under 300 MB.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use weir::source::dir::{DEFAULT_MAX_FILE_SIZE, read_tree};
use weir::validate::{Options, validate};

const GROUPS: usize = 2_000;
const RUNS: usize = 7;

fn group(i: usize) -> String {
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
      print("processing {{{{ inputs.day }}}} at {{{{ inputs.sample }}}}")
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

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut bytes = 0;
    for i in 0..GROUPS {
        let text = group(i);
        bytes += text.len();
        let sub = dir.path().join(format!("team-{}", i % 20));
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(sub.join(format!("pipeline-{i}.yaml")), text).expect("write");
    }
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut definitions = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let tree = read_tree(dir.path(), DEFAULT_MAX_FILE_SIZE).expect("tree");
        let report = validate(&tree, &Options::default());
        times.push(start.elapsed());
        assert!(report.is_valid(), "{:?}", report.diagnostics.first());
        assert!(report.entities.iter().all(|e| e.digest.is_some()));
        definitions = report.entities.len();
    }
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "validate: {definitions} definitions in {GROUPS} files ({:.1} MiB of YAML)",
        bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "validate: median {:.3} s (min {:.3} s, max {:.3} s) over {RUNS} runs = {:.0} definitions/s",
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[RUNS - 1].as_secs_f64(),
        definitions as f64 / median.as_secs_f64()
    );
    match peak_rss_mb() {
        Some(mb) => println!("validate: peak resident memory {mb:.0} MB"),
        None => println!("validate: peak resident memory unavailable (no /proc)"),
    }
}
