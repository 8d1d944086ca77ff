//! `weir exec-task`: the entrypoint of a task container on Kubernetes (see
//! `crate::executor::kubernetes::pod`). Reads the attempt from
//! `WEIR_ATTEMPT`, runs it under the data contract, and writes the outcome
//! to the termination message. The task runs in a clean environment: the
//! pod's `PATH`, `HOME`, locale and `TZ`, the secrets its Job names and the
//! operator's allow-list, never `WEIR_ATTEMPT` or anything else. Exit 0 when the task succeeded, 1 when it
//! failed, 2 when the attempt could not be read.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::executor::kubernetes::job::ATTEMPT_ENV;
use crate::executor::kubernetes::observe::Report;
use crate::executor::kubernetes::pod::{self, Payload};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the attempt's folder is made.
    #[arg(long, env = "WEIR_WORK_DIR", default_value = "/weir/work")]
    pub work_dir: PathBuf,
}

pub fn run(args: &Args) -> u8 {
    let payload: Payload = match std::env::var(ATTEMPT_ENV)
        .map_err(|_| format!("{ATTEMPT_ENV} is not set: weir exec-task runs inside task pods"))
        .and_then(|text| {
            serde_json::from_str(&text).map_err(|e| format!("{ATTEMPT_ENV} is not an attempt: {e}"))
        }) {
        Ok(payload) => payload,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_ERROR;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return super::EXIT_ERROR;
        }
    };
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
    if let Err(e) = std::fs::write(&log, pod::message(&report)) {
        eprintln!(
            "error: cannot write the outcome to `{}`: {e}",
            log.display()
        );
        return super::EXIT_ERROR;
    }
    match report {
        Report::Succeeded { .. } => super::EXIT_OK,
        Report::Failed { error } => {
            eprintln!("error: {error}");
            super::EXIT_INVALID
        }
        Report::TimedOut => {
            eprintln!("error: the task timed out");
            super::EXIT_INVALID
        }
    }
}
