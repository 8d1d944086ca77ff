//! The writes of [`Store`](crate::store::Store) on SQL, each one
//! transaction: a commit's changes ([`Store::apply`](crate::store::Store::apply)),
//! a preview's versions, a refused commit, an unreadable source; and the
//! steps they are made of.
//!
//! `apply` writes the source's row first (after its compare-and-swap), so
//! every later row can reference it and a reader sees the old active set or
//! the new one (I2). Versions are only inserted (`ON CONFLICT DO NOTHING`),
//! never updated (I1). Bulk writes are multi-row `INSERT`s of at most
//! [`rows_per_statement`] rows, so 10,000 new versions cost a handful of
//! statements. Every time written is the caller's `at`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::spec::{CommitId, Digest, EntityRef, SourceKey};
use crate::store::sql::rows;
use crate::store::sql::statement::{Param, Statement, rows_per_statement};
use crate::store::sql::{Dialect, One, SqlStore, commit};
use crate::store::{Changes, CommitInfo, Error, NewVersion, SourceError};

impl<D: Dialect> SqlStore<D> {
    /// The steps of [`Store::apply`], in one transaction; the source's row
    /// is written first so that every later row can reference it.
    pub(super) async fn apply_changes(
        &self,
        changes: &Changes,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
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
    pub(super) async fn register_only(
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

    pub(super) async fn record_unreadable(
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

    pub(super) async fn record(
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
                    Param::json_text(&v.spec),
                    Param::json_text(&v.document),
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
