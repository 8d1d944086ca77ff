//! Lineage (DESIGN.md section 8, I5): following artifacts through the node
//! executions that produced and read them, back to the commits that defined
//! those nodes; and OpenLineage events for other tools.

pub mod openlineage;

use std::collections::HashSet;

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
