//! `herstel import SOURCE --guess`: a draft map from the column names, variable labels and
//! value labels of the sources. Every guess is commented for review; columns it could not
//! place are listed under `unplaced`.
//!
//! Items are recognised as `<stem><n>` plus an optional `_<wave>` suffix (`imrs1_T0`,
//! `IMRS_1_t2`, `honos_01`), where the stem names an instrument of the data schema (or a
//! common short form: `imrs` client, `imrsk` clinician) and the number of distinct item
//! numbers equals the instrument's item count. Waves are the suffixes shared by those
//! columns, or the value labels of a wave column.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::bind::BoundSource;
use super::source::{num_text, Cell, Code, ColumnData, SourceTable};
use crate::schema::Schema;

/// Stems by which an instrument's items are commonly named.
fn stems(instrument: &str) -> Vec<String> {
    let mut v = vec![instrument.to_string(), instrument.replace('_', "")];
    match instrument {
        "imrs_client" => v.extend(["imrs", "imrsc", "imr_client"].map(String::from)),
        "imrs_clinician" => v.extend(["imrsk", "imrs_k", "imrsh", "imrs_clin"].map(String::from)),
        _ => {}
    }
    v
}

/// `imrs1_T0` -> ("imrs", 1, Some("T0"), zero-padded?).
fn split_item(name: &str) -> Option<(String, usize, Option<String>, bool)> {
    let (head, wave) = match name.rsplit_once('_') {
        Some((h, w)) if h.chars().last().is_some_and(|c| c.is_ascii_digit()) && !w.is_empty() => {
            (h, Some(w.to_string()))
        }
        _ => (name, None),
    };
    let digits_start = head.rfind(|c: char| !c.is_ascii_digit())? + 1;
    let digits = head.get(digits_start..)?;
    if digits.is_empty() || digits.len() > 3 {
        return None;
    }
    let n: usize = digits.parse().ok().filter(|&n| n >= 1)?;
    let stem = head
        .get(..digits_start)?
        .trim_end_matches('_')
        .to_lowercase();
    Some((stem, n, wave, digits.len() > 1 && digits.starts_with('0')))
}

/// A scored total's column name: an instrument stem, optionally a word for a total
/// (`total`, `tot`, `sum`, `score`, Dutch `totaal`, `som`), then a wave code after the last
/// `_` (`bdi_pre`, `IMRS_tot_T1`, `honos_total_t2`), or a total word without a wave
/// (`honos_total`, long layout). Returns (lower-case stem, the name's part before the wave
/// code, wave code as written, whether a total word was there).
fn split_total(name: &str) -> Option<(String, String, Option<String>, bool)> {
    const WORDS: [&str; 6] = ["totaal", "total", "score", "tot", "sum", "som"];
    let strip_word = |head: &str| -> Option<String> {
        WORDS.iter().find_map(|w| {
            let s = head.strip_suffix(w)?.trim_end_matches('_');
            (!s.is_empty()).then(|| s.to_string())
        })
    };
    let lower = name.to_lowercase();
    if let Some(stem) = strip_word(&lower) {
        return Some((stem, name.to_string(), None, true));
    }
    let (head, wave) = name.rsplit_once('_')?;
    if head.is_empty() || wave.is_empty() {
        return None;
    }
    let head_lower = head.to_lowercase();
    match strip_word(&head_lower) {
        Some(stem) => Some((stem, head.to_string(), Some(wave.to_string()), true)),
        None => Some((head_lower, head.to_string(), Some(wave.to_string()), false)),
    }
}

fn has_any(text: &str, keys: &[&str]) -> bool {
    keys.iter().any(|k| text.contains(k))
}

fn distinct_codes(t: &SourceTable, ci: usize, limit: usize) -> Vec<String> {
    let mut seen = BTreeSet::new();
    for i in 0..t.n_rows {
        match t.cell(i, ci) {
            Cell::Num(x) => {
                seen.insert(num_text(x));
            }
            Cell::Text(s) => {
                seen.insert(s.to_string());
            }
            _ => {}
        }
        if seen.len() > limit {
            break;
        }
    }
    seen.into_iter().collect()
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The format of a text date column (`%d-%m-%Y`) when its first value is not ISO; `None`
/// for ISO text, SPSS/Stata dates and unrecognised text.
fn text_date_format(sources: &[BoundSource], column: &str) -> Option<String> {
    let (t, ci) = sources
        .iter()
        .find_map(|s| s.table.column_index(column).map(|ci| (&s.table, ci)))?;
    if !matches!(
        t.format,
        super::source::SourceFormat::Csv(_) | super::source::SourceFormat::Parquet
    ) {
        return None;
    }
    let first = (0..t.n_rows).find_map(|i| match t.cell(i, ci) {
        Cell::Text(s) => Some(s.to_string()),
        _ => None,
    })?;
    let shape = super::values::date_shape(&first)?;
    (!shape.starts_with("YYYY")).then(|| super::values::shape_format(&shape))
}

/// A guessed participant field.
struct Guess {
    key: &'static str,
    column: String,
    why: String,
    recode: Vec<(String, String)>,
}

/// Items of one instrument found in a source: the map's `items` pattern and its waves.
struct Found {
    instrument: String,
    pattern: String,
    waves: Vec<String>,
    src: usize,
}

/// A scored total (`bdi_pre`, `IMRS_tot_T1`) of an instrument of the schema.
struct FoundTotal {
    instrument: String,
    pattern: String,
    waves: Vec<String>,
    src: usize,
    columns: Vec<usize>,
    word: bool,
}

/// A wave of the draft: its label and the codes that name it in the sources.
type WaveDraft = (String, Vec<String>);

/// Participant fields and the words that name their columns, in the order they are looked for.
const PARTICIPANT_RULES: [(&str, &[&str]); 11] = [
    (
        "id",
        &["respnr", "participant", "deelnemer", "subject", "pid", "id"],
    ),
    (
        "wave_column",
        &["meting", "wave", "visit", "tijdstip", "meetmoment"],
    ),
    (
        "arm",
        &[
            "conditie",
            "arm",
            "condition",
            "treatment",
            "randomisatie",
            "interventie",
        ],
    ),
    (
        "site",
        &["instelling", "site", "centrum", "center", "locatie"],
    ),
    ("team", &["team"]),
    ("group", &["groep", "group"]),
    (
        "randomized_on",
        &["randdatum", "randomis", "randomiz", "rand_dat"],
    ),
    ("age", &["leeftijd", "age"]),
    ("sex", &["geslacht", "sex", "gender"]),
    ("diagnosis", &["diagnose", "diagnosis"]),
    (
        "sessions_attended",
        &["sessies", "sessions", "bijeenkomsten"],
    ),
];

/// A value label's code as the map writes it (`1`, `T0`).
fn code_text(code: &Code) -> String {
    match code {
        Code::Num(x) => num_text(*x),
        Code::Text(s) => s.clone(),
    }
}

/// Appends `w` to `codes` unless it is already there (first-seen order).
fn push_new(codes: &mut Vec<String>, w: &str) {
    if !codes.iter().any(|c| c == w) {
        codes.push(w.to_string());
    }
}

/// Everything the draft map says, found in the sources before any text is written.
struct Draft<'a> {
    sources: &'a [BoundSource],
    schema: &'a Schema,
    /// (source, column) pairs taken by some guess.
    placed: BTreeSet<(usize, usize)>,
    found: Vec<Found>,
    totals: Vec<FoundTotal>,
    /// Wave codes in first-seen order (item suffixes, then totals').
    wave_codes: Vec<String>,
    guesses: Vec<Guess>,
    arms: Vec<String>,
    /// The assessment date column: source and pattern (`datum_{wave}`).
    date_col: Option<(usize, String)>,
    wave_col: Option<String>,
    wave_defs: Vec<WaveDraft>,
    group_fid: Option<String>,
    site_fid: Option<String>,
}

impl<'a> Draft<'a> {
    /// Finds items, totals, participant fields, dates, waves and fidelity columns, in that
    /// order (each step sees only the columns the earlier ones left unplaced).
    fn analyse(sources: &'a [BoundSource], schema: &'a Schema) -> Self {
        let mut d = Draft {
            sources,
            schema,
            placed: BTreeSet::new(),
            found: Vec::new(),
            totals: Vec::new(),
            wave_codes: Vec::new(),
            guesses: Vec::new(),
            arms: Vec::new(),
            date_col: None,
            wave_col: None,
            wave_defs: Vec::new(),
            group_fid: None,
            site_fid: None,
        };
        for si in 0..sources.len() {
            d.find_items(si);
        }
        d.find_totals();
        for (key, keys) in PARTICIPANT_RULES {
            d.guess_participant_field(key, keys);
        }
        d.find_date_column();
        d.guess_waves();
        d.find_fidelity_columns();
        d
    }

    /// Item columns of source `si`: per schema instrument, the first stem with exactly the
    /// instrument's number of distinct item numbers.
    fn find_items(&mut self, si: usize) {
        let s = &self.sources[si];
        type Items = Vec<(usize, usize, Option<String>, bool)>;
        let mut by_stem: BTreeMap<String, Items> = BTreeMap::new();
        for (ci, c) in s.table.columns.iter().enumerate() {
            if let Some((stem, n, wave, pad)) = split_item(&c.name) {
                by_stem.entry(stem).or_default().push((ci, n, wave, pad));
            }
        }
        for inst in &self.schema.instruments {
            let st = stems(&inst.name);
            let Some((stem, cols)) = by_stem.iter().find(|(k, v)| {
                st.contains(k) && v.iter().map(|x| x.1).collect::<BTreeSet<_>>().len() == inst.items
            }) else {
                continue;
            };
            let Some(first) = cols.first() else {
                continue;
            };
            let name = &s.table.columns[first.0].name;
            let digits_at = name
                .to_lowercase()
                .find(&format!("{}", first.1))
                .unwrap_or(stem.len());
            let prefix = name.get(..digits_at).unwrap_or(stem).trim_end_matches('0');
            let num = if first.3 { "{nn}" } else { "{n}" };
            let mut waves: Vec<String> = Vec::new();
            for c in cols {
                if let Some(w) = &c.2 {
                    push_new(&mut waves, w);
                }
            }
            let pattern = if waves.is_empty() {
                format!("{prefix}{num}")
            } else {
                format!("{prefix}{num}_{{wave}}")
            };
            for w in &waves {
                push_new(&mut self.wave_codes, w);
            }
            for c in cols {
                self.placed.insert((si, c.0));
            }
            self.found.push(Found {
                instrument: inst.name.clone(),
                pattern,
                waves,
                src: si,
            });
        }
    }

    /// Scored totals (`bdi_pre`, `IMRS_tot_T1`) of instruments of the schema among the
    /// columns not taken by items; groups them by pattern and keeps the credible ones.
    fn find_totals(&mut self) {
        let mut totals: Vec<FoundTotal> = Vec::new();
        for (si, s) in self.sources.iter().enumerate() {
            for (ci, c) in s.table.columns.iter().enumerate() {
                if self.placed.contains(&(si, ci)) {
                    continue;
                }
                let Some((stem, head, wave, word)) = split_total(&c.name) else {
                    continue;
                };
                let Some(inst) = self
                    .schema
                    .instruments
                    .iter()
                    .find(|i| stems(&i.name).contains(&stem))
                else {
                    continue;
                };
                let pattern = match &wave {
                    Some(_) => format!("{head}_{{wave}}"),
                    None => head.clone(),
                };
                let slot = match totals
                    .iter_mut()
                    .position(|t| t.src == si && t.pattern == pattern)
                {
                    Some(k) => &mut totals[k],
                    None => {
                        totals.push(FoundTotal {
                            instrument: inst.name.clone(),
                            pattern,
                            waves: Vec::new(),
                            src: si,
                            columns: Vec::new(),
                            word,
                        });
                        let k = totals.len() - 1;
                        &mut totals[k]
                    }
                };
                if let Some(w) = wave {
                    if !slot.waves.contains(&w) {
                        slot.waves.push(w);
                    }
                }
                slot.columns.push(ci);
            }
        }
        // without a total word, `<instrument>_<x>` is a total only when x is a wave code of the
        // items or the pattern repeats over at least two waves (not `honos_date`)
        let wave_codes = &self.wave_codes;
        totals.retain(|t| {
            t.word || t.waves.len() >= 2 || t.waves.iter().any(|w| wave_codes.contains(w))
        });
        for t in &totals {
            for &ci in &t.columns {
                self.placed.insert((t.src, ci));
            }
            for w in &t.waves {
                push_new(&mut self.wave_codes, w);
            }
        }
        self.totals = totals;
    }

    /// The first unplaced column whose name (then, except for ids and wave columns, whose
    /// variable label) contains one of `keys`; arm and wave columns must have few values.
    fn participant_column(&self, key: &str, keys: &[&str]) -> Option<(usize, usize)> {
        let few = |t: &SourceTable, ci: usize| distinct_codes(t, ci, 12).len() <= 12;
        for by_label in [false, true] {
            if by_label && matches!(key, "id" | "wave_column") {
                continue;
            }
            let hit = self.sources.iter().enumerate().find_map(|(si, s)| {
                s.table.columns.iter().enumerate().find_map(|(ci, c)| {
                    let text = if by_label {
                        c.label.as_deref().unwrap_or("").to_lowercase()
                    } else {
                        c.name.to_lowercase()
                    };
                    let fits = match key {
                        "arm" | "wave_column" => few(&s.table, ci),
                        _ => true,
                    };
                    (has_any(&text, keys) && fits && !self.placed.contains(&(si, ci)))
                        .then_some((si, ci))
                })
            });
            if hit.is_some() {
                return hit;
            }
        }
        None
    }

    /// Guesses the column of one participant field (names first, then variable labels),
    /// with the arm's and sex's recodes.
    fn guess_participant_field(&mut self, key: &'static str, keys: &[&str]) {
        let Some((si, ci)) = self.participant_column(key, keys) else {
            return;
        };
        self.placed.insert((si, ci));
        let t = &self.sources[si].table;
        let c = &t.columns[ci];
        let mut g = Guess {
            key,
            column: c.name.clone(),
            why: format!(
                "guess: from the name{}",
                c.label
                    .as_deref()
                    .map(|l| format!(" and label \"{l}\""))
                    .unwrap_or_default()
            ),
            recode: Vec::new(),
        };
        match key {
            "arm" => {
                let (labels, arms) = arm_labels(t, ci);
                self.arms = arms;
                g.recode = labels;
                g.why.push_str(
                    "; arms from its value labels, the control arm (TAU/CAU/control) first",
                );
            }
            "sex" => g.recode = sex_recode(&c.value_labels),
            _ => {}
        }
        self.guesses.push(g);
    }

    /// The assessment date column (`datum`, `date...`, `assessed...`), as a `{wave}`
    /// pattern when its suffix is a wave code; marks every column of that pattern placed.
    fn find_date_column(&mut self) {
        let wave_codes = &self.wave_codes;
        let placed = &self.placed;
        let date_col = self.sources.iter().enumerate().find_map(|(si, s)| {
            s.table.columns.iter().enumerate().find_map(|(ci, c)| {
                let n = c.name.to_lowercase();
                let is_date =
                    n.starts_with("datum") || n.starts_with("date") || n.starts_with("assessed");
                (is_date && !placed.contains(&(si, ci))).then(|| {
                    let pattern = match n.rsplit_once('_') {
                        Some((h, w)) if wave_codes.iter().any(|x| x.eq_ignore_ascii_case(w)) => {
                            format!("{}_{{wave}}", c.name.get(..h.len()).unwrap_or(h))
                        }
                        _ => c.name.clone(),
                    };
                    (si, pattern)
                })
            })
        });
        if let Some((si, p)) = &date_col {
            for (ci, c) in self.sources[*si].table.columns.iter().enumerate() {
                let n = c.name.to_lowercase();
                if p.contains("{wave}")
                    && self
                        .wave_codes
                        .iter()
                        .any(|w| n == p.to_lowercase().replace("{wave}", &w.to_lowercase()))
                    || &c.name == p
                {
                    self.placed.insert((*si, ci));
                }
            }
        }
        self.date_col = date_col;
    }

    /// The waves: from the wave column's value labels (or values), else from the wave codes
    /// of the column names, else one wave `T0`.
    fn guess_waves(&mut self) {
        self.wave_col = self
            .guesses
            .iter()
            .find(|g| g.key == "wave_column")
            .map(|g| g.column.clone());
        let mut wave_defs: Vec<WaveDraft> = Vec::new();
        if let Some(wc) = &self.wave_col {
            if let Some((s, ci)) = self
                .sources
                .iter()
                .find_map(|s| s.table.column_index(wc).map(|ci| (s, ci)))
            {
                let c = &s.table.columns[ci];
                if c.value_labels.is_empty() {
                    for v in distinct_codes(&s.table, ci, 20) {
                        wave_defs.push((v.clone(), vec![v]));
                    }
                } else {
                    for (code, l) in &c.value_labels {
                        wave_defs.push((l.clone(), vec![code_text(code)]));
                    }
                }
            }
        } else {
            for w in &self.wave_codes {
                wave_defs.push((w.clone(), vec![w.clone()]));
            }
        }
        if wave_defs.is_empty() {
            wave_defs.push(("T0".into(), vec!["T0".into()]));
        }
        self.wave_defs = wave_defs;
    }

    /// Fidelity ratings of groups and sites: the first unplaced `fid` column naming a group,
    /// and the first naming a site.
    fn find_fidelity_columns(&mut self) {
        for (si, s) in self.sources.iter().enumerate() {
            for (ci, c) in s.table.columns.iter().enumerate() {
                let n = c.name.to_lowercase();
                if self.placed.contains(&(si, ci)) || !n.contains("fid") {
                    continue;
                }
                if has_any(&n, &["groep", "group"]) && self.group_fid.is_none() {
                    self.group_fid = Some(c.name.clone());
                    self.placed.insert((si, ci));
                } else if has_any(&n, &["instelling", "site", "centrum", "center"])
                    && self.site_fid.is_none()
                {
                    self.site_fid = Some(c.name.clone());
                    self.placed.insert((si, ci));
                }
            }
        }
    }

    /// `source: column` for every column no guess took, in source and column order.
    fn unplaced(&self) -> Vec<String> {
        let mut unplaced = Vec::new();
        for (si, s) in self.sources.iter().enumerate() {
            for (ci, c) in s.table.columns.iter().enumerate() {
                if !self.placed.contains(&(si, ci)) {
                    unplaced.push(format!("{}: {}", s.name, c.name));
                }
            }
        }
        unplaced
    }
}

/// The arm column's recode (code -> label, from value labels or else the values) and the
/// arms with the control arm (TAU/CAU/control/...) first.
fn arm_labels(t: &SourceTable, ci: usize) -> (Vec<(String, String)>, Vec<String>) {
    let c = &t.columns[ci];
    let labels: Vec<(String, String)> = if c.value_labels.is_empty() {
        distinct_codes(t, ci, 6)
            .into_iter()
            .map(|v| (v.clone(), v))
            .collect()
    } else {
        c.value_labels
            .iter()
            .map(|(code, l)| (code_text(code), l.clone()))
            .collect()
    };
    let control = [
        "tau",
        "cau",
        "control",
        "usual",
        "gebruikelijk",
        "wachtlijst",
    ];
    let mut sorted = labels.clone();
    sorted.sort_by_key(|(_, l)| !has_any(&l.to_lowercase(), &control));
    let arms = sorted.iter().map(|(_, l)| l.clone()).collect();
    (labels, arms)
}

/// The sex column's recode from its value labels (`vrouw` -> `female`, `man` -> `male`,
/// anything else -> `other`).
fn sex_recode(value_labels: &[(Code, String)]) -> Vec<(String, String)> {
    value_labels
        .iter()
        .map(|(code, l)| {
            let to = match l.to_lowercase().as_str() {
                "vrouw" | "v" | "female" | "f" | "woman" => "female",
                "man" | "m" | "male" => "male",
                _ => "other",
            };
            (code_text(code), to.to_string())
        })
        .collect()
}

/// Writes a draft map for the sources.
pub fn guess_map(sources: &[BoundSource], schema: &Schema) -> (String, Vec<String>) {
    let mut d = Draft::analyse(sources, schema);
    let unplaced = d.unplaced();
    let mut t = String::new();
    write_preamble(&mut t, &unplaced);
    d.write_study(&mut t);
    d.write_waves(&mut t);
    d.write_sources(&mut t);
    d.write_participants(&mut t);
    d.write_groups_sites_assessments(&mut t);
    for f in &d.found {
        d.write_item_instrument(&mut t, f);
    }
    d.write_total_only_instruments(&mut t);
    (t, unplaced)
}

/// The draft's opening comment and the `unplaced` list.
fn write_preamble(t: &mut String, unplaced: &[String]) {
    let _ = writeln!(
        t,
        "# Draft import map written by `herstel import --guess`: review every line marked"
    );
    let _ = writeln!(
        t,
        "# `guess:` before importing. Keys are explained in the README (herstel import)."
    );
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "# Columns not placed (carry any of them with participants.covariates):"
    );
    let _ = writeln!(
        t,
        "unplaced = [{}]",
        unplaced
            .iter()
            .map(|u| quote(u))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(t);
}

impl Draft<'_> {
    /// `[study]`: name, arms (placeholders when no arm column was recognised), intervention.
    fn write_study(&mut self, t: &mut String) {
        let _ = writeln!(t, "[study]");
        let _ = writeln!(t, "name = \"Imported trial\"");
        if self.arms.len() < 2 {
            self.arms = vec!["control".into(), "IMR".into()];
            let _ = writeln!(
                t,
                "# guess: no arm column recognised; name the arms and map participants.arm"
            );
        } else {
            let _ = writeln!(
                t,
                "# guess: arms from the value labels of the arm column; the first is the reference arm"
            );
        }
        let arms = &self.arms;
        let _ = writeln!(
            t,
            "arms = [{}]",
            arms.iter().map(|a| quote(a)).collect::<Vec<_>>().join(", ")
        );
        let _ = writeln!(
            t,
            "intervention = {}",
            quote(arms.last().map(String::as_str).unwrap_or("IMR"))
        );
    }

    /// One `[[waves]]` table per wave, months as placeholders 0, 1, 2, ...
    fn write_waves(&self, t: &mut String) {
        for (k, (label, codes)) in self.wave_defs.iter().enumerate() {
            let _ = writeln!(t);
            let _ = writeln!(t, "[[waves]]");
            let _ = writeln!(t, "label = {}", quote(label));
            let _ = writeln!(
                t,
                "months = {k}  # guess: set the nominal months since randomization"
            );
            let _ = writeln!(
                t,
                "codes = [{}]",
                codes
                    .iter()
                    .map(|c| quote(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    /// One `[[sources]]` table per source: the wave column if it has it, the detected CSV
    /// dialect.
    fn write_sources(&self, t: &mut String) {
        let wave_col = &self.wave_col;
        for s in self.sources {
            let _ = writeln!(t);
            let _ = writeln!(t, "[[sources]]");
            let _ = writeln!(t, "file = {}", quote(&s.name));
            if let (Some(wc), true) = (
                wave_col,
                s.table
                    .column_index(wave_col.as_deref().unwrap_or(""))
                    .is_some(),
            ) {
                let _ = writeln!(
                    t,
                    "wave_column = {}  # guess: one row per participant and wave",
                    quote(wc)
                );
            }
            if let super::source::SourceFormat::Csv(d) = &s.table.format {
                let _ = writeln!(t, "# detected: {}", d.describe());
                let sep = match d.separator {
                    '\t' => "\\t".to_string(),
                    c => c.to_string(),
                };
                let _ = writeln!(t, "separator = {}", quote(&sep));
                let _ = writeln!(
                    t,
                    "decimal = {}",
                    quote(if d.decimal_comma { "," } else { "." })
                );
                let _ = writeln!(t, "encoding = {}", quote(&d.encoding));
            }
        }
    }

    /// `[participants]`: one line per guessed field (with recode or date format), and
    /// placeholders for a missing id or arm.
    fn write_participants(&self, t: &mut String) {
        let _ = writeln!(t);
        let _ = writeln!(t, "[participants]");
        for g in &self.guesses {
            if g.key == "wave_column" {
                continue;
            }
            let _ = writeln!(t, "# {}", g.why);
            if g.recode.is_empty() {
                if let Some(fmt) = (g.key == "randomized_on")
                    .then(|| text_date_format(self.sources, &g.column))
                    .flatten()
                {
                    let _ = writeln!(
                        t,
                        "{} = {{ column = {}, format = {} }}  # guess: the dates look like that",
                        g.key,
                        quote(&g.column),
                        quote(&fmt)
                    );
                } else {
                    let _ = writeln!(t, "{} = {}", g.key, quote(&g.column));
                }
            } else {
                let rec: Vec<String> = g
                    .recode
                    .iter()
                    .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                    .collect();
                let _ = writeln!(
                    t,
                    "{} = {{ column = {}, recode = {{ {} }} }}",
                    g.key,
                    quote(&g.column),
                    rec.join(", ")
                );
            }
        }
        if !self.guesses.iter().any(|g| g.key == "id") {
            let _ = writeln!(t, "# guess: no id column recognised: name it here");
            let _ = writeln!(t, "id = \"id\"");
        }
        if !self.guesses.iter().any(|g| g.key == "arm") {
            let _ = writeln!(
                t,
                "arm = \"arm\"  # guess: no arm column recognised: name it here"
            );
        }
    }

    /// `[groups]` and `[sites]` fidelity columns and `[assessments]` date, when found.
    fn write_groups_sites_assessments(&self, t: &mut String) {
        if let Some(g) = &self.group_fid {
            let _ = writeln!(t);
            let _ = writeln!(t, "[groups]");
            let _ = writeln!(
                t,
                "fidelity = {}  # guess: the groups' fidelity rating",
                quote(g)
            );
        }
        if let Some(g) = &self.site_fid {
            let _ = writeln!(t);
            let _ = writeln!(t, "[sites]");
            let _ = writeln!(
                t,
                "columns = {{ fidelity = {} }}  # guess: the sites' fidelity rating",
                quote(g)
            );
        }
        if let Some((_, p)) = &self.date_col {
            let _ = writeln!(t);
            let _ = writeln!(t, "[assessments]");
            let _ = writeln!(t, "# guess: assessment date per wave");
            let first = self
                .wave_defs
                .first()
                .and_then(|w| w.1.first())
                .map(|c| p.replace("{wave}", c))
                .unwrap_or_else(|| p.clone());
            match text_date_format(self.sources, &first) {
                Some(fmt) => {
                    let _ = writeln!(
                        t,
                        "assessed_on = {{ column = {}, format = {} }}",
                        quote(p),
                        quote(&fmt)
                    );
                }
                None => {
                    let _ = writeln!(t, "assessed_on = {}", quote(p));
                }
            }
        }
    }

    /// `[[instruments]]` for items found: pattern, the total beside them, and guessed
    /// missing codes and offset.
    fn write_item_instrument(&self, t: &mut String, f: &Found) {
        let _ = writeln!(t);
        let _ = writeln!(t, "[[instruments]]");
        let _ = writeln!(
            t,
            "# guess: {} items in {}{}",
            f.instrument,
            self.sources[f.src].name,
            if f.waves.is_empty() {
                String::new()
            } else {
                format!(" at waves {}", f.waves.join(", "))
            }
        );
        let _ = writeln!(t, "name = {}", quote(&f.instrument));
        let _ = writeln!(t, "items = {}", quote(&f.pattern));
        for tot in self.totals.iter().filter(|x| x.instrument == f.instrument) {
            let _ = writeln!(
                t,
                "total = {}  # guess: the scored total beside the items (checked against them)",
                quote(&tot.pattern)
            );
        }
        if let Some(inst) = self.schema.instrument(&f.instrument) {
            let values = item_values(&self.sources[f.src].table, &f.instrument);
            write_coding_guesses(t, inst, &values);
        }
    }

    /// `[[instruments]]` for totals whose instrument has no item columns.
    fn write_total_only_instruments(&self, t: &mut String) {
        for tot in self
            .totals
            .iter()
            .filter(|x| !self.found.iter().any(|f| f.instrument == x.instrument))
        {
            let _ = writeln!(t);
            let _ = writeln!(t, "[[instruments]]");
            let _ = writeln!(
                t,
                "# guess: the scored total of {} in {}{} (no item columns)",
                tot.instrument,
                self.sources[tot.src].name,
                if tot.waves.is_empty() {
                    String::new()
                } else {
                    format!(" at waves {}", tot.waves.join(", "))
                }
            );
            let _ = writeln!(t, "name = {}", quote(&tot.instrument));
            let _ = writeln!(t, "total = {}", quote(&tot.pattern));
        }
    }
}

/// Every non-missing value of an instrument's item columns in a source (numbers, or text
/// parsed with the source's decimal mark), user-missing codes left out.
fn item_values(src: &SourceTable, instrument: &str) -> Vec<f64> {
    let dc = super::values::decimal_comma(src);
    let mut values: Vec<f64> = Vec::new();
    for c in src
        .columns
        .iter()
        .filter(|c| split_item(&c.name).is_some_and(|x| stems(instrument).contains(&x.0)))
    {
        match &c.data {
            ColumnData::Num(v) => values.extend(
                v.iter()
                    .filter(|x| !x.is_nan() && !c.user_missing.contains_num(**x))
                    .copied(),
            ),
            ColumnData::Text(v) => values.extend(
                v.iter()
                    .flatten()
                    .filter_map(|s| super::dialect::parse_number(s, dc)),
            ),
        }
    }
    values
}

/// `missing = [...]` when the values outside the instrument's range all look like missing
/// codes (else a comment listing them), and `offset = -1` when the values start one above
/// the instrument's minimum.
fn write_coding_guesses(t: &mut String, inst: &crate::schema::Instrument, values: &[f64]) {
    let outside: BTreeSet<i64> = values
        .iter()
        .filter(|&&x| (x < inst.min || x > inst.max) && !inst.is_not_known(x))
        .map(|&x| x as i64)
        .collect();
    let usual = [-99, -9, -1, 7, 8, 9, 77, 88, 99, 777, 888, 999, 9999];
    if !outside.is_empty() && outside.iter().all(|x| usual.contains(x)) {
        let codes: Vec<String> = outside.iter().map(|x| x.to_string()).collect();
        let _ = writeln!(
            t,
            "missing = [{}]  # guess: values outside {}-{} that look like missing codes",
            codes.join(", "),
            num_text(inst.min),
            num_text(inst.max)
        );
    } else if !outside.is_empty() {
        let shown: Vec<String> = outside.iter().take(8).map(|x| x.to_string()).collect();
        let _ = writeln!(
            t,
            "# guess: values outside {}-{} ({}): missing codes (`missing = [...]`) or another coding (`offset`)?",
            num_text(inst.min),
            num_text(inst.max),
            shown.join(", ")
        );
    }
    let lo = values
        .iter()
        .filter(|x| !outside.contains(&(**x as i64)))
        .copied()
        .reduce(f64::min);
    if let Some(lo) = lo {
        if lo > inst.min && lo - inst.min == 1.0 {
            let _ = writeln!(
                t,
                "offset = -1  # guess: the lowest value is {}, the instrument starts at {}",
                num_text(lo),
                num_text(inst.min)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_names_split() {
        assert_eq!(
            split_item("imrs1_T0"),
            Some(("imrs".into(), 1, Some("T0".into()), false))
        );
        assert_eq!(
            split_item("IMRS_12_t2"),
            Some(("imrs".into(), 12, Some("t2".into()), false))
        );
        assert_eq!(
            split_item("honos_01"),
            Some(("honos".into(), 1, None, true))
        );
        assert_eq!(split_item("leeftijd"), None);
        assert_eq!(split_item("bdi_pre"), None);
    }

    #[test]
    fn total_names_split() {
        assert_eq!(
            split_total("bdi_pre"),
            Some(("bdi".into(), "bdi".into(), Some("pre".into()), false))
        );
        assert_eq!(
            split_total("IMRS_tot_T1"),
            Some(("imrs".into(), "IMRS_tot".into(), Some("T1".into()), true))
        );
        assert_eq!(
            split_total("honos_total_t2"),
            Some((
                "honos".into(),
                "honos_total".into(),
                Some("t2".into()),
                true
            ))
        );
        assert_eq!(
            split_total("honos_total"),
            Some(("honos".into(), "honos_total".into(), None, true))
        );
        assert_eq!(split_total("leeftijd"), None);
        assert_eq!(split_item("datum_T0"), None);
    }
}
