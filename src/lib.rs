//! herstel: analysis pipeline for randomized controlled trials of Illness Management and
//! Recovery (IMR; "Eigen Regie en Herstel").
//!
//! Data flows one way (see `README.md`):
//! export folder --ingest--> [`ingest::Trial`] --score--> scored long table
//! --analysis--> model fits --> results --report--> results.json, tables, plots, report.html.
//! Files are read in `ingest`/`table` and written in `report` (and by the `commands` that
//! drive them) and nowhere else.

pub mod admissions;
pub mod analysis;
pub mod cli;
pub mod commands;
pub mod emmeans;
pub mod formula;
pub mod frame;
pub mod glm;
pub mod ingest;
pub mod lmm;
pub mod mediation;
pub mod meta;
pub mod mmrm;
pub mod nonparam;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod results;
pub mod schema;
pub mod scoring;
pub mod simulate;
pub mod sites;
pub mod stats;
pub mod table;
pub mod trial_data;
