//! Approximate Bayesian multiple imputation (rbmi's `method_approxbayes`; Wolbers et al. 2022,
//! section 3.2; Little & Rubin 2002, section 10.2.3): for m = 1..M the imputation model is
//! refitted to a bootstrap sample of participants (stratified by arm), and the missing values
//! of the original data are drawn once from their conditional distribution under the
//! strategy's mean and that fit ([`super::impute::conditional_draw`]); each completed data set
//! is analysed by the per-wave ANCOVA and the M results are pooled by Rubin's rules with the
//! Barnard-Rubin (1999) df ([`rubin`]), as `mice::pool` and rbmi's `pool(method = "rubin")`.
//!
//! Randomness: bootstrap sample m draws from `substream(seed, MISSING_BOOTSTRAP, m << 8 |
//! attempt)`, its imputations under a strategy from `substream(seed, MISSING_DRAW, m << 8 |
//! strategy)`: results do not depend on the number of threads or on the other strategies.
use rayon::prelude::*;

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

use super::ancova::Ancova;
use super::impute::{conditional_draw, strategy_mean};
use super::jackknife::{interpolate_tipping, CondMeanOptions};
use super::model::{self, Design, ModelFit};
use super::{MissingError, Strategy, WideData};
use crate::progress::ProgressSink;
use crate::results::missing::{
    MiDeltaRow, MiStrategy, MiTippingPoint, MultipleImputation, PooledEstimate,
};
use crate::stats::distributions::{p_two_sided_t, qt};
use crate::stats::rng::{substream, tags};

pub use crate::stats::rubin::{barnard_rubin, rubin, Pooled};

/// What the MI run computed besides the results: the M estimates per strategy and wave.
#[derive(Debug, Clone)]
pub struct MiOutput {
    pub result: MultipleImputation,
    /// `[strategy][wave][m]` estimates and within-imputation variances.
    pub estimates: Vec<Vec<Vec<f64>>>,
    pub variances: Vec<Vec<Vec<f64>>>,
}

/// One imputation's analysis: `[strategy][wave]` (estimate, variance) and the delta grid
/// `[strategy][delta]` (estimate, variance; empty for a strategy without a grid).
type Imputation = (Vec<Vec<(f64, f64)>>, Vec<Vec<(f64, f64)>>);

fn strategy_code(s: Strategy) -> u64 {
    match s {
        Strategy::Mar => 0,
        Strategy::J2r => 1,
        Strategy::Cr => 2,
        Strategy::Cir => 3,
    }
}

/// Approximate Bayesian MI of every strategy in `opts` (and the delta grid of its delta
/// strategies at the delta wave, when it has one), M imputations. Observed values after an ICE
/// given in `opts.ice` are kept under MAR and set aside under the other strategies and the
/// delta grids, as in [`super::analyse_condmean`] (two runs; the two-dimensional grid and the
/// fixed deltas of the conditional mean are not repeated here: the MI grid shifts the delta
/// arms by their multipliers only, plus the fixed deltas).
pub fn analyse_approx_bayes(
    data: &WideData,
    opts: &CondMeanOptions,
    m_imputations: usize,
    seed: u64,
    progress: &dyn ProgressSink,
) -> Result<MiOutput, MissingError> {
    data.check()?;
    let Some(ice) = &opts.ice else {
        return approx_bayes_once(data, opts, m_imputations, seed, progress);
    };
    if ice.len() != data.ids.len() {
        return Err(MissingError::Data(
            "one intercurrent event per participant".into(),
        ));
    }
    let (masked, set_aside) = super::jackknife::set_aside_post_ice(data, ice);
    if set_aside == 0 {
        return approx_bayes_once(data, opts, m_imputations, seed, progress);
    }
    // grid2d is not used by the MI (set to None in the observed-data run)
    let runs = super::jackknife::IceRuns::of(opts);
    let a = if opts.strategies.contains(&Strategy::Mar) {
        Some(approx_bayes_once(
            data,
            &runs.observed,
            m_imputations,
            seed,
            progress,
        )?)
    } else {
        None
    };
    let b = match &runs.masked {
        None => None,
        Some(o) => Some(approx_bayes_once(
            &masked,
            o,
            m_imputations,
            seed,
            progress,
        )?),
    };
    let b_strategies: &[Strategy] = runs.masked.as_ref().map_or(&[], |o| &o.strategies);
    let mut out = MiOutput {
        result: MultipleImputation {
            m: m_imputations,
            seed,
            failed_fits: a.as_ref().map_or(0, |x| x.result.failed_fits)
                + b.as_ref().map_or(0, |x| x.result.failed_fits),
            strategies: Vec::new(),
            tipping_point: b
                .as_ref()
                .map(|x| x.result.tipping_point.clone())
                .unwrap_or_default(),
        },
        estimates: Vec::new(),
        variances: Vec::new(),
    };
    for s in &opts.strategies {
        let (src, k) = match (s, &a, &b) {
            (Strategy::Mar, Some(a), _) => (a, 0),
            (_, _, Some(b)) => match b_strategies.iter().position(|x| x == s) {
                Some(k) => (b, k),
                None => continue,
            },
            _ => continue,
        };
        out.result.strategies.push(src.result.strategies[k].clone());
        out.estimates.push(src.estimates[k].clone());
        out.variances.push(src.variances[k].clone());
    }
    Ok(out)
}

fn approx_bayes_once(
    data: &WideData,
    opts: &CondMeanOptions,
    m_imputations: usize,
    seed: u64,
    progress: &dyn ProgressSink,
) -> Result<MiOutput, MissingError> {
    if m_imputations < 2 {
        return Err(MissingError::Data(format!(
            "approximate Bayesian MI needs at least 2 imputations, got {m_imputations}"
        )));
    }
    if data.arms.len() != 2 || opts.reference >= 2 {
        return Err(MissingError::Data(
            "reference-based imputation compares two arms".into(),
        ));
    }
    let (n, j) = (data.ids.len(), data.waves.len());
    let active = 1 - opts.reference;
    let term = format!("arm{}", data.arms[active]);
    let ice = opts.ice.clone().unwrap_or_else(|| data.ice_last_observed());
    let design = Design::build(&opts.model, data, opts.reference, active)?;
    let formula = opts.model.formula();
    let full = model::fit(&design, data, None, None).map_err(|source| MissingError::Model {
        formula: formula.clone(),
        source,
    })?;
    let by_arm: Vec<Vec<usize>> = (0..2)
        .map(|a| (0..n).filter(|&i| data.arm[i] == a).collect())
        .collect();
    let an = Ancova::new(
        &data.arm.iter().map(|&a| a == active).collect::<Vec<_>>(),
        &data.baseline,
        &term,
    );
    let delta_wave = opts.delta_wave.min(j - 1);
    let shift: Vec<f64> = (0..n)
        .map(|i| {
            let post = ice[i].is_some_and(|t| delta_wave >= t);
            if post {
                opts.multiplier(data.arm[i])
            } else {
                0.0
            }
        })
        .collect();
    // Fixed deltas (score units) of the post-ICE values, added at every grid point.
    let fixed: Option<Vec<f64>> = (0..2).any(|a| opts.fixed(a) != 0.0).then(|| {
        (0..n)
            .map(|i| {
                let post = ice[i].is_some_and(|t| delta_wave >= t);
                if post {
                    opts.fixed(data.arm[i]) * opts.delta_scale
                } else {
                    0.0
                }
            })
            .collect()
    });
    let bar = progress.bar(m_imputations as u64, "multiple imputation (bootstrap fits)");
    let one = |m: usize| -> Result<(Imputation, usize), MissingError> {
        // The bootstrap fit, redrawn when it fails (a wave without data in the sample, a
        // covariance that is not positive definite).
        let mut failed = 0;
        let fit: ModelFit = loop {
            let mut rng = substream(seed, tags::MISSING_BOOTSTRAP, ((m as u64) << 8) | failed);
            let mut who = Vec::with_capacity(n);
            for g in &by_arm {
                for _ in 0..g.len() {
                    who.push(g[rng.random_range(0..g.len())]);
                }
            }
            match model::fit_participants(&design, data, &who, Some(&full.gamma)) {
                Ok(f) => break f,
                Err(e) if failed >= 20 => {
                    return Err(MissingError::Model {
                        formula: formula.clone(),
                        source: e,
                    })
                }
                Err(_) => failed += 1,
            }
        };
        let mut per_strategy = Vec::with_capacity(opts.strategies.len());
        let mut deltas = Vec::new();
        for &s in &opts.strategies {
            let mut rng = substream(
                seed,
                tags::MISSING_DRAW,
                ((m as u64) << 8) | strategy_code(s),
            );
            let mut completed = Vec::with_capacity(n);
            for (i, &t) in ice.iter().enumerate() {
                let own = design.means(&fit.beta, i, j, false);
                let rf = design.means(&fit.beta, i, j, true);
                let mu = strategy_mean(s, &own, &rf, t, data.arm[i] == opts.reference);
                let k = data.y[i].iter().filter(|v| v.is_none()).count();
                let z: Vec<f64> = (0..k).map(|_| StandardNormal.sample(&mut rng)).collect();
                completed.push(conditional_draw(&data.y[i], &mu, &fit.sigma, &z).ok_or_else(
                    || {
                        MissingError::Data(format!(
                            "imputation {m}: the conditional covariance of participant {} is not positive definite",
                            data.ids[i]
                        ))
                    },
                )?);
            }
            let mut waves = Vec::with_capacity(j);
            for w in 0..j {
                let y: Vec<f64> = completed.iter().map(|r| r[w]).collect();
                let f = an.fit(&y).map_err(|message| MissingError::Ancova {
                    wave: data.waves[w].clone(),
                    message,
                })?;
                waves.push((f.estimate, f.se_naive * f.se_naive));
            }
            per_strategy.push(waves);
            let mut grid = Vec::new();
            if opts.delta_strategies.contains(&s) && !opts.deltas.is_empty() {
                let mut y: Vec<f64> = completed.iter().map(|r| r[delta_wave]).collect();
                if let Some(f) = &fixed {
                    for (v, f) in y.iter_mut().zip(f) {
                        *v += f;
                    }
                }
                for &d in &opts.deltas {
                    let ys: Vec<f64> = y
                        .iter()
                        .zip(&shift)
                        .map(|(v, s)| v + d * opts.delta_scale * s)
                        .collect();
                    let f = an.fit(&ys).map_err(|message| MissingError::Ancova {
                        wave: data.waves[delta_wave].clone(),
                        message,
                    })?;
                    grid.push((f.estimate, f.se_naive * f.se_naive));
                }
            }
            deltas.push(grid);
        }
        bar.inc(1);
        Ok(((per_strategy, deltas), failed as usize))
    };
    let runs: Vec<Result<(Imputation, usize), MissingError>> =
        (0..m_imputations).into_par_iter().map(one).collect();
    bar.finish();
    let runs: Vec<(Imputation, usize)> = runs.into_iter().collect::<Result<_, _>>()?;
    let df_com = (n - 3) as f64;
    let level = opts.conf_level;
    let tq = |df: f64| qt(1.0 - (1.0 - level) / 2.0, df);
    let ns = opts.strategies.len();
    let mut estimates = vec![vec![Vec::with_capacity(m_imputations); j]; ns];
    let mut variances = estimates.clone();
    for ((per, _), _) in &runs {
        for si in 0..ns {
            for w in 0..j {
                estimates[si][w].push(per[si][w].0);
                variances[si][w].push(per[si][w].1);
            }
        }
    }
    let pooled_row = |q: &[f64], u: &[f64]| {
        let p = rubin(q, u, df_com);
        let se = p.t.sqrt();
        let h = tq(p.df) * se;
        (p, se, h, p_two_sided_t(p.qbar / se, p.df))
    };
    let strategies = opts
        .strategies
        .iter()
        .enumerate()
        .map(|(si, s)| MiStrategy {
            strategy: s.name().to_string(),
            waves: (0..j)
                .map(|w| {
                    let (p, se, h, pv) = pooled_row(&estimates[si][w], &variances[si][w]);
                    PooledEstimate {
                        wave: data.waves[w].clone(),
                        estimate: p.qbar,
                        std_error: se,
                        df: p.df,
                        conf_low: p.qbar - h,
                        conf_high: p.qbar + h,
                        p_value: pv,
                        ubar: p.ubar,
                        b: p.b,
                        riv: p.riv,
                        lambda: p.lambda,
                        fmi: p.fmi,
                    }
                })
                .collect(),
        })
        .collect();
    let mut tipping = Vec::new();
    if !opts.deltas.is_empty() {
        let alpha = 1.0 - level;
        for s in &opts.delta_strategies {
            let Some(di) = opts.strategies.iter().position(|x| x == s) else {
                return Err(MissingError::Data(format!(
                    "the delta strategy {s} is not among the strategies"
                )));
            };
            let grid: Vec<MiDeltaRow> = opts
                .deltas
                .iter()
                .enumerate()
                .map(|(k, &d)| {
                    let q: Vec<f64> = runs.iter().map(|((_, g), _)| g[di][k].0).collect();
                    let u: Vec<f64> = runs.iter().map(|((_, g), _)| g[di][k].1).collect();
                    let (p, se, h, pv) = pooled_row(&q, &u);
                    MiDeltaRow {
                        delta: d,
                        estimate: p.qbar,
                        std_error: se,
                        df: p.df,
                        conf_low: p.qbar - h,
                        conf_high: p.qbar + h,
                        p_value: pv,
                    }
                })
                .collect();
            let mut note = None;
            let mut tip = None;
            match opts.deltas.iter().position(|d| *d == 0.0) {
                None => note = Some("the delta grid has no zero".to_string()),
                Some(k0) => {
                    let e0 = grid[k0].estimate;
                    let slope = grid.last().map_or(0.0, |g| g.estimate) - grid[0].estimate;
                    let p: Vec<f64> = grid.iter().map(|g| g.p_value).collect();
                    if p[k0].partial_cmp(&alpha) != Some(std::cmp::Ordering::Less) {
                        note = Some(format!(
                            "not significant at delta = 0 (p = {:.4}): no tipping point",
                            p[k0]
                        ));
                    } else if slope == 0.0 {
                        note = Some("delta does not move the estimate".to_string());
                    } else {
                        let dir = if e0 * slope > 0.0 { -1.0 } else { 1.0 };
                        tip = interpolate_tipping(&opts.deltas, &p, k0, alpha, dir);
                        if tip.is_none() {
                            note = Some("significance is not lost within the delta grid".into());
                        }
                    }
                }
            }
            tipping.push(MiTippingPoint {
                strategy: s.name().to_string(),
                wave: data.waves[delta_wave].clone(),
                delta_units: opts.delta_units.clone(),
                delta_scale: opts.delta_scale,
                grid,
                tipping_delta: tip,
                note,
            });
        }
    }
    Ok(MiOutput {
        result: MultipleImputation {
            m: m_imputations,
            seed,
            failed_fits: runs.iter().map(|(_, f)| f).sum(),
            strategies,
            tipping_point: tipping,
        },
        estimates,
        variances,
    })
}
