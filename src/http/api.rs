//! The JSON API under `/api/v1`: what `weir status`, `versions`,
//! `launchplans`, `executions`, `lineage`, `audit` and `diff` print with
//! `-o json`, the logs `weir logs` prints (streamed while they grow), and
//! the writes: `POST /runs` to start an execution as `weir run` does, `POST
//! /executions/{id}/cancel` as `weir cancel` does, `POST
//! /launchplans/{project}/{name}/pause|resume` as `weir pause|resume` do
//! (and `POST /backfills`, [`super::backfills`]). The documents and their query parameters are
//! [`crate::views`], shared with the CLI (which reads them back with
//! `--server`), so the two cannot drift.
//!
//! Access: with an API token configured, every route needs
//! `Authorization: Bearer <token>` (401 otherwise). The writes always
//! need it: without a configured token they are refused with 403.
//!
//! Errors are `{"error": "..."}`: 400 for a bad request, 404 for an
//! unknown execution, node or lineage target, 409 for a cancellation of an
//! execution that has ended, 500 when the store fails.

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{AppState, Shared, auth, error};
use crate::engine::create::{self, Request as RunRequest};
use crate::engine::relaunch::{self, Again};
use crate::spec::ExecutionId;
use crate::store;
use crate::views::{
    self, ApprovalBody, ApprovalError, AuditQuery, CancelError, DiffError, ExecutionQuery,
    ExecutionView, LaunchPlanError, LaunchPlanQuery, LineageQuery, LogQuery, LogTail, LogsError,
    NodePage, PageError, PauseBody, PauseError, QueryError, RunBody, VersionQuery,
};

/// The routes, behind the token check.
pub(super) fn routes(state: Shared) -> Router<Shared> {
    Router::new()
        .route("/sources", get(sources))
        .route("/status", get(status))
        .route("/versions", get(list_versions))
        .route("/launchplans", get(launch_plans))
        .route("/launchplans/{project}/{name}/pause", post(pause))
        .route("/launchplans/{project}/{name}/resume", post(resume))
        .route("/executions", get(executions))
        .route("/executions/{id}", get(execution))
        .route("/executions/{id}/cancel", post(cancel))
        .route("/executions/{id}/relaunch", post(relaunch))
        .route("/executions/{id}/recover", post(recover))
        .route("/executions/{id}/logs", get(logs))
        .route("/executions/{id}/nodes/{node}/approval", post(approval))
        .route("/executions/{id}/diff", get(diff_with_last))
        .route("/executions/{id}/diff/{base}", get(diff))
        .route("/lineage/{id}", get(lineage))
        .route("/audit", get(audit))
        .route("/artifacts/{digest}", get(super::artifacts::get))
        .route("/runs", post(runs))
        .route("/triggers/{project}/{name}", post(call_trigger))
        .route("/backfills", post(super::backfills::create))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// With an API token configured, a request without it gets 401.
async fn require_token(State(state): State<Shared>, request: Request, next: Next) -> Response {
    match &state.secrets.api_token {
        Some(token) if !auth::bearer_matches(request.headers(), token) => {
            let mut response = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
        _ => next.run(request).await,
    }
}

/// A store failure: 500, logged here (the client sees the message).
fn store_error(e: &store::Error) -> Response {
    tracing::warn!(error = %e, "API: store error");
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// A query the store cannot answer as asked: 400.
fn query_error(e: QueryError) -> Response {
    error(StatusCode::BAD_REQUEST, e.0)
}

/// A view, or a list of them, as the CLI prints it with `-o json`; a
/// store failure as 500.
fn document<T: serde::Serialize>(read: Result<T, store::Error>) -> Response {
    match read {
        Ok(view) => Json(views::to_json(&view)).into_response(),
        Err(e) => store_error(&e),
    }
}

/// `GET /api/v1/sources`: each source's status (`weir status -o json`).
async fn sources(State(state): State<Shared>) -> Response {
    document(views::sources(state.store.as_ref()).await)
}

/// `GET /api/v1/status`: each source's status and the store's engine
/// lease (what `weir status` shows).
async fn status(State(state): State<Shared>) -> Response {
    document(views::status(state.store.as_ref(), state.clock.now()).await)
}

/// `GET /api/v1/versions?kind=&name=&project=` (`weir versions -o json`);
/// `kind` in any case.
async fn list_versions(State(state): State<Shared>, Query(query): Query<VersionQuery>) -> Response {
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(e) => return query_error(e),
    };
    document(views::versions(state.store.as_ref(), &filter).await)
}

/// `GET /api/v1/launchplans?project=&name=&next=&from=`: each active
/// launch plan with its schedule, pause, next instants and last run
/// (`weir launchplans -o json`).
async fn launch_plans(
    State(state): State<Shared>,
    Query(query): Query<LaunchPlanQuery>,
) -> Response {
    match views::launch_plans(state.store.as_ref(), &query, state.clock.now()).await {
        Ok(list) => Json(views::to_json(&list)).into_response(),
        Err(LaunchPlanError::Query(e)) => query_error(e),
        Err(LaunchPlanError::Store(e)) => store_error(&e),
    }
}

/// `POST /api/v1/launchplans/{project}/{name}/pause` (`weir pause`): its
/// schedule starts nothing until resumed; body `{"by", "comment"}`, both
/// optional. 200 with what changed, 404 for no such active launch plan,
/// 403 when no API token is configured.
async fn pause(
    State(state): State<Shared>,
    Path((project, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    set_paused(&state, &project, &name, true, &body).await
}

/// `POST /api/v1/launchplans/{project}/{name}/resume` (`weir resume`):
/// body `{"by", "comment", "catchUp"}`; as `pause`.
async fn resume(
    State(state): State<Shared>,
    Path((project, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    set_paused(&state, &project, &name, false, &body).await
}

async fn set_paused(
    state: &Shared,
    project: &str,
    name: &str,
    paused: bool,
    body: &[u8],
) -> Response {
    if state.secrets.api_token.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "pausing or resuming over HTTP needs an API token: configure one (weir serve --api-token-file)",
        );
    }
    let body: PauseBody = if body.is_empty() {
        PauseBody::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(body) => body,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
        }
    };
    let store = state.store.as_ref();
    match views::set_paused(
        store,
        project,
        name,
        paused,
        &body,
        "api",
        state.clock.now(),
    )
    .await
    {
        Ok(done) => {
            tracing::info!(
                project,
                launch_plan = name,
                paused,
                changed = done.changed,
                "API: launch plan paused or resumed"
            );
            Json(views::to_json(&done)).into_response()
        }
        Err(PauseError::Store(e)) => store_error(&e),
        Err(e @ PauseError::Unknown { .. }) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// `GET /api/v1/executions?launchPlan=&workflow=&status=&trigger=&before=&limit=`
/// (`weir executions -o json`: without nodes; at most 100 by default;
/// `before=ID`: the page after execution `ID`).
async fn executions(State(state): State<Shared>, Query(query): Query<ExecutionQuery>) -> Response {
    match views::executions(state.store.as_ref(), &query).await {
        Ok(list) => Json(views::to_json(&list)).into_response(),
        Err(PageError::Query(e)) => query_error(e),
        Err(PageError::Store(e)) => store_error(&e),
    }
}

/// `GET /api/v1/executions/{id}`: one execution with its nodes
/// (`weir executions ID -o json`); 404 when unknown.
async fn execution(
    State(state): State<Shared>,
    Path(id): Path<ExecutionId>,
    Query(page): Query<NodePage>,
) -> Response {
    match views::execution_page(state.store.as_ref(), &id, &page).await {
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no execution `{id}`")),
        Ok(found) => Json(views::to_json(&found)).into_response(),
        Err(PageError::Query(e)) => query_error(e),
        Err(PageError::Store(e)) => store_error(&e),
    }
}

/// `GET /api/v1/executions/{id}/logs[?node=PATH][&follow=true]`: the
/// logs `weir logs` prints, as `text/plain`; with `follow`, streamed as
/// they are written until the node (or the execution) ends
/// ([`views::LogTail`]). 404 for an unknown execution or node.
async fn logs(
    State(state): State<Shared>,
    Path(id): Path<ExecutionId>,
    Query(query): Query<LogQuery>,
) -> Response {
    let Some(state_dir) = state.state_dir.clone() else {
        let why = "this server has no state directory to read logs from";
        return error(StatusCode::NOT_IMPLEMENTED, why);
    };
    let (tail, first) = match LogTail::open(state.store.as_ref(), &state_dir, &id, &query).await {
        Ok(opened) => opened,
        Err(LogsError::Store(e)) => return store_error(&e),
        Err(e) => return error(StatusCode::NOT_FOUND, e.to_string()),
    };
    let text = super::logs::stream(state.store.clone(), tail, first);
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        axum::body::Body::from_stream(text),
    )
        .into_response()
}

/// `POST /api/v1/executions/{id}/cancel`: asks the engine that drives the
/// store to cancel an unfinished execution (as `weir cancel` does); 202
/// with `{id, status, engine}` (the engine asked, or null when none drives
/// the store now); 404 unknown, 409 already ended, 403 when no API token
/// is configured.
async fn cancel(State(state): State<Shared>, Path(id): Path<ExecutionId>) -> Response {
    if state.secrets.api_token.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "cancelling over HTTP needs an API token: configure one (weir serve --api-token-file)",
        );
    }
    match views::request_cancel(state.store.as_ref(), &id, state.clock.now()).await {
        Ok(asked) => {
            tracing::info!(execution = %id, "API: cancellation requested");
            (StatusCode::ACCEPTED, Json(views::to_json(&asked))).into_response()
        }
        Err(CancelError::Store(e)) => store_error(&e),
        Err(e @ CancelError::Unknown(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ CancelError::Ended { .. }) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// `POST /api/v1/executions/{id}/relaunch`: runs an ended execution again,
/// every node (`weir relaunch`); 201 with the new execution and its nodes,
/// 404 unknown, 409 still running, 403 when no API token is configured.
async fn relaunch(State(state): State<Shared>, Path(id): Path<ExecutionId>) -> Response {
    again(&state, &id, Again::Relaunch).await
}

/// `POST /api/v1/executions/{id}/recover`: runs an execution that did not
/// succeed again from where it stopped (`weir recover`); as `relaunch`,
/// and 409 for one that succeeded.
async fn recover(State(state): State<Shared>, Path(id): Path<ExecutionId>) -> Response {
    again(&state, &id, Again::Recover).await
}

async fn again(state: &Shared, id: &ExecutionId, how: Again) -> Response {
    if state.secrets.api_token.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "running an execution again over HTTP needs an API token: configure one (weir serve --api-token-file)",
        );
    }
    match relaunch::again(state.store.as_ref(), id, how, state.clock.now()).await {
        Ok((execution, _)) => {
            tracing::info!(execution = %execution.id, of = %id, how = ?how, "API: execution run again");
            match state.store.nodes(&execution.id).await {
                Ok(nodes) => (
                    StatusCode::CREATED,
                    Json(views::to_json(&ExecutionView::new(&execution, &nodes))),
                )
                    .into_response(),
                Err(e) => store_error(&e),
            }
        }
        Err(relaunch::Error::Store(e)) => store_error(&e),
        Err(e @ relaunch::Error::NotFound(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// `POST /api/v1/executions/{id}/nodes/{node}/approval` (`weir approve`):
/// body `{"decision": "approve"|"reject", "comment", "by"}`, all optional
/// (approve by default). 200 with the decision; 404 unknown execution or
/// node; 409 a node that does not wait for a decision, or one decided
/// already; 403 when no API token is configured. A node inside a
/// sub-workflow is its path with `/` written `%2F`.
async fn approval(
    State(state): State<Shared>,
    Path((id, node)): Path<(ExecutionId, String)>,
    body: Bytes,
) -> Response {
    if state.secrets.api_token.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "deciding an approval over HTTP needs an API token: configure one (weir serve --api-token-file)",
        );
    }
    let body: ApprovalBody = if body.is_empty() {
        ApprovalBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
        }
    };
    let store = state.store.as_ref();
    match views::decide(store, &id, &node, &body, "api", state.clock.now()).await {
        Ok(decided) => {
            tracing::info!(execution = %id, node = %node, decision = ?decided.decision, by = %decided.by, "API: approval decided");
            Json(views::to_json(&decided)).into_response()
        }
        Err(ApprovalError::Store(e)) => store_error(&e),
        Err(e @ (ApprovalError::UnknownExecution(_) | ApprovalError::UnknownNode { .. })) => {
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ ApprovalError::Invalid(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// `GET /api/v1/audit?limit=`: the audit log, newest first (`weir audit
/// -o json`; at most 100 by default).
async fn audit(State(state): State<Shared>, Query(query): Query<AuditQuery>) -> Response {
    document(views::audit(state.store.as_ref(), &query).await)
}

/// `GET /api/v1/executions/{id}/diff/{base}`: what changed from `base` to
/// `id` (`weir diff ID BASE -o json`).
async fn diff(
    State(state): State<Shared>,
    Path((id, base)): Path<(ExecutionId, ExecutionId)>,
) -> Response {
    diff_document(&state, &id, Some(&base)).await
}

/// `GET /api/v1/executions/{id}/diff`: the same against the last succeeded
/// execution of `id`'s launch plan before it (`weir diff ID -o json`).
async fn diff_with_last(State(state): State<Shared>, Path(id): Path<ExecutionId>) -> Response {
    diff_document(&state, &id, None).await
}

/// A diff, or 404 (an unknown execution, no earlier succeeded run), 400
/// (two workflows, no launch plan to find the base by). A remote source's
/// commits are read from its clone in the daemon's state directory.
async fn diff_document(state: &AppState, id: &ExecutionId, base: Option<&ExecutionId>) -> Response {
    match views::diff(state.store.as_ref(), state.state_dir.as_deref(), id, base).await {
        Ok(view) => Json(views::to_json(&view)).into_response(),
        Err(DiffError::Store(e)) => store_error(&e),
        Err(e @ (DiffError::UnknownExecution(_) | DiffError::NoBase { .. })) => {
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// `GET /api/v1/lineage/{id}[?upstream=true|?downstream=true]`: an
/// execution's or an artifact's (`sha256:<hex>`) lineage, as `weir lineage
/// -o json` prints it; 404 when the target is neither.
async fn lineage(
    State(state): State<Shared>,
    Path(target): Path<String>,
    Query(query): Query<LineageQuery>,
) -> Response {
    let way = match query.way() {
        Ok(way) => way,
        Err(e) => return query_error(e),
    };
    match views::lineage(state.store.as_ref(), &target, way).await {
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("`{target}` is neither an execution nor an artifact digest"),
        ),
        found => document(found),
    }
}

/// `POST /api/v1/triggers/{project}/{name}`: a call of the launch plan's
/// webhook trigger (DESIGN.md section 13). The body is a JSON object of
/// the run's inputs; the `Idempotency-Key` header names the event, so a
/// retried call finds the execution of the first. 201 with the
/// execution's id when this call created it, 200 when an earlier call with
/// the key did, 202 when it waits for room under the trigger's
/// `maxPending`; 400 for a body the run refuses (naming the input), 404
/// for no such launch plan or one without a webhook trigger, 422 for a
/// key reused with another body; 401 without the token, 403 when no
/// token is configured.
async fn call_trigger(
    State(state): State<Shared>,
    Path((project, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    use crate::trigger::CallError;
    if state.secrets.api_token.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "calling a trigger needs an API token: configure one (weir serve --api-token-file)",
        );
    }
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(key)) => Some(key.to_owned()),
        Some(Err(_)) => {
            return error(StatusCode::BAD_REQUEST, CallError::BadKey.to_string());
        }
    };
    let body: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
        }
    };
    let called = crate::trigger::call(
        state.store.as_ref(),
        &project,
        &name,
        key.as_deref(),
        &body,
        state.clock.now(),
    )
    .await;
    let called = match called {
        Ok(called) => called,
        Err(CallError::Create(create::Error::Store(e))) => return store_error(&e),
        Err(e @ (CallError::Create(create::Error::NotFound(_)) | CallError::NoWebhook(_))) => {
            return error(StatusCode::NOT_FOUND, e.to_string());
        }
        Err(e @ CallError::KeyReused(_)) => {
            return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    tracing::info!(execution = %called.execution, launch_plan = %name, created = called.created, deferred = called.deferred, "API: trigger called");
    let status = if called.deferred {
        StatusCode::ACCEPTED
    } else if called.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/api/v1/executions/{}", called.execution);
    (
        status,
        [(header::LOCATION, location)],
        Json(serde_json::json!({
            "execution": called.execution,
            "created": called.created,
            "deferred": called.deferred,
        })),
    )
        .into_response()
}

/// `POST /api/v1/runs`: starts an execution of the active version (as
/// `weir run` without `--wait`; the daemon's engine drives it). 201 with
/// the execution, 200 when it existed already; 404 when no launch plan or
/// workflow has that name; 400 for a bad body or a request
/// `engine::create` refuses; 403 when no API token is configured.
async fn runs(State(state): State<Shared>, body: Bytes) -> Response {
    if state.secrets.api_token.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "starting runs over HTTP needs an API token: configure one (weir serve --api-token-file)",
        );
    }
    let body: RunBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
    };
    let request = RunRequest {
        name: body.name,
        project: body.project,
        inputs: body.inputs,
        trigger: crate::spec::Trigger::Api,
        scheduled_at: None,
        no_cache: body.no_cache,
        preview: None,
        event: None,
    };
    let (execution, created) =
        match create::create_in(state.store.as_ref(), &request, None, state.clock.now()).await {
            Ok(done) => done,
            Err(create::Error::Store(e)) => return store_error(&e),
            Err(e @ create::Error::NotFound(_)) => {
                return error(StatusCode::NOT_FOUND, e.to_string());
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        };
    tracing::info!(execution = %execution.id, name = %request.name, "API: run started");
    let nodes = match state.store.nodes(&execution.id).await {
        Ok(nodes) => nodes,
        Err(e) => return store_error(&e),
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/api/v1/executions/{}", execution.id);
    let view = ExecutionView::new(&execution, &nodes);
    (
        status,
        [(header::LOCATION, location)],
        Json(views::to_json(&view)),
    )
        .into_response()
}
