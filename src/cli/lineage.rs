//! `weir lineage <execution-id | artifact>`: where an artifact came from
//! (upstream: the node that produced it, what that node read, and so on, each
//! with its task version and commit) and where it went (downstream), or the
//! same for every artifact of an execution (I5).

use std::collections::{BTreeSet, HashSet};

use serde_json::{Value, json};

use super::run::Output;
use super::store_args::{StoreArgs, block_on};
use crate::artifact;
use crate::lineage::{self, Way};
use crate::spec::Digest;
use crate::store::execution::{Direction, LineageEdge};

#[derive(Debug, clap::Args)]
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
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

pub fn run(args: &Args) -> u8 {
    let hex = args
        .target
        .strip_prefix(artifact::PREFIX)
        .unwrap_or(&args.target);
    let as_artifact = artifact::parse_reference(&format!("{}{hex}", artifact::PREFIX));
    let result = block_on(async {
        let store = args.store.open().await?;
        let mut edges = Vec::new();
        let (kind, roots) = match as_artifact {
            Some(digest) => ("artifact", vec![digest]),
            None => {
                let own = store.lineage_of_execution(&args.target).await?;
                if own.is_empty() && store.execution(&args.target).await?.is_none() {
                    return Ok(None);
                }
                let roots: BTreeSet<Digest> = own.iter().map(|e| e.digest.clone()).collect();
                edges.extend(own);
                ("execution", roots.into_iter().collect())
            }
        };
        if !args.downstream {
            let inputs = roots.clone();
            edges.extend(lineage::follow(store.as_ref(), inputs, Way::Upstream).await?);
        }
        if !args.upstream {
            edges.extend(lineage::follow(store.as_ref(), roots, Way::Downstream).await?);
        }
        Ok::<_, crate::store::Error>(Some((kind, edges)))
    });
    let (kind, mut edges) = match result {
        Ok(Some(found)) => found,
        Ok(None) => {
            eprintln!(
                "error: `{}` is neither an execution nor an artifact digest",
                args.target
            );
            return super::EXIT_INVALID;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_ERROR;
        }
    };
    let mut unique = HashSet::new();
    edges.retain(|e| {
        unique.insert((
            e.execution.clone(),
            e.node.clone(),
            e.direction,
            e.name.clone(),
            e.digest.clone(),
        ))
    });
    edges.sort_by(|a, b| (a.at, &a.execution, &a.node).cmp(&(b.at, &b.execution, &b.node)));
    let commits: BTreeSet<&str> = edges.iter().map(|e| e.commit.0.as_str()).collect();
    match args.output {
        Output::Json => println!(
            "{:#}",
            json!({
                "target": args.target,
                "kind": kind,
                "edges": edges.iter().map(edge_json).collect::<Vec<_>>(),
                "commits": commits,
            })
        ),
        Output::Text => {
            for e in &edges {
                let arrow = match e.direction {
                    Direction::Input => "→",
                    Direction::Output => "←",
                };
                println!(
                    "sha256:{}  {arrow} {}/{} `{}` (task {}@{}, commit {})",
                    e.digest.short(),
                    e.execution,
                    e.node,
                    e.name,
                    e.task,
                    e.task_version.short(),
                    e.commit.short()
                );
            }
            if edges.is_empty() {
                println!("no lineage recorded for {}", args.target);
            }
        }
    }
    super::EXIT_OK
}

fn edge_json(e: &LineageEdge) -> Value {
    json!({
        "execution": e.execution,
        "node": e.node,
        "direction": e.direction,
        "name": e.name,
        "artifact": artifact::reference(&e.digest),
        "task": e.task,
        "taskVersion": e.task_version.short(),
        "commit": e.commit.0,
        "at": e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}
