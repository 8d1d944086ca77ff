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

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::mirror::{IndexedPlan, Rows};
use super::plan::{Binding, item_path};
use super::{Engine, Error, NodeEvent, PlanNode};
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
    /// steps' writes stay buffered ([`Engine::flush`]), to be applied with
    /// the rest of the pass in one transaction. `rows`: its rows as just read, if they
    /// were; else the mirror's, else the store's. They go back to the
    /// mirror as the steps left them (or, should a step fail, are dropped).
    pub(super) async fn drive_on(
        &self,
        execution: Execution,
        rows: Option<Rows>,
    ) -> Result<Driven, Error> {
        let id = execution.id.clone();
        let mut rows = match rows.or_else(|| self.mirror.take_or_hold(&id)) {
            Some(rows) => rows,
            None => match self.store.nodes(&id).await {
                Ok(nodes) => Rows::new(nodes),
                Err(e) => {
                    self.mirror.drop_execution(&id);
                    return Err(e.into());
                }
            },
        };
        let driven = self.drive_rows(execution, &mut rows).await;
        match &driven {
            Ok(_) => self.mirror.put_back(&id, rows),
            Err(_) => self.mirror.drop_execution(&id),
        }
        driven
    }

    async fn drive_rows(&self, execution: Execution, rows: &mut Rows) -> Result<Driven, Error> {
        let mut driven = self.step(execution, rows).await?;
        // Each further step starts or completes a node, so the plan's size
        // bounds them; the bound only guards against a step that cannot.
        for _ in 0..64 {
            if !driven.again {
                break;
            }
            // The next step reads this one's rows as it left them; their
            // writes go with the pass's one transaction (a cache lookup
            // applies those before it reads).
            driven = self.step(driven.execution, rows).await?;
        }
        Ok(driven)
    }

    /// One step of `execution` (its rows in `rows`), and what it leaves to
    /// do. It looks at every row once, cheaply, and at a node's
    /// dependencies only when the one it last waited for is done.
    async fn step(&self, mut execution: Execution, rows: &mut Rows) -> Result<Driven, Error> {
        let plan = self
            .plans
            .get_or_parse(&execution.id, &execution.plan)
            .map_err(|source| Error::Plan {
                id: execution.id.clone(),
                source,
            })?;
        let now = self.clock.now();
        if execution.status == Status::Queued {
            execution.status = Status::Running;
            execution.started_at = Some(now);
            self.write(EngineWrite::Execution(execution.clone()));
            self.tell_started(&execution);
        }

        // 1. Attempts that ended, and approval gates decided or out of time.
        self.record_finished(&execution, &plan, rows).await?;
        self.close_gates(&execution, &plan, &mut rows.nodes, now)
            .await?;

        // 2. Attempts this process does not know: their engine died or lost
        // the lease.
        self.recover_unknown(&execution, &plan, &mut rows.nodes)
            .await?;

        // Items of maps over sub-workflows whose nodes decided them, then
        // map nodes whose items decided them.
        self.settle_items(&execution, &plan, rows, now).await;
        self.settle_maps(&execution, &plan, rows, now);

        // 3. Cancel, fail fast, or finish.
        if self.conclude(&mut execution, &plan, rows, now).await? {
            return Ok(Driven {
                execution,
                again: false,
                next_due: None,
            });
        }

        // 4. Start what is ready (unless shutting down, or not leading).
        // Another step moves on at once only if this one ended a node
        // (served from the cache, skipped, failed on its inputs) or began a
        // map: an attempt's end, a retry or a gate wakes it otherwise.
        let progressed = self.start_ready(&execution, &plan, rows, now).await?;
        let again = !execution.status.is_terminal() && progressed && self.may_start();
        let next_due = [
            next_retry(&rows.nodes, now),
            gate_deadline(&plan, &rows.nodes, now),
        ]
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
            let spec: &PlanNode = &spec;
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
        plan: &IndexedPlan,
        rows: &mut Rows,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        // An item's failure is its map node's to judge (`settle_maps`).
        let failed = (0..rows.nodes.len())
            .find(|&i| failed_for_good(rows, i))
            .map(|i| &rows.nodes[i]);
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
            for state in rows.nodes.iter_mut() {
                match state.status {
                    // A map node runs nothing itself, nor does an item of a
                    // map over a sub-workflow: what they run is stopped.
                    NodeStatus::Running
                        if plan
                            .node(&state.node)
                            .is_some_and(|s| s.runs_no_attempt_at(&state.node)) =>
                    {
                        state.status = NodeStatus::Cancelled;
                        state.finished_at = Some(now);
                        self.write(EngineWrite::Node(state.clone()));
                    }
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
        if all_done(rows) {
            let mut values = serde_json::Map::new();
            for (name, binding) in &plan.outputs {
                match resolve(binding, &execution.inputs, rows) {
                    Ok(v) => {
                        values.insert(name.clone(), v);
                    }
                    // Its node was skipped by a condition: null, as declared.
                    Err(_)
                        if plan.optional_outputs.contains(name)
                            && first_skipped(binding, rows).is_some() =>
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
    /// due at `now`) and whose dependencies all succeeded or were skipped:
    /// served from the cache, or as a new attempt; skipped, when a
    /// condition says so; begun, for a map node. A node whose input cannot
    /// be bound fails. Returns whether a node ended or a map began (then
    /// another step moves on at once).
    async fn start_ready(
        &self,
        execution: &Execution,
        plan: &IndexedPlan,
        rows: &mut Rows,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        if !self.may_start() {
            return Ok(false);
        }
        let ready = ready_rows(plan, rows, now);
        let mut running = running_items(rows);
        let mut progressed = false;
        for i in ready {
            let Some(spec) = plan.node(&rows.nodes[i].node) else {
                continue;
            };
            let spec: &PlanNode = &spec;
            let map = rows.parent_of(i);
            if map.is_some_and(|m| throttled(spec, running.get(&m).copied().unwrap_or(0))) {
                continue;
            }
            // An item's inputs were bound when its map node began.
            let readiness = match map {
                Some(m) if spec.mapped_workflow().is_some() => {
                    self.begin_item(execution, spec, rows, i, now);
                    *running.entry(m).or_default() += 1;
                    progressed = true;
                    continue;
                }
                Some(_) => Readiness::Run(object(rows.nodes[i].inputs.as_ref())),
                None => readiness(spec, inputs_of(execution, rows, i), rows),
            };
            let readiness = match readiness {
                Readiness::Map { inputs, list } => {
                    self.begin_map(execution, spec, rows, i, inputs, list, now);
                    progressed = true;
                    continue;
                }
                other => other,
            };
            let state = &mut rows.nodes[i];
            let (inputs, mut bad) = match readiness {
                Readiness::Run(inputs) => (inputs, None),
                // Begun above.
                Readiness::Map { .. } => continue,
                Readiness::Fail(why) => (BTreeMap::new(), Some(why)),
                Readiness::Skip(why) => {
                    tracing::info!(execution = %execution.id, node = %state.node, why = %why, "node skipped");
                    state.status = NodeStatus::Skipped;
                    state.finished_at = Some(now);
                    self.write(EngineWrite::Node(state.clone()));
                    progressed = true;
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
                progressed = true;
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
                return Ok(progressed);
            }
            if self
                .serve_from_cache(execution, spec, state, &inputs)
                .await?
            {
                progressed = true;
            } else {
                self.start(execution, spec, state, inputs, timeout.ok().flatten())
                    .await?;
                if let Some(m) = map {
                    *running.entry(m).or_default() += 1;
                }
            }
        }
        Ok(progressed)
    }

    /// Map node row `at` begins: a pending node per item of `list`, each
    /// with the node's `inputs` and its item, written with the node in one
    /// transaction; an item row that exists with those inputs (one a
    /// recovery served from the execution it recovers) is kept as it is.
    /// The node runs until its items decide it ([`Engine::settle_maps`]);
    /// over an empty list it succeeds at once with empty lists.
    #[allow(clippy::too_many_arguments)]
    fn begin_map(
        &self,
        execution: &Execution,
        spec: &PlanNode,
        rows: &mut Rows,
        at: usize,
        inputs: BTreeMap<String, Value>,
        list: Vec<Value>,
        now: DateTime<Utc>,
    ) {
        let Some(map) = &spec.map else {
            return;
        };
        let path = rows.nodes[at].node.clone();
        let mut new = Vec::new();
        let mut kept = 0;
        for (i, item) in list.iter().enumerate() {
            let mut bound = inputs.clone();
            bound.insert(map.item.clone(), item.clone());
            let bound = Value::Object(bound.into_iter().collect());
            let mut item_state = NodeState::pending(
                execution.id.clone(),
                item_path(&path, i),
                rows.nodes[at].task.clone(),
                rows.nodes[at].task_version.clone(),
            );
            item_state.inputs = Some(bound);
            match rows.index(&item_state.node) {
                Some(j) if rows.nodes[j].inputs == item_state.inputs => kept += 1,
                // Bound otherwise now: it runs again, with each node of its
                // sub-workflow, if it maps one.
                Some(j) => {
                    rows.nodes[j] = item_state;
                    self.write(EngineWrite::Node(rows.nodes[j].clone()));
                    for m in rows.members_of(j).to_vec() {
                        let old = &rows.nodes[m];
                        let fresh = NodeState::pending(
                            execution.id.clone(),
                            old.node.clone(),
                            old.task.clone(),
                            old.task_version.clone(),
                        );
                        rows.nodes[m] = fresh;
                        self.write(EngineWrite::Node(rows.nodes[m].clone()));
                    }
                }
                None => new.push(item_state),
            }
        }
        let state = &mut rows.nodes[at];
        let mut all = inputs;
        all.insert(map.item.clone(), Value::Array(list));
        state.inputs = Some(Value::Object(all.into_iter().collect()));
        state.status = NodeStatus::Running;
        state.started_at = Some(now);
        tracing::info!(execution = %execution.id, node = %state.node, items = new.len() + kept, kept, "map node started its items");
        self.write(EngineWrite::Expanded {
            node: state.clone(),
            items: new.clone(),
        });
        self.tell(NodeEvent::Started, execution, spec, state);
        if new.is_empty() && kept == 0 {
            let outputs = map_outputs(spec, &[]);
            self.end_map(execution, spec, state, Verdict::Succeeded(outputs), now);
        }
        for item in new {
            rows.push(item);
        }
    }

    /// Ends each running map node whose items decided it: too many failed
    /// (it fails, naming the first), or every item ended with few enough
    /// failures (it succeeds; its outputs are lists in item order, null
    /// for an item that failed).
    fn settle_maps(
        &self,
        execution: &Execution,
        plan: &IndexedPlan,
        rows: &mut Rows,
        now: DateTime<Utc>,
    ) {
        for (i, verdict) in map_verdicts(plan, rows) {
            let state = &mut rows.nodes[i];
            if let Some(spec) = plan.node(&state.node) {
                self.end_map(execution, &spec, state, verdict, now);
            }
        }
    }

    /// Item row `at` of a map over a sub-workflow begins: a pending row per
    /// node of the sub-workflow under the item's path (`fit[3]/train`),
    /// written with the item in one transaction. The item runs until its
    /// nodes decide it ([`Engine::settle_items`]).
    fn begin_item(
        &self,
        execution: &Execution,
        spec: &PlanNode,
        rows: &mut Rows,
        at: usize,
        now: DateTime<Utc>,
    ) {
        let Some(workflow) = spec.mapped_workflow() else {
            return;
        };
        let prefix = format!("{}/", rows.nodes[at].node);
        let members: Vec<NodeState> = workflow
            .nodes
            .iter()
            .map(|n| {
                NodeState::pending(
                    execution.id.clone(),
                    format!("{prefix}{}", n.path),
                    n.task.clone(),
                    n.task_version.clone(),
                )
            })
            // Rows it has already: reset to pending when its map node
            // bound it anew.
            .filter(|n| rows.index(&n.node).is_none())
            .collect();
        let state = &mut rows.nodes[at];
        state.status = NodeStatus::Running;
        state.started_at = Some(now);
        tracing::info!(execution = %execution.id, node = %state.node, nodes = members.len(), "map item started its workflow");
        self.write(EngineWrite::Expanded {
            node: state.clone(),
            items: members.clone(),
        });
        self.tell(NodeEvent::Started, execution, spec, state);
        for member in members {
            rows.push(member);
        }
    }

    /// Ends each running item of a map over a sub-workflow whose nodes
    /// decided it: one failed (it fails as that node did, and its other
    /// nodes are stopped), or all succeeded or were skipped (it succeeds
    /// with the sub-workflow's outputs, null for an optional one whose
    /// node was skipped).
    async fn settle_items(
        &self,
        execution: &Execution,
        plan: &IndexedPlan,
        rows: &mut Rows,
        now: DateTime<Utc>,
    ) {
        let groups: Vec<usize> = rows
            .groups()
            .filter(|&g| rows.nodes[g].status == NodeStatus::Running)
            .collect();
        for g in groups {
            let Some(spec) = plan.node(&rows.nodes[g].node) else {
                continue;
            };
            let Some(verdict) = item_verdict(&spec, rows, g) else {
                continue;
            };
            if let Verdict::Failed(_) = verdict {
                for m in rows.members_of(g).to_vec() {
                    let member = &mut rows.nodes[m];
                    match member.status {
                        NodeStatus::Running => self.cancel_attempt(&execution.id, member).await,
                        NodeStatus::Pending | NodeStatus::Retrying => {
                            member.status = NodeStatus::Skipped;
                            member.finished_at = Some(now);
                            self.write(EngineWrite::Node(member.clone()));
                        }
                        _ => {}
                    }
                }
            }
            self.end_map(execution, &spec, &mut rows.nodes[g], verdict, now);
        }
    }

    /// Ends a map node, or an item of a map over a sub-workflow, as what
    /// it ran decided.
    fn end_map(
        &self,
        execution: &Execution,
        spec: &PlanNode,
        state: &mut NodeState,
        verdict: Verdict,
        now: DateTime<Utc>,
    ) {
        state.finished_at = Some(now);
        match verdict {
            Verdict::Succeeded(outputs) => {
                state.status = NodeStatus::Succeeded;
                state.outputs = Some(outputs);
                // What it ran has its own cache entries: none of its own.
                self.write(EngineWrite::Completed {
                    node: state.clone(),
                    cache: None,
                    edges: edges(execution, state, now),
                });
                self.tell(NodeEvent::Succeeded, execution, spec, state);
            }
            Verdict::Failed(error) => {
                state.status = NodeStatus::Failed;
                state.error = Some(error);
                self.write(EngineWrite::Node(state.clone()));
                self.tell(NodeEvent::Failed, execution, spec, state);
            }
        }
        tracing::info!(execution = %execution.id, node = %state.node, status = %state.status, "map node or item ended");
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

/// The rows due (pending, or retrying with the retry due at `now`) whose
/// dependencies are all done. A row whose dependency is not done
/// remembers it, and is passed over at once while it stays so: a step costs
/// a glance per row, not a look at every dependency of every row.
fn ready_rows(plan: &IndexedPlan, rows: &mut Rows, now: DateTime<Utc>) -> Vec<usize> {
    let mut ready = Vec::new();
    for i in 0..rows.nodes.len() {
        let state = &rows.nodes[i];
        let due = match state.status {
            NodeStatus::Pending => true,
            NodeStatus::Retrying => state.next_attempt_at.is_none_or(|at| at <= now),
            _ => false,
        };
        if !due {
            continue;
        }
        if rows.blocked_on[i].is_some_and(|j| !done(rows.nodes[j].status)) {
            continue;
        }
        // An item's dependencies are its map node's, done when it began.
        if !rows.is_item(i) {
            let Some(spec) = plan.node(&state.node) else {
                continue;
            };
            let waiting = spec.deps.iter().find_map(|d| match rows.index(d) {
                Some(j) if done(rows.nodes[j].status) => None,
                other => Some(other),
            });
            match waiting {
                Some(Some(j)) => {
                    rows.blocked_on[i] = Some(j);
                    continue;
                }
                // A dependency without a row never finishes.
                Some(None) => continue,
                None => {}
            }
        }
        rows.blocked_on[i] = None;
        ready.push(i);
    }
    ready
}

/// Whether row `i` failed in a way that stops the execution: a failed
/// item is its map node's to judge, and a failed node of an item of a map
/// over a sub-workflow its item's.
fn failed_for_good(rows: &Rows, i: usize) -> bool {
    matches!(
        rows.nodes[i].status,
        NodeStatus::Failed | NodeStatus::TimedOut
    ) && !rows.is_item(i)
        && rows.group_of(i).is_none()
}

/// Whether every node of the plan is done (the items of a map node that
/// succeeded may have failed, within its `minSuccessRatio`; the nodes of
/// such an item have ended, none still running).
fn all_done(rows: &Rows) -> bool {
    (0..rows.nodes.len()).all(|i| {
        let status = rows.nodes[i].status;
        rows.is_item(i) || done(status) || rows.group_of(i).is_some() && status.is_terminal()
    })
}

/// What `inputs.*` reads for row `i`: the execution's inputs, or, for a
/// node of an item of a map over a sub-workflow, the item's.
fn inputs_of<'a>(execution: &'a Execution, rows: &'a Rows, i: usize) -> &'a Value {
    rows.group_of(i)
        .and_then(|g| rows.nodes[g].inputs.as_ref())
        .unwrap_or(&execution.inputs)
}

/// How many items of each map node (by row) are running.
fn running_items(rows: &Rows) -> HashMap<usize, usize> {
    rows.maps()
        .map(|m| {
            let running = rows
                .items_of(m)
                .iter()
                .filter(|&&i| rows.nodes[i].status == NodeStatus::Running)
                .count();
            (m, running)
        })
        .collect()
}

/// Whether an item of map node `spec` must wait: `maxParallel` of its
/// siblings (`running`) run.
fn throttled(spec: &PlanNode, running: usize) -> bool {
    spec.map
        .as_ref()
        .and_then(|m| m.max_parallel)
        .is_some_and(|max| running >= max as usize)
}

/// How a map node's items decided it.
enum Verdict {
    Succeeded(Value),
    Failed(String),
}

/// The running map nodes (their rows) that their items have decided.
fn map_verdicts(plan: &IndexedPlan, rows: &Rows) -> Vec<(usize, Verdict)> {
    let mut verdicts = Vec::new();
    for m in rows.maps() {
        let state = &rows.nodes[m];
        if state.status != NodeStatus::Running {
            continue;
        }
        let Some(spec) = plan.node(&state.node) else {
            continue;
        };
        let spec: &PlanNode = &spec;
        let Some(map) = &spec.map else {
            continue;
        };
        let items: Vec<&NodeState> = rows.items_of(m).iter().map(|&i| &rows.nodes[i]).collect();
        let failed: Vec<&NodeState> = items
            .iter()
            .copied()
            .filter(|n| matches!(n.status, NodeStatus::Failed | NodeStatus::TimedOut))
            .collect();
        let tolerated = map.tolerated_failures(items.len());
        if failed.len() > tolerated {
            let first = failed[0];
            let why = first.error.as_deref().unwrap_or("");
            let error = if tolerated == 0 && map.min_success_ratio >= 1.0 {
                format!("item `{}` {}: {why}", first.node, first.status)
            } else {
                format!(
                    "{} of {} items failed, more than minSuccessRatio {} allows; the first, `{}`: {why}",
                    failed.len(),
                    items.len(),
                    map.min_success_ratio,
                    first.node
                )
            };
            verdicts.push((m, Verdict::Failed(error)));
        } else if items.iter().all(|n| n.status.is_terminal()) {
            // Rows are in item order but for those a recovery kept, which
            // come first.
            let mut ordered = items;
            ordered.sort_by_key(|n| super::plan::item_of(&n.node).map(|(_, i)| i));
            verdicts.push((m, Verdict::Succeeded(map_outputs(spec, &ordered))));
        }
    }
    verdicts
}

/// A map node's outputs: for each output of its task, the list of its
/// items' values in item order, null for an item that did not succeed.
fn map_outputs(spec: &PlanNode, items: &[&NodeState]) -> Value {
    let outputs = spec
        .spec
        .outputs
        .keys()
        .map(|name| {
            let values = items
                .iter()
                .map(|item| match (&item.status, &item.outputs) {
                    (NodeStatus::Succeeded, Some(outputs)) => {
                        outputs.get(name).cloned().unwrap_or(Value::Null)
                    }
                    _ => Value::Null,
                })
                .collect();
            (name.clone(), Value::Array(values))
        })
        .collect();
    Value::Object(outputs)
}

/// How its nodes decided item row `g` of map node `spec` (over a
/// sub-workflow), if they did: the first that failed fails it; once all
/// succeeded or were skipped, its outputs are the sub-workflow's.
fn item_verdict(spec: &PlanNode, rows: &Rows, g: usize) -> Option<Verdict> {
    let workflow = spec.mapped_workflow()?;
    let members = rows.members_of(g);
    let failed = members
        .iter()
        .map(|&m| &rows.nodes[m])
        .find(|n| matches!(n.status, NodeStatus::Failed | NodeStatus::TimedOut));
    if let Some(n) = failed {
        let why = n.error.as_deref().unwrap_or("");
        return Some(Verdict::Failed(format!(
            "node `{}` {}: {why}",
            n.node, n.status
        )));
    }
    if !members.iter().all(|&m| done(rows.nodes[m].status)) {
        return None;
    }
    let item = &rows.nodes[g];
    let inputs = item.inputs.as_ref().unwrap_or(&Value::Null);
    let mut values = serde_json::Map::new();
    for (name, binding) in workflow.outputs_under(&format!("{}/", item.node)) {
        let value = match resolve(&binding, inputs, rows) {
            Ok(v) => v,
            // Its node was skipped by a condition: null, as declared.
            Err(_)
                if workflow.optional_outputs.contains(&name)
                    && first_skipped(&binding, rows).is_some() =>
            {
                Value::Null
            }
            Err(e) => return Some(Verdict::Failed(format!("workflow output `{name}`: {e}"))),
        };
        values.insert(name, value);
    }
    Some(Verdict::Succeeded(Value::Object(values)))
}

/// A JSON object as a map (none: empty).
fn object(value: Option<&Value>) -> BTreeMap<String, Value> {
    value
        .and_then(Value::as_object)
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default()
}

/// When a waiting gate times out: its wait began at `started_at`.
fn gate_deadline_of(spec: &PlanNode, state: &NodeState) -> Option<DateTime<Utc>> {
    let timeout = spec.spec.timeout.as_ref()?.value(Field::Timeout).ok()?;
    let timeout = chrono::Duration::from_std(timeout).ok()?;
    state.started_at?.checked_add_signed(timeout)
}

/// How often a waiting gate's decision is looked for: a decision recorded
/// by another process (`weir approve` beside a `run --wait`, or another
/// replica's API) wakes nothing here.
const DECISION_POLL: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// When to look at the waiting gates again: the earliest instant one
/// times out (`now` at the earliest), or the next look for a decision.
fn gate_deadline(
    plan: &IndexedPlan,
    nodes: &[NodeState],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let waiting = nodes.iter().filter(|n| n.status == NodeStatus::Waiting);
    waiting
        .map(|n| {
            let look = now + DECISION_POLL;
            plan.node(&n.node)
                .and_then(|spec| gate_deadline_of(&spec, n))
                .map_or(look, |at| at.max(now).min(look))
        })
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

/// What a node whose dependencies are all done does next.
enum Readiness {
    /// Runs with these inputs.
    Run(BTreeMap<String, Value>),
    /// A map node: runs an item per value of `list`, each with these
    /// inputs and its value.
    Map {
        inputs: BTreeMap<String, Value>,
        list: Vec<Value>,
    },
    /// Is skipped: it reads a skipped node's output, or a condition is
    /// false (why, for the log).
    Skip(String),
    /// Fails: an input cannot be bound, or a condition cannot be
    /// evaluated.
    Fail(String),
}

fn readiness(spec: &PlanNode, execution_inputs: &Value, rows: &Rows) -> Readiness {
    if let Some(Binding::Output { node, .. }) = spec.bindings().find_map(|b| first_skipped(b, rows))
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
            match resolve(binding, execution_inputs, rows) {
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
        match resolve(binding, execution_inputs, rows) {
            Ok(v) => {
                inputs.insert(name.clone(), v);
            }
            Err(e) => return Readiness::Fail(format!("input `{name}`: {e}")),
        }
    }
    let Some(map) = &spec.map else {
        return Readiness::Run(inputs);
    };
    match resolve(&map.over, execution_inputs, rows) {
        Ok(Value::Array(list)) => Readiness::Map { inputs, list },
        Ok(other) => Readiness::Fail(format!(
            "`map.over` is {}, not a list",
            crate::spec::types::describe(&other)
        )),
        Err(e) => Readiness::Fail(format!("`map.over`: {e}")),
    }
}

/// The first output binding inside `binding` that reads a skipped node,
/// if it reads one.
fn first_skipped<'a>(binding: &'a Binding, rows: &Rows) -> Option<&'a Binding> {
    match binding {
        Binding::Output { node, .. }
            if rows
                .get(node)
                .is_some_and(|n| n.status == NodeStatus::Skipped) =>
        {
            Some(binding)
        }
        Binding::Concat { parts } => parts.iter().find_map(|p| first_skipped(p, rows)),
        _ => None,
    }
}

/// The value of a binding: an execution input, a literal, or an output of
/// a node that succeeded.
fn resolve(binding: &Binding, inputs: &Value, rows: &Rows) -> Result<Value, BindingError> {
    match binding {
        Binding::Literal { value } => Ok(value.clone()),
        Binding::Input { name } => inputs
            .get(name)
            .cloned()
            .ok_or_else(|| BindingError::NoInput(name.clone())),
        Binding::Output { node, output } => rows
            .get(node)
            .filter(|n| n.status == NodeStatus::Succeeded)
            .and_then(|n| n.outputs.as_ref()?.get(output))
            .cloned()
            .ok_or_else(|| BindingError::NoOutput {
                node: node.clone(),
                output: output.clone(),
            }),
        Binding::Concat { parts } => {
            let mut text = String::new();
            for part in parts {
                match resolve(part, inputs, rows)? {
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
