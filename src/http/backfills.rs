//! `POST /api/v1/backfills`: what `weir backfill` does, over HTTP
//! ([`crate::engine::backfill`]). It creates executions, so, like `POST
//! /api/v1/runs`, it always needs the API token: without one configured it
//! is refused with 403. The daemon's engine runs what it creates, at most
//! `maxParallel` at a time.
//!
//! Body: `{"launchPlan", "project"?, "from", "to", "maxParallel"?,
//! "dryRun"?}`, the times as `weir backfill` reads them. Answer: the
//! document `weir backfill -o json` prints ([`BackfillView`]: the launch
//! plan, its version and time zone, the range, `maxParallel`, and
//! `entries`, each `instant`, `executionId`, `status`: `created`, `exists`
//! or, in a dry run, `new`; and `executionStatus`), 201 when it created any
//! execution, else 200; 404 for an unknown launch plan, 400 for any other
//! refused request, 500 when the store fails.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{Shared, error};
use crate::engine::backfill::{self, EntryStatus, Error, Request};
use crate::views::{self, BackfillBody, BackfillView};

pub(super) async fn create(State(state): State<Shared>, body: Bytes) -> Response {
    if state.secrets.api_token.is_none() {
        let why = "backfills create executions, which over HTTP needs an API token: \
                   configure one (weir serve --api-token-file)";
        return error(StatusCode::FORBIDDEN, why);
    }
    let body: BackfillBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
    };
    let dry_run = body.dry_run;
    let request = Request::from(body);
    match backfill::backfill(state.store.as_ref(), &request, state.clock.now()).await {
        Ok(done) => {
            let status = if done.count(EntryStatus::Created) > 0 {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let view = BackfillView::new(&done, dry_run);
            (status, Json(views::to_json(&view))).into_response()
        }
        Err(e) if e.is_store() => {
            tracing::warn!(error = %e, "API: store error");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e @ Error::NotFound(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
