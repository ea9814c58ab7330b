//! Psychiatric admissions per participant (counts, bed days, exposure) and the admission
//! analyses of the trial: negative-binomial and Poisson regression of the follow-up count on
//! arm + prior count with a log-exposure offset, and the Dutch trial's own analyses (logistic
//! regression of any admission in the year after treatment on arm + any admission in the year
//! before, the absolute risk difference, and a Mann-Whitney test of the change in bed days).
//!
//! Inputs are plain: dates as days since an epoch (1970-01-01 in herstel), participant ids as
//! strings, so any reader can feed this module.
//!
//! Conventions (those of the R reference analyses):
//! * `d = date - randomized_on` in days.
//! * Prior admissions: admissions whose start has `-365 <= d <= -1`.
//! * Follow-up admissions: start with `0 < d <= W`, `W = months x 365.25 / 12` (the last wave's
//!   nominal day); exposure in years `min(W, exported_on - randomized_on) / 365.25`, or
//!   `W / 365.25` when the export date is unknown.
//! * Bed days: a stay admitted on day `a` and discharged on day `e` occupies days
//!   `a, ..., e - 1` (admission day counted, discharge day not); an open stay (no discharge
//!   date) occupies every day from `a` on, so it runs to the end of any window it enters.
//! * Trial windows: before = days -365..=-1; after = the 365.25 days after the
//!   end-of-treatment wave's nominal day `m` (`m < d <= m + 365.25`, days 366..=730 for 12
//!   months). "Any admission" in a window = at least one bed day in it.
pub mod period_models;
pub mod periods;
pub mod trial;

pub use trial::AdmissionsSpec;

use std::collections::HashMap;

use nalgebra::DMatrix;
use serde::Serialize;
use thiserror::Error;

use crate::glm::{
    arm_prior_design, fit_logistic, fit_negbin, fit_poisson, log_exposure_offset, overdispersion,
    risk_difference, standardized_risk_difference, GlmControl, GlmError, GlmFit, NegBinFit,
    Overdispersion, RatioEstimate, RiskDifference,
};
use crate::nonparam::{wilcoxon_rank_sum, Alternative, RankSumTest, RankTestError};
use crate::stats::distributions::pchisq_upper;

/// Days per year used for nominal wave days and exposure (R reference: 365.25).
pub const DAYS_PER_YEAR: f64 = 365.25;

/// Errors in admission data or analyses.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum AdmissionsError {
    #[error("admissions row {row}: participant `{participant}` is not in participants")]
    UnknownParticipant { row: usize, participant: String },
    #[error("participants: duplicate participant_id `{participant}`")]
    DuplicateParticipant { participant: String },
    #[error("admissions row {row} (participant `{participant}`): discharged_on (day {discharged}) is before admitted_on (day {admitted})")]
    DischargeBeforeAdmission {
        row: usize,
        participant: String,
        admitted: i32,
        discharged: i32,
    },
    #[error("invalid window: {0}")]
    InvalidWindow(String),
    #[error("arm `{arm}` of participant `{participant}` is neither the reference `{reference}` nor the intervention `{intervention}`")]
    UnknownArm {
        participant: String,
        arm: String,
        reference: String,
        intervention: String,
    },
    #[error("{0}")]
    Glm(#[from] GlmError),
    #[error("{0}")]
    RankTest(#[from] RankTestError),
    #[error("count models: {0}")]
    CountModels(Box<AdmissionsError>),
}

/// A participant's randomization (plain inputs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RandomizedParticipant {
    pub id: String,
    pub arm: String,
    /// Days since the epoch.
    pub randomized_on: i32,
}

/// One admission (plain inputs); `row` is the caller's row number for error messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stay {
    pub participant_id: String,
    /// Days since the epoch.
    pub admitted_on: i32,
    /// Days since the epoch; `None` = still admitted at export.
    pub discharged_on: Option<i32>,
    pub row: usize,
}

/// Inclusive range of days relative to randomization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DayWindow {
    pub first: i32,
    pub last: i32,
}

impl DayWindow {
    /// The integer days `d` with `start < d <= start + length` (nominal, possibly fractional
    /// day numbers), e.g. `after_nominal(365.25, 365.25)` = days 366..=730.
    pub fn after_nominal(start: f64, length: f64) -> Result<DayWindow, AdmissionsError> {
        if !(start.is_finite() && length.is_finite() && length > 0.0) {
            return Err(AdmissionsError::InvalidWindow(format!(
                "start {start}, length {length}"
            )));
        }
        Ok(DayWindow {
            first: start.floor() as i32 + 1,
            last: (start + length).floor() as i32,
        })
    }

    /// Whether day `d` lies in the window.
    pub fn contains(&self, d: i32) -> bool {
        self.first <= d && d <= self.last
    }

    /// Bed days of a stay occupying days `a..e` (`e` exclusive; `None` = open) in the window.
    pub fn bed_days(&self, a: i32, e: Option<i32>) -> u32 {
        let last_occupied = match e {
            Some(e) => i64::from(e) - 1,
            None => i64::MAX,
        };
        let lo = i64::from(a).max(i64::from(self.first));
        let hi = last_occupied.min(i64::from(self.last));
        u32::try_from((hi - lo + 1).max(0)).unwrap_or(u32::MAX)
    }
}

/// Windows and exposure rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdmissionRules {
    /// Prior-year window for the count covariate (default -365..=-1).
    pub prior: DayWindow,
    /// Follow-up window length W in days (admission starts with `0 < d <= W` are counted).
    pub follow_up_days: f64,
    /// Export date (days since the epoch), caps exposure; `None` = W for everyone.
    pub exported_on: Option<i32>,
    /// Trial analysis: the year before randomization.
    pub trial_before: DayWindow,
    /// Trial analysis: the year after the end-of-treatment wave.
    pub trial_after: DayWindow,
}

impl AdmissionRules {
    /// Rules from the last wave's nominal month (follow-up window) and the end-of-treatment
    /// wave's nominal month (trial after-window), months x 365.25 / 12 days.
    pub fn from_months(
        last_wave_months: f64,
        end_of_treatment_months: f64,
        exported_on: Option<i32>,
    ) -> Result<Self, AdmissionsError> {
        let w = last_wave_months * DAYS_PER_YEAR / 12.0;
        if !(w.is_finite() && w > 0.0) {
            return Err(AdmissionsError::InvalidWindow(format!(
                "follow-up of {last_wave_months} months"
            )));
        }
        let prior = DayWindow {
            first: -365,
            last: -1,
        };
        Ok(AdmissionRules {
            prior,
            follow_up_days: w,
            exported_on,
            trial_before: prior,
            trial_after: DayWindow::after_nominal(
                end_of_treatment_months * DAYS_PER_YEAR / 12.0,
                DAYS_PER_YEAR,
            )?,
        })
    }

    /// Follow-up window in whole days (1..=floor(W)) for bed days.
    pub fn follow_up_window(&self) -> DayWindow {
        DayWindow {
            first: 1,
            last: self.follow_up_days.floor() as i32,
        }
    }
}

/// Admission counts and bed days of one participant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParticipantAdmissions {
    pub participant_id: String,
    pub arm: String,
    /// Admissions started in the prior window.
    pub prior: u32,
    /// Admissions started in the follow-up window.
    pub count: u32,
    /// Follow-up exposure in years.
    pub exposure: f64,
    pub bed_days_prior: u32,
    pub bed_days_follow_up: u32,
    /// At least one bed day in the trial's before-window.
    pub any_before: bool,
    pub any_after: bool,
    pub bed_days_before: u32,
    pub bed_days_after: u32,
    /// `bed_days_after - bed_days_before`.
    pub bed_days_change: i64,
    pub admissions_started_before: u32,
    pub admissions_started_after: u32,
}

/// Every stay located on its participant: `(participant index, admission day, discharge day)`
/// relative to randomization, in the order of `stays`; unknown participants, duplicate
/// participant ids and discharges before admission are errors naming the row.
pub(crate) fn check_stays(
    participants: &[RandomizedParticipant],
    stays: &[Stay],
) -> Result<Vec<(usize, i32, Option<i32>)>, AdmissionsError> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(participants.len());
    for (i, p) in participants.iter().enumerate() {
        if index.insert(p.id.as_str(), i).is_some() {
            return Err(AdmissionsError::DuplicateParticipant {
                participant: p.id.clone(),
            });
        }
    }
    stays
        .iter()
        .map(|s| {
            let Some((i, p)) = index
                .get(s.participant_id.as_str())
                .and_then(|&i| Some((i, participants.get(i)?)))
            else {
                return Err(AdmissionsError::UnknownParticipant {
                    row: s.row,
                    participant: s.participant_id.clone(),
                });
            };
            if let Some(d) = s.discharged_on {
                if d < s.admitted_on {
                    return Err(AdmissionsError::DischargeBeforeAdmission {
                        row: s.row,
                        participant: s.participant_id.clone(),
                        admitted: s.admitted_on,
                        discharged: d,
                    });
                }
            }
            Ok((
                i,
                s.admitted_on - p.randomized_on,
                s.discharged_on.map(|d| d - p.randomized_on),
            ))
        })
        .collect()
}

/// Counts, bed days and exposure per participant (participants in input order).
pub fn per_participant(
    participants: &[RandomizedParticipant],
    stays: &[Stay],
    rules: &AdmissionRules,
) -> Result<Vec<ParticipantAdmissions>, AdmissionsError> {
    let located = check_stays(participants, stays)?;
    let w = rules.follow_up_days;
    let fu_window = rules.follow_up_window();
    let mut out: Vec<ParticipantAdmissions> = participants
        .iter()
        .map(|p| {
            let observed = rules
                .exported_on
                .map(|e| f64::from(e - p.randomized_on))
                .unwrap_or(w);
            ParticipantAdmissions {
                participant_id: p.id.clone(),
                arm: p.arm.clone(),
                prior: 0,
                count: 0,
                exposure: w.min(observed) / DAYS_PER_YEAR,
                bed_days_prior: 0,
                bed_days_follow_up: 0,
                any_before: false,
                any_after: false,
                bed_days_before: 0,
                bed_days_after: 0,
                bed_days_change: 0,
                admissions_started_before: 0,
                admissions_started_after: 0,
            }
        })
        .collect();
    for (i, a, e) in located {
        let Some(r) = out.get_mut(i) else {
            continue;
        };
        if rules.prior.contains(a) {
            r.prior += 1;
        }
        if a > 0 && f64::from(a) <= w {
            r.count += 1;
        }
        if rules.trial_before.contains(a) {
            r.admissions_started_before += 1;
        }
        if rules.trial_after.contains(a) {
            r.admissions_started_after += 1;
        }
        r.bed_days_prior += rules.prior.bed_days(a, e);
        r.bed_days_follow_up += fu_window.bed_days(a, e);
        r.bed_days_before += rules.trial_before.bed_days(a, e);
        r.bed_days_after += rules.trial_after.bed_days(a, e);
    }
    for r in &mut out {
        r.any_before = r.bed_days_before > 0;
        r.any_after = r.bed_days_after > 0;
        r.bed_days_change = i64::from(r.bed_days_after) - i64::from(r.bed_days_before);
    }
    Ok(out)
}

/// Per-arm totals of [`per_participant`] rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmAdmissions {
    pub arm: String,
    pub n: usize,
    pub total_count: u64,
    pub mean_count: f64,
    pub total_exposure: f64,
    pub total_prior: u64,
    pub mean_prior: f64,
    pub n_any_before: usize,
    pub n_any_after: usize,
    pub bed_days_before_mean: f64,
    pub bed_days_after_mean: f64,
    pub change_mean: f64,
    pub change_median: f64,
}

/// Totals per arm, arms in the given order.
pub fn by_arm(rows: &[ParticipantAdmissions], arms: &[String]) -> Vec<ArmAdmissions> {
    arms.iter()
        .map(|arm| {
            let r: Vec<&ParticipantAdmissions> = rows.iter().filter(|x| &x.arm == arm).collect();
            let n = r.len();
            let nf = n as f64;
            let total_count: u64 = r.iter().map(|x| u64::from(x.count)).sum();
            let total_prior: u64 = r.iter().map(|x| u64::from(x.prior)).sum();
            let mean = |f: &dyn Fn(&ParticipantAdmissions) -> f64| {
                r.iter().map(|x| f(x)).sum::<f64>() / nf
            };
            let mut changes: Vec<f64> = r.iter().map(|x| x.bed_days_change as f64).collect();
            changes.sort_by(f64::total_cmp);
            let change_median = match n {
                0 => f64::NAN,
                _ if n % 2 == 1 => changes[n / 2],
                _ => 0.5 * (changes[n / 2 - 1] + changes[n / 2]),
            };
            ArmAdmissions {
                arm: arm.clone(),
                n,
                total_count,
                mean_count: total_count as f64 / nf,
                total_exposure: r.iter().map(|x| x.exposure).sum(),
                total_prior,
                mean_prior: total_prior as f64 / nf,
                n_any_before: r.iter().filter(|x| x.any_before).count(),
                n_any_after: r.iter().filter(|x| x.any_after).count(),
                bed_days_before_mean: mean(&|x| f64::from(x.bed_days_before)),
                bed_days_after_mean: mean(&|x| f64::from(x.bed_days_after)),
                change_mean: mean(&|x| x.bed_days_change as f64),
                change_median,
            }
        })
        .collect()
}

/// Arm indicator (true = intervention) for each row; rows of other arms are an error.
fn intervention_indicator(
    rows: &[ParticipantAdmissions],
    reference: &str,
    intervention: &str,
) -> Result<Vec<bool>, AdmissionsError> {
    rows.iter()
        .map(|r| {
            if r.arm == intervention {
                Ok(true)
            } else if r.arm == reference {
                Ok(false)
            } else {
                Err(AdmissionsError::UnknownArm {
                    participant: r.participant_id.clone(),
                    arm: r.arm.clone(),
                    reference: reference.to_string(),
                    intervention: intervention.to_string(),
                })
            }
        })
        .collect()
}

/// Likelihood-ratio test of the Poisson model against the negative binomial (theta = infinity
/// on the boundary: p-value halved; Lawless 1987, as `pscl::odTest`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThetaLrt {
    pub statistic: f64,
    pub p_value: f64,
}

/// Follow-up count models `count ~ arm + prior + offset(log(exposure))`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountAnalysis {
    pub formula: String,
    pub negative_binomial: NegBinFit,
    pub negative_binomial_rate_ratio: RatioEstimate,
    pub poisson: GlmFit,
    pub poisson_rate_ratio: RatioEstimate,
    pub overdispersion: Overdispersion,
    pub poisson_vs_negative_binomial: ThetaLrt,
}

/// Negative-binomial (`MASS::glm.nb`) and Poisson regression of the follow-up count on arm
/// (treatment coding, `reference` first) + prior count with `offset(log(exposure))`; rate
/// ratios IMR/reference with Wald CIs at `level`.
pub fn count_analysis(
    rows: &[ParticipantAdmissions],
    reference: &str,
    intervention: &str,
    level: f64,
    control: &GlmControl,
) -> Result<CountAnalysis, AdmissionsError> {
    let arm = intervention_indicator(rows, reference, intervention)?;
    let prior: Vec<f64> = rows.iter().map(|r| f64::from(r.prior)).collect();
    let y: Vec<f64> = rows.iter().map(|r| f64::from(r.count)).collect();
    let exposure: Vec<f64> = rows.iter().map(|r| r.exposure).collect();
    let offset = log_exposure_offset(&exposure)?;
    let (x, terms) = arm_prior_design(&arm, &prior, intervention)?;
    let term = format!("arm{intervention}");
    let nb = fit_negbin(&x, &terms, &y, Some(&offset), None, control)?;
    let pois = fit_poisson(&x, &terms, &y, Some(&offset), control)?;
    let od = overdispersion(&pois, &y)?;
    let stat = (nb.twologlik - 2.0 * pois.loglik).max(0.0);
    Ok(CountAnalysis {
        formula: "count ~ arm + prior + offset(log(exposure))".to_string(),
        negative_binomial_rate_ratio: nb.rate_ratio(&term, level)?,
        poisson_rate_ratio: pois.exp_coefficient(&term, level)?,
        negative_binomial: nb,
        poisson: pois,
        overdispersion: od,
        poisson_vs_negative_binomial: ThetaLrt {
            statistic: stat,
            p_value: 0.5 * pchisq_upper(stat, 1.0),
        },
    })
}

/// The trial's own admission analyses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialAdmissionAnalysis {
    pub formula: String,
    pub logistic: GlmFit,
    pub odds_ratio: RatioEstimate,
    pub risk_difference: RiskDifference,
    /// g-computation risk difference from the logistic model (point estimate).
    pub risk_difference_adjusted: f64,
    /// `wilcox.test(bed_days_change ~ arm, exact = FALSE, correct = TRUE)`, x = reference arm.
    pub bed_days_test: RankSumTest,
}

/// Logistic regression `any_after ~ arm + any_before`, odds ratio, unadjusted and adjusted
/// risk differences, and the Mann-Whitney test of the bed-day change (reference arm first, so
/// W is the Mann-Whitney U of the reference arm, as R with arm levels in study order).
pub fn trial_analysis(
    rows: &[ParticipantAdmissions],
    reference: &str,
    intervention: &str,
    level: f64,
    control: &GlmControl,
) -> Result<TrialAdmissionAnalysis, AdmissionsError> {
    let arm = intervention_indicator(rows, reference, intervention)?;
    let n = rows.len();
    let term = format!("arm{intervention}");
    let x = DMatrix::from_fn(n, 3, |i, j| match j {
        0 => 1.0,
        1 => f64::from(u8::from(arm.get(i).copied().unwrap_or(false))),
        _ => f64::from(u8::from(rows.get(i).is_some_and(|r| r.any_before))),
    });
    let terms = vec![
        "(Intercept)".to_string(),
        term.clone(),
        "any_before".to_string(),
    ];
    let y: Vec<f64> = rows
        .iter()
        .map(|r| f64::from(u8::from(r.any_after)))
        .collect();
    let logistic = fit_logistic(&x, &terms, &y, None, control)?;
    let odds_ratio = logistic.exp_coefficient(&term, level)?;
    let after: Vec<bool> = rows.iter().map(|r| r.any_after).collect();
    let rd = risk_difference(&after, &arm, level)?;
    let adj = standardized_risk_difference(&logistic, &x, &term)?;
    let change = |want: bool| -> Vec<f64> {
        rows.iter()
            .zip(&arm)
            .filter(|(_, &a)| a == want)
            .map(|(r, _)| r.bed_days_change as f64)
            .collect()
    };
    let test = wilcoxon_rank_sum(&change(false), &change(true), Alternative::TwoSided, true)?;
    Ok(TrialAdmissionAnalysis {
        formula: "any_after ~ arm + any_before (binomial, logit)".to_string(),
        logistic,
        odds_ratio,
        risk_difference: rd,
        risk_difference_adjusted: adj,
        bed_days_test: test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bed_days_count_admission_day_not_discharge_day() {
        let w = DayWindow { first: 1, last: 10 };
        assert_eq!(w.bed_days(2, Some(5)), 3); // days 2, 3, 4
        assert_eq!(w.bed_days(-3, Some(3)), 2); // days 1, 2
        assert_eq!(w.bed_days(8, None), 3); // open: 8, 9, 10
        assert_eq!(w.bed_days(4, Some(4)), 0); // same-day discharge
        assert_eq!(w.bed_days(11, Some(20)), 0);
    }

    #[test]
    fn export_date_caps_exposure() {
        let rules = AdmissionRules::from_months(21.0, 12.0, Some(1000 + 365)).unwrap();
        let p = vec![
            RandomizedParticipant {
                id: "early".into(),
                arm: "TAU".into(),
                randomized_on: 0,
            },
            RandomizedParticipant {
                id: "late".into(),
                arm: "IMR".into(),
                randomized_on: 1000,
            },
        ];
        let r = per_participant(&p, &[], &rules).unwrap();
        assert!((r[0].exposure - 1.75).abs() < 1e-15);
        assert!((r[1].exposure - 365.0 / 365.25).abs() < 1e-15);
        let dup = vec![p[0].clone(), p[0].clone()];
        assert!(matches!(
            per_participant(&dup, &[], &rules),
            Err(AdmissionsError::DuplicateParticipant { .. })
        ));
    }

    #[test]
    fn after_window_of_twelve_months() {
        let w = DayWindow::after_nominal(365.25, 365.25).unwrap();
        assert_eq!((w.first, w.last), (366, 730));
    }

    #[test]
    fn counts_and_errors() {
        let rules = AdmissionRules::from_months(21.0, 12.0, None).unwrap();
        assert!((rules.follow_up_days - 639.1875).abs() < 1e-12);
        let p = vec![RandomizedParticipant {
            id: "P1".into(),
            arm: "IMR".into(),
            randomized_on: 1000,
        }];
        let stays = vec![
            Stay {
                participant_id: "P1".into(),
                admitted_on: 1000 - 365,
                discharged_on: Some(1000 - 360),
                row: 2,
            },
            Stay {
                participant_id: "P1".into(),
                admitted_on: 1000 + 639,
                discharged_on: None,
                row: 3,
            },
            Stay {
                participant_id: "P1".into(),
                admitted_on: 1000 + 640,
                discharged_on: Some(1000 + 641),
                row: 4,
            },
        ];
        let r = per_participant(&p, &stays, &rules).unwrap();
        assert_eq!(r[0].prior, 1);
        assert_eq!(r[0].count, 1);
        assert_eq!(r[0].bed_days_before, 5);
        assert!((r[0].exposure - 1.75).abs() < 1e-15);
        let bad = vec![Stay {
            participant_id: "P9".into(),
            admitted_on: 0,
            discharged_on: None,
            row: 7,
        }];
        assert!(matches!(
            per_participant(&p, &bad, &rules),
            Err(AdmissionsError::UnknownParticipant { row: 7, .. })
        ));
        let bad = vec![Stay {
            participant_id: "P1".into(),
            admitted_on: 10,
            discharged_on: Some(9),
            row: 5,
        }];
        assert!(matches!(
            per_participant(&p, &bad, &rules),
            Err(AdmissionsError::DischargeBeforeAdmission { row: 5, .. })
        ));
    }
}
