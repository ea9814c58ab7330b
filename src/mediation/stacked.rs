//! Random slopes of the a and b paths: the within-person model with the M and Y equations
//! stacked (Bauer, Preacher & Gil 2006, Psychol Methods 11, "Conceptualizing and testing
//! random indirect effects and moderated mediation in multilevel models"), estimated jointly so
//! that the covariance of the person-specific paths `a_j`, `b_j` is identified; the average
//! indirect effect is `a b + cov(a_j, b_j)` (Kenny, Korchmaros & Bolger 2003, Psychol Methods 8).
//!
//! For one mediator M (of X on Y) the stacked data have one row per observed M with X observed
//! (`dv = m`, `z = M`) and one per observed Y with M and X observed (`dv = y`, `z = Y`), sorted
//! by participant and equation. The fixed part is the product of the equation indicators with
//! the predictors (as `tests/r/mediation.R`):
//! `z ~ 0 + m_int + y_int + a_x + b_m + cp_x + m_xb + y_xb + y_mb + m_<wave> .. + y_<wave> ..`
//! with `a_x = [m] X_w`, `b_m = [y] M_w`, `cp_x = [y] X_w`, `m_xb = [m] X_b`, `y_xb = [y] X_b`,
//! `y_mb = [y] M_b` and the wave indicators (first wave the reference) per equation; the random
//! part is an unstructured 4 x 4 covariance of `(m_int, y_int, a_x, b_m)` per participant, and
//! the residuals are independent with one variance per equation (nlme:
//! `lme(..., random = list(id = pdSymm(~ 0 + m_int + y_int + a_x + b_m)),
//! weights = varIdent(form = ~ 1 | dv))`).
//!
//! The fit itself comes from a [`StackedFitter`] (a mixed model with subject-level random
//! effects and a residual variance per equation: [`MmrmFitter`], the mixed model of
//! [`crate::mmrm`], and [`NativeFitter`]; the analysis keeps the better of the two,
//! [`BestOf`]); this module stacks the data, evaluates the
//! (restricted) likelihood at given variance parameters (GLS for the fixed effects, by the
//! crate's one GLS likelihood, [`crate::mmrm::MmrmData::evaluate`]), derives
//! the sampling covariance of the variance parameters from the observed information, and
//! forms the average indirect effect with its delta-method and Monte Carlo intervals.
#![allow(clippy::needless_range_loop)] // index loops over paired matrix/vector entries
use nalgebra::DMatrix;
use rand_distr::{Distribution, StandardNormal};

use crate::frame::Frame;
use crate::mmrm::{CovParams, MmrmData, Residual, RowData};

use super::indirect;
use super::within::{centre, Centred};
use super::{MediationError, MediationSpec, Panel};
use crate::stats::distributions::qnorm;
use crate::stats::linalg::cholesky_semidefinite;
use crate::stats::numderiv;
use crate::stats::quantile::quantile_interval;
use crate::stats::rng::{substream, tags};

const ANALYSIS: &str = "within_person_random_slopes";

/// The random-effect columns, in order: the two equation intercepts, path a, path b.
pub const RANDOM_TERMS: [&str; 4] = ["m_int", "y_int", "a_x", "b_m"];

/// The stacked M and Y equations of one mediator, sorted by participant then equation.
#[derive(Debug, Clone, PartialEq)]
pub struct StackedData {
    /// The mediator's score name.
    pub mediator: String,
    /// Participant index per row (into `subject_ids`).
    pub subject: Vec<usize>,
    pub subject_ids: Vec<String>,
    /// Equation per row: 0 = mediator (`dv = m`), 1 = outcome (`dv = y`).
    pub equation: Vec<usize>,
    /// Wave index per row.
    pub wave: Vec<usize>,
    pub wave_levels: Vec<String>,
    /// Response per row (M or Y).
    pub z: Vec<f64>,
    /// Fixed-effect design, `n x p` row-major.
    pub x: Vec<f64>,
    pub x_names: Vec<String>,
    /// Columns of `x` with a random effect per participant ([`RANDOM_TERMS`]).
    pub random: Vec<usize>,
    /// First row of each participant with rows (and `n` at the end).
    starts: Vec<usize>,
}

impl StackedData {
    /// Rows.
    pub fn n(&self) -> usize {
        self.z.len()
    }

    /// Fixed effects.
    pub fn p(&self) -> usize {
        self.x_names.len()
    }

    /// Participants with at least one row.
    pub fn n_groups(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Column index of a fixed effect.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.x_names.iter().position(|n| n == name)
    }

    /// The fixed-effects formula (R syntax, as fitted by `tests/r/mediation.R`).
    pub fn fixed_formula(&self) -> String {
        format!("z ~ 0 + {}", self.x_names.join(" + "))
    }

    /// The random part in lme4 syntax: `(0 + m_int + y_int + a_x + b_m | id)`.
    pub fn random_formula(&self) -> String {
        format!("(0 + {} | id)", RANDOM_TERMS.join(" + "))
    }

    /// The stacked data as a frame: `id` (factor), `dv` (factor `m`, `y`), `wave` (factor),
    /// `z` and every fixed-effect column, for a formula-based fitter.
    pub fn to_frame(&self) -> Result<Frame, MediationError> {
        let ferr = |source| MediationError::Frame {
            analysis: ANALYSIS.into(),
            source,
        };
        let n = self.n();
        let p = self.p();
        let mut f = Frame::new();
        f.push_factor(
            "id",
            self.subject
                .iter()
                .map(|&s| self.subject_ids.get(s).cloned())
                .collect(),
            None,
        )
        .map_err(ferr)?;
        f.push_factor(
            "dv",
            self.equation
                .iter()
                .map(|&e| Some(if e == 0 { "m" } else { "y" }.to_string()))
                .collect(),
            Some(vec!["m".into(), "y".into()]),
        )
        .map_err(ferr)?;
        f.push_factor(
            "wave",
            self.wave
                .iter()
                .map(|&w| self.wave_levels.get(w).cloned())
                .collect(),
            Some(self.wave_levels.clone()),
        )
        .map_err(ferr)?;
        f.push_numeric("z", self.z.iter().map(|&v| Some(v)).collect())
            .map_err(ferr)?;
        for (j, name) in self.x_names.iter().enumerate() {
            f.push_numeric(name, (0..n).map(|i| Some(self.x[i * p + j])).collect())
                .map_err(ferr)?;
        }
        Ok(f)
    }
}

/// Stacks the M and Y equations of mediator `mediator` (index into `spec.mediators`) on the
/// person-mean centred panel (every mediator's own centring, as [`super::within`]).
pub fn stack(
    panel: &Panel,
    spec: &MediationSpec,
    mediator: usize,
) -> Result<StackedData, MediationError> {
    let m = spec
        .mediators
        .get(mediator)
        .ok_or_else(|| MediationError::Spec(format!("no mediator number {}", mediator + 1)))?;
    let names = vec![spec.x.clone(), m.clone(), spec.y.clone()];
    let cen = centre(panel, &names)?;
    Ok(stack_centred(&cen))
}

/// Stacks X = variable 0, M = variable 1, Y = variable 2 of `cen`.
pub(crate) fn stack_centred(cen: &Centred) -> StackedData {
    let nw = cen.waves.len();
    let np = cen.n_participants;
    let mut x_names: Vec<String> = [
        "m_int", "y_int", "a_x", "b_m", "cp_x", "m_xb", "y_xb", "y_mb",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for eq in ["m", "y"] {
        for w in cen.waves.iter().skip(1) {
            x_names.push(format!("{eq}_{w}"));
        }
    }
    let p = x_names.len();
    let (xr, xw, xb) = (&cen.raw[0], &cen.within[0], &cen.between[0]);
    let (mr, mw, mb) = (&cen.raw[1], &cen.within[1], &cen.between[1]);
    let yr = &cen.raw[2];
    let mut d = StackedData {
        mediator: cen.names[1].clone(),
        subject: Vec::new(),
        subject_ids: cen.ids.clone(),
        equation: Vec::new(),
        wave: Vec::new(),
        wave_levels: cen.waves.clone(),
        z: Vec::new(),
        x: Vec::new(),
        x_names,
        random: (0..4).collect(),
        starts: Vec::new(),
    };
    for s in 0..np {
        let first = d.z.len();
        for eq in 0..2 {
            for t in 0..nw {
                let c = s * nw + t;
                let (Some(_), Some(xwv), Some(xbv), Some(mv)) = (xr[c], xw[c], xb[c], mr[c]) else {
                    continue;
                };
                let mut row = vec![0.0; p];
                let z = if eq == 0 {
                    row[0] = 1.0;
                    row[2] = xwv;
                    row[5] = xbv;
                    mv
                } else {
                    let (Some(yv), Some(mwv), Some(mbv)) = (yr[c], mw[c], mb[c]) else {
                        continue;
                    };
                    row[1] = 1.0;
                    row[3] = mwv;
                    row[4] = xwv;
                    row[6] = xbv;
                    row[7] = mbv;
                    yv
                };
                if t > 0 {
                    row[8 + eq * (nw - 1) + (t - 1)] = 1.0;
                }
                d.subject.push(s);
                d.equation.push(eq);
                d.wave.push(t);
                d.z.push(z);
                d.x.extend_from_slice(&row);
            }
        }
        if d.z.len() > first {
            d.starts.push(first);
        }
    }
    d.starts.push(d.z.len());
    d
}

/// A fitted stacked model: what the average indirect effect needs from a fitter.
#[derive(Debug, Clone, PartialEq)]
pub struct StackedFit {
    /// REML (true) or ML.
    pub reml: bool,
    /// Fixed effects in the order of [`StackedData::x_names`].
    pub beta: Vec<f64>,
    /// Their covariance, `p x p` row-major.
    pub vcov: Vec<f64>,
    /// Random-effects covariance of [`RANDOM_TERMS`], `4 x 4` row-major (nlme's `getVarCov`).
    pub re_cov: Vec<f64>,
    /// Residual SD of the M and the Y equation (nlme: `sigma` and `sigma * ratio`).
    pub sigma: [f64; 2],
    /// Log-likelihood (REML or ML) at the optimum.
    pub loglik: f64,
    /// Warnings of the fitter (convergence, boundary).
    pub warnings: Vec<String>,
}

/// A mixed-model fitter for the stacked data: subject-level random effects with an
/// unstructured covariance over `data.random` and one residual variance per equation
/// (`data.equation`), by REML (`reml = true`) or ML.
pub trait StackedFitter: Sync {
    fn fit(&self, data: &StackedData, reml: bool) -> Result<StackedFit, StackedFitError>;
}

/// Why a [`StackedFitter`] gives no fit.
#[derive(Debug, thiserror::Error)]
pub enum StackedFitError {
    #[error("{0} rows are too few for the stacked model")]
    TooFewRows(usize),
    #[error("the fixed-effects design of the stacked model is singular")]
    SingularDesign,
    #[error("the stacked model cannot be evaluated at the start")]
    BadStart,
    #[error("BOBYQA: {0}")]
    Optimizer(String),
    #[error("the optimum cannot be evaluated")]
    BadOptimum,
    #[error(transparent)]
    Data(#[from] Box<MediationError>),
    #[error(transparent)]
    Mmrm(#[from] crate::mmrm::MmrmError),
    #[error("`{term}` is not among the fitted terms {fitted:?}")]
    MissingTerm { term: String, fitted: Vec<String> },
    #[error("the fit has no random-effects covariance")]
    NoRandomEffects,
    #[error("no residual SD for equation `{0}`")]
    NoResidualSd(String),
    /// Every fitter of [`BestOf`] failed: `name: error` of each, `; `-separated.
    #[error("{0}")]
    AllFailed(String),
}

/// The GLS solution and the criterion at given variance parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct GlsAt {
    pub beta: Vec<f64>,
    /// `(X' V^-1 X)^-1`, `p x p` row-major.
    pub vcov: Vec<f64>,
    /// -2 log-likelihood (REML: restricted), nlme's convention:
    /// ML `N log(2 pi) + log|V| + r'V^-1 r`; REML `(N - p) log(2 pi) + log|V| + log|X'V^-1 X| + r'V^-1 r`.
    pub deviance: f64,
}

impl GlsAt {
    pub fn loglik(&self) -> f64 {
        -self.deviance / 2.0
    }
}

/// The stacked model as the data of the crate's one GLS likelihood ([`MmrmData::evaluate`]):
/// independent residuals with one variance per equation ([`Residual::Independent`], the
/// equations as strata) and the random columns of `x` as `Z`, so that
/// `V_i = Z_i G Z_i' + diag(sigma_eq^2)` per participant. `None` when `X'X` is singular.
pub fn gls_data(data: &StackedData) -> Option<MmrmData> {
    let (n, p) = (data.n(), data.p());
    let subject: Vec<u32> = data.subject.iter().map(|&s| s as u32).collect();
    let z: Vec<f64> = (0..n)
        .flat_map(|i| data.random.iter().map(move |&c| data.x[i * p + c]))
        .collect();
    let zeros = vec![0usize; n];
    let stratum: Vec<usize> = data.equation.iter().map(|&e| e.min(1)).collect();
    let rows = RowData {
        x: &data.x,
        p,
        y: &data.z,
        subject: &subject,
        wave: &zeros,
        group: &zeros,
        stratum: &stratum,
        z: &z,
        q_re: data.random.len(),
        n_waves: 1,
        n_groups: 1,
        n_strata: 2,
        subject_names: &data.subject_ids,
    };
    MmrmData::new(rows, Residual::Independent).ok()
}

/// The covariance parameters of [`gls_data`] at `G` (row-major) and the residual variances
/// per equation.
fn cov_params(re_cov: &[f64], q: usize, var: [f64; 2]) -> Option<CovParams> {
    (re_cov.len() == q * q).then(|| CovParams {
        g: DMatrix::from_row_slice(q, q, re_cov),
        sigmas: Vec::new(),
        strata: var.to_vec(),
    })
}

/// [`evaluate`] on the data of [`gls_data`].
fn evaluate_on(gd: &MmrmData, re_cov: &[f64], sigma: [f64; 2], reml: bool) -> Option<GlsAt> {
    let p = gd.p;
    let prm = cov_params(re_cov, gd.q_re, [sigma[0] * sigma[0], sigma[1] * sigma[1]])?;
    let ev = gd.evaluate(&prm, reml)?;
    Some(GlsAt {
        beta: ev.beta.iter().copied().collect(),
        vcov: (0..p * p).map(|k| ev.vcov[(k / p, k % p)]).collect(),
        deviance: ev.deviance,
    })
}

/// Generalized least squares and the (restricted) likelihood of the stacked model at the
/// random-effects covariance `re_cov` (4 x 4 over [`RANDOM_TERMS`]) and residual SDs `sigma`
/// (per equation): `V_i = Z_i G Z_i' + diag(sigma_eq^2)` per participant. `None` when a `V_i`
/// or `X'V^-1 X` is not positive definite.
pub fn evaluate(data: &StackedData, re_cov: &[f64], sigma: [f64; 2], reml: bool) -> Option<GlsAt> {
    evaluate_on(&gls_data(data)?, re_cov, sigma, reml)
}

/// The deviance with the overall scale profiled out: at `V = s^2 (Z G* Z' + diag(1, rho^2))`
/// the optimal `s^2` is `r'V*^-1 r / (N - p)` (REML) or `/ N` (ML). With `D*` the deviance at
/// `s^2 = 1` and `r'V*^-1 r` its weighted residual sum of squares, the profiled deviance is
/// `D* - r'V*^-1 r + df (log s^2 + 1)`. Returns it and `s^2`.
fn profiled(gd: &MmrmData, g_star: &[f64], rho: f64, reml: bool) -> Option<(f64, f64)> {
    let p = gd.p;
    let prm = cov_params(g_star, gd.q_re, [1.0, rho * rho])?;
    let ev = gd.evaluate(&prm, reml)?;
    let xtvy = ev.qtot.view((0, p), (p, 1));
    let rss = ev.qtot[(p, p)] - (xtvy.transpose() * &ev.beta)[(0, 0)];
    let n = gd.n_obs as f64;
    let df = if reml { n - p as f64 } else { n };
    if df <= 0.0 || rss <= 0.0 {
        return None;
    }
    let s2 = rss / df;
    let dev = ev.deviance - rss + df * (s2.ln() + 1.0);
    dev.is_finite().then_some((dev, s2))
}

/// The variance parameters `gamma`: the lower triangle of G row by row
/// (`G11, G21, G22, G31, ..`), then the residual variances of the M and Y equations.
pub fn gamma_of(re_cov: &[f64], sigma: [f64; 2]) -> Vec<f64> {
    let q = (re_cov.len() as f64).sqrt() as usize;
    let mut g = Vec::new();
    for i in 0..q {
        for j in 0..=i {
            g.push(re_cov[i * q + j]);
        }
    }
    g.push(sigma[0] * sigma[0]);
    g.push(sigma[1] * sigma[1]);
    g
}

/// Inverse of [`gamma_of`]: `(G, sigma)`; `None` for a negative residual variance.
pub fn from_gamma(gamma: &[f64], q: usize) -> Option<(Vec<f64>, [f64; 2])> {
    let nt = q * (q + 1) / 2;
    if gamma.len() != nt + 2 || gamma[nt] <= 0.0 || gamma[nt + 1] <= 0.0 {
        return None;
    }
    let mut g = vec![0.0; q * q];
    let mut t = 0;
    for i in 0..q {
        for j in 0..=i {
            g[i * q + j] = gamma[t];
            g[j * q + i] = gamma[t];
            t += 1;
        }
    }
    Some((g, [gamma[nt].sqrt(), gamma[nt + 1].sqrt()]))
}

/// The asymptotic covariance of the variance parameters `gamma` ([`gamma_of`] order): the
/// inverse observed information, `(1/2 d^2 deviance / d gamma d gamma')^-1`, by central
/// differences of the (restricted) deviance with beta profiled (as nlme's `apVar`, here on
/// the natural parameters). `None` when the Hessian is not positive definite (boundary fit).
pub fn gamma_vcov(data: &StackedData, fit: &StackedFit) -> Option<DMatrix<f64>> {
    let q = data.random.len();
    let g0 = gamma_of(&fit.re_cov, fit.sigma);
    let k = g0.len();
    let nt = q * (q + 1) / 2;
    // Steps: 1e-3 of the scale of each parameter.
    let mut diag_g = vec![0.0; q];
    let mut t = 0;
    for i in 0..q {
        for j in 0..=i {
            if i == j {
                diag_g[i] = g0[t].abs();
            }
            t += 1;
        }
    }
    let mut h = vec![0.0; k];
    let mut t = 0;
    for i in 0..q {
        for j in 0..=i {
            h[t] = 1e-3 * (diag_g[i] * diag_g[j]).sqrt().max(1e-12);
            t += 1;
        }
    }
    h[nt] = 1e-3 * g0[nt];
    h[nt + 1] = 1e-3 * g0[nt + 1];
    let gd = gls_data(data)?;
    let f = |g: &[f64]| -> Option<f64> {
        let (re, s) = from_gamma(g, q)?;
        Some(evaluate_on(&gd, &re, s, fit.reml)?.deviance / 2.0)
    };
    let mut vals = Vec::new();
    for point in numderiv::central_stencil(&g0, &h) {
        vals.push(f(&point)?);
    }
    let (_, hess) = numderiv::central_derivatives(&vals, &h);
    let hess = DMatrix::from_row_slice(k, k, &hess);
    hess.cholesky().map(|c| c.inverse())
}

/// The average indirect effect of a stacked fit and its intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct AverageIndirect {
    /// Fixed path a (`a_x`) and b (`b_m`).
    pub a: f64,
    pub b: f64,
    /// `var(a)`, `var(b)`, `cov(a, b)` of the fixed effects.
    pub var_a: f64,
    pub var_b: f64,
    pub cov_a_b: f64,
    /// `cov(a_j, b_j)`: the random-effects covariance of the two slopes.
    pub cov_ab: f64,
    /// Its sampling variance (inverse observed information; `NaN` when not available).
    pub var_cov_ab: f64,
    /// `a b + cov(a_j, b_j)`.
    pub estimate: f64,
    /// Delta-method (second-order) SE of the estimate.
    pub std_error: f64,
    /// `estimate -/+ z SE`.
    pub delta: (f64, f64),
    /// Monte Carlo percentile interval (`(NaN, NaN)` with 0 draws).
    pub monte_carlo: (f64, f64),
}

/// The average indirect effect `a b + cov(a_j, b_j)` (Kenny, Korchmaros & Bolger 2003;
/// Bauer, Preacher & Gil 2006, eqs. 12-13) with its SE
/// `var = b^2 var(a) + a^2 var(b) + var(a) var(b) + 2 a b cov(a, b) + cov(a, b)^2
/// + var(cov(a_j, b_j))` (fixed effects and variance parameters asymptotically independent),
/// the normal (delta-method) interval, and a Monte Carlo interval (Preacher & Selig 2012):
/// `(a, b) ~ N(est, vcov)` jointly, `cov(a_j, b_j) ~ N(est, var)`. `var_cov_ab` comes from
/// [`gamma_vcov`] (pass `NaN` when unknown: the SE and intervals are then `NaN`).
pub fn average_indirect(
    data: &StackedData,
    fit: &StackedFit,
    var_cov_ab: f64,
    level: f64,
    draws: usize,
    seed: u64,
    tag: u64,
) -> Option<AverageIndirect> {
    let p = data.p();
    let ia = data.column("a_x")?;
    let ib = data.column("b_m")?;
    let (ra, rb) = (2usize, 3usize); // positions of a_x, b_m in RANDOM_TERMS
    let a = *fit.beta.get(ia)?;
    let b = *fit.beta.get(ib)?;
    let var_a = *fit.vcov.get(ia * p + ia)?;
    let var_b = *fit.vcov.get(ib * p + ib)?;
    let cov_a_b = *fit.vcov.get(ia * p + ib)?;
    let cov_ab = *fit.re_cov.get(ra * 4 + rb)?;
    let estimate = a * b + cov_ab;
    let var = b * b * var_a
        + a * a * var_b
        + var_a * var_b
        + 2.0 * a * b * cov_a_b
        + cov_a_b * cov_a_b
        + var_cov_ab;
    let std_error = var.max(0.0).sqrt();
    let z = qnorm(1.0 - (1.0 - level) / 2.0);
    let delta = (estimate - z * std_error, estimate + z * std_error);
    let monte_carlo = if draws > 0 && var_cov_ab.is_finite() {
        let l = cholesky_semidefinite(&[var_a, cov_a_b, cov_a_b, var_b], 2);
        let sc = var_cov_ab.max(0.0).sqrt();
        let mut rng = substream(seed, tag, 0);
        let mut out = Vec::with_capacity(draws);
        for _ in 0..draws {
            let z1: f64 = StandardNormal.sample(&mut rng);
            let z2: f64 = StandardNormal.sample(&mut rng);
            let z3: f64 = StandardNormal.sample(&mut rng);
            let ad = a + l[0] * z1;
            let bd = b + l[2] * z1 + l[3] * z2;
            out.push(ad * bd + cov_ab + sc * z3);
        }
        quantile_interval(&out, level)
    } else {
        (f64::NAN, f64::NAN)
    };
    Some(AverageIndirect {
        a,
        b,
        var_a,
        var_b,
        cov_a_b,
        cov_ab,
        var_cov_ab,
        estimate,
        std_error,
        delta,
        monte_carlo,
    })
}

/// The random-slope analysis (`analysis = "within_person_random_slopes"`): one stacked model
/// per mediator (its M equation and the Y equation with that mediator), fitted by REML with
/// `fitter`. Paths per mediator k: `ak`, `bk` (fixed, average slopes), `c_prime` (`c_prime_k`
/// with several mediators) and `cov_akbk` (the slope covariance, SE from [`gamma_vcov`]);
/// indirect effects `akbk` = the average indirect effect, its delta-method SE in `sobel_se`
/// and its Monte Carlo interval.
pub fn run(
    panel: &Panel,
    spec: &MediationSpec,
    seed: u64,
    fitter: &dyn StackedFitter,
) -> Result<crate::results::MediationResult, MediationError> {
    use crate::results::{IndirectRow, Interval, MediationResult, PathRow};
    let k = spec.mediators.len();
    let level = spec.conf_level;
    let z = qnorm(1.0 - (1.0 - level) / 2.0);
    let row = |path: String, est: f64, se: f64| PathRow {
        path,
        estimate: est,
        std_error: se,
        std_estimate: None,
        df: None,
        p_value: Some(indirect::normal_p(est / se)),
        conf_low: Some(est - z * se),
        conf_high: Some(est + z * se),
    };
    let mut paths = Vec::new();
    let mut between_paths = Vec::new();
    let mut ind = Vec::new();
    let mut warnings = Vec::new();
    let mut n_used = 0usize;
    for j in 0..k {
        let data = stack(panel, spec, j)?;
        n_used = n_used.max(data.n_groups());
        let fit = fitter
            .fit(&data, true)
            .map_err(|message| MediationError::Data {
                analysis: ANALYSIS.into(),
                message: format!(
                    "fitting the stacked model of `{}`: {message}",
                    data.mediator
                ),
            })?;
        let p = data.p();
        if fit.beta.len() != p || fit.vcov.len() != p * p || fit.re_cov.len() != 16 {
            return Err(MediationError::Data {
                analysis: ANALYSIS.into(),
                message: format!(
                    "the fitter returned {} coefficients, {} covariances and {} random-effect covariances ({p}, {}, 16 expected)",
                    fit.beta.len(),
                    fit.vcov.len(),
                    fit.re_cov.len(),
                    p * p
                ),
            });
        }
        warnings.extend(
            fit.warnings
                .iter()
                .map(|w| format!("{}: {w}", data.mediator)),
        );
        let gv = gamma_vcov(&data, &fit);
        // cov(a_j, b_j) = G[2, 3]: position in gamma (row 3, column 2) = 3 * 4 / 2 + 2 = 8.
        // At a boundary (singular G) the information matrix is not positive definite: the
        // data do not support the slope covariance, and the interval is conditional on it.
        let var_cov_ab = gv.as_ref().map_or(0.0, |v| v[(8, 8)]);
        if gv.is_none() {
            warnings.push(format!(
                "{}: the information matrix of the variance parameters is not positive definite (boundary fit); cov(a_j, b_j) has no SE and the intervals of the average indirect effect treat it as known (too narrow by that uncertainty)",
                data.mediator
            ));
        }
        let tag = tags::SLOPES_MC + ((j as u64) << 8);
        let Some(ai) = average_indirect(
            &data,
            &fit,
            var_cov_ab,
            level,
            spec.monte_carlo_draws,
            seed,
            tag,
        ) else {
            return Err(MediationError::Data {
                analysis: ANALYSIS.into(),
                message: "path a_x or b_m missing from the stacked fit".into(),
            });
        };
        let (an, bn) = (super::path_name("a", j, k), super::path_name("b", j, k));
        let se = |name: &str| {
            data.column(name)
                .map_or(f64::NAN, |i| fit.vcov[i * p + i].max(0.0).sqrt())
        };
        let est = |name: &str| data.column(name).map_or(f64::NAN, |i| fit.beta[i]);
        paths.push(row(an.clone(), ai.a, ai.var_a.sqrt()));
        paths.push(row(bn.clone(), ai.b, ai.var_b.sqrt()));
        let cp = if k == 1 {
            "c_prime".to_string()
        } else {
            format!("c_prime_{}", j + 1)
        };
        paths.push(row(cp.clone(), est("cp_x"), se("cp_x")));
        let se_cov = gv.as_ref().map_or(f64::NAN, |_| ai.var_cov_ab.sqrt());
        paths.push(row(format!("cov_{an}{bn}"), ai.cov_ab, se_cov));
        between_paths.push(row(an.clone(), est("m_xb"), se("m_xb")));
        between_paths.push(row(bn.clone(), est("y_mb"), se("y_mb")));
        between_paths.push(row(cp, est("y_xb"), se("y_xb")));
        ind.push(IndirectRow {
            effect: format!("{an}{bn}"),
            estimate: ai.estimate,
            std_estimate: None,
            sobel_se: Some(ai.std_error),
            bootstrap: None,
            monte_carlo: (spec.monte_carlo_draws > 0).then_some(Interval {
                conf_low: ai.monte_carlo.0,
                conf_high: ai.monte_carlo.1,
            }),
        });
    }
    Ok(MediationResult {
        analysis: ANALYSIS.into(),
        x: spec.x.clone(),
        mediators: spec.mediators.clone(),
        y: spec.y.clone(),
        n_used: n_used as u64,
        n_excluded: panel.n().saturating_sub(n_used) as u64,
        paths,
        between_paths,
        indirect: ind,
        proportion_mediated: None,
        bootstrap_resamples: None,
        monte_carlo_draws: (spec.monte_carlo_draws > 0).then_some(spec.monte_carlo_draws as u64),
        warnings,
    })
}

/// A self-contained fitter for the stacked model, a second optimizer beside [`MmrmFitter`]
/// (both reach nlme's maximum on `tests/r/mediation.R`'s data, the log-likelihoods within
/// 1e-9; at boundary optima, as on simulated trials without slope variation, either may stop
/// lower: on trial-small's SFS equation this one by 3.7, elsewhere [`MmrmFitter`] by 0.003,
/// hence [`BestOf`]): the (restricted)
/// deviance with the fixed effects and the overall scale profiled out, minimized by BOBYQA (Powell 2009; as
/// lme4) over a scaled Cholesky factor of `G / sigma_m^2` and the residual SD ratio
/// `sigma_y / sigma_m` (nlme's `varIdent` parameter), restarted from its own optimum until
/// the deviance stops improving (the likelihood is flat: 3 waves, 4 random effects).
#[derive(Debug, Clone)]
pub struct NativeFitter {
    /// BOBYQA's final trust-region radius.
    pub rho_end: f64,
    /// Maximum evaluations per BOBYQA run.
    pub max_evals: usize,
    /// Maximum restarts.
    pub restarts: usize,
}

impl Default for NativeFitter {
    fn default() -> Self {
        NativeFitter {
            rho_end: 1e-8,
            max_evals: 20_000,
            restarts: 4,
        }
    }
}

fn sd_of(v: impl Iterator<Item = f64>) -> f64 {
    let x: Vec<f64> = v.collect();
    super::sd(&x)
}

/// The start of [`NativeFitter`]: the ratio of the residual SDs (Y over M equation, from the
/// raw SDs of the responses) and the scales of the random effects in units of `sigma_m`
/// (intercepts; slopes per SD of their predictor), so that the optimizer works on parameters
/// of order one.
fn start_scales(data: &StackedData) -> (f64, Vec<f64>) {
    let p = data.p();
    let eq_sd = |e: usize| {
        sd_of(
            (0..data.n())
                .filter(|&i| data.equation[i] == e)
                .map(|i| data.z[i]),
        )
    };
    let rho0 = (eq_sd(1) / eq_sd(0)).abs();
    let rho0 = if rho0.is_finite() && rho0 > 0.0 {
        rho0
    } else {
        1.0
    };
    let col_sd = |c: usize| {
        let s = sd_of(
            (0..data.n())
                .filter(|&i| data.x[i * p + c] != 0.0)
                .map(|i| data.x[i * p + c]),
        );
        if s.is_finite() && s > 0.0 {
            1.0 / s
        } else {
            1.0
        }
    };
    let scale: Vec<f64> = data
        .random
        .iter()
        .map(|&c| match data.x_names[c].as_str() {
            "m_int" => 1.0,
            "y_int" => rho0,
            "a_x" => col_sd(c),
            "b_m" => rho0 * col_sd(c),
            _ => 1.0,
        })
        .collect();
    (rho0, scale)
}

impl StackedFitter for NativeFitter {
    fn fit(&self, data: &StackedData, reml: bool) -> Result<StackedFit, StackedFitError> {
        use bobyqa::{Bobyqa, Config};
        let p = data.p();
        let q = data.random.len();
        let nt = q * (q + 1) / 2;
        if data.n() <= p + nt + 2 {
            return Err(StackedFitError::TooFewRows(data.n()));
        }
        let gd = gls_data(data).ok_or(StackedFitError::SingularDesign)?;
        let (rho0, scale) = start_scales(data);
        let g_star = |th: &[f64]| -> Vec<f64> {
            // L lower triangular (row-wise packed), G* = D L L' D.
            let mut l = vec![0.0; q * q];
            let mut t = 0;
            for i in 0..q {
                for j in 0..=i {
                    l[i * q + j] = th[t];
                    t += 1;
                }
            }
            let mut g = vec![0.0; q * q];
            for i in 0..q {
                for j in 0..q {
                    let mut s = 0.0;
                    for k in 0..q {
                        s += l[i * q + k] * l[j * q + k];
                    }
                    g[i * q + j] = scale[i] * scale[j] * s;
                }
            }
            g
        };
        let objective = |th: &[f64]| -> f64 {
            let g = g_star(th);
            match profiled(&gd, &g, rho0 * th[nt], reml) {
                Some((d, _)) => d,
                None => 1e300,
            }
        };
        let k = nt + 1;
        let mut lower = vec![f64::NEG_INFINITY; k];
        let mut t = 0;
        for i in 0..q {
            for j in 0..=i {
                if i == j {
                    lower[t] = 0.0;
                }
                t += 1;
            }
        }
        lower[nt] = 1e-4;
        let upper = vec![f64::INFINITY; k];
        let mut x = vec![0.0; k];
        let mut t = 0;
        for i in 0..q {
            for j in 0..=i {
                if i == j {
                    x[t] = if i < 2 { 0.7 } else { 0.3 };
                }
                t += 1;
            }
        }
        x[nt] = 1.0;
        let mut best = objective(&x);
        if best >= 1e300 {
            return Err(StackedFitError::BadStart);
        }
        for _ in 0..=self.restarts {
            let mut cfg = Config::new(k);
            cfg.rho_begin = 0.2;
            cfg.rho_end = self.rho_end;
            cfg.max_fun = self.max_evals.max(cfg.npt + 2);
            let mut solver =
                Bobyqa::new(k, cfg).map_err(|s| StackedFitError::Optimizer(s.to_string()))?;
            let mut y = x.clone();
            solver.minimize(|th: &[f64]| objective(th), &mut y, &lower, &upper);
            let f = objective(&y);
            let improved = best - f;
            if f <= best {
                x = y;
                best = f;
            }
            if improved < 1e-9 {
                break;
            }
        }
        let g = g_star(&x);
        let rho = rho0 * x[nt];
        let (_, s2) = profiled(&gd, &g, rho, reml).ok_or(StackedFitError::BadOptimum)?;
        let re_cov: Vec<f64> = g.iter().map(|v| v * s2).collect();
        let s = s2.sqrt();
        let sigma = [s, s * rho];
        let gls = evaluate_on(&gd, &re_cov, sigma, reml).ok_or(StackedFitError::BadOptimum)?;
        let mut warnings = Vec::new();
        let mut t = 0;
        for i in 0..q {
            for j in 0..=i {
                if i == j && x[t] < 1e-4 {
                    warnings.push(format!(
                        "boundary (singular) fit: the random effect `{}` is (nearly) a combination of the others",
                        data.x_names[data.random[i]]
                    ));
                }
                t += 1;
            }
        }
        let loglik = gls.loglik();
        Ok(StackedFit {
            reml,
            beta: gls.beta,
            vcov: gls.vcov,
            re_cov,
            sigma,
            loglik,
            warnings,
        })
    }
}

/// The stacked model fitted by the mixed-model code of [`crate::mmrm`]
/// ([`crate::mmrm::fit_model`] with the random term `(0 + m_int + y_int + a_x + b_m | id)` and
/// `varIdent` weights by equation: nlme's `lme(..., weights = varIdent(form = ~ 1 | dv))`).
#[derive(Debug, Clone, Default)]
pub struct MmrmFitter {
    pub options: crate::mmrm::MmrmOptions,
}

impl StackedFitter for MmrmFitter {
    fn fit(&self, data: &StackedData, reml: bool) -> Result<StackedFit, StackedFitError> {
        use crate::mmrm::{fit_model, MmrmOptions, WeightsSpec};
        let frame = data.to_frame().map_err(Box::new)?;
        let formula = format!("{} + {}", data.fixed_formula(), data.random_formula());
        let weights = WeightsSpec::parse("ident(dv)")?;
        let opts = MmrmOptions {
            reml,
            ..self.options.clone()
        };
        let f = fit_model(&formula, None, Some(&weights), &frame, &opts)?;
        let pos = |names: &[String], n: &str| {
            names
                .iter()
                .position(|m| m == n)
                .ok_or_else(|| StackedFitError::MissingTerm {
                    term: n.to_string(),
                    fitted: names.to_vec(),
                })
        };
        let bi: Vec<usize> = data
            .x_names
            .iter()
            .map(|n| pos(&f.x_names, n))
            .collect::<Result<_, _>>()?;
        let p = bi.len();
        let g = f
            .re_covariance
            .as_ref()
            .ok_or(StackedFitError::NoRandomEffects)?;
        let ri: Vec<usize> = RANDOM_TERMS
            .iter()
            .map(|n| pos(&f.re_names, n))
            .collect::<Result<_, _>>()?;
        let si = |lv: &str| {
            f.strata_levels
                .iter()
                .position(|l| l == lv)
                .and_then(|i| f.residual_sd.get(i).copied())
                .ok_or_else(|| StackedFitError::NoResidualSd(lv.to_string()))
        };
        Ok(StackedFit {
            reml,
            beta: bi.iter().map(|&i| f.beta[i]).collect(),
            vcov: (0..p * p).map(|k| f.vcov[(bi[k / p], bi[k % p])]).collect(),
            re_cov: (0..16).map(|k| g[(ri[k / 4], ri[k % 4])]).collect(),
            sigma: [si("m")?, si("y")?],
            loglik: f.loglik,
            warnings: f.warnings.clone(),
        })
    }
}

/// Fits with every fitter and keeps the fit with the highest (restricted) likelihood: on a
/// flat likelihood or at a boundary (no variation of the slopes in the data) optimizers stop
/// at different points; a note names the fitters' log-likelihoods when they differ by more
/// than 1e-3.
pub struct BestOf {
    pub fitters: Vec<(String, Box<dyn StackedFitter>)>,
}

impl Default for BestOf {
    /// [`MmrmFitter`], then [`NativeFitter`].
    fn default() -> Self {
        BestOf {
            fitters: vec![
                ("mmrm".into(), Box::new(MmrmFitter::default())),
                ("native".into(), Box::new(NativeFitter::default())),
            ],
        }
    }
}

impl StackedFitter for BestOf {
    fn fit(&self, data: &StackedData, reml: bool) -> Result<StackedFit, StackedFitError> {
        let mut best: Option<(usize, StackedFit)> = None;
        let mut tried = Vec::new();
        let mut errors = Vec::new();
        for (i, (name, f)) in self.fitters.iter().enumerate() {
            match f.fit(data, reml) {
                Ok(fit) => {
                    tried.push((name.clone(), fit.loglik));
                    if best.as_ref().is_none_or(|(_, b)| fit.loglik > b.loglik) {
                        best = Some((i, fit));
                    }
                }
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        let (i, mut fit) = best.ok_or_else(|| StackedFitError::AllFailed(errors.join("; ")))?;
        let spread = tried.iter().map(|t| t.1).fold(f64::NEG_INFINITY, f64::max)
            - tried.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
        if tried.len() > 1 && spread > 1e-3 {
            fit.warnings.push(format!(
                "optimizers disagree (log-likelihood {}); the {} fit, the highest, is reported",
                tried
                    .iter()
                    .map(|(n, l)| format!("{n} {l:.6}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.fitters[i].0
            ));
        }
        Ok(fit)
    }
}
