//! What every page shares: the document around a page's body (navigation,
//! stylesheet, script), and how values are shown: statuses as a coloured
//! badge with their name (never colour alone), instants in UTC, values as
//! JSON with artifacts linked to their lineage.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::Viewer;
use crate::artifact;

/// Which part of the console a page belongs to (marked in the navigation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Executions,
    Entities,
    LaunchPlans,
    Audit,
    None,
}

/// A page: its title and section, for the viewer.
pub struct Page<'a> {
    title: &'a str,
    section: Section,
    viewer: &'a Viewer,
}

impl<'a> Page<'a> {
    pub fn new(title: &'a str, section: Section, viewer: &'a Viewer) -> Page<'a> {
        Page {
            title,
            section,
            viewer,
        }
    }

    /// The whole document around `body`.
    pub fn render(&self, body: Markup) -> Markup {
        let link = |section: Section, href: &str, label: &str| {
            html! {
                @if section == self.section {
                    a href=(href) aria-current="page" { (label) }
                } @else {
                    a href=(href) { (label) }
                }
            }
        };
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="color-scheme" content="light dark";
                    title { (self.title) " · weir" }
                    link rel="stylesheet" href=(*super::assets::STYLESHEET);
                    link rel="icon" type="image/svg+xml" href=(*super::assets::ICON_URL);
                    script src=(*super::assets::SCRIPT) defer {}
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        a.brand href="/" { "weir" }
                        nav aria-label="Sections" {
                            (link(Section::Overview, "/", "Overview"))
                            (link(Section::Executions, "/executions", "Executions"))
                            (link(Section::Entities, "/entities", "Definitions"))
                            (link(Section::LaunchPlans, "/launchplans", "Launch plans"))
                            (link(Section::Audit, "/audit", "Audit"))
                        }
                        @if self.viewer.csrf.is_some() {
                            form.logout method="post" action="/logout" {
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                    main #main { (body) }
                }
            }
        }
    }
}

/// The hidden field that carries the session's CSRF token in a form.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf.as_deref().unwrap_or_default()); }
}

/// The link to a launch plan's page.
pub fn plan_href(project: &str, name: &str) -> String {
    format!(
        "/launchplans/{}/{}",
        super::encode(project),
        super::encode(name)
    )
}

/// A status as a badge: its colour and its name.
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge s-" (status) } { (status) } }
}

/// An instant as every page shows it: UTC to the second, with the full
/// value (milliseconds) on hover; the script adds the viewer's local time.
pub fn instant(t: &DateTime<Utc>) -> Markup {
    let full = crate::views::instant::format(t);
    html! { time datetime=(full) title=(full) { (t.format("%Y-%m-%d %H:%M:%S")) } }
}

pub fn instant_opt(t: Option<&DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => instant(t),
        None => html! { span.muted { "—" } },
    }
}

/// How long from `start` to `end` (or to `now` while it runs), as the
/// CLI says it ([`crate::views::took`]).
pub fn duration(
    start: Option<&DateTime<Utc>>,
    end: Option<&DateTime<Utc>>,
    now: DateTime<Utc>,
) -> String {
    match start {
        Some(start) => crate::views::took(*end.unwrap_or(&now) - *start),
        None => "—".into(),
    }
}

/// A value as pretty JSON, each artifact reference in it a link to its
/// lineage.
pub fn value(value: &Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    // Split around artifact references so that each becomes a link; the
    // rest is text (escaped as any).
    let mut parts: Vec<(String, Option<String>)> = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("sha256:") {
        let end = at + "sha256:".len() + 64;
        let candidate = rest.get(at..end);
        match candidate.and_then(artifact::parse_reference) {
            Some(_) => {
                parts.push((rest[..at].to_owned(), None));
                let reference = rest[at..end].to_owned();
                parts.push((reference.clone(), Some(reference)));
                rest = &rest[end..];
            }
            None => {
                parts.push((rest[..at + 1].to_owned(), None));
                rest = &rest[at + 1..];
            }
        }
    }
    parts.push((rest.to_owned(), None));
    html! {
        pre.value {
            @for (text, link) in &parts {
                @if let Some(reference) = link {
                    a href={ "/lineage/" (reference) } title="Lineage of this artifact" { (text) }
                } @else { (text) }
            }
        }
    }
}

/// A commit as its 12 first hex digits, the whole id on hover.
pub fn commit(id: &str) -> Markup {
    let short = id.get(..12).unwrap_or(id);
    html! { code title=(id) { (short) } }
}

/// The link to an entity's history.
pub fn entity_href(project: &str, kind: &str, name: &str) -> String {
    format!(
        "/entities/{}/{}/{}",
        super::encode(project),
        kind,
        super::encode(name)
    )
}
