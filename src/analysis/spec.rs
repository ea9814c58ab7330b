//! Analysis specifications: the TOML files under `analyses/` that say what `herstel run`
//! computes. Every key has a default, so a spec names only what differs from the Dutch
//! trial's statistical analysis plan (Roosenschoon et al. 2021, Front Psychiatry 12:723435).

use serde::{Deserialize, Serialize};

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
    }];
    for name in ["imrs_clinician", "mhrm", "bsi", "sfs", "honos"] {
        v.push(OutcomeSpec {
            name: name.into(),
            role: OutcomeRole::Secondary,
            label: None,
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

    /// The shipped Dutch-trial spec.
    pub fn imr_trial() -> Self {
        // The embedded spec is tested to parse (see tests); fall back to defaults regardless.
        Self::from_toml(IMR_TRIAL_SPEC, "analyses/imr-trial.toml").unwrap_or_default()
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
        let pp = &self.analysis_sets.per_protocol;
        if !(0.0..=1.0).contains(&pp.min_share) {
            return Err(bad(format!(
                "analysis_sets.per_protocol.min_share must lie in [0, 1], found {}",
                pp.min_share
            )));
        }
        if self.admissions.followup_days.is_some_and(|d| d <= 0) {
            return Err(bad("admissions.followup_days must be positive".into()));
        }
        Ok(())
    }

    /// The primary outcome's name (the first outcome marked primary, else the first).
    pub fn primary(&self) -> Option<&str> {
        self.outcomes
            .iter()
            .find(|o| o.role == OutcomeRole::Primary)
            .or(self.outcomes.first())
            .map(|o| o.name.as_str())
    }
}

/// One outcome to analyse: an instrument's total score from the scored table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutcomeSpec {
    /// Scored column (instrument name, or `<instrument>_<subscale>`).
    pub name: String,
    /// Primary or secondary (secondary outcomes share the multiplicity adjustment).
    #[serde(default)]
    pub role: OutcomeRole,
    /// Display label; defaults to the instrument's label.
    #[serde(default)]
    pub label: Option<String>,
}

/// Role of an outcome in the analysis plan.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeRole {
    Primary,
    #[default]
    Secondary,
}

/// Degrees-of-freedom method for t and F tests of fixed effects.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DfSpec {
    /// Satterthwaite (lmerTest's default).
    #[default]
    Satterthwaite,
    /// Kenward-Roger (pbkrtest).
    KenwardRoger,
}

/// The outcome model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// lme4 formula with `{outcome}` for the outcome column.
    #[serde(default = "default_formula")]
    pub formula: String,
    /// REML (default) or ML.
    #[serde(default = "default_true")]
    pub reml: bool,
    /// Denominator df method.
    #[serde(default)]
    pub df: DfSpec,
    /// Residual covariance of the waves within a participant, e.g. `us(wave | participant_id)`
    /// (also `cs`, `csh`, `ar1`, `ar1h`, `toep`; `, by = arm` for one per arm): an MMRM as
    /// nlme::gls / SAS `REPEATED`. Use it with a formula without random terms,
    /// `{outcome} ~ arm * wave`.
    #[serde(default)]
    pub residual: Option<String>,
    /// `ident(column)`: one residual variance per level of the column (nlme's varIdent).
    #[serde(default)]
    pub weights: Option<String>,
}

fn default_formula() -> String {
    "{outcome} ~ arm * wave + (1 | participant_id)".to_string()
}
fn default_true() -> bool {
    true
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            formula: default_formula(),
            reml: true,
            df: DfSpec::default(),
            residual: None,
            weights: None,
        }
    }
}

/// Analysis sets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSetsSpec {
    /// Intention to treat: everyone randomized, every observed assessment.
    #[serde(default = "default_true")]
    pub itt: bool,
    /// Per protocol ("completers").
    #[serde(default)]
    pub per_protocol: PerProtocolSpec,
}

impl Default for AnalysisSetsSpec {
    fn default() -> Self {
        AnalysisSetsSpec {
            itt: true,
            per_protocol: PerProtocolSpec::default(),
        }
    }
}

/// Completers: controls plus intervention participants who attended at least
/// `min_share` of `planned_sessions` (the Dutch trial: half of ~40).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PerProtocolSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_planned")]
    pub planned_sessions: u32,
    #[serde(default = "default_share")]
    pub min_share: f64,
}

fn default_planned() -> u32 {
    40
}
fn default_share() -> f64 {
    0.5
}

impl Default for PerProtocolSpec {
    fn default() -> Self {
        PerProtocolSpec {
            enabled: true,
            planned_sessions: default_planned(),
            min_share: default_share(),
        }
    }
}

/// Sensitivity models.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SensitivitySpec {
    /// Add a site random intercept `+ (1 | site_id)`.
    #[serde(default = "default_true")]
    pub site: bool,
    /// Add the training groups: partially nested `+ (0 + imr | group_id)` (controls as
    /// singleton groups; Bauer, Sterba & Hallfors 2008) in an individually randomized trial.
    #[serde(default = "default_true")]
    pub groups: bool,
    /// Add a random slope of time (months) when AIC prefers it.
    #[serde(default = "default_true")]
    pub random_slope: bool,
    /// Fidelity bands (group IMR Fidelity Scale), each band against control.
    #[serde(default)]
    pub fidelity: FidelitySpec,
}

impl Default for SensitivitySpec {
    fn default() -> Self {
        SensitivitySpec {
            site: true,
            groups: true,
            random_slope: true,
            fidelity: FidelitySpec::default(),
        }
    }
}

/// Fidelity bands: high >= `high`, moderate in [`moderate`, `high`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FidelitySpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_high")]
    pub high: f64,
    #[serde(default = "default_moderate")]
    pub moderate: f64,
}

fn default_high() -> f64 {
    4.0
}
fn default_moderate() -> f64 {
    3.0
}

impl Default for FidelitySpec {
    fn default() -> Self {
        FidelitySpec {
            enabled: true,
            high: default_high(),
            moderate: default_moderate(),
        }
    }
}

/// p-value adjustment across secondary outcomes (as R's `p.adjust`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MultiplicitySpec {
    #[serde(default)]
    pub method: PAdjustMethod,
}

impl Default for MultiplicitySpec {
    fn default() -> Self {
        MultiplicitySpec {
            method: PAdjustMethod::Holm,
        }
    }
}

/// Methods of R's `p.adjust`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PAdjustMethod {
    #[default]
    Holm,
    Hochberg,
    Bonferroni,
    /// Benjamini-Hochberg.
    Bh,
    None,
}

/// Admission analyses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdmissionsSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Follow-up window in days after randomization; default: to the last wave's nominal month.
    #[serde(default)]
    pub followup_days: Option<i32>,
    /// History window before randomization in days.
    #[serde(default = "default_prior")]
    pub prior_days: i32,
}

fn default_prior() -> i32 {
    365
}

impl Default for AdmissionsSpec {
    fn default() -> Self {
        AdmissionsSpec {
            enabled: true,
            followup_days: None,
            prior_days: default_prior(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
