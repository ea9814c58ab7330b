//! `herstel run [SPEC] [--data EXPORT] [--out DIR] [--seed N]`: the whole analysis. Without
//! `--data` the built-in simulated trial (the Dutch trial's design, fixed seed) is written
//! to `OUT/simulated-export/` and analysed, so the run's input is on disk and hashed in the
//! manifest like any other. The manifest lists every file the analysis read (study.toml and
//! the tables), with the SHA-256 of the bytes that were parsed.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{progress, CmdResult};
use crate::ingest::{load_export, ValidateOptions};
use crate::pipeline::{self, spec::AnalysisSpec};
use crate::report::{self, ReportOptions};
use crate::results::{InputFile, Manifest};
use crate::scoring;
use crate::simulate::{self, SimConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Analysis spec (TOML); default: the shipped Dutch-trial plan `analyses/imr-trial.toml`.
    pub spec: Option<PathBuf>,
    /// Trial export folder; default: the built-in simulated trial. Repeat it to pool several
    /// exports (trials or cohorts): every id is prefixed with its folder name and the study
    /// becomes a level (`ingest::pool::pool_trials_labelled`).
    #[arg(long, value_name = "EXPORT")]
    pub data: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "herstel-out", value_name = "DIR")]
    pub out: PathBuf,
    /// Seed for everything random (overrides the spec's seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Data schema folder replacing or extending the built-in tables and instruments.
    #[arg(long, value_name = "DIR")]
    pub schema: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Skip PNG rendering (SVG only).
    #[arg(long)]
    pub no_png: bool,
    /// Report where the time goes on stderr: read (simulating, reading and validating the
    /// exports), fit (scoring and every analysis), output (tables, plots, report).
    #[arg(long)]
    pub timings: bool,
}

pub fn run(args: Args) -> CmdResult {
    let t0 = Instant::now();
    let (spec_text, spec_name) = match &args.spec {
        Some(p) => (
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read analysis spec {}: {e}", p.display()))?,
            p.display().to_string(),
        ),
        None => (
            pipeline::spec::IMR_TRIAL_SPEC.to_string(),
            "analyses/imr-trial.toml (built in)".to_string(),
        ),
    };
    let mut spec = AnalysisSpec::from_toml(&spec_text, &spec_name)?;
    if let Some(s) = args.seed {
        spec.seed = s;
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create output folder {}: {e}", args.out.display()))?;
    let exports: Vec<PathBuf> = if args.data.is_empty() {
        let dir = args.out.join("simulated-export");
        let sim = simulate::simulate(&SimConfig::default(), spec.seed)?;
        sim.write(&dir)?;
        if !args.quiet {
            eprintln!(
                "herstel: no --data given: analysing the built-in simulated trial (seed {}), written to {}",
                spec.seed,
                dir.display()
            );
        }
        vec![dir]
    } else {
        args.data.clone()
    };
    let schema = crate::ingest::load_schema(args.schema.as_deref())?;
    // Every file the analysis read, hashed from the bytes that were parsed.
    let mut inputs = Vec::new();
    let mut trials = Vec::new();
    let mut report_text = String::new();
    let mut warnings = Vec::new();
    for export in &exports {
        let loaded = match load_export(export, &schema, &ValidateOptions::default()) {
            Ok(x) => x,
            Err(report) => {
                eprintln!("{report}");
                eprintln!(
                    "herstel run: the export {} has errors (above); no analysis was run",
                    export.display()
                );
                return Ok(ExitCode::from(1));
            }
        };
        let (trial, report) = (loaded.trial, loaded.report);
        inputs.extend(loaded.inputs.into_iter().map(|(path, d)| InputFile {
            path: path.display().to_string(),
            sha256: d.sha256,
            bytes: d.bytes,
        }));
        if exports.len() > 1 {
            report_text.push_str(&format!("== {}\n", export.display()));
        }
        report_text.push_str(&report.to_string());
        let prefix = if exports.len() > 1 {
            format!("{}: ", study_label(export))
        } else {
            String::new()
        };
        warnings.extend(
            summarise_validation_warnings(report.warnings())
                .into_iter()
                .map(|w| format!("{prefix}{w}")),
        );
        trials.push((study_label(export), trial));
    }
    let trial = if trials.len() == 1 {
        trials.pop().map(|(_, t)| t).ok_or("no export")?
    } else {
        crate::ingest::pool::pool_trials_labelled(trials)?
    };
    spec.check_for_trial(&trial, &spec_name)?;
    let t_read = t0.elapsed().as_secs_f64();
    let t_start_analysis = Instant::now();
    let scored = scoring::score(&trial, &trial.instruments);
    let progress = progress::TerminalProgress::new(args.quiet);
    let mut results = pipeline::analyse(&trial, &scored, &spec, &progress);
    let t_analysis = t_start_analysis.elapsed();
    // The full validation report goes beside the results; the results carry one line per
    // kind of warning (table, column) with its count and first occurrence.
    std::fs::write(args.out.join("validation.txt"), report_text)
        .map_err(|e| format!("cannot write validation.txt: {e}"))?;
    results.warnings.extend(warnings);
    let mut log = scoring::exclusion_log(&trial, scored.exclusion_columns());
    append_covariate_log(&mut log, &trial, &spec);
    crate::table::write_table_file(&args.out.join("exclusions.csv"), &log)?;
    results.manifest = Manifest {
        herstel_version: env!("CARGO_PKG_VERSION").to_string(),
        spec_name,
        spec: spec_text,
        inputs,
        seed: Some(spec.seed),
        time: utc_now(),
        command: Some(std::env::args().collect::<Vec<_>>().join(" ")),
    };
    let opts = ReportOptions {
        png: !args.no_png,
        ..ReportOptions::default()
    };
    let t_report = Instant::now();
    let summary = report::write_all(&results, &args.out, &opts)?;
    if args.timings {
        let t = super::timings::Timings {
            read: t_read,
            fit: t_analysis.as_secs_f64(),
            output: t_report.elapsed().as_secs_f64(),
            total: t0.elapsed().as_secs_f64(),
            ..Default::default()
        };
        eprintln!("{}", t.to_line());
    }
    if !args.quiet {
        eprintln!(
            "herstel: {} outcome models, {} files written to {} in {:.2} s (analysis {:.2} s, report {:.2} s); open {}",
            results.outcomes.len(),
            summary.files.len(),
            args.out.display(),
            t0.elapsed().as_secs_f64(),
            t_analysis.as_secs_f64(),
            t_report.elapsed().as_secs_f64(),
            args.out.join("report.html").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per (kind, table, column) of validation warnings: count and first occurrence.
fn summarise_validation_warnings<'a>(
    warnings: impl Iterator<Item = &'a crate::ingest::Problem>,
) -> Vec<String> {
    let mut groups: Vec<(String, usize, String)> = Vec::new();
    for w in warnings {
        let key = format!(
            "{:?} in {}{}",
            w.kind,
            w.table,
            w.column
                .as_deref()
                .map(|c| format!(".{c}"))
                .unwrap_or_default()
        );
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1 += 1,
            None => groups.push((key, 1, w.to_string())),
        }
    }
    groups
        .into_iter()
        .map(|(_, n, first)| {
            if n == 1 {
                format!("validation: {first}")
            } else {
                format!("validation: {n} warnings like: {first} (all in validation.txt)")
            }
        })
        .collect()
}

/// The label of a pooled export: its folder name.
fn study_label(export: &Path) -> String {
    export
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| export.display().to_string())
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ` (UTC), from the civil-from-days algorithm
/// (Hinnant).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let date = crate::ingest::Date::from_days(days as i32);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Adds a line per participant with a missing covariate of `[model] formula` to the exclusion
/// log (nothing when the formula names no covariate).
fn append_covariate_log(
    log: &mut [crate::table::OutColumn],
    trial: &crate::ingest::Trial,
    spec: &pipeline::AnalysisSpec,
) {
    use crate::trial_data::covariates;
    let Ok(formula) = crate::formula::Formula::template(&spec.model.formula, "y") else {
        return;
    };
    let Ok(covs) = covariates::resolve(trial, &formula) else {
        return;
    };
    for (id, place, reason) in covariates::missing_log(trial, &covs) {
        for (col, v) in log.iter_mut().zip([id, String::new(), place, reason]) {
            if let crate::table::OutValues::Text(values) = &mut col.values {
                values.push(Some(v));
            }
        }
    }
}
