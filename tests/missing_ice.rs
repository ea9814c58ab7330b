//! The intercurrent event from a dropout date and per-arm deltas (issue 17, points 2 and 3)
//! against the R reference written from the formulas (`tests/r/missing_ice_reference.R`,
//! `tests/fixtures/missing/ice.csv`, `ice_reference.json`), to 1e-6 relative: the counts, the
//! strategies (MAR keeps the observed post-ICE values, J2R/CR/CIR set them aside), the delta
//! grids with multipliers, with a fixed delta and the two-dimensional grid, and their tipping
//! points. Also: the new keys, left out or set to their neutral values, change nothing, and a
//! bad ICE column is an error that names the key, file, row and value.
#![allow(clippy::needless_range_loop)]

use herstel::ingest::Date;
use herstel::missing::trial::{first_post_ice_wave, nominal_date};
use herstel::missing::{analyse_condmean, CondMeanOptions, CondMeanOutput, Strategy, WideData};
use herstel::progress::Silent;
use serde_json::Value;

#[path = "common/missing_fixture.rs"]
mod missing_fixture;
use missing_fixture::{fixture, num, trial_small, wide, Check};

/// The ICE wave of every participant from ice.csv (waves at 6, 12, 18 months, nominal dates),
/// by the functions the pipeline uses; an ICE after the last wave is no ICE.
fn ice(d: &WideData) -> Vec<Option<usize>> {
    let text = fixture("ice.csv");
    let mut out = Vec::new();
    for (line, id) in text.lines().skip(1).zip(&d.ids) {
        let f: Vec<&str> = line.split(',').map(|s| s.trim_matches('"')).collect();
        assert_eq!(f[0], id);
        let rand = Date::parse(f[1]).unwrap();
        let dates: Vec<Date> = [6.0, 12.0, 18.0]
            .iter()
            .map(|m| nominal_date(rand, *m))
            .collect();
        let t = match f.get(2).copied().unwrap_or("") {
            "" | "NA" => None,
            s => Some(first_post_ice_wave(Date::parse(s).unwrap(), &dates)),
        };
        out.push(t.filter(|&t| t < 3));
    }
    assert_eq!(out.len(), d.ids.len());
    out
}

fn reference(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

fn grid() -> Vec<f64> {
    (0..41).map(|k| -15.0 + 0.5 * k as f64).collect()
}

fn axis(from: f64, to: f64, step: f64) -> Vec<f64> {
    let k = ((to - from) / step).round() as usize;
    (0..=k).map(|i| from + step * i as f64).collect()
}

fn options(d: &WideData) -> CondMeanOptions {
    CondMeanOptions {
        reference: 0,
        ice: Some(ice(d)),
        deltas: grid(),
        delta_strategies: vec![Strategy::J2r, Strategy::Mar],
        delta_arms: vec![1],
        delta_wave: 2,
        ..CondMeanOptions::default()
    }
}

fn r_name(s: &str) -> &str {
    if s == "J2R" {
        "JR"
    } else {
        s
    }
}

/// One tipping point (grid rows and the two tipping deltas) against an R `grid_rec`.
fn check_grid(c: &Check, what: &str, tp: &herstel::results::missing::TippingPoint, r: &Value) {
    let rows = r["table"].as_array().unwrap();
    assert_eq!(tp.grid.len(), rows.len(), "{what}");
    for (g, row) in tp.grid.iter().zip(rows) {
        assert_eq!(g.delta, num(&row["delta"]), "{what}");
        let at = format!("{what} delta {}", g.delta);
        c.rel(&format!("{at} estimate"), g.estimate, num(&row["estimate"]));
        c.rel(&format!("{at} se"), g.std_error, num(&row["se_jackknife"]));
        c.rel(&format!("{at} lower"), g.conf_low, num(&row["lower_95"]));
        c.rel(&format!("{at} upper"), g.conf_high, num(&row["upper_95"]));
        c.rel(&format!("{at} p"), g.p_value, num(&row["p"]));
    }
    for (got, key) in [
        (tp.tipping_delta, "tipping_delta_interpolated"),
        (tp.tipping_delta_exact, "tipping_delta_exact"),
    ] {
        match (got, r[key].as_f64()) {
            (Some(g), Some(w)) => c.rel(&format!("{what} {key}"), g, w),
            (None, None) => {}
            (g, w) => panic!("{what} {key}: got {g:?}, R {w:?}"),
        }
    }
}

fn run(opts: &CondMeanOptions) -> CondMeanOutput {
    analyse_condmean(&wide(), opts, &Silent).unwrap()
}

#[test]
fn ice_from_a_date_matches_the_r_reference_to_1e_6() {
    let d = wide();
    let r = reference("ice_reference.json");
    let r0 = reference("reference.json");
    let c = Check::new();
    // Per-arm multipliers: IMR + delta, TAU + 0.5 delta.
    let mut o = options(&d);
    o.delta_multipliers = vec![0.5, 1.0];
    let out = run(&o);

    // Counts per arm: participants with an ICE, observed values set aside, ICE waves.
    for row in r["data"]["counts"].as_array().unwrap() {
        let a = out
            .counts
            .by_arm
            .iter()
            .find(|a| a.arm == row["arm"])
            .unwrap();
        let n = |k: &str| row[k].as_u64().unwrap() as usize;
        assert_eq!(a.with_ice, n("with_ice"), "{}", a.arm);
        assert_eq!(
            a.post_ice_observed,
            Some(n("post_ice_observed")),
            "{}",
            a.arm
        );
        assert_eq!(
            a.ice_at_wave,
            vec![n("ice_t1"), n("ice_t2"), n("ice_t3")],
            "{}",
            a.arm
        );
    }
    assert_eq!(
        out.counts.post_ice_observed,
        Some(r["data"]["set_aside_total"].as_u64().unwrap() as usize)
    );
    assert!(
        out.counts.post_ice_observed.unwrap() > 0,
        "the fixture must exercise post-ICE data"
    );

    // MAR keeps the post-ICE values: the numbers of the reference without a date ICE.
    // J2R, CR, CIR: the data with the post-ICE values set aside.
    for s in &out.results {
        let name = r_name(&s.strategy);
        let rows = if name == "MAR" {
            r0["estimates"]["MAR"].as_array().unwrap()
        } else {
            r["estimates"][name].as_array().unwrap()
        };
        for (e, row) in s.waves.iter().zip(rows) {
            let at = format!("{} {}", s.strategy, e.wave);
            c.rel(&format!("{at} estimate"), e.estimate, num(&row["estimate"]));
            c.rel(&format!("{at} se"), e.std_error, num(&row["se_jackknife"]));
            c.rel(&format!("{at} lower"), e.conf_low, num(&row["lower_95"]));
            c.rel(&format!("{at} upper"), e.conf_high, num(&row["upper_95"]));
            c.rel(&format!("{at} p"), e.p_value, num(&row["p"]));
        }
    }
    // The MAR delta grid sets the post-ICE values aside: its zero is R's set-aside MAR.
    let mar = out.tipping.iter().find(|t| t.strategy == "MAR").unwrap();
    let z = mar.grid.iter().find(|g| g.delta == 0.0).unwrap();
    c.rel(
        "MAR set aside, delta 0",
        z.estimate,
        num(&r["estimates"]["MAR"][2]["estimate"]),
    );
    assert!((z.estimate - out.results[0].waves[2].estimate).abs() > 1e-3);
    for tp in &out.tipping {
        let s = r_name(&tp.strategy);
        check_grid(
            &c,
            &format!("{s} multipliers"),
            tp,
            &r["delta"][s]["multipliers"],
        );
        assert_eq!(tp.delta_arms, vec!["TAU".to_string(), "IMR".to_string()]);
        let m = tp.delta_multipliers.as_ref().unwrap();
        assert_eq!((m["IMR"], m["TAU"]), (1.0, 0.5));
    }

    // A fixed delta for TAU (-2) beside IMR's delta.
    let mut o = options(&d);
    o.delta_fixed = vec![-2.0, 0.0];
    let out = run(&o);
    for tp in &out.tipping {
        let s = r_name(&tp.strategy);
        check_grid(&c, &format!("{s} fixed"), tp, &r["delta"][s]["fixed"]);
        assert_eq!(tp.fixed.as_ref().unwrap()["TAU"], -2.0);
    }

    // The two-dimensional grid: IMR -12..4 by 2 (rows), TAU -4..4 by 2 (columns).
    let mut o = options(&d);
    o.grid2d = Some(vec![axis(-4.0, 4.0, 2.0), axis(-12.0, 4.0, 2.0)]);
    let out = run(&o);
    assert!(out.tipping.is_empty());
    assert_eq!(out.tipping2d.len(), 2);
    for t2 in &out.tipping2d {
        let s = r_name(&t2.strategy);
        let rr = &r["delta"][s]["grid2d"];
        assert_eq!(
            (t2.row_arm.as_str(), t2.column_arm.as_str()),
            ("IMR", "TAU")
        );
        let cols = rr["columns"].as_array().unwrap();
        assert_eq!(t2.columns.len(), cols.len());
        for (tp, col) in t2.columns.iter().zip(cols) {
            let dt = num(&col["delta_tau"]);
            assert_eq!(tp.fixed.as_ref().unwrap()["TAU"], dt);
            check_grid(&c, &format!("{s} grid2d TAU {dt}"), tp, col);
        }
    }
    c.finish("ICE from a date, per-arm deltas vs R");
}

#[test]
fn without_the_new_keys_the_results_are_identical() {
    let d = wide();
    let base = CondMeanOptions {
        reference: 0,
        deltas: grid(),
        delta_strategies: vec![Strategy::J2r, Strategy::Mar],
        delta_arms: vec![1],
        delta_wave: 2,
        ..CondMeanOptions::default()
    };
    let a = analyse_condmean(&d, &base, &Silent).unwrap();
    // The neutral values of every new option: the last-observed ICE given explicitly, a
    // multiplier of 1 for the delta arm, fixed deltas of 0.
    let neutral = CondMeanOptions {
        ice: Some(d.ice_last_observed()),
        delta_multipliers: vec![0.0, 1.0],
        delta_fixed: vec![0.0, 0.0],
        ..base.clone()
    };
    let b = analyse_condmean(&d, &neutral, &Silent).unwrap();
    assert_eq!(a.results, b.results);
    assert_eq!(a.tipping.len(), b.tipping.len());
    for (x, y) in a.tipping.iter().zip(&b.tipping) {
        assert_eq!(x.grid, y.grid);
        assert_eq!(x.tipping_delta, y.tipping_delta);
        assert_eq!(x.tipping_delta_exact, y.tipping_delta_exact);
        assert_eq!(x.delta_arms, y.delta_arms);
        assert!(x.delta_multipliers.is_none() && x.fixed.is_none());
    }
    assert_eq!(a.counts.by_arm[1].with_ice, b.counts.by_arm[1].with_ice);
    assert_eq!(b.counts.post_ice_observed, Some(0));
    assert_eq!(a.counts.post_ice_observed, None);
    // And the one-arm numbers of the fixture hold (reference.json, J2R at T3).
    let r = reference("reference.json");
    let j2r = a.tipping.iter().find(|t| t.strategy == "J2R").unwrap();
    let want = r["delta"]["JR"]["tipping_delta_exact"].as_f64().unwrap();
    assert!((j2r.tipping_delta_exact.unwrap() - want).abs() < 1e-6 * want.abs());
}

#[test]
fn a_two_dimensional_grid_has_the_one_dimensional_grid_as_its_zero_column() {
    let d = wide();
    let mut o = options(&d);
    o.grid2d = Some(vec![axis(-2.0, 2.0, 1.0), grid()]);
    let two = run(&o);
    let one = run(&options(&d));
    for (t2, t1) in two.tipping2d.iter().zip(&one.tipping) {
        assert_eq!(t2.strategy, t1.strategy);
        let col = &t2.columns[t2.column_deltas.iter().position(|x| *x == 0.0).unwrap()];
        for (g2, g1) in col.grid.iter().zip(&t1.grid) {
            assert!((g2.estimate - g1.estimate).abs() < 1e-10);
            assert!((g2.p_value - g1.p_value).abs() < 1e-10 * g1.p_value.max(1e-300) + 1e-14);
        }
        // A larger reference-arm delta shrinks the contrast: the boundary moves towards 0.
        let tips: Vec<f64> = t2
            .columns
            .iter()
            .map(|c| c.tipping_delta_exact.unwrap())
            .collect();
        assert!(tips.windows(2).all(|w| w[1] > w[0]), "{tips:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The pipeline: the ICE column of participants.csv.

const SPEC: &str = r#"
[[outcomes]]
name = "imrs_client"
role = "primary"
[analysis_sets.per_protocol]
enabled = false
[sensitivity]
site = false
groups = false
random_slope = false
[sensitivity.fidelity]
enabled = false
[admissions]
enabled = false
[estimand]
[sensitivity_missing]
ice = { column = "discontinued_on" }
[sensitivity_missing.delta]
units = "score"
from = -2.0
to = 1.0
step = 0.25
arms = { IMR = 1.0, CAU = 0.5 }
"#;

/// trial-small with a `discontinued_on` column: every third participant discontinues 200 days
/// after randomization (between the 6- and 12-month waves, or as the export dates them).
fn with_column(trial: &mut herstel::ingest::Trial, cell: &dyn Fn(usize) -> Option<String>) {
    let values = (0..trial.participants.len()).map(cell).collect();
    trial.participant_extra.push(herstel::ingest::ExtraColumn {
        name: "discontinued_on".into(),
        values,
    });
}

#[test]
fn the_pipeline_takes_the_ice_from_a_participants_column() {
    use herstel::pipeline::{self, spec::AnalysisSpec};
    let (mut trial, scored) = trial_small();
    let arms = trial.study.arms.clone();
    let spec_text = SPEC.replace("CAU", arms.iter().find(|a| *a != "IMR").unwrap());
    let spec = AnalysisSpec::from_toml(&spec_text, "test").unwrap();
    let dates: Vec<Option<Date>> = trial.participants.iter().map(|p| p.randomized_on).collect();
    with_column(&mut trial, &|k| {
        (k % 3 == 0)
            .then(|| dates[k].map(|d| Date::from_days(d.days() + 200).to_string()))
            .flatten()
    });
    spec.check_for_trial(&trial, "test").unwrap();
    let ice = herstel::missing::trial::ice_from_dates(&trial, "discontinued_on").unwrap();
    let with_date = ice.iter().filter(|t| t.is_some()).count();
    assert!(with_date > 0);
    let r = pipeline::analyse(&trial, &scored, &spec, &Silent);
    let s = &r.sensitivity_missing[0];
    assert_eq!(s.ice_definition, "date_column:discontinued_on");
    let total: usize = s.counts.by_arm.iter().map(|a| a.with_ice).sum();
    assert!(total > 0 && total <= with_date, "{total} of {with_date}");
    let set_aside: usize = s
        .counts
        .by_arm
        .iter()
        .map(|a| a.post_ice_observed.unwrap())
        .sum();
    assert_eq!(s.counts.post_ice_observed, Some(set_aside));
    let t = &s.tipping_point[0];
    let m = t.delta_multipliers.as_ref().unwrap();
    assert_eq!(m["IMR"], 1.0);
    assert_eq!(t.delta_arms.len(), 2);
    // The report shows the ICE counts and the multipliers.
    let dir = tempfile::tempdir().unwrap();
    let opts = herstel::report::ReportOptions {
        png: false,
        ..herstel::report::ReportOptions::default()
    };
    herstel::report::write_all(&r, dir.path(), &opts).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("observed after the ICE and set aside"));
    assert!(
        html.contains("delta x 0.5"),
        "multipliers not in the report"
    );
}

#[test]
fn a_bad_ice_column_is_an_error_naming_key_file_row_and_value() {
    use herstel::pipeline::spec::AnalysisSpec;
    let (mut trial, _) = trial_small();
    let spec_text = SPEC.replace("arms = { IMR = 1.0, CAU = 0.5 }\n", "");
    let spec = AnalysisSpec::from_toml(&spec_text, "test.toml").unwrap();
    // No such column.
    let e = spec
        .check_for_trial(&trial, "test.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sensitivity_missing.ice.column = \"discontinued_on\"")
            && e.contains("participants.csv")
            && e.contains("no such column"),
        "{e}"
    );
    // A value that is not a date.
    with_column(&mut trial, &|k| (k == 1).then(|| "31/12/2024".to_string()));
    let e = spec
        .check_for_trial(&trial, "test.toml")
        .unwrap_err()
        .to_string();
    let row = trial.participants[1].row;
    assert!(
        e.contains("sensitivity_missing.ice.column")
            && e.contains(&format!("participants.csv row {row}"))
            && e.contains("\"31/12/2024\"")
            && e.contains("not a date"),
        "{e}"
    );
    // A bad spec form names the key.
    let bad = SPEC.replace(
        "ice = { column = \"discontinued_on\" }",
        "ice = { colum = \"x\" }",
    );
    let e = AnalysisSpec::from_toml(&bad, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("ice"), "{e}");
    let bad = SPEC.replace(
        "arms = { IMR = 1.0, CAU = 0.5 }\n",
        "grid2d = true\nfixed = { IMR = 0.1 }\n",
    );
    let e = AnalysisSpec::from_toml(&bad, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sensitivity_missing.delta.grid2d"), "{e}");
}

#[test]
fn approximate_bayes_keeps_post_ice_values_under_mar_only() {
    use herstel::missing::mi::analyse_approx_bayes;
    let d = wide();
    let mut with_ice = options(&d);
    with_ice.delta_fixed = vec![-2.0, 0.0];
    let plain = CondMeanOptions {
        ice: None,
        delta_fixed: Vec::new(),
        ..with_ice.clone()
    };
    let a = analyse_approx_bayes(&d, &with_ice, 10, 5, &Silent).unwrap();
    let b = analyse_approx_bayes(&d, &plain, 10, 5, &Silent).unwrap();
    let names: Vec<&str> = a
        .result
        .strategies
        .iter()
        .map(|s| s.strategy.as_str())
        .collect();
    assert_eq!(names, ["MAR", "J2R", "CR", "CIR"]);
    // MAR: the same data, bootstrap samples and draws as without the date ICE.
    assert_eq!(a.result.strategies[0], b.result.strategies[0]);
    // J2R: refitted without the 61 post-ICE values.
    assert_ne!(a.result.strategies[1], b.result.strategies[1]);
    // The MAR delta grid sets the post-ICE values aside and adds TAU's fixed delta: its zero
    // differs from the MAR row.
    let mar = a
        .result
        .tipping_point
        .iter()
        .find(|t| t.strategy == "MAR")
        .unwrap();
    let z = mar.grid.iter().find(|g| g.delta == 0.0).unwrap();
    assert!((z.estimate - a.result.strategies[0].waves[2].estimate).abs() > 1e-3);
}

#[test]
fn the_pipeline_runs_the_two_dimensional_grid_and_reports_it() {
    use herstel::pipeline::{self, spec::AnalysisSpec};
    let (trial, scored) = trial_small();
    let reference = trial
        .study
        .arms
        .iter()
        .find(|a| *a != "IMR")
        .unwrap()
        .clone();
    let spec_text = SPEC
        .replace("ice = { column = \"discontinued_on\" }\n", "")
        .replace(
            "arms = { IMR = 1.0, CAU = 0.5 }\n",
            &format!(
                "grid2d = true\nranges.{reference} = {{ from = -0.5, to = 0.5, step = 0.5 }}\n"
            ),
        );
    let spec = AnalysisSpec::from_toml(&spec_text, "test").unwrap();
    spec.check_for_trial(&trial, "test").unwrap();
    let r = pipeline::analyse(&trial, &scored, &spec, &Silent);
    let s = &r.sensitivity_missing[0];
    assert!(s.tipping_point.is_empty());
    assert_eq!(s.tipping_point_2d.len(), 2);
    let t = &s.tipping_point_2d[0];
    assert_eq!(t.column_deltas, vec![-0.5, 0.0, 0.5]);
    assert_eq!(t.row_deltas.len(), 13);
    assert_eq!(t.columns.len(), 3);
    assert!(t.columns.iter().all(|c| c.grid.len() == 13));
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"tipping_point_2d\""));
    let dir = tempfile::tempdir().unwrap();
    let opts = herstel::report::ReportOptions {
        png: false,
        ..herstel::report::ReportOptions::default()
    };
    herstel::report::write_all(&r, dir.path(), &opts).unwrap();
    let md = std::fs::read_to_string(dir.path().join(format!(
        "tables/sensitivity_missing_tipping2d_{}_imrs_client.md",
        t.strategy
    )))
    .unwrap();
    assert!(md.contains("two-dimensional tipping point"), "{md}");
    assert!(md.contains(&format!("{reference} -0.50")), "{md}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("two-dimensional tipping-point analysis"));
}

#[test]
fn the_ice_wave_uses_the_assessment_date_then_the_nominal_date() {
    use herstel::missing::trial::ice_from_dates;
    let (mut trial, _) = trial_small();
    // Participant 0: an ICE the day before its first follow-up assessment -> the first
    // follow-up wave is post-ICE; on that day -> the second one is (or none).
    let p0 = &trial.participants[0];
    let first = trial
        .assessments
        .iter()
        .find(|a| a.participant.index() == 0 && a.wave.index() == 1 && a.assessed_on.is_some())
        .expect("participant 0 has a dated first follow-up")
        .assessed_on
        .unwrap();
    let rand = p0.randomized_on.unwrap();
    let cell = |d: Date| Some(d.to_string());
    let set = |trial: &mut herstel::ingest::Trial, v: Option<String>| {
        trial
            .participant_extra
            .retain(|c| c.name != "discontinued_on");
        with_column(trial, &|k| if k == 0 { v.clone() } else { None });
    };
    set(&mut trial, cell(Date::from_days(first.days() - 1)));
    assert_eq!(
        ice_from_dates(&trial, "discontinued_on").unwrap()[0],
        Some(0)
    );
    set(&mut trial, cell(first));
    assert!(ice_from_dates(&trial, "discontinued_on").unwrap()[0].unwrap() >= 1);
    // Without assessment dates: the nominal date randomized_on + months x 30.4375.
    for a in trial.assessments.iter_mut() {
        if a.participant.index() == 0 {
            a.assessed_on = None;
        }
    }
    let months = trial.study.waves[1].months;
    let nominal = nominal_date(rand, months);
    set(&mut trial, cell(Date::from_days(nominal.days() - 1)));
    assert_eq!(
        ice_from_dates(&trial, "discontinued_on").unwrap()[0],
        Some(0)
    );
    set(&mut trial, cell(nominal));
    assert!(ice_from_dates(&trial, "discontinued_on").unwrap()[0].unwrap() >= 1);
    // Neither: an error naming the key, the row and the wave.
    trial.participants[0].randomized_on = None;
    let e = ice_from_dates(&trial, "discontinued_on")
        .unwrap_err()
        .to_string();
    let row = trial.participants[0].row;
    assert!(
        e.contains("sensitivity_missing.ice.column")
            && e.contains(&format!("row {row}"))
            && e.contains("no assessment date"),
        "{e}"
    );
}
