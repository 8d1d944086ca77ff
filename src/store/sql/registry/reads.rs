//! The reads of [`Store`](crate::store::Store) on SQL: active sets, known
//! versions, versions with their activations, documents, sources and the
//! audit log. A read of several statements takes one snapshot.

use std::collections::HashSet;

use serde_json::Value;
use sqlx::types::Json;

use crate::spec::{CommitId, EntityRef, Kind, SourceKey};
use crate::store::sql::rows::{
    self, ActivationRow, ActiveVersionRow, AuditRow, CommitRow, KeyRow, SourceRow, VersionRow,
};
use crate::store::sql::statement::{Built, Statement, rows_per_statement};
use crate::store::sql::{Dialect, One, SqlStore, commit};
use crate::store::{
    ActiveSet, ActiveVersion, AuditEntry, CommitInfo, Error, SourceStatus, VersionFilter,
    VersionKey, VersionRecord,
};

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn read_active(&self, source: &SourceKey) -> Result<ActiveSet, Error> {
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

    pub(super) async fn owned_elsewhere(
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

    pub(super) async fn known(&self, keys: &[VersionKey]) -> Result<HashSet<VersionKey>, Error> {
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

    pub(super) async fn list_versions(
        &self,
        filter: &VersionFilter,
    ) -> Result<Vec<VersionRecord>, Error> {
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

    pub(super) async fn list_active_versions(
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

    pub(super) async fn list_active_versions_of(
        &self,
        project: &str,
        names: &[(Kind, &str)],
    ) -> Result<Vec<ActiveVersion>, Error> {
        const DOING: &str = "reading the active versions of names";
        let mut found = Vec::new();
        // The names drive the join, so that each is one lookup of
        // `active_by_version`'s whole key (a condition per name lets
        // SQLite's planner scan the project's whole kind instead).
        for chunk in names.chunks(rows_per_statement::<D>(2, 1)) {
            let mut statement = Statement::built::<D>("WITH wanted (kind, name) AS (");
            statement
                .push_values(chunk, |(kind, name)| [kind.as_str().into(), (*name).into()])
                .push(
                    ") SELECT a.source, v.project, v.kind, v.name, v.digest, v.first_commit, \
                     v.document FROM wanted w JOIN active a ON a.kind = w.kind \
                     AND a.name = w.name AND a.project = ",
                )
                .push_bind(project)
                .push(&format!(
                    " JOIN versions v ON v.project = a.project AND v.kind = a.kind \
                     AND v.name = a.name AND v.digest = a.digest \
                     ORDER BY v.kind, v.name{b}, v.registered_at DESC, v.digest, a.source{b}",
                    b = D::BYTEWISE
                ));
            let rows: Vec<ActiveVersionRow> = self.read(DOING, statement).await?;
            found.extend(rows::active_versions(rows, DOING)?);
        }
        Ok(found)
    }

    pub(super) async fn document(&self, key: &VersionKey) -> Result<Option<Value>, Error> {
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

    pub(super) async fn find_commits(&self, ids: &[CommitId]) -> Result<Vec<CommitInfo>, Error> {
        const DOING: &str = "reading commits";
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(rows_per_statement::<D>(1, 0)) {
            let mut select = Statement::built::<D>(
                "SELECT sha, author_name, author_email, committer_name, committer_email, time, \
                 message FROM commits WHERE sha IN ",
            );
            select.push_tuple(chunk.iter().map(|id| id.0.as_str().into()));
            let rows: Vec<CommitRow> = self.read(DOING, select).await?;
            found.extend(rows.into_iter().map(CommitRow::into_info));
        }
        Ok(found)
    }

    pub(super) async fn list_sources(&self) -> Result<Vec<SourceStatus>, Error> {
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

    pub(super) async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, Error> {
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
}
