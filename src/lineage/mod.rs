//! Lineage (DESIGN.md section 8, I5): following artifacts through the node
//! executions that produced and read them, back to the commits that defined
//! those nodes; and OpenLineage events for other tools.
//!
//! What it guarantees: an *artifact* (a file or directory, named by its
//! content digest) links every node execution that produced or read it,
//! across executions: two runs that share a file share lineage. A *value*
//! (an int, a string, a date: anything else, keyed in the store by the
//! digest of its JSON) links nodes of one execution only: its lineage is
//! the node of that execution that produced it, never every node that ever
//! produced the same value (the same `day` or `rows: 3` in 120 unrelated
//! runs is not lineage, and following it would make the cost grow with the
//! history). Whether an edge is an artifact is read from the value the node
//! recorded at that port (an artifact reference or not), so stores written
//! before this rule are followed by it too.

pub mod openlineage;

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::artifact;
use crate::spec::{Digest, ExecutionId};
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

/// A node execution: (execution id, node path).
type NodeKey = (ExecutionId, String);

/// The ports of one execution's nodes that carry an artifact, as
/// (node, direction, port); every other edge of the execution is a value.
type ArtifactPorts = HashSet<(String, Direction, String)>;

/// What the walk has read of the executions it reached, each once.
#[derive(Default)]
struct Executions {
    artifact_ports: HashMap<ExecutionId, ArtifactPorts>,
    edges: HashMap<ExecutionId, Vec<LineageEdge>>,
}

impl Executions {
    /// Whether `edge` names an artifact (joined across executions) rather
    /// than a value (followed within its execution only).
    async fn is_artifact(
        &mut self,
        store: &dyn Store,
        edge: &LineageEdge,
    ) -> Result<bool, store::Error> {
        if !self.artifact_ports.contains_key(&edge.execution) {
            let ports = artifact_ports(&store.nodes(&edge.execution).await?);
            self.artifact_ports.insert(edge.execution.clone(), ports);
        }
        Ok(self.artifact_ports[&edge.execution].contains(&(
            edge.node.clone(),
            edge.direction,
            edge.name.clone(),
        )))
    }

    /// The edges of `execution` (read once).
    async fn edges(
        &mut self,
        store: &dyn Store,
        execution: &ExecutionId,
    ) -> Result<&[LineageEdge], store::Error> {
        if !self.edges.contains_key(execution) {
            let edges = store.lineage_of_execution(execution).await?;
            self.edges.insert(execution.clone(), edges);
        }
        Ok(&self.edges[execution])
    }
}

/// The ports whose recorded value is an artifact reference.
fn artifact_ports(nodes: &[store::NodeState]) -> ArtifactPorts {
    let mut ports = ArtifactPorts::new();
    for node in nodes {
        for (direction, values) in [
            (Direction::Input, &node.inputs),
            (Direction::Output, &node.outputs),
        ] {
            let Some(Value::Object(map)) = values else {
                continue;
            };
            for (name, value) in map {
                if value.as_str().and_then(artifact::parse_reference).is_some() {
                    ports.insert((node.node.clone(), direction, name.clone()));
                }
            }
        }
    }
    ports
}

/// Every edge reached from the artifacts `start` going `way`, level by
/// level. Artifacts are followed across executions (two batched queries
/// per level: the artifacts' edges, then their nodes'), and each execution
/// reached adds one `store.nodes()` for its nodes; a value only to the
/// nodes of its own execution that carry it. The cost follows the
/// depth and size of the lineage found, not the store.
pub async fn follow(
    store: &dyn Store,
    start: Vec<Digest>,
    way: Way,
) -> Result<Vec<LineageEdge>, store::Error> {
    let (via, next) = match way {
        Way::Upstream => (Direction::Output, Direction::Input),
        Way::Downstream => (Direction::Input, Direction::Output),
    };
    let mut executions = Executions::default();
    let mut edges = Vec::new();
    let mut seen: HashSet<Digest> = start.iter().cloned().collect();
    let mut values_seen: HashSet<(ExecutionId, Digest)> = HashSet::new();
    let mut nodes_seen: HashSet<NodeKey> = HashSet::new();
    let mut frontier = start;
    let mut value_frontier: Vec<(ExecutionId, Digest)> = Vec::new();
    while !frontier.is_empty() || !value_frontier.is_empty() {
        let mut nodes = Vec::new();
        let mut reach = |edge: &LineageEdge, edges: &mut Vec<LineageEdge>| {
            let node = (edge.execution.clone(), edge.node.clone());
            if nodes_seen.insert(node.clone()) {
                nodes.push(node);
            }
            edges.push(edge.clone());
        };
        if !frontier.is_empty() {
            for edge in store.lineage_of_artifacts(&frontier).await? {
                if edge.direction == via && executions.is_artifact(store, &edge).await? {
                    reach(&edge, &mut edges);
                }
            }
        }
        for (execution, digest) in std::mem::take(&mut value_frontier) {
            let carriers: Vec<LineageEdge> = executions
                .edges(store, &execution)
                .await?
                .iter()
                .filter(|e| e.direction == via && e.digest == digest)
                .cloned()
                .collect();
            for edge in carriers {
                if !executions.is_artifact(store, &edge).await? {
                    reach(&edge, &mut edges);
                }
            }
        }
        frontier = Vec::new();
        if nodes.is_empty() {
            break;
        }
        for edge in store.lineage_of_nodes(&nodes).await? {
            if edge.direction != next {
                continue;
            }
            if executions.is_artifact(store, &edge).await? {
                if seen.insert(edge.digest.clone()) {
                    frontier.push(edge.digest.clone());
                }
            } else {
                let value = (edge.execution.clone(), edge.digest.clone());
                if values_seen.insert(value.clone()) {
                    value_frontier.push(value);
                }
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
            let id = ExecutionId::from(target);
            let own = store.lineage_of_execution(&id).await?;
            if own.is_empty() && store.execution(&id).await?.is_none() {
                return Ok(None);
            }
            // Its own edges hold all its values; only its artifacts lead
            // to other executions.
            let ports = artifact_ports(&store.nodes(&id).await?);
            let roots: BTreeSet<Digest> = own
                .iter()
                .filter(|e| ports.contains(&(e.node.clone(), e.direction, e.name.clone())))
                .map(|e| e.digest.clone())
                .collect();
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
