//! The data schema: export tables and questionnaire instruments as TOML data, plus the
//! study description (`study.toml`).
//!
//! Defaults are the files under `data-schema/` embedded with `include_str!`; a user directory
//! (`--schema DIR`, with `tables/*.toml` and `instruments/*.toml`, read at the input edge by
//! [`crate::ingest::load_schema`]) replaces a default of the same name or adds a new one.
//! Adding an instrument is adding a file, not code. This module parses; it reads no files.

pub mod instrument;
pub mod study;
pub mod tables;

use std::path::{Path, PathBuf};

pub use instrument::{Direction, IndexKind, Instrument, Share, Subscale, TotalRule, ValueType};
pub use study::{Design, Study, WaveDef};
pub use tables::{ColumnSchema, ColumnType, Reference, TableSchema};

/// A problem in a schema or study file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// Not valid TOML, or a field of the wrong type; `line` is 1-based.
    #[error("{}{}: {message}", file.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Malformed {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}: cannot read: {message}", file.display())]
    Io { file: PathBuf, message: String },
}

/// 1-based line of a byte offset in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() + 1)
        .unwrap_or(1)
}

/// Parses TOML text into `T`, reporting the line of a syntax or type error.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
) -> Result<T, SchemaError> {
    toml::from_str::<T>(text).map_err(|e| SchemaError::Malformed {
        file: file.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim().to_string(),
    })
}

const DEFAULT_TABLES: &[(&str, &str)] = &[
    (
        "sites.toml",
        include_str!("../../data-schema/tables/sites.toml"),
    ),
    (
        "groups.toml",
        include_str!("../../data-schema/tables/groups.toml"),
    ),
    (
        "participants.toml",
        include_str!("../../data-schema/tables/participants.toml"),
    ),
    (
        "assessments.toml",
        include_str!("../../data-schema/tables/assessments.toml"),
    ),
    (
        "admissions.toml",
        include_str!("../../data-schema/tables/admissions.toml"),
    ),
];

const DEFAULT_INSTRUMENTS: &[(&str, &str)] = &[
    (
        "imrs_client.toml",
        include_str!("../../data-schema/instruments/imrs_client.toml"),
    ),
    (
        "imrs_clinician.toml",
        include_str!("../../data-schema/instruments/imrs_clinician.toml"),
    ),
    (
        "mhrm.toml",
        include_str!("../../data-schema/instruments/mhrm.toml"),
    ),
    (
        "bsi.toml",
        include_str!("../../data-schema/instruments/bsi.toml"),
    ),
    (
        "sfs.toml",
        include_str!("../../data-schema/instruments/sfs.toml"),
    ),
    (
        "honos.toml",
        include_str!("../../data-schema/instruments/honos.toml"),
    ),
];

/// All table and instrument definitions in use.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub tables: Vec<TableSchema>,
    pub instruments: Vec<Instrument>,
}

impl Schema {
    /// The definitions shipped in the binary (`data-schema/`).
    pub fn embedded() -> Result<Schema, SchemaError> {
        let mut tables = Vec::new();
        for (file, text) in DEFAULT_TABLES {
            tables.push(TableSchema::from_toml(
                text,
                &Path::new("data-schema/tables").join(file),
            )?);
        }
        let mut instruments = Vec::new();
        for (file, text) in DEFAULT_INSTRUMENTS {
            instruments.push(Instrument::from_toml(
                text,
                &Path::new("data-schema/instruments").join(file),
            )?);
        }
        Ok(Schema {
            tables,
            instruments,
        })
    }

    /// The schema with user definitions (file path and TOML text, e.g. read by
    /// [`crate::ingest::load_schema`] from a `--schema` folder) replacing definitions of the
    /// same name or adding new ones, in the order given.
    pub fn with_definitions(
        mut self,
        tables: &[(PathBuf, String)],
        instruments: &[(PathBuf, String)],
    ) -> Result<Schema, SchemaError> {
        for (file, text) in tables {
            let t = TableSchema::from_toml(text, file)?;
            match self.tables.iter_mut().find(|x| x.table == t.table) {
                Some(slot) => *slot = t,
                None => self.tables.push(t),
            }
        }
        for (file, text) in instruments {
            let i = Instrument::from_toml(text, file)?;
            match self.instruments.iter_mut().find(|x| x.name == i.name) {
                Some(slot) => *slot = i,
                None => self.instruments.push(i),
            }
        }
        Ok(self)
    }

    /// The table definition with this name.
    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.iter().find(|t| t.table == name)
    }

    /// The instrument definition with this name.
    pub fn instrument(&self, name: &str) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schema_loads() {
        let s = Schema::embedded().unwrap();
        assert_eq!(s.instruments.len(), 6);
        assert!(s.table("participants").is_some());
        let bsi = s.instrument("bsi").unwrap();
        assert_eq!(bsi.items, 53);
        assert_eq!(bsi.subscales.len(), 9);
    }

    #[test]
    fn line_of_counts_newlines() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
