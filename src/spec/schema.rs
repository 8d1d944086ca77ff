//! The JSON Schema of definition files, generated from the Rust types.
//!
//! Draft-07, because it is what every editor (yaml-language-server), linter
//! and pre-commit hook understands. The top level dispatches on `kind` with
//! `if`/`then`, so a validator reports errors against the right kind instead
//! of "matches none of oneOf". Where the schema needs a `oneOf`, it carries an
//! `errorMessage` (the ajv-errors convention) that weir shows instead of the
//! generic text; other validators ignore the unknown keyword.
//!
//! `schema/weir.schema.json` in the repository must equal [`generate`]'s
//! output; a test fails otherwise.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::{API_VERSION, LaunchPlanDocument, TaskDocument, WorkflowDocument};

/// Where the committed schema lives, relative to the repository root.
pub const SCHEMA_PATH: &str = "schema/weir.schema.json";

/// Generates the schema for one definition document.
pub fn generate() -> Value {
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
    let definitions = generator.take_definitions(true);
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

/// The schema as committed: pretty JSON with a trailing newline.
pub fn generate_text() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).expect("a Value always serializes");
    text.push('\n');
    text
}
