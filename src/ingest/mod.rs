//! Ingest: a trial export folder -> a typed, validated [`Trial`] plus a [`ValidationReport`].
//!
//! Checks follow `docs/trial-export.md` ("Bad input"): generic checks driven by the table
//! schema (required columns, types, ranges, keys, references), then the trial's own rules (arms
//! and waves of study.toml, item ranges, admissions, groups by design) and warnings. Every input
//! row ends in the [`Trial`] or in [`Trial::exclusions`] with its reason.

mod build;
pub mod date;
pub mod import;
pub mod pool;
pub mod report;
mod schema_dir;

use std::collections::HashMap;
use std::path::Path;

pub use date::Date;
pub use report::{Problem, ProblemKind, Severity, Summary, Suppressed, ValidationReport};
pub use schema_dir::load_schema;

use crate::schema::{Instrument, Schema, Study};

/// A participant: index into [`Trial::participants`] (file order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ParticipantId(pub u32);

/// A site: index into [`Trial::sites`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct SiteId(pub u32);

/// A training group: index into [`Trial::groups`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct GroupId(pub u32);

/// A wave: index into `study.waves` (0 = baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Wave(pub u16);

/// An arm: index into `study.arms` (0 = reference arm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Arm(pub u16);

macro_rules! index_newtype {
    ($t:ty) => {
        impl $t {
            /// The position in its table or list.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}
index_newtype!(ParticipantId);
index_newtype!(SiteId);
index_newtype!(GroupId);
index_newtype!(Wave);
index_newtype!(Arm);

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub id: String,
    pub name: Option<String>,
    /// 1-based file row.
    pub row: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub site: Option<SiteId>,
    /// IMR Fidelity Scale item mean.
    pub fidelity: Option<f64>,
    /// 1-based file row in groups; `None` for a group known only from participants.group_id.
    pub row: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    pub id: String,
    pub site: SiteId,
    pub team: Option<String>,
    pub arm: Arm,
    pub group: Option<GroupId>,
    /// `None` when the export has no randomized_on column (times then come from the waves'
    /// nominal months).
    pub randomized_on: Option<Date>,
    pub age: Option<i64>,
    pub sex: Option<String>,
    pub diagnosis: Option<String>,
    pub sessions_attended: Option<i64>,
    /// 1-based file row.
    pub row: usize,
}

/// One assessment row (participant x wave); its items are in [`Trial::items`].
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub participant: ParticipantId,
    pub wave: Wave,
    pub assessed_on: Option<Date>,
    /// 1-based file row.
    pub row: usize,
}

/// Item values of one instrument, one row per assessment (aligned with
/// [`Trial::assessments`]). Missing items and "not known" codes are `NaN`; reverse keying is
/// not applied (scoring does that).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemMatrix {
    n_items: usize,
    values: Vec<f64>,
}

impl ItemMatrix {
    pub(crate) fn new(n_rows: usize, n_items: usize) -> Self {
        ItemMatrix {
            n_items,
            values: vec![f64::NAN; n_rows * n_items],
        }
    }

    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Number of assessment rows.
    pub fn n_rows(&self) -> usize {
        self.values.len().checked_div(self.n_items).unwrap_or(0)
    }

    /// All items of one assessment (`NaN` = missing); empty when out of range.
    pub fn row(&self, assessment: usize) -> &[f64] {
        let start = assessment * self.n_items;
        self.values.get(start..start + self.n_items).unwrap_or(&[])
    }

    /// Item `item` (0-based) of one assessment; `None` when missing.
    pub fn get(&self, assessment: usize, item: usize) -> Option<f64> {
        self.row(assessment)
            .get(item)
            .copied()
            .filter(|v| !v.is_nan())
    }

    pub(crate) fn set(&mut self, assessment: usize, item: usize, v: f64) {
        if let Some(slot) = self.values.get_mut(assessment * self.n_items + item) {
            *slot = v;
        }
    }

    /// Keeps only the listed rows, in that order.
    pub(crate) fn select_rows(&self, rows: &[usize]) -> ItemMatrix {
        let mut values = Vec::with_capacity(rows.len() * self.n_items);
        for &r in rows {
            values.extend_from_slice(self.row(r));
        }
        ItemMatrix {
            n_items: self.n_items,
            values,
        }
    }
}

/// Pre-scored totals and subscales of one instrument: the assessments.csv columns
/// `<instrument>_total` and `<instrument>_<subscale>` (`docs/trial-export.md`, "Pre-scored
/// totals"), rows aligned with [`Trial::assessments`], `NaN` = missing. Scoring uses them where
/// the row has no answered item of the instrument.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PreScored {
    /// `None`: the export has no `<instrument>_total` column.
    pub total: Option<Vec<f64>>,
    /// Aligned with the instrument's subscales; `None`: no such column.
    pub subscales: Vec<Option<Vec<f64>>>,
}

impl PreScored {
    /// True when the export has no pre-scored column of the instrument.
    pub fn is_empty(&self) -> bool {
        self.total.is_none() && self.subscales.iter().all(Option::is_none)
    }

    /// The pre-scored total of one assessment.
    pub fn total(&self, assessment: usize) -> Option<f64> {
        value_at(self.total.as_deref(), assessment)
    }

    /// The pre-scored subscale `s` (index into the instrument's subscales) of one assessment.
    pub fn subscale(&self, s: usize, assessment: usize) -> Option<f64> {
        value_at(self.subscales.get(s).and_then(|v| v.as_deref()), assessment)
    }

    /// True when the assessment has any pre-scored value of the instrument.
    pub fn any(&self, assessment: usize) -> bool {
        self.total(assessment).is_some()
            || (0..self.subscales.len()).any(|s| self.subscale(s, assessment).is_some())
    }

    /// Keeps only the listed rows, in that order.
    pub(crate) fn select_rows(&self, rows: &[usize]) -> PreScored {
        let pick = |v: &Option<Vec<f64>>| {
            v.as_ref().map(|v| {
                rows.iter()
                    .map(|&r| v.get(r).copied().unwrap_or(f64::NAN))
                    .collect()
            })
        };
        PreScored {
            total: pick(&self.total),
            subscales: self.subscales.iter().map(pick).collect(),
        }
    }
}

fn value_at(v: Option<&[f64]>, i: usize) -> Option<f64> {
    v.and_then(|v| v.get(i)).copied().filter(|x| !x.is_nan())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub participant: ParticipantId,
    pub admitted_on: Date,
    /// `None`: still admitted at export.
    pub discharged_on: Option<Date>,
    pub involuntary: bool,
    /// 1-based file row.
    pub row: usize,
}

/// A column of a table that the schema does not define, carried along as text (usable as a
/// covariate), aligned with the table's records in the [`Trial`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraColumn {
    pub name: String,
    pub values: Vec<Option<String>>,
}

/// An input row that is not part of the [`Trial`], and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Exclusion {
    pub table: String,
    /// 1-based file row.
    pub row: usize,
    pub reason: String,
}

/// A validated trial export.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub study: Study,
    /// The study's instruments, in study.toml order.
    pub instruments: Vec<Instrument>,
    pub sites: Vec<Site>,
    pub groups: Vec<Group>,
    pub participants: Vec<Participant>,
    pub assessments: Vec<Assessment>,
    /// One matrix per instrument (aligned with `instruments`), rows aligned with `assessments`.
    pub items: Vec<ItemMatrix>,
    /// Pre-scored totals and subscales per instrument (aligned with `instruments`; empty
    /// entries when the export has none), rows aligned with `assessments`.
    pub prescored: Vec<PreScored>,
    pub admissions: Vec<Admission>,
    /// False when the export has no admissions table (admissions not collected), true when it
    /// has one, even without rows (nobody admitted).
    pub admissions_collected: bool,
    /// Extra participants columns, aligned with `participants`.
    pub participant_extra: Vec<ExtraColumn>,
    /// Extra sites columns (e.g. site fidelity), aligned with `sites`.
    pub site_extra: Vec<ExtraColumn>,
    /// Rows left out, with reasons.
    pub exclusions: Vec<Exclusion>,
}

impl Trial {
    pub fn participant(&self, id: ParticipantId) -> Option<&Participant> {
        self.participants.get(id.index())
    }

    pub fn arm_label(&self, arm: Arm) -> &str {
        self.study
            .arms
            .get(arm.index())
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn wave_label(&self, wave: Wave) -> &str {
        self.study
            .waves
            .get(wave.index())
            .map(|w| w.label.as_str())
            .unwrap_or("")
    }

    /// Nominal months of a wave.
    pub fn wave_months(&self, wave: Wave) -> f64 {
        self.study
            .waves
            .get(wave.index())
            .map(|w| w.months)
            .unwrap_or(f64::NAN)
    }

    pub fn site_label(&self, site: SiteId) -> &str {
        self.sites
            .get(site.index())
            .map(|s| s.id.as_str())
            .unwrap_or("")
    }

    /// True when every participant has a randomization date.
    pub fn has_randomization_dates(&self) -> bool {
        self.participants.iter().all(|p| p.randomized_on.is_some())
    }

    /// Position of an instrument in [`Trial::instruments`] / [`Trial::items`].
    pub fn instrument_index(&self, name: &str) -> Option<usize> {
        self.instruments.iter().position(|i| i.name == name)
    }

    /// True when assessment `a` has an answered item or a pre-scored value of any
    /// instrument (else it is a missed wave).
    pub fn assessment_has_data(&self, a: usize) -> bool {
        self.items
            .iter()
            .any(|m| m.row(a).iter().any(|v| !v.is_nan()))
            || self.prescored.iter().any(|p| p.any(a))
    }

    /// Assessment index for each (participant, wave) present.
    pub fn assessment_lookup(&self) -> HashMap<(ParticipantId, Wave), usize> {
        self.assessments
            .iter()
            .enumerate()
            .map(|(i, a)| ((a.participant, a.wave), i))
            .collect()
    }
}

/// Options of the checks that produce warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateOptions {
    /// An assessment more than this many months from its wave's nominal month (counted from
    /// randomization) is reported as a warning.
    pub nominal_tolerance_months: f64,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            nominal_tolerance_months: 3.0,
        }
    }
}

/// The result of reading an export: the report always, the trial when the study and every
/// required table and column could be read (rows with errors are then in its exclusions).
#[derive(Debug, Clone)]
pub struct Ingested {
    pub trial: Option<Trial>,
    pub report: ValidationReport,
    /// Every file read (study.toml and the tables), sorted by path, with the digest of the
    /// bytes that were parsed.
    pub inputs: Vec<(std::path::PathBuf, crate::table::FileDigest)>,
}

/// Reads and validates the export folder `dir` (study.toml plus the schema's tables).
pub fn read_export(dir: &Path, schema: &Schema, options: &ValidateOptions) -> Ingested {
    build::read_export(dir, schema, options)
}

/// Writes the named files of an export (e.g. [`crate::simulate::SimulatedTrial::files`]) into
/// `dir`, created if needed; the error names the path that failed.
pub fn write_export_files<S: AsRef<str>>(
    dir: &Path,
    files: &[(&str, S)],
) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    std::fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), e))?;
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text.as_ref()).map_err(|e| (path, e))?;
    }
    Ok(())
}

/// Reads an export and returns the trial only when there are no errors.
// The report is the error on purpose (every problem, located); it is built once per run.
#[allow(clippy::result_large_err)]
pub fn load_trial(
    dir: &Path,
    schema: &Schema,
    options: &ValidateOptions,
) -> Result<(Trial, ValidationReport), ValidationReport> {
    load_export(dir, schema, options).map(|l| (l.trial, l.report))
}

/// A trial read without errors, with its validation report and the files it was read from.
#[derive(Debug)]
pub struct LoadedExport {
    pub trial: Trial,
    pub report: ValidationReport,
    /// See [`Ingested::inputs`].
    pub inputs: Vec<(std::path::PathBuf, crate::table::FileDigest)>,
}

/// As [`load_trial`], keeping the digests of the files read (for a run's manifest).
#[allow(clippy::result_large_err)]
pub fn load_export(
    dir: &Path,
    schema: &Schema,
    options: &ValidateOptions,
) -> Result<LoadedExport, ValidationReport> {
    let ing = read_export(dir, schema, options);
    match ing.trial {
        Some(trial) if !ing.report.has_errors() => Ok(LoadedExport {
            trial,
            report: ing.report,
            inputs: ing.inputs,
        }),
        _ => Err(ing.report),
    }
}
