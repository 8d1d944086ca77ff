//! `{{ inputs.x }}` in a query, found by a small SQL lexer and turned into
//! the engine's bind parameters: the value is data, never part of the
//! statement's text.
//!
//! The lexer knows just enough SQL to tell where a placeholder sits: in the
//! statement (it becomes a parameter), or inside a string literal (`'…'`),
//! a quoted identifier (`"…"`, `` `…` ``), a PostgreSQL dollar quote
//! (`$$…$$`, `$tag$…$tag$`) or a comment (`-- …`, `/* … */`), where a
//! parameter cannot go and a value would become text: that is refused,
//! by validation (W038) and again when the attempt launches.

use crate::spec::template::{self, Reference};

/// How an engine writes its positional parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// `$1`, `$2`, … (PostgreSQL).
    Numbered,
    /// `?` (DuckDB, Spark SQL, Trino's `EXECUTE … USING`).
    Question,
}

/// One `{{ … }}` of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder<'q> {
    /// As written, braces included.
    pub written: &'q str,
    /// What it references (or why it does not parse).
    pub reference: Result<Reference, template::Error>,
    /// What it sits inside, when not in the statement itself: `a string
    /// literal`, `a comment`, …
    pub inside: Option<&'static str>,
}

/// Why a query cannot be turned into a statement with parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error(
        "`{written}` sits inside {inside}, where a value would become text: write it outside the quotes (`WHERE name = {written}`)"
    )]
    Quoted {
        written: String,
        inside: &'static str,
    },
    #[error(transparent)]
    Template(#[from] template::Error),
    #[error("`{0}` in a query can only reference the task's inputs (`{{{{ inputs.NAME }}}}`)")]
    NotAnInput(String),
}

/// A query with its placeholders replaced by parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    /// The input bound to each parameter, in order (an input written twice
    /// is bound twice).
    pub inputs: Vec<String>,
}

/// What the lexer is inside of.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Statement,
    Quoted(char),
    LineComment,
    BlockComment,
    Dollar(String),
}

impl State {
    fn describe(&self) -> Option<&'static str> {
        match self {
            State::Statement => None,
            State::Quoted('\'') => Some("a string literal"),
            State::Quoted(_) => Some("a quoted identifier"),
            State::LineComment | State::BlockComment => Some("a comment"),
            State::Dollar(_) => Some("a dollar-quoted string"),
        }
    }
}

/// One piece of a query: text as written, or a placeholder.
enum Piece<'q> {
    Text(&'q str),
    Placeholder(Placeholder<'q>),
}

/// Splits `query` into text and placeholders (`{{ … }}` whose content is a
/// dotted path, as [`template::parse`] reads them).
fn lex(query: &str) -> Vec<Piece<'_>> {
    let bytes = query.as_bytes();
    let mut pieces = Vec::new();
    let mut state = State::Statement;
    let (mut i, mut text_start) = (0, 0);
    while i < bytes.len() {
        let rest = &query[i..];
        if rest.starts_with("{{")
            && let Some(end) = rest[2..].find("}}")
        {
            let written = &rest[..end + 4];
            if let Ok(parsed) = template::parse(written).map(|t| t.single_reference().cloned())
                && parsed.is_none()
            {
                // `{{x}}` that is no reference: plain text, as in templates.
                i += written.len();
                continue;
            }
            pieces.push(Piece::Text(&query[text_start..i]));
            let reference = template::parse(written).and_then(|t| {
                t.single_reference()
                    .cloned()
                    .ok_or_else(|| template::Error::Unknown {
                        path: written.to_owned(),
                    })
            });
            pieces.push(Piece::Placeholder(Placeholder {
                written,
                reference,
                inside: state.describe(),
            }));
            i += written.len();
            text_start = i;
            continue;
        }
        let c = rest.chars().next().expect("not at the end");
        state = match (&state, c) {
            (State::Statement, '\'' | '"' | '`') => State::Quoted(c),
            (State::Statement, '-') if rest.starts_with("--") => {
                i += 1;
                State::LineComment
            }
            (State::Statement, '/') if rest.starts_with("/*") => {
                i += 1;
                State::BlockComment
            }
            (State::Statement, '$') => match dollar_tag(rest) {
                Some(tag) => {
                    i += tag.len() - 1;
                    State::Dollar(tag.to_owned())
                }
                None => State::Statement,
            },
            (State::Quoted(q), _) if c == *q => {
                // A doubled quote is an escaped one, still inside.
                if rest[c.len_utf8()..].starts_with(c) {
                    i += c.len_utf8();
                    state.clone()
                } else {
                    State::Statement
                }
            }
            (State::LineComment, '\n') => State::Statement,
            (State::BlockComment, '*') if rest.starts_with("*/") => {
                i += 1;
                State::Statement
            }
            (State::Dollar(tag), '$') if rest.starts_with(tag.as_str()) => {
                i += tag.len() - 1;
                State::Statement
            }
            _ => state,
        };
        i += c.len_utf8();
    }
    pieces.push(Piece::Text(&query[text_start..]));
    pieces
}

/// `$$` or `$tag$` at the start of `text` (not `$1`, a parameter).
fn dollar_tag(text: &str) -> Option<&str> {
    let end = text[1..].find('$')? + 1;
    let tag = &text[1..end];
    let valid = tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !tag.starts_with(|c: char| c.is_ascii_digit());
    valid.then(|| &text[..=end])
}

/// Every placeholder of `query`, in order.
pub fn placeholders(query: &str) -> Vec<Placeholder<'_>> {
    lex(query)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder(p) => Some(p),
            Piece::Text(_) => None,
        })
        .collect()
}

/// `query` with each placeholder replaced by a parameter `marker` writes.
pub fn statement(query: &str, marker: Marker) -> Result<Statement, ParamError> {
    let mut text = String::with_capacity(query.len());
    let mut inputs = Vec::new();
    for piece in lex(query) {
        match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Placeholder(p) => {
                if let Some(inside) = p.inside {
                    return Err(ParamError::Quoted {
                        written: p.written.to_owned(),
                        inside,
                    });
                }
                match p.reference? {
                    Reference::Input(name) => inputs.push(name),
                    other => return Err(ParamError::NotAnInput(other.to_string())),
                }
                match marker {
                    Marker::Numbered => text.push_str(&format!("${}", inputs.len())),
                    Marker::Question => text.push('?'),
                }
            }
        }
    }
    Ok(Statement { text, inputs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_parameters_in_the_engine_s_syntax() {
        let query =
            "SELECT * FROM t WHERE a = {{ inputs.a }} AND b > {{inputs.b}} OR a = {{ inputs.a }}";
        let numbered = statement(query, Marker::Numbered).expect("a statement");
        assert_eq!(
            numbered.text,
            "SELECT * FROM t WHERE a = $1 AND b > $2 OR a = $3"
        );
        assert_eq!(numbered.inputs, ["a", "b", "a"]);
        let question = statement(query, Marker::Question).expect("a statement");
        assert_eq!(
            question.text,
            "SELECT * FROM t WHERE a = ? AND b > ? OR a = ?"
        );
    }

    #[test]
    fn a_placeholder_inside_quotes_or_a_comment_is_refused() {
        for (query, inside) in [
            ("SELECT '{{ inputs.a }}'", "a string literal"),
            ("SELECT 'it''s {{ inputs.a }}'", "a string literal"),
            ("SELECT \"{{ inputs.a }}\" FROM t", "a quoted identifier"),
            ("SELECT `{{ inputs.a }}` FROM t", "a quoted identifier"),
            ("SELECT 1 -- {{ inputs.a }}\n", "a comment"),
            ("SELECT 1 /* {{ inputs.a }} */", "a comment"),
            ("SELECT $$ {{ inputs.a }} $$", "a dollar-quoted string"),
            (
                "SELECT $q$ it's {{ inputs.a }} $q$",
                "a dollar-quoted string",
            ),
        ] {
            let found = placeholders(query);
            assert_eq!(found.len(), 1, "{query}");
            assert_eq!(found[0].inside, Some(inside), "{query}");
            let error = statement(query, Marker::Numbered).expect_err(query);
            assert!(error.to_string().contains(inside), "{error}");
        }
    }

    #[test]
    fn quotes_and_comments_end_where_sql_ends_them() {
        let query =
            "SELECT 'a''b', \"c\", $$d$$, $1 -- x\n /* y */ FROM t WHERE a = {{ inputs.a }}";
        let s = statement(query, Marker::Numbered).expect("outside every quote");
        assert!(s.text.ends_with("WHERE a = $1"), "{}", s.text);
        assert_eq!(s.inputs, ["a"]);
    }

    #[test]
    fn braces_that_are_no_reference_stay_text() {
        let s = statement("SELECT '{{x}}', {{ inputs.a }}", Marker::Question).expect("ok");
        assert_eq!(s.text, "SELECT '{{x}}', ?");
        let error = statement("SELECT {{ nodes.a.outputs.b }}", Marker::Question)
            .expect_err("not an input");
        assert!(error.to_string().contains("inputs.NAME"), "{error}");
    }
}
