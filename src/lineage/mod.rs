//! Lineage (DESIGN.md section 8, I5): following artifacts through the node
//! executions that produced and read them, back to the commits that defined
//! those nodes; and OpenLineage events for other tools.

pub mod openlineage;

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::artifact;
use crate::spec::Digest;
use crate::store::execution::{Direction, LineageEdge};
use crate::store::{self, Store};

/// Which way to follow artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// What led to them: their producers, what those read, and so on.
    Upstream,
    /// What came of them: their consumers, what those produced, and so on.
    Downstream,
}

/// Every edge reached from `start` going `way`, level by level: two
/// batched queries per level (the artifacts' edges, then their nodes'), so
/// the cost follows the depth and size of the lineage found, not the store.
pub async fn follow(
    store: &dyn Store,
    start: Vec<Digest>,
    way: Way,
) -> Result<Vec<LineageEdge>, store::Error> {
    let (via, next) = match way {
        Way::Upstream => (Direction::Output, Direction::Input),
        Way::Downstream => (Direction::Input, Direction::Output),
    };
    let mut edges = Vec::new();
    let mut seen: HashSet<Digest> = start.iter().cloned().collect();
    let mut nodes_seen: HashSet<(String, String)> = HashSet::new();
    let mut frontier = start;
    while !frontier.is_empty() {
        let mut nodes = Vec::new();
        for edge in store.lineage_of_artifacts(&frontier).await? {
            if edge.direction != via {
                continue;
            }
            let node = (edge.execution.clone(), edge.node.clone());
            if nodes_seen.insert(node.clone()) {
                nodes.push(node);
            }
            edges.push(edge);
        }
        frontier = Vec::new();
        if nodes.is_empty() {
            break;
        }
        for edge in store.lineage_of_nodes(&nodes).await? {
            if edge.direction != next {
                continue;
            }
            if seen.insert(edge.digest.clone()) {
                frontier.push(edge.digest.clone());
            }
            edges.push(edge);
        }
    }
    Ok(edges)
}

/// What a lineage target turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetKind {
    Execution,
    Artifact,
}

/// The lineage of a target, as [`trace`] found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub kind: TargetKind,
    /// Each edge once, oldest first.
    pub edges: Vec<LineageEdge>,
}

/// Follows `target`, an execution id or an artifact (`sha256:<hex>` or its
/// 64 hex), one `way` or both (`None`): for an execution, its own edges and
/// what its artifacts lead to. `None` when the target is neither a known
/// execution nor an artifact digest.
pub async fn trace(
    store: &dyn Store,
    target: &str,
    way: Option<Way>,
) -> Result<Option<Found>, store::Error> {
    let hex = target.strip_prefix(artifact::PREFIX).unwrap_or(target);
    let as_artifact = artifact::parse_reference(&format!("{}{hex}", artifact::PREFIX));
    let mut edges = Vec::new();
    let (kind, roots) = match as_artifact {
        Some(digest) => (TargetKind::Artifact, vec![digest]),
        None => {
            let own = store.lineage_of_execution(target).await?;
            if own.is_empty() && store.execution(target).await?.is_none() {
                return Ok(None);
            }
            let roots: BTreeSet<Digest> = own.iter().map(|e| e.digest.clone()).collect();
            edges.extend(own);
            (TargetKind::Execution, roots.into_iter().collect())
        }
    };
    if way != Some(Way::Downstream) {
        edges.extend(follow(store, roots.clone(), Way::Upstream).await?);
    }
    if way != Some(Way::Upstream) {
        edges.extend(follow(store, roots, Way::Downstream).await?);
    }
    let mut unique = HashSet::new();
    edges.retain(|e| {
        unique.insert((
            e.execution.clone(),
            e.node.clone(),
            e.direction,
            e.name.clone(),
            e.digest.clone(),
        ))
    });
    edges.sort_by(|a, b| (a.at, &a.execution, &a.node).cmp(&(b.at, &b.execution, &b.node)));
    Ok(Some(Found { kind, edges }))
}
