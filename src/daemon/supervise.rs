//! Supervision of the daemon's loops: none of them stops silently.
//!
//! Every loop of `weir serve` (a reconcile loop per source, the scheduler,
//! the engine, the notifier, the Lease elector, the store's engine lease)
//! runs under a [`Supervisor`].
//! What it guarantees:
//! - a loop whose task panics or returns before shutdown is logged at error
//!   (with the panic's message), counted in
//!   `weir_loop_restarts_total{loop}`, and started again after a backoff
//!   (1 s doubling per restart within the crash window, at most 60 s);
//! - each loop gets a [`Heartbeat`] to beat after every completed pass, so
//!   `/readyz` reports a loop that hangs or keeps dying as stalled, and
//!   `/healthz` fails once a loop keeps dying (`http::health`), which is
//!   when restarting the process is the cure left.
//!
//! What it must not do: restart a loop after shutdown was asked for, or
//! decide anything about the loops' work.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::http::{Heartbeat, Metrics, Readiness};

/// The longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs loops, restarting those that stop.
pub struct Supervisor {
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    /// The wait before the first restart (doubling per restart).
    backoff: Duration,
    tasks: tokio::task::JoinSet<()>,
}

impl Supervisor {
    pub fn new(
        readiness: Arc<Readiness>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Supervisor {
        Supervisor {
            readiness,
            metrics,
            shutdown,
            backoff: Duration::from_secs(1),
            tasks: tokio::task::JoinSet::new(),
        }
    }

    /// Runs `run` as the loop `name`, expected to beat within `period`;
    /// `run` is called again for each restart.
    pub fn spawn<F, Fut>(&mut self, name: &str, period: Duration, run: F)
    where
        F: Fn(Heartbeat) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let heartbeat = self.readiness.register_loop(name, period);
        let metrics = self.metrics.clone();
        let shutdown = self.shutdown.clone();
        let backoff = self.backoff;
        self.tasks.spawn(async move {
            loop {
                let outcome = tokio::spawn(run(heartbeat.clone())).await;
                if shutdown.is_cancelled() {
                    if let Err(e) = outcome {
                        tracing::error!(loop = heartbeat.name(), reason = %stopped(e), "a daemon loop failed while stopping");
                    }
                    return;
                }
                let reason = match outcome {
                    Ok(()) => "it returned".to_owned(),
                    Err(e) => stopped(e),
                };
                let restarts = heartbeat.restarted(Instant::now());
                metrics.loop_restarted(heartbeat.name());
                let wait = backoff
                    .saturating_mul(2u32.saturating_pow(restarts.saturating_sub(1) as u32))
                    .min(MAX_BACKOFF);
                tracing::error!(
                    loop = heartbeat.name(),
                    %reason,
                    restarts,
                    wait_ms = wait.as_millis() as u64,
                    "a daemon loop stopped; restarting it"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        });
    }

    /// Waits for every loop to end (they end once shutdown is cancelled).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Why a loop's task ended: its panic's message, or that it was cancelled.
fn stopped(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let payload = error.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    format!("it panicked: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_loop_that_panics_is_restarted_and_counted() {
        let readiness = Arc::new(Readiness::new(&[]));
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(readiness.clone(), metrics.clone(), shutdown.clone());
        supervisor.backoff = Duration::from_millis(1);
        let starts = Arc::new(AtomicU32::new(0));
        let passed = Arc::new(tokio::sync::Notify::new());
        {
            let (starts, passed, shutdown) = (starts.clone(), passed.clone(), shutdown.clone());
            supervisor.spawn("engine", Duration::from_secs(30), move |heartbeat| {
                let (starts, passed, shutdown) = (starts.clone(), passed.clone(), shutdown.clone());
                async move {
                    match starts.fetch_add(1, Ordering::SeqCst) {
                        0 => panic!("DateTime + TimeDelta overflowed"),
                        1 => {} // returns: also a stop
                        _ => {
                            heartbeat.beat();
                            passed.notify_one();
                            shutdown.cancelled().await;
                        }
                    }
                }
            });
        }
        passed.notified().await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        let text = metrics.render();
        assert!(
            text.contains(r#"weir_loop_restarts_total{loop="engine"} 2"#),
            "{text}"
        );
        let report = readiness.report(Instant::now());
        assert!(report.is_ready() && report.is_alive(), "{report:?}");

        shutdown.cancel();
        supervisor.join().await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            3,
            "no restart after shutdown"
        );
    }
}
