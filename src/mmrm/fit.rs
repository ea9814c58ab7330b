//! REML/ML estimation of a linear model with a per-participant marginal covariance
//! `V_i = Z_i G Z_i' + R_i`.
//!
//! Model: `y_i = X_i beta + Z_i b_i + e_i`, `b_i ~ N(0, G)`, `e_i ~ N(0, R_i)` independently over
//! participants `i`, where
//! * `R_i = Lambda_i Sigma_g[w_i, w_i] Lambda_i` for a structure over the waves
//!   ([`Residual::Waves`]): `w_i` the waves observed for participant `i`, `Sigma_g` the covariance
//!   of group `g` (one group unless `by = ...`), `Lambda_i = diag(delta_s)` the `varIdent` ratios of
//!   the rows' strata (`delta` of the first stratum = 1); this is nlme's `gls` with a correlation
//!   structure by participant, SAS PROC MIXED `REPEATED / TYPE= SUBJECT=`, the R package mmrm;
//! * `R_i = diag(sigma2_s)` with one residual variance per stratum ([`Residual::Independent`]):
//!   nlme's `lme(..., weights = varIdent(form = ~ 1 | s))` (Pinheiro & Bates 2000, ch. 5.2);
//! * `G` unstructured positive definite (nlme's `pdSymm`, lme4's `(1 + x | id)`), absent when the
//!   formula has no random-effects term.
//!
//! **Sufficient statistics by pattern.** Participants with the same group, observed waves,
//! strata and random-effects design rows share `V_i`; for every such pattern the cross-products
//! `S_ab = sum_i z_ia z_ib'` of the rows `z = [x' y]` at positions `a, b` are formed once.
//! Then for any pattern-level matrix `A` (`V^-1`, `V^-1 G_k V^-1`, ...),
//! `sum_i Z_i' A Z_i = sum_ab A_ab S_ab`, so one evaluation of the criterion (and of its
//! analytic gradient and Hessian, and the Kenward-Roger terms) costs
//! O(patterns x T^2 x p^2), independent of the number of participants after one O(n p^2) pass.
//! With random slopes on a continuous covariate every participant is a pattern of its own; the
//! cost is then linear in the participants.
//!
//! **Criterion** (`beta` profiled out; as nlme's `gls`/`lme` log-likelihood):
//! ML `-2 l = N log(2 pi) + log|V| + r'V^-1 r`;
//! REML `-2 l = (N - p) log(2 pi) + log|V| + log|X'V^-1 X| + r'V^-1 r`.
//!
//! **Parameters.** For the optimizer (theta, unconstrained): `G` by its log-Cholesky factor
//! (Pinheiro & Bates 1996), the wave structure as in [`super::structures`], `log delta_s`, or
//! `log sigma_s`. For inference (gamma, natural): the entries of `G` (lower triangle by column),
//! the structure's natural parameters, `delta_s` or the variances `sigma2_s`.
//!
//! **Optimizer:** BOBYQA (Powell 2009; the `bobyqa` crate) on theta, then Newton steps on gamma
//! with the analytic gradient and observed Hessian ([`super::inference::Derivatives`]) to polish
//! the optimum.
use std::collections::HashMap;

use bobyqa::{Bobyqa, Config};
use nalgebra::{DMatrix, DVector};

use super::structures::CovKind;
use super::MmrmError;

/// How the residual covariance `R_i` of a participant's rows is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residual {
    /// A structure over the waves (one per `by` group), times the `varIdent` ratios `delta_s`
    /// of the rows' strata.
    Waves(CovKind),
    /// Independent rows with one residual variance per stratum (`sigma^2 I` with one stratum).
    Independent,
}

/// One pattern: participants sharing `V_i`.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub group: usize,
    /// Wave position of each row (for [`Residual::Waves`]; the row index otherwise).
    pub waves: Vec<usize>,
    /// Stratum of each row (`varIdent`).
    pub strata: Vec<usize>,
    /// Random-effects design rows (m x q), `None` without random effects.
    pub z: Option<DMatrix<f64>>,
    pub n_subjects: usize,
    /// `S_ab` for positions `a, b < m`: `(a * m + b) * q * q + r * q + s`, `q = p + 1`.
    pub s: Vec<f64>,
    /// The rows `[x' y]` (m x (p + 1)) of the pattern's first participant.
    pub rows: DMatrix<f64>,
}

impl Pattern {
    /// `out += sum_ab A_ab S_ab` (q x q).
    pub(crate) fn add_qform(&self, out: &mut DMatrix<f64>, a: &DMatrix<f64>) {
        if self.n_subjects == 1 {
            *out += self.rows.transpose() * a * &self.rows;
        } else {
            let q = out.nrows();
            add_qform(out, a, &self.s, q);
        }
    }
}

/// The data of a model reduced to pattern cross-products.
#[derive(Debug, Clone)]
pub struct MmrmData {
    pub p: usize,
    pub n_obs: usize,
    pub n_subjects: usize,
    pub n_waves: usize,
    pub n_groups: usize,
    pub n_strata: usize,
    /// Number of random effects per participant (0: none).
    pub q_re: usize,
    pub residual: Residual,
    pub patterns: Vec<Pattern>,
    /// `log|X'X|`.
    pub logdet_xtx: f64,
}

/// The rows of a model, one entry per observation (see [`MmrmData::new`]).
#[derive(Debug, Clone, Copy)]
pub struct RowData<'a> {
    /// Fixed-effects design, row-major n x p.
    pub x: &'a [f64],
    pub p: usize,
    pub y: &'a [f64],
    /// Participant code per row.
    pub subject: &'a [u32],
    /// Wave position per row (0-based among `n_waves`; ignored for [`Residual::Independent`]).
    pub wave: &'a [usize],
    /// `by` group per row (0-based among `n_groups`), constant within a participant.
    pub group: &'a [usize],
    /// `varIdent` stratum per row (0-based among `n_strata`).
    pub stratum: &'a [usize],
    /// Random-effects design, row-major n x q_re (empty when `q_re = 0`).
    pub z: &'a [f64],
    pub q_re: usize,
    pub n_waves: usize,
    pub n_groups: usize,
    pub n_strata: usize,
    pub subject_names: &'a [String],
}

/// Covariance parameters in matrix form.
#[derive(Debug, Clone)]
pub struct CovParams {
    /// Random-effects covariance `G` (0 x 0 without random effects).
    pub g: DMatrix<f64>,
    /// Wave covariance per group ([`Residual::Waves`]; empty otherwise).
    pub sigmas: Vec<DMatrix<f64>>,
    /// [`Residual::Waves`]: `delta_s` (first = 1); [`Residual::Independent`]: `sigma2_s`.
    pub strata: Vec<f64>,
}

/// Criterion pieces at one set of covariance parameters.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub deviance: f64,
    pub beta: DVector<f64>,
    /// `(X'V^-1 X)^-1`.
    pub vcov: DMatrix<f64>,
    /// `sum_ab (V^-1)_ab S_ab` over all patterns, q x q.
    pub qtot: DMatrix<f64>,
}

/// `sum_ab A_ab S_ab` added into `out` (q x q) with weight 1.
pub(crate) fn add_qform(out: &mut DMatrix<f64>, a: &DMatrix<f64>, s: &[f64], q: usize) {
    let m = a.nrows();
    let qq = q * q;
    for ia in 0..m {
        for ib in 0..m {
            let w = a[(ia, ib)];
            if w == 0.0 {
                continue;
            }
            let base = (ia * m + ib) * qq;
            let blk = &s[base..base + qq];
            for r in 0..q {
                for c in 0..q {
                    out[(r, c)] += w * blk[r * q + c];
                }
            }
        }
    }
}

/// Submatrix of `s` at the given positions.
pub(crate) fn sub(s: &DMatrix<f64>, idx: &[usize]) -> DMatrix<f64> {
    DMatrix::from_fn(idx.len(), idx.len(), |i, j| s[(idx[i], idx[j])])
}

type PatternKey = (usize, Vec<usize>, Vec<usize>, Vec<u64>);

impl MmrmData {
    /// Builds the pattern cross-products. Errors name the offending participant (by its label)
    /// when a participant has two rows at one wave or changes group.
    pub fn new(d: RowData<'_>, residual: Residual) -> Result<MmrmData, MmrmError> {
        let (p, n) = (d.p, d.y.len());
        let qre = d.q_re;
        if d.x.len() != n * p
            || d.subject.len() != n
            || d.group.len() != n
            || d.stratum.len() != n
            || d.z.len() != n * qre
            || (matches!(residual, Residual::Waves(_)) && d.wave.len() != n)
        {
            return Err(MmrmError::Data(
                "inconsistent lengths of the model columns".into(),
            ));
        }
        if n == 0 {
            return Err(MmrmError::Data("no observations".into()));
        }
        let q = p + 1;
        let mut by_subject: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut order = Vec::new();
        for (i, &s) in d.subject.iter().enumerate() {
            by_subject
                .entry(s)
                .or_insert_with(|| {
                    order.push(s);
                    Vec::new()
                })
                .push(i);
        }
        let name = |s: u32| {
            d.subject_names
                .get(s as usize)
                .cloned()
                .unwrap_or_else(|| s.to_string())
        };
        let mut pats: Vec<Pattern> = Vec::new();
        let mut index: HashMap<PatternKey, usize> = HashMap::new();
        let mut xtx = DMatrix::<f64>::zeros(p, p);
        for s in order {
            let mut rows = by_subject.remove(&s).unwrap_or_default();
            let waves: Vec<usize> = match residual {
                Residual::Waves(_) => {
                    rows.sort_by_key(|&i| d.wave[i]);
                    let w: Vec<usize> = rows.iter().map(|&i| d.wave[i]).collect();
                    if let Some(x) = w.windows(2).find(|x| x[0] == x[1]) {
                        return Err(MmrmError::DuplicateWave {
                            subject: name(s),
                            wave: x[0],
                        });
                    }
                    if w.iter().any(|&x| x >= d.n_waves) {
                        return Err(MmrmError::Data("wave index out of range".into()));
                    }
                    w
                }
                Residual::Independent => (0..rows.len()).collect(),
            };
            let g = d.group[rows[0]];
            if g >= d.n_groups || rows.iter().any(|&i| d.group[i] != g) {
                return Err(MmrmError::GroupChanges { subject: name(s) });
            }
            let strata: Vec<usize> = rows.iter().map(|&i| d.stratum[i]).collect();
            if strata.iter().any(|&x| x >= d.n_strata) {
                return Err(MmrmError::Data("stratum index out of range".into()));
            }
            let m = waves.len();
            let zbits: Vec<u64> = rows
                .iter()
                .flat_map(|&i| d.z[i * qre..(i + 1) * qre].iter().map(|v| v.to_bits()))
                .collect();
            let key = (g, waves.clone(), strata.clone(), zbits);
            let zrow = |i: usize, r: usize| if r < p { d.x[i * p + r] } else { d.y[i] };
            let k = *index.entry(key).or_insert_with(|| {
                let z = (qre > 0).then(|| DMatrix::from_fn(m, qre, |a, c| d.z[rows[a] * qre + c]));
                pats.push(Pattern {
                    group: g,
                    waves,
                    strata,
                    z,
                    n_subjects: 0,
                    s: vec![0.0; m * m * q * q],
                    rows: DMatrix::from_fn(m, q, |a, c| zrow(rows[a], c)),
                });
                pats.len() - 1
            });
            let pat = &mut pats[k];
            pat.n_subjects += 1;
            for (a, &ia) in rows.iter().enumerate() {
                for (b, &ib) in rows.iter().enumerate() {
                    let base = (a * m + b) * q * q;
                    for r in 0..q {
                        let zr = zrow(ia, r);
                        if zr == 0.0 {
                            continue;
                        }
                        for c in 0..q {
                            pat.s[base + r * q + c] += zr * zrow(ib, c);
                        }
                    }
                }
                for r in 0..p {
                    for c in 0..p {
                        xtx[(r, c)] += d.x[ia * p + r] * d.x[ia * p + c];
                    }
                }
            }
        }
        let n_subjects = pats.iter().map(|p| p.n_subjects).sum();
        let logdet_xtx = xtx
            .cholesky()
            .map(|c| 2.0 * c.l().diagonal().iter().map(|v| v.ln()).sum::<f64>())
            .ok_or_else(|| {
                MmrmError::Data("the fixed-effects design X'X is not positive definite".into())
            })?;
        let n_waves = match residual {
            Residual::Waves(_) => d.n_waves,
            Residual::Independent => pats.iter().map(|p| p.waves.len()).max().unwrap_or(0),
        };
        Ok(MmrmData {
            p,
            n_obs: n,
            n_subjects,
            n_waves,
            n_groups: d.n_groups,
            n_strata: d.n_strata,
            q_re: qre,
            residual,
            patterns: pats,
            logdet_xtx,
        })
    }

    /// Number of parameters of `G` (`q (q + 1) / 2`).
    pub fn n_re_par(&self) -> usize {
        self.q_re * (self.q_re + 1) / 2
    }

    /// Number of parameters of the wave structures (all groups).
    pub fn n_sigma_par(&self) -> usize {
        match self.residual {
            Residual::Waves(k) => k.n_par(self.n_waves) * self.n_groups,
            Residual::Independent => 0,
        }
    }

    /// Number of stratum parameters (`delta_s`, s > 0; or `sigma2_s`).
    pub fn n_strata_par(&self) -> usize {
        match self.residual {
            Residual::Waves(_) => self.n_strata - 1,
            Residual::Independent => self.n_strata,
        }
    }

    /// Number of covariance parameters.
    pub fn n_par(&self) -> usize {
        self.n_re_par() + self.n_sigma_par() + self.n_strata_par()
    }

    /// Whether `V` is linear in gamma (Kenward-Roger is then the full method).
    pub fn is_linear(&self) -> bool {
        match self.residual {
            Residual::Waves(k) => k.is_linear() && self.n_strata == 1,
            Residual::Independent => true,
        }
    }

    /// Covariance parameters at theta. `G = D L L' D` with `D = diag(re_scale)` and `L` lower
    /// triangular from the first `q (q + 1) / 2` entries of theta (by column; diagonal >= 0, a
    /// bound of the optimizer, as lme4's theta: zero is a singular, boundary fit); the residual
    /// parameters are unconstrained ([`super::structures`], `log delta_s`, `log sigma_s`).
    pub fn params_from_theta(&self, theta: &[f64], re_scale: &[f64]) -> Option<CovParams> {
        if theta.len() != self.n_par() || theta.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let nre = self.n_re_par();
        let q = self.q_re;
        let g = if q > 0 {
            let mut l = DMatrix::<f64>::zeros(q, q);
            let mut k = 0;
            for j in 0..q {
                for i in j..q {
                    l[(i, j)] = theta[k] * re_scale.get(i).copied().unwrap_or(1.0);
                    k += 1;
                }
            }
            &l * l.transpose()
        } else {
            DMatrix::zeros(0, 0)
        };
        let mut off = nre;
        let (sigmas, strata) = match self.residual {
            Residual::Waves(kind) => {
                let np = kind.n_par(self.n_waves);
                let sigmas = (0..self.n_groups)
                    .map(|gi| {
                        kind.sigma_theta(self.n_waves, &theta[off + gi * np..off + (gi + 1) * np])
                    })
                    .collect::<Option<Vec<_>>>()?;
                off += np * self.n_groups;
                let mut st = vec![1.0];
                st.extend(theta[off..].iter().map(|t| t.exp()));
                (sigmas, st)
            }
            Residual::Independent => (
                Vec::new(),
                theta[off..].iter().map(|t| (2.0 * t).exp()).collect(),
            ),
        };
        Some(CovParams { g, sigmas, strata })
    }

    /// Theta of covariance parameters (inverse of [`MmrmData::params_from_theta`]); a singular
    /// `G` is moved inside by a relative 1e-10 on its diagonal.
    pub fn theta_from_params(&self, prm: &CovParams, re_scale: &[f64]) -> Option<Vec<f64>> {
        let mut th = Vec::with_capacity(self.n_par());
        let q = self.q_re;
        if q > 0 {
            let sc = |i: usize| re_scale.get(i).copied().unwrap_or(1.0);
            let gs = DMatrix::from_fn(q, q, |i, j| prm.g[(i, j)] / (sc(i) * sc(j)));
            let l = gs.clone().cholesky().map(|c| c.l()).or_else(|| {
                let eps = 1e-10 * gs.diagonal().max().max(1e-300);
                (gs + DMatrix::identity(q, q) * eps)
                    .cholesky()
                    .map(|c| c.l())
            })?;
            for j in 0..q {
                for i in j..q {
                    th.push(l[(i, j)]);
                }
            }
        }
        match self.residual {
            Residual::Waves(kind) => {
                for s in &prm.sigmas {
                    th.extend(kind.theta_from_sigma(s)?);
                }
                th.extend(prm.strata.iter().skip(1).map(|d| d.ln()));
            }
            Residual::Independent => th.extend(prm.strata.iter().map(|v| 0.5 * v.ln())),
        }
        th.iter().all(|v| v.is_finite()).then_some(th)
    }

    /// Covariance parameters at natural gamma; `None` when `G` is not positive definite or a
    /// ratio / variance is not positive.
    pub fn params_from_gamma(&self, gamma: &[f64]) -> Option<CovParams> {
        if gamma.len() != self.n_par() || gamma.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let nre = self.n_re_par();
        let g = if self.q_re > 0 {
            let g = CovKind::Us.sigma_gamma(self.q_re, &gamma[..nre])?;
            g.clone().cholesky()?;
            g
        } else {
            DMatrix::zeros(0, 0)
        };
        let mut off = nre;
        let (sigmas, strata) = match self.residual {
            Residual::Waves(kind) => {
                let np = kind.n_par(self.n_waves);
                let sigmas = (0..self.n_groups)
                    .map(|gi| {
                        kind.sigma_gamma(self.n_waves, &gamma[off + gi * np..off + (gi + 1) * np])
                    })
                    .collect::<Option<Vec<_>>>()?;
                off += np * self.n_groups;
                let mut st = vec![1.0];
                st.extend_from_slice(&gamma[off..]);
                (sigmas, st)
            }
            Residual::Independent => (Vec::new(), gamma[off..].to_vec()),
        };
        if strata.iter().any(|v| *v <= 0.0) {
            return None;
        }
        Some(CovParams { g, sigmas, strata })
    }

    /// As [`MmrmData::params_from_gamma`], but `G` need only be positive semi-definite (a
    /// boundary fit).
    pub fn params_from_gamma_psd(&self, gamma: &[f64]) -> Option<CovParams> {
        if let Some(p) = self.params_from_gamma(gamma) {
            return Some(p);
        }
        let nre = self.n_re_par();
        let q = self.q_re;
        if q == 0 || gamma.len() != self.n_par() {
            return None;
        }
        let g = CovKind::Us.sigma_gamma(q, &gamma[..nre])?;
        let ev = g.clone().symmetric_eigen().eigenvalues;
        let top = ev.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        if ev.iter().any(|v| *v < -1e-10 * top.max(1e-300)) {
            return None;
        }
        // The residual part with a positive-definite stand-in for G.
        let mut gg = gamma.to_vec();
        let mut k = 0;
        for j in 0..q {
            for i in j..q {
                if i == j {
                    gg[k] = 1.0;
                } else {
                    gg[k] = 0.0;
                }
                k += 1;
            }
        }
        let mut p = self.params_from_gamma(&gg)?;
        p.g = g;
        Some(p)
    }

    /// Natural parameters gamma of covariance parameters.
    pub fn gamma_from_params(&self, prm: &CovParams) -> Vec<f64> {
        let mut v = Vec::with_capacity(self.n_par());
        if self.q_re > 0 {
            v.extend(CovKind::Us.gamma_from_sigma(&prm.g));
        }
        match self.residual {
            Residual::Waves(kind) => {
                for s in &prm.sigmas {
                    v.extend(kind.gamma_from_sigma(s));
                }
                v.extend(prm.strata.iter().skip(1));
            }
            Residual::Independent => v.extend(prm.strata.iter()),
        }
        v
    }

    /// `V` of one pattern.
    pub fn pattern_v(&self, pat: &Pattern, prm: &CovParams) -> Option<DMatrix<f64>> {
        let m = pat.strata.len();
        let mut v = match self.residual {
            Residual::Waves(_) => {
                let s = prm.sigmas.get(pat.group)?;
                let d = &prm.strata;
                DMatrix::from_fn(m, m, |i, j| {
                    s[(pat.waves[i], pat.waves[j])] * d[pat.strata[i]] * d[pat.strata[j]]
                })
            }
            Residual::Independent => DMatrix::from_fn(m, m, |i, j| {
                if i == j {
                    prm.strata[pat.strata[i]]
                } else {
                    0.0
                }
            }),
        };
        if let Some(z) = &pat.z {
            v += z * &prm.g * z.transpose();
        }
        Some(v)
    }

    /// The criterion at `prm`; `None` when a `V_i` or `X'V^-1 X` is not positive definite.
    pub fn evaluate(&self, prm: &CovParams, reml: bool) -> Option<Evaluation> {
        let p = self.p;
        let q = p + 1;
        let mut qtot = DMatrix::<f64>::zeros(q, q);
        let mut logdet_v = 0.0;
        for pat in &self.patterns {
            let v = self.pattern_v(pat, prm)?;
            let chol = v.cholesky()?;
            let ld: f64 = 2.0
                * chol
                    .l_dirty()
                    .diagonal()
                    .iter()
                    .map(|d| d.ln())
                    .sum::<f64>();
            logdet_v += pat.n_subjects as f64 * ld;
            let vinv = chol.inverse();
            pat.add_qform(&mut qtot, &vinv);
        }
        let xtvx = qtot.view((0, 0), (p, p)).into_owned();
        let xtvy = qtot.view((0, p), (p, 1)).into_owned();
        let yvy = qtot[(p, p)];
        let cx = xtvx.cholesky()?;
        let beta = cx.solve(&xtvy);
        let rss = yvy - (xtvy.transpose() * &beta)[(0, 0)];
        let n = self.n_obs as f64;
        let l2pi = (2.0 * std::f64::consts::PI).ln();
        let deviance = if reml {
            let ldx: f64 = 2.0 * cx.l_dirty().diagonal().iter().map(|d| d.ln()).sum::<f64>();
            (n - p as f64) * l2pi + logdet_v + ldx + rss
        } else {
            n * l2pi + logdet_v + rss
        };
        if !deviance.is_finite() {
            return None;
        }
        let vcov = cx.inverse();
        Some(Evaluation {
            deviance,
            beta: DVector::from_column_slice(beta.as_slice()),
            vcov,
            qtot,
        })
    }

    /// Scales of the random-effects parametrization: the square roots of the diagonal of `g`
    /// (floored at 1e-6 of the largest), so that theta is of order one.
    pub fn re_scale(&self, g: &DMatrix<f64>) -> Vec<f64> {
        let d: Vec<f64> = (0..self.q_re)
            .map(|i| g.get((i, i)).copied().unwrap_or(1.0).max(0.0).sqrt())
            .collect();
        let top = d.iter().fold(0.0f64, |a, v| a.max(*v)).max(1e-150);
        d.iter().map(|v| v.max(1e-6 * top)).collect()
    }

    /// Lower bounds of theta: 0 for the diagonal of the random-effects factor.
    pub fn theta_lower(&self) -> Vec<f64> {
        let mut lo = vec![f64::NEG_INFINITY; self.n_par()];
        let mut k = 0;
        for j in 0..self.q_re {
            for i in j..self.q_re {
                if i == j {
                    lo[k] = 0.0;
                }
                k += 1;
            }
        }
        lo
    }

    /// Starting values: residual variances from the OLS residuals (per stratum), `G` diagonal
    /// from a moment guess `G_jj = sum z_j^2 r^2 / (4 sum z_j^4)`.
    fn start_params(&self) -> Result<CovParams, MmrmError> {
        let p = self.p;
        let q = p + 1;
        let ns = self.n_strata;
        // OLS: V = I.
        let mut xx = DMatrix::<f64>::zeros(q, q);
        for pat in &self.patterns {
            let m = pat.strata.len();
            pat.add_qform(&mut xx, &DMatrix::identity(m, m));
        }
        let xtx = xx.view((0, 0), (p, p)).into_owned();
        let beta = xtx
            .cholesky()
            .ok_or(MmrmError::Numerical(
                "the OLS fit failed (collinear design?)".into(),
            ))?
            .solve(&xx.view((0, p), (p, 1)).into_owned());
        let mut c = DVector::<f64>::zeros(q);
        for i in 0..p {
            c[i] = -beta[i];
        }
        c[p] = 1.0;
        let qq = q * q;
        let (mut ss, mut cnt) = (vec![0.0; ns], vec![0.0; ns]);
        let mut zr = vec![0.0; self.q_re];
        let mut z4 = vec![0.0; self.q_re];
        for pat in &self.patterns {
            let m = pat.strata.len();
            for a in 0..m {
                let blk = &pat.s[(a * m + a) * qq..(a * m + a + 1) * qq];
                let mut r2 = 0.0;
                for r in 0..q {
                    for s in 0..q {
                        r2 += c[r] * blk[r * q + s] * c[s];
                    }
                }
                ss[pat.strata[a]] += r2;
                cnt[pat.strata[a]] += pat.n_subjects as f64;
                if let Some(z) = &pat.z {
                    for j in 0..self.q_re {
                        let z2 = z[(a, j)] * z[(a, j)];
                        zr[j] += z2 * r2;
                        z4[j] += z2 * z2 * pat.n_subjects as f64;
                    }
                }
            }
        }
        let df = (self.n_obs.saturating_sub(p)).max(1) as f64 / self.n_obs as f64;
        let s2: Vec<f64> = ss
            .iter()
            .zip(&cnt)
            .map(|(s, n)| (s / n.max(1.0) / df).max(1e-8))
            .collect();
        let s2all = (ss.iter().sum::<f64>() / cnt.iter().sum::<f64>() / df).max(1e-8);
        let shrink = if self.q_re > 0 { 0.5 } else { 1.0 };
        let g = DMatrix::from_fn(self.q_re, self.q_re, |i, j| {
            if i == j {
                (zr[i] / (4.0 * z4[i]).max(1e-300)).clamp(1e-6 * s2all, 1e6 * s2all)
            } else {
                0.0
            }
        });
        let nonfinite = || MmrmError::Numerical("the start of the covariance is not finite".into());
        let (sigmas, strata) = match self.residual {
            Residual::Waves(kind) => {
                let th = kind.start_theta(self.n_waves, shrink * s2[0]);
                let sg = kind.sigma_theta(self.n_waves, &th).ok_or_else(nonfinite)?;
                let mut st = vec![1.0];
                st.extend((1..ns).map(|s| (s2[s] / s2[0]).sqrt()));
                (vec![sg; self.n_groups], st)
            }
            Residual::Independent => (Vec::new(), s2.iter().map(|v| shrink * v).collect()),
        };
        Ok(CovParams { g, sigmas, strata })
    }
}

/// Options for [`fit_data`].
#[derive(Debug, Clone)]
pub struct MmrmOptions {
    /// REML (default) or ML.
    pub reml: bool,
    /// BOBYQA final trust radius (then Newton steps polish the optimum; when they do not reach
    /// a vanishing gradient, BOBYQA restarts with radius 1e-8).
    pub rho_end: f64,
    /// BOBYQA evaluation limit.
    pub max_evals: usize,
    /// Start (natural parameters gamma) instead of the default start, e.g. the estimates of a
    /// fit to the full data when refitting a bootstrap sample.
    pub start_gamma: Option<Vec<f64>>,
    /// With `start_gamma`: Newton steps from the start first, BOBYQA only when they do not
    /// reach a vanishing gradient (refits of slightly changed data, e.g. leave-one-out).
    pub newton_from_start: bool,
}

impl Default for MmrmOptions {
    fn default() -> Self {
        MmrmOptions {
            reml: true,
            rho_end: 1e-3,
            max_evals: 20_000,
            start_gamma: None,
            newton_from_start: false,
        }
    }
}

/// The optimum of the criterion.
#[derive(Debug, Clone)]
pub struct Optimum {
    /// Natural parameters gamma.
    pub gamma: Vec<f64>,
    pub params: CovParams,
    pub evaluation: Evaluation,
    pub n_evaluations: usize,
    pub newton_steps: usize,
    /// Largest absolute gradient component of the deviance in gamma at the end.
    pub max_abs_gradient: f64,
}

/// BOBYQA on theta from `theta` (updated in place); returns the number of evaluations.
fn run_bobyqa(
    data: &MmrmData,
    theta: &mut [f64],
    re_scale: &[f64],
    reml: bool,
    rho_begin: f64,
    rho_end: f64,
    max_evals: usize,
) -> Result<usize, MmrmError> {
    let k = theta.len();
    if k == 0 {
        return Ok(0);
    }
    let mut cfg = Config::new(k);
    cfg.rho_begin = rho_begin;
    cfg.rho_end = rho_end.min(rho_begin);
    cfg.max_fun = max_evals.max(cfg.npt + 2);
    let mut solver = Bobyqa::new(k, cfg).map_err(|s| MmrmError::Optimizer(s.to_string()))?;
    let lower = data.theta_lower();
    let upper = vec![f64::INFINITY; k];
    for (t, lo) in theta.iter_mut().zip(&lower) {
        *t = t.max(*lo);
    }
    let outcome = solver.minimize(
        |th: &[f64]| {
            data.params_from_theta(th, re_scale)
                .and_then(|s| data.evaluate(&s, reml))
                .map_or(1e300, |e| e.deviance)
        },
        theta,
        &lower,
        &upper,
    );
    Ok(outcome.n_eval)
}

/// Newton steps on gamma with the analytic gradient and Hessian, backtracking line search.
/// Returns (steps, largest absolute gradient at the end).
fn newton(
    data: &MmrmData,
    gamma: &mut Vec<f64>,
    eval: &mut Evaluation,
    reml: bool,
) -> (usize, f64) {
    let mut steps = 0;
    let mut max_abs_gradient = f64::NAN;
    for _ in 0..50 {
        let Ok(d) = super::inference::Derivatives::compute(data, gamma, eval, reml) else {
            return (steps, f64::NAN);
        };
        max_abs_gradient = d.gradient.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let Some(chol) = d.hessian.clone().cholesky() else {
            return (steps, max_abs_gradient);
        };
        let gv = DVector::from_column_slice(&d.gradient);
        let step = chol.solve(&gv);
        let dec = gv.dot(&step);
        if dec.is_nan() || dec <= 1e-20 {
            return (steps, max_abs_gradient);
        }
        let mut alpha = 1.0;
        let mut moved = false;
        for _ in 0..30 {
            let cand: Vec<f64> = gamma
                .iter()
                .zip(step.iter())
                .map(|(a, s)| a - alpha * s)
                .collect();
            if let Some(e) = data
                .params_from_gamma(&cand)
                .and_then(|s| data.evaluate(&s, reml))
            {
                // Accept a step that does not increase the deviance beyond rounding: near the
                // optimum the decrease (dec / 2) is below the rounding of the deviance itself.
                if e.deviance <= eval.deviance + 1e-12 * eval.deviance.abs().max(1.0) {
                    *gamma = cand;
                    *eval = e;
                    moved = true;
                    break;
                }
            }
            alpha *= 0.5;
        }
        if !moved {
            return (steps, max_abs_gradient);
        }
        steps += 1;
        if dec < 1e-16 {
            break;
        }
    }
    if let Ok(d) = super::inference::Derivatives::compute(data, gamma, eval, reml) {
        max_abs_gradient = d.gradient.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    }
    (steps, max_abs_gradient)
}

/// Fits the model: BOBYQA on theta (to `rho_end`), then Newton polishing on gamma; when the
/// gradient does not vanish (Hessian not positive definite far from the optimum, a ridge), a
/// second BOBYQA run to radius 1e-8 and Newton again.
pub fn fit_data(data: &MmrmData, opts: &MmrmOptions) -> Result<Optimum, MmrmError> {
    let reml = opts.reml;
    let warm = opts
        .start_gamma
        .as_ref()
        .and_then(|g| data.params_from_gamma_psd(g));
    let small = |g: f64, dev: f64| g.is_finite() && g < 1e-6 * dev.abs().max(1.0);
    if let (true, Some(prm)) = (opts.newton_from_start, warm.as_ref()) {
        if let Some(mut eval) = data.evaluate(prm, reml) {
            let mut gamma = data.gamma_from_params(prm);
            let (steps, g) = newton(data, &mut gamma, &mut eval, reml);
            if small(g, eval.deviance) {
                if let Some(params) = data.params_from_gamma_psd(&gamma) {
                    return Ok(Optimum {
                        gamma,
                        params,
                        evaluation: eval,
                        n_evaluations: 0,
                        newton_steps: steps,
                        max_abs_gradient: g,
                    });
                }
            }
        }
    }
    let rho_begin = if warm.is_some() { 0.05 } else { 0.2 };
    let start = match warm {
        Some(p) => p,
        None => data.start_params()?,
    };
    let re_scale = data.re_scale(&start.g);
    let mut theta = data
        .theta_from_params(&start, &re_scale)
        .ok_or(MmrmError::Numerical(
            "the start of the covariance parameters is not finite".into(),
        ))?;
    let mut n_evaluations = run_bobyqa(
        data,
        &mut theta,
        &re_scale,
        reml,
        rho_begin,
        opts.rho_end,
        opts.max_evals,
    )?;
    let at_theta = |theta: &[f64]| -> Result<(CovParams, Evaluation), MmrmError> {
        let prm = data
            .params_from_theta(theta, &re_scale)
            .ok_or(MmrmError::Optimizer(
                "the optimizer ended at a non-finite covariance".into(),
            ))?;
        let e = data.evaluate(&prm, reml).ok_or(MmrmError::Optimizer(
            "the optimizer ended at a singular covariance".into(),
        ))?;
        Ok((prm, e))
    };
    let (prm, mut eval) = at_theta(&theta)?;
    let mut gamma = data.gamma_from_params(&prm);
    let (mut steps, mut max_abs_gradient) = newton(data, &mut gamma, &mut eval, reml);
    if !small(max_abs_gradient, eval.deviance) && data.n_par() > 0 {
        // Restarts (from the best point so far) until the deviance stops improving: a ridge or
        // a boundary (singular G), where Newton steps do not apply. On trial-small's stacked
        // SFS model the first restarts stop 7.3 (deviance) above the maximum that the
        // correlation-halving restarts reach.
        for round in 0..12 {
            // Odd rounds restart from G with its correlations halved (off a boundary where the
            // Cholesky parametrization may hold the optimizer at a lower local maximum).
            let mut th2 = data
                .params_from_gamma_psd(&gamma)
                .map(|mut p| {
                    if round % 2 == 1 {
                        let q = p.g.nrows();
                        for i in 0..q {
                            for j in 0..q {
                                if i != j {
                                    p.g[(i, j)] *= 0.5;
                                }
                            }
                        }
                    }
                    p
                })
                .and_then(|p| data.theta_from_params(&p, &re_scale))
                .unwrap_or_else(|| theta.clone());
            n_evaluations +=
                run_bobyqa(data, &mut th2, &re_scale, reml, 0.05, 1e-8, opts.max_evals)?;
            let (p2, e2) = at_theta(&th2)?;
            let gain = eval.deviance - e2.deviance;
            if gain > 0.0 {
                gamma = data.gamma_from_params(&p2);
                eval = e2;
                theta = th2;
            }
            let (s2, g2) = newton(data, &mut gamma, &mut eval, reml);
            steps += s2;
            max_abs_gradient = g2;
            if small(max_abs_gradient, eval.deviance) || (round % 2 == 1 && gain < 1e-10) {
                break;
            }
        }
    }
    let params = data
        .params_from_gamma_psd(&gamma)
        .ok_or(MmrmError::Numerical("covariance not finite".into()))?;
    Ok(Optimum {
        gamma,
        params,
        evaluation: eval,
        n_evaluations,
        newton_steps: steps,
        max_abs_gradient,
    })
}
