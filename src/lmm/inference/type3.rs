//! Type III contrast matrices as lmerTest builds them (`get_contrasts_type3`: SAS type III
//! hypotheses by Goodnight's (1976) rules on a "general set of estimable functions"). The
//! exact rows matter: the Satterthwaite F df of a multi-row test depends on the rows of `L`,
//! not only on the hypothesis they span.
use nalgebra::DMatrix;

use crate::formula::ModelFrame;

/// `L = G (X'X)` with `G` the inverse of `X'X` restricted to the model's coefficients
/// (lmerTest `general_L`), small entries zeroed as lmerTest does.
fn general_l(xtx: &DMatrix<f64>, is_coef: &[usize]) -> Option<DMatrix<f64>> {
    let pp = xtx.nrows();
    let k = is_coef.len();
    let sub = DMatrix::from_fn(k, k, |i, j| xtx[(is_coef[i], is_coef[j])]);
    let inv = sub.try_inverse()?;
    let mut g2 = DMatrix::<f64>::zeros(pp, pp);
    for (a, &i) in is_coef.iter().enumerate() {
        for (b, &j) in is_coef.iter().enumerate() {
            let v = inv[(a, b)];
            g2[(i, j)] = if v.abs() < 1e-10 { 0.0 } else { v };
        }
    }
    let mut l = g2 * xtx;
    l.iter_mut().for_each(|v| {
        if v.abs() < 1e-6 {
            *v = 0.0
        }
    });
    Some(l)
}

/// Terms (other than `term`) that contain it and have the same numeric covariates
/// (lmerTest `relatives`).
fn relatives(mf: &ModelFrame, term: usize) -> Vec<usize> {
    let terms = &mf.formula.fixed.terms;
    let numeric = |t: &Vec<usize>| -> Vec<usize> {
        t.iter()
            .copied()
            .filter(|&v| !mf.var_is_factor.get(v).copied().unwrap_or(false))
            .collect()
    };
    let Some(t1) = terms.get(term) else {
        return Vec::new();
    };
    terms
        .iter()
        .enumerate()
        .filter(|(j, t2)| {
            *j != term && t1.iter().all(|v| t2.contains(v)) && numeric(t1) == numeric(t2)
        })
        .map(|(j, _)| j)
        .collect()
}

/// Goodnight's rule 1 and the orthogonalisation of lmerTest `contrast_type3SAS`.
fn contrast_type3(mf: &ModelFrame, term: usize, mut l: DMatrix<f64>) -> DMatrix<f64> {
    let eps = 1e-8;
    let rd = &mf.rd_design;
    let ncol = l.ncols();
    let term_cols: Vec<usize> = (0..ncol).filter(|&c| rd.terms[c] == Some(term)).collect();
    let rel = relatives(mf, term);
    let contain_cols: Vec<usize> = (0..ncol)
        .filter(|&c| rd.terms[c].is_some_and(|t| rel.contains(&t)))
        .collect();
    let colnums: Vec<usize> = (0..ncol)
        .filter(|c| !term_cols.contains(c) && !contain_cols.contains(c))
        .collect();
    for &colnum in &colnums {
        let pivots: Vec<usize> = (0..l.nrows())
            .filter(|&r| l[(r, colnum)].abs() > eps)
            .collect();
        if let Some((&p0, rest)) = pivots.split_first() {
            let d = l[(p0, colnum)];
            for c in 0..ncol {
                l[(p0, c)] /= d;
            }
            for &nz in rest {
                let f = l[(nz, colnum)];
                for c in 0..ncol {
                    let v = l[(p0, c)];
                    l[(nz, c)] -= f * v;
                }
            }
            for c in 0..ncol {
                l[(p0, c)] = 0.0;
            }
        }
    }
    let nonzero = |m: &DMatrix<f64>, r: usize| m.row(r).iter().map(|v| v.abs()).sum::<f64>() != 0.0;
    let keep: Vec<usize> = (0..l.nrows()).filter(|&r| nonzero(&l, r)).collect();
    let mut l = l.select_rows(&keep);
    if l.nrows() <= 1 {
        return l;
    }
    // Orthogonalisation against rows related to the term only indirectly.
    let zero_rows: Vec<usize> = (0..l.nrows())
        .filter(|&r| term_cols.iter().map(|&c| l[(r, c)].abs()).sum::<f64>() == 0.0)
        .collect();
    for &zr in &zero_rows {
        let w = l.row(zr).into_owned();
        let ww = w.dot(&w);
        for i in 0..l.nrows() {
            if i == zr || !nonzero(&l, i) {
                continue;
            }
            let li = l.row(i).into_owned();
            let f = w.dot(&li) / ww;
            let new = li - &w * f;
            l.set_row(i, &new);
        }
        l.row_mut(zr).fill(0.0);
    }
    l.iter_mut().for_each(|v| {
        if v.abs() < 1e-6 {
            *v = 0.0
        }
    });
    let keep: Vec<usize> = (0..l.nrows()).filter(|&r| nonzero(&l, r)).collect();
    l.select_rows(&keep)
}

/// Type III contrast matrices (rows over the model's coefficients) per fixed term, in term
/// order; `None` when the design cannot be handled (the caller falls back).
pub fn type3_contrasts(mf: &ModelFrame) -> Option<Vec<(usize, DMatrix<f64>)>> {
    let rd = &mf.rd_design;
    let pp = rd.names.len();
    let xtx = DMatrix::from_row_slice(pp, pp, &rd.xtx);
    // Columns of rdX that are model coefficients, and the coefficient each one is.
    let mut is_coef = Vec::new();
    let mut coef_of = Vec::new();
    for (c, name) in rd.names.iter().enumerate() {
        if let Some(k) = mf.x_names.iter().position(|n| n == name) {
            is_coef.push(c);
            coef_of.push(k);
        }
    }
    if is_coef.len() != mf.x_names.len() {
        return None;
    }
    let l = general_l(&xtx, &is_coef)?;
    let p = mf.x_names.len();
    let mut out = Vec::new();
    for ti in 0..mf.formula.fixed.terms.len() {
        let lc = contrast_type3(mf, ti, l.clone());
        let mut m = DMatrix::zeros(lc.nrows(), p);
        for r in 0..lc.nrows() {
            for (j, &c) in is_coef.iter().enumerate() {
                m[(r, coef_of[j])] = lc[(r, c)];
            }
        }
        out.push((ti, m));
    }
    Some(out)
}
