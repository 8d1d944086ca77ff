//! weir: a Git-native orchestrator for ML and data workflows.
//!
//! The library holds everything; `src/main.rs` only parses arguments and
//! calls in. Modules depend downwards only (see STYLE.md):
//! `cli` → `validate` → `spec`, and `source` feeds files to `validate`;
//! `cli` and `http` both show the store through `views`.

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
pub mod validate;
pub mod views;
