//! Sample quantiles as R computes them: `quantile(x, p, type = 7)` (R's default),
//! `quantile(x, p, type = 1)`, and the bootstrap percentile limits of
//! `boot::boot.ci(type = "perc")`.
use super::distributions::qnorm;

/// Sample quantile of type 7 (R's default `quantile`): `x[h] + (h - floor h)(x[h+1] - x[h])`
/// with `h = (n - 1) p` (0-based) on sorted values. `NaN` when there are none.
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

/// R's `quantile(x, p, type = 1)` of sorted `x`: the smallest value whose empirical CDF is
/// at least `p` (the inverse of the empirical distribution function).
pub fn quantile_type1<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let np = n as f64 * p;
    // j = floor(np); g = np - j; value = x[j] if g == 0 else x[j + 1] (1-based)
    let j = np.floor();
    let idx = if np - j > 1e-12 {
        j as usize
    } else {
        (j as usize).max(1) - 1
    };
    Some(sorted[idx.min(n - 1)])
}

/// Finite values, sorted ascending. Unstable sort: values equal under `total_cmp` have the
/// same bits, so the result is that of a stable sort (without its buffer).
pub fn sorted_finite(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_unstable_by(|a, b| a.total_cmp(b));
    s
}

/// Type-7 quantile interval `(q(alpha/2), q(1 - alpha/2))` of the finite values of `draws`
/// at `level` (Monte Carlo intervals, Preacher & Selig 2012).
pub fn quantile_interval(draws: &[f64], level: f64) -> (f64, f64) {
    let s = sorted_finite(draws);
    let alpha = (1.0 - level) / 2.0;
    (quantile_type7(&s, alpha), quantile_type7(&s, 1.0 - alpha))
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
    let n1 = r as f64 + 1.0;
    let ebar = qnorm(alpha);
    let elo = qnorm(k as f64 / n1);
    let ehi = qnorm((k as f64 + 1.0) / n1);
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

/// The points of a normal QQ plot as R's `qqnorm` draws them (sorted finite values against
/// `qnorm(ppoints(n))`, `ppoints` with `a = 3/8` for `n <= 10`, else `1/2`) and the line of
/// `qqline` through the first and third quartiles: `(intercept, slope)`.
pub fn normal_qq(values: &[f64]) -> (Vec<f64>, Vec<f64>, Option<(f64, f64)>) {
    let y = sorted_finite(values);
    let n = y.len();
    if n == 0 {
        return (Vec::new(), Vec::new(), None);
    }
    let a = if n <= 10 { 3.0 / 8.0 } else { 0.5 };
    let theoretical = (0..n)
        .map(|i| qnorm((i as f64 + 1.0 - a) / (n as f64 + 1.0 - 2.0 * a)))
        .collect();
    let (z1, z3) = (qnorm(0.25), qnorm(0.75));
    let (q1, q3) = (quantile_type7(&y, 0.25), quantile_type7(&y, 0.75));
    let slope = (q3 - q1) / (z3 - z1);
    let line = slope.is_finite().then_some((q1 - slope * z1, slope));
    (theoretical, y, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type7_matches_r() {
        // quantile(c(1, 2, 4, 8, 16), c(0, .1, .25, .5, .9, 1))
        let x = [1.0, 2.0, 4.0, 8.0, 16.0];
        let want = [1.0, 1.4, 2.0, 4.0, 12.8, 16.0];
        for (p, w) in [0.0, 0.1, 0.25, 0.5, 0.9, 1.0].iter().zip(want) {
            assert!((quantile_type7(&x, *p) - w).abs() < 1e-12, "p = {p}");
        }
        assert!(quantile_type7(&[], 0.5).is_nan());
    }

    #[test]
    fn type7_matches_r_at_the_tails() {
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
        let want = 2.0 + (qnorm(0.025) - qnorm(0.02)) / (qnorm(0.03) - qnorm(0.02));
        assert!((lo - want).abs() < 1e-12);
        // exact order statistic when (R + 1) alpha is an integer
        let x: Vec<f64> = (1..=199).map(f64::from).collect();
        assert_eq!(boot_perc_limit(&x, 0.025), 5.0);
    }

    #[test]
    fn qq_points_as_qqnorm_and_qqline() {
        // qqnorm(c(3, 1, 2))$x = qnorm(ppoints(3)) = -0.8694238, 0, 0.8694238
        let (x, y, line) = normal_qq(&[3.0, 1.0, 2.0, f64::NAN]);
        assert_eq!(y, vec![1.0, 2.0, 3.0]);
        assert!((x[0] + 0.8694238).abs() < 1e-6 && x[1].abs() < 1e-15);
        // qqline: slope (q3 - q1) / (qnorm(.75) - qnorm(.25)) = 1 / 1.34898, intercept 2
        let (a, b) = line.unwrap();
        assert!((b - 1.0 / 1.3489795).abs() < 1e-6 && (a - 2.0).abs() < 1e-12);
        assert_eq!(normal_qq(&[]).2, None);
    }

    #[test]
    fn type1_matches_r() {
        // quantile(1:10, c(.025, .1, .5, .975), type = 1) = 1 1 5 10
        let x: Vec<u32> = (1..=10).collect();
        let got: Vec<u32> = [0.025, 0.1, 0.5, 0.975]
            .iter()
            .filter_map(|&p| quantile_type1(&x, p))
            .collect();
        assert_eq!(got, vec![1, 1, 5, 10]);
        assert_eq!(quantile_type1::<u32>(&[], 0.5), None);
    }

    #[test]
    fn percentile_limit_interpolates_on_the_normal_scale() {
        // boot:::norm.inter(1:99 / 100, c(.025, .975)) with R = 99: (R+1) alpha = 2.5
        let t: Vec<f64> = (1..=99).map(|i| i as f64 / 100.0).collect();
        let lo = boot_perc_limit(&t, 0.025);
        assert!(lo > 0.02 && lo < 0.03, "{lo}");
        // an exact order statistic: (R + 1) alpha = 5 with R = 199, alpha = .025
        let t: Vec<f64> = (1..=199).map(f64::from).collect();
        assert_eq!(boot_perc_limit(&t, 0.025), 5.0);
    }
}
