//! Task types that run in weir's own process, as a client of a remote
//! engine (a PostgreSQL server, a Trino coordinator), rather than as a
//! program: what such a type hands the executor ([`ClientRun`]) and what
//! the executor gives it to run with ([`ClientIo`]).
//!
//! Why: a query against a server needs no process of its own, only a
//! connection; starting one per query would add an interpreter and a
//! driver to every image. The contract stays the one of DESIGN.md section
//! 6: the client writes its outputs into `$WEIR_OUTPUTS` (`outputs.json`
//! and files) and the executor reads them back as it reads any task's, so
//! caching and lineage do not know the difference.
//!
//! What a client must do: stop soon after [`ClientIo::stop`] is cancelled
//! (the executor cancelled the attempt or its timeout passed; it waits a
//! grace period, then drops the future), and never put a secret (a
//! connection string, a password) into its error, its log or its outputs.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

/// A boxed future a client run returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an in-process run gets from the executor.
pub struct ClientIo {
    /// `$WEIR_OUTPUTS`: where the outputs go, as a process writes them.
    pub outputs: PathBuf,
    /// The attempt's `stdout.log`, which [`ClientIo::log`] appends to.
    pub log_file: PathBuf,
    /// The task's environment, as a process of it would see it: the host
    /// variables the operator lets tasks inherit (and, in a pod, the
    /// secrets its Job names), then the data contract's. A connection's
    /// `{env: NAME}` is read here, never from weir's own environment.
    pub env: BTreeMap<String, String>,
    /// Cancelled when the attempt is to stop (cancelled, or timed out).
    pub stop: CancellationToken,
}

impl ClientIo {
    /// One line into the attempt's log (a log that cannot be written is
    /// not a reason to fail the query).
    pub fn log(&self, line: &str) {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::warn!(file = %self.log_file.display(), error = %e, "cannot write an attempt's log");
        }
    }
}

/// One in-process attempt, built by a task type from its body and inputs.
pub trait ClientRun: Send {
    /// Runs to the end: `Ok` once the outputs are written, or the error
    /// the attempt fails with (holding no secret).
    fn run(self: Box<Self>, io: ClientIo) -> BoxFuture<'static, Result<(), String>>;
}
