//! Benchmark: `weir lineage` on a store holding 1,000,000 node executions.
//!
//! `cargo bench --bench lineage` fills a SQLite store (the embedded default,
//! migrated by weir) with 100,000 executions of a 10-node chain — 1,000,000
//! node executions and 2,000,000 lineage edges; each chain starts from one
//! of 1,000 raw datasets, so each dataset feeds 100 executions — written
//! with plain multi-row INSERTs for speed. It then times what
//! `weir lineage` does, through the store: upstream of a chain's last
//! artifact (10 nodes back to the dataset) and downstream of a dataset (100
//! executions, 1,000 nodes). Target: under 50 ms.

use std::time::{Duration, Instant};

use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};
use weir::lineage::{Way, follow};
use weir::spec::Digest;

const EXECUTIONS: usize = 100_000;
const NODES: usize = 10;
const DATASETS: usize = 1_000;
const BATCH: usize = 3_000;

fn hex(kind: u8, a: usize, b: usize) -> String {
    format!("{kind:02x}{a:030x}{b:032x}")
}

/// The artifact that node `i` of execution `e` reads (`i = 0`: a dataset).
fn artifact(e: usize, i: usize) -> String {
    if i == 0 {
        hex(0xda, e % DATASETS, 0)
    } else {
        hex(0xa7, e, i)
    }
}

async fn fill(url: &str) {
    let path = url.strip_prefix("sqlite://").expect("sqlite url");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .expect("connect");
    let mut tx = conn.begin().await.expect("begin");
    let at = "2026-11-24T00:00:00.000000Z";
    let ids: Vec<usize> = (0..EXECUTIONS).collect();
    for chunk in ids.chunks(BATCH / 10) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO executions (id, project, workflow, workflow_version, source, commit_sha, \
             trigger, inputs, plan, options, status, created_at) ",
        );
        q.push_values(chunk, |mut row, &e| {
            row.push_bind(format!("run-{e:06}"))
                .push_bind("bench")
                .push_bind("chain")
                .push_bind(hex(0xf0, 0, 1))
                .push_bind("file:///bench#main:")
                .push_bind(format!("{:040x}", e % 97))
                .push_bind("manual")
                .push_bind("{}")
                .push_bind("{}")
                .push_bind("{}")
                .push_bind("succeeded")
                .push_bind(at);
        });
        q.build().execute(&mut *tx).await.expect("executions");
    }
    let nodes: Vec<(usize, usize)> = (0..EXECUTIONS)
        .flat_map(|e| (0..NODES).map(move |i| (e, i)))
        .collect();
    for chunk in nodes.chunks(BATCH / 8) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO node_executions (execution, node, plan_order, task, task_version, status, \
             attempts) ",
        );
        q.push_values(chunk, |mut row, &(e, i)| {
            row.push_bind(format!("run-{e:06}"))
                .push_bind(format!("n{i}"))
                .push_bind(i as i64)
                .push_bind(format!("step-{i}"))
                .push_bind(hex(0xf1, i, 1))
                .push_bind("succeeded")
                .push_bind(1i64);
        });
        q.build().execute(&mut *tx).await.expect("nodes");
    }
    let edges: Vec<(usize, usize, bool)> = nodes
        .iter()
        .flat_map(|&(e, i)| [(e, i, false), (e, i, true)])
        .collect();
    for chunk in edges.chunks(BATCH / 9) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO lineage (execution, node, direction, name, digest, task, task_version, \
             commit_sha, at) ",
        );
        q.push_values(chunk, |mut row, &(e, i, output)| {
            let (direction, digest) = if output {
                ("output", artifact(e, i + 1))
            } else {
                ("input", artifact(e, i))
            };
            row.push_bind(format!("run-{e:06}"))
                .push_bind(format!("n{i}"))
                .push_bind(direction)
                .push_bind(if output { "out" } else { "in" })
                .push_bind(digest)
                .push_bind(format!("step-{i}"))
                .push_bind(hex(0xf1, i, 1))
                .push_bind(format!("{:040x}", e % 97))
                .push_bind(at);
        });
        q.build().execute(&mut *tx).await.expect("lineage");
    }
    tx.commit().await.expect("commit");
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let state = tempfile::tempdir().expect("state");
    let url = format!("sqlite://{}", state.path().join("weir.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = weir::store::open(&url).await.expect("store");
        let start = Instant::now();
        fill(&url).await;
        println!(
            "lineage: stored {} node executions and {} lineage edges in {:.1} s",
            EXECUTIONS * NODES,
            EXECUTIONS * NODES * 2,
            start.elapsed().as_secs_f64()
        );
        let mut up = Vec::new();
        let mut down = Vec::new();
        let (mut up_edges, mut down_edges) = (0, 0);
        for round in 0..21 {
            let e = (round * 4_999) % EXECUTIONS;
            let last = Digest::from_hex(artifact(e, NODES));
            let t = Instant::now();
            let edges = follow(store.as_ref(), vec![last], Way::Upstream)
                .await
                .expect("upstream");
            up.push(t.elapsed());
            up_edges = edges.len();
            let dataset = Digest::from_hex(artifact(e, 0));
            let t = Instant::now();
            let edges = follow(store.as_ref(), vec![dataset], Way::Downstream)
                .await
                .expect("downstream");
            down.push(t.elapsed());
            down_edges = edges.len();
        }
        println!(
            "lineage: upstream of a chain's output ({up_edges} edges) median {:.2} ms; downstream of a dataset ({down_edges} edges) median {:.2} ms",
            median(up).as_secs_f64() * 1000.0,
            median(down).as_secs_f64() * 1000.0
        );
    });
}
