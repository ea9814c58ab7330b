//! Shrunken site effects from one model with random site intercepts and random site-by-arm
//! effects, `y ~ arm * wave + (1 | participant_id) + (1 + arm | site_id)` (lme4), and each
//! site's rank with an interval by parametric simulation.
//!
//! * The shrunken effect of a site is the conditional mode of its `arm<intervention>` random
//!   effect with its conditional SD, as `ranef(fit, condVar = TRUE)` (Bates et al. 2015,
//!   J Stat Softw 67(1)).
//! * Ranks: site effects are drawn from their conditional (posterior) normal distributions
//!   `N(b_j, condsd_j^2)`, ranked in every draw (1 = largest effect), and the 2.5% and 97.5%
//!   quantiles of each site's simulated ranks form its interval (Goldstein & Spiegelhalter 1996,
//!   J R Stat Soc A 159: league tables with uncertainty; Marshall & Spiegelhalter 1998, BMJ 316).
use rand_distr::{Distribution, StandardNormal};

use crate::frame::Frame;
use crate::lmm::{fit_formula, LmmOptions};
use crate::results::{RankRow, ShrinkageModel, ShrunkenRow};
use crate::stats::quantile::quantile_type1;
use crate::stats::rng::{substream, tags};

/// Fits the shrinkage model and returns, for each of `columns` (random-effect columns of the
/// `site_factor` term, e.g. `armIMR`, or `imr_T2`, `imr_T3`), the conditional modes of the
/// sites' effects with their conditional SDs.
pub fn shrunken_effects(
    frame: &Frame,
    formula: &str,
    site_factor: &str,
    columns: &[String],
) -> Result<(Vec<Vec<ShrunkenRow>>, ShrinkageModel), String> {
    let first = columns
        .first()
        .ok_or_else(|| "no site-level effect column named".to_string())?;
    let fit = fit_formula(formula, frame, &LmmOptions::default()).map_err(|e| e.to_string())?;
    let terms = fit.ranef().map_err(|e| e.to_string())?;
    let has_all = |names: &[String]| columns.iter().all(|c| names.iter().any(|n| n == c));
    let Some(term) = terms
        .iter()
        .find(|t| t.factor == site_factor && has_all(&t.names))
    else {
        return Err(format!(
            "the model `{formula}` has no random-effects term per `{site_factor}` with the column(s) {}",
            columns.join(", ")
        ));
    };
    let q = term.names.len();
    let rows: Vec<Vec<ShrunkenRow>> = columns
        .iter()
        .map(|col| {
            let c = term.names.iter().position(|n| n == col).unwrap_or(0);
            term.levels
                .iter()
                .enumerate()
                .map(|(lvl, id)| ShrunkenRow {
                    site_id: id.clone(),
                    arm_effect: term.values.get(lvl * q + c).copied().unwrap_or(f64::NAN),
                    conditional_sd: term.cond_sd(lvl, c),
                })
                .collect()
        })
        .collect();
    let vc = fit
        .varcorr()
        .into_iter()
        .zip(&fit.frame.re_terms)
        .find(|(_, re)| re.factor_name == site_factor && has_all(&re.col_names));
    let (isd, sds, cor) = match vc {
        Some((v, _)) => {
            let ic = v.names.iter().position(|n| n == "(Intercept)");
            let idx: Vec<Option<usize>> = columns
                .iter()
                .map(|c| v.names.iter().position(|n| n == c))
                .collect();
            (
                ic.map_or(f64::NAN, |i| v.sd(i)),
                idx.iter()
                    .map(|a| a.map_or(f64::NAN, |a| v.sd(a)))
                    .collect::<Vec<f64>>(),
                match (ic, idx[0]) {
                    (Some(i), Some(a)) => v.corr(i, a),
                    _ => f64::NAN,
                },
            )
        }
        None => (f64::NAN, vec![f64::NAN; columns.len()], f64::NAN),
    };
    let mut warnings = fit.warnings.clone();
    if fit.singular && !warnings.iter().any(|w| w.contains("singular")) {
        warnings.push(format!(
            "shrinkage model singular (boundary): {}",
            if fit.singular_terms.is_empty() {
                "a variance component is estimated as 0".to_string()
            } else {
                fit.singular_terms.join("; ")
            }
        ));
    }
    let model = ShrinkageModel {
        formula: formula.to_string(),
        site_intercept_sd: isd,
        site_arm_sd: sds[0],
        correlation: cor,
        residual_sd: fit.sigma,
        singular: fit.singular,
        converged: fit.converged,
        reml_criterion: fit.objective,
        arm_term: first.clone(),
        columns: columns.to_vec(),
        column_sds: sds,
        n_sites: term.levels.len(),
        n_observations: fit.n_obs(),
        warnings,
    };
    Ok((rows, model))
}

/// Rank of each value, 1 = largest; ties share the smallest rank (R's
/// `rank(-x, ties.method = "min")`).
pub fn ranks_desc(values: &[f64]) -> Vec<u64> {
    values
        .iter()
        .map(|v| 1 + values.iter().filter(|w| w.total_cmp(v).is_gt()).count() as u64)
        .collect()
}

/// Ranks with `level` intervals by simulation: `draws` joint draws of independent normals
/// `N(estimate_j, sd_j^2)` from the ChaCha8 stream `(seed, tag, stream)`; in each draw every
/// site is ranked (1 = largest); the interval is the pair of empirical quantiles (R's
/// `quantile(type = 1)`) of the site's ranks. The point rank is the rank of the estimates.
pub fn simulated_ranks(
    ids: &[String],
    estimates: &[f64],
    sds: &[f64],
    draws: usize,
    level: f64,
    seed: u64,
    stream: u64,
) -> Vec<RankRow> {
    let k = estimates.len();
    let point = ranks_desc(estimates);
    let mut sims: Vec<Vec<u32>> = vec![Vec::with_capacity(draws); k];
    let mut rng = substream(seed, tags::SITE_RANKS, stream);
    let mut vals = vec![0.0; k];
    let mut order: Vec<usize> = (0..k).collect();
    for _ in 0..draws {
        for j in 0..k {
            let z: f64 = StandardNormal.sample(&mut rng);
            let sd = if sds[j].is_finite() { sds[j] } else { 0.0 };
            vals[j] = estimates[j] + sd * z;
        }
        order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]).then(a.cmp(&b)));
        for (r, &j) in order.iter().enumerate() {
            sims[j].push(r as u32 + 1);
        }
    }
    let alpha = (1.0 - level) / 2.0;
    ids.iter()
        .enumerate()
        .map(|(j, id)| {
            let mut s = std::mem::take(&mut sims[j]);
            s.sort_unstable();
            let (lo, hi) = match (quantile_type1(&s, alpha), quantile_type1(&s, 1.0 - alpha)) {
                (Some(lo), Some(hi)) => (u64::from(lo), u64::from(hi)),
                _ => (point[j], point[j]),
            };
            RankRow {
                site_id: id.clone(),
                rank: point[j],
                rank_low: lo,
                rank_high: hi,
            }
        })
        .collect()
}
