//! The type system of task and workflow interfaces, and the check of a
//! literal value against a type.
//!
//! Types are written as text (`int`, `list<file>`, `map<list<int>>`, and
//! `T?` for a value that may be null, as the items of a map node's outputs
//! under `minSuccessRatio` below 1 are) or as an enum (`enum: [a, b]`); [`TypeExpr::parse`] reads the text form. Validation
//! uses [`TypeExpr::accepts_literal`] for literals in bindings and defaults and
//! `==` (plus [`TypeExpr::accepts_reference`]) for references, as Flyte's
//! compiler does: no implicit conversion between references of different types.

use std::fmt;

use serde_json::Value;

use super::duration;

/// A parsed interface type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TypeExpr {
    String,
    Int,
    Float,
    Bool,
    Datetime,
    Duration,
    File,
    Directory,
    Json,
    List(Box<TypeExpr>),
    Map(Box<TypeExpr>),
    Enum(Vec<String>),
    /// `T?`: a `T`, or null.
    Optional(Box<TypeExpr>),
}

/// Nesting deeper than this is refused: `list<list<list<...>>>` past it is
/// a mistake, not a data model.
const MAX_DEPTH: usize = 8;

/// Why a text is not a type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("types nest at most {} deep", MAX_DEPTH)]
    TooDeep,
    #[error("`{0}` is missing its closing `>`")]
    Unclosed(String),
    #[error("unknown type `{0}`")]
    Unknown(String),
}

/// Why a literal does not fit a type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiteralError {
    #[error("`{0}` is not an RFC 3339 date-time or a date (YYYY-MM-DD)")]
    NotDatetime(String),
    #[error(transparent)]
    Duration(#[from] duration::Error),
    #[error("`{value}` is not one of [{}]", allowed.join(", "))]
    NotInEnum { value: String, allowed: Vec<String> },
    /// An item of a list does not fit the list's item type.
    #[error("item {index}: {inner}")]
    Item {
        index: usize,
        inner: Box<LiteralError>,
    },
    /// A value of a map does not fit the map's value type.
    #[error("key `{key}`: {inner}")]
    Key {
        key: String,
        inner: Box<LiteralError>,
    },
    /// `expected` is the type, `found` what the value is (`a string`).
    #[error("expected {expected}, found {found}")]
    Mismatch {
        expected: TypeExpr,
        found: &'static str,
    },
}

impl TypeExpr {
    /// Parses the text form of a type (everything but enums).
    pub fn parse(text: &str) -> Result<TypeExpr, ParseError> {
        parse_at(text.trim(), 0)
    }

    /// Whether a literal written in YAML fits this type.
    pub fn accepts_literal(&self, value: &Value) -> Result<(), LiteralError> {
        let ok = match (self, value) {
            (TypeExpr::Json, _) | (TypeExpr::Optional(_), Value::Null) => true,
            (TypeExpr::Optional(inner), value) => return inner.accepts_literal(value),
            (TypeExpr::String, Value::String(_)) => true,
            (TypeExpr::Int, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (TypeExpr::Float, Value::Number(_)) => true,
            (TypeExpr::Bool, Value::Bool(_)) => true,
            (TypeExpr::Datetime, Value::String(s)) => {
                return parse_datetime(s)
                    .map(|_| ())
                    .map_err(|_| LiteralError::NotDatetime(s.clone()));
            }
            (TypeExpr::Duration, Value::String(s)) => {
                return duration::parse(s).map(|_| ()).map_err(LiteralError::from);
            }
            (TypeExpr::File | TypeExpr::Directory, Value::String(s)) => !s.is_empty(),
            (TypeExpr::Enum(values), Value::String(s)) => {
                if values.contains(s) {
                    return Ok(());
                }
                return Err(LiteralError::NotInEnum {
                    value: s.clone(),
                    allowed: values.clone(),
                });
            }
            (TypeExpr::List(item), Value::Array(items)) => {
                for (i, v) in items.iter().enumerate() {
                    item.accepts_literal(v).map_err(|e| LiteralError::Item {
                        index: i,
                        inner: Box::new(e),
                    })?;
                }
                true
            }
            (TypeExpr::Map(item), Value::Object(entries)) => {
                for (k, v) in entries {
                    item.accepts_literal(v).map_err(|e| LiteralError::Key {
                        key: k.clone(),
                        inner: Box::new(e),
                    })?;
                }
                true
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(LiteralError::Mismatch {
                expected: self.clone(),
                found: describe(value),
            })
        }
    }

    /// Whether a reference carrying type `from` may feed this type.
    pub fn accepts_reference(&self, from: &TypeExpr) -> bool {
        match (self, from) {
            (a, b) if a == b => true,
            // An enum value is a string; the reverse would need a runtime check.
            (TypeExpr::String, TypeExpr::Enum(_)) => true,
            (TypeExpr::Enum(to), TypeExpr::Enum(from)) => from.iter().all(|v| to.contains(v)),
            (TypeExpr::List(a), TypeExpr::List(b))
            | (TypeExpr::Map(a), TypeExpr::Map(b))
            | (TypeExpr::Optional(a), TypeExpr::Optional(b)) => a.accepts_reference(b),
            // A value that is never null fits where null may be; not the
            // reverse.
            (TypeExpr::Optional(a), b) => a.accepts_reference(b),
            _ => false,
        }
    }

    /// Whether the value is passed as a path (local) or URI (object store).
    pub fn is_blob(&self) -> bool {
        matches!(self, TypeExpr::File | TypeExpr::Directory)
    }

    /// Whether every value of this type can be written into a script's
    /// source without changing what the script does: numbers, booleans and
    /// the members of an enum (written by the task's author). Anything that
    /// holds free text (strings, paths, dates, JSON) could carry code: a
    /// script reads those from `WEIR_INPUT_<NAME>` instead.
    pub fn is_code_safe(&self) -> bool {
        matches!(
            self,
            TypeExpr::Int | TypeExpr::Float | TypeExpr::Bool | TypeExpr::Enum(_)
        )
    }
}

fn parse_at(text: &str, depth: usize) -> Result<TypeExpr, ParseError> {
    if depth > MAX_DEPTH {
        return Err(ParseError::TooDeep);
    }
    let simple = match text {
        "string" => Some(TypeExpr::String),
        "int" => Some(TypeExpr::Int),
        "float" => Some(TypeExpr::Float),
        "bool" => Some(TypeExpr::Bool),
        "datetime" => Some(TypeExpr::Datetime),
        "duration" => Some(TypeExpr::Duration),
        "file" => Some(TypeExpr::File),
        "directory" => Some(TypeExpr::Directory),
        "json" => Some(TypeExpr::Json),
        _ => None,
    };
    if let Some(t) = simple {
        return Ok(t);
    }
    if let Some(inner) = text.strip_suffix('?') {
        let inner = parse_at(inner.trim_end(), depth + 1)?;
        if matches!(inner, TypeExpr::Optional(_)) {
            return Err(ParseError::Unknown(text.to_owned()));
        }
        return Ok(TypeExpr::Optional(Box::new(inner)));
    }
    for (prefix, wrap) in [
        ("list<", TypeExpr::List as fn(Box<TypeExpr>) -> TypeExpr),
        ("map<", TypeExpr::Map),
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let inner = rest
                .strip_suffix('>')
                .ok_or_else(|| ParseError::Unclosed(text.to_owned()))?;
            return Ok(wrap(Box::new(parse_at(inner.trim(), depth + 1)?)));
        }
    }
    Err(ParseError::Unknown(text.to_owned()))
}

/// Reads a datetime literal: RFC 3339, or a bare date meaning midnight UTC.
pub fn parse_datetime(text: &str) -> Result<chrono::DateTime<chrono::Utc>, chrono::ParseError> {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => Ok(t.with_timezone(&chrono::Utc)),
        Err(e) => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
            .map_err(|_| e),
    }
}

/// What a value is, in words (`a string`, `null`).
pub fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an int",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

impl fmt::Display for TypeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeExpr::String => f.write_str("string"),
            TypeExpr::Int => f.write_str("int"),
            TypeExpr::Float => f.write_str("float"),
            TypeExpr::Bool => f.write_str("bool"),
            TypeExpr::Datetime => f.write_str("datetime"),
            TypeExpr::Duration => f.write_str("duration"),
            TypeExpr::File => f.write_str("file"),
            TypeExpr::Directory => f.write_str("directory"),
            TypeExpr::Json => f.write_str("json"),
            TypeExpr::List(t) => write!(f, "list<{t}>"),
            TypeExpr::Map(t) => write!(f, "map<{t}>"),
            TypeExpr::Enum(values) => write!(f, "enum[{}]", values.join(", ")),
            TypeExpr::Optional(t) => write!(f, "{t}?"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_nested_types() {
        assert_eq!(
            TypeExpr::parse("map<list<file>>").unwrap(),
            TypeExpr::Map(Box::new(TypeExpr::List(Box::new(TypeExpr::File))))
        );
        assert!(TypeExpr::parse("list<>").is_err());
        assert!(TypeExpr::parse("list<int").is_err());
        assert!(TypeExpr::parse("integer").is_err());
        assert!(TypeExpr::parse(&"list<".repeat(20)).is_err());
        let optional = TypeExpr::parse("list<file?>").unwrap();
        assert_eq!(optional.to_string(), "list<file?>");
        assert!(TypeExpr::parse("int??").is_err());
    }

    #[test]
    fn null_fits_only_an_optional_type() {
        let maybe = TypeExpr::parse("int?").unwrap();
        assert!(maybe.accepts_literal(&json!(null)).is_ok());
        assert!(maybe.accepts_literal(&json!(3)).is_ok());
        assert!(maybe.accepts_literal(&json!("x")).is_err());
        assert!(TypeExpr::Int.accepts_literal(&json!(null)).is_err());
        // A value never null fits where null may be; not the reverse.
        assert!(maybe.accepts_reference(&TypeExpr::Int));
        assert!(!TypeExpr::Int.accepts_reference(&maybe));
        let list = |t: TypeExpr| TypeExpr::List(Box::new(t));
        assert!(list(maybe.clone()).accepts_reference(&list(TypeExpr::Int)));
        assert!(!list(TypeExpr::Int).accepts_reference(&list(maybe)));
    }

    #[test]
    fn literals() {
        assert!(TypeExpr::Float.accepts_literal(&json!(1)).is_ok());
        assert!(TypeExpr::Int.accepts_literal(&json!(1.5)).is_err());
        assert!(
            TypeExpr::Datetime
                .accepts_literal(&json!("2026-03-29T01:00:00Z"))
                .is_ok()
        );
        assert!(
            TypeExpr::Datetime
                .accepts_literal(&json!("2026-03-29"))
                .is_ok()
        );
        assert!(
            TypeExpr::Datetime
                .accepts_literal(&json!("yesterday"))
                .is_err()
        );
        let e = TypeExpr::Enum(vec!["eu".into(), "us".into()]);
        assert!(e.accepts_literal(&json!("eu")).is_ok());
        assert!(e.accepts_literal(&json!("asia")).is_err());
        let l = TypeExpr::List(Box::new(TypeExpr::Int));
        assert!(l.accepts_literal(&json!([1, 2])).is_ok());
        assert!(l.accepts_literal(&json!([1, "x"])).is_err());
    }

    #[test]
    fn references_need_the_same_type() {
        assert!(TypeExpr::Int.accepts_reference(&TypeExpr::Int));
        assert!(!TypeExpr::Float.accepts_reference(&TypeExpr::Int));
        assert!(!TypeExpr::File.accepts_reference(&TypeExpr::String));
        assert!(TypeExpr::String.accepts_reference(&TypeExpr::Enum(vec!["a".into()])));
    }
}
