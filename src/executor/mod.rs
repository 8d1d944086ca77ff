//! Executors: how a workflow node attempt runs. `local` runs one host
//! process per attempt (`process`, in the environment `environment`
//! builds); `kubernetes` runs it as a Job. What a task's body runs comes
//! from its task type, in `crate::task`, one plugin per type.
//!
//! What it must not do: reach up into the engine. The engine decides what
//! runs and when; an executor only runs an attempt and says how it ended.

pub mod environment;
pub mod kubernetes;
pub mod local;
pub mod process;
