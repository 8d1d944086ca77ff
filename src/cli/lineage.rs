//! `weir lineage <execution-id | artifact>`: where an artifact came from
//! (upstream: the node that produced it, what that node read, and so on, each
//! with its task version and commit) and where it went (downstream), or the
//! same for every artifact of an execution (I5).

use super::Output;
use super::exit::{self, Error, ExitStatus};
use super::origin::ServerArgs;
use super::store_args::StoreArgs;
use crate::store::execution::Direction;
use crate::views::{self, LineageQuery, LineageView};

#[derive(Debug, clap::Args)]
#[command(mut_arg("api_token_file", super::origin::token_file_alias))]
pub struct Args {
    /// An execution id, or an artifact (`sha256:<hex>` or its 64 hex).
    pub target: String,
    /// Only what led to it.
    #[arg(long, conflicts_with = "downstream")]
    pub upstream: bool,
    /// Only what came of it.
    #[arg(long)]
    pub downstream: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &Args) -> exit::Result {
    let query = LineageQuery {
        upstream: args.upstream,
        downstream: args.downstream,
    };
    let found = args
        .server
        .origin(&args.store)
        .and_then(|o| o.lineage(&args.target, &query))?
        .ok_or_else(|| {
            Error::not_found(format!(
                "`{}` is neither an execution nor an artifact digest",
                args.target
            ))
        })?;
    match args.output {
        Output::Json => println!("{:#}", views::to_json(&found)),
        Output::Table => print!("{}", text(&found)),
    }
    Ok(ExitStatus::Success)
}

/// One line an edge: the artifact, `←` produced by or `→` read by a node,
/// under which name, with its task version and commit.
fn text(found: &LineageView) -> String {
    let mut out = String::new();
    for e in &found.edges {
        let arrow = match e.direction {
            Direction::Input => "→",
            Direction::Output => "←",
        };
        out.push_str(&format!(
            "sha256:{}  {arrow} {}/{} `{}` (task {}@{}, commit {})\n",
            e.artifact.short(),
            e.execution,
            e.node,
            e.name,
            e.task,
            e.task_version,
            e.commit.short()
        ));
    }
    if found.edges.is_empty() {
        out.push_str(&format!("no lineage recorded for {}\n", found.target));
    }
    out
}
