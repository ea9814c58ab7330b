//! Logistic regression imputation of a two-level factor, `mice.impute.logreg`: the augmented
//! data ([`super::augment`]), `glm.fit(family = quasibinomial, weights = w)` on the observed
//! cases, `beta* = beta + t(chol(cov.unscaled)) z`, and a missing case becomes the second level
//! when `runif() <= plogis(x beta*)`.
use nalgebra::{DMatrix, DVector};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::augment::augment;
use super::design::{lower_cholesky, with_intercept, xtx_inverse};

/// Weighted logistic regression by IRLS (glm.fit's start `mu = (w y + 0.5) / (w + 1)`,
/// convergence `|dev - dev_old| / (|dev| + 0.1) < 1e-8`, at most 25 iterations): the
/// coefficients and `(X' W X)^-1`.
pub fn fit_weighted_logistic(
    x: &DMatrix<f64>,
    y: &[f64],
    w: &[f64],
) -> (DVector<f64>, DMatrix<f64>) {
    let n = x.nrows();
    let mut mu: Vec<f64> = (0..n).map(|i| (w[i] * y[i] + 0.5) / (w[i] + 1.0)).collect();
    let mut eta: Vec<f64> = mu.iter().map(|m| (m / (1.0 - m)).ln()).collect();
    let mut beta = DVector::zeros(x.ncols());
    let mut dev_old = f64::INFINITY;
    let mut xtwx = DMatrix::identity(x.ncols(), x.ncols());
    for _ in 0..25 {
        let mut xw = x.clone();
        let mut z = DVector::zeros(n);
        for i in 0..n {
            let var = (mu[i] * (1.0 - mu[i])).max(1e-300);
            z[i] = eta[i] + (y[i] - mu[i]) / var;
            let wi = w[i] * var;
            for c in 0..x.ncols() {
                xw[(i, c)] *= wi;
            }
        }
        xtwx = xw.transpose() * x;
        beta = xtx_inverse(&xtwx) * (xw.transpose() * z);
        let e = x * &beta;
        let mut dev = 0.0;
        for i in 0..n {
            eta[i] = e[i];
            mu[i] = (1.0 / (1.0 + (-e[i]).exp())).clamp(1e-15, 1.0 - 1e-15);
            let ll = y[i] * mu[i].ln() + (1.0 - y[i]) * (1.0 - mu[i]).ln();
            dev -= 2.0 * w[i] * ll;
        }
        let done = (dev - dev_old).abs() / (dev.abs() + 0.1) < 1e-8;
        dev_old = dev;
        if done {
            break;
        }
    }
    // cov.unscaled at the final mu.
    let mut xw = x.clone();
    for i in 0..n {
        let wi = w[i] * mu[i] * (1.0 - mu[i]);
        for c in 0..x.ncols() {
            xw[(i, c)] *= wi;
        }
    }
    if xw.iter().all(|v| v.is_finite()) {
        xtwx = xw.transpose() * x;
    }
    (beta, xtx_inverse(&xtwx))
}

/// Imputed codes (0 or 1) for the rows with `ry[i] == false`, in row order; `y` holds the
/// codes 0/1 of the observed rows.
pub fn impute(y: &[f64], ry: &[bool], x: &DMatrix<f64>, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = y.len();
    let aug = augment(y, ry, x);
    let xo = with_intercept(&aug.x, &aug.ry);
    let yo: Vec<f64> = (0..aug.y.len())
        .filter(|&i| aug.ry[i])
        .map(|i| aug.y[i])
        .collect();
    let wo: Vec<f64> = (0..aug.y.len())
        .filter(|&i| aug.ry[i])
        .map(|i| aug.w[i])
        .collect();
    let (beta, cov) = fit_weighted_logistic(&xo, &yo, &wo);
    let z = DVector::from_iterator(
        beta.len(),
        (0..beta.len()).map(|_| StandardNormal.sample(rng)),
    );
    let star = &beta + lower_cholesky(&cov) * z;
    let miss: Vec<bool> = (0..aug.y.len()).map(|i| i < n && !ry[i]).collect();
    let xm = with_intercept(&aug.x, &miss);
    let eta = &xm * star;
    eta.iter()
        .map(|e| {
            let p = 1.0 / (1.0 + (-e).exp());
            let u: f64 = rng.random();
            if u <= p {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}
