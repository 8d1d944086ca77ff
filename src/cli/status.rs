//! `weir status` and `weir audit`: what each source last reconciled or
//! refused, and the log of every change.

use serde_json::json;

use super::store_args::{StoreArgs, block_on};
use super::versions::Output;
use crate::store::{AuditEntry, SourceStatus};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Most entries shown, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

fn time(t: &Option<chrono::DateTime<chrono::Utc>>) -> serde_json::Value {
    json!(t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

pub fn status_json(s: &SourceStatus) -> serde_json::Value {
    json!({
        "source": s.source.0,
        "lastReconciledCommit": s.last_reconciled.as_ref().map(|c| c.0.as_str()),
        "lastReconciledAt": time(&s.last_reconciled_at),
        "lastAttemptedCommit": s.last_attempted.as_ref().map(|c| c.0.as_str()),
        "lastAttemptedAt": time(&s.last_attempted_at),
        "ready": s.error.is_none() && s.last_reconciled.is_some(),
        "error": s.error.as_ref().map(|e| json!({
            "reason": e.reason,
            "message": e.message,
            "diagnostics": e.diagnostics,
        })),
    })
}

pub fn run(args: &Args) -> u8 {
    match block_on(async { args.store.open().await?.sources().await }) {
        Ok(sources) => {
            match args.output {
                Output::Json => println!(
                    "{:#}",
                    json!(sources.iter().map(status_json).collect::<Vec<_>>())
                ),
                Output::Table => {
                    for s in &sources {
                        let short = |c: &Option<crate::store::CommitId>| {
                            c.as_ref().map_or("-".to_owned(), |c| c.short().to_owned())
                        };
                        println!("{}", s.source.0);
                        println!("  reconciled  {}", short(&s.last_reconciled));
                        println!("  attempted   {}", short(&s.last_attempted));
                        if let Some(e) = &s.error {
                            println!("  error       {}: {}", e.reason, e.message);
                            for d in e.diagnostics.as_array().into_iter().flatten() {
                                println!(
                                    "    {}:{}:{} {} {}",
                                    d["file"].as_str().unwrap_or(""),
                                    d["line"],
                                    d["column"],
                                    d["code"].as_str().unwrap_or(""),
                                    d["message"].as_str().unwrap_or("")
                                );
                            }
                        }
                    }
                }
            }
            super::EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            super::EXIT_ERROR
        }
    }
}

fn audit_json(a: &AuditEntry) -> serde_json::Value {
    json!({
        "id": a.id,
        "at": a.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "source": a.source.0,
        "commit": a.commit.0,
        "actor": { "name": a.actor.name, "email": a.actor.email },
        "action": a.action,
        "details": a.details,
    })
}

pub fn run_audit(args: &AuditArgs) -> u8 {
    match block_on(async { args.store.open().await?.audit(args.limit).await }) {
        Ok(entries) => {
            match args.output {
                Output::Json => println!(
                    "{:#}",
                    json!(entries.iter().map(audit_json).collect::<Vec<_>>())
                ),
                Output::Table => {
                    for a in &entries {
                        let count = |k: &str| a.details[k].as_array().map_or(0, Vec::len);
                        println!(
                            "{} {} {} by {} <{}>: {} registered, {} reactivated, {} deactivated",
                            a.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            a.action,
                            a.commit.short(),
                            a.actor.name,
                            a.actor.email,
                            count("registered"),
                            count("reactivated"),
                            count("deactivated"),
                        );
                    }
                }
            }
            super::EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            super::EXIT_ERROR
        }
    }
}
