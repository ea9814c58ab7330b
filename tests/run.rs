//! The trial analysis (`herstel run`) against R on the shared trial-small export:
//! lme4/lmerTest fixed effects, emmeans marginal means and IMR - TAU contrasts (Satterthwaite and
//! Kenward-Roger), the partially nested model, MASS::glm.nb and the trial's logistic model.
//! Golden values: `tests/fixtures/glm/reference.json` (a copy of the shared trial-small
//! `expected/reference.json`, written by R 4.2.2 with lme4 1.1.31, lmerTest 3.1.3, emmeans
//! 1.8.4.1, pbkrtest 0.5.2, MASS 7.3.58.2).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use herstel::ingest::{load_trial, Trial, ValidateOptions};
use herstel::pipeline::{self, spec::AnalysisSpec};
use herstel::progress::Silent;
use herstel::results::{OutcomeResult, Results};
use herstel::scoring::{self, Scored};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> &'static Value {
    static R: OnceLock<Value> = OnceLock::new();
    R.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join("glm/reference.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn trial() -> &'static (Trial, Scored) {
    static T: OnceLock<(Trial, Scored)> = OnceLock::new();
    T.get_or_init(|| {
        let schema = herstel::ingest::load_schema(None).unwrap();
        let (trial, _) = load_trial(
            &fixtures().join("trial-small/export"),
            &schema,
            &ValidateOptions::default(),
        )
        .unwrap_or_else(|r| panic!("trial-small does not validate:\n{r}"));
        let scored = scoring::score(&trial, &trial.instruments);
        (trial, scored)
    })
}

const SPEC: &str = r#"
title = "trial-small"
[sensitivity]
site = true
groups = true
random_slope = false
[sensitivity.fidelity]
enabled = false
[analysis_sets.per_protocol]
enabled = false
"#;

fn run(df: &str) -> Results {
    let text = format!("{SPEC}\n[model]\ndf = \"{df}\"\n");
    let spec = AnalysisSpec::from_toml(&text, "test").unwrap();
    let (trial, scored) = trial();
    pipeline::analyse(trial, scored, &spec, &Silent)
}

fn satterthwaite() -> &'static Results {
    static R: OnceLock<Results> = OnceLock::new();
    R.get_or_init(|| run("satterthwaite"))
}

fn kenward_roger() -> &'static Results {
    static R: OnceLock<Results> = OnceLock::new();
    R.get_or_init(|| run("kenward-roger"))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("reference has no number {key} in {v}"))
}

/// Relative error, measured against `max(|want|, floor)` so that values near zero are
/// compared absolutely.
fn rel(got: f64, want: f64, floor: f64) -> f64 {
    (got - want).abs() / want.abs().max(floor)
}

struct Worst {
    what: &'static str,
    worst: f64,
    at: String,
}

impl Worst {
    fn new(what: &'static str) -> Self {
        Worst {
            what,
            worst: 0.0,
            at: String::new(),
        }
    }
    fn check(&mut self, at: impl Into<String>, got: f64, want: f64, floor: f64) {
        let e = rel(got, want, floor);
        assert!(
            e.is_finite(),
            "{}: {} got {got}, want {want}",
            self.what,
            at.into()
        );
        if e > self.worst {
            self.worst = e;
            self.at = at.into();
        }
    }
    fn assert_below(&self, tol: f64) {
        eprintln!(
            "{}: worst relative error {:.2e} ({})",
            self.what, self.worst, self.at
        );
        assert!(
            self.worst < tol,
            "{}: worst relative error {:.3e} at {} exceeds {tol:e}",
            self.what,
            self.worst,
            self.at
        );
    }
}

fn find<'a>(r: &'a Results, outcome: &str, sens: Option<&str>) -> &'a OutcomeResult {
    r.outcomes
        .iter()
        .find(|o| {
            o.outcome == outcome && o.analysis_set == "itt" && o.sensitivity.as_deref() == sens
        })
        .unwrap_or_else(|| panic!("no ITT result for {outcome} {sens:?}"))
}

const OUTCOMES: [&str; 6] = [
    "imrs_client",
    "imrs_clinician",
    "mhrm",
    "honos",
    "bsi",
    "sfs",
];

#[test]
fn primary_model_fixed_effects_emmeans_contrasts_satterthwaite() {
    let res = satterthwaite();
    let mut w = Worst::new("Satterthwaite");
    for name in OUTCOMES {
        let want = &reference()["lmm"][name]["participant"];
        let got = find(res, name, None);
        assert_eq!(
            got.n_observations,
            want["nobs"].as_u64().unwrap(),
            "{name} nobs"
        );
        check_fixed(&mut w, name, got, &want["fixed_effects"]);
        check_emmeans(&mut w, name, got, &want["emmeans"]["satterthwaite"]);
        check_contrasts(&mut w, name, got, &want["contrasts"]["satterthwaite"]);
    }
    w.assert_below(1e-4);
}

fn check_fixed(w: &mut Worst, name: &str, got: &OutcomeResult, want: &Value) {
    for fe in want.as_array().unwrap() {
        let term = fe["term"].as_str().unwrap();
        let g = got
            .fixed_effects
            .iter()
            .find(|t| t.term == term)
            .unwrap_or_else(|| panic!("{name}: no term {term}"));
        let at = format!("{name} {term}");
        w.check(
            format!("{at} estimate"),
            g.estimate,
            num(fe, "estimate"),
            1e-3,
        );
        w.check(format!("{at} se"), g.std_error, num(fe, "se"), 0.0);
        w.check(format!("{at} df"), g.df, num(fe, "df"), 0.0);
    }
}

fn check_emmeans(w: &mut Worst, name: &str, got: &OutcomeResult, want: &Value) {
    for em in want.as_array().unwrap() {
        let (arm, wave) = (em["arm"].as_str().unwrap(), em["wave"].as_str().unwrap());
        let g = got
            .emmeans
            .iter()
            .find(|e| e.arm == arm && e.wave == wave)
            .unwrap_or_else(|| panic!("{name}: no emmean {arm} {wave}"));
        let at = format!("{name} emmean {arm} {wave}");
        w.check(format!("{at} estimate"), g.estimate, num(em, "emmean"), 0.0);
        w.check(format!("{at} se"), g.std_error, num(em, "se"), 0.0);
        w.check(format!("{at} df"), g.df, num(em, "df"), 0.0);
        w.check(format!("{at} lower"), g.conf_low, num(em, "lower"), 1e-3);
        w.check(format!("{at} upper"), g.conf_high, num(em, "upper"), 1e-3);
    }
}

fn check_contrasts(w: &mut Worst, name: &str, got: &OutcomeResult, want: &Value) {
    for c in want.as_array().unwrap() {
        let wave = c["wave"].as_str().unwrap();
        // R writes the baseline-wave contrast too; herstel reports the follow-up waves.
        let Some(g) = got.contrasts.iter().find(|x| x.wave == wave) else {
            assert_eq!(wave, "T0", "{name}: no contrast at {wave}");
            continue;
        };
        assert_eq!(g.contrast, c["contrast"].as_str().unwrap());
        let at = format!("{name} contrast {wave}");
        w.check(
            format!("{at} estimate"),
            g.estimate,
            num(c, "estimate"),
            1e-3,
        );
        w.check(format!("{at} se"), g.std_error, num(c, "se"), 0.0);
        w.check(format!("{at} df"), g.df, num(c, "df"), 0.0);
        w.check(format!("{at} lower"), g.conf_low, num(c, "lower"), 1e-3);
        w.check(format!("{at} upper"), g.conf_high, num(c, "upper"), 1e-3);
        w.check(format!("{at} p"), g.p_value, num(c, "p"), 1e-12);
    }
}

#[test]
fn primary_model_kenward_roger() {
    let res = kenward_roger();
    let mut w = Worst::new("Kenward-Roger");
    for name in OUTCOMES {
        let want = &reference()["lmm"][name]["participant"];
        let got = find(res, name, None);
        assert_eq!(got.df_method, "kenward-roger");
        check_fixed(&mut w, name, got, &want["fixed_effects_kenward_roger"]);
        check_emmeans(&mut w, name, got, &want["emmeans"]["kenward_roger"]);
        check_contrasts(&mut w, name, got, &want["contrasts"]["kenward_roger"]);
    }
    w.assert_below(1e-4);
}

/// The site sensitivity model is singular for four outcomes in R: compare what is identified
/// (fixed effects, REML criterion) as the reference README advises.
#[test]
fn site_sensitivity_model() {
    let res = satterthwaite();
    let mut w = Worst::new("site model");
    for name in OUTCOMES {
        let want = &reference()["lmm"][name]["participant_site"];
        let got = find(res, name, Some("site"));
        for fe in want["fixed_effects"].as_array().unwrap() {
            let term = fe["term"].as_str().unwrap();
            let g = got.fixed_effects.iter().find(|t| t.term == term).unwrap();
            w.check(
                format!("{name} {term} estimate"),
                g.estimate,
                num(fe, "estimate"),
                1e-3,
            );
            w.check(format!("{name} {term} se"), g.std_error, num(fe, "se"), 0.0);
        }
        let fit = got.fit.as_ref().expect("fit statistics");
        w.check(
            format!("{name} REML criterion"),
            fit.reml_criterion.unwrap(),
            num(want, "reml_criterion"),
            0.0,
        );
        assert_eq!(
            fit.singular,
            want["singular"].as_bool().unwrap(),
            "{name}: singular flag"
        );
    }
    w.assert_below(1e-4);
}

#[test]
fn partially_nested_groups_model() {
    let res = satterthwaite();
    let want = &reference()["partially_nested"]["mhrm"];
    let got = find(res, "mhrm", Some("groups"));
    let mut w = Worst::new("partially nested");
    // The group variance is near its boundary (SD 0.10 against a residual SD of ~13): the
    // REML criterion is flat there, so Satterthwaite df (derivatives with respect to that
    // variance) are only comparable when both optimizers stop at the same SD.
    let sd_r = want["random_effects"][1]["sd"].as_f64().unwrap();
    let sd = got
        .random_effects
        .iter()
        .find(|r| r.group == "group_id")
        .expect("group_id variance")
        .sd;
    eprintln!("group SD: herstel {sd}, lme4 {sd_r}");
    let same_optimum = (sd - sd_r).abs() < 1e-3 * sd_r;
    for fe in want["fixed_effects"].as_array().unwrap() {
        let term = fe["term"].as_str().unwrap();
        let g = got.fixed_effects.iter().find(|t| t.term == term).unwrap();
        w.check(
            format!("{term} estimate"),
            g.estimate,
            num(fe, "estimate"),
            1e-3,
        );
        w.check(format!("{term} se"), g.std_error, num(fe, "se"), 0.0);
        if same_optimum {
            w.check(format!("{term} df"), g.df, num(fe, "df"), 0.0);
        }
    }
    let fit = got.fit.as_ref().unwrap();
    w.check(
        "REML criterion",
        fit.reml_criterion.unwrap(),
        num(want, "reml_criterion"),
        0.0,
    );
    w.assert_below(1e-4);
}

#[test]
fn admissions_negative_binomial_poisson_logistic() {
    let res = satterthwaite();
    let adm = res.admissions.as_ref().expect("admissions analysed");
    let r = &reference()["admissions"];
    let mut w = Worst::new("admissions");
    let nb = adm.negative_binomial.as_ref().expect("negative binomial");
    let want = &r["negbin"]["rate_ratio"];
    w.check("NB rate ratio", nb.rate_ratio, num(want, "rate_ratio"), 0.0);
    w.check("NB lower", nb.conf_low, num(want, "lower"), 0.0);
    w.check("NB upper", nb.conf_high, num(want, "upper"), 0.0);
    w.check(
        "NB theta",
        nb.theta.unwrap(),
        num(&r["negbin"], "theta"),
        0.0,
    );
    let pois = adm.poisson.as_ref().expect("poisson");
    let want = &r["poisson"]["rate_ratio"];
    w.check(
        "Poisson rate ratio",
        pois.rate_ratio,
        num(want, "rate_ratio"),
        0.0,
    );
    w.check("Poisson lower", pois.conf_low, num(want, "lower"), 0.0);
    let by_arm = r["by_arm"].as_array().unwrap();
    for a in by_arm {
        let arm = a["arm"].as_str().unwrap();
        let g = adm.by_arm.iter().find(|x| x.arm == arm).unwrap();
        assert_eq!(
            g.admissions_followup,
            a["total_count"].as_u64().unwrap(),
            "{arm}"
        );
        assert_eq!(
            g.admissions_prior,
            a["total_prior"].as_u64().unwrap(),
            "{arm}"
        );
    }
    let lg = adm.logistic.as_ref().expect("logistic");
    let coef = &reference()["admissions_trial"]["logistic"]["coefficients"][1];
    assert_eq!(coef["term"], "armIMR");
    w.check(
        "logistic OR",
        lg.odds_ratio,
        num(coef, "estimate").exp(),
        0.0,
    );
    w.check("logistic p", lg.p_value, num(coef, "p"), 0.0);
    w.assert_below(1e-4);
}

#[test]
fn table1_and_consort_counts() {
    let res = satterthwaite();
    let meta = &reference()["meta"];
    let consort = res.consort.as_ref().unwrap();
    assert_eq!(consort.randomized, meta["n_participants"].as_u64().unwrap());
    for a in &consort.arms {
        assert_eq!(
            a.randomized,
            meta["n_participants_by_arm"][&a.arm].as_u64().unwrap(),
            "{}",
            a.arm
        );
        // Assessed at a wave = a valid primary score there; never more than randomized.
        for wc in &a.assessed {
            assert!(wc.n <= a.randomized);
        }
    }
    let t1 = res.table1.as_ref().unwrap();
    let n: u64 = t1.arms.iter().map(|a| a.n).sum();
    assert_eq!(n, 120);
    // The baseline mean of the primary outcome per arm equals the R scoring summary.
    for s in reference()["scoring"]["summary"].as_array().unwrap() {
        if s["instrument"] != "imrs_client" || s["wave"] != "T0" {
            continue;
        }
        let arm = s["arm"].as_str().unwrap();
        let row = t1
            .rows
            .iter()
            .find(|r| r.variable.contains("imrs_client") || r.variable.contains("IMRS"))
            .expect("baseline imrs_client row in Table 1");
        let cell = row.cells.iter().find(|c| c.arm == arm).unwrap();
        let got = cell.mean.unwrap();
        assert!(
            rel(got, num(s, "mean"), 0.0) < 1e-12,
            "{arm}: Table 1 mean {got} vs R {}",
            num(s, "mean")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Truth recovery: repeated simulated trials from the built-in simulator.

const COVERAGE_SPEC: &str = r#"
[sensitivity]
site = false
groups = false
random_slope = false
[sensitivity.fidelity]
enabled = false
[analysis_sets.per_protocol]
enabled = false
[admissions]
enabled = false
"#;

/// One simulated trial analysed with the primary model: per outcome, per follow-up wave,
/// (estimate, conf_low, conf_high, p_value) of the intervention minus control contrast.
type Contrasts = Vec<(String, String, f64, f64, f64, f64)>;

fn simulate_and_analyse(cfg: &herstel::simulate::SimConfig, seed: u64) -> Contrasts {
    let sim = herstel::simulate::simulate(cfg, seed).expect("simulate");
    let dir = tempfile::tempdir().unwrap();
    sim.write(dir.path()).unwrap();
    let schema = herstel::ingest::load_schema(None).unwrap();
    let (trial, _) = load_trial(dir.path(), &schema, &ValidateOptions::default())
        .unwrap_or_else(|r| panic!("seed {seed}: simulated export does not validate:\n{r}"));
    let scored = scoring::score(&trial, &trial.instruments);
    let spec = AnalysisSpec::from_toml(COVERAGE_SPEC, "coverage").unwrap();
    let res = pipeline::analyse(&trial, &scored, &spec, &Silent);
    let mut out = Vec::new();
    for o in res.outcomes.iter().filter(|o| o.sensitivity.is_none()) {
        for c in &o.contrasts {
            out.push((
                o.outcome.clone(),
                c.wave.clone(),
                c.estimate,
                c.conf_low,
                c.conf_high,
                c.p_value,
            ));
        }
    }
    out
}

/// Observed-scale truth of the default simulator: IMR - control per instrument and wave.
fn observed_truth(cfg: &herstel::simulate::SimConfig) -> Vec<(String, String, f64)> {
    let sim = herstel::simulate::simulate(cfg, 1).unwrap();
    let obs = sim
        .truth
        .observed_scale
        .expect("the default simulator carries its observed-scale truth");
    let mut v = Vec::new();
    for inst in obs.arm_effects {
        for w in inst.waves {
            v.push((
                inst.instrument.clone(),
                w.wave.clone(),
                w.difference.estimate,
            ));
        }
    }
    v
}

struct Coverage {
    covered: usize,
    total: usize,
    rejected_null: usize,
    total_null: usize,
}

fn coverage(reps: u64, first_seed: u64) -> (Coverage, Vec<(String, usize, usize)>) {
    use rayon::prelude::*;
    let cfg = herstel::simulate::SimConfig::default();
    let truth = observed_truth(&cfg);
    let mut null = cfg.clone();
    for v in [
        &mut null.effects.self_management,
        &mut null.effects.clinical,
        &mut null.effects.functional,
        &mut null.effects.personal,
        &mut null.effects.honos,
    ] {
        v.iter_mut().for_each(|x| *x = 0.0);
    }
    let runs: Vec<(Contrasts, Contrasts)> = (0..reps)
        .into_par_iter()
        .map(|r| {
            let seed = first_seed + r;
            (
                simulate_and_analyse(&cfg, seed),
                simulate_and_analyse(&null, seed + 1_000_000),
            )
        })
        .collect();
    let mut c = Coverage {
        covered: 0,
        total: 0,
        rejected_null: 0,
        total_null: 0,
    };
    let mut per_outcome: Vec<(String, usize, usize)> = Vec::new();
    for (alt, nul) in &runs {
        for (outcome, wave, _, lo, hi, _) in alt {
            let t = truth
                .iter()
                .find(|(i, w, _)| i == outcome && w == wave)
                .unwrap_or_else(|| panic!("no truth for {outcome} {wave}"))
                .2;
            let hit = *lo <= t && t <= *hi;
            let e = match per_outcome.iter_mut().find(|e| &e.0 == outcome) {
                Some(e) => e,
                None => {
                    per_outcome.push((outcome.clone(), 0, 0));
                    per_outcome.last_mut().unwrap()
                }
            };
            e.1 += usize::from(hit);
            e.2 += 1;
            if outcome == "imrs_client" {
                c.covered += usize::from(hit);
                c.total += 1;
            }
        }
        for (_, _, _, _, _, p) in nul {
            c.rejected_null += usize::from(*p < 0.05);
            c.total_null += 1;
        }
    }
    (c, per_outcome)
}

/// Quick version in the default run: 24 trials. The 95% CIs of the primary contrasts must
/// cover the observed-scale truth in most trials and the null trials must rarely reject;
/// the bounds are loose (binomial noise at this size) but a biased estimator or a too-narrow
/// interval fails them.
#[test]
fn truth_recovery_quick() {
    let (c, per) = coverage(24, 1);
    let cov = c.covered as f64 / c.total as f64;
    let rej = c.rejected_null as f64 / c.total_null as f64;
    eprintln!("quick: IMRS coverage {cov:.3} ({}/{}), null rejection {rej:.3} ({}/{}), per outcome {per:?}", c.covered, c.total, c.rejected_null, c.total_null);
    assert!(c.total >= 40);
    assert!(cov >= 0.85, "coverage {cov}");
    assert!(rej <= 0.12, "null rejection rate {rej}");
}

/// The full truth-recovery check: `HERSTEL_COVERAGE_REPS` trials (default 500) with the
/// default parameters and as many null trials (every arm effect 0).
/// `cargo test --test run -- --ignored truth_recovery_full --nocapture`
#[test]
#[ignore = "minutes: 500 simulated trials x 2"]
fn truth_recovery_full() {
    let reps = std::env::var("HERSTEL_COVERAGE_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let t0 = std::time::Instant::now();
    let (c, per) = coverage(reps, 10_001);
    let cov = c.covered as f64 / c.total as f64;
    let rej = c.rejected_null as f64 / c.total_null as f64;
    eprintln!(
        "{reps} trials in {:.1} s: IMRS client 95% CI coverage {cov:.4} ({}/{}); null rejection rate {rej:.4} ({}/{})",
        t0.elapsed().as_secs_f64(),
        c.covered,
        c.total,
        c.rejected_null,
        c.total_null
    );
    for (o, k, n) in &per {
        eprintln!("  {o}: coverage {:.4} ({k}/{n})", *k as f64 / *n as f64);
    }
    let se = (0.95f64 * 0.05 / c.total as f64).sqrt();
    assert!((cov - 0.95).abs() < 3.0 * se + 0.005, "coverage {cov}");
    assert!((rej - 0.05).abs() < 0.02, "null rejection {rej}");
}

/// `[model] residual = "us(wave | participant_id)"`: the MMRM (nlme::gls with corSymm +
/// varIdent by wave, REML) through the whole trial analysis. Coefficients, SEs and logLik
/// against the shared reference (`mmrm.<outcome>.unstructured`); contrasts with Satterthwaite
/// df against the accurate linear-parametrization values of `tests/r/mmrm_trial_small.R`.
#[test]
fn mmrm_unstructured_through_the_analysis_spec() {
    let text = format!(
        "{COVERAGE_SPEC}\n[model]\nformula = \"{{outcome}} ~ arm * wave\"\nresidual = \"us(wave | participant_id)\"\n"
    );
    let spec = AnalysisSpec::from_toml(&text, "mmrm").unwrap();
    let (trial, scored) = trial();
    let res = pipeline::analyse(trial, scored, &spec, &Silent);
    let acc: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("mmrm/mmrm_trial_small.json")).unwrap(),
    )
    .unwrap();
    let mut w = Worst::new("MMRM (unstructured)");
    for name in ["imrs_client", "mhrm"] {
        let want = &reference()["mmrm"][name]["unstructured"];
        let got = find(&res, name, None);
        assert!(got.model.contains("~ arm * wave"), "{}", got.model);
        for c in want["coefficients"].as_array().unwrap() {
            let term = c["term"].as_str().unwrap();
            let g = got.fixed_effects.iter().find(|t| t.term == term).unwrap();
            w.check(
                format!("{name} {term} estimate"),
                g.estimate,
                num(c, "estimate"),
                1e-3,
            );
            w.check(format!("{name} {term} se"), g.std_error, num(c, "se"), 0.0);
        }
        let fit = got.fit.as_ref().unwrap();
        w.check(
            format!("{name} logLik"),
            fit.loglik,
            num(want, "loglik"),
            0.0,
        );
        let lin = &acc[name]["unstructured"]["linear_inference"]["contrasts_satterthwaite"];
        for c in lin.as_array().unwrap() {
            let wave = c["wave"].as_str().unwrap();
            let Some(g) = got.contrasts.iter().find(|x| x.wave == wave) else {
                continue;
            };
            let at = format!("{name} contrast {wave}");
            w.check(
                format!("{at} estimate"),
                g.estimate,
                num(c, "estimate"),
                1e-3,
            );
            w.check(format!("{at} se"), g.std_error, num(c, "se"), 0.0);
            w.check(format!("{at} df"), g.df, num(c, "df"), 0.0);
        }
        // Residual SD per wave is reported in place of random effects.
        assert_eq!(
            got.random_effects
                .iter()
                .filter(|r| r.group == "Residual")
                .count(),
            3
        );
    }
    w.assert_below(1e-4);
}

// ---------------------------------------------------------------------------------------------
// The command itself (the README's main command) and pooling of exports.

fn herstel(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_herstel"))
        .args(args)
        .output()
        .expect("herstel runs")
}

#[test]
fn default_run_writes_results_tables_plots_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = herstel(&["run", "--out", out.to_str().unwrap(), "--quiet", "--no-png"]);
    assert!(
        o.status.success(),
        "herstel run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    for key in [
        "manifest",
        "study",
        "table1",
        "consort",
        "outcomes",
        "admissions",
        "mediation",
        "sites",
    ] {
        assert!(results.get(key).is_some(), "results.json lacks {key}");
    }
    // The manifest hashes every input file of the built-in export.
    let inputs = results["manifest"]["inputs"].as_array().unwrap();
    assert!(inputs.len() >= 6);
    for i in inputs {
        assert_eq!(i["sha256"].as_str().unwrap().len(), 64);
    }
    // Every outcome of the plan is analysed in the primary model.
    let primary: Vec<&str> = results["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["analysis_set"] == "itt" && o.get("sensitivity").is_none())
        .map(|o| o["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        primary,
        [
            "imrs_client",
            "imrs_clinician",
            "mhrm",
            "bsi",
            "sfs",
            "honos"
        ]
    );
    for f in [
        "report.html",
        "validation.txt",
        "exclusions.csv",
        "tables/table1.csv",
        "tables/outcomes_contrasts.md",
        "plots/forest_effect_sizes.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Every excluded score in the log is a real row: participant, wave, what, reason.
    let log = std::fs::read_to_string(out.join("exclusions.csv")).unwrap();
    assert!(log.lines().skip(1).all(|l| l.split(',').count() >= 4));
}

#[test]
fn pooled_exports_prefix_ids_by_study() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("trialA");
    let b = dir.path().join("trialB");
    for (d, seed) in [(&a, "11"), (&b, "12")] {
        let o = herstel(&["simulate", "--out", d.to_str().unwrap(), "--seed", seed]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let out = dir.path().join("out");
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("analyses/sites.toml");
    let o = herstel(&[
        "run",
        spec.to_str().unwrap(),
        "--data",
        a.to_str().unwrap(),
        "--data",
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--no-png",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let sites: Vec<&str> = results["sites"][0]["per_site"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["site_id"].as_str().unwrap())
        .collect();
    assert!(sites.iter().any(|s| s.starts_with("trialA:")), "{sites:?}");
    assert!(sites.iter().any(|s| s.starts_with("trialB:")), "{sites:?}");
    let n_a = results["study"]["n_participants"].as_u64().unwrap();
    assert!(n_a >= 2 * 150, "pooled participants {n_a}");
    assert!(results["sites"][0]["meta_analysis"]["k"].as_u64().unwrap() >= 4);
}

/// `herstel score` to Parquet, then `herstel fit` on that Parquet file: the primary model's
/// fixed effects equal lme4's on trial-small.
#[test]
fn fit_reads_the_parquet_written_by_score() {
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("scored.parquet");
    let export = fixtures().join("trial-small/export");
    let o = herstel(&[
        "score",
        export.to_str().unwrap(),
        "--out",
        pq.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = herstel(&[
        "fit",
        "--data",
        pq.to_str().unwrap(),
        "--formula",
        "imrs_client ~ arm * wave + (1 | participant_id)",
        "--levels",
        "arm=TAU,IMR",
        "--levels",
        "wave=T0,T1,T2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();
    let want = &reference()["lmm"]["imrs_client"]["participant"]["fixed_effects"];
    let mut w = Worst::new("fit on Parquet");
    for fe in want.as_array().unwrap() {
        let term = fe["term"].as_str().unwrap();
        let g = got["fixed_effects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["term"] == term)
            .unwrap_or_else(|| panic!("no {term} in {got}"));
        w.check(
            format!("{term} estimate"),
            g["estimate"].as_f64().unwrap(),
            num(fe, "estimate"),
            1e-3,
        );
        w.check(
            format!("{term} se"),
            g["std_error"].as_f64().unwrap(),
            num(fe, "se"),
            0.0,
        );
    }
    w.assert_below(1e-4);
}

/// A cluster trial (whole groups randomized, as the e-IMR trial): every participant is in a
/// group, the group random intercept is in every outcome model, and the partially nested
/// sensitivity model is not fitted.
#[test]
fn cluster_trial_has_the_group_intercept_in_the_primary_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cluster.toml");
    std::fs::write(&cfg, "[study]\ndesign = \"cluster\"\n").unwrap();
    let export = dir.path().join("export");
    let o = herstel(&[
        "simulate",
        "--out",
        export.to_str().unwrap(),
        "--seed",
        "5",
        "--config",
        cfg.to_str().unwrap(),
        "--skip-observed-scale",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let schema = herstel::ingest::load_schema(None).unwrap();
    let (trial, _) = load_trial(&export, &schema, &ValidateOptions::default())
        .unwrap_or_else(|r| panic!("cluster export does not validate:\n{r}"));
    assert!(trial.participants.iter().all(|p| p.group.is_some()));
    let scored = scoring::score(&trial, &trial.instruments);
    let spec = AnalysisSpec::from_toml(
        "[[outcomes]]\nname = \"imrs_client\"\nrole = \"primary\"\n[admissions]\nenabled = false\n",
        "cluster",
    )
    .unwrap();
    let res = pipeline::analyse(&trial, &scored, &spec, &Silent);
    let main = find(&res, "imrs_client", None);
    assert!(
        main.model.contains("(1 | group_id)"),
        "primary model of a cluster trial: {}",
        main.model
    );
    assert!(main.random_effects.iter().any(|r| r.group == "group_id"));
    assert!(res
        .outcomes
        .iter()
        .all(|o| o.sensitivity.as_deref() != Some("groups")));
    assert_eq!(main.contrasts.len(), 2);
}
