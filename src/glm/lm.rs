//! Ordinary least squares as R's `lm` (`lm.fit`): coefficients, their covariance
//! `s^2 (X'X)^-1`, residual SD and df, on the shared QR solve
//! [`crate::stats::linalg::least_squares`] (its rank rule; rank deficiency is an error where
//! lm would drop the aliased column with `NA`). Used by the site comparison (per-site
//! fallback, case-mix model) and the mediation regressions.
use nalgebra::{DMatrix, DVector};

use crate::stats::linalg::{least_squares, LinalgError};

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
pub fn ols_xy(x: &[f64], y: &[f64], names: &[String]) -> Result<OlsXy, LinalgError> {
    let n = y.len();
    let p = names.len();
    if n <= p {
        return Err(LinalgError::TooFewRows { n, p });
    }
    let xm = DMatrix::from_row_slice(n, p, x);
    let ls = least_squares(&xm, &DVector::from_column_slice(y), names)?;
    let df = n - p;
    let s2 = ls.rss() / df as f64;
    Ok(OlsXy {
        vcov: ls.unscaled_cov * s2,
        beta: ls.beta,
        sigma: s2.sqrt(),
        df_residual: df,
        residuals: ls.residuals,
    })
}
