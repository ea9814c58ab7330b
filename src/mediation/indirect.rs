//! Intervals for indirect effects: the Sobel (first-order delta) standard error, Monte Carlo
//! intervals (Preacher & Selig 2012, Commun Methods Meas 6), and the nonparametric bootstrap
//! that resamples participants (as `boot::boot` with `boot.ci(type = "perc")`).
#![allow(clippy::needless_range_loop)] // index loops over paired matrix/vector entries
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::report::progress::Progress;

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

/// Two-sided normal p-value of `z`.
pub fn normal_p(z: f64) -> f64 {
    match Normal::new(0.0, 1.0) {
        Ok(n) if z.is_finite() => 2.0 * n.cdf(-z.abs()),
        _ => f64::NAN,
    }
}

/// Sample quantile of type 7 (R's default `quantile`): `x[h] + (h - floor h)(x[h+1] - x[h])`
/// with `h = (n - 1) p` on the sorted finite values. `NaN` when there are none.
pub fn quantile_type7(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let (xl, xh) = (sorted[lo.min(n - 1)], sorted[hi]);
    xl + (h - lo as f64) * (xh - xl)
}

/// Finite values, sorted ascending.
pub fn sorted_finite(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

/// The bootstrap percentile limit of `boot.ci(type = "perc")`: `boot:::norm.inter`, which
/// interpolates on the normal-quantile scale between the order statistics around
/// `(R + 1) alpha` (Davison & Hinkley 1997, eq. 5.8). `sorted` holds the finite replicates.
pub fn boot_perc_limit(sorted: &[f64], alpha: f64) -> f64 {
    let r = sorted.len();
    if r < 2 {
        return f64::NAN;
    }
    let rk = (r as f64 + 1.0) * alpha;
    let k = rk.trunc() as usize;
    if (k as f64) == rk && k >= 1 && k <= r {
        return sorted[k - 1];
    }
    // Extreme order statistics as endpoints (R warns).
    if k == 0 {
        return sorted[0];
    }
    if k >= r {
        return sorted[r - 1];
    }
    let Ok(nd) = Normal::new(0.0, 1.0) else {
        return f64::NAN;
    };
    let n1 = r as f64 + 1.0;
    let ebar = nd.inverse_cdf(alpha);
    let elo = nd.inverse_cdf(k as f64 / n1);
    let ehi = nd.inverse_cdf((k as f64 + 1.0) / n1);
    let tlo = sorted[k - 1];
    let thi = sorted[k];
    tlo + (ebar - elo) / (ehi - elo) * (thi - tlo)
}

/// Percentile interval (`boot.ci(type = "perc")`) of the replicates at `level`.
pub fn percentile_interval(replicates: &[f64], level: f64) -> (f64, f64) {
    let s = sorted_finite(replicates);
    let alpha = (1.0 - level) / 2.0;
    (boot_perc_limit(&s, alpha), boot_perc_limit(&s, 1.0 - alpha))
}

/// Quantile (type 7) interval of Monte Carlo draws at `level`.
pub fn quantile_interval(draws: &[f64], level: f64) -> (f64, f64) {
    let s = sorted_finite(draws);
    let alpha = (1.0 - level) / 2.0;
    (quantile_type7(&s, alpha), quantile_type7(&s, 1.0 - alpha))
}

/// The random stream of one bootstrap resample or Monte Carlo run: ChaCha8 seeded with the
/// run seed, on its own stream `(tag << 40) + index`. A resample's draws depend only on
/// (seed, tag, index), so results do not depend on the number of threads.
pub fn stream_rng(seed: u64, tag: u64, index: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream((tag << 40).wrapping_add(index));
    r
}

/// Stream tags, one per analysis (kept apart so adding one analysis leaves the others' draws
/// unchanged).
pub mod tags {
    pub const CHANGE_BOOT: u64 = 1;
    pub const CHANGE_MC: u64 = 2;
    pub const WITHIN_BOOT: u64 = 3;
    pub const WITHIN_MC: u64 = 4;
    pub const TREATMENT_BOOT: u64 = 5;
    pub const TREATMENT_MC: u64 = 6;
    /// Random-slope average indirect effect (plus `mediator << 8`).
    pub const SLOPES_MC: u64 = 7;
}

/// Nonparametric bootstrap over `n_units` participants: resample `r` draws `n_units` indices
/// with replacement from its own stream ([`stream_rng`]), and `stat` maps them to a vector
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
            let mut rng = stream_rng(seed, tag, r as u64);
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
    let l = cholesky_lower(vcov_b, k);
    let mut rng = stream_rng(seed, tag, 0);
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

/// Lower Cholesky factor of a k x k covariance (row-major); a non-positive pivot is taken as
/// 0 (a degenerate direction), so the factor always exists.
pub fn cholesky_lower(a: &[f64], k: usize) -> Vec<f64> {
    let mut l = vec![0.0; k * k];
    for j in 0..k {
        let mut d = a.get(j * k + j).copied().unwrap_or(0.0);
        for m in 0..j {
            d -= l[j * k + m] * l[j * k + m];
        }
        let djj = if d > 0.0 { d.sqrt() } else { 0.0 };
        l[j * k + j] = djj;
        for i in (j + 1)..k {
            let mut s = a.get(i * k + j).copied().unwrap_or(0.0);
            for m in 0..j {
                s -= l[i * k + m] * l[j * k + m];
            }
            l[i * k + j] = if djj > 0.0 { s / djj } else { 0.0 };
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type7_matches_r() {
        // quantile(1:10, c(.025, .975)) = 1.225, 9.775
        let x: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!((quantile_type7(&x, 0.025) - 1.225).abs() < 1e-12);
        assert!((quantile_type7(&x, 0.975) - 9.775).abs() < 1e-12);
    }

    #[test]
    fn perc_interpolates_like_norm_inter() {
        // R: boot:::norm.inter(1:99, c(.025, .975)) -> rk = 2.5 and 97.5:
        // 2 + (qnorm(.025) - qnorm(.02)) / (qnorm(.03) - qnorm(.02)) = 2.5139...
        let x: Vec<f64> = (1..=99).map(f64::from).collect();
        let lo = boot_perc_limit(&x, 0.025);
        let nd = Normal::new(0.0, 1.0).unwrap();
        let want = 2.0
            + (nd.inverse_cdf(0.025) - nd.inverse_cdf(0.02))
                / (nd.inverse_cdf(0.03) - nd.inverse_cdf(0.02));
        assert!((lo - want).abs() < 1e-12);
        // exact order statistic when (R + 1) alpha is an integer
        let x: Vec<f64> = (1..=199).map(f64::from).collect();
        assert_eq!(boot_perc_limit(&x, 0.025), 5.0);
    }

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
