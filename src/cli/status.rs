//! `weir status` and `weir audit`: what each source last reconciled or
//! refused, which engine drives the store (its engine lease), and the log
//! of every change. `-o json` prints the sources (`/api/v1/sources`, a
//! contract scripts read); the table also shows the engine lease
//! (`/api/v1/status` has both).

use serde_json::json;

use super::Output;
use super::exit::{self, Error, ExitStatus};
use super::origin::ServerArgs;
use super::store_args::{StoreArgs, block_on};
use crate::spec::CommitId;
use crate::store::AuditEntry;
use crate::views::{self, EngineLeaseView, SourceView};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How to print: `table` for people, or `json` for scripts.
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
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &Args) -> exit::Result {
    let status = args.server.origin(&args.store).and_then(|o| o.status())?;
    match args.output {
        Output::Json => println!("{:#}", views::to_json(&status.sources)),
        Output::Table => print!(
            "{}{}",
            table(&status.sources),
            lease_table(status.engine_lease.as_ref())
        ),
    }
    Ok(ExitStatus::Success)
}

/// Which engine drives the store: its lease's holder, since when, until
/// when, and whether the lease is live.
fn lease_table(lease: Option<&EngineLeaseView>) -> String {
    let at =
        |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let Some(lease) = lease else {
        return "engine lease: none (no engine drives this store)\n".to_owned();
    };
    let state = if lease.live {
        "live: this engine drives the store"
    } else {
        "expired: the next engine to start takes it over"
    };
    format!(
        "engine lease: {state}\n  holder      {}\n  since       {}\n  until       {}\n",
        lease.holder,
        at(&lease.since),
        at(&lease.until),
    )
}

/// Each source with its last reconciled and attempted commit, and why the
/// last attempt was refused (with its diagnostics).
fn table(sources: &[SourceView]) -> String {
    let short = |c: &Option<CommitId>| c.as_ref().map_or("-", CommitId::short).to_owned();
    let mut out = String::new();
    for s in sources {
        out.push_str(&format!("{}\n", s.source.0));
        out.push_str(&format!(
            "  reconciled  {}\n",
            short(&s.last_reconciled_commit)
        ));
        out.push_str(&format!(
            "  attempted   {}\n",
            short(&s.last_attempted_commit)
        ));
        if let Some(e) = &s.error {
            out.push_str(&format!("  error       {}: {}\n", e.reason, e.message));
            for d in e.diagnostics.as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "    {}:{}:{} {} {}\n",
                    d["file"].as_str().unwrap_or(""),
                    d["line"],
                    d["column"],
                    d["code"].as_str().unwrap_or(""),
                    d["message"].as_str().unwrap_or("")
                ));
            }
        }
    }
    out
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

pub fn run_audit(args: &AuditArgs) -> exit::Result {
    let entries = block_on(async { args.store.open().await?.audit(args.limit).await })
        .map_err(Error::failed)?;
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
    Ok(ExitStatus::Success)
}
