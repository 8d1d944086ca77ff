//! Where `status`, `versions`, `executions` and `lineage` read: the store
//! (`--state-dir`/`--db`), or with `--server URL` the JSON API of a running
//! `weir serve`. Either way a command gets the same views
//! ([`crate::views`]) and renders them with the same code, so what it
//! prints does not depend on where it read.
//!
//! Queries are checked here before either is asked, so a bad flag gets the
//! same message and exit code whether or not a server is involved.

use std::path::PathBuf;

use super::exit::Error;
use super::store_args::{StoreArgs, block_on};
use crate::http::client::{self, Client};
use crate::spec::ExecutionId;
use crate::store::Store;
use crate::views::{
    self, ExecutionQuery, ExecutionView, LineageQuery, LineageView, QueryError, SourceView,
    StatusView, VersionQuery, VersionView,
};

/// The environment variable holding the API token, when no `--token-file`.
const TOKEN_ENV: &str = "WEIR_API_TOKEN";

#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Read from a running `weir serve` at this URL (`http://host:7878`)
    /// instead of opening the store.
    #[arg(long, env = "WEIR_SERVER", value_name = "URL", hide_env_values = true)]
    pub server: Option<String>,
    /// With --server: a file holding the API token (default: the
    /// environment variable WEIR_API_TOKEN).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub token_file: Option<PathBuf>,
}

impl ServerArgs {
    /// The server when `--server` is given, else the store.
    pub fn origin<'a>(&self, store: &'a StoreArgs) -> Result<Origin<'a>, ReadError> {
        let Some(url) = &self.server else {
            return Ok(Origin::Store(store));
        };
        let client = Client::new(url, self.token()?)?;
        Ok(Origin::Server(client))
    }

    /// The API token: `--token-file`, else `WEIR_API_TOKEN`, else none.
    fn token(&self) -> Result<Option<String>, ReadError> {
        let token = match &self.token_file {
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

    pub fn executions(&self, query: &ExecutionQuery) -> Result<Vec<ExecutionView>, ReadError> {
        let filter = query.filter()?;
        match self {
            Origin::Store(store) => read(store, async |s| views::executions(s, &filter).await),
            Origin::Server(client) => Ok(client.executions(query)?),
        }
    }

    /// `None` when there is no such execution.
    pub fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionView>, ReadError> {
        match self {
            Origin::Store(store) => read(store, async |s| views::execution(s, id).await),
            Origin::Server(client) => Ok(client.execution(id)?),
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

/// Opens the store and reads from it.
fn read<T>(
    store: &StoreArgs,
    view: impl AsyncFnOnce(&dyn Store) -> Result<T, crate::store::Error>,
) -> Result<T, ReadError> {
    Ok(block_on(async {
        view(store.open().await?.as_ref()).await
    })?)
}

/// A read that failed. Turned into the command's [`Error`], it says what
/// the failure means: a query the request got wrong (exit 1), or weir
/// could not read (exit 2), with a help line for a missing token.
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
    Server(#[from] client::Error),
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Error {
        match &e {
            ReadError::Query(_) | ReadError::Server(client::Error::Rejected { .. }) => {
                Error::invalid(e)
            }
            ReadError::Server(client::Error::Unauthorized { .. }) => Error::failed(e).with_help(
                "give the token of `weir serve --api-token-file` with --token-file FILE or WEIR_API_TOKEN",
            ),
            _ => Error::failed(e),
        }
    }
}
