//! SQLite: the embedded default store, one file in the state directory.
//!
//! The file is created (with its directory) on first open, only where no
//! file exists (an empty file is refused, never taken for a new store), and
//! migrated with the embedded `migrations/sqlite`. It runs in WAL mode, so readers never
//! block the writer, with a busy timeout, so that two weir processes on one
//! state directory wait for each other instead of failing. Every write
//! transaction starts with `BEGIN IMMEDIATE`: it takes the write lock first,
//! which is what makes the busy timeout apply (a deferred transaction that
//! reads and then writes may fail at once with `SQLITE_BUSY`), and it makes
//! the read-diff-write of the active set race-free (I2).
//!
//! Bulk writes are multi-row `INSERT`s sized to SQLite's limit of bound
//! parameters, so 10,000 new versions cost a handful of statements.
//! Timestamps are fixed-precision RFC 3339 text (see the migration).

mod delivery;
mod lease;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};

use super::sql::{self, query_error};
use super::{
    ActiveSet, ActiveVersion, AuditEntry, CacheEntry, Changes, CommitId, CommitInfo, Error,
    Execution, ExecutionFilter, ExecutionStore, LineageEdge, NewVersion, NodeState, SourceError,
    SourceKey, SourceStatus, Store, StoreFuture, VersionFilter, VersionKey, VersionRecord,
};
use crate::redact::redact_url;
use crate::spec::{Digest, EntityRef, Kind};

/// SQLite's limit of bound parameters in one statement (since 3.32).
const MAX_PARAMS: usize = 32766;

/// How long a writer waits for another one (possibly another process).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`, `sqlite://PATH`
    /// or a bare path, and runs pending migrations.
    pub async fn open(url: &str) -> Result<SqliteStore, Error> {
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
            .before_acquire(sql::outside_transaction)
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
            tokio::time::sleep(std::time::Duration::from_millis(25 * u64::from(attempt))).await;
            attempt += 1;
        }
        Ok(SqliteStore { pool })
    }

    /// Closes the pool: every later query fails at once (a store gone).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction holding the write lock.
    async fn begin_write(
        &self,
        doing: &'static str,
    ) -> Result<sqlx::Transaction<'static, Sqlite>, Error> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(query_error(doing))
    }

    /// The steps of [`Store::apply`], in one transaction; the source's row
    /// is written first so that every later row can reference it.
    async fn apply_changes(&self, changes: &Changes) -> Result<(), Error> {
        let at = encode_time(sql::now());
        let mut tx = self.begin_write("starting to apply a commit").await?;
        check_previous(&mut tx, changes).await?;
        insert_commit(&mut tx, &changes.commit).await?;
        mark_reconciled(&mut tx, changes, &at).await?;
        insert_versions(&mut tx, &changes.commit.id, &changes.registered, &at).await?;
        insert_activations(&mut tx, changes, &at).await?;
        replace_active(&mut tx, changes).await?;
        if !changes.is_empty() {
            let details = sql::audit_details(changes);
            let (source, commit) = (&changes.source.0, &changes.commit);
            insert_audit(&mut tx, &at, source, commit, "reconciled", &details).await?;
        }
        tx.commit()
            .await
            .map_err(query_error("committing a commit's changes"))
    }

    /// The steps of [`Store::register_inactive`], in one transaction.
    async fn register_only(
        &self,
        commit: &CommitInfo,
        versions: &[NewVersion],
    ) -> Result<(), Error> {
        let at = encode_time(sql::now());
        let mut tx = self.begin_write("starting to register a preview").await?;
        insert_commit(&mut tx, commit).await?;
        insert_versions(&mut tx, &commit.id, versions, &at).await?;
        tx.commit()
            .await
            .map_err(query_error("committing a preview's versions"))
    }

    async fn record_unreadable(
        &self,
        source: &SourceKey,
        error: &SourceError,
    ) -> Result<(), Error> {
        let at = encode_time(sql::now());
        let error = sql::error_json(error);
        sqlx::query(
            "INSERT INTO sources (key, last_attempted_at, error) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET last_attempted_at = excluded.last_attempted_at, \
             error = excluded.error",
        )
        .bind(&source.0)
        .bind(&at)
        .bind(error.to_string())
        .execute(&self.pool)
        .await
        .map_err(query_error("recording that the source could not be read"))?;
        Ok(())
    }

    async fn record(
        &self,
        source: &SourceKey,
        commit: &CommitInfo,
        error: &SourceError,
    ) -> Result<(), Error> {
        let at = encode_time(sql::now());
        let error = sql::error_json(error);
        let mut tx = self
            .begin_write("starting to record a refused commit")
            .await?;
        insert_commit(&mut tx, commit).await?;
        sqlx::query(
            "INSERT INTO sources (key, last_attempted, last_attempted_at, error) \
             VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (key) DO UPDATE SET last_attempted = excluded.last_attempted, \
             last_attempted_at = excluded.last_attempted_at, error = excluded.error",
        )
        .bind(&source.0)
        .bind(&commit.id.0)
        .bind(&at)
        .bind(error.to_string())
        .execute(&mut *tx)
        .await
        .map_err(query_error("recording the source's refused commit"))?;
        insert_audit(&mut tx, &at, &source.0, commit, "rejected", &error).await?;
        tx.commit()
            .await
            .map_err(query_error("committing a refused commit"))
    }

    async fn read_active(&self, source: &SourceKey) -> Result<ActiveSet, Error> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(query_error("reading an active set"))?;
        read_active(&mut conn, source).await
    }

    async fn known(&self, keys: &[VersionKey]) -> Result<HashSet<VersionKey>, Error> {
        const DOING: &str = "looking up known versions";
        let mut known = HashSet::new();
        let mut tx = self.pool.begin().await.map_err(query_error(DOING))?;
        for chunk in keys.chunks(MAX_PARAMS / 4) {
            let mut select =
                QueryBuilder::<Sqlite>::new("WITH k (project, kind, name, digest) AS (");
            select.push_values(chunk, |mut row, key| {
                row.push_bind(key.entity.project.as_str())
                    .push_bind(key.entity.kind.as_str())
                    .push_bind(key.entity.name.as_str())
                    .push_bind(key.digest.as_str());
            });
            select.push(
                ") SELECT v.project, v.kind, v.name, v.digest FROM versions v JOIN k \
                 ON v.project = k.project AND v.kind = k.kind AND v.name = k.name \
                 AND v.digest = k.digest",
            );
            let rows: Vec<sql::KeyRow> = select
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await
                .map_err(query_error(DOING))?;
            for row in rows {
                known.insert(row.into_key(DOING)?);
            }
        }
        Ok(known)
    }

    async fn list_versions(&self, filter: &VersionFilter) -> Result<Vec<VersionRecord>, Error> {
        const DOING: &str = "listing versions";
        const WHERE: &str = "(?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR name = ?2) \
                             AND (?3 IS NULL OR project = ?3)";
        let kind = filter.kind.map(|k| k.as_str());
        // One read transaction: one snapshot for both queries.
        let mut tx = self.pool.begin().await.map_err(query_error(DOING))?;
        let rows: Vec<sql::VersionRow> = sqlx::query_as(&format!(
            "SELECT v.project, v.kind, v.name, v.digest, v.first_commit, v.path, \
             v.registered_at, EXISTS (SELECT 1 FROM active a WHERE a.project = v.project \
             AND a.kind = v.kind AND a.name = v.name AND a.digest = v.digest) AS active \
             FROM versions v WHERE {WHERE} \
             ORDER BY v.registered_at DESC, v.project, v.kind, v.name, v.digest"
        ))
        .bind(kind)
        .bind(filter.name.as_deref())
        .bind(filter.project.as_deref())
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(DOING))?;
        let activations: Vec<sql::ActivationRow> = sqlx::query_as(&format!(
            "SELECT project, kind, name, digest, id, commit_sha, at FROM activations \
             WHERE {WHERE} ORDER BY id"
        ))
        .bind(kind)
        .bind(filter.name.as_deref())
        .bind(filter.project.as_deref())
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(DOING))?;
        sql::version_records(rows, activations, DOING)
    }

    async fn list_active_versions(
        &self,
        kind: Kind,
        name: &str,
        project: Option<&str>,
    ) -> Result<Vec<ActiveVersion>, Error> {
        const DOING: &str = "reading the active versions of a name";
        // Two static statements rather than `?1 IS NULL OR …`, which no
        // index serves: with a project, `active_by_version` finds the
        // active row; without, `versions_by_kind_name` finds the name's
        // versions and `active_by_version` which of them are active.
        let rows: Vec<sql::ActiveVersionRow> = match project {
            Some(project) => {
                sqlx::query_as(
                    "SELECT a.source, v.project, v.kind, v.name, v.digest, v.first_commit, \
                     v.document FROM active a JOIN versions v ON v.project = a.project \
                     AND v.kind = a.kind AND v.name = a.name AND v.digest = a.digest \
                     WHERE a.project = ?1 AND a.kind = ?2 AND a.name = ?3 \
                     ORDER BY v.registered_at DESC, v.project, v.digest, a.source",
                )
                .bind(project)
                .bind(kind.as_str())
                .bind(name)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query_as(
                    "SELECT a.source, v.project, v.kind, v.name, v.digest, v.first_commit, \
                     v.document FROM versions v JOIN active a ON a.project = v.project \
                     AND a.kind = v.kind AND a.name = v.name AND a.digest = v.digest \
                     WHERE v.kind = ?1 AND v.name = ?2 \
                     ORDER BY v.registered_at DESC, v.project, v.digest, a.source",
                )
                .bind(kind.as_str())
                .bind(name)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(query_error(DOING))?;
        sql::active_versions(rows, DOING)
    }

    async fn document(&self, key: &VersionKey) -> Result<Option<Value>, Error> {
        let document: Option<Json<Value>> = sqlx::query_scalar(
            "SELECT document FROM versions \
             WHERE project = ? AND kind = ? AND name = ? AND digest = ?",
        )
        .bind(&key.entity.project)
        .bind(key.entity.kind.as_str())
        .bind(&key.entity.name)
        .bind(key.digest.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("reading a version's document"))?;
        Ok(document.map(|Json(value)| value))
    }

    async fn list_sources(&self) -> Result<Vec<SourceStatus>, Error> {
        const DOING: &str = "listing sources";
        let rows: Vec<sql::SourceRow> = sqlx::query_as(
            "SELECT key, last_reconciled, last_reconciled_at, last_attempted, \
             last_attempted_at, error FROM sources ORDER BY key",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(DOING))?;
        rows.into_iter().map(|row| row.into_status(DOING)).collect()
    }

    async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, Error> {
        let rows: Vec<sql::AuditRow> = sqlx::query_as(
            "SELECT id, at, source, commit_sha, actor_name, actor_email, action, details \
             FROM audit ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("reading the audit log"))?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}

impl Store for SqliteStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(query_error("pinging the store"))?;
            Ok(())
        })
    }

    fn active_set<'a>(&'a self, source: &'a SourceKey) -> StoreFuture<'a, ActiveSet> {
        Box::pin(self.read_active(source))
    }

    fn known_versions<'a>(
        &'a self,
        keys: &'a [VersionKey],
    ) -> StoreFuture<'a, HashSet<VersionKey>> {
        Box::pin(self.known(keys))
    }

    fn apply<'a>(&'a self, changes: &'a Changes) -> StoreFuture<'a, ()> {
        Box::pin(self.apply_changes(changes))
    }

    fn register_inactive<'a>(
        &'a self,
        commit: &'a CommitInfo,
        versions: &'a [NewVersion],
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.register_only(commit, versions))
    }

    fn record_failure<'a>(
        &'a self,
        source: &'a SourceKey,
        commit: &'a CommitInfo,
        error: &'a SourceError,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.record(source, commit, error))
    }

    fn active_in_other_sources<'a>(
        &'a self,
        source: &'a SourceKey,
    ) -> StoreFuture<'a, Vec<(EntityRef, SourceKey)>> {
        Box::pin(async move {
            const DOING: &str = "reading other sources' active entities";
            let rows: Vec<(String, String, String, String)> =
                sqlx::query_as("SELECT project, kind, name, source FROM active WHERE source <> ?1")
                    .bind(&source.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_error(DOING))?;
            sql::owned_entities(rows, DOING)
        })
    }

    fn record_source_error<'a>(
        &'a self,
        source: &'a SourceKey,
        error: &'a SourceError,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.record_unreadable(source, error))
    }

    fn versions<'a>(&'a self, filter: &'a VersionFilter) -> StoreFuture<'a, Vec<VersionRecord>> {
        Box::pin(self.list_versions(filter))
    }

    fn active_versions<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        project: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<ActiveVersion>> {
        Box::pin(self.list_active_versions(kind, name, project))
    }

    fn version_document<'a>(&'a self, key: &'a VersionKey) -> StoreFuture<'a, Option<Value>> {
        Box::pin(self.document(key))
    }

    fn sources(&self) -> StoreFuture<'_, Vec<SourceStatus>> {
        Box::pin(self.list_sources())
    }

    fn audit(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(self.list_audit(limit))
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

/// Connection options for `url`, and the database file when it is one (not
/// in memory); creates the file's directory.
fn connect_options(url: &str) -> Result<(SqliteConnectOptions, Option<PathBuf>), sqlx::Error> {
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

/// A new store is created only where no file exists; an empty file (left
/// by a failed copy, a `touch`, a full disk) is refused rather than taken
/// for a new store, which would hide that the real one is elsewhere.
///
/// So that no weir process ever sees another's database half-made, a new
/// one is made under a temporary name (its header written: WAL mode is
/// recorded in it) and then linked into place, which fails if a file
/// appeared meanwhile; the loser of such a race opens the winner's file.
/// How many times opening a store runs the migrations before it gives up
/// (see [`SqliteStore::open`]).
const MIGRATION_ATTEMPTS: u32 = 8;

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

async fn execute(
    conn: &mut SqliteConnection,
    mut query: QueryBuilder<'_, Sqlite>,
    doing: &'static str,
) -> Result<(), Error> {
    query
        .build()
        .persistent(false)
        .execute(conn)
        .await
        .map_err(query_error(doing))?;
    Ok(())
}

async fn insert_commit(conn: &mut SqliteConnection, commit: &CommitInfo) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO commits (sha, author_name, author_email, committer_name, \
         committer_email, time, message) VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (sha) DO NOTHING",
    )
    .bind(&commit.id.0)
    .bind(&commit.author.name)
    .bind(&commit.author.email)
    .bind(&commit.committer.name)
    .bind(&commit.committer.email)
    .bind(encode_time(commit.time))
    .bind(&commit.message)
    .execute(conn)
    .await
    .map_err(query_error("recording a commit"))?;
    Ok(())
}

/// Source status after a valid commit: reconciled = attempted = it, no error.
async fn mark_reconciled(
    conn: &mut SqliteConnection,
    changes: &Changes,
    at: &str,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sources (key, last_reconciled, last_reconciled_at, last_attempted, \
         last_attempted_at, error) VALUES (?1, ?2, ?3, ?2, ?3, NULL) \
         ON CONFLICT (key) DO UPDATE SET last_reconciled = excluded.last_reconciled, \
         last_reconciled_at = excluded.last_reconciled_at, \
         last_attempted = excluded.last_attempted, \
         last_attempted_at = excluded.last_attempted_at, error = NULL",
    )
    .bind(&changes.source.0)
    .bind(&changes.commit.id.0)
    .bind(at)
    .execute(conn)
    .await
    .map_err(query_error("recording the source's reconciled commit"))?;
    Ok(())
}

/// Inserts new versions; a version that exists stays as it is (I1).
async fn insert_versions(
    conn: &mut SqliteConnection,
    commit: &CommitId,
    registered: &[NewVersion],
    at: &str,
) -> Result<(), Error> {
    let commit = commit.0.as_str();
    for chunk in sql::new_versions(registered).chunks(MAX_PARAMS / 9) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO versions (project, kind, name, digest, spec, document, path, \
             first_commit, registered_at) ",
        );
        insert.push_values(chunk, |mut row, v| {
            row.push_bind(v.key.entity.project.as_str())
                .push_bind(v.key.entity.kind.as_str())
                .push_bind(v.key.entity.name.as_str())
                .push_bind(v.key.digest.as_str())
                .push_bind(v.spec.to_string())
                .push_bind(v.document.to_string())
                .push_bind(v.path.as_str())
                .push_bind(commit)
                .push_bind(at);
        });
        insert.push(" ON CONFLICT DO NOTHING");
        execute(conn, insert, "inserting new versions").await?;
    }
    Ok(())
}

async fn insert_activations(
    conn: &mut SqliteConnection,
    changes: &Changes,
    at: &str,
) -> Result<(), Error> {
    let (source, commit) = (changes.source.0.as_str(), changes.commit.id.0.as_str());
    for chunk in sql::new_activations(changes).chunks(MAX_PARAMS / 8) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO activations (project, kind, name, digest, source, commit_sha, at, \
             change) ",
        );
        insert.push_values(chunk, |mut row, a| {
            row.push_bind(a.key.entity.project.as_str())
                .push_bind(a.key.entity.kind.as_str())
                .push_bind(a.key.entity.name.as_str())
                .push_bind(a.key.digest.as_str())
                .push_bind(source)
                .push_bind(commit)
                .push_bind(at)
                .push_bind(a.change);
        });
        execute(conn, insert, "recording activations").await?;
    }
    Ok(())
}

async fn insert_audit(
    conn: &mut SqliteConnection,
    at: &str,
    source: &str,
    commit: &CommitInfo,
    action: &str,
    details: &Value,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO audit (at, source, commit_sha, actor_name, actor_email, action, details) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(at)
    .bind(source)
    .bind(&commit.id.0)
    .bind(&commit.author.name)
    .bind(&commit.author.email)
    .bind(action)
    .bind(details.to_string())
    .execute(conn)
    .await
    .map_err(query_error("writing an audit entry"))?;
    Ok(())
}

async fn read_active(conn: &mut SqliteConnection, source: &SourceKey) -> Result<ActiveSet, Error> {
    const DOING: &str = "reading an active set";
    let rows = sqlx::query_as("SELECT project, kind, name, digest FROM active WHERE source = ?")
        .bind(&source.0)
        .fetch_all(conn)
        .await
        .map_err(query_error(DOING))?;
    sql::active_set(rows, DOING)
}

/// Makes the source's rows in `active` equal `next` exactly (I2), writing
/// only what differs from the stored set.
async fn replace_active(conn: &mut SqliteConnection, changes: &Changes) -> Result<(), Error> {
    let source = &changes.source;
    let diff = sql::active_diff(changes);
    for chunk in diff.removed.chunks(MAX_PARAMS / 3 - 1) {
        let mut delete = QueryBuilder::<Sqlite>::new("DELETE FROM active WHERE source = ");
        delete.push_bind(source.0.as_str());
        delete.push(" AND (project, kind, name) IN (");
        delete.push_values(chunk, |mut row, entity| {
            row.push_bind(entity.project.as_str())
                .push_bind(entity.kind.as_str())
                .push_bind(entity.name.as_str());
        });
        delete.push(")");
        execute(conn, delete, "removing entities from the active set").await?;
    }
    for chunk in diff.upserted.chunks(MAX_PARAMS / 5) {
        let mut upsert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO active (source, project, kind, name, digest) ",
        );
        upsert.push_values(chunk, |mut row, (entity, digest): &(_, &Digest)| {
            row.push_bind(source.0.as_str())
                .push_bind(entity.project.as_str())
                .push_bind(entity.kind.as_str())
                .push_bind(entity.name.as_str())
                .push_bind(digest.as_str());
        });
        upsert.push(
            " ON CONFLICT (source, project, kind, name) DO UPDATE SET digest = excluded.digest",
        );
        execute(conn, upsert, "writing the active set").await?;
    }
    Ok(())
}

/// Timestamps as stored: UTC, exactly six fractional digits.
fn encode_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Refuses a plan made against another last reconciled commit than the
/// stored one (compare-and-swap on the source's row, inside the write
/// transaction).
async fn check_previous(conn: &mut SqliteConnection, changes: &Changes) -> Result<(), Error> {
    let found: Option<Option<String>> =
        sqlx::query_scalar("SELECT last_reconciled FROM sources WHERE key = ?1")
            .bind(&changes.source.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_error("reading the source's last reconciled commit"))?;
    let found = found.flatten();
    let expected = changes.previous.as_ref().map(|c| c.0.clone());
    if found != expected {
        return Err(Error::Conflict {
            source_key: changes.source.0.clone(),
            expected,
            found,
        });
    }
    Ok(())
}

// ------------------------------------------------------------- executions
//
// An execution's row and its nodes are written in one `BEGIN IMMEDIATE`
// transaction: the write lock serializes creators of one id, so the second
// finds the first's row (`ON CONFLICT DO NOTHING` inserts nothing) and
// exactly one gets `created` (I4).

impl SqliteStore {
    async fn create(
        &self,
        execution: &Execution,
        nodes: &[NodeState],
    ) -> Result<(Execution, bool), Error> {
        const DOING: &str = "creating an execution";
        let mut tx = self.begin_write(DOING).await?;
        let created = insert_execution(&mut tx, execution).await?;
        if created {
            insert_nodes(&mut tx, &execution.id, nodes).await?;
        }
        let stored = read_execution(&mut tx, &execution.id, DOING).await?;
        let stored = stored.ok_or_else(|| Error::NotFound {
            doing: DOING,
            what: format!("execution {}", execution.id),
        })?;
        tx.commit().await.map_err(query_error(DOING))?;
        Ok((stored, created))
    }

    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>, Error> {
        const DOING: &str = "listing executions";
        let mut select = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM executions WHERE 1 = 1",
            sql::EXECUTION_COLUMNS
        ));
        if let Some(launch_plan) = &filter.launch_plan {
            select.push(" AND launch_plan = ").push_bind(launch_plan);
        }
        if let Some(workflow) = &filter.workflow {
            select.push(" AND workflow = ").push_bind(workflow);
        }
        if let Some(status) = filter.status {
            select.push(" AND status = ").push_bind(status.as_str());
        }
        select
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(sql::execution_limit(filter));
        let rows = select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(query_error(DOING))?;
        sql::executions(rows, DOING)
    }

    async fn list_unfinished(&self) -> Result<Vec<Execution>, Error> {
        const DOING: &str = "listing unfinished executions";
        // The WHERE clause is the partial index's, word for word.
        let rows = sqlx::query_as(&format!(
            "SELECT {} FROM executions WHERE status IN ('queued', 'running') \
             ORDER BY created_at, id",
            sql::EXECUTION_COLUMNS
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(DOING))?;
        sql::executions(rows, DOING)
    }

    async fn list_nodes(&self, execution: &str) -> Result<Vec<NodeState>, Error> {
        const DOING: &str = "reading an execution's nodes";
        let rows = sqlx::query_as(&format!(
            "SELECT {} FROM node_executions WHERE execution = ? ORDER BY plan_order",
            sql::NODE_COLUMNS
        ))
        .bind(execution)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(DOING))?;
        sql::node_states(rows, DOING)
    }

    async fn write_node(&self, node: &NodeState) -> Result<(), Error> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(query_error("writing a node's state"))?;
        update_node_row(&mut conn, node).await
    }

    /// The steps of [`ExecutionStore::complete_node`], in one transaction.
    async fn complete(
        &self,
        node: &NodeState,
        cache: Option<&CacheEntry>,
        edges: &[LineageEdge],
    ) -> Result<(), Error> {
        const DOING: &str = "recording a node's success";
        let mut tx = self.begin_write(DOING).await?;
        update_node_row(&mut tx, node).await?;
        if let Some(entry) = cache {
            insert_cache_entry(&mut tx, entry).await?;
        }
        insert_lineage_rows(&mut tx, edges).await?;
        tx.commit().await.map_err(query_error(DOING))
    }

    async fn write_execution(&self, execution: &Execution) -> Result<(), Error> {
        const DOING: &str = "writing an execution's status";
        let done = sqlx::query(
            "UPDATE executions SET status = ?, outputs = ?, error = ?, started_at = ?, \
             finished_at = ? WHERE id = ?",
        )
        .bind(execution.status.as_str())
        .bind(json_text(execution.outputs.as_ref()))
        .bind(&execution.error)
        .bind(execution.started_at.map(encode_time))
        .bind(execution.finished_at.map(encode_time))
        .bind(&execution.id)
        .execute(&self.pool)
        .await
        .map_err(query_error(DOING))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound {
                doing: DOING,
                what: format!("execution {}", execution.id),
            });
        }
        Ok(())
    }

    async fn cancel(&self, id: &str) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE executions SET cancel_requested = 1 \
             WHERE id = ? AND status IN ('queued', 'running')",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query_error("requesting an execution's cancellation"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_lineage(&self, edges: &[LineageEdge]) -> Result<(), Error> {
        const DOING: &str = "recording lineage";
        if edges.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write(DOING).await?;
        insert_lineage_rows(&mut tx, edges).await?;
        tx.commit().await.map_err(query_error(DOING))
    }

    /// Lineage edges where `column` (`digest` or `execution`) is `value`,
    /// oldest first.
    /// Runs a `SELECT … FROM lineage WHERE … (` query, closing it in time order.
    async fn lineage_query(
        &self,
        mut query: QueryBuilder<'_, Sqlite>,
        doing: &'static str,
    ) -> Result<Vec<LineageEdge>, Error> {
        query.push(") ORDER BY at, id");
        let rows = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(query_error(doing))?;
        sql::lineage_edges(rows, doing)
    }

    async fn lineage_where(
        &self,
        column: &'static str,
        value: &str,
        doing: &'static str,
    ) -> Result<Vec<LineageEdge>, Error> {
        let rows = sqlx::query_as(&format!(
            "SELECT {} FROM lineage WHERE {column} = ? ORDER BY at, id",
            sql::LINEAGE_COLUMNS
        ))
        .bind(value)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(doing))?;
        sql::lineage_edges(rows, doing)
    }

    async fn cache_read(&self, key: &Digest) -> Result<Option<CacheEntry>, Error> {
        let row: Option<sql::CacheRow> = sqlx::query_as(&format!(
            "SELECT {} FROM cache_entries WHERE key = ?",
            sql::CACHE_COLUMNS
        ))
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("reading a cache entry"))?;
        Ok(row.map(CacheEntry::from))
    }

    async fn cache_write(&self, entry: &CacheEntry) -> Result<(), Error> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(query_error("writing a cache entry"))?;
        insert_cache_entry(&mut conn, entry).await
    }
}

/// Writes a node's state (by execution and node path); a node that does
/// not exist is [`Error::NotFound`].
async fn update_node_row(conn: &mut SqliteConnection, node: &NodeState) -> Result<(), Error> {
    const DOING: &str = "writing a node's state";
    let done = sqlx::query(
        "UPDATE node_executions SET status = ?, attempts = ?, inputs = ?, outputs = ?, \
         error = ?, cached_from = ?, started_at = ?, finished_at = ?, \
         next_attempt_at = ?, handle = ? WHERE execution = ? AND node = ?",
    )
    .bind(node.status.as_str())
    .bind(sql::attempts_column(node))
    .bind(json_text(node.inputs.as_ref()))
    .bind(json_text(node.outputs.as_ref()))
    .bind(&node.error)
    .bind(&node.cached_from)
    .bind(node.started_at.map(encode_time))
    .bind(node.finished_at.map(encode_time))
    .bind(node.next_attempt_at.map(encode_time))
    .bind(json_text(node.handle.as_ref()))
    .bind(&node.execution)
    .bind(&node.node)
    .execute(conn)
    .await
    .map_err(query_error(DOING))?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound {
            doing: DOING,
            what: format!("node {} of execution {}", node.node, node.execution),
        });
    }
    Ok(())
}

/// Inserts lineage edges; an edge that exists is skipped.
async fn insert_lineage_rows(
    conn: &mut SqliteConnection,
    edges: &[LineageEdge],
) -> Result<(), Error> {
    const DOING: &str = "recording lineage";
    let rows = sql::new_lineage(edges);
    for chunk in rows.chunks(MAX_PARAMS / 9) {
        let mut insert =
            QueryBuilder::<Sqlite>::new(format!("INSERT INTO lineage ({}) ", sql::LINEAGE_COLUMNS));
        insert.push_values(chunk, |mut row, edge| {
            row.push_bind(edge.execution.as_str())
                .push_bind(edge.node.as_str())
                .push_bind(sql::direction_column(edge.direction))
                .push_bind(edge.name.as_str())
                .push_bind(edge.digest.as_str())
                .push_bind(edge.task.as_str())
                .push_bind(edge.task_version.as_str())
                .push_bind(edge.commit.0.as_str())
                .push_bind(encode_time(edge.at));
        });
        insert.push(" ON CONFLICT DO NOTHING");
        execute(conn, insert, DOING).await?;
    }
    Ok(())
}

/// Inserts a cache entry unless its key has one (the first result stays).
async fn insert_cache_entry(conn: &mut SqliteConnection, entry: &CacheEntry) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO cache_entries ({}) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        sql::CACHE_COLUMNS
    ))
    .bind(entry.key.as_str())
    .bind(&entry.execution)
    .bind(&entry.node)
    .bind(entry.outputs.to_string())
    .bind(encode_time(entry.created_at))
    .execute(conn)
    .await
    .map_err(query_error("writing a cache entry"))?;
    Ok(())
}

impl ExecutionStore for SqliteStore {
    fn create_execution<'a>(
        &'a self,
        execution: &'a Execution,
        nodes: &'a [NodeState],
    ) -> StoreFuture<'a, (Execution, bool)> {
        Box::pin(self.create(execution, nodes))
    }

    fn execution<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Execution>> {
        Box::pin(async move {
            const DOING: &str = "reading an execution";
            let mut conn = self.pool.acquire().await.map_err(query_error(DOING))?;
            read_execution(&mut conn, id, DOING).await
        })
    }

    fn executions<'a>(&'a self, filter: &'a ExecutionFilter) -> StoreFuture<'a, Vec<Execution>> {
        Box::pin(self.list_executions(filter))
    }

    fn unfinished_executions(&self) -> StoreFuture<'_, Vec<Execution>> {
        Box::pin(self.list_unfinished())
    }

    fn nodes<'a>(&'a self, execution: &'a str) -> StoreFuture<'a, Vec<NodeState>> {
        Box::pin(self.list_nodes(execution))
    }

    fn update_node<'a>(&'a self, node: &'a NodeState) -> StoreFuture<'a, ()> {
        Box::pin(self.write_node(node))
    }

    fn complete_node<'a>(
        &'a self,
        node: &'a NodeState,
        cache: Option<&'a CacheEntry>,
        edges: &'a [LineageEdge],
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.complete(node, cache, edges))
    }

    fn update_execution<'a>(&'a self, execution: &'a Execution) -> StoreFuture<'a, ()> {
        Box::pin(self.write_execution(execution))
    }

    fn request_cancel<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.cancel(id))
    }

    fn record_lineage<'a>(&'a self, edges: &'a [LineageEdge]) -> StoreFuture<'a, ()> {
        Box::pin(self.insert_lineage(edges))
    }

    fn lineage_of_artifact<'a>(&'a self, digest: &'a Digest) -> StoreFuture<'a, Vec<LineageEdge>> {
        Box::pin(self.lineage_where("digest", digest.as_str(), "reading an artifact's lineage"))
    }

    fn lineage_of_execution<'a>(&'a self, execution: &'a str) -> StoreFuture<'a, Vec<LineageEdge>> {
        Box::pin(self.lineage_where("execution", execution, "reading an execution's lineage"))
    }

    fn lineage_of_artifacts<'a>(
        &'a self,
        digests: &'a [Digest],
    ) -> StoreFuture<'a, Vec<LineageEdge>> {
        Box::pin(async move {
            let doing = "reading artifacts' lineage";
            let mut edges = Vec::new();
            for chunk in digests.chunks(MAX_PARAMS) {
                let mut query = QueryBuilder::<Sqlite>::new(format!(
                    "SELECT {} FROM lineage WHERE digest IN (",
                    sql::LINEAGE_COLUMNS
                ));
                let mut list = query.separated(", ");
                for digest in chunk {
                    list.push_bind(digest.as_str());
                }
                edges.extend(self.lineage_query(query, doing).await?);
            }
            Ok(edges)
        })
    }

    fn lineage_of_nodes<'a>(
        &'a self,
        nodes: &'a [(String, String)],
    ) -> StoreFuture<'a, Vec<LineageEdge>> {
        Box::pin(async move {
            let doing = "reading nodes' lineage";
            let mut edges = Vec::new();
            for chunk in nodes.chunks(MAX_PARAMS / 2) {
                let mut query = QueryBuilder::<Sqlite>::new(format!(
                    "SELECT {} FROM lineage WHERE (execution, node) IN (VALUES ",
                    sql::LINEAGE_COLUMNS
                ));
                let mut list = query.separated(", ");
                for (execution, node) in chunk {
                    list.push("(")
                        .push_bind_unseparated(execution.as_str())
                        .push_unseparated(", ")
                        .push_bind_unseparated(node.as_str())
                        .push_unseparated(")");
                }
                edges.extend(self.lineage_query(query, doing).await?);
            }
            Ok(edges)
        })
    }

    fn cache_get<'a>(&'a self, key: &'a Digest) -> StoreFuture<'a, Option<CacheEntry>> {
        Box::pin(self.cache_read(key))
    }

    fn cache_put<'a>(&'a self, entry: &'a CacheEntry) -> StoreFuture<'a, ()> {
        Box::pin(self.cache_write(entry))
    }
}

/// Inserts the execution's row unless its id exists; whether it did.
async fn insert_execution(conn: &mut SqliteConnection, e: &Execution) -> Result<bool, Error> {
    let done = sqlx::query(&format!(
        "INSERT INTO executions ({}) VALUES \
         (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO NOTHING",
        sql::EXECUTION_COLUMNS
    ))
    .bind(&e.id)
    .bind(&e.project)
    .bind(&e.workflow)
    .bind(e.workflow_version.as_str())
    .bind(&e.launch_plan)
    .bind(e.launch_plan_version.as_ref().map(Digest::as_str))
    .bind(&e.source.0)
    .bind(&e.commit.0)
    .bind(&e.trigger)
    .bind(e.scheduled_at.map(encode_time))
    .bind(e.inputs.to_string())
    .bind(e.plan.to_string())
    .bind(e.options.to_string())
    .bind(e.status.as_str())
    .bind(json_text(e.outputs.as_ref()))
    .bind(&e.error)
    .bind(encode_time(e.created_at))
    .bind(e.started_at.map(encode_time))
    .bind(e.finished_at.map(encode_time))
    .bind(e.cancel_requested)
    .execute(conn)
    .await
    .map_err(query_error("inserting an execution"))?;
    Ok(done.rows_affected() == 1)
}

/// Inserts an execution's nodes, numbered in the order given (plan order).
async fn insert_nodes(
    conn: &mut SqliteConnection,
    execution: &str,
    nodes: &[NodeState],
) -> Result<(), Error> {
    const COLUMNS: usize = 15;
    let numbered: Vec<(i64, &NodeState)> = (1..).zip(nodes).collect();
    for chunk in numbered.chunks(MAX_PARAMS / COLUMNS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO node_executions (execution, node, plan_order, task, task_version, \
             status, attempts, inputs, outputs, error, cached_from, started_at, finished_at, \
             next_attempt_at, handle) ",
        );
        insert.push_values(chunk, |mut row, (plan_order, node)| {
            row.push_bind(execution)
                .push_bind(node.node.as_str())
                .push_bind(*plan_order)
                .push_bind(node.task.as_str())
                .push_bind(node.task_version.as_str())
                .push_bind(node.status.as_str())
                .push_bind(sql::attempts_column(node))
                .push_bind(json_text(node.inputs.as_ref()))
                .push_bind(json_text(node.outputs.as_ref()))
                .push_bind(node.error.as_deref())
                .push_bind(node.cached_from.as_deref())
                .push_bind(node.started_at.map(encode_time))
                .push_bind(node.finished_at.map(encode_time))
                .push_bind(node.next_attempt_at.map(encode_time))
                .push_bind(json_text(node.handle.as_ref()));
        });
        execute(conn, insert, "inserting an execution's nodes").await?;
    }
    Ok(())
}

async fn read_execution(
    conn: &mut SqliteConnection,
    id: &str,
    doing: &'static str,
) -> Result<Option<Execution>, Error> {
    let row: Option<sql::ExecutionRow> = sqlx::query_as(&format!(
        "SELECT {} FROM executions WHERE id = ?",
        sql::EXECUTION_COLUMNS
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(query_error(doing))?;
    row.map(|row| row.into_execution(doing)).transpose()
}

/// An optional JSON value as stored: JSON text, or NULL.
fn json_text(value: Option<&Value>) -> Option<String> {
    value.map(Value::to_string)
}
