//! Executors: how a workflow node attempt runs, behind one boundary
//! ([`Executor`]). `local` runs one host process group per attempt
//! (`process`, in the environment `environment` builds); `kubernetes` runs
//! it as a Job. What a task's body runs comes from its task type, in
//! `crate::task`, one plugin per type. An attempt's whereabouts are a typed
//! [`AttemptHandle`] ([`handle`]), which the engine stores.
//!
//! The engine holds one `Arc<dyn Executor>` and never asks which one it
//! is: it decides what runs and when, records how attempts ended, and
//! judges the local attempts it does not run (their owner, the engine
//! lease; a Job, nobody's, is taken over without it); an
//! executor starts attempts, learns how they end, stops them, and finds
//! again the ones a handle names. Everything it learns reaches the engine
//! through [`Events`].
//!
//! What it must not do: reach up into the engine, or touch the store. An
//! executor only runs attempts and says how they ended.

pub mod environment;
pub mod handle;
pub mod kubernetes;
pub mod local;
pub mod process;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::spec::{CommitId, Digest, ExecutionId, TaskSpec};
use crate::task::{RepositoryFiles, TaskTypes};
use environment::Inherited;
pub use handle::AttemptHandle;
pub use local::LocalExecutor;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A node's attempt that runs now (a node runs at most one at a time).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    pub execution: ExecutionId,
    /// The node's path in the execution's plan.
    pub node: String,
    /// 1 for the first attempt of the node: an end told for another
    /// attempt than the node's current one is not recorded.
    pub attempt: u32,
}

/// Everything one attempt needs, built by the engine (no store, no clock
/// inside).
pub struct AttemptRequest {
    pub key: AttemptKey,
    pub project: String,
    pub commit: CommitId,
    pub task: String,
    pub task_version: Digest,
    pub spec: TaskSpec,
    /// Input values; files and directories as `sha256:` references.
    pub inputs: BTreeMap<String, Value>,
    pub timeout: Option<Duration>,
    /// The task's repository files by key (a notebook, a program), read
    /// from Git at its version's commit, or why each could not be.
    pub files: RepositoryFiles,
    /// The task types the engine runs: what `spec`'s body runs is asked of
    /// them (an executor names no type).
    pub task_types: TaskTypes,
    /// What of the host's environment the task may inherit.
    pub environment: Arc<Inherited>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        outputs: BTreeMap<String, Value>,
    },
    Failed {
        error: String,
    },
    /// It could not run, and another attempt would not either: its
    /// program is not installed where it runs (not on `PATH`, an
    /// interpreter missing), or its body cannot become a program. The
    /// node fails at once, whatever its retries.
    Unrunnable {
        error: String,
    },
    TimedOut,
    Cancelled,
    /// The process driving it died mid-attempt, or the engine stopped it
    /// (not the task's fault).
    Interrupted,
}

/// What an executor tells the engine.
pub trait Events: Send + Sync {
    /// The attempt's handle gained what is known only once it runs (a
    /// process group): stored before this returns, so that a restarted
    /// engine finds it.
    fn handle_changed<'a>(
        &'a self,
        key: &'a AttemptKey,
        handle: &'a AttemptHandle,
    ) -> BoxFuture<'a, ()>;

    /// The attempt ended (told once per attempt); the engine records it at
    /// its next step.
    fn ended(&self, key: AttemptKey, outcome: Outcome);
}

/// An attempt the executor did not start (a handle read from the store):
/// what could be done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// It goes on where it runs; tracked again, its end told through
    /// [`Events::ended`].
    Adopted,
    /// Nothing of it can go on; what was left of it was stopped where
    /// that was allowed.
    Gone,
    /// Another executor's handle (a Job seen by the local executor, or
    /// one of another namespace): not reachable from here.
    Foreign,
}

/// Why an attempt did not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Runs attempts. Every method is safe to call while others run.
pub trait Executor: Send + Sync {
    /// `local` or `kubernetes`: for logs, never for a branch.
    fn name(&self) -> &'static str;

    /// Where the attempt will run, decided before anything starts (a pure
    /// function of the request): the engine stores it first, so that a
    /// crash between storing and starting finds the attempt again.
    fn plan(&self, request: &AttemptRequest) -> AttemptHandle;

    /// Starts the attempt `plan` placed at `handle`. `Ok`: it runs, and its
    /// end will be told through `events` exactly once. `Err`: it did not
    /// start, and nothing will be told.
    fn start(
        &self,
        request: AttemptRequest,
        handle: AttemptHandle,
        events: Arc<dyn Events>,
    ) -> BoxFuture<'_, Result<(), StartError>>;

    /// Whether attempts run whose end only [`Executor::observe`] learns:
    /// the engine then looks again within its poll interval.
    fn polls(&self) -> bool {
        false
    }

    /// Learns which attempts ended and tells them through `events` (once
    /// per engine pass while [`Executor::polls`]). An executor whose
    /// attempts tell their own end has nothing to do.
    fn observe<'a>(&'a self, _events: &'a Arc<dyn Events>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Asks the attempt of `key`, if it runs here, to stop: it ends
    /// `Cancelled`, told through `events`.
    fn cancel<'a>(&'a self, key: &'a AttemptKey, events: &'a Arc<dyn Events>) -> BoxFuture<'a, ()>;

    /// A running attempt this process does not run, read from the store:
    /// one that outlives its engine (a Job) whoever started it, before and
    /// without any judgement of its owner; another only once the engine
    /// judged its engine gone (owner and engine lease). `started_here`:
    /// its handle was written on this host since its last boot (its
    /// process ids are this host's, and may be signalled).
    fn adopt<'a>(
        &'a self,
        key: &'a AttemptKey,
        handle: &'a AttemptHandle,
        started_here: bool,
        events: &'a Arc<dyn Events>,
    ) -> BoxFuture<'a, Adoption>;

    /// Leadership lost, or shutting down: stops what runs *in this
    /// process* at once, also attempts not yet spawned (each ends
    /// `Interrupted`, not failed); what runs elsewhere is left to the next
    /// engine and no longer followed here (its end is never told).
    fn stop_all(&self);

    /// What this executor made that outlives its attempts (Jobs), each
    /// with its execution, for the engine to judge against the store. An
    /// executor whose attempts leave nothing behind lists nothing.
    fn orphans(&self) -> BoxFuture<'_, Result<Vec<Orphan>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Deletes `orphan`, which the engine judged to belong to no
    /// execution of the store (a failure is logged: the next look tries
    /// again).
    fn delete_orphan<'a>(&'a self, _orphan: &'a Orphan) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Something an executor made, and the execution it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The executor's name for it (a Job's name).
    pub name: String,
    pub execution: ExecutionId,
    /// The custom resource kind it is of (`plural.group`); `None`: a Job.
    pub resource: Option<String>,
}

/// A lock a task may have poisoned by panicking: what it holds (maps of
/// attempts, the engine's buffers) stays consistent, so it is used as it
/// is. The one copy, for the executors and the engine.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
