//! Ordinary least squares as R's `lm` (Householder QR, `lm.fit`): coefficients, their
//! covariance `s^2 (X'X)^-1`, residual SD and df. Rank deficiency is an error (lm would drop
//! the aliased column with `NA`). Used by the site comparison (per-site fallback, case-mix
//! model) and the change-score mediation regressions.
use nalgebra::{DMatrix, DVector};

/// Why a least-squares fit could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LmError {
    /// No residual degrees of freedom.
    #[error("{n} observations for {p} coefficients")]
    TooFewRows { n: usize, p: usize },
    /// Column `name` is (numerically) a linear combination of the earlier ones.
    #[error("column `{name}` is a linear combination of the others")]
    Collinear { name: String },
}

/// An `lm` fit on a row-major design.
#[derive(Debug, Clone, PartialEq)]
pub struct OlsXy {
    pub beta: Vec<f64>,
    /// `vcov`, p x p.
    pub vcov: DMatrix<f64>,
    pub sigma: f64,
    pub df_residual: usize,
    pub residuals: Vec<f64>,
}

/// Least squares of `y` on the row-major `n x p` matrix `x` (Householder QR, as `lm`); an error
/// when there are no residual df or a column is (numerically) collinear with earlier ones.
pub fn ols_xy(x: &[f64], y: &[f64], names: &[String]) -> Result<OlsXy, LmError> {
    let n = y.len();
    let p = names.len();
    if n <= p {
        return Err(LmError::TooFewRows { n, p });
    }
    let xm = DMatrix::from_row_slice(n, p, x);
    let qr = xm.clone().qr();
    let r = qr.r();
    let qty = qr.q().transpose() * DVector::from_column_slice(y);
    let scale = (0..p).map(|j| r[(j, j)].abs()).fold(0.0, f64::max);
    for j in 0..p {
        // lm's tolerance 1e-7 on the diagonal of R; NaN counts as collinear.
        if r[(j, j)].abs().partial_cmp(&(1e-7 * scale)) != Some(std::cmp::Ordering::Greater) {
            return Err(LmError::Collinear {
                name: names.get(j).cloned().unwrap_or_default(),
            });
        }
    }
    let mut beta = vec![0.0; p];
    for i in (0..p).rev() {
        let mut s = qty[i];
        for j in (i + 1)..p {
            s -= r[(i, j)] * beta[j];
        }
        beta[i] = s / r[(i, i)];
    }
    let fitted = &xm * DVector::from_column_slice(&beta);
    let residuals: Vec<f64> = (0..n).map(|i| y[i] - fitted[i]).collect();
    let rss: f64 = residuals.iter().map(|e| e * e).sum();
    let df = n - p;
    let s2 = rss / df as f64;
    let mut rinv = DMatrix::<f64>::zeros(p, p);
    for c in 0..p {
        for i in (0..p).rev() {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for j in (i + 1)..p {
                s -= r[(i, j)] * rinv[(j, c)];
            }
            rinv[(i, c)] = s / r[(i, i)];
        }
    }
    let vcov = (&rinv * rinv.transpose()) * s2;
    Ok(OlsXy {
        beta,
        vcov,
        sigma: s2.sqrt(),
        df_residual: df,
        residuals,
    })
}
