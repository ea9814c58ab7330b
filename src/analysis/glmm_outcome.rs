//! Binary and count outcomes in the outcome models (`[model] family`, issue 15 point 4): the
//! arm x wave model with a participant random intercept as a GLMM
//! (`glmer(y ~ arm * wave + (1 | participant_id), family = binomial)`, or Poisson / negative
//! binomial), summarised like the LMM by [`super::outcomes::summarise_fit`] on the link scale
//! (Wald z tests, `df = Inf`; the arm x wave test as emmeans' `joint_tests`, `F = chi^2 / q`
//! on `(q, Inf)` df), then put on the response scale as emmeans `type = "response"` does:
//! * marginal means `g^-1(l' beta)` (probabilities or rates of a participant with random
//!   intercept 0), SE by the delta method `se(l' beta) |d mu / d eta|`, and the interval
//!   `g^-1` of the link-scale interval;
//! * the contrast of the arms per wave as the ratio `exp(c' beta)` (odds ratio for the logit,
//!   rate ratio for the log link), SE `ratio x se(c' beta)`, interval `exp` of the link-scale
//!   interval, and the change contrast as the ratio of those ratios (follow-up over baseline).
//!
//! Cohen's d does not apply and is left out.
use nalgebra::DMatrix;

use super::outcomes::{LinearModelFit, ModelRequest, OutcomeError};
use super::spec::ModelFamily;
use crate::formula::{build_model_frame, ModelFormula};
use crate::glmm::family::{Family, Link};
use crate::glmm::{fit_glmm, glmm_data, GlmmFit, GlmmOptions};
use crate::lmm::{DfMethod, LmmError};
use crate::results::{FitStats, ModelDiagnostics, OutcomeResult, RandomEffectRow};
use crate::stats::distributions::{pchisq_upper, pnorm_upper, qnorm};
use crate::trial_data::OutcomeData;

/// A fitted outcome GLMM with its coefficient names and the frame rows it used.
#[derive(Debug, Clone)]
pub struct GlmmOutcomeFit {
    pub fit: GlmmFit,
    pub names: Vec<String>,
    pub rows: Vec<usize>,
    pub family: Family,
}

fn family_of(f: ModelFamily) -> Family {
    match f {
        ModelFamily::Binomial => Family::Binomial(Link::Logit),
        ModelFamily::Poisson => Family::Poisson,
        ModelFamily::NegativeBinomial => Family::NegativeBinomial { theta: 1.0 },
        ModelFamily::Gaussian => Family::Poisson, // not reached: Gaussian fits the LMM
    }
}

/// Fits the request's formula as a GLMM of the request's family (Laplace or `nagq` points).
pub fn fit_glmm_request(
    data: &OutcomeData,
    req: &ModelRequest,
) -> Result<GlmmOutcomeFit, OutcomeError> {
    let family = family_of(req.family);
    let formula = ModelFormula::parse(&req.formula.to_string())?;
    let mf = build_model_frame(&formula, &data.frame)?;
    let d = glmm_data(&mf, None, None, family)?;
    let fit = fit_glmm(
        &d,
        &GlmmOptions {
            family,
            n_agq: req.nagq,
            level: req.level,
        },
    )?;
    Ok(GlmmOutcomeFit {
        fit,
        names: mf.x_names.clone(),
        rows: mf.rows.clone(),
        family,
    })
}

impl GlmmOutcomeFit {
    fn beta(&self) -> Vec<f64> {
        self.fit.fixed_effects.iter().map(|t| t.estimate).collect()
    }

    /// `(L beta, L V L')`.
    fn linear(&self, l: &DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
        let p = self.names.len();
        let v = DMatrix::from_row_slice(p, p, &self.fit.vcov);
        let b = nalgebra::DVector::from_vec(self.beta());
        let est = (l * &b).iter().copied().collect();
        (est, l * v * l.transpose())
    }
}

impl LinearModelFit for GlmmOutcomeFit {
    fn coef_names(&self) -> &[String] {
        &self.names
    }
    fn contrasts_at(
        &self,
        l: &DMatrix<f64>,
        _df: DfMethod,
        level: f64,
    ) -> Result<Vec<crate::lmm::ContrastRow>, LmmError> {
        let (est, v) = self.linear(l);
        let z = qnorm(1.0 - (1.0 - level) / 2.0);
        Ok(est
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                let se = v[(i, i)].max(0.0).sqrt();
                crate::lmm::ContrastRow {
                    estimate: e,
                    std_error: se,
                    df: f64::INFINITY,
                    statistic: e / se,
                    p_value: 2.0 * pnorm_upper((e / se).abs()),
                    conf_low: e - z * se,
                    conf_high: e + z * se,
                }
            })
            .collect())
    }
    /// The Wald test of `L beta = 0`: `chi^2 = (L b)' (L V L')^-1 (L b)` on `q` df, reported as
    /// `F = chi^2 / q` on `(q, Inf)` (emmeans' `joint_tests`).
    fn f_test_of(&self, l: &DMatrix<f64>, _df: DfMethod) -> Result<crate::lmm::FTest, LmmError> {
        let (est, v) = self.linear(l);
        let q = est.len();
        let b = nalgebra::DVector::from_vec(est);
        let chisq = match v.clone().cholesky() {
            Some(c) => b.dot(&c.solve(&b)),
            None => f64::NAN,
        };
        Ok(crate::lmm::FTest {
            f_value: chisq / q as f64,
            num_df: q as f64,
            den_df: f64::INFINITY,
            p_value: pchisq_upper(chisq, q as f64),
            f_unscaled: chisq / q as f64,
        })
    }
    fn used_rows(&self) -> Option<&[usize]> {
        Some(&self.rows)
    }
    fn n_observations(&self) -> usize {
        self.fit.n_obs
    }
    fn fit_stats(&self) -> FitStats {
        FitStats {
            loglik: self.fit.loglik,
            aic: self.fit.aic,
            bic: self.fit.bic,
            reml_criterion: None,
            converged: self.fit.converged,
            singular: self.fit.singular,
        }
    }
    fn fit_warnings(&self) -> Vec<String> {
        let mut w = self.fit.warnings.clone();
        if let Some(od) = &self.fit.overdispersion {
            if od.ratio > 1.5 && od.p_value < 0.05 {
                w.push(format!(
                    "overdispersion: Pearson chi-square / df = {:.2} (p = {:.3e}); consider family = \"negative_binomial\"",
                    od.ratio, od.p_value
                ));
            }
        }
        w
    }
    fn variance_rows(&self) -> Vec<RandomEffectRow> {
        let f = &self.fit;
        let first = f
            .re_names
            .iter()
            .zip(&f.re_sds)
            .map(|(n, sd)| RandomEffectRow {
                group: f.group.clone(),
                term: n.clone(),
                sd: *sd,
            });
        let others = f.other_terms.iter().flat_map(|t| {
            t.names.iter().zip(&t.sds).map(|(n, sd)| RandomEffectRow {
                group: t.group.clone(),
                term: n.clone(),
                sd: *sd,
            })
        });
        first.chain(others).collect()
    }
    fn diagnostics(&self) -> Option<ModelDiagnostics> {
        None
    }
}

/// The outcome record of a fitted GLMM: [`super::outcomes::summarise_fit`] on the link
/// scale, then marginal means, contrasts and change contrasts on the response scale (see the
/// module documentation).
pub fn summarise_glmm(
    data: &OutcomeData,
    req: &ModelRequest,
    fit: &GlmmOutcomeFit,
) -> Result<OutcomeResult, OutcomeError> {
    let mut res = super::outcomes::summarise_fit(data, req, fit)?;
    let link = fit.family.link();
    for e in &mut res.emmeans {
        let eta = e.estimate;
        e.estimate = link.inverse(eta);
        e.std_error *= link.mu_eta(eta).abs();
        e.conf_low = link.inverse(e.conf_low);
        e.conf_high = link.inverse(e.conf_high);
    }
    let ratio = match fit.family {
        Family::Binomial(_) => "odds ratio",
        _ => "rate ratio",
    };
    for (rows, change) in [
        (&mut res.contrasts, false),
        (&mut res.change_contrasts, true),
    ] {
        for c in rows.iter_mut() {
            let r = c.estimate.exp();
            c.estimate = r;
            c.std_error *= r;
            c.conf_low = c.conf_low.exp();
            c.conf_high = c.conf_high.exp();
            c.cohens_d = None;
            c.d_conf_low = None;
            c.d_conf_high = None;
            let arms = format!(
                "{} / {}",
                data.intervention,
                data.arms.first().map_or("", |s| s)
            );
            c.contrast = if change {
                format!("{arms} (ratio of {ratio}s)")
            } else {
                format!("{arms} ({ratio})")
            };
        }
    }
    res.reml = false;
    res.df_method = "none".into();
    res.family = Some(format!("{} ({})", fit.fit.family, fit.fit.link));
    if let Some(th) = fit.fit.theta {
        res.theta = Some(th);
    }
    Ok(res)
}
