//! Missing data of the export: missed waves (MAR, intermittent), item-level gaps, whole
//! instruments left out, HoNOS "not known" codes, IMRS item 13 not applicable by design, and
//! empty assessment dates. All draws come from the `Missing` stream.
use super::config::SimConfig;
use super::design::TrialDesign;
use super::model::{score, RowItems, HONOS_NOT_KNOWN};
use super::rng::{logistic, Rng, Stream};

/// What happened at one participant x wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaveStatus {
    /// Assessed (possibly with gaps).
    Present,
    /// Missed, no row in assessments.csv.
    Absent,
    /// Missed, written as a row with every item empty.
    EmptyRow,
}

/// Outcome of the missingness step.
#[derive(Debug, Clone)]
pub struct Missingness {
    /// `[person][wave]`.
    pub status: Vec<Vec<WaveStatus>>,
    /// `[person][wave]` day of assessment (None = empty cell).
    pub assessed_on: Vec<Vec<Option<i64>>>,
    /// Participants whose IMRS item 13 is not applicable.
    pub item13_not_applicable: Vec<bool>,
    /// Per wave: the dropout intercept solved for the target share (None at baseline or when
    /// the target is 0).
    pub dropout_intercepts: Vec<Option<f64>>,
}

/// Solves alpha in mean(logistic(alpha + x_i)) = target by bisection.
fn calibrate(xs: &[f64], target: f64) -> f64 {
    let mean_p = |a: f64| xs.iter().map(|x| logistic(a + x)).sum::<f64>() / xs.len().max(1) as f64;
    let (mut lo, mut hi) = (-40.0, 40.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mean_p(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Applies missingness to the complete items `[person][wave]` in place.
pub fn apply(
    cfg: &SimConfig,
    design: &TrialDesign,
    items: &mut [Vec<RowItems>],
    seed: u64,
) -> Missingness {
    let mut rng = Rng::new(seed, Stream::Missing);
    let m = &cfg.missing;
    let nw = cfg.n_waves();
    let n = design.persons.len();
    let mut assessed_on = Vec::with_capacity(n);
    let mut item13 = Vec::with_capacity(n);
    for (pi, person) in design.persons.iter().enumerate() {
        let na13 = rng.bernoulli(m.imrs_item13_not_applicable);
        item13.push(na13);
        let mut dates = Vec::with_capacity(nw);
        for (t, wave) in cfg.study.waves.iter().enumerate() {
            let before = 1 + rng.below(cfg.recruitment.baseline_max_days_before as usize) as i64;
            let jitter = rng.normal(0.0, cfg.recruitment.assessment_jitter_sd_days);
            let day = if t == 0 {
                person.randomized_on - before
            } else {
                person.randomized_on + (wave.months * 30.4375 + jitter).round() as i64
            };
            let date_missing = rng.bernoulli(cfg.recruitment.assessed_on_missing);
            dates.push(if date_missing { None } else { Some(day) });
            let Some(row) = items.get_mut(pi).and_then(|r| r.get_mut(t)) else {
                continue;
            };
            for (k, inst) in row.iter_mut().enumerate() {
                let omitted = rng.bernoulli(m.instrument_omission);
                let rate = if rng.bernoulli(m.sloppy_share) {
                    m.item_rate_high
                } else {
                    m.item_rate
                };
                for (j, x) in inst.iter_mut().enumerate() {
                    let gap = rng.bernoulli(rate);
                    let not_known = rng.bernoulli(m.honos_not_known);
                    if omitted || gap || (na13 && k <= 1 && j == 12) {
                        *x = f64::NAN;
                    } else if k == 5 && not_known {
                        *x = HONOS_NOT_KNOWN;
                    }
                }
            }
        }
        assessed_on.push(dates);
    }
    // MAR missed waves: driven by the observed baseline IMRS client score
    let base: Vec<Option<f64>> = (0..n)
        .map(|pi| {
            items
                .get(pi)
                .and_then(|r| r.first())
                .and_then(|row| score(0, &row[0]))
        })
        .collect();
    let obs: Vec<f64> = base.iter().flatten().copied().collect();
    let mean = obs.iter().sum::<f64>() / obs.len().max(1) as f64;
    let sd = (obs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (obs.len().max(2) - 1) as f64)
        .sqrt();
    let z: Vec<f64> = base
        .iter()
        .map(|b| b.map_or(0.0, |x| if sd > 0.0 { (x - mean) / sd } else { 0.0 }))
        .collect();
    let mut status = vec![vec![WaveStatus::Present; nw]; n];
    let mut intercepts = vec![None; nw];
    let dr = &cfg.dropout;
    for t in 1..nw {
        let target = dr.target.get(t).copied().unwrap_or(0.0);
        let lin: Vec<f64> = (0..n)
            .map(|i| {
                let prev = status[i][t - 1] != WaveStatus::Present;
                dr.slope_baseline_imrs * z[i] + if prev { dr.previous_missed } else { 0.0 }
            })
            .collect();
        let alpha = if target > 0.0 {
            Some(calibrate(&lin, target))
        } else {
            None
        };
        intercepts[t] = alpha;
        for i in 0..n {
            let u = rng.uniform();
            let empty = rng.bernoulli(m.empty_row_share);
            let missed = alpha.is_some_and(|a| u < logistic(a + lin[i]));
            if missed {
                status[i][t] = if empty {
                    WaveStatus::EmptyRow
                } else {
                    WaveStatus::Absent
                };
                if let Some(row) = items.get_mut(i).and_then(|r| r.get_mut(t)) {
                    for inst in row.iter_mut() {
                        inst.iter_mut().for_each(|x| *x = f64::NAN);
                    }
                }
                if let Some(d) = assessed_on.get_mut(i).and_then(|d| d.get_mut(t)) {
                    *d = None;
                }
            }
        }
    }
    Missingness {
        status,
        assessed_on,
        item13_not_applicable: item13,
        dropout_intercepts: intercepts,
    }
}
