//! Layer 3: the JSON Schema, with each error mapped back to YAML positions.
//!
//! Documents are checked against the *committed* `schema/weir.schema.json`
//! (the same file editors and pre-commit hooks use; a test keeps it equal to
//! the generated one), compiled once; a run that knows other task types
//! than the built-in ones generates the schema of its bodies instead. jsonschema reports an instance path
//! such as `/spec/nodes/2/task`; [`YamlNode::locate`] turns it into the line
//! and column of that value, or of the key for unknown and missing fields.

use std::sync::{Arc, OnceLock};

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::Options;
use super::diagnostic::{Code, Diagnostic};
use crate::spec::yaml::pointer_segments;
use crate::spec::{Definition, EntityRef, Kind};
use crate::task::TaskTypes;

const SCHEMA_TEXT: &str = include_str!("../../schema/weir.schema.json");

/// A schema ready to check documents with.
pub struct CompiledSchema {
    raw: Value,
    validator: jsonschema::Validator,
}

impl CompiledSchema {
    fn new(raw: Value) -> CompiledSchema {
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .build(&raw)
            .expect("the generated schema compiles (tested for the committed one)");
        CompiledSchema { raw, validator }
    }
}

/// The schema documents are checked against when a task may have the
/// bodies of `types`: the committed one for the built-in types.
pub fn compiled(types: &TaskTypes) -> Arc<CompiledSchema> {
    static COMMITTED: OnceLock<Arc<CompiledSchema>> = OnceLock::new();
    if !types.is_builtin() {
        return Arc::new(CompiledSchema::new(types.schema()));
    }
    COMMITTED
        .get_or_init(|| {
            let raw: Value = serde_json::from_str(SCHEMA_TEXT)
                .expect("the committed schema is valid JSON (tested)");
            Arc::new(CompiledSchema::new(raw))
        })
        .clone()
}

/// Checks one document against `schema` and reads it into its typed form,
/// a task's body with its defaults filled in by its type.
pub fn check_document(
    file: &str,
    doc: usize,
    json: Value,
    options: &Options,
    schema: &CompiledSchema,
) -> Result<(EntityRef, Definition), Vec<Diagnostic>> {
    // Most documents are valid: `is_valid` stops at nothing and builds no
    // error (no paths, no messages); only a document that fails is walked
    // again to collect every error.
    if !schema.validator.is_valid(&json) {
        let mut found: Vec<Diagnostic> = schema
            .validator
            .iter_errors(&json)
            .flat_map(|e| map_error(file, doc, &schema.raw, &e))
            .collect();
        found.dedup();
        if !found.is_empty() {
            return Err(found);
        }
    }
    let kind = json
        .get("kind")
        .and_then(Value::as_str)
        .and_then(Kind::parse)
        .expect("the schema only admits the three kinds");
    let mut definition = Definition::from_json(kind, json).map_err(|e| {
        vec![Diagnostic::at_site(
            Code::SchemaViolation,
            file,
            doc,
            "",
            false,
            format!("cannot read this {kind}: {e}"),
        )]
    })?;
    options.task_types.canonicalize(&mut definition);
    let meta = definition.metadata();
    let project = meta.project.as_deref().unwrap_or(&options.default_project);
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
        ValidationErrorKind::Pattern { pattern } => {
            // A regular expression says little to people: the field's
            // description says what is expected.
            let mut d = here(
                Code::SchemaViolation,
                format!(
                    "{field}: {} does not have the expected form (`{pattern}`)",
                    describe_value(error.instance())
                ),
            );
            if let Some(help) = parent_schema.and_then(|s| field_help(s, error.instance())) {
                d = d.with_help(format!("expected: {help}"));
            }
            vec![d]
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
        ValidationErrorKind::Type { .. } => {
            let expected = parent_schema.map_or_else(|| "another type".to_owned(), expected_type);
            let mut d = here(
                Code::SchemaViolation,
                format!(
                    "{field}: expected {expected}, found {}",
                    describe_value(error.instance())
                ),
            );
            if let Some(help) = parent_schema.and_then(|s| field_help(s, error.instance())) {
                d = d.with_help(help);
            }
            vec![d]
        }
        ValidationErrorKind::AnyOf { context } => {
            // `anyOf: [{$ref: X}, {type: null}]` is how an optional field of
            // type X is written: report what is wrong inside X when the
            // value is of X's type, else say what X is, rather than "not
            // valid under any of the schemas".
            let branches = parent_schema
                .and_then(|s| s.get("anyOf"))
                .and_then(Value::as_array);
            let target = branches.and_then(|b| {
                let mut real = b
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.get("type").and_then(Value::as_str) != Some("null"));
                match (real.next(), real.next()) {
                    (Some((i, one)), None) => Some((i, resolve(schema, one))),
                    _ => None,
                }
            });
            if let Some((i, target)) = target
                && has_type_of(target, error.instance())
                && let Some(inner) = context.get(i).filter(|errors| !errors.is_empty())
            {
                return inner
                    .iter()
                    .flat_map(|e| map_error(file, doc, schema, e))
                    .collect();
            }
            let Some((_, target)) = target else {
                return vec![here(
                    Code::SchemaViolation,
                    format!("{field}: {}", short(error.to_string())),
                )];
            };
            let mut d = here(
                Code::SchemaViolation,
                format!(
                    "{field}: expected {}, found {}",
                    expected_type(target),
                    describe_value(error.instance())
                ),
            );
            if let Some(help) = field_help(target, error.instance()) {
                d = d.with_help(help);
            }
            vec![d]
        }
        ValidationErrorKind::OneOfNotValid { .. }
            if let (Some(members), Some(text)) = (
                parent_schema.and_then(const_members),
                error.instance().as_str(),
            ) =>
        {
            // An enum whose members are documented (`oneOf` of `const`s):
            // say which names are, and the closest.
            let help = match closest(text, &members) {
                Some(best) => format!(
                    "did you mean `{best}`? expected one of: {}",
                    members.join(", ")
                ),
                None => format!("expected one of: {}", members.join(", ")),
            };
            vec![
                here(
                    Code::SchemaViolation,
                    format!("{field}: `{text}` is not one of its values"),
                )
                .with_help(help),
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
        _ => vec![here(
            Code::SchemaViolation,
            format!("{field}: {}", short(error.to_string())),
        )],
    }
}

/// The values of an enum written as `oneOf` of string `const`s (as
/// schemars writes an enum whose members have docs), if `schema` is one.
fn const_members(schema: &Value) -> Option<Vec<&str>> {
    schema
        .get("oneOf")?
        .as_array()?
        .iter()
        .map(|branch| branch.get("const")?.as_str())
        .collect()
}

/// A validator's message, cut to 300 bytes.
fn short(mut message: String) -> String {
    if message.len() > 300 {
        let mut end = 300;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// Whether `value` is of the (first) type `schema` names.
fn has_type_of(schema: &Value, value: &Value) -> bool {
    let wanted = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        _ => return false,
    };
    matches!(
        (wanted, value),
        ("object", Value::Object(_))
            | ("array", Value::Array(_))
            | ("string", Value::String(_))
            | ("boolean", Value::Bool(_))
            | ("integer" | "number", Value::Number(_))
    )
}

/// `schema`, or the definition its `$ref` names.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
        .unwrap_or(schema)
}

/// Whether a field holds a duration: its description's example (in
/// backquotes, as every duration field's has) is one.
fn is_duration(schema: &Value) -> bool {
    let Some(description) = schema.get("description").and_then(Value::as_str) else {
        return false;
    };
    description
        .split('`')
        .skip(1)
        .step_by(2)
        .any(|example| crate::spec::duration::parse(example).is_ok())
}

/// What a schema admits, for people: "a string", "a duration such as
/// `30s`, `5m` or `1h`", "a mapping with `path`".
fn expected_type(schema: &Value) -> String {
    if is_duration(schema) {
        return "a duration such as `30s`, `5m` or `1h`".to_owned();
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let names: Vec<String> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "object" => {
                let required: Vec<String> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .map(|n| format!("`{n}`"))
                            .collect()
                    })
                    .unwrap_or_default();
                if required.is_empty() {
                    "a mapping".to_owned()
                } else {
                    format!("a mapping with {}", required.join(" and "))
                }
            }
            "array" => "a list".to_owned(),
            "integer" => "an integer".to_owned(),
            other => format!("a {other}"),
        })
        .collect();
    if names.is_empty() {
        "another type".to_owned()
    } else {
        names.join(" or ")
    }
}

/// A value as a person would name it: "the integer 5", "the string `x`".
fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) if n.is_i64() || n.is_u64() => format!("the integer {n}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(text) => format!("the string `{}`", short(text.clone())),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

/// A help line for a value of the wrong type: the field's own description
/// (which gives an example, e.g. "A fixed rate such as `15m`."), and how to
/// write a bare value where a mapping with one required field is expected
/// (`notebook: x.ipynb` → `notebook: { path: x.ipynb }`).
fn field_help(schema: &Value, found: &Value) -> Option<String> {
    let description = schema.get("description").and_then(Value::as_str);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let rewrite = match (found, required.as_slice()) {
        (Value::String(text), [only]) if schema.get("type") == Some(&Value::from("object")) => {
            Some(format!("write it as a mapping: `{{ {only}: {text} }}`"))
        }
        _ => None,
    };
    let unit = match found {
        Value::Number(n) if is_duration(schema) => Some(format!(
            "a bare number has no unit: write `{n}s`, `{n}m` or `{n}h`"
        )),
        _ => None,
    };
    let parts: Vec<String> = [
        description.map(|d| d.trim_end_matches('.').to_owned()),
        rewrite,
        unit,
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
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
        let _ = compiled(&TaskTypes::builtin());
    }
}
