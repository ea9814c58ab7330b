//! The `--schema DIR` folder read from disk: the one place the data schema touches the file
//! system ([`crate::schema`] only parses).
use std::path::{Path, PathBuf};

use crate::schema::{Schema, SchemaError};

/// The embedded schema with `dir/tables/*.toml` and `dir/instruments/*.toml` (when `dir` is
/// given, in file-name order) replacing definitions of the same name or adding new ones
/// ([`Schema::with_definitions`]).
pub fn load_schema(dir: Option<&Path>) -> Result<Schema, SchemaError> {
    let schema = Schema::embedded()?;
    let Some(dir) = dir else {
        return Ok(schema);
    };
    if !dir.is_dir() {
        return Err(SchemaError::Io {
            file: dir.to_path_buf(),
            message: "not a directory".into(),
        });
    }
    let tables = read_toml_files(&dir.join("tables"))?;
    let instruments = read_toml_files(&dir.join("instruments"))?;
    schema.with_definitions(&tables, &instruments)
}

/// Path and text of every `*.toml` file of `dir`, sorted by name (none when `dir` is absent).
fn read_toml_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, SchemaError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let io = |file: &Path, e: std::io::Error| SchemaError::Io {
        file: file.to_path_buf(),
        message: e.to_string(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).map_err(|e| io(&f, e))?;
            Ok((f, text))
        })
        .collect()
}
