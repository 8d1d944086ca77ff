//! Where an attempt runs, as its executor names it: a typed value
//! ([`AttemptHandle`]) the engine stores in the node's handle so that a
//! restarted process finds the attempt again (its process group, or its
//! Job).
//!
//! The stored form is flat JSON whose keys predate the types (`dir`,
//! `pgid`; `job`, `namespace`, and `resource` for a custom resource): [`RawAttempt`] reads and writes exactly
//! those keys, absent ones not written, so handles stored by earlier
//! versions read as before and new ones are byte-identical to them. The
//! engine's envelope around it (interruptions, owner) is the engine's
//! (`engine::handle`).
//!
//! What it must not do: hold anything an executor does not need to find
//! the attempt again (no outcome, no task data).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where one attempt runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptHandle {
    /// A process group on the host of the engine that started it.
    Local(LocalHandle),
    /// A Kubernetes Job.
    Kubernetes(KubeHandle),
}

/// A local attempt: its folder, and its process group once started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalHandle {
    /// `<state>/runs/<execution>/<node>/<attempt>`.
    pub dir: PathBuf,
    /// Known once the process runs; what a restarted engine signals.
    pub pgid: Option<u32>,
    /// The process groups of the task's sidecars, once started (before
    /// the task's own): a restarted engine signals them too.
    pub sidecars: Vec<u32>,
}

/// A Kubernetes attempt: the Job, or the custom resource, running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeHandle {
    pub namespace: String,
    /// The object's name (`job` in the stored form).
    pub name: String,
    /// The custom resource's kind (`plural.group`, e.g.
    /// `sparkapplications.sparkoperator.k8s.io`); `None`: a Job.
    pub resource: Option<String>,
}

impl AttemptHandle {
    /// Whether the attempt goes on when the engine that started it stops
    /// (a Job runs in the cluster; a local process group dies with its
    /// engine, or is killed by the next one).
    pub fn outlives_engine(&self) -> bool {
        match self {
            AttemptHandle::Local(_) => false,
            AttemptHandle::Kubernetes(_) => true,
        }
    }

    /// Reads the attempt's keys of a stored handle: none when it names no
    /// attempt (written before the attempt was planned).
    pub fn from_raw(raw: RawAttempt) -> Result<Option<AttemptHandle>, HandleError> {
        match raw {
            RawAttempt {
                job: Some(name),
                namespace: Some(namespace),
                resource,
                ..
            } => Ok(Some(AttemptHandle::Kubernetes(KubeHandle {
                namespace,
                name,
                resource,
            }))),
            RawAttempt {
                job: Some(name),
                namespace: None,
                ..
            } => Err(HandleError::JobWithoutNamespace(name)),
            RawAttempt {
                dir: Some(dir),
                pgid,
                sidecars,
                ..
            } => Ok(Some(AttemptHandle::Local(LocalHandle {
                dir: PathBuf::from(dir),
                pgid,
                sidecars,
            }))),
            RawAttempt {
                pgid: Some(pgid), ..
            } => Err(HandleError::GroupWithoutFolder(pgid)),
            RawAttempt { .. } => Ok(None),
        }
    }

    /// The stored form's keys for this attempt (only its own: a Job's
    /// handle carries nothing of an earlier local attempt).
    pub fn to_raw(&self) -> RawAttempt {
        match self {
            AttemptHandle::Local(local) => RawAttempt {
                dir: Some(local.dir.display().to_string()),
                pgid: local.pgid,
                sidecars: local.sidecars.clone(),
                ..RawAttempt::default()
            },
            AttemptHandle::Kubernetes(kube) => RawAttempt {
                job: Some(kube.name.clone()),
                namespace: Some(kube.namespace.clone()),
                resource: kube.resource.clone(),
                ..RawAttempt::default()
            },
        }
    }
}

/// Why a stored handle names no attempt weir can find.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandleError {
    #[error("Job `{0}` without a namespace")]
    JobWithoutNamespace(String),
    #[error("process group {0} without the attempt's folder")]
    GroupWithoutFolder(u32),
}

/// The attempt's keys of a stored handle, as stored (every one optional,
/// absent ones not written); unknown keys are the envelope's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawAttempt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A custom resource's kind (`plural.group`); none for a Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attempt_reads_back_from_its_own_keys() {
        let local = AttemptHandle::Local(LocalHandle {
            dir: "/var/lib/weir/runs/e/n/1".into(),
            pgid: Some(4242),
            sidecars: vec![4240, 4241],
        });
        let job = AttemptHandle::Kubernetes(KubeHandle {
            namespace: "weir".into(),
            name: "weir-n-0123456789abcdef".into(),
            resource: None,
        });
        let application = AttemptHandle::Kubernetes(KubeHandle {
            namespace: "weir".into(),
            name: "weir-n-0123456789abcdef".into(),
            resource: Some("sparkapplications.sparkoperator.k8s.io".into()),
        });
        for handle in [local, job, application] {
            assert_eq!(AttemptHandle::from_raw(handle.to_raw()), Ok(Some(handle)));
        }
        assert_eq!(AttemptHandle::from_raw(RawAttempt::default()), Ok(None));
    }

    #[test]
    fn a_job_wins_over_stale_keys_of_a_local_attempt_and_half_a_handle_is_refused() {
        // Written by versions that merged a Job's keys into the handle of an
        // earlier local attempt: the Job is the attempt, its pgid is stale.
        let merged = RawAttempt {
            dir: Some("/runs/e/n/1".into()),
            pgid: Some(7),
            job: Some("weir-n-1".into()),
            namespace: Some("weir".into()),
            ..RawAttempt::default()
        };
        assert!(matches!(
            AttemptHandle::from_raw(merged),
            Ok(Some(AttemptHandle::Kubernetes(_)))
        ));
        let job_only = RawAttempt {
            job: Some("weir-n-1".into()),
            ..RawAttempt::default()
        };
        assert!(AttemptHandle::from_raw(job_only).is_err());
        let pgid_only = RawAttempt {
            pgid: Some(7),
            ..RawAttempt::default()
        };
        assert_eq!(
            AttemptHandle::from_raw(pgid_only),
            Err(HandleError::GroupWithoutFolder(7))
        );
    }
}
