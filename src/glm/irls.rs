//! Iteratively reweighted least squares, as R's `stats::glm.fit`.
//!
//! Each iteration forms the working response `z = eta - offset + (y - mu) / mu.eta(eta)` and
//! working weights `w = sqrt(prior * mu.eta^2 / V(mu))`, solves the weighted least-squares
//! problem by a Householder QR of `w X`, and stops when the relative deviance change
//! `|dev - dev_old| / (|dev| + 0.1)` falls below `epsilon`. A non-finite deviance or an invalid
//! mean halves the step towards the previous coefficients, as glm.fit does.
use crate::stats::linalg::{least_squares, LinalgError};
use nalgebra::{DMatrix, DVector};

use super::{wald_row, z_crit, Family, GlmControl, GlmError, GlmFit};

/// How IRLS starts.
#[derive(Debug, Clone)]
pub(crate) enum Start {
    /// `family$initialize` (mustart from y).
    Family,
    /// A starting mean (R's `mustart`); eta = link(mu).
    Mu(Vec<f64>),
    /// A starting linear predictor (R's `etastart`).
    Eta(Vec<f64>),
}

/// Result of one IRLS run.
#[derive(Debug, Clone)]
pub(crate) struct IrlsOutcome {
    pub beta: DVector<f64>,
    /// Unscaled covariance `(X' W X)^-1`.
    pub cov: DMatrix<f64>,
    pub eta: Vec<f64>,
    pub mu: Vec<f64>,
    pub deviance: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// Checked inputs of one GLM fit (all vectors have one entry per design row).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GlmData<'a> {
    pub x: &'a DMatrix<f64>,
    pub y: &'a [f64],
    pub offset: &'a [f64],
    pub weights: &'a [f64],
}

/// Validates the inputs; returns owned offset and weights (zeros and ones when absent).
pub(crate) fn check_inputs(
    x: &DMatrix<f64>,
    terms: &[String],
    y: &[f64],
    offset: Option<&[f64]>,
    weights: Option<&[f64]>,
    family: Family,
) -> Result<(Vec<f64>, Vec<f64>), GlmError> {
    let n = x.nrows();
    if terms.len() != x.ncols() {
        return Err(GlmError::TermNames {
            expected: x.ncols(),
            found: terms.len(),
        });
    }
    if y.len() != n {
        return Err(GlmError::LengthMismatch {
            what: "response",
            expected: n,
            found: y.len(),
        });
    }
    let offset = match offset {
        Some(o) if o.len() != n => {
            return Err(GlmError::LengthMismatch {
                what: "offset",
                expected: n,
                found: o.len(),
            })
        }
        Some(o) => o.to_vec(),
        None => vec![0.0; n],
    };
    let weights = match weights {
        Some(w) if w.len() != n => {
            return Err(GlmError::LengthMismatch {
                what: "weights",
                expected: n,
                found: w.len(),
            })
        }
        Some(w) => w.to_vec(),
        None => vec![1.0; n],
    };
    if let Family::NegativeBinomial { theta } = family {
        if !(theta.is_finite() && theta > 0.0) {
            return Err(GlmError::InvalidTheta { value: theta });
        }
    }
    for i in 0..n {
        for j in 0..x.ncols() {
            let v = x[(i, j)];
            if !v.is_finite() {
                return Err(GlmError::NonFinite {
                    what: "design matrix",
                    row: i,
                    value: v,
                });
            }
        }
        let (yi, oi, wi) = (y[i], offset[i], weights[i]);
        for (what, v) in [("response", yi), ("offset", oi), ("weights", wi)] {
            if !v.is_finite() {
                return Err(GlmError::NonFinite {
                    what,
                    row: i,
                    value: v,
                });
            }
        }
        if wi < 0.0 {
            return Err(GlmError::NegativeWeight { row: i, value: wi });
        }
        family.check_response(i, yi, wi)?;
    }
    if !weights.iter().any(|&w| w > 0.0) {
        return Err(GlmError::Empty);
    }
    Ok((offset, weights))
}

fn deviance(family: Family, y: &[f64], mu: &[f64], w: &[f64]) -> f64 {
    y.iter()
        .zip(mu)
        .zip(w)
        .map(|((&yi, &mi), &wi)| family.dev_resid(yi, mi, wi))
        .sum()
}

fn predict(
    family: Family,
    x: &DMatrix<f64>,
    beta: &DVector<f64>,
    offset: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let xb = x * beta;
    let eta: Vec<f64> = xb.iter().zip(offset).map(|(a, o)| a + o).collect();
    let mu = eta.iter().map(|&e| family.linkinv(e)).collect();
    (eta, mu)
}

/// Weighted least squares `min || w (z - X b) ||` over the rows with `good[i]`; returns the
/// coefficients and the unscaled covariance `(R'R)^-1`.
fn wls(
    x: &DMatrix<f64>,
    terms: &[String],
    z: &[f64],
    w: &[f64],
    good: &[bool],
) -> Result<(DVector<f64>, DMatrix<f64>), GlmError> {
    let rows: Vec<usize> = (0..x.nrows()).filter(|&i| good[i]).collect();
    let p = x.ncols();
    if rows.len() < p {
        return Err(GlmError::RankDeficient {
            term: terms.get(rows.len()).cloned().unwrap_or_default(),
        });
    }
    let a = DMatrix::from_fn(rows.len(), p, |r, j| x[(rows[r], j)] * w[rows[r]]);
    let b = DVector::from_iterator(rows.len(), rows.iter().map(|&i| z[i] * w[i]));
    // The shared QR solve and rank rule (`glm.fit` calls the same `dqrdc2` as `lm.fit`).
    let ls = least_squares(&a, &b, terms).map_err(|e| GlmError::RankDeficient {
        term: match e {
            LinalgError::Collinear { name } => name,
            _ => terms.first().cloned().unwrap_or_default(),
        },
    })?;
    Ok((DVector::from_vec(ls.beta), ls.unscaled_cov))
}

/// Working response, weights and usable rows at the current eta/mu.
fn working(
    family: Family,
    data: GlmData<'_>,
    eta: &[f64],
    mu: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<bool>) {
    let n = data.y.len();
    let mut z = vec![0.0; n];
    let mut w = vec![0.0; n];
    let mut good = vec![false; n];
    for i in 0..n {
        let me = family.mu_eta(eta[i]);
        good[i] = data.weights[i] > 0.0 && me != 0.0;
        if good[i] {
            z[i] = eta[i] - data.offset[i] + (data.y[i] - mu[i]) / me;
            w[i] = (data.weights[i] * me * me / family.variance(mu[i])).sqrt();
        }
    }
    (z, w, good)
}

/// IRLS as `glm.fit`; `control.covariance_at_estimate` decides whether the covariance uses the
/// weights at the final estimates (fully converged) or those of the last iteration (as R).
pub(crate) fn irls(
    family: Family,
    data: GlmData<'_>,
    terms: &[String],
    control: &GlmControl,
    start: Start,
) -> Result<IrlsOutcome, GlmError> {
    let n = data.y.len();
    let diverged = |reason: String| GlmError::Diverged {
        family: family.name(),
        reason,
    };
    let mut eta: Vec<f64> = match start {
        Start::Family => (0..n)
            .map(|i| family.link(family.mustart(data.y[i], data.weights[i])))
            .collect(),
        Start::Mu(m) => m.iter().map(|&v| family.link(v)).collect(),
        Start::Eta(e) => e,
    };
    if eta.len() != n {
        return Err(GlmError::LengthMismatch {
            what: "starting values",
            expected: n,
            found: eta.len(),
        });
    }
    let mut mu: Vec<f64> = eta.iter().map(|&e| family.linkinv(e)).collect();
    if !mu.iter().all(|&m| family.valid_mu(m)) || !eta.iter().all(|e| e.is_finite()) {
        return Err(diverged(
            "cannot find valid starting values: please specify some".into(),
        ));
    }
    let mut devold = deviance(family, data.y, &mu, data.weights);
    let mut coefold: Option<DVector<f64>> = None;
    let mut beta = DVector::zeros(data.x.ncols());
    let mut cov = DMatrix::zeros(data.x.ncols(), data.x.ncols());
    let mut dev = devold;
    let mut converged = false;
    let mut iterations = 0;
    for iter in 1..=control.max_iter.max(1) {
        iterations = iter;
        let (z, w, good) = working(family, data, &eta, &mu);
        let (b, c) = wls(data.x, terms, &z, &w, &good)?;
        beta = b;
        cov = c;
        let (e2, m2) = predict(family, data.x, &beta, data.offset);
        eta = e2;
        mu = m2;
        dev = deviance(family, data.y, &mu, data.weights);
        // step-halving on a non-finite deviance or invalid mean (glm.fit)
        let mut halvings = 0;
        while !dev.is_finite() || !mu.iter().all(|&m| family.valid_mu(m)) {
            let Some(old) = coefold.as_ref() else {
                return Err(diverged(
                    "no valid set of coefficients has been found: please supply starting values"
                        .into(),
                ));
            };
            halvings += 1;
            if halvings > control.max_iter.max(1) {
                return Err(diverged("inner loop: cannot correct step size".into()));
            }
            beta = (&beta + old) * 0.5;
            let (e3, m3) = predict(family, data.x, &beta, data.offset);
            eta = e3;
            mu = m3;
            dev = deviance(family, data.y, &mu, data.weights);
        }
        if (dev - devold).abs() / (dev.abs() + 0.1) < control.epsilon {
            converged = true;
            break;
        }
        devold = dev;
        coefold = Some(beta.clone());
    }
    if control.covariance_at_estimate {
        let (_, w, good) = working(family, data, &eta, &mu);
        let zeros = vec![0.0; n];
        let (_, c) = wls(data.x, terms, &zeros, &w, &good)?;
        cov = c;
    }
    Ok(IrlsOutcome {
        beta,
        cov,
        eta,
        mu,
        deviance: dev,
        iterations,
        converged,
    })
}

/// Index of the `(Intercept)` column, if any.
pub(crate) fn intercept_column(terms: &[String]) -> Option<usize> {
    terms.iter().position(|t| t == "(Intercept)")
}

/// Null deviance as R's `glm`: the weighted-mean model when there is no offset, else an
/// intercept-only IRLS fit with the offset; `linkinv(offset)` without an intercept.
pub(crate) fn null_deviance(
    family: Family,
    data: GlmData<'_>,
    terms: &[String],
    control: &GlmControl,
    start: Start,
) -> Result<f64, GlmError> {
    let has_offset = data.offset.iter().any(|&o| o != 0.0);
    match intercept_column(terms) {
        Some(j) if has_offset => {
            let x1 = DMatrix::from_fn(data.x.nrows(), 1, |i, _| data.x[(i, j)]);
            let t1 = vec!["(Intercept)".to_string()];
            let d1 = GlmData { x: &x1, ..data };
            Ok(irls(family, d1, &t1, control, start)?.deviance)
        }
        Some(_) => {
            let sw: f64 = data.weights.iter().sum();
            let m = data
                .weights
                .iter()
                .zip(data.y)
                .map(|(w, y)| w * y)
                .sum::<f64>()
                / sw;
            let mu = vec![m; data.y.len()];
            Ok(deviance(family, data.y, &mu, data.weights))
        }
        None => {
            let mu: Vec<f64> = data.offset.iter().map(|&o| family.linkinv(o)).collect();
            Ok(deviance(family, data.y, &mu, data.weights))
        }
    }
}

/// Builds the [`GlmFit`] summary from an IRLS outcome.
pub(crate) fn summarize(
    family: Family,
    data: GlmData<'_>,
    terms: &[String],
    out: &IrlsOutcome,
    null_dev: f64,
) -> Result<GlmFit, GlmError> {
    let z = z_crit(0.95)?;
    let coefficients = terms
        .iter()
        .enumerate()
        .map(|(j, t)| wald_row(t, out.beta[j], out.cov[(j, j)].max(0.0).sqrt(), z))
        .collect();
    let nobs = data.weights.iter().filter(|&&w| w > 0.0).count();
    let rank = terms.len();
    let has_intercept = intercept_column(terms).is_some();
    let loglik: f64 = (0..data.y.len())
        .map(|i| family.loglik_obs(data.y[i], out.mu[i], data.weights[i]))
        .sum();
    let pearson_chi2 = (0..data.y.len())
        .filter(|&i| data.weights[i] > 0.0)
        .map(|i| {
            let r = data.y[i] - out.mu[i];
            data.weights[i] * r * r / family.variance(out.mu[i])
        })
        .sum();
    let mut warnings = Vec::new();
    if !out.converged {
        warnings.push("glm.fit: algorithm did not converge".to_string());
    }
    let eps10 = 10.0 * f64::EPSILON;
    let good_mu = || {
        out.mu
            .iter()
            .zip(data.weights)
            .filter(|(_, &w)| w > 0.0)
            .map(|(&m, _)| m)
    };
    match family {
        Family::Binomial => {
            if good_mu().any(|m| m > 1.0 - eps10 || m < eps10) {
                warnings.push("glm.fit: fitted probabilities numerically 0 or 1 occurred".into());
            }
        }
        _ => {
            if good_mu().any(|m| m < eps10) {
                warnings.push("glm.fit: fitted rates numerically 0 occurred".into());
            }
        }
    }
    Ok(GlmFit {
        family,
        terms: terms.to_vec(),
        coefficients,
        covariance: out.cov.clone(),
        fitted: out.mu.clone(),
        linear_predictor: out.eta.clone(),
        deviance: out.deviance,
        null_deviance: null_dev,
        df_residual: nobs.saturating_sub(rank),
        df_null: nobs.saturating_sub(usize::from(has_intercept)),
        nobs,
        loglik,
        aic: -2.0 * loglik + 2.0 * rank as f64,
        bic: -2.0 * loglik + (nobs as f64).ln() * rank as f64,
        pearson_chi2,
        iterations: out.iterations,
        converged: out.converged,
        warnings,
    })
}

/// Fits a GLM with dispersion 1 by IRLS as R's `glm(y ~ X - 1 + offset(offset), family,
/// weights)` (`stats::glm.fit`): coefficients with Wald z tests and `confint.default`
/// intervals, deviance, null deviance, logLik, AIC, residual df.
///
/// `terms` are R's names of the columns of `x` (`(Intercept)` marks the intercept, which
/// decides how the null deviance is computed). `offset` defaults to 0, `weights` to 1.
pub fn fit_glm(
    x: &DMatrix<f64>,
    terms: &[String],
    y: &[f64],
    offset: Option<&[f64]>,
    weights: Option<&[f64]>,
    family: Family,
    control: &GlmControl,
) -> Result<GlmFit, GlmError> {
    let (offset, weights) = check_inputs(x, terms, y, offset, weights, family)?;
    let data = GlmData {
        x,
        y,
        offset: &offset,
        weights: &weights,
    };
    let out = irls(family, data, terms, control, Start::Family)?;
    let null_dev = null_deviance(family, data, terms, control, Start::Mu(out.mu.clone()))?;
    summarize(family, data, terms, &out, null_dev)
}
