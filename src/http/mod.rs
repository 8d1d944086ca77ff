//! The HTTP side of `weir serve` (DESIGN.md sections 5 and 9): health and
//! readiness, Prometheus metrics (rendered here, registered in
//! [`crate::metrics`]), the webhooks that wake a source's
//! reconcile loop, and a JSON API over the same data as the CLI; and the
//! [`client`] of that API, which the CLI uses with `--server`.
//!
//! What it guarantees:
//! - A webhook only *wakes* a source ([`SourceHandle::trigger`]): the loop
//!   fetches from Git itself, so a payload is never trusted for content.
//!   An unauthenticated webhook (bad or missing signature or token)
//!   triggers nothing.
//! - The API is read-only except its writes (`POST /api/v1/runs`,
//!   `/api/v1/backfills`, `/api/v1/executions/{id}/cancel`, a launch
//!   plan's webhook trigger `/api/v1/triggers/{project}/{name}`, …),
//!   which always need the API token; with a token configured, every API
//!   route needs it.
//! - Secrets are compared in constant time and never logged.
//! - Every connection is bounded in time (request head, whole request,
//!   idle keep-alive, closing) and their number is bounded ([`server`],
//!   [`Limits`]): a slow, idle or non-reading client cannot hold the
//!   server, nor its shutdown.
//! - `/readyz` is unauthenticated, so it costs the store at most a ping
//!   and a lease read a second, however often it is probed ([`health`]).
//!
//! What it must not do: decide anything about sources, versions or
//! executions. It reads the store (and the attempts' logs), calls
//! `engine::create` for a run and `engine::backfill` for a backfill, marks
//! an execution for cancellation (the engine stops it), and pokes the
//! loops; the daemon (`src/daemon`) owns those loops.
//!
//! Routes (status codes in each handler's doc):
//! `GET /healthz`, `GET /readyz`, `GET /metrics`, `POST /hooks/github`,
//! `POST /hooks/generic`, `GET /api/v1/{sources, status, versions,
//! executions, executions/{id}, executions/{id}/diff[/{base}],
//! executions/{id}/logs, lineage/{id}, audit}`, `POST /api/v1/runs`,
//! `POST /api/v1/backfills`, `POST /api/v1/executions/{id}/cancel`,
//! `POST /api/v1/triggers/{project}/{name}`; and
//! the web console's pages at `/` ([`console`]).

mod api;
mod artifacts;
pub mod auth;
mod backfills;
pub mod client;
pub mod console;
pub mod health;
mod hooks;
mod logs;
pub mod server;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The registry [`AppState`] renders at `/metrics`; it lives in
/// [`crate::metrics`], below everything it counts for.
pub use crate::metrics::Metrics;
pub use health::{Heartbeat, Readiness};
pub use server::Limits;

use crate::metrics;
use crate::spec::SourceKey;
use crate::store::Store;

/// The default of [`AppState::max_payload`]: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// One source as the webhooks see it.
#[derive(Debug, Clone)]
pub struct SourceHandle {
    pub key: SourceKey,
    /// The branch the source follows.
    pub branch: String,
    /// URLs naming the repository in webhook payloads (clone/ssh/html URLs;
    /// empty for a local path: match by branch only).
    pub repo_urls: Vec<String>,
    /// Wakes the source's reconcile loop (a fetch; payloads are never
    /// trusted for content).
    pub trigger: Arc<tokio::sync::Notify>,
}

/// The secrets the HTTP server checks. `None` turns the matching feature
/// off: no GitHub hook, no generic hook, an open read-only API and none
/// of its writes (runs, backfills, cancellations).
#[derive(Clone, Default)]
pub struct Secrets {
    pub github_webhook_secret: Option<Vec<u8>>,
    pub generic_webhook_token: Option<String>,
    pub api_token: Option<String>,
}

/// Says which secrets are set, never their values.
impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |present: bool| if present { "<set>" } else { "<unset>" };
        f.debug_struct("Secrets")
            .field(
                "github_webhook_secret",
                &set(self.github_webhook_secret.is_some()),
            )
            .field(
                "generic_webhook_token",
                &set(self.generic_webhook_token.is_some()),
            )
            .field("api_token", &set(self.api_token.is_some()))
            .finish()
    }
}

/// Whether the console may write a rollback's commit (DESIGN.md section
/// 11): not at all (it shows the `weir rollback` command instead, the
/// default), to the source's working tree, or there and pushed to
/// `origin`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RollbackWrites {
    #[default]
    Off,
    Commit,
    Push,
}

/// What the console needs to write a rollback's commit: each source's
/// spec by key (a local repository with a working tree can be written;
/// a remote's clone cannot, and the console says so), where remote
/// sources' clones are, and whether to push.
#[derive(Debug, Clone)]
pub struct RollbackWriter {
    pub push: bool,
    pub sources: Vec<(SourceKey, crate::source::git::SourceSpec)>,
    pub state_dir: std::path::PathBuf,
}

/// Everything the handlers share.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub sources: Vec<SourceHandle>,
    pub readiness: Arc<Readiness>,
    pub secrets: Secrets,
    /// Largest webhook body accepted (413 beyond it); default 1 MiB
    /// ([`DEFAULT_MAX_PAYLOAD`]).
    pub max_payload: usize,
    /// Where remote sources' clones are (the diff lists their commits).
    pub state_dir: Option<std::path::PathBuf>,
    /// The daemon's one clock: a run's and a backfill's creation instant,
    /// and the engine lease's liveness in `/api/v1/status`.
    pub clock: crate::clock::Clock,
    /// The artifact store the daemon's engine writes (served by `GET
    /// /api/v1/artifacts/{digest}`); `None`: that route answers 404.
    pub artifacts: Option<Arc<dyn crate::artifact::ArtifactStore>>,
    /// Where the console's rollbacks are written; `None`: the console shows
    /// the `weir rollback` command instead.
    pub rollback: Option<RollbackWriter>,
}

type Shared = Arc<AppState>;

/// Every route, with the body limit and request logging.
pub fn router(state: AppState) -> Router {
    let max_payload = state.max_payload;
    let state: Shared = Arc::new(state);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .route("/hooks/github", post(hooks::github))
        .route("/hooks/generic", post(hooks::generic))
        .nest("/api/v1", api::routes(state.clone()))
        .merge(console::routes(state.clone()))
        .layer(DefaultBodyLimit::max(max_payload))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled (graceful: requests in flight may
/// finish within the drain bound, then the listener closes), with the
/// default [`Limits`]
/// ([`server::serve`] takes others).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    server::serve(listener, router, Limits::default(), shutdown).await
}

/// `GET /healthz` (liveness): 200 `ok` unless a loop keeps dying (see
/// [`health`]: restarting the process is what can help then), else 503
/// naming the loops.
async fn healthz(State(state): State<Shared>) -> Response {
    let report = state.readiness.report(Instant::now());
    if report.is_alive() {
        (StatusCode::OK, "ok").into_response()
    } else {
        let body = json!({ "alive": false, "crashLooping": report.crash_looping });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// `GET /readyz` (readiness): 200 once every source has completed a pass,
/// while every loop passes within its period and the store answers a ping
/// (its answer is kept about a second, see [`health`]); else 503. The
/// JSON names pending and failing sources, stalled loops and the store's
/// state, and whether this replica leads and which engine does (`leader`:
/// the live engine lease's holder, else null).
async fn readyz(State(state): State<Shared>) -> Response {
    let report = state.readiness.report(Instant::now());
    let store_state = state
        .readiness
        .store_state(state.store.as_ref(), Instant::now())
        .await;
    let store = match &store_state.error {
        None => json!({ "ok": true }),
        Some(error) => json!({ "ok": false, "error": error }),
    };
    let ready = report.is_ready() && store_state.error.is_none();
    // Who leads is shown, never a condition of readiness: a follower
    // serves the API as well as the leader.
    let leader = store_state.leader;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": ready,
        "pending": report.pending,
        "failing": report.failing,
        "stalled": report.stalled,
        "store": store,
        "leading": state.readiness.is_leading(),
        "leader": leader,
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: the Prometheus text format.
async fn render_metrics(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

/// A JSON error: `{"error": message}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Logs each request at debug: method, path (no query), status, duration.
/// Headers are never logged (they carry tokens and signatures).
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        took_ms = started.elapsed().as_millis() as u64,
        "http request"
    );
    response
}
