//! What the engine drives next, so that a pass costs what changed rather
//! than every unfinished execution (DESIGN.md section 6, "Wake-ups").
//!
//! The engine keeps here the unfinished executions it drives, as it last
//! wrote or read them, and which of them need a step: those created or
//! asked to cancel in this process (told by the store, read again before
//! they are driven), those an attempt of which ended, those whose next
//! retry is due, and the queued ones a backfill's bound now admits
//! ([`super::admission`], decided over the executions held here). Work it
//! cannot place (executions the scheduler created, a summary of the store
//! that differs from the one held here) asks for a rescan: the unfinished executions are
//! listed again, one query, and the new ones driven.
//!
//! Pure bookkeeping: reads and writes nothing, never looks at a clock (the
//! instants are given).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::admission;
use crate::spec::ExecutionId;
use crate::store::execution::{Execution, Status, UnfinishedSummary};

#[derive(Debug, Default)]
pub(super) struct Agenda {
    /// Only these executions are driven (a command driving its own);
    /// `None`: every one.
    scope: Option<HashSet<ExecutionId>>,
    /// The unfinished executions, by id, as last driven or read.
    unfinished: HashMap<ExecutionId, Execution>,
    /// To be read again from the store before they are driven: created or
    /// asked to cancel through this process's store.
    stale: HashSet<ExecutionId>,
    /// To be driven at the next pass: an attempt of theirs ended.
    woken: HashSet<ExecutionId>,
    /// When each execution next has something due (a retry's backoff ends).
    due: HashMap<ExecutionId, DateTime<Utc>>,
    /// The next pass lists the unfinished executions again first.
    rescan: bool,
    /// A full pass filled this agenda; until then a step is a full pass.
    loaded: bool,
}

impl Agenda {
    /// An agenda of only the executions `ids`.
    pub(super) fn scoped(ids: impl IntoIterator<Item = ExecutionId>) -> Agenda {
        Agenda {
            scope: Some(ids.into_iter().collect()),
            ..Agenda::default()
        }
    }

    fn in_scope(&self, id: &ExecutionId) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(id))
    }

    pub(super) fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Forgets everything: the next step is a full pass (a pass failed, or
    /// this engine follows or leads again, and another engine may have
    /// driven meanwhile).
    pub(super) fn forget(&mut self) {
        let scope = self.scope.take();
        *self = Agenda {
            scope,
            ..Agenda::default()
        };
    }

    /// `id` was created or asked to cancel in this process. Ignored until
    /// a full pass loaded the agenda (that pass reads everything; a follower
    /// so keeps no marks): one created while the full pass lists is seen by
    /// the next cheap check instead.
    pub(super) fn mark_stale(&mut self, id: &ExecutionId) {
        if self.loaded && self.in_scope(id) {
            self.stale.insert(id.to_owned());
        }
    }

    /// An attempt of `id` ended.
    pub(super) fn wake(&mut self, id: &ExecutionId) {
        self.woken.insert(id.to_owned());
    }

    pub(super) fn ask_rescan(&mut self) {
        self.rescan = true;
    }

    /// Takes the ids to read again, and whether to rescan.
    pub(super) fn take_news(&mut self) -> (Vec<ExecutionId>, bool) {
        let stale = self.stale.drain().collect();
        (stale, std::mem::take(&mut self.rescan))
    }

    /// A full pass's listing of the unfinished executions: they replace
    /// what is held, and every one is driven.
    pub(super) fn load(&mut self, unfinished: Vec<Execution>) -> Vec<ExecutionId> {
        self.unfinished = unfinished
            .into_iter()
            .filter(|e| self.in_scope(&e.id))
            .map(|e| (e.id.clone(), e))
            .collect();
        self.due.retain(|id, _| self.unfinished.contains_key(id));
        self.loaded = true;
        self.rescan = false;
        self.unfinished.keys().cloned().collect()
    }

    /// A rescan's listing: executions not held yet, or whose cancel
    /// request is new, are driven; those no longer listed are forgotten
    /// (finished by another process).
    pub(super) fn merge(&mut self, unfinished: Vec<Execution>) {
        let listed: HashSet<ExecutionId> = unfinished.iter().map(|e| e.id.clone()).collect();
        self.unfinished.retain(|id, _| listed.contains(id));
        self.due.retain(|id, _| listed.contains(id));
        for execution in unfinished {
            if !self.in_scope(&execution.id) {
                continue;
            }
            let changed = self
                .unfinished
                .get(&execution.id)
                .is_none_or(|held| held.cancel_requested != execution.cancel_requested);
            if changed {
                self.woken.insert(execution.id.clone());
                self.unfinished.insert(execution.id.clone(), execution);
            }
        }
    }

    /// An execution as read again from the store (`None`: gone).
    pub(super) fn refresh(&mut self, id: &ExecutionId, execution: Option<Execution>) {
        match execution.filter(|e| !e.status.is_terminal()) {
            Some(execution) => {
                self.woken.insert(id.to_owned());
                self.unfinished.insert(id.to_owned(), execution);
            }
            None => self.drop_execution(id),
        }
    }

    /// An execution as a step left it, with its next due instant.
    pub(super) fn record(&mut self, execution: Execution, next_due: Option<DateTime<Utc>>) {
        let id = execution.id.clone();
        if execution.status.is_terminal() {
            self.drop_execution(&id);
            return;
        }
        match next_due {
            Some(at) => self.due.insert(id.clone(), at),
            None => self.due.remove(&id),
        };
        self.unfinished.insert(id, execution);
    }

    fn drop_execution(&mut self, id: &ExecutionId) {
        self.unfinished.remove(id);
        self.due.remove(id);
        self.woken.remove(id);
    }

    /// The executions to drive now, oldest first: those woken, those with
    /// something due at `now`, and the queued ones no backfill bound holds
    /// back. Those a bound holds stay queued, woken or not.
    pub(super) fn take_due(&mut self, now: DateTime<Utc>) -> Vec<Execution> {
        let held = admission::held(self.unfinished.values());
        let mut ids: HashSet<ExecutionId> = self.woken.drain().collect();
        ids.extend(
            self.due
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(id, _)| id.clone()),
        );
        ids.extend(
            self.unfinished
                .values()
                .filter(|e| e.status == Status::Queued)
                .map(|e| e.id.clone()),
        );
        let mut drive: Vec<Execution> = ids
            .into_iter()
            .filter(|id| !held.contains(id))
            .filter_map(|id| {
                self.due.remove(&id);
                self.unfinished.get(&id).cloned()
            })
            .collect();
        drive.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        drive
    }

    /// The earliest instant something is due.
    pub(super) fn next_due(&self) -> Option<DateTime<Utc>> {
        self.due.values().min().copied()
    }

    /// Whether the executions in scope have all finished (of those held).
    pub(super) fn is_empty(&self) -> bool {
        self.unfinished.is_empty() && self.stale.is_empty()
    }

    /// The summary of what is held, to compare with the store's.
    pub(super) fn summary(&self) -> UnfinishedSummary {
        UnfinishedSummary::of(self.unfinished.values())
    }

    /// Whether the agenda covers every execution (not a command's few).
    pub(super) fn is_scoped(&self) -> bool {
        self.scope.is_some()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 1, minute, 0)
            .single()
            .expect("a valid time")
    }

    /// A backfilled execution `id` of instant `n` (in order), in group `g`
    /// bounded by `bound` if any.
    fn execution(id: &str, status: Status, bound: Option<u32>, n: u32) -> Execution {
        admission::tests::execution(id, status, bound.map(|b| ("g", Some(b))), n)
    }

    fn ids(executions: &[Execution]) -> Vec<&str> {
        executions.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn only_what_changed_is_driven() {
        let mut agenda = Agenda::default();
        agenda.load(vec![
            execution("a", Status::Running, None, 1),
            execution("b", Status::Running, None, 2),
            execution("c", Status::Running, None, 3),
        ]);
        assert!(agenda.is_loaded());
        assert!(agenda.take_due(at(10)).is_empty(), "nothing woke");
        agenda.wake(&"b".into());
        agenda.record(execution("c", Status::Running, None, 3), Some(at(20)));
        assert_eq!(ids(&agenda.take_due(at(10))), ["b"]);
        assert_eq!(agenda.next_due(), Some(at(20)));
        assert_eq!(ids(&agenda.take_due(at(20))), ["c"], "its retry is due");
        assert_eq!(agenda.next_due(), None);
    }

    #[test]
    fn a_finished_execution_frees_its_backfill_slot() {
        let mut agenda = Agenda::default();
        agenda.load(vec![
            execution("a", Status::Running, Some(1), 1),
            execution("b", Status::Queued, Some(1), 2),
        ]);
        assert!(agenda.take_due(at(10)).is_empty(), "b is held");
        let mut done = execution("a", Status::Succeeded, Some(1), 1);
        done.finished_at = Some(at(10));
        agenda.record(done, None);
        assert_eq!(ids(&agenda.take_due(at(10))), ["b"], "a's slot is free");
    }

    #[test]
    fn a_rescan_drives_the_new_and_the_newly_cancelled() {
        let mut agenda = Agenda::default();
        agenda.load(vec![
            execution("a", Status::Running, None, 1),
            execution("b", Status::Running, None, 2),
        ]);
        let mut cancelled = execution("b", Status::Running, None, 2);
        cancelled.cancel_requested = true;
        agenda.merge(vec![cancelled, execution("c", Status::Queued, None, 3)]);
        assert_eq!(ids(&agenda.take_due(at(10))), ["b", "c"]);
        assert_eq!(agenda.summary().count, 2, "a finished elsewhere");
    }

    #[test]
    fn a_scoped_agenda_ignores_other_executions() {
        let mut agenda = Agenda::scoped(["a".into()]);
        agenda.mark_stale(&"b".into());
        assert!(agenda.take_news().0.is_empty(), "b is not this agenda's");
        agenda.load(vec![
            execution("a", Status::Queued, None, 1),
            execution("b", Status::Queued, None, 2),
        ]);
        assert_eq!(ids(&agenda.take_due(at(10))), ["a"]);
    }

    /// A follower's engine (its agenda not loaded) keeps no marks of the
    /// executions its process creates: its first full pass reads them all.
    #[test]
    fn an_agenda_keeps_marks_only_once_loaded() {
        let mut agenda = Agenda::default();
        agenda.mark_stale(&"a".into());
        assert!(agenda.take_news().0.is_empty(), "not loaded yet");
        agenda.load(Vec::new());
        agenda.mark_stale(&"a".into());
        assert_eq!(agenda.take_news().0, [ExecutionId::from("a")]);
    }
}
