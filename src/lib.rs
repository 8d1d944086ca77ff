//! weir: a Git-native orchestrator for ML and data workflows.
//!
//! The library holds everything; `src/main.rs` only parses arguments and
//! calls in.
//!
//! Modules depend downwards only (STYLE.md: a module may use those below
//! it, never one above). From the bottom up, each step using only earlier
//! ones:
//! 1. leaves, using no other module: `redact` (credentials out of URLs),
//!    `clock` (the injectable now), `outbound` (HTTP client settings and
//!    request signing);
//! 2. `spec` (the definition types, and the identities of what weir keeps:
//!    executions, sources, commits), then on it `task` (task types: what a
//!    task's body means and runs), then `validate` (diagnostics),
//!    `schedule` (due instants, pure) and `artifact` (content-addressed
//!    bytes);
//! 3. `store` (the SQL store), then `metrics` (what the daemon counts),
//!    `source` (Git) and `registry` (versions and activation, decided
//!    purely);
//! 4. `executor` (runs attempts, behind one trait), then `engine` (drives
//!    executions on one executor, never asking which), then
//!    `reconcile` (one source: fetch, verify, load, validate, register);
//! 5. `lineage` and `notify`, then `views` (the documents the CLI and the
//!    API show);
//! 6. `http` (the server, and the CLI's client of it), then `daemon` (wires
//!    the loops together), then `cli` (one file per subcommand).
//!
//! `tests/it/layering.rs` fails on any cycle among these modules (and among
//! `engine`'s files), naming it.

pub mod artifact;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod engine;
pub mod executor;
pub mod http;
pub mod lineage;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod reconcile;
pub mod redact;
pub mod registry;
pub mod schedule;
pub mod source;
pub mod spec;
pub mod store;
pub mod task;
pub mod trigger;
pub mod validate;
pub mod views;
