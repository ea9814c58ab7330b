//! `herstel score` (work in progress: being implemented).
use super::CmdResult;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err("herstel score: not implemented yet".into())
}
