//! PostgreSQL: the store for several replicas and large histories.
//!
//! This file is PostgreSQL's [`Dialect`]: opening, and encoding what the
//! store binds (`timestamptz`, `jsonb`). Migrated with the embedded
//! `migrations/postgres` (sqlx holds an advisory lock meanwhile, so
//! replicas starting together migrate once).
//!
//! Concurrency: transactions are read committed. `apply` takes an advisory
//! lock on its source before its compare-and-swap, so two writers of one
//! source run one after the other, even before the source's row exists,
//! and the read-diff-write of the active set sees the other's result (I2).
//! Rows are inserted in key order, so writers of different sources that
//! share versions cannot deadlock. Text is ordered with `COLLATE "C"`
//! (bytewise, as SQLite orders it), whatever the database's collation.

use std::str::FromStr as _;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgConnectOptions, PgConnection, PgPoolOptions, PgTypeInfo};
use sqlx::types::Json;
use sqlx::{Connection as _, Encode, Pool, Postgres, Type};

use super::Error;
use super::sql::{Dialect, Param, SqlStore, outside_transaction, run_with_sqlx};
use crate::redact::redact_url;

/// How long the first connection of opening a store may take (a host that
/// drops packets rather than refusing).
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The store in a PostgreSQL database.
pub type PgStore = SqlStore<Postgres>;

impl Dialect for Postgres {
    /// PostgreSQL reads the count of parameters as an unsigned 16-bit number.
    const MAX_PARAMS: usize = 65535;
    /// PostgreSQL's only form.
    const NUMBERED: bool = true;
    /// Read committed; `LOCK_SOURCE` and row locks serialize what must be.
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// One snapshot for every statement of the transaction.
    const BEGIN_READ: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    /// Serializes writers of one source until commit, even before its row
    /// exists.
    const LOCK_SOURCE: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(hashtext($1))");
    /// Bytewise, whatever the database's default collation.
    const BYTEWISE: &'static str = " COLLATE \"C\"";

    /// Connects to `url` (`postgres://…`) and runs pending migrations.
    ///
    /// One connection is made first, bounded by [`CONNECT_TIMEOUT`]: a pool
    /// would retry until its acquire timeout (30 s) and then say only "pool
    /// timed out", where one connection fails at once with the reason
    /// (connection refused, unknown host, bad password), reported with the
    /// host and port as [`Error::Unreachable`].
    async fn open(url: &str) -> Result<Pool<Postgres>, Error> {
        let shown = redact_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|source| Error::Connect {
            url: shown.clone(),
            source,
        })?;
        let unreachable = |reason: String| Error::Unreachable {
            url: shown.clone(),
            host: options.get_host().to_owned(),
            port: options.get_port(),
            reason,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(Ok(first)) => {
                // Closing is a courtesy to the server; the pool reconnects.
                let _ = first.close().await;
            }
            Ok(Err(source)) => return Err(unreachable(source.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .before_acquire(outside_transaction)
            .connect_with(options)
            .await
            .map_err(|source| Error::Connect {
                url: shown.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|source| Error::Migrate { url: shown, source })?;
        Ok(pool)
    }

    run_with_sqlx!(Postgres);
}

impl<'q> Encode<'q, Postgres> for Param<'q> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match self {
            Param::Text(text) => Encode::<Postgres>::encode_by_ref(text, buf),
            Param::Int(n) => Encode::<Postgres>::encode_by_ref(n, buf),
            Param::Int32(n) => Encode::<Postgres>::encode_by_ref(n, buf),
            Param::Bool(b) => Encode::<Postgres>::encode_by_ref(b, buf),
            Param::Time(time) => Encode::<Postgres>::encode_by_ref(time, buf),
            Param::Json(None) => Ok(IsNull::Yes),
            Param::Json(Some(text)) => {
                // Already JSON: checked well-formed and sent as it is, not
                // written again.
                let raw: &serde_json::value::RawValue = serde_json::from_str(text)?;
                Encode::<Postgres>::encode_by_ref(&Json(raw), buf)
            }
        }
    }

    /// The type of each value, as its column has it.
    fn produces(&self) -> Option<PgTypeInfo> {
        Some(match self {
            Param::Text(_) => <&str as Type<Postgres>>::type_info(),
            Param::Int(_) => <i64 as Type<Postgres>>::type_info(),
            Param::Int32(_) => <i32 as Type<Postgres>>::type_info(),
            Param::Bool(_) => <bool as Type<Postgres>>::type_info(),
            Param::Time(_) => <chrono::DateTime<chrono::Utc> as Type<Postgres>>::type_info(),
            Param::Json(_) => <Json<serde_json::Value> as Type<Postgres>>::type_info(),
        })
    }
}

impl Type<Postgres> for Param<'_> {
    /// Each value's own type is [`Encode::produces`]'s.
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }
}
