//! The pipeline of `herstel run`: an analysis spec applied to a scored trial, in three typed
//! stages.
//!
//! 1. **plan** ([`plan`]): spec + trial -> the outcome model requests
//!    ([`crate::analysis::OutcomeJob`], formulas as values changed by typed operations) and
//!    the notes on what the data cannot support;
//! 2. **execute** ([`execute`]): the outcome models in parallel, then the peer analyses
//!    (admissions, mediation, sites), each on its own so that one failure is reported and its
//!    siblings still run;
//! 3. **collect** ([`Executed::collect`]): one [`Results`] value, every diagnostic with its
//!    source in `warnings`.
//!
//! Pure: no file is read or written here (the commands read the export and write the report).
pub mod spec;

use rayon::prelude::*;
use std::fmt;

use crate::analysis::{self, baseline, OutcomeJob};
use crate::ingest::Trial;
use crate::progress::ProgressSink;
use crate::results::{Admissions, InstrumentInfo, MediationResult, OutcomeResult, Results};
use crate::schema::instrument::Direction;
use crate::schema::study::Design;
use crate::scoring::Scored;
use crate::sites::SitesOutput;
use crate::trial_data::DataSupport;
pub use spec::{AnalysisSpec, SpecError};

/// Where a diagnostic comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Planning: outcomes or models the data cannot support.
    Plan,
    /// One outcome model: `outcome (analysis set, sensitivity)`.
    Model(String),
    Admissions,
    Mediation,
    Sites,
    /// The missing-data sensitivity analyses.
    SensitivityMissing,
    /// The multiple imputation of missing covariates.
    CovariateMi,
}

/// A warning or a failure of one stage, with its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub source: Source,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Model(label) => write!(f, "{label}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// The planned work of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub outcome_jobs: Vec<OutcomeJob>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Stage 1: the model requests of the spec for this trial, and a note for every part of the
/// spec the data cannot support (one site, no training groups, no sessions, no admissions).
pub fn plan(trial: &Trial, scored: &Scored, spec: &AnalysisSpec) -> Plan {
    let p = analysis::plan_outcome_models(trial, scored, &spec.outcomes_plan());
    let notes = support_notes(
        &DataSupport::of(trial),
        spec,
        trial.study.design == Design::Cluster,
    );
    Plan {
        outcome_jobs: p.jobs,
        diagnostics: notes
            .into_iter()
            .chain(p.notes)
            .map(|message| Diagnostic {
                source: Source::Plan,
                message,
            })
            .collect(),
    }
}

/// One note per part of `spec` the data cannot support.
fn support_notes(support: &DataSupport, spec: &AnalysisSpec, cluster: bool) -> Vec<String> {
    let mut v = Vec::new();
    let marginal = spec.model.residual.is_some() || spec.model.weights.is_some();
    if spec.sensitivity.site && !marginal && !support.sites {
        v.push("site sensitivity model skipped: the export has one site".to_string());
    }
    if spec.sensitivity.groups && !marginal && !cluster && !support.groups {
        v.push(
            "group sensitivity model skipped: no intervention participant has a training group (group_id)"
                .to_string(),
        );
    }
    if spec.analysis_sets.per_protocol.enabled && !support.sessions {
        v.push(
            "per-protocol (completer) set skipped: the export has no sessions_attended".to_string(),
        );
    }
    if spec.admissions.enabled && !support.admissions {
        v.push(
            "admission analyses skipped: admissions not collected (no admissions table) or no randomization dates"
                .to_string(),
        );
    }
    v
}

/// What the execute stage produced, before it becomes [`Results`].
#[derive(Debug, Clone)]
pub struct Executed {
    pub outcomes: Vec<OutcomeResult>,
    pub admissions: Option<Admissions>,
    pub mediation: Vec<MediationResult>,
    pub sites: Option<SitesOutput>,
    pub sensitivity_missing: Vec<crate::results::SensitivityMissing>,
    pub covariate_mi: Vec<crate::results::covariate_mi::CovariateMi>,
    /// Outcome rows the complete-case models leave out for a missing covariate.
    pub covariate_exclusions: Vec<crate::results::ExclusionRow>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Stage 2: fits the planned outcome models (in parallel) and runs the peer analyses.
pub fn execute(
    trial: &Trial,
    scored: &Scored,
    spec: &AnalysisSpec,
    plan: Plan,
    progress: &dyn ProgressSink,
) -> Executed {
    let mut diagnostics = plan.diagnostics;
    let bar = progress.bar(plan.outcome_jobs.len() as u64, "outcome models");
    let fitted: Vec<Result<OutcomeResult, analysis::OutcomeError>> = plan
        .outcome_jobs
        .par_iter()
        .map(|job| {
            let r = analysis::fit_outcome_job(job);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish();
    let mut outcomes = Vec::new();
    for (job, r) in plan.outcome_jobs.iter().zip(fitted) {
        match r {
            Ok(o) => outcomes.push(o),
            Err(e) => diagnostics.push(Diagnostic {
                source: Source::Model(job.label()),
                message: format!("model not fitted: {e}"),
            }),
        }
    }
    // Model warnings (singular fits, non-convergence) also go to the run's warnings, so the
    // report shows them beside the others.
    for o in &outcomes {
        let label = format!(
            "{} ({}{})",
            o.outcome,
            o.analysis_set,
            o.sensitivity
                .as_deref()
                .map(|s| format!(", {s}"))
                .unwrap_or_default()
        );
        for w in &o.warnings {
            diagnostics.push(Diagnostic {
                source: Source::Model(label.clone()),
                message: w.clone(),
            });
        }
    }
    analysis::adjust_secondary(&mut outcomes, spec.multiplicity.method);

    let admissions = if spec.admissions.enabled && DataSupport::of(trial).admissions {
        match crate::admissions::trial::analyse(trial, &spec.admissions, spec.conf_level) {
            Ok(a) => Some(a),
            Err(e) => {
                diagnostics.push(Diagnostic {
                    source: Source::Admissions,
                    message: format!("admissions not analysed: {e}"),
                });
                None
            }
        }
    } else {
        None
    };

    let mut mediation = Vec::new();
    if let Some(m) = &spec.mediation {
        let data = crate::mediation::LongData::from_scored(trial, scored);
        let mut note = |message: String| {
            diagnostics.push(Diagnostic {
                source: Source::Mediation,
                message,
            })
        };
        match crate::mediation::analyse_each(&data, m, spec.seed, progress) {
            Ok(each) => {
                for r in each {
                    match r {
                        Ok(r) => {
                            for w in &r.warnings {
                                note(format!("mediation ({}): {w}", r.analysis));
                            }
                            mediation.push(r);
                        }
                        Err(e) => note(format!("mediation not analysed: {e}")),
                    }
                }
            }
            Err(e) => note(format!("mediation not analysed: {e}")),
        }
    }

    let sites = spec.sites.as_ref().and_then(|sp| {
        match crate::sites::analyse(trial, scored, sp, spec.seed, progress) {
            Ok(mut o) => {
                diagnostics.extend(o.warnings.drain(..).map(|message| Diagnostic {
                    source: Source::Sites,
                    message,
                }));
                Some(o)
            }
            Err(e) => {
                diagnostics.push(Diagnostic {
                    source: Source::Sites,
                    message: format!("sites not analysed: {e}"),
                });
                None
            }
        }
    });
    let sensitivity_missing = sensitivity_missing(trial, scored, spec, progress, &mut diagnostics);
    let covariate_mi = covariate_mi(
        trial,
        scored,
        spec,
        &plan.outcome_jobs,
        progress,
        &mut diagnostics,
    );
    let covariate_exclusions = covariate_exclusions(&plan.outcome_jobs, &spec.covariates);
    Executed {
        outcomes,
        admissions,
        mediation,
        sites,
        sensitivity_missing,
        covariate_mi,
        covariate_exclusions,
        diagnostics,
    }
}

/// The observed outcome rows of each outcome's ITT analysis that the complete-case models drop
/// for a missing covariate, counted by the combination of covariates missing (so every row is
/// counted once).
fn covariate_exclusions(
    jobs: &[OutcomeJob],
    spec: &crate::analysis::covariate_mi::CovariatesSpec,
) -> Vec<crate::results::ExclusionRow> {
    use crate::analysis::covariate_mi::CovariateMissing;
    let mut out: Vec<crate::results::ExclusionRow> = Vec::new();
    for job in jobs
        .iter()
        .filter(|j| j.req.analysis_set == "itt" && j.req.sensitivity.is_none())
    {
        let frame = &job.data.frame;
        for r in 0..frame.n_rows() {
            let missing: Vec<&str> = job
                .data
                .covariates
                .iter()
                .filter(|c| frame.column(c).is_some_and(|col| col.is_missing(r)))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                continue;
            }
            let reason = format!(
                "covariate {} missing: left out of the complete-case models{}",
                missing.join(" and "),
                if spec.missing == CovariateMissing::Impute
                    && job.req.family == crate::analysis::spec::ModelFamily::Gaussian
                {
                    " (kept, with imputed covariates, in the covariate MI)"
                } else {
                    ""
                }
            );
            let what = format!("{} model rows", job.req.outcome);
            match out
                .iter_mut()
                .find(|e| e.what == what && e.reason == reason)
            {
                Some(e) => e.count += 1,
                None => out.push(crate::results::ExclusionRow {
                    what,
                    wave: None,
                    reason,
                    count: 1,
                }),
            }
        }
    }
    out
}

/// `[covariates] missing = "impute"`: the covariate MI of every outcome whose primary ITT model
/// names a covariate with missing values (nothing when the formula names none).
fn covariate_mi(
    trial: &Trial,
    scored: &Scored,
    spec: &AnalysisSpec,
    jobs: &[OutcomeJob],
    progress: &dyn ProgressSink,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<crate::results::covariate_mi::CovariateMi> {
    use crate::analysis::covariate_mi;
    let mut out = Vec::new();
    let Some(first) = jobs.first() else {
        return out;
    };
    if first.data.covariates.is_empty() {
        return out;
    }
    let Ok(covariates) = crate::trial_data::covariates::resolve(trial, &first.req.formula) else {
        return out;
    };
    for job in jobs {
        if !covariate_mi::applies(job, &covariates, &spec.covariates) {
            let glmm = job.req.family != crate::analysis::spec::ModelFamily::Gaussian;
            let primary = job.req.analysis_set == "itt" && job.req.sensitivity.is_none();
            if glmm
                && primary
                && spec.covariates.missing == covariate_mi::CovariateMissing::Impute
                && covariates.iter().any(|c| c.n_missing() > 0)
            {
                diagnostics.push(Diagnostic {
                    source: Source::CovariateMi,
                    message: format!(
                        "covariate MI of {} not run: it pools Gaussian outcome models only; the \
                         [model] family model uses complete cases",
                        job.req.outcome
                    ),
                });
            }
            continue;
        }
        match covariate_mi::analyse(
            trial,
            scored,
            job,
            &covariates,
            &spec.covariates,
            spec.seed,
            progress,
        ) {
            Ok(o) => {
                for w in &o.result.warnings {
                    diagnostics.push(Diagnostic {
                        source: Source::CovariateMi,
                        message: format!("covariate MI ({}): {w}", job.req.outcome),
                    });
                }
                out.push(o.result);
            }
            Err(e) => diagnostics.push(Diagnostic {
                source: Source::CovariateMi,
                message: format!("covariate MI of {} not run: {e}", job.req.outcome),
            }),
        }
    }
    out
}

/// `[sensitivity_missing]` on the estimand's outcome (the primary outcome by default).
fn sensitivity_missing(
    trial: &Trial,
    scored: &Scored,
    spec: &AnalysisSpec,
    progress: &dyn ProgressSink,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<crate::results::SensitivityMissing> {
    let Some(sm) = spec.sensitivity_missing.as_ref().filter(|s| s.enabled) else {
        return Vec::new();
    };
    let mut note = |message: String| {
        diagnostics.push(Diagnostic {
            source: Source::SensitivityMissing,
            message,
        })
    };
    let Some(outcome) = sm.outcome.as_deref().or(spec.estimand_outcome()) else {
        note("missing-data sensitivity analyses skipped: no outcome".into());
        return Vec::new();
    };
    if scored.score(outcome).is_none() {
        note(format!(
            "missing-data sensitivity analyses skipped: the export has no {outcome}"
        ));
        return Vec::new();
    }
    let wave = spec.estimand.as_ref().and_then(|e| e.wave.as_deref());
    let target = crate::missing::trial::Target {
        outcome,
        wave,
        conf_level: spec.conf_level,
        seed: spec.seed,
    };
    match crate::missing::trial::analyse_trial(trial, scored, sm, target, progress) {
        Ok(r) => {
            for w in &r.warnings {
                note(format!("missing-data sensitivity ({outcome}): {w}"));
            }
            vec![r]
        }
        Err(e) => {
            note(format!("missing-data sensitivity analyses not run: {e}"));
            Vec::new()
        }
    }
}

impl Executed {
    /// Stage 3: one [`Results`] (everything but the manifest), with Table 1, the CONSORT counts,
    /// the study description and the exclusions.
    pub fn collect(self, trial: &Trial, scored: &Scored, spec: &AnalysisSpec) -> Results {
        let plan = spec.outcomes_plan();
        let mut results = Results {
            outcomes: self.outcomes,
            admissions: self.admissions,
            mediation: self.mediation,
            ..Results::default()
        };
        if let Some(o) = self.sites {
            results.sites = o.sites;
            results.sites_details = o.details;
            results.sites_fidelity = o.fidelity;
            results.sites_routine = o.routine;
        }
        results.sensitivity_missing = self.sensitivity_missing;
        results.covariate_mi = self.covariate_mi;
        if let (Some(e), Some(outcome)) = (&spec.estimand, spec.estimand_outcome()) {
            let label = spec
                .outcomes
                .iter()
                .find(|o| o.name == outcome)
                .and_then(|o| o.label.clone())
                .or_else(|| {
                    trial
                        .instruments
                        .iter()
                        .find(|i| i.name == outcome)
                        .map(|i| i.label.clone())
                })
                .unwrap_or_else(|| outcome.to_string());
            let reference = results
                .sensitivity_missing
                .first()
                .map(|s| s.reference_arm.clone());
            results.estimand = Some(crate::missing::trial::estimand_result(
                trial,
                e,
                outcome,
                &label,
                reference.as_deref(),
            ));
        }
        results.table1 = Some(baseline::table1(trial, scored, &plan));
        results.consort = Some(baseline::consort(trial, scored, &plan));
        results.study = baseline::study_description(trial, &plan);
        results.instruments = trial
            .instruments
            .iter()
            .map(|i| InstrumentInfo {
                name: i.name.clone(),
                title: i.title.clone(),
                label: i.label.clone(),
                unit: i.unit.clone(),
                item_min: i.min,
                item_max: i.max,
                direction: match i.direction {
                    Direction::HigherBetter => "higher_better",
                    Direction::HigherWorse => "higher_worse",
                }
                .to_string(),
            })
            .collect();
        results.warnings = self.diagnostics.iter().map(ToString::to_string).collect();
        results.exclusions = baseline::exclusions(trial, scored);
        results.exclusions.extend(self.covariate_exclusions);
        results
    }
}

/// The whole analysis: plan, execute, collect.
pub fn analyse(
    trial: &Trial,
    scored: &Scored,
    spec: &AnalysisSpec,
    progress: &dyn ProgressSink,
) -> Results {
    let p = plan(trial, scored, spec);
    execute(trial, scored, spec, p, progress).collect(trial, scored, spec)
}
