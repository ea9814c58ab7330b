//! The gradient of the Laplace deviance of one scalar random intercept in `(sigma, beta[,
//! log theta])`, in closed form, so that the optimum is found by Newton's method in a few dozen
//! evaluations instead of BOBYQA's several hundred, and the Hessian (for the standard errors)
//! by central differences of the gradient (`2 k` evaluations instead of `2 k^2`). glmmTMB
//! gets the same gradient by automatic differentiation (TMB); lme4 has none (glmer's second
//! stage is derivative-free).
//!
//! For a group with linear predictors `eta_i = eta0_i + sigma u`, `h(u) = sum_i l_i(eta_i) -
//! u^2 / 2`, its mode `u*` (`h'(u*) = 0`) and `A = -h''(u*) = 1 + sigma^2 sum_i w_i` (`w_i =
//! -l_i''`, the observed information), the group's deviance is `D = -2 h(u*) + log A`. For any
//! parameter `phi` (envelope theorem: `u*` moves with `phi`, but `h'(u*) = 0`)
//!
//! `dD / dphi = -2 dh/dphi + (dA/dphi + dA/du du*/dphi) / A`, `du*/dphi = h_{u phi} / A`,
//!
//! with `dA/du = sigma^3 sum_i w_i'` (`w' = dw / deta`) and, per parameter,
//! - `beta_j`: `dh = sum_i l_i' x_ij`, `h_u = -sigma sum_i w_i x_ij`, `dA = sigma^2 sum_i w_i' x_ij`;
//! - `sigma`: `dh = u* sum_i l_i'`, `h_u = sum_i l_i' - sigma u* sum_i w_i`,
//!   `dA = 2 sigma sum_i w_i + sigma^2 u* sum_i w_i'`;
//! - `psi = log theta` (negative binomial): `dh = theta sum_i dl_i/dtheta`,
//!   `h_u = sigma theta sum_i dl_i'/dtheta`, `dA = sigma^2 theta sum_i dw_i/dtheta`, and the
//!   theta-dependent constants add `-2 theta sum_i d nb_log_rising(y_i, theta) / dtheta`.
//!
//! The families with this gradient: Poisson, the negative binomial (log link) and the
//! binomial with the logit link (there the Fisher weight of penalized IRLS is the observed
//! information, so the Laplace curvature is `-h''`); probit and cloglog keep BOBYQA.
use super::family::{Family, Link};
use super::{group_mode, GlmmData};

/// Whether [`deviance_gradient`] covers `fam`.
pub fn supports(fam: Family) -> bool {
    matches!(
        fam,
        Family::Poisson | Family::NegativeBinomial { .. } | Family::Binomial(Link::Logit)
    )
}

/// The derivatives of one row's log-density at `eta` that the gradient needs.
#[derive(Debug, Clone, Copy, Default)]
struct RowDerivs {
    /// `l'` (d log f / d eta)
    score: f64,
    /// `w = -l''`
    curv: f64,
    /// `dw / deta`
    curv_eta: f64,
    /// negative binomial: `d kernel / d theta`, `d l' / d theta`, `d w / d theta`
    kernel_theta: f64,
    score_theta: f64,
    curv_theta: f64,
}

fn row_derivs(fam: Family, y: f64, n: f64, eta: f64) -> RowDerivs {
    match fam {
        Family::Poisson => {
            let mu = eta.exp();
            RowDerivs {
                score: y - mu,
                curv: mu,
                curv_eta: mu,
                ..RowDerivs::default()
            }
        }
        Family::NegativeBinomial { theta } => {
            let mu = eta.exp();
            let s = theta + mu;
            RowDerivs {
                score: (y - mu) * theta / s,
                curv: (y + theta) * theta * mu / (s * s),
                curv_eta: (y + theta) * theta * mu * (theta - mu) / (s * s * s),
                // kernel y eta - (theta + y) log(1 + mu / theta)
                kernel_theta: -(mu / theta).ln_1p() + (theta + y) * mu / (theta * s),
                score_theta: (y - mu) * mu / (s * s),
                curv_theta: mu * (y * mu - y * theta + 2.0 * theta * mu) / (s * s * s),
            }
        }
        Family::Binomial(_) => {
            let mu = Link::Logit.inverse(eta);
            let v = n * mu * (1.0 - mu);
            RowDerivs {
                score: y - n * mu,
                curv: v,
                curv_eta: v * (1.0 - 2.0 * mu),
                ..RowDerivs::default()
            }
        }
    }
}

/// `d nb_log_rising(y, theta) / d theta = -sum_{j < y} j / (theta (theta + j))`
/// ([`super::family::nb_log_rising`]).
pub fn nb_log_rising_dtheta(y: f64, theta: f64) -> f64 {
    if y.fract() == 0.0 && (0.0..=1e5).contains(&y) {
        -(0..y as u64)
            .map(|j| {
                let j = j as f64;
                j / (theta * (theta + j))
            })
            .sum::<f64>()
    } else {
        use crate::stats::distributions::digamma;
        digamma(y + theta) - digamma(theta) - y / theta
    }
}

/// The Laplace deviance (as [`super::deviance`] with one quadrature node) and its gradient
/// at `par = (sigma, beta[, log theta])`; `modes` warm-starts and receives the conditional
/// modes; `constants` is the sum of the rows' density constants at this theta and
/// `constants_dpsi` its derivative in `log theta` (0 but for the negative binomial). The
/// groups run in parallel and are summed in group order (the result does not depend on the
/// threads).
pub fn deviance_gradient(
    d: &GlmmData,
    fam: Family,
    by_group: &[Vec<usize>],
    par: &[f64],
    modes: &mut [f64],
    constants: f64,
    constants_dpsi: f64,
) -> (f64, Vec<f64>) {
    use rayon::prelude::*;
    let p = d.p;
    let nb = matches!(fam, Family::NegativeBinomial { .. });
    let theta = match fam {
        Family::NegativeBinomial { theta } => theta,
        _ => 1.0,
    };
    let k = 1 + p + usize::from(nb);
    let (sigma, beta) = (par[0], &par[1..=p]);
    let per_group: Vec<(f64, Vec<f64>)> = by_group
        .par_iter()
        .zip(modes.par_iter_mut())
        .with_min_len(64)
        .map(|(rows, u0)| {
            let mut g = vec![0.0; k];
            if rows.is_empty() {
                return (0.0, g);
            }
            let eta0: Vec<f64> = rows
                .iter()
                .map(|&i| d.offset[i] + (0..p).map(|j| d.x[i * p + j] * beta[j]).sum::<f64>())
                .collect();
            let (u, hu, a) = group_mode(d, fam, rows, &eta0, sigma, *u0);
            *u0 = u;
            if !hu.is_finite() || !a.is_finite() {
                return (f64::INFINITY, g);
            }
            // sums over the group's rows (prior weights included)
            let (mut sl, mut sw, mut swe) = (0.0, 0.0, 0.0);
            let (mut skt, mut slt, mut swt) = (0.0, 0.0, 0.0);
            let mut slx = vec![0.0; p];
            let mut swx = vec![0.0; p];
            let mut swex = vec![0.0; p];
            for (&i, &e) in rows.iter().zip(&eta0) {
                let r = row_derivs(fam, d.y[i], d.trials[i], e + sigma * u);
                let wt = d.weights[i];
                let (l1, w, we) = (wt * r.score, wt * r.curv, wt * r.curv_eta);
                sl += l1;
                sw += w;
                swe += we;
                skt += wt * r.kernel_theta;
                slt += wt * r.score_theta;
                swt += wt * r.curv_theta;
                let xi = &d.x[i * p..(i + 1) * p];
                for j in 0..p {
                    slx[j] += l1 * xi[j];
                    swx[j] += w * xi[j];
                    swex[j] += we * xi[j];
                }
            }
            let s2 = sigma * sigma;
            let da_du = s2 * sigma * swe;
            // sigma
            let du = (sl - sigma * u * sw) / a;
            g[0] = -2.0 * u * sl + (2.0 * sigma * sw + s2 * u * swe + da_du * du) / a;
            // beta
            for j in 0..p {
                let du = -sigma * swx[j] / a;
                g[1 + j] = -2.0 * slx[j] + (s2 * swex[j] + da_du * du) / a;
            }
            // log theta
            if nb {
                let du = sigma * theta * slt / a;
                g[1 + p] = -2.0 * theta * skt + (s2 * theta * swt + da_du * du) / a;
            }
            (-2.0 * hu + a.ln(), g)
        })
        .collect();
    let mut grad = vec![0.0; k];
    for (_, g) in &per_group {
        for (a, b) in grad.iter_mut().zip(g) {
            *a += b;
        }
    }
    // summed as `super::deviance` sums (the same value to the last bit)
    let dev = per_group.iter().map(|(v, _)| v).sum::<f64>() - 2.0 * constants;
    if nb {
        grad[1 + p] -= 2.0 * constants_dpsi;
    }
    (dev, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 groups of 4 rows with an intercept, a covariate, an offset and prior weights.
    fn data(binomial: bool) -> GlmmData {
        let (mut x, mut y, mut group, mut offset, mut weights, mut trials) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for g in 0..30u32 {
            for t in 0..4 {
                let xi = t as f64 - 1.5;
                x.extend([1.0, xi]);
                let v = ((g * 7 + t * 3) % 5) as f64;
                y.push(if binomial { v.min(3.0) } else { v });
                trials.push(if binomial { 3.0 } else { 1.0 });
                group.push(g);
                offset.push(0.1 * (t as f64));
                weights.push(1.0 + 0.5 * ((g + t) % 2) as f64);
            }
        }
        let n = y.len();
        GlmmData {
            x,
            p: 2,
            names: vec!["(Intercept)".into(), "x".into()],
            y,
            trials,
            offset,
            weights,
            group,
            group_name: "g".into(),
            levels: (0..30).map(|g| g.to_string()).collect(),
            z: vec![1.0; n],
            q: 1,
            re_names: vec!["(Intercept)".into()],
            other_terms: vec![],
        }
    }

    /// The closed-form gradient equals central differences of the deviance.
    #[test]
    fn gradient_matches_finite_differences() {
        for (fam, binomial) in [
            (Family::Poisson, false),
            (Family::NegativeBinomial { theta: 1.7 }, false),
            (Family::Binomial(Link::Logit), true),
        ] {
            let d = data(binomial);
            let mut by_group = vec![vec![]; 30];
            for (i, &g) in d.group.iter().enumerate() {
                by_group[g as usize].push(i);
            }
            let nb = matches!(fam, Family::NegativeBinomial { .. });
            let mut par = vec![0.8, -0.3, 0.2];
            if nb {
                par.push(1.7_f64.ln());
            }
            let eval = |par: &[f64]| {
                let f = match fam {
                    Family::NegativeBinomial { .. } => Family::NegativeBinomial {
                        theta: par[3].exp(),
                    },
                    f => f,
                };
                let (mut c, mut cd) = (0.0, 0.0);
                for i in 0..d.y.len() {
                    c += d.weights[i] * f.constant(d.y[i], d.trials[i]);
                    if let Family::NegativeBinomial { theta } = f {
                        cd += d.weights[i] * theta * nb_log_rising_dtheta(d.y[i], theta);
                    }
                }
                let mut modes = vec![0.0; 30];
                deviance_gradient(&d, f, &by_group, par, &mut modes, c, cd)
            };
            let (_, g) = eval(&par);
            for j in 0..par.len() {
                let h = 1e-5;
                let (mut a, mut b) = (par.clone(), par.clone());
                a[j] += h;
                b[j] -= h;
                let fd = (eval(&a).0 - eval(&b).0) / (2.0 * h);
                assert!(
                    (fd - g[j]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{fam:?} parameter {j}: analytic {} numeric {fd}",
                    g[j]
                );
            }
        }
    }
}
