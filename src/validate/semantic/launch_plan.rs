//! Checks of launch plans: the workflow exists, fixed and default inputs
//! name real inputs with values of the right type, every required input is
//! filled, and the schedule parses (cron, `every`, time zone, deadline,
//! kickoff input).

use std::collections::BTreeMap;
use std::str::FromStr;

use foldhash::HashMap;
use serde_json::Value;

use super::ports::Interface;
use super::task::check_duration;
use super::{Code, Diagnostic, Index, at, at_key, suggestion};
use crate::spec::EventTrigger;
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
    check_triggers(entity, spec, index, interfaces, iface, &mut found);
    // A launch plan run only by its triggers is filled by each of them
    // (`check_triggers`); one with a schedule, or none at all, by itself.
    let by_itself = spec.schedule.is_some() || spec.triggers.is_empty();
    for (name, p) in iface.inputs.iter().filter(|_| by_itself) {
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

/// Checks each trigger: artifact triggers watch a readable URL with a
/// valid pattern into a `file` input that nothing else fixes; upstream
/// triggers name a launch plan of the project whose workflow has the
/// inputs and outputs they bind, of types that fit; each trigger fills
/// every required input the launch plan leaves open; no trigger is
/// written twice.
fn check_triggers(
    entity: &Entity,
    spec: &LaunchPlanSpec,
    index: &Index<'_>,
    interfaces: &[Option<Interface>],
    iface: &Interface,
    found: &mut Vec<Diagnostic>,
) {
    let mut keys = std::collections::HashSet::new();
    let open: Vec<&str> = iface
        .inputs
        .iter()
        .filter(|(name, p)| {
            p.required && !spec.inputs.contains_key(*name) && !spec.defaults.contains_key(*name)
        })
        .map(|(name, _)| name.as_str())
        .collect();
    for (i, trigger) in spec.triggers.iter().enumerate() {
        let base = [Key("spec"), Key("triggers"), PathStep::Index(i)];
        let path = |rest: &[PathStep<'static>]| -> Vec<PathStep<'static>> {
            base.iter().cloned().chain(rest.iter().cloned()).collect()
        };
        if !keys.insert(trigger.key()) {
            found.push(at(
                entity,
                Code::InvalidTrigger,
                &base,
                "the same trigger is written twice".to_owned(),
            ));
        }
        match trigger {
            EventTrigger::Artifact(a) => {
                let url_path = path(&[Key("artifact"), Key("url")]);
                let scheme_ok = a.url.starts_with("s3://") || a.url.starts_with("file:///");
                if !scheme_ok || a.url.starts_with("s3:///") || a.url == "s3://" {
                    found.push(
                        at(entity, Code::InvalidTrigger, &url_path,
                            format!("`{}` is neither s3://BUCKET/PREFIX/ nor file:///FOLDER/", a.url))
                        .with_help("an artifact trigger watches a prefix of an S3 bucket (or an S3-compatible store) or a local folder"),
                    );
                }
                if let Err(e) = crate::spec::events::pattern(&a.pattern) {
                    found.push(at(
                        entity,
                        Code::InvalidTrigger,
                        &path(&[Key("artifact"), Key("pattern")]),
                        e.to_string(),
                    ));
                }
                if let Some(interval) = &a.interval {
                    let at_interval = path(&[Key("artifact"), Key("interval")]);
                    let value =
                        check_duration(entity, Field::Interval, interval, &at_interval, found);
                    if value.is_some_and(|d| d < std::time::Duration::from_millis(100)) {
                        found.push(at(
                            entity,
                            Code::InvalidTrigger,
                            &at_interval,
                            format!("`interval: {interval}` is shorter than 100ms"),
                        ));
                    }
                }
                let input_path = path(&[Key("artifact"), Key("input")]);
                match iface.inputs.get(&a.input) {
                    None => found.push(
                        at(entity, Code::InvalidTrigger, &input_path,
                            format!("`{}` is not an input of workflow `{}`", a.input, spec.workflow))
                        .with_help(suggestion(&a.input, &iface.input_names(), "input")),
                    ),
                    Some(p) if p.ty.as_ref().is_some_and(|t| *t != TypeExpr::File) => found.push(
                        at(entity, Code::InvalidTrigger, &input_path,
                            format!("input `{}` receives the object, so it must be a file, but it is {}",
                                a.input, p.ty.as_ref().expect("checked")))
                        .with_help("the object is copied into the artifact store and passed as a `file`"),
                    ),
                    Some(_) if spec.inputs.contains_key(&a.input) => found.push(at(
                        entity,
                        Code::ConflictingInput,
                        &input_path,
                        format!("`{}` receives the object but is also a fixed input", a.input),
                    )),
                    Some(_) => {}
                }
                unfilled(
                    entity,
                    &open,
                    &[a.input.as_str()],
                    &base,
                    "an object",
                    found,
                );
            }
            EventTrigger::Upstream(u) => {
                let bound: Vec<&str> = u.inputs.keys().map(String::as_str).collect();
                check_upstream(entity, spec, u, index, interfaces, iface, &base, found);
                unfilled(entity, &open, &bound, &base, "an upstream execution", found);
            }
            EventTrigger::Webhook(_) => {}
        }
    }
}

/// A required input `open` (not fixed nor defaulted) that a trigger does
/// not fill: its runs could not start.
fn unfilled(
    entity: &Entity,
    open: &[&str],
    fills: &[&str],
    at_trigger: &[PathStep<'_>],
    what: &str,
    found: &mut Vec<Diagnostic>,
) {
    for name in open.iter().filter(|n| !fills.contains(n)) {
        found.push(
            at(entity, Code::UnfilledInput, at_trigger,
                format!("a run started by {what} needs input `{name}`, which neither the launch plan nor this trigger fills"))
            .with_help(format!("add `{name}` to the launch plan's `inputs` or `defaults`, or bind it in the trigger")),
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn check_upstream(
    entity: &Entity,
    spec: &LaunchPlanSpec,
    u: &crate::spec::UpstreamTrigger,
    index: &Index<'_>,
    interfaces: &[Option<Interface>],
    iface: &Interface,
    base: &[PathStep<'_>],
    found: &mut Vec<Diagnostic>,
) {
    use crate::spec::events::{Binding, binding};
    let project = &entity.id.project;
    let name_path: Vec<PathStep<'_>> = base
        .iter()
        .cloned()
        .chain([Key("upstream"), Key("launchPlan")])
        .collect();
    if u.launch_plan == entity.id.name {
        found.push(at(
            entity,
            Code::InvalidTrigger,
            &name_path,
            "a launch plan cannot be its own upstream".to_owned(),
        ));
        return;
    }
    let upstream_iface = match index.get(project, Kind::LaunchPlan, &u.launch_plan) {
        Some((_, e)) => match &e.definition {
            Definition::LaunchPlan(lp) => index
                .get(project, Kind::Workflow, &lp.spec.workflow)
                .and_then(|(i, _)| interfaces[i].as_ref()),
            _ => None,
        },
        None => {
            found.push(
                at(
                    entity,
                    Code::InvalidTrigger,
                    &name_path,
                    format!(
                        "upstream launch plan `{}` does not exist in project `{project}`",
                        u.launch_plan
                    ),
                )
                .with_help(suggestion(
                    &u.launch_plan,
                    &index.names(project, Kind::LaunchPlan),
                    "launch plan",
                )),
            );
            return;
        }
    };
    let only_succeeded = u.on.iter().all(|p| *p == crate::spec::Phase::Succeeded);
    for (name, value) in &u.inputs {
        let path: Vec<PathStep<'_>> = base
            .iter()
            .cloned()
            .chain([Key("upstream"), Key("inputs"), Key(name.as_str())])
            .collect();
        let Some(target) = iface.inputs.get(name) else {
            found.push(
                at_key(
                    entity,
                    Code::UnknownInput,
                    &path,
                    format!("workflow `{}` has no input `{name}`", spec.workflow),
                )
                .with_help(suggestion(name, &iface.input_names(), "input")),
            );
            continue;
        };
        if spec.inputs.contains_key(name) {
            found.push(at(
                entity,
                Code::ConflictingInput,
                &path,
                format!("`{name}` is bound by the trigger but is also a fixed input"),
            ));
        }
        let source = match binding(value) {
            Err(message) => {
                found.push(at(entity, Code::InvalidTrigger, &path, message));
                continue;
            }
            Ok(Binding::Value(v)) => {
                if let Some(Err(e)) = target.ty.as_ref().map(|t| t.accepts_literal(v)) {
                    found.push(at(
                        entity,
                        Code::TypeMismatch,
                        &path,
                        format!("input `{name}` of workflow `{}`: {e}", spec.workflow),
                    ));
                }
                continue;
            }
            Ok(Binding::Input(from)) => upstream_iface.map(|ui| {
                (
                    "input",
                    from,
                    ui.inputs.get(from).map(|p| p.ty.clone()),
                    ui.input_names(),
                )
            }),
            Ok(Binding::Output(from)) => {
                if !only_succeeded {
                    found.push(
                        at(entity, Code::InvalidTrigger, &path,
                            format!("`{name}` binds an output of `{}`, which only a succeeded execution has", u.launch_plan))
                        .with_help("bind outputs only with `on: [succeeded]`, or bind the upstream's inputs"),
                    );
                }
                upstream_iface.map(|ui| {
                    (
                        "output",
                        from,
                        ui.outputs.get(from).cloned(),
                        ui.output_names(),
                    )
                })
            }
        };
        let Some((side, from, ty, names)) = source else {
            continue;
        };
        match ty {
            None => found.push(
                at(
                    entity,
                    Code::InvalidTrigger,
                    &path,
                    format!(
                        "launch plan `{}` runs a workflow with no {side} `{from}`",
                        u.launch_plan
                    ),
                )
                .with_help(suggestion(from, &names, side)),
            ),
            Some(Some(from_ty)) => {
                if let Some(to) = &target.ty {
                    if !to.accepts_reference(&from_ty) {
                        found.push(at(
                            entity,
                            Code::TypeMismatch,
                            &path,
                            format!(
                                "input `{name}` is {to}, but upstream {side} `{from}` is {from_ty}"
                            ),
                        ));
                    }
                }
            }
            Some(None) => {}
        }
    }
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
