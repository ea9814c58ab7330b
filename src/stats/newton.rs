//! Minimization by Newton's method for a function with an analytic gradient and no analytic
//! Hessian: the Hessian by forward differences of the gradient (`k` gradient evaluations per
//! iteration), made positive definite by its eigenvalues (`|lambda|`, at least `1e-8` of the
//! largest: Nocedal & Wright 2006, section 3.4), and a backtracking line search with the Armijo
//! condition. Written here because the Rust optimization crates (argmin and friends) bring a
//! framework of traits for one small loop, and none offers this finite-difference Newton
//! variant with a feasibility region. Used where one evaluation is a full pass over the data
//! (the GLMM's Laplace deviance), so that the count of evaluations is what matters.

/// The minimum found, the value there and the number of function-and-gradient evaluations.
#[derive(Debug, Clone)]
pub struct NewtonResult {
    pub par: Vec<f64>,
    pub value: f64,
    pub n_eval: usize,
}

/// The Hessian by central differences of `fg`'s gradient at `x` with steps `h` (`2 k`
/// evaluations), symmetrized; row-major `k x k`.
pub fn hessian_of_gradient(
    fg: &impl Fn(&[f64]) -> (f64, Vec<f64>),
    x: &[f64],
    h: &[f64],
) -> Vec<f64> {
    let k = x.len();
    let mut hess = vec![0.0; k * k];
    for j in 0..k {
        let mut xp = x.to_vec();
        let mut xm = x.to_vec();
        xp[j] += h[j];
        xm[j] -= h[j];
        let (gp, gm) = (fg(&xp).1, fg(&xm).1);
        for i in 0..k {
            hess[i * k + j] = (gp[i] - gm[i]) / (2.0 * h[j]);
        }
    }
    symmetrize(&mut hess, k);
    hess
}

fn symmetrize(hess: &mut [f64], k: usize) {
    for i in 0..k {
        for j in 0..i {
            let v = 0.5 * (hess[i * k + j] + hess[j * k + i]);
            hess[i * k + j] = v;
            hess[j * k + i] = v;
        }
    }
}

/// Minimizes `fg` (value and gradient) from `start` over the points where `feasible` holds
/// (the start must be feasible; a step leaving the region is shortened). Stops when the Newton
/// decrement `g' H^-1 g` falls below `tol` (the predicted decrease is half of it), or when no
/// step decreases the value. `None` when the start is not finite or after `max_iter`
/// iterations without convergence.
pub fn minimize(
    fg: &impl Fn(&[f64]) -> (f64, Vec<f64>),
    start: Vec<f64>,
    feasible: &impl Fn(&[f64]) -> bool,
    tol: f64,
    max_iter: usize,
) -> Option<NewtonResult> {
    let k = start.len();
    let mut x = start;
    let (mut fx, mut gx) = fg(&x);
    let mut n_eval = 1;
    if !fx.is_finite() || gx.iter().any(|g| !g.is_finite()) {
        return None;
    }
    for _ in 0..max_iter {
        // forward-difference Hessian of the gradient
        let mut hess = vec![0.0; k * k];
        for j in 0..k {
            let h = 1e-6 * x[j].abs().max(1.0);
            let mut xj = x.clone();
            xj[j] += h;
            let (_, gj) = fg(&xj);
            n_eval += 1;
            for i in 0..k {
                hess[i * k + j] = (gj[i] - gx[i]) / h;
            }
        }
        symmetrize(&mut hess, k);
        let step = modified_newton_step(&hess, &gx, k)?;
        let slope: f64 = gx.iter().zip(&step).map(|(g, s)| g * s).sum();
        let decrement = -slope;
        if decrement < tol {
            return Some(NewtonResult {
                par: x,
                value: fx,
                n_eval,
            });
        }
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..50 {
            let xn: Vec<f64> = x.iter().zip(&step).map(|(a, s)| a + t * s).collect();
            if feasible(&xn) {
                let (fnew, gnew) = fg(&xn);
                n_eval += 1;
                if fnew.is_finite()
                    && gnew.iter().all(|g| g.is_finite())
                    && fnew <= fx + 1e-4 * t * slope
                {
                    x = xn;
                    fx = fnew;
                    gx = gnew;
                    accepted = true;
                    break;
                }
            }
            t *= 0.5;
        }
        if !accepted {
            // no decrease along the Newton direction: at the optimum to rounding when the
            // decrement is small, else a failure
            return (decrement < tol.sqrt()).then_some(NewtonResult {
                par: x,
                value: fx,
                n_eval,
            });
        }
    }
    None
}

/// `-H_+^-1 g` with `H_+` the Hessian with its eigenvalues replaced by their absolute values,
/// at least `1e-8` of the largest (a descent direction where `H` is indefinite).
fn modified_newton_step(hess: &[f64], g: &[f64], k: usize) -> Option<Vec<f64>> {
    let m = nalgebra::DMatrix::from_row_slice(k, k, hess);
    if m.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let eig = nalgebra::SymmetricEigen::new(m);
    let largest = eig.eigenvalues.iter().fold(0.0_f64, |a, v| a.max(v.abs()));
    if largest == 0.0 {
        return None;
    }
    let floor = 1e-8 * largest;
    let gv = nalgebra::DVector::from_column_slice(g);
    let coef = eig.eigenvectors.transpose() * &gv;
    let scaled = nalgebra::DVector::from_iterator(
        k,
        coef.iter()
            .zip(eig.eigenvalues.iter())
            .map(|(c, l)| -c / l.abs().max(floor)),
    );
    let step = &eig.eigenvectors * scaled;
    Some(step.iter().copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimizes_the_rosenbrock_function() {
        let fg = |x: &[f64]| {
            let (a, b) = (x[0], x[1]);
            (
                (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2),
                vec![
                    -2.0 * (1.0 - a) - 400.0 * a * (b - a * a),
                    200.0 * (b - a * a),
                ],
            )
        };
        let r = minimize(&fg, vec![-1.2, 1.0], &|_| true, 1e-14, 200).unwrap();
        assert!(
            (r.par[0] - 1.0).abs() < 1e-6 && (r.par[1] - 1.0).abs() < 1e-6,
            "{:?}",
            r.par
        );
        assert!(r.n_eval < 300, "{}", r.n_eval);
        let h = hessian_of_gradient(&fg, &r.par, &[1e-5, 1e-5]);
        // exact Hessian at (1, 1): [[802, -400], [-400, 200]]
        assert!(
            (h[0] - 802.0).abs() < 1e-4
                && (h[1] + 400.0).abs() < 1e-4
                && (h[3] - 200.0).abs() < 1e-4
        );
    }

    #[test]
    fn stays_in_the_feasible_region() {
        // minimum of (x - 2)^2 over x <= 1 is not reached; the iterates stay feasible
        let fg = |x: &[f64]| ((x[0] - 2.0).powi(2), vec![2.0 * (x[0] - 2.0)]);
        let r = minimize(&fg, vec![0.0], &|x| x[0] <= 1.0, 1e-12, 50);
        if let Some(r) = r {
            assert!(r.par[0] <= 1.0);
        }
    }
}
