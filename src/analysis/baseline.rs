//! Table 1 (baseline characteristics by arm), CONSORT flow counts, the study description and
//! the exclusion summary.

use super::describe::{is_skewed, summarise, tabulate};
use super::spec::OutcomesPlan;
use crate::ingest::Trial;
use crate::results::{
    AnalysisSetInfo, ArmCount, Consort, ConsortArm, ExclusionRow, StudyDescription, Table1,
    Table1Cell, Table1Row, Table1Statistic, WaveCount, WaveInfo,
};
use crate::schema::study::Design;
use crate::scoring::Scored;

/// A numeric variable is shown as median (IQR) when |skewness| exceeds this in any arm.
const SKEW_THRESHOLD: f64 = 1.0;

fn arm_of(trial: &Trial) -> Vec<usize> {
    trial
        .participants
        .iter()
        .map(|p| p.arm.0 as usize)
        .collect()
}

fn numeric_row(name: &str, values: &[Option<f64>], arm: &[usize], arms: &[String]) -> Table1Row {
    let per: Vec<_> = (0..arms.len())
        .map(|a| {
            let v: Vec<Option<f64>> = values
                .iter()
                .zip(arm)
                .filter(|(_, &k)| k == a)
                .map(|(v, _)| *v)
                .collect();
            summarise(&v)
        })
        .collect();
    let skewed = is_skewed(&per, SKEW_THRESHOLD);
    Table1Row {
        variable: name.to_string(),
        level: None,
        statistic: if skewed {
            Table1Statistic::MedianIqr
        } else {
            Table1Statistic::MeanSd
        },
        cells: arms
            .iter()
            .zip(&per)
            .map(|(a, s)| Table1Cell {
                arm: a.clone(),
                n: s.n as u64,
                mean: s.mean,
                sd: s.sd,
                median: s.median,
                q1: s.q1,
                q3: s.q3,
                count: None,
                percent: None,
            })
            .collect(),
    }
}

fn categorical_rows(
    name: &str,
    values: &[Option<&str>],
    arm: &[usize],
    arms: &[String],
) -> Vec<Table1Row> {
    let (levels, _) = tabulate(values, None);
    let mut levels: Vec<String> = levels.into_iter().map(|(l, _)| l).collect();
    levels.sort();
    let n_arm: Vec<usize> = (0..arms.len())
        .map(|a| {
            values
                .iter()
                .zip(arm)
                .filter(|(v, &k)| k == a && v.is_some())
                .count()
        })
        .collect();
    levels
        .iter()
        .map(|lv| Table1Row {
            variable: name.to_string(),
            level: Some(lv.clone()),
            statistic: Table1Statistic::CountPercent,
            cells: arms
                .iter()
                .enumerate()
                .map(|(a, label)| {
                    let c = values
                        .iter()
                        .zip(arm)
                        .filter(|(v, &k)| k == a && **v == Some(lv.as_str()))
                        .count();
                    Table1Cell {
                        arm: label.clone(),
                        n: n_arm[a] as u64,
                        count: Some(c as u64),
                        percent: (n_arm[a] > 0).then(|| 100.0 * c as f64 / n_arm[a] as f64),
                        ..Default::default()
                    }
                })
                .collect(),
        })
        .collect()
}

/// Baseline characteristics by arm: age, sex, diagnosis, site, sessions attended, and the
/// baseline score of every analysed outcome. A characteristic the export does not have (no
/// value for anyone; one site) has no row.
pub fn table1(trial: &Trial, scored: &Scored, spec: &OutcomesPlan) -> Table1 {
    let arms = trial.study.arms.clone();
    let arm = arm_of(trial);
    let mut rows = Vec::new();
    let age: Vec<Option<f64>> = trial
        .participants
        .iter()
        .map(|p| p.age.map(|a| a as f64))
        .collect();
    if age.iter().any(Option::is_some) {
        rows.push(numeric_row("Age (years)", &age, &arm, &arms));
    }
    let sex: Vec<Option<&str>> = trial
        .participants
        .iter()
        .map(|p| p.sex.as_deref())
        .collect();
    if sex.iter().any(Option::is_some) {
        rows.extend(categorical_rows("Sex", &sex, &arm, &arms));
    }
    let dx: Vec<Option<&str>> = trial
        .participants
        .iter()
        .map(|p| p.diagnosis.as_deref())
        .collect();
    if dx.iter().any(Option::is_some) {
        rows.extend(categorical_rows("Diagnosis", &dx, &arm, &arms));
    }
    let site: Vec<Option<&str>> = trial
        .participants
        .iter()
        .map(|p| Some(trial.site_label(p.site)))
        .collect();
    if trial.sites.len() > 1 {
        rows.extend(categorical_rows("Site", &site, &arm, &arms));
    }
    let sessions: Vec<Option<f64>> = trial
        .participants
        .iter()
        .map(|p| p.sessions_attended.map(|s| s as f64))
        .collect();
    if sessions.iter().any(Option::is_some) {
        rows.push(numeric_row("IMR sessions attended", &sessions, &arm, &arms));
    }
    // Baseline scores: the scored rows of the first wave, one per participant in file order.
    for o in spec.outcomes {
        let Some(values) = scored.score(&o.name) else {
            continue;
        };
        let mut v = Vec::new();
        let mut a = Vec::new();
        for (r, value) in values.iter().enumerate().take(scored.n_rows()) {
            if scored.waves()[r].0 == 0 {
                v.push(*value);
                a.push(scored.arms()[r].0 as usize);
            }
        }
        rows.push(numeric_row(
            &format!(
                "{} at baseline",
                o.label.clone().unwrap_or_else(|| trial
                    .instruments
                    .iter()
                    .find(|i| i.name == o.name)
                    .map_or_else(|| o.name.replace('_', " "), |i| i.label.clone()))
            ),
            &v,
            &a,
            &arms,
        ));
    }
    Table1 {
        arms: arms
            .iter()
            .enumerate()
            .map(|(k, a)| ArmCount {
                arm: a.clone(),
                n: arm.iter().filter(|&&x| x == k).count() as u64,
            })
            .collect(),
        rows,
    }
}

/// CONSORT flow per arm: randomized, attended at least one session, completers, assessed
/// (any outcome score) and lost at each wave, analysed (in the primary ITT model: at least
/// one observed primary score).
pub fn consort(trial: &Trial, scored: &Scored, spec: &OutcomesPlan) -> Consort {
    let study = &trial.study;
    let arms = &study.arms;
    let min_sessions = spec.analysis_sets.per_protocol.min_share
        * f64::from(spec.analysis_sets.per_protocol.planned_sessions);
    let outcome_cols: Vec<&[Option<f64>]> = spec
        .outcomes
        .iter()
        .filter_map(|o| scored.score(&o.name))
        .collect();
    let primary = spec.primary().and_then(|p| scored.score(p));
    let mut out = Consort {
        randomized: trial.participants.len() as u64,
        arms: Vec::new(),
    };
    for (k, label) in arms.iter().enumerate() {
        let members: Vec<_> = trial
            .participants
            .iter()
            .filter(|p| p.arm.0 as usize == k)
            .collect();
        let treated = k == study.intervention;
        let n = members.len() as u64;
        let mut assessed = Vec::new();
        let mut lost = Vec::new();
        for (w, wave) in study.waves.iter().enumerate() {
            let c = (0..scored.n_rows())
                .filter(|&r| {
                    scored.arms()[r].0 as usize == k
                        && scored.waves()[r].0 as usize == w
                        && outcome_cols
                            .iter()
                            .any(|col| col.get(r).copied().flatten().is_some())
                })
                .count() as u64;
            assessed.push(WaveCount {
                wave: wave.label.clone(),
                n: c,
            });
            lost.push(WaveCount {
                wave: wave.label.clone(),
                n: n.saturating_sub(c),
            });
        }
        let mut analysed_ids: Vec<u32> = (0..scored.n_rows())
            .filter(|&r| {
                scored.arms()[r].0 as usize == k
                    && primary.is_some_and(|p| p.get(r).copied().flatten().is_some())
            })
            .map(|r| scored.participants()[r].0)
            .collect();
        analysed_ids.sort_unstable();
        analysed_ids.dedup();
        out.arms.push(ConsortArm {
            arm: label.clone(),
            randomized: n,
            attended_any_session: treated.then(|| {
                members
                    .iter()
                    .filter(|p| p.sessions_attended.is_some_and(|s| s >= 1))
                    .count() as u64
            }),
            completers: treated.then(|| {
                members
                    .iter()
                    .filter(|p| {
                        p.sessions_attended
                            .is_some_and(|s| s as f64 >= min_sessions)
                    })
                    .count() as u64
            }),
            assessed,
            lost,
            analysed: analysed_ids.len() as u64,
        });
    }
    out
}

/// The study and methods summary of the report.
pub fn study_description(trial: &Trial, spec: &OutcomesPlan) -> StudyDescription {
    let s = &trial.study;
    let pp = &spec.analysis_sets.per_protocol;
    let mut sets = vec![AnalysisSetInfo {
        name: "itt".into(),
        description: "intention to treat: all randomized participants, every observed assessment"
            .into(),
    }];
    if pp.enabled {
        sets.push(AnalysisSetInfo {
            name: "per_protocol".into(),
            description: format!(
                "completers: control participants and intervention participants who attended at least {} of {} planned sessions",
                pp.min_share * f64::from(pp.planned_sessions),
                pp.planned_sessions
            ),
        });
    }
    StudyDescription {
        name: s.name.clone(),
        arms: s.arms.clone(),
        intervention: s.arms.get(s.intervention).cloned().unwrap_or_default(),
        waves: s
            .waves
            .iter()
            .map(|w| WaveInfo {
                label: w.label.clone(),
                months: w.months,
            })
            .collect(),
        design: match s.design {
            Design::Cluster => "cluster".into(),
            _ => "individual".into(),
        },
        instruments: s.instruments.clone(),
        primary_outcome: spec.primary().map(str::to_string),
        n_participants: trial.participants.len() as u64,
        n_sites: trial.sites.len() as u64,
        n_groups: trial.groups.len() as u64,
        p_adjust: Some(format!("{:?}", spec.multiplicity.method).to_lowercase()),
        conf_level: spec.conf_level,
        analysis_sets: sets,
    }
}

/// Exclusions summarised: rows the ingest step set aside and scores that are missing, counted
/// by reason (the full per-row log is written by `herstel score --log`).
pub fn exclusions(trial: &Trial, scored: &Scored) -> Vec<ExclusionRow> {
    let mut out: Vec<ExclusionRow> = Vec::new();
    let mut bump = |what: String, wave: Option<String>, reason: String| match out
        .iter_mut()
        .find(|e| e.what == what && e.wave == wave && e.reason == reason)
    {
        Some(e) => e.count += 1,
        None => out.push(ExclusionRow {
            what,
            wave,
            reason,
            count: 1,
        }),
    };
    // Counts by kind: the row numbers in a reason are dropped here (the full per-row log is
    // OUT/exclusions.csv); subscale scores are left to that log, the totals are counted.
    let general = |reason: &str| match reason.find(" (") {
        Some(i) => reason[..i].to_string(),
        None => reason.to_string(),
    };
    for e in &trial.exclusions {
        bump(format!("{} rows", e.table), None, general(&e.reason));
    }
    for e in &scored.exclusions {
        if !trial.instruments.iter().any(|i| i.name == e.score) {
            continue;
        }
        let reason = if e.reason.contains("answered") {
            "too few items answered".to_string()
        } else {
            general(&e.reason)
        };
        bump(e.score.clone(), Some(e.wave.clone()), reason);
    }
    out
}
