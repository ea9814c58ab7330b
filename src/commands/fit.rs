//! `herstel fit --data FILE --formula "..." [--ml] [--df ...] [--json]`: one linear mixed
//! model in lme4 syntax, printed like lme4/lmerTest's summary or as JSON (issue 3, point 4).
use std::collections::HashMap;
use std::path::PathBuf;

use super::CmdResult;
use crate::frame::Frame;
use crate::lmm::{fit_formula, DfMethod, LmmOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data file: CSV (header row, `,` separated, `""` quoting; empty or NA = missing).
    #[arg(long)]
    pub data: PathBuf,
    /// Model formula in lme4 syntax, e.g. "Reaction ~ Days + (Days | Subject)".
    #[arg(long)]
    pub formula: String,
    /// Fit by maximum likelihood instead of REML.
    #[arg(long)]
    pub ml: bool,
    /// Denominator df for t tests: satterthwaite (default), kenward-roger or none.
    #[arg(long, default_value = "satterthwaite")]
    pub df: DfMethod,
    /// Write JSON instead of the printed summary.
    #[arg(long)]
    pub json: bool,
    /// Level order for a factor column, e.g. --levels arm=TAU,IMR (repeatable).
    #[arg(long = "levels", value_name = "COLUMN=L1,L2,...")]
    pub levels: Vec<String>,
    /// Residual covariance of the waves within a participant (MMRM, no random terms):
    /// `us(wave | participant_id)`, also cs, csh, ar1, ar1h, toep; `, by = arm` for one per group.
    #[arg(long, value_name = "STRUCTURE(TIME | SUBJECT[, by = GROUP])")]
    pub residual: Option<String>,
}

fn read_frame(args: &Args) -> Result<Frame, Box<dyn std::error::Error + Send + Sync>> {
    let mut orders = HashMap::new();
    for spec in &args.levels {
        let (col, lv) = spec
            .split_once('=')
            .ok_or_else(|| format!("--levels `{spec}`: expected COLUMN=L1,L2,..."))?;
        orders.insert(
            col.to_string(),
            lv.split(',').map(|s| s.trim().to_string()).collect(),
        );
    }
    let ext = args
        .data
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext == "parquet" {
        return Err(format!(
            "{}: Parquet input is not supported by `herstel fit` yet; export the table as CSV",
            args.data.display()
        )
        .into());
    }
    let text = std::fs::read_to_string(&args.data)
        .map_err(|e| format!("cannot read {}: {e}", args.data.display()))?;
    Frame::from_csv_str(&text, &orders).map_err(|e| format!("{}: {e}", args.data.display()).into())
}

pub fn run(args: Args) -> CmdResult {
    let frame = read_frame(&args)?;
    if let Some(res) = &args.residual {
        let spec = crate::mmrm::ResidualSpec::parse(res)?;
        let opts = crate::mmrm::MmrmOptions {
            reml: !args.ml,
            ..Default::default()
        };
        let fit = crate::mmrm::fit_mmrm(&args.formula, &spec, &frame, &opts)?;
        let summary = fit.summary(args.df)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            print!("{}", summary.to_text());
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let opts = LmmOptions {
        reml: !args.ml,
        ..LmmOptions::default()
    };
    let fit = fit_formula(&args.formula, &frame, &opts)?;
    let summary = fit.summary(args.df)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(std::process::ExitCode::SUCCESS)
}
