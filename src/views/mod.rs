//! The documents weir shows of its store, and the queries that select
//! them: what `weir status`, `versions`, `launchplans`, `executions`,
//! `lineage`, `audit`, `diff`, `run` and `backfill` print with `-o json`, what `weir logs`
//! prints, and what the daemon's JSON API (`/api/v1`, in [`crate::http`])
//! returns.
//!
//! Why a module of its own: those commands read either the store or, with
//! `--server`, a running daemon, and must print the same either way. So
//! both paths go through these types: the store side builds them here, the
//! API writes them as JSON, the API client reads them back, and the CLI
//! renders every format (JSON and the human tables) from them.
//!
//! What it guarantees: a view holds exactly what its JSON shows (instants
//! already cut to the milliseconds printed, every one in the same format,
//! [`instant`]; `None`, never `Some(null)`), so a
//! view read back from its JSON equals the view written, and the two paths
//! cannot print different things (each file's tests check the round trip).
//! Key names and value formats are an interface scripts depend on.
//!
//! What it must not do: know about HTTP or terminals. It reads the store
//! (lineage through [`crate::lineage`]) and nothing else, except that a
//! diff lists commits from the source's Git history ([`crate::source::history`])
//! and logs are read from the attempts' files in the state directory.

mod approval;
mod audit;
mod backfill;
mod cancel;
mod diff;
mod execution;
mod graph;
mod launch_plan;
mod lineage;
mod logs;
mod source;
mod status;
mod version;

pub use approval::{ApprovalBody, ApprovalError, DecisionView, Verdict, decide};
pub use audit::{ActorView, AuditQuery, AuditView, audit};
pub use backfill::{BackfillBody, BackfillEntryView, BackfillView};
pub use cancel::{CancelError, CancelView, request_cancel};
pub use diff::{
    Change, CommitView, CommitsView, DiffError, DiffView, NodeDiff, NodeSide, SideView,
    ValueChange, diff, version_diff,
};
pub use execution::{
    ExecutionQuery, ExecutionView, MAX_NODES_PER_PAGE, NODES_PER_PAGE, NodePage, NodeView,
    PageError, RunBody, execution, execution_page, executions,
};
pub use graph::{GraphNode, GraphView, execution_graph, workflow_graph};
pub use launch_plan::{DEFAULT_NEXT as DEFAULT_NEXT_INSTANTS, MAX_NEXT as MAX_NEXT_INSTANTS};
pub use launch_plan::{
    InstantView, LastRunView, LaunchPlanError, LaunchPlanQuery, LaunchPlanView, PauseBody,
    PauseError, PauseView, PausedView, PlanStatus, ScheduleView, launch_plans, set_paused,
};
pub use lineage::{EdgeView, LineageQuery, LineageView, lineage};
pub use logs::{Chunk, FOLLOW_EVERY, LogQuery, LogTail, LogsError};
pub use source::{SourceErrorView, SourceView, sources};
pub use status::{EngineLeaseView, PausedPlanView, StatusView, status};
pub use version::{VersionQuery, VersionView, versions};

/// A query the store cannot answer as asked (an unknown status or kind,
/// contradictory flags): a 400 over HTTP, exit 1 in the CLI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// Who asks for a change (a pause, an approval) and why, as the audit log
/// records them: a name of 1 to 200 printable characters, a comment of at
/// most `max_comment` printable characters (new lines allowed).
fn check_actor(by: &str, comment: Option<&str>, max_comment: usize) -> Result<(), String> {
    if by.trim().is_empty() || by.len() > 200 || by.chars().any(char::is_control) {
        return Err("`by` must be a name of 1 to 200 printable characters".into());
    }
    if let Some(comment) = comment
        && (comment.len() > max_comment || comment.chars().any(|c| c.is_control() && c != '\n'))
    {
        return Err(format!(
            "`comment` must be at most {max_comment} printable characters"
        ));
    }
    Ok(())
}

/// The JSON of a view (or a list of views), as printed and served.
pub fn to_json<T: serde::Serialize + ?Sized>(view: &T) -> serde_json::Value {
    serde_json::to_value(view)
        .expect("views have string keys and no fallible Serialize impls, so they always serialize")
}

/// Instants as every document shows them: RFC 3339 in UTC with a `Z` and
/// milliseconds, always three digits (`2026-12-04T05:12:03.120Z`; chrono's
/// own format drops a zero fraction, which would make the width of a field
/// vary). The one serde helper of every time field of every view:
/// `#[serde(serialize_with = "instant::millis")]` (or `millis_opt`), and
/// the value cut with [`to_millis`] when the view is built, so that it
/// equals its round trip. Reading back is chrono's own RFC 3339 parser.
pub(crate) mod instant {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    /// The text of `t` as documents show it.
    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn millis_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => millis(t, s),
            None => s.serialize_none(),
        }
    }
}

/// A run time as people read it, at its own scale: `850ms`, `12.4s`,
/// `3m05s`, `2h01m` (what `weir executions ID` and the console show).
pub fn took(d: chrono::TimeDelta) -> String {
    let ms = d.num_milliseconds().max(0);
    match ms {
        ..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// Cuts an instant to what the JSON shows (milliseconds), so a view
/// equals its round trip.
fn to_millis(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::SubsecRound::trunc_subsecs(t, 3)
}

/// A JSON `null` inside an `Option` reads back as `None`: store it so.
fn present(value: &Option<serde_json::Value>) -> Option<serde_json::Value> {
    value.clone().filter(|v| !v.is_null())
}

/// Test helper: the view read back from its JSON text.
#[cfg(test)]
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(view: &T) -> T {
    let text = serde_json::to_string(view).expect("serialize");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("read back ({e}): {text}"))
}

/// Test helper: an instant with nanoseconds, which no document shows.
#[cfg(test)]
fn precise_instant() -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone as _;
    chrono::Utc
        .with_ymd_and_hms(2026, 3, 29, 0, 30, 5)
        .single()
        .expect("a valid instant")
        + chrono::Duration::nanoseconds(123_456_789)
}

#[cfg(test)]
mod tests {
    use super::took;

    #[test]
    fn a_run_time_reads_at_its_own_scale() {
        let ms = chrono::TimeDelta::milliseconds;
        assert_eq!(took(ms(850)), "850ms");
        assert_eq!(took(ms(12_400)), "12.4s");
        assert_eq!(took(ms(185_000)), "3m05s");
        assert_eq!(took(ms(7_260_000)), "2h01m");
        assert_eq!(took(ms(-5)), "0ms", "a clock that stepped back");
    }
}
