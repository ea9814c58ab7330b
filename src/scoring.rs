//! Instrument scoring: a [`Trial`] -> the long participant x wave table [`Scored`].
//!
//! Rules come from the instrument definitions (`data-schema/instruments/*.toml`); the shipped
//! defaults reproduce the herstel R reference (`reference/README.md`, "Scoring rules used"):
//! an answered item is a non-empty cell that is not a not-known code; a score is valid when
//! `answered * den >= num * items` (80% = `[4, 5]`); totals are the mean of the answered items,
//! their sum, or the prorated sum (mean x items); the BSI indices follow Derogatis &
//! Melisaratos (1983): GSI = mean, PST = items > 0, PSDI = sum / PST. Where a row has no
//! answered item of an instrument but a pre-scored total or subscale
//! (`<instrument>_total`, `<instrument>_<subscale>` in assessments.csv, `docs/trial-export.md`),
//! that value is the score, `<instrument>_n_answered` stays empty and [`Scored::prescored`]
//! lists it.

use crate::ingest::{Arm, GroupId, ParticipantId, SiteId, Trial, Wave};
use crate::schema::instrument::scale_score;
use crate::schema::{IndexKind, Instrument};
use crate::table::{OutColumn, OutValues};

/// What a score column holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ScoreKind {
    /// The instrument total (column named as the instrument; `bsi` is the GSI).
    Total,
    /// A subscale (`<instrument>_<name>`).
    Subscale(String),
    /// Answered items (`<instrument>_n_answered`; missing when the wave has no row).
    NAnswered,
    /// An index such as BSI PST (`<instrument>_pst`).
    Index(IndexKind),
}

/// One score column, aligned with the rows of [`Scored`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScoreColumn {
    pub name: String,
    pub instrument: String,
    pub kind: ScoreKind,
    pub values: Vec<Option<f64>>,
}

/// A score that is missing, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScoreExclusion {
    pub participant_id: String,
    pub wave: String,
    /// Column name of the missing score.
    pub score: String,
    pub reason: String,
}

/// The scored long table: one row per participant x wave (participants in file order, waves
/// in study order).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    participant: Vec<ParticipantId>,
    wave: Vec<Wave>,
    arm: Vec<Arm>,
    site: Vec<SiteId>,
    group: Vec<Option<GroupId>>,
    months: Vec<f64>,
    /// Index into `Trial::assessments` of the row's assessment, if any.
    assessment: Vec<Option<usize>>,
    participant_ids: Vec<String>,
    site_ids: Vec<String>,
    group_ids: Vec<String>,
    arm_labels: Vec<String>,
    wave_labels: Vec<String>,
    columns: Vec<ScoreColumn>,
    /// Every missing total or subscale with its reason.
    pub exclusions: Vec<ScoreExclusion>,
    /// Every total or subscale taken pre-scored from the export (no item answered), with
    /// its source column and row in `reason`.
    pub prescored: Vec<ScoreExclusion>,
}

impl Scored {
    pub fn n_rows(&self) -> usize {
        self.participant.len()
    }
    pub fn participants(&self) -> &[ParticipantId] {
        &self.participant
    }
    pub fn waves(&self) -> &[Wave] {
        &self.wave
    }
    pub fn arms(&self) -> &[Arm] {
        &self.arm
    }
    pub fn sites(&self) -> &[SiteId] {
        &self.site
    }
    pub fn groups(&self) -> &[Option<GroupId>] {
        &self.group
    }
    /// Nominal months of each row's wave.
    pub fn months(&self) -> &[f64] {
        &self.months
    }
    /// Index into `Trial::assessments` per row (`None`: no assessment row for the wave).
    pub fn assessments(&self) -> &[Option<usize>] {
        &self.assessment
    }
    /// Participant id text of a row.
    pub fn participant_id(&self, row: usize) -> &str {
        label(
            &self.participant_ids,
            self.participant.get(row).map(|p| p.index()),
        )
    }
    pub fn site_id(&self, row: usize) -> &str {
        label(&self.site_ids, self.site.get(row).map(|s| s.index()))
    }
    /// Group id text of a row (`""` when ungrouped).
    pub fn group_id(&self, row: usize) -> &str {
        label(
            &self.group_ids,
            self.group.get(row).copied().flatten().map(|g| g.index()),
        )
    }
    pub fn arm_label(&self, row: usize) -> &str {
        label(&self.arm_labels, self.arm.get(row).map(|a| a.index()))
    }
    pub fn wave_label(&self, row: usize) -> &str {
        label(&self.wave_labels, self.wave.get(row).map(|w| w.index()))
    }
    /// Arm labels in study order (first = reference).
    pub fn arm_levels(&self) -> &[String] {
        &self.arm_labels
    }
    /// Wave labels in study order (first = baseline).
    pub fn wave_levels(&self) -> &[String] {
        &self.wave_labels
    }
    /// All score columns in output order.
    pub fn columns(&self) -> &[ScoreColumn] {
        &self.columns
    }
    /// A score column by name (`mhrm`, `bsi_som`, `honos_n_answered`, `bsi_pst`, ...).
    pub fn score(&self, name: &str) -> Option<&[Option<f64>]> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.values.as_slice())
    }

    /// The whole table as output columns: `participant_id, site_id, arm, group_id, wave,
    /// months`, the totals in study order, then per instrument its n_answered, subscales and
    /// indices.
    pub fn to_out_columns(&self) -> Vec<OutColumn> {
        let n = self.n_rows();
        let mut out = vec![
            OutColumn::new("participant_id", text_values(n, |r| self.participant_id(r))),
            OutColumn::new("site_id", text_values(n, |r| self.site_id(r))),
            OutColumn::new("arm", text_values(n, |r| self.arm_label(r))),
            OutColumn::new("group_id", text_values(n, |r| self.group_id(r))),
            OutColumn::new("wave", text_values(n, |r| self.wave_label(r))),
            OutColumn::new(
                "months",
                OutValues::Float(self.months.iter().map(|&m| Some(m)).collect()),
            ),
        ];
        for c in &self.columns {
            let values = match c.kind {
                ScoreKind::NAnswered | ScoreKind::Index(IndexKind::Pst) => {
                    OutValues::Int(c.values.iter().map(|v| v.map(|x| x as i64)).collect())
                }
                _ => OutValues::Float(c.values.clone()),
            };
            out.push(OutColumn::new(c.name.clone(), values));
        }
        out
    }

    /// The exclusion log as output columns (as [`Scored::exclusion_columns`]), moved out of
    /// `self` without copying its strings; `self.exclusions` and `self.prescored` are left
    /// empty.
    pub fn take_exclusion_columns(&mut self) -> Vec<OutColumn> {
        let mut log = std::mem::take(&mut self.exclusions);
        log.append(&mut self.prescored);
        let n = log.len();
        let (mut pid, mut wave, mut score, mut reason) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for e in log {
            pid.push(Some(e.participant_id));
            wave.push(Some(e.wave));
            score.push(Some(e.score));
            reason.push(Some(e.reason));
        }
        vec![
            OutColumn::new("participant_id", OutValues::Text(pid)),
            OutColumn::new("wave", OutValues::Text(wave)),
            OutColumn::new("score", OutValues::Text(score)),
            OutColumn::new("reason", OutValues::Text(reason)),
        ]
    }

    /// The exclusion log as output columns `participant_id, wave, score, reason`: every
    /// missing score, then every score taken pre-scored (reason `pre-scored: ...`).
    pub fn exclusion_columns(&self) -> Vec<OutColumn> {
        let col = |f: &dyn Fn(&ScoreExclusion) -> &str| {
            OutValues::Text(
                self.exclusions
                    .iter()
                    .chain(&self.prescored)
                    .map(|e| Some(f(e).to_string()))
                    .collect(),
            )
        };
        vec![
            OutColumn::new("participant_id", col(&|e| &e.participant_id)),
            OutColumn::new("wave", col(&|e| &e.wave)),
            OutColumn::new("score", col(&|e| &e.score)),
            OutColumn::new("reason", col(&|e| &e.reason)),
        ]
    }
}

/// Text cells of `n` rows; an empty label becomes a missing cell.
fn text_values<'a>(n: usize, f: impl Fn(usize) -> &'a str) -> OutValues {
    OutValues::Text(
        (0..n)
            .map(|r| {
                let s = f(r);
                (!s.is_empty()).then(|| s.to_string())
            })
            .collect(),
    )
}

fn label(labels: &[String], i: Option<usize>) -> &str {
    i.and_then(|i| labels.get(i))
        .map(String::as_str)
        .unwrap_or("")
}

/// Item value after reverse keying (`min + max - v` for reverse-keyed items).
fn keyed(inst: &Instrument, reverse: &[bool], item: usize, v: f64) -> f64 {
    if reverse.get(item).copied().unwrap_or(false) {
        inst.min + inst.max - v
    } else {
        v
    }
}

/// Scores every instrument in `instruments` (matched by name to the trial's item matrices)
/// for every participant x wave.
/// The exclusion log that `herstel score --log` and `herstel run` write: the missing-score
/// columns `participant_id, wave, score, reason` (from [`Scored::exclusion_columns`] or
/// [`Scored::take_exclusion_columns`]) followed by every input row left out of the trial
/// (`score` = `<table> row <n>`, participant and wave empty).
pub fn exclusion_log(trial: &Trial, mut cols: Vec<OutColumn>) -> Vec<OutColumn> {
    for e in &trial.exclusions {
        let cells = [
            String::new(),
            String::new(),
            format!("{} row {}", e.table, e.row),
            e.reason.clone(),
        ];
        for (col, v) in cols.iter_mut().zip(cells) {
            if let OutValues::Text(values) = &mut col.values {
                values.push(Some(v));
            }
        }
    }
    cols
}

pub fn score(trial: &Trial, instruments: &[Instrument]) -> Scored {
    let n_waves = trial.study.waves.len();
    let n = trial.participants.len() * n_waves;
    let lookup = trial.assessment_lookup();

    let mut participant = Vec::with_capacity(n);
    let mut wave = Vec::with_capacity(n);
    let mut arm = Vec::with_capacity(n);
    let mut site = Vec::with_capacity(n);
    let mut group = Vec::with_capacity(n);
    let mut months = Vec::with_capacity(n);
    let mut assessment = Vec::with_capacity(n);
    for (pi, p) in trial.participants.iter().enumerate() {
        for (wi, w) in trial.study.waves.iter().enumerate() {
            let pid = ParticipantId(pi as u32);
            let wv = Wave(wi as u16);
            participant.push(pid);
            wave.push(wv);
            arm.push(p.arm);
            site.push(p.site);
            group.push(p.group);
            months.push(w.months);
            assessment.push(lookup.get(&(pid, wv)).copied());
        }
    }

    // rows whose assessment has no answered item at all: a missed wave
    let empty_row: Vec<bool> = assessment
        .iter()
        .map(|a| match a {
            None => true,
            Some(a) => !trial.assessment_has_data(*a),
        })
        .collect();

    // instruments in parallel (rayon keeps their order): the columns and the exclusion log
    // come out exactly as from a sequential loop
    type PerInstrument = (
        ScoreColumn,
        Vec<ScoreColumn>,
        Vec<ScoreExclusion>,
        Vec<ScoreExclusion>,
    );
    let per_instrument: Vec<PerInstrument> = {
        use rayon::prelude::*;
        instruments
            .par_iter()
            .map(|inst| {
                let mut exclusions = Vec::new();
                let mut prescored_log = Vec::new();
                let mut details = Vec::new();
                let prescored = trial
                    .instrument_index(&inst.name)
                    .and_then(|i| trial.prescored.get(i))
                    .filter(|p| !p.is_empty());
                let matrix = trial
                    .instrument_index(&inst.name)
                    .and_then(|i| trial.items.get(i))
                    .filter(|m| m.n_items() == inst.items);
                let mut reverse = vec![false; inst.items];
                for &r in &inst.reverse {
                    if let Some(slot) = reverse.get_mut(r.wrapping_sub(1)) {
                        *slot = true;
                    }
                }
                let mut total = vec![None; n];
                let mut n_answered = vec![None; n];
                let mut subs: Vec<Vec<Option<f64>>> = vec![vec![None; n]; inst.subscales.len()];
                let mut idx: Vec<Vec<Option<f64>>> = vec![vec![None; n]; inst.indices.len()];
                let mut buf = vec![f64::NAN; inst.items];
                for r in 0..n {
                    let (pid_text, wave_text) = (
                        trial
                            .participants
                            .get(participant[r].index())
                            .map(|p| p.id.as_str())
                            .unwrap_or(""),
                        trial.wave_label(wave[r]),
                    );
                    let mut log = |score: &str, reason: String| {
                        exclusions.push(ScoreExclusion {
                            participant_id: pid_text.to_string(),
                            wave: wave_text.to_string(),
                            score: score.to_string(),
                            reason,
                        })
                    };
                    let (Some(a), Some(m)) = (assessment[r], matrix) else {
                        let reason = match (assessment[r], matrix) {
                            (None, _) => "wave missed: no assessment row".to_string(),
                            _ => format!("instrument {} has no item data in the trial", inst.name),
                        };
                        log(&inst.name, reason.clone());
                        for s in &inst.subscales {
                            log(&format!("{}_{}", inst.name, s.name), reason.clone());
                        }
                        continue;
                    };
                    for (j, (slot, &v)) in buf.iter_mut().zip(m.row(a)).enumerate() {
                        *slot = if v.is_nan() {
                            f64::NAN
                        } else {
                            keyed(inst, &reverse, j, v)
                        };
                    }
                    let row_row = trial.assessments.get(a).map(|x| x.row).unwrap_or(0);
                    let (k, value) = scale_score(buf.iter().copied(), inst.items, inst.total);
                    // no item answered, a pre-scored value: the value is the score (n_answered
                    // stays empty: no item was there to count)
                    if let Some(p) = prescored.filter(|p| k == 0 && p.any(a)) {
                        let mut note = |score: String, column: String| {
                            prescored_log.push(ScoreExclusion {
                                participant_id: pid_text.to_string(),
                                wave: wave_text.to_string(),
                                score,
                                reason: format!(
                                    "pre-scored: assessments column {column} (row {row_row}); no item answered"
                                ),
                            })
                        };
                        match p.total(a) {
                            Some(t) => {
                                total[r] = Some(t);
                                note(inst.name.clone(), inst.total_column());
                            }
                            None => log(
                                &inst.name,
                                format!(
                                    "no item answered and {} is empty (assessments row {row_row})",
                                    inst.total_column()
                                ),
                            ),
                        }
                        for (si, (slot, s)) in subs.iter_mut().zip(&inst.subscales).enumerate() {
                            let name = format!("{}_{}", inst.name, s.name);
                            match p.subscale(si, a) {
                                Some(v) => {
                                    slot[r] = Some(v);
                                    note(name, inst.subscale_column(s));
                                }
                                None => log(
                                    &name,
                                    format!(
                                        "no item answered and no pre-scored {} (assessments row {row_row})",
                                        inst.subscale_column(s)
                                    ),
                                ),
                            }
                        }
                        continue;
                    }
                    n_answered[r] = Some(k as f64);
                    let missed_reason =
                        || format!("wave missed: all items empty (assessments row {row_row})");
                    let valid = inst.min_answered_share.met(k, inst.items) && k > 0;
                    if valid {
                        total[r] = Some(value);
                        let sum_answered: f64 = buf.iter().filter(|v| !v.is_nan()).sum();
                        let pst = buf.iter().filter(|&&v| !v.is_nan() && v > inst.min).count();
                        for (slot, kind) in idx.iter_mut().zip(&inst.indices) {
                            slot[r] = match kind {
                                IndexKind::Pst => Some(pst as f64),
                                IndexKind::Psdi => {
                                    if pst > 0 {
                                        Some(sum_answered / pst as f64)
                                    } else {
                                        log(
                                            &format!("{}_psdi", inst.name),
                                            "PST = 0 (no item above the minimum)".into(),
                                        );
                                        None
                                    }
                                }
                                IndexKind::SumAnswered => Some(sum_answered),
                                IndexKind::TotalProrated => {
                                    Some(sum_answered / k as f64 * inst.items as f64)
                                }
                            };
                        }
                    } else if empty_row[r] {
                        log(&inst.name, missed_reason());
                    } else {
                        log(
                            &inst.name,
                            format!(
                                "too few items answered: {k} of {} (needs {})",
                                inst.items,
                                inst.min_answered()
                            ),
                        );
                    }
                    for (slot, s) in subs.iter_mut().zip(&inst.subscales) {
                        let (ks, v) = scale_score(
                            s.items
                                .iter()
                                .map(|&i| buf.get(i.wrapping_sub(1)).copied().unwrap_or(f64::NAN)),
                            s.items.len(),
                            s.rule,
                        );
                        let share = s.min_answered_share.unwrap_or(inst.min_answered_share);
                        if ks > 0 && share.met(ks, s.items.len()) {
                            slot[r] = Some(v);
                        } else if empty_row[r] {
                            log(&format!("{}_{}", inst.name, s.name), missed_reason());
                        } else {
                            log(
                                &format!("{}_{}", inst.name, s.name),
                                format!(
                                    "too few items answered: {ks} of {} (needs {})",
                                    s.items.len(),
                                    share.min_items(s.items.len())
                                ),
                            );
                        }
                    }
                }
                let total_column = ScoreColumn {
                    name: inst.name.clone(),
                    instrument: inst.name.clone(),
                    kind: ScoreKind::Total,
                    values: total,
                };
                details.push(ScoreColumn {
                    name: format!("{}_n_answered", inst.name),
                    instrument: inst.name.clone(),
                    kind: ScoreKind::NAnswered,
                    values: n_answered,
                });
                for (s, values) in inst.subscales.iter().zip(subs) {
                    details.push(ScoreColumn {
                        name: format!("{}_{}", inst.name, s.name),
                        instrument: inst.name.clone(),
                        kind: ScoreKind::Subscale(s.name.clone()),
                        values,
                    });
                }
                for (kind, values) in inst.indices.iter().zip(idx) {
                    details.push(ScoreColumn {
                        name: format!("{}_{}", inst.name, kind.suffix()),
                        instrument: inst.name.clone(),
                        kind: ScoreKind::Index(*kind),
                        values,
                    });
                }
                (total_column, details, exclusions, prescored_log)
            })
            .collect()
    };
    let mut totals = Vec::with_capacity(instruments.len());
    let mut details = Vec::new();
    let mut exclusions = Vec::new();
    let mut prescored = Vec::new();
    for (total, det, exc, pre) in per_instrument {
        totals.push(total);
        details.extend(det);
        exclusions.extend(exc);
        prescored.extend(pre);
    }
    totals.extend(details);

    Scored {
        participant,
        wave,
        arm,
        site,
        group,
        months,
        assessment,
        participant_ids: trial.participants.iter().map(|p| p.id.clone()).collect(),
        site_ids: trial.sites.iter().map(|s| s.id.clone()).collect(),
        group_ids: trial.groups.iter().map(|g| g.id.clone()).collect(),
        arm_labels: trial.study.arms.clone(),
        wave_labels: trial.study.waves.iter().map(|w| w.label.clone()).collect(),
        columns: totals,
        exclusions,
        prescored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_score_rules() {
        use crate::schema::TotalRule;
        let v = [1.0, 2.0, f64::NAN, 3.0];
        assert_eq!(scale_score(v.iter().copied(), 4, TotalRule::Mean), (3, 2.0));
        assert_eq!(scale_score(v.iter().copied(), 4, TotalRule::Sum), (3, 6.0));
        assert_eq!(
            scale_score(v.iter().copied(), 4, TotalRule::ProratedSum),
            (3, 8.0)
        );
    }
}
