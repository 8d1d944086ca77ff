//! `container` tasks, run locally on the host.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, Finding, Launch, LaunchError, TaskType, TaskView};
use super::{Destination, check_inputs_in_code, check_template, interpolate};
use crate::spec::code;
use crate::spec::yaml::{PathStep, to_pointer};

/// Run a container image (`command`/`args` on the host under the local executor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerBody {
    #[schemars(length(min = 1))]
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    /// May interpolate `{{ inputs.x }}`.
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub working_dir: Option<String>,
}

/// `container`: run locally, the image's `command` and `args` run on the
/// host (the log says so once). The argv is run directly, never through a
/// shell: each `command`/`args` element, interpolated, is exactly one
/// argument, whatever spaces or quotes an input's value holds. The one
/// element an interpreter runs as code (`sh -c`'s script, `python -c`'s:
/// [`code::code_argument`], the rule `weir validate` applies as W036) is
/// code, not data: only code-safe values are written there, so a version
/// registered before the check cannot run a string as code either.
pub struct Container;

impl TaskType for Container {
    const NAME: &'static str = "container";
    type Body = ContainerBody;

    /// `{{ inputs.x }}` in `command`, `args` and `env`: the task's own
    /// inputs, and in the one argument run as code only values that cannot
    /// carry code.
    fn check(&self, body: &ContainerBody, task: &TaskView<'_>) -> Vec<Finding> {
        let mut found = Vec::new();
        let argv: Vec<&String> = body.command.iter().chain(&body.args).collect();
        let code = code::code_argument(&argv);
        for (field, list, offset) in [
            ("command", &body.command, 0),
            ("args", &body.args, body.command.len()),
        ] {
            for (i, arg) in list.iter().enumerate() {
                let pointer = to_pointer(&[PathStep::Key(field), PathStep::Index(i)]);
                found.extend(check_template(arg, &pointer, task));
                if let Some((_, language)) = code.filter(|(at, _)| *at == offset + i) {
                    found.extend(check_inputs_in_code(arg, &pointer, language, task));
                }
            }
        }
        for (name, value) in &body.env {
            let pointer = to_pointer(&[PathStep::Key("env"), PathStep::Key(name)]);
            found.extend(check_template(value, &pointer, task));
        }
        found
    }

    fn launch(&self, body: &ContainerBody, context: &Context<'_>) -> Result<Launch, LaunchError> {
        let written: Vec<&String> = body.command.iter().chain(&body.args).collect();
        let code = code::code_argument(&written).map(|(at, _)| at);
        let mut argv = written
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let destination = if code == Some(i) {
                    Destination::ScriptSource
                } else {
                    Destination::Data
                };
                interpolate(a, context, destination)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if argv.is_empty() {
            return Err(LaunchError::NoCommand {
                image: body.image.clone(),
            });
        }
        let program = argv.remove(0);
        Ok(Launch {
            program,
            args: argv,
            env: body
                .env
                .iter()
                .map(|(k, v)| Ok((k.clone(), interpolate(v, context, Destination::Data)?)))
                .collect::<Result<_, LaunchError>>()?,
            files: Vec::new(),
            notice: Some(format!(
                "weir: container task run locally: image `{}` is not used; its command runs on this host\n",
                body.image
            )),
            working_dir: body.working_dir.clone(),
        })
    }

    fn kubernetes_image(&self, body: &ContainerBody) -> Option<String> {
        Some(body.image.clone())
    }
}
