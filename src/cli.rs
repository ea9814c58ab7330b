//! Command-line interface (clap). Each subcommand's arguments and driver live in
//! `crate::commands::<name>`; this file only lists them.
use clap::{Parser, Subcommand};

use crate::commands::{self, CmdResult};

/// herstel: analyse randomized trials of Illness Management and Recovery.
#[derive(Debug, Parser)]
#[command(name = "herstel", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a trial export folder and report every problem with table, row, column and value.
    Validate(commands::validate::Args),
    /// Score the questionnaires of a trial export into a long participant x wave table.
    Score(commands::score::Args),
    /// Write a simulated trial export (with truth.json) from a documented latent model.
    Simulate(commands::simulate::Args),
    /// Run the whole analysis plan on a trial export (default: the built-in simulated trial).
    Run(commands::run::Args),
    /// Fit one linear mixed model in lme4 formula syntax to a CSV or Parquet file.
    Fit(commands::fit::Args),
    /// Turn SPSS, Stata, CSV or Parquet files into a trial export through a map file.
    Import(commands::import::Args),
    /// Power and sample size of a planned trial by simulation (`herstel power merge` combines shards).
    Power(commands::power::Args),
}

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Validate(a) => commands::validate::run(a),
        Command::Score(a) => commands::score::run(a),
        Command::Simulate(a) => commands::simulate::run(a),
        Command::Fit(a) => commands::fit::run(a),
        Command::Run(a) => commands::run::run(a),
        Command::Import(a) => commands::import::run(a),
        Command::Power(a) => commands::power::run(a),
    }
}
