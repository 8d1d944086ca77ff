//! `weir status` and `weir audit`: what each source last reconciled or
//! refused, which engine drives the store (its engine lease), and the log
//! of every change. `-o json` prints the sources (`/api/v1/sources`, a
//! contract scripts read); the table also shows the engine lease
//! (`/api/v1/status` has both). `audit -o json` is `/api/v1/audit`.

use super::Output;
use super::exit::{self, ExitStatus};
use super::origin::ServerArgs;
use super::render::utc;
use super::store_args::StoreArgs;
use crate::spec::CommitId;
use crate::views::{self, AuditQuery, AuditView, EngineLeaseView, PausedPlanView, SourceView};

#[derive(Debug, clap::Args)]
#[command(mut_arg("api_token_file", super::origin::token_file_alias))]
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
    #[command(flatten)]
    pub server: ServerArgs,
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
            "{}{}{}{}",
            table(&status.sources),
            lease_table(status.engine_lease.as_ref()),
            paused_table(&status.paused),
            triggers_table(&status.triggers)
        ),
    }
    Ok(ExitStatus::Success)
}

/// Each launch plan trigger: what it watches, its events (and how many
/// wait under `maxPending`), where its cursor stands and its last error.
fn triggers_table(triggers: &[crate::store::TriggerStatus]) -> String {
    let mut out = String::new();
    for t in triggers {
        let c = &t.cursor;
        out.push_str(&format!(
            "trigger: {}/{} {} since {} (UTC): {} events, {} deferred, last polled {}{}{}\n",
            c.key.project,
            c.key.launch_plan,
            c.key.trigger,
            utc(&c.since),
            t.events,
            t.deferred,
            c.polled_at.as_ref().map_or_else(|| "never".to_owned(), utc),
            c.cursor
                .as_ref()
                .map_or_else(String::new, |cursor| format!(", cursor {cursor}")),
            match (&c.error, &c.error_since) {
                (Some(e), Some(since)) => format!(", failing since {}: {e}", utc(since)),
                (Some(e), None) => format!(", failing: {e}"),
                _ => String::new(),
            }
        ));
    }
    out
}

/// The launch plans paused now, if any: who paused each, when and why.
fn paused_table(paused: &[PausedPlanView]) -> String {
    let mut out = String::new();
    for p in paused {
        out.push_str(&format!(
            "paused: {}/{} since {} (UTC) by {}{}\n",
            p.project,
            p.name,
            utc(&p.pause.at),
            p.pause.by.name,
            p.pause
                .comment
                .as_ref()
                .map_or_else(String::new, |c| format!(": {c}"))
        ));
    }
    out
}

/// Which engine drives the store: its lease's holder, since when, until
/// when, and whether the lease is live.
fn lease_table(lease: Option<&EngineLeaseView>) -> String {
    let Some(lease) = lease else {
        return "engine lease: none (no engine drives this store)\n".to_owned();
    };
    let state = if lease.live {
        "live: this engine drives the store"
    } else {
        "expired: the next engine to start takes it over"
    };
    format!(
        "engine lease: {state}\n  holder      {}\n  since       {} (UTC)\n  until       {} (UTC)\n",
        lease.holder,
        utc(&lease.since),
        utc(&lease.until),
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

pub fn run_audit(args: &AuditArgs) -> exit::Result {
    let query = AuditQuery {
        limit: Some(args.limit),
    };
    let entries = args
        .server
        .origin(&args.store)
        .and_then(|o| o.audit(&query))?;
    match args.output {
        Output::Json => println!("{:#}", views::to_json(&entries)),
        Output::Table => print!("{}", audit_table(&entries)),
    }
    Ok(ExitStatus::Success)
}

/// One row a change: when, what, which commit (none for a pause or a
/// resume), whose, and what changed: how many versions a commit
/// registered, reactivated and deactivated, or which launch plan was
/// paused or resumed.
fn audit_table(entries: &[AuditView]) -> String {
    let header = ["AT (UTC)", "ACTION", "COMMIT", "BY", "CHANGE"].map(str::to_owned);
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|a| {
            let commit = a.commit.as_ref().map_or("-", |c| c.short());
            vec![
                utc(&a.at),
                a.action.clone(),
                commit.to_owned(),
                format!("{} <{}>", a.actor.name, a.actor.email),
                audit_change(a),
            ]
        })
        .collect();
    super::render::table(&header, &rows)
}

/// What an entry changed, in a few words.
fn audit_change(a: &AuditView) -> String {
    let d = &a.details;
    match a.action.as_str() {
        "paused" | "resumed" => {
            let plan = format!(
                "launch plan {}/{}",
                d["project"].as_str().unwrap_or(""),
                d["name"].as_str().unwrap_or("")
            );
            let catch_up = if d["catchUp"] == true {
                " (catch up)"
            } else {
                ""
            };
            match d["comment"].as_str() {
                Some(comment) => format!("{plan}{catch_up}: {comment}"),
                None => format!("{plan}{catch_up}"),
            }
        }
        "rejected" => d["message"].as_str().unwrap_or("").to_owned(),
        _ => {
            let count = |k: &str| d[k].as_array().map_or(0, Vec::len);
            format!(
                "{} registered, {} reactivated, {} deactivated",
                count("registered"),
                count("reactivated"),
                count("deactivated")
            )
        }
    }
}
