//! Multiple imputation of missing covariates in the outcome models (issue 17, point 4): when
//! `[model] formula` names participant covariates with missing values and `[covariates]
//! missing = "impute"` (the default), the covariates are imputed `m` times by chained
//! equations ([`crate::impute`], mice's `pmm` / `logreg` / `polyreg`) from the imputation model
//! of [`wide`] (covariates, arm and the outcome at each wave, one row per participant), the
//! outcome's LMM (the primary ITT model, as `lmerTest::lmer`) is fitted to each completed data
//! set on the observed outcome rows, and its fixed effects and the intervention minus control
//! contrasts at each follow-up wave (emmeans) are pooled by Rubin's rules with the Barnard &
//! Rubin (1999) df ([`pool`]). The complete-case fit stays the primary analysis; the pooled
//! table stands beside it.
pub mod pool;
pub mod spec;
pub mod wide;

use rayon::prelude::*;

use super::outcomes::{analyse_outcome, OutcomeError};
use super::OutcomeJob;
use crate::impute::{impute, FcsOptions, Imputations, ImputeError, Var};
use crate::ingest::Trial;
use crate::progress::ProgressSink;
use crate::results::covariate_mi::CovariateMi;
use crate::results::OutcomeResult;
use crate::scoring::Scored;
use crate::trial_data::covariates::{Covariate, CovariateValues};
use crate::trial_data::{outcome_data, OutcomeData, SetFilter};
pub use spec::{CovariateMissing, CovariatesSpec};

/// Why the covariate MI of an outcome did not run.
#[derive(Debug, thiserror::Error)]
pub enum CovariateMiError {
    #[error("[covariates]: {0}")]
    Impute(#[from] ImputeError),
    #[error("[covariates]: {0}")]
    Model(String),
    #[error(
        "[model] formula: covariate `{column}`: level \"{level}\" is observed only in participants \
         without a {outcome} score, so the outcome model cannot estimate it from the observed \
         rows; merge or recode the level in participants.csv"
    )]
    LevelOutsideModel {
        column: String,
        level: String,
        outcome: String,
    },
    #[error("imputation {k}: {source}")]
    Fit {
        k: usize,
        #[source]
        source: OutcomeError,
    },
    #[error("imputation {k}: its fit has the terms {got}, the first imputation's are {want}")]
    Terms { k: usize, got: String, want: String },
}

/// The covariate MI of one outcome job with what the tests compare against R: the completed
/// analysis data sets and each one's fit.
pub struct CovariateMiOutput {
    pub result: CovariateMi,
    pub completed: Vec<OutcomeData>,
    pub fits: Vec<OutcomeResult>,
    pub imputations: Imputations,
}

/// Whether `job` needs the covariate MI: the ITT primary model of a Gaussian outcome whose
/// covariates have a missing value.
pub fn applies(job: &OutcomeJob, covariates: &[Covariate], spec: &CovariatesSpec) -> bool {
    spec.missing == CovariateMissing::Impute
        && job.req.analysis_set == "itt"
        && job.req.sensitivity.is_none()
        && job.req.family == super::spec::ModelFamily::Gaussian
        && covariates.iter().any(|c| c.n_missing() > 0)
}

/// The covariate with imputation `k`'s values filled in.
fn completed_covariate(c: &Covariate, var: &Var, values: &[f64]) -> Covariate {
    let values = match (&c.values, var) {
        (CovariateValues::Factor(_), Var::Factor { levels, .. }) => CovariateValues::Factor(
            values
                .iter()
                .map(|&v| levels.get(v as usize).cloned())
                .collect(),
        ),
        _ => CovariateValues::Numeric(values.iter().map(|&v| Some(v)).collect()),
    };
    Covariate {
        name: c.name.clone(),
        values,
    }
}

/// Runs the covariate MI of `job` (see the module docs).
pub fn analyse(
    trial: &Trial,
    scored: &Scored,
    job: &OutcomeJob,
    covariates: &[Covariate],
    spec: &CovariatesSpec,
    seed: u64,
    progress: &dyn ProgressSink,
) -> Result<CovariateMiOutput, CovariateMiError> {
    let outcome = &job.req.outcome;
    let base = outcome_data(trial, scored, outcome, &SetFilter::All)
        .ok_or_else(|| CovariateMiError::Model(format!("no observed {outcome} scores")))?;
    let (model, rows_of) = wide::build(trial, &base.frame, &base.waves, covariates, spec)
        .map_err(CovariateMiError::Model)?;
    // A factor level seen only in participants without outcome rows cannot be estimated by the
    // analysis model, and imputations would give it rows in some data sets and not others.
    for (c, v) in covariates.iter().zip(&model.data.vars) {
        if let Var::Factor { codes, levels } = v {
            for (l, level) in levels.iter().enumerate() {
                let in_model =
                    (0..codes.len()).any(|i| codes[i] == Some(l as u32) && rows_of[i] > 0);
                if !in_model {
                    return Err(CovariateMiError::LevelOutsideModel {
                        column: c.name.clone(),
                        level: level.clone(),
                        outcome: outcome.clone(),
                    });
                }
            }
        }
    }
    let opts = FcsOptions {
        m: spec.m,
        iterations: spec.iterations,
        methods: model.methods.clone(),
        seed,
        donors: spec.donors,
    };
    let imputations = impute(&model.data, &opts, progress)?;
    let completed: Vec<OutcomeData> = (0..spec.m)
        .map(|k| {
            let covs: Vec<Covariate> = covariates
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    completed_covariate(c, &model.data.vars[j], &imputations.values[k][j])
                })
                .collect();
            base.clone()
                .with_covariates(trial, &covs)
                .map_err(|e| CovariateMiError::Model(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let bar = progress.bar(spec.m as u64, &format!("covariate MI: {outcome} fits"));
    let fits: Vec<Result<OutcomeResult, CovariateMiError>> = completed
        .par_iter()
        .enumerate()
        .map(|(k, d)| {
            let r = analyse_outcome(d, &job.req)
                .map(|(r, _)| r)
                .map_err(|source| CovariateMiError::Fit { k: k + 1, source });
            bar.inc(1);
            r
        })
        .collect();
    bar.finish();
    let fits: Vec<OutcomeResult> = fits.into_iter().collect::<Result<_, _>>()?;
    let result = pool_fits(&fits, job, &model, spec, seed, covariates, &rows_of)?;
    Ok(CovariateMiOutput {
        result,
        completed,
        fits,
        imputations,
    })
}

fn pool_fits(
    fits: &[OutcomeResult],
    job: &OutcomeJob,
    model: &wide::ImputationModel,
    spec: &CovariatesSpec,
    seed: u64,
    covariates: &[Covariate],
    rows_of: &[usize],
) -> Result<CovariateMi, CovariateMiError> {
    let first = &fits[0];
    let names = |f: &OutcomeResult| -> Vec<String> {
        f.fixed_effects
            .iter()
            .map(|t| t.term.clone())
            .chain(
                f.contrasts
                    .iter()
                    .map(|c| format!("{} {}", c.contrast, c.wave)),
            )
            .collect()
    };
    let want = names(first);
    for (k, f) in fits.iter().enumerate() {
        let got = names(f);
        if got != want {
            return Err(CovariateMiError::Terms {
                k: k + 1,
                got: got.join(", "),
                want: want.join(", "),
            });
        }
    }
    let level = job.req.level;
    let fixed_effects = (0..first.fixed_effects.len())
        .map(|t| {
            let q: Vec<f64> = fits.iter().map(|f| f.fixed_effects[t].estimate).collect();
            let s: Vec<f64> = fits.iter().map(|f| f.fixed_effects[t].std_error).collect();
            let d: Vec<f64> = fits.iter().map(|f| f.fixed_effects[t].df).collect();
            pool::pool_term(&first.fixed_effects[t].term, None, &q, &s, &d, level)
        })
        .collect();
    let contrasts = (0..first.contrasts.len())
        .map(|t| {
            let q: Vec<f64> = fits.iter().map(|f| f.contrasts[t].estimate).collect();
            let s: Vec<f64> = fits.iter().map(|f| f.contrasts[t].std_error).collect();
            let d: Vec<f64> = fits.iter().map(|f| f.contrasts[t].df).collect();
            let c = &first.contrasts[t];
            pool::pool_term(&c.contrast, Some(&c.wave), &q, &s, &d, level)
        })
        .collect();
    let dropped = (0..rows_of.len())
        .filter(|&i| rows_of[i] > 0 && covariates.iter().any(|c| c.is_missing(i)))
        .count();
    let mut warnings: Vec<String> = Vec::new();
    for (k, f) in fits.iter().enumerate() {
        for w in &f.warnings {
            warnings.push(format!("imputation {}: {w}", k + 1));
        }
    }
    Ok(CovariateMi {
        outcome: job.req.outcome.clone(),
        analysis_set: job.req.analysis_set.clone(),
        model: job.req.display_formula(),
        m: spec.m,
        iterations: spec.iterations,
        seed,
        imputation_model: model.variables.clone(),
        n_participants_imputation: model.data.n_rows() as u64,
        n_participants: first.n_participants,
        n_observations: first.n_observations,
        n_participants_complete_case_dropped: dropped as u64,
        df_com_rule: "complete-data df of each term: the mean over the imputations of its \
                      Satterthwaite (or Kenward-Roger) df; Barnard-Rubin (1999) df"
            .into(),
        fixed_effects,
        contrasts,
        warnings,
    })
}
