//! Missing data and estimands (issue 17): MAR and reference-based imputation of the follow-up
//! waves after an intercurrent event (dropout), with the conditional mean method and jackknife
//! inference, delta adjustment and the tipping point.
//!
//! * [`model`]: the imputation model, an MMRM `y ~ baseline + arm * wave` (any right-hand side
//!   in R syntax) with an unstructured covariance of the follow-up waves common to both arms
//!   (rbmi's `same_cov = TRUE`), REML, fitted by [`crate::mmrm`] (nlme's `gls` with `corSymm` +
//!   `varIdent`); the own-arm and reference-arm means of every participant and wave.
//! * [`impute`]: the strategies MAR, J2R, CR, CIR (Carpenter, Roger & Kenward 2013, J Biopharm
//!   Stat 23:1352, section 4.3; rbmi `R/strategies.R`) and the conditional mean
//!   `y_m = mu~_m + Sigma_mo Sigma_oo^-1 (y_o - mu~_o)` (Wolbers et al. 2022, Pharm Stat
//!   21:1246, "Standard and reference-based conditional mean imputation").
//! * [`ancova`]: the analysis per wave, `lm(y ~ arm + baseline)` on the completed data (rbmi's
//!   `ancova`), and its linear response to a delta shift.
//! * [`jackknife`]: leave-one-out refits (parallel, warm-started), rbmi's
//!   `pool_internal.jackknife` (SE = sqrt((n - 1) / n sum (theta_-i - mean)^2), normal
//!   quantiles, CI centred on the full-data estimate), the delta grid and the tipping point.
//! * [`trial`]: the trial pipeline's entry: the primary outcome of a scored trial, the spec
//!   `[sensitivity_missing]` and `[estimand]` ([`spec`]); the intercurrent event from the last
//!   observed wave or from a participants.csv date column ([`trial::ice_from_dates`]: waves
//!   dated after the ICE are post-ICE; observed post-ICE values are kept under MAR and set
//!   aside under J2R, CR, CIR and delta adjustment, as rbmi, see [`analyse_condmean`]).
//!
//! Delta adjustment per arm: a multiplier of delta per arm, fixed deltas per arm, or a
//! two-dimensional grid over both arms' deltas (every estimate is linear in each arm's delta,
//! so each grid costs one regression of the shift indicator per arm and jackknife sample).
//!
//! Reproduces `tests/r/missing_reference.R` (written from the formulas, see
//! `tests/fixtures/missing/README.md`) to 1e-6.
pub mod ancova;
pub mod impute;
pub mod jackknife;
pub mod mi;
pub mod model;
pub mod spec;
pub mod trial;

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use jackknife::{analyse_condmean, CondMeanOptions, CondMeanOutput};
pub use model::ImputationModel;

/// Errors of the missing-data analyses.
#[derive(Debug, Error)]
pub enum MissingError {
    #[error("missing-data analysis: {0}")]
    Data(String),
    #[error("imputation model `{formula}`: {source}")]
    Model {
        formula: String,
        #[source]
        source: crate::mmrm::MmrmError,
    },
    #[error(
        "imputation model `{formula}` without participant {participant} (jackknife): {source}"
    )]
    Jackknife {
        formula: String,
        participant: String,
        #[source]
        source: crate::mmrm::MmrmError,
    },
    #[error("imputation model `{formula}`: {message}")]
    Design { formula: String, message: String },
    #[error("analysis of the completed data at wave {wave}: {message}")]
    Ancova { wave: String, message: String },
}

/// An imputation strategy for the values at and after a participant's intercurrent event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// Missing at random: the participant's own arm (the hypothetical estimand of the MMRM).
    #[serde(rename = "MAR")]
    Mar,
    /// Jump to reference: the reference arm's mean from the ICE on (rbmi `JR`).
    #[serde(rename = "J2R", alias = "JR")]
    J2r,
    /// Copy reference: the reference arm's mean at every wave (rbmi `CR`).
    #[serde(rename = "CR")]
    Cr,
    /// Copy increments in reference: the own mean at the last wave before the ICE plus the
    /// reference arm's increments after it (rbmi `CIR`).
    #[serde(rename = "CIR")]
    Cir,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [Strategy::Mar, Strategy::J2r, Strategy::Cr, Strategy::Cir];

    /// The name as reported (`MAR`, `J2R`, `CR`, `CIR`).
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Mar => "MAR",
            Strategy::J2r => "J2R",
            Strategy::Cr => "CR",
            Strategy::Cir => "CIR",
        }
    }

    /// Parses `MAR`, `J2R` (or rbmi's `JR`), `CR`, `CIR` (case-insensitive).
    pub fn parse(s: &str) -> Option<Strategy> {
        match s.trim().to_ascii_uppercase().as_str() {
            "MAR" => Some(Strategy::Mar),
            "J2R" | "JR" => Some(Strategy::J2r),
            "CR" => Some(Strategy::Cr),
            "CIR" => Some(Strategy::Cir),
            _ => None,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of a trial in wide form: one row per participant, the follow-up waves as
/// columns, the baseline value as a covariate.
#[derive(Debug, Clone, PartialEq)]
pub struct WideData {
    pub ids: Vec<String>,
    /// Arm levels in factor order (the first is R's reference level of `arm`).
    pub arms: Vec<String>,
    /// Arm of each participant (index into `arms`).
    pub arm: Vec<usize>,
    /// Follow-up waves in order.
    pub waves: Vec<String>,
    pub baseline: Vec<f64>,
    /// `y[i][w]`, `None` = missing.
    pub y: Vec<Vec<Option<f64>>>,
}

impl WideData {
    /// Checks the shape: equal lengths, finite baselines and values, arms in range.
    pub fn check(&self) -> Result<(), MissingError> {
        let n = self.ids.len();
        let bad = |m: String| Err(MissingError::Data(m));
        if self.arm.len() != n || self.baseline.len() != n || self.y.len() != n {
            return bad("ids, arm, baseline and y differ in length".into());
        }
        if n == 0 {
            return bad("no participants".into());
        }
        if self.waves.is_empty() {
            return bad("no follow-up waves".into());
        }
        for i in 0..n {
            if self.arm[i] >= self.arms.len() {
                return bad(format!("participant {}: arm out of range", self.ids[i]));
            }
            if !self.baseline[i].is_finite() {
                return bad(format!(
                    "participant {}: the baseline value is missing or not finite",
                    self.ids[i]
                ));
            }
            if self.y[i].len() != self.waves.len() {
                return bad(format!(
                    "participant {}: {} values for {} waves",
                    self.ids[i],
                    self.y[i].len(),
                    self.waves.len()
                ));
            }
            if self.y[i].iter().flatten().any(|v| !v.is_finite()) {
                return bad(format!(
                    "participant {}: a value is not finite",
                    self.ids[i]
                ));
            }
        }
        for (a, name) in self.arms.iter().enumerate() {
            let k = self.arm.iter().filter(|&&x| x == a).count();
            if k < 2 {
                return bad(format!(
                    "arm {name} has {k} participant(s) with a baseline value (at least 2 needed)"
                ));
            }
        }
        Ok(())
    }

    /// The intercurrent event by the last observed wave (the default ICE definition): the
    /// first wave after the last observed value, `Some(0)` without any observed follow-up,
    /// `None` (no ICE) when the last wave is observed. Missing values before it are
    /// intermittent (MAR).
    pub fn ice_last_observed(&self) -> Vec<Option<usize>> {
        let j = self.waves.len();
        self.y
            .iter()
            .map(|row| {
                let last = row.iter().rposition(Option::is_some);
                match last {
                    Some(l) if l + 1 == j => None,
                    Some(l) => Some(l + 1),
                    None => Some(0),
                }
            })
            .collect()
    }
}
