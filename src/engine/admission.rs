//! Which queued executions the engine may start now: the `--max-parallel`
//! bound of a backfill (DESIGN.md section 6, "Backfill").
//!
//! A backfill creates all its executions at once, `queued`, each carrying
//! its [`BackfillGroup`] in its options. The engine is level-triggered, so
//! the bound is too: before each pass it looks at the unfinished executions
//! (as the engine holds them, `agenda.rs`) and holds back, still `queued`, every execution of a group beyond the
//! group's bound — at most `maxParallel` of a group are `running` at a
//! time, and the oldest instants start first. Like Airflow's
//! `max_active_runs`, the bound survives the process that asked for it (it
//! lives in the store), and whichever engine drives the store honours it.
//!
//! Pure: decides from the executions given; never writes.

use std::collections::{BTreeMap, HashSet};

use crate::spec::ExecutionId;
use crate::store::execution::{BackfillGroup, Execution, Status};

/// The ids of the `unfinished` executions that must stay queued for now.
///
/// Per bounded group: the running ones count against the bound; queued
/// ones fill what is left, oldest instant first. A queued execution with a
/// cancel request is never held (the engine must see it to cancel it).
pub fn held<'a>(unfinished: impl IntoIterator<Item = &'a Execution>) -> HashSet<ExecutionId> {
    struct Group<'a> {
        bound: u32,
        running: u32,
        queued: Vec<&'a Execution>,
    }
    let mut groups: BTreeMap<String, Group<'_>> = BTreeMap::new();
    for execution in unfinished {
        let Some(BackfillGroup {
            id,
            max_parallel: Some(bound),
        }) = execution.options.backfill.clone()
        else {
            continue;
        };
        let group = groups.entry(id).or_insert(Group {
            bound,
            running: 0,
            queued: Vec::new(),
        });
        match execution.status {
            Status::Running => group.running += 1,
            Status::Queued if !execution.cancel_requested => group.queued.push(execution),
            _ => {}
        }
    }
    let mut held = HashSet::new();
    for mut group in groups.into_values() {
        group
            .queued
            .sort_by(|a, b| (a.scheduled_at, &a.id).cmp(&(b.scheduled_at, &b.id)));
        let free = group.bound.saturating_sub(group.running) as usize;
        held.extend(group.queued.iter().skip(free).map(|e| e.id.clone()));
    }
    held
}

#[cfg(test)]
pub(super) mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::spec::{CommitId, Digest, SourceKey, Trigger};
    use crate::store::execution::RunOptions;

    /// 01:30 on day `d` of March 2026.
    pub(in crate::engine) fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, 1, 30, 0)
            .single()
            .expect("a valid time")
    }

    /// A backfilled execution `id` of instant `day(d)`, in `group` (its
    /// name and bound) if any.
    pub(in crate::engine) fn execution(
        id: &str,
        status: Status,
        group: Option<(&str, Option<u32>)>,
        d: u32,
    ) -> Execution {
        let options = RunOptions {
            backfill: group.map(|(group, max_parallel)| BackfillGroup {
                id: group.into(),
                max_parallel,
            }),
            no_cache: false,
            event: None,
        };
        Execution {
            id: id.into(),
            project: "p".into(),
            workflow: "w".into(),
            workflow_version: Digest::from_hex("ab".repeat(32)),
            launch_plan: Some("lp".into()),
            launch_plan_version: None,
            source: SourceKey("s".into()),
            commit: CommitId("c".into()),
            trigger: Trigger::Backfill,
            scheduled_at: Some(day(d)),
            inputs: json!({}),
            plan: json!({}).into(),
            options,
            status,
            outputs: None,
            error: None,
            created_at: day(d),
            started_at: None,
            finished_at: None,
            cancel_requested: false,
        }
    }

    fn sorted(held: HashSet<ExecutionId>) -> Vec<ExecutionId> {
        let mut all: Vec<ExecutionId> = held.into_iter().collect();
        all.sort();
        all
    }

    #[test]
    fn a_bounded_group_starts_its_oldest_instants_up_to_the_bound() {
        let unfinished = [
            execution("d", Status::Queued, Some(("g", Some(2))), 28),
            execution("a", Status::Queued, Some(("g", Some(2))), 25),
            execution("c", Status::Queued, Some(("g", Some(2))), 27),
            execution("b", Status::Queued, Some(("g", Some(2))), 26),
        ];
        assert_eq!(sorted(held(&unfinished)), ["c", "d"]);
    }

    #[test]
    fn running_executions_count_against_the_bound() {
        let unfinished = [
            execution("a", Status::Running, Some(("g", Some(2))), 25),
            execution("b", Status::Queued, Some(("g", Some(2))), 26),
            execution("c", Status::Queued, Some(("g", Some(2))), 27),
        ];
        assert_eq!(sorted(held(&unfinished)), ["c"]);
        let full = [
            execution("a", Status::Running, Some(("g", Some(1))), 25),
            execution("b", Status::Running, Some(("g", Some(1))), 26),
            execution("c", Status::Queued, Some(("g", Some(1))), 27),
        ];
        assert_eq!(sorted(held(&full)), ["c"], "over the bound: nothing starts");
    }

    #[test]
    fn groups_are_bounded_apart_and_others_never_wait() {
        let mut cancelled = execution("x", Status::Queued, Some(("g", Some(1))), 24);
        cancelled.cancel_requested = true;
        let unfinished = [
            execution("a", Status::Queued, Some(("g", Some(1))), 25),
            execution("b", Status::Queued, Some(("g", Some(1))), 26),
            execution("h1", Status::Queued, Some(("h", Some(1))), 25),
            execution("h2", Status::Queued, Some(("h", Some(1))), 26),
            execution("free1", Status::Queued, Some(("u", None)), 25),
            execution("free2", Status::Queued, Some(("u", None)), 26),
            execution("manual", Status::Queued, None, 25),
            cancelled,
        ];
        assert_eq!(sorted(held(&unfinished)), ["b", "h2"]);
    }
}
