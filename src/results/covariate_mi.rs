//! Results of the multiple imputation of missing covariates (`[covariates] missing =
//! "impute"`): per outcome the imputation model and the outcome model's fixed effects and arm
//! contrasts pooled by Rubin's rules, with the columns of `mice::pool` (`ubar`, `b`, `t`,
//! `dfcom`, `df`, `riv`, `lambda`, `fmi`).
use serde::{Deserialize, Serialize};

/// One outcome's covariate MI, beside its primary (complete-case) analysis.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CovariateMi {
    pub outcome: String,
    pub analysis_set: String,
    /// The analysis model (as the primary analysis of the outcome).
    pub model: String,
    /// Number of imputations.
    pub m: usize,
    /// Sweeps of the chained equations per imputation.
    pub iterations: usize,
    pub seed: u64,
    /// Variables of the imputation model (the wide, one-row-per-participant data set), in
    /// visiting order: every variable predicts every other.
    pub imputation_model: Vec<ImputedVariable>,
    /// Participants in the imputation model.
    pub n_participants_imputation: u64,
    /// Participants and observations of each analysis fit (the observed outcome rows).
    pub n_participants: u64,
    pub n_observations: u64,
    /// Participants the complete-case analysis leaves out for a missing covariate.
    pub n_participants_complete_case_dropped: u64,
    /// How the complete-data df of each term was chosen.
    pub df_com_rule: String,
    pub fixed_effects: Vec<PooledTerm>,
    /// Intervention minus control at each follow-up wave (emmeans contrasts), pooled.
    pub contrasts: Vec<PooledTerm>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One variable of the imputation model.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImputedVariable {
    pub variable: String,
    /// `covariate`, `arm` or `outcome` (the outcome at one wave: imputed within the chained
    /// equations, its imputations not used by the analysis).
    pub role: String,
    /// `pmm`, `logreg`, `polyreg`, or empty when complete.
    pub method: String,
    /// Participants with the value missing (imputed).
    pub n_missing: u64,
    /// Rows of the analysis (participant x wave observations) that carry an imputed value.
    pub n_rows_imputed: u64,
}

/// A term pooled over the imputations, as a row of `summary(mice::pool(fits))` plus the
/// `mice::pool` columns.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PooledTerm {
    /// R's coefficient name (`armIMR:waveT2`) or the contrast (`IMR - TAU`).
    pub term: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<String>,
    pub estimate: f64,
    pub std_error: f64,
    pub statistic: f64,
    pub df: f64,
    pub p_value: f64,
    pub conf_low: f64,
    pub conf_high: f64,
    /// Mean within-imputation variance.
    pub ubar: f64,
    /// Between-imputation variance.
    pub b: f64,
    /// Total variance `ubar + (1 + 1/m) b`.
    pub t: f64,
    /// Complete-data df (the mean Satterthwaite df of the fits).
    pub dfcom: f64,
    /// Relative increase in variance due to nonresponse.
    pub riv: f64,
    /// Proportion of the variance due to nonresponse.
    pub lambda: f64,
    /// Fraction of missing information.
    pub fmi: f64,
}
