//! Gauss-Hermite quadrature for the standard normal weight: nodes `z_k` and weights `w_k`
//! with `sum_k w_k f(z_k) ~ E f(Z)`, `Z ~ N(0, 1)` (lme4's `GHrule`), by the Golub-Welsch
//! eigenvalue method on the Jacobi matrix of the probabilists' Hermite polynomials
//! (off-diagonal `sqrt(k)`, `k = 1..K-1`): the nodes are its eigenvalues, the weights the
//! squared first components of its unit eigenvectors. Written here (a dozen lines over
//! nalgebra's symmetric eigensolver) because no maintained crate in the dependency tree has it.
use nalgebra::DMatrix;

/// The `k`-point rule, nodes ascending; `k = 1` is the node 0 with weight 1 (the Laplace
/// approximation).
pub fn gauss_hermite(k: usize) -> Vec<(f64, f64)> {
    if k <= 1 {
        return vec![(0.0, 1.0)];
    }
    let j = DMatrix::from_fn(k, k, |a, b| {
        if a + 1 == b || b + 1 == a {
            (a.max(b) as f64).sqrt()
        } else {
            0.0
        }
    });
    let eig = j.symmetric_eigen();
    let mut rule: Vec<(f64, f64)> = (0..k)
        .map(|i| {
            let v = eig.eigenvectors[(0, i)];
            (eig.eigenvalues[i], v * v)
        })
        .collect();
    rule.sort_by(|a, b| a.0.total_cmp(&b.0));
    // symmetric rule: exact zero at the middle node of an odd rule
    if k % 2 == 1 {
        rule[k / 2].0 = 0.0;
    }
    rule
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_integrates_normal_moments() {
        for k in [2, 5, 10, 25] {
            let r = gauss_hermite(k);
            let m = |p: i32| r.iter().map(|(z, w)| w * z.powi(p)).sum::<f64>();
            assert!((m(0) - 1.0).abs() < 1e-12, "k {k}");
            assert!((m(2) - 1.0).abs() < 1e-11, "k {k}");
            if k >= 3 {
                assert!((m(4) - 3.0).abs() < 1e-10, "k {k}");
            }
            assert!(m(1).abs() < 1e-12);
        }
    }
}
