//! [`Store`] on SQL: commits, versions, activations, active sets, sources
//! and the audit log.
//!
//! [`Store::apply`] writes a commit's changes in one write transaction, the
//! source's row first (after its compare-and-swap), so every later row can
//! reference it and a reader sees the old active set or the new one (I2).
//! Versions are only inserted (`ON CONFLICT DO NOTHING`), never updated
//! (I1). Bulk writes are multi-row `INSERT`s of at most
//! [`rows_per_statement`] rows, so 10,000 new versions cost a handful of
//! statements.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::rows::{self, ActivationRow, ActiveVersionRow, AuditRow, KeyRow, SourceRow, VersionRow};
use super::statement::{Built, Param, Statement, rows_per_statement};
use super::{Dialect, One, SqlStore, commit};
use crate::spec::{CommitId, Digest, EntityRef, Kind, SourceKey};
use crate::store::{
    ActiveSet, ActiveVersion, AuditEntry, Changes, CommitInfo, Error, NewVersion, SourceError,
    SourceStatus, Store, StoreFuture, VersionFilter, VersionKey, VersionRecord,
};

impl<D: Dialect> SqlStore<D> {
    /// The steps of [`Store::apply`], in one transaction; the source's row
    /// is written first so that every later row can reference it.
    async fn apply_changes(&self, changes: &Changes, at: DateTime<Utc>) -> Result<(), Error> {
        let mut tx = self.begin_write("starting to apply a commit").await?;
        Self::check_previous(&mut tx, changes).await?;
        Self::insert_commit(&mut tx, &changes.commit).await?;
        Self::mark_reconciled(&mut tx, changes, at).await?;
        Self::insert_versions(&mut tx, &changes.commit.id, &changes.registered, at).await?;
        Self::insert_activations(&mut tx, changes, at).await?;
        Self::replace_active(&mut tx, changes).await?;
        if !changes.is_empty() {
            let details = rows::audit_details(changes);
            let (source, commit_info) = (&changes.source.0, &changes.commit);
            Self::insert_audit(&mut tx, at, source, commit_info, "reconciled", &details).await?;
        }
        commit(tx, "committing a commit's changes").await
    }

    /// The steps of [`Store::register_inactive`], in one transaction.
    async fn register_only(
        &self,
        commit_info: &CommitInfo,
        versions: &[NewVersion],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_write("starting to register a preview").await?;
        Self::insert_commit(&mut tx, commit_info).await?;
        Self::insert_versions(&mut tx, &commit_info.id, versions, at).await?;
        commit(tx, "committing a preview's versions").await
    }

    async fn record_unreadable(
        &self,
        source: &SourceKey,
        error: &SourceError,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let statement = Statement::new(
            "INSERT INTO sources (key, last_attempted_at, error) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET last_attempted_at = excluded.last_attempted_at, \
             error = excluded.error",
        )
        .bind(&source.0)
        .bind(at)
        .bind(Param::json(&rows::error_json(error)));
        self.run("recording that the source could not be read", statement)
            .await?;
        Ok(())
    }

    async fn record(
        &self,
        source: &SourceKey,
        commit_info: &CommitInfo,
        error: &SourceError,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let error = rows::error_json(error);
        let mut tx = self
            .begin_write("starting to record a refused commit")
            .await?;
        Self::insert_commit(&mut tx, commit_info).await?;
        let statement = Statement::new(
            "INSERT INTO sources (key, last_attempted, last_attempted_at, error) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET last_attempted = excluded.last_attempted, \
             last_attempted_at = excluded.last_attempted_at, error = excluded.error",
        )
        .bind(&source.0)
        .bind(&commit_info.id.0)
        .bind(at)
        .bind(Param::json(&error));
        D::execute(&mut tx, "recording the source's refused commit", statement).await?;
        Self::insert_audit(&mut tx, at, &source.0, commit_info, "rejected", &error).await?;
        commit(tx, "committing a refused commit").await
    }

    async fn read_active(&self, source: &SourceKey) -> Result<ActiveSet, Error> {
        const DOING: &str = "reading an active set";
        let rows: Vec<KeyRow> = self
            .read(
                DOING,
                Statement::new("SELECT project, kind, name, digest FROM active WHERE source = $1")
                    .bind(&source.0),
            )
            .await?;
        rows::active_set(rows, DOING)
    }

    async fn owned_elsewhere(
        &self,
        source: &SourceKey,
    ) -> Result<Vec<(EntityRef, SourceKey)>, Error> {
        const DOING: &str = "reading other sources' active entities";
        let rows: Vec<(String, String, String, String)> = self
            .read(
                DOING,
                Statement::new("SELECT project, kind, name, source FROM active WHERE source <> $1")
                    .bind(&source.0),
            )
            .await?;
        rows::owned_entities(rows, DOING)
    }

    async fn known(&self, keys: &[VersionKey]) -> Result<HashSet<VersionKey>, Error> {
        const DOING: &str = "looking up known versions";
        let mut known = HashSet::new();
        if keys.is_empty() {
            return Ok(known);
        }
        let mut tx = self.begin_read(DOING).await?;
        for chunk in keys.chunks(rows_per_statement::<D>(4, 0)) {
            let mut select = Statement::built::<D>("WITH k (project, kind, name, digest) AS (");
            select.push_values(chunk, |key| {
                [
                    key.entity.project.as_str().into(),
                    key.entity.kind.as_str().into(),
                    key.entity.name.as_str().into(),
                    key.digest.as_str().into(),
                ]
            });
            select.push(
                ") SELECT v.project, v.kind, v.name, v.digest FROM versions v JOIN k \
                 ON v.project = k.project AND v.kind = k.kind AND v.name = k.name \
                 AND v.digest = k.digest",
            );
            let rows: Vec<KeyRow> = D::fetch_all(&mut tx, DOING, select).await?;
            for row in rows {
                known.insert(row.into_key(DOING)?);
            }
        }
        commit(tx, DOING).await?;
        Ok(known)
    }

    async fn list_versions(&self, filter: &VersionFilter) -> Result<Vec<VersionRecord>, Error> {
        const DOING: &str = "listing versions";
        /// Only the filters that are set, so an index serves each.
        fn filtered<'q>(statement: &mut Statement<'q, Built>, filter: &'q VersionFilter) {
            statement
                .filter("kind", filter.kind.map(Kind::as_str))
                .filter("name", filter.name.as_deref())
                .filter("project", filter.project.as_deref());
        }
        let mut versions = Statement::built::<D>(
            "SELECT v.project, v.kind, v.name, v.digest, v.first_commit, v.path, \
             v.registered_at, EXISTS (SELECT 1 FROM active a WHERE a.project = v.project \
             AND a.kind = v.kind AND a.name = v.name AND a.digest = v.digest) AS active \
             FROM versions v",
        );
        filtered(&mut versions, filter);
        versions.push(&format!(
            " ORDER BY v.registered_at DESC, v.project{b}, v.kind, v.name{b}, v.digest",
            b = D::BYTEWISE
        ));
        let mut activations = Statement::built::<D>(
            "SELECT project, kind, name, digest, id, commit_sha, at FROM activations",
        );
        filtered(&mut activations, filter);
        activations.push(" ORDER BY id");
        // One snapshot for both queries, so activations match the versions.
        let mut tx = self.begin_read(DOING).await?;
        let rows: Vec<VersionRow> = D::fetch_all(&mut tx, DOING, versions).await?;
        let activations: Vec<ActivationRow> = D::fetch_all(&mut tx, DOING, activations).await?;
        commit(tx, DOING).await?;
        rows::version_records(rows, activations, DOING)
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
        let order = format!(
            " ORDER BY v.registered_at DESC, v.project{b}, v.digest, a.source{b}",
            b = D::BYTEWISE
        );
        let statement = match project {
            Some(project) => Statement::new(format!(
                "SELECT a.source, v.project, v.kind, v.name, v.digest, v.first_commit, \
                 v.document FROM active a JOIN versions v ON v.project = a.project \
                 AND v.kind = a.kind AND v.name = a.name AND v.digest = a.digest \
                 WHERE a.project = $1 AND a.kind = $2 AND a.name = $3{order}"
            ))
            .bind(project),
            None => Statement::new(format!(
                "SELECT a.source, v.project, v.kind, v.name, v.digest, v.first_commit, \
                 v.document FROM versions v JOIN active a ON a.project = v.project \
                 AND a.kind = v.kind AND a.name = v.name AND a.digest = v.digest \
                 WHERE v.kind = $1 AND v.name = $2{order}"
            )),
        };
        let rows: Vec<ActiveVersionRow> = self
            .read(DOING, statement.bind(kind.as_str()).bind(name))
            .await?;
        rows::active_versions(rows, DOING)
    }

    async fn document(&self, key: &VersionKey) -> Result<Option<Value>, Error> {
        let document: Option<One<Json<Value>>> = self
            .read_optional(
                "reading a version's document",
                Statement::new(
                    "SELECT document FROM versions \
                     WHERE project = $1 AND kind = $2 AND name = $3 AND digest = $4",
                )
                .bind(&key.entity.project)
                .bind(key.entity.kind.as_str())
                .bind(&key.entity.name)
                .bind(key.digest.as_str()),
            )
            .await?;
        Ok(document.map(|(Json(value),)| value))
    }

    async fn list_sources(&self) -> Result<Vec<SourceStatus>, Error> {
        const DOING: &str = "listing sources";
        let rows: Vec<SourceRow> = self
            .read(
                DOING,
                Statement::new(format!(
                    "SELECT key, last_reconciled, last_reconciled_at, last_attempted, \
                     last_attempted_at, error FROM sources ORDER BY key{}",
                    D::BYTEWISE
                )),
            )
            .await?;
        rows.into_iter().map(|row| row.into_status(DOING)).collect()
    }

    async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, Error> {
        let rows: Vec<AuditRow> = self
            .read(
                "reading the audit log",
                Statement::new(
                    "SELECT id, at, source, commit_sha, actor_name, actor_email, action, \
                     details FROM audit ORDER BY id DESC LIMIT $1",
                )
                .bind(i64::from(limit)),
            )
            .await?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    // ------------------------------------------------- steps of a write

    /// Refuses a plan made against another last reconciled commit than the
    /// stored one (compare-and-swap on the source's row, inside the write
    /// transaction, after the source's lock where the dialect takes one).
    async fn check_previous(conn: &mut D::Connection, changes: &Changes) -> Result<(), Error> {
        if let Some(lock) = D::LOCK_SOURCE {
            // Serialize writers of one source, even before its row exists.
            let statement = Statement::new(lock).bind(&changes.source.0);
            D::execute(conn, "locking the source", statement).await?;
        }
        let found: Option<One<Option<String>>> = D::fetch_optional(
            conn,
            "reading the source's last reconciled commit",
            Statement::new("SELECT last_reconciled FROM sources WHERE key = $1")
                .bind(&changes.source.0),
        )
        .await?;
        let found = found.and_then(|(commit,)| commit);
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

    async fn insert_commit(
        conn: &mut D::Connection,
        commit_info: &CommitInfo,
    ) -> Result<(), Error> {
        let statement = Statement::new(
            "INSERT INTO commits (sha, author_name, author_email, committer_name, \
             committer_email, time, message) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (sha) DO NOTHING",
        )
        .bind(&commit_info.id.0)
        .bind(&commit_info.author.name)
        .bind(&commit_info.author.email)
        .bind(&commit_info.committer.name)
        .bind(&commit_info.committer.email)
        .bind(commit_info.time)
        .bind(&commit_info.message);
        D::execute(conn, "recording a commit", statement).await?;
        Ok(())
    }

    /// Source status after a valid commit: reconciled = attempted = it, no
    /// error.
    async fn mark_reconciled(
        conn: &mut D::Connection,
        changes: &Changes,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        let statement = Statement::new(
            "INSERT INTO sources (key, last_reconciled, last_reconciled_at, last_attempted, \
             last_attempted_at, error) VALUES ($1, $2, $3, $2, $3, NULL) \
             ON CONFLICT (key) DO UPDATE SET last_reconciled = excluded.last_reconciled, \
             last_reconciled_at = excluded.last_reconciled_at, \
             last_attempted = excluded.last_attempted, \
             last_attempted_at = excluded.last_attempted_at, error = NULL",
        )
        .bind(&changes.source.0)
        .bind(&changes.commit.id.0)
        .bind(at);
        D::execute(conn, "recording the source's reconciled commit", statement).await?;
        Ok(())
    }

    /// Inserts new versions, in key order; a version that exists stays as
    /// it is (I1).
    async fn insert_versions(
        conn: &mut D::Connection,
        commit_id: &CommitId,
        registered: &[NewVersion],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        let commit_id = commit_id.0.as_str();
        for chunk in rows::new_versions(registered).chunks(rows_per_statement::<D>(9, 0)) {
            let mut insert = Statement::built::<D>(
                "INSERT INTO versions (project, kind, name, digest, spec, document, path, \
                 first_commit, registered_at) ",
            );
            insert.push_values(chunk, |v| {
                [
                    v.key.entity.project.as_str().into(),
                    v.key.entity.kind.as_str().into(),
                    v.key.entity.name.as_str().into(),
                    v.key.digest.as_str().into(),
                    Param::json(&v.spec),
                    Param::json(&v.document),
                    v.path.as_str().into(),
                    commit_id.into(),
                    at.into(),
                ]
            });
            insert.push(" ON CONFLICT DO NOTHING");
            D::execute(conn, "inserting new versions", insert).await?;
        }
        Ok(())
    }

    /// One activation record per activated, updated, reactivated or only
    /// registered version, numbered in that order.
    async fn insert_activations(
        conn: &mut D::Connection,
        changes: &Changes,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        let (source, commit_id) = (changes.source.0.as_str(), changes.commit.id.0.as_str());
        for chunk in rows::new_activations(changes).chunks(rows_per_statement::<D>(8, 0)) {
            let mut insert = Statement::built::<D>(
                "INSERT INTO activations (project, kind, name, digest, source, commit_sha, at, \
                 change) ",
            );
            insert.push_values(chunk, |a| {
                [
                    a.key.entity.project.as_str().into(),
                    a.key.entity.kind.as_str().into(),
                    a.key.entity.name.as_str().into(),
                    a.key.digest.as_str().into(),
                    source.into(),
                    commit_id.into(),
                    at.into(),
                    a.change.into(),
                ]
            });
            D::execute(conn, "recording activations", insert).await?;
        }
        Ok(())
    }

    async fn insert_audit(
        conn: &mut D::Connection,
        at: chrono::DateTime<chrono::Utc>,
        source: &str,
        commit_info: &CommitInfo,
        action: &str,
        details: &Value,
    ) -> Result<(), Error> {
        let statement = Statement::new(
            "INSERT INTO audit (at, source, commit_sha, actor_name, actor_email, action, \
             details) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(at)
        .bind(source)
        .bind(&commit_info.id.0)
        .bind(&commit_info.author.name)
        .bind(&commit_info.author.email)
        .bind(action)
        .bind(Param::json(details));
        D::execute(conn, "writing an audit entry", statement).await?;
        Ok(())
    }

    /// Makes the source's rows in `active` equal `changes.active` exactly
    /// (I2), writing only what differs from the stored set. The write
    /// transaction serializes the source's writers, so the stored set is
    /// the one planned against.
    async fn replace_active(conn: &mut D::Connection, changes: &Changes) -> Result<(), Error> {
        let source = changes.source.0.as_str();
        let diff = rows::active_diff(changes);
        for chunk in diff.removed.chunks(rows_per_statement::<D>(3, 1)) {
            let mut delete = Statement::built::<D>("DELETE FROM active WHERE source = ");
            delete.push_bind(source);
            delete.push(" AND (project, kind, name) IN (");
            delete.push_values(chunk, |entity| {
                [
                    entity.project.as_str().into(),
                    entity.kind.as_str().into(),
                    entity.name.as_str().into(),
                ]
            });
            delete.push(")");
            D::execute(conn, "removing entities from the active set", delete).await?;
        }
        for chunk in diff.upserted.chunks(rows_per_statement::<D>(5, 0)) {
            let mut upsert =
                Statement::built::<D>("INSERT INTO active (source, project, kind, name, digest) ");
            upsert.push_values(chunk, |(entity, digest): &(&EntityRef, &Digest)| {
                [
                    source.into(),
                    entity.project.as_str().into(),
                    entity.kind.as_str().into(),
                    entity.name.as_str().into(),
                    digest.as_str().into(),
                ]
            });
            upsert.push(
                " ON CONFLICT (source, project, kind, name) DO UPDATE SET digest = excluded.digest",
            );
            D::execute(conn, "writing the active set", upsert).await?;
        }
        Ok(())
    }
}

impl<D: Dialect> Store for SqlStore<D> {
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.run("pinging the store", Statement::new("SELECT 1"))
                .await?;
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

    fn apply<'a>(&'a self, changes: &'a Changes, at: DateTime<Utc>) -> StoreFuture<'a, ()> {
        Box::pin(self.apply_changes(changes, at))
    }

    fn register_inactive<'a>(
        &'a self,
        commit: &'a CommitInfo,
        versions: &'a [NewVersion],
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.register_only(commit, versions, at))
    }

    fn record_failure<'a>(
        &'a self,
        source: &'a SourceKey,
        commit: &'a CommitInfo,
        error: &'a SourceError,
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.record(source, commit, error, at))
    }

    fn active_in_other_sources<'a>(
        &'a self,
        source: &'a SourceKey,
    ) -> StoreFuture<'a, Vec<(EntityRef, SourceKey)>> {
        Box::pin(self.owned_elsewhere(source))
    }

    fn record_source_error<'a>(
        &'a self,
        source: &'a SourceKey,
        error: &'a SourceError,
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.record_unreadable(source, error, at))
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
