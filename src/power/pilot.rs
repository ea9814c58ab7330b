//! Outcome parameters of a plan estimated from an earlier trial (the pilot; `herstel power
//! --from EXPORT`), as simr takes them from a fitted model: the trial analysis' LMM
//! `y ~ arm * wave + (1 | participant_id)`, plus `(1 | site_id)` with more than one site and
//! the group term of the pilot's design (`(0 + imr | group_id)` when only the intervention arm
//! is grouped, `(1 | group_id)` when controls are grouped too), fitted by REML; the variance
//! components give the ICCs and the total SD. The residual autocorrelation is not estimated
//! (the model is compound symmetric) and set to 0.
use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::formula::Formula;
use crate::frame::Column;
use crate::lmm::{fit_formula, LmmOptions};
use crate::trial_data::OutcomeData;

/// What the pilot gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PilotEstimates {
    pub formula: String,
    pub n_participants: usize,
    pub n_observations: usize,
    /// Mean of the observed baseline scores.
    pub baseline_mean: f64,
    /// sqrt(participant + site + residual (+ group in a cluster trial) variance).
    pub baseline_sd: f64,
    pub icc_participant: f64,
    pub icc_site: f64,
    /// Cluster pilot: group variance over the total; partially nested: `tau^2 / (tau^2 +
    /// total)`; `None` without groups.
    pub icc_group: Option<f64>,
    pub singular: bool,
}

fn levels_of(data: &OutcomeData, name: &str) -> Vec<String> {
    match data.frame.column(name) {
        Some(Column::Factor { levels, .. }) => levels.clone(),
        _ => Vec::new(),
    }
}

/// Estimates the outcome parameters from the pilot's modelling data (all randomized).
pub fn estimate(data: &OutcomeData) -> Result<PilotEstimates, String> {
    let sites = levels_of(data, "site_id").len();
    let groups = levels_of(data, "group_id");
    let real_groups = groups.iter().filter(|g| !g.starts_with("single:")).count();
    // Controls in real groups: a cluster trial.
    let cluster = match (data.frame.column("group_id"), data.frame.column("imr")) {
        (Some(Column::Factor { codes, levels }), Some(Column::Numeric(imr))) => {
            codes.iter().zip(imr).any(|(c, t)| {
                *t == 0.0 && c.is_some_and(|c| !levels[c as usize].starts_with("single:"))
            })
        }
        _ => false,
    };
    let mut f = Formula::parse("y ~ arm * wave")
        .and_then(|f| f.add_random("1", "participant_id"))
        .map_err(|e| e.to_string())?;
    if sites > 1 {
        f = f.add_random("1", "site_id").map_err(|e| e.to_string())?;
    }
    if real_groups > 1 {
        f = if cluster {
            f.add_random("1", "group_id")
        } else {
            f.add_random("0 + imr", "group_id")
        }
        .map_err(|e| e.to_string())?;
    }
    let fit = fit_formula(&f.to_string(), &data.frame, &LmmOptions::default())
        .map_err(|e| format!("pilot model {f}: {e}"))?;
    let mut v_part = 0.0;
    let mut v_site = 0.0;
    let mut v_group = None;
    for t in fit.varcorr() {
        let v = t.sd(0).powi(2);
        match t.group.as_str() {
            "participant_id" => v_part = v,
            "site_id" => v_site = v,
            "group_id" => v_group = Some(v),
            _ => {}
        }
    }
    let v_res = fit.sigma * fit.sigma;
    let total = v_part + v_site + v_res + if cluster { v_group.unwrap_or(0.0) } else { 0.0 };
    if !(total > 0.0 && total.is_finite()) {
        return Err("the pilot's variance components are all 0".into());
    }
    let base_wave = data.waves.first().cloned().unwrap_or_default();
    let mut base = Vec::new();
    if let (Some(Column::Numeric(y)), Some(Column::Factor { codes, levels })) =
        (data.frame.column("y"), data.frame.column("wave"))
    {
        for (v, c) in y.iter().zip(codes) {
            if c.is_some_and(|c| levels[c as usize] == base_wave) && v.is_finite() {
                base.push(*v);
            }
        }
    }
    if base.is_empty() {
        return Err(format!("the pilot has no scores at baseline ({base_wave})"));
    }
    let icc_group = v_group.map(|g| if cluster { g / total } else { g / (g + total) });
    Ok(PilotEstimates {
        formula: f.to_string(),
        n_participants: levels_of(data, "participant_id").len(),
        n_observations: fit.n_obs(),
        baseline_mean: base.iter().sum::<f64>() / base.len() as f64,
        baseline_sd: total.sqrt(),
        icc_participant: v_part / total,
        icc_site: v_site / total,
        icc_group,
        singular: fit.singular,
    })
}

impl PilotEstimates {
    /// Puts the estimates into the plan's `[outcome]` (the group ICC only when the pilot has
    /// groups; autocorrelation 0).
    pub fn apply(&self, plan: &mut Plan) {
        let o = &mut plan.outcome;
        o.baseline_mean = self.baseline_mean;
        o.baseline_sd = self.baseline_sd;
        o.icc_participant = self.icc_participant;
        o.icc_site = self.icc_site;
        if let Some(g) = self.icc_group {
            o.icc_group = g;
        }
        o.autocorrelation = 0.0;
    }

    /// One paragraph for the terminal.
    pub fn describe(&self, source: &str) -> String {
        format!(
            "pilot {source}: lmer({}) on {} participants, {} observations{}: baseline mean {:.3}, SD {:.3}, ICC participant {:.3}, site {:.3}{}; autocorrelation set to 0",
            self.formula,
            self.n_participants,
            self.n_observations,
            if self.singular { " (singular fit)" } else { "" },
            self.baseline_mean,
            self.baseline_sd,
            self.icc_participant,
            self.icc_site,
            self.icc_group
                .map_or(String::new(), |g| format!(", group {g:.3}"))
        )
    }
}
