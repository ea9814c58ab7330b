//! The missing-data sensitivity analysis of one outcome of a scored trial: every randomized
//! participant (intention to treat), the first wave as the baseline covariate, the later waves
//! as the follow-up; participants without a baseline value are left out and counted (the
//! baseline score is the imputation model's covariate and is not imputed here; the chained
//! equations of [`crate::impute`] serve the outcome models' covariates).
use super::jackknife::{analyse_condmean, CondMeanOptions};
use super::spec::{DeltaArms, DeltaUnits, SensitivityMissingSpec};
use super::{ImputationModel, MissingError, WideData};
use crate::ingest::{Date, Trial};

/// Average month length in days (365.25 / 12), as the ingest's "months since randomization".
const DAYS_PER_MONTH: f64 = 30.4375;
use crate::progress::ProgressSink;
use crate::results::missing::{MmrmContrast, SensitivityMissing};
use crate::scoring::Scored;
use crate::trial_data::pooled_sd;

/// The intercurrent events of a date column (`ice = { column = "..." }`), per participant of
/// the trial: the index of the first follow-up wave (0 = the wave after baseline) whose date
/// lies after the participant's ICE date, `Some(n_followup)` when the ICE date is after every
/// follow-up wave, `None` without an ICE date (empty or `NA`). A wave's date is the
/// assessment's `assessed_on`, or without one the nominal date `randomized_on + months x
/// 30.4375` days (rounded to the day). Errors name the key, the file, the row and the value.
pub fn ice_from_dates(trial: &Trial, column: &str) -> Result<Vec<Option<usize>>, MissingError> {
    let key = format!("sensitivity_missing.ice.column = \"{column}\"");
    let col = trial
        .participant_extra
        .iter()
        .find(|c| c.name == column)
        .ok_or_else(|| {
            let names: Vec<&str> = trial
                .participant_extra
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            MissingError::Data(format!(
                "{key}: participants.csv has no such column (further columns: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })?;
    let np = trial.participants.len();
    let nw = trial.study.waves.len();
    let mut assessed: Vec<Vec<Option<Date>>> = vec![vec![None; nw]; np];
    for a in &trial.assessments {
        if let Some(c) = assessed
            .get_mut(a.participant.index())
            .and_then(|r| r.get_mut(a.wave.index()))
        {
            *c = a.assessed_on;
        }
    }
    let mut out = Vec::with_capacity(np);
    for (p, (cell, dates)) in trial
        .participants
        .iter()
        .zip(col.values.iter().zip(&assessed))
    {
        let text = cell.as_deref().map(str::trim).unwrap_or("");
        if text.is_empty() || text == "NA" {
            out.push(None);
            continue;
        }
        let ice = Date::parse(text).ok_or_else(|| {
            MissingError::Data(format!(
                "{key}: participants.csv row {} (participant {}): \"{text}\" is not a date (YYYY-MM-DD)",
                p.row, p.id
            ))
        })?;
        let mut follow_up = Vec::with_capacity(nw.saturating_sub(1));
        for (w, wave) in trial.study.waves.iter().enumerate().skip(1) {
            follow_up.push(match (dates.get(w).copied().flatten(), p.randomized_on) {
                (Some(d), _) => d,
                (None, Some(r)) => nominal_date(r, wave.months),
                (None, None) => {
                    return Err(MissingError::Data(format!(
                        "{key}: participants.csv row {} (participant {}): wave {} has no assessment date and the participant no randomized_on, so the ICE date {text} cannot be placed",
                        p.row, p.id, wave.label
                    )))
                }
            });
        }
        out.push(Some(first_post_ice_wave(ice, &follow_up)));
    }
    Ok(out)
}

/// The nominal date of a wave: `randomized_on + months x 30.4375` days, rounded to the day.
pub fn nominal_date(randomized_on: Date, months: f64) -> Date {
    Date::from_days(randomized_on.days() + (months * DAYS_PER_MONTH).round() as i32)
}

/// The index of the first follow-up wave dated after `ice` (a wave on the ICE day is before
/// it), `dates.len()` when none is.
pub fn first_post_ice_wave(ice: Date, dates: &[Date]) -> usize {
    dates
        .iter()
        .position(|d| d.days() > ice.days())
        .unwrap_or(dates.len())
}

/// The wide data of `outcome` and the number of randomized participants without a baseline
/// value per arm.
pub fn wide_data(
    trial: &Trial,
    scored: &Scored,
    outcome: &str,
) -> Result<(WideData, Vec<usize>), MissingError> {
    let (d, no_baseline, _) = wide_data_rows(trial, scored, outcome)?;
    Ok((d, no_baseline))
}

/// [`wide_data`] and the trial participant index of each row.
fn wide_data_rows(
    trial: &Trial,
    scored: &Scored,
    outcome: &str,
) -> Result<(WideData, Vec<usize>, Vec<usize>), MissingError> {
    let values = scored
        .score(outcome)
        .ok_or_else(|| MissingError::Data(format!("outcome {outcome} is not scored")))?;
    let arms = trial.study.arms.clone();
    let waves: Vec<String> = trial.study.waves.iter().map(|w| w.label.clone()).collect();
    if waves.len() < 2 {
        return Err(MissingError::Data(
            "the study needs a baseline and at least one follow-up wave".into(),
        ));
    }
    let np = trial.participants.len();
    let mut cells: Vec<Vec<Option<f64>>> = vec![vec![None; waves.len()]; np];
    for r in 0..scored.n_rows() {
        let p = scored.participants()[r].index();
        let w = scored.waves()[r].0 as usize;
        if let (Some(row), Some(Some(v))) = (cells.get_mut(p), values.get(r)) {
            if let Some(c) = row.get_mut(w) {
                *c = Some(*v);
            }
        }
    }
    let mut d = WideData {
        ids: Vec::new(),
        arms: arms.clone(),
        arm: Vec::new(),
        waves: waves[1..].to_vec(),
        baseline: Vec::new(),
        y: Vec::new(),
    };
    let mut no_baseline = vec![0usize; arms.len()];
    let mut rows = Vec::new();
    for (k, (p, row)) in trial.participants.iter().zip(cells).enumerate() {
        let a = p.arm.index();
        match row[0] {
            Some(b) if b.is_finite() => {
                rows.push(k);
                d.ids.push(p.id.clone());
                d.arm.push(a);
                d.baseline.push(b);
                d.y.push(row[1..].to_vec());
            }
            _ => {
                if let Some(x) = no_baseline.get_mut(a) {
                    *x += 1;
                }
            }
        }
    }
    Ok((d, no_baseline, rows))
}

/// What the run's spec fixes beyond `[sensitivity_missing]`.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The outcome analysed.
    pub outcome: &'a str,
    /// The estimand's wave (default: the last wave).
    pub wave: Option<&'a str>,
    pub conf_level: f64,
    /// The run's seed (multiple imputation).
    pub seed: u64,
}

/// Runs `[sensitivity_missing]` on the target's outcome at the estimand's wave.
pub fn analyse_trial(
    trial: &Trial,
    scored: &Scored,
    spec: &SensitivityMissingSpec,
    target: Target<'_>,
    progress: &dyn ProgressSink,
) -> Result<SensitivityMissing, MissingError> {
    let Target {
        outcome,
        wave: target_wave,
        conf_level,
        seed,
    } = target;
    let (data, no_baseline, rows) = wide_data_rows(trial, scored, outcome)?;
    // The ICE of a date column; an ICE after the last follow-up wave is no ICE here (counted).
    let mut ice_after_last = vec![0usize; data.arms.len()];
    let ice = match spec.ice.column() {
        None => None,
        Some(c) => {
            let all = ice_from_dates(trial, c)?;
            let j = data.waves.len();
            Some(
                rows.iter()
                    .enumerate()
                    .map(|(i, &k)| match all[k] {
                        Some(t) if t >= j => {
                            ice_after_last[data.arm[i]] += 1;
                            None
                        }
                        other => other,
                    })
                    .collect::<Vec<_>>(),
            )
        }
    };
    spec.validate_for(&data.arms, &data.waves)
        .map_err(MissingError::Data)?;
    let spec_err = MissingError::Data;
    let strategies = spec.parsed_strategies().map_err(spec_err)?;
    let delta_strategies = spec.parsed_delta_strategies().map_err(spec_err)?;
    let deltas = spec.delta.values().map_err(spec_err)?;
    let rhs = spec.model_rhs().map_err(spec_err)?;
    let reference = match &spec.reference_arm {
        Some(r) => data.arms.iter().position(|a| a == r).unwrap_or(0),
        None => {
            if data.arms.len() == 2 {
                1 - trial.study.intervention.min(1)
            } else {
                0
            }
        }
    };
    let active = if data.arms.len() == 2 {
        1 - reference
    } else {
        reference
    };
    let arm_index = |a: &str| data.arms.iter().position(|x| x == a);
    let delta_arms: Vec<usize> = match &spec.delta.arms {
        Some(v) => v.pairs().iter().filter_map(|(a, _)| arm_index(a)).collect(),
        None => vec![active],
    };
    let delta_multipliers: Vec<f64> = match &spec.delta.arms {
        Some(DeltaArms::Multipliers(m)) => data
            .arms
            .iter()
            .map(|a| m.get(a).copied().unwrap_or(0.0))
            .collect(),
        _ => Vec::new(),
    };
    let delta_fixed: Vec<f64> = match &spec.delta.fixed {
        Some(f) => data
            .arms
            .iter()
            .map(|a| f.get(a).copied().unwrap_or(0.0))
            .collect(),
        None => Vec::new(),
    };
    let grid2d = if spec.delta.grid2d {
        Some(
            data.arms
                .iter()
                .map(|a| spec.delta.values_for_arm(a))
                .collect::<Result<Vec<_>, _>>()
                .map_err(MissingError::Data)?,
        )
    } else {
        None
    };
    let wave_name = spec
        .delta
        .wave
        .as_deref()
        .or(target_wave)
        .unwrap_or_else(|| data.waves.last().map_or("", String::as_str))
        .to_string();
    let delta_wave = data
        .waves
        .iter()
        .position(|w| *w == wave_name)
        .ok_or_else(|| {
            MissingError::Data(format!(
                "estimand.wave = \"{wave_name}\": not a follow-up wave (waves: {})",
                data.waves.join(", ")
            ))
        })?;
    let delta_scale = match spec.delta.units {
        DeltaUnits::Score => 1.0,
        DeltaUnits::Sd => {
            let b: Vec<Option<f64>> = data.baseline.iter().map(|v| Some(*v)).collect();
            pooled_sd(&b, &data.arm).ok_or_else(|| {
                MissingError::Data(
                    "sensitivity_missing.delta.units = \"sd\": the baseline SD is not available"
                        .into(),
                )
            })?
        }
    };
    let opts = CondMeanOptions {
        model: ImputationModel { rhs },
        strategies,
        reference,
        ice,
        conf_level,
        deltas,
        delta_scale,
        delta_units: spec.delta.units.name().to_string(),
        delta_strategies,
        delta_arms,
        delta_multipliers,
        delta_fixed,
        grid2d,
        delta_wave,
    };
    let out = analyse_condmean(&data, &opts, progress)?;
    let multiple_imputation = match &spec.approximate_bayes {
        Some(ab) => {
            Some(super::mi::analyse_approx_bayes(&data, &opts, ab.m, seed, progress)?.result)
        }
        None => None,
    };
    let mut counts = out.counts.clone();
    counts.excluded_no_baseline = no_baseline.iter().sum();
    for (a, k) in counts.by_arm.iter_mut().zip(&no_baseline) {
        a.excluded_no_baseline = *k;
    }
    if spec.ice.column().is_some() {
        for (a, k) in counts.by_arm.iter_mut().zip(&ice_after_last) {
            a.ice_after_last_wave = Some(*k);
        }
    }
    let mut warnings = Vec::new();
    if counts.excluded_no_baseline > 0 {
        warnings.push(format!(
            "{} randomized participant(s) without a baseline {outcome} left out of the missing-data analyses (the baseline score is a covariate of the imputation model and is not imputed there)",
            counts.excluded_no_baseline
        ));
    }
    if out.max_abs_gradient > 1e-4 {
        warnings.push(format!(
            "an imputation-model fit may not have converged (largest REML gradient {:.2e})",
            out.max_abs_gradient
        ));
    }
    Ok(SensitivityMissing {
        outcome: outcome.to_string(),
        method: "conditional_mean".into(),
        imputation_model: format!("{outcome} ~ {}", opts.model.rhs),
        analysis_model: format!("lm({outcome} ~ arm + baseline) per wave"),
        ice_definition: match spec.ice.column() {
            None => "last_observed_wave".into(),
            Some(c) => format!("date_column:{c}"),
        },
        reference_arm: data.arms[reference].clone(),
        active_arm: data.arms[out.active].clone(),
        term: out.term.clone(),
        waves: data.waves.clone(),
        target_wave: wave_name,
        conf_level,
        counts,
        mmrm: out
            .mmrm
            .iter()
            .zip(&data.waves)
            .map(|(m, w)| MmrmContrast {
                wave: w.clone(),
                estimate: m.estimate,
                std_error: m.std_error,
                df: m.df,
                conf_low: m.conf_low,
                conf_high: m.conf_high,
                p_value: m.p_value,
            })
            .collect(),
        strategies: out.results,
        tipping_point: out.tipping,
        tipping_point_2d: out.tipping2d,
        multiple_imputation,
        jackknife_refits: out.refits,
        max_abs_gradient: out.max_abs_gradient,
        warnings,
    })
}

/// The estimand table of `[estimand]` for this trial: defaults filled from study.toml and the
/// primary outcome (`label` is the outcome's display label).
pub fn estimand_result(
    trial: &Trial,
    spec: &super::spec::EstimandSpec,
    outcome: &str,
    label: &str,
    reference_arm: Option<&str>,
) -> crate::results::Estimand {
    let arms = &trial.study.arms;
    let active = arms
        .get(trial.study.intervention)
        .cloned()
        .unwrap_or_default();
    let control = reference_arm
        .map(str::to_string)
        .or_else(|| {
            arms.iter()
                .enumerate()
                .find(|(k, _)| *k != trial.study.intervention)
                .map(|(_, a)| a.clone())
        })
        .unwrap_or_default();
    let wave = spec.wave.clone().unwrap_or_else(|| {
        trial
            .study
            .waves
            .last()
            .map(|w| w.label.clone())
            .unwrap_or_default()
    });
    crate::results::Estimand {
        population: spec.population.clone(),
        treatment: spec
            .treatment
            .clone()
            .unwrap_or_else(|| format!("{active} versus {control}")),
        outcome: outcome.to_string(),
        wave: wave.clone(),
        variable: format!("{label} at {wave}"),
        intercurrent_events: spec
            .intercurrent_events
            .iter()
            .map(|e| crate::results::missing::IntercurrentEvent {
                event: e.event.clone(),
                strategy: e.strategy.name().to_string(),
                handling: e.handling.clone().unwrap_or_default(),
            })
            .collect(),
        summary: spec
            .summary
            .clone()
            .unwrap_or_else(|| format!("difference in means at {wave} ({active} - {control})")),
    }
}
