//! `study.toml`: what the study is (arms, waves, instruments, design).
//! See `docs/trial-export.md`. Keys not listed here are ignored.

use std::path::Path;

use serde::Deserialize;

use super::{line_of, parse_toml, SchemaError};

/// How participants were randomized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Design {
    /// Participants randomized one by one; only the intervention arm is treated in groups
    /// (partially nested design, Bauer, Sterba & Hallfors 2008).
    #[default]
    Individual,
    /// Whole groups randomized: every participant belongs to a group.
    Cluster,
}

/// One measurement wave.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct WaveDef {
    pub label: String,
    /// Nominal time since randomization in months.
    pub months: f64,
}

#[derive(Debug, Deserialize)]
struct RawStudy {
    name: Option<String>,
    arms: Vec<String>,
    intervention: Option<String>,
    #[serde(default)]
    design: Design,
    instruments: Vec<String>,
    waves: Vec<WaveDef>,
}

/// The parsed and checked study description.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Study {
    pub name: String,
    /// Arm labels; the first is the reference (control) arm.
    pub arms: Vec<String>,
    /// Index into `arms` of the arm that receives the group intervention.
    pub intervention: usize,
    pub design: Design,
    /// Instrument names (defined in the data schema), in study order.
    pub instruments: Vec<String>,
    /// Waves in order; the first is baseline.
    pub waves: Vec<WaveDef>,
}

impl Study {
    /// Parses and checks study TOML text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &Path) -> Result<Study, SchemaError> {
        let raw: RawStudy = parse_toml(text, file)?;
        let err = |key: &str, message: String| SchemaError::Malformed {
            file: file.to_path_buf(),
            line: key_line(text, key),
            message,
        };
        if raw.arms.len() < 2 {
            return Err(err("arms", "`arms` needs at least two arms".into()));
        }
        if let Some(dup) = first_duplicate(&raw.arms) {
            return Err(err("arms", format!("arm `{dup}` is listed twice")));
        }
        if raw.arms.iter().any(|a| a.trim().is_empty()) {
            return Err(err("arms", "an arm label is empty".into()));
        }
        let intervention = match &raw.intervention {
            Some(i) => raw.arms.iter().position(|a| a == i).ok_or_else(|| {
                err(
                    "intervention",
                    format!(
                        "intervention `{i}` is not one of the arms ({})",
                        raw.arms.join(", ")
                    ),
                )
            })?,
            None => 1,
        };
        if intervention == 0 {
            return Err(err(
                "intervention",
                "the intervention arm is the reference (first) arm; list the control arm first"
                    .into(),
            ));
        }
        if raw.waves.is_empty() {
            return Err(err(
                "waves",
                "at least one [[waves]] entry is needed".into(),
            ));
        }
        let labels: Vec<String> = raw.waves.iter().map(|w| w.label.clone()).collect();
        if let Some(dup) = first_duplicate(&labels) {
            return Err(err("label", format!("wave `{dup}` is listed twice")));
        }
        if labels.iter().any(|l| l.trim().is_empty()) {
            return Err(err("label", "a wave label is empty".into()));
        }
        if let Some(w) = raw.waves.iter().find(|w| !w.months.is_finite()) {
            return Err(err(
                "months",
                format!("wave `{}` has months = {}", w.label, w.months),
            ));
        }
        if let Some(dup) = first_duplicate(&raw.instruments) {
            return Err(err(
                "instruments",
                format!("instrument `{dup}` is listed twice"),
            ));
        }
        Ok(Study {
            name: raw.name.unwrap_or_default(),
            arms: raw.arms,
            intervention,
            design: raw.design,
            instruments: raw.instruments,
            waves: raw.waves,
        })
    }

    /// Index of an arm label.
    pub fn arm_index(&self, label: &str) -> Option<usize> {
        self.arms.iter().position(|a| a == label)
    }

    /// Index of a wave label.
    pub fn wave_index(&self, label: &str) -> Option<usize> {
        self.waves.iter().position(|w| w.label == label)
    }
}

fn first_duplicate(v: &[String]) -> Option<&str> {
    v.iter()
        .enumerate()
        .find(|(i, a)| v.get(..*i).is_some_and(|before| before.contains(a)))
        .map(|(_, a)| a.as_str())
}

/// Line of the first `key =` assignment in the text (for semantic errors).
fn key_line(text: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(line_of(text, offset));
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "x"
arms = ["CAU", "IMR"]
intervention = "IMR"
instruments = ["imrs_client"]
extra_key = 3
[[waves]]
label = "T1"
months = 0
[[waves]]
label = "T2"
months = 12
"#;

    #[test]
    fn parses_good_study() {
        let s = Study::from_toml(GOOD, Path::new("study.toml")).unwrap();
        assert_eq!(s.arms, vec!["CAU", "IMR"]);
        assert_eq!(s.intervention, 1);
        assert_eq!(s.design, Design::Individual);
        assert_eq!(s.waves.len(), 2);
        assert_eq!(s.wave_index("T2"), Some(1));
    }

    #[test]
    fn reports_line_of_syntax_error() {
        let bad = GOOD.replace("months = 12", "months = = 12");
        match Study::from_toml(&bad, Path::new("study.toml")) {
            Err(SchemaError::Malformed { line, .. }) => assert_eq!(line, Some(12)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reports_line_of_unknown_intervention() {
        let bad = GOOD.replace("intervention = \"IMR\"", "intervention = \"XYZ\"");
        match Study::from_toml(&bad, Path::new("study.toml")) {
            Err(SchemaError::Malformed { line, .. }) => assert_eq!(line, Some(4)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
