//! Comparison of two fitted models as nlme's `anova(fit1, fit2)` for `gls`/`lme` fits
//! (Pinheiro & Bates 2000, sec. 2.4): AIC, BIC and log-likelihood of each model, and the
//! likelihood-ratio test `L.Ratio = 2 |logLik_2 - logLik_1|` on `|df_2 - df_1|` degrees of
//! freedom (chi-squared). REML fits are comparable only with identical fixed effects
//! (covariance structures, weights, random effects); models with different fixed effects must
//! be fitted by ML.
use serde::Serialize;

use super::{MmrmError, MmrmFit};
use crate::stats::lrt::{LrTest, LrtError};

/// One model's row of the comparison table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonRow {
    pub formula: String,
    pub residual: Option<String>,
    pub weights: Option<String>,
    /// Number of parameters (fixed effects + covariance parameters), nlme's `df`.
    pub df: usize,
    pub aic: f64,
    pub bic: f64,
    pub loglik: f64,
}

/// The likelihood-ratio test between the two models.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LikelihoodRatio {
    /// `2 |logLik_2 - logLik_1|`.
    pub statistic: f64,
    pub df: usize,
    pub p_value: f64,
}

/// Result of [`compare_fits`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelComparison {
    pub method: &'static str,
    pub models: Vec<ComparisonRow>,
    /// `None` when both models have the same number of parameters (not nested).
    pub lrt: Option<LikelihoodRatio>,
}

fn row(f: &MmrmFit) -> ComparisonRow {
    ComparisonRow {
        formula: f.formula.clone(),
        residual: f.spec.as_ref().map(|s| s.text.clone()),
        weights: f.weights.as_ref().map(|w| w.text.clone()),
        df: f.loglik_df,
        aic: f.aic,
        bic: f.bic,
        loglik: f.loglik,
    }
}

/// Compares two fits of the same rows (nlme `anova(fit1, fit2)`). The LRT assumes the models
/// are nested; the user is responsible for that (as in nlme), and for boundary cases (a
/// variance component tested at zero) the chi-squared p-value is conservative.
pub fn compare_fits(a: &MmrmFit, b: &MmrmFit) -> Result<ModelComparison, MmrmError> {
    let err = |m: String| MmrmError::Data(format!("model comparison: {m}"));
    if a.reml != b.reml {
        return Err(err(
            "one model is fitted by REML, the other by ML; fit both the same way".into(),
        ));
    }
    if a.n_obs != b.n_obs {
        return Err(err(LrtError::DifferentRows {
            smaller: a.n_obs,
            larger: b.n_obs,
        }
        .to_string()));
    }
    if a.reml && a.x_names != b.x_names {
        return Err(err(
            "REML likelihoods of models with different fixed effects are not comparable; refit both by ML (--ml)".into(),
        ));
    }
    let lrt = (a.loglik_df != b.loglik_df).then(|| {
        let statistic = 2.0 * (b.loglik - a.loglik).abs();
        let df = a.loglik_df.abs_diff(b.loglik_df);
        LikelihoodRatio {
            statistic,
            df,
            p_value: LrTest::from_statistic(statistic, df as f64).p_value,
        }
    });
    Ok(ModelComparison {
        method: if a.reml { "REML" } else { "ML" },
        models: vec![row(a), row(b)],
        lrt,
    })
}

impl ModelComparison {
    /// Printed as nlme's anova table.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = format!("\nModel comparison ({}):\n", self.method);
        let _ = writeln!(
            s,
            "{:<8}{:>5}{:>14}{:>14}{:>14}{:>12}{:>12}",
            "", "df", "AIC", "BIC", "logLik", "L.Ratio", "p-value"
        );
        for (i, m) in self.models.iter().enumerate() {
            let _ = write!(
                s,
                "{:<8}{:>5}{:>14.4}{:>14.4}{:>14.4}",
                format!("model{}", i + 1),
                m.df,
                m.aic,
                m.bic,
                m.loglik
            );
            match (&self.lrt, i) {
                (Some(l), 1) => {
                    let _ = writeln!(s, "{:>12.4}{:>12.4e}", l.statistic, l.p_value);
                }
                _ => {
                    let _ = writeln!(s);
                }
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            let mut d = m.formula.clone();
            if let Some(r) = &m.residual {
                d.push_str(&format!(", residual {r}"));
            }
            if let Some(w) = &m.weights {
                d.push_str(&format!(", weights {w}"));
            }
            let _ = writeln!(s, "  model{}: {d}", i + 1);
        }
        s
    }
}
