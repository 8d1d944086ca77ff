//! Bindings and templates: `{{ inputs.day }}`, `{{ nodes.extract.outputs.events }}`.
//!
//! A `{{ ... }}` whose content is a dotted path (`a.b...`) is a reference and
//! must be well-formed; anything else between braces (`{{x}}` in a Python
//! f-string, `{{ range }}` of another template language) is plain text, so
//! scripts do not need escaping. A binding that is exactly one reference
//! carries the referenced type; any text around it makes a `string`.

use std::fmt;

/// What a template may point at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// `inputs.NAME`: an input of the enclosing workflow or task.
    Input(String),
    /// `nodes.ID.outputs.NAME`: an output of an upstream node.
    NodeOutput { node: String, output: String },
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Input(name) => write!(f, "inputs.{name}"),
            Reference::NodeOutput { node, output } => write!(f, "nodes.{node}.outputs.{output}"),
        }
    }
}

/// A string split into text and references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Ref(Reference),
}

impl Template {
    /// The reference when the whole string is exactly one `{{ ... }}`.
    pub fn single_reference(&self) -> Option<&Reference> {
        match self.parts.as_slice() {
            [Part::Ref(r)] => Some(r),
            _ => None,
        }
    }

    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Text(_) => None,
        })
    }
}

/// Why a text is not a template: a reference that is not well-formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `text` (the whole template) opens a reference it never closes.
    #[error("`{{{{` without a closing `}}}}` in `{text}`")]
    Unclosed { text: String },
    #[error("`{{{{ {path} }}}}` has an empty path segment")]
    EmptySegment { path: String },
    /// `input.NAME`: `inputs.NAME` was meant.
    #[error("unknown reference `{path}`; did you mean `inputs.{name}`?")]
    InputTypo { path: String, name: String },
    /// `nodes.ID.NAME`: `nodes.ID.outputs.NAME` was meant.
    #[error("unknown reference `{path}`; did you mean `nodes.{node}.outputs.{output}`?")]
    MissingOutputs {
        path: String,
        node: String,
        output: String,
    },
    #[error(
        "unknown reference `{path}`; a template references `inputs.NAME` or `nodes.ID.outputs.NAME`"
    )]
    Unknown { path: String },
}

/// Splits `text` into literal parts and references.
pub fn parse(text: &str) -> Result<Template, Error> {
    let mut parts = Vec::new();
    let mut rest = text;
    let mut literal = String::new();
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            if looks_like_path(after.trim()) {
                return Err(Error::Unclosed {
                    text: text.to_owned(),
                });
            }
            break;
        };
        let inner = after[..end].trim();
        literal.push_str(&rest[..start]);
        if looks_like_path(inner) {
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Ref(parse_reference(inner)?));
        } else {
            literal.push_str(&rest[start..start + 2 + end + 2]);
        }
        rest = &after[end + 2..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    Ok(Template { parts })
}

fn looks_like_path(inner: &str) -> bool {
    inner.contains('.')
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn parse_reference(path: &str) -> Result<Reference, Error> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(Error::EmptySegment {
            path: path.to_owned(),
        });
    }
    match segments.as_slice() {
        ["inputs", name] => Ok(Reference::Input((*name).to_owned())),
        ["nodes", node, "outputs", output] => Ok(Reference::NodeOutput {
            node: (*node).to_owned(),
            output: (*output).to_owned(),
        }),
        ["input", name] => Err(Error::InputTypo {
            path: path.to_owned(),
            name: (*name).to_owned(),
        }),
        ["nodes", node, output] => Err(Error::MissingOutputs {
            path: path.to_owned(),
            node: (*node).to_owned(),
            output: (*output).to_owned(),
        }),
        _ => Err(Error::Unknown {
            path: path.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_reference_carries_its_type() {
        let t = parse("{{ nodes.extract.outputs.events }}").unwrap();
        assert_eq!(
            t.single_reference(),
            Some(&Reference::NodeOutput {
                node: "extract".into(),
                output: "events".into()
            })
        );
        let t = parse("day={{inputs.day}}").unwrap();
        assert_eq!(t.single_reference(), None);
        assert_eq!(t.references().count(), 1);
    }

    #[test]
    fn braces_of_other_languages_are_text() {
        let t = parse("print(f\"{{x}} {{ y }}\")").unwrap();
        assert_eq!(t.references().count(), 0);
        assert!(
            parse("{{ input.day }}")
                .unwrap_err()
                .to_string()
                .contains("inputs.day")
        );
        assert!(parse("{{ nodes.a.b.c.d }}").is_err());
        assert!(parse("{{ inputs.day").is_err());
    }
}
