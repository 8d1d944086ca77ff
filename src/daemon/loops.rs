//! The daemon's three work loops over the store: the scheduler (creates
//! the executions schedules make due), the engine (drives unfinished
//! executions when woken or when something is due) and the notifier (records and sends notifications of ended
//! executions). `mod.rs` spawns each under the supervisor.
//!
//! What they guarantee: each does work only while this replica leads
//! (holds the store's engine lease, `lease.rs`); a follower's pass does
//! nothing but beat, so a second daemon on a store never schedules, runs
//! or notifies beside the leader. Each reads "now" from the [`Clock`] it is
//! given, never from the system directly, so a test can run it on virtual
//! time. At shutdown the engine loop gives running attempts the grace
//! period and kills what is left (the next start retries those).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::leader::Leadership;
use crate::clock::Clock;
use crate::engine::Engine;
use crate::engine::scheduler::Scheduler;
use crate::http::Heartbeat;
use crate::notify::Notifier;
use crate::spec::ExecutionId;
use crate::store::Store;

/// How often the scheduler and the engine make a full pass whatever the
/// wake-ups said: the safety net for work they missed (the engine reads
/// and drives every unfinished execution; the scheduler decides every
/// schedule).
pub(super) const SAFETY_NET: Duration = Duration::from_secs(30);

/// What a loop does while another replica leads: beats (a follower is not
/// stalled) and waits a tick. `false` once shutting down.
async fn follow(heartbeat: &Heartbeat, shutdown: &CancellationToken, tick: Duration) -> bool {
    heartbeat.beat();
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(tick) => true,
    }
}

/// Creates the executions of due scheduled instants: at each instant a
/// schedule fires (woken then, not up to a tick late), whenever a source's
/// reconciled commit changed (new or changed launch plans; checked each
/// `tick` with one read of the sources' status, which also sees a `weir
/// sync` by another process), on becoming the leader and every
/// [`SAFETY_NET`]; otherwise it reads nothing. Wakes the engine when it
/// created or cancelled executions.
pub(super) async fn scheduler_loop(
    store: Arc<dyn Store>,
    clock: Clock,
    tick: Duration,
    wake_engine: Arc<tokio::sync::Notify>,
    leadership: Leadership,
    shutdown: CancellationToken,
    heartbeat: Heartbeat,
) {
    let mut scheduler = Scheduler::new();
    // What it last logged: the schedules' count, or a failure, once each.
    let said = super::said::Said::default();
    // When the last full tick ran, what the sources' reconciled commits
    // were then, and the next instant it knew of.
    let mut last_tick: Option<tokio::time::Instant> = None;
    let mut reconciled = None;
    let mut next_due = None;
    loop {
        if !leadership.is_leading() {
            last_tick = None;
            if follow(&heartbeat, &shutdown, tick).await {
                continue;
            }
            return;
        }
        // Read once: to see whether a reconcile happened, and by the tick.
        match store.sources().await {
            Ok(sources) => {
                let commits: Vec<_> = sources
                    .iter()
                    .map(|s| (s.source.clone(), s.last_reconciled.clone()))
                    .collect();
                let due = last_tick.is_none_or(|at| at.elapsed() >= SAFETY_NET)
                    || reconciled.as_ref() != Some(&commits)
                    || next_due.is_some_and(|due| due <= clock.now());
                if due {
                    // Woken per batch of a burst, so the first start while
                    // the rest are written.
                    let mut wake = |_: &[ExecutionId]| wake_engine.notify_one();
                    match scheduler
                        .tick_notifying(store.as_ref(), clock.now(), sources, &mut wake)
                        .await
                    {
                        Ok(report) => {
                            last_tick = Some(tokio::time::Instant::now());
                            let schedules = scheduler.schedules();
                            if said.changed(format!("{schedules} schedules")) {
                                tracing::info!(schedules, next_due = ?scheduler.next_due(clock.now()), "active schedules");
                            }
                            reconciled = Some(commits);
                            if !report.created.is_empty() || !report.cancelled.is_empty() {
                                wake_engine.notify_one();
                            }
                            // A tick after a reconcile reads every active
                            // launch plan's version (2,000 records for as
                            // many schedules), and each tick the unfinished
                            // executions; handed back, what they leave
                            // free does not stay resident between ticks
                            // (+20 MB idle over a minute, otherwise).
                            let _ = tokio::task::spawn_blocking(crate::reconcile::give_back_memory)
                                .await;
                        }
                        Err(e) => {
                            last_tick = None;
                            if said.changed(format!("tick failed: {e}")) {
                                tracing::warn!(error = %e, "scheduler tick failed (said once until it changes)");
                            }
                        }
                    }
                    next_due = scheduler.next_due(clock.now());
                }
            }
            // The store cannot be read: the tick waits for it.
            Err(e) => {
                last_tick = None;
                if said.changed(format!("no sources: {e}")) {
                    tracing::warn!(error = %e, "cannot read the sources' status (said once until it changes)");
                }
            }
        }
        // Wake at the next scheduled instant when it comes before the tick
        // (a scheduled run starts on time, not up to a tick late).
        let now = clock.now();
        let wait = next_due
            .and_then(|due| (due - now).to_std().ok())
            .map_or(tick, |until| until.min(tick));
        heartbeat.beat();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Drives the executions when something wakes the engine (an execution
/// created or asked to cancel in this process, an attempt that ended) or
/// when something it knows of is due (a retry's backoff ending; with
/// Kubernetes, the next look at running Jobs), and otherwise sleeps. Each
/// `tick` without a wake-up it makes the cheap check for work another
/// process wrote to the store ([`Engine::look_outside`]); every
/// [`SAFETY_NET`], and on becoming the leader, it makes a full pass. At
/// shutdown: starts nothing more, lets running attempts finish within
/// `grace`, kills the rest.
pub(super) async fn engine_loop(
    engine: Arc<Engine>,
    tick: Duration,
    grace: Duration,
    leadership: Leadership,
    shutdown: CancellationToken,
    heartbeat: Heartbeat,
) {
    let mut last_full: Option<tokio::time::Instant> = None;
    let mut last_look = tokio::time::Instant::now();
    // A failing pass is logged once until its error changes.
    let said = super::said::Said::default();
    loop {
        if !leadership.is_leading() {
            // Another engine may drive meanwhile: a full pass on leading.
            last_full = None;
            if follow(&heartbeat, &shutdown, tick).await {
                continue;
            }
            break;
        }
        // The cheap look for work other processes wrote, each tick even
        // when wake-ups keep the engine busy.
        if last_look.elapsed() >= tick {
            last_look = tokio::time::Instant::now();
            if let Err(e) = engine.look_outside().await {
                tracing::warn!(error = %e, "cannot look for new work in the store");
            }
        }
        let full = last_full.is_none_or(|at| at.elapsed() >= SAFETY_NET);
        let passed = if full {
            last_full = Some(tokio::time::Instant::now());
            engine.tick().await
        } else {
            engine.pass().await
        };
        match passed {
            Err(e) => {
                if said.changed(e.to_string()) {
                    tracing::warn!(error = %e, "engine tick failed (said once until it changes)");
                }
                engine.forget();
            }
            Ok(()) => {
                if said.clear() {
                    tracing::info!("the engine ticks again");
                }
            }
        }
        heartbeat.beat();
        let wait = engine.next_wake(tick).map_or(tick, |due| due.min(tick));
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = engine.wake.notified() => {}
            _ = engine.rescan.notified() => engine.look_again(),
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Shutting down: no new attempts; running ones get the grace period.
    engine.stop_starting();
    let deadline = Instant::now().checked_add(grace);
    while engine.running() > 0 && deadline.is_none_or(|d| Instant::now() < d) {
        let _ = tokio::time::timeout(Duration::from_millis(200), engine.wake.notified()).await;
        if let Err(e) = engine.pass().await {
            tracing::warn!(error = %e, "engine tick failed");
        }
    }
    engine.kill_running();
}

/// Records the deliveries of ended executions and sends those due, apart
/// from the engine: a slow receiver holds only its own task. At shutdown,
/// attempts in flight are dropped unrecorded; the next start sends them
/// again (at-least-once, same `X-Weir-Delivery` id).
pub(super) async fn notifier_loop(
    notifier: Arc<Notifier>,
    clock: Clock,
    tick: Duration,
    leadership: Leadership,
    shutdown: CancellationToken,
    heartbeat: Heartbeat,
) {
    let mut sending = tokio::task::JoinSet::new();
    loop {
        if !leadership.is_leading() {
            if follow(&heartbeat, &shutdown, tick).await {
                continue;
            }
            break;
        }
        let now = clock.now();
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

/// Watches the active launch plans' event triggers (DESIGN.md section
/// 13): lists each artifact trigger's prefix at its interval, reads the
/// executions that ended for the upstream triggers, and creates the
/// executions their events are owed, waking the engine. Reads the active
/// launch plans again when a reconcile happened (one read of the
/// sources' status per `tick`); with no trigger it does nothing else.
/// Acts only while this replica leads, so one daemon of a store watches.
#[allow(clippy::too_many_arguments)]
pub(super) async fn trigger_loop(
    store: Arc<dyn Store>,
    clock: Clock,
    tick: Duration,
    mut watcher: crate::trigger::Watcher,
    metrics: Arc<crate::metrics::Metrics>,
    wake_engine: Arc<tokio::sync::Notify>,
    leadership: Leadership,
    shutdown: CancellationToken,
    heartbeat: Heartbeat,
) {
    let said = super::said::Said::default();
    let mut last_pass: Option<tokio::time::Instant> = None;
    let mut reconciled = None;
    loop {
        if !leadership.is_leading() {
            last_pass = None;
            if follow(&heartbeat, &shutdown, tick).await {
                continue;
            }
            return;
        }
        match store.sources().await {
            Ok(sources) => {
                let commits: Vec<_> = sources
                    .iter()
                    .map(|s| (s.source.clone(), s.last_reconciled_at))
                    .collect();
                let now = clock.now();
                let due = last_pass.is_none_or(|at| at.elapsed() >= SAFETY_NET)
                    || reconciled.as_ref() != Some(&commits)
                    || watcher.next_due().is_some_and(|due| due <= now);
                if due {
                    match watcher.pass(store.as_ref(), now, &sources).await {
                        Ok(report) => {
                            last_pass = Some(tokio::time::Instant::now());
                            reconciled = Some(commits);
                            if said.changed(format!("{} triggers", watcher.triggers())) {
                                tracing::info!(triggers = watcher.triggers(), "active triggers");
                            }
                            for kind in &report.seen {
                                metrics.trigger_event(kind.as_str());
                            }
                            for (kind, _) in &report.created {
                                metrics.trigger_execution(kind.as_str());
                            }
                            for (key, _) in &report.errors {
                                let kind = key.trigger.split(':').next().unwrap_or("other");
                                metrics.trigger_error(kind);
                            }
                            if let Some(waiting) = report.waiting {
                                metrics.trigger_deferred(waiting);
                            }
                            if !report.created.is_empty() {
                                wake_engine.notify_one();
                            }
                        }
                        Err(e) => {
                            last_pass = None;
                            if said.changed(format!("pass failed: {e}")) {
                                tracing::warn!(error = %e, "trigger pass failed (said once until it changes)");
                            }
                        }
                    }
                }
            }
            Err(e) => {
                last_pass = None;
                if said.changed(format!("no sources: {e}")) {
                    tracing::warn!(error = %e, "cannot read the sources' status (said once until it changes)");
                }
            }
        }
        let now = clock.now();
        let wait = watcher
            .next_due()
            .and_then(|due| (due - now).to_std().ok())
            .map_or(tick, |until| until.min(tick));
        heartbeat.beat();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Readiness;
    use crate::reconcile;
    use crate::source::git::{GitSource, SourceSpec};
    use crate::store;

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
        reconcile::register(store.as_ref(), loaded, chrono::Utc::now())
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

    /// On virtual time: tokio's clock is paused and moves only when the
    /// test advances it. A blocking task is kept running meanwhile, which
    /// stops a paused runtime from auto-advancing while it waits for the
    /// store (SQLite answers from a thread of its own): time cannot jump
    /// past the store's timeouts while a query is in flight.
    #[tokio::test]
    async fn a_replica_that_does_not_lead_schedules_nothing_until_it_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with_a_schedule(dir.path()).await;
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let no_auto_advance = tokio::task::spawn_blocking(move || {
            let _ = hold.recv();
        });
        tokio::time::pause();
        let clock = Clock::virtual_from(chrono::Utc::now());
        let tick = Duration::from_millis(50);
        let leadership = Leadership::default();
        let shutdown = CancellationToken::new();
        let wake_engine = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(scheduler_loop(
            store.clone(),
            clock.clone(),
            tick,
            wake_engine.clone(),
            leadership.clone(),
            shutdown.clone(),
            Arc::new(Readiness::new(&[])).register_loop("scheduler", Duration::from_secs(30)),
        ));
        // Several instants of the schedule pass while another replica leads.
        let start = clock.now();
        for _ in 0..50 {
            tokio::time::advance(tick).await;
        }
        assert!(clock.now() - start >= chrono::TimeDelta::milliseconds(2500));
        assert_eq!(
            scheduled(store.as_ref()).await,
            0,
            "a follower schedules nothing"
        );

        leadership.set(true);
        // At its next tick the loop, leading now, schedules the instants
        // due, and wakes the engine for them.
        tokio::time::advance(tick).await;
        wake_engine.notified().await;
        assert!(scheduled(store.as_ref()).await > 0, "the leader schedules");
        shutdown.cancel();
        task.await.expect("the loop ends");
        release.send(()).expect("the blocking task waits");
        no_auto_advance.await.expect("the blocking task ends");
    }
}
