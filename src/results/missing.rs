//! Result types of the estimand and of the missing-data sensitivity analyses (issue 17):
//! `results.json` keys `"estimand"` and `"sensitivity_missing"`. Plain data; the numbers come
//! from `crate::missing` (reference-based conditional mean imputation with jackknife inference,
//! Wolbers et al. 2022; Carpenter, Roger & Kenward 2013; rbmi's `method_condmean`).
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Reads a JSON number, or `null` as `NaN` (serde_json writes `NaN` as `null`).
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The estimand of the primary analysis as the spec states it (ICH E9(R1)): population,
/// treatment, variable (outcome and wave), intercurrent events with their strategies, and the
/// population-level summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Estimand {
    pub population: String,
    pub treatment: String,
    /// The outcome column (scored instrument).
    pub outcome: String,
    /// The wave at which the variable is measured.
    pub wave: String,
    /// The variable as text (outcome label at the wave).
    pub variable: String,
    pub intercurrent_events: Vec<IntercurrentEvent>,
    /// The population-level summary (e.g. difference in adjusted means).
    pub summary: String,
}

/// One intercurrent event and how the estimand handles it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IntercurrentEvent {
    pub event: String,
    /// `treatment_policy`, `hypothetical`, `while_on_treatment`, `composite`,
    /// `principal_stratum`.
    pub strategy: String,
    /// How the analysis implements the strategy (free text; empty when not given).
    #[serde(default)]
    pub handling: String,
}

/// Every missing-data sensitivity analysis of one outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SensitivityMissing {
    pub outcome: String,
    /// `conditional_mean` (jackknife inference).
    pub method: String,
    /// The imputation model (= the MAR analysis model), R syntax, with an unstructured
    /// covariance of the follow-up waves common to both arms, REML.
    pub imputation_model: String,
    /// The analysis model per wave (rbmi's `ancova`).
    pub analysis_model: String,
    /// How the intercurrent event (dropout) is defined, e.g. `last_observed_wave`.
    pub ice_definition: String,
    pub reference_arm: String,
    pub active_arm: String,
    /// The coefficient name of the contrast as R prints it (`armIMR`).
    pub term: String,
    pub waves: Vec<String>,
    /// The wave of the estimand (target of the tipping-point analysis).
    pub target_wave: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_level: f64,
    pub counts: MissingCounts,
    /// The imputation model's (MMRM, MAR) contrast per wave beside the imputation results.
    pub mmrm: Vec<MmrmContrast>,
    /// One entry per strategy (MAR, J2R, CR, CIR).
    pub strategies: Vec<StrategyResult>,
    /// Delta-adjusted (tipping-point) analyses.
    pub tipping_point: Vec<TippingPoint>,
    /// Two-dimensional tipping-point grids over both arms' deltas (`delta.grid2d = true`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tipping_point_2d: Vec<TippingPoint2d>,
    /// Approximate Bayesian multiple imputation (`[sensitivity_missing.approximate_bayes]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple_imputation: Option<MultipleImputation>,
    /// Leave-one-out refits: count, and the largest absolute REML gradient over all fits.
    pub jackknife_refits: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub max_abs_gradient: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Who and what is missing (no silent loss: every randomized participant is counted).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MissingCounts {
    /// Participants in the analysis (randomized, with a baseline value).
    pub n: usize,
    pub by_arm: Vec<ArmMissing>,
    /// Randomized participants left out because the baseline covariate is missing.
    pub excluded_no_baseline: usize,
    /// Participants with no observed follow-up value (imputed at every wave; they enter the
    /// ANCOVA and the jackknife, not the imputation-model fit).
    pub no_followup: usize,
    /// Missing cells before the intercurrent event (intermittent; imputed under MAR).
    pub intermittent_cells: usize,
    /// Missing cells at and after the intercurrent event (imputed by the strategy).
    pub post_ice_cells: usize,
    /// ICE from a date column: observed values after the ICE, kept under MAR and set aside
    /// (imputed) under J2R, CR, CIR and in the delta-adjusted analyses. Absent for the
    /// `last_observed` ICE (nothing is observed after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_ice_observed: Option<usize>,
}

/// Missingness in one arm.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ArmMissing {
    pub arm: String,
    pub n: usize,
    pub excluded_no_baseline: usize,
    /// Participants with an intercurrent event (dropout before the last wave).
    pub with_ice: usize,
    /// Per follow-up wave: observed values.
    pub observed: Vec<usize>,
    /// Per follow-up wave: participants whose intercurrent event is at that wave.
    pub ice_at_wave: Vec<usize>,
    /// ICE from a date column: observed values after the ICE (set aside under J2R, CR, CIR
    /// and delta adjustment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_ice_observed: Option<usize>,
    /// ICE from a date column: participants with an ICE date after the last follow-up wave
    /// (no post-ICE wave, counted neither in `with_ice` nor in `ice_at_wave`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_after_last_wave: Option<usize>,
}

/// The MMRM contrast (active - reference) at one wave, at the mean baseline.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MmrmContrast {
    pub wave: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub std_error: f64,
    /// Satterthwaite df.
    #[serde(deserialize_with = "nan_if_null")]
    pub df: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub p_value: f64,
}

/// One imputation strategy: the contrast per wave.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StrategyResult {
    /// `MAR`, `J2R`, `CR`, `CIR`.
    pub strategy: String,
    pub waves: Vec<StrategyEstimate>,
}

/// The contrast at one wave under one strategy, jackknife inference (rbmi
/// `pool_internal.jackknife`: normal quantiles, CI centred on the full-data estimate).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StrategyEstimate {
    pub wave: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub std_error: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub statistic: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub p_value: f64,
    /// Mean of the leave-one-out estimates.
    #[serde(deserialize_with = "nan_if_null")]
    pub jackknife_mean: f64,
    /// The lm SE on the completed data: not valid inference, shown for comparison only.
    #[serde(deserialize_with = "nan_if_null")]
    pub std_error_naive: f64,
    /// Adjusted mean of the reference arm at the mean baseline, with its jackknife SE.
    #[serde(deserialize_with = "nan_if_null")]
    pub lsm_reference: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub lsm_reference_se: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub lsm_active: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub lsm_active_se: f64,
}

/// A delta-adjusted analysis over a grid and its tipping point.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TippingPoint {
    pub strategy: String,
    pub wave: String,
    /// `score` or `sd`.
    pub delta_units: String,
    /// Score units per delta unit (1 for `score`, the pooled baseline SD for `sd`).
    #[serde(deserialize_with = "nan_if_null")]
    pub delta_scale: f64,
    /// Arms whose post-ICE imputed values are shifted.
    pub delta_arms: Vec<String>,
    /// Per arm, the multiplier of delta (`delta.arms = { IMR = 1.0, TAU = 0.5 }`); absent:
    /// 1 for every arm in `delta_arms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_multipliers: Option<BTreeMap<String, f64>>,
    /// Fixed deltas (delta units) added to an arm's post-ICE imputed values at every grid
    /// point (`delta.fixed`; a column of a two-dimensional grid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<BTreeMap<String, f64>>,
    pub grid: Vec<DeltaRow>,
    /// Going from delta = 0 towards the side that shrinks the contrast, the first grid
    /// interval where p crosses 1 - conf_level, by linear interpolation in p (delta units).
    pub tipping_delta: Option<f64>,
    /// The exact root of p(delta) = 1 - conf_level nearest zero on that side (the estimate and
    /// every leave-one-out estimate are linear in delta, so it solves a quadratic).
    pub tipping_delta_exact: Option<f64>,
    /// Why there is no tipping point (not significant at delta = 0, or no crossing on the grid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A two-dimensional tipping-point grid: the active arm's post-ICE imputed values shifted by
/// `d_row`, the reference arm's by `d_column` (delta units). `columns[c]` is the
/// one-dimensional grid over `row_deltas` with the column arm fixed at `column_deltas[c]`, with
/// its tipping point: over the columns, the boundary where significance is lost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TippingPoint2d {
    pub strategy: String,
    pub wave: String,
    pub delta_units: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub delta_scale: f64,
    /// The arm whose delta varies along each column (the active arm).
    pub row_arm: String,
    /// The arm whose delta is fixed within a column (the reference arm).
    pub column_arm: String,
    pub row_deltas: Vec<f64>,
    pub column_deltas: Vec<f64>,
    pub columns: Vec<TippingPoint>,
}

/// One delta of the grid.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeltaRow {
    /// In delta units.
    #[serde(deserialize_with = "nan_if_null")]
    pub delta: f64,
    /// In score units.
    #[serde(deserialize_with = "nan_if_null")]
    pub delta_score: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub std_error: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub p_value: f64,
}

/// Approximate Bayesian multiple imputation (rbmi `method_approxbayes`): M bootstrap fits of
/// the imputation model, one random imputation from each, pooled by Rubin's rules with the
/// Barnard-Rubin df.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MultipleImputation {
    pub m: usize,
    pub seed: u64,
    /// Bootstrap samples whose fit failed and were drawn again.
    pub failed_fits: usize,
    pub strategies: Vec<MiStrategy>,
    /// Delta-adjusted MI analyses at the tipping-point wave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tipping_point: Vec<MiTippingPoint>,
}

/// One strategy's pooled contrasts per wave.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MiStrategy {
    pub strategy: String,
    pub waves: Vec<PooledEstimate>,
}

/// Rubin's rules (as `mice::pool`): `qbar` the mean of the M estimates, `ubar` the mean
/// within-imputation variance, `b` the between-imputation variance, `t = ubar + (1 + 1/M) b`,
/// the Barnard-Rubin df, `riv = (1 + 1/M) b / ubar`, `lambda = (1 + 1/M) b / t`,
/// `fmi = (riv + 2 / (df + 3)) / (1 + riv)`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PooledEstimate {
    pub wave: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub std_error: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub df: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub p_value: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub ubar: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub b: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub riv: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub lambda: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub fmi: f64,
}

/// The MI delta grid of one strategy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MiTippingPoint {
    pub strategy: String,
    pub wave: String,
    pub delta_units: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub delta_scale: f64,
    pub grid: Vec<MiDeltaRow>,
    /// First crossing of p = 1 - conf_level from delta = 0 towards the side that shrinks the
    /// contrast, linear interpolation in p.
    pub tipping_delta: Option<f64>,
    /// Why there is no tipping point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One delta of an MI grid.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MiDeltaRow {
    #[serde(deserialize_with = "nan_if_null")]
    pub delta: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub std_error: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub df: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub p_value: f64,
}
