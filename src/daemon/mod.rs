//! `weir serve`: one long-running process that keeps the system converged
//! to Git (DESIGN.md section 5). This file wires it together; each piece
//! lives in its own file:
//! - [`config`]: what `weir serve` is told ([`Config`]), every default,
//!   and the `weir.toml` front end;
//! - `source_loop.rs`: per source, a reconcile loop woken by filesystem
//!   events on a local repository's refs (`crate::source::watch`), by
//!   webhooks, and by polling with jitter;
//! - `loops.rs`: the scheduler loop, creating due executions
//!   (deterministic ids, I4); the engine loop, driving the executions it
//!   is woken for or that have something due; the notifier loop;
//! - [`lease`] and [`leader`]: which replica leads (the store's engine
//!   lease; with Kubernetes, a Lease first); [`supervise`]: restarts a
//!   loop that panics, and says so in readiness;
//! - `metrics_observer.rs`: the engine's node events counted in
//!   [`crate::metrics`];
//! - the HTTP server (`src/http`): health, readiness, metrics, webhooks, API.
//!
//! All of it runs in one tokio runtime. SIGTERM or SIGINT stops the loops
//! from starting work, gives running attempts a grace period to finish
//! (their results are recorded), then stops the rest without recording
//! them: the next start retries those.

pub mod config;
pub mod leader;
pub mod lease;
mod loops;
mod metrics_observer;
mod source_loop;
pub mod supervise;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use config::{Config, Executor, KubeConfig, SourceConfig};

use crate::clock::Clock;
use crate::engine::Engine;
use crate::engine::kubernetes::KubeRuns;
use crate::executor::environment::Inherited;
use crate::executor::kubernetes::Kube;
use crate::http::{self, AppState, Readiness, SourceHandle};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::source::git::GitSource;
use crate::source::watch::watch_refs;
use crate::store::{self, SourceKey};
use leader::{Elector, Leadership};
use lease::StoreLease;
use loops::{engine_loop, notifier_loop, scheduler_loop};
use metrics_observer::MetricsObserver;
use source_loop::{SourceLoop, reconcile_loop};
use supervise::Supervisor;

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
    // The one clock every loop reads (tests of a loop hand it a virtual one).
    let clock = Clock::system();
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
        let trigger = handle.trigger.clone();
        let watch = watch_refs(&source.spec.repo, move || trigger.notify_one());
        let context = SourceLoop {
            source: source.clone(),
            key: handle.key.clone(),
            trigger: handle.trigger.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            readiness: readiness.clone(),
            state_dir: config.state_dir.clone(),
            shutdown: shutdown.clone(),
            _watch: watch.map(Arc::new),
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
        .with_clock(clock.clone())
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
                clock: clock.clone(),
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
        )
        .with_clock(clock.clone());
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
        let (store, wake) = (store.clone(), engine.rescan.clone());
        let (leadership, stop, tick) = (leadership.clone(), shutdown.clone(), config.tick);
        let clock = clock.clone();
        loops.spawn("scheduler", period, move |heartbeat| {
            scheduler_loop(
                store.clone(),
                clock.clone(),
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
                clock.now(),
            )
            .with_clock(clock.clone())
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
                clock.clone(),
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
    key.parts().map_or("main", |parts| parts.branch)
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
