//! Participant covariates in the outcome models: a `[model] formula` term that names a column
//! of participants.csv (`age`, `sex`, `diagnosis`, `team_id` or any further column the export
//! carries, e.g. `{outcome} ~ arm * wave + age + sex + (1 | participant_id)`) brings that
//! column into the modelling frame, numeric when every non-empty cell parses as a number,
//! else a factor with R-sorted levels (as `read.csv` types it). Rows with a missing covariate
//! leave the model as in lme4 (`na.omit`); `[covariates] missing = "impute"` imputes them
//! instead (`crate::analysis::covariate_mi`).
use std::collections::HashMap;

use super::OutcomeData;
use crate::formula::Formula;
use crate::frame::FrameError;
use crate::ingest::Trial;

/// The columns every outcome frame has ([`super::outcome_data`]); any other column a formula
/// names is a participant covariate.
pub const MODEL_COLUMNS: [&str; 8] = [
    "y",
    "participant_id",
    "arm",
    "wave",
    "site_id",
    "group_id",
    "imr",
    "months",
];

/// One participant covariate, one value per participant of the trial (`Trial::participants`
/// order).
#[derive(Debug, Clone, PartialEq)]
pub enum CovariateValues {
    Numeric(Vec<Option<f64>>),
    /// Text values; the levels are the observed values in R's order.
    Factor(Vec<Option<String>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Covariate {
    pub name: String,
    pub values: CovariateValues,
}

impl Covariate {
    /// Participants with a missing value.
    pub fn n_missing(&self) -> usize {
        match &self.values {
            CovariateValues::Numeric(v) => v.iter().filter(|x| x.is_none()).count(),
            CovariateValues::Factor(v) => v.iter().filter(|x| x.is_none()).count(),
        }
    }
    /// The value of participant `i` is missing.
    pub fn is_missing(&self, i: usize) -> bool {
        match &self.values {
            CovariateValues::Numeric(v) => v[i].is_none(),
            CovariateValues::Factor(v) => v[i].is_none(),
        }
    }
}

/// Why the formula's covariates cannot be brought into the frame.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CovariateError {
    #[error(
        "[model] formula names the column `{column}`, which is neither a model column ({}) nor a \
         participants.csv column; available covariates: {available}",
        MODEL_COLUMNS[1..].join(", ")
    )]
    Unknown { column: String, available: String },
    #[error("[model] formula: covariate `{0}` has no observed value in participants.csv")]
    AllMissing(String),
}

/// The participants.csv columns usable as covariates, in file order of the schema's optional
/// columns and then the export's further columns.
pub fn available(trial: &Trial) -> Vec<String> {
    let mut v: Vec<String> = ["age", "sex", "diagnosis", "team_id"]
        .iter()
        .filter(|n| column_text(trial, n).is_some_and(|c| c.iter().any(Option::is_some)))
        .map(|n| n.to_string())
        .collect();
    v.extend(trial.participant_extra.iter().map(|e| e.name.clone()));
    v
}

/// The text cells of a participants.csv column (empty or `NA` = missing).
fn column_text(trial: &Trial, name: &str) -> Option<Vec<Option<String>>> {
    let ps = &trial.participants;
    let cells: Vec<Option<String>> = match name {
        "age" => ps.iter().map(|p| p.age.map(|a| a.to_string())).collect(),
        "sex" => ps.iter().map(|p| p.sex.clone()).collect(),
        "diagnosis" => ps.iter().map(|p| p.diagnosis.clone()).collect(),
        "team_id" => ps.iter().map(|p| p.team.clone()).collect(),
        _ => trial
            .participant_extra
            .iter()
            .find(|e| e.name == name)?
            .values
            .clone(),
    };
    Some(
        cells
            .into_iter()
            .map(|c| c.filter(|s| !s.trim().is_empty() && s.trim() != "NA"))
            .collect(),
    )
}

/// The covariate `name` of the trial, typed: numeric when every non-empty cell parses.
pub fn covariate(trial: &Trial, name: &str) -> Option<Covariate> {
    let text = column_text(trial, name)?;
    let numbers: Option<Vec<Option<f64>>> = text
        .iter()
        .map(|c| match c {
            None => Some(None),
            Some(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Some),
        })
        .collect();
    let values = match numbers {
        Some(v) => CovariateValues::Numeric(v),
        None => CovariateValues::Factor(text),
    };
    Some(Covariate {
        name: name.to_string(),
        values,
    })
}

/// The covariates a formula names (every column that is not a model column), in order.
pub fn formula_covariates(formula: &Formula) -> Vec<String> {
    formula
        .columns()
        .into_iter()
        .filter(|c| !MODEL_COLUMNS.contains(&c.as_str()))
        .collect()
}

/// The formula's covariates from the trial; an error naming `[model] formula` for a column the
/// export does not have (with the available ones) or one without any observed value.
pub fn resolve(trial: &Trial, formula: &Formula) -> Result<Vec<Covariate>, CovariateError> {
    formula_covariates(formula)
        .into_iter()
        .map(|name| {
            let c = covariate(trial, &name).ok_or_else(|| CovariateError::Unknown {
                column: name.clone(),
                available: {
                    let a = available(trial);
                    if a.is_empty() {
                        "none".to_string()
                    } else {
                        a.join(", ")
                    }
                },
            })?;
            if c.n_missing() == trial.participants.len() {
                return Err(CovariateError::AllMissing(name));
            }
            Ok(c)
        })
        .collect()
}

/// Index of each participant id of the trial.
pub fn participant_index(trial: &Trial) -> HashMap<&str, usize> {
    trial
        .participants
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect()
}

impl OutcomeData {
    /// The frame with one column per covariate (the value of each row's participant);
    /// `values[c][i]` overrides covariate `c` of participant `i` when given (the completed
    /// data of one imputation).
    pub fn with_covariates(
        mut self,
        trial: &Trial,
        covariates: &[Covariate],
    ) -> Result<OutcomeData, FrameError> {
        let index = participant_index(trial);
        let who: Vec<Option<usize>> = match self.frame.column("participant_id") {
            Some(crate::frame::Column::Factor { codes, levels }) => codes
                .iter()
                .map(|c| c.and_then(|c| index.get(levels[c as usize].as_str()).copied()))
                .collect(),
            _ => return Err(FrameError::UnknownColumn("participant_id".into())),
        };
        for c in covariates {
            match &c.values {
                CovariateValues::Numeric(v) => {
                    let col = who.iter().map(|w| w.and_then(|i| v[i])).collect();
                    self.frame.push_numeric(&c.name, col)?;
                }
                CovariateValues::Factor(v) => {
                    let col = who.iter().map(|w| w.and_then(|i| v[i].clone())).collect();
                    self.frame.push_factor(&c.name, col, None)?;
                }
            }
            self.covariates.push(c.name.clone());
        }
        Ok(self)
    }
}

/// The exclusion-log lines of the participants whose covariates are missing: (participant id,
/// where, reason), one per participant, for `OUT/exclusions.csv`.
pub fn missing_log(trial: &Trial, covariates: &[Covariate]) -> Vec<(String, String, String)> {
    trial
        .participants
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let missing: Vec<&str> = covariates
                .iter()
                .filter(|c| c.is_missing(i))
                .map(|c| c.name.as_str())
                .collect();
            (!missing.is_empty()).then(|| {
                (
                    p.id.clone(),
                    format!("participants row {}", p.row),
                    format!(
                        "covariate {} missing: the participant's outcome rows are left out of the \
                         complete-case models",
                        missing.join(" and ")
                    ),
                )
            })
        })
        .collect()
}
