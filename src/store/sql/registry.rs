//! [`Store`] on SQL: commits, versions, activations, active sets, sources
//! and the audit log. The statements are in `writes.rs` (a commit's
//! changes in one write transaction, I1 and I2) and `reads.rs`; this file
//! joins them to the trait.

mod reads;
mod writes;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::statement::Statement;
use super::{Dialect, SqlStore};
use crate::spec::{CommitId, EntityRef, Kind, SourceKey};
use crate::store::{
    ActiveSet, ActiveVersion, AuditEntry, Changes, CommitInfo, NewVersion, Pause, SourceError,
    SourceStatus, Store, StoreFuture, VersionFilter, VersionKey, VersionRecord,
};

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

    fn active_versions_of<'a>(
        &'a self,
        project: &'a str,
        names: &'a [(Kind, &'a str)],
    ) -> StoreFuture<'a, Vec<ActiveVersion>> {
        Box::pin(self.list_active_versions_of(project, names))
    }

    fn version_document<'a>(&'a self, key: &'a VersionKey) -> StoreFuture<'a, Option<Value>> {
        Box::pin(self.document(key))
    }

    fn commits<'a>(&'a self, ids: &'a [CommitId]) -> StoreFuture<'a, Vec<CommitInfo>> {
        Box::pin(self.find_commits(ids))
    }

    fn sources(&self) -> StoreFuture<'_, Vec<SourceStatus>> {
        Box::pin(self.list_sources())
    }

    fn audit(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(self.list_audit(limit))
    }

    fn set_pause<'a>(&'a self, pause: &'a Pause) -> StoreFuture<'a, bool> {
        Box::pin(self.write_pause(pause))
    }

    fn pauses(&self) -> StoreFuture<'_, Vec<Pause>> {
        Box::pin(self.list_pauses())
    }
}
