//! PostgreSQL: the store for several replicas and large histories.
//!
//! Migrated with the embedded `migrations/postgres` (sqlx holds an advisory
//! lock meanwhile, so replicas starting together migrate once). Bulk writes
//! send each column as one array and `UNNEST` it, so 10,000 new versions are
//! one statement whatever the parameter limit.
//!
//! Concurrency: `apply` and `record_failure` upsert the source's row before
//! anything else, which locks it until commit; two writers of one source
//! therefore run one after the other, and the read-diff-write of the active
//! set sees the other's result (I2). New versions are inserted in key order,
//! so writers of different sources that share versions cannot deadlock.

mod delivery;
mod lease;

use std::collections::HashSet;
use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::sql::{self, query_error};
use super::{
    ActiveSet, ActiveVersion, AuditEntry, CacheEntry, Changes, CommitId, CommitInfo, Error,
    Execution, ExecutionFilter, ExecutionStore, LineageEdge, NewVersion, NodeState, SourceError,
    SourceKey, SourceStatus, Store, StoreFuture, VersionFilter, VersionKey, VersionRecord,
};
use crate::redact::redact_url;
use crate::spec::{Digest, EntityRef, Kind};

/// How long the first connection of [`PgStore::open`] may take (a host
/// that drops packets rather than refusing).
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The store in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// The four key columns of many rows, one array each, for `UNNEST`.
#[derive(Default)]
struct KeyColumns<'a> {
    project: Vec<&'a str>,
    kind: Vec<&'a str>,
    name: Vec<&'a str>,
    digest: Vec<&'a str>,
}

impl<'a> KeyColumns<'a> {
    fn push(&mut self, key: &'a VersionKey) {
        self.project.push(&key.entity.project);
        self.kind.push(key.entity.kind.as_str());
        self.name.push(&key.entity.name);
        self.digest.push(key.digest.as_str());
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and runs pending migrations.
    ///
    /// One connection is made first, bounded by [`CONNECT_TIMEOUT`]: a pool
    /// would retry until its acquire timeout (30 s) and then say only "pool
    /// timed out", where one connection fails at once with the reason
    /// (connection refused, unknown host, bad password), reported with the
    /// host and port as [`Error::Unreachable`].
    pub async fn open(url: &str) -> Result<PgStore, Error> {
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
            .before_acquire(sql::outside_transaction)
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
        Ok(PgStore { pool })
    }

    /// The steps of [`Store::apply`], in one transaction; the source's row
    /// is written first, which also locks it until commit (see module docs).
    async fn apply_changes(&self, changes: &Changes) -> Result<(), Error> {
        let at = sql::now();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("starting to apply a commit"))?;
        check_previous(&mut tx, changes).await?;
        insert_commit(&mut tx, &changes.commit).await?;
        mark_reconciled(&mut tx, changes, at).await?;
        insert_versions(&mut tx, &changes.commit.id, &changes.registered, at).await?;
        insert_activations(&mut tx, changes, at).await?;
        replace_active(&mut tx, changes).await?;
        if !changes.is_empty() {
            let details = sql::audit_details(changes);
            let (source, commit) = (&changes.source.0, &changes.commit);
            insert_audit(&mut tx, at, source, commit, "reconciled", &details).await?;
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
        let at = sql::now();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("starting to register a preview"))?;
        insert_commit(&mut tx, commit).await?;
        insert_versions(&mut tx, &commit.id, versions, at).await?;
        tx.commit()
            .await
            .map_err(query_error("committing a preview's versions"))
    }

    async fn record_unreadable(
        &self,
        source: &SourceKey,
        error: &SourceError,
    ) -> Result<(), Error> {
        let at = sql::now();
        let error = sql::error_json(error);
        sqlx::query(
            "INSERT INTO sources (key, last_attempted_at, error) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET last_attempted_at = excluded.last_attempted_at, \
             error = excluded.error",
        )
        .bind(&source.0)
        .bind(at)
        .bind(&error)
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
        let at = sql::now();
        let error = sql::error_json(error);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("starting to record a refused commit"))?;
        insert_commit(&mut tx, commit).await?;
        sqlx::query(
            "INSERT INTO sources (key, last_attempted, last_attempted_at, error) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET last_attempted = EXCLUDED.last_attempted, \
             last_attempted_at = EXCLUDED.last_attempted_at, error = EXCLUDED.error",
        )
        .bind(&source.0)
        .bind(&commit.id.0)
        .bind(at)
        .bind(&error)
        .execute(&mut *tx)
        .await
        .map_err(query_error("recording the source's refused commit"))?;
        insert_audit(&mut tx, at, &source.0, commit, "rejected", &error).await?;
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
        let mut columns = KeyColumns::default();
        keys.iter().for_each(|key| columns.push(key));
        let rows: Vec<sql::KeyRow> = sqlx::query_as(
            "SELECT v.project, v.kind, v.name, v.digest FROM versions v \
             JOIN UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) \
             AS k (project, kind, name, digest) \
             ON v.project = k.project AND v.kind = k.kind AND v.name = k.name \
             AND v.digest = k.digest",
        )
        .bind(&columns.project)
        .bind(&columns.kind)
        .bind(&columns.name)
        .bind(&columns.digest)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(DOING))?;
        rows.into_iter().map(|row| row.into_key(DOING)).collect()
    }

    async fn list_versions(&self, filter: &VersionFilter) -> Result<Vec<VersionRecord>, Error> {
        const DOING: &str = "listing versions";
        const WHERE: &str = "($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR name = $2) \
                             AND ($3::text IS NULL OR project = $3)";
        let kind = filter.kind.map(|k| k.as_str());
        // One snapshot for both queries, so activations match the versions.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(query_error(DOING))?;
        let rows: Vec<sql::VersionRow> = sqlx::query_as(&format!(
            "SELECT v.project, v.kind, v.name, v.digest, v.first_commit, v.path, \
             v.registered_at, EXISTS (SELECT 1 FROM active a WHERE a.project = v.project \
             AND a.kind = v.kind AND a.name = v.name AND a.digest = v.digest) AS active \
             FROM versions v WHERE {WHERE} ORDER BY v.registered_at DESC, \
             v.project COLLATE \"C\", v.kind, v.name COLLATE \"C\", v.digest"
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
        tx.commit().await.map_err(query_error(DOING))?;
        sql::version_records(rows, activations, DOING)
    }

    async fn list_active_versions(
        &self,
        kind: Kind,
        name: &str,
        project: Option<&str>,
    ) -> Result<Vec<ActiveVersion>, Error> {
        const DOING: &str = "reading the active versions of a name";
        // Two static statements rather than `$1 IS NULL OR …`, which no
        // index serves: with a project, `active_by_version` finds the
        // active row; without, `versions_by_kind_name` finds the name's
        // versions and `active_by_version` which of them are active.
        let rows: Vec<sql::ActiveVersionRow> = match project {
            Some(project) => {
                sqlx::query_as(
                    "SELECT a.source, v.project, v.kind, v.name, v.digest, v.first_commit, \
                     v.document FROM active a JOIN versions v ON v.project = a.project \
                     AND v.kind = a.kind AND v.name = a.name AND v.digest = a.digest \
                     WHERE a.project = $1 AND a.kind = $2 AND a.name = $3 \
                     ORDER BY v.registered_at DESC, v.project COLLATE \"C\", v.digest, \
                     a.source COLLATE \"C\"",
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
                     WHERE v.kind = $1 AND v.name = $2 \
                     ORDER BY v.registered_at DESC, v.project COLLATE \"C\", v.digest, \
                     a.source COLLATE \"C\"",
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
        sqlx::query_scalar(
            "SELECT document FROM versions \
             WHERE project = $1 AND kind = $2 AND name = $3 AND digest = $4",
        )
        .bind(&key.entity.project)
        .bind(key.entity.kind.as_str())
        .bind(&key.entity.name)
        .bind(key.digest.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("reading a version's document"))
    }

    async fn list_sources(&self) -> Result<Vec<SourceStatus>, Error> {
        const DOING: &str = "listing sources";
        let rows: Vec<sql::SourceRow> = sqlx::query_as(
            "SELECT key, last_reconciled, last_reconciled_at, last_attempted, \
             last_attempted_at, error FROM sources ORDER BY key COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(DOING))?;
        rows.into_iter().map(|row| row.into_status(DOING)).collect()
    }

    async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, Error> {
        let rows: Vec<sql::AuditRow> = sqlx::query_as(
            "SELECT id, at, source, commit_sha, actor_name, actor_email, action, details \
             FROM audit ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("reading the audit log"))?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}

impl Store for PgStore {
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
                sqlx::query_as("SELECT project, kind, name, source FROM active WHERE source <> $1")
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

async fn insert_commit(conn: &mut PgConnection, commit: &CommitInfo) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO commits (sha, author_name, author_email, committer_name, \
         committer_email, time, message) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (sha) DO NOTHING",
    )
    .bind(&commit.id.0)
    .bind(&commit.author.name)
    .bind(&commit.author.email)
    .bind(&commit.committer.name)
    .bind(&commit.committer.email)
    .bind(commit.time)
    .bind(&commit.message)
    .execute(conn)
    .await
    .map_err(query_error("recording a commit"))?;
    Ok(())
}

/// Source status after a valid commit: reconciled = attempted = it, no error.
async fn mark_reconciled(
    conn: &mut PgConnection,
    changes: &Changes,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sources (key, last_reconciled, last_reconciled_at, last_attempted, \
         last_attempted_at, error) VALUES ($1, $2, $3, $2, $3, NULL) \
         ON CONFLICT (key) DO UPDATE SET last_reconciled = EXCLUDED.last_reconciled, \
         last_reconciled_at = EXCLUDED.last_reconciled_at, \
         last_attempted = EXCLUDED.last_attempted, \
         last_attempted_at = EXCLUDED.last_attempted_at, error = NULL",
    )
    .bind(&changes.source.0)
    .bind(&changes.commit.id.0)
    .bind(at)
    .execute(conn)
    .await
    .map_err(query_error("recording the source's reconciled commit"))?;
    Ok(())
}

/// Inserts new versions, in key order; a version that exists stays as it
/// is (I1).
async fn insert_versions(
    conn: &mut PgConnection,
    commit: &CommitId,
    registered: &[NewVersion],
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let versions = sql::new_versions(registered);
    if versions.is_empty() {
        return Ok(());
    }
    let mut keys = KeyColumns::default();
    let (mut specs, mut documents, mut paths) = (Vec::new(), Vec::new(), Vec::new());
    for v in &versions {
        keys.push(&v.key);
        specs.push(Json(&v.spec));
        documents.push(Json(&v.document));
        paths.push(v.path.as_str());
    }
    sqlx::query(
        "INSERT INTO versions (project, kind, name, digest, spec, document, path, \
         first_commit, registered_at) \
         SELECT project, kind, name, digest, spec, document, path, $8, $9 \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], \
         $6::jsonb[], $7::text[]) AS r (project, kind, name, digest, spec, document, path) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&keys.project)
    .bind(&keys.kind)
    .bind(&keys.name)
    .bind(&keys.digest)
    .bind(&specs)
    .bind(&documents)
    .bind(&paths)
    .bind(&commit.0)
    .bind(at)
    .execute(conn)
    .await
    .map_err(query_error("inserting new versions"))?;
    Ok(())
}

async fn insert_activations(
    conn: &mut PgConnection,
    changes: &Changes,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let activations = sql::new_activations(changes);
    if activations.is_empty() {
        return Ok(());
    }
    let mut keys = KeyColumns::default();
    let mut kinds_of_change = Vec::new();
    for a in &activations {
        keys.push(a.key);
        kinds_of_change.push(a.change);
    }
    sqlx::query(
        "INSERT INTO activations (project, kind, name, digest, source, commit_sha, at, \
         change) \
         SELECT project, kind, name, digest, $6, $7, $8, change \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
         WITH ORDINALITY AS r (project, kind, name, digest, change, n) ORDER BY n",
    )
    .bind(&keys.project)
    .bind(&keys.kind)
    .bind(&keys.name)
    .bind(&keys.digest)
    .bind(&kinds_of_change)
    .bind(&changes.source.0)
    .bind(&changes.commit.id.0)
    .bind(at)
    .execute(conn)
    .await
    .map_err(query_error("recording activations"))?;
    Ok(())
}

async fn insert_audit(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    source: &str,
    commit: &CommitInfo,
    action: &str,
    details: &Value,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO audit (at, source, commit_sha, actor_name, actor_email, action, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(at)
    .bind(source)
    .bind(&commit.id.0)
    .bind(&commit.author.name)
    .bind(&commit.author.email)
    .bind(action)
    .bind(details)
    .execute(conn)
    .await
    .map_err(query_error("writing an audit entry"))?;
    Ok(())
}

async fn read_active(conn: &mut PgConnection, source: &SourceKey) -> Result<ActiveSet, Error> {
    const DOING: &str = "reading an active set";
    let rows = sqlx::query_as("SELECT project, kind, name, digest FROM active WHERE source = $1")
        .bind(&source.0)
        .fetch_all(conn)
        .await
        .map_err(query_error(DOING))?;
    sql::active_set(rows, DOING)
}

/// Makes the source's rows in `active` equal `next` exactly (I2), writing
/// only what differs from the stored set. The caller holds the source's row
/// lock, so the set read here is the latest committed one.
async fn replace_active(conn: &mut PgConnection, changes: &Changes) -> Result<(), Error> {
    let source = &changes.source;
    let diff = sql::active_diff(changes);
    if !diff.removed.is_empty() {
        let mut project = Vec::new();
        let mut kind = Vec::new();
        let mut name = Vec::new();
        for entity in &diff.removed {
            project.push(entity.project.as_str());
            kind.push(entity.kind.as_str());
            name.push(entity.name.as_str());
        }
        sqlx::query(
            "DELETE FROM active a USING UNNEST($2::text[], $3::text[], $4::text[]) \
             AS r (project, kind, name) WHERE a.source = $1 AND a.project = r.project \
             AND a.kind = r.kind AND a.name = r.name",
        )
        .bind(&source.0)
        .bind(&project)
        .bind(&kind)
        .bind(&name)
        .execute(&mut *conn)
        .await
        .map_err(query_error("removing entities from the active set"))?;
    }
    if !diff.upserted.is_empty() {
        let mut columns = KeyColumns::default();
        for (entity, digest) in &diff.upserted {
            columns.project.push(&entity.project);
            columns.kind.push(entity.kind.as_str());
            columns.name.push(&entity.name);
            columns.digest.push(digest.as_str());
        }
        sqlx::query(
            "INSERT INTO active (source, project, kind, name, digest) \
             SELECT $1, project, kind, name, digest \
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[]) \
             AS r (project, kind, name, digest) \
             ON CONFLICT (source, project, kind, name) DO UPDATE SET digest = EXCLUDED.digest",
        )
        .bind(&source.0)
        .bind(&columns.project)
        .bind(&columns.kind)
        .bind(&columns.name)
        .bind(&columns.digest)
        .execute(&mut *conn)
        .await
        .map_err(query_error("writing the active set"))?;
    }
    Ok(())
}

/// Refuses a plan made against another last reconciled commit than the
/// stored one (compare-and-swap on the source's row, inside the write
/// transaction).
async fn check_previous(conn: &mut PgConnection, changes: &Changes) -> Result<(), Error> {
    // Serialize writers of one source, even before its row exists.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(&changes.source.0)
        .execute(&mut *conn)
        .await
        .map_err(query_error("locking the source"))?;
    let found: Option<Option<String>> =
        sqlx::query_scalar("SELECT last_reconciled FROM sources WHERE key = $1")
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
// Creating an execution is `INSERT … ON CONFLICT (id) DO NOTHING` in a read
// committed transaction: a second creator of the same id waits on the
// first's uncommitted row, then finds it and inserts nothing, so exactly one
// gets `created` (I4); its `SELECT`, a new statement, sees the first's row.

impl PgStore {
    async fn create(
        &self,
        execution: &Execution,
        nodes: &[NodeState],
    ) -> Result<(Execution, bool), Error> {
        const DOING: &str = "creating an execution";
        let mut tx = self.pool.begin().await.map_err(query_error(DOING))?;
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
        let mut select = QueryBuilder::<Postgres>::new(format!(
            "SELECT {} FROM executions WHERE TRUE",
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
            "SELECT {} FROM node_executions WHERE execution = $1 ORDER BY plan_order",
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
        let mut tx = self.pool.begin().await.map_err(query_error(DOING))?;
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
            "UPDATE executions SET status = $1, outputs = $2, error = $3, started_at = $4, \
             finished_at = $5 WHERE id = $6",
        )
        .bind(execution.status.as_str())
        .bind(execution.outputs.as_ref().map(Json))
        .bind(&execution.error)
        .bind(execution.started_at)
        .bind(execution.finished_at)
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
            "UPDATE executions SET cancel_requested = TRUE \
             WHERE id = $1 AND status IN ('queued', 'running')",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query_error("requesting an execution's cancellation"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_lineage(&self, edges: &[LineageEdge]) -> Result<(), Error> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(query_error("recording lineage"))?;
        insert_lineage_rows(&mut conn, edges).await
    }

    /// Lineage edges where `column` (`digest` or `execution`) is `value`,
    /// oldest first.
    async fn lineage_where(
        &self,
        column: &'static str,
        value: &str,
        doing: &'static str,
    ) -> Result<Vec<LineageEdge>, Error> {
        let rows = sqlx::query_as(&format!(
            "SELECT {} FROM lineage WHERE {column} = $1 ORDER BY at, id",
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
            "SELECT {} FROM cache_entries WHERE key = $1",
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
async fn update_node_row(conn: &mut PgConnection, node: &NodeState) -> Result<(), Error> {
    const DOING: &str = "writing a node's state";
    let done = sqlx::query(
        "UPDATE node_executions SET status = $1, attempts = $2, inputs = $3, \
         outputs = $4, error = $5, cached_from = $6, started_at = $7, finished_at = $8, \
         next_attempt_at = $9, handle = $10 WHERE execution = $11 AND node = $12",
    )
    .bind(node.status.as_str())
    .bind(sql::attempts_column(node))
    .bind(node.inputs.as_ref().map(Json))
    .bind(node.outputs.as_ref().map(Json))
    .bind(&node.error)
    .bind(&node.cached_from)
    .bind(node.started_at)
    .bind(node.finished_at)
    .bind(node.next_attempt_at)
    .bind(node.handle.as_ref().map(Json))
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

/// Inserts lineage edges in one statement; an edge that exists is skipped.
async fn insert_lineage_rows(conn: &mut PgConnection, edges: &[LineageEdge]) -> Result<(), Error> {
    let rows = sql::new_lineage(edges);
    if rows.is_empty() {
        return Ok(());
    }
    let mut columns = LineageColumns::default();
    rows.iter().for_each(|edge| columns.push(edge));
    sqlx::query(&format!(
        "INSERT INTO lineage ({columns}) SELECT {columns} \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::timestamptz[]) \
         WITH ORDINALITY AS r ({columns}, n) ORDER BY n ON CONFLICT DO NOTHING",
        columns = sql::LINEAGE_COLUMNS
    ))
    .bind(&columns.execution)
    .bind(&columns.node)
    .bind(&columns.direction)
    .bind(&columns.name)
    .bind(&columns.digest)
    .bind(&columns.task)
    .bind(&columns.task_version)
    .bind(&columns.commit)
    .bind(&columns.at)
    .execute(conn)
    .await
    .map_err(query_error("recording lineage"))?;
    Ok(())
}

/// Inserts a cache entry unless its key has one (the first result stays).
async fn insert_cache_entry(conn: &mut PgConnection, entry: &CacheEntry) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO cache_entries ({}) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (key) DO NOTHING",
        sql::CACHE_COLUMNS
    ))
    .bind(entry.key.as_str())
    .bind(&entry.execution)
    .bind(&entry.node)
    .bind(Json(&entry.outputs))
    .bind(entry.created_at)
    .execute(conn)
    .await
    .map_err(query_error("writing a cache entry"))?;
    Ok(())
}

impl ExecutionStore for PgStore {
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
            let digests: Vec<&str> = digests.iter().map(Digest::as_str).collect();
            let rows = sqlx::query_as(&format!(
                "SELECT {} FROM lineage WHERE digest = ANY($1) ORDER BY at, id",
                sql::LINEAGE_COLUMNS
            ))
            .bind(digests)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error(doing))?;
            sql::lineage_edges(rows, doing)
        })
    }

    fn lineage_of_nodes<'a>(
        &'a self,
        nodes: &'a [(String, String)],
    ) -> StoreFuture<'a, Vec<LineageEdge>> {
        Box::pin(async move {
            let doing = "reading nodes' lineage";
            let (executions, names): (Vec<&str>, Vec<&str>) =
                nodes.iter().map(|(e, n)| (e.as_str(), n.as_str())).unzip();
            let rows = sqlx::query_as(&format!(
                "SELECT {} FROM lineage WHERE (execution, node) IN \
                 (SELECT * FROM UNNEST($1::text[], $2::text[])) ORDER BY at, id",
                sql::LINEAGE_COLUMNS
            ))
            .bind(executions)
            .bind(names)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error(doing))?;
            sql::lineage_edges(rows, doing)
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
async fn insert_execution(conn: &mut PgConnection, e: &Execution) -> Result<bool, Error> {
    let done = sqlx::query(&format!(
        "INSERT INTO executions ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18, $19, $20) ON CONFLICT (id) DO NOTHING",
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
    .bind(e.scheduled_at)
    .bind(Json(&e.inputs))
    .bind(Json(&e.plan))
    .bind(Json(&e.options))
    .bind(e.status.as_str())
    .bind(e.outputs.as_ref().map(Json))
    .bind(&e.error)
    .bind(e.created_at)
    .bind(e.started_at)
    .bind(e.finished_at)
    .bind(e.cancel_requested)
    .execute(conn)
    .await
    .map_err(query_error("inserting an execution"))?;
    Ok(done.rows_affected() == 1)
}

/// Inserts an execution's nodes, numbered in the order given (plan order),
/// in one statement.
async fn insert_nodes(
    conn: &mut PgConnection,
    execution: &str,
    nodes: &[NodeState],
) -> Result<(), Error> {
    if nodes.is_empty() {
        return Ok(());
    }
    let mut c = NodeColumns::default();
    nodes.iter().for_each(|node| c.push(node));
    sqlx::query(
        "INSERT INTO node_executions (execution, node, plan_order, task, task_version, \
         status, attempts, inputs, outputs, error, cached_from, started_at, finished_at, \
         next_attempt_at, handle) \
         SELECT $1, node, n, task, task_version, status, attempts, inputs, outputs, error, \
         cached_from, started_at, finished_at, next_attempt_at, handle \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::jsonb[], \
         $8::jsonb[], $9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[], \
         $13::timestamptz[], $14::jsonb[]) WITH ORDINALITY AS r (node, task, task_version, \
         status, attempts, inputs, outputs, error, cached_from, started_at, finished_at, \
         next_attempt_at, handle, n)",
    )
    .bind(execution)
    .bind(&c.node)
    .bind(&c.task)
    .bind(&c.task_version)
    .bind(&c.status)
    .bind(&c.attempts)
    .bind(&c.inputs)
    .bind(&c.outputs)
    .bind(&c.error)
    .bind(&c.cached_from)
    .bind(&c.started_at)
    .bind(&c.finished_at)
    .bind(&c.next_attempt_at)
    .bind(&c.handle)
    .execute(conn)
    .await
    .map_err(query_error("inserting an execution's nodes"))?;
    Ok(())
}

async fn read_execution(
    conn: &mut PgConnection,
    id: &str,
    doing: &'static str,
) -> Result<Option<Execution>, Error> {
    let row: Option<sql::ExecutionRow> = sqlx::query_as(&format!(
        "SELECT {} FROM executions WHERE id = $1",
        sql::EXECUTION_COLUMNS
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(query_error(doing))?;
    row.map(|row| row.into_execution(doing)).transpose()
}

/// The columns of many nodes, one array each, for `UNNEST`.
#[derive(Default)]
struct NodeColumns<'a> {
    node: Vec<&'a str>,
    task: Vec<&'a str>,
    task_version: Vec<&'a str>,
    status: Vec<&'static str>,
    attempts: Vec<i32>,
    inputs: Vec<Option<Json<&'a Value>>>,
    outputs: Vec<Option<Json<&'a Value>>>,
    error: Vec<Option<&'a str>>,
    cached_from: Vec<Option<&'a str>>,
    started_at: Vec<Option<DateTime<Utc>>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
    next_attempt_at: Vec<Option<DateTime<Utc>>>,
    handle: Vec<Option<Json<&'a Value>>>,
}

impl<'a> NodeColumns<'a> {
    fn push(&mut self, node: &'a NodeState) {
        self.node.push(&node.node);
        self.task.push(&node.task);
        self.task_version.push(node.task_version.as_str());
        self.status.push(node.status.as_str());
        self.attempts.push(sql::attempts_column(node));
        self.inputs.push(node.inputs.as_ref().map(Json));
        self.outputs.push(node.outputs.as_ref().map(Json));
        self.error.push(node.error.as_deref());
        self.cached_from.push(node.cached_from.as_deref());
        self.started_at.push(node.started_at);
        self.finished_at.push(node.finished_at);
        self.next_attempt_at.push(node.next_attempt_at);
        self.handle.push(node.handle.as_ref().map(Json));
    }
}

/// The columns of many lineage edges, one array each, for `UNNEST`.
#[derive(Default)]
struct LineageColumns<'a> {
    execution: Vec<&'a str>,
    node: Vec<&'a str>,
    direction: Vec<&'static str>,
    name: Vec<&'a str>,
    digest: Vec<&'a str>,
    task: Vec<&'a str>,
    task_version: Vec<&'a str>,
    commit: Vec<&'a str>,
    at: Vec<DateTime<Utc>>,
}

impl<'a> LineageColumns<'a> {
    fn push(&mut self, edge: &'a LineageEdge) {
        self.execution.push(&edge.execution);
        self.node.push(&edge.node);
        self.direction.push(sql::direction_column(edge.direction));
        self.name.push(&edge.name);
        self.digest.push(edge.digest.as_str());
        self.task.push(&edge.task);
        self.task_version.push(edge.task_version.as_str());
        self.commit.push(&edge.commit.0);
        self.at.push(edge.at);
    }
}
