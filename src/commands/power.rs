//! `herstel power PLAN.toml [--out DIR] [--seed N] [--shard i/n] [--from EXPORT]` and
//! `herstel power merge DIR... [--out DIR]`: power and sample size by simulation
//! (`herstel::power`). A shard writes `DIR/shard-<i>-of-<n>.json`; merge combines the shard
//! files found in the folders and writes the same files, byte for byte, as an unsharded run.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use super::progress::TerminalProgress;
use super::CmdResult;
use crate::power::{self, Plan, Shard, ShardFile};
use crate::report::power::write_power;
use crate::report::ReportOptions;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub merge: Option<Sub>,
    /// The plan (TOML; see analyses/power-erh.toml).
    pub plan: Option<PathBuf>,
    /// Output folder (created if needed).
    #[arg(long, default_value = "power-out")]
    pub out: PathBuf,
    /// Seed of the simulations (overrides the plan's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated trials per sample size (overrides the plan's `simulations`).
    #[arg(long)]
    pub simulations: Option<usize>,
    /// Run part i of n of the simulations (1 <= i <= n) and write only its shard file.
    #[arg(long)]
    pub shard: Option<String>,
    /// Estimate the outcome's baseline mean, SD and ICCs (participant, site, group) from an
    /// earlier trial's export (the pilot), as simr takes them from a fitted model; the
    /// autocorrelation is set to 0.
    #[arg(long = "from")]
    pub from: Option<PathBuf>,
    /// Data schema folder for `--from` (as `herstel run --schema`).
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// No PNG beside the SVG.
    #[arg(long)]
    pub no_png: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Combine shard files (`shard-*-of-*.json` in the folders) into the full outputs.
    Merge(MergeArgs),
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Folders (or files) with shard files.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "power-out")]
    pub out: PathBuf,
    #[arg(long)]
    pub no_png: bool,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Reads and checks a plan, with the command-line overrides and the pilot's estimates.
pub fn load_plan(args: &Args) -> Result<Plan, Box<dyn std::error::Error + Send + Sync>> {
    let path = args
        .plan
        .as_ref()
        .ok_or("herstel power: give a plan (PLAN.toml) or `merge DIR...`")?;
    let mut plan =
        Plan::from_toml_str(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(s) = args.seed {
        plan.seed = s;
    }
    if let Some(n) = args.simulations {
        plan.simulations = n;
    }
    if let Some(export) = &args.from {
        let est = pilot_estimates(export, args.schema.as_deref(), &plan.outcome.name)?;
        eprintln!("{}", est.describe(&export.display().to_string()));
        est.apply(&mut plan);
    }
    plan.validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(plan)
}

fn pilot_estimates(
    export: &Path,
    schema: Option<&Path>,
    outcome: &str,
) -> Result<power::pilot::PilotEstimates, Box<dyn std::error::Error + Send + Sync>> {
    let schema = crate::ingest::load_schema(schema)?;
    let loaded =
        crate::ingest::load_export(export, &schema, &crate::ingest::ValidateOptions::default())
            .map_err(|report| {
                format!(
                    "--from {}: the export has errors:\n{report}",
                    export.display()
                )
            })?;
    let trial = loaded.trial;
    let scored = crate::scoring::score(&trial, &trial.instruments);
    let data = crate::trial_data::outcome_data(
        &trial,
        &scored,
        outcome,
        &crate::trial_data::SetFilter::All,
    )
    .ok_or_else(|| {
        format!(
            "--from {}: no scores of outcome.name = {outcome:?} in the export",
            export.display()
        )
    })?;
    Ok(power::pilot::estimate(&data)?)
}

pub fn run(args: Args) -> CmdResult {
    if let Some(Sub::Merge(m)) = args.merge {
        return merge(m);
    }
    let plan = load_plan(&args)?;
    let shard = match &args.shard {
        Some(s) => Shard::parse(s)?,
        None => Shard::ALL,
    };
    let progress = TerminalProgress::new(args.quiet);
    let t0 = Instant::now();
    let records = power::run_trials(&plan, shard, &progress)?;
    let secs = t0.elapsed().as_secs_f64();
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    if args.shard.is_some() {
        let name = ShardFile::file_name(shard);
        let file = ShardFile {
            format: power::shard::SHARD_FORMAT.into(),
            herstel_version: env!("CARGO_PKG_VERSION").into(),
            plan,
            shard,
            records,
        };
        let path = args.out.join(&name);
        std::fs::write(&path, serde_json::to_string(&file)? + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!(
            "shard {}/{}: {} simulated trials in {secs:.1} s -> {}",
            shard.index,
            shard.count,
            file.records.len(),
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let n = records.len();
    let results = power::summarise(&plan, &records)?;
    finish(&results, &records, &args.out, args.no_png)?;
    println!("{n} simulated trials ({} fits) in {secs:.1} s", 2 * n);
    Ok(ExitCode::SUCCESS)
}

fn finish(
    results: &power::PowerResults,
    records: &[power::TrialRecord],
    out: &Path,
    no_png: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let opts = ReportOptions {
        png: !no_png,
        ..ReportOptions::default()
    };
    write_power(results, records, out, &opts)?;
    let s = &results.summary;
    println!("{}: {}", results.title, results.contrast);
    for z in &s.sizes {
        println!(
            "  {} {:>5}: power {:.3} [{:.3}, {:.3}], type I error {:.3}, bias {:+.4}, problem fits {:.1}%, failed {}",
            s.size_unit,
            z.size,
            z.power.estimate,
            z.power.conf_low,
            z.power.conf_high,
            z.type1_error.estimate,
            z.bias,
            100.0 * z.share_problem_fits,
            z.fits.failed + z.fits_null.failed
        );
    }
    println!(
        "  smallest size for {} power: {}",
        s.required.target_power, s.required.note
    );
    println!("wrote {}", out.display());
    Ok(())
}

fn merge(m: MergeArgs) -> CmdResult {
    let mut paths = Vec::new();
    for d in &m.dirs {
        if d.is_dir() {
            let entries =
                std::fs::read_dir(d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
            for e in entries {
                let p = e.map_err(|e| format!("{}: {e}", d.display()))?.path();
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("shard-") && name.ends_with(".json") {
                    paths.push(p);
                }
            }
        } else {
            paths.push(d.clone());
        }
    }
    paths.sort();
    let mut files = Vec::new();
    for p in &paths {
        let f: ShardFile = serde_json::from_str(&read(p)?)
            .map_err(|e| format!("{}: not a shard file: {e}", p.display()))?;
        files.push(f);
    }
    let (plan, records) = power::shard::merge(files).map_err(power::PowerError::Merge)?;
    let results = power::summarise(&plan, &records)?;
    println!(
        "merged {} shard files ({} simulated trials)",
        paths.len(),
        records.len()
    );
    finish(&results, &records, &m.out, m.no_png)?;
    Ok(ExitCode::SUCCESS)
}
