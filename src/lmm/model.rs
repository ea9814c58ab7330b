//! The blocked cross-product layout of a linear mixed model (as MixedModels.jl's
//! `LinearMixedModel.A`): the blocks of `[Z X y]'[Z X y]` computed once, before optimizing.
//!
//! Terms are ordered by decreasing number of levels (lme4 and MixedModels.jl). The first term's
//! diagonal block `Z_1'Z_1` is block-diagonal (one `q_1 x q_1` block per level) and is stored
//! as such. Everything after it - the other random-effects terms, then `X`, then `y` - forms
//! the "trailing" block of size `m = sum_{j>1} l_j q_j + p + 1`, stored dense. The coupling
//! `[Z_2 .. X y]' Z_1` is stored sparse by level of the first term: per level `g` the trailing
//! rows it touches and a dense `rows x q_1` block. No `n x n` matrix is ever formed.
use super::LmmError;
use crate::formula::ModelFrame;

/// Position of one random-effects term in the layout.
#[derive(Debug, Clone, PartialEq)]
pub struct TermLayout {
    /// Columns per level.
    pub q: usize,
    /// Number of levels.
    pub n_levels: usize,
    /// First trailing index of this term (terms after the first only).
    pub offset: usize,
    /// First index of this term's parameters in theta.
    pub theta_offset: usize,
}

impl TermLayout {
    /// Number of theta parameters: the lower triangle of a `q x q` factor.
    pub fn n_theta(&self) -> usize {
        self.q * (self.q + 1) / 2
    }
}

/// The coupling of the first term to the trailing block, stored by level of the first term in
/// one contiguous (CSR-like) layout: level `g` touches trailing rows `rows[ptr[g]..ptr[g+1]]`
/// (ascending; ending with the `p + 1` rows of X and y) and holds the dense
/// `rows x q_1` block `A[rows, Z_1 columns of g]` at `vals[ptr[g] * q_1..ptr[g+1] * q_1]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Coupling {
    pub ptr: Vec<usize>,
    pub rows: Vec<usize>,
    pub vals: Vec<f64>,
    pub q1: usize,
}

impl Coupling {
    /// Number of levels of the first term.
    pub fn n_levels(&self) -> usize {
        self.ptr.len().saturating_sub(1)
    }
    /// Trailing rows touched by level `g`.
    pub fn rows(&self, g: usize) -> &[usize] {
        &self.rows[self.ptr[g]..self.ptr[g + 1]]
    }
    /// Range of level `g`'s block in `vals` (and in the factor's `l_t1`).
    pub fn val_range(&self, g: usize) -> std::ops::Range<usize> {
        self.ptr[g] * self.q1..self.ptr[g + 1] * self.q1
    }
}

/// Cross-product blocks of `[Z X y]` (independent of theta).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockedProducts {
    pub n: usize,
    pub p: usize,
    pub terms: Vec<TermLayout>,
    /// Per level of the first term, `q_1 x q_1` blocks of `Z_1'Z_1`, row-major, concatenated.
    pub a11: Vec<f64>,
    /// Coupling of the first term to the trailing block.
    pub coupling: Coupling,
    /// Trailing block `A_TT`, dense `m x m` row-major (both triangles).
    pub a_tt: Vec<f64>,
    /// Size of the trailing block.
    pub m: usize,
    /// Number of random-effects rows in the trailing block.
    pub q_rest: usize,
    /// Total number of theta parameters.
    pub n_theta: usize,
    /// Fixed symbolic structure for the sparse factorization of the trailing block (crossed
    /// designs; see [`super::sparse`]), `None` when the dense factorization is used.
    pub sparse: Option<std::sync::Arc<super::sparse::SparseTrailing>>,
    /// Class sums of the first term's downdate for the dense path (see [`super::classes`]),
    /// `None` when they would not save work or the sparse path is used.
    pub classes: Option<std::sync::Arc<super::classes::ClassDowndate>>,
}

/// Trailing block larger than this is refused (dense memory `8 m^2` bytes).
pub const MAX_TRAILING: usize = 20_000;

/// The rows of each level of a grouping factor (a counting sort of `refs`): level `g` has rows
/// `rows[start[g]..start[g + 1]]`, ascending.
struct RowsByLevel {
    start: Vec<usize>,
    rows: Vec<usize>,
}

fn rows_by_level(refs: &[u32], n_levels: usize) -> RowsByLevel {
    let mut start = vec![0usize; n_levels + 1];
    for &g in refs {
        start[g as usize + 1] += 1;
    }
    for g in 0..n_levels {
        start[g + 1] += start[g];
    }
    let mut next = start.clone();
    let mut rows = vec![0usize; refs.len()];
    for (i, &g) in refs.iter().enumerate() {
        rows[next[g as usize]] = i;
        next[g as usize] += 1;
    }
    RowsByLevel { start, rows }
}

/// One observation's entries in the trailing block: the columns of the terms after the first
/// (at their level's rows), then `X`, then `y` (indices ascending).
struct RowEntries<'a> {
    mf: &'a ModelFrame,
    terms: &'a [TermLayout],
    q_rest: usize,
    m: usize,
}

impl RowEntries<'_> {
    fn fill(&self, i: usize, idx: &mut [usize], val: &mut [f64]) {
        let mf = self.mf;
        let p = mf.p();
        let mut k = 0;
        for (t, lay) in mf.re_terms.iter().zip(self.terms).skip(1) {
            let lvl = t.refs[i] as usize;
            for c in 0..t.q {
                idx[k] = lay.offset + lvl * t.q + c;
                val[k] = t.z[i * t.q + c];
                k += 1;
            }
        }
        for c in 0..p {
            idx[k] = self.q_rest + c;
            val[k] = mf.x[i * p + c];
            k += 1;
        }
        idx[k] = self.m - 1;
        val[k] = mf.y[i];
    }
}

/// The products of a contiguous range of levels of the first term: their `Z_g'Z_g` blocks
/// and their coupling rows (per level: count, then the rows) and values. Each level's sums run
/// over its rows in row order, so the values do not depend on the chunks.
struct LevelChunk {
    a11: Vec<f64>,
    level_rows: Vec<usize>,
    rows: Vec<usize>,
    vals: Vec<f64>,
}

/// The trailing block `A_TT` (both triangles, row-major `m x m`): one pass over the rows in
/// their order, each entry summed in row order (a sum split over chunks of rows would round
/// differently and move the optimizer's path).
fn trailing_block(ctx: &RowEntries<'_>, nnz_rest: usize) -> Vec<f64> {
    let mf = ctx.mf;
    let m = ctx.m;
    let w_len = nnz_rest + mf.p() + 1;
    let mut w_idx = vec![0usize; w_len];
    let mut w_val = vec![0.0; w_len];
    let mut a_tt = vec![0.0; m * m];
    for i in 0..mf.n() {
        ctx.fill(i, &mut w_idx, &mut w_val);
        for a in 0..w_len {
            let ra = w_idx[a] * m;
            for b in 0..=a {
                a_tt[ra + w_idx[b]] += w_val[a] * w_val[b];
            }
        }
    }
    // The lower triangle was summed (indices ascend within a row): mirror it.
    for r in 0..m {
        for c in 0..r {
            a_tt[c * m + r] = a_tt[r * m + c];
        }
    }
    a_tt
}

fn level_chunk(
    ctx: &RowEntries<'_>,
    rows_of: &RowsByLevel,
    levels: std::ops::Range<usize>,
    nnz_rest: usize,
) -> LevelChunk {
    let mf = ctx.mf;
    let first = &mf.re_terms[0];
    let q1 = first.q;
    let m = ctx.m;
    let w_len = nnz_rest + mf.p() + 1;
    let mut w_idx = vec![0usize; w_len];
    let mut w_val = vec![0.0; w_len];
    let mut out = LevelChunk {
        a11: vec![0.0; levels.len() * q1 * q1],
        level_rows: Vec::with_capacity(levels.len()),
        rows: Vec::new(),
        vals: Vec::new(),
    };
    let mut list: Vec<usize> = Vec::new();
    for (gi, g) in levels.enumerate() {
        let obs = &rows_of.rows[rows_of.start[g]..rows_of.start[g + 1]];
        // The trailing rows this level touches: its later-term levels, then X and y.
        list.clear();
        for &i in obs {
            ctx.fill(i, &mut w_idx, &mut w_val);
            list.extend_from_slice(&w_idx[..nnz_rest]);
        }
        list.sort_unstable();
        list.dedup();
        let n_rest = list.len();
        list.extend(ctx.q_rest..m);
        let base = out.rows.len();
        out.rows.extend_from_slice(&list);
        out.level_rows.push(list.len());
        out.vals.resize(out.rows.len() * q1, 0.0);
        let blk = &mut out.a11[gi * q1 * q1..(gi + 1) * q1 * q1];
        for &i in obs {
            ctx.fill(i, &mut w_idx, &mut w_val);
            let z1 = &first.z[i * q1..(i + 1) * q1];
            for a in 0..q1 {
                for b in 0..q1 {
                    blk[a * q1 + b] += z1[a] * z1[b];
                }
            }
            for a in 0..w_len {
                let pos = if a < nnz_rest {
                    list[..n_rest].binary_search(&w_idx[a]).unwrap_or(0)
                } else {
                    n_rest + (a - nnz_rest)
                };
                let r = base + pos;
                for (v, zb) in out.vals[r * q1..(r + 1) * q1].iter_mut().zip(z1) {
                    *v += w_val[a] * zb;
                }
            }
        }
    }
    out
}

impl BlockedProducts {
    /// Computes the blocks from a model frame.
    pub fn new(mf: &ModelFrame) -> Result<Self, LmmError> {
        let n = mf.n();
        let p = mf.p();
        let first = mf.re_terms.first().ok_or(LmmError::NoRandomTerms)?;
        let mut terms = Vec::new();
        let mut offset = 0;
        let mut theta_offset = 0;
        for (j, t) in mf.re_terms.iter().enumerate() {
            let lay = TermLayout {
                q: t.q,
                n_levels: t.n_levels(),
                offset: if j == 0 { 0 } else { offset },
                theta_offset,
            };
            if j > 0 {
                offset += t.q * t.n_levels();
            }
            theta_offset += lay.n_theta();
            terms.push(lay);
        }
        let q_rest = offset;
        let m = q_rest + p + 1;
        if m > MAX_TRAILING {
            return Err(LmmError::TooLarge {
                what: format!(
                    "the random-effects terms after the first have {q_rest} coefficients; the dense block would need {} MB",
                    m * m * 8 / 1_000_000
                ),
            });
        }
        let q1 = first.q;
        let l1 = first.n_levels();
        let nnz_rest: usize = mf.re_terms.iter().skip(1).map(|t| t.q).sum();
        let rows_of = rows_by_level(&first.refs, l1);
        // The trailing block in row order on one thread, the levels of the first term in
        // chunks on the others (per-level sums, the same on any chunking).
        let ctx = RowEntries {
            mf,
            terms: &terms,
            q_rest,
            m,
        };
        let n_chunks = (n / 50_000).clamp(1, 8).min(l1.max(1));
        let bounds: Vec<usize> = (0..=n_chunks).map(|c| c * l1 / n_chunks).collect();
        use rayon::prelude::*;
        let (a_tt, parts) = rayon::join(
            || trailing_block(&ctx, nnz_rest),
            || {
                (0..n_chunks)
                    .into_par_iter()
                    .map(|c| level_chunk(&ctx, &rows_of, bounds[c]..bounds[c + 1], nnz_rest))
                    .collect::<Vec<LevelChunk>>()
            },
        );
        let mut a11 = Vec::with_capacity(l1 * q1 * q1);
        let mut coupling = Coupling {
            ptr: Vec::with_capacity(l1 + 1),
            rows: Vec::new(),
            vals: Vec::new(),
            q1,
        };
        coupling.ptr.push(0);
        for part in parts {
            a11.extend_from_slice(&part.a11);
            for len in part.level_rows {
                let last = coupling.ptr.last().copied().unwrap_or(0);
                coupling.ptr.push(last + len);
            }
            coupling.rows.extend_from_slice(&part.rows);
            coupling.vals.extend_from_slice(&part.vals);
        }
        let mut bp = BlockedProducts {
            n,
            p,
            n_theta: theta_offset,
            terms,
            a11,
            coupling,
            a_tt,
            m,
            q_rest,
            sparse: None,
            classes: None,
        };
        bp.set_sparse(super::sparse::SparseMode::Auto);
        Ok(bp)
    }

    /// Chooses the factorization of the trailing block for the criterion
    /// ([`super::sparse::SparseTrailing::build`]; the dense factor is used when the design
    /// does not allow the sparse one).
    pub fn set_sparse(&mut self, mode: super::sparse::SparseMode) {
        use super::sparse::{SparseMode, SparseTrailing, SPARSE_MAX_FLOPS, SPARSE_MIN_RAND};
        self.sparse = match mode {
            SparseMode::Auto => SparseTrailing::build(self, SPARSE_MIN_RAND, SPARSE_MAX_FLOPS),
            SparseMode::Always => SparseTrailing::build(self, 0, f64::INFINITY),
            SparseMode::Never => None,
        }
        .map(std::sync::Arc::new);
        self.classes = if self.sparse.is_none() {
            super::classes::ClassDowndate::build(self).map(std::sync::Arc::new)
        } else {
            None
        };
    }

    /// Lower bounds of theta as lme4 sets them: 0 for diagonal elements, -inf otherwise.
    pub fn theta_lower(&self) -> Vec<f64> {
        let mut lb = Vec::with_capacity(self.n_theta);
        for t in &self.terms {
            for c in 0..t.q {
                for r in c..t.q {
                    lb.push(if r == c { 0.0 } else { f64::NEG_INFINITY });
                }
            }
        }
        lb
    }

    /// lme4's starting value: 1 on the diagonal, 0 off it.
    pub fn theta_start(&self) -> Vec<f64> {
        self.theta_lower()
            .iter()
            .map(|&l| if l == 0.0 { 1.0 } else { 0.0 })
            .collect()
    }
}

/// The lower-triangular relative covariance factor `Lambda_j` (q x q row-major) of a term from
/// its theta entries (lower triangle, column by column, as lme4).
pub fn lambda(theta: &[f64], q: usize) -> Vec<f64> {
    let mut l = vec![0.0; q * q];
    let mut k = 0;
    for c in 0..q {
        for r in c..q {
            l[r * q + c] = theta.get(k).copied().unwrap_or(0.0);
            k += 1;
        }
    }
    l
}
