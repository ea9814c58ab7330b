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
    // `A'A`: the upper triangle summed, the lower one mirrored (the same products in the
    // same order, so the same sums).
    let symmetric = ka == kb
        && a.iter()
            .zip(b)
            .all(|(x, y)| std::ptr::eq(x.as_ptr(), y.as_ptr()) && x.len() == y.len());
    let n_blocks = n.div_ceil(BLOCK);
    let partial: Vec<Vec<f64>> = (0..n_blocks)
        .into_par_iter()
        .map(|blk| {
            let r0 = blk * BLOCK;
            let r1 = (r0 + BLOCK).min(n);
            let a_blk: Vec<&[f64]> = a.iter().map(|c| &c[r0..r1]).collect();
            let b_blk: Vec<&[f64]> = b.iter().map(|c| &c[r0..r1]).collect();
            let (x, y) = (&a_blk, &b_blk);
            let s = symmetric;
            match ka.max(kb) {
                1 => return block_sums::<1>(x, y, s),
                2 => return block_sums::<2>(x, y, s),
                3 => return block_sums::<3>(x, y, s),
                4 => return block_sums::<4>(x, y, s),
                5 => return block_sums::<5>(x, y, s),
                6 => return block_sums::<6>(x, y, s),
                7 => return block_sums::<7>(x, y, s),
                8 => return block_sums::<8>(x, y, s),
                9..=12 => return block_sums::<12>(x, y, s),
                13..=16 => return block_sums::<16>(x, y, s),
                _ => {}
            }
            // Row by row into all ka x kb sums at once: each sum still adds its products in
            // row order, and the independent sums keep the pipeline busy (one running sum per
            // pair waited on every addition).
            let mut out = vec![0.0; ka * kb];
            let mut bv = vec![0.0; kb];
            for r in 0..r1 - r0 {
                for (v, c) in bv.iter_mut().zip(&b_blk) {
                    *v = c[r];
                }
                for (i, c) in a_blk.iter().enumerate() {
                    let x = c[r];
                    let j0 = if symmetric { i } else { 0 };
                    let row = &mut out[i * kb + j0..(i + 1) * kb];
                    for (o, y) in row.iter_mut().zip(&bv[j0..]) {
                        *o += x * y;
                    }
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
    if symmetric {
        for i in 0..ka {
            for j in 0..i {
                out[i * kb + j] = out[j * kb + i];
            }
        }
    }
    out
}

/// The sums of one block for up to `K` columns on each side: each row's values in arrays of
/// `K` (zero beyond the columns, whose sums are not returned) and all `K x K` sums updated at
/// once, unrolled; each sum still adds its products in row order.
fn block_sums<const K: usize>(a: &[&[f64]], b: &[&[f64]], symmetric: bool) -> Vec<f64> {
    if symmetric {
        block_sums_upper::<K>(a)
    } else {
        block_sums_full::<K>(a, b)
    }
}

/// [`block_sums`] of `A'A`: the upper triangle only (the caller mirrors it).
fn block_sums_upper<const K: usize>(a: &[&[f64]]) -> Vec<f64> {
    let rows = a.first().map_or(0, |c| c.len());
    let mut acc = [[0.0f64; K]; K];
    let mut av = [0.0f64; K];
    for r in 0..rows {
        for (v, c) in av.iter_mut().zip(a) {
            *v = c[r];
        }
        for i in 0..K {
            let x = av[i];
            for j in i..K {
                acc[i][j] += x * av[j];
            }
        }
    }
    let k = a.len();
    let mut out = vec![0.0; k * k];
    for (i, row) in acc.iter().enumerate().take(k) {
        out[i * k..(i + 1) * k].copy_from_slice(&row[..k]);
    }
    out
}

fn block_sums_full<const K: usize>(a: &[&[f64]], b: &[&[f64]]) -> Vec<f64> {
    let rows = a.first().map_or(0, |c| c.len());
    let mut acc = [[0.0f64; K]; K];
    let mut av = [0.0f64; K];
    let mut bv = [0.0f64; K];
    for r in 0..rows {
        for (v, c) in av.iter_mut().zip(a) {
            *v = c[r];
        }
        for (v, c) in bv.iter_mut().zip(b) {
            *v = c[r];
        }
        for (row, x) in acc.iter_mut().zip(&av) {
            for (o, y) in row.iter_mut().zip(&bv) {
                *o += x * y;
            }
        }
    }
    let kb = b.len();
    let mut out = vec![0.0; a.len() * kb];
    for (i, row) in acc.iter().enumerate().take(a.len()) {
        out[i * kb..(i + 1) * kb].copy_from_slice(&row[..kb]);
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
        // A'A (the symmetric path): the same sums, in blocks of rows as above
        let w: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let cols: Vec<&[f64]> = vec![&x, &w, &z];
        let g = cross_products(&cols, &cols, n);
        let blocked = |a: &[f64], b: &[f64]| {
            a.chunks(BLOCK)
                .zip(b.chunks(BLOCK))
                .map(|(p, q)| dot(p, q))
                .fold(0.0, |s, v| s + v)
        };
        for (i, a) in cols.iter().enumerate() {
            for (j, b) in cols.iter().enumerate() {
                assert_eq!(g[i * 3 + j].to_bits(), blocked(a, b).to_bits());
            }
        }
        // every kernel: up to 4, 8 and 16 columns unrolled, more by the general loop
        let many: Vec<Vec<f64>> = (0..19)
            .map(|k| {
                (0..n)
                    .map(|i| ((i * (k + 3)) as f64 * 0.013).cos())
                    .collect()
            })
            .collect();
        for k in [2, 6, 12, 19] {
            let a: Vec<&[f64]> = many[..k].iter().map(Vec::as_slice).collect();
            let b: Vec<&[f64]> = many[1..].iter().take(k.min(5)).map(Vec::as_slice).collect();
            for (x, y) in [(&a, &a), (&a, &b)] {
                let g = cross_products(x, y, n);
                for (i, p) in x.iter().enumerate() {
                    for (j, q) in y.iter().enumerate() {
                        assert_eq!(g[i * y.len() + j].to_bits(), blocked(p, q).to_bits());
                    }
                }
            }
        }
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
