//! Outcome models of the trial: per outcome and analysis set the LMM
//! `score ~ arm * wave + (1 | participant_id)` (lmerTest), the arm x wave omnibus F test
//! (`anova(fit)`), marginal means per arm x wave (`emmeans(fit, ~ arm * wave)`), the
//! intervention minus control contrast at each follow-up wave and the difference in change
//! from baseline, and Cohen's d as contrast over the pooled baseline SD (Feingold 2009,
//! Psychol Methods 14).

use nalgebra::DMatrix;

use crate::emmeans::{reference_grid, GridFactor, GridPoint};
use crate::formula::Formula;
use crate::frame::Frame;
use crate::lmm::{fit_formula, DfMethod, LmmError, LmmFit, LmmOptions};
use crate::mmrm::{fit_model, MmrmError, MmrmFit, MmrmOptions, ResidualSpec, WeightsSpec};
use crate::results::{
    ContrastRow, EmmeanRow, FTest, FitStats, ModelComparison, ModelDiagnostics, OutcomeResult,
    QqPlot, RandomEffectRow, RandomEffectValue, TermRow,
};
use crate::stats::quantile::normal_qq;
use crate::trial_data::OutcomeData;

/// Why an outcome model gives no result (the pipeline reports it with the model's label; the
/// other models still run).
#[derive(Debug, thiserror::Error)]
pub enum OutcomeError {
    /// The mixed model (formula, model frame, optimizer) failed.
    #[error(transparent)]
    Lmm(#[from] LmmError),
    /// The MMRM (residual structure, weights, optimizer) failed.
    #[error(transparent)]
    Mmrm(#[from] MmrmError),
    /// A table of the fitted model could not be computed (`coefficient table`, `marginal
    /// means`, `contrasts`, `change contrasts`).
    #[error("{table}: {source}")]
    Table {
        table: &'static str,
        #[source]
        source: LmmError,
    },
    /// The random-slope model and its intercept-only model cannot be compared.
    #[error(transparent)]
    Comparison(#[from] crate::stats::lrt::LrtError),
    /// The GLMM (`[model] family`) failed.
    #[error(transparent)]
    Glmm(#[from] crate::glmm::GlmmError),
    /// The GLMM's model frame could not be built.
    #[error(transparent)]
    Formula(#[from] crate::formula::FormulaError),
}

impl OutcomeError {
    fn table(table: &'static str) -> impl FnOnce(LmmError) -> OutcomeError {
        move |source| OutcomeError::Table { table, source }
    }
}

/// What to fit and how.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    pub outcome: String,
    pub analysis_set: String,
    pub sensitivity: Option<String>,
    pub primary: bool,
    /// Formula on the frame's column names (the response is `y`); shown to users with the
    /// outcome's name as response ([`ModelRequest::display_formula`]).
    pub formula: Formula,
    pub reml: bool,
    pub df: DfMethod,
    pub level: f64,
    pub keep_diagnostics: bool,
    /// Residual covariance over waves within a participant (MMRM), e.g.
    /// `us(wave | participant_id)`; with it (or `weights`) the model is fitted by
    /// [`crate::mmrm::fit_model`] (nlme's gls/lme) instead of the lme4-type fitter.
    pub residual: Option<String>,
    /// `ident(column)`: a residual variance per level (nlme's varIdent).
    pub weights: Option<String>,
    /// Gaussian (LMM/MMRM) or a GLMM family ([`super::glmm_outcome`]).
    pub family: super::spec::ModelFamily,
    /// GLMM quadrature points (1 = Laplace).
    pub nagq: usize,
}

impl ModelRequest {
    /// The formula as shown to users: the response named as the outcome.
    pub fn display_formula(&self) -> String {
        self.formula.display(&self.outcome)
    }
}

/// What the outcome summary needs of a fitted linear model: [`LmmFit`] (lme4/lmerTest) and
/// [`MmrmFit`] (nlme gls/lme with residual structures) both provide it.
pub trait LinearModelFit {
    fn coef_names(&self) -> &[String];
    fn contrasts_at(
        &self,
        l: &DMatrix<f64>,
        df: DfMethod,
        level: f64,
    ) -> Result<Vec<crate::lmm::ContrastRow>, LmmError>;
    fn f_test_of(&self, l: &DMatrix<f64>, df: DfMethod) -> Result<crate::lmm::FTest, LmmError>;
    /// Frame rows used by the fit (None: every row of the outcome frame).
    fn used_rows(&self) -> Option<&[usize]>;
    fn n_observations(&self) -> usize;
    fn fit_stats(&self) -> FitStats;
    /// Warnings of the fit, singular fits and non-convergence included.
    fn fit_warnings(&self) -> Vec<String>;
    fn variance_rows(&self) -> Vec<RandomEffectRow>;
    fn diagnostics(&self) -> Option<ModelDiagnostics>;
}

impl LinearModelFit for LmmFit {
    fn coef_names(&self) -> &[String] {
        self.fixef_names()
    }
    fn contrasts_at(
        &self,
        l: &DMatrix<f64>,
        df: DfMethod,
        level: f64,
    ) -> Result<Vec<crate::lmm::ContrastRow>, LmmError> {
        self.contrast_level(l, df, level)
    }
    fn f_test_of(&self, l: &DMatrix<f64>, df: DfMethod) -> Result<crate::lmm::FTest, LmmError> {
        self.f_test(l, df)
    }
    fn used_rows(&self) -> Option<&[usize]> {
        Some(&self.frame.rows)
    }
    fn n_observations(&self) -> usize {
        self.n_obs()
    }
    fn fit_stats(&self) -> FitStats {
        FitStats {
            loglik: self.loglik(),
            aic: self.aic(),
            bic: self.bic(),
            reml_criterion: self.reml_criterion(),
            converged: self.converged,
            singular: self.singular,
        }
    }
    fn fit_warnings(&self) -> Vec<String> {
        let mut warnings = self.warnings.clone();
        if self.singular && !warnings.iter().any(|w| w.contains("singular")) {
            warnings.push(format!(
                "singular fit (boundary): {}",
                if self.singular_terms.is_empty() {
                    "a variance component is estimated as 0".to_string()
                } else {
                    self.singular_terms.join("; ")
                }
            ));
        }
        if !self.converged {
            warnings.push("the optimizer did not converge: estimates may be unreliable".into());
        }
        warnings
    }
    fn variance_rows(&self) -> Vec<RandomEffectRow> {
        random_effect_rows(self)
    }
    fn diagnostics(&self) -> Option<ModelDiagnostics> {
        Some(diagnostics_of(self))
    }
}

impl LinearModelFit for MmrmFit {
    fn coef_names(&self) -> &[String] {
        self.fixef_names()
    }
    fn contrasts_at(
        &self,
        l: &DMatrix<f64>,
        df: DfMethod,
        level: f64,
    ) -> Result<Vec<crate::lmm::ContrastRow>, LmmError> {
        self.contrast_level(l, df, level)
    }
    fn f_test_of(&self, l: &DMatrix<f64>, df: DfMethod) -> Result<crate::lmm::FTest, LmmError> {
        self.f_test(l, df)
    }
    fn used_rows(&self) -> Option<&[usize]> {
        None
    }
    fn n_observations(&self) -> usize {
        self.n_obs
    }
    fn fit_stats(&self) -> FitStats {
        FitStats {
            loglik: self.loglik,
            aic: self.aic,
            bic: self.bic,
            reml_criterion: self.reml.then_some(self.deviance),
            converged: self.converged,
            singular: self.singular,
        }
    }
    fn fit_warnings(&self) -> Vec<String> {
        let mut warnings = self.warnings.clone();
        if !self.converged {
            warnings.push("the optimizer did not converge: estimates may be unreliable".into());
        }
        warnings
    }
    /// Random-effect SDs (when the model has a participant-level term) and the residual SD
    /// per wave (structure) or per weights stratum, as nlme prints them.
    fn variance_rows(&self) -> Vec<RandomEffectRow> {
        let mut out = Vec::new();
        if let (Some(g), Some(group)) = (&self.re_covariance, &self.re_group) {
            for (i, n) in self.re_names.iter().enumerate() {
                out.push(RandomEffectRow {
                    group: group.clone(),
                    term: n.clone(),
                    sd: g[(i, i)].max(0.0).sqrt(),
                });
            }
        }
        if let Some(sigma) = self.sigmas.first() {
            for (i, w) in self.wave_levels.iter().enumerate() {
                if i < sigma.nrows() {
                    let by = if self.sigmas.len() > 1 {
                        format!(
                            " ({})",
                            self.group_levels.first().cloned().unwrap_or_default()
                        )
                    } else {
                        String::new()
                    };
                    out.push(RandomEffectRow {
                        group: "Residual".into(),
                        term: format!("{w}{by}"),
                        sd: sigma[(i, i)].max(0.0).sqrt(),
                    });
                }
            }
        } else {
            for (lvl, sd) in self.strata_levels.iter().zip(&self.residual_sd) {
                out.push(RandomEffectRow {
                    group: "Residual".into(),
                    term: if self.strata_levels.len() > 1 {
                        lvl.clone()
                    } else {
                        String::new()
                    },
                    sd: *sd,
                });
            }
        }
        out
    }
    fn diagnostics(&self) -> Option<ModelDiagnostics> {
        None
    }
}

/// Fits one model and computes every reported quantity; the p-value adjustment across
/// outcomes is applied afterwards.
pub fn analyse_outcome(
    data: &OutcomeData,
    req: &ModelRequest,
) -> Result<(OutcomeResult, FittedModel), OutcomeError> {
    let fit = fit_request(data, req)?;
    let res = match &fit {
        FittedModel::Lmm(f) => summarise_fit(data, req, f.as_ref())?,
        FittedModel::Mmrm(f) => summarise_fit(data, req, f.as_ref())?,
        FittedModel::Glmm(f) => super::glmm_outcome::summarise_glmm(data, req, f.as_ref())?,
    };
    Ok((res, fit))
}

/// A fitted outcome model of any kind.
pub enum FittedModel {
    Lmm(Box<LmmFit>),
    Mmrm(Box<MmrmFit>),
    Glmm(Box<super::glmm_outcome::GlmmOutcomeFit>),
}

fn fit_request(data: &OutcomeData, req: &ModelRequest) -> Result<FittedModel, OutcomeError> {
    if req.family != super::spec::ModelFamily::Gaussian {
        return super::glmm_outcome::fit_glmm_request(data, req)
            .map(|f| FittedModel::Glmm(Box::new(f)));
    }
    if req.residual.is_none() && req.weights.is_none() {
        let opts = LmmOptions {
            reml: req.reml,
            ..LmmOptions::default()
        };
        return fit_formula(&req.formula.to_string(), &data.frame, &opts)
            .map(|f| FittedModel::Lmm(Box::new(f)))
            .map_err(OutcomeError::from);
    }
    let residual = req
        .residual
        .as_deref()
        .map(ResidualSpec::parse)
        .transpose()?;
    let weights = req.weights.as_deref().map(WeightsSpec::parse).transpose()?;
    let opts = MmrmOptions {
        reml: req.reml,
        ..MmrmOptions::default()
    };
    fit_model(
        &req.formula.to_string(),
        residual.as_ref(),
        weights.as_ref(),
        &data.frame,
        &opts,
    )
    .map(|f| FittedModel::Mmrm(Box::new(f)))
    .map_err(OutcomeError::from)
}

/// Builds the result record of a fitted model.
pub fn summarise_fit<F: LinearModelFit>(
    data: &OutcomeData,
    req: &ModelRequest,
    fit: &F,
) -> Result<OutcomeResult, OutcomeError> {
    let mut warnings: Vec<String> = fit.fit_warnings();
    let method_name = match req.df {
        DfMethod::Satterthwaite => "satterthwaite",
        DfMethod::KenwardRoger => "kenward-roger",
        DfMethod::Asymptotic => "none",
    };
    let names = fit.coef_names().to_vec();
    let p = names.len();
    let coef = fit
        .contrasts_at(&DMatrix::identity(p, p), req.df, req.level)
        .map_err(OutcomeError::table("coefficient table"))?;
    let fixed_effects: Vec<TermRow> = names
        .iter()
        .zip(&coef)
        .map(|(n, r)| TermRow {
            term: n.clone(),
            estimate: r.estimate,
            std_error: r.std_error,
            statistic: r.statistic,
            df: r.df,
            p_value: r.p_value,
            conf_low: r.conf_low,
            conf_high: r.conf_high,
        })
        .collect();

    // Omnibus arm x wave test: the interaction coefficients jointly (the type III test of
    // the highest-order term, as lmerTest's anova).
    let inter: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.starts_with("arm") && n.contains(":wave"))
        .map(|(i, _)| i)
        .collect();
    let interaction_test = if inter.is_empty() {
        None
    } else {
        let mut l = DMatrix::zeros(inter.len(), names.len());
        for (r, &c) in inter.iter().enumerate() {
            l[(r, c)] = 1.0;
        }
        match fit.f_test_of(&l, req.df) {
            Ok(t) => Some(FTest {
                term: Some("arm:wave".into()),
                f: t.f_value,
                df_num: t.num_df,
                df_den: t.den_df,
                p_value: t.p_value,
            }),
            Err(e) => {
                warnings.push(format!("arm x wave F test failed: {e}"));
                None
            }
        }
    };

    // Marginal means on the arm x wave grid.
    let covariates = crate::trial_data::grid_covariates(&names, &data.frame, fit.used_rows());
    let mut factors = vec![
        GridFactor {
            name: "arm".into(),
            prefix: "arm".into(),
            levels: data.arms.clone(),
        },
        GridFactor {
            name: "wave".into(),
            prefix: "wave".into(),
            levels: data.waves.clone(),
        },
    ];
    // Factor covariates are averaged over their levels with equal weights (emmeans' default).
    for c in &data.covariates {
        if let Some(crate::frame::Column::Factor { levels, .. }) = data.frame.column(c) {
            factors.push(GridFactor {
                name: c.clone(),
                prefix: c.clone(),
                levels: levels.clone(),
            });
        }
    }
    let mut emmeans = Vec::new();
    let mut contrasts = Vec::new();
    let mut change_contrasts = Vec::new();
    match reference_grid(&names, &factors, &covariates, &["arm", "wave"]) {
        Err(e) => warnings.push(format!("marginal means not computed: {e}")),
        Ok(grid) => {
            let l = rows_matrix(grid.iter().map(|g| g.l.clone()).collect(), names.len());
            let em = fit
                .contrasts_at(&l, req.df, req.level)
                .map_err(OutcomeError::table("marginal means"))?;
            for (g, r) in grid.iter().zip(&em) {
                emmeans.push(EmmeanRow {
                    arm: g.levels[0].1.clone(),
                    wave: g.levels[1].1.clone(),
                    estimate: r.estimate,
                    std_error: r.std_error,
                    df: r.df,
                    conf_low: r.conf_low,
                    conf_high: r.conf_high,
                });
            }
            let (ctr, chg) = arm_contrasts(fit, &grid, data, req)?;
            contrasts = ctr;
            change_contrasts = chg;
        }
    }

    let random_effects = fit.variance_rows();
    let n_participants = count_levels(&data.frame, "participant_id", fit.used_rows());
    let diagnostics = if req.keep_diagnostics {
        fit.diagnostics()
    } else {
        None
    };
    Ok(OutcomeResult {
        outcome: req.outcome.clone(),
        analysis_set: req.analysis_set.clone(),
        sensitivity: req.sensitivity.clone(),
        primary: req.primary,
        model: req.display_formula(),
        reml: req.reml,
        df_method: method_name.into(),
        n_participants: n_participants as u64,
        n_observations: fit.n_observations() as u64,
        fixed_effects,
        random_effects,
        fit: Some(fit.fit_stats()),
        interaction_test,
        emmeans,
        contrasts,
        change_contrasts,
        comparison: None,
        warnings,
        diagnostics,
        trajectories: None,
        family: None,
        theta: None,
    })
}

fn rows_matrix(rows: Vec<Vec<f64>>, p: usize) -> DMatrix<f64> {
    DMatrix::from_fn(rows.len(), p, |i, j| rows[i][j])
}

/// Intervention minus control at each follow-up wave, and the difference in change from
/// baseline, with Cohen's d over the pooled baseline SD (the SD is treated as known, so the
/// interval of d is the contrast's interval divided by it).
fn arm_contrasts<F: LinearModelFit>(
    fit: &F,
    grid: &[GridPoint],
    data: &OutcomeData,
    req: &ModelRequest,
) -> Result<(Vec<ContrastRow>, Vec<ContrastRow>), OutcomeError> {
    let treated = &data.intervention;
    let Some(control) = data.arms.first().filter(|c| *c != treated) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let label = format!("{treated} - {control}");
    let cell = |arm: &str, wave: &str| {
        grid.iter()
            .find(|g| g.levels[0].1 == arm && g.levels[1].1 == wave)
            .map(|g| g.l.clone())
    };
    let p = fit.coef_names().len();
    let Some(base) = data.waves.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let (Some(b1), Some(b0)) = (cell(treated, base), cell(control, base)) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut at_wave = Vec::new();
    let mut change = Vec::new();
    let mut waves_used = Vec::new();
    for w in data.waves.iter().skip(1) {
        let (Some(t), Some(c)) = (cell(treated, w), cell(control, w)) else {
            continue;
        };
        let diff: Vec<f64> = t.iter().zip(&c).map(|(a, b)| a - b).collect();
        let dchg: Vec<f64> = diff
            .iter()
            .zip(b1.iter().zip(&b0))
            .map(|(d, (x, y))| d - (x - y))
            .collect();
        at_wave.push(diff);
        change.push(dchg);
        waves_used.push(w.clone());
    }
    if at_wave.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let r1 = fit
        .contrasts_at(&rows_matrix(at_wave, p), req.df, req.level)
        .map_err(OutcomeError::table("contrasts"))?;
    let r2 = fit
        .contrasts_at(&rows_matrix(change, p), req.df, req.level)
        .map_err(OutcomeError::table("change contrasts"))?;
    let mk = |w: &String, r: &crate::lmm::ContrastRow, contrast: String| {
        let sd = data.baseline_sd.filter(|s| *s > 0.0);
        ContrastRow {
            wave: w.clone(),
            contrast,
            estimate: r.estimate,
            std_error: r.std_error,
            df: r.df,
            conf_low: r.conf_low,
            conf_high: r.conf_high,
            statistic: r.statistic,
            p_value: r.p_value,
            p_adjusted: None,
            cohens_d: sd.map(|s| r.estimate / s),
            d_conf_low: sd.map(|s| r.conf_low / s),
            d_conf_high: sd.map(|s| r.conf_high / s),
        }
    };
    let contrasts = waves_used
        .iter()
        .zip(&r1)
        .map(|(w, r)| mk(w, r, label.clone()))
        .collect();
    let changes = waves_used
        .iter()
        .zip(&r2)
        .map(|(w, r)| mk(w, r, format!("({label}) change from {base}")))
        .collect();
    Ok((contrasts, changes))
}

fn random_effect_rows(fit: &LmmFit) -> Vec<RandomEffectRow> {
    let mut out = Vec::new();
    for t in fit.varcorr() {
        for (i, n) in t.names.iter().enumerate() {
            out.push(RandomEffectRow {
                group: t.group.clone(),
                term: n.clone(),
                sd: t.sd(i),
            });
        }
    }
    out.push(RandomEffectRow {
        group: "Residual".into(),
        term: String::new(),
        sd: fit.sigma,
    });
    out
}

fn diagnostics_of(fit: &LmmFit) -> ModelDiagnostics {
    let mut random_intercepts = Vec::new();
    if let Ok(terms) = fit.ranef() {
        for t in terms {
            let q = t.names.len();
            let Some(c) = t.names.iter().position(|n| n == "(Intercept)") else {
                continue;
            };
            for (lvl, name) in t.levels.iter().enumerate() {
                random_intercepts.push(RandomEffectValue {
                    group: t.group.clone(),
                    level: name.clone(),
                    estimate: t.values.get(lvl * q + c).copied().unwrap_or(f64::NAN),
                    conditional_sd: t.cond_sd(lvl, c),
                });
            }
        }
    }
    let qq = |v: &[f64]| {
        let (theoretical, sample, line) = normal_qq(v);
        QqPlot {
            theoretical,
            sample,
            line,
        }
    };
    let qq_group = random_intercepts
        .iter()
        .find(|r| r.group == "participant_id")
        .or_else(|| random_intercepts.first())
        .map(|r| r.group.clone());
    let ri: Vec<f64> = random_intercepts
        .iter()
        .filter(|r| Some(&r.group) == qq_group.as_ref())
        .map(|r| r.estimate)
        .collect();
    ModelDiagnostics {
        fitted: fit.fitted.clone(),
        residuals: fit.residuals.clone(),
        qq_residuals: qq(&fit.residuals),
        qq_random_intercepts: qq(&ri),
        qq_group,
        random_intercepts,
    }
}

/// Mean of a numeric column over the model's rows (numeric covariates at their means, as
/// emmeans' reference grid).
fn count_levels(frame: &Frame, name: &str, rows: Option<&[usize]>) -> usize {
    match frame.column(name) {
        Some(crate::frame::Column::Factor { codes, .. }) => {
            let mut seen: Vec<u32> = match rows {
                Some(rows) => rows
                    .iter()
                    .filter_map(|&r| codes.get(r).copied().flatten())
                    .collect(),
                None => codes.iter().copied().flatten().collect(),
            };
            seen.sort_unstable();
            seen.dedup();
            seen.len()
        }
        _ => 0,
    }
}

/// Compares a model with its random-slope extension by AIC (both REML with the same fixed
/// effects) and a likelihood-ratio test on the REML criteria (the shared
/// [`crate::stats::lrt`] test, reported as is; the boundary makes it conservative). An error
/// when the two fits used different rows.
pub fn compare_random_slope(
    reduced: &LmmFit,
    full: &LmmFit,
) -> Result<ModelComparison, crate::stats::lrt::LrtError> {
    use crate::stats::lrt;
    lrt::check_same_rows(&reduced.frame.rows, &full.frame.rows)?;
    let t = lrt::lr_test(
        reduced.objective,
        reduced.n_params(),
        full.objective,
        full.n_params(),
    )?;
    let chosen = if full.aic() < reduced.aic() {
        "full"
    } else {
        "reduced"
    };
    Ok(ModelComparison {
        description: "random slope of months per participant vs random intercept only (REML, AIC)"
            .into(),
        aic_reduced: reduced.aic(),
        aic_full: full.aic(),
        chisq: t.chisq,
        df: t.df,
        p_value: t.p_value,
        chosen: chosen.into(),
    })
}
