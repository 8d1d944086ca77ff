//! The JSON API under `/api/v1`: what `weir status`, `versions`,
//! `executions` and `lineage` print with `-o json` (the same functions
//! render both, so the two cannot drift), and `POST /runs` to start an
//! execution as `weir run` does.
//!
//! Access: with an API token configured, every route needs
//! `Authorization: Bearer <token>` (401 otherwise). `POST /runs` always
//! needs it: without a configured token it is refused with 403.
//!
//! Errors are `{"error": "..."}`: 400 for a bad request, 404 for an
//! unknown execution or lineage target, 500 when the store fails.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Shared, auth, error};
use crate::cli::lineage as cli_lineage;
use crate::cli::run::execution_json;
use crate::cli::status::status_json;
use crate::cli::versions;
use crate::engine::create::{self, Request as RunRequest};
use crate::lineage::Way;
use crate::spec::Kind;
use crate::store::execution::{ExecutionFilter, Status};
use crate::store::{self, VersionFilter};

/// The routes, behind the token check.
pub(super) fn routes(state: Shared) -> Router<Shared> {
    Router::new()
        .route("/sources", get(sources))
        .route("/versions", get(list_versions))
        .route("/executions", get(executions))
        .route("/executions/{id}", get(execution))
        .route("/lineage/{id}", get(lineage))
        .route("/runs", post(runs))
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

/// `GET /api/v1/sources`: each source's status (`weir status -o json`).
async fn sources(State(state): State<Shared>) -> Response {
    match state.store.sources().await {
        Ok(list) => Json(list.iter().map(status_json).collect::<Vec<_>>()).into_response(),
        Err(e) => store_error(&e),
    }
}

#[derive(Debug, Deserialize)]
struct VersionsQuery {
    /// `Task`, `Workflow` or `LaunchPlan`, any case.
    kind: Option<String>,
    name: Option<String>,
    project: Option<String>,
}

/// `GET /api/v1/versions?kind=&name=&project=` (`weir versions -o json`).
async fn list_versions(
    State(state): State<Shared>,
    Query(query): Query<VersionsQuery>,
) -> Response {
    let kind = match query.kind.as_deref() {
        None => None,
        Some(text) => match Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(text))
        {
            Some(kind) => Some(kind),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown kind `{text}` (one of: Task, Workflow, LaunchPlan)"),
                );
            }
        },
    };
    let filter = VersionFilter {
        kind,
        name: query.name,
        project: query.project,
    };
    match state.store.versions(&filter).await {
        Ok(list) => Json(list.iter().map(versions::to_json).collect::<Vec<_>>()).into_response(),
        Err(e) => store_error(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionsQuery {
    launch_plan: Option<String>,
    workflow: Option<String>,
    status: Option<String>,
    /// At most this many, newest first (default 100).
    limit: Option<u32>,
}

/// `GET /api/v1/executions?launchPlan=&workflow=&status=&limit=`
/// (`weir executions -o json`: without nodes).
async fn executions(State(state): State<Shared>, Query(query): Query<ExecutionsQuery>) -> Response {
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => match Status::parse(text) {
            Some(status) => Some(status),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown status `{text}` (one of: {})",
                        Status::ALL.map(Status::as_str).join(", ")
                    ),
                );
            }
        },
    };
    let filter = ExecutionFilter {
        launch_plan: query.launch_plan,
        workflow: query.workflow,
        status,
        limit: Some(query.limit.unwrap_or(100)),
    };
    match state.store.executions(&filter).await {
        Ok(list) => Json(
            list.iter()
                .map(|e| execution_json(e, &[]))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => store_error(&e),
    }
}

/// `GET /api/v1/executions/{id}`: one execution with its nodes
/// (`weir executions ID -o json`); 404 when unknown.
async fn execution(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let found = match state.store.execution(&id).await {
        Ok(found) => found,
        Err(e) => return store_error(&e),
    };
    let Some(execution) = found else {
        return error(StatusCode::NOT_FOUND, format!("no execution `{id}`"));
    };
    match state.store.nodes(&id).await {
        Ok(nodes) => Json(execution_json(&execution, &nodes)).into_response(),
        Err(e) => store_error(&e),
    }
}

#[derive(Debug, Deserialize)]
struct LineageQuery {
    /// Only what led to it (`weir lineage --upstream`).
    #[serde(default)]
    upstream: bool,
    /// Only what came of it (`weir lineage --downstream`).
    #[serde(default)]
    downstream: bool,
}

/// `GET /api/v1/lineage/{id}[?upstream=true|?downstream=true]`: an
/// execution's or an artifact's (`sha256:<hex>`) lineage, as `weir lineage
/// -o json` prints it; 404 when the target is neither.
async fn lineage(
    State(state): State<Shared>,
    Path(target): Path<String>,
    Query(query): Query<LineageQuery>,
) -> Response {
    let way = match (query.upstream, query.downstream) {
        (true, true) => {
            return error(
                StatusCode::BAD_REQUEST,
                "upstream and downstream exclude each other (neither: both ways)",
            );
        }
        (true, false) => Some(Way::Upstream),
        (false, true) => Some(Way::Downstream),
        (false, false) => None,
    };
    match cli_lineage::trace(state.store.as_ref(), &target, way).await {
        Ok(Some(found)) => Json(cli_lineage::to_json(&target, &found)).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("`{target}` is neither an execution nor an artifact digest"),
        ),
        Err(e) => store_error(&e),
    }
}

/// The body of `POST /api/v1/runs`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RunBody {
    /// A launch plan's or a workflow's name (launch plans first).
    name: String,
    project: Option<String>,
    /// Inputs by name: values, or strings parsed by the input's type.
    #[serde(default)]
    inputs: BTreeMap<String, Value>,
    #[serde(default)]
    no_cache: bool,
}

/// `POST /api/v1/runs`: starts an execution of the active version (as
/// `weir run` without `--wait`; the daemon's engine drives it). 201 with
/// the execution, 200 when it existed already; 400 for a bad body or a
/// request `engine::create` refuses; 403 when no API token is configured.
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
        trigger: "api".into(),
        scheduled_at: None,
        no_cache: body.no_cache,
    };
    let (execution, created) = match create::create(state.store.as_ref(), &request).await {
        Ok(done) => done,
        Err(create::Error::Store(e)) => return store_error(&e),
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
    (
        status,
        [(header::LOCATION, location)],
        Json(json!(execution_json(&execution, &nodes))),
    )
        .into_response()
}
