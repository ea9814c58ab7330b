//! The `[mediation]` table of an analysis spec: which scores play X, the mediators
//! and Y, which waves, and how many resamples and draws. Every key has a default, so an empty
//! `[mediation]` table runs the thesis analysis (Roosenschoon et al. 2024, PLoS ONE,
//! doi 10.1371/journal.pone.0313202) and its multi-wave and treatment-level extensions.
use serde::{Deserialize, Serialize};

use super::MediationError;

/// Which analyses to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisKind {
    /// Change scores last wave minus baseline, three `lm` regressions (the published analysis).
    ChangeScores,
    /// All waves, person-mean centring, one random-intercept model per path.
    WithinPerson,
    /// Arm -> change in the mediator to the end of treatment -> change in the outcome.
    Treatment,
}

impl AnalysisKind {
    /// The name used in results (`change_scores`, `within_person`, `treatment`).
    pub fn name(self) -> &'static str {
        match self {
            AnalysisKind::ChangeScores => "change_scores",
            AnalysisKind::WithinPerson => "within_person",
            AnalysisKind::Treatment => "treatment",
        }
    }
}

/// The mediation spec (`[mediation]` in an analysis spec TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediationSpec {
    /// Analyses to run, in output order.
    pub analyses: Vec<AnalysisKind>,
    /// Predictor X (a score column), default `imrs_client` (self-management).
    pub x: String,
    /// Mediators in order (`a1`/`b1` refer to the first), default `["bsi", "sfs"]` (clinical
    /// and functional recovery).
    pub mediators: Vec<String>,
    /// Outcome Y, default `mhrm` (personal recovery).
    pub y: String,
    /// Baseline wave of the change scores; default the study's first wave.
    pub baseline_wave: Option<String>,
    /// Last wave of the change scores; default the study's last wave.
    pub last_wave: Option<String>,
    /// Participant-bootstrap resamples for the change-score and treatment analyses.
    pub bootstrap_resamples: usize,
    /// Participant-bootstrap resamples for the within-person analysis (each one refits the a
    /// and b path models, warm-started from the full-data fits; 0 = no bootstrap interval).
    pub within_bootstrap_resamples: usize,
    /// Monte Carlo draws for the indirect-effect intervals (Preacher & Selig 2012).
    pub monte_carlo_draws: usize,
    /// Confidence level of every interval.
    pub conf_level: f64,
    /// Warn that the proportion mediated is unstable when |total c| / SE(c) is below this.
    pub proportion_min_z: f64,
    /// Within-person: also fit random slopes of the a and b paths, one stacked M and Y model
    /// per mediator with a residual variance per equation, and report the average indirect
    /// effect `a b + cov(a_j, b_j)` (Bauer, Preacher & Gil 2006) as the analysis
    /// `within_person_random_slopes`.
    pub random_slopes: bool,
    /// Treatment-level analysis settings.
    pub treatment: TreatmentSpec,
}

/// Treatment-level mediation: arm -> change in `mediator` from baseline to
/// `end_of_treatment_wave` -> change in `outcome` from baseline to `last_wave`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TreatmentSpec {
    /// Mediator score, default `imrs_client`.
    pub mediator: String,
    /// Outcome score, default `mhrm`.
    pub outcome: String,
    /// End of treatment; default the study's second wave.
    pub end_of_treatment_wave: Option<String>,
    /// Wave of the outcome change; default the study's last wave.
    pub last_wave: Option<String>,
}

impl Default for TreatmentSpec {
    fn default() -> Self {
        TreatmentSpec {
            mediator: "imrs_client".into(),
            outcome: "mhrm".into(),
            end_of_treatment_wave: None,
            last_wave: None,
        }
    }
}

impl Default for MediationSpec {
    fn default() -> Self {
        MediationSpec {
            analyses: vec![
                AnalysisKind::ChangeScores,
                AnalysisKind::WithinPerson,
                AnalysisKind::Treatment,
            ],
            x: "imrs_client".into(),
            mediators: vec!["bsi".into(), "sfs".into()],
            y: "mhrm".into(),
            baseline_wave: None,
            last_wave: None,
            bootstrap_resamples: 5000,
            within_bootstrap_resamples: 5000,
            monte_carlo_draws: 100_000,
            conf_level: 0.95,
            proportion_min_z: 2.0,
            random_slopes: false,
            treatment: TreatmentSpec::default(),
        }
    }
}

impl MediationSpec {
    /// Checks values serde cannot (levels, counts, names).
    pub fn validate(&self) -> Result<(), MediationError> {
        if !(self.conf_level > 0.0 && self.conf_level < 1.0) {
            return Err(MediationError::Spec(format!(
                "mediation.conf_level must be between 0 and 1, got {}",
                self.conf_level
            )));
        }
        if self.mediators.is_empty() {
            return Err(MediationError::Spec(
                "mediation.mediators needs at least one score".into(),
            ));
        }
        let mut names = vec![self.x.as_str(), self.y.as_str()];
        names.extend(self.mediators.iter().map(String::as_str));
        for (i, a) in names.iter().enumerate() {
            if a.trim().is_empty() {
                return Err(MediationError::Spec(
                    "mediation: an empty score name".into(),
                ));
            }
            if names.iter().skip(i + 1).any(|b| b == a) {
                return Err(MediationError::Spec(format!(
                    "mediation: score `{a}` plays two roles (x, mediators and y must differ)"
                )));
            }
        }
        if self.treatment.mediator == self.treatment.outcome {
            return Err(MediationError::Spec(
                "mediation.treatment: mediator and outcome must differ".into(),
            ));
        }
        if self.monte_carlo_draws == 1 || self.bootstrap_resamples == 1 {
            return Err(MediationError::Spec(
                "mediation: use 0 (off) or at least 2 resamples/draws".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_gives_defaults_and_unknown_keys_fail() {
        let s: MediationSpec = toml::from_str("").unwrap();
        assert_eq!(s, MediationSpec::default());
        assert!(toml::from_str::<MediationSpec>("bootstrap = 5").is_err());
        let s: MediationSpec =
            toml::from_str("mediators = [\"bsi\"]\n[treatment]\nmediator = \"honos\"").unwrap();
        assert_eq!(s.mediators, vec!["bsi".to_string()]);
        assert_eq!(s.treatment.mediator, "honos");
        assert!(s.validate().is_ok());
        let bad = MediationSpec {
            y: "bsi".into(),
            ..MediationSpec::default()
        };
        assert!(bad.validate().is_err());
    }
}
