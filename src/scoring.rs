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

use crate::ingest::{Arm, GroupId, ItemMatrix, ParticipantId, PreScored, SiteId, Trial, Wave};
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

/// Scores every instrument in `instruments` (matched by name to the trial's item matrices)
/// for every participant x wave.
pub fn score(trial: &Trial, instruments: &[Instrument]) -> Scored {
    let rows = LongRows::of(trial);
    let empty_row = missed_rows(trial, &rows.assessment);

    // instruments in parallel (rayon keeps their order): the columns and the exclusion log
    // come out exactly as from a sequential loop
    let per_instrument: Vec<InstrumentColumns> = {
        use rayon::prelude::*;
        instruments
            .par_iter()
            .map(|inst| score_instrument(trial, inst, &rows, &empty_row))
            .collect()
    };
    let (columns, log) = concat_instruments(per_instrument);

    Scored {
        participant: rows.participant,
        wave: rows.wave,
        arm: rows.arm,
        site: rows.site,
        group: rows.group,
        months: rows.months,
        assessment: rows.assessment,
        participant_ids: trial.participants.iter().map(|p| p.id.clone()).collect(),
        site_ids: trial.sites.iter().map(|s| s.id.clone()).collect(),
        group_ids: trial.groups.iter().map(|g| g.id.clone()).collect(),
        arm_labels: trial.study.arms.clone(),
        wave_labels: trial.study.waves.iter().map(|w| w.label.clone()).collect(),
        columns,
        exclusions: log.exclusions,
        prescored: log.prescored,
    }
}

/// The participant x wave rows of the long table (participants in file order, waves in
/// study order) with each row's assessment, if any.
struct LongRows {
    participant: Vec<ParticipantId>,
    wave: Vec<Wave>,
    arm: Vec<Arm>,
    site: Vec<SiteId>,
    group: Vec<Option<GroupId>>,
    months: Vec<f64>,
    assessment: Vec<Option<usize>>,
}

impl LongRows {
    /// One row per participant and wave of the trial.
    fn of(trial: &Trial) -> LongRows {
        let n = trial.participants.len() * trial.study.waves.len();
        let lookup = trial.assessment_lookup();
        let mut rows = LongRows {
            participant: Vec::with_capacity(n),
            wave: Vec::with_capacity(n),
            arm: Vec::with_capacity(n),
            site: Vec::with_capacity(n),
            group: Vec::with_capacity(n),
            months: Vec::with_capacity(n),
            assessment: Vec::with_capacity(n),
        };
        for (pi, p) in trial.participants.iter().enumerate() {
            for (wi, w) in trial.study.waves.iter().enumerate() {
                let pid = ParticipantId(pi as u32);
                let wv = Wave(wi as u16);
                rows.participant.push(pid);
                rows.wave.push(wv);
                rows.arm.push(p.arm);
                rows.site.push(p.site);
                rows.group.push(p.group);
                rows.months.push(w.months);
                rows.assessment.push(lookup.get(&(pid, wv)).copied());
            }
        }
        rows
    }

    /// Number of rows.
    fn len(&self) -> usize {
        self.participant.len()
    }
}

/// Rows whose assessment has no answered item at all: a missed wave.
fn missed_rows(trial: &Trial, assessment: &[Option<usize>]) -> Vec<bool> {
    assessment
        .iter()
        .map(|a| match a {
            None => true,
            Some(a) => !trial.assessment_has_data(*a),
        })
        .collect()
}

/// The score columns of one instrument (the total apart, as it comes first in the table)
/// and its part of the logs.
struct InstrumentColumns {
    total: ScoreColumn,
    details: Vec<ScoreColumn>,
    log: ScoreLog,
}

/// Totals of all instruments first, then each instrument's other columns; the logs in
/// instrument order.
fn concat_instruments(per_instrument: Vec<InstrumentColumns>) -> (Vec<ScoreColumn>, ScoreLog) {
    let mut totals = Vec::with_capacity(per_instrument.len());
    let mut details = Vec::new();
    let mut log = ScoreLog::default();
    for c in per_instrument {
        totals.push(c.total);
        details.extend(c.details);
        log.exclusions.extend(c.log.exclusions);
        log.prescored.extend(c.log.prescored);
    }
    totals.extend(details);
    (totals, log)
}

/// The missing scores and the scores taken pre-scored, in the order they were met.
#[derive(Default)]
struct ScoreLog {
    exclusions: Vec<ScoreExclusion>,
    prescored: Vec<ScoreExclusion>,
}

/// Where a log line points: the participant's id and the wave's label.
struct RowLabel<'a> {
    participant: &'a str,
    wave: &'a str,
}

/// A row of the long table that has an assessment, as one instrument's scoring sees it.
struct RowContext<'a> {
    /// Row of the long table.
    r: usize,
    at: RowLabel<'a>,
    /// Index into `Trial::assessments`.
    assessment: usize,
    /// The assessment's row in assessments.csv (for the log).
    source_row: usize,
    /// The assessment has no answered item of any instrument (a missed wave).
    empty: bool,
}

impl RowContext<'_> {
    /// The reason a score is missing on a missed wave.
    fn missed_reason(&self) -> String {
        format!(
            "wave missed: all items empty (assessments row {})",
            self.source_row
        )
    }
}

impl ScoreLog {
    /// Logs a missing score.
    fn missing(&mut self, at: &RowLabel<'_>, score: &str, reason: String) {
        self.exclusions.push(ScoreExclusion {
            participant_id: at.participant.to_string(),
            wave: at.wave.to_string(),
            score: score.to_string(),
            reason,
        })
    }

    /// Logs a score taken from the pre-scored assessments column `column`.
    fn prescored(&mut self, row: &RowContext<'_>, score: String, column: String) {
        self.prescored.push(ScoreExclusion {
            participant_id: row.at.participant.to_string(),
            wave: row.at.wave.to_string(),
            score,
            reason: format!(
                "pre-scored: assessments column {column} (row {}); no item answered",
                row.source_row
            ),
        })
    }

    /// Logs the total and every subscale of a row that cannot be scored: no assessment row,
    /// or no item data of the instrument in the trial.
    fn unscored_row(&mut self, inst: &Instrument, at: &RowLabel<'_>, no_assessment: bool) {
        let reason = if no_assessment {
            "wave missed: no assessment row".to_string()
        } else {
            format!("instrument {} has no item data in the trial", inst.name)
        };
        self.missing(at, &inst.name, reason.clone());
        for s in &inst.subscales {
            self.missing(at, &format!("{}_{}", inst.name, s.name), reason.clone());
        }
    }
}

/// One instrument's inputs from the trial: its item matrix (when the item count matches),
/// its pre-scored columns (when the export has any), and which items are reverse keyed.
struct InstrumentData<'a> {
    inst: &'a Instrument,
    matrix: Option<&'a ItemMatrix>,
    prescored: Option<&'a PreScored>,
    reverse: Vec<bool>,
}

impl<'a> InstrumentData<'a> {
    /// Finds the instrument's data in the trial.
    fn of(trial: &'a Trial, inst: &'a Instrument) -> InstrumentData<'a> {
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
        InstrumentData {
            inst,
            matrix,
            prescored,
            reverse,
        }
    }
}

/// Scores one instrument on every row of the long table.
fn score_instrument(
    trial: &Trial,
    inst: &Instrument,
    rows: &LongRows,
    empty_row: &[bool],
) -> InstrumentColumns {
    let data = InstrumentData::of(trial, inst);
    let mut scores = InstrumentScores::new(inst, rows.len());
    let mut log = ScoreLog::default();
    // `empty_row` has one entry per row of `rows`
    for (r, &empty) in empty_row.iter().enumerate() {
        let at = RowLabel {
            participant: trial
                .participants
                .get(rows.participant[r].index())
                .map(|p| p.id.as_str())
                .unwrap_or(""),
            wave: trial.wave_label(rows.wave[r]),
        };
        let (Some(a), Some(m)) = (rows.assessment[r], data.matrix) else {
            log.unscored_row(inst, &at, rows.assessment[r].is_none());
            continue;
        };
        let row = RowContext {
            r,
            at,
            assessment: a,
            source_row: trial.assessments.get(a).map(|x| x.row).unwrap_or(0),
            empty,
        };
        scores.key_items(&data, m.row(a));
        scores.score_row(&data, &row, &mut log);
    }
    scores.into_columns(inst, log)
}

/// The columns of one instrument, filled row by row.
struct InstrumentScores {
    total: Vec<Option<f64>>,
    n_answered: Vec<Option<f64>>,
    subs: Vec<Vec<Option<f64>>>,
    idx: Vec<Vec<Option<f64>>>,
    /// The keyed items of the current row (`NaN` = not answered); reused across rows.
    buf: Vec<f64>,
}

impl InstrumentScores {
    /// Empty columns for `n` rows.
    fn new(inst: &Instrument, n: usize) -> InstrumentScores {
        InstrumentScores {
            total: vec![None; n],
            n_answered: vec![None; n],
            subs: vec![vec![None; n]; inst.subscales.len()],
            idx: vec![vec![None; n]; inst.indices.len()],
            buf: vec![f64::NAN; inst.items],
        }
    }

    /// Puts one assessment's items, reverse keyed, into the row buffer.
    fn key_items(&mut self, data: &InstrumentData<'_>, items: &[f64]) {
        for (j, (slot, &v)) in self.buf.iter_mut().zip(items).enumerate() {
            *slot = if v.is_nan() {
                f64::NAN
            } else {
                keyed(data.inst, &data.reverse, j, v)
            };
        }
    }

    /// Scores the row in the buffer: from the pre-scored columns when no item was answered
    /// and the export has a pre-scored value, else the total, indices and subscales from
    /// the items.
    fn score_row(&mut self, data: &InstrumentData<'_>, row: &RowContext<'_>, log: &mut ScoreLog) {
        let inst = data.inst;
        let (k, value) = scale_score(self.buf.iter().copied(), inst.items, inst.total);
        // no item answered, a pre-scored value: the value is the score (n_answered
        // stays empty: no item was there to count)
        if let Some(p) = data.prescored.filter(|p| k == 0 && p.any(row.assessment)) {
            self.take_prescored(inst, p, row, log);
            return;
        }
        self.n_answered[row.r] = Some(k as f64);
        self.score_total(inst, row, (k, value), log);
        self.score_subscales(inst, row, log);
    }

    /// Takes the pre-scored total and subscales of a row without answered items; a value
    /// the export lacks is logged as missing.
    fn take_prescored(
        &mut self,
        inst: &Instrument,
        p: &PreScored,
        row: &RowContext<'_>,
        log: &mut ScoreLog,
    ) {
        let (r, a, row_row) = (row.r, row.assessment, row.source_row);
        match p.total(a) {
            Some(t) => {
                self.total[r] = Some(t);
                log.prescored(row, inst.name.clone(), inst.total_column());
            }
            None => log.missing(
                &row.at,
                &inst.name,
                format!(
                    "no item answered and {} is empty (assessments row {row_row})",
                    inst.total_column()
                ),
            ),
        }
        for (si, (slot, s)) in self.subs.iter_mut().zip(&inst.subscales).enumerate() {
            let name = format!("{}_{}", inst.name, s.name);
            match p.subscale(si, a) {
                Some(v) => {
                    slot[r] = Some(v);
                    log.prescored(row, name, inst.subscale_column(s));
                }
                None => log.missing(
                    &row.at,
                    &name,
                    format!(
                        "no item answered and no pre-scored {} (assessments row {row_row})",
                        inst.subscale_column(s)
                    ),
                ),
            }
        }
    }

    /// The total (`k` items answered, `value` by the instrument's rule) and, when it is
    /// valid, the indices; else the reason it is missing.
    fn score_total(
        &mut self,
        inst: &Instrument,
        row: &RowContext<'_>,
        (k, value): (usize, f64),
        log: &mut ScoreLog,
    ) {
        let valid = inst.min_answered_share.met(k, inst.items) && k > 0;
        if valid {
            self.total[row.r] = Some(value);
            self.score_indices(inst, row, k, log);
        } else if row.empty {
            log.missing(&row.at, &inst.name, row.missed_reason());
        } else {
            log.missing(
                &row.at,
                &inst.name,
                format!(
                    "too few items answered: {k} of {} (needs {})",
                    inst.items,
                    inst.min_answered()
                ),
            );
        }
    }

    /// The indices of a valid total (`k` items answered): PST, PSDI, the sum of the answered
    /// items, the prorated total.
    fn score_indices(
        &mut self,
        inst: &Instrument,
        row: &RowContext<'_>,
        k: usize,
        log: &mut ScoreLog,
    ) {
        let sum_answered: f64 = self.buf.iter().filter(|v| !v.is_nan()).sum();
        let pst = self
            .buf
            .iter()
            .filter(|&&v| !v.is_nan() && v > inst.min)
            .count();
        for (slot, kind) in self.idx.iter_mut().zip(&inst.indices) {
            slot[row.r] = match kind {
                IndexKind::Pst => Some(pst as f64),
                IndexKind::Psdi => {
                    if pst > 0 {
                        Some(sum_answered / pst as f64)
                    } else {
                        log.missing(
                            &row.at,
                            &format!("{}_psdi", inst.name),
                            "PST = 0 (no item above the minimum)".into(),
                        );
                        None
                    }
                }
                IndexKind::SumAnswered => Some(sum_answered),
                IndexKind::TotalProrated => Some(sum_answered / k as f64 * inst.items as f64),
            };
        }
    }

    /// Each subscale from its items, by its own rule and share (default: the instrument's);
    /// else the reason it is missing.
    fn score_subscales(&mut self, inst: &Instrument, row: &RowContext<'_>, log: &mut ScoreLog) {
        let buf = &self.buf;
        for (slot, s) in self.subs.iter_mut().zip(&inst.subscales) {
            let (ks, v) = scale_score(
                s.items
                    .iter()
                    .map(|&i| buf.get(i.wrapping_sub(1)).copied().unwrap_or(f64::NAN)),
                s.items.len(),
                s.rule,
            );
            let share = s.min_answered_share.unwrap_or(inst.min_answered_share);
            if ks > 0 && share.met(ks, s.items.len()) {
                slot[row.r] = Some(v);
            } else if row.empty {
                log.missing(
                    &row.at,
                    &format!("{}_{}", inst.name, s.name),
                    row.missed_reason(),
                );
            } else {
                log.missing(
                    &row.at,
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

    /// The finished columns: the total, then answered items, subscales and indices.
    fn into_columns(self, inst: &Instrument, log: ScoreLog) -> InstrumentColumns {
        let total = ScoreColumn {
            name: inst.name.clone(),
            instrument: inst.name.clone(),
            kind: ScoreKind::Total,
            values: self.total,
        };
        let mut details = vec![ScoreColumn {
            name: format!("{}_n_answered", inst.name),
            instrument: inst.name.clone(),
            kind: ScoreKind::NAnswered,
            values: self.n_answered,
        }];
        for (s, values) in inst.subscales.iter().zip(self.subs) {
            details.push(ScoreColumn {
                name: format!("{}_{}", inst.name, s.name),
                instrument: inst.name.clone(),
                kind: ScoreKind::Subscale(s.name.clone()),
                values,
            });
        }
        for (kind, values) in inst.indices.iter().zip(self.idx) {
            details.push(ScoreColumn {
                name: format!("{}_{}", inst.name, kind.suffix()),
                instrument: inst.name.clone(),
                kind: ScoreKind::Index(*kind),
                values,
            });
        }
        InstrumentColumns {
            total,
            details,
            log,
        }
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
