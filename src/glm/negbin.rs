//! Negative binomial regression with theta by maximum likelihood, as `MASS::glm.nb`
//! (Venables & Ripley 2002, Modern Applied Statistics with S, section 7.4).
//!
//! The algorithm alternates: a Poisson fit gives starting means; then, until
//! `|Lm0 - Lm| / d1 + |del| / d2 <= epsilon` (with `d1 = sqrt(2 max(1, df_residual))`,
//! `d2 = 1`, `Lm` the log-likelihood and `del` the change in theta), an IRLS fit of the
//! coefficients at fixed theta (started from the previous means) and a `theta.ml` Newton
//! update of theta (computed, as MASS does, from the means before that IRLS fit).
use nalgebra::DMatrix;
use serde::Serialize;

use super::irls::{check_inputs, irls, null_deviance, summarize, GlmData, Start};
use super::{Family, GlmControl, GlmError, GlmFit, RatioEstimate};
use crate::stats::distributions::{digamma, trigamma};

/// Theta from `theta_ml`, with its standard error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThetaEstimate {
    pub theta: f64,
    /// `sqrt(1 / information)`.
    pub std_error: f64,
    pub iterations: usize,
    /// MASS's warnings ("estimate truncated at zero", "iteration limit reached").
    pub warnings: Vec<String>,
}

fn theta_score(th: f64, y: &[f64], mu: &[f64], w: &[f64]) -> f64 {
    y.iter()
        .zip(mu)
        .zip(w)
        .map(|((&yi, &mi), &wi)| {
            wi * (digamma(th + yi) - digamma(th) + th.ln() + 1.0
                - (th + mi).ln()
                - (yi + th) / (mi + th))
        })
        .sum()
}

fn theta_info(th: f64, y: &[f64], mu: &[f64], w: &[f64]) -> f64 {
    y.iter()
        .zip(mu)
        .zip(w)
        .map(|((&yi, &mi), &wi)| {
            wi * (-trigamma(th + yi) + trigamma(th) - 1.0 / th + 2.0 / (mi + th)
                - (yi + th) / ((mi + th) * (mi + th)))
        })
        .sum()
}

/// Maximum-likelihood theta for fixed means `mu`, as `MASS::theta.ml`: Newton-Raphson on the
/// score from the moment estimate `sum(w) / sum(w (y / mu - 1)^2)`, at most `limit - 1`
/// steps, stopping when the step is below `eps`. The SE is `sqrt(1 / information)`, evaluated
/// (as MASS does) at the theta before the last step unless `se_at_estimate`.
pub fn theta_ml(
    y: &[f64],
    mu: &[f64],
    weights: &[f64],
    limit: usize,
    eps: f64,
    se_at_estimate: bool,
) -> Result<ThetaEstimate, GlmError> {
    if y.len() != mu.len() || y.len() != weights.len() {
        return Err(GlmError::LengthMismatch {
            what: "theta.ml inputs",
            expected: y.len(),
            found: mu.len().min(weights.len()),
        });
    }
    let n: f64 = weights.iter().sum();
    let ss: f64 = y
        .iter()
        .zip(mu)
        .zip(weights)
        .map(|((&yi, &mi), &wi)| wi * (yi / mi - 1.0).powi(2))
        .sum();
    let mut t0 = n / ss;
    if !t0.is_finite() {
        return Err(GlmError::Diverged {
            family: "negative binomial",
            reason: format!("theta.ml: no starting value (sum of squared relative residuals {ss})"),
        });
    }
    let mut it = 0usize;
    let mut del = 1.0f64;
    let mut info = f64::NAN;
    let mut warnings = Vec::new();
    loop {
        it += 1;
        if !(it < limit && del.abs() > eps) {
            break;
        }
        t0 = t0.abs();
        info = theta_info(t0, y, mu, weights);
        del = theta_score(t0, y, mu, weights) / info;
        t0 += del;
        if !t0.is_finite() {
            return Err(GlmError::Diverged {
                family: "negative binomial",
                reason: "theta.ml: Newton step gave a non-finite theta".into(),
            });
        }
    }
    if t0 < 0.0 {
        t0 = 0.0;
        warnings.push("estimate truncated at zero".to_string());
    }
    if it == limit {
        warnings.push("iteration limit reached".to_string());
    }
    if se_at_estimate || info.is_nan() {
        info = theta_info(t0, y, mu, weights);
    }
    Ok(ThetaEstimate {
        theta: t0,
        std_error: (1.0 / info).sqrt(),
        iterations: it,
        warnings,
    })
}

/// MASS's `loglik(n, th, mu, y, w)`.
fn nb_loglik(th: f64, mu: &[f64], y: &[f64], w: &[f64]) -> f64 {
    let fam = Family::NegativeBinomial { theta: th };
    (0..y.len())
        .map(|i| fam.loglik_obs(y[i], mu[i], w[i]))
        .sum()
}

/// A `glm.nb` fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NegBinFit {
    /// The coefficient fit at the final theta (family carries theta); its `loglik` is the
    /// negative-binomial log-likelihood, its `aic` does not count theta.
    pub glm: GlmFit,
    pub theta: f64,
    /// SE of theta from `theta.ml` (MASS's `SE.theta`).
    pub theta_se: f64,
    /// `2 logLik` (MASS's `twologlik`).
    pub twologlik: f64,
    /// `-2 logLik + 2 rank + 2` (theta counted), MASS's `aic`.
    pub aic: f64,
    /// `-2 logLik + log(nobs) (rank + 1)` (theta counted, as R's `BIC` of a negbin fit).
    pub bic: f64,
    /// Number of alternations (MASS's `iter`).
    pub outer_iterations: usize,
    pub converged: bool,
    pub warnings: Vec<String>,
}

impl NegBinFit {
    /// Rate ratio `exp(beta_term)` with Wald interval at `level` and z test.
    pub fn rate_ratio(&self, term: &str, level: f64) -> Result<RatioEstimate, GlmError> {
        self.glm.exp_coefficient(term, level)
    }
}

/// Negative binomial GLM (log link) with theta by ML, as `MASS::glm.nb(y ~ ... +
/// offset(offset))`. Coefficient SEs use dispersion 1 at the final theta (summary.negbin).
pub fn fit_negbin(
    x: &DMatrix<f64>,
    terms: &[String],
    y: &[f64],
    offset: Option<&[f64]>,
    weights: Option<&[f64]>,
    control: &GlmControl,
) -> Result<NegBinFit, GlmError> {
    let (offset, weights) = check_inputs(x, terms, y, offset, weights, Family::Poisson)?;
    let data = GlmData {
        x,
        y,
        offset: &offset,
        weights: &weights,
    };
    let se_at = control.covariance_at_estimate;
    let mut warnings = Vec::new();
    let mut fit = irls(Family::Poisson, data, terms, control, Start::Family)?;
    let mut mu = fit.mu.clone();
    let nobs = weights.iter().filter(|&&w| w > 0.0).count();
    let df_res = nobs.saturating_sub(terms.len());
    let mut th = theta_ml(
        y,
        &mu,
        &weights,
        control.theta_max_iter,
        control.theta_epsilon,
        se_at,
    )?;
    let d1 = (2.0 * (df_res.max(1) as f64)).sqrt();
    let d2 = 1.0;
    let mut del = 1.0f64;
    let mut lm = nb_loglik(th.theta, &mu, y, &weights);
    let mut lm0 = lm + 2.0 * d1;
    let mut iter = 0usize;
    let mut fit_theta = th.theta;
    loop {
        iter += 1;
        if !(iter <= control.max_iter && ((lm0 - lm).abs() / d1 + del.abs() / d2) > control.epsilon)
        {
            break;
        }
        let fam = Family::NegativeBinomial { theta: th.theta };
        let eta: Vec<f64> = mu.iter().map(|&m| fam.link(m)).collect();
        fit = irls(fam, data, terms, control, Start::Eta(eta))?;
        fit_theta = th.theta;
        let t0 = th.theta;
        th = theta_ml(
            y,
            &mu,
            &weights,
            control.theta_max_iter,
            control.theta_epsilon,
            se_at,
        )?;
        if th.theta <= 0.0 || !th.theta.is_finite() {
            return Err(GlmError::Diverged {
                family: "negative binomial",
                reason: format!("theta.ml gave theta = {}", th.theta),
            });
        }
        mu = fit.mu.clone();
        del = t0 - th.theta;
        lm0 = lm;
        lm = nb_loglik(th.theta, &mu, y, &weights);
    }
    let converged = iter <= control.max_iter && fit.converged;
    if iter > control.max_iter {
        warnings.push("alternation limit reached".to_string());
    }
    warnings.extend(th.warnings.iter().cloned());
    let mut theta_se = th.std_error;
    if se_at {
        // information at the final theta and the final means
        theta_se = (1.0 / theta_info(th.theta, y, &mu, &weights)).sqrt();
    }
    let fam = Family::NegativeBinomial { theta: th.theta };
    let null_dev = null_deviance(fam, data, terms, control, Start::Family)?;
    // the deviance and covariance are those of the last IRLS fit (at `fit_theta`)
    let mut glm = summarize(
        Family::NegativeBinomial { theta: fit_theta },
        data,
        terms,
        &fit,
        null_dev,
    )?;
    glm.family = fam;
    glm.loglik = lm;
    glm.aic = -2.0 * lm + 2.0 * terms.len() as f64;
    glm.bic = -2.0 * lm + (glm.nobs as f64).ln() * terms.len() as f64;
    let bic = -2.0 * lm + (glm.nobs as f64).ln() * (terms.len() + 1) as f64;
    glm.converged = converged;
    Ok(NegBinFit {
        theta: th.theta,
        theta_se,
        twologlik: 2.0 * lm,
        aic: -2.0 * lm + 2.0 * terms.len() as f64 + 2.0,
        bic,
        outer_iterations: iter,
        converged,
        warnings,
        glm,
    })
}
