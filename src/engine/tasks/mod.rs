//! Task types as plugins: each turns a task body into what an executor runs
//! (a program, its arguments, files to write first). Adding a type is one
//! new file here with an `impl TaskType` and one line in [`TYPES`].

mod container;
mod notebook;
mod script;

pub use container::Container;
pub use notebook::{EXECUTED_NOTEBOOK, Notebook};
pub use script::Script;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::spec::TaskSpec;
use crate::spec::template::{self, Part, Reference};

/// What to run for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Files to write into the attempt's folder first (relative path, text).
    pub files: Vec<(String, String)>,
    /// Said once at the top of the attempt's log.
    pub notice: Option<String>,
    /// The working directory, relative to the attempt's folder (`None`: the
    /// attempt's folder).
    pub working_dir: Option<String>,
}

/// What a task type gets to build its launch from.
pub struct Context<'a> {
    pub spec: &'a TaskSpec,
    /// The node's input values (files as local paths).
    pub inputs: &'a BTreeMap<String, Value>,
    /// A notebook task's notebook, read from Git at its version's commit
    /// (or why it could not be).
    pub notebook: Option<Result<&'a str, &'a str>>,
}

/// One task type.
pub trait TaskType: Sync {
    /// The body's field name in a task spec (`script`, `container`, …).
    fn name(&self) -> &'static str;
    fn applies(&self, spec: &TaskSpec) -> bool;
    fn launch(&self, context: &Context<'_>) -> Result<Launch, String>;
}

/// Every task type weir knows.
pub const TYPES: &[&dyn TaskType] = &[&Script, &Container, &Notebook];

/// The launch of a task, by its body.
pub fn launch(context: &Context<'_>) -> Result<Launch, String> {
    match TYPES.iter().find(|t| t.applies(context.spec)) {
        Some(t) => t.launch(context),
        None => Err("the task has no body".to_owned()),
    }
}

/// Whether `program` is an executable file on `PATH`.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// `{{ inputs.x }}` in script sources and container arguments, replaced by
/// the value (strings as they are, anything else as JSON).
pub fn interpolate(text: &str, inputs: &BTreeMap<String, Value>) -> Result<String, String> {
    let parsed = template::parse(text)?;
    let mut out = String::with_capacity(text.len());
    for part in parsed.parts {
        match part {
            Part::Text(t) => out.push_str(&t),
            Part::Ref(Reference::Input(name)) => match inputs.get(&name) {
                Some(Value::String(s)) => out.push_str(s),
                Some(other) => out.push_str(&other.to_string()),
                None => return Err(format!("`{{{{ inputs.{name} }}}}` has no value")),
            },
            Part::Ref(r) => return Err(format!("`{{{{ {r} }}}}` cannot be used in a task body")),
        }
    }
    Ok(out)
}
