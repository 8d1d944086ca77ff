//! Launch plans: the list (`/launchplans`), one launch plan (its schedule
//! in words, its next ten instants in its own time zone with each
//! daylight-saving change marked, its recent runs), and running it from a
//! form of its workflow's inputs (`…/run`), checked against their types by
//! `engine::create` exactly as `weir run` is; and backfilling a range
//! (`…/backfill`), its dry run shown before anything is created, and the
//! range shown again once created.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::executions::execution_href;
use super::layout::{
    Page, Section, badge, commit, csrf_field, duration, entity_href, instant, plan_href,
};
use super::{
    NEEDS_A_SESSION, Posted, Refusal, Shared, Viewer, checked_form, encode, refused, store_failed,
};
use crate::engine::backfill::{self, EntryStatus};
use crate::engine::create::{self, Request as RunRequest};
use crate::spec::{Definition, Kind, Port, Trigger};
use crate::store::execution::ExecutionFilter;
use crate::views::{self, BackfillView, LaunchPlanError, LaunchPlanQuery, LaunchPlanView};

/// `GET /launchplans`.
pub async fn list(State(state): State<Shared>, Extension(viewer): Extension<Viewer>) -> Response {
    let query = LaunchPlanQuery {
        next: Some(1),
        ..LaunchPlanQuery::default()
    };
    let plans = match views::launch_plans(state.store.as_ref(), &query, state.clock.now()).await {
        Ok(plans) => plans,
        Err(e) => return store_failed(&e, &viewer),
    };
    let body = html! {
        h1 { "Launch plans" }
        @if plans.is_empty() { p.muted { "No active launch plan." } }
        @else {
            div.table-wrap { table {
                thead { tr { th { "Launch plan" } th { "Project" } th { "State" } th { "Schedule" } th { "Next (UTC)" } th { "Last run" } } }
                tbody {
                    @for p in &plans {
                        tr {
                            td { a href=(plan_href(&p.project, &p.name)) { (p.name) } }
                            td { (p.project) }
                            td { (badge(p.status.as_str())) }
                            td { @if let Some(s) = &p.schedule { (s.words) } @else { span.muted { "by hand" } } }
                            td { @if let Some(next) = p.next.first() { (instant(&next.at)) } }
                            td { @if let Some(run) = &p.last_run {
                                a href=(execution_href(&run.id)) { (badge(run.status.as_str())) } " " (instant(&run.created_at))
                            } }
                        }
                    }
                }
            } }
        }
    };
    Page::new("Launch plans", Section::LaunchPlans, &viewer)
        .render(body)
        .into_response()
}

/// The active launch plan `project/name` with its next ten instants
/// (after `from`, as `weir launchplans --from` reads it, else now);
/// `Err` is the page to send.
async fn find(
    state: &Shared,
    viewer: &Viewer,
    project: &str,
    name: &str,
    from: Option<String>,
) -> Result<LaunchPlanView, Refusal> {
    let query = LaunchPlanQuery {
        project: Some(project.to_owned()),
        name: Some(name.to_owned()),
        next: Some(10),
        from,
    };
    match views::launch_plans(state.store.as_ref(), &query, state.clock.now()).await {
        Ok(mut plans) if !plans.is_empty() => Ok(plans.remove(0)),
        Ok(_) => Err(refused(
            StatusCode::NOT_FOUND,
            &format!("No active launch plan `{name}` in project `{project}`."),
            viewer,
        )
        .into()),
        Err(LaunchPlanError::Query(e)) => {
            Err(refused(StatusCode::BAD_REQUEST, &e.0, viewer).into())
        }
        Err(LaunchPlanError::Store(e)) => Err(store_failed(&e, viewer).into()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PlanQuery {
    /// Show the instants after this one (a date or an instant).
    from: Option<String>,
}

/// `GET /launchplans/{project}/{name}[?from=]`.
pub async fn one(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((project, name)): Path<(String, String)>,
    Query(query): Query<PlanQuery>,
) -> Response {
    let from = query.from.filter(|f| !f.trim().is_empty());
    let plan = match find(&state, &viewer, &project, &name, from.clone()).await {
        Ok(plan) => plan,
        Err(page) => return page.into_response(),
    };
    let recent = ExecutionFilter {
        project: Some(project.clone()),
        launch_plan: Some(name.clone()),
        limit: Some(20),
        ..ExecutionFilter::default()
    };
    let recent = match state.store.executions(&recent).await {
        Ok(list) => list,
        Err(e) => return store_failed(&e, &viewer),
    };
    let now = state.clock.now();
    let title = format!("Launch plan {name}");
    let body = html! {
        h1 { "Launch plan " (name) " " (badge(plan.status.as_str())) }
        div.actions {
            @if viewer.can_act() {
                a.button href={ (plan_href(&project, &name)) "/run" } { "Run…" }
            }
            @if plan.schedule.is_some() {
                a.button href={ (plan_href(&project, &name)) "/backfill" } { "Backfill…" }
            }
            a href={ "/executions?launchPlan=" (encode(&name)) } { "All its executions" }
            a href=(entity_href(&project, "LaunchPlan", &name)) { "Its versions" }
        }
        dl.facts {
            dt { "Project" } dd { (project) }
            dt { "Version" } dd { code { (plan.digest.short()) } " from " (commit(&plan.commit.0)) }
            dt { "Workflow" } dd { a href=(entity_href(&project, "Workflow", &plan.workflow)) { (plan.workflow) } }
            @if let Some(s) = &plan.schedule {
                dt { "Schedule" }
                dd { (s.words) " "
                    span.muted { "(" @if let Some(c) = &s.cron { code { (c) } } @if let Some(e) = &s.every { "every " code { (e) } } ", " (s.timezone) ")" } }
            }
            @if let Some(p) = &plan.pause {
                @if p.paused {
                    dt { "Paused" } dd { "by " (p.by.name) " at " (instant(&p.at)) @if let Some(c) = &p.comment { ": " (c) } }
                }
            }
        }
        @if let Some(s) = &plan.schedule {
            h2 { "Next runs, in " (s.timezone) @if let Some(from) = &from { " after " (from) } }
            form.filters method="get" action=(plan_href(&project, &name)) {
                label { "After" input type="text" name="from" value=(from.clone().unwrap_or_default()) placeholder="now (or 2027-03-27)"; }
                button type="submit" { "Show" }
            }
            @if plan.next.is_empty() { p.muted { "None (paused)." } }
            @else {
                ol.instants {
                    @for (i, next) in plan.next.iter().enumerate() {
                        li {
                            code { (next.local()) }
                            @if i > 0 && plan.next[i - 1].offset != next.offset {
                                " " strong.dst { "daylight-saving change: " (plan.next[i - 1].offset) " → " (next.offset) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Recent runs" }
        @if recent.is_empty() { p.muted { "None yet." } }
        @else {
            div.table-wrap { table {
                thead { tr { th { "Execution" } th { "Status" } th { "Trigger" } th { "Created (UTC)" } th { "Took" } } }
                tbody {
                    @for e in &recent {
                        tr {
                            td { a href=(execution_href(&e.id)) { code { (e.id) } } }
                            td { (badge(e.status.as_str())) }
                            td { (e.trigger.as_str()) }
                            td { (instant(&e.created_at)) }
                            td.num { (duration(e.started_at.as_ref(), e.finished_at.as_ref(), now)) }
                        }
                    }
                }
            } }
        }
    };
    Page::new(&title, Section::LaunchPlans, &viewer)
        .render(body)
        .into_response()
}

/// One input of the run form.
struct Field {
    name: String,
    port: Port,
    /// Fixed by the launch plan: shown, not asked.
    fixed: Option<Value>,
    /// The launch plan's default, else the workflow's.
    default: Option<Value>,
}

/// The inputs the run form asks for: the active launch plan's workflow's
/// inputs, with the launch plan's fixed values and defaults.
async fn fields(state: &Shared, project: &str, name: &str) -> Result<Vec<Field>, create::Error> {
    let store = state.store.as_ref();
    let lp = create::active_launch_plan(store, name, Some(project)).await?;
    let workflows = store
        .active_versions(Kind::Workflow, &lp.spec.workflow, Some(project))
        .await?;
    let Some(workflow) = workflows.into_iter().next() else {
        return Err(create::Error::NotFound(lp.spec.workflow.clone()));
    };
    let Ok(Definition::Workflow(doc)) = Definition::from_json(Kind::Workflow, workflow.document)
    else {
        return Err(create::Error::Document(
            format!("workflow {}", lp.spec.workflow),
            "not a workflow".into(),
        ));
    };
    Ok(doc
        .spec
        .inputs
        .into_iter()
        .map(|(input, port)| Field {
            fixed: lp.spec.inputs.get(&input).cloned(),
            default: lp
                .spec
                .defaults
                .get(&input)
                .cloned()
                .or_else(|| port.default.clone()),
            name: input,
            port,
        })
        .collect())
}

/// A value as a form shows it: strings bare, the rest as JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn run_form(
    project: &str,
    name: &str,
    fields: &[Field],
    viewer: &Viewer,
    given: &BTreeMap<String, String>,
    error: Option<&str>,
) -> Markup {
    html! {
        h1 { "Run " a href=(plan_href(project, name)) { (name) } }
        p { "Starts an execution of the active version now, as " code { "weir run " (name) } " does." }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form.stack method="post" action={ (plan_href(project, name)) "/run" } {
            (csrf_field(viewer))
            @for f in fields {
                @let ty = f.port.type_name.clone().unwrap_or_else(|| "string".into());
                @if let Some(fixed) = &f.fixed {
                    label { (f.name) " (" (ty) ", fixed by the launch plan)"
                        input type="text" value=(shown(fixed)) disabled; }
                } @else {
                    label for={ "in-" (f.name) } {
                        (f.name) " (" (ty)
                        @if f.default.is_none() && !ty.ends_with('?') { ", required" }
                        ")"
                        @if let Some(d) = &f.port.description { span.muted { (d) } }
                    }
                    @if let Some(values) = &f.port.enum_values {
                        select id={ "in-" (f.name) } name={ "in." (f.name) } {
                            @if f.default.is_some() { option value="" { "(default)" } }
                            @for v in values {
                                option value=(v) selected[given.get(&f.name) == Some(v)] { (v) }
                            }
                        }
                    } @else if ty == "bool" {
                        select id={ "in-" (f.name) } name={ "in." (f.name) } {
                            @if f.default.is_some() { option value="" { "(default: " (f.default.as_ref().map(shown).unwrap_or_default()) ")" } }
                            option value="true" selected[given.get(&f.name).map(String::as_str) == Some("true")] { "true" }
                            option value="false" selected[given.get(&f.name).map(String::as_str) == Some("false")] { "false" }
                        }
                    } @else {
                        input id={ "in-" (f.name) } type="text"
                            inputmode=(match ty.as_str() { "int" => "numeric", "float" => "decimal", _ => "text" })
                            name={ "in." (f.name) }
                            value=(given.get(&f.name).cloned().unwrap_or_default())
                            placeholder=(f.default.as_ref().map(shown).unwrap_or_default())
                            required[f.default.is_none() && !ty.ends_with('?')];
                    }
                }
            }
            div.actions {
                button type="submit" { "Start the run" }
                a href=(plan_href(project, name)) { "Back" }
            }
        }
    }
}

/// `GET /launchplans/{project}/{name}/run`: the form.
pub async fn confirm_run(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    if !viewer.can_act() {
        return refused(StatusCode::FORBIDDEN, NEEDS_A_SESSION, &viewer);
    }
    let fields = match fields(&state, &project, &name).await {
        Ok(fields) => fields,
        Err(create::Error::Store(e)) => return store_failed(&e, &viewer),
        Err(e) => return refused(StatusCode::NOT_FOUND, &e.to_string(), &viewer),
    };
    let body = run_form(&project, &name, &fields, &viewer, &BTreeMap::new(), None);
    Page::new("Run", Section::LaunchPlans, &viewer)
        .render(body)
        .into_response()
}

/// `POST /launchplans/{project}/{name}/run`: starts the run (inputs typed
/// as `weir run k=v` parses them; empty ones take their default) and shows
/// the execution; a refused input shows the form again with the reason.
pub async fn run(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((project, name)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Posted<BTreeMap<String, String>>>,
) -> Response {
    let fields_sent = match checked_form(&state, &viewer, &headers, form) {
        Ok(fields) => fields,
        Err(refusal) => return refusal.into_response(),
    };
    let given: BTreeMap<String, String> = fields_sent
        .into_iter()
        .filter_map(|(key, value)| Some((key.strip_prefix("in.")?.to_owned(), value)))
        .filter(|(_, value)| !value.is_empty())
        .collect();
    let request = RunRequest {
        name: name.clone(),
        project: Some(project.clone()),
        inputs: given
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
        trigger: Trigger::Api,
        scheduled_at: None,
        no_cache: false,
        preview: None,
        event: None,
    };
    match create::create_in(state.store.as_ref(), &request, None, state.clock.now()).await {
        Ok((execution, _)) => {
            tracing::info!(execution = %execution.id, launch_plan = %name, "console: run started");
            Redirect::to(&execution_href(&execution.id)).into_response()
        }
        Err(create::Error::Store(e)) => store_failed(&e, &viewer),
        Err(e) => {
            let fields = fields(&state, &project, &name).await.unwrap_or_default();
            let body = run_form(
                &project,
                &name,
                &fields,
                &viewer,
                &given,
                Some(&e.to_string()),
            );
            (
                StatusCode::BAD_REQUEST,
                Page::new("Run", Section::LaunchPlans, &viewer).render(body),
            )
                .into_response()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct BackfillQuery {
    from: Option<String>,
    to: Option<String>,
    #[serde(rename = "maxParallel")]
    max_parallel: Option<String>,
    /// How many executions the backfill just created.
    created: Option<usize>,
}

/// The `maxParallel` of a form: empty for none, else a count.
fn max_parallel(text: Option<&str>) -> Result<Option<u32>, String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| format!("maxParallel: `{text}` is not a count of at least 1")),
    }
}

/// The table of a backfill's instants.
fn entries(view: &BackfillView) -> Markup {
    html! {
        div.table-wrap { table.backfill {
            thead { tr { th { "Instant (UTC)" } th { "Execution" } th { "State" } } }
            tbody {
                @for e in &view.entries {
                    tr {
                        td { (instant(&e.instant)) }
                        td {
                            @if e.status == EntryStatus::New { code { (e.execution_id) } }
                            @else { a href=(execution_href(&e.execution_id)) { code { (e.execution_id) } } }
                        }
                        td {
                            @match e.status {
                                EntryStatus::New => { "to create" }
                                EntryStatus::Created => { "created" }
                                EntryStatus::Exists => { "exists" }
                            }
                            @if let Some(s) = e.execution_status { " " (badge(s.as_str())) }
                        }
                    }
                }
            }
        } }
    }
}

/// `GET /launchplans/{project}/{name}/backfill[?from=&to=&maxParallel=]`:
/// the range to backfill, and once given, its dry run: which instants
/// would run and which have an execution already, before anything is
/// created.
pub async fn backfill_form(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((project, name)): Path<(String, String)>,
    Query(query): Query<BackfillQuery>,
) -> Response {
    let plan = match find(&state, &viewer, &project, &name, None).await {
        Ok(plan) => plan,
        Err(page) => return page.into_response(),
    };
    let Some(schedule) = &plan.schedule else {
        return refused(
            StatusCode::CONFLICT,
            &format!("Launch plan `{name}` has no schedule: there is nothing to backfill."),
            &viewer,
        );
    };
    let mut error = None;
    let mut dry_run = None;
    if let (Some(from), Some(to)) = (&query.from, &query.to) {
        match max_parallel(query.max_parallel.as_deref()) {
            Err(e) => error = Some(e),
            Ok(bound) => {
                let request = backfill::Request {
                    launch_plan: name.clone(),
                    project: Some(project.clone()),
                    from: from.clone(),
                    to: to.clone(),
                    max_parallel: bound,
                    dry_run: true,
                };
                match backfill::backfill(state.store.as_ref(), &request, state.clock.now()).await {
                    Ok(done) => dry_run = Some(BackfillView::new(&done, true)),
                    Err(e) if e.is_store() => return store_failed(&e, &viewer),
                    Err(e) => error = Some(e.to_string()),
                }
            }
        }
    }
    let action = format!("{}/backfill", plan_href(&project, &name));
    let body = html! {
        h1 { "Backfill " a href=(plan_href(&project, &name)) { (name) } }
        p { "Runs the schedule (" (schedule.words) ", " (schedule.timezone) ") over a past range, each instant once: an instant that has an execution keeps it. Times as " code { "weir backfill" } " reads them: a date, a local time in " (schedule.timezone) ", or RFC 3339." }
        @if let Some(error) = &error { p.error role="alert" { (error) } }
        @if let Some(created) = query.created {
            p.notice role="status" { "Created " (created) " executions: the engine runs them. "
                a href={ "/executions?trigger=backfill&launchPlan=" (encode(&name)) } { "Follow them" } }
        }
        form.filters method="get" action=(action) {
            label { "From" input type="text" name="from" required value=(query.from.clone().unwrap_or_default()) placeholder="2026-11-01"; }
            label { "To" input type="text" name="to" required value=(query.to.clone().unwrap_or_default()) placeholder="2026-11-03"; }
            label { "At most at once" input type="text" inputmode="numeric" name="maxParallel" value=(query.max_parallel.clone().unwrap_or_default()) placeholder="(the plan's concurrency)"; }
            button type="submit" { "Show what would run" }
        }
        @if let Some(view) = &dry_run {
            @let new = view.count(EntryStatus::New);
            @if query.created.is_some() {
                h2 { (view.entries.len() - new) " existing" @if new > 0 { ", " (new) " to create" } }
            } @else {
                h2 { "Dry run: " (new) " to create, " (view.entries.len() - new) " existing" }
            }
            @if view.cut_at_now { p.muted { "The range reaches past now: later instants are the scheduler's." } }
            (entries(view))
            @if new > 0 {
                @if viewer.can_act() {
                    form.actions method="post" action=(action) {
                        (csrf_field(&viewer))
                        input type="hidden" name="from" value=(query.from.clone().unwrap_or_default());
                        input type="hidden" name="to" value=(query.to.clone().unwrap_or_default());
                        input type="hidden" name="maxParallel" value=(query.max_parallel.clone().unwrap_or_default());
                        button type="submit" { "Create " (new) " executions" }
                    }
                } @else {
                    p.muted { "Creating them needs a session under the API token." }
                }
            }
        }
    };
    Page::new("Backfill", Section::LaunchPlans, &viewer)
        .render(body)
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct BackfillForm {
    from: String,
    to: String,
    #[serde(rename = "maxParallel")]
    max_parallel: Option<String>,
}

/// `POST /launchplans/{project}/{name}/backfill`: creates the executions
/// of the range (what `weir backfill` does) and lists them.
pub async fn backfill(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((project, name)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Posted<BackfillForm>>,
) -> Response {
    let form = match checked_form(&state, &viewer, &headers, form) {
        Ok(form) => form,
        Err(refusal) => return refusal.into_response(),
    };
    let bound = match max_parallel(form.max_parallel.as_deref()) {
        Ok(bound) => bound,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e, &viewer),
    };
    let request = backfill::Request {
        launch_plan: name.clone(),
        project: Some(project.clone()),
        from: form.from.clone(),
        to: form.to.clone(),
        max_parallel: bound,
        dry_run: false,
    };
    let done = match backfill::backfill(state.store.as_ref(), &request, state.clock.now()).await {
        Ok(done) => done,
        Err(e) if e.is_store() => return store_failed(&e, &viewer),
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string(), &viewer),
    };
    let created = done.count(EntryStatus::Created);
    tracing::info!(launch_plan = %name, created, "console: backfill created");
    // The range's page again (what exists now), so that a reload asks
    // nothing twice.
    let to = format!(
        "{}/backfill?from={}&to={}&maxParallel={}&created={created}",
        plan_href(&project, &name),
        encode(&form.from),
        encode(&form.to),
        encode(form.max_parallel.as_deref().unwrap_or_default()),
    );
    Redirect::to(&to).into_response()
}
