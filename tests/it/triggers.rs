//! Event triggers (DESIGN.md section 13) through the real daemon: objects
//! put in a real S3 API (moto's server, started by `scripts/test-env`) and
//! in a local folder, an upstream chain, and webhook calls — each event
//! run exactly once, across restarts, a kill -9 and two daemons.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::Value;

use crate::common::{Daemon, GitRepo, TestDb, eventually, http, validate_files, weir_with};

/// moto's S3 endpoint (`scripts/test-env` starts it); `None` (skip) when
/// it is not set, a failure when `CI=true`.
fn s3_endpoint() -> Option<String> {
    match std::env::var("WEIR_TEST_S3_ENDPOINT") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "WEIR_TEST_S3_ENDPOINT is not set; CI must test artifact triggers on S3"
            );
            eprintln!("skipping: WEIR_TEST_S3_ENDPOINT is not set");
            None
        }
    }
}

/// The daemon's environment for the S3 API at `endpoint`.
fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

/// A fresh bucket in moto, and a client of it.
struct Bucket {
    name: String,
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
}

impl Bucket {
    fn new(endpoint: &str) -> Bucket {
        let name = format!(
            "landing-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
        let (status, body) = http(addr, "PUT", &format!("/{name}"), &[], b"");
        assert_eq!(status, 200, "moto creates bucket {name}: {body}");
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(&name)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("an S3 client of moto");
        Bucket {
            name,
            store: Arc::new(store),
            runtime: tokio::runtime::Runtime::new().expect("runtime"),
        }
    }

    fn put(&self, key: &str, content: &str) {
        let store = self.store.clone();
        let path = ObjectPath::from(key);
        let bytes = content.as_bytes().to_vec();
        self.runtime
            .block_on(async move { store.put(&path, PutPayload::from(bytes)).await })
            .expect("put an object");
    }
}

/// A task that counts a file's bytes, its workflow, and `launch_plan` (the
/// YAML of the launch plan that runs it).
fn counting(launch_plan: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: count }}
spec:
  inputs: {{ file: {{ type: file }} }}
  outputs: {{ bytes: {{ type: int }}, text: {{ type: string }} }}
  script:
    interpreter: bash
    source: |
      text=$(cat "$WEIR_INPUT_FILE")
      printf '{{"bytes": %d, "text": "%s"}}' "$(wc -c < "$WEIR_INPUT_FILE")" "$text" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: load }}
spec:
  inputs: {{ file: {{ type: file }} }}
  outputs: {{ bytes: "{{{{ nodes.count.outputs.bytes }}}}", text: "{{{{ nodes.count.outputs.text }}}}" }}
  nodes: [ {{ id: count, task: count, inputs: {{ file: "{{{{ inputs.file }}}}" }} }} ]
---
{launch_plan}"#
    )
}

fn on_objects(url: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: {{ name: on-orders }}
spec:
  workflow: load
  triggers:
    - artifact: {{ url: "{url}", pattern: "*.csv", input: file, interval: 200ms }}
"#
    )
}

/// The executions of launch plan `name`, as `weir executions -o json`.
fn executions_of(db: &TestDb, name: &str) -> Vec<Value> {
    let out = weir_with(
        &[
            "executions",
            "--launch-plan",
            name,
            "--limit",
            "1000",
            "-o",
            "json",
        ],
        db,
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

fn succeeded(list: &[Value]) -> usize {
    list.iter().filter(|e| e["status"] == "succeeded").count()
}

/// The triggers' status as `GET /api/v1/status` shows it.
fn triggers(daemon: &Daemon) -> Vec<Value> {
    let (_, body) = http(&daemon.addr, "GET", "/api/v1/status", &[], b"");
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["triggers"].as_array().cloned())
        .unwrap_or_default()
}

/// The instant the trigger `key` was last polled.
fn polled_at(daemon: &Daemon, key: &str) -> Option<String> {
    triggers(daemon)
        .iter()
        .find(|t| t["trigger"] == key)
        .and_then(|t| t["polledAt"].as_str().map(str::to_owned))
}

/// Each execution's event key (object key), its input's artifact and its
/// output text.
fn runs_by_object(list: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut by = BTreeMap::<String, Vec<String>>::new();
    for e in list {
        assert_eq!(e["trigger"], "artifact", "{e:#}");
        let key = e["event"]["detail"]["key"].as_str().expect("an object key");
        by.entry(key.to_owned())
            .or_default()
            .push(e["outputs"]["text"].as_str().unwrap_or("").to_owned());
    }
    by
}

#[test]
fn objects_put_in_s3_run_once_each_and_only_new_content_runs_again() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = Bucket::new(&endpoint);
    let url = format!("s3://{}/orders/", bucket.name);
    // There before the launch plan: the baseline, never run.
    bucket.put("orders/old.csv", "old");
    let repo = GitRepo::new();
    repo.write("flow.yaml", &counting(&on_objects(&url)));
    repo.commit("load every order file");
    let db = TestDb::sqlite();
    let env = s3_env(&endpoint);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let daemon = Daemon::start_with_env(
        &db,
        &[
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--interval",
            "1h",
        ],
        &env,
    );
    let key = format!("artifact:{url}*.csv");
    eventually("the trigger takes its baseline", || {
        polled_at(&daemon, &key).is_some()
    });
    for i in 0..10 {
        bucket.put(&format!("orders/{i}.csv"), &format!("order-{i}"));
    }
    // Neither another suffix nor a deeper folder matches `*.csv`.
    bucket.put("orders/readme.txt", "no");
    bucket.put("orders/2026/deep.csv", "no");
    eventually("ten executions succeeded", || {
        succeeded(&executions_of(&db, "on-orders")) == 10
    });
    let list = executions_of(&db, "on-orders");
    let by = runs_by_object(&list);
    let expected: BTreeSet<String> = (0..10).map(|i| format!("orders/{i}.csv")).collect();
    assert_eq!(by.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (object, texts) in &by {
        let i = object
            .trim_start_matches("orders/")
            .trim_end_matches(".csv");
        assert_eq!(
            texts,
            &vec![format!("order-{i}")],
            "{object} ran once, with its own content"
        );
    }

    // The same content again has the same ETag: not a new event; new
    // content is a new version of the object: it runs. (A listing that
    // sees the second put sees the first.)
    bucket.put("orders/3.csv", "order-3");
    bucket.put("orders/4.csv", "order-4, corrected");
    eventually("the corrected object ran", || {
        succeeded(&executions_of(&db, "on-orders")) == 11
    });
    let by = runs_by_object(&executions_of(&db, "on-orders"));
    assert_eq!(by["orders/3.csv"], ["order-3"]);
    let mut texts = by["orders/4.csv"].clone();
    texts.sort();
    assert_eq!(texts, ["order-4", "order-4, corrected"]);

    // The status shows the trigger's events and the metrics count them.
    let status = triggers(&daemon);
    let t = status
        .iter()
        .find(|t| t["trigger"] == key.as_str())
        .expect("the trigger's status");
    assert_eq!(t["events"], 11, "{t:#}");
    assert_eq!(t["deferred"], 0, "{t:#}");
    assert!(t["error"].is_null(), "{t:#}");
    let (_, metrics) = http(&daemon.addr, "GET", "/metrics", &[], b"");
    assert!(
        metrics.contains("weir_trigger_executions_total{kind=\"artifact\"} 11"),
        "{metrics}"
    );
}

/// The local folder of a `file://` trigger, written as a producer should:
/// each file complete under a temporary name, then renamed into place.
fn drop_file(folder: &std::path::Path, name: &str, content: &str) {
    let staged = folder.join(format!(".{name}.partial"));
    std::fs::write(&staged, content).expect("write");
    std::fs::rename(&staged, folder.join(name)).expect("rename");
}

/// How many objects `bucket` holds under `prefix`.
fn count_objects(bucket: &Bucket, prefix: &str) -> usize {
    let store = bucket.store.clone();
    let prefix = ObjectPath::from(prefix);
    bucket
        .runtime
        .block_on(async move {
            use futures_util::TryStreamExt;
            store.list(Some(&prefix)).try_collect::<Vec<_>>().await
        })
        .map_or(0, |listed| listed.len())
}

#[test]
fn a_daemon_killed_while_objects_keep_landing_runs_each_object_exactly_once() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = Arc::new(Bucket::new(&endpoint));
    let url = format!("s3://{}/orders/", bucket.name);
    let repo = GitRepo::new();
    repo.write("flow.yaml", &counting(&on_objects(&url)));
    repo.commit("load every order file");
    let db = TestDb::sqlite();
    let env = s3_env(&endpoint);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "--repo",
        repo.path().to_str().expect("utf-8"),
        "--interval",
        "1h",
    ];
    let daemon = Daemon::start_with_env(&db, &args, &env);
    let key = format!("artifact:{url}*.csv");
    eventually("the trigger takes its baseline", || {
        polled_at(&daemon, &key).is_some()
    });
    let producer = {
        let bucket = bucket.clone();
        std::thread::spawn(move || {
            for i in 0..30 {
                bucket.put(&format!("orders/{i:02}.csv"), &format!("order-{i}"));
                std::thread::sleep(std::time::Duration::from_millis(60));
            }
        })
    };
    eventually("some objects ran", || {
        !executions_of(&db, "on-orders").is_empty()
    });
    daemon.kill9();
    // Objects keep landing while no daemon runs.
    let at_kill = count_objects(&bucket, "orders");
    eventually("more objects landed while the daemon was down", || {
        count_objects(&bucket, "orders") >= (at_kill + 3).min(30)
    });
    let _daemon = Daemon::start_with_env(&db, &args, &env);
    producer.join().expect("the producer ends");
    eventually("every object ran", || {
        succeeded(&executions_of(&db, "on-orders")) == 30
    });
    // One more: once it ran, a listing after every other object's ran.
    bucket.put("orders/last.csv", "last");
    eventually("the last object ran", || {
        succeeded(&executions_of(&db, "on-orders")) == 31
    });
    let by = runs_by_object(&executions_of(&db, "on-orders"));
    assert_eq!(by.len(), 31, "{by:#?}");
    assert!(
        by.values().all(|runs| runs.len() == 1),
        "each object ran once: {by:#?}"
    );
}

#[test]
fn two_daemons_on_one_postgres_store_run_each_object_once() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = Bucket::new(&endpoint);
    let url = format!("s3://{}/orders/", bucket.name);
    let repo = GitRepo::new();
    repo.write("flow.yaml", &counting(&on_objects(&url)));
    repo.commit("load every order file");
    let env = s3_env(&endpoint);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "--repo",
        repo.path().to_str().expect("utf-8"),
        "--interval",
        "1h",
    ];
    let first = Daemon::start_with_env(&db, &args, &env);
    let second = Daemon::start_with_env(&db, &args, &env);
    let key = format!("artifact:{url}*.csv");
    eventually("the trigger takes its baseline", || {
        polled_at(&first, &key).is_some()
    });
    for i in 0..10 {
        bucket.put(&format!("orders/{i}.csv"), &format!("order-{i}"));
    }
    eventually("ten executions succeeded", || {
        succeeded(&executions_of(&db, "on-orders")) == 10
    });
    // The leader stops: the other takes over and goes on from its records.
    first.kill9();
    bucket.put("orders/last.csv", "last");
    eventually("the last object ran", || {
        succeeded(&executions_of(&db, "on-orders")) == 11
    });
    drop(second);
    let by = runs_by_object(&executions_of(&db, "on-orders"));
    assert_eq!(by.len(), 11);
    assert!(by.values().all(|runs| runs.len() == 1), "{by:#?}");
}

const CHAIN: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: ingest }
spec:
  inputs: { day: { type: datetime }, fail: { type: bool, default: false } }
  outputs: { orders: { type: file } }
  script:
    interpreter: bash
    source: |
      if [ "$WEIR_INPUT_FAIL" = "true" ]; then exit 3; fi
      echo "orders of $WEIR_INPUT_DAY" > "$WEIR_OUTPUTS/orders"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: ingest-flow }
spec:
  inputs: { day: { type: datetime }, fail: { type: bool, default: false } }
  outputs: { orders: "{{ nodes.ingest.outputs.orders }}" }
  nodes: [ { id: ingest, task: ingest, inputs: { day: "{{ inputs.day }}", fail: "{{ inputs.fail }}" } } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: ingest-orders }
spec:
  workflow: ingest-flow
  schedule: { every: 1h, kickoffTimeInput: day, catchUp: none }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: transform }
spec:
  inputs: { day: { type: datetime }, orders: { type: file } }
  outputs: { line: { type: string } }
  script:
    interpreter: bash
    source: |
      printf '{"line": "%s for %s"}' "$(cat "$WEIR_INPUT_ORDERS")" "$WEIR_INPUT_DAY" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: transform-flow }
spec:
  inputs: { day: { type: datetime }, orders: { type: file } }
  outputs: { line: "{{ nodes.transform.outputs.line }}" }
  nodes: [ { id: transform, task: transform, inputs: { day: "{{ inputs.day }}", orders: "{{ inputs.orders }}" } } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: transform-orders }
spec:
  workflow: transform-flow
  triggers:
    - upstream:
        launchPlan: ingest-orders
        on: [succeeded]
        inputs: { day: "{{ upstream.inputs.day }}", orders: "{{ upstream.outputs.orders }}" }
"#;

#[test]
fn an_upstream_success_runs_its_downstream_once_with_its_output_and_a_failure_none() {
    let repo = GitRepo::new();
    repo.write("chain.yaml", CHAIN);
    repo.commit("transform what ingest lands");
    let db = TestDb::sqlite();
    let daemon = Daemon::start(
        &db,
        &[
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--interval",
            "1h",
        ],
    );
    eventually("the upstream trigger begins", || {
        !triggers(&daemon).is_empty()
    });
    let run = |inputs: &[&str]| {
        let mut args = vec!["run", "ingest-orders"];
        for i in inputs {
            args.extend(["--input", i]);
        }
        let out = weir_with(&args, &db);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["day=2026-12-01T00:00:00Z"]);
    eventually("transform ran once for the success", || {
        succeeded(&executions_of(&db, "transform-orders")) == 1
    });
    let transform = &executions_of(&db, "transform-orders")[0];
    assert_eq!(transform["trigger"], "upstream");
    assert_eq!(
        transform["outputs"]["line"], "orders of 2026-12-01T00:00:00Z for 2026-12-01T00:00:00Z",
        "{transform:#}"
    );
    let ingest = executions_of(&db, "ingest-orders");
    assert_eq!(transform["event"]["event"], ingest[0]["id"]);
    // The console's page of the run links the upstream execution.
    let id = transform["id"].as_str().expect("an id");
    let (status, page) = http(&daemon.addr, "GET", &format!("/executions/{id}"), &[], b"");
    assert_eq!(status, 200);
    let upstream = ingest[0]["id"].as_str().expect("an id");
    assert!(
        page.contains(&format!("href=\"/executions/{upstream}\"")),
        "{page}"
    );

    // A failure starts nothing: once the success after it has started its
    // transform, the failure was seen too (ends are read in order).
    run(&["day=2026-12-02T00:00:00Z", "fail=true"]);
    eventually("the failing ingest ended", || {
        executions_of(&db, "ingest-orders")
            .iter()
            .any(|e| e["status"] == "failed")
    });
    run(&["day=2026-12-03T00:00:00Z"]);
    eventually("the next success ran its transform", || {
        succeeded(&executions_of(&db, "transform-orders")) == 2
    });
    assert_eq!(
        executions_of(&db, "transform-orders").len(),
        2,
        "no run for a failure"
    );

    // A backfill of three hours: three ingests, three transforms.
    let out = weir_with(
        &[
            "backfill",
            "ingest-orders",
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-01T03:00:00Z",
        ],
        &db,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("a transform per backfilled ingest", || {
        succeeded(&executions_of(&db, "transform-orders")) == 5
    });
    run(&["day=2026-12-04T00:00:00Z"]);
    eventually("the last ingest ran its transform", || {
        succeeded(&executions_of(&db, "transform-orders")) == 6
    });
    let transforms = executions_of(&db, "transform-orders");
    assert_eq!(transforms.len(), 6, "one per succeeded ingest");
    let days: BTreeSet<String> = transforms
        .iter()
        .map(|t| t["inputs"]["day"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        days,
        BTreeSet::from(
            [
                "2026-12-01T00:00:00Z",
                "2026-12-03T00:00:00Z",
                "2026-12-04T00:00:00Z",
                "2026-11-01T00:00:00Z",
                "2026-11-01T01:00:00Z",
                "2026-11-01T02:00:00Z"
            ]
            .map(str::to_owned)
        )
    );
}

const CALLED: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: echo }
spec:
  inputs: { rows: { type: int } }
  outputs: { rows: { type: int } }
  script:
    interpreter: bash
    source: |
      echo "{\"rows\": $WEIR_INPUT_ROWS}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: echo-flow }
spec:
  inputs: { rows: { type: int } }
  outputs: { rows: "{{ nodes.echo.outputs.rows }}" }
  nodes: [ { id: echo, task: echo, inputs: { rows: "{{ inputs.rows }}" } } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: on-call }
spec:
  workflow: echo-flow
  triggers: [ { webhook: {} } ]
"#;

#[test]
fn a_webhook_call_runs_once_per_idempotency_key_and_refuses_bad_bodies_and_no_token() {
    let repo = GitRepo::new();
    repo.write("called.yaml", CALLED);
    repo.commit("run when called");
    let db = TestDb::sqlite();
    let served = Daemon::with_token(&db, &repo, "s3cret");
    let addr = &served.daemon.addr;
    let path = "/api/v1/triggers/default/on-call";
    let auth = ("Authorization", "Bearer s3cret");
    let json = ("Content-Type", "application/json");
    let call = |key: &str, body: &str| {
        http(
            addr,
            "POST",
            path,
            &[auth, json, ("Idempotency-Key", key)],
            body.as_bytes(),
        )
    };
    let (status, first) = call("order-7", r#"{"rows": 7}"#);
    assert_eq!(status, 201, "{first}");
    let (status, again) = call("order-7", r#"{"rows": 7}"#);
    assert_eq!(status, 200, "{again}");
    let id = |body: &str| serde_json::from_str::<Value>(body).expect("json")["execution"].clone();
    assert_eq!(
        id(&first),
        id(&again),
        "a retried call finds the first execution"
    );
    let (status, reused) = call("order-7", r#"{"rows": 8}"#);
    assert_eq!(status, 422, "{reused}");
    let (status, wrong) = call("order-8", r#"{"rows": "seven"}"#);
    assert_eq!(status, 400, "{wrong}");
    assert!(wrong.contains("rows"), "the error names the field: {wrong}");
    let (status, unknown) = call("order-9", r#"{"rowz": 1}"#);
    assert_eq!(status, 400, "{unknown}");
    let (status, _) = http(
        addr,
        "POST",
        path,
        &[json, ("Idempotency-Key", "k")],
        b"{\"rows\": 1}",
    );
    assert_eq!(status, 401);
    let (status, none) = call("k", r#"{"rows": 1}"#);
    assert_eq!(status, 201, "{none}");
    let (status, missing) = http(
        addr,
        "POST",
        "/api/v1/triggers/default/no-such-plan",
        &[auth, json],
        b"{}",
    );
    assert_eq!(status, 404, "{missing}");
    eventually("both calls ran", || {
        succeeded(&executions_of(&db, "on-call")) == 2
    });
    let list = executions_of(&db, "on-call");
    assert!(list.iter().all(|e| e["trigger"] == "webhook"));
    let rows: BTreeSet<i64> = list
        .iter()
        .filter_map(|e| e["outputs"]["rows"].as_i64())
        .collect();
    assert_eq!(rows, BTreeSet::from([1, 7]));
}

#[test]
fn triggers_are_checked_against_the_workflows_they_start() {
    let broken = CHAIN
        .replace(
            "orders: \"{{ upstream.outputs.orders }}\"",
            "orders: \"{{ upstream.outputs.order }}\"",
        )
        .replace(
            "day: \"{{ upstream.inputs.day }}\"",
            "day: \"{{ upstream.inputs.fail }}\"",
        );
    let files = [
        ("chain.yaml", broken.as_str()),
        (
            "objects.yaml",
            r#"apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: on-files }
spec:
  workflow: transform-flow
  inputs: { day: "2026-01-01T00:00:00Z" }
  triggers:
    - artifact: { url: "s3://landing/x/", pattern: "[", input: day }
    - upstream: { launchPlan: ingest-order, inputs: { orders: "{{ upstream.outputs.orders }}" } }
"#,
        ),
    ];
    let report = validate_files(&files);
    let found: Vec<String> = report
        .diagnostics
        .iter()
        .map(|d| {
            format!(
                "{} {}:{} {}",
                d.code.id(),
                d.file.display(),
                d.pos.map_or(0, |p| p.line),
                d.message
            )
        })
        .collect();
    let has = |needle: &str| found.iter().any(|f| f.contains(needle));
    assert!(
        has("W048 chain.yaml") && has("no output `order`"),
        "{found:#?}"
    );
    assert!(
        has("W015 chain.yaml") && has("upstream input `fail` is bool"),
        "{found:#?}"
    );
    assert!(
        has("W048 objects.yaml:8 `[` is not a pattern"),
        "{found:#?}"
    );
    assert!(
        has("W048 objects.yaml:8") && has("must be a file, but it is datetime"),
        "{found:#?}"
    );
    assert!(
        has("upstream launch plan `ingest-order` does not exist"),
        "{found:#?}"
    );
}

/// A launch plan whose runs wait until the file `gate` exists, started by
/// the `*.csv` files of `url` (listed every `interval`), at most two at
/// once.
fn gated(url: &str, gate: &std::path::Path, interval: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: {{ name: wait }}
spec:
  inputs: {{ file: {{ type: file }} }}
  outputs: {{ text: {{ type: string }} }}
  script:
    interpreter: bash
    source: |
      # At most a minute: a failed test leaves no endless process behind.
      for _ in $(seq 1200); do [ -e "{gate}" ] && break; sleep 0.05; done
      printf '{{"text": "%s"}}' "$(cat "$WEIR_INPUT_FILE")" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: {{ name: load }}
spec:
  inputs: {{ file: {{ type: file }} }}
  outputs: {{ text: "{{{{ nodes.wait.outputs.text }}}}" }}
  nodes: [ {{ id: wait, task: wait, inputs: {{ file: "{{{{ inputs.file }}}}" }} }} ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: {{ name: on-orders }}
spec:
  workflow: load
  triggers:
    - artifact: {{ url: "{url}", pattern: "*.csv", input: file, interval: {interval}, maxPending: 2 }}
"#,
        gate = gate.display()
    )
}

/// A landing folder watched by [`gated`] in a daemon of its own, its
/// baseline taken.
struct Folder {
    landing: tempfile::TempDir,
    gate: std::path::PathBuf,
    url: String,
    repo: GitRepo,
    db: TestDb,
    daemon: Daemon,
    key: String,
}

impl Folder {
    fn watched(interval: &str, open: bool) -> Folder {
        let landing = tempfile::tempdir().expect("tempdir");
        let gate = landing.path().join("gate.open");
        if open {
            std::fs::write(&gate, "").expect("open the gate");
        }
        let url = format!("file://{}/", landing.path().display());
        let repo = GitRepo::new();
        repo.write("flow.yaml", &gated(&url, &gate, interval));
        repo.commit(&format!("load order files, listed every {interval}"));
        let db = TestDb::sqlite();
        let daemon = Daemon::start(
            &db,
            &[
                "--repo",
                repo.path().to_str().expect("utf-8"),
                "--interval",
                "300ms",
            ],
        );
        let key = format!("artifact:{url}*.csv");
        eventually("the trigger takes its baseline", || {
            polled_at(&daemon, &key).is_some()
        });
        Folder {
            landing,
            gate,
            url,
            repo,
            db,
            daemon,
            key,
        }
    }
}

fn trigger_status(daemon: &Daemon, key: &str) -> Value {
    triggers(daemon)
        .into_iter()
        .find(|t| t["trigger"] == key)
        .unwrap_or(Value::Null)
}

#[test]
fn events_beyond_max_pending_wait_visibly_and_a_new_version_runs_none_again() {
    let Folder {
        landing,
        gate,
        url,
        repo,
        db,
        daemon,
        key,
    } = Folder::watched("200ms", false);
    for i in 0..5 {
        drop_file(landing.path(), &format!("{i}.csv"), &format!("order-{i}"));
    }
    eventually("two run and three wait, shown by the status", || {
        let t = trigger_status(&daemon, &key);
        t["events"] == 5 && t["deferred"] == 3
    });
    assert_eq!(executions_of(&db, "on-orders").len(), 2, "maxPending: 2");
    // The gauge is counted every few seconds.
    eventually("the metrics count the deferred events", || {
        let (_, metrics) = http(&daemon.addr, "GET", "/metrics", &[], b"");
        metrics.contains("weir_trigger_events_deferred 3")
    });
    assert_eq!(executions_of(&db, "on-orders").len(), 2, "still two");
    std::fs::write(&gate, "").expect("open the gate");
    eventually("every file ran once room was made", || {
        succeeded(&executions_of(&db, "on-orders")) == 5
    });
    assert_eq!(trigger_status(&daemon, &key)["deferred"], 0);

    // A new version of the launch plan (the same trigger) goes on from
    // where the first stopped: no file runs again, a new one runs.
    repo.write("flow.yaml", &gated(&url, &gate, "250ms"));
    repo.commit("list the folder a little less often");
    eventually("the new version is active", || {
        let out = weir_with(
            &[
                "versions",
                "--kind",
                "launch-plan",
                "--name",
                "on-orders",
                "-o",
                "json",
            ],
            &db,
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .is_some_and(|versions| versions.len() == 2)
    });
    drop_file(landing.path(), "5.csv", "order-5");
    eventually("the new file ran", || {
        succeeded(&executions_of(&db, "on-orders")) == 6
    });
    let list = executions_of(&db, "on-orders");
    let by = runs_by_object(&list);
    assert_eq!(by.len(), 6);
    assert!(by.values().all(|runs| runs.len() == 1), "{by:#?}");
    let versions: BTreeSet<&str> = list
        .iter()
        .filter_map(|e| e["launchPlanVersion"].as_str())
        .collect();
    assert_eq!(versions.len(), 2, "the last file ran the new version");
}

#[test]
fn a_shorter_interval_in_a_new_version_takes_effect_without_a_restart() {
    let Folder {
        landing,
        gate,
        url,
        repo,
        db,
        daemon: _daemon,
        key: _,
    } = Folder::watched("1h", true);
    // The same trigger (url and pattern), now listed every 200 ms: the
    // poll an hour away is brought forward.
    repo.write("flow.yaml", &gated(&url, &gate, "200ms"));
    repo.commit("look every 200 ms");
    drop_file(landing.path(), "0.csv", "order-0");
    eventually("the file ran without waiting an hour", || {
        succeeded(&executions_of(&db, "on-orders")) == 1
    });
    let list = executions_of(&db, "on-orders");
    assert_eq!(runs_by_object(&list).keys().collect::<Vec<_>>(), ["0.csv"]);
}

#[test]
fn a_prefix_that_cannot_be_read_is_shown_failing_and_retried_never_taken_as_empty() {
    let parent = tempfile::tempdir().expect("tempdir");
    let folder = parent.path().join("landing");
    let url = format!("file://{}/", folder.display());
    let repo = GitRepo::new();
    repo.write("flow.yaml", &counting(&on_objects(&url)));
    repo.commit("load order files from a folder not made yet");
    let db = TestDb::sqlite();
    let daemon = Daemon::start(
        &db,
        &[
            "--repo",
            repo.path().to_str().expect("utf-8"),
            "--interval",
            "1h",
        ],
    );
    let key = format!("artifact:{url}*.csv");
    eventually("the status shows the trigger failing", || {
        let t = trigger_status(&daemon, &key);
        t["error"].is_string() && t["errorSince"].is_string() && t["polledAt"].is_null()
    });
    let t = trigger_status(&daemon, &key);
    assert!(
        t["error"].as_str().unwrap_or("").contains("landing"),
        "the error names what cannot be read: {t:#}"
    );
    let status = weir_with(&["status"], &db);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("on-orders") && text.contains("failing since"),
        "{text}"
    );
    // The folder appears with a file in it: the baseline is taken only
    // now, so the file that was there first does not run; the next does.
    std::fs::create_dir(&folder).expect("mkdir");
    drop_file(&folder, "first.csv", "first");
    eventually("the trigger recovers", || {
        let t = trigger_status(&daemon, &key);
        t["error"].is_null() && t["polledAt"].is_string()
    });
    drop_file(&folder, "second.csv", "second");
    eventually("the next file ran", || {
        succeeded(&executions_of(&db, "on-orders")) == 1
    });
    let by = runs_by_object(&executions_of(&db, "on-orders"));
    assert_eq!(by.keys().collect::<Vec<_>>(), ["second.csv"]);
}

#[test]
fn weir_plan_lists_the_triggers_a_commit_starts_changes_and_stops() {
    let repo = GitRepo::new();
    repo.write("called.yaml", CALLED);
    repo.write("chain.yaml", CHAIN);
    let base = repo.commit("base");
    repo.write(
        "called.yaml",
        &CALLED.replace("[ { webhook: {} } ]", "[ { webhook: { maxPending: 5 } } ]"),
    );
    repo.write(
        "chain.yaml",
        &CHAIN.replace("on: [succeeded]", "on: [succeeded]\n        maxPending: 1"),
    );
    let middle = repo.commit("bound the runs");
    let path = repo.path().to_str().expect("utf-8");
    let plan = |base: &str, head: &str| -> Vec<(String, String, String)> {
        let out = crate::common::weir(&[
            "plan", "--repo", path, "--base", base, "--head", head, "-o", "json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).expect("json");
        json["triggers"]
            .as_array()
            .expect("triggers")
            .iter()
            .map(|t| {
                let text = |k: &str| t[k].as_str().unwrap_or("").to_owned();
                (text("name"), text("change"), text("to"))
            })
            .collect()
    };
    assert_eq!(
        plan(&base, &middle),
        [
            (
                "on-call".to_owned(),
                "changed".to_owned(),
                "webhook, maxPending 5".to_owned()
            ),
            (
                "transform-orders".to_owned(),
                "changed".to_owned(),
                "upstream ingest-orders on succeeded, binding day, orders, maxPending 1".to_owned()
            ),
        ]
    );
    repo.remove("called.yaml");
    let head = repo.commit("no more calls");
    let stopped = plan(&middle, &head);
    assert_eq!(stopped.len(), 1);
    assert_eq!(
        (stopped[0].0.as_str(), stopped[0].1.as_str()),
        ("on-call", "stopped")
    );
    let table = crate::common::weir(&["plan", "--repo", path, "--base", &base, "--head", &head]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("trigger stopped default/on-call: webhook, maxPending 100"),
        "{text}"
    );
}
