//! Output of a fit: the `herstel fit --json` layout (broom-style rows) and an
//! lme4-like printed summary.
use std::fmt::Write as _;

use serde::Serialize;

use super::inference::{ContrastRow, DfMethod};
use super::optimize::LmmFit;
use super::LmmError;

#[derive(Debug, Clone, Serialize)]
pub struct FixedEffectRow {
    pub term: String,
    pub estimate: f64,
    pub std_error: f64,
    pub df: Option<f64>,
    pub statistic: f64,
    pub p_value: f64,
    pub conf_low: f64,
    pub conf_high: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RandomEffectRow {
    pub group: String,
    pub term: String,
    pub variance: f64,
    pub sd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CorrelationRow {
    pub group: String,
    pub term1: String,
    pub term2: String,
    pub corr: f64,
}

/// Everything `herstel fit --json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct FitSummary {
    pub formula: String,
    pub reml: bool,
    pub n_obs: usize,
    pub n_dropped: usize,
    pub n_groups: serde_json::Map<String, serde_json::Value>,
    pub df_method: DfMethod,
    pub fixed_effects: Vec<FixedEffectRow>,
    pub random_effects: Vec<RandomEffectRow>,
    pub correlations: Vec<CorrelationRow>,
    pub loglik: f64,
    pub reml_criterion: Option<f64>,
    pub deviance: f64,
    pub aic: f64,
    pub bic: f64,
    pub loglik_df: usize,
    pub sigma: f64,
    pub theta: Vec<f64>,
    /// `vcov(beta)` (Kenward-Roger: the adjusted covariance), rows in fixed-effect order.
    pub vcov: Vec<Vec<f64>>,
    pub converged: bool,
    pub singular: bool,
    pub n_evaluations: usize,
    /// Seconds spent fitting from the loaded data (model frame to BLUPs; no file reading).
    pub fit_seconds: f64,
    pub dropped_columns: Vec<String>,
    pub warnings: Vec<String>,
}

impl LmmFit {
    /// The summary with fixed-effect tests by `method`.
    pub fn summary(&self, method: DfMethod) -> Result<FitSummary, LmmError> {
        let table: Vec<ContrastRow> = self.coef_table(method)?;
        let names = self.fixef_names();
        let fixed_effects = table
            .iter()
            .zip(names)
            .map(|(r, n)| FixedEffectRow {
                term: n.clone(),
                estimate: r.estimate,
                std_error: r.std_error,
                df: r.df.is_finite().then_some(r.df),
                statistic: r.statistic,
                p_value: r.p_value,
                conf_low: r.conf_low,
                conf_high: r.conf_high,
            })
            .collect();
        let mut random_effects = Vec::new();
        let mut correlations = Vec::new();
        for vc in self.varcorr() {
            for i in 0..vc.q {
                random_effects.push(RandomEffectRow {
                    group: vc.group.clone(),
                    term: vc.names[i].clone(),
                    variance: vc.cov[i * vc.q + i],
                    sd: vc.sd(i),
                });
            }
            for i in 0..vc.q {
                for j in i + 1..vc.q {
                    correlations.push(CorrelationRow {
                        group: vc.group.clone(),
                        term1: vc.names[i].clone(),
                        term2: vc.names[j].clone(),
                        corr: vc.corr(i, j),
                    });
                }
            }
        }
        random_effects.push(RandomEffectRow {
            group: "Residual".into(),
            term: String::new(),
            variance: self.sigma * self.sigma,
            sd: self.sigma,
        });
        let mut n_groups = serde_json::Map::new();
        for (g, k) in self.n_groups() {
            n_groups.insert(g, serde_json::Value::from(k));
        }
        let vc = match method {
            DfMethod::KenwardRoger => self.kenward_roger()?.phi_a.clone(),
            _ => self.vcov.clone(),
        };
        let p = self.n_fixef();
        let vcov = (0..p)
            .map(|i| (0..p).map(|j| vc[(i, j)]).collect())
            .collect();
        let mut warnings = self.warnings.clone();
        if method == DfMethod::Satterthwaite {
            if let Ok(s) = self.satterthwaite() {
                warnings.extend(s.warnings.iter().cloned());
            }
        }
        Ok(FitSummary {
            formula: self.frame.formula.source.clone(),
            reml: self.reml,
            n_obs: self.n_obs(),
            n_dropped: self.frame.n_dropped,
            n_groups,
            df_method: method,
            fixed_effects,
            random_effects,
            correlations,
            loglik: self.loglik(),
            reml_criterion: self.reml_criterion(),
            deviance: self.deviance(),
            aic: self.aic(),
            bic: self.bic(),
            loglik_df: self.n_params(),
            sigma: self.sigma,
            theta: self.theta.clone(),
            vcov,
            converged: self.converged,
            singular: self.singular,
            n_evaluations: self.n_evals,
            fit_seconds: self.fit_seconds,
            dropped_columns: self.frame.dropped_columns.clone(),
            warnings,
        })
    }
}

fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-4..1e6).contains(&a) {
        format!("{x:.3e}")
    } else {
        let digits = (4 - a.log10().floor() as i32).clamp(0, 8) as usize;
        format!("{x:.digits$}")
    }
}

fn fmt_p(p: f64) -> String {
    if p < 2e-16 {
        "< 2e-16".into()
    } else if p < 1e-4 {
        format!("{p:.2e}")
    } else {
        format!("{p:.6}")
    }
}

impl FitSummary {
    /// An lme4/lmerTest-like printed summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let method = if self.reml {
            "REML"
        } else {
            "maximum likelihood"
        };
        let _ = writeln!(s, "Linear mixed model fit by {method}");
        let df_name = match self.df_method {
            DfMethod::Satterthwaite => "t-tests use Satterthwaite's method",
            DfMethod::KenwardRoger => "t-tests use the Kenward-Roger method",
            DfMethod::Asymptotic => "z-tests (no df)",
        };
        let _ = writeln!(s, "  [{df_name}]");
        let _ = writeln!(s, "Formula: {}", self.formula);
        if self.n_dropped > 0 {
            let _ = writeln!(
                s,
                "  ({} observations deleted due to missingness)",
                self.n_dropped
            );
        }
        let _ = writeln!(s);
        if let Some(r) = self.reml_criterion {
            let _ = writeln!(s, "REML criterion at convergence: {:.4}", r);
        } else {
            let _ = writeln!(
                s,
                "     AIC      BIC   logLik deviance\n{:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                self.aic, self.bic, self.loglik, self.deviance
            );
        }
        let _ = writeln!(s, "\nRandom effects:");
        let _ = writeln!(
            s,
            " {:<12} {:<12} {:>12} {:>10}",
            "Groups", "Name", "Variance", "Std.Dev."
        );
        let mut last_group = String::new();
        for r in &self.random_effects {
            let g = if r.group == last_group { "" } else { &r.group };
            let corr: Vec<String> = self
                .correlations
                .iter()
                .filter(|c| c.group == r.group && c.term2 == r.term)
                .map(|c| format!("{:.2}", c.corr))
                .collect();
            let _ = writeln!(
                s,
                " {:<12} {:<12} {:>12} {:>10} {}",
                g,
                r.term,
                fmt_num(r.variance),
                fmt_num(r.sd),
                corr.join(" ")
            );
            last_group = r.group.clone();
        }
        let groups: Vec<String> = self
            .n_groups
            .iter()
            .map(|(k, v)| format!("{k}, {v}"))
            .collect();
        let _ = writeln!(
            s,
            "Number of obs: {}, groups:  {}",
            self.n_obs,
            groups.join("; ")
        );
        let _ = writeln!(s, "\nFixed effects:");
        let stat = if self.df_method == DfMethod::Asymptotic {
            "z value"
        } else {
            "t value"
        };
        let _ = writeln!(
            s,
            "{:<20} {:>12} {:>12} {:>10} {:>9} {:>10}",
            "", "Estimate", "Std. Error", "df", stat, "Pr(>|t|)"
        );
        for r in &self.fixed_effects {
            let _ = writeln!(
                s,
                "{:<20} {:>12} {:>12} {:>10} {:>9.3} {:>10}",
                r.term,
                fmt_num(r.estimate),
                fmt_num(r.std_error),
                r.df.map_or("Inf".to_string(), |d| format!("{d:.2}")),
                r.statistic,
                fmt_p(r.p_value)
            );
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(s);
            for w in &self.warnings {
                let _ = writeln!(s, "warning: {w}");
            }
        }
        s
    }
}
