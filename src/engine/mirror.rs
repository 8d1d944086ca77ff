//! What the engine keeps between the steps of the executions it drives,
//! so that a step costs what changed, not the size of the workflow: each
//! execution's plan, parsed once and indexed by node path (a plan never
//! changes), and its node rows as the store has them ([`NodeMirror`]).
//!
//! The mirror is written through: every node row this engine writes
//! reaches it once the write is committed (the pass's transaction, or an
//! attempt's handle written at once), and a row is read from the store
//! only when the mirror has none for its execution. A step takes its
//! execution's rows out (no copy) and puts them back as it left them, its
//! writes buffered for the pass's transaction; should that fail, the whole
//! mirror is forgotten, and should the step fail, its execution's rows. What it must not do:
//! outlive a doubt. It is dropped whole by a full pass (the safety net,
//! which also follows a leadership change), when leadership is lost, and
//! when a pass fails; an execution's entry goes when it ends.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use serde::Deserialize as _;

use super::{Plan, PlanNode};
use crate::executor::lock;
use crate::spec::ExecutionId;
use crate::store::execution::{EngineWrite, NodeState};

/// A plan and where each node path is in it (and in the sub-workflow
/// plans of its maps over sub-workflows).
#[derive(Debug)]
pub struct IndexedPlan {
    plan: Plan,
    at: HashMap<String, usize>,
    /// By map node path: where each node path of its sub-workflow's plan is.
    within: HashMap<String, HashMap<String, usize>>,
}

fn index(plan: &Plan) -> HashMap<String, usize> {
    plan.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.path.clone(), i))
        .collect()
}

impl IndexedPlan {
    pub fn new(plan: Plan) -> IndexedPlan {
        let at = index(&plan);
        let within = plan
            .nodes
            .iter()
            .filter_map(|n| Some((n.path.clone(), index(n.mapped_workflow()?))))
            .collect();
        IndexedPlan { plan, at, within }
    }

    /// The node at `path`; for an item of a map node (`train[3]`), the
    /// map node; for a node of an item of a map over a sub-workflow
    /// (`fit[3]/train`), that sub-workflow's node as the item runs it.
    pub fn node(&self, path: &str) -> Option<Cow<'_, PlanNode>> {
        if let Some(&at) = self.at.get(path) {
            return Some(Cow::Borrowed(&self.plan.nodes[at]));
        }
        if let Some((group, inner)) = super::plan::group_of(path) {
            let (map, _) = super::plan::item_of(group)?;
            let workflow = self.plan.nodes[*self.at.get(map)?].mapped_workflow()?;
            let node = &workflow.nodes[*self.within.get(map)?.get(inner)?];
            return Some(Cow::Owned(node.under(&path[..path.len() - inner.len()])));
        }
        let map = super::plan::item_of(path)?.0;
        Some(Cow::Borrowed(&self.plan.nodes[*self.at.get(map)?]))
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
    executions: Mutex<HashMap<ExecutionId, Entry>>,
}

#[derive(Debug)]
enum Entry {
    Here(Box<Rows>),
    /// A step has the rows ([`NodeMirror::take`]); the handles written
    /// meanwhile, to apply when they come back.
    Taken(Vec<NodeState>),
}

/// One execution's rows, indexed: where each node's is, which rows are
/// items of a map node, and for each pending row a dependency it was last
/// seen waiting for (so a step need not look at its dependencies again
/// until that one is done).
#[derive(Debug, Default)]
pub struct Rows {
    pub nodes: Vec<NodeState>,
    at: HashMap<String, usize>,
    /// Each item row's map node row.
    parent: Vec<Option<usize>>,
    /// Each map node row's item rows, in item order.
    items: HashMap<usize, Vec<usize>>,
    /// Each row of a node of an item of a map over a sub-workflow
    /// (`fit[3]/train`): the item's row (`fit[3]`).
    group: Vec<Option<usize>>,
    /// Each such item row's node rows.
    members: HashMap<usize, Vec<usize>>,
    /// A dependency (row) a pending row was last seen waiting for.
    pub(super) blocked_on: Vec<Option<usize>>,
}

impl Rows {
    pub fn new(nodes: Vec<NodeState>) -> Rows {
        let mut rows = Rows::default();
        for node in nodes {
            rows.push(node);
        }
        rows
    }

    /// Adds a row (a map node's item after the node's, an item's node
    /// after the item's).
    pub fn push(&mut self, node: NodeState) {
        let i = self.nodes.len();
        let parent = super::plan::item_of(&node.node).and_then(|(map, _)| self.index(map));
        if let Some(p) = parent {
            self.items.entry(p).or_default().push(i);
        }
        let group = super::plan::group_of(&node.node).and_then(|(g, _)| self.index(g));
        if let Some(g) = group {
            self.members.entry(g).or_default().push(i);
        }
        self.at.insert(node.node.clone(), i);
        self.parent.push(parent);
        self.group.push(group);
        self.blocked_on.push(None);
        self.nodes.push(node);
    }

    /// The row of the node at `path`.
    pub fn index(&self, path: &str) -> Option<usize> {
        self.at.get(path).copied()
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&NodeState> {
        self.index(path).map(|i| &self.nodes[i])
    }

    /// Whether row `i` is an item of a map node.
    pub fn is_item(&self, i: usize) -> bool {
        self.parent[i].is_some()
    }

    /// The map node row of item row `i`.
    pub fn parent_of(&self, i: usize) -> Option<usize> {
        self.parent[i]
    }

    /// The item rows of map node row `i`, in item order.
    pub fn items_of(&self, i: usize) -> &[usize] {
        self.items.get(&i).map_or(&[], Vec::as_slice)
    }

    /// The item row whose sub-workflow row `i` is a node of.
    pub fn group_of(&self, i: usize) -> Option<usize> {
        self.group[i]
    }

    /// The node rows of item row `i` of a map over a sub-workflow.
    pub fn members_of(&self, i: usize) -> &[usize] {
        self.members.get(&i).map_or(&[], Vec::as_slice)
    }

    /// The item rows (of maps over sub-workflows) that have node rows.
    pub fn groups(&self) -> impl Iterator<Item = usize> + '_ {
        self.members.keys().copied()
    }

    /// The map node rows that have items.
    pub fn maps(&self) -> impl Iterator<Item = usize> + '_ {
        self.items.keys().copied()
    }
}

impl NodeMirror {
    /// `execution`'s rows, taken until [`NodeMirror::put_back`], if the
    /// mirror has them.
    pub fn take(&self, execution: &ExecutionId) -> Option<Rows> {
        let mut executions = lock(&self.executions);
        match executions.get_mut(execution)? {
            Entry::Taken(_) => None,
            entry => match std::mem::replace(entry, Entry::Taken(Vec::new())) {
                Entry::Here(rows) => Some(*rows),
                Entry::Taken(_) => None,
            },
        }
    }

    /// [`NodeMirror::take`], or, when the mirror has no rows for
    /// `execution`, a place for them (the caller reads them from the store
    /// and puts them back).
    pub fn take_or_hold(&self, execution: &ExecutionId) -> Option<Rows> {
        let taken = self.take(execution);
        if taken.is_none() {
            lock(&self.executions)
                .entry(execution.clone())
                .or_insert(Entry::Taken(Vec::new()));
        }
        taken
    }

    /// `execution`'s rows as a step left them (its writes buffered, to be
    /// committed with the pass: a pass that fails forgets the mirror), with
    /// the handles written meanwhile. Rows forgotten meanwhile are not put
    /// back.
    pub fn put_back(&self, execution: &ExecutionId, mut rows: Rows) {
        let mut executions = lock(&self.executions);
        let Some(entry) = executions.get_mut(execution) else {
            return;
        };
        if let Entry::Taken(handles) = entry {
            for written in handles.drain(..) {
                if let Some(i) = rows.index(&written.node) {
                    let row = &mut rows.nodes[i];
                    if row.attempts == written.attempts {
                        row.handle = written.handle;
                    }
                }
            }
        }
        *entry = Entry::Here(Box::new(rows));
    }

    /// Committed writes: each node row replaces the mirror's (of an
    /// execution it has; a step that has them holds newer ones); an
    /// execution that ended is dropped.
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
                    if let Some(Entry::Here(rows)) = executions.get_mut(&node.execution) {
                        for item in items {
                            if rows.index(&item.node).is_none() {
                                rows.push(item.clone());
                            }
                        }
                    }
                }
            }
        }
    }

    /// One node row written at once (an attempt's handle).
    pub fn node_written(&self, node: &NodeState) {
        let mut executions = lock(&self.executions);
        match executions.get_mut(&node.execution) {
            Some(Entry::Taken(handles)) => handles.push(node.clone()),
            _ => replace(&mut executions, node),
        }
    }

    /// `execution`'s rows: a step that failed leaves them in doubt.
    pub fn drop_execution(&self, execution: &ExecutionId) {
        lock(&self.executions).remove(execution);
    }

    /// Everything: the next steps read the store.
    pub fn forget(&self) {
        lock(&self.executions).clear();
    }
}

fn replace(executions: &mut HashMap<ExecutionId, Entry>, node: &NodeState) {
    let Some(Entry::Here(rows)) = executions.get_mut(&node.execution) else {
        return;
    };
    match rows.index(&node.node) {
        Some(i) => rows.nodes[i] = node.clone(),
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
