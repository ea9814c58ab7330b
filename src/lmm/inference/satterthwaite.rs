//! Satterthwaite degrees of freedom as lmerTest computes them (Kuznetsova, Brockhoff &
//! Christensen 2017, J Stat Softw 82(13)): with `tau` the variance parameters, the asymptotic
//! covariance of `tau` is `A = 2 H^{-1}` (H the numerical Hessian of the deviance in `tau`,
//! Moore-Penrose inverse over eigenvalues above 1e-8), and for a contrast `l`,
//! `df = 2 (l'C l)^2 / (g'A g)` with `g_i = l' (dC/dtau_i) l` (numerical Jacobian of
//! `C = vcov(beta)`). Multi-row contrasts (F tests, lmerTest's `contestMD`) decompose
//! `L C L'` by eigenvalues and combine the per-direction df.
//!
//! Written against [`VarianceParameterModel`], so any model with a likelihood in a vector of
//! variance parameters (an LMM's `(theta, sigma)`, an MMRM's residual covariance parameters)
//! gets the same df machinery.
use crate::lmm::inference::DfError;
use nalgebra::{DMatrix, DVector};

use crate::stats::numderiv;

/// A model whose fixed-effect covariance and deviance are functions of variance parameters.
pub trait VarianceParameterModel {
    /// Number of fixed effects p.
    fn n_fixef(&self) -> usize;
    /// The variance parameters at the estimate.
    fn varpar(&self) -> Vec<f64>;
    /// -2 log-likelihood (REML or ML, matching the fit) at `varpar`, beta profiled out.
    fn deviance_at(&self, varpar: &[f64]) -> f64;
    /// `vcov(beta)` at `varpar`, p x p.
    fn vcov_at(&self, varpar: &[f64]) -> DMatrix<f64>;
    /// [`VarianceParameterModel::deviance_at`] at each of `points` (one by one here; a model
    /// may evaluate them in parallel and share work between points).
    fn deviances_at(&self, points: &[Vec<f64>]) -> Vec<f64> {
        points.iter().map(|p| self.deviance_at(p)).collect()
    }
    /// [`VarianceParameterModel::vcov_at`] at each of `points`.
    fn vcovs_at(&self, points: &[Vec<f64>]) -> Vec<DMatrix<f64>> {
        points.iter().map(|p| self.vcov_at(p)).collect()
    }
    /// `d vcov(beta) / d varpar_j` for every parameter, in closed form where the model has it;
    /// `None` (the default) takes Richardson differences of [`Self::vcovs_at`] as lmerTest does.
    fn vcov_jacobian(&self, _varpar: &[f64]) -> Option<Vec<DMatrix<f64>>> {
        None
    }
}

/// Precomputed quantities for Satterthwaite df.
#[derive(Debug, Clone)]
pub struct Satterthwaite {
    pub vcov: DMatrix<f64>,
    /// `dC/dtau_i` for each variance parameter.
    pub jac: Vec<DMatrix<f64>>,
    /// Asymptotic covariance of the variance parameters, `2 H^+`.
    pub a: DMatrix<f64>,
    /// Warnings about the Hessian (negative or zero eigenvalues), lmerTest's wording.
    pub warnings: Vec<String>,
}

/// lmerTest's `A = 2 H^+`: twice the pseudo-inverse of the deviance Hessian over its
/// eigenvalues above 1e-8, with lmerTest's convergence warnings for negative and near-zero
/// eigenvalues. Shared by the LMM and the MMRM.
pub fn lmertest_a(hm: &DMatrix<f64>) -> (DMatrix<f64>, Vec<String>) {
    let k = hm.nrows();
    let eig = hm.clone().symmetric_eigen();
    let tol = 1e-8;
    let mut warnings = Vec::new();
    let neg = eig.eigenvalues.iter().filter(|e| **e < -tol).count();
    let zero = eig.eigenvalues.iter().filter(|e| e.abs() <= tol).count();
    if neg > 0 {
        warnings.push(format!(
            "Model failed to converge with {neg} negative eigenvalue(s) of the Hessian"
        ));
    }
    if zero > 0 {
        warnings.push(format!(
            "Model may not have converged with {zero} eigenvalue(s) close to zero"
        ));
    }
    let mut hinv = DMatrix::zeros(k, k);
    for (idx, &ev) in eig.eigenvalues.iter().enumerate() {
        if ev > tol {
            let v = eig.eigenvectors.column(idx);
            hinv += (v * v.transpose()) / ev;
        }
    }
    (hinv * 2.0, warnings)
}

impl Satterthwaite {
    /// Computes the Hessian of the deviance and the Jacobian of vcov(beta) numerically.
    pub fn compute<M: VarianceParameterModel + ?Sized>(model: &M) -> Result<Self, DfError> {
        let vp = model.varpar();
        let k = vp.len();
        let p = model.n_fixef();
        let vcov = model.vcov_at(&vp);
        // The stencils' points are evaluated as one batch (in parallel where the model can).
        let h =
            numderiv::hessian_from_values(&vp, &model.deviances_at(&numderiv::hessian_points(&vp)));
        let hm = DMatrix::from_fn(k, k, |i, j| h[i][j]);
        if !hm.iter().all(|v| v.is_finite()) {
            return Err(DfError::HessianNotFinite);
        }
        let (a, warnings) = lmertest_a(&hm);

        let jac = match model.vcov_jacobian(&vp) {
            Some(jac) => jac,
            None => {
                let jac_values: Vec<Vec<f64>> = model
                    .vcovs_at(&numderiv::jacobian_points(&vp))
                    .into_iter()
                    .map(|c| c.iter().copied().collect())
                    .collect();
                numderiv::jacobian_from_values(&vp, &jac_values)
                    .into_iter()
                    .map(|col| DMatrix::from_column_slice(p, p, &col))
                    .collect()
            }
        };
        Ok(Satterthwaite {
            vcov,
            jac,
            a,
            warnings,
        })
    }

    /// Satterthwaite df of a single contrast `l` (lmerTest `contest1D`).
    pub fn df(&self, l: &[f64]) -> f64 {
        let lv = DVector::from_column_slice(l);
        let var = (lv.transpose() * &self.vcov * &lv)[(0, 0)];
        let g = DVector::from_iterator(
            self.jac.len(),
            self.jac.iter().map(|j| (lv.transpose() * j * &lv)[(0, 0)]),
        );
        let denom = (g.transpose() * &self.a * &g)[(0, 0)];
        2.0 * var * var / denom
    }

    /// F test of `L beta = 0` (lmerTest `contestMD`): returns (F, numerator df, denominator df).
    pub fn f_test(
        &self,
        l: &DMatrix<f64>,
        beta: &DVector<f64>,
    ) -> Result<(f64, f64, f64), DfError> {
        let vl = l * &self.vcov * l.transpose();
        let eig = vl.symmetric_eigen();
        // Sort eigenvalues decreasingly as R's eigen does.
        let mut idx: Vec<usize> = (0..eig.eigenvalues.len()).collect();
        idx.sort_by(|a, b| eig.eigenvalues[*b].total_cmp(&eig.eigenvalues[*a]));
        let d1 = idx.first().map_or(0.0, |&i| eig.eigenvalues[i]);
        let tol = (f64::EPSILON.sqrt() * d1).max(0.0);
        let pos: Vec<usize> = idx
            .into_iter()
            .filter(|&i| eig.eigenvalues[i] > tol)
            .collect();
        let q = pos.len();
        if q == 0 {
            return Err(DfError::RankZero);
        }
        let mut t2 = 0.0;
        let mut nus = Vec::with_capacity(q);
        for &i in &pos {
            let pv = eig.eigenvectors.column(i);
            let ptl: DVector<f64> = l.transpose() * pv;
            let d = eig.eigenvalues[i];
            let est = ptl.dot(beta);
            t2 += est * est / d;
            let g = DVector::from_iterator(
                self.jac.len(),
                self.jac
                    .iter()
                    .map(|j| (ptl.transpose() * j * &ptl)[(0, 0)]),
            );
            let denom = (g.transpose() * &self.a * &g)[(0, 0)];
            nus.push(2.0 * d * d / denom);
        }
        let f = t2 / q as f64;
        Ok((f, q as f64, fstat_ddf(&nus)))
    }
}

/// lmerTest's `get_Fstat_ddf`: combines per-direction df into the F denominator df.
pub fn fstat_ddf(nu: &[f64]) -> f64 {
    match nu.len() {
        0 => f64::NAN,
        1 => nu[0],
        q => {
            if nu.windows(2).all(|w| (w[1] - w[0]).abs() < 1e-8) {
                return nu.iter().sum::<f64>() / q as f64;
            }
            if nu.iter().any(|v| *v <= 2.0) {
                return 2.0;
            }
            let e: f64 = nu.iter().map(|v| v / (v - 2.0)).sum();
            2.0 * e / (e - q as f64)
        }
    }
}
