//! Sparse supernodal factorization of the trailing block for crossed designs.
//!
//! After the first (largest) term is eliminated block by block, the trailing block of
//! `[Lambda'Z'Z Lambda + I, ...; X, y]` couples the levels of the later terms only where the
//! first term links them: in InstEval (`(1|s) + (1|d) + (1|dept:service)`), two lecturers `d`
//! are coupled when a student rated both, which leaves about 20% of the 1,128 x 1,128 block
//! non-zero. MixedModels.jl factors that block dense (`updateL!`); here the pattern, fixed for
//! all theta, gets an approximate-minimum-degree ordering (faer's AMD) of the random-effects
//! rows once, with the `p + 1` rows of `X` and `y` kept last, and every evaluation is a numeric
//! supernodal Cholesky (faer) on that fixed symbolic structure: about a fifth of the dense
//! flops for InstEval.
//!
//! Keeping `X` and `y` last leaves the trailing `(p + 1) x (p + 1)` block of the factor
//! unchanged by the ordering (it is the Cholesky factor of a Schur complement), so
//! `log|R_X|^2` and the penalized residual sum of squares are read off the factor's diagonal
//! exactly as from the dense factor, and `log|L|^2` is invariant to the ordering. Only the
//! criterion is computed this way ([`super::deviance::Factor::update_criterion`]); the dense
//! factor is still formed once at the optimum for beta, the BLUPs and the inference.
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::LltRegularization;
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, CholeskySymbolicParams, SymbolicCholesky, SymbolicCholeskyRaw,
    SymmetricOrdering,
};
use faer::sparse::linalg::{amd, SupernodalThreshold};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMat};
use faer::{Par, Side};

use super::model::BlockedProducts;

/// Which factorization the criterion uses for the trailing block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SparseMode {
    /// Sparse when it pays: at least [`SPARSE_MIN_RAND`] trailing random-effects rows and at
    /// most [`SPARSE_MAX_FLOPS`] of the dense work (the default).
    Auto,
    /// Sparse whenever the design allows it (all trailing terms with one column).
    Always,
    /// Always dense.
    Never,
}

/// Smallest number of trailing random-effects rows for which the sparse path is tried.
pub const SPARSE_MIN_RAND: usize = 256;

/// The sparse path is used when its factorization needs at most this fraction of the dense
/// one's work (the sparse kernels run at a lower rate than one dense factorization).
/// InstEval: 0.23.
pub const SPARSE_MAX_FLOPS: f64 = 0.5;

/// Fixed symbolic structure of the trailing block (see the module documentation).
pub struct SparseTrailing {
    /// Size of the trailing block.
    pub m: usize,
    /// New position of each trailing row (`X` and `y` rows keep theirs, at the end).
    pub new_of_old: Vec<usize>,
    pattern: SymbolicSparseColMat<usize>,
    symbolic: SymbolicCholesky<usize>,
    /// Lower-triangle non-zeros of `A_TT`: position in the values, old row, old column.
    a_pos: Vec<u32>,
    a_row: Vec<u32>,
    a_col: Vec<u32>,
    a_val: Vec<f64>,
    /// Positions of the diagonal of the random-effects rows (where `+ I` goes).
    rand_diag: Vec<u32>,
    /// Per level `g` of the first term, the value positions of the pairs `(a, b)`, `a >= b`,
    /// of its coupling rows, in the order `for b { for a >= b }`.
    pub dd_ptr: Vec<usize>,
    pub dd_pos: Vec<u32>,
    /// Position of each column's diagonal in the factor's values (new order).
    l_diag: Vec<usize>,
    /// First column of the last supernode (the one holding the `X` and `y` rows).
    tail_begin: usize,
    /// Entries of the factor (supernodal storage).
    pub len_l: usize,
    /// Multiply-adds of one numeric factorization.
    pub flops: f64,
    /// The downdate by a one-column first term as a gather (see [`Gather`]).
    pub gather: Option<Gather>,
}

/// The downdate of the trailing block by a first term with one column (`(1 | s)`), computed
/// by position instead of by level. Level `g` contributes
/// `w_g c_ga c_gb sv_a sv_b` to entry `(a, b)` with `w_g = lambda_1^2 / (lambda_1^2 n_g + 1)`,
/// `n_g = A_11[g]` and `c_g` its coupling column; `w_g` depends on `g` only through `n_g`,
/// which takes few distinct values (InstEval: 86 over 2,972 students). So each entry keeps
/// its contributions merged by class of `n_g` (`coef = sum c_ga c_gb` per class), and an
/// evaluation computes one weight per class and streams the contributions in position order,
/// instead of scattering `sum_g r_g^2 / 2` products into the pattern (InstEval: 2.1 million
/// contributions merge to 1.2 million).
///
/// An evaluation streams the whole structure from memory (the stream, not the arithmetic, is
/// its cost), so it is kept compact: 10 bytes per contribution and 6 per entry. The scaling
/// `sv_a sv_b` of an entry depends only on the terms of its row and column, so an entry
/// stores the index of its pair of terms, and the pair a representative row and column.
#[derive(Debug, Clone, PartialEq)]
pub struct Gather {
    /// Distinct values `n_k` of `A_11[g]` and how many levels have each.
    class_value: Vec<f64>,
    class_count: Vec<f64>,
    /// Per touched entry: its value position and pair of terms.
    pos: Vec<u32>,
    pair: Vec<u16>,
    /// Per pair of terms: an old row and column of it.
    pair_rc: Vec<(u32, u32)>,
    /// Per contribution: class, merged coefficient and (while building) entry. A loop per
    /// entry (1 to 86 contributions in InstEval) cost a mispredicted branch per entry, and
    /// one pass with the entry index a dependent update per contribution; the rounds of
    /// [`Gather::arrange_in_rounds`] have neither.
    class: Vec<u16>,
    coef: Vec<f64>,
    entry: Vec<u32>,
    /// After [`Gather::arrange_in_rounds`]: contributions `round_ptr[r]..round_ptr[r + 1]` are the
    /// `r`-th of the first entries (`entry` is then empty).
    round_ptr: Vec<u32>,
}

impl Gather {
    fn build(bp: &BlockedProducts, dd_ptr: &[usize], dd_pos: &[u32], nnz: usize) -> Option<Gather> {
        let cp = &bp.coupling;
        let nl = cp.n_levels();
        // Classes of A_11[g] (exact values).
        let mut keys: Vec<(u64, usize)> = (0..nl).map(|g| (bp.a11[g].to_bits(), g)).collect();
        keys.sort_unstable();
        let mut class_of = vec![0u32; nl];
        let mut class_value = Vec::new();
        let mut class_count: Vec<f64> = Vec::new();
        for (i, &(k, g)) in keys.iter().enumerate() {
            if i == 0 || keys[i - 1].0 != k {
                class_value.push(f64::from_bits(k));
                class_count.push(0.0);
            }
            class_of[g] = (class_value.len() - 1) as u32;
            *class_count.last_mut()? += 1.0;
        }
        // Bucket the contributions by position (counting sort), merging by class.
        let mut count = vec![0usize; nnz + 1];
        for &p in dd_pos {
            count[p as usize + 1] += 1;
        }
        for i in 0..nnz {
            count[i + 1] += count[i];
        }
        let total = count[nnz];
        let mut fill = count.clone();
        let mut b_class = vec![0u32; total];
        let mut b_coef = vec![0.0; total];
        let mut first_rc = vec![(u32::MAX, u32::MAX); nnz];
        for g in 0..nl {
            let rows = cp.rows(g);
            let vals = &cp.vals[cp.val_range(g)];
            let mut k = dd_ptr[g];
            for (ib, &rb) in rows.iter().enumerate() {
                for (ia, &ra) in rows.iter().enumerate().skip(ib) {
                    let p = dd_pos[k] as usize;
                    k += 1;
                    let slot = fill[p];
                    fill[p] += 1;
                    b_class[slot] = class_of[g];
                    b_coef[slot] = vals[ia] * vals[ib];
                    if first_rc[p].0 == u32::MAX {
                        first_rc[p] = (ra as u32, rb as u32);
                    }
                }
            }
        }
        let n_class = class_value.len();
        if n_class > usize::from(u16::MAX) || total >= u32::MAX as usize {
            return None;
        }
        // The term of each trailing row (the rows of X and y form one more "term").
        let mut term_of_row = vec![(bp.terms.len()) as u16; bp.m];
        for (j, t) in bp.terms.iter().enumerate().skip(1) {
            term_of_row[t.offset..t.offset + t.q * t.n_levels].fill(j as u16);
        }
        let n_kinds = bp.terms.len() + 1;
        if n_kinds * n_kinds > usize::from(u16::MAX) {
            return None;
        }
        let mut pair_index = vec![u16::MAX; n_kinds * n_kinds];
        let mut slot_of = vec![u32::MAX; n_class];
        let mut stamp = vec![usize::MAX; n_class];
        let mut g = Gather {
            class_value,
            class_count,
            pos: Vec::new(),
            pair: Vec::new(),
            pair_rc: Vec::new(),
            class: Vec::new(),
            coef: Vec::new(),
            entry: Vec::new(),
            round_ptr: Vec::new(),
        };
        for p in 0..nnz {
            let (a, b) = (count[p], count[p + 1]);
            if a == b {
                continue;
            }
            for j in a..b {
                let c = b_class[j] as usize;
                if stamp[c] != p {
                    stamp[c] = p;
                    slot_of[c] = g.class.len() as u32;
                    g.class.push(c as u16);
                    g.coef.push(0.0);
                    g.entry.push(g.pos.len() as u32);
                }
                g.coef[slot_of[c] as usize] += b_coef[j];
            }
            let (r, c) = first_rc[p];
            let kind = usize::from(term_of_row[r as usize]) * n_kinds
                + usize::from(term_of_row[c as usize]);
            if pair_index[kind] == u16::MAX {
                pair_index[kind] = g.pair_rc.len() as u16;
                g.pair_rc.push((r, c));
            }
            g.pos.push(p as u32);
            g.pair.push(pair_index[kind]);
        }
        g.arrange_in_rounds();
        Some(g)
    }

    /// Reorders the entries by decreasing number of contributions and stores the
    /// contributions round by round: round `r` holds the `r`-th contribution of each entry
    /// that has more than `r`, and those entries are a prefix of the order. Summing round by
    /// round adds each entry's contributions in their order (the same sums), in passes
    /// without branches or dependent updates.
    fn arrange_in_rounds(&mut self) {
        let n_e = self.pos.len();
        let mut start = vec![0usize; n_e + 1];
        for &e in &self.entry {
            start[e as usize + 1] += 1;
        }
        for e in 0..n_e {
            start[e + 1] += start[e];
        }
        let count = |e: usize| start[e + 1] - start[e];
        let mut order: Vec<usize> = (0..n_e).collect();
        order.sort_by_key(|&e| std::cmp::Reverse(count(e)));
        let rounds = order.first().map_or(0, |&e| count(e));
        let mut class = Vec::with_capacity(self.class.len());
        let mut coef = Vec::with_capacity(self.coef.len());
        let mut round_ptr = vec![0u32];
        for r in 0..rounds {
            for &e in order.iter().take_while(|&&e| count(e) > r) {
                class.push(self.class[start[e] + r]);
                coef.push(self.coef[start[e] + r]);
            }
            round_ptr.push(class.len() as u32);
        }
        self.pos = order.iter().map(|&e| self.pos[e]).collect();
        self.pair = order.iter().map(|&e| self.pair[e]).collect();
        self.class = class;
        self.coef = coef;
        self.round_ptr = round_ptr;
        self.entry = Vec::new();
    }
}

impl std::fmt::Debug for SparseTrailing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparseTrailing")
            .field("m", &self.m)
            .field("nnz_a", &self.dd_pos.len())
            .field("len_l", &self.len_l)
            .finish()
    }
}

impl PartialEq for SparseTrailing {
    fn eq(&self, other: &Self) -> bool {
        self.m == other.m && self.new_of_old == other.new_of_old && self.dd_pos == other.dd_pos
    }
}

impl SparseTrailing {
    /// Builds the structure when the design suits it: all trailing terms have one column
    /// (diagonal `Lambda_T`), at least `min_rand` trailing random-effects rows, and the
    /// ordered supernodal factorization needs at most `max_flops` of the dense one's
    /// floating-point work (default [`SPARSE_MAX_FLOPS`]). `None` otherwise (or when
    /// faer's symbolic analysis fails: the dense path is always available).
    ///
    /// A named numerical kernel (one piece: the ordering, the symbolic analysis and the
    /// gather maps it builds depend on each other's index arrays).
    pub fn build(bp: &BlockedProducts, min_rand: usize, max_flops: f64) -> Option<SparseTrailing> {
        let m = bp.m;
        let qr = bp.q_rest;
        if qr < min_rand.max(1) || bp.terms.iter().skip(1).any(|t| t.q != 1) {
            return None;
        }
        if m >= u32::MAX as usize {
            return None;
        }
        // Pattern of the lower triangle (old numbering), per column.
        let mut cols: Vec<Vec<u32>> = vec![Vec::new(); m];
        for r in 0..m {
            for (c, col) in cols.iter_mut().enumerate().take(r + 1) {
                if r == c || bp.a_tt[r * m + c] != 0.0 {
                    col.push(r as u32);
                }
            }
        }
        let cp = &bp.coupling;
        if m <= 4096 {
            // Dense marks (m^2 bytes), read back column by column in row order.
            let mut mark = vec![false; m * m];
            for (c, rows) in cols.iter().enumerate() {
                for &r in rows {
                    mark[c * m + r as usize] = true;
                }
            }
            for g in 0..cp.n_levels() {
                let rows = cp.rows(g);
                for (ib, &rb) in rows.iter().enumerate() {
                    for &ra in &rows[ib..] {
                        mark[rb * m + ra] = true;
                    }
                }
            }
            for (c, rows) in cols.iter_mut().enumerate() {
                rows.clear();
                rows.extend((c..m).filter(|&r| mark[c * m + r]).map(|r| r as u32));
            }
        } else {
            for g in 0..cp.n_levels() {
                let rows = cp.rows(g);
                for (ib, &rb) in rows.iter().enumerate() {
                    for &ra in &rows[ib..] {
                        cols[rb].push(ra as u32);
                    }
                }
            }
            for c in cols.iter_mut() {
                c.sort_unstable();
                c.dedup();
            }
        }
        // AMD on the random-effects part.
        let new_of_old: Vec<usize> = {
            let mut col_ptr = vec![0usize; qr + 1];
            let mut row_idx = Vec::new();
            for c in 0..qr {
                row_idx.extend(cols[c].iter().map(|&r| r as usize).filter(|&r| r < qr));
                col_ptr[c + 1] = row_idx.len();
            }
            let a = SymbolicSparseColMat::<usize>::new_checked(qr, qr, col_ptr, None, row_idx);
            let mut perm = vec![0usize; qr];
            let mut perm_inv = vec![0usize; qr];
            let req = amd::order_scratch::<usize>(qr, a.as_ref().compute_nnz());
            let mut mem = MemBuffer::try_new(req).ok()?;
            let stack = MemStack::new(&mut mem);
            amd::order(
                &mut perm,
                &mut perm_inv,
                a.as_ref(),
                amd::Control::default(),
                stack,
            )
            .ok()?;
            // perm[new] = old; perm_inv[old] = new.
            let mut v: Vec<usize> = perm_inv;
            v.extend(qr..m);
            v
        };
        // Lower CSC pattern in the new order.
        let mut ncols: Vec<Vec<usize>> = vec![Vec::new(); m];
        for (c, rows) in cols.iter().enumerate() {
            let pc = new_of_old[c];
            for &r in rows {
                let pr = new_of_old[r as usize];
                let (hi, lo) = if pr >= pc { (pr, pc) } else { (pc, pr) };
                ncols[lo].push(hi);
            }
        }
        let mut col_ptr = vec![0usize; m + 1];
        let mut row_idx = Vec::new();
        for (c, rows) in ncols.iter_mut().enumerate() {
            rows.sort_unstable();
            rows.dedup();
            row_idx.extend_from_slice(rows);
            col_ptr[c + 1] = row_idx.len();
        }
        drop(ncols);
        if row_idx.len() >= u32::MAX as usize {
            return None;
        }
        // Value position of an entry: a dense lookup table for moderate m (InstEval: 5 MB),
        // else a binary search in the column.
        let table: Vec<u32> = if m <= 4096 {
            let mut t = vec![u32::MAX; m * m];
            for lo in 0..m {
                for (k, &hi) in row_idx[col_ptr[lo]..col_ptr[lo + 1]].iter().enumerate() {
                    t[hi * m + lo] = (col_ptr[lo] + k) as u32;
                }
            }
            t
        } else {
            Vec::new()
        };
        let pos = |r_old: usize, c_old: usize| -> u32 {
            let (pr, pc) = (new_of_old[r_old], new_of_old[c_old]);
            let (hi, lo) = if pr >= pc { (pr, pc) } else { (pc, pr) };
            if !table.is_empty() {
                return table[hi * m + lo];
            }
            let s = &row_idx[col_ptr[lo]..col_ptr[lo + 1]];
            (col_ptr[lo] + s.binary_search(&hi).expect("entry in the pattern")) as u32
        };
        let (mut a_pos, mut a_row, mut a_col, mut a_val) = (vec![], vec![], vec![], vec![]);
        for r in 0..m {
            for c in 0..=r {
                let v = bp.a_tt[r * m + c];
                if v != 0.0 {
                    a_pos.push(pos(r, c));
                    a_row.push(r as u32);
                    a_col.push(c as u32);
                    a_val.push(v);
                }
            }
        }
        let rand_diag: Vec<u32> = (0..qr).map(|d| pos(d, d)).collect();
        let mut dd_ptr = Vec::with_capacity(cp.n_levels() + 1);
        let mut dd_pos = Vec::new();
        dd_ptr.push(0);
        for g in 0..cp.n_levels() {
            let rows = cp.rows(g);
            for (ib, &rb) in rows.iter().enumerate() {
                for &ra in &rows[ib..] {
                    dd_pos.push(pos(ra, rb));
                }
            }
            dd_ptr.push(dd_pos.len());
        }
        let nnz = col_ptr[m];
        let gather = if bp.terms[0].q == 1 {
            Gather::build(bp, &dd_ptr, &dd_pos, nnz)
        } else {
            None
        };
        if gather.is_some() {
            // The gather replaces the scatter for one-column first terms.
            dd_pos = Vec::new();
            dd_ptr = Vec::new();
        }
        // faer's symbolic analysis without reordering reads the upper triangle: the
        // transpose of the lower pattern (rows come out sorted, columns taken in order).
        let upper = {
            let mut ucols: Vec<Vec<usize>> = vec![Vec::new(); m];
            for lo in 0..m {
                for &hi in &row_idx[col_ptr[lo]..col_ptr[lo + 1]] {
                    ucols[hi].push(lo);
                }
            }
            let mut uptr = vec![0usize; m + 1];
            let mut uidx = Vec::with_capacity(row_idx.len());
            for (c, rows) in ucols.iter().enumerate() {
                uidx.extend_from_slice(rows);
                uptr[c + 1] = uidx.len();
            }
            SymbolicSparseColMat::<usize>::new_checked(m, m, uptr, None, uidx)
        };
        let pattern = SymbolicSparseColMat::<usize>::new_checked(m, m, col_ptr, None, row_idx);
        let params = CholeskySymbolicParams {
            supernodal_flop_ratio_threshold: SupernodalThreshold::FORCE_SUPERNODAL,
            ..Default::default()
        };
        let symbolic = factorize_symbolic_cholesky(
            upper.as_ref(),
            Side::Upper,
            SymmetricOrdering::Identity,
            params,
        )
        .ok()?;
        let SymbolicCholeskyRaw::Supernodal(sn) = symbolic.raw() else {
            return None;
        };
        let mut l_diag = vec![0usize; m];
        let begin = sn.supernode_begin();
        let end = sn.supernode_end();
        let cpv = sn.col_ptr_for_val();
        // Multiply-adds of the supernodal factorization (padding included) against the
        // dense m^3 / 3.
        let mut flops = 0.0;
        for s in 0..sn.n_supernodes() {
            let (b, e) = (begin[s], end[s]);
            let nc = e - b;
            let nr = (cpv[s + 1] - cpv[s]) / nc.max(1);
            for (j, d) in l_diag.iter_mut().enumerate().take(e).skip(b) {
                *d = cpv[s] + (j - b) * nr + (j - b);
                let below = (nr - (j - b)) as f64;
                flops += below * below / 2.0;
            }
        }
        let flop_ratio = flops / ((m as f64).powi(3) / 3.0);
        let tail_begin = (0..sn.n_supernodes())
            .rev()
            .find(|&s| begin[s] < m && end[s] == m)
            .map_or(m, |s| begin[s]);

        if flop_ratio > max_flops {
            return None;
        }
        let len_l = symbolic.len_val();
        Some(SparseTrailing {
            m,
            new_of_old,
            pattern,
            symbolic,
            a_pos,
            a_row,
            a_col,
            a_val,
            rand_diag,
            dd_ptr,
            dd_pos,
            l_diag,
            tail_begin,
            len_l,
            flops,
            gather,
        })
    }

    /// The trailing `k x k` block of the last numeric factor (the rows of `X` and `y` when
    /// `k = p + 1`: they keep their positions, so this is the block of the dense factor up to
    /// rounding), lower triangle row-major; `None` when those columns are not all in the last
    /// supernode. Within a supernode the values are column-major with the supernode's own
    /// columns as its first rows, so entry `(r, c)` sits `r - c` after the diagonal of `c`.
    pub fn tail_block(&self, work: &SparseWork, k: usize) -> Option<Vec<f64>> {
        let m = self.m;
        if k > m || m - k < self.tail_begin {
            return None;
        }
        let mut out = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..=i {
                let (r, c) = (m - k + i, m - k + j);
                out[i * k + j] = *work.l_vals.get(self.l_diag[c] + (r - c))?;
            }
        }
        Some(out)
    }

    /// Parallelism of the numeric factorization: rayon's threads only when the work is very
    /// large. InstEval (1.2e8 multiply-adds) runs faster sequentially on 2 cores (0.90 s vs
    /// 1.02 s per fit, idle machine): the convergence check already evaluates in parallel,
    /// and nested parallel factorizations only add synchronisation.
    fn par(&self) -> Par {
        let t = super::deviance::lmm_threads();
        if t > 1 && self.flops > 1e9 {
            Par::rayon(t)
        } else {
            Par::Seq
        }
    }

    /// Number of stored entries of the trailing block's lower triangle.
    pub fn nnz(&self) -> usize {
        self.pattern.row_idx().len()
    }

    /// `vals = Lambda_T' A_TT Lambda_T + I` (lower triangle) for the diagonal scaling `sv`.
    pub fn fill(&self, vals: &mut [f64], sv: &[f64], q_rest: usize) {
        vals.fill(0.0);
        for k in 0..self.a_pos.len() {
            vals[self.a_pos[k] as usize] =
                self.a_val[k] * sv[self.a_row[k] as usize] * sv[self.a_col[k] as usize];
        }
        debug_assert_eq!(self.rand_diag.len(), q_rest);
        for &p in &self.rand_diag {
            vals[p as usize] += 1.0;
        }
    }

    /// The criterion's pieces for a one-column first term by the gather (no per-level pass):
    /// fills `work.vals` with the downdated trailing block for the diagonal `Lambda_T`
    /// scaling `sv` and returns `log|L_11|^2 = sum_g log(lambda_1^2 n_g + 1)`. `None` without
    /// a gather.
    pub fn fill_gathered(
        &self,
        work: &mut SparseWork,
        sv: &[f64],
        lam1: f64,
        q_rest: usize,
    ) -> Option<f64> {
        let gt = self.gather.as_ref()?;
        self.fill(&mut work.vals, sv, q_rest);
        let l2 = lam1 * lam1;
        let mut logdet = 0.0;
        work.weights.clear();
        for (&v, &cnt) in gt.class_value.iter().zip(&gt.class_count) {
            let d = l2 * v + 1.0;
            logdet += cnt * d.ln();
            work.weights.push(l2 / d);
        }
        let w = &work.weights;
        // sv_a sv_b per pair of terms (the same product as from the entry's own row and
        // column: every row of a term has the term's scale).
        let scale: Vec<f64> = gt
            .pair_rc
            .iter()
            .map(|&(r, c)| sv[r as usize] * sv[c as usize])
            .collect();
        let vals = &mut work.vals;
        // Per entry, the sum of its contributions in their order (from 0, as a loop per entry
        // adds them), then the entry's update.
        let sums = &mut work.sums;
        sums.clear();
        sums.resize(gt.pos.len(), 0.0);
        for r in gt.round_ptr.windows(2) {
            let (a, b) = (r[0] as usize, r[1] as usize);
            for ((s, &c), &f) in sums.iter_mut().zip(&gt.class[a..b]).zip(&gt.coef[a..b]) {
                *s += w[usize::from(c)] * f;
            }
        }
        for ((&p, &pair), &sum) in gt.pos.iter().zip(&gt.pair).zip(sums.iter()) {
            vals[p as usize] -= scale[usize::from(pair)] * sum;
        }
        Some(logdet)
    }

    /// Numeric factorization of `work.vals`; writes the factor's diagonal, in the original
    /// order of the trailing rows, to `work.diag`. `None` when a pivot is not positive.
    pub fn factor_diag(&self, work: &mut SparseWork) -> Option<()> {
        let a = SparseColMatRef::new(self.pattern.as_ref(), &work.vals);
        let par = work.par;
        let stack = MemStack::new(&mut work.mem);
        self.symbolic
            .factorize_numeric_llt(
                &mut work.l_vals,
                a,
                Side::Lower,
                LltRegularization::default(),
                par,
                stack,
                Default::default(),
            )
            .ok()?;
        for (old, &new) in self.new_of_old.iter().enumerate() {
            work.diag[old] = work.l_vals[self.l_diag[new]];
        }
        Some(())
    }

    /// Work space for [`SparseTrailing::factor_diag`].
    pub fn work(&self) -> SparseWork {
        let par = self.par();
        let req = self
            .symbolic
            .factorize_numeric_llt_scratch::<f64>(par, Default::default());
        SparseWork {
            par,
            weights: Vec::new(),
            sums: Vec::new(),
            vals: vec![0.0; self.nnz()],
            l_vals: vec![0.0; self.len_l],
            diag: vec![0.0; self.m],
            mem: MemBuffer::new(req),
            req,
        }
    }
}

/// Per-factor buffers of the sparse path.
pub struct SparseWork {
    /// Values of the trailing block's lower triangle (pattern order).
    pub vals: Vec<f64>,
    l_vals: Vec<f64>,
    /// Diagonal of the factor in the original order.
    pub diag: Vec<f64>,
    mem: MemBuffer,
    req: faer::dyn_stack::StackReq,
    par: Par,
    weights: Vec<f64>,
    /// Per entry of the gather, the sum of its contributions.
    sums: Vec<f64>,
}

impl Clone for SparseWork {
    fn clone(&self) -> Self {
        SparseWork {
            vals: self.vals.clone(),
            l_vals: self.l_vals.clone(),
            diag: self.diag.clone(),
            mem: MemBuffer::new(self.req),
            req: self.req,
            par: self.par,
            weights: Vec::new(),
            sums: Vec::new(),
        }
    }
}

impl std::fmt::Debug for SparseWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparseWork")
            .field("nnz", &self.vals.len())
            .finish()
    }
}
