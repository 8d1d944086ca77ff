//! [`LeaseStore`] on SQLite: the take-or-renew upsert and the read-back run
//! in one `BEGIN IMMEDIATE` transaction, so two processes on one file take
//! turns and exactly one holds the lease.

use chrono::{DateTime, Utc};

use super::{SqliteStore, encode_time};
use crate::store::lease::{self, LEASE_COLUMNS, Lease, LeaseRow, LeaseStore};
use crate::store::sql::query_error;
use crate::store::{Error, StoreFuture};

impl SqliteStore {
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        duration: std::time::Duration,
    ) -> Result<Lease, Error> {
        const DOING: &str = "taking a lease";
        let (now, expires) = lease::term(now, duration);
        let mut tx = self.begin_write(DOING).await?;
        // The update applies only to the caller's own lease or an expired
        // one; a live lease of another holder is left as it is.
        sqlx::query(
            "INSERT INTO leases (name, holder, acquired_at, renewed_at, expires_at) \
             VALUES (?1, ?2, ?3, ?3, ?4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             acquired_at = CASE WHEN leases.holder = excluded.holder \
             AND leases.expires_at > excluded.renewed_at \
             THEN leases.acquired_at ELSE excluded.acquired_at END, \
             renewed_at = excluded.renewed_at, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.renewed_at",
        )
        .bind(name)
        .bind(holder)
        .bind(encode_time(now))
        .bind(encode_time(expires))
        .execute(&mut *tx)
        .await
        .map_err(query_error(DOING))?;
        let row: LeaseRow = sqlx::query_as(&format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE name = ?"
        ))
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(query_error(DOING))?;
        tx.commit().await.map_err(query_error(DOING))?;
        Ok(row.into())
    }

    async fn take_over_from(
        &self,
        name: &str,
        dead: &str,
        holder: &str,
        now: DateTime<Utc>,
        duration: std::time::Duration,
    ) -> Result<Option<Lease>, Error> {
        const DOING: &str = "taking a lease over";
        let (now, expires) = lease::term(now, duration);
        let mut tx = self.begin_write(DOING).await?;
        // Only while the dead holder still holds it: a racer that took it
        // over first, or a release, leaves nothing to update.
        sqlx::query(
            "UPDATE leases SET holder = ?3, acquired_at = ?4, renewed_at = ?4, \
             expires_at = ?5 WHERE name = ?1 AND holder = ?2",
        )
        .bind(name)
        .bind(dead)
        .bind(holder)
        .bind(encode_time(now))
        .bind(encode_time(expires))
        .execute(&mut *tx)
        .await
        .map_err(query_error(DOING))?;
        let row: Option<LeaseRow> = sqlx::query_as(&format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error(DOING))?;
        tx.commit().await.map_err(query_error(DOING))?;
        Ok(row.map(Lease::from))
    }

    async fn give_up_lease(&self, name: &str, holder: &str) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(query_error("releasing a lease"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn read_lease(&self, name: &str) -> Result<Option<Lease>, Error> {
        let row: Option<LeaseRow> = sqlx::query_as(&format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("reading a lease"))?;
        Ok(row.map(Lease::from))
    }
}

impl LeaseStore for SqliteStore {
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        now: DateTime<Utc>,
        duration: std::time::Duration,
    ) -> StoreFuture<'a, Lease> {
        Box::pin(self.take_lease(name, holder, now, duration))
    }

    fn take_over_lease<'a>(
        &'a self,
        name: &'a str,
        dead: &'a str,
        holder: &'a str,
        now: DateTime<Utc>,
        duration: std::time::Duration,
    ) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(self.take_over_from(name, dead, holder, now, duration))
    }

    fn release_lease<'a>(&'a self, name: &'a str, holder: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.give_up_lease(name, holder))
    }

    fn lease<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(self.read_lease(name))
    }
}
