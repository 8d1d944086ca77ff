//! One reconcile pass of one source, as a fixed sequence of named steps
//! (like Flux's source-controller): fetch → verify → load → validate →
//! register.
//!
//! What each step records when it fails:
//! - fetch / load (Git unreachable, branch or path missing): returns
//!   [`Error::Source`]; nothing is written, the last good active set keeps
//!   running.
//! - verify (only with trusted keys): a head not signed by a trusted key is
//!   refused unread ([`Outcome::Untrusted`]); the status and the audit log
//!   record why (`UnsignedCommit`, `UntrustedSigner`, …) and which keys
//!   were expected; the active set is untouched.
//! - validate: the commit is refused; the source's status and the audit log
//!   record `ValidationFailed` with the diagnostics; the active set is
//!   untouched (I3). This is an [`Outcome`], not an error: the pass worked.
//! - register: `registry::plan` decides, the store applies in one
//!   transaction (I1, I2); a store error leaves the previous state intact.

pub mod preview;
pub mod rollback;
pub mod snapshot;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

pub use snapshot::Snapshot;

use crate::registry;
use crate::source::git::GitSource;
use crate::source::verify::{Refusal, TrustedKeys};
use crate::spec::{CommitId, SourceKey};
use crate::store::{ActiveSet, Changes, CommitInfo, SourceError, Store};
use crate::validate::{self, Report};

/// Settings of a reconcile pass.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_file_size: u64,
    pub validate: validate::Options,
    /// When set, a head commit must be signed by one of these keys.
    pub trusted_keys: Option<Arc<TrustedKeys>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_file_size: crate::source::dir::DEFAULT_MAX_FILE_SIZE,
            validate: validate::Options::default(),
            trusted_keys: None,
        }
    }
}

/// A commit read and validated, not yet registered.
pub struct Loaded {
    pub source: SourceKey,
    /// The source's folder inside the repository, with a trailing `/` (or
    /// empty): diagnostics are stored with repository paths.
    pub prefix: String,
    pub commit: CommitInfo,
    /// Findings, and the entities that were parsed: all of them, or, when
    /// loaded against a snapshot, those of changed files and what they
    /// affect.
    pub report: Report,
    /// Every entity of a valid commit with its version (empty otherwise).
    pub active: ActiveSet,
    /// What to keep for the next pass, once this one is applied (valid
    /// commits only).
    pub snapshot: Option<Snapshot>,
    /// The commit of the snapshot this was loaded against: it must still be
    /// the store's last reconciled commit when registering.
    pub base: Option<CommitId>,
    /// The snapshot's active set. While its commit is the store's last
    /// reconciled commit, it is the store's active set (the store writes
    /// both together, under compare-and-swap), so registering need not read
    /// it back.
    pub base_active: Option<ActiveSet>,
    /// Trusted keys are configured and the head is not signed by one: its
    /// tree was not read and it is refused.
    pub untrusted: Option<Refusal>,
}

impl Loaded {
    /// Whether the whole tree of the commit was read and validated (no
    /// snapshot to load against, or a change that needed it all), rather
    /// than only what changed, or nothing (an untrusted head).
    pub fn read_whole_tree(&self) -> bool {
        self.base.is_none() && self.untrusted.is_none()
    }
}

/// What a pass did.
pub enum Outcome {
    /// The head was valid; `changes` were applied (possibly none).
    Reconciled {
        commit: CommitInfo,
        changes: Box<Changes>,
        /// To keep for the next pass ([`Snapshot::write`]).
        snapshot: Option<Box<Snapshot>>,
    },
    /// The head was invalid and refused; the previous active set stays.
    Rejected {
        commit: CommitInfo,
        report: Box<Report>,
    },
    /// The head is not signed by a trusted key and was refused unread; the
    /// previous active set stays.
    Untrusted {
        commit: CommitInfo,
        refusal: Refusal,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Source(#[from] crate::source::git::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The snapshot a load was based on is not the store's state any more
    /// (another process reconciled, or the store was replaced): load again
    /// without it.
    #[error(
        "the source's snapshot is of commit {snapshot}, the store's last reconciled commit is {store}"
    )]
    StaleSnapshot { snapshot: String, store: String },
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Source(e) => e.metric_label(),
            Error::Store(e) => e.metric_label(),
            Error::StaleSnapshot { .. } => "StaleSnapshot",
        }
    }
}

/// Steps fetch, load and validate (blocking Git work, no store access).
///
/// With `base`, the snapshot of the store's last reconciled commit, only
/// what changed since is read and checked (see [`snapshot`]); without it,
/// or when the change needs it, the whole tree is.
pub fn load(
    source: &GitSource,
    options: &Options,
    base: Option<&Snapshot>,
) -> Result<Loaded, Error> {
    source.fetch()?;
    let commit = source.head()?;
    let untrusted = match &options.trusted_keys {
        Some(keys) => verify_head(source, keys, &commit)?,
        None => None,
    };
    let folder = source.spec().path.trim_matches('/');
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{folder}/")
    };
    if untrusted.is_some() {
        return Ok(Loaded {
            source: source.key(),
            prefix,
            commit,
            report: Report::default(),
            active: ActiveSet::new(),
            snapshot: None,
            base: None,
            base_active: None,
            untrusted,
        });
    }
    if let Some(base) = base {
        if let Some(next) = snapshot::load_changes(source, base, &commit.id, options)? {
            return Ok(Loaded {
                source: source.key(),
                prefix,
                commit,
                report: next.report,
                active: next.active,
                snapshot: Some(next.snapshot),
                base: Some(base.commit.clone()),
                base_active: Some(base.active()),
                untrusted: None,
            });
        }
    }
    let tree = source.read_tree(&commit.id, options.max_file_size)?;
    let other_paths = tree.other_paths.clone();
    let followed_links = tree.followed_links;
    let report = validate::validate(tree, &options.validate);
    let (active, snapshot) = match source.folder_id(&commit.id)? {
        Some(folder) if report.is_valid() => (
            registry::version_keys(&report.entities)
                .into_iter()
                .map(|k| (k.entity, k.digest))
                .collect(),
            Some(Snapshot::of_report(
                &commit.id,
                folder,
                followed_links,
                other_paths,
                &report,
                options,
            )),
        ),
        _ => (ActiveSet::new(), None),
    };
    Ok(Loaded {
        source: source.key(),
        prefix,
        commit,
        report,
        active,
        snapshot,
        base: None,
        base_active: None,
        untrusted: None,
    })
}

/// Hands the memory a pass freed back to the system, measured to matter:
/// glibc keeps what threads other than the main one freed in their own
/// arenas, so a daemon that read a 10,000-definition tree once stayed at
/// its peak (about 360 MB) for its whole life; trimmed, it keeps what it
/// uses. Costs a walk over the allocator's free lists (milliseconds); a
/// no-op on other allocators and systems.
pub fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's
    // arenas; it touches no memory in use and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Caps the allocator's arenas at two before any thread starts, measured
/// to matter: glibc gives each thread that contends its own arena (up to
/// eight per core), and a first reconcile on the runtime's threads spread
/// its garbage over them, so the daemon on 10,000 definitions peaked at
/// 196 MB and idled at 130 MB; with two arenas, 138 MB and 124 MB (`cargo
/// bench --bench idle`), at no cost the benchmarks show. A no-op on other
/// allocators and systems.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tunable of the allocator; called
    // before other threads exist, it races with no allocation.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The refusal, when the head is not signed by a trusted key.
fn verify_head(
    source: &GitSource,
    keys: &TrustedKeys,
    commit: &CommitInfo,
) -> Result<Option<Refusal>, Error> {
    let oid = git2::Oid::from_str(&commit.id.0).map_err(|e| crate::source::git::Error::Git {
        doing: "read the head commit",
        source: e,
    })?;
    Ok(match keys.verify(source.repository(), oid) {
        Ok(signer) => {
            tracing::debug!(commit = %commit.id, signer = %signer.name, fingerprint = %signer.fingerprint, "commit signature verified");
            None
        }
        Err(refusal) => Some(refusal),
    })
}

/// Step register: refuse an invalid commit (I3) or apply a valid one. What
/// the store records (the source's status, registrations, the audit entry)
/// is stamped `now`, the caller's clock.
pub async fn register(
    store: &dyn Store,
    loaded: Loaded,
    now: DateTime<Utc>,
) -> Result<Outcome, Error> {
    let Loaded {
        source,
        prefix,
        commit,
        mut report,
        active,
        snapshot,
        base,
        base_active,
        untrusted,
    } = loaded;
    if let Some(refusal) = untrusted {
        let error = SourceError {
            reason: refusal.reason().to_owned(),
            message: refusal.to_string(),
            diagnostics: json!([]),
        };
        store.record_failure(&source, &commit, &error, now).await?;
        tracing::warn!(
            source = %source.0,
            commit = %commit.id,
            reason = %error.reason,
            "{}; the previous active set stays",
            error.message
        );
        return Ok(Outcome::Untrusted { commit, refusal });
    }
    if report.is_valid() {
        report
            .diagnostics
            .extend(claimed_elsewhere(store, &source, &report).await?);
    }
    if !report.is_valid() {
        let error = SourceError {
            reason: "ValidationFailed".to_owned(),
            message: format!(
                "commit {} is invalid: {} error(s)",
                commit.id.short(),
                report.error_count()
            ),
            diagnostics: json!(
                report
                    .diagnostics
                    .iter()
                    .map(|d| {
                        // With the line it points at: the console shows
                        // it without reading the repository.
                        let mut json = d.to_json(&prefix);
                        if let Some(snippet) = d.snippet(&report.sources) {
                            json["snippet"] = snippet.into();
                        }
                        json
                    })
                    .collect::<Vec<_>>()
            ),
        };
        store.record_failure(&source, &commit, &error, now).await?;
        tracing::warn!(
            source = %source.0,
            commit = %commit.id,
            reason = %error.reason,
            errors = report.error_count(),
            "commit refused; the previous active set stays"
        );
        return Ok(Outcome::Rejected {
            commit,
            report: Box::new(report),
        });
    }
    let previous = store
        .sources()
        .await?
        .into_iter()
        .find(|s| s.source == source)
        .and_then(|s| s.last_reconciled);
    let stale = |store: Option<&CommitId>| Error::StaleSnapshot {
        snapshot: base.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
        store: store.map(|c| c.0.clone()).unwrap_or_else(|| "none".into()),
    };
    if base.is_some() && base != previous {
        return Err(stale(previous.as_ref()));
    }
    let current = match base_active {
        Some(active) => active,
        None => store.active_set(&source).await?,
    };
    // Only versions that are not already active can be new or reactivated:
    // ask the store about those alone, so the cost follows what changed.
    let candidates: Vec<_> = active
        .iter()
        .filter(|(id, digest)| current.get(*id) != Some(*digest))
        .map(|(id, digest)| crate::store::VersionKey {
            entity: id.clone(),
            digest: digest.clone(),
        })
        .collect();
    let known = store.known_versions(&candidates).await?;
    let changes = registry::plan_active(
        &source,
        &commit,
        previous.as_ref(),
        &current,
        &known,
        &active,
        &report.entities,
    )
    .ok_or_else(|| stale(previous.as_ref()))?;
    // What was parsed is in `changes` now (each new version's spec and
    // document): free the rest before the store's transaction adds its own.
    drop((report, active, current, known, candidates));
    store.apply(&changes, now).await?;
    tracing::info!(
        source = %source.0,
        commit = %commit.id,
        registered = changes.registered.len(),
        reactivated = changes.reactivated.len(),
        deactivated = changes.deactivated.len(),
        active = changes.active.len(),
        "reconciled"
    );
    Ok(Outcome::Reconciled {
        commit,
        changes: Box::new(changes),
        snapshot: snapshot.map(Box::new),
    })
}

/// An identity may be defined by one source only: entities of this commit
/// that another source already has active are refused (W010), as Argo CD
/// warns about a resource shared by two applications.
async fn claimed_elsewhere(
    store: &dyn Store,
    source: &SourceKey,
    report: &Report,
) -> Result<Vec<crate::validate::Diagnostic>, Error> {
    let others = store.active_in_other_sources(source).await?;
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let owners: std::collections::HashMap<_, _> = others.into_iter().collect();
    Ok(report
        .entities
        .iter()
        .filter_map(|e| {
            let owner = owners.get(&e.id)?;
            Some(
                crate::validate::Diagnostic::new(
                    crate::validate::Code::DuplicateDefinition,
                    &e.file,
                    Some(e.pos),
                    format!(
                        "{} `{}` of project `{}` is already defined by source {}",
                        e.id.kind, e.id.name, e.id.project, owner.0
                    ),
                )
                .with_help("an identity belongs to one source; rename it, move it to another project, or remove it from the other source"),
            )
        })
        .collect())
}
