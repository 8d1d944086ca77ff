//! A node's handle (`NodeState.handle`, JSON in the store): the engine's
//! envelope around the executor's [`AttemptHandle`].
//!
//! The engine keeps there what must outlive one attempt or one process:
//! how many times the node was interrupted (its budget apart from the
//! task's retries), and which engine and host started the current attempt
//! ([`Owner`]: what it may signal, and whether the lease holder still
//! drives it). The executor's part says where the attempt runs.
//!
//! The stored form is one flat JSON object (`interruptions`, `owner`, then
//! the attempt's keys, [`RawAttempt`]), byte-identical to what versions
//! before these types wrote. A handle that does not read is warned about
//! and treated as none, as a missing key always was.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Owner;
use crate::executor::handle::{AttemptHandle, RawAttempt};
use crate::store::execution::NodeState;

/// What the engine stores about a node's attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeHandle {
    /// Interrupted attempts of this node (not the task's retries).
    pub interruptions: u64,
    /// The engine and host that started the current attempt (local
    /// attempts; a Job is nobody's process).
    pub owner: Option<Owner>,
    /// Where the current attempt runs; none before the first starts.
    pub attempt: Option<AttemptHandle>,
}

/// The stored form: every key optional, absent ones not written.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RawHandle {
    #[serde(default, skip_serializing_if = "is_zero")]
    interruptions: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<Owner>,
    #[serde(flatten)]
    attempt: RawAttempt,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl NodeHandle {
    /// The handle of `state`; an empty one when it has none, or when what
    /// is stored does not read (warned about: the node is then treated as
    /// having no attempt to find).
    pub fn read(state: &NodeState) -> NodeHandle {
        let Some(value) = &state.handle else {
            return NodeHandle::default();
        };
        match NodeHandle::from_value(value) {
            Ok(handle) => handle,
            Err(error) => {
                tracing::warn!(execution = %state.execution, node = %state.node, handle = %value, %error, "the node's stored handle does not read; treated as none");
                NodeHandle::default()
            }
        }
    }

    /// Reads a stored handle.
    pub fn from_value(value: &Value) -> Result<NodeHandle, String> {
        let raw = RawHandle::deserialize(value).map_err(|e| e.to_string())?;
        let attempt = AttemptHandle::from_raw(raw.attempt).map_err(|e| e.to_string())?;
        Ok(NodeHandle {
            interruptions: raw.interruptions,
            owner: raw.owner,
            attempt,
        })
    }

    /// The stored form.
    pub fn to_value(&self) -> Value {
        let raw = RawHandle {
            interruptions: self.interruptions,
            owner: self.owner.clone(),
            attempt: self
                .attempt
                .as_ref()
                .map(AttemptHandle::to_raw)
                .unwrap_or_default(),
        };
        serde_json::to_value(raw).expect("a handle serializes")
    }

    /// The handle of the node's next attempt: only the interruptions carry
    /// over from this one (nothing of an earlier attempt's process or Job).
    pub fn next_attempt(&self, owner: Option<Owner>, attempt: AttemptHandle) -> NodeHandle {
        NodeHandle {
            interruptions: self.interruptions,
            owner,
            attempt: Some(attempt),
        }
    }

    /// Whether the current attempt goes on when its engine stops (a Job).
    pub fn outlives_engine(&self) -> bool {
        self.attempt
            .as_ref()
            .is_some_and(AttemptHandle::outlives_engine)
    }

    /// The local attempt's process group, if it has one.
    pub fn pgid(&self) -> Option<u32> {
        match &self.attempt {
            Some(AttemptHandle::Local(local)) => local.pgid,
            _ => None,
        }
    }

    /// Writes this handle into `state`.
    pub fn store_in(&self, state: &mut NodeState) {
        state.handle = Some(self.to_value());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::handle::{KubeHandle, LocalHandle};

    fn owner() -> Owner {
        Owner {
            engine: "host:42:1a2b.0@boot/4026531836".into(),
            host: "host/boot".into(),
        }
    }

    fn local(pgid: Option<u32>) -> AttemptHandle {
        AttemptHandle::Local(LocalHandle {
            dir: "/var/lib/weir/runs/e/n/1".into(),
            pgid,
            sidecars: Vec::new(),
        })
    }

    fn job() -> AttemptHandle {
        AttemptHandle::Kubernetes(KubeHandle {
            namespace: "weir".into(),
            name: "weir-n-0123456789abcdef".into(),
            resource: None,
        })
    }

    /// The shapes stored today, as text, read and written back byte for
    /// byte: handles stored by earlier versions stay readable, and new
    /// ones are what those versions wrote.
    #[test]
    fn each_stored_shape_round_trips_byte_for_byte() {
        let owner_json = r#"{"engine":"host:42:1a2b.0@boot/4026531836","host":"host/boot"}"#;
        let cases = [
            // A local attempt, planned, before its process runs.
            (
                format!(r#"{{"dir":"/var/lib/weir/runs/e/n/1","owner":{owner_json}}}"#),
                NodeHandle {
                    interruptions: 0,
                    owner: Some(owner()),
                    attempt: Some(local(None)),
                },
            ),
            // Once it runs, and after interruptions.
            (
                format!(
                    r#"{{"dir":"/var/lib/weir/runs/e/n/1","interruptions":2,"owner":{owner_json},"pgid":4242}}"#
                ),
                NodeHandle {
                    interruptions: 2,
                    owner: Some(owner()),
                    attempt: Some(local(Some(4242))),
                },
            ),
            // A Job.
            (
                r#"{"interruptions":1,"job":"weir-n-0123456789abcdef","namespace":"weir"}"#.into(),
                NodeHandle {
                    interruptions: 1,
                    owner: None,
                    attempt: Some(job()),
                },
            ),
            // Only the engine's count: the attempt that was interrupted
            // had no handle of its own yet.
            (
                r#"{"interruptions":1}"#.into(),
                NodeHandle {
                    interruptions: 1,
                    ..NodeHandle::default()
                },
            ),
        ];
        for (stored, typed) in cases {
            let value: Value = serde_json::from_str(&stored).expect("json");
            assert_eq!(
                NodeHandle::from_value(&value).as_ref(),
                Ok(&typed),
                "{stored}"
            );
            assert_eq!(typed.to_value().to_string(), stored);
        }
    }

    #[test]
    fn a_jobs_handle_keeps_nothing_of_an_earlier_local_attempt() {
        let interrupted_locally = NodeHandle {
            interruptions: 1,
            owner: Some(owner()),
            attempt: Some(local(Some(4242))),
        };
        let next = interrupted_locally.next_attempt(None, job());
        assert_eq!(
            next.to_value().to_string(),
            r#"{"interruptions":1,"job":"weir-n-0123456789abcdef","namespace":"weir"}"#
        );
        assert_eq!(next.pgid(), None);
    }

    #[test]
    fn a_handle_that_does_not_read_is_none() {
        let state = |handle: Value| NodeState {
            status: crate::store::execution::NodeStatus::Running,
            attempts: 1,
            handle: Some(handle),
            ..NodeState::pending(
                "e".into(),
                "n".into(),
                "t".into(),
                crate::spec::Digest::of_json(&Value::Null),
            )
        };
        for bad in [
            serde_json::json!({ "pgid": "not a number", "dir": "/x" }),
            serde_json::json!({ "job": "weir-n-1" }),
            serde_json::json!("not an object"),
        ] {
            assert_eq!(NodeHandle::read(&state(bad)), NodeHandle::default());
        }
        assert_eq!(
            NodeHandle::read(&state(serde_json::json!({ "interruptions": 3 }))).interruptions,
            3
        );
    }
}
