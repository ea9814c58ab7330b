//! herstel: analysis pipeline for randomized controlled trials of Illness Management and
//! Recovery (IMR; "Eigen Regie en Herstel").
//!
//! # The stages
//!
//! Data flow one way; `ARCHITECTURE.md` draws the layers and says where new code goes.
//!
//! | stage | function | in -> out |
//! |---|---|---|
//! | read and validate | [`ingest::load_trial`] | export folder (`docs/trial-export.md`) -> [`ingest::Trial`] + validation report |
//! | score | [`scoring::score`] | trial + instrument definitions (`data-schema/`) -> [`scoring::Scored`] (participant x wave x scale) |
//! | analyse | [`pipeline::analyse`] = [`pipeline::plan`] -> [`pipeline::execute`] -> [`pipeline::Executed::collect`] | trial + scores + [`pipeline::AnalysisSpec`] -> [`results::Results`] |
//! | report | [`report::write_all`] | results -> `results.json`, tables, plots, `report.html` |
//! | simulate | [`simulate::simulate`] | configuration + seed -> an export folder and its truth |
//!
//! One model at a time: [`lmm::fit_formula`] (lme4's `lmer`), [`mmrm::fit_model`] (nlme's `gls`
//! and `lme` with residual structures), [`glm`] (`glm`, `MASS::glm.nb`), [`meta`]
//! (`metafor::rma`), on a [`frame::Frame`] and an lme4 formula ([`formula::Formula`]).
//! Files are read in `ingest` and `table` and written in `report` (and by the `commands` that
//! drive them) and nowhere else; progress of long steps goes to a [`progress::ProgressSink`].

pub mod admissions;
pub mod analysis;
pub mod cli;
pub mod commands;
pub mod emmeans;
pub mod formula;
pub mod frame;
pub mod glm;
pub mod glmm;
pub mod impute;
pub mod ingest;
pub mod lmm;
pub mod mediation;
pub mod meta;
pub mod missing;
pub mod mmrm;
pub mod nonparam;
pub mod pipeline;
pub mod power;
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
