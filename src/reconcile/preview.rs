//! A preview of one commit (`weir run NAME --ref REV`): the reconcile
//! steps fetch → load → validate → register, without activate.
//!
//! The commit may be any commit, branch or tag of the source's repository
//! (a pull request's head). Its whole tree is validated; an invalid tree is
//! refused and nothing is written. A valid one has its versions registered
//! inactive (`Store::register_inactive`): a digest that exists is a no-op
//! (I1), and the active set, the source's status, the audit log and the
//! schedules are untouched, so I2 and I3 hold whatever is previewed.

use chrono::{DateTime, Utc};

use super::{Error, Options};
use crate::engine::create::Preview;
use crate::registry;
use crate::source::git::GitSource;
use crate::store::{CommitInfo, Store, VersionKey};
use crate::validate::{self, Report};

/// A commit read and validated for a preview, not yet registered.
pub struct Previewed {
    pub commit: CommitInfo,
    /// The source's folder inside the repository, with a trailing `/` (or
    /// empty): diagnostics are shown with repository paths.
    pub prefix: String,
    pub report: Report,
}

/// Steps fetch, load and validate of `revision` (blocking Git work, no
/// store access). A remote source's clone first fetches `revision` as a
/// branch, when it names one.
pub fn load(source: &GitSource, revision: &str, options: &Options) -> Result<Previewed, Error> {
    source.fetch()?;
    if let Err(e) = source.fetch_branch(revision) {
        // A commit id or a tag is not a branch: resolving says if it exists.
        tracing::debug!(revision, error = %e, "the revision is not a remote branch");
    }
    let commit = source.resolve(revision)?;
    let tree = source.read_tree(&commit.id, options.max_file_size)?;
    let report = validate::validate(tree, &options.validate);
    let folder = source.spec().path.trim_matches('/');
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{folder}/")
    };
    Ok(Previewed {
        commit,
        prefix,
        report,
    })
}

/// Step register, inactive: the versions of a valid preview that the store
/// does not know yet are inserted; returns what creating its execution
/// resolves against. `None` when the tree is invalid (nothing is written).
/// New versions are registered `now`.
pub async fn register(
    store: &dyn Store,
    source: &GitSource,
    previewed: &Previewed,
    now: DateTime<Utc>,
) -> Result<Option<Preview>, Error> {
    if !previewed.report.is_valid() {
        return Ok(None);
    }
    let keys = registry::version_keys(&previewed.report.entities);
    let known = store.known_versions(&keys).await?;
    let new: Vec<_> = previewed
        .report
        .entities
        .iter()
        .filter_map(|entity| {
            let key = VersionKey {
                entity: entity.id.clone(),
                digest: entity.digest.clone()?,
            };
            (!known.contains(&key)).then(|| registry::new_version(key, entity))
        })
        .collect();
    store
        .register_inactive(&previewed.commit, &new, now)
        .await?;
    tracing::info!(
        source = %source.key().0,
        commit = %previewed.commit.id,
        registered = new.len(),
        "preview registered (inactive)"
    );
    Ok(Some(Preview {
        source: source.key(),
        commit: previewed.commit.id.clone(),
        versions: keys.into_iter().map(|k| (k.entity, k.digest)).collect(),
    }))
}
