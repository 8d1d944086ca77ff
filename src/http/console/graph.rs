//! Pictures drawn on the server as inline SVG (no script, nothing to
//! load): a directed graph laid out left to right in layers (a workflow, an
//! execution coloured by node status, a lineage), and a timeline of bars
//! (an execution's nodes). Colours come from the stylesheet's classes;
//! each box also says its status in words.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::views::took;

/// A box of a graph.
pub struct Vertex {
    pub id: String,
    pub label: String,
    /// A second, smaller line (task type, status).
    pub sub: String,
    /// Stylesheet classes (`s-succeeded`, `k-artifact`).
    pub class: String,
    pub href: Option<String>,
}

const WIDTH: f64 = 200.0;
const HEIGHT: f64 = 44.0;
const COLUMN_GAP: f64 = 56.0;
const ROW_GAP: f64 = 14.0;
const MARGIN: f64 = 8.0;

/// Each vertex's layer: the longest path to it from a vertex with no
/// edge into it (edges to unknown vertices ignored). A cycle, which a
/// lineage has when a node writes a value it also read (`strict: true` in,
/// `passed: true` out: one digest), is broken at the edge that closes it
/// in a depth-first walk from the vertices in order.
fn layers(vertices: &[Vertex], edges: &[(String, String)]) -> Vec<usize> {
    let index: HashMap<&str, usize> = vertices
        .iter()
        .enumerate()
        .map(|(i, v)| (v.id.as_str(), i))
        .collect();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
    for (from, to) in edges {
        if let (Some(&a), Some(&b)) = (index.get(from.as_str()), index.get(to.as_str())) {
            out[a].push(b);
        }
    }
    // Depth-first, iteratively: an edge to a vertex still on the walk's
    // path closes a cycle and is left out of the layering.
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; vertices.len()];
    let mut kept: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
    for start in 0..vertices.len() {
        if state[start] != NEW {
            continue;
        }
        state[start] = ON_PATH;
        let mut path = vec![(start, 0usize)];
        while let Some((v, next)) = path.last_mut() {
            let v = *v;
            if let Some(&w) = out[v].get(*next) {
                *next += 1;
                match state[w] {
                    ON_PATH => {}
                    DONE => kept[v].push(w),
                    _ => {
                        kept[v].push(w);
                        state[w] = ON_PATH;
                        path.push((w, 0));
                    }
                }
            } else {
                state[v] = DONE;
                path.pop();
            }
        }
    }
    let mut into = vec![0usize; vertices.len()];
    for targets in &kept {
        for &w in targets {
            into[w] += 1;
        }
    }
    let mut layer = vec![0usize; vertices.len()];
    let mut ready: Vec<usize> = (0..vertices.len()).filter(|&i| into[i] == 0).collect();
    while let Some(i) = ready.pop() {
        for &j in &kept[i] {
            layer[j] = layer[j].max(layer[i] + 1);
            into[j] -= 1;
            if into[j] == 0 {
                ready.push(j);
            }
        }
    }
    layer
}

/// Shortens `text` to `max` characters, ending in `…` when cut.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max - 1).collect();
    format!("{kept}…")
}

/// A graph as SVG, `title` its accessible name.
pub fn draw(title: &str, vertices: &[Vertex], edges: &[(String, String)]) -> Markup {
    let layer = layers(vertices, edges);
    let columns = layer.iter().max().map_or(0, |m| m + 1);
    // Each column's vertices, ordered by the mean row of their
    // predecessors (one pass left to right: fewer crossings), then as
    // written.
    let mut row = vec![0f64; vertices.len()];
    let index: HashMap<&str, usize> = vertices
        .iter()
        .enumerate()
        .map(|(i, v)| (v.id.as_str(), i))
        .collect();
    let mut predecessors: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
    for (from, to) in edges {
        if let (Some(&a), Some(&b)) = (index.get(from.as_str()), index.get(to.as_str())) {
            predecessors[b].push(a);
        }
    }
    let mut height_rows = 0usize;
    for column in 0..columns {
        let mut members: Vec<usize> = (0..vertices.len())
            .filter(|&i| layer[i] == column)
            .collect();
        let key = |i: usize| -> f64 {
            let p = &predecessors[i];
            if p.is_empty() {
                i as f64 / vertices.len().max(1) as f64
            } else {
                p.iter().map(|&a| row[a]).sum::<f64>() / p.len() as f64
            }
        };
        members.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
        for (r, &i) in members.iter().enumerate() {
            row[i] = r as f64;
        }
        height_rows = height_rows.max(members.len());
    }
    let x = |i: usize| MARGIN + layer[i] as f64 * (WIDTH + COLUMN_GAP);
    let y = |i: usize| MARGIN + row[i] * (HEIGHT + ROW_GAP);
    let width = MARGIN * 2.0 + columns as f64 * (WIDTH + COLUMN_GAP) - COLUMN_GAP;
    let height = MARGIN * 2.0 + height_rows as f64 * (HEIGHT + ROW_GAP) - ROW_GAP;
    let paths: Vec<String> = edges
        .iter()
        .filter_map(|(from, to)| Some((*index.get(from.as_str())?, *index.get(to.as_str())?)))
        .map(|(a, b)| {
            let (x1, y1) = (x(a) + WIDTH, y(a) + HEIGHT / 2.0);
            let (x2, y2) = (x(b) - 2.0, y(b) + HEIGHT / 2.0);
            let bend = (x2 - x1).abs() / 2.0;
            format!(
                "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
                x1 + bend,
                x2 - bend
            )
        })
        .collect();
    let label_chars = 25;
    html! {
        div.graph-wrap {
            svg.graph xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title)
                viewBox={ "0 0 " (format!("{width:.0}")) " " (format!("{height:.0}")) }
                width=(format!("{width:.0}")) height=(format!("{height:.0}")) {
                defs {
                    marker #arrow viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7"
                        markerHeight="7" orient="auto" {
                        path.arrow d="M0,0 L8,4 L0,8 z" {}
                    }
                }
                @for d in &paths {
                    path.edge d=(d) marker-end="url(#arrow)" {}
                }
                @for (i, v) in vertices.iter().enumerate() {
                    @let body = html! {
                        title { (v.label) " — " (v.sub) }
                        rect x=(format!("{:.1}", x(i))) y=(format!("{:.1}", y(i)))
                            width=(WIDTH) height=(HEIGHT) rx="6" {}
                        text x=(format!("{:.1}", x(i) + 10.0)) y=(format!("{:.1}", y(i) + 18.0)) {
                            (fit(&v.label, label_chars))
                        }
                        text.sub x=(format!("{:.1}", x(i) + 10.0)) y=(format!("{:.1}", y(i) + 34.0)) {
                            (fit(&v.sub, label_chars + 6))
                        }
                    };
                    g class={ "node " (v.class) } data-id=(v.id) {
                        @if let Some(href) = &v.href {
                            a href=(href) { (body) }
                        } @else {
                            (body)
                        }
                    }
                }
            }
        }
    }
}

/// A bar of a timeline.
pub struct Bar {
    pub label: String,
    pub start: DateTime<Utc>,
    /// `None`: still running (drawn to `now`).
    pub end: Option<DateTime<Utc>>,
    pub status: String,
    /// Said on hover beside the times (`2 attempts`, `cached`).
    pub note: String,
    pub href: Option<String>,
}

/// Bars on a common time axis, one row each, `now` closing open ones.
pub fn timeline(title: &str, bars: &[Bar], now: DateTime<Utc>) -> Markup {
    const LABEL: f64 = 190.0;
    const PLOT: f64 = 700.0;
    const ROW: f64 = 22.0;
    let Some(first) = bars.iter().map(|b| b.start).min() else {
        return html! { p.muted { "No node has started yet." } };
    };
    let last = bars
        .iter()
        .map(|b| b.end.unwrap_or(now))
        .max()
        .unwrap_or(first);
    let span = (last - first).num_milliseconds().max(1) as f64;
    let at = |t: DateTime<Utc>| LABEL + (t - first).num_milliseconds() as f64 / span * PLOT;
    let height = 24.0 + bars.len() as f64 * ROW;
    let ticks: Vec<(f64, String)> = (0..=4)
        .map(|k| {
            let millis = (span * k as f64 / 4.0) as i64;
            (
                LABEL + PLOT * k as f64 / 4.0,
                format!("+{}", took(chrono::TimeDelta::milliseconds(millis))),
            )
        })
        .collect();
    html! {
        div.graph-wrap {
            svg.timeline xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title)
                viewBox={ "0 0 " (LABEL + PLOT + 60.0) " " (height) }
                width=(LABEL + PLOT + 60.0) height=(height) {
                @for (tx, text) in &ticks {
                    line.axis x1=(format!("{tx:.1}")) y1="16" x2=(format!("{tx:.1}")) y2=(height) {}
                    text.tick x=(format!("{tx:.1}")) y="12" text-anchor="middle" { (text) }
                }
                @for (r, bar) in bars.iter().enumerate() {
                    @let top = 20.0 + r as f64 * ROW;
                    @let x1 = at(bar.start);
                    @let x2 = at(bar.end.unwrap_or(now)).max(x1 + 2.0);
                    @let spent = took(bar.end.unwrap_or(now) - bar.start);
                    g {
                        title { (bar.label) ": " (bar.status) ", " (spent) (bar.note) }
                        text.label x="4" y=(format!("{:.1}", top + 13.0)) {
                            @if let Some(href) = &bar.href {
                                a href=(href) { (fit(&bar.label, 26)) }
                            } @else { (fit(&bar.label, 26)) }
                        }
                        rect class={ "bar s-" (bar.status) } x=(format!("{x1:.1}")) y=(format!("{:.1}", top + 3.0))
                            width=(format!("{:.1}", x2 - x1)) height="14" rx="3" {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex(id: &str) -> Vertex {
        Vertex {
            id: id.into(),
            label: id.into(),
            sub: String::new(),
            class: String::new(),
            href: None,
        }
    }

    #[test]
    fn a_vertex_sits_one_layer_after_its_furthest_predecessor() {
        let vertices: Vec<Vertex> = ["a", "b", "c", "d"].into_iter().map(vertex).collect();
        let edge = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        let edges = [
            edge("a", "b"),
            edge("b", "c"),
            edge("a", "c"),
            edge("x", "d"),
        ];
        assert_eq!(layers(&vertices, &edges), [0, 1, 2, 0]);
    }

    #[test]
    fn a_cycle_is_broken_where_it_closes() {
        // A node (b) that reads value a and writes the same value (a).
        let vertices: Vec<Vertex> = ["a", "b", "c"].into_iter().map(vertex).collect();
        let edge = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        let edges = [edge("a", "b"), edge("b", "a"), edge("b", "c")];
        assert_eq!(layers(&vertices, &edges), [0, 1, 2]);
    }

    #[test]
    fn labels_are_escaped_and_cut() {
        let mut v = vertex("<script>");
        v.label = "<script>alert(1)</script>".into();
        let svg = draw("g", &[v], &[]).into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_eq!(fit("abcdef", 4), "abc…");
    }
}
