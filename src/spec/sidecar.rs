//! `sidecars:` of a task (Flyte's sidecar tasks, Kubernetes' native
//! sidecars): services that run beside the task's own process for as long
//! as it runs (a database, a model server, a proxy), started and found
//! ready before it, stopped after it.
//!
//! Any task type may have them: they are a common field of [`TaskSpec`],
//! not a body. A task without sidecars writes no `sidecars` key, so its
//! canonical spec (and its version) is what it was before the field
//! existed.
//!
//! [`TaskSpec`]: super::TaskSpec

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DurationText;

/// One service beside the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// Unique in the task; a DNS label (it names the container on
    /// Kubernetes and the log files locally).
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub name: String,
    /// The image it runs on Kubernetes. Locally its `command` runs on the
    /// host.
    #[schemars(length(min = 1))]
    pub image: String,
    /// The program and its arguments (none: the image's entrypoint, which
    /// only Kubernetes can run).
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables of its environment, literal (a sidecar sees no inputs).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How weir knows it is ready; none: ready once it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Readiness>,
}

/// The check a sidecar must pass before the task starts: exactly one of
/// `tcp` and `exec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{ "required": ["tcp"] }, { "required": ["exec"] }]))]
pub struct Readiness {
    /// Ready once this port of the sidecar accepts a TCP connection
    /// (locally on 127.0.0.1; in the pod, the pod's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u16", range(min = 1))]
    pub tcp: Option<u16>,
    /// Ready once this command exits with status 0 (run beside the
    /// sidecar, in its environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Vec<String>", length(min = 1))]
    pub exec: Option<Vec<String>>,
    /// How long the sidecar has to become ready, e.g. `30s`.
    #[serde(default = "default_readiness_timeout")]
    #[schemars(with = "String")]
    pub timeout: DurationText,
}

/// A sidecar's time to become ready when its readiness names none.
pub const DEFAULT_READINESS_TIMEOUT: &str = "60s";

fn default_readiness_timeout() -> DurationText {
    DurationText::new(DEFAULT_READINESS_TIMEOUT)
}

/// Names a sidecar may not take: the task's own container and weir's init
/// container on Kubernetes.
pub const RESERVED_NAMES: [&str; 2] = ["task", "weir-init"];

/// What a readiness check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe<'a> {
    Tcp(u16),
    Exec(&'a [String]),
}

impl Readiness {
    /// The probe, once the schema has made sure there is exactly one.
    pub fn probe(&self) -> Option<Probe<'_>> {
        match (&self.tcp, &self.exec) {
            (Some(port), None) => Some(Probe::Tcp(*port)),
            (None, Some(command)) if !command.is_empty() => Some(Probe::Exec(command)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_readiness_is_one_probe_and_a_timeout() {
        let ready: Readiness = serde_json::from_value(json!({ "tcp": 5432 })).expect("reads");
        assert_eq!(ready.probe(), Some(Probe::Tcp(5432)));
        assert_eq!(ready.timeout.as_str(), DEFAULT_READINESS_TIMEOUT);
        let exec: Readiness =
            serde_json::from_value(json!({ "exec": ["pg_isready"], "timeout": "5s" }))
                .expect("reads");
        assert_eq!(exec.probe(), Some(Probe::Exec(&["pg_isready".to_owned()])));
        let both: Readiness =
            serde_json::from_value(json!({ "exec": ["true"], "tcp": 1 })).expect("reads");
        assert_eq!(
            both.probe(),
            None,
            "the schema refuses it; nothing probes it"
        );
    }
}
