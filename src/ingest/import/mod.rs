//! `herstel import`: SPSS, Stata, CSV and Parquet sources -> a trial export folder
//! (`spec/trial-export.md`) through a map file, with `import-log.csv` beside it.
//!
//! One idea per file: [`source`] (the in-memory shape every reader produces), [`sav`]
//! (SPSS .sav/.zsav), [`stata`] (.dta through the `dta` crate), [`dialect`] (CSV dialects),
//! [`map`] (the TOML map), [`bind`] (SOURCE arguments to map entries), [`values`] (one
//! cell to one export value), [`assemble`] (the join and the tables), [`problems`] (grouped
//! messages), [`log`] (import-log.csv), [`guess`] (a draft map).

pub mod assemble;
pub mod bind;
pub mod dialect;
pub mod error;
pub mod guess;
pub mod log;
pub mod map;
pub mod problems;
pub mod sav;
pub mod source;
pub mod stata;
pub mod values;

use std::path::{Path, PathBuf};

pub use assemble::{Assembled, Export};
pub use error::ImportError;
pub use map::{load_map, parse_map, LoadedMap, Map};

use crate::schema::Schema;
use crate::table::write_table_file;

/// Reads the sources and applies the map (nothing is written).
pub fn import(
    sources: &[PathBuf],
    lm: &LoadedMap,
    schema: &Schema,
) -> Result<Assembled, ImportError> {
    let bound = bind::bind_sources(sources, lm)?;
    Ok(assemble::assemble(&bound, lm, schema))
}

/// Export tables that [`write_export`] manages (removed when an earlier import wrote them
/// and this one does not).
const MANAGED: [&str; 5] = [
    "participants",
    "assessments",
    "sites",
    "admissions",
    "groups",
];

/// Writes the export folder: study.toml, participants.csv, assessments.csv, sites.csv,
/// groups.csv and admissions.csv when mapped, and import-log.csv. A folder that is not empty must hold an
/// earlier import (an import-log.csv), whose tables are then replaced.
pub fn write_export(dir: &Path, a: &Assembled) -> Result<(), ImportError> {
    let werr = |file: &Path, message: String| ImportError::Write {
        file: file.to_path_buf(),
        message,
    };
    if dir.exists() {
        let non_empty = std::fs::read_dir(dir)
            .map_err(|e| werr(dir, e.to_string()))?
            .next()
            .is_some();
        if non_empty && !dir.join("import-log.csv").is_file() {
            return Err(werr(
                dir,
                "the folder exists and is not an earlier import (no import-log.csv): choose a new --out folder".into(),
            ));
        }
        for t in MANAGED {
            for ext in ["csv", "parquet"] {
                let p = dir.join(format!("{t}.{ext}"));
                if p.is_file() {
                    std::fs::remove_file(&p).map_err(|e| werr(&p, e.to_string()))?;
                }
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| werr(dir, e.to_string()))?;
    let study = dir.join("study.toml");
    std::fs::write(&study, &a.export.study_toml).map_err(|e| werr(&study, e.to_string()))?;
    let table = |name: &str, cols: &[crate::table::OutColumn]| -> Result<(), ImportError> {
        let p = dir.join(format!("{name}.csv"));
        write_table_file(&p, cols).map_err(|e| werr(&p, e.to_string()))
    };
    table("participants", &a.export.participants)?;
    table("assessments", &a.export.assessments)?;
    if let Some(s) = &a.export.sites {
        table("sites", s)?;
    }
    if let Some(s) = &a.export.admissions {
        table("admissions", s)?;
    }
    if let Some(g) = &a.export.groups {
        table("groups", g)?;
    }
    let log = dir.join("import-log.csv");
    a.log.write(&log).map_err(|e| werr(&log, e.to_string()))?;
    Ok(())
}
