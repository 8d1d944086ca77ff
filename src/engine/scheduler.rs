//! The scheduler's loop body: for every active launch plan with a schedule,
//! decide the due instants ([`crate::schedule::tick`]) and create their
//! executions. Ids are deterministic (launch plan, version, instant) and
//! creation is insert-or-get, so running this twice over the same window —
//! after a restart, or in two processes sharing a database — never runs an
//! instant twice (I4). A backfill creates its executions through the same
//! [`create_at`], so it finds what the scheduler ran, and the other way round.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::create::{self, Request};
use crate::schedule::Rule;
use crate::schedule::tick::{Decision, PlanState, SkipReason, advance};
use crate::spec::{Definition, EntityRef, ExecutionId, Kind, Trigger};
use crate::store::execution::BackfillGroup;
use crate::store::execution::Execution;
use crate::store::{Store, VersionFilter, VersionKey};

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

/// Keeps, per launch plan version, its rule and where its schedule stands.
#[derive(Default)]
pub struct Scheduler {
    plans: HashMap<VersionKey, Option<Rule>>,
    states: HashMap<VersionKey, PlanState>,
}

impl Scheduler {
    pub fn new() -> Scheduler {
        Scheduler::default()
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
        let mut report = Report::default();
        let filter = VersionFilter {
            kind: Some(Kind::LaunchPlan),
            ..VersionFilter::default()
        };
        let plans: Vec<_> = store
            .versions(&filter)
            .await?
            .into_iter()
            .filter(|v| v.active)
            .collect();
        let mut running: HashMap<(String, String), Vec<Execution>> = HashMap::new();
        let mut backfills = std::collections::HashSet::new();
        for e in store.unfinished_executions().await? {
            if e.trigger == Trigger::Backfill {
                backfills.insert(e.id.clone());
            }
            if let Some(lp) = &e.launch_plan {
                running
                    .entry((e.project.clone(), lp.clone()))
                    .or_default()
                    .push(e);
            }
        }
        let keep: std::collections::HashSet<&VersionKey> = plans.iter().map(|p| &p.key).collect();
        self.states.retain(|k, _| keep.contains(k));
        self.plans.retain(|k, _| keep.contains(k));
        for plan in &plans {
            let key = &plan.key;
            if !self.plans.contains_key(key) {
                let rule = match store.version_document(key).await? {
                    Some(doc) => match Definition::from_json(Kind::LaunchPlan, doc) {
                        Ok(Definition::LaunchPlan(lp)) => lp
                            .spec
                            .schedule
                            .as_ref()
                            .and_then(|s| match Rule::from_spec(s) {
                                Ok(rule) => Some(rule),
                                // Refused at validation today: a version
                                // registered before. Said once per version.
                                Err(e) => {
                                    tracing::error!(launch_plan = %key.entity, version = %key.digest, error = %e, "schedule skipped: it cannot be read");
                                    report.errors.push((key.entity.name.clone(), e.to_string()));
                                    None
                                }
                            }),
                        _ => None,
                    },
                    None => None,
                };
                self.plans.insert(key.clone(), rule);
            }
            let Some(rule) = &self.plans[key] else {
                continue;
            };
            let entity = &key.entity;
            let ids: Vec<ExecutionId> = running
                .get(&(entity.project.clone(), entity.name.clone()))
                .map(|list| list.iter().map(|e| e.id.clone()).collect())
                .unwrap_or_default();
            let activated_at = plan.last_activated_at.unwrap_or(plan.registered_at);
            let state = self.states.entry(key.clone()).or_default();
            let Some(tick) = advance(state, entity, &key.digest, rule, activated_at, now, &ids)
            else {
                continue;
            };
            for id in tick.cancel {
                // `Replace` makes way for the newest instant, not for work
                // a backfill asked for explicitly.
                if backfills.contains(&id) {
                    continue;
                }
                if store.request_cancel(&id).await? {
                    report.cancelled.push(id);
                }
            }
            for decision in tick.decisions {
                match decision {
                    Decision::Start(trigger) => {
                        match create_at(store, entity, trigger.instant, None, now).await {
                            Ok((e, true)) => report.created.push(e.id),
                            Ok((e, false)) => report.existing.push(e.id),
                            Err(create::Error::Store(e)) => return Err(e),
                            Err(e) => {
                                tracing::warn!(launch_plan = %entity.name, error = %e, "cannot start a scheduled execution");
                                report.errors.push((entity.name.clone(), e.to_string()));
                            }
                        }
                    }
                    Decision::Skip(trigger, reason) => {
                        tracing::info!(launch_plan = %entity.name, instant = %trigger.instant, reason = ?reason, "scheduled instant skipped");
                        report.skipped.push((trigger.execution, reason));
                    }
                }
            }
        }
        Ok(report)
    }
}
