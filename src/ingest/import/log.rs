//! `import-log.csv`: every source cell or row that does not end in the export as it was,
//! with its reason: unmapped columns (one line per column, with its count of non-empty
//! cells), user-missing codes (one line per cell), recoded values and value labels carried
//! as text (one line per distinct code, with its count and first row), dropped duplicates
//! and unmatched rows (one line per row).
//!
//! Rows are as the user sees them: CSV and Parquet files count the header as row 1 (data row
//! `i` is row `i + 2`); SPSS and Stata files count cases from 1 (the row in SPSS's Data View).

use std::collections::HashMap;
use std::path::Path;

use super::source::{SourceFormat, SourceTable};
use crate::table::{write_table_file, OutColumn, OutValues, TableError};

/// The row a user sees for 0-based data row `i` of `t`.
pub fn source_row(t: &SourceTable, i: usize) -> usize {
    match t.format {
        SourceFormat::Csv(_) | SourceFormat::Parquet => i + 2,
        _ => i + 1,
    }
}

/// What happened to a cell or row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    UnmappedColumn,
    MissingCode,
    Recoded,
    DuplicateDropped,
    UnmatchedRow,
    InvalidValue,
    /// A participant-level cell of a long source at a later wave that differs from the first.
    InconsistentRepeat,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::UnmappedColumn => "unmapped column",
            Action::MissingCode => "user-missing code",
            Action::Recoded => "recoded",
            Action::DuplicateDropped => "duplicate dropped",
            Action::UnmatchedRow => "unmatched row",
            Action::InvalidValue => "invalid value",
            Action::InconsistentRepeat => "inconsistent repeat",
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub source: String,
    pub row: Option<usize>,
    pub column: Option<String>,
    pub value: Option<String>,
    pub action: Action,
    /// Where it went (`assessments P0001 T0 imrs_client_03`) or what it became.
    pub export: String,
    pub reason: String,
    /// Cells this line stands for (1 for a cell; the count for a column or a recode).
    pub count: usize,
}

/// The log being built; recodes are merged per (source, column, code).
#[derive(Debug, Default)]
pub struct ImportLog {
    pub entries: Vec<LogEntry>,
    recodes: HashMap<(String, String, String), usize>,
}

impl ImportLog {
    pub fn push(&mut self, e: LogEntry) {
        self.entries.push(e);
    }

    /// A recoded value: one line per distinct code of a column, counted.
    #[allow(clippy::too_many_arguments)]
    pub fn recoded(
        &mut self,
        source: &str,
        row: usize,
        column: &str,
        code: &str,
        to: &str,
        reason: &str,
    ) {
        let key = (source.to_string(), column.to_string(), code.to_string());
        if let Some(&i) = self.recodes.get(&key) {
            if let Some(e) = self.entries.get_mut(i) {
                e.count += 1;
            }
            return;
        }
        self.recodes.insert(key, self.entries.len());
        self.entries.push(LogEntry {
            source: source.to_string(),
            row: Some(row),
            column: Some(column.to_string()),
            value: Some(code.to_string()),
            action: Action::Recoded,
            export: to.to_string(),
            reason: format!("{reason} (first row shown)"),
            count: 1,
        });
    }

    /// Number of lines with this action.
    pub fn count(&self, action: Action) -> usize {
        self.entries.iter().filter(|e| e.action == action).count()
    }

    /// Writes the log as CSV or Parquet (by extension).
    pub fn write(&self, path: &Path) -> Result<(), TableError> {
        let e = &self.entries;
        let text =
            |f: &dyn Fn(&LogEntry) -> Option<String>| OutValues::Text(e.iter().map(f).collect());
        let cols = vec![
            OutColumn::new("source", text(&|x| Some(x.source.clone()))),
            OutColumn::new(
                "row",
                OutValues::Int(e.iter().map(|x| x.row.map(|r| r as i64)).collect()),
            ),
            OutColumn::new("column", text(&|x| x.column.clone())),
            OutColumn::new("value", text(&|x| x.value.clone())),
            OutColumn::new("action", text(&|x| Some(x.action.label().to_string()))),
            OutColumn::new("export", text(&|x| Some(x.export.clone()))),
            OutColumn::new("reason", text(&|x| Some(x.reason.clone()))),
            OutColumn::new(
                "count",
                OutValues::Int(e.iter().map(|x| Some(x.count as i64)).collect()),
            ),
        ];
        write_table_file(path, &cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recodes_are_merged_and_the_log_is_written() {
        let mut log = ImportLog::default();
        log.recoded("a.sav", 1, "conditie", "2", "IMR", "value label");
        log.recoded("a.sav", 3, "conditie", "2", "IMR", "value label");
        log.recoded("a.sav", 2, "conditie", "1", "TAU", "value label");
        log.push(LogEntry {
            source: "a.sav".into(),
            row: Some(4),
            column: Some("imrs1_T0".into()),
            value: Some("99".into()),
            action: Action::MissingCode,
            export: "assessments P0004 T0 imrs_client_01".into(),
            reason: "user-missing code".into(),
            count: 1,
        });
        assert_eq!(log.count(Action::Recoded), 2);
        assert_eq!(log.entries[0].count, 2);
        assert_eq!(log.entries[0].row, Some(1));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("import-log.csv");
        log.write(&p).unwrap();
        let t = crate::table::read_table_file(&p).unwrap();
        assert_eq!(t.n_rows(), 3);
        assert_eq!(
            t.cell(2, t.column_index("action").unwrap()),
            Some("user-missing code")
        );
        assert_eq!(t.cell(0, t.column_index("count").unwrap()), Some("2"));
    }
}
