//! The profiled deviance: for a given theta, the blocked Cholesky factor `L` of
//! `[Lambda'Z'Z Lambda + I, Lambda'Z'X, Lambda'Z'y; ...; y'y]` (MixedModels.jl `updateL!`),
//! from which log|L|^2, log|R_X|^2 and the penalized residual sum of squares r^2 follow
//! (Bates, Maechler, Bolker & Walker 2015, J Stat Softw 67(1), eqs. 31-42).
use super::model::{lambda, BlockedProducts};

/// The factor at one theta. Reused across evaluations (no allocation per evaluation).
#[derive(Debug, Clone)]
pub struct Factor {
    pub theta: Vec<f64>,
    /// Per level of the first term, the lower Cholesky factor of `Lambda_1' A_g Lambda_1 + I`.
    pub l11: Vec<f64>,
    /// The coupling block `L_T1`, laid out as `BlockedProducts::coupling.vals`.
    pub l_t1: Vec<f64>,
    /// Dense lower Cholesky factor of the trailing block, `m x m` row-major.
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
}

impl Factor {
    pub fn new(bp: &BlockedProducts) -> Self {
        Factor {
            theta: vec![0.0; bp.n_theta],
            l11: vec![0.0; bp.a11.len()],
            l_t1: vec![0.0; bp.coupling.vals.len()],
            l_tt: vec![0.0; bp.m * bp.m],
            logdet_l: 0.0,
            logdet_rx: 0.0,
            pwrss: 0.0,
            ok: false,
            scratch: Vec::new(),
        }
    }

    /// Recomputes the factor at `theta` (`updateL!`).
    pub fn update(&mut self, bp: &BlockedProducts, theta: &[f64]) {
        self.theta.clear();
        self.theta.extend_from_slice(theta);
        self.ok = true;
        let m = bp.m;
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
        if bp.terms.iter().skip(1).all(|t| t.q == 1) {
            // Diagonal Lambda_T: one fused pass over the lower triangle.
            let mut sv = vec![1.0; m];
            for (j, t) in bp.terms.iter().enumerate().skip(1) {
                let lam = lam_rest[j][0];
                sv[t.offset..t.offset + t.n_levels]
                    .iter_mut()
                    .for_each(|v| *v = lam);
            }
            for i in 0..m {
                let si = sv[i];
                let src = &bp.a_tt[i * m..i * m + i + 1];
                let dst = &mut self.l_tt[i * m..i * m + i + 1];
                for ((d, a), sj) in dst.iter_mut().zip(src).zip(&sv[..=i]) {
                    *d = a * si * sj;
                }
            }
        } else {
            self.l_tt.copy_from_slice(&bp.a_tt);
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
        for d in 0..bp.q_rest {
            self.l_tt[d * m + d] += 1.0;
        }

        let qmax = bp.terms.iter().map(|t| t.q).max().unwrap_or(1);
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(q1 * q1 + qmax, 0.0);
        let (al, buf) = scratch.split_at_mut(q1 * q1);
        let mut logdet_l = 0.0;
        let mut diag_prod = 1.0f64;
        let cp = &bp.coupling;
        for g in 0..cp.n_levels() {
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
                if !chol_in_place(l, q1) {
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
            let mut k = 0;
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
                let (l00, l10, l11) = (l[0], l[2], l[3]);
                for br in b.chunks_exact_mut(2) {
                    let y0 = br[0] * la + br[1] * lb;
                    let y1 = br[1] * lc;
                    let z0 = y0 / l00;
                    br[0] = z0;
                    br[1] = (y1 - z0 * l10) / l11;
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
            // Downdate the trailing block: T[rows, rows] -= B B' (lower triangle).
            let b: &[f64] = b;
            if q1 == 1 {
                for (ia, &ra) in rows.iter().enumerate() {
                    let va = b[ia];
                    let trow = &mut self.l_tt[ra * m..ra * m + m];
                    for (&rb, &vb) in rows[..=ia].iter().zip(&b[..=ia]) {
                        trow[rb] -= va * vb;
                    }
                }
            } else if q1 == 2 {
                for (ia, (&ra, ba)) in rows.iter().zip(b.chunks_exact(2)).enumerate() {
                    let (a0, a1) = (ba[0], ba[1]);
                    let trow = &mut self.l_tt[ra * m..ra * m + m];
                    for (&rb, bb) in rows[..=ia].iter().zip(b.chunks_exact(2)) {
                        trow[rb] -= a0 * bb[0] + a1 * bb[1];
                    }
                }
            } else {
                for (ia, (&ra, ba)) in rows.iter().zip(b.chunks_exact(q1)).enumerate() {
                    let trow = &mut self.l_tt[ra * m..ra * m + m];
                    for (&rb, bb) in rows[..=ia].iter().zip(b.chunks_exact(q1)) {
                        let mut sum = 0.0;
                        for (x, y) in ba.iter().zip(bb) {
                            sum += x * y;
                        }
                        trow[rb] -= sum;
                    }
                }
            }
        }
        logdet_l += 2.0 * diag_prod.ln();
        self.scratch = scratch;
        if !chol_dense(&mut self.l_tt, m) {
            self.ok = false;
            return;
        }
        for d in 0..bp.q_rest {
            logdet_l += 2.0 * self.l_tt[d * m + d].ln();
        }
        let mut logdet_rx = 0.0;
        for d in bp.q_rest..m - 1 {
            logdet_rx += 2.0 * self.l_tt[d * m + d].ln();
        }
        let r = self.l_tt[m * m - 1];
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

    /// The `p x p` lower factor `L_XX` (= R_X').
    pub fn l_xx(&self, bp: &BlockedProducts) -> Vec<f64> {
        let p = bp.p;
        let m = bp.m;
        let mut out = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..=i {
                out[i * p + j] = self.l_tt[(bp.q_rest + i) * m + bp.q_rest + j];
            }
        }
        out
    }

    /// `(R_X'R_X)^{-1}` (unscaled covariance of beta), `p x p` row-major.
    pub fn unscaled_vcov(&self, bp: &BlockedProducts) -> Vec<f64> {
        let p = bp.p;
        let l = self.l_xx(bp);
        let linv = lower_inverse(&l, p);
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

    /// Solves for `[u; beta]` (spherical random effects per term, fixed effects).
    pub fn solve_u_beta(&self, bp: &BlockedProducts) -> (Vec<f64>, Vec<f64>) {
        let m = bp.m;
        // L_T' z = c_T where c_T = last row of L_TT (without its diagonal).
        let mut z: Vec<f64> = self.l_tt[(m - 1) * m..(m - 1) * m + (m - 1)].to_vec();
        for i in (0..m - 1).rev() {
            let mut s = z[i];
            for (k, zk) in z.iter().enumerate().take(m - 1).skip(i + 1) {
                s -= self.l_tt[k * m + i] * zk;
            }
            z[i] = s / self.l_tt[i * m + i];
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

/// Dense lower Cholesky of the trailing block: the simple loop below for small blocks, faer's
/// blocked (SIMD, multithreaded) factorization for large ones (crossed designs such as
/// InstEval, where this factorization dominates the cost of an evaluation).
pub fn chol_dense(a: &mut [f64], n: usize) -> bool {
    if n < 128 {
        return chol_in_place(a, n);
    }
    use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
    // Sequential: on a shared machine thread synchronisation costs more than it gains at
    // the sizes seen here (a ~1,000 x 1,000 block for InstEval).
    let par = faer::Par::Seq;
    let req = cholesky_in_place_scratch::<f64>(n, par, Default::default());
    let mut mem = faer::dyn_stack::MemBuffer::new(req);
    let stack = faer::dyn_stack::MemStack::new(&mut mem);
    // Row-major storage seen as the transpose of a column-major matrix: element (i, j) is
    // a[i * n + j], so faer's lower triangle is ours.
    let mat = faer::MatMut::from_row_major_slice_mut(a, n, n);
    let ok = cholesky_in_place(mat, Default::default(), par, stack, Default::default()).is_ok();
    if ok {
        for i in 0..n {
            for v in &mut a[i * n + i + 1..(i + 1) * n] {
                *v = 0.0;
            }
        }
    }
    ok
}

/// In-place lower Cholesky of a row-major `n x n` matrix (reads the lower triangle; zeroes the
/// upper). Returns false on a non-positive pivot.
pub fn chol_in_place(a: &mut [f64], n: usize) -> bool {
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
                    return false;
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
    true
}

/// Inverse of a lower-triangular `p x p` matrix (row-major).
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
        assert!(chol_dense(&mut a, n));
        assert!(chol_in_place(&mut b, n));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-10);
        }
    }

    #[test]
    fn cholesky_small() {
        let mut a = vec![4.0, 0.0, 2.0, 5.0];
        assert!(chol_in_place(&mut a, 2));
        assert!((a[0] - 2.0).abs() < 1e-12);
        assert!((a[2] - 1.0).abs() < 1e-12);
        assert!((a[3] - 2.0).abs() < 1e-12);
        let inv = lower_inverse(&a, 2);
        assert!((inv[0] - 0.5).abs() < 1e-12);
        assert!((inv[2] + 0.25).abs() < 1e-12);
    }
}
