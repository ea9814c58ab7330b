//! Power and sample size by simulation (issue 16): simulate the planned trial many times at
//! each sample size, fit the planned analysis to each, count rejections.
//!
//! * [`plan`]: the plan (TOML) and its validation (errors name the key).
//! * [`design`]: one simulated trial (arms, sites, groups, scores with and without the effect,
//!   dropout), seeded per trial.
//! * [`analyse`]: the planned model and contrast test of one data set.
//! * [`summary`]: power with Monte Carlo CIs, type I error, bias, CI width, fit outcomes, the
//!   interpolated sample size.
//! * [`shard`]: a reproducible part of the simulations and the merge of the parts.
//! * [`pilot`]: outcome parameters estimated from an earlier trial's data (`--from`).
//!
//! Where R users run `simr::powerSim` (refit `lmer` per simulated trial), this is
//! [`run_trials`] + [`summarise`]. No I/O here: the command reads the plan and writes files.
pub mod analyse;
pub mod design;
pub mod pilot;
pub mod plan;
pub mod shard;
pub mod summary;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::progress::ProgressSink;
pub use analyse::{Analysis, FitStatus, TestResult};
pub use plan::{Plan, PlanError};
pub use shard::{Shard, ShardFile};
pub use summary::{PowerSummary, TrialRecord};

/// Errors of a power run.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("analysis: {0}")]
    Analysis(String),
    #[error("merge: {0}")]
    Merge(String),
}

/// Simulates and analyses the trials of `shard` (every trial with [`Shard::ALL`]), in
/// parallel; the records come in (size, trial) order.
pub fn run_trials(
    plan: &Plan,
    shard: Shard,
    progress: &dyn ProgressSink,
) -> Result<Vec<TrialRecord>, PowerError> {
    plan.validate()?;
    let analysis = Analysis::of_plan(plan).map_err(PowerError::Analysis)?;
    let sims = plan.simulations;
    let sizes = plan.sizes().to_vec();
    let jobs: Vec<(usize, usize)> = (0..sizes.len())
        .flat_map(|k| (0..sims).map(move |j| (k, j)))
        .filter(|&(k, j)| shard.holds(k * sims + j))
        .collect();
    let bar = progress.bar(jobs.len() as u64, "simulated trials");
    let records: Vec<TrialRecord> = jobs
        .par_iter()
        .map(|&(k, j)| {
            let trial = design::draw_trial(plan, k, sizes[k], j);
            let alt = analysis.test(&trial, &trial.alt);
            let null = analysis.test(&trial, &trial.null);
            bar.inc(1);
            TrialRecord {
                size_index: k,
                trial: j,
                n_participants: trial.persons.len(),
                n_groups: trial.n_groups,
                n_observations: trial.alt.iter().filter(|v| !v.is_nan()).count(),
                alt,
                null,
            }
        })
        .collect();
    bar.finish();
    Ok(records)
}

/// The power report's content: the plan as run, the model and the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerResults {
    pub title: String,
    pub seed: u64,
    pub herstel_version: String,
    /// The fitted model as R would be called (`lmer(y ~ arm * wave + (1 | participant_id))`).
    pub model: String,
    pub df_method: String,
    /// What is tested (`ERH - CAU at T2`).
    pub contrast: String,
    pub plan: Plan,
    pub summary: PowerSummary,
}

/// Summarises a complete set of records (all sizes, all trials, in order).
pub fn summarise(plan: &Plan, records: &[TrialRecord]) -> Result<PowerResults, PowerError> {
    plan.validate()?;
    let analysis = Analysis::of_plan(plan).map_err(PowerError::Analysis)?;
    let sims = plan.simulations;
    let sizes = plan.sizes();
    if records.len() != sizes.len() * sims
        || records
            .iter()
            .enumerate()
            .any(|(g, r)| (r.size_index, r.trial) != (g / sims.max(1), g % sims.max(1)))
    {
        return Err(PowerError::Merge(format!(
            "{} records for {} sizes x {sims} trials: run every shard and merge them",
            records.len(),
            sizes.len()
        )));
    }
    let truth = analysis.true_contrast(&plan.effect_by_wave());
    let per_size: Vec<summary::SizeSummary> = sizes
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let recs: Vec<&TrialRecord> = records[k * sims..(k + 1) * sims].iter().collect();
            summary::summarise_size(n, truth, &recs)
        })
        .collect();
    let required = summary::required_size(&per_size, plan.target_power, plan.size_unit());
    let arms = &plan.arms.labels;
    let at = match plan.test_target() {
        plan::TestTarget::Wave(t) => plan.waves.labels[t].clone(),
        plan::TestTarget::Average => "the mean of the follow-up waves".into(),
    };
    let contrast = match plan.analysis.contrast {
        plan::ContrastKind::Difference => format!("{} - {} at {at}", arms[1], arms[0]),
        plan::ContrastKind::Change => format!(
            "({} - {}) change from {} at {at}",
            arms[1], arms[0], plan.waves.labels[0]
        ),
    };
    let df_method = match (&analysis.fitter, analysis.df) {
        (analyse::Fitter::Ols, _) => "residual (lm)".to_string(),
        (_, crate::lmm::DfMethod::KenwardRoger) => "kenward-roger".into(),
        (_, crate::lmm::DfMethod::Satterthwaite) => "satterthwaite".into(),
        (_, crate::lmm::DfMethod::Asymptotic) => "none".into(),
    };
    Ok(PowerResults {
        title: plan.title.clone(),
        seed: plan.seed,
        herstel_version: env!("CARGO_PKG_VERSION").to_string(),
        model: analysis.model_label(),
        df_method,
        contrast,
        plan: plan.clone(),
        summary: summary::PowerSummary {
            size_unit: plan.size_unit().into(),
            true_effect: truth,
            sizes: per_size,
            required,
        },
    })
}
