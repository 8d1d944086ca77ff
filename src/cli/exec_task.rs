//! `weir exec-task`: the entrypoint of a task container on Kubernetes (see
//! `crate::executor::kubernetes::pod`). Reads the attempt from
//! `WEIR_ATTEMPT`, runs it under the data contract, and writes the outcome
//! to the termination message. The task runs in a clean environment: the
//! pod's `PATH`, `HOME`, locale and `TZ`, the secrets its Job names and the
//! operator's allow-list, never `WEIR_ATTEMPT` or anything else. Exit 0 when the task succeeded, 1 when it
//! failed, 2 when the attempt could not be read.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::exit::{self, Error, ExitStatus};
use crate::executor::kubernetes::job::ATTEMPT_ENV;
use crate::executor::kubernetes::observe::Report;
use crate::executor::kubernetes::pod::{self, Payload};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the attempt's folder is made.
    #[arg(long, env = "WEIR_WORK_DIR", default_value = "/weir/work")]
    pub work_dir: PathBuf,
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
    match report {
        Report::Succeeded { .. } => Ok(ExitStatus::Success),
        Report::Failed { error } => Err(Error::invalid(error)),
        Report::TimedOut => Err(Error::invalid("the task timed out")),
    }
}
