//! Descriptive statistics for Table 1: mean (SD), median (IQR) when skewed, n (%).
//! Quantiles are R's default type 7 (`stats::quantile`); the SD has divisor n - 1.

use crate::stats::quantile::quantile_type7;
use serde::{Deserialize, Serialize};

/// Summary of a numeric variable within one arm.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NumericSummary {
    /// Non-missing values.
    pub n: usize,
    /// Missing values.
    pub n_missing: usize,
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub median: Option<f64>,
    pub q1: Option<f64>,
    pub q3: Option<f64>,
    /// Sample skewness g1 = m3 / m2^(3/2) (moment estimator).
    pub skewness: Option<f64>,
}

/// Summarises the non-missing values of `x`.
pub fn summarise(x: &[Option<f64>]) -> NumericSummary {
    let mut v: Vec<f64> = x
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let n = v.len();
    let n_missing = x.len() - n;
    if n == 0 {
        return NumericSummary {
            n,
            n_missing,
            mean: None,
            sd: None,
            median: None,
            q1: None,
            q3: None,
            skewness: None,
        };
    }
    v.sort_by(f64::total_cmp);
    let nf = n as f64;
    let mean = v.iter().sum::<f64>() / nf;
    let ss: f64 = v.iter().map(|a| (a - mean).powi(2)).sum();
    let sd = (n > 1).then(|| (ss / (nf - 1.0)).sqrt());
    let m2 = ss / nf;
    let m3 = v.iter().map(|a| (a - mean).powi(3)).sum::<f64>() / nf;
    let skewness = (n > 2 && m2 > 0.0).then(|| m3 / m2.powf(1.5));
    NumericSummary {
        n,
        n_missing,
        mean: Some(mean),
        sd,
        median: Some(quantile_type7(&v, 0.5)),
        q1: Some(quantile_type7(&v, 0.25)),
        q3: Some(quantile_type7(&v, 0.75)),
        skewness,
    }
}

/// Whether a variable is reported as median (IQR) rather than mean (SD): absolute
/// skewness above `threshold` (1.0 by convention) in any arm.
pub fn is_skewed(summaries: &[NumericSummary], threshold: f64) -> bool {
    summaries
        .iter()
        .any(|s| s.skewness.is_some_and(|g| g.abs() > threshold))
}

/// Counts of the categories of a categorical variable, in first-seen order unless
/// `levels` is given; missing values counted apart.
pub fn tabulate(x: &[Option<&str>], levels: Option<&[String]>) -> (Vec<(String, usize)>, usize) {
    let mut out: Vec<(String, usize)> = levels
        .map(|l| l.iter().map(|s| (s.clone(), 0)).collect())
        .unwrap_or_default();
    let mut missing = 0;
    for v in x {
        match v {
            None => missing += 1,
            Some(s) => match out.iter_mut().find(|(k, _)| k == s) {
                Some(e) => e.1 += 1,
                None => out.push((s.to_string(), 1)),
            },
        }
    }
    (out, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type7_quantiles_match_r() {
        // quantile(c(1, 2, 4, 7, 11, 16), c(.25, .5, .75)) = 2.5, 5.5, 10
        let v = [1.0, 2.0, 4.0, 7.0, 11.0, 16.0];
        assert!((quantile_type7(&v, 0.25) - 2.5).abs() < 1e-12);
        assert!((quantile_type7(&v, 0.5) - 5.5).abs() < 1e-12);
        assert!((quantile_type7(&v, 0.75) - 10.0).abs() < 1e-12);
    }

    #[test]
    fn summary_counts_missing_and_uses_n_minus_1() {
        let s = summarise(&[Some(1.0), None, Some(2.0), Some(3.0)]);
        assert_eq!((s.n, s.n_missing), (3, 1));
        assert!((s.sd.unwrap() - 1.0).abs() < 1e-12);
        assert!(s.skewness.unwrap().abs() < 1e-12);
    }

    #[test]
    fn tabulate_keeps_given_level_order() {
        let lv = vec!["male".to_string(), "female".to_string()];
        let (t, m) = tabulate(
            &[Some("female"), None, Some("female"), Some("x")],
            Some(&lv),
        );
        assert_eq!(m, 1);
        assert_eq!(t[0], ("male".into(), 0));
        assert_eq!(t[1], ("female".into(), 2));
        assert_eq!(t[2], ("x".into(), 1));
    }
}
