//! Leader election through a `coordination.k8s.io/v1` Lease, as
//! client-go's leader election does: several `weir serve` replicas serve
//! the API and webhooks, and only the one holding the Lease schedules,
//! drives executions and sends notifications.
//!
//! The holder renews the Lease every `duration / 3`; another replica takes
//! it over once it has not been renewed for `duration`. Every write is a
//! replace with the resourceVersion read, so of two replicas racing for an
//! expired Lease exactly one wins (the other gets 409 Conflict). A leader
//! that cannot renew before its Lease expires stops leading at once.
//!
//! A round decides at the instant it is given ([`Elector::round`] takes
//! `now`; the loop reads it from the elector's [`Clock`]), so a test sees
//! a Lease expire by handing a later instant instead of waiting for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

/// Whether this replica leads now: set by the loop that holds a lease,
/// and, when that loop gave a deadline, only until then.
///
/// The deadline is a monotonic instant (the lease's expiry minus a
/// margin, reckoned from when the round that won it was sent), so a
/// round that hangs, or an engine busy in a tick, stops leading on time
/// without waiting for the loop to say so, and no wall-clock step within
/// the process moves it.
#[derive(Debug, Clone, Default)]
pub struct Leadership {
    set: Arc<AtomicBool>,
    until: Arc<Mutex<Option<Instant>>>,
}

impl Leadership {
    /// Always leading: one replica, no Lease (the local executor).
    pub fn alone() -> Leadership {
        let leadership = Leadership::default();
        leadership.set.store(true, Ordering::SeqCst);
        leadership
    }

    /// Whether this replica leads now: set, and its deadline not reached.
    pub fn is_leading(&self) -> bool {
        self.is_leading_at(Instant::now())
    }

    /// Whether this replica leads at `now`.
    pub fn is_leading_at(&self, now: Instant) -> bool {
        self.set.load(Ordering::SeqCst)
            && self
                .until
                .lock()
                .expect("lock")
                .is_none_or(|until| now < until)
    }

    /// Whether the loop last said it leads (its deadline aside).
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    pub(crate) fn set(&self, leading: bool) {
        let was = self.set.swap(leading, Ordering::SeqCst);
        if was != leading {
            tracing::info!(leading, "leadership changed");
        }
    }

    /// Leads (while set) only until `until`; `None`: no deadline.
    pub(crate) fn set_until(&self, until: Option<Instant>) {
        *self.until.lock().expect("lock") = until;
    }
}

/// This replica's name in the Lease: the pod's name (`POD_NAME`, from the
/// downward API), else the host's, else one made from the process id.
pub fn identity(env: &dyn Fn(&str) -> Option<String>) -> String {
    env("POD_NAME")
        .or_else(|| env("HOSTNAME"))
        .unwrap_or_else(|| format!("weir-{}", std::process::id()))
}

/// The Lease and who this replica is.
#[derive(Debug, Clone)]
pub struct Elector {
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    /// Where the loop reads the time of each round.
    pub clock: Clock,
}

#[derive(Debug, thiserror::Error)]
#[error("the Lease {name}: {source}")]
pub struct Error {
    name: String,
    #[source]
    source: kube::Error,
}

/// What one round of the election did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// This replica holds the Lease (acquired or renewed).
    Leading,
    /// Another replica holds a live Lease, or won the race for it.
    Following,
}

impl Elector {
    /// One round at `now`: read the Lease; create it, renew it, or take it
    /// over when it expired; or leave it to its live holder.
    pub async fn round(&self, api: &Api<Lease>, now: DateTime<Utc>) -> Result<Round, Error> {
        let error = |source| Error {
            name: self.name.clone(),
            source,
        };
        // Past jiff's calendar (year 9999) only in a test's imagination.
        let now = Timestamp::from_microsecond(now.timestamp_micros()).unwrap_or(Timestamp::MAX);
        let seconds = i32::try_from(self.duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        let current = match api.get_opt(&self.name).await.map_err(error)? {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                return match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Round::Leading),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Following),
                    Err(e) => Err(error(e)),
                };
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let renewed = spec.renew_time.as_ref().map(|t| t.0);
        let lasts_ms = 1000 * i64::from(spec.lease_duration_seconds.unwrap_or(seconds));
        let expired =
            renewed.is_none_or(|at| at.as_millisecond() + lasts_ms < now.as_millisecond());
        let mine = holder == self.identity;
        if !mine && !holder.is_empty() && !expired {
            return Ok(Round::Following);
        }
        let mut next = current.clone();
        let transitions = spec.lease_transitions.unwrap_or(0);
        next.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if mine {
                spec.acquire_time
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if mine { transitions } else { transitions + 1 }),
            ..spec
        });
        // The resourceVersion read makes this a compare-and-swap.
        match api.replace(&self.name, &PostParams::default(), &next).await {
            Ok(_) => Ok(Round::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Following),
            Err(e) => Err(error(e)),
        }
    }

    /// Runs rounds until `shutdown`, keeping `leadership` true while this
    /// replica holds the Lease.
    /// Beats `heartbeat` after each round, won or lost: a follower is not
    /// stalled.
    pub async fn run(
        self,
        api: Api<Lease>,
        leadership: Leadership,
        shutdown: CancellationToken,
        heartbeat: crate::http::Heartbeat,
    ) {
        let mut last_held: Option<Instant> = None;
        loop {
            match self.round(&api, self.clock.now()).await {
                Ok(Round::Leading) => {
                    last_held = Some(Instant::now());
                    leadership.set(true);
                }
                Ok(Round::Following) => {
                    last_held = None;
                    leadership.set(false);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leader election round failed");
                    // Keep leading only while the Lease we hold is live.
                    if last_held.is_none_or(|at| at.elapsed() >= self.duration) {
                        leadership.set(false);
                    }
                }
            }
            heartbeat.beat();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.duration / 3) => {}
            }
        }
        leadership.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leadership given a deadline ends at it, whatever the loop that set
    /// it is doing meanwhile.
    #[test]
    fn leadership_ends_at_its_deadline_without_the_loop() {
        let leadership = Leadership::default();
        let now = Instant::now();
        assert!(!leadership.is_leading_at(now));
        leadership.set(true);
        leadership.set_until(Some(now + Duration::from_secs(10)));
        assert!(leadership.is_leading_at(now));
        assert!(leadership.is_leading_at(now + Duration::from_secs(9)));
        assert!(!leadership.is_leading_at(now + Duration::from_secs(10)));
        assert!(leadership.is_set(), "the loop has not said otherwise");
        leadership.set_until(None);
        assert!(leadership.is_leading_at(now + Duration::from_secs(3600)));
        assert!(Leadership::alone().is_leading());
    }
}
