//! The trial-outcome analysis: per outcome and analysis set the models of the plan (the
//! primary LMM or MMRM and its sensitivity models), Table 1 and the CONSORT counts. The
//! pipeline asks [`plan_outcome_models`] for the model requests, fits each with
//! [`fit_outcome_job`] (in parallel) and adjusts the secondary outcomes' p-values with
//! [`adjust_secondary`]. Pure: no file is read or written here.

pub mod baseline;
pub mod covariate_mi;
pub mod describe;
pub mod glmm_outcome;
pub mod outcomes;
pub mod padjust;
pub mod spec;

use crate::formula::Formula;
use crate::ingest::Trial;
use crate::lmm::DfMethod;
use crate::results::{OutcomeResult, Trajectory, TrajectoryPoint};
use crate::schema::study::Design;
use crate::scoring::Scored;
use crate::trial_data::{outcome_data, DataSupport, OutcomeData, SetFilter};
pub use outcomes::OutcomeError;
use outcomes::{analyse_outcome, compare_random_slope, summarise_fit, ModelRequest};
use spec::{ModelFamily, OutcomeRole, OutcomesPlan, PAdjustMethod};

/// One model to fit: the request, its data, and for the random-slope sensitivity model the
/// intercept-only model it is compared with.
#[derive(Debug, Clone)]
pub struct OutcomeJob {
    pub req: ModelRequest,
    pub data: OutcomeData,
    /// For the random-slope sensitivity: the intercept-only formula to compare against.
    pub slope_from: Option<Formula>,
}

impl OutcomeJob {
    /// `outcome (set, sensitivity)`, the label of this model in messages.
    pub fn label(&self) -> String {
        format!(
            "{} ({}{})",
            self.req.outcome,
            self.req.analysis_set,
            self.req
                .sensitivity
                .as_deref()
                .map(|s| format!(", {s}"))
                .unwrap_or_default()
        )
    }
}

/// The planned outcome models and the notes of what was left out and why.
#[derive(Debug, Clone, Default)]
pub struct OutcomePlan {
    pub jobs: Vec<OutcomeJob>,
    /// Outcomes or models skipped, in the run's warning text.
    pub notes: Vec<String>,
}

/// The model requests of every outcome of `plan` (the planning stage of the outcome analysis).
///
/// Per outcome: the primary model on all randomized participants (ITT), then, as the plan
/// asks, the sensitivity models as typed changes of the formula: a site random intercept
/// `+ (1 | site_id)`, the IMR training groups as a partially nested effect `+ (0 + imr |
/// group_id)` (Bauer, Sterba & Hallfors 2008), a random slope of months on the participant
/// intercept term `(1 + months | participant_id)` (compared with the intercept-only model by
/// AIC), the fidelity bands and the per-protocol set. In a cluster trial the group intercept
/// `(1 | group_id)` is part of every model.
pub fn plan_outcome_models(trial: &Trial, scored: &Scored, plan: &OutcomesPlan) -> OutcomePlan {
    let mut out = OutcomePlan::default();
    let support = DataSupport::of(trial);
    let df = DfMethod::from(plan.model.df);
    let cluster = trial.study.design == Design::Cluster;
    let template = match Formula::template(&plan.model.formula, "y") {
        Ok(f) => f,
        Err(e) => {
            out.notes
                .push(format!("outcome models not fitted: model.formula: {e}"));
            return out;
        }
    };
    let base = if cluster && !template.uses_column("group_id") {
        match template.add_random("1", "group_id") {
            Ok(f) => f,
            Err(e) => {
                out.notes.push(format!("outcome models not fitted: {e}"));
                return out;
            }
        }
    } else {
        template
    };
    let covariates = match crate::trial_data::covariates::resolve(trial, &base) {
        Ok(c) => c,
        Err(e) => {
            out.notes.push(format!("outcome models not fitted: {e}"));
            return out;
        }
    };
    let mut sensitivity_note: Option<String> = None;
    for o in plan.outcomes {
        if scored.score(&o.name).is_none() {
            out.notes.push(format!(
                "outcome {} skipped: the export has no instrument or score of that name",
                o.name
            ));
            continue;
        }
        let primary = o.role == OutcomeRole::Primary;
        let mut add = |set: &str,
                       sens: Option<&str>,
                       formula: Formula,
                       filter: SetFilter,
                       diag: bool,
                       slope_from: Option<Formula>| {
            let data = outcome_data(trial, scored, &o.name, &filter).map(|d| {
                let d = if covariates.is_empty() {
                    d
                } else {
                    d.with_covariates(trial, &covariates)?
                };
                match o.at_least {
                    Some(t) => d.dichotomized(t),
                    None => Ok(d),
                }
            });
            match data {
                Some(Err(e)) => out.notes.push(format!("{}: {e}", o.name)),
                Some(Ok(data)) => out.jobs.push(OutcomeJob {
                    req: ModelRequest {
                        outcome: o.name.clone(),
                        analysis_set: set.into(),
                        sensitivity: sens.map(str::to_string),
                        primary,
                        formula,
                        reml: plan.model.reml,
                        df,
                        level: plan.conf_level,
                        keep_diagnostics: diag,
                        residual: plan.model.residual.clone(),
                        weights: plan.model.weights.clone(),
                        family: plan.model.family,
                        nagq: plan.model.nagq,
                    },
                    data,
                    slope_from,
                }),
                None => out.notes.push(format!(
                    "{}: no observed scores in analysis set {set}{}",
                    o.name,
                    sens.map(|s| format!(" ({s})")).unwrap_or_default()
                )),
            }
        };
        if plan.analysis_sets.itt {
            add("itt", None, base.clone(), SetFilter::All, true, None);
            let mut s = plan.sensitivity.clone();
            let marginal = plan.model.residual.is_some() || plan.model.weights.is_some();
            let glmm = plan.model.family != ModelFamily::Gaussian;
            if glmm && s.random_slope {
                if primary {
                    sensitivity_note = Some(
                        "the random-slope sensitivity model is not fitted with a GLMM ([model] family): \
                         its AIC comparison is written for the linear model so far"
                            .to_string(),
                    );
                }
                s.random_slope = false;
            }
            if marginal && (s.site || s.groups || s.random_slope) {
                if primary {
                    sensitivity_note = Some(
                        "site, group and random-slope sensitivity models are not fitted with a residual \
                         covariance structure ([model] residual/weights): they need random effects beyond \
                         the participant"
                            .to_string(),
                    );
                }
                s.site = false;
                s.groups = false;
                s.random_slope = false;
            }
            s.site &= support.sites;
            s.groups &= support.groups;
            if s.site {
                if let Ok(f) = base.add_random("1", "site_id") {
                    add("itt", Some("site"), f, SetFilter::All, false, None);
                }
            }
            if s.groups && !cluster {
                if let Ok(f) = base.add_random("0 + imr", "group_id") {
                    add("itt", Some("groups"), f, SetFilter::All, false, None);
                }
            }
            if s.random_slope {
                if let Some(f) = base.add_slope("participant_id", "months") {
                    let reduced = Some(base.clone());
                    add(
                        "itt",
                        Some("random_slope"),
                        f,
                        SetFilter::All,
                        false,
                        reduced,
                    );
                }
            }
            if s.fidelity.enabled && !trial.groups.iter().all(|g| g.fidelity.is_none()) {
                for band in s.fidelity.bands() {
                    let set = if band.name == "high" {
                        "fidelity_high"
                    } else {
                        "fidelity_moderate"
                    };
                    add(set, None, base.clone(), band.filter(), false, None);
                }
            }
        }
        let pp = &plan.analysis_sets.per_protocol;
        if pp.enabled && support.sessions {
            let min = pp.min_share * f64::from(pp.planned_sessions);
            add(
                "per_protocol",
                None,
                base.clone(),
                SetFilter::Completers { min_sessions: min },
                false,
                None,
            );
        }
    }
    out.notes.extend(sensitivity_note);
    out
}

/// Fits one planned model and summarises it (fixed effects, marginal means, contrasts, d);
/// the random-slope model is compared with its intercept-only model and replaced by it when
/// AIC prefers no slope. The primary ITT model keeps its participants' trajectories.
pub fn fit_outcome_job(job: &OutcomeJob) -> Result<OutcomeResult, OutcomeError> {
    let data = &job.data;
    let (mut res, fit) = analyse_outcome(data, &job.req)?;
    if let (Some(reduced_formula), outcomes::FittedModel::Lmm(fit)) = (&job.slope_from, &fit) {
        let opts = crate::lmm::LmmOptions {
            reml: job.req.reml,
            ..Default::default()
        };
        let reduced = crate::lmm::fit_formula(&reduced_formula.to_string(), &data.frame, &opts)?;
        let cmp = compare_random_slope(&reduced, fit.as_ref())?;
        if cmp.chosen == "reduced" {
            // AIC prefers no random slope: report the intercept-only model under this label.
            let mut req = job.req.clone();
            req.formula = reduced_formula.clone();
            res = summarise_fit(data, &req, &reduced)?;
            res.sensitivity = Some("random_slope_rejected".into());
        }
        res.comparison = Some(cmp);
    }
    if job.req.keep_diagnostics {
        res.trajectories = Some(trajectories(data));
    }
    Ok(res)
}

/// Holm (or the spec's method) across the secondary outcomes, per analysis set, sensitivity
/// model, contrast and wave; the primary outcome keeps its raw p.
pub fn adjust_secondary(outs: &mut [OutcomeResult], method: PAdjustMethod) {
    let mut keys: Vec<(String, Option<String>, String, String)> = Vec::new();
    for o in outs.iter() {
        for c in o.contrasts.iter().chain(&o.change_contrasts) {
            let k = (
                o.analysis_set.clone(),
                o.sensitivity.clone(),
                c.contrast.clone(),
                c.wave.clone(),
            );
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    for o in outs.iter_mut().filter(|o| o.primary) {
        for c in o.contrasts.iter_mut().chain(o.change_contrasts.iter_mut()) {
            c.p_adjusted = Some(c.p_value);
        }
    }
    for (set, sens, contrast, wave) in keys {
        let mut at: Vec<(usize, bool, usize)> = Vec::new();
        for (i, o) in outs.iter().enumerate() {
            if o.primary || o.analysis_set != set || o.sensitivity != sens {
                continue;
            }
            for (j, c) in o.contrasts.iter().enumerate() {
                if c.contrast == contrast && c.wave == wave {
                    at.push((i, false, j));
                }
            }
            for (j, c) in o.change_contrasts.iter().enumerate() {
                if c.contrast == contrast && c.wave == wave {
                    at.push((i, true, j));
                }
            }
        }
        let get = |o: &OutcomeResult, chg: bool, j: usize| {
            if chg {
                o.change_contrasts[j].p_value
            } else {
                o.contrasts[j].p_value
            }
        };
        let p: Vec<Option<f64>> = at
            .iter()
            .map(|&(i, c, j)| Some(get(&outs[i], c, j)).filter(|v| v.is_finite()))
            .collect();
        let adj = padjust::p_adjust(&p, method);
        for (&(i, c, j), a) in at.iter().zip(adj) {
            let row = if c {
                &mut outs[i].change_contrasts[j]
            } else {
                &mut outs[i].contrasts[j]
            };
            row.p_adjusted = a;
        }
    }
}

fn trajectories(data: &OutcomeData) -> Vec<Trajectory> {
    use crate::frame::Column;
    let (
        Some(Column::Factor {
            codes: pc,
            levels: pl,
        }),
        Some(Column::Factor {
            codes: ac,
            levels: al,
        }),
        Some(Column::Factor {
            codes: wc,
            levels: wl,
        }),
        Some(Column::Numeric(y)),
        Some(Column::Numeric(m)),
    ) = (
        data.frame.column("participant_id"),
        data.frame.column("arm"),
        data.frame.column("wave"),
        data.frame.column("y"),
        data.frame.column("months"),
    )
    else {
        return Vec::new();
    };
    let mut out: Vec<Trajectory> = Vec::new();
    let mut index: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for i in 0..y.len() {
        let (Some(Some(p)), Some(Some(a)), Some(Some(w))) = (pc.get(i), ac.get(i), wc.get(i))
        else {
            continue;
        };
        let k = *index.entry(*p).or_insert_with(|| {
            out.push(Trajectory {
                participant_id: pl.get(*p as usize).cloned().unwrap_or_default(),
                arm: al.get(*a as usize).cloned().unwrap_or_default(),
                points: Vec::new(),
            });
            out.len() - 1
        });
        out[k].points.push(TrajectoryPoint {
            wave: wl.get(*w as usize).cloned().unwrap_or_default(),
            months: m[i],
            value: y[i],
        });
    }
    out
}
