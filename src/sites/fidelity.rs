//! The IMR Fidelity Scale of the training groups as a moderator of the treatment effect.
//!
//! * By band, as the Dutch trial did (Roosenschoon et al. 2021, Front Psychiatry 12:723435):
//!   controls plus the intervention participants whose group scored high (>= 4) or moderate
//!   (3 to < 4), each band against the whole control arm, with the trial's outcome model.
//! * Continuously, in the partially nested model (Bauer, Sterba & Hallfors 2008, Multivariate
//!   Behav Res 43): `y ~ arm * wave + fidelity_c + wave:fidelity_c + (1 | participant_id) +
//!   (0 + imr | group_id)`, where `fidelity_c` is the group's fidelity centred at the mean
//!   over groups for intervention participants and 0 for controls. The moderation at a wave is
//!   the change of the intervention minus control contrast per fidelity point:
//!   `fidelity_c + wave<w>:fidelity_c`.
use std::collections::HashMap;

use nalgebra::DMatrix;

use super::contrast::{count_levels, fit_contrasts, wave_contrast, ContrastDesign, SiteModelError};
use crate::formula::Formula;
use crate::frame::{Column, Frame};
use crate::ingest::Trial;
use crate::lmm::{fit_formula, DfMethod, LmmOptions};
use crate::results::{FidelityBandRow, FidelityModerator, FidelityResult};
use crate::schema::study::Design;
use crate::scoring::Scored;
use crate::trial_data::{outcome_data, FidelityBands, OutcomeData, SetFilter};

/// Options of [`fidelity_analysis`].
#[derive(Debug, Clone)]
pub struct FidelityOptions<'a> {
    pub bands: FidelityBands,
    pub moderator: bool,
    /// The outcome model formula on the frame's columns (response `y`).
    pub formula: &'a Formula,
    pub df: DfMethod,
    pub level: f64,
    /// Follow-up waves to report.
    pub waves: &'a [String],
}

/// Band contrasts and the continuous-moderator model of `outcome`.
pub fn fidelity_analysis(
    trial: &Trial,
    scored: &Scored,
    outcome: &str,
    opt: &FidelityOptions<'_>,
) -> FidelityResult {
    let mut warnings = Vec::new();
    let mut bands = Vec::new();
    let cluster = trial.study.design == Design::Cluster;
    let formula = if cluster && !opt.formula.uses_column("group_id") {
        match opt.formula.add_random("1", "group_id") {
            Ok(f) => f,
            Err(e) => {
                return FidelityResult {
                    outcome: outcome.to_string(),
                    bands,
                    moderator: None,
                    warnings: vec![format!("fidelity: {e}")],
                }
            }
        }
    } else {
        opt.formula.clone()
    }
    .to_string();
    for b in opt.bands.bands() {
        let (band, range, low, high) = (b.name, &b.range, b.low, b.high);
        let n_groups = trial
            .groups
            .iter()
            .filter(|g| g.fidelity.is_some_and(|f| f >= low && f < high))
            .count() as u64;
        if n_groups == 0 {
            warnings.push(format!(
                "fidelity band {band} ({range}): no training groups"
            ));
            continue;
        }
        let Some(data) = outcome_data(trial, scored, outcome, &b.filter()) else {
            warnings.push(format!("fidelity band {band}: no observed scores"));
            continue;
        };
        let design = ContrastDesign {
            arms: &data.arms,
            waves: &data.waves,
            intervention: &data.intervention,
            df: opt.df,
            level: opt.level,
        };
        let (n_int, n_ctl) = arm_counts(&data);
        match fit_contrasts(&data.frame, &formula, &design) {
            Ok(m) => {
                for n in &m.notes {
                    warnings.push(format!("fidelity band {band}: {n}"));
                }
                for c in m.contrasts.iter().filter(|c| opt.waves.contains(&c.wave)) {
                    bands.push(FidelityBandRow {
                        band: band.into(),
                        range: range.to_string(),
                        wave: c.wave.clone(),
                        n_intervention: n_int,
                        n_control: n_ctl,
                        n_groups,
                        method: m.method,
                        estimate: c.estimate,
                        std_error: c.std_error,
                        df: c.df,
                        p_value: c.p_value,
                        conf_low: c.conf_low,
                        conf_high: c.conf_high,
                    });
                }
            }
            Err(e) => warnings.push(format!("fidelity band {band}: model not fitted: {e}")),
        }
    }
    let moderator = if opt.moderator {
        match moderator_model(trial, scored, outcome, opt, cluster) {
            Ok(m) => Some(m),
            Err(e) => {
                warnings.push(format!("fidelity moderator model not fitted: {e}"));
                None
            }
        }
    } else {
        None
    };
    FidelityResult {
        outcome: outcome.to_string(),
        bands,
        moderator,
        warnings,
    }
}

/// Participants per arm (intervention, control) in the frame.
fn arm_counts(data: &OutcomeData) -> (u64, u64) {
    let (Some(Column::Factor { codes: pc, .. }), Some(Column::Numeric(imr))) = (
        data.frame.column("participant_id"),
        data.frame.column("imr"),
    ) else {
        return (0, 0);
    };
    let mut seen: HashMap<u32, bool> = HashMap::new();
    for (p, t) in pc.iter().zip(imr) {
        if let Some(p) = p {
            seen.insert(*p, *t > 0.5);
        }
    }
    let n_int = seen.values().filter(|t| **t).count() as u64;
    (n_int, seen.len() as u64 - n_int)
}

fn moderator_model(
    trial: &Trial,
    scored: &Scored,
    outcome: &str,
    opt: &FidelityOptions<'_>,
    cluster: bool,
) -> Result<FidelityModerator, SiteModelError> {
    let rated: Vec<f64> = trial.groups.iter().filter_map(|g| g.fidelity).collect();
    if rated.len() < 3 {
        return Err(SiteModelError::TooFewRatedGroups(rated.len()));
    }
    let mean = rated.iter().sum::<f64>() / rated.len() as f64;
    let fid: HashMap<&str, f64> = trial
        .groups
        .iter()
        .filter_map(|g| g.fidelity.map(|f| (g.id.as_str(), f)))
        .collect();
    let data =
        outcome_data(trial, scored, outcome, &SetFilter::All).ok_or(SiteModelError::NoScores)?;
    let (Some(Column::Factor { codes, levels }), Some(Column::Numeric(imr))) =
        (data.frame.column("group_id"), data.frame.column("imr"))
    else {
        return Err(SiteModelError::MissingDesignColumns);
    };
    let values: Vec<Option<f64>> = codes
        .iter()
        .zip(imr)
        .map(|(c, t)| {
            if *t < 0.5 {
                return Some(0.0);
            }
            let g = c.and_then(|c| levels.get(c as usize))?;
            fid.get(g.as_str()).map(|f| f - mean)
        })
        .collect();
    let mut frame: Frame = data.frame.clone();
    frame.push_numeric("fidelity_c", values)?;
    let group_lhs = if cluster { "1" } else { "0 + imr" };
    let formula = opt
        .formula
        .add_fixed("fidelity_c + wave:fidelity_c")
        .and_then(|f| f.add_random(group_lhs, "group_id"))?;
    let fit = fit_formula(&formula.to_string(), &frame, &LmmOptions::default())?;
    let names = fit.fixef_names().to_vec();
    let Some(main) = names.iter().position(|n| n == "fidelity_c") else {
        return Err(SiteModelError::ModeratorDropped);
    };
    let mut l_rows = Vec::new();
    for (k, w) in data.waves.iter().enumerate() {
        if !opt.waves.contains(w) {
            continue;
        }
        let mut l = vec![0.0; names.len()];
        l[main] = 1.0;
        if k > 0 {
            let wn = format!("wave{w}");
            match names
                .iter()
                .position(|n| n.contains("fidelity_c") && n.split(':').any(|part| part == wn))
            {
                Some(i) => l[i] = 1.0,
                None => continue,
            }
        }
        l_rows.push((w.clone(), l));
    }
    let lm = DMatrix::from_fn(l_rows.len(), names.len(), |i, j| l_rows[i].1[j]);
    let res = if l_rows.is_empty() {
        Vec::new()
    } else {
        fit.contrast_level(&lm, opt.df, opt.level)?
    };
    let rows = l_rows
        .iter()
        .zip(res)
        .map(|((w, _), r)| wave_contrast(w, r))
        .collect();
    let mut warnings = fit.warnings.clone();
    if fit.singular && !warnings.iter().any(|w| w.contains("singular")) {
        warnings.push(format!("singular fit: {}", fit.singular_terms.join("; ")));
    }
    let display = formula.display(outcome);
    Ok(FidelityModerator {
        model: display,
        fidelity_mean: mean,
        n_groups: rated.len() as u64,
        n_participants: count_levels(&frame, "participant_id", &fit.frame.rows) as u64,
        n_observations: fit.n_obs() as u64,
        singular: fit.singular,
        rows,
        warnings,
    })
}
