//! The planned analysis of one simulated trial: the model frame, the fit (lme4/lmerTest LMM,
//! nlme-type MMRM, or OLS as `lm` when the formula has no random term) and the test of the
//! planned contrast with Satterthwaite or Kenward-Roger df.
//!
//! The contrast is built as the trial analysis builds it: `emmeans(fit, ~ arm * wave)` cells
//! ([`crate::emmeans::reference_grid`]), intervention minus control at the test wave (or the
//! mean over follow-up waves), minus the same at baseline for `contrast = "change"`; its SE,
//! df and p-value come from the fit's general contrast function (`contrast_level`), as
//! lmerTest's `contest` and emmeans do.
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use super::design::{is_followup, SimTrial};
use super::plan::{BaselineUse, ContrastKind, DesignKind, ModelKind, Plan, Sided, TestTarget};
use crate::emmeans::{reference_grid, GridFactor};
use crate::formula::{build_model_frame, Formula, FormulaError, ModelFormula};
use crate::frame::Frame;
use crate::lmm::{fit_formula, ContrastRow, DfMethod, LmmOptions};
use crate::mmrm::{fit_model, MmrmOptions, ResidualSpec};

/// How one fit ended. Every simulated trial has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FitStatus {
    /// Converged, no variance at the boundary.
    Ok,
    /// Converged at the boundary (a variance estimated as 0: lme4's `isSingular`).
    Singular,
    /// The optimizer's convergence check failed (the estimate is still used).
    NonConverged,
    /// No estimate (the error is recorded).
    Failed,
}

impl FitStatus {
    /// Not converged, else singular, else ok.
    fn of(converged: bool, singular: bool) -> FitStatus {
        if !converged {
            FitStatus::NonConverged
        } else if singular {
            FitStatus::Singular
        } else {
            FitStatus::Ok
        }
    }
}

/// The test of the planned contrast in one simulated data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub status: FitStatus,
    pub estimate: Option<f64>,
    pub std_error: Option<f64>,
    pub df: Option<f64>,
    pub p_value: Option<f64>,
    pub conf_low: Option<f64>,
    pub conf_high: Option<f64>,
    /// The null hypothesis rejected at `analysis.alpha` (false when the fit failed).
    pub reject: bool,
    /// Why the fit failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TestResult {
    fn failed(msg: String) -> TestResult {
        TestResult {
            status: FitStatus::Failed,
            estimate: None,
            std_error: None,
            df: None,
            p_value: None,
            conf_low: None,
            conf_high: None,
            reject: false,
            error: Some(msg),
        }
    }
}

/// The fitter chosen for the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Fitter {
    Lmm,
    Mmrm(ResidualSpec),
    /// OLS (`lm`): the formula has no random-effects term.
    Ols,
}

/// The analysis of a plan, prepared once and applied to every simulated trial.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub formula: Formula,
    pub fitter: Fitter,
    pub df: DfMethod,
    pub reml: bool,
    pub alpha: f64,
    pub sided: Sided,
    pub target: TestTarget,
    pub contrast: ContrastKind,
    pub baseline: BaselineUse,
    /// +1 or -1: the direction of a one-sided test (the sign of the planned contrast).
    pub direction: f64,
    pub arms: Vec<String>,
    pub waves: Vec<String>,
    /// Waves in the model frame (all, or the follow-up waves with a baseline covariate).
    pub model_waves: Vec<usize>,
    /// Months of each wave (the `months` column).
    pub months: Vec<f64>,
}

/// The default formula of a plan: the trial analysis' `y ~ arm * wave + (1 | participant_id)`
/// (baseline as a covariate: `y ~ baseline + arm * wave` on the follow-up waves; one wave:
/// `y ~ arm`), plus `(0 + imr_fu | group_id)` for a partially nested design (the group effect
/// of the treated arm at follow-up; controls are singleton groups, Bauer, Sterba & Hallfors
/// 2008), `(1 | group_id)` for a cluster design and `(1 | site_id)` with more than one site.
/// An MMRM gets the fixed part only (its residual structure is over waves).
pub fn default_formula(plan: &Plan) -> Result<Formula, FormulaError> {
    let n_waves = plan.waves.labels.len();
    let covariate = plan.analysis.baseline == BaselineUse::Covariate;
    let follow_ups = if covariate { n_waves - 1 } else { n_waves };
    let fixed = match (covariate, follow_ups) {
        (_, 0) | (false, 1) => "y ~ arm",
        (true, 1) => "y ~ baseline + arm",
        (true, _) => "y ~ baseline + arm * wave",
        (false, _) => "y ~ arm * wave",
    };
    let mut f = Formula::parse(fixed)?;
    if plan.analysis.model == ModelKind::Mmrm {
        return Ok(f);
    }
    if follow_ups > 1 {
        f = f.add_random("1", "participant_id")?;
    }
    match plan.design.kind {
        DesignKind::Individual => {}
        DesignKind::PartiallyNested => f = f.add_random("0 + imr_fu", "group_id")?,
        DesignKind::Cluster => f = f.add_random("1", "group_id")?,
    }
    if plan.design.sites > 1 {
        f = f.add_random("1", "site_id")?;
    }
    Ok(f)
}

/// Whether a formula has random-effects terms.
fn has_random(f: &Formula) -> Result<bool, FormulaError> {
    Ok(!ModelFormula::parse(&f.to_string())?.random.is_empty())
}

impl Analysis {
    /// Prepares the analysis of a validated plan.
    pub fn of_plan(plan: &Plan) -> Result<Analysis, String> {
        let formula = match &plan.analysis.formula {
            Some(text) => {
                Formula::parse(text).map_err(|e| format!("analysis.formula = {text:?}: {e}"))?
            }
            None => default_formula(plan).map_err(|e| format!("default formula: {e}"))?,
        };
        let fitter = match plan.analysis.model {
            ModelKind::Mmrm => {
                let text = plan
                    .analysis
                    .residual
                    .clone()
                    .unwrap_or_else(|| "us(wave | participant_id)".into());
                Fitter::Mmrm(
                    ResidualSpec::parse(&text)
                        .map_err(|e| format!("analysis.residual = {text:?}: {e}"))?,
                )
            }
            ModelKind::Lmm => {
                if has_random(&formula).map_err(|e| format!("analysis.formula: {e}"))? {
                    Fitter::Lmm
                } else {
                    Fitter::Ols
                }
            }
        };
        let n_waves = plan.waves.labels.len();
        let model_waves = match plan.analysis.baseline {
            BaselineUse::Covariate => (1..n_waves).collect(),
            BaselineUse::Outcome => (0..n_waves).collect(),
        };
        let mut a = Analysis {
            formula,
            fitter,
            df: plan.analysis.df.into(),
            reml: plan.analysis.reml,
            alpha: plan.analysis.alpha,
            sided: plan.analysis.sided,
            target: plan.test_target(),
            contrast: plan.analysis.contrast,
            baseline: plan.analysis.baseline,
            arms: plan.arms.labels.clone(),
            waves: plan.waves.labels.clone(),
            model_waves,
            months: plan.months(),
            direction: 1.0,
        };
        if a.true_contrast(&plan.effect_by_wave()) < 0.0 {
            a.direction = -1.0;
        }
        Ok(a)
    }

    /// A label of the fitted model (`lmer`, `lm`, `gls us(wave | participant_id)`).
    pub fn model_label(&self) -> String {
        match &self.fitter {
            Fitter::Lmm => format!("lmer({})", self.formula),
            Fitter::Ols => format!("lm({})", self.formula),
            Fitter::Mmrm(r) => format!("gls({}, {})", self.formula, r.text),
        }
    }

    /// The model frame of one simulated data set (`y` = `scores`, participant x wave).
    pub fn frame(&self, trial: &SimTrial, scores: &[f64]) -> Result<Frame, String> {
        let t_n = trial.n_waves;
        let mut y = Vec::new();
        let mut pid = Vec::new();
        let mut arm = Vec::new();
        let mut wave = Vec::new();
        let mut site = Vec::new();
        let mut group = Vec::new();
        let mut imr = Vec::new();
        let mut imr_fu = Vec::new();
        let mut months = Vec::new();
        let mut baseline = Vec::new();
        for (i, p) in trial.persons.iter().enumerate() {
            let b = scores[i * t_n];
            for &t in &self.model_waves {
                let v = scores[i * t_n + t];
                if v.is_nan() {
                    continue;
                }
                y.push(Some(v));
                pid.push(Some(format!("p{i}")));
                arm.push(Some(self.arms[p.arm].clone()));
                wave.push(Some(self.waves[t].clone()));
                site.push(Some(format!("s{}", p.site)));
                // Participants outside groups share one level `none`: with
                // `(0 + imr_fu | group_id)` their random-effect column is 0, so this gives the
                // same likelihood as the trial analysis' singleton groups (an effect without
                // data adds nothing to the REML criterion) with one level instead of one per
                // control participant, which keeps the fit on the fast dense path.
                group.push(Some(match p.group {
                    Some(g) => format!("g{g}"),
                    None => "none".to_string(),
                }));
                let treated = if p.arm == 1 { 1.0 } else { 0.0 };
                imr.push(Some(treated));
                imr_fu.push(Some(if is_followup(t, t_n) { treated } else { 0.0 }));
                months.push(Some(self.months[t]));
                baseline.push(Some(b));
            }
        }
        let levels: Vec<String> = self
            .model_waves
            .iter()
            .map(|&t| self.waves[t].clone())
            .collect();
        let mut f = Frame::new();
        let e = |e: crate::frame::FrameError| e.to_string();
        f.push_numeric("y", y).map_err(e)?;
        f.push_factor("participant_id", pid, None).map_err(e)?;
        f.push_factor("arm", arm, Some(self.arms.clone()))
            .map_err(e)?;
        f.push_factor("wave", wave, Some(levels)).map_err(e)?;
        f.push_factor("site_id", site, None).map_err(e)?;
        f.push_factor("group_id", group, None).map_err(e)?;
        f.push_numeric("imr", imr).map_err(e)?;
        f.push_numeric("imr_fu", imr_fu).map_err(e)?;
        f.push_numeric("months", months).map_err(e)?;
        f.push_numeric("baseline", baseline).map_err(e)?;
        Ok(f)
    }

    /// The contrast row `L` on the fit's coefficient names.
    pub fn contrast_row(&self, names: &[String], frame: &Frame) -> Result<Vec<f64>, String> {
        let wave_levels: Vec<String> = self
            .model_waves
            .iter()
            .map(|&t| self.waves[t].clone())
            .collect();
        let covariates = crate::trial_data::grid_covariates(names, frame, None);
        let factors = vec![
            GridFactor {
                name: "arm".into(),
                prefix: "arm".into(),
                levels: self.arms.clone(),
            },
            GridFactor {
                name: "wave".into(),
                prefix: "wave".into(),
                levels: wave_levels.clone(),
            },
        ];
        let grid = reference_grid(names, &factors, &covariates, &["arm", "wave"])
            .map_err(|e| e.to_string())?;
        let cell = |arm: usize, wave: usize| -> Result<Vec<f64>, String> {
            let (a, w) = (&self.arms[arm], &self.waves[wave]);
            grid.iter()
                .find(|g| &g.levels[0].1 == a && &g.levels[1].1 == w)
                .map(|g| g.l.clone())
                .ok_or_else(|| format!("no marginal mean for {a} at {w}"))
        };
        let diff = |wave: usize| -> Result<Vec<f64>, String> {
            let t = cell(1, wave)?;
            let c = cell(0, wave)?;
            Ok(t.iter().zip(&c).map(|(a, b)| a - b).collect())
        };
        let t_n = self.waves.len();
        let tested: Vec<usize> = match self.target {
            TestTarget::Wave(t) => vec![t],
            TestTarget::Average => (0..t_n).filter(|&t| is_followup(t, t_n)).collect(),
        };
        let mut l = vec![0.0; names.len()];
        for &t in &tested {
            for (x, d) in l.iter_mut().zip(diff(t)?) {
                *x += d / tested.len() as f64;
            }
        }
        if self.contrast == ContrastKind::Change {
            for (x, d) in l.iter_mut().zip(diff(0)?) {
                *x -= d;
            }
        }
        Ok(l)
    }

    /// The true value of the tested contrast (score level) from the effect per wave.
    pub fn true_contrast(&self, effect_by_wave: &[f64]) -> f64 {
        let t_n = self.waves.len();
        let tested: Vec<usize> = match self.target {
            TestTarget::Wave(t) => vec![t],
            TestTarget::Average => (0..t_n).filter(|&t| is_followup(t, t_n)).collect(),
        };
        let mean = tested.iter().map(|&t| effect_by_wave[t]).sum::<f64>() / tested.len() as f64;
        match self.contrast {
            ContrastKind::Change => mean - effect_by_wave[0],
            ContrastKind::Difference => mean,
        }
    }

    /// Fits the planned model to one data set and tests the contrast.
    pub fn test(&self, trial: &SimTrial, scores: &[f64]) -> TestResult {
        match self.try_test(trial, scores) {
            Ok(r) => r,
            Err(msg) => TestResult::failed(msg),
        }
    }

    fn level(&self) -> f64 {
        match self.sided {
            Sided::Two => 1.0 - self.alpha,
            Sided::One => 1.0 - 2.0 * self.alpha,
        }
    }

    fn try_test(&self, trial: &SimTrial, scores: &[f64]) -> Result<TestResult, String> {
        let frame = self.frame(trial, scores)?;
        let text = self.formula.to_string();
        let level = self.level();
        let (row, status) = match &self.fitter {
            Fitter::Lmm => {
                let opts = LmmOptions {
                    reml: self.reml,
                    ..LmmOptions::default()
                };
                let fit = fit_formula(&text, &frame, &opts).map_err(|e| e.to_string())?;
                let l = self.contrast_row(fit.fixef_names(), &frame)?;
                let lm = DMatrix::from_row_slice(1, l.len(), &l);
                let r = fit
                    .contrast_level(&lm, self.df, level)
                    .map_err(|e| e.to_string())?;
                (first(r)?, FitStatus::of(fit.converged, fit.singular))
            }
            Fitter::Mmrm(res) => {
                let opts = MmrmOptions {
                    reml: self.reml,
                    ..MmrmOptions::default()
                };
                let fit =
                    fit_model(&text, Some(res), None, &frame, &opts).map_err(|e| e.to_string())?;
                let l = self.contrast_row(fit.fixef_names(), &frame)?;
                let lm = DMatrix::from_row_slice(1, l.len(), &l);
                let r = fit
                    .contrast_level(&lm, self.df, level)
                    .map_err(|e| e.to_string())?;
                (first(r)?, FitStatus::of(fit.converged, fit.singular))
            }
            Fitter::Ols => (self.ols(&frame, level)?, FitStatus::Ok),
        };
        let p = match self.sided {
            Sided::Two => row.p_value,
            Sided::One => {
                let t = self.direction * row.statistic;
                if row.df.is_finite() {
                    crate::stats::distributions::pt_upper(t, row.df)
                } else {
                    crate::stats::distributions::pnorm_upper(t)
                }
            }
        };
        let finite = row.estimate.is_finite() && row.std_error.is_finite() && p.is_finite();
        if !finite {
            return Err(format!(
                "the contrast is not finite (estimate {}, SE {}, df {})",
                row.estimate, row.std_error, row.df
            ));
        }
        Ok(TestResult {
            status,
            estimate: Some(row.estimate),
            std_error: Some(row.std_error),
            df: Some(row.df),
            p_value: Some(p),
            conf_low: Some(row.conf_low),
            conf_high: Some(row.conf_high),
            reject: p < self.alpha,
            error: None,
        })
    }

    /// OLS (`lm`) with the t test of the contrast on `n - p` df.
    fn ols(&self, frame: &Frame, level: f64) -> Result<ContrastRow, String> {
        // The model-frame builder wants a random term: a helper `(1 | arm)` (two levels,
        // never missing) whose only effect is on the complete cases, which it leaves as they
        // are; the fit is OLS on the fixed-effects matrix.
        let aug = self
            .formula
            .add_random("1", "arm")
            .map_err(|e| e.to_string())?;
        let mf = build_model_frame(
            &ModelFormula::parse(&aug.to_string()).map_err(|e| e.to_string())?,
            frame,
        )
        .map_err(|e| e.to_string())?;
        let fit = crate::glm::lm::ols_xy(&mf.x, &mf.y, &mf.x_names).map_err(|e| e.to_string())?;
        let l = self.contrast_row(&mf.x_names, frame)?;
        let est: f64 = l.iter().zip(&fit.beta).map(|(a, b)| a * b).sum();
        let mut var = 0.0;
        for i in 0..l.len() {
            for j in 0..l.len() {
                var += l[i] * fit.vcov[(i, j)] * l[j];
            }
        }
        let se = var.max(0.0).sqrt();
        let df = fit.df_residual as f64;
        let t = est / se;
        let (p, q) = crate::lmm::inference::t_p_and_quantile(t, df, level);
        Ok(ContrastRow {
            estimate: est,
            std_error: se,
            df,
            statistic: t,
            p_value: p,
            conf_low: est - q * se,
            conf_high: est + q * se,
        })
    }
}

fn first(rows: Vec<ContrastRow>) -> Result<ContrastRow, String> {
    rows.into_iter()
        .next()
        .ok_or_else(|| "the contrast gave no row".to_string())
}
