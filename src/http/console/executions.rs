//! Executions: the list (`/executions`, filtered by status, launch plan,
//! workflow and trigger, a page at a time with a keyset cursor so the
//! thousandth page costs what the first does), one execution (its graph
//! coloured by node status, a timeline of its nodes, each node's inputs
//! and outputs with artifacts linked to their lineage, the commit and
//! versions it ran, its notifications), a node's log (followed live while
//! it runs), cancelling one, and deciding an approval gate.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;

use super::graph::{self, Bar, Vertex};
use super::layout::{
    Page, Section, badge, commit, csrf_field, duration, entity_href, instant, instant_opt,
    plan_href, value,
};
use super::{NEEDS_A_SESSION, Posted, Shared, Viewer, checked_form, encode, refused, store_failed};
use crate::spec::{ExecutionId, Trigger};
use crate::store::execution::{NodeStatus, Status};
use crate::views::{
    self, ApprovalBody, ApprovalError, CancelError, ExecutionQuery, ExecutionView, LogQuery,
    LogTail, LogsError, NodePage, PageError, Verdict,
};

/// How many executions a page of the list shows.
const PAGE: u32 = 50;

/// `GET /executions?status=&launchPlan=&workflow=&trigger=&before=`.
pub async fn list(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Query(mut query): Query<ExecutionQuery>,
) -> Response {
    // An empty field of the filter form means "any".
    for field in [
        &mut query.status,
        &mut query.launch_plan,
        &mut query.workflow,
        &mut query.trigger,
    ] {
        if field.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *field = None;
        }
    }
    query.limit = Some(query.limit.unwrap_or(PAGE).clamp(1, 500));
    let list = match views::executions(state.store.as_ref(), &query).await {
        Ok(list) => list,
        Err(PageError::Query(e)) => return refused(StatusCode::BAD_REQUEST, &e.0, &viewer),
        Err(PageError::Store(e)) => return store_failed(&e, &viewer),
    };
    let now = state.clock.now();
    let next = (list.len() as u32 == query.limit.unwrap_or(PAGE))
        .then(|| list.last().map(|e| e.id.clone()))
        .flatten()
        .map(|last| {
            let mut page = query.clone();
            page.before = Some(last);
            page.limit = None;
            format!("/executions?{}", query_string(&page))
        });
    let first_page = query.before.is_some().then(|| {
        let mut page = query.clone();
        page.before = None;
        page.limit = None;
        format!("/executions?{}", query_string(&page))
    });
    let selected = |current: &Option<String>, option: &str| current.as_deref() == Some(option);
    let body = html! {
        h1 { "Executions" }
        form.filters method="get" action="/executions" {
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for s in Status::ALL {
                        option value=(s.as_str()) selected[selected(&query.status, s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label { "Trigger"
                select name="trigger" {
                    option value="" { "any" }
                    @for t in Trigger::ALL {
                        option value=(t.as_str()) selected[selected(&query.trigger, t.as_str())] { (t.as_str()) }
                    }
                }
            }
            label { "Launch plan" input type="text" name="launchPlan" value=(query.launch_plan.clone().unwrap_or_default()); }
            label { "Workflow" input type="text" name="workflow" value=(query.workflow.clone().unwrap_or_default()); }
            button type="submit" { "Filter" }
        }
        @if list.is_empty() {
            p.muted { "No execution matches." }
        } @else {
            div.table-wrap { table.executions {
                thead { tr {
                    th { "Execution" } th { "Status" } th { "Launch plan / workflow" }
                    th.hide-narrow { "Trigger" } th { "Created (UTC)" } th.hide-narrow { "Took" }
                } }
                tbody {
                    @for e in &list {
                        tr {
                            td { a href=(execution_href(&e.id)) { code { (e.id) } } }
                            td { (badge(e.status.as_str())) }
                            td {
                                @if let Some(lp) = &e.launch_plan { (lp) " · " }
                                span.muted { (e.workflow) "@" (e.workflow_version) }
                            }
                            td.hide-narrow { (e.trigger.as_str()) }
                            td { (instant(&e.created_at)) }
                            td.hide-narrow.num { (duration(e.started_at.as_ref(), e.finished_at.as_ref(), now)) }
                        }
                    }
                }
            } }
        }
        nav.pager aria-label="Pages" {
            @if let Some(first) = &first_page { a href=(first) { "← Newest" } }
            @if let Some(next) = &next { a href=(next) rel="next" { "Older →" } }
        }
    };
    Page::new("Executions", Section::Executions, &viewer)
        .render(body)
        .into_response()
}

/// The query string of a list's page.
fn query_string(query: &ExecutionQuery) -> String {
    let mut parts = Vec::new();
    let mut add = |name: &str, value: Option<&str>| {
        if let Some(value) = value {
            parts.push(format!("{name}={}", encode(value)));
        }
    };
    add("status", query.status.as_deref());
    add("trigger", query.trigger.as_deref());
    add("launchPlan", query.launch_plan.as_deref());
    add("workflow", query.workflow.as_deref());
    add("before", query.before.as_ref().map(|id| id.as_str()));
    parts.join("&")
}

pub fn execution_href(id: &ExecutionId) -> String {
    format!("/executions/{}", encode(id.as_str()))
}

fn log_href(id: &ExecutionId, node: &str) -> String {
    format!(
        "/executions/{}/log?node={}",
        encode(id.as_str()),
        encode(node)
    )
}

/// `GET /executions/{id}`.
pub async fn one(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<ExecutionId>,
    Query(page): Query<NodePage>,
) -> Response {
    let store = state.store.as_ref();
    let e = match views::execution_page(store, &id, &page).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return refused(
                StatusCode::NOT_FOUND,
                &format!("No execution `{id}`."),
                &viewer,
            );
        }
        Err(PageError::Query(e)) => return refused(StatusCode::BAD_REQUEST, &e.0, &viewer),
        Err(PageError::Store(e)) => return store_failed(&e, &viewer),
    };
    let graph = match views::execution_graph(store, &id).await {
        Ok(graph) => graph,
        Err(e) => return store_failed(&e, &viewer),
    };
    let now = state.clock.now();
    let title = format!("Execution {id}");
    let body = html! {
        h1 { "Execution " code { (e.id) } " " (badge(e.status.as_str())) }
        @if !e.status.is_terminal() {
            div.actions {
                @if viewer.can_act() {
                    a.button href={ (execution_href(&e.id)) "/cancel" } { "Cancel…" }
                }
                span.muted { "Still running: reload to see it move on." }
            }
        }
        @if let Some(error) = &e.error { p.error role="alert" { (error) } }
        (facts(&e))
        @if let Some(graph) = &graph {
            h2 { "Graph" }
            (execution_graph(&e, graph))
        }
        h2 { "Timeline" }
        (timeline(&e, now))
        h2 { "Nodes" }
        (nodes(&e, now, viewer.can_act()))
        @if let Some(next) = &e.nodes_next {
            p { a href={ (execution_href(&e.id)) "?after=" (encode(next)) } { "Next nodes →" } }
        }
        h2 { "Inputs" }
        (value(&e.inputs))
        @if let Some(outputs) = &e.outputs {
            h2 { "Outputs" }
            (value(outputs))
        }
        h2 { "Notifications" }
        (deliveries(&e))
        p { a href={ "/lineage/" (encode(e.id.as_str())) } { "Lineage of this execution" } }
    };
    Page::new(&title, Section::Executions, &viewer)
        .render(body)
        .into_response()
}

fn facts(e: &ExecutionView) -> Markup {
    let workflow_href = format!(
        "/workflows/{}/{}/{}",
        encode(&e.project),
        encode(&e.workflow),
        e.workflow_version
    );
    html! {
        dl.facts {
            dt { "Project" } dd { (e.project) }
            dt { "Workflow" } dd { a href=(workflow_href) { (e.workflow) "@" (e.workflow_version) } }
            @if let (Some(lp), Some(version)) = (&e.launch_plan, &e.launch_plan_version) {
                dt { "Launch plan" }
                dd {
                    a href=(plan_href(&e.project, lp)) { (lp) }
                    " @" a href={ (entity_href(&e.project, "LaunchPlan", lp)) } { (version) }
                }
            }
            dt { "Commit" } dd.commit { (commit(&e.commit.0)) " of " code { (e.source.0) } }
            dt { "Trigger" } dd { (e.trigger.as_str()) }
            @if let Some(event) = &e.event {
                dt { "Event" }
                dd {
                    code { (event.trigger) } " "
                    @if let Some(upstream) = event.detail.get("execution").and_then(|v| v.as_str()) {
                        a href=(execution_href(&ExecutionId::from(upstream))) { (upstream) }
                        @if let Some(status) = event.detail.get("status").and_then(|v| v.as_str()) { " (" (status) ")" }
                    } @else if let Some(url) = event.detail.get("url").and_then(|v| v.as_str()) {
                        code { (url) }
                        @if let Some(tag) = event.detail.get("etag").and_then(|v| v.as_str()) { " version " code { (tag) } }
                    } @else {
                        code { (event.event) }
                    }
                }
            }
            @if let Some(at) = &e.scheduled_at { dt { "Scheduled for" } dd { (instant(at)) } }
            dt { "Created" } dd { time datetime=(crate::views::instant::format(&e.created_at)) data-local { (e.created_at.format("%Y-%m-%d %H:%M:%S")) } }
            dt { "Started" } dd { (instant_opt(e.started_at.as_ref())) }
            dt { "Finished" } dd { (instant_opt(e.finished_at.as_ref())) }
        }
    }
}

/// The plan's graph, each node coloured by its status in this execution
/// (a map node by its own; its items are listed under Nodes).
fn execution_graph(e: &ExecutionView, graph: &views::GraphView) -> Markup {
    let status: HashMap<&str, &str> = e
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.status.as_str()))
        .collect();
    let vertices: Vec<Vertex> = graph
        .nodes
        .iter()
        .map(|n| {
            let s = status.get(n.id.as_str()).copied().unwrap_or("pending");
            let mut sub = format!("{} · {s}", if n.kind.is_empty() { "task" } else { &n.kind });
            if n.map {
                sub.push_str(" · map");
            }
            Vertex {
                id: n.id.clone(),
                label: n.id.clone(),
                sub,
                class: format!("s-{s}"),
                href: Some(format!("#node-{}", n.id)),
            }
        })
        .collect();
    graph::draw(
        &format!("Graph of execution {}", e.id),
        &vertices,
        &graph.edges,
    )
}

fn timeline(e: &ExecutionView, now: chrono::DateTime<chrono::Utc>) -> Markup {
    let bars: Vec<Bar> = e
        .nodes
        .iter()
        .filter_map(|n| {
            Some(Bar {
                label: n.id.clone(),
                start: n.started_at?,
                end: n.finished_at.or(e.finished_at),
                status: n.status.as_str().to_owned(),
                note: match (n.cached, n.attempts) {
                    (true, _) => " (cached)".to_owned(),
                    (false, 1) | (false, 0) => String::new(),
                    (false, k) => format!(" ({k} attempts)"),
                },
                href: Some(format!("#node-{}", n.id)),
            })
        })
        .collect();
    graph::timeline(&format!("Timeline of execution {}", e.id), &bars, now)
}

fn approval_href(id: &ExecutionId, node: &str) -> String {
    format!(
        "/executions/{}/approval?node={}",
        encode(id.as_str()),
        encode(node)
    )
}

fn nodes(e: &ExecutionView, now: chrono::DateTime<chrono::Utc>, can_act: bool) -> Markup {
    html! {
        div.table-wrap { table.nodes {
            thead { tr {
                th { "Node" } th { "Status" } th { "Task" } th.num { "Attempts" }
                th.hide-narrow { "Took" } th { "Log" }
            } }
            tbody {
                @for n in &e.nodes {
                    tr #{ "node-" (n.id) } data-node=(n.id) {
                        td { code { (n.id) } }
                        td.status {
                            (badge(n.status.as_str()))
                            @if n.cached {
                                " " span.badge.s-cached { "cached" }
                                @if let Some(from) = &n.cached_from {
                                    " from " a href=(execution_href(from)) { code { (from) } }
                                }
                            }
                        }
                        td { a href=(entity_href(&e.project, "Task", &n.task)) { (n.task) "@" (n.task_version) } }
                        td.num { (n.attempts) }
                        td.hide-narrow.num { (duration(n.started_at.as_ref(), n.finished_at.as_ref(), now)) }
                        td { @if n.attempts > 0 { a href=(log_href(&e.id, &n.id)) { "log" } } }
                    }
                    @if n.error.is_some() || n.inputs.is_some() || n.outputs.is_some() || n.prompt.is_some() {
                        tr.detail {
                            td colspan="6" {
                                @if let Some(prompt) = &n.prompt {
                                    p { "Asks: " (prompt) }
                                    @if n.status == NodeStatus::Waiting && can_act {
                                        p { a.button href=(approval_href(&e.id, &n.id)) { "Approve or reject…" } }
                                    }
                                }
                                @if let Some(error) = &n.error { p.error { (error) } }
                                details {
                                    summary { "Inputs and outputs of " (n.id) }
                                    @if let Some(inputs) = &n.inputs { div { "Inputs" } (value(inputs)) }
                                    @if let Some(outputs) = &n.outputs { div { "Outputs" } (value(outputs)) }
                                }
                            }
                        }
                    }
                }
            }
        } }
    }
}

fn deliveries(e: &ExecutionView) -> Markup {
    html! {
        @if e.deliveries.is_empty() {
            p.muted { "None." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Event" } th { "Target" } th { "Status" } th { "Attempts" } th { "Last" } } }
                tbody {
                    @for d in &e.deliveries {
                        tr {
                            td { (d.event.as_str()) }
                            td { (d.target) " " span.muted { (d.destination) } }
                            td { (badge(&serde_json::to_value(d.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())) }
                            td.num { (d.attempts.len()) }
                            td {
                                @if let Some(last) = d.attempts.last() {
                                    (instant(&last.at))
                                    @if let Some(code) = last.http_status { " HTTP " (code) }
                                    @if let Some(error) = &last.error { " " span.error { (error) } }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct NodeQuery {
    node: String,
}

/// `GET /executions/{id}/log?node=PATH`: a node's log as it is now; while
/// the node runs, the script follows it ([`follow`]).
pub async fn log(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<ExecutionId>,
    Query(node): Query<NodeQuery>,
) -> Response {
    let Some(state_dir) = state.state_dir.clone() else {
        let why = "This server has no state directory to read logs from.";
        return refused(StatusCode::NOT_IMPLEMENTED, why, &viewer);
    };
    let query = LogQuery {
        node: Some(node.node.clone()),
        follow: false,
    };
    let store = state.store.as_ref();
    let text = match LogTail::open(store, &state_dir, &id, &query).await {
        Ok((_, chunk)) => chunk.text,
        Err(LogsError::Store(e)) => return store_failed(&e, &viewer),
        Err(e) => return refused(StatusCode::NOT_FOUND, &e.to_string(), &viewer),
    };
    // Read after the log: a node seen running may have ended meanwhile,
    // and then following it gives the rest at once.
    let running = match store.nodes(&id).await {
        Ok(nodes) => nodes
            .iter()
            .any(|n| n.node == node.node && !n.status.is_terminal()),
        Err(e) => return store_failed(&e, &viewer),
    };
    let follow = format!(
        "/executions/{}/log/follow?node={}",
        encode(id.as_str()),
        encode(&node.node)
    );
    let title = format!("Log of {} in {id}", node.node);
    let body = html! {
        h1 { "Log of " code { (node.node) } }
        p { "In execution " a href=(execution_href(&id)) { code { (id) } } ". "
            @if running {
                span #log-status { "running" } " · " a href="" { "reload" }
            } @else {
                span #log-status { "ended" }
            }
        }
        @if running {
            pre.log #log data-follow=(follow) { (text) }
        } @else {
            pre.log #log { (text) }
        }
    };
    Page::new(&title, Section::Executions, &viewer)
        .render(body)
        .into_response()
}

/// `GET /executions/{id}/log/follow?node=PATH`: the node's log from its
/// start, as plain text streamed while it grows, until the node ends.
pub async fn follow(
    State(state): State<Shared>,
    Path(id): Path<ExecutionId>,
    Query(node): Query<NodeQuery>,
) -> Response {
    let Some(state_dir) = state.state_dir.clone() else {
        return (StatusCode::NOT_IMPLEMENTED, "no state directory").into_response();
    };
    let query = LogQuery {
        node: Some(node.node),
        follow: true,
    };
    let (tail, first) = match LogTail::open(state.store.as_ref(), &state_dir, &id, &query).await {
        Ok(opened) => opened,
        Err(LogsError::Store(e)) => {
            tracing::warn!(error = %e, "console: store error");
            return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
        Err(e) => return (StatusCode::NOT_FOUND, e.to_string()).into_response(),
    };
    let text = super::super::logs::stream(state.store.clone(), tail, first);
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        axum::body::Body::from_stream(text),
    )
        .into_response()
}

/// `GET /executions/{id}/cancel`: asks to confirm.
pub async fn confirm_cancel(
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<ExecutionId>,
) -> Response {
    if !viewer.can_act() {
        return refused(StatusCode::FORBIDDEN, NEEDS_A_SESSION, &viewer);
    }
    let body = html! {
        h1 { "Cancel execution " code { (id) } "?" }
        p { "Its running nodes are stopped and the others skipped; the execution ends cancelled. This cannot be undone (recover or relaunch it afterwards)." }
        form.actions method="post" action={ (execution_href(&id)) "/cancel" } {
            (csrf_field(&viewer))
            button.danger type="submit" { "Cancel the execution" }
            a href=(execution_href(&id)) { "Keep it running" }
        }
    };
    Page::new("Cancel", Section::Executions, &viewer)
        .render(body)
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// `POST /executions/{id}/cancel`: asks the engine to cancel it, as `weir
/// cancel` does, then shows the execution.
pub async fn cancel(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<ExecutionId>,
    headers: HeaderMap,
    Form(form): Form<Posted<NoFields>>,
) -> Response {
    if let Err(refusal) = checked_form(&state, &viewer, &headers, form) {
        return refusal.into_response();
    }
    match views::request_cancel(state.store.as_ref(), &id, state.clock.now()).await {
        Ok(_) => {
            tracing::info!(execution = %id, "console: cancellation requested");
            Redirect::to(&execution_href(&id)).into_response()
        }
        Err(CancelError::Store(e)) => store_failed(&e, &viewer),
        Err(e @ CancelError::Unknown(_)) => refused(StatusCode::NOT_FOUND, &e.to_string(), &viewer),
        Err(e @ CancelError::Ended { .. }) => {
            refused(StatusCode::CONFLICT, &e.to_string(), &viewer)
        }
    }
}

/// `GET /executions/{id}/approval?node=PATH`: an approval gate's question,
/// and the form that decides it.
pub async fn confirm_approval(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<ExecutionId>,
    Query(node): Query<NodeQuery>,
) -> Response {
    if !viewer.can_act() {
        return refused(StatusCode::FORBIDDEN, NEEDS_A_SESSION, &viewer);
    }
    let e = match views::execution(state.store.as_ref(), &id).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return refused(
                StatusCode::NOT_FOUND,
                &format!("No execution `{id}`."),
                &viewer,
            );
        }
        Err(e) => return store_failed(&e, &viewer),
    };
    let Some(gate) = e
        .nodes
        .iter()
        .find(|n| n.id == node.node && n.prompt.is_some())
    else {
        let why = format!("Execution `{id}` has no approval gate `{}`.", node.node);
        return refused(StatusCode::NOT_FOUND, &why, &viewer);
    };
    let body = html! {
        h1 { "Decide " code { (gate.id) } " of " a href=(execution_href(&id)) { code { (id) } } }
        p { "It asks: " strong.prompt { (gate.prompt.clone().unwrap_or_default()) } }
        @if gate.status != NodeStatus::Waiting {
            p.error role="alert" { "It does not wait for a decision: it is " (gate.status.as_str()) "." }
        } @else {
            form.stack method="post" action={ (execution_href(&id)) "/approval" } {
                (csrf_field(&viewer))
                input type="hidden" name="node" value=(gate.id);
                label for="by" { "Your name (recorded in the audit log)" }
                input #by type="text" name="by" required maxlength="200" autocomplete="name";
                label for="comment" { "Comment (optional)" }
                textarea #comment name="comment" maxlength="2000" rows="3" {}
                div.actions {
                    button type="submit" name="decision" value="approve" { "Approve" }
                    button.danger type="submit" name="decision" value="reject" { "Reject" }
                    a href=(execution_href(&id)) { "Back" }
                }
            }
        }
    };
    Page::new("Approval", Section::Executions, &viewer)
        .render(body)
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct ApprovalForm {
    node: String,
    decision: Verdict,
    by: String,
    #[serde(default)]
    comment: String,
}

/// `POST /executions/{id}/approval`: records the decision as `weir
/// approve` does (the gate succeeds, or fails when rejected), then shows
/// the execution.
pub async fn approval(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<ExecutionId>,
    headers: HeaderMap,
    Form(form): Form<Posted<ApprovalForm>>,
) -> Response {
    let form = match checked_form(&state, &viewer, &headers, form) {
        Ok(form) => form,
        Err(refusal) => return refusal.into_response(),
    };
    let body = ApprovalBody {
        decision: form.decision,
        comment: Some(form.comment).filter(|c| !c.trim().is_empty()),
        by: Some(form.by),
    };
    let store = state.store.as_ref();
    match views::decide(store, &id, &form.node, &body, "console", state.clock.now()).await {
        Ok(decided) => {
            tracing::info!(execution = %id, node = %form.node, decision = ?decided.decision, by = %decided.by, "console: approval decided");
            Redirect::to(&execution_href(&id)).into_response()
        }
        Err(ApprovalError::Store(e)) => store_failed(&e, &viewer),
        Err(e @ (ApprovalError::UnknownExecution(_) | ApprovalError::UnknownNode { .. })) => {
            refused(StatusCode::NOT_FOUND, &e.to_string(), &viewer)
        }
        Err(e @ ApprovalError::Invalid(_)) => {
            refused(StatusCode::BAD_REQUEST, &e.to_string(), &viewer)
        }
        Err(e) => refused(StatusCode::CONFLICT, &e.to_string(), &viewer),
    }
}
