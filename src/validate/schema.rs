//! Layer 3: the JSON Schema, with each error mapped back to YAML positions.
//!
//! Documents are checked against the *committed* `schema/weir.schema.json`
//! (the same file editors and pre-commit hooks use; a test keeps it equal to
//! the generated one), compiled once. jsonschema reports an instance path
//! such as `/spec/nodes/2/task`; [`YamlNode::locate`] turns it into the line
//! and column of that value, or of the key for unknown and missing fields.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::diagnostic::{Code, Diagnostic};
use crate::spec::yaml::pointer_segments;
use crate::spec::{Definition, EntityRef, Kind};

const SCHEMA_TEXT: &str = include_str!("../../schema/weir.schema.json");

struct CompiledSchema {
    raw: Value,
    validator: jsonschema::Validator,
}

fn compiled() -> &'static CompiledSchema {
    static SCHEMA: OnceLock<CompiledSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let raw: Value =
            serde_json::from_str(SCHEMA_TEXT).expect("the committed schema is valid JSON (tested)");
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .build(&raw)
            .expect("the committed schema compiles (tested)");
        CompiledSchema { raw, validator }
    })
}

/// Checks one document and reads it into its typed form.
pub fn check_document(
    file: &str,
    doc: usize,
    json: Value,
    default_project: &str,
) -> Result<(EntityRef, Definition), Vec<Diagnostic>> {
    let schema = compiled();
    let mut found: Vec<Diagnostic> = schema
        .validator
        .iter_errors(&json)
        .flat_map(|e| map_error(file, doc, &schema.raw, &e))
        .collect();
    found.dedup();
    if !found.is_empty() {
        return Err(found);
    }
    let kind = json
        .get("kind")
        .and_then(Value::as_str)
        .and_then(Kind::parse)
        .expect("the schema only admits the three kinds");
    let definition = Definition::from_json(kind, json).map_err(|e| {
        vec![Diagnostic::at_site(
            Code::SchemaViolation,
            file,
            doc,
            "",
            false,
            format!("cannot read this {kind}: {e}"),
        )]
    })?;
    let meta = definition.metadata();
    let project = meta.project.as_deref().unwrap_or(default_project);
    Ok((EntityRef::new(project, kind, meta.name.clone()), definition))
}

fn map_error(
    file: &str,
    doc: usize,
    schema: &Value,
    error: &jsonschema::ValidationError<'_>,
) -> Vec<Diagnostic> {
    let pointer = error.instance_path().as_str();
    let here =
        |code: Code, message: String| Diagnostic::at_site(code, file, doc, pointer, false, message);
    let parent_schema = parent_of(schema, error.schema_path().as_str());
    let field = describe_path(pointer);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed: Vec<&str> = parent_schema
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object)
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            unexpected
                .iter()
                .map(|name| {
                    let key = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
                    let mut d = Diagnostic::at_site(
                        Code::UnknownField,
                        file,
                        doc,
                        key,
                        true,
                        format!("unknown field `{name}` in {field}"),
                    );
                    let help = match closest(name, &allowed) {
                        Some(best) => format!(
                            "did you mean `{best}`? expected one of: {}",
                            allowed.join(", ")
                        ),
                        None => format!("expected one of: {}", allowed.join(", ")),
                    };
                    d = d.with_help(help);
                    d
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or("?");
            vec![here(
                Code::SchemaViolation,
                format!("missing required field `{name}` in {field}"),
            )]
        }
        ValidationErrorKind::Pattern { .. }
            if pointer == "/metadata/name" || pointer == "/metadata/project" =>
        {
            vec![
                here(Code::InvalidName, format!("{} is not a valid {field}", error.instance()),
                )
                .with_help(
                    "names are DNS-1123 labels: lower-case letters, digits and `-`, starting and ending with a letter or digit",
                ),
            ]
        }
        ValidationErrorKind::MaxLength { .. } if pointer.starts_with("/metadata/") => {
            vec![
                here(
                    Code::InvalidName,
                    format!("{field} is longer than 63 characters"),
                )
                .with_help("names are DNS-1123 labels of at most 63 characters"),
            ]
        }
        ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::OneOfMultipleValid { .. } => {
            let message = parent_schema
                .and_then(|s| s.get("errorMessage"))
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            vec![here(
                Code::SchemaViolation,
                format!("{message} (in {field})"),
            )]
        }
        _ => {
            let mut message = error.to_string();
            if message.len() > 300 {
                message.truncate(300);
                message.push('…');
            }
            vec![here(Code::SchemaViolation, format!("{field}: {message}"))]
        }
    }
}

/// The schema object that holds the keyword at `schema_path`.
fn parent_of<'a>(schema: &'a Value, schema_path: &str) -> Option<&'a Value> {
    let (parent, _) = schema_path.rsplit_once('/')?;
    if parent.is_empty() {
        return Some(schema);
    }
    schema.pointer(parent)
}

/// `/spec/nodes/2/task` → "`spec.nodes[2].task`".
fn describe_path(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the document".to_owned();
    }
    let mut out = String::new();
    for segment in pointer_segments(pointer) {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    format!("`{out}`")
}

/// The allowed name closest to a misspelt one, if it is close enough.
pub fn closest<'a>(name: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(name, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 3))
        .min()
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(closest("retires", &["retries", "timeout"]), Some("retries"));
        assert_eq!(closest("zzz", &["retries", "timeout"]), None);
    }

    #[test]
    fn committed_schema_compiles() {
        let _ = compiled();
    }
}
