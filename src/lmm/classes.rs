//! The first term's downdate of the trailing block by classes of levels (dense trailing path).
//!
//! Eliminating level `g` of the first term subtracts `Lambda_T' C_g M_g C_g' Lambda_T` from the
//! trailing block, where `C_g` is its coupling block (`A[rows, Z_1 columns of g]`) and
//! `M_g = Lambda_1 (Lambda_1' A_g Lambda_1 + I)^{-1} Lambda_1'` depends on the level only
//! through `A_g = Z_g'Z_g`. Levels with the same `A_g` (same number of observations at the same
//! covariate values: in a registry with a fixed visit schedule, every participant without
//! missing visits) form a class, and
//! `sum_g C_g M_g C_g' = sum_k sum_ij M_k[i, j] S_k^{ij}` with `S_k^{ij} = sum_{g in k} C_g[:, i]
//! C_g[:, j]'` computed once. An evaluation of the criterion then costs one small Cholesky
//! per class and one pass over the touched entries of the trailing block, instead of a pass
//! over all levels (20,000 participants in the registry benchmark, 200,000 in the 1M-row one);
//! `log|L_11|^2 = sum_k n_k log|Lambda_1' A_k Lambda_1 + I|`.
//!
//! Used for the criterion only ([`super::deviance::Factor::update_criterion`]); the factor
//! at the optimum (BLUPs, conditional variances) still goes level by level.
use std::collections::HashMap;

use super::model::BlockedProducts;
use crate::stats::linalg::{cholesky_in_place, lower_inverse};

/// Largest accumulator (doubles) for building the class sums: entries x classes x q1^2.
const MAX_ACCUMULATOR: usize = 8_000_000;

/// Class sums of the first term's coupling (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassDowndate {
    pub q1: usize,
    /// Number of classes.
    pub n_class: usize,
    /// Per class, `A_k` (`q1 x q1` row-major) and its number of levels.
    class_a: Vec<f64>,
    class_count: Vec<f64>,
    /// Touched lower entries `(a, b)`, `a >= b`, of the trailing block.
    ent: Vec<(u32, u32)>,
    /// Per entry and class, `S_k^{ij}[a, b]` at `(e * n_class + k) * q1^2 + i * q1 + j`.
    coef: Vec<f64>,
}

impl ClassDowndate {
    /// Builds the class sums when they save work: `None` when the classes are nearly as many
    /// as the levels or the accumulator would exceed `MAX_ACCUMULATOR`.
    pub fn build(bp: &BlockedProducts) -> Option<ClassDowndate> {
        let t1 = bp.terms.first()?;
        let q1 = t1.q;
        let qq = q1 * q1;
        let m = bp.m;
        let cp = &bp.coupling;
        let nl = cp.n_levels();
        if nl == 0 {
            return None;
        }
        // Classes of A_g (exact values): hashed, then numbered in the order of their values
        // (the numbering a sort of the levels by A_g gives, without sorting the levels).
        let bits: Vec<u64> = bp.a11.iter().map(|v| v.to_bits()).collect();
        let key = |g: usize| &bits[g * qq..(g + 1) * qq];
        let mut first: HashMap<&[u64], usize, foldhash::fast::FixedState> = HashMap::default();
        let mut reps: Vec<usize> = Vec::new();
        let raw_class: Vec<usize> = (0..nl)
            .map(|g| {
                *first.entry(key(g)).or_insert_with(|| {
                    reps.push(g);
                    reps.len() - 1
                })
            })
            .collect();
        let mut by_value: Vec<usize> = (0..reps.len()).collect();
        by_value.sort_unstable_by(|&x, &y| key(reps[x]).cmp(key(reps[y])));
        let mut rank = vec![0usize; reps.len()];
        let mut class_a = Vec::with_capacity(reps.len() * qq);
        for (r, &c) in by_value.iter().enumerate() {
            rank[c] = r;
            class_a.extend_from_slice(&bp.a11[reps[c] * qq..(reps[c] + 1) * qq]);
        }
        let class_of: Vec<usize> = raw_class.iter().map(|&c| rank[c]).collect();
        let mut class_count = vec![0.0f64; reps.len()];
        for &k in &class_of {
            class_count[k] += 1.0;
        }
        let k_n = class_count.len();
        // Work per evaluation: level by level sum_g r_g (r_g + 1) / 2 pairs; by class at most
        // (touched entries) x classes.
        let level_pairs: usize = (0..nl)
            .map(|g| {
                let r = cp.rows(g).len();
                r * (r + 1) / 2
            })
            .sum();
        let n_tri = m * (m + 1) / 2;
        if k_n.saturating_mul(qq).saturating_mul(n_tri) > MAX_ACCUMULATOR {
            return None;
        }
        if k_n * n_tri.min(level_pairs) > level_pairs {
            return None;
        }
        let acc = class_sums(bp, &class_of, k_n, n_tri);
        let tri = |a: usize, b: usize| a * (a + 1) / 2 + b;
        let mut ent = Vec::new();
        let mut coef = Vec::new();
        for a in 0..m {
            for b in 0..=a {
                let base = tri(a, b) * k_n * qq;
                let blk = &acc[base..base + k_n * qq];
                if blk.iter().any(|v| *v != 0.0) {
                    ent.push((a as u32, b as u32));
                    coef.extend_from_slice(blk);
                }
            }
        }
        Some(ClassDowndate {
            q1,
            n_class: k_n,
            class_a,
            class_count,
            ent,
            coef,
        })
    }

    /// Subtracts `sum_g C_g M_g C_g'` from `w` (the unscaled trailing block, `m x m` row-major,
    /// both triangles) for the first term's factor `lam1` (`q1 x q1` lower, row-major) and
    /// returns `log|L_11|^2`; `None` when a class's Cholesky fails. `m_buf` is scratch.
    pub fn apply(
        &self,
        lam1: &[f64],
        w: &mut [f64],
        m: usize,
        m_buf: &mut Vec<f64>,
    ) -> Option<f64> {
        let q1 = self.q1;
        let qq = q1 * q1;
        let k_n = self.n_class;
        m_buf.clear();
        m_buf.resize(k_n * qq, 0.0);
        let mut logdet = 0.0;
        let mut b = vec![0.0; qq];
        let mut x = vec![0.0; qq];
        for k in 0..k_n {
            let a = &self.class_a[k * qq..(k + 1) * qq];
            // B = Lambda' A Lambda + I, its Cholesky factor L, X = Lambda L^{-T},
            // M = X X' = Lambda B^{-1} Lambda'.
            for i in 0..q1 {
                for j in 0..q1 {
                    let mut s = 0.0;
                    for r in 0..q1 {
                        for c in 0..q1 {
                            s += lam1[r * q1 + i] * a[r * q1 + c] * lam1[c * q1 + j];
                        }
                    }
                    b[i * q1 + j] = s + if i == j { 1.0 } else { 0.0 };
                }
            }
            if !cholesky_in_place(&mut b, q1) {
                return None;
            }
            let mut ld = 0.0;
            for d in 0..q1 {
                ld += 2.0 * b[d * q1 + d].ln();
            }
            logdet += self.class_count[k] * ld;
            let linv = lower_inverse(&b, q1);
            for i in 0..q1 {
                for j in 0..q1 {
                    // (L^{-T})[c, j] = linv[j, c]
                    let mut s = 0.0;
                    for c in 0..q1 {
                        s += lam1[i * q1 + c] * linv[j * q1 + c];
                    }
                    x[i * q1 + j] = s;
                }
            }
            let mk = &mut m_buf[k * qq..(k + 1) * qq];
            for i in 0..q1 {
                for j in 0..q1 {
                    let mut s = 0.0;
                    for l in 0..q1 {
                        s += x[i * q1 + l] * x[j * q1 + l];
                    }
                    mk[i * q1 + j] = s;
                }
            }
        }
        let mm: &[f64] = m_buf;
        let stride = k_n * qq;
        for (e, &(a, bb)) in self.ent.iter().enumerate() {
            let c = &self.coef[e * stride..(e + 1) * stride];
            let mut s = 0.0;
            for (cv, mv) in c.iter().zip(mm) {
                s += cv * mv;
            }
            let (a, bb) = (a as usize, bb as usize);
            w[a * m + bb] -= s;
            if a != bb {
                w[bb * m + a] -= s;
            }
        }
        Some(logdet)
    }
}

/// `S_k^{ij}[a, b]` for every lower entry `(a, b)` (`tri(a, b) = a (a + 1) / 2 + b`), class
/// `k` and `i, j < q1`, at `(tri(a, b) * k_n + k) * q1^2 + i * q1 + j`. Each sum runs over
/// the levels in order; the entries are split between threads (entry `t` to part `t mod
/// parts`), so every sum is the same whatever the number of threads.
fn class_sums(bp: &BlockedProducts, class_of: &[usize], k_n: usize, n_tri: usize) -> Vec<f64> {
    use rayon::prelude::*;
    let cp = &bp.coupling;
    let q1 = bp.terms.first().map_or(1, |t| t.q);
    let qq = q1 * q1;
    let len = n_tri * k_n * qq;
    // One accumulator per part: a few thousand doubles for a registry.
    let parts = if len <= 1 << 20 {
        rayon::current_num_threads().clamp(1, 8)
    } else {
        1
    };
    let tri = |a: usize, b: usize| a * (a + 1) / 2 + b;
    let accs: Vec<Vec<f64>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let mut acc = vec![0.0; len];
            for (g, &k) in class_of.iter().enumerate() {
                let rows = cp.rows(g);
                let vals = &cp.vals[cp.val_range(g)];
                for (ib, &rb) in rows.iter().enumerate() {
                    let cb = &vals[ib * q1..(ib + 1) * q1];
                    for (ia, &ra) in rows.iter().enumerate().skip(ib) {
                        let t = tri(ra, rb);
                        if t % parts != part {
                            continue;
                        }
                        let ca = &vals[ia * q1..(ia + 1) * q1];
                        let base = (t * k_n + k) * qq;
                        let blk = &mut acc[base..base + qq];
                        for i in 0..q1 {
                            for j in 0..q1 {
                                blk[i * q1 + j] += ca[i] * cb[j];
                            }
                        }
                    }
                }
            }
            acc
        })
        .collect();
    if parts == 1 {
        return accs.into_iter().next().unwrap_or_default();
    }
    let mut acc = vec![0.0; len];
    let stride = k_n * qq;
    for (t, dst) in acc.chunks_mut(stride).enumerate() {
        dst.copy_from_slice(&accs[t % parts][t * stride..(t + 1) * stride]);
    }
    acc
}
