//! One engine drives a store at a time: the store's engine lease
//! ([`crate::store::LeaseStore`]) held by `weir serve`, `weir run --wait`
//! and `weir cancel` while they drive executions (DESIGN.md section 5).
//!
//! A holder renews the lease every third of its duration and stops leading
//! as soon as two renewals in a row failed (before the lease can expire
//! under it, so a successor never drives alongside it); a follower tries
//! as often, and takes the lease over once it has expired, or at once when
//! its holder is provably dead (an engine of this very host whose process
//! is gone, `engine::identity`); a holder that
//! stops cleanly releases it, so a successor takes over at once. With the
//! Kubernetes executor, replicas first elect a leader through the
//! Kubernetes Lease (`super::leader`), and only that leader takes the
//! store lease (a `gate`): leading means holding both.
//!
//! Every decision takes the time it is made at (`now`), read from the
//! lease's [`Clock`] (the system clock unless a test gives another), so the
//! rounds are tested with an injected clock; waits and deadlines are on
//! tokio's monotonic clock, which a test may pause and advance.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::leader::Leadership;
use crate::clock::Clock;
use crate::engine::identity::holder_is_gone_here;
use crate::http::{Heartbeat, Readiness};
use crate::store::{self, ENGINE_LEASE, Lease, Store};

/// The store's engine lease as seen by one engine (its holder name).
#[derive(Clone)]
pub struct StoreLease {
    store: Arc<dyn Store>,
    holder: String,
    duration: Duration,
    clock: Clock,
}

/// What [`StoreLease::try_hold`] found.
pub enum Hold {
    /// The lease is this command's now, renewed until released or lost.
    Held(Held),
    /// Another engine holds it (`holder`, its name) and drives the store.
    Following { holder: String },
}

/// What a round found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// This engine holds the lease until `until`.
    Leading { until: DateTime<Utc> },
    /// Another engine holds it until `until`.
    Following {
        holder: String,
        until: DateTime<Utc>,
    },
}

impl StoreLease {
    /// The engine lease of `store` for the engine named `holder`
    /// (`Engine::owner().engine`), taken for `duration` at a time.
    pub fn new(store: Arc<dyn Store>, holder: String, duration: Duration) -> StoreLease {
        StoreLease {
            store,
            holder,
            duration: duration.max(Duration::from_millis(300)),
            clock: Clock::system(),
        }
    }

    /// Reads the time of each round from `clock` instead of the system
    /// clock.
    pub fn with_clock(mut self, clock: Clock) -> StoreLease {
        self.clock = clock;
        self
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// How often a holder renews and a follower tries.
    pub fn period(&self) -> Duration {
        self.duration / 3
    }

    /// One round at `now`: take the lease, renew it, or find its holder;
    /// a holder proved dead (an engine of this host, boot and pid
    /// namespace whose process is gone) is taken over at once instead of
    /// waited out.
    pub async fn round(&self, now: DateTime<Utc>) -> Result<Round, store::Error> {
        let lease = self
            .store
            .acquire_lease(ENGINE_LEASE, &self.holder, now, self.duration)
            .await?;
        if lease.holder == self.holder || !holder_is_gone_here(&lease.holder) {
            return Ok(self.judge(&lease, now));
        }
        let taken = self
            .store
            .take_over_lease(
                ENGINE_LEASE,
                &lease.holder,
                &self.holder,
                now,
                self.duration,
            )
            .await?;
        if taken.as_ref().is_some_and(|l| l.holder == self.holder) {
            tracing::info!(dead = %lease.holder, holder = %self.holder, "the engine lease's holder is gone from this host: taken over at once");
        }
        match taken {
            Some(taken) => Ok(self.judge(&taken, now)),
            // Released meanwhile: free for the taking.
            None => {
                let lease = self
                    .store
                    .acquire_lease(ENGINE_LEASE, &self.holder, now, self.duration)
                    .await?;
                Ok(self.judge(&lease, now))
            }
        }
    }

    /// Until when a holder may lead, on its monotonic clock, given a
    /// round sent at `sent` (`now` on the wall clock) that found the lease
    /// held `until`: a third of a term before the lease expires, so a
    /// successor never drives alongside it. Reckoned from when the round
    /// was sent, however long its answer took.
    pub fn deadline(&self, sent: Instant, now: DateTime<Utc>, until: DateTime<Utc>) -> Instant {
        let left = (until - now).to_std().unwrap_or(Duration::ZERO);
        sent + left.saturating_sub(self.period())
    }

    fn judge(&self, lease: &Lease, now: DateTime<Utc>) -> Round {
        if lease.is_held_by(&self.holder, now) {
            Round::Leading {
                until: lease.expires_at,
            }
        } else {
            Round::Following {
                holder: lease.holder.clone(),
                until: lease.expires_at,
            }
        }
    }

    /// Gives the lease up, if this engine holds it.
    pub async fn release(&self) {
        match self.store.release_lease(ENGINE_LEASE, &self.holder).await {
            Ok(true) => tracing::info!(holder = %self.holder, "released the engine lease"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(holder = %self.holder, error = %e, "cannot release the engine lease; a successor takes over when it expires");
            }
        }
    }

    /// Rounds until `stop`, keeping `leadership` true while this engine
    /// holds the lease (and `gate`, when given, leads), beating
    /// `heartbeat` after every round. `on_change` is told each change
    /// (`true`: now leading). At `stop` the lease is released.
    ///
    /// Run under the daemon's supervisor: should it stop any other way (a
    /// panic), leadership is dropped as it ends, long before the lease can
    /// expire, and the restarted loop takes it again (renewing the lease
    /// it still holds). A round that hangs is cut at a third of a term and
    /// counts as a failed one, so a store that stopped answering also
    /// drops leadership before the lease lapses.
    ///
    /// The caller stops this only once its engine has stopped driving (the
    /// shutdown grace included), so the lease covers every attempt it
    /// records.
    pub async fn run(
        self,
        leadership: Leadership,
        gate: Option<Leadership>,
        stop: CancellationToken,
        heartbeat: Heartbeat,
        on_change: Arc<dyn Fn(bool) + Send + Sync>,
    ) {
        let leading_guard = DropsLeadership {
            leadership: leadership.clone(),
            on_change: on_change.clone(),
        };
        // Leading until then (monotonic), as the last round that won says.
        let mut deadline: Option<Instant> = None;
        let mut follows: Option<String> = None;
        loop {
            let now = self.clock.now();
            let sent = Instant::now();
            let gated = gate.as_ref().is_some_and(|g| !g.is_leading());
            if gated {
                if deadline.take().is_some() {
                    self.release().await;
                }
            } else {
                // A round is cut at a third of a term, and at the deadline
                // while leading: it never keeps leadership past it.
                let limit = deadline.map_or(self.period(), |d| {
                    d.saturating_duration_since(sent).min(self.period())
                });
                let round = tokio::time::timeout(limit, self.round(now)).await;
                match round {
                    Ok(Ok(Round::Leading { until })) => {
                        if deadline.is_none() {
                            tracing::info!(holder = %self.holder, "holding the engine lease: this engine drives the store");
                        }
                        deadline = Some(self.deadline(sent, now, until));
                        follows = None;
                    }
                    Ok(Ok(Round::Following { holder, until })) => {
                        if follows.as_deref() != Some(holder.as_str()) {
                            tracing::info!(leader = %holder, until = %until, "another engine holds the engine lease: following");
                        }
                        deadline = None;
                        follows = Some(holder);
                    }
                    failed => {
                        let error = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "the store did not answer in time".to_owned(),
                        };
                        tracing::warn!(%error, "cannot take or renew the engine lease");
                        // Stop leading a third of a term before the lease
                        // can expire, so no successor drives alongside.
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            deadline = None;
                        }
                    }
                }
            }
            leadership.set_until(deadline);
            let leading = deadline.is_some();
            if leading != leadership.is_set() {
                leadership.set(leading);
                on_change(leading);
            }
            heartbeat.beat();
            // Wake at the deadline too, to say leadership ended.
            let wait = deadline.map_or(self.period(), |d| {
                d.saturating_duration_since(Instant::now())
                    .min(self.period())
            });
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        drop(leading_guard);
        self.release().await;
    }

    /// Takes the lease for a command that drives executions itself
    /// (`weir run --wait`, `weir cancel`): [`Hold::Held`] renews it in the
    /// background (the loop of [`StoreLease::run`]) until
    /// [`Held::release`], or until it is lost; [`Hold::Following`] names
    /// the live holder.
    ///
    /// It is lost when another engine holds it (this process was stopped,
    /// or the store did not answer, for longer than a term), or when
    /// renewals failed until a third of a term before it expires; then
    /// [`Held::lost`] fires, [`Held::leadership`] is false, and the
    /// renewing stops (the lease is released if still this engine's).
    pub async fn try_hold(self) -> Result<Hold, store::Error> {
        let now = self.clock.now();
        let sent = Instant::now();
        match self.round(now).await? {
            Round::Following { holder, .. } => Ok(Hold::Following { holder }),
            Round::Leading { until } => {
                let leadership = Leadership::default();
                leadership.set_until(Some(self.deadline(sent, now, until)));
                leadership.set(true);
                let (stop, lost) = (CancellationToken::new(), CancellationToken::new());
                let on_change: Arc<dyn Fn(bool) + Send + Sync> = {
                    let (stop, lost, holder) = (stop.clone(), lost.clone(), self.holder.clone());
                    Arc::new(move |leading| {
                        // Released (`stop`): not lost.
                        if !leading && !stop.is_cancelled() {
                            tracing::warn!(%holder, "lost the engine lease: no longer driving");
                            lost.cancel();
                            stop.cancel();
                        }
                    })
                };
                // A command has no health endpoint: its beats go nowhere.
                let heartbeat = Arc::new(Readiness::new(&[])).register_loop("lease", self.duration);
                let renewing = tokio::spawn(self.clone().run(
                    leadership.clone(),
                    None,
                    stop.clone(),
                    heartbeat,
                    on_change,
                ));
                Ok(Hold::Held(Held {
                    stop,
                    lost,
                    leadership,
                    renewing,
                }))
            }
        }
    }
}

/// Drops leadership when the lease loop ends, however it ends (a panic
/// included): the loop alone says this engine leads.
struct DropsLeadership {
    leadership: Leadership,
    on_change: Arc<dyn Fn(bool) + Send + Sync>,
}

impl Drop for DropsLeadership {
    fn drop(&mut self) {
        if self.leadership.is_set() {
            self.leadership.set(false);
            (self.on_change)(false);
        }
    }
}

/// The engine lease held by a command, renewed until released or lost.
pub struct Held {
    stop: CancellationToken,
    lost: CancellationToken,
    leadership: Leadership,
    renewing: tokio::task::JoinHandle<()>,
}

impl Held {
    /// Fires once the lease is lost: the command must stop driving.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Whether the command still leads now (false from its deadline on,
    /// even before [`Held::lost`] fires).
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Stops renewing and gives the lease up (a daemon waiting as a
    /// follower takes over at once).
    pub async fn release(self) {
        self.stop.cancel();
        let _ = self.renewing.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Readiness;
    use std::sync::Mutex;

    async fn sqlite(dir: &std::path::Path) -> Arc<dyn Store> {
        store::open(&format!("sqlite://{}", dir.join("weir.db").display()))
            .await
            .expect("store")
    }

    /// A lease loop that ends other than by `stop` (a panic, an abort)
    /// drops leadership as it ends, and tells `on_change`.
    #[tokio::test]
    async fn a_lease_loop_that_dies_drops_leadership_and_a_restart_takes_it_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = sqlite(dir.path()).await;
        let lease = StoreLease::new(store.clone(), "me".into(), Duration::from_secs(15));
        let leadership = Leadership::default();
        let changes = Arc::new(Mutex::new(Vec::new()));
        let (told, leading) = tokio::sync::watch::channel(false);
        let on_change: Arc<dyn Fn(bool) + Send + Sync> = {
            let changes = changes.clone();
            Arc::new(move |leading| {
                changes.lock().expect("lock").push(leading);
                told.send_replace(leading);
            })
        };
        let readiness = Arc::new(Readiness::new(&[]));
        let heartbeat = readiness.register_loop("lease", Duration::from_secs(30));
        let start = || {
            tokio::spawn(lease.clone().run(
                leadership.clone(),
                None,
                CancellationToken::new(),
                heartbeat.clone(),
                on_change.clone(),
            ))
        };
        // Waits until the loop says it leads (`on_change`), not a moment more.
        let until_leading = |want: bool| {
            let mut leading = leading.clone();
            async move {
                leading
                    .wait_for(|now| *now == want)
                    .await
                    .expect("the sender lives");
            }
        };

        let first = start();
        until_leading(true).await;
        first.abort();
        let _ = first.await;
        assert!(!leadership.is_leading(), "dropped as the loop died");
        assert_eq!(*changes.lock().expect("lock"), [true, false]);
        let held = store
            .lease(ENGINE_LEASE)
            .await
            .expect("read")
            .expect("held");
        assert_eq!(held.holder, "me", "still this engine's in the store");

        let restarted = start();
        until_leading(true).await;
        assert_eq!(
            store
                .lease(ENGINE_LEASE)
                .await
                .expect("read")
                .map(|l| l.acquired_at),
            Some(held.acquired_at),
            "the restarted loop renews the lease it held"
        );
        restarted.abort();
        let _ = restarted.await;
        assert_eq!(*changes.lock().expect("lock"), [true, false, true, false]);
    }

    /// A command holding the lease learns it lost it (another engine took
    /// it over, as after this process was stopped past its term): `lost`
    /// fires, leadership ends, and the renewing stops.
    #[tokio::test]
    async fn a_held_lease_taken_over_fires_lost_and_ends_leadership() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = sqlite(dir.path()).await;
        let lease = StoreLease::new(store.clone(), "me".into(), Duration::from_secs(3));
        let Hold::Held(held) = lease.try_hold().await.expect("store") else {
            panic!("the lease is free");
        };
        assert!(held.leadership().is_leading());
        assert!(!held.lost().is_cancelled());
        let taken = store
            .take_over_lease(
                ENGINE_LEASE,
                "me",
                "other",
                Utc::now(),
                Duration::from_secs(60),
            )
            .await
            .expect("take over")
            .expect("held");
        assert_eq!(taken.holder, "other");
        tokio::time::timeout(Duration::from_secs(30), held.lost().cancelled())
            .await
            .expect("lost fires at the next renewal");
        assert!(!held.leadership().is_leading());
        held.release().await;
        let after = store
            .lease(ENGINE_LEASE)
            .await
            .expect("read")
            .expect("held");
        assert_eq!(after.holder, "other", "the new holder's, untouched");
    }

    /// Leadership is reckoned from when the winning round was sent: a
    /// third of a term before the lease expires.
    #[tokio::test]
    async fn the_deadline_is_a_third_of_a_term_before_expiry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = sqlite(dir.path()).await;
        let lease = StoreLease::new(store, "me".into(), Duration::from_secs(15));
        let sent = Instant::now();
        let now = Utc::now();
        let until = now + chrono::Duration::seconds(15);
        assert_eq!(
            lease.deadline(sent, now, until),
            sent + Duration::from_secs(10)
        );
        assert_eq!(
            lease.deadline(sent, now, now),
            sent,
            "expired: no time left"
        );
    }
}
