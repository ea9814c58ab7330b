//! Agreement of the GLMM with one random intercept (`herstel::glmm`) with lme4::glmer and
//! glmmTMB, at the optimum: the golden values of `tests/r/glmm.R` in `tests/fixtures/glmm/`
//! (default and tightly converged fits of both packages; the test compares with the fit of the
//! highest log-likelihood among those whose likelihood is the one herstel computes).
use std::collections::HashMap;
use std::path::PathBuf;

use herstel::formula::{build_model_frame, ModelFormula};
use herstel::frame::{Column, Frame};
use herstel::glmm::family::{Family, Link};
use herstel::glmm::{fit_glmm, glmm_data, GlmmFit, GlmmOptions};
use serde_json::Value;

#[path = "common/cli.rs"]
mod cli;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/glmm")
        .join(name)
}

fn golden(dataset: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("{dataset}.json"))).unwrap())
        .unwrap()
}

/// The data with the factor levels R used (`meta.data.factor_levels`).
fn frame(dataset: &str, g: &Value) -> Frame {
    let raw = herstel::table::read_table_file(&fixture(&format!("{dataset}.csv"))).unwrap();
    let mut orders = HashMap::new();
    if let Some(levels) = g["meta"]["data"]["factor_levels"].as_object() {
        for (k, v) in levels {
            let lv: Vec<String> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            orders.insert(k.clone(), lv);
        }
    }
    Frame::from_table(&raw, &orders).unwrap()
}

struct Case<'a> {
    dataset: &'a str,
    model: &'a str,
    formula: &'a str,
    family: Family,
    n_agq: usize,
    trials: Option<&'a str>,
    /// column whose log is the offset
    log_offset: Option<&'a str>,
    /// fits (keys of `fits`) whose likelihood is herstel's
    references: &'a [&'a str],
}

/// The fields most cases share (Laplace, no trials, no offset, both packages' tight fits).
const BASE: Case<'static> = Case {
    dataset: "",
    model: "",
    formula: "",
    family: Family::Poisson,
    n_agq: 1,
    trials: None,
    log_offset: None,
    references: BOTH_TIGHT,
};

fn numeric_on_rows(f: &Frame, col: &str, rows: &[usize]) -> Vec<f64> {
    match f.column(col) {
        Some(Column::Numeric(v)) => rows.iter().map(|&r| v[r]).collect(),
        _ => panic!("{col} is not numeric"),
    }
}

fn fit_case(c: &Case<'_>, g: &Value) -> GlmmFit {
    let data = frame(c.dataset, g);
    let mf = build_model_frame(&ModelFormula::parse(c.formula).unwrap(), &data).unwrap();
    let trials = c.trials.map(|t| numeric_on_rows(&data, t, &mf.rows));
    let offset = c.log_offset.map(|t| {
        numeric_on_rows(&data, t, &mf.rows)
            .iter()
            .map(|v| v.ln())
            .collect()
    });
    let d = glmm_data(&mf, trials, offset, c.family).unwrap();
    fit_glmm(
        &d,
        &GlmmOptions {
            family: c.family,
            n_agq: c.n_agq,
            level: 0.95,
        },
    )
    .unwrap()
}

/// The reference fit: the highest log-likelihood (with all constants) among `names`.
fn reference<'a>(g: &'a Value, c: &Case<'_>) -> (&'a Value, f64) {
    let fits = &g["models"][c.model]["fits"];
    let ll = |f: &Value| {
        f["loglik_plus_saturated"]
            .as_f64()
            .filter(|_| c.n_agq > 1)
            .or_else(|| f["loglik"].as_f64())
            .unwrap_or(f64::NEG_INFINITY)
    };
    c.references
        .iter()
        .map(|n| &fits[*n])
        .filter(|f| !f.is_null())
        .map(|f| (f, ll(f)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
}

/// Worst relative differences (estimates and SEs relative to the SE / the SE) and the
/// log-likelihood difference herstel minus R.
fn agreement(c: &Case<'_>) -> (f64, f64, f64, f64) {
    let g = golden(c.dataset);
    let fit = fit_case(c, &g);
    let (r, r_ll) = reference(&g, c);
    let terms = r["fixed_effects"].as_array().unwrap();
    assert_eq!(terms.len(), fit.fixed_effects.len(), "{}", c.model);
    let (mut est, mut se) = (0.0f64, 0.0f64);
    for (t, h) in terms.iter().zip(&fit.fixed_effects) {
        assert_eq!(t["term"].as_str().unwrap(), h.term, "{}", c.model);
        let (e, s) = (t["estimate"].as_f64().unwrap(), t["se"].as_f64().unwrap());
        est = est.max((h.estimate - e).abs() / s.max(e.abs()));
        se = se.max((h.std_error - s).abs() / s);
    }
    let sd_r = r["random_effects"][0]["sd"].as_f64().unwrap();
    let mut sd = (fit.sd - sd_r).abs() / sd_r.max(1e-8);
    if let Some(theta) = fit.theta {
        // NB2: theta as glmmTMB's sigma (= MASS's theta)
        let t_r = r["nb_theta"].as_f64().unwrap();
        sd = sd.max((theta - t_r).abs() / t_r);
    }
    (est, se, sd, fit.loglik - r_ll)
}

const GLMER_TIGHT: &[&str] = &["glmer_tight_bobyqa", "glmer_tight_nloptwrap"];
const BOTH_TIGHT: &[&str] = &[
    "glmer_tight_bobyqa",
    "glmer_tight_nloptwrap",
    "glmmTMB_tight",
    "glmmTMB_default",
];

#[test]
fn glmm_agrees_with_glmer_and_glmmtmb_at_the_optimum() {
    let cases = [
        Case {
            dataset: "cbpp",
            model: "logit_laplace",
            formula: "incidence ~ period + (1 | herd)",
            family: Family::Binomial(Link::Logit),
            trials: Some("size"),
            ..BASE
        },
        Case {
            dataset: "cbpp",
            model: "logit_agq25",
            formula: "incidence ~ period + (1 | herd)",
            family: Family::Binomial(Link::Logit),
            n_agq: 25,
            trials: Some("size"),
            references: GLMER_TIGHT,
            ..BASE
        },
        // non-canonical links: lme4's Laplace (Fisher weights), which herstel computes;
        // glmmTMB's (observed information) is another approximation
        Case {
            dataset: "cbpp",
            model: "probit_laplace",
            formula: "incidence ~ period + (1 | herd)",
            family: Family::Binomial(Link::Probit),
            trials: Some("size"),
            references: GLMER_TIGHT,
            ..BASE
        },
        Case {
            dataset: "cbpp",
            model: "cloglog_laplace",
            formula: "incidence ~ period + (1 | herd)",
            family: Family::Binomial(Link::Cloglog),
            trials: Some("size"),
            references: GLMER_TIGHT,
            ..BASE
        },
        Case {
            dataset: "cbpp_binary",
            model: "logit_laplace",
            formula: "y ~ period + (1 | herd)",
            family: Family::Binomial(Link::Logit),
            ..BASE
        },
        Case {
            dataset: "grouseticks",
            model: "location_laplace",
            formula: "TICKS ~ YEAR + height_z + (1 | LOCATION)",
            family: Family::Poisson,
            ..BASE
        },
        Case {
            dataset: "grouseticks",
            model: "location_agq10",
            formula: "TICKS ~ YEAR + height_z + (1 | LOCATION)",
            family: Family::Poisson,
            n_agq: 10,
            references: GLMER_TIGHT,
            ..BASE
        },
        Case {
            dataset: "salamanders",
            model: "poisson_mined_spp",
            formula: "count ~ mined + spp + (1 | site)",
            family: Family::Poisson,
            ..BASE
        },
        // NB2 with theta: glmmTMB's Laplace (observed information), which herstel computes
        Case {
            dataset: "salamanders",
            model: "nb_mined",
            formula: "count ~ mined + (1 | site)",
            family: Family::NegativeBinomial { theta: 1.0 },
            references: &["glmmTMB_tight", "glmmTMB_tight_from_glmer_nb_start"],
            ..BASE
        },
        Case {
            dataset: "admissions_periods",
            model: "poisson",
            formula: "admissions ~ arm * period + (1 | participant_id)",
            family: Family::Poisson,
            log_offset: Some("exposure"),
            ..BASE
        },
    ];
    let mut worst = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for c in &cases {
        let (est, se, sd, dll) = agreement(c);
        eprintln!(
            "{} {}: estimates {est:.1e} (of the SE), SEs {se:.1e}, SD (and theta) {sd:.1e}, logLik herstel - R {dll:+.1e}",
            c.dataset, c.model
        );
        // at the optimum: herstel's likelihood is not below R's best
        assert!(dll > -1e-6, "{} {}: logLik {dll}", c.dataset, c.model);
        assert!(
            dll < 1e-5,
            "{} {}: logLik above R by {dll}",
            c.dataset,
            c.model
        );
        assert!(
            est < 1e-4 && se < 1e-4 && sd < 1e-4,
            "{} {}",
            c.dataset,
            c.model
        );
        worst = (
            worst.0.max(est),
            worst.1.max(se),
            worst.2.max(sd),
            worst.3.max(dll.abs()),
        );
    }
    eprintln!(
        "worst: estimates {:.1e}, SEs {:.1e}, SD {:.1e}, |logLik| {:.1e}",
        worst.0, worst.1, worst.2, worst.3
    );
}

#[test]
fn binary_rows_and_successes_out_of_trials_give_the_same_fit() {
    let g1 = golden("cbpp");
    let g2 = golden("cbpp_binary");
    let a = fit_case(
        &Case {
            dataset: "cbpp",
            model: "logit_laplace",
            formula: "incidence ~ period + (1 | herd)",
            family: Family::Binomial(Link::Logit),
            trials: Some("size"),
            ..BASE
        },
        &g1,
    );
    let b = fit_case(
        &Case {
            dataset: "cbpp_binary",
            model: "logit_laplace",
            formula: "y ~ period + (1 | herd)",
            family: Family::Binomial(Link::Logit),
            ..BASE
        },
        &g2,
    );
    for (x, y) in a.fixed_effects.iter().zip(&b.fixed_effects) {
        assert!((x.estimate - y.estimate).abs() < 1e-6 * x.std_error);
    }
    // the log-likelihoods differ by sum(lchoose(size, incidence)) (R: 185.4757)
    assert!(
        (b.loglik - a.loglik + 185.4757).abs() < 1e-3,
        "{} {}",
        a.loglik,
        b.loglik
    );
}

#[test]
fn unsupported_structures_and_bad_counts_are_errors() {
    let g = golden("grouseticks");
    let data = frame("grouseticks", &g);
    let two = "TICKS ~ YEAR + height_z + (1 | BROOD) + (1 | LOCATION)";
    let mf = build_model_frame(&ModelFormula::parse(two).unwrap(), &data).unwrap();
    let d = glmm_data(&mf, None, None, Family::Poisson).unwrap();
    let agq = GlmmOptions {
        family: Family::Poisson,
        n_agq: 10,
        level: 0.95,
    };
    let e = fit_glmm(&d, &agq).unwrap_err();
    assert!(e.to_string().contains("one scalar random intercept"), "{e}");
    let mf = build_model_frame(
        &ModelFormula::parse("height_z ~ YEAR + (1 | LOCATION)").unwrap(),
        &data,
    )
    .unwrap();
    let e = glmm_data(&mf, None, None, Family::Poisson)
        .unwrap_err()
        .to_string();
    // one grouped message: the column, how many rows, the first file rows and their values
    assert!(e.contains("whole number") && e.contains("height_z"), "{e}");
    assert!(e.contains("row(s)") && e.contains("file rows 2: "), "{e}");
    // a zero exposure gives an infinite log offset
    let mf = build_model_frame(
        &ModelFormula::parse("TICKS ~ YEAR + (1 | LOCATION)").unwrap(),
        &data,
    )
    .unwrap();
    let mut offset = vec![0.0; mf.y.len()];
    offset[3] = f64::NEG_INFINITY;
    let e = glmm_data(&mf, None, Some(offset), Family::Poisson)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("offset: 1 row(s)") && e.contains("file rows 5: -inf"),
        "{e}"
    );
}

/// The Poisson overdispersion check equals lme4's `sum(residuals(m, "pearson")^2)` over
/// `df.residual(m)` (R, tight fit of the one-random-intercept grouseticks model: 1082.3067320890
/// on 398 df).
#[test]
fn poisson_overdispersion_check_matches_pearson_residuals_of_glmer() {
    let c = Case {
        dataset: "grouseticks",
        model: "location_laplace",
        formula: "TICKS ~ YEAR + height_z + (1 | LOCATION)",
        family: Family::Poisson,
        ..BASE
    };
    let fit = fit_case(&c, &golden("grouseticks"));
    let o = fit.overdispersion.expect("Poisson");
    assert_eq!(o.df, 398.0);
    assert!(
        (o.chisq - 1082.3067320890).abs() < 1e-5 * 1082.3,
        "{}",
        o.chisq
    );
    assert!((o.ratio - 2.7193636485).abs() < 1e-5 * 2.72);
}

/// `herstel fit --family ... --compare-formula`: the likelihood-ratio test of the two GLMMs
/// (lme4's `anova(m_small, m)`) on the same rows.
#[test]
fn compare_formula_gives_the_likelihood_ratio_test() {
    let data = fixture("grouseticks.csv");
    let v = cli::herstel_json(&[
        "fit",
        "--data",
        data.to_str().unwrap(),
        "--formula",
        "TICKS ~ YEAR + height_z + (1 | LOCATION)",
        "--family",
        "poisson",
        "--levels",
        "YEAR=95,96,97",
        "--compare-formula",
        "TICKS ~ YEAR + (1 | LOCATION)",
        "--json",
    ]);
    let ll = v["loglik"].as_f64().unwrap();
    let c = &v["comparison"];
    let chisq = c["chisq"].as_f64().unwrap();
    assert!((chisq - 2.0 * (ll - c["loglik"].as_f64().unwrap())).abs() < 1e-9);
    assert_eq!(c["df"].as_f64().unwrap(), 1.0);
    // the larger model is glmer's (tight) fit: logLik -1133.5209439
    assert!((ll + 1133.5209439).abs() < 1e-6, "{ll}");
    let p = c["p_value"].as_f64().unwrap();
    assert!(p > 0.0 && p < 1e-6, "{p}");
}

/// Warnings instead of silent nonsense: separation (a period whose responses are all 0) and a
/// negative-binomial theta at the Poisson limit (trial-small's admissions, where the random
/// intercept takes all the overdispersion; glmmTMB and glmer.nb fail there too).
#[test]
fn separation_and_a_theta_at_the_poisson_limit_are_warned() {
    let g = golden("cbpp_binary");
    let mut data = frame("cbpp_binary", &g);
    let (Some(Column::Factor { codes, levels }), Some(Column::Numeric(y))) =
        (data.column("period").cloned(), data.column("y").cloned())
    else {
        panic!("columns")
    };
    let four = levels.iter().position(|l| l == "4").unwrap() as u32;
    let y0: Vec<Option<f64>> = y
        .iter()
        .zip(&codes)
        .map(|(&v, c)| Some(if *c == Some(four) { 0.0 } else { v }))
        .collect();
    data.push_numeric("y0", y0).unwrap();
    let mf = build_model_frame(
        &ModelFormula::parse("y0 ~ period + (1 | herd)").unwrap(),
        &data,
    )
    .unwrap();
    let fam = Family::Binomial(Link::Logit);
    let d = glmm_data(&mf, None, None, fam).unwrap();
    let fit = fit_glmm(
        &d,
        &GlmmOptions {
            family: fam,
            n_agq: 1,
            level: 0.95,
        },
    )
    .unwrap();
    assert!(
        fit.warnings
            .iter()
            .any(|w| w.contains("`period4`") && w.contains("separation")),
        "{:?}",
        fit.warnings
    );

    let c = Case {
        dataset: "admissions_periods",
        model: "nb",
        formula: "admissions ~ arm * period + (1 | participant_id)",
        family: Family::NegativeBinomial { theta: 1.0 },
        log_offset: Some("exposure"),
        ..BASE
    };
    let fit = fit_case(&c, &golden("admissions_periods"));
    assert!(fit.theta.unwrap() > herstel::glmm::THETA_POISSON_LIMIT);
    assert!(
        fit.warnings.iter().any(|w| w.contains("Poisson limit")),
        "{:?}",
        fit.warnings
    );
}

/// Where the deviance is lowest at the Poisson limit (trial-small's admissions), the
/// derivative-free fit of the negative binomial (1 / theta >= 0) ends at theta = infinity in a
/// few hundred evaluations (in log theta it crawled for about 2,500), and its fit is the
/// Poisson GLMM's: the same log-likelihood, estimates and SEs, by Laplace and by quadrature.
#[test]
fn a_negative_binomial_at_the_poisson_limit_is_the_poisson_glmm() {
    let g = golden("admissions_periods");
    for n_agq in [1, 10] {
        let case = |family| Case {
            dataset: "admissions_periods",
            model: "nb",
            formula: "admissions ~ arm * period + (1 | participant_id)",
            family,
            n_agq,
            log_offset: Some("exposure"),
            ..BASE
        };
        let nb = fit_case(&case(Family::NegativeBinomial { theta: 1.0 }), &g);
        let pois = fit_case(&case(Family::Poisson), &g);
        assert_eq!(nb.theta, Some(f64::INFINITY), "nAGQ {n_agq}");
        assert!(nb.n_evaluations < 1000, "{} evaluations", nb.n_evaluations);
        assert!(
            (nb.loglik - pois.loglik).abs() < 1e-6,
            "nAGQ {n_agq}: {} vs {}",
            nb.loglik,
            pois.loglik
        );
        for (a, b) in nb.fixed_effects.iter().zip(&pois.fixed_effects) {
            assert!(
                (a.estimate - b.estimate).abs() < 1e-4 * b.std_error,
                "{}: {} vs {}",
                a.term,
                a.estimate,
                b.estimate
            );
            assert!(
                (a.std_error / b.std_error - 1.0).abs() < 1e-4,
                "{}: SE {} vs {}",
                a.term,
                a.std_error,
                b.std_error
            );
        }
        assert!(
            (nb.sd / pois.sd - 1.0).abs() < 1e-4,
            "{} vs {}",
            nb.sd,
            pois.sd
        );
    }
}

/// Options that do not fit together are errors, not ignored.
#[test]
fn glmm_options_without_family_or_with_linear_model_options_are_errors() {
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_herstel"))
            .args(["fit", "--data"])
            .arg(fixture("cbpp.csv"))
            .args(["--formula", "incidence ~ period + (1 | herd)"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--trials", "size"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --family"));
    let out = run(&[
        "--family",
        "binomial",
        "--trials",
        "size",
        "--weights",
        "ident(period)",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("for linear models"));
}

fn slopes_fit(file: &str, family: Family) -> GlmmFit {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/glmm_slopes")
        .join(file);
    let orders: HashMap<String, Vec<String>> = [(
        "arm".to_string(),
        vec!["CAU".to_string(), "IMR".to_string()],
    )]
    .into_iter()
    .collect();
    let data = Frame::from_csv_str(&std::fs::read_to_string(path).unwrap(), &orders).unwrap();
    let f = ModelFormula::parse("y ~ time + arm:time + (1 + time | id)").unwrap();
    let mf = build_model_frame(&f, &data).unwrap();
    let d = glmm_data(&mf, None, None, family).unwrap();
    fit_glmm(
        &d,
        &GlmmOptions {
            family,
            n_agq: 1,
            level: 0.95,
        },
    )
    .unwrap()
}

/// `(1 + time | id)`, a correlated random intercept and slope (tests/r/glmm_slopes.R): the
/// Poisson fit (interior optimum) agrees with glmmTMB and tight glmer to 1e-4 (estimates of
/// the SE, SEs, SDs; the correlation to 1e-4 absolute), its log-likelihood never below
/// either; the binomial fit runs to a correlation of +1 (both R packages too): reported as
/// singular, with a log-likelihood at least R's.
#[test]
fn random_slopes_agree_with_glmer_and_glmmtmb() {
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/glmm_slopes/reference.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let fit = slopes_fit("counts.csv", Family::Poisson);
    let best = |b: &Value| {
        let (g, t) = (&b["glmer"], &b["glmmTMB"]);
        if t["loglik"].as_f64() >= g["loglik"].as_f64() {
            t.clone()
        } else {
            g.clone()
        }
    };
    let want = best(&r["poisson"]);
    let mut worst = 0.0f64;
    for (t, w) in fit
        .fixed_effects
        .iter()
        .zip(want["fixed_effects"].as_array().unwrap())
    {
        assert_eq!(t.term, w["term"].as_str().unwrap());
        let se = w["se"].as_f64().unwrap();
        let e = (t.estimate - w["estimate"].as_f64().unwrap()).abs() / se;
        let s = (t.std_error - se).abs() / se;
        worst = worst.max(e).max(s);
        assert!(e < 1e-4 && s < 1e-4, "{}: {} vs {w}", t.term, t.estimate);
    }
    for (sd, w) in fit.re_sds.iter().zip(want["sds"].as_array().unwrap()) {
        let rel = (sd - w.as_f64().unwrap()).abs() / w.as_f64().unwrap();
        worst = worst.max(rel);
        assert!(rel < 1e-4, "sd {sd} vs {w}");
    }
    let corr = fit.re_corr[2];
    assert!(
        (corr - want["corr"].as_f64().unwrap()).abs() < 1e-4,
        "corr {corr}"
    );
    for pkg in ["glmer", "glmmTMB"] {
        assert!(
            fit.loglik >= r["poisson"][pkg]["loglik"].as_f64().unwrap() - 1e-6,
            "{pkg}"
        );
    }
    assert!(!fit.singular && fit.converged);
    println!(
        "(1 + time | id) Poisson: worst {worst:.2e}, logLik herstel {:.9} glmmTMB {:.9}",
        fit.loglik,
        r["poisson"]["glmmTMB"]["loglik"].as_f64().unwrap()
    );

    let b = slopes_fit("binary.csv", Family::Binomial(Link::Logit));
    let wb = best(&r["binomial"]);
    assert!(b.singular, "{:?}", b.warnings);
    assert!(b.warnings.iter().any(|w| w.contains("singular")));
    assert!(
        b.loglik >= wb["loglik"].as_f64().unwrap() - 1e-6,
        "{} vs {}",
        b.loglik,
        wb["loglik"]
    );
    assert!(b.re_corr[2] > 0.999, "corr {}", b.re_corr[2]);
    for (t, w) in b
        .fixed_effects
        .iter()
        .zip(wb["fixed_effects"].as_array().unwrap())
    {
        let e = (t.estimate - w["estimate"].as_f64().unwrap()).abs() / w["se"].as_f64().unwrap();
        assert!(e < 1e-3, "{}: {} vs {w}", t.term, t.estimate);
    }
    // quadrature needs one scalar intercept, as lme4
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/glmm_slopes/counts.csv");
    let data =
        Frame::from_csv_str(&std::fs::read_to_string(path).unwrap(), &HashMap::new()).unwrap();
    let mf = build_model_frame(
        &ModelFormula::parse("y ~ time + (1 + time | id)").unwrap(),
        &data,
    )
    .unwrap();
    let d = glmm_data(&mf, None, None, Family::Poisson).unwrap();
    let e = fit_glmm(
        &d,
        &GlmmOptions {
            family: Family::Poisson,
            n_agq: 5,
            level: 0.95,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("one scalar random intercept"), "{e}");
}

/// Prior weights multiply each row's log-likelihood (glmmTMB's `weights`): non-integer weights
/// agree with glmmTMB (tests/r/glmm_weights.R) to 1e-4, and integer weights give the fit of
/// the data with each row repeated that many times.
#[test]
fn prior_weights_agree_with_glmmtmb_and_with_repeated_rows() {
    use herstel::glmm::glmm_data_weighted;
    let g = golden("grouseticks");
    let data = frame("grouseticks", &g);
    let f = ModelFormula::parse("TICKS ~ YEAR + height_z + (1 | LOCATION)").unwrap();
    let mf = build_model_frame(&f, &data).unwrap();
    let opts = GlmmOptions {
        family: Family::Poisson,
        n_agq: 1,
        level: 0.95,
    };
    let w: Vec<f64> = mf
        .rows
        .iter()
        .map(|&r| 0.5 + (r % 4) as f64 / 2.0)
        .collect();
    let d = glmm_data_weighted(&mf, None, None, Some(w), Family::Poisson).unwrap();
    let fit = fit_glmm(&d, &opts).unwrap();
    let want = golden("grouseticks_weights");
    for (t, x) in fit
        .fixed_effects
        .iter()
        .zip(want["fixed_effects"].as_array().unwrap())
    {
        assert_eq!(t.term, x["term"].as_str().unwrap());
        let se = x["se"].as_f64().unwrap();
        assert!(
            (t.estimate - x["estimate"].as_f64().unwrap()).abs() < 1e-4 * se,
            "{}",
            t.term
        );
        assert!((t.std_error - se).abs() < 1e-4 * se, "{} SE", t.term);
    }
    assert!((fit.sd - want["sd"].as_f64().unwrap()).abs() < 1e-4 * fit.sd);
    assert!(
        fit.loglik >= want["loglik"].as_f64().unwrap() - 1e-6,
        "{}",
        fit.loglik
    );

    // integer weights = repeated rows
    let k: Vec<usize> = mf.rows.iter().map(|&r| 1 + r % 3).collect();
    let dw = glmm_data_weighted(
        &mf,
        None,
        None,
        Some(k.iter().map(|&v| v as f64).collect()),
        Family::Poisson,
    )
    .unwrap();
    let mut dr = glmm_data(&mf, None, None, Family::Poisson).unwrap();
    let (n, p) = (dr.y.len(), dr.p);
    let (mut x, mut y, mut grp, mut z) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, &ki) in k.iter().enumerate().take(n) {
        for _ in 0..ki {
            x.extend_from_slice(&dr.x[i * p..(i + 1) * p]);
            y.push(dr.y[i]);
            grp.push(dr.group[i]);
            z.push(1.0);
        }
    }
    let m = y.len();
    dr.x = x;
    dr.y = y;
    dr.group = grp;
    dr.z = z;
    dr.trials = vec![1.0; m];
    dr.offset = vec![0.0; m];
    dr.weights = vec![1.0; m];
    let (a, b) = (fit_glmm(&dw, &opts).unwrap(), fit_glmm(&dr, &opts).unwrap());
    assert!(
        (a.loglik - b.loglik).abs() < 1e-8,
        "{} {}",
        a.loglik,
        b.loglik
    );
    for (s, t) in a.fixed_effects.iter().zip(&b.fixed_effects) {
        assert!((s.estimate - t.estimate).abs() < 1e-4 * t.std_error);
        assert!((s.std_error - t.std_error).abs() < 1e-4 * t.std_error);
    }
}

/// Two grouping factors, `(1 | BROOD) + (1 | LOCATION)` on grouseticks (BROOD nested in
/// LOCATION; golden values of tests/r/glmm.R): the joint-mode Laplace fit agrees with
/// glmmTMB's tight fit (the highest log-likelihood of the R fits) to 1e-4 of an SE in the
/// estimates, 1e-4 in the SEs and SDs, with a log-likelihood at least R's best.
#[test]
fn two_grouping_factors_agree_with_glmmtmb() {
    let g = golden("grouseticks");
    let data = frame("grouseticks", &g);
    let f = ModelFormula::parse("TICKS ~ YEAR + height_z + (1 | BROOD) + (1 | LOCATION)").unwrap();
    let mf = build_model_frame(&f, &data).unwrap();
    let d = glmm_data(&mf, None, None, Family::Poisson).unwrap();
    let fit = fit_glmm(
        &d,
        &GlmmOptions {
            family: Family::Poisson,
            n_agq: 1,
            level: 0.95,
        },
    )
    .unwrap();
    let want = &g["models"]["brood_location_laplace"]["fits"]["glmmTMB_tight"];
    let mut worst = 0.0f64;
    for (t, w) in fit
        .fixed_effects
        .iter()
        .zip(want["fixed_effects"].as_array().unwrap())
    {
        assert_eq!(t.term, w["term"].as_str().unwrap());
        let se = w["se"].as_f64().unwrap();
        let e = (t.estimate - w["estimate"].as_f64().unwrap()).abs() / se;
        let s = (t.std_error - se).abs() / se;
        worst = worst.max(e).max(s);
        assert!(
            e < 1e-4 && s < 1e-4,
            "{}: {} ({}) vs {w}",
            t.term,
            t.estimate,
            t.std_error
        );
    }
    let sd = |group: &str| {
        want["random_effects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["group"] == group)
            .unwrap()["sd"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(fit.group, "BROOD");
    let rel = (fit.sd - sd("BROOD")).abs() / sd("BROOD");
    let o = &fit.other_terms[0];
    assert_eq!(o.group, "LOCATION");
    let rel2 = (o.sds[0] - sd("LOCATION")).abs() / sd("LOCATION");
    assert!(rel < 1e-4 && rel2 < 1e-4, "SDs {} {}", fit.sd, o.sds[0]);
    let best = want["loglik"].as_f64().unwrap();
    assert!(fit.loglik >= best - 1e-6, "{} vs {best}", fit.loglik);
    println!(
        "(1 | BROOD) + (1 | LOCATION): worst {:.2e}, SDs {rel:.1e} {rel2:.1e}, logLik herstel - glmmTMB {:+.1e}",
        worst,
        fit.loglik - best
    );
}

/// Truth recovery on data drawn from the model itself: 400 participants, two periods (one
/// year and half a year of exposure), a lognormal random intercept with SD 1.16 and 0.27 events
/// per person-year (the scale of the trial's admissions), rate ratios 0.6 and 0.85. With 12
/// quadrature points the Wald interval of the first period's log rate ratio covers the truth in
/// 94-96% of 1,000 trials (4,000 trials: 94.8%, random-intercept SD 1.138). The Laplace
/// approximation (`HERSTEL_GLMM_NAGQ=1`, glmer's and glmmTMB's default, whose fits herstel
/// reproduces) is biased at these rare counts, and not by small samples: it overestimates the
/// SD (1.343 at 400 participants, 1.349 at 2,000, `HERSTEL_GLMM_N`), so the SE of a
/// between-participant contrast is 3-7% too large and the coverage 96.2% (4,000 trials) and
/// 95.8% (2,000 trials of 2,000); the band is asserted for `nagq >= 10` only. Heavy: `cargo
/// test --release --test glmm -- --ignored --nocapture`; `HERSTEL_GLMM_TRIALS` sets the number
/// of trials (the band needs 1,000).
#[test]
#[ignore]
fn poisson_lognormal_rate_ratio_intervals_cover_the_truth() {
    use herstel::glmm::GlmmData;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal, Poisson};
    use rayon::prelude::*;
    let n_trials: u64 = std::env::var("HERSTEL_GLMM_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // HERSTEL_GLMM_NAGQ: quadrature points (default 12)
    let n_agq: usize = std::env::var("HERSTEL_GLMM_NAGQ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    // HERSTEL_GLMM_N: participants per trial (default 400)
    let n: usize = std::env::var("HERSTEL_GLMM_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let (sd, rate) = (1.16_f64, 0.27_f64);
    let truth = 0.6_f64.ln();
    let rows: Vec<Option<(f64, f64, f64)>> = (0..n_trials)
        .into_par_iter()
        .map(|seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(90_000 + seed);
            let normal = Normal::new(-sd * sd / 2.0, sd).ok()?;
            let (mut x, mut y, mut group, mut offset) = (vec![], vec![], vec![], vec![]);
            let b: Vec<f64> = (0..n).map(|_| normal.sample(&mut rng)).collect();
            for (period, exposure, ratio) in [(0.0, 1.0, 0.6), (1.0, 0.5, 0.85)] {
                for (i, bi) in b.iter().enumerate() {
                    let imr = (i % 2) as f64;
                    let mu = rate * exposure * bi.exp() * if imr > 0.0 { ratio } else { 1.0 };
                    let count: f64 = Poisson::new(mu).ok()?.sample(&mut rng);
                    x.extend([1.0, imr, period, imr * period]);
                    y.push(count);
                    group.push(i as u32);
                    offset.push(f64::ln(exposure));
                }
            }
            let m = y.len();
            let d = GlmmData {
                x,
                p: 4,
                names: ["(Intercept)", "armIMR", "periodP2", "armIMR:periodP2"]
                    .map(String::from)
                    .to_vec(),
                y,
                trials: vec![1.0; m],
                offset,
                weights: vec![1.0; m],
                group,
                group_name: "id".into(),
                levels: (0..n).map(|i| i.to_string()).collect(),
                z: vec![1.0; m],
                q: 1,
                re_names: vec!["(Intercept)".into()],
                other_terms: vec![],
            };
            let opts = GlmmOptions {
                family: Family::Poisson,
                n_agq,
                level: 0.95,
            };
            let fit = fit_glmm(&d, &opts).ok()?;
            let t = &fit.fixed_effects[1];
            Some((t.estimate, t.std_error, fit.sd))
        })
        .collect();
    let fits: Vec<(f64, f64, f64)> = rows.into_iter().flatten().collect();
    let k = fits.len() as f64;
    assert!(
        k >= 0.99 * n_trials as f64,
        "{} trials not fitted",
        n_trials as f64 - k
    );
    let cover = fits
        .iter()
        .filter(|(e, s, _)| (e - truth).abs() <= 1.959964 * s)
        .count() as f64
        / k;
    let mean = fits.iter().map(|f| f.0).sum::<f64>() / k;
    let sd_est = (fits.iter().map(|f| (f.0 - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
    let se = fits.iter().map(|f| f.1).sum::<f64>() / k;
    let sd_re = fits.iter().map(|f| f.2).sum::<f64>() / k;
    println!(
        "Poisson-lognormal: coverage {:.1}% over {k} trials; log ratio mean {mean:.4} (truth {truth:.4}), SD over trials {sd_est:.4}, mean SE {se:.4}, mean random-intercept SD {sd_re:.3} (truth {sd})",
        100.0 * cover
    );
    if n_trials >= 1000 && n_agq >= 10 {
        assert!((0.94..=0.96).contains(&cover), "coverage {cover}");
    }
}
