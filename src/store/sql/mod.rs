//! The SQL store, written once for SQLite and PostgreSQL.
//!
//! [`SqlStore`] implements [`Store`](super::Store) and its supertraits over
//! a pool of either database. Every statement is written once (numbering
//! its parameters `$1, $2, …`, which both accept: [`statement`]), every
//! row is read back once (`rows.rs`), and each method is one transaction
//! on both. What truly differs between the databases is a [`Dialect`],
//! implemented in `sqlite.rs` and `postgres.rs`:
//!
//! - how the pool is opened and migrated;
//! - how a write transaction starts ([`Dialect::BEGIN_WRITE`]) and how the
//!   writers of one source are serialized ([`Dialect::LOCK_SOURCE`]);
//! - how a read snapshot starts ([`Dialect::BEGIN_READ`]);
//! - how values are encoded (times and JSON: text on SQLite, `timestamptz`
//!   and `jsonb` on PostgreSQL) and statements run ([`Dialect::execute`],
//!   [`Dialect::fetch_all`], [`Dialect::fetch_optional`], on a connection
//!   or in a transaction; [`SqlStore`]'s `run`, `read` and `read_optional`
//!   are the same on a connection of the pool, for a statement on its own);
//! - how many parameters one statement binds ([`Dialect::MAX_PARAMS`]) and
//!   how text sorts bytewise ([`Dialect::BYTEWISE`]).
//!
//! Concurrency, the same guarantees by each database's means: on SQLite a
//! write transaction takes the write lock first (`BEGIN IMMEDIATE`), so
//! writers take turns and each sees the last one's result; on PostgreSQL
//! (read committed) `apply` takes an advisory lock on its source before
//! its compare-and-swap, upserts lock the rows they write until commit,
//! and a second creator of an execution waits on the first's uncommitted
//! row, then inserts nothing (I2, I4). Rows are inserted in a fixed order
//! (by key), so writers sharing rows cannot deadlock.
//!
//! `registry.rs` holds [`Store`](super::Store) (commits, versions, active
//! sets, audit; its statements in `registry/writes.rs` and
//! `registry/reads.rs`), `executions.rs` [`ExecutionStore`](super::ExecutionStore),
//! `deliveries.rs` and `leases.rs` the delivery and lease stores.

mod approvals;
mod deliveries;
mod executions;
mod leases;
mod pauses;
mod registry;
mod rows;
pub mod statement;
mod triggers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, FromRow, Pool, Transaction};

pub use statement::{Form, Param, Statement};

use super::Error;
use crate::spec::ExecutionId;

/// What differs between the databases the store runs on; everything else
/// is [`SqlStore`]'s, written once.
pub trait Dialect: Database {
    /// The most parameters one statement may bind.
    const MAX_PARAMS: usize;
    /// Whether parameters appended to a built statement are written `$N`
    /// (else `?`; see [`Statement::built`]).
    const NUMBERED: bool;
    /// Starts a write transaction.
    const BEGIN_WRITE: &'static str;
    /// Starts a read-only transaction that sees one snapshot throughout.
    const BEGIN_READ: &'static str;
    /// Serializes the writers of one source (`$1`, its key) until the
    /// transaction ends, where the write transaction does not already.
    const LOCK_SOURCE: Option<&'static str>;
    /// Appended to a text column in `ORDER BY` to sort it bytewise (the
    /// order the other database keeps).
    const BYTEWISE: &'static str;

    /// Opens a pool on `url`, runs pending migrations, and checks out only
    /// connections outside a transaction ([`outside_transaction`]).
    fn open(url: &str) -> impl Future<Output = Result<Pool<Self>, Error>> + Send;

    /// Runs a statement on `conn` (in a transaction or not); how many rows
    /// it changed. A driver error is [`Error::Query`] saying `doing`.
    fn execute<'a, F: Form>(
        conn: &'a mut Self::Connection,
        doing: &'static str,
        statement: Statement<'a, F>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a;

    /// Runs a query on `conn`; its rows.
    fn fetch_all<'a, T: Decoded, F: Form>(
        conn: &'a mut Self::Connection,
        doing: &'static str,
        statement: Statement<'a, F>,
    ) -> impl Future<Output = Result<Vec<T>, Error>> + Send + 'a;

    /// Runs a query on `conn`; its first row, reading no further (the
    /// queries read by primary key).
    fn fetch_optional<'a, T: Decoded, F: Form>(
        conn: &'a mut Self::Connection,
        doing: &'static str,
        statement: Statement<'a, F>,
    ) -> impl Future<Output = Result<Option<T>, Error>> + Send + 'a;
}

/// [`Dialect::execute`], [`Dialect::fetch_all`] and
/// [`Dialect::fetch_optional`] for the database `$db`, written once:
/// sqlx's traits are simple to meet for one concrete database, and a long
/// list of bounds for a generic one.
macro_rules! run_with_sqlx {
    ($db:ty) => {
        async fn execute<'a, F: $crate::store::sql::Form>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            doing: &'static str,
            mut statement: $crate::store::sql::Statement<'a, F>,
        ) -> Result<u64, $crate::store::Error> {
            let arguments = statement
                .arguments::<$db>()
                .map_err($crate::store::sql::query_error(doing))?;
            let done = sqlx::query_with(&statement.sql, arguments)
                .persistent(statement.persistent)
                .execute(conn)
                .await
                .map_err($crate::store::sql::query_error(doing))?;
            Ok(done.rows_affected())
        }

        async fn fetch_all<'a, T: $crate::store::sql::Decoded, F: $crate::store::sql::Form>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            doing: &'static str,
            mut statement: $crate::store::sql::Statement<'a, F>,
        ) -> Result<Vec<T>, $crate::store::Error> {
            let arguments = statement
                .arguments::<$db>()
                .map_err($crate::store::sql::query_error(doing))?;
            sqlx::query_as_with(&statement.sql, arguments)
                .persistent(statement.persistent)
                .fetch_all(conn)
                .await
                .map_err($crate::store::sql::query_error(doing))
        }

        async fn fetch_optional<'a, T: $crate::store::sql::Decoded, F: $crate::store::sql::Form>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            doing: &'static str,
            mut statement: $crate::store::sql::Statement<'a, F>,
        ) -> Result<Option<T>, $crate::store::Error> {
            let arguments = statement
                .arguments::<$db>()
                .map_err($crate::store::sql::query_error(doing))?;
            sqlx::query_as_with(&statement.sql, arguments)
                .persistent(statement.persistent)
                .fetch_optional(conn)
                .await
                .map_err($crate::store::sql::query_error(doing))
        }
    };
}
pub(crate) use run_with_sqlx;

/// A row type that decodes on both databases: what [`Dialect::fetch_all`]
/// returns, named once here rather than as a bound per row type and
/// database in every generic signature.
pub trait Decoded:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

impl<T> Decoded for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

/// The store in a SQL database `D` (see the module docs).
pub struct SqlStore<D: Dialect> {
    pool: Pool<D>,
    /// Told of the executions created or cancelled through this handle and
    /// its clones ([`ExecutionStore::on_work`](super::ExecutionStore::on_work)).
    listeners: Arc<Listeners>,
}

/// The listeners of a store's work, kept weakly: a listener that was
/// dropped is forgotten at the next call.
type Listeners = std::sync::Mutex<Vec<std::sync::Weak<super::execution::WorkListener>>>;

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            listeners: self.listeners.clone(),
        }
    }
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("pool", &self.pool)
            .finish()
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Opens the store at `url` and runs pending migrations (see each
    /// dialect's `open`).
    pub async fn open(url: &str) -> Result<SqlStore<D>, Error> {
        Ok(SqlStore {
            pool: D::open(url).await?,
            listeners: Arc::default(),
        })
    }

    /// Closes the pool: every later query fails at once (a store gone).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Tells the live listeners that execution `id` was created or asked to
    /// cancel; forgets those that were dropped.
    fn tell_work(&self, id: &ExecutionId) {
        let live: Vec<_> = {
            let mut listeners = self
                .listeners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            listeners.retain(|l| l.strong_count() > 0);
            listeners
                .iter()
                .filter_map(std::sync::Weak::upgrade)
                .collect()
        };
        for listener in live {
            listener(id);
        }
    }

    /// Starts a write transaction ([`Dialect::BEGIN_WRITE`]).
    async fn begin_write(&self, doing: &'static str) -> Result<Transaction<'static, D>, Error> {
        self.pool
            .begin_with(D::BEGIN_WRITE)
            .await
            .map_err(query_error(doing))
    }

    /// Starts a read snapshot ([`Dialect::BEGIN_READ`]).
    async fn begin_read(&self, doing: &'static str) -> Result<Transaction<'static, D>, Error> {
        self.pool
            .begin_with(D::BEGIN_READ)
            .await
            .map_err(query_error(doing))
    }

    /// A connection of the pool, for statements outside a transaction.
    async fn connection(&self, doing: &'static str) -> Result<PoolConnection<D>, Error> {
        self.pool.acquire().await.map_err(query_error(doing))
    }

    /// Runs one statement on its own (autocommit), on a connection of the
    /// pool.
    async fn run<F: Form>(
        &self,
        doing: &'static str,
        statement: Statement<'_, F>,
    ) -> Result<u64, Error> {
        let mut conn = self.connection(doing).await?;
        D::execute(&mut conn, doing, statement).await
    }

    /// Runs one query on its own; its rows.
    async fn read<T: Decoded, F: Form>(
        &self,
        doing: &'static str,
        statement: Statement<'_, F>,
    ) -> Result<Vec<T>, Error> {
        let mut conn = self.connection(doing).await?;
        D::fetch_all(&mut conn, doing, statement).await
    }

    /// Runs one query on its own; its first row.
    async fn read_optional<T: Decoded, F: Form>(
        &self,
        doing: &'static str,
        statement: Statement<'_, F>,
    ) -> Result<Option<T>, Error> {
        let mut conn = self.connection(doing).await?;
        D::fetch_optional(&mut conn, doing, statement).await
    }
}

/// A write of one row by its key that changed `changed` rows: none is
/// [`Error::NotFound`] (a caller's bug, reported rather than ignored).
fn found(changed: u64, doing: &'static str, what: impl FnOnce() -> String) -> Result<(), Error> {
    if changed == 0 {
        return Err(Error::NotFound {
            doing,
            what: what(),
        });
    }
    Ok(())
}

/// Commits `tx`.
async fn commit<D: Dialect>(tx: Transaction<'static, D>, doing: &'static str) -> Result<(), Error> {
    tx.commit().await.map_err(query_error(doing))
}

/// The pools' `before_acquire` check: a connection is handed out only when
/// no transaction is open on it. A failed transaction is rolled back when
/// it is dropped, but when the database ended it first (SQLite rolls back
/// by itself on a disk I/O error or a full disk; a trigger may `RAISE
/// (ROLLBACK)`), that `ROLLBACK` fails and sqlx still counts the
/// transaction as open, so every later `BEGIN IMMEDIATE` on the connection
/// failed with "attempted to call begin_with at non-zero transaction
/// depth". Such a connection is closed instead; the pool opens a new one.
pub(crate) fn outside_transaction<C: sqlx::Connection>(
    conn: &mut C,
    _: sqlx::pool::PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    Box::pin(std::future::ready(Ok(clean)))
}

/// Maps a driver error to [`Error::Query`] with what the store was doing;
/// a stored value that does not decode is [`Error::Corrupt`].
pub(crate) fn query_error(doing: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| match source {
        sqlx::Error::ColumnDecode { index, source } => Error::Corrupt {
            doing,
            message: format!("column {index}: {source}"),
        },
        source => Error::Query { doing, source },
    }
}

/// A row of one column.
type One<T> = (T,);
