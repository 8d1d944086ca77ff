//! A source's status: `weir status -o json`, `GET /api/v1/sources`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{instant, to_millis};
use crate::spec::{CommitId, SourceKey};
use crate::store::{self, SourceStatus, Store};

/// What a source last reconciled and attempted, and why its last attempt
/// was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceView {
    pub source: SourceKey,
    pub last_reconciled_commit: Option<CommitId>,
    #[serde(serialize_with = "instant::millis_opt")]
    pub last_reconciled_at: Option<DateTime<Utc>>,
    pub last_attempted_commit: Option<CommitId>,
    #[serde(serialize_with = "instant::millis_opt")]
    pub last_attempted_at: Option<DateTime<Utc>>,
    /// Reconciled once, and the last attempt was not refused.
    pub ready: bool,
    pub error: Option<SourceErrorView>,
}

/// Why the last attempted commit was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceErrorView {
    /// A short reason usable as a metric label, e.g. `ValidationFailed`.
    pub reason: String,
    pub message: String,
    /// As `weir validate -o json` prints them.
    pub diagnostics: serde_json::Value,
}

impl From<&SourceStatus> for SourceView {
    fn from(s: &SourceStatus) -> SourceView {
        SourceView {
            source: s.source.clone(),
            last_reconciled_commit: s.last_reconciled.clone(),
            last_reconciled_at: s.last_reconciled_at.map(to_millis),
            last_attempted_commit: s.last_attempted.clone(),
            last_attempted_at: s.last_attempted_at.map(to_millis),
            ready: s.error.is_none() && s.last_reconciled.is_some(),
            error: s.error.as_ref().map(|e| SourceErrorView {
                reason: e.reason.clone(),
                message: e.message.clone(),
                diagnostics: e.diagnostics.clone(),
            }),
        }
    }
}

/// Every source's status, in the store's order.
pub async fn sources(store: &dyn Store) -> Result<Vec<SourceView>, store::Error> {
    Ok(store
        .sources()
        .await?
        .iter()
        .map(SourceView::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::SourceError;
    use crate::views::{precise_instant, round_trip, to_json};

    #[test]
    fn a_refused_source_reads_back_as_written() {
        let status = SourceStatus {
            source: SourceKey("/srv/repo#main:".into()),
            last_reconciled: Some(CommitId("a".repeat(40))),
            last_reconciled_at: Some(precise_instant()),
            last_attempted: Some(CommitId("b".repeat(40))),
            last_attempted_at: None,
            error: Some(SourceError {
                reason: "ValidationFailed".into(),
                message: "1 error".into(),
                diagnostics: json!([{ "code": "W012", "line": 3 }]),
            }),
        };
        let view = SourceView::from(&status);
        assert_eq!(round_trip(&view), view);
        let json = to_json(&view);
        assert_eq!(json["lastReconciledAt"], "2026-03-29T00:30:05.123Z");
        assert_eq!(json["lastAttemptedAt"], serde_json::Value::Null);
        assert_eq!(json["ready"], false);
        assert_eq!(json["error"]["reason"], "ValidationFailed");
    }
}
