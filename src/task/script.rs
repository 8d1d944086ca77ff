//! `script` tasks.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, Finding, Launch, LaunchError, TaskType, TaskView};
use super::{Destination, check_inputs_in_code, check_template, interpolate};
use crate::spec::code::Language;

/// Run `source` with `interpreter` (for example `python3` or `bash`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptBody {
    #[schemars(length(min = 1))]
    pub interpreter: String,
    /// The script; may interpolate `{{ inputs.x }}`.
    pub source: String,
    /// The image used on Kubernetes.
    #[serde(default)]
    pub image: Option<String>,
}

/// `script`: the source written to a file and run with its interpreter.
/// Inputs reach it as data (`WEIR_INPUTS`, `WEIR_INPUT_<NAME>`); only
/// values that cannot carry code are written into the source itself.
pub struct Script;

impl TaskType for Script {
    const NAME: &'static str = "script";
    type Body = ScriptBody;

    /// `{{ inputs.x }}` in the source: the task's own inputs, and only
    /// those whose values cannot carry code.
    fn check(&self, script: &ScriptBody, task: &TaskView<'_>) -> Vec<Finding> {
        let reader = if script.interpreter.contains("python") {
            Language::Python
        } else {
            Language::Shell
        };
        let mut found = check_template(&script.source, "/source", task);
        found.extend(check_inputs_in_code(
            &script.source,
            "/source",
            reader,
            task,
        ));
        found
    }

    fn launch(&self, script: &ScriptBody, context: &Context<'_>) -> Result<Launch, LaunchError> {
        let source = interpolate(&script.source, context, Destination::ScriptSource)?;
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

    fn kubernetes_image(&self, script: &ScriptBody) -> Option<String> {
        script.image.clone()
    }
}
