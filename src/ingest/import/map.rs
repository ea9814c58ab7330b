//! The import map (TOML): which source columns become which export columns, how values are
//! recoded, which codes are missing. `analyses/import-map.toml` is a full, commented example;
//! the README lists every key. An unknown key is an error with its line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::error::ImportError;

/// A code in the map: TOML strings and numbers are both accepted (`missing = [99, "NA"]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Key {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Key {
    /// The numeric value, if the code is a number (or text holding one).
    pub fn num(&self) -> Option<f64> {
        match self {
            Key::Int(i) => Some(*i as f64),
            Key::Float(f) => Some(*f),
            Key::Text(s) => s.trim().parse().ok(),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Key::Int(i) => i.to_string(),
            Key::Float(f) => super::source::num_text(*f),
            Key::Text(s) => s.clone(),
        }
    }
}

/// Where an export column comes from: a source column name, or a table with the column and
/// how to read it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Field {
    /// Source column name; for wide sources it may hold `{wave}`.
    pub column: String,
    /// Code or value-label text -> export value.
    pub recode: BTreeMap<String, String>,
    /// Codes that are missing in this column (besides those declared in the file).
    pub missing: Vec<Key>,
    /// Date format of text dates, e.g. `%d-%m-%Y`.
    pub format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpec {
    column: String,
    #[serde(default)]
    recode: BTreeMap<String, String>,
    #[serde(default)]
    missing: Vec<Key>,
    format: Option<String>,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a column name or a table { column = \"...\", recode = {...}, missing = [...], format = \"...\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(Field {
                    column: v.to_string(),
                    ..Field::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Field, A::Error> {
                let s = FieldSpec::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(Field {
                    column: s.column,
                    recode: s.recode,
                    missing: s.missing,
                    format: s.format,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyMap {
    pub name: Option<String>,
    /// Export arm labels; the first is the reference arm.
    pub arms: Vec<String>,
    pub intervention: Option<String>,
    /// `individual` (default) or `cluster`.
    pub design: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveMap {
    pub label: String,
    pub months: f64,
    /// How the wave is written in column names (`{wave}`) or in the wave column; default:
    /// the label.
    #[serde(default)]
    pub codes: Vec<Key>,
}

impl WaveMap {
    pub fn code_texts(&self) -> Vec<String> {
        if self.codes.is_empty() {
            vec![self.label.clone()]
        } else {
            self.codes.iter().map(Key::text).collect()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SourceMap {
    /// File name matched against the SOURCE arguments; optional with one source.
    pub file: Option<String>,
    /// The participant id column of this file (default: participants.id).
    pub id: Option<String>,
    /// Long layout: the column holding the wave codes.
    pub wave_column: Option<String>,
    /// The file holds one wave (its label).
    pub wave: Option<String>,
    /// `participants` (default) or `admissions`.
    pub table: Option<String>,
    pub separator: Option<String>,
    pub quote: Option<String>,
    pub decimal: Option<String>,
    pub encoding: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantsMap {
    pub id: Field,
    pub arm: Field,
    pub site: Option<Field>,
    pub team: Option<Field>,
    pub group: Option<Field>,
    pub randomized_on: Option<Field>,
    pub age: Option<Field>,
    pub sex: Option<Field>,
    pub diagnosis: Option<Field>,
    pub sessions_attended: Option<Field>,
    /// Further columns carried into participants.csv under their own (lower-case) names.
    #[serde(default)]
    pub covariates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AssessmentsMap {
    pub assessed_on: Option<Field>,
    /// Codes missing in every item column.
    #[serde(default)]
    pub missing: Vec<Key>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentMap {
    /// An instrument of the data schema (`imrs_client`, `honos`, ...).
    pub name: String,
    /// Item column pattern: `{n}` item number, `{nn}` two digits, `{wave}` wave code.
    pub items: Option<String>,
    /// A column (pattern with `{wave}` in wide sources) holding the already scored total,
    /// written to the export as `<instrument>_total`. With `items` as well, the items are
    /// scored and this total is checked against theirs.
    pub total: Option<Field>,
    /// Subscale name (of the instrument definition) -> the column holding its already scored
    /// value, written as `<instrument>_<subscale>`.
    #[serde(default)]
    pub subscales: BTreeMap<String, Field>,
    /// Added to every item value (items coded 1-5, instrument 0-4: `offset = -1`); not to
    /// totals or subscales.
    #[serde(default)]
    pub offset: f64,
    /// Codes missing in this instrument's items only.
    #[serde(default)]
    pub missing: Vec<Key>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionsMap {
    /// The `[[sources]]` file holding one row per admission.
    pub file: String,
    pub participant_id: Field,
    pub admitted_on: Field,
    /// Empty = still admitted.
    pub discharged_on: Field,
    /// 0/1 (recode other codes, e.g. `{ "ja" = "1", "nee" = "0" }`).
    pub involuntary: Field,
}

/// groups.csv from participant columns (one value per group, taken from its participants).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsMap {
    /// The group's IMR Fidelity Scale mean (constant within a group).
    pub fidelity: Field,
}

/// Extra sites.csv columns from participant columns (constant within a site).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitesMap {
    /// Export column name -> source column.
    #[serde(default)]
    pub columns: BTreeMap<String, Field>,
}

/// A parsed map.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Map {
    pub study: StudyMap,
    pub waves: Vec<WaveMap>,
    #[serde(default)]
    pub sources: Vec<SourceMap>,
    pub participants: ParticipantsMap,
    #[serde(default)]
    pub assessments: AssessmentsMap,
    #[serde(default)]
    pub instruments: Vec<InstrumentMap>,
    pub admissions: Option<AdmissionsMap>,
    pub groups: Option<GroupsMap>,
    pub sites: Option<SitesMap>,
    /// Ignored: where `--guess` lists the columns it could not place.
    #[serde(default)]
    pub unplaced: Vec<String>,
}

/// A map with its text (for locating keys in messages).
#[derive(Debug, Clone)]
pub struct LoadedMap {
    pub map: Map,
    pub file: PathBuf,
    pub text: String,
}

impl LoadedMap {
    /// 1-based line of the first occurrence of `"needle"` (a quoted value) in the map.
    pub fn line_of_value(&self, needle: &str) -> Option<usize> {
        let q = format!("\"{needle}\"");
        let at = self.text.find(&q)?;
        Some(crate::schema::line_of(&self.text, at))
    }

    /// An error about the map at the line where `value` is written.
    pub fn error_at(&self, value: &str, message: String) -> ImportError {
        ImportError::Map {
            file: self.file.clone(),
            line: self.line_of_value(value),
            message,
        }
    }
}

/// Reads and checks a map file.
pub fn load_map(path: &Path) -> Result<LoadedMap, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    parse_map(&text, path)
}

/// Parses map text; `file` names it in errors.
pub fn parse_map(text: &str, file: &Path) -> Result<LoadedMap, ImportError> {
    let map: Map = toml::from_str(text).map_err(|e| ImportError::Map {
        file: file.to_path_buf(),
        line: e.span().map(|s| crate::schema::line_of(text, s.start)),
        message: e.message().trim().to_string(),
    })?;
    let lm = LoadedMap {
        map,
        file: file.to_path_buf(),
        text: text.to_string(),
    };
    check(&lm)?;
    Ok(lm)
}

fn check(lm: &LoadedMap) -> Result<(), ImportError> {
    let m = &lm.map;
    if m.study.arms.len() < 2 {
        return Err(lm.error_at(
            m.study.arms.first().map(String::as_str).unwrap_or(""),
            "[study] arms needs at least two arms (the first is the reference arm)".into(),
        ));
    }
    if let Some(i) = &m.study.intervention {
        if !m.study.arms.contains(i) {
            return Err(lm.error_at(
                i,
                format!(
                    "intervention \"{i}\" is not one of arms ({})",
                    m.study.arms.join(", ")
                ),
            ));
        }
    }
    if m.waves.is_empty() {
        return Err(ImportError::Map {
            file: lm.file.clone(),
            line: None,
            message: "no [[waves]]: list each wave with its label, months and codes".into(),
        });
    }
    for s in &m.sources {
        for (key, v) in [
            ("separator", &s.separator),
            ("quote", &s.quote),
            ("decimal", &s.decimal),
        ] {
            if let Some(v) = v {
                if v.chars().count() != 1 || !v.is_ascii() {
                    return Err(lm.error_at(
                        v,
                        format!("{key} must be one character (ASCII), e.g. \";\" or \"\\t\""),
                    ));
                }
            }
        }
        if let Some(d) = &s.decimal {
            if d != "," && d != "." {
                return Err(lm.error_at(d, "decimal must be \",\" or \".\"".into()));
            }
        }
        if let Some(t) = &s.table {
            if t != "participants" && t != "admissions" {
                return Err(
                    lm.error_at(t, "table must be \"participants\" or \"admissions\"".into())
                );
            }
        }
        if let Some(w) = &s.wave {
            if !m.waves.iter().any(|x| &x.label == w) {
                return Err(lm.error_at(w, format!("wave \"{w}\" is not a label of [[waves]]")));
            }
        }
        if s.wave.is_some() && s.wave_column.is_some() {
            return Err(lm.error_at(
                s.wave.as_deref().unwrap_or(""),
                "a source has either `wave` (one wave per file) or `wave_column` (long layout), not both".into(),
            ));
        }
    }
    for i in &m.instruments {
        if i.items.is_none() && i.total.is_none() && i.subscales.is_empty() {
            return Err(lm.error_at(
                &i.name,
                format!(
                    "[[instruments]] {} has neither `items`, `total` nor `subscales`: give the item column pattern (items = \"x{{n}}_{{wave}}\") or the column of the scored total (total = \"x_{{wave}}\")",
                    i.name
                ),
            ));
        }
    }
    for f in [&m.participants.randomized_on, &m.assessments.assessed_on]
        .into_iter()
        .flatten()
    {
        if let Some(fmt) = &f.format {
            super::values::check_date_format(fmt).map_err(|msg| lm.error_at(fmt, msg))?;
        }
    }
    Ok(())
}

impl SourceMap {
    /// Dialect settings of this source.
    pub fn dialect(&self) -> super::dialect::DialectOverrides {
        let ch = |s: &Option<String>| {
            s.as_deref().and_then(|v| match v {
                "\\t" | "tab" => Some('\t'),
                _ => v.chars().next(),
            })
        };
        super::dialect::DialectOverrides {
            separator: ch(&self.separator),
            quote: ch(&self.quote),
            decimal: ch(&self.decimal),
            encoding: self.encoding.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[study]
arms = ["CAU", "IMR"]
intervention = "IMR"

[[waves]]
label = "T0"
months = 0
codes = ["t0", 0]

[participants]
id = "respnr"
arm = { column = "groep", recode = { "1" = "CAU", "2" = "IMR" } }

[[instruments]]
name = "imrs_client"
items = "imrs{n}_{wave}"
offset = -1
missing = [99, 999]
"#;

    #[test]
    fn a_minimal_map_parses() {
        let m = parse_map(MINIMAL, Path::new("m.toml")).unwrap().map;
        assert_eq!(m.participants.id.column, "respnr");
        assert_eq!(
            m.participants.arm.recode.get("2").map(String::as_str),
            Some("IMR")
        );
        assert_eq!(m.waves[0].code_texts(), vec!["t0", "0"]);
        assert_eq!(m.instruments[0].offset, -1.0);
        assert_eq!(m.instruments[0].items.as_deref(), Some("imrs{n}_{wave}"));
        assert!(m.instruments[0].total.is_none());
        assert_eq!(m.instruments[0].missing[1].num(), Some(999.0));
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let text = MINIMAL.replace("offset = -1", "ofset = -1");
        let e = parse_map(&text, Path::new("m.toml")).unwrap_err();
        let ImportError::Map { line, message, .. } = &e else {
            panic!("a map error: {e}")
        };
        assert_eq!(*line, Some(18), "{message}");
        assert!(message.contains("ofset"), "{message}");
        let text = MINIMAL.replace("recode = {", "recod = {");
        let e = parse_map(&text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 13") && e.contains("recod"), "{e}");
    }

    #[test]
    fn totals_and_subscales_parse_and_their_unknown_keys_are_located() {
        let text = MINIMAL.replace(
            "items = \"imrs{n}_{wave}\"",
            "total = \"imrs_tot_{wave}\"\nsubscales = { coping = { column = \"imrs_cop_{wave}\", missing = [-1] } }",
        );
        let m = parse_map(&text, Path::new("m.toml")).unwrap().map;
        let i = &m.instruments[0];
        assert!(i.items.is_none());
        assert_eq!(
            i.total.as_ref().map(|f| f.column.as_str()),
            Some("imrs_tot_{wave}")
        );
        assert_eq!(i.subscales["coping"].column, "imrs_cop_{wave}");
        assert_eq!(i.subscales["coping"].missing[0].num(), Some(-1.0));
        let bad = text.replace("total = ", "totaal = ");
        let e = parse_map(&bad, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 17") && e.contains("totaal"), "{e}");
        let bad = text.replace("missing = [-1]", "mising = [-1]");
        let e = parse_map(&bad, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 18") && e.contains("mising"), "{e}");
        // neither items nor a total: located at the instrument's name
        let none = MINIMAL.replace("items = \"imrs{n}_{wave}\"\n", "");
        let e = parse_map(&none, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 16") && e.contains("neither"), "{e}");
    }

    #[test]
    fn contradictions_are_located() {
        let text = MINIMAL.replace("intervention = \"IMR\"", "intervention = \"EIMR\"");
        let e = parse_map(&text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4") && e.contains("EIMR"), "{e}");
        let text = format!("{MINIMAL}\n[[sources]]\nfile = \"a.csv\"\nseparator = \";;\"\n");
        let e = parse_map(&text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("one character"), "{e}");
    }
}
