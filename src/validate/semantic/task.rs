//! Checks of one task: its interface, durations, quantities, templates in
//! its body, cache settings, and that a notebook exists in the tree.

use super::ports::{Direction, Interface, check_ports};
use super::{Code, Diagnostic, at, suggestion};
use crate::spec::template::{self, Reference};
use crate::spec::yaml::PathStep;
use crate::spec::{TaskSpec, duration, quantity};
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
        check_duration(entity, t, &[Key("spec"), Key("timeout")], &mut found);
    }
    check_duration(
        entity,
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
                    e,
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
    if let Some(script) = &spec.script {
        check_template(
            entity,
            &iface,
            &script.source,
            &[Key("spec"), Key("script"), Key("source")],
            &mut found,
        );
    }
    if let Some(container) = &spec.container {
        for (field, list) in [("command", &container.command), ("args", &container.args)] {
            for (i, arg) in list.iter().enumerate() {
                check_template(
                    entity,
                    &iface,
                    arg,
                    &[Key("spec"), Key("container"), Key(field), Index(i)],
                    &mut found,
                );
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
    if let Some(notebook) = &spec.notebook {
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

pub(super) fn check_duration(
    entity: &Entity,
    text: &str,
    path: &[PathStep<'_>],
    found: &mut Vec<Diagnostic>,
) {
    if let Err(e) = duration::parse(text) {
        found.push(at(entity, Code::InvalidDuration, path, e.to_string()));
    }
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
            found.push(at(entity, Code::InvalidTemplate, path, e));
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
