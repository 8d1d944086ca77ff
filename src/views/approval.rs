//! A decision on an approval gate: what `weir approve` asks of the store
//! itself and of `POST /api/v1/executions/{id}/nodes/{node}/approval`. The
//! decision is recorded (with its audit entry) only for a gate that waits
//! for one, once: the first stands. The engine driving the execution then
//! ends the gate: approved, it succeeds and what follows runs; rejected,
//! it fails with who rejected it and why.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{check_actor, instant, to_millis};
use crate::spec::ExecutionId;
use crate::store::execution::{Decision, NodeStatus};
use crate::store::{self, Store};

/// What is asked: `weir approve [--reject] [--comment] [--by]`, or the
/// request body of the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalBody {
    /// `approve` (the default) or `reject`.
    #[serde(default)]
    pub decision: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who decides (recorded); default `api` over HTTP, the login name in
    /// the CLI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    #[default]
    Approve,
    Reject,
}

/// A recorded decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionView {
    pub execution: ExecutionId,
    pub node: String,
    pub decision: Verdict,
    pub by: String,
    #[serde(serialize_with = "instant::millis")]
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Why a decision was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no execution `{0}`")]
    UnknownExecution(ExecutionId),
    #[error("execution `{execution}` has no node `{node}`")]
    UnknownNode {
        execution: ExecutionId,
        node: String,
    },
    #[error(
        "node `{node}` of `{execution}` is not waiting for a decision (it is {status}); only an approval gate that has been reached waits"
    )]
    NotWaiting {
        execution: ExecutionId,
        node: String,
        status: NodeStatus,
    },
    #[error("node `{node}` of `{execution}` was decided already")]
    Decided {
        execution: ExecutionId,
        node: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Records `body`'s decision on gate `node` of `execution` at `now`, as
/// `by` unless the body names someone.
pub async fn decide(
    store: &dyn Store,
    execution: &ExecutionId,
    node: &str,
    body: &ApprovalBody,
    by: &str,
    now: DateTime<Utc>,
) -> Result<DecisionView, ApprovalError> {
    let by = body.by.as_deref().unwrap_or(by);
    check_actor(by, body.comment.as_deref(), 2000).map_err(ApprovalError::Invalid)?;
    let nodes = store.nodes(execution).await?;
    if nodes.is_empty() && store.execution(execution).await?.is_none() {
        return Err(ApprovalError::UnknownExecution(execution.clone()));
    }
    let Some(state) = nodes.iter().find(|n| n.node == node) else {
        return Err(ApprovalError::UnknownNode {
            execution: execution.clone(),
            node: node.to_owned(),
        });
    };
    if state.status != NodeStatus::Waiting {
        return Err(ApprovalError::NotWaiting {
            execution: execution.clone(),
            node: node.to_owned(),
            status: state.status,
        });
    }
    let decision = Decision {
        execution: execution.clone(),
        node: node.to_owned(),
        approved: body.decision == Verdict::Approve,
        at: now,
        by: by.to_owned(),
        comment: body.comment.clone(),
    };
    if !store.decide(&decision).await? {
        return Err(ApprovalError::Decided {
            execution: execution.clone(),
            node: node.to_owned(),
        });
    }
    Ok(DecisionView {
        execution: decision.execution,
        node: decision.node,
        decision: body.decision,
        by: decision.by,
        at: to_millis(decision.at),
        comment: decision.comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{precise_instant, round_trip, to_json};

    #[test]
    fn a_decision_reads_back_as_written() {
        let view = DecisionView {
            execution: "release-1".into(),
            node: "sign-off".into(),
            decision: Verdict::Reject,
            by: "ada".into(),
            at: to_millis(precise_instant()),
            comment: Some("AUC dropped".into()),
        };
        assert_eq!(round_trip(&view), view);
        assert_eq!(to_json(&view)["decision"], "reject");
        let body: ApprovalBody = serde_json::from_str("{}").expect("defaults");
        assert_eq!(body.decision, Verdict::Approve);
        assert!(serde_json::from_str::<ApprovalBody>(r#"{"decision": "maybe"}"#).is_err());
    }
}
