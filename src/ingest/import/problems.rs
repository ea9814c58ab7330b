//! Problems found while mapping the data, grouped: the same problem in many rows of one
//! column is one message with its count, the first rows and an example value, and says what
//! to do (`240 values of trial.csv column randdatum look like DD-MM-YYYY, e.g. row 2
//! "19-07-2013": set format = "%d-%m-%Y" for the field in the map or write YYYY-MM-DD`).

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

/// Errors stop the import before anything is written; warnings are reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// One grouped problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemGroup {
    pub level: Level,
    pub source: String,
    pub column: Option<String>,
    /// What is wrong, e.g. `look like DD-MM-YYYY`.
    pub what: String,
    /// What to do next.
    pub hint: String,
    pub count: usize,
    /// First rows (source rows, see [`super::log`]) and their values, as printed.
    pub examples: Vec<(usize, String)>,
    /// Every occurrence (row, value), for `--json`.
    pub occurrences: Vec<(usize, String)>,
}

impl fmt::Display for ProblemGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lvl = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        let col = self
            .column
            .as_deref()
            .map(|c| format!(" column {c}"))
            .unwrap_or_default();
        let what = if self.count > 1 {
            format!(
                "{} values of {}{col} {}",
                self.count, self.source, self.what
            )
        } else if self.examples.is_empty() {
            format!("{}{col}: {}", self.source, self.what)
        } else {
            format!("a value of {}{col} {}", self.source, self.what)
        };
        write!(f, "{lvl}: {what}")?;
        let ex: Vec<String> = self
            .examples
            .iter()
            .map(|(r, v)| format!("row {r} \"{v}\""))
            .collect();
        if !ex.is_empty() {
            write!(f, ", e.g. {}", ex.join(", "))?;
        }
        if !self.hint.is_empty() {
            write!(f, ": {}", self.hint)?;
        }
        Ok(())
    }
}

/// Collects problems, grouping by level, source, column, what and hint.
#[derive(Debug, Default)]
pub struct Problems {
    groups: Vec<ProblemGroup>,
    index: HashMap<(Level, String, Option<String>, String), usize>,
}

/// How many example rows a message shows.
const EXAMPLES: usize = 3;

impl Problems {
    /// Adds one occurrence (`row` and `value` may be absent for whole-column problems).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        level: Level,
        source: &str,
        column: Option<&str>,
        row: Option<usize>,
        value: Option<&str>,
        what: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let what = what.into();
        let key = (
            level,
            source.to_string(),
            column.map(str::to_string),
            what.clone(),
        );
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.groups.push(ProblemGroup {
                    level,
                    source: source.to_string(),
                    column: column.map(str::to_string),
                    what,
                    hint: hint.into(),
                    count: 0,
                    examples: Vec::new(),
                    occurrences: Vec::new(),
                });
                self.index.insert(key, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        if let Some(g) = self.groups.get_mut(i) {
            g.count += 1;
            if let Some(r) = row {
                let v = value.unwrap_or("").to_string();
                if g.examples.len() < EXAMPLES {
                    g.examples.push((r, v.clone()));
                }
                g.occurrences.push((r, v));
            }
        }
    }

    pub fn error(
        &mut self,
        source: &str,
        column: Option<&str>,
        row: Option<usize>,
        value: Option<&str>,
        what: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.add(Level::Error, source, column, row, value, what, hint);
    }

    pub fn warning(
        &mut self,
        source: &str,
        column: Option<&str>,
        row: Option<usize>,
        value: Option<&str>,
        what: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.add(Level::Warning, source, column, row, value, what, hint);
    }

    pub fn has_errors(&self) -> bool {
        self.groups.iter().any(|g| g.level == Level::Error)
    }

    /// Errors first, then warnings, each in the order found.
    pub fn groups(&self) -> Vec<&ProblemGroup> {
        let mut v: Vec<&ProblemGroup> = self.groups.iter().collect();
        v.sort_by_key(|g| g.level);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_rows_become_one_message() {
        let mut p = Problems::default();
        for r in 2..242 {
            p.error(
                "trial.csv",
                Some("randdatum"),
                Some(r),
                Some("19-07-2013"),
                "look like DD-MM-YYYY",
                "set format = \"%d-%m-%Y\" for the field in the map or write YYYY-MM-DD",
            );
        }
        p.warning("trial.csv", Some("x"), None, None, "is not used", "");
        assert!(p.has_errors());
        let g = p.groups();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].count, 240);
        assert_eq!(g[0].examples.len(), 3);
        assert_eq!(g[0].occurrences.len(), 240);
        assert_eq!(g[0].occurrences[239], (241, "19-07-2013".to_string()));
        let text = g[0].to_string();
        assert!(
            text.starts_with("error: 240 values of trial.csv column randdatum look like DD-MM-YYYY, e.g. row 2 \"19-07-2013\", row 3"),
            "{text}"
        );
        assert!(text.ends_with("or write YYYY-MM-DD"), "{text}");
        assert_eq!(g[1].to_string(), "warning: trial.csv column x: is not used");
    }
}
