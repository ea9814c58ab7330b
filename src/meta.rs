//! Random-effects meta-analysis of per-site (or per-study) estimates, as
//! `metafor::rma.uni(yi, sei = se, method, test)` (Viechtbauer 2010, J Stat Softw 36(3)) for
//! the intercept-only model.
//!
//! * REML tau^2 by Fisher scoring exactly as metafor: start at the Hedges (HE) estimate
//!   truncated at 0, step `(Y'PPY - tr P) / tr(PP)` with step-halving to stay >= 0, stop when
//!   tau^2 changes by <= `threshold` (metafor's default 1e-5; [`MetaOptions::tight`] uses
//!   1e-12, i.e. fully converged).
//! * DerSimonian-Laird (1986) and fixed-effect (tau^2 = 0) variants.
//! * Knapp & Hartung (2003) test: variance of the estimate times
//!   `s2w = sum(w (y - mu)^2) / (k - 1)`, t with k - 1 df.
//! * Q (Cochran), I^2 and H^2 via metafor's "typical" sampling variance
//!   `vt = (k - 1) / (sum w - sum w^2 / sum w)` (Higgins & Thompson 2002).
//! * Prediction interval `mu +/- crit sqrt(se^2 + tau^2)` as `predict.rma` (crit from the
//!   t distribution with k - 1 df under Knapp-Hartung, else normal).
//! * Leave-one-out (`leave1out`) and funnel-plot data.
use serde::Serialize;
use thiserror::Error;

use crate::stats::distributions::{p_two_sided_normal, p_two_sided_t, pchisq_upper, qnorm, qt};

/// Errors of the meta-analysis.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum MetaError {
    #[error("{estimates} estimates but {ses} standard errors and {labels} labels")]
    LengthMismatch {
        estimates: usize,
        ses: usize,
        labels: usize,
    },
    #[error("need at least {needed} studies, got {k}")]
    TooFewStudies { k: usize, needed: usize },
    #[error("study `{label}`: invalid {what} {value} (must be finite{positive})")]
    InvalidValue {
        label: String,
        what: &'static str,
        value: f64,
        positive: &'static str,
    },
    #[error("Fisher scoring for REML tau^2 did not converge in {iterations} iterations (last change {change})")]
    NotConverged { iterations: usize, change: f64 },
    #[error("invalid confidence level {level} (must be in (0, 1))")]
    InvalidLevel { level: f64 },
}

/// Estimator of the between-study variance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Tau2Method {
    /// Restricted maximum likelihood (metafor `method = "REML"`).
    #[serde(rename = "REML")]
    Reml,
    /// DerSimonian-Laird (metafor `method = "DL"`).
    #[serde(rename = "DL")]
    DerSimonianLaird,
    /// Fixed (common) effect, tau^2 = 0 (metafor `method = "FE"`).
    #[serde(rename = "FE")]
    FixedEffect,
}

/// Test and interval type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MetaTest {
    /// Wald z (metafor `test = "z"`).
    #[serde(rename = "z")]
    Z,
    /// Knapp-Hartung adjustment with t(k - 1) (metafor `test = "knha"`).
    #[serde(rename = "knha")]
    KnappHartung,
}

/// Options of [`rma`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetaOptions {
    pub method: Tau2Method,
    pub test: MetaTest,
    pub level: f64,
    /// Fisher scoring stops when tau^2 changes by <= threshold (metafor `control$threshold`).
    pub threshold: f64,
    /// metafor `control$maxiter`.
    pub max_iter: usize,
    /// metafor `control$stepadj`.
    pub step_adj: f64,
}

impl Default for MetaOptions {
    /// metafor's defaults for `rma(method = "REML", test = "knha")`: threshold 1e-5,
    /// maxiter 100.
    fn default() -> Self {
        MetaOptions {
            method: Tau2Method::Reml,
            test: MetaTest::KnappHartung,
            level: 0.95,
            threshold: 1e-5,
            max_iter: 100,
            step_adj: 1.0,
        }
    }
}

impl MetaOptions {
    /// REML + Knapp-Hartung with tau^2 converged fully (threshold 1e-12, maxiter 10000),
    /// as `control = list(threshold = 1e-12, maxiter = 10000)`.
    pub fn tight() -> Self {
        MetaOptions {
            threshold: 1e-12,
            max_iter: 10_000,
            ..MetaOptions::default()
        }
    }
}

/// A fitted random-effects (or fixed-effect) meta-analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaAnalysis {
    pub method: Tau2Method,
    pub test: MetaTest,
    pub level: f64,
    pub k: usize,
    /// Pooled estimate.
    pub estimate: f64,
    pub std_error: f64,
    /// z or t statistic.
    pub statistic: f64,
    /// Degrees of freedom of the t test (Knapp-Hartung), `None` for z.
    pub df: Option<f64>,
    pub p_value: f64,
    pub conf_low: f64,
    pub conf_high: f64,
    pub tau2: f64,
    pub se_tau2: f64,
    pub tau: f64,
    /// I^2 in percent.
    pub i2: f64,
    pub h2: f64,
    /// Cochran's Q (fixed-effect weights).
    pub q: f64,
    pub q_df: usize,
    pub q_p_value: f64,
    pub pi_low: f64,
    pub pi_high: f64,
    /// Knapp-Hartung scale factor `s2w = sum(w (y - mu)^2) / (k - 1)` (reported for every
    /// test; it only scales the SE under Knapp-Hartung).
    pub s2w: f64,
    /// Restricted log-likelihood at tau^2 (metafor's `logLik` for REML, with `REMLf = TRUE`);
    /// the ML log-likelihood for the fixed-effect model's tau^2 = 0 is not reported (NaN).
    pub loglik_reml: f64,
    /// Percent weight of each study in the pooled estimate.
    pub weights_percent: Vec<f64>,
    /// Fisher-scoring iterations (0 for non-iterative estimators).
    pub iterations: usize,
}

/// One leave-one-out refit (metafor `leave1out`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaveOneOut {
    pub omitted: String,
    pub fit: MetaAnalysis,
}

/// One point of a funnel plot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelPoint {
    pub label: String,
    pub estimate: f64,
    pub std_error: f64,
}

/// Funnel-plot data: the studies and the pseudo-confidence region
/// `estimate +/- qnorm((1 + level) / 2) se` around the pooled estimate, for se in [0, se_max].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelData {
    pub points: Vec<FunnelPoint>,
    pub center: f64,
    pub z_crit: f64,
    pub se_max: f64,
}

fn check(yi: &[f64], sei: &[f64], labels: &[String], needed: usize) -> Result<(), MetaError> {
    if yi.len() != sei.len() || yi.len() != labels.len() {
        return Err(MetaError::LengthMismatch {
            estimates: yi.len(),
            ses: sei.len(),
            labels: labels.len(),
        });
    }
    if yi.len() < needed {
        return Err(MetaError::TooFewStudies {
            k: yi.len(),
            needed,
        });
    }
    for ((&y, &s), l) in yi.iter().zip(sei).zip(labels) {
        if !y.is_finite() {
            return Err(MetaError::InvalidValue {
                label: l.clone(),
                what: "estimate",
                value: y,
                positive: "",
            });
        }
        if !(s.is_finite() && s > 0.0) {
            return Err(MetaError::InvalidValue {
                label: l.clone(),
                what: "standard error",
                value: s,
                positive: " and > 0",
            });
        }
    }
    Ok(())
}

/// Sums for the intercept-only model with weights `w`: `(S, mu, Y'PY, Y'PPY, tr P, tr PP)`
/// with `P = W - w w' / S`.
fn p_sums(y: &[f64], w: &[f64]) -> (f64, f64, f64, f64, f64, f64) {
    let s: f64 = w.iter().sum();
    let s2: f64 = w.iter().map(|a| a * a).sum();
    let s3: f64 = w.iter().map(|a| a * a * a).sum();
    let mu = w.iter().zip(y).map(|(a, b)| a * b).sum::<f64>() / s;
    let ypy: f64 = w.iter().zip(y).map(|(a, b)| a * (b - mu) * (b - mu)).sum();
    let yppy: f64 = w
        .iter()
        .zip(y)
        .map(|(a, b)| (a * (b - mu)) * (a * (b - mu)))
        .sum();
    let tr_p = s - s2 / s;
    let tr_pp = s2 - 2.0 * s3 / s + s2 * s2 / (s * s);
    (s, mu, ypy, yppy, tr_p, tr_pp)
}

/// REML tau^2 by metafor's Fisher scoring; returns (tau2, iterations).
fn reml_tau2(y: &[f64], v: &[f64], opt: &MetaOptions) -> Result<(f64, usize), MetaError> {
    let k = y.len() as f64;
    // Hedges (HE) starting value: RSS / (k - 1) - mean(v), truncated at 0
    let ybar = y.iter().sum::<f64>() / k;
    let rss: f64 = y.iter().map(|a| (a - ybar) * (a - ybar)).sum();
    let he = rss / (k - 1.0) - v.iter().sum::<f64>() / k;
    let mut tau2 = he.max(0.0);
    let mut change = opt.threshold + 1.0;
    let mut iter = 0usize;
    while change > opt.threshold {
        iter += 1;
        let old = tau2;
        let w: Vec<f64> = v.iter().map(|vi| 1.0 / (vi + tau2)).collect();
        let (_, _, _, yppy, tr_p, tr_pp) = p_sums(y, &w);
        let mut adj = (yppy - tr_p) / tr_pp * opt.step_adj;
        if adj.is_nan() {
            adj = 0.0;
        }
        let mut halvings = 0;
        while tau2 + adj < 0.0 {
            adj /= 2.0;
            halvings += 1;
            if halvings > 2000 {
                adj = -tau2;
                break;
            }
        }
        tau2 += adj;
        change = (old - tau2).abs();
        if iter > opt.max_iter {
            return Err(MetaError::NotConverged {
                iterations: iter,
                change,
            });
        }
    }
    Ok((tau2.max(0.0), iter))
}

/// Random-effects meta-analysis of estimates `yi` with standard errors `sei` (one label per
/// study), as `metafor::rma(yi, sei = sei, method, test)` without moderators.
pub fn rma(
    yi: &[f64],
    sei: &[f64],
    labels: &[String],
    opt: &MetaOptions,
) -> Result<MetaAnalysis, MetaError> {
    check(yi, sei, labels, 2)?;
    if !(opt.level > 0.0 && opt.level < 1.0) {
        return Err(MetaError::InvalidLevel { level: opt.level });
    }
    let k = yi.len();
    let kf = k as f64;
    let v: Vec<f64> = sei.iter().map(|s| s * s).collect();
    // fixed-effect quantities: Q, typical variance
    let w_fe: Vec<f64> = v.iter().map(|a| 1.0 / a).collect();
    let (_, _, q, _, tr_p_fe, tr_pp_fe) = p_sums(yi, &w_fe);
    let (tau2, iterations) = match opt.method {
        Tau2Method::Reml => reml_tau2(yi, &v, opt)?,
        Tau2Method::DerSimonianLaird => (((q - (kf - 1.0)) / tr_p_fe).max(0.0), 0),
        Tau2Method::FixedEffect => (0.0, 0),
    };
    let w: Vec<f64> = v.iter().map(|a| 1.0 / (a + tau2)).collect();
    let (s, mu, ypy, _, tr_p, tr_pp) = p_sums(yi, &w);
    let se_tau2 = match opt.method {
        Tau2Method::Reml => (2.0 / tr_pp).sqrt(),
        Tau2Method::DerSimonianLaird => {
            let t = tau2.max(0.0);
            (1.0 / (tr_p_fe * tr_p_fe)
                * (2.0 * (kf - 1.0) + 4.0 * t * tr_p_fe + 2.0 * t * t * tr_pp_fe))
                .sqrt()
        }
        Tau2Method::FixedEffect => f64::NAN,
    };
    let _ = tr_p;
    let mut vb = 1.0 / s;
    let df = kf - 1.0;
    let alpha_half = 0.5 + opt.level / 2.0;
    let s2w = ypy / df;
    let (crit, dfo) = match opt.test {
        MetaTest::KnappHartung => {
            vb *= s2w;
            (qt(alpha_half, df), Some(df))
        }
        MetaTest::Z => (qnorm(alpha_half), None),
    };
    let loglik_reml = match opt.method {
        Tau2Method::FixedEffect => f64::NAN,
        _ => {
            -0.5 * df * (2.0 * std::f64::consts::PI).ln() + 0.5 * kf.ln()
                - 0.5 * v.iter().map(|a| (a + tau2).ln()).sum::<f64>()
                - 0.5 * s.ln()
                - 0.5 * ypy
        }
    };
    let se = vb.sqrt();
    let stat = mu / se;
    let p_value = match opt.test {
        MetaTest::KnappHartung => p_two_sided_t(stat, df),
        MetaTest::Z => p_two_sided_normal(stat),
    };
    let (i2, h2) = match opt.method {
        Tau2Method::FixedEffect => ((100.0 * (q - df) / q).max(0.0), q / df),
        _ => {
            let vt = df / tr_p_fe;
            (100.0 * tau2 / (vt + tau2), tau2 / vt + 1.0)
        }
    };
    let pi_se = (vb + tau2).sqrt();
    Ok(MetaAnalysis {
        method: opt.method,
        test: opt.test,
        level: opt.level,
        k,
        estimate: mu,
        std_error: se,
        statistic: stat,
        df: dfo,
        p_value,
        conf_low: mu - crit * se,
        conf_high: mu + crit * se,
        tau2,
        se_tau2,
        tau: tau2.sqrt(),
        i2,
        h2,
        q,
        q_df: k - 1,
        q_p_value: pchisq_upper(q, df),
        pi_low: mu - crit * pi_se,
        pi_high: mu + crit * pi_se,
        s2w,
        loglik_reml,
        weights_percent: w.iter().map(|a| 100.0 * a / s).collect(),
        iterations,
    })
}

/// Leave-one-out refits with the same options (metafor `leave1out`); needs k >= 3.
pub fn leave_one_out(
    yi: &[f64],
    sei: &[f64],
    labels: &[String],
    opt: &MetaOptions,
) -> Result<Vec<LeaveOneOut>, MetaError> {
    check(yi, sei, labels, 3)?;
    (0..yi.len())
        .map(|drop| {
            let keep = |v: &[f64]| -> Vec<f64> {
                v.iter()
                    .enumerate()
                    .filter(|(i, _)| *i != drop)
                    .map(|(_, a)| *a)
                    .collect()
            };
            let l: Vec<String> = labels
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .map(|(_, a)| a.clone())
                .collect();
            Ok(LeaveOneOut {
                omitted: labels.get(drop).cloned().unwrap_or_default(),
                fit: rma(&keep(yi), &keep(sei), &l, opt)?,
            })
        })
        .collect()
}

/// Funnel-plot data around the pooled estimate of `fit`.
pub fn funnel_data(
    yi: &[f64],
    sei: &[f64],
    labels: &[String],
    fit: &MetaAnalysis,
) -> Result<FunnelData, MetaError> {
    check(yi, sei, labels, 1)?;
    let points = yi
        .iter()
        .zip(sei)
        .zip(labels)
        .map(|((&y, &s), l)| FunnelPoint {
            label: l.clone(),
            estimate: y,
            std_error: s,
        })
        .collect();
    Ok(FunnelData {
        points,
        center: fit.estimate,
        z_crit: qnorm(0.5 + fit.level / 2.0),
        se_max: sei.iter().copied().fold(0.0, f64::max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("S{i}")).collect()
    }

    #[test]
    fn equal_variances_reml_has_closed_form() {
        // with equal v the REML estimate is max(0, var(y) - v)
        let y = [0.1, 0.5, 0.9, 0.3, 0.7];
        let se = [0.1; 5];
        let fit = rma(&y, &se, &labels(5), &MetaOptions::tight()).unwrap();
        let var_y = 0.1; // sample variance of y
        assert!((fit.tau2 - (var_y - 0.01)).abs() < 1e-12);
        assert!((fit.estimate - 0.5).abs() < 1e-14);
    }

    #[test]
    fn homogeneous_studies_give_zero_tau2() {
        let y = [0.50, 0.51, 0.49, 0.50];
        let se = [0.2, 0.3, 0.25, 0.2];
        let fit = rma(&y, &se, &labels(4), &MetaOptions::tight()).unwrap();
        assert_eq!(fit.tau2, 0.0);
        assert!((fit.i2).abs() < 1e-12);
        assert!((fit.h2 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_input() {
        let e = rma(&[0.1], &[0.1], &labels(1), &MetaOptions::default());
        assert!(matches!(e, Err(MetaError::TooFewStudies { .. })));
        let e = rma(
            &[0.1, 0.2],
            &[0.1, 0.0],
            &labels(2),
            &MetaOptions::default(),
        );
        assert!(matches!(e, Err(MetaError::InvalidValue { .. })));
    }
}
