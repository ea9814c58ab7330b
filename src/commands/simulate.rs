//! `herstel simulate --out DIR [--seed N] [--config FILE]`: writes a simulated trial export
//! (study.toml, sites.csv, groups.csv, participants.csv, assessments.csv, admissions.csv) and
//! truth.json with the observed-scale truths (cached for the default parameters, else computed
//! from one large simulated trial, which takes seconds). The model: `herstel::simulate`.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::CmdResult;
use crate::simulate::{simulate, SimConfig, SimError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to write the export into (created if needed; existing files are overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the random streams: the same seed and config give the same bytes.
    #[arg(long, default_value_t = 2021)]
    pub seed: u64,
    /// TOML file overriding any subset of the parameters (see analyses/simulate-default.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Do not compute the observed-scale truths when they are not cached (parameters other
    /// than the defaults); truth.json then has `"observed_scale": null`.
    #[arg(long)]
    pub skip_observed_scale: bool,
}

pub fn run(args: Args) -> CmdResult {
    let cfg = match &args.config {
        Some(path) => read_config(path)?,
        None => SimConfig::default(),
    };
    let mut trial = simulate(&cfg, args.seed)?;
    if !args.skip_observed_scale {
        trial = trial.with_observed_scale()?;
    }
    trial.write(&args.out)?;
    let r = &trial.truth.realised;
    let arms: Vec<String> = r
        .arms
        .iter()
        .map(|a| format!("{} {}", a.label, a.n))
        .collect();
    println!(
        "wrote {}: {} participants ({}), {} groups, {} admissions, seed {}",
        args.out.display(),
        r.n_participants,
        arms.join(", "),
        r.groups.len(),
        r.admissions.episodes,
        args.seed
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads a configuration file (TOML; any subset of the fields).
fn read_config(path: &Path) -> Result<SimConfig, SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    SimConfig::from_toml_str(&text).map_err(|e| match e {
        SimError::ConfigParse { message } => SimError::ConfigParse {
            message: format!("{}: {message}", path.display()),
        },
        other => other,
    })
}
