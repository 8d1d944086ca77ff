//! The pod side of an attempt: `weir exec-task`, the task container's
//! entrypoint. It applies the same data contract as the local executor
//! (it runs [`crate::executor::local::run`] inside the container): inputs
//! fetched from the artifact store, the task run, outputs type-checked and
//! file outputs uploaded, then the outcome written as JSON ([`Report`]) to
//! the container's termination message, where the executor reads it from
//! the pod's status.
//!
//! The task's process does not inherit `weir exec-task`'s environment
//! (which holds `WEIR_ATTEMPT` and whatever the image and the kubelet add):
//! it gets `PATH`, `HOME`, the locale and `TZ`, the secrets its Job names,
//! the variables the operator's allow-list lets through (carried in the
//! payload, so both sides apply one list), and the data contract's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::observe::Report;
use crate::artifact::{self, ArtifactStore};
use crate::executor::Outcome;
use crate::executor::environment::{AllowList, Inherited};
use crate::executor::local::{self, Attempt};
use crate::spec::{ExecutionId, TaskSpec};
use crate::task::RepositoryFiles;
use crate::task::resource::RunsIn;

/// Kubernetes keeps at most this much of a termination message.
pub const MESSAGE_LIMIT: usize = 4096;
/// Where the kubelet reads the termination message by default.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// What the executor hands `weir exec-task` (the `WEIR_ATTEMPT` variable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub execution: ExecutionId,
    pub node: String,
    pub attempt: u32,
    pub task: String,
    pub spec: TaskSpec,
    /// Input values; files and directories as `sha256:` references.
    pub inputs: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// The task's repository files by key (read from Git by the engine),
    /// each as its artifact (`sha256:…`) in the shared store: a file's text
    /// in the Job's environment would meet Linux's 128 KiB bound on one
    /// variable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub file_artifacts: BTreeMap<String, String>,
    /// The repository files as texts, as payloads carried them before
    /// `file_artifacts` (read, never written).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// Why each repository file that could not be read was not, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unreadable: BTreeMap<String, String>,
    /// A notebook task's notebook, as payloads carried it before `files`
    /// (read, never written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notebook: Option<String>,
    /// The artifact store both sides share (`artifact::open`).
    pub artifacts: String,
    /// The pod's variables the task may inherit beyond `PATH`, `HOME`, the
    /// locale and its secrets (the operator's `[tasks] env`).
    #[serde(default, skip_serializing_if = "AllowList::is_empty")]
    pub inherit: AllowList,
    /// Where the program runs: the pod's own process (a Job), or inside
    /// the task type's custom resource (a Spark driver).
    #[serde(default, skip_serializing_if = "RunsIn::is_process")]
    pub runs_in: RunsIn,
}

/// The repository files as a payload carries them: each text's artifact
/// reference, and why the others could not be read, by key.
#[derive(Debug, Default)]
pub struct StoredFiles {
    pub file_artifacts: BTreeMap<String, String>,
    pub unreadable: BTreeMap<String, String>,
}

impl Payload {
    /// The payload's form of `files` (the attempt request's): each text
    /// stored in `artifacts` (through a file in `scratch`) as its
    /// reference, and why the others could not be read.
    pub fn store_files(
        files: &RepositoryFiles,
        artifacts: &dyn ArtifactStore,
        scratch: &Path,
    ) -> Result<StoredFiles, artifact::Error> {
        let mut stored = StoredFiles::default();
        for (key, file) in files {
            match file {
                Ok(text) => {
                    let path = scratch.join(key);
                    std::fs::write(&path, text).map_err(|source| artifact::Error::Io {
                        doing: "write",
                        path: path.clone(),
                        source,
                    })?;
                    let digest = artifacts.put_file(&path)?;
                    stored
                        .file_artifacts
                        .insert(key.clone(), artifact::reference(&digest));
                }
                Err(why) => {
                    stored.unreadable.insert(key.clone(), why.clone());
                }
            }
        }
        Ok(stored)
    }

    /// The repository files it names, as a task's context reads them:
    /// each fetched from `artifacts` into `dir` (or why it could not be).
    pub fn repository_files(&self, artifacts: &dyn ArtifactStore, dir: &Path) -> RepositoryFiles {
        let fetched = self.file_artifacts.iter().map(|(key, reference)| {
            let text = artifact::parse_reference(reference)
                .ok_or_else(|| format!("`{reference}` is not an artifact reference"))
                .and_then(|digest| {
                    let path = dir.join(key);
                    artifacts.fetch(&digest, &path).map_err(|e| e.to_string())?;
                    std::fs::read_to_string(&path).map_err(|e| e.to_string())
                });
            (key.clone(), text)
        });
        let mut files: RepositoryFiles = self
            .files
            .iter()
            .map(|(key, text)| (key.clone(), Ok(text.clone())))
            .chain(fetched)
            .chain(
                self.unreadable
                    .iter()
                    .map(|(key, why)| (key.clone(), Err(why.clone()))),
            )
            .collect();
        if let Some(notebook) = &self.notebook {
            files
                .entry(crate::task::NOTEBOOK_FILE.to_owned())
                .or_insert_with(|| Ok(notebook.clone()));
        }
        files
    }
}

/// Runs the attempt in `work` and returns its report (never panics on
/// task errors: they are reports). `host` is the pod's environment, of
/// which the task gets only what [`task_allow_list`] lets through.
pub async fn exec(
    payload: &Payload,
    work: &Path,
    host: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    cancel: &CancellationToken,
) -> Report {
    let inherited = Inherited::capture(host, task_allow_list(payload));
    let artifacts: Box<dyn ArtifactStore> = match artifact::open(&payload.artifacts) {
        Ok(store) => store,
        Err(e) => {
            return Report::Failed {
                error: format!("the artifact store `{}`: {e}", payload.artifacts),
            };
        }
    };
    // Beside the attempt's folder, not in it: the task's own files.
    let files_dir = work.join("files");
    if let Err(e) = std::fs::create_dir_all(&files_dir) {
        return Report::Failed {
            error: format!("cannot create `{}`: {e}", files_dir.display()),
        };
    }
    let files = payload.repository_files(artifacts.as_ref(), &files_dir);
    let attempt = Attempt {
        dir: work.join("attempt"),
        task: &payload.task,
        spec: &payload.spec,
        inputs: &payload.inputs,
        // The Job's activeDeadlineSeconds is the hard bound; this one
        // reports a timeout as such rather than as a killed pod.
        timeout: payload.timeout_seconds.map(Duration::from_secs),
        files: &files,
        // The types this binary knows (a pod runs the built-in ones).
        task_types: &crate::task::BUILTIN,
        // The kubelet runs them, as native sidecar containers of the pod.
        sidecars: &[],
        inherited: &inherited,
        runs_in: payload.runs_in,
    };
    let dir = attempt.dir.clone();
    let outcome = local::run(attempt, artifacts.as_ref(), cancel, |_| {}).await;
    replay_logs(&dir);
    match outcome {
        Outcome::Succeeded { outputs } => Report::Succeeded { outputs },
        Outcome::Failed { error } => Report::Failed { error },
        Outcome::Unrunnable { error } => Report::Unrunnable { error },
        Outcome::TimedOut => Report::TimedOut,
        Outcome::Cancelled | Outcome::Interrupted => Report::Failed {
            error: "the task was stopped".into(),
        },
    }
}

/// What of the pod's environment the task gets besides `PATH`, `HOME`,
/// the locale and `TZ`: the operator's list and the secrets the Job names.
pub fn task_allow_list(payload: &Payload) -> AllowList {
    payload
        .inherit
        .with_names(payload.spec.secrets.iter().map(|s| s.env.as_str()))
}

/// The report as the termination message: at most [`MESSAGE_LIMIT`] bytes.
/// Outputs that do not fit fail the attempt with a message saying so.
pub fn message(report: &Report) -> String {
    let text = serde_json::to_string(report).expect("reports serialize");
    if text.len() <= MESSAGE_LIMIT {
        return text;
    }
    let error = format!(
        "the task's values are {} bytes as JSON, over the {MESSAGE_LIMIT}-byte termination message: pass large values as `file` or `json`-in-a-file outputs",
        text.len()
    );
    serde_json::to_string(&Report::Failed { error }).expect("reports serialize")
}

/// Writes the task's logs to this process's stdout and stderr, where
/// `kubectl logs` finds them.
fn replay_logs(dir: &Path) {
    use std::io::Write as _;
    for (file, to_stderr) in [("stdout.log", false), ("stderr.log", true)] {
        let Ok(bytes) = std::fs::read(dir.join(file)) else {
            continue;
        };
        let _ = if to_stderr {
            std::io::stderr().write_all(&bytes)
        } else {
            std::io::stdout().write_all(&bytes)
        };
    }
}

/// Where the termination message goes (`WEIR_TERMINATION_LOG` overrides it,
/// for running `weir exec-task` outside a pod).
pub fn termination_log() -> PathBuf {
    std::env::var_os("WEIR_TERMINATION_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(TERMINATION_LOG))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository files travel as artifacts and reasons (a file's
    /// text in the Job's environment would meet Linux's 128 KiB bound on
    /// one variable: this one is 300 KiB); a payload written before them
    /// (texts, or its notebook alone) still gives them.
    #[test]
    fn a_payload_carries_the_repository_files_and_reads_the_old_forms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::artifact::LocalArtifacts::new(dir.path().join("store"));
        let big = "x".repeat(300 * 1024);
        let files = RepositoryFiles::from([
            ("template".to_owned(), Ok(big.clone())),
            ("data".to_owned(), Err("`d.csv` does not exist".to_owned())),
        ]);
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).expect("mkdir");
        let stored = Payload::store_files(&files, &store, &scratch).expect("stored");
        let payload: Payload = serde_json::from_value(serde_json::json!({
            "execution": "e", "node": "n", "attempt": 1, "task": "t",
            "spec": { "script": { "interpreter": "sh", "source": "true" } },
            "inputs": {}, "artifacts": "file:///a",
            "fileArtifacts": stored.file_artifacts, "unreadable": stored.unreadable,
        }))
        .expect("a payload");
        let text = serde_json::to_string(&payload).expect("json");
        assert!(
            text.len() < 2048,
            "no text in the payload: {} bytes",
            text.len()
        );
        let fetched = dir.path().join("fetched");
        std::fs::create_dir_all(&fetched).expect("mkdir");
        // (Compared whole, without printing 300 KiB on a failure.)
        assert!(payload.repository_files(&store, &fetched) == files);

        let texts: Payload = serde_json::from_value(serde_json::json!({
            "execution": "e", "node": "n", "attempt": 1, "task": "t",
            "spec": { "script": { "interpreter": "sh", "source": "true" } },
            "inputs": {}, "artifacts": "file:///a", "files": { "template": "Dear {}" },
        }))
        .expect("a payload of texts");
        assert_eq!(
            texts.repository_files(&store, &fetched),
            RepositoryFiles::from([("template".to_owned(), Ok("Dear {}".to_owned()))])
        );
        let old: Payload = serde_json::from_value(serde_json::json!({
            "execution": "e", "node": "n", "attempt": 1, "task": "t",
            "spec": { "notebook": { "path": "r.ipynb" } },
            "inputs": {}, "artifacts": "file:///a", "notebook": "{}",
        }))
        .expect("an old payload");
        assert_eq!(
            old.repository_files(&store, &fetched),
            RepositoryFiles::from([("notebook".to_owned(), Ok("{}".to_owned()))])
        );
    }

    #[test]
    fn a_message_too_long_for_kubernetes_fails_the_attempt_and_says_why() {
        let small = Report::Succeeded {
            outputs: BTreeMap::from([("rows".to_owned(), Value::from(42))]),
        };
        assert_eq!(
            serde_json::from_str::<Report>(&message(&small)).expect("json"),
            small
        );
        let big = Report::Succeeded {
            outputs: BTreeMap::from([("blob".to_owned(), Value::from("x".repeat(5000)))]),
        };
        let text = message(&big);
        assert!(text.len() <= MESSAGE_LIMIT);
        let Report::Failed { error } = serde_json::from_str(&text).expect("json") else {
            panic!("{text}")
        };
        assert!(error.contains("termination message"), "{error}");
    }
}
