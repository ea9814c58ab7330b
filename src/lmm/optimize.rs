//! Fitting: BOBYQA over theta (lower bounds 0 on the diagonal of each relative covariance
//! factor, start 1 on the diagonal and 0 off it, as `lme4::lmer`), a restart off the boundary
//! when a variance ends at 0 but the criterion decreases into the interior (lme4's
//! `restart_edge`), convergence checks with a finite-difference gradient and Hessian (lme4's
//! `checkConv`: scaled gradient `solve(chol(H), g)` below 0.002) and singular-fit detection
//! (`isSingular(tol = 1e-4)`).
use std::sync::OnceLock;

use bobyqa::{Bobyqa, Config};
use nalgebra::DMatrix;

use super::deviance::Factor;
use super::model::{lambda, BlockedProducts};
use super::LmmError;
use crate::formula::{build_model_frame, ModelFormula, ModelFrame};
use crate::frame::Frame;

/// Options for [`fit_formula`].
#[derive(Debug, Clone, PartialEq)]
pub struct LmmOptions {
    /// REML (default, as lmer) or ML.
    pub reml: bool,
    /// Warm start for theta (e.g. the estimate of a previous fit in a bootstrap).
    pub start_theta: Option<Vec<f64>>,
    /// Final trust-region radius of BOBYQA.
    pub rho_end: f64,
    /// Maximum number of deviance evaluations.
    pub max_evals: usize,
    /// Run the finite-difference convergence checks (costs ~2k^2 evaluations).
    pub check_convergence: bool,
}

impl Default for LmmOptions {
    fn default() -> Self {
        LmmOptions {
            reml: true,
            start_theta: None,
            rho_end: 1e-8,
            max_evals: 100_000,
            check_convergence: true,
        }
    }
}

/// Variance-covariance of one random-effects term: `sigma^2 Lambda Lambda'`.
#[derive(Debug, Clone, PartialEq)]
pub struct VarCorrTerm {
    /// Group name as lme4 prints it (`Subject`, `Subject.1`, `cask:batch`).
    pub group: String,
    /// Column names of the term (`(Intercept)`, `Days`).
    pub names: Vec<String>,
    /// Covariance matrix, `q x q` row-major.
    pub cov: Vec<f64>,
    pub q: usize,
}

impl VarCorrTerm {
    pub fn sd(&self, i: usize) -> f64 {
        self.cov[i * self.q + i].max(0.0).sqrt()
    }
    pub fn corr(&self, i: usize, j: usize) -> f64 {
        let d = self.sd(i) * self.sd(j);
        if d > 0.0 {
            self.cov[i * self.q + j] / d
        } else {
            f64::NAN
        }
    }
}

/// A fitted linear mixed model (the analogue of an `lmerModLmerTest` object).
#[derive(Debug)]
pub struct LmmFit {
    pub frame: ModelFrame,
    pub products: BlockedProducts,
    pub reml: bool,
    pub theta: Vec<f64>,
    pub beta: Vec<f64>,
    pub sigma: f64,
    /// `vcov(beta)`, p x p.
    pub vcov: DMatrix<f64>,
    /// REML criterion (REML fits) or deviance (ML fits) at the optimum.
    pub objective: f64,
    /// -2 log-likelihood (ML) at the estimates, `deviance(fit, REML = FALSE)`.
    pub ml_deviance: f64,
    /// Spherical random effects u (first term by level, then the trailing terms).
    pub u: Vec<f64>,
    /// Conditional modes b per term, `n_levels x q` row-major.
    pub b: Vec<Vec<f64>>,
    pub fitted: Vec<f64>,
    pub residuals: Vec<f64>,
    pub n_evals: usize,
    /// Wall-clock seconds of the fit from the data frame on (model frame, cross-products,
    /// optimization, checks, BLUPs): what `lmer` times, without reading the data file.
    pub fit_seconds: f64,
    pub converged: bool,
    pub singular: bool,
    /// Human-readable notes on singular terms (which variance or correlation).
    pub singular_terms: Vec<String>,
    pub warnings: Vec<String>,
    pub(crate) satt:
        OnceLock<Result<super::inference::satterthwaite::Satterthwaite, super::inference::DfError>>,
    pub(crate) kr:
        OnceLock<Result<super::inference::kenward_roger::KrAdjusted, super::inference::DfError>>,
}

/// BOBYQA's final radius when the convergence check (and its Newton step) follows.
pub const NEWTON_RHO_END: f64 = 1e-5;

/// Largest Newton step (max norm, relative to `max(|theta_i|, 0.1)`) accepted after BOBYQA:
/// a longer one means the quadratic model is not trustworthy there.
const NEWTON_MAX_STEP: f64 = 1e-2;

/// Parses `formula`, builds the model frame on `data` and fits it.
pub fn fit_formula(formula: &str, data: &Frame, opts: &LmmOptions) -> Result<LmmFit, LmmError> {
    let t0 = std::time::Instant::now();
    let f = ModelFormula::parse(formula)?;
    let mf = build_model_frame(&f, data)?;
    let mut fit = fit_model_frame(mf, opts)?;
    fit.fit_seconds = t0.elapsed().as_secs_f64();
    Ok(fit)
}

fn minimize(
    bp: &BlockedProducts,
    reml: bool,
    start: &[f64],
    lower: &[f64],
    opts: &LmmOptions,
    factor: &mut Factor,
) -> Result<(Vec<f64>, f64, usize), LmmError> {
    let k = start.len();
    let mut cfg = Config::new(k);
    cfg.rho_begin = 0.2;
    // With the convergence check on, BOBYQA stops at a coarser radius and the check's
    // finite-difference gradient and Hessian finish with one Newton step (see
    // `fit_model_frame`): the last trust-region stages cost ~20 evaluations, the step one.
    cfg.rho_end = if opts.check_convergence {
        opts.rho_end.max(NEWTON_RHO_END)
    } else {
        opts.rho_end
    };
    let mut solver = Bobyqa::new(k, cfg).map_err(|s| LmmError::Optimizer(s.to_string()))?;
    let upper = vec![f64::INFINITY; k];
    let mut x = start.to_vec();
    let outcome = solver.minimize(
        |th: &[f64]| {
            factor.update_criterion(bp, th);
            let v = factor.objective(bp, reml);
            if v.is_finite() {
                v
            } else {
                1e300
            }
        },
        &mut x,
        lower,
        &upper,
    );
    Ok((x, outcome.f, outcome.n_eval))
}

/// Fits a model frame (REML or ML). See the module documentation for the algorithm.
pub fn fit_model_frame(mf: ModelFrame, opts: &LmmOptions) -> Result<LmmFit, LmmError> {
    let t0 = std::time::Instant::now();
    let bp = BlockedProducts::new(&mf)?;
    let reml = opts.reml;
    let lower = bp.theta_lower();
    let start = match &opts.start_theta {
        Some(s) if s.len() != bp.n_theta => {
            return Err(LmmError::StartDim {
                got: s.len(),
                expected: bp.n_theta,
            })
        }
        Some(s) => s
            .iter()
            .zip(&lower)
            .map(|(v, l)| if v.is_finite() { v.max(*l) } else { 0.0 })
            .collect(),
        None => bp.theta_start(),
    };
    let mut factor = Factor::new(&bp);
    factor.update_criterion(&bp, &start);
    if !factor.objective(&bp, reml).is_finite() {
        return Err(LmmError::BadStart);
    }
    let (mut theta, fval, mut n_evals) = minimize(&bp, reml, &start, &lower, opts, &mut factor)?;
    // Restart off the boundary when a diagonal element sits at 0 but moving inward helps.
    let at_edge: Vec<usize> = (0..theta.len())
        .filter(|&i| lower[i] == 0.0 && theta[i] < 1e-6)
        .collect();
    if !at_edge.is_empty() {
        let mut probe = theta.clone();
        let mut better = false;
        for &i in &at_edge {
            probe[i] = 1e-4;
            factor.update_criterion(&bp, &probe);
            if factor.objective(&bp, reml) < fval {
                better = true;
            }
            probe[i] = theta[i];
        }
        if better {
            let mut s2 = theta.clone();
            for &i in &at_edge {
                s2[i] = 0.1;
            }
            let (t2, f2, n2) = minimize(&bp, reml, &s2, &lower, opts, &mut factor)?;
            n_evals += n2;
            if f2 < fval {
                theta = t2;
            }
        }
    }
    // Snap tiny boundary values to the bound as lme4's optimizer output effectively does.
    for (t, l) in theta.iter_mut().zip(&lower) {
        if *l == 0.0 && *t < 0.0 {
            *t = 0.0;
        }
    }
    // lme4's convergence check (finite-difference gradient and Hessian at the optimum), and
    // with its derivatives one Newton step theta - H^{-1} g, kept when it lowers the
    // criterion: BOBYQA stopped at radius NEWTON_RHO_END, the step takes theta to the
    // optimum of the local quadratic (error O(h^2) from the differences).
    let mut check = None;
    let boundary = theta
        .iter()
        .zip(&lower)
        .any(|(t, l)| *l == 0.0 && *t < SINGULAR_TOL);
    if opts.check_convergence && !boundary && !theta.is_empty() {
        let chk = convergence_check(&bp, reml, &theta);
        if let Some(step) = &chk.newton_step {
            let ok_size = step
                .iter()
                .zip(&theta)
                .all(|(d, t)| d.abs() <= NEWTON_MAX_STEP * t.abs().max(0.1));
            let cand: Vec<f64> = theta.iter().zip(step).map(|(t, d)| t - d).collect();
            let inside = cand
                .iter()
                .zip(&lower)
                .all(|(t, l)| *l != 0.0 || *t >= SINGULAR_TOL);
            if ok_size && inside {
                factor.update_criterion(&bp, &cand);
                let f1 = factor.objective(&bp, reml);
                n_evals += 1;
                if f1 < chk.f0 {
                    theta = cand;
                    if chk.message.is_some() {
                        // The check failed before the step: judge the new estimate.
                        let again = convergence_check(&bp, reml, &theta);
                        n_evals += 1 + 2 * theta.len() * theta.len();
                        check = Some(again.message);
                    }
                }
            }
        }
        if check.is_none() {
            check = Some(chk.message);
        }
    }
    factor.update(&bp, &theta);
    let objective = factor.objective(&bp, reml);
    if !objective.is_finite() {
        return Err(LmmError::Numerical(
            "the deviance is not finite at the optimum".into(),
        ));
    }
    let mut fit = finish(mf, bp, reml, theta, factor, objective, n_evals, check)?;
    fit.fit_seconds = t0.elapsed().as_secs_f64();
    Ok(fit)
}

/// A diagonal theta below this is a boundary (singular) estimate (lme4's `isSingular`).
const SINGULAR_TOL: f64 = 1e-4;

/// The fit at a given theta without optimizing (beta, sigma, vcov, BLUPs and criteria all
/// follow from theta in closed form): for evaluating a model at another program's estimate,
/// profiling, or parametric bootstraps with known variance parameters.
pub fn fit_at_theta(mf: ModelFrame, theta: &[f64], reml: bool) -> Result<LmmFit, LmmError> {
    let bp = BlockedProducts::new(&mf)?;
    if theta.len() != bp.n_theta {
        return Err(LmmError::StartDim {
            got: theta.len(),
            expected: bp.n_theta,
        });
    }
    let mut factor = Factor::new(&bp);
    factor.update(&bp, theta);
    let objective = factor.objective(&bp, reml);
    if !objective.is_finite() {
        return Err(LmmError::Numerical(
            "the deviance is not finite at the given theta".into(),
        ));
    }
    finish(mf, bp, reml, theta.to_vec(), factor, objective, 1, None)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    mf: ModelFrame,
    bp: BlockedProducts,
    reml: bool,
    theta: Vec<f64>,
    factor: Factor,
    objective: f64,
    n_evals: usize,
    check: Option<Option<String>>,
) -> Result<LmmFit, LmmError> {
    let n = bp.n;
    let p = bp.p;
    let (u, beta) = factor.solve_u_beta(&bp);
    let denom = if reml { (n - p) as f64 } else { n as f64 };
    let sigma = (factor.pwrss / denom).sqrt();
    let uv = factor.unscaled_vcov(&bp);
    let s2 = sigma * sigma;
    let vcov = DMatrix::from_fn(p, p, |i, j| s2 * uv[i * p + j]);
    let two_pi = 2.0 * std::f64::consts::PI;
    let ml_deviance = factor.logdet_l + n as f64 * (1.0 + (two_pi * factor.pwrss / n as f64).ln());

    // Conditional modes b = Lambda u per term.
    let mut b = Vec::new();
    let l1 = bp.terms.first().map_or(0, |t| t.n_levels * t.q);
    for (j, t) in bp.terms.iter().enumerate() {
        let lam = lambda(&theta[t.theta_offset..t.theta_offset + t.n_theta()], t.q);
        let base = if j == 0 { 0 } else { l1 + t.offset };
        let mut bj = vec![0.0; t.n_levels * t.q];
        for lvl in 0..t.n_levels {
            for r in 0..t.q {
                let mut s = 0.0;
                for c in 0..=r {
                    s += lam[r * t.q + c] * u.get(base + lvl * t.q + c).copied().unwrap_or(0.0);
                }
                bj[lvl * t.q + r] = s;
            }
        }
        b.push(bj);
    }
    let mut fitted = vec![0.0; n];
    for (i, fi) in fitted.iter_mut().enumerate() {
        let mut s: f64 = mf.x[i * p..(i + 1) * p]
            .iter()
            .zip(&beta)
            .map(|(x, b)| x * b)
            .sum();
        for (j, t) in mf.re_terms.iter().enumerate() {
            let lvl = t.refs[i] as usize;
            for c in 0..t.q {
                s += t.z[i * t.q + c] * b[j][lvl * t.q + c];
            }
        }
        *fi = s;
    }
    let residuals: Vec<f64> = mf.y.iter().zip(&fitted).map(|(y, f)| y - f).collect();

    // Singular fit: a diagonal theta below 1e-4 (lme4 isSingular).
    let lower = bp.theta_lower();
    let mut singular_terms = Vec::new();
    for (j, t) in bp.terms.iter().enumerate() {
        let re = &mf.re_terms[j];
        let mut k = t.theta_offset;
        for c in 0..t.q {
            for r in c..t.q {
                if r == c && lower[k] == 0.0 && theta[k] < SINGULAR_TOL {
                    let name = re.col_names.get(c).cloned().unwrap_or_default();
                    if t.q == 1 {
                        singular_terms.push(format!(
                            "variance of `{}` for group `{}` is (nearly) zero",
                            name, re.group_name
                        ));
                    } else {
                        singular_terms.push(format!(
                            "covariance matrix of group `{}` is singular at `{}` (a variance of ~0 or a correlation of +-1)",
                            re.group_name, name
                        ));
                    }
                }
                k += 1;
            }
        }
    }
    let singular = !singular_terms.is_empty();
    let mut warnings = mf.warnings.clone();
    if singular {
        warnings.push(format!(
            "boundary (singular) fit: {}",
            singular_terms.join("; ")
        ));
    }
    // The check ran (in `fit_model_frame`) before the Newton step, so it describes the
    // BOBYQA estimate; the step only moves closer to the optimum.
    let mut converged = true;
    if !singular {
        if let Some(Some(msg)) = check {
            converged = false;
            warnings.push(msg);
        }
    }
    Ok(LmmFit {
        frame: mf,
        products: bp,
        reml,
        theta,
        beta,
        sigma,
        vcov,
        objective,
        ml_deviance,
        u,
        b,
        fitted,
        residuals,
        n_evals,
        fit_seconds: 0.0,
        converged,
        singular,
        singular_terms,
        warnings,
        satt: OnceLock::new(),
        kr: OnceLock::new(),
    })
}

/// lme4's `checkConv` on the profiled criterion: finite-difference gradient and Hessian in
/// theta; a warning when the Hessian is not positive definite or the scaled gradient
/// `solve(chol(H), g)` exceeds 0.002 in absolute value.
struct ConvergenceCheck {
    /// lme4's warning, `None` when converged.
    message: Option<String>,
    /// `H^{-1} g` when the Hessian is positive definite.
    newton_step: Option<Vec<f64>>,
    /// The criterion at theta (the stencil's centre).
    f0: f64,
}

fn convergence_check(bp: &BlockedProducts, reml: bool, theta: &[f64]) -> ConvergenceCheck {
    use crate::stats::numderiv;
    use rayon::prelude::*;
    let k = theta.len();
    let h: Vec<f64> = theta.iter().map(|t| 1e-4 * t.abs().max(1e-2)).collect();
    // All stencil points first, then one parallel pass: the evaluations are independent.
    let points = numderiv::central_stencil(theta, &h);
    let vals: Vec<f64> = points
        .par_iter()
        .map_init(
            || Factor::new(bp),
            |f, x| {
                f.update_criterion(bp, x);
                f.objective(bp, reml)
            },
        )
        .collect();
    let f0 = vals[0];
    let (g, hess) = numderiv::central_derivatives(&vals, &h);
    let hess = DMatrix::from_row_slice(k, k, &hess);
    if !g.iter().all(|v| v.is_finite()) || !hess.iter().all(|v| v.is_finite()) {
        return ConvergenceCheck {
            message: Some("convergence check failed: non-finite gradient or Hessian".into()),
            newton_step: None,
            f0,
        };
    }
    match hess.clone().cholesky() {
        None => {
            let neg = hess
                .symmetric_eigen()
                .eigenvalues
                .iter()
                .filter(|e| **e < 0.0)
                .count();
            ConvergenceCheck {
                message: Some(format!(
                    "Model failed to converge: degenerate Hessian with {neg} negative eigenvalue(s)"
                )),
                newton_step: None,
                f0,
            }
        }
        Some(ch) => {
            let gv = nalgebra::DVector::from_vec(g);
            let scaled = ch.l().solve_lower_triangular(&gv).unwrap_or(gv.clone());
            let max = scaled.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let step = ch.solve(&gv);
            ConvergenceCheck {
                message: (max > 0.002).then(|| {
                    format!("Model failed to converge with max|grad| = {max:.6} (tol = 0.002)")
                }),
                newton_step: step
                    .iter()
                    .all(|v| v.is_finite())
                    .then(|| step.iter().copied().collect()),
                f0,
            }
        }
    }
}

impl LmmFit {
    /// Fixed-effect names as R prints them.
    pub fn fixef_names(&self) -> &[String] {
        &self.frame.x_names
    }
    /// Number of observations used.
    pub fn n_obs(&self) -> usize {
        self.products.n
    }
    /// Number of fixed effects.
    pub fn n_fixef(&self) -> usize {
        self.products.p
    }
    /// Number of estimated parameters (fixed effects + theta + sigma), logLik's `df`.
    pub fn n_params(&self) -> usize {
        self.products.p + self.products.n_theta + 1
    }
    /// Log-likelihood (the REML log-likelihood for REML fits, as lme4's `logLik`).
    pub fn loglik(&self) -> f64 {
        -0.5 * self.objective
    }
    pub fn aic(&self) -> f64 {
        self.objective + 2.0 * self.n_params() as f64
    }
    pub fn bic(&self) -> f64 {
        self.objective + (self.n_obs() as f64).ln() * self.n_params() as f64
    }
    /// REML criterion (REML fits only).
    pub fn reml_criterion(&self) -> Option<f64> {
        self.reml.then_some(self.objective)
    }
    /// Deviance: -2 log-likelihood for ML fits; for REML fits the ML deviance at the REML
    /// estimates (`deviance(fit, REML = FALSE)`).
    pub fn deviance(&self) -> f64 {
        if self.reml {
            self.ml_deviance
        } else {
            self.objective
        }
    }
    /// Number of levels per grouping factor (lme4's `ngrps`), in term order, deduplicated.
    pub fn n_groups(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for t in &self.frame.re_terms {
            if !out.iter().any(|(n, _)| n == &t.factor_name) {
                out.push((t.factor_name.clone(), t.n_levels()));
            }
        }
        out
    }
    /// Random-effects covariance per term (`VarCorr`).
    pub fn varcorr(&self) -> Vec<VarCorrTerm> {
        let s2 = self.sigma * self.sigma;
        self.products
            .terms
            .iter()
            .zip(&self.frame.re_terms)
            .map(|(t, re)| {
                let lam = lambda(
                    &self.theta[t.theta_offset..t.theta_offset + t.n_theta()],
                    t.q,
                );
                let q = t.q;
                let mut cov = vec![0.0; q * q];
                for i in 0..q {
                    for j in 0..q {
                        let mut s = 0.0;
                        for k in 0..q {
                            s += lam[i * q + k] * lam[j * q + k];
                        }
                        cov[i * q + j] = s2 * s;
                    }
                }
                VarCorrTerm {
                    group: re.group_name.clone(),
                    names: re.col_names.clone(),
                    cov,
                    q,
                }
            })
            .collect()
    }
    /// Standard errors of the fixed effects (Wald).
    pub fn std_errors(&self) -> Vec<f64> {
        (0..self.n_fixef())
            .map(|i| self.vcov[(i, i)].max(0.0).sqrt())
            .collect()
    }
}
