//! Cross products of column sets and the rank check on a Gram matrix.
//!
//! A model frame needs `A'B` for a few sets of long columns (the sum-coded and rank-deficient
//! designs of the type III tests, the Gram matrix of the rank check). Computed here in one
//! pass over the rows, in parallel over blocks of rows, instead of one pass per pair of
//! columns: at 1,000,000 rows the pass per pair was most of the model frame's time.
use rayon::prelude::*;

/// Rows per block of [`cross_products`] (the columns of a block stay in cache).
const BLOCK: usize = 4096;

/// `A'B` for columns `a` and `b` (all of length `n`): `a.len() x b.len()`, row-major,
/// `out[i * b.len() + j] = sum_r a[i][r] b[j][r]`. Each block of rows is summed in row
/// order and the blocks' sums are added in block order, so the result does not depend on the
/// number of threads; columns of small integers (indicators, counts) give exact sums.
pub fn cross_products(a: &[&[f64]], b: &[&[f64]], n: usize) -> Vec<f64> {
    let (ka, kb) = (a.len(), b.len());
    if ka == 0 || kb == 0 {
        return vec![0.0; ka * kb];
    }
    let n_blocks = n.div_ceil(BLOCK);
    let partial: Vec<Vec<f64>> = (0..n_blocks)
        .into_par_iter()
        .map(|blk| {
            let r0 = blk * BLOCK;
            let r1 = (r0 + BLOCK).min(n);
            let mut out = vec![0.0; ka * kb];
            for (i, ca) in a.iter().enumerate() {
                let ca = &ca[r0..r1];
                for (j, cb) in b.iter().enumerate() {
                    let cb = &cb[r0..r1];
                    out[i * kb + j] = ca.iter().zip(cb).map(|(x, y)| x * y).sum::<f64>();
                }
            }
            out
        })
        .collect();
    let mut out = vec![0.0; ka * kb];
    for p in partial {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// The columns a rank check keeps, from their Gram matrix `g` (`k x k`, row-major): column
/// `j` is kept when the norm of its residual after projection on the kept columns before it
/// is above `tol` times its own norm (zero columns are never kept). This is the sequential
/// Gram-Schmidt test of R's `qr()` (LINPACK dqrdc2 with `tol = 1e-7` moves such columns to
/// the end), computed on `g` by a Cholesky factorization that skips the dropped columns:
/// the residual's squared norm is the Schur complement `g_jj - r_j'r_j`.
pub fn gram_rank(g: &[f64], k: usize, tol: f64) -> Vec<usize> {
    // r[b][j]: the upper Cholesky factor's entries for the kept columns b (in order).
    let mut kept: Vec<usize> = Vec::new();
    let mut r: Vec<Vec<f64>> = Vec::new();
    for j in 0..k {
        let gjj = g[j * k + j];
        if gjj <= 0.0 || !gjj.is_finite() {
            continue;
        }
        let mut col = Vec::with_capacity(kept.len());
        for (bi, &b) in kept.iter().enumerate() {
            let mut s = g[b * k + j];
            for l in 0..bi {
                s -= r[l][bi] * col[l];
            }
            col.push(s / r[bi][bi]);
        }
        let res2 = gjj - col.iter().map(|v| v * v).sum::<f64>();
        if res2 > tol * tol * gjj {
            // Extend the factor by column j: row entries r[bi][new] and the new pivot.
            let new = kept.len();
            for (bi, v) in col.iter().enumerate() {
                r[bi].resize(new + 1, 0.0);
                r[bi][new] = *v;
            }
            let mut row = vec![0.0; new + 1];
            row[new] = res2.sqrt();
            r.push(row);
            kept.push(j);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_products_match_the_direct_sums() {
        let n = 10_000;
        let x: Vec<f64> = (0..n).map(|i| (i % 7) as f64 * 0.5).collect();
        let ones = vec![1.0; n];
        let z: Vec<f64> = (0..n).map(|i| ((i * 31) % 11) as f64 - 3.0).collect();
        let cp = cross_products(&[&ones, &x], &[&x, &z], n);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        assert_eq!(
            cp,
            vec![dot(&ones, &x), dot(&ones, &z), dot(&x, &x), dot(&x, &z)]
        );
    }

    #[test]
    fn gram_rank_drops_dependent_and_zero_columns() {
        // columns: 1, x, 2x + 1 (dependent), 0, x^2
        let n = 50;
        let c0 = vec![1.0; n];
        let c1: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let c2: Vec<f64> = c1.iter().map(|v| 2.0 * v + 1.0).collect();
        let c3 = vec![0.0; n];
        let c4: Vec<f64> = c1.iter().map(|v| v * v).collect();
        let cols: Vec<&[f64]> = vec![&c0, &c1, &c2, &c3, &c4];
        let g = cross_products(&cols, &cols, n);
        assert_eq!(gram_rank(&g, 5, 1e-7), vec![0, 1, 4]);
        // a nearly dependent column whose residual is 1e-5 of its norm is kept
        let c5: Vec<f64> = c1
            .iter()
            .enumerate()
            .map(|(i, v)| v + if i == 3 { 1e-5 * 50.0 * 30.0 } else { 0.0 })
            .collect();
        let cols: Vec<&[f64]> = vec![&c0, &c1, &c5];
        let g = cross_products(&cols, &cols, n);
        assert_eq!(gram_rank(&g, 3, 1e-7), vec![0, 1, 2]);
    }
}
