//! Lineage of an execution or an artifact: `weir lineage -o json`, `GET
//! /api/v1/lineage/{target}`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{QueryError, instant, to_millis};
use crate::artifact;
use crate::lineage::{self, Found, TargetKind, Way};
use crate::spec::{CommitId, Digest, ExecutionId};
use crate::store::execution::{Direction, LineageEdge};
use crate::store::{self, Store};

/// Every edge found from a target, and the commits they lead to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineageView {
    /// As it was asked for.
    pub target: String,
    pub kind: TargetKind,
    /// Each edge once, oldest first.
    pub edges: Vec<EdgeView>,
    /// The commits of every edge, each once, in order.
    pub commits: BTreeSet<CommitId>,
}

/// A node execution read (`input`) or produced (`output`) an artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeView {
    pub execution: ExecutionId,
    pub node: String,
    pub direction: Direction,
    /// The node's input or output name.
    pub name: String,
    /// `sha256:<hex>` in the JSON.
    #[serde(serialize_with = "reference", deserialize_with = "parse_reference")]
    pub artifact: Digest,
    pub task: String,
    /// 12 hex.
    pub task_version: String,
    pub commit: CommitId,
    #[serde(serialize_with = "instant::millis")]
    pub at: DateTime<Utc>,
}

impl LineageView {
    pub fn new(target: &str, found: &Found) -> LineageView {
        LineageView {
            target: target.to_owned(),
            kind: found.kind,
            edges: found.edges.iter().map(EdgeView::from).collect(),
            commits: found.edges.iter().map(|e| e.commit.clone()).collect(),
        }
    }
}

impl From<&LineageEdge> for EdgeView {
    fn from(e: &LineageEdge) -> EdgeView {
        EdgeView {
            execution: e.execution.clone(),
            node: e.node.clone(),
            direction: e.direction,
            name: e.name.clone(),
            artifact: e.digest.clone(),
            task: e.task.clone(),
            task_version: e.task_version.short().to_owned(),
            commit: e.commit.clone(),
            at: to_millis(e.at),
        }
    }
}

fn reference<S: Serializer>(digest: &Digest, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&artifact::reference(digest))
}

fn parse_reference<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
    let text = String::deserialize(d)?;
    artifact::parse_reference(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a sha256:<hex> artifact")))
}

/// Which way: `weir lineage --upstream | --downstream` (neither: both), or
/// the same names as query parameters of `GET /api/v1/lineage/{target}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageQuery {
    /// Only what led to the target.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub upstream: bool,
    /// Only what came of the target.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub downstream: bool,
}

impl LineageQuery {
    /// One way, or both (`None`); asking for both is refused.
    pub fn way(&self) -> Result<Option<Way>, QueryError> {
        match (self.upstream, self.downstream) {
            (true, true) => Err(QueryError(
                "upstream and downstream exclude each other (neither: both ways)".into(),
            )),
            (true, false) => Ok(Some(Way::Upstream)),
            (false, true) => Ok(Some(Way::Downstream)),
            (false, false) => Ok(None),
        }
    }
}

/// The lineage of `target` (an execution id, or an artifact as
/// `sha256:<hex>` or its 64 hex) going `way`; `None` when it is neither.
pub async fn lineage(
    store: &dyn Store,
    target: &str,
    way: Option<Way>,
) -> Result<Option<LineageView>, store::Error> {
    let found = lineage::trace(store, target, way).await?;
    Ok(found.map(|found| LineageView::new(target, &found)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{precise_instant, round_trip, to_json};

    #[test]
    fn lineage_reads_back_as_written() {
        let edge = |direction, commit: &str| LineageEdge {
            execution: "adhoc-0123456789ab".into(),
            node: "train".into(),
            direction,
            name: "model".into(),
            digest: Digest::from_hex("f".repeat(64)),
            task: "train".into(),
            task_version: Digest::from_hex("1".repeat(64)),
            commit: CommitId(commit.repeat(40)),
            at: precise_instant(),
        };
        let found = Found {
            kind: TargetKind::Execution,
            edges: vec![edge(Direction::Output, "b"), edge(Direction::Input, "a")],
        };
        let view = LineageView::new("adhoc-0123456789ab", &found);
        assert_eq!(round_trip(&view), view);
        let json = to_json(&view);
        assert_eq!(json["kind"], "execution");
        assert_eq!(
            json["edges"][0]["artifact"],
            format!("sha256:{}", "f".repeat(64))
        );
        assert_eq!(json["edges"][0]["direction"], "output");
        assert_eq!(json["commits"][0], "a".repeat(40), "commits in order");
    }

    #[test]
    fn one_way_or_both_ways_but_not_both_flags() {
        let query = |upstream, downstream| LineageQuery {
            upstream,
            downstream,
        };
        assert_eq!(query(false, false).way(), Ok(None));
        assert_eq!(query(true, false).way(), Ok(Some(Way::Upstream)));
        assert_eq!(query(false, true).way(), Ok(Some(Way::Downstream)));
        assert!(query(true, true).way().is_err());
    }
}
