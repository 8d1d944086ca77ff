//! Checks of launch plans: the workflow exists, fixed and default inputs
//! name real inputs with values of the right type, every required input is
//! filled, and the schedule parses (cron, `every`, time zone, deadline,
//! kickoff input).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use serde_json::Value;

use super::ports::Interface;
use super::task::check_duration;
use super::{Code, Diagnostic, Index, at, at_key, suggestion};
use crate::spec::duration::Field;
use crate::spec::types::TypeExpr;
use crate::spec::yaml::PathStep;
use crate::spec::{Definition, Kind, LaunchPlanSpec, Schedule, cron};
use crate::validate::Entity;

use PathStep::Key;

/// Why each cron expression of the launch plans does not parse (`None`:
/// it does), by its text.
pub type Crons<'a> = HashMap<&'a str, Option<String>>;

/// Parses each distinct cron expression once: a repository repeats a few
/// schedules over many launch plans, and parsing one is costly (croner
/// fills every field's table), more than every other check of a plan.
pub fn parse_crons(entities: &[Entity]) -> Crons<'_> {
    let mut texts: Vec<&str> = entities
        .iter()
        .filter_map(|e| match &e.definition {
            Definition::LaunchPlan(lp) => lp.spec.schedule.as_ref()?.cron.as_deref(),
            _ => None,
        })
        .collect();
    texts.sort_unstable();
    texts.dedup();
    let parsed = crate::validate::par::map(&texts, |text| {
        cron::parse(text).err().map(|e| e.to_string())
    });
    texts.into_iter().zip(parsed).collect()
}

pub fn check(
    entity: &Entity,
    spec: &LaunchPlanSpec,
    index: &Index<'_>,
    interfaces: &[Option<Interface>],
    crons: &Crons<'_>,
) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    if let Some(schedule) = &spec.schedule {
        check_schedule(entity, schedule, crons, &mut found);
    }
    let project = &entity.id.project;
    let iface = match index.get(project, Kind::Workflow, &spec.workflow) {
        Some((i, _)) => interfaces[i].as_ref(),
        None => {
            found.push(
                at(entity, Code::UnknownWorkflow, &[Key("spec"), Key("workflow")],
                    format!("launch plan runs workflow `{}`, which does not exist in project `{project}`", spec.workflow))
                .with_help(suggestion(&spec.workflow, &index.names(project, Kind::Workflow), "workflow")),
            );
            None
        }
    };
    let Some(iface) = iface else { return found };

    for (section, values) in [("inputs", &spec.inputs), ("defaults", &spec.defaults)] {
        check_values(entity, iface, &spec.workflow, section, values, &mut found);
    }
    for name in spec
        .inputs
        .keys()
        .filter(|k| spec.defaults.contains_key(*k))
    {
        found.push(
            at_key(entity, Code::ConflictingInput, &[Key("spec"), Key("defaults"), Key(name)],
                format!("`{name}` is both a fixed input and a default"))
            .with_help("fixed `inputs` cannot be overridden, so a default for the same input is never used; keep one"),
        );
    }
    let kickoff = spec
        .schedule
        .as_ref()
        .and_then(|s| s.kickoff_time_input.as_deref());
    if let Some(name) = kickoff {
        let path = [Key("spec"), Key("schedule"), Key("kickoffTimeInput")];
        match iface.inputs.get(name) {
            None => found.push(
                at(
                    entity,
                    Code::InvalidKickoffInput,
                    &path,
                    format!(
                        "kickoffTimeInput `{name}` is not an input of workflow `{}`",
                        spec.workflow
                    ),
                )
                .with_help(suggestion(name, &iface.input_names(), "input")),
            ),
            Some(p) if p.ty.as_ref().is_some_and(|t| *t != TypeExpr::Datetime) => found.push(
                at(
                    entity,
                    Code::InvalidKickoffInput,
                    &path,
                    format!(
                        "kickoffTimeInput `{name}` must be a datetime input, but it is {}",
                        p.ty.as_ref().expect("checked")
                    ),
                )
                .with_help("the scheduled instant is passed as a datetime"),
            ),
            Some(_) if spec.inputs.contains_key(name) => found.push(at(
                entity,
                Code::ConflictingInput,
                &path,
                format!("`{name}` receives the scheduled instant but is also a fixed input"),
            )),
            Some(_) => {}
        }
    }
    for (name, p) in &iface.inputs {
        let filled = spec.inputs.contains_key(name)
            || spec.defaults.contains_key(name)
            || kickoff == Some(name.as_str());
        if p.required && !filled {
            found.push(
                at(entity, Code::UnfilledInput, &[Key("spec"), Key("workflow")],
                    format!("workflow `{}` needs input `{name}`, which this launch plan does not fill", spec.workflow))
                .with_help(format!("add `{name}` to `inputs` or `defaults`, or pass the scheduled instant with `kickoffTimeInput: {name}`")),
            );
        }
    }
    found
}

fn check_values(
    entity: &Entity,
    iface: &Interface,
    workflow: &str,
    section: &'static str,
    values: &BTreeMap<String, Value>,
    found: &mut Vec<Diagnostic>,
) {
    for (name, value) in values {
        let path = [Key("spec"), Key(section), Key(name.as_str())];
        match iface.inputs.get(name) {
            None => found.push(
                at_key(
                    entity,
                    Code::UnknownInput,
                    &path,
                    format!("workflow `{workflow}` has no input `{name}`"),
                )
                .with_help(suggestion(name, &iface.input_names(), "input")),
            ),
            Some(p) => {
                if let Some(t) = &p.ty {
                    if let Err(e) = t.accepts_literal(value) {
                        found.push(at(
                            entity,
                            Code::TypeMismatch,
                            &path,
                            format!("input `{name}` of workflow `{workflow}`: {e}"),
                        ));
                    }
                }
            }
        }
    }
}

fn check_schedule(
    entity: &Entity,
    schedule: &Schedule,
    crons: &Crons<'_>,
    found: &mut Vec<Diagnostic>,
) {
    if let Some(cron) = &schedule.cron {
        let error = match crons.get(cron.as_str()) {
            Some(known) => known.clone(),
            None => cron::parse(cron).err().map(|e| e.to_string()),
        };
        if let Some(error) = error {
            found.push(
                at(entity, Code::InvalidCron, &[Key("spec"), Key("schedule"), Key("cron")], error)
                    .with_help("five fields (minute hour day-of-month month day-of-week), e.g. `0 2 * * *`, or a macro such as `@hourly`"),
            );
        }
    }
    if let Some(every) = &schedule.every {
        let path = [Key("spec"), Key("schedule"), Key("every")];
        let rate = check_duration(entity, Field::Every, every, &path, found);
        if rate.is_some_and(|d| d.as_secs() < 1) {
            found.push(at(
                entity,
                Code::InvalidDuration,
                &path,
                format!("`every: {every}` is shorter than one second"),
            ));
        }
    }
    if let Some(deadline) = &schedule.starting_deadline {
        check_duration(
            entity,
            Field::StartingDeadline,
            deadline,
            &[Key("spec"), Key("schedule"), Key("startingDeadline")],
            found,
        );
    }
    if chrono_tz::Tz::from_str(&schedule.timezone).is_err() {
        let known: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        found.push(
            at(entity, Code::InvalidTimezone, &[Key("spec"), Key("schedule"), Key("timezone")],
                format!("`{}` is not an IANA time zone", schedule.timezone))
            .with_help(match super::super::schema::closest(&schedule.timezone, &known) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "use a name from the IANA database, e.g. `Europe/Berlin`, `America/New_York` or `UTC`".to_owned(),
            }),
        );
    }
}
