//! `script` tasks.

use std::collections::BTreeMap;

use super::{Context, Launch, LaunchError, TaskType};
use super::{Destination, interpolate};
use crate::spec::TaskSpec;

/// `script`: the source written to a file and run with its interpreter.
/// Inputs reach it as data (`WEIR_INPUTS`, `WEIR_INPUT_<NAME>`); only
/// values that cannot carry code are written into the source itself.
pub struct Script;

impl TaskType for Script {
    fn name(&self) -> &'static str {
        "script"
    }

    fn applies(&self, spec: &TaskSpec) -> bool {
        spec.script.is_some()
    }

    fn launch(&self, context: &Context<'_>) -> Result<Launch, LaunchError> {
        let script = context
            .spec
            .script
            .as_ref()
            .ok_or(LaunchError::NotThisType("script"))?;
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
}
