//! The checks and the construction of a [`Trial`] from the raw tables.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::report::{Problem, ProblemKind, Severity, Summary, ValidationReport};
use super::{
    Admission, Arm, Assessment, Date, Exclusion, ExtraColumn, Group, GroupId, Ingested, ItemMatrix,
    Participant, ParticipantId, PreScored, Site, SiteId, Trial, ValidateOptions, Wave,
};
use crate::schema::{
    ColumnSchema, ColumnType, Design, Instrument, Schema, SchemaError, Study, TableSchema,
    TotalRule, ValueType,
};
use crate::table::{
    file_row, find_table, read_file_digest, read_table_file_hashed, FileDigest, RawTable,
    TableError,
};

/// Average month length in days (365.25 / 12), for "months since randomization".
pub const DAYS_PER_MONTH: f64 = 30.4375;

#[derive(Default)]
struct Ctx {
    report: ValidationReport,
}

impl Ctx {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        severity: Severity,
        kind: ProblemKind,
        table: &str,
        row: Option<usize>,
        column: Option<&str>,
        value: Option<&str>,
        expected: impl Into<String>,
    ) {
        self.report.push(Problem {
            severity,
            kind,
            table: table.to_string(),
            row,
            column: column.map(str::to_string),
            value: value.map(str::to_string),
            expected: expected.into(),
        });
    }

    fn error(
        &mut self,
        kind: ProblemKind,
        table: &str,
        row: Option<usize>,
        column: Option<&str>,
        value: Option<&str>,
        expected: impl Into<String>,
    ) {
        self.push(Severity::Error, kind, table, row, column, value, expected);
    }

    /// An error on data row `i` (0-based) that also excludes the row.
    #[allow(clippy::too_many_arguments)]
    fn row_error(
        &mut self,
        flags: &mut RowFlags,
        kind: ProblemKind,
        table: &str,
        i: usize,
        column: Option<&str>,
        value: Option<&str>,
        expected: impl Into<String>,
    ) {
        let expected = expected.into();
        flags.mark(i, || {
            let mut r = kind.label().to_string();
            if let Some(c) = column {
                r.push_str(&format!(" in column {c}"));
            }
            if let Some(v) = value {
                r.push_str(&format!(": \"{v}\""));
            }
            r.push_str(&format!(" (expected {expected})"));
            r
        });
        self.error(kind, table, Some(file_row(i)), column, value, expected);
    }

    #[allow(clippy::too_many_arguments)]
    fn warn(
        &mut self,
        kind: ProblemKind,
        table: &str,
        row: Option<usize>,
        column: Option<&str>,
        value: Option<&str>,
        expected: impl Into<String>,
    ) {
        self.push(Severity::Warning, kind, table, row, column, value, expected);
    }
}

/// The first error reason of each data row, if any.
struct RowFlags {
    reasons: Vec<Option<String>>,
}

impl RowFlags {
    fn new(n: usize) -> Self {
        RowFlags {
            reasons: vec![None; n],
        }
    }

    fn mark(&mut self, i: usize, reason: impl FnOnce() -> String) {
        if let Some(slot) = self.reasons.get_mut(i) {
            if slot.is_none() {
                *slot = Some(reason());
            }
        }
    }

    fn is_bad(&self, i: usize) -> bool {
        self.reasons.get(i).is_some_and(Option::is_some)
    }

    fn reason(&self, i: usize) -> Option<&str> {
        self.reasons.get(i).and_then(|r| r.as_deref())
    }
}

/// Parses an integer cell; integral decimals such as `3.0` (Parquet floats) are accepted.
pub(crate) fn parse_int(v: &str) -> Option<i64> {
    // fast path: up to 18 ASCII digits with an optional sign (item values are mostly one digit)
    let b = v.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit) {
        let x = digits
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
        return Some(if neg { -x } else { x });
    }
    if let Ok(i) = v.parse::<i64>() {
        return Some(i);
    }
    let f = v.parse::<f64>().ok()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Parses a finite number.
pub(crate) fn parse_num(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn range_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!(" in {a}..{b}"),
        (Some(a), None) => format!(" >= {a}"),
        (None, Some(b)) => format!(" <= {b}"),
        (None, None) => String::new(),
    }
}

/// Checks one non-empty cell against its column type and range.
fn check_cell(
    c: &ColumnSchema,
    v: &str,
    study: Option<&Study>,
) -> Result<(), (ProblemKind, String)> {
    let in_range = |x: f64| c.min.is_none_or(|m| x >= m) && c.max.is_none_or(|m| x <= m);
    match c.ty {
        ColumnType::String => Ok(()),
        ColumnType::Integer => {
            let x = parse_int(v).ok_or_else(|| {
                (
                    ProblemKind::NotANumber,
                    format!("an integer{}", range_text(c.min, c.max)),
                )
            })?;
            if in_range(x as f64) {
                Ok(())
            } else {
                Err((
                    ProblemKind::OutOfRange,
                    format!("an integer{}", range_text(c.min, c.max)),
                ))
            }
        }
        ColumnType::Number => {
            let x = parse_num(v).ok_or_else(|| {
                (
                    ProblemKind::NotANumber,
                    format!("a number{}", range_text(c.min, c.max)),
                )
            })?;
            if in_range(x) {
                Ok(())
            } else {
                Err((
                    ProblemKind::OutOfRange,
                    format!("a number{}", range_text(c.min, c.max)),
                ))
            }
        }
        ColumnType::Date => Date::parse(v)
            .map(|_| ())
            .ok_or((ProblemKind::BadDate, "a date YYYY-MM-DD".to_string())),
        ColumnType::Flag => match v {
            "0" | "1" => Ok(()),
            _ => Err((ProblemKind::BadFlag, "0 or 1".to_string())),
        },
        ColumnType::Arm => match study {
            Some(s) if s.arm_index(v).is_none() => Err((
                ProblemKind::UnknownArm,
                format!("an arm of study.toml ({})", s.arms.join(", ")),
            )),
            _ => Ok(()),
        },
        ColumnType::Wave => match study {
            Some(s) if s.wave_index(v).is_none() => Err((
                ProblemKind::UnknownWave,
                format!(
                    "a wave of study.toml ({})",
                    s.waves
                        .iter()
                        .map(|w| w.label.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            _ => Ok(()),
        },
    }
}

/// Cell text of a named column (None when the column is absent or the cell empty).
fn cell(t: &RawTable, col: Option<usize>, i: usize) -> Option<&str> {
    col.and_then(|c| t.cell(i, c))
}

/// Columns of `t` not defined in its schema.
fn extra_columns(t: &RawTable, ts: &TableSchema, kept: &[usize]) -> Vec<ExtraColumn> {
    t.columns()
        .iter()
        .enumerate()
        .filter(|(_, name)| ts.column(name).is_none())
        .map(|(ci, name)| ExtraColumn {
            name: name.clone(),
            values: kept
                .iter()
                .map(|&i| t.cell(i, ci).map(str::to_string))
                .collect(),
        })
        .collect()
}

pub(super) fn read_export(dir: &Path, schema: &Schema, options: &ValidateOptions) -> Ingested {
    let mut cx = Ctx::default();
    let mut inputs = Vec::new();
    let study = read_study(&mut cx, dir, &mut inputs);
    let instruments = study
        .as_ref()
        .map(|s| study_instruments(&mut cx, s, schema))
        .unwrap_or_default();
    let (tables, tables_complete) = read_tables(&mut cx, dir, schema, &mut inputs);
    let structure_complete = check_structure(&mut cx, schema, &tables, &instruments);
    let complete = study.is_some() && tables_complete && structure_complete;
    let mut flags = check_cells(&mut cx, schema, &tables, study.as_ref());
    let trial = match (complete, study) {
        (true, Some(study)) => Some(build_trial(
            &mut cx,
            schema,
            options,
            study,
            instruments,
            &tables,
            &mut flags,
        )),
        _ => None,
    };
    let mut report = cx.report;
    report.summary = match &trial {
        Some(t) => summarize(t),
        None => Summary {
            participants: tables.get("participants").map_or(0, RawTable::n_rows),
            sites: tables.get("sites").map_or(0, RawTable::n_rows),
            groups: tables.get("groups").map_or(0, RawTable::n_rows),
            ..Summary::default()
        },
    };
    inputs.sort_by(|a, b| a.0.cmp(&b.0));
    Ingested {
        trial,
        report,
        inputs,
    }
}

/// Reads `study.toml` (its digest into `inputs`); `None` with a located error when it is
/// absent or malformed.
fn read_study(cx: &mut Ctx, dir: &Path, inputs: &mut Vec<(PathBuf, FileDigest)>) -> Option<Study> {
    let study_path = dir.join("study.toml");
    if !study_path.is_file() {
        cx.error(
            ProblemKind::MissingTable,
            "study.toml",
            None,
            None,
            None,
            "a study.toml file in the export folder",
        );
        return None;
    }
    let parsed = read_file_digest(&study_path)
        .map_err(|e| SchemaError::Io {
            file: study_path.clone(),
            message: e.to_string(),
        })
        .and_then(|(bytes, digest)| {
            inputs.push((study_path.clone(), digest));
            let text = String::from_utf8(bytes).map_err(|_| SchemaError::Io {
                file: study_path.clone(),
                message: "stream did not contain valid UTF-8".into(),
            })?;
            Study::from_toml(&text, &study_path)
        });
    match parsed {
        Ok(s) => Some(s),
        Err(SchemaError::Malformed { line, message, .. }) => {
            cx.error(
                ProblemKind::MalformedStudy,
                "study.toml",
                line,
                None,
                None,
                format!("valid study TOML ({message})"),
            );
            None
        }
        Err(e) => {
            cx.error(
                ProblemKind::MalformedStudy,
                "study.toml",
                None,
                None,
                None,
                format!("a readable study.toml ({e})"),
            );
            None
        }
    }
}

/// The instrument definitions of the study's instruments (an error for each unknown name).
fn study_instruments(cx: &mut Ctx, s: &Study, schema: &Schema) -> Vec<Instrument> {
    let mut instruments: Vec<Instrument> = Vec::new();
    for name in &s.instruments {
        match schema.instrument(name) {
            Some(i) => instruments.push(i.clone()),
            None => cx.error(
                ProblemKind::UnknownInstrument,
                "study.toml",
                None,
                Some("instruments"),
                Some(name),
                format!(
                    "an instrument of the data schema ({})",
                    schema
                        .instruments
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    instruments
}

/// Reads every table of the schema found in `dir` (digests into `inputs`); false when a
/// required table is missing or a table is malformed.
fn read_tables(
    cx: &mut Ctx,
    dir: &Path,
    schema: &Schema,
    inputs: &mut Vec<(PathBuf, FileDigest)>,
) -> (HashMap<String, RawTable>, bool) {
    let mut complete = true;
    let mut tables: HashMap<String, RawTable> = HashMap::new();
    for ts in &schema.tables {
        match find_table(dir, &ts.table) {
            None => {
                if ts.required {
                    cx.error(
                        ProblemKind::MissingTable,
                        &ts.table,
                        None,
                        None,
                        None,
                        format!("{0}.csv or {0}.parquet in the export folder", ts.table),
                    );
                    complete = false;
                }
            }
            Some(p) => match read_table_file_hashed(&p) {
                Ok(t) => {
                    if let Some(d) = t.digest() {
                        inputs.push((p.clone(), d.clone()));
                    }
                    tables.insert(ts.table.clone(), t);
                }
                Err(e) => {
                    let row = match &e {
                        TableError::Malformed { row, .. } => *row,
                        _ => None,
                    };
                    cx.error(
                        ProblemKind::MalformedTable,
                        &ts.table,
                        row,
                        None,
                        None,
                        format!("a well-formed table ({e})"),
                    );
                    complete = false;
                }
            },
        }
    }

    (tables, complete)
}

/// The required columns of every table and the item columns of the study's instruments;
/// false when one is missing (or a table is not comma-separated).
fn check_structure(
    cx: &mut Ctx,
    schema: &Schema,
    tables: &HashMap<String, RawTable>,
    instruments: &[Instrument],
) -> bool {
    let mut complete = true;
    for ts in &schema.tables {
        let Some(t) = tables.get(&ts.table) else {
            continue;
        };
        if let Some(sep) = other_separator(t) {
            // one message instead of one per missing column
            let header = t.columns().first().map(String::as_str).unwrap_or("");
            let shown: String = header.chars().take(60).collect();
            cx.error(
                ProblemKind::MalformedTable,
                &ts.table,
                Some(1),
                None,
                Some(&shown),
                format!(
                    "comma-separated columns: this file is separated by {sep}; save it as CSV with commas, or read it with `herstel import FILE --guess` (which detects the separator, decimal comma and encoding)"
                ),
            );
            complete = false;
            continue;
        }
        for c in ts.columns.iter().filter(|c| c.required) {
            if t.column_index(&c.name).is_none() {
                cx.error(
                    ProblemKind::MissingColumn,
                    &ts.table,
                    Some(1),
                    Some(&c.name),
                    None,
                    format!("a column `{}` ({})", c.name, c.ty.describe()),
                );
                complete = false;
            }
        }
    }
    if let Some(t) = tables.get("assessments") {
        for inst in instruments {
            // an instrument delivered only as pre-scored totals or subscales has no item
            // columns at all; some but not all of them is an error
            let prescored = t.column_index(&inst.total_column()).is_some()
                || inst
                    .subscales
                    .iter()
                    .any(|s| t.column_index(&inst.subscale_column(s)).is_some());
            let cols = inst.item_columns();
            if prescored && cols.iter().all(|c| t.column_index(c).is_none()) {
                continue;
            }
            for col in cols {
                if t.column_index(&col).is_none() {
                    cx.error(
                        ProblemKind::MissingColumn,
                        "assessments",
                        Some(1),
                        Some(&col),
                        None,
                        format!("a column `{col}` (item of {} in study.toml)", inst.name),
                    );
                    complete = false;
                }
            }
        }
    }

    complete
}

/// The per-cell checks of every column (type, range, references) and the keys of every
/// table: the rows flagged with errors per table.
fn check_cells(
    cx: &mut Ctx,
    schema: &Schema,
    tables: &HashMap<String, RawTable>,
    study: Option<&Study>,
) -> HashMap<String, RowFlags> {
    // key values of referenced columns
    let mut key_values: HashMap<(String, String), HashSet<&str>> = HashMap::new();
    for ts in &schema.tables {
        for r in ts.columns.iter().filter_map(|c| c.references.as_ref()) {
            let Some(t) = tables.get(&r.table) else {
                continue;
            };
            let Some(ci) = t.column_index(&r.column) else {
                continue;
            };
            key_values
                .entry((r.table.clone(), r.column.clone()))
                .or_insert_with(|| t.column_cells(ci).flatten().collect());
        }
    }

    // generic per-column checks and keys
    let mut flags: HashMap<String, RowFlags> = HashMap::new();
    for ts in &schema.tables {
        let Some(t) = tables.get(&ts.table) else {
            continue;
        };
        let mut fl = RowFlags::new(t.n_rows());
        for c in &ts.columns {
            let Some(ci) = t.column_index(&c.name) else {
                continue;
            };
            let refs = c.references.as_ref().and_then(|r| {
                key_values
                    .get(&(r.table.clone(), r.column.clone()))
                    .map(|set| (r, set))
            });
            for (i, v) in t.column_cells(ci).enumerate() {
                let Some(v) = v else {
                    if !c.nullable {
                        cx.row_error(
                            &mut fl,
                            ProblemKind::MissingValue,
                            &ts.table,
                            i,
                            Some(&c.name),
                            None,
                            format!("a value ({})", c.ty.describe()),
                        );
                    }
                    continue;
                };
                if let Err((kind, expected)) = check_cell(c, v, study) {
                    cx.row_error(
                        &mut fl,
                        kind,
                        &ts.table,
                        i,
                        Some(&c.name),
                        Some(v),
                        expected,
                    );
                    continue;
                }
                if let Some((r, set)) = &refs {
                    if !set.contains(v) {
                        cx.row_error(
                            &mut fl,
                            ProblemKind::UnknownReference,
                            &ts.table,
                            i,
                            Some(&c.name),
                            Some(v),
                            format!("a {} of {}", r.column, r.table),
                        );
                    }
                }
            }
        }
        check_keys(cx, &mut fl, t, ts);
        flags.insert(ts.table.clone(), fl);
    }

    flags
}

/// The separator a CSV was written with when it is not a comma: a one-column table whose
/// header holds semicolons, tabs or vertical bars.
fn other_separator(t: &RawTable) -> Option<&'static str> {
    let [only] = t.columns() else {
        return None;
    };
    [(';', "semicolons"), ('\t', "tabs"), ('|', "vertical bars")]
        .into_iter()
        .find(|(c, _)| only.contains(*c))
        .map(|(_, name)| name)
}

/// Duplicate key values: reported at the later row, naming the first.
fn check_keys(cx: &mut Ctx, fl: &mut RowFlags, t: &RawTable, ts: &TableSchema) {
    if ts.key.is_empty() {
        return;
    }
    let Some(cols) = ts
        .key
        .iter()
        .map(|k| t.column_index(k))
        .collect::<Option<Vec<usize>>>()
    else {
        return;
    };
    let col_name = ts.key.join(", ");
    let mut seen: HashMap<Vec<&str>, usize> = HashMap::with_capacity(t.n_rows());
    for i in 0..t.n_rows() {
        let Some(key) = cols
            .iter()
            .map(|&c| t.cell(i, c))
            .collect::<Option<Vec<&str>>>()
        else {
            continue;
        };
        match seen.get(&key) {
            Some(&first) => {
                let value = key.join(", ");
                cx.row_error(
                    fl,
                    ProblemKind::DuplicateKey,
                    &ts.table,
                    i,
                    Some(&col_name),
                    Some(&value),
                    format!("a unique {col_name} (already at row {})", file_row(first)),
                );
            }
            None => {
                seen.insert(key, i);
            }
        }
    }
}

fn take_flags(flags: &mut HashMap<String, RowFlags>, table: &str, n: usize) -> RowFlags {
    flags.remove(table).unwrap_or_else(|| RowFlags::new(n))
}

/// Every table of the export into the typed [`Trial`]: one function per table, each keeping
/// the rows without errors and logging every other row with its reason in `exclusions`.
fn build_trial(
    cx: &mut Ctx,
    schema: &Schema,
    options: &ValidateOptions,
    study: Study,
    instruments: Vec<Instrument>,
    tables: &HashMap<String, RawTable>,
    flags: &mut HashMap<String, RowFlags>,
) -> Trial {
    let mut exclusions: Vec<Exclusion> = Vec::new();
    let sites = build_sites(schema, tables, flags, &mut exclusions);
    let mut groups = build_groups(tables, flags, &sites.index, &mut exclusions);
    let participants = build_participants(
        cx,
        schema,
        &study,
        tables,
        flags,
        &sites,
        &mut groups,
        &mut exclusions,
    );
    let (assessments, items, prescored) = build_assessments(
        cx,
        &study,
        &instruments,
        tables,
        flags,
        &participants,
        &mut exclusions,
    );
    let admissions = build_admissions(cx, tables, flags, &participants, &mut exclusions);
    let trial = Trial {
        study,
        instruments,
        sites: sites.sites,
        groups: groups.groups,
        participants: participants.participants,
        assessments,
        items,
        prescored,
        admissions,
        admissions_collected: tables.contains_key("admissions"),
        participant_extra: participants.extra,
        site_extra: sites.extra,
        exclusions,
    };
    not_collected(cx, &trial, tables);
    warnings(cx, &trial, options);
    trial
}

/// A table schema with no columns, for extra columns of a table the schema does not define.
fn empty_schema() -> TableSchema {
    TableSchema {
        table: String::new(),
        required: false,
        key: vec![],
        description: String::new(),
        columns: vec![],
    }
}

/// The sites and their index by id.
struct SitesBuilt {
    sites: Vec<Site>,
    index: HashMap<String, SiteId>,
    extra: Vec<ExtraColumn>,
}

/// sites.csv, or without it the distinct participants.site_id values, or one site.
fn build_sites(
    schema: &Schema,
    tables: &HashMap<String, RawTable>,
    flags: &mut HashMap<String, RowFlags>,
    exclusions: &mut Vec<Exclusion>,
) -> SitesBuilt {
    let empty_schema = empty_schema();
    let mut sites: Vec<Site> = Vec::new();
    let mut site_index: HashMap<String, SiteId> = HashMap::new();
    let mut site_extra = Vec::new();
    if let Some(t) = tables.get("sites") {
        let fl = take_flags(flags, "sites", t.n_rows());
        let c_id = t.column_index("site_id");
        let c_name = t.column_index("site_name");
        let mut kept = Vec::new();
        for i in 0..t.n_rows() {
            let id = cell(t, c_id, i);
            match (fl.reason(i), id) {
                (None, Some(id)) => {
                    site_index.insert(id.to_string(), SiteId(sites.len() as u32));
                    sites.push(Site {
                        id: id.to_string(),
                        name: cell(t, c_name, i).map(str::to_string),
                        row: file_row(i),
                    });
                    kept.push(i);
                }
                (reason, _) => exclusions.push(Exclusion {
                    table: "sites".into(),
                    row: file_row(i),
                    reason: reason.unwrap_or("no site_id").to_string(),
                }),
            }
        }
        site_extra = extra_columns(t, schema.table("sites").unwrap_or(&empty_schema), &kept);
    } else {
        // no sites table: the distinct participants.site_id values, or one site
        let ids: Vec<String> = match tables.get("participants") {
            Some(t) => match t.column_index("site_id") {
                Some(c) => {
                    let mut v: Vec<String> = Vec::new();
                    for s in t.column_cells(c).flatten() {
                        if !site_index.contains_key(s) {
                            site_index.insert(s.to_string(), SiteId(v.len() as u32));
                            v.push(s.to_string());
                        }
                    }
                    v
                }
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        let ids = if ids.is_empty() {
            site_index.insert(ONE_SITE.to_string(), SiteId(0));
            vec![ONE_SITE.to_string()]
        } else {
            ids
        };
        sites = ids
            .into_iter()
            .map(|id| Site {
                id,
                name: None,
                row: 0,
            })
            .collect();
    }

    SitesBuilt {
        sites,
        index: site_index,
        extra: site_extra,
    }
}

/// The training groups and their index by id; `explicit` when groups.csv exists (else
/// participants' group ids create groups).
struct GroupsBuilt {
    groups: Vec<Group>,
    index: HashMap<String, GroupId>,
    explicit: bool,
}

/// groups.csv (groups named only in participants.group_id are added by
/// [`build_participants`]).
fn build_groups(
    tables: &HashMap<String, RawTable>,
    flags: &mut HashMap<String, RowFlags>,
    site_index: &HashMap<String, SiteId>,
    exclusions: &mut Vec<Exclusion>,
) -> GroupsBuilt {
    let mut groups: Vec<Group> = Vec::new();
    let mut group_index: HashMap<String, GroupId> = HashMap::new();
    let explicit_groups = tables.contains_key("groups");
    if let Some(t) = tables.get("groups") {
        let fl = take_flags(flags, "groups", t.n_rows());
        let c_id = t.column_index("group_id");
        let c_site = t.column_index("site_id");
        let c_fid = t.column_index("fidelity");
        for i in 0..t.n_rows() {
            let id = cell(t, c_id, i);
            match (fl.reason(i), id) {
                (None, Some(id)) => {
                    group_index.insert(id.to_string(), GroupId(groups.len() as u32));
                    groups.push(Group {
                        id: id.to_string(),
                        site: cell(t, c_site, i).and_then(|s| site_index.get(s).copied()),
                        fidelity: cell(t, c_fid, i).and_then(parse_num),
                        row: Some(file_row(i)),
                    });
                }
                (reason, _) => exclusions.push(Exclusion {
                    table: "groups".into(),
                    row: file_row(i),
                    reason: reason.unwrap_or("no group_id").to_string(),
                }),
            }
        }
    }

    GroupsBuilt {
        groups,
        index: group_index,
        explicit: explicit_groups,
    }
}

/// The participants, their index by id and the first file row of each excluded one.
struct ParticipantsBuilt {
    participants: Vec<Participant>,
    index: HashMap<String, ParticipantId>,
    excluded_rows: HashMap<String, usize>,
    extra: Vec<ExtraColumn>,
}

impl ParticipantsBuilt {
    /// Why a row naming participant `pid` cannot be kept.
    fn excluded_reason(&self, pid: &str) -> String {
        match self.excluded_rows.get(pid) {
            Some(r) => format!("participant {pid} is excluded (participants row {r})"),
            None => format!("participant {pid} is not in participants"),
        }
    }
}

/// participants.csv: the design's group rules, sites, arms, randomization dates.
#[allow(clippy::too_many_arguments)] // the tables built before this one
fn build_participants(
    cx: &mut Ctx,
    schema: &Schema,
    study: &Study,
    tables: &HashMap<String, RawTable>,
    flags: &mut HashMap<String, RowFlags>,
    built_sites: &SitesBuilt,
    built_groups: &mut GroupsBuilt,
    exclusions: &mut Vec<Exclusion>,
) -> ParticipantsBuilt {
    let mut built = ParticipantsBuilt {
        participants: Vec::new(),
        index: HashMap::new(),
        excluded_rows: HashMap::new(),
        extra: Vec::new(),
    };
    let Some(t) = tables.get("participants") else {
        return built;
    };
    let mut fl = take_flags(flags, "participants", t.n_rows());
    let pt = ParticipantsTable::of(t);
    let mut kept = Vec::new();
    for i in 0..t.n_rows() {
        let arm = pt.cell(pt.arm, i).and_then(|a| study.arm_index(a));
        let group_text = pt.cell(pt.group, i);
        if let Some(arm) = arm {
            check_group_rule(cx, &mut fl, study, i, arm, group_text);
        }
        let row = match pt.row(i, fl.reason(i), arm, &built_sites.index) {
            Ok(row) => row,
            Err(reason) => {
                built.exclude(pt.cell(pt.id, i), i, reason, exclusions);
                continue;
            }
        };
        let group = resolve_group(built_groups, group_text, row.site);
        if let Some(gid) = group {
            check_group_site(cx, &row, gid, built_groups, built_sites);
        }
        built.keep(&pt, &row, group);
        kept.push(i);
    }
    let empty_schema = empty_schema();
    built.extra = extra_columns(
        t,
        schema.table("participants").unwrap_or(&empty_schema),
        &kept,
    );
    built
}

/// participants.csv with the indices of its columns (`None`: no such column).
struct ParticipantsTable<'t> {
    table: &'t RawTable,
    id: Option<usize>,
    site: Option<usize>,
    team: Option<usize>,
    arm: Option<usize>,
    group: Option<usize>,
    randomized_on: Option<usize>,
    age: Option<usize>,
    sex: Option<usize>,
    diagnosis: Option<usize>,
    sessions: Option<usize>,
}

/// A participants row that is kept: its id, site, arm (index into the study's arms),
/// randomization date (`None` without the column) and group text.
struct ParticipantRow<'t> {
    /// Data row (0-based).
    i: usize,
    id: &'t str,
    site: SiteId,
    arm: usize,
    randomized_on: Option<Date>,
    group_text: Option<&'t str>,
}

impl<'t> ParticipantsTable<'t> {
    /// Looks the columns up by name.
    fn of(table: &'t RawTable) -> ParticipantsTable<'t> {
        let col = |n: &str| table.column_index(n);
        ParticipantsTable {
            table,
            id: col("participant_id"),
            site: col("site_id"),
            team: col("team_id"),
            arm: col("arm"),
            group: col("group_id"),
            randomized_on: col("randomized_on"),
            age: col("age"),
            sex: col("sex"),
            diagnosis: col("diagnosis"),
            sessions: col("sessions_attended"),
        }
    }

    /// The cell of data row `i` in column `col`, if any.
    fn cell(&self, col: Option<usize>, i: usize) -> Option<&'t str> {
        cell(self.table, col, i)
    }

    /// Data row `i` as a kept participant, or why it is excluded: the row's first error
    /// (`flagged`), an excluded or unknown site, or a missing id, arm or date.
    fn row(
        &self,
        i: usize,
        flagged: Option<&str>,
        arm: Option<usize>,
        site_index: &HashMap<String, SiteId>,
    ) -> Result<ParticipantRow<'t>, String> {
        let id = self.cell(self.id, i);
        let site = match self.site {
            Some(_) => self
                .cell(self.site, i)
                .and_then(|s| site_index.get(s).copied()),
            None => Some(SiteId(0)),
        };
        // without the column, times come from the waves' nominal months
        let rand = match self.randomized_on {
            Some(_) => self
                .cell(self.randomized_on, i)
                .and_then(Date::parse)
                .map(Some),
            None => Some(None),
        };
        let ok = (flagged, id, site, arm, rand);
        let (None, Some(id), Some(site), Some(arm), Some(randomized_on)) = ok else {
            return Err(match ok.0 {
                Some(r) => r.to_string(),
                None if site.is_none() => {
                    format!("site {} is excluded", self.cell(self.site, i).unwrap_or(""))
                }
                None => "incomplete row".to_string(),
            });
        };
        Ok(ParticipantRow {
            i,
            id,
            site,
            arm,
            randomized_on,
            group_text: self.cell(self.group, i),
        })
    }
}

/// The design's group rules on data row `i` of a participant of arm `arm`: no group in the
/// control arm of an individually randomized trial, a group for everyone in a cluster trial.
fn check_group_rule(
    cx: &mut Ctx,
    fl: &mut RowFlags,
    study: &Study,
    i: usize,
    arm: usize,
    group_text: Option<&str>,
) {
    match (study.design, group_text) {
        (Design::Individual, Some(g)) if arm != study.intervention => {
            cx.row_error(
                fl,
                ProblemKind::GroupOnControl,
                "participants",
                i,
                Some("group_id"),
                Some(g),
                format!(
                    "no group for a participant of arm {} in an individually randomized trial",
                    study.arms.get(arm).map(String::as_str).unwrap_or("")
                ),
            );
        }
        (Design::Cluster, None) => {
            cx.row_error(
                fl,
                ProblemKind::MissingGroup,
                "participants",
                i,
                Some("group_id"),
                None,
                "a group_id for every participant of a cluster-randomized trial",
            );
        }
        _ => {}
    }
}

/// The group a participant names: a known group, else (without groups.csv) a new group at the
/// participant's site; `None` when the group row itself was excluded.
fn resolve_group(
    built_groups: &mut GroupsBuilt,
    group_text: Option<&str>,
    site: SiteId,
) -> Option<GroupId> {
    let g = group_text?;
    match built_groups.index.get(g) {
        Some(&gid) => Some(gid),
        None if !built_groups.explicit => {
            let gid = GroupId(built_groups.groups.len() as u32);
            built_groups.groups.push(Group {
                id: g.to_string(),
                site: Some(site),
                fidelity: None,
                row: None,
            });
            built_groups.index.insert(g.to_string(), gid);
            Some(gid)
        }
        // the group row itself was excluded (its error is reported)
        None => None,
    }
}

/// Warns when the participant's group belongs to another site than the participant.
fn check_group_site(
    cx: &mut Ctx,
    row: &ParticipantRow<'_>,
    gid: GroupId,
    built_groups: &GroupsBuilt,
    built_sites: &SitesBuilt,
) {
    let Some(gsite) = built_groups.groups.get(gid.index()).and_then(|g| g.site) else {
        return;
    };
    if gsite != row.site {
        cx.warn(
            ProblemKind::GroupSiteMismatch,
            "participants",
            Some(file_row(row.i)),
            Some("group_id"),
            row.group_text,
            format!(
                "a group of the participant's site {}",
                built_sites
                    .sites
                    .get(row.site.index())
                    .map(|s| s.id.as_str())
                    .unwrap_or("")
            ),
        );
    }
}

impl ParticipantsBuilt {
    /// Logs data row `i` as excluded (and remembers the first excluded row of its id).
    fn exclude(
        &mut self,
        id: Option<&str>,
        i: usize,
        reason: String,
        exclusions: &mut Vec<Exclusion>,
    ) {
        if let Some(id) = id {
            self.excluded_rows
                .entry(id.to_string())
                .or_insert(file_row(i));
        }
        exclusions.push(Exclusion {
            table: "participants".into(),
            row: file_row(i),
            reason,
        });
    }

    /// Adds a kept participant with the rest of its row.
    fn keep(
        &mut self,
        pt: &ParticipantsTable<'_>,
        row: &ParticipantRow<'_>,
        group: Option<GroupId>,
    ) {
        let i = row.i;
        self.index.insert(
            row.id.to_string(),
            ParticipantId(self.participants.len() as u32),
        );
        self.participants.push(Participant {
            id: row.id.to_string(),
            site: row.site,
            team: pt.cell(pt.team, i).map(str::to_string),
            arm: Arm(row.arm as u16),
            group,
            randomized_on: row.randomized_on,
            age: pt.cell(pt.age, i).and_then(parse_int),
            sex: pt.cell(pt.sex, i).map(str::to_string),
            diagnosis: pt.cell(pt.diagnosis, i).map(str::to_string),
            sessions_attended: pt.cell(pt.sessions, i).and_then(parse_int),
            row: file_row(i),
        });
    }
}

/// assessments.csv: the item matrices (instruments in parallel), pre-scored totals and
/// subscales, and the rows of known participants at study waves.
fn build_assessments(
    cx: &mut Ctx,
    study: &Study,
    instruments: &[Instrument],
    tables: &HashMap<String, RawTable>,
    flags: &mut HashMap<String, RowFlags>,
    built: &ParticipantsBuilt,
    exclusions: &mut Vec<Exclusion>,
) -> (Vec<Assessment>, Vec<ItemMatrix>, Vec<PreScored>) {
    let participant_index = &built.index;
    let excluded_reason = |pid: &str| built.excluded_reason(pid);
    let mut assessments: Vec<Assessment> = Vec::new();
    let mut items: Vec<ItemMatrix> = Vec::new();
    let mut prescored: Vec<PreScored> = vec![PreScored::default(); instruments.len()];
    if let Some(t) = tables.get("assessments") {
        let n = t.n_rows();
        let mut fl = take_flags(flags, "assessments", n);
        // instruments in parallel; their problems are reported in instrument order
        let parsed: Vec<(ItemMatrix, Vec<ItemProblem>)> = {
            use rayon::prelude::*;
            instruments
                .par_iter()
                .map(|inst| parse_items(t, inst))
                .collect()
        };
        let mut raw_items: Vec<ItemMatrix> = Vec::with_capacity(instruments.len());
        for (inst, (matrix, problems)) in instruments.iter().zip(parsed) {
            let expected = item_expectation(inst);
            for p in problems {
                cx.row_error(
                    &mut fl,
                    p.kind,
                    "assessments",
                    p.row,
                    Some(&inst.item_column(p.item + 1)),
                    Some(t.cell(p.row, p.col).unwrap_or("")),
                    expected.clone(),
                );
            }
            raw_items.push(matrix);
        }
        let mut raw_prescored: Vec<PreScored> = Vec::with_capacity(instruments.len());
        for inst in instruments {
            let (lo, hi) = inst.total_range();
            let total = prescored_column(
                cx,
                &mut fl,
                t,
                &inst.total_column(),
                (lo, hi),
                &format!(
                    "the total of {} ({} of items {}-{})",
                    inst.name,
                    rule_text(inst.total),
                    inst.min,
                    inst.max
                ),
            );
            let subscales = inst
                .subscales
                .iter()
                .map(|s| {
                    prescored_column(
                        cx,
                        &mut fl,
                        t,
                        &inst.subscale_column(s),
                        inst.subscale_range(s),
                        &format!(
                            "subscale {} of {} ({} of {} items {}-{})",
                            s.name,
                            inst.name,
                            rule_text(s.rule),
                            s.items.len(),
                            inst.min,
                            inst.max
                        ),
                    )
                })
                .collect();
            raw_prescored.push(PreScored { total, subscales });
        }
        let c_pid = t.column_index("participant_id");
        let c_wave = t.column_index("wave");
        let c_date = t.column_index("assessed_on");
        let mut kept = Vec::with_capacity(n);
        for i in 0..n {
            let pid_text = cell(t, c_pid, i);
            let pid = pid_text.and_then(|p| participant_index.get(p).copied());
            let wave = cell(t, c_wave, i).and_then(|w| study.wave_index(w));
            let ok = (fl.reason(i), pid, wave);
            let (None, Some(pid), Some(wave)) = ok else {
                let reason = match ok.0 {
                    Some(r) => r.to_string(),
                    None => excluded_reason(pid_text.unwrap_or("")),
                };
                exclusions.push(Exclusion {
                    table: "assessments".into(),
                    row: file_row(i),
                    reason,
                });
                continue;
            };
            assessments.push(Assessment {
                participant: pid,
                wave: Wave(wave as u16),
                assessed_on: cell(t, c_date, i).and_then(Date::parse),
                row: file_row(i),
            });
            kept.push(i);
        }
        if kept.len() == n {
            items = raw_items;
            prescored = raw_prescored;
        } else {
            items = raw_items.iter().map(|m| m.select_rows(&kept)).collect();
            prescored = raw_prescored.iter().map(|p| p.select_rows(&kept)).collect();
        }
    }

    (assessments, items, prescored)
}

/// admissions.csv: discharge before admission and overlapping stays are errors.
fn build_admissions(
    cx: &mut Ctx,
    tables: &HashMap<String, RawTable>,
    flags: &mut HashMap<String, RowFlags>,
    built: &ParticipantsBuilt,
    exclusions: &mut Vec<Exclusion>,
) -> Vec<Admission> {
    let participant_index = &built.index;
    let excluded_reason = |pid: &str| built.excluded_reason(pid);
    let mut admissions: Vec<Admission> = Vec::new();
    if let Some(t) = tables.get("admissions") {
        let mut fl = take_flags(flags, "admissions", t.n_rows());
        let c_pid = t.column_index("participant_id");
        let c_in = t.column_index("admitted_on");
        let c_out = t.column_index("discharged_on");
        let c_inv = t.column_index("involuntary");
        for i in 0..t.n_rows() {
            if let (Some(a), Some(d)) = (
                cell(t, c_in, i).and_then(Date::parse),
                cell(t, c_out, i).and_then(Date::parse),
            ) {
                if d < a {
                    cx.row_error(
                        &mut fl,
                        ProblemKind::DischargeBeforeAdmission,
                        "admissions",
                        i,
                        Some("discharged_on"),
                        cell(t, c_out, i),
                        format!("a date on or after admitted_on ({a})"),
                    );
                }
            }
        }
        // overlapping stays of one participant (rows without other errors)
        type Stays = Vec<(Date, Option<Date>, usize)>;
        let mut by_pid: HashMap<&str, Stays> = HashMap::new();
        for i in 0..t.n_rows() {
            if fl.is_bad(i) {
                continue;
            }
            if let (Some(p), Some(a)) = (cell(t, c_pid, i), cell(t, c_in, i).and_then(Date::parse))
            {
                let d = cell(t, c_out, i).and_then(Date::parse);
                by_pid.entry(p).or_default().push((a, d, i));
            }
        }
        let mut overlaps: Vec<(usize, usize, Option<Date>)> = Vec::new();
        for stays in by_pid.values_mut() {
            stays.sort_by_key(|&(a, _, i)| (a, i));
            let mut prev: Option<(Option<Date>, usize)> = None;
            for &(a, d, i) in stays.iter() {
                if let Some((pd, pi)) = prev {
                    if pd.is_none_or(|pd| a < pd) {
                        overlaps.push((i, pi, pd));
                    }
                }
                // keep the stay that ends last as the one to compare with
                let ends_later = match (prev, d) {
                    (None, _) => true,
                    (Some((None, _)), _) => false,
                    (Some((Some(_), _)), None) => true,
                    (Some((Some(pd), _)), Some(d)) => d > pd,
                };
                if ends_later {
                    prev = Some((d, i));
                }
            }
        }
        overlaps.sort_unstable();
        for (i, pi, pd) in overlaps {
            let expected = match pd {
                Some(pd) => format!(
                    "an admission on or after {pd}, the discharge of the stay at row {}",
                    file_row(pi)
                ),
                None => format!(
                    "no admission during the open stay at row {} (no discharge date)",
                    file_row(pi)
                ),
            };
            cx.row_error(
                &mut fl,
                ProblemKind::OverlappingAdmissions,
                "admissions",
                i,
                Some("admitted_on"),
                cell(t, c_in, i),
                expected,
            );
        }
        for i in 0..t.n_rows() {
            let pid_text = cell(t, c_pid, i);
            let pid = pid_text.and_then(|p| participant_index.get(p).copied());
            let admitted = cell(t, c_in, i).and_then(Date::parse);
            let ok = (fl.reason(i), pid, admitted);
            let (None, Some(participant), Some(admitted_on)) = ok else {
                let reason = match ok.0 {
                    Some(r) => r.to_string(),
                    None => excluded_reason(pid_text.unwrap_or("")),
                };
                exclusions.push(Exclusion {
                    table: "admissions".into(),
                    row: file_row(i),
                    reason,
                });
                continue;
            };
            admissions.push(Admission {
                participant,
                admitted_on,
                discharged_on: cell(t, c_out, i).and_then(Date::parse),
                involuntary: cell(t, c_inv, i) == Some("1"),
                row: file_row(i),
            });
        }
    }

    admissions
}

/// The id of the one site of an export without sites.csv and participants.site_id.
pub const ONE_SITE: &str = "all";

/// Notes (warnings of kind [`ProblemKind::NotCollected`]) for optional tables and columns the
/// export does not have, saying what is skipped (spec/trial-export.md: absent randomized_on =
/// times from the waves' nominal months; absent admissions.csv = not collected).
fn not_collected(cx: &mut Ctx, trial: &Trial, tables: &HashMap<String, RawTable>) {
    let has = |table: &str, col: &str| {
        tables
            .get(table)
            .is_some_and(|t| t.column_index(col).is_some())
    };
    let mut note = |table: &str, column: Option<&str>, what: &str| {
        cx.warn(
            ProblemKind::NotCollected,
            table,
            None,
            column,
            None,
            what.to_string(),
        );
    };
    if !has("participants", "randomized_on") {
        note(
            "participants",
            Some("randomized_on"),
            "randomization dates: times come from the waves' nominal months; the timing checks of assessed_on are skipped",
        );
    }
    if !trial.admissions_collected {
        note(
            "admissions",
            None,
            "an admissions table: admissions not collected, the admission analyses are skipped",
        );
    } else if !trial.has_randomization_dates() && !trial.admissions.is_empty() {
        note(
            "admissions",
            None,
            "randomization dates for every participant: admissions cannot be placed before or after randomization, the admission analyses are skipped",
        );
    }
    if !has("participants", "sessions_attended") {
        note(
            "participants",
            Some("sessions_attended"),
            "sessions attended: no per-protocol (completer) set",
        );
    }
    if !has("participants", "group_id") {
        note(
            "participants",
            Some("group_id"),
            "IMR training groups: the group sensitivity model is skipped",
        );
    }
    if trial.sites.len() < 2 {
        note(
            "sites",
            None,
            "more than one site: the site sensitivity model and the site comparison are skipped",
        );
    }
}

/// An item cell that is not a number or out of range.
struct ItemProblem {
    kind: ProblemKind,
    /// 0-based data row, item (0-based) and column index in the table.
    row: usize,
    item: usize,
    col: usize,
}

/// What an item cell of `inst` must hold, for messages.
fn item_expectation(inst: &Instrument) -> String {
    let kind_text = match inst.value_type {
        ValueType::Integer => "an integer",
        ValueType::Number => "a number",
    };
    let nk = if inst.not_known.is_empty() {
        String::new()
    } else {
        format!(
            " or a not-known code ({})",
            inst.not_known
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!("{kind_text} {}-{}{nk}", inst.min, inst.max)
}

/// How a score is formed, for messages.
fn rule_text(rule: TotalRule) -> &'static str {
    match rule {
        TotalRule::Mean => "mean",
        TotalRule::Sum => "sum",
        TotalRule::ProratedSum => "prorated sum",
    }
}

/// Reads a pre-scored column (`<instrument>_total` or `<instrument>_<subscale>`) of
/// assessments.csv, if present: numbers within `range` (the score range the instrument's
/// item range and rule allow); a cell that is not a number or outside the range is an error
/// located by row, column and value (its row is then excluded, as for a bad item).
fn prescored_column(
    cx: &mut Ctx,
    fl: &mut RowFlags,
    t: &RawTable,
    column: &str,
    (lo, hi): (f64, f64),
    what: &str,
) -> Option<Vec<f64>> {
    let ci = t.column_index(column)?;
    let expected = format!("a number {lo}-{hi}: {what}");
    let mut out = Vec::with_capacity(t.n_rows());
    for (i, v) in t.column_cells(ci).enumerate() {
        let Some(v) = v else {
            out.push(f64::NAN);
            continue;
        };
        match parse_num(v) {
            Some(x) if x >= lo && x <= hi => out.push(x),
            x => {
                let kind = match x {
                    None => ProblemKind::NotANumber,
                    Some(_) => ProblemKind::OutOfRange,
                };
                cx.row_error(
                    fl,
                    kind,
                    "assessments",
                    i,
                    Some(column),
                    Some(v),
                    expected.clone(),
                );
                out.push(f64::NAN);
            }
        }
    }
    Some(out)
}

/// Parses and range-checks the item columns of one instrument for every assessment row:
/// the item matrix ("not known" codes and bad cells missing) and the bad cells, in column
/// then row order (as the report lists them).
fn parse_items(t: &RawTable, inst: &Instrument) -> (ItemMatrix, Vec<ItemProblem>) {
    let n = t.n_rows();
    let mut m = ItemMatrix::new(n, inst.items);
    let mut problems = Vec::new();
    // one cursor per item column, advanced together: the matrix is filled row by row
    let mut columns: Vec<(usize, usize, _)> = (0..inst.items)
        .filter_map(|item| {
            let ci = t.column_index(&inst.item_column(item + 1))?;
            Some((item, ci, t.column_cells(ci)))
        })
        .collect();
    for i in 0..n {
        for (item, ci, cells) in columns.iter_mut() {
            let Some(v) = cells.next().flatten() else {
                continue;
            };
            let x = match inst.value_type {
                ValueType::Integer => parse_int(v).map(|x| x as f64),
                ValueType::Number => parse_num(v),
            };
            let kind = match x {
                None => ProblemKind::NotANumber,
                Some(x) if inst.is_not_known(x) => continue, // counts as missing
                Some(x) if x < inst.min || x > inst.max => ProblemKind::OutOfRange,
                Some(x) => {
                    m.set(i, *item, x);
                    continue;
                }
            };
            problems.push(ItemProblem {
                kind,
                row: i,
                item: *item,
                col: *ci,
            });
        }
    }
    // reported column by column, then by row
    problems.sort_by_key(|p| (p.item, p.row));
    (m, problems)
}

/// Warnings: assessments far from their nominal month, item missingness above the
/// instrument threshold, participants without any follow-up.
fn warnings(cx: &mut Ctx, trial: &Trial, options: &ValidateOptions) {
    let mut followed_up = vec![false; trial.participants.len()];
    for (a_idx, a) in trial.assessments.iter().enumerate() {
        let answered: Vec<usize> = trial
            .items
            .iter()
            .map(|m| m.row(a_idx).iter().filter(|v| !v.is_nan()).count())
            .collect();
        if !trial.assessment_has_data(a_idx) {
            continue; // a missed wave
        }
        if a.wave.index() > 0 {
            if let Some(f) = followed_up.get_mut(a.participant.index()) {
                *f = true;
            }
        }
        for (j, (inst, &k)) in trial.instruments.iter().zip(&answered).enumerate() {
            // no item but a pre-scored value: the instrument came scored
            let came_scored = k == 0 && trial.prescored.get(j).is_some_and(|p| p.any(a_idx));
            if !came_scored && !inst.min_answered_share.met(k, inst.items) {
                cx.warn(
                    ProblemKind::ItemMissingness,
                    "assessments",
                    Some(a.row),
                    Some(&inst.name),
                    Some(&format!("{k} of {} items answered", inst.items)),
                    format!(
                        "at least {} of {} items for a {} score",
                        inst.min_answered(),
                        inst.items,
                        inst.name
                    ),
                );
            }
        }
        if let (Some(on), Some(p)) = (a.assessed_on, trial.participant(a.participant)) {
            let Some(randomized_on) = p.randomized_on else {
                continue;
            };
            let months = f64::from(on.days_since(randomized_on)) / DAYS_PER_MONTH;
            let nominal = trial.wave_months(a.wave);
            if (months - nominal).abs() > options.nominal_tolerance_months {
                cx.warn(
                    ProblemKind::FarFromNominal,
                    "assessments",
                    Some(a.row),
                    Some("assessed_on"),
                    Some(&on.to_string()),
                    format!(
                        "a date within {} months of month {} of wave {} (randomized on {}; this is month {:.1})",
                        options.nominal_tolerance_months,
                        nominal,
                        trial.wave_label(a.wave),
                        randomized_on,
                        months
                    ),
                );
            }
        }
    }
    if trial.study.waves.len() > 1 {
        for (p, &f) in trial.participants.iter().zip(&followed_up) {
            if !f {
                cx.warn(
                    ProblemKind::NoFollowUp,
                    "participants",
                    Some(p.row),
                    Some("participant_id"),
                    Some(&p.id),
                    "at least one assessment with answered items or pre-scored scores after baseline",
                );
            }
        }
    }
}

fn summarize(trial: &Trial) -> Summary {
    let n_arms = trial.study.arms.len();
    let n_sites = trial.sites.len();
    let mut by = vec![0usize; n_arms * n_sites.max(1)];
    let mut by_arm = vec![0usize; n_arms];
    for p in &trial.participants {
        if let Some(c) = by.get_mut(p.arm.index() * n_sites + p.site.index()) {
            *c += 1;
        }
        if let Some(c) = by_arm.get_mut(p.arm.index()) {
            *c += 1;
        }
    }
    let mut participants_by_arm_site = Vec::new();
    for (a, arm) in trial.study.arms.iter().enumerate() {
        for (s, site) in trial.sites.iter().enumerate() {
            let n = by.get(a * n_sites + s).copied().unwrap_or(0);
            participants_by_arm_site.push((arm.clone(), site.id.clone(), n));
        }
    }
    let n_waves = trial.study.waves.len();
    let mut rows = vec![0usize; n_waves];
    let mut answered = vec![0usize; n_waves];
    for (i, a) in trial.assessments.iter().enumerate() {
        if let Some(r) = rows.get_mut(a.wave.index()) {
            *r += 1;
        }
        if trial.assessment_has_data(i) {
            if let Some(r) = answered.get_mut(a.wave.index()) {
                *r += 1;
            }
        }
    }
    let (mut before, mut after) = (0, 0);
    for adm in &trial.admissions {
        if let Some(r) = trial
            .participant(adm.participant)
            .and_then(|p| p.randomized_on)
        {
            if adm.admitted_on < r {
                before += 1;
            } else {
                after += 1;
            }
        }
    }
    let prescored = trial
        .instruments
        .iter()
        .zip(&trial.prescored)
        .filter(|(_, p)| !p.is_empty())
        .map(|(inst, p)| {
            let n = trial.assessments.len();
            let totals = (0..n).filter(|&a| p.total(a).is_some()).count();
            let subs = (0..n)
                .map(|a| {
                    (0..p.subscales.len())
                        .filter(|&s| p.subscale(s, a).is_some())
                        .count()
                })
                .sum();
            (inst.name.clone(), totals, subs)
        })
        .collect();
    Summary {
        prescored,
        participants_by_arm_site,
        participants_by_arm: trial.study.arms.iter().cloned().zip(by_arm).collect(),
        assessments_by_wave: trial
            .study
            .waves
            .iter()
            .enumerate()
            .map(|(w, wd)| {
                (
                    wd.label.clone(),
                    rows.get(w).copied().unwrap_or(0),
                    answered.get(w).copied().unwrap_or(0),
                )
            })
            .collect(),
        admissions_before: before,
        admissions_after: after,
        sites: trial.sites.len(),
        groups: trial.groups.len(),
        participants: trial.participants.len(),
    }
}
