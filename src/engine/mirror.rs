//! What the engine keeps between the steps of the executions it drives,
//! so that a step costs what changed, not the size of the workflow: each
//! execution's plan, parsed once and indexed by node path (a plan never
//! changes), and its node rows as the store has them ([`NodeMirror`]).
//!
//! The mirror is written through: every node row this engine writes
//! reaches it once the write is committed (the pass's transaction, or an
//! attempt's handle written at once), and a row is read from the store
//! only when the mirror has none for its execution. What it must not do:
//! outlive a doubt. It is dropped whole by a full pass (the safety net,
//! which also follows a leadership change), when leadership is lost, and
//! when a pass fails; an execution's entry goes when it ends.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use serde::Deserialize as _;

use super::{Plan, PlanNode};
use crate::executor::lock;
use crate::spec::ExecutionId;
use crate::store::execution::{EngineWrite, NodeState};

/// A plan and where each node path is in it.
#[derive(Debug)]
pub struct IndexedPlan {
    plan: Plan,
    at: HashMap<String, usize>,
}

impl IndexedPlan {
    pub fn new(plan: Plan) -> IndexedPlan {
        let at = plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.path.clone(), i))
            .collect();
        IndexedPlan { plan, at }
    }

    /// The node at `path`; for an item of a map node (`train[3]`), the
    /// map node.
    pub fn node(&self, path: &str) -> Option<&PlanNode> {
        let at = self
            .at
            .get(path)
            .or_else(|| self.at.get(super::plan::item_of(path)?.0))?;
        Some(&self.plan.nodes[*at])
    }
}

impl Deref for IndexedPlan {
    type Target = Plan;

    fn deref(&self) -> &Plan {
        &self.plan
    }
}

/// The node rows of executions, as the store has them.
#[derive(Debug, Default)]
pub struct NodeMirror {
    executions: Mutex<HashMap<ExecutionId, Rows>>,
}

/// One execution's rows and where each node's is.
#[derive(Debug)]
struct Rows {
    nodes: Vec<NodeState>,
    at: HashMap<String, usize>,
}

impl NodeMirror {
    /// A copy of `execution`'s rows, if the mirror has them.
    pub fn get(&self, execution: &ExecutionId) -> Option<Vec<NodeState>> {
        lock(&self.executions)
            .get(execution)
            .map(|rows| rows.nodes.clone())
    }

    /// `execution`'s rows as just read from the store.
    pub fn fill(&self, execution: &ExecutionId, nodes: &[NodeState]) {
        let at = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.node.clone(), i))
            .collect();
        lock(&self.executions).insert(
            execution.clone(),
            Rows {
                nodes: nodes.to_vec(),
                at,
            },
        );
    }

    /// Committed writes: each node row replaces the mirror's (of an
    /// execution it has); an execution that ended is dropped.
    pub fn written(&self, writes: &[EngineWrite]) {
        let mut executions = lock(&self.executions);
        for write in writes {
            match write {
                EngineWrite::Node(node) | EngineWrite::Completed { node, .. } => {
                    replace(&mut executions, node);
                }
                EngineWrite::Execution(execution) if execution.status.is_terminal() => {
                    executions.remove(&execution.id);
                }
                EngineWrite::Execution(_) => {}
                EngineWrite::Expanded { node, items } => {
                    replace(&mut executions, node);
                    if let Some(rows) = executions.get_mut(&node.execution) {
                        for item in items {
                            rows.at.insert(item.node.clone(), rows.nodes.len());
                            rows.nodes.push(item.clone());
                        }
                    }
                }
            }
        }
    }

    /// One node row written at once (an attempt's handle).
    pub fn node_written(&self, node: &NodeState) {
        replace(&mut lock(&self.executions), node);
    }

    /// Everything: the next steps read the store.
    pub fn forget(&self) {
        lock(&self.executions).clear();
    }
}

fn replace(executions: &mut HashMap<ExecutionId, Rows>, node: &NodeState) {
    let Some(rows) = executions.get_mut(&node.execution) else {
        return;
    };
    match rows.at.get(&node.node) {
        Some(&i) => rows.nodes[i] = node.clone(),
        // A row the mirror does not know: it no longer says what the
        // store has.
        None => {
            executions.remove(&node.execution);
        }
    }
}

/// Parsed plans by execution.
#[derive(Debug, Default)]
pub struct Plans {
    plans: Mutex<HashMap<ExecutionId, Arc<IndexedPlan>>>,
}

impl Plans {
    /// `execution`'s plan, parsed from `text` the first time.
    pub fn get_or_parse(
        &self,
        execution: &ExecutionId,
        text: &serde_json::Value,
    ) -> Result<Arc<IndexedPlan>, serde_json::Error> {
        if let Some(plan) = lock(&self.plans).get(execution) {
            return Ok(plan.clone());
        }
        let plan = Arc::new(IndexedPlan::new(Plan::deserialize(text)?));
        lock(&self.plans).insert(execution.clone(), plan.clone());
        Ok(plan)
    }

    /// `execution` ended: its plan is not needed any more.
    pub fn ended(&self, execution: &ExecutionId) {
        lock(&self.plans).remove(execution);
    }

    pub fn forget(&self) {
        lock(&self.plans).clear();
    }
}
