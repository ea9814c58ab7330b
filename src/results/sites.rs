//! Site-comparison results: what stands behind each [`super::SiteResult`] (per-site methods,
//! the full meta-analysis, funnel limits, the shrinkage model), fidelity as moderator, and
//! routine outcome monitoring. Data only.
use serde::{Deserialize, Serialize};

/// How a contrast was estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitMethod {
    /// Linear mixed model (lme4/lmerTest) with the requested df method.
    Lmm,
    /// Ordinary least squares on the fixed part (`lm`), because the mixed model was singular
    /// or could not be fitted.
    Ols,
}

/// One wave's intervention minus control contrast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaveContrast {
    pub wave: String,
    pub estimate: f64,
    pub std_error: f64,
    pub df: f64,
    pub statistic: f64,
    pub p_value: f64,
    pub conf_low: f64,
    pub conf_high: f64,
}

/// Fidelity analyses of one outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidelityResult {
    pub outcome: String,
    /// Contrasts of each fidelity band against control, per follow-up wave.
    #[serde(default)]
    pub bands: Vec<FidelityBandRow>,
    /// Fidelity as a continuous group-level moderator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderator: Option<FidelityModerator>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One band's intervention minus control contrast at one wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidelityBandRow {
    /// `high` or `moderate`.
    pub band: String,
    /// The band's fidelity range, e.g. `>= 4` or `3 to < 4`.
    pub range: String,
    pub wave: String,
    /// Intervention participants (of this band) and controls in the model.
    pub n_intervention: u64,
    pub n_control: u64,
    /// Training groups in the band.
    pub n_groups: u64,
    /// `lmm`, or `ols` when the mixed model was singular.
    pub method: FitMethod,
    pub estimate: f64,
    pub std_error: f64,
    pub df: f64,
    pub p_value: f64,
    pub conf_low: f64,
    pub conf_high: f64,
}

/// The continuous-moderator model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidelityModerator {
    pub model: String,
    /// Mean fidelity over the groups with a rating (the centring value).
    pub fidelity_mean: f64,
    pub n_groups: u64,
    pub n_participants: u64,
    pub n_observations: u64,
    pub singular: bool,
    /// Per wave: change of the intervention minus control contrast per fidelity point.
    pub rows: Vec<WaveContrast>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What stands behind one [`super::SiteResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteDetails {
    pub outcome: String,
    pub wave: String,
    /// The per-site model as shown to users.
    pub per_site_model: String,
    /// How each site's contrast was estimated.
    pub per_site_methods: Vec<SiteMethodRow>,
    /// Sites left out, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_sites: Vec<ExcludedSite>,
    /// Full meta-analysis (t, df, p, se of tau^2, H^2, s2w).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<MetaDetails>,
    /// Funnel plot: centre and the pseudo-confidence limits `centre +/- z_crit * se`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funnel: Option<FunnelDetails>,
    /// The shrinkage model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrinkage_model: Option<ShrinkageModel>,
    pub rank_draws: u64,
}

/// A site's estimation method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteMethodRow {
    pub site_id: String,
    pub method: FitMethod,
    pub singular: bool,
    pub n_observations: u64,
    pub statistic: f64,
    pub p_value: f64,
}

/// A site without a per-site estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcludedSite {
    pub site_id: String,
    pub reason: String,
}

/// The parts of `metafor::rma` not in [`super::MetaAnalysis`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaDetails {
    pub statistic: f64,
    pub df: f64,
    pub p_value: f64,
    pub se_tau2: f64,
    pub h2: f64,
    pub s2w: f64,
    pub iterations: u64,
    pub threshold: f64,
    /// Percent weight of each site, in `per_site` order.
    pub weights_percent: Vec<f64>,
}

/// Funnel plot limits (metafor `funnel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelDetails {
    pub center: f64,
    pub z_crit: f64,
    pub se_max: f64,
}

/// Case-mix-adjusted site means of change (routine outcome monitoring).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutineResult {
    pub outcome: String,
    pub baseline_wave: String,
    pub wave: String,
    /// The case-mix model (least squares), R syntax.
    pub model: String,
    /// The shrinkage model (lme4).
    pub shrinkage_model: String,
    pub n_participants: u64,
    /// Participants without both scores or a covariate.
    pub n_excluded: u64,
    /// Mean change over all participants in the model.
    pub overall_mean_change: f64,
    /// Residual SD of the case-mix model.
    pub residual_sd: f64,
    /// SD of the random site intercepts of the shrinkage model.
    pub site_sd: f64,
    pub rows: Vec<RoutineSiteRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One site's case-mix-adjusted mean change with funnel limits and its shrunken effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutineSiteRow {
    pub site_id: String,
    pub n: u64,
    /// Mean observed change.
    pub observed: f64,
    /// Mean change expected from the case mix.
    pub expected: f64,
    /// overall mean + observed - expected.
    pub adjusted: f64,
    /// residual SD / sqrt(n).
    pub std_error: f64,
    pub limit95_low: f64,
    pub limit95_high: f64,
    pub limit998_low: f64,
    pub limit998_high: f64,
    /// `above 99.8%`, `above 95%`, `within`, `below 95%`, `below 99.8%`.
    pub funnel: String,
    /// Conditional mode of the site intercept (deviation from the case-mix prediction).
    pub shrunken: f64,
    pub conditional_sd: f64,
}

/// The shrinkage model and its site-level variance components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShrinkageModel {
    /// Formula as fitted (response `y`).
    pub formula: String,
    /// SD of the random site intercepts.
    pub site_intercept_sd: f64,
    /// SD of the random site-by-arm effects (of the first column).
    pub site_arm_sd: f64,
    /// Correlation of the site intercepts with the (first) site-by-arm effects.
    pub correlation: f64,
    /// Residual SD.
    pub residual_sd: f64,
    pub singular: bool,
    pub converged: bool,
    /// REML criterion at the optimum (lme4's `REMLcrit`), or the deviance of an ML fit.
    pub reml_criterion: f64,
    /// The random-effects term's (first) column holding the site-by-arm effect (`armIMR`).
    pub arm_term: String,
    /// Every site-level effect column reported (`armIMR`; or `imr_T2`, `imr_T3`).
    #[serde(default)]
    pub columns: Vec<String>,
    /// The SD of each of `columns`.
    #[serde(default)]
    pub column_sds: Vec<f64>,
    pub n_sites: usize,
    pub n_observations: usize,
    #[serde(default)]
    pub warnings: Vec<String>,
}
