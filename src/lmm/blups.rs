//! Conditional modes of the random effects with their conditional covariances, as lme4's
//! `ranef(fit, condVar = TRUE)`: `b = Lambda u`, `Var(b | y) = sigma^2 Lambda (L L')^{-1}
//! Lambda'` restricted to each level's block, with `L` the Cholesky factor of
//! `Lambda'Z'Z Lambda + I` (fixed effects held at their estimates, as lme4 does).
use serde::Serialize;

use super::deviance::Factor;
use super::model::lambda;
use super::optimize::LmmFit;
use super::LmmError;
use crate::stats::linalg::lower_inverse;

/// Conditional modes of one random-effects term.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlupTerm {
    /// Group name as lme4 prints it.
    pub group: String,
    /// The grouping factor's name (`group` without lme4's `.1` suffix), as `ranef` labels it.
    pub factor: String,
    /// Column names (`(Intercept)`, `Days`).
    pub names: Vec<String>,
    /// Level labels of the grouping factor.
    pub levels: Vec<String>,
    /// `n_levels x q`, row-major.
    pub values: Vec<f64>,
    /// Conditional covariance per level, `n_levels x q x q`.
    pub cond_var: Vec<f64>,
}

impl BlupTerm {
    /// Conditional SD of column `c` at level `lvl`.
    pub fn cond_sd(&self, lvl: usize, c: usize) -> f64 {
        let q = self.names.len();
        self.cond_var
            .get(lvl * q * q + c * q + c)
            .map_or(f64::NAN, |v| v.max(0.0).sqrt())
    }
}

/// Largest trailing random-effects block for which conditional variances are computed.
pub const MAX_CONDVAR_REST: usize = 8_000;

impl LmmFit {
    /// Conditional modes and conditional covariances of every random-effects term.
    pub fn ranef(&self) -> Result<Vec<BlupTerm>, LmmError> {
        let bp = &self.products;
        if bp.q_rest > MAX_CONDVAR_REST {
            return Err(LmmError::TooLarge {
                what: format!(
                    "conditional variances need a dense inverse of size {}",
                    bp.q_rest
                ),
            });
        }
        let mut factor = Factor::new(bp);
        factor.update(bp, &self.theta);
        let m = bp.m;
        let qr = bp.q_rest;
        let mut lrr = vec![0.0; qr * qr];
        for i in 0..qr {
            for j in 0..=i {
                lrr[i * qr + j] = factor.ltt(m, i, j);
            }
        }
        let lrr_inv = lower_inverse(&lrr, qr);
        let s2 = self.sigma * self.sigma;
        let mut out = Vec::new();
        for (j, t) in bp.terms.iter().enumerate() {
            let re = &self.frame.re_terms[j];
            let q = t.q;
            let lam = lambda(&self.theta[t.theta_offset..t.theta_offset + t.n_theta()], q);
            let mut cond_var = vec![0.0; t.n_levels * q * q];
            for lvl in 0..t.n_levels {
                // M = block of (L L')^{-1} in the spherical scale.
                let mut mblk = vec![0.0; q * q];
                if j == 0 {
                    let l = &factor.l11[lvl * q * q..(lvl + 1) * q * q];
                    let linv = lower_inverse(l, q);
                    for a in 0..q {
                        for b in 0..q {
                            let mut s = 0.0;
                            for k in 0..q {
                                s += linv[k * q + a] * linv[k * q + b];
                            }
                            mblk[a * q + b] = s;
                        }
                    }
                    // W = L_rr^{-1} B_rg L11^{-1} (rand rows of the coupling block).
                    let bmat = &factor.l_t1[bp.coupling.val_range(lvl)];
                    let rand_rows: Vec<(usize, usize)> = bp
                        .coupling
                        .rows(lvl)
                        .iter()
                        .enumerate()
                        .filter(|(_, &r)| r < qr)
                        .map(|(k, &r)| (k, r))
                        .collect();
                    if !rand_rows.is_empty() {
                        // B L11^{-1}: rows x q
                        let mut bl = vec![0.0; rand_rows.len() * q];
                        for (ri, &(k, _)) in rand_rows.iter().enumerate() {
                            for c in 0..q {
                                let mut s = 0.0;
                                for d in c..q {
                                    s += bmat[k * q + d] * linv[d * q + c];
                                }
                                bl[ri * q + c] = s;
                            }
                        }
                        let min_row = rand_rows.first().map_or(0, |x| x.1);
                        for i in min_row..qr {
                            let mut w = vec![0.0; q];
                            for (ri, &(_, r)) in rand_rows.iter().enumerate() {
                                if r > i {
                                    break;
                                }
                                let li = lrr_inv[i * qr + r];
                                for c in 0..q {
                                    w[c] += li * bl[ri * q + c];
                                }
                            }
                            for a in 0..q {
                                for b in 0..q {
                                    mblk[a * q + b] += w[a] * w[b];
                                }
                            }
                        }
                    }
                } else {
                    let c0 = t.offset + lvl * q;
                    for i in c0..qr {
                        for a in 0..q {
                            for b in 0..q {
                                mblk[a * q + b] +=
                                    lrr_inv[i * qr + c0 + a] * lrr_inv[i * qr + c0 + b];
                            }
                        }
                    }
                }
                // sigma^2 Lambda M Lambda'
                for a in 0..q {
                    for b in 0..q {
                        let mut s = 0.0;
                        for k in 0..q {
                            for l2 in 0..q {
                                s += lam[a * q + k] * mblk[k * q + l2] * lam[b * q + l2];
                            }
                        }
                        cond_var[lvl * q * q + a * q + b] = s2 * s;
                    }
                }
            }
            out.push(BlupTerm {
                group: re.group_name.clone(),
                factor: re.factor_name.clone(),
                names: re.col_names.clone(),
                levels: re.level_names.clone(),
                values: self.b[j].clone(),
                cond_var,
            });
        }
        Ok(out)
    }
}
