//! Binary and count outcomes in the outcome models (`[model] family`): the GLMM arm x wave
//! model with marginal means on the response scale and odds / rate ratios per wave, against
//! tests/r/glmm_outcomes.R (glmmTMB tight fits, emmeans `type = "response"`).
use std::collections::HashMap;
use std::path::Path;

use herstel::analysis::outcomes::{analyse_outcome, ModelRequest};
use herstel::analysis::spec::ModelFamily;
use herstel::formula::Formula;
use herstel::frame::Frame;
use herstel::lmm::DfMethod;
use herstel::results::OutcomeResult;
use herstel::trial_data::OutcomeData;
use serde_json::Value;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/glmm_outcomes")
            .join(name),
    )
    .unwrap()
}

fn reference() -> Value {
    serde_json::from_str(&fixture("reference.json")).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn check(what: &str, got: f64, want: f64, tol: f64, worst: &mut f64) {
    let rel = (got - want).abs() / want.abs().max(1e-8);
    *worst = worst.max(rel);
    assert!(
        rel <= tol,
        "{what}: herstel {got}, R {want} (rel {rel:.2e})"
    );
}

/// Estimates, SEs, marginal means (response scale) with CIs, ratios per wave with CIs and
/// p-values, the change ratios and the arm x wave Wald test agree with R to 1e-4; the
/// log-likelihood is never below glmmTMB's.
fn compare(res: &OutcomeResult, want: &Value, label: &str) -> f64 {
    let mut worst = 0.0f64;
    let fe = want["fixed_effects"].as_array().unwrap();
    assert_eq!(res.fixed_effects.len(), fe.len());
    for (g, w) in res.fixed_effects.iter().zip(fe) {
        assert_eq!(g.term, w["term"].as_str().unwrap());
        check(
            &format!("{label} {}", g.term),
            g.estimate,
            num(&w["estimate"]),
            1e-4,
            &mut worst,
        );
        check(
            &format!("{label} SE {}", g.term),
            g.std_error,
            num(&w["se"]),
            1e-4,
            &mut worst,
        );
    }
    check(
        &format!("{label} sd"),
        res.random_effects[0].sd,
        num(&want["sd"]),
        1e-4,
        &mut worst,
    );
    let ll = res.fit.as_ref().unwrap().loglik;
    assert!(ll >= num(&want["loglik"]) - 1e-6, "{label}: logLik {ll}");
    for (g, w) in res.emmeans.iter().zip(want["emmeans"].as_array().unwrap()) {
        assert_eq!(
            (g.arm.as_str(), g.wave.as_str()),
            (w["arm"].as_str().unwrap(), w["wave"].as_str().unwrap())
        );
        let what = format!("{label} emmean {} {}", g.arm, g.wave);
        check(&what, g.estimate, num(&w["estimate"]), 1e-4, &mut worst);
        check(&what, g.std_error, num(&w["se"]), 1e-4, &mut worst);
        check(&what, g.conf_low, num(&w["conf_low"]), 1e-4, &mut worst);
        check(&what, g.conf_high, num(&w["conf_high"]), 1e-4, &mut worst);
    }
    assert_eq!(res.emmeans.len(), want["emmeans"].as_array().unwrap().len());
    // emmeans lists the baseline wave too; herstel's contrasts are the follow-up waves
    let ctr: Vec<&Value> = want["contrasts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["wave"] != "T0")
        .collect();
    assert_eq!(res.contrasts.len(), ctr.len());
    for (g, w) in res.contrasts.iter().zip(ctr) {
        assert_eq!(g.wave, w["wave"].as_str().unwrap());
        assert!(g.cohens_d.is_none());
        let what = format!("{label} ratio {}", g.wave);
        check(&what, g.estimate, num(&w["ratio"]), 1e-4, &mut worst);
        check(&what, g.std_error, num(&w["se"]), 1e-4, &mut worst);
        check(&what, g.conf_low, num(&w["conf_low"]), 1e-4, &mut worst);
        check(&what, g.conf_high, num(&w["conf_high"]), 1e-4, &mut worst);
        check(&what, g.p_value, num(&w["p_value"]), 1e-4, &mut worst);
    }
    for (g, w) in res
        .change_contrasts
        .iter()
        .zip(want["change"].as_array().unwrap())
    {
        let what = format!("{label} change ratio {}", g.wave);
        check(&what, g.estimate, num(&w["ratio"]), 1e-4, &mut worst);
        check(&what, g.conf_low, num(&w["conf_low"]), 1e-4, &mut worst);
        check(&what, g.p_value, num(&w["p_value"]), 1e-4, &mut worst);
    }
    let it = res.interaction_test.as_ref().unwrap();
    check(
        &format!("{label} joint F"),
        it.f,
        num(&want["joint_test"]["f"]),
        1e-4,
        &mut worst,
    );
    check(
        &format!("{label} joint p"),
        it.p_value,
        num(&want["joint_test"]["p_value"]),
        1e-4,
        &mut worst,
    );
    println!("{label}: worst relative error against R {worst:.2e}");
    worst
}

fn request(family: ModelFamily) -> ModelRequest {
    ModelRequest {
        outcome: "y".into(),
        analysis_set: "itt".into(),
        sensitivity: None,
        primary: true,
        formula: Formula::template("{outcome} ~ arm * wave + (1 | participant_id)", "y").unwrap(),
        reml: true,
        df: DfMethod::Satterthwaite,
        level: 0.95,
        keep_diagnostics: false,
        residual: None,
        weights: None,
        family,
        nagq: 1,
    }
}

fn counts() -> OutcomeData {
    let orders: HashMap<String, Vec<String>> = [
        (
            "arm".to_string(),
            vec!["CAU".to_string(), "IMR".to_string()],
        ),
        (
            "wave".to_string(),
            ["T0", "T1", "T2"].iter().map(|s| s.to_string()).collect(),
        ),
    ]
    .into_iter()
    .collect();
    OutcomeData {
        frame: Frame::from_csv_str(&fixture("counts.csv"), &orders).unwrap(),
        arms: vec!["CAU".into(), "IMR".into()],
        waves: vec!["T0".into(), "T1".into(), "T2".into()],
        intervention: "IMR".into(),
        baseline_sd: Some(1.0),
        covariates: Vec::new(),
    }
}

#[test]
fn count_outcomes_agree_with_glmmtmb_and_emmeans() {
    let r = reference();
    let data = counts();
    let (res, _) = analyse_outcome(&data, &request(ModelFamily::Poisson)).unwrap();
    assert_eq!(res.family.as_deref(), Some("poisson (log)"));
    assert!(res.contrasts[0].contrast.contains("rate ratio"));
    compare(&res, &r["poisson"], "poisson");
    let (nb, _) = analyse_outcome(&data, &request(ModelFamily::NegativeBinomial)).unwrap();
    let want = &r["negative_binomial"];
    let theta = nb.theta.unwrap();
    assert!(
        (theta - num(&want["theta"])).abs() / num(&want["theta"]) < 1e-4,
        "theta {theta}"
    );
    compare(&nb, want, "negative binomial");
}

/// HoNOS >= 12 as a binary outcome of trial-small through `herstel run` (`at_least`,
/// `family = "binomial"`): the primary ITT model agrees with glmmTMB / emmeans, and the
/// sensitivity models that need more random effects are skipped with a note.
#[test]
fn binary_outcome_through_the_pipeline_agrees_with_glmmtmb() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("binary.toml");
    std::fs::write(
        &spec,
        "[[outcomes]]\nname = \"honos\"\nrole = \"primary\"\nat_least = 12\n\n[model]\nfamily = \"binomial\"\n\n[admissions]\nenabled = false\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trial-small/export");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_herstel"))
        .args([
            "run",
            spec.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
        ])
        .arg(&out)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let results: herstel::results::Results =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let itt = results
        .outcomes
        .iter()
        .find(|o| o.analysis_set == "itt" && o.sensitivity.is_none())
        .unwrap();
    assert_eq!(itt.family.as_deref(), Some("binomial (logit)"));
    assert!(itt.contrasts[0].contrast.contains("odds ratio"));
    compare(itt, &reference()["binary"], "binary (HoNOS >= 12)");
    // the site and training-group GLMMs (two grouping factors) are fitted; the random slope
    // (an AIC comparison of linear models) is not, with a note
    for sens in ["site", "groups"] {
        let m = results
            .outcomes
            .iter()
            .find(|o| o.sensitivity.as_deref() == Some(sens))
            .unwrap_or_else(|| panic!("no {sens} model"));
        assert_eq!(m.family.as_deref(), Some("binomial (logit)"));
        assert_eq!(m.random_effects.len(), 2, "{:?}", m.random_effects);
    }
    assert!(
        results
            .warnings
            .iter()
            .any(|w| w.contains("random-slope sensitivity model is not fitted with a GLMM")),
        "{:?}",
        results.warnings
    );
}
