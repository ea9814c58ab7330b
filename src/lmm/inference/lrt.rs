//! Likelihood-ratio test of nested mixed models as lme4's `anova(m0, m1)`: REML fits are
//! refitted by ML first ("refitting model(s) with ML (instead of REML)"), then
//! `Chisq = deviance(m0) - deviance(m1)` on `npar(m1) - npar(m0)` df.
use serde::Serialize;

use crate::lmm::optimize::{fit_model_frame, LmmFit, LmmOptions};
use crate::lmm::LmmError;
use crate::stats::lrt;

/// One model's row in the LRT table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LrtModelRow {
    pub formula: String,
    pub npar: usize,
    pub aic: f64,
    pub bic: f64,
    pub loglik: f64,
    pub deviance: f64,
}

/// Result of [`likelihood_ratio_test`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LrtResult {
    pub smaller: LrtModelRow,
    pub larger: LrtModelRow,
    pub chisq: f64,
    pub df: usize,
    pub p_value: f64,
    /// True when REML fits were refitted by ML.
    pub refitted_ml: bool,
}

fn ml_version(fit: &LmmFit) -> Result<Option<LmmFit>, LmmError> {
    if !fit.reml {
        return Ok(None);
    }
    let opts = LmmOptions {
        reml: false,
        start_theta: Some(fit.theta.clone()),
        ..LmmOptions::default()
    };
    fit_model_frame(fit.frame.clone(), &opts).map(Some)
}

fn row(fit: &LmmFit) -> LrtModelRow {
    LrtModelRow {
        formula: fit.frame.formula.source.clone(),
        npar: fit.n_params(),
        aic: fit.aic(),
        bic: fit.bic(),
        loglik: fit.loglik(),
        deviance: fit.deviance(),
    }
}

/// Likelihood-ratio test of `smaller` against `larger` (both fitted to the same rows): the
/// shared [`crate::stats::lrt`] test on the ML deviances.
pub fn likelihood_ratio_test(smaller: &LmmFit, larger: &LmmFit) -> Result<LrtResult, LmmError> {
    lrt::check_same_rows(&smaller.frame.rows, &larger.frame.rows)?;
    let s_ml = ml_version(smaller)?;
    let l_ml = ml_version(larger)?;
    let s = s_ml.as_ref().unwrap_or(smaller);
    let l = l_ml.as_ref().unwrap_or(larger);
    let t = lrt::lr_test(s.deviance(), s.n_params(), l.deviance(), l.n_params())?;
    Ok(LrtResult {
        smaller: row(s),
        larger: row(l),
        chisq: t.chisq,
        df: l.n_params() - s.n_params(),
        p_value: t.p_value,
        refitted_ml: s_ml.is_some() || l_ml.is_some(),
    })
}
