//! Mixed models for repeated measures (MMRM) and, in the same per-participant block machinery,
//! linear mixed models with one subject-level random-effects term and residual variances by
//! group. Reproduces nlme's `gls(..., correlation = corSymm/corCompSymm/corAR1/
//! corARMA(form = ~ widx | id), weights = varIdent(form = ~ 1 | wave))` and
//! `lme(..., random = ~ 1 + x | id, weights = varIdent(form = ~ 1 | s))` (Pinheiro & Bates
//! 2000), SAS PROC MIXED `REPEATED wave / SUBJECT=id TYPE=UN|CS|CSH|AR(1)|ARH(1)|TOEP`, with
//! lmerTest-style Satterthwaite and pbkrtest-style Kenward-Roger df, and nlme's `anova` model
//! comparison.
//!
//! * [`structures`]: the covariance structures and their parametrizations.
//! * [`fit`]: pattern cross-products, the REML/ML criterion, BOBYQA + Newton.
//! * [`inference`]: analytic derivatives, Satterthwaite, Kenward-Roger.
//! * [`compare`]: AIC/BIC and likelihood-ratio tests between two fits.
//!
//! Syntax (`herstel fit --residual`): `us(wave | participant_id)`, also `cs`, `csh`, `ar1`,
//! `ar1h`, `toep`; `us(wave | participant_id, by = arm)` for one covariance per group;
//! `--weights "ident(arm)"` for one residual SD per level of `arm`.
//! The wave column is taken as a factor: its level order (e.g. `--levels wave=T1,T2,T3`) is the
//! order of the rows and columns of the covariance and the lag order for `ar1`/`toep`.
//!
//! ```no_run
//! # use herstel::{frame::Frame, mmrm::{fit_mmrm, fit_model, ResidualSpec, WeightsSpec, MmrmOptions}, lmm::DfMethod};
//! # fn f(frame: &Frame) -> Result<(), Box<dyn std::error::Error>> {
//! let spec = ResidualSpec::parse("us(wave | id)")?;
//! let fit = fit_mmrm("y ~ arm * wave", &spec, frame, &MmrmOptions::default())?;
//! let rows = fit.coef_table(DfMethod::KenwardRoger)?;
//! // Random slopes with one residual SD per equation (stacked mediation model):
//! let w = WeightsSpec::parse("ident(dv)")?;
//! let fit = fit_model("z ~ 0 + m_int + y_int + a_x + b_m + (0 + m_int + y_int + a_x + b_m | id)",
//!                     None, Some(&w), frame, &MmrmOptions::default())?;
//! let g = fit.re_covariance.as_ref(); // cov(a_j, b_j) = g[(2, 3)]
//! # Ok(()) }
//! ```
pub mod fit;
pub mod inference;
pub mod structures;

use crate::lmm::inference::wald;
use nalgebra::DMatrix;
use serde::Serialize;
use thiserror::Error;

use crate::formula::{
    build_model_frame, Formula, FormulaError, ModelFormula, ModelFrame, ReTermData,
};
use crate::frame::{as_factor, Frame};
use crate::lmm::inference::kenward_roger::KrAdjusted;
use crate::lmm::inference::satterthwaite::Satterthwaite;
use crate::lmm::{ContrastRow, DfMethod, FTest, LmmError};
pub use fit::{CovParams, MmrmData, MmrmOptions, Residual, RowData};
pub mod compare;
pub use compare::{compare_fits, ModelComparison};
pub use structures::CovKind;

/// Errors from specifying or fitting an MMRM.
#[derive(Debug, Error)]
pub enum MmrmError {
    #[error(transparent)]
    Formula(#[from] FormulaError),
    #[error("residual structure `{text}`: {message} (expected e.g. `us(wave | participant_id)` or `ar1(wave | participant_id, by = arm)`; structures: us, cs, csh, ar1, ar1h, toep)")]
    Spec { text: String, message: String },
    #[error("the MMRM formula must not have random-effects terms (`{0}`): use `herstel fit` without --residual for mixed models")]
    RandomTerms(String),
    #[error("column `{0}` named in the residual structure or the weights is not in the data")]
    UnknownColumn(String),
    #[error("weights `{text}`: {message} (weights: `ident(column)`, nlme's varIdent(form = ~ 1 | column))")]
    Weights { text: String, message: String },
    #[error("participant `{subject}` has two rows at wave position {wave}; the residual structure needs at most one row per participant and wave")]
    DuplicateWave { subject: String, wave: usize },
    #[error("participant `{subject}` is in more than one `by` group; the groups must be constant within a participant")]
    GroupChanges { subject: String },
    #[error("{0}")]
    Data(String),
    #[error("optimizer failed: {0}")]
    Optimizer(String),
    #[error("{0}")]
    Numerical(String),
}

/// A parsed `--residual` specification: `kind(time | subject[, by = group])`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResidualSpec {
    pub kind: CovKind,
    /// Wave column (a factor; its levels index the covariance).
    pub time: String,
    /// Participant column.
    pub subject: String,
    /// Optional grouping column: one covariance per level.
    pub by: Option<String>,
    pub text: String,
}

impl ResidualSpec {
    /// Parses `us(wave | participant_id)`, `toep(wave | id, by = arm)`, ...
    pub fn parse(text: &str) -> Result<ResidualSpec, MmrmError> {
        let err = |m: &str| MmrmError::Spec {
            text: text.to_string(),
            message: m.to_string(),
        };
        let s = text.trim();
        let open = s.find('(').ok_or_else(|| err("missing `(`"))?;
        if !s.ends_with(')') {
            return Err(err("missing closing `)`"));
        }
        let kind_txt = &s[..open];
        let kind = CovKind::parse(kind_txt)
            .ok_or_else(|| err(&format!("unknown structure `{}`", kind_txt.trim())))?;
        let inner = &s[open + 1..s.len() - 1];
        let (time, rest) = inner
            .split_once('|')
            .ok_or_else(|| err("expected `time | subject` inside the parentheses"))?;
        let mut parts = rest.split(',');
        let subject = parts.next().unwrap_or("").trim().to_string();
        let mut by = None;
        for part in parts {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err(&format!("expected `by = column`, got `{}`", part.trim())))?;
            if k.trim() != "by" {
                return Err(err(&format!("unknown option `{}`", k.trim())));
            }
            by = Some(v.trim().to_string());
        }
        let time = time.trim().to_string();
        let valid = |c: &str| {
            !c.is_empty() && !c.contains(|ch: char| ch.is_whitespace() || "()|,=".contains(ch))
        };
        if !valid(&time) || !valid(&subject) || by.as_deref().is_some_and(|b| !valid(b)) {
            return Err(err("column names must be single words"));
        }
        Ok(ResidualSpec {
            kind,
            time,
            subject,
            by,
            text: s.to_string(),
        })
    }
}

/// A parsed `--weights` specification: `ident(column)`, nlme's `varIdent(form = ~ 1 | column)`:
/// one residual standard deviation per level of `column` (as ratios to the first level's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightsSpec {
    /// The stratum column.
    pub column: String,
    pub text: String,
}

impl WeightsSpec {
    /// Parses `ident(arm)`.
    pub fn parse(text: &str) -> Result<WeightsSpec, MmrmError> {
        let err = |m: &str| MmrmError::Weights {
            text: text.to_string(),
            message: m.to_string(),
        };
        let s = text.trim();
        let inner = s
            .strip_prefix("ident")
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| err("expected `ident(column)`"))?
            .trim();
        // nlme's own form `~ 1 | column` is accepted too.
        let inner = match inner.strip_prefix('~') {
            Some(r) => r
                .trim()
                .strip_prefix('1')
                .map(str::trim)
                .and_then(|r| r.strip_prefix('|'))
                .map(str::trim)
                .ok_or_else(|| err("expected `~ 1 | column`"))?,
            None => inner,
        };
        if inner.is_empty() || inner.contains(|c: char| c.is_whitespace() || "()|,=~".contains(c)) {
            return Err(err("the column name must be a single word"));
        }
        Ok(WeightsSpec {
            column: inner.to_string(),
            text: s.to_string(),
        })
    }
}

/// A fitted model: MMRM (residual structure), linear mixed model with one subject-level
/// random-effects term, `varIdent` weights, or a combination.
#[derive(Debug, Clone)]
pub struct MmrmFit {
    pub formula: String,
    /// The residual structure over waves (`None`: independent residuals).
    pub spec: Option<ResidualSpec>,
    pub weights: Option<WeightsSpec>,
    pub reml: bool,
    pub x_names: Vec<String>,
    pub beta: Vec<f64>,
    /// `vcov(beta) = (X'V^-1 X)^-1` (for ML unscaled, as lmer and nlme's lme; nlme's gls ML
    /// multiplies it by N / (N - p)).
    pub vcov: DMatrix<f64>,
    pub wave_levels: Vec<String>,
    pub group_levels: Vec<String>,
    /// Levels of the weights column (one level `all` without weights).
    pub strata_levels: Vec<String>,
    /// Natural covariance parameters: `G` entries, structure parameters over groups,
    /// `varIdent` ratios (or per-stratum residual variances without a structure).
    pub gamma: Vec<f64>,
    pub gamma_names: Vec<String>,
    /// Wave covariance per group (before the `varIdent` ratios; empty without a structure).
    pub sigmas: Vec<DMatrix<f64>>,
    /// Grouping column and names of the random effects (lme4's column names).
    pub re_group: Option<String>,
    pub re_names: Vec<String>,
    /// Covariance `G` of the random effects per participant (`getVarCov` of nlme's lme).
    pub re_covariance: Option<DMatrix<f64>>,
    /// Residual SD per stratum (at the first wave for a structure), nlme's `sigma * ratio`.
    pub residual_sd: Vec<f64>,
    /// nlme's `varIdent` ratios (first stratum 1).
    pub weights_ratios: Vec<f64>,
    /// -2 log-likelihood (REML or ML) as nlme.
    pub deviance: f64,
    pub loglik: f64,
    pub aic: f64,
    pub bic: f64,
    pub loglik_df: usize,
    pub n_obs: usize,
    pub n_subjects: usize,
    pub n_dropped: usize,
    pub n_evaluations: usize,
    pub newton_steps: usize,
    pub max_abs_gradient: f64,
    pub converged: bool,
    /// Boundary fit: the random-effects covariance `G` is singular (lme4's `isSingular`).
    pub singular: bool,
    pub dropped_columns: Vec<String>,
    pub warnings: Vec<String>,
    satterthwaite: Satterthwaite,
    kr: Result<KrAdjusted, crate::lmm::inference::DfError>,
}

/// Fits `formula` (fixed effects only) with the residual structure `spec` on `data`.
pub fn fit_mmrm(
    formula: &str,
    spec: &ResidualSpec,
    data: &Frame,
    opts: &MmrmOptions,
) -> Result<MmrmFit, MmrmError> {
    fit_model(formula, Some(spec), None, data, opts)
}

/// Fits `formula` with at most one random-effects term `(1 + x | subject)` (unstructured `G`),
/// an optional residual structure over waves (`residual`, by the same subject) and optional
/// `varIdent` weights: nlme's `lme(fixed, random = ~ 1 + x | subject, correlation = ...,
/// weights = varIdent(form = ~ 1 | s))` and `gls(...)` (Pinheiro & Bates 2000), REML or ML.
///
/// The stacked random-slope mediation model of Bauer, Preacher & Gil (2006) is
/// `z ~ 0 + m_int + y_int + ... + (0 + m_int + y_int + a_x + b_m | id)` with
/// `weights = ident(dv)`: [`MmrmFit::re_covariance`] holds `cov(a_j, b_j)`, [`MmrmFit::vcov`]
/// the covariance of the fixed effects.
pub fn fit_model(
    formula: &str,
    residual: Option<&ResidualSpec>,
    weights: Option<&WeightsSpec>,
    data: &Frame,
    opts: &MmrmOptions,
) -> Result<MmrmFit, MmrmError> {
    let f = ModelFormula::parse(formula)?;
    let re_subject = check_structure(&f, residual, weights, data)?;
    let subject = re_subject
        .clone()
        .or_else(|| residual.map(|r| r.subject.clone()));
    // The model-frame builder wants a random term: `(1 | subject)` (or the weights column)
    // also makes that column part of the complete cases.
    let mf = if re_subject.is_some() {
        build_model_frame(&f, data)?
    } else {
        let extra = subject
            .clone()
            .or_else(|| weights.map(|w| w.column.clone()))
            .ok_or_else(|| MmrmError::RandomTerms(
                "nothing beyond fixed effects: give --residual, --weights or a random-effects term".into(),
            ))?;
        let aug = Formula::parse(formula)?.add_random("1", &extra)?;
        build_model_frame(&ModelFormula::parse(&aug.to_string())?, data)?
    };
    // Without a random term of the user's, the term in `mf` is the helper `(1 | column)`.
    let re = if re_subject.is_some() {
        mf.re_terms.first()
    } else {
        None
    };
    let rows = ModelRows::of(&mf, re, residual, weights, subject.as_deref(), data)?;
    let res_kind = match residual {
        Some(r) => Residual::Waves(r.kind),
        None => Residual::Independent,
    };
    let data_r = rows.data(res_kind)?;
    let opt = fit::fit_data(&data_r, opts)?;
    let reml = opts.reml;
    let d = inference::Derivatives::compute(&data_r, &opt.gamma, &opt.evaluation, reml)
        .map_err(|e| MmrmError::Numerical(e.to_string()))?;
    let satterthwaite = d.satterthwaite();
    let kr = if reml {
        d.kenward_roger()
    } else {
        Err(crate::lmm::inference::DfError::NeedsReml)
    };
    let q_re = rows.q_re;
    let mut warnings = mf.warnings.clone();
    if rows.extra_dropped > 0 {
        warnings.push(format!(
            "{} row(s) with a missing wave, group or weights stratum dropped",
            rows.extra_dropped
        ));
    }
    warnings.extend(satterthwaite.warnings.iter().cloned());
    let rel_grad = opt.max_abs_gradient / opt.evaluation.deviance.abs().max(1.0);
    // A boundary fit (singular G, lme4's `isSingular`): the gradient need not vanish there.
    let singular = q_re > 0 && is_singular(&opt.params, q_re);
    if singular {
        warnings.push(
            "boundary (singular) fit: the random-effects covariance is singular (a variance at zero or a correlation at +-1); Satterthwaite/KR df and LRTs of its parameters are unreliable".into(),
        );
    }
    let converged = singular || (rel_grad.is_finite() && rel_grad < 1e-4);
    if !converged {
        warnings.push(format!(
            "the optimizer may not have converged: largest gradient {:.3e}",
            opt.max_abs_gradient
        ));
    }
    let p = mf.x_names.len();
    let n_par = opt.gamma.len() + p;
    let deviance = opt.evaluation.deviance;
    let n_eff = if reml { data_r.n_obs - p } else { data_r.n_obs } as f64;
    let re_names: Vec<String> = re.map(|r| r.col_names.clone()).unwrap_or_default();
    let prm = &opt.params;
    let (gamma_names, residual_sd, weights_ratios) = covariance_parameters(
        &re_names,
        res_kind,
        &rows.wave_levels,
        &rows.group_levels,
        &rows.strata_levels,
        prm,
    );
    debug_assert_eq!(gamma_names.len(), opt.gamma.len());
    Ok(MmrmFit {
        formula: formula.to_string(),
        spec: residual.cloned(),
        weights: weights.cloned(),
        reml,
        x_names: mf.x_names.clone(),
        beta: opt.evaluation.beta.iter().copied().collect(),
        vcov: opt.evaluation.vcov.clone(),
        wave_levels: if residual.is_some() {
            rows.wave_levels.clone()
        } else {
            Vec::new()
        },
        group_levels: rows.group_levels.clone(),
        strata_levels: rows.strata_levels.clone(),
        gamma: opt.gamma.clone(),
        gamma_names,
        sigmas: prm.sigmas.clone(),
        re_group: re_subject,
        re_names,
        re_covariance: (q_re > 0).then(|| prm.g.clone()),
        residual_sd,
        weights_ratios,
        deviance,
        loglik: -deviance / 2.0,
        aic: deviance + 2.0 * n_par as f64,
        bic: deviance + n_eff.ln() * n_par as f64,
        loglik_df: n_par,
        n_obs: data_r.n_obs,
        n_subjects: data_r.n_subjects,
        n_dropped: mf.n_dropped + rows.extra_dropped,
        n_evaluations: opt.n_evaluations,
        newton_steps: opt.newton_steps,
        max_abs_gradient: opt.max_abs_gradient,
        converged,
        singular,
        dropped_columns: mf.dropped_columns.clone(),
        warnings,
        satterthwaite,
        kr,
    })
}

/// The checks nlme makes of a model before fitting: at most one random-effects term, grouped
/// by one column that is the residual structure's subject; weights not on the `by` column;
/// every named column present. Returns the random-effects grouping column, if any.
fn check_structure(
    f: &ModelFormula,
    residual: Option<&ResidualSpec>,
    weights: Option<&WeightsSpec>,
    data: &Frame,
) -> Result<Option<String>, MmrmError> {
    if f.random.len() > 1 {
        return Err(MmrmError::RandomTerms(format!(
            "{}: only one random-effects term per participant is supported with --residual/--weights; write one term such as (1 + x | id)",
            f.random.iter().map(|r| r.text.clone()).collect::<Vec<_>>().join(", ")
        )));
    }
    let re_subject = match f.random.first() {
        Some(r) if r.group_columns.len() == 1 => Some(r.group_columns[0].clone()),
        Some(r) => {
            return Err(MmrmError::RandomTerms(format!(
                "{}: the grouping must be one column (the participant)",
                r.text
            )))
        }
        None => None,
    };
    if let (Some(rs), Some(res)) = (&re_subject, residual) {
        if *rs != res.subject {
            return Err(MmrmError::Spec {
                text: res.text.clone(),
                message: format!(
                    "the residual structure's subject `{}` differs from the random-effects grouping `{rs}`",
                    res.subject
                ),
            });
        }
    }
    if let (Some(w), Some(res)) = (weights, residual) {
        if res.by.as_deref() == Some(w.column.as_str()) {
            return Err(MmrmError::Weights {
                text: w.text.clone(),
                message: format!(
                    "`{}` is already the `by` column of the residual structure (one covariance per group); drop one of the two",
                    w.column
                ),
            });
        }
    }
    // Columns of --residual / --weights must exist (named before the formula is built).
    let named = residual
        .into_iter()
        .flat_map(|r| [Some(&r.time), Some(&r.subject), r.by.as_ref()])
        .chain(weights.map(|w| Some(&w.column)))
        .flatten();
    for c in named {
        if data.column(c).is_none() {
            return Err(MmrmError::UnknownColumn(c.clone()));
        }
    }
    Ok(re_subject)
}

/// The model frame's rows with their subject, wave, `by` group and weights stratum (rows with
/// any of those missing dropped), unused levels dropped as R does.
struct ModelRows {
    x: Vec<f64>,
    p: usize,
    z: Vec<f64>,
    q_re: usize,
    y: Vec<f64>,
    subject: Vec<u32>,
    wave: Vec<usize>,
    group: Vec<usize>,
    stratum: Vec<usize>,
    wave_levels: Vec<String>,
    group_levels: Vec<String>,
    strata_levels: Vec<String>,
    subject_names: Vec<String>,
    extra_dropped: usize,
}

impl ModelRows {
    fn of(
        mf: &ModelFrame,
        re: Option<&ReTermData>,
        residual: Option<&ResidualSpec>,
        weights: Option<&WeightsSpec>,
        subject: Option<&str>,
        data: &Frame,
    ) -> Result<ModelRows, MmrmError> {
        let col = |name: &str| {
            data.column(name)
                .ok_or_else(|| MmrmError::UnknownColumn(name.to_string()))
        };
        let n_all = data.n_rows();
        let (wcodes, wlevels) = match residual {
            Some(r) => as_factor(col(&r.time)?),
            None => (vec![Some(0); n_all], vec!["all".to_string()]),
        };
        let (scodes, slevels) = match subject {
            Some(s) => as_factor(col(s)?),
            None => (
                (0..n_all as u32).map(Some).collect(),
                (1..=n_all).map(|i| format!("row {i}")).collect(),
            ),
        };
        let (gcodes, glevels) = match residual.and_then(|r| r.by.as_ref()) {
            Some(b) => as_factor(col(b)?),
            None => (vec![Some(0); n_all], vec!["all".to_string()]),
        };
        let (tcodes, tlevels) = match weights {
            Some(w) => as_factor(col(&w.column)?),
            None => (vec![Some(0); n_all], vec!["all".to_string()]),
        };
        let q_re = re.map_or(0, |r| r.q);
        let p = mf.x_names.len();
        let mut x = Vec::with_capacity(mf.x.len());
        let mut z = Vec::new();
        let (mut y, mut subj, mut wave, mut group, mut stratum) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut extra_dropped = 0;
        for (k, &row) in mf.rows.iter().enumerate() {
            let (Some(Some(w)), Some(Some(s)), Some(Some(g)), Some(Some(t))) = (
                wcodes.get(row),
                scodes.get(row),
                gcodes.get(row),
                tcodes.get(row),
            ) else {
                extra_dropped += 1;
                continue;
            };
            x.extend_from_slice(mf.x.get(k * p..(k + 1) * p).unwrap_or(&[]));
            if let Some(r) = re {
                z.extend_from_slice(r.z.get(k * q_re..(k + 1) * q_re).unwrap_or(&[]));
            }
            y.push(mf.y.get(k).copied().unwrap_or(f64::NAN));
            subj.push(*s);
            wave.push(*w as usize);
            group.push(*g as usize);
            stratum.push(*t as usize);
        }
        let (wave, wave_levels) = compact(&wave, &wlevels);
        let (group, group_levels) = compact(&group, &glevels);
        let (stratum, strata_levels) = compact(&stratum, &tlevels);
        Ok(ModelRows {
            x,
            p,
            z,
            q_re,
            y,
            subject: subj,
            wave,
            group,
            stratum,
            wave_levels,
            group_levels,
            strata_levels,
            subject_names: slevels,
            extra_dropped,
        })
    }

    fn data(&self, res_kind: Residual) -> Result<MmrmData, MmrmError> {
        MmrmData::new(
            RowData {
                x: &self.x,
                p: self.p,
                y: &self.y,
                subject: &self.subject,
                wave: &self.wave,
                group: &self.group,
                stratum: &self.stratum,
                z: &self.z,
                q_re: self.q_re,
                n_waves: self.wave_levels.len(),
                n_groups: self.group_levels.len(),
                n_strata: self.strata_levels.len(),
                subject_names: &self.subject_names,
            },
            res_kind,
        )
    }
}

/// lme4's `isSingular` for the random-effects covariance `G`: its correlation matrix has an
/// eigenvalue below 1e-6, or a variance is ~0 relative to the residual scale.
fn is_singular(prm: &CovParams, q_re: usize) -> bool {
    let g = &prm.g;
    let d = DMatrix::from_fn(q_re, q_re, |i, j| {
        g[(i, j)] / (g[(i, i)] * g[(j, j)]).sqrt().max(1e-300)
    });
    let ev = d.symmetric_eigen().eigenvalues;
    ev.iter().fold(f64::INFINITY, |a, v| a.min(*v)) < 1e-6
        || (0..q_re).any(|i| g[(i, i)] <= 1e-10 * prm.strata.iter().fold(0.0f64, |a, v| a.max(*v)))
}

/// Names of the covariance parameters in nlme's order (`var(x)`, `cov(x,y)`, the residual
/// structure's, `ratio.<stratum>` or `sigma2.<stratum>`), the residual SD per weights stratum
/// and the varIdent ratios.
fn covariance_parameters(
    re_names: &[String],
    res_kind: Residual,
    wave_levels: &[String],
    group_levels: &[String],
    strata_levels: &[String],
    prm: &CovParams,
) -> (Vec<String>, Vec<f64>, Vec<f64>) {
    let q_re = re_names.len();
    let mut gamma_names = Vec::new();
    for b in 0..q_re {
        for a in b..q_re {
            gamma_names.push(if a == b {
                format!("var({})", re_names[a])
            } else {
                format!("cov({},{})", re_names[a], re_names[b])
            });
        }
    }
    let (residual_sd, weights_ratios): (Vec<f64>, Vec<f64>) = match res_kind {
        Residual::Waves(kind) => {
            let base = kind.gamma_names(wave_levels.len());
            for g in group_levels {
                for n in &base {
                    gamma_names.push(if group_levels.len() > 1 {
                        format!("{g}.{n}")
                    } else {
                        n.clone()
                    });
                }
            }
            for s in strata_levels.iter().skip(1) {
                gamma_names.push(format!("ratio.{s}"));
            }
            let s0 = prm.sigmas.first().map_or(f64::NAN, |s| s[(0, 0)].sqrt());
            (
                prm.strata.iter().map(|d| d * s0).collect(),
                prm.strata.clone(),
            )
        }
        Residual::Independent => {
            for s in strata_levels {
                gamma_names.push(if strata_levels.len() > 1 {
                    format!("sigma2.{s}")
                } else {
                    "sigma2".to_string()
                });
            }
            let sd: Vec<f64> = prm.strata.iter().map(|v| v.sqrt()).collect();
            let r = sd.iter().map(|v| v / sd[0]).collect();
            (sd, r)
        }
    };
    (gamma_names, residual_sd, weights_ratios)
}

fn compact(codes: &[usize], levels: &[String]) -> (Vec<usize>, Vec<String>) {
    let mut used = vec![false; levels.len()];
    for &c in codes {
        if let Some(u) = used.get_mut(c) {
            *u = true;
        }
    }
    let mut map = vec![0usize; levels.len()];
    let mut out_levels = Vec::new();
    for (i, l) in levels.iter().enumerate() {
        if used[i] {
            map[i] = out_levels.len();
            out_levels.push(l.clone());
        }
    }
    (
        codes
            .iter()
            .map(|&c| map.get(c).copied().unwrap_or(0))
            .collect(),
        out_levels,
    )
}

impl MmrmFit {
    /// Number of fixed effects.
    pub fn n_fixef(&self) -> usize {
        self.beta.len()
    }

    /// The fixed-effect names as R prints them.
    pub fn fixef_names(&self) -> &[String] {
        &self.x_names
    }

    /// Kenward-Roger adjusted covariance (REML fits only).
    pub fn kenward_roger(&self) -> Result<&KrAdjusted, LmmError> {
        self.kr.as_ref().map_err(|e| LmmError::Df(e.clone()))
    }

    /// Satterthwaite ingredients.
    pub fn satterthwaite(&self) -> &Satterthwaite {
        &self.satterthwaite
    }

    /// Each row of `l` as a contrast `l beta` with SE, df, t, p and 95% CI (same signature as
    /// [`crate::lmm::LmmFit::contrast`]).
    pub fn contrast(
        &self,
        l: &DMatrix<f64>,
        method: DfMethod,
    ) -> Result<Vec<ContrastRow>, LmmError> {
        self.contrast_level(l, method, 0.95)
    }

    /// As [`MmrmFit::contrast`] with a confidence level.
    pub fn contrast_level(
        &self,
        l: &DMatrix<f64>,
        method: DfMethod,
        level: f64,
    ) -> Result<Vec<ContrastRow>, LmmError> {
        wald::contrast_rows(self, l, method, level)
    }

    /// F test of `L beta = 0` (lmerTest `contestMD` / pbkrtest `KRmodcomp`; same signature as
    /// [`crate::lmm::LmmFit::f_test`]).
    pub fn f_test(&self, l: &DMatrix<f64>, method: DfMethod) -> Result<FTest, LmmError> {
        wald::f_test(self, l, method)
    }

    /// One row per fixed effect.
    pub fn coef_table(&self, method: DfMethod) -> Result<Vec<ContrastRow>, LmmError> {
        let p = self.n_fixef();
        self.contrast(&DMatrix::identity(p, p), method)
    }

    /// The `herstel fit --json` layout (as the mixed-model fit) plus `residual_covariance`.
    pub fn summary(&self, method: DfMethod) -> Result<MmrmSummary, LmmError> {
        let table = self.coef_table(method)?;
        let fixed_effects = table
            .iter()
            .zip(&self.x_names)
            .map(|(r, n)| crate::lmm::summary::FixedEffectRow {
                term: n.clone(),
                estimate: r.estimate,
                std_error: r.std_error,
                df: r.df.is_finite().then_some(r.df),
                statistic: r.statistic,
                p_value: r.p_value,
                conf_low: r.conf_low,
                conf_high: r.conf_high,
            })
            .collect();
        let vc = match method {
            DfMethod::KenwardRoger => self.kenward_roger()?.phi_a.clone(),
            _ => self.vcov.clone(),
        };
        let p = self.n_fixef();
        let vcov = (0..p)
            .map(|i| (0..p).map(|j| vc[(i, j)]).collect())
            .collect();
        let mat = |m: &DMatrix<f64>| -> Vec<Vec<f64>> {
            (0..m.nrows())
                .map(|i| (0..m.ncols()).map(|j| m[(i, j)]).collect())
                .collect()
        };
        let corr = |m: &DMatrix<f64>| -> (Vec<f64>, Vec<Vec<f64>>) {
            let t = m.nrows();
            let sd: Vec<f64> = (0..t).map(|i| m[(i, i)].sqrt()).collect();
            let c = (0..t)
                .map(|i| (0..t).map(|j| m[(i, j)] / (sd[i] * sd[j])).collect())
                .collect();
            (sd, c)
        };
        // Per group, and per weights stratum when there are several (delta_s^2 Sigma_g: the
        // covariance of a participant whose rows are all in stratum s).
        let mut residual_covariance = Vec::new();
        for (g, s) in self.group_levels.iter().zip(&self.sigmas) {
            for (k, st) in self.strata_levels.iter().enumerate() {
                let d = self.weights_ratios.get(k).copied().unwrap_or(1.0);
                let m = s * (d * d);
                let (sd, correlation) = corr(&m);
                residual_covariance.push(ResidualCovariance {
                    group: (self.group_levels.len() > 1).then(|| g.clone()),
                    stratum: (self.strata_levels.len() > 1).then(|| st.clone()),
                    waves: self.wave_levels.clone(),
                    covariance: mat(&m),
                    correlation,
                    sd,
                });
            }
        }
        let random_effects = self.re_covariance.as_ref().map(|g| {
            let (sd, correlation) = corr(g);
            RandomEffectsCovariance {
                group: self.re_group.clone().unwrap_or_default(),
                terms: self.re_names.clone(),
                covariance: mat(g),
                correlation,
                sd,
            }
        });
        let residual_sd = self
            .strata_levels
            .iter()
            .zip(self.residual_sd.iter().zip(&self.weights_ratios))
            .map(|(s, (sd, r))| StratumSd {
                stratum: s.clone(),
                sd: *sd,
                ratio: *r,
            })
            .collect();
        Ok(MmrmSummary {
            formula: self.formula.clone(),
            residual: self.spec.as_ref().map(|s| s.text.clone()),
            structure: self.spec.as_ref().map(|s| s.kind),
            weights: self.weights.as_ref().map(|w| w.text.clone()),
            reml: self.reml,
            n_obs: self.n_obs,
            n_subjects: self.n_subjects,
            n_dropped: self.n_dropped,
            df_method: method,
            fixed_effects,
            residual_covariance,
            random_effects,
            residual_sd,
            covariance_parameters: self
                .gamma_names
                .iter()
                .cloned()
                .zip(self.gamma.iter().copied())
                .collect(),
            loglik: self.loglik,
            reml_criterion: self.reml.then_some(self.deviance),
            deviance: self.deviance,
            aic: self.aic,
            bic: self.bic,
            loglik_df: self.loglik_df,
            vcov,
            converged: self.converged,
            n_evaluations: self.n_evaluations,
            dropped_columns: self.dropped_columns.clone(),
            warnings: self.warnings.clone(),
        })
    }
}

/// One group's wave covariance (`getVarCov` of nlme).
#[derive(Debug, Clone, Serialize)]
pub struct ResidualCovariance {
    pub group: Option<String>,
    /// The weights stratum (when `--weights` has several levels).
    pub stratum: Option<String>,
    pub waves: Vec<String>,
    pub covariance: Vec<Vec<f64>>,
    pub correlation: Vec<Vec<f64>>,
    pub sd: Vec<f64>,
}

/// Covariance of the random effects per participant (`getVarCov` of nlme's lme).
#[derive(Debug, Clone, Serialize)]
pub struct RandomEffectsCovariance {
    pub group: String,
    pub terms: Vec<String>,
    pub covariance: Vec<Vec<f64>>,
    pub correlation: Vec<Vec<f64>>,
    pub sd: Vec<f64>,
}

/// Residual SD of one weights stratum (`sigma * ratio` of nlme's varIdent).
#[derive(Debug, Clone, Serialize)]
pub struct StratumSd {
    pub stratum: String,
    pub sd: f64,
    pub ratio: f64,
}

/// Everything `herstel fit --residual ... --json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct MmrmSummary {
    pub formula: String,
    pub residual: Option<String>,
    pub structure: Option<CovKind>,
    pub weights: Option<String>,
    pub reml: bool,
    pub n_obs: usize,
    pub n_subjects: usize,
    pub n_dropped: usize,
    pub df_method: DfMethod,
    pub fixed_effects: Vec<crate::lmm::summary::FixedEffectRow>,
    pub residual_covariance: Vec<ResidualCovariance>,
    pub random_effects: Option<RandomEffectsCovariance>,
    pub residual_sd: Vec<StratumSd>,
    pub covariance_parameters: Vec<(String, f64)>,
    pub loglik: f64,
    pub reml_criterion: Option<f64>,
    pub deviance: f64,
    pub aic: f64,
    pub bic: f64,
    pub loglik_df: usize,
    pub vcov: Vec<Vec<f64>>,
    pub converged: bool,
    pub n_evaluations: usize,
    pub dropped_columns: Vec<String>,
    pub warnings: Vec<String>,
}

impl MmrmSummary {
    /// A printed summary in the spirit of `summary(gls)`.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let mut what = Vec::new();
        if let Some(r) = &self.residual {
            what.push(format!("residual covariance {r}"));
        }
        if let Some(re) = &self.random_effects {
            what.push(format!(
                "random effects ({} | {})",
                re.terms.join(" + "),
                re.group
            ));
        }
        if let Some(w) = &self.weights {
            what.push(format!("weights {w}"));
        }
        let _ = writeln!(
            s,
            "Linear model with {} fit by {}",
            what.join(", "),
            if self.reml {
                "REML"
            } else {
                "maximum likelihood"
            }
        );
        let _ = writeln!(s, "Formula: {}", self.formula);
        let _ = writeln!(
            s,
            "  AIC {:.4}  BIC {:.4}  logLik {:.4}  (obs {}, participants {})",
            self.aic, self.bic, self.loglik, self.n_obs, self.n_subjects
        );
        if let Some(re) = &self.random_effects {
            let _ = writeln!(s, "\nRandom effects covariance ({}):", re.group);
            let _ = write!(s, "{:>14}", "");
            for t in &re.terms {
                let _ = write!(s, "{t:>14}");
            }
            let _ = writeln!(s);
            for (t, row) in re.terms.iter().zip(&re.covariance) {
                let _ = write!(s, "{t:>14}");
                for v in row {
                    let _ = write!(s, "{v:>14.6}");
                }
                let _ = writeln!(s);
            }
        }
        if self.residual_covariance.is_empty() {
            let _ = writeln!(s, "\nResidual SD:");
            for r in &self.residual_sd {
                let _ = writeln!(s, "{:>14}{:>14.6}  (ratio {:.6})", r.stratum, r.sd, r.ratio);
            }
        }
        for rc in &self.residual_covariance {
            let label: Vec<&str> = rc
                .group
                .iter()
                .chain(rc.stratum.iter())
                .map(|x| x.as_str())
                .collect();
            let _ = writeln!(
                s,
                "\nResidual covariance{}:",
                if label.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", label.join(", "))
                }
            );
            let _ = write!(s, "{:>10}", "");
            for w in &rc.waves {
                let _ = write!(s, "{w:>12}");
            }
            let _ = writeln!(s);
            for (w, row) in rc.waves.iter().zip(&rc.covariance) {
                let _ = write!(s, "{w:>10}");
                for v in row {
                    let _ = write!(s, "{v:>12.5}");
                }
                let _ = writeln!(s);
            }
        }
        let _ = writeln!(s, "\nFixed effects ({:?} df):", self.df_method);
        let _ = writeln!(
            s,
            "{:<24}{:>12}{:>12}{:>10}{:>10}{:>12}",
            "", "Estimate", "Std.Error", "df", "t value", "Pr(>|t|)"
        );
        for r in &self.fixed_effects {
            let df = r.df.map_or("Inf".to_string(), |d| format!("{d:.2}"));
            let _ = writeln!(
                s,
                "{:<24}{:>12.5}{:>12.5}{:>10}{:>10.3}{:>12.4e}",
                r.term, r.estimate, r.std_error, df, r.statistic, r.p_value
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }
}

impl wald::FixedEffects for MmrmFit {
    fn coefficients(&self) -> &[f64] {
        &self.beta
    }
    fn coef_vcov(&self) -> &DMatrix<f64> {
        &self.vcov
    }
    fn coef_names(&self) -> &[String] {
        &self.x_names
    }
    fn satterthwaite_parts(&self) -> Result<&Satterthwaite, LmmError> {
        Ok(&self.satterthwaite)
    }
    fn kenward_roger_parts(&self) -> Result<&KrAdjusted, LmmError> {
        self.kenward_roger()
    }
}
