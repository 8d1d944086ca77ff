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

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::types::Json;

use super::sql::{self, query_error};
use super::{
    ActiveSet, AuditEntry, Changes, CommitInfo, Error, SourceError, SourceKey, SourceStatus, Store,
    StoreFuture, VersionFilter, VersionKey, VersionRecord,
};
use crate::spec::EntityRef;

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
    pub async fn open(url: &str) -> Result<PgStore, Error> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .map_err(|source| Error::Connect {
                url: url.to_owned(),
                source,
            })?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|source| Error::Migrate {
                url: url.to_owned(),
                source,
            })?;
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
        insert_versions(&mut tx, changes, at).await?;
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
            "SELECT project, kind, name, digest, id, commit_sha FROM activations \
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
    changes: &Changes,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let versions = sql::new_versions(changes);
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
    .bind(&changes.commit.id.0)
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
