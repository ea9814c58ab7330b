//! Ordinary least squares by Householder QR, with what `summary(lm(...))` reports:
//! coefficients, standard errors, t, p, residual SD, R^2 and the coefficient covariance.
#![allow(clippy::needless_range_loop)] // index loops over paired matrix/vector entries
use crate::glm::lm::ols_xy;
use crate::stats::distributions::{p_two_sided_t, qt};
use crate::stats::linalg::LinalgError;

/// One `lm` fit.
#[derive(Debug, Clone, PartialEq)]
pub struct OlsFit {
    /// Column names (`(Intercept)` first when present).
    pub names: Vec<String>,
    pub coef: Vec<f64>,
    pub se: Vec<f64>,
    /// `vcov(fit)`, p x p row-major.
    pub vcov: Vec<f64>,
    pub sigma: f64,
    pub df_residual: usize,
    pub r_squared: f64,
    pub n: usize,
}

impl OlsFit {
    /// Index of a coefficient by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
    /// Estimate and SE of a coefficient.
    pub fn get(&self, name: &str) -> Option<(f64, f64)> {
        let i = self.index(name)?;
        Some((*self.coef.get(i)?, *self.se.get(i)?))
    }
    /// Covariance of two coefficients.
    pub fn cov(&self, a: &str, b: &str) -> Option<f64> {
        let (i, j) = (self.index(a)?, self.index(b)?);
        self.vcov.get(i * self.names.len() + j).copied()
    }
    /// t statistic, two-sided p and `level` confidence limits of coefficient `i`.
    pub fn t_test(&self, i: usize, level: f64) -> Option<(f64, f64, f64, f64)> {
        let (b, s) = (*self.coef.get(i)?, *self.se.get(i)?);
        let t = b / s;
        let df = self.df_residual as f64;
        if df.is_nan() || df <= 0.0 {
            return None;
        }
        let p = p_two_sided_t(t, df);
        let q = qt(1.0 - (1.0 - level) / 2.0, df);
        Some((t, p, b - q * s, b + q * s))
    }
}

/// Least squares of `y` on the columns `x` (each of length n) plus an intercept, as
/// `lm(y ~ x1 + ... )`. Rank deficiency is an error (lm would drop the column with `NA`).
pub fn ols(y: &[f64], x: &[(&str, &[f64])]) -> Result<OlsFit, LinalgError> {
    let n = y.len();
    let p = x.len() + 1;
    if n <= p {
        return Err(LinalgError::TooFewRows { n, p });
    }
    let mut names = Vec::with_capacity(p);
    names.push("(Intercept)".to_string());
    names.extend(x.iter().map(|(nm, _)| nm.to_string()));
    // Row-major design with the intercept first, solved by the shared lm (QR) routine.
    let mut xr = Vec::with_capacity(n * p);
    for i in 0..n {
        xr.push(1.0);
        for (_, c) in x {
            xr.push(c.get(i).copied().unwrap_or(f64::NAN));
        }
    }
    let fit = ols_xy(&xr, y, &names)?;
    let beta = fit.beta;
    let df = fit.df_residual;
    let sigma2 = fit.sigma * fit.sigma;
    let rss: f64 = fit.residuals.iter().map(|e| e * e).sum();
    let mut vcov = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            vcov[i * p + j] = fit.vcov[(i, j)];
        }
    }
    let se = (0..p).map(|i| vcov[i * p + i].max(0.0).sqrt()).collect();
    let ybar = y.iter().sum::<f64>() / n as f64;
    let tss: f64 = y.iter().map(|v| (v - ybar).powi(2)).sum();
    Ok(OlsFit {
        names,
        coef: beta,
        se,
        vcov,
        sigma: sigma2.sqrt(),
        df_residual: df,
        r_squared: if tss > 0.0 { 1.0 - rss / tss } else { f64::NAN },
        n,
    })
}

/// The coefficients of [`ols`] alone (the same QR and bits), for bootstrap refits that keep
/// only estimates: `(Intercept)` first, then the columns of `x` in order.
pub fn ols_coefficients(y: &[f64], x: &[&[f64]]) -> Result<Vec<f64>, LinalgError> {
    let n = y.len();
    let p = x.len() + 1;
    if n <= p {
        return Err(LinalgError::TooFewRows { n, p });
    }
    let design = nalgebra::DMatrix::from_fn(n, p, |i, j| {
        if j == 0 {
            1.0
        } else {
            x[j - 1].get(i).copied().unwrap_or(f64::NAN)
        }
    });
    crate::stats::linalg::least_squares_coefficients(
        design,
        &nalgebra::DVector::from_column_slice(y),
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line_and_collinearity() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let z = [0.3, -0.1, 0.4, 0.0, 0.2];
        let y: Vec<f64> = x.iter().zip(&z).map(|(a, b)| 2.0 + 3.0 * a - b).collect();
        let f = ols(&y, &[("x", &x), ("z", &z)]).unwrap();
        assert!((f.coef[0] - 2.0).abs() < 1e-12);
        assert!((f.coef[1] - 3.0).abs() < 1e-12);
        assert!((f.coef[2] + 1.0).abs() < 1e-12);
        let x2: Vec<f64> = x.iter().map(|v| 2.0 * v).collect();
        assert!(matches!(
            ols(&y, &[("x", &x), ("x2", &x2)]),
            Err(LinalgError::Collinear { .. })
        ));
    }

    #[test]
    fn se_matches_simple_regression_formula() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let y = [1.2, 1.9, 3.2, 3.8, 5.3, 5.9];
        let f = ols(&y, &[("x", &x)]).unwrap();
        let xbar = 3.5;
        let sxx: f64 = x.iter().map(|v| (v - xbar) * (v - xbar)).sum();
        assert!((f.se[1] - f.sigma / sxx.sqrt()).abs() < 1e-12);
    }
}
