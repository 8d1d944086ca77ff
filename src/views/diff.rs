//! What changed between two executions of one workflow: `weir diff
//! EXECUTION [BASE] -o json` and `GET /api/v1/executions/{id}/diff[/{base}]`
//! (DESIGN.md sections 1 and 8: "what changed between the last good run
//! and this one").
//!
//! A diff goes *from* the base *to* the execution: the commits that touched
//! the definitions in between (read from the source's Git history, see
//! [`crate::source::history`]; when it cannot be read the diff says why and
//! gives the rest), the workflow's inputs and outputs that differ, and per
//! node whether its task version is the same or changed (with a unified
//! diff of the two canonical documents as YAML), the node's inputs and
//! outputs that differ (files as artifact digests), and whether it was
//! served from the cache.
//!
//! Without a base, the base is the last succeeded execution of the same
//! launch plan and workflow created before the execution ([`base_of`]).
//! The definitions' diff is rendered in `definitions`.

mod base;
mod definitions;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use base::base_of;
use definitions::{Documents, label, unified};

use super::{instant, to_millis};
use crate::source::history;
use crate::spec::{CommitId, Digest, EntityRef, ExecutionId, Kind};
use crate::store::execution::{Execution, NodeState, NodeStatus, Status};
use crate::store::{self, CommitInfo, Store};

/// Why there is no diff to show.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("no execution `{0}`")]
    UnknownExecution(ExecutionId),
    #[error(
        "`{execution}` ran workflow {workflow} but `{base}` ran {base_workflow}: a diff compares two executions of one workflow"
    )]
    DifferentWorkflows {
        execution: ExecutionId,
        workflow: String,
        base: ExecutionId,
        base_workflow: String,
    },
    #[error(
        "`{0}` was not started from a launch plan, so there is no earlier run to compare it with: name one (weir diff {0} BASE)"
    )]
    NoLaunchPlan(ExecutionId),
    #[error(
        "no execution of launch plan {launch_plan} succeeded before `{execution}`: name the one to compare it with (weir diff {execution} BASE)"
    )]
    NoBase {
        execution: ExecutionId,
        launch_plan: String,
    },
}

/// The diff of two executions; `from` is the base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffView {
    pub project: String,
    pub workflow: String,
    pub from: SideView,
    pub to: SideView,
    pub commits: CommitsView,
    /// The workflow's inputs that differ, by name.
    pub inputs: Vec<ValueChange>,
    /// The workflow's outputs that differ, by name.
    pub outputs: Vec<ValueChange>,
    /// A unified diff of the workflow's two canonical documents, when they
    /// differ (a new task version alone changes the workflow's version,
    /// not its document).
    pub workflow_definition: Option<String>,
    /// `to`'s nodes in plan order, then those only `from` had.
    pub nodes: Vec<NodeDiff>,
}

/// One of the two executions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SideView {
    pub id: ExecutionId,
    pub status: Status,
    /// 12 hex, as versions are shown.
    pub workflow_version: String,
    pub launch_plan: Option<String>,
    pub launch_plan_version: Option<String>,
    /// The commit where the workflow version first appeared.
    pub commit: CommitId,
    #[serde(serialize_with = "instant::millis")]
    pub created_at: DateTime<Utc>,
}

/// The commits between the two executions' commits that touched the
/// source's definitions, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitsView {
    /// In `to`'s history and not in `from`'s: what the execution has that
    /// its base had not.
    pub added: Vec<CommitView>,
    /// In `from`'s history and not in `to`'s (`to` runs an older version,
    /// e.g. after a revert).
    pub removed: Vec<CommitView>,
    /// More commits than [`history::MAX_COMMITS`] each way: the lists stop there.
    pub truncated: bool,
    /// Why the history could not be read (the rest of the diff stands).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitView {
    pub id: CommitId,
    /// The first line of the message.
    pub subject: String,
    pub author: String,
    #[serde(serialize_with = "instant::millis")]
    pub time: DateTime<Utc>,
}

/// A named value that differs; `None` where a side has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueChange {
    pub name: String,
    pub from: Option<Value>,
    pub to: Option<Value>,
}

/// How a node's task version compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    Same,
    Changed,
    /// Only `to` has the node.
    Added,
    /// Only `from` has the node.
    Removed,
}

/// One node of either execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeDiff {
    /// The node's path: `train`, or `fit/train` inside sub-workflow `fit`.
    pub id: String,
    pub change: Change,
    pub from: Option<NodeSide>,
    pub to: Option<NodeSide>,
    /// A unified diff of the two tasks' canonical documents as YAML, when
    /// the version changed and the documents differ.
    pub definition: Option<String>,
    pub inputs: Vec<ValueChange>,
    pub outputs: Vec<ValueChange>,
}

/// A node as one execution ran it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSide {
    pub task: String,
    /// 12 hex.
    pub task_version: String,
    pub status: NodeStatus,
    /// Served from the cache (of `cachedFrom`).
    pub cached: bool,
    pub cached_from: Option<ExecutionId>,
}

/// The diff from `base` (by default: the last succeeded execution of the
/// same launch plan before it) to execution `id`. `state_dir` holds the
/// clones of remote sources; without it only a local source's commits are
/// listed.
pub async fn diff(
    store: &dyn Store,
    state_dir: Option<&Path>,
    id: &ExecutionId,
    base: Option<&ExecutionId>,
) -> Result<DiffView, DiffError> {
    let to = find(store, id).await?;
    let from = match base {
        Some(base) => find(store, base).await?,
        None => base_of(store, &to).await?,
    };
    if (&from.project, &from.workflow) != (&to.project, &to.workflow) {
        return Err(DiffError::DifferentWorkflows {
            execution: to.id,
            workflow: format!("{}/{}", to.project, to.workflow),
            base: from.id,
            base_workflow: format!("{}/{}", from.project, from.workflow),
        });
    }
    let from_nodes = store.nodes(&from.id).await?;
    let to_nodes = store.nodes(&to.id).await?;
    let commits = commits(state_dir, &from, &to).await;
    let mut documents = Documents::new(store, &to.project);
    let workflow_definition = if from.workflow_version == to.workflow_version {
        None
    } else {
        let old = documents.yaml(Kind::Workflow, &from.workflow, &from.workflow_version);
        let old = old.await?;
        let new = documents.yaml(Kind::Workflow, &to.workflow, &to.workflow_version);
        let labels = (
            label(&from.workflow, &from.workflow_version),
            label(&to.workflow, &to.workflow_version),
        );
        unified(&old, &new.await?, labels)
    };
    let mut nodes = Vec::new();
    for (old, new) in pair_nodes(&from_nodes, &to_nodes) {
        nodes.push(node_diff(&mut documents, old, new).await?);
    }
    Ok(DiffView {
        project: to.project.clone(),
        workflow: to.workflow.clone(),
        inputs: changes(Some(&from.inputs), Some(&to.inputs)),
        outputs: changes(from.outputs.as_ref(), to.outputs.as_ref()),
        from: SideView::from(&from),
        to: SideView::from(&to),
        commits,
        workflow_definition,
        nodes,
    })
}

/// A unified diff of two versions of one entity (`from` the older): their
/// canonical documents as YAML, as `weir diff` shows a definition that
/// changed; `None` when they read the same.
pub async fn version_diff(
    store: &dyn Store,
    entity: &EntityRef,
    from: &Digest,
    to: &Digest,
) -> Result<Option<String>, store::Error> {
    let mut documents = Documents::new(store, &entity.project);
    let old = documents.yaml(entity.kind, &entity.name, from).await?;
    let new = documents.yaml(entity.kind, &entity.name, to).await?;
    let labels = (label(&entity.name, from), label(&entity.name, to));
    Ok(unified(&old, &new, labels))
}

async fn find(store: &dyn Store, id: &ExecutionId) -> Result<Execution, DiffError> {
    store
        .execution(id)
        .await?
        .ok_or_else(|| DiffError::UnknownExecution(id.clone()))
}

/// The commits between the two executions' commits; a history that cannot
/// be read is said in `error`.
async fn commits(state_dir: Option<&Path>, from: &Execution, to: &Execution) -> CommitsView {
    let state_dir = state_dir.map(Path::to_path_buf);
    let (source, old, new) = (to.source.clone(), from.commit.clone(), to.commit.clone());
    let walked = tokio::task::spawn_blocking(move || {
        history::between(state_dir.as_deref(), &source, &old, &new).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(format!("the history walk failed: {e}")));
    let mut view = match walked {
        Ok(found) => CommitsView {
            added: found.added.iter().map(CommitView::from).collect(),
            removed: found.removed.iter().map(CommitView::from).collect(),
            truncated: found.truncated,
            error: None,
        },
        Err(error) => CommitsView {
            error: Some(error),
            ..CommitsView::default()
        },
    };
    if from.source != to.source && view.error.is_none() {
        view.error = Some(format!(
            "the base ran from source {} and the execution from {}: commits are listed from the latter",
            from.source.0, to.source.0
        ));
    }
    view
}

/// Nodes side by side, by path: `to`'s in plan order, then `from`'s others.
fn pair_nodes<'a>(
    from: &'a [NodeState],
    to: &'a [NodeState],
) -> Vec<(Option<&'a NodeState>, Option<&'a NodeState>)> {
    let old: HashMap<&str, &NodeState> = from.iter().map(|n| (n.node.as_str(), n)).collect();
    let new: BTreeSet<&str> = to.iter().map(|n| n.node.as_str()).collect();
    to.iter()
        .map(|n| (old.get(n.node.as_str()).copied(), Some(n)))
        .chain(
            from.iter()
                .filter(|n| !new.contains(n.node.as_str()))
                .map(|n| (Some(n), None)),
        )
        .collect()
}

async fn node_diff(
    documents: &mut Documents<'_>,
    from: Option<&NodeState>,
    to: Option<&NodeState>,
) -> Result<NodeDiff, DiffError> {
    let (change, definition) = match (from, to) {
        (Some(old), Some(new))
            if (&old.task, &old.task_version) == (&new.task, &new.task_version) =>
        {
            (Change::Same, None)
        }
        (Some(old), Some(new)) => {
            let before = documents
                .yaml(Kind::Task, &old.task, &old.task_version)
                .await?;
            let after = documents
                .yaml(Kind::Task, &new.task, &new.task_version)
                .await?;
            let labels = (
                label(&old.task, &old.task_version),
                label(&new.task, &new.task_version),
            );
            let diff = unified(&before, &after, labels);
            (Change::Changed, diff)
        }
        (None, _) => (Change::Added, None),
        (_, None) => (Change::Removed, None),
    };
    let id = to.or(from).map(|n| n.node.clone()).unwrap_or_default();
    Ok(NodeDiff {
        id,
        change,
        definition,
        inputs: changes(
            from.and_then(|n| n.inputs.as_ref()),
            to.and_then(|n| n.inputs.as_ref()),
        ),
        outputs: changes(
            from.and_then(|n| n.outputs.as_ref()),
            to.and_then(|n| n.outputs.as_ref()),
        ),
        from: from.map(NodeSide::from),
        to: to.map(NodeSide::from),
    })
}

/// The entries of two name → value maps that differ, by name. A side that
/// is not an object (or absent) has no entries.
fn changes(from: Option<&Value>, to: Option<&Value>) -> Vec<ValueChange> {
    let entries = |value: Option<&Value>| -> BTreeMap<String, Value> {
        match value {
            Some(Value::Object(map)) => map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            _ => BTreeMap::new(),
        }
    };
    let (old, new) = (entries(from), entries(to));
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter(|name| old.get(*name) != new.get(*name))
        .map(|name| ValueChange {
            name: name.clone(),
            from: old.get(name).cloned(),
            to: new.get(name).cloned(),
        })
        .collect()
}

impl From<&Execution> for SideView {
    fn from(e: &Execution) -> SideView {
        SideView {
            id: e.id.clone(),
            status: e.status,
            workflow_version: e.workflow_version.short().to_owned(),
            launch_plan: e.launch_plan.clone(),
            launch_plan_version: e.launch_plan_version.as_ref().map(|d| d.short().to_owned()),
            commit: e.commit.clone(),
            created_at: to_millis(e.created_at),
        }
    }
}

impl From<&CommitInfo> for CommitView {
    fn from(c: &CommitInfo) -> CommitView {
        CommitView {
            id: c.id.clone(),
            subject: c.message.lines().next().unwrap_or("").trim().to_owned(),
            author: c.author.name.clone(),
            time: to_millis(c.time),
        }
    }
}

impl From<&NodeState> for NodeSide {
    fn from(n: &NodeState) -> NodeSide {
        NodeSide {
            task: n.task.clone(),
            task_version: n.task_version.short().to_owned(),
            status: n.status,
            cached: n.cached_from.is_some(),
            cached_from: n.cached_from.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::Digest;
    use crate::views::{precise_instant, round_trip, to_json};

    fn node(path: &str, task: &str, version: char, outputs: Value) -> NodeState {
        NodeState {
            execution: "x".into(),
            node: path.into(),
            task: task.into(),
            task_version: Digest::from_hex(version.to_string().repeat(64)),
            status: NodeStatus::Succeeded,
            attempts: 1,
            inputs: Some(json!({})),
            outputs: Some(outputs),
            error: None,
            cached_from: None,
            started_at: None,
            finished_at: None,
            next_attempt_at: None,
            handle: None,
        }
    }

    #[test]
    fn only_values_that_differ_are_listed_by_name() {
        let from = json!({ "count": 3, "day": "2026-03-29", "gone": 1, "empty": null });
        let to = json!({ "count": 4, "day": "2026-03-29", "new": "x" });
        let names: Vec<(String, Option<Value>, Option<Value>)> = changes(Some(&from), Some(&to))
            .into_iter()
            .map(|c| (c.name, c.from, c.to))
            .collect();
        assert_eq!(
            names,
            [
                ("count".into(), Some(json!(3)), Some(json!(4))),
                ("gone".into(), Some(json!(1)), None),
                ("new".into(), None, Some(json!("x"))),
            ]
        );
        assert!(changes(None, Some(&json!({}))).is_empty());
    }

    #[test]
    fn nodes_pair_by_path_in_the_new_plan_order_then_the_removed() {
        let from = [
            node("a", "t", 'a', json!({})),
            node("old", "t", 'a', json!({})),
        ];
        let to = [
            node("new", "t", 'a', json!({})),
            node("a", "t", 'a', json!({})),
        ];
        let pairs: Vec<(Option<&str>, Option<&str>)> = pair_nodes(&from, &to)
            .into_iter()
            .map(|(o, n)| (o.map(|n| n.node.as_str()), n.map(|n| n.node.as_str())))
            .collect();
        assert_eq!(
            pairs,
            [
                (None, Some("new")),
                (Some("a"), Some("a")),
                (Some("old"), None)
            ]
        );
    }

    #[test]
    fn a_diff_reads_back_as_written() {
        let side = SideView {
            id: "nightly-1".into(),
            status: Status::Succeeded,
            workflow_version: "aaaaaaaaaaaa".into(),
            launch_plan: Some("nightly".into()),
            launch_plan_version: None,
            commit: CommitId("c".repeat(40)),
            created_at: to_millis(precise_instant()),
        };
        let view = DiffView {
            project: "lab".into(),
            workflow: "pipeline".into(),
            from: side.clone(),
            to: SideView {
                id: "nightly-2".into(),
                ..side
            },
            commits: CommitsView {
                added: vec![CommitView {
                    id: CommitId("d".repeat(40)),
                    subject: "Train deeper".into(),
                    author: "Ada Lovelace".into(),
                    time: to_millis(precise_instant()),
                }],
                ..CommitsView::default()
            },
            inputs: Vec::new(),
            outputs: changes(
                Some(&json!({ "score": 0.5 })),
                Some(&json!({ "score": 0.75 })),
            ),
            workflow_definition: None,
            nodes: vec![NodeDiff {
                id: "train".into(),
                change: Change::Changed,
                from: Some(NodeSide::from(&node("train", "train", 'a', json!({})))),
                to: Some(NodeSide::from(&node("train", "train", 'b', json!({})))),
                definition: Some("--- a\n+++ b\n".into()),
                inputs: Vec::new(),
                outputs: Vec::new(),
            }],
        };
        assert_eq!(round_trip(&view), view);
        let json = to_json(&view);
        assert_eq!(
            json["commits"]["added"][0]["time"],
            "2026-03-29T00:30:05.123Z"
        );
        assert_eq!(json["nodes"][0]["change"], "changed");
        assert_eq!(json["nodes"][0]["to"]["taskVersion"], "bbbbbbbbbbbb");
        assert_eq!(
            json["outputs"][0],
            json!({ "name": "score", "from": 0.5, "to": 0.75 })
        );
    }
}
