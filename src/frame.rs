//! Typed columns for modelling: numeric columns (f64, `NaN` = missing) and factors (codes into
//! an ordered list of levels), the analogue of an R `data.frame` as `model.frame` sees it.
//!
//! Level order of string columns: unless an explicit order is given (arm and wave from
//! study.toml), levels are sorted the way R's `sort()` orders plain ASCII identifiers in an
//! English locale: case-insensitively first, lower case before upper case on ties, then by
//! bytes ([`r_collate`]). This matches `factor()` under `en_US.UTF-8` for ids made of letters,
//! digits, `_`, `-` and `.`; punctuation-heavy ids may sort differently from R's ICU/glibc
//! collation. Numeric columns turned into factors (`factor(x)`, or a numeric grouping column)
//! sort numerically, as R's `factor()` does for numbers.
use std::cmp::Ordering;
use std::collections::HashMap;

use thiserror::Error;

mod typed_csv;
pub use typed_csv::{frame_from_csv, read_frame_file, ReadFrameError};

/// Errors building or reading a [`Frame`].
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FrameError {
    #[error("column `{name}` has {got} rows but the frame has {expected}")]
    LengthMismatch {
        name: String,
        got: usize,
        expected: usize,
    },
    #[error("column `{0}` appears twice")]
    DuplicateColumn(String),
    #[error(
        "column `{column}`: value `{value}` (row {row}) is not among the given levels {levels:?}"
    )]
    UnknownLevel {
        column: String,
        row: usize,
        value: String,
        levels: Vec<String>,
    },
    #[error("column `{column}`: level `{level}` is listed twice in the level order")]
    DuplicateLevel { column: String, level: String },
    #[error("CSV line {line}: {message}")]
    Csv { line: usize, message: String },
    #[error("no column `{0}`")]
    UnknownColumn(String),
}

/// One modelling column.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Numbers; `NaN` marks a missing value.
    Numeric(Vec<f64>),
    /// A factor: per row an index into `levels` (or `None` when missing).
    Factor {
        codes: Vec<Option<u32>>,
        levels: Vec<String>,
    },
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Factor { codes, .. } => codes.len(),
        }
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when row `i` is missing (or out of range).
    pub fn is_missing(&self, i: usize) -> bool {
        match self {
            Column::Numeric(v) => v.get(i).is_none_or(|x| !x.is_finite()),
            Column::Factor { codes, .. } => codes.get(i).is_none_or(|c| c.is_none()),
        }
    }
}

/// A table of named, typed columns of equal length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    names: Vec<String>,
    columns: Vec<Column>,
    n_rows: Option<usize>,
}

/// Sort key of [`r_collate`]: the lower-cased label, then the label with ASCII case swapped
/// (on a case-insensitive tie R under en_US puts lower case first).
pub fn r_collate_key(s: &str) -> (String, String) {
    let flipped = s
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c
            }
        })
        .collect();
    (s.to_lowercase(), flipped)
}

/// R-like collation of level labels (see the module documentation).
pub fn r_collate(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return r_collate_ascii(a.as_bytes(), b.as_bytes());
    }
    r_collate_key(a).cmp(&r_collate_key(b))
}

/// [`r_collate`] of two ASCII labels without building their keys: the lower-cased bytes
/// compared, then the case-swapped ones (for ASCII, [`r_collate_key`] is exactly these).
fn r_collate_ascii(a: &[u8], b: &[u8]) -> Ordering {
    let flip = |c: &u8| {
        if c.is_ascii_alphabetic() {
            c ^ 0x20
        } else {
            *c
        }
    };
    a.iter()
        .map(u8::to_ascii_lowercase)
        .cmp(b.iter().map(u8::to_ascii_lowercase))
        .then_with(|| a.iter().map(flip).cmp(b.iter().map(flip)))
}

/// Sorts level labels by [`r_collate`]. Labels that are already in that order after the byte
/// sort (identifiers such as `P0000001`, one case throughout) need no second sort; ASCII
/// labels are compared without allocating keys. Distinct labels never tie, so every path
/// gives the same order. (The readers sort indices by their labels, [`sort_r_collate_by`].)
#[cfg(test)]
fn sort_r_collate(labels: &mut [&str]) {
    sort_r_collate_by(labels, |s| *s);
}

/// [`sort_r_collate`] of items by their label (`label` gives distinct labels).
fn sort_r_collate_by<'s, T, F>(items: &mut [T], label: F)
where
    F: Fn(&T) -> &'s str,
{
    items.sort_unstable_by(|a, b| label(a).cmp(label(b)));
    let ascii = items.iter().all(|s| label(s).is_ascii());
    if ascii {
        let sorted = items.windows(2).all(|w| {
            r_collate_ascii(label(&w[0]).as_bytes(), label(&w[1]).as_bytes()) != Ordering::Greater
        });
        if !sorted {
            items
                .sort_unstable_by(|a, b| r_collate_ascii(label(a).as_bytes(), label(b).as_bytes()));
        }
    } else {
        items.sort_by_cached_key(|s| r_collate_key(label(s)));
    }
}

/// Formats a number as R's `as.character()` does for factor labels (15 significant digits,
/// integers without a decimal point).
pub fn r_number_label(x: f64) -> String {
    if x.is_nan() {
        return "NA".to_string();
    }
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let s = format!("{:.*e}", 14, x);
    // Parse back through the shortest representation with at most 15 significant digits.
    let v: f64 = s.parse().unwrap_or(x);
    let mut out = format!("{v}");
    if out.len() > 22 {
        out = s;
    }
    out
}

impl Frame {
    /// An empty frame; add columns with [`Frame::push_numeric`] and [`Frame::push_factor`].
    pub fn new() -> Self {
        Self::default()
    }

    fn check_push(&mut self, name: &str, len: usize) -> Result<(), FrameError> {
        if self.names.iter().any(|n| n == name) {
            return Err(FrameError::DuplicateColumn(name.to_string()));
        }
        match self.n_rows {
            Some(n) if n != len => Err(FrameError::LengthMismatch {
                name: name.to_string(),
                got: len,
                expected: n,
            }),
            _ => {
                self.n_rows = Some(len);
                Ok(())
            }
        }
    }

    /// Adds a numeric column (`None` or a non-finite value = missing).
    pub fn push_numeric(
        &mut self,
        name: &str,
        values: Vec<Option<f64>>,
    ) -> Result<&mut Self, FrameError> {
        self.check_push(name, values.len())?;
        self.names.push(name.to_string());
        self.columns.push(Column::Numeric(
            values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect(),
        ));
        Ok(self)
    }

    /// Adds a factor column. With `levels = Some(order)` the levels are exactly `order` (every
    /// value must be one of them); otherwise the observed values sorted by [`r_collate`].
    pub fn push_factor(
        &mut self,
        name: &str,
        values: Vec<Option<String>>,
        levels: Option<Vec<String>>,
    ) -> Result<&mut Self, FrameError> {
        self.check_push(name, values.len())?;
        let levels = match levels {
            Some(l) => {
                check_level_order(name, &l)?;
                l
            }
            None => {
                let mut l: Vec<String> = values.iter().flatten().cloned().collect();
                l.sort_unstable();
                l.dedup();
                l.sort_by_cached_key(|s| r_collate_key(s));
                l
            }
        };
        let index: HashMap<&str, u32> = levels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i as u32))
            .collect();
        let mut codes = Vec::with_capacity(values.len());
        for (row, v) in values.iter().enumerate() {
            match v {
                None => codes.push(None),
                Some(s) => match index.get(s.as_str()) {
                    Some(&c) => codes.push(Some(c)),
                    None => {
                        return Err(FrameError::UnknownLevel {
                            column: name.to_string(),
                            row,
                            value: s.clone(),
                            levels: levels.clone(),
                        })
                    }
                },
            }
        }
        self.names.push(name.to_string());
        self.columns.push(Column::Factor { codes, levels });
        Ok(self)
    }

    /// Builds a frame from text cells (`None`, empty or `NA` = missing), as R's `read.csv`
    /// would type them: a column whose non-missing cells all parse as numbers is numeric,
    /// any other column a factor with R-sorted levels (or the order in `level_orders`).
    pub fn from_text_columns(
        names: &[String],
        columns: Vec<Vec<Option<String>>>,
        level_orders: &HashMap<String, Vec<String>>,
    ) -> Result<Self, FrameError> {
        let mut frame = Frame::new();
        for (name, cells) in names.iter().zip(columns) {
            let text = || {
                cells.iter().map(|c| {
                    c.as_deref()
                        .filter(|s| !s.trim().is_empty() && s.trim() != "NA")
                })
            };
            let col = type_text_column(name, text, level_orders.get(name))?;
            frame.check_push(name, col.len())?;
            frame.names.push(name.clone());
            frame.columns.push(col);
        }
        Ok(frame)
    }

    /// Replaces a numeric column's values (same length; `None` = missing).
    pub fn replace_numeric(
        &mut self,
        name: &str,
        values: Vec<Option<f64>>,
    ) -> Result<(), FrameError> {
        let n = self.n_rows();
        if values.len() != n {
            return Err(FrameError::LengthMismatch {
                name: name.to_string(),
                got: values.len(),
                expected: n,
            });
        }
        let Some(i) = self.names.iter().position(|c| c == name) else {
            return Err(FrameError::UnknownColumn(name.to_string()));
        };
        self.columns[i] =
            Column::Numeric(values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect());
        Ok(())
    }

    /// Number of rows (0 for a frame without columns).
    pub fn n_rows(&self) -> usize {
        self.n_rows.unwrap_or(0)
    }

    /// Column names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.columns.get(i))
    }
}

/// A factor view of any column: numeric columns become factors with numerically sorted levels
/// labelled as R labels numbers (R's `factor(x)`).
pub fn as_factor(col: &Column) -> (Vec<Option<u32>>, Vec<String>) {
    match col {
        Column::Factor { codes, levels } => (codes.clone(), levels.clone()),
        Column::Numeric(v) => {
            let mut distinct: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            distinct.sort_by(|a, b| a.total_cmp(b));
            distinct.dedup();
            let codes = v
                .iter()
                .map(|x| {
                    if x.is_finite() {
                        distinct
                            .binary_search_by(|d| d.total_cmp(x))
                            .ok()
                            .map(|i| i as u32)
                    } else {
                        None
                    }
                })
                .collect();
            (codes, distinct.into_iter().map(r_number_label).collect())
        }
    }
}

/// Columns of optional text cells.
pub type TextColumns = Vec<Vec<Option<String>>>;

/// Splits CSV text into column names and text cells (empty cells are `None`), through the
/// one CSV parser of herstel ([`crate::table::csv_from_str`]: RFC 4180, `,` separated, `"`
/// quoting with `""` escapes, header row).
pub fn parse_csv_text(text: &str) -> Result<(Vec<String>, TextColumns), FrameError> {
    let raw = crate::table::csv_from_str("data", std::path::Path::new("data"), text)
        .map_err(csv_frame_error)?;
    Ok(text_columns(&raw))
}

/// A CSV structure error of in-memory text as a [`FrameError`] (its line, or line 1).
fn csv_frame_error(e: crate::table::TableError) -> FrameError {
    match e {
        crate::table::TableError::Malformed { row, message, .. } => FrameError::Csv {
            line: row.unwrap_or(1),
            message,
        },
        other => FrameError::Csv {
            line: 1,
            message: other.to_string(),
        },
    }
}

/// An error when a level order lists a level twice.
fn check_level_order(name: &str, order: &[String]) -> Result<(), FrameError> {
    let mut seen = HashMap::new();
    for lv in order {
        if seen.insert(lv.as_str(), ()).is_some() {
            return Err(FrameError::DuplicateLevel {
                column: name.to_string(),
                level: lv.clone(),
            });
        }
    }
    Ok(())
}

/// Column `c` of a text table typed as [`Frame::from_table`] types it (empty, blank and `NA`
/// cells missing; a table's cells are trimmed when it is built).
fn type_table_column(
    raw: &crate::table::RawTable,
    c: usize,
    order: Option<&Vec<String>>,
) -> Result<Column, FrameError> {
    let cells = || {
        raw.column_cells(c)
            .map(|v| v.filter(|t| !t.is_empty() && *t != "NA"))
    };
    type_text_column(&raw.columns()[c], cells, order)
}

/// One column typed from its cells (`None` = missing) as [`Frame::from_text_columns`] types
/// it: a factor in `order` when given, else numeric when every cell parses, else a factor
/// with R-sorted levels. `cells` is called once or twice (numeric attempt, then factor).
fn type_text_column<'a, I>(
    name: &str,
    cells: impl Fn() -> I,
    order: Option<&Vec<String>>,
) -> Result<Column, FrameError>
where
    I: Iterator<Item = Option<&'a str>>,
{
    if let Some(order) = order {
        check_level_order(name, order)?;
        let index: HashMap<&str, u32> = order
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i as u32))
            .collect();
        let mut codes = Vec::new();
        for (row, v) in cells().enumerate() {
            match v {
                None => codes.push(None),
                Some(s) => match index.get(s) {
                    Some(&c) => codes.push(Some(c)),
                    None => {
                        return Err(FrameError::UnknownLevel {
                            column: name.to_string(),
                            row,
                            value: s.to_string(),
                            levels: order.clone(),
                        })
                    }
                },
            }
        }
        return Ok(Column::Factor {
            codes,
            levels: order.clone(),
        });
    }
    let mut numbers = Vec::new();
    let mut numeric = true;
    for v in cells() {
        match v {
            None => numbers.push(f64::NAN),
            Some(s) => match typed_csv::parse_number(s.trim()) {
                Some(x) => numbers.push(x),
                None => {
                    numeric = false;
                    break;
                }
            },
        }
    }
    if numeric {
        return Ok(Column::Numeric(numbers));
    }
    // Codes in order of first appearance, then relabelled to the R-sorted levels. The
    // previous cell's label is tried first (rows of one participant repeat the id); foldhash
    // as in the CSV reader (`typed_csv`).
    let mut first: HashMap<&str, u32, foldhash::fast::FixedState> = HashMap::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut last: Option<(&str, u32)> = None;
    let raw_codes: Vec<Option<u32>> = cells()
        .map(|v| {
            v.map(|s| match last {
                Some((l, c)) if l == s => c,
                _ => {
                    let c = *first.entry(s).or_insert_with(|| {
                        seen.push(s);
                        (seen.len() - 1) as u32
                    });
                    last = Some((s, c));
                    c
                }
            })
        })
        .collect();
    drop(first);
    let mut sorted: Vec<u32> = (0..seen.len() as u32).collect();
    sort_r_collate_by(&mut sorted, |&i| seen[i as usize]);
    let mut relabel = vec![0u32; seen.len()];
    for (new, &i) in sorted.iter().enumerate() {
        relabel[i as usize] = new as u32;
    }
    Ok(Column::Factor {
        codes: raw_codes
            .into_iter()
            .map(|c| c.map(|c| relabel[c as usize]))
            .collect(),
        levels: sorted
            .iter()
            .map(|&i| seen[i as usize].to_string())
            .collect(),
    })
}

/// The cells of a table as optional text (empty = `None`).
pub fn text_columns(raw: &crate::table::RawTable) -> (Vec<String>, TextColumns) {
    let names = raw.columns().to_vec();
    let cols = (0..names.len())
        .map(|c| {
            raw.column_cells(c)
                .map(|v| v.filter(|t| !t.is_empty()).map(str::to_string))
                .collect()
        })
        .collect();
    (names, cols)
}

impl Frame {
    /// Parses CSV text into a typed frame (see [`Frame::from_text_columns`]).
    pub fn from_csv_str(
        text: &str,
        level_orders: &HashMap<String, Vec<String>>,
    ) -> Result<Self, FrameError> {
        frame_from_csv(std::path::Path::new("data"), text, level_orders).map_err(|e| match e {
            ReadFrameError::Table(t) => csv_frame_error(t),
            ReadFrameError::Frame(f) => f,
        })
    }

    /// A typed frame from a table read by [`crate::table::read_table_file`] (CSV or Parquet),
    /// typed as [`Frame::from_text_columns`] does.
    pub fn from_table(
        raw: &crate::table::RawTable,
        level_orders: &HashMap<String, Vec<String>>,
    ) -> Result<Self, FrameError> {
        use rayon::prelude::*;
        // Typed straight from the table's text (no String per cell), one column per task; the
        // same cells, types, levels and first error as `from_text_columns(text_columns(raw))`.
        let names = raw.columns();
        let typed: Vec<Result<Column, FrameError>> = (0..names.len())
            .into_par_iter()
            .map(|c| type_table_column(raw, c, level_orders.get(&names[c])))
            .collect();
        Frame::from_typed(names, typed)
    }

    /// The frame of a Parquet file read by [`crate::table::read_parquet_columns`] (with the
    /// columns of `level_orders` as text): its number columns as they are, its text columns
    /// typed as [`Frame::from_table`] types them, so the frame of the file's text table.
    pub fn from_parquet_columns(
        parquet: crate::table::ParquetColumns,
        level_orders: &HashMap<String, Vec<String>>,
    ) -> Result<Self, FrameError> {
        use crate::table::ParquetColumn;
        use rayon::prelude::*;
        let text = &parquet.text;
        let typed: Vec<Result<Column, FrameError>> = parquet
            .columns
            .into_par_iter()
            .zip(parquet.names.par_iter())
            .map(|(column, name)| match column {
                ParquetColumn::Numbers(values) => Ok(Column::Numeric(values)),
                ParquetColumn::Text(c) => type_table_column(text, c, level_orders.get(name)),
            })
            .collect();
        Frame::from_typed(&parquet.names, typed)
    }

    /// A frame of typed columns, or the first column's error (in column order).
    fn from_typed(
        names: &[String],
        typed: Vec<Result<Column, FrameError>>,
    ) -> Result<Self, FrameError> {
        let mut frame = Frame::new();
        for (name, col) in names.iter().zip(typed) {
            let col = col?;
            frame.check_push(name, col.len())?;
            frame.names.push(name.clone());
            frame.columns.push(col);
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collation_is_case_insensitive_first() {
        let mut v = vec!["b", "B", "a", "A10", "a2"];
        v.sort_by(|a, b| r_collate(a, b));
        assert_eq!(v, vec!["a", "A10", "a2", "b", "B"]);
    }

    #[test]
    fn level_sort_paths_agree_with_the_collation_keys() {
        fn by_key<'a>(v: &[&'a str]) -> Vec<&'a str> {
            let mut k: Vec<&'a str> = v.to_vec();
            k.sort_by_cached_key(|s| r_collate_key(s));
            k
        }
        for set in [
            vec!["P0002", "P0010", "P0001", "P0100"],
            vec![
                "b", "B", "a", "A10", "a2", "_x", "Z", "z_", "Zz", "zZ", "10", "9",
            ],
            vec!["é", "e", "E", "f", "Éa"],
        ] {
            let mut v = set.clone();
            sort_r_collate(&mut v);
            assert_eq!(v, by_key(&set), "{set:?}");
            let mut w = set.clone();
            w.sort_by(|a, b| r_collate(a, b));
            assert_eq!(w, by_key(&set), "{set:?}");
        }
    }

    #[test]
    fn text_columns_are_typed() {
        let names = vec!["y".to_string(), "g".to_string()];
        let cols = vec![
            vec![Some("1.5".into()), Some("NA".into()), Some("3".into())],
            vec![Some("b".into()), Some("a".into()), None],
        ];
        let f = Frame::from_text_columns(&names, cols, &HashMap::new()).unwrap();
        assert!(matches!(f.column("y"), Some(Column::Numeric(_))));
        assert!(f.column("y").unwrap().is_missing(1));
        match f.column("g") {
            Some(Column::Factor { codes, levels }) => {
                assert_eq!(levels, &vec!["a".to_string(), "b".to_string()]);
                assert_eq!(codes, &vec![Some(1), Some(0), None]);
            }
            _ => panic!("g should be a factor"),
        }
    }

    /// The direct typing of a table gives the frame of the text-cell path, error included.
    #[test]
    fn table_typing_matches_the_text_cell_path() {
        let csv = "y,g,mixed,w,n2,blank\n1.5,b,1, T2 ,inf,\nNA,A,x,T1,-2e3,\n3, a ,2,,+.5,NA\n,B,NA,T2,7,\n";
        let raw = crate::table::csv_from_str("t", std::path::Path::new("t.csv"), csv).unwrap();
        let mut orders = HashMap::new();
        orders.insert("w".to_string(), vec!["T2".to_string(), "T1".to_string()]);
        let (names, cols) = text_columns(&raw);
        let via_text = Frame::from_text_columns(&names, cols, &orders).unwrap();
        let direct = Frame::from_table(&raw, &orders).unwrap();
        assert_eq!(format!("{via_text:?}"), format!("{direct:?}"));
        orders.insert("g".to_string(), vec!["a".to_string()]);
        let (names, cols) = text_columns(&raw);
        let e1 = Frame::from_text_columns(&names, cols, &orders).unwrap_err();
        let e2 = Frame::from_table(&raw, &orders).unwrap_err();
        assert_eq!(e1.to_string(), e2.to_string());
    }

    #[test]
    fn csv_quotes_and_missing() {
        let f = Frame::from_csv_str("\"y\",\"g\"\n1,\"a,b\"\n,\"c\"\n", &HashMap::new()).unwrap();
        assert_eq!(f.n_rows(), 2);
        assert!(f.column("y").unwrap().is_missing(1));
        assert!(parse_csv_text("a,b\n1\n").is_err());
    }

    #[test]
    fn numeric_factor_labels() {
        let (codes, levels) = as_factor(&Column::Numeric(vec![10.0, 2.0, 10.0, f64::NAN]));
        assert_eq!(levels, vec!["2".to_string(), "10".to_string()]);
        assert_eq!(codes, vec![Some(1), Some(0), Some(1), None]);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let mut f = Frame::new();
        f.push_numeric("a", vec![Some(1.0)]).unwrap();
        assert!(f.push_numeric("b", vec![Some(1.0), None]).is_err());
    }
}
