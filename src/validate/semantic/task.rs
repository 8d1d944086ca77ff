//! Checks of one task: its interface, durations, quantities, templates in
//! its body, cache settings, and that a notebook exists in the tree.

use super::ports::{Direction, Interface, check_ports};
use super::{Code, Diagnostic, at, suggestion};
use crate::spec::code::{self, Language};
use crate::spec::duration::Field;
use crate::spec::template::{self, Reference};
use crate::spec::yaml::PathStep;
use crate::spec::{DurationText, TaskSpec, duration, quantity};
use crate::task::{Container, Notebook, Script, body_of};
use std::collections::BTreeSet;

use crate::validate::Entity;

use PathStep::{Index, Key};

pub fn check(
    entity: &Entity,
    spec: &TaskSpec,
    other_paths: &BTreeSet<String>,
) -> (Interface, Vec<Diagnostic>) {
    let mut found = Vec::new();
    let inputs = check_ports(entity, &spec.inputs, Direction::Inputs, &mut found);
    let outputs = check_ports(entity, &spec.outputs, Direction::Outputs, &mut found)
        .into_iter()
        .map(|(name, p)| (name, p.ty))
        .collect();
    let iface = Interface { inputs, outputs };

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
    if let Some(script) = body_of::<Script>(spec) {
        let path = [Key("spec"), Key("script"), Key("source")];
        check_template(entity, &iface, &script.source, &path, &mut found);
        let reader = if script.interpreter.contains("python") {
            Language::Python
        } else {
            Language::Shell
        };
        check_inputs_in_code(entity, &iface, &script.source, &path, reader, &mut found);
    }
    if let Some(container) = body_of::<Container>(spec) {
        let argv: Vec<&String> = container.command.iter().chain(&container.args).collect();
        let code = code::code_argument(&argv);
        for (field, list) in [("command", &container.command), ("args", &container.args)] {
            let offset = if field == "args" {
                container.command.len()
            } else {
                0
            };
            for (i, arg) in list.iter().enumerate() {
                let path = [Key("spec"), Key("container"), Key(field), Index(i)];
                check_template(entity, &iface, arg, &path, &mut found);
                if let Some((_, language)) = code.filter(|(at, _)| *at == offset + i) {
                    check_inputs_in_code(entity, &iface, arg, &path, language, &mut found);
                }
            }
        }
        for (name, value) in &container.env {
            check_template(
                entity,
                &iface,
                value,
                &[Key("spec"), Key("container"), Key("env"), Key(name)],
                &mut found,
            );
        }
    }
    if let Some(notebook) = body_of::<Notebook>(spec) {
        let path = notebook.path.trim_start_matches("./");
        if !other_paths.contains(path) {
            found.push(
                at(entity, Code::MissingNotebook, &[Key("spec"), Key("notebook"), Key("path")],
                    format!("notebook `{}` does not exist in the source", notebook.path))
                .with_help("the path is relative to the source's root folder (the one given to `weir validate`)"),
            );
        }
    }
    (iface, found)
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

/// `{{ inputs.x }}` written into code (a script's source, or the argument
/// [`code::code_argument`] finds: `sh -c`'s script, `python -c`'s…) is refused unless `x`'s type cannot carry code (int,
/// float, bool, enum): a string's value would run as code (W036). Each
/// placeholder is reported at its own line and column.
fn check_inputs_in_code(
    entity: &Entity,
    iface: &Interface,
    text: &str,
    path: &[PathStep<'_>],
    reader: Language,
    found: &mut Vec<Diagnostic>,
) {
    let mut seen: Vec<&str> = Vec::new();
    for (placeholder, name) in input_placeholders(text) {
        let nth = seen.iter().filter(|p| **p == placeholder).count();
        seen.push(placeholder);
        let Some(ty) = iface.inputs.get(name).and_then(|p| p.ty.as_ref()) else {
            continue; // unknown input or invalid type: reported already
        };
        if ty.is_code_safe() {
            continue;
        }
        let form = reader.reads(&code::input_variable_name(name));
        found.push(
            at(
                entity,
                Code::InputAsCode,
                path,
                format!(
                    "`{placeholder}` writes the `{ty}` input `{name}` into code, where its value would run as code"
                ),
            )
            .within(placeholder, nth)
            .with_help(format!(
                "read it from the environment: {form} (only int, float, bool and enum inputs may be written into code)"
            )),
        );
    }
}

/// Each `{{ inputs.NAME }}` of `text`, as written, with its name.
fn input_placeholders(text: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(start) = text[rest..].find("{{").map(|i| rest + i) {
        let Some(end) = text[start + 2..].find("}}").map(|i| start + 2 + i) else {
            break;
        };
        let placeholder = &text[start..end + 2];
        if let Some(name) = text[start + 2..end].trim().strip_prefix("inputs.") {
            found.push((placeholder, name));
        }
        rest = end + 2;
    }
    found
}

/// Templates in a task body may reference the task's own inputs only.
fn check_template(
    entity: &Entity,
    iface: &Interface,
    text: &str,
    path: &[PathStep<'_>],
    found: &mut Vec<Diagnostic>,
) {
    let parsed = match template::parse(text) {
        Ok(t) => t,
        Err(e) => {
            found.push(at(entity, Code::InvalidTemplate, path, e.to_string()));
            return;
        }
    };
    for reference in parsed.references() {
        match reference {
            Reference::Input(name) if !iface.inputs.contains_key(name) => found.push(
                at(entity, Code::UnknownInput, path, format!("`{{{{ inputs.{name} }}}}` references an input this task does not declare"))
                    .with_help(suggestion(name, &iface.input_names(), "input")),
            ),
            Reference::Input(_) => {}
            Reference::NodeOutput { .. } => found.push(
                at(entity, Code::InvalidTemplate, path, format!("a task cannot reference `{reference}`"))
                    .with_help("task bodies see only their own inputs; bind node outputs to task inputs in the workflow"),
            ),
        }
    }
}
