//! `[covariates]` of an analysis spec: what happens to missing values of the covariates a
//! `[model] formula` names.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::impute::Method;

/// `[covariates]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CovariatesSpec {
    /// `impute` (default): the outcome model is also fitted on `m` data sets completed by
    /// chained equations and pooled by Rubin's rules, beside the complete-case fit;
    /// `complete_case`: only the complete-case fit (lme4's `na.omit`).
    #[serde(default)]
    pub missing: CovariateMissing,
    /// Number of imputations.
    #[serde(default = "default_m")]
    pub m: usize,
    /// Sweeps of the chained equations per imputation (mice's `maxit`).
    #[serde(default = "default_iterations")]
    pub iterations: usize,
    /// Method per covariate (`pmm`, `logreg`, `polyreg`); default as mice: `pmm` for numeric,
    /// `logreg` for a factor with two levels, `polyreg` for more.
    #[serde(default)]
    pub method: BTreeMap<String, String>,
    /// Donors of predictive mean matching (mice's `donors`).
    #[serde(default = "default_donors")]
    pub donors: usize,
}

/// `[covariates] missing`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CovariateMissing {
    #[default]
    Impute,
    CompleteCase,
}

fn default_m() -> usize {
    20
}
fn default_iterations() -> usize {
    10
}
fn default_donors() -> usize {
    5
}

impl Default for CovariatesSpec {
    fn default() -> Self {
        CovariatesSpec {
            missing: CovariateMissing::default(),
            m: default_m(),
            iterations: default_iterations(),
            method: BTreeMap::new(),
            donors: default_donors(),
        }
    }
}

/// Parses a method name of `[covariates] method`.
pub fn parse_method(name: &str) -> Option<Method> {
    match name {
        "pmm" => Some(Method::Pmm),
        "logreg" => Some(Method::Logreg),
        "polyreg" => Some(Method::Polyreg),
        _ => None,
    }
}

impl CovariatesSpec {
    /// The checks that need no data: `m >= 2`, `iterations >= 1`, `donors >= 1`, known methods.
    pub fn validate(&self) -> Result<(), String> {
        if self.m < 2 {
            return Err(format!(
                "covariates.m = {}: multiple imputation needs at least 2 imputations",
                self.m
            ));
        }
        if self.iterations == 0 {
            return Err("covariates.iterations must be at least 1".into());
        }
        if self.donors == 0 {
            return Err("covariates.donors must be at least 1".into());
        }
        for (col, m) in &self.method {
            if parse_method(m).is_none() {
                return Err(format!(
                    "covariates.method.{col} = \"{m}\": unknown method (pmm, logreg, polyreg)"
                ));
            }
        }
        Ok(())
    }

    /// Every `method` key must be a covariate of the formula.
    pub fn validate_for(&self, covariates: &[String]) -> Result<(), String> {
        for col in self.method.keys() {
            if !covariates.contains(col) {
                return Err(format!(
                    "covariates.method.{col}: `{col}` is not a covariate of [model] formula (covariates: {})",
                    if covariates.is_empty() {
                        "none".to_string()
                    } else {
                        covariates.join(", ")
                    }
                ));
            }
        }
        Ok(())
    }
}

impl CovariatesSpec {
    /// Each method must fit its covariate: `logreg` a factor with two levels, `polyreg` a
    /// factor; `pmm` fits any (a factor is matched on its codes, as mice).
    pub fn validate_types(
        &self,
        covariates: &[crate::trial_data::covariates::Covariate],
    ) -> Result<(), String> {
        use crate::trial_data::covariates::CovariateValues;
        for c in covariates {
            let Some(m) = self.method.get(&c.name).and_then(|m| parse_method(m)) else {
                continue;
            };
            let levels = match &c.values {
                CovariateValues::Numeric(_) => None,
                CovariateValues::Factor(v) => {
                    let mut l: Vec<&String> = v.iter().flatten().collect();
                    l.sort();
                    l.dedup();
                    Some(l.len())
                }
            };
            let bad = match (m, levels) {
                (Method::Logreg | Method::Polyreg, None) => {
                    Some("a factor, and the column is numeric")
                }
                (Method::Logreg, Some(k)) if k != 2 => Some("a factor with two levels"),
                _ => None,
            };
            if let Some(needs) = bad {
                return Err(format!(
                    "covariates.method.{} = \"{}\": the method needs {needs}{}",
                    c.name,
                    m.name(),
                    match levels {
                        Some(k) => format!(" (`{}` has {k} levels)", c.name),
                        None => String::new(),
                    }
                ));
            }
        }
        Ok(())
    }
}
