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

use chrono::Utc;

use super::job::{self, JobRequest};
use super::pod::{Payload, StoredFiles};
use super::{JobState, Kube, Report, observe};
use crate::executor::handle::{AttemptHandle, KubeHandle};
use crate::executor::{
    Adoption, AttemptKey, AttemptRequest, BoxFuture, Events, Executor, Orphan, Outcome, StartError,
    lock,
};
use crate::task::resource::{ResourceKind, RunsIn};
use crate::task::{RepositoryFiles, TaskTypes};

/// Runs attempts as Jobs (or their task type's custom resources) of one
/// namespace.
pub struct KubeExecutor {
    kube: Kube,
    /// The artifact store's URL as the pods open it.
    artifacts: String,
    /// The types whose resource kinds it finds again after a restart.
    task_types: TaskTypes,
    /// Attempts whose object runs.
    jobs: Mutex<HashMap<AttemptKey, Tracked>>,
}

/// A running attempt's object.
#[derive(Debug, Clone)]
struct Tracked {
    name: String,
    /// Its custom resource kind; `None`: a Job.
    kind: Option<&'static ResourceKind>,
}

impl KubeExecutor {
    pub fn new(kube: Kube, artifacts: String) -> KubeExecutor {
        KubeExecutor {
            kube,
            artifacts,
            task_types: TaskTypes::builtin(),
            jobs: Mutex::new(HashMap::new()),
        }
    }

    /// The task types of the engine it serves (default: the built-in
    /// ones): their resource kinds are what it adopts and collects.
    pub fn with_task_types(mut self, task_types: TaskTypes) -> KubeExecutor {
        self.task_types = task_types;
        self
    }

    /// Deletes an attempt's object.
    async fn delete(&self, tracked: &Tracked) -> Result<(), super::Error> {
        match tracked.kind {
            None => self.kube.delete(&tracked.name).await,
            Some(kind) => self.kube.delete_resource(kind, &tracked.name).await,
        }
    }

    /// How each tracked object stands, by name: one list of Jobs while a
    /// Job is tracked, one of each custom resource kind tracked, then one
    /// of Pods.
    async fn states(
        &self,
        tracked: &[Tracked],
    ) -> Result<HashMap<String, Option<JobState>>, super::Error> {
        let mut states = HashMap::new();
        // Objects before Pods: an object seen ended has its pods' reports
        // in the list read after it.
        let jobs = if tracked.iter().any(|t| t.kind.is_none()) {
            Some(self.kube.jobs().await?)
        } else {
            None
        };
        let mut kinds: Vec<&'static ResourceKind> = tracked.iter().filter_map(|t| t.kind).collect();
        kinds.sort_by_key(|k| k.name());
        kinds.dedup_by_key(|k| k.name());
        let mut objects = Vec::with_capacity(kinds.len());
        for kind in kinds {
            objects.push((kind, self.kube.list_resources(kind).await?));
        }
        let pods = self.kube.pods().await?;
        if let Some(jobs) = jobs {
            let jobs = observe::states(&jobs, &pods);
            for t in tracked.iter().filter(|t| t.kind.is_none()) {
                states.insert(t.name.clone(), jobs.get(&t.name).cloned());
            }
        }
        let now = Utc::now();
        for (kind, objects) in objects {
            for t in tracked
                .iter()
                .filter(|t| t.kind.is_some_and(|k| k.name() == kind.name()))
            {
                let object = objects
                    .iter()
                    .find(|o| o.metadata.name.as_deref() == Some(&t.name));
                states.insert(
                    t.name.clone(),
                    observe::resource_state(kind, object, &pods, now),
                );
            }
        }
        Ok(states)
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
            Report::Unrunnable { error } => Outcome::Unrunnable { error },
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
            resource: request
                .task_types
                .resource_kind_of(&request.spec)
                .map(ResourceKind::name),
        })
    }

    /// Creates the Job (or the type's custom resource); one that cannot be
    /// created (the API stays down through the retries) did not start. A
    /// resource the task's type cannot make here fails the attempt.
    fn start(
        &self,
        request: AttemptRequest,
        _handle: AttemptHandle,
        events: Arc<dyn Events>,
    ) -> BoxFuture<'_, Result<(), StartError>> {
        Box::pin(async move {
            let key = &request.key;
            let job_name = job::job_name(&key.execution, &key.node, key.attempt);
            let StoredFiles {
                file_artifacts,
                unreadable,
            } = self.store_files(&request.files, &job_name)?;
            let kind = request.task_types.resource_kind_of(&request.spec);
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
                // In a resource, the run also needs what its engine gives
                // the pod (Spark's gateway to the driver's JVM).
                inherit: match kind {
                    Some(kind) => request
                        .environment
                        .allow_list()
                        .with_names(kind.inherit.iter().copied()),
                    None => request.environment.allow_list().clone(),
                },
                runs_in: if kind.is_some() {
                    RunsIn::Resource
                } else {
                    RunsIn::Process
                },
            };
            let job_request = JobRequest {
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
            };
            let settings = self.kube.settings();
            let created = match job::build_resource(settings, &job_request, Utc::now()) {
                None => self.kube.create(&job::build(settings, &job_request)).await,
                Some(Ok((kind, object))) => self.kube.create_resource(kind, &object).await,
                // The task cannot run as its type's resource here (a
                // setting is missing): its attempt fails at once, saying
                // so, as one whose pod could not run it would.
                Some(Err(e)) => {
                    events.ended(
                        key.clone(),
                        Outcome::Failed {
                            error: e.to_string(),
                        },
                    );
                    return Ok(());
                }
            };
            match created {
                Ok(_) => {
                    lock(&self.jobs).insert(
                        key.clone(),
                        Tracked {
                            name: job_name,
                            kind,
                        },
                    );
                    Ok(())
                }
                // No operator to run it: retrying will not help.
                Err(e @ super::Error::NoKind { .. }) => {
                    events.ended(
                        key.clone(),
                        Outcome::Failed {
                            error: e.to_string(),
                        },
                    );
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
            let tracked: Vec<Tracked> = lock(&self.jobs).values().cloned().collect();
            let states = match self.states(&tracked).await {
                Ok(states) => states,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the attempts' objects; trying again next tick");
                    return;
                }
            };
            let mut ended = Vec::new();
            let mut timed_out = Vec::new();
            lock(&self.jobs).retain(|key, tracked| {
                // Started since the list: read next tick.
                let Some(state) = states.get(&tracked.name) else {
                    return true;
                };
                let outcome = match state {
                    Some(JobState::Running) => return true,
                    Some(JobState::Finished(report)) => {
                        if *report == Report::TimedOut {
                            timed_out.push(tracked.clone());
                        }
                        Outcome::from(report.clone())
                    }
                    None => {
                        tracing::warn!(object = %tracked.name, "the attempt's object is gone");
                        Outcome::Interrupted
                    }
                };
                ended.push((key.clone(), outcome));
                false
            });
            // A timed-out Job's pod is stopped by Kubernetes, a custom
            // resource's by its deletion; the object goes either way.
            for tracked in timed_out {
                if let Err(e) = self.delete(&tracked).await {
                    tracing::warn!(object = %tracked.name, error = %e, "cannot delete a timed-out attempt's object");
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
            let Some(tracked) = lock(&self.jobs).get(key).cloned() else {
                return;
            };
            match self.delete(&tracked).await {
                // Told only if still tracked: `observe` (or `stop_all`)
                // may have let it go while it was being deleted, and its
                // end is told once.
                Ok(()) => {
                    if lock(&self.jobs).remove(key).is_some() {
                        events.ended(key.clone(), Outcome::Cancelled);
                    }
                }
                Err(e) => {
                    tracing::warn!(object = %tracked.name, error = %e, "cannot delete a cancelled attempt's object; trying again next tick")
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
                let kind = job
                    .resource
                    .as_deref()
                    .map(|name| (name, self.task_types.resource_kind(name)));
                match kind {
                    Some((name, None)) => {
                        tracing::warn!(execution = %key.execution, node = %key.node, object = %job.name, kind = name, "an object of a kind no task type here makes: not watched here");
                        Adoption::Foreign
                    }
                    _ => {
                        tracing::info!(execution = %key.execution, node = %key.node, object = %job.name, "adopting a running attempt's object");
                        lock(&self.jobs).insert(
                            key.clone(),
                            Tracked {
                                name: job.name.clone(),
                                kind: kind.and_then(|(_, kind)| kind),
                            },
                        );
                        Adoption::Adopted
                    }
                }
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

    /// Every weir Job, and every object of the task types' resource kinds
    /// (none of a kind the cluster does not have), with its execution.
    fn orphans(&self) -> BoxFuture<'_, Result<Vec<Orphan>, String>> {
        Box::pin(async move {
            let jobs = self
                .kube
                .job_executions()
                .await
                .map_err(|e| e.to_string())?;
            let mut orphans: Vec<Orphan> = jobs
                .into_iter()
                .map(|(name, execution)| Orphan {
                    name,
                    execution,
                    resource: None,
                })
                .collect();
            for kind in self.task_types.resource_kinds() {
                let objects = self
                    .kube
                    .resource_executions(kind)
                    .await
                    .map_err(|e| e.to_string())?;
                orphans.extend(objects.into_iter().map(|(name, execution)| Orphan {
                    name,
                    execution,
                    resource: Some(kind.name()),
                }));
            }
            Ok(orphans)
        })
    }

    fn delete_orphan<'a>(&'a self, orphan: &'a Orphan) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let kind = orphan
                .resource
                .as_deref()
                .and_then(|name| self.task_types.resource_kind(name));
            tracing::info!(object = %orphan.name, execution = %orphan.execution, "deleting the object of an execution that does not exist");
            let tracked = Tracked {
                name: orphan.name.clone(),
                kind,
            };
            if let Err(e) = self.delete(&tracked).await {
                tracing::warn!(object = %orphan.name, error = %e, "cannot delete an orphaned attempt's object");
            }
        })
    }
}
