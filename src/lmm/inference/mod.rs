//! Inference on fixed effects: linear contrasts `L beta` with Wald standard errors and
//! Satterthwaite (lmerTest) or Kenward-Roger (pbkrtest) df, F tests of several rows, and
//! likelihood-ratio tests of nested models ([`lrt`]).
pub mod kenward_roger;
pub mod kr_blocks;
pub mod lrt;
pub mod satterthwaite;
pub mod type3;
pub mod wald;

use std::cell::RefCell;

use crate::stats::distributions::{p_two_sided_normal, p_two_sided_t, qnorm, qt};
use nalgebra::DMatrix;
use serde::Serialize;

use super::deviance::{Criterion, Factor};
use super::optimize::LmmFit;
use super::LmmError;
use kenward_roger::KrAdjusted;
use satterthwaite::{Satterthwaite, VarianceParameterModel};

/// Degrees-of-freedom method for t and F tests of fixed effects.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DfSpec {
    /// Satterthwaite (lmerTest's default).
    #[default]
    Satterthwaite,
    /// Kenward-Roger (pbkrtest).
    KenwardRoger,
}

impl From<DfSpec> for DfMethod {
    fn from(d: DfSpec) -> DfMethod {
        match d {
            DfSpec::Satterthwaite => DfMethod::Satterthwaite,
            DfSpec::KenwardRoger => DfMethod::KenwardRoger,
        }
    }
}

/// How the denominator degrees of freedom of t and F tests are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DfMethod {
    /// Satterthwaite as lmerTest (default).
    Satterthwaite,
    /// Kenward-Roger as pbkrtest (adjusted covariance and df).
    KenwardRoger,
    /// No df: z and chi-square/F with infinite denominator df.
    Asymptotic,
}

impl std::str::FromStr for DfMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "satterthwaite" => Ok(DfMethod::Satterthwaite),
            "kenward-roger" | "kr" | "kenward_roger" => Ok(DfMethod::KenwardRoger),
            "none" | "asymptotic" => Ok(DfMethod::Asymptotic),
            other => Err(format!(
                "unknown df method `{other}` (use satterthwaite, kenward-roger or none)"
            )),
        }
    }
}

/// One row of a contrast table (broom's layout).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContrastRow {
    pub estimate: f64,
    pub std_error: f64,
    pub df: f64,
    pub statistic: f64,
    pub p_value: f64,
    pub conf_low: f64,
    pub conf_high: f64,
}

/// An F test of `L beta = 0`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FTest {
    pub f_value: f64,
    pub num_df: f64,
    pub den_df: f64,
    pub p_value: f64,
    /// Kenward-Roger: the unscaled Wald F (F / scaling); otherwise equal to `f_value`.
    pub f_unscaled: f64,
}

/// Two-sided p-value and confidence-interval multiplier for a t (or z when `df` is infinite),
/// from the shared distribution functions (R's `2 * pt(-|t|, df)` and `qt(upper, df)`).
pub fn t_p_and_quantile(t: f64, df: f64, level: f64) -> (f64, f64) {
    let upper = 1.0 - (1.0 - level) / 2.0;
    if df.is_finite() && df > 0.0 {
        (p_two_sided_t(t, df), qt(upper, df))
    } else if df.is_nan() || df <= 0.0 {
        (f64::NAN, f64::NAN)
    } else {
        (p_two_sided_normal(t), qnorm(upper))
    }
}

/// The LMM as a function of its variance parameters `(theta, sigma)` (lmerTest's `varpar`).
/// Smallest diagonal element of `Lambda` for the closed-form Jacobian of `vcov(beta)` (lme4's
/// singularity tolerance: below it the numeric differences are kept).
const VCOV_GRADIENT_MIN_DIAG: f64 = 1e-4;

struct LmmVarPar<'a> {
    fit: &'a LmmFit,
    factor: RefCell<Factor>,
}

impl VarianceParameterModel for LmmVarPar<'_> {
    fn n_fixef(&self) -> usize {
        self.fit.n_fixef()
    }
    fn varpar(&self) -> Vec<f64> {
        let mut v = self.fit.theta.clone();
        v.push(self.fit.sigma);
        v
    }
    fn deviance_at(&self, vp: &[f64]) -> f64 {
        let k = vp.len() - 1;
        let mut f = self.factor.borrow_mut();
        f.update_criterion(&self.fit.products, &vp[..k]);
        f.deviance_at_sigma(&self.fit.products, self.fit.reml, vp[k])
    }
    fn vcov_at(&self, vp: &[f64]) -> DMatrix<f64> {
        let k = vp.len() - 1;
        let p = self.fit.n_fixef();
        let mut f = self.factor.borrow_mut();
        f.update(&self.fit.products, &vp[..k]);
        let uv = f.unscaled_vcov(&self.fit.products);
        let s2 = vp[k] * vp[k];
        DMatrix::from_fn(p, p, |i, j| s2 * uv[i * p + j])
    }
    /// In closed form from one dense factorization at `theta`
    /// ([`crate::lmm::vcov_gradient`]): `sigma^2 dC/dtheta_j` and `2 sigma C`, instead of the
    /// `8 k` factorizations of Richardson differences (InstEval's df step: 0.30 -> 0.23 s).
    /// `None` (numeric differences, as lmerTest) at a variance near zero, where `Lambda` is not
    /// invertible, and on the class path.
    fn vcov_jacobian(&self, vp: &[f64]) -> Option<Vec<DMatrix<f64>>> {
        let bp = &self.fit.products;
        if bp.classes.is_some() {
            // Registries: the class downdate makes each of the 8 k factorizations cheaper than
            // the one pass over every level that the dense factor needs (1,000,000 rows: 0.08
            // against 0.15 s for the df step).
            return None;
        }
        self.closed_form_jacobian(vp)
    }
    /// The points share thetas (a step in sigma keeps theta; the Hessian's mixed theta-sigma
    /// points have the thetas of its diagonal ones): the factor is computed once per distinct
    /// theta, the distinct thetas in parallel (one factor per task), and the deviance at each
    /// point's sigma is a formula of it ([`Criterion::deviance_at_sigma`]): the same values as
    /// one [`VarianceParameterModel::deviance_at`] per point.
    fn deviances_at(&self, points: &[Vec<f64>]) -> Vec<f64> {
        use rayon::prelude::*;
        let bp = &self.fit.products;
        let (thetas, which) = distinct_thetas(points);
        let crit: Vec<Criterion> = thetas
            .par_iter()
            .map_init(
                || Factor::new(bp),
                |f, th| {
                    f.update_criterion(bp, th);
                    f.criterion()
                },
            )
            .collect();
        points
            .iter()
            .zip(&which)
            .map(|(p, &w)| crit[w].deviance_at_sigma(bp, self.fit.reml, p[p.len() - 1]))
            .collect()
    }
    /// As [`Self::deviances_at`]: `(R_X'R_X)^-1` once per distinct theta, in parallel, times
    /// each point's `sigma^2`, from the criterion's factor where it has `L_XX`: the sparse one
    /// for crossed designs (the dense trailing factorization costs about five sparse ones
    /// there), the class downdate's for registries (1,000,000 rows: 32 passes over 200,000
    /// participants became 32 passes over their few classes).
    fn vcovs_at(&self, points: &[Vec<f64>]) -> Vec<DMatrix<f64>> {
        use rayon::prelude::*;
        let bp = &self.fit.products;
        let p = self.fit.n_fixef();
        let (thetas, which) = distinct_thetas(points);
        let unscaled: Vec<Vec<f64>> = thetas
            .par_iter()
            .map_init(
                || Factor::new(bp),
                |f, th| {
                    // L_XX from the criterion's factor (sparse for crossed designs, dense after
                    // the class downdate for registries; equal up to rounding); otherwise the
                    // full dense factor.
                    if bp.sparse.is_some() || bp.classes.is_some() {
                        f.update_criterion(bp, th);
                        if let Some(v) = f.unscaled_vcov_criterion(bp) {
                            return v;
                        }
                    }
                    f.update(bp, th);
                    f.unscaled_vcov(bp)
                },
            )
            .collect();
        points
            .iter()
            .zip(&which)
            .map(|(vp, &w)| {
                let s = vp[vp.len() - 1];
                let s2 = s * s;
                let uv = &unscaled[w];
                DMatrix::from_fn(p, p, |i, j| s2 * uv[i * p + j])
            })
            .collect()
    }
}

impl LmmVarPar<'_> {
    /// [`VarianceParameterModel::vcov_jacobian`]'s closed form on any path.
    fn closed_form_jacobian(&self, vp: &[f64]) -> Option<Vec<DMatrix<f64>>> {
        let k = vp.len() - 1;
        let p = self.fit.n_fixef();
        let bp = &self.fit.products;
        let mut f = self.factor.borrow_mut();
        f.update(bp, &vp[..k]);
        let (c, dcs) =
            crate::lmm::vcov_gradient::unscaled_vcov_derivatives(&f, bp, VCOV_GRADIENT_MIN_DIAG)?;
        let s = vp[k];
        let mut out: Vec<DMatrix<f64>> = dcs
            .iter()
            .map(|d| DMatrix::from_row_slice(p, p, d) * (s * s))
            .collect();
        out.push(DMatrix::from_row_slice(p, p, &c) * (2.0 * s));
        Some(out)
    }
}

/// The distinct thetas (all but the last coordinate, sigma) of `points`, in order of first
/// appearance, and for each point the index of its theta.
fn distinct_thetas(points: &[Vec<f64>]) -> (Vec<Vec<f64>>, Vec<usize>) {
    let mut index: std::collections::HashMap<Vec<u64>, usize> = std::collections::HashMap::new();
    let mut thetas: Vec<Vec<f64>> = Vec::new();
    let which = points
        .iter()
        .map(|p| {
            let th = &p[..p.len().saturating_sub(1)];
            let key: Vec<u64> = th.iter().map(|v| v.to_bits()).collect();
            *index.entry(key).or_insert_with(|| {
                thetas.push(th.to_vec());
                thetas.len() - 1
            })
        })
        .collect();
    (thetas, which)
}

/// Why denominator df (Satterthwaite, Kenward-Roger) or their ingredients cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DfError {
    #[error("the Hessian of the deviance is not finite")]
    HessianNotFinite,
    #[error("the contrast matrix has rank 0")]
    RankZero,
    #[error("no observations")]
    NoObservations,
    #[error("a block of the marginal covariance V is not positive definite")]
    BlockNotPositiveDefinite,
    #[error("the information matrix of the covariance parameters is singular")]
    SingularInformation,
    #[error("L vcov L' is singular (linearly dependent contrast rows?)")]
    SingularContrast,
    #[error("L vcovAdj L' is singular")]
    SingularAdjustedContrast,
    #[error("wrong number of covariance parameters")]
    WrongParameterCount,
    #[error("the covariance parameters are not valid (G not positive definite?)")]
    InvalidParameters,
    #[error("the covariance derivatives are not finite")]
    DerivativesNotFinite,
    #[error("covariance of a pattern missing")]
    MissingPattern,
    #[error("a covariance block is not positive definite")]
    PatternNotPositiveDefinite,
    #[error("Kenward-Roger works on independent blocks of observations, but the grouping factors link {n} random effects or observations in one block (limit {}); use Satterthwaite", kr_blocks::KR_MAX_RE_COLUMNS)]
    BlockTooLarge { n: usize },
    #[error("Kenward-Roger needs a REML fit (as lmerTest/pbkrtest); refit without --ml")]
    NeedsReml,
}

impl LmmFit {
    /// Satterthwaite machinery (computed once, then cached).
    pub fn satterthwaite(&self) -> Result<&Satterthwaite, LmmError> {
        self.satt
            .get_or_init(|| {
                let m = LmmVarPar {
                    fit: self,
                    factor: RefCell::new(Factor::new(&self.products)),
                };
                Satterthwaite::compute(&m)
            })
            .as_ref()
            .map_err(|e| LmmError::Df(e.clone()))
    }

    /// Kenward-Roger adjustment (computed once, then cached).
    pub fn kenward_roger(&self) -> Result<&KrAdjusted, LmmError> {
        self.kr
            .get_or_init(|| {
                let (pp, qq, ktrace) = kr_blocks::kr_sums(self)?;
                kenward_roger::kr_from_sums(&self.vcov, pp, &qq, &ktrace)
            })
            .as_ref()
            .map_err(|e| LmmError::Df(e.clone()))
    }

    /// Each row of `l` as a contrast `l beta`: estimate, SE, df, t, p and a 95% CI.
    pub fn contrast(
        &self,
        l: &DMatrix<f64>,
        method: DfMethod,
    ) -> Result<Vec<ContrastRow>, LmmError> {
        self.contrast_level(l, method, 0.95)
    }

    /// As [`LmmFit::contrast`] with a confidence level.
    pub fn contrast_level(
        &self,
        l: &DMatrix<f64>,
        method: DfMethod,
        level: f64,
    ) -> Result<Vec<ContrastRow>, LmmError> {
        wald::contrast_rows(self, l, method, level)
    }

    /// F test of `L beta = 0` for a multi-row `L` (lmerTest `contestMD` for Satterthwaite,
    /// pbkrtest `KRmodcomp` for Kenward-Roger, Wald chi-square / q for asymptotic).
    pub fn f_test(&self, l: &DMatrix<f64>, method: DfMethod) -> Result<FTest, LmmError> {
        wald::f_test(self, l, method)
    }

    /// The coefficient table (one row per fixed effect) with the chosen df method.
    pub fn coef_table(&self, method: DfMethod) -> Result<Vec<ContrastRow>, LmmError> {
        let p = self.n_fixef();
        self.contrast(&DMatrix::identity(p, p), method)
    }

    /// Type III F tests per model term, as lmerTest's `anova(fit, type = 3)`: the contrast
    /// rows are lmerTest's ([`type3::type3_contrasts`], SAS type III by Goodnight's rules).
    /// When those cannot be formed (a rank-deficient design) the hypothesis is taken from the
    /// sum-to-zero parameterization instead (the same hypothesis for full-rank designs).
    /// Returns (term label, test).
    pub fn anova_terms(&self, method: DfMethod) -> Result<Vec<(String, FTest)>, LmmError> {
        let f = &self.frame.formula;
        if let Some(ls) = type3::type3_contrasts(&self.frame) {
            let mut out = Vec::new();
            for (ti, l) in ls {
                if l.nrows() == 0 {
                    continue;
                }
                let label = f
                    .fixed
                    .terms
                    .get(ti)
                    .map(|t| f.term_label(t))
                    .unwrap_or_default();
                out.push((label, self.f_test(&l, method)?));
            }
            return Ok(out);
        }
        let mf = &self.frame;
        let p = self.n_fixef();
        let ps = mf.x_sum_terms.len();
        let sts = DMatrix::from_row_slice(ps, ps, &mf.x_sum_xtx);
        let stx = DMatrix::from_row_slice(ps, p, &mf.x_sum_x);
        let tinv = sts
            .cholesky()
            .ok_or_else(|| LmmError::Numerical("sum-coded design is rank deficient".into()))?
            .solve(&stx);
        let mut out = Vec::new();
        for (ti, term) in f.fixed.terms.iter().enumerate() {
            let rows: Vec<usize> = (0..ps)
                .filter(|&c| mf.x_sum_terms.get(c).copied().flatten() == Some(ti))
                .collect();
            if rows.is_empty() {
                continue;
            }
            let mut l = DMatrix::zeros(rows.len(), p);
            for (r, &c) in rows.iter().enumerate() {
                for b in 0..p {
                    let v = tinv[(c, b)];
                    l[(r, b)] = if v.abs() < 1e-10 { 0.0 } else { v };
                }
            }
            out.push((f.term_label(term), self.f_test(&l, method)?));
        }
        Ok(out)
    }
}

impl wald::FixedEffects for LmmFit {
    fn coefficients(&self) -> &[f64] {
        &self.beta
    }
    fn coef_vcov(&self) -> &DMatrix<f64> {
        &self.vcov
    }
    fn coef_names(&self) -> &[String] {
        self.fixef_names()
    }
    fn satterthwaite_parts(&self) -> Result<&Satterthwaite, LmmError> {
        self.satterthwaite()
    }
    fn kenward_roger_parts(&self) -> Result<&KrAdjusted, LmmError> {
        self.kenward_roger()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::lmm::{fit_formula, LmmOptions};
    use std::collections::HashMap;

    /// The LMM's variance-parameter model without the closed-form Jacobian (lmerTest's
    /// Richardson differences of `vcov(beta)`).
    struct Numeric<'a>(LmmVarPar<'a>);

    impl VarianceParameterModel for Numeric<'_> {
        fn n_fixef(&self) -> usize {
            self.0.n_fixef()
        }
        fn varpar(&self) -> Vec<f64> {
            self.0.varpar()
        }
        fn deviance_at(&self, vp: &[f64]) -> f64 {
            self.0.deviance_at(vp)
        }
        fn vcov_at(&self, vp: &[f64]) -> DMatrix<f64> {
            self.0.vcov_at(vp)
        }
    }

    fn frame(file: &str, orders: &[(&str, &[&str])]) -> Frame {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lmm")
            .join(file);
        let raw = crate::table::read_table_file(&path).unwrap();
        let orders: HashMap<String, Vec<String>> = orders
            .iter()
            .map(|(c, l)| (c.to_string(), l.iter().map(|s| s.to_string()).collect()))
            .collect();
        Frame::from_table(&raw, &orders).unwrap()
    }

    #[test]
    fn analytic_vcov_jacobian_matches_richardson() {
        let trial = frame(
            "trial_small_scored.csv",
            &[("arm", &["TAU", "IMR"]), ("wave", &["T0", "T1", "T2"])],
        );
        let cases = [
            (
                frame("sleepstudy.csv", &[]),
                "Reaction ~ Days + (Days | Subject)",
            ),
            (
                frame("sleepstudy.csv", &[]),
                "Reaction ~ Days + (Days || Subject)",
            ),
            (
                frame("Penicillin.csv", &[]),
                "diameter ~ 1 + (1 | plate) + (1 | sample)",
            ),
            (frame("Pastes.csv", &[]), "strength ~ 1 + (1 | batch/cask)"),
            (
                trial.clone(),
                "bsi ~ arm * wave + (1 | participant_id) + (1 | site_id)",
            ),
            (
                trial.clone(),
                "sfs ~ arm * wave + (1 | participant_id) + (1 + arm | site_id)",
            ),
            (trial, "honos ~ arm * wave + (1 | participant_id)"),
            (
                frame("sleepstudy.csv", &[]),
                "Reaction ~ Days + (1 | Subject)",
            ),
        ];
        let mut worst: f64 = 0.0;
        let mut compared = 0;
        for (data, formula) in &cases {
            let fit = fit_formula(formula, data, &LmmOptions::default()).unwrap();
            let m = LmmVarPar {
                fit: &fit,
                factor: RefCell::new(Factor::new(&fit.products)),
            };
            let Some(analytic) = m.closed_form_jacobian(&m.varpar()) else {
                assert!(
                    fit.singular,
                    "{formula}: no closed form at a non-singular fit"
                );
                eprintln!("{formula}: singular, numeric differences");
                continue;
            };
            compared += 1;
            let numeric = Satterthwaite::compute(&Numeric(LmmVarPar {
                fit: &fit,
                factor: RefCell::new(Factor::new(&fit.products)),
            }))
            .unwrap();
            assert_eq!(analytic.len(), numeric.jac.len());
            for (j, (a, b)) in analytic.iter().zip(&numeric.jac).enumerate() {
                let scale = b.iter().fold(0.0f64, |s, v| s.max(v.abs()));
                let e = (a - b).iter().fold(0.0f64, |s, v| s.max(v.abs())) / scale;
                assert!(
                    e < 1e-6,
                    "{formula}: parameter {j}: relative difference {e:e}"
                );
                worst = worst.max(e);
            }
        }
        assert!(compared >= 6, "only {compared} non-singular fits compared");
        eprintln!("closed-form against Richardson Jacobian: worst relative difference {worst:.1e}");
    }
}
