//! Marginal imputation means per strategy and the conditional mean imputation.
//!
//! With `mu_i = X_i(own arm) beta`, `mu_ref,i = X_i(arm = reference) beta` (J follow-up waves)
//! and `t~` the first wave at or after the intercurrent event (Carpenter, Roger & Kenward
//! 2013, section 4.3; rbmi `R/strategies.R`):
//!
//! * MAR: `mu~ = mu_i`;
//! * J2R: `mu~ = (mu_i[1..t~-1], mu_ref[t~..J])`;
//! * CR: `mu~ = mu_ref` at every wave, the observed ones too (so an intermittent value before
//!   the ICE of a participant with an ICE is imputed around the reference mean, as rbmi does);
//! * CIR: `mu~ = (mu_i[1..t~-1], mu_i[t~-1] + mu_ref[t] - mu_ref[t~-1] for t >= t~)`;
//! * `t~ = 1` (no observed follow-up): J2R, CR and CIR give `mu_ref` (rbmi's `all(!index_mar)`
//!   branch; baseline is a covariate, not a wave, so CIR has no own "last value");
//! * reference-arm participants and participants without an ICE: `mu~ = mu_i` for every strategy.
//!
//! Covariance: for J2R and CIR Carpenter et al. give `Sigma~11 = Sigma_11`,
//! `Sigma~21 = Sigma_ref,21 Sigma_ref,11^-1 Sigma_11`, `Sigma~22 = Sigma_ref,22 - Sigma_ref,21
//! Sigma_ref,11^-1 (Sigma_ref,11 - Sigma_11) Sigma_ref,11^-1 Sigma_ref,12`; with the common
//! covariance of both arms this is `Sigma` itself (rbmi's `compute_sigma` returns `sigma_ref`
//! when the two are identical), so every strategy uses `Sigma`.
//!
//! Conditional mean (Wolbers et al. 2022, eq. 3): `y_m = mu~_m + Sigma_mo Sigma_oo^-1 (y_o -
//! mu~_o)`, or `mu~_m` when nothing is observed.
use nalgebra::{DMatrix, DVector};

use super::Strategy;

/// The marginal imputation mean of one participant (J waves).
pub fn strategy_mean(
    strategy: Strategy,
    mu_own: &[f64],
    mu_ref: &[f64],
    ice: Option<usize>,
    in_reference_arm: bool,
) -> Vec<f64> {
    let Some(t) = ice else {
        return mu_own.to_vec();
    };
    if in_reference_arm || strategy == Strategy::Mar {
        return mu_own.to_vec();
    }
    if strategy == Strategy::Cr || t == 0 {
        return mu_ref.to_vec();
    }
    let mut m = mu_own.to_vec();
    for w in t..m.len() {
        m[w] = match strategy {
            Strategy::J2r => mu_ref[w],
            Strategy::Cir => mu_own[t - 1] + mu_ref[w] - mu_ref[t - 1],
            Strategy::Mar | Strategy::Cr => m[w],
        };
    }
    m
}

/// The conditional mean of the missing values of `y` given the observed ones under mean `m`
/// and covariance `sigma`; observed values are returned as they are. `None` when `Sigma_oo`
/// is not positive definite.
pub fn conditional_mean(y: &[Option<f64>], m: &[f64], sigma: &DMatrix<f64>) -> Option<Vec<f64>> {
    let obs: Vec<usize> = (0..y.len()).filter(|&w| y[w].is_some()).collect();
    let mis: Vec<usize> = (0..y.len()).filter(|&w| y[w].is_none()).collect();
    let mut out: Vec<f64> = y.iter().zip(m).map(|(v, mu)| v.unwrap_or(*mu)).collect();
    if mis.is_empty() || obs.is_empty() {
        return Some(out);
    }
    let soo = DMatrix::from_fn(obs.len(), obs.len(), |a, b| sigma[(obs[a], obs[b])]);
    let r = DVector::from_iterator(obs.len(), obs.iter().map(|&w| out[w] - m[w]));
    let sol = soo.cholesky()?.solve(&r);
    for &w in &mis {
        out[w] = m[w]
            + obs
                .iter()
                .enumerate()
                .map(|(a, &o)| sigma[(w, o)] * sol[a])
                .sum::<f64>();
    }
    Some(out)
}

/// A draw from the conditional distribution of the missing values of `y` given the observed
/// ones, `N(mu~_m + Sigma_mo Sigma_oo^-1 (y_o - mu~_o), Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om)`
/// (rbmi's imputation step of `method_approxbayes`), with the standard normal deviates `z`
/// (one per missing value, in wave order). `None` when a covariance is not positive definite.
pub fn conditional_draw(
    y: &[Option<f64>],
    m: &[f64],
    sigma: &DMatrix<f64>,
    z: &[f64],
) -> Option<Vec<f64>> {
    let obs: Vec<usize> = (0..y.len()).filter(|&w| y[w].is_some()).collect();
    let mis: Vec<usize> = (0..y.len()).filter(|&w| y[w].is_none()).collect();
    let mut out = conditional_mean(y, m, sigma)?;
    if mis.is_empty() {
        return Some(out);
    }
    let smm = DMatrix::from_fn(mis.len(), mis.len(), |a, b| sigma[(mis[a], mis[b])]);
    let cond = if obs.is_empty() {
        smm
    } else {
        let soo = DMatrix::from_fn(obs.len(), obs.len(), |a, b| sigma[(obs[a], obs[b])]);
        let som = DMatrix::from_fn(obs.len(), mis.len(), |a, b| sigma[(obs[a], mis[b])]);
        let sol = soo.cholesky()?.solve(&som);
        smm - som.transpose() * sol
    };
    let l = cond.cholesky()?.l();
    for (a, &w) in mis.iter().enumerate() {
        out[w] += (0..=a)
            .map(|b| l[(a, b)] * z.get(b).copied().unwrap_or(0.0))
            .sum::<f64>();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_follow_carpenter_et_al() {
        let own = [10.0, 12.0, 14.0];
        let rf = [9.0, 10.0, 11.5];
        let s = |st, ice, refarm| strategy_mean(st, &own, &rf, ice, refarm);
        assert_eq!(s(Strategy::J2r, Some(1), false), vec![10.0, 10.0, 11.5]);
        assert_eq!(s(Strategy::Cir, Some(1), false), vec![10.0, 11.0, 12.5]);
        assert_eq!(s(Strategy::Cr, Some(2), false), rf.to_vec());
        assert_eq!(s(Strategy::Cir, Some(0), false), rf.to_vec());
        assert_eq!(s(Strategy::J2r, Some(1), true), own.to_vec());
        assert_eq!(s(Strategy::J2r, None, false), own.to_vec());
        assert_eq!(s(Strategy::Mar, Some(0), false), own.to_vec());
    }

    #[test]
    fn conditional_mean_of_a_bivariate_normal() {
        // y2 | y1 = mu2 + s21 / s11 (y1 - mu1)
        let sigma = DMatrix::from_row_slice(2, 2, &[4.0, 2.0, 2.0, 9.0]);
        let out = conditional_mean(&[Some(3.0), None], &[1.0, 5.0], &sigma).unwrap();
        assert_eq!(out[0], 3.0);
        assert!((out[1] - (5.0 + 0.5 * 2.0)).abs() < 1e-14);
        let none = conditional_mean(&[None, None], &[1.0, 5.0], &sigma).unwrap();
        assert_eq!(none, vec![1.0, 5.0]);
    }

    #[test]
    fn conditional_draw_uses_the_conditional_variance() {
        // var(y2 | y1) = 9 - 2^2 / 4 = 8: a deviate z gives mean + sqrt(8) z.
        let sigma = DMatrix::from_row_slice(2, 2, &[4.0, 2.0, 2.0, 9.0]);
        let out = conditional_draw(&[Some(3.0), None], &[1.0, 5.0], &sigma, &[1.5]).unwrap();
        assert!((out[1] - (6.0 + 8f64.sqrt() * 1.5)).abs() < 1e-12);
        // Nothing observed: the marginal Cholesky factor.
        let both = conditional_draw(&[None, None], &[0.0, 0.0], &sigma, &[1.0, 0.0]).unwrap();
        assert!((both[0] - 2.0).abs() < 1e-12 && (both[1] - 1.0).abs() < 1e-12);
    }
}
