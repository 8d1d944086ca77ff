//! One scheduler tick for one launch plan version: which due instants start
//! an execution, which are skipped and why, and which running executions a
//! `Replace` cancels. Pure: `now`, the watermark and what is running are
//! given; the caller persists the decisions and the new watermark.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Rule, execution_id};
use crate::spec::{CatchUp, Concurrency, Digest, EntityRef, ExecutionId};

/// How late an instant may be and still count as on time rather than
/// missed (the scheduler ticks far more often than this).
pub const ON_TIME: chrono::Duration = chrono::Duration::seconds(60);

/// A scheduled instant of a launch plan version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueTrigger {
    pub launch_plan: EntityRef,
    pub version: Digest,
    pub instant: DateTime<Utc>,
    pub execution: ExecutionId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SkipReason {
    /// `catchUp: none` (or an older instant under `latest`).
    CatchUpPolicy,
    /// More missed instants than `maxCatchUp`.
    CatchUpLimit,
    /// Older than `startingDeadline`.
    DeadlineMissed,
    /// `concurrency: Forbid` and an execution is running.
    ConcurrencyForbid,
    /// `concurrency: Replace` and a newer instant of the same tick starts.
    ReplacedByNewer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Decision {
    Start(DueTrigger),
    Skip(DueTrigger, SkipReason),
}

/// What one tick decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tick {
    pub decisions: Vec<Decision>,
    /// Running executions to cancel first (`concurrency: Replace`).
    pub cancel: Vec<ExecutionId>,
    /// Instants up to here are decided; pass it to the next tick.
    pub watermark: Option<DateTime<Utc>>,
}

/// Decides one tick.
///
/// `watermark`: the instant up to which earlier ticks decided (`None` for a
/// version never scheduled: it starts at `activated_at`, so activating a
/// plan never runs its past). `running`: this launch plan's executions that
/// have not finished.
pub fn tick(
    launch_plan: &EntityRef,
    version: &Digest,
    rule: &Rule,
    watermark: Option<DateTime<Utc>>,
    activated_at: DateTime<Utc>,
    now: DateTime<Utc>,
    running: &[ExecutionId],
) -> Tick {
    let after = watermark.unwrap_or(activated_at);
    if now <= after {
        return Tick {
            watermark: Some(after),
            ..Tick::default()
        };
    }
    // One more than kept, to know whether the limit cut anything.
    let keep = rule.max_catch_up.max(1) as usize;
    let due = rule.instants_between(after, now, keep + 1);
    let trigger = |instant| DueTrigger {
        launch_plan: launch_plan.clone(),
        version: version.clone(),
        instant,
        execution: execution_id(launch_plan, version, instant),
    };
    let mut out = Tick {
        watermark: Some(now),
        ..Tick::default()
    };
    let mut wanted = Vec::new();
    let newest = due.len().saturating_sub(1);
    for (i, &instant) in due.iter().enumerate() {
        let late = now - instant;
        let on_time = late <= ON_TIME;
        if rule.starting_deadline.is_some_and(|d| late > d) {
            out.decisions
                .push(Decision::Skip(trigger(instant), SkipReason::DeadlineMissed));
            continue;
        }
        let keep_it = match rule.catch_up {
            _ if on_time => true,
            CatchUp::None => false,
            CatchUp::Latest => i == newest,
            CatchUp::All => i + keep > newest,
        };
        if keep_it {
            wanted.push(instant);
        } else {
            let reason = if rule.catch_up == CatchUp::All {
                SkipReason::CatchUpLimit
            } else {
                SkipReason::CatchUpPolicy
            };
            out.decisions.push(Decision::Skip(trigger(instant), reason));
        }
    }
    // A running execution with a wanted instant's id is that instant
    // already started (its creation was written though the writer did not
    // learn it, and the instant is decided again): it is found existing,
    // neither something to make way for nor a reason to skip.
    let ids: Vec<ExecutionId> = wanted.iter().map(|&i| trigger(i).execution).collect();
    let started = ids.iter().position(|id| running.contains(id));
    let mut busy = !running.is_empty();
    let last = wanted.len().saturating_sub(1);
    for (i, instant) in wanted.into_iter().enumerate() {
        match rule.concurrency {
            Concurrency::Allow => out.decisions.push(Decision::Start(trigger(instant))),
            // Under `Forbid` the one already started is the one that runs.
            Concurrency::Forbid if started == Some(i) => {
                out.decisions.push(Decision::Start(trigger(instant)));
            }
            Concurrency::Forbid if busy => {
                out.decisions.push(Decision::Skip(
                    trigger(instant),
                    SkipReason::ConcurrencyForbid,
                ));
            }
            Concurrency::Forbid => {
                busy = true;
                out.decisions.push(Decision::Start(trigger(instant)));
            }
            // Only the newest runs; whatever else runs now is cancelled for it.
            Concurrency::Replace if i < last => {
                out.decisions.push(Decision::Skip(
                    trigger(instant),
                    SkipReason::ReplacedByNewer,
                ));
            }
            Concurrency::Replace => {
                out.cancel = running
                    .iter()
                    .filter(|id| **id != ids[i])
                    .cloned()
                    .collect();
                out.decisions.push(Decision::Start(trigger(instant)));
            }
        }
    }
    out
}

/// What the scheduler keeps per launch plan version between ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanState {
    /// Instants up to here are decided.
    pub watermark: Option<DateTime<Utc>>,
    /// The first instant after the watermark, when known: a tick before it
    /// has nothing to do and costs no cron search.
    pub next_due: Option<DateTime<Utc>>,
}

impl PlanState {
    /// Where a plan stands when its instants from `first` on were decided
    /// but their executions not written (the store failed): the next tick
    /// decides them again, by the plan's rules at that tick's `now`, and
    /// nothing before `first` (what was decided and written before it
    /// stands, and a plan first seen in the failed tick does not go back
    /// to its activation).
    pub fn undecided_from(first: DateTime<Utc>) -> PlanState {
        PlanState {
            // Instants are after the watermark: the one just before
            // `first` makes `first` the next.
            watermark: Some(first - chrono::Duration::nanoseconds(1)),
            next_due: Some(first),
        }
    }
}

/// [`tick`] with the state kept between ticks: `None` when nothing is due
/// (the common case, answered without searching the schedule).
pub fn advance(
    state: &mut PlanState,
    launch_plan: &EntityRef,
    version: &Digest,
    rule: &Rule,
    activated_at: DateTime<Utc>,
    now: DateTime<Utc>,
    running: &[ExecutionId],
) -> Option<Tick> {
    if state.next_due.is_some_and(|due| due > now) {
        state.watermark = Some(now);
        return None;
    }
    let t = tick(
        launch_plan,
        version,
        rule,
        state.watermark,
        activated_at,
        now,
        running,
    );
    state.watermark = t.watermark;
    state.next_due = rule.next_after(t.watermark.unwrap_or(now));
    (!t.decisions.is_empty() || !t.cancel.is_empty()).then_some(t)
}
