//! The validation report: every problem found in an export, located by table, row, column
//! and value, plus summary counts.

use std::collections::HashMap;
use std::fmt;

/// Errors stop the run (exit code 1); warnings are reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// The class of a problem (`docs/trial-export.md`, "Bad input").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    // errors
    MissingTable,
    MalformedTable,
    MissingColumn,
    MissingValue,
    DuplicateKey,
    UnknownReference,
    UnknownArm,
    UnknownWave,
    UnknownInstrument,
    NotANumber,
    OutOfRange,
    BadDate,
    BadFlag,
    DischargeBeforeAdmission,
    OverlappingAdmissions,
    GroupOnControl,
    MissingGroup,
    MalformedStudy,
    // warnings
    FarFromNominal,
    ItemMissingness,
    NoFollowUp,
    GroupSiteMismatch,
    /// A check or table left out because the export does not have what it needs (optional
    /// column or table absent).
    NotCollected,
}

impl ProblemKind {
    /// Short label used in printed reports.
    pub fn label(self) -> &'static str {
        match self {
            ProblemKind::MissingTable => "missing table",
            ProblemKind::MalformedTable => "malformed table",
            ProblemKind::MissingColumn => "missing column",
            ProblemKind::MissingValue => "missing value",
            ProblemKind::DuplicateKey => "duplicate key",
            ProblemKind::UnknownReference => "unknown reference",
            ProblemKind::UnknownArm => "unknown arm",
            ProblemKind::UnknownWave => "unknown wave",
            ProblemKind::UnknownInstrument => "unknown instrument",
            ProblemKind::NotANumber => "not a number",
            ProblemKind::OutOfRange => "out of range",
            ProblemKind::BadDate => "unparseable date",
            ProblemKind::BadFlag => "not 0/1",
            ProblemKind::DischargeBeforeAdmission => "discharge before admission",
            ProblemKind::OverlappingAdmissions => "overlapping admissions",
            ProblemKind::GroupOnControl => "group on a control participant",
            ProblemKind::MissingGroup => "participant without a group",
            ProblemKind::MalformedStudy => "malformed study.toml",
            ProblemKind::FarFromNominal => "assessment far from its nominal month",
            ProblemKind::ItemMissingness => "item missingness above threshold",
            ProblemKind::NoFollowUp => "no follow-up",
            ProblemKind::GroupSiteMismatch => "group of another site",
            ProblemKind::NotCollected => "not collected",
        }
    }
}

/// One located problem.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub kind: ProblemKind,
    /// Table name (`participants`, `study.toml` for the study file).
    pub table: String,
    /// 1-based file row, header = 1 (for study.toml: the line).
    pub row: Option<usize>,
    pub column: Option<String>,
    /// The offending value as found.
    pub value: Option<String>,
    /// What was expected instead.
    pub expected: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {}: {}", self.kind.label(), self.table)?;
        if let Some(r) = self.row {
            if self.table == "study.toml" {
                write!(f, " line {r}")?;
            } else {
                write!(f, " row {r}")?;
            }
        }
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        if let Some(v) = &self.value {
            write!(f, ": value \"{v}\"")?;
        }
        write!(f, "; expected {}", self.expected)
    }
}

/// How many problems of one kind in one table column are kept in full; the rest are counted.
pub const MAX_PER_COLUMN_KIND: usize = 200;

/// Problems beyond [`MAX_PER_COLUMN_KIND`] for one (kind, table, column), counted only.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Suppressed {
    pub severity: Severity,
    pub kind: ProblemKind,
    pub table: String,
    pub column: Option<String>,
    pub count: usize,
}

/// Counts shown after the problems.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// (arm, site, participants), arms in study order, sites in file order.
    pub participants_by_arm_site: Vec<(String, String, usize)>,
    /// (arm, participants).
    pub participants_by_arm: Vec<(String, usize)>,
    /// (wave, assessment rows, rows with at least one answered item).
    pub assessments_by_wave: Vec<(String, usize, usize)>,
    /// Admissions starting before the day of randomization.
    pub admissions_before: usize,
    /// Admissions starting on or after the day of randomization.
    pub admissions_after: usize,
    pub sites: usize,
    pub groups: usize,
    pub participants: usize,
    /// (instrument, pre-scored totals, pre-scored subscale values) for each instrument with
    /// pre-scored columns in assessments.csv (`<instrument>_total`, `<instrument>_<subscale>`).
    pub prescored: Vec<(String, usize, usize)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "summary: {} participants, {} sites, {} groups",
            self.participants, self.sites, self.groups
        )?;
        for (arm, n) in &self.participants_by_arm {
            writeln!(f, "  arm {arm}: {n} participants")?;
        }
        for (arm, site, n) in &self.participants_by_arm_site {
            writeln!(f, "  arm {arm}, site {site}: {n}")?;
        }
        for (wave, rows, answered) in &self.assessments_by_wave {
            writeln!(
                f,
                "  wave {wave}: {rows} assessment rows, {answered} with answered items or pre-scored scores"
            )?;
        }
        for (inst, totals, subscales) in &self.prescored {
            writeln!(
                f,
                "  {inst}: {totals} pre-scored totals and {subscales} pre-scored subscale scores (used where no item is answered)"
            )?;
        }
        write!(
            f,
            "  admissions: {} before randomization, {} after",
            self.admissions_before, self.admissions_after
        )
    }
}

/// Everything `herstel validate` reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ValidationReport {
    pub problems: Vec<Problem>,
    pub suppressed: Vec<Suppressed>,
    pub summary: Summary,
    #[serde(skip)]
    counts: HashMap<(ProblemKind, String, Option<String>), usize>,
}

impl ValidationReport {
    /// Records a problem (kept in full up to [`MAX_PER_COLUMN_KIND`] per kind and column).
    pub fn push(&mut self, p: Problem) {
        let key = (p.kind, p.table.clone(), p.column.clone());
        let n = self.counts.entry(key).or_insert(0);
        *n += 1;
        if *n <= MAX_PER_COLUMN_KIND {
            self.problems.push(p);
            return;
        }
        match self
            .suppressed
            .iter_mut()
            .find(|s| s.kind == p.kind && s.table == p.table && s.column == p.column)
        {
            Some(s) => s.count += 1,
            None => self.suppressed.push(Suppressed {
                severity: p.severity,
                kind: p.kind,
                table: p.table,
                column: p.column,
                count: 1,
            }),
        }
    }

    /// Number of errors, suppressed ones included.
    pub fn n_errors(&self) -> usize {
        self.count(Severity::Error)
    }

    /// Number of warnings, suppressed ones included.
    pub fn n_warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, sev: Severity) -> usize {
        self.problems.iter().filter(|p| p.severity == sev).count()
            + self
                .suppressed
                .iter()
                .filter(|s| s.severity == sev)
                .map(|s| s.count)
                .sum::<usize>()
    }

    pub fn has_errors(&self) -> bool {
        self.n_errors() > 0
    }

    /// Errors in the order found.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    /// Warnings in the order found.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }
}

impl fmt::Display for ValidationReport {
    /// Errors, then warnings, then the summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for sev in [Severity::Error, Severity::Warning] {
            for p in self.problems.iter().filter(|p| p.severity == sev) {
                writeln!(f, "{p}")?;
            }
            for s in self.suppressed.iter().filter(|s| s.severity == sev) {
                writeln!(
                    f,
                    "{}: {}: {}{}: {} more not listed",
                    if sev == Severity::Error {
                        "error"
                    } else {
                        "warning"
                    },
                    s.kind.label(),
                    s.table,
                    s.column
                        .as_ref()
                        .map(|c| format!(", column {c}"))
                        .unwrap_or_default(),
                    s.count
                )?;
            }
        }
        writeln!(
            f,
            "{} errors, {} warnings",
            self.n_errors(),
            self.n_warnings()
        )?;
        write!(f, "{}", self.summary)
    }
}
