//! The trial's design: who is recruited where and when, randomization (permuted blocks per
//! treatment team, or whole groups in the cluster design), IMR training groups with their
//! fidelity, demographics and sessions attended.
use super::config::{Design, SimConfig};
use super::dates;
use super::rng::{logistic, Rng, Stream};

/// One randomized participant (before any outcome is drawn).
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub site: usize,
    /// Team number within the site (0-based).
    pub team: usize,
    /// 0 = control, 1 = intervention.
    pub arm: usize,
    pub group: Option<usize>,
    /// Day number of randomization.
    pub randomized_on: i64,
    pub age: u32,
    pub sex: usize,
    pub diagnosis: usize,
    /// Sessions attended (intervention arm only).
    pub sessions: Option<u32>,
    /// Whether `sessions` is written to the export (else the cell is empty).
    pub sessions_recorded: bool,
}

/// One training group (or cluster).
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub site: usize,
    pub arm: usize,
    /// IMR Fidelity Scale item mean (intervention groups only).
    pub fidelity: Option<f64>,
    pub size: usize,
}

/// The design of one simulated trial.
#[derive(Debug, Clone)]
pub struct TrialDesign {
    pub persons: Vec<Person>,
    pub groups: Vec<Group>,
    /// Day of the export: the last nominal wave of the last participant plus a margin.
    pub export_day: i64,
}

/// Sizes of groups for `n` participants: round(n / mean) groups within the limits that
/// `min`/`max` allow; each starts at `min` (or an even share when n < groups x min) and the
/// rest are added one at a time to random groups below `max`.
fn group_sizes(n: usize, min: usize, max: usize, mean: f64, rng: &mut Rng) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let lo = n.div_ceil(max).max(1);
    let hi = (n / min).max(lo);
    let g = ((n as f64 / mean).round() as usize).clamp(lo, hi);
    let start = min.min(n / g);
    let mut sizes = vec![start; g];
    let mut left = n - start * g;
    while left > 0 {
        let open: Vec<usize> = (0..g).filter(|&i| sizes[i] < max).collect();
        let i = if open.is_empty() {
            rng.below(g)
        } else {
            open[rng.below(open.len())]
        };
        sizes[i] += 1;
        left -= 1;
    }
    sizes
}

/// A permuted-block sequence of arms (0/1) of length `n` with block = allocation weights.
fn permuted_blocks(n: usize, allocation: &[usize], rng: &mut Rng) -> Vec<usize> {
    let mut block: Vec<usize> = Vec::new();
    for (arm, &w) in allocation.iter().enumerate() {
        block.extend(std::iter::repeat_n(arm, w));
    }
    let mut out = Vec::with_capacity(n + block.len());
    while out.len() < n {
        let mut b = block.clone();
        rng.shuffle(&mut b);
        out.extend(b);
    }
    out.truncate(n);
    out
}

/// Expected number of sessions attended in the intervention arm (trapezoid quadrature over
/// the normal logit of the attendance probability).
pub fn expected_sessions(cfg: &SimConfig) -> f64 {
    let s = &cfg.sessions;
    let steps = 4000;
    let (lo, hi) = (-10.0, 10.0);
    let h = (hi - lo) / steps as f64;
    let mut acc = 0.0;
    for i in 0..=steps {
        let z: f64 = lo + h * i as f64;
        let w = if i == 0 || i == steps { 0.5 } else { 1.0 };
        let dens = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        acc += w * dens * logistic(s.logit_mean + s.logit_sd * z);
    }
    let p_mean = acc * h;
    (1.0 - s.none_share) * (1.0 + f64::from(s.offered.saturating_sub(1)) * p_mean)
}

/// Draws the design. Uses the `Design` and `People` streams.
pub fn draw_design(cfg: &SimConfig, seed: u64) -> TrialDesign {
    let mut rng = Rng::new(seed, Stream::Design);
    let n = cfg.study.n_participants;
    let start = dates::parse_date(&cfg.recruitment.start).unwrap_or(0);
    let weights: Vec<f64> = cfg.sites.iter().map(|s| s.weight).collect();
    // recruitment: site, team, day
    let mut raw: Vec<(i64, usize, usize)> = (0..n)
        .map(|_| {
            let site = rng.categorical(&weights);
            let team = rng.below(cfg.sites.get(site).map_or(1, |s| s.teams));
            let day = start + rng.below(cfg.recruitment.duration_days as usize + 1) as i64;
            (day, site, team)
        })
        .collect();
    raw.sort();
    let width = n.to_string().len().max(4);
    let mut persons: Vec<Person> = raw
        .iter()
        .enumerate()
        .map(|(i, &(day, site, team))| Person {
            id: format!("P{:0width$}", i + 1),
            site,
            team,
            arm: 0,
            group: None,
            randomized_on: day,
            age: 0,
            sex: 0,
            diagnosis: 0,
            sessions: None,
            sessions_recorded: false,
        })
        .collect();
    let g = &cfg.groups;
    let mut groups: Vec<Group> = Vec::new();
    match cfg.study.design {
        Design::Individual => {
            // permuted blocks within each treatment team, in order of randomization
            for (si, site) in cfg.sites.iter().enumerate() {
                for team in 0..site.teams {
                    let members: Vec<usize> = (0..n)
                        .filter(|&i| persons[i].site == si && persons[i].team == team)
                        .collect();
                    let seq = permuted_blocks(members.len(), &cfg.study.allocation, &mut rng);
                    for (&i, &arm) in members.iter().zip(&seq) {
                        persons[i].arm = arm;
                    }
                }
            }
            // IMR participants of a site fill its training groups in order of randomization
            for (si, site) in cfg.sites.iter().enumerate() {
                let members: Vec<usize> = (0..n)
                    .filter(|&i| persons[i].site == si && persons[i].arm == 1)
                    .collect();
                let sizes =
                    group_sizes(members.len(), g.size_min, g.size_max, g.size_mean, &mut rng);
                let mut it = members.iter();
                for (k, &size) in sizes.iter().enumerate() {
                    let gi = groups.len();
                    groups.push(Group {
                        id: format!("{}-G{:02}", site.site_id, k + 1),
                        site: si,
                        arm: 1,
                        fidelity: None,
                        size,
                    });
                    for &i in it.by_ref().take(size) {
                        persons[i].group = Some(gi);
                    }
                }
            }
        }
        Design::Cluster => {
            for (si, site) in cfg.sites.iter().enumerate() {
                let members: Vec<usize> = (0..n).filter(|&i| persons[i].site == si).collect();
                let sizes =
                    group_sizes(members.len(), g.size_min, g.size_max, g.size_mean, &mut rng);
                let arms = permuted_blocks(sizes.len(), &cfg.study.allocation, &mut rng);
                let mut it = members.iter();
                for (k, (&size, &arm)) in sizes.iter().zip(&arms).enumerate() {
                    let gi = groups.len();
                    groups.push(Group {
                        id: format!("{}-G{:02}", site.site_id, k + 1),
                        site: si,
                        arm,
                        fidelity: None,
                        size,
                    });
                    for &i in it.by_ref().take(size) {
                        persons[i].group = Some(gi);
                        persons[i].arm = arm;
                    }
                }
            }
        }
    }
    for grp in groups.iter_mut().filter(|g| g.arm == 1) {
        let f = rng.normal(g.fidelity_mean, g.fidelity_sd).clamp(1.0, 5.0);
        grp.fidelity = Some((f * 100.0).round() / 100.0);
    }
    // people: demographics and attendance
    let mut prng = Rng::new(seed, Stream::People);
    let d = &cfg.demographics;
    let sex_w: Vec<f64> = d.sex.iter().map(|c| c.p).collect();
    let dx_w: Vec<f64> = d.diagnosis.iter().map(|c| c.p).collect();
    let s = &cfg.sessions;
    for p in persons.iter_mut() {
        let age = prng.normal(d.age_mean, d.age_sd).round();
        p.age = age.clamp(f64::from(d.age_min), f64::from(d.age_max)) as u32;
        p.sex = prng.categorical(&sex_w);
        p.diagnosis = prng.categorical(&dx_w);
        let none = prng.bernoulli(s.none_share);
        let logit = prng.normal(s.logit_mean, s.logit_sd);
        let attended = if none {
            0
        } else {
            1 + prng.binomial(s.offered - 1, logistic(logit))
        };
        let recorded = !prng.bernoulli(s.missing_share);
        if p.arm == 1 {
            p.sessions = Some(attended);
            p.sessions_recorded = recorded;
        }
    }
    let last_months = cfg.study.waves.last().map_or(0.0, |w| w.months);
    let last_day = persons
        .iter()
        .map(|p| p.randomized_on)
        .max()
        .unwrap_or(start);
    let export_day = last_day
        + (last_months * 30.4375).round() as i64
        + i64::from(cfg.recruitment.export_after_last_wave_days);
    TrialDesign {
        persons,
        groups,
        export_day,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_sizes_respect_limits_and_total() {
        let mut rng = Rng::new(3, Stream::Design);
        for n in [1usize, 5, 6, 13, 57, 114, 300] {
            let sizes = group_sizes(n, 6, 10, 7.6, &mut rng);
            assert_eq!(sizes.iter().sum::<usize>(), n);
            if n >= 6 {
                assert!(
                    sizes.iter().all(|&s| (6..=10).contains(&s)),
                    "{n}: {sizes:?}"
                );
            }
        }
    }

    #[test]
    fn permuted_blocks_are_balanced_per_block() {
        let mut rng = Rng::new(4, Stream::Design);
        let seq = permuted_blocks(50, &[2, 3], &mut rng);
        for block in seq.chunks(5) {
            assert_eq!(block.iter().filter(|&&a| a == 1).count(), 3);
        }
    }

    #[test]
    fn expected_sessions_matches_simulation() {
        let cfg = SimConfig::default();
        let e = expected_sessions(&cfg);
        let mut rng = Rng::new(5, Stream::People);
        let s = &cfg.sessions;
        let n = 40_000;
        let mut total = 0.0;
        for _ in 0..n {
            if !rng.bernoulli(s.none_share) {
                let p = logistic(rng.normal(s.logit_mean, s.logit_sd));
                total += f64::from(1 + rng.binomial(s.offered - 1, p));
            }
        }
        let mc = total / f64::from(n);
        assert!((mc - e).abs() < 0.3, "quadrature {e} vs simulation {mc}");
    }
}
