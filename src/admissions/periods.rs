//! Admissions per participant in each period between consecutive waves: the data of the
//! per-period models (issue 15, point 3).
//!
//! Period `k` runs from wave `k - 1` to wave `k`: the days `d` after randomization with
//! `m_(k-1) < d <= m_k` at the waves' nominal days `m = months x 365.25 / 12` (as the
//! follow-up window of [`super::per_participant`], which is the union of the periods). Per
//! participant and period:
//! * `admissions`: admissions starting in the period;
//! * `bed_days`: days in hospital in the period (admission day counted, discharge day not);
//! * `days_at_risk`: the period's days minus its bed days (a participant in hospital cannot
//!   be admitted), the exposure offset `log(days_at_risk / 365.25)`;
//! * `prior`: admissions starting in the year before randomization (the covariate).
//!
//! A participant-period without a day at risk (in hospital throughout) has no exposure and is
//! left out with that reason; nothing else is dropped.
use super::AdmissionsError;
use super::{check_stays, DayWindow, RandomizedParticipant, Stay, DAYS_PER_YEAR};

/// One period: its label (`T1_T2`: the waves that start and end it, as the R reference
/// script names it), the wave that starts it, and its days.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    pub label: String,
    pub from_wave: String,
    pub to_wave: String,
    pub window: DayWindow,
}

impl Period {
    /// Days in the period.
    pub fn days(&self) -> u32 {
        (self.window.last - self.window.first + 1).max(0) as u32
    }
}

/// The periods between consecutive waves `(label, months)` in wave order.
pub fn periods_between(waves: &[(String, f64)]) -> Result<Vec<Period>, AdmissionsError> {
    if waves.len() < 2 {
        return Err(AdmissionsError::InvalidWindow(
            "per-period admissions need at least two waves".into(),
        ));
    }
    waves
        .windows(2)
        .map(|w| {
            let (from, to) = (&w[0], &w[1]);
            let start = from.1 * DAYS_PER_YEAR / 12.0;
            let window = DayWindow::after_nominal(start, (to.1 - from.1) * DAYS_PER_YEAR / 12.0)
                .map_err(|_| {
                    AdmissionsError::InvalidWindow(format!(
                        "waves `{}` ({} months) and `{}` ({} months) do not make a period",
                        from.0, from.1, to.0, to.1
                    ))
                })?;
            Ok(Period {
                label: format!("{}_{}", from.0, to.0),
                from_wave: from.0.clone(),
                to_wave: to.0.clone(),
                window,
            })
        })
        .collect()
}

/// One participant in one period.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodRow {
    /// Index into the participants.
    pub participant: usize,
    /// Index into the periods.
    pub period: usize,
    pub admissions: u32,
    pub bed_days: u32,
    pub days_at_risk: u32,
    /// Admissions in the year before randomization.
    pub prior: u32,
}

impl PeriodRow {
    /// Person-years at risk.
    pub fn exposure_years(&self) -> f64 {
        f64::from(self.days_at_risk) / DAYS_PER_YEAR
    }
}

/// The participant-period rows, and those left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PeriodData {
    pub rows: Vec<PeriodRow>,
    /// `(participant, period)` without a day at risk.
    pub no_days_at_risk: Vec<(usize, usize)>,
}

/// Counts, bed days and days at risk of every participant in every period (participants in
/// input order, then periods); `prior` is the window of the prior count.
pub fn per_period(
    participants: &[RandomizedParticipant],
    stays: &[Stay],
    periods: &[Period],
    prior: DayWindow,
) -> Result<PeriodData, AdmissionsError> {
    let located = check_stays(participants, stays)?;
    let np = periods.len();
    let mut admissions = vec![0u32; participants.len() * np];
    let mut bed_days = vec![0u32; participants.len() * np];
    let mut prior_count = vec![0u32; participants.len()];
    for (i, a, e) in located {
        if prior.contains(a) {
            prior_count[i] += 1;
        }
        for (k, p) in periods.iter().enumerate() {
            if p.window.contains(a) {
                admissions[i * np + k] += 1;
            }
            bed_days[i * np + k] += p.window.bed_days(a, e);
        }
    }
    let mut out = PeriodData::default();
    for i in 0..participants.len() {
        for (k, p) in periods.iter().enumerate() {
            let bd = bed_days[i * np + k].min(p.days());
            let at_risk = p.days() - bd;
            if at_risk == 0 {
                out.no_days_at_risk.push((i, k));
                continue;
            }
            out.rows.push(PeriodRow {
                participant: i,
                period: k,
                admissions: admissions[i * np + k],
                bed_days: bd,
                days_at_risk: at_risk,
                prior: prior_count[i],
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waves() -> Vec<(String, f64)> {
        vec![("T1".into(), 0.0), ("T2".into(), 12.0), ("T3".into(), 18.0)]
    }

    #[test]
    fn periods_follow_the_waves() {
        let p = periods_between(&waves()).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].window.first, p[0].window.last), (1, 365));
        assert_eq!((p[1].window.first, p[1].window.last), (366, 547));
        assert_eq!(p[1].label, "T2_T3");
        assert_eq!(p[1].from_wave, "T2");
        assert!(periods_between(&waves()[..1]).is_err());
        let bad = vec![("T1".into(), 0.0), ("T2".into(), 0.0)];
        assert!(periods_between(&bad).is_err());
    }

    #[test]
    fn counts_bed_days_and_days_at_risk() {
        let periods = periods_between(&waves()).unwrap();
        let people = vec![
            RandomizedParticipant {
                id: "A".into(),
                arm: "CAU".into(),
                randomized_on: 100,
            },
            RandomizedParticipant {
                id: "B".into(),
                arm: "IMR".into(),
                randomized_on: 0,
            },
        ];
        let stay = |id: &str, a: i32, e: Option<i32>, row| Stay {
            participant_id: id.into(),
            admitted_on: a,
            discharged_on: e,
            row,
        };
        let stays = vec![
            stay("A", 100 - 30, Some(100 - 20), 2),   // prior year
            stay("A", 100 + 360, Some(100 + 370), 3), // days 360-369: 6 bed days in period 1, 4 in 2
            stay("B", 300, None, 4), // open from day 300: period 2 fully in hospital
        ];
        let prior = DayWindow {
            first: -365,
            last: -1,
        };
        let d = per_period(&people, &stays, &periods, prior).unwrap();
        assert_eq!(d.rows.len(), 3);
        assert_eq!(d.no_days_at_risk, vec![(1, 1)]);
        let a1 = &d.rows[0];
        assert_eq!(
            (a1.admissions, a1.bed_days, a1.days_at_risk, a1.prior),
            (1, 6, 359, 1)
        );
        let a2 = &d.rows[1];
        assert_eq!((a2.admissions, a2.bed_days, a2.days_at_risk), (0, 4, 178));
        let b1 = &d.rows[2];
        assert_eq!((b1.admissions, b1.bed_days, b1.days_at_risk), (1, 66, 299));
        let unknown = vec![stay("Z", 0, None, 9)];
        assert!(matches!(
            per_period(&people, &unknown, &periods, prior),
            Err(AdmissionsError::UnknownParticipant { row: 9, .. })
        ));
    }
}
