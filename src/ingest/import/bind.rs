//! Pairs the SOURCE arguments with the map's `[[sources]]` entries and reads them; decides
//! each source's role (participant rows, one wave, long rows, admissions).

use std::path::PathBuf;

use super::error::ImportError;
use super::map::{LoadedMap, SourceMap};
use super::source::{read_source, SourceTable};

/// What the rows of a source are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// One row per participant; waves in the column names (`{wave}`).
    Wide,
    /// One row per participant for one wave (index into the map's waves).
    Wave(usize),
    /// One row per participant x wave; the wave codes in column `wave_col`.
    Long { wave_col: usize },
    /// One row per admission.
    Admissions,
}

/// A source read and placed.
#[derive(Debug, Clone)]
pub struct BoundSource {
    pub table: SourceTable,
    pub spec: SourceMap,
    pub role: Role,
    /// File name, for messages and the log.
    pub name: String,
}

fn base_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads every SOURCE and pairs it with its `[[sources]]` entry: by file name, or, with one
/// source and one entry without `file` (or no entry), directly.
pub fn bind_sources(paths: &[PathBuf], lm: &LoadedMap) -> Result<Vec<BoundSource>, ImportError> {
    let specs = &lm.map.sources;
    let mut pairs: Vec<(PathBuf, SourceMap)> = Vec::new();
    let mut taken = vec![false; specs.len()];
    for p in paths {
        let name = base_name(p);
        let hit = specs.iter().enumerate().position(|(i, s)| {
            !taken[i]
                && s.file
                    .as_deref()
                    .is_some_and(|f| base_name(std::path::Path::new(f)).eq_ignore_ascii_case(&name))
        });
        let hit = hit.or_else(|| {
            (paths.len() == 1 && specs.len() == 1 && specs[0].file.is_none()).then_some(0)
        });
        match hit {
            Some(i) => {
                taken[i] = true;
                pairs.push((p.clone(), specs[i].clone()));
            }
            None if specs.is_empty() && paths.len() == 1 => {
                pairs.push((p.clone(), SourceMap::default()))
            }
            None => {
                return Err(ImportError::Sources {
                    message: format!(
                        "source {name} is not in the map: add a [[sources]] entry with file = \"{name}\" to {}",
                        lm.file.display()
                    ),
                })
            }
        }
    }
    if let Some(i) = taken.iter().position(|t| !t) {
        let f = specs[i].file.clone().unwrap_or_default();
        return Err(ImportError::Map {
            file: lm.file.clone(),
            line: lm.line_of_value(&f),
            message: format!(
                "[[sources]] file \"{f}\" was not given on the command line: add it as a SOURCE argument"
            ),
        });
    }
    let mut out = Vec::with_capacity(pairs.len());
    for (p, spec) in pairs {
        let table = read_source(&p, &spec.dialect())?;
        let name = base_name(&p);
        let role = if spec.table.as_deref() == Some("admissions")
            || lm.map.admissions.as_ref().is_some_and(|a| {
                base_name(std::path::Path::new(&a.file)).eq_ignore_ascii_case(&name)
            }) {
            Role::Admissions
        } else if let Some(w) = &spec.wave {
            Role::Wave(lm.map.waves.iter().position(|x| &x.label == w).unwrap_or(0))
        } else if let Some(wc) = &spec.wave_column {
            let wave_col = table.column_index(wc).ok_or_else(|| ImportError::Map {
                file: lm.file.clone(),
                line: lm.line_of_value(wc),
                message: format!(
                    "wave_column \"{wc}\" is not a column of {name}{}",
                    closest_hint(wc, table.columns.iter().map(|c| c.name.as_str()))
                ),
            })?;
            Role::Long { wave_col }
        } else {
            Role::Wide
        };
        out.push(BoundSource {
            table,
            spec,
            role,
            name,
        });
    }
    Ok(out)
}

/// Levenshtein distance on lower-cased text.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `; closest: x, y` (up to three names within a third of the length), or nothing.
pub fn closest_hint<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let mut scored: Vec<(usize, &str)> = candidates.map(|c| (distance(name, c), c)).collect();
    scored.sort();
    let limit = (name.chars().count() / 3).max(2);
    let close: Vec<&str> = scored
        .iter()
        .filter(|(d, _)| *d <= limit)
        .take(3)
        .map(|(_, c)| *c)
        .collect();
    if close.is_empty() {
        String::new()
    } else {
        format!("; closest: {}", close.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_names() {
        assert_eq!(distance("conditie", "Conditie"), 0);
        assert_eq!(distance("groep", "groepen"), 2);
        let h = closest_hint(
            "imrs1_t0",
            ["imrs1_T0", "imrs10_T0", "leeftijd"].into_iter(),
        );
        assert_eq!(h, "; closest: imrs1_T0, imrs10_T0");
        assert_eq!(closest_hint("zzzzzz", ["a", "b"].into_iter()), "");
    }

    #[test]
    fn unknown_sources_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        std::fs::write(&a, "id,arm\n1,2\n").unwrap();
        let text = "[study]\narms=[\"A\",\"B\"]\n[[waves]]\nlabel=\"T0\"\nmonths=0\n[participants]\nid=\"id\"\narm=\"arm\"\n[[sources]]\nfile=\"b.csv\"\n";
        let lm = super::super::map::parse_map(text, std::path::Path::new("m.toml")).unwrap();
        let e = bind_sources(std::slice::from_ref(&a), &lm)
            .unwrap_err()
            .to_string();
        assert!(e.contains("source a.csv is not in the map"), "{e}");
        let text = text.replace("b.csv", "a.csv");
        let lm = super::super::map::parse_map(&text, std::path::Path::new("m.toml")).unwrap();
        let b = bind_sources(&[a], &lm).unwrap();
        assert_eq!(b[0].role, Role::Wide);
        assert_eq!(b[0].table.n_rows, 1);
    }
}
