//! A source file read into memory: named columns of numbers or text, with the metadata that
//! statistics packages carry (variable labels, value labels, user-missing codes).
//!
//! Every reader (`sav`, `dta`, `dialect` for CSV, Parquet through [`crate::table`]) produces a
//! [`SourceTable`]; the map is applied to that one shape. Numeric columns hold `f64` with `NaN`
//! for system missing (SPSS `SYSMIS`, Stata `.`); dates of SPSS and Stata are converted to
//! `YYYY-MM-DD` text when read, as haven::read_sav / haven::read_dta turn them into R `Date`s.

use std::path::{Path, PathBuf};

use super::error::ImportError;

/// The values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Numbers; `NaN` is system missing.
    Num(Vec<f64>),
    /// Text cells; `None` is empty.
    Text(Vec<Option<String>>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Num(v) => v.len(),
            ColumnData::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A code of a value label or a user-missing value: numeric or text.
#[derive(Debug, Clone, PartialEq)]
pub enum Code {
    Num(f64),
    Text(String),
}

/// User-missing values declared in the file (SPSS `MISSING VALUES`: up to three codes, or a
/// range plus one code), as haven's `labelled_spss` keeps them in `na_values` / `na_range`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserMissing {
    pub codes: Vec<Code>,
    /// Inclusive numeric range.
    pub range: Option<(f64, f64)>,
}

impl UserMissing {
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty() && self.range.is_none()
    }

    /// True when the numeric value `x` is declared missing.
    pub fn contains_num(&self, x: f64) -> bool {
        self.range.is_some_and(|(lo, hi)| x >= lo && x <= hi)
            || self
                .codes
                .iter()
                .any(|c| matches!(c, Code::Num(v) if *v == x))
    }

    /// True when the text value `s` is declared missing (SPSS string missing values are
    /// compared after trimming trailing blanks).
    pub fn contains_text(&self, s: &str) -> bool {
        self.codes
            .iter()
            .any(|c| matches!(c, Code::Text(v) if v.trim_end() == s.trim_end()))
    }

    /// The declaration as text, for the import log (`99, 999` or `900 thru 999, 99`).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some((lo, hi)) = self.range {
            parts.push(format!("{} thru {}", num_text(lo), num_text(hi)));
        }
        for c in &self.codes {
            parts.push(match c {
                Code::Num(v) => num_text(*v),
                Code::Text(s) => format!("\"{}\"", s.trim_end()),
            });
        }
        parts.join(", ")
    }
}

/// One column of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceColumn {
    pub name: String,
    /// Variable label (SPSS/Stata), if any.
    pub label: Option<String>,
    pub data: ColumnData,
    /// Value labels (code -> label text), in file order.
    pub value_labels: Vec<(Code, String)>,
    pub user_missing: UserMissing,
    /// Stata extended missing values (`.a` .. `.z`): (row, letter).
    pub tagged_missing: Vec<(usize, char)>,
}

impl SourceColumn {
    /// A column without labels or missing-value declarations.
    pub fn plain(name: impl Into<String>, data: ColumnData) -> Self {
        SourceColumn {
            name: name.into(),
            label: None,
            data,
            value_labels: Vec::new(),
            user_missing: UserMissing::default(),
            tagged_missing: Vec::new(),
        }
    }

    /// The label of a numeric code.
    pub fn label_of_num(&self, x: f64) -> Option<&str> {
        self.value_labels.iter().find_map(|(c, l)| match c {
            Code::Num(v) if *v == x => Some(l.as_str()),
            _ => None,
        })
    }

    /// The label of a text code.
    pub fn label_of_text(&self, s: &str) -> Option<&str> {
        self.value_labels.iter().find_map(|(c, l)| match c {
            Code::Text(v) if v.trim_end() == s => Some(l.as_str()),
            _ => None,
        })
    }
}

/// The kind of file a source came from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceFormat {
    Sav,
    Zsav,
    Dta,
    Csv(super::dialect::Dialect),
    Parquet,
}

impl SourceFormat {
    pub fn describe(&self) -> String {
        match self {
            SourceFormat::Sav => "SPSS .sav".into(),
            SourceFormat::Zsav => "SPSS .zsav".into(),
            SourceFormat::Dta => "Stata .dta".into(),
            SourceFormat::Csv(d) => format!("CSV ({})", d.describe()),
            SourceFormat::Parquet => "Parquet".into(),
        }
    }
}

/// A source file read into memory.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTable {
    pub path: PathBuf,
    pub format: SourceFormat,
    pub columns: Vec<SourceColumn>,
    pub n_rows: usize,
}

/// One cell as the map sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Empty,
    Num(f64),
    Text(&'a str),
    /// A Stata extended missing value `.a` .. `.z`.
    Tagged(char),
}

impl SourceTable {
    /// The file name, for messages.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }

    /// The column named `name` (exact match first, then ignoring ASCII case).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .or_else(|| {
                self.columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(name))
            })
    }

    /// The cell at data row `row` (0-based) of column `col`.
    pub fn cell(&self, row: usize, col: usize) -> Cell<'_> {
        let Some(c) = self.columns.get(col) else {
            return Cell::Empty;
        };
        match &c.data {
            ColumnData::Num(v) => match v.get(row) {
                Some(x) if x.is_nan() => match c.tagged_missing.binary_search_by_key(&row, |t| t.0)
                {
                    Ok(i) => Cell::Tagged(c.tagged_missing[i].1),
                    Err(_) => Cell::Empty,
                },
                Some(x) => Cell::Num(*x),
                None => Cell::Empty,
            },
            ColumnData::Text(v) => match v.get(row).and_then(|s| s.as_deref()) {
                Some(s) if !s.trim().is_empty() => Cell::Text(s.trim()),
                _ => Cell::Empty,
            },
        }
    }

    /// Checks that every column has `n_rows` values.
    pub fn check(self) -> Result<Self, ImportError> {
        for c in &self.columns {
            if c.data.len() != self.n_rows {
                return Err(ImportError::Malformed {
                    file: self.path.clone(),
                    message: format!(
                        "column `{}` has {} values, expected {}",
                        c.name,
                        c.data.len(),
                        self.n_rows
                    ),
                });
            }
        }
        Ok(self)
    }
}

/// A number as text: integral values without a decimal point (`3`, not `3.0`), others in the
/// shortest form that reads back to the same `f64`.
pub fn num_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Reads a source file by its extension: `.sav`, `.zsav`, `.dta`, `.csv`/`.txt`/`.tsv`,
/// `.parquet`. `dialect` overrides what CSV detection finds.
pub fn read_source(
    path: &Path,
    dialect: &super::dialect::DialectOverrides,
) -> Result<SourceTable, ImportError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    let t = match ext.as_str() {
        "sav" | "zsav" => super::sav::read_sav(path)?,
        "dta" => super::stata::read_dta(path)?,
        "csv" | "txt" | "tsv" => super::dialect::read_csv(path, dialect)?,
        "parquet" => read_parquet(path)?,
        _ => {
            return Err(ImportError::UnsupportedSource {
                file: path.to_path_buf(),
            })
        }
    };
    t.check()
}

/// Parquet through polars ([`crate::table::read_table_file`]): every column as text.
fn read_parquet(path: &Path) -> Result<SourceTable, ImportError> {
    let raw = crate::table::read_table_file(path).map_err(|e| ImportError::Malformed {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let n = raw.n_rows();
    let columns = raw
        .columns()
        .iter()
        .enumerate()
        .map(|(ci, name)| {
            let v: Vec<Option<String>> = raw
                .column_cells(ci)
                .map(|c| c.map(str::to_string))
                .collect();
            SourceColumn::plain(name.clone(), ColumnData::Text(v))
        })
        .collect();
    Ok(SourceTable {
        path: path.to_path_buf(),
        format: SourceFormat::Parquet,
        columns,
        n_rows: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_missing_codes_and_ranges() {
        let m = UserMissing {
            codes: vec![Code::Num(99.0)],
            range: Some((900.0, 999.0)),
        };
        assert!(m.contains_num(99.0));
        assert!(m.contains_num(950.0));
        assert!(!m.contains_num(98.0));
        assert_eq!(m.describe(), "900 thru 999, 99");
        let t = UserMissing {
            codes: vec![Code::Text("NA      ".into())],
            range: None,
        };
        assert!(t.contains_text("NA"));
        assert!(!t.contains_text("N"));
    }

    #[test]
    fn cells_of_numeric_and_text_columns() {
        let mut c = SourceColumn::plain("x", ColumnData::Num(vec![1.0, f64::NAN, f64::NAN]));
        c.tagged_missing = vec![(2, 'a')];
        let t = SourceTable {
            path: PathBuf::from("dir/x.dta"),
            format: SourceFormat::Dta,
            columns: vec![
                c,
                SourceColumn::plain(
                    "Name",
                    ColumnData::Text(vec![Some(" a ".into()), Some("  ".into()), None]),
                ),
            ],
            n_rows: 3,
        };
        assert_eq!(t.cell(0, 0), Cell::Num(1.0));
        assert_eq!(t.cell(1, 0), Cell::Empty);
        assert_eq!(t.cell(2, 0), Cell::Tagged('a'));
        assert_eq!(t.cell(0, 1), Cell::Text("a"));
        assert_eq!(t.cell(1, 1), Cell::Empty);
        assert_eq!(t.column_index("name"), Some(1));
        assert_eq!(t.file_name(), "x.dta");
        assert_eq!(num_text(3.0), "3");
        assert_eq!(num_text(2.5), "2.5");
    }
}
