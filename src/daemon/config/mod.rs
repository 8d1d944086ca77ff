//! The configuration of `weir serve`: one type, [`Config`], and the
//! defaults of its settings, each written once, here.
//!
//! Two front ends fill it, and neither states a default of its own: the
//! flags of `weir serve` (`crate::cli`, one source; `--help` shows the
//! defaults below), and a `weir.toml` ([`file`]: several sources and every
//! setting). Both start from [`Config::with_defaults`] and lay what they
//! were given over it. The Kubernetes executor's own settings (image,
//! namespace, TTL…) default in `crate::executor::kubernetes::Settings`,
//! the HTTP server's bounds in `crate::http::Limits`.

pub mod file;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use file::{Error, load, parse};

use crate::executor::environment::AllowList;
use crate::http::{self, Secrets};
use crate::reconcile;
use crate::source::git::SourceSpec;

/// Where weir keeps its state: the SQLite database, clones of remote
/// repositories, snapshots, attempts' folders, artifacts.
pub const DEFAULT_STATE_DIR: &str = ".weir";

/// The HTTP server's address (health, metrics, webhooks, API).
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 7878));

/// The project of definitions without `metadata.project`.
pub const DEFAULT_PROJECT: &str = "default";

/// How often a source is polled (a fallback to watching and webhooks).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// How often the scheduler and the engine look for work.
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);

/// How long running attempts get to finish at shutdown.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// How long a lease lasts unrenewed: the store's engine lease, and the
/// Kubernetes leader-election Lease.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// The Kubernetes leader-election Lease's name.
pub const DEFAULT_LEASE_NAME: &str = "weir-leader";

/// The database when none is named: SQLite in the state directory.
pub fn sqlite_url(state_dir: &Path) -> String {
    format!("sqlite://{}", sqlite_file(state_dir).display())
}

/// The SQLite database of a state directory.
pub fn sqlite_file(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("weir.db")
}

/// One source to follow.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub spec: SourceSpec,
    /// Polling interval (a fallback: watching and webhooks are immediate).
    pub interval: Duration,
    pub options: reconcile::Options,
}

impl SourceConfig {
    /// The source `spec` with the default interval and options (and the
    /// default project).
    pub fn with_defaults(spec: SourceSpec) -> SourceConfig {
        let mut options = reconcile::Options::default();
        options.validate.default_project = DEFAULT_PROJECT.to_owned();
        SourceConfig {
            spec,
            interval: DEFAULT_INTERVAL,
            options,
        }
    }
}

/// Everything `weir serve` needs.
pub struct Config {
    pub sources: Vec<SourceConfig>,
    pub state_dir: PathBuf,
    pub db_url: String,
    pub listen: std::net::SocketAddr,
    pub secrets: Secrets,
    /// How often the scheduler and the engine tick.
    pub tick: Duration,
    /// How long running attempts get to finish at shutdown.
    pub grace: Duration,
    /// How long the store's engine lease lasts unrenewed (renewed every
    /// third of it): a successor takes over at most this long after a
    /// leader dies, at once after it stops cleanly.
    pub lease_duration: Duration,
    /// The daemon's URL as notification receivers reach it (links to
    /// `/api/v1/executions/{id}`); default `http://<listen>`.
    pub public_url: Option<String>,
    pub executor: Executor,
    /// The artifact store's URL (`artifact::open`); default
    /// `<state_dir>/artifacts`.
    pub artifacts: Option<String>,
    /// Bounds on the HTTP server's connections (timeouts, how many).
    pub http: http::Limits,
    /// The daemon's variables tasks may inherit beyond `PATH`, `HOME`, the
    /// locale and `TZ` (`[tasks] env`, `--task-env`); nothing else of its
    /// environment, its credentials included, reaches a task.
    pub task_env: AllowList,
    /// Where OpenLineage RunEvents of the executions it drives go
    /// (`[openlineage]`, `--openlineage-file`, `--openlineage-url`);
    /// nowhere by default.
    pub openlineage: OpenLineageConfig,
    /// Whether the console may write rollbacks' commits (`[console]
    /// rollback`, `--console-rollback`); off by default.
    pub console_rollback: http::RollbackWrites,
}

impl Config {
    /// `sources` with every other setting at its default: what a front
    /// end starts from before it lays its settings over it. The database
    /// follows the state directory unless one is named: a front end that
    /// sets `state_dir` sets `db_url` too ([`sqlite_url`]).
    pub fn with_defaults(sources: Vec<SourceConfig>) -> Config {
        Config {
            sources,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            db_url: sqlite_url(Path::new(DEFAULT_STATE_DIR)),
            listen: DEFAULT_LISTEN,
            secrets: Secrets::default(),
            tick: DEFAULT_TICK,
            grace: DEFAULT_GRACE,
            lease_duration: DEFAULT_LEASE_DURATION,
            public_url: None,
            executor: Executor::default(),
            artifacts: None,
            http: http::Limits::default(),
            task_env: AllowList::default(),
            openlineage: OpenLineageConfig::default(),
            console_rollback: http::RollbackWrites::Off,
        }
    }
}

/// Where the daemon sends OpenLineage RunEvents (both may be set); with
/// neither, the default, it sends none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenLineageConfig {
    /// A JSON-lines file each event is appended to (created with its
    /// folders).
    pub file: Option<PathBuf>,
    /// The base URL each event is POSTed below (`<url>/api/v1/lineage`,
    /// Marquez's endpoint).
    pub url: Option<String>,
    /// Sent with each POST as `Authorization: Bearer` (`[secrets]
    /// openlineage_api_key`, `--openlineage-api-key-file`).
    pub api_key: Option<ApiKey>,
}

/// A credential that is never shown: its `Debug` says only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(pub String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<set>)")
    }
}

/// Where node attempts run; the default is this type's [`Default`], which
/// both front ends name by [`Executor::name`].
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Executor {
    /// Host processes (the embedded default): one replica.
    #[default]
    Local,
    /// Kubernetes Jobs; replicas elect a leader through a Lease.
    Kubernetes(Box<KubeConfig>),
}

impl Executor {
    /// Its name in `--executor` and a `weir.toml`'s `executor =`.
    pub fn name(&self) -> &'static str {
        match self {
            Executor::Local => "local",
            Executor::Kubernetes(_) => "kubernetes",
        }
    }
}

/// The Kubernetes executor's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeConfig {
    pub settings: crate::executor::kubernetes::Settings,
    /// The leader-election Lease's name (in the executor's namespace).
    pub lease: String,
    pub lease_duration: Duration,
    /// This replica's name in the Lease (`POD_NAME`).
    pub identity: String,
}

impl KubeConfig {
    /// The executor's default settings and the default Lease, for the
    /// replica `identity`.
    pub fn with_defaults(identity: String) -> KubeConfig {
        KubeConfig {
            settings: crate::executor::kubernetes::Settings::default(),
            lease: DEFAULT_LEASE_NAME.to_owned(),
            lease_duration: DEFAULT_LEASE_DURATION,
            identity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults as `weir serve --help` and the README state them.
    #[test]
    fn the_defaults_are_those_documented() {
        let config = Config::with_defaults(Vec::new());
        assert_eq!(config.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(config.db_url, "sqlite://.weir/weir.db");
        assert_eq!(config.tick, Duration::from_secs(1));
        assert_eq!(config.grace, Duration::from_secs(30));
        assert_eq!(config.lease_duration, Duration::from_secs(15));
        assert_eq!(config.executor, Executor::Local);
        assert_eq!(config.executor.name(), "local");
        assert_eq!(config.openlineage, OpenLineageConfig::default());
    }
}
