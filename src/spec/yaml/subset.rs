//! The first path of [`super::parse_values`]: the YAML definition files
//! are written in, read straight from the bytes.
//!
//! Definitions are block mappings and sequences of one-line keys and
//! scalars, flow collections (`{ type: file }`, `[failed, timedOut]`),
//! quoted strings and literal or folded block scalars (scripts, SQL).
//! A general YAML scanner (granit-parser, under [`super::plain`]) spent
//! most of `weir validate`'s time queueing and moving tokens for such text;
//! this reads that subset in one pass over the bytes into the same
//! `Value`s. Whatever is outside it (anchors, aliases, tags, complex keys,
//! plain or quoted scalars over several lines, indentation indicators,
//! `|+`, tabs, carriage returns, a text without a final line break, an
//! empty document), and every error, returns `None`: the text is then read
//! by the paths behind this one, so findings (messages, positions, budget
//! refusals) are exactly theirs. What a value means is decided by the same
//! rules as [`super::plain`] ([`plain::scalar`], [`plain::is_text_key`]);
//! the tests compare this reader with serde-saphyr on every kind of text
//! it accepts, and on the repository's examples and fixtures.

use granit_parser::ScalarStyle;
use serde_json::{Map, Value};

use super::plain;
use super::{Limits, Pos};

/// Every document of `text`, as [`super::parse_values`] returns them, or
/// `None` when the text is not in the subset read here.
pub(super) fn parse(text: &str, limits: Limits) -> Option<Vec<(Pos, Value)>> {
    if text.len() > serde_saphyr::Budget::default().max_total_scalar_bytes / 2
        || !text.ends_with('\n')
        || !printable(text)
    {
        return None;
    }
    let mut reader = Reader {
        bytes: text.as_bytes(),
        text,
        at: 0,
        line: 1,
        counted: 0,
        events: 0,
        // As in `plain`: far from serde-saphyr's budgets, so whatever
        // passes here passes there.
        max_events: limits
            .max_nodes
            .min(serde_saphyr::Budget::default().max_events)
            / 2,
        max_depth: limits.max_depth / 2,
        flow_indent: 0,
    };
    reader.stream(limits.max_documents / 2)
}

/// Whether every character is one YAML allows and that cannot be a line
/// break: tabs and line feeds, but no other control character, no
/// carriage return, no byte-order mark and no Unicode line separator.
fn printable(text: &str) -> bool {
    let ascii = |b: u8| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t';
    if text.is_ascii() {
        return text.bytes().all(ascii);
    }
    text.chars().all(|c| match u32::from(c) {
        0..=0x7f => u8::try_from(c).is_ok_and(ascii),
        0x80..=0x9f | 0x2028 | 0x2029 | 0xfeff | 0xfffe | 0xffff => false,
        _ => true,
    })
}

/// What the next line holding more than spaces and a comment starts with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Line {
    /// Content indented by this many spaces (the reader is at it).
    Content(usize),
    /// `---` or `...` at the start of the line (the reader is at it).
    Marker,
    End,
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// The byte the reader is at.
    at: usize,
    /// The line of byte `counted` (1-based).
    line: u32,
    counted: usize,
    events: usize,
    max_events: usize,
    max_depth: usize,
    /// Lines of a flow collection must be indented more than this.
    flow_indent: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> u8 {
        self.bytes.get(self.at).copied().unwrap_or(b'\n')
    }

    fn peek_at(&self, offset: usize) -> u8 {
        self.bytes.get(self.at + offset).copied().unwrap_or(b'\n')
    }

    fn column(&self) -> usize {
        self.at - self.line_start()
    }

    fn line_start(&self) -> usize {
        self.bytes[..self.at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
    }

    /// The 1-based line of the byte the reader is at.
    fn line_number(&mut self) -> u32 {
        let newlines = self.bytes[self.counted..self.at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line = self
            .line
            .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX));
        self.counted = self.at;
        self.line
    }

    /// Counts one more event against the budget.
    fn event(&mut self, n: usize) -> Option<()> {
        self.events += n;
        (self.events <= self.max_events).then_some(())
    }

    /// Whether the byte before the reader is a blank (a `#` there starts a
    /// comment).
    fn after_blank(&self) -> bool {
        self.at == 0 || matches!(self.bytes[self.at - 1], b' ' | b'\n')
    }

    fn skip_spaces(&mut self) {
        while self.peek() == b' ' {
            self.at += 1;
        }
    }

    /// Past the end of the line the reader is on, which must hold nothing
    /// more than spaces and a comment.
    fn end_of_line(&mut self) -> Option<()> {
        self.skip_spaces();
        match self.peek() {
            b'\n' => {}
            b'#' if self.after_blank() => {
                self.at += memchr(b'\n', &self.bytes[self.at..])?;
            }
            _ => return None,
        }
        self.at += 1;
        Some(())
    }

    /// Past blank and comment lines, to what the next line with content
    /// starts with; from the start of a line, or from the content of a line
    /// a nested collection stopped at.
    fn next_line(&mut self) -> Option<Line> {
        let start = self.line_start();
        if self.at > start {
            let indented = self.bytes[start..self.at].iter().all(|&b| b == b' ');
            return indented.then(|| Line::Content(self.at - start));
        }
        loop {
            if self.at >= self.bytes.len() {
                return Some(Line::End);
            }
            let start = self.at;
            self.skip_spaces();
            match self.peek() {
                b'\n' | b'#' => self.end_of_line()?,
                b'\t' => return None,
                _ if self.at == start && self.is_marker() => return Some(Line::Marker),
                _ => return Some(Line::Content(self.at - start)),
            }
        }
    }

    /// Whether the reader is at `---` or `...` followed by a blank.
    fn is_marker(&self) -> bool {
        let rest = &self.bytes[self.at..];
        (rest.starts_with(b"---") || rest.starts_with(b"..."))
            && matches!(self.peek_at(3), b' ' | b'\t' | b'\n')
    }

    fn stream(&mut self, max_documents: usize) -> Option<Vec<(Pos, Value)>> {
        let mut docs = Vec::new();
        // Whether a document may start without `---`: only the first.
        let mut bare = true;
        loop {
            match self.next_line()? {
                Line::End => return Some(docs),
                Line::Marker if self.bytes[self.at..].starts_with(b"---") => {
                    self.at += 3;
                    self.end_of_line()?;
                    // An empty document is left to serde-saphyr, which skips it.
                    if !matches!(self.next_line()?, Line::Content(_)) {
                        return None;
                    }
                }
                Line::Content(_) if bare => {}
                // `...` outside a document, or content after one that
                // `...` ended.
                Line::Marker | Line::Content(_) => return None,
            }
            if docs.len() + 1 > max_documents {
                return None;
            }
            let indent = self.column();
            let pos = Pos::new(self.line_number(), u32::try_from(indent + 1).ok()?);
            let map = self.block_mapping(indent, 1)?;
            docs.push((pos, map));
            bare = false;
            match self.next_line()? {
                Line::End => return Some(docs),
                Line::Marker if self.bytes[self.at..].starts_with(b"...") => {
                    self.at += 3;
                    self.end_of_line()?;
                    if !matches!(self.next_line()?, Line::End | Line::Marker) {
                        return None;
                    }
                    if self.bytes[self.at..].starts_with(b"...") {
                        return None;
                    }
                }
                Line::Marker => {}
                // Less indented than the document's mapping.
                Line::Content(_) => return None,
            }
        }
    }

    /// A block mapping whose first key the reader is at, `indent` columns
    /// into its line; it ends before the first line indented less, or at a
    /// document marker.
    fn block_mapping(&mut self, indent: usize, depth: usize) -> Option<Value> {
        if depth > self.max_depth {
            return None;
        }
        self.event(2)?;
        let mut map = Map::new();
        loop {
            let key = self.key()?;
            let value = self.block_value(indent, depth, false)?;
            if map.insert(key, value).is_some() {
                // A duplicate key: serde-saphyr reports it.
                return None;
            }
            match self.next_line()? {
                Line::Content(i) if i == indent => {}
                Line::Content(i) if i > indent => return None,
                Line::Content(_) | Line::Marker | Line::End => return Some(Value::Object(map)),
            }
        }
    }

    /// A block sequence whose first `-` the reader is at, `indent` columns
    /// into its line.
    fn block_sequence(&mut self, indent: usize, depth: usize) -> Option<Value> {
        if depth > self.max_depth {
            return None;
        }
        self.event(2)?;
        let mut items = Vec::new();
        loop {
            // At `-` followed by a blank.
            self.at += 1;
            items.push(self.block_value(indent, depth, true)?);
            match self.next_line()? {
                Line::Content(i) if i == indent && self.at_entry() => {}
                Line::Content(i) if i > indent => return None,
                Line::Content(_) | Line::Marker | Line::End => return Some(Value::Array(items)),
            }
        }
    }

    /// Whether the reader is at a sequence entry's `-`.
    fn at_entry(&self) -> bool {
        self.peek() == b'-' && matches!(self.peek_at(1), b' ' | b'\n')
    }

    /// A mapping key and its `:`; the reader is left after the `:`.
    fn key(&mut self) -> Option<String> {
        let start = self.at;
        let (text, style) = match self.peek() {
            b'\'' | b'"' => {
                let quoted = self.quoted()?;
                self.skip_spaces();
                quoted
            }
            _ => {
                let plain = self.plain(false)?;
                self.skip_spaces();
                (plain, ScalarStyle::Plain)
            }
        };
        // serde-saphyr looks this far for a key's `:`.
        if self.at - start > 512
            || self.peek() != b':'
            || !matches!(self.peek_at(1), b' ' | b'\n')
            || !plain::is_text_key(text, style)
        {
            return None;
        }
        self.at += 1;
        self.event(1)?;
        Some(text.to_owned())
    }

    /// The value after a mapping key's `:` or a sequence entry's `-`
    /// (`entry`), in a collection indented `indent` columns; the reader is
    /// left at the start of the line after it.
    fn block_value(&mut self, indent: usize, depth: usize, entry: bool) -> Option<Value> {
        self.skip_spaces();
        match self.peek() {
            b'\n' | b'#' => {
                self.end_of_line()?;
                let nested = match self.next_line()? {
                    Line::Content(i) if i > indent => Some(i),
                    // `key:` followed by `- item`s at the key's indentation.
                    Line::Content(i) if i == indent && !entry && self.at_entry() => Some(i),
                    _ => None,
                };
                let Some(i) = nested else {
                    // Nothing: the empty value; the line is left as it is.
                    self.at = self.line_start();
                    self.event(1)?;
                    return Some(Value::Null);
                };
                if self.at_entry() {
                    self.block_sequence(i, depth + 1)
                } else {
                    self.block_mapping(i, depth + 1)
                }
            }
            b'|' | b'>' => self.block_scalar(indent),
            b'[' | b'{' => {
                self.flow_indent = indent;
                let value = self.flow_node(depth)?;
                self.end_of_line()?;
                Some(value)
            }
            b'-' if entry && matches!(self.peek_at(1), b' ' | b'\n') => {
                let column = self.column();
                self.block_sequence(column, depth + 1)
            }
            _ if entry && self.at_key() => {
                let column = self.column();
                self.block_mapping(column, depth + 1)
            }
            b'\'' | b'"' => {
                let (text, style) = self.quoted()?;
                self.end_of_line()?;
                self.event(1)?;
                plain::scalar(text.into(), style)
            }
            _ => {
                let text = self.plain(false)?;
                // `key: a: b`: a mapping where a value is.
                self.end_of_line()?;
                self.event(1)?;
                plain::scalar(text.into(), ScalarStyle::Plain)
            }
        }
    }

    /// Whether a mapping key starts where the reader is (it does not move).
    fn at_key(&mut self) -> bool {
        let start = self.at;
        let key = self.key().is_some();
        self.at = start;
        key
    }

    /// A one-line plain scalar; in block context (not `flow`) it ends at
    /// `: `, ` #` or the line's end, in a flow also at `,[]{}`. Trailing
    /// spaces are not part of it.
    fn plain(&mut self, flow: bool) -> Option<&'a str> {
        let start = self.at;
        let blank_or_flow = |b: u8| matches!(b, b' ' | b'\n') || flow && b",[]{}".contains(&b);
        match self.peek() {
            b'-' | b'?' | b':' if !blank_or_flow(self.peek_at(1)) => self.at += 1,
            b'-' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!'
            | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' | b' ' | b'\t' | b'\n' => {
                return None;
            }
            _ => {}
        }
        let mut end = self.at;
        loop {
            match self.peek() {
                b'\n' => break,
                b'\t' => return None,
                b':' if blank_or_flow(self.peek_at(1)) => break,
                b',' | b'[' | b']' | b'{' | b'}' if flow => break,
                b'#' if self.after_blank() => break,
                b' ' => self.at += 1,
                _ => {
                    self.at += 1;
                    end = self.at;
                }
            }
        }
        // Back to the first blank after the text (a `#` needs the blank).
        self.at = end;
        self.text.get(start..end)
    }

    /// A one-line quoted scalar without escapes (unescaping is left to
    /// the parsers behind: definitions seldom need it, and it is where
    /// YAML's rules are finest).
    fn quoted(&mut self) -> Option<(&'a str, ScalarStyle)> {
        let quote = self.peek();
        let start = self.at + 1;
        let end = start + memchr(quote, &self.bytes[start..])?;
        let raw = self.text.get(start..end)?;
        let style = if quote == b'"' {
            ScalarStyle::DoubleQuoted
        } else {
            ScalarStyle::SingleQuoted
        };
        let escaped = match style {
            ScalarStyle::DoubleQuoted => raw.contains('\\'),
            // `''` is a quote inside single quotes.
            _ => self.bytes.get(end + 1) == Some(&b'\''),
        };
        if escaped || raw.contains(['\n', '\t']) {
            return None;
        }
        self.at = end + 1;
        Some((raw, style))
    }

    /// A literal or folded block scalar, in a collection indented `indent`
    /// columns; the reader is at its `|` or `>` and is left at the start of
    /// the first line after it.
    fn block_scalar(&mut self, indent: usize) -> Option<Value> {
        let folded = self.peek() == b'>';
        self.at += 1;
        // `|-` strips the final break; `|+` and indentation indicators are
        // left to the parsers behind.
        let strip = self.peek() == b'-';
        if strip {
            self.at += 1;
        }
        self.end_of_line()?;
        self.event(1)?;
        // Its lines: empty ones, and those indented at least as much as its
        // first line with text, which must be more than the collection's.
        let mut lines: Vec<&'a str> = Vec::new();
        let mut content: Option<usize> = None;
        let mut widest_empty = 0;
        while self.at < self.bytes.len() {
            let start = self.at;
            let end = start + memchr(b'\n', &self.bytes[start..])?;
            let line = &self.text[start..end];
            let spaces = line.bytes().take_while(|&b| b == b' ').count();
            if spaces == line.len() {
                // Spaces only: an empty line, unless there are more than
                // the indentation (they would be text).
                if content.is_some_and(|c| spaces > c) {
                    return None;
                }
                widest_empty = widest_empty.max(spaces);
                lines.push("");
            } else {
                let c = match content {
                    Some(c) if spaces >= c => c,
                    Some(_) => break,
                    None if spaces > indent && widest_empty <= spaces => spaces,
                    None => return None,
                };
                // A tab or (folded) a space where the text starts: a more
                // indented line, whose breaks folding keeps.
                if line.as_bytes()[c] == b'\t' || folded && spaces > c {
                    return None;
                }
                content = Some(c);
                lines.push(&line[c..]);
            }
            self.at = end + 1;
        }
        // Only empty lines: left to the parsers behind.
        content?;
        // Trailing empty lines are not part of it.
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                let previous = lines[i - 1];
                // Folding turns the break between two lines of text into a
                // space, and drops the one before a run of empty lines
                // (each of which is one break).
                match (folded, previous.is_empty(), line.is_empty()) {
                    (true, false, false) => text.push(' '),
                    (true, false, true) => {}
                    _ => text.push('\n'),
                }
            }
            text.push_str(line);
        }
        if !strip {
            text.push('\n');
        }
        Some(Value::String(text))
    }

    /// A flow collection or scalar; the reader is at its first byte.
    fn flow_node(&mut self, depth: usize) -> Option<Value> {
        match self.peek() {
            b'[' => self.flow_sequence(depth + 1),
            b'{' => self.flow_mapping(depth + 1),
            b'\'' | b'"' => {
                let (text, style) = self.quoted()?;
                self.event(1)?;
                plain::scalar(text.into(), style)
            }
            _ => {
                let text = self.plain(true)?;
                self.event(1)?;
                plain::scalar(text.into(), ScalarStyle::Plain)
            }
        }
    }

    fn flow_sequence(&mut self, depth: usize) -> Option<Value> {
        if depth > self.max_depth {
            return None;
        }
        self.event(2)?;
        self.at += 1;
        let mut items = Vec::new();
        loop {
            self.flow_space()?;
            if self.peek() == b']' {
                self.at += 1;
                return Some(Value::Array(items));
            }
            items.push(self.flow_node(depth)?);
            self.flow_space()?;
            match self.peek() {
                b',' => self.at += 1,
                b']' => {}
                // `[a: b]`, or a scalar over several lines.
                _ => return None,
            }
        }
    }

    fn flow_mapping(&mut self, depth: usize) -> Option<Value> {
        if depth > self.max_depth {
            return None;
        }
        self.event(2)?;
        self.at += 1;
        let mut map = Map::new();
        loop {
            self.flow_space()?;
            if self.peek() == b'}' {
                self.at += 1;
                return Some(Value::Object(map));
            }
            let (key, style) = match self.peek() {
                b'\'' | b'"' => self.quoted()?,
                _ => (self.plain(true)?, ScalarStyle::Plain),
            };
            self.skip_spaces();
            // `{a: b}`, not `{a}`, `{a:b}` or `{"a":b}`.
            if self.peek() != b':'
                || !matches!(self.peek_at(1), b' ' | b'\n')
                || !plain::is_text_key(key, style)
            {
                return None;
            }
            self.at += 1;
            self.event(1)?;
            self.flow_space()?;
            if matches!(self.peek(), b',' | b'}') {
                return None;
            }
            let value = self.flow_node(depth)?;
            if map.insert(key.to_owned(), value).is_some() {
                return None;
            }
            self.flow_space()?;
            match self.peek() {
                b',' => self.at += 1,
                b'}' => {}
                _ => return None,
            }
        }
    }

    /// Past spaces, comments and line breaks inside a flow collection;
    /// its lines must be indented more than the block it is in.
    fn flow_space(&mut self) -> Option<()> {
        loop {
            self.skip_spaces();
            match self.peek() {
                b'#' if self.after_blank() => {
                    self.at += memchr(b'\n', &self.bytes[self.at..])?;
                }
                b'\n' => {}
                b'\t' => return None,
                _ => return Some(()),
            }
            // At a line break: the next line is inside the collection.
            self.at += 1;
            let start = self.at;
            self.skip_spaces();
            if self.at >= self.bytes.len()
                || self.peek() != b'\n' && self.at - start <= self.flow_indent
            {
                return None;
            }
        }
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{GENERATED, every_example_and_fixture, saphyr};
    use super::*;

    /// Every text this reads, it reads as serde-saphyr does.
    #[track_caller]
    fn agrees(text: &str) {
        let read = parse(text, Limits::default())
            .unwrap_or_else(|| panic!("not read by the subset: {text:?}"));
        assert_eq!(Ok(read), saphyr(text), "{text}");
    }

    #[test]
    fn agrees_with_serde_saphyr() {
        agrees("a: 1\nb: -2\nc: 0\nd: 1.5\ne: -0.25\nf: 12345678901234\n");
        agrees("a:\nb: ~\nc: null\nd: Null\ne: NULL\nf: true\ng: False\nh: TRUE\n");
        agrees("t: 1h30m\nq: 500m\nm: 1Gi\ns: 30s\nv: weir.dev/v1alpha1\nx: on\ny: yes\nz: No\n");
        agrees("i: python:3.12-slim\nj: \"1\"\nk: '0x10'\nl: \"true\"\nm: 'null'\nn: a b c\n");
        agrees("s: |\n  line one\n  line two\nf: >\n  folded\n  text\nk: |-\n  kept\n");
        agrees("s: |\n\n  after an empty line\n\n\n  two more\n\n\nt: 1\n");
        agrees("f: >-\n  one\n  two\n\n  three\n\n\n  four\ng: >\n\n  lead\n");
        agrees("s: |  # a comment\n    deeper\n     more # not a comment\n  # a comment\nt: x\n");
        agrees(
            "list: [a, 1, 2.5, \"x\", {k: v}]\nnested:\n  - id: x\n    deep: {a: [1, [2, [3]]]}\n  - - y\n",
        );
        agrees("\"quoted key\": 1\n'single': 2\nunicode: héllo wörld\n");
        agrees("---\na: 1\n---\nb: 2\n...\n---\n# comment\nc: {d: e}\n");
        agrees("  indented: 1\n  other: {x: y}\n");
        agrees("k: 0.1\nl: 3.0\nm: 10.000\n");
        agrees("args: [-c, -v, --flag, -x1, +plus, ~tilde, /tmp, $HOME, 128Mi, 64Mi, 2Gi]\n");
        agrees("a:\n- 1\n- 2\nb:\n  -\n  - c: d\n    e: f\n  - [g, h]\n  - |\n    text\n");
        agrees("a: { b: c,\n  d: [e,\n    f], }\ng: [\n  h, # comment\n  i\n  ]\n");
        agrees("key  : v\n'k' : w\nurl: http://x.y/z?q=1#frag\nhash: a#b\nc: d # e\n");
        agrees("# head\n\n---   # marker comment\na: 1   \n\n# tail\n");
        agrees("a: x:y\nb: -x\nc: ?x\nd: :x\ne: a, b]\n");
        agrees(GENERATED);
    }

    #[test]
    fn leaves_what_it_cannot_vouch_for_to_the_parsers_behind() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "<<: {a: 1}\n",
            "a: 1\na: 2\n",
            "a: {b: 1, b: 2}\n",
            "a: 0x10\n",
            "a: 007\n",
            "a: 1e3\n",
            "a: .inf\n",
            "a: -\n",
            "1: a\n",
            "~: a\n",
            "? [a]\n: b\n",
            "- a\n",
            "just text\n",
            "a: 1\n---\n",
            "a: [\n",
            "a: 1",
            "a: 1\r\n",
            "\u{feff}a: 1\n",
            "a:\tb\n",
            "a:\n\t- b\n",
            "a: \"x\\ny\"\n",
            "a: 'it''s'\n",
            "a: \"two\n  lines\"\n",
            "a: plain\n  continued\n",
            "a: [b\n  c]\n",
            "a: [b,\nc]\n",
            "a: |+\n  kept\n\n",
            "a: |2\n   x\n",
            "a: >\n  x\n    more indented\n",
            "a: |\n",
            "a: b: c\n",
            "a: [b: c]\n",
            "a: {b}\n",
            "a: {b:c}\n",
            "a: [b, , c]\n",
            "%YAML 1.2\n---\na: 1\n",
            "a: 1\n...\nb: 2\n",
            "a: 1\n b: 2\n",
            "  a: 1\nb: 2\n",
            "a: @x\n",
            "a: \u{85}\n",
        ] {
            assert_eq!(parse(text, Limits::default()), None, "{text:?}");
        }
    }

    /// The repository's examples and fixtures: wherever this reads one, it
    /// reads it as serde-saphyr does; and it reads every example.
    #[test]
    fn agrees_on_every_example_and_fixture() {
        every_example_and_fixture(parse, "the subset");
    }

    /// Block YAML from the pieces this reader decides on.
    fn yamlish() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let scalar = prop_oneof![
            "-?[0-9]{1,20}(\\.[0-9]{0,4})?",
            "[-+.?:]?[0-9a-fxoe_.]{1,6}",
            "[a-zA-Z~/$-][a-zA-Z0-9 ._:/#,-]{0,10}",
            Just(String::new()),
            "(true|false|null|~|inf|on|<<|- a|: a|a: b|a #c)",
            "'[a-z0-9 #:]{0,4}'",
            "\"[a-z0-9 #:\\\\]{0,4}\"",
        ];
        let key = prop_oneof![8 => "[a-z][a-z0-9_-]{0,6}", 1 => scalar.clone()];
        let indent = prop_oneof![Just(""), Just(" "), Just("  "), Just("    ")];
        let line = prop_oneof![
            8 => (indent.clone(), key.clone(), scalar.clone()).prop_map(|(i, k, v)| format!("{i}{k}: {v}\n")),
            3 => (indent.clone(), key.clone()).prop_map(|(i, k)| format!("{i}{k}:\n")),
            3 => (indent.clone(), scalar.clone()).prop_map(|(i, v)| format!("{i}- {v}\n")),
            2 => (indent.clone(), key.clone(), scalar.clone()).prop_map(|(i, k, v)| format!("{i}- {k}: {v}\n")),
            2 => (indent.clone(), key.clone(), scalar.clone()).prop_map(|(i, k, v)| format!("{i}{k}: [{v}, {v}]\n")),
            2 => (indent.clone(), key.clone(), key.clone(), scalar.clone())
                .prop_map(|(i, k, j, v)| format!("{i}{k}: {{ {j}: {v},\n{i}  x: [{v}] }}\n")),
            2 => (indent.clone(), key.clone(), "[|>]-?", indent.clone(), "[a-z #]{0,5}")
                .prop_map(|(i, k, s, j, t)| format!("{i}{k}: {s}\n{i}  {t}\n\n{i}{j}  {t}\n")),
            1 => indent.clone().prop_map(|i| format!("{i}# comment\n")),
            1 => Just("\n".to_owned()),
            1 => Just("---\n".to_owned()),
            1 => Just("...\n".to_owned()),
        ];
        proptest::collection::vec(line, 1..10).prop_map(|lines| lines.concat())
    }

    /// A document's structure, with the style each collection is written in.
    #[derive(Debug, Clone)]
    enum Tree {
        Scalar(String),
        /// A block scalar's header and lines.
        Block(String, Vec<String>),
        /// Entries, whether written as a flow, and the indentation step.
        Map(Vec<(String, Tree)>, bool, usize),
        Seq(Vec<Tree>, bool, usize),
    }

    fn scalars() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "-?[0-9]{1,20}(\\.[0-9]{0,4})?",
            "[-+.?:]?[0-9a-fxoe_.]{1,6}",
            "[a-zA-Z~/$-][a-zA-Z0-9 ._:/#,-]{0,10}",
            Just(String::new()),
            "(true|false|null|~|inf|on|<<|- a|: a|a: b|a #c|x # comment|\\[\\]|\\{\\})",
            "'[a-z0-9 #:]{0,4}'",
            "\"[a-z0-9 #:\\\\]{0,4}\"",
        ]
    }

    fn keys() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![8 => "[a-z][a-z0-9_-]{0,6}", 1 => scalars()]
    }

    fn trees() -> impl proptest::strategy::Strategy<Value = Tree> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            4 => scalars().prop_map(Tree::Scalar),
            1 => ("[|>]-?( # c)?", proptest::collection::vec("( {0,2}[a-z #]{0,6}|)", 1..4))
                .prop_map(|(h, lines)| Tree::Block(h, lines)),
        ];
        leaf.prop_recursive(5, 40, 4, |inner| {
            prop_oneof![
                (
                    proptest::collection::vec((keys(), inner.clone()), 0..4),
                    proptest::bool::weighted(0.2),
                    0..4usize
                )
                    .prop_map(|(entries, flow, step)| Tree::Map(entries, flow, step)),
                (
                    proptest::collection::vec(inner, 0..4),
                    proptest::bool::weighted(0.2),
                    0..4usize
                )
                    .prop_map(|(items, flow, step)| Tree::Seq(items, flow, step)),
            ]
        })
    }

    /// `tree` as a flow node.
    fn flow(tree: &Tree) -> String {
        match tree {
            Tree::Scalar(s) => s.clone(),
            Tree::Block(_, lines) => format!("'{}'", lines.concat()),
            Tree::Map(entries, ..) => {
                let entries: Vec<_> = entries
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", flow(v)))
                    .collect();
                format!("{{ {} }}", entries.join(", "))
            }
            Tree::Seq(items, ..) => {
                let items: Vec<_> = items.iter().map(flow).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }

    /// The entries of a block mapping, the first one's key already
    /// written (`first_inline`: after a sequence's `- `).
    fn block_map(entries: &[(String, Tree)], indent: usize, first_inline: bool, out: &mut String) {
        for (i, (key, value)) in entries.iter().enumerate() {
            if !(first_inline && i == 0) {
                out.push_str(&" ".repeat(indent));
            }
            out.push_str(key);
            out.push(':');
            after_indicator(value, indent, false, out);
        }
    }

    fn block_seq(items: &[Tree], indent: usize, first_inline: bool, out: &mut String) {
        for (i, item) in items.iter().enumerate() {
            if !(first_inline && i == 0) {
                out.push_str(&" ".repeat(indent));
            }
            out.push('-');
            after_indicator(item, indent, true, out);
        }
    }

    /// A node after a key's `:` or an entry's `-` in a collection at `indent`.
    fn after_indicator(tree: &Tree, indent: usize, entry: bool, out: &mut String) {
        match tree {
            Tree::Scalar(s) => out.push_str(&format!(" {s}\n")),
            Tree::Block(header, lines) => {
                out.push_str(&format!(" {header}\n"));
                for line in lines {
                    out.push_str(&format!("{}{line}\n", " ".repeat(indent + 2)));
                }
            }
            Tree::Map(entries, false, step) if !entries.is_empty() => {
                if entry && *step % 2 == 0 {
                    out.push(' ');
                    block_map(entries, indent + 2, true, out);
                } else {
                    out.push('\n');
                    block_map(entries, indent + step, false, out);
                }
            }
            Tree::Seq(items, false, step) if !items.is_empty() => {
                if entry && *step % 2 == 0 {
                    out.push(' ');
                    block_seq(items, indent + 2, true, out);
                } else {
                    out.push('\n');
                    block_seq(items, indent + step, false, out);
                }
            }
            _ => out.push_str(&format!(" {}\n", flow(tree))),
        }
    }

    /// Documents built from trees, each written in block style.
    fn documents() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let document = (
            proptest::collection::vec((keys(), trees()), 1..5),
            0..3usize,
        );
        proptest::collection::vec(document, 1..3).prop_map(|docs| {
            let mut out = String::new();
            for (i, (entries, indent)) in docs.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                block_map(entries, *indent, false, &mut out);
            }
            out
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4096, ..Default::default() })]

        /// Whatever this reads, serde-saphyr reads alike; it never reads
        /// what serde-saphyr refuses.
        #[test]
        fn never_reads_otherwise_than_serde_saphyr(text in yamlish()) {
            if let Some(read) = parse(&text, Limits::default()) {
                proptest::prop_assert_eq!(Ok(read), saphyr(&text), "{:?}", text);
            }
        }

        /// The same for whole documents of nested collections.
        #[test]
        fn never_reads_a_document_otherwise_than_serde_saphyr(text in documents()) {
            if let Some(read) = parse(&text, Limits::default()) {
                proptest::prop_assert_eq!(Ok(read), saphyr(&text), "{:?}", text);
            }
        }
    }

    #[test]
    fn stays_inside_the_budgets() {
        let deep = format!("a: {}1{}\n", "[".repeat(40), "]".repeat(40));
        assert_eq!(parse(&deep, Limits::default()), None);
        let limits = Limits {
            max_nodes: 10,
            ..Limits::default()
        };
        assert_eq!(parse(&format!("a:\n{}", "- x\n".repeat(10)), limits), None);
        let half = serde_saphyr::Budget::default().max_total_scalar_bytes / 2;
        assert_eq!(
            parse(&format!("a: {}\n", "x".repeat(half)), Limits::default()),
            None
        );
        let documents = Limits {
            max_documents: 4,
            ..Limits::default()
        };
        assert_eq!(parse("a: 1\n---\nb: 2\n---\nc: 3\n", documents), None);
    }
}
