//! `weir.toml`: the daemon's configuration for several sources, one of the
//! two front ends of [`Config`] (the other is `weir serve`'s flags). Every
//! setting left out keeps its default ([`Config::with_defaults`], the
//! constants of `super`); secrets are references to a file or an
//! environment variable, never values (a value in the file would end up in
//! Git, in backups and in `ps`).
//!
//! ```toml
//! state_dir = ".weir"                 # default
//! database = "postgres://weir@db/weir" # default: SQLite in state_dir
//! listen = "127.0.0.1:7878"           # default
//! executor = "local"                  # default
//! tick = "1s"                         # scheduler and engine, default
//! grace = "30s"                       # shutdown grace, default
//! lease_duration = "15s"              # the store's engine lease, default
//! public_url = "https://weir.acme.dev" # links in notifications; default http://<listen>
//!
//! [http]                              # bounds on the HTTP server's connections
//! header_read_timeout = "10s"         # request line and headers, default
//! request_timeout = "60s"             # a whole request, body and response, default
//! idle_timeout = "60s"                # a kept-alive connection between requests, default
//! max_connections = 512               # served at once; more wait, default
//!
//! [openlineage]                       # where OpenLineage RunEvents go; default nowhere
//! file = "/var/log/weir/lineage.jsonl" # appended, one event a line
//! url = "http://marquez:5000"         # POSTed to <url>/api/v1/lineage
//!
//! [console]                           # the web console at /
//! rollback = "commit"                 # write rollbacks' commits to a local source's
//!                                     # working tree ("push": and push them); default
//!                                     # "off": the console shows `weir rollback`
//!
//! [tasks]                             # what a task's process inherits
//! env = ["AWS_*", "HTTPS_PROXY"]      # the daemon's variables tasks get beyond
//!                                     # PATH, HOME, LANG, LC_ALL, TZ; default none
//!
//! [secrets]
//! github_webhook_secret = { file = "/run/secrets/github" }
//! generic_webhook_token = { env = "WEIR_WEBHOOK_TOKEN" }
//! api_token = { file = "/run/secrets/api" }
//! openlineage_api_key = { env = "WEIR_OPENLINEAGE_API_KEY" }  # sent to [openlineage] url
//!
//! [[sources]]
//! repo = "https://github.com/acme/pipelines.git"
//! branch = "main"                     # default: the remote's default branch
//! path = "pipelines"                  # default: the repository's root
//! project = "growth"                  # default: "default"
//! interval = "60s"                    # default
//! token_file = "/run/secrets/github-token"   # or token_env, ssh_key_file
//! trusted_keys = ["/etc/weir/allowed_signers"] # default: none (no check)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{Config, Executor, KubeConfig, OpenLineageConfig, SourceConfig};
use crate::executor::environment::AllowList;
use crate::http::Secrets;
use crate::source::credentials::Credentials;
use crate::source::git::SourceSpec;
use crate::source::verify::TrustedKeys;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a valid weir.toml: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("`{path}`: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    state_dir: Option<PathBuf>,
    #[serde(default)]
    database: Option<Database>,
    listen: Option<std::net::SocketAddr>,
    executor: Option<String>,
    tick: Option<String>,
    grace: Option<String>,
    /// The store's engine lease (one engine drives a store at a time).
    #[serde(default)]
    lease_duration: Option<String>,
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default)]
    secrets: SecretsFile,
    sources: Vec<SourceFile>,
    #[serde(default)]
    kubernetes: KubernetesFile,
    #[serde(default)]
    artifacts: Option<ArtifactsFile>,
    #[serde(default)]
    http: HttpFile,
    #[serde(default)]
    tasks: TasksFile,
    #[serde(default)]
    openlineage: OpenLineageFile,
    #[serde(default)]
    console: ConsoleFile,
}

/// `[console]`: what the web console may write.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleFile {
    #[serde(default)]
    rollback: crate::http::RollbackWrites,
}

/// `[openlineage]`: where the OpenLineage RunEvents of the executions the
/// daemon drives go (`crate::lineage::openlineage`); neither: none is
/// sent. Whether they can be used (the file opened, the URL http(s)) is
/// checked when the daemon starts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenLineageFile {
    file: Option<PathBuf>,
    url: Option<String>,
}

/// `[tasks]`: what a task's process inherits from the daemon's environment
/// (`crate::executor::environment`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TasksFile {
    /// Exact names (`HTTPS_PROXY`) and prefixes (`AWS_*`); default none.
    #[serde(default)]
    env: Vec<String>,
}

/// `[http]`: bounds on the HTTP server's connections (`http::Limits`);
/// each left out keeps its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    header_read_timeout: Option<String>,
    request_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
}

/// `database = "sqlite://…"` or, for a URL holding a password,
/// `database = { env = "WEIR_DB" }` / `{ file = "…" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Database {
    Url(String),
    Reference(Reference),
}

/// `[kubernetes]`: the Kubernetes executor's settings (with `executor =
/// "kubernetes"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KubernetesFile {
    /// Where Jobs and the Lease live; default: the pod's namespace
    /// (`POD_NAMESPACE`), else `default`.
    namespace: Option<String>,
    /// The weir image task pods copy `weir` from.
    image: Option<String>,
    /// The image of script and notebook tasks that name none.
    default_task_image: Option<String>,
    /// Task pods' service account when a task names none.
    service_account: Option<String>,
    ttl_after_finished: Option<String>,
    /// A ReadWriteMany PersistentVolumeClaim: the work folder shared by
    /// the pods of a custom resource (a Spark driver and its executors).
    work_claim: Option<String>,
    /// The leader-election Lease; default `weir-leader`.
    lease: Option<String>,
    lease_duration: Option<String>,
}

/// `[artifacts]`: where artifacts' bytes live (default: `<state_dir>/artifacts`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactsFile {
    url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    github_webhook_secret: Option<SecretRef>,
    generic_webhook_token: Option<SecretRef>,
    api_token: Option<SecretRef>,
    openlineage_api_key: Option<SecretRef>,
}

/// Where a secret is: `{ file = "…" }` or `{ env = "…" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SecretRef {
    Reference(Reference),
    Inline(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reference {
    file: Option<PathBuf>,
    env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFile {
    repo: String,
    branch: Option<String>,
    #[serde(default)]
    path: String,
    project: Option<String>,
    interval: Option<String>,
    ssh_key_file: Option<PathBuf>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    #[serde(default)]
    trusted_keys: Vec<PathBuf>,
}

/// Reads and checks a `weir.toml`.
pub fn load(path: &Path) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Parses a `weir.toml`; `env` reads environment variables (injected for
/// tests).
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Error> {
    let invalid = |message: String| Error::Invalid {
        path: path.to_owned(),
        message,
    };
    let file: File = toml::from_str(text).map_err(|e| Error::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let executor = file
        .executor
        .as_deref()
        .unwrap_or(Executor::default().name());
    if !matches!(executor, "local" | "kubernetes") {
        return Err(invalid(format!(
            "executor `{executor}` is unknown (use \"local\" or \"kubernetes\")"
        )));
    }
    if file.sources.is_empty() {
        return Err(invalid("at least one [[sources]] is needed".into()));
    }
    let duration = |text: &str, what: &str| {
        crate::spec::duration::parse(text).map_err(|e| invalid(format!("{what}: {e}")))
    };
    // A setting given replaces its default; one left out keeps it.
    let or = |text: &Option<String>, what: &str, default| match text {
        Some(text) => duration(text, what),
        None => Ok(default),
    };
    let mut config = Config::with_defaults(Vec::new());
    let credential_variables = credential_variables(&file);
    let secret = |name: &str, r: &Option<SecretRef>| -> Result<Option<String>, Error> {
        let Some(r) = r else { return Ok(None) };
        let reference = match r {
            SecretRef::Reference(reference) => reference,
            SecretRef::Inline(_) => {
                return Err(invalid(format!(
                    "secrets.{name} must be a reference, `{{ file = \"…\" }}` or `{{ env = \"…\" }}`, never the secret itself"
                )));
            }
        };
        let value = match (&reference.file, &reference.env) {
            (Some(file), None) => std::fs::read_to_string(file).map_err(|e| {
                invalid(format!(
                    "secrets.{name}: cannot read `{}`: {e}",
                    file.display()
                ))
            })?,
            (None, Some(var)) => env(var).ok_or_else(|| {
                invalid(format!(
                    "secrets.{name}: environment variable `{var}` is not set"
                ))
            })?,
            _ => {
                return Err(invalid(format!(
                    "secrets.{name}: give exactly one of `file` and `env`"
                )));
            }
        };
        let value = value.trim_end_matches(['\n', '\r']).to_owned();
        if value.is_empty() {
            return Err(invalid(format!("secrets.{name} is empty")));
        }
        Ok(Some(value))
    };
    let secrets = Secrets {
        github_webhook_secret: secret(
            "github_webhook_secret",
            &file.secrets.github_webhook_secret,
        )?
        .map(String::into_bytes),
        generic_webhook_token: secret(
            "generic_webhook_token",
            &file.secrets.generic_webhook_token,
        )?,
        api_token: secret("api_token", &file.secrets.api_token)?,
    };
    for (i, s) in file.sources.iter().enumerate() {
        let mut source = SourceConfig::with_defaults(SourceSpec {
            repo: s.repo.clone(),
            branch: s.branch.clone(),
            path: s.path.clone(),
            credentials: Credentials {
                ssh_key_file: s.ssh_key_file.clone(),
                token_file: s.token_file.clone(),
                token_env: s.token_env.clone(),
            },
        });
        if let Some(project) = &s.project {
            source.options.validate.default_project = project.clone();
        }
        if !s.trusted_keys.is_empty() {
            let keys = TrustedKeys::load(&s.trusted_keys)
                .map_err(|e| invalid(format!("sources[{i}].trusted_keys: {e}")))?;
            source.options.trusted_keys = Some(Arc::new(keys));
        }
        source.interval = or(
            &s.interval,
            &format!("sources[{i}].interval"),
            source.interval,
        )?;
        config.sources.push(source);
    }
    if let Some(state_dir) = file.state_dir {
        config.db_url = super::sqlite_url(&state_dir);
        config.state_dir = state_dir;
    }
    match file.database {
        None => {}
        Some(Database::Url(url)) => config.db_url = url,
        Some(Database::Reference(reference)) => {
            config.db_url =
                secret("database", &Some(SecretRef::Reference(reference)))?.unwrap_or_default()
        }
    }
    if executor == "kubernetes" {
        let k = &file.kubernetes;
        let mut kube = KubeConfig::with_defaults(crate::daemon::leader::identity(env));
        let settings = &mut kube.settings;
        if let Some(namespace) = k.namespace.clone().or_else(|| env("POD_NAMESPACE")) {
            settings.namespace = namespace;
        }
        if let Some(image) = &k.image {
            settings.image = image.clone();
        }
        if let Some(image) = &k.default_task_image {
            settings.default_task_image = image.clone();
        }
        settings.service_account = k.service_account.clone();
        settings.work_claim = k.work_claim.clone();
        settings.ttl_after_finished = or(
            &k.ttl_after_finished,
            "kubernetes.ttl_after_finished",
            settings.ttl_after_finished,
        )?;
        if let Some(lease) = &k.lease {
            kube.lease = lease.clone();
        }
        kube.lease_duration = or(
            &k.lease_duration,
            "kubernetes.lease_duration",
            kube.lease_duration,
        )?;
        config.executor = Executor::Kubernetes(Box::new(kube));
    }
    if matches!(config.executor, Executor::Kubernetes(_)) && file.artifacts.is_none() {
        return Err(invalid(
            "executor \"kubernetes\" needs `[artifacts] url`: task pods and the daemon share it"
                .into(),
        ));
    }
    config.http = {
        let defaults = config.http;
        let max_connections = file
            .http
            .max_connections
            .unwrap_or(defaults.max_connections);
        if max_connections == 0 {
            return Err(invalid("http.max_connections must be at least 1".into()));
        }
        crate::http::Limits {
            header_read_timeout: or(
                &file.http.header_read_timeout,
                "http.header_read_timeout",
                defaults.header_read_timeout,
            )?,
            request_timeout: or(
                &file.http.request_timeout,
                "http.request_timeout",
                defaults.request_timeout,
            )?,
            idle_timeout: or(
                &file.http.idle_timeout,
                "http.idle_timeout",
                defaults.idle_timeout,
            )?,
            max_connections,
        }
    };
    config.task_env =
        AllowList::parse(&file.tasks.env).map_err(|e| invalid(format!("tasks.env: {e}")))?;
    if let Some(message) = reexposed_credential(&file.tasks.env, &credential_variables) {
        return Err(invalid(message));
    }
    if let Some(listen) = file.listen {
        config.listen = listen;
    }
    config.secrets = secrets;
    config.tick = or(&file.tick, "tick", config.tick)?;
    config.grace = or(&file.grace, "grace", config.grace)?;
    config.lease_duration = or(
        &file.lease_duration,
        "lease_duration",
        config.lease_duration,
    )?;
    config.public_url = file.public_url.clone();
    config.artifacts = file.artifacts.map(|a| a.url);
    config.openlineage = OpenLineageConfig {
        file: file.openlineage.file,
        url: file.openlineage.url,
        api_key: secret("openlineage_api_key", &file.secrets.openlineage_api_key)?
            .map(super::ApiKey),
    };
    config.console_rollback = file.console.rollback;
    Ok(config)
}

/// Each environment variable this file reads a credential from, with the
/// setting that reads it: `{ env = … }` of `database` and of `[secrets]`,
/// and each source's `token_env`. A notification's secret (`{ env = … }`
/// in a workflow's `notify`) is named by the definitions, per launch plan,
/// not here, so it cannot be known when the file is loaded: an allow-list
/// must not name those either, and nothing here can check it.
fn credential_variables(file: &File) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if let Some(Database::Reference(Reference { env: Some(var), .. })) = &file.database {
        found.push(("database".to_owned(), var.clone()));
    }
    for (name, r) in [
        ("github_webhook_secret", &file.secrets.github_webhook_secret),
        ("generic_webhook_token", &file.secrets.generic_webhook_token),
        ("api_token", &file.secrets.api_token),
        ("openlineage_api_key", &file.secrets.openlineage_api_key),
    ] {
        if let Some(SecretRef::Reference(Reference { env: Some(var), .. })) = r {
            found.push((format!("secrets.{name}"), var.clone()));
        }
    }
    for (i, s) in file.sources.iter().enumerate() {
        if let Some(var) = &s.token_env {
            found.push((format!("sources[{i}].token_env"), var.clone()));
        }
    }
    found
}

/// Why `[tasks] env` is refused, if one of its entries lets a task inherit
/// a variable the daemon reads a credential from (`env = ["DATABASE_*"]`
/// beside `database = { env = "DATABASE_URL" }`): that would hand every
/// task the daemon's own credential. `WEIR_*` is refused by the allow-list
/// itself; this covers the names the file chooses.
fn reexposed_credential(entries: &[String], credentials: &[(String, String)]) -> Option<String> {
    for entry in entries {
        let Ok(single) = AllowList::parse(std::slice::from_ref(entry)) else {
            continue;
        };
        for (setting, var) in credentials {
            // `PATH`, `HOME`… reach every task whatever the list says.
            if single.allows(var) && !AllowList::default().allows(var) {
                return Some(format!(
                    "tasks.env: `{}` would let every task inherit `{var}`, which {setting} reads a credential from; \
                     name the variables tasks need without it",
                    entry.trim()
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::config::DEFAULT_INTERVAL;
    use std::time::Duration;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOOK_TOKEN" => Some("t0ken".to_owned()),
            "WEIR_TEST_SECRET" => Some("from-the-environment".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn a_full_file_with_every_default_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("gh");
        std::fs::write(&secret, "s3cret\n").expect("write");
        let text = format!(
            r#"
[secrets]
github_webhook_secret = {{ file = "{}" }}
generic_webhook_token = {{ env = "HOOK_TOKEN" }}

[[sources]]
repo = "https://github.com/acme/pipelines.git"
path = "pipelines"
project = "growth"

[[sources]]
repo = "/srv/etl"
interval = "5m"
"#,
            secret.display()
        );
        let config = parse(&text, Path::new("weir.toml"), &env).expect("valid");
        assert_eq!(config.sources.len(), 2);
        assert_eq!(config.sources[0].spec.path, "pipelines");
        assert_eq!(config.sources[0].options.validate.default_project, "growth");
        assert_eq!(config.sources[0].interval, DEFAULT_INTERVAL);
        assert_eq!(config.sources[1].interval, Duration::from_secs(300));
        assert_eq!(config.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(config.db_url, "sqlite://.weir/weir.db");
        assert_eq!(config.tick, Duration::from_secs(1));
        assert_eq!(config.http, crate::http::Limits::default());
        assert_eq!(
            config.secrets.github_webhook_secret.as_deref(),
            Some(&b"s3cret"[..])
        );
        assert_eq!(
            config.secrets.generic_webhook_token.as_deref(),
            Some("t0ken")
        );
        assert!(config.secrets.api_token.is_none());
    }

    #[test]
    fn trusted_keys_are_read_per_source_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signers = dir.path().join("allowed_signers");
        std::fs::write(
            &signers,
            "alice@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEGxGKnEGVqtewyT0A9M3hfzLEtWKp4b4HpmP/54DzU\n",
        )
        .expect("write");
        let text = format!(
            "[[sources]]\nrepo = \"/srv/etl\"\ntrusted_keys = [\"{}\"]\n[[sources]]\nrepo = \"/srv/ml\"\n",
            signers.display()
        );
        let config = parse(&text, Path::new("weir.toml"), &env).expect("valid");
        let keys = config.sources[0]
            .options
            .trusted_keys
            .as_ref()
            .expect("keys");
        assert_eq!(keys.len(), 1);
        assert!(config.sources[1].options.trusted_keys.is_none());

        let missing = text.replace("allowed_signers", "nope");
        let Err(err) = parse(&missing, Path::new("weir.toml"), &env) else {
            panic!("a missing key file: accepted")
        };
        let err = err.to_string();
        assert!(
            err.contains("sources[0].trusted_keys") && err.contains("nope"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_never_inline_and_mistakes_are_named() {
        let inline = r#"
[secrets]
api_token = "hunter2"
[[sources]]
repo = "/srv/etl"
"#;
        let Err(err) = parse(inline, Path::new("weir.toml"), &env) else {
            panic!("inline: accepted")
        };
        assert!(err.to_string().contains("never the secret itself"), "{err}");
        assert!(
            !err.to_string().contains("hunter2"),
            "the secret is not echoed"
        );

        let typo = "[[sources]]\nrepo = \"/srv/etl\"\nintervall = \"5m\"\n";
        let Err(err) = parse(typo, Path::new("weir.toml"), &env) else {
            panic!("typo: accepted")
        };
        assert!(err.to_string().contains("intervall"), "{err}");

        let missing =
            "[secrets]\napi_token = { env = \"NOPE\" }\n[[sources]]\nrepo = \"/srv/etl\"\n";
        let Err(err) = parse(missing, Path::new("weir.toml"), &env) else {
            panic!("unset: accepted")
        };
        assert!(err.to_string().contains("`NOPE` is not set"), "{err}");

        let none = "listen = \"127.0.0.1:9000\"\nsources = []\n";
        let Err(err) = parse(none, Path::new("weir.toml"), &env) else {
            panic!("no source: accepted")
        };
        assert!(err.to_string().contains("at least one"), "{err}");
    }

    #[test]
    fn http_limits_are_settings_with_defaults() {
        let text = "[http]\nheader_read_timeout = \"2s\"\nmax_connections = 8\n[[sources]]\nrepo = \"/srv/etl\"\n";
        let config = parse(text, Path::new("weir.toml"), &env).expect("valid");
        let defaults = crate::http::Limits::default();
        assert_eq!(
            config.http,
            crate::http::Limits {
                header_read_timeout: Duration::from_secs(2),
                max_connections: 8,
                ..defaults
            }
        );
        let bad = text.replace("\"2s\"", "\"2\"");
        let Err(err) = parse(&bad, Path::new("weir.toml"), &env) else {
            panic!("a bare number: accepted")
        };
        assert!(
            err.to_string().contains("http.header_read_timeout"),
            "{err}"
        );
        let none = text.replace("= 8", "= 0");
        assert!(parse(&none, Path::new("weir.toml"), &env).is_err());
    }

    #[test]
    fn tasks_inherit_only_what_tasks_env_allows() {
        let base = "[[sources]]\nrepo = \"/srv/etl\"\n";
        let config = parse(base, Path::new("weir.toml"), &env).expect("valid");
        assert!(config.task_env.is_empty());
        assert!(!config.task_env.allows("AWS_REGION"));

        let text = format!("[tasks]\nenv = [\"AWS_*\", \"HTTPS_PROXY\"]\n{base}");
        let config = parse(&text, Path::new("weir.toml"), &env).expect("valid");
        assert!(config.task_env.allows("AWS_REGION"));
        assert!(config.task_env.allows("HTTPS_PROXY"));
        assert!(!config.task_env.allows("HTTPS_PROXY_PASSWORD"));

        let leaky = format!("[tasks]\nenv = [\"WEIR_*\"]\n{base}");
        let Err(err) = parse(&leaky, Path::new("weir.toml"), &env) else {
            panic!("WEIR_*: accepted")
        };
        assert!(err.to_string().contains("tasks.env"), "{err}");
    }

    /// An allow-list entry matching a variable the file itself reads a
    /// credential from is refused, naming the entry and the setting.
    #[test]
    fn tasks_env_cannot_reexpose_a_credential_the_file_reads() {
        let cases = [
            (
                "database = { env = \"DATABASE_URL\" }\n",
                "\"DATABASE_*\"",
                "database",
            ),
            (
                "[secrets]\napi_token = { env = \"API_TOKEN\" }\n",
                "\"API_TOKEN\"",
                "secrets.api_token",
            ),
            ("", "\"GH_*\"", "sources[0].token_env"),
        ];
        for (head, entry, setting) in cases {
            let text = format!(
                "{head}[tasks]\nenv = [\"AWS_*\", {entry}]\n[[sources]]\nrepo = \"/srv/etl\"\ntoken_env = \"GH_TOKEN\"\n"
            );
            let Err(err) = parse(&text, Path::new("weir.toml"), &|name: &str| {
                Some(format!("value-of-{name}"))
            }) else {
                panic!("{entry}: accepted")
            };
            let said = err.to_string();
            let entry = entry.trim_matches('"');
            assert!(said.contains(entry) && said.contains(setting), "{said}");
            assert!(!said.contains("value-of-"), "no credential's value: {said}");
        }
        // Entries that match none of them are fine.
        let text = "database = { env = \"DATABASE_URL\" }\n[tasks]\nenv = [\"DATA_DIR\"]\n[[sources]]\nrepo = \"/srv/etl\"\n";
        parse(text, Path::new("weir.toml"), &|n: &str| {
            Some(format!("v-{n}"))
        })
        .expect("valid");
    }

    #[test]
    fn the_console_writes_rollbacks_only_when_told_to() {
        let base = "[[sources]]\nrepo = \"/srv/etl\"\n";
        let config = parse(base, Path::new("weir.toml"), &env).expect("valid");
        assert_eq!(config.console_rollback, crate::http::RollbackWrites::Off);
        let push = format!("[console]\nrollback = \"push\"\n{base}");
        let config = parse(&push, Path::new("weir.toml"), &env).expect("valid");
        assert_eq!(config.console_rollback, crate::http::RollbackWrites::Push);
        let typo = format!("[console]\nrollback = \"yes\"\n{base}");
        let Err(error) = parse(&typo, Path::new("weir.toml"), &env) else {
            panic!("only off, commit or push")
        };
        let error = error.to_string();
        assert!(error.contains("unknown variant `yes`"), "{error}");
    }

    #[test]
    fn openlineage_is_off_unless_the_file_names_where_events_go() {
        let base = "[[sources]]\nrepo = \"/srv/etl\"\n";
        let config = parse(base, Path::new("weir.toml"), &env).expect("valid");
        assert_eq!(config.openlineage, OpenLineageConfig::default());

        let text = format!(
            "[openlineage]\nfile = \"/var/log/weir/lineage.jsonl\"\nurl = \"http://marquez:5000\"\n{base}"
        );
        let config = parse(&text, Path::new("weir.toml"), &env).expect("valid");
        assert_eq!(
            config.openlineage,
            OpenLineageConfig {
                file: Some("/var/log/weir/lineage.jsonl".into()),
                url: Some("http://marquez:5000".into()),
                api_key: None,
            }
        );
        // Its API key is a secret: read from where `[secrets]` says, never
        // written in the file, never shown.
        let keyed =
            format!("[secrets]\nopenlineage_api_key = {{ env = \"WEIR_TEST_SECRET\" }}\n{text}");
        let config = parse(&keyed, Path::new("weir.toml"), &env).expect("valid");
        let key = config.openlineage.api_key.clone().expect("a key");
        assert_eq!(key.0, "from-the-environment");
        assert!(!format!("{:?}", config.openlineage).contains("from-the-environment"));
        let inline = format!("[secrets]\nopenlineage_api_key = \"s3cret\"\n{text}");
        let Err(err) = parse(&inline, Path::new("weir.toml"), &env) else {
            panic!("an inline key: accepted")
        };
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let only_url = format!("[openlineage]\nurl = \"https://marquez.acme.dev\"\n{base}");
        let config = parse(&only_url, Path::new("weir.toml"), &env).expect("valid");
        assert_eq!(config.openlineage.file, None);

        let typo = format!("[openlineage]\nendpoint = \"http://marquez:5000\"\n{base}");
        let Err(err) = parse(&typo, Path::new("weir.toml"), &env) else {
            panic!("an unknown key: accepted")
        };
        assert!(err.to_string().contains("endpoint"), "{err}");
    }
}
