//! `weir approve EXECUTION NODE [--reject] [--comment TEXT]`: decides an
//! approval gate (a node with `approve:`) that waits, as `by` (default the
//! login name); recorded in the execution and the audit log. The engine
//! driving the execution then ends the gate. With `--server`, the daemon
//! records it (`POST /api/v1/executions/{id}/nodes/{node}/approval`).

use super::Output;
use super::exit::{self, Error, ExitStatus};
use super::launchplans::login_name;
use super::origin::{ReadError, ServerArgs};
use super::store_args::{StoreArgs, block_on};
use crate::spec::ExecutionId;
use crate::views::{self, ApprovalBody, ApprovalError, DecisionView, Verdict};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The execution whose gate to decide.
    pub id: ExecutionId,
    /// The gate: its node's path (`sign-off`, or `release/sign-off` inside a sub-workflow).
    pub node: String,
    /// Reject instead of approving: the gate fails, and so does the execution.
    #[arg(long)]
    pub reject: bool,
    /// Why, recorded with the decision.
    #[arg(long)]
    pub comment: Option<String>,
    /// Who decides, recorded with the decision (default: the login name, `$USER`).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &Args) -> exit::Result {
    let body = ApprovalBody {
        decision: if args.reject {
            Verdict::Reject
        } else {
            Verdict::Approve
        },
        comment: args.comment.clone(),
        by: Some(args.by.clone().unwrap_or_else(login_name)),
    };
    let decided =
        match args.server.client()? {
            Some(client) => client
                .approve(&args.id, &args.node, &body)
                .map_err(ReadError::from)?,
            None => block_on(async {
                let store = args.store.open_existing().await?;
                let now = chrono::Utc::now();
                views::decide(store.as_ref(), &args.id, &args.node, &body, "", now)
                    .await
                    .map_err(|e| match e {
                        e @ (ApprovalError::UnknownExecution(_)
                        | ApprovalError::UnknownNode { .. }) => Error::not_found(e),
                        e @ ApprovalError::Store(_) => Error::failed(e),
                        e @ ApprovalError::Invalid(_) => Error::failed(e),
                        e => Error::invalid(e),
                    })
            })?,
        };
    match args.output {
        Output::Json => println!("{:#}", views::to_json(&decided)),
        Output::Table => println!("{}", said(&decided)),
    }
    Ok(ExitStatus::Success)
}

/// What `weir approve` says it did.
fn said(d: &DecisionView) -> String {
    let verb = match d.decision {
        Verdict::Approve => "approved",
        Verdict::Reject => "rejected",
    };
    format!("{verb} {} of {} as {}", d.node, d.execution, d.by)
}
