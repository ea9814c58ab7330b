//! A fast path for refitting random-intercept models `y ~ X + (1 | participant)` by REML on
//! participant-bootstrap resamples.
//!
//! With one scalar random-effect term, lme4's profiled REML criterion (Bates, Maechler, Bolker
//! & Walker 2015, J Stat Softw 67(1), eqs. 34-42) depends on the single parameter
//! `theta = sigma_b / sigma` and on the data only through per-participant sums: with
//! `V_i = I + theta^2 1 1'` for a participant with `n_i` rows,
//! `V_i^{-1} = I - w_i 1 1'`, `w_i = theta^2 / (1 + n_i theta^2)`, so
//!
//! `[X y]' V^{-1} [X y] = sum_i ( [X_i y_i]'[X_i y_i] - w_i s_i s_i' )`, `s_i = [X_i y_i]' 1`,
//! `log |L_theta|^2 = sum_i log(1 + n_i theta^2)`.
//!
//! The Cholesky factor of that `(p + 1) x (p + 1)` matrix holds `R_X` (its leading block) and
//! the penalized residual sum of squares (the square of its last diagonal element), which
//! give the REML criterion `log|L|^2 + log|R_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))`.
//! A resample is a multiset of participants (one drawn twice counts as two participants), so
//! its matrices are count-weighted sums of the per-participant products, grouped by `n_i`
//! (at most the number of waves distinct values): building the design once and summing
//! participant blocks replaces rebuilding the model frame, and each criterion evaluation costs
//! `O(n_waves p^2 + p^3)` whatever the number of rows. `theta` is found by Brent's method
//! (R's `optimize`) started at the full-data estimate (warm start).
#![allow(clippy::needless_range_loop)] // index loops over packed triangular storage

use crate::stats::linalg::cholesky_packed_in_place;

/// Per-participant sufficient statistics of one random-intercept model.
#[derive(Debug, Clone)]
pub struct RiDesign {
    /// Fixed-effect column names.
    pub names: Vec<String>,
    p: usize,
    /// Packed lower-triangle length of an `(p + 1)^2` matrix.
    tri: usize,
    /// Complete rows per participant.
    n_rows: Vec<usize>,
    /// Per participant: packed `[X y]'[X y]`.
    cross: Vec<f64>,
    /// Per participant: packed `s s'` with `s = [X y]' 1`.
    outer: Vec<f64>,
    max_rows: usize,
}

/// Count-weighted sums of a resample, grouped by rows per participant.
#[derive(Debug, Clone)]
pub struct RiSums {
    p: usize,
    tri: usize,
    /// Rows in the resample.
    n: usize,
    /// Participants (with at least one row) per group size `k = 1..=max_rows`.
    groups: Vec<f64>,
    /// `sum cross` per group size.
    cross: Vec<Vec<f64>>,
    /// `sum s s'` per group size.
    outer: Vec<Vec<f64>>,
}

/// A random-intercept REML fit from [`RiDesign::fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct RiFit {
    pub theta: f64,
    pub beta: Vec<f64>,
    /// The REML criterion (-2 REML log-likelihood) at `theta`.
    pub reml_criterion: f64,
    pub n_evaluations: usize,
}

impl RiDesign {
    /// Builds the design from complete rows `(participant, x row, y)`; `names` are the
    /// columns of the x rows. Participants are `0..n_participants`.
    pub fn new<I>(names: Vec<String>, n_participants: usize, rows: I) -> RiDesign
    where
        I: IntoIterator<Item = (usize, Vec<f64>, f64)>,
    {
        let p = names.len();
        let m = p + 1;
        let tri = m * (m + 1) / 2;
        let mut n_rows = vec![0usize; n_participants];
        let mut cross = vec![0.0; n_participants * tri];
        let mut sums = vec![0.0; n_participants * m];
        let mut z = vec![0.0; m];
        for (pid, x, y) in rows {
            if pid >= n_participants || x.len() != p {
                continue;
            }
            z[..p].copy_from_slice(&x);
            z[p] = y;
            n_rows[pid] += 1;
            let c = &mut cross[pid * tri..(pid + 1) * tri];
            let mut t = 0;
            for i in 0..m {
                for j in 0..=i {
                    c[t] += z[i] * z[j];
                    t += 1;
                }
            }
            for i in 0..m {
                sums[pid * m + i] += z[i];
            }
        }
        let mut outer = vec![0.0; n_participants * tri];
        for pid in 0..n_participants {
            let s = &sums[pid * m..(pid + 1) * m];
            let o = &mut outer[pid * tri..(pid + 1) * tri];
            let mut t = 0;
            for i in 0..m {
                for j in 0..=i {
                    o[t] = s[i] * s[j];
                    t += 1;
                }
            }
        }
        let max_rows = n_rows.iter().copied().max().unwrap_or(0);
        RiDesign {
            names,
            p,
            tri,
            n_rows,
            cross,
            outer,
            max_rows,
        }
    }

    /// Number of fixed effects.
    pub fn p(&self) -> usize {
        self.p
    }

    /// Participants in the design.
    pub fn n_participants(&self) -> usize {
        self.n_rows.len()
    }

    /// The sums of a resample given as participant indices (with repetition).
    pub fn sums(&self, idx: &[usize]) -> RiSums {
        let tri = self.tri;
        let mut s = RiSums {
            p: self.p,
            tri,
            n: 0,
            groups: vec![0.0; self.max_rows + 1],
            cross: vec![vec![0.0; tri]; self.max_rows + 1],
            outer: vec![vec![0.0; tri]; self.max_rows + 1],
        };
        for &pid in idx {
            let Some(&k) = self.n_rows.get(pid) else {
                continue;
            };
            if k == 0 {
                continue;
            }
            s.n += k;
            s.groups[k] += 1.0;
            let c = &self.cross[pid * tri..(pid + 1) * tri];
            let o = &self.outer[pid * tri..(pid + 1) * tri];
            for (d, v) in s.cross[k].iter_mut().zip(c) {
                *d += v;
            }
            for (d, v) in s.outer[k].iter_mut().zip(o) {
                *d += v;
            }
        }
        s
    }

    /// REML fit of the resample `idx` (participant indices with repetition), Brent's method
    /// started at `theta_start`. `None` when `[X y]' V^{-1} [X y]` is not positive definite
    /// (rank-deficient resample) or there are no residual degrees of freedom.
    pub fn fit(&self, idx: &[usize], theta_start: f64) -> Option<RiFit> {
        self.sums(idx).fit(theta_start)
    }
}

impl RiSums {
    /// Lower Cholesky factor (packed, in place) of `sum_k cross_k - w_k outer_k`, or `None`.
    fn factor(&self, theta: f64, work: &mut [f64]) -> bool {
        let t2 = theta * theta;
        work.iter_mut().for_each(|v| *v = 0.0);
        for k in 1..self.groups.len() {
            if self.groups[k] == 0.0 {
                continue;
            }
            let w = t2 / (1.0 + k as f64 * t2);
            for ((d, c), o) in work.iter_mut().zip(&self.cross[k]).zip(&self.outer[k]) {
                *d += c - w * o;
            }
        }
        cholesky_packed_in_place(work, self.p + 1)
    }

    fn logdet_l(&self, theta: f64) -> f64 {
        let t2 = theta * theta;
        (1..self.groups.len())
            .map(|k| self.groups[k] * (k as f64 * t2).ln_1p())
            .sum()
    }

    /// The REML criterion at `theta` (`+inf` when the factor fails).
    pub fn reml_criterion(&self, theta: f64, work: &mut [f64]) -> f64 {
        let p = self.p;
        let nmp = self.n as f64 - p as f64;
        if nmp <= 0.0 || !self.factor(theta, work) {
            return f64::INFINITY;
        }
        let mut logdet_rx = 0.0;
        for i in 0..p {
            logdet_rx += 2.0 * work[i * (i + 1) / 2 + i].ln();
        }
        let lyy = work[p * (p + 1) / 2 + p];
        let pwrss = lyy * lyy;
        let two_pi = 2.0 * std::f64::consts::PI;
        self.logdet_l(theta) + logdet_rx + nmp * (1.0 + (two_pi * pwrss / nmp).ln())
    }

    /// Fixed effects at `theta`.
    fn beta(&self, theta: f64, work: &mut [f64]) -> Option<Vec<f64>> {
        if !self.factor(theta, work) {
            return None;
        }
        let p = self.p;
        // L = [[L_XX, 0], [l', l_yy]]: beta = L_XX^{-T} l.
        let row_y = p * (p + 1) / 2;
        let mut beta: Vec<f64> = work[row_y..row_y + p].to_vec();
        for i in (0..p).rev() {
            let mut s = beta[i];
            for j in (i + 1)..p {
                s -= work[j * (j + 1) / 2 + i] * beta[j];
            }
            beta[i] = s / work[i * (i + 1) / 2 + i];
        }
        Some(beta)
    }

    /// REML fit by Brent's method on `[max(0, t0 - d), t0 + d]` (`d = t0 / 2 + 0.05`), widened
    /// while the minimum sits on the upper end; the boundary `theta = 0` (singular fit) is
    /// taken when it is at least as good.
    pub fn fit(&self, theta_start: f64) -> Option<RiFit> {
        let mut work = vec![0.0; self.tri];
        let t0 = if theta_start.is_finite() {
            theta_start.max(0.0)
        } else {
            1.0
        };
        let mut evals = 0usize;
        let mut f = |t: f64| {
            evals += 1;
            self.reml_criterion(t, &mut work)
        };
        let mut d = 0.5 * t0 + 0.05;
        let (mut theta, mut fx);
        loop {
            let lo = (t0 - d).max(0.0);
            let hi = t0 + d;
            let (x, v) = brent_min(&mut f, lo, hi, t0.clamp(lo, hi), 1e-9);
            theta = x;
            fx = v;
            // Widen when the minimum is pressed against an end other than theta = 0.
            let edge = 1e-6 * hi.max(1.0);
            let at_hi = hi - x <= edge;
            let at_lo = lo > 0.0 && x - lo <= edge;
            if !(at_hi || at_lo) || d > 1e6 {
                break;
            }
            d *= 8.0;
        }
        if !fx.is_finite() {
            return None;
        }
        let f0 = f(0.0);
        if f0 <= fx {
            theta = 0.0;
            fx = f0;
        }
        let mut work = vec![0.0; self.tri];
        let beta = self.beta(theta, &mut work)?;
        Some(RiFit {
            theta,
            beta,
            reml_criterion: fx,
            n_evaluations: evals,
        })
    }
}

/// Brent's minimizer on `[a, b]` started at `x0` (R's `optimize`, `Brent_fmin` in
/// src/library/stats/src/optimize.c, with the golden-section start replaced by `x0`).
/// Returns the abscissa and the value.
pub fn brent_min<F: FnMut(f64) -> f64>(f: &mut F, a: f64, b: f64, x0: f64, tol: f64) -> (f64, f64) {
    let c = (3.0 - 5f64.sqrt()) * 0.5;
    let eps = f64::EPSILON.sqrt();
    let (mut a, mut b) = (a, b);
    let mut x = if x0 > a && x0 < b {
        x0
    } else {
        a + c * (b - a)
    };
    let (mut v, mut w) = (x, x);
    let (mut d, mut e) = (0.0f64, 0.0f64);
    let mut fx = f(x);
    let (mut fv, mut fw) = (fx, fx);
    let tol3 = tol / 3.0;
    for _ in 0..500 {
        let xm = (a + b) * 0.5;
        let tol1 = eps * x.abs() + tol3;
        let t2 = tol1 * 2.0;
        if (x - xm).abs() <= t2 - (b - a) * 0.5 {
            break;
        }
        let (mut p, mut q, mut r) = (0.0, 0.0, 0.0);
        if e.abs() > tol1 {
            r = (x - w) * (fx - fv);
            q = (x - v) * (fx - fw);
            p = (x - v) * q - (x - w) * r;
            q = (q - r) * 2.0;
            if q > 0.0 {
                p = -p;
            } else {
                q = -q;
            }
            r = e;
            e = d;
        }
        if p.abs() >= (q * 0.5 * r).abs() || p <= q * (a - x) || p >= q * (b - x) {
            e = if x < xm { b - x } else { a - x };
            d = c * e;
        } else {
            d = p / q;
            let u = x + d;
            if u - a < t2 || b - u < t2 {
                d = if x >= xm { -tol1 } else { tol1 };
            }
        }
        let u = if d.abs() >= tol1 {
            x + d
        } else if d > 0.0 {
            x + tol1
        } else {
            x - tol1
        };
        let fu = f(u);
        if fu <= fx {
            if u < x {
                b = x;
            } else {
                a = x;
            }
            v = w;
            w = x;
            x = u;
            fv = fw;
            fw = fx;
            fx = fu;
        } else {
            if u < x {
                a = u;
            } else {
                b = u;
            }
            if fu <= fw || w == x {
                v = w;
                fv = fw;
                w = u;
                fw = fu;
            } else if fu <= fv || v == x || v == w {
                v = u;
                fv = fu;
            }
        }
    }
    (x, fx)
}
