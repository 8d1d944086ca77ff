//! [`LeaseStore`] on SQL: the take-or-renew upsert and the read-back run in
//! one write transaction (SQLite's write lock; on PostgreSQL the upsert
//! locks the row until commit), so two engines take turns and exactly one
//! holds the lease.

use chrono::{DateTime, Utc};

use super::statement::Statement;
use super::{Dialect, SqlStore, commit};
use crate::store::lease::{self, LEASE_COLUMNS, Lease, LeaseRow, LeaseStore};
use crate::store::{Error, StoreFuture};

impl<D: Dialect> SqlStore<D> {
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
        let upsert = Statement::new(
            "INSERT INTO leases (name, holder, acquired_at, renewed_at, expires_at) \
             VALUES ($1, $2, $3, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             acquired_at = CASE WHEN leases.holder = excluded.holder \
             AND leases.expires_at > excluded.renewed_at \
             THEN leases.acquired_at ELSE excluded.acquired_at END, \
             renewed_at = excluded.renewed_at, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.renewed_at",
        )
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(expires);
        D::execute(&mut tx, DOING, upsert).await?;
        let row: Option<LeaseRow> = D::fetch_optional(&mut tx, DOING, select(name)).await?;
        // The upsert leaves a row, whoever holds it.
        let row = row.ok_or(Error::Query {
            doing: DOING,
            source: sqlx::Error::RowNotFound,
        })?;
        commit(tx, DOING).await?;
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
        let update = Statement::new(
            "UPDATE leases SET holder = $3, acquired_at = $4, renewed_at = $4, \
             expires_at = $5 WHERE name = $1 AND holder = $2",
        )
        .bind(name)
        .bind(dead)
        .bind(holder)
        .bind(now)
        .bind(expires);
        D::execute(&mut tx, DOING, update).await?;
        let row: Option<LeaseRow> = D::fetch_optional(&mut tx, DOING, select(name)).await?;
        commit(tx, DOING).await?;
        Ok(row.map(Lease::from))
    }

    async fn give_up_lease(&self, name: &str, holder: &str) -> Result<bool, Error> {
        let delete = Statement::new("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder);
        Ok(self.run("releasing a lease", delete).await? > 0)
    }

    async fn read_lease(&self, name: &str) -> Result<Option<Lease>, Error> {
        let row: Option<LeaseRow> = self.read_optional("reading a lease", select(name)).await?;
        Ok(row.map(Lease::from))
    }
}

/// The lease `name`'s row.
fn select(name: &str) -> Statement<'_> {
    Statement::new(format!(
        "SELECT {LEASE_COLUMNS} FROM leases WHERE name = $1"
    ))
    .bind(name)
}

impl<D: Dialect> LeaseStore for SqlStore<D> {
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
