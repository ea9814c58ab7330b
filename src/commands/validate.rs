//! `herstel validate EXPORT [--schema DIR]`: check a trial export and report every problem
//! (errors, then warnings, then a summary). Exit code 1 when there are errors, else 0.
use std::path::PathBuf;
use std::process::ExitCode;

use super::CmdResult;
use crate::ingest::{read_export, ValidateOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The export folder (study.toml plus the tables as CSV or Parquet).
    pub export: PathBuf,
    /// A folder with tables/*.toml and instruments/*.toml that replace or extend the built-in
    /// data schema.
    #[arg(long, value_name = "DIR")]
    pub schema: Option<PathBuf>,
    /// Months an assessment may lie from its wave's nominal month before a warning.
    #[arg(long, default_value_t = 3.0, value_name = "MONTHS")]
    pub tolerance_months: f64,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> CmdResult {
    let schema = crate::ingest::load_schema(args.schema.as_deref())?;
    let options = ValidateOptions {
        nominal_tolerance_months: args.tolerance_months,
    };
    let ingested = read_export(&args.export, &schema, &options);
    let report = &ingested.report;
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{report}");
    }
    Ok(if report.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
