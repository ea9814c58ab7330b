//! The parts of an analysis spec that the trial-outcome analysis reads: outcomes, the model,
//! analysis sets, sensitivity models and multiplicity (the whole spec, with every key and its
//! default, is `pipeline::spec::AnalysisSpec`).

pub use crate::lmm::DfSpec;
use serde::{Deserialize, Serialize};

pub use crate::trial_data::FidelityBands;

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
    /// A binary outcome from the score: 1 when the score is at least this value, else 0
    /// (missing stays missing); for `[model] family = "binomial"`.
    #[serde(default)]
    pub at_least: Option<f64>,
}

/// Role of an outcome in the analysis plan.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeRole {
    Primary,
    #[default]
    Secondary,
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
    /// `gaussian` (the LMM, default), or a GLMM with the participant random intercept:
    /// `binomial` (logit; 0/1 outcomes, e.g. from `at_least`), `poisson` or
    /// `negative_binomial` (counts), fitted by Laplace (or `nagq` quadrature points) with
    /// marginal means on the response scale and odds or rate ratios per wave.
    #[serde(default)]
    pub family: ModelFamily,
    /// Quadrature points of a GLMM (1 = Laplace, as glmer's default; up to 25).
    #[serde(default = "default_nagq")]
    pub nagq: usize,
}

fn default_nagq() -> usize {
    1
}

/// The outcome model's family (`[model] family`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    /// The linear mixed model (or MMRM).
    #[default]
    Gaussian,
    /// Logistic GLMM (binomial, logit link).
    Binomial,
    /// Poisson GLMM (log link).
    Poisson,
    /// Negative-binomial GLMM (NB2, log link, theta estimated).
    NegativeBinomial,
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
            family: ModelFamily::default(),
            nagq: default_nagq(),
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
    pub fidelity: FidelityBands,
}

impl Default for SensitivitySpec {
    fn default() -> Self {
        SensitivitySpec {
            site: true,
            groups: true,
            random_slope: true,
            fidelity: FidelityBands::default(),
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

/// The outcome analysis's view of a spec: what Table 1, CONSORT, the study description and the
/// outcome models read.
#[derive(Debug, Clone, Copy)]
pub struct OutcomesPlan<'a> {
    pub outcomes: &'a [OutcomeSpec],
    pub model: &'a ModelSpec,
    pub analysis_sets: &'a AnalysisSetsSpec,
    pub sensitivity: &'a SensitivitySpec,
    pub multiplicity: &'a MultiplicitySpec,
    pub conf_level: f64,
}

impl<'a> OutcomesPlan<'a> {
    /// The primary outcome's name (the first outcome marked primary, else the first).
    pub fn primary(&self) -> Option<&'a str> {
        self.outcomes
            .iter()
            .find(|o| o.role == OutcomeRole::Primary)
            .or(self.outcomes.first())
            .map(|o| o.name.as_str())
    }
}
