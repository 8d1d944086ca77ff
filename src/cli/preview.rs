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

use super::render::{self, Format};
use super::source_args::CredentialArgs;
use crate::engine::create::Preview;
use crate::reconcile::{self, preview};
use crate::source::git::{GitSource, SourceSpec};
use crate::store::{SourceKey, Store};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct PreviewArgs {
    /// Preview: run the definitions as they are at this commit, branch or
    /// tag of the source's repository, without activating them.
    #[arg(long = "ref", value_name = "REV")]
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
/// invalid tree is refused with its diagnostics on stderr, nothing written.
/// `project` is the project of definitions without `metadata.project`.
pub async fn prepare(
    args: &PreviewArgs,
    revision: &str,
    project: &str,
    store: &dyn Store,
    state_dir: &Path,
) -> Result<Preview, String> {
    let spec = source_spec(args, store).await?;
    let git = GitSource::open(&spec, state_dir).map_err(|e| e.to_string())?;
    let mut options = reconcile::Options::default();
    options.validate.default_project = project.to_owned();
    let previewed = preview::load(&git, revision, &options).map_err(|e| e.to_string())?;
    match preview::register(store, &git, &previewed)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(preview) => Ok(preview),
        None => {
            let report = &previewed.report;
            eprint!(
                "{}",
                render::report(report, Format::Human, &previewed.prefix)
            );
            Err(format!(
                "the definitions at {revision} ({}) are invalid: {} error(s); nothing was registered",
                previewed.commit.id.short(),
                report.error_count()
            ))
        }
    }
}

/// The source to preview: the flags, else the store's only source.
async fn source_spec(args: &PreviewArgs, store: &dyn Store) -> Result<SourceSpec, String> {
    let (repo, branch, path) = match &args.repo {
        Some(repo) => (repo.clone(), args.branch.clone(), args.path.clone()),
        None => {
            let sources = store.sources().await.map_err(|e| e.to_string())?;
            let [only] = sources.as_slice() else {
                let known: Vec<&str> = sources.iter().map(|s| s.source.0.as_str()).collect();
                return Err(if known.is_empty() {
                    "no source was synced into this store: name the repository with --repo (and --branch, --path)".into()
                } else {
                    format!(
                        "the store has {} sources ({}): name one with --repo (and --branch, --path)",
                        known.len(),
                        known.join(", ")
                    )
                });
            };
            let (repo, branch, path) = parse_key(&only.source)
                .ok_or_else(|| format!("`{}` is not a source key", only.source.0))?;
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
    let (repo, rest) = key.0.rsplit_once('#')?;
    let (branch, folder) = rest.split_once(':')?;
    let repo = repo.strip_prefix("file://").unwrap_or(repo);
    Some((repo.to_owned(), branch.to_owned(), folder.to_owned()))
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
