//! A registered version: `weir versions -o json`, `GET /api/v1/versions`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{QueryError, instant, to_millis};
use crate::spec::{CommitId, Digest, Kind};
use crate::store::{self, Store, VersionFilter, VersionRecord};

/// One version of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    pub project: String,
    pub kind: Kind,
    pub name: String,
    /// The version as shown to people: the digest's first 12 hex.
    pub version: String,
    pub digest: Digest,
    /// The commit where it first appeared.
    pub commit: CommitId,
    pub path: String,
    pub active: bool,
    #[serde(serialize_with = "instant::millis")]
    pub registered_at: DateTime<Utc>,
    /// Every commit at which it became active, oldest first.
    pub activations: Vec<CommitId>,
}

impl From<&VersionRecord> for VersionView {
    fn from(v: &VersionRecord) -> VersionView {
        VersionView {
            project: v.key.entity.project.clone(),
            kind: v.key.entity.kind,
            name: v.key.entity.name.clone(),
            version: v.key.digest.short().to_owned(),
            digest: v.key.digest.clone(),
            commit: v.commit.clone(),
            path: v.path.clone(),
            active: v.active,
            registered_at: to_millis(v.registered_at),
            activations: v.activations.clone(),
        }
    }
}

/// Which versions: `weir versions --kind --name --project`, or the same
/// names as query parameters of `GET /api/v1/versions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionQuery {
    /// `Task`, `Workflow` or `LaunchPlan`, any case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

impl VersionQuery {
    /// The store's filter; an unknown kind is refused.
    pub fn filter(&self) -> Result<VersionFilter, QueryError> {
        let kind = match self.kind.as_deref() {
            None => None,
            Some(text) => Some(
                Kind::ALL
                    .into_iter()
                    .find(|k| k.as_str().eq_ignore_ascii_case(text))
                    .ok_or_else(|| {
                        QueryError(format!(
                            "unknown kind `{text}` (one of: Task, Workflow, LaunchPlan)"
                        ))
                    })?,
            ),
        };
        Ok(VersionFilter {
            kind,
            name: self.name.clone(),
            project: self.project.clone(),
        })
    }
}

/// The versions `filter` selects, newest first.
pub async fn versions(
    store: &dyn Store,
    filter: &VersionFilter,
) -> Result<Vec<VersionView>, store::Error> {
    Ok(store
        .versions(filter)
        .await?
        .iter()
        .map(VersionView::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::EntityRef;
    use crate::store::VersionKey;
    use crate::views::{precise_instant, round_trip, to_json};

    #[test]
    fn a_version_reads_back_as_written() {
        let record = VersionRecord {
            key: VersionKey {
                entity: EntityRef::new("churn", Kind::LaunchPlan, "nightly"),
                digest: Digest::from_hex("c".repeat(64)),
            },
            commit: CommitId("d".repeat(40)),
            path: "churn/pipeline.yaml".into(),
            registered_at: precise_instant(),
            active: true,
            activations: vec![CommitId("d".repeat(40))],
            last_activation: 7,
            last_activated_at: None,
        };
        let view = VersionView::from(&record);
        assert_eq!(round_trip(&view), view);
        let json = to_json(&view);
        assert_eq!(json["kind"], "LaunchPlan");
        assert_eq!(json["version"], "cccccccccccc");
        assert_eq!(json["registeredAt"], "2026-03-29T00:30:05.123Z");
    }

    #[test]
    fn kinds_are_matched_in_any_case_and_unknown_ones_refused() {
        let query = |kind: &str| VersionQuery {
            kind: Some(kind.into()),
            ..VersionQuery::default()
        };
        assert_eq!(
            query("launchplan").filter().map(|f| f.kind),
            Ok(Some(Kind::LaunchPlan))
        );
        assert!(
            query("Pipeline")
                .filter()
                .is_err_and(|e| e.0.contains("unknown kind `Pipeline`"))
        );
    }
}
