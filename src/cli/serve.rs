//! `weir serve`: the daemon (see `crate::daemon`). Its flags are one of
//! the two front ends of [`Config`] (the other is a `weir.toml`, given
//! with `--config`): they lay what they are given over the defaults of
//! `crate::daemon::config`, which `--help` shows, so no default is stated
//! here.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::duration_arg::DurationArg;
use super::exit::{self, Error, ExitStatus};
use super::source_args::CredentialArgs;
use super::store_args::StoreArgs;
use crate::daemon::config::{self, Config, Executor, KubeConfig, SourceConfig};
use crate::daemon::{self, leader};
use crate::executor::environment::AllowList;
use crate::executor::kubernetes::Settings;
use crate::http::Secrets;
use crate::source::git::SourceSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorArg {
    Local,
    Kubernetes,
}

/// `--console-rollback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RollbackArg {
    Off,
    Commit,
    Push,
}

impl From<RollbackArg> for crate::http::RollbackWrites {
    fn from(arg: RollbackArg) -> crate::http::RollbackWrites {
        match arg {
            RollbackArg::Off => crate::http::RollbackWrites::Off,
            RollbackArg::Commit => crate::http::RollbackWrites::Commit,
            RollbackArg::Push => crate::http::RollbackWrites::Push,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Several sources and every setting in a file (see the README); the
    /// other flags then do not apply, but `--openlineage-file` and
    /// `--openlineage-url`, which override its `[openlineage]`.
    /// `--task-env` is refused beside it rather than ignored: the file's
    /// `[tasks] env` says what tasks inherit.
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
    #[arg(long, default_value_t = config::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Polling interval, a fallback to watching and webhooks (`30s`, `5m`).
    #[arg(long, default_value_t = DurationArg(config::DEFAULT_INTERVAL))]
    pub interval: DurationArg,
    /// Where node attempts run.
    #[arg(long, value_enum, default_value = Executor::default().name())]
    pub executor: ExecutorArg,
    /// The Kubernetes namespace of Jobs and the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", hide_env_values = true, default_value_t = Settings::default().namespace)]
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
    #[arg(long, default_value = config::DEFAULT_PROJECT)]
    pub project: String,
    /// Reconcile only head commits signed by one of these keys: files in
    /// SSH `allowed_signers` format and/or armored OpenPGP public keys
    /// (repeatable).
    #[arg(long)]
    pub trusted_keys: Vec<PathBuf>,
    /// How often the scheduler and the engine look for work.
    #[arg(long, default_value_t = DurationArg(config::DEFAULT_TICK))]
    pub tick: DurationArg,
    /// How long running attempts get to finish at shutdown.
    #[arg(long, default_value_t = DurationArg(config::DEFAULT_GRACE))]
    pub grace: DurationArg,
    /// How long the store's engine lease lasts unrenewed: a second daemon
    /// on the store follows, and takes over this long after the leader dies.
    #[arg(long, default_value_t = DurationArg(config::DEFAULT_LEASE_DURATION))]
    pub lease_duration: DurationArg,
    /// The daemon's URL as notification receivers reach it (links to the
    /// API); default `http://<listen>`.
    #[arg(long)]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub task_env: TaskEnvArgs,
    /// Append an OpenLineage RunEvent per execution and node transition to
    /// this file, one JSON object a line (overrides `[openlineage] file`).
    #[arg(
        long,
        env = "WEIR_OPENLINEAGE_FILE",
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub openlineage_file: Option<PathBuf>,
    /// POST OpenLineage RunEvents to `<URL>/api/v1/lineage` (Marquez)
    /// (overrides `[openlineage] url`).
    #[arg(
        long,
        env = "WEIR_OPENLINEAGE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub openlineage_url: Option<String>,
    /// A file holding the API key sent with each OpenLineage POST as
    /// `Authorization: Bearer` (overrides `[secrets] openlineage_api_key`).
    #[arg(long, value_name = "FILE")]
    pub openlineage_api_key_file: Option<PathBuf>,
    /// Whether the web console's rollback writes its commit to the source's
    /// working tree (`commit`), and pushes it to `origin` (`push`); `off`
    /// (the default) shows the `weir rollback` command instead (overrides
    /// `[console] rollback`).
    #[arg(long, value_enum, value_name = "MODE")]
    pub console_rollback: Option<RollbackArg>,
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

fn task_env_entry(text: &str) -> Result<String, crate::executor::environment::Error> {
    AllowList::parse(&[text]).map(|_| text.to_owned())
}

/// A secret file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum SecretError {
    #[error("cannot read the {what} from `{}`: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} file `{}` is empty", path.display())]
    Empty { what: &'static str, path: PathBuf },
}

/// A secret from a file, without its trailing newline.
pub(super) fn read_secret(path: &Path, what: &'static str) -> Result<String, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err(SecretError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(secret)
}

pub fn run(args: &Args) -> exit::Result {
    let config = config_of(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("cannot start the runtime: {e}")))?;
    runtime
        .block_on(async {
            let shutdown = CancellationToken::new();
            let signals = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutting down");
                signals.cancel();
            });
            daemon::run(config, shutdown).await
        })
        .map_err(Error::failed)?;
    Ok(ExitStatus::Success)
}

/// What the daemon is told: the `--config` file, or the flags; then the
/// `--openlineage-*` flags over either (over the file's `[openlineage]`,
/// each flag given replacing its setting, one left out keeping it).
fn config_of(args: &Args) -> exit::Result<Config> {
    let mut config = match &args.config {
        Some(path) => config::load(path).map_err(Error::failed)?,
        None => flags_config(args)?,
    };
    if let Some(file) = &args.openlineage_file {
        config.openlineage.file = Some(file.clone());
    }
    if let Some(url) = &args.openlineage_url {
        config.openlineage.url = Some(url.clone());
    }
    if let Some(path) = &args.openlineage_api_key_file {
        let key = read_secret(path, "OpenLineage API key").map_err(Error::failed)?;
        config.openlineage.api_key = Some(config::ApiKey(key));
    }
    if let Some(mode) = args.console_rollback {
        config.console_rollback = mode.into();
    }
    Ok(config)
}

/// The one-source configuration of the flags, laid over the defaults.
fn flags_config(args: &Args) -> exit::Result<Config> {
    let secret = |path: &Option<PathBuf>, what| match path {
        Some(p) => read_secret(p, what).map(Some),
        None => Ok(None),
    };
    let secrets = Secrets {
        github_webhook_secret: secret(&args.github_webhook_secret_file, "GitHub webhook secret")
            .map_err(Error::failed)?
            .map(String::into_bytes),
        generic_webhook_token: secret(&args.generic_webhook_token_file, "webhook token")
            .map_err(Error::failed)?,
        api_token: secret(&args.api_token_file, "API token").map_err(Error::failed)?,
    };
    let mut source = SourceConfig::with_defaults(SourceSpec {
        repo: args.repo.clone().unwrap_or_default(),
        branch: args.branch.clone(),
        path: args.path.clone(),
        credentials: args.credentials.credentials(),
    });
    source.interval = args.interval.0;
    source.options.validate.default_project = args.project.clone();
    source.options.trusted_keys = super::source_args::trusted_keys(&args.trusted_keys)?;
    let mut config = Config::with_defaults(vec![source]);
    config.state_dir = args.store.state_dir.clone();
    config.db_url = args.store.url();
    config.listen = args.listen;
    config.secrets = secrets;
    config.tick = args.tick.0;
    config.grace = args.grace.0;
    config.lease_duration = args.lease_duration.0;
    config.public_url = args.public_url.clone();
    config.task_env = args.task_env.allow_list();
    if args.executor == ExecutorArg::Kubernetes {
        if args.artifacts.is_none() {
            return Err(Error::failed(
                "--executor kubernetes needs --artifacts URL: task pods and the daemon share it",
            ));
        }
        let mut kube =
            KubeConfig::with_defaults(leader::identity(&|name| std::env::var(name).ok()));
        kube.settings.namespace = args.namespace.clone();
        if let Some(image) = &args.weir_image {
            kube.settings.image = image.clone();
        }
        config.executor = Executor::Kubernetes(Box::new(kube));
    }
    config.artifacts = args.artifacts.clone();
    Ok(config)
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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::daemon::OpenLineageConfig;

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: Args,
    }

    fn config(argv: &[&str]) -> Config {
        let serve = Serve::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()))
            .expect("valid flags");
        config_of(&serve.args).expect("a configuration")
    }

    /// `--openlineage-*` apply to the flags' source, and over a
    /// `weir.toml`'s `[openlineage]`, setting by setting.
    #[test]
    fn openlineage_flags_override_the_file_setting_by_setting() {
        let flags = config(&["--repo", "/srv/etl", "--openlineage-file", "events.jsonl"]);
        assert_eq!(
            flags.openlineage,
            OpenLineageConfig {
                file: Some("events.jsonl".into()),
                url: None,
                api_key: None,
            }
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("weir.toml");
        std::fs::write(
            &path,
            "[openlineage]\nfile = \"from-file.jsonl\"\nurl = \"http://marquez:5000\"\n\
             [[sources]]\nrepo = \"/srv/etl\"\n",
        )
        .expect("write");
        let path = path.to_str().expect("utf-8");
        let file = config(&["--config", path]);
        assert_eq!(file.openlineage.file, Some("from-file.jsonl".into()));
        let over = config(&["--config", path, "--openlineage-file", "from-flag.jsonl"]);
        assert_eq!(
            over.openlineage,
            OpenLineageConfig {
                file: Some("from-flag.jsonl".into()),
                url: Some("http://marquez:5000".into()),
                api_key: None,
            }
        );
    }
}
