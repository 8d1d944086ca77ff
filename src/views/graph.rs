//! A workflow as a graph: its nodes (each with its task, task version and
//! task type) and the edges between them, from bindings and `after`. What
//! the console draws for a workflow version and for an execution (where
//! it colours each node by its status).
//!
//! An execution's graph is its plan's, so it shows exactly the task
//! versions that ran; a workflow version's is read from its spec, so it
//! names tasks, not versions (which version of a task a workflow runs is
//! decided when an execution is created, from the active set then).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::plan::{APPROVE, Plan, WORKFLOW};
use crate::spec::{Definition, ExecutionId, Kind, WorkflowSpec};
use crate::store::{self, Store, VersionKey};

/// The nodes and edges of a workflow, nodes in the order written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphView {
    pub nodes: Vec<GraphNode>,
    /// `(from, to)`: `to` needs `from` first.
    pub edges: Vec<(String, String)>,
}

/// One node of a [`GraphView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphNode {
    /// Its path (`train`, `fit/train` inside sub-workflow `fit`).
    pub id: String,
    /// The task it runs, or the sub-workflow (`kind: workflow`).
    pub task: String,
    /// 12 hex (an execution's graph only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_version: Option<String>,
    /// `script`, `spark`, `sql`, … ; `approve` for a gate, `workflow` for a
    /// sub-workflow (a workflow version's graph does not inline them).
    pub kind: String,
    /// Runs once per item of a list.
    pub map: bool,
    /// Has a `when:` condition.
    pub conditional: bool,
}

impl GraphView {
    /// The graph of an execution's plan (sub-workflows inlined, as run).
    pub fn of_plan(plan: &Plan) -> GraphView {
        let nodes = plan
            .nodes
            .iter()
            .map(|n| GraphNode {
                id: n.path.clone(),
                task: n.task.clone(),
                task_version: Some(n.task_version.short().to_owned()),
                kind: if n.task == APPROVE {
                    APPROVE.to_owned()
                } else {
                    n.spec.body.type_name.clone()
                },
                map: n.map.is_some(),
                conditional: !n.when.is_empty(),
            })
            .collect();
        let edges = plan
            .nodes
            .iter()
            .flat_map(|n| n.deps.iter().map(|d| (d.clone(), n.path.clone())))
            .collect();
        GraphView { nodes, edges }
    }

    /// The graph of a workflow as written: a sub-workflow is one node.
    pub fn of_workflow(spec: &WorkflowSpec) -> GraphView {
        let ids: BTreeSet<&str> = spec.nodes.iter().map(|n| n.id.as_str()).collect();
        let mut edges = Vec::new();
        let nodes = spec
            .nodes
            .iter()
            .map(|n| {
                let mut from = BTreeSet::new();
                for value in n.inputs.values() {
                    referenced_nodes(value, &mut from);
                }
                if let Some(map) = &n.map {
                    referenced_nodes(&map.over, &mut from);
                }
                if let Some(when) = &n.when {
                    referenced_nodes(&Value::String(when.clone()), &mut from);
                }
                from.extend(n.after.iter().cloned());
                edges.extend(
                    from.into_iter()
                        .filter(|f| ids.contains(f.as_str()) && f != &n.id)
                        .map(|f| (f, n.id.clone())),
                );
                let (task, kind) = match (&n.task, &n.workflow) {
                    (_, Some(workflow)) => (workflow.clone(), WORKFLOW.to_owned()),
                    (Some(task), None) => (task.clone(), String::new()),
                    (None, None) => (APPROVE.to_owned(), APPROVE.to_owned()),
                };
                GraphNode {
                    id: n.id.clone(),
                    task,
                    task_version: None,
                    kind,
                    map: n.map.is_some(),
                    conditional: n.when.is_some(),
                }
            })
            .collect();
        GraphView { nodes, edges }
    }
}

/// Adds the ids of the nodes `value` reads (`nodes.<id>.` in any string
/// in it: a template, a condition) to `found`.
fn referenced_nodes(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(at) = rest.find("nodes.") {
                let before = rest[..at].chars().next_back();
                rest = &rest[at + "nodes.".len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                    continue;
                }
                let id: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                if !id.is_empty() {
                    found.insert(id);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| referenced_nodes(v, found)),
        Value::Object(fields) => fields.values().for_each(|v| referenced_nodes(v, found)),
        _ => {}
    }
}

/// The graph execution `id` runs; `None` when there is no such execution.
pub async fn execution_graph(
    store: &dyn Store,
    id: &ExecutionId,
) -> Result<Option<GraphView>, store::Error> {
    let Some(execution) = store.execution(id).await? else {
        return Ok(None);
    };
    let plan: Plan =
        serde_json::from_value((*execution.plan).clone()).map_err(|e| store::Error::Corrupt {
            doing: "reading an execution's plan",
            message: format!("the plan of execution `{id}` cannot be read: {e}"),
        })?;
    Ok(Some(GraphView::of_plan(&plan)))
}

/// The graph of a workflow version; `None` when there is no such version
/// (or `key` is not a workflow's). Task nodes' `kind` is empty: which
/// version of a task runs, and so its type, is decided per execution.
pub async fn workflow_graph(
    store: &dyn Store,
    key: &VersionKey,
) -> Result<Option<GraphView>, store::Error> {
    if key.entity.kind != Kind::Workflow {
        return Ok(None);
    }
    let Some(document) = store.version_document(key).await? else {
        return Ok(None);
    };
    match Definition::from_json(Kind::Workflow, document) {
        Ok(Definition::Workflow(workflow)) => Ok(Some(GraphView::of_workflow(&workflow.spec))),
        Ok(_) => Ok(None),
        Err(e) => Err(store::Error::Corrupt {
            doing: "reading a workflow's document",
            message: format!("{} cannot be read: {e}", key.entity),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn edges_come_from_templates_conditions_maps_and_after() {
        let spec: WorkflowSpec = serde_json::from_value(json!({
            "nodes": [
                { "id": "split", "task": "split" },
                { "id": "fit", "task": "fit",
                  "map": { "over": "{{ nodes.split.outputs.folds }}", "as": "fold" } },
                { "id": "gate", "approve": { "prompt": "ship?", "timeout": "1h" },
                  "when": "nodes.fit.outputs.auc[0] > 0.5 && inputs.nodes_x" },
                { "id": "report", "workflow": "report", "after": ["gate"],
                  "inputs": { "x": "{{nodes.split.outputs.n}} of xnodes.fit.y" } },
            ]
        }))
        .expect("a workflow");
        let graph = GraphView::of_workflow(&spec);
        let edges: Vec<(&str, &str)> = graph
            .edges
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            edges,
            [
                ("split", "fit"),
                ("fit", "gate"),
                ("gate", "report"),
                ("split", "report")
            ]
        );
        let kinds: Vec<&str> = graph.nodes.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(kinds, ["", "", "approve", "workflow"]);
        assert!(graph.nodes[1].map && graph.nodes[2].conditional);
    }
}
