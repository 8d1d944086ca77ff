//! Running attempts: how the engine starts a node's attempt on an executor
//! and learns how it ended.
//!
//! An attempt runs on the engine's executor (`crate::executor::Executor`:
//! local process groups unless told otherwise, or Kubernetes Jobs), which
//! the engine never asks the kind of. The engine stores where it runs (the
//! node's handle, [`NodeHandle`]) before it starts. When it ends the executor
//! tells [`EngineEvents`]: it is queued as [`Finished`] and the engine
//! woken; the next step of the
//! node state machine ([`super::nodes`]) records it here: success completes
//! the node; a failure or a timeout is retried after the task's backoff
//! ([`super::retry`]) while attempts remain; an interruption (the process
//! driving it died, or this engine killed it on losing the lease) is
//! retried at once, apart from the task's budget, up to
//! [`MAX_INTERRUPTIONS`] times. The task's `timeout` and `backoff` are
//! read as parsed when its definition was read: a stored text that does
//! not parse fails the node, naming it, rather than running it on a
//! guess.
//!
//! An engine never touches a local attempt it does not own
//! ([`super::owner`]): a running node no attempt of this process runs is
//! recovered only when the engine that started it no longer holds the
//! store's engine lease, and its process group is signalled only on the
//! host (and boot) that started it. A Job has no owner (it outlives its
//! engine): whichever engine leads adopts it from the store, and records
//! its end only while its node still runs that attempt.
//!
//! What it must not do: decide which node runs next, or complete a node
//! other than through [`Engine::complete`] (I5).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::handle::NodeHandle;
use super::mirror::IndexedPlan;
use super::{Engine, Error, NodeEvent, Owner, PlanNode, lock, retry};
use crate::executor::{
    Adoption, AttemptHandle, AttemptKey, AttemptRequest, BoxFuture, Events, Outcome,
};
use crate::spec::ExecutionId;
use crate::spec::duration::Field;
use crate::store::execution::{EngineWrite, Execution, NodeState, NodeStatus};
use crate::store::{ENGINE_LEASE, Store};
use crate::task::RepositoryFiles;

/// How many times a node may be interrupted (its process died with the
/// engine driving it) and retried regardless of its own retry policy.
const MAX_INTERRUPTIONS: u64 = 3;

/// An attempt ready to start once the writes before it are applied
/// ([`Engine::flush`]).
pub(super) struct Launch {
    /// Its node as those writes record it.
    pub(super) node: NodeState,
    pub(super) request: AttemptRequest,
    /// Where the executor placed it (stored in `node`).
    pub(super) handle: AttemptHandle,
}

/// An attempt that ended, waiting to be recorded.
#[derive(Clone)]
pub(super) struct Finished {
    pub(super) key: AttemptKey,
    pub(super) outcome: Outcome,
}

/// The engine's side of [`Events`]: an ended attempt is queued in
/// `finished` and the engine woken; a handle change is written into the
/// node as recorded when its attempt started.
pub(super) struct EngineEvents {
    pub(super) store: Arc<dyn Store>,
    pub(super) finished: Arc<Mutex<Vec<Finished>>>,
    pub(super) wake: Arc<tokio::sync::Notify>,
    /// The nodes of the attempts started and not yet ended, as recorded
    /// when they started.
    pub(super) started: Mutex<HashMap<AttemptKey, NodeState>>,
    /// The engine's node rows, which a handle written here changes too.
    pub(super) mirror: Arc<super::mirror::NodeMirror>,
}

impl Events for EngineEvents {
    fn handle_changed<'a>(
        &'a self,
        key: &'a AttemptKey,
        handle: &'a AttemptHandle,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(mut node) = lock(&self.started).get(key).cloned() else {
                return;
            };
            let mut stored = NodeHandle::read(&node);
            stored.attempt = Some(handle.clone());
            stored.store_in(&mut node);
            // At once, not with the next pass: should this process die,
            // the next engine finds the attempt by it.
            match self.store.update_node(&node).await {
                Ok(()) => self.mirror.node_written(&node),
                Err(e) => {
                    tracing::warn!(execution = %key.execution, node = %key.node, error = %e, "cannot record where an attempt runs")
                }
            }
        })
    }

    fn ended(&self, key: AttemptKey, outcome: Outcome) {
        lock(&self.started).remove(&key);
        lock(&self.finished).push(Finished { key, outcome });
        self.wake.notify_one();
    }
}

impl Engine {
    /// Stops the attempts still running in this process (leadership lost,
    /// or shutting down). Each ends as interrupted, not failed: it is
    /// retried apart from its task's retries, by this engine should it
    /// drive the store again, else by whichever engine does (their nodes
    /// stay `running` in the store until then).
    /// Attempts that outlive this engine (Jobs) are no longer followed
    /// here: should this engine lead again, it takes them over from the
    /// store, as any engine does, rather than from what it knew before.
    pub fn kill_running(&self) {
        self.executor.stop_all();
        lock(&self.running).retain(|_, outlives| !*outlives);
        lock(&self.events.started).clear();
        // Another engine may write these executions' rows from now on.
        self.mirror.forget();
    }

    /// The executor's events, as it takes them.
    pub(super) fn events(&self) -> Arc<dyn Events> {
        self.events.clone()
    }

    /// Starts the attempts of `launches`, whose nodes are recorded running
    /// (an attempt that does not start is an interruption: retried at
    /// once, a bounded number of times).
    pub(super) async fn launch(&self, launches: Vec<Launch>) {
        for Launch {
            node,
            request,
            handle,
        } in launches
        {
            let key = request.key.clone();
            lock(&self.events.started).insert(key.clone(), node);
            if let Err(e) = self.executor.start(request, handle, self.events()).await {
                tracing::warn!(execution = %key.execution, node = %key.node, executor = self.executor.name(), error = %e, "cannot start an attempt");
                self.events.ended(key, Outcome::Interrupted);
            }
        }
    }

    /// The engine holding the store's engine lease now, if any.
    async fn lease_holder(&self) -> Result<Option<String>, Error> {
        let now = self.clock.now();
        let lease = self.store.lease(ENGINE_LEASE).await?;
        Ok(lease.filter(|l| l.is_live(now)).map(|l| l.holder))
    }

    fn take_finished(&self, execution: &ExecutionId) -> Vec<Finished> {
        let mut all = self.finished.lock().expect("lock");
        let (mine, rest): (Vec<_>, Vec<_>) =
            all.drain(..).partition(|f| &f.key.execution == execution);
        *all = rest;
        mine
    }

    /// Records the attempts of `execution` that ended since the last step
    /// (those this engine still owns).
    pub(super) async fn record_finished(
        &self,
        execution: &Execution,
        plan: &IndexedPlan,
        rows: &mut super::mirror::Rows,
    ) -> Result<(), Error> {
        for done in self.take_finished(&execution.id) {
            lock(&self.running).remove(&done.key);
            // Kept until the writes recording it are committed (given back
            // to `finished` should they be dropped).
            self.recorded.lock().expect("lock").push(done.clone());
            let Some(i) = rows.index(&done.key.node) else {
                continue;
            };
            let state = &mut rows.nodes[i];
            let Some(spec) = plan.node(&done.key.node) else {
                continue;
            };
            // Another engine took the node over meanwhile (this one lost
            // the lease): its state is no longer this attempt's to write.
            // (An attempt that outlives its engine, a Job, is nobody's,
            // but its node must still be running it, not a later attempt.)
            let handle = NodeHandle::read(state);
            let running = state.status == NodeStatus::Running && state.attempts == done.key.attempt;
            let still_mine =
                running && (handle.outlives_engine() || handle.owner.as_ref() == Some(&self.owner));
            if !still_mine {
                tracing::warn!(execution = %execution.id, node = %state.node, "an attempt ended after another engine took its node over; not recorded");
                continue;
            }
            self.record(execution, &spec, state, done.outcome).await?;
        }
        Ok(())
    }

    /// Running nodes this process does not run: their engine died or lost
    /// the lease. Adopts those that outlive their engine (Jobs still
    /// running in the cluster); leaves alone those of an engine that still
    /// holds the lease; has the executor stop what is left of the others
    /// (on this host only) and retries them as interrupted.
    pub(super) async fn recover_unknown(
        &self,
        execution: &Execution,
        plan: &IndexedPlan,
        nodes: &mut [NodeState],
    ) -> Result<(), Error> {
        let mut lease_holder = None;
        // A map node runs no attempt of its own (its items do), nor an
        // item of a map over a sub-workflow (its nodes do).
        let attempts = nodes.iter_mut().filter(|n| {
            n.status == NodeStatus::Running
                && !plan
                    .node(&n.node)
                    .is_some_and(|s| s.runs_no_attempt_at(&n.node))
        });
        for state in attempts {
            let key = AttemptKey {
                execution: execution.id.clone(),
                node: state.node.clone(),
                attempt: state.attempts,
            };
            if lock(&self.running).contains_key(&key) {
                continue;
            }
            let handle = NodeHandle::read(state);
            let outlives = handle.outlives_engine();
            let owner = handle.owner.clone();
            // An attempt that outlives its engine (a Job) is taken over
            // whoever started it; another is left to its engine while that
            // engine holds the lease.
            if let Some(owner) = owner
                .as_ref()
                .filter(|o| !outlives && o.engine != self.owner.engine)
            {
                if lease_holder.is_none() {
                    lease_holder = Some(self.lease_holder().await?);
                }
                if lease_holder
                    .as_ref()
                    .is_some_and(|h| h.as_deref() == Some(&owner.engine))
                {
                    tracing::debug!(execution = %execution.id, node = %state.node, engine = %owner.engine, "an attempt of the engine holding the lease; left to it");
                    continue;
                }
            }
            if let Some(attempt) = &handle.attempt {
                let started_here = owner.as_ref().is_some_and(Owner::may_signal_here);
                tracing::info!(execution = %execution.id, node = %state.node, engine = owner.as_ref().map_or("unknown", |o| o.engine.as_str()), host = owner.as_ref().map_or("unknown", |o| o.host.as_str()), "taking over an attempt whose engine is gone");
                match self
                    .executor
                    .adopt(&key, attempt, started_here, &self.events())
                    .await
                {
                    Adoption::Adopted => {
                        lock(&self.running).insert(key, outlives);
                        continue;
                    }
                    Adoption::Gone => {}
                    Adoption::Foreign => {
                        tracing::warn!(execution = %execution.id, node = %state.node, executor = self.executor.name(), "an attempt of another executor: not reachable from here");
                    }
                }
            }
            let Some(spec) = plan.node(&state.node) else {
                continue;
            };
            // An execution being cancelled does not retry it.
            let outcome = if execution.cancel_requested {
                Outcome::Cancelled
            } else {
                Outcome::Interrupted
            };
            self.record(execution, &spec, state, outcome).await?;
        }
        Ok(())
    }

    /// Asks the attempt of `(execution, node)` running here to stop (it
    /// ends cancelled, and is recorded as such when it has).
    pub(super) async fn cancel_attempt(&self, execution: &ExecutionId, state: &NodeState) {
        let key = AttemptKey {
            execution: execution.clone(),
            node: state.node.clone(),
            attempt: state.attempts,
        };
        self.executor.cancel(&key, &self.events()).await;
    }

    /// The repository files `node`'s task runs, read at the commit of its
    /// version (each, or why it could not be).
    fn repository_files(&self, execution: &Execution, node: &PlanNode) -> RepositoryFiles {
        self.task_types
            .repository_files(&node.spec)
            .into_iter()
            .map(|(key, path)| {
                let text = match node.files_commit() {
                    Some(commit) => self
                        .files
                        .read(&execution.source, commit, &path)
                        .map_err(|e| e.to_string())
                        .and_then(|bytes| {
                            // A task type reads text; bytes that are not
                            // are refused, never silently altered.
                            String::from_utf8(bytes).map_err(|e| {
                                format!(
                                    "`{path}` is not UTF-8 text (invalid byte at offset {})",
                                    e.utf8_error().valid_up_to()
                                )
                            })
                        }),
                    None => Err(format!(
                        "`{path}`: the execution's plan names no commit to read it at"
                    )),
                };
                (key.to_owned(), text)
            })
            .collect()
    }

    /// Starts an attempt of `spec` with `inputs`.
    pub(super) async fn start(
        &self,
        execution: &Execution,
        spec: &PlanNode,
        state: &mut NodeState,
        inputs: BTreeMap<String, Value>,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let inputs_value = Value::Object(inputs.clone().into_iter().collect());
        state.attempts += 1;
        state.status = NodeStatus::Running;
        state.inputs = Some(inputs_value);
        state.error = None;
        state.next_attempt_at = None;
        if state.started_at.is_none() {
            state.started_at = Some(now);
        }
        let key = AttemptKey {
            execution: execution.id.clone(),
            node: state.node.clone(),
            attempt: state.attempts,
        };
        let files = self.repository_files(execution, spec);
        let request = AttemptRequest {
            key: key.clone(),
            project: execution.project.clone(),
            commit: execution.commit.clone(),
            task: spec.task.clone(),
            task_version: spec.task_version.clone(),
            spec: spec.spec.clone(),
            inputs,
            timeout,
            files,
            task_types: self.task_types.clone(),
            environment: self.inherited.clone(),
        };
        let handle = self.executor.plan(&request);
        // The owner names the process an attempt dies with: none for one
        // that outlives its engine.
        let owner = (!handle.outlives_engine()).then(|| self.owner.clone());
        NodeHandle::read(state)
            .next_attempt(owner, handle.clone())
            .store_in(state);
        self.write(EngineWrite::Node(state.clone()));
        self.tell(NodeEvent::Started, execution, spec, state);
        tracing::info!(execution = %execution.id, node = %state.node, attempt = state.attempts, executor = self.executor.name(), "starting attempt");
        lock(&self.running).insert(key, handle.outlives_engine());
        // Started by `flush`, once the node is recorded running.
        lock(&self.launches).push(Launch {
            node: state.clone(),
            request,
            handle,
        });
        Ok(())
    }

    /// Records how an attempt ended: success completes the node; a
    /// failure is retried with backoff while attempts remain.
    async fn record(
        &self,
        execution: &Execution,
        spec: &PlanNode,
        state: &mut NodeState,
        outcome: Outcome,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        match outcome {
            Outcome::Succeeded { outputs } => {
                self.complete(execution, spec, state, outputs, now).await?;
            }
            Outcome::Interrupted => {
                // Not the task's fault (Flyte's system retries): retried at
                // once, apart from the task's own retry budget, a few times.
                let mut handle = NodeHandle::read(state);
                handle.interruptions += 1;
                handle.store_in(state);
                let interruptions = handle.interruptions;
                if interruptions <= MAX_INTERRUPTIONS {
                    state.status = NodeStatus::Retrying;
                    state.next_attempt_at = Some(now);
                    state.error = Some(format!(
                        "interrupted: the process running attempt {} stopped; retrying ({interruptions} of {MAX_INTERRUPTIONS})",
                        state.attempts
                    ));
                    tracing::info!(execution = %execution.id, node = %state.node, attempt = state.attempts, "interrupted attempt; retrying");
                } else {
                    state.status = NodeStatus::Failed;
                    state.finished_at = Some(now);
                    state.error = Some(format!(
                        "interrupted {interruptions} times: the processes running it kept stopping"
                    ));
                }
                self.write(EngineWrite::Node(state.clone()));
                if state.status.is_terminal() {
                    self.tell(NodeEvent::Failed, execution, spec, state);
                }
            }
            Outcome::Cancelled => {
                state.status = NodeStatus::Cancelled;
                state.error = Some("cancelled".into());
                state.finished_at = Some(now);
                self.write(EngineWrite::Node(state.clone()));
                self.tell(NodeEvent::Aborted, execution, spec, state);
            }
            failed => {
                let unrunnable = matches!(failed, Outcome::Unrunnable { .. });
                let (status, mut error) = match failed {
                    Outcome::TimedOut => (
                        NodeStatus::TimedOut,
                        format!(
                            "timed out after {}",
                            spec.spec.timeout.as_ref().map_or("?", |t| t.as_str())
                        ),
                    ),
                    Outcome::Failed { error } | Outcome::Unrunnable { error } => {
                        (NodeStatus::Failed, error)
                    }
                    _ => unreachable!("handled above"),
                };
                let retries = spec.spec.retries.attempts;
                if unrunnable && state.attempts <= retries {
                    error =
                        format!("{error}; not retried: another attempt would fail the same way");
                }
                let retry_at = if state.attempts <= retries
                    && !execution.cancel_requested
                    && !unrunnable
                {
                    match spec.spec.retries.backoff.value(Field::Backoff) {
                        Ok(backoff) => Some(retry::due_at(now, backoff, state.attempts)),
                        // Never a default wait: the node fails, saying why.
                        Err(unreadable) => {
                            tracing::error!(execution = %execution.id, node = %state.node, error = %unreadable, "not retried: the task's backoff cannot be read");
                            error = format!("{error}; not retried: {unreadable}");
                            None
                        }
                    }
                } else {
                    None
                };
                if let Some(at) = retry_at {
                    state.status = NodeStatus::Retrying;
                    state.next_attempt_at = Some(at);
                    tracing::info!(execution = %execution.id, node = %state.node, attempt = state.attempts, error = %error, "attempt failed; retrying");
                } else {
                    state.status = status;
                    state.finished_at = Some(now);
                    tracing::info!(execution = %execution.id, node = %state.node, attempt = state.attempts, error = %error, "node failed");
                }
                state.error = Some(error);
                self.write(EngineWrite::Node(state.clone()));
                if state.status.is_terminal() {
                    self.tell(NodeEvent::Failed, execution, spec, state);
                }
            }
        }
        Ok(())
    }
}
