//! The fast path of [`super::parse_values`]: plain YAML read straight from
//! the parser's events into JSON.
//!
//! serde-saphyr reads a file through serde's visitors, with its alias,
//! merge-key, tag and budget machinery wrapped around every value; for the
//! files definitions are (mappings, sequences, strings, a few numbers) most
//! of the time went there, not into parsing. This reads the events of the
//! same parser (granit-parser, with the options serde-saphyr gives it) and
//! builds the same `Value`s, but only for YAML whose meaning is beyond
//! doubt: no anchor, alias, tag or merge key, no duplicate key, mapping keys
//! that are plainly text, scalars that are plainly text or the simplest
//! numbers, every document a mapping, far inside every budget. Anything
//! else, and every error, returns `None` and the file is read by
//! serde-saphyr as before, so its findings (messages, positions, budget
//! refusals) are exactly what they were. `tests::agrees_with_serde_saphyr`
//! compares both on every kind of scalar and structure this accepts.

use std::borrow::Cow;

use granit_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

use super::{Limits, Pos};

/// Every document of `text`, as [`super::parse_values`] returns them, or
/// `None` when the text is not plain enough to be read here.
pub(super) fn parse(text: &str, limits: Limits) -> Option<Vec<(Pos, Value)>> {
    // The scalars of a text are no larger than it: one far inside the
    // scalar budget cannot exceed it, a larger one is left to serde-saphyr.
    if text.len() > serde_saphyr::Budget::default().max_total_scalar_bytes / 2 {
        return None;
    }
    let mut reader = Reader {
        parser: Parser::new_from_str_with_options(text, parser_options(limits)),
        events: 0,
        // Budgets are counted a little differently by serde-saphyr: stay
        // far from them so that whatever passes here passes there.
        max_events: limits
            .max_nodes
            .min(serde_saphyr::Budget::default().max_events)
            / 2,
        max_depth: limits.max_depth / 2,
    };
    let mut docs = Vec::new();
    loop {
        match reader.next()? {
            (Event::StreamStart | Event::DocumentEnd, _) => {}
            (Event::DocumentStart(..), _) => {
                if docs.len() + 1 > limits.max_documents / 2 {
                    return None;
                }
                let (event, span) = reader.next()?;
                // A document that is not a mapping (an empty one, which
                // serde-saphyr skips, or a bare scalar) is left to it.
                let Event::MappingStart(_, 0, None) = event else {
                    return None;
                };
                docs.push((pos(span), reader.mapping(1)?));
            }
            (Event::StreamEnd, _) => return Some(docs),
            _ => return None,
        }
    }
}

/// The parser's options as serde-saphyr sets them from its budget (its
/// `Budget::parser_options`), so that both accept the same texts.
fn parser_options(limits: Limits) -> granit_parser::Options {
    let budget = serde_saphyr::Budget::default();
    let mut options = granit_parser::Options::default();
    options.simple_key_max_lookahead = budget.simple_key_max_lookahead;
    options.flow_nesting_limit = budget.flow_nesting_limit;
    options.block_nesting_limit = options
        .block_nesting_limit
        .max(limits.max_depth.saturating_add(1));
    options.emit_comments = false;
    options
}

fn pos(span: Span) -> Pos {
    Pos {
        line: u32::try_from(span.start.line()).unwrap_or(u32::MAX),
        column: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
    }
}

struct Reader<'a> {
    parser: Parser<'a, granit_parser::StrInput<'a>>,
    events: usize,
    max_events: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    /// The next event; `None` on an error or past the budget.
    fn next(&mut self) -> Option<(Event<'a>, Span)> {
        self.events += 1;
        if self.events > self.max_events {
            return None;
        }
        self.parser.next_event()?.ok()
    }

    /// The rest of a mapping whose start was read.
    fn mapping(&mut self, depth: usize) -> Option<Value> {
        if depth > self.max_depth {
            return None;
        }
        let mut map = Map::new();
        loop {
            let key = match self.next()?.0 {
                Event::MappingEnd => return Some(Value::Object(map)),
                Event::Scalar(text, style, 0, None) if is_text_key(&text, style) => {
                    text.into_owned()
                }
                _ => return None,
            };
            let value = self.value(depth)?;
            if map.insert(key, value).is_some() {
                // A duplicate key: serde-saphyr reports it.
                return None;
            }
        }
    }

    /// The rest of a sequence whose start was read.
    fn sequence(&mut self, depth: usize) -> Option<Value> {
        if depth > self.max_depth {
            return None;
        }
        let mut items = Vec::new();
        loop {
            match self.next()? {
                (Event::SequenceEnd, _) => return Some(Value::Array(items)),
                (event, _) => items.push(self.node(event, depth)?),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        let (event, _) = self.next()?;
        self.node(event, depth)
    }

    fn node(&mut self, event: Event<'a>, depth: usize) -> Option<Value> {
        match event {
            Event::Scalar(text, style, 0, None) => scalar(text, style),
            Event::MappingStart(_, 0, None) => self.mapping(depth + 1),
            Event::SequenceStart(_, 0, None) => self.sequence(depth + 1),
            _ => None,
        }
    }
}

/// A mapping key read as the text it is: quoted, or plain and neither
/// null, a boolean, a number nor a merge key (serde-saphyr may compare
/// those by meaning when looking for duplicates).
pub(super) fn is_text_key(text: &str, style: ScalarStyle) -> bool {
    match style {
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => true,
        ScalarStyle::Plain => text != "<<" && matches!(plain(text), Some(Plain::Text)),
        _ => false,
    }
}

/// A scalar's value as serde-saphyr gives it to `serde_json::Value`, when
/// it is beyond doubt.
pub(super) fn scalar(text: Cow<'_, str>, style: ScalarStyle) -> Option<Value> {
    if style != ScalarStyle::Plain {
        // Quoted and block scalars are text, whatever they look like.
        return Some(Value::String(text.into_owned()));
    }
    Some(match plain(&text)? {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(b),
        Plain::Int(n) => Value::Number(n),
        Plain::Float(f) => Value::Number(Number::from_f64(f)?),
        Plain::Text => Value::String(text.into_owned()),
    })
}

#[derive(Debug, PartialEq)]
enum Plain {
    Null,
    Bool(bool),
    Int(Number),
    Float(f64),
    Text,
}

/// What a plain scalar means under YAML 1.2's core schema (strict
/// booleans), as serde-saphyr resolves it; `None` for the spellings whose
/// meaning depends on its options (radixes, leading zeros, underscores,
/// exponents, infinities, signs other than a leading `-`): those go to it.
fn plain(text: &str) -> Option<Plain> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Plain::Null),
        "true" | "True" | "TRUE" => return Some(Plain::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Plain::Bool(false)),
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    match unsigned.bytes().next() {
        Some(b'0'..=b'9') if !text.starts_with('+') => {}
        // `-`, `.5`, `.inf`, `+1`.
        None | Some(b'.' | b'0'..=b'9') => return None,
        Some(_) => {
            // Rust's float parser, serde-saphyr's last resort, reads these.
            let special = ["inf", "infinity", "nan"]
                .iter()
                .any(|word| unsigned.eq_ignore_ascii_case(word));
            return (!special).then_some(Plain::Text);
        }
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let decimal = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let canonical_whole = decimal(whole) && (whole == "0" || !whole.starts_with('0'));
    match fraction {
        None if canonical_whole && whole.len() <= 18 && whole != "0" || text == "0" => {
            let n: i64 = text.parse().ok()?;
            Some(Plain::Int(n.into()))
        }
        Some(fraction) if canonical_whole && decimal(fraction) && text.len() <= 24 => {
            text.parse().ok().map(Plain::Float)
        }
        _ => {
            // Text for sure only with a character no number form (radix
            // prefixes, hexadecimal digits, exponents, separators) has.
            let maybe_number = text
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b"xXoO.+-_".contains(&b));
            (!maybe_number).then_some(Plain::Text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{GENERATED, every_example_and_fixture, saphyr};
    use super::*;

    /// Every text the fast path reads, it reads as serde-saphyr does.
    #[track_caller]
    fn agrees(text: &str) {
        let fast = parse(text, Limits::default()).expect("read by the fast path");
        assert_eq!(Ok(fast.clone()), saphyr(text), "{text}");
        for (_, value) in &fast {
            // Numbers keep their kind (an integer is not a float).
            let again: Value = serde_json::from_str(&value.to_string()).unwrap();
            assert_eq!(&again, value);
        }
    }

    #[test]
    fn agrees_with_serde_saphyr() {
        agrees("a: 1\nb: -2\nc: 0\nd: 1.5\ne: -0.25\nf: 12345678901234\n");
        agrees("a:\nb: ~\nc: null\nd: Null\ne: NULL\nf: true\ng: False\nh: TRUE\n");
        agrees("t: 1h30m\nq: 500m\nm: 1Gi\ns: 30s\nv: weir.dev/v1alpha1\nx: on\ny: yes\nz: No\n");
        agrees("i: python:3.12-slim\nj: \"1\"\nk: '0x10'\nl: \"true\"\nm: 'null'\nn: a b c\n");
        agrees("s: |\n  line one\n  line two\nf: >\n  folded\n  text\nk: |-\n  kept\n");
        agrees(
            "list: [a, 1, 2.5, \"x\", {k: v}]\nnested:\n  - id: x\n    deep: {a: [1, [2, [3]]]}\n  - - y\n",
        );
        agrees("\"quoted key\": 1\n'single': 2\nunicode: héllo wörld\nemoji: \"\\u00e9\\n\"\n");
        agrees("---\na: 1\n---\nb: 2\n...\n---\n# comment\nc: {d: e}\n");
        agrees("  indented: 1\n  other: {x: y}\n");
        agrees("k: 0.1\nl: 3.0\nm: 10.000\n");
        agrees("args: [-c, -v, --flag, -x1, +plus, ~tilde, /tmp, $HOME, 128Mi, 64Mi, 2Gi]\n");
        agrees(GENERATED);
    }

    /// The repository's own examples and fixtures: wherever the fast path
    /// reads one, it reads it as serde-saphyr does; and it reads the
    /// examples.
    #[test]
    fn agrees_on_every_example_and_fixture() {
        every_example_and_fixture(parse, "the fast path");
    }

    #[test]
    fn leaves_what_it_cannot_vouch_for_to_serde_saphyr() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "<<: {a: 1}\n",
            "a: 1\na: 2\n",
            "a: 0x10\n",
            "a: 007\n",
            "a: 1_000\n",
            "a: 1e3\n",
            "a: .inf\n",
            "a: +1\n",
            "a: -0\n",
            "a: inf\n",
            "a: NaN\n",
            "a: -inf\n",
            "a: .5\n",
            "a: 2026-01-01\n",
            "a: -\n",
            "1: a\n",
            "true: a\n",
            "~: a\n",
            "? [a]\n: b\n",
            "- a\n",
            "just text\n",
            "a: 1\n---\n",
            "a: [\n",
            "a: 12345678901234567890\n",
        ] {
            assert_eq!(parse(text, Limits::default()), None, "{text}");
        }
    }

    /// YAML-ish text from the pieces the fast path decides on.
    fn yamlish() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let scalar = prop_oneof![
            "-?[0-9]{1,20}(\\.[0-9]{0,4})?",
            "[-+.]?[0-9a-fxoe_.]{1,6}",
            "[a-zA-Z~/$-][a-zA-Z0-9 ._:/-]{0,10}",
            Just(String::new()),
            "(true|True|TRUE|false|FALSE|null|Null|NULL|~|inf|nan|on|yes|<<)",
            "'[a-z0-9 ]{0,4}'",
            "\"[a-z0-9\\\\ ]{0,4}\"",
        ];
        let key = prop_oneof![8 => "[a-z][a-z0-9_-]{0,6}", 1 => scalar.clone()];
        let line = prop_oneof![
            8 => (key.clone(), scalar.clone()).prop_map(|(k, v)| format!("{k}: {v}\n")),
            2 => (key.clone(), scalar.clone()).prop_map(|(k, v)| format!("  {k}: {v}\n")),
            2 => (key.clone(), scalar.clone()).prop_map(|(k, v)| format!("{k}: [{v}, {v}]\n")),
            2 => (key.clone(), key.clone(), scalar.clone())
                .prop_map(|(k, j, v)| format!("{k}: {{ {j}: {v} }}\n")),
            1 => (key.clone(), scalar.clone()).prop_map(|(k, v)| format!("{k}:\n  - {v}\n")),
            1 => Just("---\n".to_owned()),
            1 => key.prop_map(|k| format!("{k}: |\n  text\n")),
            1 => Just("a: &x 1\nb: *x\n".to_owned()),
        ];
        proptest::collection::vec(line, 1..8).prop_map(|lines| lines.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Whatever the fast path reads, serde-saphyr reads alike.
        #[test]
        fn never_reads_otherwise_than_serde_saphyr(text in yamlish()) {
            if let Some(fast) = parse(&text, Limits::default()) {
                proptest::prop_assert_eq!(Ok(fast), saphyr(&text), "{:?}", text);
            }
        }
    }

    #[test]
    fn stays_inside_the_budgets() {
        let deep = format!("a: {}1{}\n", "[".repeat(40), "]".repeat(40));
        assert_eq!(parse(&deep, Limits::default()), None);
        let many = "- x\n".repeat(10);
        let limits = Limits {
            max_nodes: 10,
            ..Limits::default()
        };
        assert_eq!(parse(&format!("a:\n{many}"), limits), None);
        // Plain, but more than half of serde-saphyr's scalar budget.
        let half = serde_saphyr::Budget::default().max_total_scalar_bytes / 2;
        let large = format!("a: {}\n", "x".repeat(half));
        assert_eq!(parse(&large, Limits::default()), None);
    }
}
