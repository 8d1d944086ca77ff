//! `weir exec-task`: the entrypoint of a task container on Kubernetes (see
//! `crate::executor::kubernetes::pod`). Reads the attempt from
//! `WEIR_ATTEMPT`, runs it under the data contract, and writes the outcome
//! to the termination message. The task runs in a clean environment: the
//! pod's `PATH`, `HOME`, locale and `TZ`, the secrets its Job names and the
//! operator's allow-list, never `WEIR_ATTEMPT` or anything else. Exit 0 when the task succeeded, 1 when it
//! failed, 2 when the attempt could not be read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::exit::{self, Error, ExitStatus};
use crate::executor::kubernetes::job::{ATTEMPT_ENV, ENTRY_FILES_ENV};
use crate::executor::kubernetes::observe::Report;
use crate::executor::kubernetes::pod::{self, Payload};
use crate::task::resource::RunsIn;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the attempt's folder is made.
    #[arg(
        long,
        env = "WEIR_WORK_DIR",
        hide_env_values = true,
        default_value = "/weir/work"
    )]
    pub work_dir: PathBuf,
    /// Instead of running an attempt: copy this binary into DIR, with the
    /// entry files named by WEIR_ENTRY_FILES beside it (what the init
    /// container of a custom resource's pod does).
    #[arg(long, value_name = "DIR")]
    pub install: Option<PathBuf>,
}

/// Why the attempt could not be read from the environment.
#[derive(Debug, thiserror::Error)]
enum PayloadError {
    #[error("{} is not set: weir exec-task runs inside task pods", ATTEMPT_ENV)]
    Unset,
    #[error("{} is not an attempt: {error}", ATTEMPT_ENV)]
    Malformed { error: serde_json::Error },
}

pub fn run(args: &Args) -> exit::Result {
    if let Some(dir) = &args.install {
        return install(dir);
    }
    let text = std::env::var(ATTEMPT_ENV).map_err(|_| Error::failed(PayloadError::Unset))?;
    let payload: Payload = serde_json::from_str(&text)
        .map_err(|e| Error::failed(PayloadError::Malformed { error: e }))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("cannot start the runtime: {e}")))?;
    let report = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                term.recv().await;
                on_signal.cancel();
            }
        });
        // The task gets only what the Job spec named (see `pod::exec`).
        let host = std::env::vars_os().collect();
        pod::exec(&payload, &args.work_dir, host, &cancel).await
    });
    let log = pod::termination_log();
    std::fs::write(&log, pod::message(&report)).map_err(|e| {
        Error::failed(format!(
            "cannot write the outcome to `{}`: {e}",
            log.display()
        ))
    })?;
    // In a resource the work folder may be a volume every attempt shares:
    // this attempt's is removed once its outputs are stored.
    if payload.runs_in == RunsIn::Resource
        && let Err(e) = std::fs::remove_dir_all(&args.work_dir)
    {
        tracing::warn!(folder = %args.work_dir.display(), error = %e, "cannot remove the attempt's work folder");
    }
    match report {
        Report::Succeeded { .. } => Ok(ExitStatus::Success),
        Report::Failed { error } | Report::Unrunnable { error } => Err(Error::invalid(error)),
        Report::TimedOut => Err(Error::invalid("the task timed out")),
    }
}

/// Copies this binary to `dir/weir` and writes the entry files named by
/// `WEIR_ENTRY_FILES` (a JSON object, name to text) beside it.
fn install(dir: &Path) -> exit::Result {
    let failed = |doing: &str, path: &Path, e: &dyn std::fmt::Display| {
        Error::failed(format!("cannot {doing} `{}`: {e}", path.display()))
    };
    let files: BTreeMap<String, String> = match std::env::var(ENTRY_FILES_ENV) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Error::failed(format!(
                "{ENTRY_FILES_ENV} is not a JSON object of texts: {e}"
            ))
        })?,
        Err(_) => BTreeMap::new(),
    };
    let this = std::env::current_exe().map_err(|e| failed("find", Path::new("weir"), &e))?;
    let target = dir.join("weir");
    std::fs::copy(&this, &target).map_err(|e| failed("copy weir to", &target, &e))?;
    for (name, text) in files {
        if name.contains('/') || name == ".." || name == "weir" {
            return Err(Error::failed(format!(
                "{ENTRY_FILES_ENV}: `{name}` is not a plain file name"
            )));
        }
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(|e| failed("write", &path, &e))?;
    }
    Ok(ExitStatus::Success)
}
