//! Drives an in-process attempt ([`crate::task::ClientRun`]: a query a
//! task type runs as a client of a remote engine) as the process path
//! drives a program: it ends with the same outcomes, stops on cancel and on
//! timeout (the client is told to stop, then given [`super::GRACE`] to
//! finish, e.g. to cancel its query on the server, before it is dropped),
//! and leaves its error in the attempt's `stderr.log`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::task::{ClientIo, ClientRun};

/// How the task's own run (a process, or an in-process client) ended.
pub enum End {
    Done,
    Failed(String),
    /// It cannot run here at all (see [`crate::executor::Outcome::Unrunnable`]).
    Unrunnable(String),
    TimedOut,
    Cancelled,
}

/// Runs `run` to its end, or until `cancel` or `timeout`.
pub async fn drive(
    run: Box<dyn ClientRun>,
    io: ClientIo,
    timeout: Option<Duration>,
    cancel: &CancellationToken,
    grace: Duration,
) -> End {
    let stop = io.stop.clone();
    let stderr = io.log_file.with_file_name("stderr.log");
    let mut running = run.run(io);
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let end = tokio::select! {
        result = &mut running => return match result {
            Ok(()) => End::Done,
            Err(error) => {
                append(&stderr, &error);
                End::Failed(error)
            }
        },
        () = cancel.cancelled() => End::Cancelled,
        () = deadline => End::TimedOut,
    };
    stop.cancel();
    if tokio::time::timeout(grace, running).await.is_err() {
        tracing::warn!("an in-process attempt did not stop within its grace period: dropped");
    }
    end
}

fn append(path: &std::path::Path, line: &str) {
    use std::io::Write as _;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        tracing::warn!(file = %path.display(), error = %e, "cannot write an attempt's log");
    }
}
