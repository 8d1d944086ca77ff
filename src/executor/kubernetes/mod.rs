//! The Kubernetes executor (DESIGN.md section 6): one `batch/v1` Job per
//! node attempt ([`job`]), observed with one list of Jobs and one of Pods
//! per engine tick ([`observe`]), through the real `kube::Client`; the
//! attempts it runs, behind the executor boundary ([`KubeExecutor`]).
//!
//! Every call that changes the cluster is safe to repeat: a create that
//! meets an existing Job of the same name (a restart, or a retried request
//! whose first try did land) reads it and adopts it; a delete of a Job that
//! is gone is done. Transient API errors (5xx, 429, timeouts, a dropped
//! connection) are retried a few times with backoff, so an attempt is never
//! started twice and never lost to one bad answer.

pub mod job;
pub mod observe;
pub mod pod;
pub mod runs;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams, PropagationPolicy,
};
use kube::{Resource, ResourceExt};

use crate::spec::ExecutionId;
use crate::task::resource::ResourceKind;

pub use job::{JobRequest, Settings};
pub use observe::{JobState, Report};
pub use runs::KubeExecutor;

/// Tries of one API call before its error is returned.
const TRIES: u32 = 4;
/// The wait before the second try; doubled after each.
const BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Kubernetes API failed to {doing}: {source}")]
    Api {
        doing: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("the Kubernetes API did not answer within {seconds} s to {doing}")]
    Timeout { doing: &'static str, seconds: f64 },
    #[error("{kind} {name} exists but belongs to another attempt ({found})")]
    Foreign {
        kind: String,
        name: String,
        found: String,
    },
    #[error(
        "the cluster has no {kind} kind ({api_version}): is its operator installed, and its CustomResourceDefinition with it?"
    )]
    NoKind { kind: String, api_version: String },
}

/// How a create ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    /// The Job existed already (same name and attempt): adopted.
    Adopted,
}

/// Jobs, Pods and task types' custom resources of one namespace, through
/// a `kube::Client`.
pub struct Kube {
    client: kube::Client,
    jobs: Api<Job>,
    pods: Api<Pod>,
    settings: Settings,
    calls: AtomicU64,
}

impl Kube {
    pub fn new(client: kube::Client, settings: Settings) -> Kube {
        Kube {
            jobs: Api::namespaced(client.clone(), &settings.namespace),
            pods: Api::namespaced(client.clone(), &settings.namespace),
            client,
            settings,
            calls: AtomicU64::new(0),
        }
    }

    /// The objects of a custom resource kind in this namespace.
    pub fn resources(&self, kind: &ResourceKind) -> Api<DynamicObject> {
        let resource = ApiResource {
            group: kind.group.to_owned(),
            version: kind.version.to_owned(),
            api_version: kind.api_version(),
            kind: kind.kind.to_owned(),
            plural: kind.plural.to_owned(),
        };
        Api::namespaced_with(self.client.clone(), &self.settings.namespace, &resource)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// API requests made so far (for the benchmark and metrics).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Runs `call` until it succeeds, fails for good, or runs out of tries.
    async fn retrying<T, F, Fut>(&self, doing: &'static str, mut call: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let mut wait = BACKOFF;
        for attempt in 1..=TRIES {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let bound = self.settings.call_timeout;
            let Ok(answer) = tokio::time::timeout(bound, call()).await else {
                if attempt < TRIES {
                    tracing::info!(doing, attempt, "Kubernetes API call timed out; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    continue;
                }
                return Err(Error::Timeout {
                    doing,
                    seconds: bound.as_secs_f64(),
                });
            };
            match answer {
                Ok(value) => return Ok(value),
                Err(e) if attempt < TRIES && transient(&e) => {
                    tracing::info!(doing, attempt, error = %e, "Kubernetes API call failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(source) => return Err(Error::Api { doing, source }),
            }
        }
        unreachable!("the last try returns")
    }

    /// Creates `job`, or adopts the Job of the same name when it exists.
    pub async fn create(&self, job: &Job) -> Result<Created, Error> {
        self.create_in(&self.jobs, job, "Job").await
    }

    /// Creates `object` of a custom resource kind, or adopts the object of
    /// the same name when it exists.
    pub async fn create_resource(
        &self,
        kind: &ResourceKind,
        object: &DynamicObject,
    ) -> Result<Created, Error> {
        match self
            .create_in(&self.resources(kind), object, kind.kind)
            .await
        {
            Err(Error::Api {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 404 => Err(Error::NoKind {
                kind: kind.kind.to_owned(),
                api_version: kind.api_version(),
            }),
            created => created,
        }
    }

    /// Creates `object` through `api`, or adopts the object of the same
    /// name when it exists and is of the same attempt (else it is
    /// foreign, and an error).
    async fn create_in<K>(&self, api: &Api<K>, object: &K, kind: &str) -> Result<Created, Error>
    where
        K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let name = object.name_any();
        let created = self
            .retrying("create an attempt's object", || async {
                match api.create(&PostParams::default(), object).await {
                    Ok(_) => Ok(Created::New),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(Created::Adopted),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if created == Created::Adopted {
            let existing = self
                .retrying("read an existing attempt's object", || api.get(&name))
                .await?;
            let attempt = |o: &K| {
                o.labels()
                    .get(job::LABEL_ATTEMPT)
                    .cloned()
                    .zip(o.annotations().get(job::ANNOTATION_NODE).cloned())
            };
            if attempt(&existing) != attempt(object) {
                return Err(Error::Foreign {
                    kind: kind.to_owned(),
                    name,
                    found: format!("{:?}", attempt(&existing)),
                });
            }
            tracing::info!(kind, name = %name, "the attempt's object existed: adopted");
        }
        Ok(created)
    }

    /// Every weir Job's state, by name: one list of Jobs and one of Pods.
    pub async fn observe(&self) -> Result<HashMap<String, JobState>, Error> {
        let jobs = self.list(&self.jobs, "list Jobs").await?;
        let pods = self.list(&self.pods, "list Pods").await?;
        Ok(observe::states(&jobs, &pods))
    }

    /// Every weir Job.
    pub async fn jobs(&self) -> Result<Vec<Job>, Error> {
        self.list(&self.jobs, "list Jobs").await
    }

    /// Every weir Pod: where the pods of custom resources report.
    pub async fn pods(&self) -> Result<Vec<Pod>, Error> {
        self.list(&self.pods, "list Pods").await
    }

    /// Every weir object of a custom resource kind.
    pub async fn list_resources(&self, kind: &ResourceKind) -> Result<Vec<DynamicObject>, Error> {
        self.list(&self.resources(kind), "list custom resources")
            .await
    }

    /// Names of weir's Jobs with the id of their execution (Jobs without
    /// it are left alone).
    pub async fn job_executions(&self) -> Result<Vec<(String, ExecutionId)>, Error> {
        let jobs = self.list(&self.jobs, "list Jobs").await?;
        Ok(executions_of(jobs))
    }

    /// The same of a custom resource kind's objects; none when the cluster
    /// has no such kind (its operator is not installed).
    pub async fn resource_executions(
        &self,
        kind: &ResourceKind,
    ) -> Result<Vec<(String, ExecutionId)>, Error> {
        match self.list_resources(kind).await {
            Ok(objects) => Ok(executions_of(objects)),
            Err(Error::Api {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 404 => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Every weir object of a kind, in one unpaged list: a page missing
    /// from a partial answer would read as Jobs that are gone.
    async fn list<K>(&self, api: &Api<K>, doing: &'static str) -> Result<Vec<K>, Error>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let selector = format!("{}={}", job::MANAGED_BY.0, job::MANAGED_BY.1);
        let params = ListParams::default().labels(&selector);
        let list = self.retrying(doing, || api.list(&params)).await?;
        Ok(list.items)
    }

    /// Deletes a Job and its pods (foreground propagation); a Job that is
    /// gone is fine.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        self.delete_in(&self.jobs, name).await
    }

    /// Deletes an object of a custom resource kind, as [`Kube::delete`].
    pub async fn delete_resource(&self, kind: &ResourceKind, name: &str) -> Result<(), Error> {
        self.delete_in(&self.resources(kind), name).await
    }

    async fn delete_in<K>(&self, api: &Api<K>, name: &str) -> Result<(), Error>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..DeleteParams::default()
        };
        self.retrying("delete an attempt's object", || async {
            match api.delete(name, &params).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
    }
}

/// The name and execution id of each object that has one (the
/// annotation, not the label: a label value may be cut).
fn executions_of<K: Resource>(objects: Vec<K>) -> Vec<(String, ExecutionId)> {
    objects
        .into_iter()
        .filter_map(|o| {
            let execution = o.annotations().get(job::ANNOTATION_EXECUTION)?.clone();
            Some((o.name_any(), ExecutionId::from(execution.as_str())))
        })
        .collect()
}

/// Whether retrying the same call may succeed.
fn transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429 || status.code == 0,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_throttling_and_dropped_connections_are_retried_the_rest_not() {
        let status = |code| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..kube::core::Status::default()
            }))
        };
        for code in [500, 503, 504, 429] {
            assert!(transient(&status(code)), "{code}");
        }
        for code in [400, 403, 404, 409, 422] {
            assert!(!transient(&status(code)), "{code}");
        }
        assert!(transient(&kube::Error::Service("connection reset".into())));
    }
}
