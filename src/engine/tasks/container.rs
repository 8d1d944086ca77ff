//! `container` tasks, run locally on the host.

use super::{Context, Launch, TaskType};
use super::{Destination, interpolate};
use crate::spec::TaskSpec;

/// `container`: run locally, the image's `command` and `args` run on the
/// host (the log says so once). The argv is run directly, never through a
/// shell: each `command`/`args` element, interpolated, is exactly one
/// argument, whatever spaces or quotes an input's value holds.
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
            .map(|a| interpolate(a, context, Destination::Data))
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
            env: body
                .env
                .iter()
                .map(|(k, v)| Ok((k.clone(), interpolate(v, context, Destination::Data)?)))
                .collect::<Result<_, String>>()?,
            files: Vec::new(),
            notice: Some(format!(
                "weir: container task run locally: image `{}` is not used; its command runs on this host\n",
                body.image
            )),
            working_dir: body.working_dir.clone(),
        })
    }
}
