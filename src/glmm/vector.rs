//! Vector-valued random effects of one grouping factor, `(1 + t | g)`: the random effects of
//! group `g` are `b_g = Lambda u_g`, `u_g ~ N(0, I_q)`, with `Lambda` lower triangular and
//! filled column by column from `theta` (lme4's parameterization: `theta` = the lower triangle
//! of the relative Cholesky factor, column-major; diagonal elements `>= 0`), so
//! `Var(b_g) = Lambda Lambda'`. With `eta_i = x_i' beta + o_i + z_i' Lambda u_g` the Laplace
//! approximation of group `g` at the conditional mode `u_g` is (lme4's `nAGQ = 1`)
//! `-2 log L_g = -2 h(u_g) + log det(I + Lambda' Z_g' C_g Z_g Lambda)`,
//! `h(u) = sum_i log f(y_i | eta_i) - |u|^2 / 2`, with the curvature weights `C_g` of
//! [`Family::curvature`] (Fisher weights, the observed information for the negative
//! binomial). The mode is found by Newton steps on `h` with step halving (penalized IRLS of
//! one group). Written here because the groups are independent given the parameters, so each
//! is a small dense `q x q` problem (no sparse factorization is needed for one factor).
use nalgebra::{DMatrix, DVector};

use super::family::Family;
use super::GlmmData;

/// Number of `theta` parameters of a `q`-dimensional term: `q (q + 1) / 2`.
pub fn n_theta(q: usize) -> usize {
    q * (q + 1) / 2
}

/// Whether `theta[k]` is a diagonal element of `Lambda` (bounded below by 0).
pub fn is_diagonal(q: usize, k: usize) -> bool {
    let mut idx = 0;
    for j in 0..q {
        for i in j..q {
            if idx == k {
                return i == j;
            }
            idx += 1;
        }
    }
    false
}

/// `Lambda` from `theta` (column-major lower triangle).
pub fn lambda(q: usize, theta: &[f64]) -> DMatrix<f64> {
    let mut l = DMatrix::zeros(q, q);
    let mut idx = 0;
    for j in 0..q {
        for i in j..q {
            l[(i, j)] = theta[idx];
            idx += 1;
        }
    }
    l
}

/// The SDs and the correlation matrix (row-major `q x q`) of `Lambda Lambda'`.
pub fn sd_corr(q: usize, theta: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let l = lambda(q, theta);
    let s = &l * l.transpose();
    let sd: Vec<f64> = (0..q).map(|i| s[(i, i)].max(0.0).sqrt()).collect();
    let corr = (0..q * q)
        .map(|t| {
            let (i, j) = (t / q, t % q);
            if i == j {
                1.0
            } else if sd[i] > 0.0 && sd[j] > 0.0 {
                s[(i, j)] / (sd[i] * sd[j])
            } else {
                f64::NAN
            }
        })
        .collect();
    (sd, corr)
}

/// The conditional mode `u` of one group (from `u0`), `h(u)` and
/// `log det(I + Lambda' Z' C Z Lambda)` at the mode; `eta0` is `x' beta + o` of its rows.
pub fn group_mode(
    d: &GlmmData,
    fam: Family,
    rows: &[usize],
    eta0: &[f64],
    lam: &DMatrix<f64>,
    u0: &[f64],
) -> (Vec<f64>, f64, f64) {
    let q = d.q;
    // z_i' Lambda for each row
    let zl: Vec<DVector<f64>> = rows
        .iter()
        .map(|&i| {
            let z = DVector::from_row_slice(&d.z[i * q..(i + 1) * q]);
            lam.transpose() * z
        })
        .collect();
    let eta_at = |u: &DVector<f64>| -> Vec<f64> {
        eta0.iter().zip(&zl).map(|(e, a)| e + a.dot(u)).collect()
    };
    let h = |u: &DVector<f64>| -> f64 {
        rows.iter()
            .zip(eta_at(u))
            .map(|(&i, e)| d.weights[i] * fam.kernel(d.y[i], d.trials[i], e))
            .sum::<f64>()
            - 0.5 * u.norm_squared()
    };
    let mut u = if u0.iter().all(|v| v.is_finite()) && u0.len() == q {
        DVector::from_row_slice(u0)
    } else {
        DVector::zeros(q)
    };
    let mut hu = h(&u);
    for _ in 0..100 {
        let mut g = -u.clone();
        let mut info = DMatrix::<f64>::identity(q, q);
        for ((&i, e), a) in rows.iter().zip(eta_at(&u)).zip(&zl) {
            let (sc, w) = fam.score_weight(d.y[i], d.trials[i], e);
            g += a * (d.weights[i] * sc);
            info += a * a.transpose() * (d.weights[i] * w);
        }
        let Some(chol) = info.cholesky() else {
            break;
        };
        let mut step = chol.solve(&g);
        let mut accepted = false;
        for _ in 0..30 {
            let cand = &u + &step;
            let hc = h(&cand);
            if hc.is_finite() && hc >= hu - 1e-12 * hu.abs() {
                u = cand;
                hu = hc;
                accepted = true;
                break;
            }
            step /= 2.0;
        }
        if !accepted || step.amax() < 1e-13 * (1.0 + u.amax()) {
            break;
        }
    }
    let mut curv = DMatrix::<f64>::identity(q, q);
    for ((&i, e), a) in rows.iter().zip(eta_at(&u)).zip(&zl) {
        curv += a * a.transpose() * (d.weights[i] * fam.curvature(d.y[i], d.trials[i], e));
    }
    let logdet = match curv.cholesky() {
        Some(c) => 2.0 * c.l().diagonal().iter().map(|v| v.ln()).sum::<f64>(),
        None => f64::INFINITY,
    };
    (u.iter().copied().collect(), h(&u), logdet)
}

/// `-2 log L` (Laplace) at `(theta, beta)` for vector-valued random effects, the groups in
/// parallel, `modes` (`q` per group) warm-starting the next evaluation; `constants` as
/// [`super::density_constants`]. Summed in group order (independent of the threads).
pub fn deviance(
    d: &GlmmData,
    fam: Family,
    by_group: &[Vec<usize>],
    theta_beta: &[f64],
    modes: &mut [f64],
    constants: f64,
) -> f64 {
    use rayon::prelude::*;
    let (q, p) = (d.q, d.p);
    let nt = n_theta(q);
    let lam = lambda(q, &theta_beta[..nt]);
    let beta = &theta_beta[nt..nt + p];
    let per_group: Vec<f64> = by_group
        .par_iter()
        .zip(modes.par_chunks_mut(q))
        .with_min_len(32)
        .map(|(rows, u0)| {
            let eta0: Vec<f64> = rows
                .iter()
                .map(|&i| d.offset[i] + (0..p).map(|j| d.x[i * p + j] * beta[j]).sum::<f64>())
                .collect();
            let (u, hu, logdet) = group_mode(d, fam, rows, &eta0, &lam, u0);
            u0.copy_from_slice(&u);
            if !hu.is_finite() || !logdet.is_finite() {
                return f64::INFINITY;
            }
            -2.0 * hu + logdet
        })
        .collect();
    per_group.iter().sum::<f64>() - 2.0 * constants
}

/// The linear predictors of every row at the conditional modes of `(theta, beta)` (for the
/// Pearson dispersion).
pub fn fitted_eta(
    d: &GlmmData,
    fam: Family,
    by_group: &[Vec<usize>],
    theta_beta: &[f64],
) -> Vec<f64> {
    let (q, p) = (d.q, d.p);
    let nt = n_theta(q);
    let lam = lambda(q, &theta_beta[..nt]);
    let beta = &theta_beta[nt..nt + p];
    let mut out = vec![0.0; d.y.len()];
    for rows in by_group {
        let eta0: Vec<f64> = rows
            .iter()
            .map(|&i| d.offset[i] + (0..p).map(|j| d.x[i * p + j] * beta[j]).sum::<f64>())
            .collect();
        let (u, _, _) = group_mode(d, fam, rows, &eta0, &lam, &vec![0.0; q]);
        let b = &lam * DVector::from_vec(u);
        for (&i, e) in rows.iter().zip(&eta0) {
            out[i] = e + (0..q).map(|k| d.z[i * q + k] * b[k]).sum::<f64>();
        }
    }
    out
}
