//! One simulated trial of a plan: who is in which arm, site and group, and the outcome at each
//! wave with and without the effect (the same draws, so the type I error is estimated on "the
//! same trials without the effect").
//!
//! The score model (`sigma^2 = outcome.baseline_sd^2`):
//!
//! ```text
//! y_it = mu + s_site + c_group + u_i + e_it + [treated, follow-up] (g_group + delta_t)
//! var(s) = icc_site sigma^2, var(u) = icc_participant sigma^2,
//! cluster:  var(c) = icc_group sigma^2 (every wave), g = 0
//! partially nested: c = 0, var(g) = tau^2 = icc_group sigma^2 / (1 - icc_group), so that
//!           icc_group = tau^2 / (tau^2 + sigma^2) in the treated arm at follow-up
//!           (Moerbeek & Wong 2008; Baldwin et al. 2011)
//! e_it AR(1) over waves with correlation `autocorrelation`, var(e) = sigma^2 minus the rest
//! ```
//!
//! Item level (`outcome.level = "item"`): each of `count` items is
//! `clamp(round(y_it + N(0, noise_sd)), min, max)` and the score is their mean, so floor and
//! ceiling effects and rounding attenuate the effect as in a real questionnaire.
//!
//! Dropout is monotone: `dropout.rates` is the cumulative share without data at each wave.
//! MCAR: a participant still in drops out before wave t with the conditional hazard
//! `h_t = (D_t - D_{t-1}) / (1 - D_{t-1})`. MAR: `logit P(drop) = a_t - mar_strength z`,
//! with `z` the last observed score in baseline SDs from the baseline mean and `a_t` solved
//! so that the rate is `h_t` for `z ~ N(0, 1)` (the marginal rate is therefore close to, not
//! exactly, `D_t`).
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, StandardNormal};

use super::plan::{DesignKind, Mechanism, OutcomeLevel, Plan};
use crate::stats::rng::{substream, tags};

/// One participant of a simulated trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// 0 = control, 1 = intervention.
    pub arm: usize,
    pub site: usize,
    pub group: Option<usize>,
}

/// One simulated trial: participants and their scores (participant x wave, row-major, NaN
/// after dropout), with (`alt`) and without (`null`) the effect.
#[derive(Debug, Clone)]
pub struct SimTrial {
    pub persons: Vec<Person>,
    pub n_groups: usize,
    pub n_waves: usize,
    pub null: Vec<f64>,
    pub alt: Vec<f64>,
}

/// The stream index of trial `trial` of sample size `size_index`: a trial's draws depend on
/// (plan seed, size index, trial index) only, never on sharding or threads.
pub fn trial_stream(size_index: usize, trial: usize) -> u64 {
    ((size_index as u64) << 28) | trial as u64
}

/// The random stream of one trial.
pub fn trial_rng(seed: u64, size_index: usize, trial: usize) -> ChaCha8Rng {
    substream(seed, tags::POWER, trial_stream(size_index, trial))
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// Mean-one gamma multipliers with coefficient of variation `cv` (1 when cv = 0).
fn size_multiplier(cv: f64, rng: &mut ChaCha8Rng) -> f64 {
    if cv <= 0.0 {
        return 1.0;
    }
    let shape = 1.0 / (cv * cv);
    match Gamma::new(shape, 1.0 / shape) {
        Ok(g) => g.sample(rng),
        Err(_) => 1.0,
    }
}

/// Splits `n` participants into `g` groups of sizes proportional to gamma(1/cv^2) weights, at
/// least one each (largest remainder).
pub fn split_groups(n: usize, g: usize, cv: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    if g == 0 {
        return Vec::new();
    }
    let g = g.min(n.max(1));
    let w: Vec<f64> = (0..g).map(|_| size_multiplier(cv, rng)).collect();
    let total: f64 = w.iter().sum();
    let spare = n - g;
    let exact: Vec<f64> = w.iter().map(|x| spare as f64 * x / total).collect();
    let mut sizes: Vec<usize> = exact.iter().map(|x| 1 + x.floor() as usize).collect();
    let mut left = n - sizes.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..g).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let mut i = 0;
    while left > 0 {
        sizes[order[i % g]] += 1;
        left -= 1;
        i += 1;
    }
    sizes
}

/// The participants of one trial at sample size `size` (participants, or groups per arm).
fn draw_people(plan: &Plan, size: usize, rng: &mut ChaCha8Rng) -> (Vec<Person>, usize) {
    let sites = plan.design.sites.max(1);
    let m = plan.design.group_size.unwrap_or(1.0);
    let cv = plan.design.group_size_cv;
    let mut persons = Vec::new();
    let mut n_groups = 0;
    match plan.design.kind {
        DesignKind::Individual => {
            for (arm, &n) in plan.split(size).iter().enumerate() {
                for i in 0..n {
                    persons.push(Person {
                        arm,
                        site: i % sites,
                        group: None,
                    });
                }
            }
        }
        DesignKind::PartiallyNested => {
            let per_arm = plan.split(size);
            for i in 0..per_arm[0] {
                persons.push(Person {
                    arm: 0,
                    site: i % sites,
                    group: None,
                });
            }
            let treated = per_arm[1];
            let g = plan
                .design
                .groups
                .unwrap_or_else(|| ((treated as f64 / m).round() as usize).max(1));
            for (gi, &s) in split_groups(treated, g, cv, rng).iter().enumerate() {
                for _ in 0..s {
                    persons.push(Person {
                        arm: 1,
                        site: gi % sites,
                        group: Some(gi),
                    });
                }
                n_groups += 1;
            }
        }
        DesignKind::Cluster => {
            for arm in 0..2 {
                for gi in 0..size {
                    let s = ((m * size_multiplier(cv, rng)).round() as usize).max(1);
                    for _ in 0..s {
                        persons.push(Person {
                            arm,
                            site: gi % sites,
                            group: Some(n_groups),
                        });
                    }
                    n_groups += 1;
                }
            }
        }
    }
    (persons, n_groups)
}

/// The MAR intercept `a` with `E[logistic(a - gamma z)] = h` for `z ~ N(0, 1)` (bisection on
/// a 41-point trapezoid rule over [-5, 5]).
pub fn mar_intercept(h: f64, gamma: f64) -> f64 {
    if h <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let rate = |a: f64| {
        let mut acc = 0.0;
        let mut wsum = 0.0;
        for i in 0..=40 {
            let z = -5.0 + 0.25 * i as f64;
            let w = (-0.5 * z * z).exp() * if i == 0 || i == 40 { 0.5 } else { 1.0 };
            acc += w / (1.0 + (-(a - gamma * z)).exp());
            wsum += w;
        }
        acc / wsum
    };
    let (mut lo, mut hi) = (-40.0, 40.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if rate(mid) < h {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Whether wave `t` is a follow-up wave (every wave after the first; the only wave of a
/// post-test-only design).
pub fn is_followup(t: usize, n_waves: usize) -> bool {
    t > 0 || n_waves == 1
}

/// Draws trial `trial` of sample size index `size_index` (size `size`).
pub fn draw_trial(plan: &Plan, size_index: usize, size: usize, trial: usize) -> SimTrial {
    let mut rng = trial_rng(plan.seed, size_index, trial);
    let (persons, n_groups) = draw_people(plan, size, &mut rng);
    let o = &plan.outcome;
    let t_n = plan.waves.labels.len();
    let var = o.baseline_sd * o.baseline_sd;
    let cluster = plan.design.kind == DesignKind::Cluster;
    let nested = plan.design.kind == DesignKind::PartiallyNested;
    let sd_site = (o.icc_site * var).sqrt();
    let sd_part = (o.icc_participant * var).sqrt();
    let sd_cluster = if cluster {
        (o.icc_group * var).sqrt()
    } else {
        0.0
    };
    let sd_trained = if nested {
        (o.icc_group * var / (1.0 - o.icc_group)).sqrt()
    } else {
        0.0
    };
    let shared = o.icc_site + o.icc_participant + if cluster { o.icc_group } else { 0.0 };
    let sd_e = ((1.0 - shared) * var).max(0.0).sqrt();
    let rho = o.autocorrelation;
    let site_eff: Vec<f64> = (0..plan.design.sites.max(1))
        .map(|_| sd_site * normal(&mut rng))
        .collect();
    let group_eff: Vec<f64> = (0..n_groups)
        .map(|_| (sd_cluster + sd_trained) * normal(&mut rng))
        .collect();
    let effect = plan.effect_by_wave();
    let n = persons.len();
    let mut null = vec![0.0; n * t_n];
    let mut alt = vec![0.0; n * t_n];
    let items = o.items.as_ref().filter(|_| o.level == OutcomeLevel::Item);
    let mut item_noise = vec![0.0; items.map_or(0, |it| it.count)];
    for (i, p) in persons.iter().enumerate() {
        let u = sd_part * normal(&mut rng);
        let mut e = normal(&mut rng);
        for t in 0..t_n {
            if t > 0 {
                e = rho * e + (1.0 - rho * rho).sqrt() * normal(&mut rng);
            }
            let fu = is_followup(t, t_n);
            let g = p.group.map_or(0.0, |g| group_eff[g]);
            let mut y = o.baseline_mean + site_eff[p.site] + u + sd_e * e;
            if cluster || (nested && p.arm == 1 && fu) {
                y += g;
            }
            let y1 = y + if p.arm == 1 { effect[t] } else { 0.0 };
            match items {
                None => {
                    null[i * t_n + t] = y;
                    alt[i * t_n + t] = y1;
                }
                Some(it) => {
                    for z in item_noise.iter_mut() {
                        *z = it.noise_sd * normal(&mut rng);
                    }
                    let score = |lat: f64| {
                        item_noise
                            .iter()
                            .map(|z| (lat + z).round().clamp(it.min, it.max))
                            .sum::<f64>()
                            / it.count as f64
                    };
                    null[i * t_n + t] = score(y);
                    alt[i * t_n + t] = score(y1);
                }
            }
        }
    }
    // Dropout: one uniform per participant and follow-up wave, applied to each version's own
    // scores (MAR depends on them).
    let rates = plan.dropout_by_wave();
    let uniforms: Vec<f64> = (0..n * t_n).map(|_| rng.random::<f64>()).collect();
    let gamma = plan.dropout.mar_strength;
    let mar = plan.dropout.mechanism == Mechanism::MAR;
    let mut prev = 0.0;
    let mut hazards = vec![0.0; t_n];
    for t in 1..t_n {
        let d = rates[t].max(prev);
        hazards[t] = if prev < 1.0 {
            (d - prev) / (1.0 - prev)
        } else {
            0.0
        };
        prev = d;
    }
    let intercepts: Vec<f64> = hazards.iter().map(|&h| mar_intercept(h, gamma)).collect();
    for y in [&mut null, &mut alt] {
        for i in 0..n {
            for t in 1..t_n {
                let last = y[i * t_n + t - 1];
                if last.is_nan() {
                    y[i * t_n + t] = f64::NAN;
                    continue;
                }
                let p = if mar {
                    let z = (last - o.baseline_mean) / o.baseline_sd;
                    1.0 / (1.0 + (-(intercepts[t] - gamma * z)).exp())
                } else {
                    hazards[t]
                };
                if uniforms[i * t_n + t] < p {
                    y[i * t_n + t] = f64::NAN;
                }
            }
        }
    }
    SimTrial {
        persons,
        n_groups,
        n_waves: t_n,
        null,
        alt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_sizes_add_up_and_every_group_has_someone() {
        let mut rng = trial_rng(1, 0, 0);
        for (n, g, cv) in [(60, 8, 0.5), (10, 10, 1.0), (101, 7, 0.0)] {
            let s = split_groups(n, g, cv, &mut rng);
            assert_eq!(s.len(), g);
            assert_eq!(s.iter().sum::<usize>(), n);
            assert!(s.iter().all(|&x| x >= 1));
        }
        assert_eq!(split_groups(12, 3, 0.0, &mut rng), vec![4, 4, 4]);
    }

    #[test]
    fn mar_intercept_gives_the_rate() {
        let a = mar_intercept(0.2, 0.0);
        assert!((1.0 / (1.0 + (-a).exp()) - 0.2).abs() < 1e-9);
        assert!(
            mar_intercept(0.2, 1.0) < a,
            "with gamma the intercept is lower (convexity)"
        );
    }

    fn plan(design: &str, outcome: &str) -> Plan {
        Plan::from_toml_str(&format!(
            "seed = 3\n[arms]\nlabels = [\"C\", \"T\"]\n[design]\n{design}\n\
             [waves]\nlabels = [\"T0\", \"T1\", \"T2\"]\n[outcome]\nbaseline_mean = 2\n\
             baseline_sd = 2\n{outcome}\n[effect]\nvalues = {{ T2 = 1.0 }}\n\
             [sample_size]\nparticipants = [20000]\n"
        ))
        .unwrap()
    }

    fn moments(trial: &SimTrial, arm: usize, t: usize, s: usize) -> (f64, f64, f64) {
        let tn = trial.n_waves;
        let rows: Vec<usize> = (0..trial.persons.len())
            .filter(|&i| trial.persons[i].arm == arm)
            .collect();
        let n = rows.len() as f64;
        let m = |w: usize| rows.iter().map(|&i| trial.alt[i * tn + w]).sum::<f64>() / n;
        let (mt, ms) = (m(t), m(s));
        let v = |w: usize, mw: f64| {
            rows.iter()
                .map(|&i| (trial.alt[i * tn + w] - mw).powi(2))
                .sum::<f64>()
                / n
        };
        let c = rows
            .iter()
            .map(|&i| (trial.alt[i * tn + t] - mt) * (trial.alt[i * tn + s] - ms))
            .sum::<f64>()
            / n;
        (mt, v(t, mt), c / (v(t, mt) * v(s, ms)).sqrt())
    }

    #[test]
    fn item_level_scores_are_item_means_in_range() {
        let p = plan(
            "type = \"individual\"",
            "icc_participant = 0.5\nlevel = \"item\"\n[outcome.items]\ncount = 4\nmin = 1\nmax = 5\nnoise_sd = 0.5",
        );
        let t = draw_trial(&p, 0, 2000, 0);
        for &v in t.alt.iter().chain(&t.null).filter(|v| !v.is_nan()) {
            assert!((1.0..=5.0).contains(&v), "{v}");
            assert!(
                ((v * 4.0) - (v * 4.0).round()).abs() < 1e-9,
                "{v} is not a mean of 4 items"
            );
        }
        // The effect of 1 score unit survives, attenuated by the ceiling at 5.
        let (m_alt, _, _) = moments(&t, 1, 2, 0);
        let (m_ctl, _, _) = moments(&t, 0, 2, 0);
        let diff = m_alt - m_ctl;
        assert!(diff > 0.5 && diff < 1.0, "{diff}");
    }

    /// The generator's means, variances and correlations are the plan's.
    #[test]
    fn draws_have_the_planned_moments() {
        let p = plan(
            "type = \"individual\"",
            "icc_participant = 0.5\nautocorrelation = 0.3",
        );
        let t = draw_trial(&p, 0, 20000, 0);
        let (m0, v0, r01) = moments(&t, 0, 0, 1);
        assert!(
            (m0 - 2.0).abs() < 0.05 && (v0 - 4.0).abs() < 0.15,
            "{m0} {v0}"
        );
        assert!((r01 - 0.65).abs() < 0.02, "{r01}");
        let (_, _, r02) = moments(&t, 0, 0, 2);
        assert!((r02 - (0.5 + 0.5 * 0.09)).abs() < 0.02, "{r02}");
        let (m2, _, _) = moments(&t, 1, 2, 0);
        assert!((m2 - 3.0).abs() < 0.06, "effect 1 at T2: {m2}");
        // Partially nested: the treated arm's follow-up variance includes tau^2 =
        // icc / (1 - icc) sigma^2; baseline and controls do not.
        let p = plan(
            "type = \"partially_nested\"\ngroup_size = 10",
            "icc_participant = 0.5\nicc_group = 0.2",
        );
        let t = draw_trial(&p, 0, 20000, 0);
        let (_, v_treat_fu, _) = moments(&t, 1, 2, 0);
        let (_, v_treat_base, _) = moments(&t, 1, 0, 1);
        let (_, v_ctrl_fu, _) = moments(&t, 0, 2, 0);
        assert!((v_treat_fu - 4.0 / 0.8).abs() < 0.3, "{v_treat_fu}");
        assert!((v_treat_base - 4.0).abs() < 0.2, "{v_treat_base}");
        assert!((v_ctrl_fu - 4.0).abs() < 0.2, "{v_ctrl_fu}");
    }
}
