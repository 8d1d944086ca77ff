//! Task types that run on Kubernetes as a custom resource of their own
//! engine's operator (a `SparkApplication`) rather than as a Job: what the
//! type makes of an attempt ([`TaskType::kubernetes_resource`]), and how it
//! reads the resource's status ([`ResourceKind`]). The Kubernetes executor
//! creates, observes, adopts and deletes the object as it does a Job; the
//! type says only what the object is and how it stands.
//!
//! Inside the resource, one of its pods (Spark's driver) hands the attempt
//! to `weir exec-task`, which stages the inputs, runs the type's
//! [`TaskType::resource_launch`] and reports the outputs in that pod's
//! termination message, as a Job's pod does.
//!
//! [`TaskType::kubernetes_resource`]: super::TaskType::kubernetes_resource
//! [`TaskType::resource_launch`]: super::TaskType::resource_launch

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::TaskSpec;

/// A custom resource kind, and how an object of it stands.
#[derive(Debug)]
pub struct ResourceKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    /// The container whose termination message carries `weir exec-task`'s
    /// report, in the pod [`ResourceState::Ended`] names.
    pub report_container: &'static str,
    /// How an object stands, from its `status` (`null` before its operator
    /// wrote one).
    pub state: fn(&Value) -> ResourceState,
    /// Variables of the reporting pod that `weir exec-task` passes on to
    /// the run (the engine's own: Spark's gateway to its driver's JVM).
    pub inherit: &'static [&'static str],
    /// Files the init container writes beside `weir` (name, text): the
    /// entry point the reporting pod starts with.
    pub entry_files: &'static [(&'static str, &'static str)],
}

impl ResourceKind {
    /// `plural.group`: how a handle names the kind.
    pub fn name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    /// `group/version`, the object's `apiVersion`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

/// Where an object of a [`ResourceKind`] stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceState {
    /// Created, submitted, pending or running.
    Running,
    /// It ended. The outcome is the report in `pod`'s termination message
    /// when there is one; else `error` (a failure the operator saw), or a
    /// success that reported nothing (itself a failure).
    Ended {
        pod: Option<String>,
        error: Option<String>,
    },
}

/// What the executor gives a type to make an attempt's resource from:
/// what every pod of the attempt carries (JSON of Kubernetes' own types).
#[derive(Debug, Clone)]
pub struct PodParts<'a> {
    /// The attempt's task.
    pub spec: &'a TaskSpec,
    /// The image the task names, or the type's default.
    pub image: String,
    /// Labels of the object and of every pod it makes (the executor finds
    /// them by these).
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    /// The variables of the pod that runs `weir exec-task` (`EnvVar`s: the
    /// attempt, the task's secrets by `secretKeyRef`).
    pub env: Vec<Value>,
    /// The init container putting `weir` into [`Self::bin_mount`]
    /// (`Container`): the pod that runs `weir exec-task` needs it.
    pub init_container: Value,
    /// The volumes of every pod (`Volume`s).
    pub volumes: Vec<Value>,
    /// Where `weir` is (`VolumeMount`).
    pub bin_mount: Value,
    /// Its path in the pod, where the init container also writes the
    /// resource's [`Resource::entry_files`].
    pub bin_dir: &'a str,
    /// The attempt's work folder (`VolumeMount`), shared by every pod of
    /// the attempt when [`Self::shared_work`].
    pub work_mount: Value,
    /// Whether the work folder is one volume that every pod of the attempt
    /// mounts (`[kubernetes] work_claim`), not each pod's own.
    pub shared_work: bool,
    /// The service account of the pod that runs `weir exec-task`.
    pub service_account: Option<String>,
    /// Container security settings (`SecurityContext`).
    pub security_context: Value,
    /// How long the object stays after it ended, in seconds.
    pub ttl_seconds: u64,
}

/// The object one attempt runs as: its `spec`, of the type's first
/// [`ResourceKind`] (a type runs every attempt as that kind).
#[derive(Debug, Clone)]
pub struct Resource {
    pub spec: Value,
}

/// Where an attempt's program runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunsIn {
    /// The attempt's own process: locally, or in its Job's pod.
    #[default]
    Process,
    /// Inside the custom resource its type made (Spark's driver).
    Resource,
}

impl RunsIn {
    pub fn is_process(&self) -> bool {
        *self == RunsIn::Process
    }
}
