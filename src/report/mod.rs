//! Rendering [`Results`] into files: `results.json`, tables (CSV, Markdown, LaTeX, HTML),
//! figures (SVG and PNG) and one self-contained `report.html`.
//!
//! The report layer computes no statistics: every number comes from the one [`Results`]
//! structure, so the formats cannot disagree (see ARCHITECTURE.md). Files are written here
//! and nowhere else in the library.
pub mod covariate_mi;
pub mod format;
pub mod html;
pub mod json;
pub mod period_tables;
pub mod plots;
pub mod power;
pub mod sensitivity;
pub mod tables;

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::results::Results;

/// How to render.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Decimals of estimates, SEs, CIs and effect sizes in display tables (APA: 2).
    pub decimals: usize,
    /// Decimals of p-values (APA: 3; below that `< .001`).
    pub p_decimals: usize,
    /// Render figures at all.
    pub plots: bool,
    /// Also write PNG files beside the SVGs (the costly part).
    pub png: bool,
    /// Write report.html.
    pub html: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            decimals: 2,
            p_decimals: 3,
            plots: true,
            png: true,
            html: true,
        }
    }
}

/// A failure while writing the report, naming the file or figure.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or folder could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// results.json could not be serialized.
    #[error("cannot serialize results.json: {0}")]
    Json(#[from] serde_json::Error),
    /// A figure could not be drawn.
    #[error(transparent)]
    Plot(#[from] plots::PlotError),
}

/// What [`write_all`] wrote and how long each part took.
#[derive(Debug, Clone, Default)]
pub struct ReportSummary {
    /// Every file written, relative to the output folder.
    pub files: Vec<PathBuf>,
    /// Seconds spent on results.json and the tables.
    pub tables_seconds: f64,
    /// Seconds spent on figures (SVG and PNG).
    pub plots_seconds: f64,
    /// Seconds spent on report.html.
    pub html_seconds: f64,
}

pub(crate) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, ReportError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|source| ReportError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn create_dir(path: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `results.json`, `tables/<id>.{csv,md,tex,html}`, `plots/<id>.{svg,png}` and
/// `report.html` into `out_dir` (created when missing). Figures are rendered in parallel.
pub fn write_all(
    results: &Results,
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<ReportSummary, ReportError> {
    let mut summary = ReportSummary::default();
    let rel = |p: PathBuf| p.strip_prefix(out_dir).map(Path::to_path_buf).unwrap_or(p);
    create_dir(out_dir)?;
    let t0 = Instant::now();
    summary
        .files
        .push(rel(json::write_results(results, out_dir)?));
    let tables_dir = out_dir.join("tables");
    create_dir(&tables_dir)?;
    let tables = tables::build_all(results);
    for t in &tables {
        for (ext, text) in [
            ("csv", t.to_csv()),
            ("md", t.to_markdown(opts)),
            ("tex", t.to_latex(opts)),
            ("html", t.to_html(opts)),
        ] {
            let p = write_file(&tables_dir, &format!("{}.{ext}", t.id), text.as_bytes())?;
            summary.files.push(rel(p));
        }
    }
    summary.tables_seconds = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let mut figures = Vec::new();
    if opts.plots {
        let plots_dir = out_dir.join("plots");
        create_dir(&plots_dir)?;
        let jobs = plots::jobs(results);
        let rendered: Vec<Result<plots::Figure, plots::PlotError>> = jobs
            .par_iter()
            .map(|j| plots::render(j, &plots_dir, opts.png))
            .collect();
        for f in rendered {
            let f = f?;
            summary
                .files
                .push(PathBuf::from(format!("plots/{}.svg", f.id)));
            if opts.png {
                summary
                    .files
                    .push(PathBuf::from(format!("plots/{}.png", f.id)));
            }
            figures.push(f);
        }
    }
    summary.plots_seconds = t1.elapsed().as_secs_f64();

    let t2 = Instant::now();
    if opts.html {
        let page = html::render(results, &tables, &figures, opts);
        summary
            .files
            .push(rel(write_file(out_dir, "report.html", page.as_bytes())?));
    }
    summary.html_seconds = t2.elapsed().as_secs_f64();
    Ok(summary)
}
