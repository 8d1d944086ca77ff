//! `weir relaunch ID` and `weir recover ID`: an ended execution run again
//! from what it recorded (`crate::engine::relaunch`). The new execution is
//! printed, its nodes pending (or, for recover, served from the original);
//! the engine driving the store (`weir serve`) runs it, and `weir
//! executions NEW --watch` follows it to its end. With `--server`, the
//! daemon creates it (`POST /api/v1/executions/{id}/relaunch|recover`).

use chrono::Utc;

use super::Output;
use super::exit::{self, Error, ExitStatus};
use super::origin::{ReadError, ServerArgs};
use super::run::execution_text;
use super::store_args::{StoreArgs, block_on};
use crate::engine::relaunch::{self, Again};
use crate::spec::ExecutionId;
use crate::views::{self, ExecutionView};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The execution to run again.
    pub id: ExecutionId,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &Args, how: Again) -> exit::Result {
    let (view, served) = match args.server.client()? {
        Some(client) => {
            let what = match how {
                Again::Relaunch => "relaunch",
                Again::Recover => "recover",
            };
            let view = client.again(&args.id, what).map_err(ReadError::from)?;
            let served = view
                .nodes
                .iter()
                .filter(|n| n.cached_from.is_some())
                .count();
            (view, served)
        }
        None => block_on(async {
            let store = args.store.open_existing().await?;
            let (execution, served) = relaunch::again(store.as_ref(), &args.id, how, Utc::now())
                .await
                .map_err(|e| match e {
                    e @ relaunch::Error::NotFound(_) => Error::not_found(e),
                    e @ relaunch::Error::Store(_) => Error::failed(e),
                    e => Error::invalid(e),
                })?;
            let nodes = store.nodes(&execution.id).await.map_err(Error::failed)?;
            Ok::<_, Error>((ExecutionView::new(&execution, &nodes), served))
        })?,
    };
    match args.output {
        Output::Json => println!("{:#}", views::to_json(&view)),
        Output::Table => {
            print!("{}", execution_text(&view));
            let what = match how {
                Again::Relaunch => "a relaunch".to_owned(),
                Again::Recover => format!("a recovery ({served} node(s) served from it)"),
            };
            exit::notice(format_args!(
                "{} is {what} of {}; `weir executions {} --watch` follows it",
                view.id, args.id, view.id
            ));
        }
    }
    Ok(ExitStatus::Success)
}
