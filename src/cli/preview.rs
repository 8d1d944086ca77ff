//! `weir run NAME --ref REV`: a preview run. The definitions exactly as
//! they are at REV (any commit, branch or tag of the source's repository,
//! such as a pull request's head) are validated and registered inactive,
//! and the execution runs them; the active set, `weir status` and the
//! schedules are untouched (see `reconcile::preview`).
//!
//! Which repository: the source `sync`/`serve` recorded when the store has
//! exactly one; `--repo` (with `--branch`, `--path`) names another or
//! chooses among several.

use std::path::Path;

use chrono::Utc;

use super::exit::notice_text;
use super::render::{self, Format};
use super::source_args::CredentialArgs;
use crate::engine::create::Preview;
use crate::reconcile::{self, preview};
use crate::source::git::{GitSource, SourceSpec};
use crate::spec::SourceKey;
use crate::store::Store;

/// Why a preview could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Source(#[from] crate::source::git::Error),
    #[error(transparent)]
    Reconcile(#[from] reconcile::Error),
    #[error(
        "the definitions at {revision} ({commit}) are invalid: {errors} error(s); nothing was registered"
    )]
    Invalid {
        revision: String,
        commit: String,
        errors: usize,
    },
    #[error(
        "no source was synced into this store: name the repository with --repo (and --branch, --path)"
    )]
    NoSource,
    #[error(
        "the store has {} sources ({}): name one with --repo (and --branch, --path)",
        .0.len(),
        .0.join(", ")
    )]
    SeveralSources(Vec<String>),
    #[error("`{0}` is not a source key")]
    NotASourceKey(String),
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct PreviewArgs {
    /// Preview: run the definitions as they are at this commit, branch or
    /// tag of the source's repository, without activating them.
    #[arg(long = "ref", value_name = "REV", conflicts_with = "server")]
    pub revision: Option<String>,
    /// With --ref: the repository (default: the store's source, when it
    /// has exactly one).
    #[arg(long, requires = "revision")]
    pub repo: Option<String>,
    /// With --ref: the source's branch (default: the store's source's).
    #[arg(long, requires = "revision")]
    pub branch: Option<String>,
    /// With --ref: the folder of definitions (default: the store's source's).
    #[arg(long, requires = "revision")]
    pub path: Option<String>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

/// Loads, validates and registers (inactive) the tree at `revision`; an
/// invalid tree is refused with its diagnostics on stderr (a notice, before
/// the error they lead to), nothing written.
/// `project` is the project of definitions without `metadata.project`.
pub async fn prepare(
    args: &PreviewArgs,
    revision: &str,
    project: &str,
    store: &dyn Store,
    state_dir: &Path,
) -> Result<Preview, Error> {
    let spec = source_spec(args, store).await?;
    let git = GitSource::open(&spec, state_dir)?;
    let mut options = reconcile::Options::default();
    options.validate.default_project = project.to_owned();
    let previewed = preview::load(&git, revision, &options)?;
    match preview::register(store, &git, &previewed, Utc::now()).await? {
        Some(preview) => Ok(preview),
        None => {
            let report = &previewed.report;
            notice_text(&render::report(report, Format::Table, &previewed.prefix));
            Err(Error::Invalid {
                revision: revision.to_owned(),
                commit: previewed.commit.id.short().to_owned(),
                errors: report.error_count(),
            })
        }
    }
}

/// The source to preview: the flags, else the store's only source.
async fn source_spec(args: &PreviewArgs, store: &dyn Store) -> Result<SourceSpec, Error> {
    let (repo, branch, path) = match &args.repo {
        Some(repo) => (repo.clone(), args.branch.clone(), args.path.clone()),
        None => {
            let sources = store.sources().await?;
            let [only] = sources.as_slice() else {
                let known: Vec<String> = sources.iter().map(|s| s.source.0.clone()).collect();
                return Err(if known.is_empty() {
                    Error::NoSource
                } else {
                    Error::SeveralSources(known)
                });
            };
            let (repo, branch, path) = parse_key(&only.source)
                .ok_or_else(|| Error::NotASourceKey(only.source.0.clone()))?;
            (
                repo,
                args.branch.clone().or(Some(branch)),
                args.path.clone().or(Some(path)),
            )
        }
    };
    Ok(SourceSpec {
        repo,
        branch,
        path: path.unwrap_or_default(),
        credentials: args.credentials.credentials(),
    })
}

/// Repository, branch and folder of a source key
/// (`file:///srv/repo#main:pipelines`, or a URL for a remote).
fn parse_key(key: &SourceKey) -> Option<(String, String, String)> {
    let parts = key.parts()?;
    let repo = parts.repo.strip_prefix("file://").unwrap_or(parts.repo);
    Some((
        repo.to_owned(),
        parts.branch.to_owned(),
        parts.path.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_key_names_repository_branch_and_folder() {
        let local = SourceKey("file:///srv/repo#main:pipelines/ml".into());
        assert_eq!(
            parse_key(&local),
            Some(("/srv/repo".into(), "main".into(), "pipelines/ml".into()))
        );
        let remote = SourceKey("https://github.com/acme/flows.git#release/1:".into());
        assert_eq!(
            parse_key(&remote),
            Some((
                "https://github.com/acme/flows.git".into(),
                "release/1".into(),
                String::new()
            ))
        );
        assert_eq!(parse_key(&SourceKey("nonsense".into())), None);
    }
}
