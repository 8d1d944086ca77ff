//! [`DeliveryStore`] on SQLite.

use chrono::{DateTime, Utc};

use super::{SqliteStore, encode_time};
use crate::store::delivery::{self, DELIVERY_COLUMNS, Delivery, DeliveryStore};
use crate::store::execution::Execution;
use crate::store::sql::{self, query_error};
use crate::store::{Error, StoreFuture};

impl SqliteStore {
    async fn select_finished_since(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Execution>, Error> {
        const DOING: &str = "listing finished executions";
        // `finished_at IS NOT NULL` is the partial index's WHERE clause.
        let rows = sqlx::query_as(&format!(
            "SELECT {} FROM executions WHERE finished_at IS NOT NULL AND finished_at >= ? \
             ORDER BY finished_at, id LIMIT ?",
            sql::EXECUTION_COLUMNS
        ))
        .bind(encode_time(since))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(DOING))?;
        sql::executions(rows, DOING)
    }

    async fn insert_deliveries(&self, deliveries: &[Delivery]) -> Result<u64, Error> {
        const DOING: &str = "adding deliveries";
        let mut tx = self.begin_write(DOING).await?;
        let mut added = 0;
        for d in deliveries {
            let done = sqlx::query(&format!(
                "INSERT INTO deliveries ({DELIVERY_COLUMNS}) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(&d.id)
            .bind(&d.execution)
            .bind(d.event.as_str())
            .bind(delivery::rule_column(d))
            .bind(&d.target)
            .bind(&d.destination)
            .bind(d.status.as_str())
            .bind(sqlx::types::Json(&d.attempts))
            .bind(d.next_attempt_at.map(encode_time))
            .bind(encode_time(d.created_at))
            .bind(d.delivered_at.map(encode_time))
            .execute(&mut *tx)
            .await
            .map_err(query_error(DOING))?;
            added += done.rows_affected();
        }
        tx.commit().await.map_err(query_error(DOING))?;
        Ok(added)
    }

    async fn select_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Delivery>, Error> {
        const DOING: &str = "listing due deliveries";
        let rows = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'pending' \
             AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?"
        ))
        .bind(encode_time(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(DOING))?;
        delivery::deliveries(rows, DOING)
    }

    async fn write_delivery(&self, d: &Delivery) -> Result<(), Error> {
        const DOING: &str = "recording a delivery attempt";
        let done = sqlx::query(
            "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, \
             delivered_at = ? WHERE id = ?",
        )
        .bind(d.status.as_str())
        .bind(sqlx::types::Json(&d.attempts))
        .bind(d.next_attempt_at.map(encode_time))
        .bind(d.delivered_at.map(encode_time))
        .bind(&d.id)
        .execute(&self.pool)
        .await
        .map_err(query_error(DOING))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound {
                doing: DOING,
                what: format!("delivery {}", d.id),
            });
        }
        Ok(())
    }

    async fn select_deliveries(&self, execution: &str) -> Result<Vec<Delivery>, Error> {
        const DOING: &str = "reading an execution's deliveries";
        let rows = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE execution = ? \
             ORDER BY created_at, event, rule"
        ))
        .bind(execution)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(DOING))?;
        delivery::deliveries(rows, DOING)
    }
}

impl DeliveryStore for SqliteStore {
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

    fn deliveries<'a>(&'a self, execution: &'a str) -> StoreFuture<'a, Vec<Delivery>> {
        Box::pin(self.select_deliveries(execution))
    }
}
