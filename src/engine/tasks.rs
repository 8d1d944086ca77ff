//! Task types as plugins: each turns a task body into what an executor runs
//! (a program, its arguments, files to write first). Adding a type is one
//! new `impl TaskType` and one line in [`TYPES`].

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

/// Where the executed notebook of a notebook task is written, relative to
/// the attempt's folder; it is kept as the output `notebook`.
pub const EXECUTED_NOTEBOOK: &str = "task/executed.ipynb";

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

/// `script`: the source written to a file and run with its interpreter.
pub struct Script;

impl TaskType for Script {
    fn name(&self) -> &'static str {
        "script"
    }

    fn applies(&self, spec: &TaskSpec) -> bool {
        spec.script.is_some()
    }

    fn launch(&self, context: &Context<'_>) -> Result<Launch, String> {
        let script = context.spec.script.as_ref().ok_or("not a script task")?;
        let source = interpolate(&script.source, context.inputs)?;
        let file = "task/script";
        Ok(Launch {
            program: script.interpreter.clone(),
            args: vec![file.to_owned()],
            env: BTreeMap::new(),
            files: vec![(file.to_owned(), source)],
            notice: None,
            working_dir: None,
        })
    }
}

/// `container`: run locally, the image's `command` and `args` run on the
/// host (the log says so once).
pub struct Container;

impl TaskType for Container {
    fn name(&self) -> &'static str {
        "container"
    }

    fn applies(&self, spec: &TaskSpec) -> bool {
        spec.container.is_some()
    }

    fn launch(&self, context: &Context<'_>) -> Result<Launch, String> {
        let body = context
            .spec
            .container
            .as_ref()
            .ok_or("not a container task")?;
        let mut argv = body
            .command
            .iter()
            .chain(&body.args)
            .map(|a| interpolate(a, context.inputs))
            .collect::<Result<Vec<_>, _>>()?;
        if argv.is_empty() {
            return Err(format!(
                "container task has no `command`: the local executor cannot run image `{}`'s entrypoint",
                body.image
            ));
        }
        let program = argv.remove(0);
        Ok(Launch {
            program,
            args: argv,
            env: body.env.clone(),
            files: Vec::new(),
            notice: Some(format!(
                "weir: container task run locally: image `{}` is not used; its command runs on this host\n",
                body.image
            )),
            working_dir: body.working_dir.clone(),
        })
    }
}

/// `notebook`: run with papermill, the inputs as parameters; the executed
/// notebook is kept as the output `notebook`.
pub struct Notebook;

impl TaskType for Notebook {
    fn name(&self) -> &'static str {
        "notebook"
    }

    fn applies(&self, spec: &TaskSpec) -> bool {
        spec.notebook.is_some()
    }

    fn launch(&self, context: &Context<'_>) -> Result<Launch, String> {
        let body = context
            .spec
            .notebook
            .as_ref()
            .ok_or("not a notebook task")?;
        let notebook = match context.notebook {
            Some(Ok(text)) => text,
            Some(Err(why)) => return Err(format!("cannot read notebook `{}`: {why}", body.path)),
            None => return Err(format!("notebook `{}` was not read", body.path)),
        };
        if !on_path("papermill") {
            return Err(format!(
                "notebook `{}` runs with papermill, which is not installed here \
                 (install it with `pip install papermill ipykernel`)",
                body.path
            ));
        }
        let parameters = Value::Object(context.inputs.clone().into_iter().collect());
        Ok(Launch {
            program: "papermill".to_owned(),
            args: vec![
                "task/notebook.ipynb".to_owned(),
                EXECUTED_NOTEBOOK.to_owned(),
                "-f".to_owned(),
                "task/parameters.json".to_owned(),
                "--cwd".to_owned(),
                "task".to_owned(),
            ],
            env: BTreeMap::new(),
            files: vec![
                ("task/notebook.ipynb".to_owned(), notebook.to_owned()),
                ("task/parameters.json".to_owned(), parameters.to_string()),
            ],
            notice: None,
            working_dir: None,
        })
    }
}
