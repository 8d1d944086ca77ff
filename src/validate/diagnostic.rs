//! Diagnostics as data: a code, a severity, a message, a help line and a
//! position. Every check produces these; only `cli::render` turns them into
//! text, JSON or GitHub annotations.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::spec::yaml::Pos;

/// Every diagnostic weir can report. The code (`W012`) and the name
/// (`unknown-task`) are stable: CI scripts and docs refer to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    FileTooLarge,
    SymlinkEscape,
    UnreadableFile,
    YamlSyntax,
    DuplicateKey,
    YamlLimit,
    SchemaViolation,
    UnknownField,
    DuplicateDefinition,
    InvalidName,
    UnknownTask,
    UnknownWorkflow,
    DependencyCycle,
    TypeMismatch,
    UnknownNode,
    UnknownOutput,
    UnknownInput,
    MissingInput,
    InvalidTemplate,
    UnknownAfter,
    InvalidCron,
    InvalidTimezone,
    InvalidDuration,
    InvalidQuantity,
    InvalidKickoffInput,
    UnfilledInput,
    InvalidType,
    DuplicateNode,
    InvalidDefault,
    MissingNotebook,
    RedundantAfter,
    InvalidPortName,
    ConflictingInput,
    DurationOutOfRange,
    InputAsCode,
    MissingFile,
    InvalidTaskBody,
    /// A `sql` query parameter whose input is not a value a query binds.
    ParameterNotScalar,
    /// A `sql` query parameter inside quotes or a comment.
    ParameterInQuotes,
    /// An output the task's type cannot fill.
    UnfillableOutput,
    InvalidSidecar,
    /// A `when:` that is not a CEL condition weir can evaluate.
    InvalidCondition,
    /// A `when:` whose types do not fit (a string compared to a number).
    ConditionType,
    /// A workflow output bound to a node a `when:` may skip, not declared
    /// optional.
    SkippableOutput,
    /// A `map.over` that is not a list, or whose items do not fit the
    /// `map.as` input.
    MapOver,
    /// A `map.as` that names no input of the task, is also bound in
    /// `inputs:`, or a `map:` on something other than a task.
    MapItem,
    /// A launch plan trigger weir cannot watch or whose event does not
    /// fit the workflow (an `artifact` input that is not a `file`, an
    /// `upstream` binding of an unknown or ill-typed value, …).
    InvalidTrigger,
}

impl Code {
    pub const ALL: [Code; 47] = [
        Code::FileTooLarge,
        Code::SymlinkEscape,
        Code::UnreadableFile,
        Code::YamlSyntax,
        Code::DuplicateKey,
        Code::YamlLimit,
        Code::SchemaViolation,
        Code::UnknownField,
        Code::DuplicateDefinition,
        Code::InvalidName,
        Code::UnknownTask,
        Code::UnknownWorkflow,
        Code::DependencyCycle,
        Code::TypeMismatch,
        Code::UnknownNode,
        Code::UnknownOutput,
        Code::UnknownInput,
        Code::MissingInput,
        Code::InvalidTemplate,
        Code::UnknownAfter,
        Code::InvalidCron,
        Code::InvalidTimezone,
        Code::InvalidDuration,
        Code::InvalidQuantity,
        Code::InvalidKickoffInput,
        Code::UnfilledInput,
        Code::InvalidType,
        Code::DuplicateNode,
        Code::InvalidDefault,
        Code::MissingNotebook,
        Code::RedundantAfter,
        Code::InvalidPortName,
        Code::ConflictingInput,
        Code::DurationOutOfRange,
        Code::InputAsCode,
        Code::MissingFile,
        Code::InvalidTaskBody,
        Code::ParameterNotScalar,
        Code::ParameterInQuotes,
        Code::UnfillableOutput,
        Code::InvalidSidecar,
        Code::InvalidCondition,
        Code::ConditionType,
        Code::SkippableOutput,
        Code::MapOver,
        Code::MapItem,
        Code::InvalidTrigger,
    ];

    /// The short code, e.g. `W012`.
    pub fn id(self) -> &'static str {
        self.describe().0
    }

    /// The readable name, e.g. `unknown-task`.
    pub fn name(self) -> &'static str {
        self.describe().1
    }

    /// Warnings are reported but do not fail validation.
    pub fn severity(self) -> Severity {
        match self {
            Code::RedundantAfter => Severity::Warning,
            _ => Severity::Error,
        }
    }

    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Code::FileTooLarge => ("W001", "file-too-large"),
            Code::SymlinkEscape => ("W002", "symlink-escape"),
            Code::UnreadableFile => ("W003", "unreadable-file"),
            Code::YamlSyntax => ("W004", "yaml-syntax"),
            Code::DuplicateKey => ("W005", "duplicate-key"),
            Code::YamlLimit => ("W006", "yaml-limit"),
            Code::SchemaViolation => ("W007", "schema-violation"),
            Code::UnknownField => ("W008", "unknown-field"),
            Code::DuplicateDefinition => ("W010", "duplicate-definition"),
            Code::InvalidName => ("W011", "invalid-name"),
            Code::UnknownTask => ("W012", "unknown-task"),
            Code::UnknownWorkflow => ("W013", "unknown-workflow"),
            Code::DependencyCycle => ("W014", "dependency-cycle"),
            Code::TypeMismatch => ("W015", "type-mismatch"),
            Code::UnknownNode => ("W016", "unknown-node"),
            Code::UnknownOutput => ("W017", "unknown-output"),
            Code::UnknownInput => ("W018", "unknown-input"),
            Code::MissingInput => ("W019", "missing-input"),
            Code::InvalidTemplate => ("W020", "invalid-template"),
            Code::UnknownAfter => ("W021", "unknown-after"),
            Code::InvalidCron => ("W022", "invalid-cron"),
            Code::InvalidTimezone => ("W023", "invalid-timezone"),
            Code::InvalidDuration => ("W024", "invalid-duration"),
            Code::InvalidQuantity => ("W025", "invalid-quantity"),
            Code::InvalidKickoffInput => ("W026", "invalid-kickoff-input"),
            Code::UnfilledInput => ("W027", "unfilled-input"),
            Code::InvalidType => ("W028", "invalid-type"),
            Code::DuplicateNode => ("W029", "duplicate-node"),
            Code::InvalidDefault => ("W030", "invalid-default"),
            Code::MissingNotebook => ("W031", "missing-notebook"),
            Code::RedundantAfter => ("W032", "redundant-after"),
            Code::InvalidPortName => ("W033", "invalid-port-name"),
            Code::ConflictingInput => ("W034", "conflicting-input"),
            Code::DurationOutOfRange => ("W035", "duration-out-of-range"),
            Code::InputAsCode => ("W036", "input-as-code"),
            Code::ParameterNotScalar => ("W037", "parameter-not-scalar"),
            Code::ParameterInQuotes => ("W038", "parameter-in-quotes"),
            Code::MissingFile => ("W039", "missing-file"),
            Code::InvalidTaskBody => ("W040", "invalid-task-body"),
            Code::UnfillableOutput => ("W041", "unfillable-output"),
            Code::InvalidSidecar => ("W042", "invalid-sidecar"),
            Code::InvalidCondition => ("W043", "invalid-condition"),
            Code::ConditionType => ("W044", "condition-type"),
            Code::SkippableOutput => ("W045", "skippable-output"),
            Code::MapOver => ("W046", "map-over"),
            Code::MapItem => ("W047", "map-item"),
            Code::InvalidTrigger => ("W048", "invalid-trigger"),
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id(), self.name())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
    /// Path relative to the validated root, with `/` separators.
    pub file: PathBuf,
    /// Unknown only for errors about a whole file that has no text (unreadable).
    pub pos: Option<Pos>,
    /// Where inside which document, until `validate` turns it into `pos`.
    pub(crate) site: Option<Site>,
}

/// A place inside a document, named by a JSON pointer. Checks name places
/// this way because the fast parse keeps no positions; `validate` re-reads
/// only the files that have findings to turn sites into lines and columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    /// Index of the document in its file (empty documents not counted).
    pub doc: usize,
    pub pointer: String,
    /// Point at the key of the pointer's last step rather than its value.
    pub key: bool,
    /// Point inside the value, at the `n`-th occurrence (0-based) of this
    /// text from the value's start (a `{{ inputs.x }}` in a script).
    pub needle: Option<(String, usize)>,
}

impl Diagnostic {
    pub fn new(
        code: Code,
        file: impl Into<PathBuf>,
        pos: Option<Pos>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            help: None,
            file: file.into(),
            pos,
            site: None,
        }
    }

    /// A finding at `pointer` inside document `doc` of `file`.
    pub(crate) fn at_site(
        code: Code,
        file: impl Into<PathBuf>,
        doc: usize,
        pointer: impl Into<String>,
        key: bool,
        message: impl Into<String>,
    ) -> Self {
        let mut d = Diagnostic::new(code, file, None, message);
        d.site = Some(Site {
            doc,
            pointer: pointer.into(),
            key,
            needle: None,
        });
        d
    }

    /// Points at the `nth` occurrence (0-based) of `text` inside the value
    /// of this finding's site rather than at the value's start.
    pub(crate) fn within(mut self, text: impl Into<String>, nth: usize) -> Self {
        if let Some(site) = &mut self.site {
            site.needle = Some((text.into(), nth));
        }
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The JSON form of `weir validate -o json` (and of stored statuses);
    /// `prefix` is prepended to the file path.
    pub fn to_json(&self, prefix: &str) -> serde_json::Value {
        serde_json::json!({
            "code": self.code.id(),
            "name": self.code.name(),
            "severity": self.severity,
            "message": self.message,
            "help": self.help,
            "file": format!("{prefix}{}", self.file.display()),
            "line": self.pos.map(|p| p.line),
            "column": self.pos.map(|p| p.column),
        })
    }

    /// The line it points at, numbered, and a caret under its column
    /// (`12 | retries: lots` then `   |          ^`), read from `sources`;
    /// `None` without a position or the file's text.
    pub fn snippet(&self, sources: &[super::SourceFile]) -> Option<String> {
        let pos = self.pos?;
        let file = sources
            .iter()
            .find(|f| std::path::Path::new(&f.path) == self.file)?;
        let line = file.text.lines().nth((pos.line as usize).checked_sub(1)?)?;
        let number = pos.line.to_string();
        let pad = " ".repeat(number.len());
        let indent: String = line
            .chars()
            .take((pos.column as usize).saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        Some(format!("{number} | {line}\n{pad} | {indent}^"))
    }

    /// `file:line:col` (or just the file).
    pub fn location(&self) -> String {
        match self.pos {
            Some(p) => format!("{}:{}:{}", self.file.display(), p.line, p.column),
            None => self.file.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Code, Diagnostic};
    use crate::spec::yaml::Pos;
    use crate::validate::SourceFile;
    use std::collections::HashSet;

    #[test]
    fn a_snippet_shows_the_line_and_a_caret_under_the_column() {
        let sources = [SourceFile {
            path: "etl/load.yaml".into(),
            text: "kind: Task\nspec:\n\tretries: lots\n".into(),
        }];
        let at = |line, column| Some(Pos { line, column });
        let d = Diagnostic::new(Code::ALL[0], "etl/load.yaml", at(3, 11), "bad");
        assert_eq!(
            d.snippet(&sources).as_deref(),
            Some("3 | \tretries: lots\n  | \t         ^")
        );
        let elsewhere = Diagnostic::new(Code::ALL[0], "other.yaml", at(1, 1), "bad");
        assert_eq!(elsewhere.snippet(&sources), None);
        let past_the_end = Diagnostic::new(Code::ALL[0], "etl/load.yaml", at(9, 1), "bad");
        assert_eq!(past_the_end.snippet(&sources), None);
    }

    #[test]
    fn codes_and_names_are_unique() {
        let ids: HashSet<_> = Code::ALL.iter().map(|c| c.id()).collect();
        let names: HashSet<_> = Code::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(ids.len(), Code::ALL.len());
        assert_eq!(names.len(), Code::ALL.len());
    }
}
