//! The intervention minus control contrast at each wave from one outcome model, the quantity
//! every site comparison is built from: `emmeans(fit, ~ arm | wave)` followed by
//! `contrast(..., "revpairwise")` (Lenth's emmeans) on an lmerTest fit with Satterthwaite or
//! Kenward-Roger df, or on `lm` (ordinary least squares, residual df) when the mixed model is
//! singular or cannot be fitted.
#![allow(clippy::needless_range_loop)] // index loops over paired matrix/vector entries

use nalgebra::DMatrix;

use crate::emmeans::{reference_grid, GridError, GridFactor};
use crate::formula::{build_model_frame, FormulaError, ModelFormula, ModelFrame};
use crate::frame::{Column, Frame, FrameError};
use crate::lmm::inference::t_p_and_quantile;
use crate::lmm::LmmError;
use crate::lmm::{fit_model_frame, DfMethod, LmmFit, LmmOptions};
pub use crate::results::{FitMethod, WaveContrast};
use crate::stats::linalg::LinalgError;

/// The contrast at `wave` from a row of [`crate::lmm::LmmFit::contrast_level`].
pub fn wave_contrast(wave: &str, r: crate::lmm::ContrastRow) -> WaveContrast {
    WaveContrast {
        wave: wave.to_string(),
        estimate: r.estimate,
        std_error: r.std_error,
        df: r.df,
        statistic: r.statistic,
        p_value: r.p_value,
        conf_low: r.conf_low,
        conf_high: r.conf_high,
    }
}

/// The contrasts of one fitted model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelContrasts {
    pub method: FitMethod,
    /// The mixed model's fit was on the boundary (the reason for [`FitMethod::Ols`]).
    pub singular: bool,
    pub n_participants: usize,
    pub n_observations: usize,
    /// One entry per wave (study order) at which both arms are observed.
    pub contrasts: Vec<WaveContrast>,
    /// Why the mixed model was not used, or other notes.
    pub notes: Vec<String>,
}

/// What the contrast needs to know about the design.
#[derive(Debug, Clone)]
pub struct ContrastDesign<'a> {
    /// Arm levels, study order (the first is the control arm).
    pub arms: &'a [String],
    /// Wave levels, study order.
    pub waves: &'a [String],
    /// The intervention arm's label.
    pub intervention: &'a str,
    pub df: DfMethod,
    pub level: f64,
}

/// Why a per-site, fidelity-band, moderator or routine model gives no contrasts (the site is
/// then listed as excluded with this reason, or the analysis warns; its siblings still run).
#[derive(Debug, thiserror::Error)]
pub enum SiteModelError {
    #[error(transparent)]
    Formula(#[from] FormulaError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Lmm(#[from] LmmError),
    #[error(transparent)]
    Grid(#[from] GridError),
    #[error("the intervention arm is the reference arm: no contrast")]
    ReferenceArm,
    /// The Wald contrasts of a fitted mixed model.
    #[error("contrasts: {0}")]
    Contrasts(#[source] LmmError),
    /// The least-squares fallback (or the routine case-mix model).
    #[error("least squares: {0}")]
    LeastSquares(#[source] LinalgError),
    #[error("{n} participant(s) with a score, fewer than min_participants = {min}")]
    TooFewParticipants { n: usize, min: usize },
    #[error("{0} training group(s) with a fidelity rating; at least 3 needed")]
    TooFewRatedGroups(usize),
    #[error("no observed scores")]
    NoScores,
    #[error("the modelling frame lacks group_id or imr")]
    MissingDesignColumns,
    #[error("fidelity_c was dropped from the model (no variation)")]
    ModeratorDropped,
}

/// Fits `formula` (lme4 syntax on the frame's columns; the arm and wave factors are called
/// `arm` and `wave`) and returns intervention minus control at every wave; ordinary least
/// squares on the fixed part when the mixed model is singular (`isSingular`) or fails.
pub fn fit_contrasts(
    frame: &Frame,
    formula: &str,
    design: &ContrastDesign<'_>,
) -> Result<ModelContrasts, SiteModelError> {
    let f = ModelFormula::parse(formula)?;
    let mf = build_model_frame(&f, frame)?;
    let n_participants = count_levels(frame, "participant_id", &mf.rows);
    let cells = observed_cells(frame, &mf.rows);
    let x = mf.x.clone();
    let y = mf.y.clone();
    let names = mf.x_names.clone();
    let rows = mf.rows.clone();
    let mut notes = Vec::new();
    let fit = fit_model_frame(mf, &LmmOptions::default());
    let (method, singular, contrasts) = match fit {
        Ok(fit) if !fit.singular => {
            let c = lmm_contrasts(&fit, frame, &cells, design)?;
            (FitMethod::Lmm, false, c)
        }
        other => {
            let singular = match &other {
                Ok(_) => {
                    notes.push("singular mixed-model fit: ordinary least squares used".into());
                    true
                }
                Err(e) => {
                    notes.push(format!(
                        "mixed model not fitted ({e}): ordinary least squares used"
                    ));
                    false
                }
            };
            let c = ols_contrasts(&x, &y, &names, frame, &rows, &cells, design)?;
            (FitMethod::Ols, singular, c)
        }
    };
    Ok(ModelContrasts {
        method,
        singular,
        n_participants,
        n_observations: y.len(),
        contrasts,
        notes,
    })
}

/// The (arm, wave) labels observed among `rows`.
fn observed_cells(frame: &Frame, rows: &[usize]) -> Vec<(String, String)> {
    let (
        Some(Column::Factor {
            codes: ac,
            levels: al,
        }),
        Some(Column::Factor {
            codes: wc,
            levels: wl,
        }),
    ) = (frame.column("arm"), frame.column("wave"))
    else {
        return Vec::new();
    };
    let mut seen = vec![false; al.len() * wl.len()];
    for &r in rows {
        if let (Some(Some(a)), Some(Some(w))) = (ac.get(r), wc.get(r)) {
            seen[*a as usize * wl.len() + *w as usize] = true;
        }
    }
    let mut out = Vec::new();
    for (a, an) in al.iter().enumerate() {
        for (w, wn) in wl.iter().enumerate() {
            if seen[a * wl.len() + w] {
                out.push((an.clone(), wn.clone()));
            }
        }
    }
    out
}

/// Number of distinct levels of factor `name` among `rows`.
pub fn count_levels(frame: &Frame, name: &str, rows: &[usize]) -> usize {
    match frame.column(name) {
        Some(Column::Factor { codes, levels }) => {
            let mut seen = vec![false; levels.len()];
            for &r in rows {
                if let Some(Some(c)) = codes.get(r) {
                    seen[*c as usize] = true;
                }
            }
            seen.iter().filter(|s| **s).count()
        }
        _ => 0,
    }
}

/// Rows of `L` (one per wave with both arms observed): the emmeans reference grid over arm x
/// wave with numeric covariates at their means, intervention cell minus control cell.
fn contrast_rows(
    names: &[String],
    frame: &Frame,
    rows: &[usize],
    cells: &[(String, String)],
    design: &ContrastDesign<'_>,
) -> Result<Vec<(String, Vec<f64>)>, SiteModelError> {
    let Some(control) = design.arms.first() else {
        return Ok(Vec::new());
    };
    if control == design.intervention {
        return Err(SiteModelError::ReferenceArm);
    }
    let covariates = crate::trial_data::grid_covariates(names, frame, Some(rows));
    // Only the arm and wave levels present in the model frame enter the grid (R drops unused
    // levels before building the design).
    let present = |lv: &str, arm: bool| {
        cells
            .iter()
            .any(|(a, w)| if arm { a == lv } else { w == lv })
    };
    let arms: Vec<String> = design
        .arms
        .iter()
        .filter(|a| present(a, true))
        .cloned()
        .collect();
    let waves: Vec<String> = design
        .waves
        .iter()
        .filter(|w| present(w, false))
        .cloned()
        .collect();
    let factors = vec![
        GridFactor {
            name: "arm".into(),
            prefix: "arm".into(),
            levels: arms,
        },
        GridFactor {
            name: "wave".into(),
            prefix: "wave".into(),
            levels: waves.clone(),
        },
    ];
    let grid = reference_grid(names, &factors, &covariates, &["arm", "wave"])?;
    let cell = |arm: &str, wave: &str| {
        grid.iter()
            .find(|g| g.levels[0].1 == arm && g.levels[1].1 == wave)
            .map(|g| g.l.clone())
    };
    let mut out = Vec::new();
    for w in &waves {
        let both = cells
            .iter()
            .any(|(a, x)| a == design.intervention && x == w)
            && cells.iter().any(|(a, x)| a == control && x == w);
        if !both {
            continue;
        }
        if let (Some(t), Some(c)) = (cell(design.intervention, w), cell(control, w)) {
            out.push((w.clone(), t.iter().zip(&c).map(|(a, b)| a - b).collect()));
        }
    }
    Ok(out)
}

fn lmm_contrasts(
    fit: &LmmFit,
    frame: &Frame,
    cells: &[(String, String)],
    design: &ContrastDesign<'_>,
) -> Result<Vec<WaveContrast>, SiteModelError> {
    let names = fit.fixef_names().to_vec();
    let rows = contrast_rows(&names, frame, &fit.frame.rows, cells, design)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let p = names.len();
    let l = DMatrix::from_fn(rows.len(), p, |i, j| rows[i].1[j]);
    let res = fit
        .contrast_level(&l, design.df, design.level)
        .map_err(SiteModelError::Contrasts)?;
    Ok(rows
        .iter()
        .zip(res)
        .map(|((w, _), r)| wave_contrast(w, r))
        .collect())
}

pub use crate::glm::lm::{ols_xy, OlsXy};

/// A linear combination `l beta` of an OLS fit with its t test and interval (residual df).
pub fn ols_contrast(fit: &OlsXy, l: &[f64], level: f64) -> (f64, f64, f64, f64, f64, f64) {
    let p = fit.beta.len();
    let est: f64 = l.iter().zip(&fit.beta).map(|(a, b)| a * b).sum();
    let mut var = 0.0;
    for i in 0..p {
        for j in 0..p {
            var += l[i] * fit.vcov[(i, j)] * l[j];
        }
    }
    let se = var.max(0.0).sqrt();
    let df = fit.df_residual as f64;
    let t = est / se;
    let (pv, q) = t_p_and_quantile(t, df, level);
    (est, se, df, t, pv, q)
}

fn ols_contrasts(
    x: &[f64],
    y: &[f64],
    names: &[String],
    frame: &Frame,
    rows: &[usize],
    cells: &[(String, String)],
    design: &ContrastDesign<'_>,
) -> Result<Vec<WaveContrast>, SiteModelError> {
    let fit = ols_xy(x, y, names).map_err(SiteModelError::LeastSquares)?;
    let lrows = contrast_rows(names, frame, rows, cells, design)?;
    Ok(lrows
        .iter()
        .map(|(w, l)| {
            let (est, se, df, t, p, q) = ols_contrast(&fit, l, design.level);
            WaveContrast {
                wave: w.clone(),
                estimate: est,
                std_error: se,
                df,
                statistic: t,
                p_value: p,
                conf_low: est - q * se,
                conf_high: est + q * se,
            }
        })
        .collect())
}

/// Builds the model frame of `formula` on `frame` (R's `model.frame` + `model.matrix`).
pub fn model_frame(frame: &Frame, formula: &str) -> Result<ModelFrame, SiteModelError> {
    let f = ModelFormula::parse(formula)?;
    Ok(build_model_frame(&f, frame)?)
}

/// The rows of `frame` grouped by the levels of factor `name` (level order); levels without
/// rows are left out.
pub fn rows_by_level(frame: &Frame, name: &str) -> Vec<(String, Vec<usize>)> {
    let Some(Column::Factor { codes, levels }) = frame.column(name) else {
        return Vec::new();
    };
    let mut by: Vec<Vec<usize>> = vec![Vec::new(); levels.len()];
    for (r, c) in codes.iter().enumerate() {
        if let Some(c) = c {
            by[*c as usize].push(r);
        }
    }
    levels
        .iter()
        .cloned()
        .zip(by)
        .filter(|(_, r)| !r.is_empty())
        .collect()
}

/// A new frame with the given rows of `frame`. `arm` and `wave` keep their level order; other
/// factors get the R-sorted levels observed in the subset (R's `droplevels`).
pub fn subset_frame(frame: &Frame, rows: &[usize]) -> Result<Frame, FrameError> {
    let mut out = Frame::new();
    for name in frame.names() {
        let Some(col) = frame.column(name) else {
            continue;
        };
        let r = match col {
            Column::Numeric(v) => out.push_numeric(
                name,
                rows.iter()
                    .map(|&i| v.get(i).copied().filter(|x| x.is_finite()))
                    .collect(),
            ),
            Column::Factor { codes, levels } => {
                let vals: Vec<Option<String>> = rows
                    .iter()
                    .map(|&i| {
                        codes
                            .get(i)
                            .copied()
                            .flatten()
                            .and_then(|c| levels.get(c as usize).cloned())
                    })
                    .collect();
                let keep = if name == "arm" || name == "wave" {
                    Some(levels.clone())
                } else {
                    None
                };
                out.push_factor(name, vals, keep)
            }
        };
        r?;
    }
    Ok(out)
}
