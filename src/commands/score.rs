//! `herstel score EXPORT --out FILE [--log FILE] [--schema DIR]`: validate the export, then
//! write the long participant x wave table of scale scores (CSV or Parquet by extension) and
//! the exclusion log of missing scores.
use std::path::PathBuf;
use std::process::ExitCode;

use super::CmdResult;
use crate::ingest::{load_trial, ValidateOptions};
use crate::scoring::score;
use crate::table::write_table_file;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The export folder (study.toml plus the tables as CSV or Parquet).
    pub export: PathBuf,
    /// Output file: .csv or .parquet.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Exclusion log (.csv or .parquet): every missing score with its reason, and every input
    /// row left out of the trial.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// A folder with tables/*.toml and instruments/*.toml that replace or extend the built-in
    /// data schema.
    #[arg(long, value_name = "DIR")]
    pub schema: Option<PathBuf>,
}

pub fn run(args: Args) -> CmdResult {
    let schema = crate::ingest::load_schema(args.schema.as_deref())?;
    let (trial, report) = match load_trial(&args.export, &schema, &ValidateOptions::default()) {
        Ok(x) => x,
        Err(report) => {
            eprintln!("{report}");
            eprintln!("herstel score: the export has errors; fix them (see `herstel validate`)");
            return Ok(ExitCode::from(1));
        }
    };
    if report.n_warnings() > 0 {
        eprintln!(
            "{} warnings (run `herstel validate` to list them)",
            report.n_warnings()
        );
    }
    let mut scored = score(&trial, &trial.instruments);
    write_table_file(&args.out, &scored.to_out_columns())?;
    let n_missing = scored.exclusions.len();
    let n_prescored = scored.prescored.len();
    if let Some(log) = &args.log {
        let cols = crate::scoring::exclusion_log(&trial, scored.take_exclusion_columns());
        write_table_file(log, &cols)?;
    }
    eprintln!(
        "scored {} participants x {} waves into {} ({} missing scores logged{})",
        trial.participants.len(),
        trial.study.waves.len(),
        args.out.display(),
        n_missing,
        if n_prescored > 0 {
            format!(", {n_prescored} scores taken pre-scored from the export")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
