//! The data schema: export tables and questionnaire instruments as TOML data, plus the
//! study description (`study.toml`).
//!
//! Defaults are the files under `data-schema/` embedded with `include_str!`; a user directory
//! (`--schema DIR`, with `tables/*.toml` and `instruments/*.toml`) replaces a default of the
//! same name or adds a new one. Adding an instrument is adding a file, not code.

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

fn read_text(file: &Path) -> Result<String, SchemaError> {
    std::fs::read_to_string(file).map_err(|e| SchemaError::Io {
        file: file.to_path_buf(),
        message: e.to_string(),
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

    /// The embedded defaults, with `dir/tables/*.toml` and `dir/instruments/*.toml` (when
    /// `dir` is given) replacing definitions of the same name or adding new ones.
    pub fn load(dir: Option<&Path>) -> Result<Schema, SchemaError> {
        let mut schema = Schema::embedded()?;
        let Some(dir) = dir else {
            return Ok(schema);
        };
        if !dir.is_dir() {
            return Err(SchemaError::Io {
                file: dir.to_path_buf(),
                message: "not a directory".into(),
            });
        }
        for file in toml_files(&dir.join("tables"))? {
            let t = TableSchema::from_toml(&read_text(&file)?, &file)?;
            match schema.tables.iter_mut().find(|x| x.table == t.table) {
                Some(slot) => *slot = t,
                None => schema.tables.push(t),
            }
        }
        for file in toml_files(&dir.join("instruments"))? {
            let i = Instrument::from_toml(&read_text(&file)?, &file)?;
            match schema.instruments.iter_mut().find(|x| x.name == i.name) {
                Some(slot) => *slot = i,
                None => schema.instruments.push(i),
            }
        }
        Ok(schema)
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

fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, SchemaError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| SchemaError::Io {
        file: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
        .collect();
    files.sort();
    Ok(files)
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
