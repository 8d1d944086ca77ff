//! Executors: how a workflow node attempt runs (today: host processes, see `process`).

pub mod environment;
pub mod kubernetes;
pub mod local;
pub mod process;
