//! Several exports at once (`herstel run` with repeated `--data`, README.md).
//!
//! * [`pool_trials`]: one [`Trial`] from several exports of the same design (arms, waves),
//!   with the study as a level: every id is prefixed `<study>:` so sites, groups and
//!   participants of different studies stay apart, and a `study` column is added to the
//!   participants and sites.
//! * [`routine_site_means`]: routine outcome monitoring without a control arm. The change in a
//!   score (HoNOS by default) from baseline to a follow-up wave is adjusted for case mix
//!   (baseline score, age, diagnosis) by least squares; each site's adjusted mean change is
//!   the overall mean plus its mean of observed minus expected change (indirect
//!   standardization), shown against funnel limits `overall +/- z sigma / sqrt(n)` at 95% and
//!   99.8% (Spiegelhalter 2005, Stat Med 24: funnel plots for comparing institutional
//!   performance), and shrunken by a random site intercept
//!   `change ~ baseline + age + diagnosis + (1 | site_id)` (conditional modes and SDs, lme4).
// PoolError carries the mismatching labels so the message can name them; pooling runs once.
#![allow(clippy::result_large_err)]
use std::collections::HashMap;

use thiserror::Error;

use super::contrast::{model_frame, ols_xy};
use super::RoutineSpec;
use crate::frame::{Column, Frame};
use crate::ingest::{
    Admission, Assessment, ExtraColumn, Group, GroupId, ItemMatrix, Participant, ParticipantId,
    PreScored, Site, SiteId, Trial,
};
use crate::lmm::{fit_model_frame, LmmOptions};
use crate::results::{RoutineResult, RoutineSiteRow};
use crate::scoring::Scored;
use crate::stats::distributions::qnorm;

/// Why exports cannot be pooled, or routine monitoring cannot run.
#[derive(Debug, Error, PartialEq)]
pub enum PoolError {
    #[error("no exports to pool")]
    Empty,
    #[error("study labels must be distinct and non-empty, found {0:?}")]
    Labels(Vec<String>),
    #[error("export {study} has arms {found:?} (intervention {found_int}) but {first} has {expected:?} (intervention {expected_int}); pooled exports need the same arms")]
    Arms {
        study: String,
        first: String,
        found: Vec<String>,
        found_int: String,
        expected: Vec<String>,
        expected_int: String,
    },
    #[error("export {study} has waves {found:?} but {first} has {expected:?}; pooled exports need the same wave labels")]
    Waves {
        study: String,
        first: String,
        found: Vec<String>,
        expected: Vec<String>,
    },
    #[error("export {study} is a {found} trial but {first} is {expected}; pooled exports need the same design")]
    Design {
        study: String,
        first: String,
        found: String,
        expected: String,
    },
    #[error("routine monitoring: {0}")]
    Routine(String),
}

/// Pools exports labelled `study1`, `study2`, ... (see [`pool_trials_labelled`]).
pub fn pool_trials(trials: Vec<Trial>) -> Result<Trial, PoolError> {
    let labelled = trials
        .into_iter()
        .enumerate()
        .map(|(i, t)| (format!("study{}", i + 1), t))
        .collect();
    pool_trials_labelled(labelled)
}

fn arms_of(t: &Trial) -> (Vec<String>, String) {
    (
        t.study.arms.clone(),
        t.study
            .arms
            .get(t.study.intervention)
            .cloned()
            .unwrap_or_default(),
    )
}

/// Pools exports with the same arms (labels, order, intervention), wave labels and design
/// into one trial. Ids become `<label>:<id>`; instruments kept are those every export has with
/// the same definition; extra columns kept are those every export has, plus `study`. Wave
/// months are the first export's. Exclusions keep their table prefixed with the label.
pub fn pool_trials_labelled(trials: Vec<(String, Trial)>) -> Result<Trial, PoolError> {
    let Some((first_label, first)) = trials.first() else {
        return Err(PoolError::Empty);
    };
    let labels: Vec<String> = trials.iter().map(|(l, _)| l.clone()).collect();
    let mut sorted = labels.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != labels.len() || labels.iter().any(|l| l.trim().is_empty()) {
        return Err(PoolError::Labels(labels));
    }
    let (arms0, int0) = arms_of(first);
    let waves0: Vec<String> = first.study.waves.iter().map(|w| w.label.clone()).collect();
    for (label, t) in &trials[1..] {
        let (arms, int) = arms_of(t);
        if arms != arms0 || int != int0 {
            return Err(PoolError::Arms {
                study: label.clone(),
                first: first_label.clone(),
                found: arms,
                found_int: int,
                expected: arms0,
                expected_int: int0,
            });
        }
        let waves: Vec<String> = t.study.waves.iter().map(|w| w.label.clone()).collect();
        if waves != waves0 {
            return Err(PoolError::Waves {
                study: label.clone(),
                first: first_label.clone(),
                found: waves,
                expected: waves0,
            });
        }
        if t.study.design != first.study.design {
            return Err(PoolError::Design {
                study: label.clone(),
                first: first_label.clone(),
                found: format!("{:?}", t.study.design).to_lowercase(),
                expected: format!("{:?}", first.study.design).to_lowercase(),
            });
        }
    }
    // Instruments every export has with the same definition, in the first export's order.
    let instruments: Vec<usize> = (0..first.instruments.len())
        .filter(|&i| {
            trials[1..]
                .iter()
                .all(|(_, t)| t.instruments.iter().any(|x| x == &first.instruments[i]))
        })
        .collect();
    let common_extra = |get: fn(&Trial) -> &Vec<ExtraColumn>| -> Vec<String> {
        get(first)
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| n != "study")
            .filter(|n| {
                trials[1..]
                    .iter()
                    .all(|(_, t)| get(t).iter().any(|c| &c.name == n))
            })
            .collect()
    };
    let p_extra = common_extra(|t| &t.participant_extra);
    let s_extra = common_extra(|t| &t.site_extra);

    let mut study = first.study.clone();
    study.name = format!(
        "Pooled: {}",
        trials
            .iter()
            .map(|(l, t)| format!("{l} ({})", t.study.name))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    study.instruments = instruments
        .iter()
        .map(|&i| first.instruments[i].name.clone())
        .collect();
    let n_assess: usize = trials.iter().map(|(_, t)| t.assessments.len()).sum();
    let mut out = Trial {
        study,
        instruments: instruments
            .iter()
            .map(|&i| first.instruments[i].clone())
            .collect(),
        sites: Vec::new(),
        groups: Vec::new(),
        participants: Vec::new(),
        assessments: Vec::with_capacity(n_assess),
        items: instruments
            .iter()
            .map(|&i| ItemMatrix::new(n_assess, first.instruments[i].items))
            .collect(),
        prescored: instruments
            .iter()
            .map(|&i| PreScored {
                total: None,
                subscales: vec![None; first.instruments[i].subscales.len()],
            })
            .collect(),
        admissions: Vec::new(),
        admissions_collected: trials.iter().any(|(_, t)| t.admissions_collected),
        participant_extra: p_extra
            .iter()
            .map(|n| ExtraColumn {
                name: n.clone(),
                values: Vec::new(),
            })
            .chain(std::iter::once(ExtraColumn {
                name: "study".into(),
                values: Vec::new(),
            }))
            .collect(),
        site_extra: s_extra
            .iter()
            .map(|n| ExtraColumn {
                name: n.clone(),
                values: Vec::new(),
            })
            .chain(std::iter::once(ExtraColumn {
                name: "study".into(),
                values: Vec::new(),
            }))
            .collect(),
        exclusions: Vec::new(),
    };
    for (label, t) in &trials {
        let site0 = out.sites.len() as u32;
        let group0 = out.groups.len() as u32;
        let part0 = out.participants.len() as u32;
        let assess0 = out.assessments.len();
        let pre = |id: &String| format!("{label}:{id}");
        out.sites.extend(t.sites.iter().map(|s| Site {
            id: pre(&s.id),
            name: s.name.clone(),
            row: s.row,
        }));
        out.groups.extend(t.groups.iter().map(|g| Group {
            id: pre(&g.id),
            site: g.site.map(|s| SiteId(s.0 + site0)),
            fidelity: g.fidelity,
            row: g.row,
        }));
        out.participants
            .extend(t.participants.iter().map(|p| Participant {
                id: pre(&p.id),
                site: SiteId(p.site.0 + site0),
                team: p.team.as_ref().map(pre),
                arm: p.arm,
                group: p.group.map(|g| GroupId(g.0 + group0)),
                randomized_on: p.randomized_on,
                age: p.age,
                sex: p.sex.clone(),
                diagnosis: p.diagnosis.clone(),
                sessions_attended: p.sessions_attended,
                row: p.row,
            }));
        out.assessments
            .extend(t.assessments.iter().map(|a| Assessment {
                participant: ParticipantId(a.participant.0 + part0),
                wave: a.wave,
                assessed_on: a.assessed_on,
                row: a.row,
            }));
        for (k, &i) in instruments.iter().enumerate() {
            let name = &first.instruments[i].name;
            let Some(j) = t.instrument_index(name) else {
                continue;
            };
            if let (Some(src), Some(dst)) = (t.prescored.get(j), out.prescored.get_mut(k)) {
                let n = t.assessments.len();
                append_prescored(&mut dst.total, src.total.as_ref(), assess0, n);
                for (s, d) in dst.subscales.iter_mut().enumerate() {
                    append_prescored(d, src.subscales.get(s).and_then(Option::as_ref), assess0, n);
                }
            }
            let (Some(src), Some(dst)) = (t.items.get(j), out.items.get_mut(k)) else {
                continue;
            };
            for a in 0..t.assessments.len() {
                for (item, v) in src.row(a).iter().enumerate() {
                    if !v.is_nan() {
                        dst.set(assess0 + a, item, *v);
                    }
                }
            }
        }
        out.admissions
            .extend(t.admissions.iter().map(|a| Admission {
                participant: ParticipantId(a.participant.0 + part0),
                admitted_on: a.admitted_on,
                discharged_on: a.discharged_on,
                involuntary: a.involuntary,
                row: a.row,
            }));
        append_extra(
            &mut out.participant_extra,
            &t.participant_extra,
            t.participants.len(),
            label,
        );
        append_extra(&mut out.site_extra, &t.site_extra, t.sites.len(), label);
        out.exclusions
            .extend(t.exclusions.iter().map(|e| crate::ingest::Exclusion {
                table: format!("{label}:{}", e.table),
                row: e.row,
                reason: e.reason.clone(),
            }));
    }
    Ok(out)
}

/// Appends one export's pre-scored column (`None`: it has none) to the pooled one, which
/// holds `before` rows; the pooled column exists once any export has it.
fn append_prescored(dst: &mut Option<Vec<f64>>, src: Option<&Vec<f64>>, before: usize, n: usize) {
    if dst.is_none() && src.is_none() {
        return;
    }
    let d = dst.get_or_insert_with(|| vec![f64::NAN; before]);
    match src {
        Some(v) => d.extend(v.iter().copied()),
        None => d.extend(std::iter::repeat_n(f64::NAN, n)),
    }
}

/// Appends one export's extra columns (by name) and its `study` label to pooled columns.
fn append_extra(dst: &mut [ExtraColumn], src: &[ExtraColumn], n: usize, label: &str) {
    for col in dst.iter_mut() {
        if col.name == "study" {
            col.values
                .extend(std::iter::repeat_n(Some(label.to_string()), n));
            continue;
        }
        match src.iter().find(|c| c.name == col.name) {
            Some(c) => col.values.extend(c.values.iter().cloned()),
            None => col.values.extend(std::iter::repeat_n(None, n)),
        }
    }
}

/// Case-mix-adjusted site means of change of `spec.outcome` (see the module docs).
pub fn routine_site_means(
    trial: &Trial,
    scored: &Scored,
    spec: &RoutineSpec,
    level: f64,
) -> Result<RoutineResult, PoolError> {
    let err = |m: String| PoolError::Routine(m);
    let values = scored
        .score(&spec.outcome)
        .ok_or_else(|| err(format!("no score `{}` in the export", spec.outcome)))?;
    let waves: Vec<String> = trial.study.waves.iter().map(|w| w.label.clone()).collect();
    let find = |w: &Option<String>, default: usize| -> Result<usize, PoolError> {
        match w {
            None => Ok(default),
            Some(l) => waves.iter().position(|x| x == l).ok_or_else(|| {
                err(format!(
                    "wave `{l}` is not a study wave ({})",
                    waves.join(", ")
                ))
            }),
        }
    };
    let b = find(&spec.baseline_wave, 0)?;
    let f = find(&spec.wave, waves.len().saturating_sub(1))?;
    if f == b {
        return Err(err("the follow-up wave is the baseline wave".into()));
    }
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
    let fe = |e: crate::frame::FrameError| err(e.to_string());
    frame.push_numeric("change", change).map_err(fe)?;
    frame
        .push_numeric("baseline", keep.iter().map(|&p| base[p]).collect())
        .map_err(fe)?;
    frame
        .push_factor(
            "site_id",
            keep.iter()
                .map(|&p| Some(trial.site_label(trial.participants[p].site).to_string()))
                .collect(),
            None,
        )
        .map_err(fe)?;
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
        }
        .map_err(fe)?;
        terms.push(c.clone());
    }
    let rhs = terms.join(" + ");
    let formula = format!("change ~ {rhs} + (1 | site_id)");
    let mf = model_frame(&frame, &formula).map_err(err)?;
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
    let mut by: HashMap<u32, (u64, f64, f64)> = HashMap::new();
    for (i, &code) in site_codes.iter().enumerate().take(n) {
        let e = by.entry(code).or_insert((0, 0.0, 0.0));
        e.0 += 1;
        e.1 += mf.y[i];
        e.2 += mf.y[i] - ols.residuals[i];
    }
    let z95 = qnorm(1.0 - (1.0 - level) / 2.0);
    let z998 = qnorm(0.999);
    let mut warnings = Vec::new();
    let lmm = fit_model_frame(mf, &LmmOptions::default());
    let (shrunk, site_sd): (HashMap<String, (f64, f64)>, f64) = match &lmm {
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
    let mut rows = Vec::new();
    for (code, id) in site_levels.iter().enumerate() {
        let Some(&(cnt, sum_y, sum_fit)) = by.get(&(code as u32)) else {
            continue;
        };
        let nn = cnt as f64;
        let observed = sum_y / nn;
        let expected = sum_fit / nn;
        let adjusted = overall + observed - expected;
        let se = ols.sigma / nn.sqrt();
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
        let (sh, csd) = shrunk.get(id).copied().unwrap_or((f64::NAN, f64::NAN));
        rows.push(RoutineSiteRow {
            site_id: id.clone(),
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
            shrunken: sh,
            conditional_sd: csd,
        });
    }
    let label = |w: usize| waves.get(w).cloned().unwrap_or_default();
    Ok(RoutineResult {
        outcome: spec.outcome.clone(),
        baseline_wave: label(b),
        wave: label(f),
        model: format!("lm(change ~ {rhs})"),
        shrinkage_model: format!("lmer(change ~ {rhs} + (1 | site_id))"),
        n_participants: n as u64,
        n_excluded: (keep.len() - n) as u64,
        overall_mean_change: overall,
        residual_sd: ols.sigma,
        site_sd,
        rows,
        warnings,
    })
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
