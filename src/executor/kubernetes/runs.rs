//! [`KubeExecutor`]: attempts as Jobs, behind the [`Executor`] boundary.
//!
//! An attempt's Job has a name decided before anything is created
//! ([`job::job_name`]), which the engine stores first; the create is
//! idempotent, so a restart adopts the Job rather than duplicating it. While
//! some Job of this executor runs, [`Executor::observe`] reads all Jobs and
//! Pods once and tells the engine the attempts that ended (a tracked Job
//! that is gone was interrupted); a cancel deletes the Job, as does a
//! timeout (Kubernetes stops its pod at `activeDeadlineSeconds`). Jobs of
//! executions the store no longer has are listed for the engine to judge
//! ([`Executor::orphans`]) and deleted when it says so.
//!
//! What it must not do: stop a Job because this process stops. A Job
//! outlives its engine; the next leader adopts it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::job::{self, JobRequest};
use super::pod::{Payload, StoredFiles};
use super::{JobState, Kube, Report};
use crate::executor::handle::{AttemptHandle, KubeHandle};
use crate::executor::{
    Adoption, AttemptKey, AttemptRequest, BoxFuture, Events, Executor, Orphan, Outcome, StartError,
    lock,
};
use crate::task::RepositoryFiles;

/// Runs attempts as Jobs of one namespace.
pub struct KubeExecutor {
    kube: Kube,
    /// The artifact store's URL as the pods open it.
    artifacts: String,
    /// Attempts whose Job runs: the Job's name.
    jobs: Mutex<HashMap<AttemptKey, String>>,
}

impl KubeExecutor {
    pub fn new(kube: Kube, artifacts: String) -> KubeExecutor {
        KubeExecutor {
            kube,
            artifacts,
            jobs: Mutex::new(HashMap::new()),
        }
    }

    /// The attempt's repository files as the payload carries them: each
    /// text stored in the shared artifact store (the pod fetches it), and
    /// why the others could not be read. A store that cannot take them
    /// leaves the attempt unstarted.
    fn store_files(&self, files: &RepositoryFiles, job: &str) -> Result<StoredFiles, StartError> {
        if files.is_empty() {
            return Ok(Default::default());
        }
        let cannot = |e: &dyn std::fmt::Display| {
            StartError(format!("cannot store the task's repository files: {e}"))
        };
        let store = crate::artifact::open(&self.artifacts).map_err(|e| cannot(&e))?;
        let scratch = std::env::temp_dir().join(format!("weir-files-{job}"));
        std::fs::create_dir_all(&scratch).map_err(|e| cannot(&e))?;
        let stored = Payload::store_files(files, store.as_ref(), &scratch);
        if let Err(e) = std::fs::remove_dir_all(&scratch) {
            tracing::warn!(folder = %scratch.display(), error = %e, "cannot remove a scratch folder");
        }
        stored.map_err(|e| cannot(&e))
    }
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

impl Executor for KubeExecutor {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn plan(&self, request: &AttemptRequest) -> AttemptHandle {
        AttemptHandle::Kubernetes(KubeHandle {
            namespace: self.kube.settings().namespace.clone(),
            name: job::job_name(
                &request.key.execution,
                &request.key.node,
                request.key.attempt,
            ),
        })
    }

    /// Creates the Job; one that cannot be created (the API stays down
    /// through the retries) did not start.
    fn start(
        &self,
        request: AttemptRequest,
        _handle: AttemptHandle,
        _events: Arc<dyn Events>,
    ) -> BoxFuture<'_, Result<(), StartError>> {
        Box::pin(async move {
            let key = &request.key;
            let job_name = job::job_name(&key.execution, &key.node, key.attempt);
            let StoredFiles {
                file_artifacts,
                unreadable,
            } = self.store_files(&request.files, &job_name)?;
            let payload = Payload {
                execution: key.execution.clone(),
                node: key.node.clone(),
                attempt: key.attempt,
                task: request.task.clone(),
                spec: request.spec.clone(),
                inputs: request.inputs.clone(),
                timeout_seconds: request.timeout.map(|t| t.as_secs()),
                file_artifacts,
                files: BTreeMap::new(),
                unreadable,
                notebook: None,
                artifacts: self.artifacts.clone(),
                inherit: request.environment.allow_list().clone(),
            };
            let job = job::build(
                self.kube.settings(),
                &JobRequest {
                    execution: &key.execution,
                    project: &request.project,
                    commit: &request.commit.0,
                    node: &key.node,
                    task: &request.task,
                    task_version: &request.task_version,
                    attempt: key.attempt,
                    spec: &request.spec,
                    task_types: &request.task_types,
                    timeout: request.timeout,
                    payload: serde_json::to_string(&payload).expect("payloads serialize"),
                },
            );
            let name = job.metadata.name.clone().unwrap_or_default();
            match self.kube.create(&job).await {
                Ok(_) => {
                    lock(&self.jobs).insert(key.clone(), name);
                    Ok(())
                }
                Err(e) => Err(StartError(e.to_string())),
            }
        })
    }

    fn polls(&self) -> bool {
        !lock(&self.jobs).is_empty()
    }

    /// Reads every Job and Pod once (while some Job of this executor runs)
    /// and tells the attempts that ended; a tracked Job that is gone was
    /// interrupted (retried as such).
    fn observe<'a>(&'a self, events: &'a Arc<dyn Events>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if lock(&self.jobs).is_empty() {
                return;
            }
            let states = match self.kube.observe().await {
                Ok(states) => states,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the Jobs; trying again next tick");
                    return;
                }
            };
            let mut ended = Vec::new();
            let mut timed_out = Vec::new();
            lock(&self.jobs).retain(|key, name| {
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
                ended.push((key.clone(), outcome));
                false
            });
            // A timed-out Job's pod is stopped by Kubernetes; the Job goes too.
            for name in timed_out {
                if let Err(e) = self.kube.delete(&name).await {
                    tracing::warn!(job = %name, error = %e, "cannot delete a timed-out Job");
                }
            }
            for (key, outcome) in ended {
                events.ended(key, outcome);
            }
        })
    }

    /// Deletes the attempt's Job (foreground: its pod goes first); it ends
    /// cancelled once deleted, unless its end was told meanwhile. A delete that fails is tried again at the
    /// engine's next step.
    fn cancel<'a>(&'a self, key: &'a AttemptKey, events: &'a Arc<dyn Events>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(name) = lock(&self.jobs).get(key).cloned() else {
                return;
            };
            match self.kube.delete(&name).await {
                // Told only if still tracked: `observe` (or `stop_all`)
                // may have let it go while it was being deleted, and its
                // end is told once.
                Ok(()) => {
                    if lock(&self.jobs).remove(key).is_some() {
                        events.ended(key.clone(), Outcome::Cancelled);
                    }
                }
                Err(e) => {
                    tracing::warn!(job = %name, error = %e, "cannot delete a cancelled attempt's Job; trying again next tick")
                }
            }
        })
    }

    /// A Job goes on in the cluster: tracked again (its end is read by
    /// [`Executor::observe`], a Job that is gone by then was interrupted),
    /// if it is of this executor's namespace (else it is foreign). What is
    /// left of a local attempt is reaped ([`crate::executor::local::reap`]).
    fn adopt<'a>(
        &'a self,
        key: &'a AttemptKey,
        handle: &'a AttemptHandle,
        started_here: bool,
        _events: &'a Arc<dyn Events>,
    ) -> BoxFuture<'a, Adoption> {
        let namespace = &self.kube.settings().namespace;
        let adoption = match handle {
            // Made by an executor of another namespace: not watched here.
            AttemptHandle::Kubernetes(job) if job.namespace != *namespace => {
                tracing::warn!(execution = %key.execution, node = %key.node, job = %job.name, namespace = %job.namespace, "a Job of another namespace: not reachable from here");
                Adoption::Foreign
            }
            AttemptHandle::Kubernetes(job) => {
                tracing::info!(execution = %key.execution, node = %key.node, job = %job.name, "adopting a running Job");
                lock(&self.jobs).insert(key.clone(), job.name.clone());
                Adoption::Adopted
            }
            // A local attempt of an engine that ran on this host (before
            // `--executor kubernetes`): killed here as the local executor
            // would.
            AttemptHandle::Local(local) => crate::executor::local::reap(key, local, started_here),
        };
        Box::pin(async move { adoption })
    }

    /// Nothing runs in this process: Jobs are left to the next leader,
    /// and no longer tracked here (not deleted). Should this engine lead
    /// again, it finds them through the store like any other leader, and
    /// never tells the end of a Job another leader has since recorded.
    fn stop_all(&self) {
        let untracked = std::mem::take(&mut *lock(&self.jobs));
        if !untracked.is_empty() {
            tracing::info!(
                jobs = untracked.len(),
                "leaving the running Jobs to the next leader"
            );
        }
    }

    fn orphans(&self) -> BoxFuture<'_, Result<Vec<Orphan>, String>> {
        Box::pin(async move {
            let jobs = self
                .kube
                .job_executions()
                .await
                .map_err(|e| e.to_string())?;
            Ok(jobs
                .into_iter()
                .map(|(name, execution)| Orphan { name, execution })
                .collect())
        })
    }

    fn delete_orphan<'a>(&'a self, orphan: &'a Orphan) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tracing::info!(job = %orphan.name, execution = %orphan.execution, "deleting the Job of an execution that does not exist");
            if let Err(e) = self.kube.delete(&orphan.name).await {
                tracing::warn!(job = %orphan.name, error = %e, "cannot delete an orphaned Job");
            }
        })
    }
}
