//! Garbage: what an executor made for executions the store no longer has
//! (a Job left behind when its execution was deleted). The executor lists
//! what it made, with the execution each belongs to; the engine judges
//! against the store; the executor deletes what the engine judged orphaned.
//!
//! What it must not do: delete anything of an execution the store has, or
//! anything when the store cannot be read.

use std::time::Duration;

use tokio::time::Instant;

use super::{Engine, lock};

/// How often the executor's objects are checked against the store.
const EVERY: Duration = Duration::from_secs(60);

impl Engine {
    /// Deletes, now and then (at most every [`EVERY`], from the engine's
    /// full pass), the executor's objects of executions the store does
    /// not have.
    pub(super) async fn collect_garbage(&self) {
        {
            let mut last = lock(&self.last_gc);
            if last.is_some_and(|at| at.elapsed() < EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let made = match self.executor.orphans().await {
            Ok(made) => made,
            Err(e) => {
                tracing::warn!(executor = self.executor.name(), error = %e, "cannot list what the executor made to collect garbage");
                return;
            }
        };
        for orphan in made {
            match self.store.execution(&orphan.execution).await {
                Ok(None) => self.executor.delete_orphan(&orphan).await,
                Ok(Some(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read an execution to collect garbage");
                    return;
                }
            }
        }
    }
}
