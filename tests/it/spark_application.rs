//! `spark` tasks on Kubernetes as the Spark operator's `SparkApplication`s
//! (issue 15, DESIGN.md "Spark tasks"), through the real `kube::Client`
//! backed by kube-fake-client, with a stand-in for the operator: it runs an
//! application's driver as a real process (the init container's `weir
//! exec-task --install`, then the driver's `spark-submit` of the entry
//! point, in local mode), or, for the lifecycle stories, only writes the
//! statuses an operator would.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_fake_client::ClientBuilder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir::executor::kubernetes::job::job_name;
use weir::store::execution::Status;

use crate::kubernetes::{Cluster, NAMESPACE, finish, start, synced};

/// The operator's kind, as kube-fake-client registers it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SparkApplication {
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<Value>,
}

impl kube::Resource for SparkApplication {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "SparkApplication".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "sparkoperator.k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1beta2".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "sparkapplications".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A cluster with the Spark operator's kind; `claim`: the executor shares
/// a work volume between an application's pods.
async fn cluster(claim: bool) -> Cluster {
    let builder = ClientBuilder::new()
        .with_status_subresource::<Job>()
        .with_resource::<SparkApplication>();
    let mut cluster = Cluster::of(builder).await;
    if claim {
        cluster.settings.work_claim = Some("weir-work".into());
    }
    cluster
}

fn applications(cluster: &Cluster) -> Api<SparkApplication> {
    Api::namespaced(cluster.client.clone(), NAMESPACE)
}

async fn names(cluster: &Cluster) -> Vec<String> {
    applications(cluster)
        .list(&ListParams::default())
        .await
        .expect("list applications")
        .items
        .into_iter()
        .filter_map(|a| a.metadata.name)
        .collect()
}

/// What the stand-in operator does with an application.
#[derive(Clone)]
enum Driver {
    /// Runs it: `spark-submit --master local[2]` of its entry point, with
    /// the driver's environment, its work volume a folder of the host.
    Run { claim: PathBuf },
    /// Writes RUNNING, then the end it is given: COMPLETED with this
    /// report in the driver pod, or FAILED with this message.
    Report(Result<Value, String>),
}

/// The Spark operator (and the kubelet of its pods), for the applications
/// of one namespace.
struct Operator {
    stop: Arc<AtomicBool>,
    /// While set, applications are left as they are.
    paused: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Operator {
    fn start(cluster: &Cluster, driver: Driver) -> Operator {
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let (stop_flag, paused_flag) = (stop.clone(), paused.clone());
        let apps = applications(cluster);
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
        let work = cluster.work.path().to_path_buf();
        let task = tokio::spawn(async move {
            let mut running: HashMap<String, (Child, PathBuf)> = HashMap::new();
            let mut done: HashSet<String> = HashSet::new();
            while !stop_flag.load(Ordering::SeqCst) {
                // The stand-in operator's pace: it runs real processes.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let Ok(list) = apps.list(&ListParams::default()).await else {
                    continue;
                };
                let present: HashSet<String> = list
                    .items
                    .iter()
                    .filter_map(|a| a.metadata.name.clone())
                    .collect();
                // A deleted application's driver is stopped.
                running.retain(|name, (child, _)| {
                    if present.contains(name) {
                        return true;
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    false
                });
                if paused_flag.load(Ordering::SeqCst) {
                    continue;
                }
                for app in &list.items {
                    let name = app.metadata.name.clone().unwrap_or_default();
                    if done.contains(&name) || running.contains_key(&name) {
                        continue;
                    }
                    set_state(
                        &apps,
                        &name,
                        json!({ "applicationState": { "state": "RUNNING" } }),
                    )
                    .await;
                    match &driver {
                        Driver::Run { claim } => {
                            let dir = work.join(&name);
                            let child = spawn_driver(app, &dir, claim);
                            running.insert(name, (child, dir));
                        }
                        Driver::Report(end) => {
                            done.insert(name.clone());
                            let (state, message) = match end {
                                Ok(report) => ("COMPLETED", Some(report.to_string())),
                                Err(_) => ("FAILED", None),
                            };
                            driver_pod(&pods, app, state == "COMPLETED", message).await;
                            let mut status = json!({
                                "applicationState": { "state": state },
                                "driverInfo": { "podName": format!("{name}-driver") },
                            });
                            if let Err(error) = end {
                                status["applicationState"]["errorMessage"] = json!(error);
                            }
                            set_state(&apps, &name, status).await;
                        }
                    }
                }
                let mut ended = Vec::new();
                for (name, (child, dir)) in running.iter_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        let message = std::fs::read_to_string(dir.join("termination-log")).ok();
                        ended.push((name.clone(), status.success(), message));
                    }
                }
                for (name, ok, message) in ended {
                    running.remove(&name);
                    done.insert(name.clone());
                    let Some(app) = list
                        .items
                        .iter()
                        .find(|a| a.metadata.name.as_deref() == Some(&name))
                    else {
                        continue;
                    };
                    driver_pod(&pods, app, ok, message).await;
                    let state = if ok { "COMPLETED" } else { "FAILED" };
                    set_state(
                        &apps,
                        &name,
                        json!({
                            "applicationState": { "state": state, "errorMessage": if ok { "" } else { "driver container failed" } },
                            "driverInfo": { "podName": format!("{name}-driver") },
                        }),
                    )
                    .await;
                }
            }
            for (_, (mut child, _)) in running {
                let _ = child.kill();
                let _ = child.wait();
            }
        });
        Operator {
            stop,
            paused,
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn set_state(apps: &Api<SparkApplication>, name: &str, status: Value) {
    let _ = apps
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await;
}

/// The driver pod, its container terminated with `message` (the report
/// `weir exec-task` wrote), labelled as the application's spec says.
async fn driver_pod(pods: &Api<Pod>, app: &SparkApplication, ok: bool, message: Option<String>) {
    let name = app.metadata.name.clone().unwrap_or_default();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": format!("{name}-driver"), "namespace": NAMESPACE,
                      "labels": app.spec["driver"]["labels"] },
        "spec": { "containers": [ { "name": "spark-kubernetes-driver" } ] },
        "status": { "containerStatuses": [ {
            "name": "spark-kubernetes-driver", "image": "i", "imageID": "", "ready": false,
            "restartCount": 0,
            "state": { "terminated": {
                "exitCode": if ok { 0 } else { 1 },
                "reason": if ok { "Completed" } else { "Error" },
                "message": message.unwrap_or_default(),
            } } } ] }
    }))
    .expect("a pod");
    let _ = pods.create(&PostParams::default(), &pod).await;
}

/// Runs the driver as a real process: the init container's command (the
/// weir binary under test standing for the weir image's), then the
/// application's entry point under `spark-submit` in local mode with the
/// driver's environment. The pod's `/weir/bin` and `/weir/work` are
/// folders of `dir` and `claim`.
fn spawn_driver(app: &SparkApplication, dir: &Path, claim: &Path) -> Child {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let driver = &app.spec["driver"];
    let init = &driver["initContainers"][0];
    assert_eq!(
        init["command"],
        json!(["/usr/local/bin/weir", "exec-task", "--install", "/weir/bin"])
    );
    let mut install = Command::new(env!("CARGO_BIN_EXE_weir"));
    install.args(["exec-task", "--install"]).arg(&bin);
    for var in init["env"].as_array().into_iter().flatten() {
        install.env(
            var["name"].as_str().unwrap(),
            var["value"].as_str().unwrap(),
        );
    }
    assert!(install.status().expect("install runs").success());
    let entry = app.spec["mainApplicationFile"]
        .as_str()
        .and_then(|f| f.strip_prefix("local:///weir/bin/"))
        .expect("the entry point is beside weir");
    let mut submit = Command::new("spark-submit");
    submit.args(["--master", "local[2]"]);
    for (key, value) in app.spec["sparkConf"].as_object().into_iter().flatten() {
        submit
            .arg("--conf")
            .arg(format!("{key}={}", value.as_str().unwrap()));
    }
    submit
        .arg(bin.join(entry))
        .env("WEIR_TERMINATION_LOG", dir.join("termination-log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for var in driver["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap();
        let value = var["value"].as_str().unwrap_or_default();
        // The work volume, mounted at /weir/work.
        let value = match value.strip_prefix("/weir/work") {
            Some(rest) if name == "WEIR_WORK_DIR" => format!("{}{rest}", claim.display()),
            _ => value.to_owned(),
        };
        submit.env(name, value);
    }
    submit.spawn().expect("spark-submit starts")
}

const ONE_NUMBER: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: count }
spec:
  outputs: { n: { type: int } }
  timeout: 1h
  spark:
    source: |
      outputs["n"] = spark.range(7).count()
    driver: { cores: 2, memory: 2g }
    executor: { instances: 3, cores: 4, memory: 8g }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: stuck }
spec:
  outputs: { n: { type: int } }
  timeout: 1s
  spark: { source: "outputs['n'] = 1" }
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: reads-a-file }
spec:
  inputs: { orders: { type: file } }
  outputs: { n: { type: int } }
  spark: { source: "outputs['n'] = 1" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: count }
spec:
  nodes: [ { id: count, task: count } ]
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: stuck }
spec:
  nodes: [ { id: stuck, task: stuck } ]
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: reads-a-file }
spec:
  inputs: { orders: { type: file } }
  nodes: [ { id: read, task: reads-a-file, inputs: { orders: "{{ inputs.orders }}" } } ]
"#;

/// A spark task becomes one SparkApplication with a deterministic name
/// and the declared sizes, observed to completion through its status
/// (the report in its driver pod); an engine that dies meanwhile is
/// followed by one that adopts the application instead of making another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spark_task_is_one_spark_application_observed_to_completion_and_adopted() {
    let (db, _repo) = synced(&[("spark.yaml", ONE_NUMBER)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = cluster(false).await;
    let report = json!({ "outcome": "succeeded", "outputs": { "n": 7 } });
    let operator = Operator::start(&cluster, Driver::Report(Ok(report)));
    operator.paused.store(true, Ordering::SeqCst);
    let id = start(store.as_ref(), "count", &[]).await;
    {
        let first = cluster.engine(store.clone());
        first.tick().await.expect("tick");
    }
    let name = job_name(&id, "count", 1);
    assert_eq!(names(&cluster).await, std::slice::from_ref(&name));
    let app = applications(&cluster)
        .get(&name)
        .await
        .expect("the application");
    let spec = &app.spec;
    assert_eq!(
        (&spec["type"], &spec["mode"], &spec["restartPolicy"]),
        (
            &json!("Python"),
            &json!("cluster"),
            &json!({ "type": "Never" })
        )
    );
    assert_eq!(
        spec["mainApplicationFile"],
        "local:///weir/bin/spark_entry.py"
    );
    assert_eq!(
        (&spec["driver"]["cores"], &spec["driver"]["memory"]),
        (&json!(2), &json!("2g"))
    );
    assert_eq!(
        (
            &spec["executor"]["instances"],
            &spec["executor"]["cores"],
            &spec["executor"]["memory"]
        ),
        (&json!(3), &json!(4), &json!("8g"))
    );
    assert_eq!(
        spec["image"], "spark:4.0.1-python3",
        "the default Spark image"
    );
    assert_eq!(
        spec["driver"]["labels"]["app.kubernetes.io/managed-by"],
        "weir"
    );
    assert_eq!(spec["driver"]["labels"]["weir.dev/object"], json!(name));
    let env: Vec<&str> = spec["driver"]["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(
        env,
        ["WEIR_ATTEMPT"],
        "the driver gets the attempt, nothing else"
    );
    let deadline = app
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("weir.dev/deadline"));
    assert!(deadline.is_some_and(|d| d.ends_with('Z')), "{deadline:?}");

    // A second engine adopts it; the operator then completes it.
    operator.paused.store(false, Ordering::SeqCst);
    let second = cluster.engine(store.clone());
    let execution = finish(&second, &id).await;
    operator.stop().await;
    assert_eq!(execution.status, Status::Succeeded, "{:?}", execution.error);
    let nodes = store.nodes(&id).await.expect("nodes");
    assert_eq!(nodes[0].attempts, 1, "adopted, not retried");
    assert_eq!(
        nodes[0].outputs.as_ref().map(|o| o["n"].clone()),
        Some(json!(7))
    );
    assert_eq!(names(&cluster).await, [name], "no application made twice");
    assert!(cluster.jobs().await.is_empty(), "no Job for a spark task");
}

/// A cancel deletes the application; so does its deadline, which no
/// operator enforces (the application's pods stay pending here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_and_a_timeout_delete_the_spark_application() {
    let (db, _repo) = synced(&[("spark.yaml", ONE_NUMBER)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = cluster(false).await;
    let operator = Operator::start(&cluster, Driver::Report(Err("never".into())));
    operator.paused.store(true, Ordering::SeqCst);
    let engine = cluster.engine(store.clone());

    let id = start(store.as_ref(), "count", &[]).await;
    engine.tick().await.expect("tick");
    assert_eq!(names(&cluster).await.len(), 1);
    assert!(store.request_cancel(&id).await.expect("cancel"));
    let execution = finish(&engine, &id).await;
    assert_eq!(execution.status, Status::Cancelled);
    assert!(
        names(&cluster).await.is_empty(),
        "the cancelled application is deleted"
    );

    let slow = start(store.as_ref(), "stuck", &[]).await;
    let execution = finish(&engine, &slow).await;
    operator.stop().await;
    assert_eq!(execution.status, Status::TimedOut, "{:?}", execution.error);
    assert!(
        names(&cluster).await.is_empty(),
        "the timed-out application is deleted"
    );
}

/// What the operator says of a failure becomes the attempt's error; a
/// task with a file input and no shared work volume is refused before
/// anything is created, saying what to configure; a cluster without the
/// operator says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_name_their_cause() {
    let (db, _repo) = synced(&[("spark.yaml", ONE_NUMBER)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = cluster(false).await;
    let operator = Operator::start(
        &cluster,
        Driver::Report(Err("driver pod failed: OOMKilled".into())),
    );
    let engine = cluster.engine(store.clone());
    let id = start(store.as_ref(), "count", &[]).await;
    let execution = finish(&engine, &id).await;
    operator.stop().await;
    assert_eq!(execution.status, Status::Failed);
    let error = execution.error.unwrap_or_default();
    assert!(
        error.contains("the Spark application failed: driver pod failed: OOMKilled"),
        "{error}"
    );

    let artifacts = weir::artifact::LocalArtifacts::new(cluster.work.path().join("a"));
    let file = cluster.work.path().join("orders.csv");
    std::fs::write(&file, "a,b\n").expect("write");
    let digest = weir::artifact::ArtifactStore::put_file(&artifacts, &file).expect("put");
    let reads = start(
        store.as_ref(),
        "reads-a-file",
        &[("orders", json!(weir::artifact::reference(&digest)))],
    )
    .await;
    let execution = finish(&engine, &reads).await;
    let error = execution.error.unwrap_or_default();
    assert!(
        error.contains("`orders` is a file or directory")
            && error.contains("[kubernetes] work_claim"),
        "{error}"
    );
    assert_eq!(names(&cluster).await.len(), 1, "nothing created for it");

    let bare = Cluster::of(ClientBuilder::new().with_status_subresource::<Job>()).await;
    let engine = bare.engine(store.clone());
    let id = start(store.as_ref(), "count", &[]).await;
    let execution = finish(&engine, &id).await;
    let error = execution.error.unwrap_or_default();
    assert!(
        error.contains("the cluster has no SparkApplication kind (sparkoperator.k8s.io/v1beta2)"),
        "{error}"
    );
}

/// The whole contract on real Spark: the CSV staged into the shared work
/// volume by `weir exec-task` in the driver (through the init container's
/// install and the entry point Spark's PythonRunner starts), the program
/// joined to the driver's JVM, the Parquet dataset stored and counted by
/// the next node's DuckDB query in a Job's pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jvm_a_spark_application_runs_the_program_under_the_same_contract() {
    let (db, _repo) = synced(&[
        ("daily.yaml", crate::spark::PIPELINE),
        ("jobs/aggregate.py", crate::spark::AGGREGATE),
    ]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = cluster(true).await;
    let claim = tempfile::tempdir().expect("the work volume");
    let kubelet = cluster.kubelet();
    let operator = Operator::start(
        &cluster,
        Driver::Run {
            claim: claim.path().to_path_buf(),
        },
    );
    let engine = cluster.engine(store.clone());
    let id = start(store.as_ref(), "daily", &[]).await;
    let execution = finish(&engine, &id).await;
    operator.stop().await;
    kubelet.stop().await;
    assert_eq!(execution.status, Status::Succeeded, "{:?}", execution.error);
    let nodes = store.nodes(&id).await.expect("nodes");
    let output = |node: &str, name: &str| {
        let node = nodes.iter().find(|n| n.node == node).expect("the node");
        node.outputs.as_ref().map(|o| o[name].clone())
    };
    assert_eq!(output("aggregate", "groups"), Some(json!(6)));
    assert_eq!(output("count", "rows"), Some(json!(3)));
    assert_eq!(names(&cluster).await, [job_name(&id, "aggregate", 1)]);
    assert_eq!(cluster.jobs().await.len(), 2, "the other nodes are Jobs");
    let left: Vec<_> = std::fs::read_dir(claim.path())
        .expect("the volume")
        .collect();
    assert!(
        left.is_empty(),
        "the attempt's folder on the volume is removed: {left:?}"
    );
}

/// An application of an execution the store does not have is deleted, as
/// such a Job is; one of a live execution, or not weir's, stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_of_executions_that_do_not_exist_are_collected() {
    let (db, _repo) = synced(&[("spark.yaml", ONE_NUMBER)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = cluster(false).await;
    let live = start(store.as_ref(), "count", &[]).await;
    let app = |name: &str, execution: Option<&str>| {
        SparkApplication {
        metadata: serde_json::from_value(json!({
            "name": name,
            "namespace": NAMESPACE,
            "labels": if execution.is_some() { json!({ "app.kubernetes.io/managed-by": "weir" }) } else { json!({}) },
            "annotations": execution.map(|e| json!({ "weir.dev/execution-id": e })).unwrap_or(json!({})),
        }))
        .expect("metadata"),
        spec: json!({ "type": "Python" }),
        status: None,
    }
    };
    let apps = applications(&cluster);
    for object in [
        app("weir-gone-0123456789abcdef", Some("deleted-0123456789ab")),
        app("weir-live-0123456789abcdef", Some(live.as_str())),
        app("nightly-report", None),
    ] {
        apps.create(&PostParams::default(), &object)
            .await
            .expect("create");
    }
    let engine = cluster.engine(store.clone());
    engine.stop_starting();
    engine.tick().await.expect("tick");
    let mut left = names(&cluster).await;
    left.sort();
    assert_eq!(left, ["nightly-report", "weir-live-0123456789abcdef"]);
}
