//! The overview (`/`): each source with its last reconciled and last
//! attempted commit, and when the head was refused, why (each diagnostic
//! at file:line:col with its line); how many executions run and failed
//! lately; the next scheduled runs; which engine drives the store. And the
//! audit log (`/audit`).

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

use super::layout::{Page, Section, badge, commit, instant, instant_opt, plan_href};
use super::{Shared, Viewer, store_failed};
use crate::spec::CommitId;
use crate::store::execution::{ExecutionFilter, Status};
use crate::store::{CommitInfo, Store};
use crate::views::{self, AuditQuery, LaunchPlanQuery, SourceView};

/// How many failures the overview counts at most (then it says "100+").
const FAILED_SHOWN: u32 = 100;

/// `GET /`.
pub async fn page(State(state): State<Shared>, Extension(viewer): Extension<Viewer>) -> Response {
    let store = state.store.as_ref();
    let now = state.clock.now();
    let status = match views::status(store, now).await {
        Ok(status) => status,
        Err(e) => return store_failed(&e, &viewer),
    };
    let ids = status
        .sources
        .iter()
        .flat_map(|s| [&s.last_reconciled_commit, &s.last_attempted_commit])
        .flatten()
        .cloned()
        .collect();
    let commits = match commits_by_id(store, ids).await {
        Ok(commits) => commits,
        Err(e) => return store_failed(&e, &viewer),
    };
    let unfinished = match store.unfinished_summary().await {
        Ok(summary) => summary.count,
        Err(e) => return store_failed(&e, &viewer),
    };
    let day_ago = now - chrono::Duration::hours(24);
    let failed = ExecutionFilter {
        status: Some(Status::Failed),
        limit: Some(FAILED_SHOWN),
        ..ExecutionFilter::default()
    };
    let failed = match store.executions(&failed).await {
        Ok(list) => list.iter().filter(|e| e.created_at >= day_ago).count(),
        Err(e) => return store_failed(&e, &viewer),
    };
    let query = LaunchPlanQuery {
        next: Some(1),
        ..LaunchPlanQuery::default()
    };
    let mut next: Vec<(String, String, chrono::DateTime<chrono::Utc>)> =
        match views::launch_plans(store, &query, now).await {
            Ok(plans) => plans
                .into_iter()
                .filter_map(|p| Some((p.project, p.name, p.next.first()?.at)))
                .collect(),
            Err(e) => return store_failed(&e, &viewer),
        };
    next.sort_by_key(|(_, _, at)| *at);
    next.truncate(10);

    let body = html! {
        h1 { "Overview" }
        div.cards {
            a.card href="/executions?status=running" {
                div.big { (unfinished) }
                div { "executions queued or running" }
            }
            a.card href="/executions?status=failed" {
                div.big {
                    (failed)
                    @if failed as u32 >= FAILED_SHOWN { "+" }
                }
                div { "failed in the last 24 hours" }
            }
            div.card {
                div { "Engine" }
                @match &status.engine_lease {
                    Some(lease) if lease.live => {
                        div { (badge("active")) " " code { (lease.holder) } }
                        div.muted { "lease until " (instant(&lease.until)) }
                    }
                    Some(lease) => {
                        div { (badge("inactive")) " last held by " code { (lease.holder) } }
                        div.muted { "lease expired " (instant(&lease.until)) }
                    }
                    None => { div { (badge("inactive")) " no engine has run yet" } }
                }
            }
        }
        h2 { "Sources" }
        @if status.sources.is_empty() {
            p.muted { "No source has been reconciled yet." }
        }
        @for source in &status.sources {
            (source_card(source, &commits))
        }
        h2 { "Next scheduled runs" }
        @if next.is_empty() {
            p.muted { "No active launch plan has a schedule." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "At (UTC)" } th { "Launch plan" } th { "Project" } } }
                tbody {
                    @for (project, name, at) in &next {
                        tr {
                            td { (instant(at)) }
                            td { a href=(plan_href(project, name)) { (name) } }
                            td { (project) }
                        }
                    }
                }
            } }
        }
        @if !status.paused.is_empty() {
            h2 { "Paused launch plans" }
            ul {
                @for p in &status.paused {
                    li {
                        a href=(plan_href(&p.project, &p.name)) { (p.project) "/" (p.name) }
                        " paused by " (p.pause.by.name) " at " (instant(&p.pause.at))
                        @if let Some(comment) = &p.pause.comment { ": " (comment) }
                    }
                }
            }
        }
    };
    Page::new("Overview", Section::Overview, &viewer)
        .render(body)
        .into_response()
}

/// One source: its commits and, when its head was refused, why.
fn source_card(source: &SourceView, commits: &HashMap<CommitId, CommitInfo>) -> Markup {
    let described = |id: &Option<CommitId>| match id {
        None => html! { span.muted { "none" } },
        Some(id) => html! {
            (commit(&id.0))
            @if let Some(info) = commits.get(id) {
                " " span { (subject(&info.message)) }
                " " span.muted { "by " (info.author.name) ", " (instant(&info.time)) }
            }
        },
    };
    html! {
        section.card data-source=(source.source.0) {
            div {
                @if source.ready { (badge("ready")) } @else if source.error.is_some() { (badge("refused")) } @else { (badge("pending")) }
                " " code { (source.source.0) }
            }
            dl.facts {
                dt { "Reconciled" }
                dd.reconciled { (described(&source.last_reconciled_commit)) " " (instant_opt(source.last_reconciled_at.as_ref())) }
                dt { "Last attempted" }
                dd.attempted { (described(&source.last_attempted_commit)) " " (instant_opt(source.last_attempted_at.as_ref())) }
            }
            @if let Some(error) = &source.error {
                div.error role="alert" {
                    p { strong { (error.reason) } ": " (error.message) }
                    @if source.last_reconciled_commit.is_some() {
                        p { "The versions of the last reconciled commit keep running." }
                    }
                    (diagnostics(&error.diagnostics))
                }
            }
        }
    }
}

/// What the store recorded of each of `ids` (each read once).
pub async fn commits_by_id(
    store: &dyn Store,
    mut ids: Vec<CommitId>,
) -> Result<HashMap<CommitId, CommitInfo>, crate::store::Error> {
    ids.sort();
    ids.dedup();
    let found = store.commits(&ids).await?;
    Ok(found.into_iter().map(|c| (c.id.clone(), c)).collect())
}

/// The first line of a commit message.
pub fn subject(message: &str) -> &str {
    message.lines().next().unwrap_or_default()
}

/// Diagnostics as `weir validate -o json` prints them: code, place,
/// message, the line they point at and a help line.
fn diagnostics(list: &Value) -> Markup {
    let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
    let text = |d: &Value, key: &str| d.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    html! {
        ul.diagnostics {
            @for d in items {
                @let place = match (d.get("line").and_then(Value::as_u64), d.get("column").and_then(Value::as_u64)) {
                    (Some(line), Some(column)) => format!("{}:{line}:{column}", text(d, "file")),
                    _ => text(d, "file"),
                };
                li {
                    code.place { (place) } " "
                    strong { (text(d, "severity")) " " (text(d, "code")) } ": " (text(d, "message"))
                    @if let Some(snippet) = d.get("snippet").and_then(Value::as_str) {
                        pre.snippet { (snippet) }
                    }
                    @if let Some(help) = d.get("help").and_then(Value::as_str) {
                        div.muted { "help: " (help) }
                    }
                }
            }
        }
    }
}

/// `GET /audit?limit=`: the audit log, newest first.
pub async fn audit(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let query = AuditQuery {
        limit: Some(query.limit.unwrap_or(100).clamp(1, 1000)),
    };
    let entries = match views::audit(state.store.as_ref(), &query).await {
        Ok(entries) => entries,
        Err(e) => return store_failed(&e, &viewer),
    };
    let body = html! {
        h1 { "Audit log" }
        p.muted { "Newest first: every reconciled or refused commit, pause, resume and approval." }
        div.table-wrap { table {
            thead { tr { th { "At (UTC)" } th { "Action" } th { "By" } th { "Commit" } th.hide-narrow { "Details" } } }
            tbody {
                @for e in &entries {
                    tr {
                        td { (instant(&e.at)) }
                        td { (e.action) }
                        td { (e.actor.name) @if !e.actor.email.is_empty() { " " span.muted { "<" (e.actor.email) ">" } } }
                        td { @if let Some(c) = &e.commit { (commit(&c.0)) } }
                        td.hide-narrow { code { (e.details.to_string()) } }
                    }
                }
            }
        } }
        @if entries.len() as u32 == query.limit.unwrap_or(100) && query.limit.unwrap_or(100) < 1000 {
            p { a href={ "/audit?limit=" (query.limit.unwrap_or(100).saturating_mul(2).min(1000)) } { "Show more" } }
        }
    };
    Page::new("Audit", Section::Audit, &viewer)
        .render(body)
        .into_response()
}
