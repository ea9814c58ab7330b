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

/// The rate ratio of the intervention arm in period `k` (between waves `k` and `k + 1`):
/// `rate_ratio_by_period[k]`, or `rate_ratio` when that is empty.
pub fn period_rate_ratio(cfg: &SimConfig, k: usize) -> f64 {
    let a = &cfg.admissions;
    a.rate_ratio_by_period
        .get(k)
        .or(a.rate_ratio_by_period.last())
        .copied()
        .unwrap_or(a.rate_ratio)
}

/// The piecewise-constant admission rate of one participant as `(start day, rate per day)`
/// segments, the first from minus infinity: `base` before randomization, then `base` times
/// the period's rate ratio (intervention arm) from randomization and from each wave's
/// nominal day (`months x 365.25 / 12` after randomization) on.
fn rate_segments(cfg: &SimConfig, base: f64, rand_day: f64, intervention: bool) -> Vec<(f64, f64)> {
    let a = &cfg.admissions;
    let mut out = vec![(f64::NEG_INFINITY, base)];
    if !intervention {
        out.push((rand_day, base));
    } else if a.rate_ratio_by_period.is_empty() {
        out.push((rand_day, base * a.rate_ratio));
    } else {
        let periods = cfg.study.waves.len().saturating_sub(1);
        for (k, w) in cfg.study.waves.iter().take(periods).enumerate() {
            let start = rand_day + w.months * 365.25 / 12.0;
            out.push((start, base * period_rate_ratio(cfg, k)));
        }
    }
    out
}

/// The time of the next event after `t` for the unit exponential draw `e`: the rate is
/// integrated over the segments until it reaches `e` (the exponential's memorylessness lets
/// the rate change at a segment boundary); infinity when a zero rate runs to the end.
fn next_event(segments: &[(f64, f64)], mut t: f64, mut e: f64) -> f64 {
    let mut s = segments.iter().rposition(|seg| seg.0 <= t).unwrap_or(0);
    loop {
        let rate = segments[s].1;
        let Some(&(boundary, _)) = segments.get(s + 1) else {
            return if rate > 0.0 {
                t + e / rate
            } else {
                f64::INFINITY
            };
        };
        let to_boundary = boundary - t;
        if rate > 0.0 && e / rate < to_boundary {
            return t + e / rate;
        }
        e -= to_boundary * rate;
        t = boundary;
        s += 1;
    }
}

/// Draws every participant's admissions; `z_honos` is the standardized person HoNOS effect.
pub fn draw(cfg: &SimConfig, design: &TrialDesign, z_honos: &[f64], seed: u64) -> Vec<Admission> {
    let mut rng = Rng::new(seed, Stream::Admissions);
    let a = &cfg.admissions;
    let mut out = Vec::new();
    let log_median = a.los_median_days.ln();
    for (pi, person) in design.persons.iter().enumerate() {
        let frailty = match a.frailty {
            super::config::Frailty::Gamma => rng.gamma(a.nb_k, 1.0 / a.nb_k),
            super::config::Frailty::Lognormal => {
                let s = (1.0 / a.nb_k).ln_1p().sqrt();
                (s * rng.normal(0.0, 1.0) - 0.5 * s * s).exp()
            }
        };
        let z = z_honos.get(pi).copied().unwrap_or(0.0);
        let s = a.honos_log_slope;
        let base = a.rate_per_year / 365.25 * frailty * (s * z - 0.5 * s * s).exp();
        let rand_day = person.randomized_on as f64;
        let segments = rate_segments(cfg, base, rand_day, person.arm == 1);
        let mut t = (person.randomized_on - i64::from(a.history_days)) as f64;
        let end = design.export_day as f64;
        loop {
            t = next_event(&segments, t, rng.exp1());
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
