//! Lineage (DESIGN.md section 8, I5): following artifacts through the node
//! executions that produced and read them, back to the commits that defined
//! those nodes; and OpenLineage events for other tools.

pub mod openlineage;

use std::collections::{HashSet, VecDeque};

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

/// Every edge reached from `start` going `way`. Each step is two indexed
/// queries (the artifact's edges, then the node's), so the cost follows the
/// size of the lineage found, not of the store.
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
    let mut queue: VecDeque<Digest> = start.into();
    while let Some(digest) = queue.pop_front() {
        for edge in store.lineage_of_artifact(&digest).await? {
            if edge.direction != via {
                continue;
            }
            let node = (edge.execution.clone(), edge.node.clone());
            edges.push(edge);
            if !nodes_seen.insert(node.clone()) {
                continue;
            }
            for other in store.lineage_of_execution(&node.0).await? {
                if other.node != node.1 || other.direction != next {
                    continue;
                }
                if seen.insert(other.digest.clone()) {
                    queue.push_back(other.digest.clone());
                }
                edges.push(other);
            }
        }
    }
    Ok(edges)
}
