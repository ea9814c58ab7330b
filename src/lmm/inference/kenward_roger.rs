//! Kenward-Roger adjusted covariance and denominator df (Kenward & Roger 1997, Biometrics 53;
//! as pbkrtest's `vcovAdj` and `Lb_ddf`/`KRmodcomp`, Halekoh & Hojsgaard 2014, J Stat Softw
//! 59(9)).
//!
//! pbkrtest forms `V = sum_r gamma_r G_r` (n x n) and its inverse. Here `V` is taken block by
//! block: observations fall into independent blocks (connected components of the grouping
//! factors: participants for one grouping factor, sites when participants are nested in
//! sites, subjects in an MMRM), `V` is block-diagonal over them and every quantity pbkrtest
//! needs (`X'V^-1 X`, `P_r`, `Q_rs`, `tr(G_r V^-1 G_s V^-1)`) is a sum over blocks. Any model
//! that can describe its marginal covariance this way ([`KrBlock`]) can use it.
use crate::lmm::inference::DfError;
use nalgebra::DMatrix;

/// One independent block of observations.
#[derive(Debug, Clone)]
pub struct KrBlock {
    /// Fixed-effects rows, `n_c x p`.
    pub x: DMatrix<f64>,
    /// Marginal covariance `V_c`, `n_c x n_c`.
    pub v: DMatrix<f64>,
    /// `dV_c / d gamma_r` for each covariance parameter `gamma_r` (V linear in gamma).
    pub dv: Vec<DMatrix<f64>>,
}

/// pbkrtest's `vcovAdj` result: the adjusted covariance and what the df need.
#[derive(Debug, Clone)]
pub struct KrAdjusted {
    /// Unadjusted `vcov(beta)`.
    pub phi: DMatrix<f64>,
    /// Adjusted covariance `Phi_A`.
    pub phi_a: DMatrix<f64>,
    /// `P_r = -X'V^-1 G_r V^-1 X`.
    pub p: Vec<DMatrix<f64>>,
    /// `W = 2 I_E^-1` (inverse expected information of the covariance parameters, times 2).
    pub w: DMatrix<f64>,
}

/// Computes the Kenward-Roger adjustment from the blocks; `phi` is `vcov(beta)` of the fit.
pub fn kr_adjust(blocks: &[KrBlock], phi: &DMatrix<f64>) -> Result<KrAdjusted, DfError> {
    let Some(first) = blocks.first() else {
        return Err(DfError::NoObservations);
    };
    let p = first.x.ncols();
    let nr = first.dv.len();
    let mut pp = vec![DMatrix::<f64>::zeros(p, p); nr];
    let mut qq = vec![DMatrix::<f64>::zeros(p, p); nr * nr];
    let mut ktrace = DMatrix::<f64>::zeros(nr, nr);
    for blk in blocks {
        let chol = blk
            .v
            .clone()
            .cholesky()
            .ok_or(DfError::BlockNotPositiveDefinite)?;
        let vinv = chol.inverse();
        let t = &vinv * &blk.x;
        let hh: Vec<DMatrix<f64>> = blk.dv.iter().map(|g| g * &vinv).collect();
        let oo: Vec<DMatrix<f64>> = hh.iter().map(|h| h * &blk.x).collect();
        for r in 0..nr {
            pp[r] -= oo[r].transpose() * &t;
            let ovr = oo[r].transpose() * &vinv;
            for s in r..nr {
                qq[r * nr + s] += &ovr * &oo[s];
                // tr(H_r H_s) = sum_ij H_r[j,i] H_s[i,j]
                let tr = hh[r].transpose().component_mul(&hh[s]).sum();
                ktrace[(r, s)] += tr;
                if s != r {
                    ktrace[(s, r)] += tr;
                }
            }
        }
    }
    kr_from_sums(phi, pp, &qq, &ktrace)
}

/// The adjustment from the summed ingredients (pbkrtest `vcovAdj16_internal` after the sums
/// over blocks or patterns): `P_r = -X'V^-1 G_r V^-1 X` (`pp`), `Q_rs = X'V^-1 G_r V^-1 G_s
/// V^-1 X` (`qq[r * nr + s]`, `s >= r`) and `tr(V^-1 G_r V^-1 G_s)` (`ktrace`). Shared by the
/// LMM ([`kr_adjust`]) and the MMRM (`crate::mmrm::inference`).
pub fn kr_from_sums(
    phi: &DMatrix<f64>,
    pp: Vec<DMatrix<f64>>,
    qq: &[DMatrix<f64>],
    ktrace: &DMatrix<f64>,
) -> Result<KrAdjusted, DfError> {
    let nr = pp.len();
    let p = phi.nrows();
    let mut ie2 = DMatrix::<f64>::zeros(nr, nr);
    for i in 0..nr {
        let phi_pi = phi * &pp[i];
        for j in i..nr {
            let v = ktrace[(i, j)] - 2.0 * phi.component_mul(&qq[i * nr + j]).sum()
                + phi_pi.component_mul(&(&pp[j] * phi)).sum();
            ie2[(i, j)] = v;
            ie2[(j, i)] = v;
        }
    }
    let eig = ie2.clone().symmetric_eigen();
    let condi = eig
        .eigenvalues
        .iter()
        .fold(f64::INFINITY, |a, v| a.min(v.abs()));
    let w = if condi > 1e-10 {
        ie2.clone()
            .try_inverse()
            .ok_or(DfError::SingularInformation)?
            * 2.0
    } else {
        // Moore-Penrose inverse (MASS::ginv tolerance).
        let tol = f64::EPSILON.sqrt() * eig.eigenvalues.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let mut g = DMatrix::zeros(nr, nr);
        for (k, &ev) in eig.eigenvalues.iter().enumerate() {
            if ev.abs() > tol {
                let v = eig.eigenvectors.column(k);
                g += (v * v.transpose()) / ev;
            }
        }
        g * 2.0
    };
    let mut uu = DMatrix::<f64>::zeros(p, p);
    for i in 0..nr {
        for j in i + 1..nr {
            uu += (&qq[i * nr + j] - &pp[i] * phi * &pp[j]) * w[(i, j)];
        }
    }
    uu = &uu + uu.transpose();
    for i in 0..nr {
        uu += (&qq[i * nr + i] - &pp[i] * phi * &pp[i]) * w[(i, i)];
    }
    let ggamma = phi * uu * phi;
    let phi_a = phi + ggamma * 2.0;
    Ok(KrAdjusted {
        phi: phi.clone(),
        phi_a,
        p: pp,
        w,
    })
}

fn div_zero(x: f64, y: f64) -> f64 {
    if x.abs() < 1e-14 && y.abs() < 1e-14 {
        1.0
    } else {
        x / y
    }
}

impl KrAdjusted {
    /// The A1, A2 statistics of Kenward & Roger for restriction matrix `l` (q x p).
    fn a1_a2(&self, l: &DMatrix<f64>) -> Result<(f64, f64), DfError> {
        let lpl = l * &self.phi * l.transpose();
        let inv = lpl.try_inverse().ok_or(DfError::SingularContrast)?;
        let theta = l.transpose() * inv * l;
        let theta_phi = &theta * &self.phi;
        let nr = self.p.len();
        let us: Vec<DMatrix<f64>> = self
            .p
            .iter()
            .map(|pr| &theta_phi * pr * &self.phi)
            .collect();
        let mut a1 = 0.0;
        let mut a2 = 0.0;
        for i in 0..nr {
            for j in i..nr {
                let e = if i == j { 1.0 } else { 2.0 };
                let ui = &us[i];
                let uj = &us[j];
                a1 += e * self.w[(i, j)] * (ui.trace() * uj.trace());
                a2 += e * self.w[(i, j)] * ui.component_mul(&uj.transpose()).sum();
            }
        }
        Ok((a1, a2))
    }

    /// Kenward-Roger denominator df for `L beta` (pbkrtest `Lb_ddf`, q = number of rows).
    pub fn df(&self, l: &DMatrix<f64>) -> Result<f64, DfError> {
        let q = l.nrows() as f64;
        let (a1, a2) = self.a1_a2(l)?;
        Ok(ddf_from_a(q, a1, a2).0)
    }

    /// Kenward-Roger F test (pbkrtest `KRmodcomp`): returns (scaled F, numerator df,
    /// denominator df, unscaled F).
    pub fn f_test(
        &self,
        l: &DMatrix<f64>,
        beta: &nalgebra::DVector<f64>,
    ) -> Result<(f64, f64, f64, f64), DfError> {
        let q = l.nrows() as f64;
        let (a1, a2) = self.a1_a2(l)?;
        let (df2, scaling) = ddf_from_a(q, a1, a2);
        let lb = l * beta;
        let lpl = l * &self.phi_a * l.transpose();
        let inv = lpl.try_inverse().ok_or(DfError::SingularAdjustedContrast)?;
        let wald = (lb.transpose() * inv * &lb)[(0, 0)];
        let fu = wald / q;
        Ok((scaling * fu, q, df2, fu))
    }
}

/// pbkrtest's df2 and F scaling from A1, A2.
fn ddf_from_a(q: f64, a1: f64, a2: f64) -> (f64, f64) {
    let b = (1.0 / (2.0 * q)) * (a1 + 6.0 * a2);
    let g = ((q + 1.0) * a1 - (q + 4.0) * a2) / ((q + 2.0) * a2);
    let c1 = g / (3.0 * q + 2.0 * (1.0 - g));
    let c2 = (q - g) / (3.0 * q + 2.0 * (1.0 - g));
    let c3 = (q + 2.0 - g) / (3.0 * q + 2.0 * (1.0 - g));
    let mut v0 = 1.0 + c1 * b;
    let v1 = 1.0 - c2 * b;
    let v2 = 1.0 - c3 * b;
    if v0.abs() < 1e-10 {
        v0 = 0.0;
    }
    let rho = 1.0 / q * div_zero(1.0 - a2 / q, v1).powi(2) * v0 / v2;
    let df2 = 4.0 + (q + 2.0) / (q * rho - 1.0);
    let scaling = if (df2 - 4.0).abs() < 1e-2 {
        1.0
    } else {
        df2 * (1.0 - a2 / q) / (df2 - 2.0)
    };
    (df2, scaling)
}
