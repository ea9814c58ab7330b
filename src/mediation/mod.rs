//! The recovery framework: self-management (IMRS client) -> clinical (BSI) and
//! functional (SFS) recovery -> personal recovery (MHRM), three ways:
//!
//! * [`change_scores`]: the published analysis (Roosenschoon, Deen, van Weeghel, Kamperman &
//!   Mulder 2024, PLoS ONE, doi 10.1371/journal.pone.0313202): change scores last wave minus
//!   baseline, three `lm` regressions with every baseline level as covariate, pooled over arms.
//! * [`within`]: the multi-wave extension: person-mean centring (Zhang, Zyphur & Preacher 2009,
//!   Organ Res Methods 12) and one random-intercept model per path (lme4/lmerTest).
//! * [`treatment`]: arm -> change in self-management to the end of treatment -> change in
//!   personal recovery to the last wave.
//!
//! Indirect effects get Sobel SEs, Monte Carlo intervals (Preacher & Selig 2012) and
//! participant-bootstrap percentile intervals ([`indirect`]). Entry points: [`analyse`] (from a
//! scored trial) and [`analyse_long`] (from a plain long table, e.g. a CSV).
#![allow(clippy::needless_range_loop)] // index loops over paired matrix/vector entries
pub mod change_scores;
pub mod indirect;
pub mod ols;
pub mod ri;
pub mod spec;
pub mod stacked;
pub mod treatment;
pub mod within;

use std::collections::HashMap;

use thiserror::Error;

use crate::ingest::Trial;
use crate::progress::ProgressSink;
use crate::results::{MediationResult, PathRow};
use crate::scoring::Scored;

pub use spec::{AnalysisKind, MediationSpec, TreatmentSpec};

/// Errors of the mediation analyses; each names the analysis and what to change.
#[derive(Debug, Error)]
pub enum MediationError {
    #[error("mediation spec: {0}")]
    Spec(String),
    #[error("mediation ({analysis}): score `{score}` is not in the scored data (available: {available})")]
    MissingScore {
        analysis: String,
        score: String,
        available: String,
    },
    #[error("mediation ({analysis}): wave `{wave}` is not a study wave (waves: {waves})")]
    UnknownWave {
        analysis: String,
        wave: String,
        waves: String,
    },
    #[error("mediation ({analysis}): {message}")]
    Data { analysis: String, message: String },
    #[error("mediation ({analysis}): {n_used} complete participants, too few for model `{model}` ({needed} needed)")]
    TooFew {
        analysis: String,
        model: String,
        n_used: usize,
        needed: usize,
    },
    #[error("mediation ({analysis}): in model `{model}` column `{column}` is a linear combination of the others; check the data or drop a covariate")]
    Collinear {
        analysis: String,
        model: String,
        column: String,
    },
    #[error("mediation ({analysis}): fitting `{formula}`: {source}")]
    Lmm {
        analysis: String,
        formula: String,
        #[source]
        source: crate::lmm::LmmError,
    },
    #[error("mediation ({analysis}): building the model data: {source}")]
    Frame {
        analysis: String,
        #[source]
        source: crate::frame::FrameError,
    },
}

impl MediationError {
    /// The error of a failed least-squares regression `model` of `analysis`.
    pub(crate) fn least_squares(
        analysis: &str,
        model: String,
        e: crate::stats::linalg::LinalgError,
    ) -> MediationError {
        use crate::stats::linalg::LinalgError;
        match e {
            LinalgError::Collinear { name } => MediationError::Collinear {
                analysis: analysis.into(),
                model,
                column: name,
            },
            LinalgError::TooFewRows { n, p } => MediationError::TooFew {
                analysis: analysis.into(),
                model,
                n_used: n,
                needed: p + 1,
            },
            LinalgError::NotPositiveDefinite { .. } => MediationError::Data {
                analysis: analysis.into(),
                message: format!("model `{model}`: {e}"),
            },
        }
    }
}

/// A long table for mediation: one row per participant x wave, any row order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LongData {
    /// Participant id per row.
    pub participant: Vec<String>,
    /// Wave label per row.
    pub wave: Vec<String>,
    /// Arm label per row (constant within a participant).
    pub arm: Vec<String>,
    /// Waves in study order (first = baseline).
    pub wave_levels: Vec<String>,
    /// Arms in study order (first = reference/control).
    pub arm_levels: Vec<String>,
    /// The arm that receives the intervention (default: the second arm).
    pub intervention_arm: Option<String>,
    /// Score columns aligned with the rows.
    pub scores: Vec<(String, Vec<Option<f64>>)>,
}

impl LongData {
    /// The long table of a scored trial.
    pub fn from_scored(trial: &Trial, scored: &Scored) -> LongData {
        let n = scored.n_rows();
        LongData {
            participant: (0..n)
                .map(|i| scored.participant_id(i).to_string())
                .collect(),
            wave: (0..n).map(|i| scored.wave_label(i).to_string()).collect(),
            arm: (0..n).map(|i| scored.arm_label(i).to_string()).collect(),
            wave_levels: scored.wave_levels().to_vec(),
            arm_levels: scored.arm_levels().to_vec(),
            intervention_arm: trial.study.arms.get(trial.study.intervention).cloned(),
            scores: scored
                .columns()
                .iter()
                .map(|c| (c.name.clone(), c.values.clone()))
                .collect(),
        }
    }
}

/// The participant x wave grid: every participant (first-appearance order) at every wave;
/// scores are stored participant-major (`p * n_waves + w`).
#[derive(Debug, Clone)]
pub struct Panel {
    pub ids: Vec<String>,
    /// Arm label per participant.
    pub arms: Vec<String>,
    pub waves: Vec<String>,
    pub arm_levels: Vec<String>,
    pub intervention_arm: Option<String>,
    values: HashMap<String, Vec<Option<f64>>>,
    score_names: Vec<String>,
}

impl Panel {
    pub fn new(data: &LongData, analysis: &str) -> Result<Panel, MediationError> {
        let n = data.participant.len();
        let data_err = |message: String| MediationError::Data {
            analysis: analysis.to_string(),
            message,
        };
        if data.wave.len() != n || (!data.arm.is_empty() && data.arm.len() != n) {
            return Err(data_err(
                "participant, wave and arm columns differ in length".into(),
            ));
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut ids = Vec::new();
        let mut arms = Vec::new();
        let mut row_pid = Vec::with_capacity(n);
        for i in 0..n {
            let id = data.participant[i].as_str();
            let p = *index.entry(id).or_insert_with(|| {
                ids.push(id.to_string());
                arms.push(data.arm.get(i).cloned().unwrap_or_default());
                ids.len() - 1
            });
            row_pid.push(p);
        }
        let nw = data.wave_levels.len();
        let mut row_cell = Vec::with_capacity(n);
        let mut seen = vec![false; ids.len() * nw];
        for i in 0..n {
            let w = data
                .wave_levels
                .iter()
                .position(|l| *l == data.wave[i])
                .ok_or_else(|| {
                    data_err(format!(
                        "row {}: wave `{}` is not among the study waves {:?}",
                        i + 1,
                        data.wave[i],
                        data.wave_levels
                    ))
                })?;
            let cell = row_pid[i] * nw + w;
            if std::mem::replace(&mut seen[cell], true) {
                return Err(data_err(format!(
                    "participant `{}` has two rows for wave `{}`",
                    data.participant[i], data.wave[i]
                )));
            }
            row_cell.push(cell);
        }
        let mut values = HashMap::new();
        let mut score_names = Vec::new();
        for (name, col) in &data.scores {
            if col.len() != n {
                return Err(data_err(format!(
                    "score column `{name}` has {} rows, the table {n}",
                    col.len()
                )));
            }
            let mut grid = vec![None; ids.len() * nw];
            for (i, v) in col.iter().enumerate() {
                grid[row_cell[i]] = v.filter(|x| x.is_finite());
            }
            values.insert(name.clone(), grid);
            score_names.push(name.clone());
        }
        Ok(Panel {
            ids,
            arms,
            waves: data.wave_levels.clone(),
            arm_levels: data.arm_levels.clone(),
            intervention_arm: data.intervention_arm.clone(),
            values,
            score_names,
        })
    }

    pub fn n(&self) -> usize {
        self.ids.len()
    }

    /// The grid column of a score (participant-major, waves within).
    pub fn score(&self, name: &str, analysis: &str) -> Result<&[Option<f64>], MediationError> {
        self.values
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| MediationError::MissingScore {
                analysis: analysis.to_string(),
                score: name.to_string(),
                available: self.score_names.join(", "),
            })
    }

    /// Index of a wave label, or the default.
    pub fn wave_index(
        &self,
        wave: Option<&str>,
        default: usize,
        analysis: &str,
    ) -> Result<usize, MediationError> {
        match wave {
            None if default < self.waves.len() => Ok(default),
            None => Err(MediationError::Data {
                analysis: analysis.to_string(),
                message: format!("the study has only {} wave(s)", self.waves.len()),
            }),
            Some(w) => {
                self.waves
                    .iter()
                    .position(|l| l == w)
                    .ok_or_else(|| MediationError::UnknownWave {
                        analysis: analysis.to_string(),
                        wave: w.to_string(),
                        waves: self.waves.join(", "),
                    })
            }
        }
    }
}

/// Path names: `a1`, `b1`, ... (`a`, `b` with one mediator).
pub(crate) fn path_name(letter: &str, k: usize, n_mediators: usize) -> String {
    if n_mediators == 1 {
        letter.to_string()
    } else {
        format!("{letter}{}", k + 1)
    }
}

/// Indirect-effect names: `a1b1`, `a2b2`, `sum` (`ab` with one mediator).
pub(crate) fn effect_names(n_mediators: usize) -> Vec<String> {
    if n_mediators == 1 {
        return vec!["ab".into()];
    }
    let mut v: Vec<String> = (1..=n_mediators).map(|k| format!("a{k}b{k}")).collect();
    v.push("sum".into());
    v
}

/// A [`PathRow`] from estimate, SE and its t/z inference.
#[allow(clippy::too_many_arguments)]
pub(crate) fn path_row(
    path: &str,
    estimate: f64,
    std_error: f64,
    std_estimate: Option<f64>,
    df: Option<f64>,
    p_value: f64,
    conf_low: f64,
    conf_high: f64,
) -> PathRow {
    PathRow {
        path: path.to_string(),
        estimate,
        std_error,
        std_estimate,
        df,
        p_value: Some(p_value),
        conf_low: Some(conf_low),
        conf_high: Some(conf_high),
    }
}

/// The proportion mediated, `indirect / (indirect + c')` (the share of the effect that passes
/// through the mediators; in the multilevel and change-score models the separately fitted
/// total `c` need not equal `c' + indirect`), and a warning when it is unstable: the total
/// effect `c` is small against its SE, or the ratio falls outside [0, 1].
pub(crate) fn proportion_mediated(
    indirect: f64,
    c_prime: f64,
    c: f64,
    se_c: f64,
    min_z: f64,
) -> (Option<f64>, Option<String>) {
    let total = indirect + c_prime;
    if !(total.is_finite() && total != 0.0) {
        return (None, None);
    }
    let p = indirect / total;
    let z = (c / se_c).abs();
    let warn = if z.is_nan() || z < min_z {
        Some(format!(
            "proportion mediated {p:.3} is unstable: the total effect c = {c:.4} is only {z:.2} standard errors from 0"
        ))
    } else if !(0.0..=1.0).contains(&p) {
        Some(format!(
            "proportion mediated {p:.3} lies outside [0, 1] (indirect and direct effects of opposite sign); do not read it as a share"
        ))
    } else {
        None
    };
    (Some(p), warn)
}

/// Runs the analyses of `spec` on a scored trial, in the order of `spec.analyses`
/// (with `random_slopes`, the `within_person_random_slopes` result follows `within_person`).
/// `seed` drives every bootstrap and Monte Carlo draw; the results do not depend on the number
/// of threads. Long steps report to `progress`. The first failing analysis is the error; the
/// pipeline uses [`analyse_each`], which keeps the others.
pub fn analyse(
    trial: &Trial,
    scored: &Scored,
    spec: &MediationSpec,
    seed: u64,
    progress: &dyn ProgressSink,
) -> Result<Vec<MediationResult>, MediationError> {
    analyse_long(&LongData::from_scored(trial, scored), spec, seed, progress)
}

/// As [`analyse`], from a plain long table.
pub fn analyse_long(
    data: &LongData,
    spec: &MediationSpec,
    seed: u64,
    progress: &dyn ProgressSink,
) -> Result<Vec<MediationResult>, MediationError> {
    analyse_each(data, spec, seed, progress)?
        .into_iter()
        .collect()
}

/// Every analysis of `spec` on its own: one result (or the reason it failed) per analysis, so
/// one failing analysis does not drop its siblings. An error of the spec or of the data as a
/// whole is the outer error.
pub fn analyse_each(
    data: &LongData,
    spec: &MediationSpec,
    seed: u64,
    progress: &dyn ProgressSink,
) -> Result<Vec<Result<MediationResult, MediationError>>, MediationError> {
    spec.validate()?;
    let panel = Panel::new(data, "mediation")?;
    let mut out = Vec::new();
    for kind in &spec.analyses {
        match kind {
            AnalysisKind::ChangeScores => {
                let bar = progress.bar(spec.bootstrap_resamples as u64, "change-score bootstrap");
                out.push(change_scores::run(&panel, spec, seed, &bar).map(|r| r.result));
                bar.finish();
            }
            AnalysisKind::WithinPerson => {
                let bar = progress.bar(
                    spec.within_bootstrap_resamples as u64,
                    "within-person bootstrap",
                );
                let r = within::run(&panel, spec, seed, &bar).map(|r| r.result);
                bar.finish();
                out.push(r);
                if spec.random_slopes {
                    out.push(stacked::run(
                        &panel,
                        spec,
                        seed,
                        &stacked::BestOf::default(),
                    ));
                }
            }
            AnalysisKind::Treatment => {
                let bar = progress.bar(spec.bootstrap_resamples as u64, "treatment bootstrap");
                out.push(treatment::run(&panel, spec, seed, &bar));
                bar.finish();
            }
        }
    }
    Ok(out)
}

/// Sample SD (n - 1) of the finite values.
pub(crate) fn sd(v: &[f64]) -> f64 {
    let x: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let n = x.len();
    if n < 2 {
        return f64::NAN;
    }
    let m = x.iter().sum::<f64>() / n as f64;
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1) as f64).sqrt()
}
