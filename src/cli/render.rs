//! Rendering validation reports for people and machines.
//!
//! - `table` (also `human`): rustc-style snippets (annotate-snippets) with the offending
//!   token underlined and a help line; coloured only on a terminal without
//!   `NO_COLOR`.
//! - `json`: `{valid, errors, warnings, diagnostics, entities}`; the field
//!   names are an interface scripts depend on.
//! - `github`: workflow commands (`::error file=…,line=…,col=…::…`) that
//!   GitHub Actions turns into pull-request annotations.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::path::Path;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde_json::json;

use crate::validate::{Diagnostic, Entity, Report, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people (`human` and `text` still read).
    #[value(alias = "human", alias = "text")]
    Table,
    Json,
    Github,
}

/// The folder diagnostics' relative paths are shown under, as the user typed it.
pub fn display_prefix(path: &Path) -> String {
    let dir = if path.is_file() {
        path.parent().unwrap_or(Path::new(""))
    } else {
        path
    };
    let text = dir.to_string_lossy().replace('\\', "/");
    let text = text.trim_end_matches('/');
    match text {
        "" | "." => String::new(),
        t => format!("{}/", t.strip_prefix("./").unwrap_or(t)),
    }
}

/// Renders a whole report in `format`.
pub fn report(report: &Report, format: Format, prefix: &str) -> String {
    match format {
        Format::Table => human(report, prefix, use_color()),
        Format::Json => json_report(report, prefix),
        Format::Github => github(report, prefix),
    }
}

fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Human output without colour (what snapshot tests see).
pub fn human(report: &Report, prefix: &str, color: bool) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for d in &report.diagnostics {
        let text = report.source_text(&d.file.to_string_lossy());
        out.push_str(&render_one(&renderer, d, text, prefix));
        out.push_str("\n\n");
    }
    let (errors, warnings) = counts(report);
    if errors > 0 {
        out.push_str(&format!(
            "error: {} in {} ({})\n",
            plural(errors, "error"),
            plural(report.sources.len(), "definition file"),
            plural(warnings, "warning")
        ));
    } else {
        out.push_str(&entity_table(report));
        out.push_str(&format!(
            "ok: {} valid in {} ({})\n",
            plural(report.entities.len(), "definition"),
            plural(report.sources.len(), "file"),
            plural(warnings, "warning")
        ));
    }
    out
}

fn render_one(renderer: &Renderer, d: &Diagnostic, text: Option<&str>, prefix: &str) -> String {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let path = format!("{prefix}{}", d.file.display());
    let title = level.primary_title(d.message.as_str()).id(d.code.id());
    let mut group = match (d.pos, text) {
        (Some(pos), Some(text)) if pos.line > 0 => {
            let line_text = text.lines().nth(pos.line as usize - 1).unwrap_or("");
            let (start, len) = token_span(line_text, pos.column as usize);
            title.element(
                Snippet::source(line_text)
                    .line_start(pos.line as usize)
                    .path(path)
                    .annotation(
                        AnnotationKind::Primary
                            .span(start..start + len)
                            .label(d.code.name()),
                    ),
            )
        }
        _ => title.element(annotate_snippets::Origin::path(path)),
    };
    if let Some(help) = &d.help {
        group = group.element(Level::HELP.message(help.as_str()));
    }
    let groups: [Group<'_>; 1] = [group];
    renderer.render(&groups)
}

/// The byte range of the token starting at character `column` (1-based).
fn token_span(line: &str, column: usize) -> (usize, usize) {
    let start = line
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(line.len(), |(i, _)| i);
    let rest = &line[start..];
    let len = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => rest[1..].find(q).map_or(rest.len(), |i| i + 2),
        Some(_) => {
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                let next = rest[i + c.len_utf8()..].chars().next();
                let stop = matches!(c, ',' | ']' | '}')
                    || (c == ':' && next.is_none_or(char::is_whitespace))
                    || (c == '#' && i > 0 && rest[..i].ends_with(' '));
                if stop {
                    end = i;
                    break;
                }
            }
            rest[..end].trim_end().len()
        }
        None => 0,
    };
    (
        start,
        len.max(1).min(line.len().saturating_sub(start).max(1)),
    )
}

fn counts(report: &Report) -> (usize, usize) {
    let errors = report.error_count();
    (errors, report.diagnostics.len() - errors)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn entity_table(report: &Report) -> String {
    let mut entities: Vec<&Entity> = report.entities.iter().collect();
    // A valid tree's identities are unique: no order among equals to keep.
    entities.sort_unstable_by(|a, b| {
        (&a.id.project, a.id.kind, &a.id.name).cmp(&(&b.id.project, b.id.kind, &b.id.name))
    });
    let rows: Vec<[Cow<'_, str>; 5]> = entities
        .into_iter()
        .map(|e| {
            [
                Cow::Borrowed(e.id.kind.as_str()),
                Cow::Borrowed(e.id.project.as_str()),
                Cow::Borrowed(e.id.name.as_str()),
                Cow::Borrowed(e.digest.as_ref().map_or("-", |d| d.short())),
                Cow::Owned(format!("{}:{}", e.file, e.pos.line)),
            ]
        })
        .collect();
    table(&["KIND", "PROJECT", "NAME", "VERSION", "FILE"], &rows)
}

/// An instant as tables show it: in UTC, to the second
/// (`2026-12-04T05:12:03Z`), in a column whose header ends with `(UTC)`.
/// (JSON has milliseconds: [`crate::views`].)
pub fn utc(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A plain left-aligned table.
pub fn table<H, C, R>(header: &[H], rows: &[R]) -> String
where
    H: AsRef<str>,
    C: AsRef<str>,
    R: AsRef<[C]>,
{
    let mut widths: Vec<usize> = header.iter().map(|h| width(h.as_ref())).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(width(cell.as_ref()));
        }
    }
    let line: usize = widths.iter().map(|w| w + 2).sum();
    let mut out = String::with_capacity(line * (rows.len() + 1));
    table_row(&mut out, &widths, header.iter().map(AsRef::as_ref));
    for row in rows {
        table_row(&mut out, &widths, row.as_ref().iter().map(AsRef::as_ref));
    }
    out
}

/// A cell's width in columns (characters).
fn width(cell: &str) -> usize {
    cell.chars().count()
}

/// One line of a table: each cell padded to its column's width, two spaces
/// between columns, none at the end.
fn table_row<'a>(out: &mut String, widths: &[usize], cells: impl Iterator<Item = &'a str>) {
    let start = out.len();
    for (i, (cell, w)) in cells.zip(widths).enumerate() {
        if i > 0 {
            out.push_str("  ");
        }
        out.push_str(cell);
        out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(cell))));
    }
    let kept = out[start..].trim_end().len();
    out.truncate(start + kept);
    out.push('\n');
}

fn json_report(report: &Report, prefix: &str) -> String {
    let diagnostics: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| d.to_json(prefix))
        .collect();
    let entities: Vec<_> = report
        .summaries()
        .into_iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s).expect("summaries serialize");
            v["file"] = json!(format!("{prefix}{}", s.file));
            v
        })
        .collect();
    let (errors, warnings) = counts(report);
    let mut text = serde_json::to_string_pretty(&json!({
        "valid": errors == 0,
        "errors": errors,
        "warnings": warnings,
        "diagnostics": diagnostics,
        "entities": entities,
    }))
    .expect("a Value always serializes");
    text.push('\n');
    text
}

fn github(report: &Report, prefix: &str) -> String {
    let mut out = String::new();
    for d in &report.diagnostics {
        let command = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut props = format!(
            "file={}",
            escape_property(&format!("{prefix}{}", d.file.display()))
        );
        if let Some(p) = d.pos {
            props.push_str(&format!(",line={},col={}", p.line, p.column));
        }
        props.push_str(&format!(",title={}", escape_property(&d.code.to_string())));
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        out.push_str(&format!("::{command} {props}::{}\n", escape_data(&message)));
    }
    let (errors, warnings) = counts(report);
    out.push_str(&format!(
        "weir validate: {}, {}, {}\n",
        plural(report.entities.len(), "definition"),
        plural(errors, "error"),
        plural(warnings, "warning")
    ));
    out
}

/// Escaping of a workflow command's message (GitHub's toolkit rules).
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escaping of a workflow command's property value.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_spans() {
        assert_eq!(token_span("    task: train-modle", 11), (10, 11));
        assert_eq!(token_span("  cron: \"0 25 * * *\"  # nightly", 9), (8, 12));
        assert_eq!(token_span("  retires: 3", 3), (2, 7));
        assert_eq!(token_span("after: [a, bb]", 12), (11, 2));
        assert_eq!(token_span("", 1), (0, 1));
    }

    #[test]
    fn github_escaping() {
        assert_eq!(escape_data("50%\nnext"), "50%25%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
