//! Task types as plugins: each owns a task's body (its Rust type and JSON
//! Schema, see `plugin.rs`) and turns it into what an executor runs (a
//! program, its arguments, files to write first). Adding a type is one new
//! file here with an `impl TaskType` and one line in
//! [`TaskTypes::builtin`].
//!
//! They sit between `spec` and everything that reads a task's body
//! (`validate`, the executors), and use only `spec`: they *describe* what
//! to run (`executor::local` builds an attempt's command from a
//! [`Launch`]), and never reach into Git, the store or the engine; a type
//! that runs in weir's process as a client of a remote engine (`sql` on
//! PostgreSQL or Trino) hands the executor a [`ClientRun`] to drive. The
//! engine hands an executor a task spec and its inputs, and never knows
//! which type runs.
//!
//! What it guarantees: inputs reach a task as data. A value is written into
//! code (a script's source, `sh -c`'s script) only when it cannot carry code
//! ([`Destination::ScriptSource`]); anything else is refused with a
//! [`LaunchError`] naming the variable to read it from instead.

mod check;
mod client;
mod container;
mod notebook;
mod plugin;
pub mod resource;
mod script;
mod spark;
mod sql;

pub use check::{Finding, Rule, TaskView, check_inputs_in_code, check_template};
pub use client::{BoxFuture, ClientIo, ClientRun};
pub use container::{Container, ContainerBody};
pub use notebook::{EXECUTED_NOTEBOOK, NOTEBOOK_FILE, Notebook, NotebookBody};
pub use plugin::{BUILTIN, ErasedTaskType, TaskType, TaskTypes, body_of, repository_path};
pub use script::{Script, ScriptBody};
pub use spark::{MAIN_APPLICATION_FILE, Spark, SparkBody};
pub use sql::{Sql, SqlBody, SqlEngine};

use std::collections::BTreeMap;

use serde_json::Value;

use crate::spec::TaskSpec;
use crate::spec::template::{self, Part, Reference};
use crate::spec::types::TypeExpr;

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
    /// The task's repository files ([`TaskType::repository_files`]) by key,
    /// each read from Git at the commit of the task's version (or why it
    /// could not be, as the executor says it). Read one with
    /// [`Context::file`].
    pub files: &'a RepositoryFiles,
}

/// The repository files of one attempt by key: the text of each, or why
/// it could not be read.
pub type RepositoryFiles = BTreeMap<String, Result<String, String>>;

impl Context<'_> {
    /// The text of the repository file the type names `key` in
    /// [`TaskType::repository_files`].
    pub fn file(&self, key: &str) -> Result<&str, LaunchError> {
        match self.files.get(key) {
            Some(Ok(text)) => Ok(text),
            Some(Err(why)) => Err(LaunchError::FileUnreadable {
                key: key.to_owned(),
                why: why.clone(),
            }),
            None => Err(LaunchError::FileNotRead {
                key: key.to_owned(),
            }),
        }
    }
}

/// Why a task's launch cannot be built; its text becomes the attempt's
/// error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// A body of a type this registry does not know.
    #[error("no task type `{0}` is known here")]
    UnknownType(String),
    /// A body its type cannot decode (the schema admits only those that
    /// do; this holds for versions registered around it).
    #[error("the `{type_name}` body does not read: {message}")]
    Body {
        type_name: &'static str,
        message: String,
    },
    /// A `{{ … }}` in the body does not parse.
    #[error("{0}")]
    Template(#[from] crate::spec::template::Error),
    #[error("`{{{{ inputs.{0} }}}}` has no value")]
    NoValue(String),
    /// A reference other than an input (`nodes.x.y`) in a task body.
    #[error("`{{{{ {0} }}}}` cannot be used in a task body")]
    NotAnInput(String),
    /// A value that could carry code, in a place that runs as code.
    #[error(
        "`{{{{ inputs.{name} }}}}` is written into code (a script's source, or the script of `sh -c`, `python -c`…): \
         input `{name}` is {what}, which could carry code; only int, float, bool and enum values are written into code: \
         read it from the environment, \"${variable}\""
    )]
    NotCodeSafe {
        name: String,
        /// `undeclared`, or ``a `string` ``.
        what: String,
        /// The variable carrying the input (`WEIR_INPUT_<NAME>`).
        variable: String,
    },
    #[error(
        "container task has no `command`: the local executor cannot run image `{image}`'s entrypoint"
    )]
    NoCommand { image: String },
    /// A repository file that could not be read at the task's commit.
    #[error("cannot read the task's `{key}` file: {why}")]
    FileUnreadable { key: String, why: String },
    /// A repository file the executor was not given.
    #[error("the task's `{key}` file was not read")]
    FileNotRead { key: String },
    #[error("cannot read notebook `{path}`: {why}")]
    NotebookUnreadable { path: String, why: String },
    /// A `sql` body that cannot run as written (its text holds no secret).
    #[error("{0}")]
    Sql(String),
    #[error("notebook `{path}` was not read")]
    NotebookNotRead { path: String },
    #[error(
        "notebook `{path}` runs with papermill, which is not installed here \
         (install it with `pip install papermill ipykernel`)"
    )]
    NoPapermill { path: String },
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

/// Where a `{{ inputs.x }}` is written, which decides what may go there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// A script's source: code. Only values that cannot carry code (ints,
    /// floats, booleans, enum members: [`TypeExpr::is_code_safe`]) are
    /// written there; a script reads anything else from `WEIR_INPUT_<NAME>`.
    /// `weir validate` refuses the rest (W036); this check holds for
    /// versions registered before it.
    ScriptSource,
    /// One argv element of a container's `command`/`args`, or one value of
    /// its `env`: data, never parsed by a shell, so any value fits.
    Data,
}

/// `{{ inputs.x }}` in a task body, replaced by the value (strings as they
/// are, anything else as JSON), under the rule of `destination`.
pub fn interpolate(
    text: &str,
    context: &Context<'_>,
    destination: Destination,
) -> Result<String, LaunchError> {
    let parsed = template::parse(text).map_err(LaunchError::Template)?;
    let mut out = String::with_capacity(text.len());
    for part in parsed.parts {
        match part {
            Part::Text(t) => out.push_str(&t),
            Part::Ref(Reference::Input(name)) => {
                let Some(value) = context.inputs.get(&name) else {
                    return Err(LaunchError::NoValue(name));
                };
                if destination == Destination::ScriptSource {
                    check_code_safe(&name, value, context.spec)?;
                }
                match value {
                    Value::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                }
            }
            Part::Ref(r) => return Err(LaunchError::NotAnInput(r.to_string())),
        }
    }
    Ok(out)
}

/// Refuses a value that could change what a script does: the input must be
/// declared code-safe, and the value must be one of that type's (a number,
/// a boolean, a member of the enum).
fn check_code_safe(name: &str, value: &Value, spec: &TaskSpec) -> Result<(), LaunchError> {
    let ty = spec.inputs.get(name).and_then(|p| p.type_expr());
    let fits = match (&ty, value) {
        (Some(TypeExpr::Int | TypeExpr::Float), Value::Number(_)) => true,
        (Some(TypeExpr::Bool), Value::Bool(_)) => true,
        (Some(TypeExpr::Enum(members)), Value::String(s)) => members.contains(s),
        _ => false,
    };
    if fits {
        return Ok(());
    }
    Err(LaunchError::NotCodeSafe {
        name: name.to_owned(),
        what: ty.map_or_else(|| "undeclared".to_owned(), |t| format!("a `{t}`")),
        variable: crate::spec::code::input_variable_name(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOSTILE: &str = r#""; id > pwned; echo ""#;

    fn spec(body: Value) -> TaskSpec {
        let mut spec = json!({
            "inputs": {
                "x": { "type": "string" },
                "n": { "type": "int" },
                "mode": { "enum": ["fast", "slow"] },
            },
        });
        spec.as_object_mut()
            .expect("an object")
            .extend(body.as_object().expect("an object").clone());
        serde_json::from_value(spec).expect("a task spec")
    }

    fn inputs() -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("x".to_owned(), json!(HOSTILE)),
            ("n".to_owned(), json!(3)),
            ("mode".to_owned(), json!("slow")),
        ])
    }

    fn launch_of(spec: &TaskSpec, inputs: &BTreeMap<String, Value>) -> Result<Launch, String> {
        // As the attempt's error reads.
        TaskTypes::builtin()
            .launch(&Context {
                spec,
                inputs,
                files: &RepositoryFiles::new(),
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_string_is_never_written_into_a_script_s_source() {
        let spec = spec(json!({
            "script": { "interpreter": "bash", "source": "echo {{ inputs.x }}" },
        }));
        let error = launch_of(&spec, &inputs()).expect_err("refused");
        assert!(error.contains(r#""$WEIR_INPUT_X""#), "{error}");
        assert!(!error.contains("pwned"), "the value is not echoed: {error}");
    }

    /// A version registered before W036 (or by any path around `weir
    /// validate`) with a string input in `sh -c`'s script: the engine
    /// refuses to launch it, naming the variable to read instead, and the
    /// same input elsewhere in the argv is still data.
    #[test]
    fn a_string_is_never_written_into_a_container_s_inline_script() {
        for command in [
            json!(["sh", "-c", "echo {{ inputs.x }}"]),
            json!(["/usr/bin/env", "A=1", "bash", "-ec", "echo {{ inputs.x }}"]),
            json!(["python3", "-c", "print('{{ inputs.x }}')"]),
        ] {
            let spec = spec(json!({
                "container": { "image": "alpine", "command": command },
            }));
            let error = launch_of(&spec, &inputs()).expect_err("refused");
            assert!(error.contains(r#""$WEIR_INPUT_X""#), "{error}");
            assert!(!error.contains("pwned"), "the value is not echoed: {error}");
        }
        let spec = spec(json!({
            "container": {
                "image": "alpine",
                "command": ["sh", "-c", "echo \"$1\" {{ inputs.n }}", "sh", "{{ inputs.x }}"],
            },
        }));
        let launch = launch_of(&spec, &inputs()).expect("accepted");
        assert_eq!(launch.args[1], "echo \"$1\" 3");
        assert_eq!(launch.args[3], HOSTILE);
    }

    #[test]
    fn numbers_booleans_and_enum_members_are_written_into_a_source() {
        let spec = spec(json!({
            "script": { "interpreter": "bash", "source": "seq {{ inputs.n }} # {{ inputs.mode }}" },
        }));
        let launch = launch_of(&spec, &inputs()).expect("accepted");
        assert_eq!(launch.files[0].1, "seq 3 # slow");

        // A value that does not fit its declared type is refused all the same.
        let mut forged = inputs();
        forged.insert("n".to_owned(), json!(HOSTILE));
        assert!(launch_of(&spec, &forged).is_err());
        forged.insert("n".to_owned(), json!(3));
        forged.insert("mode".to_owned(), json!(HOSTILE));
        assert!(launch_of(&spec, &forged).is_err());
    }

    #[test]
    fn a_container_argument_is_one_argv_element_whatever_it_holds() {
        let spec = spec(json!({
            "container": {
                "image": "alpine",
                "command": ["printf", "%s"],
                "args": ["{{ inputs.x }}", "n={{ inputs.n }}"],
                "env": { "X": "{{ inputs.x }}" },
            },
        }));
        let launch = launch_of(&spec, &inputs()).expect("accepted");
        assert_eq!(launch.program, "printf");
        assert_eq!(launch.args, ["%s", HOSTILE, "n=3"]);
        assert_eq!(launch.env["X"], HOSTILE);
    }
}
