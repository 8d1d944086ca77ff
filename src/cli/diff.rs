//! `weir diff EXECUTION [BASE]`: what changed between two executions of
//! one workflow — commits, task versions (with the definitions' diff),
//! inputs, outputs, cache hits. Without BASE, the last succeeded execution
//! of the same launch plan before EXECUTION. The document is
//! [`crate::views::DiffView`]; this file renders it for people.

use std::fmt::Write as _;

use super::Output;
use super::exit::{self, ExitStatus};
use super::origin::ServerArgs;
use super::render::utc;
use super::store_args::StoreArgs;
use crate::spec::ExecutionId;
use crate::views::{self, Change, DiffView, NodeDiff, NodeSide, ValueChange};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The execution to explain.
    pub execution: ExecutionId,
    /// The execution to compare it with (default: the last succeeded
    /// execution of the same launch plan before it).
    pub base: Option<ExecutionId>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Exit 0 with the diff; 3 when there is nothing to compare with (an
/// unknown execution, no earlier succeeded run); 2 for two workflows, an
/// execution not started from a launch plan without BASE, or a store that
/// fails.
pub fn run(args: &Args) -> exit::Result {
    let diff = args
        .server
        .origin(&args.store)
        .and_then(|o| o.diff(&args.execution, args.base.as_ref()))?;
    match args.output {
        Output::Json => println!("{:#}", views::to_json(&diff)),
        Output::Table => print!("{}", text(&diff)),
    }
    Ok(ExitStatus::Success)
}

/// The diff for people: the two runs, the commits with their subjects,
/// the workflow's inputs and outputs that differ, then one line per node
/// (`=` same task version, `~` changed, `+` added, `-` removed) with the
/// definition's diff and the node's differing values indented under it.
pub fn text(d: &DiffView) -> String {
    let mut out = format!(
        "diff of execution {} against {} (workflow {}/{})\n",
        d.to.id, d.from.id, d.project, d.workflow
    );
    let mut pair = |what: &str, from: &str, to: &str| {
        let _ = if from == to {
            writeln!(out, "  {what} {to}")
        } else {
            writeln!(out, "  {what} {from} → {to}")
        };
    };
    pair("status", d.from.status.as_str(), d.to.status.as_str());
    pair(
        "workflow version",
        &d.from.workflow_version,
        &d.to.workflow_version,
    );
    pair("commit", d.from.commit.short(), d.to.commit.short());
    if let Some(error) = &d.commits.error {
        let _ = writeln!(out, "\ncommits: cannot be listed: {error}");
    }
    for (title, list) in [
        ("commits that changed the definitions", &d.commits.added),
        ("commits in the base only", &d.commits.removed),
    ] {
        if list.is_empty() {
            continue;
        }
        let more = if d.commits.truncated {
            ", the newest"
        } else {
            ""
        };
        let _ = writeln!(out, "\n{title} ({}{more}):", list.len());
        for c in list {
            let _ = writeln!(
                out,
                "  {} {} ({}, {})",
                c.id.short(),
                c.subject,
                c.author,
                utc(&c.time)
            );
        }
    }
    values(&mut out, "\ninputs:", &d.inputs, "  ");
    values(&mut out, "\noutputs:", &d.outputs, "  ");
    if let Some(definition) = &d.workflow_definition {
        let _ = writeln!(out, "\nworkflow definition:");
        indented(&mut out, definition, "    ");
    }
    if !d.nodes.is_empty() {
        out.push_str("\nnodes:\n");
    }
    let width = d
        .nodes
        .iter()
        .map(|n| n.id.chars().count())
        .max()
        .unwrap_or(0);
    for n in &d.nodes {
        node(&mut out, n, width);
    }
    out
}

fn node(out: &mut String, n: &NodeDiff, width: usize) {
    let mark = match n.change {
        Change::Same => '=',
        Change::Changed => '~',
        Change::Added => '+',
        Change::Removed => '-',
    };
    let version = |side: &NodeSide| format!("{}@{}", side.task, side.task_version);
    let task = match (&n.from, &n.to) {
        (Some(old), Some(new)) if n.change == Change::Changed => {
            format!("{} → {}", version(old), version(new))
        }
        (_, Some(side)) | (Some(side), None) => version(side),
        (None, None) => String::new(),
    };
    let _ = write!(out, "  {mark} {:width$}  {task}", n.id);
    if let (Some(old), Some(new)) = (&n.from, &n.to) {
        if old.status != new.status {
            let _ = write!(out, "  {} → {}", old.status, new.status);
        }
    }
    if let Some(side) = n.to.as_ref().filter(|side| side.cached) {
        match &side.cached_from {
            Some(from) => {
                let _ = write!(out, "  cached (from {from})");
            }
            None => out.push_str("  cached"),
        }
    }
    out.push('\n');
    let indent = "      ";
    if let Some(definition) = &n.definition {
        indented(out, definition, indent);
    } else if n.change == Change::Changed {
        let _ = writeln!(
            out,
            "{indent}(the definitions read the same: a task's version also covers the files it runs, such as a notebook)"
        );
    }
    values(
        out,
        &format!("{indent}inputs:"),
        &n.inputs,
        &format!("{indent}  "),
    );
    values(
        out,
        &format!("{indent}outputs:"),
        &n.outputs,
        &format!("{indent}  "),
    );
}

/// `title`, then `name: old → new` per change; nothing when none differ.
fn values(out: &mut String, title: &str, changes: &[ValueChange], indent: &str) {
    if changes.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}");
    let show =
        |v: &Option<serde_json::Value>| v.as_ref().map_or("(none)".to_owned(), |v| v.to_string());
    for c in changes {
        let _ = writeln!(
            out,
            "{indent}{}: {} → {}",
            c.name,
            show(&c.from),
            show(&c.to)
        );
    }
}

fn indented(out: &mut String, text: &str, indent: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{indent}{line}");
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};
    use serde_json::json;

    use super::*;
    use crate::spec::CommitId;
    use crate::store::execution::{NodeStatus, Status};
    use crate::views::{CommitView, CommitsView, SideView};

    fn side(id: &str, status: Status, version: &str, commit: char) -> SideView {
        SideView {
            id: id.into(),
            status,
            workflow_version: version.into(),
            launch_plan: Some("nightly".into()),
            launch_plan_version: None,
            commit: CommitId(commit.to_string().repeat(40)),
            created_at: Utc
                .with_ymd_and_hms(2026, 3, 29, 2, 0, 0)
                .single()
                .expect("instant"),
        }
    }

    fn ran(task: &str, version: char, status: NodeStatus, cached_from: Option<&str>) -> NodeSide {
        NodeSide {
            task: task.into(),
            task_version: version.to_string().repeat(12),
            status,
            cached: cached_from.is_some(),
            cached_from: cached_from.map(ExecutionId::from),
        }
    }

    fn change(
        name: &str,
        from: Option<serde_json::Value>,
        to: Option<serde_json::Value>,
    ) -> ValueChange {
        ValueChange {
            name: name.into(),
            from,
            to,
        }
    }

    /// Every kind of line: commits both ways, values, and a node of each change.
    #[test]
    fn the_human_diff_reads_top_down() {
        let diff = DiffView {
            project: "lab".into(),
            workflow: "pipeline".into(),
            from: side("nightly-1", Status::Succeeded, "aaaaaaaaaaaa", 'a'),
            to: side("nightly-2", Status::Failed, "bbbbbbbbbbbb", 'b'),
            commits: CommitsView {
                added: vec![CommitView {
                    id: CommitId("b".repeat(40)),
                    subject: "Train a deeper model".into(),
                    author: "Ada Lovelace".into(),
                    time: Utc.with_ymd_and_hms(2026, 3, 28, 17, 4, 0).single().expect("instant"),
                }],
                ..CommitsView::default()
            },
            inputs: vec![change("day", Some(json!("2026-03-28")), Some(json!("2026-03-29")))],
            outputs: vec![change("model", Some(json!("sha256:0123")), None)],
            workflow_definition: None,
            nodes: vec![
                NodeDiff {
                    id: "prepare".into(),
                    change: Change::Same,
                    from: Some(ran("prepare", 'c', NodeStatus::Succeeded, None)),
                    to: Some(ran("prepare", 'c', NodeStatus::Succeeded, Some("nightly-1"))),
                    definition: None,
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                },
                NodeDiff {
                    id: "train".into(),
                    change: Change::Changed,
                    from: Some(ran("train", 'd', NodeStatus::Succeeded, None)),
                    to: Some(ran("train", 'e', NodeStatus::Failed, None)),
                    definition: Some(
                        "--- train@dddddddddddd\n+++ train@eeeeeeeeeeee\n@@ -1 +1 @@\n-depth: 2\n+depth: 3\n".into(),
                    ),
                    inputs: Vec::new(),
                    outputs: vec![change("depth", Some(json!(2)), None)],
                },
                NodeDiff {
                    id: "report".into(),
                    change: Change::Removed,
                    from: Some(ran("report", 'f', NodeStatus::Succeeded, None)),
                    to: None,
                    definition: None,
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                },
            ],
        };
        insta::assert_snapshot!(text(&diff));
    }
}
