//! One `batch/v1` Job per node attempt (DESIGN.md section 6): its name is
//! derived from (execution, node, attempt), so creating it again after a
//! restart finds the first; its pod runs the task's image with `weir
//! exec-task` as the entrypoint, copied in from the weir image by an init
//! container (as Argo Workflows' emissary does).
//!
//! The task container's environment is exactly what the Job names:
//! `WEIR_ATTEMPT` (read by `weir exec-task`, never passed on to the task)
//! and the task's secrets as `secretKeyRef` variables. Nothing of the
//! daemon's environment is copied in, and Kubernetes' service links
//! (`<SERVICE>_PORT…` variables) are off.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, TCPSocketAction,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DynamicObject, TypeMeta};

use crate::spec::sidecar::{self, Sidecar};
use crate::spec::{Digest, ExecutionId, TaskSpec};
use crate::task::resource::{PodParts, ResourceKind};
use crate::task::{LaunchError, TaskTypes};

/// The label every Job weir makes carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "weir");
pub const LABEL_EXECUTION: &str = "weir.dev/execution";
pub const LABEL_NODE: &str = "weir.dev/node";
pub const LABEL_TASK: &str = "weir.dev/task";
pub const LABEL_VERSION: &str = "weir.dev/version";
pub const LABEL_COMMIT: &str = "weir.dev/commit";
pub const LABEL_PROJECT: &str = "weir.dev/project";
pub const LABEL_ATTEMPT: &str = "weir.dev/attempt";
/// Full values that do not fit a label (a node path, a whole digest).
pub const ANNOTATION_NODE: &str = "weir.dev/node-path";
pub const ANNOTATION_VERSION: &str = "weir.dev/task-version";
/// The execution's id as stored (a label value may be cut or rewritten).
pub const ANNOTATION_EXECUTION: &str = "weir.dev/execution-id";
/// When a custom resource's attempt times out (RFC 3339): unlike a Job's
/// `activeDeadlineSeconds`, no operator enforces it; the executor does.
pub const ANNOTATION_DEADLINE: &str = "weir.dev/deadline";
/// On the pods of a custom resource: the object's name.
pub const LABEL_OBJECT: &str = "weir.dev/object";

/// The environment variable carrying the attempt to `weir exec-task`.
pub const ATTEMPT_ENV: &str = "WEIR_ATTEMPT";
/// Where the init container puts the weir binary in the task's container.
pub const BIN_DIR: &str = "/weir/bin";
/// Where the attempt's folder is made (`weir exec-task --work-dir`).
pub const WORK_DIR: &str = "/weir/work";
/// The variable `weir exec-task --work-dir` reads.
pub const WORK_DIR_ENV: &str = "WEIR_WORK_DIR";
/// The task container's name (its termination message carries outputs).
pub const TASK_CONTAINER: &str = "task";

/// What the executor is configured with (`[kubernetes]` in weir.toml).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub namespace: String,
    /// The weir image the init container copies `weir` from.
    pub image: String,
    /// The image of script and notebook tasks that name none.
    pub default_task_image: String,
    /// Task pods' service account when the task names none.
    pub service_account: Option<String>,
    /// How long finished Jobs stay for `kubectl logs`.
    pub ttl_after_finished: Duration,
    /// The user id task containers run as (non-root).
    pub run_as_user: i64,
    /// One API call's bound: a server that does not answer in time is a
    /// transient error (retried), not a hung engine tick.
    pub call_timeout: Duration,
    /// A ReadWriteMany PersistentVolumeClaim mounted as the work folder of
    /// every pod of a custom resource (a Spark driver and its executors),
    /// each attempt in a folder of its own: how files reach pods that
    /// `weir exec-task` does not run in. `None`: each pod has its own.
    pub work_claim: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: "default".into(),
            image: concat!("ghcr.io/weir-dev/weir:", env!("CARGO_PKG_VERSION")).into(),
            default_task_image: "python:3.12-slim".into(),
            service_account: None,
            ttl_after_finished: Duration::from_secs(3600),
            run_as_user: 65532,
            call_timeout: Duration::from_secs(30),
            work_claim: None,
        }
    }
}

/// One attempt to run as a Job.
#[derive(Debug, Clone)]
pub struct JobRequest<'a> {
    pub execution: &'a ExecutionId,
    pub project: &'a str,
    pub commit: &'a str,
    pub node: &'a str,
    pub task: &'a str,
    pub task_version: &'a Digest,
    pub attempt: u32,
    pub spec: &'a TaskSpec,
    /// The types the engine runs: the image `spec`'s body names is theirs.
    pub task_types: &'a TaskTypes,
    pub timeout: Option<Duration>,
    /// The attempt as `weir exec-task` reads it (JSON).
    pub payload: String,
}

/// `weir-<node>-<16 hex of sha256(execution/node/attempt)>`: unique per
/// attempt, the same every time it is computed, a DNS-1123 label (at most
/// 63 characters; Job names also name their pods).
pub fn job_name(execution: &ExecutionId, node: &str, attempt: u32) -> String {
    let digest = Digest::of_json(&serde_json::Value::String(format!(
        "{execution}/{node}/{attempt}"
    )));
    let hash = &digest.as_str()[..16];
    // 63 - len("weir-") - len("-") - 16 = 41 characters for the node.
    let readable = dns_label(node, 41);
    if readable.is_empty() {
        format!("weir-{hash}")
    } else {
        format!("weir-{readable}-{hash}")
    }
}

/// `text` lowercased with anything outside `[a-z0-9-]` as `-`, trimmed of
/// `-` at both ends, at most `max` characters.
fn dns_label(text: &str, max: usize) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    mapped.trim_matches('-').to_owned()
}

/// A label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
pub fn label_value(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '.'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// The labels of an attempt's Job and pod.
pub fn labels(req: &JobRequest<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (
            LABEL_EXECUTION.to_owned(),
            label_value(req.execution.as_str()),
        ),
        (LABEL_NODE.to_owned(), label_value(req.node)),
        (LABEL_TASK.to_owned(), label_value(req.task)),
        (
            LABEL_VERSION.to_owned(),
            req.task_version.short().to_owned(),
        ),
        (LABEL_COMMIT.to_owned(), label_value(req.commit)),
        (LABEL_PROJECT.to_owned(), label_value(req.project)),
        (LABEL_ATTEMPT.to_owned(), req.attempt.to_string()),
    ])
}

/// The image the task runs in.
fn task_image(task_types: &TaskTypes, spec: &TaskSpec, settings: &Settings) -> String {
    task_types
        .kubernetes_image(spec)
        .unwrap_or_else(|| settings.default_task_image.clone())
}

/// Non-root, no privilege escalation, every capability dropped.
fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

/// A sidecar as a native sidecar container (Kubernetes 1.29 and later):
/// an init container with `restartPolicy: Always`, started before the
/// task's container and stopped by the kubelet once it has ended. Its
/// readiness is a startup probe, which the kubelet waits for before it
/// starts the next container (a readiness probe would not hold it back).
fn sidecar_container(sidecar: &Sidecar) -> Container {
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let startup_probe = sidecar.readiness.as_ref().and_then(|readiness| {
        let patience = readiness.timeout.parsed().ok()?;
        let mut probe = Probe {
            period_seconds: Some(1),
            // One try per second for as long as the sidecar has.
            failure_threshold: Some(i32::try_from(patience.as_secs().max(1)).unwrap_or(i32::MAX)),
            ..Probe::default()
        };
        match readiness.probe()? {
            sidecar::Probe::Tcp(port) => {
                probe.tcp_socket = Some(TCPSocketAction {
                    port: IntOrString::Int(i32::from(port)),
                    ..TCPSocketAction::default()
                });
            }
            sidecar::Probe::Exec(command) => {
                probe.exec = Some(ExecAction {
                    command: Some(command.to_vec()),
                });
            }
        }
        Some(probe)
    });
    Container {
        name: sidecar.name.clone(),
        image: Some(sidecar.image.clone()),
        command: non_empty(&sidecar.command),
        args: non_empty(&sidecar.args),
        env: (!sidecar.env.is_empty()).then(|| {
            sidecar
                .env
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    ..EnvVar::default()
                })
                .collect()
        }),
        restart_policy: Some("Always".into()),
        startup_probe,
        security_context: Some(restricted_container()),
        ..Container::default()
    }
}

fn quantities(
    map: &crate::spec::SmallMap<crate::spec::quantity::Quantity>,
) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.0.clone())))
            .collect()
    })
}

/// What every pod of an attempt carries, whatever object runs it.
struct Common {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    /// `weir`'s folder, filled by [`Common::init`].
    bin: VolumeMount,
    work: VolumeMount,
    init: Container,
    /// `WEIR_ATTEMPT`, then the task's secrets.
    env: Vec<EnvVar>,
    service_account: Option<String>,
}

impl Common {
    fn of(settings: &Settings, req: &JobRequest<'_>) -> Common {
        let bin = VolumeMount {
            name: "weir-bin".into(),
            mount_path: BIN_DIR.into(),
            ..VolumeMount::default()
        };
        let init = Container {
            name: "weir-init".into(),
            image: Some(settings.image.clone()),
            command: Some(vec![
                "cp".into(),
                "/usr/local/bin/weir".into(),
                format!("{BIN_DIR}/weir"),
            ]),
            volume_mounts: Some(vec![bin.clone()]),
            security_context: Some(restricted_container()),
            ..Container::default()
        };
        let mut env = vec![EnvVar {
            name: ATTEMPT_ENV.into(),
            value: Some(req.payload.clone()),
            ..EnvVar::default()
        }];
        env.extend(req.spec.secrets.iter().map(|s| EnvVar {
            name: s.env.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: s.name.clone(),
                    key: s.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }));
        Common {
            name: job_name(req.execution, req.node, req.attempt),
            labels: labels(req),
            annotations: BTreeMap::from([
                (ANNOTATION_NODE.to_owned(), req.node.to_owned()),
                (
                    ANNOTATION_VERSION.to_owned(),
                    req.task_version.as_str().to_owned(),
                ),
                (ANNOTATION_EXECUTION.to_owned(), req.execution.to_string()),
            ]),
            bin,
            work: VolumeMount {
                name: "work".into(),
                mount_path: WORK_DIR.into(),
                ..VolumeMount::default()
            },
            init,
            env,
            service_account: req
                .spec
                .service_account
                .clone()
                .or_else(|| settings.service_account.clone()),
        }
    }

    fn metadata(&self, settings: &Settings) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name.clone()),
            namespace: Some(settings.namespace.clone()),
            labels: Some(self.labels.clone()),
            annotations: Some(self.annotations.clone()),
            ..ObjectMeta::default()
        }
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// The Job of one attempt.
pub fn build(settings: &Settings, req: &JobRequest<'_>) -> Job {
    let common = Common::of(settings, req);
    let task = Container {
        name: TASK_CONTAINER.into(),
        image: Some(task_image(req.task_types, req.spec, settings)),
        command: Some(vec![format!("{BIN_DIR}/weir"), "exec-task".into()]),
        env: Some(common.env.clone()),
        resources: Some(ResourceRequirements {
            requests: quantities(&req.spec.resources.requests),
            limits: quantities(&req.spec.resources.limits),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                read_only: Some(true),
                ..common.bin.clone()
            },
            common.work.clone(),
        ]),
        termination_message_policy: Some("File".into()),
        security_context: Some(restricted_container()),
        ..Container::default()
    };
    let service_account = common.service_account.clone();
    Job {
        metadata: common.metadata(settings),
        spec: Some(JobSpec {
            // The engine retries; a Job runs its pod once.
            backoff_limit: Some(0),
            active_deadline_seconds: req
                .timeout
                .map(|t| i64::try_from(t.as_secs().max(1)).unwrap_or(i64::MAX)),
            ttl_seconds_after_finished: Some(
                i32::try_from(settings.ttl_after_finished.as_secs()).unwrap_or(i32::MAX),
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(common.labels.clone()),
                    annotations: Some(common.annotations.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    // No `<SERVICE>_HOST`/`_PORT` variables of every service
                    // in the namespace: the task's environment is what this
                    // spec names.
                    enable_service_links: Some(false),
                    service_account_name: service_account.clone(),
                    // Tasks get no API token unless the task itself names
                    // the account it needs (the default account is bound to
                    // no Role and gets none).
                    automount_service_account_token: Some(req.spec.service_account.is_some()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(settings.run_as_user),
                        run_as_group: Some(settings.run_as_user),
                        fs_group: Some(settings.run_as_user),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    init_containers: Some(
                        std::iter::once(common.init)
                            .chain(req.spec.sidecars.iter().map(sidecar_container))
                            .collect(),
                    ),
                    containers: vec![task],
                    volumes: Some(vec![empty_dir("weir-bin"), empty_dir("work")]),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// The variable naming the files `weir exec-task --install` writes beside
/// `weir` (a JSON object, name to text).
pub const ENTRY_FILES_ENV: &str = "WEIR_ENTRY_FILES";

/// A Kubernetes object as JSON.
fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("Kubernetes objects serialize")
}

/// The custom resource of one attempt, when its task type runs as one
/// (`None`: it runs as a Job): its kind and object, or why the type cannot
/// make it. Created at `now`: its deadline is `now` plus the timeout.
pub fn build_resource(
    settings: &Settings,
    req: &JobRequest<'_>,
    now: DateTime<Utc>,
) -> Option<Result<(&'static ResourceKind, DynamicObject), LaunchError>> {
    let kind = req.task_types.resource_kind_of(req.spec)?;
    let mut common = Common::of(settings, req);
    // Its pods are found by it (one that cannot start fails the attempt).
    common
        .labels
        .insert(LABEL_OBJECT.to_owned(), common.name.clone());
    let work_volume = match &settings.work_claim {
        Some(claim) => {
            // One volume for every attempt: each works in its own folder.
            common.env.push(EnvVar {
                name: WORK_DIR_ENV.into(),
                value: Some(format!("{WORK_DIR}/{}", common.name)),
                ..EnvVar::default()
            });
            Volume {
                name: "work".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: Some(false),
                }),
                ..Volume::default()
            }
        }
        None => empty_dir("work"),
    };
    // The init container also writes the kind's entry point beside `weir`.
    let entry_files: BTreeMap<&str, &str> = kind.entry_files.iter().copied().collect();
    common.init.command = Some(vec![
        "/usr/local/bin/weir".into(),
        "exec-task".into(),
        "--install".into(),
        BIN_DIR.into(),
    ]);
    common.init.env = Some(vec![EnvVar {
        name: ENTRY_FILES_ENV.into(),
        value: Some(serde_json::to_string(&entry_files).expect("texts serialize")),
        ..EnvVar::default()
    }]);
    let parts = PodParts {
        spec: req.spec,
        image: task_image(req.task_types, req.spec, settings),
        labels: &common.labels,
        annotations: &common.annotations,
        env: common.env.iter().map(json).collect(),
        init_container: json(&common.init),
        volumes: vec![json(&empty_dir("weir-bin")), json(&work_volume)],
        bin_mount: json(&VolumeMount {
            read_only: Some(true),
            ..common.bin.clone()
        }),
        bin_dir: BIN_DIR,
        work_mount: json(&common.work),
        shared_work: settings.work_claim.is_some(),
        service_account: common.service_account.clone(),
        security_context: json(&restricted_container()),
        ttl_seconds: settings.ttl_after_finished.as_secs(),
    };
    let resource = match req.task_types.kubernetes_resource(req.spec, &parts)? {
        Ok(resource) => resource,
        Err(e) => return Some(Err(e)),
    };
    let mut metadata = common.metadata(settings);
    if let Some(timeout) = req.timeout {
        let deadline = now + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        metadata.annotations.get_or_insert_default().insert(
            ANNOTATION_DEADLINE.to_owned(),
            deadline.to_rfc3339_opts(SecondsFormat::Millis, true),
        );
    }
    let object = DynamicObject {
        types: Some(TypeMeta {
            api_version: kind.api_version(),
            kind: kind.kind.to_owned(),
        }),
        metadata,
        data: serde_json::json!({ "spec": resource.spec }),
    };
    Some(Ok((kind, object)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Resources, SecretRef};

    fn spec() -> TaskSpec {
        let mut spec: TaskSpec = serde_json::from_value(serde_json::json!({
            "container": { "image": "ghcr.io/acme/train:1.4", "command": ["python", "train.py"] },
            "timeout": "30m",
            "serviceAccount": "trainer",
        }))
        .expect("a task spec");
        spec.resources = Resources {
            requests: [("cpu".into(), crate::spec::quantity::Quantity("500m".into()))]
                .into_iter()
                .collect(),
            limits: [(
                "memory".into(),
                crate::spec::quantity::Quantity("2Gi".into()),
            )]
            .into_iter()
            .collect(),
        };
        spec.secrets = vec![SecretRef {
            name: "warehouse".into(),
            key: "password".into(),
            env: "DB_PASSWORD".into(),
        }];
        spec
    }

    /// The Job of attempt 1 of `spec` with no timeout.
    fn plain_job(spec: &TaskSpec, settings: &Settings) -> Job {
        let version = Digest::from_hex("ab".repeat(32));
        build(
            settings,
            &JobRequest {
                execution: &"e".into(),
                project: "p",
                commit: "c",
                node: "n",
                task: "t",
                task_version: &version,
                attempt: 1,
                spec,
                task_types: &TaskTypes::builtin(),
                timeout: None,
                payload: "{}".into(),
            },
        )
    }

    #[test]
    fn names_are_deterministic_dns_labels_per_attempt() {
        let a = job_name(&"nightly-0123456789ab".into(), "fit/train", 1);
        assert_eq!(a, job_name(&"nightly-0123456789ab".into(), "fit/train", 1));
        assert_ne!(a, job_name(&"nightly-0123456789ab".into(), "fit/train", 2));
        assert_ne!(a, job_name(&"nightly-0123456789ac".into(), "fit/train", 1));
        assert!(a.starts_with("weir-fit-train-"), "{a}");
        let long = job_name(&"x".into(), &"Very_Long/Node.Name".repeat(10), 3);
        assert!(long.len() <= 63, "{long}");
        for name in [&a, &long] {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !name.ends_with('-'),
                "{name}"
            );
        }
    }

    #[test]
    fn the_job_carries_labels_resources_secrets_and_a_restricted_pod() {
        let spec = spec();
        let version = Digest::from_hex("ab".repeat(32));
        let req = JobRequest {
            execution: &"nightly-0123456789ab".into(),
            project: "churn",
            commit: &"c".repeat(40),
            node: "fit/train",
            task: "train",
            task_version: &version,
            attempt: 2,
            spec: &spec,
            task_types: &TaskTypes::builtin(),
            timeout: Some(Duration::from_secs(1800)),
            payload: "{}".into(),
        };
        let settings = Settings {
            namespace: "weir".into(),
            ..Settings::default()
        };
        let job = build(&settings, &req);
        let labels = job.metadata.labels.clone().expect("labels");
        assert_eq!(labels[LABEL_EXECUTION], "nightly-0123456789ab");
        assert_eq!(labels[LABEL_NODE], "fit.train");
        assert_eq!(labels[LABEL_TASK], "train");
        assert_eq!(labels[LABEL_VERSION], "abababababab");
        assert_eq!(labels[LABEL_COMMIT], "c".repeat(40));
        assert_eq!(labels[LABEL_PROJECT], "churn");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "weir");
        assert_eq!(job.metadata.namespace.as_deref(), Some("weir"));
        let job_spec = job.spec.expect("spec");
        assert_eq!(job_spec.backoff_limit, Some(0));
        assert_eq!(job_spec.active_deadline_seconds, Some(1800));
        assert_eq!(job_spec.ttl_seconds_after_finished, Some(3600));
        let pod = job_spec.template.spec.expect("pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.service_account_name.as_deref(), Some("trainer"));
        assert_eq!(pod.automount_service_account_token, Some(true));
        let security = pod.security_context.expect("pod security");
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(
            security.seccomp_profile.map(|s| s.type_).as_deref(),
            Some("RuntimeDefault")
        );
        let task = &pod.containers[0];
        assert_eq!(task.image.as_deref(), Some("ghcr.io/acme/train:1.4"));
        assert_eq!(
            task.command.as_deref(),
            Some(&["/weir/bin/weir".to_owned(), "exec-task".to_owned()][..])
        );
        let resources = task.resources.clone().expect("resources");
        assert_eq!(resources.requests.expect("requests")["cpu"].0, "500m");
        assert_eq!(resources.limits.expect("limits")["memory"].0, "2Gi");
        let env = task.env.clone().expect("env");
        let secret = env
            .iter()
            .find(|e| e.name == "DB_PASSWORD")
            .expect("secret env");
        let selector = secret
            .value_from
            .clone()
            .and_then(|v| v.secret_key_ref)
            .expect("secretKeyRef");
        assert_eq!(
            (selector.name.as_str(), selector.key.as_str()),
            ("warehouse", "password")
        );
        assert!(secret.value.is_none(), "never the value");
        for container in pod.init_containers.iter().flatten().chain(&pod.containers) {
            let sc = container
                .security_context
                .clone()
                .expect("container security");
            assert_eq!(
                sc.allow_privilege_escalation,
                Some(false),
                "{}",
                container.name
            );
            assert_eq!(
                sc.capabilities.and_then(|c| c.drop),
                Some(vec!["ALL".to_owned()]),
                "{}",
                container.name
            );
        }
    }

    /// Sidecars are native sidecar containers: init containers after
    /// weir's own, restarted always (so the kubelet runs them beside the
    /// task and stops them after it), their readiness a startup probe that
    /// holds the task back until it passes.
    #[test]
    fn a_sidecar_is_a_native_sidecar_container_gated_by_a_startup_probe() {
        let mut spec = spec();
        spec.sidecars = serde_json::from_value(serde_json::json!([
            {
                "name": "db",
                "image": "postgres:16",
                "env": { "POSTGRES_HOST_AUTH_METHOD": "trust" },
                "readiness": { "tcp": 5432, "timeout": "30s" },
            },
            {
                "name": "model",
                "image": "ghcr.io/acme/serve:2",
                "command": ["serve", "--port", "8080"],
                "readiness": { "exec": ["curl", "-sf", "localhost:8080/health"] },
            },
            { "name": "proxy", "image": "envoy:1" },
        ]))
        .expect("sidecars");
        let job = plain_job(&spec, &Settings::default());
        let pod = job.spec.expect("spec").template.spec.expect("pod");
        let init = pod.init_containers.expect("init containers");
        let names: Vec<&str> = init.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["weir-init", "db", "model", "proxy"]);
        assert_eq!(
            init[0].restart_policy, None,
            "weir's init container runs once"
        );
        for sidecar in &init[1..] {
            assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
            let sc = sidecar.security_context.clone().expect("restricted");
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert!(sidecar.readiness_probe.is_none());
        }
        let db = &init[1];
        assert_eq!(db.image.as_deref(), Some("postgres:16"));
        assert_eq!(db.command, None, "the image's entrypoint");
        assert_eq!(
            db.env.clone().expect("env")[0].value.as_deref(),
            Some("trust")
        );
        let probe = db.startup_probe.clone().expect("a startup probe");
        assert_eq!(probe.tcp_socket.expect("tcp").port, IntOrString::Int(5432));
        assert_eq!(
            (probe.period_seconds, probe.failure_threshold),
            (Some(1), Some(30))
        );
        let model = init[2].startup_probe.clone().expect("a startup probe");
        assert_eq!(model.exec.and_then(|e| e.command).expect("exec")[0], "curl");
        assert_eq!(model.failure_threshold, Some(60), "the default 60s");
        assert_eq!(
            init[2].command.as_deref(),
            Some(&["serve".to_owned(), "--port".into(), "8080".into()][..])
        );
        assert!(init[3].startup_probe.is_none(), "ready once it runs");
        let task = &pod.containers[0];
        assert!(
            task.env
                .iter()
                .flatten()
                .all(|e| e.name != "POSTGRES_HOST_AUTH_METHOD"),
            "a sidecar's env is its own"
        );
        assert!(
            db.env.iter().flatten().all(|e| e.name != "DB_PASSWORD"),
            "the task's secrets are the task's"
        );
    }

    #[test]
    fn a_task_without_its_own_account_gets_the_default_and_no_token() {
        let mut spec = spec();
        spec.service_account = None;
        let settings = Settings {
            service_account: Some("weir-task".into()),
            ..Settings::default()
        };
        let job = plain_job(&spec, &settings);
        let job_spec = job.spec.expect("spec");
        assert_eq!(job_spec.active_deadline_seconds, None);
        let pod = job_spec.template.spec.expect("pod");
        assert_eq!(pod.service_account_name.as_deref(), Some("weir-task"));
        assert_eq!(pod.automount_service_account_token, Some(false));
    }

    #[test]
    fn a_spark_attempt_is_a_spark_application_on_the_shared_work_volume() {
        let spec: TaskSpec = serde_json::from_value(serde_json::json!({
            "outputs": { "daily": { "type": "directory" } },
            "spark": { "source": "pass" },
            "timeout": "30m",
        }))
        .expect("a spark task");
        let version = Digest::from_hex("ab".repeat(32));
        let settings = Settings {
            namespace: "weir".into(),
            work_claim: Some("weir-work".into()),
            ..Settings::default()
        };
        let request = JobRequest {
            execution: &"e".into(),
            project: "p",
            commit: "c",
            node: "daily",
            task: "t",
            task_version: &version,
            attempt: 2,
            spec: &spec,
            task_types: &TaskTypes::builtin(),
            timeout: Some(Duration::from_secs(1800)),
            payload: "{}".into(),
        };
        let now = DateTime::parse_from_rfc3339("2026-12-04T06:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        let (kind, object) = build_resource(&settings, &request, now)
            .expect("a resource")
            .expect("made");
        let name = job_name(&"e".into(), "daily", 2);
        assert_eq!(kind.name(), "sparkapplications.sparkoperator.k8s.io");
        assert_eq!(object.metadata.name.as_deref(), Some(name.as_str()));
        let types = object.types.as_ref().expect("types");
        assert_eq!(
            (types.api_version.as_str(), types.kind.as_str()),
            ("sparkoperator.k8s.io/v1beta2", "SparkApplication")
        );
        let annotations = object.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(annotations[ANNOTATION_DEADLINE], "2026-12-04T06:30:00.000Z");
        assert_eq!(annotations[ANNOTATION_EXECUTION], "e");
        let driver = &object.data["spec"]["driver"];
        assert_eq!(driver["labels"][LABEL_OBJECT], serde_json::json!(name));
        assert_eq!(
            driver["initContainers"][0]["command"],
            serde_json::json!(["/usr/local/bin/weir", "exec-task", "--install", "/weir/bin"])
        );
        let entry: BTreeMap<String, String> = serde_json::from_str(
            driver["initContainers"][0]["env"][0]["value"]
                .as_str()
                .expect("the entry files"),
        )
        .expect("json");
        assert!(entry["spark_entry.py"].contains("exec-task"));
        assert!(
            driver["env"].as_array().expect("env").contains(
                &serde_json::json!({ "name": WORK_DIR_ENV, "value": format!("/weir/work/{name}") })
            ),
            "{driver}"
        );
        assert_eq!(
            object.data["spec"]["volumes"][1]["persistentVolumeClaim"]["claimName"],
            "weir-work"
        );

        let script: TaskSpec = serde_json::from_value(serde_json::json!({
            "script": { "interpreter": "sh", "source": "true" },
        }))
        .expect("a script task");
        let request = JobRequest {
            spec: &script,
            ..request
        };
        assert!(build_resource(&settings, &request, now).is_none(), "a Job");
    }
}
