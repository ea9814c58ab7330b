//! Reading one source cell as an export value: user-missing codes, value labels, recodes,
//! dates in a given format, numbers with a decimal comma.

use super::map::{Field, Key};
use super::source::{num_text, Cell, SourceColumn, SourceFormat, SourceTable};
use crate::ingest::Date;

/// Why a cell became missing.
#[derive(Debug, Clone, PartialEq)]
pub enum MissingWhy {
    /// Declared in the file (SPSS missing values), with the declaration.
    File(String),
    /// Listed in the map (`missing = [...]`), with where.
    Map(&'static str),
    /// A Stata extended missing value.
    Tagged(char),
}

impl MissingWhy {
    pub fn describe(&self) -> String {
        match self {
            MissingWhy::File(d) => format!("user-missing code (declared in the file: {d})"),
            MissingWhy::Map(w) => format!("user-missing code (map: {w})"),
            MissingWhy::Tagged(c) => format!("Stata extended missing value .{c}"),
        }
    }
}

/// A cell read as a number.
#[derive(Debug, Clone, PartialEq)]
pub enum NumCell {
    Empty,
    Missing(MissingWhy),
    Value(f64),
    /// Text that is not a number.
    NotANumber(String),
}

/// True when the source's CSV dialect has a decimal comma.
pub fn decimal_comma(t: &SourceTable) -> bool {
    matches!(&t.format, SourceFormat::Csv(d) if d.decimal_comma)
}

/// True when the cell (its number `x`, or its text `s` for text cells) is one of `keys`.
fn in_keys(keys: &[Key], x: Option<f64>, s: Option<&str>) -> bool {
    keys.iter().any(|k| match (k.num(), x) {
        (Some(a), Some(b)) => a == b,
        _ => s.is_some_and(|s| k.text().trim() == s),
    })
}

/// Reads a cell as a number, applying the file's user-missing declaration and the map's
/// codes (`map_missing`, with `where_` naming where in the map they are listed).
pub fn num_cell(
    t: &SourceTable,
    col: &SourceColumn,
    cell: Cell<'_>,
    map_missing: &[(&[Key], &'static str)],
) -> NumCell {
    // no text is formatted for numeric cells: this runs for every item cell
    let (x, text) = match cell {
        Cell::Empty => return NumCell::Empty,
        Cell::Tagged(c) => return NumCell::Missing(MissingWhy::Tagged(c)),
        Cell::Num(x) => (Some(x), None),
        Cell::Text(s) => (super::dialect::parse_number(s, decimal_comma(t)), Some(s)),
    };
    let file_missing = !col.user_missing.is_empty()
        && match x {
            Some(v) => col.user_missing.contains_num(v),
            None => col.user_missing.contains_text(text.unwrap_or("")),
        };
    if file_missing {
        return NumCell::Missing(MissingWhy::File(col.user_missing.describe()));
    }
    for (keys, where_) in map_missing {
        if in_keys(keys, x, text) {
            return NumCell::Missing(MissingWhy::Map(where_));
        }
    }
    match x {
        Some(v) => NumCell::Value(v),
        None => NumCell::NotANumber(text.unwrap_or("").to_string()),
    }
}

/// A cell read as text for a categorical field.
#[derive(Debug, Clone, PartialEq)]
pub enum TextCell {
    Empty,
    Missing(MissingWhy),
    /// The export value; `from` is set when it differs from the cell (recode or value
    /// label), with the reason.
    Value {
        value: String,
        code: String,
        recoded: Option<&'static str>,
    },
}

/// Reads a categorical cell: missing codes first, then the map's recode (matched by code or
/// by value-label text), then the value label, then the code as written.
pub fn text_cell(t: &SourceTable, col: &SourceColumn, cell: Cell<'_>, field: &Field) -> TextCell {
    let (code, label) = match cell {
        Cell::Empty => return TextCell::Empty,
        Cell::Tagged(c) => return TextCell::Missing(MissingWhy::Tagged(c)),
        Cell::Num(x) => (num_text(x), col.label_of_num(x)),
        Cell::Text(s) => (s.to_string(), col.label_of_text(s)),
    };
    match num_cell(t, col, cell, &[(&field.missing, "the field's missing")]) {
        NumCell::Missing(w) => return TextCell::Missing(w),
        NumCell::Empty => return TextCell::Empty,
        _ => {}
    }
    if let Some(v) = field.recode.get(&code) {
        return TextCell::Value {
            value: v.clone(),
            code,
            recoded: Some("recode in the map"),
        };
    }
    if let Some(l) = label {
        if let Some(v) = field.recode.get(l) {
            return TextCell::Value {
                value: v.clone(),
                code,
                recoded: Some("recode of the value label in the map"),
            };
        }
        return TextCell::Value {
            value: l.to_string(),
            code,
            recoded: Some("value label"),
        };
    }
    TextCell::Value {
        value: code.clone(),
        code,
        recoded: None,
    }
}

/// Checks a date format: `%d`, `%m`, `%Y` (each once) and literal characters.
pub fn check_date_format(fmt: &str) -> Result<(), String> {
    let mut seen = String::new();
    let mut it = fmt.chars();
    while let Some(c) = it.next() {
        if c == '%' {
            match it.next() {
                Some(k @ ('d' | 'm' | 'Y')) if !seen.contains(k) => seen.push(k),
                Some(k) => {
                    return Err(format!(
                        "date format \"{fmt}\": %{k} is not supported or repeated (use %d, %m and %Y, e.g. \"%d-%m-%Y\")"
                    ))
                }
                None => return Err(format!("date format \"{fmt}\" ends with %")),
            }
        }
    }
    if seen.len() != 3 {
        return Err(format!(
            "date format \"{fmt}\" needs %d, %m and %Y (e.g. \"%d-%m-%Y\")"
        ));
    }
    Ok(())
}

/// Parses a date with a format of [`check_date_format`]; days and months may have one digit.
pub fn parse_date(s: &str, fmt: &str) -> Option<Date> {
    let b = s.trim().as_bytes();
    let f = fmt.as_bytes();
    let (mut i, mut j) = (0usize, 0usize);
    let (mut d, mut m, mut y) = (None, None, None);
    while j < f.len() {
        if f[j] == b'%' && j + 1 < f.len() {
            let max = if f[j + 1] == b'Y' { 4 } else { 2 };
            let start = i;
            while i < b.len() && i - start < max && b[i].is_ascii_digit() {
                i += 1;
            }
            let v: u32 = std::str::from_utf8(b.get(start..i)?).ok()?.parse().ok()?;
            match f[j + 1] {
                b'd' => d = Some(v),
                b'm' => m = Some(v),
                _ => {
                    if i - start != 4 {
                        return None;
                    }
                    y = Some(v as i32)
                }
            }
            j += 2;
        } else {
            if b.get(i) != Some(&f[j]) {
                return None;
            }
            i += 1;
            j += 1;
        }
    }
    // a time after the date (spreadsheets write `19-07-2013 00:00`)
    if i < b.len() && b[i] != b' ' && b[i] != b'T' {
        return None;
    }
    Date::from_ymd(y?, m?, d?)
}

/// The shape of a date-like text for messages: `DD-MM-YYYY`, `YYYY/MM/DD`, ...
pub fn date_shape(s: &str) -> Option<String> {
    let s = s.trim();
    let parts: Vec<&str> = s.split(['-', '/', '.']).collect();
    if parts.len() != 3
        || !parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let sep = s.chars().find(|c| matches!(c, '-' | '/' | '.'))?;
    let shape: Vec<String> = if parts[0].len() == 4 {
        vec!["YYYY".into(), "MM".into(), "DD".into()]
    } else if parts[2].len() == 4 {
        let first: u32 = parts[0].parse().ok()?;
        let second: u32 = parts[1].parse().ok()?;
        if second > 12 && first <= 12 {
            vec!["MM".into(), "DD".into(), "YYYY".into()]
        } else {
            vec!["DD".into(), "MM".into(), "YYYY".into()]
        }
    } else {
        return None;
    };
    Some(shape.join(&sep.to_string()))
}

/// The strftime format of a date shape (`DD-MM-YYYY` -> `%d-%m-%Y`).
pub fn shape_format(shape: &str) -> String {
    shape
        .replace("YYYY", "%Y")
        .replace("MM", "%m")
        .replace("DD", "%d")
}

/// Reads a date cell: SPSS/Stata dates arrive as `YYYY-MM-DD` text; text dates use the
/// field's format, else ISO 8601.
pub fn date_cell(cell: Cell<'_>, field: &Field) -> Result<Option<Date>, String> {
    match cell {
        Cell::Empty | Cell::Tagged(_) => Ok(None),
        Cell::Num(x) => Err(num_text(x)),
        Cell::Text(s) => {
            let d = match &field.format {
                Some(f) => parse_date(s, f).or_else(|| Date::parse(s)),
                None => Date::parse(s),
            };
            d.map(Some).ok_or_else(|| s.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::source::{Code, ColumnData, UserMissing};
    use super::*;
    use std::path::PathBuf;

    fn table(col: SourceColumn) -> SourceTable {
        SourceTable {
            path: PathBuf::from("t.sav"),
            format: SourceFormat::Sav,
            n_rows: col.data.len(),
            columns: vec![col],
        }
    }

    #[test]
    fn dates_in_formats() {
        assert_eq!(
            parse_date("19-07-2013", "%d-%m-%Y").unwrap().to_string(),
            "2013-07-19"
        );
        assert_eq!(
            parse_date("9-7-2013", "%d-%m-%Y").unwrap().to_string(),
            "2013-07-09"
        );
        assert_eq!(
            parse_date("07/19/2013", "%m/%d/%Y").unwrap().to_string(),
            "2013-07-19"
        );
        assert_eq!(
            parse_date("19-07-2013 00:00", "%d-%m-%Y")
                .unwrap()
                .to_string(),
            "2013-07-19"
        );
        assert_eq!(parse_date("31-02-2013", "%d-%m-%Y"), None);
        assert_eq!(parse_date("19-07-13", "%d-%m-%Y"), None);
        assert!(check_date_format("%d-%m-%Y").is_ok());
        assert!(check_date_format("%d-%m").is_err());
        assert!(check_date_format("%d-%b-%Y").is_err());
        assert_eq!(date_shape("19-07-2013").as_deref(), Some("DD-MM-YYYY"));
        assert_eq!(date_shape("07/19/2013").as_deref(), Some("MM/DD/YYYY"));
        assert_eq!(date_shape("2013.07.19").as_deref(), Some("YYYY.MM.DD"));
        assert_eq!(date_shape("gisteren"), None);
        assert_eq!(shape_format("DD-MM-YYYY"), "%d-%m-%Y");
    }

    #[test]
    fn missing_codes_labels_and_recodes() {
        let mut c = SourceColumn::plain("x", ColumnData::Num(vec![1.0, 99.0, 2.0, 7.0]));
        c.user_missing = UserMissing {
            codes: vec![Code::Num(99.0)],
            range: None,
        };
        c.value_labels = vec![
            (Code::Num(1.0), "vrouw".into()),
            (Code::Num(2.0), "man".into()),
        ];
        let t = table(c);
        let col = &t.columns[0];
        let mut f = Field {
            column: "x".into(),
            ..Field::default()
        };
        f.recode.insert("man".into(), "male".into());
        f.missing = vec![Key::Int(7)];
        assert!(matches!(
            text_cell(&t, col, t.cell(0, 0), &f),
            TextCell::Value { ref value, recoded: Some("value label"), .. } if value == "vrouw"
        ));
        assert!(matches!(
            text_cell(&t, col, t.cell(1, 0), &f),
            TextCell::Missing(MissingWhy::File(_))
        ));
        assert!(matches!(
            text_cell(&t, col, t.cell(2, 0), &f),
            TextCell::Value { ref value, .. } if value == "male"
        ));
        assert!(matches!(
            text_cell(&t, col, t.cell(3, 0), &f),
            TextCell::Missing(MissingWhy::Map(_))
        ));
        let keys = [Key::Int(2)];
        assert_eq!(
            num_cell(&t, col, t.cell(0, 0), &[(&keys, "i")]),
            NumCell::Value(1.0)
        );
        assert_eq!(
            num_cell(&t, col, t.cell(2, 0), &[(&keys, "i")]),
            NumCell::Missing(MissingWhy::Map("i"))
        );
    }

    #[test]
    fn date_cells() {
        let f = Field {
            column: "d".into(),
            format: Some("%d-%m-%Y".into()),
            ..Field::default()
        };
        assert_eq!(
            date_cell(Cell::Text("19-07-2013"), &f)
                .unwrap()
                .unwrap()
                .to_string(),
            "2013-07-19"
        );
        assert_eq!(
            date_cell(Cell::Text("2013-07-19"), &f)
                .unwrap()
                .unwrap()
                .to_string(),
            "2013-07-19"
        );
        assert_eq!(
            date_cell(Cell::Text("19.07.2013"), &f),
            Err("19.07.2013".to_string())
        );
        assert_eq!(date_cell(Cell::Num(5.0), &f), Err("5".to_string()));
        assert_eq!(date_cell(Cell::Empty, &f), Ok(None));
    }
}
