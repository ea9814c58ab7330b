//! Mediation against R: `tests/fixtures/mediation/mediation.json` (tests/r/mediation.R:
//! lm change-score paths, lmer within-person paths, boot and Monte Carlo intervals) and the
//! shared trial-small reference (`trial_small_reference.json`: blocks `mediation`,
//! `mediation_change`, `mediation_within_parallel`, copied from reference.json).
use std::path::PathBuf;

use herstel::mediation::{
    analyse_long, change_scores, treatment, within, AnalysisKind, LongData, MediationSpec, Panel,
};
use herstel::progress::{Progress, Silent};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mediation")
        .join(name)
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// Reads a long CSV: `id_col`, `wave_col`, optional `arm` column, numeric score columns.
fn long_csv(name: &str, id_col: &str, waves: &[&str], scores: &[&str]) -> LongData {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let (names, cols) = herstel::frame::parse_csv_text(&text).unwrap();
    let col = |n: &str| -> &Vec<Option<String>> {
        &cols[names
            .iter()
            .position(|c| c == n)
            .unwrap_or_else(|| panic!("no column {n}"))]
    };
    let text_col = |n: &str| -> Vec<String> {
        col(n)
            .iter()
            .map(|v| v.clone().unwrap_or_default())
            .collect()
    };
    let has_arm = names.iter().any(|c| c == "arm");
    LongData {
        participant: text_col(id_col),
        wave: text_col("wave"),
        arm: if has_arm { text_col("arm") } else { Vec::new() },
        wave_levels: waves.iter().map(|s| s.to_string()).collect(),
        arm_levels: if has_arm {
            vec!["TAU".into(), "IMR".into()]
        } else {
            Vec::new()
        },
        intervention_arm: has_arm.then(|| "IMR".to_string()),
        scores: scores
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    col(s)
                        .iter()
                        .map(|v| v.as_deref().and_then(|t| t.parse::<f64>().ok()))
                        .collect(),
                )
            })
            .collect(),
    }
}

fn r_long() -> LongData {
    long_csv(
        "mediation_long.csv",
        "id",
        &["T1", "T2", "T3"],
        &["x", "m1", "m2", "y"],
    )
}

fn trial_small() -> LongData {
    long_csv(
        "trial_small_scored.csv",
        "participant_id",
        &["T0", "T1", "T2"],
        &["imrs_client", "mhrm", "honos", "bsi", "sfs"],
    )
}

fn r_spec() -> MediationSpec {
    MediationSpec {
        x: "x".into(),
        mediators: vec!["m1".into(), "m2".into()],
        y: "y".into(),
        ..MediationSpec::default()
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[track_caller]
fn close(got: f64, want: f64, rel: f64, what: &str) {
    let tol = rel * want.abs().max(1e-8);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, R {want} (rel diff {:.2e})",
        (got - want).abs() / want.abs().max(1e-300)
    );
}

/// Compares every coefficient of an OLS fit with an R `lm` record.
fn check_lm(fit: &herstel::mediation::ols::OlsFit, rec: &Value, what: &str) {
    assert_eq!(fit.n as u64, rec["nobs"].as_u64().unwrap(), "{what} nobs");
    close(
        fit.sigma,
        num(&rec["sigma"]),
        1e-9,
        &format!("{what} sigma"),
    );
    close(
        fit.r_squared,
        num(&rec["r_squared"]),
        1e-9,
        &format!("{what} R2"),
    );
    for c in rec["coefficients"].as_array().unwrap() {
        let term = c["term"].as_str().unwrap();
        let (est, se) = fit
            .get(term)
            .unwrap_or_else(|| panic!("{what}: no term {term}"));
        close(
            est,
            num(&c["estimate"]),
            1e-9,
            &format!("{what} {term} estimate"),
        );
        close(se, num(&c["se"]), 1e-9, &format!("{what} {term} se"));
    }
}

fn run_change(data: &LongData, spec: &MediationSpec) -> change_scores::ChangeOutput {
    let panel = Panel::new(data, "test").unwrap();
    change_scores::run(&panel, spec, 2024, &Progress::hidden()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// (1) change scores

#[test]
fn change_scores_match_r_lm_boot_and_monte_carlo() {
    let r = json("mediation.json");
    let rc = &r["change_scores"];
    let out = run_change(&r_long(), &r_spec());
    let res = &out.result;
    assert_eq!(res.n_used, rc["n_used"].as_u64().unwrap());
    assert_eq!(res.n_excluded, rc["n_excluded"].as_u64().unwrap());
    // R's term names are d_x, x_0, ...
    check_lm(&out.fits.a_models[0], &rc["models"]["a1_model"], "a1_model");
    check_lm(&out.fits.a_models[1], &rc["models"]["a2_model"], "a2_model");
    check_lm(&out.fits.b_model, &rc["models"]["b_model"], "b_model");
    check_lm(
        &out.fits.total_model,
        &rc["models"]["total_model"],
        "total_model",
    );
    for p in rc["paths"].as_array().unwrap() {
        let name = p["path"].as_str().unwrap();
        let row = res.paths.iter().find(|r| r.path == name).unwrap();
        close(row.estimate, num(&p["estimate"]), 1e-9, name);
        close(row.std_error, num(&p["se"]), 1e-9, name);
        close(
            row.std_estimate.unwrap(),
            num(&p["std_estimate"]),
            1e-9,
            name,
        );
    }
    for e in rc["indirect"].as_array().unwrap() {
        let name = e["effect"].as_str().unwrap();
        let row = res.indirect.iter().find(|r| r.effect == name).unwrap();
        close(row.estimate, num(&e["estimate"]), 1e-9, name);
        close(row.sobel_se.unwrap(), num(&e["sobel_se"]), 1e-9, name);
        close(
            row.std_estimate.unwrap(),
            num(&e["std_estimate"]),
            1e-9,
            name,
        );
        // Different random streams: compare within resampling error. The SD of a 2.5%
        // percentile from R = 5000 resamples is about 0.04 bootstrap SDs; allow 0.25 SD.
        let bsd = num(&e["bootstrap"]["sd"]);
        let b = row.bootstrap.unwrap();
        close(
            b.conf_low,
            num(&e["bootstrap"]["conf_low"]),
            0.25 * bsd / num(&e["bootstrap"]["conf_low"]).abs(),
            &format!("{name} boot low"),
        );
        close(
            b.conf_high,
            num(&e["bootstrap"]["conf_high"]),
            0.25 * bsd / num(&e["bootstrap"]["conf_high"]).abs(),
            &format!("{name} boot high"),
        );
        // Monte Carlo with 1e5 draws: quantile SD ~ 0.006 SD of the draws; allow 0.04.
        let m = row.monte_carlo.unwrap();
        let sob = num(&e["sobel_se"]);
        assert!(
            (m.conf_low - num(&e["monte_carlo"]["conf_low"])).abs() < 0.04 * sob,
            "{name} mc low"
        );
        assert!(
            (m.conf_high - num(&e["monte_carlo"]["conf_high"])).abs() < 0.04 * sob,
            "{name} mc high"
        );
    }
}

#[test]
fn change_scores_match_trial_small_reference() {
    let r = json("trial_small_reference.json");
    let rc = &r["mediation_change"];
    let spec = MediationSpec::default();
    let out = run_change(&trial_small(), &spec);
    let res = &out.result;
    assert_eq!(res.n_used, rc["n_used"].as_u64().unwrap());
    assert_eq!(res.n_excluded, rc["n_excluded"].as_u64().unwrap());
    let missing: Vec<(String, u64)> = rc["missing_counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    for (k, v) in &missing {
        let got = out
            .table
            .missing_counts
            .iter()
            .find(|(n, _)| n == k)
            .unwrap()
            .1;
        assert_eq!(got as u64, *v, "missing count {k}");
    }
    for (name, fit) in [
        ("a1_model", &out.fits.a_models[0]),
        ("a2_model", &out.fits.a_models[1]),
        ("b_model", &out.fits.b_model),
        ("total_model", &out.fits.total_model),
    ] {
        check_lm(fit, &rc["models"][name], name);
    }
    for p in rc["paths"].as_array().unwrap() {
        let name = p["path"].as_str().unwrap();
        let row = res.paths.iter().find(|r| r.path == name).unwrap();
        close(row.estimate, num(&p["estimate"]), 1e-9, name);
        close(row.std_error, num(&p["se"]), 1e-9, name);
        close(
            row.std_estimate.unwrap(),
            num(&p["std_estimate"]),
            1e-9,
            name,
        );
        close(row.p_value.unwrap(), num(&p["p"]), 1e-7, name);
    }
    for (i, e) in rc["indirect"].as_array().unwrap().iter().enumerate() {
        let name = e["effect"].as_str().unwrap();
        let row = &res.indirect[i];
        assert_eq!(row.effect, name);
        close(row.estimate, num(&e["estimate"]), 1e-9, name);
        close(row.sobel_se.unwrap(), num(&e["sobel_se"]), 1e-9, name);
        close(
            row.std_estimate.unwrap(),
            num(&e["std_estimate"]),
            1e-9,
            name,
        );
        let mc = row.monte_carlo.unwrap();
        let mc_sd = num(&e["mc_sd"]);
        assert!(
            (mc.conf_low - num(&e["mc_lower"])).abs() < 0.04 * mc_sd,
            "{name} mc low {} vs {}",
            mc.conf_low,
            num(&e["mc_lower"])
        );
        assert!(
            (mc.conf_high - num(&e["mc_upper"])).abs() < 0.04 * mc_sd,
            "{name} mc high"
        );
        // n = 56: the bootstrap SD itself is noisy; 0.3 SD of the R replicate SD.
        let stats = rc["bootstrap"]["statistics"].as_array().unwrap();
        let st = stats
            .iter()
            .find(|s| s["name"] == format!("ind_{name}").as_str())
            .unwrap();
        let bsd = num(&st["se"]);
        let b = row.bootstrap.unwrap();
        assert!(
            (b.conf_low - num(&e["boot_lower"])).abs() < 0.3 * bsd,
            "{name} boot low {} vs {}",
            b.conf_low,
            num(&e["boot_lower"])
        );
        assert!(
            (b.conf_high - num(&e["boot_upper"])).abs() < 0.3 * bsd,
            "{name} boot high {} vs {}",
            b.conf_high,
            num(&e["boot_upper"])
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (2) within person

fn run_within(data: &LongData, spec: &MediationSpec) -> within::WithinOutput {
    let panel = Panel::new(data, "test").unwrap();
    within::run(&panel, spec, 1, &Progress::hidden()).unwrap()
}

#[test]
fn within_person_parallel_matches_trial_small_reference() {
    let r = json("trial_small_reference.json");
    let rw = &r["mediation_within_parallel"];
    let spec = MediationSpec {
        within_bootstrap_resamples: 0,
        ..MediationSpec::default()
    };
    let out = run_within(&trial_small(), &spec);
    let res = &out.result;
    let mut worst = 0.0f64;
    for p in rw["paths"].as_array().unwrap() {
        let name = p["path"].as_str().unwrap();
        let row = res.paths.iter().find(|r| r.path == name).unwrap();
        for (got, want) in [
            (row.estimate, num(&p["estimate"])),
            (row.std_error, num(&p["se"])),
        ] {
            worst = worst.max((got - want).abs() / want.abs());
            close(got, want, 1e-4, name);
        }
        close(row.df.unwrap(), num(&p["df"]), 1e-3, &format!("{name} df"));
    }
    eprintln!("within parallel: worst relative error of a, b, c', c and SEs = {worst:.2e}");
    // nobs of every model
    for (i, key) in ["path_a1", "path_a2", "path_b", "total_c"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            out.fits[i].1.n_obs() as u64,
            rw[key]["nobs"].as_u64().unwrap(),
            "{key} nobs"
        );
    }
    for (i, e) in rw["indirect"].as_array().unwrap().iter().enumerate() {
        let name = e["effect"].as_str().unwrap();
        let row = &res.indirect[i];
        assert_eq!(row.effect, name);
        close(row.estimate, num(&e["estimate"]), 1e-4, name);
        close(row.sobel_se.unwrap(), num(&e["sobel_se"]), 1e-4, name);
        close(out.sobel_p[i], num(&e["sobel_p"]), 1e-3, name);
        let mc = row.monte_carlo.unwrap();
        let mc_sd = num(&e["mc_sd"]);
        assert!(
            (mc.conf_low - num(&e["mc_lower"])).abs() < 0.04 * mc_sd,
            "{name} mc low {} vs {}",
            mc.conf_low,
            num(&e["mc_lower"])
        );
        assert!(
            (mc.conf_high - num(&e["mc_upper"])).abs() < 0.04 * mc_sd,
            "{name} mc high"
        );
    }
    close(
        res.proportion_mediated.unwrap(),
        num(&rw["proportion_indirect"]),
        1e-4,
        "proportion",
    );
}

#[test]
fn within_person_single_mediator_matches_trial_small_reference() {
    let r = json("trial_small_reference.json");
    let rm = &r["mediation"];
    let spec = MediationSpec {
        mediators: vec!["honos".into()],
        within_bootstrap_resamples: 0,
        ..MediationSpec::default()
    };
    let out = run_within(&trial_small(), &spec);
    let res = &out.result;
    let get = |p: &str| res.paths.iter().find(|r| r.path == p).unwrap();
    for (p, key, se) in [
        ("a", "a", "se_a"),
        ("b", "b", "se_b"),
        ("c_prime", "c_prime", "se_c_prime"),
        ("c", "c", "se_c"),
    ] {
        close(get(p).estimate, num(&rm[key]), 1e-4, p);
        close(get(p).std_error, num(&rm[se]), 1e-4, se);
    }
    let ind = &res.indirect[0];
    assert_eq!(ind.effect, "ab");
    close(ind.estimate, num(&rm["indirect"]), 1e-4, "indirect");
    close(ind.sobel_se.unwrap(), num(&rm["sobel_se"]), 1e-4, "sobel");
    close(out.sobel_p[0], num(&rm["sobel_p"]), 1e-3, "sobel p");
    let mc = ind.monte_carlo.unwrap();
    let sd = num(&rm["mc"]["sd"]);
    assert!((mc.conf_low - num(&rm["mc"]["lower"])).abs() < 0.04 * sd);
    assert!((mc.conf_high - num(&rm["mc"]["upper"])).abs() < 0.04 * sd);
    // between-person paths are the _b coefficients
    let fe = rm["path_a"]["fixed_effects"].as_array().unwrap();
    let ab = fe.iter().find(|f| f["term"] == "imrs_b").unwrap();
    let row = res.between_paths.iter().find(|r| r.path == "a").unwrap();
    close(row.estimate, num(&ab["estimate"]), 1e-4, "between a");
}

#[test]
fn within_person_matches_r_lmer_paths() {
    let r = json("mediation.json");
    let rw = &r["within_person"];
    let spec = MediationSpec {
        within_bootstrap_resamples: 0,
        ..r_spec()
    };
    let out = run_within(&r_long(), &spec);
    for p in rw["paths"].as_array().unwrap() {
        let name = p["path"].as_str().unwrap();
        let row = out.result.paths.iter().find(|r| r.path == name).unwrap();
        close(row.estimate, num(&p["estimate"]), 1e-4, name);
        close(row.std_error, num(&p["se"]), 1e-4, name);
        close(row.df.unwrap(), num(&p["df"]), 1e-3, name);
    }
    let e = &rw["indirect"]["a1b1"];
    let row = &out.result.indirect[0];
    close(row.estimate, num(&e["estimate"]), 1e-4, "a1b1");
    close(
        row.sobel_se.unwrap(),
        num(&e["sobel_se"]),
        1e-4,
        "a1b1 sobel",
    );
}

#[test]
fn within_person_bootstrap_is_seeded_and_brackets_the_estimate() {
    let spec = MediationSpec {
        mediators: vec!["honos".into()],
        within_bootstrap_resamples: 40,
        monte_carlo_draws: 2000,
        ..MediationSpec::default()
    };
    let a = run_within(&trial_small(), &spec);
    let b = run_within(&trial_small(), &spec);
    assert_eq!(a.bootstrap, b.bootstrap);
    assert_eq!(a.bootstrap.iter().filter(|r| r.is_none()).count(), 0);
    let ci = a.result.indirect[0].bootstrap.unwrap();
    let est = a.result.indirect[0].estimate;
    assert!(ci.conf_low < est && est < ci.conf_high, "{ci:?} vs {est}");
    // a single-thread pool gives the same replicates
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let c = pool.install(|| run_within(&trial_small(), &spec));
    assert_eq!(a.bootstrap, c.bootstrap);
}

#[test]
fn within_bootstrap_fast_refits_match_lmer() {
    use herstel::stats::rng::substream as stream_rng;
    use rand::RngExt;
    let spec = MediationSpec {
        within_bootstrap_resamples: 0,
        monte_carlo_draws: 0,
        ..MediationSpec::default()
    };
    let out = run_within(&trial_small(), &spec);
    let boot = &out.bootstrapper;
    let n = boot.n_participants();
    let all: Vec<usize> = (0..n).collect();
    let mut worst = 0.0f64;
    // On the full data the fast path reproduces the lmer fits (a1, a2, b).
    for m in 0..3 {
        let fit = &out.fits[m].1;
        let fast = boot.fit_fast(m, &all).expect("fast fit");
        let names = boot.design_names(m).unwrap();
        assert_eq!(names, fit.fixef_names(), "model {m} columns");
        close(fast.theta, fit.theta[0], 1e-4, &format!("model {m} theta"));
        close(
            fast.reml_criterion,
            fit.reml_criterion().unwrap(),
            1e-9,
            &format!("model {m} REML criterion"),
        );
        let scale = fit.std_errors();
        for (i, (b, want)) in fast.beta.iter().zip(&fit.beta).enumerate() {
            let err = (b - want).abs() / scale[i];
            worst = worst.max(err);
            assert!(err < 1e-4, "model {m} {}: {b} vs {want}", names[i]);
        }
    }
    // On resamples (participants drawn twice count twice) it agrees with full lmer refits.
    for r in 0..4u64 {
        let mut rng = stream_rng(99, 7, r);
        let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
        let fast = boot.replicate_fast(&idx).unwrap();
        let general = boot.replicate_general(&idx).unwrap();
        for (e, (f, g)) in fast.iter().zip(&general).enumerate() {
            let sob = out.result.indirect[e].sobel_se.unwrap();
            let err = (f - g).abs() / sob;
            worst = worst.max(err);
            assert!(err < 1e-4, "resample {r} effect {e}: fast {f} vs lmer {g}");
        }
    }
    eprintln!("fast random-intercept refits: worst difference {worst:.2e} SE");
}

// ---------------------------------------------------------------------------------------------
// (2b) random slopes: the stacked M and Y equations (R: nlme::lme with varIdent)

fn r_stacked() -> herstel::mediation::stacked::StackedData {
    let panel = Panel::new(&r_long(), "test").unwrap();
    herstel::mediation::stacked::stack(&panel, &r_spec(), 0).unwrap()
}

/// R's fit as a [`StackedFit`] (estimates, vcov rebuilt from the SEs where only those exist).
fn r_stacked_fit(
    data: &herstel::mediation::stacked::StackedData,
    rec: &Value,
    reml: bool,
) -> herstel::mediation::stacked::StackedFit {
    use herstel::mediation::stacked::{evaluate, StackedFit};
    let g: Vec<f64> = rec["random_effects_covariance"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(num).collect::<Vec<_>>())
        .collect();
    let sd = &rec["residual_sd_by_equation"];
    let sigma = [num(&sd["m"]), num(&sd["y"])];
    // vcov of beta at R's variance parameters (GLS, checked against R's SEs below).
    let gls = evaluate(data, &g, sigma, reml).unwrap();
    StackedFit {
        reml,
        beta: rec["coefficients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| num(&c["estimate"]))
            .collect(),
        vcov: gls.vcov,
        re_cov: g,
        sigma,
        loglik: num(&rec["loglik"]),
        warnings: Vec::new(),
    }
}

#[test]
fn stacked_model_matches_nlme_at_its_estimates() {
    use herstel::mediation::stacked::evaluate;
    let r = json("mediation.json");
    let rs = &r["random_slopes"];
    let data = r_stacked();
    assert_eq!(data.n() as u64, rs["nrow_stacked"].as_u64().unwrap());
    let mut worst = 0.0f64;
    for (key, reml) in [("reml", true), ("ml", false)] {
        let rec = &rs["fits"][key];
        assert_eq!(data.n_groups() as u64, rec["ngroups"].as_u64().unwrap());
        let terms: Vec<&str> = rec["coefficients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["term"].as_str().unwrap())
            .collect();
        assert_eq!(data.x_names, terms, "{key} columns");
        let fit = r_stacked_fit(&data, rec, reml);
        let gls = evaluate(&data, &fit.re_cov, fit.sigma, reml).unwrap();
        // The (restricted) log-likelihood at R's estimates, and the GLS fixed effects.
        close(
            gls.loglik(),
            num(&rec["loglik"]),
            1e-8,
            &format!("{key} loglik"),
        );
        // nlme's ML standard errors (summary) are those of (X'V^-1 X)^-1 N / (N - p); its
        // vcov() is unscaled (vcov_a_b).
        let p = data.p();
        let factor = if reml {
            1.0
        } else {
            data.n() as f64 / (data.n() - p) as f64
        };
        for (i, c) in rec["coefficients"].as_array().unwrap().iter().enumerate() {
            let (b, se) = (gls.beta[i], (factor * gls.vcov[i * p + i]).sqrt());
            for (got, want, what) in [
                (b, num(&c["estimate"]), "estimate"),
                (se, num(&c["se"]), "se"),
            ] {
                worst = worst.max((got - want).abs() / want.abs());
                close(got, want, 1e-5, &format!("{key} {} {what}", terms[i]));
            }
        }
        let v = &rec["vcov_a_b"];
        let (ia, ib) = (data.column("a_x").unwrap(), data.column("b_m").unwrap());
        close(gls.vcov[ia * p + ib], num(&v[0][1]), 1e-5, "cov(a, b)");
    }
    eprintln!(
        "stacked model at nlme's estimates: worst relative error of beta and SEs {worst:.2e}"
    );
}

#[test]
fn average_indirect_effect_matches_nlme_and_intervals_agree() {
    use herstel::mediation::stacked::{average_indirect, gamma_vcov};
    let r = json("mediation.json");
    let rec = &r["random_slopes"]["fits"]["reml"];
    let data = r_stacked();
    let fit = r_stacked_fit(&data, rec, true);
    let gv = gamma_vcov(&data, &fit).expect("information matrix");
    let var_cov_ab = gv[(8, 8)];
    assert!(var_cov_ab > 0.0 && var_cov_ab.is_finite());
    // The Hessian is that of a maximum: every variance parameter has a positive variance.
    for i in 0..gv.nrows() {
        assert!(gv[(i, i)] > 0.0, "gamma {i}");
    }
    let ai = average_indirect(&data, &fit, var_cov_ab, 0.95, 200_000, 3, 7).unwrap();
    close(ai.a, num(&rec["a"]), 1e-12, "a");
    close(ai.b, num(&rec["b"]), 1e-12, "b");
    close(ai.cov_ab, num(&rec["cov_ab"]), 1e-12, "cov_ab");
    close(
        ai.estimate,
        num(&rec["average_indirect"]),
        1e-12,
        "average indirect",
    );
    // delta-method SE from its parts (Bauer, Preacher & Gil 2006)
    let want = (ai.b * ai.b * ai.var_a
        + ai.a * ai.a * ai.var_b
        + ai.var_a * ai.var_b
        + 2.0 * ai.a * ai.b * ai.cov_a_b
        + ai.cov_a_b * ai.cov_a_b
        + var_cov_ab)
        .sqrt();
    close(ai.std_error, want, 1e-12, "delta SE");
    assert!(ai.delta.0 < ai.estimate && ai.estimate < ai.delta.1);
    // The Monte Carlo interval is close to the symmetric one here (the product term is
    // small against the slope covariance's uncertainty): within 15% of an SE at each end.
    let (lo, hi) = ai.monte_carlo;
    assert!(
        (lo - ai.delta.0).abs() < 0.15 * ai.std_error,
        "{lo} vs {}",
        ai.delta.0
    );
    assert!(
        (hi - ai.delta.1).abs() < 0.15 * ai.std_error,
        "{hi} vs {}",
        ai.delta.1
    );
    eprintln!(
        "average indirect {:.5} (a b {:.5} + cov {:.5}); SE {:.5} (sd of cov(a_j, b_j) {:.5}); delta [{:.4}, {:.4}], MC [{lo:.4}, {hi:.4}]",
        ai.estimate,
        ai.a * ai.b,
        ai.cov_ab,
        ai.std_error,
        var_cov_ab.sqrt(),
        ai.delta.0,
        ai.delta.1
    );
}

/// The sampling covariance of the variance parameters (observed information by central
/// differences) against R: numDeriv's Richardson Hessian of the restricted log-likelihood
/// (tests/r/mediation_cov_ab.R; nlme's own apVar is not positive definite at this flat optimum).
#[test]
fn variance_parameter_covariance_matches_numderiv() {
    use herstel::mediation::stacked::gamma_vcov;
    let r = json("mediation.json");
    let rc = json("mediation_cov_ab.json");
    let rec = &r["random_slopes"]["fits"]["reml"];
    let data = r_stacked();
    let fit = r_stacked_fit(&data, rec, true);
    let gv = gamma_vcov(&data, &fit).unwrap();
    let want = rc["gamma_vcov_numderiv"].as_array().unwrap();
    close(
        gv[(8, 8)],
        num(&rc["var_cov_ab_numderiv"]),
        1e-3,
        "var(cov(a_j, b_j))",
    );
    let mut worst = 0.0f64;
    for i in 0..12 {
        let w = num(&want[i][i]);
        let e = (gv[(i, i)] - w).abs() / w;
        worst = worst.max(e);
        assert!(e < 1e-2, "var(gamma {i}): {} vs R {w}", gv[(i, i)]);
    }
    eprintln!(
        "variance-parameter covariance: var(cov_ab) {:.6} (R {:.6}); worst relative error of the 12 variances {worst:.2e}",
        gv[(8, 8)],
        num(&rc["var_cov_ab_numderiv"])
    );
}

#[test]
fn stacked_native_fit_matches_nlme() {
    use herstel::mediation::stacked::{NativeFitter, StackedFitter};
    let r = json("mediation.json");
    let data = r_stacked();
    let mut worst = 0.0f64;
    for (key, reml) in [("reml", true), ("ml", false)] {
        let rec = &r["random_slopes"]["fits"][key];
        let t = std::time::Instant::now();
        let fit = NativeFitter::default().fit(&data, reml).unwrap();
        let secs = t.elapsed().as_secs_f64();
        // A correct optimizer reaches at least nlme's (glmmTMB-started) maximum. The
        // likelihood is flat (3 waves, 4 random effects per person): at a log-likelihood
        // 3e-8 to 6e-8 above R's, var(b_j) and cov(a_j, b_j) still differ by up to 6e-4 of
        // their scale and the ML fixed effects by 4e-4 SE, hence the tolerances below.
        let ll = num(&rec["loglik"]);
        assert!(
            fit.loglik >= ll - 1e-6 * ll.abs(),
            "{key} loglik {} < R {ll}",
            fit.loglik
        );
        let p = data.p();
        let factor = if reml {
            1.0
        } else {
            data.n() as f64 / (data.n() - p) as f64
        };
        for (i, c) in rec["coefficients"].as_array().unwrap().iter().enumerate() {
            let se = (factor * fit.vcov[i * p + i]).sqrt();
            let (we, ws) = (num(&c["estimate"]), num(&c["se"]));
            // estimates relative to their SE (m_T2 is near 0), SEs relative
            let e1 = (fit.beta[i] - we).abs() / ws;
            let e2 = (se - ws).abs() / ws;
            worst = worst.max(e1).max(e2);
            if e1.max(e2) > 1e-4 {
                eprintln!("{key} {}: {e1:.2e} {e2:.2e}", data.x_names[i]);
            }
            assert!(
                e1 < 5e-4 && e2 < 1e-4,
                "{key} {}: {} ({se}) vs R {we} ({ws})",
                data.x_names[i],
                fit.beta[i]
            );
        }
        let g = rec["random_effects_covariance"].as_array().unwrap();
        for i in 0..4 {
            for j in 0..4 {
                let want = num(&g[i][j]);
                let scale = (num(&g[i][i]) * num(&g[j][j])).sqrt();
                let e = (fit.re_cov[i * 4 + j] - want).abs() / scale;
                worst = worst.max(e);
                if e > 1e-4 {
                    eprintln!(
                        "{key} G[{i},{j}]: {e:.2e} {} vs {want}",
                        fit.re_cov[i * 4 + j]
                    );
                }
                assert!(
                    e < 1e-3,
                    "{key} G[{i},{j}] {} vs R {want}",
                    fit.re_cov[i * 4 + j]
                );
            }
        }
        let sd = &rec["residual_sd_by_equation"];
        close(fit.sigma[0], num(&sd["m"]), 1e-3, "sigma m");
        close(fit.sigma[1], num(&sd["y"]), 1e-3, "sigma y");
        eprintln!(
            "native stacked fit ({key}): loglik {:.9} (R {ll:.9}), {secs:.2} s",
            fit.loglik
        );
    }
    eprintln!("native stacked fit: worst difference {worst:.2e} (SE / SD units)");
}

/// The stacked model through the MMRM module's mixed model with `varIdent` weights, against
/// nlme (1e-4) and against the native fitter.
#[test]
fn stacked_mmrm_fit_matches_nlme() {
    use herstel::mediation::stacked::{MmrmFitter, NativeFitter, StackedFitter};
    let r = json("mediation.json");
    let data = r_stacked();
    let rec = &r["random_slopes"]["fits"]["reml"];
    let t = std::time::Instant::now();
    let fit = MmrmFitter::default().fit(&data, true).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let ll = num(&rec["loglik"]);
    assert!(
        fit.loglik >= ll - 1e-6 * ll.abs(),
        "loglik {} < R {ll}",
        fit.loglik
    );
    let p = data.p();
    let mut worst = 0.0f64;
    for (i, c) in rec["coefficients"].as_array().unwrap().iter().enumerate() {
        let (we, ws) = (num(&c["estimate"]), num(&c["se"]));
        let e1 = (fit.beta[i] - we).abs() / ws;
        let e2 = (fit.vcov[i * p + i].sqrt() - ws).abs() / ws;
        worst = worst.max(e1).max(e2);
        assert!(
            e1 < 1e-4 && e2 < 1e-4,
            "{}: {e1:.2e} {e2:.2e}",
            data.x_names[i]
        );
    }
    let native = NativeFitter::default().fit(&data, true).unwrap();
    let ai = |f: &herstel::mediation::stacked::StackedFit| {
        let (ia, ib) = (data.column("a_x").unwrap(), data.column("b_m").unwrap());
        f.beta[ia] * f.beta[ib] + f.re_cov[2 * 4 + 3]
    };
    close(
        ai(&fit),
        num(&rec["average_indirect"]),
        1e-4,
        "average indirect (mmrm)",
    );
    eprintln!(
        "mmrm stacked fit: loglik {:.9} (R {ll:.9}, native {:.9}), worst {worst:.2e} SE, {secs:.2} s; average indirect {:.6} (native {:.6}, R {:.6})",
        fit.loglik,
        native.loglik,
        ai(&fit),
        ai(&native),
        num(&rec["average_indirect"])
    );
}

#[test]
fn random_slopes_analysis_reports_average_indirect_effect() {
    let r = json("mediation.json");
    let rec = &r["random_slopes"]["fits"]["reml"];
    let spec = MediationSpec {
        analyses: vec![AnalysisKind::WithinPerson],
        mediators: vec!["m1".into()],
        random_slopes: true,
        within_bootstrap_resamples: 0,
        monte_carlo_draws: 20_000,
        ..r_spec()
    };
    let res = analyse_long(&r_long(), &spec, 5, &Silent).unwrap();
    assert_eq!(res.len(), 2);
    let rs = &res[1];
    assert_eq!(rs.analysis, "within_person_random_slopes");
    let path = |p: &str| rs.paths.iter().find(|x| x.path == p).unwrap();
    close(path("a").estimate, num(&rec["a"]), 1e-3, "a");
    close(path("b").estimate, num(&rec["b"]), 1e-3, "b");
    close(
        path("cov_ab").estimate,
        num(&rec["cov_ab"]),
        1e-2,
        "cov(a_j, b_j)",
    );
    let ind = &rs.indirect[0];
    assert_eq!(ind.effect, "ab");
    close(
        ind.estimate,
        num(&rec["average_indirect"]),
        1e-3,
        "average indirect",
    );
    let mc = ind.monte_carlo.unwrap();
    assert!(mc.conf_low < ind.estimate && ind.estimate < mc.conf_high);
}

#[test]
fn random_slopes_run_on_trial_small_with_both_mediators() {
    let spec = MediationSpec {
        analyses: vec![AnalysisKind::WithinPerson],
        random_slopes: true,
        within_bootstrap_resamples: 0,
        monte_carlo_draws: 5000,
        ..MediationSpec::default()
    };
    let t = std::time::Instant::now();
    let res = analyse_long(&trial_small(), &spec, 2, &Silent).unwrap();
    let rs = &res[1];
    assert_eq!(rs.analysis, "within_person_random_slopes");
    let names: Vec<&str> = rs.paths.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "a1",
            "b1",
            "c_prime_1",
            "cov_a1b1",
            "a2",
            "b2",
            "c_prime_2",
            "cov_a2b2"
        ]
    );
    let eff: Vec<&str> = rs.indirect.iter().map(|e| e.effect.as_str()).collect();
    assert_eq!(eff, ["a1b1", "a2b2"]);
    for e in &rs.indirect {
        assert!(e.estimate.is_finite(), "{e:?}");
    }
    // The fixed paths of the stacked model are close to the random-intercept paths.
    for p in ["a1", "a2"] {
        let ri = res[0].paths.iter().find(|r| r.path == p).unwrap();
        let rs = rs.paths.iter().find(|r| r.path == p).unwrap();
        assert!(
            (ri.estimate - rs.estimate).abs() < 2.0 * ri.std_error,
            "{p}: {} vs {}",
            ri.estimate,
            rs.estimate
        );
    }
    eprintln!(
        "random slopes on trial-small ({} participants): {:.2} s; {:?}",
        rs.n_used,
        t.elapsed().as_secs_f64(),
        rs.warnings
    );
}

// ---------------------------------------------------------------------------------------------
// (3) treatment level and the whole run

#[test]
fn treatment_decomposes_total_effect() {
    let spec = MediationSpec {
        bootstrap_resamples: 300,
        monte_carlo_draws: 5000,
        ..MediationSpec::default()
    };
    let panel = Panel::new(&trial_small(), "test").unwrap();
    let r = treatment::run(&panel, &spec, 5, &Progress::hidden()).unwrap();
    assert_eq!(r.x, "arm");
    let get = |p: &str| r.paths.iter().find(|x| x.path == p).unwrap().estimate;
    // OLS with the same covariates in every equation: c = c' + a b exactly.
    assert!((get("c") - (get("c_prime") + get("a") * get("b"))).abs() < 1e-9);
    let ind = &r.indirect[0];
    let bci = ind.bootstrap.unwrap();
    assert!(bci.conf_low < ind.estimate && ind.estimate < bci.conf_high);
    assert_eq!(r.n_used + r.n_excluded, 120);
}

#[test]
fn analyse_long_runs_all_three_in_the_issue_layout() {
    let spec = MediationSpec {
        bootstrap_resamples: 200,
        within_bootstrap_resamples: 20,
        monte_carlo_draws: 5000,
        ..MediationSpec::default()
    };
    let res = analyse_long(&trial_small(), &spec, 11, &Silent).unwrap();
    let names: Vec<&str> = res.iter().map(|r| r.analysis.as_str()).collect();
    assert_eq!(names, ["change_scores", "within_person", "treatment"]);
    let v = serde_json::to_value(&res).unwrap();
    let paths: Vec<&str> = v[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a1", "a2", "b1", "b2", "c_prime", "c"]);
    let eff: Vec<&str> = v[1]["indirect"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["effect"].as_str().unwrap())
        .collect();
    assert_eq!(eff, ["a1b1", "a2b2", "sum"]);
    for key in ["conf_low", "conf_high"] {
        assert!(v[0]["indirect"][0]["bootstrap"][key].is_number());
        assert!(v[1]["indirect"][0]["monte_carlo"][key].is_number());
    }
    // same seed, same bytes
    let again = analyse_long(&trial_small(), &spec, 11, &Silent).unwrap();
    assert_eq!(res, again);
    // errors name what is wrong
    let bad = MediationSpec {
        x: "nope".into(),
        analyses: vec![AnalysisKind::ChangeScores],
        ..spec
    };
    let e = analyse_long(&trial_small(), &bad, 1, &Silent)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("imrs_client"), "{e}");
}

#[test]
fn shipped_spec_parses() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("analyses/mediation.toml"),
    )
    .unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let m: MediationSpec = v["mediation"].clone().try_into().unwrap();
    m.validate().unwrap();
    assert_eq!(m.mediators, ["bsi", "sfs"]);
}

// ---------------------------------------------------------------------------------------------
// Simulated trials: truth recovery and bootstrap speed

mod simulated {
    use super::*;
    use herstel::ingest::{load_trial, ValidateOptions};
    use herstel::schema::Schema;
    use herstel::simulate::{simulate, SimConfig};

    /// One simulated trial (default configuration: ~190 participants, 3 waves) as scores.
    pub fn trial(seed: u64) -> LongData {
        let sim = simulate(&SimConfig::default(), seed).unwrap();
        let dir = tempfile::tempdir().unwrap();
        sim.write(dir.path()).unwrap();
        let schema = Schema::embedded().unwrap();
        let (trial, _) = load_trial(dir.path(), &schema, &ValidateOptions::default())
            .unwrap_or_else(|r| panic!("{r}"));
        let scored = herstel::scoring::score(&trial, &trial.instruments);
        LongData::from_scored(&trial, &scored)
    }

    /// The within-person a1 b1 and a2 b2 on the scored scale (the simulator's large-trial
    /// truth, `observed_scale.within_person`).
    pub fn truth() -> (f64, f64) {
        let sim = simulate(&SimConfig::default(), 1)
            .unwrap()
            .with_observed_scale()
            .unwrap();
        let w = &sim.truth.observed_scale.unwrap().within_person;
        (w.indirect_a1b1.estimate, w.indirect_a2b2.estimate)
    }

    /// Share of `reps` simulated trials whose 95% CIs of a1 b1 and a2 b2 cover the truth:
    /// `[Monte Carlo a1b1, a2b2, bootstrap a1b1, a2b2]` (the bootstrap with `boot` resamples;
    /// 0 = Monte Carlo only).
    pub fn coverage(reps: u64, boot: usize) -> [f64; 4] {
        let (t1, t2) = truth();
        let spec = MediationSpec {
            analyses: vec![AnalysisKind::WithinPerson],
            within_bootstrap_resamples: boot,
            monte_carlo_draws: 20_000,
            ..MediationSpec::default()
        };
        // Trials in parallel on a pool with large stacks (a trial nests rayon work of its own
        // and of polars, and work stealing stacks trials on one thread); each trial is seeded
        // by its number, so the count does not depend on the number of threads.
        use rayon::prelude::*;
        let pool = rayon::ThreadPoolBuilder::new()
            .stack_size(256 << 20)
            .build()
            .unwrap();
        let covered: Vec<[u64; 4]> = pool.install(|| {
            (0..reps)
                .into_par_iter()
                .map(|r| {
                    let res = analyse_long(&trial(1000 + r), &spec, r, &Silent).unwrap();
                    let mut h = [0u64; 4];
                    for (k, t) in [t1, t2].iter().enumerate() {
                        let ind = &res[0].indirect[k];
                        let ci = ind.monte_carlo.unwrap();
                        h[k] = u64::from(ci.conf_low <= *t && *t <= ci.conf_high);
                        if let Some(b) = ind.bootstrap {
                            h[2 + k] = u64::from(b.conf_low <= *t && *t <= b.conf_high);
                        }
                    }
                    h
                })
                .collect()
        });
        let mut hits = [0u64; 4];
        for h in &covered {
            for k in 0..4 {
                hits[k] += h[k];
            }
        }
        eprintln!(
            "truth a1b1 = {t1:.4}, a2b2 = {t2:.4}; covered of {reps}: Monte Carlo {:?}, bootstrap ({boot} resamples) {:?}",
            &hits[..2],
            &hits[2..]
        );
        hits.map(|h| h as f64 / reps as f64)
    }
}

#[test]
fn truth_recovery_quick() {
    let c = simulated::coverage(8, 200);
    assert!(c.iter().all(|&x| x >= 0.75), "coverage {c:?}");
}

/// `cargo test --test mediation -- --ignored truth_recovery_500` (HERSTEL_MEDIATION_REPS to
/// change the number of trials, HERSTEL_MEDIATION_BOOT the bootstrap resamples per trial).
#[test]
#[ignore]
fn truth_recovery_500() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let reps = env("HERSTEL_MEDIATION_REPS", 500);
    let boot = env("HERSTEL_MEDIATION_BOOT", 1000) as usize;
    let c = simulated::coverage(reps, boot);
    eprintln!(
        "coverage of the 95% CIs over {reps} trials: Monte Carlo a1b1 {:.3}, a2b2 {:.3}; bootstrap a1b1 {:.3}, a2b2 {:.3}",
        c[0], c[1], c[2], c[3]
    );
    for (k, name) in ["MC a1b1", "MC a2b2", "bootstrap a1b1", "bootstrap a2b2"]
        .iter()
        .enumerate()
    {
        if k < 2 || boot > 0 {
            assert!((0.93..=0.97).contains(&c[k]), "{name} coverage {}", c[k]);
        }
    }
}

/// 10,000 participant-bootstrap resamples of the multi-wave model (both mediators: the a1, a2
/// and b models refitted per resample) on a 190-participant trial; the target is
/// < 10 s on 2 cores. Test profile (dependencies opt-level 2, herstel opt-level 1):
/// `cargo test --test mediation -- --ignored speed`.
#[test]
#[ignore]
fn speed_within_bootstrap_10000() {
    let data = simulated::trial(7);
    let spec = MediationSpec {
        analyses: vec![AnalysisKind::WithinPerson],
        within_bootstrap_resamples: 10_000,
        ..MediationSpec::default()
    };
    let t = std::time::Instant::now();
    let res = analyse_long(&data, &spec, 3, &Silent).unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "within-person bootstrap: 10,000 resamples x 3 refits (a1, a2, b), {} participants, {} threads: {secs:.2} s",
        res[0].n_used + res[0].n_excluded,
        rayon::current_num_threads()
    );
    assert!(res[0].indirect[2].bootstrap.is_some());
    assert!(
        !res[0]
            .warnings
            .iter()
            .any(|w| w.contains("could not be refitted")),
        "{:?}",
        res[0].warnings
    );
    assert!(secs < 10.0, "{secs:.2} s");
}
