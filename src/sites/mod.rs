//! Site comparisons across the IMR network: per-site treatment effects, their
//! random-effects meta-analysis, shrunken site effects with ranks, fidelity as moderator,
//! pooled exports and routine outcome monitoring. Pure: no file is read or written here.
//!
//! Per outcome and follow-up wave ([`SiteResult`], the `sites` rows of results.json):
//! * `per_site`: the intervention minus control contrast at the wave from the trial's outcome
//!   model fitted to each site's data (`lmer(y ~ arm * wave + (1 | participant_id))` with
//!   emmeans/lmerTest Satterthwaite df), ordinary least squares (`lm`) when that fit is
//!   singular ([`contrast`]).
//! * `meta_analysis` and `leave_one_out`: `metafor::rma(yi, sei, method = "REML",
//!   test = "knha")` and `leave1out` of those contrasts ([`crate::meta`], Viechtbauer 2010).
//! * `shrunken` and `ranks`: conditional modes of the site-by-arm effects of one model
//!   `y ~ arm * wave + (1 | participant_id) + (1 + arm | site_id)` and ranks with 95%
//!   intervals by parametric simulation ([`shrinkage`]). This model has one site-by-arm
//!   effect per site over all waves, so these rows are the same at every wave;
//!   [`SitesSpec::shrinkage_term`] selects a site effect that is 0 at baseline
//!   (`imr_followup`) or one per follow-up wave (`imr_wave`).
//!
//! The golden values are those of `tests/r/sites.R` (lme4, lmerTest, emmeans, metafor).

pub mod contrast;
pub mod fidelity;
pub mod routine;
pub mod shrinkage;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::formula::{Formula, OUTCOME_PLACEHOLDER};
use crate::ingest::Trial;
use crate::lmm::{DfMethod, DfSpec};
use crate::meta::{self, MetaOptions};
use crate::progress::ProgressSink;
use crate::results::{
    ExcludedSite, FunnelDetails, LeaveOneOutRow, MetaAnalysis, MetaDetails, PerSiteRow, RankRow,
    ShrunkenRow, SiteDetails, SiteMethodRow, SiteResult,
};
pub use crate::results::{
    FidelityBandRow, FidelityModerator, FidelityResult, RoutineResult, ShrinkageModel,
};
use crate::schema::study::Design;
use crate::scoring::Scored;
use crate::trial_data::{outcome_data, FidelityBands, OutcomeData, SetFilter};
pub use contrast::SiteModelError;
use contrast::{fit_contrasts, rows_by_level, subset_frame, ContrastDesign};
pub use routine::{routine_site_means, RoutineError};

/// The `[sites]` table of an analysis spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SitesSpec {
    /// Outcomes (score columns), default `imrs_client` and `mhrm`.
    pub outcomes: Vec<String>,
    /// Follow-up waves to report; default every wave after baseline.
    pub waves: Option<Vec<String>>,
    /// The outcome model fitted within each site, lme4 syntax with `{outcome}`.
    pub formula: String,
    /// The shrinkage model over all sites; must have a random-effects term per `site_id`
    /// with the column named by `shrinkage_term`.
    pub shrinkage_formula: String,
    /// The site-level random-effect column whose conditional modes are the shrunken site
    /// effects: `arm` (the intervention's arm column, `armIMR`, as tests/r/sites.R) or
    /// `imr_followup` (1 for intervention participants at follow-up waves, 0 otherwise: a
    /// site-by-arm effect that is 0 at baseline, as randomization implies; use it with
    /// `(1 + imr_followup | site_id)`), or `imr_wave` (one indicator per follow-up wave,
    /// `imr_T2`, `imr_T3`, ...: a site effect per wave, so shrunken effects and ranks differ by
    /// wave; use it with `(1 + {imr_waves} | site_id)`, `{imr_waves}` expanding to
    /// `imr_T2 + imr_T3`).
    pub shrinkage_term: String,
    /// Denominator df of the per-site contrasts.
    pub df: DfSpec,
    /// Sites with fewer participants (with a score) are left out of the per-site analyses.
    pub min_participants: usize,
    /// Draws of the rank simulation (0 = no ranks).
    pub rank_draws: usize,
    /// Confidence level of every interval.
    pub conf_level: f64,
    /// Fisher-scoring threshold of the REML tau^2 (metafor's default 1e-5; 1e-12 converges
    /// fully, as `control = list(threshold = 1e-12)`).
    pub tau2_threshold: f64,
    /// Fidelity as a moderator.
    pub fidelity: FidelitySpec,
    /// Routine outcome monitoring: case-mix-adjusted site means of change (absent = not run).
    pub routine: Option<RoutineSpec>,
}

impl Default for SitesSpec {
    fn default() -> Self {
        SitesSpec {
            outcomes: vec!["imrs_client".into(), "mhrm".into()],
            waves: None,
            formula: "{outcome} ~ arm * wave + (1 | participant_id)".into(),
            shrinkage_formula:
                "{outcome} ~ arm * wave + (1 | participant_id) + (1 + arm | site_id)".into(),
            shrinkage_term: "arm".into(),
            df: DfSpec::Satterthwaite,
            min_participants: 4,
            rank_draws: 1000,
            conf_level: 0.95,
            tau2_threshold: 1e-12,
            fidelity: FidelitySpec::default(),
            routine: None,
        }
    }
}

/// `[sites.fidelity]`: the fidelity bands of [`FidelityBands`] (the same keys and defaults as
/// `[sensitivity.fidelity]`) and the continuous moderator. A struct of its own, not
/// `#[serde(flatten)]` over the bands, because serde cannot deny unknown keys through a
/// flattened field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FidelitySpec {
    pub enabled: bool,
    /// High fidelity: at least this IMR Fidelity Scale mean.
    pub high: f64,
    /// Moderate fidelity: from this value up to `high`.
    pub moderate: f64,
    /// Also fit fidelity as a continuous moderator in the partially nested model.
    pub moderator: bool,
}

impl Default for FidelitySpec {
    fn default() -> Self {
        let b = FidelityBands::default();
        FidelitySpec {
            enabled: b.enabled,
            high: b.high,
            moderate: b.moderate,
            moderator: true,
        }
    }
}

impl FidelitySpec {
    /// The bands.
    pub fn bands(&self) -> FidelityBands {
        FidelityBands {
            enabled: self.enabled,
            high: self.high,
            moderate: self.moderate,
        }
    }
}

/// `[sites.routine]`: routine outcome monitoring without a control arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutineSpec {
    /// Score whose change is compared (default `honos`).
    pub outcome: String,
    /// Baseline wave (default the first).
    pub baseline_wave: Option<String>,
    /// Wave of the follow-up score (default the last).
    pub wave: Option<String>,
    /// Case-mix covariates beside the baseline score: `age`, `sex`, `diagnosis`.
    pub covariates: Vec<String>,
    /// Only participants of this arm (default: everyone).
    pub arm: Option<String>,
}

impl Default for RoutineSpec {
    fn default() -> Self {
        RoutineSpec {
            outcome: "honos".into(),
            baseline_wave: None,
            wave: None,
            covariates: vec!["age".into(), "diagnosis".into()],
            arm: None,
        }
    }
}

impl SitesSpec {
    /// Checks the values a TOML file can get wrong.
    pub fn validate(&self) -> Result<(), SitesError> {
        let bad = |m: String| Err(SitesError::Spec(m));
        if self.outcomes.is_empty() {
            return bad("outcomes is empty".into());
        }
        if !(self.conf_level > 0.0 && self.conf_level < 1.0) {
            return bad(format!(
                "conf_level must lie between 0 and 1, found {}",
                self.conf_level
            ));
        }
        for (k, f) in [
            ("formula", &self.formula),
            ("shrinkage_formula", &self.shrinkage_formula),
        ] {
            if !f.contains("{outcome}") {
                return bad(format!(
                    "{k} must contain the placeholder {{outcome}}, found \"{f}\""
                ));
            }
        }
        // `{imr_waves}` stands for the per-wave indicators (see `shrinkage_setup`).
        let shrinkage =
            Formula::template(&self.shrinkage_formula.replace("{imr_waves}", "imr"), "y");
        match shrinkage {
            Err(e) => return bad(format!("shrinkage_formula: {e}")),
            Ok(f) if !f.has_grouping("site_id") => {
                return bad("shrinkage_formula needs a random-effects term per site_id, e.g. (1 + arm | site_id)".into());
            }
            Ok(_) => {}
        }
        if self.tau2_threshold.is_nan() || self.tau2_threshold <= 0.0 {
            return bad("tau2_threshold must be positive".into());
        }
        self.fidelity.bands().check().map_err(SitesError::Spec)?;
        Ok(())
    }

    fn df_method(&self) -> DfMethod {
        self.df.into()
    }

    fn meta_options(&self) -> MetaOptions {
        MetaOptions {
            level: self.conf_level,
            threshold: self.tau2_threshold,
            max_iter: 10_000,
            ..MetaOptions::default()
        }
    }
}

/// Errors of the site analyses.
#[derive(Debug, Error)]
pub enum SitesError {
    #[error("sites spec: {0}")]
    Spec(String),
    #[error(
        "sites: wave `{wave}` is not a follow-up wave of the study (follow-up waves: {waves})"
    )]
    UnknownWave { wave: String, waves: String },
    #[error(
        "sites: the study has {0} arm(s); site comparisons need a control and an intervention arm"
    )]
    Arms(usize),
}

/// Everything the site analyses produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SitesOutput {
    /// One entry per outcome x follow-up wave (the `sites` rows of results.json).
    pub sites: Vec<SiteResult>,
    /// Model details per outcome x wave (methods per site, full meta-analysis, funnel).
    pub details: Vec<SiteDetails>,
    /// Fidelity as moderator, per outcome.
    pub fidelity: Vec<FidelityResult>,
    /// Routine outcome monitoring.
    pub routine: Option<RoutineResult>,
    pub warnings: Vec<String>,
}

/// One site's contrasts at every wave.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteFit {
    pub site_id: String,
    pub fit: contrast::ModelContrasts,
}

/// Per-site contrasts of one outcome: the outcome model fitted to each site's rows (in
/// parallel), sites with fewer than `min_participants` participants left out.
pub fn per_site_fits(
    data: &OutcomeData,
    formula: &str,
    df: DfMethod,
    level: f64,
    min_participants: usize,
) -> (Vec<SiteFit>, Vec<ExcludedSite>) {
    let groups = rows_by_level(&data.frame, "site_id");
    let design = ContrastDesign {
        arms: &data.arms,
        waves: &data.waves,
        intervention: &data.intervention,
        df,
        level,
    };
    let results: Vec<(String, Result<contrast::ModelContrasts, SiteModelError>)> = groups
        .par_iter()
        .map(|(site, rows)| {
            let n = contrast::count_levels(&data.frame, "participant_id", rows);
            if n < min_participants {
                return (
                    site.clone(),
                    Err(SiteModelError::TooFewParticipants {
                        n,
                        min: min_participants,
                    }),
                );
            }
            let r = subset_frame(&data.frame, rows)
                .map_err(SiteModelError::from)
                .and_then(|f| fit_contrasts(&f, formula, &design));
            (site.clone(), r)
        })
        .collect();
    let mut fits = Vec::new();
    let mut excluded = Vec::new();
    for (site, r) in results {
        match r {
            Ok(fit) => fits.push(SiteFit { site_id: site, fit }),
            Err(reason) => excluded.push(ExcludedSite {
                site_id: site,
                reason: reason.to_string(),
            }),
        }
    }
    (fits, excluded)
}

/// The site comparison of one outcome from its modelling data (columns as
/// [`crate::trial_data::outcome_data`] builds them: `y`, `participant_id`, `arm`, `wave`,
/// `site_id`, ...). `waves`: the follow-up waves to report. `stream` separates the rank
/// simulations of different outcomes.
pub fn analyse_outcome_data(
    outcome: &str,
    data: &OutcomeData,
    spec: &SitesSpec,
    waves: &[String],
    seed: u64,
    stream: u64,
) -> (Vec<SiteResult>, Vec<SiteDetails>, Vec<String>) {
    let formula = spec.formula.replace("{outcome}", "y");
    let (fits, excluded) = per_site_fits(
        data,
        &formula,
        spec.df_method(),
        spec.conf_level,
        spec.min_participants,
    );
    let mut warnings = per_site_warnings(outcome, &fits, &excluded);
    let (shrink, shrunken, shrink_model) = fit_shrinkage(outcome, data, spec, &mut warnings);
    let ranks = site_ranks(&shrunken, spec, seed, stream);
    let column_of = |wave: &str| -> usize {
        shrink
            .wave_columns
            .iter()
            .position(|w| w.as_deref() == Some(wave))
            .unwrap_or(0)
    };
    let mut results = Vec::new();
    let mut details = Vec::new();
    let mopt = spec.meta_options();
    for wave in waves {
        let (per_site, methods, wave_excluded) = wave_rows(&fits, &excluded, wave);
        let meta = meta_of_wave(&per_site, &mopt);
        warnings.extend(
            meta.warnings
                .iter()
                .map(|w| format!("{outcome} at {wave}: {w}")),
        );
        results.push(SiteResult {
            outcome: outcome.to_string(),
            wave: wave.clone(),
            per_site,
            meta_analysis: meta.summary,
            shrunken: shrunken.get(column_of(wave)).cloned().unwrap_or_default(),
            ranks: ranks.get(column_of(wave)).cloned().unwrap_or_default(),
            leave_one_out: meta.leave_one_out,
        });
        details.push(SiteDetails {
            outcome: outcome.to_string(),
            wave: wave.clone(),
            per_site_model: spec.formula.replace("{outcome}", outcome),
            per_site_methods: methods,
            excluded_sites: wave_excluded,
            meta: meta.details,
            funnel: meta.funnel,
            shrinkage_model: shrink_model.clone().map(|mut m| {
                m.formula = spec.shrinkage_formula.replace("{outcome}", outcome);
                m
            }),
            rank_draws: spec.rank_draws as u64,
        });
    }
    (results, details, warnings)
}

/// A warning per site left out of the per-site analyses and per note of a site's fit.
fn per_site_warnings(outcome: &str, fits: &[SiteFit], excluded: &[ExcludedSite]) -> Vec<String> {
    let mut warnings = Vec::new();
    for e in excluded {
        warnings.push(format!(
            "{outcome}: site {} left out of the per-site analyses: {}",
            e.site_id, e.reason
        ));
    }
    for f in fits {
        for n in &f.fit.notes {
            warnings.push(format!("{outcome}: site {}: {n}", f.site_id));
        }
    }
    warnings
}

/// The shrinkage model over all sites: its setup, the shrunken site effects per site-level
/// column and the model summary (`None` with a warning when it cannot be fitted).
fn fit_shrinkage(
    outcome: &str,
    data: &OutcomeData,
    spec: &SitesSpec,
    warnings: &mut Vec<String>,
) -> (
    ShrinkageSetup,
    Vec<Vec<ShrunkenRow>>,
    Option<ShrinkageModel>,
) {
    let shrink = shrinkage_setup(data, spec);
    let frame = shrink.frame.as_ref().unwrap_or(&data.frame);
    let (shrunken, model) =
        match shrinkage::shrunken_effects(frame, &shrink.formula, "site_id", &shrink.columns) {
            Ok((rows, model)) => {
                for w in &model.warnings {
                    warnings.push(format!("{outcome}: shrinkage model: {w}"));
                }
                (rows, Some(model))
            }
            Err(e) => {
                warnings.push(format!("{outcome}: shrinkage model not fitted: {e}"));
                (Vec::new(), None)
            }
        };
    (shrink, shrunken, model)
}

/// Simulated ranks of the shrunken effects per site-level column (one column: the same ranks
/// at every wave); `stream` separates outcomes, the column index the columns.
fn site_ranks(
    shrunken: &[Vec<ShrunkenRow>],
    spec: &SitesSpec,
    seed: u64,
    stream: u64,
) -> Vec<Vec<RankRow>> {
    shrunken
        .iter()
        .enumerate()
        .map(|(c, rows)| {
            if spec.rank_draws == 0 || rows.is_empty() {
                return Vec::new();
            }
            let ids: Vec<String> = rows.iter().map(|r| r.site_id.clone()).collect();
            let est: Vec<f64> = rows.iter().map(|r| r.arm_effect).collect();
            let sd: Vec<f64> = rows.iter().map(|r| r.conditional_sd).collect();
            shrinkage::simulated_ranks(
                &ids,
                &est,
                &sd,
                spec.rank_draws,
                spec.conf_level,
                seed,
                stream * 256 + c as u64,
            )
        })
        .collect()
}

/// The per-site contrasts at `wave`, the fitting method per site, and the sites left out
/// (those excluded overall and those without an estimable contrast at this wave).
fn wave_rows(
    fits: &[SiteFit],
    excluded: &[ExcludedSite],
    wave: &str,
) -> (Vec<PerSiteRow>, Vec<SiteMethodRow>, Vec<ExcludedSite>) {
    let mut per_site = Vec::new();
    let mut methods = Vec::new();
    let mut wave_excluded = excluded.to_vec();
    for f in fits {
        match f.fit.contrasts.iter().find(|c| c.wave == wave) {
            Some(c) if c.estimate.is_finite() && c.std_error > 0.0 => {
                per_site.push(PerSiteRow {
                    site_id: f.site_id.clone(),
                    n_participants: f.fit.n_participants as u64,
                    estimate: c.estimate,
                    std_error: c.std_error,
                    df: c.df,
                    conf_low: c.conf_low,
                    conf_high: c.conf_high,
                });
                methods.push(SiteMethodRow {
                    site_id: f.site_id.clone(),
                    method: f.fit.method,
                    singular: f.fit.singular,
                    n_observations: f.fit.n_observations as u64,
                    statistic: c.statistic,
                    p_value: c.p_value,
                });
            }
            _ => wave_excluded.push(ExcludedSite {
                site_id: f.site_id.clone(),
                reason: format!("no estimable contrast at {wave} (an arm not observed)"),
            }),
        }
    }
    (per_site, methods, wave_excluded)
}

/// The random-effects meta-analysis of the site contrasts of one wave (metafor's `rma`), its
/// funnel and leave-one-out analyses, and warnings (without the outcome and wave prefix).
#[derive(Default)]
struct WaveMeta {
    summary: Option<MetaAnalysis>,
    details: Option<MetaDetails>,
    funnel: Option<FunnelDetails>,
    leave_one_out: Vec<LeaveOneOutRow>,
    warnings: Vec<String>,
}

fn meta_of_wave(per_site: &[PerSiteRow], mopt: &MetaOptions) -> WaveMeta {
    let yi: Vec<f64> = per_site.iter().map(|p| p.estimate).collect();
    let sei: Vec<f64> = per_site.iter().map(|p| p.std_error).collect();
    let labels: Vec<String> = per_site.iter().map(|p| p.site_id.clone()).collect();
    let mut out = WaveMeta::default();
    let m = match meta::rma(&yi, &sei, &labels, mopt) {
        Ok(m) => m,
        Err(e) => {
            out.warnings
                .push(format!("no meta-analysis of the site contrasts: {e}"));
            return out;
        }
    };
    out.summary = Some(MetaAnalysis {
        k: m.k as u64,
        estimate: m.estimate,
        std_error: m.std_error,
        conf_low: m.conf_low,
        conf_high: m.conf_high,
        tau2: m.tau2,
        i2: m.i2,
        q: m.q,
        q_p_value: m.q_p_value,
        pi_low: m.pi_low,
        pi_high: m.pi_high,
    });
    out.details = Some(MetaDetails {
        statistic: m.statistic,
        df: m.df.unwrap_or(f64::INFINITY),
        p_value: m.p_value,
        se_tau2: m.se_tau2,
        h2: m.h2,
        s2w: m.s2w,
        iterations: m.iterations as u64,
        threshold: mopt.threshold,
        weights_percent: m.weights_percent.clone(),
    });
    if let Ok(fd) = meta::funnel_data(&yi, &sei, &labels, &m) {
        out.funnel = Some(FunnelDetails {
            center: fd.center,
            z_crit: fd.z_crit,
            se_max: fd.se_max,
        });
    }
    if yi.len() >= 3 {
        match meta::leave_one_out(&yi, &sei, &labels, mopt) {
            Ok(l) => {
                out.leave_one_out = l
                    .into_iter()
                    .map(|x| LeaveOneOutRow {
                        site_id: x.omitted,
                        estimate: x.fit.estimate,
                        conf_low: x.fit.conf_low,
                        conf_high: x.fit.conf_high,
                    })
                    .collect()
            }
            Err(e) => out.warnings.push(format!("leave-one-out: {e}")),
        }
    }
    out
}

/// The shrinkage model as fitted: its formula, the frame (when columns were added) and the
/// site-level columns reported, with the wave each column belongs to (`None`: every wave).
struct ShrinkageSetup {
    formula: String,
    frame: Option<crate::frame::Frame>,
    columns: Vec<String>,
    wave_columns: Vec<Option<String>>,
}

/// Column name of the intervention indicator at one wave (`imr_T2`); characters other than
/// ASCII letters, digits and `_` become `_`.
pub fn wave_column(wave: &str) -> String {
    let safe: String = wave
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("imr_{safe}")
}

fn shrinkage_setup(data: &OutcomeData, spec: &SitesSpec) -> ShrinkageSetup {
    let mut formula = spec.shrinkage_formula.replace("{outcome}", "y");
    match spec.shrinkage_term.as_str() {
        "imr_wave" => {
            let follow: Vec<&String> = data.waves.iter().skip(1).collect();
            let cols: Vec<String> = follow.iter().map(|w| wave_column(w)).collect();
            formula = formula.replace("{imr_waves}", &cols.join(" + "));
            let mut f = data.frame.clone();
            for (k, col) in cols.iter().enumerate() {
                if f.column(col).is_none() {
                    let v = indicator(data, |w| w == k + 1);
                    // the name is new (checked above), so this cannot fail
                    let _ = f.push_numeric(col, v);
                }
            }
            ShrinkageSetup {
                formula,
                frame: Some(f),
                wave_columns: follow.iter().map(|w| Some(w.to_string())).collect(),
                columns: cols,
            }
        }
        term => {
            let column = if term == "arm" {
                format!("arm{}", data.intervention)
            } else {
                term.to_string()
            };
            let frame = (formula.contains(FOLLOWUP_COLUMN)
                && data.frame.column(FOLLOWUP_COLUMN).is_none())
            .then(|| with_followup_indicator(data));
            ShrinkageSetup {
                formula,
                frame,
                columns: vec![column],
                wave_columns: vec![None],
            }
        }
    }
}

/// 1 for intervention rows whose wave code satisfies `at`, else 0 (missing arm or wave: NA).
fn indicator(data: &OutcomeData, at: impl Fn(usize) -> bool) -> Vec<Option<f64>> {
    use crate::frame::Column;
    match (data.frame.column("arm"), data.frame.column("wave")) {
        (
            Some(Column::Factor {
                codes: ac,
                levels: al,
            }),
            Some(Column::Factor { codes: wc, .. }),
        ) => {
            let int = al.iter().position(|a| a == &data.intervention);
            ac.iter()
                .zip(wc)
                .map(|(a, w)| match (a, w) {
                    (Some(a), Some(w)) => Some(if Some(*a as usize) == int && at(*w as usize) {
                        1.0
                    } else {
                        0.0
                    }),
                    _ => None,
                })
                .collect()
        }
        _ => vec![None; data.frame.n_rows()],
    }
}

/// Name of the intervention-at-follow-up indicator column (see [`SitesSpec::shrinkage_term`]).
pub const FOLLOWUP_COLUMN: &str = "imr_followup";

/// The modelling frame plus `imr_followup`: 1 for intervention participants at waves after
/// the first, else 0.
pub fn with_followup_indicator(data: &OutcomeData) -> crate::frame::Frame {
    let mut f = data.frame.clone();
    let v = indicator(data, |w| w > 0);
    // The column name is not in the frame (checked by the caller), so this cannot fail.
    let _ = f.push_numeric(FOLLOWUP_COLUMN, v);
    f
}

/// The follow-up waves to report: the spec's list (checked) or every wave after baseline.
pub fn follow_up_waves(trial: &Trial, spec: &SitesSpec) -> Result<Vec<String>, SitesError> {
    let all: Vec<String> = trial
        .study
        .waves
        .iter()
        .skip(1)
        .map(|w| w.label.clone())
        .collect();
    match &spec.waves {
        None => Ok(all),
        Some(ws) => {
            for w in ws {
                if !all.contains(w) {
                    return Err(SitesError::UnknownWave {
                        wave: w.clone(),
                        waves: all.join(", "),
                    });
                }
            }
            Ok(all.into_iter().filter(|w| ws.contains(w)).collect())
        }
    }
}

/// Site comparisons of a scored trial: per outcome and follow-up wave the per-site
/// contrasts, their meta-analysis, shrunken site effects and ranks; fidelity as moderator;
/// routine outcome monitoring when `spec.routine` is set. Outcomes the export lacks are
/// skipped with a warning. `seed` drives the rank simulation (same seed, same ranks).
pub fn analyse(
    trial: &Trial,
    scored: &Scored,
    spec: &SitesSpec,
    seed: u64,
    progress: &dyn ProgressSink,
) -> Result<SitesOutput, SitesError> {
    spec.validate()?;
    if trial.study.arms.len() < 2 {
        return Err(SitesError::Arms(trial.study.arms.len()));
    }
    let waves = follow_up_waves(trial, spec)?;
    let mut out = SitesOutput::default();
    let cluster = trial.study.design == Design::Cluster;
    let bar = progress.bar(spec.outcomes.len() as u64, "site comparisons");
    for (k, outcome) in spec.outcomes.iter().enumerate() {
        let Some(data) = outcome_data(trial, scored, outcome, &SetFilter::All) else {
            out.warnings.push(format!(
                "sites: outcome {outcome} skipped: no instrument or score of that name, or no observed scores"
            ));
            bar.inc(1);
            continue;
        };
        let template = match Formula::template(&spec.formula, "y") {
            Ok(f) => f,
            Err(e) => {
                out.warnings
                    .push(format!("sites: outcome {outcome} skipped: formula: {e}"));
                bar.inc(1);
                continue;
            }
        };
        let mut s = spec.clone();
        if cluster && !template.uses_column("group_id") {
            if let Ok(f) = template.add_random("1", "group_id") {
                s.formula = f.display(OUTCOME_PLACEHOLDER);
            }
        }
        let (r, d, w) = analyse_outcome_data(outcome, &data, &s, &waves, seed, k as u64);
        out.sites.extend(r);
        out.details.extend(d);
        out.warnings.extend(w);
        if spec.fidelity.enabled && trial.groups.iter().any(|g| g.fidelity.is_some()) {
            let formula = template;
            let f = fidelity::fidelity_analysis(
                trial,
                scored,
                outcome,
                &fidelity::FidelityOptions {
                    bands: spec.fidelity.bands(),
                    moderator: spec.fidelity.moderator,
                    formula: &formula,
                    df: spec.df_method(),
                    level: spec.conf_level,
                    waves: &waves,
                },
            );
            out.fidelity.push(f);
        }
        bar.inc(1);
    }
    bar.finish();
    if let Some(r) = &spec.routine {
        match routine_site_means(trial, scored, r, spec.conf_level) {
            Ok(res) => out.routine = Some(res),
            Err(e) => out
                .warnings
                .push(format!("routine outcome monitoring: {e}")),
        }
    }
    Ok(out)
}
