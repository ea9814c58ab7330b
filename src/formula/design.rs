//! Model frame and model matrices: R's `model.frame(na.action = na.omit,
//! drop.unused.levels = TRUE)` + `model.matrix` with treatment contrasts, and lme4's
//! random-effects terms (`mkReTrms`: grouping factors, per-term model matrices, terms ordered by
//! decreasing number of levels).
use std::collections::HashMap;

use super::{FormulaError, ModelFormula, RandomSpec, TermList};
use crate::frame::{as_factor, Column, Frame};
use crate::stats::crossprod::{cross_products, gram_rank};

/// One random-effects term ready for estimation.
#[derive(Debug, Clone, PartialEq)]
pub struct ReTermData {
    /// lme4's group name (`Subject`, `cask:batch`), made unique as lme4 prints it (`Subject.1`).
    pub group_name: String,
    /// The grouping factor's own name (without the `.1` suffix).
    pub factor_name: String,
    /// Column names of the term's model matrix (`(Intercept)`, `Days`, `waveT1`).
    pub col_names: Vec<String>,
    /// Level of each observation (index into `level_names`).
    pub refs: Vec<u32>,
    /// Labels of the grouping factor's levels.
    pub level_names: Vec<String>,
    /// Model matrix of the term, row-major, n x q.
    pub z: Vec<f64>,
    /// Number of columns q.
    pub q: usize,
    /// Source text of the term.
    pub text: String,
}

impl ReTermData {
    /// Number of levels of the grouping factor.
    pub fn n_levels(&self) -> usize {
        self.level_names.len()
    }
}

/// Response, fixed-effects matrix and random-effects terms on the complete cases.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFrame {
    pub formula: ModelFormula,
    /// Rows of the input frame used (complete cases), ascending.
    pub rows: Vec<usize>,
    /// Rows dropped for missing values (R's na.omit).
    pub n_dropped: usize,
    pub y: Vec<f64>,
    /// Fixed-effects model matrix, row-major n x p (rank-deficient columns already dropped).
    pub x: Vec<f64>,
    pub x_names: Vec<String>,
    /// For each fixed-effects column, the index of its term in `formula.fixed.terms`
    /// (`None` for the intercept).
    pub x_terms: Vec<Option<usize>>,
    /// The same fixed part coded with sum-to-zero contrasts (R's `contr.sum`), `S` (n x
    /// `x_sum_terms.len()`, full-rank columns): the parameterization whose term-wise tests are
    /// SAS-type III hypotheses (the type III F tests' fallback). Kept as its cross products:
    /// `S'S`, row-major `ps x ps`.
    pub x_sum_xtx: Vec<f64>,
    /// `S'X`, row-major `ps x p`.
    pub x_sum_x: Vec<f64>,
    /// Term index of each column of `S` (`None` for the intercept).
    pub x_sum_terms: Vec<Option<usize>>,
    /// lmerTest's "full rank-deficient" design (`get_rdX`): intercept and every term coded by
    /// indicators of all levels; kept as its cross-product for type III contrasts.
    pub rd_design: RdDesign,
    /// Per formula variable: true when it enters as a factor.
    pub var_is_factor: Vec<bool>,
    /// Columns dropped for rank deficiency (names).
    pub dropped_columns: Vec<String>,
    /// Random-effects terms ordered as lme4 orders them (decreasing number of levels).
    pub re_terms: Vec<ReTermData>,
    pub warnings: Vec<String>,
}

/// Cross-product of lmerTest's over-parameterized design matrix (see `lmm::inference::type3`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RdDesign {
    /// Column names as `model.matrix(~ 0 + term)` names them (plus `(Intercept)`).
    pub names: Vec<String>,
    /// Term index of each column (`None` for the intercept).
    pub terms: Vec<Option<usize>>,
    /// `rdX'rdX`, row-major.
    pub xtx: Vec<f64>,
}

impl ModelFrame {
    pub fn n(&self) -> usize {
        self.y.len()
    }
    pub fn p(&self) -> usize {
        self.x_names.len()
    }
}

/// A variable evaluated on the used rows.
enum VarData {
    Numeric(Vec<f64>),
    Factor {
        codes: Vec<u32>,
        levels: Vec<String>,
    },
}

fn columns_list(frame: &Frame) -> String {
    frame.names().join(", ")
}

fn get_column<'a>(frame: &'a Frame, name: &str) -> Result<&'a Column, FormulaError> {
    frame
        .column(name)
        .ok_or_else(|| FormulaError::UnknownColumn {
            name: name.to_string(),
            available: columns_list(frame),
        })
}

/// Builds the model frame of `formula` on `frame`: complete cases, fixed-effects matrix with
/// R's names (rank-deficient columns dropped like R, with a warning), random-effects terms
/// (as lme4's `lFormula`: `model.frame` with `na.omit`, `model.matrix`, `mkReTrms`).
pub fn build_model_frame(
    formula: &ModelFormula,
    frame: &Frame,
) -> Result<ModelFrame, FormulaError> {
    let (rows, y) = complete_cases(formula, frame)?;
    let n = rows.len();
    let n_dropped = frame.n_rows() - n;
    let vdata = variables_on_rows(formula, frame, &rows)?;
    let mut warnings = Vec::new();
    if n_dropped > 0 {
        warnings.push(format!(
            "{n_dropped} row(s) with missing values in the model variables dropped (na.omit)"
        ));
    }
    // The three designs are independent: built in parallel (1,000,000 rows: most of the
    // model frame's time goes to allocating and filling these columns).
    let (fixed, rd_design) = rayon::join(
        || fixed_effects(formula, &vdata, n),
        || rank_deficient_design(formula, &vdata, n),
    );
    let mut fixed = fixed;
    warnings.extend(fixed.warning.take());
    let var_is_factor: Vec<bool> = vdata
        .iter()
        .map(|v| matches!(v, VarData::Factor { .. }))
        .collect();
    let mut re_terms = {
        use rayon::prelude::*;
        formula
            .random
            .par_iter()
            .map(|spec| random_term(formula, spec, frame, &rows, &vdata))
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Result<Vec<_>, _>>()? // the first term's error, as sequentially
    };
    // lme4: order terms by decreasing number of levels (stable).
    re_terms.sort_by_key(|t| std::cmp::Reverse(t.n_levels()));
    // Unique names as VarCorr prints them (make.unique: Subject, Subject.1, ...).
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &mut re_terms {
        let count = seen.entry(t.factor_name.clone()).or_insert(0);
        if *count > 0 {
            t.group_name = format!("{}.{}", t.factor_name, count);
        }
        *count += 1;
    }
    Ok(ModelFrame {
        formula: formula.clone(),
        rows,
        n_dropped,
        y,
        x: fixed.x,
        x_names: fixed.names,
        x_terms: fixed.terms,
        x_sum_xtx: fixed.x_sum_xtx,
        x_sum_x: fixed.x_sum_x,
        x_sum_terms: fixed.x_sum_terms,
        rd_design,
        var_is_factor,
        dropped_columns: fixed.dropped,
        re_terms,
        warnings,
    })
}

/// The rows with every model variable observed (`na.omit`) and the response on them; an
/// error for a text response, a formula without random terms or no complete row.
fn complete_cases(
    formula: &ModelFormula,
    frame: &Frame,
) -> Result<(Vec<usize>, Vec<f64>), FormulaError> {
    let mut used: Vec<String> = vec![formula.response.clone()];
    for v in &formula.vars {
        used.push(v.column.clone());
    }
    for r in &formula.random {
        used.extend(r.group_columns.iter().cloned());
    }
    used.dedup();
    let mut cols = Vec::new();
    for name in &used {
        cols.push(get_column(frame, name)?);
    }
    if let Some(Column::Factor { codes, levels }) = frame.column(&formula.response) {
        let example = codes
            .iter()
            .flatten()
            .next()
            .and_then(|c| levels.get(*c as usize))
            .cloned()
            .unwrap_or_default();
        return Err(FormulaError::NonNumericResponse {
            name: formula.response.clone(),
            example,
        });
    }
    if formula.random.is_empty() {
        return Err(FormulaError::NoRandomTerms);
    }
    let n_all = frame.n_rows();
    // Column by column into one mask (a column without missing values, the common case, is
    // one vectorized scan); the rows are those the mask keeps, in order.
    let mut keep = vec![true; n_all];
    for c in &cols {
        match c {
            Column::Numeric(v) => {
                if !v.iter().all(|x| x.is_finite()) {
                    for (k, x) in keep.iter_mut().zip(v) {
                        *k &= x.is_finite();
                    }
                }
            }
            Column::Factor { codes, .. } => {
                if !codes.iter().all(Option::is_some) {
                    for (k, x) in keep.iter_mut().zip(codes) {
                        *k &= x.is_some();
                    }
                }
            }
        }
        if c.len() < n_all {
            keep[c.len()..].iter_mut().for_each(|k| *k = false);
        }
    }
    let rows: Vec<usize> = keep
        .iter()
        .enumerate()
        .filter_map(|(i, &k)| k.then_some(i))
        .collect();
    if rows.is_empty() {
        return Err(FormulaError::NoRows {
            dropped: n_all - rows.len(),
        });
    }
    let y: Vec<f64> = match get_column(frame, &formula.response)? {
        Column::Numeric(v) => rows
            .iter()
            .map(|&i| v.get(i).copied().unwrap_or(f64::NAN))
            .collect(),
        Column::Factor { .. } => {
            return Err(FormulaError::NonNumericResponse {
                name: formula.response.clone(),
                example: String::new(),
            })
        }
    };
    Ok((rows, y))
}

/// The formula's variables on the used rows, unused factor levels dropped.
fn variables_on_rows(
    formula: &ModelFormula,
    frame: &Frame,
    rows: &[usize],
) -> Result<Vec<VarData>, FormulaError> {
    let mut vdata = Vec::new();
    for var in &formula.vars {
        let col = get_column(frame, &var.column)?;
        let data = match (col, var.as_factor) {
            (Column::Numeric(v), false) => VarData::Numeric(
                rows.iter()
                    .map(|&i| v.get(i).copied().unwrap_or(f64::NAN))
                    .collect(),
            ),
            (c, _) => {
                let sub_of = |codes: &[Option<u32>]| -> Vec<u32> {
                    rows.iter()
                        .map(|&i| codes.get(i).copied().flatten().unwrap_or(0))
                        .collect()
                };
                let (codes, levels) = match c {
                    Column::Factor { codes, levels } => drop_unused(&sub_of(codes), levels),
                    Column::Numeric(_) => {
                        let (codes, levels) = as_factor(c);
                        drop_unused(&sub_of(&codes), &levels)
                    }
                };
                VarData::Factor { codes, levels }
            }
        };
        vdata.push(data);
    }
    Ok(vdata)
}

/// The fixed-effects model matrix (row-major, rank-deficient columns dropped as R's
/// `model.matrix` + `lm` do) and the sum-to-zero-coded matrix lmerTest's type III tests use.
struct FixedEffectsMatrix {
    x: Vec<f64>,
    names: Vec<String>,
    terms: Vec<Option<usize>>,
    x_sum_xtx: Vec<f64>,
    x_sum_x: Vec<f64>,
    x_sum_terms: Vec<Option<usize>>,
    dropped: Vec<String>,
    warning: Option<String>,
}

fn fixed_effects(formula: &ModelFormula, vdata: &[VarData], n: usize) -> FixedEffectsMatrix {
    let ((mut xcols, mut x_names, mut x_terms), (scols, sterms, skeep)) = rayon::join(
        || model_matrix(formula, &formula.fixed, vdata, n, false),
        || {
            let (scols, _, sterms) = model_matrix(formula, &formula.fixed, vdata, n, true);
            let refs: Vec<&[f64]> = scols.iter().map(Vec::as_slice).collect();
            let gram = cross_products(&refs, &refs, n);
            let skeep = gram_rank(&gram, scols.len(), RANK_TOL);
            (scols, sterms, (skeep, gram))
        },
    );
    let (skeep, s_gram) = skeep;
    let x_sum_terms: Vec<Option<usize>> = skeep
        .iter()
        .filter_map(|&j| sterms.get(j).copied())
        .collect();
    let keep = rank_columns(&xcols, n);
    let mut dropped = Vec::new();
    let mut warning = None;
    if keep.len() < xcols.len() {
        for (j, name) in x_names.iter().enumerate() {
            if !keep.contains(&j) {
                dropped.push(name.clone());
            }
        }
        warning = Some(format!(
            "fixed-effect model matrix is rank deficient so dropping {} column(s) / coefficient(s): {}",
            dropped.len(),
            dropped.join(", ")
        ));
        xcols = keep.iter().filter_map(|&j| xcols.get(j).cloned()).collect();
        x_names = keep
            .iter()
            .filter_map(|&j| x_names.get(j).cloned())
            .collect();
        x_terms = keep
            .iter()
            .filter_map(|&j| x_terms.get(j).cloned())
            .collect();
    }
    let p = xcols.len();
    let mut x = vec![0.0; n * p];
    for (j, col) in xcols.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            x[i * p + j] = *v;
        }
    }
    let s_kept: Vec<&[f64]> = skeep
        .iter()
        .filter_map(|&j| scols.get(j).map(Vec::as_slice))
        .collect();
    let x_kept: Vec<&[f64]> = xcols.iter().map(Vec::as_slice).collect();
    // S'S of the kept columns from the rank check's Gram matrix (the same sums).
    let ks = scols.len();
    let s_gram = &s_gram;
    let x_sum_xtx: Vec<f64> = skeep
        .iter()
        .flat_map(|&i| skeep.iter().map(move |&j| s_gram[i * ks + j]))
        .collect();
    let x_sum_x = cross_products(&s_kept, &x_kept, n);
    FixedEffectsMatrix {
        x,
        names: x_names,
        terms: x_terms,
        x_sum_xtx,
        x_sum_x,
        x_sum_terms,
        dropped,
        warning,
    }
}

/// lmerTest's rank-deficient design (every term's columns, none dropped), kept as its
/// cross-product.
fn rank_deficient_design(formula: &ModelFormula, vdata: &[VarData], n: usize) -> RdDesign {
    let mut rd_cols: Vec<Vec<f64>> = Vec::new();
    let mut rd_names = Vec::new();
    let mut rd_terms = Vec::new();
    if formula.fixed.intercept {
        rd_cols.push(vec![1.0; n]);
        rd_names.push("(Intercept)".to_string());
        rd_terms.push(None);
    }
    for (ti, term) in formula.fixed.terms.iter().enumerate() {
        let tl = TermList {
            intercept: false,
            terms: vec![term.clone()],
        };
        let (c, nm, _) = model_matrix(formula, &tl, vdata, n, false);
        for (col, name) in c.into_iter().zip(nm) {
            rd_cols.push(col);
            rd_names.push(name);
            rd_terms.push(Some(ti));
        }
    }
    let cols: Vec<&[f64]> = rd_cols.iter().map(Vec::as_slice).collect();
    let rd_xtx = cross_products(&cols, &cols, n);
    RdDesign {
        names: rd_names,
        terms: rd_terms,
        xtx: rd_xtx,
    }
}

/// One random-effects term (lme4's `mkReTrms` for one bar): its model matrix `Z_i`, the
/// grouping factor as the interaction of its columns (levels in R's order, the first factor
/// varying slowest, unused combinations dropped), and lme4's identifiability checks.
fn random_term(
    formula: &ModelFormula,
    spec: &RandomSpec,
    frame: &Frame,
    rows: &[usize],
    vdata: &[VarData],
) -> Result<ReTermData, FormulaError> {
    let n = rows.len();
    let (zcols, col_names, _) = model_matrix(formula, &spec.lhs, vdata, n, false);
    let q = zcols.len();
    if q == 0 {
        return Err(FormulaError::Unsupported(format!(
            "random-effects term ({}) has no columns",
            spec.text
        )));
    }
    let (refs, level_names) = grouping_levels(spec, frame, rows)?;
    let mut z = vec![0.0; n * q];
    for (j, col) in zcols.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            z[i * q + j] = *v;
        }
    }
    let nl = level_names.len();
    if nl < 2 {
        return Err(FormulaError::TooFewLevels {
            group: spec.group_name.clone(),
            levels: nl,
        });
    }
    if nl >= n {
        return Err(FormulaError::LevelsNotBelowObs {
            group: spec.group_name.clone(),
            levels: nl,
            n,
        });
    }
    if nl * q >= n {
        return Err(FormulaError::TooManyRandomEffects {
            term: spec.text.clone(),
            q: nl * q,
            n,
        });
    }
    Ok(ReTermData {
        group_name: spec.group_name.clone(),
        factor_name: spec.group_name.clone(),
        col_names,
        refs,
        level_names,
        z,
        q,
        text: spec.text.clone(),
    })
}

/// The grouping factor of a random-effects term on the used rows: per row the index of its
/// level, and the observed levels (R's interaction `a:b` of several columns, labels joined by
/// `:`), in the order of the columns' level codes, unused combinations dropped. The level
/// tuples are packed into one integer per row (mixed radix, so the integer order is the tuple
/// order), sorted and deduplicated; no allocation per row.
fn grouping_levels(
    spec: &RandomSpec,
    frame: &Frame,
    rows: &[usize],
) -> Result<(Vec<u32>, Vec<String>), FormulaError> {
    let mut per_col: Vec<(Vec<u32>, std::borrow::Cow<'_, [String]>)> = Vec::new();
    for c in &spec.group_columns {
        let col = get_column(frame, c)?;
        let sub_of = |codes: &[Option<u32>]| -> Vec<u32> {
            rows.iter()
                .map(|&i| codes.get(i).copied().flatten().unwrap_or(0))
                .collect()
        };
        match col {
            Column::Factor { codes, levels } => {
                per_col.push((sub_of(codes), std::borrow::Cow::Borrowed(levels.as_slice())))
            }
            Column::Numeric(_) => {
                let (codes, levels) = as_factor(col);
                per_col.push((sub_of(&codes), std::borrow::Cow::Owned(levels)));
            }
        }
    }
    if let [(codes, levels)] = per_col.as_slice() {
        // One grouping column: its codes already follow the level order; keep the observed.
        let mut new_of = vec![u32::MAX; levels.len().max(1)];
        for &c in codes {
            if let Some(slot) = new_of.get_mut(c as usize) {
                *slot = 0;
            }
        }
        let mut level_names = Vec::new();
        for (c, slot) in new_of.iter_mut().enumerate() {
            if *slot == 0 {
                *slot = level_names.len() as u32;
                level_names.push(levels.get(c).cloned().unwrap_or_default());
            }
        }
        let refs = codes
            .iter()
            .map(|&c| new_of.get(c as usize).copied().unwrap_or(0))
            .collect();
        return Ok((refs, level_names));
    }
    let radix: Vec<u128> = per_col
        .iter()
        .map(|(_, lv)| lv.len().max(1) as u128)
        .collect();
    let packed: Vec<u128> = (0..rows.len())
        .map(|i| {
            per_col.iter().zip(&radix).fold(0u128, |acc, ((c, _), &r)| {
                acc.saturating_mul(r).saturating_add(c[i] as u128)
            })
        })
        .collect();
    let mut distinct = packed.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let refs: Vec<u32> = packed
        .iter()
        .map(|k| distinct.binary_search(k).map_or(0, |i| i as u32))
        .collect();
    let level_names: Vec<String> = distinct
        .iter()
        .map(|&k| {
            // unpack the tuple, last column first
            let mut rest = k;
            let mut parts: Vec<&str> = vec![""; per_col.len()];
            for (j, ((_, lv), &r)) in per_col.iter().zip(&radix).enumerate().rev() {
                let code = (rest % r) as usize;
                rest /= r;
                parts[j] = lv.get(code).map_or("", String::as_str);
            }
            parts.join(":")
        })
        .collect();
    Ok((refs, level_names))
}

fn drop_unused(codes: &[u32], levels: &[String]) -> (Vec<u32>, Vec<String>) {
    let mut used = vec![false; levels.len()];
    for &c in codes {
        if let Some(u) = used.get_mut(c as usize) {
            *u = true;
        }
    }
    let mut map = vec![0u32; levels.len()];
    let mut new_levels = Vec::new();
    for (i, l) in levels.iter().enumerate() {
        if used[i] {
            map[i] = new_levels.len() as u32;
            new_levels.push(l.clone());
        }
    }
    (
        codes
            .iter()
            .map(|&c| map.get(c as usize).copied().unwrap_or(0))
            .collect(),
        new_levels,
    )
}

/// R's `model.matrix` for a term list with treatment contrasts (`sum = false`) or sum-to-zero
/// contrasts (`sum = true`, `contr.sum`). A factor in a term is coded by contrasts when the
/// term without it is in the model (the intercept standing for the empty term), otherwise by
/// indicators of all levels. Returns columns, their names and their term indices.
fn model_matrix(
    formula: &ModelFormula,
    tl: &TermList,
    vdata: &[VarData],
    n: usize,
    sum: bool,
) -> (Vec<Vec<f64>>, Vec<String>, Vec<Option<usize>>) {
    let mut cols = Vec::new();
    let mut names = Vec::new();
    let mut term_of = Vec::new();
    if tl.intercept {
        cols.push(vec![1.0; n]);
        names.push("(Intercept)".to_string());
        term_of.push(None);
    }
    for (ti, term) in tl.terms.iter().enumerate() {
        // Per variable: list of (name suffix, column values).
        let mut pieces: Vec<Vec<(String, Vec<f64>)>> = Vec::new();
        for &v in term {
            let label = formula
                .vars
                .get(v)
                .map(|x| x.label.clone())
                .unwrap_or_default();
            match vdata.get(v) {
                Some(VarData::Numeric(vals)) => pieces.push(vec![(label, vals.clone())]),
                Some(VarData::Factor { codes, levels }) => {
                    let rest: Vec<usize> = term.iter().copied().filter(|&w| w != v).collect();
                    let contrasts = if rest.is_empty() {
                        tl.intercept
                    } else {
                        tl.terms.contains(&rest)
                    };
                    let mut p = Vec::new();
                    if contrasts && sum {
                        let last = levels.len().saturating_sub(1);
                        for k in 0..last {
                            let col: Vec<f64> = codes
                                .iter()
                                .map(|&c| {
                                    if c as usize == k {
                                        1.0
                                    } else if c as usize == last {
                                        -1.0
                                    } else {
                                        0.0
                                    }
                                })
                                .collect();
                            p.push((format!("{label}{}", k + 1), col));
                        }
                    } else {
                        let start = usize::from(contrasts);
                        for (k, lv) in levels.iter().enumerate().skip(start) {
                            let col: Vec<f64> = codes
                                .iter()
                                .map(|&c| if c as usize == k { 1.0 } else { 0.0 })
                                .collect();
                            p.push((format!("{label}{lv}"), col));
                        }
                    }
                    pieces.push(p);
                }
                None => {}
            }
        }
        // Combine: first variable varies fastest.
        // `None`: the empty product (a column of ones).
        let mut combos: Vec<(String, Option<Vec<f64>>)> = vec![(String::new(), None)];
        for p in &pieces {
            let mut next = Vec::new();
            for (pname, pcol) in p {
                for (cname, ccol) in &combos {
                    let name = if cname.is_empty() {
                        pname.clone()
                    } else {
                        format!("{cname}:{pname}")
                    };
                    // the first variable's columns as they are (1 * x = x exactly)
                    let col: Vec<f64> = match ccol {
                        None => pcol.clone(),
                        Some(ccol) => ccol.iter().zip(pcol).map(|(a, b)| a * b).collect(),
                    };
                    next.push((name, Some(col)));
                }
            }
            combos = next;
        }
        for (name, col) in combos {
            names.push(name);
            cols.push(col.unwrap_or_else(|| vec![1.0; n]));
            term_of.push(Some(ti));
        }
    }
    (cols, names, term_of)
}

/// Tolerance of [`rank_columns`] (R's `qr()` default).
const RANK_TOL: f64 = 1e-7;

/// Columns kept by a rank check like R's `qr()` with tolerance 1e-7 (LINPACK dqrdc2 moves
/// columns whose remaining norm is below tol x original norm to the end): sequential
/// Gram-Schmidt, dropping a column when its residual norm is below 1e-7 of its norm, done on
/// the columns' Gram matrix ([`gram_rank`]: one pass over the rows).
pub fn rank_columns(cols: &[Vec<f64>], n: usize) -> Vec<usize> {
    let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
    gram_rank(&cross_products(&refs, &refs, n), cols.len(), RANK_TOL)
}
