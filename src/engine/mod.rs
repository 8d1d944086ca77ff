//! The execution engine (DESIGN.md section 6), level-triggered: a full
//! pass ([`Engine::tick`]) reads the unfinished executions and their nodes
//! from the store and drives each one forward — record finished attempts,
//! retry with backoff, fail fast, start ready nodes (or serve them from the
//! cache), complete. All state is in the store, so a restarted process
//! simply continues: an attempt that was running in a process that died is
//! marked interrupted, its process group killed, and it is retried per its
//! policy.
//!
//! Between full passes, which are the safety net, a pass ([`Engine::pass`])
//! costs what changed: it drives only the executions the engine was woken
//! for (created or asked to cancel through its store, an attempt ended), or
//! whose retry is due, or that a backfill's bound now admits (`agenda.rs`),
//! and applies the pass's writes in one transaction before starting the
//! attempts they record (`Engine::flush`). Work another process wrote is
//! found by a cheap check ([`Engine::look_outside`]).
//!
//! Two halves, one file each:
//! - [`nodes`], the node state machine: what an execution does next (which
//!   nodes are ready, fail fast, cancel, finish) and completing a node (its
//!   outputs, cache entry and lineage in one transaction, I5);
//! - [`attempts`], running attempts: starting them on the engine's one
//!   executor (`crate::executor::Executor`, whichever it is: local
//!   processes by default), recording how they ended (retries with
//!   backoff, interruptions, timeouts), and the owner and engine-lease
//!   interplay for attempts this process does not run ([`owner`]);
//!   what an executor leaves behind for executions the store no longer
//!   has is judged in `garbage.rs`.
//!
//! Time comes from the engine's [`Clock`] (the system clock unless a test
//! gives another, [`Engine::with_clock`]): every due time and recorded
//! instant is read from it, never from the system clock directly.

pub mod admission;
mod agenda;
mod attempts;
pub mod backfill;
pub mod create;
mod garbage;
pub mod handle;
pub mod identity;
mod mirror;
mod nodes;
pub mod owner;
pub mod plan;
pub mod relaunch;
pub mod retry;
pub mod scheduler;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::artifact::ArtifactStore;
use crate::clock::Clock;
use crate::executor::environment::Inherited;
use crate::executor::{AttemptKey, Executor, LocalExecutor, lock};
use crate::source::git::SourceFiles;
use crate::spec::ExecutionId;
use crate::store::execution::{EngineWrite, Execution, NodeState, WorkListener};
use crate::store::{self, Store};
use crate::task::TaskTypes;

use agenda::Agenda;
use attempts::{EngineEvents, Finished};
pub use handle::NodeHandle;
pub use nodes::BindingError;
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

    /// The execution started: the engine moved it from queued to running
    /// (`started_at` is set). Told once per execution, as node events are,
    /// after the write is committed.
    fn execution_started(&self, _execution: &Execution) {}

    /// The execution ended (any terminal status).
    fn execution_finished(&self, _execution: &Execution) {}
}

pub struct Engine {
    store: Arc<dyn Store>,
    /// Runs the attempts (local processes unless told otherwise).
    executor: Arc<dyn Executor>,
    /// What the executor tells this engine.
    events: Arc<EngineEvents>,
    /// Attempts this engine started or took over and has not recorded
    /// the end of yet, and whether each outlives this engine (a Job).
    running: Mutex<HashMap<AttemptKey, bool>>,
    finished: Arc<Mutex<Vec<Finished>>>,
    /// Woken when an attempt ends, or when the store tells of an
    /// execution created or asked to cancel in this process.
    pub wake: Arc<tokio::sync::Notify>,
    /// Woken by whoever created executions the engine may not have been
    /// told of (the scheduler): the next pass lists the unfinished
    /// executions again ([`Engine::look_again`]).
    pub rescan: Arc<tokio::sync::Notify>,
    observers: Vec<Arc<dyn Observer>>,
    files: SourceFiles,
    /// The task types attempts run with (the built-in ones unless told
    /// otherwise): which repository files a task reads, and what it runs.
    task_types: TaskTypes,
    /// Shutting down: no new attempt starts.
    draining: std::sync::atomic::AtomicBool,
    /// Whether this engine may start attempts now (it leads the store);
    /// asked right before each one starts. Unset: always.
    leads: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// When the executor's objects were last checked against the store
    /// (`garbage.rs`).
    last_gc: Mutex<Option<tokio::time::Instant>>,
    /// This engine and host, recorded in every attempt it starts: its
    /// holder name in the engine lease ([`owner`]).
    owner: Owner,
    /// What of the host's environment a task inherits (and the allow-list
    /// task pods apply to theirs).
    inherited: Arc<Inherited>,
    /// Where "now" comes from: due times of retries, recorded instants.
    clock: Clock,
    /// What to drive next: the unfinished executions held here and which
    /// need a step (`agenda.rs`).
    agenda: Arc<Mutex<Agenda>>,
    /// The writes of the steps under way, applied together in one
    /// transaction by [`Engine::flush`].
    writes: Mutex<Vec<EngineWrite>>,
    /// Attempts whose node is recorded running once the writes before them
    /// are applied: started by [`Engine::flush`] right after, never
    /// before.
    launches: Mutex<Vec<attempts::Launch>>,
    /// What observers are to hear of the steps under way: told by
    /// [`Engine::flush`] once their writes are committed, dropped with
    /// them, so metrics and lineage never count a step the store lost.
    told: Mutex<Vec<Told>>,
    /// Ended attempts recorded by the writes under way: given back to
    /// `finished` when those writes are dropped, so an outcome is never
    /// lost with a failed write (it is recorded again by the next pass).
    recorded: Mutex<Vec<attempts::Finished>>,
    /// How many times the buffers were flushed: a step's marks
    /// ([`Marks`]) are positions in the buffers of one generation.
    flushes: std::sync::atomic::AtomicU64,
    /// The plans of the executions it drives, parsed once.
    plans: mirror::Plans,
    /// Their node rows as the store has them (`mirror.rs`): a step reads
    /// the store only for an execution it has none of.
    mirror: Arc<mirror::NodeMirror>,
    /// Told by the store of executions created or asked to cancel in this
    /// process: marks them in the agenda and wakes the engine. Kept here
    /// (the store holds it weakly) for as long as the engine lives.
    _listener: Arc<WorkListener>,
}

/// An event for the observers, held until its writes are committed.
enum Told {
    Node(Box<(NodeEvent, Execution, PlanNode, NodeState)>),
    Started(Box<Execution>),
    Ended(Box<Execution>),
}

/// How far the buffers of the steps under way were filled before a step.
#[derive(Default, Clone, Copy)]
struct Marks {
    flushes: u64,
    writes: usize,
    launches: usize,
    told: usize,
    recorded: usize,
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
        let wake = Arc::new(tokio::sync::Notify::new());
        let agenda = Arc::new(Mutex::new(Agenda::default()));
        let listener: Arc<WorkListener> = {
            let (agenda, wake) = (Arc::downgrade(&agenda), wake.clone());
            Arc::new(move |id: &ExecutionId| {
                if let Some(agenda) = agenda.upgrade() {
                    lock(&agenda).mark_stale(id);
                    wake.notify_one();
                }
            })
        };
        store.on_work(Arc::downgrade(&listener));
        let finished = Arc::new(Mutex::new(Vec::new()));
        let mirror = Arc::new(mirror::NodeMirror::default());
        let events = Arc::new(EngineEvents {
            store: store.clone(),
            finished: finished.clone(),
            wake: wake.clone(),
            started: Mutex::new(HashMap::new()),
            mirror: mirror.clone(),
        });
        Engine {
            store,
            executor: Arc::new(LocalExecutor::new(state_dir.clone(), artifacts)),
            events,
            files: SourceFiles::new(&state_dir),
            task_types: TaskTypes::builtin(),
            running: Mutex::new(HashMap::new()),
            finished,
            wake,
            rescan: Arc::new(tokio::sync::Notify::new()),
            observers: Vec::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            leads: None,
            last_gc: Mutex::new(None),
            owner: Owner::this_process(),
            inherited: Arc::new(Inherited::default()),
            clock: Clock::system(),
            agenda,
            writes: Mutex::new(Vec::new()),
            launches: Mutex::new(Vec::new()),
            told: Mutex::new(Vec::new()),
            recorded: Mutex::new(Vec::new()),
            flushes: std::sync::atomic::AtomicU64::new(0),
            plans: mirror::Plans::default(),
            mirror,
            _listener: listener,
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

    /// Runs attempts on `executor` instead of local processes (Jobs, when
    /// the daemon is told so).
    pub fn with_executor(mut self, executor: Arc<dyn Executor>) -> Engine {
        self.executor = executor;
        self
    }

    /// Runs tasks of `task_types` (the built-in ones by default): each
    /// attempt's request carries them to the executor, which asks them what
    /// to run, and the engine reads the repository files they name.
    pub fn with_task_types(mut self, task_types: TaskTypes) -> Engine {
        self.task_types = task_types;
        self
    }

    /// The task types it runs.
    pub fn task_types(&self) -> &TaskTypes {
        &self.task_types
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

    /// Attempts running in this process (not those that outlive it, such
    /// as Jobs).
    pub fn running(&self) -> usize {
        lock(&self.running)
            .values()
            .filter(|outlives| !**outlives)
            .count()
    }

    /// Observers hear of `event` once the writes buffered with it are
    /// committed ([`Engine::flush`]).
    fn tell(&self, event: NodeEvent, execution: &Execution, node: &PlanNode, state: &NodeState) {
        if !self.observers.is_empty() {
            let told = (event, execution.clone(), node.clone(), state.clone());
            lock(&self.told).push(Told::Node(Box::new(told)));
        }
    }

    /// Observers hear that `execution` started once its write is committed.
    fn tell_started(&self, execution: &Execution) {
        if !self.observers.is_empty() {
            lock(&self.told).push(Told::Started(Box::new(execution.clone())));
        }
    }

    /// Observers hear that `execution` ended once its write is committed.
    fn tell_ended(&self, execution: &Execution) {
        if !self.observers.is_empty() {
            lock(&self.told).push(Told::Ended(Box::new(execution.clone())));
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

    /// The full pass, the safety net: reads every unfinished execution
    /// from the store and drives each one, but for those a backfill's
    /// `--max-parallel` holds queued ([`admission`]). It also fills the
    /// agenda the cheaper [`Engine::pass`] works from.
    pub async fn tick(&self) -> Result<(), Error> {
        // The safety net reads everything again, whoever wrote it.
        self.mirror.forget();
        self.plans.forget();
        self.executor.observe(&self.events()).await;
        self.collect_garbage().await;
        let unfinished = self.store.unfinished_executions().await?;
        {
            let mut agenda = lock(&self.agenda);
            for id in agenda.load(unfinished) {
                agenda.wake(&id);
            }
        }
        self.drive_due().await
    }

    /// A pass over what changed since the last one: the executions created
    /// or asked to cancel in this process (read again), those an attempt of
    /// which ended, those with a retry due, and the queued ones a
    /// backfill's bound now admits. Reads nothing else; a full pass
    /// ([`Engine::tick`]) when none filled the agenda yet.
    pub async fn pass(&self) -> Result<(), Error> {
        if !lock(&self.agenda).is_loaded() {
            return self.tick().await;
        }
        // Jobs are listed only while some run.
        if self.executor.polls() {
            self.executor.observe(&self.events()).await;
        }
        let (stale, rescan) = lock(&self.agenda).take_news();
        if rescan {
            let unfinished = self.store.unfinished_executions().await?;
            lock(&self.agenda).merge(unfinished);
        }
        if !stale.is_empty() {
            // One read for all of them.
            let mut read = self.store.executions_of(&stale).await?;
            let mut agenda = lock(&self.agenda);
            for id in stale {
                let execution = read.remove(&id);
                agenda.refresh(&id, execution);
            }
        }
        self.drive_due().await
    }

    /// Drives what the agenda says is due, then what a finished execution
    /// of a bounded backfill admits in its place.
    async fn drive_due(&self) -> Result<(), Error> {
        {
            let ended: Vec<ExecutionId> = lock(&self.finished)
                .iter()
                .map(|f| f.key.execution.clone())
                .collect();
            let mut agenda = lock(&self.agenda);
            for id in ended {
                agenda.wake(&id);
            }
        }
        loop {
            let batch = lock(&self.agenda).take_due(self.clock.now());
            // The batch's nodes: those the mirror has not, in one read
            // (the writes before are applied).
            let mut nodes = HashMap::new();
            let mut unread = Vec::new();
            for execution in &batch {
                match self.mirror.take_or_hold(&execution.id) {
                    Some(mirrored) => {
                        nodes.insert(execution.id.clone(), mirrored);
                    }
                    None => unread.push(execution.id.clone()),
                }
            }
            if !unread.is_empty() {
                match self.store.nodes_of(&unread).await {
                    Ok(read) => {
                        for (id, rows) in read {
                            nodes.insert(id, mirror::Rows::new(rows));
                        }
                    }
                    Err(e) => return Err(self.abandon(e.into())),
                }
            }
            let mut freed = false;
            for execution in batch {
                let bounded = execution.options.backfill.is_some();
                let id = execution.id.clone();
                let read = nodes.remove(&execution.id);
                let marks = self.marks();
                match self.drive_on(execution, read).await {
                    Ok(driven) => {
                        freed |= bounded && driven.execution.status.is_terminal();
                        lock(&self.agenda).record(driven.execution, driven.next_due);
                    }
                    // This execution's step alone is undone; the others'
                    // are kept. It is driven again when woken or by the
                    // next full pass.
                    Err(e) => {
                        self.undo_to(marks);
                        tracing::error!(execution = %id, error = %e, "cannot drive the execution; its step is undone");
                    }
                }
            }
            // The pass's writes in one transaction, then its attempts.
            if let Err(e) = self.flush().await {
                return Err(self.abandon(e));
            }
            if !freed {
                return Ok(());
            }
        }
    }

    /// Buffers a write of the step under way ([`Engine::flush`] applies it).
    fn write(&self, write: EngineWrite) {
        lock(&self.writes).push(write);
    }

    /// Applies the buffered writes in one transaction, then starts the
    /// attempts whose nodes they recorded running (an attempt never runs
    /// before its node says so in the store). On an error nothing was
    /// written and nothing starts.
    async fn flush(&self) -> Result<(), Error> {
        let writes = std::mem::take(&mut *lock(&self.writes));
        self.flushes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !writes.is_empty() {
            if let Err(e) = self.store.apply_engine_writes(&writes).await {
                self.undo_to(Marks::default());
                // The rows the steps left in the mirror say what was not
                // written.
                self.mirror.forget();
                return Err(e.into());
            }
            self.mirror.written(&writes);
            for write in &writes {
                if let EngineWrite::Execution(execution) = write
                    && execution.status.is_terminal()
                {
                    self.plans.ended(&execution.id);
                }
            }
        }
        lock(&self.recorded).clear();
        let launches = std::mem::take(&mut *lock(&self.launches));
        self.launch(launches).await;
        let told = std::mem::take(&mut *lock(&self.told));
        for told in told {
            for observer in &self.observers {
                match &told {
                    Told::Node(node) => {
                        let (event, execution, spec, state) = node.as_ref();
                        observer.node_event(*event, execution, spec, state);
                    }
                    Told::Started(execution) => observer.execution_started(execution),
                    Told::Ended(execution) => observer.execution_finished(execution),
                }
            }
        }
        Ok(())
    }

    /// A pass failed: its buffered writes, attempts and events are dropped,
    /// the attempts it recorded are given back to be recorded again, and
    /// the agenda is forgotten, so the next pass reads everything again.
    fn abandon(&self, error: Error) -> Error {
        self.undo_to(Marks::default());
        self.mirror.forget();
        lock(&self.agenda).forget();
        error
    }

    /// Where the buffers stand before a step (to undo that step alone).
    fn marks(&self) -> Marks {
        Marks {
            flushes: self.flushes.load(std::sync::atomic::Ordering::Relaxed),
            writes: lock(&self.writes).len(),
            launches: lock(&self.launches).len(),
            told: lock(&self.told).len(),
            recorded: lock(&self.recorded).len(),
        }
    }

    /// Drops what was buffered since `marks` (everything when the buffers
    /// were flushed since): writes, events and attempts not yet started;
    /// the ended attempts those writes recorded go back to `finished`.
    fn undo_to(&self, marks: Marks) {
        let now = self.flushes.load(std::sync::atomic::Ordering::Relaxed);
        let from = |mark: usize| if marks.flushes == now { mark } else { 0 };
        lock(&self.writes).truncate(from(marks.writes));
        lock(&self.told).truncate(from(marks.told));
        let dropped: Vec<_> = {
            let mut launches = lock(&self.launches);
            let start = from(marks.launches).min(launches.len());
            launches.drain(start..).collect()
        };
        let mut running = lock(&self.running);
        for launch in dropped {
            running.remove(&launch.request.key);
        }
        drop(running);
        let given_back: Vec<_> = {
            let mut recorded = lock(&self.recorded);
            let start = from(marks.recorded).min(recorded.len());
            recorded.drain(start..).collect()
        };
        lock(&self.finished).extend(given_back);
    }

    /// The cheap check for work another process wrote to the store (a
    /// `weir run` or `weir cancel` beside this daemon): one query for the
    /// [`UnfinishedSummary`](crate::store::execution::UnfinishedSummary)
    /// of the unfinished executions; when it differs from what the agenda
    /// holds, the next pass lists them again.
    pub async fn look_outside(&self) -> Result<(), Error> {
        if !lock(&self.agenda).is_loaded() {
            return Ok(());
        }
        let theirs = self.store.unfinished_summary().await?;
        let mut agenda = lock(&self.agenda);
        if agenda.summary() != theirs && !agenda.is_scoped() {
            agenda.ask_rescan();
        }
        Ok(())
    }

    /// Work was created that the engine may not have been told of
    /// ([`Engine::rescan`] was woken): the next pass lists the unfinished
    /// executions again.
    pub fn look_again(&self) {
        lock(&self.agenda).ask_rescan();
    }

    /// Forgets the agenda: the next pass is a full one (this engine leads
    /// again, and another may have driven meanwhile).
    pub fn forget(&self) {
        lock(&self.agenda).forget();
        self.mirror.forget();
    }

    /// How long the engine may sleep before something it knows of is due:
    /// a retry's backoff ending, or (while the executor polls: Jobs run)
    /// its next look, `poll` from now. `None`: nothing is due.
    pub fn next_wake(&self, poll: std::time::Duration) -> Option<std::time::Duration> {
        let retry = lock(&self.agenda)
            .next_due()
            .map(|at| (at - self.clock.now()).to_std().unwrap_or_default());
        let observe = self.executor.polls().then_some(poll);
        retry.into_iter().chain(observe).min()
    }

    /// Drives the executions `ids` in this process until each has
    /// finished (woken as [`Engine::pass`] is; looking at the store
    /// `poll` after the last wake for a cancel requested elsewhere).
    /// Other unfinished executions are left to whoever drives them.
    pub(super) async fn drive_until_finished(
        &self,
        ids: &[ExecutionId],
        poll: std::time::Duration,
    ) -> Result<(), Error> {
        let previous = std::mem::replace(
            &mut *lock(&self.agenda),
            Agenda::scoped(ids.iter().cloned()),
        );
        let driven = async {
            loop {
                self.pass().await?;
                if lock(&self.agenda).is_empty() {
                    return Ok(());
                }
                let wait = self.next_wake(poll).map_or(poll, |w| w.min(poll));
                if tokio::time::timeout(wait, self.wake.notified())
                    .await
                    .is_err()
                {
                    lock(&self.agenda).ask_rescan();
                }
            }
        }
        .await;
        // What the engine held before, read again at its next pass: these
        // executions moved meanwhile.
        let mut previous = previous;
        previous.forget();
        *lock(&self.agenda) = previous;
        driven
    }

    /// Drives execution `id` alone until it has finished; returns it.
    /// (Other unfinished executions in the store are left to whoever drives
    /// them, e.g. a daemon.) It is read once, then held as it is driven, as
    /// the daemon holds what it drives: a step costs what changed, not a
    /// read of the execution and its plan.
    pub async fn run_until_finished(&self, id: &ExecutionId) -> Result<Execution, Error> {
        self.drive_until_finished(
            std::slice::from_ref(id),
            std::time::Duration::from_millis(200),
        )
        .await?;
        self.store
            .execution(id)
            .await?
            .ok_or_else(|| Error::Disappeared(id.clone()))
    }
}
