//! Lineage (`/lineage/{target}`): from an artifact (`sha256:<hex>`) or an
//! execution, upstream to the node runs, task versions and commits that
//! produced it, and downstream to what consumed it, as a graph and as the
//! edges `weir lineage` lists.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::executions::execution_href;
use super::graph::{self, Vertex};
use super::layout::{Page, Section, commit, instant};
use super::{Shared, Viewer, encode, refused, store_failed};
use crate::artifact;
use crate::store::execution::Direction;
use crate::views;

/// `GET /lineage/{target}`.
pub async fn page(
    State(state): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(target): Path<String>,
) -> Response {
    let view = match views::lineage(state.store.as_ref(), &target, None).await {
        Ok(Some(view)) => view,
        Ok(None) => {
            return refused(
                StatusCode::NOT_FOUND,
                &format!("`{target}` is neither an execution nor an artifact digest."),
                &viewer,
            );
        }
        Err(e) => return store_failed(&e, &viewer),
    };
    // Commits, node runs (each with its task version) and artifacts: a
    // commit defines the task version a run ran; a run reads and writes
    // artifacts.
    let mut vertices: BTreeMap<String, Vertex> = BTreeMap::new();
    let mut edges: Vec<(String, String)> = Vec::new();
    for e in &view.edges {
        let reference = artifact::reference(&e.artifact);
        let artifact_id = format!("artifact:{reference}");
        let run_id = format!("run:{}/{}", e.execution, e.node);
        let commit_id = format!("commit:{}", e.commit.0);
        vertices
            .entry(artifact_id.clone())
            .or_insert_with(|| Vertex {
                id: artifact_id.clone(),
                label: e.name.clone(),
                sub: format!(
                    "artifact {}",
                    &reference["sha256:".len().."sha256:".len() + 12]
                ),
                class: if reference == view.target {
                    "k-artifact k-target".into()
                } else {
                    "k-artifact".into()
                },
                href: Some(format!("/lineage/{reference}")),
            });
        vertices.entry(run_id.clone()).or_insert_with(|| Vertex {
            id: run_id.clone(),
            label: format!("{} · {}@{}", e.node, e.task, e.task_version),
            sub: format!("in {}", e.execution),
            class: "s-succeeded".into(),
            href: Some(format!("{}#node-{}", execution_href(&e.execution), e.node)),
        });
        vertices.entry(commit_id.clone()).or_insert_with(|| Vertex {
            id: commit_id.clone(),
            label: e.commit.0.chars().take(12).collect(),
            sub: "commit".into(),
            class: "k-commit".into(),
            href: None,
        });
        edges.push((commit_id, run_id.clone()));
        match e.direction {
            Direction::Input => edges.push((artifact_id, run_id)),
            Direction::Output => edges.push((run_id, artifact_id)),
        }
    }
    edges.sort();
    edges.dedup();
    let vertices: Vec<Vertex> = vertices.into_values().collect();
    let title = format!("Lineage of {}", view.target);
    let body = html! {
        h1 { "Lineage of " code { (view.target) } }
        p.muted { "A commit defines the task version a node ran (node · task@version); a node's run reads and writes artifacts. Upstream: what produced it; downstream: what consumed it." }
        @if view.edges.is_empty() {
            p { "No recorded lineage." }
        } @else {
            (graph::draw(&title, &vertices, &edges))
            h2 { "Commits" }
            ul.commits { @for c in &view.commits { li { (commit(&c.0)) } } }
            h2 { "Edges" }
            div.table-wrap { table.edges {
                thead { tr { th { "Execution" } th { "Node" } th { "Reads / writes" } th { "Artifact" } th { "Task" } th.hide-narrow { "Commit" } th.hide-narrow { "At (UTC)" } } }
                tbody {
                    @for e in &view.edges {
                        @let reference = artifact::reference(&e.artifact);
                        tr {
                            td { a href=(execution_href(&e.execution)) { code { (e.execution) } } }
                            td { code { (e.node) } }
                            td { @match e.direction { Direction::Input => "reads", Direction::Output => "writes" } " " (e.name) }
                            td { a href={ "/lineage/" (encode(&reference)) } { code { (&reference[..19]) "…" } } }
                            td { (e.task) "@" (e.task_version) }
                            td.hide-narrow { (commit(&e.commit.0)) }
                            td.hide-narrow { (instant(&e.at)) }
                        }
                    }
                }
            } }
        }
    };
    Page::new(&title, Section::None, &viewer)
        .render(body)
        .into_response()
}
