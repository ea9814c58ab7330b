//! From the simulated trials to the answer: power per sample size with its Monte Carlo 95% CI
//! (Wilson score interval of a binomial proportion), the type I error on the same trials
//! without the effect, mean estimate and bias, mean CI width, how every fit ended, and the
//! smallest sample size reaching the target power.
//!
//! The smallest sample size is interpolated linearly between the two grid points whose power
//! brackets the target (the first crossing); its uncertainty is the same interpolation on the
//! upper and the lower Monte Carlo confidence limits of the power curve (an open end when a
//! limit does not cross the target inside the grid).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::analyse::{FitStatus, TestResult};
use crate::stats::distributions::qnorm;

/// One simulated trial: its data and the tests with and without the effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub size_index: usize,
    pub trial: usize,
    pub n_participants: usize,
    pub n_groups: usize,
    /// Observations with the effect (dropout can differ without it under MAR).
    pub n_observations: usize,
    /// With the planned effect.
    pub alt: TestResult,
    /// The same trial without the effect.
    pub null: TestResult,
}

/// A proportion with its Monte Carlo SE and Wilson 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    pub estimate: f64,
    pub successes: usize,
    pub trials: usize,
    /// Binomial SE `sqrt(p (1 - p) / n)`.
    pub mc_se: f64,
    pub conf_low: f64,
    pub conf_high: f64,
}

/// Wilson score interval (R's `prop.test(correct = FALSE)$conf.int`).
pub fn proportion(successes: usize, trials: usize) -> Proportion {
    let n = trials as f64;
    let p = if trials > 0 {
        successes as f64 / n
    } else {
        f64::NAN
    };
    let z = qnorm(0.975);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Proportion {
        estimate: p,
        successes,
        trials,
        mc_se: (p * (1.0 - p) / n).sqrt(),
        conf_low: (centre - half).max(0.0),
        conf_high: (centre + half).min(1.0),
    }
}

/// How the fits of one sample size ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FitCounts {
    pub ok: usize,
    pub singular: usize,
    pub non_converged: usize,
    pub failed: usize,
    /// Failures by message (with the effect and without, together).
    pub failure_reasons: BTreeMap<String, usize>,
}

/// The summary of one sample size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeSummary {
    /// Participants, or groups per arm (see [`PowerSummary::size_unit`]).
    pub size: usize,
    pub mean_participants: f64,
    pub mean_groups: f64,
    pub mean_observations: f64,
    pub simulations: usize,
    /// Share of all simulated trials (failed fits count as not rejecting) that rejected.
    pub power: Proportion,
    pub type1_error: Proportion,
    /// Mean of the estimates (fits with an estimate) and its difference from the truth.
    pub mean_estimate: f64,
    pub bias: f64,
    /// Monte Carlo SE of the mean estimate.
    pub bias_mc_se: f64,
    /// SD of the estimates (the empirical SE) and the mean model SE.
    pub empirical_se: f64,
    pub mean_model_se: f64,
    pub mean_ci_width: f64,
    pub mean_df: f64,
    /// Fits with the effect; without it.
    pub fits: FitCounts,
    pub fits_null: FitCounts,
    /// Share of non-converged or singular fits (with the effect).
    pub share_problem_fits: f64,
}

/// The smallest sample size reaching the target power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Required {
    pub target_power: f64,
    /// Interpolated size; `None` when the grid does not reach the target (or the smallest
    /// size already exceeds it: then `at_most` is that size).
    pub size: Option<f64>,
    /// From the upper confidence limit of the power curve (the lower end of the interval).
    pub size_low: Option<f64>,
    /// From the lower confidence limit (the upper end).
    pub size_high: Option<f64>,
    /// The smallest grid size with power >= target.
    pub first_grid_size: Option<usize>,
    /// Mean participants and groups (all arms) at the interpolated size (interpolated the same
    /// way between the two bracketing grid points).
    pub participants: Option<f64>,
    pub groups: Option<f64>,
    pub note: String,
}

/// The whole answer (plain data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerSummary {
    pub size_unit: String,
    pub true_effect: f64,
    pub sizes: Vec<SizeSummary>,
    pub required: Required,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn sd(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return f64::NAN;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

fn counts<'a>(tests: impl Iterator<Item = &'a TestResult>) -> FitCounts {
    let mut c = FitCounts::default();
    for t in tests {
        match t.status {
            FitStatus::Ok => c.ok += 1,
            FitStatus::Singular => c.singular += 1,
            FitStatus::NonConverged => c.non_converged += 1,
            FitStatus::Failed => {
                c.failed += 1;
                *c.failure_reasons
                    .entry(t.error.clone().unwrap_or_default())
                    .or_default() += 1;
            }
        }
    }
    c
}

/// Summarises the records of one sample size (in trial order).
pub fn summarise_size(size: usize, true_effect: f64, records: &[&TrialRecord]) -> SizeSummary {
    let n = records.len();
    let est: Vec<f64> = records.iter().filter_map(|r| r.alt.estimate).collect();
    let se: Vec<f64> = records.iter().filter_map(|r| r.alt.std_error).collect();
    let df: Vec<f64> = records.iter().filter_map(|r| r.alt.df).collect();
    let width: Vec<f64> = records
        .iter()
        .filter_map(|r| Some(r.alt.conf_high? - r.alt.conf_low?))
        .collect();
    let fits = counts(records.iter().map(|r| &r.alt));
    let fits_null = counts(records.iter().map(|r| &r.null));
    let mean_est = mean(&est);
    let emp = sd(&est);
    SizeSummary {
        size,
        mean_participants: mean(
            &records
                .iter()
                .map(|r| r.n_participants as f64)
                .collect::<Vec<_>>(),
        ),
        mean_groups: mean(
            &records
                .iter()
                .map(|r| r.n_groups as f64)
                .collect::<Vec<_>>(),
        ),
        mean_observations: mean(
            &records
                .iter()
                .map(|r| r.n_observations as f64)
                .collect::<Vec<_>>(),
        ),
        simulations: n,
        power: proportion(records.iter().filter(|r| r.alt.reject).count(), n),
        type1_error: proportion(records.iter().filter(|r| r.null.reject).count(), n),
        mean_estimate: mean_est,
        bias: mean_est - true_effect,
        bias_mc_se: emp / (est.len() as f64).sqrt(),
        empirical_se: emp,
        mean_model_se: mean(&se),
        mean_ci_width: mean(&width),
        mean_df: mean(&df),
        share_problem_fits: if n > 0 {
            (fits.singular + fits.non_converged) as f64 / n as f64
        } else {
            f64::NAN
        },
        fits,
        fits_null,
    }
}

/// First crossing of `target` by the curve `(x, y)`, linearly interpolated.
fn crossing(x: &[f64], y: &[f64], target: f64) -> Option<f64> {
    let k = y.iter().position(|&p| p >= target)?;
    if k == 0 {
        return None;
    }
    let (x0, x1, y0, y1) = (x[k - 1], x[k], y[k - 1], y[k]);
    Some(if y1 > y0 {
        x0 + (target - y0) / (y1 - y0) * (x1 - x0)
    } else {
        x1
    })
}

/// The smallest size reaching `target` (see the module documentation).
pub fn required_size(sizes: &[SizeSummary], target: f64, unit: &str) -> Required {
    let x: Vec<f64> = sizes.iter().map(|s| s.size as f64).collect();
    let p: Vec<f64> = sizes.iter().map(|s| s.power.estimate).collect();
    let lo: Vec<f64> = sizes.iter().map(|s| s.power.conf_low).collect();
    let hi: Vec<f64> = sizes.iter().map(|s| s.power.conf_high).collect();
    let first = p.iter().position(|&v| v >= target).map(|k| sizes[k].size);
    let size = crossing(&x, &p, target);
    let size_low = crossing(&x, &hi, target);
    let size_high = crossing(&x, &lo, target);
    // The same interpolation of the mean participants and groups.
    let at = |v: &dyn Fn(&SizeSummary) -> f64| -> Option<f64> {
        let n = size?;
        let k = x.iter().position(|&xi| xi >= n)?;
        if k == 0 {
            return Some(v(&sizes[0]));
        }
        let w = (n - x[k - 1]) / (x[k] - x[k - 1]);
        Some(v(&sizes[k - 1]) + w * (v(&sizes[k]) - v(&sizes[k - 1])))
    };
    let participants = at(&|s| s.mean_participants);
    let groups = at(&|s| s.mean_groups);
    let note = match (first, size) {
        (None, _) => format!(
            "the target power {target} is not reached in the grid (largest {unit} {}): extend sample_size",
            sizes.last().map_or(0, |s| s.size)
        ),
        (Some(f), None) => format!(
            "already reached at the smallest {unit} of the grid ({f}): add smaller sizes to interpolate"
        ),
        (Some(_), Some(s)) => {
            let fmt = |v: Option<f64>, open: &str| v.map_or(open.to_string(), |v| format!("{v:.1}"));
            let with = match (unit, participants, groups) {
                ("groups_per_arm", Some(p), _) => format!(", about {p:.0} participants"),
                (_, _, Some(g)) if g > 0.0 => format!(", about {g:.0} groups"),
                _ => String::new(),
            };
            format!(
                "{unit} {s:.1} (Monte Carlo 95% range {} to {}){with}",
                fmt(size_low, "below the grid"),
                fmt(size_high, "beyond the grid")
            )
        }
    };
    Required {
        target_power: target,
        size,
        size_low,
        size_high,
        first_grid_size: first,
        participants,
        groups,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_matches_prop_test() {
        // R: prop.test(x, n, correct = FALSE)$conf.int
        for (x, n, lo, hi) in [
            (8, 10, 0.4901624715, 0.9433178485),
            (0, 50, 0.0, 0.07134759913),
            (803, 1000, 0.7772091461, 0.8264718383),
        ] {
            let p = proportion(x, n);
            assert!((p.conf_low - lo).abs() < 1e-8, "{x}/{n}: {}", p.conf_low);
            assert!((p.conf_high - hi).abs() < 1e-8, "{x}/{n}: {}", p.conf_high);
        }
    }

    fn size(n: usize, power: usize, participants: f64) -> SizeSummary {
        let mut s = summarise_size(n, 0.0, &[]);
        s.power = proportion(power, 1000);
        s.mean_participants = participants;
        s.mean_groups = participants / 10.0;
        s
    }

    #[test]
    fn required_size_interpolates_between_the_bracketing_sizes() {
        let sizes = vec![
            size(100, 500, 100.0),
            size(200, 700, 200.0),
            size(300, 900, 300.0),
        ];
        let r = required_size(&sizes, 0.8, "participants");
        let n = r.size.unwrap();
        assert!((n - 250.0).abs() < 1e-9, "{n}");
        assert_eq!(r.first_grid_size, Some(300));
        assert!(r.size_low.unwrap() < n && r.size_high.unwrap() > n);
        assert!((r.participants.unwrap() - 250.0).abs() < 1e-9);
        assert!((r.groups.unwrap() - 25.0).abs() < 1e-9);
        // Not reached, and reached at once.
        assert!(required_size(&sizes, 0.95, "participants").size.is_none());
        let r = required_size(&sizes, 0.3, "participants");
        assert!(r.size.is_none() && r.first_grid_size == Some(100));
        assert!(r.note.contains("already reached"));
    }
}
