//! Multinomial logit imputation of an unordered factor, `mice.impute.polyreg`: the augmented
//! data ([`super::augment`]), `nnet::multinom(y ~ x, weights = w)` on the observed cases (here
//! fitted by Newton's method to the maximum of the weighted likelihood; nnet's BFGS stops at
//! `maxit = 100`, normally at the same optimum to its `reltol` of 1e-8), then for each missing
//! case a category drawn from its fitted probabilities (`un > cumsum(post)`). As in mice
//! there is no draw of the coefficients.
use nalgebra::{DMatrix, DVector};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::augment::augment;
use super::design::{with_intercept, xtx_inverse};

/// Category probabilities of each row of `x` (with intercept) under coefficients `b`
/// ((K - 1) x q, the first category the baseline).
fn probabilities(x: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    let k1 = b.nrows();
    let eta = x * b.transpose();
    DMatrix::from_fn(x.nrows(), k1 + 1, |_, _| 0.0).map_with_location(|i, k, _| {
        let m = (0..k1).map(|l| eta[(i, l)]).fold(0.0_f64, f64::max);
        let denom = (-m).exp() + (0..k1).map(|l| (eta[(i, l)] - m).exp()).sum::<f64>();
        let num = if k == 0 {
            (-m).exp()
        } else {
            (eta[(i, k - 1)] - m).exp()
        };
        num / denom
    })
}

fn loglik(x: &DMatrix<f64>, y: &[usize], w: &[f64], b: &DMatrix<f64>) -> f64 {
    let p = probabilities(x, b);
    (0..x.nrows())
        .map(|i| w[i] * p[(i, y[i])].max(1e-300).ln())
        .sum()
}

/// Weighted multinomial logit by Newton-Raphson with step halving; `y` category indices
/// `0..k`, `x` with intercept. Returns (K - 1) x q coefficients.
pub fn fit_multinom(x: &DMatrix<f64>, y: &[usize], w: &[f64], k: usize) -> DMatrix<f64> {
    let (n, q) = (x.nrows(), x.ncols());
    let k1 = k.saturating_sub(1);
    let d = k1 * q;
    let mut b = DMatrix::zeros(k1, q);
    let mut ll = loglik(x, y, w, &b);
    for _ in 0..100 {
        let p = probabilities(x, &b);
        let mut grad = DVector::zeros(d);
        let mut hess = DMatrix::zeros(d, d);
        for a in 0..k1 {
            let ra = DVector::from_fn(n, |i, _| {
                w[i] * (f64::from(u8::from(y[i] == a + 1)) - p[(i, a + 1)])
            });
            grad.rows_mut(a * q, q).copy_from(&(x.transpose() * ra));
            for c in a..k1 {
                let mut xs = x.clone();
                for i in 0..n {
                    let (pa, pc) = (p[(i, a + 1)], p[(i, c + 1)]);
                    let s = w[i] * (if a == c { pa } else { 0.0 } - pa * pc);
                    xs.row_mut(i).scale_mut(s);
                }
                let block = x.transpose() * xs;
                hess.view_mut((a * q, c * q), (q, q)).copy_from(&block);
                if c != a {
                    hess.view_mut((c * q, a * q), (q, q))
                        .copy_from(&block.transpose());
                }
            }
        }
        let step = xtx_inverse(&hess) * grad;
        let mut scale = 1.0;
        let mut improved = false;
        for _ in 0..30 {
            let cand = DMatrix::from_fn(k1, q, |a, r| b[(a, r)] + scale * step[a * q + r]);
            let l = loglik(x, y, w, &cand);
            if l >= ll - 1e-12 {
                let gain = l - ll;
                b = cand;
                ll = l;
                improved = gain.abs() > 1e-10 * (ll.abs() + 0.1);
                break;
            }
            scale /= 2.0;
        }
        if !improved {
            break;
        }
    }
    b
}

/// Imputed codes `0..k` for the rows with `ry[i] == false`, in row order.
pub fn impute(
    y: &[f64],
    ry: &[bool],
    x: &DMatrix<f64>,
    k: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f64> {
    let n = y.len();
    let aug = augment(y, ry, x);
    let obs: Vec<usize> = (0..aug.y.len()).filter(|&i| aug.ry[i]).collect();
    let xo = with_intercept(&aug.x, &aug.ry);
    let yo: Vec<usize> = obs.iter().map(|&i| aug.y[i] as usize).collect();
    let wo: Vec<f64> = obs.iter().map(|&i| aug.w[i]).collect();
    let b = fit_multinom(&xo, &yo, &wo, k);
    let miss: Vec<bool> = (0..aug.y.len()).map(|i| i < n && !ry[i]).collect();
    let post = probabilities(&with_intercept(&aug.x, &miss), &b);
    (0..post.nrows())
        .map(|i| {
            let u: f64 = rng.random();
            let mut cum = 0.0;
            let mut idx = 0;
            for c in 0..k {
                cum += post[(i, c)];
                if u > cum {
                    idx += 1;
                }
            }
            idx.min(k - 1) as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multinom_recovers_the_category_shares_of_an_intercept_model() {
        // 10 / 30 / 60 cases: the MLE of an intercept-only model is log(3), log(6).
        let y: Vec<usize> = (0..100)
            .map(|i| {
                if i < 10 {
                    0
                } else if i < 40 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let x = DMatrix::from_element(100, 1, 1.0);
        let b = fit_multinom(&x, &y, &[1.0; 100], 3);
        assert!((b[(0, 0)] - 3f64.ln()).abs() < 1e-8, "{b}");
        assert!((b[(1, 0)] - 6f64.ln()).abs() < 1e-8, "{b}");
    }
}
