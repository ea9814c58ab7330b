//! Treatment-level mediation: does IMR improve personal recovery through
//! self-management? In temporal order: arm -> change in the mediator (IMRS client) from
//! baseline to the end of treatment -> change in the outcome (MHRM) from baseline to the last
//! wave. Three `lm` regressions on the complete cases, both baselines as covariates in each
//! (so that `c = c' + a b` holds exactly, as in Baron & Kenny's decomposition):
//!
//! * path a: `d_M ~ arm + M_0 + Y_0`,
//! * paths b and c': `d_Y ~ arm + d_M + M_0 + Y_0`,
//! * total c: `d_Y ~ arm + M_0 + Y_0`,
//!
//! with `arm` the indicator of the intervention arm (R's term name `arm<label>`). The
//! indirect effect `a b` gets a Sobel SE, a Monte Carlo interval and a participant-bootstrap
//! percentile interval (resampling within the pooled sample, as `boot` does by default).
#![allow(clippy::needless_range_loop)] // index loops over paired matrix/vector entries
use crate::progress::Progress;
use crate::results::{IndirectRow, Interval, MediationResult};

use super::indirect;
use super::ols::{ols, ols_coefficients, OlsFit};
use super::spec::MediationSpec;
use super::{path_row, proportion_mediated, sd, MediationError, Panel};
use crate::stats::linalg::LinalgError;
use crate::stats::quantile::{percentile_interval, quantile_interval};
use crate::stats::rng::tags;

const ANALYSIS: &str = "treatment";

struct Table {
    arm: Vec<f64>,
    dm: Vec<f64>,
    m0: Vec<f64>,
    dy: Vec<f64>,
    y0: Vec<f64>,
}

impl Table {
    fn subset(&self, idx: &[usize]) -> Table {
        let pick = |v: &Vec<f64>| {
            idx.iter()
                .map(|&i| v.get(i).copied().unwrap_or(f64::NAN))
                .collect()
        };
        Table {
            arm: pick(&self.arm),
            dm: pick(&self.dm),
            m0: pick(&self.m0),
            dy: pick(&self.dy),
            y0: pick(&self.y0),
        }
    }
}

struct Fits {
    a: OlsFit,
    b: OlsFit,
    c: OlsFit,
}

fn fit_all(t: &Table, names: &[String; 4]) -> Result<Fits, (String, LinalgError)> {
    let [arm, dm, m0, y0] = names;
    let a = ols(&t.dm, &[(arm, &t.arm), (m0, &t.m0), (y0, &t.y0)])
        .map_err(|e| ("a_model".to_string(), e))?;
    let b = ols(
        &t.dy,
        &[(arm, &t.arm), (dm, &t.dm), (m0, &t.m0), (y0, &t.y0)],
    )
    .map_err(|e| ("b_model".to_string(), e))?;
    let c = ols(&t.dy, &[(arm, &t.arm), (m0, &t.m0), (y0, &t.y0)])
        .map_err(|e| ("total_model".to_string(), e))?;
    Ok(Fits { a, b, c })
}

/// Runs the treatment-level analysis.
pub fn run(
    panel: &Panel,
    spec: &MediationSpec,
    seed: u64,
    progress: &Progress,
) -> Result<MediationResult, MediationError> {
    let ts = &spec.treatment;
    let nw = panel.waves.len();
    let eot = panel.wave_index(ts.end_of_treatment_wave.as_deref(), 1, ANALYSIS)?;
    let last = panel.wave_index(ts.last_wave.as_deref(), nw.saturating_sub(1), ANALYSIS)?;
    if eot == 0 || last == 0 || eot > last {
        return Err(MediationError::Spec(format!(
            "treatment mediation needs baseline < end of treatment ({}) <= last wave ({})",
            panel.waves.get(eot).cloned().unwrap_or_default(),
            panel.waves.get(last).cloned().unwrap_or_default()
        )));
    }
    let (control, treated) = arms(panel)?;
    let t = treatment_table(panel, ts, (eot, last), (&control, &treated))?;
    let n_used = t.arm.len();
    let names = [
        format!("arm{treated}"),
        format!("d_{}", ts.mediator),
        format!("{}_0", ts.mediator),
        format!("{}_0", ts.outcome),
    ];
    let fits = fit_all(&t, &names)
        .map_err(|(model, e)| MediationError::least_squares(ANALYSIS, model, e))?;
    let level = spec.conf_level;
    let (arm_n, dm_n) = (&names[0], &names[1]);
    let (sd_x, sd_m, sd_y) = (sd(&t.arm), sd(&t.dm), sd(&t.dy));
    let mut paths = Vec::new();
    let mut get =
        |path: &str, f: &OlsFit, term: &str, ratio: f64| -> Result<(f64, f64), MediationError> {
            let i = f.index(term).ok_or_else(|| MediationError::Data {
                analysis: ANALYSIS.into(),
                message: format!("term `{term}` missing"),
            })?;
            let (_, p, lo, hi) =
                f.t_test(i, level)
                    .unwrap_or((f64::NAN, f64::NAN, f64::NAN, f64::NAN));
            paths.push(path_row(
                path,
                f.coef[i],
                f.se[i],
                Some(f.coef[i] * ratio),
                Some(f.df_residual as f64),
                p,
                lo,
                hi,
            ));
            Ok((f.coef[i], f.se[i]))
        };
    let (a, se_a) = get("a", &fits.a, arm_n, sd_x / sd_m)?;
    let (b, se_b) = get("b", &fits.b, dm_n, sd_m / sd_y)?;
    let (cp, _) = get("c_prime", &fits.b, arm_n, sd_x / sd_y)?;
    let (c, se_c) = get("c", &fits.c, arm_n, sd_x / sd_y)?;
    let ab = a * b;
    let std_ab = (a * sd_x / sd_m) * (b * sd_m / sd_y);
    let sob = indirect::sobel_se(a, se_a, b, se_b);
    let reps = indirect::bootstrap(
        n_used,
        spec.bootstrap_resamples,
        seed,
        tags::TREATMENT_BOOT,
        progress,
        |idx| {
            // the coefficients of arm in the a model and of d_M in the b model of `fit_all`
            // (the same QR and bits; the resamples use neither SEs nor the total model)
            let s = t.subset(idx);
            let a = ols_coefficients(&s.dm, &[&s.arm, &s.m0, &s.y0]).ok()?[1];
            let b = ols_coefficients(&s.dy, &[&s.arm, &s.dm, &s.m0, &s.y0]).ok()?[2];
            Some(vec![a * b])
        },
    );
    let failed = reps.iter().filter(|r| r.is_none()).count();
    let (bootstrap, monte_carlo) = intervals(&reps, (a, se_a), (b, se_b), spec, seed);
    let mut warnings = Vec::new();
    if failed > 0 {
        warnings.push(format!(
            "{failed} of {} bootstrap resamples could not be fitted (e.g. one arm only) and were left out",
            spec.bootstrap_resamples
        ));
    }
    let (prop, warn) = proportion_mediated(ab, cp, c, se_c, spec.proportion_min_z);
    warnings.extend(warn);
    Ok(MediationResult {
        analysis: ANALYSIS.into(),
        x: "arm".into(),
        mediators: vec![ts.mediator.clone()],
        y: ts.outcome.clone(),
        n_used: n_used as u64,
        n_excluded: panel.n().saturating_sub(n_used) as u64,
        paths,
        between_paths: Vec::new(),
        indirect: vec![IndirectRow {
            effect: "ab".into(),
            estimate: ab,
            std_estimate: Some(std_ab),
            sobel_se: Some(sob),
            bootstrap,
            monte_carlo,
        }],
        proportion_mediated: prop,
        bootstrap_resamples: (spec.bootstrap_resamples > 0)
            .then_some(spec.bootstrap_resamples as u64),
        monte_carlo_draws: (spec.monte_carlo_draws > 0).then_some(spec.monte_carlo_draws as u64),
        warnings,
    })
}

/// The control (first) and the intervention arm of the panel.
fn arms(panel: &Panel) -> Result<(String, String), MediationError> {
    let control = panel.arm_levels.first().cloned().unwrap_or_default();
    let treated = panel
        .intervention_arm
        .clone()
        .or_else(|| panel.arm_levels.get(1).cloned())
        .ok_or_else(|| MediationError::Data {
            analysis: ANALYSIS.into(),
            message: "the study needs a control and an intervention arm".into(),
        })?;
    Ok((control, treated))
}

/// One row per participant of the two arms with the mediator at baseline and end of
/// treatment and the outcome at baseline and the last wave (`waves = (eot, last)`): arm
/// indicator, change of M, baseline M, change of Y, baseline Y.
fn treatment_table(
    panel: &Panel,
    ts: &super::TreatmentSpec,
    (eot, last): (usize, usize),
    (control, treated): (&str, &str),
) -> Result<Table, MediationError> {
    let nw = panel.waves.len();
    let m = panel.score(&ts.mediator, ANALYSIS)?;
    let y = panel.score(&ts.outcome, ANALYSIS)?;
    let at = |c: &[Option<f64>], p: usize, w: usize| c.get(p * nw + w).copied().flatten();
    let mut t = Table {
        arm: Vec::new(),
        dm: Vec::new(),
        m0: Vec::new(),
        dy: Vec::new(),
        y0: Vec::new(),
    };
    for p in 0..panel.n() {
        let arm = match panel.arms.get(p) {
            Some(a) if *a == treated => 1.0,
            Some(a) if *a == control => 0.0,
            _ => continue,
        };
        if let (Some(m0), Some(me), Some(y0), Some(yl)) =
            (at(m, p, 0), at(m, p, eot), at(y, p, 0), at(y, p, last))
        {
            t.arm.push(arm);
            t.m0.push(m0);
            t.dm.push(me - m0);
            t.y0.push(y0);
            t.dy.push(yl - y0);
        }
    }
    Ok(t)
}

/// The bootstrap percentile and Monte Carlo intervals of `ab` (each `None` when switched off).
fn intervals(
    reps: &[Option<Vec<f64>>],
    (a, se_a): (f64, f64),
    (b, se_b): (f64, f64),
    spec: &MediationSpec,
    seed: u64,
) -> (Option<Interval>, Option<Interval>) {
    let level = spec.conf_level;
    let bootstrap = (spec.bootstrap_resamples > 0).then(|| {
        let (lo, hi) = percentile_interval(&indirect::column(reps, 0), level);
        Interval {
            conf_low: lo,
            conf_high: hi,
        }
    });
    let monte_carlo = (spec.monte_carlo_draws > 0).then(|| {
        let d = indirect::monte_carlo(
            &[a],
            &[se_a],
            &[b],
            &[se_b * se_b],
            spec.monte_carlo_draws,
            seed,
            tags::TREATMENT_MC,
        );
        let (lo, hi) = quantile_interval(d.first().map_or(&[][..], |v| v), level);
        Interval {
            conf_low: lo,
            conf_high: hi,
        }
    });
    (bootstrap, monte_carlo)
}
