//! `weir schema`: print the JSON Schema generated from the definition types.

use crate::spec::schema;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> super::exit::Result {
    print!("{}", schema::generate_text());
    Ok(super::exit::ExitStatus::Success)
}
