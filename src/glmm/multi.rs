//! Several random-effects terms (crossed or nested grouping factors, e.g.
//! `(1 | participant) + (1 | site)`): the Laplace approximation with the joint conditional
//! modes of every term. With `u = (u_A, u_R)`, `u_A` the random effects of the largest factor
//! (lme4 orders terms by decreasing number of levels) and `u_R` those of all other terms, the
//! penalized information `M = I + Lambda' Z' W Z Lambda` is block diagonal in `u_A` (one
//! `q_A x q_A` block `D_j` per level `j`), so Newton steps and `log det M` use the Schur
//! complement `S = D_R - sum_j C_j' D_j^-1 C_j` (dense, of the size of `u_R`):
//! `log det M = sum_j log det D_j + log det S`, as a sparse Cholesky with the largest factor
//! first would. `-2 log L = -2 h(u) + log det M(u)` at the joint mode `u` (lme4's `nAGQ = 1`),
//! `h(u) = sum_i log f(y_i | eta_i) - |u|^2 / 2`, `M` with the curvature weights (Fisher
//! weights; the observed information for the negative binomial). Written here because the
//! terms of a trial (participant, site, training group) have one large factor and small
//! others, where this dense Schur complement is small and exact; a second large crossed
//! factor is refused (see [`MAX_OTHER_EFFECTS`]).
use nalgebra::{DMatrix, DVector};

use super::family::Family;
use super::vector::{lambda, n_theta};
use super::GlmmData;

/// Most random effects outside the largest term (the dense Schur complement's size).
pub const MAX_OTHER_EFFECTS: usize = 3000;

/// One random-effects term of the data: level per row, model matrix `n x q`, names.
#[derive(Debug, Clone)]
pub struct ReTerm {
    pub group: Vec<u32>,
    pub levels: Vec<String>,
    pub group_name: String,
    pub z: Vec<f64>,
    pub q: usize,
    pub re_names: Vec<String>,
}

/// Every term of `d`: the first (largest) from the data's own fields, then `d.other_terms`.
pub fn terms(d: &GlmmData) -> Vec<ReTerm> {
    let mut out = vec![ReTerm {
        group: d.group.clone(),
        levels: d.levels.clone(),
        group_name: d.group_name.clone(),
        z: d.z.clone(),
        q: d.q,
        re_names: d.re_names.clone(),
    }];
    out.extend(d.other_terms.iter().cloned());
    out
}

/// Number of `theta` parameters of all terms.
pub fn n_theta_all(terms: &[ReTerm]) -> usize {
    terms.iter().map(|t| n_theta(t.q)).sum()
}

/// The sizes of `u_A` and `u_R`.
pub fn sizes(terms: &[ReTerm]) -> (usize, usize) {
    let a = terms[0].levels.len() * terms[0].q;
    let r = terms[1..].iter().map(|t| t.levels.len() * t.q).sum();
    (a, r)
}

/// Per row: the `q_A` coefficients of `u_A` (at its level's block) and the `(index, value)`
/// coefficients in `u_R`.
struct RowCoef {
    a: Vec<f64>,
    r: Vec<(usize, f64)>,
}

fn row_coefs(terms: &[ReTerm], lambdas: &[DMatrix<f64>], n: usize) -> Vec<RowCoef> {
    let mut offsets = Vec::with_capacity(terms.len());
    let mut off = 0;
    for t in &terms[1..] {
        offsets.push(off);
        off += t.levels.len() * t.q;
    }
    (0..n)
        .map(|i| {
            let t0 = &terms[0];
            let z0 = DVector::from_row_slice(&t0.z[i * t0.q..(i + 1) * t0.q]);
            let a = (lambdas[0].transpose() * z0).iter().copied().collect();
            let mut r = Vec::new();
            for (k, t) in terms[1..].iter().enumerate() {
                let z = DVector::from_row_slice(&t.z[i * t.q..(i + 1) * t.q]);
                let v = lambdas[k + 1].transpose() * z;
                let base = offsets[k] + t.group[i] as usize * t.q;
                for (c, x) in v.iter().enumerate() {
                    r.push((base + c, *x));
                }
            }
            RowCoef { a, r }
        })
        .collect()
}

/// `M = I + sum_i w_i a_i a_i'` in blocks: `D_j` per level of the largest factor, `C_j`
/// (`q_A x R`, dense rows of the few `u_R` entries it touches) and `D_R`.
struct Blocks {
    d: Vec<DMatrix<f64>>,
    c: Vec<Vec<(usize, DVector<f64>)>>,
    dr: DMatrix<f64>,
}

fn assemble(terms: &[ReTerm], coefs: &[RowCoef], w: &[f64]) -> Blocks {
    let qa = terms[0].q;
    let (_, nr) = sizes(terms);
    let la = terms[0].levels.len();
    let mut d = vec![DMatrix::<f64>::identity(qa, qa); la];
    let mut c: Vec<Vec<(usize, DVector<f64>)>> = vec![Vec::new(); la];
    let mut dr = DMatrix::<f64>::identity(nr, nr);
    for (i, rc) in coefs.iter().enumerate() {
        let wi = w[i];
        let j = terms[0].group[i] as usize;
        let a = DVector::from_row_slice(&rc.a);
        d[j] += &a * a.transpose() * wi;
        for &(r, x) in &rc.r {
            match c[j].iter_mut().find(|(idx, _)| *idx == r) {
                Some((_, v)) => *v += &a * (wi * x),
                None => c[j].push((r, &a * (wi * x))),
            }
            for &(r2, x2) in &rc.r {
                dr[(r, r2)] += wi * x * x2;
            }
        }
    }
    Blocks { d, c, dr }
}

/// Solves `M delta = g` and returns `(delta, log det M)` (`None` when `M` is not positive
/// definite).
fn solve(b: &Blocks, g_a: &[f64], g_r: &[f64], qa: usize) -> Option<(Vec<f64>, Vec<f64>, f64)> {
    let nr = g_r.len();
    let mut s = b.dr.clone();
    let mut rhs = DVector::from_row_slice(g_r);
    let mut logdet = 0.0;
    let mut chols = Vec::with_capacity(b.d.len());
    for (j, dj) in b.d.iter().enumerate() {
        let ch = dj.clone().cholesky()?;
        logdet += 2.0 * ch.l().diagonal().iter().map(|v| v.ln()).sum::<f64>();
        let gj = DVector::from_row_slice(&g_a[j * qa..(j + 1) * qa]);
        let dinv_g = ch.solve(&gj);
        let dinv_c: Vec<DVector<f64>> = b.c[j].iter().map(|(_, v)| ch.solve(v)).collect();
        for (r, cv) in &b.c[j] {
            rhs[*r] -= cv.dot(&dinv_g);
            for ((r2, _), dc) in b.c[j].iter().zip(&dinv_c) {
                s[(*r, *r2)] -= cv.dot(dc);
            }
        }
        chols.push((ch, dinv_g));
    }
    let (delta_r, logdet_s) = if nr > 0 {
        let ch = s.cholesky()?;
        let ld = 2.0 * ch.l().diagonal().iter().map(|v| v.ln()).sum::<f64>();
        (ch.solve(&rhs), ld)
    } else {
        (DVector::zeros(0), 0.0)
    };
    let mut delta_a = vec![0.0; g_a.len()];
    for (j, (ch, dinv_g)) in chols.iter().enumerate() {
        // delta_A_j = D_j^-1 (g_j - C_j delta_R)
        let mut cd = DVector::zeros(qa);
        for (r, cv) in &b.c[j] {
            cd += cv * delta_r[*r];
        }
        let dj = dinv_g - ch.solve(&cd);
        delta_a[j * qa..(j + 1) * qa].copy_from_slice(dj.as_slice());
    }
    Some((
        delta_a,
        delta_r.iter().copied().collect(),
        logdet + logdet_s,
    ))
}

/// `-2 log L` (Laplace) at `(theta_1, ..., theta_K, beta)` with the joint modes of every term;
/// `modes` (`u_A` then `u_R`) warm-starts the next evaluation.
pub fn deviance(
    d: &GlmmData,
    fam: Family,
    terms: &[ReTerm],
    theta_beta: &[f64],
    modes: &mut [f64],
    constants: f64,
) -> f64 {
    let p = d.p;
    let n = d.y.len();
    let mut lambdas = Vec::with_capacity(terms.len());
    let mut off = 0;
    for t in terms {
        let k = n_theta(t.q);
        lambdas.push(lambda(t.q, &theta_beta[off..off + k]));
        off += k;
    }
    let beta = &theta_beta[off..off + p];
    let coefs = row_coefs(terms, &lambdas, n);
    let eta0: Vec<f64> = (0..n)
        .map(|i| d.offset[i] + (0..p).map(|j| d.x[i * p + j] * beta[j]).sum::<f64>())
        .collect();
    let (na, _) = sizes(terms);
    let qa = terms[0].q;
    let eta_at = |u: &[f64], i: usize| -> f64 {
        let rc = &coefs[i];
        let j = terms[0].group[i] as usize;
        let mut e = eta0[i];
        for (c, x) in rc.a.iter().enumerate() {
            e += x * u[j * qa + c];
        }
        for &(r, x) in &rc.r {
            e += x * u[na + r];
        }
        e
    };
    let pass = |u: &[f64]| -> (f64, Vec<super::family::RowEval>) {
        let mut h = -0.5 * u.iter().map(|v| v * v).sum::<f64>();
        let evals: Vec<super::family::RowEval> = (0..n)
            .map(|i| fam.eval(d.y[i], d.trials[i], eta_at(u, i)))
            .collect();
        for (i, r) in evals.iter().enumerate() {
            h += d.weights[i] * r.kernel;
        }
        (h, evals)
    };
    let mut u: Vec<f64> = if modes.iter().all(|v| v.is_finite()) {
        modes.to_vec()
    } else {
        vec![0.0; modes.len()]
    };
    let (mut hu, mut ev) = pass(&u);
    for _ in 0..100 {
        // gradient -u + sum_i w_i score_i a_i, information with the Fisher weights
        let mut g = u.iter().map(|v| -v).collect::<Vec<f64>>();
        for (i, rc) in coefs.iter().enumerate() {
            let s = d.weights[i] * ev[i].score;
            let j = terms[0].group[i] as usize;
            for (c, x) in rc.a.iter().enumerate() {
                g[j * qa + c] += s * x;
            }
            for &(r, x) in &rc.r {
                g[na + r] += s * x;
            }
        }
        let w: Vec<f64> = ev
            .iter()
            .zip(&d.weights)
            .map(|(e, wi)| wi * e.weight)
            .collect();
        let blocks = assemble(terms, &coefs, &w);
        let Some((da, dr, _)) = solve(&blocks, &g[..na], &g[na..], qa) else {
            return f64::INFINITY;
        };
        let mut step: Vec<f64> = da.into_iter().chain(dr).collect();
        let mut accepted = false;
        for _ in 0..30 {
            let cand: Vec<f64> = u.iter().zip(&step).map(|(a, b)| a + b).collect();
            let (hc, evc) = pass(&cand);
            if hc.is_finite() && hc >= hu - 1e-12 * hu.abs() {
                u = cand;
                hu = hc;
                ev = evc;
                accepted = true;
                break;
            }
            for s in &mut step {
                *s /= 2.0;
            }
        }
        let size = step.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let scale = 1.0 + u.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if !accepted || size < 1e-13 * scale {
            break;
        }
    }
    modes.copy_from_slice(&u);
    let c: Vec<f64> = ev
        .iter()
        .zip(&d.weights)
        .map(|(e, wi)| wi * e.curvature)
        .collect();
    let blocks = assemble(terms, &coefs, &c);
    let zeros_a = vec![0.0; na];
    let zeros_r = vec![0.0; modes.len() - na];
    let Some((_, _, logdet)) = solve(&blocks, &zeros_a, &zeros_r, qa) else {
        return f64::INFINITY;
    };
    if !hu.is_finite() {
        return f64::INFINITY;
    }
    -2.0 * hu + logdet - 2.0 * constants
}
