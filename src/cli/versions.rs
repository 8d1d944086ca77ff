//! `weir versions`: registered versions, newest first.

use super::Output;
use super::exit::{self, ExitStatus};
use super::origin::ServerArgs;
use super::store_args::StoreArgs;
use crate::spec::Kind;
use crate::views::{self, VersionQuery, VersionView};

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
#[command(mut_arg("api_token_file", super::origin::token_file_alias))]
pub struct Args {
    /// `Task`, `Workflow` or `LaunchPlan` (any case).
    #[arg(long, value_enum, ignore_case = true)]
    pub kind: Option<KindArg>,
    /// Only the versions of definitions of this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only the versions of this project's definitions.
    #[arg(long)]
    pub project: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &Args) -> exit::Result {
    let query = VersionQuery {
        kind: args.kind.map(|k| Kind::from(k).as_str().to_owned()),
        name: args.name.clone(),
        project: args.project.clone(),
    };
    let versions = args
        .server
        .origin(&args.store)
        .and_then(|o| o.versions(&query))?;
    match args.output {
        Output::Json => println!("{:#}", views::to_json(&versions)),
        Output::Table => print!("{}", table(&versions)),
    }
    Ok(ExitStatus::Success)
}

fn table(versions: &[VersionView]) -> String {
    let header = [
        "KIND",
        "PROJECT",
        "NAME",
        "VERSION",
        "ACTIVE",
        "COMMIT",
        "REGISTERED (UTC)",
    ]
    .map(str::to_owned);
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.kind.to_string(),
                v.project.clone(),
                v.name.clone(),
                v.version.clone(),
                if v.active { "yes" } else { "" }.to_owned(),
                v.commit.short().to_owned(),
                super::render::utc(&v.registered_at),
            ]
        })
        .collect();
    super::render::table(&header, &rows)
}
