//! Routine outcome monitoring without a control arm (`[sites.routine]`): the change in a
//! score (HoNOS by default) from baseline to a follow-up wave is adjusted for case mix
//! (baseline score, age, diagnosis) by least squares; each site's adjusted mean change is
//! the overall mean plus its mean of observed minus expected change (indirect
//! standardization), shown against funnel limits `overall +/- z sigma / sqrt(n)` at 95% and
//! 99.8% (Spiegelhalter 2005, Stat Med 24: funnel plots for comparing institutional
//! performance), and shrunken by a random site intercept
//! `change ~ baseline + age + diagnosis + (1 | site_id)` (conditional modes and SDs, lme4).
use std::collections::HashMap;

use thiserror::Error;

use super::contrast::{model_frame, ols_xy};
use super::RoutineSpec;
use crate::frame::{Column, Frame};
use crate::ingest::Trial;
use crate::lmm::{fit_model_frame, LmmOptions};
use crate::results::{RoutineResult, RoutineSiteRow};
use crate::scoring::Scored;
use crate::stats::distributions::qnorm;

/// Why routine monitoring cannot run.
#[derive(Debug, Error)]
pub enum RoutineError {
    #[error("routine monitoring: {0}")]
    Routine(String),
    #[error("routine monitoring: {0}")]
    Model(#[from] super::contrast::SiteModelError),
    #[error("routine monitoring: {0}")]
    Frame(#[from] crate::frame::FrameError),
}

/// Case-mix-adjusted site means of change of `spec.outcome` (see the module docs).
pub fn routine_site_means(
    trial: &Trial,
    scored: &Scored,
    spec: &RoutineSpec,
    level: f64,
) -> Result<RoutineResult, RoutineError> {
    let err = |m: String| RoutineError::Routine(m);
    let values = scored
        .score(&spec.outcome)
        .ok_or_else(|| err(format!("no score `{}` in the export", spec.outcome)))?;
    let waves: Vec<String> = trial.study.waves.iter().map(|w| w.label.clone()).collect();
    let (b, f) = routine_waves(&waves, spec)?;
    let cm = change_frame(trial, scored, values, spec, (b, f))?;
    let frame = &cm.frame;
    let rhs = cm.terms.join(" + ");
    let formula = format!("change ~ {rhs} + (1 | site_id)");
    let mf = model_frame(frame, &formula)?;
    let n = mf.n();
    let ols = ols_xy(&mf.x, &mf.y, &mf.x_names).map_err(|e| err(format!("case-mix model: {e}")))?;
    let overall = mf.y.iter().sum::<f64>() / n as f64;
    let site_codes: Vec<u32> = match frame.column("site_id") {
        Some(Column::Factor { codes, .. }) => {
            mf.rows.iter().map(|&r| codes[r].unwrap_or(0)).collect()
        }
        _ => return Err(err("site_id column missing".into())),
    };
    let site_levels = match frame.column("site_id") {
        Some(Column::Factor { levels, .. }) => levels.clone(),
        _ => Vec::new(),
    };
    // per site: participants, sum of observed change, sum of case-mix expected change
    let mut by: HashMap<u32, (u64, f64, f64)> = HashMap::new();
    for (i, &code) in site_codes.iter().enumerate().take(n) {
        let e = by.entry(code).or_insert((0, 0.0, 0.0));
        e.0 += 1;
        e.1 += mf.y[i];
        e.2 += mf.y[i] - ols.residuals[i];
    }
    let (shrunk, site_sd, warnings) = shrunken_sites(mf);
    let limits = Limits {
        overall,
        sigma: ols.sigma,
        z95: qnorm(1.0 - (1.0 - level) / 2.0),
        z998: qnorm(0.999),
    };
    let rows = site_levels
        .iter()
        .enumerate()
        .filter_map(|(code, id)| {
            let &(cnt, sum_y, sum_fit) = by.get(&(code as u32))?;
            let (sh, csd) = shrunk.get(id).copied().unwrap_or((f64::NAN, f64::NAN));
            Some(limits.row(id, cnt, sum_y, sum_fit, (sh, csd)))
        })
        .collect();
    let label = |w: usize| waves.get(w).cloned().unwrap_or_default();
    Ok(RoutineResult {
        outcome: spec.outcome.clone(),
        baseline_wave: label(b),
        wave: label(f),
        model: format!("lm(change ~ {rhs})"),
        shrinkage_model: format!("lmer(change ~ {rhs} + (1 | site_id))"),
        n_participants: n as u64,
        n_excluded: (cm.n_kept - n) as u64,
        overall_mean_change: overall,
        residual_sd: ols.sigma,
        site_sd,
        rows,
        warnings,
    })
}

/// The baseline and follow-up wave positions of the spec (default the first and the last).
fn routine_waves(waves: &[String], spec: &RoutineSpec) -> Result<(usize, usize), RoutineError> {
    let find = |w: &Option<String>, default: usize| -> Result<usize, RoutineError> {
        match w {
            None => Ok(default),
            Some(l) => waves.iter().position(|x| x == l).ok_or_else(|| {
                RoutineError::Routine(format!(
                    "wave `{l}` is not a study wave ({})",
                    waves.join(", ")
                ))
            }),
        }
    };
    let b = find(&spec.baseline_wave, 0)?;
    let f = find(&spec.wave, waves.len().saturating_sub(1))?;
    if f == b {
        return Err(RoutineError::Routine(
            "the follow-up wave is the baseline wave".into(),
        ));
    }
    Ok((b, f))
}

/// The case-mix frame: one row per participant of the chosen arm with `change`,
/// `baseline`, `site_id` and the covariates; `terms` the fixed terms of the case-mix model.
struct ChangeFrame {
    frame: Frame,
    terms: Vec<String>,
    /// Participants in the frame (of the chosen arm), with or without a change score.
    n_kept: usize,
}

fn change_frame(
    trial: &Trial,
    scored: &Scored,
    values: &[Option<f64>],
    spec: &RoutineSpec,
    (b, f): (usize, usize),
) -> Result<ChangeFrame, RoutineError> {
    let err = |m: String| RoutineError::Routine(m);
    let arm = match &spec.arm {
        None => None,
        Some(a) => Some(
            trial
                .study
                .arm_index(a)
                .ok_or_else(|| err(format!("arm `{a}` is not a study arm")))?,
        ),
    };
    let np = trial.participants.len();
    let mut base = vec![None; np];
    let mut fu = vec![None; np];
    for r in 0..scored.n_rows() {
        let p = scored.participants()[r].index();
        let w = scored.waves()[r].index();
        if let (Some(Some(v)), true) = (values.get(r), p < np) {
            if w == b {
                base[p] = Some(*v);
            } else if w == f {
                fu[p] = Some(*v);
            }
        }
    }
    let keep: Vec<usize> = (0..np)
        .filter(|&p| arm.is_none_or(|a| trial.participants[p].arm.index() == a))
        .collect();
    let mut frame = Frame::new();
    let change: Vec<Option<f64>> = keep
        .iter()
        .map(|&p| match (base[p], fu[p]) {
            (Some(x), Some(y)) => Some(y - x),
            _ => None,
        })
        .collect();
    frame.push_numeric("change", change)?;
    frame.push_numeric("baseline", keep.iter().map(|&p| base[p]).collect())?;
    frame.push_factor(
        "site_id",
        keep.iter()
            .map(|&p| Some(trial.site_label(trial.participants[p].site).to_string()))
            .collect(),
        None,
    )?;
    let mut terms = vec!["baseline".to_string()];
    for c in &spec.covariates {
        let col = covariate(trial, &keep, c).ok_or_else(|| {
            err(format!(
                "covariate `{c}` is neither age, sex, diagnosis nor an extra participants column"
            ))
        })?;
        match col {
            Cov::Num(v) => frame.push_numeric(c, v),
            Cov::Fac(v) => frame.push_factor(c, v, None),
        }?;
        terms.push(c.clone());
    }
    Ok(ChangeFrame {
        frame,
        terms,
        n_kept: keep.len(),
    })
}

/// The shrinkage model `lmer(change ~ case mix + (1 | site_id))`: per site its conditional
/// mode and SD, the site SD, and warnings (singular or not fitted).
fn shrunken_sites(
    mf: crate::formula::ModelFrame,
) -> (HashMap<String, (f64, f64)>, f64, Vec<String>) {
    let mut warnings = Vec::new();
    let lmm = fit_model_frame(mf, &LmmOptions::default());
    let (shrunk, site_sd) = match &lmm {
        Ok(fit) => {
            if fit.singular {
                warnings
                    .push("shrinkage model singular: the site variance is estimated as 0".into());
            }
            let sd = fit.varcorr().first().map_or(f64::NAN, |v| v.sd(0));
            let mut m = HashMap::new();
            if let Ok(terms) = fit.ranef() {
                if let Some(t) = terms.iter().find(|t| t.factor == "site_id") {
                    for (lvl, id) in t.levels.iter().enumerate() {
                        m.insert(
                            id.clone(),
                            (t.values[lvl * t.names.len()], t.cond_sd(lvl, 0)),
                        );
                    }
                }
            }
            (m, sd)
        }
        Err(e) => {
            warnings.push(format!("shrinkage model not fitted: {e}"));
            (HashMap::new(), f64::NAN)
        }
    };
    (shrunk, site_sd, warnings)
}

/// The funnel-plot control limits around the overall mean change: `overall +- z SE` with
/// `SE = sigma / sqrt(n)` of the case-mix model (Spiegelhalter 2005, Stat Med 24).
struct Limits {
    overall: f64,
    sigma: f64,
    z95: f64,
    z998: f64,
}

impl Limits {
    /// One site's row from its count and sums of observed and expected change.
    fn row(
        &self,
        id: &str,
        cnt: u64,
        sum_y: f64,
        sum_fit: f64,
        (shrunken, conditional_sd): (f64, f64),
    ) -> RoutineSiteRow {
        let overall = self.overall;
        let (z95, z998) = (self.z95, self.z998);
        let nn = cnt as f64;
        let observed = sum_y / nn;
        let expected = sum_fit / nn;
        let adjusted = overall + observed - expected;
        let se = self.sigma / nn.sqrt();
        let funnel = if adjusted > overall + z998 * se {
            "above 99.8%"
        } else if adjusted > overall + z95 * se {
            "above 95%"
        } else if adjusted < overall - z998 * se {
            "below 99.8%"
        } else if adjusted < overall - z95 * se {
            "below 95%"
        } else {
            "within"
        };
        RoutineSiteRow {
            site_id: id.to_string(),
            n: cnt,
            observed,
            expected,
            adjusted,
            std_error: se,
            limit95_low: overall - z95 * se,
            limit95_high: overall + z95 * se,
            limit998_low: overall - z998 * se,
            limit998_high: overall + z998 * se,
            funnel: funnel.into(),
            shrunken,
            conditional_sd,
        }
    }
}

enum Cov {
    Num(Vec<Option<f64>>),
    Fac(Vec<Option<String>>),
}

fn covariate(trial: &Trial, keep: &[usize], name: &str) -> Option<Cov> {
    let ps = &trial.participants;
    match name {
        "age" => Some(Cov::Num(
            keep.iter().map(|&p| ps[p].age.map(|a| a as f64)).collect(),
        )),
        "sex" => Some(Cov::Fac(keep.iter().map(|&p| ps[p].sex.clone()).collect())),
        "diagnosis" => Some(Cov::Fac(
            keep.iter().map(|&p| ps[p].diagnosis.clone()).collect(),
        )),
        other => {
            let col = trial.participant_extra.iter().find(|c| c.name == other)?;
            let vals: Vec<Option<String>> = keep
                .iter()
                .map(|&p| col.values.get(p).cloned().flatten())
                .collect();
            let numeric = vals
                .iter()
                .flatten()
                .all(|s| s.trim().parse::<f64>().is_ok());
            Some(if numeric {
                Cov::Num(
                    vals.iter()
                        .map(|v| v.as_ref().and_then(|s| s.trim().parse().ok()))
                        .collect(),
                )
            } else {
                Cov::Fac(vals)
            })
        }
    }
}
