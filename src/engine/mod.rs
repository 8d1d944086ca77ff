//! The execution engine (DESIGN.md section 6), level-triggered: every
//! [`Engine::tick`] reads the unfinished executions and their nodes from the
//! store and drives each one forward — record finished attempts, retry with
//! backoff, fail fast, start ready nodes (or serve them from the cache),
//! complete. All state is in the store, so a restarted process simply
//! continues: an attempt that was running in a process that died is marked
//! interrupted, its process group killed, and it is retried per its policy.

pub mod admission;
pub mod backfill;
pub mod create;
pub mod identity;
pub mod kubernetes;
pub mod owner;
pub mod plan;
pub mod preview;
pub mod retry;
pub mod scheduler;
pub mod tasks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::artifact::{self, ArtifactStore};
use crate::executor::environment::Inherited;
use crate::executor::local::{self, Attempt, Outcome};
use crate::executor::process;
use crate::source::git::SourceFiles;
use crate::spec::{Digest, duration};
use crate::store::execution::{
    CacheEntry, Direction, Execution, LineageEdge, NodeState, NodeStatus, Status,
};
use crate::store::{self, Store};

pub use owner::Owner;
pub use plan::{Binding, Plan, PlanNode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("execution {id} has an unreadable plan: {message}")]
    Plan { id: String, message: String },
}

/// What happened to a node, told to every [`Observer`] (OpenLineage events,
/// later metrics and notifications). Observers must not block: they run on
/// the engine's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeEvent {
    /// An attempt started.
    Started,
    /// The node succeeded (also when served from the cache).
    Succeeded,
    /// The node failed or timed out for good (no retry left).
    Failed,
    /// The node was cancelled (a cancel request, or fail-fast).
    Aborted,
}

pub trait Observer: Send + Sync {
    /// `state` is the node's state after the event.
    fn node_event(
        &self,
        event: NodeEvent,
        execution: &Execution,
        node: &PlanNode,
        state: &NodeState,
    );

    /// The execution ended (any terminal status).
    fn execution_finished(&self, _execution: &Execution) {}
}

/// How many times a node may be interrupted (its process died with the
/// engine driving it) and retried regardless of its own retry policy.
const MAX_INTERRUPTIONS: u64 = 3;

/// An attempt that ended, waiting to be recorded.
struct Finished {
    execution: String,
    node: String,
    outcome: Outcome,
}

pub struct Engine {
    store: Arc<dyn Store>,
    artifacts: Arc<dyn ArtifactStore>,
    state_dir: PathBuf,
    /// Attempts running in this process, by (execution, node).
    running: Mutex<HashMap<(String, String), CancellationToken>>,
    finished: Arc<Mutex<Vec<Finished>>>,
    /// Woken when an attempt ends.
    pub wake: Arc<tokio::sync::Notify>,
    observers: Vec<Arc<dyn Observer>>,
    files: SourceFiles,
    /// Shutting down: no new attempt starts.
    draining: std::sync::atomic::AtomicBool,
    /// Process groups of the attempts running here.
    groups: Arc<Mutex<HashMap<(String, String), u32>>>,
    /// Attempts [`Engine::kill_running`] killed: they end interrupted,
    /// not failed (the engine stopped them, not their task).
    killed: Arc<Mutex<HashSet<(String, String)>>>,
    /// Whether this engine may start attempts now (it leads the store);
    /// asked right before each one starts. Unset: always.
    leads: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// Set: attempts run as Kubernetes Jobs instead of local processes.
    kube: Option<Arc<kubernetes::KubeRuns>>,
    /// This engine and host, recorded in every attempt it starts: its
    /// holder name in the engine lease ([`owner`]).
    owner: Owner,
    /// What of the host's environment a task inherits (and the allow-list
    /// task pods apply to theirs).
    inherited: Arc<Inherited>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        artifacts: Arc<dyn ArtifactStore>,
        state_dir: PathBuf,
    ) -> Engine {
        // Attempts run in their own folders: paths handed to them must not
        // depend on this process's working directory.
        let state_dir = std::path::absolute(&state_dir).unwrap_or(state_dir);
        Engine {
            store,
            artifacts,
            files: SourceFiles::new(&state_dir),
            state_dir,
            running: Mutex::new(HashMap::new()),
            finished: Arc::new(Mutex::new(Vec::new())),
            wake: Arc::new(tokio::sync::Notify::new()),
            observers: Vec::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            groups: Arc::new(Mutex::new(HashMap::new())),
            killed: Arc::new(Mutex::new(HashSet::new())),
            leads: None,
            kube: None,
            owner: Owner::this_process(),
            inherited: Arc::new(Inherited::default()),
        }
    }

    /// The host variables tasks inherit, captured by the caller (the CLI
    /// command building the engine: nothing this deep reads the process's
    /// environment). Without it, tasks inherit nothing, not even `PATH`.
    pub fn with_task_env(mut self, inherited: Inherited) -> Engine {
        self.inherited = Arc::new(inherited);
        self
    }

    /// Starts attempts only while `leads()` says this engine leads the
    /// store (asked right before each attempt starts, so a tick under way
    /// when leadership ends starts nothing more).
    pub fn lead_while(mut self, leads: impl Fn() -> bool + Send + Sync + 'static) -> Engine {
        self.leads = Some(Arc::new(leads));
        self
    }

    /// Whether an attempt may start now: not shutting down, and leading.
    fn may_start(&self) -> bool {
        !self.draining.load(std::sync::atomic::Ordering::SeqCst)
            && self.leads.as_ref().is_none_or(|leads| leads())
    }

    /// Runs attempts as Kubernetes Jobs (`--executor kubernetes`).
    pub fn with_kubernetes(mut self, runs: kubernetes::KubeRuns) -> Engine {
        self.kube = Some(Arc::new(runs));
        self
    }

    /// The Kubernetes executor's state, when attempts run as Jobs.
    pub fn kubernetes(&self) -> Option<&kubernetes::KubeRuns> {
        self.kube.as_deref()
    }

    /// Adds an observer of node events.
    pub fn observe(mut self, observer: Arc<dyn Observer>) -> Engine {
        self.observers.push(observer);
        self
    }

    /// Starts no new attempt from now on (shutdown); running ones go on and
    /// are recorded as they end.
    pub fn stop_starting(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Attempts running in this process.
    pub fn running(&self) -> usize {
        self.running.lock().expect("lock").len()
    }

    /// Kills the process groups of the attempts still running (leadership
    /// lost, or shutting down). Each ends as interrupted, not failed: it
    /// is retried apart from its task's retries, by this engine should it
    /// drive the store again, else by whichever engine does (their nodes
    /// stay `running` in the store until then).
    pub fn kill_running(&self) {
        let groups = self.groups.lock().expect("lock");
        // Marked while `groups` is held: an attempt leaves `groups` before
        // it reads its mark, so no mark outlives its attempt.
        self.killed
            .lock()
            .expect("lock")
            .extend(groups.keys().cloned());
        for ((execution, node), pgid) in groups.iter() {
            tracing::warn!(execution = %execution, node = %node, "shutting down: stopping a running attempt; it will be retried");
            if let Err(e) = process::kill_group(*pgid, process::Signal::Kill) {
                tracing::warn!(error = %e, "cannot stop an attempt");
            }
        }
    }

    fn tell(&self, event: NodeEvent, execution: &Execution, node: &PlanNode, state: &NodeState) {
        for observer in &self.observers {
            observer.node_event(event, execution, node, state);
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// This engine and host: the engine lease's holder name is
    /// `owner().engine`.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Drives every unfinished execution one step, but for those a
    /// backfill's `--max-parallel` holds queued ([`admission`]).
    pub async fn tick(&self) -> Result<(), Error> {
        if let Some(runs) = &self.kube {
            self.poll_jobs(runs).await;
        }
        let unfinished = self.store.unfinished_executions().await?;
        // A backfill's executions beyond its --max-parallel stay queued.
        let held = admission::held(&unfinished);
        for execution in unfinished {
            if !held.contains(&execution.id) {
                self.drive(execution).await?;
            }
        }
        Ok(())
    }

    /// Drives execution `id` alone until it has finished; returns it.
    /// (Other unfinished executions in the store are left to whoever drives
    /// them, e.g. a daemon.)
    pub async fn run_until_finished(&self, id: &str) -> Result<Execution, Error> {
        loop {
            let execution = self.store.execution(id).await?.ok_or_else(|| Error::Plan {
                id: id.to_owned(),
                message: "the execution disappeared".into(),
            })?;
            if execution.status.is_terminal() {
                return Ok(execution);
            }
            if let Some(runs) = &self.kube {
                self.poll_jobs(runs).await;
            }
            let execution = self.drive(execution).await?;
            if execution.status.is_terminal() {
                return Ok(execution);
            }
            let woken = self.wake.notified();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), woken).await;
        }
    }

    /// The engine holding the store's engine lease now, if any.
    async fn lease_holder(&self) -> Result<Option<String>, Error> {
        let now = Utc::now();
        let lease = self.store.lease(store::ENGINE_LEASE).await?;
        Ok(lease.filter(|l| l.is_live(now)).map(|l| l.holder))
    }

    fn take_finished(&self, execution: &str) -> Vec<Finished> {
        let mut all = self.finished.lock().expect("lock");
        let (mine, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|f| f.execution == execution);
        *all = rest;
        mine
    }

    async fn drive(&self, mut execution: Execution) -> Result<Execution, Error> {
        let plan: Plan =
            serde_json::from_value(execution.plan.clone()).map_err(|e| Error::Plan {
                id: execution.id.clone(),
                message: e.to_string(),
            })?;
        let mut nodes = self.store.nodes(&execution.id).await?;
        let now = Utc::now();
        if execution.status == Status::Queued {
            execution.status = Status::Running;
            execution.started_at = Some(now);
            self.store.update_execution(&execution).await?;
        }

        // 1. Attempts that ended.
        for done in self.take_finished(&execution.id) {
            self.running
                .lock()
                .expect("lock")
                .remove(&(done.execution.clone(), done.node.clone()));
            let Some(state) = nodes.iter_mut().find(|n| n.node == done.node) else {
                continue;
            };
            let Some(spec) = plan.nodes.iter().find(|n| n.path == done.node) else {
                continue;
            };
            // Another engine took the node over meanwhile (this one lost
            // the lease): its state is no longer this attempt's to write.
            let still_mine = state.status == NodeStatus::Running
                && Owner::of_handle(state.handle.as_ref()).as_ref() == Some(&self.owner);
            if self.kube.is_none() && !still_mine {
                tracing::warn!(execution = %execution.id, node = %state.node, "an attempt ended after another engine took its node over; not recorded");
                continue;
            }
            self.record(&execution, spec, state, done.outcome).await?;
        }

        // 2. Attempts this process does not know: their engine died or lost
        // the lease. Kill what is left of them (on this host only), and
        // retry; leave alone those of an engine that still holds the lease.
        let mut lease_holder = None;
        for state in nodes.iter_mut().filter(|n| n.status == NodeStatus::Running) {
            let key = (execution.id.clone(), state.node.clone());
            if self.running.lock().expect("lock").contains_key(&key) {
                continue;
            }
            if let Some(runs) = &self.kube {
                if self.runs_job(runs, &execution.id, &state.node)
                    || self.adopt_job(runs, &execution, state)
                {
                    continue;
                }
            }
            let owner = Owner::of_handle(state.handle.as_ref());
            if let Some(owner) = owner.as_ref().filter(|o| o.engine != self.owner.engine) {
                if lease_holder.is_none() {
                    lease_holder = Some(self.lease_holder().await?);
                }
                if lease_holder
                    .as_ref()
                    .is_some_and(|h| h.as_deref() == Some(&owner.engine))
                {
                    tracing::debug!(execution = %execution.id, node = %state.node, engine = %owner.engine, "an attempt of the engine holding the lease; left to it");
                    continue;
                }
            }
            let pgid = state
                .handle
                .as_ref()
                .and_then(|h| h.get("pgid"))
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok());
            match (pgid, &owner) {
                (Some(pgid), Some(owner)) if owner.may_signal_here() => {
                    tracing::info!(execution = %execution.id, node = %state.node, engine = %owner.engine, pgid, "stopping an attempt whose engine is gone");
                    if let Err(e) = process::kill_group(pgid, process::Signal::Kill) {
                        tracing::warn!(execution = %execution.id, node = %state.node, error = %e, "cannot kill an interrupted attempt's processes");
                    }
                }
                (Some(pgid), _) => {
                    tracing::warn!(execution = %execution.id, node = %state.node, pgid, host = owner.as_ref().map_or("unknown", |o| o.host.as_str()), "an interrupted attempt ran on another host (or before a reboot): its processes are not signalled from here");
                }
                (None, _) => {}
            }
            let Some(spec) = plan.nodes.iter().find(|n| n.path == state.node) else {
                continue;
            };
            // An execution being cancelled does not retry it.
            let outcome = if execution.cancel_requested {
                Outcome::Cancelled
            } else {
                Outcome::Interrupted
            };
            self.record(&execution, spec, state, outcome).await?;
        }

        // 3. Cancel, fail fast, or finish.
        let failed = nodes
            .iter()
            .find(|n| matches!(n.status, NodeStatus::Failed | NodeStatus::TimedOut));
        let stop = if execution.cancel_requested {
            Some((Status::Cancelled, "cancelled on request".to_owned()))
        } else {
            failed.map(|n| {
                let status = if n.status == NodeStatus::TimedOut {
                    Status::TimedOut
                } else {
                    Status::Failed
                };
                let why = n.error.clone().unwrap_or_default();
                (status, format!("node `{}` {}: {why}", n.node, n.status))
            })
        };
        if let Some((status, error)) = stop {
            let mut still_running = false;
            for state in nodes.iter_mut() {
                match state.status {
                    NodeStatus::Running => {
                        still_running = true;
                        let key = (execution.id.clone(), state.node.clone());
                        if let Some(token) = self.running.lock().expect("lock").get(&key) {
                            token.cancel();
                        }
                        if let Some(runs) = &self.kube {
                            self.cancel_job(runs, &execution.id, &state.node).await;
                        }
                    }
                    NodeStatus::Pending | NodeStatus::Retrying => {
                        state.status = NodeStatus::Skipped;
                        state.finished_at = Some(now);
                        self.store.update_node(state).await?;
                    }
                    _ => {}
                }
            }
            if !still_running {
                execution.status = status;
                execution.error = Some(error);
                execution.finished_at = Some(now);
                self.store.update_execution(&execution).await?;
                tracing::info!(execution = %execution.id, status = %status, "execution finished");
                for observer in &self.observers {
                    observer.execution_finished(&execution);
                }
            }
            return Ok(execution);
        }
        if nodes.iter().all(|n| n.status == NodeStatus::Succeeded) {
            let outputs = node_outputs(&nodes);
            let mut values = serde_json::Map::new();
            for (name, binding) in &plan.outputs {
                match resolve(binding, &execution.inputs, &outputs) {
                    Ok(v) => {
                        values.insert(name.clone(), v);
                    }
                    Err(e) => {
                        execution.status = Status::Failed;
                        execution.error = Some(format!("workflow output `{name}`: {e}"));
                    }
                }
            }
            if execution.status == Status::Running {
                execution.status = Status::Succeeded;
                execution.outputs = Some(Value::Object(values));
            }
            execution.finished_at = Some(now);
            self.store.update_execution(&execution).await?;
            tracing::info!(execution = %execution.id, status = %execution.status, "execution finished");
            for observer in &self.observers {
                observer.execution_finished(&execution);
            }
            return Ok(execution);
        }

        // 4. Start what is ready (unless shutting down, or not leading).
        if !self.may_start() {
            return Ok(execution);
        }
        let outputs = node_outputs(&nodes);
        let succeeded: std::collections::HashSet<String> = nodes
            .iter()
            .filter(|n| n.status == NodeStatus::Succeeded)
            .map(|n| n.node.clone())
            .collect();
        for state in nodes.iter_mut() {
            let due = match state.status {
                NodeStatus::Pending => true,
                NodeStatus::Retrying => state.next_attempt_at.is_none_or(|at| at <= now),
                _ => false,
            };
            let Some(spec) = plan.nodes.iter().find(|n| n.path == state.node) else {
                continue;
            };
            if !due || !spec.deps.iter().all(|d| succeeded.contains(d)) {
                continue;
            }
            let mut inputs = BTreeMap::new();
            let mut bad = None;
            for (name, binding) in &spec.inputs {
                match resolve(binding, &execution.inputs, &outputs) {
                    Ok(v) => {
                        inputs.insert(name.clone(), v);
                    }
                    Err(e) => bad = Some(format!("input `{name}`: {e}")),
                }
            }
            if let Some(error) = bad {
                state.status = NodeStatus::Failed;
                state.error = Some(error);
                state.finished_at = Some(now);
                self.store.update_node(state).await?;
                continue;
            }
            // Leadership may have ended during this tick.
            if !self.may_start() {
                tracing::info!(execution = %execution.id, "no longer leading the store: starting no more attempts");
                return Ok(execution);
            }
            self.start(&execution, spec, state, inputs).await?;
        }
        Ok(execution)
    }

    /// Starts an attempt of `spec`, or serves it from the cache.
    async fn start(
        &self,
        execution: &Execution,
        spec: &PlanNode,
        state: &mut NodeState,
        inputs: BTreeMap<String, Value>,
    ) -> Result<(), Error> {
        let now = Utc::now();
        let inputs_value = Value::Object(inputs.clone().into_iter().collect());
        let no_cache = execution
            .options
            .get("noCache")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let key = spec.spec.cache.enabled.then(|| cache_key(spec, &inputs));
        if let (Some(key), false) = (&key, no_cache) {
            if let Some(hit) = self.store.cache_get(key).await? {
                state.status = NodeStatus::Succeeded;
                state.inputs = Some(inputs_value);
                state.outputs = Some(hit.outputs.clone());
                state.cached_from = Some(hit.execution.clone());
                state.started_at = Some(now);
                state.finished_at = Some(now);
                // The node and its lineage in one transaction (I5).
                let edges = edges(execution, state, now);
                self.store.complete_node(state, None, &edges).await?;
                self.tell(NodeEvent::Succeeded, execution, spec, state);
                tracing::info!(execution = %execution.id, node = %state.node, from = %hit.execution, "served from the cache");
                return Ok(());
            }
        }
        state.attempts += 1;
        state.status = NodeStatus::Running;
        state.inputs = Some(inputs_value);
        state.error = None;
        state.next_attempt_at = None;
        if state.started_at.is_none() {
            state.started_at = Some(now);
        }
        if let Some(runs) = &self.kube {
            let timeout = spec
                .spec
                .timeout
                .as_deref()
                .and_then(|t| duration::parse(t).ok());
            let notebook = spec.notebook.as_ref().and_then(|n| {
                self.files
                    .read(&execution.source, &n.commit, &n.path)
                    .ok()
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            });
            self.start_job(runs, execution, spec, state, inputs, timeout, notebook)
                .await?;
            self.tell(NodeEvent::Started, execution, spec, state);
            return Ok(());
        }
        let dir = local::attempt_dir(&self.state_dir, &execution.id, &state.node, state.attempts);
        let mut handle = json!({
            "dir": dir.display().to_string(),
            "owner": self.owner.to_value(),
        });
        if let Some(n) = state.handle.as_ref().and_then(|h| h.get("interruptions")) {
            handle["interruptions"] = n.clone();
        }
        state.handle = Some(handle.clone());
        self.store.update_node(state).await?;
        self.tell(NodeEvent::Started, execution, spec, state);

        let token = CancellationToken::new();
        self.running
            .lock()
            .expect("lock")
            .insert((execution.id.clone(), state.node.clone()), token.clone());
        let timeout = spec
            .spec
            .timeout
            .as_deref()
            .and_then(|t| duration::parse(t).ok());
        let notebook = spec.notebook.as_ref().map(|n| {
            self.files
                .read(&execution.source, &n.commit, &n.path)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .map_err(|e| e.to_string())
        });
        let artifacts = self.artifacts.clone();
        let finished = self.finished.clone();
        let wake = self.wake.clone();
        let groups = self.groups.clone();
        let killed = self.killed.clone();
        let store = self.store.clone();
        let task_spec = spec.spec.clone();
        let task = spec.task.clone();
        let inherited = self.inherited.clone();
        let (execution_id, node) = (execution.id.clone(), state.node.clone());
        let mut recorded = state.clone();
        tracing::info!(execution = %execution_id, node = %node, attempt = recorded.attempts, "starting attempt");
        tokio::spawn(async move {
            let (pgid_tx, pgid_rx) = tokio::sync::oneshot::channel();
            let attempt = Attempt {
                dir: dir.clone(),
                task: &task,
                spec: &task_spec,
                inputs: &inputs,
                timeout,
                notebook,
                inherited: &inherited,
            };
            let run = local::run(attempt, artifacts.as_ref(), &token, |pgid| {
                let _ = pgid_tx.send(pgid);
            });
            let key = (execution_id.clone(), node.clone());
            let remember = async {
                if let Ok(pgid) = pgid_rx.await {
                    groups.lock().expect("lock").insert(key.clone(), pgid);
                    recorded.handle = Some({
                        let mut with_pgid = handle.clone();
                        with_pgid["pgid"] = json!(pgid);
                        with_pgid
                    });
                    if let Err(e) = store.update_node(&recorded).await {
                        tracing::warn!(error = %e, "cannot record an attempt's process group");
                    }
                }
            };
            let (outcome, ()) = tokio::join!(run, remember);
            groups.lock().expect("lock").remove(&key);
            let was_killed = killed.lock().expect("lock").remove(&key);
            let outcome = match outcome {
                Outcome::Succeeded { .. } => outcome,
                // Killed by this engine (leadership lost): not the task's
                // fault, so it does not use up the task's retries.
                _ if was_killed => Outcome::Interrupted,
                _ => outcome,
            };
            finished.lock().expect("lock").push(Finished {
                execution: execution_id,
                node,
                outcome,
            });
            wake.notify_one();
        });
        Ok(())
    }

    /// Records how an attempt ended: success (outputs, cache, lineage), or a
    /// failure that is retried with backoff while attempts remain.
    async fn record(
        &self,
        execution: &Execution,
        spec: &PlanNode,
        state: &mut NodeState,
        outcome: Outcome,
    ) -> Result<(), Error> {
        let now = Utc::now();
        match outcome {
            Outcome::Succeeded { outputs } => {
                let outputs = Value::Object(outputs.into_iter().collect());
                state.status = NodeStatus::Succeeded;
                state.outputs = Some(outputs.clone());
                state.error = None;
                state.finished_at = Some(now);
                let entry = spec.spec.cache.enabled.then(|| {
                    let inputs: BTreeMap<String, Value> = state
                        .inputs
                        .as_ref()
                        .and_then(Value::as_object)
                        .map(|m| m.clone().into_iter().collect())
                        .unwrap_or_default();
                    CacheEntry {
                        key: cache_key(spec, &inputs),
                        execution: execution.id.clone(),
                        node: state.node.clone(),
                        outputs,
                        created_at: now,
                    }
                });
                // The node, its cache entry and its lineage in one
                // transaction: a crash cannot separate them (I5).
                let edges = edges(execution, state, now);
                self.store
                    .complete_node(state, entry.as_ref(), &edges)
                    .await?;
                self.tell(NodeEvent::Succeeded, execution, spec, state);
            }
            Outcome::Interrupted => {
                // Not the task's fault (Flyte's system retries): retried at
                // once, apart from the task's own retry budget, a few times.
                let interruptions = state
                    .handle
                    .as_ref()
                    .and_then(|h| h.get("interruptions"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    + 1;
                let mut handle = state.handle.clone().unwrap_or_else(|| json!({}));
                handle["interruptions"] = json!(interruptions);
                state.handle = Some(handle);
                if interruptions <= MAX_INTERRUPTIONS {
                    state.status = NodeStatus::Retrying;
                    state.next_attempt_at = Some(now);
                    state.error = Some(format!(
                        "interrupted: the process running attempt {} stopped; retrying ({interruptions} of {MAX_INTERRUPTIONS})",
                        state.attempts
                    ));
                    tracing::info!(execution = %execution.id, node = %state.node, attempt = state.attempts, "interrupted attempt; retrying");
                } else {
                    state.status = NodeStatus::Failed;
                    state.finished_at = Some(now);
                    state.error = Some(format!(
                        "interrupted {interruptions} times: the processes running it kept stopping"
                    ));
                }
                self.store.update_node(state).await?;
                if state.status.is_terminal() {
                    self.tell(NodeEvent::Failed, execution, spec, state);
                }
            }
            Outcome::Cancelled => {
                state.status = NodeStatus::Cancelled;
                state.error = Some("cancelled".into());
                state.finished_at = Some(now);
                self.store.update_node(state).await?;
                self.tell(NodeEvent::Aborted, execution, spec, state);
            }
            failed => {
                let (status, error) = match failed {
                    Outcome::TimedOut => (
                        NodeStatus::TimedOut,
                        format!(
                            "timed out after {}",
                            spec.spec.timeout.as_deref().unwrap_or("?")
                        ),
                    ),
                    Outcome::Failed { error } => (NodeStatus::Failed, error),
                    _ => unreachable!("handled above"),
                };
                let retries = spec.spec.retries.attempts;
                if state.attempts <= retries && !execution.cancel_requested {
                    state.status = NodeStatus::Retrying;
                    state.next_attempt_at = Some(retry::due_at(
                        now,
                        &spec.spec.retries.backoff,
                        state.attempts,
                    ));
                    tracing::info!(execution = %execution.id, node = %state.node, attempt = state.attempts, error = %error, "attempt failed; retrying");
                } else {
                    state.status = status;
                    state.finished_at = Some(now);
                    tracing::info!(execution = %execution.id, node = %state.node, attempt = state.attempts, error = %error, "node failed");
                }
                state.error = Some(error);
                self.store.update_node(state).await?;
                if state.status.is_terminal() {
                    self.tell(NodeEvent::Failed, execution, spec, state);
                }
            }
        }
        Ok(())
    }
}

/// Outputs of the nodes that succeeded, by path.
fn node_outputs(nodes: &[NodeState]) -> HashMap<String, Value> {
    nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Succeeded)
        .filter_map(|n| Some((n.node.clone(), n.outputs.clone()?)))
        .collect()
}

/// The value of a binding.
pub fn resolve(
    binding: &Binding,
    inputs: &Value,
    outputs: &HashMap<String, Value>,
) -> Result<Value, String> {
    match binding {
        Binding::Literal { value } => Ok(value.clone()),
        Binding::Input { name } => inputs
            .get(name)
            .cloned()
            .ok_or_else(|| format!("the execution has no input `{name}`")),
        Binding::Output { node, output } => outputs
            .get(node)
            .and_then(|o| o.get(output))
            .cloned()
            .ok_or_else(|| format!("node `{node}` has no output `{output}`")),
        Binding::Concat { parts } => {
            let mut text = String::new();
            for part in parts {
                match resolve(part, inputs, outputs)? {
                    Value::String(s) => text.push_str(&s),
                    other => text.push_str(&other.to_string()),
                }
            }
            Ok(Value::String(text))
        }
    }
}

/// Flyte's cache key: (task, `cache.version` or the task version, the
/// inputs minus `ignoreInputs`).
fn cache_key(spec: &PlanNode, inputs: &BTreeMap<String, Value>) -> Digest {
    let kept: serde_json::Map<String, Value> = inputs
        .iter()
        .filter(|(k, _)| !spec.spec.cache.ignore_inputs.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let version = spec.spec.cache.version.clone().map_or_else(
        || format!("task:{}", spec.task_version),
        |v| format!("cache:{v}"),
    );
    Digest::of_json(&json!({ "task": spec.task, "version": version, "inputs": kept }))
}

/// Lineage edges of a succeeded node: every input and output, files by their
/// artifact digest, other values by the digest of their JSON.
fn edges(execution: &Execution, state: &NodeState, at: chrono::DateTime<Utc>) -> Vec<LineageEdge> {
    let mut out = Vec::new();
    for (direction, values) in [
        (Direction::Input, &state.inputs),
        (Direction::Output, &state.outputs),
    ] {
        let Some(Value::Object(map)) = values else {
            continue;
        };
        for (name, value) in map {
            let digest = match value {
                Value::String(s) => {
                    artifact::parse_reference(s).unwrap_or_else(|| Digest::of_json(value))
                }
                other => Digest::of_json(other),
            };
            out.push(LineageEdge {
                execution: execution.id.clone(),
                node: state.node.clone(),
                direction,
                name: name.clone(),
                digest,
                task: state.task.clone(),
                task_version: state.task_version.clone(),
                commit: execution.commit.clone(),
                at,
            });
        }
    }
    out
}
