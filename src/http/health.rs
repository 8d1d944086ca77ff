//! What `/healthz` (liveness) and `/readyz` (readiness) report, and the
//! state the daemon's loops feed them (DESIGN.md section 5).
//!
//! - **Readiness** (`/readyz`, take the replica out of the Service while
//!   503): every source has completed one pass, successful or not (a source
//!   that cannot be read is retried and shown, but does not hold the API
//!   out); every loop completed a pass within its expected period (a loop
//!   that stopped or hangs is *stalled*); and the store answered a ping
//!   (`SELECT 1`, [`Store::ping`]) within [`STORE_TIMEOUT`]. The JSON body
//!   says which source is pending or failing, which loop is stalled, and
//!   what the store said (never its credentials); and, apart from
//!   readiness, whether this replica leads (holds the store's engine
//!   lease) and which engine does.
//! - `/readyz` is unauthenticated and probed often, by many clients: what
//!   the store said is kept for [`STORE_CACHE`] ([`StoreState`]), and one
//!   probe at a time asks, so a storm of probes costs the database one ping
//!   and one lease read a second, whatever its size.
//! - **Liveness** (`/healthz`, restart the process while 503): only what a
//!   restart can cure: a loop that keeps dying ([`CRASH_LOOP`] restarts
//!   within [`CRASH_WINDOW`]). A dead store or remote is not cured by a
//!   restart, so it never fails liveness.
//!
//! Time is passed in (`now`), so a test evaluates a stalled loop by asking
//! about a later instant instead of waiting; the engine lease's liveness
//! is judged by the [`Clock`] given ([`Readiness::with_clock`]: the
//! daemon's one clock), never the wall clock read here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::Clock;
use crate::spec::SourceKey;
use crate::store::Store;

/// How long `/readyz` waits for the store's answer.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `/readyz` reuses the store's last answer.
pub const STORE_CACHE: Duration = Duration::from_secs(1);

/// Restarts of one loop within [`CRASH_WINDOW`] that fail liveness.
pub const CRASH_LOOP: usize = 5;

/// The window in which [`CRASH_LOOP`] restarts fail liveness.
pub const CRASH_WINDOW: Duration = Duration::from_secs(600);

/// What a loop is expected to complete a pass within, given its tick:
/// three ticks, and never less than 30 s.
pub fn expected_period(tick: Duration) -> Duration {
    tick.saturating_mul(3).max(Duration::from_secs(30))
}

/// The last pass of one source.
#[derive(Debug, Clone, Default)]
struct SourcePass {
    /// A pass completed (reconciled, refused the head, or failed).
    done: bool,
    /// The last pass's error, if it failed.
    error: Option<String>,
}

/// One supervised loop.
#[derive(Debug)]
struct LoopState {
    period: Duration,
    last_pass: Instant,
    /// When it was restarted, oldest first, within [`CRASH_WINDOW`].
    restarts: VecDeque<Instant>,
}

/// Readiness and liveness state: sources' passes and loops' heartbeats.
#[derive(Debug)]
pub struct Readiness {
    sources: Mutex<BTreeMap<SourceKey, SourcePass>>,
    loops: Mutex<BTreeMap<String, LoopState>>,
    /// This replica holds the store's engine lease (the daemon's lease
    /// loop says so); shown by `/readyz`, never part of readiness.
    leading: AtomicBool,
    /// The store's last answer and when it was asked; the lock is held
    /// while asking, so concurrent probes wait for one answer.
    store: tokio::sync::Mutex<Option<(Instant, StoreState)>>,
    /// What the engine lease's liveness is judged against: the daemon's
    /// clock, the one its lease loop renews by.
    clock: Clock,
}

/// What `/readyz` says about the store: whether it answered the ping, and
/// which engine holds the live engine lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreState {
    /// Why the store did not answer (no credentials), or `None`.
    pub error: Option<String>,
    /// The live engine lease's holder, if one could be read.
    pub leader: Option<String>,
}

impl StoreState {
    /// Asks `store` now: a ping, then the engine lease, each within
    /// [`STORE_TIMEOUT`].
    async fn ask(store: &dyn Store, clock: &Clock) -> StoreState {
        let error = match tokio::time::timeout(STORE_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(without_credentials(&e.to_string())),
            Err(_) => Some(format!("no answer within {} s", STORE_TIMEOUT.as_secs())),
        };
        let leader = match error {
            Some(_) => None,
            None => {
                match tokio::time::timeout(STORE_TIMEOUT, store.lease(crate::store::ENGINE_LEASE))
                    .await
                {
                    Ok(Ok(lease)) => lease.filter(|l| l.is_live(clock.now())).map(|l| l.holder),
                    _ => None,
                }
            }
        };
        StoreState { error, leader }
    }
}

/// `text` with every URL in it shown without credentials: a driver's error
/// may quote the address it failed to reach.
fn without_credentials(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains("://") {
                crate::redact::redact_url(word)
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A loop's handle on its heartbeat: [`Heartbeat::beat`] after each pass.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    readiness: Arc<Readiness>,
    name: String,
}

impl Heartbeat {
    /// The loop completed a pass now.
    pub fn beat(&self) {
        self.readiness.beat(&self.name, Instant::now());
    }

    /// The loop's name (`engine`, `source <key>`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The loop was restarted at `now`; returns its restarts within
    /// [`CRASH_WINDOW`].
    pub fn restarted(&self, now: Instant) -> usize {
        let mut loops = self.readiness.lock_loops();
        let Some(state) = loops.get_mut(&self.name) else {
            return 0;
        };
        state.restarts.push_back(now);
        while state
            .restarts
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) > CRASH_WINDOW)
        {
            state.restarts.pop_front();
        }
        // A restarted loop gets a whole period for its first pass.
        state.last_pass = now;
        state.restarts.len()
    }
}

/// A stalled loop, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stalled {
    #[serde(rename = "loop")]
    pub name: String,
    /// Seconds since its last completed pass.
    pub silent_for_secs: u64,
    /// What it is expected to pass within.
    pub expected_secs: u64,
}

/// A source whose last pass failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failing {
    pub source: String,
    pub error: String,
}

/// What the loops and sources say at one instant (the store is checked by
/// the handler).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Sources without a completed pass yet.
    pub pending: Vec<String>,
    /// Sources whose last pass failed (retried; not a reason for 503).
    pub failing: Vec<Failing>,
    /// Loops that have not completed a pass within their period.
    pub stalled: Vec<Stalled>,
    /// Loops restarted [`CRASH_LOOP`] times within [`CRASH_WINDOW`].
    pub crash_looping: Vec<String>,
}

impl Report {
    /// Ready, as far as sources and loops go.
    pub fn is_ready(&self) -> bool {
        self.pending.is_empty() && self.stalled.is_empty()
    }

    /// Alive: no loop keeps dying.
    pub fn is_alive(&self) -> bool {
        self.crash_looping.is_empty()
    }
}

impl Readiness {
    /// This replica now leads (holds the store's engine lease) or not.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
    }

    /// Whether this replica leads, as last set.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    pub fn new(sources: &[SourceKey]) -> Readiness {
        Readiness {
            sources: Mutex::new(
                sources
                    .iter()
                    .map(|key| (key.clone(), SourcePass::default()))
                    .collect(),
            ),
            loops: Mutex::new(BTreeMap::new()),
            leading: AtomicBool::new(false),
            store: tokio::sync::Mutex::new(None),
            clock: Clock::system(),
        }
    }

    /// Judges the engine lease's liveness by `clock` (the daemon's one
    /// clock) instead of the wall clock.
    pub fn with_clock(mut self, clock: Clock) -> Readiness {
        self.clock = clock;
        self
    }

    /// What the store says at `now`: its answer to a probe less than
    /// [`STORE_CACHE`] before, else a new one (see the module docs).
    pub async fn store_state(&self, store: &dyn Store, now: Instant) -> StoreState {
        let mut last = self.store.lock().await;
        if let Some((asked, state)) = last.as_ref()
            && now.saturating_duration_since(*asked) < STORE_CACHE
        {
            return state.clone();
        }
        let state = StoreState::ask(store, &self.clock).await;
        *last = Some((now, state.clone()));
        state
    }

    fn lock_loops(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LoopState>> {
        // The maps hold plain values: a panic elsewhere cannot leave them
        // half-written.
        self.loops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_sources(&self) -> std::sync::MutexGuard<'_, BTreeMap<SourceKey, SourcePass>> {
        self.sources.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a source (one opened after the start). Known sources keep
    /// their state.
    pub fn add_source(&self, source: &SourceKey) {
        self.lock_sources().entry(source.clone()).or_default();
    }

    /// `source` finished a pass that reconciled or refused the head: the
    /// daemon knows what it runs. Unknown sources are ignored.
    pub fn mark_reconciled(&self, source: &SourceKey) {
        if let Some(pass) = self.lock_sources().get_mut(source) {
            *pass = SourcePass {
                done: true,
                error: None,
            };
        }
    }

    /// `source` finished a pass that failed (it cannot be read, or the
    /// store refused the write); it keeps its last good active set.
    pub fn mark_failed(&self, source: &SourceKey, error: &str) {
        if let Some(pass) = self.lock_sources().get_mut(source) {
            *pass = SourcePass {
                done: true,
                error: Some(error.to_owned()),
            };
        }
    }

    /// Every source has completed a pass.
    pub fn is_ready(&self) -> bool {
        self.lock_sources().values().all(|pass| pass.done)
    }

    /// The sources without a completed pass, in key order.
    pub fn pending(&self) -> Vec<SourceKey> {
        self.lock_sources()
            .iter()
            .filter(|(_, pass)| !pass.done)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Registers a loop expected to pass within `period` (counted from
    /// now), and returns its heartbeat.
    pub fn register_loop(self: &Arc<Self>, name: &str, period: Duration) -> Heartbeat {
        self.lock_loops().insert(
            name.to_owned(),
            LoopState {
                period,
                last_pass: Instant::now(),
                restarts: VecDeque::new(),
            },
        );
        Heartbeat {
            readiness: self.clone(),
            name: name.to_owned(),
        }
    }

    fn beat(&self, name: &str, now: Instant) {
        if let Some(state) = self.lock_loops().get_mut(name) {
            state.last_pass = now;
        }
    }

    /// Sources and loops as of `now`.
    pub fn report(&self, now: Instant) -> Report {
        let (pending, failing) = {
            let sources = self.lock_sources();
            let pending = sources
                .iter()
                .filter(|(_, pass)| !pass.done)
                .map(|(key, _)| key.0.clone())
                .collect();
            let failing = sources
                .iter()
                .filter_map(|(key, pass)| {
                    pass.error.as_ref().map(|error| Failing {
                        source: key.0.clone(),
                        error: error.clone(),
                    })
                })
                .collect();
            (pending, failing)
        };
        let loops = self.lock_loops();
        let stalled = loops
            .iter()
            .filter_map(|(name, state)| {
                let silent = now.saturating_duration_since(state.last_pass);
                (silent > state.period).then(|| Stalled {
                    name: name.clone(),
                    silent_for_secs: silent.as_secs(),
                    expected_secs: state.period.as_secs(),
                })
            })
            .collect();
        let crash_looping = loops
            .iter()
            .filter(|(_, state)| {
                state
                    .restarts
                    .iter()
                    .filter(|at| now.saturating_duration_since(**at) <= CRASH_WINDOW)
                    .count()
                    >= CRASH_LOOP
            })
            .map(|(name, _)| name.clone())
            .collect();
        Report {
            pending,
            failing,
            stalled,
            crash_looping,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_store_state_is_kept_for_a_second_then_asked_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/weir.db", dir.path().display());
        let store = crate::store::sqlite::SqliteStore::open(&url)
            .await
            .expect("sqlite store");
        let readiness = Readiness::new(&[]);
        let asked = Instant::now();
        let up = readiness.store_state(&store, asked).await;
        assert_eq!(up.error, None);
        store.close().await;
        // Within the cache, the last answer stands: no query is made.
        let cached = readiness.store_state(&store, asked + STORE_CACHE / 2).await;
        assert_eq!(cached, up);
        // After it, the store is asked again, and is gone.
        let gone = readiness.store_state(&store, asked + STORE_CACHE).await;
        assert!(gone.error.is_some(), "{gone:?}");
    }

    /// The lease is judged by the clock the daemon hands over: taken in
    /// 2026 for 15 s, it is live 5 s later and gone 20 s later on that
    /// clock, whatever the wall clock says.
    #[tokio::test]
    async fn the_engine_lease_is_judged_by_the_daemons_clock() {
        use crate::store::LeaseStore as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/weir.db", dir.path().display());
        let store = crate::store::sqlite::SqliteStore::open(&url)
            .await
            .expect("sqlite store");
        let taken = chrono::DateTime::parse_from_rfc3339("2026-03-29T00:30:00Z")
            .expect("instant")
            .with_timezone(&chrono::Utc);
        store
            .acquire_lease(
                crate::store::ENGINE_LEASE,
                "engine-a",
                taken,
                Duration::from_secs(15),
            )
            .await
            .expect("lease taken");
        let at = |seconds| {
            Readiness::new(&[]).with_clock(Clock::virtual_from(
                taken + chrono::TimeDelta::seconds(seconds),
            ))
        };
        let asked = Instant::now();
        let within = at(5).store_state(&store, asked).await;
        assert_eq!(within.leader.as_deref(), Some("engine-a"));
        let after = at(20).store_state(&store, asked).await;
        assert_eq!(after.error, None);
        assert_eq!(after.leader, None, "expired on the daemon's clock");
    }

    #[test]
    fn store_errors_are_shown_without_credentials() {
        let shown = without_credentials(
            "cannot reach postgres://weir:s3cret@db:5432/weir (connection refused)",
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db:5432"), "{shown}");
    }

    fn key(name: &str) -> SourceKey {
        SourceKey::new(&format!("file:///srv/{name}"), "main", "")
    }

    #[test]
    fn a_failed_pass_counts_but_is_shown() {
        let readiness = Readiness::new(&[key("a"), key("b")]);
        let now = Instant::now();
        assert_eq!(readiness.report(now).pending.len(), 2);
        readiness.mark_reconciled(&key("a"));
        readiness.mark_failed(&key("b"), "cannot clone");
        let report = readiness.report(now);
        assert!(report.is_ready(), "{report:?}");
        assert_eq!(
            report.failing,
            vec![Failing {
                source: key("b").0,
                error: "cannot clone".into()
            }]
        );
        readiness.mark_reconciled(&key("b"));
        assert!(readiness.report(now).failing.is_empty());
    }

    #[test]
    fn a_loop_silent_past_its_period_is_stalled() {
        let readiness = Arc::new(Readiness::new(&[]));
        let engine = readiness.register_loop("engine", expected_period(Duration::from_secs(1)));
        let scheduler =
            readiness.register_loop("scheduler", expected_period(Duration::from_secs(1)));
        let start = Instant::now();
        assert!(readiness.report(start).is_ready());

        // 31 s later: the scheduler beat meanwhile, the engine did not.
        scheduler
            .readiness
            .beat("scheduler", start + Duration::from_secs(20));
        let report = readiness.report(start + Duration::from_secs(31));
        assert!(!report.is_ready());
        let names: Vec<&str> = report.stalled.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["engine"]);
        assert_eq!(report.stalled[0].expected_secs, 30);

        engine
            .readiness
            .beat("engine", start + Duration::from_secs(31));
        assert!(readiness.report(start + Duration::from_secs(32)).is_ready());
    }

    #[test]
    fn a_loop_that_keeps_dying_fails_liveness() {
        let readiness = Arc::new(Readiness::new(&[]));
        let beat = readiness.register_loop("engine", Duration::from_secs(30));
        let start = Instant::now();
        for i in 0..CRASH_LOOP - 1 {
            beat.restarted(start + Duration::from_secs(i as u64));
        }
        assert!(readiness.report(start + Duration::from_secs(5)).is_alive());
        beat.restarted(start + Duration::from_secs(5));
        let report = readiness.report(start + Duration::from_secs(6));
        assert_eq!(report.crash_looping, ["engine"]);
        // Restarts older than the window are forgiven.
        assert!(readiness.report(start + CRASH_WINDOW * 2).is_alive());
    }
}
