//! Applying the map: the sources joined on the participant id become the export tables
//! (`study.toml`, participants, assessments, sites, admissions), every cell that does not
//! arrive as it was goes to the import log, every problem to the grouped problem list.
//!
//! Wide sources give one row per participant with the wave in the column names (the map's
//! `{wave}` pattern, as tidyr::pivot_longer(names_pattern = ...) splits them); long sources
//! one row per participant x wave with a wave column; wave files one row per participant of
//! one wave. Participants are the ids of the wide sources (else of all sources), in order of
//! appearance.

use std::collections::HashMap;

use super::bind::{closest_hint, BoundSource, Role};
use super::log::{source_row, Action, ImportLog, LogEntry};
use super::map::{Field, InstrumentMap, Key, LoadedMap};
use super::problems::Problems;
use super::source::{num_text, Cell};
use super::values::{date_cell, date_shape, num_cell, shape_format, text_cell, NumCell, TextCell};
use crate::schema::{Instrument, Schema};
use crate::table::{OutColumn, OutValues};

/// The export tables as columns, ready to write.
#[derive(Debug, Clone, Default)]
pub struct Export {
    pub study_toml: String,
    pub participants: Vec<OutColumn>,
    pub assessments: Vec<OutColumn>,
    /// `None`: no site in the map (one site).
    pub sites: Option<Vec<OutColumn>>,
    /// `None`: admissions not collected.
    pub admissions: Option<Vec<OutColumn>>,
    /// `None`: groups come from participants.group_id alone.
    pub groups: Option<Vec<OutColumn>>,
}

/// The result of applying a map.
#[derive(Debug, Default)]
pub struct Assembled {
    pub export: Export,
    pub log: ImportLog,
    pub problems: Problems,
    /// What was detected or decided, for the user (dialects, waves without an instrument).
    pub notes: Vec<String>,
    pub n_participants: usize,
    pub n_assessments: usize,
}

/// A column of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    src: usize,
    col: usize,
}

struct Ctx<'a> {
    sources: &'a [BoundSource],
    lm: &'a LoadedMap,
    used: Vec<Vec<bool>>,
    out: Assembled,
    /// Participant ids in order.
    ids: Vec<String>,
    /// Per source: id -> row (wide, wave and admission sources keep the first row).
    rows: Vec<HashMap<String, usize>>,
    /// Per long source: (id, wave) -> row.
    long_rows: Vec<HashMap<(String, usize), usize>>,
}

fn id_of(cell: Cell<'_>) -> Option<String> {
    match cell {
        Cell::Num(x) => Some(num_text(x)),
        Cell::Text(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Substitutes `{n}`, `{nn}`, `{nnn}` and `{wave}` in a column pattern.
pub fn pattern_column(pattern: &str, item: usize, wave: &str) -> String {
    pattern
        .replace("{nnn}", &format!("{item:03}"))
        .replace("{nn}", &format!("{item:02}"))
        .replace("{n}", &item.to_string())
        .replace("{wave}", wave)
}

impl<'a> Ctx<'a> {
    fn map_file(&self) -> String {
        self.lm
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn all_column_names(&self) -> impl Iterator<Item = &str> {
        self.sources
            .iter()
            .flat_map(|s| s.table.columns.iter().map(|c| c.name.as_str()))
    }

    /// A map problem: `key` names the map entry, `column` the source column sought.
    fn missing_column(&mut self, key: &str, column: &str) {
        let line = self
            .lm
            .line_of_value(column)
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default();
        let names: Vec<String> = self.sources.iter().map(|s| s.name.clone()).collect();
        let hint = closest_hint(column, self.all_column_names());
        let src = format!("{}{line}", self.map_file());
        self.out.problems.error(
            &src,
            Some(key),
            None,
            None,
            format!(
                "names column \"{column}\", which is in none of the sources ({})",
                names.join(", ")
            ),
            format!("correct the column name in the map{hint}"),
        );
    }

    /// Finds a participant-level column: wide sources first, then wave files, then long
    /// sources.
    fn find_participant_column(&self, name: &str) -> Option<Loc> {
        let order = [0u8, 1, 2];
        for pass in order {
            for (si, s) in self.sources.iter().enumerate() {
                let ok = matches!(
                    (pass, s.role),
                    (0, Role::Wide) | (1, Role::Wave(_)) | (2, Role::Long { .. })
                );
                if ok {
                    if let Some(col) = s.table.column_index(name) {
                        return Some(Loc { src: si, col });
                    }
                }
            }
        }
        None
    }

    /// The row of participant `id` in source `src` (long sources: the first wave present).
    fn participant_row(&self, src: usize, id: &str) -> Option<usize> {
        match self.sources.get(src)?.role {
            Role::Long { .. } => (0..self.lm.map.waves.len())
                .find_map(|w| self.long_rows[src].get(&(id.to_string(), w)).copied()),
            _ => self.rows[src].get(id).copied(),
        }
    }

    /// The row of participant `id` at wave `w` in source `src`.
    fn wave_row(&self, src: usize, id: &str, w: usize) -> Option<usize> {
        match self.sources.get(src)?.role {
            Role::Long { .. } => self.long_rows[src].get(&(id.to_string(), w)).copied(),
            Role::Wave(x) if x != w => None,
            _ => self.rows[src].get(id).copied(),
        }
    }

    fn mark(&mut self, l: Loc) {
        if let Some(u) = self.used.get_mut(l.src).and_then(|v| v.get_mut(l.col)) {
            *u = true;
        }
    }
}

/// The value of `field` for each distinct `key` (site or group), taken from the first
/// participant with that key; a participant with another value is a warning.
fn per_key(
    cx: &mut Ctx<'_>,
    export_name: &str,
    keys: &[Option<String>],
    distinct: &[String],
    field: &Field,
) -> Option<Vec<Option<String>>> {
    let values = categorical(cx, export_name, field)?;
    let dc = cx
        .find_participant_column(&field.column)
        .map(|l| super::values::decimal_comma(&cx.sources[l.src].table))
        .unwrap_or(false);
    let norm = |v: &Option<String>| {
        v.as_ref()
            .map(|s| match super::dialect::parse_number(s, dc) {
                Some(x) if dc && s.contains(',') => num_text(x),
                _ => s.clone(),
            })
    };
    let mut out: Vec<Option<String>> = vec![None; distinct.len()];
    let mut seen = vec![false; distinct.len()];
    for (k, key) in keys.iter().enumerate() {
        let Some(key) = key else {
            continue;
        };
        let Some(d) = distinct.iter().position(|x| x == key) else {
            continue;
        };
        let v = norm(&values[k]);
        if !seen[d] {
            seen[d] = true;
            out[d] = v;
        } else if v != out[d] {
            let name = cx
                .find_participant_column(&field.column)
                .map(|l| cx.sources[l.src].name.clone())
                .unwrap_or_default();
            cx.out.problems.warning(
                &name,
                Some(&field.column),
                None,
                v.as_deref(),
                format!(
                    "differ within {key} (the first participant's value is used for {export_name})"
                ),
                "the column should be constant within the site or group",
            );
        }
    }
    Some(out)
}

/// Applies the map to the bound sources.
pub fn assemble(sources: &[BoundSource], lm: &LoadedMap, schema: &Schema) -> Assembled {
    let mut cx = Ctx {
        sources,
        lm,
        used: sources
            .iter()
            .map(|s| vec![false; s.table.columns.len()])
            .collect(),
        out: Assembled::default(),
        ids: Vec::new(),
        rows: vec![HashMap::new(); sources.len()],
        long_rows: vec![HashMap::new(); sources.len()],
    };
    for s in sources {
        cx.out.notes.push(format!(
            "{}: {}, {} rows x {} columns, {}",
            s.name,
            s.table.format.describe(),
            s.table.n_rows,
            s.table.columns.len(),
            match s.role {
                Role::Wide => "one row per participant".to_string(),
                Role::Wave(w) => format!(
                    "one row per participant at wave {}",
                    lm.map.waves.get(w).map(|x| x.label.as_str()).unwrap_or("")
                ),
                Role::Long { .. } => "one row per participant and wave".to_string(),
                Role::Admissions => "one row per admission".to_string(),
            }
        ));
    }
    index_rows(&mut cx);
    let participants = participants_table(&mut cx);
    let groups = groups_table(&mut cx, &participants.0);
    let (assessments, n_assess) = assessments_table(&mut cx, schema);
    let admissions = admissions_table(&mut cx);
    unmapped_columns(&mut cx);
    cx.out.export.participants = participants.0;
    cx.out.export.sites = participants.1;
    cx.out.export.assessments = assessments.1;
    cx.out.export.admissions = admissions;
    cx.out.export.groups = groups;
    cx.out.export.study_toml = study_toml(lm, &assessments.0);
    cx.out.n_participants = cx.ids.len();
    cx.out.n_assessments = n_assess;
    cx.out
}

/// Id and wave of every row; participants in order; duplicates and strays logged.
fn index_rows(cx: &mut Ctx<'_>) {
    let mut ix = RowIndex {
        any_wide: cx.sources.iter().any(|s| s.role == Role::Wide),
        known: HashMap::new(),
        pending_strays: Vec::new(),
    };
    // wide sources first, then per-wave, long and admission sources
    let passes = [0u8, 1, 2, 3];
    for pass in passes {
        for si in 0..cx.sources.len() {
            if index_pass(cx.sources[si].role) == pass {
                index_source(cx, &mut ix, si);
            }
        }
    }
    for (si, i, id) in std::mem::take(&mut ix.pending_strays) {
        drop_stray(cx, si, i, &id);
    }
}

/// What `index_rows` carries from source to source.
struct RowIndex {
    /// Whether some source is wide (then only wide sources define participants).
    any_wide: bool,
    /// Participant id -> its index in `cx.ids`.
    known: HashMap<String, usize>,
    /// Rows (source, row, id) of participants no participant-level source has (yet).
    pending_strays: Vec<(usize, usize, String)>,
}

/// The pass of `index_rows` in which a source is indexed.
fn index_pass(role: Role) -> u8 {
    match role {
        Role::Wide => 0,
        Role::Wave(_) => 1,
        Role::Long { .. } => 2,
        Role::Admissions => 3,
    }
}

/// The participant id column named for source `s` (the admissions' own, or the source's,
/// else the map's).
fn id_column_name(lm: &LoadedMap, s: &BoundSource) -> String {
    match s.role {
        Role::Admissions => lm
            .map
            .admissions
            .as_ref()
            .map(|a| a.participant_id.column.clone())
            .unwrap_or_else(|| lm.map.participants.id.column.clone()),
        _ => s
            .spec
            .id
            .clone()
            .unwrap_or_else(|| lm.map.participants.id.column.clone()),
    }
}

/// Indexes the rows of source `si`: marks its id (and wave) column, logs rows without an
/// id and repeated ids, and registers the participants it defines.
fn index_source(cx: &mut Ctx<'_>, ix: &mut RowIndex, si: usize) {
    let s = &cx.sources[si];
    let id_name = id_column_name(cx.lm, s);
    let Some(id_col) = s.table.column_index(&id_name) else {
        let key = format!("participant id of {}", s.name);
        cx.missing_column(&key, &id_name);
        return;
    };
    cx.mark(Loc {
        src: si,
        col: id_col,
    });
    let wave_col = match s.role {
        Role::Long { wave_col } => {
            cx.mark(Loc {
                src: si,
                col: wave_col,
            });
            Some(wave_col)
        }
        _ => None,
    };
    for i in 0..s.table.n_rows {
        let Some(id) = id_of(s.table.cell(i, id_col)) else {
            log_row_without_id(cx, si, i, &id_name);
            continue;
        };
        if s.role == Role::Admissions {
            // admissions may repeat ids; strays are checked when the table is built
            continue;
        }
        let dup = if let Some(wc) = wave_col {
            let Some(w) = wave_of(cx, si, wc, i) else {
                continue;
            };
            let key = (id.clone(), w);
            match cx.long_rows[si].entry(key) {
                std::collections::hash_map::Entry::Occupied(_) => true,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                    false
                }
            }
        } else if cx.rows[si].contains_key(&id) {
            true
        } else {
            cx.rows[si].insert(id.clone(), i);
            false
        };
        if dup {
            log_duplicate_row(cx, si, i, &id_name, &id, wave_col.is_some());
            continue;
        }
        let defines = s.role == Role::Wide || !ix.any_wide;
        if defines {
            if !ix.known.contains_key(&id) {
                ix.known.insert(id.clone(), cx.ids.len());
                cx.ids.push(id);
            }
        } else if !ix.known.contains_key(&id) {
            ix.pending_strays.push((si, i, id));
        }
    }
}

/// Logs (and warns about) row `i` of source `si`, which has no participant id.
fn log_row_without_id(cx: &mut Ctx<'_>, si: usize, i: usize, id_name: &str) {
    let s = &cx.sources[si];
    let row = source_row(&s.table, i);
    cx.out.log.push(LogEntry {
        source: s.name.clone(),
        row: Some(row),
        column: Some(id_name.to_string()),
        value: None,
        action: Action::UnmatchedRow,
        export: String::new(),
        reason: "no participant id: the row is left out".into(),
        count: 1,
    });
    cx.out.problems.warning(
        &s.name,
        Some(id_name),
        Some(row),
        Some(""),
        "have no participant id; those rows are left out (see import-log.csv)",
        "",
    );
}

/// Logs (and warns about) row `i` of source `si`, which repeats participant `id` (at the
/// same wave, for a long source); the first row is kept.
fn log_duplicate_row(cx: &mut Ctx<'_>, si: usize, i: usize, id_name: &str, id: &str, long: bool) {
    let s = &cx.sources[si];
    let row = source_row(&s.table, i);
    let first = match long {
        true => None,
        false => cx.rows[si].get(id).map(|&r| source_row(&s.table, r)),
    };
    cx.out.log.push(LogEntry {
        source: s.name.clone(),
        row: Some(row),
        column: Some(id_name.to_string()),
        value: Some(id.to_string()),
        action: Action::DuplicateDropped,
        export: String::new(),
        reason: match first {
            Some(f) => {
                format!("participant {id} already at row {f}; this row is left out")
            }
            None => format!("participant {id} at this wave already seen; this row is left out"),
        },
        count: 1,
    });
    cx.out.problems.warning(
        &s.name,
        Some(id_name),
        Some(row),
        Some(id),
        "repeat a participant id (the first row is kept, the others are in import-log.csv)",
        "remove the duplicates in the source if they are not intended",
    );
}

/// Logs a row of a participant that is in no participant-level source, and takes it out
/// of the row lookups.
fn drop_stray(cx: &mut Ctx<'_>, si: usize, i: usize, id: &str) {
    let s = &cx.sources[si];
    let row = source_row(&s.table, i);
    cx.out.log.push(LogEntry {
        source: s.name.clone(),
        row: Some(row),
        column: None,
        value: Some(id.to_string()),
        action: Action::UnmatchedRow,
        export: String::new(),
        reason: format!("participant {id} is in no participant-level source; the row is left out"),
        count: 1,
    });
    cx.out.problems.warning(
        &s.name,
        None,
        Some(row),
        Some(id),
        "belong to participants that are in no participant-level source; left out (see import-log.csv)",
        "check the participant ids of both files",
    );
    // keep the row out of the lookups
    match s.role {
        Role::Long { .. } => cx.long_rows[si].retain(|k, _| k.0 != id),
        _ => {
            cx.rows[si].remove(id);
        }
    }
}

/// The wave index of row `i` of a long source (by code, or by the code's value label).
fn wave_of(cx: &mut Ctx<'_>, si: usize, wc: usize, i: usize) -> Option<usize> {
    let s = &cx.sources[si];
    let col = s.table.columns.get(wc)?;
    let (code, label) = match s.table.cell(i, wc) {
        Cell::Num(x) => (num_text(x), col.label_of_num(x).map(str::to_string)),
        Cell::Text(t) => (t.to_string(), col.label_of_text(t).map(str::to_string)),
        _ => (String::new(), None),
    };
    let waves = &cx.lm.map.waves;
    let hit = waves
        .iter()
        .position(|w| w.code_texts().iter().any(|c| c == &code))
        .or_else(|| {
            label.as_ref().and_then(|l| {
                waves
                    .iter()
                    .position(|w| &w.label == l || w.code_texts().iter().any(|c| c == l))
            })
        });
    if hit.is_none() {
        let row = source_row(&s.table, i);
        let name = s.name.clone();
        let shown = match &label {
            Some(l) => format!("{code} ({l})"),
            None => code.clone(),
        };
        cx.out.log.push(LogEntry {
            source: name.clone(),
            row: Some(row),
            column: Some(col.name.clone()),
            value: Some(shown.clone()),
            action: Action::UnmatchedRow,
            export: String::new(),
            reason: "wave code not in the map's [[waves]] codes; the row is left out".into(),
            count: 1,
        });
        let known: Vec<String> = waves
            .iter()
            .map(|w| format!("{} = {}", w.label, w.code_texts().join("/")))
            .collect();
        cx.out.problems.error(
            &name,
            Some(&col.name),
            Some(row),
            Some(&shown),
            "are not a wave code of the map",
            format!(
                "add the code to `codes` of its [[waves]] entry (now: {})",
                known.join(", ")
            ),
        );
    }
    hit
}

/// In a long source a participant-level column repeats on every wave's row; the first wave's
/// row gives the export value. Each later row whose cell differs is logged (kept value and
/// the differing one), and the columns with such rows get one grouped warning.
fn check_long_repeats(cx: &mut Ctx<'_>, loc: Loc, key: &str) {
    let s = &cx.sources[loc.src];
    if !matches!(s.role, Role::Long { .. }) {
        return;
    }
    let col = s.table.columns[loc.col].name.clone();
    let name = s.name.clone();
    let n_waves = cx.lm.map.waves.len();
    let mut found = Vec::new();
    for id in &cx.ids {
        let rows: Vec<usize> = (0..n_waves)
            .filter_map(|w| cx.long_rows[loc.src].get(&(id.clone(), w)).copied())
            .collect();
        let Some((&first, rest)) = rows.split_first() else {
            continue;
        };
        let kept = id_of(s.table.cell(first, loc.col));
        for &i in rest {
            let other = id_of(s.table.cell(i, loc.col));
            if other != kept {
                found.push((source_row(&s.table, i), id.clone(), kept.clone(), other));
            }
        }
    }
    for (row, id, kept, other) in found {
        cx.out.log.push(LogEntry {
            source: name.clone(),
            row: Some(row),
            column: Some(col.clone()),
            value: other.clone(),
            action: Action::InconsistentRepeat,
            export: format!(
                "participants {id} {key} = {}",
                kept.as_deref().unwrap_or("(empty)")
            ),
            reason: "a participant-level value differs from the participant's first wave; the first is used".into(),
            count: 1,
        });
        cx.out.problems.warning(
            &name,
            Some(&col),
            Some(row),
            Some(other.as_deref().unwrap_or("")),
            format!("differ from the participant's first-wave value ({key}; the first is used)"),
            "make the participant-level columns constant within a participant, or check the rows in import-log.csv",
        );
    }
}

/// The source column of participant field `key`, marked as used and checked for differing
/// repeats in long files; `None` (with a located map error) when no source has it.
fn participant_column(cx: &mut Ctx<'_>, key: &str, field: &Field) -> Option<Loc> {
    let Some(loc) = cx.find_participant_column(&field.column) else {
        cx.missing_column(key, &field.column);
        return None;
    };
    cx.mark(loc);
    check_long_repeats(cx, loc, key);
    Some(loc)
}

/// A cell as the log shows it: its text, or `.a` for a Stata extended missing value.
fn tagged_text(cell: Cell<'_>) -> Option<String> {
    id_of(cell).or_else(|| match cell {
        Cell::Tagged(c) => Some(format!(".{c}")),
        _ => None,
    })
}

/// The log line of a cell emptied because it held a user-missing code.
fn missing_code_entry(
    s: &BoundSource,
    row: usize,
    column: &str,
    value: Option<String>,
    export: String,
    reason: String,
) -> LogEntry {
    LogEntry {
        source: s.name.clone(),
        row: Some(row),
        column: Some(column.to_string()),
        value,
        action: Action::MissingCode,
        export,
        reason,
        count: 1,
    }
}

/// Where a numeric cell is read from, for its log line or error.
struct NumAt<'s> {
    s: &'s BoundSource,
    row: usize,
    column: &'s str,
    /// The cell as the log shows it.
    logged: Option<String>,
}

/// The number of a numeric cell, or `None`: empty; a user-missing code, logged with
/// `export()` (where the value would have gone); text that is not a number, an error with
/// `not_a_number() = (what, fix)`. The one place the three numeric readers (participant
/// fields, items, pre-scored totals) report these.
fn number_or_report(
    out: &mut Assembled,
    at: NumAt<'_>,
    v: NumCell,
    export: impl FnOnce() -> String,
    not_a_number: impl FnOnce() -> (String, String),
) -> Option<f64> {
    match v {
        NumCell::Empty => None,
        NumCell::Value(x) => Some(x),
        NumCell::Missing(why) => {
            out.log.push(missing_code_entry(
                at.s,
                at.row,
                at.column,
                at.logged,
                export(),
                why.describe(),
            ));
            None
        }
        NumCell::NotANumber(t) => {
            let (what, fix) = not_a_number();
            out.problems.error(
                &at.s.name,
                Some(at.column),
                Some(at.row),
                Some(&t),
                what,
                fix,
            );
            None
        }
    }
}

/// A categorical field for every participant: export values.
fn categorical(cx: &mut Ctx<'_>, key: &str, field: &Field) -> Option<Vec<Option<String>>> {
    let loc = participant_column(cx, key, field)?;
    let s = &cx.sources[loc.src];
    let col = &s.table.columns[loc.col];
    let mut out = Vec::with_capacity(cx.ids.len());
    for id in &cx.ids {
        let Some(i) = cx.participant_row(loc.src, id) else {
            out.push(None);
            continue;
        };
        let row = source_row(&s.table, i);
        match text_cell(&s.table, col, s.table.cell(i, loc.col), field) {
            TextCell::Empty => out.push(None),
            TextCell::Missing(why) => {
                cx.out.log.push(missing_code_entry(
                    s,
                    row,
                    &col.name,
                    id_of(s.table.cell(i, loc.col)),
                    format!("participants {id} {key}"),
                    why.describe(),
                ));
                out.push(None);
            }
            TextCell::Value {
                value,
                code,
                recoded,
            } => {
                if let Some(reason) = recoded {
                    if value != code {
                        cx.out.log.recoded(
                            &s.name,
                            row,
                            &col.name,
                            &code,
                            &format!("{key} = {value}"),
                            reason,
                        );
                    }
                }
                out.push(Some(value));
            }
        }
    }
    Some(out)
}

/// A numeric participant field (age, sessions attended).
fn numeric(cx: &mut Ctx<'_>, key: &str, field: &Field) -> Option<Vec<Option<String>>> {
    let loc = participant_column(cx, key, field)?;
    let s = &cx.sources[loc.src];
    let col = &s.table.columns[loc.col];
    let mut out = Vec::with_capacity(cx.ids.len());
    for id in &cx.ids {
        let Some(i) = cx.participant_row(loc.src, id) else {
            out.push(None);
            continue;
        };
        let row = source_row(&s.table, i);
        let v = num_cell(
            &s.table,
            col,
            s.table.cell(i, loc.col),
            &[(&field.missing, "the field's missing")],
        );
        let at = NumAt {
            s,
            row,
            column: &col.name,
            logged: id_of(s.table.cell(i, loc.col)),
        };
        let x = number_or_report(
            &mut cx.out,
            at,
            v,
            || format!("participants {id} {key}"),
            || {
                (
                    format!("are not numbers ({key})"),
                    format!("list such codes in `missing` of participants.{key} in the map, or correct them"),
                )
            },
        );
        out.push(x.map(num_text));
    }
    Some(out)
}

/// A date field: participant-level (`wave = None`) or per wave.
fn date_problem(cx: &mut Ctx<'_>, src: usize, col: &str, row: usize, value: &str, key: &str) {
    let name = cx.sources[src].name.clone();
    match date_shape(value) {
        Some(shape) => cx.out.problems.error(
            &name,
            Some(col),
            Some(row),
            Some(value),
            format!("look like {shape}"),
            format!(
                "set format = \"{}\" for {key} in the map, or write YYYY-MM-DD",
                shape_format(&shape)
            ),
        ),
        None => cx.out.problems.error(
            &name,
            Some(col),
            Some(row),
            Some(value),
            "are not dates",
            format!("correct them, or set the date format of {key} in the map (e.g. format = \"%d-%m-%Y\")"),
        ),
    }
}

fn participant_date(cx: &mut Ctx<'_>, key: &str, field: &Field) -> Option<Vec<Option<String>>> {
    let loc = participant_column(cx, key, field)?;
    let mut out = Vec::with_capacity(cx.ids.len());
    let ids = cx.ids.clone();
    for id in &ids {
        let Some(i) = cx.participant_row(loc.src, id) else {
            out.push(None);
            continue;
        };
        let t = &cx.sources[loc.src].table;
        match date_cell(t.cell(i, loc.col), field) {
            Ok(d) => out.push(d.map(|d| d.to_string())),
            Err(v) => {
                let row = source_row(t, i);
                let col = t.columns[loc.col].name.clone();
                date_problem(cx, loc.src, &col, row, &v, &format!("participants.{key}"));
                out.push(None);
            }
        }
    }
    Some(out)
}

/// participants.csv (and sites.csv when a site is mapped).
fn participants_table(cx: &mut Ctx<'_>) -> (Vec<OutColumn>, Option<Vec<OutColumn>>) {
    let pm = cx.lm.map.participants.clone();
    let arms = cx.lm.map.study.arms.clone();
    let mut cols = vec![OutColumn::new(
        "participant_id",
        OutValues::Text(cx.ids.iter().cloned().map(Some).collect()),
    )];
    let mut sites = None;
    if let Some(f) = &pm.site {
        if let Some(v) = categorical(cx, "site_id", f) {
            let mut seen: Vec<String> = Vec::new();
            for s in v.iter().flatten() {
                if !seen.contains(s) {
                    seen.push(s.clone());
                }
            }
            // site names: the value label of the code behind each site id, if any
            let names = site_names(cx, f, &v, &seen);
            let mut sc = vec![
                OutColumn::new(
                    "site_id",
                    OutValues::Text(seen.iter().cloned().map(Some).collect()),
                ),
                OutColumn::new("site_name", OutValues::Text(names)),
            ];
            let extras = cx
                .lm
                .map
                .sites
                .clone()
                .map(|s| s.columns)
                .unwrap_or_default();
            for (name, ef) in &extras {
                if let Some(vals) = per_key(cx, name, &v, &seen, ef) {
                    sc.push(OutColumn::new(name.to_lowercase(), OutValues::Text(vals)));
                }
            }
            sites = Some(sc);
            cols.push(OutColumn::new("site_id", OutValues::Text(v)));
        }
    }
    if let Some(f) = &pm.team {
        if let Some(v) = categorical(cx, "team_id", f) {
            cols.push(OutColumn::new("team_id", OutValues::Text(v)));
        }
    }
    if let Some(mut v) = categorical(cx, "arm", &pm.arm) {
        let loc = cx.find_participant_column(&pm.arm.column);
        for (k, a) in v.iter_mut().enumerate() {
            let Some(val) = a.clone() else {
                if let Some(l) = loc {
                    let s = &cx.sources[l.src];
                    let row = cx
                        .participant_row(l.src, &cx.ids[k])
                        .map(|i| source_row(&s.table, i));
                    cx.out.problems.error(
                        &s.name,
                        Some(&s.table.columns[l.col].name),
                        row,
                        Some(""),
                        "have no arm",
                        "every randomized participant needs an arm: fill it in the source",
                    );
                }
                continue;
            };
            match arms.iter().find(|x| x.eq_ignore_ascii_case(&val)) {
                Some(x) => *a = Some(x.clone()),
                None => {
                    if let Some(l) = loc {
                        let s = &cx.sources[l.src];
                        let i = cx.participant_row(l.src, &cx.ids[k]);
                        let code = i
                            .and_then(|i| id_of(s.table.cell(i, l.col)))
                            .unwrap_or_default();
                        cx.out.problems.error(
                            &s.name,
                            Some(&s.table.columns[l.col].name),
                            i.map(|i| source_row(&s.table, i)),
                            Some(&val),
                            format!("are not an arm of [study] arms ({})", arms.join(", ")),
                            format!(
                                "add recode = {{ \"{code}\" = \"{}\" }} (with the right arm) to participants.arm in the map",
                                arms.last().map(String::as_str).unwrap_or("")
                            ),
                        );
                    }
                }
            }
        }
        cols.push(OutColumn::new("arm", OutValues::Text(v)));
    }
    if let Some(f) = &pm.group {
        if let Some(v) = categorical(cx, "group_id", f) {
            cols.push(OutColumn::new("group_id", OutValues::Text(v)));
        }
    }
    if let Some(f) = &pm.randomized_on {
        if let Some(v) = participant_date(cx, "randomized_on", f) {
            cols.push(OutColumn::new("randomized_on", OutValues::Text(v)));
        }
    }
    if let Some(f) = &pm.age {
        if let Some(v) = numeric(cx, "age", f) {
            cols.push(OutColumn::new("age", OutValues::Text(v)));
        }
    }
    for (key, f) in [("sex", &pm.sex), ("diagnosis", &pm.diagnosis)] {
        if let Some(f) = f {
            if let Some(v) = categorical(cx, key, f) {
                cols.push(OutColumn::new(key, OutValues::Text(v)));
            }
        }
    }
    if let Some(f) = &pm.sessions_attended {
        if let Some(v) = numeric(cx, "sessions_attended", f) {
            cols.push(OutColumn::new("sessions_attended", OutValues::Text(v)));
        }
    }
    for c in &pm.covariates {
        let name = c.to_lowercase();
        if cols.iter().any(|x| x.name == name) {
            let line = cx.lm.line_of_value(c);
            let file = cx.map_file();
            cx.out.problems.error(
                &format!(
                    "{file}{}",
                    line.map(|l| format!(" (line {l})")).unwrap_or_default()
                ),
                Some("participants.covariates"),
                None,
                None,
                format!("\"{c}\" would overwrite the export column {name}"),
                "map it through its own key instead, or rename it in the source",
            );
            continue;
        }
        let f = Field {
            column: c.clone(),
            ..Field::default()
        };
        if let Some(v) = categorical(cx, &name, &f) {
            cols.push(OutColumn::new(name, OutValues::Text(v)));
        }
    }
    (cols, sites)
}

/// groups.csv (group_id, site_id, fidelity) when the map has `[groups]`: one row per group of
/// participants.group_id, its site and fidelity from its participants.
fn groups_table(cx: &mut Ctx<'_>, participants: &[OutColumn]) -> Option<Vec<OutColumn>> {
    let gm = cx.lm.map.groups.clone()?;
    let text = |name: &str| {
        participants
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| match &c.values {
                OutValues::Text(v) => Some(v.clone()),
                _ => None,
            })
    };
    let file = cx.map_file();
    let (Some(group), Some(site)) = (text("group_id"), text("site_id")) else {
        cx.out.problems.error(
            &file,
            Some("groups"),
            None,
            None,
            "needs participants.group and participants.site (groups.csv names each group's site)",
            "map both, or remove [groups]",
        );
        return None;
    };
    let mut distinct: Vec<String> = Vec::new();
    for g in group.iter().flatten() {
        if !distinct.contains(g) {
            distinct.push(g.clone());
        }
    }
    let sites: Vec<Option<String>> = distinct
        .iter()
        .map(|g| {
            let k = group
                .iter()
                .position(|x| x.as_deref() == Some(g.as_str()))?;
            site[k].clone()
        })
        .collect();
    let fidelity = per_key(cx, "fidelity", &group, &distinct, &gm.fidelity)?;
    Some(vec![
        OutColumn::new(
            "group_id",
            OutValues::Text(distinct.into_iter().map(Some).collect()),
        ),
        OutColumn::new("site_id", OutValues::Text(sites)),
        OutColumn::new("fidelity", OutValues::Text(fidelity)),
    ])
}

fn site_names(
    cx: &Ctx<'_>,
    f: &Field,
    ids: &[Option<String>],
    seen: &[String],
) -> Vec<Option<String>> {
    let Some(loc) = cx.find_participant_column(&f.column) else {
        return vec![None; seen.len()];
    };
    let s = &cx.sources[loc.src];
    let col = &s.table.columns[loc.col];
    seen.iter()
        .map(|site| {
            let k = ids
                .iter()
                .position(|x| x.as_deref() == Some(site.as_str()))?;
            let i = cx.participant_row(loc.src, &cx.ids[k])?;
            // the value label of the code, else the text the map recoded into the id
            let label = match s.table.cell(i, loc.col) {
                Cell::Num(x) => col.label_of_num(x),
                Cell::Text(t) => col.label_of_text(t).or(Some(t)),
                _ => None,
            }?;
            (label != site).then(|| label.to_string())
        })
        .collect()
}

/// Where each item of each instrument is at each wave.
struct InstrumentPlan {
    inst: Instrument,
    map: InstrumentMap,
    /// The map gives an item pattern (else the item columns are not written).
    has_items: bool,
    /// [wave][item] -> location
    locs: Vec<Vec<Option<Loc>>>,
    /// Pre-scored total and subscales (`total`, `subscales` in the map).
    scores: Vec<ScorePlan>,
}

/// Where a pre-scored total or subscale of an instrument is at each wave.
struct ScorePlan {
    /// Export column: `<instrument>_total` or `<instrument>_<subscale>`.
    export: String,
    /// Index into the instrument's subscales; `None`: the total.
    subscale: Option<usize>,
    field: Field,
    /// Inclusive score range (from the item range and the rule).
    range: (f64, f64),
    /// What the score is, for messages (`sum of 21 items 0-3`).
    what: String,
    /// [wave] -> location
    locs: Vec<Option<Loc>>,
}

/// A rule in words, for messages.
fn rule_words(rule: crate::schema::TotalRule) -> &'static str {
    match rule {
        crate::schema::TotalRule::Mean => "mean",
        crate::schema::TotalRule::Sum => "sum",
        crate::schema::TotalRule::ProratedSum => "prorated sum",
    }
}

/// Pre-scored totals may be rounded: a difference from the total of the items up to this is
/// not reported (two decimals).
const TOTAL_TOLERANCE: f64 = 0.005 + 1e-9;

/// Finds a per-wave column: with `{wave}` in wide sources under each wave code, without it
/// in the wave's own file or in long sources.
fn find_wave_column(
    cx: &Ctx<'_>,
    pattern_of: &dyn Fn(&str) -> String,
    has_wave: bool,
    w: usize,
) -> Option<Loc> {
    let wave = cx.lm.map.waves.get(w)?;
    for (si, s) in cx.sources.iter().enumerate() {
        match s.role {
            Role::Wide if has_wave => {
                for code in wave.code_texts() {
                    if let Some(col) = s.table.column_index(&pattern_of(&code)) {
                        return Some(Loc { src: si, col });
                    }
                }
            }
            Role::Wave(x) if !has_wave && x == w => {
                if let Some(col) = s.table.column_index(&pattern_of("")) {
                    return Some(Loc { src: si, col });
                }
            }
            Role::Long { .. } if !has_wave => {
                if let Some(col) = s.table.column_index(&pattern_of("")) {
                    return Some(Loc { src: si, col });
                }
            }
            _ => {}
        }
    }
    None
}

fn plan_instruments(cx: &mut Ctx<'_>, schema: &Schema) -> Vec<InstrumentPlan> {
    let n_waves = cx.lm.map.waves.len();
    let mut plans = Vec::new();
    for im in cx.lm.map.instruments.clone() {
        let Some(inst) = schema.instrument(&im.name).cloned() else {
            let line = cx.lm.line_of_value(&im.name);
            let file = cx.map_file();
            let known: Vec<&str> = schema.instruments.iter().map(|i| i.name.as_str()).collect();
            cx.out.problems.error(
                &format!(
                    "{file}{}",
                    line.map(|l| format!(" (line {l})")).unwrap_or_default()
                ),
                Some("instruments.name"),
                None,
                None,
                format!("\"{}\" is not an instrument of the data schema", im.name),
                format!(
                    "use one of {} (or add a definition with --schema)",
                    known.join(", ")
                ),
            );
            continue;
        };
        let mut locs = vec![vec![None; inst.items]; n_waves];
        let scores = plan_scores(cx, &im, &inst);
        let Some(items) = im.items.clone() else {
            plans.push(InstrumentPlan {
                inst,
                map: im,
                has_items: false,
                locs,
                scores,
            });
            continue;
        };
        let has_wave = items.contains("{wave}");
        for (w, wl) in locs.iter_mut().enumerate() {
            for (n, slot) in wl.iter_mut().enumerate() {
                *slot =
                    find_wave_column(cx, &|code| pattern_column(&items, n + 1, code), has_wave, w);
            }
        }
        let found: usize = locs.iter().flatten().filter(|l| l.is_some()).count();
        let file = cx.map_file();
        let line = cx.lm.line_of_value(&items);
        let map_src = format!(
            "{file}{}",
            line.map(|l| format!(" (line {l})")).unwrap_or_default()
        );
        if found == 0 {
            let example = pattern_column(
                &items,
                1,
                &cx.lm
                    .map
                    .waves
                    .first()
                    .map(|w| w.code_texts()[0].clone())
                    .unwrap_or_default(),
            );
            let hint = closest_hint(&example, cx.all_column_names());
            cx.out.problems.error(
                &map_src,
                Some(&format!("instruments {}", im.name)),
                None,
                None,
                format!("items = \"{items}\" matches no column (item 1 at the first wave would be {example})"),
                format!("correct the pattern ({{n}} item number, {{nn}} two digits, {{wave}} wave code){hint}"),
            );
            continue;
        }
        for (w, wl) in locs.iter().enumerate() {
            let k = wl.iter().filter(|l| l.is_some()).count();
            let label = cx.lm.map.waves[w].label.clone();
            if k == 0 {
                cx.out.notes.push(format!(
                    "{} has no columns at wave {label}: not measured then",
                    im.name
                ));
            } else if k < inst.items {
                let missing: Vec<String> = wl
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.is_none())
                    .take(5)
                    .map(|(n, _)| {
                        pattern_column(&items, n + 1, &cx.lm.map.waves[w].code_texts()[0])
                    })
                    .collect();
                cx.out.problems.error(
                    &map_src,
                    Some(&format!("instruments {}", im.name)),
                    None,
                    None,
                    format!(
                        "finds {k} of {} item columns at wave {label}; missing: {}",
                        inst.items,
                        missing.join(", ")
                    ),
                    "correct the pattern or the wave codes, or add the columns".to_string(),
                );
            }
        }
        for l in locs.iter().flatten().flatten() {
            cx.mark(*l);
        }
        plans.push(InstrumentPlan {
            inst,
            map: im,
            has_items: true,
            locs,
            scores,
        });
    }
    plans
}

/// The pre-scored total and subscale columns of one `[[instruments]]` entry, per wave; a
/// subscale the instrument does not define or a pattern that matches no column is a located
/// error, a wave without the column a note.
fn plan_scores(cx: &mut Ctx<'_>, im: &InstrumentMap, inst: &Instrument) -> Vec<ScorePlan> {
    let mut wanted: Vec<(Option<usize>, String, Field)> = Vec::new();
    if let Some(f) = &im.total {
        wanted.push((None, "total".to_string(), f.clone()));
    }
    for (name, f) in &im.subscales {
        match inst.subscales.iter().position(|s| &s.name == name) {
            Some(k) => wanted.push((Some(k), name.clone(), f.clone())),
            None => {
                let line = cx.lm.line_of_value(&f.column);
                let file = cx.map_file();
                let known: Vec<&str> = inst.subscales.iter().map(|s| s.name.as_str()).collect();
                cx.out.problems.error(
                    &format!(
                        "{file}{}",
                        line.map(|l| format!(" (line {l})")).unwrap_or_default()
                    ),
                    Some(&format!("instruments {} subscales", im.name)),
                    None,
                    None,
                    format!("\"{name}\" is not a subscale of {}", im.name),
                    if known.is_empty() {
                        format!(
                            "{} defines no subscales: add them to its definition (--schema) or map the column as a covariate",
                            im.name
                        )
                    } else {
                        format!("use one of {}", known.join(", "))
                    },
                );
            }
        }
    }
    let waves = cx.lm.map.waves.clone();
    let mut out = Vec::new();
    for (subscale, key, f) in wanted {
        let has_wave = f.column.contains("{wave}");
        let locs: Vec<Option<Loc>> = (0..waves.len())
            .map(|w| find_wave_column(cx, &|code| f.column.replace("{wave}", code), has_wave, w))
            .collect();
        let (export, range, what) = match subscale.and_then(|k| inst.subscales.get(k)) {
            None => (
                inst.total_column(),
                inst.total_range(),
                format!(
                    "the total of {}: {} of {} items {}-{}",
                    inst.name,
                    rule_words(inst.total),
                    inst.items,
                    num_text(inst.min),
                    num_text(inst.max)
                ),
            ),
            Some(s) => (
                inst.subscale_column(s),
                inst.subscale_range(s),
                format!(
                    "subscale {} of {}: {} of {} items {}-{}",
                    s.name,
                    inst.name,
                    rule_words(s.rule),
                    s.items.len(),
                    num_text(inst.min),
                    num_text(inst.max)
                ),
            ),
        };
        if locs.iter().all(Option::is_none) {
            let example = f.column.replace(
                "{wave}",
                &waves
                    .first()
                    .map(|w| w.code_texts()[0].clone())
                    .unwrap_or_default(),
            );
            let hint = closest_hint(&example, cx.all_column_names());
            let line = cx.lm.line_of_value(&f.column);
            let file = cx.map_file();
            let shown = if subscale.is_some() {
                format!("subscales {key}")
            } else {
                "total".to_string()
            };
            cx.out.problems.error(
                &format!(
                    "{file}{}",
                    line.map(|l| format!(" (line {l})")).unwrap_or_default()
                ),
                Some(&format!("instruments {}", im.name)),
                None,
                None,
                format!(
                    "{shown} = \"{}\" matches no column (at the first wave it would be {example})",
                    f.column
                ),
                format!("correct the pattern ({{wave}} wave code){hint}"),
            );
            continue;
        }
        for (w, l) in locs.iter().enumerate() {
            if l.is_none() {
                cx.out.notes.push(format!(
                    "{export} has no column at wave {}: not measured then",
                    waves[w].label
                ));
            }
        }
        for l in locs.iter().flatten() {
            cx.mark(*l);
        }
        out.push(ScorePlan {
            export,
            subscale,
            field: f,
            range,
            what,
            locs,
        });
    }
    out
}

/// assessments.csv; returns the names of instruments with data, and the row count.
#[allow(clippy::type_complexity)]
fn assessments_table(cx: &mut Ctx<'_>, schema: &Schema) -> ((Vec<String>, Vec<OutColumn>), usize) {
    let plans = plan_instruments(cx, schema);
    let waves = cx.lm.map.waves.clone();
    let assess_missing = cx.lm.map.assessments.missing.clone();
    let date_field = cx.lm.map.assessments.assessed_on.clone();
    let date_locs = assessment_date_locs(cx, date_field.as_ref(), waves.len());
    let mut b = AssessBuild::new(&plans, cx.ids.len() * waves.len());
    let ids = cx.ids.clone();
    let n_sources = cx.sources.len();
    let mut src_rows: Vec<Option<usize>> = vec![None; n_sources];
    for id in &ids {
        for (w, wave) in waves.iter().enumerate() {
            // the row of this participant x wave in each source, looked up once
            for (si, slot) in src_rows.iter_mut().enumerate() {
                *slot = cx.wave_row(si, id, w);
            }
            // a row in a long source or wave file counts as an assessment row
            let mut any = (0..n_sources).any(|si| {
                matches!(cx.sources[si].role, Role::Long { .. } | Role::Wave(_))
                    && src_rows[si].is_some()
            });
            let date = match (&date_field, date_locs[w]) {
                (Some(f), Some(l)) => assessment_date(cx, f, l, &src_rows),
                _ => None,
            };
            any |= date.is_some();
            let at = AssessRow {
                id,
                wave: &wave.label,
                w,
                src_rows: &src_rows,
                assess_missing: &assess_missing,
            };
            for (pi, p) in plans.iter().enumerate() {
                any |= read_items(cx, p, &at, &mut b.row_vals[pi]);
            }
            for (pi, p) in plans.iter().enumerate() {
                any |= read_scores(cx, p, &at, &mut b, pi);
            }
            if any {
                b.push_row(id, &wave.label, date);
            }
        }
    }
    b.into_columns(&plans)
}

/// The columns of assessments.csv while they are built, and the current row's values.
struct AssessBuild {
    pid_col: Vec<Option<String>>,
    wave_col: Vec<Option<String>>,
    date_col: Vec<Option<String>>,
    /// Item values as numbers (integers for integer instruments), 16 bytes a cell:
    /// [plan][item] -> column.
    item_cols: Vec<Vec<Vec<Option<f64>>>>,
    /// This row's item values: [plan][item].
    row_vals: Vec<Vec<Option<f64>>>,
    /// Pre-scored values: [plan][score] -> column.
    score_cols: Vec<Vec<Vec<Option<f64>>>>,
    /// This row's pre-scored values: [plan][score].
    score_vals: Vec<Vec<Option<f64>>>,
    /// (score, value) pairs already noted as a missing code kept as a valid score.
    kept_valid_codes: std::collections::HashSet<(String, String)>,
}

impl AssessBuild {
    /// Empty columns for the plans, item columns with room for `capacity` rows.
    fn new(plans: &[InstrumentPlan], capacity: usize) -> Self {
        AssessBuild {
            pid_col: Vec::new(),
            wave_col: Vec::new(),
            date_col: Vec::new(),
            item_cols: plans
                .iter()
                .map(|p| vec![Vec::with_capacity(capacity); p.inst.items])
                .collect(),
            row_vals: plans.iter().map(|p| vec![None; p.inst.items]).collect(),
            score_cols: plans
                .iter()
                .map(|p| vec![Vec::new(); p.scores.len()])
                .collect(),
            score_vals: plans.iter().map(|p| vec![None; p.scores.len()]).collect(),
            kept_valid_codes: Default::default(),
        }
    }

    /// Appends the current row (id, wave, date and the row's item and score values).
    fn push_row(&mut self, id: &str, wave: &str, date: Option<String>) {
        self.pid_col.push(Some(id.to_string()));
        self.wave_col.push(Some(wave.to_string()));
        self.date_col.push(date);
        for (pi, vals) in self.row_vals.iter_mut().enumerate() {
            for (n, v) in vals.iter_mut().enumerate() {
                self.item_cols[pi][n].push(v.take());
            }
        }
        for (pi, vals) in self.score_vals.iter_mut().enumerate() {
            for (k, v) in vals.iter_mut().enumerate() {
                self.score_cols[pi][k].push(v.take());
            }
        }
    }

    /// The export columns (items as integers where the instrument is integer and every
    /// value whole; whole-number scores as integers), the instrument names and row count.
    #[allow(clippy::type_complexity)]
    fn into_columns(self, plans: &[InstrumentPlan]) -> ((Vec<String>, Vec<OutColumn>), usize) {
        let n = self.pid_col.len();
        let mut cols = vec![
            OutColumn::new("participant_id", OutValues::Text(self.pid_col)),
            OutColumn::new("wave", OutValues::Text(self.wave_col)),
            OutColumn::new("assessed_on", OutValues::Text(self.date_col)),
        ];
        let mut names = Vec::new();
        for ((p, items), scores) in plans.iter().zip(self.item_cols).zip(self.score_cols) {
            names.push(p.inst.name.clone());
            let integer = p.inst.value_type == crate::schema::ValueType::Integer;
            for (k, v) in items.into_iter().enumerate().filter(|_| p.has_items) {
                let values = if integer && v.iter().flatten().all(|x| x.fract() == 0.0) {
                    OutValues::Int(v.into_iter().map(|x| x.map(|x| x as i64)).collect())
                } else {
                    OutValues::Float(v)
                };
                cols.push(OutColumn::new(p.inst.item_column(k + 1), values));
            }
            for (sp, v) in p.scores.iter().zip(scores) {
                // whole-number scores (a BDI sum) are written as integers
                let values = if v
                    .iter()
                    .flatten()
                    .all(|x| x.fract() == 0.0 && x.abs() < 1e15)
                {
                    OutValues::Int(v.into_iter().map(|x| x.map(|x| x as i64)).collect())
                } else {
                    OutValues::Float(v)
                };
                cols.push(OutColumn::new(sp.export.clone(), values));
            }
        }
        ((names, cols), n)
    }
}

/// One participant x wave of the assessments loop.
struct AssessRow<'r> {
    id: &'r str,
    /// The wave's label.
    wave: &'r str,
    /// The wave's index.
    w: usize,
    /// The row of this participant x wave in each source.
    src_rows: &'r [Option<usize>],
    /// `[assessments] missing` of the map.
    assess_missing: &'r [Key],
}

/// The `assessed_on` column of each wave (none without `assessments.assessed_on`); marks
/// them used and reports a date field found at no wave.
fn assessment_date_locs(
    cx: &mut Ctx<'_>,
    date_field: Option<&Field>,
    n_waves: usize,
) -> Vec<Option<Loc>> {
    let mut date_locs: Vec<Option<Loc>> = vec![None; n_waves];
    if let Some(f) = date_field {
        let has_wave = f.column.contains("{wave}");
        for (w, slot) in date_locs.iter_mut().enumerate() {
            *slot = find_wave_column(cx, &|code| f.column.replace("{wave}", code), has_wave, w);
        }
        if date_locs.iter().all(Option::is_none) {
            let c = f.column.clone();
            cx.missing_column("assessments.assessed_on", &c);
        }
        for l in date_locs.iter().flatten() {
            cx.mark(*l);
        }
    }
    date_locs
}

/// The assessment date of this row from column `l` (a problem reported if it is not a date).
fn assessment_date(
    cx: &mut Ctx<'_>,
    f: &Field,
    l: Loc,
    src_rows: &[Option<usize>],
) -> Option<String> {
    let i = src_rows[l.src]?;
    let t = &cx.sources[l.src].table;
    match date_cell(t.cell(i, l.col), f) {
        Ok(d) => d.map(|d| d.to_string()),
        Err(v) => {
            let row = source_row(t, i);
            let col = t.columns[l.col].name.clone();
            date_problem(cx, l.src, &col, row, &v, "assessments.assessed_on");
            None
        }
    }
}

/// Reads this row's items of one instrument into `row_vals` (codes logged, values outside
/// the range reported and left empty); true when some item has a value.
fn read_items(
    cx: &mut Ctx<'_>,
    p: &InstrumentPlan,
    at: &AssessRow<'_>,
    row_vals: &mut [Option<f64>],
) -> bool {
    let inst_missing_where = "missing of the instrument";
    let mut any = false;
    for (n, slot) in row_vals.iter_mut().enumerate() {
        *slot = None;
        let Some(l) = p.locs[at.w][n] else {
            continue;
        };
        let Some(i) = at.src_rows[l.src] else {
            continue;
        };
        let s = &cx.sources[l.src];
        let col = &s.table.columns[l.col];
        let cell = s.table.cell(i, l.col);
        let v = num_cell(
            &s.table,
            col,
            cell,
            &[
                (&p.map.missing, inst_missing_where),
                (at.assess_missing, "[assessments] missing"),
            ],
        );
        let row = source_row(&s.table, i);
        let item = NumAt {
            s,
            row,
            column: &col.name,
            logged: tagged_text(cell),
        };
        let Some(x) = number_or_report(
            &mut cx.out,
            item,
            v,
            || {
                format!(
                    "assessments {} {} {}",
                    at.id,
                    at.wave,
                    p.inst.item_column(n + 1)
                )
            },
            || {
                (
                    format!("are not numbers ({} items)", p.inst.name),
                    format!("list such codes in `missing` of [[instruments]] {} in the map, or correct them", p.inst.name),
                )
            },
        ) else {
            continue;
        };
        let y = x + p.map.offset;
        let ok = p.inst.is_not_known(y) || (y >= p.inst.min && y <= p.inst.max);
        if !ok {
            item_out_of_range(cx, p, at, n, l, i, x);
        } else {
            *slot = Some(y);
        }
        any = true;
    }
    any
}

/// Reports and logs item `n` of an instrument whose value `x` (row `i` of column `l`) is
/// outside the instrument's range after the offset.
fn item_out_of_range(
    cx: &mut Ctx<'_>,
    p: &InstrumentPlan,
    at: &AssessRow<'_>,
    n: usize,
    l: Loc,
    i: usize,
    x: f64,
) {
    let s = &cx.sources[l.src];
    let col = &s.table.columns[l.col];
    let row = source_row(&s.table, i);
    let off = if p.map.offset != 0.0 {
        format!(" after offset {}", num_text(p.map.offset))
    } else {
        String::new()
    };
    cx.out.problems.error(
        &s.name,
        Some(&col.name),
        Some(row),
        Some(&num_text(x)),
        format!(
            "are outside {}'s range {}-{}{off}",
            p.inst.name,
            num_text(p.inst.min),
            num_text(p.inst.max)
        ),
        format!(
            "if they are missing codes, list them in `missing` of [[instruments]] {}; if the coding differs, set its `offset`",
            p.inst.name
        ),
    );
    cx.out.log.push(LogEntry {
        source: s.name.clone(),
        row: Some(row),
        column: Some(col.name.clone()),
        value: Some(num_text(x)),
        action: Action::InvalidValue,
        export: format!(
            "assessments {} {} {}",
            at.id,
            at.wave,
            p.inst.item_column(n + 1)
        ),
        reason: "outside the instrument's range".into(),
        count: 1,
    });
}

/// Reads this row's pre-scored totals and subscales of plan `pi` into `b.score_vals`
/// (codes logged, out-of-range values reported); true when some score has a value.
fn read_scores(
    cx: &mut Ctx<'_>,
    p: &InstrumentPlan,
    at: &AssessRow<'_>,
    b: &mut AssessBuild,
    pi: usize,
) -> bool {
    let items: Vec<f64> = b.row_vals[pi]
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect();
    let mut any = false;
    for (k, sp) in p.scores.iter().enumerate() {
        b.score_vals[pi][k] = None;
        let Some(l) = sp.locs[at.w] else {
            continue;
        };
        let Some(i) = at.src_rows[l.src] else {
            continue;
        };
        let s = &cx.sources[l.src];
        let col = &s.table.columns[l.col];
        let cell = s.table.cell(i, l.col);
        let row = source_row(&s.table, i);
        let export = format!("assessments {} {} {}", at.id, at.wave, sp.export);
        // the column's own codes always; the instrument's and [assessments] codes
        // only where they cannot be a score (99 may be a valid total)
        let v = num_cell(
            &s.table,
            col,
            cell,
            &[(&sp.field.missing, "missing of the column")],
        );
        let (lo, hi) = sp.range;
        let listed = |x: f64| {
            p.map.missing.iter().any(|k| k.num() == Some(x))
                || at.assess_missing.iter().any(|k| k.num() == Some(x))
        };
        let v = match v {
            NumCell::Value(x) if (x < lo || x > hi) && listed(x) => {
                NumCell::Missing(super::values::MissingWhy::Map(
                    "missing of the instrument or [assessments] missing",
                ))
            }
            other => other,
        };
        let score = NumAt {
            s,
            row,
            column: &col.name,
            logged: tagged_text(cell),
        };
        let Some(x) = number_or_report(
            &mut cx.out,
            score,
            v,
            || export.clone(),
            || {
                (
                    format!("are not numbers ({})", sp.export),
                    format!(
                        "list such codes in `missing` of the column in the map ({{ column = \"{}\", missing = [...] }}), or correct them",
                        sp.field.column
                    ),
                )
            },
        ) else {
            continue;
        };
        if x < lo || x > hi {
            score_out_of_range(cx, p, sp, l, i, x, export);
            continue;
        }
        if listed(x) && b.kept_valid_codes.insert((sp.export.clone(), num_text(x))) {
            cx.out.notes.push(format!(
                "{} is listed as a missing code for {} but is a valid {} ({}-{}): kept as a score",
                num_text(x),
                p.inst.name,
                sp.export,
                num_text(lo),
                num_text(hi)
            ));
        }
        b.score_vals[pi][k] = Some(x);
        any = true;
        check_score_against_items(cx, p, sp, l, i, x, &items);
    }
    any
}

/// Reports and logs a pre-scored value `x` (row `i` of column `l`) outside the score range.
fn score_out_of_range(
    cx: &mut Ctx<'_>,
    p: &InstrumentPlan,
    sp: &ScorePlan,
    l: Loc,
    i: usize,
    x: f64,
    export: String,
) {
    let s = &cx.sources[l.src];
    let col = &s.table.columns[l.col];
    let row = source_row(&s.table, i);
    let (lo, hi) = sp.range;
    cx.out.problems.error(
        &s.name,
        Some(&col.name),
        Some(row),
        Some(&num_text(x)),
        format!(
            "are outside the score range {}-{} of {} ({})",
            num_text(lo),
            num_text(hi),
            sp.export,
            sp.what
        ),
        format!(
            "if they are missing codes, list them in `missing` of the column or of [[instruments]] {}; else check that the column holds {}",
            p.inst.name, sp.what
        ),
    );
    cx.out.log.push(LogEntry {
        source: s.name.clone(),
        row: Some(row),
        column: Some(col.name.clone()),
        value: Some(num_text(x)),
        action: Action::InvalidValue,
        export,
        reason: "outside the score range".into(),
        count: 1,
    });
}

/// With items: warns when the given score `x` differs from the one the items give.
fn check_score_against_items(
    cx: &mut Ctx<'_>,
    p: &InstrumentPlan,
    sp: &ScorePlan,
    l: Loc,
    i: usize,
    x: f64,
    items: &[f64],
) {
    let computed = if p.has_items {
        match sp.subscale.and_then(|j| p.inst.subscales.get(j)) {
            None => p.inst.total_of(items),
            Some(sub) => p.inst.subscale_of(sub, items),
        }
    } else {
        None
    };
    let Some(c) = computed.filter(|c| (c - x).abs() > TOTAL_TOLERANCE) else {
        return;
    };
    let s = &cx.sources[l.src];
    let col = &s.table.columns[l.col];
    let row = source_row(&s.table, i);
    cx.out.problems.warning(
        &s.name,
        Some(&col.name),
        Some(row),
        Some(&format!(
            "{} (the items give {})",
            num_text(x),
            num_text((c * 1e4).round() / 1e4)
        )),
        format!(
            "differ from the {} computed from the items ({})",
            sp.export, sp.what
        ),
        "the items are scored and this column is used only where no item is answered; check the column, the items' `offset` and the instrument's reverse-keyed items",
    );
}

/// admissions.csv from the admissions source, if the map has one.
fn admissions_table(cx: &mut Ctx<'_>) -> Option<Vec<OutColumn>> {
    let am = cx.lm.map.admissions.clone()?;
    let si = cx.sources.iter().position(|s| s.role == Role::Admissions)?;
    let s = &cx.sources[si];
    let find = |f: &Field| s.table.column_index(&f.column);
    let mut locs = Vec::new();
    for (key, f) in [
        ("admissions.participant_id", &am.participant_id),
        ("admissions.admitted_on", &am.admitted_on),
        ("admissions.discharged_on", &am.discharged_on),
        ("admissions.involuntary", &am.involuntary),
    ] {
        match find(f) {
            Some(c) => locs.push(c),
            None => {
                cx.missing_column(key, &f.column);
                return None;
            }
        }
    }
    for &c in &locs {
        cx.mark(Loc { src: si, col: c });
    }
    let s = &cx.sources[si];
    let known: std::collections::HashSet<&str> = cx.ids.iter().map(String::as_str).collect();
    let (mut pid, mut a_on, mut d_on, mut inv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut strays = Vec::new();
    let mut date_errs = Vec::new();
    let mut flag_errs = Vec::new();
    for i in 0..s.table.n_rows {
        let row = source_row(&s.table, i);
        let Some(id) = id_of(s.table.cell(i, locs[0])) else {
            continue; // logged in index_rows
        };
        if !known.contains(id.as_str()) {
            strays.push((row, id));
            continue;
        }
        let mut dates = [None, None];
        for (k, (f, c)) in [(&am.admitted_on, locs[1]), (&am.discharged_on, locs[2])]
            .into_iter()
            .enumerate()
        {
            match date_cell(s.table.cell(i, c), f) {
                Ok(d) => dates[k] = d.map(|d| d.to_string()),
                Err(v) => date_errs.push((c, row, v, k)),
            }
        }
        let col = &s.table.columns[locs[3]];
        let flag = match text_cell(&s.table, col, s.table.cell(i, locs[3]), &am.involuntary) {
            TextCell::Value { value, code, .. } => {
                let v = match value.to_lowercase().as_str() {
                    "1" | "ja" | "yes" | "true" => Some("1"),
                    "0" | "nee" | "no" | "false" => Some("0"),
                    _ => None,
                };
                if v.is_none() {
                    flag_errs.push((row, code));
                }
                v.map(str::to_string)
            }
            _ => None,
        };
        pid.push(Some(id));
        a_on.push(dates[0].clone());
        d_on.push(dates[1].clone());
        inv.push(flag);
    }
    let name = s.name.clone();
    for (row, id) in strays {
        cx.out.log.push(LogEntry {
            source: name.clone(),
            row: Some(row),
            column: Some(am.participant_id.column.clone()),
            value: Some(id.clone()),
            action: Action::UnmatchedRow,
            export: String::new(),
            reason: format!(
                "participant {id} is not among the participants; the admission is left out"
            ),
            count: 1,
        });
        cx.out.problems.warning(
            &name,
            Some(&am.participant_id.column),
            Some(row),
            Some(&id),
            "are admissions of unknown participants (left out, see import-log.csv)",
            "check the participant ids of both files",
        );
    }
    for (c, row, v, k) in date_errs {
        let col = cx.sources[si].table.columns[c].name.clone();
        let key = if k == 0 {
            "admissions.admitted_on"
        } else {
            "admissions.discharged_on"
        };
        date_problem(cx, si, &col, row, &v, key);
    }
    for (row, code) in flag_errs {
        cx.out.problems.error(
            &name,
            Some(&am.involuntary.column),
            Some(row),
            Some(&code),
            "are not 0/1 (involuntary)",
            "add recode = { \"<code>\" = \"1\" } / \"0\" to admissions.involuntary in the map",
        );
    }
    Some(vec![
        OutColumn::new("participant_id", OutValues::Text(pid)),
        OutColumn::new("admitted_on", OutValues::Text(a_on)),
        OutColumn::new("discharged_on", OutValues::Text(d_on)),
        OutColumn::new("involuntary", OutValues::Text(inv)),
    ])
}

/// Every column the map does not use: one log line each, with its count of non-empty cells.
fn unmapped_columns(cx: &mut Ctx<'_>) {
    for (si, s) in cx.sources.iter().enumerate() {
        for (ci, c) in s.table.columns.iter().enumerate() {
            if cx.used[si][ci] {
                continue;
            }
            let n = (0..s.table.n_rows)
                .filter(|&i| !matches!(s.table.cell(i, ci), Cell::Empty))
                .count();
            cx.out.log.push(LogEntry {
                source: s.name.clone(),
                row: None,
                column: Some(c.name.clone()),
                value: c.label.clone(),
                action: Action::UnmappedColumn,
                export: String::new(),
                reason: "not in the map (add it to participants.covariates to carry it along)"
                    .into(),
                count: n,
            });
        }
    }
}

#[derive(serde::Serialize)]
struct StudyOut<'a> {
    name: &'a str,
    arms: &'a [String],
    intervention: &'a str,
    design: &'a str,
    instruments: &'a [String],
    waves: Vec<WaveOut<'a>>,
}

#[derive(serde::Serialize)]
struct WaveOut<'a> {
    label: &'a str,
    months: f64,
}

fn study_toml(lm: &LoadedMap, instruments: &[String]) -> String {
    let s = &lm.map.study;
    let out = StudyOut {
        name: s.name.as_deref().unwrap_or("Imported trial"),
        arms: &s.arms,
        intervention: s
            .intervention
            .as_deref()
            .or(s.arms.last().map(String::as_str))
            .unwrap_or(""),
        design: s.design.as_deref().unwrap_or("individual"),
        instruments,
        waves: lm
            .map
            .waves
            .iter()
            .map(|w| WaveOut {
                label: &w.label,
                months: w.months,
            })
            .collect(),
    };
    let body = toml::to_string(&out).unwrap_or_default();
    format!(
        "# written by herstel import from {}\n{body}",
        lm.file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(pattern_column("imrs{n}_{wave}", 3, "T0"), "imrs3_T0");
        assert_eq!(pattern_column("MHRM_{nn}", 3, "T0"), "MHRM_03");
        assert_eq!(pattern_column("x{nnn}{wave}", 12, ""), "x012");
    }
}
