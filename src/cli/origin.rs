//! Where a command reads (and writes): the store (`--state-dir`/`--db`),
//! or with `--server URL` the JSON API of a running `weir serve`. Either
//! way a command gets the same views ([`crate::views`]) and renders them
//! with the same code, so what it prints does not depend on where it read.
//! `status`, `versions`, `launchplans`, `executions`, `lineage`, `audit`
//! and `diff` read
//! through [`Origin`]; `logs`, `cancel`, `run` and `backfill`, which do
//! more than read a view, take its [`Client`] or its store.
//!
//! Queries are checked here before either is asked, so a bad flag gets the
//! same message and exit code whether or not a server is involved, and
//! [`ReadError`] gives a failure the same exit code either way (a 404 of
//! the API is the CLI's not-found, exit 3).

use std::path::PathBuf;

use super::exit::Error;
use super::store_args::{OpenError, StoreArgs, block_on};
use crate::http::client::{self, Client};
use crate::spec::ExecutionId;
use crate::store::Store;
use crate::views::{
    self, AuditQuery, AuditView, DiffError, DiffView, ExecutionQuery, ExecutionView,
    LaunchPlanError, LaunchPlanQuery, LaunchPlanView, LineageQuery, LineageView, NodePage,
    PageError, QueryError, SourceView, StatusView, VersionQuery, VersionView,
};

/// The environment variable holding the API token, when no `--api-token-file`.
const TOKEN_ENV: &str = "WEIR_API_TOKEN";

/// `--server` and its token. (`--token-file` is the Git token of `sync`,
/// `run --ref` and `serve`; the commands that took `--token-file` for the
/// API token before it got its own name still read it, hidden:
/// [`token_file_alias`].)
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Ask a running `weir serve` at this URL (`http://host:7878`)
    /// instead of opening the store.
    #[arg(long, env = "WEIR_SERVER", value_name = "URL", hide_env_values = true)]
    pub server: Option<String>,
    /// With --server: a file holding the API token, the one of `weir serve
    /// --api-token-file` (default: the environment variable WEIR_API_TOKEN).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub api_token_file: Option<PathBuf>,
}

/// The hidden old name of `--api-token-file`, on the commands that took
/// it (`status`, `versions`, `executions`, `lineage`):
/// `#[command(mut_arg("api_token_file", token_file_alias))]` on their
/// arguments. (Not on `run`: there `--token-file` is the Git token of
/// `--ref`.)
pub fn token_file_alias(arg: clap::Arg) -> clap::Arg {
    arg.alias("token-file")
}

impl ServerArgs {
    /// The server when `--server` is given, else the store.
    pub fn origin<'a>(&self, store: &'a StoreArgs) -> Result<Origin<'a>, ReadError> {
        Ok(match self.client()? {
            Some(client) => Origin::Server(client),
            None => Origin::Store(store),
        })
    }

    /// The client of `--server`, if given.
    pub fn client(&self) -> Result<Option<Client>, ReadError> {
        let Some(url) = &self.server else {
            return Ok(None);
        };
        Ok(Some(Client::new(url, self.token()?)?))
    }

    /// The API token: `--api-token-file`, else `WEIR_API_TOKEN`, else none.
    fn token(&self) -> Result<Option<String>, ReadError> {
        let token = match &self.api_token_file {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ReadError::TokenFile {
                path: path.clone(),
                source,
            })?,
            None => std::env::var(TOKEN_ENV).unwrap_or_default(),
        };
        let token = token.trim();
        Ok((!token.is_empty()).then(|| token.to_owned()))
    }
}

/// Where the views come from.
pub enum Origin<'a> {
    Store(&'a StoreArgs),
    Server(Client),
}

impl Origin<'_> {
    pub fn sources(&self) -> Result<Vec<SourceView>, ReadError> {
        match self {
            Origin::Store(store) => read(store, async |s| views::sources(s).await),
            Origin::Server(client) => Ok(client.sources()?),
        }
    }

    /// Every source's status and the store's engine lease, read now.
    pub fn status(&self) -> Result<StatusView, ReadError> {
        match self {
            Origin::Store(store) => {
                read(store, async |s| views::status(s, chrono::Utc::now()).await)
            }
            Origin::Server(client) => Ok(client.status()?),
        }
    }

    pub fn versions(&self, query: &VersionQuery) -> Result<Vec<VersionView>, ReadError> {
        let filter = query.filter()?;
        match self {
            Origin::Store(store) => read(store, async |s| views::versions(s, &filter).await),
            Origin::Server(client) => Ok(client.versions(query)?),
        }
    }

    /// The active launch plans, their next instants counted from now.
    pub fn launch_plans(&self, query: &LaunchPlanQuery) -> Result<Vec<LaunchPlanView>, ReadError> {
        match self {
            Origin::Store(store) => block_on(async {
                let s = store.open_existing().await?;
                views::launch_plans(s.as_ref(), query, chrono::Utc::now())
                    .await
                    .map_err(|e| match e {
                        LaunchPlanError::Query(e) => ReadError::Query(e),
                        LaunchPlanError::Store(e) => ReadError::Store(e),
                    })
            }),
            Origin::Server(client) => Ok(client.launch_plans(query)?),
        }
    }

    pub fn executions(&self, query: &ExecutionQuery) -> Result<Vec<ExecutionView>, ReadError> {
        query.filter()?;
        match self {
            Origin::Store(store) => block_on(async {
                let store = store.open_existing().await?;
                Ok(views::executions(store.as_ref(), query).await?)
            }),
            Origin::Server(client) => Ok(client.executions(query)?),
        }
    }

    /// `None` when there is no such execution.
    pub fn execution(
        &self,
        id: &ExecutionId,
        page: &NodePage,
    ) -> Result<Option<ExecutionView>, ReadError> {
        match self {
            Origin::Store(store) => block_on(async {
                let store = store.open_existing().await?;
                Ok(views::execution_page(store.as_ref(), id, page).await?)
            }),
            Origin::Server(client) => Ok(client.execution(id, page)?),
        }
    }

    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditView>, ReadError> {
        match self {
            Origin::Store(store) => read(store, async |s| views::audit(s, query).await),
            Origin::Server(client) => Ok(client.audit(query)?),
        }
    }

    /// What changed from `base` (default: the last succeeded execution of
    /// the same launch plan before `id`) to `id`. A remote source's
    /// commits are read from the clones in the state directory (the
    /// daemon's, over `--server`).
    pub fn diff(
        &self,
        id: &ExecutionId,
        base: Option<&ExecutionId>,
    ) -> Result<DiffView, ReadError> {
        match self {
            Origin::Store(store) => {
                let state_dir = Some(store.state_dir.as_path());
                block_on(async {
                    let s = store.open_existing().await?;
                    Ok(views::diff(s.as_ref(), state_dir, id, base).await?)
                })
            }
            Origin::Server(client) => Ok(client.diff(id, base)?),
        }
    }

    /// `None` when `target` is neither an execution nor an artifact.
    pub fn lineage(
        &self,
        target: &str,
        query: &LineageQuery,
    ) -> Result<Option<LineageView>, ReadError> {
        let way = query.way()?;
        match self {
            Origin::Store(store) => read(store, async |s| views::lineage(s, target, way).await),
            Origin::Server(client) => Ok(client.lineage(target, query)?),
        }
    }
}

/// Opens the store, which must be there, and reads from it.
fn read<T>(
    store: &StoreArgs,
    view: impl AsyncFnOnce(&dyn Store) -> Result<T, crate::store::Error>,
) -> Result<T, ReadError> {
    block_on(async {
        let store = store.open_existing().await?;
        Ok(view(store.as_ref()).await?)
    })
}

/// A read that failed. Turned into the command's [`Error`], it says what
/// the failure means, the same whether the store or a server was read:
/// what was asked about does not exist (exit 3), the request cannot be
/// done now (exit 1), or a bad argument or weir could not read (exit 2),
/// with a help line for a missing token or store.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the API token file `{}`: {source}", path.display())]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Diff(#[from] DiffError),
    #[error(transparent)]
    Server(#[from] client::Error),
}

impl From<PageError> for ReadError {
    fn from(e: PageError) -> ReadError {
        match e {
            PageError::Query(e) => ReadError::Query(e),
            PageError::Store(e) => ReadError::Store(e),
        }
    }
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Error {
        match e {
            ReadError::Open(e) => e.into(),
            ReadError::Server(client::Error::NotFound { .. })
            | ReadError::Diff(DiffError::UnknownExecution(_) | DiffError::NoBase { .. }) => {
                Error::not_found(e)
            }
            ReadError::Server(client::Error::Conflict { .. }) => Error::invalid(e),
            ReadError::Server(client::Error::Unauthorized { .. }) => Error::failed(e).with_help(
                "give the token of `weir serve --api-token-file` with --api-token-file FILE or WEIR_API_TOKEN",
            ),
            _ => Error::failed(e),
        }
    }
}
