//! Preview runs (`weir run NAME --ref REV`): an execution of the
//! definitions exactly as they are at one commit of a source's repository
//! (a pull request's head, say), not of the active set.
//!
//! The commit's versions are registered, inactive, before an execution is
//! created (`Store::register_inactive`); here, creating resolves every
//! name against that commit's versions instead of the active ones, so the
//! compile path is the one of every other execution. Nothing here writes
//! the active set or a schedule: a preview is invisible to the scheduler.
//! The execution records the previewed commit and exactly the versions it
//! ran (I5), with trigger `preview`.

use super::create::{Error, active, registered};
use crate::spec::Kind;
use crate::store::{ActiveSet, CommitId, SourceKey, Store, VersionRecord};

/// The trigger of a preview run's execution.
pub const TRIGGER: &str = "preview";

/// The commit a preview runs, and the version of every entity of its tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// The source whose repository holds the commit (the one `sync` or
    /// `serve` recorded).
    pub source: SourceKey,
    pub commit: CommitId,
    /// Every entity defined at the commit, with its version (each one
    /// registered already).
    pub versions: ActiveSet,
}

/// The versions named `name` of `kind` that an execution may run: those of
/// the previewed commit when there is one, else the active ones (one per
/// project, either way).
pub(super) async fn versions(
    store: &dyn Store,
    preview: Option<&Preview>,
    kind: Kind,
    name: &str,
    project: Option<&str>,
) -> Result<Vec<VersionRecord>, Error> {
    let Some(preview) = preview else {
        return active(store, kind, name, project).await;
    };
    Ok(registered(store, kind, name, project)
        .await?
        .into_iter()
        .filter(|v| preview.versions.get(&v.key.entity) == Some(&v.key.digest))
        .collect())
}
