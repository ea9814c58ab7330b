//! Export table definitions (`data-schema/tables/*.toml`): columns, types, keys, references.
//! The format itself is described in `docs/trial-export.md`.

use std::path::Path;

use serde::Deserialize;

use super::{parse_toml, SchemaError};

/// The type a column's cells must parse as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Integer,
    Number,
    /// `YYYY-MM-DD`.
    Date,
    /// `0` or `1`.
    Flag,
    /// One of `study.arms`.
    Arm,
    /// One of the `study.waves` labels.
    Wave,
}

impl ColumnType {
    /// Human description for "expected ..." in messages.
    pub fn describe(self) -> &'static str {
        match self {
            ColumnType::String => "text",
            ColumnType::Integer => "an integer",
            ColumnType::Number => "a number",
            ColumnType::Date => "a date YYYY-MM-DD",
            ColumnType::Flag => "0 or 1",
            ColumnType::Arm => "an arm of study.toml",
            ColumnType::Wave => "a wave label of study.toml",
        }
    }
}

/// A foreign key: the cell must be a key value of another table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub table: String,
    pub column: String,
}

/// One column of an export table.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSchema {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// The column must be present in the file.
    #[serde(default)]
    pub required: bool,
    /// Cells may be empty.
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Inclusive range for integer and number columns.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub references: Option<Reference>,
    #[serde(default)]
    pub description: String,
}

fn yes() -> bool {
    true
}

/// One export table.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableSchema {
    /// Base file name (`<table>.csv` or `<table>.parquet`).
    pub table: String,
    /// The table must exist in the export.
    #[serde(default = "yes")]
    pub required: bool,
    /// Columns whose combined values must be unique.
    #[serde(default)]
    pub key: Vec<String>,
    #[serde(default)]
    pub description: String,
    pub columns: Vec<ColumnSchema>,
}

impl TableSchema {
    /// Parses a table definition's TOML text.
    pub fn from_toml(text: &str, file: &Path) -> Result<TableSchema, SchemaError> {
        let t: TableSchema = parse_toml(text, file)?;
        if let Some(k) = t.key.iter().find(|k| t.column(k).is_none()) {
            return Err(SchemaError::Malformed {
                file: file.to_path_buf(),
                line: None,
                message: format!("key column `{k}` is not among the columns"),
            });
        }
        Ok(t)
    }

    /// The column definition with this name.
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }
}
