//! SQLite: the embedded default store, one file in the state directory.
//!
//! The file is created (with its directory) on first open, only where no
//! file exists (an empty file is refused, never taken for a new store), and
//! migrated with the embedded `migrations/sqlite`. It runs in WAL mode, so
//! readers never block the writer, with a busy timeout, so that two weir
//! processes on one state directory wait for each other instead of failing.
//! Every write transaction starts with `BEGIN IMMEDIATE`: it takes the write
//! lock first, which is what makes the busy timeout apply (a deferred
//! transaction that reads and then writes may fail at once with
//! `SQLITE_BUSY`), and it makes the read-diff-write of the active set
//! race-free (I2).
//!
//! This file is SQLite's [`Dialect`]: opening, and encoding what the store
//! binds. Timestamps are stored as fixed-precision RFC 3339 text in UTC
//! (`2026-01-02T03:04:05.000000Z`, see the migration), so text order is time
//! order; JSON as text. The statements are the store's, in `sql/`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{
    SqliteArgumentValue, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions,
    SqliteSynchronous, SqliteTypeInfo,
};
use sqlx::{Connection, Encode, Pool, Sqlite, SqliteConnection, Type};

use super::Error;
use super::sql::{Dialect, Param, SqlStore, outside_transaction, run_with_sqlx};
use crate::redact::redact_url;

/// The store in one SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

/// How long a writer waits for another one (possibly another process).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Dialect for Sqlite {
    /// SQLite's default limit of bound parameters (since 3.32), which the
    /// bundled library keeps (`SQLITE_MAX_VARIABLE_NUMBER` is not set).
    const MAX_PARAMS: usize = 32766;
    /// A `?` is bound by position; a `$N` is looked up by name, in a list
    /// as long as the statement's parameters.
    const NUMBERED: bool = false;
    /// Takes the write lock first (see the module docs).
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// A deferred transaction reads one snapshot (WAL) from its first read.
    const BEGIN_READ: &'static str = "BEGIN";
    /// `BEGIN IMMEDIATE` already serializes every writer.
    const LOCK_SOURCE: Option<&'static str> = None;
    /// SQLite's default collation (`BINARY`) is bytewise.
    const BYTEWISE: &'static str = "";

    /// Opens (creating if missing) the database at `url`, `sqlite://PATH`
    /// or a bare path, and runs pending migrations.
    async fn open(url: &str) -> Result<Pool<Sqlite>, Error> {
        let shown = redact_url(url);
        let connect = |source| Error::Connect {
            url: shown.clone(),
            source,
        };
        let (options, file) = connect_options(url).map_err(connect)?;
        if let Some(file) = &file {
            ensure_database_file(&options, file).await?;
        }
        switch_to_wal(&options).await.map_err(connect)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .before_acquire(outside_transaction)
            .connect_with(options)
            .await
            .map_err(connect)?;
        let migrator = sqlx::migrate!("./migrations/sqlite");
        // Two processes opening a fresh file race to apply the same
        // migrations (SQLite has no advisory lock for sqlx to take, unlike
        // PostgreSQL): each migration is its own transaction, so the loser's
        // rolled back and a later run finds it applied, but the winner may
        // still be applying the next one. Retry a few times, a little later
        // each time; a real failure fails every time.
        let mut attempt = 1;
        while let Err(error) = migrator.run(&pool).await {
            if attempt == MIGRATION_ATTEMPTS {
                return Err(Error::Migrate {
                    url: shown,
                    source: error,
                });
            }
            tracing::debug!(url = %shown, %error, attempt, "migration failed; retrying");
            tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
            attempt += 1;
        }
        Ok(pool)
    }

    run_with_sqlx!(Sqlite);
}

/// Timestamps as stored: UTC, exactly six fractional digits.
fn encode_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl<'q> Encode<'q, Sqlite> for Param<'q> {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.clone(), buf)
    }

    fn encode(self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        match self {
            Param::Text(text) => Encode::<Sqlite>::encode(text, buf),
            Param::Int(n) => Encode::<Sqlite>::encode(n, buf),
            Param::Int32(n) => Encode::<Sqlite>::encode(n, buf),
            Param::Bool(b) => Encode::<Sqlite>::encode(b, buf),
            Param::Time(time) => Encode::<Sqlite>::encode(time.map(encode_time), buf),
            Param::Json(json) => Encode::<Sqlite>::encode(json, buf),
        }
    }
}

impl Type<Sqlite> for Param<'_> {
    /// Only a declared type: SQLite takes each value as it comes.
    fn type_info() -> SqliteTypeInfo {
        <str as Type<Sqlite>>::type_info()
    }
}

/// Creates the file if missing and puts it in WAL mode, which the file
/// then keeps, so pooled connections need not switch it again.
///
/// Switching takes an exclusive lock and SQLite does not always wait for it
/// (two processes opening a fresh file at once get `SQLITE_BUSY` at once),
/// so this retries on busy for as long as the busy timeout.
async fn switch_to_wal(options: &SqliteConnectOptions) -> Result<(), sqlx::Error> {
    let options = options.clone().journal_mode(SqliteJournalMode::Wal);
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match SqliteConnection::connect_with(&options).await {
            Ok(conn) => return conn.close().await,
            Err(error) if is_busy(&error) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Whether `error` is `SQLITE_BUSY` or `SQLITE_LOCKED` (any extended code).
fn is_busy(error: &sqlx::Error) -> bool {
    let code = error.as_database_error().and_then(|e| e.code());
    let code = code.and_then(|c| c.parse::<i32>().ok());
    code.is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// A `sqlite:` URL read: what follows the scheme, its path and query, and
/// whether it names a database in memory.
struct SqliteUrl<'a> {
    rest: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    in_memory: bool,
}

impl SqliteUrl<'_> {
    fn parse(url: &str) -> SqliteUrl<'_> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let in_memory = path.is_empty()
            || path == ":memory:"
            || query.is_some_and(|q| q.split('&').any(|p| p == "mode=memory"));
        SqliteUrl {
            rest,
            path,
            query,
            in_memory,
        }
    }
}

/// The database file a `sqlite:` URL names (`None` for one in memory).
pub fn database_file(url: &str) -> Option<PathBuf> {
    let url = SqliteUrl::parse(url);
    (!url.in_memory).then(|| PathBuf::from(url.path))
}

/// Connection options for `url`, and the database file when it is one (not
/// in memory); creates the file's directory.
fn connect_options(url: &str) -> Result<(SqliteConnectOptions, Option<PathBuf>), sqlx::Error> {
    let SqliteUrl {
        rest,
        path,
        query,
        in_memory,
    } = SqliteUrl::parse(url);
    if !in_memory {
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
    }
    let options = if query.is_some() || in_memory {
        // Query parameters (`?mode=…`) and `:memory:` are sqlx's to parse.
        SqliteConnectOptions::from_str(&format!("sqlite://{rest}"))?
    } else {
        SqliteConnectOptions::new().filename(path)
    };
    let file = (!in_memory).then(|| options.get_filename().to_path_buf());
    // In WAL mode, `synchronous = NORMAL` cannot corrupt the database; a
    // power cut may lose the last commits, which the engine redoes (its
    // state is level-triggered and its creations insert-or-get).
    let options = options
        .create_if_missing(true)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true);
    Ok((options, file))
}

/// How many times opening a store runs the migrations before it gives up
/// (see `open`).
const MIGRATION_ATTEMPTS: u32 = 8;

/// A new store is created only where no file exists; an empty file (left
/// by a failed copy, a `touch`, a full disk) is refused rather than taken
/// for a new store, which would hide that the real one is elsewhere.
///
/// So that no weir process ever sees another's database half-made, a new
/// one is made under a temporary name (its header written: WAL mode is
/// recorded in it) and then linked into place, which fails if a file
/// appeared meanwhile; the loser of such a race opens the winner's file.
async fn ensure_database_file(options: &SqliteConnectOptions, file: &Path) -> Result<(), Error> {
    let io = |source: std::io::Error| Error::Connect {
        url: file.display().to_string(),
        source: sqlx::Error::Io(source),
    };
    match std::fs::metadata(file) {
        Ok(meta) if meta.len() == 0 => {
            return Err(Error::EmptyDatabase {
                path: file.display().to_string(),
            });
        }
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per call, not only per process: two opens in one process
    // (two stores, or tasks racing) must not remove each other's file.
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = file.with_file_name(format!(".{name}.new-{}-{made}", std::process::id()));
    let remove_partial = || {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = partial.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    };
    remove_partial();
    let created = switch_to_wal(&options.clone().filename(&partial)).await;
    if let Err(source) = created {
        remove_partial();
        return Err(Error::Connect {
            url: file.display().to_string(),
            source,
        });
    }
    let linked = std::fs::hard_link(&partial, file);
    remove_partial();
    match linked {
        Ok(()) => {
            tracing::info!(path = %file.display(), "created a new store");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}
