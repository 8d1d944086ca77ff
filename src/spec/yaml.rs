//! YAML documents with positions.
//!
//! serde-saphyr parses each file (duplicate keys are errors; alias expansion,
//! nesting, node count and document count are bounded by a budget, so an
//! alias bomb fails fast instead of eating memory) into a [`YamlNode`] tree
//! in which every value and every key keeps its line and column. The tree is
//! turned into JSON for the schema and the typed structs, and kept beside
//! them so that any error found later — by the schema or by semantics — can
//! be reported at the exact `file:line:col` of the value it is about.

mod plain;
mod subset;
#[cfg(test)]
mod testing;

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub fn new(line: u32, column: u32) -> Pos {
        Pos { line, column }
    }

    fn from_location(loc: serde_saphyr::Location) -> Pos {
        Pos {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlNode {
    pub pos: Pos,
    pub value: YamlValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum YamlValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<YamlNode>),
    Map(Vec<(YamlKey, YamlNode)>),
}

/// A mapping key and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlKey {
    pub pos: Pos,
    pub name: String,
}

/// One step of a path into a document (a JSON pointer, split).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep<'a> {
    Key(&'a str),
    Index(usize),
}

/// A YAML syntax error (or budget breach) with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
    pub kind: SyntaxErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxErrorKind {
    Syntax,
    DuplicateKey,
    Limit,
}

/// Limits that keep a hostile file from costing more than a large honest one.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_nodes: usize,
    pub max_alias_replayed_events: usize,
    pub max_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_nodes: 200_000,
            max_alias_replayed_events: 10_000,
            max_documents: 1_000,
        }
    }
}

fn options(limits: Limits) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = limits.max_depth;
    budget.max_nodes = limits.max_nodes;
    budget.max_documents = limits.max_documents;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.alias_limits.max_total_replayed_events = limits.max_alias_replayed_events;
    options.with_snippet = false;
    // YAML 1.2 core booleans only: `on:` (as in `notify: - on: [failed]`) is a key, not `true`.
    options.strict_booleans = true;
    options
}

/// Parses every document of a file into JSON, with the position of each
/// document. This is the fast path every file takes; positions of values
/// inside a document are recovered with [`parse_documents`] only for files
/// that have something to report. Empty documents are skipped.
///
/// The block YAML definitions are written in is read straight from the
/// bytes (`subset`); other plain YAML from the parser's events (`plain`);
/// any other text, and every error, by serde-saphyr.
pub fn parse_values(text: &str, limits: Limits) -> Result<Vec<(Pos, Value)>, SyntaxError> {
    if let Some(docs) = subset::parse(text, limits).or_else(|| plain::parse(text, limits)) {
        return Ok(docs);
    }
    serde_saphyr::from_multiple_with_options::<Spanned<Value>>(text, options(limits))
        .map(|docs| {
            docs.into_iter()
                .map(|d| (Pos::from_location(d.referenced), d.value))
                .collect()
        })
        .map_err(syntax_error)
}

/// Parses every document of a file into positioned trees (the slow path,
/// used to report findings at their line). Empty documents are skipped, as
/// in [`parse_values`], so document indexes agree.
pub fn parse_documents(text: &str, limits: Limits) -> Result<Vec<YamlNode>, SyntaxError> {
    serde_saphyr::from_multiple_with_options::<YamlNode>(text, options(limits))
        .map_err(syntax_error)
}

fn syntax_error(err: serde_saphyr::Error) -> SyntaxError {
    let pos = err.location().map(Pos::from_location).unwrap_or_default();
    let message = err.to_string();
    let lower = message.to_ascii_lowercase();
    let kind = if lower.contains("duplicate") {
        SyntaxErrorKind::DuplicateKey
    } else if lower.contains("budget") || lower.contains("limit") || lower.contains("exceed") {
        SyntaxErrorKind::Limit
    } else {
        SyntaxErrorKind::Syntax
    };
    let mut message = strip_position_suffix(&message);
    if kind == SyntaxErrorKind::DuplicateKey {
        // "duplicate mapping key: timeout, set DuplicateKeyPolicy in Options if acceptable"
        let key = message
            .split_once(": ")
            .map(|(_, rest)| rest.split(", set ").next().unwrap_or(rest).to_owned());
        if let Some(key) = key {
            message = format!("duplicate key `{key}`: a key may appear only once in a mapping");
        }
    }
    SyntaxError { pos, message, kind }
}

/// serde-saphyr appends "at line X, column Y"; we print positions ourselves.
fn strip_position_suffix(message: &str) -> String {
    let first_line = message.lines().next().unwrap_or(message);
    match first_line.rfind(" at line ") {
        Some(i) => first_line[..i].to_owned(),
        None => first_line.to_owned(),
    }
}

impl YamlNode {
    /// The same value as JSON (what the schema and the typed structs read).
    pub fn to_json(&self) -> Value {
        match &self.value {
            YamlValue::Null => Value::Null,
            YamlValue::Bool(b) => Value::Bool(*b),
            YamlValue::Int(i) => Value::Number((*i).into()),
            YamlValue::UInt(u) => Value::Number((*u).into()),
            YamlValue::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            YamlValue::Str(s) => Value::String(s.clone()),
            YamlValue::Seq(items) => Value::Array(items.iter().map(YamlNode::to_json).collect()),
            YamlValue::Map(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    map.insert(k.name.clone(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    /// The value of key `name` in a mapping.
    pub fn get(&self, name: &str) -> Option<&YamlNode> {
        self.entry(name).map(|(_, v)| v)
    }

    /// The key and value of `name` in a mapping.
    pub fn entry(&self, name: &str) -> Option<(&YamlKey, &YamlNode)> {
        match &self.value {
            YamlValue::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// Follows a JSON pointer as far as it exists and returns the deepest
    /// node found: an error about a missing value is shown at its parent.
    pub fn locate(&self, pointer: &str) -> &YamlNode {
        let mut node = self;
        for segment in pointer_segments(pointer) {
            let next = match &node.value {
                YamlValue::Map(_) => node.get(&segment),
                YamlValue::Seq(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// Position of the value at `pointer`, or of its key when `key` is set
    /// and the pointer ends in a mapping key.
    pub fn pos_of(&self, pointer: &str, key: bool) -> Pos {
        if key {
            if let Some((parent, last)) = pointer.rsplit_once('/') {
                let last = unescape(last);
                if let Some((k, _)) = self.locate(parent).entry(&last) {
                    return k.pos;
                }
            }
        }
        self.locate(pointer).pos
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            YamlValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Splits a JSON pointer (`/spec/nodes/0/task`) into unescaped segments.
pub fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).map(unescape).collect()
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// Builds a JSON pointer from path steps.
pub fn to_pointer(steps: &[PathStep<'_>]) -> String {
    let mut out = String::new();
    for step in steps {
        out.push('/');
        match step {
            PathStep::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
            PathStep::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

impl<'de> Deserialize<'de> for YamlNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<YamlValue>::deserialize(d)?;
        Ok(YamlNode {
            pos: Pos::from_location(spanned.referenced),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for YamlKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<KeyText>::deserialize(d)?;
        Ok(YamlKey {
            pos: Pos::from_location(spanned.referenced),
            name: spanned.value.0,
        })
    }
}

/// A scalar key as text (`1:` and `true:` are keys "1" and "true").
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<KeyText, E> {
                Ok(KeyText(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".to_owned()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for YamlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = YamlValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<YamlValue, E> {
        Ok(YamlValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<YamlValue, E> {
        Ok(YamlValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<YamlValue, E> {
        Ok(i64::try_from(v).map_or(YamlValue::UInt(v), YamlValue::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<YamlValue, E> {
        i64::try_from(v)
            .map(YamlValue::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<YamlValue, E> {
        u64::try_from(v)
            .map(|u| self.visit_u64::<E>(u).expect("infallible"))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<YamlValue, E> {
        Ok(YamlValue::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<YamlValue, E> {
        Ok(YamlValue::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<YamlValue, E> {
        Ok(YamlValue::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<YamlValue, E> {
        Ok(YamlValue::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<YamlValue, E> {
        Ok(YamlValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<YamlValue, E> {
        Ok(YamlValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<YamlValue, D::Error> {
        YamlValue::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<YamlValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<YamlNode>()? {
            items.push(item);
        }
        Ok(YamlValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<YamlValue, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = map.next_key::<YamlKey>()? {
            let value = map.next_value::<YamlNode>()?;
            entries.push((key, value));
        }
        Ok(YamlValue::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let docs =
            parse_documents("a: 1\nb:\n  c: [x, y]\n---\nz: on\n", Limits::default()).unwrap();
        assert_eq!(docs.len(), 2);
        let b = docs[0].get("b").unwrap();
        let c = b.get("c").unwrap();
        assert_eq!(c.pos.line, 3);
        assert_eq!(docs[0].pos_of("/b/c/1", false), Pos::new(3, 10));
        assert_eq!(docs[0].pos_of("/b/c", true), Pos::new(3, 3));
        assert_eq!(
            docs[0].pos_of("/b/missing", false),
            docs[0].locate("/b").pos
        );
        let values =
            parse_values("a: 1\nb:\n  c: [x, y]\n---\nz: on\n", Limits::default()).unwrap();
        assert_eq!(values.len(), 2);
        assert_eq!(values[1].0.line, 5);
        assert_eq!(values[0].1, docs[0].to_json());
        // YAML 1.2: `on` is a string, not a boolean.
        assert_eq!(docs[1].get("z").unwrap().to_json(), serde_json::json!("on"));
    }

    #[test]
    fn duplicate_keys_and_alias_bombs_are_refused() {
        let dup = parse_values("a: 1\na: 2\n", Limits::default()).unwrap_err();
        assert_eq!(dup.kind, SyntaxErrorKind::DuplicateKey);
        assert_eq!(dup.pos.line, 2);
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_owned()
            } else {
                format!("l{}", i - 1)
            };
            bomb.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let err = parse_values(&bomb, Limits::default()).unwrap_err();
        assert_eq!(err.kind, SyntaxErrorKind::Limit, "{err:?}");
    }
}
