//! `weir plan`: what merging `--head` into `--base` would do, for a pull
//! request's CI (no store needed). Markdown output is fit to paste as a PR
//! comment.

use serde_json::json;

use super::exit::{self, Error, ExitStatus};
use super::render;
use crate::daemon::config::DEFAULT_STATE_DIR;
use crate::registry::compare::{Comparison, EntityChange, PlanChange, compare};
use crate::source::dir::DEFAULT_MAX_FILE_SIZE;
use crate::source::git::{GitSource, SourceSpec};
use crate::spec::{Kind, short_sha};
use crate::validate::{self, Options, Report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// For people (`text` still reads).
    #[value(alias = "text")]
    Table,
    Markdown,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Local path of the Git repository.
    #[arg(long, default_value = ".")]
    pub repo: String,
    /// The revision merged into (e.g. `origin/main`).
    #[arg(long)]
    pub base: String,
    /// The revision proposed (default: `HEAD`).
    #[arg(long, default_value = "HEAD")]
    pub head: String,
    /// Folder of definitions inside the repository.
    #[arg(long, default_value = "")]
    pub path: String,
    /// Project of definitions without `metadata.project`.
    #[arg(long, default_value = "default")]
    pub project: String,
    /// How to print: `table` for people, `markdown` for a pull request's comment, or `json`.
    #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = PlanFormat::Table)]
    pub format: PlanFormat,
}

/// Which side of the comparison a revision is: only the base may lack the
/// definitions folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Base,
    Head,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Base => "base",
            Side::Head => "head",
        })
    }
}

/// Why a side of the comparison cannot be read.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Open(crate::source::git::Error),
    #[error("{revision}: {source}")]
    Resolve {
        revision: String,
        source: crate::source::git::Error,
    },
    #[error("the {side} `{revision}`: {source}")]
    Read {
        side: Side,
        revision: String,
        source: crate::source::git::Error,
    },
}

/// Reads and validates `revision`. A `--path` missing at the base is an
/// empty base (a pull request that creates the folder); missing at the
/// head it is an error, so a mistyped `--path` never passes the gate.
fn load(
    source: &GitSource,
    revision: &str,
    side: Side,
    options: &Options,
) -> Result<(String, Report), LoadError> {
    let commit = source
        .resolve(revision)
        .map_err(|source| LoadError::Resolve {
            revision: revision.to_owned(),
            source,
        })?;
    let tree = match source.read_tree(&commit.id, DEFAULT_MAX_FILE_SIZE) {
        Ok(tree) => tree,
        Err(crate::source::git::Error::MissingPath { .. }) if side == Side::Base => {
            Default::default()
        }
        Err(source) => {
            return Err(LoadError::Read {
                side,
                revision: revision.to_owned(),
                source,
            });
        }
    };
    Ok((commit.id.0, validate::validate(tree, options)))
}

pub fn run(args: &Args) -> exit::Result {
    let spec = SourceSpec {
        repo: args.repo.clone(),
        branch: None,
        path: args.path.clone(),
        credentials: Default::default(),
    };
    let options = Options {
        default_project: args.project.clone(),
        ..Options::default()
    };
    let loaded = GitSource::open(&spec, std::path::Path::new(DEFAULT_STATE_DIR))
        .map_err(LoadError::Open)
        .and_then(|source| {
            Ok((
                load(&source, &args.base, Side::Base, &options)?,
                load(&source, &args.head, Side::Head, &options)?,
            ))
        });
    let ((base_sha, base), (head_sha, head)) = loaded.map_err(Error::failed)?;
    let prefix = if args.path.is_empty() {
        String::new()
    } else {
        format!("{}/", args.path.trim_matches('/'))
    };
    if !head.is_valid() {
        let format = match args.format {
            PlanFormat::Json => render::Format::Json,
            _ => render::Format::Table,
        };
        print!("{}", render::report(&head, format, &prefix));
        return Err(Error::invalid(format!(
            "the head {} is invalid; nothing would be reconciled",
            short_sha(&head_sha)
        )));
    }
    let comparison = compare(&base.entities, &head.entities);
    let base_note =
        (!base.is_valid()).then_some("the base is invalid; versions of its entities are unknown");
    match args.format {
        PlanFormat::Json => println!(
            "{:#}",
            json!({
                "base": base_sha,
                "head": head_sha,
                "baseValid": base.is_valid(),
                "added": changes_json(&comparison.added),
                "changed": changes_json(&comparison.changed),
                "removed": changes_json(&comparison.removed),
                "unchanged": comparison.unchanged,
                "schedules": plan_changes_json(&comparison.schedules),
                "triggers": plan_changes_json(&comparison.triggers),
            })
        ),
        PlanFormat::Markdown => {
            print!("{}", markdown(&comparison, &base_sha, &head_sha, base_note))
        }
        PlanFormat::Table => print!("{}", text(&comparison, &base_sha, &head_sha, base_note)),
    }
    Ok(ExitStatus::Success)
}

fn version(d: &Option<crate::spec::Digest>) -> &str {
    d.as_ref().map_or("-", |d| d.short())
}

/// Schedule or trigger changes, as `plan -o json` prints them.
fn plan_changes_json(changes: &[PlanChange]) -> serde_json::Value {
    json!(
        changes
            .iter()
            .map(|p| json!({
                "project": p.launch_plan.project,
                "name": p.launch_plan.name,
                "change": p.change,
                "from": p.from,
                "to": p.to,
            }))
            .collect::<Vec<_>>()
    )
}

fn changes_json(changes: &[EntityChange]) -> serde_json::Value {
    json!(
        changes
            .iter()
            .map(|c| json!({
                "project": c.entity.project,
                "kind": c.entity.kind,
                "name": c.entity.name,
                "from": c.from.as_ref().map(|d| d.short()),
                "to": c.to.as_ref().map(|d| d.short()),
                "file": c.file,
            }))
            .collect::<Vec<_>>()
    )
}

fn text(c: &Comparison, base: &str, head: &str, note: Option<&str>) -> String {
    let mut out = format!("plan {}..{}\n", short_sha(base), short_sha(head));
    if let Some(note) = note {
        out.push_str(&format!("note: {note}\n"));
    }
    for (sign, list) in [("+", &c.added), ("~", &c.changed), ("-", &c.removed)] {
        for e in list {
            out.push_str(&format!(
                "  {sign} {}/{}/{}  {} -> {}\n",
                e.entity.project,
                e.entity.kind,
                e.entity.name,
                version(&e.from),
                version(&e.to)
            ));
        }
    }
    for (what, changes) in [("schedule", &c.schedules), ("trigger", &c.triggers)] {
        for p in changes {
            out.push_str(&format!(
                "  {what} {} {}/{}: {}\n",
                p.change,
                p.launch_plan.project,
                p.launch_plan.name,
                p.to.as_deref().or(p.from.as_deref()).unwrap_or("")
            ));
        }
    }
    out.push_str(&format!(
        "{} added, {} changed, {} removed, {} unchanged\n",
        c.added.len(),
        c.changed.len(),
        c.removed.len(),
        c.unchanged
    ));
    out
}

/// For each added or changed workflow and launch plan, the command that
/// runs it as it is at the head without activating it (`weir run --ref`).
fn previews(c: &Comparison, head: &str) -> String {
    let runnable: Vec<_> = c
        .added
        .iter()
        .chain(&c.changed)
        .filter(|e| matches!(e.entity.kind, Kind::Workflow | Kind::LaunchPlan))
        .collect();
    if runnable.is_empty() {
        return String::new();
    }
    let mut out = String::from("**Preview** (runs the head's versions, activates nothing)\n\n");
    for e in runnable {
        let project = match e.entity.project.as_str() {
            "default" => String::new(),
            other => format!(" --project {other}"),
        };
        out.push_str(&format!(
            "- {} `{}`: `weir run {}{project} --ref {head}`\n",
            e.entity.kind, e.entity.name, e.entity.name
        ));
    }
    out.push('\n');
    out
}

fn markdown(c: &Comparison, base: &str, head: &str, note: Option<&str>) -> String {
    let mut out = format!(
        "### weir plan\n\nMerging `{}` into `{}`: **{} added, {} changed, {} removed**, {} unchanged.\n\n",
        short_sha(head),
        short_sha(base),
        c.added.len(),
        c.changed.len(),
        c.removed.len(),
        c.unchanged
    );
    if let Some(note) = note {
        out.push_str(&format!("> **Note:** {note}.\n\n"));
    }
    if !c.is_empty() {
        out.push_str("| | kind | project | name | version | file |\n|---|---|---|---|---|---|\n");
        for (label, list) in [
            ("added", &c.added),
            ("changed", &c.changed),
            ("removed", &c.removed),
        ] {
            for e in list {
                out.push_str(&format!(
                    "| {label} | {} | {} | `{}` | `{}` → `{}` | `{}` |\n",
                    e.entity.kind,
                    e.entity.project,
                    e.entity.name,
                    version(&e.from),
                    version(&e.to),
                    e.file
                ));
            }
        }
        out.push('\n');
    }
    out.push_str(&previews(c, head));
    for (heading, changes) in [
        ("**Schedules**\n\n", &c.schedules),
        ("\n**Triggers**\n\n", &c.triggers),
    ] {
        if changes.is_empty() {
            continue;
        }
        out.push_str(heading);
        for p in changes {
            let detail = match (&p.from, &p.to) {
                (Some(a), Some(b)) => format!("{a} → {b}"),
                (None, Some(b)) => b.clone(),
                (Some(a), None) => a.clone(),
                (None, None) => String::new(),
            };
            out.push_str(&format!(
                "- {} `{}/{}`: {detail}\n",
                p.change, p.launch_plan.project, p.launch_plan.name
            ));
        }
    }
    out
}
