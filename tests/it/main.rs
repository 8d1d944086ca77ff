//! The one integration-test binary (STYLE.md rule 15): each module is an area.

mod backfill;
mod common;
mod deploy;
mod diff;
mod digests;
mod engine;
mod executions_store;
mod http_limits;
mod incremental;
mod kubernetes;
mod lineage_scope;
mod lease_store;
mod loader_props;
mod notify;
mod operator_errors;
mod preview;
mod safety;
mod schema;
mod serve;
mod server_cli;
mod signed;
mod store;
mod store_faults;
mod sync_story;
mod task_env;
mod validate_cli;
