//! The node state machine: what an execution does next, one step at a time.
//!
//! Each step ([`Engine::drive_on`]) reads the execution's nodes as the store
//! has them and moves them on: it records the attempts that ended and
//! recovers those no engine runs any more (both in [`super::attempts`]),
//! then stops the execution (a cancel request, or fail fast once a node
//! failed for good), finishes it (every node succeeded: its outputs are
//! bound), or starts the nodes whose dependencies all succeeded and whose
//! retry is due, serving a node from the cache when its key was seen. A
//! step says what it leaves ([`Driven`]): whether another step would move
//! the execution on at once, and when a retry is due, which is all the
//! engine needs to know to sleep until then (`agenda.rs`).
//!
//! What it guarantees: a node completes in one transaction with its cache
//! entry and its lineage edges (I5), so a crash cannot separate them; and
//! a node runs only once every node it depends on succeeded.
//!
//! What it must not do: run anything itself, or read the system clock
//! (instants come from the engine's clock). Starting an attempt, and
//! deciding what an attempt's end means for its node, is
//! [`super::attempts`]'s.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::mirror::IndexedPlan;
use super::plan::Binding;
use super::{Engine, Error, NodeEvent, Plan, PlanNode};
use crate::artifact;
use crate::spec::Digest;
use crate::spec::duration::Field;
use crate::store::execution::{
    CacheEntry, Direction, EngineWrite, Execution, LineageEdge, NodeState, NodeStatus, Status,
};

/// Why a binding has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error("the execution has no input `{0}`")]
    NoInput(String),
    #[error("node `{node}` has no output `{output}`")]
    NoOutput { node: String, output: String },
}

/// What one step of an execution left.
pub(super) struct Driven {
    /// The execution as it now stands.
    pub(super) execution: Execution,
    /// Another step would move it on at once (a node served from the cache
    /// made the next ready, a node failed on its inputs, every node
    /// succeeded): nothing else will wake it for that.
    pub(super) again: bool,
    /// When a retry of one of its nodes is due.
    pub(super) next_due: Option<DateTime<Utc>>,
}

impl Engine {
    /// Drives `execution` until a step leaves nothing more to do at once
    /// (a bounded number of steps); returns what the last one left. The
    /// last step's writes stay buffered ([`Engine::flush`]), to be applied
    /// with the rest of the pass.
    /// `nodes`: its nodes as just read, if they were.
    pub(super) async fn drive_on(
        &self,
        execution: Execution,
        nodes: Option<Vec<NodeState>>,
    ) -> Result<Driven, Error> {
        let mut driven = self.step(execution, nodes).await?;
        // Each further step starts or completes a node, so the plan's size
        // bounds them; the bound only guards against a step that cannot.
        for _ in 0..64 {
            if !driven.again {
                break;
            }
            // The next step reads what this one wrote.
            self.flush().await?;
            driven = self.step(driven.execution, None).await?;
        }
        Ok(driven)
    }

    /// One step of `execution` (its `nodes` as just read, or read here),
    /// and what it leaves to do.
    async fn step(
        &self,
        mut execution: Execution,
        nodes: Option<Vec<NodeState>>,
    ) -> Result<Driven, Error> {
        let plan = self
            .plans
            .get_or_parse(&execution.id, &execution.plan)
            .map_err(|source| Error::Plan {
                id: execution.id.clone(),
                source,
            })?;
        let mut nodes = match nodes.or_else(|| self.mirror.get(&execution.id)) {
            Some(nodes) => nodes,
            None => {
                let nodes = self.store.nodes(&execution.id).await?;
                self.mirror.fill(&execution.id, &nodes);
                nodes
            }
        };
        let now = self.clock.now();
        if execution.status == Status::Queued {
            execution.status = Status::Running;
            execution.started_at = Some(now);
            self.write(EngineWrite::Execution(execution.clone()));
            self.tell_started(&execution);
        }

        // 1. Attempts that ended, and approval gates decided or out of time.
        self.record_finished(&execution, &plan, &mut nodes).await?;
        self.close_gates(&execution, &plan, &mut nodes, now).await?;

        // 2. Attempts this process does not know: their engine died or lost
        // the lease.
        self.recover_unknown(&execution, &plan, &mut nodes).await?;

        // 3. Cancel, fail fast, or finish.
        if self
            .conclude(&mut execution, &plan, &mut nodes, now)
            .await?
        {
            return Ok(Driven {
                execution,
                again: false,
                next_due: None,
            });
        }

        // 4. Start what is ready (unless shutting down, or not leading).
        self.start_ready(&execution, &plan, &mut nodes, now).await?;
        let again = !execution.status.is_terminal()
            && moves_on(&plan, &nodes, execution.cancel_requested, now)
            && self.may_start();
        let next_due = [next_retry(&nodes, now), gate_deadline(&plan, &nodes, now)]
            .into_iter()
            .flatten()
            .min();
        Ok(Driven {
            execution,
            again,
            next_due,
        })
    }

    /// Ends the approval gates that wait and have a decision (approved:
    /// succeeded; rejected: failed with who and why) or whose time is up
    /// (timed out). The store is asked only for gates that wait.
    async fn close_gates(
        &self,
        execution: &Execution,
        plan: &IndexedPlan,
        nodes: &mut [NodeState],
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        for state in nodes.iter_mut().filter(|n| n.status == NodeStatus::Waiting) {
            let Some(spec) = plan.node(&state.node) else {
                continue;
            };
            match self.store.decision(&execution.id, &state.node).await? {
                Some(decision) if decision.approved => {
                    state.status = NodeStatus::Succeeded;
                    state.outputs = Some(Value::Object(serde_json::Map::new()));
                }
                Some(decision) => {
                    state.status = NodeStatus::Failed;
                    state.error = Some(match &decision.comment {
                        Some(comment) => format!("rejected by {}: {comment}", decision.by),
                        None => format!("rejected by {}", decision.by),
                    });
                }
                None if gate_deadline_of(spec, state).is_some_and(|due| due <= now) => {
                    state.status = NodeStatus::TimedOut;
                    state.error = Some(format!(
                        "no decision within {}",
                        spec.spec
                            .timeout
                            .as_ref()
                            .map_or_else(String::new, ToString::to_string)
                    ));
                }
                None => continue,
            }
            tracing::info!(execution = %execution.id, node = %state.node, status = %state.status, "approval gate closed");
            state.finished_at = Some(now);
            self.write(EngineWrite::Node(state.clone()));
        }
        Ok(())
    }

    /// Stops the execution (cancel requested, or a node failed for good:
    /// fail fast) or finishes it (every node succeeded). Returns whether
    /// it is stopping or done, so nothing more starts.
    async fn conclude(
        &self,
        execution: &mut Execution,
        plan: &Plan,
        nodes: &mut [NodeState],
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let failed = nodes
            .iter()
            .find(|n| matches!(n.status, NodeStatus::Failed | NodeStatus::TimedOut));
        let stop = if execution.cancel_requested {
            Some((Status::Cancelled, "cancelled on request".to_owned()))
        } else {
            failed.map(|n| {
                let status = if n.status == NodeStatus::TimedOut {
                    Status::TimedOut
                } else {
                    Status::Failed
                };
                let why = n.error.clone().unwrap_or_default();
                (status, format!("node `{}` {}: {why}", n.node, n.status))
            })
        };
        if let Some((status, error)) = stop {
            let mut still_running = false;
            for state in nodes.iter_mut() {
                match state.status {
                    NodeStatus::Running => {
                        still_running = true;
                        self.cancel_attempt(&execution.id, state).await;
                    }
                    // A gate's decision is no longer asked for.
                    NodeStatus::Waiting => {
                        state.status = NodeStatus::Cancelled;
                        state.finished_at = Some(now);
                        self.write(EngineWrite::Node(state.clone()));
                    }
                    NodeStatus::Pending | NodeStatus::Retrying => {
                        state.status = NodeStatus::Skipped;
                        state.finished_at = Some(now);
                        self.write(EngineWrite::Node(state.clone()));
                    }
                    _ => {}
                }
            }
            if !still_running {
                execution.status = status;
                execution.error = Some(error);
                execution.finished_at = Some(now);
                self.write(EngineWrite::Execution(execution.clone()));
                tracing::info!(execution = %execution.id, status = %status, "execution finished");
                self.tell_ended(execution);
            }
            return Ok(true);
        }
        if nodes.iter().all(|n| done(n.status)) {
            let outputs = node_outputs(nodes);
            let skipped = skipped_nodes(nodes);
            let mut values = serde_json::Map::new();
            for (name, binding) in &plan.outputs {
                match resolve(binding, &execution.inputs, &outputs) {
                    Ok(v) => {
                        values.insert(name.clone(), v);
                    }
                    // Its node was skipped by a condition: null, as declared.
                    Err(_)
                        if plan.optional_outputs.contains(name)
                            && first_skipped(binding, &skipped).is_some() =>
                    {
                        values.insert(name.clone(), Value::Null);
                    }
                    Err(e) => {
                        execution.status = Status::Failed;
                        execution.error = Some(format!("workflow output `{name}`: {e}"));
                    }
                }
            }
            if execution.status == Status::Running {
                execution.status = Status::Succeeded;
                execution.outputs = Some(Value::Object(values));
            }
            execution.finished_at = Some(now);
            self.write(EngineWrite::Execution(execution.clone()));
            tracing::info!(execution = %execution.id, status = %execution.status, "execution finished");
            self.tell_ended(execution);
            return Ok(true);
        }
        Ok(false)
    }

    /// Starts every node that is due (pending, or retrying with its retry
    /// due at `now`) and whose dependencies all succeeded: served from the
    /// cache, or as a new attempt. A node whose input cannot be bound
    /// fails.
    async fn start_ready(
        &self,
        execution: &Execution,
        plan: &IndexedPlan,
        nodes: &mut [NodeState],
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        if !self.may_start() {
            return Ok(());
        }
        // The nodes due whose dependencies all succeeded or were skipped,
        // with their inputs bound (or why one cannot be), or to skip.
        let ready: Vec<(usize, Readiness)> = {
            let outputs = node_outputs(nodes);
            let skipped = skipped_nodes(nodes);
            let finished: HashSet<&str> = nodes
                .iter()
                .filter(|n| done(n.status))
                .map(|n| n.node.as_str())
                .collect();
            nodes
                .iter()
                .enumerate()
                .filter_map(|(i, state)| {
                    let due = match state.status {
                        NodeStatus::Pending => true,
                        NodeStatus::Retrying => state.next_attempt_at.is_none_or(|at| at <= now),
                        _ => false,
                    };
                    let spec = plan.node(&state.node)?;
                    if !due || !spec.deps.iter().all(|d| finished.contains(d.as_str())) {
                        return None;
                    }
                    Some((i, readiness(spec, &execution.inputs, &outputs, &skipped)))
                })
                .collect()
        };
        for (i, readiness) in ready {
            let state = &mut nodes[i];
            let Some(spec) = plan.node(&state.node) else {
                continue;
            };
            let (inputs, mut bad) = match readiness {
                Readiness::Run(inputs) => (inputs, None),
                Readiness::Fail(why) => (BTreeMap::new(), Some(why)),
                Readiness::Skip(why) => {
                    tracing::info!(execution = %execution.id, node = %state.node, why = %why, "node skipped");
                    state.status = NodeStatus::Skipped;
                    state.finished_at = Some(now);
                    self.write(EngineWrite::Node(state.clone()));
                    continue;
                }
            };
            // A stored timeout that does not parse (a version registered
            // before validation refused it) fails the node here, before its
            // attempt or a cache hit, like an input that cannot be bound.
            let timeout = spec
                .spec
                .timeout
                .as_ref()
                .map(|t| t.value(Field::Timeout))
                .transpose();
            if let (None, Err(unreadable)) = (&bad, &timeout) {
                tracing::error!(execution = %execution.id, node = %state.node, task = %spec.task, error = %unreadable, "node failed: its task's definition cannot be read");
                bad = Some(unreadable.to_string());
            }
            if let Some(error) = bad {
                state.status = NodeStatus::Failed;
                state.error = Some(error);
                state.finished_at = Some(now);
                self.write(EngineWrite::Node(state.clone()));
                self.tell(NodeEvent::Failed, execution, spec, state);
                continue;
            }
            // An approval gate waits for its decision ([`Engine::close_gates`]).
            if spec.gate().is_some() {
                tracing::info!(execution = %execution.id, node = %state.node, "approval gate waiting for a decision");
                state.status = NodeStatus::Waiting;
                state.started_at = Some(now);
                self.write(EngineWrite::Node(state.clone()));
                continue;
            }
            // Leadership may have ended during this tick.
            if !self.may_start() {
                tracing::info!(execution = %execution.id, "no longer leading the store: starting no more attempts");
                return Ok(());
            }
            if !self
                .serve_from_cache(execution, spec, state, &inputs)
                .await?
            {
                self.start(execution, spec, state, inputs, timeout.ok().flatten())
                    .await?;
            }
        }
        Ok(())
    }

    /// Completes `state` from the cache when its key was seen (and the
    /// execution does not ask for `noCache`); returns whether it did.
    async fn serve_from_cache(
        &self,
        execution: &Execution,
        spec: &PlanNode,
        state: &mut NodeState,
        inputs: &BTreeMap<String, Value>,
    ) -> Result<bool, Error> {
        if !spec.spec.cache.enabled || execution.options.no_cache {
            return Ok(false);
        }
        // A node completed earlier in this pass may have made the entry.
        self.flush().await?;
        let Some(hit) = self.store.cache_get(&cache_key(spec, inputs)).await? else {
            return Ok(false);
        };
        let now = self.clock.now();
        state.status = NodeStatus::Succeeded;
        state.inputs = Some(Value::Object(inputs.clone().into_iter().collect()));
        state.outputs = Some(hit.outputs.clone());
        state.cached_from = Some(hit.execution.clone());
        state.started_at = Some(now);
        state.finished_at = Some(now);
        // The node and its lineage in one transaction (I5).
        self.write(EngineWrite::Completed {
            node: state.clone(),
            cache: None,
            edges: edges(execution, state, now),
        });
        self.tell(NodeEvent::Succeeded, execution, spec, state);
        tracing::info!(execution = %execution.id, node = %state.node, from = %hit.execution, "served from the cache");
        Ok(true)
    }

    /// Completes a node whose attempt succeeded with `outputs`: the node,
    /// its cache entry and its lineage in one transaction, so a crash
    /// cannot separate them (I5).
    pub(super) async fn complete(
        &self,
        execution: &Execution,
        spec: &PlanNode,
        state: &mut NodeState,
        outputs: BTreeMap<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let outputs = Value::Object(outputs.into_iter().collect());
        state.status = NodeStatus::Succeeded;
        state.outputs = Some(outputs.clone());
        state.error = None;
        state.finished_at = Some(now);
        let entry = spec.spec.cache.enabled.then(|| {
            let inputs: BTreeMap<String, Value> = state
                .inputs
                .as_ref()
                .and_then(Value::as_object)
                .map(|m| m.clone().into_iter().collect())
                .unwrap_or_default();
            CacheEntry {
                key: cache_key(spec, &inputs),
                execution: execution.id.clone(),
                node: state.node.clone(),
                outputs,
                created_at: now,
            }
        });
        self.write(EngineWrite::Completed {
            node: state.clone(),
            cache: entry,
            edges: edges(execution, state, now),
        });
        self.tell(NodeEvent::Succeeded, execution, spec, state);
        Ok(())
    }
}

/// Whether another step of an execution in `nodes` would move it on at
/// once: it would stop (cancelled, or a node failed for good) with nothing
/// running, finish (every node succeeded), or start a node that is due
/// and whose dependencies all succeeded.
fn moves_on(
    plan: &IndexedPlan,
    nodes: &[NodeState],
    cancel_requested: bool,
    now: DateTime<Utc>,
) -> bool {
    let running = nodes.iter().any(|n| n.status == NodeStatus::Running);
    let failed = nodes
        .iter()
        .any(|n| matches!(n.status, NodeStatus::Failed | NodeStatus::TimedOut));
    if (cancel_requested || failed) && !running {
        return true;
    }
    if cancel_requested || failed {
        return false;
    }
    if nodes.iter().all(|n| done(n.status)) {
        return true;
    }
    let succeeded: HashSet<&str> = nodes
        .iter()
        .filter(|n| done(n.status))
        .map(|n| n.node.as_str())
        .collect();
    nodes.iter().any(|state| {
        let due = match state.status {
            NodeStatus::Pending => true,
            NodeStatus::Retrying => state.next_attempt_at.is_none_or(|at| at <= now),
            _ => false,
        };
        due && plan
            .node(&state.node)
            .is_some_and(|spec| spec.deps.iter().all(|d| succeeded.contains(d.as_str())))
    })
}

/// When a waiting gate times out: its wait began at `started_at`.
fn gate_deadline_of(spec: &PlanNode, state: &NodeState) -> Option<DateTime<Utc>> {
    let timeout = spec.spec.timeout.as_ref()?.value(Field::Timeout).ok()?;
    let timeout = chrono::Duration::from_std(timeout).ok()?;
    state.started_at?.checked_add_signed(timeout)
}

/// The earliest instant a waiting gate times out (`now` at the earliest).
fn gate_deadline(
    plan: &IndexedPlan,
    nodes: &[NodeState],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Waiting)
        .filter_map(|n| gate_deadline_of(plan.node(&n.node)?, n))
        .map(|at| at.max(now))
        .min()
}

/// The earliest instant after `now` a retrying node's next attempt is due.
fn next_retry(nodes: &[NodeState], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Retrying)
        .filter_map(|n| n.next_attempt_at)
        .map(|at| at.max(now))
        .min()
}

/// Whether a node is done in a way that lets its dependants go on: it
/// succeeded, or a condition skipped it (a node skipped because the
/// execution stops is never looked at again: the execution has ended).
fn done(status: NodeStatus) -> bool {
    matches!(status, NodeStatus::Succeeded | NodeStatus::Skipped)
}

/// The paths of the nodes skipped.
fn skipped_nodes(nodes: &[NodeState]) -> HashSet<&str> {
    nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Skipped)
        .map(|n| n.node.as_str())
        .collect()
}

/// What a node whose dependencies are all done does next.
enum Readiness {
    /// Runs with these inputs.
    Run(BTreeMap<String, Value>),
    /// Is skipped: it reads a skipped node's output, or a condition is
    /// false (why, for the log).
    Skip(String),
    /// Fails: an input cannot be bound, or a condition cannot be
    /// evaluated.
    Fail(String),
}

fn readiness(
    spec: &PlanNode,
    execution_inputs: &Value,
    outputs: &HashMap<&str, &Value>,
    skipped: &HashSet<&str>,
) -> Readiness {
    if let Some(Binding::Output { node, .. }) =
        spec.bindings().find_map(|b| first_skipped(b, skipped))
    {
        return Readiness::Skip(format!("it reads an output of `{node}`, which was skipped"));
    }
    for condition in &spec.when {
        let mut values = BTreeMap::new();
        let parsed = match crate::spec::condition::parse(&condition.source) {
            Ok(parsed) => parsed,
            Err(e) => return Readiness::Fail(format!("`when`: {e}")),
        };
        for r in parsed.references() {
            let Some(binding) = condition.refs.get(&r.to_string()) else {
                return Readiness::Fail(format!("`when`: `{r}` is not bound in the plan"));
            };
            match resolve(binding, execution_inputs, outputs) {
                Ok(value) => {
                    values.insert(r, value);
                }
                Err(e) => return Readiness::Fail(format!("`when`: {e}")),
            }
        }
        match parsed.evaluate(&values) {
            Ok(true) => {}
            Ok(false) => {
                return Readiness::Skip(format!("`when: {}` is false", condition.source));
            }
            Err(e) => return Readiness::Fail(format!("`when`: {e}")),
        }
    }
    let mut inputs = BTreeMap::new();
    for (name, binding) in &spec.inputs {
        match resolve(binding, execution_inputs, outputs) {
            Ok(v) => {
                inputs.insert(name.clone(), v);
            }
            Err(e) => return Readiness::Fail(format!("input `{name}`: {e}")),
        }
    }
    Readiness::Run(inputs)
}

/// The first output binding inside `binding` that reads a skipped node,
/// if it reads one.
fn first_skipped<'a>(binding: &'a Binding, skipped: &HashSet<&str>) -> Option<&'a Binding> {
    match binding {
        Binding::Output { node, .. } if skipped.contains(node.as_str()) => Some(binding),
        Binding::Concat { parts } => parts.iter().find_map(|p| first_skipped(p, skipped)),
        _ => None,
    }
}

/// Outputs of the nodes that succeeded, by path.
fn node_outputs(nodes: &[NodeState]) -> HashMap<&str, &Value> {
    nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Succeeded)
        .filter_map(|n| Some((n.node.as_str(), n.outputs.as_ref()?)))
        .collect()
}

/// The value of a binding.
pub fn resolve(
    binding: &Binding,
    inputs: &Value,
    outputs: &HashMap<&str, &Value>,
) -> Result<Value, BindingError> {
    match binding {
        Binding::Literal { value } => Ok(value.clone()),
        Binding::Input { name } => inputs
            .get(name)
            .cloned()
            .ok_or_else(|| BindingError::NoInput(name.clone())),
        Binding::Output { node, output } => outputs
            .get(node.as_str())
            .and_then(|o| o.get(output))
            .cloned()
            .ok_or_else(|| BindingError::NoOutput {
                node: node.clone(),
                output: output.clone(),
            }),
        Binding::Concat { parts } => {
            let mut text = String::new();
            for part in parts {
                match resolve(part, inputs, outputs)? {
                    Value::String(s) => text.push_str(&s),
                    other => text.push_str(&other.to_string()),
                }
            }
            Ok(Value::String(text))
        }
    }
}

/// Flyte's cache key: (task, `cache.version` or the task version, the
/// inputs minus `ignoreInputs`).
fn cache_key(spec: &PlanNode, inputs: &BTreeMap<String, Value>) -> Digest {
    let kept: serde_json::Map<String, Value> = inputs
        .iter()
        .filter(|(k, _)| !spec.spec.cache.ignore_inputs.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let version = spec.spec.cache.version.clone().map_or_else(
        || format!("task:{}", spec.task_version),
        |v| format!("cache:{v}"),
    );
    Digest::of_json(&json!({ "task": spec.task, "version": version, "inputs": kept }))
}

/// Lineage edges of a succeeded node: every input and output, files by their
/// artifact digest, other values by the digest of their JSON.
pub(super) fn edges(
    execution: &Execution,
    state: &NodeState,
    at: DateTime<Utc>,
) -> Vec<LineageEdge> {
    let mut out = Vec::new();
    for (direction, values) in [
        (Direction::Input, &state.inputs),
        (Direction::Output, &state.outputs),
    ] {
        let Some(Value::Object(map)) = values else {
            continue;
        };
        for (name, value) in map {
            let digest = match value {
                Value::String(s) => {
                    artifact::parse_reference(s).unwrap_or_else(|| Digest::of_json(value))
                }
                other => Digest::of_json(other),
            };
            out.push(LineageEdge {
                execution: execution.id.clone(),
                node: state.node.clone(),
                direction,
                name: name.clone(),
                digest,
                task: state.task.clone(),
                task_version: state.task_version.clone(),
                commit: execution.commit.clone(),
                at,
            });
        }
    }
    out
}
