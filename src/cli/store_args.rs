//! Where the store is: `--state-dir` (SQLite at `<dir>/weir.db`) or `--db URL`.
//!
//! Commands that write (`sync`, `run`, `backfill`, `serve`) create the
//! SQLite file when it is not there yet ([`StoreArgs::open`]). Commands
//! that only read ([`StoreArgs::open_existing`]) do not: in the wrong
//! folder, or given a `--db sqlite://…` file that is not there, they say
//! that no store is there (exit 2) instead of creating an empty one and
//! answering from it.

use std::path::PathBuf;
use std::sync::Arc;

use super::exit::Error;
use crate::daemon::config;
use crate::store::{self, Store};

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Directory for weir's state: the SQLite database, clones of remote repositories.
    #[arg(long, default_value = config::DEFAULT_STATE_DIR, env = "WEIR_STATE_DIR", hide_env_values = true)]
    pub state_dir: PathBuf,
    /// Database URL (`postgres://…` or `sqlite://…`); default: SQLite in the state directory
    /// (which still holds clones of remote repositories).
    #[arg(long, env = "WEIR_DB", hide_env_values = true)]
    pub db: Option<String>,
}

/// The help line of a store that is not there.
const NO_STORE_HELP: &str = "run `weir sync` or `weir serve` here first to create it, or point at one with --state-dir, --db or --server";

/// Why a store that should be there cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no weir store at `{}`", .0.display())]
    Missing(PathBuf),
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Error {
        match e {
            OpenError::Missing(_) => Error::failed(e).with_help(NO_STORE_HELP),
            OpenError::Store(e) => Error::failed(e),
        }
    }
}

impl StoreArgs {
    pub fn url(&self) -> String {
        match &self.db {
            Some(url) => url.clone(),
            None => config::sqlite_url(&self.state_dir),
        }
    }

    /// Opens the store, creating the SQLite file (and its state
    /// directory) when it is not there.
    pub async fn open(&self) -> Result<Arc<dyn Store>, store::Error> {
        store::open(&self.url()).await
    }

    /// Opens a store that must be there already: a SQLite file that is not
    /// there (the state directory's `weir.db`, or the file `--db
    /// sqlite://…` names) is [`OpenError::Missing`], and nothing is
    /// created.
    pub async fn open_existing(&self) -> Result<Arc<dyn Store>, OpenError> {
        let file = match &self.db {
            None => Some(config::sqlite_file(&self.state_dir)),
            Some(url) if url.starts_with("sqlite:") => store::sqlite::database_file(url),
            Some(_) => None,
        };
        if let Some(file) = file.filter(|f| !f.is_file()) {
            return Err(OpenError::Missing(file));
        }
        Ok(self.open().await?)
    }
}

/// Runs an async command body on a small runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime can always be built")
        .block_on(future)
}
