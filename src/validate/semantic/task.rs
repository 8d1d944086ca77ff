//! Checks of one task: its interface, durations, quantities and cache
//! settings here; its body by its task type (templates in it, a notebook
//! that must exist…), whose findings become diagnostics here, and the
//! repository files it names (they must exist).

use super::ports::{Direction, Interface, check_ports};
use super::{Code, Diagnostic, at, suggestion};
use crate::spec::duration::Field;
use crate::spec::sidecar::RESERVED_NAMES;
use crate::spec::yaml::{PathStep, to_pointer};
use crate::spec::{DurationText, Sidecar, TaskSpec, duration, quantity};
use crate::task::{
    ErasedTaskType, Finding, NOTEBOOK_FILE, Notebook, Rule, TaskType as _, TaskTypes, TaskView,
    repository_path,
};
use std::collections::BTreeSet;

use crate::validate::{Entity, is_definition};

use PathStep::{Index, Key};

pub fn check(
    entity: &Entity,
    spec: &TaskSpec,
    other_paths: &BTreeSet<String>,
    task_types: &TaskTypes,
) -> (Interface, Vec<Diagnostic>) {
    let mut found = Vec::new();
    let inputs = check_ports(entity, &spec.inputs, Direction::Inputs, &mut found);
    let outputs = check_ports(entity, &spec.outputs, Direction::Outputs, &mut found)
        .into_iter()
        .map(|(name, p)| (name, p.ty))
        .collect();
    let iface = Interface {
        inputs,
        outputs,
        optional_outputs: Default::default(),
        unmappable: None,
    };

    if let Some(t) = &spec.timeout {
        check_duration(
            entity,
            Field::Timeout,
            t,
            &[Key("spec"), Key("timeout")],
            &mut found,
        );
    }
    check_duration(
        entity,
        Field::Backoff,
        &spec.retries.backoff,
        &[Key("spec"), Key("retries"), Key("backoff")],
        &mut found,
    );
    for (section, map) in [
        ("requests", &spec.resources.requests),
        ("limits", &spec.resources.limits),
    ] {
        for (name, q) in map {
            if let Err(e) = quantity::parse(&q.0) {
                found.push(at(
                    entity,
                    Code::InvalidQuantity,
                    &[Key("spec"), Key("resources"), Key(section), Key(name)],
                    e.to_string(),
                ));
            }
        }
    }
    for (i, name) in spec.cache.ignore_inputs.iter().enumerate() {
        if !iface.inputs.contains_key(name) {
            found.push(
                at(
                    entity,
                    Code::UnknownInput,
                    &[Key("spec"), Key("cache"), Key("ignoreInputs"), Index(i)],
                    format!(
                        "cache.ignoreInputs names `{name}`, which is not an input of this task"
                    ),
                )
                .with_help(suggestion(name, &iface.input_names(), "input")),
            );
        }
    }
    check_sidecars(entity, &spec.sidecars, &mut found);
    if let Some(task_type) = task_types.get(&spec.body.type_name) {
        let view = TaskView {
            inputs: iface
                .inputs
                .iter()
                .map(|(name, p)| (name.as_str(), p.ty.as_ref()))
                .collect(),
            outputs: iface
                .outputs
                .iter()
                .map(|(name, ty)| (name.as_str(), ty.as_ref()))
                .collect(),
            paths: other_paths,
        };
        let body = [Key("spec"), Key(&spec.body.type_name)];
        for finding in task_type.check(&spec.body.value, &view) {
            found.push(diagnostic(entity, &iface, &body, finding));
        }
        for finding in missing_files(&spec.body.value, task_type, other_paths) {
            found.push(diagnostic(entity, &iface, &body, finding));
        }
    }
    (iface, found)
}

/// The repository files a body names that are not in the source (W039),
/// each at the body's field holding its path. A notebook task's notebook
/// (its key [`NOTEBOOK_FILE`]) is checked by its own type, which reports
/// W031; another type's file of the same key is checked here.
fn missing_files(
    body: &serde_json::Value,
    task_type: &dyn ErasedTaskType,
    other_paths: &BTreeSet<String>,
) -> Vec<Finding> {
    task_type
        .repository_files(body)
        .into_iter()
        .filter(|(key, path)| {
            let own_check = task_type.name() == Notebook::NAME && *key == NOTEBOOK_FILE;
            !own_check && !other_paths.contains(repository_path(path))
        })
        .map(|(key, path)| {
            let at = pointer_to(body, key, &path);
            if is_definition(&path) {
                // It may well exist: it was read as definitions.
                return Finding::new(
                    Rule::MissingFile,
                    at,
                    format!("the `{key}` file `{path}` is a definition file, not a file a task runs"),
                )
                .with_help(
                    "every `.yaml` and `.yml` file of the source is read as weir definitions: give the task's file another extension",
                );
            }
            Finding::new(
                Rule::MissingFile,
                at,
                format!("the `{key}` file `{path}` does not exist in the source"),
            )
            .with_help(
                "the path is relative to the source's root folder (the one given to `weir validate`)",
            )
        })
        .collect()
}

/// Where `path` is written in `body`: the field named `key` when it holds
/// it, else the first string equal to it, else the body itself.
fn pointer_to(body: &serde_json::Value, key: &str, path: &str) -> String {
    fn find(value: &serde_json::Value, path: &str, at: &str) -> Option<String> {
        match value {
            serde_json::Value::String(s) if s == path => Some(at.to_owned()),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                let k = k.replace('~', "~0").replace('/', "~1");
                find(v, path, &format!("{at}/{k}"))
            }),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| find(v, path, &format!("{at}/{i}"))),
            _ => None,
        }
    }
    if body.get(key).and_then(serde_json::Value::as_str) == Some(path) {
        return format!("/{}", key.replace('~', "~0").replace('/', "~1"));
    }
    find(body, path, "").unwrap_or_default()
}

/// Sidecars (W042): names unique and none of the task's own containers'
/// on Kubernetes; no `{{ … }}`, which a sidecar would see as literal text
/// (it gets no inputs); a readiness timeout that is a duration in range.
fn check_sidecars(entity: &Entity, sidecars: &[Sidecar], found: &mut Vec<Diagnostic>) {
    let mut seen = BTreeSet::new();
    for (i, sidecar) in sidecars.iter().enumerate() {
        fn at_sidecar<'a>(i: usize, rest: &[PathStep<'a>]) -> Vec<PathStep<'a>> {
            let mut path = vec![Key("spec"), Key("sidecars"), Index(i)];
            path.extend_from_slice(rest);
            path
        }
        let name = sidecar.name.as_str();
        if RESERVED_NAMES.contains(&name) {
            found.push(
                at(
                    entity,
                    Code::InvalidSidecar,
                    &at_sidecar(i, &[Key("name")]),
                    format!("sidecar name `{name}` is reserved"),
                )
                .with_help(format!(
                    "on Kubernetes the task's pod already has containers named {}",
                    RESERVED_NAMES.map(|n| format!("`{n}`")).join(" and ")
                )),
            );
        } else if !seen.insert(name) {
            found.push(
                at(
                    entity,
                    Code::InvalidSidecar,
                    &at_sidecar(i, &[Key("name")]),
                    format!("sidecar `{name}` is declared twice"),
                )
                .with_help("each sidecar of a task needs a name of its own"),
            );
        }
        let texts = sidecar
            .command
            .iter()
            .enumerate()
            .map(|(j, t)| (Key("command"), Some(Index(j)), t))
            .chain(
                sidecar
                    .args
                    .iter()
                    .enumerate()
                    .map(|(j, t)| (Key("args"), Some(Index(j)), t)),
            )
            .chain(
                sidecar
                    .env
                    .iter()
                    .map(|(k, t)| (Key("env"), Some(Key(k.as_str())), t)),
            );
        for (field, item, text) in texts {
            if text.contains("{{") {
                let mut path = at_sidecar(i, &[field]);
                path.extend(item);
                found.push(
                    at(
                        entity,
                        Code::InvalidSidecar,
                        &path,
                        format!("sidecar `{name}` would see `{{{{ … }}}}` as literal text"),
                    )
                    .with_help(
                        "a sidecar gets no inputs: its command, args and env are used as written",
                    ),
                );
            }
        }
        if let Some(readiness) = &sidecar.readiness {
            check_duration(
                entity,
                Field::Readiness,
                &readiness.timeout,
                &at_sidecar(i, &[Key("readiness"), Key("timeout")]),
                found,
            );
        }
    }
}

/// `written` parsed as a duration (W024) within `field`'s maximum (W035).
/// Returns the duration when it did both.
pub(super) fn check_duration(
    entity: &Entity,
    field: Field,
    written: &DurationText,
    path: &[PathStep<'_>],
    found: &mut Vec<Diagnostic>,
) -> Option<std::time::Duration> {
    let value = match written.parsed() {
        Ok(value) => value,
        Err(e) => {
            found.push(at(entity, Code::InvalidDuration, path, e.to_string()));
            return None;
        }
    };
    match field.check(written.as_str(), value) {
        Ok(()) => Some(value),
        Err(e) => {
            found.push(
                at(entity, Code::DurationOutOfRange, path, e.to_string()).with_help(format!(
                    "weir bounds every duration so that the instants it computes stay on the calendar; use at most {}",
                    duration::format(field.max())
                )),
            );
            None
        }
    }
}

/// A task type's finding, as a diagnostic at its place inside the body
/// (`body` is the body's path in the document).
fn diagnostic(
    entity: &Entity,
    iface: &Interface,
    body: &[PathStep<'_>],
    finding: Finding,
) -> Diagnostic {
    let code = match &finding.rule {
        Rule::InvalidTemplate => Code::InvalidTemplate,
        Rule::UnknownInput { .. } => Code::UnknownInput,
        Rule::InputAsCode => Code::InputAsCode,
        Rule::MissingNotebook => Code::MissingNotebook,
        Rule::MissingFile => Code::MissingFile,
        Rule::InvalidBody => Code::InvalidTaskBody,
        Rule::ParameterNotScalar => Code::ParameterNotScalar,
        Rule::ParameterInQuotes => Code::ParameterInQuotes,
        Rule::UnfillableOutput => Code::UnfillableOutput,
    };
    let base = if finding.in_spec {
        &body[..body.len().saturating_sub(1)]
    } else {
        body
    };
    let pointer = format!("{}{}", to_pointer(base), finding.pointer);
    let mut d = Diagnostic::at_site(
        code,
        &entity.file,
        entity.doc,
        pointer,
        false,
        finding.message,
    );
    if let Some((text, nth)) = finding.within {
        d = d.within(text, nth);
    }
    let help = match finding.rule {
        Rule::UnknownInput { name } => Some(suggestion(&name, &iface.input_names(), "input")),
        _ => finding.help,
    };
    match help {
        Some(help) => d.with_help(help),
        None => d,
    }
}
