//! `weir sync`: one reconcile pass of one source.

use chrono::Utc;
use serde_json::json;

use super::exit::{self, Error, ExitStatus};
use super::render::{self, Format};
use super::source_args::CredentialArgs;
use super::store_args::{StoreArgs, block_on};
use crate::reconcile::{self, Outcome, Snapshot};
use crate::source::dir::DEFAULT_MAX_FILE_SIZE;
use crate::source::git::{GitSource, SourceSpec};
use crate::store::{Changes, SourceError, VersionKey};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Local path or URL of the Git repository.
    #[arg(long)]
    pub repo: String,
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
    /// Project of definitions without `metadata.project`.
    #[arg(long, default_value = "default")]
    pub project: String,
    /// Reconcile the head only when it is signed by one of these keys: files
    /// in SSH `allowed_signers` format and/or armored OpenPGP public keys
    /// (repeatable).
    #[arg(long)]
    pub trusted_keys: Vec<std::path::PathBuf>,
    /// Largest definition file read, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_FILE_SIZE)]
    pub max_file_size: u64,
    /// How to print: `table` for people, `json`, or `github` (pull-request annotations).
    #[arg(short = 'o', long = "output", visible_alias = "format", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

pub fn run(args: &Args) -> exit::Result {
    let spec = SourceSpec {
        repo: args.repo.clone(),
        branch: args.branch.clone(),
        path: args.path.clone(),
        credentials: args.credentials.credentials(),
    };
    let mut options = reconcile::Options {
        max_file_size: args.max_file_size,
        ..reconcile::Options::default()
    };
    options.validate.default_project = args.project.clone();
    options.trusted_keys = super::source_args::trusted_keys(&args.trusted_keys)?;
    // Another process may reconcile the same source between our read and
    // our write; the store then refuses our plan and we plan again. The
    // snapshot of the last pass makes this one read only what changed; it
    // is dropped when it does not describe the store's state.
    let mut attempts = 0;
    let mut use_snapshot = true;
    let (source, outcome) = loop {
        attempts += 1;
        let git = GitSource::open(&spec, &args.store.state_dir).map_err(Error::failed)?;
        let snapshot_path = Snapshot::path(&args.store.state_dir, &git.key());
        let base = use_snapshot
            .then(|| Snapshot::read(&snapshot_path))
            .flatten();
        let loaded = match reconcile::load(&git, &options, base.as_ref()) {
            Ok(l) => l,
            Err(e) => {
                // The source exists but cannot be read now: say so in its
                // status (I3: the failure is visible) and keep the last good state.
                let error = SourceError {
                    reason: e.metric_label().to_owned(),
                    message: e.to_string(),
                    diagnostics: json!([]),
                };
                let key = git.key();
                let recorded = block_on(async {
                    args.store
                        .open()
                        .await?
                        .record_source_error(&key, &error, Utc::now())
                        .await
                });
                if let Err(store_error) = recorded {
                    tracing::warn!(error = %store_error, "could not record the source's error");
                }
                return Err(Error::failed(e));
            }
        };
        let source = loaded.source.clone();
        let outcome = block_on(async {
            let store = args.store.open().await?;
            reconcile::register(store.as_ref(), loaded, Utc::now()).await
        });
        match outcome {
            Err(reconcile::Error::Store(crate::store::Error::Conflict { .. })) if attempts < 5 => {
                tracing::info!(source = %source.0, attempts, "source reconciled concurrently; planning again");
            }
            Err(e @ reconcile::Error::StaleSnapshot { .. }) if attempts < 5 => {
                tracing::info!(source = %source.0, reason = %e, "reading the whole tree");
                use_snapshot = false;
            }
            Ok(Outcome::Reconciled {
                snapshot: Some(snapshot),
                commit,
                changes,
            }) => {
                if let Err(e) = snapshot.write(&snapshot_path) {
                    // Only speed is lost: the next pass reads the whole tree.
                    tracing::warn!(path = %snapshot_path.display(), error = %e, "cannot keep the source's snapshot");
                }
                let outcome = Outcome::Reconciled {
                    commit,
                    changes,
                    snapshot: None,
                };
                break (source, Ok(outcome));
            }
            outcome => break (source, outcome),
        }
    };
    let prefix = if args.path.is_empty() {
        String::new()
    } else {
        format!("{}/", args.path.trim_matches('/'))
    };
    match outcome.map_err(Error::failed)? {
        Outcome::Reconciled {
            commit, changes, ..
        } => {
            if args.output == Format::Json {
                println!(
                    "{:#}",
                    changes_json(&source.0, "reconciled", &commit.id.0, &changes)
                );
            } else {
                print!("{}", human_changes(&commit.id.0, &commit.message, &changes));
            }
            Ok(ExitStatus::Success)
        }
        Outcome::Rejected { commit, report } => {
            if args.output == Format::Json {
                let diagnostics: Vec<_> = report
                    .diagnostics
                    .iter()
                    .map(|d| d.to_json(&prefix))
                    .collect();
                println!(
                    "{:#}",
                    json!({
                        "source": source.0,
                        "status": "rejected",
                        "commit": commit.id.0,
                        "diagnostics": diagnostics,
                    })
                );
                Ok(ExitStatus::Failure)
            } else {
                print!("{}", render::report(&report, args.output, &prefix));
                Err(Error::invalid(format!(
                    "commit {} is invalid and was not reconciled; the previous active set stays",
                    commit.id.short()
                )))
            }
        }
        Outcome::Untrusted { commit, refusal } => {
            if args.output == Format::Json {
                println!(
                    "{:#}",
                    json!({
                        "source": source.0,
                        "status": "untrusted",
                        "commit": commit.id.0,
                        "reason": refusal.reason(),
                        "message": refusal.to_string(),
                    })
                );
                Ok(ExitStatus::Failure)
            } else {
                Err(Error::invalid(format!(
                    "{refusal}; it was not reconciled and the previous active set stays"
                )))
            }
        }
    }
}

fn keys_json(keys: &[VersionKey]) -> serde_json::Value {
    json!(
        keys.iter()
            .map(|k| json!({
                "project": k.entity.project,
                "kind": k.entity.kind,
                "name": k.entity.name,
                "version": k.digest.short(),
            }))
            .collect::<Vec<_>>()
    )
}

fn changes_json(source: &str, status: &str, commit: &str, changes: &Changes) -> serde_json::Value {
    let registered: Vec<VersionKey> = changes.registered.iter().map(|v| v.key.clone()).collect();
    json!({
        "source": source,
        "status": status,
        "commit": commit,
        "registered": keys_json(&registered),
        "activated": keys_json(&changes.activated),
        "updated": keys_json(&changes.updated),
        "reactivated": keys_json(&changes.reactivated),
        "deactivated": keys_json(&changes.deactivated),
        "active": changes.active.len(),
    })
}

fn human_changes(commit: &str, message: &str, changes: &Changes) -> String {
    let subject = message.lines().next().unwrap_or("");
    let mut out = format!("reconciled {} {subject}\n", crate::spec::short_sha(commit));
    let mut line = |label: &str, keys: &[VersionKey]| {
        for k in keys {
            out.push_str(&format!(
                "  {label:<12} {}/{} {}\n",
                k.entity.kind,
                k.entity.name,
                k.digest.short()
            ));
        }
    };
    line("activated", &changes.activated);
    line("updated", &changes.updated);
    line("reactivated", &changes.reactivated);
    line("deactivated", &changes.deactivated);
    out.push_str(&format!(
        "{} registered, {} active\n",
        changes.registered.len(),
        changes.active.len()
    ));
    out
}
