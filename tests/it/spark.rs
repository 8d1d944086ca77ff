//! `spark` tasks on real Spark in local mode (issue 15, DESIGN.md section
//! 6 "Spark tasks"), through real commits run by an engine: a CSV file
//! aggregated by a PySpark program of the repository into a Parquet
//! `directory` output that the next node counts with DuckDB, served from
//! the cache the second time; a failing program's traceback as the
//! attempt's error; a timeout that leaves no JVM behind.
//!
//! Each starts a JVM (seconds each): they run one at a time (the `jvm`
//! test group of `.config/nextest.toml`).

use serde_json::json;

use crate::common::{Backend, GitRepo, TestDb, backend, run_head, run_head_in};

pub(crate) const PIPELINE: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: export, project: p }
spec:
  outputs: { orders: { type: file } }
  script:
    interpreter: python3
    source: |
      import os
      with open(os.path.join(os.environ["WEIR_OUTPUTS"], "orders"), "w") as f:
          f.write("region,product,quantity,price\n")
          for i in range(60):
              f.write(f"{['eu', 'us', 'apac'][i % 3]},{['pen', 'mug'][i % 2]},{i % 5 + 1},2.5\n")
  cache: { enabled: true }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: aggregate, project: p }
spec:
  inputs: { orders: { type: file } }
  outputs: { revenue: { type: directory }, groups: { type: int } }
  spark:
    mainApplicationFile: jobs/aggregate.py
    sparkConf: { spark.sql.shuffle.partitions: "2" }
    driver: { cores: 1, memory: 512m }
    executor: { instances: 1, cores: 2, memory: 512m }
  cache: { enabled: true }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: count, project: p }
spec:
  inputs: { revenue: { type: directory } }
  outputs: { rows: { type: int }, ranking: { type: json } }
  sql:
    engine: duckdb
    query: |
      SELECT region, sum(revenue) AS revenue
      FROM read_parquet({{ inputs.revenue }} || '/*.parquet')
      GROUP BY region ORDER BY region
  cache: { enabled: true }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: daily, project: p }
spec:
  nodes:
    - { id: export, task: export }
    - { id: aggregate, task: aggregate, inputs: { orders: "{{ nodes.export.outputs.orders }}" } }
    - { id: count, task: count, inputs: { revenue: "{{ nodes.aggregate.outputs.revenue }}" } }
"#;

pub(crate) const AGGREGATE: &str = r#"from pyspark.sql import functions as F

orders = spark.read.csv(inputs["orders"], header=True, inferSchema=True)
revenue = (
    orders.groupBy("region", "product")
    .agg(F.sum(F.col("quantity") * F.col("price")).alias("revenue"))
)
revenue.write.parquet(output_path("revenue"))
outputs["groups"] = revenue.count()
"#;

fn repo(files: &[(&str, &str)]) -> GitRepo {
    let repo = GitRepo::new();
    for (path, text) in files {
        repo.write(path, text);
    }
    repo.commit("Definitions");
    repo
}

async fn sqlite() -> Backend {
    backend(TestDb::sqlite()).await
}

fn types() -> weir::task::TaskTypes {
    weir::task::TaskTypes::builtin()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jvm_a_csv_becomes_a_parquet_dataset_that_the_next_node_queries_and_the_cache_serves() {
    let repo = repo(&[("daily.yaml", PIPELINE), ("jobs/aggregate.py", AGGREGATE)]);
    let b = sqlite().await;
    let first = run_head(&repo, types(), &b, "daily", json!({})).await;
    assert_eq!(first.status, "succeeded", "{:#?}", first.nodes);
    let node = |ran: &crate::common::Ran, id: &str| {
        ran.nodes
            .iter()
            .find(|n| n.node == id)
            .cloned()
            .unwrap_or_else(|| panic!("no node {id}"))
    };
    let aggregate = node(&first, "aggregate").outputs.expect("outputs");
    assert_eq!(aggregate["groups"], json!(6), "3 regions × 2 products");
    // A Parquet dataset: Spark's part files in the stored directory.
    let dataset = first.attempt_dir("aggregate", 1).join("outputs/revenue");
    let parts: Vec<_> = std::fs::read_dir(&dataset)
        .expect("the dataset")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .collect();
    assert!(!parts.is_empty(), "no part files in {}", dataset.display());
    let count = node(&first, "count").outputs.expect("outputs");
    assert_eq!(count["rows"], json!(3), "{count}");
    // 60 orders of 2.5 × quantity (1..=5, cycling): 20 per region.
    assert_eq!(
        count["ranking"],
        json!([
            { "region": "apac", "revenue": 150.0 },
            { "region": "eu", "revenue": 150.0 },
            { "region": "us", "revenue": 150.0 },
        ])
    );

    // The same inputs again: every node is served from the cache, Spark
    // does not start.
    let second = run_head_in(&repo, types(), &b, first.state, "daily", json!({})).await;
    assert_eq!(second.status, "succeeded");
    for n in &second.nodes {
        assert!(n.cached_from.is_some(), "{} ran again: {n:#?}", n.node);
    }
    assert_eq!(node(&second, "count").outputs, Some(count));
}

const FAILING: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: broken, project: p }
spec:
  outputs: { n: { type: int } }
  spark:
    source: |
      frame = spark.range(10)
      outputs["n"] = frame.select("no_such_column").count()
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: broken, project: p }
spec:
  nodes: [ { id: broken, task: broken } ]
"#;

/// The program's own traceback ends the attempt's error, after Spark's
/// shutdown, pointing at the program's line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jvm_a_failing_program_s_traceback_is_the_attempt_s_error() {
    let b = sqlite().await;
    let ran = run_head(
        &repo(&[("broken.yaml", FAILING)]),
        types(),
        &b,
        "broken",
        json!({}),
    )
    .await;
    assert_eq!(ran.status, "failed");
    let error = ran.error("broken");
    assert!(
        error.starts_with("exited with status 1; stderr ends with:"),
        "{error}"
    );
    assert!(error.contains("no_such_column"), "{error}");
    let traceback =
        std::fs::read_to_string(ran.attempt_dir("broken", 1).join("stderr.log")).expect("stderr");
    assert!(
        traceback.contains("File \"<source>\", line 2"),
        "the program's line: {traceback}"
    );
}

const SLOW: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: slow, project: p }
spec:
  spark:
    source: |
      import time
      spark.range(1).count()
      open("started", "w").write("")
      time.sleep(600)
  timeout: 30s
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: slow, project: p }
spec:
  nodes: [ { id: slow, task: slow } ]
"#;

/// A timeout stops the whole attempt: spark-submit's JVM and its Python
/// workers are the attempt's process group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jvm_a_timeout_leaves_no_jvm_behind() {
    let b = sqlite().await;
    let ran = run_head(
        &repo(&[("slow.yaml", SLOW)]),
        types(),
        &b,
        "slow",
        json!({}),
    )
    .await;
    assert_eq!(ran.status, "timedOut", "{:#?}", ran.nodes);
    let dir = ran.attempt_dir("slow", 1);
    assert!(
        dir.join("started").exists(),
        "the program ran before the timeout"
    );
    let needle = dir.display().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&needle).then_some(cmdline)
        })
        .collect();
    assert!(left.is_empty(), "processes of the attempt left: {left:#?}");
}

/// What no Spark could run is refused at commit time, each at its place:
/// a program file that is not in the repository (W039), two programs or
/// none, a size Spark cannot read, a property that is not Spark's.
#[test]
fn validation_refuses_what_spark_could_not_run() {
    let with = |body: &str| {
        let text = format!(
            "apiVersion: weir.dev/v1alpha1\nkind: Task\nmetadata: {{ name: s, project: p }}\nspec:\n  spark:\n{body}"
        );
        let tree = weir::validate::Tree {
            files: vec![weir::validate::SourceFile {
                path: "s.yaml".into(),
                text,
            }],
            other_paths: ["jobs/ok.py".to_owned()].into(),
            ..weir::validate::Tree::default()
        };
        weir::validate::validate(tree, &weir::validate::Options::default())
            .diagnostics
            .iter()
            .map(|d| {
                let pos = d.pos.expect("a position");
                format!("{} {}:{} {}", d.code.id(), pos.line, pos.column, d.message)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        with("    mainApplicationFile: jobs/ok.py\n"),
        Vec::<String>::new()
    );
    assert_eq!(
        with("    mainApplicationFile: jobs/missing.py\n"),
        ["W039 6:26 the `mainApplicationFile` file `jobs/missing.py` does not exist in the source"]
    );
    for body in [
        "    source: x\n    mainApplicationFile: jobs/ok.py\n",
        "    sparkConf: {}\n",
        "    source: x\n    driver: { memory: lots }\n",
        "    source: x\n    executor: { instances: 0 }\n",
    ] {
        let found = with(body);
        assert!(
            found.len() == 1 && found[0].starts_with("W007"),
            "{body}: {found:?}"
        );
    }
    assert_eq!(
        with("    source: x\n    sparkConf: { sql.shuffle.partitions: \"2\" }\n"),
        ["W040 7:42 `sql.shuffle.partitions` is not a Spark property (`2`)"]
    );
}

/// The examples' sales report, as committed, runs end to end: Spark
/// writes the Parquet dataset, DuckDB ranks its products.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jvm_the_sales_example_runs_end_to_end() {
    let root = crate::common::root().join("examples/repo");
    let files: Vec<(String, String)> = [
        "sales/orders.yaml",
        "sales/revenue.yaml",
        "sales/report.yaml",
        "sales/pipeline.yaml",
        "sales/jobs/daily_revenue.py",
    ]
    .iter()
    .map(|path| {
        let text = std::fs::read_to_string(root.join(path)).expect("an example file");
        ((*path).to_owned(), text)
    })
    .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let b = sqlite().await;
    let ran = run_head(
        &repo(&files),
        types(),
        &b,
        "daily-sales",
        json!({ "day": "2026-12-01T00:00:00Z" }),
    )
    .await;
    assert_eq!(ran.status, "succeeded", "{:#?}", ran.nodes);
    let top = ran.nodes.iter().find(|n| n.node == "top").expect("top");
    let outputs = top.outputs.clone().expect("outputs");
    assert_eq!(outputs["rows"], json!(3));
    let ranking = outputs["ranking"].as_array().expect("a ranking");
    assert_eq!(ranking.len(), 3);
    assert_eq!(ranking[0]["product"], json!("backpack"), "{ranking:#?}");
    assert!(ranking.iter().all(|r| r["regions"] == json!(3)));
}
