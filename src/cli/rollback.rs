//! `weir rollback NAME`: write the commit that restores an entity's previous
//! active version (or `--to VERSION`), with `--push` pushed. What is
//! restored and checked is [`crate::reconcile::rollback`]'s, which the
//! console's rollback writes too.

use super::exit::{self, Error, ExitStatus};
use super::source_args::CredentialArgs;
use super::store_args::{OpenError, StoreArgs, block_on};
use super::versions::KindArg;
use crate::reconcile::rollback::{self, Target};
use crate::source::git::{GitSource, SourceSpec};
use crate::spec::Kind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the task, workflow or launch plan.
    pub name: String,
    /// The definition's kind, when the name is used by several kinds.
    #[arg(long, value_enum, ignore_case = true)]
    pub kind: Option<KindArg>,
    /// The definition's project, when the name is used in several.
    #[arg(long)]
    pub project: Option<String>,
    /// The version to restore (12 hex or the full digest); default: the one
    /// active before the current one.
    #[arg(long)]
    pub to: Option<String>,
    /// Local path of the repository (with a working tree).
    #[arg(long, default_value = ".")]
    pub repo: String,
    /// Folder of definitions inside the repository.
    #[arg(long, default_value = "")]
    pub path: String,
    /// Push the branch to `origin` after committing.
    #[arg(long)]
    pub push: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

pub fn run(args: &Args) -> exit::Result {
    let message = rollback(args)?;
    print!("{message}");
    Ok(ExitStatus::Success)
}

/// Why a rollback was not committed: refused, the request cannot be done
/// as asked (exit 1); not found, no such entity or version (exit 3); weir
/// could not run (exit 2), no store among them.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Rollback(#[from] rollback::Error),
    #[error(transparent)]
    NoStore(OpenError),
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Error {
        match failure {
            Failure::Rollback(e @ rollback::Error::Refused(_)) => Error::invalid(e),
            Failure::Rollback(e @ rollback::Error::NotFound(_)) => Error::not_found(e),
            Failure::Rollback(e) => Error::failed(e),
            Failure::NoStore(e) => e.into(),
        }
    }
}

fn rollback(args: &Args) -> Result<String, Failure> {
    let target = Target {
        name: args.name.clone(),
        kind: args.kind.map(Kind::from),
        project: args.project.clone(),
        to: args.to.clone(),
    };
    let choice = block_on(async {
        let store = args.store.open_existing().await.map_err(Failure::NoStore)?;
        Ok::<_, Failure>(rollback::choose(store.as_ref(), &target).await?)
    })?;
    let spec = SourceSpec {
        repo: args.repo.clone(),
        branch: None,
        path: args.path.clone(),
        credentials: args.credentials.credentials(),
    };
    let source = GitSource::open(&spec, &args.store.state_dir)
        .map_err(|e| rollback::Error::Git(e.into()))?;
    let credentials = args.credentials.credentials();
    let done = rollback::write(&source, &choice, None, args.push.then_some(&credentials))?;
    let mut out = format!(
        "committed {} on {}: Roll back {}/{} from {} to {}\n",
        done.commit.short(),
        done.branch,
        done.entity.kind,
        done.entity.name,
        done.from.short(),
        done.to.short()
    );
    for other in &done.also {
        out.push_str(&format!("  also changes {}/{}\n", other.kind, other.name));
    }
    if done.pushed {
        out.push_str(&format!("pushed {} to origin\n", done.branch));
    } else {
        out.push_str(
            "run `weir sync` (or push, for a daemon watching the remote) to activate it\n",
        );
    }
    Ok(out)
}
