//! The JSON Schema of definition files, generated from the Rust types.
//!
//! Draft-07, because it is what every editor (yaml-language-server), linter
//! and pre-commit hook understands. The top level dispatches on `kind` with
//! `if`/`then`, so a validator reports errors against the right kind instead
//! of "matches none of oneOf". Where the schema needs a `oneOf`, it carries an
//! `errorMessage` (the ajv-errors convention) that weir shows instead of the
//! generic text; other validators ignore the unknown keyword.
//!
//! A task's body is its task type's (`crate::task`, above this module):
//! [`generate`] is handed the bodies ([`TaskBodies`]) and places each at
//! `spec.<type>` of the Task schema, with the `oneOf` that asks for exactly
//! one. `schema/weir.schema.json` in the repository must equal the output
//! for the built-in types; a test fails otherwise.

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Value, json};

use super::{API_VERSION, LaunchPlanDocument, TaskDocument, WorkflowDocument};

/// Where the committed schema lives, relative to the repository root.
pub const SCHEMA_PATH: &str = "schema/weir.schema.json";

/// The bodies a task may have: each type's key and the schema of its body,
/// in the order the schema lists them.
pub trait TaskBodies {
    /// Adds what each body's schema refers to into `generator`'s definitions.
    fn body_schemas(&self, generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)>;
}

/// Generates the schema for one definition document.
pub fn generate(bodies: &dyn TaskBodies) -> Value {
    let mut generator = SchemaSettings::draft07().into_generator();
    let mut branches = Vec::new();
    for (kind, schema) in [
        ("Task", generator.subschema_for::<TaskDocument>()),
        ("Workflow", generator.subschema_for::<WorkflowDocument>()),
        (
            "LaunchPlan",
            generator.subschema_for::<LaunchPlanDocument>(),
        ),
    ] {
        branches.push(json!({
            "if": { "properties": { "kind": { "const": kind } }, "required": ["kind"] },
            "then": schema.to_value(),
        }));
    }
    let bodies = bodies.body_schemas(&mut generator);
    let mut definitions = generator.take_definitions(true);
    if let Some(Value::Object(task)) = definitions.get_mut("TaskSpec") {
        add_bodies(task, bodies);
    }
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://weir.dev/schema/v1alpha1/weir.schema.json",
        "title": "weir definition",
        "description": "One weir document: a Task, a Workflow or a LaunchPlan (apiVersion weir.dev/v1alpha1).",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": { "const": API_VERSION },
            "kind": { "enum": ["Task", "Workflow", "LaunchPlan"] },
        },
        "allOf": branches,
        "definitions": definitions,
    })
}

/// Places each body at `properties.<type>` of the Task spec's schema, and
/// asks for exactly one of them.
fn add_bodies(task: &mut serde_json::Map<String, Value>, bodies: Vec<(&'static str, Schema)>) {
    let names: Vec<String> = bodies.iter().map(|(name, _)| format!("`{name}`")).collect();
    let listed = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    };
    task.insert(
        "oneOf".to_owned(),
        bodies
            .iter()
            .map(|(name, _)| json!({ "required": [name] }))
            .collect(),
    );
    task.insert(
        "errorMessage".to_owned(),
        Value::String(format!("a task needs exactly one body: {listed}")),
    );
    if let Some(Value::Object(properties)) = task.get_mut("properties") {
        for (name, schema) in bodies {
            properties.insert(name.to_owned(), schema.to_value());
        }
    }
}

/// The schema as committed: pretty JSON with a trailing newline.
pub fn generate_text(bodies: &dyn TaskBodies) -> String {
    let mut text =
        serde_json::to_string_pretty(&generate(bodies)).expect("a Value always serializes");
    text.push('\n');
    text
}
