//! The imputation model: an MMRM on the observed follow-up values,
//! `y ~ <rhs>` (default `baseline + arm * wave`) with an unstructured covariance of the waves
//! within a participant, common to both arms (rbmi `same_cov = TRUE`), REML (rbmi's
//! `method_condmean(REML = TRUE)`); nlme's `gls(correlation = corSymm(form = ~ widx | id),
//! weights = varIdent(form = ~ 1 | wave))`, fitted by [`crate::mmrm`] (the crate's one GLS
//! likelihood, BOBYQA then Newton steps to a vanishing gradient).
//!
//! The design rows of every participant and wave are built once, for the participant's own arm
//! and with the arm set to the reference (rbmi stat_specs, "Marginal imputation distribution":
//! the reference mean keeps the participant's covariates), from one model frame of all cells
//! twice (so both arms' columns exist in both halves), plus the contrast rows at the mean
//! baseline. The leave-one-out refits of the jackknife reuse those rows.
use nalgebra::DMatrix;

use super::{MissingError, WideData};
use crate::formula::{build_model_frame, Formula, ModelFormula};
use crate::frame::Frame;
use crate::lmm::DfMethod;
use crate::mmrm::{
    fit::fit_data, fit_model, CovKind, MmrmData, MmrmOptions, Residual, ResidualSpec, RowData,
};

/// The imputation model's right-hand side in R syntax over the columns `baseline`, `arm`,
/// `wave`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImputationModel {
    pub rhs: String,
}

impl Default for ImputationModel {
    fn default() -> Self {
        ImputationModel {
            rhs: "baseline + arm * wave".to_string(),
        }
    }
}

impl ImputationModel {
    /// `y ~ <rhs>`.
    pub fn formula(&self) -> String {
        format!("y ~ {}", self.rhs)
    }
}

/// Design rows of all participants and waves.
#[derive(Debug, Clone)]
pub struct Design {
    pub x_names: Vec<String>,
    pub p: usize,
    /// Own arm: row `i * J + w`, row-major, p columns.
    pub x_own: Vec<f64>,
    /// Arm set to the reference arm.
    pub x_ref: Vec<f64>,
    /// Per wave, the contrast `x(active, w, mean baseline) - x(reference, w, mean baseline)`.
    pub contrasts: Vec<Vec<f64>>,
}

/// A fitted imputation model.
#[derive(Debug, Clone)]
pub struct ModelFit {
    pub beta: Vec<f64>,
    /// The common J x J covariance of the follow-up waves.
    pub sigma: DMatrix<f64>,
    /// Natural covariance parameters (the warm start of refits).
    pub gamma: Vec<f64>,
    pub max_abs_gradient: f64,
}

/// The MMRM contrast at one wave (Satterthwaite df).
#[derive(Debug, Clone, PartialEq)]
pub struct WaveContrast {
    pub estimate: f64,
    pub std_error: f64,
    pub df: f64,
    pub conf_low: f64,
    pub conf_high: f64,
    pub p_value: f64,
}

fn frame_of(
    data: &WideData,
    cells: &[(usize, usize, Option<f64>)],
    arm_of: &dyn Fn(usize, usize) -> usize,
    baseline_of: &dyn Fn(usize, usize) -> f64,
) -> Result<Frame, String> {
    let mut f = Frame::new();
    let y = cells.iter().map(|c| c.2).collect();
    let pid = cells
        .iter()
        .map(|c| Some(data.ids.get(c.0).cloned().unwrap_or_default()))
        .collect();
    let arm = cells
        .iter()
        .enumerate()
        .map(|(k, c)| data.arms.get(arm_of(k, c.0)).cloned())
        .collect();
    let wave = cells.iter().map(|c| data.waves.get(c.1).cloned()).collect();
    let base = cells
        .iter()
        .enumerate()
        .map(|(k, c)| Some(baseline_of(k, c.0)))
        .collect();
    f.push_numeric("y", y).map_err(|e| e.to_string())?;
    f.push_factor("participant_id", pid, None)
        .map_err(|e| e.to_string())?;
    f.push_factor("arm", arm, Some(data.arms.clone()))
        .map_err(|e| e.to_string())?;
    f.push_factor("wave", wave, Some(data.waves.clone()))
        .map_err(|e| e.to_string())?;
    f.push_numeric("baseline", base)
        .map_err(|e| e.to_string())?;
    Ok(f)
}

impl Design {
    /// Builds the rows of `model` for every participant and wave of `data`, own arm and
    /// reference arm, and the contrast rows of `active - reference` at the mean baseline.
    pub fn build(
        model: &ImputationModel,
        data: &WideData,
        reference: usize,
        active: usize,
    ) -> Result<Design, MissingError> {
        let formula = model.formula();
        let err = |message: String| MissingError::Design {
            formula: formula.clone(),
            message,
        };
        let (n, j) = (data.ids.len(), data.waves.len());
        let nj = n * j;
        let mean_b = data.baseline.iter().sum::<f64>() / n as f64;
        // Cells: all (own arm), all (reference arm), contrast rows (active, reference) x wave.
        let mut cells = Vec::with_capacity(2 * nj + 2 * j);
        for _half in 0..2 {
            for i in 0..n {
                for w in 0..j {
                    cells.push((i, w, Some(0.0)));
                }
            }
        }
        for _k in 0..2 {
            for w in 0..j {
                cells.push((0, w, Some(0.0)));
            }
        }
        let arm_of = |k: usize, i: usize| -> usize {
            if k < nj {
                data.arm[i]
            } else if k < 2 * nj {
                reference
            } else if k < 2 * nj + j {
                active
            } else {
                reference
            }
        };
        let base_of = |k: usize, i: usize| -> f64 {
            if k < 2 * nj {
                data.baseline[i]
            } else {
                mean_b
            }
        };
        let frame = frame_of(data, &cells, &arm_of, &base_of).map_err(&err)?;
        let f = ModelFormula::parse(&formula).map_err(|e| err(e.to_string()))?;
        if !f.random.is_empty() {
            return Err(err(
                "random-effects terms are not allowed (the covariance is unstructured)".into(),
            ));
        }
        // The model-frame builder wants a random term: the helper `(1 | participant_id)` (as
        // `mmrm::fit_model` adds it); only the fixed-effects matrix is used.
        let aug = Formula::parse(&formula)
            .and_then(|g| g.add_random("1", "participant_id"))
            .and_then(|g| ModelFormula::parse(&g.to_string()))
            .map_err(|e| err(e.to_string()))?;
        let mf = build_model_frame(&aug, &frame).map_err(|e| err(e.to_string()))?;
        if mf.rows.len() != cells.len() {
            return Err(err(format!(
                "{} design rows dropped for missing values",
                cells.len() - mf.rows.len()
            )));
        }
        let p = mf.x_names.len();
        let x_own = mf.x[..nj * p].to_vec();
        let x_ref = mf.x[nj * p..2 * nj * p].to_vec();
        let act = 2 * nj;
        let contrasts = (0..j)
            .map(|w| {
                (0..p)
                    .map(|c| mf.x[(act + w) * p + c] - mf.x[(act + j + w) * p + c])
                    .collect()
            })
            .collect();
        Ok(Design {
            x_names: mf.x_names.clone(),
            p,
            x_own,
            x_ref,
            contrasts,
        })
    }

    /// Means `X_i beta` for participant `i` (J values), own arm or reference arm.
    pub fn means(&self, beta: &[f64], i: usize, j: usize, reference: bool) -> Vec<f64> {
        let x = if reference { &self.x_ref } else { &self.x_own };
        (0..j)
            .map(|w| {
                let row = &x[(i * j + w) * self.p..(i * j + w + 1) * self.p];
                row.iter().zip(beta).map(|(a, b)| a * b).sum()
            })
            .collect()
    }
}

/// Fits the imputation model to the observed values of every participant but `skip`,
/// warm-started from `start` (natural covariance parameters).
pub fn fit(
    design: &Design,
    data: &WideData,
    skip: Option<usize>,
    start: Option<&[f64]>,
) -> Result<ModelFit, crate::mmrm::MmrmError> {
    let who: Vec<usize> = (0..data.ids.len()).filter(|&i| Some(i) != skip).collect();
    fit_participants(design, data, &who, start)
}

/// Fits the imputation model to the participants `who` (indices into `data`; a participant
/// listed twice, as in a bootstrap sample, counts as two independent participants).
pub fn fit_participants(
    design: &Design,
    data: &WideData,
    who: &[usize],
    start: Option<&[f64]>,
) -> Result<ModelFit, crate::mmrm::MmrmError> {
    let j = data.waves.len();
    let p = design.p;
    let (mut x, mut y, mut subject, mut wave) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut names = Vec::with_capacity(who.len());
    for (k, &i) in who.iter().enumerate() {
        names.push(data.ids.get(i).cloned().unwrap_or_default());
        let Some(row) = data.y.get(i) else { continue };
        for (w, v) in row.iter().enumerate() {
            if let Some(v) = v {
                x.extend_from_slice(&design.x_own[(i * j + w) * p..(i * j + w + 1) * p]);
                y.push(*v);
                subject.push(k as u32);
                wave.push(w);
            }
        }
    }
    let zeros = vec![0usize; y.len()];
    let md = MmrmData::new(
        RowData {
            x: &x,
            p,
            y: &y,
            subject: &subject,
            wave: &wave,
            group: &zeros,
            stratum: &zeros,
            z: &[],
            q_re: 0,
            n_waves: j,
            n_groups: 1,
            n_strata: 1,
            subject_names: &names,
        },
        Residual::Waves(CovKind::Us),
    )?;
    // A warm start (leave-one-out, bootstrap) is polished by Newton steps directly; BOBYQA
    // runs only when they do not converge.
    let opts = MmrmOptions {
        start_gamma: start.map(<[f64]>::to_vec),
        newton_from_start: start.is_some(),
        ..MmrmOptions::default()
    };
    let opt = fit_data(&md, &opts)?;
    let sigma = opt
        .params
        .sigmas
        .first()
        .cloned()
        .ok_or_else(|| crate::mmrm::MmrmError::Numerical("no covariance".into()))?;
    Ok(ModelFit {
        beta: opt.evaluation.beta.iter().copied().collect(),
        sigma,
        gamma: opt.gamma,
        max_abs_gradient: opt.max_abs_gradient,
    })
}

/// The MMRM (MAR) contrast per wave with Satterthwaite df, from [`crate::mmrm::fit_model`] on
/// the observed rows (the same model as [`fit`]; its coefficients are checked against it).
pub fn mmrm_contrasts(
    model: &ImputationModel,
    design: &Design,
    data: &WideData,
    full: &ModelFit,
    level: f64,
) -> Result<Vec<WaveContrast>, MissingError> {
    let formula = model.formula();
    let err = |message: String| MissingError::Design {
        formula: formula.clone(),
        message,
    };
    let cells: Vec<(usize, usize, Option<f64>)> = data
        .y
        .iter()
        .enumerate()
        .flat_map(|(i, row)| {
            row.iter()
                .enumerate()
                .filter_map(move |(w, v)| v.map(|v| (i, w, Some(v))))
        })
        .collect();
    let frame =
        frame_of(data, &cells, &|_, i| data.arm[i], &|_, i| data.baseline[i]).map_err(&err)?;
    let spec = ResidualSpec::parse("us(wave | participant_id)").map_err(|e| err(e.to_string()))?;
    let opts = MmrmOptions {
        start_gamma: Some(full.gamma.clone()),
        ..MmrmOptions::default()
    };
    let fit = fit_model(&formula, Some(&spec), None, &frame, &opts).map_err(|source| {
        MissingError::Model {
            formula: formula.clone(),
            source,
        }
    })?;
    if fit.x_names != design.x_names {
        return Err(err(format!(
            "the fitted coefficients ({}) differ from the design's ({})",
            fit.x_names.join(", "),
            design.x_names.join(", ")
        )));
    }
    let p = design.p;
    let l = DMatrix::from_fn(design.contrasts.len(), p, |r, c| design.contrasts[r][c]);
    let rows = fit
        .contrast_level(&l, DfMethod::Satterthwaite, level)
        .map_err(|e| err(e.to_string()))?;
    Ok(rows
        .iter()
        .map(|r| WaveContrast {
            estimate: r.estimate,
            std_error: r.std_error,
            df: r.df,
            conf_low: r.conf_low,
            conf_high: r.conf_high,
            p_value: r.p_value,
        })
        .collect())
}
