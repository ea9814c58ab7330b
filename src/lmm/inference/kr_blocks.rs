//! Kenward-Roger's sums for a linear mixed model, block by block in the coordinates of the
//! random effects.
//!
//! pbkrtest (`vcovAdj`) forms the marginal covariance `V = sigma^2 I + Z D Z'` as an `n x n`
//! matrix, one `n x n` derivative `G_r` per covariance parameter and `V^-1`. Observations fall
//! into independent blocks (connected components of the grouping factors, [`components`]), and
//! within a block every vector pbkrtest multiplies lies in the span of the columns of `X` and
//! `Z`: `V^-1 = (I - Z N Z') / sigma^2` with `N = Lambda (Lambda' Z'Z Lambda + I)^-1 Lambda'`
//! (Woodbury; `Lambda` the relative covariance factor, so `N` exists at singular fits), each
//! `G_r = Z E_r Z'` with `E_r` picking one element of one term's covariance at every level (the
//! residual variance: `G = I`). A vector `X a + Z b` is kept as its coefficients `(a, b)` and
//! every product reduces to `X'X`, `Z'X` and `Z'Z` of the block: the cost per block is
//! `O(q^3 + q^2 p r)` for `q` random-effects columns, `p` fixed effects and `r` parameters,
//! against pbkrtest's `O(n^3 r)` (a cluster of 2,000 rows with 801 random-effects columns is
//! about 60 times less work; a participant of 4 waves with a random intercept and slope:
//! `q = 2`). The sums `P_r`, `Q_rs` and `tr(V^-1 G_r V^-1 G_s)` then go to
//! [`super::kenward_roger::kr_from_sums`] as pbkrtest's do.
//!
//! [`dense_blocks`] builds pbkrtest's `n x n` matrices per block for
//! [`super::kenward_roger::kr_adjust`]: the reference this formulation is tested against.
use nalgebra::DMatrix;
use rayon::prelude::*;

use super::kenward_roger::KrBlock;
use super::DfError;
use crate::formula::design::ModelFrame;
use crate::lmm::model::lambda;
use crate::lmm::optimize::LmmFit;

/// Largest number of random-effects columns in one independent block (dense `q x q` work).
pub const KR_MAX_RE_COLUMNS: usize = 6_000;

/// Observations linked through a shared level of any grouping factor (union-find), as sorted
/// row lists in order of their first row.
pub fn components(mf: &ModelFrame) -> Vec<Vec<usize>> {
    let n = mf.n();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for t in &mf.re_terms {
        let mut first_of_level: Vec<Option<usize>> = vec![None; t.n_levels()];
        for i in 0..n {
            let lvl = t.refs[i] as usize;
            match first_of_level[lvl] {
                None => first_of_level[lvl] = Some(i),
                Some(f) => {
                    let a = find(&mut parent, i);
                    let b = find(&mut parent, f);
                    if a != b {
                        parent[a] = b;
                    }
                }
            }
        }
    }
    let mut slot = vec![usize::MAX; n];
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
        let r = find(&mut parent, i);
        if slot[r] == usize::MAX {
            slot[r] = out.len();
            out.push(Vec::new());
        }
        out[slot[r]].push(i);
    }
    out
}

/// The cross products of one block and the structure of its random effects.
struct ReBlock {
    n: usize,
    /// `X'X` (p x p), `Z'X` (q x p), `Z'Z` (q x q) of the block's rows.
    xx: DMatrix<f64>,
    zx: DMatrix<f64>,
    zz: DMatrix<f64>,
    /// Per term: first column of the term in the block and number of its levels there.
    terms: Vec<(usize, usize)>,
}

impl ReBlock {
    fn new(mf: &ModelFrame, obs: &[usize], local: &mut [Vec<u32>]) -> Result<Self, DfError> {
        let p = mf.p();
        let mut terms = Vec::with_capacity(mf.re_terms.len());
        let mut q = 0usize;
        for (t, loc) in mf.re_terms.iter().zip(local.iter_mut()) {
            let mut count = 0u32;
            for &i in obs {
                let l = t.refs[i] as usize;
                if loc[l] == u32::MAX {
                    loc[l] = count;
                    count += 1;
                }
            }
            terms.push((q, count as usize));
            q += count as usize * t.q;
        }
        if q > KR_MAX_RE_COLUMNS {
            return Err(DfError::BlockTooLarge { n: q });
        }
        let mut xx = DMatrix::<f64>::zeros(p, p);
        let mut zx = DMatrix::<f64>::zeros(q, p);
        let mut zz = DMatrix::<f64>::zeros(q, q);
        let mut cols: Vec<(usize, f64)> = Vec::new();
        for &i in obs {
            let x = &mf.x[i * p..(i + 1) * p];
            for a in 0..p {
                for b in 0..p {
                    xx[(a, b)] += x[a] * x[b];
                }
            }
            cols.clear();
            for ((t, loc), &(start, _)) in mf.re_terms.iter().zip(local.iter()).zip(&terms) {
                let base = start + loc[t.refs[i] as usize] as usize * t.q;
                for k in 0..t.q {
                    cols.push((base + k, t.z[i * t.q + k]));
                }
            }
            for &(ca, va) in &cols {
                for (b, xb) in x.iter().enumerate() {
                    zx[(ca, b)] += va * xb;
                }
                for &(cb, vb) in &cols {
                    zz[(ca, cb)] += va * vb;
                }
            }
        }
        // Reset the level map for the next block.
        for (t, loc) in mf.re_terms.iter().zip(local.iter_mut()) {
            for &i in obs {
                loc[t.refs[i] as usize] = u32::MAX;
            }
        }
        Ok(ReBlock {
            n: obs.len(),
            xx,
            zx,
            zz,
            terms,
        })
    }

    fn q(&self) -> usize {
        self.zz.nrows()
    }
}

/// A vector (or columns) `X a + Z b` of the block, kept as its coefficients.
struct Span {
    a: DMatrix<f64>,
    b: DMatrix<f64>,
}

/// `Q_rs`, `P_r` and the traces of one block, and the operators they are built from.
struct BlockOps<'a> {
    blk: &'a ReBlock,
    /// `N = Lambda (Lambda' Z'Z Lambda + I)^-1 Lambda'`.
    n: DMatrix<f64>,
    s2: f64,
}

impl BlockOps<'_> {
    /// `Z'(X a + Z b)`.
    fn zu(&self, u: &Span) -> DMatrix<f64> {
        &self.blk.zx * &u.a + &self.blk.zz * &u.b
    }
    /// `X'(X a + Z b)`.
    fn xu(&self, u: &Span) -> DMatrix<f64> {
        &self.blk.xx * &u.a + self.blk.zx.tr_mul(&u.b)
    }
    /// `V^-1 (X a + Z b) = (X a + Z (b - N Z'u)) / sigma^2`.
    fn w(&self, u: &Span) -> Span {
        let zu = self.zu(u);
        Span {
            a: &u.a / self.s2,
            b: (&u.b - &self.n * zu) / self.s2,
        }
    }
    /// `u'v` in the observation space.
    fn inner(&self, u: &Span, v: &Span) -> DMatrix<f64> {
        u.a.tr_mul(&self.xu(v)) + u.b.tr_mul(&self.zu(v))
    }
}

/// The non-zero positions of `E_r` for every covariance parameter of the random effects, in
/// pbkrtest's order (per term the lower triangle by column: `(r, c)` for `c <= r`); every
/// entry is 1.
fn e_positions(mf: &ModelFrame, blk: &ReBlock) -> Vec<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    for (t, &(start, levels)) in mf.re_terms.iter().zip(&blk.terms) {
        let q = t.q;
        for c in 0..q {
            for r in c..q {
                let mut e = Vec::with_capacity(levels * 2);
                for l in 0..levels {
                    let (i, j) = (start + l * q + r, start + l * q + c);
                    e.push((i, j));
                    if i != j {
                        e.push((j, i));
                    }
                }
                out.push(e);
            }
        }
    }
    out
}

/// `E y` for the rows of `y` picked by `E`'s non-zero positions.
fn apply_e(e: &[(usize, usize)], y: &DMatrix<f64>) -> DMatrix<f64> {
    let mut out = DMatrix::<f64>::zeros(y.nrows(), y.ncols());
    for &(i, j) in e {
        for c in 0..y.ncols() {
            out[(i, c)] += y[(j, c)];
        }
    }
    out
}

/// The block-diagonal relative covariance factor of a block (`Lambda_t` at each level).
fn block_lambda(mf: &ModelFrame, fit: &LmmFit, blk: &ReBlock) -> DMatrix<f64> {
    let q = blk.q();
    let mut lam = DMatrix::<f64>::zeros(q, q);
    for ((t, bt), &(start, levels)) in mf.re_terms.iter().zip(&fit.products.terms).zip(&blk.terms) {
        let l = lambda(
            &fit.theta[bt.theta_offset..bt.theta_offset + bt.n_theta()],
            t.q,
        );
        for lv in 0..levels {
            let o = start + lv * t.q;
            for r in 0..t.q {
                for c in 0..=r {
                    lam[(o + r, o + c)] = l[r * t.q + c];
                }
            }
        }
    }
    lam
}

/// The sums of one block: `P_r`, `Q_rs` (`s >= r`, at `r * nr + s`) and
/// `tr(V^-1 G_r V^-1 G_s)`.
type Sums = (Vec<DMatrix<f64>>, Vec<DMatrix<f64>>, DMatrix<f64>);

fn block_sums(mf: &ModelFrame, fit: &LmmFit, blk: &ReBlock) -> Result<Sums, DfError> {
    let p = mf.p();
    let q = blk.q();
    let s2 = fit.sigma * fit.sigma;
    let lam = block_lambda(mf, fit, blk);
    let m = lam.tr_mul(&blk.zz) * &lam + DMatrix::<f64>::identity(q, q);
    let chol = m.cholesky().ok_or(DfError::BlockNotPositiveDefinite)?;
    let n_mat = &lam * chol.solve(&lam.transpose());
    let ops = BlockOps { blk, n: n_mat, s2 };
    let es = e_positions(mf, blk);
    let nr = es.len() + 1;

    // W X and, per parameter, T_r = G_r W X and W T_r.
    let wx = ops.w(&Span {
        a: DMatrix::identity(p, p),
        b: DMatrix::zeros(q, p),
    });
    let zwx = ops.zu(&wx);
    let mut t: Vec<Span> = es
        .iter()
        .map(|e| Span {
            a: DMatrix::zeros(p, p),
            b: apply_e(e, &zwx),
        })
        .collect();
    t.push(Span {
        a: wx.a.clone(),
        b: wx.b.clone(),
    });
    let wt: Vec<Span> = t.iter().map(|s| ops.w(s)).collect();
    let pp: Vec<DMatrix<f64>> = t.iter().map(|tr| -ops.inner(&wx, tr)).collect();
    let mut qq = vec![DMatrix::<f64>::zeros(p, p); nr * nr];
    for s in 0..nr {
        let xs = ops.xu(&wt[s]);
        let zs = ops.zu(&wt[s]);
        for r in 0..=s {
            qq[r * nr + s] = t[r].a.tr_mul(&xs) + t[r].b.tr_mul(&zs);
        }
    }

    // Traces: B = Z'V^-1 Z = Z'Z (I - N Z'Z) / sigma^2, C = Z'V^-2 Z = (I - Z'Z N) B / sigma^2,
    // tr(V^-2) = (n - 2 tr(N Z'Z) + tr(N Z'Z N Z'Z)) / sigma^4.
    let nzz = &ops.n * &blk.zz;
    let i_minus = DMatrix::<f64>::identity(q, q) - &nzz;
    let b = (&blk.zz * &i_minus) / s2;
    let c = i_minus.tr_mul(&b) / s2;
    let mut ktrace = DMatrix::<f64>::zeros(nr, nr);
    for r in 0..es.len() {
        for s in r..es.len() {
            let mut tr = 0.0;
            for &(i, j) in &es[r] {
                for &(k, l) in &es[s] {
                    tr += b[(j, k)] * b[(l, i)];
                }
            }
            ktrace[(r, s)] = tr;
            ktrace[(s, r)] = tr;
        }
        let tr: f64 = es[r].iter().map(|&(i, j)| c[(j, i)]).sum();
        ktrace[(r, nr - 1)] = tr;
        ktrace[(nr - 1, r)] = tr;
    }
    let tr_nzz = nzz.trace();
    let tr_nzz2 = nzz.component_mul(&nzz.transpose()).sum();
    ktrace[(nr - 1, nr - 1)] = (blk.n as f64 - 2.0 * tr_nzz + tr_nzz2) / (s2 * s2);
    Ok((pp, qq, ktrace))
}

/// pbkrtest's `P_r`, `Q_rs` and `tr(V^-1 G_r V^-1 G_s)` summed over the independent blocks of
/// the fit, in the random-effects coordinates (see the module documentation); blocks in
/// parallel, summed in block order.
pub fn kr_sums(fit: &LmmFit) -> Result<Sums, DfError> {
    let mf = &fit.frame;
    let comps = components(mf);
    let p = mf.p();
    let nr: usize = mf
        .re_terms
        .iter()
        .map(|t| t.q * (t.q + 1) / 2)
        .sum::<usize>()
        + 1;
    let per_block: Vec<Result<Sums, DfError>> = comps
        .par_iter()
        .map_init(
            || {
                mf.re_terms
                    .iter()
                    .map(|t| vec![u32::MAX; t.n_levels()])
                    .collect::<Vec<_>>()
            },
            |local, obs| block_sums(mf, fit, &ReBlock::new(mf, obs, local)?),
        )
        .collect();
    let mut pp = vec![DMatrix::<f64>::zeros(p, p); nr];
    let mut qq = vec![DMatrix::<f64>::zeros(p, p); nr * nr];
    let mut ktrace = DMatrix::<f64>::zeros(nr, nr);
    for b in per_block {
        let (bp, bq, bk) = b?;
        for (acc, v) in pp.iter_mut().zip(&bp) {
            *acc += v;
        }
        for (acc, v) in qq.iter_mut().zip(&bq) {
            *acc += v;
        }
        ktrace += bk;
    }
    Ok((pp, qq, ktrace))
}

/// Largest independent block for the dense reference formulation ([`dense_blocks`]).
pub const KR_MAX_DENSE_BLOCK: usize = 6_000;

/// pbkrtest's `n x n` matrices per independent block, with derivatives in pbkrtest's
/// parameters (per term the distinct elements of its covariance matrix, then the residual
/// variance): the reference for [`kr_sums`] (`kr_adjust(&dense_blocks(fit)?, &fit.vcov)`).
pub fn dense_blocks(fit: &LmmFit) -> Result<Vec<KrBlock>, DfError> {
    let mf = &fit.frame;
    let p = mf.p();
    let vc = fit.varcorr();
    let s2 = fit.sigma * fit.sigma;
    let mut out = Vec::new();
    for obs in components(mf) {
        let nc = obs.len();
        if nc > KR_MAX_DENSE_BLOCK {
            return Err(DfError::BlockTooLarge { n: nc });
        }
        let x = DMatrix::from_fn(nc, p, |a, c| mf.x[obs[a] * p + c]);
        let mut v = DMatrix::<f64>::identity(nc, nc) * s2;
        let mut dv = Vec::new();
        for (t, cov) in mf.re_terms.iter().zip(&vc) {
            let q = t.q;
            for c in 0..q {
                for r in c..q {
                    let g = DMatrix::<f64>::from_fn(nc, nc, |a, b2| {
                        let (ia, ib) = (obs[a], obs[b2]);
                        if t.refs[ia] != t.refs[ib] {
                            return 0.0;
                        }
                        let za = &t.z[ia * q..(ia + 1) * q];
                        let zb = &t.z[ib * q..(ib + 1) * q];
                        if r == c {
                            za[r] * zb[r]
                        } else {
                            za[r] * zb[c] + za[c] * zb[r]
                        }
                    });
                    v += &g * cov.cov[r * q + c];
                    dv.push(g);
                }
            }
        }
        dv.push(DMatrix::identity(nc, nc));
        out.push(KrBlock { x, v, dv });
    }
    Ok(out)
}
