//! Psychiatric admissions before and after randomization (stream `Admissions`).
//!
//! Per participant an alternating process from `history_days` before randomization to the
//! export day: time out of hospital until the next admission is exponential with rate
//! lambda_i = rate_per_year / 365.25 x G_i x exp(s z_H - s^2 / 2) per day at risk (x rate_ratio
//! after randomization in the intervention arm; the exponential's memorylessness lets the
//! rate change at randomization), G_i ~ Gamma(k, 1/k). Given G the counts in a window are
//! Poisson, so over G they are negative binomial with size k (the gamma-Poisson mixture behind
//! `MASS::glm.nb`). Stays are lognormal (median `los_median_days`), the next admission starts
//! at least `min_gap_days` after a discharge, so episodes never overlap. A stay still running
//! at the export day has an empty discharge date.
use super::config::SimConfig;
use super::design::TrialDesign;
use super::rng::{logistic, Rng, Stream};

/// One admission episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub person: usize,
    pub admitted_on: i64,
    /// None = still admitted at export.
    pub discharged_on: Option<i64>,
    pub involuntary: bool,
}

/// Draws every participant's admissions; `z_honos` is the standardized person HoNOS effect.
pub fn draw(cfg: &SimConfig, design: &TrialDesign, z_honos: &[f64], seed: u64) -> Vec<Admission> {
    let mut rng = Rng::new(seed, Stream::Admissions);
    let a = &cfg.admissions;
    let mut out = Vec::new();
    let log_median = a.los_median_days.ln();
    for (pi, person) in design.persons.iter().enumerate() {
        let frailty = rng.gamma(a.nb_k, 1.0 / a.nb_k);
        let z = z_honos.get(pi).copied().unwrap_or(0.0);
        let s = a.honos_log_slope;
        let base = a.rate_per_year / 365.25 * frailty * (s * z - 0.5 * s * s).exp();
        let after = if person.arm == 1 {
            base * a.rate_ratio
        } else {
            base
        };
        let rand_day = person.randomized_on as f64;
        let mut t = (person.randomized_on - i64::from(a.history_days)) as f64;
        let end = design.export_day as f64;
        loop {
            // waiting time with a rate that changes at randomization
            let mut e = rng.exp1();
            if t < rand_day {
                let to_boundary = rand_day - t;
                if base > 0.0 && e / base < to_boundary {
                    t += e / base;
                } else {
                    e -= to_boundary * base;
                    t = rand_day;
                    t = if after > 0.0 {
                        t + e / after
                    } else {
                        f64::INFINITY
                    };
                }
            } else {
                t = if after > 0.0 {
                    t + e / after
                } else {
                    f64::INFINITY
                };
            }
            let los_draw = rng.normal(log_median, a.los_sdlog).exp().round();
            let inv_u = rng.uniform();
            if t >= end {
                break;
            }
            let admitted = t.floor() as i64;
            let los = los_draw.clamp(f64::from(a.los_min_days), f64::from(a.los_max_days)) as i64;
            let discharged = admitted + los;
            let involuntary = inv_u < logistic(a.involuntary_logit + a.involuntary_honos * z);
            out.push(Admission {
                person: pi,
                admitted_on: admitted,
                discharged_on: (discharged <= design.export_day).then_some(discharged),
                involuntary,
            });
            t = (discharged + i64::from(a.min_gap_days)) as f64;
        }
    }
    out
}
