//! The local executor: one host process per node attempt, under the data
//! contract of DESIGN.md section 6.
//!
//! An attempt's folder (`<state>/runs/<execution>/<node>/<attempt>/`) holds
//! `inputs.json`, `inputs/` (file and directory inputs fetched from the
//! artifact store), `outputs/` (`$WEIR_OUTPUTS`), `task/` (a script's
//! source), and `stdout.log` / `stderr.log`. After the process exits 0, each
//! declared output is read and checked against its type: scalars from
//! `outputs.json`, a `file` output `x` from `outputs/x`, a `directory`
//! output from the folder `outputs/x`; files and folders go to the artifact
//! store and are passed on as `sha256:<hex>`.
//!
//! The process gets a clean environment (`super::environment`): the
//! inherited host variables the operator allows, then the data contract's
//! `WEIR_INPUTS`, `WEIR_OUTPUTS` and one `WEIR_INPUT_<NAME>` per input
//! ([`input_variable`]; strings and paths as they are, numbers and booleans
//! as JSON text, lists and maps as their JSON), over the task's own `env`.
//! Inputs reach a task as data, never spliced into code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

mod client;
mod executor;
mod sidecars;

pub use executor::LocalExecutor;

use client::End;

use super::environment::Inherited;
use super::handle::LocalHandle;
use super::process::{self, Command, Exit};
use super::{Adoption, AttemptKey, Outcome};
use crate::artifact::{self, ArtifactStore};
use crate::spec::types::TypeExpr;
use crate::spec::{ExecutionId, Sidecar, TaskSpec};
use crate::task::resource::RunsIn;
use crate::task::{self as tasks, ClientIo, ClientRun, LaunchError, RepositoryFiles, TaskTypes};

/// Why an attempt could not be prepared or its outputs read back: the
/// attempt fails with this text as its error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create `{}`: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the attempt's log: {0}")]
    Log(#[source] std::io::Error),
    #[error("input `{name}` is not an artifact reference: `{text}`")]
    NotAReference { name: String, text: String },
    #[error("input `{name}`: {source}")]
    Fetch {
        name: String,
        source: artifact::Error,
    },
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("outputs.json is not a JSON object")]
    OutputsNotAnObject,
    #[error("outputs.json is not valid JSON: {0}")]
    OutputsNotJson(#[source] serde_json::Error),
    #[error("cannot read outputs.json: {0}")]
    OutputsUnreadable(#[source] std::io::Error),
    /// A `file` or `directory` output the task did not write.
    #[error(
        "output `{name}` of task `{task}`: expected the {what} `$WEIR_OUTPUTS/{name}`, which the task did not write"
    )]
    OutputNotWritten {
        name: String,
        task: String,
        /// `file` or `directory`.
        what: &'static str,
    },
    #[error("output `{name}` of task `{task}`: {source}")]
    OutputNotStored {
        name: String,
        task: String,
        source: artifact::Error,
    },
    #[error("output `{name}` of task `{task}`: missing from outputs.json")]
    OutputMissing { name: String, task: String },
    /// A value that is not of its output's type (the type's own words).
    #[error("output `{name}` of task `{task}`: {message}")]
    OutputType {
        name: String,
        task: String,
        message: crate::spec::types::LiteralError,
    },
    /// An output the task's type says the run leaves (a notebook's
    /// executed notebook) that could not be stored.
    #[error("output `{name}`, which the task's type keeps: {source}")]
    ImplicitOutput {
        name: &'static str,
        #[source]
        source: artifact::Error,
    },
}

/// How long a process gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(10);

/// One attempt to run.
pub struct Attempt<'a> {
    pub dir: PathBuf,
    pub task: &'a str,
    pub spec: &'a TaskSpec,
    /// Input values; files and directories as `sha256:` references.
    pub inputs: &'a BTreeMap<String, Value>,
    pub timeout: Option<Duration>,
    /// The task's repository files by key, or why each could not be read
    /// from Git.
    pub files: &'a RepositoryFiles,
    /// What the task's body runs is asked of these.
    pub task_types: &'a TaskTypes,
    /// The sidecars to run beside it here: the spec's on this host; none
    /// in a Kubernetes pod, where the kubelet runs them.
    pub sidecars: &'a [Sidecar],
    /// The host variables the task may inherit (nothing else of this
    /// process's environment reaches it).
    pub inherited: &'a Inherited,
    /// Whether it runs as its own process, or inside its type's custom
    /// resource (`weir exec-task` in a Spark driver).
    pub runs_in: RunsIn,
}

/// The local folder of an attempt.
pub fn attempt_dir(state_dir: &Path, execution: &ExecutionId, node: &str, attempt: u32) -> PathBuf {
    state_dir
        .join("runs")
        .join(execution.as_str())
        .join(node.replace('/', "__"))
        .join(attempt.to_string())
}

/// The process groups of one attempt, as they start: its sidecars' first,
/// then the task's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groups {
    pub task: Option<u32>,
    pub sidecars: Vec<u32>,
}

impl Groups {
    /// Every group, the task's first.
    pub fn all(&self) -> impl Iterator<Item = u32> + '_ {
        self.task.iter().chain(&self.sidecars).copied()
    }
}

/// Prepares, runs and reads back one attempt. `started` is told the
/// attempt's process groups each time one starts (to find them after a
/// restart).
pub async fn run(
    attempt: Attempt<'_>,
    artifacts: &dyn ArtifactStore,
    cancel: &CancellationToken,
    mut started: impl FnMut(&Groups),
) -> Outcome {
    let deadline = attempt.timeout.map(|t| tokio::time::Instant::now() + t);
    let prepared = match prepare(&attempt, artifacts) {
        Ok(p) => p,
        // The body cannot become a program: the same again next time.
        Err(error @ Error::Launch(_)) => {
            return Outcome::Unrunnable {
                error: error.to_string(),
            };
        }
        Err(error) => {
            return Outcome::Failed {
                error: error.to_string(),
            };
        }
    };
    // Stopped while its inputs were being staged (leadership lost,
    // shutting down, or cancelled): nothing is spawned.
    if cancel.is_cancelled() {
        return Outcome::Cancelled;
    }
    let mut groups = Groups::default();
    let mut sidecars = match sidecars::start(
        attempt.spec,
        attempt.sidecars,
        &attempt.dir,
        attempt.inherited,
        deadline,
        cancel,
        |pgid| {
            groups.sidecars.push(pgid);
            started(&groups);
        },
    )
    .await
    {
        Ok(running) => running,
        Err(sidecars::Interrupted::Failed(e)) => {
            return Outcome::Failed {
                error: e.to_string(),
            };
        }
        Err(sidecars::Interrupted::TimedOut) => return Outcome::TimedOut,
        Err(sidecars::Interrupted::Cancelled) => return Outcome::Cancelled,
    };
    let remaining = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
    // A sidecar that ends while the task runs stops the task: the attempt
    // fails with the sidecar's reason.
    let stop_task = cancel.child_token();
    let task = async {
        match prepared {
            Prepared::Process(command) => {
                let child = match process::spawn(&command) {
                    Ok(child) => child,
                    Err(e) if e.is_missing_program() => return End::Unrunnable(e.to_string()),
                    Err(e) => return End::Failed(e.to_string()),
                };
                groups.task = Some(child.pid());
                started(&groups);
                match child.wait(remaining, &stop_task, GRACE).await {
                    Ok(Exit::Exited(0)) => End::Done,
                    Ok(Exit::Exited(code)) => End::Failed(format!(
                        "exited with status {code}{}",
                        stderr_tail(&attempt.dir)
                    )),
                    Ok(Exit::Signaled(signal)) => End::Failed(format!(
                        "killed by signal {signal}{}",
                        stderr_tail(&attempt.dir)
                    )),
                    Ok(Exit::TimedOut) => End::TimedOut,
                    Ok(Exit::Cancelled) => End::Cancelled,
                    Err(e) => End::Failed(e.to_string()),
                }
            }
            Prepared::Client(run, io) => client::drive(run, io, remaining, &stop_task, GRACE).await,
        }
    };
    tokio::pin!(task);
    let mut sidecar_ended = None;
    let ended = tokio::select! {
        biased;
        ended = &mut task => ended,
        ended = sidecars.ended() => {
            stop_task.cancel();
            sidecar_ended = Some(ended);
            task.await
        }
    };
    let sidecar_failure = sidecar_ended.map(|ended| {
        format!(
            "sidecar `{}` {} while the task ran{}",
            ended.name,
            ended.how,
            sidecars.tail(&ended.name)
        )
    });
    sidecars.stop().await;
    match (ended, sidecar_failure) {
        (End::Done, _) => match collect(&attempt, artifacts) {
            Ok(outputs) => Outcome::Succeeded { outputs },
            Err(error) => Outcome::Failed {
                error: error.to_string(),
            },
        },
        // Stopped because a sidecar ended, not by the engine.
        (End::Cancelled, Some(error)) if !cancel.is_cancelled() => Outcome::Failed { error },
        (End::Failed(error), _) => Outcome::Failed { error },
        (End::Unrunnable(error), _) => Outcome::Unrunnable { error },
        (End::TimedOut, _) => Outcome::TimedOut,
        (End::Cancelled, _) => Outcome::Cancelled,
    }
}

/// What is left of a local attempt whose engine is gone, whichever
/// executor finds it: its process groups (the task's and its sidecars')
/// are killed when they were started on this host since its boot
/// (`started_here`), never otherwise (their ids name other processes).
/// Nothing of it goes on.
pub fn reap(key: &AttemptKey, local: &LocalHandle, started_here: bool) -> Adoption {
    let groups = local.pgid.iter().chain(&local.sidecars);
    if started_here {
        for &pgid in groups {
            tracing::info!(execution = %key.execution, node = %key.node, pgid, "stopping an attempt whose engine is gone");
            if let Err(e) = process::kill_group(pgid, process::Signal::Kill) {
                tracing::warn!(execution = %key.execution, node = %key.node, error = %e, "cannot kill an interrupted attempt's processes");
            }
        }
    } else if let Some(pgid) = groups.copied().next() {
        tracing::warn!(execution = %key.execution, node = %key.node, pgid, "an interrupted attempt ran on another host (or before a reboot): its processes are not signalled from here");
    }
    Adoption::Gone
}

/// The last lines of the attempt's stderr, to put in its error.
fn stderr_tail(dir: &Path) -> String {
    log_tail(&dir.join("stderr.log"))
}

/// The last lines of a log, to put in an error (empty if it has none).
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail: Vec<&str> = lines.into_iter().rev().collect();
    format!("; stderr ends with:\n{}", tail.join("\n"))
}

/// What an attempt runs: a process, or (for a type that runs as a client
/// of a remote engine) a future in this process.
enum Prepared {
    Process(Command),
    Client(Box<dyn ClientRun>, ClientIo),
}

/// `value` of type `ty` with each file or directory reference in it
/// fetched to `path` (a list's items to `path/INDEX`, a null left null)
/// and replaced by that local path; `name` says which input in an error.
fn stage(
    value: &Value,
    ty: &TypeExpr,
    path: &Path,
    name: &str,
    artifacts: &dyn ArtifactStore,
) -> Result<Value, Error> {
    match (ty, value) {
        (TypeExpr::File | TypeExpr::Directory, Value::String(text)) => {
            let digest = artifact::parse_reference(text).ok_or_else(|| Error::NotAReference {
                name: name.to_owned(),
                text: text.clone(),
            })?;
            artifacts
                .fetch(&digest, path)
                .map_err(|source| Error::Fetch {
                    name: name.to_owned(),
                    source,
                })?;
            Ok(Value::String(path.display().to_string()))
        }
        (TypeExpr::Optional(inner), value) if !value.is_null() => {
            stage(value, inner, path, name, artifacts)
        }
        (TypeExpr::List(inner), Value::Array(items)) if contains_blob(inner) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let item_name = format!("{name}[{i}]");
                stage(
                    item,
                    inner,
                    &path.join(i.to_string()),
                    &item_name,
                    artifacts,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        _ => Ok(value.clone()),
    }
}

/// Whether values of `ty` may hold a file or directory to stage.
fn contains_blob(ty: &TypeExpr) -> bool {
    match ty {
        TypeExpr::File | TypeExpr::Directory => true,
        TypeExpr::Optional(inner) | TypeExpr::List(inner) => contains_blob(inner),
        _ => false,
    }
}

fn prepare(attempt: &Attempt<'_>, artifacts: &dyn ArtifactStore) -> Result<Prepared, Error> {
    let dir = &attempt.dir;
    let outputs = dir.join("outputs");
    std::fs::create_dir_all(&outputs).map_err(|source| Error::CreateDir {
        path: outputs.clone(),
        source,
    })?;
    // Files and directories become local paths, also inside lists.
    let mut values = BTreeMap::new();
    for (name, value) in attempt.inputs {
        let ty = attempt.spec.inputs.get(name).and_then(|p| p.type_expr());
        let local = match ty {
            Some(ty) => stage(value, &ty, &dir.join("inputs").join(name), name, artifacts)?,
            None => value.clone(),
        };
        values.insert(name.clone(), local);
    }
    let context = tasks::Context {
        spec: attempt.spec,
        inputs: &values,
        files: attempt.files,
    };
    let client = match attempt.runs_in {
        RunsIn::Process => attempt.task_types.client(&context)?,
        RunsIn::Resource => None,
    };
    let inputs_json = dir.join("inputs.json");
    std::fs::write(
        &inputs_json,
        Value::Object(values.clone().into_iter().collect()).to_string(),
    )
    .map_err(|source| Error::Write {
        path: inputs_json.clone(),
        source,
    })?;
    if let Some(run) = client {
        return Ok(Prepared::Client(
            run,
            client_io(attempt, &values, &inputs_json, &outputs)?,
        ));
    }
    let launch = attempt.task_types.launch_in(&context, attempt.runs_in)?;
    for (rel, text) in &launch.files {
        let path = dir.join(rel);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|source| Error::CreateDir {
                path: folder.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
    }
    let notice = launch
        .notice
        .iter()
        .cloned()
        .chain(missing_secrets(attempt))
        .collect::<String>();
    if !notice.is_empty() {
        std::fs::write(dir.join("stderr.log"), notice).map_err(Error::Log)?;
    }
    // The task's declared `env`, then the data contract, which wins.
    let mut own = launch.env.clone();
    own.insert("WEIR_INPUTS".into(), inputs_json.display().to_string());
    own.insert("WEIR_OUTPUTS".into(), outputs.display().to_string());
    for (name, value) in &values {
        let (variable, text) = input_variable(name, value);
        own.insert(variable, text);
    }
    let env = attempt.inherited.environment(&own);
    let cwd = match &launch.working_dir {
        Some(w) if Path::new(w).is_absolute() && Path::new(w).is_dir() => PathBuf::from(w),
        Some(w) if !Path::new(w).is_absolute() => dir.join(w),
        _ => dir.clone(),
    };
    Ok(Prepared::Process(Command {
        program: launch.program,
        args: launch
            .args
            .into_iter()
            .map(|a| {
                if a == "task" || a.starts_with("task/") {
                    dir.join(&a).display().to_string()
                } else {
                    a
                }
            })
            .collect(),
        env,
        cwd,
        stdout: dir.join("stdout.log"),
        stderr: dir.join("stderr.log"),
    }))
}

/// What an in-process attempt runs with: the environment a process of the
/// task would get (the data contract over the inherited variables), and
/// the attempt's logs, started as a process's are.
fn client_io(
    attempt: &Attempt<'_>,
    values: &BTreeMap<String, Value>,
    inputs_json: &Path,
    outputs: &Path,
) -> Result<ClientIo, Error> {
    let dir = &attempt.dir;
    let notice = missing_secrets(attempt).concat();
    std::fs::write(dir.join("stderr.log"), notice).map_err(Error::Log)?;
    std::fs::write(dir.join("stdout.log"), "").map_err(Error::Log)?;
    let mut own = BTreeMap::from([
        ("WEIR_INPUTS".to_owned(), inputs_json.display().to_string()),
        ("WEIR_OUTPUTS".to_owned(), outputs.display().to_string()),
    ]);
    own.extend(
        values
            .iter()
            .map(|(name, value)| input_variable(name, value)),
    );
    Ok(ClientIo {
        outputs: outputs.to_path_buf(),
        log_file: dir.join("stdout.log"),
        env: attempt.inherited.environment(&own),
        stop: CancellationToken::new(),
    })
}

/// The variable carrying input `name` (`WEIR_INPUT_<NAME>`, upper-cased,
/// `-` as `_`) and its text: a string (or a file's local path) as it is,
/// anything else (numbers, booleans, lists, maps) as its JSON.
pub fn input_variable(name: &str, value: &Value) -> (String, String) {
    let variable = crate::spec::code::input_variable_name(name);
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    (variable, text)
}

/// One line per declared secret whose variable the host does not pass: on
/// this executor a secret is a variable of the daemon's environment, and
/// reaches the task only when the operator allows it.
fn missing_secrets(attempt: &Attempt<'_>) -> Vec<String> {
    attempt
        .spec
        .secrets
        .iter()
        .filter(|s| !attempt.inherited.has(&s.env))
        .map(|s| {
            format!(
                "weir: secret `{}` (key `{}`) is not set as `{}`: locally a task's secrets come from the daemon's environment, \
                 for variables the operator allows (`[tasks] env` in weir.toml, or --task-env)\n",
                s.name, s.key, s.env
            )
        })
        .collect()
}

/// Reads every declared output and checks it against its type.
fn collect(
    attempt: &Attempt<'_>,
    artifacts: &dyn ArtifactStore,
) -> Result<BTreeMap<String, Value>, Error> {
    let outputs = attempt.dir.join("outputs");
    let json_path = outputs.join("outputs.json");
    let written: serde_json::Map<String, Value> = match std::fs::read_to_string(&json_path) {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(Error::OutputsNotAnObject),
            Err(e) => return Err(Error::OutputsNotJson(e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
        Err(e) => return Err(Error::OutputsUnreadable(e)),
    };
    let mut values = BTreeMap::new();
    for (name, port) in &attempt.spec.outputs {
        let ty = port.type_expr().unwrap_or(TypeExpr::Json);
        let (name, task) = (name.clone(), attempt.task.to_owned());
        let value = match ty {
            TypeExpr::File | TypeExpr::Directory => {
                let path = outputs.join(&name);
                let wanted_dir = ty == TypeExpr::Directory;
                if wanted_dir && !path.is_dir() || !wanted_dir && !path.is_file() {
                    return Err(Error::OutputNotWritten {
                        name,
                        task,
                        what: if wanted_dir { "directory" } else { "file" },
                    });
                }
                let digest = if wanted_dir {
                    artifacts.put_dir(&path)
                } else {
                    artifacts.put_file(&path)
                };
                match digest {
                    Ok(digest) => Value::String(artifact::reference(&digest)),
                    Err(source) => return Err(Error::OutputNotStored { name, task, source }),
                }
            }
            ty => {
                let Some(value) = written.get(&name) else {
                    return Err(Error::OutputMissing { name, task });
                };
                if let Err(message) = ty.accepts_literal(value) {
                    return Err(Error::OutputType {
                        name,
                        task,
                        message,
                    });
                }
                value.clone()
            }
        };
        values.insert(name, value);
    }
    // What the run leaves besides its outputs folder (a notebook's
    // executed notebook), as its type says.
    for (name, path) in attempt.task_types.implicit_outputs(attempt.spec) {
        if values.contains_key(name) {
            continue;
        }
        let digest = artifacts
            .put_file(&attempt.dir.join(path))
            .map_err(|source| Error::ImplicitOutput { name, source })?;
        values.insert(name.into(), Value::String(artifact::reference(&digest)));
    }
    Ok(values)
}
