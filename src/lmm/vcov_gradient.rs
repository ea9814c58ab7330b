//! The derivatives of the unscaled covariance of the fixed effects with respect to theta, in
//! closed form from one factorization (Satterthwaite's Jacobian without finite differences).
//!
//! With `L L' = Lambda'Z'Z Lambda + I`, `R_ZX = L^-1 Lambda'Z'X` and
//! `C = (R_X'R_X)^-1 = (X' V~^-1 X)^-1` for `V~ = I + Z Lambda Lambda' Z'` (lme4's notation,
//! Bates et al. 2015, J Stat Softw 67(1), section 3),
//!
//! `dC/dtheta_j = C X'V~^-1 Z (E_j Lambda' + Lambda E_j') Z'V~^-1 X C`, `E_j = dLambda/dtheta_j`,
//!
//! and `Lambda' Z'V~^-1 X = L^-T R_ZX =: U`. With `G = U C` and `Y~ = Lambda^-T G` (per level
//! `lambda_t^-T G_l`, so `Lambda` must be invertible: no variance at zero),
//!
//! `dC/dtheta_j = Y~' E_j G + G' E_j' Y~`; for a scalar term `dC/dtheta_t = (2 / theta_t) G_t'G_t`.
//!
//! `G` comes from `p` back-substitutions with the whole factor: `L_full' w = [0; L_XX^-1 e_k]`
//! gives `w_X = C e_k` and `w_Z = -G e_k`. lmerTest differentiates `vcov(beta)` numerically
//! (`numDeriv::jacobian`, Richardson extrapolation over 4 steps: `8 k` factorizations for `k`
//! parameters); the closed form agrees with it to about 1e-9 relative
//! (`tests/lmm.rs::analytic_vcov_jacobian_matches_richardson`).
use super::deviance::Factor;
use super::model::{lambda, BlockedProducts};

/// `C` and `dC/dtheta_j` for every theta (each `p x p` row-major) from the dense factor of
/// [`Factor::update`]. `None` when the factor is not the dense one, a pivot failed, or a
/// diagonal element of `Lambda` is below `min_diag` (a variance at or near zero: then the
/// derivative needs `Lambda^-1`).
pub fn unscaled_vcov_derivatives(
    factor: &Factor,
    bp: &BlockedProducts,
    min_diag: f64,
) -> Option<(Vec<f64>, Vec<Vec<f64>>)> {
    if !factor.ok || !factor.dense_valid || bp.terms.is_empty() {
        return None;
    }
    let theta = &factor.theta;
    let lams: Vec<Vec<f64>> = bp
        .terms
        .iter()
        .map(|t| lambda(&theta[t.theta_offset..t.theta_offset + t.n_theta()], t.q))
        .collect();
    for (t, l) in bp.terms.iter().zip(&lams) {
        if (0..t.q).any(|i| {
            let d = l[i * t.q + i];
            d.is_nan() || d < min_diag
        }) {
            return None;
        }
    }
    let p = bp.p;
    let m = bp.m;
    let qr = bp.q_rest;
    let c = factor.unscaled_vcov(bp);
    // L_XX^-1 by columns (forward substitution of e_k).
    let lxx = factor.l_xx(bp);
    let t1 = &bp.terms[0];
    let q1 = t1.q;
    let l1 = t1.n_levels;
    let nq = l1 * q1 + qr;
    // g[row * p + k]: G = U C, rows in u's layout (first term by level, then trailing).
    let mut g = vec![0.0; nq * p];
    let mut z = vec![0.0; m - 1];
    let cp = &bp.coupling;
    let mut rhs = vec![0.0; q1];
    for k in 0..p {
        let mut b = vec![0.0; p];
        for i in k..p {
            let mut s = if i == k { 1.0 } else { 0.0 };
            for (j, bj) in b.iter().enumerate().take(i).skip(k) {
                s -= lxx[i * p + j] * bj;
            }
            b[i] = s / lxx[i * p + i];
        }
        z[..qr].fill(0.0);
        z[qr..].copy_from_slice(&b);
        for i in (0..m - 1).rev() {
            let col = &factor.l_tt[i * m..i * m + m - 1];
            let mut s = z[i];
            for (lk, zk) in col[i + 1..].iter().zip(&z[i + 1..]) {
                s -= lk * zk;
            }
            z[i] = s / col[i];
        }
        for gl in 0..cp.n_levels() {
            let rows = cp.rows(gl);
            let bl = &factor.l_t1[cp.val_range(gl)];
            let r = rows.len();
            rhs.fill(0.0);
            for (kk, &row) in rows.iter().enumerate().take(r - 1) {
                for cc in 0..q1 {
                    rhs[cc] -= bl[kk * q1 + cc] * z[row];
                }
            }
            let l = &factor.l11[gl * q1 * q1..(gl + 1) * q1 * q1];
            for cc in (0..q1).rev() {
                let mut s = rhs[cc];
                for kk in cc + 1..q1 {
                    s -= l[kk * q1 + cc] * rhs[kk];
                }
                rhs[cc] = s / l[cc * q1 + cc];
            }
            for cc in 0..q1 {
                g[(gl * q1 + cc) * p + k] = -rhs[cc];
            }
        }
        for i in 0..qr {
            g[(l1 * q1 + i) * p + k] = -z[i];
        }
    }
    let mut out = Vec::with_capacity(bp.n_theta);
    let mut yl = vec![0.0; p * 8];
    for (ti, (t, lam)) in bp.terms.iter().zip(&lams).enumerate() {
        let q = t.q;
        let base = if ti == 0 { 0 } else { l1 * q1 + t.offset };
        let mut dcs = vec![vec![0.0; p * p]; t.n_theta()];
        yl.resize(q * p, 0.0);
        for lv in 0..t.n_levels {
            let gl = &g[(base + lv * q) * p..(base + (lv + 1) * q) * p];
            // Y~_l = lambda^-T G_l: lambda' y = g, upper triangular, per column.
            for k in 0..p {
                for i in (0..q).rev() {
                    let mut s = gl[i * p + k];
                    for kk in i + 1..q {
                        s -= lam[kk * q + i] * yl[kk * p + k];
                    }
                    yl[i * p + k] = s / lam[i * q + i];
                }
            }
            let mut j = 0;
            for cc in 0..q {
                for r in cc..q {
                    let d = &mut dcs[j];
                    for a in 0..p {
                        let (ya, ga) = (yl[r * p + a], gl[cc * p + a]);
                        for bb in 0..p {
                            d[a * p + bb] += ya * gl[cc * p + bb] + ga * yl[r * p + bb];
                        }
                    }
                    j += 1;
                }
            }
        }
        out.extend(dcs);
    }
    Some((c, out))
}
