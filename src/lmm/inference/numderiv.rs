//! Richardson-extrapolated numerical derivatives with the defaults of R's numDeriv
//! (`method = "Richardson"`, `eps = 1e-4`, `zero.tol = sqrt(.Machine$double.eps / 7e-7)`,
//! `r = 4`, `v = 2`; relative step `d = 1e-4` for `jacobian`/`grad` but `d = 0.1` for
//! `hessian`, i.e. `genD`), as lmerTest uses them for the Hessian of the deviance and the
//! Jacobian of `vcov(beta)` (Kuznetsova, Brockhoff & Christensen 2017). The Hessian's large
//! relative step matters at the 1e-3 level of the resulting df, so it is reproduced exactly.

const EPS: f64 = 1e-4;
/// Relative step of `numDeriv::jacobian`.
const D_GRAD: f64 = 1e-4;
/// Relative step of `numDeriv::hessian` (`genD`).
const D_HESS: f64 = 0.1;
const R: usize = 4;
const V: f64 = 2.0;

fn zero_tol() -> f64 {
    (f64::EPSILON / 7e-7).sqrt()
}

fn initial_steps(x: &[f64], d: f64) -> Vec<f64> {
    let zt = zero_tol();
    x.iter()
        .map(|xi| (d * xi).abs() + if xi.abs() < zt { EPS } else { 0.0 })
        .collect()
}

/// Richardson extrapolation of `r` approximations (largest step first), numDeriv's scheme.
fn extrapolate(mut a: Vec<Vec<f64>>) -> Vec<f64> {
    let r = a.len();
    for m in 1..r {
        let four_m = 4f64.powi(m as i32);
        for k in 0..r - m {
            let next = a[k + 1].clone();
            for (ak, nk) in a[k].iter_mut().zip(&next) {
                *ak = (nk * four_m - *ak) / (four_m - 1.0);
            }
        }
    }
    a.swap_remove(0)
}

/// Jacobian of a vector-valued `f` at `x` (`numDeriv::jacobian`): `out[i][k] = d f_k / d x_i`.
pub fn jacobian<F: FnMut(&[f64]) -> Vec<f64>>(mut f: F, x: &[f64]) -> Vec<Vec<f64>> {
    let h0 = initial_steps(x, D_GRAD);
    let mut out = Vec::with_capacity(x.len());
    let mut xx = x.to_vec();
    for i in 0..x.len() {
        let mut h = h0[i];
        let mut approx = Vec::with_capacity(R);
        for _ in 0..R {
            xx[i] = x[i] + h;
            let fp = f(&xx);
            xx[i] = x[i] - h;
            let fm = f(&xx);
            xx[i] = x[i];
            approx.push(
                fp.iter()
                    .zip(&fm)
                    .map(|(a, b)| (a - b) / (2.0 * h))
                    .collect(),
            );
            h /= V;
        }
        out.push(extrapolate(approx));
    }
    out
}

/// Hessian of a scalar `f` at `x` (`numDeriv::hessian`, i.e. `genD`).
pub fn hessian<F: FnMut(&[f64]) -> f64>(mut f: F, x: &[f64]) -> Vec<Vec<f64>> {
    let n = x.len();
    let h0 = initial_steps(x, D_HESS);
    let f0 = f(x);
    let mut hdiag = vec![0.0; n];
    let mut xx = x.to_vec();
    for i in 0..n {
        let mut h = h0.clone();
        let mut approx = Vec::with_capacity(R);
        for _ in 0..R {
            xx[i] = x[i] + h[i];
            let f1 = f(&xx);
            xx[i] = x[i] - h[i];
            let f2 = f(&xx);
            xx[i] = x[i];
            approx.push(vec![(f1 - 2.0 * f0 + f2) / (h[i] * h[i])]);
            for v in h.iter_mut() {
                *v /= V;
            }
        }
        hdiag[i] = extrapolate(approx)[0];
    }
    let mut hess = vec![vec![0.0; n]; n];
    for i in 0..n {
        hess[i][i] = hdiag[i];
        for j in 0..i {
            let mut h = h0.clone();
            let mut approx = Vec::with_capacity(R);
            for _ in 0..R {
                xx[i] = x[i] + h[i];
                xx[j] = x[j] + h[j];
                let f1 = f(&xx);
                xx[i] = x[i] - h[i];
                xx[j] = x[j] - h[j];
                let f2 = f(&xx);
                xx[i] = x[i];
                xx[j] = x[j];
                approx.push(vec![
                    (f1 - 2.0 * f0 + f2 - hdiag[i] * h[i] * h[i] - hdiag[j] * h[j] * h[j])
                        / (2.0 * h[i] * h[j]),
                ]);
                for v in h.iter_mut() {
                    *v /= V;
                }
            }
            let v = extrapolate(approx)[0];
            hess[i][j] = v;
            hess[j][i] = v;
        }
    }
    hess
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_of_a_polynomial() {
        let f = |x: &[f64]| x[0].powi(3) + 2.0 * x[0] * x[1] + x[1].powi(2);
        let h = hessian(f, &[1.0, 2.0]);
        assert!((h[0][0] - 6.0).abs() < 1e-4);
        assert!((h[0][1] - 2.0).abs() < 1e-4);
        assert!((h[1][1] - 2.0).abs() < 1e-4);
        let j = jacobian(|x: &[f64]| vec![x[0] * x[1], x[0].exp()], &[0.0, 3.0]);
        assert!((j[0][0] - 3.0).abs() < 1e-8);
        assert!((j[0][1] - 1.0).abs() < 1e-8);
        assert!((j[1][0] - 0.0).abs() < 1e-8);
    }
}
