//! The modelling data of one outcome: the scored long table of a trial turned into a model
//! frame with the columns every outcome, site and fidelity model uses (`y`, `participant_id`,
//! `arm`, `wave`, `site_id`, `group_id`, `imr`, `months`), for one analysis set, and the
//! participant covariates a formula adds ([`covariates`]).
pub mod covariates;

use crate::frame::Frame;
use crate::ingest::Trial;
use crate::schema::study::Design;
use crate::scoring::Scored;

/// The long data of one outcome in one analysis set, ready for model fitting.
#[derive(Debug, Clone)]
pub struct OutcomeData {
    /// Modelling frame with columns `y` (the outcome), `participant_id`, `arm`, `wave`,
    /// `site_id`, `group_id` (controls of an individually randomized trial as singleton
    /// groups), `imr` (1 in the intervention arm), `months`.
    pub frame: Frame,
    pub arms: Vec<String>,
    pub waves: Vec<String>,
    /// The intervention arm's label (contrasts are intervention minus the first arm).
    pub intervention: String,
    /// Pooled (over arms) SD of the outcome at baseline in this analysis set.
    pub baseline_sd: Option<f64>,
    /// Participant covariates added to the frame ([`OutcomeData::with_covariates`]).
    pub covariates: Vec<String>,
}

/// The covariates of an arm x wave reference grid at their means (emmeans' default): every
/// main-effect column of `names` that is not the intercept, `arm...` or `wave...`, averaged
/// over `rows` of `frame` (all finite values when `None`).
pub fn grid_covariates(
    names: &[String],
    frame: &Frame,
    rows: Option<&[usize]>,
) -> Vec<(String, f64)> {
    names
        .iter()
        .filter(|n| {
            !n.contains(':')
                && *n != "(Intercept)"
                && !n.starts_with("arm")
                && !n.starts_with("wave")
        })
        .filter_map(|n| column_mean(frame, n, rows).map(|m| (n.clone(), m)))
        .collect()
}

/// The mean of a numeric column over `rows` (all finite values when `None`).
pub fn column_mean(frame: &Frame, name: &str, rows: Option<&[usize]>) -> Option<f64> {
    match frame.column(name)? {
        crate::frame::Column::Numeric(v) => {
            let vals: Vec<f64> = match rows {
                Some(rows) => rows.iter().filter_map(|&r| v.get(r).copied()).collect(),
                None => v.iter().copied().filter(|x| x.is_finite()).collect(),
            };
            (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
        }
        _ => None,
    }
}

impl OutcomeData {
    /// The outcome as 0/1: 1 where the score is at least `threshold` (a binary outcome for a
    /// logistic GLMM); the baseline SD (for Cohen's d) no longer applies.
    pub fn dichotomized(mut self, threshold: f64) -> Result<OutcomeData, crate::frame::FrameError> {
        let y: Vec<Option<f64>> = match self.frame.column("y") {
            Some(crate::frame::Column::Numeric(v)) => v
                .iter()
                .map(|&x| (!x.is_nan()).then(|| f64::from(u8::from(x >= threshold))))
                .collect(),
            _ => return Err(crate::frame::FrameError::UnknownColumn("y".into())),
        };
        self.frame.replace_numeric("y", y)?;
        self.baseline_sd = None;
        Ok(self)
    }
}

/// Fidelity bands of the training groups by their IMR Fidelity Scale mean: high `>= high`,
/// moderate in `[moderate, high)`. `[sensitivity.fidelity]` of an analysis spec; the sites
/// analysis (`[sites.fidelity]`) uses the same bands.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FidelityBands {
    pub enabled: bool,
    /// High fidelity: at least this mean.
    pub high: f64,
    /// Moderate fidelity: from this value up to `high`.
    pub moderate: f64,
}

impl Default for FidelityBands {
    fn default() -> Self {
        FidelityBands {
            enabled: true,
            high: 4.0,
            moderate: 3.0,
        }
    }
}

/// One fidelity band: its name, its range as text and the analysis set it keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct FidelityBand {
    /// `high` or `moderate`.
    pub name: &'static str,
    /// `>= 4`, `3 to < 4`.
    pub range: String,
    pub low: f64,
    pub high: f64,
}

impl FidelityBand {
    /// The analysis set of the band: controls and the groups in the band.
    pub fn filter(&self) -> SetFilter {
        SetFilter::Fidelity {
            low: self.low,
            high: self.high,
        }
    }
}

impl FidelityBands {
    /// The two bands, high first.
    pub fn bands(&self) -> [FidelityBand; 2] {
        [
            FidelityBand {
                name: "high",
                range: format!(">= {}", self.high),
                low: self.high,
                high: f64::INFINITY,
            },
            FidelityBand {
                name: "moderate",
                range: format!("{} to < {}", self.moderate, self.high),
                low: self.moderate,
                high: self.high,
            },
        ]
    }

    /// An error text when the bands are inverted.
    pub fn check(&self) -> Result<(), String> {
        if self.moderate > self.high {
            return Err(format!(
                "fidelity.moderate ({}) is above fidelity.high ({})",
                self.moderate, self.high
            ));
        }
        Ok(())
    }
}

/// Which participants an analysis set keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum SetFilter {
    /// Everyone randomized.
    All,
    /// Controls plus intervention participants with at least `min_sessions` sessions.
    Completers { min_sessions: f64 },
    /// Controls plus intervention participants whose training group's fidelity lies in
    /// `[low, high)`.
    Fidelity { low: f64, high: f64 },
}

/// Builds the modelling data of `outcome` for the participants `keep` admits.
pub fn outcome_data(
    trial: &Trial,
    scored: &Scored,
    outcome: &str,
    filter: &SetFilter,
) -> Option<OutcomeData> {
    let values = scored.score(outcome)?;
    let intervention = trial.study.intervention;
    let cluster = trial.study.design == Design::Cluster;
    let keep = |row: usize| -> bool {
        let pid = scored.participants()[row];
        let Some(p) = trial.participant(pid) else {
            return false;
        };
        let treated = p.arm.0 as usize == intervention;
        match filter {
            SetFilter::All => true,
            SetFilter::Completers { min_sessions } => {
                !treated
                    || p.sessions_attended
                        .is_some_and(|s| s as f64 >= *min_sessions)
            }
            SetFilter::Fidelity { low, high } => {
                !treated
                    || p.group
                        .and_then(|g| trial.groups.get(g.0 as usize))
                        .and_then(|g| g.fidelity)
                        .is_some_and(|f| f >= *low && f < *high)
            }
        }
    };
    let rows: Vec<usize> = (0..scored.n_rows())
        .filter(|&r| keep(r) && values.get(r).copied().flatten().is_some())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let arms = scored.arm_levels().to_vec();
    let waves = scored.wave_levels().to_vec();
    let mut f = Frame::new();
    let y: Vec<Option<f64>> = rows.iter().map(|&r| values[r]).collect();
    let pid: Vec<Option<String>> = rows
        .iter()
        .map(|&r| Some(scored.participant_id(r).to_string()))
        .collect();
    let arm: Vec<Option<String>> = rows
        .iter()
        .map(|&r| Some(scored.arm_label(r).to_string()))
        .collect();
    let wave: Vec<Option<String>> = rows
        .iter()
        .map(|&r| Some(scored.wave_label(r).to_string()))
        .collect();
    let site: Vec<Option<String>> = rows
        .iter()
        .map(|&r| Some(scored.site_id(r).to_string()))
        .collect();
    let imr: Vec<Option<f64>> = rows
        .iter()
        .map(|&r| {
            Some(if scored.arms()[r].0 as usize == intervention {
                1.0
            } else {
                0.0
            })
        })
        .collect();
    // Partially nested design (Bauer, Sterba & Hallfors 2008): controls of an individually
    // randomized trial are singleton groups, so `(0 + imr | group_id)` gives them no group
    // effect; in a cluster trial every participant has a group.
    let group: Vec<Option<String>> = rows
        .iter()
        .map(|&r| {
            let g = scored.group_id(r);
            if g.is_empty() || (!cluster && scored.arms()[r].0 as usize != intervention) {
                Some(format!("single:{}", scored.participant_id(r)))
            } else {
                Some(g.to_string())
            }
        })
        .collect();
    let months: Vec<Option<f64>> = rows.iter().map(|&r| Some(scored.months()[r])).collect();
    let baseline: Vec<Option<f64>> = rows
        .iter()
        .filter(|&&r| scored.waves()[r].0 == 0)
        .map(|&r| values[r])
        .collect();
    let ok = f.push_numeric("y", y).is_ok()
        && f.push_factor("participant_id", pid, None).is_ok()
        && f.push_factor("arm", arm, Some(arms.clone())).is_ok()
        && f.push_factor("wave", wave, Some(waves.clone())).is_ok()
        && f.push_factor("site_id", site, None).is_ok()
        && f.push_factor("group_id", group, None).is_ok()
        && f.push_numeric("imr", imr).is_ok()
        && f.push_numeric("months", months).is_ok();
    if !ok {
        return None;
    }
    // Pooled baseline SD: the SD of baseline scores around their arm means, n - k divisor.
    let base_arms: Vec<usize> = rows
        .iter()
        .filter(|&&r| scored.waves()[r].0 == 0)
        .map(|&r| scored.arms()[r].0 as usize)
        .collect();
    Some(OutcomeData {
        frame: f,
        arms,
        waves,
        intervention: trial
            .study
            .arms
            .get(intervention)
            .cloned()
            .unwrap_or_default(),
        baseline_sd: pooled_sd(&baseline, &base_arms),
        covariates: Vec::new(),
    })
}

/// Pooled within-arm SD, sqrt(sum_k (n_k - 1) s_k^2 / (n - K)).
pub fn pooled_sd(values: &[Option<f64>], arms: &[usize]) -> Option<f64> {
    let k = arms.iter().copied().max().map_or(0, |m| m + 1);
    let mut n = vec![0.0; k];
    let mut s = vec![0.0; k];
    for (v, &a) in values.iter().zip(arms) {
        if let Some(v) = v {
            n[a] += 1.0;
            s[a] += v;
        }
    }
    let mut ss = 0.0;
    for (v, &a) in values.iter().zip(arms) {
        if let Some(v) = v {
            ss += (v - s[a] / n[a]).powi(2);
        }
    }
    let groups = n.iter().filter(|&&c| c > 0.0).count() as f64;
    let total: f64 = n.iter().sum();
    (total - groups > 0.0).then(|| (ss / (total - groups)).sqrt())
}

/// What the export holds for the optional parts of a plan (`docs/trial-export.md`: sites,
/// groups, sessions, admissions and randomization dates may be absent), so that the plan skips
/// what the data cannot support, with a note, instead of fitting it to degenerate data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSupport {
    /// More than one site: a site random intercept can be estimated.
    pub sites: bool,
    /// Some intervention participant is in a training group.
    pub groups: bool,
    /// Sessions attended recorded for someone: a per-protocol set exists.
    pub sessions: bool,
    /// Admissions collected and every participant has a randomization date.
    pub admissions: bool,
}

impl DataSupport {
    pub fn of(trial: &Trial) -> Self {
        let intervention = trial.study.intervention;
        DataSupport {
            sites: trial.sites.len() > 1,
            groups: trial
                .participants
                .iter()
                .any(|p| p.group.is_some() && p.arm.index() == intervention),
            sessions: trial
                .participants
                .iter()
                .any(|p| p.sessions_attended.is_some()),
            admissions: trial.admissions_collected && trial.has_randomization_dates(),
        }
    }
}
