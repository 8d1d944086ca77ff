//! `weir schema`: print the JSON Schema generated from the definition types.

use crate::spec::schema;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> u8 {
    print!("{}", schema::generate_text());
    super::EXIT_OK
}
