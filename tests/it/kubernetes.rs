//! The Kubernetes executor through the real `kube::Client`, backed by
//! kube-fake-client's in-memory API (no cluster runs here), with a small
//! stand-in for the kubelet and the Job controller: it runs each Job's task
//! container as a real `weir exec-task` process with the Job's environment,
//! then writes the pod's status (termination message, exit code) and the
//! Job's conditions, honouring `activeDeadlineSeconds` and deletions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_fake_client::{ClientBuilder, interceptor};
use serde_json::{Value, json};
use weir::engine::create::{self, Request};
use weir::engine::{Engine, NodeHandle};
use weir::executor::handle::{AttemptHandle, KubeHandle};
use weir::executor::kubernetes::{Kube, KubeExecutor, Settings};
use weir::executor::{Adoption, AttemptKey, BoxFuture, Events, Executor, Outcome};
use weir::spec::{ExecutionId, Trigger};
use weir::store::Store;
use weir::store::execution::{NodeStatus, Status};

use crate::common::{GitRepo, TestDb, weir_with};

pub(crate) const NAMESPACE: &str = "weir";

/// The kubelet and the Job controller, for the Jobs of one namespace.
pub(crate) struct Kubelet {
    stop: Arc<AtomicBool>,
    /// While set, Jobs are left pending (nothing runs).
    pub(crate) paused: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Running {
    child: Child,
    started: Instant,
    deadline: Option<Duration>,
    log: PathBuf,
}

impl Kubelet {
    fn start(client: kube::Client, work: PathBuf) -> Kubelet {
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let (stop_flag, paused_flag) = (stop.clone(), paused.clone());
        let task = tokio::spawn(async move {
            let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
            let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
            let mut running: HashMap<String, Running> = HashMap::new();
            let mut done: HashSet<String> = HashSet::new();
            while !stop_flag.load(Ordering::SeqCst) {
                // The stand-in kubelet's pace: it runs real processes.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let Ok(list) = jobs.list(&ListParams::default()).await else {
                    continue;
                };
                let present: HashSet<String> = list
                    .items
                    .iter()
                    .filter_map(|j| j.metadata.name.clone())
                    .collect();
                // A deleted Job's pod is stopped.
                running.retain(|name, run| {
                    if present.contains(name) {
                        return true;
                    }
                    let _ = run.child.kill();
                    let _ = run.child.wait();
                    false
                });
                if paused_flag.load(Ordering::SeqCst) {
                    continue;
                }
                for job in &list.items {
                    let name = job.metadata.name.clone().unwrap_or_default();
                    if done.contains(&name) || running.contains_key(&name) {
                        continue;
                    }
                    running.insert(name.clone(), spawn_task(job, &work.join(&name)));
                }
                let mut ended = Vec::new();
                for (name, run) in running.iter_mut() {
                    let over = run.deadline.is_some_and(|d| run.started.elapsed() > d);
                    if over {
                        let _ = run.child.kill();
                        let _ = run.child.wait();
                        ended.push((name.clone(), None));
                    } else if let Ok(Some(status)) = run.child.try_wait() {
                        let message = std::fs::read_to_string(&run.log).unwrap_or_default();
                        ended.push((name.clone(), Some((status.code().unwrap_or(137), message))));
                    }
                }
                for (name, result) in ended {
                    running.remove(&name);
                    done.insert(name.clone());
                    report(&jobs, &pods, &name, result).await;
                }
            }
            for (_, mut run) in running {
                let _ = run.child.kill();
                let _ = run.child.wait();
            }
        });
        Kubelet {
            stop,
            paused,
            task: Some(task),
        }
    }

    pub(crate) async fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Runs a Job's task container as `weir exec-task` with its environment.
fn spawn_task(job: &Job, work: &Path) -> Running {
    std::fs::create_dir_all(work).expect("work dir");
    let spec = job.spec.clone().expect("a job spec");
    let pod = spec.template.spec.expect("a pod spec");
    let container = &pod.containers[0];
    assert_eq!(
        container.command.as_deref(),
        Some(&["/weir/bin/weir".to_owned(), "exec-task".to_owned()][..])
    );
    let log = work.join("termination-log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .arg("exec-task")
        .env("WEIR_WORK_DIR", work)
        .env("WEIR_TERMINATION_LOG", &log)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // What the image or the node adds to a container's environment beyond
    // the Job's spec (this process's own variables stand for the image's):
    // a task sees it only when the operator's allow-list names it.
    command
        .env("NOT_NAMED_BY_THE_JOB", "leaked")
        .env("TEAM_NAME", "forecasting");
    for var in container.env.iter().flatten() {
        if let Some(value) = &var.value {
            command.env(&var.name, value);
        }
        // The kubelet resolves a Secret's key; here its value names it.
        let secret = var
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref());
        if let Some(secret) = secret {
            command.env(&var.name, format!("{}/{}", secret.name, secret.key));
        }
    }
    Running {
        child: command.spawn().expect("weir exec-task starts"),
        started: Instant::now(),
        deadline: spec
            .active_deadline_seconds
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0))),
        log,
    }
}

/// Writes the pod (its task container terminated) and the Job's condition;
/// `None`: the deadline passed.
async fn report(jobs: &Api<Job>, pods: &Api<Pod>, name: &str, result: Option<(i32, String)>) {
    let (condition, reason, terminated) = match &result {
        Some((0, message)) => (
            "Complete",
            "Completed",
            json!({ "exitCode": 0, "reason": "Completed", "message": message }),
        ),
        Some((code, message)) => (
            "Failed",
            "BackoffLimitExceeded",
            json!({ "exitCode": code, "reason": "Error", "message": message }),
        ),
        None => (
            "Failed",
            "DeadlineExceeded",
            json!({ "exitCode": 137, "reason": "Error" }),
        ),
    };
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": format!("{name}-pod"), "namespace": NAMESPACE,
                      "labels": { "job-name": name, "app.kubernetes.io/managed-by": "weir" } },
        "spec": { "containers": [ { "name": "task" } ] },
        "status": { "containerStatuses": [ {
            "name": "task", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": { "terminated": terminated } } ] }
    }))
    .expect("a pod");
    let _ = pods.create(&PostParams::default(), &pod).await;
    let status = json!({ "status": { "conditions": [
        { "type": condition, "status": "True", "reason": reason, "message": reason }
    ] } });
    let _ = jobs
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await;
}

/// A store with `defs` synced from a fresh repository (SQLite).
pub(crate) fn synced(defs: &[(&str, &str)]) -> (TestDb, GitRepo) {
    let db = TestDb::sqlite();
    let repo = GitRepo::new();
    for (path, text) in defs {
        repo.write(path, text);
    }
    repo.commit("Definitions");
    let out = weir_with(
        &["sync", "--repo", repo.path().to_str().expect("utf-8")],
        &db,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (db, repo)
}

pub(crate) struct Cluster {
    pub(crate) client: kube::Client,
    artifacts: tempfile::TempDir,
    state: tempfile::TempDir,
    pub(crate) work: tempfile::TempDir,
    /// The executor's settings (the namespace is [`NAMESPACE`]).
    pub(crate) settings: Settings,
}

impl Cluster {
    async fn new(interceptors: Option<interceptor::Funcs>) -> Cluster {
        let mut builder = ClientBuilder::new().with_status_subresource::<Job>();
        if let Some(funcs) = interceptors {
            builder = builder.with_interceptor_funcs(funcs);
        }
        Cluster::of(builder).await
    }

    /// A cluster of `builder` (its kinds, its interceptors).
    pub(crate) async fn of(builder: ClientBuilder) -> Cluster {
        Cluster {
            client: builder.build().await.expect("a fake cluster"),
            artifacts: tempfile::tempdir().expect("tempdir"),
            state: tempfile::tempdir().expect("tempdir"),
            work: tempfile::tempdir().expect("tempdir"),
            settings: Settings {
                namespace: NAMESPACE.into(),
                ..Settings::default()
            },
        }
    }

    pub(crate) fn engine(&self, store: Arc<dyn Store>) -> Engine {
        // Object storage's local backend: what pods and the engine share.
        let url = format!("file://{}", self.artifacts.path().display());
        let artifacts = Arc::from(weir::artifact::open(&url).expect("artifacts"));
        let kube = self.kube();
        Engine::new(store, artifacts, self.state.path().to_path_buf())
            .with_task_env(weir::executor::environment::Inherited::from_process(
                Default::default(),
            ))
            .with_executor(Arc::new(KubeExecutor::new(kube, url)))
    }

    /// The cluster's API for the executor, in [`NAMESPACE`].
    fn kube(&self) -> Kube {
        Kube::new(self.client.clone(), self.settings.clone())
    }

    pub(crate) fn kubelet(&self) -> Kubelet {
        Kubelet::start(self.client.clone(), self.work.path().to_path_buf())
    }

    pub(crate) async fn jobs(&self) -> Vec<Job> {
        Api::<Job>::namespaced(self.client.clone(), NAMESPACE)
            .list(&ListParams::default())
            .await
            .expect("list jobs")
            .items
    }
}

pub(crate) async fn start(store: &dyn Store, name: &str, inputs: &[(&str, Value)]) -> ExecutionId {
    let request = Request {
        name: name.into(),
        inputs: inputs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        trigger: Trigger::Manual,
        ..Request::default()
    };
    let (execution, created) = create::create(store, &request).await.expect("create");
    assert!(created);
    execution.id
}

/// Drives `id` to its end (a generous bound guards against a hang).
pub(crate) async fn finish(engine: &Engine, id: &ExecutionId) -> weir::store::Execution {
    tokio::time::timeout(Duration::from_secs(120), engine.run_until_finished(id))
        .await
        .expect("the execution ends")
        .expect("the engine runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_example_workflow_runs_to_success_as_jobs_with_outputs_and_lineage() {
    let db = TestDb::sqlite();
    let _repo = crate::engine::sync_examples(&db);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = Cluster::new(None).await;
    let kubelet = cluster.kubelet();
    let engine = cluster.engine(store.clone());

    let id = start(
        store.as_ref(),
        "hourly-etl",
        &[("hour", json!("2026-11-24T10:00:00Z"))],
    )
    .await;
    let execution = finish(&engine, &id).await;
    kubelet.stop().await;
    assert_eq!(execution.status, Status::Succeeded, "{:?}", execution.error);
    assert!(execution.outputs.is_some());
    let nodes = store.nodes(&id).await.expect("nodes");
    assert_eq!(nodes.len(), 8);
    for node in &nodes {
        assert_eq!(node.status, NodeStatus::Succeeded, "{node:?}");
        assert_eq!(node.attempts, 1);
        assert!(
            matches!(
                NodeHandle::read(node).attempt,
                Some(AttemptHandle::Kubernetes(_))
            ),
            "the node names its Job: {node:?}"
        );
    }
    // One Job per attempt, labelled for `kubectl get jobs -l …`.
    let jobs = cluster.jobs().await;
    assert_eq!(jobs.len(), 8);
    for job in &jobs {
        let labels = job.metadata.labels.clone().expect("labels");
        assert_eq!(labels["weir.dev/execution"], id.as_str());
        assert_eq!(labels["weir.dev/commit"], execution.commit.0);
        assert_eq!(labels["app.kubernetes.io/managed-by"], "weir");
    }
    let lineage = store.lineage_of_execution(&id).await.expect("lineage");
    assert!(
        lineage.iter().any(|e| e.digest.as_str().len() == 64),
        "artifacts made in pods are in the lineage: {lineage:?}"
    );
}

const TWO_NODES: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: count }
spec:
  outputs: { rows: { type: int } }
  script:
    interpreter: bash
    source: |
      sleep 1
      echo '{"rows": 42}' > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: double }
spec:
  inputs: { n: { type: int } }
  outputs: { twice: { type: int } }
  script:
    interpreter: bash
    source: |
      echo "{\"twice\": $(( {{ inputs.n }} * 2 ))}" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: slow }
spec:
  timeout: 1s
  script: { interpreter: bash, source: "sleep 60" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: pair }
spec:
  nodes:
    - { id: count, task: count }
    - { id: double, task: double, inputs: { n: "{{ nodes.count.outputs.rows }}" } }
  outputs: { twice: "{{ nodes.double.outputs.twice }}" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: too-slow }
spec:
  nodes: [ { id: slow, task: slow } ]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_retried_without_duplicate_jobs() {
    let (db, _repo) = synced(&[("flows.yaml", TWO_NODES)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    // Each Job's first create fails with 500; the `double` Job's second
    // lands but its answer is lost (the client sees 500 and tries again,
    // meeting 409 AlreadyExists).
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let counts = seen.clone();
    let funcs = interceptor::Funcs::new().create(move |ctx| {
        let name = ctx.object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if ctx.object["kind"] != "Job" {
            return Ok(None);
        }
        let n = {
            let mut counts = counts.lock().expect("lock");
            let n = counts.entry(name.clone()).or_insert(0);
            *n += 1;
            *n
        };
        match n {
            1 => Err(kube_fake_client::Error::Internal(
                "etcd leader changed".into(),
            )),
            2 if name.contains("double") => {
                let job: Job = serde_json::from_value(ctx.object.clone()).expect("a job");
                ctx.client
                    .create(ctx.namespace, &job, ctx.params)
                    .expect("stored behind the client's back");
                Err(kube_fake_client::Error::Internal("connection reset".into()))
            }
            _ => Ok(None),
        }
    });
    let cluster = Cluster::new(Some(funcs)).await;
    let kubelet = cluster.kubelet();
    let engine = cluster.engine(store.clone());
    let id = start(store.as_ref(), "pair", &[]).await;
    let execution = finish(&engine, &id).await;
    kubelet.stop().await;
    assert_eq!(execution.status, Status::Succeeded, "{:?}", execution.error);
    assert_eq!(execution.outputs, Some(json!({ "twice": 84 })));
    let jobs = cluster.jobs().await;
    assert_eq!(jobs.len(), 2, "one Job per attempt, none twice");
    let creates = seen.lock().expect("lock").clone();
    assert!(creates.values().all(|n| *n >= 2), "{creates:?}");
    assert!(
        creates
            .iter()
            .any(|(name, n)| name.contains("double") && *n == 3),
        "{creates:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_adopts_running_jobs() {
    let (db, _repo) = synced(&[("flows.yaml", TWO_NODES)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = Cluster::new(None).await;
    let kubelet = cluster.kubelet();
    kubelet.paused.store(true, Ordering::SeqCst);
    let id = start(store.as_ref(), "pair", &[]).await;
    {
        // The first engine starts the first node's Job, then dies.
        let first = cluster.engine(store.clone());
        first.tick().await.expect("tick");
        assert_eq!(cluster.jobs().await.len(), 1);
    }
    kubelet.paused.store(false, Ordering::SeqCst);
    let second = cluster.engine(store.clone());
    let execution = finish(&second, &id).await;
    kubelet.stop().await;
    assert_eq!(execution.status, Status::Succeeded, "{:?}", execution.error);
    let nodes = store.nodes(&id).await.expect("nodes");
    assert!(
        nodes.iter().all(|n| n.attempts == 1),
        "adopted, not retried: {nodes:?}"
    );
    assert_eq!(cluster.jobs().await.len(), 2, "no Job made twice");
}

/// Leadership lost, then regained: the engine forgets the Jobs it
/// followed, so the end of its old Job, reported after another leader
/// moved the node on to a later attempt, is not recorded against that
/// attempt; the later attempt is taken over from the store instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_lost_leadership_is_not_recorded_against_a_later_attempt() {
    an_old_jobs_end_after_its_node_moved_on(true).await;
}

/// Without a flap (two engines believed they led at once), the old Job
/// is still followed when it ends: its end names its attempt, not the
/// node's current one, and is not recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_end_is_recorded_only_against_its_own_attempt() {
    an_old_jobs_end_after_its_node_moved_on(false).await;
}

/// Engine A starts the node's first Job; another engine moves the node on
/// to a second attempt; the first Job then fails and A looks again
/// (having lost and regained leadership in between if `flap`).
async fn an_old_jobs_end_after_its_node_moved_on(flap: bool) {
    let (db, _repo) = synced(&[("flows.yaml", TWO_NODES)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = Cluster::new(None).await;
    let id = start(store.as_ref(), "pair", &[]).await;
    let engine = cluster.engine(store.clone());
    engine.tick().await.expect("tick");
    let old = cluster.jobs().await;
    assert_eq!(old.len(), 1);
    let old = old[0].metadata.name.clone().expect("a name");

    if flap {
        engine.kill_running();
    }
    // Meanwhile another leader retried the node: its second attempt runs.
    let mut node = store.nodes(&id).await.expect("nodes").remove(0);
    assert_eq!((node.status, node.attempts), (NodeStatus::Running, 1));
    node.attempts = 2;
    NodeHandle::read(&node)
        .next_attempt(
            None,
            AttemptHandle::Kubernetes(KubeHandle {
                namespace: NAMESPACE.into(),
                name: "weir-count-second-attempt".into(),
                resource: None,
            }),
        )
        .store_in(&mut node);
    store.update_node(&node).await.expect("update");
    // The first attempt's Job fails only now.
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    report(&jobs, &pods, &old, Some((1, "boom".into()))).await;

    // This engine leads (again).
    engine.forget();
    engine.tick().await.expect("tick");
    let node = store.nodes(&id).await.expect("nodes").remove(0);
    assert_eq!(
        (node.status, node.attempts, node.error.as_deref()),
        (NodeStatus::Running, 2, None),
        "the old Job's failure is not the second attempt's: {node:?}"
    );
}

/// What a [`KubeExecutor`] told, for tests that drive it directly.
#[derive(Default)]
struct Told {
    ended: Mutex<Vec<(AttemptKey, Outcome)>>,
}

impl Events for Told {
    fn handle_changed<'a>(
        &'a self,
        _key: &'a AttemptKey,
        _handle: &'a AttemptHandle,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn ended(&self, key: AttemptKey, outcome: Outcome) {
        self.ended.lock().expect("lock").push((key, outcome));
    }
}

/// A Job let go while its cancel deletes it (here leadership is lost
/// meanwhile) is not told cancelled: it is no longer this executor's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_tells_nothing_of_a_job_let_go_meanwhile() {
    let executor: Arc<std::sync::OnceLock<Arc<KubeExecutor>>> = Arc::default();
    let cell = executor.clone();
    let funcs = interceptor::Funcs::new().delete(move |_ctx| {
        if let Some(executor) = cell.get() {
            executor.stop_all();
        }
        Ok(None)
    });
    let cluster = Cluster::new(Some(funcs)).await;
    let kube = cluster.kube();
    let executor = executor.get_or_init(|| Arc::new(KubeExecutor::new(kube, "file:///x".into())));
    let key = AttemptKey {
        execution: "e".into(),
        node: "n".into(),
        attempt: 1,
    };
    let job = AttemptHandle::Kubernetes(KubeHandle {
        namespace: NAMESPACE.into(),
        name: "weir-n-0123456789abcdef".into(),
        resource: None,
    });
    let told = Arc::new(Told::default());
    let events: Arc<dyn Events> = told.clone();
    assert_eq!(
        executor.adopt(&key, &job, false, &events).await,
        Adoption::Adopted
    );
    executor.cancel(&key, &events).await;
    assert!(
        told.ended.lock().expect("lock").is_empty(),
        "{:?}",
        told.ended.lock().expect("lock")
    );
    assert!(!executor.polls(), "nothing tracked");
}

/// A Job of another namespace than the executor's is not adopted: it
/// would be watched, and deleted, in the wrong namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_another_namespace_is_foreign() {
    let cluster = Cluster::new(None).await;
    let kube = cluster.kube();
    let executor = KubeExecutor::new(kube, "file:///x".into());
    let key = AttemptKey {
        execution: "e".into(),
        node: "n".into(),
        attempt: 1,
    };
    let job = AttemptHandle::Kubernetes(KubeHandle {
        namespace: "elsewhere".into(),
        name: "weir-n-0123456789abcdef".into(),
        resource: None,
    });
    let events: Arc<dyn Events> = Arc::new(Told::default());
    assert_eq!(
        executor.adopt(&key, &job, false, &events).await,
        Adoption::Foreign
    );
    assert!(!executor.polls(), "not tracked");
}

/// Under `--executor kubernetes`, the process group of a local attempt
/// whose engine died on this host is killed, as the local executor would,
/// and the node is retried as a Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_engines_local_group_on_this_host_is_killed() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    let (db, _repo) = synced(&[("flows.yaml", TWO_NODES)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = Cluster::new(None).await;
    let engine = cluster.engine(store.clone());
    // Not a wait: a long-lived process group standing in for the attempt a
    // dead engine left running on this host; the test expects it killed.
    let mut orphan = Command::new("sleep")
        .arg("60")
        .process_group(0)
        .spawn()
        .expect("sleep");
    let id = start(store.as_ref(), "pair", &[]).await;
    let mut node = store.nodes(&id).await.expect("nodes").remove(0);
    node.status = NodeStatus::Running;
    node.attempts = 1;
    node.handle = Some(json!({
        "dir": "/var/lib/weir/runs/x/count/1",
        "owner": { "engine": "gone:1:0", "host": engine.owner().host },
        "pgid": orphan.id(),
    }));
    store.update_node(&node).await.expect("update");

    engine.tick().await.expect("tick");
    let status = orphan.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(9),
        "killed, not left to run: {status}"
    );
    let node = store.nodes(&id).await.expect("nodes").remove(0);
    assert_eq!(NodeHandle::read(&node).interruptions, 1, "{node:?}");
}

/// A node interrupted while attempts ran locally, retried after the
/// daemon switched to `--executor kubernetes`: its Job's handle keeps
/// nothing of the local attempt (a folder, a process group, an owner that a
/// later engine could act on), only the node's interruptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_after_a_local_attempt_keeps_nothing_of_it() {
    let (db, _repo) = synced(&[("flows.yaml", TWO_NODES)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = Cluster::new(None).await;
    let kubelet = cluster.kubelet();
    let id = start(store.as_ref(), "too-slow", &[]).await;
    let mut node = store.nodes(&id).await.expect("nodes").remove(0);
    node.status = NodeStatus::Retrying;
    node.attempts = 1;
    node.next_attempt_at = Some(chrono::Utc::now() - chrono::Duration::minutes(1));
    node.handle = Some(json!({
        "dir": "/var/lib/weir/runs/x/slow/1",
        "interruptions": 1,
        "owner": { "engine": "gone:1:0", "host": "elsewhere/boot" },
        "pgid": 4242,
    }));
    store.update_node(&node).await.expect("update");

    let engine = cluster.engine(store.clone());
    finish(&engine, &id).await;
    kubelet.stop().await;
    let node = store.nodes(&id).await.expect("nodes").remove(0);
    assert_eq!(node.attempts, 2, "{node:?}");
    let stored = node.handle.clone().expect("a handle");
    let keys: Vec<&str> = stored
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["interruptions", "job", "namespace"], "{stored}");
    assert_eq!(NodeHandle::read(&node).interruptions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_and_a_cancel_delete_the_job() {
    let (db, _repo) = synced(&[("flows.yaml", TWO_NODES)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = Cluster::new(None).await;
    let kubelet = cluster.kubelet();
    let engine = cluster.engine(store.clone());

    // activeDeadlineSeconds passes: timed out, and the Job is deleted.
    let slow = start(store.as_ref(), "too-slow", &[]).await;
    let execution = finish(&engine, &slow).await;
    assert_eq!(execution.status, Status::TimedOut, "{:?}", execution.error);
    assert!(
        cluster.jobs().await.is_empty(),
        "the timed-out Job is deleted"
    );

    // Cancelled while its first node runs: the Job is deleted.
    kubelet.paused.store(true, Ordering::SeqCst);
    let pair = start(store.as_ref(), "pair", &[]).await;
    engine.tick().await.expect("tick");
    assert_eq!(cluster.jobs().await.len(), 1);
    assert!(store.request_cancel(&pair).await.expect("cancel"));
    let execution = finish(&engine, &pair).await;
    kubelet.stop().await;
    assert_eq!(execution.status, Status::Cancelled);
    assert!(
        cluster.jobs().await.is_empty(),
        "the cancelled Job is deleted"
    );
}

/// The elector decides at the instant it is given: a Lease expires by
/// handing a round a later instant, not by waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_another_takes_over_an_expired_lease() {
    use k8s_openapi::api::coordination::v1::Lease;
    use weir::clock::Clock;
    use weir::daemon::leader::{Elector, Round};

    let cluster = Cluster::new(None).await;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let elector = |identity: &str| Elector {
        name: "weir-leader".into(),
        identity: identity.into(),
        duration: Duration::from_secs(1),
        clock: Clock::system(),
    };
    let start = chrono::Utc::now();
    let at = |millis: i64| start + chrono::Duration::milliseconds(millis);
    let (a, b) = (elector("weir-a"), elector("weir-b"));
    assert_eq!(
        a.round(&leases, at(0)).await.expect("a"),
        Round::Leading,
        "the first creates it"
    );
    assert_eq!(
        b.round(&leases, at(10)).await.expect("b"),
        Round::Following,
        "a live lease is left alone"
    );
    assert_eq!(
        a.round(&leases, at(20)).await.expect("a"),
        Round::Leading,
        "the holder renews"
    );
    let held = leases.get("weir-leader").await.expect("lease");
    assert_eq!(
        held.spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref()),
        Some("weir-a")
    );
    assert_eq!(
        b.round(&leases, at(1000)).await.expect("b"),
        Round::Following,
        "renewed at 20 ms, the lease lasts until 1020 ms"
    );

    // a stops renewing: once a whole duration passed, b takes over.
    assert_eq!(
        b.round(&leases, at(1021)).await.expect("b"),
        Round::Leading,
        "an expired lease is taken"
    );
    assert_eq!(
        a.round(&leases, at(1030)).await.expect("a"),
        Round::Following,
        "the old holder follows"
    );
    let taken = leases
        .get("weir-leader")
        .await
        .expect("lease")
        .spec
        .expect("spec");
    assert_eq!(taken.holder_identity.as_deref(), Some("weir-b"));
    assert_eq!(taken.lease_transitions, Some(1));

    // Two replicas racing for an expired lease: exactly one wins.
    let (c, d) = (elector("weir-c"), elector("weir-d"));
    let (first, second) = tokio::join!(c.round(&leases, at(3000)), d.round(&leases, at(3000)));
    let rounds = [first.expect("c"), second.expect("d")];
    assert_eq!(
        rounds.iter().filter(|r| **r == Round::Leading).count(),
        1,
        "{rounds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_executions_that_do_not_exist_are_collected() {
    let (db, _repo) = synced(&[("flows.yaml", TWO_NODES)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = Cluster::new(None).await;
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let orphan: Job = serde_json::from_value(json!({
        "metadata": {
            "name": "weir-train-0123456789abcdef",
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/managed-by": "weir",
                "weir.dev/execution": "deleted-0123456789ab",
            },
            "annotations": { "weir.dev/execution-id": "deleted-0123456789ab" }
        },
        "spec": { "template": { "spec": { "containers": [ { "name": "task" } ] } } }
    }))
    .expect("a job");
    jobs.create(&PostParams::default(), &orphan)
        .await
        .expect("create");
    // Someone else's Job in the namespace is none of weir's business.
    let mut foreign = orphan.clone();
    foreign.metadata.name = Some("backup-cron".into());
    foreign.metadata.labels = None;
    jobs.create(&PostParams::default(), &foreign)
        .await
        .expect("create");
    // A Job of an execution that exists stays.
    let id = start(store.as_ref(), "pair", &[]).await;
    let mut live = orphan.clone();
    live.metadata.name = Some("weir-count-fedcba9876543210".into());
    live.metadata.annotations = Some(BTreeMap::from([(
        "weir.dev/execution-id".to_owned(),
        id.to_string(),
    )]));
    jobs.create(&PostParams::default(), &live)
        .await
        .expect("create");

    let engine = cluster.engine(store.clone());
    engine.stop_starting();
    engine.tick().await.expect("tick");
    let mut left: Vec<String> = cluster
        .jobs()
        .await
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    left.sort();
    assert_eq!(left, ["backup-cron", "weir-count-fedcba9876543210"]);
}

/// An API server that accepts connections and never answers (real HTTP,
/// the real `kube::Client`): every call is bounded, retried, then reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_that_never_answers_is_retried_then_reported() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(Mutex::new(0u32));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            *count.lock().expect("lock") += 1;
            held.push(socket);
        }
    });
    // Test builds have two rustls crypto providers (see Cargo.toml).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new(format!("http://{addr}").parse().expect("a URL"));
    let client = kube::Client::try_from(config).expect("a client");
    let kube = Kube::new(
        client,
        Settings {
            namespace: NAMESPACE.into(),
            call_timeout: Duration::from_millis(200),
            ..Settings::default()
        },
    );
    let error = kube.observe().await.expect_err("no answer");
    assert!(
        matches!(error, weir::executor::kubernetes::Error::Timeout { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("did not answer"), "{error}");
    assert_eq!(kube.calls(), 4, "tried 4 times");
}

const NAMES: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: names }
spec:
  outputs: { names: { type: string } }
  secrets: [ { name: warehouse, key: password, env: DB_PASSWORD } ]
  script:
    interpreter: bash
    source: |
      printf '{"names": "%s"}' "$(env | cut -d= -f1 | sort | tr '\n' ' ')" > "$WEIR_OUTPUTS/outputs.json"
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: names-flow }
spec:
  nodes: [ { id: names, task: names } ]
"#;

/// Issue 13, item 3: a task pod's environment is what its Job names (the
/// attempt for `weir exec-task`, the task's secrets), and the task run by
/// `weir exec-task` gets only its secrets, the data contract, `PATH`,
/// `HOME`, the locale and what the operator allows: never `WEIR_ATTEMPT`,
/// nor anything else the image or the node put in the container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_pod_gets_only_the_variables_its_job_names() {
    use weir::executor::environment::{AllowList, Inherited};

    let (db, _repo) = synced(&[("flows.yaml", NAMES)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = Cluster::new(None).await;
    let kubelet = cluster.kubelet();
    let allow = AllowList::parse(&["TEAM_*"]).expect("valid");
    let engine = cluster
        .engine(store.clone())
        .with_task_env(Inherited::capture(Vec::new(), allow));
    let id = start(store.as_ref(), "names-flow", &[]).await;
    let execution = finish(&engine, &id).await;
    kubelet.stop().await;
    assert_eq!(execution.status, Status::Succeeded, "{:?}", execution.error);

    let jobs = cluster.jobs().await;
    let pod = jobs[0]
        .spec
        .clone()
        .and_then(|s| s.template.spec)
        .expect("a pod spec");
    assert_eq!(pod.enable_service_links, Some(false));
    let named: Vec<String> = pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    assert_eq!(named, ["WEIR_ATTEMPT", "DB_PASSWORD"]);

    let nodes = store.nodes(&id).await.expect("nodes");
    let outputs = nodes[0].outputs.clone().expect("outputs");
    let seen: HashSet<&str> = outputs["names"]
        .as_str()
        .expect("names")
        .split_whitespace()
        .collect();
    for name in [
        "DB_PASSWORD",
        "TEAM_NAME",
        "WEIR_INPUTS",
        "WEIR_OUTPUTS",
        "PATH",
    ] {
        assert!(seen.contains(name), "{name} is missing: {seen:?}");
    }
    // bash itself exports PWD, SHLVL, `_` (and OLDPWD).
    let allowed: HashSet<&str> = [
        "DB_PASSWORD",
        "TEAM_NAME",
        "WEIR_INPUTS",
        "WEIR_OUTPUTS",
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TZ",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
    ]
    .into_iter()
    .collect();
    let extra: Vec<&&str> = seen.difference(&allowed).collect();
    assert!(
        extra.is_empty(),
        "the task saw more than it was given: {extra:?}"
    );
}

const WITH_SIDECAR: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: query }
spec:
  outputs: { answer: { type: int } }
  script:
    interpreter: bash
    source: |
      echo '{"answer": 42}' > "$WEIR_OUTPUTS/outputs.json"
  sidecars:
    - name: db
      image: postgres:16
      env: { POSTGRES_HOST_AUTH_METHOD: trust }
      readiness: { exec: [pg_isready, -h, 127.0.0.1], timeout: 2m }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: query-flow }
spec:
  nodes: [ { id: query, task: query } ]
"#;

/// A task with a sidecar becomes one pod with a native sidecar container
/// (an init container restarted always, its readiness a startup probe),
/// and `weir exec-task` in the task's container runs the task alone: the
/// sidecar, which has no command and could not run as a process, is the
/// kubelet's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_is_a_native_sidecar_container_of_the_task_pod() {
    let (db, _repo) = synced(&[("flows.yaml", WITH_SIDECAR)]);
    let store = weir::store::open(&db.url()).await.expect("store");
    let cluster = Cluster::new(None).await;
    let kubelet = cluster.kubelet();
    let engine = cluster.engine(store.clone());
    let id = start(store.as_ref(), "query-flow", &[]).await;
    let execution = finish(&engine, &id).await;
    kubelet.stop().await;
    assert_eq!(execution.status, Status::Succeeded, "{:?}", execution.error);
    let nodes = store.nodes(&id).await.expect("nodes");
    assert_eq!(nodes[0].outputs, Some(json!({ "answer": 42 })));

    let jobs = cluster.jobs().await;
    assert_eq!(
        jobs.len(),
        1,
        "one Job, one pod, for the task and its sidecar"
    );
    let pod = jobs[0]
        .spec
        .clone()
        .and_then(|s| s.template.spec)
        .expect("a pod spec");
    let init = pod.init_containers.expect("init containers");
    assert_eq!(
        init.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["weir-init", "db"]
    );
    let db = &init[1];
    assert_eq!(db.restart_policy.as_deref(), Some("Always"));
    assert_eq!(db.image.as_deref(), Some("postgres:16"));
    let probe = db.startup_probe.clone().expect("a startup probe");
    assert_eq!(
        probe.exec.and_then(|e| e.command),
        Some(vec!["pg_isready".into(), "-h".into(), "127.0.0.1".into()])
    );
    assert_eq!(probe.failure_threshold, Some(120));
    assert_eq!(
        pod.containers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["task"]
    );
}
