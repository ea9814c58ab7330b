//! Multi-wave within-person mediation: person-mean centring (Zhang, Zyphur & Preacher 2009,
//! Organ Res Methods 12: "CWC(M)" with the person mean as level-2 predictor), one
//! random-intercept model per path, fitted by REML as `lmerTest::lmer`:
//!
//! * path a_k: `Mk ~ X_w + X_b + wave + (1 | participant_id)`,
//! * paths b_k and c': `Y ~ X_w + M1_w + .. + X_b + M1_b + .. + wave + (1 | participant_id)`,
//! * total c: `Y ~ X_w + X_b + wave + (1 | participant_id)`,
//!
//! where `v_b` is the mean of v over the participant's waves with v observed (on the full
//! participant x wave grid, before any row is dropped) and `v_w = v - v_b`. Each model uses
//! the rows with its own variables observed. The within-person indirect effect is `a_k b_k`
//! with a Sobel SE, a Monte Carlo interval (Preacher & Selig 2012) and a participant-bootstrap
//! percentile interval whose refits start from the full-data theta. Between-person paths
//! (the `_b` coefficients) are reported apart.
#![allow(clippy::needless_range_loop)] // index loops over paired matrix/vector entries
use crate::frame::Frame;
use crate::lmm::{fit_formula, DfMethod, LmmFit, LmmOptions};
use crate::progress::Progress;
use crate::results::{MediationResult, PathRow};

use super::indirect;
use super::ri::{RiDesign, RiFit};
use super::spec::MediationSpec;
use super::{effect_names, path_name, proportion_mediated, sd, MediationError, Panel};

use crate::stats::rng::tags;

const ANALYSIS: &str = "within_person";

/// Person-mean centred variables on the participant x wave grid.
#[derive(Debug, Clone)]
pub struct Centred {
    /// Variable names: X, the mediators, Y.
    pub names: Vec<String>,
    /// Raw values per variable (grid order: participant-major, waves within).
    pub raw: Vec<Vec<Option<f64>>>,
    /// Within-person deviations `v - v_b` (missing where v is missing).
    pub within: Vec<Vec<Option<f64>>>,
    /// Person means `v_b`, repeated on each of the participant's rows (missing when the
    /// participant has no observed v).
    pub between: Vec<Vec<Option<f64>>>,
    pub n_participants: usize,
    pub waves: Vec<String>,
    pub ids: Vec<String>,
}

/// Person-mean centring of `names` on the panel grid.
pub(crate) fn centre(panel: &Panel, names: &[String]) -> Result<Centred, MediationError> {
    let nw = panel.waves.len();
    let np = panel.n();
    let mut raw = Vec::new();
    let mut within = Vec::new();
    let mut between = Vec::new();
    for name in names {
        let v = panel.score(name, ANALYSIS)?.to_vec();
        let mut w = vec![None; np * nw];
        let mut b = vec![None; np * nw];
        for p in 0..np {
            let obs: Vec<f64> = (0..nw).filter_map(|t| v[p * nw + t]).collect();
            if obs.is_empty() {
                continue;
            }
            let mean = obs.iter().sum::<f64>() / obs.len() as f64;
            for t in 0..nw {
                b[p * nw + t] = Some(mean);
                w[p * nw + t] = v[p * nw + t].map(|x| x - mean);
            }
        }
        raw.push(v);
        within.push(w);
        between.push(b);
    }
    Ok(Centred {
        names: names.to_vec(),
        raw,
        within,
        between,
        n_participants: np,
        waves: panel.waves.clone(),
        ids: panel.ids.clone(),
    })
}

/// The model formulas: a_k per mediator, then b, then c.
pub fn formulas(x: &str, mediators: &[String], y: &str) -> (Vec<String>, String, String) {
    let a = mediators
        .iter()
        .map(|m| format!("{m} ~ {x}_w + {x}_b + wave + (1 | participant_id)"))
        .collect();
    let mw: Vec<String> = mediators.iter().map(|m| format!(" + {m}_w")).collect();
    let mb: Vec<String> = mediators.iter().map(|m| format!(" + {m}_b")).collect();
    let b = format!(
        "{y} ~ {x}_w{} + {x}_b{} + wave + (1 | participant_id)",
        mw.concat(),
        mb.concat()
    );
    let c = format!("{y} ~ {x}_w + {x}_b + wave + (1 | participant_id)");
    (a, b, c)
}

/// The model frame for the participants `idx` (each one a new participant, so a participant
/// drawn twice counts as two).
fn build_frame(c: &Centred, idx: &[usize], numeric_ids: bool) -> Result<Frame, MediationError> {
    let nw = c.waves.len();
    let n = idx.len() * nw;
    let ferr = |source| MediationError::Frame {
        analysis: ANALYSIS.into(),
        source,
    };
    let mut f = Frame::new();
    if numeric_ids {
        let ids: Vec<Option<f64>> = (0..idx.len())
            .flat_map(|k| std::iter::repeat_n(Some(k as f64), nw))
            .collect();
        f.push_numeric("participant_id", ids).map_err(ferr)?;
    } else {
        let ids: Vec<Option<String>> = idx
            .iter()
            .flat_map(|&p| std::iter::repeat_n(c.ids.get(p).cloned(), nw))
            .collect();
        f.push_factor("participant_id", ids, None).map_err(ferr)?;
    }
    let waves: Vec<Option<String>> = (0..n).map(|r| c.waves.get(r % nw).cloned()).collect();
    f.push_factor("wave", waves, Some(c.waves.clone()))
        .map_err(ferr)?;
    let pick = |col: &Vec<Option<f64>>| -> Vec<Option<f64>> {
        idx.iter()
            .flat_map(|&p| (0..nw).map(move |t| col.get(p * nw + t).copied().flatten()))
            .collect()
    };
    for (j, name) in c.names.iter().enumerate() {
        // X's raw value is never modelled; the mediators and Y are outcomes.
        if j > 0 {
            f.push_numeric(name, pick(&c.raw[j])).map_err(ferr)?;
        }
        f.push_numeric(&format!("{name}_w"), pick(&c.within[j]))
            .map_err(ferr)?;
        f.push_numeric(&format!("{name}_b"), pick(&c.between[j]))
            .map_err(ferr)?;
    }
    Ok(f)
}

fn coef(fit: &LmmFit, term: &str) -> Option<usize> {
    fit.fixef_names().iter().position(|n| n == term)
}

/// Everything the within-person analysis computed.
pub struct WithinOutput {
    pub result: MediationResult,
    /// The fits: `a1`.. per mediator, then `b`, then `c` (with their formulas).
    pub fits: Vec<(String, LmmFit)>,
    /// Sobel p per effect.
    pub sobel_p: Vec<f64>,
    /// Bootstrap replicates of the effects (resample order; `None` = refit failed).
    pub bootstrap: Vec<Option<Vec<f64>>>,
    /// The bootstrap refitting machinery (for further resamples or checks).
    pub bootstrapper: WithinBootstrap,
}

/// Runs the within-person analysis.
pub fn run(
    panel: &Panel,
    spec: &MediationSpec,
    seed: u64,
    progress: &Progress,
) -> Result<WithinOutput, MediationError> {
    if panel.waves.len() < 2 {
        return Err(MediationError::Data {
            analysis: ANALYSIS.into(),
            message: "within-person mediation needs at least two waves".into(),
        });
    }
    let k = spec.mediators.len();
    let mut names = vec![spec.x.clone()];
    names.extend(spec.mediators.iter().cloned());
    names.push(spec.y.clone());
    let cen = centre(panel, &names)?;
    let fits = fit_path_models(&cen, spec)?;
    let (sd_w, sd_b) = level_sds(&cen);
    let tables = path_tables(&fits, spec, &sd_w, &sd_b)?;
    let pe = PointIndirect::new(&tables, &fits[k].1, k);
    let mc = if spec.monte_carlo_draws > 0 {
        indirect::monte_carlo(
            &pe.a,
            &pe.se_a,
            &pe.b,
            &pe.vcov_b,
            spec.monte_carlo_draws,
            seed,
            tags::WITHIN_MC,
        )
    } else {
        Vec::new()
    };
    // Participant bootstrap: the path models' designs are built once; each resample sums
    // participant blocks and refits theta from the full-data value (see [`super::ri`]).
    let n_participants = cen.n_participants;
    let boot = WithinBootstrap::new(cen, spec, &fits)?;
    let reps = indirect::bootstrap(
        boot.n_participants(),
        spec.within_bootstrap_resamples,
        seed,
        tags::WITHIN_BOOT,
        progress,
        |idx| boot.replicate(idx),
    );
    let failed = reps.iter().filter(|r| r.is_none()).count();
    let (indirect_rows, sobel_p) = indirect::indirect_rows(
        &effect_names(k),
        &pe.ind,
        &pe.std_ind,
        &pe.sobel,
        (spec.within_bootstrap_resamples > 0).then_some(&reps[..]),
        &mc,
        spec.conf_level,
    );
    let mut warnings = fit_warnings(&fits, failed, spec.within_bootstrap_resamples);
    let total_ind = pe.ind.last().copied().unwrap_or(f64::NAN);
    let (c, se_c, _) = tables.get("c");
    let cp = tables.get("c_prime").0;
    let (prop, warn) = proportion_mediated(total_ind, cp, c, se_c, spec.proportion_min_z);
    warnings.extend(warn);
    // Participants used: those with at least one row in the b model.
    let n_used = fits
        .get(k)
        .map(|(_, f)| f.n_groups().first().map_or(0, |g| g.1))
        .unwrap_or(0);
    let result = MediationResult {
        analysis: ANALYSIS.into(),
        x: spec.x.clone(),
        mediators: spec.mediators.clone(),
        y: spec.y.clone(),
        n_used: n_used as u64,
        n_excluded: n_participants.saturating_sub(n_used) as u64,
        paths: tables.paths,
        between_paths: tables.between_paths,
        indirect: indirect_rows,
        proportion_mediated: prop,
        bootstrap_resamples: (spec.within_bootstrap_resamples > 0)
            .then_some(spec.within_bootstrap_resamples as u64),
        monte_carlo_draws: (spec.monte_carlo_draws > 0).then_some(spec.monte_carlo_draws as u64),
        warnings,
    };
    Ok(WithinOutput {
        result,
        fits,
        sobel_p,
        bootstrap: reps,
        bootstrapper: boot,
    })
}

/// The path models on the centred data, in the order of [`formulas`]: the a models (one per
/// mediator), the b model (Y on X and every mediator) and the c model (Y on X).
fn fit_path_models(
    cen: &Centred,
    spec: &MediationSpec,
) -> Result<Vec<(String, LmmFit)>, MediationError> {
    let all: Vec<usize> = (0..cen.n_participants).collect();
    let frame = build_frame(cen, &all, false)?;
    let (fa, fb, fc) = formulas(&spec.x, &spec.mediators, &spec.y);
    let mut formulas_all: Vec<String> = fa;
    formulas_all.push(fb);
    formulas_all.push(fc);
    let opts = LmmOptions::default();
    formulas_all
        .into_iter()
        .map(|f| {
            let fit = fit_formula(&f, &frame, &opts).map_err(|source| MediationError::Lmm {
                analysis: ANALYSIS.into(),
                formula: f.clone(),
                source,
            })?;
            Ok((f, fit))
        })
        .collect()
}

/// Within-person and between-person SDs of every variable (X, mediators, Y), for the
/// standardized paths.
fn level_sds(cen: &Centred) -> (Vec<f64>, Vec<f64>) {
    let sd_w: Vec<f64> = cen
        .within
        .iter()
        .map(|v| sd(&v.iter().map(|x| x.unwrap_or(f64::NAN)).collect::<Vec<_>>()))
        .collect();
    let sd_b: Vec<f64> = cen
        .between
        .iter()
        .map(|v| {
            // one value per participant
            let nw = cen.waves.len();
            sd(&(0..cen.n_participants)
                .map(|p| v.get(p * nw).copied().flatten().unwrap_or(f64::NAN))
                .collect::<Vec<_>>())
        })
        .collect();
    (sd_w, sd_b)
}

/// The within- and between-person path rows, and per path its within estimate, SE and
/// coefficient index.
struct PathTables {
    paths: Vec<PathRow>,
    between_paths: Vec<PathRow>,
    within: std::collections::HashMap<String, (f64, f64, usize)>,
}

impl PathTables {
    /// Estimate, SE and coefficient index of a within path (NaN when absent).
    fn get(&self, path: &str) -> (f64, f64, usize) {
        self.within
            .get(path)
            .copied()
            .unwrap_or((f64::NAN, f64::NAN, 0))
    }

    /// The standardized estimate of a within path.
    fn std_of(&self, path: &str) -> f64 {
        self.paths
            .iter()
            .find(|r| r.path == path)
            .and_then(|r| r.std_estimate)
            .unwrap_or(f64::NAN)
    }
}

/// The a, b, c' and c paths (lmerTest's Satterthwaite tables of the path models), each at
/// the within and the between level, standardized by the SDs of the same level.
fn path_tables(
    fits: &[(String, LmmFit)],
    spec: &MediationSpec,
    sd_w: &[f64],
    sd_b: &[f64],
) -> Result<PathTables, MediationError> {
    let k = spec.mediators.len();
    let xw = format!("{}_w", spec.x);
    let xb = format!("{}_b", spec.x);
    // (path, model index, within term, between term)
    let mut wanted: Vec<(String, usize, String, String)> = Vec::new();
    for j in 0..k {
        wanted.push((path_name("a", j, k), j, xw.clone(), xb.clone()));
    }
    for (j, m) in spec.mediators.iter().enumerate() {
        wanted.push((path_name("b", j, k), k, format!("{m}_w"), format!("{m}_b")));
    }
    wanted.push(("c_prime".into(), k, xw.clone(), xb.clone()));
    wanted.push(("c".into(), k + 1, xw.clone(), xb.clone()));
    let mut tables = Vec::new();
    for (_, fit) in fits {
        tables.push(fit.coef_table(DfMethod::Satterthwaite).map_err(|source| {
            MediationError::Lmm {
                analysis: ANALYSIS.into(),
                formula: fit_formula_text(fit),
                source,
            }
        })?);
    }
    let mut out = PathTables {
        paths: Vec::new(),
        between_paths: Vec::new(),
        within: std::collections::HashMap::new(),
    };
    for (path, mi, wt, bt) in &wanted {
        let (_, fit) = &fits[*mi];
        // standardization ratio: sd(predictor) / sd(outcome) of the same level
        let (pred, outv) = std_roles(path, k);
        for (term, dest, sds) in [
            (wt, &mut out.paths, sd_w),
            (bt, &mut out.between_paths, sd_b),
        ] {
            let i = coef(fit, term).ok_or_else(|| MediationError::Data {
                analysis: ANALYSIS.into(),
                message: format!(
                    "term `{term}` was dropped from `{}` (aliased?)",
                    fits[*mi].0
                ),
            })?;
            let r = &tables[*mi][i];
            let ratio = sds.get(pred).copied().unwrap_or(f64::NAN)
                / sds.get(outv).copied().unwrap_or(f64::NAN);
            dest.push(PathRow {
                path: path.clone(),
                estimate: r.estimate,
                std_error: r.std_error,
                std_estimate: Some(r.estimate * ratio),
                df: Some(r.df),
                p_value: Some(r.p_value),
                conf_low: Some(r.conf_low),
                conf_high: Some(r.conf_high),
            });
        }
        let i = coef(fit, wt).unwrap_or(0);
        out.within.insert(
            path.clone(),
            (fit.beta[i], fit.vcov[(i, i)].max(0.0).sqrt(), i),
        );
    }
    Ok(out)
}

/// The point estimates of the indirect effects `a_j b_j` (and their sum when `k > 1`), the
/// standardized ones and the Sobel SEs, with the a and b paths they come from.
struct PointIndirect {
    a: Vec<f64>,
    se_a: Vec<f64>,
    b: Vec<f64>,
    /// Covariance of the b paths in the b model, `k x k` row-major.
    vcov_b: Vec<f64>,
    ind: Vec<f64>,
    std_ind: Vec<f64>,
    sobel: Vec<f64>,
}

impl PointIndirect {
    fn new(t: &PathTables, bfit: &LmmFit, k: usize) -> PointIndirect {
        let a: Vec<f64> = (0..k).map(|j| t.get(&path_name("a", j, k)).0).collect();
        let se_a: Vec<f64> = (0..k).map(|j| t.get(&path_name("a", j, k)).1).collect();
        let b: Vec<f64> = (0..k).map(|j| t.get(&path_name("b", j, k)).0).collect();
        let bi: Vec<usize> = (0..k).map(|j| t.get(&path_name("b", j, k)).2).collect();
        let mut vcov_b = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                vcov_b[i * k + j] = bfit.vcov[(bi[i], bi[j])];
            }
        }
        let mut ind: Vec<f64> = (0..k).map(|j| a[j] * b[j]).collect();
        let mut std_ind: Vec<f64> = (0..k)
            .map(|j| t.std_of(&path_name("a", j, k)) * t.std_of(&path_name("b", j, k)))
            .collect();
        let mut sobel: Vec<f64> = (0..k)
            .map(|j| indirect::sobel_se(a[j], se_a[j], b[j], vcov_b[j * k + j].max(0.0).sqrt()))
            .collect();
        if k > 1 {
            ind.push(ind.iter().sum());
            std_ind.push(std_ind.iter().sum());
            sobel.push(indirect::sobel_se_sum(&a, &se_a, &b, &vcov_b));
        }
        PointIndirect {
            a,
            se_a,
            b,
            vcov_b,
            ind,
            std_ind,
            sobel,
        }
    }
}

/// Singular fits and warnings of the path models, and the bootstrap resamples left out.
fn fit_warnings(fits: &[(String, LmmFit)], failed: usize, resamples: usize) -> Vec<String> {
    let mut warnings = Vec::new();
    for (f, fit) in fits {
        if fit.singular {
            warnings.push(format!("singular fit (random-intercept variance 0): {f}"));
        }
        warnings.extend(fit.warnings.iter().map(|w| format!("{f}: {w}")));
    }
    if failed > 0 {
        warnings.push(format!(
            "{failed} of {resamples} bootstrap resamples could not be refitted and were left out"
        ));
    }
    warnings
}

/// Indices into the variable list (X, mediators, Y) of a path's predictor and outcome.
fn std_roles(path: &str, k: usize) -> (usize, usize) {
    let num = |s: &str| s.parse::<usize>().ok().map_or(0, |n| n.saturating_sub(1));
    if let Some(r) = path.strip_prefix('a') {
        (0, 1 + num(r))
    } else if let Some(r) = path.strip_prefix('b') {
        (1 + num(r), k + 1)
    } else {
        (0, k + 1)
    }
}

fn fit_formula_text(fit: &LmmFit) -> String {
    format!("{:?}", fit.fixef_names())
}

/// The refits of one participant-bootstrap resample of the within-person analysis: the
/// `a_k` models and the `b` model (the indirect effects need no other), as [`RiDesign`]s built
/// once on the full panel with the rows each model uses, warm-started from the full-data
/// `theta`; a resample the fast path cannot fit (rank-deficient design) falls back to a full
/// model frame and [`fit_formula`] as `lme4::lmer` would refit it.
pub struct WithinBootstrap {
    cen: Centred,
    /// Formulas of the a_1..a_k and b models.
    formulas: Vec<String>,
    designs: Vec<RiDesign>,
    /// Full-data theta per model (`None`: no fast path).
    thetas: Vec<Option<f64>>,
    full_thetas: Vec<Vec<f64>>,
    /// Per path `a_1..a_k, b_1..b_k`: (model, design column, term name).
    terms: Vec<(usize, usize, String)>,
    k: usize,
}

impl WithinBootstrap {
    /// Builds the designs; `fits` are the full-data fits in [`run`]'s order (a_1..a_k, b, c).
    pub fn new(
        cen: Centred,
        spec: &MediationSpec,
        fits: &[(String, LmmFit)],
    ) -> Result<WithinBootstrap, MediationError> {
        let k = spec.mediators.len();
        let nw = cen.waves.len();
        let np = cen.n_participants;
        // Column sources: (name, variable, within?) ; variable index into cen.names.
        let wave_cols: Vec<String> = cen
            .waves
            .iter()
            .skip(1)
            .map(|w| format!("wave{w}"))
            .collect();
        let build = |outcome: usize, cols: &[(String, usize, bool)]| -> RiDesign {
            let mut names: Vec<String> = vec!["(Intercept)".into()];
            names.extend(cols.iter().map(|c| c.0.clone()));
            names.extend(wave_cols.iter().cloned());
            let rows = (0..np)
                .flat_map(|p| (0..nw).map(move |t| (p, t)))
                .filter_map(|(p, t)| {
                    let cell = p * nw + t;
                    let y = cen.raw[outcome][cell]?;
                    let mut x = Vec::with_capacity(names.len());
                    x.push(1.0);
                    for (_, v, w) in cols {
                        let src = if *w {
                            &cen.within[*v]
                        } else {
                            &cen.between[*v]
                        };
                        x.push(src[cell]?);
                    }
                    for j in 1..nw {
                        x.push(if t == j { 1.0 } else { 0.0 });
                    }
                    Some((p, x, y))
                });
            let rows: Vec<(usize, Vec<f64>, f64)> = rows.collect();
            RiDesign::new(names, np, rows)
        };
        let xn = &cen.names[0];
        let mut designs = Vec::new();
        let mut terms = Vec::new();
        for j in 0..k {
            let cols = vec![(format!("{xn}_w"), 0, true), (format!("{xn}_b"), 0, false)];
            designs.push(build(1 + j, &cols));
            terms.push((j, 1, format!("{xn}_w")));
        }
        let mut cols = vec![(format!("{xn}_w"), 0, true)];
        for j in 0..k {
            cols.push((format!("{}_w", cen.names[1 + j]), 1 + j, true));
        }
        cols.push((format!("{xn}_b"), 0, false));
        for j in 0..k {
            cols.push((format!("{}_b", cen.names[1 + j]), 1 + j, false));
        }
        designs.push(build(k + 1, &cols));
        for j in 0..k {
            terms.push((k, 2 + j, format!("{}_w", cen.names[1 + j])));
        }
        if fits.len() < k + 1 {
            return Err(MediationError::Data {
                analysis: ANALYSIS.into(),
                message: format!("{} path models fitted, {} expected", fits.len(), k + 1),
            });
        }
        let full_thetas: Vec<Vec<f64>> = fits[..=k].iter().map(|(_, f)| f.theta.clone()).collect();
        let thetas = full_thetas
            .iter()
            .map(|t| (t.len() == 1).then(|| t[0]))
            .collect();
        Ok(WithinBootstrap {
            formulas: fits[..=k].iter().map(|(f, _)| f.clone()).collect(),
            cen,
            designs,
            thetas,
            full_thetas,
            terms,
            k,
        })
    }

    /// Participants resampled.
    pub fn n_participants(&self) -> usize {
        self.cen.n_participants
    }

    /// The fast REML refit of path model `model` (0..k: a_1..a_k; k: b) on the resample `idx`.
    pub fn fit_fast(&self, model: usize, idx: &[usize]) -> Option<RiFit> {
        self.designs
            .get(model)?
            .fit(idx, (*self.thetas.get(model)?)?)
    }

    /// Column names of the fast path's design of `model`.
    pub fn design_names(&self, model: usize) -> Option<&[String]> {
        self.designs.get(model).map(|d| d.names.as_slice())
    }

    fn effects(&self, coefs: &[f64]) -> Vec<f64> {
        let k = self.k;
        let mut v: Vec<f64> = (0..k).map(|j| coefs[j] * coefs[k + j]).collect();
        if k > 1 {
            v.push(v.iter().sum());
        }
        v
    }

    /// The indirect effects (`a_k b_k`, then their sum when k > 1) of resample `idx`: the fast
    /// path, falling back to [`Self::replicate_general`].
    pub fn replicate(&self, idx: &[usize]) -> Option<Vec<f64>> {
        self.replicate_fast(idx)
            .or_else(|| self.replicate_general(idx))
    }

    /// The indirect effects of resample `idx` by the fast path only.
    pub fn replicate_fast(&self, idx: &[usize]) -> Option<Vec<f64>> {
        let mut betas: Vec<Option<Vec<f64>>> = vec![None; self.designs.len()];
        let mut coefs = Vec::with_capacity(self.terms.len());
        for (m, col, _) in &self.terms {
            if betas[*m].is_none() {
                betas[*m] = Some(self.fit_fast(*m, idx)?.beta);
            }
            coefs.push(*betas[*m].as_ref()?.get(*col)?);
        }
        Some(self.effects(&coefs))
    }

    /// The indirect effects of resample `idx` by building the model frame and refitting each
    /// model with [`fit_formula`] (warm-started), as `lmer` on the resampled data.
    pub fn replicate_general(&self, idx: &[usize]) -> Option<Vec<f64>> {
        let fr = build_frame(&self.cen, idx, true).ok()?;
        let mut cache: Vec<Option<LmmFit>> = (0..self.formulas.len()).map(|_| None).collect();
        let mut coefs = Vec::with_capacity(self.terms.len());
        for (m, _, term) in &self.terms {
            if cache[*m].is_none() {
                let o = LmmOptions {
                    start_theta: self.full_thetas.get(*m).cloned(),
                    check_convergence: false,
                    rho_end: 1e-6,
                    ..LmmOptions::default()
                };
                cache[*m] = Some(fit_formula(&self.formulas[*m], &fr, &o).ok()?);
            }
            let f = cache[*m].as_ref()?;
            coefs.push(*f.beta.get(coef(f, term)?)?);
        }
        Some(self.effects(&coefs))
    }
}
