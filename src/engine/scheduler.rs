//! The scheduler's loop body: for every active launch plan with a schedule,
//! decide the due instants ([`crate::schedule::tick`]) and create their
//! executions. Ids are deterministic (launch plan, version, instant) and
//! creation is insert-or-get, so running this twice over the same window —
//! after a restart, or in two processes sharing a database — never runs an
//! instant twice (I4). A backfill creates its executions through the same
//! path (a [`Prepared`] launch plan and the same ids), so it finds what the
//! scheduler ran, and the other way round.
//!
//! What keeps a tick's cost independent of the registry's size: each
//! launch plan is resolved once ([`create::prepare`]) and kept while the
//! versions it resolved stay active (checked only after a reconcile, the
//! one writer of active sets), and the due instants of a tick are written
//! in batches of [`BATCH`] ([`crate::store::ExecutionStore::create_executions`]),
//! the caller told of each batch as soon as it is stored.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::create::{self, Prepared, Request};
use crate::clock::Since;
use crate::schedule::Rule;
use crate::schedule::tick::{Decision, PlanState, SkipReason, Tick, advance};
use crate::spec::{Definition, Digest, EntityRef, ExecutionId, Kind, SourceKey, Trigger};
use crate::store::execution::BackfillGroup;
use crate::store::execution::Execution;
use crate::store::{Pause, SourceStatus, Store, VersionFilter, VersionKey, VersionRecord};

/// Creates the execution of `launch_plan`'s active version at the scheduled
/// `instant`, or finds it: the one path by which the scheduler and a
/// backfill (which names its `group`) create executions, so both give an
/// instant the same deterministic id and neither runs it twice (I4).
pub async fn create_at(
    store: &dyn Store,
    launch_plan: &EntityRef,
    instant: DateTime<Utc>,
    group: Option<&BackfillGroup>,
    now: DateTime<Utc>,
) -> Result<(Execution, bool), create::Error> {
    let trigger = if group.is_some() {
        Trigger::Backfill
    } else {
        Trigger::Schedule
    };
    let request = Request {
        name: launch_plan.name.clone(),
        project: Some(launch_plan.project.clone()),
        trigger,
        scheduled_at: Some(instant),
        ..Request::default()
    };
    create::create_in(store, &request, group, now).await
}

/// What one scheduler tick did.
#[derive(Debug, Default)]
pub struct Report {
    /// Executions this tick created.
    pub created: Vec<ExecutionId>,
    /// Due executions that existed already (another process, or an earlier
    /// run of this one, created them).
    pub existing: Vec<ExecutionId>,
    pub skipped: Vec<(ExecutionId, SkipReason)>,
    /// Running executions asked to stop (`concurrency: Replace`).
    pub cancelled: Vec<ExecutionId>,
    /// Launch plans that could not be scheduled, and why.
    pub errors: Vec<(String, String)>,
}

/// At most this many of a tick's due executions are created in one call
/// to the store (one transaction): the engine is woken after each, so the
/// first of a large burst start while the rest are written.
pub const BATCH: usize = 256;

/// Keeps, per launch plan version, its rule, where its schedule stands and
/// what creating its executions resolves ([`create::Prepared`]), so that
/// a tick resolves a launch plan's closure once, not once per instant.
#[derive(Default)]
pub struct Scheduler {
    plans: HashMap<VersionKey, Option<Rule>>,
    states: HashMap<VersionKey, PlanState>,
    prepared: HashMap<VersionKey, Arc<Prepared>>,
    /// Launch plans that could not be prepared since the active sets last
    /// changed: prepared again only when due (which reports why).
    unprepared: HashSet<VersionKey>,
    /// Every source's last reconcile when `prepared` was last checked and
    /// `active_plans` read: the active sets change only with a reconcile
    /// (`Store::apply`).
    reconciled: Option<Vec<SourceStatus>>,
    /// The active launch plans' versions as of `reconciled` (none until
    /// read, or after a tick that failed while it held them): a tick reads
    /// them again only after a reconcile, not every safety-net tick.
    active_plans: Option<Vec<VersionRecord>>,
}

/// The unfinished executions at a tick's start.
#[derive(Default)]
struct Running {
    /// By (project, launch plan name).
    by_plan: HashMap<(String, String), Vec<ExecutionId>>,
    /// Those a backfill created.
    backfills: HashSet<ExecutionId>,
}

/// A due instant to create, and where it came from.
struct Due {
    plan: VersionKey,
    prepared: Arc<Prepared>,
    instant: DateTime<Utc>,
}

impl Scheduler {
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// How many active launch plans have a schedule, as of the last tick.
    pub fn schedules(&self) -> usize {
        self.plans.values().filter(|rule| rule.is_some()).count()
    }

    /// The soonest instant after `now` that some schedule known to the last
    /// tick fires at: the daemon ticks then rather than up to a tick late.
    pub fn next_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.states
            .values()
            .filter_map(|s| s.next_due)
            .filter(|due| *due > now)
            .min()
    }

    /// Decides every active schedule at `now` and creates what is due.
    pub async fn tick(
        &mut self,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<Report, crate::store::Error> {
        let sources = store.sources().await?;
        self.tick_notifying(store, now, sources, &mut |_| {}).await
    }

    /// [`Scheduler::tick`] given every source's status as the caller just
    /// read it ([`Store::sources`]: the daemon reads it anyway to see
    /// whether a reconcile happened), calling `created` with the ids of
    /// each batch of executions as soon as the store has them (the daemon
    /// wakes the engine there).
    pub async fn tick_notifying(
        &mut self,
        store: &dyn Store,
        now: DateTime<Utc>,
        sources: Vec<SourceStatus>,
        created: &mut (dyn FnMut(&[ExecutionId]) + Send),
    ) -> Result<Report, crate::store::Error> {
        let clock = Since::new(now);
        let mut report = Report::default();
        let reconciled_alike = self.reconciled_alike(&sources);
        // Taken while the tick runs (it decides each plan with `&mut self`);
        // put back when it ends well.
        let plans = match self.active_plans.take() {
            Some(plans) if reconciled_alike => plans,
            _ => {
                let filter = VersionFilter {
                    kind: Some(Kind::LaunchPlan),
                    ..VersionFilter::default()
                };
                store
                    .versions(&filter)
                    .await?
                    .into_iter()
                    .filter(|v| v.active)
                    .collect()
            }
        };
        let mut running = Running::default();
        for e in store.unfinished_executions().await? {
            if e.trigger == Trigger::Backfill {
                running.backfills.insert(e.id.clone());
            }
            if let Some(lp) = &e.launch_plan {
                running
                    .by_plan
                    .entry((e.project.clone(), lp.clone()))
                    .or_default()
                    .push(e.id);
            }
        }
        let pauses: HashMap<(String, String), Pause> = store
            .pauses()
            .await?
            .into_iter()
            .map(|p| ((p.project.clone(), p.name.clone()), p))
            .collect();
        if !reconciled_alike {
            self.forget_stale_preparations(store, &sources).await?;
            self.reconciled = Some(sources);
        }
        let keep: HashSet<&VersionKey> = plans.iter().map(|p| &p.key).collect();
        self.states.retain(|k, _| keep.contains(k));
        self.plans.retain(|k, _| keep.contains(k));
        self.prepared.retain(|k, _| keep.contains(k));
        self.unprepared.retain(|k| keep.contains(k));
        let mut due = Vec::new();
        for plan in &plans {
            let entity = &plan.key.entity;
            let pause = pauses.get(&(entity.project.clone(), entity.name.clone()));
            if let Err(e) = self
                .decide(store, plan, pause, &running, now, &mut due, &mut report)
                .await
            {
                // Nothing decided this tick is written yet.
                self.undecide(&due);
                return Err(e);
            }
        }
        self.active_plans = Some(plans);
        let mut batch = Vec::with_capacity(BATCH.min(due.len()));
        for (n, chunk) in due.chunks(BATCH).enumerate() {
            // Decided at `now`, each batch is created at its own time,
            // after the one before (what `UnfinishedSummary::newest`
            // relies on).
            let created_at = clock.now();
            batch.clear();
            for d in chunk {
                let request = Request {
                    trigger: Trigger::Schedule,
                    scheduled_at: Some(d.instant),
                    ..Request::default()
                };
                match d.prepared.execution(&request, None, created_at) {
                    Ok(new) => batch.push(new),
                    Err(e) => cannot_start(&mut report, &d.plan.entity, &e),
                }
            }
            let made = match store.create_executions(&batch).await {
                Ok(made) => made,
                Err(e) => {
                    // Neither this batch nor the later ones are known to
                    // be written: the next tick decides them again.
                    self.undecide(&due[n * BATCH..]);
                    return Err(e);
                }
            };
            let mut ids = Vec::new();
            for (new, made) in batch.drain(..).zip(made) {
                if made {
                    ids.push(new.execution.id);
                } else {
                    report.existing.push(new.execution.id);
                }
            }
            if !ids.is_empty() {
                created(&ids);
            }
            report.created.extend(ids);
        }
        Ok(report)
    }

    /// Decides `plan`'s schedule at `now`: asks the running executions a
    /// `Replace` makes way for to stop, and adds the instants to create to
    /// `due`. Nothing while it is paused; after a resume without catch-up,
    /// only the instants after the resume. On a store error the plan
    /// stands where it stood before.
    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &mut self,
        store: &dyn Store,
        plan: &VersionRecord,
        pause: Option<&Pause>,
        running: &Running,
        now: DateTime<Utc>,
        due: &mut Vec<Due>,
        report: &mut Report,
    ) -> Result<(), crate::store::Error> {
        let key = &plan.key;
        if !self.plans.contains_key(key) {
            let rule = self.read_rule(store, key, report).await?;
            self.plans.insert(key.clone(), rule);
        }
        if self.plans[key].is_none() {
            return Ok(());
        }
        // Prepared ahead of its instants: a burst of due instants costs
        // only their writes.
        if !self.prepared.contains_key(key) && !self.unprepared.contains(key) {
            if let Err(create::Error::Store(e)) = self.prepare(store, key).await {
                return Err(e);
            }
        }
        let Some(rule) = &self.plans[key] else {
            return Ok(());
        };
        let entity = &key.entity;
        let ids = running
            .by_plan
            .get(&(entity.project.clone(), entity.name.clone()))
            .map_or(&[][..], Vec::as_slice);
        let mut activated_at = plan.last_activated_at.unwrap_or(plan.registered_at);
        let state = self.states.entry(key.clone()).or_default();
        match pause {
            // Where it stood is kept (a resume with catch-up goes on from
            // there), but the daemon still wakes at its instants, to see a
            // resume in time for the first instant after it.
            Some(pause) if pause.paused => {
                state.next_due = rule.next_after(now);
                return Ok(());
            }
            // The instants of the pause are skipped: the schedule goes on
            // as if activated at the resume.
            Some(resumed) if !resumed.catch_up => {
                activated_at = activated_at.max(resumed.at);
                if state.watermark.is_some_and(|w| w < resumed.at) {
                    *state = PlanState {
                        watermark: Some(resumed.at),
                        next_due: None,
                    };
                }
            }
            _ => {}
        }
        let previous = *state;
        let Some(tick) = advance(state, entity, &key.digest, rule, activated_at, now, ids) else {
            return Ok(());
        };
        let decided = self.act_on(store, key, tick, running, due, report).await;
        if decided.is_err() {
            self.states.insert(key.clone(), previous);
        }
        decided
    }

    /// The rule of the launch plan version `key`'s schedule, `None` when
    /// it has none or it cannot be read (said once per version).
    async fn read_rule(
        &self,
        store: &dyn Store,
        key: &VersionKey,
        report: &mut Report,
    ) -> Result<Option<Rule>, crate::store::Error> {
        let Some(doc) = store.version_document(key).await? else {
            return Ok(None);
        };
        let Ok(Definition::LaunchPlan(lp)) = Definition::from_json(Kind::LaunchPlan, doc) else {
            return Ok(None);
        };
        let Some(schedule) = lp.spec.schedule.as_ref() else {
            return Ok(None);
        };
        match Rule::from_spec(schedule) {
            Ok(rule) => Ok(Some(rule)),
            // Refused at validation today: a version registered before.
            Err(e) => {
                tracing::error!(launch_plan = %key.entity, version = %key.digest, error = %e, "schedule skipped: it cannot be read");
                report.errors.push((key.entity.name.clone(), e.to_string()));
                Ok(None)
            }
        }
    }

    /// Carries out what one tick of `key` decided: cancels for `Replace`,
    /// instants to create onto `due`, skips reported.
    async fn act_on(
        &mut self,
        store: &dyn Store,
        key: &VersionKey,
        tick: Tick,
        running: &Running,
        due: &mut Vec<Due>,
        report: &mut Report,
    ) -> Result<(), crate::store::Error> {
        let entity = &key.entity;
        for id in tick.cancel {
            // `Replace` makes way for the newest instant, not for work
            // a backfill asked for explicitly.
            if running.backfills.contains(&id) {
                continue;
            }
            if store.request_cancel(&id).await? {
                report.cancelled.push(id);
            }
        }
        for decision in tick.decisions {
            match decision {
                Decision::Start(trigger) => {
                    let prepared = match self.prepared.get(key) {
                        Some(prepared) => Ok(prepared.clone()),
                        None => self.prepare(store, key).await,
                    };
                    match prepared {
                        Ok(prepared) => due.push(Due {
                            plan: key.clone(),
                            prepared,
                            instant: trigger.instant,
                        }),
                        Err(create::Error::Store(e)) => return Err(e),
                        Err(e) => cannot_start(report, entity, &e),
                    }
                }
                Decision::Skip(trigger, reason) => {
                    tracing::info!(launch_plan = %entity.name, instant = %trigger.instant, reason = ?reason, "scheduled instant skipped");
                    report.skipped.push((trigger.execution, reason));
                }
            }
        }
        Ok(())
    }

    /// The instants of `unwritten` were decided but may not have been
    /// written: each of their plans decides again from its first such
    /// instant at the next tick (those written meanwhile are found
    /// existing, I4). What each plan decided before that instant stands.
    fn undecide(&mut self, unwritten: &[Due]) {
        let mut first: HashMap<&VersionKey, DateTime<Utc>> = HashMap::new();
        for d in unwritten {
            first
                .entry(&d.plan)
                .and_modify(|at| *at = (*at).min(d.instant))
                .or_insert(d.instant);
        }
        for (plan, at) in first {
            self.states
                .insert(plan.clone(), PlanState::undecided_from(at));
        }
    }

    /// Prepares version `key` of a launch plan (the one this tick read
    /// active: a reconcile landing meanwhile does not make its instants
    /// run the next version) and keeps it; a failure other than the
    /// store's is remembered until the active sets change.
    async fn prepare(
        &mut self,
        store: &dyn Store,
        key: &VersionKey,
    ) -> Result<Arc<Prepared>, create::Error> {
        let prepared = match create::launch_plan_version(store, key).await {
            Ok(version) => version.prepare(store).await,
            Err(e) => Err(e),
        };
        match prepared {
            Ok(prepared) => {
                let prepared = Arc::new(prepared);
                self.prepared.insert(key.clone(), prepared.clone());
                self.unprepared.remove(key);
                Ok(prepared)
            }
            Err(create::Error::Store(e)) => Err(create::Error::Store(e)),
            Err(e) => {
                self.unprepared.insert(key.clone());
                Err(e)
            }
        }
    }

    /// Drops what was prepared from versions no longer active, when a
    /// reconcile has changed an active set since the last tick (the one
    /// way they change, seen in `sources`): every source's active set is
    /// read then, once, and
    /// each prepared launch plan kept while it resolves alike. A launch
    /// plan's version covers its closure (DESIGN.md section 2), so a
    /// changed task makes a new key anyway; what this check adds is the
    /// source, which can change under the same versions (a definition
    /// moved from one source to another between two ticks).
    /// Whether every source's last reconcile is the one the scheduler last
    /// saw.
    fn reconciled_alike(&self, sources: &[SourceStatus]) -> bool {
        self.reconciled.as_ref().is_some_and(|last| {
            last.len() == sources.len()
                && last.iter().zip(sources).all(|(a, b)| {
                    a.source == b.source
                        && a.last_reconciled == b.last_reconciled
                        && a.last_reconciled_at == b.last_reconciled_at
                })
        })
    }

    /// After a reconcile: forgets the preparations whose versions are no
    /// longer the active ones.
    async fn forget_stale_preparations(
        &mut self,
        store: &dyn Store,
        sources: &[SourceStatus],
    ) -> Result<(), crate::store::Error> {
        self.unprepared.clear();
        if !self.prepared.is_empty() {
            let mut active: HashMap<EntityRef, Vec<(SourceKey, Digest)>> = HashMap::new();
            for status in sources {
                for (entity, digest) in store.active_set(&status.source).await? {
                    active
                        .entry(entity)
                        .or_default()
                        .push((status.source.clone(), digest));
                }
            }
            let before = self.prepared.len();
            self.prepared.retain(|_, p| p.resolves_alike(&active));
            tracing::debug!(
                kept = self.prepared.len(),
                dropped = before - self.prepared.len(),
                "active sets changed: prepared launch plans checked"
            );
        }
        Ok(())
    }
}

/// Reports a due instant that cannot be created (not a store failure).
fn cannot_start(report: &mut Report, launch_plan: &EntityRef, e: &create::Error) {
    tracing::warn!(launch_plan = %launch_plan.name, error = %e, "cannot start a scheduled execution");
    report
        .errors
        .push((launch_plan.name.clone(), e.to_string()));
}
