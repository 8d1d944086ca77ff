//! `notebook` tasks, run with papermill.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Context, Finding, Launch, LaunchError, Rule, TaskType, TaskView, on_path};

/// Run a Jupyter notebook with papermill; inputs become its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotebookBody {
    /// Path of the `.ipynb`, relative to the source's root folder.
    #[schemars(regex(pattern = r"\.ipynb$"))]
    pub path: String,
    /// The image used on Kubernetes.
    #[serde(default)]
    pub image: Option<String>,
}

/// The key of a notebook among a task's repository files (and in its
/// version's digest).
pub const NOTEBOOK_FILE: &str = "notebook";

/// Where the executed notebook of a notebook task is written, relative to
/// the attempt's folder; it is kept as the output `notebook`.
pub const EXECUTED_NOTEBOOK: &str = "task/executed.ipynb";

/// `notebook`: run with papermill, the inputs as parameters; the executed
/// notebook is kept as the output `notebook`.
pub struct Notebook;

impl TaskType for Notebook {
    const NAME: &'static str = "notebook";
    type Body = NotebookBody;

    /// The notebook must be in the source.
    fn check(&self, body: &NotebookBody, task: &TaskView<'_>) -> Vec<Finding> {
        if task.paths.contains(super::repository_path(&body.path)) {
            return Vec::new();
        }
        vec![
            Finding::new(
                Rule::MissingNotebook,
                "/path",
                format!("notebook `{}` does not exist in the source", body.path),
            )
            .with_help(
                "the path is relative to the source's root folder (the one given to `weir validate`)",
            ),
        ]
    }

    fn launch(&self, body: &NotebookBody, context: &Context<'_>) -> Result<Launch, LaunchError> {
        let notebook = match context.files.get(NOTEBOOK_FILE) {
            Some(Ok(text)) => text.as_str(),
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

    fn kubernetes_image(&self, body: &NotebookBody) -> Option<String> {
        body.image.clone()
    }

    fn repository_files(&self, body: &NotebookBody) -> Vec<(&'static str, String)> {
        vec![(NOTEBOOK_FILE, body.path.clone())]
    }

    /// The executed notebook, kept as the output `notebook`.
    fn implicit_outputs(&self, _body: &NotebookBody) -> Vec<(&'static str, &'static str)> {
        vec![("notebook", EXECUTED_NOTEBOOK)]
    }
}
