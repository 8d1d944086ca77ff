//! `weir serve`: one long-running process that keeps the system converged
//! to Git (DESIGN.md section 5). In one tokio runtime:
//! - per source, a reconcile loop woken by filesystem events on a local
//!   repository's refs, by webhooks, and by polling with jitter;
//! - the scheduler loop, creating due executions (deterministic ids, I4);
//! - the engine loop, driving every unfinished execution;
//! - the HTTP server (`src/http`): health, readiness, metrics, webhooks, API.
//!
//! SIGTERM or SIGINT stops the loops from starting work, gives running
//! attempts a grace period to finish (their results are recorded), then
//! stops the rest without recording them: the next start retries those.

pub mod config;
pub mod leader;
pub mod lease;
pub mod supervise;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::engine::kubernetes::KubeRuns;
use crate::engine::scheduler::Scheduler;
use crate::engine::{Engine, NodeEvent, Observer, PlanNode};
use crate::executor::environment::{AllowList, Inherited};
use crate::executor::kubernetes::Kube;
use crate::http::{self, AppState, Heartbeat, Readiness, Secrets, SourceHandle};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::reconcile::{self, Outcome, Snapshot};
use crate::source::git::{GitSource, SourceSpec};
use crate::store::execution::{Execution, NodeState, NodeStatus};
use crate::store::{self, SourceError, SourceKey, Store};
use leader::{Elector, Leadership};
use lease::StoreLease;
use supervise::Supervisor;

/// One source to follow.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub spec: SourceSpec,
    /// Polling interval (a fallback: watching and webhooks are immediate).
    pub interval: Duration,
    pub options: reconcile::Options,
}

/// Everything `weir serve` needs.
pub struct Config {
    pub sources: Vec<SourceConfig>,
    pub state_dir: PathBuf,
    pub db_url: String,
    pub listen: std::net::SocketAddr,
    pub secrets: Secrets,
    /// How often the scheduler and the engine tick.
    pub tick: Duration,
    /// How long running attempts get to finish at shutdown.
    pub grace: Duration,
    /// How long the store's engine lease lasts unrenewed (renewed every
    /// third of it): a successor takes over at most this long after a
    /// leader dies, at once after it stops cleanly.
    pub lease_duration: Duration,
    /// The daemon's URL as notification receivers reach it (links to
    /// `/api/v1/executions/{id}`); default `http://<listen>`.
    pub public_url: Option<String>,
    pub executor: Executor,
    /// The artifact store's URL (`artifact::open`); default
    /// `<state_dir>/artifacts`.
    pub artifacts: Option<String>,
    /// Bounds on the HTTP server's connections (timeouts, how many).
    pub http: http::Limits,
    /// The daemon's variables tasks may inherit beyond `PATH`, `HOME`, the
    /// locale and `TZ` (`[tasks] env`, `--task-env`); nothing else of its
    /// environment, its credentials included, reaches a task.
    pub task_env: AllowList,
}

/// Where node attempts run.
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// Host processes (the embedded default): one replica.
    Local,
    /// Kubernetes Jobs; replicas elect a leader through a Lease.
    Kubernetes(Box<KubeConfig>),
}

/// The Kubernetes executor's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeConfig {
    pub settings: crate::executor::kubernetes::Settings,
    /// The leader-election Lease's name (in the executor's namespace).
    pub lease: String,
    pub lease_duration: Duration,
    /// This replica's name in the Lease (`POD_NAME`).
    pub identity: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Source(#[from] crate::source::git::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("the artifact store: {0}")]
    Artifacts(String),
    #[error("cannot reach Kubernetes (in-cluster or kubeconfig): {0}")]
    Kubernetes(kube::Error),
}

/// Runs until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let store = store::open(&config.db_url).await?;
    let metrics = Arc::new(Metrics::new());
    // A source is opened (cloned) by its own loop, which retries: one that
    // cannot be read at start stops neither the daemon nor the others.
    let mut sources = Vec::new();
    for source in &config.sources {
        let key = GitSource::expected_key(&source.spec, &config.state_dir);
        sources.push(SourceHandle {
            branch: key_branch(&key).to_owned(),
            key,
            repo_urls: repo_urls(&source.spec.repo),
            trigger: Arc::new(tokio::sync::Notify::new()),
        });
    }
    let keys: Vec<_> = sources.iter().map(|s| s.key.clone()).collect();
    let readiness = Arc::new(Readiness::new(&keys));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
    tracing::info!(listen = %config.listen, sources = keys.len(), "weir serve started");

    let mut loops = Supervisor::new(readiness.clone(), metrics.clone(), shutdown.clone());
    for (source, handle) in config.sources.iter().zip(&sources) {
        let watcher = watch_refs(&source.spec.repo, handle.trigger.clone());
        let context = SourceLoop {
            source: source.clone(),
            key: handle.key.clone(),
            trigger: handle.trigger.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            readiness: readiness.clone(),
            state_dir: config.state_dir.clone(),
            shutdown: shutdown.clone(),
            _watcher: watcher.map(Arc::new),
        };
        loops.spawn(
            &format!("source {}", handle.key.0),
            http::health::expected_period(source.interval),
            move |heartbeat| reconcile_loop(context.clone(), heartbeat),
        );
    }

    let artifacts_url = config
        .artifacts
        .clone()
        .unwrap_or_else(|| config.state_dir.join("artifacts").display().to_string());
    let artifacts: Arc<dyn crate::artifact::ArtifactStore> =
        Arc::from(crate::artifact::open(&artifacts_url).map_err(Error::Artifacts)?);
    let mut engine = Engine::new(store.clone(), artifacts, config.state_dir.clone())
        .with_task_env(Inherited::from_process(config.task_env.clone()))
        .observe(Arc::new(MetricsObserver(metrics.clone())));
    // With Kubernetes, replicas first elect a leader through the Lease;
    // only that one then takes the store's engine lease (`lease.rs`).
    let kube_leadership = match &config.executor {
        Executor::Local => None,
        Executor::Kubernetes(kube_config) => {
            let client = kube::Client::try_default()
                .await
                .map_err(Error::Kubernetes)?;
            let kube = Kube::new(client.clone(), kube_config.settings.clone());
            engine = engine.with_kubernetes(KubeRuns::new(kube, artifacts_url.clone()));
            let leadership = Leadership::default();
            let elector = Elector {
                name: kube_config.lease.clone(),
                identity: kube_config.identity.clone(),
                duration: kube_config.lease_duration,
            };
            let leases: kube::Api<_> =
                kube::Api::namespaced(client, &kube_config.settings.namespace);
            let (held, stop) = (leadership.clone(), shutdown.clone());
            loops.spawn(
                "elector",
                http::health::expected_period(elector.duration / 3),
                move |heartbeat| {
                    elector
                        .clone()
                        .run(leases.clone(), held.clone(), stop.clone(), heartbeat)
                },
            );
            Some(leadership)
        }
    };
    // Leading is holding the store's engine lease: a second daemon on the
    // store follows (serves the API, reconciles) until it is free. The
    // engine asks right before each attempt it starts.
    let leadership = Leadership::default();
    let engine = Arc::new(engine.lead_while({
        let leadership = leadership.clone();
        move || leadership.is_leading()
    }));
    // The lease loop outlives the others (it is stopped only once the
    // engine has stopped, its grace included), so it has a supervisor of
    // its own, stopped after theirs.
    let lease_stop = CancellationToken::new();
    let mut lease_loop = Supervisor::new(readiness.clone(), metrics.clone(), lease_stop.clone());
    {
        let lease = StoreLease::new(
            store.clone(),
            engine.owner().engine.clone(),
            config.lease_duration,
        );
        let (engine, metrics, readiness) = (engine.clone(), metrics.clone(), readiness.clone());
        let on_change: Arc<dyn Fn(bool) + Send + Sync> = Arc::new(move |leading: bool| {
            metrics.leading(leading);
            readiness.set_leading(leading);
            if !leading {
                // Whoever takes over retries them; none is left running
                // beside its retry.
                engine.kill_running();
            }
        });
        let (leadership, stop) = (leadership.clone(), lease_stop.clone());
        lease_loop.spawn(
            "lease",
            http::health::expected_period(lease.period()),
            move |heartbeat| {
                lease.clone().run(
                    leadership.clone(),
                    kube_leadership.clone(),
                    stop.clone(),
                    heartbeat,
                    on_change.clone(),
                )
            },
        );
    }
    let period = http::health::expected_period(config.tick);
    {
        let (store, wake) = (store.clone(), engine.wake.clone());
        let (leadership, stop, tick) = (leadership.clone(), shutdown.clone(), config.tick);
        loops.spawn("scheduler", period, move |heartbeat| {
            scheduler_loop(
                store.clone(),
                tick,
                wake.clone(),
                leadership.clone(),
                stop.clone(),
                heartbeat,
            )
        });
    }
    {
        let (engine, leadership, stop) = (engine.clone(), leadership.clone(), shutdown.clone());
        let (tick, grace) = (config.tick, config.grace);
        loops.spawn("engine", period, move |heartbeat| {
            engine_loop(
                engine.clone(),
                tick,
                grace,
                leadership.clone(),
                stop.clone(),
                heartbeat,
            )
        });
    }

    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let notifier = {
        let metrics = metrics.clone();
        Arc::new(
            Notifier::new(
                store.clone(),
                config.state_dir.clone(),
                public_url,
                chrono::Utc::now(),
            )
            .on_attempt(Arc::new(move |delivery, outcome| {
                metrics.notification(&delivery.target, outcome);
            })),
        )
    };
    {
        let (leadership, stop, tick) = (leadership.clone(), shutdown.clone(), config.tick);
        loops.spawn("notifier", period, move |heartbeat| {
            notifier_loop(
                notifier.clone(),
                tick,
                leadership.clone(),
                stop.clone(),
                heartbeat,
            )
        });
    }

    let state = AppState {
        store: store.clone(),
        metrics,
        sources,
        readiness,
        secrets: config.secrets,
        max_payload: 1024 * 1024,
        state_dir: Some(config.state_dir.clone()),
    };
    let served =
        http::server::serve(listener, http::router(state), config.http, shutdown.clone()).await;
    shutdown.cancel();
    loops.join().await;
    // Released only now that the engine has stopped (its grace included).
    lease_stop.cancel();
    lease_loop.join().await;
    tracing::info!("weir serve stopped");
    served.map_err(Error::Http)
}

/// The branch part of a source key (`<repo>#<branch>:<path>`).
fn key_branch(key: &SourceKey) -> &str {
    key.0
        .rsplit_once('#')
        .and_then(|(_, rest)| rest.split_once(':'))
        .map_or("main", |(branch, _)| branch)
}

/// URLs a webhook payload may name this repository by (empty for a local
/// path: any push to the branch triggers a fetch).
fn repo_urls(repo: &str) -> Vec<String> {
    if repo.contains("://") || repo.contains('@') {
        vec![crate::source::git::redact_url(repo)]
    } else {
        Vec::new()
    }
}

/// Watches a local repository's refs; `None` for remote ones or when
/// watching is not possible (polling still runs).
fn watch_refs(repo: &str, trigger: Arc<tokio::sync::Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    if repo.contains("://") {
        return None;
    }
    let root = std::path::Path::new(repo);
    let git_dir = if root.join(".git").is_dir() {
        root.join(".git")
    } else {
        root.to_path_buf()
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reads (ours included: a pass opens the repository) are not changes.
        if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
            trigger.notify_one();
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "cannot watch the repository; polling only"))
    .ok()?;
    for path in [
        git_dir.join("refs"),
        git_dir.join("HEAD"),
        git_dir.join("packed-refs"),
    ] {
        if path.exists() {
            let mode = if path.is_dir() {
                notify::RecursiveMode::Recursive
            } else {
                notify::RecursiveMode::NonRecursive
            };
            if let Err(e) = watcher.watch(&path, mode) {
                tracing::warn!(path = %path.display(), error = %e, "cannot watch; polling only");
            }
        }
    }
    // Packed refs are rewritten by rename: watch the folder too.
    let _ = watcher.watch(&git_dir, notify::RecursiveMode::NonRecursive);
    Some(watcher)
}

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
struct SourceLoop {
    source: SourceConfig,
    /// The key the daemon shows the source by (see
    /// [`GitSource::expected_key`]).
    key: SourceKey,
    trigger: Arc<tokio::sync::Notify>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    state_dir: PathBuf,
    shutdown: CancellationToken,
    /// Keeps the filesystem watch on a local repository's refs alive.
    _watcher: Option<Arc<notify::RecommendedWatcher>>,
}

impl SourceLoop {
    /// A pass failed: the source keeps its last good active set, and the
    /// failure shows in status (a read error), metrics, log and readiness.
    async fn failed(&self, error: &reconcile::Error, took: Duration) {
        let key = &self.key;
        self.metrics.reconciled(&key.0, took, error.metric_label());
        tracing::warn!(source = %key.0, reason = error.metric_label(), error = %error, "reconcile failed; the last good state keeps running");
        self.readiness.mark_failed(key, &error.to_string());
        if matches!(error, reconcile::Error::Source(_)) {
            let recorded = SourceError {
                reason: error.metric_label().to_owned(),
                message: error.to_string(),
                diagnostics: serde_json::json!([]),
            };
            if let Err(e) = self.store.record_source_error(key, &recorded).await {
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

async fn reconcile_loop(context: SourceLoop, heartbeat: Heartbeat) {
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
        ..
    } = context.clone();
    let snapshot_path = Snapshot::path(&state_dir, &key);
    let git = Arc::new(Mutex::new(git));
    let mut snapshot = Snapshot::read(&snapshot_path);
    loop {
        let started = Instant::now();
        let outcome = pass(&git, &source, &store, snapshot.take()).await;
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
                tracing::warn!(source = %key.0, commit = %commit.id, reason = %refusal, "head commit not trusted; the last good state keeps running");
                snapshot = base;
                readiness.mark_reconciled(&key);
            }
            Ok((Outcome::Rejected { commit, .. }, base)) => {
                metrics.reconciled(&key.0, started.elapsed(), "rejected");
                tracing::warn!(source = %key.0, commit = %commit.id, "head commit refused; the last good state keeps running");
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
        heartbeat.beat();
        if !context.idle(jittered(source.interval)).await {
            return;
        }
    }
}

/// One reconcile pass; the Git part runs on a blocking thread. Returns the
/// outcome and, for a refused commit, the snapshot to keep using.
async fn pass(
    git: &Arc<Mutex<GitSource>>,
    source: &SourceConfig,
    store: &Arc<dyn Store>,
    base: Option<Snapshot>,
) -> Result<(Outcome, Option<Snapshot>), reconcile::Error> {
    let git = git.clone();
    let options = source.options.clone();
    let (loaded, base) = tokio::task::spawn_blocking(move || {
        let git = git.lock().expect("lock");
        let loaded = reconcile::load(&git, &options, base.as_ref());
        (loaded, base)
    })
    .await
    .expect("the load thread does not panic");
    let loaded = loaded?;
    let outcome = reconcile::register(store.as_ref(), loaded).await?;
    Ok((outcome, base))
}

/// Records the deliveries of ended executions and sends those due, apart
/// from the engine: a slow receiver holds only its own task. At shutdown,
/// attempts in flight are dropped unrecorded; the next start sends them
/// again (at-least-once, same `X-Weir-Delivery` id).
async fn notifier_loop(
    notifier: Arc<Notifier>,
    tick: Duration,
    leadership: Leadership,
    shutdown: CancellationToken,
    heartbeat: Heartbeat,
) {
    let mut sending = tokio::task::JoinSet::new();
    loop {
        if !leadership.is_leading() {
            // A follower's pass: nothing to do, and it is not stalled.
            heartbeat.beat();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(tick) => continue,
            }
        }
        let now = chrono::Utc::now();
        if let Err(e) = notifier.scan(now).await {
            tracing::warn!(error = %e, "cannot look for ended executions to notify");
        }
        if let Err(e) = notifier.deliver_due(now, &mut sending).await {
            tracing::warn!(error = %e, "cannot read the due notifications");
        }
        while sending.try_join_next().is_some() {}
        heartbeat.beat();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
        }
    }
    sending.abort_all();
}

async fn scheduler_loop(
    store: Arc<dyn Store>,
    tick: Duration,
    wake_engine: Arc<tokio::sync::Notify>,
    leadership: Leadership,
    shutdown: CancellationToken,
    heartbeat: Heartbeat,
) {
    let mut scheduler = Scheduler::new();
    loop {
        if !leadership.is_leading() {
            heartbeat.beat();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(tick) => continue,
            }
        }
        match scheduler.tick(store.as_ref(), chrono::Utc::now()).await {
            Ok(report) => {
                if !report.created.is_empty() || !report.cancelled.is_empty() {
                    wake_engine.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = %e, "scheduler tick failed"),
        }
        // Wake at the next scheduled instant when it comes before the tick
        // (a scheduled run starts on time, not up to a tick late).
        let now = chrono::Utc::now();
        let wait = scheduler
            .next_due(now)
            .and_then(|due| (due - now).to_std().ok())
            .map_or(tick, |until| until.min(tick));
        heartbeat.beat();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn engine_loop(
    engine: Arc<Engine>,
    tick: Duration,
    grace: Duration,
    leadership: Leadership,
    shutdown: CancellationToken,
    heartbeat: Heartbeat,
) {
    loop {
        if !leadership.is_leading() {
            heartbeat.beat();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(tick) => continue,
            }
        }
        if let Err(e) = engine.tick().await {
            tracing::warn!(error = %e, "engine tick failed");
        }
        heartbeat.beat();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = engine.wake.notified() => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
    // Shutting down: no new attempts; running ones get the grace period.
    engine.stop_starting();
    let deadline = Instant::now().checked_add(grace);
    while engine.running() > 0 && deadline.is_none_or(|d| Instant::now() < d) {
        let _ = tokio::time::timeout(Duration::from_millis(200), engine.wake.notified()).await;
        if let Err(e) = engine.tick().await {
            tracing::warn!(error = %e, "engine tick failed");
        }
    }
    engine.kill_running();
}

/// Node and execution metrics from the engine's events.
struct MetricsObserver(Arc<Metrics>);

impl Observer for MetricsObserver {
    fn node_event(
        &self,
        event: NodeEvent,
        execution: &Execution,
        node: &PlanNode,
        state: &NodeState,
    ) {
        match event {
            NodeEvent::Started => {
                // Schedule lag: from the scheduled instant to the first
                // process of the execution.
                if let (Some(at), true, true) = (
                    execution.scheduled_at,
                    node.deps.is_empty(),
                    state.attempts == 1,
                ) {
                    let lag = chrono::Utc::now() - at;
                    self.0.schedule_lag(lag.to_std().unwrap_or_default());
                }
            }
            NodeEvent::Succeeded | NodeEvent::Failed | NodeEvent::Aborted => {
                let took = match (state.started_at, state.finished_at) {
                    (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
                    _ => Duration::ZERO,
                };
                let status = if state.status == NodeStatus::Succeeded {
                    "succeeded"
                } else {
                    state.status.as_str()
                };
                self.0.node_finished(&node.task, status, took);
            }
        }
    }

    fn execution_finished(&self, execution: &Execution) {
        self.0.execution_finished(execution.status.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: tick }
spec:
  script: { interpreter: bash, source: 'true' }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: tick-flow }
spec:
  nodes: [ { id: tick, task: tick } ]
---
apiVersion: weir.dev/v1alpha1
kind: LaunchPlan
metadata: { name: every-second }
spec:
  workflow: tick-flow
  schedule: { every: 1s }
";

    /// A store with an every-second launch plan active.
    async fn store_with_a_schedule(dir: &std::path::Path) -> Arc<dyn Store> {
        let repo_dir = dir.join("repo");
        let mut init = git2::RepositoryInitOptions::new();
        init.initial_head("main");
        let repo = git2::Repository::init_opts(&repo_dir, &init).expect("git init");
        std::fs::write(repo_dir.join("plan.yaml"), PLAN).expect("write");
        let mut index = repo.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        let tree = repo
            .find_tree(index.write_tree().expect("tree"))
            .expect("tree");
        let sig = git2::Signature::now("Ada", "ada@example.com").expect("signature");
        repo.commit(Some("HEAD"), &sig, &sig, "A schedule", &tree, &[])
            .expect("commit");
        let spec = SourceSpec {
            repo: repo_dir.display().to_string(),
            branch: None,
            path: String::new(),
            credentials: Default::default(),
        };
        let git = GitSource::open(&spec, dir).expect("source");
        let loaded = reconcile::load(&git, &reconcile::Options::default(), None).expect("load");
        let store = store::open(&format!("sqlite://{}", dir.join("weir.db").display()))
            .await
            .expect("store");
        reconcile::register(store.as_ref(), loaded)
            .await
            .expect("register");
        store
    }

    async fn scheduled(store: &dyn Store) -> usize {
        store
            .executions(&Default::default())
            .await
            .expect("executions")
            .len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replica_that_does_not_lead_schedules_nothing_until_it_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with_a_schedule(dir.path()).await;
        let leadership = Leadership::default();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(scheduler_loop(
            store.clone(),
            Duration::from_millis(50),
            Arc::new(tokio::sync::Notify::new()),
            leadership.clone(),
            shutdown.clone(),
            Arc::new(Readiness::new(&[])).register_loop("scheduler", Duration::from_secs(30)),
        ));
        // Several instants of the schedule pass while another replica leads.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            scheduled(store.as_ref()).await,
            0,
            "a follower schedules nothing"
        );

        leadership.set(true);
        let mut waited = Duration::ZERO;
        while scheduled(store.as_ref()).await == 0 {
            assert!(
                waited < Duration::from_secs(30),
                "the leader never scheduled"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
        }
        shutdown.cancel();
        task.await.expect("the loop ends");
    }
}
