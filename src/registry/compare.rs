//! What merging a branch would do, decided purely from two valid snapshots:
//! the base (e.g. `origin/main`) and the head of a pull request. No store is
//! needed, so `weir plan` runs in a pull request's CI.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::spec::{Definition, Digest, EntityRef, EventTrigger, Schedule};
use crate::validate::Entity;

/// One entity that differs between base and head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityChange {
    pub entity: EntityRef,
    /// `None` when the entity is added.
    pub from: Option<Digest>,
    /// `None` when the entity is removed.
    pub to: Option<Digest>,
    pub file: String,
}

/// A launch plan's schedule, or one of its event triggers (matched by
/// [`EventTrigger::key`]: what it watches), that starts, stops or changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanChange {
    pub launch_plan: EntityRef,
    /// `started`, `stopped` or `changed`.
    pub change: &'static str,
    /// `None` when it starts.
    pub from: Option<String>,
    /// `None` when it stops.
    pub to: Option<String>,
}

impl PlanChange {
    /// What became of `before` in `after` (each described by `describe`),
    /// or `None` when both are absent or equal.
    fn between<T: PartialEq>(
        launch_plan: &EntityRef,
        before: Option<&T>,
        after: Option<&T>,
        describe: fn(&T) -> String,
    ) -> Option<PlanChange> {
        let change = match (before, after) {
            (None, Some(_)) => "started",
            (Some(_), None) => "stopped",
            (Some(a), Some(b)) if a != b => "changed",
            _ => return None,
        };
        Some(PlanChange {
            launch_plan: launch_plan.clone(),
            change,
            from: before.map(describe),
            to: after.map(describe),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    pub added: Vec<EntityChange>,
    pub changed: Vec<EntityChange>,
    pub removed: Vec<EntityChange>,
    pub unchanged: usize,
    pub schedules: Vec<PlanChange>,
    pub triggers: Vec<PlanChange>,
}

impl Comparison {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Describes a schedule in one line: `cron 0 2 * * * (Europe/Berlin)`.
pub fn describe_schedule(s: &Schedule) -> String {
    let when = match (&s.cron, &s.every) {
        (Some(c), _) => format!("cron `{c}`"),
        (None, Some(e)) => format!("every {e}"),
        (None, None) => "never".to_owned(),
    };
    format!(
        "{when} in {}, concurrency {:?}, catch-up {:?}",
        s.timezone, s.concurrency, s.catch_up
    )
}

/// Describes a trigger in one line: `artifact s3://landing/orders/*.csv
/// into input file, every 30s, maxPending 100`.
pub fn describe_trigger(t: &EventTrigger) -> String {
    match t {
        EventTrigger::Artifact(a) => format!(
            "artifact {}{} into input {}, every {}, maxPending {}",
            a.url,
            a.pattern,
            a.input,
            a.interval
                .as_ref()
                .map_or_else(|| "30s".to_owned(), |i| i.to_string()),
            a.max_pending
        ),
        EventTrigger::Upstream(u) => format!(
            "upstream {} on {}{}, maxPending {}",
            u.launch_plan,
            u.on.iter()
                .map(|p| serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", "),
            if u.inputs.is_empty() {
                String::new()
            } else {
                format!(
                    ", binding {}",
                    u.inputs.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            },
            u.max_pending
        ),
        EventTrigger::Webhook(w) => format!("webhook, maxPending {}", w.max_pending),
    }
}

fn triggers_of(e: &Entity) -> &[EventTrigger] {
    match &e.definition {
        Definition::LaunchPlan(lp) => &lp.spec.triggers,
        _ => &[],
    }
}

/// The triggers of a launch plan that start, stop or change between
/// `before` and `after`.
fn trigger_changes(
    id: &EntityRef,
    before: &[EventTrigger],
    after: &[EventTrigger],
) -> Vec<PlanChange> {
    let mut out = Vec::new();
    for t in after {
        let b = before.iter().find(|b| b.key() == t.key());
        out.extend(PlanChange::between(id, b, Some(t), describe_trigger));
    }
    for b in before
        .iter()
        .filter(|b| !after.iter().any(|t| t.key() == b.key()))
    {
        out.extend(PlanChange::between(id, Some(b), None, describe_trigger));
    }
    out
}

fn schedule_of(e: &Entity) -> Option<&Schedule> {
    match &e.definition {
        Definition::LaunchPlan(lp) => lp.spec.schedule.as_ref(),
        _ => None,
    }
}

/// Compares two valid snapshots (entities with digests).
pub fn compare(base: &[Entity], head: &[Entity]) -> Comparison {
    let index = |entities: &[Entity]| -> BTreeMap<EntityRef, usize> {
        entities
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.clone(), i))
            .collect()
    };
    let (base_ix, head_ix) = (index(base), index(head));
    let mut out = Comparison::default();
    for (id, &h) in &head_ix {
        let new = &head[h];
        match base_ix.get(id).map(|&b| &base[b]) {
            None => out.added.push(EntityChange {
                entity: id.clone(),
                from: None,
                to: new.digest.clone(),
                file: new.file.clone(),
            }),
            Some(old) if old.digest == new.digest => out.unchanged += 1,
            Some(old) => out.changed.push(EntityChange {
                entity: id.clone(),
                from: old.digest.clone(),
                to: new.digest.clone(),
                file: new.file.clone(),
            }),
        }
        let triggers_before = base_ix.get(id).map_or(&[][..], |&b| triggers_of(&base[b]));
        out.triggers
            .extend(trigger_changes(id, triggers_before, triggers_of(new)));
        let before = base_ix.get(id).and_then(|&b| schedule_of(&base[b]));
        out.schedules.extend(PlanChange::between(
            id,
            before,
            schedule_of(new),
            describe_schedule,
        ));
    }
    for (id, &b) in &base_ix {
        if !head_ix.contains_key(id) {
            let old = &base[b];
            out.removed.push(EntityChange {
                entity: id.clone(),
                from: old.digest.clone(),
                to: None,
                file: old.file.clone(),
            });
            out.triggers
                .extend(trigger_changes(id, triggers_of(old), &[]));
            out.schedules.extend(PlanChange::between(
                id,
                schedule_of(old),
                None,
                describe_schedule,
            ));
        }
    }
    out
}
