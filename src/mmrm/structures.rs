//! Residual (R-side) covariance structures of the waves within a participant.
//!
//! Each structure has two parametrizations:
//!
//! * **theta** (unconstrained, for the optimizer): every theta in R^k gives a positive-definite
//!   matrix. `us`: log-Cholesky (the lower Cholesky factor `L` with `exp` on its diagonal, its
//!   entries column by column, Pinheiro & Bates 1996); standard deviations as logs; the
//!   compound-symmetry correlation as a logistic map onto `(-1/(T-1), 1)`; the AR(1)
//!   correlation as `tanh`; Toeplitz as `log sigma` plus the partial autocorrelations
//!   `tanh(theta_k)` turned into autocorrelations by the Durbin-Levinson recursion (the
//!   parametrization behind nlme's `corARMA`, which for `p = T - 1` is exactly Toeplitz).
//! * **gamma** (natural, for inference): `us` the covariances `s_ij` (lower triangle by
//!   column, as SAS `UN(i,j)`), `cs` `(tau, sigma2)` with `Sigma = tau J + sigma2 I`, `toep`
//!   the lag covariances `c_0 .. c_{T-1}` - these three are linear in gamma, so
//!   Kenward-Roger is the full method (as SAS DDFM=KR); `csh` variances and `rho`, `ar1`
//!   `(sigma2, phi)`, `ar1h` variances and `phi` are not linear.
use nalgebra::DMatrix;
use serde::Serialize;

/// Kind of residual covariance structure (SAS `TYPE=`, the R mmrm package's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CovKind {
    /// Unstructured (`corSymm` + `varIdent` by wave in nlme).
    Us,
    /// Compound symmetry (`corCompSymm`).
    Cs,
    /// Heterogeneous compound symmetry (`corCompSymm` + `varIdent` by wave).
    Csh,
    /// First-order autoregressive on the wave index (`corAR1`).
    Ar1,
    /// Heterogeneous AR(1) (`corAR1` + `varIdent` by wave).
    Ar1h,
    /// Toeplitz (`corARMA(p = T - 1)` on the wave index).
    Toep,
}

impl CovKind {
    /// Parses `us`, `cs`, `csh`, `ar1`, `ar1h`, `toep` (case-insensitive).
    pub fn parse(s: &str) -> Option<CovKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "us" | "un" => Some(CovKind::Us),
            "cs" => Some(CovKind::Cs),
            "csh" => Some(CovKind::Csh),
            "ar1" => Some(CovKind::Ar1),
            "ar1h" => Some(CovKind::Ar1h),
            "toep" => Some(CovKind::Toep),
            _ => None,
        }
    }

    /// The short name (`us`, `cs`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            CovKind::Us => "us",
            CovKind::Cs => "cs",
            CovKind::Csh => "csh",
            CovKind::Ar1 => "ar1",
            CovKind::Ar1h => "ar1h",
            CovKind::Toep => "toep",
        }
    }

    /// Number of covariance parameters for `t` waves.
    pub fn n_par(&self, t: usize) -> usize {
        match self {
            CovKind::Us => t * (t + 1) / 2,
            CovKind::Cs | CovKind::Ar1 => 2,
            CovKind::Csh | CovKind::Ar1h => t + 1,
            CovKind::Toep => t,
        }
    }

    /// Whether the covariance is linear in the natural parameters gamma.
    pub fn is_linear(&self) -> bool {
        matches!(self, CovKind::Us | CovKind::Cs | CovKind::Toep)
    }

    /// Names of the natural parameters gamma.
    pub fn gamma_names(&self, t: usize) -> Vec<String> {
        match self {
            CovKind::Us => {
                let mut v = Vec::new();
                for j in 0..t {
                    for i in j..t {
                        v.push(format!("s{}{}", i + 1, j + 1));
                    }
                }
                v
            }
            CovKind::Cs => vec!["tau".into(), "sigma2".into()],
            CovKind::Csh => {
                let mut v: Vec<String> = (1..=t).map(|i| format!("var{i}")).collect();
                v.push("rho".into());
                v
            }
            CovKind::Ar1 => vec!["sigma2".into(), "phi".into()],
            CovKind::Ar1h => {
                let mut v: Vec<String> = (1..=t).map(|i| format!("var{i}")).collect();
                v.push("phi".into());
                v
            }
            CovKind::Toep => (0..t).map(|k| format!("c{k}")).collect(),
        }
    }

    /// Starting theta: `Sigma = s2 I`.
    pub fn start_theta(&self, t: usize, s2: f64) -> Vec<f64> {
        let ls = 0.5 * s2.max(1e-12).ln();
        match self {
            CovKind::Us => {
                let mut v = Vec::new();
                for j in 0..t {
                    for i in j..t {
                        v.push(if i == j { ls } else { 0.0 });
                    }
                }
                v
            }
            CovKind::Cs | CovKind::Ar1 => {
                let mut v = vec![ls, 0.0];
                if *self == CovKind::Cs {
                    // logistic map: rho = 0 at theta = ln(-lo)... choose theta with rho = 0.
                    v[1] = cs_theta_for_rho(t, 0.0);
                }
                v
            }
            CovKind::Csh | CovKind::Ar1h => {
                let mut v = vec![ls; t];
                v.push(if *self == CovKind::Csh {
                    cs_theta_for_rho(t, 0.0)
                } else {
                    0.0
                });
                v
            }
            CovKind::Toep => {
                let mut v = vec![0.0; t];
                if let Some(f) = v.first_mut() {
                    *f = ls;
                }
                v
            }
        }
    }

    /// `Sigma` (t x t) at unconstrained `theta`; `None` if theta has the wrong length or a
    /// value overflows.
    pub fn sigma_theta(&self, t: usize, theta: &[f64]) -> Option<DMatrix<f64>> {
        if theta.len() != self.n_par(t) || theta.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let m = match self {
            CovKind::Us => {
                let mut l = DMatrix::<f64>::zeros(t, t);
                let mut k = 0;
                for j in 0..t {
                    for i in j..t {
                        l[(i, j)] = if i == j { theta[k].exp() } else { theta[k] };
                        k += 1;
                    }
                }
                &l * l.transpose()
            }
            CovKind::Cs => {
                let s2 = (2.0 * theta[0]).exp();
                let rho = cs_rho(t, theta[1]);
                DMatrix::from_fn(t, t, |i, j| if i == j { s2 } else { s2 * rho })
            }
            CovKind::Csh => {
                let rho = cs_rho(t, theta[t]);
                DMatrix::from_fn(t, t, |i, j| {
                    let c = if i == j { 1.0 } else { rho };
                    (theta[i] + theta[j]).exp() * c
                })
            }
            CovKind::Ar1 => {
                let s2 = (2.0 * theta[0]).exp();
                let phi = theta[1].tanh();
                DMatrix::from_fn(t, t, |i, j| s2 * phi.powi(i.abs_diff(j) as i32))
            }
            CovKind::Ar1h => {
                let phi = theta[t].tanh();
                DMatrix::from_fn(t, t, |i, j| {
                    (theta[i] + theta[j]).exp() * phi.powi(i.abs_diff(j) as i32)
                })
            }
            CovKind::Toep => {
                let s2 = (2.0 * theta[0]).exp();
                let pacf: Vec<f64> = theta[1..].iter().map(|v| v.tanh()).collect();
                let rho = durbin_levinson(&pacf);
                DMatrix::from_fn(t, t, |i, j| {
                    let d = i.abs_diff(j);
                    if d == 0 {
                        s2
                    } else {
                        s2 * rho.get(d - 1).copied().unwrap_or(0.0)
                    }
                })
            }
        };
        m.iter().all(|v| v.is_finite()).then_some(m)
    }

    /// `Sigma` at natural parameters `gamma`.
    pub fn sigma_gamma(&self, t: usize, g: &[f64]) -> Option<DMatrix<f64>> {
        if g.len() != self.n_par(t) {
            return None;
        }
        let m = match self {
            CovKind::Us => {
                let mut s = DMatrix::<f64>::zeros(t, t);
                let mut k = 0;
                for j in 0..t {
                    for i in j..t {
                        s[(i, j)] = g[k];
                        s[(j, i)] = g[k];
                        k += 1;
                    }
                }
                s
            }
            CovKind::Cs => DMatrix::from_fn(t, t, |i, j| g[0] + if i == j { g[1] } else { 0.0 }),
            CovKind::Csh => DMatrix::from_fn(t, t, |i, j| {
                if i == j {
                    g[i]
                } else {
                    (g[i] * g[j]).sqrt() * g[t]
                }
            }),
            CovKind::Ar1 => DMatrix::from_fn(t, t, |i, j| g[0] * g[1].powi(i.abs_diff(j) as i32)),
            CovKind::Ar1h => DMatrix::from_fn(t, t, |i, j| {
                (g[i] * g[j]).sqrt() * g[t].powi(i.abs_diff(j) as i32)
            }),
            CovKind::Toep => DMatrix::from_fn(t, t, |i, j| g[i.abs_diff(j)]),
        };
        m.iter().all(|v| v.is_finite()).then_some(m)
    }

    /// Natural parameters gamma of a covariance matrix of this structure.
    pub fn gamma_from_sigma(&self, s: &DMatrix<f64>) -> Vec<f64> {
        let t = s.nrows();
        let corr01 = || {
            if t > 1 {
                s[(1, 0)] / (s[(0, 0)] * s[(1, 1)]).sqrt()
            } else {
                0.0
            }
        };
        match self {
            CovKind::Us => {
                let mut v = Vec::new();
                for j in 0..t {
                    for i in j..t {
                        v.push(s[(i, j)]);
                    }
                }
                v
            }
            CovKind::Cs => {
                let tau = if t > 1 { s[(1, 0)] } else { 0.0 };
                vec![tau, s[(0, 0)] - tau]
            }
            CovKind::Csh | CovKind::Ar1h => {
                let mut v: Vec<f64> = (0..t).map(|i| s[(i, i)]).collect();
                v.push(corr01());
                v
            }
            CovKind::Ar1 => vec![s[(0, 0)], corr01()],
            CovKind::Toep => (0..t).map(|k| s[(k, 0)]).collect(),
        }
    }

    /// Unconstrained theta reproducing the covariance `s` of this structure (inverse of
    /// [`CovKind::sigma_theta`]); `None` when `s` is not positive definite.
    pub fn theta_from_sigma(&self, s: &DMatrix<f64>) -> Option<Vec<f64>> {
        let t = s.nrows();
        let g = self.gamma_from_sigma(s);
        let atanh = |r: f64| r.clamp(-0.999_999_999, 0.999_999_999).atanh();
        let v = match self {
            CovKind::Us => {
                let l = s.clone().cholesky()?.l();
                let mut v = Vec::new();
                for j in 0..t {
                    for i in j..t {
                        v.push(if i == j { l[(i, j)].ln() } else { l[(i, j)] });
                    }
                }
                v
            }
            CovKind::Cs => {
                let s2 = s[(0, 0)];
                vec![0.5 * s2.ln(), cs_theta_for_rho(t, g[0] / s2)]
            }
            CovKind::Csh => {
                let mut v: Vec<f64> = (0..t).map(|i| 0.5 * s[(i, i)].ln()).collect();
                v.push(cs_theta_for_rho(t, g[t]));
                v
            }
            CovKind::Ar1 => vec![0.5 * g[0].ln(), atanh(g[1])],
            CovKind::Ar1h => {
                let mut v: Vec<f64> = (0..t).map(|i| 0.5 * s[(i, i)].ln()).collect();
                v.push(atanh(g[t]));
                v
            }
            CovKind::Toep => {
                let c0 = g.first().copied()?;
                let rho: Vec<f64> = g.iter().skip(1).map(|c| c / c0).collect();
                let pacf = partial_autocorrelations(&rho)?;
                let mut v = vec![0.5 * c0.ln()];
                v.extend(pacf.into_iter().map(atanh));
                v
            }
        };
        v.iter().all(|x| x.is_finite()).then_some(v)
    }
}

fn cs_lower(t: usize) -> f64 {
    if t > 1 {
        -1.0 / (t as f64 - 1.0)
    } else {
        -1.0
    }
}

fn cs_rho(t: usize, th: f64) -> f64 {
    let lo = cs_lower(t);
    lo + (1.0 - lo) / (1.0 + (-th).exp())
}

fn cs_theta_for_rho(t: usize, rho: f64) -> f64 {
    let lo = cs_lower(t);
    let u = ((rho - lo) / (1.0 - lo)).clamp(1e-12, 1.0 - 1e-12);
    (u / (1.0 - u)).ln()
}

/// Autocorrelations `rho_1..rho_K` from partial autocorrelations `pi_1..pi_K` (Durbin-Levinson).
pub fn durbin_levinson(pacf: &[f64]) -> Vec<f64> {
    let mut rho = Vec::with_capacity(pacf.len());
    let mut phi: Vec<f64> = Vec::new();
    for (k, &pk) in pacf.iter().enumerate() {
        // phi holds phi_{k, 1..k} (k = number of lags so far).
        let mut s1 = 0.0;
        let mut s2 = 0.0;
        for j in 0..k {
            s1 += phi[j] * rho[k - 1 - j];
            s2 += phi[j] * rho[j];
        }
        rho.push(s1 + pk * (1.0 - s2));
        let mut nphi = vec![0.0; k + 1];
        for j in 0..k {
            nphi[j] = phi[j] - pk * phi[k - 1 - j];
        }
        nphi[k] = pk;
        phi = nphi;
    }
    rho
}

/// Partial autocorrelations from autocorrelations (inverse Durbin-Levinson); `None` when the
/// Toeplitz matrix is not positive definite.
pub fn partial_autocorrelations(rho: &[f64]) -> Option<Vec<f64>> {
    let mut pacf = Vec::with_capacity(rho.len());
    let mut phi: Vec<f64> = Vec::new();
    for k in 0..rho.len() {
        let mut num = rho[k];
        let mut den = 1.0;
        for j in 0..k {
            num -= phi[j] * rho[k - 1 - j];
            den -= phi[j] * rho[j];
        }
        if den <= 0.0 {
            return None;
        }
        let pk = num / den;
        if pk.abs() >= 1.0 {
            return None;
        }
        let mut nphi = vec![0.0; k + 1];
        for j in 0..k {
            nphi[j] = phi[j] - pk * phi[k - 1 - j];
        }
        nphi[k] = pk;
        phi = nphi;
        pacf.push(pk);
    }
    Some(pacf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durbin_levinson_round_trip() {
        let pacf = [0.6, -0.3, 0.2];
        let rho = durbin_levinson(&pacf);
        // AR(1)-like first lag
        assert!((rho[0] - 0.6).abs() < 1e-15);
        let back = partial_autocorrelations(&rho).unwrap();
        for (a, b) in pacf.iter().zip(&back) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn theta_sigma_round_trip_all_kinds() {
        for kind in [
            CovKind::Us,
            CovKind::Cs,
            CovKind::Csh,
            CovKind::Ar1,
            CovKind::Ar1h,
            CovKind::Toep,
        ] {
            let t = 4;
            let th: Vec<f64> = (0..kind.n_par(t)).map(|i| 0.1 * i as f64 - 0.2).collect();
            let s = kind.sigma_theta(t, &th).unwrap();
            assert!(s.clone().cholesky().is_some(), "{kind:?} not PD");
            let th2 = kind.theta_from_sigma(&s).unwrap();
            let s2 = kind.sigma_theta(t, &th2).unwrap();
            assert!((&s - &s2).abs().max() < 1e-10, "{kind:?}");
            let g = kind.gamma_from_sigma(&s);
            let s3 = kind.sigma_gamma(t, &g).unwrap();
            assert!((&s - &s3).abs().max() < 1e-10, "{kind:?}");
        }
    }
}
