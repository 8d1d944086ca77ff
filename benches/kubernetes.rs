//! Benchmark: the Kubernetes executor tracking 1,000 running node Jobs.
//!
//! `cargo bench --bench kubernetes` loads 1,000 Jobs (each with its pod,
//! running) into kube-fake-client's in-memory API, behind the real
//! `kube::Client`, and times the executor's observation, which the engine
//! makes once per tick: one list of Jobs and one of Pods by label, then the
//! state of every attempt. Prints API calls per tick and time per tick
//! (p50, p95). Target: a constant number of calls per tick, whatever the
//! number of Jobs.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube_fake_client::ClientBuilder;
use serde_json::json;
use weir::executor::kubernetes::{JobState, Kube, Settings};

const JOBS: usize = 1_000;
const TICKS: usize = 21;

fn job(i: usize) -> Job {
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("weir-node-{i:04}-0123456789abcdef"),
            "namespace": "weir",
            "labels": {
                "app.kubernetes.io/managed-by": "weir",
                "weir.dev/execution": format!("nightly-{i:012}"),
                "weir.dev/node": "train",
            }
        },
        "spec": { "backoffLimit": 0, "template": { "spec": { "containers": [ { "name": "task", "image": "python:3.12-slim" } ], "restartPolicy": "Never" } } },
        "status": { "active": 1 }
    }))
    .expect("a job")
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("weir-node-{i:04}-0123456789abcdef-x1"),
            "namespace": "weir",
            "labels": {
                "app.kubernetes.io/managed-by": "weir",
                "job-name": format!("weir-node-{i:04}-0123456789abcdef"),
            }
        },
        "spec": { "containers": [ { "name": "task", "image": "python:3.12-slim" } ] },
        "status": { "containerStatuses": [ { "name": "task", "image": "python:3.12-slim", "imageID": "",
            "ready": true, "restartCount": 0, "state": { "running": {} } } ] }
    }))
    .expect("a pod")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = ClientBuilder::new()
            .with_objects((0..JOBS).map(job).collect())
            .with_objects((0..JOBS).map(pod).collect())
            .build()
            .await
            .expect("a fake cluster");
        let kube = Kube::new(
            client,
            Settings {
                namespace: "weir".into(),
                ..Settings::default()
            },
        );
        let mut times = Vec::with_capacity(TICKS);
        let before = kube.calls();
        for _ in 0..TICKS {
            let start = Instant::now();
            let states = kube.observe().await.expect("observe");
            times.push(start.elapsed());
            assert_eq!(states.len(), JOBS);
            assert!(states.values().all(|s| *s == JobState::Running));
        }
        let calls = (kube.calls() - before) as f64 / TICKS as f64;
        times.sort();
        println!(
            "kubernetes: {JOBS} running Jobs tracked: {calls:.0} API calls per tick; a tick takes p50 {:.1} ms, p95 {:.1} ms over {TICKS} ticks",
            percentile(&times, 0.5).as_secs_f64() * 1000.0,
            percentile(&times, 0.95).as_secs_f64() * 1000.0,
        );
    });
}
