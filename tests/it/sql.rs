//! `sql` tasks run end to end: definitions in a real Git repository,
//! synced and run by the real `weir` binary, against the real engines the
//! machine has: the PostgreSQL server the tests use, DuckDB (the Python
//! package, as a process) and Spark SQL with Hive support. Trino has no
//! server here: its client is run against a fake coordinator in this file
//! that speaks the documented protocol (`POST /v1/statement`, `nextUri`
//! pages, `error` documents, `DELETE` to cancel).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::common::{GitRepo, TestDb, node};

const INJECTION: &str = "'; DROP TABLE t; --";

/// A repository of definitions, synced into a SQLite store, whose
/// workflows the binary runs with `env` in its environment (and `allow`
/// passed to tasks).
struct Project {
    repo: GitRepo,
    db: TestDb,
    env: Vec<(String, String)>,
    allow: Vec<String>,
}

impl Project {
    fn new(files: &[(&str, &str)]) -> Project {
        let repo = GitRepo::new();
        for (path, text) in files {
            repo.write(path, text);
        }
        repo.commit("SQL tasks");
        let project = Project {
            repo,
            db: TestDb::sqlite(),
            env: Vec::new(),
            allow: Vec::new(),
        };
        let out = project.weir(&["sync", "--repo", &project.repo.path().display().to_string()]);
        assert!(
            out.status.success(),
            "sync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        project
    }

    fn with_env(mut self, name: &str, value: &str) -> Project {
        self.env.push((name.to_owned(), value.to_owned()));
        self.allow.push(name.to_owned());
        self
    }

    fn weir(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command.args(args).args(self.db.args()).env("NO_COLOR", "1");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command.output().expect("the weir binary runs")
    }

    /// `weir run NAME --wait` with `inputs`, as JSON.
    fn run(&self, workflow: &str, inputs: &[(&str, &str)]) -> Value {
        let mut args = vec![
            "run".to_owned(),
            workflow.to_owned(),
            "--wait".into(),
            "-o".into(),
            "json".into(),
        ];
        for (name, value) in inputs {
            args.extend(["--input".to_owned(), format!("{name}={value}")]);
        }
        for name in &self.allow {
            args.extend(["--task-env".to_owned(), name.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.weir(&args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "weir run: not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The log of a node's attempt.
    fn logs(&self, execution: &Value, node: &str) -> String {
        let id = execution["id"].as_str().expect("an id");
        let out = self.weir(&["logs", id, "--node", node]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// A file of a node's first attempt, as text.
    fn attempt_file(&self, execution: &Value, node: &str, rel: &str) -> String {
        let id = execution["id"].as_str().expect("an id");
        let path = self
            .state_dir()
            .join("runs")
            .join(id)
            .join(node)
            .join("1")
            .join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn state_dir(&self) -> std::path::PathBuf {
        let args = self.db.args();
        let at = args
            .iter()
            .position(|a| a == "--state-dir")
            .expect("a state dir");
        args[at + 1].clone().into()
    }

    /// Every file weir keeps for this project (store, attempts, artifacts).
    fn kept_text(&self) -> String {
        let mut text = String::new();
        let mut stack = vec![self.state_dir()];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("a folder") {
                    stack.push(entry.expect("an entry").path());
                }
            } else if let Ok(bytes) = std::fs::read(&path) {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        text
    }
}

/// The PostgreSQL server the tests use, or `None` (skip) outside CI.
fn postgres_url() -> Option<String> {
    match std::env::var("WEIR_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "WEIR_TEST_POSTGRES_URL is not set; CI must test PostgreSQL"
            );
            eprintln!("skipping: WEIR_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-tAqc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const POSTGRES: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: scores }
spec:
  inputs:
    who: { type: string }
    min: { type: int }
    ratio: { type: float }
    flag: { type: bool }
  outputs:
    rows: { type: int }
    table: { type: file }
    all: { type: json }
  cache: { enabled: true }
  sql:
    engine: postgres
    connection: { env: SQL_TEST_DB }
    query: |
      -- a comment's {{ braces }} stay text; 'quotes' too
      SELECT id, name, score * {{ inputs.ratio }} AS scaled, {{ inputs.who }} AS who
      FROM t
      WHERE id >= {{ inputs.min }} AND ok = {{ inputs.flag }}
      ORDER BY id
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: scores }
spec:
  inputs:
    who: { type: string }
    min: { type: int, default: 2 }
  nodes:
    - id: q
      task: scores
      inputs: { who: "{{ inputs.who }}", min: "{{ inputs.min }}", ratio: 0.5, flag: true }
  outputs: { rows: "{{ nodes.q.outputs.rows }}", all: "{{ nodes.q.outputs.all }}", table: "{{ nodes.q.outputs.table }}" }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: sleepy }
spec:
  inputs: { tag: { type: string } }
  outputs: { rows: { type: int } }
  timeout: 1s
  sql:
    engine: postgres
    connection: { env: SQL_TEST_DB }
    query: SELECT pg_sleep(300), {{ inputs.tag }} AS tag
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: sleepy }
spec:
  inputs: { tag: { type: string } }
  nodes: [{ id: q, task: sleepy, inputs: { tag: "{{ inputs.tag }}" } }]
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: bounded }
spec:
  outputs: { setting: { type: json } }
  timeout: 90s
  sql:
    engine: postgres
    connection: { env: SQL_TEST_DB }
    query: SELECT current_setting('statement_timeout') AS statement_timeout
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: bounded }
spec:
  nodes: [{ id: q, task: bounded }]
  outputs: { setting: "{{ nodes.q.outputs.setting }}" }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: unreachable }
spec:
  outputs: { rows: { type: int } }
  sql:
    engine: postgres
    connection: { env: SQL_BAD_DB }
    query: SELECT 1
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: unreachable }
spec:
  nodes: [{ id: q, task: unreachable }]
"#;

/// Typed parameters on the real server: a string holding SQL is bound as
/// data (returned as it is, the table intact), ints, floats and booleans
/// bind as their types; the three output kinds are filled; a second run
/// with the same inputs is served from the cache.
#[test]
fn a_postgres_query_binds_its_inputs_as_data_and_is_cached() {
    let Some(base) = postgres_url() else { return };
    let schema = format!("sql_it_{}", std::process::id());
    psql(
        &base,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    );
    psql(
        &base,
        &format!(
            "CREATE TABLE {schema}.t (id int, name text, score float8, ok bool); \
             INSERT INTO {schema}.t VALUES (1, 'one', 1, true), (2, 'two', 2, true), (3, 'three', 3, false), (4, 'four, \"4\"', 4, true)"
        ),
    );
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let project = Project::new(&[("sql.yaml", POSTGRES)]).with_env("SQL_TEST_DB", &url);

    let first = project.run("scores", &[("who", INJECTION)]);
    assert_eq!(
        first["status"],
        "succeeded",
        "{first:#}\n{}",
        project.logs(&first, "q")
    );
    assert_eq!(first["outputs"]["rows"], 2);
    assert_eq!(
        first["outputs"]["all"],
        json!([
            { "id": 2, "name": "two", "scaled": 1.0, "who": INJECTION },
            { "id": 4, "name": "four, \"4\"", "scaled": 2.0, "who": INJECTION },
        ])
    );
    assert_eq!(
        psql(&url, "SELECT count(*) FROM t"),
        "4",
        "the table is intact"
    );

    let second = project.run("scores", &[("who", INJECTION)]);
    assert_eq!(second["status"], "succeeded", "{second:#}");
    assert_eq!(node(&second, "q")["cached"], true, "{second:#}");
    assert_eq!(second["outputs"], first["outputs"]);
    let other = project.run("scores", &[("who", "x"), ("min", "1")]);
    assert_eq!(node(&other, "q")["cached"], false);
    assert_eq!(other["outputs"]["rows"], 3);

    psql(&base, &format!("DROP SCHEMA {schema} CASCADE"));
}

/// A query that outlives its timeout is cancelled on the server: the
/// attempt times out and its backend is no longer running the query.
#[test]
fn a_postgres_query_past_its_timeout_is_cancelled_on_the_server() {
    let Some(url) = postgres_url() else { return };
    let project = Project::new(&[("sql.yaml", POSTGRES)]).with_env("SQL_TEST_DB", &url);
    let tag = format!("weir-sleepy-{}", std::process::id());
    let done = project.run("sleepy", &[("tag", &tag)]);
    assert_eq!(node(&done, "q")["status"], "timedOut", "{done:#}");
    // pg_stat_activity shows a query's text, not its parameters: the
    // query is found by its text and the session by its parameter-free
    // statement, which only this test's attempts run.
    let running = "SELECT count(*) FROM pg_stat_activity \
         WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(300), $1 AS tag%'";
    crate::common::eventually("the cancelled query is gone from the server", || {
        psql(&url, running) == "0"
    });
}

/// The task's timeout is the server's too: should weir die while a query
/// runs, PostgreSQL still stops it then.
#[test]
fn a_postgres_query_runs_under_the_task_s_timeout_on_the_server() {
    let Some(url) = postgres_url() else { return };
    let project = Project::new(&[("sql.yaml", POSTGRES)]).with_env("SQL_TEST_DB", &url);
    let done = project.run("bounded", &[]);
    assert_eq!(
        node(&done, "q")["outputs"]["setting"],
        serde_json::json!([{ "statement_timeout": "90s" }]),
        "{done:#}"
    );
}

/// A connection that fails says so without its password: not in the
/// attempt's error, its logs, or anything weir keeps.
#[test]
fn a_failed_connection_never_shows_its_password() {
    let secret = "hunter2-never-shown";
    let project = Project::new(&[("sql.yaml", POSTGRES)]).with_env(
        "SQL_BAD_DB",
        &format!("postgres://weir:{secret}@127.0.0.1:1/nowhere"),
    );
    let failed = project.run("unreachable", &[]);
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let error = node(&failed, "q")["error"].to_string();
    assert!(error.contains("cannot connect to PostgreSQL"), "{error}");
    assert!(!failed.to_string().contains(secret), "{failed:#}");
    assert!(!project.logs(&failed, "q").contains(secret));
    assert!(
        !project.kept_text().contains(secret),
        "a kept file holds the password"
    );

    // Without the operator's leave, the variable does not reach the task.
    let mut hidden = project;
    hidden.allow.clear();
    let refused = hidden.run("unreachable", &[]);
    let error = node(&refused, "q")["error"].to_string();
    assert!(
        error.contains("`SQL_BAD_DB` is not given to the task"),
        "{error}"
    );
}

const DUCKDB: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: make-parquet }
spec:
  inputs: { n: { type: int } }
  outputs: { data: { type: file } }
  sql:
    engine: duckdb
    format: parquet
    query: SELECT range AS n, range % 3 AS k, 'row ' || range AS label FROM range({{ inputs.n }})
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: groups }
spec:
  inputs: { data: { type: file }, min: { type: int }, who: { type: string } }
  outputs: { rows: { type: int }, groups: { type: json }, table: { type: file } }
  sql:
    engine: duckdb
    query: |
      SELECT k, count(*) AS c, {{ inputs.who }} AS who
      FROM read_parquet({{ inputs.data }}) WHERE n >= {{ inputs.min }}
      GROUP BY k ORDER BY k
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: duck }
spec:
  inputs: { who: { type: string } }
  nodes:
    - { id: make, task: make-parquet, inputs: { n: 10 } }
    - id: groups
      task: groups
      inputs: { data: "{{ nodes.make.outputs.data }}", min: 4, who: "{{ inputs.who }}" }
  outputs: { rows: "{{ nodes.groups.outputs.rows }}", groups: "{{ nodes.groups.outputs.groups }}", table: "{{ nodes.groups.outputs.table }}" }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: write-parts }
spec:
  outputs: { parts: { type: directory } }
  script:
    interpreter: python3
    source: |
      import duckdb, os
      parts = os.path.join(os.environ["WEIR_OUTPUTS"], "parts")
      os.makedirs(parts)
      con = duckdb.connect()
      for i, (lo, hi) in enumerate([(0, 5), (5, 8)]):
          con.execute(f"COPY (SELECT range AS n FROM range({lo}, {hi})) TO '{parts}/{i}.parquet' (FORMAT parquet)")
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: count-parts }
spec:
  inputs: { parts: { type: directory } }
  outputs: { rows: { type: int } }
  sql:
    engine: duckdb
    query: SELECT n FROM read_parquet({{ inputs.parts }} || '/*.parquet')
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: duck-dir }
spec:
  nodes:
    - { id: write, task: write-parts }
    - { id: count, task: count-parts, inputs: { parts: "{{ nodes.write.outputs.parts }}" } }
  outputs: { rows: "{{ nodes.count.outputs.rows }}" }
"#;

/// DuckDB, as a process: one query writes Parquet, the next reads that
/// file input and returns `rows`, JSON and CSV; the injection is data. A
/// folder of Parquet files is read as a `directory` input.
#[test]
fn a_duckdb_query_reads_a_parquet_input() {
    let project = Project::new(&[("duck.yaml", DUCKDB)]);
    let done = project.run("duck", &[("who", INJECTION)]);
    assert_eq!(
        done["status"],
        "succeeded",
        "{done:#}\n{}",
        project.logs(&done, "groups")
    );
    assert_eq!(done["outputs"]["rows"], 3);
    assert_eq!(
        done["outputs"]["groups"],
        json!([
            { "k": 0, "c": 2, "who": INJECTION },
            { "k": 1, "c": 2, "who": INJECTION },
            { "k": 2, "c": 2, "who": INJECTION },
        ])
    );
    let csv = project.attempt_file(&done, "groups", "outputs/table");
    assert!(csv.starts_with("k,c,who"), "{csv}");
    assert!(csv.contains("\n0,2,'; DROP TABLE t; --"), "{csv}");
    // The runner and its settings are in the attempt's folder.
    let settings = project.attempt_file(&done, "groups", "task/sql.json");
    assert!(settings.contains("read_parquet(?)"), "{settings}");

    // A folder of Parquet files, as a `directory` input.
    let parts = project.run("duck-dir", &[]);
    assert_eq!(
        parts["status"],
        "succeeded",
        "{parts:#}\n{}",
        project.logs(&parts, "count")
    );
    assert_eq!(parts["outputs"]["rows"], 8);
}

const HIVE: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: words }
spec:
  inputs: { line: { type: string } }
  outputs: { rows: { type: int }, words: { type: json } }
  timeout: 10m
  sql:
    engine: hive
    query: |
      SELECT w AS word, count(*) AS c
      FROM (SELECT {{ inputs.line }} AS line) s
      LATERAL VIEW explode(split(line, ' ')) x AS w
      GROUP BY w ORDER BY w
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: words }
spec:
  inputs: { line: { type: string } }
  nodes: [{ id: q, task: words, inputs: { line: "{{ inputs.line }}" } }]
  outputs: { rows: "{{ nodes.q.outputs.rows }}", words: "{{ nodes.q.outputs.words }}" }
"#;

/// HiveQL (`LATERAL VIEW explode`) on Spark SQL with Hive support, the
/// metastore in the attempt's folder, the line a bound parameter.
#[test]
fn hive_a_hiveql_query_runs_on_spark_sql() {
    let project = Project::new(&[("hive.yaml", HIVE)]);
    let done = project.run("words", &[("line", "b a b '; DROP TABLE t; --")]);
    assert_eq!(
        done["status"],
        "succeeded",
        "{done:#}\n{}",
        project.logs(&done, "q")
    );
    // `'; DROP TABLE t; --` is four more words of the line, not a statement.
    assert_eq!(done["outputs"]["rows"], 7, "{:#}", done["outputs"]);
    assert_eq!(
        done["outputs"]["words"][5],
        json!({ "word": "b", "c": 2 }),
        "{:#}",
        done["outputs"]
    );
    // The metastore and warehouse are the attempt's own.
    let id = done["id"].as_str().expect("an id");
    let attempt = project
        .state_dir()
        .join("runs")
        .join(id)
        .join("q")
        .join("1");
    assert!(
        attempt.join("hive").join("metastore_db").is_dir(),
        "no metastore in {}: {:?}\n{}",
        attempt.display(),
        std::fs::read_dir(&attempt).map(|d| d
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect::<Vec<_>>()),
        project.logs(&done, "q")
    );
}

/// What the fake coordinator saw.
#[derive(Default)]
struct Seen {
    posts: Vec<(BTreeMap<String, String>, String)>,
    deletes: Vec<String>,
}

/// A coordinator speaking Trino's client protocol: a query is answered in
/// two pages of data after a page without, `fail` in the query ends in an
/// error document, `slow` never ends (until its `DELETE`), and the first
/// request of each query is answered 503 once (a busy coordinator).
async fn fake_trino(seen: Arc<Mutex<Seen>>) -> String {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{delete, get, post};

    type Shared = (Arc<Mutex<Seen>>, String);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    async fn statement(
        State((seen, base)): State<Shared>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, String) {
        let headers: BTreeMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
            .collect();
        let prepared = headers
            .get("x-trino-prepared-statement")
            .cloned()
            .unwrap_or_default();
        let mut seen = seen.lock().expect("lock");
        seen.posts.push((headers, body.clone()));
        let kind = if prepared.contains("fail") || body.contains("fail") {
            "fail"
        } else if prepared.contains("slow") || body.contains("slow") {
            "slow"
        } else {
            "ok"
        };
        (
            StatusCode::OK,
            json!({ "id": "q1", "nextUri": format!("{base}/v1/statement/{kind}/0") }).to_string(),
        )
    }
    async fn page(
        State((_, base)): State<Shared>,
        UrlPath((kind, n)): UrlPath<(String, u32)>,
    ) -> (StatusCode, String) {
        let columns =
            json!([{ "name": "id", "type": "bigint" }, { "name": "who", "type": "varchar" }]);
        let document = match (kind.as_str(), n) {
            ("ok", 0) => json!({ "id": "q1", "nextUri": format!("{base}/v1/statement/ok/1") }),
            ("ok", 1) => {
                json!({ "id": "q1", "columns": columns, "data": [[1, INJECTION]], "nextUri": format!("{base}/v1/statement/ok/2") })
            }
            ("ok", _) => json!({ "id": "q1", "columns": columns, "data": [[2, "b"]] }),
            ("fail", _) => {
                json!({ "id": "q1", "error": { "message": "line 1:8: Column 'nope' cannot be resolved", "errorName": "COLUMN_NOT_FOUND" } })
            }
            (_, n) => {
                // A query still running: the coordinator's pace.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                json!({ "id": "q1", "nextUri": format!("{base}/v1/statement/slow/{}", n + 1) })
            }
        };
        (StatusCode::OK, document.to_string())
    }
    async fn cancel(
        State((seen, _)): State<Shared>,
        UrlPath((kind, n)): UrlPath<(String, u32)>,
    ) -> StatusCode {
        seen.lock()
            .expect("lock")
            .deletes
            .push(format!("{kind}/{n}"));
        StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .route("/v1/statement", post(statement))
        .route("/v1/statement/{kind}/{n}", get(page))
        .route("/v1/statement/{kind}/{n}", delete(cancel))
        .with_state((seen, base.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    base
}

/// [`fake_trino`] on a runtime of its own, for as long as the test runs.
fn serve_fake_trino(seen: Arc<Mutex<Seen>>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            tx.send(fake_trino(seen).await).expect("the test waits");
            std::future::pending::<()>().await
        });
    });
    rx.recv().expect("the fake coordinator's address")
}

const TRINO: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: ask }
spec:
  inputs: { who: { type: string }, n: { type: int }, what: { type: string } }
  outputs: { rows: { type: int }, all: { type: json }, table: { type: file } }
  timeout: 3s
  sql:
    engine: trino
    connection: { env: TRINO_URL }
    schema: sales
    query: SELECT id, {{ inputs.who }} AS who FROM orders WHERE id < {{ inputs.n }} AND kind = {{ inputs.what }}
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: ask }
spec:
  inputs: { who: { type: string }, what: { type: string, default: x } }
  nodes: [{ id: q, task: ask, inputs: { who: "{{ inputs.who }}", n: 3, what: "{{ inputs.what }}" } }]
  outputs: { rows: "{{ nodes.q.outputs.rows }}", all: "{{ nodes.q.outputs.all }}" }
"#;

/// The Trino client against the fake coordinator: the query's text goes
/// unchanged as a prepared statement and the values as typed literals;
/// pages are followed; an error document fails the attempt with its
/// message; a query that outlives its timeout is cancelled with `DELETE`.
#[test]
fn a_trino_query_follows_the_protocol_of_a_fake_coordinator() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let base = serve_fake_trino(seen.clone());
    let url = format!("{}/memory", base.replace("http://", "http://ana@"));
    let project = Project::new(&[("trino.yaml", TRINO)]).with_env("TRINO_URL", &url);

    let done = project.run("ask", &[("who", INJECTION)]);
    assert_eq!(
        done["status"],
        "succeeded",
        "{done:#}\n{}",
        project.logs(&done, "q")
    );
    assert_eq!(done["outputs"]["rows"], 2);
    assert_eq!(
        done["outputs"]["all"],
        json!([{ "id": 1, "who": INJECTION }, { "id": 2, "who": "b" }])
    );
    {
        let seen = seen.lock().expect("lock");
        let (headers, body) = &seen.posts[0];
        assert_eq!(headers["x-trino-user"], "ana");
        assert_eq!(headers["x-trino-catalog"], "memory");
        assert_eq!(headers["x-trino-schema"], "sales");
        // The coordinator stops it at the task's timeout even if weir dies.
        assert_eq!(headers["x-trino-session"], "query_max_run_time=3s");
        assert_eq!(
            headers["x-trino-prepared-statement"],
            "weir=SELECT%20id%2C%20%3F%20AS%20who%20FROM%20orders%20WHERE%20id%20%3C%20%3F%20AND%20kind%20%3D%20%3F"
        );
        assert_eq!(body, "EXECUTE weir USING '''; DROP TABLE t; --', 3, 'x'");
    }

    let failed = project.run("ask", &[("who", "a"), ("what", "fail")]);
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let error = node(&failed, "q")["error"].to_string();
    assert!(
        error.contains("COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"),
        "{error}"
    );

    let slow = project.run("ask", &[("who", "a"), ("what", "slow")]);
    assert_eq!(node(&slow, "q")["status"], "timedOut", "{slow:#}");
    let deletes = seen.lock().expect("lock").deletes.clone();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert!(deletes[0].starts_with("slow/"), "{deletes:?}");
}

/// In a Kubernetes pod, `weir exec-task` runs the same attempt: the
/// connection's variable comes from the Secret the task names in
/// `secrets` (the pod's environment holds it), and the query runs in the
/// `weir` process there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_pod_a_postgres_query_reads_its_connection_from_the_task_s_secrets() {
    use weir::executor::kubernetes::pod::{self, Payload};

    let Some(url) = postgres_url() else { return };
    let spec: weir::spec::TaskSpec = serde_json::from_value(json!({
        "inputs": { "who": { "type": "string" } },
        "outputs": { "rows": { "type": "int" }, "all": { "type": "json" } },
        "secrets": [{ "name": "warehouse", "key": "url", "env": "WAREHOUSE_URL" }],
        "sql": {
            "engine": "postgres",
            "connection": { "env": "WAREHOUSE_URL" },
            "query": "SELECT {{ inputs.who }} AS who, 1 + 1 AS two",
        },
    }))
    .expect("a task spec");
    let work = tempfile::tempdir().expect("tempdir");
    let payload = Payload {
        execution: "pod-sql".into(),
        node: "q".into(),
        attempt: 1,
        task: "q".into(),
        spec,
        inputs: BTreeMap::from([("who".to_owned(), json!(INJECTION))]),
        timeout_seconds: Some(60),
        file_artifacts: BTreeMap::new(),
        files: BTreeMap::new(),
        unreadable: BTreeMap::new(),
        notebook: None,
        artifacts: work.path().join("artifacts").display().to_string(),
        inherit: Default::default(),
        runs_in: Default::default(),
    };
    let host = vec![
        ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
        ("WAREHOUSE_URL".into(), url.into()),
    ];
    let cancel = tokio_util::sync::CancellationToken::new();
    let report = pod::exec(&payload, work.path(), host, &cancel).await;
    let report = serde_json::to_value(&report).expect("a report");
    assert_eq!(
        report["outputs"],
        json!({ "rows": 1, "all": [{ "who": INJECTION, "two": 2 }] }),
        "{report:#}"
    );
}

/// A sidecar beside an in-process query (no process of the task's own):
/// started and ready before the query runs, stopped once it has ended.
#[test]
fn a_postgres_query_runs_with_its_sidecar_beside_it() {
    let Some(url) = postgres_url() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let server = format!(
        "import os, socket; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); \
         open('sidecar.pid', 'w').write(str(os.getpid())); \
         [s.accept()[0].close() for _ in iter(int, 1)]"
    );
    let definitions = format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: beside }}
spec:
  outputs: {{ rows: {{ type: int }} }}
  sql:
    engine: postgres
    connection: {{ env: SQL_TEST_DB }}
    query: SELECT 1 AS one
  sidecars:
    - name: cache
      image: python:3.12-slim
      command: {command}
      readiness: {{ tcp: {port} }}
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: beside }}
spec:
  nodes: [{{ id: q, task: beside }}]
"#,
        command = serde_json::json!(["python3", "-c", server]),
    );
    let project = Project::new(&[("sql.yaml", &definitions)]).with_env("SQL_TEST_DB", &url);
    let done = project.run("beside", &[]);
    assert_eq!(node(&done, "q")["status"], "succeeded", "{done:#}");
    assert_eq!(node(&done, "q")["outputs"]["rows"], 1);
    let pid = project.attempt_file(&done, "q", "sidecar.pid");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the sidecar (pid {pid}) is stopped after the query"
    );
}

/// A Parquet file's columns (name and DuckDB type) and its rows as JSON,
/// read by DuckDB (as a process, as weir runs it).
fn read_parquet(path: &std::path::Path) -> (Vec<(String, String)>, Value) {
    let script = r#"
import json, sys
import duckdb
rel = duckdb.read_parquet(sys.argv[1])
columns = [[n, str(t)] for n, t in zip(rel.columns, rel.types)]
rows = [[v if isinstance(v, (int, float, bool, type(None))) else str(v) for v in row] for row in rel.fetchall()]
print(json.dumps({"columns": columns, "rows": rows}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).expect("json");
    let columns = read["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c[0].as_str().unwrap().to_owned(),
                c[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (columns, read["rows"].clone())
}

const POSTGRES_PARQUET: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: typed }
spec:
  inputs: { min: { type: int } }
  outputs: { table: { type: file }, rows: { type: int } }
  sql:
    engine: postgres
    connection: { env: SQL_TEST_DB }
    format: parquet
    query: |
      SELECT g AS id, 'n' || g AS name, g * 1.5::float8 AS score, g % 2 = 0 AS even,
             DATE '2026-12-01' + g AS day, jsonb_build_object('g', g) AS meta
      FROM generate_series(1, 3) AS g WHERE g >= {{ inputs.min }} ORDER BY g
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: typed }
spec:
  inputs: { min: { type: int } }
  nodes: [{ id: q, task: typed, inputs: { min: "{{ inputs.min }}" } }]
"#;

/// `format: parquet` on PostgreSQL: the file holds the rows with the
/// columns typed as the server typed them (DuckDB writes it, as a
/// process); a query that returns no row still gives a file with those
/// columns, as the server describes them.
#[test]
fn a_postgres_query_writes_a_typed_parquet_file() {
    let Some(url) = postgres_url() else { return };
    let project = Project::new(&[("sql.yaml", POSTGRES_PARQUET)]).with_env("SQL_TEST_DB", &url);
    let columns = |rows: &str| {
        let done = project.run("typed", &[("min", rows)]);
        assert_eq!(
            done["status"],
            "succeeded",
            "{done:#}\n{}",
            project.logs(&done, "q")
        );
        let id = done["id"].as_str().expect("an id");
        let path = project
            .state_dir()
            .join(format!("runs/{id}/q/1/outputs/table"));
        read_parquet(&path)
    };
    let (schema, rows) = columns("2");
    let typed: Vec<(&str, &str)> = schema
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        typed,
        [
            ("id", "INTEGER"),
            ("name", "VARCHAR"),
            ("score", "DOUBLE"),
            ("even", "BOOLEAN"),
            ("day", "DATE"),
            ("meta", "JSON"),
        ]
    );
    assert_eq!(
        rows,
        json!([
            [2, "n2", 3.0, true, "2026-12-03", "{\"g\":2}"],
            [3, "n3", 4.5, false, "2026-12-04", "{\"g\":3}"],
        ])
    );
    let (empty_schema, none) = columns("10");
    assert_eq!(empty_schema, schema, "the columns of no row");
    assert_eq!(none, json!([]));
}

const TRINO_PARQUET: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: ask }
spec:
  inputs: { who: { type: string } }
  outputs: { table: { type: file } }
  sql:
    engine: trino
    connection: { env: TRINO_URL }
    format: parquet
    query: SELECT id, {{ inputs.who }} AS who FROM orders
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: ask }
spec:
  inputs: { who: { type: string } }
  nodes: [{ id: q, task: ask, inputs: { who: "{{ inputs.who }}" } }]
"#;

/// `format: parquet` on Trino: the columns typed as the coordinator's
/// `columns` name them, every page's rows in order.
#[test]
fn a_trino_query_writes_a_typed_parquet_file() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let base = serve_fake_trino(seen);
    let url = format!("{}/memory/sales", base.replace("http://", "http://ana@"));
    let project = Project::new(&[("trino.yaml", TRINO_PARQUET)]).with_env("TRINO_URL", &url);
    let done = project.run("ask", &[("who", INJECTION)]);
    assert_eq!(
        done["status"],
        "succeeded",
        "{done:#}\n{}",
        project.logs(&done, "q")
    );
    let id = done["id"].as_str().expect("an id");
    let (schema, rows) = read_parquet(
        &project
            .state_dir()
            .join(format!("runs/{id}/q/1/outputs/table")),
    );
    assert_eq!(
        schema,
        [
            ("id".to_owned(), "BIGINT".to_owned()),
            ("who".to_owned(), "VARCHAR".to_owned())
        ]
    );
    assert_eq!(rows, json!([[1, INJECTION], [2, "b"]]));
}
