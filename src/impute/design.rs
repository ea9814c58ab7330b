//! The predictors of one variable in a sweep: every other variable at its current values,
//! factors as treatment-contrast dummies (R's `model.matrix` without the intercept, which
//! each method adds itself, as mice's `cbind(1, x)`).
use nalgebra::DMatrix;

use super::{Var, WideFrame};

/// The n x p predictor matrix of variable `target` (no intercept column).
pub fn predictors(data: &WideFrame, cur: &[Vec<f64>], target: usize) -> DMatrix<f64> {
    let n = data.n_rows();
    let mut cols: Vec<Vec<f64>> = Vec::new();
    for (j, v) in data.vars.iter().enumerate() {
        if j == target {
            continue;
        }
        match v {
            Var::Numeric(_) => cols.push(cur[j].clone()),
            Var::Factor { levels, .. } => {
                for l in 1..levels.len() {
                    cols.push(
                        cur[j]
                            .iter()
                            .map(|&c| if c as usize == l { 1.0 } else { 0.0 })
                            .collect(),
                    );
                }
            }
        }
    }
    DMatrix::from_fn(n, cols.len(), |i, c| cols[c][i])
}

/// `cbind(1, x)` on the rows where `keep` is true.
pub fn with_intercept(x: &DMatrix<f64>, keep: &[bool]) -> DMatrix<f64> {
    let rows: Vec<usize> = (0..x.nrows()).filter(|&i| keep[i]).collect();
    DMatrix::from_fn(rows.len(), x.ncols() + 1, |r, c| {
        if c == 0 {
            1.0
        } else {
            x[(rows[r], c - 1)]
        }
    })
}

/// Lower Cholesky factor of a symmetric matrix (mice's `t(chol(sym(v)))`); a tiny diagonal
/// jitter when it is not numerically positive definite.
pub fn lower_cholesky(v: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (v + v.transpose()) * 0.5;
    if let Some(c) = sym.clone().cholesky() {
        return c.l();
    }
    let scale = (0..sym.nrows())
        .map(|i| sym[(i, i)].abs())
        .fold(0.0, f64::max);
    let mut jitter = 1e-12 * scale.max(1e-300);
    loop {
        let m = &sym + DMatrix::identity(sym.nrows(), sym.nrows()) * jitter;
        if let Some(c) = m.cholesky() {
            return c.l();
        }
        jitter *= 10.0;
    }
}

/// `(X'X)^-1`, with mice's ridge fallback (`diag(xtx) * 1e-5` added) when X'X is singular
/// (`mice:::estimice`).
pub fn xtx_inverse(xtx: &DMatrix<f64>) -> DMatrix<f64> {
    let p = xtx.nrows();
    if let Some(c) = xtx.clone().cholesky() {
        let inv = c.inverse();
        if inv.iter().all(|v| v.is_finite()) {
            return inv;
        }
    }
    let mut r = xtx.clone();
    for i in 0..p {
        r[(i, i)] += xtx[(i, i)] * 1e-5;
    }
    r.clone()
        .cholesky()
        .map(|c| c.inverse())
        .or_else(|| r.try_inverse())
        .unwrap_or_else(|| DMatrix::identity(p, p))
}
