//! The admission analyses of a trial export: admissions per participant in the windows of
//! the spec, the count models (MASS::glm.nb, Poisson) and the Dutch trial's own analyses
//! (logistic regression of any admission, Mann-Whitney U of the change in bed days), as one
//! [`Admissions`] result.
use serde::{Deserialize, Serialize};

use super::period_models::{analyse_periods, ArmLabels, PeriodOptions};
use super::periods::{per_period, periods_between, Period, PeriodData};
use super::{
    count_analysis, per_participant, trial_analysis, AdmissionRules, AdmissionsError,
    CountAnalysis, ParticipantAdmissions, RandomizedParticipant, Stay, TrialAdmissionAnalysis,
};
use crate::glm::GlmControl;
use crate::ingest::Trial;
use crate::results::{
    Admissions, AdmissionsByArm, ArmDistribution, ArmRisk, BedDays, CountModel, LogisticResult,
    TermRow,
};
use crate::stats::quantile::quantile_type7;

/// Admission analyses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdmissionsSpec {
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Follow-up window in days after randomization; default: to the last wave's nominal month.
    #[serde(default)]
    pub followup_days: Option<i32>,
    /// History window before randomization in days.
    #[serde(default = "default_prior")]
    pub prior_days: i32,
    /// `per_period` (default): the whole-follow-up analyses and, beside them, the mixed models
    /// of admissions per period between waves; `whole_follow_up`: only the former.
    #[serde(default)]
    pub model: AdmissionModel,
    /// The per-period models adjust for the admissions in the prior window (`+ prior`).
    #[serde(default = "default_enabled")]
    pub prior_covariate: bool,
    /// Quadrature points of the per-period GLMMs: 1 = Laplace (glmer's and glmmTMB's default),
    /// up to 25 (adaptive Gauss-Hermite).
    #[serde(default = "default_nagq")]
    pub nagq: usize,
    /// The per-period count model: `negative_binomial` (default) or `poisson`.
    #[serde(default)]
    pub count_family: CountFamily,
}

/// The per-period count model (`[admissions] count_family`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CountFamily {
    #[default]
    NegativeBinomial,
    Poisson,
}

fn default_nagq() -> usize {
    1
}

/// Which admission analyses run (`[admissions] model`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AdmissionModel {
    /// One count per participant over the whole follow-up only.
    WholeFollowUp,
    /// Also counts per period between waves with the NB and logistic GLMMs.
    #[default]
    PerPeriod,
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
            model: AdmissionModel::default(),
            prior_covariate: true,
            nagq: default_nagq(),
            count_family: CountFamily::default(),
        }
    }
}

fn default_enabled() -> bool {
    true
}

/// Coefficients as broom rows with `df = Inf` (z tests).
pub(crate) fn term_rows(coefs: &[crate::glm::Coefficient]) -> Vec<TermRow> {
    coefs
        .iter()
        .map(|c| TermRow {
            term: c.term.clone(),
            estimate: c.estimate,
            std_error: c.std_error,
            statistic: c.statistic,
            df: f64::INFINITY,
            p_value: c.p_value,
            conf_low: c.conf_low,
            conf_high: c.conf_high,
        })
        .collect()
}

/// Admissions as counts with exposure (negative binomial, Poisson) and the Dutch trial's own
/// analyses (logistic regression of any admission, Mann-Whitney U of the bed-day change).
pub fn analyse(
    trial: &Trial,
    spec: &AdmissionsSpec,
    level: f64,
) -> Result<Admissions, AdmissionsError> {
    let study = &trial.study;
    let rules = admission_rules(trial, spec)?;
    let participants = randomized_participants(trial);
    let stays = stays(trial);
    let rows = per_participant(&participants, &stays, &rules)?;
    let reference = study.arms.first().cloned().unwrap_or_default();
    let intervention = study
        .arms
        .get(study.intervention)
        .cloned()
        .unwrap_or_default();
    let control = GlmControl::default();
    let mut out = Admissions {
        followup_window: format!(
            "admissions starting 1-{} days after randomization",
            rules.follow_up_days.floor()
        ),
        prior_window: format!(
            "admissions starting {}-1 days before randomization",
            spec.prior_days
        ),
        by_arm: admissions_by_arm(&study.arms, &rows, spec.prior_days),
        ..Default::default()
    };
    let c = count_analysis(&rows, &reference, &intervention, level, &control)
        .map_err(|e| AdmissionsError::CountModels(Box::new(e)))?;
    out.negative_binomial = Some(negative_binomial_model(&c));
    out.poisson = Some(poisson_model(&c));
    if let Ok(t) = trial_analysis(&rows, &reference, &intervention, level, &control) {
        out.logistic = Some(logistic_result(&t, &study.arms, &rows));
        out.bed_days = Some(bed_days_result(&t, &study.arms, &rows));
    }
    if spec.model == AdmissionModel::PerPeriod {
        let (periods, data) = period_rows(trial, &participants, &stays, rules.prior)?;
        out.per_period = Some(analyse_periods(
            &participants,
            &data,
            &periods,
            ArmLabels {
                arms: &study.arms,
                intervention: &intervention,
            },
            PeriodOptions {
                level,
                prior_covariate: spec.prior_covariate,
                n_agq: spec.nagq,
                poisson: spec.count_family == CountFamily::Poisson,
            },
        ));
    }
    Ok(out)
}

/// The participant-period rows of the trial (see [`super::periods`]) for the prior-count
/// window `prior`, with the periods between the study's waves.
fn period_rows(
    trial: &Trial,
    participants: &[RandomizedParticipant],
    stays: &[Stay],
    prior: super::DayWindow,
) -> Result<(Vec<Period>, PeriodData), AdmissionsError> {
    let waves: Vec<(String, f64)> = trial
        .study
        .waves
        .iter()
        .map(|w| (w.label.clone(), w.months))
        .collect();
    let periods = periods_between(&waves)?;
    let data = per_period(participants, stays, &periods, prior)?;
    Ok((periods, data))
}

/// The per-period rows of a trial with the spec's prior window: the participants (in
/// participants.csv order), the periods and the rows (the data of the per-period models).
pub fn per_period_data(
    trial: &Trial,
    spec: &AdmissionsSpec,
) -> Result<(Vec<RandomizedParticipant>, Vec<Period>, PeriodData), AdmissionsError> {
    let rules = admission_rules(trial, spec)?;
    let participants = randomized_participants(trial);
    let (periods, data) = period_rows(trial, &participants, &stays(trial), rules.prior)?;
    Ok((participants, periods, data))
}

/// The windows of the spec: follow-up to the last wave (end of treatment at the second
/// wave) unless `followup_days` is set, and `prior_days` of history before randomization.
fn admission_rules(
    trial: &Trial,
    spec: &AdmissionsSpec,
) -> Result<AdmissionRules, AdmissionsError> {
    let study = &trial.study;
    let last = study.waves.last().map_or(0.0, |w| w.months);
    let eot = study.waves.get(1).map_or(last, |w| w.months);
    let mut rules = AdmissionRules::from_months(last, eot, None)?;
    rules.prior.first = -spec.prior_days;
    rules.trial_before.first = -spec.prior_days;
    if let Some(d) = spec.followup_days {
        rules.follow_up_days = f64::from(d);
    }
    Ok(rules)
}

/// Every participant with the label of their arm and their randomization day (0 when unknown).
fn randomized_participants(trial: &Trial) -> Vec<RandomizedParticipant> {
    trial
        .participants
        .iter()
        .map(|p| RandomizedParticipant {
            id: p.id.clone(),
            arm: trial.arm_label(p.arm).to_string(),
            randomized_on: p.randomized_on.map_or(0, |d| d.days()),
        })
        .collect()
}

/// The admissions of the trial as stays of participant ids (admissions of unknown
/// participants left out).
fn stays(trial: &Trial) -> Vec<Stay> {
    trial
        .admissions
        .iter()
        .filter_map(|a| {
            Some(Stay {
                participant_id: trial.participant(a.participant)?.id.clone(),
                admitted_on: a.admitted_on.days(),
                discharged_on: a.discharged_on.map(|d| d.days()),
                row: a.row,
            })
        })
        .collect()
}

/// Admissions, bed days and exposure summed per arm (in study order).
fn admissions_by_arm(
    arms: &[String],
    rows: &[ParticipantAdmissions],
    prior_days: i32,
) -> Vec<AdmissionsByArm> {
    arms.iter()
        .map(|a| {
            let r: Vec<_> = rows.iter().filter(|x| &x.arm == a).collect();
            AdmissionsByArm {
                arm: a.clone(),
                n: r.len() as u64,
                admissions_prior: r.iter().map(|x| u64::from(x.prior)).sum(),
                admissions_followup: r.iter().map(|x| u64::from(x.count)).sum(),
                bed_days_prior: r.iter().map(|x| u64::from(x.bed_days_prior)).sum(),
                bed_days_followup: r.iter().map(|x| u64::from(x.bed_days_follow_up)).sum(),
                exposure_years_prior: r.len() as f64 * f64::from(prior_days) / 365.25,
                exposure_years_followup: r.iter().map(|x| x.exposure).sum(),
            }
        })
        .collect()
}

/// The negative-binomial count model (MASS::glm.nb) as reported.
fn negative_binomial_model(c: &CountAnalysis) -> CountModel {
    CountModel {
        model: format!("MASS::glm.nb({})", c.formula),
        rate_ratio: c.negative_binomial_rate_ratio.ratio,
        conf_low: c.negative_binomial_rate_ratio.conf_low,
        conf_high: c.negative_binomial_rate_ratio.conf_high,
        p_value: c.negative_binomial_rate_ratio.p_value,
        theta: Some(c.negative_binomial.theta),
        dispersion: None,
        coefficients: term_rows(&c.negative_binomial.glm.coefficients),
    }
}

/// The Poisson count model as reported, with its overdispersion.
fn poisson_model(c: &CountAnalysis) -> CountModel {
    CountModel {
        model: format!("glm({}, family = poisson)", c.formula),
        rate_ratio: c.poisson_rate_ratio.ratio,
        conf_low: c.poisson_rate_ratio.conf_low,
        conf_high: c.poisson_rate_ratio.conf_high,
        p_value: c.poisson_rate_ratio.p_value,
        theta: None,
        dispersion: Some(c.overdispersion.dispersion),
        coefficients: term_rows(&c.poisson.coefficients),
    }
}

/// The logistic regression of any admission after randomization, with the risk per arm and
/// the risk difference.
fn logistic_result(
    t: &TrialAdmissionAnalysis,
    arms: &[String],
    rows: &[ParticipantAdmissions],
) -> LogisticResult {
    let risks = arms
        .iter()
        .map(|a| {
            let r: Vec<_> = rows.iter().filter(|x| &x.arm == a).collect();
            ArmRisk {
                arm: a.clone(),
                events: r.iter().filter(|x| x.any_after).count() as u64,
                n: r.len() as u64,
            }
        })
        .collect();
    LogisticResult {
        model: format!("glm({}, family = binomial)", t.formula),
        odds_ratio: t.odds_ratio.ratio,
        conf_low: t.odds_ratio.conf_low,
        conf_high: t.odds_ratio.conf_high,
        p_value: t.odds_ratio.p_value,
        risks,
        risk_difference: Some(t.risk_difference.estimate),
        rd_conf_low: Some(t.risk_difference.conf_low),
        rd_conf_high: Some(t.risk_difference.conf_high),
    }
}

/// The Mann-Whitney U test of the change in bed days, with the distribution of the change
/// per arm (mean, and median and quartiles as R's type-7 quantiles).
fn bed_days_result(
    t: &TrialAdmissionAnalysis,
    arms: &[String],
    rows: &[ParticipantAdmissions],
) -> BedDays {
    let dist = arms
        .iter()
        .map(|a| {
            let mut v: Vec<f64> = rows
                .iter()
                .filter(|x| &x.arm == a)
                .map(|x| x.bed_days_change as f64)
                .collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            ArmDistribution {
                arm: a.clone(),
                n: n as u64,
                mean: if n > 0 {
                    v.iter().sum::<f64>() / n as f64
                } else {
                    f64::NAN
                },
                median: quantile_type7(&v, 0.5),
                q1: quantile_type7(&v, 0.25),
                q3: quantile_type7(&v, 0.75),
            }
        })
        .collect();
    BedDays {
        test: "Mann-Whitney U (wilcox.test, normal approximation with continuity correction) of the change in bed days".into(),
        u: t.bed_days_test.w,
        p_value: t.bed_days_test.p_value,
        by_arm: dist,
    }
}
