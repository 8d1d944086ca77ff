//! What the store keeps of notifications (DESIGN.md section 6): one
//! delivery per (execution, terminal event, notify rule) with every attempt
//! made, so that delivery is at-least-once across restarts and each
//! attempt can be shown (`weir executions ID -o json`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;

use super::execution::{Execution, Status};
use super::{Error, StoreFuture};
use crate::spec::{Digest, ExecutionId};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeliveryStatus {
    /// Not acknowledged yet: the next attempt is at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: the retry window passed, or the target cannot be reached
    /// by configuration (a missing secret).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One try at sending a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// What went wrong, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub millis: u64,
}

/// A notification of one execution's end to one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Deterministic ([`Delivery::id_of`]); sent as `X-Weir-Delivery`.
    pub id: String,
    pub execution: ExecutionId,
    /// The terminal status notified.
    pub event: Status,
    /// The index of the launch plan's notify rule.
    pub rule: u32,
    /// `webhook` or `slack`.
    pub target: String,
    /// Where it goes, safe to show: a webhook's URL without credentials, or
    /// where a Slack URL is read from (never the URL itself).
    pub destination: String,
    pub status: DeliveryStatus,
    pub attempts: Vec<DeliveryAttempt>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl Delivery {
    /// The id of the delivery of `event` of `execution` by rule `rule`.
    pub fn id_of(execution: &ExecutionId, event: Status, rule: u32) -> String {
        let key = format!("{execution}/{}/{rule}", event.as_str());
        let digest = Digest::of_json(&Value::String(key));
        format!("dlv-{}", &digest.as_str()[..24])
    }
}

/// What the store keeps of notifications. Every method is one transaction.
pub trait DeliveryStore: Send + Sync {
    /// Executions that finished at or after `since`, oldest first, at most
    /// `limit`: what the notifier looks at.
    fn finished_since<'a>(
        &'a self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<Execution>>;

    /// Inserts the deliveries that do not exist yet (by id); returns how
    /// many were new.
    fn add_deliveries<'a>(&'a self, deliveries: &'a [Delivery]) -> StoreFuture<'a, u64>;

    /// Pending deliveries due at `now`, soonest first, at most `limit`.
    fn due_deliveries<'a>(
        &'a self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<Delivery>>;

    /// Writes a delivery's status, attempts and next attempt.
    fn update_delivery<'a>(&'a self, delivery: &'a Delivery) -> StoreFuture<'a, ()>;

    /// The deliveries of one execution, in creation order, then by event and rule.
    fn deliveries<'a>(&'a self, execution: &'a ExecutionId) -> StoreFuture<'a, Vec<Delivery>>;
}

/// The columns [`DeliveryRow`] decodes, in order.
pub(crate) const DELIVERY_COLUMNS: &str = "id, execution, event, rule, target, destination, \
     status, attempts, next_attempt_at, created_at, delivered_at";

/// A row of `deliveries` (both backends).
#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: String,
    execution: String,
    event: String,
    rule: i32,
    target: String,
    destination: String,
    status: String,
    attempts: Json<Vec<DeliveryAttempt>>,
    next_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl DeliveryRow {
    fn into_delivery(self, doing: &'static str) -> Result<Delivery, Error> {
        let corrupt = |message: String| Error::Corrupt { doing, message };
        Ok(Delivery {
            event: Status::parse(&self.event)
                .ok_or_else(|| corrupt(format!("unknown event {:?}", self.event)))?,
            status: DeliveryStatus::parse(&self.status)
                .ok_or_else(|| corrupt(format!("unknown delivery status {:?}", self.status)))?,
            rule: u32::try_from(self.rule).map_err(|_| corrupt(format!("rule {}", self.rule)))?,
            id: self.id,
            execution: ExecutionId::from(self.execution),
            target: self.target,
            destination: self.destination,
            attempts: self.attempts.0,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            delivered_at: self.delivered_at,
        })
    }
}

/// Rows as deliveries; the first corrupt one fails all.
pub(crate) fn deliveries(
    rows: Vec<DeliveryRow>,
    doing: &'static str,
) -> Result<Vec<Delivery>, Error> {
    rows.into_iter().map(|r| r.into_delivery(doing)).collect()
}

/// The rule index as stored.
pub(crate) fn rule_column(delivery: &Delivery) -> i32 {
    i32::try_from(delivery.rule).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct_per_event_and_rule() {
        let a = Delivery::id_of(&"etl-1".into(), Status::Failed, 0);
        assert_eq!(a, Delivery::id_of(&"etl-1".into(), Status::Failed, 0));
        assert_ne!(a, Delivery::id_of(&"etl-1".into(), Status::Failed, 1));
        assert_ne!(a, Delivery::id_of(&"etl-1".into(), Status::TimedOut, 0));
        assert_ne!(a, Delivery::id_of(&"etl-2".into(), Status::Failed, 0));
        assert!(a.starts_with("dlv-") && a.len() == 28, "{a}");
    }
}
