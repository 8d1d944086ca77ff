//! The daemon's Prometheus metrics, served at `/metrics`.
//!
//! The loops report what happened through the narrow methods of
//! [`Metrics`] (a reconcile pass, a commit, an execution or node that
//! finished, a schedule's lag); this file alone decides names, labels and
//! buckets, so the exposition stays consistent.
//!
//! Label cardinality is bounded by construction: `source` is one of the
//! configured sources; `reason` is an error's `metric_label()` (a fixed set
//! of names); `status` is checked against the known statuses (anything else
//! becomes `other`); `weir_source_info` keeps one commit per source (the
//! previous commit's series is removed); node durations are not labelled by
//! task, whose names are unbounded.
//!
//! It is a module of its own, not a part of the HTTP server, because the
//! loops that count (the daemon's reconcile, scheduler, engine and notifier
//! loops) sit beside the server, not below it. It depends only on what it
//! counts (the store's execution and node statuses) and must not reach up
//! into `http` or `daemon`: the server renders it, the daemon feeds it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::store::execution::{NodeStatus, Status};

/// The `Content-Type` of [`Metrics::render`]'s text (Prometheus 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The outcome of a reconcile pass that is not an error.
const RECONCILED: &str = "reconciled";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    source: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommitLabels {
    source: String,
    commit: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoopLabels {
    r#loop: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    target: String,
    outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the daemon, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    reconcile_duration: HistogramFamily<SourceLabels>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    source_info: Family<CommitLabels, Gauge>,
    /// The commit each source's `weir_source_info` series names now.
    source_commits: Mutex<HashMap<String, String>>,
    versions_registered: Family<SourceLabels, Counter>,
    executions: Family<StatusLabels, Counter>,
    schedule_lag: Histogram,
    node_duration: HistogramFamily<StatusLabels>,
    notifications: Family<DeliveryLabels, Counter>,
    loop_restarts: Family<LoopLabels, Counter>,
    leader: Gauge,
    trigger_events: Family<TriggerLabels, Counter>,
    trigger_executions: Family<TriggerLabels, Counter>,
    trigger_errors: Family<TriggerLabels, Counter>,
    trigger_deferred: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// 5 ms to about 41 s: a reconcile pass, a schedule's lag.
fn short_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// 100 ms to about 7 h: a node's run.
fn long_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 4.0, 10))
}

/// A trigger kind as a label: one of three, else `other`.
fn trigger_labels(kind: &str) -> TriggerLabels {
    let kind = if ["artifact", "upstream", "webhook"].contains(&kind) {
        kind
    } else {
        "other"
    };
    TriggerLabels {
        kind: kind.to_owned(),
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let reconcile_duration: HistogramFamily<SourceLabels> =
            Family::new_with_constructor(short_buckets);
        registry.register_with_unit(
            "weir_reconcile_duration",
            "How long a reconcile pass of a source took",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "weir_reconcile_errors",
            "Reconcile passes that did not reconcile the head, by reason (`rejected`: the commit was invalid)",
            reconcile_errors.clone(),
        );
        let source_info = Family::<CommitLabels, Gauge>::default();
        registry.register(
            "weir_source_info",
            "The commit each source last reconciled (always 1)",
            source_info.clone(),
        );
        let versions_registered = Family::<SourceLabels, Counter>::default();
        registry.register(
            "weir_versions_registered",
            "Versions registered, by source",
            versions_registered.clone(),
        );
        let notifications = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "weir_notifications",
            "Notification delivery attempts, by target (webhook, slack) and outcome (delivered, retrying, failed)",
            notifications.clone(),
        );
        let executions = Family::<StatusLabels, Counter>::default();
        registry.register(
            "weir_executions",
            "Executions that finished, by status",
            executions.clone(),
        );
        let schedule_lag = short_buckets();
        registry.register_with_unit(
            "weir_schedule_lag",
            "From a scheduled instant to its execution's creation",
            Unit::Seconds,
            schedule_lag.clone(),
        );
        let node_duration: HistogramFamily<StatusLabels> =
            Family::new_with_constructor(long_buckets);
        registry.register_with_unit(
            "weir_node_duration",
            "How long a node ran, by its final status",
            Unit::Seconds,
            node_duration.clone(),
        );
        let loop_restarts = Family::<LoopLabels, Counter>::default();
        registry.register(
            "weir_loop_restarts",
            "Daemon loops restarted after they panicked or returned, by loop",
            loop_restarts.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "weir_leader",
            "1 while this daemon holds the store's engine lease (it schedules and drives executions), else 0",
            leader.clone(),
        );
        let trigger_events = Family::<TriggerLabels, Counter>::default();
        registry.register(
            "weir_trigger_events",
            "Events recorded by launch plans' triggers, by kind (artifact, upstream, webhook)",
            trigger_events.clone(),
        );
        let trigger_executions = Family::<TriggerLabels, Counter>::default();
        registry.register(
            "weir_trigger_executions",
            "Executions created for triggers' events, by kind",
            trigger_executions.clone(),
        );
        let trigger_errors = Family::<TriggerLabels, Counter>::default();
        registry.register(
            "weir_trigger_errors",
            "Trigger polls that failed (a prefix that cannot be listed, an event that cannot start), by kind",
            trigger_errors.clone(),
        );
        let trigger_deferred = Gauge::default();
        registry.register(
            "weir_trigger_events_deferred",
            "Events recorded that wait for room under their trigger's maxPending",
            trigger_deferred.clone(),
        );
        Metrics {
            registry,
            leader,
            trigger_events,
            trigger_executions,
            trigger_errors,
            trigger_deferred,
            loop_restarts,
            reconcile_duration,
            reconcile_errors,
            source_info,
            source_commits: Mutex::new(HashMap::new()),
            versions_registered,
            notifications,
            executions,
            schedule_lag,
            node_duration,
        }
    }

    /// A reconcile pass of `source` ended with `outcome`: `reconciled`,
    /// `rejected` (an invalid commit) or an error's `metric_label()`. Every
    /// outcome but `reconciled` counts in `weir_reconcile_errors_total`.
    pub fn reconciled(&self, source: &str, took: Duration, outcome: &str) {
        self.reconcile_duration
            .get_or_create(&SourceLabels {
                source: source.to_owned(),
            })
            .observe(took.as_secs_f64());
        if outcome != RECONCILED {
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    source: source.to_owned(),
                    reason: outcome.to_owned(),
                })
                .inc();
        }
    }

    /// `source` now runs `commit`: `weir_source_info{source,commit} 1`,
    /// replacing the series of its previous commit.
    pub fn source_commit(&self, source: &str, commit: &str) {
        let mut commits = self
            .source_commits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(previous) = commits.insert(source.to_owned(), commit.to_owned()) {
            if previous != commit {
                self.source_info.remove(&CommitLabels {
                    source: source.to_owned(),
                    commit: previous,
                });
            }
        }
        self.source_info
            .get_or_create(&CommitLabels {
                source: source.to_owned(),
                commit: commit.to_owned(),
            })
            .set(1);
    }

    /// A pass of `source` registered `count` new versions.
    pub fn versions_registered(&self, source: &str, count: u64) {
        self.versions_registered
            .get_or_create(&SourceLabels {
                source: source.to_owned(),
            })
            .inc_by(count);
    }

    /// This daemon started (`true`) or stopped leading: holding the
    /// store's engine lease.
    pub fn leading(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// An execution ended with `status` (`Status::as_str`).
    pub fn execution_finished(&self, status: &str) {
        let status = Status::parse(status).map_or("other", Status::as_str);
        self.executions
            .get_or_create(&StatusLabels {
                status: status.to_owned(),
            })
            .inc();
    }

    /// A notification attempt to a `target` (`webhook`, `slack`) ended with
    /// `outcome` (`delivered`, `retrying`, `failed`).
    pub fn notification(&self, target: &str, outcome: &str) {
        let bounded = |value: &str, allowed: &[&str]| {
            if allowed.contains(&value) {
                value
            } else {
                "other"
            }
            .to_owned()
        };
        self.notifications
            .get_or_create(&DeliveryLabels {
                target: bounded(target, &["webhook", "slack"]),
                outcome: bounded(outcome, &["delivered", "retrying", "failed"]),
            })
            .inc();
    }

    /// A trigger of `kind` (`artifact`, `upstream`, `webhook`) recorded an
    /// event to run.
    pub fn trigger_event(&self, kind: &str) {
        self.trigger_events
            .get_or_create(&trigger_labels(kind))
            .inc();
    }

    /// An execution was created for an event of a trigger of `kind`.
    pub fn trigger_execution(&self, kind: &str) {
        self.trigger_executions
            .get_or_create(&trigger_labels(kind))
            .inc();
    }

    /// A poll of a trigger of `kind` failed.
    pub fn trigger_error(&self, kind: &str) {
        self.trigger_errors
            .get_or_create(&trigger_labels(kind))
            .inc();
    }

    /// How many events wait for room under their trigger's `maxPending`.
    pub fn trigger_deferred(&self, waiting: i64) {
        self.trigger_deferred.set(waiting);
    }

    /// An execution was created `lag` after its scheduled instant.
    pub fn schedule_lag(&self, lag: Duration) {
        self.schedule_lag.observe(lag.as_secs_f64());
    }

    /// A node of task `_task` ended with `status` (`NodeStatus::as_str`)
    /// after `took`. Not labelled by task: task names are unbounded.
    pub fn node_finished(&self, _task: &str, status: &str, took: Duration) {
        let status = NodeStatus::parse(status).map_or("other", NodeStatus::as_str);
        self.node_duration
            .get_or_create(&StatusLabels {
                status: status.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The daemon loop `name` (`engine`, `scheduler`, `notifier`,
    /// `elector`, `source <key>`: one per configured loop) was restarted.
    pub fn loop_restarted(&self, name: &str) {
        self.loop_restarts
            .get_or_create(&LoopLabels {
                r#loop: name.to_owned(),
            })
            .inc();
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_info_keeps_one_commit_per_source() {
        let metrics = Metrics::new();
        metrics.source_commit("repo#main:", "aaaa");
        metrics.source_commit("repo#main:", "bbbb");
        metrics.source_commit("other#main:", "cccc");
        let text = metrics.render();
        assert!(!text.contains("aaaa"), "{text}");
        assert!(
            text.contains(r#"weir_source_info{source="repo#main:",commit="bbbb"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"commit="cccc""#), "{text}");
    }

    #[test]
    fn unknown_statuses_do_not_grow_the_label_set() {
        let metrics = Metrics::new();
        metrics.execution_finished("succeeded");
        metrics.execution_finished("whatever-1");
        metrics.execution_finished("whatever-2");
        let text = metrics.render();
        assert!(
            text.contains(r#"weir_executions_total{status="other"} 2"#),
            "{text}"
        );
        assert!(!text.contains("whatever"), "{text}");
    }

    #[test]
    fn loop_restarts_are_counted_by_loop() {
        let metrics = Metrics::new();
        metrics.loop_restarted("engine");
        metrics.loop_restarted("engine");
        let text = metrics.render();
        assert!(
            text.contains(r#"weir_loop_restarts_total{loop="engine"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn only_reconciled_is_not_an_error() {
        let metrics = Metrics::new();
        let took = Duration::from_millis(20);
        metrics.reconciled("s", took, "reconciled");
        metrics.reconciled("s", took, "rejected");
        metrics.reconciled("s", took, "FetchFailed");
        let text = metrics.render();
        assert!(text.contains(r#"weir_reconcile_errors_total{source="s",reason="rejected"} 1"#));
        assert!(text.contains(r#"weir_reconcile_errors_total{source="s",reason="FetchFailed"} 1"#));
        assert!(!text.contains(r#"reason="reconciled""#));
        assert!(text.contains(r#"weir_reconcile_duration_seconds_count{source="s"} 3"#));
    }
}
