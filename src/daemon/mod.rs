//! `weir serve`: one long-running process that keeps the system converged
//! to Git (DESIGN.md section 5). This file wires it together, in named
//! steps ([`run`]: open the lineage sinks, open the store, listen, start
//! the sources, build the engine, elect, take the store's lease, spawn the
//! loops, serve, shut down); each piece lives in its own file:
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
//!   [`crate::metrics`]; with `[openlineage]` (or `--openlineage-*`), the
//!   engine's executions and nodes also sent as OpenLineage RunEvents
//!   ([`crate::lineage::openlineage`]), whatever started them;
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
mod said;
mod source_loop;
pub mod supervise;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use config::{Config, Executor, KubeConfig, OpenLineageConfig, SourceConfig};

use crate::clock::Clock;
use crate::engine::Engine;
use crate::executor::environment::Inherited;
use crate::executor::kubernetes::{Kube, KubeExecutor};
use crate::http::{self, AppState, Readiness, SourceHandle};
use crate::lineage::openlineage::{self, Emitter};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::source::git::GitSource;
use crate::source::watch::watch_refs;
use crate::spec::SourceKey;
use crate::store;
use leader::{Elector, Leadership};
use lease::StoreLease;
use loops::{engine_loop, notifier_loop, scheduler_loop, trigger_loop};
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
    Artifacts(crate::artifact::OpenError),
    #[error("cannot reach Kubernetes (in-cluster or kubeconfig): {0}")]
    Kubernetes(kube::Error),
    #[error(transparent)]
    OpenLineage(#[from] openlineage::Error),
}

/// Runs until `shutdown` is cancelled: a fixed sequence of named steps,
/// as Flux's reconcilers read, each taking what the previous produced.
/// A step that fails stops the start-up with its error (the loops already
/// spawned are aborted as their supervisor is dropped).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let lineage = open_lineage(&config)?;
    let daemon = open_store(&config, shutdown).await?;
    let listener = listen(config.listen).await?;
    tracing::info!(listen = %config.listen, sources = daemon.sources.len(), "weir serve started");
    let mut loops = Supervisor::new(
        daemon.readiness.clone(),
        daemon.metrics.clone(),
        daemon.shutdown.clone(),
    );
    start_sources(&daemon, &config, &mut loops);
    let artifacts: Arc<dyn crate::artifact::ArtifactStore> =
        Arc::from(crate::artifact::open(&artifacts_url(&config)).map_err(Error::Artifacts)?);
    let engine = build_engine(&daemon, &config, artifacts.clone(), lineage.clone());
    let (engine, kube_leadership) = elect(&daemon, &config, engine, &mut loops).await?;
    let store_lease = take_store_lease(&daemon, &config, engine, kube_leadership);
    spawn_loops(&daemon, &config, &store_lease, &mut loops);
    spawn_trigger_loop(
        &daemon,
        &config,
        &store_lease,
        artifacts.clone(),
        &mut loops,
    );
    let served = serve(&daemon, config, listener, artifacts).await;
    shut_down(&daemon, loops, store_lease, lineage).await;
    served.map_err(Error::Http)
}

/// Opens where OpenLineage events go, if anywhere: first, so a file that
/// cannot be opened or a URL that is not http(s) stops the start-up before
/// anything runs, saying which.
fn open_lineage(config: &Config) -> Result<Option<Arc<Emitter>>, Error> {
    let OpenLineageConfig { file, url, api_key } = &config.openlineage;
    let api_key = api_key.as_ref().map(|k| k.0.as_str());
    let emitter = Emitter::open(file.as_deref(), url.as_deref(), api_key)?;
    if emitter.is_some() {
        let url = url.as_deref().map(crate::source::git::redact_url);
        tracing::info!(file = ?file, url = ?url, "sending OpenLineage events");
    }
    Ok(emitter.map(Arc::new))
}

/// What every step of [`run`] shares: the store, the counters, the
/// readiness state, the one clock every loop reads, the sources, and the
/// signal that stops them.
struct Daemon {
    store: Arc<dyn store::Store>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    /// The one clock every loop reads (tests of a loop hand it a virtual one).
    clock: Clock,
    sources: Vec<SourceHandle>,
    shutdown: CancellationToken,
}

/// Opens the store, and the state the other steps share. A source is
/// opened (cloned) by its own loop later, which retries: one that cannot
/// be read at start stops neither the daemon nor the others.
async fn open_store(config: &Config, shutdown: CancellationToken) -> Result<Daemon, Error> {
    let store = store::open(&config.db_url).await?;
    let clock = Clock::system();
    let sources: Vec<SourceHandle> = config
        .sources
        .iter()
        .map(|source| {
            let key = GitSource::expected_key(&source.spec, &config.state_dir);
            SourceHandle {
                branch: key_branch(&key).to_owned(),
                key,
                repo_urls: repo_urls(&source.spec.repo),
                trigger: Arc::new(tokio::sync::Notify::new()),
            }
        })
        .collect();
    let keys: Vec<_> = sources.iter().map(|s| s.key.clone()).collect();
    Ok(Daemon {
        store,
        metrics: Arc::new(Metrics::new()),
        readiness: Arc::new(Readiness::new(&keys).with_clock(clock.clone())),
        clock,
        sources,
        shutdown,
    })
}

/// Binds the HTTP server's address (before any loop starts: a busy port
/// stops the start-up at once).
async fn listen(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })
}

/// Spawns one reconcile loop per source, woken by its ref watcher, its
/// webhooks and its polling interval.
fn start_sources(daemon: &Daemon, config: &Config, loops: &mut Supervisor) {
    for (source, handle) in config.sources.iter().zip(&daemon.sources) {
        let trigger = handle.trigger.clone();
        let watch = watch_refs(&source.spec.repo, move || trigger.notify_one());
        let context = SourceLoop {
            source: source.clone(),
            key: handle.key.clone(),
            trigger: handle.trigger.clone(),
            store: daemon.store.clone(),
            metrics: daemon.metrics.clone(),
            readiness: daemon.readiness.clone(),
            state_dir: config.state_dir.clone(),
            clock: daemon.clock.clone(),
            shutdown: daemon.shutdown.clone(),
            said: said::Said::default(),
            _watch: watch.map(Arc::new),
        };
        loops.spawn(
            &format!("source {}", handle.key.0),
            http::health::expected_period(source.interval),
            move |heartbeat| reconcile_loop(context.clone(), heartbeat),
        );
    }
}

/// The artifact store's URL: the configured one, else
/// `<state_dir>/artifacts`.
fn artifacts_url(config: &Config) -> String {
    config
        .artifacts
        .clone()
        .unwrap_or_else(|| config.state_dir.join("artifacts").display().to_string())
}

/// The engine on the artifact store, the daemon's clock and its metrics,
/// and, when configured, the OpenLineage emitter: every execution it
/// drives (scheduled, backfilled, started through the API or a trigger)
/// and each of its nodes is sent as OpenLineage runs.
fn build_engine(
    daemon: &Daemon,
    config: &Config,
    artifacts: Arc<dyn crate::artifact::ArtifactStore>,
    lineage: Option<Arc<Emitter>>,
) -> Engine {
    let engine = Engine::new(daemon.store.clone(), artifacts, config.state_dir.clone())
        .with_task_env(Inherited::from_process(config.task_env.clone()))
        .with_clock(daemon.clock.clone())
        .observe(Arc::new(MetricsObserver(daemon.metrics.clone())));
    match lineage {
        Some(emitter) => engine.observe(emitter),
        None => engine,
    }
}

/// With Kubernetes, runs `engine`'s attempts as Jobs and spawns the
/// elector of the leader-election Lease: replicas first elect a leader
/// there, and only that one then takes the store's engine lease
/// ([`take_store_lease`]). Returns the engine and, with Kubernetes, the
/// Lease's leadership.
async fn elect(
    daemon: &Daemon,
    config: &Config,
    engine: Engine,
    loops: &mut Supervisor,
) -> Result<(Engine, Option<Leadership>), Error> {
    let kube_config = match &config.executor {
        Executor::Local => return Ok((engine, None)),
        Executor::Kubernetes(kube_config) => kube_config,
    };
    let client = kube::Client::try_default()
        .await
        .map_err(Error::Kubernetes)?;
    let kube = Kube::new(client.clone(), kube_config.settings.clone());
    let executor =
        KubeExecutor::new(kube, artifacts_url(config)).with_task_types(engine.task_types().clone());
    let engine = engine.with_executor(Arc::new(executor));
    let leadership = Leadership::default();
    let elector = Elector {
        name: kube_config.lease.clone(),
        identity: kube_config.identity.clone(),
        duration: kube_config.lease_duration,
        clock: daemon.clock.clone(),
    };
    let leases: kube::Api<_> = kube::Api::namespaced(client, &kube_config.settings.namespace);
    let (held, stop) = (leadership.clone(), daemon.shutdown.clone());
    loops.spawn(
        "elector",
        http::health::expected_period(elector.duration / 3),
        move |heartbeat| {
            elector
                .clone()
                .run(leases.clone(), held.clone(), stop.clone(), heartbeat)
        },
    );
    Ok((engine, Some(leadership)))
}

/// The engine, leading while this replica holds the store's engine lease,
/// and the loop that holds it, with a supervisor of its own.
struct StoreLeaseLoop {
    engine: Arc<Engine>,
    leadership: Leadership,
    /// Stops the lease loop: only once the engine has stopped, its grace
    /// included ([`shut_down`]).
    stop: CancellationToken,
    supervisor: Supervisor,
}

/// Leading is holding the store's engine lease: a second daemon on the
/// store follows (serves the API, reconciles) until it is free. The
/// engine asks right before each attempt it starts. Spawns the lease loop,
/// which outlives the others (it is stopped only once the engine has
/// stopped, its grace included), so it has a supervisor of its own.
fn take_store_lease(
    daemon: &Daemon,
    config: &Config,
    engine: Engine,
    kube_leadership: Option<Leadership>,
) -> StoreLeaseLoop {
    let leadership = Leadership::default();
    let engine = Arc::new(engine.lead_while({
        let leadership = leadership.clone();
        move || leadership.is_leading()
    }));
    let stop = CancellationToken::new();
    let mut supervisor = Supervisor::new(
        daemon.readiness.clone(),
        daemon.metrics.clone(),
        stop.clone(),
    );
    let lease = StoreLease::new(
        daemon.store.clone(),
        engine.owner().engine.clone(),
        config.lease_duration,
    )
    .with_clock(daemon.clock.clone());
    let on_change: Arc<dyn Fn(bool) + Send + Sync> = {
        let (engine, metrics, readiness) = (
            engine.clone(),
            daemon.metrics.clone(),
            daemon.readiness.clone(),
        );
        Arc::new(move |leading: bool| {
            metrics.leading(leading);
            readiness.set_leading(leading);
            if !leading {
                // Whoever takes over retries them; none is left running
                // beside its retry.
                engine.kill_running();
            }
        })
    };
    let (held, lease_stop) = (leadership.clone(), stop.clone());
    supervisor.spawn(
        "lease",
        http::health::expected_period(lease.period()),
        move |heartbeat| {
            lease.clone().run(
                held.clone(),
                kube_leadership.clone(),
                lease_stop.clone(),
                heartbeat,
                on_change.clone(),
            )
        },
    );
    StoreLeaseLoop {
        engine,
        leadership,
        stop,
        supervisor,
    }
}

/// Spawns the scheduler, engine and notifier loops, each acting only
/// while this replica leads.
fn spawn_loops(daemon: &Daemon, config: &Config, lease: &StoreLeaseLoop, loops: &mut Supervisor) {
    let period = http::health::expected_period(config.tick);
    {
        let (store, wake) = (daemon.store.clone(), lease.engine.wake.clone());
        let (leadership, stop, tick) = (
            lease.leadership.clone(),
            daemon.shutdown.clone(),
            config.tick,
        );
        let clock = daemon.clock.clone();
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
        let (engine, leadership, stop) = (
            lease.engine.clone(),
            lease.leadership.clone(),
            daemon.shutdown.clone(),
        );
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
        let metrics = daemon.metrics.clone();
        Arc::new(
            Notifier::new(
                daemon.store.clone(),
                config.state_dir.clone(),
                public_url,
                daemon.clock.now(),
            )
            .with_clock(daemon.clock.clone())
            .on_attempt(Arc::new(move |delivery, outcome| {
                metrics.notification(&delivery.target, outcome);
            })),
        )
    };
    let (leadership, stop, tick) = (
        lease.leadership.clone(),
        daemon.shutdown.clone(),
        config.tick,
    );
    let clock = daemon.clock.clone();
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

/// Spawns the loop that watches the launch plans' event triggers, acting
/// only while this replica leads.
fn spawn_trigger_loop(
    daemon: &Daemon,
    config: &Config,
    lease: &StoreLeaseLoop,
    artifacts: Arc<dyn crate::artifact::ArtifactStore>,
    loops: &mut Supervisor,
) {
    let period = http::health::expected_period(config.tick);
    let (store, wake, metrics) = (
        daemon.store.clone(),
        lease.engine.wake.clone(),
        daemon.metrics.clone(),
    );
    let (leadership, stop, tick, clock) = (
        lease.leadership.clone(),
        daemon.shutdown.clone(),
        config.tick,
        daemon.clock.clone(),
    );
    loops.spawn("triggers", period, move |heartbeat| {
        trigger_loop(
            store.clone(),
            clock.clone(),
            tick,
            crate::trigger::Watcher::new(artifacts.clone()),
            metrics.clone(),
            wake.clone(),
            leadership.clone(),
            stop.clone(),
            heartbeat,
        )
    });
}

/// Serves HTTP (health, readiness, metrics, webhooks, API) until
/// `shutdown` is cancelled or the server fails.
async fn serve(
    daemon: &Daemon,
    config: Config,
    listener: tokio::net::TcpListener,
    artifacts: Arc<dyn crate::artifact::ArtifactStore>,
) -> std::io::Result<()> {
    let state = AppState {
        store: daemon.store.clone(),
        metrics: daemon.metrics.clone(),
        sources: daemon.sources.clone(),
        readiness: daemon.readiness.clone(),
        secrets: config.secrets,
        max_payload: 1024 * 1024,
        state_dir: Some(config.state_dir.clone()),
        clock: daemon.clock.clone(),
        artifacts: Some(artifacts),
        rollback: match config.console_rollback {
            http::RollbackWrites::Off => None,
            writes => Some(http::RollbackWriter {
                push: writes == http::RollbackWrites::Push,
                sources: config
                    .sources
                    .iter()
                    .map(|s| {
                        (
                            GitSource::expected_key(&s.spec, &config.state_dir),
                            s.spec.clone(),
                        )
                    })
                    .collect(),
                state_dir: config.state_dir.clone(),
            }),
        },
    };
    http::server::serve(
        listener,
        http::router(state),
        config.http,
        daemon.shutdown.clone(),
    )
    .await
}

/// Stops the loops (the engine's grace included), then, only once the
/// engine has stopped, the lease loop: the lease is released last. The
/// OpenLineage events of what the engine did are delivered before it
/// returns.
async fn shut_down(
    daemon: &Daemon,
    loops: Supervisor,
    lease: StoreLeaseLoop,
    lineage: Option<Arc<Emitter>>,
) {
    daemon.shutdown.cancel();
    loops.join().await;
    lease.stop.cancel();
    lease.supervisor.join().await;
    if let Some(emitter) = lineage {
        // Delivery blocks (a POST waits for its answer): off the runtime.
        if tokio::task::spawn_blocking(move || emitter.flush())
            .await
            .is_err()
        {
            tracing::warn!("the OpenLineage events could not all be delivered at shutdown");
        }
    }
    tracing::info!("weir serve stopped");
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
