//! Conditional mean imputation with jackknife inference (Wolbers et al. 2022; rbmi's
//! `method_condmean(type = "jackknife")`), the delta grid and the tipping point.
//!
//! **Jackknife** (rbmi `pool_internal.jackknife`): each participant is left out in turn (all
//! of them, those without follow-up too: leaving them out changes only the ANCOVA), the
//! imputation model is refitted, the data re-imputed and re-analysed. With the full-data
//! estimate `theta` and the leave-one-out estimates `theta_-i`:
//! `SE = sqrt((n - 1) / n sum_i (theta_-i - mean theta_-.)^2)`, CI `theta -/+ z_(1+level)/2 SE`,
//! `z = theta / SE`, `p = 2 Phi(-|z|)` (normal quantiles, no df). The refits run in parallel,
//! each warm-started from the full-data covariance parameters; a participant without any
//! observed follow-up does not change the imputation model, so its fit is the full-data fit.
//!
//! **Delta** (rbmi `apply_delta`): `delta` (score units; times the arm's multiplier, plus the
//! arm's fixed delta, when given) is added to every post-ICE imputed value of the chosen arms, after imputation and before the analysis, in the full data and in
//! every jackknife sample; intermittent imputations are not shifted. Both the estimate and each
//! leave-one-out estimate are linear in delta ([`super::ancova`]), so the whole grid costs one
//! extra regression per sample and the exact tipping point solves a quadratic:
//! `(a + b d)^2 = z^2 (n - 1) / n (S_aa + 2 S_ab d + S_bb d^2)`.
//! The two-dimensional grid (both arms' deltas, `d_act`, `d_ref`) uses the same linearity per
//! arm: `a + b_act d_act + b_ref d_ref`; each reference-arm delta is a one-dimensional grid over
//! the active arm's delta with its exact tipping point (the boundary where significance is
//! lost).
use nalgebra::DMatrix;
use rayon::prelude::*;

use super::ancova::{Ancova, AncovaFit};
use super::impute::{conditional_mean, strategy_mean};
use super::model::{self, Design, ImputationModel, ModelFit, WaveContrast};
use super::{MissingError, Strategy, WideData};
use crate::progress::ProgressSink;
use crate::results::missing::{
    ArmMissing, DeltaRow, MissingCounts, StrategyEstimate, StrategyResult, TippingPoint,
    TippingPoint2d,
};
use crate::stats::distributions::{p_two_sided_normal, qnorm};

/// What to compute.
#[derive(Debug, Clone)]
pub struct CondMeanOptions {
    pub model: ImputationModel,
    pub strategies: Vec<Strategy>,
    /// Index of the reference arm in [`WideData::arms`]; the other arm is the active one.
    pub reference: usize,
    /// The first post-ICE wave of each participant (`None`: no ICE); `None` here: the last
    /// observed wave ([`WideData::ice_last_observed`]).
    pub ice: Option<Vec<Option<usize>>>,
    pub conf_level: f64,
    /// The delta grid in delta units (empty: no tipping-point analysis).
    pub deltas: Vec<f64>,
    /// Score units per delta unit.
    pub delta_scale: f64,
    /// `score` or `sd` (reported).
    pub delta_units: String,
    pub delta_strategies: Vec<Strategy>,
    /// Arms (indices) whose post-ICE imputed values are shifted (by delta each, unless
    /// `delta_multipliers` is given).
    pub delta_arms: Vec<usize>,
    /// Per arm (index), the multiplier of delta (empty: 1 for `delta_arms`, 0 otherwise).
    pub delta_multipliers: Vec<f64>,
    /// Per arm (index), a fixed delta (delta units) added at every grid point (empty: none).
    pub delta_fixed: Vec<f64>,
    /// The two-dimensional grid: per arm (index) its axis of deltas (delta units); `None`: no
    /// two-dimensional grid.
    pub grid2d: Option<Vec<Vec<f64>>>,
    /// The wave of the tipping-point analysis (index into the follow-up waves).
    pub delta_wave: usize,
}

impl Default for CondMeanOptions {
    fn default() -> Self {
        CondMeanOptions {
            model: ImputationModel::default(),
            strategies: Strategy::ALL.to_vec(),
            reference: 0,
            ice: None,
            conf_level: 0.95,
            deltas: Vec::new(),
            delta_scale: 1.0,
            delta_units: "score".into(),
            delta_strategies: vec![Strategy::J2r],
            delta_arms: vec![1],
            delta_multipliers: Vec::new(),
            delta_fixed: Vec::new(),
            grid2d: None,
            delta_wave: usize::MAX,
        }
    }
}

impl CondMeanOptions {
    /// The multiplier of delta for arm `a`.
    pub fn multiplier(&self, a: usize) -> f64 {
        if self.delta_multipliers.is_empty() {
            if self.delta_arms.contains(&a) {
                1.0
            } else {
                0.0
            }
        } else {
            self.delta_multipliers.get(a).copied().unwrap_or(0.0)
        }
    }

    /// The fixed delta of arm `a` (delta units).
    pub fn fixed(&self, a: usize) -> f64 {
        self.delta_fixed.get(a).copied().unwrap_or(0.0)
    }

    fn has_fixed(&self) -> bool {
        self.delta_fixed.iter().any(|f| *f != 0.0)
    }
}

/// Everything the analysis computed.
#[derive(Debug, Clone)]
pub struct CondMeanOutput {
    pub x_names: Vec<String>,
    /// The full-data imputation model.
    pub fit: ModelFit,
    /// The MMRM (MAR) contrast per wave, Satterthwaite df.
    pub mmrm: Vec<WaveContrast>,
    pub term: String,
    pub active: usize,
    pub ice: Vec<Option<usize>>,
    /// `[strategy][participant][wave]`: the marginal imputation means `mu~`.
    pub means: Vec<Vec<Vec<f64>>>,
    /// `[strategy][participant][wave]`: the completed data (observed or conditional mean).
    pub completed: Vec<Vec<Vec<f64>>>,
    /// `[strategy][wave]`: the ANCOVA of the full completed data.
    pub full: Vec<Vec<AncovaFit>>,
    /// `[strategy][wave][participant]`: the leave-one-out estimates.
    pub jackknife_estimates: Vec<Vec<Vec<f64>>>,
    pub results: Vec<StrategyResult>,
    pub tipping: Vec<TippingPoint>,
    /// Two-dimensional tipping-point grids (one per delta strategy when `grid2d` is set).
    pub tipping2d: Vec<TippingPoint2d>,
    pub counts: MissingCounts,
    /// Leave-one-out fits of the imputation model (participants without follow-up reuse the
    /// full-data fit).
    pub refits: usize,
    /// Largest absolute REML gradient over the full-data fit and every refit.
    pub max_abs_gradient: f64,
}

/// One leave-one-out sample's numbers.
struct Sample {
    /// `[strategy][wave]`.
    fits: Vec<Vec<AncovaFit>>,
    /// Per wave: the change of the estimate per score unit of delta.
    shift: Vec<f64>,
    /// Per arm, at the delta wave: the change of the estimate per score unit of a shift of
    /// that arm's post-ICE values alone (fixed deltas and the two-dimensional grid).
    arm_shift: Vec<f64>,
    max_abs_gradient: f64,
    refit: bool,
}

/// Jackknife summary of one quantity.
#[derive(Debug, Clone, Copy)]
struct Jack {
    se: f64,
    lower: f64,
    upper: f64,
    z: f64,
    p: f64,
    mean: f64,
}

fn jack(point: f64, th: &[f64], zq: f64) -> Jack {
    let n = th.len() as f64;
    let mean = th.iter().sum::<f64>() / n;
    let ss: f64 = th.iter().map(|t| (t - mean).powi(2)).sum();
    let se = ((n - 1.0) / n * ss).sqrt();
    let z = point / se;
    Jack {
        se,
        lower: point - zq * se,
        upper: point + zq * se,
        z,
        p: p_two_sided_normal(z),
        mean,
    }
}

/// `(mu~, completed)` per participant of a sample, each J values.
type Completed = (Vec<Vec<f64>>, Vec<Vec<f64>>);

/// Completes the data of the participants `sel` under `strategy` with the fit `fit`.
#[allow(clippy::too_many_arguments)]
fn complete(
    design: &Design,
    data: &WideData,
    fit: &ModelFit,
    strategy: Strategy,
    ice: &[Option<usize>],
    reference: usize,
    sel: &[usize],
) -> Result<Completed, MissingError> {
    let j = data.waves.len();
    let mut means = Vec::with_capacity(sel.len());
    let mut out = Vec::with_capacity(sel.len());
    for &i in sel {
        let own = design.means(&fit.beta, i, j, false);
        let rf = design.means(&fit.beta, i, j, true);
        let m = strategy_mean(strategy, &own, &rf, ice[i], data.arm[i] == reference);
        let c = conditional_mean(&data.y[i], &m, &fit.sigma).ok_or_else(|| {
            MissingError::Data(format!(
                "the covariance of participant {}'s observed waves is not positive definite",
                data.ids[i]
            ))
        })?;
        means.push(m);
        out.push(c);
    }
    Ok((means, out))
}

/// The ANCOVA of every strategy and wave, and the delta shift coefficients, for `sel`.
#[allow(clippy::too_many_arguments)]
fn analyse_sample(
    design: &Design,
    data: &WideData,
    fit: &ModelFit,
    opts: &CondMeanOptions,
    ice: &[Option<usize>],
    active: usize,
    term: &str,
    sel: &[usize],
) -> Result<SampleFits, MissingError> {
    let j = data.waves.len();
    let an = Ancova::new(
        &sel.iter()
            .map(|&i| data.arm[i] == active)
            .collect::<Vec<_>>(),
        &sel.iter().map(|&i| data.baseline[i]).collect::<Vec<_>>(),
        term,
    );
    let wave_err = |w: usize, message: String| MissingError::Ancova {
        wave: data.waves[w].clone(),
        message,
    };
    let mut fits = Vec::with_capacity(opts.strategies.len());
    for &s in &opts.strategies {
        let (_, c) = complete(design, data, fit, s, ice, opts.reference, sel)?;
        let mut per_wave = Vec::with_capacity(j);
        for w in 0..j {
            let y: Vec<f64> = c.iter().map(|row| row[w]).collect();
            per_wave.push(an.fit(&y).map_err(|m| wave_err(w, m))?);
        }
        fits.push(per_wave);
    }
    let mut shift = vec![0.0; j];
    if !opts.deltas.is_empty() {
        for (w, sh) in shift.iter_mut().enumerate() {
            let s: Vec<f64> = sel
                .iter()
                .map(|&i| {
                    let post = ice[i].is_some_and(|t| w >= t);
                    if post {
                        opts.multiplier(data.arm[i])
                    } else {
                        0.0
                    }
                })
                .collect();
            *sh = an.shift_coefficient(&s).map_err(|m| wave_err(w, m))?;
        }
    }
    let mut arm_shift = vec![0.0; data.arms.len()];
    if !opts.deltas.is_empty() && (opts.has_fixed() || opts.grid2d.is_some()) {
        let w = opts.delta_wave.min(j - 1);
        for (a, sh) in arm_shift.iter_mut().enumerate() {
            let s: Vec<f64> = sel
                .iter()
                .map(|&i| {
                    let post = ice[i].is_some_and(|t| w >= t);
                    if post && data.arm[i] == a {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            *sh = an.shift_coefficient(&s).map_err(|m| wave_err(w, m))?;
        }
    }
    Ok((fits, shift, arm_shift))
}

/// `[strategy][wave]` fits, the delta shift per wave, the shift per arm at the delta wave.
type SampleFits = (Vec<Vec<AncovaFit>>, Vec<f64>, Vec<f64>);

fn counts(data: &WideData, ice: &[Option<usize>]) -> MissingCounts {
    let j = data.waves.len();
    let mut by_arm: Vec<ArmMissing> = data
        .arms
        .iter()
        .map(|a| ArmMissing {
            arm: a.clone(),
            observed: vec![0; j],
            ice_at_wave: vec![0; j],
            ..ArmMissing::default()
        })
        .collect();
    let mut c = MissingCounts {
        n: data.ids.len(),
        ..MissingCounts::default()
    };
    for (i, row) in data.y.iter().enumerate() {
        let a = &mut by_arm[data.arm[i]];
        a.n += 1;
        if let Some(t) = ice[i] {
            a.with_ice += 1;
            if let Some(x) = a.ice_at_wave.get_mut(t) {
                *x += 1;
            }
        }
        if row.iter().all(Option::is_none) {
            c.no_followup += 1;
        }
        for (w, v) in row.iter().enumerate() {
            if v.is_some() {
                a.observed[w] += 1;
            } else if ice[i].is_some_and(|t| w >= t) {
                c.post_ice_cells += 1;
            } else {
                c.intermittent_cells += 1;
            }
        }
    }
    c.by_arm = by_arm;
    c
}

/// Conditional mean imputation under each strategy, the per-wave ANCOVA, jackknife inference,
/// and the delta grid with its tipping point.
///
/// With an ICE given in `opts.ice` (a dropout date) values may be observed after it. Those are
/// kept under MAR (rbmi's default for MAR strategies: the imputation model and the analysis
/// use them) and set aside under J2R, CR, CIR and in every delta-adjusted analysis (rbmi,
/// `vignette("stat_specs")`, "Intercurrent events": for non-MAR strategies "data after the ICE
/// are excluded from the imputation model and imputed"). So the analysis runs twice, as rbmi
/// needs two `draws()` calls for the two data sets: MAR (with the MMRM contrasts) on the
/// observed data, the other strategies and the delta grids on the data with the post-ICE
/// values removed (both with their own jackknife). Without observed post-ICE values one run
/// does everything.
pub fn analyse_condmean(
    data: &WideData,
    opts: &CondMeanOptions,
    progress: &dyn ProgressSink,
) -> Result<CondMeanOutput, MissingError> {
    data.check()?;
    let Some(ice) = &opts.ice else {
        return analyse_once(data, opts, progress);
    };
    if ice.len() != data.ids.len() {
        return Err(MissingError::Data(
            "one intercurrent event per participant".into(),
        ));
    }
    let (masked, set_aside) = set_aside_post_ice(data, ice);
    let mut out = if set_aside == 0 {
        analyse_once(data, opts, progress)?
    } else {
        let mar_wanted = opts.strategies.contains(&Strategy::Mar);
        let runs = IceRuns::of(opts);
        let mut a = analyse_once(data, &runs.observed, progress)?;
        match &runs.masked {
            None => {
                a.results.retain(|_| mar_wanted);
                a
            }
            Some(opts_b) => {
                let b = analyse_once(&masked, opts_b, progress)?;
                merge(opts, a, b, &opts_b.strategies)
            }
        }
    };
    out.counts = counts(data, ice);
    out.counts.post_ice_observed = Some(set_aside);
    for (k, arm) in out.counts.by_arm.iter_mut().enumerate() {
        let mut n = 0;
        for (i, row) in data.y.iter().enumerate() {
            if data.arm[i] == k {
                if let Some(t) = ice[i] {
                    n += row.iter().skip(t).filter(|v| v.is_some()).count();
                }
            }
        }
        arm.post_ice_observed = Some(n);
    }
    out.ice = ice.clone();
    Ok(out)
}

/// The two runs of an analysis whose data hold values observed after an ICE (the rule of
/// [`analyse_condmean`]): MAR on the observed data, without delta grids; and, unless empty,
/// the strategies that set the post-ICE values aside (every strategy but MAR, and MAR too when
/// it has a delta grid) on the data without them. Shared with the approximate Bayesian MI.
pub struct IceRuns {
    pub observed: CondMeanOptions,
    pub masked: Option<CondMeanOptions>,
}

impl IceRuns {
    pub fn of(opts: &CondMeanOptions) -> IceRuns {
        let masked_strategies: Vec<Strategy> = opts
            .strategies
            .iter()
            .copied()
            .filter(|s| *s != Strategy::Mar || opts.delta_strategies.contains(s))
            .collect();
        IceRuns {
            observed: CondMeanOptions {
                strategies: vec![Strategy::Mar],
                deltas: Vec::new(),
                delta_strategies: Vec::new(),
                grid2d: None,
                ..opts.clone()
            },
            masked: (!masked_strategies.is_empty()).then(|| CondMeanOptions {
                strategies: masked_strategies,
                ..opts.clone()
            }),
        }
    }
}

/// The data with every value at or after the participant's ICE removed, and how many
/// observed values that removed.
pub fn set_aside_post_ice(data: &WideData, ice: &[Option<usize>]) -> (WideData, usize) {
    let mut masked = data.clone();
    let mut k = 0;
    for (row, t) in masked.y.iter_mut().zip(ice) {
        if let Some(t) = t {
            for v in row.iter_mut().skip(*t) {
                if v.take().is_some() {
                    k += 1;
                }
            }
        }
    }
    (masked, k)
}

/// The MAR run `a` (observed data) and the run `b` of `b_strategies` (post-ICE values set
/// aside) as one output: strategies in `opts` order, MAR from `a`, the delta grids from `b`,
/// the imputation model, MMRM contrasts and completed data of MAR from `a`.
fn merge(
    opts: &CondMeanOptions,
    a: CondMeanOutput,
    b: CondMeanOutput,
    b_strategies: &[Strategy],
) -> CondMeanOutput {
    let mut out = CondMeanOutput {
        means: Vec::new(),
        completed: Vec::new(),
        full: Vec::new(),
        jackknife_estimates: Vec::new(),
        results: Vec::new(),
        tipping: b.tipping.clone(),
        tipping2d: b.tipping2d.clone(),
        refits: a.refits + b.refits,
        max_abs_gradient: a.max_abs_gradient.max(b.max_abs_gradient),
        ..a.clone()
    };
    for s in &opts.strategies {
        let (src, k) = if *s == Strategy::Mar {
            (&a, 0)
        } else {
            let Some(k) = b_strategies.iter().position(|x| x == s) else {
                continue;
            };
            (&b, k)
        };
        out.means.push(src.means[k].clone());
        out.completed.push(src.completed[k].clone());
        out.full.push(src.full[k].clone());
        out.jackknife_estimates
            .push(src.jackknife_estimates[k].clone());
        out.results.push(src.results[k].clone());
    }
    out
}

fn analyse_once(
    data: &WideData,
    opts: &CondMeanOptions,
    progress: &dyn ProgressSink,
) -> Result<CondMeanOutput, MissingError> {
    data.check()?;
    let (n, j) = (data.ids.len(), data.waves.len());
    if data.arms.len() != 2 {
        return Err(MissingError::Data(format!(
            "reference-based imputation compares two arms; the data have {} ({})",
            data.arms.len(),
            data.arms.join(", ")
        )));
    }
    if opts.reference >= 2 {
        return Err(MissingError::Data("reference arm out of range".into()));
    }
    if !(opts.conf_level > 0.0 && opts.conf_level < 1.0) {
        return Err(MissingError::Data(format!(
            "conf_level must lie in (0, 1), found {}",
            opts.conf_level
        )));
    }
    let active = 1 - opts.reference;
    let term = format!("arm{}", data.arms[active]);
    let ice = match &opts.ice {
        Some(v) => {
            if v.len() != n {
                return Err(MissingError::Data(
                    "one intercurrent event per participant".into(),
                ));
            }
            v.clone()
        }
        None => data.ice_last_observed(),
    };
    for (w, name) in data.waves.iter().enumerate() {
        let obs = data.y.iter().filter(|r| r[w].is_some()).count();
        if obs < 2 {
            return Err(MissingError::Data(format!(
                "wave {name} has {obs} observed value(s): the covariance of the waves cannot be estimated"
            )));
        }
    }
    let delta_wave = opts.delta_wave.min(j - 1);
    let design = Design::build(&opts.model, data, opts.reference, active)?;
    let formula = opts.model.formula();
    let full = model::fit(&design, data, None, None).map_err(|source| MissingError::Model {
        formula: formula.clone(),
        source,
    })?;
    let mmrm = model::mmrm_contrasts(&opts.model, &design, data, &full, opts.conf_level)?;
    let all: Vec<usize> = (0..n).collect();
    let (full_fits, full_shift, full_arm_shift) =
        analyse_sample(&design, data, &full, opts, &ice, active, &term, &all)?;
    let mut means = Vec::new();
    let mut completed = Vec::new();
    for &s in &opts.strategies {
        let (m, c) = complete(&design, data, &full, s, &ice, opts.reference, &all)?;
        means.push(m);
        completed.push(c);
    }

    let bar = progress.bar(n as u64, "jackknife (leave-one-out refits)");
    let samples: Vec<Result<Sample, MissingError>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let has_data = data.y[i].iter().any(Option::is_some);
            let fit_i = if has_data {
                model::fit(&design, data, Some(i), Some(&full.gamma)).map_err(|source| {
                    MissingError::Jackknife {
                        formula: formula.clone(),
                        participant: data.ids[i].clone(),
                        source,
                    }
                })?
            } else {
                full.clone()
            };
            let sel: Vec<usize> = (0..n).filter(|&k| k != i).collect();
            let (fits, shift, arm_shift) =
                analyse_sample(&design, data, &fit_i, opts, &ice, active, &term, &sel)?;
            bar.inc(1);
            Ok(Sample {
                fits,
                shift,
                arm_shift,
                max_abs_gradient: fit_i.max_abs_gradient,
                refit: has_data,
            })
        })
        .collect();
    bar.finish();
    let samples: Vec<Sample> = samples.into_iter().collect::<Result<_, _>>()?;
    let zq = qnorm(1.0 - (1.0 - opts.conf_level) / 2.0);
    let ns = opts.strategies.len();
    let mut jk = vec![vec![vec![0.0; n]; j]; ns];
    let mut results = Vec::with_capacity(ns);
    for (si, s) in opts.strategies.iter().enumerate() {
        let mut waves = Vec::with_capacity(j);
        for w in 0..j {
            let f = full_fits[si][w];
            let th: Vec<f64> = samples.iter().map(|x| x.fits[si][w].estimate).collect();
            let rf: Vec<f64> = samples
                .iter()
                .map(|x| x.fits[si][w].lsm_reference)
                .collect();
            let al: Vec<f64> = samples.iter().map(|x| x.fits[si][w].lsm_active).collect();
            let jt = jack(f.estimate, &th, zq);
            waves.push(StrategyEstimate {
                wave: data.waves[w].clone(),
                estimate: f.estimate,
                std_error: jt.se,
                conf_low: jt.lower,
                conf_high: jt.upper,
                statistic: jt.z,
                p_value: jt.p,
                jackknife_mean: jt.mean,
                std_error_naive: f.se_naive,
                lsm_reference: f.lsm_reference,
                lsm_reference_se: jack(f.lsm_reference, &rf, zq).se,
                lsm_active: f.lsm_active,
                lsm_active_se: jack(f.lsm_active, &al, zq).se,
            });
            jk[si][w] = th;
        }
        results.push(StrategyResult {
            strategy: s.name().to_string(),
            waves,
        });
    }

    let mut tipping = Vec::new();
    let mut tipping2d = Vec::new();
    if !opts.deltas.is_empty() {
        let sc = opts.delta_scale;
        // The fixed deltas' contribution to the estimate and to every leave-one-out estimate.
        let offset = |arm_shift: &[f64]| -> f64 {
            if !opts.has_fixed() {
                return 0.0;
            }
            arm_shift
                .iter()
                .enumerate()
                .map(|(k, b)| opts.fixed(k) * sc * b)
                .sum()
        };
        for &s in &opts.delta_strategies {
            let Some(si) = opts.strategies.iter().position(|x| *x == s) else {
                return Err(MissingError::Data(format!(
                    "the delta strategy {s} is not among the strategies"
                )));
            };
            let a0 = full_fits[si][delta_wave].estimate;
            let ai0: Vec<f64> = samples
                .iter()
                .map(|x| x.fits[si][delta_wave].estimate)
                .collect();
            if let Some(axes) = &opts.grid2d {
                tipping2d.push(tipping_2d(
                    s,
                    &data.waves[delta_wave],
                    opts,
                    data,
                    axes,
                    (a0, &full_arm_shift),
                    (&ai0, &samples),
                    zq,
                ));
                continue;
            }
            let a = if opts.has_fixed() {
                a0 + offset(&full_arm_shift)
            } else {
                a0
            };
            let b = full_shift[delta_wave] * sc;
            let ai: Vec<f64> = if opts.has_fixed() {
                ai0.iter()
                    .zip(&samples)
                    .map(|(x, smp)| x + offset(&smp.arm_shift))
                    .collect()
            } else {
                ai0
            };
            let bi: Vec<f64> = samples.iter().map(|x| x.shift[delta_wave] * sc).collect();
            tipping.push(tipping_point(
                s,
                &data.waves[delta_wave],
                opts,
                data,
                (a, b),
                (&ai, &bi),
                zq,
            ));
        }
    }
    let max_abs_gradient = samples
        .iter()
        .map(|s| s.max_abs_gradient)
        .fold(full.max_abs_gradient, f64::max);
    Ok(CondMeanOutput {
        x_names: design.x_names.clone(),
        mmrm,
        term,
        active,
        counts: counts(data, &ice),
        ice,
        means,
        completed,
        full: full_fits,
        jackknife_estimates: jk,
        results,
        tipping,
        tipping2d,
        refits: samples.iter().filter(|s| s.refit).count(),
        max_abs_gradient,
        fit: full,
    })
}

/// The delta grid and tipping point of one strategy: the estimate is `a + b d`, the
/// leave-one-out estimates `a_i + b_i d` (`d` in delta units, `b` already per delta unit).
fn tipping_point(
    s: Strategy,
    wave: &str,
    opts: &CondMeanOptions,
    data: &WideData,
    (a, b): (f64, f64),
    (ai, bi): (&[f64], &[f64]),
    zq: f64,
) -> TippingPoint {
    let alpha = 1.0 - opts.conf_level;
    let grid: Vec<DeltaRow> = opts
        .deltas
        .iter()
        .map(|&d| {
            let th: Vec<f64> = ai.iter().zip(bi).map(|(x, y)| x + y * d).collect();
            let e = a + b * d;
            let jt = jack(e, &th, zq);
            DeltaRow {
                delta: d,
                delta_score: d * opts.delta_scale,
                estimate: e,
                std_error: jt.se,
                conf_low: jt.lower,
                conf_high: jt.upper,
                p_value: jt.p,
            }
        })
        .collect();
    let mut tp = TippingPoint {
        strategy: s.name().to_string(),
        wave: wave.to_string(),
        delta_units: opts.delta_units.clone(),
        delta_scale: opts.delta_scale,
        delta_arms: (0..data.arms.len())
            .filter(|&k| opts.multiplier(k) != 0.0)
            .filter_map(|k| data.arms.get(k).cloned())
            .collect(),
        delta_multipliers: (!opts.delta_multipliers.is_empty()).then(|| {
            (0..data.arms.len())
                .filter(|&k| opts.multiplier(k) != 0.0)
                .map(|k| (data.arms[k].clone(), opts.multiplier(k)))
                .collect()
        }),
        fixed: opts.has_fixed().then(|| {
            (0..data.arms.len())
                .filter(|&k| opts.fixed(k) != 0.0)
                .map(|k| (data.arms[k].clone(), opts.fixed(k)))
                .collect()
        }),
        grid,
        tipping_delta: None,
        tipping_delta_exact: None,
        note: None,
    };
    let Some(k0) = opts.deltas.iter().position(|d| *d == 0.0) else {
        tp.note = Some("the delta grid has no zero".into());
        return tp;
    };
    let p0 = tp.grid[k0].p_value;
    if p0.partial_cmp(&alpha) != Some(std::cmp::Ordering::Less) {
        tp.note = Some(format!(
            "not significant at delta = 0 (p = {p0:.4}): no tipping point"
        ));
        return tp;
    }
    if b == 0.0 {
        tp.note = Some("delta does not move the estimate (no shifted values)".into());
        return tp;
    }
    // The direction of delta that moves the estimate towards zero.
    let dir = if a * b > 0.0 { -1.0 } else { 1.0 };
    let p: Vec<f64> = tp.grid.iter().map(|r| r.p_value).collect();
    tp.tipping_delta = interpolate_tipping(&opts.deltas, &p, k0, alpha, dir);
    // Exact: (a + b d)^2 = z^2 (n - 1) / n (S_aa + 2 S_ab d + S_bb d^2).
    let n = ai.len() as f64;
    let (ma, mb) = (ai.iter().sum::<f64>() / n, bi.iter().sum::<f64>() / n);
    let (mut saa, mut sab, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ai.iter().zip(bi) {
        saa += (x - ma) * (x - ma);
        sab += (x - ma) * (y - mb);
        sbb += (y - mb) * (y - mb);
    }
    let kk = zq * zq * (n - 1.0) / n;
    let (c2, c1, c0) = (b * b - kk * sbb, 2.0 * (a * b - kk * sab), a * a - kk * saa);
    let roots: Vec<f64> = if c2.abs() <= 1e-14 * (b * b).max(kk * sbb) {
        if c1 != 0.0 {
            vec![-c0 / c1]
        } else {
            Vec::new()
        }
    } else {
        let disc = c1 * c1 - 4.0 * c2 * c0;
        if disc < 0.0 {
            Vec::new()
        } else {
            // Numerically stable pair of roots.
            let q = -0.5 * (c1 + c1.signum() * disc.sqrt());
            let mut r = vec![q / c2];
            if q != 0.0 {
                r.push(c0 / q);
            }
            r
        }
    };
    tp.tipping_delta_exact = roots
        .into_iter()
        .filter(|r| r.is_finite() && r * dir > 0.0)
        .min_by(|x, y| x.abs().total_cmp(&y.abs()));
    if tp.tipping_delta.is_none() {
        tp.note = Some("significance is not lost within the delta grid".into());
    }
    tp
}

/// The two-dimensional grid of one strategy (arm k's post-ICE values shifted by `d_k`): the
/// estimate is `a + s (b_act d_act + b_ref d_ref)` and each leave-one-out estimate likewise
/// (`s` score units per delta unit). Each column (one reference-arm delta) is a one-dimensional
/// grid over the active arm's delta with the reference arm's delta fixed, with its tipping point:
/// together the boundary where significance is lost.
#[allow(clippy::too_many_arguments)]
fn tipping_2d(
    s: Strategy,
    wave: &str,
    opts: &CondMeanOptions,
    data: &WideData,
    axes: &[Vec<f64>],
    (a, arm_shift): (f64, &[f64]),
    (ai, samples): (&[f64], &[Sample]),
    zq: f64,
) -> TippingPoint2d {
    let active = 1 - opts.reference;
    let reference = opts.reference;
    let sc = opts.delta_scale;
    let row_axis = axes.get(active).cloned().unwrap_or_default();
    let col_axis = axes.get(reference).cloned().unwrap_or_default();
    let mut o = opts.clone();
    o.deltas = row_axis.clone();
    o.delta_arms = vec![active];
    o.delta_multipliers = Vec::new();
    o.grid2d = None;
    let columns = col_axis
        .iter()
        .map(|&dr| {
            let mut fixed = vec![0.0; data.arms.len()];
            fixed[reference] = dr;
            o.delta_fixed = fixed;
            let ac = a + dr * sc * arm_shift[reference];
            let b = arm_shift[active] * sc;
            let aic: Vec<f64> = ai
                .iter()
                .zip(samples)
                .map(|(x, smp)| x + dr * sc * smp.arm_shift[reference])
                .collect();
            let bi: Vec<f64> = samples
                .iter()
                .map(|smp| smp.arm_shift[active] * sc)
                .collect();
            let mut tp = tipping_point(s, wave, &o, data, (ac, b), (&aic, &bi), zq);
            if dr == 0.0 {
                tp.fixed = Some(std::iter::once((data.arms[reference].clone(), 0.0)).collect());
            }
            tp
        })
        .collect();
    TippingPoint2d {
        strategy: s.name().to_string(),
        wave: wave.to_string(),
        delta_units: opts.delta_units.clone(),
        delta_scale: sc,
        row_arm: data.arms[active].clone(),
        column_arm: data.arms[reference].clone(),
        row_deltas: row_axis,
        column_deltas: col_axis,
        columns,
    }
}

/// Going from `dl[k0]` (delta = 0) in direction `dir` (-1 or 1), the first grid interval where
/// `p` crosses `alpha`, by linear interpolation in p (as `tests/r/missing_reference.R`'s `tip`).
pub(crate) fn interpolate_tipping(
    dl: &[f64],
    p: &[f64],
    k0: usize,
    alpha: f64,
    dir: f64,
) -> Option<f64> {
    let mut k = k0;
    loop {
        let kn = if dir < 0.0 {
            k.checked_sub(1)?
        } else {
            Some(k + 1).filter(|&x| x < dl.len().min(p.len()))?
        };
        if (p[k] - alpha) * (p[kn] - alpha) <= 0.0 && p[k] != p[kn] {
            return Some(dl[k] + (alpha - p[k]) * (dl[kn] - dl[k]) / (p[kn] - p[k]));
        }
        k = kn;
    }
}

/// The J x J covariance as rows (for records).
pub fn matrix_rows(m: &DMatrix<f64>) -> Vec<Vec<f64>> {
    (0..m.nrows())
        .map(|i| (0..m.ncols()).map(|k| m[(i, k)]).collect())
        .collect()
}
