//! Generalized linear mixed models (`lme4::glmer`, glmmTMB) with one scalar random intercept
//! per group, `y ~ x + (1 | g)`: binomial (logit, probit, cloglog; successes out of trials or
//! 0/1), Poisson and negative binomial (NB2, theta estimated jointly as glmmTMB's `nbinom2`),
//! with offsets. The marginal likelihood of a group is
//! `L_g = int prod_i f(y_i | eta_i = x_i beta + o_i + sigma u) phi(u) du`, approximated at the
//! conditional mode `u_g` as lme4 does: the Laplace approximation (`nAGQ = 1`)
//! `-2 log L_g = -2 sum_i log f(y_i | u_g) + u_g^2 + log(1 + sigma^2 sum_i w_i)` with the
//! Fisher weights `w_i` of penalized IRLS (for the negative binomial the observed information,
//! as glmmTMB; lme4's glmer.nb uses the Fisher weights there, a slightly different
//! approximation), or adaptive Gauss-Hermite quadrature
//! (`nAGQ = K`, Pinheiro & Bates 1995, J Comput Graph Stat 4): with `s = (1 + sigma^2 sum_i
//! w_i)^(-1/2)`, `L_g = s sum_k w_k exp(h(u_g + s z_k) + z_k^2 / 2)`,
//! `h(u) = sum_i log f(y_i | u) - u^2 / 2`. The deviance `-2 sum_g log L_g` (every constant
//! included) is minimized jointly over `(sigma, beta)` by BOBYQA, as glmer's second stage; the
//! covariance of beta is the beta block of `2 H^-1`, `H` the central-difference Hessian of the
//! deviance in `(sigma, beta)` at the optimum (lme4's `vcov(use.hessian = TRUE)`, `deriv12`;
//! glmmTMB's `sdreport` is the exact Hessian of the same deviance).
//!
//! A vector-valued term of one grouping factor, `(1 + t | g)`, is fitted by the Laplace
//! approximation in [`vector`] over lme4's `theta` (the relative Cholesky factor) and beta;
//! several terms (crossed or nested grouping factors) with their joint modes in [`multi`].
pub mod family;
pub mod gradient;
pub mod multi;
pub mod quadrature;
pub mod vector;

use crate::formula::ModelFrame;
use crate::stats::distributions::{ln_gamma, pchisq_upper, pnorm_upper, qnorm};
use crate::stats::numderiv;
use family::Family;

/// Why a GLMM is not fitted.
#[derive(Debug, thiserror::Error)]
pub enum GlmmError {
    #[error("the GLMM needs exactly one random-effects term of one grouping factor, `(1 | group)` or `(1 + x | group)` (found {0}); several grouping factors (crossed or nested) are not supported yet")]
    Structure(String),
    #[error("adaptive quadrature (nAGQ = {0}) needs one scalar random intercept, as in lme4; use nAGQ = 1 (Laplace) with `{1}`")]
    QuadratureNeedsScalar(usize, String),
    /// Rows that cannot be modelled, grouped by problem: the column, how many rows, the
    /// first file rows (header = row 1) with their values, and what is expected.
    #[error("{column}: {count} row(s) {expected} (file rows {examples}); correct or remove them")]
    BadRows {
        column: String,
        count: usize,
        examples: String,
        expected: String,
    },
    #[error("nAGQ must be between 1 and 25 (found {0})")]
    Quadrature(usize),
    #[error("the optimizer failed: {0}")]
    Optimizer(String),
    #[error("the deviance is not finite at the start (check the response, trials and offset)")]
    Start,
}

/// The data of a GLMM with one scalar random intercept.
#[derive(Debug, Clone)]
pub struct GlmmData {
    /// Fixed-effects design, row-major `n x p`.
    pub x: Vec<f64>,
    pub p: usize,
    pub names: Vec<String>,
    /// Response: successes (binomial) or counts.
    pub y: Vec<f64>,
    /// Trials per row (binomial; 1 for 0/1 data and for Poisson).
    pub trials: Vec<f64>,
    pub offset: Vec<f64>,
    /// Prior weights: each row's log-likelihood contribution is multiplied by its weight
    /// (glmmTMB's `weights`; an integer weight k is the row repeated k times); 1 by default.
    pub weights: Vec<f64>,
    /// Rows of each group (0-based group index per row, and the group names).
    pub group: Vec<u32>,
    pub group_name: String,
    pub levels: Vec<String>,
    /// The random-effects model matrix of the term, row-major `n x q` (a column of ones for
    /// `(1 | g)`), and its column names (`(Intercept)`, `time`).
    pub z: Vec<f64>,
    pub q: usize,
    pub re_names: Vec<String>,
    /// Further random-effects terms (crossed or nested factors), after the largest one above.
    pub other_terms: Vec<multi::ReTerm>,
}

impl GlmmData {
    /// One random intercept `(1 | g)`: the scalar path with adaptive quadrature.
    pub fn is_scalar_intercept(&self) -> bool {
        self.other_terms.is_empty() && self.q == 1 && self.z.iter().all(|&v| v == 1.0)
    }
}

/// Options of [`fit_glmm`].
#[derive(Debug, Clone, Copy)]
pub struct GlmmOptions {
    pub family: Family,
    /// Quadrature points: 1 = Laplace.
    pub n_agq: usize,
    /// Confidence level of the Wald intervals.
    pub level: f64,
}

/// One fixed effect with its Wald z test (lme4's `summary`), broom's layout: the GLM's row.
pub use crate::results::Coefficient as GlmmTerm;

/// The overdispersion check of a Poisson GLMM (as `performance::check_overdispersion`): the
/// Pearson chi-square `sum_i (y_i - mu_i)^2 / mu_i` at the conditional modes over the residual
/// df (observations minus parameters); a ratio well above 1 asks for the negative binomial.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Overdispersion {
    pub chisq: f64,
    pub df: f64,
    pub ratio: f64,
    /// `P(chi^2_df > chisq)`.
    pub p_value: f64,
}

/// A random-effects term after the first: its group, SDs and correlations.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OtherTermFit {
    pub group: String,
    pub n_groups: usize,
    pub names: Vec<String>,
    pub sds: Vec<f64>,
    /// Row-major `q x q`.
    pub corr: Vec<f64>,
}

/// A fitted GLMM.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GlmmFit {
    pub family: String,
    pub link: String,
    pub n_agq: usize,
    pub n_obs: usize,
    pub n_groups: usize,
    pub group: String,
    pub fixed_effects: Vec<GlmmTerm>,
    /// SD of the random intercept (the first random effect).
    pub sd: f64,
    /// SDs of the random effects in the term's column order (`re_names`).
    pub re_sds: Vec<f64>,
    pub re_names: Vec<String>,
    /// Their correlations, row-major `q x q` (`[1]` for one random intercept).
    pub re_corr: Vec<f64>,
    /// The further random-effects terms (crossed or nested factors), lme4's order.
    pub other_terms: Vec<OtherTermFit>,
    /// Poisson: the overdispersion check.
    pub overdispersion: Option<Overdispersion>,
    /// Negative binomial: `theta` of `Var = mu + mu^2 / theta` (glmmTMB's `sigma` for
    /// `nbinom2`, MASS's and glmer.nb's `theta`), estimated jointly; infinite when the
    /// deviance is lowest at the Poisson limit (found by the derivative-free fits, which
    /// optimize `1 / theta >= 0`).
    pub theta: Option<f64>,
    pub loglik: f64,
    /// Parameters: fixed effects, the SD (and theta).
    pub loglik_df: usize,
    pub aic: f64,
    pub bic: f64,
    /// `-2 logLik`.
    pub minus_two_loglik: f64,
    pub converged: bool,
    /// The SD is at its bound 0.
    pub singular: bool,
    pub n_evaluations: usize,
    pub warnings: Vec<String>,
    /// `vcov(beta)`, `p x p` row-major.
    pub vcov: Vec<f64>,
    /// The covariance of `(theta, beta)`, `(nt + p)` square row-major (the same block of
    /// `2 H^-1`; rows and columns of parameters on their bound are 0), for delta-method
    /// intervals of quantities that depend on the random-effect SD (marginal rates and
    /// risks). For one random intercept `theta` is its SD.
    #[serde(skip)]
    pub vcov_sd_beta: Vec<f64>,
}

/// The conditional mode of one group's `u` (Fisher scoring from `u0`, the previous mode),
/// `h(u)` without the constants of the density, and the curvature `1 + sigma^2 sum_i w_i`
/// ([`Family::curvature`] at the mode).
fn group_mode(
    d: &GlmmData,
    fam: Family,
    rows: &[usize],
    eta0: &[f64],
    sigma: f64,
    u0: f64,
) -> (f64, f64, f64) {
    // One pass over the rows at `u`: h(u), and the sums of the weighted scores, Fisher weights
    // and curvature weights (the Newton step and the Laplace curvature at the same point).
    let pass = |u: f64| -> (f64, f64, f64, f64) {
        let (mut h, mut g, mut w, mut c) = (-0.5 * u * u, 0.0, 0.0, 0.0);
        for (&i, &e) in rows.iter().zip(eta0) {
            let r = fam.eval(d.y[i], d.trials[i], e + sigma * u);
            let wi = d.weights[i];
            h += wi * r.kernel;
            g += wi * r.score;
            w += wi * r.weight;
            c += wi * r.curvature;
        }
        (h, g, w, c)
    };
    let mut u = if u0.is_finite() { u0 } else { 0.0 };
    let mut at = pass(u);
    // Fisher scoring on u (penalized IRLS of one group), step-halving on h.
    for _ in 0..100 {
        let g = -u + sigma * at.1;
        let info = 1.0 + sigma * sigma * at.2;
        let mut step = g / info;
        let mut accepted = false;
        for _ in 0..30 {
            let cand = u + step;
            let next = pass(cand);
            if next.0.is_finite() && next.0 >= at.0 - 1e-12 * at.0.abs() {
                u = cand;
                at = next;
                accepted = true;
                break;
            }
            step /= 2.0;
        }
        if !accepted || step.abs() < 1e-13 * (1.0 + u.abs()) {
            break;
        }
    }
    (u, at.0, 1.0 + sigma * sigma * at.3)
}

/// `-2 log L` at `sigma_beta = (sigma, beta)` (Laplace for `rule` of one node, else adaptive GHQ), the
/// groups in parallel; `modes` holds each group's conditional mode, the start of the next
/// evaluation (warm start); `constants` is [`density_constants`]. The sum over groups runs in group order, so the value does not
/// depend on the threads.
pub fn deviance(
    d: &GlmmData,
    fam: Family,
    rule: &[(f64, f64)],
    by_group: &[Vec<usize>],
    sigma_beta: &[f64],
    modes: &mut [f64],
    constants: f64,
) -> f64 {
    use rayon::prelude::*;
    let (sigma, beta) = (sigma_beta[0], &sigma_beta[1..=d.p]);
    let per_group: Vec<f64> = by_group
        .par_iter()
        .zip(modes.par_iter_mut())
        .with_min_len(64)
        .map(|(rows, u0)| {
            let eta0: Vec<f64> = rows
                .iter()
                .map(|&i| d.offset[i] + (0..d.p).map(|j| d.x[i * d.p + j] * beta[j]).sum::<f64>())
                .collect();
            let (u, hu, curv) = group_mode(d, fam, rows, &eta0, sigma, *u0);
            *u0 = u;
            if !hu.is_finite() || !curv.is_finite() {
                return f64::INFINITY;
            }
            if rule.len() == 1 {
                return -2.0 * hu + curv.ln();
            }
            let s = curv.powf(-0.5);
            // log sum_k w_k exp(h(u + s z_k) + z_k^2 / 2), relative to h(u) for stability
            let mut acc = 0.0;
            for &(z, w) in rule {
                let uu = u + s * z;
                let hz: f64 = rows
                    .iter()
                    .zip(&eta0)
                    .map(|(&i, &e)| d.weights[i] * fam.kernel(d.y[i], d.trials[i], e + sigma * uu))
                    .sum::<f64>()
                    - 0.5 * uu * uu;
                acc += w * (hz - hu + 0.5 * z * z).exp();
            }
            -2.0 * (s.ln() + hu + acc.ln())
        })
        .collect();
    per_group.iter().sum::<f64>() - 2.0 * constants
}

/// `sum_i` [`Family::constant`]: the part of the log-likelihood free of the parameters (for
/// the negative binomial it depends on theta).
pub fn density_constants(d: &GlmmData, fam: Family) -> f64 {
    (0..d.y.len())
        .map(|i| d.weights[i] * fam.constant(d.y[i], d.trials[i]))
        .sum()
}

/// The GLMM data of a model frame with one random intercept; `trials` and `offset` on the
/// model frame's rows (`None`: 1 and 0).
pub fn glmm_data(
    mf: &ModelFrame,
    trials: Option<Vec<f64>>,
    offset: Option<Vec<f64>>,
    family: Family,
) -> Result<GlmmData, GlmmError> {
    glmm_data_weighted(mf, trials, offset, None, family)
}

/// [`glmm_data`] with prior weights on the model frame's rows (`None`: 1); a missing,
/// negative or infinite weight is an error naming the rows.
pub fn glmm_data_weighted(
    mf: &ModelFrame,
    trials: Option<Vec<f64>>,
    offset: Option<Vec<f64>>,
    weights: Option<Vec<f64>>,
    family: Family,
) -> Result<GlmmData, GlmmError> {
    let Some(t) = mf.re_terms.first() else {
        return Err(GlmmError::Structure("no random-effects term".into()));
    };
    let other_terms: Vec<multi::ReTerm> = mf.re_terms[1..]
        .iter()
        .map(|r| multi::ReTerm {
            group: r.refs.clone(),
            levels: r.level_names.clone(),
            group_name: r.group_name.clone(),
            z: r.z.clone(),
            q: r.q,
            re_names: r.col_names.clone(),
        })
        .collect();
    let n_other: usize = other_terms.iter().map(|r| r.levels.len() * r.q).sum();
    if n_other > multi::MAX_OTHER_EFFECTS {
        return Err(GlmmError::Structure(format!(
            "{n_other} random effects beyond the largest term `{}` (at most {}: a second large crossed factor)",
            t.text,
            multi::MAX_OTHER_EFFECTS
        )));
    }
    let n = mf.y.len();
    let trials = trials.unwrap_or_else(|| vec![1.0; n]);
    let offset = offset.unwrap_or_else(|| vec![0.0; n]);
    let response = mf.formula.response.as_str();
    let weights = weights.unwrap_or_else(|| vec![1.0; n]);
    check_rows(
        mf,
        "weights",
        "have a missing, negative or infinite weight",
        |i| !(weights[i].is_finite() && weights[i] >= 0.0),
        |i| weights[i],
    )?;
    let (y, m, o) = (&mf.y, &trials, &offset);
    check_rows(
        mf,
        "offset",
        "have a missing or infinite offset (log of a zero exposure?)",
        |i| !o[i].is_finite(),
        |i| o[i],
    )?;
    match family {
        Family::Binomial(_) => {
            check_rows(
                mf,
                "trials",
                "have a number of trials that is not a whole number >= 1",
                |i| !(m[i].is_finite() && m[i] >= 1.0 && m[i].fract() == 0.0),
                |i| m[i],
            )?;
            check_rows(
                mf,
                response,
                "are not whole numbers between 0 and the trials (0/1 without --trials)",
                |i| !(y[i] >= 0.0 && y[i] <= m[i] && y[i].fract() == 0.0),
                |i| y[i],
            )?;
        }
        Family::Poisson | Family::NegativeBinomial { .. } => check_rows(
            mf,
            response,
            "are not counts (whole numbers >= 0)",
            |i| !(y[i] >= 0.0 && y[i].fract() == 0.0),
            |i| y[i],
        )?,
    }
    Ok(GlmmData {
        x: mf.x.clone(),
        p: mf.x_names.len(),
        names: mf.x_names.clone(),
        y: mf.y.clone(),
        trials,
        offset,
        weights,
        group: t.refs.clone(),
        group_name: t.group_name.clone(),
        levels: t.level_names.clone(),
        z: t.z.clone(),
        q: t.q,
        re_names: t.col_names.clone(),
        other_terms,
    })
}

/// The distinct values of `y` and their summed weights, in increasing order of `y`.
fn count_table(y: &[f64], w: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = y.iter().copied().zip(w.iter().copied()).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (v, wi) in sorted {
        match out.last_mut() {
            Some((last, k)) if last.to_bits() == v.to_bits() => *k += wi,
            _ => out.push((v, wi)),
        }
    }
    out
}

/// Largest theta taken as a finite overdispersion: beyond it the negative binomial is at its
/// Poisson limit (glmmTMB then stops with "false convergence", glmer.nb at its bound).
pub const THETA_POISSON_LIMIT: f64 = 1e4;

/// Warnings on the estimates: a fixed effect beyond 10 on the link scale with an SE above 1 (or
/// none, the Hessian not positive definite)
/// (a level or combination whose responses are all 0, or all successes: separation; the
/// estimate and its test are then meaningless), and a theta at the Poisson limit.
fn estimate_warnings(fixed: &[GlmmTerm], theta: Option<f64>) -> Vec<String> {
    let mut out = Vec::new();
    for t in fixed {
        if t.estimate.abs() > 10.0
            && (t.std_error > 1.0 || t.std_error.is_nan() || t.std_error == 0.0)
        {
            out.push(format!(
                "`{}` is {:.1} on the link scale (SE {:.1}): separation (a level or combination with only zeros or only successes); its estimate and test are unreliable",
                t.term, t.estimate, t.std_error
            ));
        }
    }
    if let Some(th) = theta {
        if th == f64::INFINITY {
            out.push(
                "theta is infinite: the deviance is lowest at the Poisson limit (no overdispersion beyond the random intercept), so the estimates and SEs are those of the Poisson GLMM".into(),
            );
        } else if !th.is_finite() || th > THETA_POISSON_LIMIT {
            out.push(format!(
                "theta is {th:.0}: no overdispersion beyond the random intercept; the negative binomial is at its Poisson limit (its estimates and SEs are those of the Poisson GLMM, theta held at the limit)"
            ));
        }
    }
    out
}

/// The rows of the model frame where `is_bad`, as one grouped error naming the column, the
/// count and the first five file rows (header = row 1) with their values.
fn check_rows(
    mf: &ModelFrame,
    column: &str,
    expected: &str,
    is_bad: impl Fn(usize) -> bool,
    value: impl Fn(usize) -> f64,
) -> Result<(), GlmmError> {
    let bad: Vec<usize> = (0..mf.y.len()).filter(|&i| is_bad(i)).collect();
    if bad.is_empty() {
        return Ok(());
    }
    let examples = bad
        .iter()
        .take(5)
        .map(|&i| {
            let file_row = mf.rows.get(i).map_or(i + 2, |r| r + 2);
            format!("{file_row}: {}", value(i))
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(GlmmError::BadRows {
        column: column.to_string(),
        count: bad.len(),
        examples,
        expected: expected.to_string(),
    })
}

/// Fits the GLMM (see the module documentation).
pub fn fit_glmm(d: &GlmmData, opts: &GlmmOptions) -> Result<GlmmFit, GlmmError> {
    if opts.n_agq == 0 || opts.n_agq > 25 {
        return Err(GlmmError::Quadrature(opts.n_agq));
    }
    let fam = opts.family;
    let q = d.q.max(1);
    let scalar = d.is_scalar_intercept();
    let terms = multi::terms(d);
    let several = terms.len() > 1;
    if !scalar && opts.n_agq > 1 {
        return Err(GlmmError::QuadratureNeedsScalar(
            opts.n_agq,
            d.re_names.join(" + "),
        ));
    }
    let nt = multi::n_theta_all(&terms);
    // theta_k is a diagonal element of its term's Lambda (bounded below by 0)
    let diagonal: Vec<bool> = terms
        .iter()
        .flat_map(|t| (0..vector::n_theta(t.q)).map(move |k| vector::is_diagonal(t.q, k)))
        .collect();
    let rule = quadrature::gauss_hermite(opts.n_agq);
    let mut by_group: Vec<Vec<usize>> = vec![Vec::new(); d.levels.len()];
    for (i, &g) in d.group.iter().enumerate() {
        by_group[g as usize].push(i);
    }
    let p = d.p;
    // Parameters: theta (sigma for one random intercept), beta, and log theta for the
    // negative binomial.
    let nb = matches!(fam, Family::NegativeBinomial { .. });
    // An infinite theta (psi = 1 / theta at its bound 0 below) is the Poisson limit.
    let fam_at = |par: &[f64]| match fam {
        Family::NegativeBinomial { .. } if par[nt + p] == f64::INFINITY => Family::Poisson,
        Family::NegativeBinomial { .. } => Family::NegativeBinomial {
            theta: par[nt + p].exp(),
        },
        f => f,
    };
    let n_modes = if several {
        let (a, r) = multi::sizes(&terms);
        a + r
    } else {
        by_group.len() * q
    };
    let modes = std::sync::Mutex::new(vec![0.0; n_modes]);
    let fixed_constants = (!nb).then(|| density_constants(d, fam));
    // NB: the theta-dependent constants from the distinct counts (few) instead of every row.
    let counts = count_table(&d.y, &d.weights);
    let log_factorials: f64 =
        d.y.iter()
            .zip(&d.weights)
            .map(|(&y, &w)| w * ln_gamma(y + 1.0))
            .sum();
    // The density constants at the family's parameters (for the NB they depend on theta).
    let constants = |f: Family| -> f64 {
        fixed_constants.unwrap_or_else(|| match f {
            Family::NegativeBinomial { theta } => {
                counts
                    .iter()
                    .map(|&(y, k)| k * family::nb_log_rising(y, theta))
                    .sum::<f64>()
                    - log_factorials
            }
            _ => density_constants(d, f),
        })
    };
    let dev = |par: &[f64]| -> f64 {
        let mut m = modes.lock().unwrap_or_else(|e| e.into_inner());
        let f = fam_at(par);
        let c = constants(f);
        let v = if scalar {
            deviance(d, f, &rule, &by_group, &par[..=p], &mut m, c)
        } else if several {
            multi::deviance(d, f, &terms, &par[..nt + p], &mut m, c)
        } else {
            vector::deviance(d, f, &by_group, &par[..nt + p], &mut m, c)
        };
        if v.is_finite() {
            v
        } else {
            1e300
        }
    };
    // Start: beta of the GLM without the random effect (IRLS), Lambda = I (sigma 1; lme4's
    // start), the NB theta as given.
    let mut start: Vec<f64> = diagonal
        .iter()
        .map(|&dg| if dg { 1.0 } else { 0.0 })
        .collect();
    start.extend(glm_start(d, fam));
    if let Family::NegativeBinomial { theta } = fam {
        start.push(theta.max(1e-3).ln());
    }
    if dev(&start) >= 1e300 {
        return Err(GlmmError::Start);
    }
    let lower: Vec<f64> = (0..start.len())
        .map(|k| {
            if k < nt && diagonal[k] {
                0.0
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    // The Laplace deviance of one random intercept has a closed-form gradient: Newton's
    // method from the same start, BOBYQA where it does not apply or does not end in the
    // interior (an SD near 0, theta at its Poisson limit).
    let theta_limit = THETA_POISSON_LIMIT.ln();
    let fg = |par: &[f64]| -> (f64, Vec<f64>) {
        let mut m = modes.lock().unwrap_or_else(|e| e.into_inner());
        let f = fam_at(par);
        let c_dpsi = match f {
            Family::NegativeBinomial { theta } => {
                theta
                    * counts
                        .iter()
                        .map(|&(y, k)| k * gradient::nb_log_rising_dtheta(y, theta))
                        .sum::<f64>()
            }
            _ => 0.0,
        };
        let c = constants(f);
        let (v, g) = gradient::deviance_gradient(d, f, &by_group, par, &mut m, c, c_dpsi);
        (if v.is_finite() { v } else { f64::INFINITY }, g)
    };
    let newton = (scalar && opts.n_agq == 1 && gradient::supports(fam))
        .then(|| {
            let feasible = |x: &[f64]| x[0] > 1e-6 && (!nb || x[nt + p] < theta_limit);
            crate::stats::newton::minimize(&fg, start.clone(), &feasible, 1e-11, 100)
        })
        .flatten()
        .filter(|r| r.par[0] > 1e-3 && (!nb || r.par[nt + p] < theta_limit - 1.0));
    let (par, best, n_eval) = match &newton {
        Some(r) => (r.par.clone(), r.value, r.n_eval),
        None if nb => {
            // BOBYQA in psi = 1 / theta >= 0 instead of log theta: where the deviance is
            // lowest at the Poisson limit it falls along log theta ever more slowly (about
            // exp(-log theta)), and BOBYQA crawled there for thousands of evaluations; in psi
            // it is linear up to the bound 0, which it reaches in a few steps.
            let li = nt + p;
            let to_psi = |x: &[f64]| {
                let mut v = x.to_vec();
                v[li] = (-x[li]).exp();
                v
            };
            let from_psi = |x: &[f64]| {
                let mut v = x.to_vec();
                v[li] = if x[li] > 0.0 {
                    -x[li].ln()
                } else {
                    f64::INFINITY
                };
                v
            };
            let mut lower_psi = lower.clone();
            lower_psi[li] = 0.0;
            let (x, best, n) =
                minimize(&|x: &[f64]| dev(&from_psi(x)), to_psi(&start), &lower_psi)?;
            (from_psi(&x), best, n)
        }
        None => minimize(&dev, start, &lower)?,
    };
    let converged = best < 1e300;
    // lme4's isSingular: a diagonal element of Lambda at (near) 0
    let at_bound: Vec<bool> = (0..nt).map(|k| diagonal[k] && par[k] < 1e-4).collect();
    let singular = at_bound.iter().any(|&b| b);
    let theta_at_limit =
        nb && par[nt + p].exp().partial_cmp(&THETA_POISSON_LIMIT) != Some(std::cmp::Ordering::Less);
    let hess = if newton.is_some() {
        // central differences of the analytic gradient (step 1e-4: truncation error about
        // 1e-8 relative, rounding noise of the gradient over h about 1e-9)
        crate::stats::newton::hessian_of_gradient(&fg, &par, &vec![1e-4; par.len()])
    } else {
        deviance_hessian(&dev, &par, &at_bound)
    };
    let vcov_sd_beta = sd_beta_vcov(&hess, par.len(), nt, p, &at_bound, theta_at_limit)?;
    let k = nt + p;
    let vcov: Vec<f64> = (0..p * p)
        .map(|t| vcov_sd_beta[(nt + t / p) * k + nt + t % p])
        .collect();
    let theta = nb.then(|| par[nt + p].exp());
    let overdispersion = (matches!(fam, Family::Poisson) && !several)
        .then(|| pearson_dispersion(d, fam, &by_group, &par, nt, nt + p));
    let nt0 = vector::n_theta(q);
    let (re_sds, re_corr) = vector::sd_corr(q, &par[..nt0]);
    let mut off = nt0;
    let other_terms: Vec<OtherTermFit> = terms[1..]
        .iter()
        .map(|t| {
            let k = vector::n_theta(t.q);
            let (sds, corr) = vector::sd_corr(t.q, &par[off..off + k]);
            off += k;
            OtherTermFit {
                group: t.group_name.clone(),
                n_groups: t.levels.len(),
                names: t.re_names.clone(),
                sds,
                corr,
            }
        })
        .collect();
    let mut warnings = Vec::new();
    if singular {
        warnings.push(if scalar {
            "boundary (singular) fit: the random-intercept SD is estimated as 0".to_string()
        } else {
            "boundary (singular) fit: the random-effects covariance is singular (an SD at 0 or a correlation at +-1)".to_string()
        });
    }
    if vcov
        .iter()
        .step_by(p + 1)
        .any(|v| v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater))
    {
        warnings
            .push("the Hessian is not positive definite: standard errors are unreliable".into());
    }
    let zq = qnorm(1.0 - (1.0 - opts.level) / 2.0);
    let fixed_effects = (0..p)
        .map(|j| {
            let est = par[nt + j];
            let se = vcov[j * p + j].max(0.0).sqrt();
            let z = est / se;
            GlmmTerm {
                term: d.names[j].clone(),
                estimate: est,
                std_error: se,
                statistic: z,
                p_value: 2.0 * pnorm_upper(z.abs()),
                conf_low: est - zq * se,
                conf_high: est + zq * se,
            }
        })
        .collect::<Vec<GlmmTerm>>();
    warnings.extend(estimate_warnings(&fixed_effects, theta));
    let n = d.y.len();
    let df = p + nt + usize::from(nb);
    let loglik = -best / 2.0;
    Ok(GlmmFit {
        family: fam.name().into(),
        theta,
        overdispersion,
        link: fam.link().name().into(),
        n_agq: opts.n_agq,
        n_obs: n,
        n_groups: by_group.iter().filter(|g| !g.is_empty()).count(),
        group: d.group_name.clone(),
        fixed_effects,
        sd: re_sds.first().copied().unwrap_or(f64::NAN),
        re_sds,
        re_names: d.re_names.clone(),
        re_corr,
        other_terms,
        loglik,
        loglik_df: df,
        aic: best + 2.0 * df as f64,
        bic: best + (n as f64).ln() * df as f64,
        minus_two_loglik: best,
        converged,
        singular,
        n_evaluations: n_eval,
        warnings,
        vcov,
        vcov_sd_beta,
    })
}

/// BOBYQA over `(theta, beta)` within `lower` (the diagonal of Lambda `>= 0`) from `start`, restarted with smaller radii until the
/// deviance stops improving: the optimum, its deviance and the number of evaluations.
fn minimize(
    dev: &impl Fn(&[f64]) -> f64,
    start: Vec<f64>,
    lower: &[f64],
) -> Result<(Vec<f64>, f64, usize), GlmmError> {
    use bobyqa::{Bobyqa, Config};
    let k = start.len();
    let upper = vec![f64::INFINITY; k];
    let mut par = start;
    let mut n_eval = 0;
    let mut best = dev(&par);
    // BOBYQA, restarted from its optimum until the deviance stops improving.
    for rho_begin in [0.2, 0.02, 0.002] {
        let mut cfg = Config::new(k);
        cfg.rho_begin = rho_begin;
        cfg.rho_end = 1e-10;
        cfg.max_fun = 20_000;
        let mut solver = Bobyqa::new(k, cfg).map_err(|e| GlmmError::Optimizer(e.to_string()))?;
        let mut x = par.clone();
        let out = solver.minimize(dev, &mut x, lower, &upper);
        n_eval += out.n_eval;
        let f = dev(&x);
        let gain = best - f;
        if f <= best {
            par = x;
            best = f;
        }
        if gain < 1e-9 {
            break;
        }
    }
    Ok((par, best, n_eval))
}

/// The central-difference Hessian of the deviance in `(sigma, beta[, log theta])` (lme4's
/// `deriv12` stencil, with the step 1e-3 instead of its 1e-4: the Laplace deviance carries
/// rounding noise from the group modes, and at 1e-4 that noise over `h^2` moved an SE by
/// 1.5e-4 relative against glmmTMB's AD Hessian on trial-small's logistic GLMM; the truncation
/// error at 1e-3 is about 1e-7); row-major. A parameter on its bound 0 is moved to the step
/// (a central difference needs `theta_j - h >= 0`).
fn deviance_hessian(dev: &impl Fn(&[f64]) -> f64, par: &[f64], at_bound: &[bool]) -> Vec<f64> {
    let k = par.len();
    let h = vec![1e-3; k];
    let mut centre = par.to_vec();
    for (j, &b) in at_bound.iter().enumerate() {
        if b && centre[j] < h[j] {
            centre[j] = h[j];
        }
    }
    let vals: Vec<f64> = numderiv::central_stencil(&centre, &h)
        .iter()
        .map(|x| dev(x))
        .collect();
    numderiv::central_derivatives(&vals, &h).1
}

/// `vcov(sigma, beta)`: the `(sigma, beta)` block of `2 H^-1`, `H` the Hessian (`k x k`) of
/// the deviance in `(sigma, beta[, log theta])` at the optimum (lme4's `vcov(use.hessian =
/// TRUE)`). Parameters on a boundary are held fixed (their rows and columns dropped from `H`,
/// zeros in the result): sigma at 0 (a singular fit) and log theta beyond
/// [`THETA_POISSON_LIMIT`] (the Poisson limit, where the deviance is flat in theta and its
/// curvature is rounding noise).
fn sd_beta_vcov(
    hess: &[f64],
    k: usize,
    nt: usize,
    p: usize,
    at_bound: &[bool],
    theta_at_limit: bool,
) -> Result<Vec<f64>, GlmmError> {
    let free: Vec<usize> = (0..k)
        .filter(|&j| {
            !(at_bound.get(j).copied().unwrap_or(false) || (j == nt + p && theta_at_limit))
        })
        .collect();
    let m = free.len();
    let hm = nalgebra::DMatrix::from_fn(m, m, |a, b| hess[free[a] * k + free[b]]);
    let Some(inv) = hm.try_inverse() else {
        return Err(GlmmError::Optimizer(
            "the Hessian of the deviance is singular".into(),
        ));
    };
    let q = nt + p;
    let mut out = vec![0.0; q * q];
    for (a, &i) in free.iter().enumerate() {
        for (b, &j) in free.iter().enumerate() {
            if i < q && j < q {
                out[i * q + j] = 2.0 * inv[(a, b)];
            }
        }
    }
    Ok(out)
}

/// The Pearson chi-square of the fit at the conditional modes (see [`Overdispersion`]);
/// `n_par` parameters.
fn pearson_dispersion(
    d: &GlmmData,
    fam: Family,
    by_group: &[Vec<usize>],
    par: &[f64],
    nt: usize,
    n_par: usize,
) -> Overdispersion {
    let mut chisq = 0.0;
    let mut add = |i: usize, eta: f64| {
        let mu = fam.link().inverse(eta) * d.trials[i];
        let v = fam.variance(mu / d.trials[i]) * d.trials[i];
        chisq += d.weights[i] * (d.y[i] - mu) * (d.y[i] - mu) / v;
    };
    if !d.is_scalar_intercept() {
        for (i, e) in vector::fitted_eta(d, fam, by_group, &par[..nt + d.p])
            .into_iter()
            .enumerate()
        {
            add(i, e);
        }
    } else {
        let (sigma, beta) = (par[0], &par[1..=d.p]);
        for rows in by_group {
            let eta0: Vec<f64> = rows
                .iter()
                .map(|&i| d.offset[i] + (0..d.p).map(|j| d.x[i * d.p + j] * beta[j]).sum::<f64>())
                .collect();
            let (u, _, _) = group_mode(d, fam, rows, &eta0, sigma, 0.0);
            for (&i, &e) in rows.iter().zip(&eta0) {
                add(i, e + sigma * u);
            }
        }
    }
    let df = (d.y.len() - n_par) as f64;
    Overdispersion {
        chisq,
        df,
        ratio: chisq / df,
        p_value: pchisq_upper(chisq, df),
    }
}

/// Start values of beta: the GLM without the random effect (`stats::glm`, by
/// [`crate::glm::fit_glm`]); probit and cloglog start from the logit fit, the negative
/// binomial from the Poisson one. Zeros when that GLM cannot be fitted (the optimizer starts
/// anywhere).
fn glm_start(d: &GlmmData, fam: Family) -> Vec<f64> {
    use crate::glm::{fit_glm, Family as GlmFamily, GlmControl};
    let (n, p) = (d.y.len(), d.p);
    let x = nalgebra::DMatrix::from_row_slice(n, p, &d.x);
    let (y, family): (Vec<f64>, GlmFamily) = match fam {
        Family::Binomial(_) => (
            d.y.iter().zip(&d.trials).map(|(y, m)| y / m).collect(),
            GlmFamily::Binomial,
        ),
        Family::Poisson | Family::NegativeBinomial { .. } => (d.y.clone(), GlmFamily::Poisson),
    };
    fit_glm(
        &x,
        &d.names,
        &y,
        Some(&d.offset),
        Some(&d.trials),
        family,
        &GlmControl::r_default(),
    )
    .map(|g| g.coefficients.iter().map(|c| c.estimate).collect())
    .unwrap_or_else(|_| vec![0.0; p])
}
