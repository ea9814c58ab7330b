//! Predictive mean matching, `mice.impute.pmm(y, ry, x, donors = 5, matchtype = 1)` with
//! `mice:::.norm.draw` and `mice:::estimice`: least squares on the observed cases
//! (`c`, residual sum of squares `rss`, `df = max(n_obs - p, 1)`, `V = (X'X)^-1`), a draw
//! `sigma* = sqrt(rss / chi2_df)`, `beta* = c + t(chol(V)) z sigma*`; observed cases are
//! predicted with `c`, missing ones with `beta*` (type-1 matching), and each missing case takes
//! the value of one of the `donors` observed cases nearest in prediction, chosen at random
//! (`mice:::matchindex`; ties among equally near cases are broken at random there, here by the
//! stable order of the sorted predictions).
use nalgebra::{DMatrix, DVector};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{ChiSquared, Distribution, StandardNormal};

use super::design::{lower_cholesky, with_intercept, xtx_inverse};

/// Imputed values for the rows with `ry[i] == false`, in row order.
pub fn impute(
    y: &[f64],
    ry: &[bool],
    x: &DMatrix<f64>,
    donors: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f64> {
    let xo = with_intercept(x, ry);
    let miss: Vec<bool> = ry.iter().map(|r| !r).collect();
    let xm = with_intercept(x, &miss);
    let yo = DVector::from_iterator(
        xo.nrows(),
        y.iter().zip(ry).filter(|(_, &r)| r).map(|(v, _)| *v),
    );
    let p = xo.ncols();
    let xtx = xo.transpose() * &xo;
    let v = xtx_inverse(&xtx);
    let c = &v * (xo.transpose() * &yo);
    let resid = &yo - &xo * &c;
    let rss = resid.norm_squared();
    let df = (xo.nrows() as f64 - p as f64).max(1.0);
    let chi: f64 = ChiSquared::new(df).map_or(df, |d| d.sample(rng));
    let sigma = (rss / chi).sqrt();
    let z = DVector::from_iterator(p, (0..p).map(|_| StandardNormal.sample(rng)));
    let beta = &c + lower_cholesky(&v) * z * sigma;
    let yhat_obs = &xo * &c;
    let yhat_mis = &xm * &beta;
    let donor_values: Vec<f64> = yo.iter().copied().collect();
    matchindex(yhat_obs.as_slice(), yhat_mis.as_slice(), donors, rng)
        .into_iter()
        .map(|k| donor_values[k])
        .collect()
}

/// For each target, the index of a random one of the `donors` observed predictions nearest
/// to it (fewer when there are fewer observed cases).
pub fn matchindex(obs: &[f64], targets: &[f64], donors: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..obs.len()).collect();
    order.sort_by(|&a, &b| obs[a].total_cmp(&obs[b]));
    let sorted: Vec<f64> = order.iter().map(|&i| obs[i]).collect();
    let k = donors.clamp(1, obs.len().max(1));
    targets
        .iter()
        .map(|&t| {
            // The k nearest form a window around the insertion point.
            let pos = sorted.partition_point(|&v| v < t);
            let (mut lo, mut hi) = (pos, pos); // window [lo, hi)
            while hi - lo < k {
                let left = (lo > 0).then(|| t - sorted[lo - 1]);
                let right = (hi < sorted.len()).then(|| sorted[hi] - t);
                match (left, right) {
                    (Some(l), Some(r)) if l <= r => lo -= 1,
                    (Some(_), Some(_)) | (None, Some(_)) => hi += 1,
                    (Some(_), None) => lo -= 1,
                    (None, None) => break,
                }
            }
            order[lo + rng.random_range(0..(hi - lo).max(1))]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::rng::substream;

    #[test]
    fn donors_are_the_nearest_observed_predictions() {
        let obs = [0.0, 10.0, 1.0, 2.0, 30.0, 3.0];
        let mut rng = substream(1, 0, 0);
        let mut seen = [false; 6];
        for _ in 0..200 {
            let k = matchindex(&obs, &[1.6], 3, &mut rng)[0];
            // The three nearest to 1.6 are 2 (0.4), 1 (0.6) and 3 (1.4).
            assert!([2, 3, 5].contains(&k), "{k}");
            seen[k] = true;
        }
        assert!(
            seen[2] && seen[3] && seen[5],
            "each of the 3 donors is drawn"
        );
        // With one donor the nearest is taken.
        assert_eq!(matchindex(&obs, &[29.0, -5.0], 1, &mut rng), vec![4, 0]);
    }
}
