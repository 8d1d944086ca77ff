//! Running an execution again, from what it recorded (not from what is
//! active now): `weir relaunch` runs the same plan (its versions, commit
//! and inputs) anew, every node; `weir recover` (Flyte's recover) runs a
//! failed, timed-out or cancelled execution again from where it stopped:
//! each node that succeeded keeps its inputs and outputs, served from the
//! original execution (`cached_from`) with lineage edges saying so, and
//! only the others run. Either is a new execution (trigger `manual`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize as _;

use super::create::manual_id;
use super::nodes::edges;
use super::plan::{Plan, group_of, item_of};
use crate::spec::{EntityRef, ExecutionId, Kind, Trigger};
use crate::store::Store;
use crate::store::execution::{Execution, NodeState, NodeStatus, Status};

/// How an execution runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    /// Every node anew.
    Relaunch,
    /// Only what did not succeed.
    Recover,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("no execution `{0}`")]
    NotFound(ExecutionId),
    #[error("execution `{id}` is {status}: only an execution that has ended runs again")]
    Unfinished { id: ExecutionId, status: Status },
    #[error("execution `{0}` succeeded: there is nothing to recover (relaunch runs it again)")]
    Succeeded(ExecutionId),
    #[error("the plan of execution `{id}` cannot be read: {source}")]
    Plan {
        id: ExecutionId,
        source: serde_json::Error,
    },
}

/// Creates the execution that runs `id` again, `how`, at `now`; returns it
/// with how many of its nodes were served from `id` (recover).
pub async fn again(
    store: &dyn Store,
    id: &ExecutionId,
    how: Again,
    now: DateTime<Utc>,
) -> Result<(Execution, usize), Error> {
    let original = store
        .execution(id)
        .await?
        .ok_or_else(|| Error::NotFound(id.clone()))?;
    if !original.status.is_terminal() {
        return Err(Error::Unfinished {
            id: id.clone(),
            status: original.status,
        });
    }
    if how == Again::Recover && original.status == Status::Succeeded {
        return Err(Error::Succeeded(id.clone()));
    }
    let plan = Plan::deserialize(original.plan.as_ref()).map_err(|source| Error::Plan {
        id: id.clone(),
        source,
    })?;
    let named = match &original.launch_plan {
        Some(name) => EntityRef::new(original.project.clone(), Kind::LaunchPlan, name.clone()),
        None => EntityRef::new(
            original.project.clone(),
            Kind::Workflow,
            original.workflow.clone(),
        ),
    };
    let execution = Execution {
        id: manual_id(&named, now),
        trigger: Trigger::Manual,
        scheduled_at: None,
        status: Status::Queued,
        outputs: None,
        error: None,
        created_at: now,
        started_at: None,
        finished_at: None,
        cancel_requested: false,
        options: crate::store::execution::RunOptions {
            backfill: None,
            ..original.options.clone()
        },
        ..original.clone()
    };
    // By path: a plan of many nodes is matched in one pass.
    let succeeded: HashMap<String, NodeState> = match how {
        Again::Relaunch => HashMap::new(),
        Again::Recover => store
            .nodes(id)
            .await?
            .into_iter()
            .filter(|n| n.status == NodeStatus::Succeeded)
            .map(|n| (n.node.clone(), n))
            .collect(),
    };
    let served_from = |mut node: NodeState, done: &NodeState| {
        node.status = NodeStatus::Succeeded;
        node.inputs = done.inputs.clone();
        node.outputs = done.outputs.clone();
        node.cached_from = Some(done.cached_from.clone().unwrap_or_else(|| id.clone()));
        node.started_at = Some(now);
        node.finished_at = Some(now);
        node
    };
    let mut nodes: Vec<NodeState> = plan
        .pending_nodes(&execution.id)
        .into_iter()
        .map(|node| match succeeded.get(&node.node) {
            Some(done) => served_from(node, done),
            None => node,
        })
        .collect();
    // The items that succeeded of a map node that did not: the map node
    // begins again, and keeps each of these whose inputs it binds again
    // (`Engine::begin_map`), so only the others run.
    let mut items: Vec<&NodeState> = succeeded
        .values()
        .filter(|n| item_of(&n.node).is_some_and(|(map, _)| !succeeded.contains_key(map)))
        .collect();
    items.sort_by_key(|n| item_of(&n.node).map(|(map, i)| (map.to_owned(), i)));
    // The nodes of each such item of a map over a sub-workflow, after the
    // items (an item that failed begins again whole: the cache serves
    // those of its nodes that allow it).
    let mut members: Vec<&NodeState> = succeeded
        .values()
        .filter(|n| {
            group_of(&n.node).is_some_and(|(item, _)| {
                succeeded.contains_key(item)
                    && item_of(item).is_some_and(|(map, _)| !succeeded.contains_key(map))
            })
        })
        .collect();
    members.sort_by_key(|n| {
        group_of(&n.node).and_then(|(item, _)| item_of(item).map(|(m, i)| (m.to_owned(), i)))
    });
    for done in items.into_iter().chain(members) {
        let node = NodeState::pending(
            execution.id.clone(),
            done.node.clone(),
            done.task.clone(),
            done.task_version.clone(),
        );
        nodes.push(served_from(node, done));
    }
    let served = nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Succeeded)
        .count();
    // What it reused is its lineage too (the same artifacts, read and
    // written by the nodes served from the original), in the transaction
    // that creates it (I5).
    let lineage: Vec<_> = nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Succeeded)
        .flat_map(|n| edges(&execution, n, now))
        .collect();
    let (execution, _) = store
        .create_execution_with_lineage(&execution, &nodes, &lineage)
        .await?;
    Ok((execution, served))
}
