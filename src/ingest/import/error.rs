//! Errors of `herstel import` that stop it before any data is mapped: a file that cannot be
//! read, a map that is not valid. Problems in the data themselves are collected as
//! [`super::problems::Problems`] and reported grouped.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a source herstel can read (expected .sav, .zsav, .dta, .csv, .tsv, .txt or .parquet)", file.display())]
    UnsupportedSource { file: PathBuf },
    /// The file is damaged or not of its format; `message` says where.
    #[error("{}: {message}", file.display())]
    Malformed { file: PathBuf, message: String },
    /// The map is not valid TOML, has an unknown key, or contradicts itself.
    #[error("{}{}: {message}", file.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Map {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A SOURCE argument or a `[[sources]] file` of the map that has no partner.
    #[error("{message}")]
    Sources { message: String },
    #[error("{}: cannot write: {message}", file.display())]
    Write { file: PathBuf, message: String },
}
