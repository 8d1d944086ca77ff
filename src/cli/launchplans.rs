//! `weir launchplans`: each active launch plan with its schedule in words,
//! its time zone, its next instants, its last run and whether it is
//! paused; `weir pause PLAN` and `weir resume PLAN [--catch-up]`, which
//! hold a schedule without a commit and are recorded in the audit log
//! (`crate::views::launch_plan`). With `--server`, a running daemon
//! answers (`/api/v1/launchplans`).

use super::Output;
use super::exit::{self, Error, ExitStatus};
use super::origin::{ReadError, ServerArgs};
use super::render;
use super::store_args::{StoreArgs, block_on};
use crate::views::{self, LaunchPlanQuery, LaunchPlanView, PauseBody, PauseError, PausedView};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the launch plan of this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only the launch plans of this project.
    #[arg(long)]
    pub project: Option<String>,
    /// How many next instants of each schedule to show (at most 100).
    #[arg(long, value_name = "N", default_value_t = views::DEFAULT_NEXT_INSTANTS)]
    pub next: u32,
    /// The next instants after this RFC 3339 instant (default: now), e.g.
    /// 2026-03-28T00:00:00Z.
    #[arg(long, value_name = "INSTANT")]
    pub from: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How to print: `table` for people, or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &Args) -> exit::Result {
    let query = LaunchPlanQuery {
        project: args.project.clone(),
        name: args.name.clone(),
        next: Some(args.next),
        from: args.from.clone(),
    };
    let plans = args
        .server
        .origin(&args.store)
        .and_then(|o| o.launch_plans(&query))?;
    match args.output {
        Output::Json => println!("{:#}", views::to_json(&plans)),
        Output::Table => print!("{}", table(&plans)),
    }
    Ok(ExitStatus::Success)
}

/// One row a launch plan; its next instants in its own time zone, with
/// their offsets (a daylight-saving change shows as one).
fn table(plans: &[LaunchPlanView]) -> String {
    let header = [
        "PROJECT",
        "NAME",
        "STATUS",
        "SCHEDULE",
        "TIMEZONE",
        "NEXT (LOCAL)",
        "LAST RUN",
    ]
    .map(str::to_owned);
    let rows: Vec<Vec<String>> = plans
        .iter()
        .map(|p| {
            let schedule = p.schedule.as_ref();
            let last_run = p.last_run.as_ref().map_or_else(
                || "-".to_owned(),
                |r| format!("{} {} ({})", r.id, r.status, render::utc(&r.created_at)),
            );
            let next: Vec<String> = p.next.iter().map(|i| i.local()).collect();
            vec![
                p.project.clone(),
                p.name.clone(),
                p.status.as_str().to_owned(),
                schedule.map_or_else(|| "-".to_owned(), |s| s.words.clone()),
                schedule.map_or_else(|| "-".to_owned(), |s| s.timezone.clone()),
                if next.is_empty() {
                    "-".to_owned()
                } else {
                    next.join(", ")
                },
                last_run,
            ]
        })
        .collect();
    render::table(&header, &rows)
}

#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// The launch plan to pause or resume.
    pub name: String,
    /// The launch plan's project.
    #[arg(long, default_value = crate::daemon::config::DEFAULT_PROJECT)]
    pub project: String,
    /// Why, recorded in the audit log.
    #[arg(long)]
    pub comment: Option<String>,
    /// Who asks, recorded in the audit log (default: the login name, `$USER`).
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

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub pause: PauseArgs,
    /// Run the instants missed while paused, as the plan's `catchUp` and
    /// `maxCatchUp` allow after an outage (default: skip them).
    #[arg(long)]
    pub catch_up: bool,
}

pub fn pause(args: &PauseArgs) -> exit::Result {
    set_paused(args, true, false)
}

pub fn resume(args: &ResumeArgs) -> exit::Result {
    set_paused(&args.pause, false, args.catch_up)
}

fn set_paused(args: &PauseArgs, paused: bool, catch_up: bool) -> exit::Result {
    let body = PauseBody {
        by: Some(args.by.clone().unwrap_or_else(login_name)),
        comment: args.comment.clone(),
        catch_up,
    };
    let (project, name) = (&args.project, &args.name);
    let done = match args.server.client()? {
        Some(client) => client
            .set_paused(project, name, paused, &body)
            .map_err(ReadError::from)?,
        None => block_on(async {
            let store = args.store.open_existing().await?;
            let now = chrono::Utc::now();
            views::set_paused(store.as_ref(), project, name, paused, &body, "", now)
                .await
                .map_err(|e| match e {
                    e @ PauseError::Unknown { .. } => Error::not_found(e),
                    e @ PauseError::Store(_) => Error::failed(e),
                    e => Error::invalid(e),
                })
        })?,
    };
    match args.output {
        Output::Json => println!("{:#}", views::to_json(&done)),
        Output::Table => println!("{}", said(&done)),
    }
    Ok(ExitStatus::Success)
}

/// What `weir pause|resume` says it did.
fn said(done: &PausedView) -> String {
    let plan = format!("{}/{}", done.project, done.name);
    match (done.paused, done.changed) {
        (true, true) => format!("paused {plan}: its schedule starts nothing until `weir resume`"),
        (true, false) => format!("{plan} was already paused"),
        (false, true) => format!("resumed {plan}"),
        (false, false) => format!("{plan} was not paused"),
    }
}

/// Who runs this command, as the audit log records it: `$USER`, else
/// `$LOGNAME`, else `unknown`.
pub(super) fn login_name() -> String {
    ["USER", "LOGNAME"]
        .into_iter()
        .find_map(|v| std::env::var(v).ok().filter(|n| !n.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}
