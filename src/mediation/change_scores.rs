//! The published analysis (Roosenschoon et al. 2024, PLoS ONE, thesis chapter 7): change
//! scores `d_v = v(last wave) - v(baseline)` for X, the mediators and Y, participants with all
//! of them observed (complete cases), pooled over arms, and three kinds of `lm` regression with
//! every baseline level as covariate:
//!
//! * `d_Mk ~ d_X + X_0 + Mk_0` (path a_k),
//! * `d_Y ~ d_X + d_M1 + ... + X_0 + M1_0 + ... + Y_0` (paths b_k and c'),
//! * `d_Y ~ d_X + X_0 + Y_0` (total effect c).
//!
//! Standardized paths multiply by `sd(predictor) / sd(outcome)` of the change scores on the
//! analysis sample; standardized indirect effects are products of standardized paths.
#![allow(clippy::needless_range_loop)] // index loops over paired matrix/vector entries
use crate::progress::Progress;
use crate::results::MediationResult;

use super::indirect;
use super::ols::{ols, ols_coefficients, OlsFit};
use super::spec::MediationSpec;
use super::{effect_names, path_name, path_row, proportion_mediated, sd, MediationError, Panel};
use crate::stats::linalg::LinalgError;

use crate::stats::rng::tags;

const ANALYSIS: &str = "change_scores";

/// The complete-case change-score table.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeTable {
    /// Participant ids used, in panel order.
    pub ids: Vec<String>,
    /// Arm label per participant used.
    pub arms: Vec<String>,
    /// Names of X, the mediators, Y.
    pub x: String,
    pub mediators: Vec<String>,
    pub y: String,
    /// `d_x`, `x_0`.
    pub dx: Vec<f64>,
    pub x0: Vec<f64>,
    /// Per mediator: changes and baselines.
    pub dm: Vec<Vec<f64>>,
    pub m0: Vec<Vec<f64>>,
    pub dy: Vec<f64>,
    pub y0: Vec<f64>,
    /// Participants in the panel.
    pub n_participants: usize,
    /// Missing counts of each of the 2(k + 2) values (`<v>_0`, `<v>_last`).
    pub missing_counts: Vec<(String, usize)>,
}

impl ChangeTable {
    fn len(&self) -> usize {
        self.dx.len()
    }

    fn subset(&self, idx: &[usize]) -> ChangeTable {
        let pick = |v: &Vec<f64>| {
            idx.iter()
                .map(|&i| v.get(i).copied().unwrap_or(f64::NAN))
                .collect()
        };
        ChangeTable {
            ids: Vec::new(),
            arms: Vec::new(),
            x: self.x.clone(),
            mediators: self.mediators.clone(),
            y: self.y.clone(),
            dx: pick(&self.dx),
            x0: pick(&self.x0),
            dm: self.dm.iter().map(pick).collect(),
            m0: self.m0.iter().map(pick).collect(),
            dy: pick(&self.dy),
            y0: pick(&self.y0),
            n_participants: self.n_participants,
            missing_counts: Vec::new(),
        }
    }
}

/// Builds the complete-case change table from the panel.
pub(crate) fn change_table(
    panel: &Panel,
    x: &str,
    mediators: &[String],
    y: &str,
    baseline: usize,
    last: usize,
) -> Result<ChangeTable, MediationError> {
    let nw = panel.waves.len();
    let mut vars: Vec<&str> = vec![x];
    vars.extend(mediators.iter().map(String::as_str));
    vars.push(y);
    let cols: Vec<&[Option<f64>]> = vars
        .iter()
        .map(|v| panel.score(v, ANALYSIS))
        .collect::<Result<_, _>>()?;
    let mut missing_counts = Vec::new();
    for (v, c) in vars.iter().zip(&cols) {
        for (suffix, w) in [("0", baseline), ("last", last)] {
            let miss = (0..panel.n())
                .filter(|p| c.get(p * nw + w).copied().flatten().is_none())
                .count();
            missing_counts.push((format!("{v}_{suffix}"), miss));
        }
    }
    let k = mediators.len();
    let mut t = ChangeTable {
        ids: Vec::new(),
        arms: Vec::new(),
        x: x.to_string(),
        mediators: mediators.to_vec(),
        y: y.to_string(),
        dx: Vec::new(),
        x0: Vec::new(),
        dm: vec![Vec::new(); k],
        m0: vec![Vec::new(); k],
        dy: Vec::new(),
        y0: Vec::new(),
        n_participants: panel.n(),
        missing_counts,
    };
    for p in 0..panel.n() {
        let mut pairs = Vec::with_capacity(cols.len());
        for c in &cols {
            match (
                c.get(p * nw + baseline).copied().flatten(),
                c.get(p * nw + last).copied().flatten(),
            ) {
                (Some(b), Some(l)) => pairs.push((b, l)),
                _ => break,
            }
        }
        if pairs.len() != cols.len() {
            continue;
        }
        t.ids.push(panel.ids[p].clone());
        t.arms.push(panel.arms.get(p).cloned().unwrap_or_default());
        t.x0.push(pairs[0].0);
        t.dx.push(pairs[0].1 - pairs[0].0);
        for j in 0..k {
            t.m0[j].push(pairs[j + 1].0);
            t.dm[j].push(pairs[j + 1].1 - pairs[j + 1].0);
        }
        t.y0.push(pairs[k + 1].0);
        t.dy.push(pairs[k + 1].1 - pairs[k + 1].0);
    }
    Ok(t)
}

/// The four kinds of `lm` fit of the change-score analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeFits {
    /// `d_Mk ~ d_X + X_0 + Mk_0`, one per mediator.
    pub a_models: Vec<OlsFit>,
    /// `d_Y ~ d_X + d_M.. + X_0 + M.._0 + Y_0`.
    pub b_model: OlsFit,
    /// `d_Y ~ d_X + X_0 + Y_0`.
    pub total_model: OlsFit,
}

fn fit_all(t: &ChangeTable) -> Result<ChangeFits, (String, LinalgError)> {
    let dx = format!("d_{}", t.x);
    let x0 = format!("{}_0", t.x);
    let y0 = format!("{}_0", t.y);
    let dm: Vec<String> = t.mediators.iter().map(|m| format!("d_{m}")).collect();
    let m0: Vec<String> = t.mediators.iter().map(|m| format!("{m}_0")).collect();
    let mut a_models = Vec::new();
    for j in 0..t.mediators.len() {
        let f = ols(&t.dm[j], &[(&dx, &t.dx), (&x0, &t.x0), (&m0[j], &t.m0[j])])
            .map_err(|e| (format!("a{}_model", j + 1), e))?;
        a_models.push(f);
    }
    let mut bx: Vec<(&str, &[f64])> = vec![(&dx, &t.dx)];
    for j in 0..t.mediators.len() {
        bx.push((&dm[j], &t.dm[j]));
    }
    bx.push((&x0, &t.x0));
    for j in 0..t.mediators.len() {
        bx.push((&m0[j], &t.m0[j]));
    }
    bx.push((&y0, &t.y0));
    let b_model = ols(&t.dy, &bx).map_err(|e| ("b_model".to_string(), e))?;
    let total_model = ols(&t.dy, &[(&dx, &t.dx), (&x0, &t.x0), (&y0, &t.y0)])
        .map_err(|e| ("total_model".to_string(), e))?;
    Ok(ChangeFits {
        a_models,
        b_model,
        total_model,
    })
}

/// `(a_k, b_k)` of a bootstrap resample: the coefficients of `d_X` in the a models and of
/// `d_M_k` in the b model of [`fit_all`] (the same QR and bits), without the SEs and the total
/// model, which the resamples do not use. `None` where a model cannot be fitted.
fn resample_paths(t: &ChangeTable) -> Option<(Vec<f64>, Vec<f64>)> {
    let k = t.mediators.len();
    let a = (0..k)
        .map(|j| {
            ols_coefficients(&t.dm[j], &[&t.dx, &t.x0, &t.m0[j]])
                .ok()
                .map(|c| c[1])
        })
        .collect::<Option<Vec<f64>>>()?;
    let mut bx: Vec<&[f64]> = vec![&t.dx];
    bx.extend(t.dm.iter().map(Vec::as_slice));
    bx.push(&t.x0);
    bx.extend(t.m0.iter().map(Vec::as_slice));
    bx.push(&t.y0);
    let b = ols_coefficients(&t.dy, &bx).ok()?;
    Some((a, b[2..2 + k].to_vec()))
}

/// Point estimates `(a_k, b_k, c', c)` of a fit set.
fn estimates(t: &ChangeTable, f: &ChangeFits) -> (Vec<f64>, Vec<f64>, f64, f64) {
    let dx = format!("d_{}", t.x);
    let a = f
        .a_models
        .iter()
        .map(|m| m.get(&dx).map_or(f64::NAN, |v| v.0))
        .collect();
    let b = t
        .mediators
        .iter()
        .map(|m| f.b_model.get(&format!("d_{m}")).map_or(f64::NAN, |v| v.0))
        .collect();
    let cp = f.b_model.get(&dx).map_or(f64::NAN, |v| v.0);
    let c = f.total_model.get(&dx).map_or(f64::NAN, |v| v.0);
    (a, b, cp, c)
}

/// Everything the change-score analysis computed.
#[derive(Debug, Clone)]
pub struct ChangeOutput {
    pub result: MediationResult,
    pub table: ChangeTable,
    pub fits: ChangeFits,
    /// SDs (n - 1) of `d_x`, `d_m..`, `d_y` on the analysis sample.
    pub sds: Vec<f64>,
    /// Sobel z and p per effect.
    pub sobel_p: Vec<f64>,
}

/// Runs the change-score analysis.
pub fn run(
    panel: &Panel,
    spec: &MediationSpec,
    seed: u64,
    progress: &Progress,
) -> Result<ChangeOutput, MediationError> {
    let nw = panel.waves.len();
    let baseline = panel.wave_index(spec.baseline_wave.as_deref(), 0, ANALYSIS)?;
    let last = panel.wave_index(spec.last_wave.as_deref(), nw.saturating_sub(1), ANALYSIS)?;
    if baseline == last {
        return Err(MediationError::Spec(format!(
            "change scores need two different waves (baseline and last are both `{}`)",
            panel.waves.get(last).cloned().unwrap_or_default()
        )));
    }
    let table = change_table(panel, &spec.x, &spec.mediators, &spec.y, baseline, last)?;
    let k = spec.mediators.len();
    let needed = 2 * k + 4;
    if table.len() < needed {
        return Err(MediationError::TooFew {
            analysis: ANALYSIS.into(),
            model: "b_model".into(),
            n_used: table.len(),
            needed,
        });
    }
    let fits =
        fit_all(&table).map_err(|(model, e)| MediationError::least_squares(ANALYSIS, model, e))?;
    let level = spec.conf_level;
    let cp = change_paths(&table, &fits, spec)?;
    let (a, b) = (&cp.a, &cp.b);
    let (est, std_est, sob) = cp.point_effects();
    // Bootstrap over participants of the complete-case table.
    let reps = indirect::bootstrap(
        table.len(),
        spec.bootstrap_resamples,
        seed,
        tags::CHANGE_BOOT,
        progress,
        |idx| {
            let (a, b) = resample_paths(&table.subset(idx))?;
            let mut v: Vec<f64> = (0..k).map(|j| a[j] * b[j]).collect();
            if k > 1 {
                v.push(v.iter().sum());
            }
            Some(v)
        },
    );
    let failed = reps.iter().filter(|r| r.is_none()).count();
    let mc = if spec.monte_carlo_draws > 0 {
        indirect::monte_carlo(
            a,
            &cp.se_a,
            b,
            &cp.vcov_b,
            spec.monte_carlo_draws,
            seed,
            tags::CHANGE_MC,
        )
    } else {
        Vec::new()
    };
    let (indirect_rows, sobel_p) = indirect::indirect_rows(
        &effect_names(k),
        &est,
        &std_est,
        &sob,
        (spec.bootstrap_resamples > 0).then_some(&reps[..]),
        &mc,
        level,
    );
    let mut warnings = Vec::new();
    if failed > 0 {
        warnings.push(format!(
            "{failed} of {} bootstrap resamples could not be fitted (collinear resample) and were left out",
            spec.bootstrap_resamples
        ));
    }
    let total_indirect = est.last().copied().unwrap_or(f64::NAN);
    let (prop, warn) =
        proportion_mediated(total_indirect, cp.cp, cp.c, cp.se_c, spec.proportion_min_z);
    warnings.extend(warn);
    let mut sds = vec![cp.sd_x];
    sds.extend(&cp.sd_m);
    sds.push(cp.sd_y);
    let result = MediationResult {
        analysis: ANALYSIS.into(),
        x: spec.x.clone(),
        mediators: spec.mediators.clone(),
        y: spec.y.clone(),
        n_used: table.len() as u64,
        n_excluded: (table.n_participants - table.len()) as u64,
        paths: cp.paths,
        between_paths: Vec::new(),
        indirect: indirect_rows,
        proportion_mediated: prop,
        bootstrap_resamples: (spec.bootstrap_resamples > 0)
            .then_some(spec.bootstrap_resamples as u64),
        monte_carlo_draws: (spec.monte_carlo_draws > 0).then_some(spec.monte_carlo_draws as u64),
        warnings,
    };
    Ok(ChangeOutput {
        result,
        table,
        fits,
        sds,
        sobel_p,
    })
}

/// The path rows of the change-score models and what the indirect effects need of them.
struct ChangePaths {
    paths: Vec<crate::results::PathRow>,
    a: Vec<f64>,
    se_a: Vec<f64>,
    b: Vec<f64>,
    se_b: Vec<f64>,
    /// Covariance of the b paths (one model), `k x k` row-major.
    vcov_b: Vec<f64>,
    cp: f64,
    c: f64,
    se_c: f64,
    sd_x: f64,
    sd_m: Vec<f64>,
    sd_y: f64,
}

/// The a, b, c' and c paths (OLS t tests on the change scores), standardized by the SDs of
/// the changes.
fn change_paths(
    table: &ChangeTable,
    fits: &ChangeFits,
    spec: &MediationSpec,
) -> Result<ChangePaths, MediationError> {
    let k = spec.mediators.len();
    let level = spec.conf_level;
    let dx = format!("d_{}", spec.x);
    let sd_x = sd(&table.dx);
    let sd_m: Vec<f64> = table.dm.iter().map(|v| sd(v)).collect();
    let sd_y = sd(&table.dy);
    let (a, b, cp, c) = estimates(table, fits);
    let mut paths = Vec::new();
    let mut se_a = Vec::new();
    let row_of = |name: &str, m: &OlsFit, term: &str, std: f64| {
        let i = m.index(term)?;
        let (t, p, lo, hi) = m.t_test(i, level)?;
        let _ = t;
        Some(path_row(
            name,
            m.coef[i],
            m.se[i],
            Some(std),
            Some(m.df_residual as f64),
            p,
            lo,
            hi,
        ))
    };
    let missing = |what: &str| MediationError::Data {
        analysis: ANALYSIS.into(),
        message: format!("coefficient {what} missing from its model"),
    };
    for j in 0..k {
        let m = &fits.a_models[j];
        let std = a[j] * sd_x / sd_m[j];
        paths.push(row_of(&path_name("a", j, k), m, &dx, std).ok_or_else(|| missing(&dx))?);
        se_a.push(m.get(&dx).map_or(f64::NAN, |v| v.1));
    }
    let mut se_b = Vec::new();
    for j in 0..k {
        let term = format!("d_{}", spec.mediators[j]);
        let std = b[j] * sd_m[j] / sd_y;
        paths.push(
            row_of(&path_name("b", j, k), &fits.b_model, &term, std)
                .ok_or_else(|| missing(&term))?,
        );
        se_b.push(fits.b_model.get(&term).map_or(f64::NAN, |v| v.1));
    }
    paths
        .push(row_of("c_prime", &fits.b_model, &dx, cp * sd_x / sd_y).ok_or_else(|| missing(&dx))?);
    paths.push(row_of("c", &fits.total_model, &dx, c * sd_x / sd_y).ok_or_else(|| missing(&dx))?);
    let se_c = fits.total_model.get(&dx).map_or(f64::NAN, |v| v.1);
    let mut vcov_b = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..k {
            vcov_b[i * k + j] = fits
                .b_model
                .cov(
                    &format!("d_{}", spec.mediators[i]),
                    &format!("d_{}", spec.mediators[j]),
                )
                .unwrap_or(f64::NAN);
        }
    }
    Ok(ChangePaths {
        paths,
        a,
        se_a,
        b,
        se_b,
        vcov_b,
        cp,
        c,
        se_c,
        sd_x,
        sd_m,
        sd_y,
    })
}

impl ChangePaths {
    /// The indirect effects `a_j b_j`, their standardized values and Sobel SEs, with the
    /// total (sum) appended when there are several mediators.
    fn point_effects(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let k = self.a.len();
        let (a, b) = (&self.a, &self.b);
        let std_a: Vec<f64> = (0..k).map(|j| a[j] * self.sd_x / self.sd_m[j]).collect();
        let std_b: Vec<f64> = (0..k).map(|j| b[j] * self.sd_m[j] / self.sd_y).collect();
        let mut est: Vec<f64> = (0..k).map(|j| a[j] * b[j]).collect();
        let mut std_est: Vec<f64> = (0..k).map(|j| std_a[j] * std_b[j]).collect();
        let mut sob: Vec<f64> = (0..k)
            .map(|j| indirect::sobel_se(a[j], self.se_a[j], b[j], self.se_b[j]))
            .collect();
        if k > 1 {
            est.push(est.iter().sum());
            std_est.push(std_est.iter().sum());
            sob.push(indirect::sobel_se_sum(a, &self.se_a, b, &self.vcov_b));
        }
        (est, std_est, sob)
    }
}
