//! `notebook` tasks, run with papermill.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Context, Launch, LaunchError, TaskType, on_path};
use crate::spec::TaskSpec;

/// Where the executed notebook of a notebook task is written, relative to
/// the attempt's folder; it is kept as the output `notebook`.
pub const EXECUTED_NOTEBOOK: &str = "task/executed.ipynb";

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

    fn launch(&self, context: &Context<'_>) -> Result<Launch, LaunchError> {
        let body = context
            .spec
            .notebook
            .as_ref()
            .ok_or(LaunchError::NotThisType("notebook"))?;
        let notebook = match &context.notebook {
            Some(Ok(text)) => *text,
            Some(Err(why)) => {
                return Err(LaunchError::NotebookUnreadable {
                    path: body.path.clone(),
                    why: why.clone(),
                });
            }
            None => {
                return Err(LaunchError::NotebookNotRead {
                    path: body.path.clone(),
                });
            }
        };
        if !on_path("papermill") {
            return Err(LaunchError::NoPapermill {
                path: body.path.clone(),
            });
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
