//! Executors: how a workflow node attempt runs. `local` runs one host
//! process per attempt (`process`, in the environment `environment`
//! builds); `kubernetes` runs it as a Job. `tasks` turns a task's body into
//! the command an executor runs, one plugin per task type.
//!
//! What it must not do: reach up into the engine. The engine decides what
//! runs and when; an executor only runs an attempt and says how it ended.

pub mod environment;
pub mod handle;
pub mod kubernetes;
pub mod local;
pub mod process;
pub mod tasks;
