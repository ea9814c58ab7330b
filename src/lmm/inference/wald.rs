//! Linear inference on the fixed effects, shared by every linear (mixed) model: contrasts
//! `L beta` with their SE, denominator df, t, p and CI (lmerTest `contest1D`, emmeans), and the
//! F test of `L beta = 0` (lmerTest `contestMD` with Satterthwaite df, pbkrtest `KRmodcomp`
//! with Kenward-Roger's adjusted covariance and df, or the Wald chi-square / q with infinite
//! df). A model provides its estimates, their covariance and its df machinery through
//! [`FixedEffects`]; the LMM ([`crate::lmm::LmmFit`]) and the MMRM ([`crate::mmrm::MmrmFit`])
//! both do.
use nalgebra::{DMatrix, DVector};

use super::kenward_roger::KrAdjusted;
use super::satterthwaite::Satterthwaite;
use super::{t_p_and_quantile, ContrastRow, DfMethod, FTest};
use crate::lmm::LmmError;
use crate::stats::distributions::wald_f_p_value;

/// What inference on the fixed effects needs of a fitted model.
pub trait FixedEffects {
    /// `beta`, in the order of [`FixedEffects::coef_names`].
    fn coefficients(&self) -> &[f64];
    /// `vcov(beta)`.
    fn coef_vcov(&self) -> &DMatrix<f64>;
    /// Coefficient names as R prints them.
    fn coef_names(&self) -> &[String];
    /// The Satterthwaite ingredients (Jacobian of `vcov(beta)` and the covariance of the
    /// variance parameters).
    fn satterthwaite_parts(&self) -> Result<&Satterthwaite, LmmError>;
    /// The Kenward-Roger adjusted covariance and its df ingredients.
    fn kenward_roger_parts(&self) -> Result<&KrAdjusted, LmmError>;
}

fn check_l<F: FixedEffects + ?Sized>(fit: &F, l: &DMatrix<f64>) -> Result<(), LmmError> {
    let p = fit.coefficients().len();
    if l.ncols() != p {
        return Err(LmmError::ContrastDim {
            got: l.ncols(),
            expected: p,
            names: fit.coef_names().join(", "),
        });
    }
    Ok(())
}

/// Each row of `l` as a contrast `l beta`: estimate, SE, df, t, two-sided p and a `level`
/// confidence interval.
pub fn contrast_rows<F: FixedEffects + ?Sized>(
    fit: &F,
    l: &DMatrix<f64>,
    method: DfMethod,
    level: f64,
) -> Result<Vec<ContrastRow>, LmmError> {
    check_l(fit, l)?;
    let beta = DVector::from_column_slice(fit.coefficients());
    let vcov = fit.coef_vcov();
    let mut rows = Vec::with_capacity(l.nrows());
    for r in 0..l.nrows() {
        let lr: DMatrix<f64> = l.rows(r, 1).into_owned();
        let est = (&lr * &beta)[(0, 0)];
        let (var, df) = match method {
            DfMethod::Satterthwaite => {
                let s = fit.satterthwaite_parts()?;
                let lv: Vec<f64> = lr.iter().copied().collect();
                ((&lr * vcov * lr.transpose())[(0, 0)], s.df(&lv))
            }
            DfMethod::KenwardRoger => {
                let kr = fit.kenward_roger_parts()?;
                let df = kr.df(&lr).map_err(LmmError::Df)?;
                ((&lr * &kr.phi_a * lr.transpose())[(0, 0)], df)
            }
            DfMethod::Asymptotic => ((&lr * vcov * lr.transpose())[(0, 0)], f64::INFINITY),
        };
        let se = var.max(0.0).sqrt();
        let t = est / se;
        let (p, qt) = t_p_and_quantile(t, df, level);
        rows.push(ContrastRow {
            estimate: est,
            std_error: se,
            df,
            statistic: t,
            p_value: p,
            conf_low: est - qt * se,
            conf_high: est + qt * se,
        });
    }
    Ok(rows)
}

/// F test of `L beta = 0` for a multi-row `L`.
pub fn f_test<F: FixedEffects + ?Sized>(
    fit: &F,
    l: &DMatrix<f64>,
    method: DfMethod,
) -> Result<FTest, LmmError> {
    check_l(fit, l)?;
    let beta = DVector::from_column_slice(fit.coefficients());
    let (f, q, ddf, fu) = match method {
        DfMethod::Satterthwaite => {
            let (f, q, ddf) = fit
                .satterthwaite_parts()?
                .f_test(l, &beta)
                .map_err(LmmError::Df)?;
            (f, q, ddf, f)
        }
        DfMethod::KenwardRoger => fit
            .kenward_roger_parts()?
            .f_test(l, &beta)
            .map_err(LmmError::Df)?,
        DfMethod::Asymptotic => {
            let lb = l * &beta;
            let inv = (l * fit.coef_vcov() * l.transpose())
                .try_inverse()
                .ok_or_else(|| LmmError::Numerical("L vcov L' is singular".into()))?;
            let q = l.nrows() as f64;
            let f = (lb.transpose() * inv * &lb)[(0, 0)] / q;
            (f, q, f64::INFINITY, f)
        }
    };
    Ok(FTest {
        f_value: f,
        num_df: q,
        den_df: ddf,
        p_value: wald_f_p_value(f, q, ddf),
        f_unscaled: fu,
    })
}
