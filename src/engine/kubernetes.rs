//! The engine's side of the Kubernetes executor: attempts become Jobs
//! (created idempotently, so a restart adopts rather than duplicates),
//! each pass of the engine reads all Jobs and Pods once while some Job of
//! its runs (none while none does) and records the attempts that ended, a
//! cancel or a timeout deletes the Job, and Jobs of executions the store
//! no longer has are garbage-collected from the engine's full pass.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::attempts::Finished;
use super::handle::NodeHandle;
use super::{Engine, PlanNode};
use crate::executor::Outcome;
use crate::executor::handle::{AttemptHandle, KubeHandle};
use crate::executor::kubernetes::job::{self, JobRequest};
use crate::executor::kubernetes::pod::Payload;
use crate::executor::kubernetes::{JobState, Kube, Report};
use crate::spec::ExecutionId;
use crate::store::execution::{EngineWrite, Execution, NodeState};

/// How often Jobs are checked against the store's executions.
const GC_EVERY: Duration = Duration::from_secs(60);

/// What the engine keeps of the Jobs it drives.
pub struct KubeRuns {
    kube: Kube,
    /// The artifact store's URL as the pods open it.
    artifacts: String,
    /// Attempts whose Job runs, by (execution, node): the Job's name.
    jobs: Mutex<HashMap<(ExecutionId, String), String>>,
    last_gc: Mutex<Option<Instant>>,
}

impl KubeRuns {
    pub fn new(kube: Kube, artifacts: String) -> KubeRuns {
        KubeRuns {
            kube,
            artifacts,
            jobs: Mutex::new(HashMap::new()),
            last_gc: Mutex::new(None),
        }
    }

    /// The client (API call counts, for the benchmark).
    pub fn kube(&self) -> &Kube {
        &self.kube
    }

    /// Jobs being tracked.
    pub fn tracked(&self) -> usize {
        lock(&self.jobs).len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl From<Report> for Outcome {
    fn from(report: Report) -> Outcome {
        match report {
            Report::Succeeded { outputs } => Outcome::Succeeded { outputs },
            Report::Failed { error } => Outcome::Failed { error },
            Report::TimedOut => Outcome::TimedOut,
        }
    }
}

impl Engine {
    /// Reads every Job and Pod once and queues the attempts that ended; a
    /// tracked Job that is gone was interrupted (retried as such).
    pub(super) async fn poll_jobs(&self, runs: &KubeRuns) {
        if lock(&runs.jobs).is_empty() {
            return;
        }
        let states = match runs.kube.observe().await {
            Ok(states) => states,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Jobs; trying again next tick");
                return;
            }
        };
        let mut ended = Vec::new();
        let mut timed_out = Vec::new();
        lock(&runs.jobs).retain(|(execution, node), name| {
            let outcome = match states.get(name) {
                Some(JobState::Running) => return true,
                Some(JobState::Finished(report)) => {
                    if *report == Report::TimedOut {
                        timed_out.push(name.clone());
                    }
                    Outcome::from(report.clone())
                }
                None => {
                    tracing::warn!(job = %name, "the attempt's Job is gone");
                    Outcome::Interrupted
                }
            };
            ended.push(Finished {
                execution: execution.clone(),
                node: node.clone(),
                outcome,
            });
            false
        });
        // A timed-out Job's pod is stopped by Kubernetes; the Job goes too.
        for name in timed_out {
            if let Err(e) = runs.kube.delete(&name).await {
                tracing::warn!(job = %name, error = %e, "cannot delete a timed-out Job");
            }
        }
        if !ended.is_empty() {
            lock(&self.finished).extend(ended);
        }
    }

    /// Deletes, now and then (at most every [`GC_EVERY`], from the
    /// engine's full pass), the Jobs of executions the store does not have.
    pub(super) async fn collect_garbage(&self, runs: &KubeRuns) {
        {
            let mut last = lock(&runs.last_gc);
            if last.is_some_and(|at| at.elapsed() < GC_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let jobs = match runs.kube.job_executions().await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list Jobs to collect garbage");
                return;
            }
        };
        for (name, execution) in jobs {
            match self.store.execution(&execution).await {
                Ok(None) => {
                    tracing::info!(job = %name, execution = %execution, "deleting the Job of an execution that does not exist");
                    if let Err(e) = runs.kube.delete(&name).await {
                        tracing::warn!(job = %name, error = %e, "cannot delete an orphaned Job");
                    }
                }
                Ok(Some(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read an execution to collect garbage");
                    return;
                }
            }
        }
    }

    /// A running node this process did not start: when its Job is known,
    /// adopt it (the Job goes on in the cluster) instead of retrying it.
    pub(super) fn adopt_job(
        &self,
        runs: &KubeRuns,
        execution: &Execution,
        state: &NodeState,
    ) -> bool {
        let Some(AttemptHandle::Kubernetes(job)) = NodeHandle::read(state).attempt else {
            return false;
        };
        let name = job.name;
        tracing::info!(execution = %execution.id, node = %state.node, job = %name, "adopting a running Job");
        lock(&runs.jobs).insert((execution.id.clone(), state.node.clone()), name);
        true
    }

    /// Whether `(execution, node)` runs as a Job here.
    pub(super) fn runs_job(&self, runs: &KubeRuns, execution: &ExecutionId, node: &str) -> bool {
        lock(&runs.jobs).contains_key(&(execution.clone(), node.to_owned()))
    }

    /// Cancels an attempt: deletes its Job (foreground: its pod goes
    /// first) and records it as cancelled.
    pub(super) async fn cancel_job(&self, runs: &KubeRuns, execution: &ExecutionId, node: &str) {
        let key = (execution.clone(), node.to_owned());
        let Some(name) = lock(&runs.jobs).get(&key).cloned() else {
            return;
        };
        match runs.kube.delete(&name).await {
            Ok(()) => {
                lock(&runs.jobs).remove(&key);
                lock(&self.finished).push(Finished {
                    execution: key.0,
                    node: key.1,
                    outcome: Outcome::Cancelled,
                });
            }
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "cannot delete a cancelled attempt's Job; trying again next tick")
            }
        }
    }

    /// Starts an attempt as a Job; the node's handle names it. A Job that
    /// cannot be created (the API stays down through the retries) is an
    /// interruption: retried at once, a bounded number of times.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start_job(
        &self,
        runs: &KubeRuns,
        execution: &Execution,
        spec: &PlanNode,
        state: &mut NodeState,
        inputs: BTreeMap<String, Value>,
        timeout: Option<Duration>,
        notebook: Option<String>,
    ) -> Result<(), super::Error> {
        let payload = Payload {
            execution: execution.id.clone(),
            node: state.node.clone(),
            attempt: state.attempts,
            task: spec.task.clone(),
            spec: spec.spec.clone(),
            inputs,
            timeout_seconds: timeout.map(|t| t.as_secs()),
            notebook,
            artifacts: runs.artifacts.clone(),
            inherit: self.inherited.allow_list().clone(),
        };
        let request = JobRequest {
            execution: &execution.id,
            project: &execution.project,
            commit: &execution.commit.0,
            node: &state.node,
            task: &spec.task,
            task_version: &spec.task_version,
            attempt: state.attempts,
            spec: &spec.spec,
            timeout,
            payload: serde_json::to_string(&payload).expect("payloads serialize"),
        };
        let job = job::build(runs.kube.settings(), &request);
        let name = job.metadata.name.clone().unwrap_or_default();
        // Nothing of an earlier (local) attempt is kept: its process group
        // and owner are not this Job's.
        NodeHandle::read(state)
            .next_attempt(
                None,
                AttemptHandle::Kubernetes(KubeHandle {
                    namespace: runs.kube.settings().namespace.clone(),
                    name: name.clone(),
                }),
            )
            .store_in(state);
        // Recorded (with the pass's earlier writes) before the create: a
        // restart in between finds the name and adopts the Job if the
        // create landed.
        self.write(EngineWrite::Node(state.clone()));
        self.flush().await?;
        let key = (execution.id.clone(), state.node.clone());
        match runs.kube.create(&job).await {
            Ok(_) => {
                lock(&runs.jobs).insert(key, name);
            }
            Err(e) => {
                tracing::warn!(execution = %execution.id, node = %state.node, error = %e, "cannot create the attempt's Job");
                lock(&self.finished).push(Finished {
                    execution: key.0,
                    node: key.1,
                    outcome: Outcome::Interrupted,
                });
                self.wake.notify_one();
            }
        }
        Ok(())
    }
}
