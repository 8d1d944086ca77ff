//! Where the store is: `--state-dir` (SQLite at `<dir>/weir.db`) or `--db URL`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::daemon::config;
use crate::store::{self, Store};

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Directory for weir's state: the SQLite database, clones of remote repositories.
    #[arg(long, default_value = config::DEFAULT_STATE_DIR, env = "WEIR_STATE_DIR")]
    pub state_dir: PathBuf,
    /// Database URL (`postgres://…` or `sqlite://…`); default: SQLite in the state directory
    /// (which still holds clones of remote repositories).
    #[arg(long, env = "WEIR_DB", hide_env_values = true)]
    pub db: Option<String>,
}

impl StoreArgs {
    pub fn url(&self) -> String {
        match &self.db {
            Some(url) => url.clone(),
            None => config::sqlite_url(&self.state_dir),
        }
    }

    pub async fn open(&self) -> Result<Arc<dyn Store>, store::Error> {
        store::open(&self.url()).await
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
