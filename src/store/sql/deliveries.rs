//! [`DeliveryStore`] on SQL: the notifier's scan of finished executions,
//! and one row per delivery with its attempts.

use chrono::{DateTime, Utc};

use super::rows::{self, EXECUTION_COLUMNS};
use super::statement::{Param, Statement};
use super::{Dialect, SqlStore, commit, found};
use crate::spec::ExecutionId;
use crate::store::delivery::{self, DELIVERY_COLUMNS, Delivery, DeliveryRow, DeliveryStore};
use crate::store::execution::Execution;
use crate::store::{Error, StoreFuture};

impl<D: Dialect> SqlStore<D> {
    async fn select_finished_since(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Execution>, Error> {
        const DOING: &str = "listing finished executions";
        // `finished_at IS NOT NULL` is the partial index's WHERE clause.
        let select = Statement::new(format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE finished_at IS NOT NULL \
             AND finished_at >= $1 ORDER BY finished_at, id LIMIT $2"
        ))
        .bind(since)
        .bind(i64::from(limit));
        rows::executions(self.read(DOING, select).await?, DOING)
    }

    async fn insert_deliveries(&self, deliveries: &[Delivery]) -> Result<u64, Error> {
        const DOING: &str = "adding deliveries";
        let mut tx = self.begin_write(DOING).await?;
        let mut added = 0;
        for d in deliveries {
            let insert = Statement::new(format!(
                "INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, \
                 $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(&d.id)
            .bind(&d.execution)
            .bind(d.event.as_str())
            .bind(delivery::rule_column(d))
            .bind(&d.target)
            .bind(&d.destination)
            .bind(d.status.as_str())
            .bind(Param::json(&d.attempts))
            .bind(d.next_attempt_at)
            .bind(d.created_at)
            .bind(d.delivered_at);
            added += D::execute(&mut tx, DOING, insert).await?;
        }
        commit(tx, DOING).await?;
        Ok(added)
    }

    async fn select_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Delivery>, Error> {
        const DOING: &str = "listing due deliveries";
        // `status = 'pending'` is the partial index's WHERE clause.
        let select = Statement::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'pending' \
             AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(now)
        .bind(i64::from(limit));
        let rows: Vec<DeliveryRow> = self.read(DOING, select).await?;
        delivery::deliveries(rows, DOING)
    }

    async fn write_delivery(&self, d: &Delivery) -> Result<(), Error> {
        const DOING: &str = "recording a delivery attempt";
        let update = Statement::new(
            "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
             delivered_at = $4 WHERE id = $5",
        )
        .bind(d.status.as_str())
        .bind(Param::json(&d.attempts))
        .bind(d.next_attempt_at)
        .bind(d.delivered_at)
        .bind(&d.id);
        let changed = self.run(DOING, update).await?;
        found(changed, DOING, || format!("delivery {}", d.id))
    }

    async fn select_deliveries(&self, execution: &ExecutionId) -> Result<Vec<Delivery>, Error> {
        const DOING: &str = "reading an execution's deliveries";
        let select = Statement::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE execution = $1 \
             ORDER BY created_at, event, rule"
        ))
        .bind(execution);
        let rows: Vec<DeliveryRow> = self.read(DOING, select).await?;
        delivery::deliveries(rows, DOING)
    }
}

impl<D: Dialect> DeliveryStore for SqlStore<D> {
    fn finished_since<'a>(
        &'a self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<Execution>> {
        Box::pin(self.select_finished_since(since, limit))
    }

    fn add_deliveries<'a>(&'a self, deliveries: &'a [Delivery]) -> StoreFuture<'a, u64> {
        Box::pin(self.insert_deliveries(deliveries))
    }

    fn due_deliveries<'a>(
        &'a self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<Delivery>> {
        Box::pin(self.select_due(now, limit))
    }

    fn update_delivery<'a>(&'a self, delivery: &'a Delivery) -> StoreFuture<'a, ()> {
        Box::pin(self.write_delivery(delivery))
    }

    fn deliveries<'a>(&'a self, execution: &'a ExecutionId) -> StoreFuture<'a, Vec<Delivery>> {
        Box::pin(self.select_deliveries(execution))
    }
}
