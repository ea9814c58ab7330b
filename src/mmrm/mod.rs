//! Mixed models for repeated measures (MMRM): linear models with a residual covariance
//! structure of the waves within a participant, no random effects (issue 4). Reproduces
//! nlme's `gls(..., correlation = corSymm/corCompSymm/corAR1/corARMA(form = ~ widx | id),
//! weights = varIdent(form = ~ 1 | wave))` (Pinheiro & Bates 2000), SAS PROC MIXED
//! `REPEATED wave / SUBJECT=id TYPE=UN|CS|CSH|AR(1)|ARH(1)|TOEP`, with lmerTest-style
//! Satterthwaite and pbkrtest-style Kenward-Roger df.
//!
//! * [`structures`]: the covariance structures and their parametrizations.
//! * [`fit`]: pattern cross-products, the REML/ML criterion, BOBYQA + Newton.
//! * [`inference`]: analytic derivatives, Satterthwaite, Kenward-Roger.
//!
//! Syntax (`herstel fit --residual`): `us(wave | participant_id)`, also `cs`, `csh`, `ar1`,
//! `ar1h`, `toep`; `us(wave | participant_id, by = arm)` for one covariance per group.
//! The wave column is taken as a factor: its level order (e.g. `--levels wave=T1,T2,T3`) is the
//! order of the rows and columns of the covariance and the lag order for `ar1`/`toep`.
//!
//! ```no_run
//! # use herstel::{frame::Frame, mmrm::{fit_mmrm, ResidualSpec, MmrmOptions}, lmm::DfMethod};
//! # fn f(frame: &Frame) -> Result<(), Box<dyn std::error::Error>> {
//! let spec = ResidualSpec::parse("us(wave | id)")?;
//! let fit = fit_mmrm("y ~ arm * wave", &spec, frame, &MmrmOptions::default())?;
//! let rows = fit.coef_table(DfMethod::KenwardRoger)?;
//! # Ok(()) }
//! ```
pub mod fit;
pub mod inference;
pub mod structures;

use nalgebra::{DMatrix, DVector};
use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF, FisherSnedecor};
use thiserror::Error;

use crate::formula::{build_model_frame, FormulaError, ModelFormula};
use crate::frame::{as_factor, Frame};
use crate::lmm::inference::kenward_roger::KrAdjusted;
use crate::lmm::inference::satterthwaite::Satterthwaite;
use crate::lmm::inference::t_p_and_quantile;
use crate::lmm::{ContrastRow, DfMethod, FTest, LmmError};
pub use fit::{MmrmData, MmrmOptions};
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
    #[error("column `{0}` named in the residual structure is not in the data")]
    UnknownColumn(String),
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

/// A fitted MMRM.
#[derive(Debug, Clone)]
pub struct MmrmFit {
    pub formula: String,
    pub spec: ResidualSpec,
    pub reml: bool,
    pub x_names: Vec<String>,
    pub beta: Vec<f64>,
    /// `vcov(beta) = (X'V^-1 X)^-1` (for ML unscaled, as lmer; nlme's gls ML multiplies it
    /// by N / (N - p)).
    pub vcov: DMatrix<f64>,
    pub wave_levels: Vec<String>,
    pub group_levels: Vec<String>,
    /// Natural covariance parameters, concatenated over groups ([`CovKind::gamma_names`]).
    pub gamma: Vec<f64>,
    pub gamma_names: Vec<String>,
    /// Wave covariance per group.
    pub sigmas: Vec<DMatrix<f64>>,
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
    pub dropped_columns: Vec<String>,
    pub warnings: Vec<String>,
    satterthwaite: Satterthwaite,
    kr: Result<KrAdjusted, String>,
}

/// Fits `formula` (fixed effects only) with the residual structure `spec` on `data`.
pub fn fit_mmrm(
    formula: &str,
    spec: &ResidualSpec,
    data: &Frame,
    opts: &MmrmOptions,
) -> Result<MmrmFit, MmrmError> {
    let f = ModelFormula::parse(formula)?;
    if let Some(r) = f.random.first() {
        return Err(MmrmError::RandomTerms(r.text.clone()));
    }
    // The model-frame builder wants a random term: `(1 | subject)` also makes the subject
    // column part of the complete cases.
    let aug = format!("{} + (1 | {})", formula.trim(), spec.subject);
    let fa = ModelFormula::parse(&aug)?;
    let mf = build_model_frame(&fa, data)?;
    let col = |name: &str| {
        data.column(name)
            .ok_or_else(|| MmrmError::UnknownColumn(name.to_string()))
    };
    let (wcodes, wlevels) = as_factor(col(&spec.time)?);
    let (scodes, slevels) = as_factor(col(&spec.subject)?);
    let (gcodes, glevels) = match &spec.by {
        Some(b) => as_factor(col(b)?),
        None => (vec![Some(0); data.n_rows()], vec!["all".to_string()]),
    };
    let p = mf.x_names.len();
    let mut x = Vec::with_capacity(mf.x.len());
    let (mut y, mut subj, mut wave, mut group) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut extra_dropped = 0;
    for (k, &row) in mf.rows.iter().enumerate() {
        let (Some(Some(w)), Some(Some(s)), Some(Some(g))) =
            (wcodes.get(row), scodes.get(row), gcodes.get(row))
        else {
            extra_dropped += 1;
            continue;
        };
        x.extend_from_slice(mf.x.get(k * p..(k + 1) * p).unwrap_or(&[]));
        y.push(mf.y.get(k).copied().unwrap_or(f64::NAN));
        subj.push(*s);
        wave.push(*w as usize);
        group.push(*g as usize);
    }
    // Keep only the wave / group levels present (R drops unused levels).
    let (wave, wave_levels) = compact(&wave, &wlevels);
    let (group, group_levels) = compact(&group, &glevels);
    let data_r = MmrmData::new(
        &x,
        p,
        &y,
        &subj,
        &wave,
        &group,
        wave_levels.len(),
        group_levels.len(),
        &slevels,
    )?;
    let opt = fit::fit_data(&data_r, spec.kind, opts)?;
    let reml = opts.reml;
    let d = inference::Derivatives::compute(
        &data_r,
        spec.kind,
        &opt.gamma,
        &opt.evaluation,
        reml,
        true,
    )
    .map_err(MmrmError::Numerical)?;
    let satterthwaite = d.satterthwaite();
    let kr = if reml {
        d.kenward_roger()
    } else {
        Err("Kenward-Roger needs a REML fit (as lmerTest/pbkrtest); refit without --ml".into())
    };
    let mut warnings = mf.warnings.clone();
    if extra_dropped > 0 {
        warnings.push(format!(
            "{extra_dropped} row(s) with missing `{}`{} dropped",
            spec.time,
            spec.by
                .as_ref()
                .map(|b| format!(" or `{b}`"))
                .unwrap_or_default()
        ));
    }
    warnings.extend(satterthwaite.warnings.iter().cloned());
    let rel_grad = opt.max_abs_gradient / opt.evaluation.deviance.abs().max(1.0);
    let converged = rel_grad.is_finite() && rel_grad < 1e-4;
    if !converged {
        warnings.push(format!(
            "the optimizer may not have converged: largest gradient {:.3e}",
            opt.max_abs_gradient
        ));
    }
    let n_par = opt.gamma.len() + p;
    let deviance = opt.evaluation.deviance;
    let n_eff = if reml { data_r.n_obs - p } else { data_r.n_obs } as f64;
    let np = spec.kind.n_par(wave_levels.len());
    let base_names = spec.kind.gamma_names(wave_levels.len());
    let gamma_names = if group_levels.len() > 1 {
        group_levels
            .iter()
            .flat_map(|g| base_names.iter().map(move |n| format!("{g}.{n}")))
            .collect()
    } else {
        base_names
    };
    debug_assert_eq!(np * group_levels.len(), opt.gamma.len());
    Ok(MmrmFit {
        formula: formula.to_string(),
        spec: spec.clone(),
        reml,
        x_names: mf.x_names.clone(),
        beta: opt.evaluation.beta.iter().copied().collect(),
        vcov: opt.evaluation.vcov.clone(),
        wave_levels,
        group_levels,
        gamma: opt.gamma.clone(),
        gamma_names,
        sigmas: opt.sigmas.clone(),
        deviance,
        loglik: -deviance / 2.0,
        aic: deviance + 2.0 * n_par as f64,
        bic: deviance + n_eff.ln() * n_par as f64,
        loglik_df: n_par,
        n_obs: data_r.n_obs,
        n_subjects: data_r.n_subjects,
        n_dropped: mf.n_dropped + extra_dropped,
        n_evaluations: opt.n_evaluations,
        newton_steps: opt.newton_steps,
        max_abs_gradient: opt.max_abs_gradient,
        converged,
        dropped_columns: mf.dropped_columns.clone(),
        warnings,
        satterthwaite,
        kr,
    })
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
        self.kr.as_ref().map_err(|e| LmmError::Numerical(e.clone()))
    }

    /// Satterthwaite ingredients.
    pub fn satterthwaite(&self) -> &Satterthwaite {
        &self.satterthwaite
    }

    fn check_l(&self, l: &DMatrix<f64>) -> Result<(), LmmError> {
        if l.ncols() != self.n_fixef() {
            return Err(LmmError::ContrastDim {
                got: l.ncols(),
                expected: self.n_fixef(),
                names: self.x_names.join(", "),
            });
        }
        Ok(())
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
        self.check_l(l)?;
        let beta = DVector::from_column_slice(&self.beta);
        let mut rows = Vec::with_capacity(l.nrows());
        for r in 0..l.nrows() {
            let lr: DMatrix<f64> = l.rows(r, 1).into_owned();
            let est = (&lr * &beta)[(0, 0)];
            let (var, df) = match method {
                DfMethod::Satterthwaite => {
                    let lv: Vec<f64> = lr.iter().copied().collect();
                    (
                        (&lr * &self.vcov * lr.transpose())[(0, 0)],
                        self.satterthwaite.df(&lv),
                    )
                }
                DfMethod::KenwardRoger => {
                    let kr = self.kenward_roger()?;
                    let df = kr.df(&lr).map_err(LmmError::Numerical)?;
                    ((&lr * &kr.phi_a * lr.transpose())[(0, 0)], df)
                }
                DfMethod::Asymptotic => {
                    ((&lr * &self.vcov * lr.transpose())[(0, 0)], f64::INFINITY)
                }
            };
            let se = var.max(0.0).sqrt();
            let t = est / se;
            let (p, qt) = t_p_and_quantile(t, df, level);
            rows.push(ContrastRow {
                estimate: est,
                std_error: se,
                df,
                statistic: t,
                p_value: p,
                conf_low: est - qt * se,
                conf_high: est + qt * se,
            });
        }
        Ok(rows)
    }

    /// F test of `L beta = 0` (lmerTest `contestMD` / pbkrtest `KRmodcomp`; same signature as
    /// [`crate::lmm::LmmFit::f_test`]).
    pub fn f_test(&self, l: &DMatrix<f64>, method: DfMethod) -> Result<FTest, LmmError> {
        self.check_l(l)?;
        let beta = DVector::from_column_slice(&self.beta);
        let (f, q, ddf, fu) = match method {
            DfMethod::Satterthwaite => {
                let (f, q, ddf) = self
                    .satterthwaite
                    .f_test(l, &beta)
                    .map_err(LmmError::Numerical)?;
                (f, q, ddf, f)
            }
            DfMethod::KenwardRoger => self
                .kenward_roger()?
                .f_test(l, &beta)
                .map_err(LmmError::Numerical)?,
            DfMethod::Asymptotic => {
                let lb = l * &beta;
                let inv = (l * &self.vcov * l.transpose())
                    .try_inverse()
                    .ok_or_else(|| LmmError::Numerical("L vcov L' is singular".into()))?;
                let q = l.nrows() as f64;
                let f = (lb.transpose() * inv * &lb)[(0, 0)] / q;
                (f, q, f64::INFINITY, f)
            }
        };
        let p_value = if ddf.is_finite() {
            FisherSnedecor::new(q, ddf)
                .map(|d| d.sf(f))
                .unwrap_or(f64::NAN)
        } else {
            ChiSquared::new(q).map(|d| d.sf(f * q)).unwrap_or(f64::NAN)
        };
        Ok(FTest {
            f_value: f,
            num_df: q,
            den_df: ddf,
            p_value,
            f_unscaled: fu,
        })
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
        let residual_covariance = self
            .group_levels
            .iter()
            .zip(&self.sigmas)
            .map(|(g, s)| {
                let t = s.nrows();
                let sd: Vec<f64> = (0..t).map(|i| s[(i, i)].sqrt()).collect();
                ResidualCovariance {
                    group: (self.group_levels.len() > 1).then(|| g.clone()),
                    waves: self.wave_levels.clone(),
                    covariance: (0..t)
                        .map(|i| (0..t).map(|j| s[(i, j)]).collect())
                        .collect(),
                    correlation: (0..t)
                        .map(|i| (0..t).map(|j| s[(i, j)] / (sd[i] * sd[j])).collect())
                        .collect(),
                    sd,
                }
            })
            .collect();
        Ok(MmrmSummary {
            formula: self.formula.clone(),
            residual: self.spec.text.clone(),
            structure: self.spec.kind,
            reml: self.reml,
            n_obs: self.n_obs,
            n_subjects: self.n_subjects,
            n_dropped: self.n_dropped,
            df_method: method,
            fixed_effects,
            residual_covariance,
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
    pub waves: Vec<String>,
    pub covariance: Vec<Vec<f64>>,
    pub correlation: Vec<Vec<f64>>,
    pub sd: Vec<f64>,
}

/// Everything `herstel fit --residual ... --json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct MmrmSummary {
    pub formula: String,
    pub residual: String,
    pub structure: CovKind,
    pub reml: bool,
    pub n_obs: usize,
    pub n_subjects: usize,
    pub n_dropped: usize,
    pub df_method: DfMethod,
    pub fixed_effects: Vec<crate::lmm::summary::FixedEffectRow>,
    pub residual_covariance: Vec<ResidualCovariance>,
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
        let _ = writeln!(
            s,
            "Linear model with residual covariance {} fit by {}",
            self.residual,
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
        for rc in &self.residual_covariance {
            let _ = writeln!(
                s,
                "\nResidual covariance{}:",
                rc.group
                    .as_ref()
                    .map(|g| format!(" ({g})"))
                    .unwrap_or_default()
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
