//! `weir versions`: registered versions, newest first.

use serde_json::json;

use super::store_args::{StoreArgs, block_on};
use crate::spec::Kind;
use crate::store::{VersionFilter, VersionRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    Task,
    Workflow,
    #[value(alias = "launchplan")]
    LaunchPlan,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Task => Kind::Task,
            KindArg::Workflow => Kind::Workflow,
            KindArg::LaunchPlan => Kind::LaunchPlan,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `Task`, `Workflow` or `LaunchPlan` (any case).
    #[arg(long, value_enum, ignore_case = true)]
    pub kind: Option<KindArg>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &Args) -> u8 {
    let filter = VersionFilter {
        kind: args.kind.map(Kind::from),
        name: args.name.clone(),
        project: args.project.clone(),
    };
    let result = block_on(async { args.store.open().await?.versions(&filter).await });
    match result {
        Ok(versions) => {
            match args.output {
                Output::Json => println!(
                    "{:#}",
                    json!(versions.iter().map(to_json).collect::<Vec<_>>())
                ),
                Output::Table => print!("{}", table(&versions)),
            }
            super::EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            super::EXIT_ERROR
        }
    }
}

/// The JSON of one version: an interface scripts depend on.
pub fn to_json(v: &VersionRecord) -> serde_json::Value {
    json!({
        "project": v.key.entity.project,
        "kind": v.key.entity.kind,
        "name": v.key.entity.name,
        "version": v.key.digest.short(),
        "digest": v.key.digest.as_str(),
        "commit": v.commit.0,
        "path": v.path,
        "active": v.active,
        "registeredAt": v.registered_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "activations": v.activations.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
    })
}

fn table(versions: &[VersionRecord]) -> String {
    let header = [
        "KIND",
        "PROJECT",
        "NAME",
        "VERSION",
        "ACTIVE",
        "COMMIT",
        "REGISTERED",
    ]
    .map(str::to_owned);
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.key.entity.kind.to_string(),
                v.key.entity.project.clone(),
                v.key.entity.name.clone(),
                v.key.digest.short().to_owned(),
                if v.active { "yes" } else { "" }.to_owned(),
                v.commit.short().to_owned(),
                v.registered_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ]
        })
        .collect();
    super::render::table(&header, &rows)
}
