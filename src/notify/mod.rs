//! Notifications (DESIGN.md section 6): a launch plan's `notify` rules,
//! delivered apart from the engine.
//!
//! Two level-triggered steps, each run by the daemon's notifier loop:
//! - [`Notifier::scan`] looks at executions that ended since it last looked
//!   and records one [`Delivery`] per matching rule, its id derived from
//!   (execution, event, rule), so recording twice is a no-op. The scan
//!   starts a lookback window in the past, so a daemon killed between an
//!   execution's end and the delivery's creation creates it after restart.
//! - [`Notifier::deliver_due`] sends the pending deliveries that are due,
//!   each on its own task with a timeout (a slow or dead receiver delays
//!   nothing else), records every attempt, and retries with exponential
//!   backoff until the retry window closes. A delivery acknowledged (2xx)
//!   is never sent again; one sent but not yet recorded is sent again after
//!   a restart with the same `X-Weir-Delivery` id (at-least-once).
//!
//! Both steps take the time they run at (`now`), and an attempt's instants
//! (when it was made, when the next one is due) come from the notifier's
//! [`Clock`] (the system clock unless a test gives another), never from the
//! system clock directly.

mod send;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::spec::{Definition, Digest, EntityRef, ExecutionId, Kind, NotifyRule, Phase};
use crate::store::execution::{Execution, Status};
use crate::store::{self, Delivery, DeliveryAttempt, DeliveryStatus, Store, VersionKey};

pub use crate::outbound::sign;
pub use send::{Message, SIGNATURE_HEADER};

/// How deliveries are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Wait before the second attempt; doubled after each failure.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// No attempt starts later than this after the first one; the delivery
    /// is then `failed`.
    pub give_up_after: Duration,
    /// One request's timeout (connect, send and answer).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            give_up_after: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`-th failed attempt.
    pub fn backoff(&self, failures: usize) -> Duration {
        let exponent = u32::try_from(failures.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(20);
        self.first_backoff
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.max_backoff)
    }
}

/// Called once per attempt with the delivery as recorded after it and the
/// attempt's outcome: `delivered`, `retrying` or `failed` (for metrics).
pub type OnAttempt = Arc<dyn Fn(&Delivery, &'static str) + Send + Sync>;

/// Creates and sends the deliveries of ended executions.
pub struct Notifier {
    store: Arc<dyn Store>,
    /// Where attempts' logs are (the failed node's last lines are sent).
    state_dir: PathBuf,
    /// The daemon's URL as receivers reach it (links to the API).
    public_url: String,
    policy: RetryPolicy,
    /// One HTTP agent (its connection pool) for every delivery.
    agent: ureq::Agent,
    on_attempt: Option<OnAttempt>,
    scan: Mutex<ScanState>,
    rules: Mutex<HashMap<Digest, Arc<Vec<NotifyRule>>>>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    /// Where "now" comes from for an attempt's instants.
    clock: Clock,
}

struct ScanState {
    /// Executions finished at or after this are looked at.
    since: DateTime<Utc>,
    /// Those already looked at whose end is `since` (the next scan sees
    /// them again).
    seen: HashSet<ExecutionId>,
}

/// How far back the first scan looks.
pub const LOOKBACK: Duration = Duration::from_secs(24 * 3600);

/// At most this many executions per store read while scanning.
const SCAN_PAGE: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Notifier {
    pub fn new(
        store: Arc<dyn Store>,
        state_dir: PathBuf,
        public_url: String,
        now: DateTime<Utc>,
    ) -> Notifier {
        Notifier {
            store,
            state_dir,
            public_url: public_url.trim_end_matches('/').to_owned(),
            agent: send::agent(RetryPolicy::default().timeout),
            policy: RetryPolicy::default(),
            on_attempt: None,
            scan: Mutex::new(ScanState {
                since: now - chrono::Duration::from_std(LOOKBACK).expect("a day fits"),
                seen: HashSet::new(),
            }),
            rules: Mutex::new(HashMap::new()),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            clock: Clock::system(),
        }
    }

    /// Reads an attempt's instants from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Notifier {
        self.clock = clock;
        self
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Notifier {
        self.agent = send::agent(policy.timeout);
        self.policy = policy;
        self
    }

    pub fn on_attempt(mut self, on_attempt: OnAttempt) -> Notifier {
        self.on_attempt = Some(on_attempt);
        self
    }

    /// Records the deliveries of executions that ended since the last scan;
    /// returns how many were new.
    pub async fn scan(&self, now: DateTime<Utc>) -> Result<u64, Error> {
        let mut added = 0;
        loop {
            let since = lock(&self.scan).since;
            let ended = self.store.finished_since(since, SCAN_PAGE).await?;
            let mut deliveries = Vec::new();
            for execution in &ended {
                if lock(&self.scan).seen.contains(&execution.id) {
                    continue;
                }
                deliveries.extend(self.deliveries_of(execution, now).await?);
            }
            if !deliveries.is_empty() {
                added += self.store.add_deliveries(&deliveries).await?;
            }
            let full = ended.len() == SCAN_PAGE as usize;
            let mut state = lock(&self.scan);
            if let Some(last) = ended.iter().filter_map(|e| e.finished_at).max() {
                if last > state.since {
                    state.since = last;
                    state.seen.clear();
                }
                state.seen.extend(
                    ended
                        .iter()
                        .filter(|e| e.finished_at == Some(last))
                        .map(|e| e.id.clone()),
                );
            }
            // A full page whose executions all ended at one instant would
            // not move `since`: stop rather than read it again.
            if !full || ended.iter().all(|e| e.finished_at == Some(state.since)) {
                return Ok(added);
            }
        }
    }

    /// The deliveries `execution`'s launch plan asks for, given its status.
    async fn deliveries_of(
        &self,
        execution: &Execution,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, Error> {
        let (Some(plan), Some(version)) = (&execution.launch_plan, &execution.launch_plan_version)
        else {
            return Ok(Vec::new());
        };
        let Some(phase) = phase_of(execution.status) else {
            return Ok(Vec::new());
        };
        let rules = self.rules_of(&execution.project, plan, version).await?;
        Ok(rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.on.contains(&phase))
            .map(|(index, rule)| {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                let (target, destination) = send::describe(rule);
                Delivery {
                    id: Delivery::id_of(&execution.id, execution.status, index),
                    execution: execution.id.clone(),
                    event: execution.status,
                    rule: index,
                    target: target.to_owned(),
                    destination,
                    status: DeliveryStatus::Pending,
                    attempts: Vec::new(),
                    next_attempt_at: Some(now),
                    created_at: now,
                    delivered_at: None,
                }
            })
            .collect())
    }

    /// A launch plan version's rules, read once per process.
    async fn rules_of(
        &self,
        project: &str,
        plan: &str,
        version: &Digest,
    ) -> Result<Arc<Vec<NotifyRule>>, Error> {
        if let Some(rules) = lock(&self.rules).get(version) {
            return Ok(rules.clone());
        }
        let key = VersionKey {
            entity: EntityRef {
                project: project.to_owned(),
                kind: Kind::LaunchPlan,
                name: plan.to_owned(),
            },
            digest: version.clone(),
        };
        let rules = match self.store.version_document(&key).await? {
            Some(value) => match Definition::from_json(Kind::LaunchPlan, value) {
                Ok(Definition::LaunchPlan(doc)) => doc.spec.notify,
                Ok(_) | Err(_) => {
                    tracing::warn!(launch_plan = plan, version = %version.short(), "cannot read the launch plan's notify rules");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let rules = Arc::new(rules);
        lock(&self.rules).insert(version.clone(), rules.clone());
        Ok(rules)
    }

    /// Starts sending, on `tasks`, every pending delivery due at `now` that
    /// is not being sent already; returns how many were started. The caller
    /// does not wait for them.
    pub async fn deliver_due(
        self: &Arc<Self>,
        now: DateTime<Utc>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Result<usize, Error> {
        let due = self.store.due_deliveries(now, 64).await?;
        let mut started = 0;
        for delivery in due {
            if !lock(&self.in_flight).insert(delivery.id.clone()) {
                continue;
            }
            let notifier = self.clone();
            tasks.spawn(async move {
                let id = delivery.id.clone();
                if let Err(e) = notifier.attempt(delivery).await {
                    tracing::warn!(delivery = %id, error = %e, "cannot record a delivery attempt");
                }
                lock(&notifier.in_flight).remove(&id);
            });
            started += 1;
        }
        Ok(started)
    }

    /// One attempt at `delivery`, recorded.
    async fn attempt(&self, mut delivery: Delivery) -> Result<(), Error> {
        let Some(execution) = self.store.execution(&delivery.execution).await? else {
            return Ok(());
        };
        let nodes = self.store.nodes(&execution.id).await?;
        let rules = match (&execution.launch_plan, &execution.launch_plan_version) {
            (Some(plan), Some(version)) => self.rules_of(&execution.project, plan, version).await?,
            _ => Arc::new(Vec::new()),
        };
        let rule = rules.get(delivery.rule as usize).cloned();
        let message = Message::new(
            &delivery,
            &execution,
            &nodes,
            &self.state_dir,
            &self.public_url,
        );
        let agent = self.agent.clone();
        let started = Instant::now();
        let at = self.clock.now();
        let result = match rule {
            Some(rule) => tokio::task::spawn_blocking(move || send::send(&rule, &message, &agent))
                .await
                .unwrap_or_else(|e| {
                    Err(send::Failure::permanent(format!(
                        "the sender panicked: {e}"
                    )))
                }),
            None => Err(send::Failure::permanent(
                "the launch plan version no longer has this rule".into(),
            )),
        };
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let outcome = match result {
            Ok(status) => {
                delivery.attempts.push(DeliveryAttempt {
                    at,
                    http_status: Some(status),
                    error: None,
                    millis,
                });
                delivery.status = DeliveryStatus::Delivered;
                delivery.delivered_at = Some(self.clock.now());
                delivery.next_attempt_at = None;
                "delivered"
            }
            Err(failure) => {
                delivery.attempts.push(DeliveryAttempt {
                    at,
                    http_status: failure.http_status,
                    error: Some(failure.message.clone()),
                    millis,
                });
                let first = delivery.attempts.first().map_or(at, |a| a.at);
                let next = self.clock.now()
                    + chrono::Duration::from_std(self.policy.backoff(delivery.attempts.len()))
                        .unwrap_or_default();
                let window =
                    chrono::Duration::from_std(self.policy.give_up_after).unwrap_or_default();
                if failure.permanent || next > first + window {
                    delivery.status = DeliveryStatus::Failed;
                    delivery.next_attempt_at = None;
                    tracing::warn!(delivery = %delivery.id, execution = %delivery.execution, destination = %delivery.destination, error = %failure.message, "notification given up");
                    "failed"
                } else {
                    delivery.next_attempt_at = Some(next);
                    tracing::info!(delivery = %delivery.id, destination = %delivery.destination, error = %failure.message, attempts = delivery.attempts.len(), "notification will be retried");
                    "retrying"
                }
            }
        };
        self.store.update_delivery(&delivery).await?;
        if let Some(on_attempt) = &self.on_attempt {
            on_attempt(&delivery, outcome);
        }
        Ok(())
    }
}

/// The notify phase of a terminal status.
fn phase_of(status: Status) -> Option<Phase> {
    match status {
        Status::Succeeded => Some(Phase::Succeeded),
        Status::Failed => Some(Phase::Failed),
        Status::TimedOut => Some(Phase::TimedOut),
        Status::Cancelled => Some(Phase::Cancelled),
        Status::Queued | Status::Running => None,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let policy = RetryPolicy::default();
        let waits: Vec<u64> = (1..=11).map(|n| policy.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(policy.backoff(10_000).as_secs(), 300);
    }
}
