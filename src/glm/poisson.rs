//! Poisson regression (log link) and overdispersion checks.
use nalgebra::DMatrix;
use serde::Serialize;

use super::{fit_glm, Family, GlmControl, GlmError, GlmFit};
use crate::stats::distributions::{pchisq_upper, pnorm_upper};

/// Poisson GLM with log link as R's `glm(y ~ ..., family = poisson, offset = offset)`.
pub fn fit_poisson(
    x: &DMatrix<f64>,
    terms: &[String],
    y: &[f64],
    offset: Option<&[f64]>,
    control: &GlmControl,
) -> Result<GlmFit, GlmError> {
    fit_glm(x, terms, y, offset, None, Family::Poisson, control)
}

/// Overdispersion checks of a Poisson fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overdispersion {
    /// Pearson chi-square `sum((y - mu)^2 / mu)`.
    pub pearson_chi2: f64,
    pub df_residual: usize,
    /// Pearson chi-square / residual df (1 under the Poisson model; R's quasipoisson
    /// dispersion estimate).
    pub dispersion: f64,
    /// Upper-tail chi-square p-value of the Pearson statistic on the residual df.
    pub pearson_p_value: f64,
    /// Cameron & Trivedi (1990) regression test as `AER::dispersiontest(fit)` (trafo = NULL,
    /// alternative "greater"): `aux = ((y - mu)^2 - y) / mu`, `z = sqrt(n) mean(aux) / sd(aux)`.
    pub cameron_trivedi_z: f64,
    /// Estimated dispersion `mean(aux) + 1` of the Cameron-Trivedi test.
    pub cameron_trivedi_dispersion: f64,
    /// One-sided p-value `P(Z > z)`.
    pub cameron_trivedi_p_value: f64,
}

/// Overdispersion checks for a Poisson fit of `y` (Pearson chi-square / df and the
/// Cameron-Trivedi test).
pub fn overdispersion(fit: &GlmFit, y: &[f64]) -> Result<Overdispersion, GlmError> {
    if fit.family != Family::Poisson {
        return Err(GlmError::InvalidInput(format!(
            "overdispersion check needs a Poisson fit, got {}",
            fit.family.name()
        )));
    }
    if y.len() != fit.fitted.len() {
        return Err(GlmError::LengthMismatch {
            what: "response",
            expected: fit.fitted.len(),
            found: y.len(),
        });
    }
    let df = fit.df_residual;
    let dispersion = if df > 0 {
        fit.pearson_chi2 / df as f64
    } else {
        f64::NAN
    };
    let aux: Vec<f64> = y
        .iter()
        .zip(&fit.fitted)
        .map(|(&yi, &mi)| ((yi - mi).powi(2) - yi) / mi)
        .collect();
    let n = aux.len() as f64;
    let mean = aux.iter().sum::<f64>() / n;
    let var = aux.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let z = n.sqrt() * mean / var.sqrt();
    Ok(Overdispersion {
        pearson_chi2: fit.pearson_chi2,
        df_residual: df,
        dispersion,
        pearson_p_value: pchisq_upper(fit.pearson_chi2, df as f64),
        cameron_trivedi_z: z,
        cameron_trivedi_dispersion: mean + 1.0,
        cameron_trivedi_p_value: pnorm_upper(z),
    })
}
