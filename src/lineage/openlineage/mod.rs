//! OpenLineage RunEvents (spec 2-0-2) for executions and their nodes
//! (DESIGN.md section 8), appended to a JSON-lines file and/or POSTed to an
//! HTTP endpoint such as Marquez's `POST <base>/api/v1/lineage`; emitted by
//! `weir run --wait` and by `weir serve` alike.
//!
//! Why: lineage tools (Marquez, DataHub, OpenMetadata, …) read OpenLineage.
//! Emitting it lets them show which commit and which node produced an
//! artifact without reading weir's store.
//!
//! What it guarantees:
//! - **An execution is one OpenLineage run, the parent of its nodes'
//!   runs**: START when the engine moves it from queued to running, then
//!   COMPLETE, FAIL (failed or timed out) or ABORT (cancelled) when it
//!   ends. Its run id is derived from the execution id.
//! - **One OpenLineage run per node of an execution**, across its attempts:
//!   the run id is derived from (execution id, node path), so every event of
//!   a node, even one sent again after a restart, names the same run. The
//!   first attempt sends START, each retry RUNNING (the spec wants a single
//!   START per run), and the end one of COMPLETE, FAIL or ABORT. A node
//!   served from the cache runs no attempt: it sends START and COMPLETE
//!   together; one that fails before any attempt (an input that cannot be
//!   bound), START and FAIL.
//! - **Events say what the store says**: the engine tells its observers
//!   only once the writes of a step are committed, and each event is stamped
//!   with the instant the engine recorded (the emitter reads no clock).
//! - **The engine is never slowed**: the emitter builds each event and
//!   hands it to a background thread over a channel; that thread writes
//!   and POSTs, in order. [`Emitter::flush`], and dropping the emitter, wait
//!   for the events handed over so far.
//! - **A sink failure never reaches the engine**: it is logged with
//!   `tracing::warn!`. A POST is retried with doubling backoff, then the
//!   event is dropped; while the endpoint stays unreachable, later events
//!   get one try each, so a dead endpoint cannot hold `weir run` for long.
//!   Only opening a sink can fail ([`Error`]), before anything runs.
//!
//! Naming (OpenLineage's `Naming.md` leaves job namespaces to the
//! scheduler): job namespace `weir/<project>`; an execution's job is
//! `<workflow>`, a node's `<workflow>.<node path>` with a `parent` run
//! facet naming the execution's run. Each item of a map node (`train[3]`)
//! is a run of its own of the map node's job, whose `parent` is the map
//! node's run and whose `root` is the execution's. Both carry the `sourceCodeLocation`
//! job facet (the source's repository, branch, path and commit). An
//! execution's run carries `nominalTime` when it runs at a scheduled
//! instant and weir's `weir_execution` facet; a FAIL carries
//! `errorMessage`; a node served from the cache carries `weir_cache`
//! (`facets.rs`). Each input or output that is an artifact (`sha256:<hex>`)
//! is a dataset in namespace `weir` named by that reference; scalars are
//! not datasets and are left out.
//!
//! It must not read the store, nor block or fail its caller.
//!
//! Four parts, each in its own file: `events` builds the RunEvents and
//! `facets` their facets (pure: the same execution, node, state and
//! instant give the same event); `sinks` writes them to a file or POSTs
//! them; `emitter` is the engine's [`Observer`](crate::engine::Observer)
//! and the background thread between the two.

mod emitter;
mod events;
mod facets;
#[cfg(test)]
mod fixtures;
mod sinks;

use std::path::PathBuf;

pub use emitter::Emitter;
pub use events::{
    DATASET_NAMESPACE, Dataset, EventType, Job, PRODUCER, RUN_EVENT_SCHEMA, Run, RunEvent, RunId,
    execution_event, run_event,
};
pub use sinks::{FileSink, HttpSink, LINEAGE_PATH};

/// Why an emitter could not start: a sink could not be opened, or its
/// thread could not be spawned. Once started, nothing fails its caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the OpenLineage file `{}`: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the OpenLineage URL `{url}` is not an http:// or https:// URL")]
    Url { url: String },
    #[error("cannot start the OpenLineage sender thread: {0}")]
    Spawn(#[source] std::io::Error),
}
