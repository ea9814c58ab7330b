//! Dense linear algebra shared by every model: Cholesky factorizations (row-major and packed
//! storage), the inverse of a triangular factor, and least squares by Householder QR with
//! one rank rule (R's `lm.fit`/`glm.fit`).
//!
//! Row-major `n x n` slices and nalgebra matrices are used as the callers hold them. The
//! LMM's blocked, column-major factorizations of the trailing block (`lmm::deviance`,
//! `lmm::sparse`) are separate kernels: their storage order and faer's SIMD Cholesky are
//! what makes InstEval-sized fits fast (benchmarked in `benches/lmm_vs_lme4.sh`).
#![allow(clippy::needless_range_loop)] // index loops over paired matrix entries
use nalgebra::{DMatrix, DVector};
use thiserror::Error;

/// Why a factorization or a least-squares solve failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LinalgError {
    /// A pivot of the Cholesky factorization was not positive (or not finite).
    #[error("the matrix is not positive definite (pivot {pivot})")]
    NotPositiveDefinite { pivot: usize },
    /// Fewer observations than coefficients (least squares).
    #[error("{n} observations for {p} coefficients")]
    TooFewRows { n: usize, p: usize },
    /// Column `name` is (numerically) a linear combination of the earlier ones.
    #[error("column `{name}` is a linear combination of the others")]
    Collinear { name: String },
}

/// In-place lower Cholesky factor `L` (`A = L L'`) of a row-major `n x n` matrix: reads the
/// lower triangle, zeroes the upper one. Row-oriented (Cholesky-Banachiewicz), so the inner
/// products run over contiguous rows. `Err(i)` names the first non-positive pivot.
///
/// This is also the per-level kernel of the LMM's first random-effects block.
pub fn cholesky_rows(a: &mut [f64], n: usize) -> Result<(), usize> {
    for i in 0..n {
        for j in 0..=i {
            let (head, tail) = a.split_at_mut(i * n);
            let row_i = &tail[..n];
            let mut s = row_i[j];
            if j == i {
                for v in &row_i[..j] {
                    s -= v * v;
                }
                if s <= 0.0 || !s.is_finite() {
                    return Err(i);
                }
                tail[i] = s.sqrt();
            } else {
                let row_j = &head[j * n..j * n + j];
                let mut acc = 0.0;
                for k in 0..j {
                    acc += row_i[k] * row_j[k];
                }
                s -= acc;
                let d = head[j * n + j];
                tail[j] = s / d;
            }
        }
        for v in &mut a[i * n + i + 1..(i + 1) * n] {
            *v = 0.0;
        }
    }
    Ok(())
}

/// [`cholesky_rows`] as a flag: true when the factorization succeeded.
pub fn cholesky_in_place(a: &mut [f64], n: usize) -> bool {
    cholesky_rows(a, n).is_ok()
}

/// Lower Cholesky factor of a row-major `n x n` positive definite matrix.
pub fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>, LinalgError> {
    if a.len() != n * n {
        return Err(LinalgError::NotPositiveDefinite { pivot: 0 });
    }
    let mut l = a.to_vec();
    cholesky_rows(&mut l, n).map_err(|pivot| LinalgError::NotPositiveDefinite { pivot })?;
    Ok(l)
}

/// Lower factor `L` with `L L' = A` of a positive *semi*definite row-major covariance, for
/// drawing from `N(mu, A)`: where a pivot is not positive (a degenerate direction), that
/// column of `L` is zero, so a factor always exists. Same loop as [`cholesky_in_place`].
pub fn cholesky_semidefinite(a: &[f64], n: usize) -> Vec<f64> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a.get(i * n + j).copied().unwrap_or(0.0);
            if j == i {
                for k in 0..j {
                    s -= l[i * n + k] * l[i * n + k];
                }
                l[i * n + i] = if s > 0.0 && s.is_finite() {
                    s.sqrt()
                } else {
                    0.0
                };
            } else {
                let mut acc = 0.0;
                for k in 0..j {
                    acc += l[i * n + k] * l[j * n + k];
                }
                s -= acc;
                let d = l[j * n + j];
                l[i * n + j] = if d > 0.0 { s / d } else { 0.0 };
            }
        }
    }
    l
}

/// In-place lower Cholesky factor of a packed (row-wise lower triangle, `m (m + 1) / 2`
/// entries) `m x m` matrix, for callers that keep symmetric matrices packed (the mediation
/// random-intercept model factors its `[X y]` cross-products this way at every evaluation).
/// Returns false on a non-positive pivot.
pub fn cholesky_packed_in_place(a: &mut [f64], m: usize) -> bool {
    for j in 0..m {
        let rj = j * (j + 1) / 2;
        let mut d = a[rj + j];
        for k in 0..j {
            d -= a[rj + k] * a[rj + k];
        }
        if !(d.is_finite() && d > 0.0) {
            return false;
        }
        let djj = d.sqrt();
        a[rj + j] = djj;
        for i in (j + 1)..m {
            let ri = i * (i + 1) / 2;
            let mut s = a[ri + j];
            for k in 0..j {
                s -= a[ri + k] * a[rj + k];
            }
            a[ri + j] = s / djj;
        }
    }
    true
}

/// Inverse of a row-major lower-triangular `p x p` factor (forward substitution by columns).
pub fn lower_inverse(l: &[f64], p: usize) -> Vec<f64> {
    let mut inv = vec![0.0; p * p];
    for j in 0..p {
        inv[j * p + j] = 1.0 / l[j * p + j];
        for i in j + 1..p {
            let mut s = 0.0;
            for k in j..i {
                s += l[i * p + k] * inv[k * p + j];
            }
            inv[i * p + j] = -s / l[i * p + i];
        }
    }
    inv
}

/// A least-squares solution `b = argmin ||y - X b||`.
#[derive(Debug, Clone, PartialEq)]
pub struct LeastSquares {
    pub beta: Vec<f64>,
    /// `(X'X)^-1 = R^-1 R^-T`, the unscaled covariance of `beta`.
    pub unscaled_cov: DMatrix<f64>,
    /// `y - X b`.
    pub residuals: Vec<f64>,
}

impl LeastSquares {
    /// Residual sum of squares.
    pub fn rss(&self) -> f64 {
        self.residuals.iter().map(|e| e * e).sum()
    }
}

/// Least squares by Householder QR (as R's `lm.fit` and the weighted step of `glm.fit`).
///
/// The rank rule, the one used everywhere: column `j` is collinear with the earlier ones when
/// `|R_jj| <= 1e-7 ||x_j||` (LINPACK `dqrdc2`'s relative tolerance `tol = 1e-7` of `lm`) or the
/// column is zero or not finite. `names` label the columns in the error. Needs `n >= p`.
pub fn least_squares(
    x: &DMatrix<f64>,
    y: &DVector<f64>,
    names: &[String],
) -> Result<LeastSquares, LinalgError> {
    let (n, p) = (x.nrows(), x.ncols());
    let (r, beta) = qr_coefficients(x.clone(), y, names)?;
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
    let fitted = x * DVector::from_column_slice(&beta);
    let residuals = (0..n).map(|i| y[i] - fitted[i]).collect();
    Ok(LeastSquares {
        beta,
        unscaled_cov: &rinv * rinv.transpose(),
        residuals,
    })
}

/// The coefficients of [`least_squares`] alone (the same QR, rank rule and bits), without
/// the covariance and residuals: the refits of a bootstrap that keep only estimates.
pub fn least_squares_coefficients(
    x: DMatrix<f64>,
    y: &DVector<f64>,
    names: &[String],
) -> Result<Vec<f64>, LinalgError> {
    qr_coefficients(x, y, names).map(|(_, beta)| beta)
}

/// Householder QR of `x`, the rank rule of [`least_squares`] on R's diagonal, and
/// `b = R^-1 Q'y` by back-substitution: R and b.
fn qr_coefficients(
    x: DMatrix<f64>,
    y: &DVector<f64>,
    names: &[String],
) -> Result<(DMatrix<f64>, Vec<f64>), LinalgError> {
    let (n, p) = (x.nrows(), x.ncols());
    if n < p {
        return Err(LinalgError::TooFewRows { n, p });
    }
    let name = |j: usize| {
        names
            .get(j)
            .cloned()
            .unwrap_or_else(|| format!("{}", j + 1))
    };
    let col_norms: Vec<f64> = (0..p).map(|j| x.column(j).norm()).collect();
    let qr = x.qr();
    let r = qr.r();
    for j in 0..p {
        let d = r[(j, j)].abs();
        // NaN fails the comparison and counts as collinear.
        if col_norms[j] == 0.0
            || d.partial_cmp(&(1e-7 * col_norms[j])) != Some(std::cmp::Ordering::Greater)
        {
            return Err(LinalgError::Collinear { name: name(j) });
        }
    }
    let qty = qr.q().transpose() * y;
    let mut beta = vec![0.0; p];
    for i in (0..p).rev() {
        let mut s = qty[i];
        for j in (i + 1)..p {
            s -= r[(i, j)] * beta[j];
        }
        beta[i] = s / r[(i, i)];
    }
    Ok((r, beta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_factors_and_reports_the_failing_pivot() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let l = cholesky(&a, 2).unwrap();
        assert_eq!(l, vec![2.0, 0.0, 1.0, 2f64.sqrt()]);
        let bad = [1.0, 2.0, 2.0, 1.0];
        assert_eq!(
            cholesky(&bad, 2),
            Err(LinalgError::NotPositiveDefinite { pivot: 1 })
        );
        // packed storage gives the same factor
        let mut p = [4.0, 2.0, 3.0];
        assert!(cholesky_packed_in_place(&mut p, 2));
        assert!((p[0] - 2.0).abs() < 1e-15 && (p[1] - 1.0).abs() < 1e-15);
        assert!((p[2] - 2f64.sqrt()).abs() < 1e-15);
        // semidefinite: the degenerate direction gets a zero column
        let s = cholesky_semidefinite(&[1.0, 1.0, 1.0, 1.0], 2);
        assert_eq!(s, vec![1.0, 0.0, 1.0, 0.0]);
        let inv = lower_inverse(&l, 2);
        assert!((inv[0] - 0.5).abs() < 1e-15 && (inv[3] - 1.0 / 2f64.sqrt()).abs() < 1e-15);
        assert!((inv[2] + 0.5 / 2f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn least_squares_solves_and_detects_collinearity() {
        let x = DMatrix::from_row_slice(4, 2, &[1.0, 0.0, 1.0, 1.0, 1.0, 2.0, 1.0, 3.0]);
        let y = DVector::from_column_slice(&[1.0, 3.0, 5.0, 7.0]);
        let names = vec!["(Intercept)".to_string(), "x".to_string()];
        let f = least_squares(&x, &y, &names).unwrap();
        assert!((f.beta[0] - 1.0).abs() < 1e-12 && (f.beta[1] - 2.0).abs() < 1e-12);
        assert!(f.rss() < 1e-20);
        // (X'X)^-1 of this design: [[0.7, -0.3], [-0.3, 0.2]]
        assert!((f.unscaled_cov[(0, 0)] - 0.7).abs() < 1e-12);
        assert!((f.unscaled_cov[(0, 1)] + 0.3).abs() < 1e-12);
        let xc = DMatrix::from_row_slice(3, 2, &[1.0, 2.0, 2.0, 4.0, 3.0, 6.0]);
        let e = least_squares(&xc, &DVector::from_column_slice(&[1.0, 2.0, 3.0]), &names);
        assert_eq!(e, Err(LinalgError::Collinear { name: "x".into() }));
    }
}
