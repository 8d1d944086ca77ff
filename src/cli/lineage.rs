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
use crate::store::Store;
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
    let way = match (args.upstream, args.downstream) {
        (true, _) => Some(Way::Upstream),
        (_, true) => Some(Way::Downstream),
        _ => None,
    };
    let result = block_on(async {
        let store = args.store.open().await?;
        trace(store.as_ref(), &args.target, way).await
    });
    let found = match result {
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
    match args.output {
        Output::Json => println!("{:#}", to_json(&args.target, &found)),
        Output::Text => {
            for e in &found.edges {
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
            if found.edges.is_empty() {
                println!("no lineage recorded for {}", args.target);
            }
        }
    }
    super::EXIT_OK
}

/// What `weir lineage` (and the HTTP API's `/api/v1/lineage/{id}`) found.
pub struct Found {
    /// `execution` or `artifact`.
    pub kind: &'static str,
    /// Each edge once, oldest first.
    pub edges: Vec<LineageEdge>,
}

/// Follows `target`, an execution id or an artifact (`sha256:<hex>` or its
/// 64 hex), one `way` or both (`None`). `None` when the target is neither
/// a known execution nor an artifact digest.
pub async fn trace(
    store: &dyn Store,
    target: &str,
    way: Option<Way>,
) -> Result<Option<Found>, crate::store::Error> {
    let hex = target.strip_prefix(artifact::PREFIX).unwrap_or(target);
    let as_artifact = artifact::parse_reference(&format!("{}{hex}", artifact::PREFIX));
    let mut edges = Vec::new();
    let (kind, roots) = match as_artifact {
        Some(digest) => ("artifact", vec![digest]),
        None => {
            let own = store.lineage_of_execution(target).await?;
            if own.is_empty() && store.execution(target).await?.is_none() {
                return Ok(None);
            }
            let roots: BTreeSet<Digest> = own.iter().map(|e| e.digest.clone()).collect();
            edges.extend(own);
            ("execution", roots.into_iter().collect())
        }
    };
    if way != Some(Way::Downstream) {
        edges.extend(lineage::follow(store, roots.clone(), Way::Upstream).await?);
    }
    if way != Some(Way::Upstream) {
        edges.extend(lineage::follow(store, roots, Way::Downstream).await?);
    }
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
    Ok(Some(Found { kind, edges }))
}

/// `weir lineage -o json`: an interface scripts depend on.
pub fn to_json(target: &str, found: &Found) -> Value {
    let commits: BTreeSet<&str> = found.edges.iter().map(|e| e.commit.0.as_str()).collect();
    json!({
        "target": target,
        "kind": found.kind,
        "edges": found.edges.iter().map(edge_json).collect::<Vec<_>>(),
        "commits": commits,
    })
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
