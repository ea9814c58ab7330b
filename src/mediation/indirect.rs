//! Intervals for indirect effects: the Sobel (first-order delta) standard error, Monte Carlo
//! intervals (Preacher & Selig 2012, Commun Methods Meas 6), and the nonparametric bootstrap
//! that resamples participants (as `boot::boot` with `boot.ci(type = "perc")`).
#![allow(clippy::needless_range_loop)] // index loops over paired matrix/vector entries
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::results::{IndirectRow, Interval};
use crate::stats::distributions::p_two_sided_normal;
use crate::stats::linalg::cholesky_semidefinite;
use crate::stats::quantile::{percentile_interval, quantile_interval};
use crate::stats::rng::substream;

use crate::progress::Progress;

/// Sobel SE of `a * b` with `a`, `b` independent: `sqrt(a^2 se_b^2 + b^2 se_a^2)`.
pub fn sobel_se(a: f64, se_a: f64, b: f64, se_b: f64) -> f64 {
    (a * a * se_b * se_b + b * b * se_a * se_a).sqrt()
}

/// Sobel SE of `sum_k a_k b_k` where the `a_k` come from separate models (independent, SEs
/// `se_a`) and the `b_k` from one model with covariance `vcov_b` (k x k, row-major): the
/// gradient is `(b_1..b_k, a_1..a_k)`, so the variance is
/// `sum_k b_k^2 se_ak^2 + sum_jk a_j a_k cov(b_j, b_k)`.
pub fn sobel_se_sum(a: &[f64], se_a: &[f64], b: &[f64], vcov_b: &[f64]) -> f64 {
    let k = a.len();
    let mut v = 0.0;
    for i in 0..k {
        v += b[i] * b[i] * se_a[i] * se_a[i];
        for j in 0..k {
            v += a[i] * a[j] * vcov_b.get(i * k + j).copied().unwrap_or(f64::NAN);
        }
    }
    v.sqrt()
}

/// The reported rows of the indirect effects `names` (estimates `est`, standardized `std_est`,
/// Sobel SEs `sob`): percentile bootstrap intervals from the replicates `reps` (column `e` per
/// effect; `None` when no resampling was asked), Monte Carlo intervals from the draws `mc`
/// (one vector per effect, possibly none), and the Sobel p-values.
pub fn indirect_rows(
    names: &[String],
    est: &[f64],
    std_est: &[f64],
    sob: &[f64],
    reps: Option<&[Option<Vec<f64>>]>,
    mc: &[Vec<f64>],
    level: f64,
) -> (Vec<IndirectRow>, Vec<f64>) {
    let interval = |(conf_low, conf_high): (f64, f64)| Interval {
        conf_low,
        conf_high,
    };
    let mut rows = Vec::with_capacity(names.len());
    let mut sobel_p = Vec::with_capacity(names.len());
    for (e, name) in names.iter().enumerate() {
        let bootstrap = reps.map(|r| interval(percentile_interval(&column(r, e), level)));
        let monte_carlo = mc.get(e).map(|d| interval(quantile_interval(d, level)));
        sobel_p.push(normal_p(est[e] / sob[e]));
        rows.push(IndirectRow {
            effect: name.clone(),
            estimate: est[e],
            std_estimate: Some(std_est[e]),
            sobel_se: Some(sob[e]),
            bootstrap,
            monte_carlo,
        });
    }
    (rows, sobel_p)
}

/// Two-sided normal p-value of `z` (the Sobel test); `NaN` when `z` is not finite (a zero
/// or undefined standard error).
pub fn normal_p(z: f64) -> f64 {
    if z.is_finite() {
        p_two_sided_normal(z)
    } else {
        f64::NAN
    }
}

/// Nonparametric bootstrap over `n_units` participants: resample `r` draws `n_units` indices
/// with replacement from its own stream ([`substream`]), and `stat` maps them to a vector
/// of statistics (`None` when the resample cannot be analysed, e.g. a singular design).
/// Runs in parallel with rayon; the output is in resample order.
pub fn bootstrap<F>(
    n_units: usize,
    resamples: usize,
    seed: u64,
    tag: u64,
    progress: &Progress,
    stat: F,
) -> Vec<Option<Vec<f64>>>
where
    F: Fn(&[usize]) -> Option<Vec<f64>> + Sync,
{
    if n_units == 0 {
        return vec![None; resamples];
    }
    (0..resamples)
        .into_par_iter()
        .map(|r| {
            let mut rng = substream(seed, tag, r as u64);
            let idx: Vec<usize> = (0..n_units).map(|_| rng.random_range(0..n_units)).collect();
            let out = stat(&idx);
            progress.inc(1);
            out
        })
        .collect()
}

/// Column `j` of bootstrap output (`NaN` for failed resamples).
pub fn column(reps: &[Option<Vec<f64>>], j: usize) -> Vec<f64> {
    reps.iter()
        .map(|r| {
            r.as_ref()
                .and_then(|v| v.get(j).copied())
                .unwrap_or(f64::NAN)
        })
        .collect()
}

/// Monte Carlo draws of the indirect effects `a_k b_k` and their sum (Preacher & Selig 2012):
/// each `a_k ~ N(a_k, se_ak^2)` independently (separate models); `b ~ N(b, vcov_b)` jointly
/// (one model; `vcov_b` k x k row-major, factored by Cholesky). Returns `k + 1` vectors of
/// `draws` values (the sum last, only when k > 1; else k vectors).
pub fn monte_carlo(
    a: &[f64],
    se_a: &[f64],
    b: &[f64],
    vcov_b: &[f64],
    draws: usize,
    seed: u64,
    tag: u64,
) -> Vec<Vec<f64>> {
    let k = a.len();
    let l = cholesky_semidefinite(vcov_b, k);
    let mut rng = substream(seed, tag, 0);
    let n_out = if k > 1 { k + 1 } else { k };
    let mut out = vec![Vec::with_capacity(draws); n_out];
    let mut za = vec![0.0; k];
    let mut zb = vec![0.0; k];
    for _ in 0..draws {
        for i in 0..k {
            za[i] = StandardNormal.sample(&mut rng);
            zb[i] = StandardNormal.sample(&mut rng);
        }
        let mut sum = 0.0;
        for i in 0..k {
            let ad = a[i] + se_a[i] * za[i];
            let mut bd = b[i];
            for j in 0..=i {
                bd += l[i * k + j] * zb[j];
            }
            let p = ad * bd;
            sum += p;
            out[i].push(p);
        }
        if k > 1 {
            out[k].push(sum);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sobel_sum_reduces_to_single() {
        let s1 = sobel_se(0.5, 0.1, -2.0, 0.3);
        let s = sobel_se_sum(&[0.5], &[0.1], &[-2.0], &[0.09]);
        assert!((s - s1).abs() < 1e-14);
    }

    #[test]
    fn bootstrap_is_seeded_and_ordered() {
        let stat = |idx: &[usize]| Some(vec![idx.iter().sum::<usize>() as f64]);
        let p = Progress::hidden();
        let a = bootstrap(10, 50, 7, 1, &p, stat);
        let b = bootstrap(10, 50, 7, 1, &p, stat);
        assert_eq!(a, b);
        let c = bootstrap(10, 50, 8, 1, &p, stat);
        assert_ne!(a, c);
    }

    #[test]
    fn monte_carlo_moments() {
        let d = monte_carlo(
            &[1.0, 2.0],
            &[0.1, 0.2],
            &[3.0, -1.0],
            &[0.04, 0.01, 0.01, 0.09],
            20000,
            1,
            2,
        );
        assert_eq!(d.len(), 3);
        let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        assert!((mean(&d[0]) - 3.0).abs() < 0.02);
        assert!((mean(&d[1]) + 2.0).abs() < 0.03);
        assert!((mean(&d[2]) - 1.0).abs() < 0.04);
    }
}
