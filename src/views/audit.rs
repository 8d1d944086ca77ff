//! The audit log: `weir audit -o json`, `GET /api/v1/audit`. One entry a
//! reconciled or rejected commit, newest first: who made the change (the
//! commit's author), and what it registered, reactivated and deactivated;
//! and one entry a launch plan paused or resumed (`weir pause`), by whom.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{instant, to_millis};
use crate::spec::{CommitId, SourceKey};
use crate::store::{self, AuditEntry, Store};

/// How many entries the log shows when the query does not say.
pub const DEFAULT_LIMIT: u32 = 100;

/// One change to the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    pub id: i64,
    #[serde(serialize_with = "instant::millis")]
    pub at: DateTime<Utc>,
    /// The source and commit of a reconciled or rejected commit; null for
    /// a pause or a resume, which no commit made.
    pub source: Option<SourceKey>,
    pub commit: Option<CommitId>,
    pub actor: ActorView,
    /// `reconciled`, `rejected`, `paused` or `resumed`.
    pub action: String,
    /// `{registered, activated, updated, reactivated, deactivated}` lists
    /// of `{project, kind, name, version}`, the rejection's error, or the
    /// launch plan paused or resumed (`{project, kind, name, comment,
    /// catchUp}`).
    pub details: serde_json::Value,
}

/// Who made the change: the commit's author, or who paused or resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActorView {
    pub name: String,
    pub email: String,
}

impl From<&AuditEntry> for AuditView {
    fn from(a: &AuditEntry) -> AuditView {
        AuditView {
            id: a.id,
            at: to_millis(a.at),
            source: a.source.clone(),
            commit: a.commit.clone(),
            actor: ActorView {
                name: a.actor.name.clone(),
                email: a.actor.email.clone(),
            },
            action: a.action.clone(),
            details: a.details.clone(),
        }
    }
}

/// How much of the log: `weir audit --limit`, or `?limit=` of `GET
/// /api/v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// At most this many, newest first ([`DEFAULT_LIMIT`] when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The newest entries of the log, as `query` bounds them.
pub async fn audit(store: &dyn Store, query: &AuditQuery) -> Result<Vec<AuditView>, store::Error> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    Ok(store
        .audit(limit)
        .await?
        .iter()
        .map(AuditView::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::Person;
    use crate::views::{precise_instant, round_trip, to_json};

    #[test]
    fn an_entry_reads_back_as_written() {
        let entry = AuditEntry {
            id: 7,
            at: precise_instant(),
            source: Some(SourceKey("/srv/repo#main:".into())),
            commit: Some(CommitId("a".repeat(40))),
            actor: Person {
                name: "Ada Lovelace".into(),
                email: "ada@example.com".into(),
            },
            action: "reconciled".into(),
            details: json!({ "registered": [{ "name": "train" }] }),
        };
        let view = AuditView::from(&entry);
        assert_eq!(round_trip(&view), view);
        let json = to_json(&view);
        assert_eq!(json["at"], "2026-03-29T00:30:05.123Z");
        assert_eq!(json["actor"]["email"], "ada@example.com");
    }
}
