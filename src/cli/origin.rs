//! Where `status`, `versions`, `executions` and `lineage` read: the store
//! (`--state-dir`/`--db`), or with `--server URL` the JSON API of a running
//! `weir serve`. Either way a command gets the same views
//! ([`crate::views`]) and renders them with the same code, so what it
//! prints does not depend on where it read.
//!
//! Queries are checked here before either is asked, so a bad flag gets the
//! same message and exit code whether or not a server is involved.

use std::path::PathBuf;

use super::store_args::{StoreArgs, block_on};
use crate::http::client::{self, Client};
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
            Some(path) => std::fs::read_to_string(path).map_err(|e| ReadError {
                message: format!("cannot read the API token file `{}`: {e}", path.display()),
                help: None,
                code: super::EXIT_ERROR,
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
    pub fn execution(&self, id: &str) -> Result<Option<ExecutionView>, ReadError> {
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

/// A read that failed: what to say, and the exit code it means.
#[derive(Debug)]
pub struct ReadError {
    message: String,
    help: Option<&'static str>,
    code: u8,
}

impl ReadError {
    /// Says what went wrong on stderr; the exit code.
    pub fn report(&self) -> u8 {
        eprintln!("error: {}", self.message);
        if let Some(help) = self.help {
            eprintln!("  = help: {help}");
        }
        self.code
    }
}

impl From<QueryError> for ReadError {
    fn from(e: QueryError) -> ReadError {
        ReadError {
            message: e.to_string(),
            help: None,
            code: super::EXIT_INVALID,
        }
    }
}

impl From<crate::store::Error> for ReadError {
    fn from(e: crate::store::Error) -> ReadError {
        ReadError {
            message: e.to_string(),
            help: None,
            code: super::EXIT_ERROR,
        }
    }
}

impl From<client::Error> for ReadError {
    fn from(e: client::Error) -> ReadError {
        let (help, code) = match &e {
            client::Error::Unauthorized { .. } => (
                Some(
                    "give the token of `weir serve --api-token-file` with --token-file FILE or WEIR_API_TOKEN",
                ),
                super::EXIT_ERROR,
            ),
            client::Error::Rejected { .. } => (None, super::EXIT_INVALID),
            _ => (None, super::EXIT_ERROR),
        };
        ReadError {
            message: e.to_string(),
            help,
            code,
        }
    }
}
