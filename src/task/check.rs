//! What a task type checks of its body when `weir validate` runs, as data:
//! a [`Finding`] names its rule and a place inside the body; validation
//! turns it into a diagnostic at that place's line and column (so a type
//! never needs `validate`, which sits above it).
//!
//! The checks every type with `{{ inputs.x }}` in its body wants are here:
//! [`check_template`] (only the task's own inputs) and
//! [`check_inputs_in_code`] (no value that could carry code written into
//! code, the rule [`super::interpolate`] enforces again at run time).

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::code::{self, Language};
use crate::spec::template::{self, Reference};
use crate::spec::types::TypeExpr;

/// What a check sees of its task besides its body.
pub struct TaskView<'a> {
    /// Each declared input and its type (`None`: the declaration does not
    /// parse, which is reported already).
    pub inputs: BTreeMap<&'a str, Option<&'a TypeExpr>>,
    /// Each declared output and its type, likewise.
    pub outputs: BTreeMap<&'a str, Option<&'a TypeExpr>>,
    /// Every file of the source that is not a definition, `/`-separated,
    /// from the source's root.
    pub paths: &'a BTreeSet<String>,
}

impl TaskView<'_> {
    /// The declared type of output `name`, when it is declared and parses.
    pub fn output_type(&self, name: &str) -> Option<&TypeExpr> {
        self.outputs.get(name).copied().flatten()
    }
}

/// Which rule a finding breaks; each is one diagnostic code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A `{{ … }}` that does not parse, or names what a task cannot see.
    InvalidTemplate,
    /// `{{ inputs.name }}` of an input the task does not declare
    /// (validation suggests the closest one).
    UnknownInput { name: String },
    /// An input whose value could carry code, written into code.
    InputAsCode,
    /// The notebook a task runs is not in the source.
    MissingNotebook,
    /// Another repository file a task runs is not in the source (checked
    /// by validation for every type, from
    /// [`super::TaskType::repository_files`]).
    MissingFile,
    /// A query parameter whose input is not a single value a query can
    /// bind (a list, a map, JSON; a file where the engine cannot read it).
    ParameterNotScalar,
    /// A query parameter inside a string literal, a quoted identifier or a
    /// comment, where its value would become text.
    ParameterInQuotes,
    /// An output the task's type cannot fill.
    UnfillableOutput,
    /// Anything else a type refuses in its body.
    InvalidBody,
}

/// One thing wrong with a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    /// Where, as a JSON pointer inside the body (`/command/0`; empty: the
    /// body itself).
    pub pointer: String,
    /// A text inside the value at `pointer` and which occurrence of it
    /// (0-based), for a finding about one placeholder of a longer text.
    pub within: Option<(String, usize)>,
    pub message: String,
    pub help: Option<String>,
    /// `pointer` is inside the task's `spec` rather than its body (an
    /// output's declaration, say).
    pub in_spec: bool,
}

impl Finding {
    pub fn new(rule: Rule, pointer: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            rule,
            pointer: pointer.into(),
            within: None,
            message: message.into(),
            help: None,
            in_spec: false,
        }
    }

    /// A finding of [`Rule::InvalidBody`].
    pub fn invalid(pointer: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding::new(Rule::InvalidBody, pointer, message)
    }

    pub fn within(mut self, text: impl Into<String>, nth: usize) -> Finding {
        self.within = Some((text.into(), nth));
        self
    }

    /// The finding is at `pointer` inside the task's `spec` (`/outputs/x`),
    /// not inside its body.
    pub fn in_spec(mut self) -> Finding {
        self.in_spec = true;
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Finding {
        self.help = Some(help.into());
        self
    }
}

/// Templates in a task body may reference the task's own inputs only.
pub fn check_template(text: &str, pointer: &str, task: &TaskView<'_>) -> Vec<Finding> {
    let parsed = match template::parse(text) {
        Ok(t) => t,
        Err(e) => return vec![Finding::new(Rule::InvalidTemplate, pointer, e.to_string())],
    };
    let mut found = Vec::new();
    for reference in parsed.references() {
        match reference {
            Reference::Input(name) if !task.inputs.contains_key(name.as_str()) => {
                found.push(Finding::new(
                    Rule::UnknownInput { name: name.clone() },
                    pointer,
                    format!("`{{{{ inputs.{name} }}}}` references an input this task does not declare"),
                ));
            }
            Reference::Input(_) => {}
            Reference::NodeOutput { .. } => found.push(
                Finding::new(Rule::InvalidTemplate, pointer, format!("a task cannot reference `{reference}`"))
                    .with_help("task bodies see only their own inputs; bind node outputs to task inputs in the workflow"),
            ),
        }
    }
    found
}

/// `{{ inputs.x }}` written into code (a script's source, or the argument
/// [`code::code_argument`] finds: `sh -c`'s script, `python -c`'s…) is
/// refused unless `x`'s type cannot carry code (int, float, bool, enum): a
/// string's value would run as code. Each placeholder is reported at its
/// own line and column.
pub fn check_inputs_in_code(
    text: &str,
    pointer: &str,
    reader: Language,
    task: &TaskView<'_>,
) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (placeholder, name) in input_placeholders(text) {
        let nth = seen.iter().filter(|p| **p == placeholder).count();
        seen.push(placeholder);
        let Some(ty) = task.inputs.get(name).copied().flatten() else {
            continue; // unknown input or invalid type: reported already
        };
        if ty.is_code_safe() {
            continue;
        }
        let form = reader.reads(&code::input_variable_name(name));
        found.push(
            Finding::new(
                Rule::InputAsCode,
                pointer,
                format!(
                    "`{placeholder}` writes the `{ty}` input `{name}` into code, where its value would run as code"
                ),
            )
            .within(placeholder, nth)
            .with_help(format!(
                "read it from the environment: {form} (only int, float, bool and enum inputs may be written into code)"
            )),
        );
    }
    found
}

/// Each `{{ inputs.NAME }}` of `text`, as written, with its name.
fn input_placeholders(text: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(start) = text[rest..].find("{{").map(|i| rest + i) {
        let Some(end) = text[start + 2..].find("}}").map(|i| start + 2 + i) else {
            break;
        };
        let placeholder = &text[start..end + 2];
        if let Some(name) = text[start + 2..end].trim().strip_prefix("inputs.") {
            found.push((placeholder, name));
        }
        rest = end + 2;
    }
    found
}
