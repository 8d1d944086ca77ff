//! How an attempt's Job stands, from one list of Jobs and one of Pods (per
//! engine tick and namespace, never a call per node). `weir exec-task`
//! reports the attempt's outcome in the task container's termination
//! message ([`Report`]); the Job's conditions and the pod's container
//! states say the rest (a deadline, an image that cannot be pulled, a
//! missing Secret, an OOM kill).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::job::{self, TASK_CONTAINER};
use crate::task::resource::{ResourceKind, ResourceState};

/// What `weir exec-task` writes to its termination message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Report {
    /// Outputs by name; files and directories as `sha256:` references.
    Succeeded {
        outputs: BTreeMap<String, Value>,
    },
    Failed {
        error: String,
    },
    /// The task's program is not in the image (or its body cannot become
    /// one): not retried ([`crate::executor::Outcome::Unrunnable`]).
    Unrunnable {
        error: String,
    },
    TimedOut,
}

/// Where one attempt's Job stands.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// Created, pending or running.
    Running,
    Finished(Report),
}

/// Container waiting reasons that will not resolve by waiting.
const STUCK: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The state of every Job in `jobs`, by name, using `pods` (matched by
/// their `job-name` label).
pub fn states(jobs: &[Job], pods: &[Pod]) -> HashMap<String, JobState> {
    let mut pods_of: HashMap<&str, Vec<&Pod>> = HashMap::new();
    for pod in pods {
        if let Some(job) = pod.metadata.labels.as_ref().and_then(|l| {
            l.get("job-name")
                .or_else(|| l.get("batch.kubernetes.io/job-name"))
        }) {
            pods_of.entry(job.as_str()).or_default().push(pod);
        }
    }
    jobs.iter()
        .filter_map(|job| {
            let name = job.metadata.name.clone()?;
            let pods = pods_of.get(name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            Some((name, state(job, pods)))
        })
        .collect()
}

fn state(job: &Job, pods: &[&Pod]) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    let report = pods.iter().find_map(|pod| task_report(pod));
    if holds("Complete").is_some() || holds("SuccessCriteriaMet").is_some() {
        return JobState::Finished(match report {
            Some(report) => report,
            None => Report::Failed {
                error: "the task's pod succeeded without reporting its outputs".into(),
            },
        });
    }
    if let Some(failed) = holds("Failed").or_else(|| holds("FailureTarget")) {
        if failed.reason.as_deref() == Some("DeadlineExceeded") {
            return JobState::Finished(Report::TimedOut);
        }
        return JobState::Finished(match report {
            Some(
                report @ (Report::Failed { .. } | Report::Unrunnable { .. } | Report::TimedOut),
            ) => report,
            _ => Report::Failed {
                error: pods
                    .iter()
                    .find_map(|pod| task_termination(pod))
                    .or_else(|| failed.message.clone())
                    .unwrap_or_else(|| "the Job failed".into()),
            },
        });
    }
    if let Some(reason) = pods.iter().find_map(|pod| stuck(pod)) {
        return JobState::Finished(Report::Failed { error: reason });
    }
    JobState::Running
}

/// How an attempt's custom resource stands, from its object (`None`: it
/// is gone) and the pods of the namespace, at `now`. The object's
/// deadline ([`job::ANNOTATION_DEADLINE`]) is weir's: custom resources
/// have none of their own.
pub fn resource_state(
    kind: &ResourceKind,
    object: Option<&DynamicObject>,
    pods: &[Pod],
    now: DateTime<Utc>,
) -> Option<JobState> {
    let object = object?;
    let status = object.data.get("status").unwrap_or(&Value::Null);
    let (pod, error) = match (kind.state)(status) {
        ResourceState::Running => {
            let deadline = object
                .annotations()
                .get(job::ANNOTATION_DEADLINE)
                .and_then(|d| DateTime::parse_from_rfc3339(d).ok());
            if deadline.is_some_and(|d| now > d) {
                return Some(JobState::Finished(Report::TimedOut));
            }
            // A pod of it that cannot start will not by waiting.
            let name = object.name_any();
            let stuck = pods
                .iter()
                .filter(|p| p.labels().get(job::LABEL_OBJECT) == Some(&name))
                .find_map(stuck);
            if let Some(reason) = stuck {
                return Some(JobState::Finished(Report::Failed { error: reason }));
            }
            return Some(JobState::Running);
        }
        ResourceState::Ended { pod, error } => (pod, error),
    };
    let pod = pod.and_then(|name| pods.iter().find(|p| p.name_any() == name));
    let report = pod.and_then(|p| container_report(p, kind.report_container));
    Some(JobState::Finished(match (report, error) {
        (
            Some(report @ (Report::Failed { .. } | Report::Unrunnable { .. } | Report::TimedOut)),
            _,
        ) => report,
        (Some(report), None) => report,
        (_, Some(error)) => Report::Failed { error },
        (None, None) => Report::Failed {
            error: format!(
                "the {} succeeded without reporting the task's outputs",
                kind.kind
            ),
        },
    }))
}

/// A container's status, if the pod has one of that name.
fn container_status<'a>(
    pod: &'a Pod,
    container: &str,
) -> Option<&'a k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)
}

/// What `weir exec-task` reported in `container`'s termination message,
/// if it did.
fn container_report(pod: &Pod, container: &str) -> Option<Report> {
    let terminated = container_status(pod, container)?
        .state
        .as_ref()?
        .terminated
        .as_ref()?;
    serde_json::from_str(terminated.message.as_deref()?).ok()
}

/// What `weir exec-task` reported, if it did.
fn task_report(pod: &Pod) -> Option<Report> {
    container_report(pod, TASK_CONTAINER)
}

/// How the task container ended when it reported nothing (killed).
fn task_termination(pod: &Pod) -> Option<String> {
    let terminated = container_status(pod, TASK_CONTAINER)?
        .state
        .as_ref()?
        .terminated
        .as_ref()?;
    let reason = terminated.reason.as_deref().unwrap_or("Error");
    Some(format!(
        "the task's container ended: {reason} (exit code {})",
        terminated.exit_code
    ))
}

/// Why a pod cannot start, when waiting will not help.
fn stuck(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?;
    statuses
        .init_container_statuses
        .iter()
        .flatten()
        .chain(statuses.container_statuses.iter().flatten())
        .find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref()?;
            STUCK.contains(&reason).then(|| {
                format!(
                    "container `{}` cannot start: {reason}{}",
                    c.name,
                    waiting
                        .message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                )
            })
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(name: &str, condition: Option<(&str, &str)>) -> Job {
        let mut value = json!({ "metadata": { "name": name } });
        if let Some((kind, reason)) = condition {
            value["status"] = json!({ "conditions": [
                { "type": kind, "status": "True", "reason": reason, "message": "m" }
            ] });
        }
        serde_json::from_value(value).expect("a job")
    }

    fn pod(job: &str, task_state: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": format!("{job}-x"), "labels": { "job-name": job } },
            "status": { "containerStatuses": [
                { "name": "task", "image": "i", "imageID": "", "ready": false,
                  "restartCount": 0, "state": task_state }
            ] }
        }))
        .expect("a pod")
    }

    fn terminated(message: &str, exit: i32, reason: &str) -> Value {
        json!({ "terminated": { "exitCode": exit, "reason": reason, "message": message } })
    }

    #[test]
    fn conditions_and_termination_messages_become_outcomes() {
        let ok = Report::Succeeded {
            outputs: BTreeMap::from([("rows".to_owned(), json!(42))]),
        };
        let ok_message = serde_json::to_string(&ok).expect("json");
        let failed = Report::Failed {
            error: "exit status 3".into(),
        };
        let failed_message = serde_json::to_string(&failed).expect("json");
        let jobs = [
            job("done", Some(("Complete", "Completed"))),
            job("bad", Some(("Failed", "BackoffLimitExceeded"))),
            job("slow", Some(("Failed", "DeadlineExceeded"))),
            job("oom", Some(("Failed", "BackoffLimitExceeded"))),
            job("pulling", None),
            job("running", None),
            job("quiet", Some(("Complete", "Completed"))),
        ];
        let pods = [
            pod("done", terminated(&ok_message, 0, "Completed")),
            pod("bad", terminated(&failed_message, 1, "Error")),
            pod("oom", terminated("", 137, "OOMKilled")),
            pod(
                "pulling",
                json!({ "waiting": { "reason": "ImagePullBackOff", "message": "no such image" } }),
            ),
            pod("running", json!({ "running": {} })),
        ];
        let states = states(&jobs, &pods);
        assert_eq!(states["done"], JobState::Finished(ok));
        assert_eq!(states["bad"], JobState::Finished(failed));
        assert_eq!(states["slow"], JobState::Finished(Report::TimedOut));
        let JobState::Finished(Report::Failed { error }) = &states["oom"] else {
            panic!("{:?}", states["oom"])
        };
        assert!(
            error.contains("OOMKilled") && error.contains("137"),
            "{error}"
        );
        let JobState::Finished(Report::Failed { error }) = &states["pulling"] else {
            panic!("{:?}", states["pulling"])
        };
        assert!(error.contains("ImagePullBackOff: no such image"), "{error}");
        assert_eq!(states["running"], JobState::Running);
        assert!(
            matches!(&states["quiet"], JobState::Finished(Report::Failed { error }) if error.contains("without reporting")),
            "{:?}",
            states["quiet"]
        );
    }
}
