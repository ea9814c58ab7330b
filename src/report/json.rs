//! `results.json`: the [`Results`] structure, pretty-printed.
use std::path::{Path, PathBuf};

use crate::report::{write_file, ReportError};
use crate::results::Results;

/// The results as pretty JSON (non-finite numbers become `null`).
pub fn to_json(results: &Results) -> Result<String, ReportError> {
    Ok(serde_json::to_string_pretty(results)?)
}

/// Writes `dir/results.json`; returns its path.
pub fn write_results(results: &Results, dir: &Path) -> Result<PathBuf, ReportError> {
    let text = to_json(results)?;
    write_file(dir, "results.json", text.as_bytes())
}
