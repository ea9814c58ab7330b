//! Several exports at once (`herstel run` with repeated `--data`, README.md): one [`Trial`]
//! from several exports of the same design (arms, waves), with the study as a level. Every id
//! is prefixed `<study>:` so sites, groups and participants of different studies stay apart,
//! and a `study` column is added to the participants and sites.
// PoolError carries the mismatching labels so the message can name them; pooling runs once.
#![allow(clippy::result_large_err)]
use thiserror::Error;

use super::{
    Admission, Assessment, ExtraColumn, Group, GroupId, ItemMatrix, Participant, ParticipantId,
    PreScored, Site, SiteId, Trial,
};

/// Why exports cannot be pooled.
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
    let Some((_, first)) = trials.first() else {
        return Err(PoolError::Empty);
    };
    check_labels(&trials)?;
    check_compatible(&trials)?;
    let instruments = common_instruments(&trials);
    let mut out = empty_pool(&trials, &instruments);
    for (label, t) in &trials {
        append_trial(&mut out, first, &instruments, label, t);
    }
    Ok(out)
}

/// The labels must be unique and not blank.
fn check_labels(trials: &[(String, Trial)]) -> Result<(), PoolError> {
    let labels: Vec<String> = trials.iter().map(|(l, _)| l.clone()).collect();
    let mut sorted = labels.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != labels.len() || labels.iter().any(|l| l.trim().is_empty()) {
        return Err(PoolError::Labels(labels));
    }
    Ok(())
}

/// Every export must have the first one's arms and intervention, wave labels and design.
fn check_compatible(trials: &[(String, Trial)]) -> Result<(), PoolError> {
    let (first_label, first) = &trials[0];
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
    Ok(())
}

/// Instruments every export has with the same definition, in the first export's order
/// (indices into the first export's instruments).
fn common_instruments(trials: &[(String, Trial)]) -> Vec<usize> {
    let first = &trials[0].1;
    (0..first.instruments.len())
        .filter(|&i| {
            trials[1..]
                .iter()
                .all(|(_, t)| t.instruments.iter().any(|x| x == &first.instruments[i]))
        })
        .collect()
}

/// Names of the extra columns (other than `study`) that every export has, in the first
/// export's order.
fn common_extra(trials: &[(String, Trial)], get: fn(&Trial) -> &Vec<ExtraColumn>) -> Vec<String> {
    let first = &trials[0].1;
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
}

/// Empty extra columns with these names, then `study`.
fn extra_columns_with_study(names: &[String]) -> Vec<ExtraColumn> {
    names
        .iter()
        .map(|n| ExtraColumn {
            name: n.clone(),
            values: Vec::new(),
        })
        .chain(std::iter::once(ExtraColumn {
            name: "study".into(),
            values: Vec::new(),
        }))
        .collect()
}

/// The pooled trial before any export is appended: the first export's study with the pooled
/// name and common instruments, item matrices sized for every assessment, the common extra
/// columns.
fn empty_pool(trials: &[(String, Trial)], instruments: &[usize]) -> Trial {
    let first = &trials[0].1;
    let p_extra = common_extra(trials, |t| &t.participant_extra);
    let s_extra = common_extra(trials, |t| &t.site_extra);
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
    Trial {
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
        participant_extra: extra_columns_with_study(&p_extra),
        site_extra: extra_columns_with_study(&s_extra),
        exclusions: Vec::new(),
    }
}

/// Appends one export to the pooled trial: ids prefixed with `label`, references shifted
/// by the rows already pooled, its items, pre-scored values, extra columns and exclusions.
fn append_trial(out: &mut Trial, first: &Trial, instruments: &[usize], label: &str, t: &Trial) {
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
    append_scores(out, first, instruments, t, assess0);
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

/// Copies one export's pre-scored values and item values of the common instruments into
/// the pooled columns, its assessments starting at row `assess0`.
fn append_scores(out: &mut Trial, first: &Trial, instruments: &[usize], t: &Trial, assess0: usize) {
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
