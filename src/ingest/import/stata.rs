//! Stata `.dta` files (every release 102-119) through the `dta` crate, read as
//! haven::read_dta sees them: variable labels, value-label sets, extended missing values
//! `.a`-`.z` kept as tagged missing, `%td` dates as `YYYY-MM-DD` (days since 1960-01-01),
//! `%tc` date-times as their day.

use std::path::Path;

use dta::stata::dta::dta_reader::DtaReader;
use dta::stata::dta::long_string_table::LongStringTable;
use dta::stata::dta::value::Value;
use dta::stata::dta::value_label_table::ValueLabelTable;
use dta::stata::dta::variable_type::VariableType;
use dta::stata::missing_value::MissingValue;
use dta::stata::stata_byte::StataByte;
use dta::stata::stata_double::StataDouble;
use dta::stata::stata_float::StataFloat;
use dta::stata::stata_int::StataInt;
use dta::stata::stata_long::StataLong;

use super::error::ImportError;
use super::source::{Code, ColumnData, SourceColumn, SourceFormat, SourceTable, UserMissing};
use crate::ingest::Date;

/// Reads a `.dta` file.
pub fn read_dta(path: &Path) -> Result<SourceTable, ImportError> {
    let bad = |e: dta::stata::dta::dta_error::DtaError| ImportError::Malformed {
        file: path.to_path_buf(),
        message: format!("not a readable Stata file: {e}"),
    };
    let mut chars = DtaReader::new()
        .from_path(path)
        .map_err(bad)?
        .read_header()
        .map_err(bad)?
        .read_schema()
        .map_err(bad)?;
    chars.skip_to_end().map_err(bad)?;
    let mut records = chars.into_record_reader().map_err(bad)?;
    let schema = records.schema().clone();
    let vars = schema.variables();
    let mut cols: Vec<Builder> = vars
        .iter()
        .map(|v| match v.variable_type() {
            VariableType::FixedString(_) | VariableType::LongString => Builder::Text(Vec::new()),
            _ if is_date(v.format()) => Builder::Text(Vec::new()),
            _ => Builder::Num(Vec::new(), Vec::new()),
        })
        .collect();
    // strL cells resolved after the records: (column, row, reference)
    let mut refs = Vec::new();
    let mut n_rows = 0usize;
    while let Some(rec) = records.read_record().map_err(bad)? {
        for (ci, (val, col)) in rec.values().iter().zip(cols.iter_mut()).enumerate() {
            let num = match val {
                Value::Byte(StataByte::Present(x)) => Ok(f64::from(*x)),
                Value::Int(StataInt::Present(x)) => Ok(f64::from(*x)),
                Value::Long(StataLong::Present(x)) => Ok(f64::from(*x)),
                Value::Float(StataFloat::Present(x)) => Ok(f64::from(*x)),
                Value::Double(StataDouble::Present(x)) => Ok(*x),
                Value::Byte(StataByte::Missing(m))
                | Value::Int(StataInt::Missing(m))
                | Value::Long(StataLong::Missing(m))
                | Value::Float(StataFloat::Missing(m))
                | Value::Double(StataDouble::Missing(m)) => Err(Some(*m)),
                Value::String(s) => {
                    if let Builder::Text(t) = col {
                        let s = s.trim_end_matches('\0').trim_end();
                        t.push((!s.trim().is_empty()).then(|| s.to_string()));
                    }
                    continue;
                }
                Value::LongStringRef(r) => {
                    if let Builder::Text(t) = col {
                        t.push(None);
                        refs.push((ci, n_rows, *r));
                    }
                    continue;
                }
            };
            match col {
                Builder::Num(x, tags) => match num {
                    Ok(v) => x.push(v),
                    Err(m) => {
                        x.push(f64::NAN);
                        if let Some(c) = m.and_then(tag_letter) {
                            tags.push((n_rows, c));
                        }
                    }
                },
                Builder::Text(t) => {
                    let fmt = vars.get(ci).map(|v| v.format()).unwrap_or("");
                    t.push(
                        num.ok()
                            .and_then(|v| stata_date(v, fmt))
                            .map(|d| d.to_string()),
                    );
                }
            }
        }
        n_rows += 1;
    }
    let mut strls = LongStringTable::for_reading();
    let mut labels = ValueLabelTable::new();
    let mut ls = records.into_long_string_reader().map_err(bad)?;
    let encoding = ls.encoding();
    ls.read_remaining_into(&mut strls).map_err(bad)?;
    let mut vl = ls.into_value_label_reader().map_err(bad)?;
    vl.read_remaining_into(&mut labels).map_err(bad)?;
    for (ci, row, r) in refs {
        let text = strls.get(&r).and_then(|s| {
            s.data_str(encoding)
                .map(|c| c.trim_end_matches('\0').to_string())
        });
        if let Some(Builder::Text(t)) = cols.get_mut(ci) {
            if let Some(slot) = t.get_mut(row) {
                *slot = text.filter(|s| !s.trim().is_empty());
            }
        }
    }
    let columns = vars
        .iter()
        .zip(cols)
        .map(|(v, b)| {
            let value_labels = if v.value_label_name().is_empty() {
                Vec::new()
            } else {
                labels
                    .get(v.value_label_name())
                    .map(|set| {
                        set.entries()
                            .iter()
                            .map(|e| (Code::Num(f64::from(e.value())), e.label().to_string()))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (data, tagged_missing) = match b {
                Builder::Num(x, tags) => (ColumnData::Num(x), tags),
                Builder::Text(t) => (ColumnData::Text(t), Vec::new()),
            };
            SourceColumn {
                name: v.name().to_string(),
                label: (!v.label().is_empty()).then(|| v.label().to_string()),
                data,
                value_labels,
                user_missing: UserMissing::default(),
                tagged_missing,
            }
        })
        .collect();
    Ok(SourceTable {
        path: path.to_path_buf(),
        format: SourceFormat::Dta,
        columns,
        n_rows,
    })
}

enum Builder {
    Num(Vec<f64>, Vec<(usize, char)>),
    Text(Vec<Option<String>>),
}

/// `.a` -> 'a'; `None` for the system missing value `.`.
fn tag_letter(m: MissingValue) -> Option<char> {
    let s = m.to_string();
    let mut ch = s.strip_prefix('.')?.chars();
    match (ch.next(), ch.next()) {
        (Some(c), None) if c.is_ascii_lowercase() => Some(c),
        _ => None,
    }
}

/// Stata date formats: `%td` (days since 1960-01-01) and `%tc`/`%tC` (milliseconds).
fn is_date(format: &str) -> bool {
    let f = format.trim_start_matches('%').trim_start_matches('-');
    f.starts_with("td") || f.starts_with("tc") || f.starts_with("tC") || f.starts_with('d')
}

fn stata_date(v: f64, format: &str) -> Option<Date> {
    let epoch = Date::from_ymd(1960, 1, 1)?;
    let f = format.trim_start_matches('%').trim_start_matches('-');
    let days = if f.starts_with("tc") || f.starts_with("tC") {
        (v / 86_400_000.0).floor()
    } else {
        v.floor()
    };
    (days.is_finite() && days.abs() < 5.0e6).then(|| Date::from_days(epoch.days() + days as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stata_dates_and_tags() {
        assert!(is_date("%td"));
        assert!(is_date("%tdDD-NN-CCYY"));
        assert!(!is_date("%9.0g"));
        assert_eq!(stata_date(0.0, "%td").unwrap().to_string(), "1960-01-01");
        assert_eq!(
            stata_date(19_558.0, "%td").unwrap().to_string(),
            "2013-07-19"
        );
        assert_eq!(
            stata_date(19_558.5 * 86_400_000.0, "%tc")
                .unwrap()
                .to_string(),
            "2013-07-19"
        );
        assert_eq!(tag_letter(MissingValue::A), Some('a'));
        assert_eq!(tag_letter(MissingValue::System), None);
    }

    #[test]
    fn a_file_that_is_not_stata_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.dta");
        std::fs::write(&p, b"id,arm\n1,2\n").unwrap();
        assert!(matches!(read_dta(&p), Err(ImportError::Malformed { .. })));
    }
}
