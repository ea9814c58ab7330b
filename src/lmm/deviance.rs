//! The profiled deviance: for a given theta, the blocked Cholesky factor `L` of
//! `[Lambda'Z'Z Lambda + I, Lambda'Z'X, Lambda'Z'y; ...; y'y]` (MixedModels.jl `updateL!`),
//! from which log|L|^2, log|R_X|^2 and the penalized residual sum of squares r^2 follow
//! (Bates, Maechler, Bolker & Walker 2015, J Stat Softw 67(1), eqs. 31-42).
use super::model::{lambda, BlockedProducts};
use super::sparse::SparseWork;
use crate::stats::linalg::{cholesky_in_place, lower_inverse};

/// The pieces of the criterion at one theta: with them the deviance at any sigma is a formula
/// ([`Criterion::deviance_at_sigma`]).
#[derive(Debug, Clone, Copy)]
pub struct Criterion {
    pub ok: bool,
    pub logdet_l: f64,
    pub logdet_rx: f64,
    pub pwrss: f64,
}

impl Criterion {
    /// -2 log-likelihood (REML: restricted) at sigma with beta profiled:
    /// `log|L|^2 + pwrss / s^2 + n log(2 pi s^2)`, plus `log|R_X|^2 - p log(2 pi s^2)` for
    /// REML; `+inf` when the factor failed.
    pub fn deviance_at_sigma(&self, bp: &BlockedProducts, reml: bool, sigma: f64) -> f64 {
        if !self.ok {
            return f64::INFINITY;
        }
        let s2 = sigma * sigma;
        let two_pi = 2.0 * std::f64::consts::PI;
        let n = bp.n as f64;
        let dev = self.logdet_l + self.pwrss / s2 + n * (two_pi * s2).ln();
        if reml {
            dev + self.logdet_rx - bp.p as f64 * (two_pi * s2).ln()
        } else {
            dev
        }
    }
}

/// The factor at one theta. Reused across evaluations (no allocation per evaluation).
#[derive(Debug, Clone)]
pub struct Factor {
    pub theta: Vec<f64>,
    /// Per level of the first term, the lower Cholesky factor of `Lambda_1' A_g Lambda_1 + I`.
    pub l11: Vec<f64>,
    /// The coupling block `L_T1`, laid out as `BlockedProducts::coupling.vals`.
    pub l_t1: Vec<f64>,
    /// Dense lower Cholesky factor of the trailing block, `m x m` **column-major** (faer's
    /// native layout, so its SIMD factorization applies): `L[i, j]` (i >= j) is
    /// `l_tt[j * m + i]`; see [`Factor::ltt`]. The strict upper triangle is zero.
    pub l_tt: Vec<f64>,
    /// log|L_Z|^2 (random-effects part).
    pub logdet_l: f64,
    /// log|R_X|^2.
    pub logdet_rx: f64,
    /// Penalized residual sum of squares.
    pub pwrss: f64,
    /// False when a pivot was not positive (theta or X degenerate).
    pub ok: bool,
    /// Scratch space (no allocation per evaluation).
    scratch: Vec<f64>,
    /// Buffers of the sparse path (created on first use).
    sparse_work: Option<SparseWork>,
    /// The unscaled downdated trailing block of the class path, and per-class scratch.
    wbuf: Vec<f64>,
    mbuf: Vec<f64>,
    /// True when `l_tt` holds the factor of the current theta (false after
    /// [`Factor::update_criterion`] took the sparse path).
    pub dense_valid: bool,
    /// True when the last update went through the first term's class sums
    /// ([`super::classes`]): `l_tt` is the factor of the current theta, `l11` and `l_t1` are
    /// not.
    class_path: bool,
}

impl Factor {
    /// An empty factor for `bp`. `l11` and `l_t1` (one block per level of the first term: 25
    /// MB for 200,000 participants) are allocated by the first update that needs them: the
    /// class and sparse paths never do, and the parallel derivative passes create one factor
    /// per task.
    pub fn new(bp: &BlockedProducts) -> Self {
        Factor {
            theta: vec![0.0; bp.n_theta],
            l11: Vec::new(),
            l_t1: Vec::new(),
            l_tt: Vec::new(),
            logdet_l: 0.0,
            logdet_rx: 0.0,
            pwrss: 0.0,
            ok: false,
            scratch: Vec::new(),
            sparse_work: None,
            wbuf: Vec::new(),
            mbuf: Vec::new(),
            dense_valid: false,
            class_path: false,
        }
    }

    /// Element `L[i, j]` (`i >= j`) of the trailing factor.
    #[inline]
    pub fn ltt(&self, m: usize, i: usize, j: usize) -> f64 {
        self.l_tt[j * m + i]
    }

    /// Recomputes the factor at `theta` (`updateL!`), the dense trailing factor included.
    pub fn update(&mut self, bp: &BlockedProducts, theta: &[f64]) {
        self.update_impl(bp, theta, false);
    }

    /// Recomputes only what the criterion needs (`logdet_l`, `logdet_rx`, `pwrss`, `ok`),
    /// by the sparse factorization of the trailing block when `bp.sparse` is set (crossed
    /// designs; [`super::sparse`]). On that path `l_tt` is not updated, nor `l11` and `l_t1`
    /// when the first term has one column (`dense_valid` false): use [`Factor::update`] for
    /// anything beyond the criterion. Same values as [`Factor::update`] up to rounding.
    pub fn update_criterion(&mut self, bp: &BlockedProducts, theta: &[f64]) {
        self.update_impl(bp, theta, true);
    }

    fn update_impl(&mut self, bp: &BlockedProducts, theta: &[f64], allow_sparse: bool) {
        let sparse = if allow_sparse {
            bp.sparse.as_deref()
        } else {
            None
        };
        let classes = if allow_sparse && sparse.is_none() {
            bp.classes.as_deref()
        } else {
            None
        };
        self.dense_valid = sparse.is_none() && classes.is_none();
        self.class_path = sparse.is_none() && classes.is_some();
        let mut work = match sparse {
            Some(sp) => Some(self.sparse_work.take().unwrap_or_else(|| sp.work())),
            None => None,
        };
        self.update_inner(bp, theta, sparse, classes, work.as_mut());
        if work.is_some() {
            self.sparse_work = work;
        }
    }

    // A named numerical kernel (kept in one piece, over the ~150-line guideline): the blocked
    // PLS update of lme4's `updateL` and the profiled deviance, whose phases share the factor
    // workspaces and whose loop order is what the benchmark measures.
    fn update_inner(
        &mut self,
        bp: &BlockedProducts,
        theta: &[f64],
        sparse: Option<&super::sparse::SparseTrailing>,
        classes: Option<&super::classes::ClassDowndate>,
        mut work: Option<&mut SparseWork>,
    ) {
        self.theta.clear();
        self.theta.extend_from_slice(theta);
        self.ok = true;
        let m = bp.m;
        if sparse.is_none() && self.l_tt.len() != m * m {
            // Allocated on the first dense update only (the sparse path never needs it).
            self.l_tt = vec![0.0; m * m];
        }
        let Some(t1) = bp.terms.first() else {
            self.ok = false;
            return;
        };
        let q1 = t1.q;
        let lam1 = lambda(&theta[t1.theta_offset..t1.theta_offset + t1.n_theta()], q1);
        let lam_rest: Vec<Vec<f64>> = bp
            .terms
            .iter()
            .map(|t| lambda(&theta[t.theta_offset..t.theta_offset + t.n_theta()], t.q))
            .collect();

        // Trailing block: Lambda_T' A_TT Lambda_T + I on the random-effects rows.
        let diag_lambda_t = bp.terms.iter().skip(1).all(|t| t.q == 1);
        // log|L_11|^2 when the sparse gather or the class sums did the first term's work.
        let mut gathered: Option<f64> = None;
        // Class path: the downdate is subtracted from a copy of A_TT before the scaling.
        let mut downdated: Option<Vec<f64>> = None;
        if let Some(cd) = classes {
            let mut w = std::mem::take(&mut self.wbuf);
            w.clear();
            w.extend_from_slice(&bp.a_tt);
            match cd.apply(&lam1, &mut w, m, &mut self.mbuf) {
                Some(ld) => gathered = Some(ld),
                None => {
                    self.ok = false;
                    self.wbuf = w;
                    return;
                }
            }
            downdated = Some(w);
        }
        let a_src: &[f64] = downdated.as_deref().unwrap_or(&bp.a_tt);
        // Diagonal of Lambda_T when it is diagonal (1 on the rows of X and y).
        let mut sv = Vec::new();
        if diag_lambda_t {
            // Diagonal Lambda_T: one fused pass over one triangle (A_TT is symmetric; the
            // upper triangle of the row-major A_TT is the lower triangle column-major).
            sv = vec![1.0; m];
            for (j, t) in bp.terms.iter().enumerate().skip(1) {
                let lam = lam_rest[j][0];
                sv[t.offset..t.offset + t.n_levels]
                    .iter_mut()
                    .for_each(|v| *v = lam);
            }
            if let (Some(sp), Some(w)) = (sparse, work.as_deref_mut()) {
                // One-column first term: the whole downdate by the gather, no level pass.
                gathered = sp.fill_gathered(w, &sv, lam1[0], bp.q_rest);
                if gathered.is_none() {
                    sp.fill(&mut w.vals, &sv, bp.q_rest);
                }
            }
            let dense_rows = if sparse.is_some() { 0 } else { m };
            for i in 0..dense_rows {
                let si = sv[i];
                let src = &a_src[i * m + i..(i + 1) * m];
                let dst = &mut self.l_tt[i * m + i..(i + 1) * m];
                for ((d, a), sj) in dst.iter_mut().zip(src).zip(&sv[i..]) {
                    *d = a * si * sj;
                }
            }
        } else {
            self.l_tt.copy_from_slice(a_src);
            let qmax = bp.terms.iter().map(|t| t.q).max().unwrap_or(1);
            if self.scratch.len() < qmax {
                self.scratch.resize(qmax, 0.0);
            }
            for (j, t) in bp.terms.iter().enumerate().skip(1) {
                let lam = &lam_rest[j];
                let q = t.q;
                for lvl in 0..t.n_levels {
                    let c0 = t.offset + lvl * q;
                    scale_cols(&mut self.l_tt, m, m, c0, q, lam, &mut self.scratch);
                    scale_rows(&mut self.l_tt, m, c0, q, lam, &mut self.scratch);
                }
            }
        }
        if let Some(w) = downdated {
            self.wbuf = w;
        }
        if sparse.is_none() {
            for d in 0..bp.q_rest {
                self.l_tt[d * m + d] += 1.0;
            }
        }

        let qmax = bp.terms.iter().map(|t| t.q).max().unwrap_or(1);
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(q1 * q1 + qmax, 0.0);
        let (al, buf) = scratch.split_at_mut(q1 * q1);
        let mut logdet_l = gathered.unwrap_or(0.0);
        let mut diag_prod = 1.0f64;
        let cp = &bp.coupling;
        let n_level_pass = if gathered.is_some() { 0 } else { cp.n_levels() };
        if n_level_pass > 0 && self.l11.len() != bp.a11.len() {
            self.l11 = vec![0.0; bp.a11.len()];
        }
        if n_level_pass > 0 && self.l_t1.len() != cp.vals.len() {
            self.l_t1 = vec![0.0; cp.vals.len()];
        }
        for g in 0..n_level_pass {
            let rows = cp.rows(g);
            let vr = cp.val_range(g);
            // L11[g] = chol(Lambda_1' A_g Lambda_1 + I)
            let a = &bp.a11[g * q1 * q1..(g + 1) * q1 * q1];
            let l = &mut self.l11[g * q1 * q1..(g + 1) * q1 * q1];
            if q1 == 1 {
                l[0] = (a[0] * lam1[0] * lam1[0] + 1.0).sqrt();
            } else if q1 == 2 {
                // Closed form for the common random intercept + slope.
                let (la, lb, lc) = (lam1[0], lam1[2], lam1[3]);
                // A Lambda
                let p00 = a[0] * la + a[1] * lb;
                let p10 = a[2] * la + a[3] * lb;
                let p11 = a[3] * lc;
                let m00 = la * p00 + lb * p10 + 1.0;
                let m10 = lc * p10;
                let m11 = lc * p11 + 1.0;
                let l00 = m00.sqrt();
                let l10 = m10 / l00;
                let d = m11 - l10 * l10;
                if d <= 0.0 || !d.is_finite() || !l00.is_finite() {
                    self.ok = false;
                    self.scratch = scratch;
                    return;
                }
                l[0] = l00;
                l[1] = 0.0;
                l[2] = l10;
                l[3] = d.sqrt();
            } else {
                congruence(a, &lam1, q1, l, al);
                for d in 0..q1 {
                    l[d * q1 + d] += 1.0;
                }
                if !cholesky_in_place(l, q1) {
                    self.ok = false;
                    self.scratch = scratch;
                    return;
                }
            }
            let l: &[f64] = l;
            // log|L11| accumulated as a product (pivots are >= 1), logged in batches.
            for d in 0..q1 {
                diag_prod *= l[d * q1 + d];
            }
            if diag_prod > 1e200 {
                logdet_l += 2.0 * diag_prod.ln();
                diag_prod = 1.0;
            }
            // L_T1[g] = (Lambda_T' A_T1[g] Lambda_1) L11[g]^{-T}
            let r = rows.len();
            let b = &mut self.l_t1[vr.clone()];
            b.copy_from_slice(&cp.vals[vr]);
            // Row scaling by Lambda_j' for rows of later terms (contiguous per level).
            if diag_lambda_t {
                for (v, &row) in b
                    .iter_mut()
                    .zip(rows.iter().flat_map(|r| std::iter::repeat_n(r, q1)))
                {
                    *v *= sv[row];
                }
            }
            let mut k = if diag_lambda_t { r } else { 0 };
            while k < r {
                let row = rows[k];
                if row >= bp.q_rest {
                    break;
                }
                let (j, t) = term_of_row(bp, row);
                scale_rows(b, q1, k, t.q, &lam_rest[j], buf);
                k += t.q;
            }
            // Right-multiply by Lambda_1 and solve X L11' = B, row by row.
            if q1 == 1 {
                let f = lam1[0] / l[0];
                b.iter_mut().for_each(|v| *v *= f);
            } else if q1 == 2 {
                let (la, lb, lc) = (lam1[0], lam1[2], lam1[3]);
                let (l10, i00, i11) = (l[2], 1.0 / l[0], 1.0 / l[3]);
                for br in b.chunks_exact_mut(2) {
                    let y0 = br[0] * la + br[1] * lb;
                    let y1 = br[1] * lc;
                    let z0 = y0 * i00;
                    br[0] = z0;
                    br[1] = (y1 - z0 * l10) * i11;
                }
            } else {
                scale_cols(b, r, q1, 0, q1, &lam1, buf);
                for br in b.chunks_exact_mut(q1) {
                    for c in 0..q1 {
                        let lc = &l[c * q1..c * q1 + c + 1];
                        let mut sum = br[c];
                        for (x, y) in br[..c].iter().zip(lc) {
                            sum -= x * y;
                        }
                        br[c] = sum / lc[c];
                    }
                }
            }
            // Downdate the trailing block: T[rows, rows] -= B B' (lower triangle, stored
            // column-major: column `rb` is the slice `l_tt[rb * m..]`, rows `ra >= rb`).
            let b: &[f64] = b;
            if let (Some(sp), Some(w)) = (sparse, work.as_deref_mut()) {
                // Same pairs, in the same order, at their positions in the sparse pattern.
                let pos = &sp.dd_pos[sp.dd_ptr[g]..sp.dd_ptr[g + 1]];
                let vals = &mut w.vals;
                let mut k = 0;
                for ib in 0..r {
                    let bb = &b[ib * q1..(ib + 1) * q1];
                    for ia in ib..r {
                        let ba = &b[ia * q1..(ia + 1) * q1];
                        let mut sum = 0.0;
                        for (x, y) in ba.iter().zip(bb) {
                            sum += x * y;
                        }
                        vals[pos[k] as usize] -= sum;
                        k += 1;
                    }
                }
            } else if q1 == 1 {
                for (ib, &rb) in rows.iter().enumerate() {
                    let vb = b[ib];
                    let tcol = &mut self.l_tt[rb * m..rb * m + m];
                    for (&ra, &va) in rows[ib..].iter().zip(&b[ib..]) {
                        tcol[ra] -= va * vb;
                    }
                }
            } else if q1 == 2 {
                for (ib, (&rb, bb)) in rows.iter().zip(b.chunks_exact(2)).enumerate() {
                    let (b0, b1) = (bb[0], bb[1]);
                    let tcol = &mut self.l_tt[rb * m..rb * m + m];
                    for (&ra, ba) in rows[ib..].iter().zip(b[ib * 2..].chunks_exact(2)) {
                        tcol[ra] -= ba[0] * b0 + ba[1] * b1;
                    }
                }
            } else {
                for (ib, (&rb, bb)) in rows.iter().zip(b.chunks_exact(q1)).enumerate() {
                    let tcol = &mut self.l_tt[rb * m..rb * m + m];
                    for (&ra, ba) in rows[ib..].iter().zip(b[ib * q1..].chunks_exact(q1)) {
                        let mut sum = 0.0;
                        for (x, y) in ba.iter().zip(bb) {
                            sum += x * y;
                        }
                        tcol[ra] -= sum;
                    }
                }
            }
        }
        logdet_l += 2.0 * diag_prod.ln();
        self.scratch = scratch;
        let diag_at = |f: &Self, w: &Option<&mut SparseWork>, d: usize| -> f64 {
            match w {
                Some(w) => w.diag[d],
                None => f.l_tt[d * m + d],
            }
        };
        if let (Some(sp), Some(w)) = (sparse, work.as_deref_mut()) {
            if sp.factor_diag(w).is_none() {
                self.ok = false;
                return;
            }
        } else if !chol_dense_colmajor(&mut self.l_tt, m) {
            self.ok = false;
            return;
        }
        for d in 0..bp.q_rest {
            logdet_l += 2.0 * diag_at(self, &work, d).ln();
        }
        let mut logdet_rx = 0.0;
        for d in bp.q_rest..m - 1 {
            logdet_rx += 2.0 * diag_at(self, &work, d).ln();
        }
        let r = diag_at(self, &work, m - 1);
        self.logdet_l = logdet_l;
        self.logdet_rx = logdet_rx;
        self.pwrss = r * r;
    }

    /// Profiled deviance (ML) or REML criterion at the current factor; `+inf` when the factor
    /// failed.
    pub fn objective(&self, bp: &BlockedProducts, reml: bool) -> f64 {
        if !self.ok || !self.pwrss.is_finite() {
            return f64::INFINITY;
        }
        let n = bp.n as f64;
        let two_pi = 2.0 * std::f64::consts::PI;
        if reml {
            let nmp = n - bp.p as f64;
            self.logdet_l + self.logdet_rx + nmp * (1.0 + (two_pi * self.pwrss / nmp).ln())
        } else {
            self.logdet_l + n * (1.0 + (two_pi * self.pwrss / n).ln())
        }
    }

    /// -2 log-likelihood (ML) or -2 REML log-likelihood at a given residual SD `sigma`
    /// (not profiled): lmerTest's `devfun_vp`.
    pub fn deviance_at_sigma(&self, bp: &BlockedProducts, reml: bool, sigma: f64) -> f64 {
        self.criterion().deviance_at_sigma(bp, reml, sigma)
    }

    /// What the criterion at the current theta needs (for evaluating many sigmas, or keeping
    /// the values of several thetas).
    pub fn criterion(&self) -> Criterion {
        Criterion {
            ok: self.ok,
            logdet_l: self.logdet_l,
            logdet_rx: self.logdet_rx,
            pwrss: self.pwrss,
        }
    }
    /// The `p x p` lower factor `L_XX` (= R_X').
    pub fn l_xx(&self, bp: &BlockedProducts) -> Vec<f64> {
        let p = bp.p;
        let m = bp.m;
        let mut out = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..=i {
                out[i * p + j] = self.ltt(m, bp.q_rest + i, bp.q_rest + j);
            }
        }
        out
    }

    /// `(R_X'R_X)^{-1}` (unscaled covariance of beta), `p x p` row-major, after
    /// [`Factor::update`].
    pub fn unscaled_vcov(&self, bp: &BlockedProducts) -> Vec<f64> {
        unscaled_vcov_of(&self.l_xx(bp), bp.p)
    }

    /// [`Factor::unscaled_vcov`] after [`Factor::update_criterion`] took the sparse path
    /// (crossed designs): `L_XX` from the trailing block of the sparse factor, equal to the
    /// dense one up to rounding. `None` when the last factorization was not sparse.
    pub fn unscaled_vcov_sparse(&self, bp: &BlockedProducts) -> Option<Vec<f64>> {
        let (Some(sp), Some(work), false) =
            (bp.sparse.as_deref(), &self.sparse_work, self.dense_valid)
        else {
            return None;
        };
        if !self.ok {
            return None;
        }
        let p = bp.p;
        let tail = sp.tail_block(work, p + 1)?;
        let l: Vec<f64> = (0..p * p)
            .map(|k| tail[(k / p) * (p + 1) + k % p])
            .collect();
        Some(unscaled_vcov_of(&l, p))
    }

    /// `(R_X'R_X)^{-1}` after [`Factor::update_criterion`], from whichever factor of the
    /// trailing block it computed: the sparse one (crossed designs) or the dense one after the
    /// class downdate (many levels of the first term with few distinct `Z_g'Z_g`: the
    /// registry designs). `L_XX` is the trailing block's Cholesky factor either way, equal to
    /// [`Factor::update`]'s up to rounding, at the cost of the criterion instead of a pass
    /// over every level. `None` when the factorization failed or the last update was
    /// [`Factor::update`]'s path (then use [`Factor::unscaled_vcov`]).
    pub fn unscaled_vcov_criterion(&self, bp: &BlockedProducts) -> Option<Vec<f64>> {
        if self.class_path {
            return self.ok.then(|| self.unscaled_vcov(bp));
        }
        self.unscaled_vcov_sparse(bp)
    }

    /// Solves for `[u; beta]` (spherical random effects per term, fixed effects).
    pub fn solve_u_beta(&self, bp: &BlockedProducts) -> (Vec<f64>, Vec<f64>) {
        let m = bp.m;
        // L_T' z = c_T where c_T = last row of L_TT (without its diagonal).
        let mut z: Vec<f64> = (0..m - 1).map(|k| self.ltt(m, m - 1, k)).collect();
        for i in (0..m - 1).rev() {
            // Column i of L below the diagonal is contiguous.
            let col = &self.l_tt[i * m..i * m + m - 1];
            let mut s = z[i];
            for (lk, zk) in col[i + 1..].iter().zip(&z[i + 1..]) {
                s -= lk * zk;
            }
            z[i] = s / col[i];
        }
        let q1 = bp.terms.first().map_or(0, |t| t.q);
        let l1 = bp.terms.first().map_or(0, |t| t.n_levels);
        let mut u = vec![0.0; l1 * q1 + bp.q_rest];
        let cp = &bp.coupling;
        for g in 0..cp.n_levels() {
            let rows = cp.rows(g);
            let b = &self.l_t1[cp.val_range(g)];
            let r = rows.len();
            // rhs = c_g - B_M' z[rows]
            let mut rhs: Vec<f64> = b[(r - 1) * q1..r * q1].to_vec();
            for (k, &row) in rows.iter().enumerate().take(r - 1) {
                for c in 0..q1 {
                    rhs[c] -= b[k * q1 + c] * z[row];
                }
            }
            let l = &self.l11[g * q1 * q1..(g + 1) * q1 * q1];
            for c in (0..q1).rev() {
                let mut s = rhs[c];
                for k in c + 1..q1 {
                    s -= l[k * q1 + c] * rhs[k];
                }
                rhs[c] = s / l[c * q1 + c];
            }
            u[g * q1..(g + 1) * q1].copy_from_slice(&rhs);
        }
        u[l1 * q1..].copy_from_slice(&z[..bp.q_rest]);
        let beta = z[bp.q_rest..m - 1].to_vec();
        (u, beta)
    }
}

/// Which term (index >= 1) a trailing random-effects row belongs to.
pub(crate) fn term_of_row(bp: &BlockedProducts, row: usize) -> (usize, &super::model::TermLayout) {
    let mut found = (0, &bp.terms[0]);
    for (j, t) in bp.terms.iter().enumerate().skip(1) {
        if row >= t.offset && row < t.offset + t.q * t.n_levels {
            found = (j, t);
            break;
        }
    }
    found
}

/// `out = L' A L` for `q x q` matrices (row-major); `al` is scratch of the same size.
fn congruence(a: &[f64], l: &[f64], q: usize, out: &mut [f64], al: &mut [f64]) {
    if q == 1 {
        out[0] = a[0] * l[0] * l[0];
        return;
    }
    for i in 0..q {
        for j in 0..q {
            let mut s = 0.0;
            for k in 0..q {
                s += a[i * q + k] * l[k * q + j];
            }
            al[i * q + j] = s;
        }
    }
    for i in 0..q {
        for j in 0..q {
            let mut s = 0.0;
            for k in 0..q {
                s += l[k * q + i] * al[k * q + j];
            }
            out[i * q + j] = s;
        }
    }
}

/// Columns `c0..c0+q` of a row-major `rows x ncol` matrix times `lam` (q x q).
fn scale_cols(
    mat: &mut [f64],
    rows: usize,
    ncol: usize,
    c0: usize,
    q: usize,
    lam: &[f64],
    buf: &mut [f64],
) {
    if q == 1 {
        let s = lam[0];
        for r in 0..rows {
            mat[r * ncol + c0] *= s;
        }
        return;
    }
    for r in 0..rows {
        let row = &mut mat[r * ncol + c0..r * ncol + c0 + q];
        for j in 0..q {
            let mut s = 0.0;
            for k in j..q {
                s += row[k] * lam[k * q + j];
            }
            buf[j] = s;
        }
        row.copy_from_slice(&buf[..q]);
    }
}

/// Rows `r0..r0+q` of a row-major matrix with `ncol` columns premultiplied by `lam'`.
fn scale_rows(mat: &mut [f64], ncol: usize, r0: usize, q: usize, lam: &[f64], buf: &mut [f64]) {
    if q == 1 {
        let s = lam[0];
        for v in &mut mat[r0 * ncol..(r0 + 1) * ncol] {
            *v *= s;
        }
        return;
    }
    for c in 0..ncol {
        for i in 0..q {
            // (lam' M)[i, c] = sum_k lam[k, i] M[k, c], lam lower so k >= i
            let mut s = 0.0;
            for k in i..q {
                s += lam[k * q + i] * mat[(r0 + k) * ncol + c];
            }
            buf[i] = s;
        }
        for i in 0..q {
            mat[(r0 + i) * ncol + c] = buf[i];
        }
    }
}

/// Dense lower Cholesky of the trailing block stored **column-major** (reads the lower
/// triangle, zeroes the strict upper one): the right-looking loop below for small blocks,
/// faer's blocked (SIMD) factorization for large ones (crossed designs such as InstEval, where
/// this factorization dominates the cost of an evaluation). Column-major storage matters: on a
/// row-major view faer falls back to an element-wise kernel several times slower.
pub fn chol_dense_colmajor(a: &mut [f64], n: usize) -> bool {
    if n < 96 {
        return chol_colmajor_small(a, n);
    }
    use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
    let par = dense_par(n);
    let req = cholesky_in_place_scratch::<f64>(n, par, Default::default());
    let mut mem = faer::dyn_stack::MemBuffer::new(req);
    let stack = faer::dyn_stack::MemStack::new(&mut mem);
    let mat = faer::MatMut::from_column_major_slice_mut(a, n, n);
    let ok = cholesky_in_place(mat, Default::default(), par, stack, Default::default()).is_ok();
    if ok {
        for j in 1..n {
            for v in &mut a[j * n..j * n + j] {
                *v = 0.0;
            }
        }
    }
    ok
}

/// Parallelism of the dense factorization: rayon's threads for blocks large enough that the
/// synchronisation pays (HERSTEL_LMM_THREADS=1 forces sequential work).
fn dense_par(n: usize) -> faer::Par {
    let t = lmm_threads();
    if n >= 512 && t > 1 {
        faer::Par::rayon(t)
    } else {
        faer::Par::Seq
    }
}

/// Threads for one factorization: `HERSTEL_LMM_THREADS`, else rayon's thread count.
pub(crate) fn lmm_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var("HERSTEL_LMM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(rayon::current_num_threads)
    })
}

/// Right-looking lower Cholesky of a small column-major `n x n` matrix (contiguous column
/// updates, so the inner loop vectorizes). Returns false on a non-positive pivot.
fn chol_colmajor_small(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let (done, rest) = a.split_at_mut((j + 1) * n);
        let col = &mut done[j * n..];
        let d = col[j];
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        col[j] = d;
        let inv = 1.0 / d;
        for v in &mut col[j + 1..] {
            *v *= inv;
        }
        for v in &mut col[..j] {
            *v = 0.0;
        }
        let col: &[f64] = col;
        for (k, ck) in rest.chunks_exact_mut(n).enumerate() {
            let k = j + 1 + k;
            let f = col[k];
            if f != 0.0 {
                for (x, y) in ck[k..].iter_mut().zip(&col[k..]) {
                    *x -= f * y;
                }
            }
        }
    }
    true
}

/// `(L L')^{-1}` of a lower-triangular `p x p` factor `l` (row-major): the unscaled
/// covariance `(R_X'R_X)^{-1}` of beta.
fn unscaled_vcov_of(l: &[f64], p: usize) -> Vec<f64> {
    let linv = lower_inverse(l, p);
    let mut v = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            let mut s = 0.0;
            for k in i.max(j)..p {
                s += linv[k * p + i] * linv[k * p + j];
            }
            v[i * p + j] = s;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faer_and_simple_cholesky_agree() {
        let n = 150;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] =
                    1.0 / (1.0 + (i as f64 - j as f64).abs()) + if i == j { n as f64 } else { 0.0 };
            }
        }
        let mut b = a.clone();
        let mut c = a.clone();
        assert!(chol_dense_colmajor(&mut a, n));
        assert!(cholesky_in_place(&mut b, n));
        assert!(chol_colmajor_small(&mut c, n));
        // Column-major L is the transpose of the row-major one (a symmetric input).
        for i in 0..n {
            for j in 0..n {
                assert!((a[j * n + i] - b[i * n + j]).abs() < 1e-10);
                assert!((c[j * n + i] - b[i * n + j]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn cholesky_small() {
        let mut a = vec![4.0, 0.0, 2.0, 5.0];
        assert!(cholesky_in_place(&mut a, 2));
        assert!((a[0] - 2.0).abs() < 1e-12);
        assert!((a[2] - 1.0).abs() < 1e-12);
        assert!((a[3] - 2.0).abs() < 1e-12);
        let inv = lower_inverse(&a, 2);
        assert!((inv[0] - 0.5).abs() < 1e-12);
        assert!((inv[2] + 0.25).abs() < 1e-12);
    }
}
