//! `weir schema`: print the JSON Schema generated from the definition types.

use crate::task::TaskTypes;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> super::exit::Result {
    print!("{}", TaskTypes::builtin().schema_text());
    Ok(super::exit::ExitStatus::Success)
}
