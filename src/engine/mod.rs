//! The execution engine (DESIGN.md section 6), level-triggered: every
//! [`Engine::tick`] reads the unfinished executions and their nodes from the
//! store and drives each one forward — record finished attempts, retry with
//! backoff, fail fast, start ready nodes (or serve them from the cache),
//! complete. All state is in the store, so a restarted process simply
//! continues: an attempt that was running in a process that died is marked
//! interrupted, its process group killed, and it is retried per its policy.
//!
//! Two halves, one file each:
//! - [`nodes`], the node state machine: what an execution does next (which
//!   nodes are ready, fail fast, cancel, finish) and completing a node (its
//!   outputs, cache entry and lineage in one transaction, I5);
//! - [`attempts`], running attempts: starting them on an executor (local
//!   processes, or Kubernetes Jobs through [`kubernetes`]), recording how
//!   they ended (retries with backoff, interruptions, timeouts), and the
//!   owner and engine-lease interplay for attempts this process does not
//!   run ([`owner`]).
//!
//! Time comes from the engine's [`Clock`] (the system clock unless a test
//! gives another, [`Engine::with_clock`]): every due time and recorded
//! instant is read from it, never from the system clock directly.

pub mod admission;
mod attempts;
pub mod backfill;
pub mod create;
pub mod identity;
pub mod kubernetes;
mod nodes;
pub mod owner;
pub mod plan;
pub mod retry;
pub mod scheduler;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::artifact::ArtifactStore;
use crate::clock::Clock;
use crate::executor::environment::Inherited;
use crate::source::git::SourceFiles;
use crate::spec::ExecutionId;
use crate::store::execution::{Execution, NodeState};
use crate::store::{self, Store};

use attempts::Finished;
pub use nodes::{BindingError, resolve};
pub use owner::Owner;
pub use plan::{Binding, Plan, PlanNode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("execution {id} has an unreadable plan: {source}")]
    Plan {
        id: ExecutionId,
        source: serde_json::Error,
    },
    /// Deleted while [`Engine::run_until_finished`] drove it.
    #[error("execution {0} disappeared while it was being driven")]
    Disappeared(ExecutionId),
}

/// What happened to a node, told to every [`Observer`] (OpenLineage events,
/// later metrics and notifications). Observers must not block: they run on
/// the engine's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeEvent {
    /// An attempt started.
    Started,
    /// The node succeeded (also when served from the cache).
    Succeeded,
    /// The node failed or timed out for good (no retry left).
    Failed,
    /// The node was cancelled (a cancel request, or fail-fast).
    Aborted,
}

pub trait Observer: Send + Sync {
    /// `state` is the node's state after the event.
    fn node_event(
        &self,
        event: NodeEvent,
        execution: &Execution,
        node: &PlanNode,
        state: &NodeState,
    );

    /// The execution ended (any terminal status).
    fn execution_finished(&self, _execution: &Execution) {}
}

pub struct Engine {
    store: Arc<dyn Store>,
    artifacts: Arc<dyn ArtifactStore>,
    state_dir: PathBuf,
    /// Attempts running in this process, by (execution, node).
    running: Mutex<HashMap<(ExecutionId, String), CancellationToken>>,
    finished: Arc<Mutex<Vec<Finished>>>,
    /// Woken when an attempt ends.
    pub wake: Arc<tokio::sync::Notify>,
    observers: Vec<Arc<dyn Observer>>,
    files: SourceFiles,
    /// Shutting down: no new attempt starts.
    draining: std::sync::atomic::AtomicBool,
    /// Process groups of the attempts running here.
    groups: Arc<Mutex<HashMap<(ExecutionId, String), u32>>>,
    /// Attempts [`Engine::kill_running`] killed: they end interrupted,
    /// not failed (the engine stopped them, not their task).
    killed: Arc<Mutex<HashSet<(ExecutionId, String)>>>,
    /// Whether this engine may start attempts now (it leads the store);
    /// asked right before each one starts. Unset: always.
    leads: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// Set: attempts run as Kubernetes Jobs instead of local processes.
    kube: Option<Arc<kubernetes::KubeRuns>>,
    /// This engine and host, recorded in every attempt it starts: its
    /// holder name in the engine lease ([`owner`]).
    owner: Owner,
    /// What of the host's environment a task inherits (and the allow-list
    /// task pods apply to theirs).
    inherited: Arc<Inherited>,
    /// Where "now" comes from: due times of retries, recorded instants.
    clock: Clock,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        artifacts: Arc<dyn ArtifactStore>,
        state_dir: PathBuf,
    ) -> Engine {
        // Attempts run in their own folders: paths handed to them must not
        // depend on this process's working directory.
        let state_dir = std::path::absolute(&state_dir).unwrap_or(state_dir);
        Engine {
            store,
            artifacts,
            files: SourceFiles::new(&state_dir),
            state_dir,
            running: Mutex::new(HashMap::new()),
            finished: Arc::new(Mutex::new(Vec::new())),
            wake: Arc::new(tokio::sync::Notify::new()),
            observers: Vec::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            groups: Arc::new(Mutex::new(HashMap::new())),
            killed: Arc::new(Mutex::new(HashSet::new())),
            leads: None,
            kube: None,
            owner: Owner::this_process(),
            inherited: Arc::new(Inherited::default()),
            clock: Clock::system(),
        }
    }

    /// Reads time from `clock` instead of the system clock (a test on
    /// virtual time, or with a clock set to a given instant).
    pub fn with_clock(mut self, clock: Clock) -> Engine {
        self.clock = clock;
        self
    }

    /// The host variables tasks inherit, captured by the caller (the CLI
    /// command building the engine: nothing this deep reads the process's
    /// environment). Without it, tasks inherit nothing, not even `PATH`.
    pub fn with_task_env(mut self, inherited: Inherited) -> Engine {
        self.inherited = Arc::new(inherited);
        self
    }

    /// Starts attempts only while `leads()` says this engine leads the
    /// store (asked right before each attempt starts, so a tick under way
    /// when leadership ends starts nothing more).
    pub fn lead_while(mut self, leads: impl Fn() -> bool + Send + Sync + 'static) -> Engine {
        self.leads = Some(Arc::new(leads));
        self
    }

    /// Whether an attempt may start now: not shutting down, and leading.
    fn may_start(&self) -> bool {
        !self.draining.load(std::sync::atomic::Ordering::SeqCst)
            && self.leads.as_ref().is_none_or(|leads| leads())
    }

    /// Runs attempts as Kubernetes Jobs (`--executor kubernetes`).
    pub fn with_kubernetes(mut self, runs: kubernetes::KubeRuns) -> Engine {
        self.kube = Some(Arc::new(runs));
        self
    }

    /// The Kubernetes executor's state, when attempts run as Jobs.
    pub fn kubernetes(&self) -> Option<&kubernetes::KubeRuns> {
        self.kube.as_deref()
    }

    /// Adds an observer of node events.
    pub fn observe(mut self, observer: Arc<dyn Observer>) -> Engine {
        self.observers.push(observer);
        self
    }

    /// Starts no new attempt from now on (shutdown); running ones go on and
    /// are recorded as they end.
    pub fn stop_starting(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Attempts running in this process.
    pub fn running(&self) -> usize {
        self.running.lock().expect("lock").len()
    }

    fn tell(&self, event: NodeEvent, execution: &Execution, node: &PlanNode, state: &NodeState) {
        for observer in &self.observers {
            observer.node_event(event, execution, node, state);
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// This engine and host: the engine lease's holder name is
    /// `owner().engine`.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Drives every unfinished execution one step, but for those a
    /// backfill's `--max-parallel` holds queued ([`admission`]).
    pub async fn tick(&self) -> Result<(), Error> {
        if let Some(runs) = &self.kube {
            self.poll_jobs(runs).await;
        }
        let unfinished = self.store.unfinished_executions().await?;
        // A backfill's executions beyond its --max-parallel stay queued.
        let held = admission::held(&unfinished);
        for execution in unfinished {
            if !held.contains(&execution.id) {
                self.drive(execution).await?;
            }
        }
        Ok(())
    }

    /// Drives execution `id` alone until it has finished; returns it.
    /// (Other unfinished executions in the store are left to whoever drives
    /// them, e.g. a daemon.)
    pub async fn run_until_finished(&self, id: &ExecutionId) -> Result<Execution, Error> {
        loop {
            let execution = self
                .store
                .execution(id)
                .await?
                .ok_or_else(|| Error::Disappeared(id.clone()))?;
            if execution.status.is_terminal() {
                return Ok(execution);
            }
            if let Some(runs) = &self.kube {
                self.poll_jobs(runs).await;
            }
            let execution = self.drive(execution).await?;
            if execution.status.is_terminal() {
                return Ok(execution);
            }
            let woken = self.wake.notified();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), woken).await;
        }
    }
}
