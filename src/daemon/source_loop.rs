//! One source's reconcile loop in `weir serve`: open the source (a clone
//! for a remote), then reconcile it again and again (`crate::reconcile`:
//! fetch, verify, load, validate, register, activate), woken by a change
//! of a local repository's refs (`crate::source::watch`), by a webhook
//! (the HTTP server notifies the source's trigger) or by polling with
//! jitter.
//!
//! What it guarantees (DESIGN.md I3): a pass that fails, or a head commit
//! that is refused (invalid, or not signed by a trusted key), leaves the
//! source's last good active set running; the failure is visible in the
//! source's status (a read error is recorded in the store), in metrics,
//! in the log and in readiness. A source that cannot be opened at start is
//! retried with a backoff and stops neither the daemon nor other sources.
//! Each loop keeps the snapshot of its last pass, so the next one reads
//! only what changed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::config::SourceConfig;
use crate::clock::Clock;
use crate::http::{Heartbeat, Readiness};
use crate::metrics::Metrics;
use crate::reconcile::{self, Outcome, Snapshot};
use crate::source::git::GitSource;
use crate::source::watch::RefWatch;
use crate::spec::SourceKey;
use crate::store::{self, SourceError, Store};

/// Polling interval with ±10% jitter, so many daemons do not fetch in step.
fn jittered(interval: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = interval.as_millis() as u64 / 10;
    let offset = if spread == 0 {
        0
    } else {
        u64::from(nanos) % (2 * spread)
    };
    Duration::from_millis((interval.as_millis() as u64 - spread) + offset)
}

/// What one source's reconcile loop works with (cloned for each restart).
#[derive(Clone)]
pub(super) struct SourceLoop {
    pub(super) source: SourceConfig,
    /// The key the daemon shows the source by (see
    /// [`GitSource::expected_key`]).
    pub(super) key: SourceKey,
    pub(super) trigger: Arc<tokio::sync::Notify>,
    pub(super) store: Arc<dyn Store>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) readiness: Arc<Readiness>,
    pub(super) state_dir: PathBuf,
    /// The daemon's clock: what the store's stamps of this source read.
    pub(super) clock: Clock,
    pub(super) shutdown: CancellationToken,
    /// What the loop last logged of the source's state: each state is
    /// logged once, when it begins.
    pub(super) said: super::said::Said,
    /// Keeps the filesystem watch on a local repository's refs alive.
    pub(super) _watch: Option<Arc<RefWatch>>,
}

impl SourceLoop {
    /// A pass failed: the source keeps its last good active set, and the
    /// failure shows in status (a read error), metrics, log and readiness.
    async fn failed(&self, error: &reconcile::Error, took: Duration) {
        let key = &self.key;
        self.metrics.reconciled(&key.0, took, error.metric_label());
        if self.said.changed(format!("failed: {error}")) {
            tracing::warn!(source = %key.0, reason = error.metric_label(), error = %error, "reconcile failed; the last good state keeps running (said once until it changes)");
        }
        self.readiness.mark_failed(key, &error.to_string());
        if matches!(error, reconcile::Error::Source(_)) {
            let recorded = SourceError {
                reason: error.metric_label().to_owned(),
                message: error.to_string(),
                diagnostics: serde_json::json!([]),
            };
            if let Err(e) = self
                .store
                .record_source_error(key, &recorded, self.clock.now())
                .await
            {
                tracing::warn!(source = %key.0, error = %e, "cannot record the source's error");
            }
        }
    }

    /// Waits for `wait`, a webhook or a change of the refs; false at
    /// shutdown.
    async fn idle(&self, wait: Duration) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = self.trigger.notified() => true,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// Opens (for a remote: clones, or opens the clone kept in the state
    /// directory) the source, retrying with a backoff from 1 s doubling up
    /// to the polling interval (jittered) until it opens; `None` at
    /// shutdown. Each failed attempt is a failed pass.
    async fn open(&self, heartbeat: &Heartbeat) -> Option<GitSource> {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = Instant::now();
            let (spec, state_dir) = (self.source.spec.clone(), self.state_dir.clone());
            let opened = tokio::task::spawn_blocking(move || GitSource::open(&spec, &state_dir))
                .await
                .expect("opening a source does not panic");
            match opened {
                Ok(git) => return Some(git),
                Err(e) => self.failed(&e.into(), started.elapsed()).await,
            }
            heartbeat.beat();
            if !self.idle(jittered(backoff.min(self.source.interval))).await {
                return None;
            }
            backoff = backoff.saturating_mul(2);
        }
    }
}

/// Opens the source, then reconciles it on every wake until shutdown.
pub(super) async fn reconcile_loop(context: SourceLoop, heartbeat: Heartbeat) {
    let Some(git) = context.open(&heartbeat).await else {
        return;
    };
    let key = git.key();
    if key != context.key {
        // Only a remote whose branch is not configured, cloned after the
        // start failed: its default branch was not known then.
        tracing::warn!(expected = %context.key.0, source = %key.0, "the source's default branch is not the one assumed; set `branch` to name it");
        context.readiness.add_source(&key);
        context.readiness.mark_reconciled(&context.key);
    }
    let context = SourceLoop { key, ..context };
    let SourceLoop {
        source,
        key,
        store,
        metrics,
        readiness,
        state_dir,
        clock,
        ..
    } = context.clone();
    let snapshot_path = Snapshot::path(&state_dir, &key);
    let git = Arc::new(Mutex::new(git));
    let mut snapshot = Snapshot::read(&snapshot_path);
    loop {
        let started = Instant::now();
        let (outcome, read_whole_tree) = pass(&git, &source, &store, &clock, snapshot.take()).await;
        match outcome {
            Ok((
                Outcome::Reconciled {
                    commit,
                    changes,
                    snapshot: next,
                },
                _,
            )) => {
                metrics.reconciled(&key.0, started.elapsed(), "reconciled");
                if context.said.changed(format!("reconciled {}", commit.id)) {
                    tracing::info!(source = %key.0, commit = %commit.id, registered = changes.registered.len(), "source reconciled");
                }
                metrics.source_commit(&key.0, &commit.id.0);
                metrics.versions_registered(&key.0, changes.registered.len() as u64);
                readiness.mark_reconciled(&key);
                if let Some(next) = next {
                    let path = snapshot_path.clone();
                    let kept = (*next).clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Err(e) = kept.write(&path) {
                            tracing::warn!(error = %e, "cannot keep the source's snapshot");
                        }
                    })
                    .await;
                    snapshot = Some(*next);
                }
            }
            Ok((Outcome::Untrusted { commit, refusal }, base)) => {
                metrics.reconciled(&key.0, started.elapsed(), refusal.reason());
                if context
                    .said
                    .changed(format!("untrusted {}: {refusal}", commit.id))
                {
                    tracing::warn!(source = %key.0, commit = %commit.id, reason = %refusal, "head commit not trusted; the last good state keeps running");
                }
                snapshot = base;
                readiness.mark_reconciled(&key);
            }
            Ok((Outcome::Rejected { commit, .. }, base)) => {
                metrics.reconciled(&key.0, started.elapsed(), "rejected");
                if context.said.changed(format!("rejected {}", commit.id)) {
                    tracing::warn!(source = %key.0, commit = %commit.id, "head commit refused; the last good state keeps running");
                }
                // The last reconciled commit is unchanged: keep its snapshot.
                snapshot = base;
                readiness.mark_reconciled(&key);
            }
            Err(e) => {
                context.failed(&e, started.elapsed()).await;
                if matches!(
                    e,
                    reconcile::Error::StaleSnapshot { .. }
                        | reconcile::Error::Store(store::Error::Conflict { .. })
                ) {
                    // Plan again at once, reading the whole tree.
                    heartbeat.beat();
                    continue;
                }
            }
        }
        if read_whole_tree {
            // What the pass parsed is dropped by now: give it back rather
            // than keep the first (whole-tree) pass's peak for the daemon's
            // life. Only after a whole tree: a pass that read what changed
            // leaves little to give back, and the walk over the allocator's
            // free lists, off the runtime's workers, is then not worth it.
            let _ = tokio::task::spawn_blocking(reconcile::give_back_memory).await;
        }
        heartbeat.beat();
        if !context.idle(jittered(source.interval)).await {
            return;
        }
    }
}

/// One reconcile pass; the Git part runs on a blocking thread. Returns the
/// outcome and, for a refused commit, the snapshot to keep using; and
/// whether the pass read (and parsed) the commit's whole tree.
async fn pass(
    git: &Arc<Mutex<GitSource>>,
    source: &SourceConfig,
    store: &Arc<dyn Store>,
    clock: &Clock,
    base: Option<Snapshot>,
) -> (Result<(Outcome, Option<Snapshot>), reconcile::Error>, bool) {
    let git = git.clone();
    let options = source.options.clone();
    let (loaded, base) = tokio::task::spawn_blocking(move || {
        let git = git.lock().expect("lock");
        let loaded = reconcile::load(&git, &options, base.as_ref());
        (loaded, base)
    })
    .await
    .expect("the load thread does not panic");
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return (Err(e), false),
    };
    let read_whole_tree = loaded.read_whole_tree();
    let outcome = reconcile::register(store.as_ref(), loaded, clock.now()).await;
    (outcome.map(|outcome| (outcome, base)), read_whole_tree)
}
