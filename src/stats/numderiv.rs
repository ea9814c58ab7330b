//! Numerical derivatives: the central-difference stencil of lme4's convergence check
//! (`lme4:::deriv12`), and Richardson-extrapolated numerical derivatives with the defaults of R's numDeriv
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
    let values: Vec<Vec<f64>> = jacobian_points(x).iter().map(|p| f(p)).collect();
    jacobian_from_values(x, &values)
}

/// The points at which [`jacobian`] evaluates `f`, in its order: for each coordinate `i` and
/// each of the `r` steps `h` (halved each time), `x + h e_i` then `x - h e_i`. Evaluate them in
/// any order or in parallel, then call [`jacobian_from_values`].
pub fn jacobian_points(x: &[f64]) -> Vec<Vec<f64>> {
    let h0 = initial_steps(x, D_GRAD);
    let mut out = Vec::with_capacity(2 * R * x.len());
    let mut xx = x.to_vec();
    for i in 0..x.len() {
        let mut h = h0[i];
        for _ in 0..R {
            xx[i] = x[i] + h;
            out.push(xx.clone());
            xx[i] = x[i] - h;
            out.push(xx.clone());
            xx[i] = x[i];
            h /= V;
        }
    }
    out
}

/// [`jacobian`] from the values of `f` at [`jacobian_points`].
pub fn jacobian_from_values(x: &[f64], values: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let h0 = initial_steps(x, D_GRAD);
    let mut out = Vec::with_capacity(x.len());
    let mut at = values.iter();
    for &hi in h0.iter().take(x.len()) {
        let mut h = hi;
        let mut approx = Vec::with_capacity(R);
        for _ in 0..R {
            let (Some(fp), Some(fm)) = (at.next(), at.next()) else {
                return out;
            };
            approx.push(
                fp.iter()
                    .zip(fm)
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
    let values: Vec<f64> = hessian_points(x).iter().map(|p| f(p)).collect();
    hessian_from_values(x, &values)
}

/// The points at which [`hessian`] evaluates `f`, in its order: `x`; for each coordinate `i`
/// and each of the `r` step vectors `h` (halved each time) `x + h_i e_i`, `x - h_i e_i`; then for
/// each pair `j < i` and each step `x + h_i e_i + h_j e_j`, `x - h_i e_i - h_j e_j`. Evaluate
/// them in any order or in parallel, then call [`hessian_from_values`].
pub fn hessian_points(x: &[f64]) -> Vec<Vec<f64>> {
    let n = x.len();
    let h0 = initial_steps(x, D_HESS);
    let mut out = vec![x.to_vec()];
    let mut xx = x.to_vec();
    for i in 0..n {
        let mut h = h0.clone();
        for _ in 0..R {
            xx[i] = x[i] + h[i];
            out.push(xx.clone());
            xx[i] = x[i] - h[i];
            out.push(xx.clone());
            xx[i] = x[i];
            for v in h.iter_mut() {
                *v /= V;
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            let mut h = h0.clone();
            for _ in 0..R {
                xx[i] = x[i] + h[i];
                xx[j] = x[j] + h[j];
                out.push(xx.clone());
                xx[i] = x[i] - h[i];
                xx[j] = x[j] - h[j];
                out.push(xx.clone());
                xx[i] = x[i];
                xx[j] = x[j];
                for v in h.iter_mut() {
                    *v /= V;
                }
            }
        }
    }
    out
}

/// [`hessian`] from the values of `f` at [`hessian_points`] (genD's Richardson scheme).
pub fn hessian_from_values(x: &[f64], values: &[f64]) -> Vec<Vec<f64>> {
    let n = x.len();
    let h0 = initial_steps(x, D_HESS);
    let mut at = values.iter().copied();
    let f0 = at.next().unwrap_or(f64::NAN);
    let mut next = || at.next().unwrap_or(f64::NAN);
    let mut hdiag = vec![0.0; n];
    for (i, hd) in hdiag.iter_mut().enumerate() {
        let mut h = h0.clone();
        let mut approx = Vec::with_capacity(R);
        for _ in 0..R {
            let f1 = next();
            let f2 = next();
            approx.push(vec![(f1 - 2.0 * f0 + f2) / (h[i] * h[i])]);
            for v in h.iter_mut() {
                *v /= V;
            }
        }
        *hd = extrapolate(approx)[0];
    }
    let mut hess = vec![vec![0.0; n]; n];
    for i in 0..n {
        hess[i][i] = hdiag[i];
        for j in 0..i {
            let mut h = h0.clone();
            let mut approx = Vec::with_capacity(R);
            for _ in 0..R {
                let f1 = next();
                let f2 = next();
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

/// The points of a central-difference stencil at `x` with steps `h` (lme4's `deriv12`): the
/// centre, then `x + h_i e_i` and `x - h_i e_i` for each `i`, then for each pair `j < i` the
/// four corners `(+h_i, +h_j), (+h_i, -h_j), (-h_i, +h_j), (-h_i, -h_j)`. Evaluate the
/// function at them in any order or in parallel, then call [`central_derivatives`].
pub fn central_stencil(x: &[f64], h: &[f64]) -> Vec<Vec<f64>> {
    let k = x.len();
    let mut points: Vec<Vec<f64>> = vec![x.to_vec()];
    for i in 0..k {
        for s in [1.0, -1.0] {
            let mut p = x.to_vec();
            p[i] += s * h[i];
            points.push(p);
        }
    }
    let corners = [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)];
    for i in 0..k {
        for j in 0..i {
            for (si, sj) in corners {
                let mut p = x.to_vec();
                p[i] += si * h[i];
                p[j] += sj * h[j];
                points.push(p);
            }
        }
    }
    points
}

/// Gradient `g_i = (f(x + h_i) - f(x - h_i)) / 2 h_i` and Hessian (row-major `k x k`;
/// `(f(x+h_i) - 2 f(x) + f(x-h_i)) / h_i^2` on the diagonal, `(f_{++} - f_{+-} - f_{-+} +
/// f_{--}) / 4 h_i h_j` off it) from the values at the points of [`central_stencil`].
pub fn central_derivatives(values: &[f64], h: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let k = h.len();
    let f0 = values[0];
    let mut g = vec![0.0; k];
    let mut hess = vec![0.0; k * k];
    for i in 0..k {
        let (fp, fm) = (values[1 + 2 * i], values[2 + 2 * i]);
        g[i] = (fp - fm) / (2.0 * h[i]);
        hess[i * k + i] = (fp - 2.0 * f0 + fm) / (h[i] * h[i]);
    }
    let mut idx = 1 + 2 * k;
    for i in 0..k {
        for j in 0..i {
            let s = values[idx] - values[idx + 1] - values[idx + 2] + values[idx + 3];
            idx += 4;
            let v = s / (4.0 * h[i] * h[j]);
            hess[i * k + j] = v;
            hess[j * k + i] = v;
        }
    }
    (g, hess)
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

    #[test]
    fn central_stencil_of_a_quadratic_is_exact() {
        let f = |x: &[f64]| 3.0 * x[0] * x[0] + x[0] * x[1] - 2.0 * x[1] * x[1] + x[1];
        let x = [0.5, -1.0];
        let h = [1e-3, 2e-3];
        let vals: Vec<f64> = central_stencil(&x, &h).iter().map(|p| f(p)).collect();
        assert_eq!(vals.len(), 1 + 2 * 2 + 4);
        let (g, hess) = central_derivatives(&vals, &h);
        assert!((g[0] - 2.0).abs() < 1e-8 && (g[1] - 5.5).abs() < 1e-8);
        let want = [6.0, 1.0, 1.0, -4.0];
        for (a, b) in hess.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{hess:?}");
        }
    }
}
