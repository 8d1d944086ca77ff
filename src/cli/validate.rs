//! `weir validate PATH`: the pull-request check.

use std::path::PathBuf;

use super::exit::{self, Error, ExitStatus};
use super::render::{self, Format};
use crate::source::dir;
use crate::validate::{self, Options};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder (or single file) of definitions.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// How to print: `table` for people (snippets), `json`, or `github` (pull-request annotations).
    #[arg(short = 'o', long = "output", visible_alias = "format", value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Project of definitions without `metadata.project`.
    #[arg(long, default_value = "default")]
    pub project: String,
    /// Largest definition file read, in bytes.
    #[arg(long, default_value_t = dir::DEFAULT_MAX_FILE_SIZE)]
    pub max_file_size: u64,
}

pub fn run(args: &Args) -> exit::Result {
    let tree = dir::read_tree(&args.path, args.max_file_size).map_err(Error::failed)?;
    let options = Options {
        default_project: args.project.clone(),
        ..Options::default()
    };
    let report = validate::validate(tree, &options);
    let prefix = render::display_prefix(&args.path);
    print!("{}", render::report(&report, args.output, &prefix));
    let status = ExitStatus::success_if(report.is_valid());
    // The process ends next: freeing every definition one by one (30 ms
    // of 10,000) is work the system does at once when it exits.
    std::mem::forget(report);
    Ok(status)
}
