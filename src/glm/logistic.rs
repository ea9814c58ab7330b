//! Logistic regression (binomial, logit link), odds ratios and absolute risk differences.
use nalgebra::{DMatrix, DVector};
use serde::Serialize;

use super::{fit_glm, z_crit, Family, GlmControl, GlmError, GlmFit};
use crate::stats::distributions::p_two_sided_normal;

/// Logistic regression as R's `glm(y ~ ..., family = binomial)`; `y` holds 0/1 outcomes (or
/// proportions with `weights` the numbers of trials).
pub fn fit_logistic(
    x: &DMatrix<f64>,
    terms: &[String],
    y: &[f64],
    weights: Option<&[f64]>,
    control: &GlmControl,
) -> Result<GlmFit, GlmError> {
    fit_glm(x, terms, y, None, weights, Family::Binomial, control)
}

/// Unadjusted absolute risk difference between two arms with a Wald interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskDifference {
    pub p_intervention: f64,
    pub p_reference: f64,
    pub n_intervention: usize,
    pub n_reference: usize,
    /// `p_intervention - p_reference`.
    pub estimate: f64,
    /// `sqrt(p1 (1 - p1) / n1 + p0 (1 - p0) / n0)`.
    pub std_error: f64,
    pub conf_low: f64,
    pub conf_high: f64,
    /// Wald z test of a zero difference.
    pub statistic: f64,
    pub p_value: f64,
    pub level: f64,
}

/// Risk difference `P(event | intervention) - P(event | reference)` in observed proportions,
/// Wald SE `sqrt(p1 (1 - p1) / n1 + p0 (1 - p0) / n0)` and interval `+/- qnorm((1 + level) / 2)
/// SE` (the textbook unpooled Wald interval; e.g. Agresti 2013, Categorical Data Analysis,
/// section 3.1).
pub fn risk_difference(
    event: &[bool],
    intervention: &[bool],
    level: f64,
) -> Result<RiskDifference, GlmError> {
    if event.len() != intervention.len() {
        return Err(GlmError::LengthMismatch {
            what: "arm indicator",
            expected: event.len(),
            found: intervention.len(),
        });
    }
    let z = z_crit(level)?;
    let (mut n1, mut e1, mut n0, mut e0) = (0usize, 0usize, 0usize, 0usize);
    for (&ev, &arm) in event.iter().zip(intervention) {
        if arm {
            n1 += 1;
            e1 += usize::from(ev);
        } else {
            n0 += 1;
            e0 += usize::from(ev);
        }
    }
    if n1 == 0 || n0 == 0 {
        return Err(GlmError::InvalidInput(format!(
            "risk difference needs participants in both arms (intervention {n1}, reference {n0})"
        )));
    }
    let p1 = e1 as f64 / n1 as f64;
    let p0 = e0 as f64 / n0 as f64;
    let est = p1 - p0;
    let se = (p1 * (1.0 - p1) / n1 as f64 + p0 * (1.0 - p0) / n0 as f64).sqrt();
    let stat = est / se;
    Ok(RiskDifference {
        p_intervention: p1,
        p_reference: p0,
        n_intervention: n1,
        n_reference: n0,
        estimate: est,
        std_error: se,
        conf_low: est - z * se,
        conf_high: est + z * se,
        statistic: stat,
        p_value: if se > 0.0 {
            p_two_sided_normal(stat)
        } else {
            f64::NAN
        },
        level,
    })
}

/// Covariate-adjusted (standardized) risk difference by g-computation: the mean predicted
/// probability with everyone's `term` column set to 1 minus with it set to 0 (point estimate;
/// Snowden, Rose & Mortimer 2011, Am J Epidemiol 173).
pub fn standardized_risk_difference(
    fit: &GlmFit,
    x: &DMatrix<f64>,
    term: &str,
) -> Result<f64, GlmError> {
    if fit.family != Family::Binomial {
        return Err(GlmError::InvalidInput(format!(
            "standardized risk difference needs a binomial fit, got {}",
            fit.family.name()
        )));
    }
    let j = fit
        .terms
        .iter()
        .position(|t| t == term)
        .ok_or_else(|| GlmError::UnknownTerm {
            term: term.to_string(),
            available: fit.terms.join(", "),
        })?;
    if x.ncols() != fit.terms.len() {
        return Err(GlmError::TermNames {
            expected: x.ncols(),
            found: fit.terms.len(),
        });
    }
    if x.nrows() == 0 {
        return Err(GlmError::Empty);
    }
    let beta = DVector::from_iterator(
        fit.coefficients.len(),
        fit.coefficients.iter().map(|c| c.estimate),
    );
    let mean_prob = |value: f64| {
        let mut xs = x.clone();
        xs.column_mut(j).fill(value);
        let eta = &xs * &beta;
        eta.iter()
            .map(|&e| Family::Binomial.linkinv(e))
            .sum::<f64>()
            / x.nrows() as f64
    };
    Ok(mean_prob(1.0) - mean_prob(0.0))
}
