//! The one results structure every output is rendered from.
//!
//! The analysis stages fill a [`Results`]; the report module turns it into `results.json`,
//! tables (CSV, Markdown, LaTeX, HTML), plots and `report.html`. The report layer computes no
//! statistics, so every number a reader sees comes from here and the formats cannot disagree.
//!
//! The JSON layout (README.md, "What a run produces"): `outcomes` (fixed effects as in
//! `herstel fit --json`), `admissions`, `table1`, `consort`, `mediation` and `sites`. Model rows
//! are broom-style (`term, estimate, std_error, statistic, df, p_value, conf_low, conf_high`),
//! term names as R prints them.
//!
//! Numbers that are not available are `NaN` in memory and `null` in JSON (serde_json writes
//! non-finite floats as `null`; reading `null` back gives `NaN`), or `Option::None` where a
//! value is absent by design (e.g. no adjusted p for the primary outcome).
//! Large per-model data used only for plots (fitted values, residuals, random intercepts,
//! individual trajectories) is optional and omitted from JSON when absent.
use serde::{Deserialize, Deserializer, Serialize};

pub mod covariate_mi;
pub mod missing;
pub mod sites;

/// One row of a coefficient table of a GLM or GLMM (broom's `tidy` shape); Wald z statistic
/// and interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coefficient {
    pub term: String,
    pub estimate: f64,
    pub std_error: f64,
    /// z = estimate / std_error.
    pub statistic: f64,
    pub p_value: f64,
    /// Wald interval `estimate -/+ qnorm((1 + level) / 2) * std_error` (R's `confint.default`).
    pub conf_low: f64,
    pub conf_high: f64,
}

pub use missing::{Estimand, SensitivityMissing};
pub use sites::{
    ExcludedSite, FidelityBandRow, FidelityModerator, FidelityResult, FitMethod, FunnelDetails,
    MetaDetails, RoutineResult, RoutineSiteRow, ShrinkageModel, SiteDetails, SiteMethodRow,
    WaveContrast,
};

/// Reads a JSON number, or `null` as `NaN` (the inverse of how serde_json writes `NaN`).
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Reads a list of numbers in which `null` stands for `NaN`.
fn vec_nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let v = Vec::<Option<f64>>::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

fn nan() -> f64 {
    f64::NAN
}

/// An instrument's display metadata (from its `data-schema/instruments/*.toml`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InstrumentInfo {
    /// Name of the scale and of its total score (`honos`).
    pub name: String,
    /// Full title (`Health of the Nation Outcome Scales`).
    pub title: String,
    /// Short name in tables and plots (`HoNOS`).
    pub label: String,
    /// What the total score is, for axis labels (`prorated sum, 0-48`).
    pub unit: String,
    /// Item response range.
    pub item_min: f64,
    pub item_max: f64,
    /// `higher_better` or `higher_worse`.
    pub direction: String,
}

/// Everything one `herstel run` produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Results {
    /// Provenance: version, spec, input hashes, seed, time.
    pub manifest: Manifest,
    /// The study design as read from study.toml and the analysis spec.
    pub study: StudyDescription,
    /// The instruments of the study as `data-schema/` defines them: names, labels and units
    /// for tables and plots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instruments: Vec<InstrumentInfo>,
    /// Warnings collected over the run (skipped outcomes, singular fits, unstable ratios ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What was left out of the analysis and why (score sets missing, incomplete cases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusions: Vec<ExclusionRow>,
    /// Baseline characteristics by arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table1: Option<Table1>,
    /// Participant flow counts per arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consort: Option<Consort>,
    /// One entry per outcome x analysis set x model (main and sensitivity models).
    #[serde(default)]
    pub outcomes: Vec<OutcomeResult>,
    /// Psychiatric admissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admissions: Option<Admissions>,
    /// Mediation analyses (change scores, within person, treatment level).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mediation: Vec<MediationResult>,
    /// Site comparisons, one entry per outcome x follow-up wave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<SiteResult>,
    /// Per-site model details (funnel limits, excluded sites) behind `sites`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites_details: Vec<SiteDetails>,
    /// Treatment effect by group-fidelity band and fidelity as a moderator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites_fidelity: Vec<FidelityResult>,
    /// Routine outcome monitoring: case-mix-adjusted site means of change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites_routine: Option<RoutineResult>,
    /// The estimand of the primary analysis (`[estimand]` of the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimand: Option<Estimand>,
    /// Missing-data sensitivity analyses (`[sensitivity_missing]`): reference-based imputation
    /// and the tipping point.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitivity_missing: Vec<SensitivityMissing>,
    /// Multiple imputation of missing covariates (`[covariates] missing = "impute"`), one entry
    /// per outcome whose model names an incomplete covariate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covariate_mi: Vec<covariate_mi::CovariateMi>,
}

// ---------------------------------------------------------------------------------------------
// Provenance and design

/// Provenance of a run: the manifest in results.json (README.md, "What a run produces").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// `CARGO_PKG_VERSION` of the herstel that wrote the results.
    pub herstel_version: String,
    /// Name or path of the analysis spec (e.g. `imr-trial.toml` or `<built-in>`).
    #[serde(default)]
    pub spec_name: String,
    /// The analysis spec as text (TOML), exactly as used.
    #[serde(default)]
    pub spec: String,
    /// Every input file with its SHA-256.
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// Seed of the run's random number generator (simulation, bootstrap, Monte Carlo).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Time of the run, RFC 3339 (UTC).
    #[serde(default)]
    pub time: String,
    /// The command line, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// One input file and its hash.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InputFile {
    /// Path as given (or `<built-in simulated trial>`).
    pub path: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Size in bytes.
    #[serde(default)]
    pub bytes: u64,
}

/// The study as designed: arms, waves, design, outcomes and the analysis choices.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StudyDescription {
    /// Study name from study.toml.
    pub name: String,
    /// Arms in study order; the first is the reference (control) level.
    pub arms: Vec<String>,
    /// The intervention arm (e.g. `IMR`).
    pub intervention: String,
    /// Waves in study order with their nominal months.
    pub waves: Vec<WaveInfo>,
    /// `individual` (individually randomized, IMR groups in the intervention arm only) or
    /// `cluster`.
    #[serde(default = "default_design")]
    pub design: String,
    /// Instruments in the export, study order.
    #[serde(default)]
    pub instruments: Vec<String>,
    /// The primary outcome (instrument name).
    #[serde(default)]
    pub primary_outcome: Option<String>,
    /// Number of participants randomized.
    #[serde(default)]
    pub n_participants: u64,
    /// Number of sites.
    #[serde(default)]
    pub n_sites: u64,
    /// Number of IMR training groups.
    #[serde(default)]
    pub n_groups: u64,
    /// Multiplicity adjustment across secondary outcomes (R's `p.adjust` name, e.g. `holm`).
    #[serde(default)]
    pub p_adjust: Option<String>,
    /// Confidence level of all intervals (0.95).
    #[serde(default = "default_conf_level")]
    pub conf_level: f64,
    /// Analysis sets and how they are defined, e.g. `("per_protocol", "controls plus IMR
    /// participants who attended at least half the planned sessions")`.
    #[serde(default)]
    pub analysis_sets: Vec<AnalysisSetInfo>,
}

fn default_design() -> String {
    "individual".into()
}
fn default_conf_level() -> f64 {
    0.95
}

/// One wave of the study.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WaveInfo {
    /// Wave label (`T0`).
    pub label: String,
    /// Nominal months since randomization.
    pub months: f64,
}

/// An analysis set and its definition.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AnalysisSetInfo {
    /// Key used in the outcome rows (`itt`, `per_protocol`, `fidelity_high` ...).
    pub name: String,
    /// Human-readable definition.
    pub description: String,
}

/// A count of excluded records and the reason.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ExclusionRow {
    /// What was excluded: an instrument, a table or an analysis (`mhrm`, `admissions`).
    pub what: String,
    /// Wave, when the exclusion is per wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<String>,
    /// Why (`fewer than 80% of items answered`, `wave not assessed`).
    pub reason: String,
    /// How many participant x wave records (or participants) it concerns.
    pub count: u64,
}

// ---------------------------------------------------------------------------------------------
// Table 1 and CONSORT

/// Baseline characteristics by arm (Table 1).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Table1 {
    /// Arms in column order with their n.
    pub arms: Vec<ArmCount>,
    /// Rows in display order.
    pub rows: Vec<Table1Row>,
}

/// An arm and how many participants it has.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ArmCount {
    /// Arm label.
    pub arm: String,
    /// Participants.
    pub n: u64,
}

/// How a Table 1 row summarises its variable.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Table1Statistic {
    /// Mean (SD).
    #[default]
    MeanSd,
    /// Median (IQR), for skewed variables.
    MedianIqr,
    /// n (%) of a category level.
    CountPercent,
}

/// One row of Table 1: a continuous variable, or one level of a categorical one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Table1Row {
    /// Variable label (`Age, years`, `Sex`, `IMRS client`).
    pub variable: String,
    /// Category level for `count_percent` rows (`female`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The summary shown.
    pub statistic: Table1Statistic,
    /// One cell per arm, in the order of [`Table1::arms`].
    pub cells: Vec<Table1Cell>,
}

/// The summary of one variable in one arm. Only the fields of the row's statistic are set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Table1Cell {
    /// Arm label.
    pub arm: String,
    /// Participants with a value.
    #[serde(default)]
    pub n: u64,
    /// Mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Standard deviation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sd: Option<f64>,
    /// Median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median: Option<f64>,
    /// First quartile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q1: Option<f64>,
    /// Third quartile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q3: Option<f64>,
    /// Count in the level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Percentage (0-100) of the arm's participants with a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

/// Participant flow (CONSORT 2010 flow diagram counts).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Consort {
    /// Total randomized.
    pub randomized: u64,
    /// Per arm, in study order.
    pub arms: Vec<ConsortArm>,
}

/// Flow counts of one arm.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConsortArm {
    /// Arm label.
    pub arm: String,
    /// Randomized to this arm.
    pub randomized: u64,
    /// Attended at least one IMR session (intervention arm only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attended_any_session: Option<u64>,
    /// Attended at least the per-protocol threshold of sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completers: Option<u64>,
    /// Assessed (primary outcome observed) at each wave, study order.
    pub assessed: Vec<WaveCount>,
    /// Not assessed at each wave (lost to follow-up at that wave; may return later).
    #[serde(default)]
    pub lost: Vec<WaveCount>,
    /// Analysed in the primary (ITT) analysis.
    pub analysed: u64,
}

/// A count at one wave.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WaveCount {
    /// Wave label.
    pub wave: String,
    /// Count.
    pub n: u64,
}

// ---------------------------------------------------------------------------------------------
// Outcome models

/// One outcome model: an outcome in one analysis set under one model.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OutcomeResult {
    /// Instrument name (`imrs_client`).
    pub outcome: String,
    /// Analysis set (`itt`, `per_protocol`, `fidelity_high`, `fidelity_moderate`).
    pub analysis_set: String,
    /// `None` for the main model, else the sensitivity analysis (`site`, `groups`,
    /// `random_slope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<String>,
    /// Whether this is the primary outcome.
    #[serde(default)]
    pub primary: bool,
    /// The model formula in lme4 syntax.
    pub model: String,
    /// REML (true) or ML.
    #[serde(default = "yes")]
    pub reml: bool,
    /// Denominator df method: `satterthwaite`, `kenward-roger` or `none`.
    #[serde(default = "default_df_method")]
    pub df_method: String,
    /// Participants in the model.
    pub n_participants: u64,
    /// Observations (rows) in the model.
    pub n_observations: u64,
    /// Fixed effects, R's term names.
    #[serde(default)]
    pub fixed_effects: Vec<TermRow>,
    /// Random-effect SDs (and the residual SD as group `Residual`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub random_effects: Vec<RandomEffectRow>,
    /// Fit statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<FitStats>,
    /// The arm x wave omnibus test (type III F, as lmerTest's `anova`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_test: Option<FTest>,
    /// Estimated marginal means per arm x wave (as emmeans).
    #[serde(default)]
    pub emmeans: Vec<EmmeanRow>,
    /// Intervention minus control at each follow-up wave.
    #[serde(default)]
    pub contrasts: Vec<ContrastRow>,
    /// Difference in change from baseline (intervention minus control) at each follow-up wave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub change_contrasts: Vec<ContrastRow>,
    /// Model comparison behind a sensitivity choice (e.g. random slope by AIC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<ModelComparison>,
    /// Warnings of this fit (singular, not converged, dropped columns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Fitted values, residuals and random intercepts for the diagnostic plots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<ModelDiagnostics>,
    /// Observed scores per participant for the individual-trajectory plot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trajectories: Option<Vec<Trajectory>>,
    /// A GLMM (`[model] family`): family and link (`binomial (logit)`); marginal means are
    /// then on the response scale and contrasts are odds or rate ratios. Absent for the LMM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Negative-binomial GLMM: theta; infinite (`null` in JSON) when the deviance is lowest
    /// at the Poisson limit (the model's warnings say so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theta: Option<f64>,
}

fn yes() -> bool {
    true
}
fn default_df_method() -> String {
    "satterthwaite".into()
}

/// A broom-style coefficient row (`broom::tidy` columns).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TermRow {
    /// R's term name (`armIMR:waveT2`).
    pub term: String,
    /// Estimate.
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    /// Standard error.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub std_error: f64,
    /// t (or z) statistic.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub statistic: f64,
    /// Degrees of freedom (`NaN` when not applicable).
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub df: f64,
    /// Two-sided p-value.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub p_value: f64,
    /// Lower confidence limit.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub conf_low: f64,
    /// Upper confidence limit.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub conf_high: f64,
}

/// A random-effect standard deviation (lme4's `VarCorr`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RandomEffectRow {
    /// Grouping factor as lme4 prints it (`participant_id`, `Residual`).
    pub group: String,
    /// Term (`(Intercept)`; empty for the residual).
    pub term: String,
    /// Standard deviation.
    #[serde(deserialize_with = "nan_if_null")]
    pub sd: f64,
}

/// Fit statistics of one model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FitStats {
    /// Log-likelihood (REML or ML as fitted).
    #[serde(deserialize_with = "nan_if_null")]
    pub loglik: f64,
    /// AIC.
    #[serde(deserialize_with = "nan_if_null")]
    pub aic: f64,
    /// BIC.
    #[serde(deserialize_with = "nan_if_null")]
    pub bic: f64,
    /// REML criterion (REML fits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reml_criterion: Option<f64>,
    /// Converged.
    pub converged: bool,
    /// A variance at 0 or correlation at +-1.
    pub singular: bool,
}

/// An F test of several coefficients (lmerTest `anova`, type III).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FTest {
    /// Term tested (`arm:wave`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    /// F statistic.
    #[serde(deserialize_with = "nan_if_null")]
    pub f: f64,
    /// Numerator df.
    #[serde(deserialize_with = "nan_if_null")]
    pub df_num: f64,
    /// Denominator df.
    #[serde(deserialize_with = "nan_if_null")]
    pub df_den: f64,
    /// p-value.
    #[serde(deserialize_with = "nan_if_null")]
    pub p_value: f64,
}

/// An estimated marginal mean (emmeans) for one arm at one wave.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmmeanRow {
    /// Arm.
    pub arm: String,
    /// Wave.
    pub wave: String,
    /// Marginal mean.
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    /// Standard error.
    #[serde(deserialize_with = "nan_if_null")]
    pub std_error: f64,
    /// Degrees of freedom.
    #[serde(deserialize_with = "nan_if_null")]
    pub df: f64,
    /// Lower confidence limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    /// Upper confidence limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
}

/// A contrast between arms at one wave (emmeans `contrast`), with Cohen's d.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContrastRow {
    /// Wave.
    pub wave: String,
    /// Contrast label as emmeans prints it (`IMR - TAU`).
    pub contrast: String,
    /// Estimate.
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    /// Standard error.
    #[serde(deserialize_with = "nan_if_null")]
    pub std_error: f64,
    /// Degrees of freedom.
    #[serde(deserialize_with = "nan_if_null")]
    pub df: f64,
    /// Lower confidence limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    /// Upper confidence limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
    /// t statistic.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub statistic: f64,
    /// Two-sided p-value.
    #[serde(deserialize_with = "nan_if_null")]
    pub p_value: f64,
    /// p-value adjusted across secondary outcomes (none for the primary outcome).
    #[serde(default)]
    pub p_adjusted: Option<f64>,
    /// Cohen's d: contrast over the pooled baseline SD (Feingold 2009).
    #[serde(default)]
    pub cohens_d: Option<f64>,
    /// Lower confidence limit of d.
    #[serde(default)]
    pub d_conf_low: Option<f64>,
    /// Upper confidence limit of d.
    #[serde(default)]
    pub d_conf_high: Option<f64>,
}

/// A comparison of nested models (AIC and likelihood ratio).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelComparison {
    /// What was compared (`random slope of time`).
    pub description: String,
    /// AIC of the simpler model.
    #[serde(deserialize_with = "nan_if_null")]
    pub aic_reduced: f64,
    /// AIC of the larger model.
    #[serde(deserialize_with = "nan_if_null")]
    pub aic_full: f64,
    /// Likelihood-ratio chi-square.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub chisq: f64,
    /// Its df.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub df: f64,
    /// Its p-value.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub p_value: f64,
    /// Which model was kept (`full` or `reduced`).
    pub chosen: String,
}

/// Per-model data for residual diagnostics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ModelDiagnostics {
    /// Fitted values (conditional on the random effects), one per observation.
    #[serde(deserialize_with = "vec_nan_if_null")]
    pub fitted: Vec<f64>,
    /// Conditional residuals, same order as `fitted`.
    #[serde(deserialize_with = "vec_nan_if_null")]
    pub residuals: Vec<f64>,
    /// Conditional modes of the random intercepts.
    #[serde(default)]
    pub random_intercepts: Vec<RandomEffectValue>,
    /// Normal QQ plot of the residuals.
    #[serde(default)]
    pub qq_residuals: QqPlot,
    /// Normal QQ plot of the random intercepts of `qq_group` (the participant's, else the
    /// first grouping factor's).
    #[serde(default)]
    pub qq_random_intercepts: QqPlot,
    #[serde(default)]
    pub qq_group: Option<String>,
}

/// A normal QQ plot as R's `qqnorm` + `qqline`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QqPlot {
    /// `qnorm(ppoints(n))`.
    #[serde(deserialize_with = "vec_nan_if_null")]
    pub theoretical: Vec<f64>,
    /// The sorted finite values.
    #[serde(deserialize_with = "vec_nan_if_null")]
    pub sample: Vec<f64>,
    /// `qqline`: intercept and slope.
    #[serde(default)]
    pub line: Option<(f64, f64)>,
}

/// One conditional mode (BLUP) with its conditional SD.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RandomEffectValue {
    /// Grouping factor (`participant_id`, `site_id`).
    pub group: String,
    /// Level (`P0001`).
    pub level: String,
    /// Conditional mode.
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    /// Conditional SD.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub conditional_sd: f64,
}

/// The observed scores of one participant over the waves.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Trajectory {
    /// Participant.
    pub participant_id: String,
    /// Arm.
    pub arm: String,
    /// Observed points, study order.
    pub points: Vec<TrajectoryPoint>,
}

/// One observed score.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrajectoryPoint {
    /// Wave label.
    pub wave: String,
    /// Months since randomization (nominal or actual).
    #[serde(deserialize_with = "nan_if_null")]
    pub months: f64,
    /// Score.
    #[serde(deserialize_with = "nan_if_null")]
    pub value: f64,
}

// ---------------------------------------------------------------------------------------------
// Admissions

/// Psychiatric admissions (the `[admissions]` analyses of the spec).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Admissions {
    /// The follow-up window (`days 1-639 after randomization`).
    #[serde(default)]
    pub followup_window: String,
    /// The prior window (`365 days before randomization`).
    #[serde(default)]
    pub prior_window: String,
    /// Negative-binomial rate ratio, follow-up count ~ arm + prior count + offset(log exposure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_binomial: Option<CountModel>,
    /// Poisson, same model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poisson: Option<CountModel>,
    /// Logistic regression of any admission in the year after treatment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logistic: Option<LogisticResult>,
    /// Bed days compared by Mann-Whitney U.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bed_days: Option<BedDays>,
    /// Descriptive totals per arm (for the admissions plot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_arm: Vec<AdmissionsByArm>,
    /// Admissions per period between waves (`[admissions] model = "per_period"`): counts,
    /// days at risk and the mixed models over the periods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_period: Option<PerPeriodAdmissions>,
}

/// Admissions in each interval between consecutive waves, per participant, with the negative
/// binomial and logistic mixed models over the periods (issue 15).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PerPeriodAdmissions {
    /// The periods in order.
    pub periods: Vec<AdmissionPeriod>,
    /// Participant-period rows analysed.
    pub n_rows: u64,
    /// Participants with at least one analysed period.
    pub n_participants: u64,
    /// Participant-period rows left out, grouped by reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<ExcludedRows>,
    /// Observed counts, bed days and days at risk per arm and period.
    pub observed: Vec<PeriodArmSummary>,
    /// The negative-binomial GLMM of admissions per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_binomial: Option<PeriodModel>,
    /// The logistic GLMM of any admission per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logistic: Option<PeriodModel>,
    /// Models that could not be fitted, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One interval between waves: days `first..=last` after randomization.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AdmissionPeriod {
    /// The level of `period` in the models: the waves that start and end it (`T1_T2`).
    pub label: String,
    /// The wave that starts it.
    pub from_wave: String,
    /// The wave that ends it.
    pub to_wave: String,
    pub first_day: i32,
    pub last_day: i32,
}

/// Rows left out of an analysis for one reason.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ExcludedRows {
    pub reason: String,
    pub count: u64,
    /// The first few, as `participant period`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// Observed admissions in one arm and period.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PeriodArmSummary {
    pub arm: String,
    pub period: String,
    /// Participants analysed in the period.
    pub n: u64,
    pub admissions: u64,
    pub bed_days: u64,
    /// Person-years at risk (days outside hospital / 365.25).
    #[serde(deserialize_with = "nan_if_null")]
    pub person_years: f64,
    /// Participants with at least one admission starting in the period.
    pub with_admission: u64,
}

/// A GLMM over the periods: its coefficients, the arm effect per period and overall, and the
/// model-based marginal rates or risks per arm and period.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PeriodModel {
    /// The model in R syntax (`glmmTMB(..., family = nbinom2)`).
    pub model: String,
    /// `rate_ratio` or `odds_ratio`.
    pub ratio: String,
    /// Fixed effects (log scale), R's term names.
    pub coefficients: Vec<TermRow>,
    /// SD of the participant random intercept.
    #[serde(deserialize_with = "nan_if_null")]
    pub sd_participant: f64,
    /// Negative binomial: theta (`Var = mu + mu^2 / theta`); infinite (`null` in JSON) at the
    /// Poisson limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theta: Option<f64>,
    #[serde(deserialize_with = "nan_if_null")]
    pub loglik: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub aic: f64,
    pub converged: bool,
    pub singular: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Intervention over control per period, then `overall` (the mean of the log ratios over
    /// the periods, as emmeans averages over `period`).
    pub effects: Vec<PeriodEffect>,
    /// Logistic: the marginal risk difference (intervention minus control) per period, then
    /// overall.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risk_differences: Vec<PeriodEffect>,
    /// Model-based marginal rate per person-year (count model) or risk (logistic) per arm
    /// and period, averaged over the participants' covariates and the random intercept.
    pub marginal: Vec<PeriodMarginal>,
}

/// An effect in one period (or `overall`) with its Wald interval and z test.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PeriodEffect {
    pub period: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub p_value: f64,
}

/// A model-based marginal rate or risk of one arm in one period.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PeriodMarginal {
    pub arm: String,
    pub period: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
}

/// A count model's arm effect as a rate ratio.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CountModel {
    /// Model formula (R syntax).
    #[serde(default)]
    pub model: String,
    /// exp(coefficient of arm).
    #[serde(deserialize_with = "nan_if_null")]
    pub rate_ratio: f64,
    /// Lower limit (Wald on the log scale).
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    /// Upper limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
    /// p-value (z test).
    #[serde(deserialize_with = "nan_if_null")]
    pub p_value: f64,
    /// Negative-binomial theta (MASS::glm.nb), absent for Poisson.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theta: Option<f64>,
    /// Pearson dispersion statistic (chi-square / residual df), for the overdispersion check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispersion: Option<f64>,
    /// Coefficient table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coefficients: Vec<TermRow>,
}

/// Logistic regression of any admission (odds ratio) and the absolute risk difference.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogisticResult {
    /// Model formula.
    #[serde(default)]
    pub model: String,
    /// Odds ratio for arm.
    #[serde(deserialize_with = "nan_if_null")]
    pub odds_ratio: f64,
    /// Lower limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    /// Upper limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
    /// p-value.
    #[serde(deserialize_with = "nan_if_null")]
    pub p_value: f64,
    /// Risk of any admission per arm, study order.
    #[serde(default)]
    pub risks: Vec<ArmRisk>,
    /// Risk difference intervention minus control.
    #[serde(default)]
    pub risk_difference: Option<f64>,
    /// Its lower limit.
    #[serde(default)]
    pub rd_conf_low: Option<f64>,
    /// Its upper limit.
    #[serde(default)]
    pub rd_conf_high: Option<f64>,
}

/// The proportion with an event in one arm.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArmRisk {
    /// Arm.
    pub arm: String,
    /// Participants with the event.
    pub events: u64,
    /// Participants.
    pub n: u64,
}

/// Change in bed days compared between arms (Mann-Whitney U, `wilcox.test`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BedDays {
    /// Test name.
    #[serde(default)]
    pub test: String,
    /// U (R's W, of the control arm).
    #[serde(deserialize_with = "nan_if_null")]
    pub u: f64,
    /// p-value.
    #[serde(deserialize_with = "nan_if_null")]
    pub p_value: f64,
    /// Per-arm summaries of the change in bed days.
    #[serde(default)]
    pub by_arm: Vec<ArmDistribution>,
}

/// Median and quartiles of a variable in one arm.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArmDistribution {
    /// Arm.
    pub arm: String,
    /// Participants.
    pub n: u64,
    /// Mean.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub mean: f64,
    /// Median.
    #[serde(deserialize_with = "nan_if_null")]
    pub median: f64,
    /// First quartile.
    #[serde(deserialize_with = "nan_if_null")]
    pub q1: f64,
    /// Third quartile.
    #[serde(deserialize_with = "nan_if_null")]
    pub q3: f64,
}

/// Admission totals of one arm in both windows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AdmissionsByArm {
    /// Arm.
    pub arm: String,
    /// Participants.
    pub n: u64,
    /// Admissions in the prior window.
    pub admissions_prior: u64,
    /// Admissions in the follow-up window.
    pub admissions_followup: u64,
    /// Bed days in the prior window.
    pub bed_days_prior: u64,
    /// Bed days in the follow-up window.
    pub bed_days_followup: u64,
    /// Person-years of exposure in the prior window.
    #[serde(deserialize_with = "nan_if_null")]
    pub exposure_years_prior: f64,
    /// Person-years of exposure in the follow-up window.
    #[serde(deserialize_with = "nan_if_null")]
    pub exposure_years_followup: f64,
}

// ---------------------------------------------------------------------------------------------
// Mediation

/// One mediation analysis of the recovery framework (`[mediation]` of the spec).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MediationResult {
    /// `change_scores`, `within_person` or `treatment`.
    pub analysis: String,
    /// Predictor (`imrs_client`, or `arm` for the treatment-level analysis).
    pub x: String,
    /// Mediators in order (`bsi`, `sfs`): a1/b1 refer to the first, a2/b2 to the second.
    pub mediators: Vec<String>,
    /// Outcome (`mhrm`).
    pub y: String,
    /// Participants used.
    #[serde(default)]
    pub n_used: u64,
    /// Participants excluded (incomplete cases).
    #[serde(default)]
    pub n_excluded: u64,
    /// Paths `a1`, `a2`, `b1`, `b2`, `c_prime`, `c` (or `a`, `b` with one mediator).
    #[serde(default)]
    pub paths: Vec<PathRow>,
    /// Between-person paths of the within-person analysis, same names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub between_paths: Vec<PathRow>,
    /// Indirect effects `a1b1`, `a2b2`, `sum`.
    #[serde(default)]
    pub indirect: Vec<IndirectRow>,
    /// Proportion mediated (sum of indirect / total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proportion_mediated: Option<f64>,
    /// Bootstrap resamples used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_resamples: Option<u64>,
    /// Monte Carlo draws used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monte_carlo_draws: Option<u64>,
    /// Warnings (e.g. unstable proportion mediated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One path coefficient.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PathRow {
    /// Path name (`a1`, `b2`, `c_prime`, `c`).
    pub path: String,
    /// Unstandardized estimate.
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    /// Standard error.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub std_error: f64,
    /// Standardized estimate.
    #[serde(default)]
    pub std_estimate: Option<f64>,
    /// Degrees of freedom.
    #[serde(default)]
    pub df: Option<f64>,
    /// p-value.
    #[serde(default)]
    pub p_value: Option<f64>,
    /// Lower confidence limit.
    #[serde(default)]
    pub conf_low: Option<f64>,
    /// Upper confidence limit.
    #[serde(default)]
    pub conf_high: Option<f64>,
}

/// An indirect effect with its intervals.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndirectRow {
    /// `a1b1`, `a2b2` or `sum`.
    pub effect: String,
    /// Unstandardized estimate.
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    /// Standardized estimate.
    #[serde(default)]
    pub std_estimate: Option<f64>,
    /// Sobel (delta-method) SE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sobel_se: Option<f64>,
    /// Percentile bootstrap interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Interval>,
    /// Monte Carlo interval (Preacher & Selig 2012).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monte_carlo: Option<Interval>,
}

/// A confidence interval.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Interval {
    /// Lower limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    /// Upper limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
}

// ---------------------------------------------------------------------------------------------
// Sites

/// Site comparison for one outcome at one follow-up wave (`[sites]` of the spec).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SiteResult {
    /// Outcome.
    pub outcome: String,
    /// Follow-up wave.
    pub wave: String,
    /// Intervention minus control within each site.
    #[serde(default)]
    pub per_site: Vec<PerSiteRow>,
    /// Random-effects meta-analysis of the per-site contrasts (metafor::rma, REML, Knapp-Hartung).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_analysis: Option<MetaAnalysis>,
    /// Shrunken site-by-arm effects (conditional modes) from one model.
    #[serde(default)]
    pub shrunken: Vec<ShrunkenRow>,
    /// Ranks with 95% intervals.
    #[serde(default)]
    pub ranks: Vec<RankRow>,
    /// Leave-one-site-out pooled estimates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leave_one_out: Vec<LeaveOneOutRow>,
}

/// One site's contrast.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PerSiteRow {
    /// Site.
    pub site_id: String,
    /// Participants.
    pub n_participants: u64,
    /// Estimate.
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    /// Standard error.
    #[serde(deserialize_with = "nan_if_null")]
    pub std_error: f64,
    /// Degrees of freedom.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub df: f64,
    /// Lower limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    /// Upper limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
}

/// Random-effects meta-analysis (metafor::rma, `method = "REML"`, `test = "knha"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetaAnalysis {
    /// Number of sites.
    pub k: u64,
    /// Pooled estimate.
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    /// Its SE.
    #[serde(deserialize_with = "nan_if_null")]
    pub std_error: f64,
    /// Lower limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    /// Upper limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
    /// Between-site variance.
    #[serde(deserialize_with = "nan_if_null")]
    pub tau2: f64,
    /// I^2 in percent.
    #[serde(deserialize_with = "nan_if_null")]
    pub i2: f64,
    /// Cochran's Q.
    #[serde(deserialize_with = "nan_if_null")]
    pub q: f64,
    /// p-value of Q.
    #[serde(deserialize_with = "nan_if_null")]
    pub q_p_value: f64,
    /// Prediction interval, lower.
    #[serde(deserialize_with = "nan_if_null")]
    pub pi_low: f64,
    /// Prediction interval, upper.
    #[serde(deserialize_with = "nan_if_null")]
    pub pi_high: f64,
}

/// A shrunken site-by-arm effect.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShrunkenRow {
    /// Site.
    pub site_id: String,
    /// Conditional mode of the site's arm effect (deviation from the average).
    #[serde(deserialize_with = "nan_if_null")]
    pub arm_effect: f64,
    /// Conditional SD.
    #[serde(deserialize_with = "nan_if_null")]
    pub conditional_sd: f64,
}

/// A site's rank with its interval (1 = largest effect).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RankRow {
    /// Site.
    pub site_id: String,
    /// Rank.
    pub rank: u64,
    /// 2.5% rank.
    pub rank_low: u64,
    /// 97.5% rank.
    pub rank_high: u64,
}

/// The pooled estimate without one site.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaveOneOutRow {
    /// Site left out.
    pub site_id: String,
    /// Pooled estimate without it.
    #[serde(deserialize_with = "nan_if_null")]
    pub estimate: f64,
    /// Lower limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_low: f64,
    /// Upper limit.
    #[serde(deserialize_with = "nan_if_null")]
    pub conf_high: f64,
}

impl Results {
    /// The main model (no sensitivity variant) of the first analysis set for each outcome,
    /// preferring `itt`; outcomes in the order they first appear.
    pub fn main_models(&self) -> Vec<&OutcomeResult> {
        let mut names: Vec<&str> = Vec::new();
        for o in &self.outcomes {
            if !names.contains(&o.outcome.as_str()) {
                names.push(&o.outcome);
            }
        }
        names
            .into_iter()
            .filter_map(|n| {
                let mains = || {
                    self.outcomes
                        .iter()
                        .filter(move |o| o.outcome == n && o.sensitivity.is_none())
                };
                mains()
                    .find(|o| o.analysis_set == "itt")
                    .or_else(|| mains().next())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_round_trips_through_null() {
        let row = TermRow {
            term: "(Intercept)".into(),
            estimate: 1.5,
            std_error: 0.1,
            statistic: 15.0,
            df: f64::NAN,
            p_value: 0.0,
            conf_low: 1.3,
            conf_high: 1.7,
        };
        let s = serde_json::to_string(&row).unwrap();
        assert!(s.contains("\"df\":null"));
        let back: TermRow = serde_json::from_str(&s).unwrap();
        assert!(back.df.is_nan());
        assert_eq!(back.estimate, 1.5);
    }

    #[test]
    fn optional_sections_are_omitted() {
        let r = Results::default();
        let s = serde_json::to_string(&r).unwrap();
        assert!(!s.contains("admissions"));
        assert!(!s.contains("mediation"));
        assert!(s.contains("\"outcomes\":[]"));
        let back: Results = serde_json::from_str(&s).unwrap();
        assert_eq!(back, r);
    }
}
