//! The trial analysis (issue 5): an analysis spec applied to a scored trial gives the
//! outcome models, admissions, Table 1 and CONSORT counts as one [`Results`] value, from which
//! every output is rendered. Pure: no file is read or written here.

pub mod baseline;
pub mod describe;
pub mod emmeans;
pub mod outcomes;
pub mod padjust;
pub mod spec;

use rayon::prelude::*;

use crate::admissions::{self as adm, AdmissionRules, RandomizedParticipant, Stay};
use crate::frame::Frame;
use crate::glm::GlmControl;
use crate::ingest::Trial;
use crate::lmm::DfMethod;
use crate::report::progress::Progress;
use crate::results::{
    Admissions, AdmissionsByArm, ArmDistribution, ArmRisk, BedDays, CountModel, LogisticResult,
    OutcomeResult, Results, TermRow, Trajectory, TrajectoryPoint,
};
use crate::schema::study::Design;
use crate::scoring::Scored;
use outcomes::{analyse_outcome, compare_random_slope, summarise_fit, ModelRequest, OutcomeData};
use spec::{AnalysisSpec, DfSpec, OutcomeRole};

/// Which participants an analysis set keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum SetFilter {
    /// Everyone randomized.
    All,
    /// Controls plus intervention participants with at least `min_sessions` sessions.
    Completers { min_sessions: f64 },
    /// Controls plus intervention participants whose training group's fidelity lies in
    /// `[low, high)`.
    Fidelity { low: f64, high: f64 },
}

/// Builds the modelling data of `outcome` for the participants `keep` admits.
pub fn outcome_data(
    trial: &Trial,
    scored: &Scored,
    outcome: &str,
    filter: &SetFilter,
) -> Option<OutcomeData> {
    let values = scored.score(outcome)?;
    let intervention = trial.study.intervention;
    let cluster = trial.study.design == Design::Cluster;
    let keep = |row: usize| -> bool {
        let pid = scored.participants()[row];
        let Some(p) = trial.participant(pid) else {
            return false;
        };
        let treated = p.arm.0 as usize == intervention;
        match filter {
            SetFilter::All => true,
            SetFilter::Completers { min_sessions } => {
                !treated
                    || p.sessions_attended
                        .is_some_and(|s| s as f64 >= *min_sessions)
            }
            SetFilter::Fidelity { low, high } => {
                !treated
                    || p.group
                        .and_then(|g| trial.groups.get(g.0 as usize))
                        .and_then(|g| g.fidelity)
                        .is_some_and(|f| f >= *low && f < *high)
            }
        }
    };
    let rows: Vec<usize> = (0..scored.n_rows())
        .filter(|&r| keep(r) && values.get(r).copied().flatten().is_some())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let arms = scored.arm_levels().to_vec();
    let waves = scored.wave_levels().to_vec();
    let mut f = Frame::new();
    let y: Vec<Option<f64>> = rows.iter().map(|&r| values[r]).collect();
    let pid: Vec<Option<String>> = rows
        .iter()
        .map(|&r| Some(scored.participant_id(r).to_string()))
        .collect();
    let arm: Vec<Option<String>> = rows
        .iter()
        .map(|&r| Some(scored.arm_label(r).to_string()))
        .collect();
    let wave: Vec<Option<String>> = rows
        .iter()
        .map(|&r| Some(scored.wave_label(r).to_string()))
        .collect();
    let site: Vec<Option<String>> = rows
        .iter()
        .map(|&r| Some(scored.site_id(r).to_string()))
        .collect();
    let imr: Vec<Option<f64>> = rows
        .iter()
        .map(|&r| {
            Some(if scored.arms()[r].0 as usize == intervention {
                1.0
            } else {
                0.0
            })
        })
        .collect();
    // Partially nested design (Bauer, Sterba & Hallfors 2008): controls of an individually
    // randomized trial are singleton groups, so `(0 + imr | group_id)` gives them no group
    // effect; in a cluster trial every participant has a group.
    let group: Vec<Option<String>> = rows
        .iter()
        .map(|&r| {
            let g = scored.group_id(r);
            if g.is_empty() || (!cluster && scored.arms()[r].0 as usize != intervention) {
                Some(format!("single:{}", scored.participant_id(r)))
            } else {
                Some(g.to_string())
            }
        })
        .collect();
    let months: Vec<Option<f64>> = rows.iter().map(|&r| Some(scored.months()[r])).collect();
    let baseline: Vec<Option<f64>> = rows
        .iter()
        .filter(|&&r| scored.waves()[r].0 == 0)
        .map(|&r| values[r])
        .collect();
    let ok = f.push_numeric("y", y).is_ok()
        && f.push_factor("participant_id", pid, None).is_ok()
        && f.push_factor("arm", arm, Some(arms.clone())).is_ok()
        && f.push_factor("wave", wave, Some(waves.clone())).is_ok()
        && f.push_factor("site_id", site, None).is_ok()
        && f.push_factor("group_id", group, None).is_ok()
        && f.push_numeric("imr", imr).is_ok()
        && f.push_numeric("months", months).is_ok();
    if !ok {
        return None;
    }
    // Pooled baseline SD: the SD of baseline scores around their arm means, n - k divisor.
    let base_arms: Vec<usize> = rows
        .iter()
        .filter(|&&r| scored.waves()[r].0 == 0)
        .map(|&r| scored.arms()[r].0 as usize)
        .collect();
    Some(OutcomeData {
        frame: f,
        arms,
        waves,
        intervention: trial
            .study
            .arms
            .get(intervention)
            .cloned()
            .unwrap_or_default(),
        baseline_sd: pooled_sd(&baseline, &base_arms),
    })
}

/// Pooled within-arm SD, sqrt(sum_k (n_k - 1) s_k^2 / (n - K)).
pub fn pooled_sd(values: &[Option<f64>], arms: &[usize]) -> Option<f64> {
    let k = arms.iter().copied().max().map_or(0, |m| m + 1);
    let mut n = vec![0.0; k];
    let mut s = vec![0.0; k];
    for (v, &a) in values.iter().zip(arms) {
        if let Some(v) = v {
            n[a] += 1.0;
            s[a] += v;
        }
    }
    let mut ss = 0.0;
    for (v, &a) in values.iter().zip(arms) {
        if let Some(v) = v {
            ss += (v - s[a] / n[a]).powi(2);
        }
    }
    let groups = n.iter().filter(|&&c| c > 0.0).count() as f64;
    let total: f64 = n.iter().sum();
    (total - groups > 0.0).then(|| (ss / (total - groups)).sqrt())
}

/// Output of the analysis stage (everything in [`Results`] except the manifest).
pub fn analyse(trial: &Trial, scored: &Scored, spec: &AnalysisSpec, quiet: bool) -> Results {
    let mut results = Results::default();
    let df = match spec.model.df {
        DfSpec::Satterthwaite => DfMethod::Satterthwaite,
        DfSpec::KenwardRoger => DfMethod::KenwardRoger,
    };
    let cluster = trial.study.design == Design::Cluster;
    let mut warnings = Vec::new();

    // The model requests of every outcome.
    let mut jobs: Vec<(Job, OutcomeData)> = Vec::new();
    let mut sensitivity_note: Option<String> = None;
    // what the export cannot support is skipped with a note, never fitted to degenerate data
    let support = DataSupport::of(trial);
    warnings.extend(support.notes(spec, cluster));
    for o in &spec.outcomes {
        if scored.score(&o.name).is_none() {
            warnings.push(format!(
                "outcome {} skipped: the export has no instrument or score of that name",
                o.name
            ));
            continue;
        }
        let base = if cluster && !spec.model.formula.contains("group_id") {
            format!("{} + (1 | group_id)", spec.model.formula)
        } else {
            spec.model.formula.clone()
        };
        let primary = o.role == OutcomeRole::Primary;
        let mut add = |set: &str,
                       sens: Option<&str>,
                       formula: String,
                       filter: SetFilter,
                       diag: bool,
                       slope_from: Option<String>| {
            match outcome_data(trial, scored, &o.name, &filter) {
                Some(d) => jobs.push((
                    Job {
                        req: ModelRequest {
                            outcome: o.name.clone(),
                            analysis_set: set.into(),
                            sensitivity: sens.map(str::to_string),
                            primary,
                            formula: formula.replace("{outcome}", "y"),
                            display_formula: formula.replace("{outcome}", &o.name),
                            reml: spec.model.reml,
                            df,
                            level: spec.conf_level,
                            keep_diagnostics: diag,
                            residual: spec.model.residual.clone(),
                            weights: spec.model.weights.clone(),
                        },
                        slope_from: slope_from.clone(),
                    },
                    d,
                )),
                None => warnings.push(format!(
                    "{}: no observed scores in analysis set {set}{}",
                    o.name,
                    sens.map(|s| format!(" ({s})")).unwrap_or_default()
                )),
            }
        };
        if spec.analysis_sets.itt {
            add("itt", None, base.clone(), SetFilter::All, true, None);
            let mut s = spec.sensitivity.clone();
            let marginal = spec.model.residual.is_some() || spec.model.weights.is_some();
            if marginal && (s.site || s.groups || s.random_slope) {
                if primary {
                    sensitivity_note = Some(
                        "site, group and random-slope sensitivity models are not fitted with a residual \
                         covariance structure ([model] residual/weights): they need random effects beyond \
                         the participant"
                            .to_string(),
                    );
                }
                s.site = false;
                s.groups = false;
                s.random_slope = false;
            }
            s.site &= support.sites;
            s.groups &= support.groups;
            if s.site {
                add(
                    "itt",
                    Some("site"),
                    format!("{base} + (1 | site_id)"),
                    SetFilter::All,
                    false,
                    None,
                );
            }
            if s.groups && !cluster {
                add(
                    "itt",
                    Some("groups"),
                    format!("{base} + (0 + imr | group_id)"),
                    SetFilter::All,
                    false,
                    None,
                );
            }
            if s.random_slope && base.contains("(1 | participant_id)") {
                let f = base.replace("(1 | participant_id)", "(1 + months | participant_id)");
                let reduced = Some(base.replace("{outcome}", "y"));
                add(
                    "itt",
                    Some("random_slope"),
                    f,
                    SetFilter::All,
                    false,
                    reduced,
                );
            }
            if s.fidelity.enabled && !trial.groups.iter().all(|g| g.fidelity.is_none()) {
                let fd = &s.fidelity;
                add(
                    "fidelity_high",
                    None,
                    base.clone(),
                    SetFilter::Fidelity {
                        low: fd.high,
                        high: f64::INFINITY,
                    },
                    false,
                    None,
                );
                add(
                    "fidelity_moderate",
                    None,
                    base.clone(),
                    SetFilter::Fidelity {
                        low: fd.moderate,
                        high: fd.high,
                    },
                    false,
                    None,
                );
            }
        }
        let pp = &spec.analysis_sets.per_protocol;
        if pp.enabled && support.sessions {
            let min = pp.min_share * f64::from(pp.planned_sessions);
            add(
                "per_protocol",
                None,
                base.clone(),
                SetFilter::Completers { min_sessions: min },
                false,
                None,
            );
        }
    }

    warnings.extend(sensitivity_note);
    let bar = Progress::new(jobs.len() as u64, "outcome models", quiet);
    let fitted: Vec<Result<OutcomeResult, String>> = jobs
        .par_iter()
        .map(|(job, data)| {
            let r = run_job(job, data);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish();
    let mut outs = Vec::new();
    for ((job, data), r) in jobs.iter().zip(fitted) {
        match r {
            Ok(mut o) => {
                if job.req.keep_diagnostics {
                    o.trajectories = Some(trajectories(data));
                }
                outs.push(o)
            }
            Err(e) => warnings.push(format!(
                "{} ({}{}): model not fitted: {e}",
                job.req.outcome,
                job.req.analysis_set,
                job.req
                    .sensitivity
                    .as_deref()
                    .map(|s| format!(", {s}"))
                    .unwrap_or_default()
            )),
        }
    }
    // Model warnings (singular fits, non-convergence) also go to the run's warnings, so the
    // report shows them beside the others.
    for o in &outs {
        for w in &o.warnings {
            warnings.push(format!(
                "{} ({}{}): {w}",
                o.outcome,
                o.analysis_set,
                o.sensitivity
                    .as_deref()
                    .map(|s| format!(", {s}"))
                    .unwrap_or_default()
            ));
        }
    }
    adjust_secondary(&mut outs, spec);
    results.outcomes = outs;

    if spec.admissions.enabled && support.admissions {
        match admissions(trial, spec) {
            Ok(a) => results.admissions = Some(a),
            Err(e) => warnings.push(format!("admissions not analysed: {e}")),
        }
    }
    if let Some(m) = &spec.mediation {
        match crate::mediation::analyse(trial, scored, m, spec.seed, quiet) {
            Ok(r) => {
                for m in &r {
                    for w in &m.warnings {
                        warnings.push(format!("mediation ({}): {w}", m.analysis));
                    }
                }
                results.mediation = r;
            }
            Err(e) => warnings.push(format!("mediation not analysed: {e}")),
        }
    }
    if let Some(sp) = &spec.sites {
        match crate::sites::analyse(trial, scored, sp, spec.seed, quiet) {
            Ok(o) => {
                results.sites = o.sites;
                results.sites_details = o.details;
                results.sites_fidelity = o.fidelity;
                results.sites_routine = o.routine;
                warnings.extend(o.warnings);
            }
            Err(e) => warnings.push(format!("sites not analysed: {e}")),
        }
    }
    results.table1 = Some(baseline::table1(trial, scored, spec));
    results.consort = Some(baseline::consort(trial, scored, spec));
    results.study = baseline::study_description(trial, spec);
    results.warnings = warnings;
    results.exclusions = baseline::exclusions(trial, scored);
    results
}

struct Job {
    req: ModelRequest,
    /// For the random-slope sensitivity: the intercept-only formula to compare against.
    slope_from: Option<String>,
}

fn run_job(job: &Job, data: &OutcomeData) -> Result<OutcomeResult, String> {
    let (mut res, fit) = analyse_outcome(data, &job.req)?;
    if let (Some(reduced_formula), outcomes::FittedModel::Lmm(fit)) = (&job.slope_from, &fit) {
        let opts = crate::lmm::LmmOptions {
            reml: job.req.reml,
            ..Default::default()
        };
        let reduced = crate::lmm::fit_formula(reduced_formula, &data.frame, &opts)
            .map_err(|e| e.to_string())?;
        let cmp = compare_random_slope(&reduced, fit.as_ref());
        if cmp.chosen == "reduced" {
            // AIC prefers no random slope: report the intercept-only model under this label.
            let mut req = job.req.clone();
            req.formula = reduced_formula.clone();
            req.display_formula = reduced_formula.replacen('y', &job.req.outcome, 1);
            res = summarise_fit(data, &req, &reduced)?;
            res.sensitivity = Some("random_slope_rejected".into());
        }
        res.comparison = Some(cmp);
    }
    Ok(res)
}

/// Holm (or the spec's method) across the secondary outcomes, per analysis set, sensitivity
/// model, contrast and wave; the primary outcome keeps its raw p.
fn adjust_secondary(outs: &mut [OutcomeResult], spec: &AnalysisSpec) {
    let mut keys: Vec<(String, Option<String>, String, String)> = Vec::new();
    for o in outs.iter() {
        for c in o.contrasts.iter().chain(&o.change_contrasts) {
            let k = (
                o.analysis_set.clone(),
                o.sensitivity.clone(),
                c.contrast.clone(),
                c.wave.clone(),
            );
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    for o in outs.iter_mut().filter(|o| o.primary) {
        for c in o.contrasts.iter_mut().chain(o.change_contrasts.iter_mut()) {
            c.p_adjusted = Some(c.p_value);
        }
    }
    for (set, sens, contrast, wave) in keys {
        let mut at: Vec<(usize, bool, usize)> = Vec::new();
        for (i, o) in outs.iter().enumerate() {
            if o.primary || o.analysis_set != set || o.sensitivity != sens {
                continue;
            }
            for (j, c) in o.contrasts.iter().enumerate() {
                if c.contrast == contrast && c.wave == wave {
                    at.push((i, false, j));
                }
            }
            for (j, c) in o.change_contrasts.iter().enumerate() {
                if c.contrast == contrast && c.wave == wave {
                    at.push((i, true, j));
                }
            }
        }
        let get = |o: &OutcomeResult, chg: bool, j: usize| {
            if chg {
                o.change_contrasts[j].p_value
            } else {
                o.contrasts[j].p_value
            }
        };
        let p: Vec<Option<f64>> = at
            .iter()
            .map(|&(i, c, j)| Some(get(&outs[i], c, j)).filter(|v| v.is_finite()))
            .collect();
        let adj = padjust::p_adjust(&p, spec.multiplicity.method);
        for (&(i, c, j), a) in at.iter().zip(adj) {
            let row = if c {
                &mut outs[i].change_contrasts[j]
            } else {
                &mut outs[i].contrasts[j]
            };
            row.p_adjusted = a;
        }
    }
}

fn trajectories(data: &OutcomeData) -> Vec<Trajectory> {
    use crate::frame::Column;
    let (
        Some(Column::Factor {
            codes: pc,
            levels: pl,
        }),
        Some(Column::Factor {
            codes: ac,
            levels: al,
        }),
        Some(Column::Factor {
            codes: wc,
            levels: wl,
        }),
        Some(Column::Numeric(y)),
        Some(Column::Numeric(m)),
    ) = (
        data.frame.column("participant_id"),
        data.frame.column("arm"),
        data.frame.column("wave"),
        data.frame.column("y"),
        data.frame.column("months"),
    )
    else {
        return Vec::new();
    };
    let mut out: Vec<Trajectory> = Vec::new();
    let mut index: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for i in 0..y.len() {
        let (Some(Some(p)), Some(Some(a)), Some(Some(w))) = (pc.get(i), ac.get(i), wc.get(i))
        else {
            continue;
        };
        let k = *index.entry(*p).or_insert_with(|| {
            out.push(Trajectory {
                participant_id: pl.get(*p as usize).cloned().unwrap_or_default(),
                arm: al.get(*a as usize).cloned().unwrap_or_default(),
                points: Vec::new(),
            });
            out.len() - 1
        });
        out[k].points.push(TrajectoryPoint {
            wave: wl.get(*w as usize).cloned().unwrap_or_default(),
            months: m[i],
            value: y[i],
        });
    }
    out
}

fn term_rows(coefs: &[crate::glm::Coefficient]) -> Vec<TermRow> {
    coefs
        .iter()
        .map(|c| TermRow {
            term: c.term.clone(),
            estimate: c.estimate,
            std_error: c.std_error,
            statistic: c.statistic,
            df: f64::INFINITY,
            p_value: c.p_value,
            conf_low: c.conf_low,
            conf_high: c.conf_high,
        })
        .collect()
}

/// What the export holds for the optional parts of the plan (spec/trial-export.md: site,
/// groups, sessions, admissions and randomization dates may be absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSupport {
    /// More than one site: a site random intercept can be estimated.
    pub sites: bool,
    /// Some intervention participant is in a training group.
    pub groups: bool,
    /// Sessions attended recorded for someone: a per-protocol set exists.
    pub sessions: bool,
    /// Admissions collected and every participant has a randomization date.
    pub admissions: bool,
}

impl DataSupport {
    pub fn of(trial: &Trial) -> Self {
        let intervention = trial.study.intervention;
        DataSupport {
            sites: trial.sites.len() > 1,
            groups: trial
                .participants
                .iter()
                .any(|p| p.group.is_some() && p.arm.index() == intervention),
            sessions: trial
                .participants
                .iter()
                .any(|p| p.sessions_attended.is_some()),
            admissions: trial.admissions_collected && trial.has_randomization_dates(),
        }
    }

    /// One note per part of `spec` the data cannot support.
    pub fn notes(&self, spec: &AnalysisSpec, cluster: bool) -> Vec<String> {
        let mut v = Vec::new();
        let marginal = spec.model.residual.is_some() || spec.model.weights.is_some();
        if spec.sensitivity.site && !marginal && !self.sites {
            v.push("site sensitivity model skipped: the export has one site".to_string());
        }
        if spec.sensitivity.groups && !marginal && !cluster && !self.groups {
            v.push(
                "group sensitivity model skipped: no intervention participant has a training group (group_id)"
                    .to_string(),
            );
        }
        if spec.analysis_sets.per_protocol.enabled && !self.sessions {
            v.push(
                "per-protocol (completer) set skipped: the export has no sessions_attended"
                    .to_string(),
            );
        }
        if spec.admissions.enabled && !self.admissions {
            v.push(
                "admission analyses skipped: admissions not collected (no admissions table) or no randomization dates"
                    .to_string(),
            );
        }
        v
    }
}

/// Admissions as counts with exposure (negative binomial, Poisson) and the Dutch trial's own
/// analyses (logistic regression of any admission, Mann-Whitney U of the bed-day change).
fn admissions(trial: &Trial, spec: &AnalysisSpec) -> Result<Admissions, String> {
    let study = &trial.study;
    let last = study.waves.last().map_or(0.0, |w| w.months);
    let eot = study.waves.get(1).map_or(last, |w| w.months);
    let mut rules = AdmissionRules::from_months(last, eot, None).map_err(|e| e.to_string())?;
    rules.prior.first = -spec.admissions.prior_days;
    rules.trial_before.first = -spec.admissions.prior_days;
    if let Some(d) = spec.admissions.followup_days {
        rules.follow_up_days = f64::from(d);
    }
    let parts: Vec<RandomizedParticipant> = trial
        .participants
        .iter()
        .map(|p| RandomizedParticipant {
            id: p.id.clone(),
            arm: trial.arm_label(p.arm).to_string(),
            randomized_on: p.randomized_on.map_or(0, |d| d.days()),
        })
        .collect();
    let stays: Vec<Stay> = trial
        .admissions
        .iter()
        .filter_map(|a| {
            Some(Stay {
                participant_id: trial.participant(a.participant)?.id.clone(),
                admitted_on: a.admitted_on.days(),
                discharged_on: a.discharged_on.map(|d| d.days()),
                row: a.row,
            })
        })
        .collect();
    let rows = adm::per_participant(&parts, &stays, &rules).map_err(|e| e.to_string())?;
    let reference = study.arms.first().cloned().unwrap_or_default();
    let intervention = study
        .arms
        .get(study.intervention)
        .cloned()
        .unwrap_or_default();
    let control = GlmControl::default();
    let level = spec.conf_level;
    let by_arm: Vec<AdmissionsByArm> = study
        .arms
        .iter()
        .map(|a| {
            let r: Vec<_> = rows.iter().filter(|x| &x.arm == a).collect();
            AdmissionsByArm {
                arm: a.clone(),
                n: r.len() as u64,
                admissions_prior: r.iter().map(|x| u64::from(x.prior)).sum(),
                admissions_followup: r.iter().map(|x| u64::from(x.count)).sum(),
                bed_days_prior: r.iter().map(|x| u64::from(x.bed_days_prior)).sum(),
                bed_days_followup: r.iter().map(|x| u64::from(x.bed_days_follow_up)).sum(),
                exposure_years_prior: r.len() as f64 * f64::from(spec.admissions.prior_days)
                    / 365.25,
                exposure_years_followup: r.iter().map(|x| x.exposure).sum(),
            }
        })
        .collect();
    let mut out = Admissions {
        followup_window: format!(
            "admissions starting 1-{} days after randomization",
            rules.follow_up_days.floor()
        ),
        prior_window: format!(
            "admissions starting {}-1 days before randomization",
            spec.admissions.prior_days
        ),
        by_arm,
        ..Default::default()
    };
    match adm::count_analysis(&rows, &reference, &intervention, level, &control) {
        Ok(c) => {
            out.negative_binomial = Some(CountModel {
                model: format!("MASS::glm.nb({})", c.formula),
                rate_ratio: c.negative_binomial_rate_ratio.ratio,
                conf_low: c.negative_binomial_rate_ratio.conf_low,
                conf_high: c.negative_binomial_rate_ratio.conf_high,
                p_value: c.negative_binomial_rate_ratio.p_value,
                theta: Some(c.negative_binomial.theta),
                dispersion: None,
                coefficients: term_rows(&c.negative_binomial.glm.coefficients),
            });
            out.poisson = Some(CountModel {
                model: format!("glm({}, family = poisson)", c.formula),
                rate_ratio: c.poisson_rate_ratio.ratio,
                conf_low: c.poisson_rate_ratio.conf_low,
                conf_high: c.poisson_rate_ratio.conf_high,
                p_value: c.poisson_rate_ratio.p_value,
                theta: None,
                dispersion: Some(c.overdispersion.dispersion),
                coefficients: term_rows(&c.poisson.coefficients),
            });
        }
        Err(e) => return Err(format!("count models: {e}")),
    }
    if let Ok(t) = adm::trial_analysis(&rows, &reference, &intervention, level, &control) {
        let risks = study
            .arms
            .iter()
            .map(|a| {
                let r: Vec<_> = rows.iter().filter(|x| &x.arm == a).collect();
                ArmRisk {
                    arm: a.clone(),
                    events: r.iter().filter(|x| x.any_after).count() as u64,
                    n: r.len() as u64,
                }
            })
            .collect();
        out.logistic = Some(LogisticResult {
            model: format!("glm({}, family = binomial)", t.formula),
            odds_ratio: t.odds_ratio.ratio,
            conf_low: t.odds_ratio.conf_low,
            conf_high: t.odds_ratio.conf_high,
            p_value: t.odds_ratio.p_value,
            risks,
            risk_difference: Some(t.risk_difference.estimate),
            rd_conf_low: Some(t.risk_difference.conf_low),
            rd_conf_high: Some(t.risk_difference.conf_high),
        });
        let dist = study
            .arms
            .iter()
            .map(|a| {
                let mut v: Vec<f64> = rows
                    .iter()
                    .filter(|x| &x.arm == a)
                    .map(|x| x.bed_days_change as f64)
                    .collect();
                v.sort_by(f64::total_cmp);
                let n = v.len();
                ArmDistribution {
                    arm: a.clone(),
                    n: n as u64,
                    mean: if n > 0 {
                        v.iter().sum::<f64>() / n as f64
                    } else {
                        f64::NAN
                    },
                    median: describe::quantile_sorted(&v, 0.5),
                    q1: describe::quantile_sorted(&v, 0.25),
                    q3: describe::quantile_sorted(&v, 0.75),
                }
            })
            .collect();
        out.bed_days = Some(BedDays {
            test: "Mann-Whitney U (wilcox.test, normal approximation with continuity correction) of the change in bed days".into(),
            u: t.bed_days_test.w,
            p_value: t.bed_days_test.p_value,
            by_arm: dist,
        });
    }
    Ok(out)
}
