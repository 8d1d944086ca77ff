//! Interfaces: the typed inputs and outputs of tasks and workflows.

use super::{Code, Diagnostic, at, at_key};
use crate::spec::types::TypeExpr;
use crate::spec::yaml::PathStep;
use crate::spec::{Ports, SmallMap};
use crate::validate::Entity;

/// One declared input. `ty` is `None` when the declaration itself is
/// invalid (already reported): checks that need it are skipped, so one
/// mistake gives one error, not a cascade.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub ty: Option<TypeExpr>,
    pub required: bool,
}

/// What a task or a workflow takes and produces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interface {
    pub inputs: SmallMap<Param>,
    pub outputs: SmallMap<Option<TypeExpr>>,
    /// A workflow's outputs declared `optional` (null when a `when:`
    /// skipped their node): a node calling it may be skipped in part.
    pub optional_outputs: std::collections::BTreeSet<String>,
    /// Why a `map:` cannot run this workflow once per item (it holds an
    /// approval gate or a map node, itself or in a sub-workflow it calls).
    pub unmappable: Option<String>,
}

impl Interface {
    pub fn input_names(&self) -> Vec<&str> {
        self.inputs.keys().map(String::as_str).collect()
    }

    pub fn output_names(&self) -> Vec<&str> {
        self.outputs.keys().map(String::as_str).collect()
    }
}

/// `inputs` or `outputs` of a spec.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inputs,
    Outputs,
}

impl Direction {
    fn key(self) -> &'static str {
        match self {
            Direction::Inputs => "inputs",
            Direction::Outputs => "outputs",
        }
    }
}

fn valid_port_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a map of port declarations and returns their types.
pub fn check_ports(
    entity: &Entity,
    ports: &Ports,
    direction: Direction,
    found: &mut Vec<Diagnostic>,
) -> SmallMap<Param> {
    let mut out = SmallMap::with_capacity(ports.len());
    for (name, port) in ports {
        let base = [
            PathStep::Key("spec"),
            PathStep::Key(direction.key()),
            PathStep::Key(name),
        ];
        if !valid_port_name(name) {
            found.push(
                at_key(entity, Code::InvalidPortName, &base, format!("`{name}` is not a valid {} name", &direction.key()[..direction.key().len() - 1]))
                    .with_help("names start with a letter or `_` and contain only letters, digits and `_` (they become environment variables WEIR_INPUT_<NAME>)"),
            );
        }
        let ty = match (&port.type_name, &port.enum_values) {
            (Some(text), _) => match TypeExpr::parse(text) {
                Ok(t) => Some(t),
                Err(e) => {
                    let path = [
                        base[0].clone(),
                        base[1].clone(),
                        base[2].clone(),
                        PathStep::Key("type"),
                    ];
                    found.push(at(entity, Code::InvalidType, &path, e.to_string()).with_help(
                        "types: string, int, float, bool, datetime, duration, file, directory, json, list<T>, map<T>, or `enum: [a, b]`",
                    ));
                    None
                }
            },
            (None, Some(values)) => {
                let mut seen = std::collections::HashSet::new();
                for (i, v) in values.iter().enumerate() {
                    if !seen.insert(v) {
                        let path = [
                            base[0].clone(),
                            base[1].clone(),
                            base[2].clone(),
                            PathStep::Key("enum"),
                            PathStep::Index(i),
                        ];
                        found.push(at(
                            entity,
                            Code::InvalidType,
                            &path,
                            format!("enum value `{v}` is listed twice"),
                        ));
                    }
                }
                Some(TypeExpr::Enum(values.clone()))
            }
            (None, None) => None,
        };
        if let (Some(default), Some(t)) = (&port.default, &ty) {
            let path = [
                base[0].clone(),
                base[1].clone(),
                base[2].clone(),
                PathStep::Key("default"),
            ];
            if direction == Direction::Outputs {
                found.push(at_key(
                    entity,
                    Code::InvalidDefault,
                    &path,
                    format!("output `{name}` cannot have a default"),
                ));
            } else if let Err(e) = t.accepts_literal(default) {
                found.push(at(
                    entity,
                    Code::InvalidDefault,
                    &path,
                    format!("default of `{name}` does not fit its type {t}: {e}"),
                ));
            }
        }
        out.insert(
            name.clone(),
            Param {
                ty,
                required: port.default.is_none(),
            },
        );
    }
    out
}
