//! A cancellation request: what `weir cancel` asks of the store itself
//! and of `POST /api/v1/executions/{id}/cancel`. The execution is marked
//! for cancellation; the engine that drives the store (the live holder of
//! its engine lease) stops its running attempts and records it cancelled.
//! The answer names that engine, so `weir cancel` says whom it asked
//! whichever way it asked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::spec::ExecutionId;
use crate::store::execution::Status;
use crate::store::{self, ENGINE_LEASE, Store};

/// An execution asked to stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelView {
    pub id: ExecutionId,
    /// Its status when asked (the engine records `cancelled` later).
    pub status: Status,
    /// The engine that drives the store and was asked; `None` when no
    /// engine holds a live lease (the next to start finishes it).
    pub engine: Option<String>,
}

/// Why an execution could not be asked to stop.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no execution `{0}`")]
    Unknown(ExecutionId),
    #[error("execution `{id}` has already ended ({status}); there is nothing to cancel")]
    Ended { id: ExecutionId, status: Status },
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Marks execution `id` for cancellation, as read at `now`.
pub async fn request_cancel(
    store: &dyn Store,
    id: &ExecutionId,
    now: DateTime<Utc>,
) -> Result<CancelView, CancelError> {
    if !store.request_cancel(id).await? {
        return Err(match store.execution(id).await? {
            None => CancelError::Unknown(id.clone()),
            Some(e) => CancelError::Ended {
                id: id.clone(),
                status: e.status,
            },
        });
    }
    let execution = store
        .execution(id)
        .await?
        .ok_or_else(|| CancelError::Unknown(id.clone()))?;
    let engine = store
        .lease(ENGINE_LEASE)
        .await?
        .filter(|lease| lease.is_live(now))
        .map(|lease| lease.holder);
    Ok(CancelView {
        id: id.clone(),
        status: execution.status,
        engine,
    })
}
