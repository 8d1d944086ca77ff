//! Node and execution metrics from the engine's events: the daemon hands
//! this observer to its engine, so `/metrics` shows schedule lag, node
//! durations and outcomes, and execution outcomes ([`crate::metrics`]).
//! It only counts: it never changes what the engine does.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{NodeEvent, Observer, PlanNode};
use crate::metrics::Metrics;
use crate::store::execution::{Execution, NodeState, NodeStatus};

/// Node and execution metrics from the engine's events.
pub(super) struct MetricsObserver(pub(super) Arc<Metrics>);

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
                // process of the execution, as the engine's clock
                // recorded its start (this observer reads no clock).
                if let (Some(at), Some(started), true, true) = (
                    execution.scheduled_at,
                    state.started_at,
                    node.deps.is_empty(),
                    state.attempts == 1,
                ) {
                    let lag = started - at;
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
