//! `weir serve`: the daemon (see `crate::daemon`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::source_args::CredentialArgs;
use super::store_args::StoreArgs;
use crate::daemon::{self, Config, Executor, KubeConfig, SourceConfig};
use crate::executor::environment::AllowList;
use crate::executor::kubernetes::Settings;
use crate::http::Secrets;
use crate::reconcile;
use crate::source::dir::DEFAULT_MAX_FILE_SIZE;
use crate::source::git::SourceSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorArg {
    Local,
    Kubernetes,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Several sources and every setting in a file (see the README); the
    /// other flags then do not apply. `--task-env` is refused beside it
    /// rather than ignored: the file's `[tasks] env` says what tasks inherit.
    #[arg(long, conflicts_with_all = ["repo", "entries"])]
    pub config: Option<PathBuf>,
    /// Local path or URL of the Git repository.
    #[arg(long, required_unless_present = "config")]
    pub repo: Option<String>,
    /// Branch to follow (default: the remote's default branch, else `main`).
    #[arg(long)]
    pub branch: Option<String>,
    /// Folder of definitions inside the repository.
    #[arg(long, default_value = "")]
    pub path: String,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Address of the HTTP server (health, metrics, webhooks, API).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: std::net::SocketAddr,
    /// Polling interval, a fallback to watching and webhooks (`30s`, `5m`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Where node attempts run.
    #[arg(long, value_enum, default_value_t = ExecutorArg::Local)]
    pub executor: ExecutorArg,
    /// The Kubernetes namespace of Jobs and the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// The weir image task pods copy `weir` from (Kubernetes).
    #[arg(long)]
    pub weir_image: Option<String>,
    /// The artifact store (a path or `file://…`; default `<state-dir>/artifacts`).
    #[arg(long, env = "WEIR_ARTIFACTS", hide_env_values = true)]
    pub artifacts: Option<String>,
    /// File holding the secret of GitHub webhooks (`X-Hub-Signature-256`).
    #[arg(long)]
    pub github_webhook_secret_file: Option<PathBuf>,
    /// File holding the bearer token of `POST /hooks/generic`.
    #[arg(long)]
    pub generic_webhook_token_file: Option<PathBuf>,
    /// File holding the bearer token the API requires (always for POST).
    #[arg(long)]
    pub api_token_file: Option<PathBuf>,
    /// Project of definitions without `metadata.project`.
    #[arg(long, default_value = "default")]
    pub project: String,
    /// Reconcile only head commits signed by one of these keys: files in
    /// SSH `allowed_signers` format and/or armored OpenPGP public keys
    /// (repeatable).
    #[arg(long)]
    pub trusted_keys: Vec<PathBuf>,
    /// How often the scheduler and the engine look for work.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub tick: Duration,
    /// How long running attempts get to finish at shutdown.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub grace: Duration,
    /// How long the store's engine lease lasts unrenewed: a second daemon
    /// on the store follows, and takes over this long after the leader dies.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// The daemon's URL as notification receivers reach it (links to the
    /// API); default `http://<listen>`.
    #[arg(long)]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub task_env: TaskEnvArgs,
}

/// `--task-env`: what a task's process inherits (`serve`, `run`, `backfill`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TaskEnvArgs {
    /// A variable of this process's environment that tasks inherit, beyond
    /// PATH, HOME, LANG, LC_ALL and TZ: an exact name (`HTTPS_PROXY`) or a
    /// prefix (`AWS_*`); repeatable. Nothing else reaches a task.
    #[arg(long = "task-env", value_name = "NAME|PREFIX*", value_parser = task_env_entry)]
    pub entries: Vec<String>,
}

impl TaskEnvArgs {
    pub fn allow_list(&self) -> AllowList {
        AllowList::parse(&self.entries).expect("each entry was checked when the flags were parsed")
    }
}

fn task_env_entry(text: &str) -> Result<String, String> {
    AllowList::parse(&[text])
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::spec::duration::parse(text).map_err(|e| e.to_string())
}

/// A secret from a file, without its trailing newline.
fn read_secret(path: &Path, what: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the {what} from `{}`: {e}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err(format!("the {what} file `{}` is empty", path.display()));
    }
    Ok(secret)
}

pub fn run(args: &Args) -> u8 {
    let config = match &args.config {
        Some(path) => match daemon::config::load(path) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_ERROR;
            }
        },
        None => match flags_config(args) {
            Ok(config) => config,
            Err(code) => return code,
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return super::EXIT_ERROR;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            signals.cancel();
        });
        daemon::run(config, shutdown).await
    });
    match result {
        Ok(()) => super::EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            super::EXIT_ERROR
        }
    }
}

/// The one-source configuration of the flags.
fn flags_config(args: &Args) -> Result<Config, u8> {
    let secret = |path: &Option<PathBuf>, what: &str| match path {
        Some(p) => read_secret(p, what).map(Some),
        None => Ok(None),
    };
    let secrets = match (
        secret(&args.github_webhook_secret_file, "GitHub webhook secret"),
        secret(&args.generic_webhook_token_file, "webhook token"),
        secret(&args.api_token_file, "API token"),
    ) {
        (Ok(github), Ok(generic), Ok(api)) => Secrets {
            github_webhook_secret: github.map(String::into_bytes),
            generic_webhook_token: generic,
            api_token: api,
        },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("error: {e}");
            return Err(super::EXIT_ERROR);
        }
    };
    let mut options = reconcile::Options {
        max_file_size: DEFAULT_MAX_FILE_SIZE,
        ..reconcile::Options::default()
    };
    options.validate.default_project = args.project.clone();
    options.trusted_keys = super::source_args::trusted_keys(&args.trusted_keys)?;
    Ok(Config {
        sources: vec![SourceConfig {
            spec: SourceSpec {
                repo: args.repo.clone().unwrap_or_default(),
                branch: args.branch.clone(),
                path: args.path.clone(),
                credentials: args.credentials.credentials(),
            },
            interval: args.interval,
            options,
        }],
        state_dir: args.store.state_dir.clone(),
        db_url: args.store.url(),
        listen: args.listen,
        secrets,
        tick: args.tick,
        grace: args.grace,
        lease_duration: args.lease_duration,
        public_url: args.public_url.clone(),
        http: crate::http::Limits::default(),
        task_env: args.task_env.allow_list(),
        executor: match args.executor {
            ExecutorArg::Local => Executor::Local,
            ExecutorArg::Kubernetes => {
                if args.artifacts.is_none() {
                    eprintln!(
                        "error: --executor kubernetes needs --artifacts URL: task pods and the daemon share it"
                    );
                    return Err(super::EXIT_ERROR);
                }
                let defaults = Settings::default();
                Executor::Kubernetes(Box::new(KubeConfig {
                    settings: Settings {
                        namespace: args.namespace.clone(),
                        image: args.weir_image.clone().unwrap_or(defaults.image.clone()),
                        ..defaults
                    },
                    lease: "weir-leader".into(),
                    lease_duration: daemon::config::DEFAULT_LEASE_DURATION,
                    identity: daemon::leader::identity(&|name| std::env::var(name).ok()),
                }))
            }
        },
        artifacts: args.artifacts.clone(),
    })
}

/// SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
