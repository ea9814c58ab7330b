//! Analysis specifications: the TOML files under `analyses/` that say what `herstel run`
//! computes. Every key has a default, so a spec names only what differs from the Dutch
//! trial's statistical analysis plan (Roosenschoon et al. 2021, Front Psychiatry 12:723435).
//! An unknown key is an error naming its line.
use serde::{Deserialize, Serialize};

use crate::admissions::AdmissionsSpec;
use crate::analysis::spec::{
    AnalysisSetsSpec, ModelSpec, MultiplicitySpec, OutcomeRole, OutcomeSpec, OutcomesPlan,
    SensitivitySpec,
};
use crate::formula::Formula;

/// The shipped plan of the Dutch IMR trial, embedded so that `herstel run` works without files.
pub const IMR_TRIAL_SPEC: &str = include_str!("../../analyses/imr-trial.toml");

/// A whole analysis specification (`analyses/*.toml`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSpec {
    /// Title used in the report.
    #[serde(default = "default_title")]
    pub title: String,
    /// Outcomes in reporting order; the first with `role = "primary"` is the primary outcome.
    #[serde(default = "default_outcomes")]
    pub outcomes: Vec<OutcomeSpec>,
    /// The outcome model (formula template, REML/ML, df method).
    #[serde(default)]
    pub model: ModelSpec,
    /// Which analysis sets to analyse.
    #[serde(default)]
    pub analysis_sets: AnalysisSetsSpec,
    /// Sensitivity models fitted beside the primary model.
    #[serde(default)]
    pub sensitivity: SensitivitySpec,
    /// Adjustment of p-values across the secondary outcomes.
    #[serde(default)]
    pub multiplicity: MultiplicitySpec,
    /// Admission (count) analyses.
    #[serde(default)]
    pub admissions: AdmissionsSpec,
    /// The recovery-framework mediation analyses (`[mediation]`); absent = not run.
    #[serde(default)]
    pub mediation: Option<crate::mediation::MediationSpec>,
    /// Site comparison (`[sites]`); absent = not run.
    #[serde(default)]
    pub sites: Option<crate::sites::SitesSpec>,
    /// The estimand of the primary analysis (`[estimand]`); absent = no estimand table.
    #[serde(default)]
    pub estimand: Option<crate::missing::spec::EstimandSpec>,
    /// Missing-data sensitivity analyses of the primary outcome (`[sensitivity_missing]`):
    /// reference-based imputation and the tipping point; absent = not run.
    #[serde(default)]
    pub sensitivity_missing: Option<crate::missing::spec::SensitivityMissingSpec>,
    /// Missing values of the covariates `[model] formula` names (`[covariates]`): multiple
    /// imputation by chained equations (default) or complete cases.
    #[serde(default)]
    pub covariates: crate::analysis::covariate_mi::CovariatesSpec,
    /// Seed for everything random in the run (bootstrap, built-in simulated trial).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Confidence level of every interval.
    #[serde(default = "default_level")]
    pub conf_level: f64,
}

fn default_title() -> String {
    "IMR trial analysis".to_string()
}
fn default_seed() -> u64 {
    20240501
}
fn default_level() -> f64 {
    0.95
}
fn default_outcomes() -> Vec<OutcomeSpec> {
    let mut v = vec![OutcomeSpec {
        name: "imrs_client".into(),
        role: OutcomeRole::Primary,
        label: None,
        at_least: None,
    }];
    for name in ["imrs_clinician", "mhrm", "bsi", "sfs", "honos"] {
        v.push(OutcomeSpec {
            name: name.into(),
            role: OutcomeRole::Secondary,
            label: None,
            at_least: None,
        });
    }
    v
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        AnalysisSpec {
            title: default_title(),
            outcomes: default_outcomes(),
            model: ModelSpec::default(),
            analysis_sets: AnalysisSetsSpec::default(),
            sensitivity: SensitivitySpec::default(),
            multiplicity: MultiplicitySpec::default(),
            admissions: AdmissionsSpec::default(),
            mediation: None,
            sites: None,
            estimand: None,
            sensitivity_missing: None,
            covariates: Default::default(),
            seed: default_seed(),
            conf_level: default_level(),
        }
    }
}

/// Errors in reading a specification.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The TOML does not parse or does not fit the spec's shape.
    #[error("analysis spec {source_name}: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    /// The spec parses but says something impossible.
    #[error("analysis spec {source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
}

impl AnalysisSpec {
    /// Parses a spec from TOML text; `source_name` names the file in messages.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self, SpecError> {
        let spec: AnalysisSpec = toml::from_str(text).map_err(|e| SpecError::Parse {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        spec.check(source_name)?;
        Ok(spec)
    }

    fn check(&self, source_name: &str) -> Result<(), SpecError> {
        let bad = |m: String| SpecError::Invalid {
            source_name: source_name.to_string(),
            message: m,
        };
        if let Some(sites) = &self.sites {
            sites.validate().map_err(|e| bad(e.to_string()))?;
        }
        if !(self.conf_level > 0.0 && self.conf_level < 1.0) {
            return Err(bad(format!(
                "conf_level must lie between 0 and 1, found {}",
                self.conf_level
            )));
        }
        if self.outcomes.is_empty() {
            return Err(bad("no outcomes listed".into()));
        }
        if !self.model.formula.contains("{outcome}") {
            return Err(bad(format!(
                "model.formula must contain the placeholder {{outcome}}, found \"{}\"",
                self.model.formula
            )));
        }
        Formula::template(&self.model.formula, "y")
            .map_err(|e| bad(format!("model.formula: {e}")))?;
        self.covariates.validate().map_err(bad)?;
        let pp = &self.analysis_sets.per_protocol;
        if !(0.0..=1.0).contains(&pp.min_share) {
            return Err(bad(format!(
                "analysis_sets.per_protocol.min_share must lie in [0, 1], found {}",
                pp.min_share
            )));
        }
        self.sensitivity
            .fidelity
            .check()
            .map_err(|m| bad(format!("sensitivity.{m}")))?;
        if self.admissions.followup_days.is_some_and(|d| d <= 0) {
            return Err(bad("admissions.followup_days must be positive".into()));
        }
        if let Some(m) = &self.sensitivity_missing {
            m.validate().map_err(bad)?;
        }
        let listed = |o: &str| self.outcomes.iter().any(|x| x.name == o);
        let named = [
            (
                "estimand.outcome",
                self.estimand.as_ref().and_then(|e| e.outcome.as_deref()),
            ),
            (
                "sensitivity_missing.outcome",
                self.sensitivity_missing
                    .as_ref()
                    .and_then(|e| e.outcome.as_deref()),
            ),
        ];
        for (key, o) in named {
            if let Some(o) = o.filter(|o| !listed(o)) {
                return Err(bad(format!(
                    "{key} = \"{o}\": not among the outcomes ({})",
                    self.outcomes
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The checks of the spec against the trial it is run on (arms and waves of study.toml):
    /// `sensitivity_missing.reference_arm`, `.delta.arms`, `.delta.fixed`, `.delta.ranges`,
    /// `.delta.wave`, `.ice.column` (the column exists, every value is a date), `estimand.wave`.
    pub fn check_for_trial(
        &self,
        trial: &crate::ingest::Trial,
        source_name: &str,
    ) -> Result<(), SpecError> {
        let bad = |m: String| SpecError::Invalid {
            source_name: source_name.to_string(),
            message: m,
        };
        let waves: Vec<String> = trial
            .study
            .waves
            .iter()
            .skip(1)
            .map(|w| w.label.clone())
            .collect();
        if let Some(w) = self.estimand.as_ref().and_then(|e| e.wave.as_ref()) {
            if !waves.contains(w) {
                return Err(bad(format!(
                    "estimand.wave = \"{w}\": not a follow-up wave (waves: {})",
                    waves.join(", ")
                )));
            }
        }
        if let Some(m) = &self.sensitivity_missing {
            m.validate_for(&trial.study.arms, &waves).map_err(bad)?;
            if let (true, Some(c)) = (m.enabled, m.ice.column()) {
                crate::missing::trial::ice_from_dates(trial, c).map_err(|e| bad(e.to_string()))?;
            }
        }
        let formula = Formula::template(&self.model.formula, "y")
            .map_err(|e| bad(format!("model.formula: {e}")))?;
        let covariates = crate::trial_data::covariates::resolve(trial, &formula)
            .map_err(|e| bad(e.to_string()))?;
        self.covariates.validate_types(&covariates).map_err(bad)?;
        self.covariates
            .validate_for(&crate::trial_data::covariates::formula_covariates(&formula))
            .map_err(bad)?;
        Ok(())
    }

    /// The outcome of the estimand and of the missing-data analyses: `estimand.outcome`, else
    /// the primary outcome.
    pub fn estimand_outcome(&self) -> Option<&str> {
        self.estimand
            .as_ref()
            .and_then(|e| e.outcome.as_deref())
            .or_else(|| self.primary())
    }

    /// The primary outcome's name (the first outcome marked primary, else the first).
    pub fn primary(&self) -> Option<&str> {
        self.outcomes_plan().primary()
    }

    /// The part of the spec the trial-outcome analysis reads.
    pub fn outcomes_plan(&self) -> OutcomesPlan<'_> {
        OutcomesPlan {
            outcomes: &self.outcomes,
            model: &self.model,
            analysis_sets: &self.analysis_sets,
            sensitivity: &self.sensitivity,
            multiplicity: &self.multiplicity,
            conf_level: self.conf_level,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::spec::PAdjustMethod;

    #[test]
    fn shipped_spec_parses_and_matches_the_plan() {
        let spec = AnalysisSpec::from_toml(IMR_TRIAL_SPEC, "imr-trial.toml").unwrap();
        assert_eq!(spec.primary(), Some("imrs_client"));
        assert!(spec.outcomes.iter().any(|o| o.name == "mhrm"));
        assert_eq!(spec.multiplicity.method, PAdjustMethod::Holm);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = AnalysisSpec::from_toml("titel = \"x\"", "a.toml").unwrap_err();
        assert!(err.to_string().contains("titel"), "{err}");
    }

    #[test]
    fn formula_without_placeholder_is_rejected() {
        let err = AnalysisSpec::from_toml("[model]\nformula = \"y ~ arm\"", "a.toml").unwrap_err();
        assert!(err.to_string().contains("{outcome}"), "{err}");
    }
}
