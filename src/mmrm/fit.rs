//! REML/ML estimation of a linear model with a residual covariance structure by participant.
//!
//! Model: `y_i = X_i beta + e_i`, `e_i ~ N(0, Sigma_g[w_i, w_i])` independently over
//! participants `i`, with `w_i` the waves observed for participant `i` and `Sigma_g` the
//! covariance of group `g` (one group unless `by = ...`). This is nlme's `gls` with a
//! correlation structure by participant (and `varIdent` by wave for the heterogeneous
//! structures), SAS PROC MIXED `REPEATED / TYPE= SUBJECT=`, and the R package mmrm.
//!
//! **Sufficient statistics by missingness pattern.** Participants with the same group and the
//! same observed waves share `V_i`; for every such pattern the cross-products
//! `S_ab = sum_i z_ia z_ib'` of the rows `z = [x' y]` at positions `a, b` are formed once.
//! Then for any pattern-level matrix `A` (`V^-1`, `V^-1 G_k V^-1`, ...),
//! `sum_i Z_i' A Z_i = sum_ab A_ab S_ab`, so one evaluation of the criterion (and of its
//! analytic gradient and Hessian, and the Kenward-Roger terms) costs
//! O(patterns x T^2 x p^2), independent of the number of participants after one O(n p^2) pass.
//!
//! **Criterion** (`beta` profiled out; as nlme's `gls` log-likelihood):
//! ML `-2 l = N log(2 pi) + log|V| + r'V^-1 r`;
//! REML `-2 l = (N - p) log(2 pi) + log|V| + log|X'V^-1 X| + r'V^-1 r`.
//!
//! **Optimizer:** BOBYQA (Powell 2009; the `bobyqa` crate) on the unconstrained theta of
//! [`super::structures`], then Newton steps on the natural parameters gamma with the analytic
//! gradient and observed Hessian ([`super::inference::Derivatives`]) to polish the optimum.
use std::collections::HashMap;

use bobyqa::{Bobyqa, Config};
use nalgebra::{DMatrix, DVector};

use super::structures::CovKind;
use super::MmrmError;

/// One missingness pattern: group, observed wave positions, participants, cross-products.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub group: usize,
    pub waves: Vec<usize>,
    pub n_subjects: usize,
    /// `S_ab` for positions `a, b < m`: `(a * m + b) * q * q + r * q + s`, `q = p + 1`.
    pub s: Vec<f64>,
}

/// The data of an MMRM reduced to pattern cross-products.
#[derive(Debug, Clone)]
pub struct MmrmData {
    pub p: usize,
    pub n_obs: usize,
    pub n_subjects: usize,
    pub n_waves: usize,
    pub n_groups: usize,
    pub patterns: Vec<Pattern>,
    /// `log|X'X|` (the constant in nlme's REML likelihood).
    pub logdet_xtx: f64,
}

/// Criterion pieces at one set of covariance matrices.
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
            // out is column-major; blk is row-major r * q + s: add transposed index-wise.
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

impl MmrmData {
    /// Builds the pattern cross-products.
    ///
    /// `x` is row-major `n x p`; `subject`, `wave` (0-based position among `n_waves`) and
    /// `group` (0-based among `n_groups`) are per row. Errors name the offending participant
    /// (by its code) when a participant has two rows at one wave or changes group.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        x: &[f64],
        p: usize,
        y: &[f64],
        subject: &[u32],
        wave: &[usize],
        group: &[usize],
        n_waves: usize,
        n_groups: usize,
        subject_names: &[String],
    ) -> Result<MmrmData, MmrmError> {
        let n = y.len();
        if x.len() != n * p || subject.len() != n || wave.len() != n || group.len() != n {
            return Err(MmrmError::Data(
                "inconsistent lengths of the model columns".into(),
            ));
        }
        if n == 0 {
            return Err(MmrmError::Data("no observations".into()));
        }
        let q = p + 1;
        // Rows per participant, in order of first appearance.
        let mut by_subject: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut order = Vec::new();
        for (i, &s) in subject.iter().enumerate() {
            by_subject
                .entry(s)
                .or_insert_with(|| {
                    order.push(s);
                    Vec::new()
                })
                .push(i);
        }
        let name = |s: u32| {
            subject_names
                .get(s as usize)
                .cloned()
                .unwrap_or_else(|| s.to_string())
        };
        let mut pats: Vec<Pattern> = Vec::new();
        let mut index: HashMap<(usize, Vec<usize>), usize> = HashMap::new();
        let mut xtx = DMatrix::<f64>::zeros(p, p);
        for s in order {
            let mut rows = by_subject.remove(&s).unwrap_or_default();
            rows.sort_by_key(|&i| wave.get(i).copied().unwrap_or(0));
            let waves: Vec<usize> = rows.iter().map(|&i| wave[i]).collect();
            if let Some(w) = waves.windows(2).find(|w| w[0] == w[1]) {
                return Err(MmrmError::DuplicateWave {
                    subject: name(s),
                    wave: w[0],
                });
            }
            if waves.iter().any(|&w| w >= n_waves) {
                return Err(MmrmError::Data("wave index out of range".into()));
            }
            let g = group[rows[0]];
            if g >= n_groups || rows.iter().any(|&i| group[i] != g) {
                return Err(MmrmError::GroupChanges { subject: name(s) });
            }
            let m = waves.len();
            let key = (g, waves.clone());
            let k = *index.entry(key).or_insert_with(|| {
                pats.push(Pattern {
                    group: g,
                    waves,
                    n_subjects: 0,
                    s: vec![0.0; m * m * q * q],
                });
                pats.len() - 1
            });
            let pat = &mut pats[k];
            pat.n_subjects += 1;
            let z = |i: usize, r: usize| if r < p { x[i * p + r] } else { y[i] };
            for (a, &ia) in rows.iter().enumerate() {
                for (b, &ib) in rows.iter().enumerate() {
                    let base = (a * m + b) * q * q;
                    for r in 0..q {
                        let zr = z(ia, r);
                        if zr == 0.0 {
                            continue;
                        }
                        for c in 0..q {
                            pat.s[base + r * q + c] += zr * z(ib, c);
                        }
                    }
                }
                for r in 0..p {
                    for c in 0..p {
                        xtx[(r, c)] += x[ia * p + r] * x[ia * p + c];
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
        Ok(MmrmData {
            p,
            n_obs: n,
            n_subjects,
            n_waves,
            n_groups,
            patterns: pats,
            logdet_xtx,
        })
    }

    /// The criterion at the per-group covariances `sigmas`; `None` when a covariance or
    /// `X'V^-1 X` is not positive definite.
    pub fn evaluate(&self, sigmas: &[DMatrix<f64>], reml: bool) -> Option<Evaluation> {
        let p = self.p;
        let q = p + 1;
        let mut qtot = DMatrix::<f64>::zeros(q, q);
        let mut logdet_v = 0.0;
        for pat in &self.patterns {
            let s = sigmas.get(pat.group)?;
            let v = sub(s, &pat.waves);
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
            add_qform(&mut qtot, &vinv, &pat.s, q);
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
}

/// Options for [`fit_data`].
#[derive(Debug, Clone)]
pub struct MmrmOptions {
    /// REML (default) or ML.
    pub reml: bool,
    /// BOBYQA final trust radius.
    pub rho_end: f64,
    /// BOBYQA evaluation limit.
    pub max_evals: usize,
}

impl Default for MmrmOptions {
    fn default() -> Self {
        MmrmOptions {
            reml: true,
            rho_end: 1e-7,
            max_evals: 20_000,
        }
    }
}

/// The optimum of the criterion.
#[derive(Debug, Clone)]
pub struct Optimum {
    /// Natural parameters gamma, concatenated over groups.
    pub gamma: Vec<f64>,
    /// Covariance per group.
    pub sigmas: Vec<DMatrix<f64>>,
    pub evaluation: Evaluation,
    pub n_evaluations: usize,
    pub newton_steps: usize,
    /// Largest absolute gradient component of the deviance in gamma at the end.
    pub max_abs_gradient: f64,
}

fn sigmas_from_theta(
    kind: CovKind,
    t: usize,
    g: usize,
    theta: &[f64],
) -> Option<Vec<DMatrix<f64>>> {
    let k = kind.n_par(t);
    (0..g)
        .map(|gi| kind.sigma_theta(t, theta.get(gi * k..(gi + 1) * k)?))
        .collect()
}

/// Covariance per group at natural parameters gamma.
pub fn sigmas_from_gamma(
    kind: CovKind,
    t: usize,
    g: usize,
    gamma: &[f64],
) -> Option<Vec<DMatrix<f64>>> {
    let k = kind.n_par(t);
    (0..g)
        .map(|gi| kind.sigma_gamma(t, gamma.get(gi * k..(gi + 1) * k)?))
        .collect()
}

/// Fits the model: BOBYQA on theta, then Newton polishing on gamma.
pub fn fit_data(data: &MmrmData, kind: CovKind, opts: &MmrmOptions) -> Result<Optimum, MmrmError> {
    let t = data.n_waves;
    let g = data.n_groups;
    let reml = opts.reml;
    // Start: Sigma = s2 I with s2 the OLS residual variance.
    let ident = vec![DMatrix::<f64>::identity(t, t); g];
    let ols = data.evaluate(&ident, false).ok_or(MmrmError::Numerical(
        "the OLS fit failed (collinear design?)".into(),
    ))?;
    let rss = ols.deviance - data.n_obs as f64 * (2.0 * std::f64::consts::PI).ln();
    let s2 = (rss / (data.n_obs.saturating_sub(data.p)).max(1) as f64).max(1e-8);
    let mut theta: Vec<f64> = (0..g).flat_map(|_| kind.start_theta(t, s2)).collect();
    let k = theta.len();
    let mut cfg = Config::new(k);
    cfg.rho_begin = 0.2;
    cfg.rho_end = opts.rho_end;
    cfg.max_fun = opts.max_evals.max(cfg.npt + 2);
    let mut solver = Bobyqa::new(k, cfg).map_err(|s| MmrmError::Optimizer(s.to_string()))?;
    let lower = vec![-f64::INFINITY; k];
    let upper = vec![f64::INFINITY; k];
    let outcome = solver.minimize(
        |th: &[f64]| {
            sigmas_from_theta(kind, t, g, th)
                .and_then(|s| data.evaluate(&s, reml))
                .map_or(1e300, |e| e.deviance)
        },
        &mut theta,
        &lower,
        &upper,
    );
    let sigmas = sigmas_from_theta(kind, t, g, &theta).ok_or(MmrmError::Optimizer(
        "the optimizer ended at a non-finite covariance".into(),
    ))?;
    let mut gamma: Vec<f64> = sigmas
        .iter()
        .flat_map(|s| kind.gamma_from_sigma(s))
        .collect();
    let mut eval = data.evaluate(&sigmas, reml).ok_or(MmrmError::Optimizer(
        "the optimizer ended at a singular covariance".into(),
    ))?;
    // Newton polishing on gamma.
    let mut steps = 0;
    let mut max_abs_gradient = f64::NAN;
    for _ in 0..20 {
        let Ok(d) = super::inference::Derivatives::compute(data, kind, &gamma, &eval, reml, false)
        else {
            break;
        };
        max_abs_gradient = d.gradient.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let h = d.hessian.clone();
        let Some(chol) = h.cholesky() else { break };
        let gv = DVector::from_column_slice(&d.gradient);
        let step = chol.solve(&gv);
        let dec = gv.dot(&step);
        if dec.is_nan() || dec <= 1e-14 {
            break;
        }
        let mut alpha = 1.0;
        let mut moved = false;
        for _ in 0..30 {
            let cand: Vec<f64> = gamma
                .iter()
                .zip(step.iter())
                .map(|(a, s)| a - alpha * s)
                .collect();
            if let Some(e) =
                sigmas_from_gamma(kind, t, g, &cand).and_then(|s| data.evaluate(&s, reml))
            {
                if e.deviance <= eval.deviance {
                    gamma = cand;
                    eval = e;
                    moved = true;
                    break;
                }
            }
            alpha *= 0.5;
        }
        if !moved {
            break;
        }
        steps += 1;
        if dec < 1e-13 {
            break;
        }
    }
    let sigmas = sigmas_from_gamma(kind, t, g, &gamma)
        .ok_or(MmrmError::Numerical("covariance not finite".into()))?;
    if let Ok(d) = super::inference::Derivatives::compute(data, kind, &gamma, &eval, reml, false) {
        max_abs_gradient = d.gradient.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    }
    Ok(Optimum {
        gamma,
        sigmas,
        evaluation: eval,
        n_evaluations: outcome.n_eval,
        newton_steps: steps,
        max_abs_gradient,
    })
}
