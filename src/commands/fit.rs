//! `herstel fit` (work in progress: being implemented).
use super::CmdResult;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err("herstel fit: not implemented yet".into())
}
