//! Trial simulator: determinism, export layout, plausible marginals, item ranges, the cluster
//! design, configuration files, the `herstel simulate` command, the simulate -> validate ->
//! score round trip and the cached observed-scale truths of the defaults.
use std::collections::BTreeMap;
use std::path::Path;

use herstel::ingest::{read_export, ProblemKind, Trial, ValidateOptions, ValidationReport};
use herstel::schema::Schema;
use herstel::scoring::{score, Scored};
use herstel::simulate::observed::{
    cached_observed_scale, observed_scale, ObservedScale, DEFAULT_OBSERVED_SCALE_JSON,
};
use herstel::simulate::{dates, simulate, Design, SimConfig};

/// Minimal CSV reader (quoted fields, no embedded line breaks): header + rows.
fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let split = |line: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => out.push(std::mem::take(&mut cur)),
                (c, _) => cur.push(c),
            }
        }
        out.push(cur);
        out
    };
    let header = split(lines.next().expect("header"));
    let rows: Vec<Vec<String>> = lines.map(split).collect();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "ragged row {r:?}");
    }
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("missing column {name}"))
}

fn config_with(n: usize) -> SimConfig {
    let mut cfg = SimConfig::default();
    cfg.study.n_participants = n;
    cfg
}

#[test]
fn same_seed_same_bytes_and_different_seeds_differ() {
    let cfg = SimConfig::default();
    let a = simulate(&cfg, 7).unwrap().files().unwrap();
    let b = simulate(&cfg, 7).unwrap().files().unwrap();
    assert_eq!(a, b);
    let c = simulate(&cfg, 8).unwrap().files().unwrap();
    for name in [
        "participants.csv",
        "assessments.csv",
        "admissions.csv",
        "truth.json",
    ] {
        let x = &a.iter().find(|f| f.0 == name).unwrap().1;
        let y = &c.iter().find(|f| f.0 == name).unwrap().1;
        assert_ne!(x, y, "{name} identical for seeds 7 and 8");
    }
}

#[test]
fn export_has_required_tables_and_columns() {
    let trial = simulate(&SimConfig::default(), 1).unwrap();
    let study: toml::Value = toml::from_str(&trial.study_toml).unwrap();
    assert_eq!(study["arms"].as_array().unwrap().len(), 2);
    assert_eq!(study["arms"][0].as_str(), Some("CAU"));
    assert_eq!(study["intervention"].as_str(), Some("IMR"));
    assert_eq!(study["design"].as_str(), Some("individual"));
    let months: Vec<i64> = study["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["months"].as_integer().unwrap())
        .collect();
    assert_eq!(months, vec![0, 12, 18]);

    let (h, sites) = parse_csv(&trial.sites_csv);
    assert_eq!(h, ["site_id", "site_name"]);
    assert_eq!(sites.len(), 2);
    let (h, groups) = parse_csv(&trial.groups_csv);
    assert_eq!(h, ["group_id", "site_id", "fidelity"]);
    assert!((12..=18).contains(&groups.len()), "{} groups", groups.len());
    let fid: Vec<f64> = groups.iter().map(|g| g[2].parse().unwrap()).collect();
    assert!(fid.iter().all(|f| (1.0..=5.0).contains(f)));

    let (h, parts) = parse_csv(&trial.participants_csv);
    for c in [
        "participant_id",
        "site_id",
        "team_id",
        "arm",
        "group_id",
        "randomized_on",
        "age",
        "sex",
        "diagnosis",
        "sessions_attended",
    ] {
        col(&h, c);
    }
    assert_eq!(parts.len(), 190);
    let arm = col(&h, "arm");
    let group = col(&h, "group_id");
    let n_imr = parts.iter().filter(|p| p[arm] == "IMR").count();
    assert!((105..=123).contains(&n_imr), "IMR n = {n_imr}");
    // partially nested: groups in the intervention arm only, every IMR participant in one
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &parts {
        if p[arm] == "IMR" {
            assert!(!p[group].is_empty());
            *sizes.entry(p[group].as_str()).or_default() += 1;
        } else {
            assert_eq!(p[arm], "CAU");
            assert!(p[group].is_empty());
            assert!(p[col(&h, "sessions_attended")].is_empty());
        }
        assert!(dates::parse_date(&p[col(&h, "randomized_on")]).is_some());
        let age: u32 = p[col(&h, "age")].parse().unwrap();
        assert!((18..=70).contains(&age));
    }
    assert!(sizes.values().all(|&s| (6..=10).contains(&s)), "{sizes:?}");
    assert_eq!(sizes.len(), groups.len());

    let (h, rows) = parse_csv(&trial.assessments_csv);
    assert_eq!(&h[..3], ["participant_id", "wave", "assessed_on"]);
    assert_eq!(h.len(), 3 + 15 + 15 + 30 + 53 + 7 + 12);
    for name in [
        "imrs_client_01",
        "imrs_client_15",
        "imrs_clinician_13",
        "mhrm_30",
        "bsi_53",
        "sfs_07",
        "honos_12",
    ] {
        col(&h, name);
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in &rows {
        assert!(
            seen.insert((r[0].clone(), r[1].clone())),
            "duplicate participant x wave"
        );
        assert!(["T1", "T2", "T3"].contains(&r[1].as_str()));
        assert!(r[2].is_empty() || dates::parse_date(&r[2]).is_some());
    }
    let (h, adm) = parse_csv(&trial.admissions_csv);
    assert_eq!(
        h,
        [
            "participant_id",
            "admitted_on",
            "discharged_on",
            "involuntary"
        ]
    );
    assert!(!adm.is_empty());
    // non-overlapping episodes per participant, discharge after admission
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for a in &adm {
        let start = dates::parse_date(&a[1]).unwrap();
        if !a[2].is_empty() {
            assert!(dates::parse_date(&a[2]).unwrap() > start);
        }
        if let Some(prev_end) = last.get(a[0].as_str()) {
            assert!(start > *prev_end, "overlapping admissions of {}", a[0]);
        }
        last.insert(
            &a[0],
            if a[2].is_empty() {
                i64::MAX
            } else {
                dates::parse_date(&a[2]).unwrap()
            },
        );
        assert!(a[3] == "0" || a[3] == "1");
    }
}

#[test]
fn items_are_within_range() {
    let trial = simulate(&config_with(400), 3).unwrap();
    let (h, rows) = parse_csv(&trial.assessments_csv);
    let mut honos9 = 0;
    let mut item13_missing = 0;
    for r in &rows {
        for (name, v) in h.iter().zip(r).skip(3) {
            if v.is_empty() {
                if name == "imrs_client_13" {
                    item13_missing += 1;
                }
                continue;
            }
            if name.starts_with("sfs_") {
                let x: f64 = v.parse().unwrap();
                assert!((55.0..=145.0).contains(&x), "{name} = {v}");
                assert_eq!(
                    v.split('.').nth(1).map(str::len),
                    Some(1),
                    "{name} = {v} not one decimal"
                );
                continue;
            }
            let x: i64 = v
                .parse()
                .unwrap_or_else(|_| panic!("{name} = {v} is not an integer"));
            let ok = if name.starts_with("imrs_") {
                (1..=5).contains(&x)
            } else if name.starts_with("honos_") {
                if x == 9 {
                    honos9 += 1;
                }
                (0..=4).contains(&x) || x == 9
            } else {
                (0..=4).contains(&x)
            };
            assert!(ok, "{name} = {v}");
        }
    }
    assert!(honos9 > 0, "no HoNOS not-known codes");
    assert!(item13_missing > 0, "IMRS item 13 never missing");
    let below: usize = trial
        .truth
        .realised
        .scores
        .iter()
        .map(|s| s.below_80_percent)
        .sum();
    assert!(below > 0, "no score below the 80% rule");
}

/// Scores IMRS client (mean of >= 12 answered items) from assessments.csv rows of one wave.
fn imrs_scores(h: &[String], rows: &[Vec<String>], wave: &str) -> Vec<f64> {
    let idx: Vec<usize> = (1..=15)
        .map(|j| col(h, &format!("imrs_client_{j:02}")))
        .collect();
    rows.iter()
        .filter(|r| r[1] == wave)
        .filter_map(|r| {
            let xs: Vec<f64> = idx.iter().filter_map(|&i| r[i].parse().ok()).collect();
            (xs.len() >= 12).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
        })
        .collect()
}

#[test]
fn marginals_are_plausible_over_many_participants() {
    let n = 4000;
    let trial = simulate(&config_with(n), 11).unwrap();
    let (ph, parts) = parse_csv(&trial.participants_csv);
    let arm = col(&ph, "arm");
    let imr_share = parts.iter().filter(|p| p[arm] == "IMR").count() as f64 / n as f64;
    assert!((imr_share - 0.6).abs() < 0.01, "IMR share {imr_share}");
    let ses = col(&ph, "sessions_attended");
    let s: Vec<f64> = parts.iter().filter_map(|p| p[ses].parse().ok()).collect();
    let none = s.iter().filter(|&&x| x == 0.0).count() as f64 / s.len() as f64;
    let half = s.iter().filter(|&&x| x >= 20.0).count() as f64 / s.len() as f64;
    assert!((none - 0.18).abs() < 0.03, "no sessions {none}");
    assert!((half - 0.49).abs() < 0.05, "half or more {half}");

    let (h, rows) = parse_csv(&trial.assessments_csv);
    // a missed wave is an absent row or a row with every item empty
    let present = |wave: &str| {
        rows.iter()
            .filter(|r| r[1] == wave && r[3..].iter().any(|c| !c.is_empty()))
            .count() as f64
            / n as f64
    };
    assert_eq!(present("T1"), 1.0);
    let miss2 = 1.0 - present("T2");
    let miss3 = 1.0 - present("T3");
    assert!((0.14..=0.19).contains(&miss2), "missing at T2 {miss2}");
    assert!((0.09..=0.15).contains(&miss3), "missing at T3 {miss3}");
    // intermittent: some miss T2 and return at T3
    let has = |id: &str, wave: &str| {
        rows.iter()
            .any(|r| r[0] == id && r[1] == wave && r[3..].iter().any(|c| !c.is_empty()))
    };
    let returners = parts
        .iter()
        .take(1000)
        .filter(|p| !has(&p[0], "T2") && has(&p[0], "T3"))
        .count();
    assert!(returners > 0, "no participant returns after a missed wave");

    let base = imrs_scores(&h, &rows, "T1");
    let mean = base.iter().sum::<f64>() / base.len() as f64;
    let sd =
        (base.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (base.len() - 1) as f64).sqrt();
    assert!((mean - 3.45).abs() < 0.06, "baseline IMRS mean {mean}");
    assert!((sd - 0.57).abs() < 0.08, "baseline IMRS sd {sd}");

    // admissions per person-year in the follow-up window (day 1 to the 18-month day)
    let (ah, adm) = parse_csv(&trial.admissions_csv);
    let rand_day: BTreeMap<&str, i64> = parts
        .iter()
        .map(|p| {
            (
                p[0].as_str(),
                dates::parse_date(&p[col(&ph, "randomized_on")]).unwrap(),
            )
        })
        .collect();
    let fu = (18.0f64 * 30.4375).round() as i64;
    let mut count = 0;
    let mut prior = 0;
    for a in &adm {
        let d = dates::parse_date(&a[col(&ah, "admitted_on")]).unwrap() - rand_day[a[0].as_str()];
        if (1..=fu).contains(&d) {
            count += 1;
        }
        if (-365..=-1).contains(&d) {
            prior += 1;
        }
    }
    let rate = count as f64 / (n as f64 * fu as f64 / 365.25);
    let prior_rate = prior as f64 / n as f64;
    assert!((rate - 0.25).abs() < 0.03, "follow-up rate {rate}");
    assert!(
        (prior_rate - 0.25).abs() < 0.04,
        "prior-year rate {prior_rate}"
    );
    assert_eq!(trial.truth.realised.admissions.episodes_in_follow_up, count);
}

#[test]
fn cluster_design_puts_everyone_in_a_group() {
    let mut cfg = config_with(300);
    cfg.study.design = Design::Cluster;
    let trial = simulate(&cfg, 5).unwrap();
    let study: toml::Value = toml::from_str(&trial.study_toml).unwrap();
    assert_eq!(study["design"].as_str(), Some("cluster"));
    let (gh, groups) = parse_csv(&trial.groups_csv);
    let (ph, parts) = parse_csv(&trial.participants_csv);
    let arm = col(&ph, "arm");
    let group = col(&ph, "group_id");
    let mut group_arm: BTreeMap<&str, &str> = BTreeMap::new();
    for p in &parts {
        assert!(
            !p[group].is_empty(),
            "participant without a group in a cluster trial"
        );
        let prev = group_arm.insert(&p[group], &p[arm]);
        assert!(
            prev.is_none_or(|a| a == p[arm]),
            "group {} spans arms",
            p[group]
        );
    }
    assert!(group_arm.values().any(|a| *a == "CAU") && group_arm.values().any(|a| *a == "IMR"));
    let fid = col(&gh, "fidelity");
    for g in &groups {
        let a = group_arm[g[0].as_str()];
        assert_eq!(
            g[fid].is_empty(),
            a == "CAU",
            "fidelity only for IMR groups: {g:?}"
        );
    }
}

#[test]
fn default_config_file_documents_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("analyses/simulate-default.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let cfg = SimConfig::from_toml_str(&text).unwrap();
    assert_eq!(cfg, SimConfig::default());
    // every default field appears in the file: serialising the defaults gives no key the file lacks
    let file: toml::Value = toml::from_str(&text).unwrap();
    let defaults: toml::Value = toml::Value::try_from(SimConfig::default()).unwrap();
    fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, x) in t {
                let p = format!("{prefix}{k}");
                keys(x, &format!("{p}."), out);
                out.push(p);
            }
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    keys(&file, "", &mut a);
    keys(&defaults, "", &mut b);
    let missing: Vec<&String> = b.iter().filter(|k| !a.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "not documented in simulate-default.toml: {missing:?}"
    );
}

#[test]
fn partial_config_overrides_and_bad_values_are_named() {
    let cfg =
        SimConfig::from_toml_str("[study]\nn_participants = 60\n[admissions]\nrate_ratio = 0.5\n")
            .unwrap();
    assert_eq!(cfg.study.n_participants, 60);
    assert_eq!(cfg.admissions.rate_ratio, 0.5);
    assert_eq!(cfg.groups, SimConfig::default().groups);
    let err = SimConfig::from_toml_str("[missing]\nitem_rate = 1.5\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing.item_rate") && err.contains("1.5"),
        "{err}"
    );
    let err = SimConfig::from_toml_str("[effects]\nself_management = [0.0, 0.2]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("effects.self_management"), "{err}");
    let err = SimConfig::from_toml_str("[study]\nn_participantz = 60\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("n_participantz"), "{err}");
    let mut bad = SimConfig::default();
    bad.latent.person_cor[0][1] = 0.99;
    bad.latent.person_cor[1][0] = 0.99;
    bad.latent.person_cor[0][3] = -0.99;
    bad.latent.person_cor[3][0] = -0.99;
    assert!(simulate(&bad, 1).is_err());
}

#[test]
fn observed_scale_truths_are_attenuated_latent_effects() {
    let mut cfg = SimConfig::default();
    cfg.truth.n_participants = 6000;
    let trial = simulate(&cfg, 1).unwrap().with_observed_scale().unwrap();
    let obs = trial.truth.observed_scale.as_ref().unwrap();
    assert_eq!(obs.n_participants, 6000);
    let imrs = obs
        .arm_effects
        .iter()
        .find(|e| e.instrument == "imrs_client")
        .unwrap();
    assert_eq!(imrs.waves.len(), 3);
    assert!(imrs.waves[0].difference.estimate.abs() < 4.0 * imrs.waves[0].difference.se);
    let latent_t3 = cfg.effects.self_management[2];
    let t3 = imrs.waves[2].difference;
    assert!(
        t3.estimate > 0.0 && (t3.estimate - latent_t3).abs() < 0.06,
        "T3 {t3:?} vs latent {latent_t3}"
    );
    assert!(imrs.waves[2].change_difference.is_some());
    let w = &obs.within_person;
    // the chain's signs: S lowers symptoms, raises function; symptoms lower and function raises MHRM
    assert!(
        w.a1.estimate < 0.0 && w.a2.estimate > 0.0 && w.b1.estimate < 0.0 && w.b2.estimate > 0.0
    );
    assert!(w.c_prime.estimate > 0.0 && w.c.estimate > w.c_prime.estimate);
    // attenuation by measurement error: |observed a1| below the latent path
    assert!(w.a1.estimate.abs() < cfg.paths.a1_clinical_on_self_management.abs());
    let icc = obs
        .descriptives
        .icc_person
        .iter()
        .find(|i| i.instrument == "imrs_client")
        .unwrap()
        .icc;
    assert!((0.45..=0.7).contains(&icc), "person ICC {icc}");
    // the truth is a function of the parameters only, not of the trial's seed
    let other = simulate(&cfg, 2).unwrap().with_observed_scale().unwrap();
    assert_eq!(other.truth.observed_scale, trial.truth.observed_scale);
}

#[test]
fn command_writes_the_export_and_truth() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("small.toml");
    std::fs::write(
        &cfg_path,
        "[study]\nn_participants = 80\n[truth]\nn_participants = 2000\n",
    )
    .unwrap();
    let out = dir.path().join("export");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_herstel"))
        .args(["simulate", "--out"])
        .arg(&out)
        .args(["--seed", "9", "--config"])
        .arg(&cfg_path)
        .status()
        .unwrap();
    assert!(status.success());
    for f in [
        "study.toml",
        "sites.csv",
        "groups.csv",
        "participants.csv",
        "assessments.csv",
        "admissions.csv",
    ] {
        assert!(out.join(f).is_file(), "{f} not written");
    }
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("truth.json")).unwrap()).unwrap();
    assert_eq!(truth["seed"], 9);
    assert_eq!(truth["parameters"]["study"]["n_participants"], 80);
    assert!(
        truth["observed_scale"]["within_person"]["a1"]["se"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let (_, parts) = parse_csv(&std::fs::read_to_string(out.join("participants.csv")).unwrap());
    assert_eq!(parts.len(), 80);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_herstel"))
        .args(["simulate", "--out"])
        .arg(dir.path().join("x"))
        .args(["--config", "/nonexistent/config.toml"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nonexistent"));
}

/// Validates an export with the embedded schema (asserting no errors) and scores it.
fn validate_and_score(dir: &Path) -> (Trial, Scored, ValidationReport) {
    let ing = read_export(
        dir,
        &Schema::embedded().unwrap(),
        &ValidateOptions::default(),
    );
    assert_eq!(ing.report.n_errors(), 0, "{}", ing.report);
    let trial = ing.trial.expect("a trial");
    let scored = score(&trial, &trial.instruments);
    (trial, scored, ing.report)
}

const TOTALS: [&str; 6] = [
    "imrs_client",
    "imrs_clinician",
    "mhrm",
    "bsi",
    "sfs",
    "honos",
];

/// n, mean and SD of a score per arm x wave: `[arm][wave]`.
fn cell_stats(
    scored: &Scored,
    name: &str,
    n_arms: usize,
    n_waves: usize,
) -> Vec<Vec<(usize, f64, f64)>> {
    let vals = scored
        .score(name)
        .unwrap_or_else(|| panic!("no score column {name}"));
    let mut out = vec![vec![(0usize, f64::NAN, f64::NAN); n_waves]; n_arms];
    for (a, row) in out.iter_mut().enumerate() {
        for (t, slot) in row.iter_mut().enumerate() {
            let xs: Vec<f64> = (0..scored.n_rows())
                .filter(|&r| scored.arms()[r].index() == a && scored.waves()[r].index() == t)
                .filter_map(|r| vals[r])
                .collect();
            let n = xs.len();
            let m = xs.iter().sum::<f64>() / n as f64;
            let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n as f64 - 1.0)).sqrt();
            *slot = (n, m, sd);
        }
    }
    out
}

/// Prints means (SD) [n] of every scored total per arm x wave.
fn print_summary(title: &str, trial: &Trial, scored: &Scored) {
    let (na, nw) = (trial.study.arms.len(), trial.study.waves.len());
    eprintln!("== {title}: mean (SD) [n] per arm x wave");
    for name in TOTALS {
        let st = cell_stats(scored, name, na, nw);
        for (a, row) in st.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(t, (n, m, sd))| {
                    format!("{} {m:7.3} ({sd:6.3}) [{n}]", trial.study.waves[t].label)
                })
                .collect();
            eprintln!(
                "{name:>15} {:>4}: {}",
                trial.study.arms[a],
                cells.join("  ")
            );
        }
    }
}

#[test]
fn simulate_validate_score_round_trip() {
    let cases = [
        (Design::Individual, 190, 2021u64),
        (Design::Cluster, 300, 4),
        (Design::Individual, 1500, 17),
    ];
    for (design, n, seed) in cases {
        let mut cfg = config_with(n);
        cfg.study.design = design;
        let sim = simulate(&cfg, seed).unwrap();
        let dir = tempfile::tempdir().unwrap();
        sim.write(dir.path()).unwrap();
        let (trial, scored, report) = validate_and_score(dir.path());
        // the only warnings are the ones the simulator means to produce
        for w in report.warnings() {
            assert!(
                matches!(
                    w.kind,
                    ProblemKind::ItemMissingness | ProblemKind::NoFollowUp
                ),
                "unexpected warning {w}"
            );
        }
        assert!(trial.exclusions.is_empty(), "{:?}", &trial.exclusions[..1]);
        let truth = &sim.truth.realised;
        assert_eq!(trial.participants.len(), n);
        assert_eq!(scored.n_rows(), n * 3);
        let by_arm: Vec<(String, usize)> =
            truth.arms.iter().map(|a| (a.label.clone(), a.n)).collect();
        assert_eq!(report.summary.participants_by_arm, by_arm);
        assert_eq!(trial.groups.len(), truth.groups.len());
        // assessment rows: everyone at baseline, then absent rows are missing
        for (t, w) in truth.waves.iter().enumerate() {
            let (label, rows, answered) = &report.summary.assessments_by_wave[t];
            assert_eq!(label, &w.wave);
            assert_eq!(*rows, n - w.rows_absent, "rows at {label}");
            assert_eq!(
                *answered,
                n - w.rows_absent - w.rows_all_empty,
                "answered at {label}"
            );
        }
        // every score the simulator's own rules compute is computed by herstel, no more
        for s in &truth.scores {
            let vals = scored.score(&s.instrument).unwrap();
            assert_eq!(
                vals.iter().flatten().count(),
                s.valid,
                "{} valid scores (seed {seed})",
                s.instrument
            );
            let answered = scored
                .score(&format!("{}_n_answered", s.instrument))
                .unwrap();
            // n_answered is there for every row with an assessment row
            assert_eq!(
                answered.iter().flatten().count(),
                (0..3)
                    .map(|t| report.summary.assessments_by_wave[t].1)
                    .sum::<usize>()
            );
        }
        // subscales and indices: computed for assessed rows (each by its own 80% rule), never
        // for missed waves
        for inst in ["mhrm", "bsi", "honos"] {
            let n_ans = scored.score(&format!("{inst}_n_answered")).unwrap();
            let prefix = format!("{inst}_");
            let sub: Vec<&str> = scored
                .columns()
                .iter()
                .map(|c| c.name.as_str())
                .filter(|c| c.starts_with(&prefix) && !c.ends_with("n_answered"))
                .collect();
            assert!(sub.len() >= 3, "{inst}: {sub:?}");
            for c in sub {
                let sv = scored.score(c).unwrap();
                for r in 0..scored.n_rows() {
                    if n_ans[r].unwrap_or(0.0) == 0.0 {
                        assert!(sv[r].is_none(), "{c} of a missed wave at row {r}");
                    }
                }
                assert!(sv.iter().flatten().count() > 0, "{c} never computed");
            }
        }
        // admissions
        let a = &truth.admissions;
        assert_eq!(trial.admissions.len(), a.episodes);
        assert_eq!(report.summary.admissions_before, a.before_randomization);
        assert_eq!(
            report.summary.admissions_before + report.summary.admissions_after,
            a.episodes
        );
        print_summary(&format!("{design:?} n = {n}, seed {seed}"), &trial, &scored);
    }
}

#[test]
fn simulate_validate_and_score_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let bin = env!("CARGO_BIN_EXE_herstel");
    let sim = std::process::Command::new(bin)
        .args(["simulate", "--seed", "12", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let val = std::process::Command::new(bin)
        .arg("validate")
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&val.stdout);
    assert!(val.status.success(), "validate failed:\n{text}");
    assert!(!text.lines().any(|l| l.starts_with("error")), "{text}");
    assert!(text.contains("0 errors"), "{text}");
    let scores = dir.path().join("scores.csv");
    let log = dir.path().join("exclusions.csv");
    let sc = std::process::Command::new(bin)
        .arg("score")
        .arg(&out)
        .arg("--out")
        .arg(&scores)
        .arg("--log")
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        sc.status.success(),
        "{}",
        String::from_utf8_lossy(&sc.stderr)
    );
    let (h, rows) = parse_csv(&std::fs::read_to_string(&scores).unwrap());
    assert_eq!(rows.len(), 190 * 3);
    for c in TOTALS {
        col(&h, c);
        col(&h, &format!("{c}_n_answered"));
    }
    // the scores file agrees with the truth's count of valid scores
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("truth.json")).unwrap()).unwrap();
    for s in truth["realised"]["scores"].as_array().unwrap() {
        let name = s["instrument"].as_str().unwrap();
        let c = col(&h, name);
        let valid = rows.iter().filter(|r| !r[c].is_empty()).count();
        assert_eq!(valid as u64, s["valid"].as_u64().unwrap(), "{name}");
    }
    // every missing total is in the exclusion log with a reason
    let (lh, lrows) = parse_csv(&std::fs::read_to_string(&log).unwrap());
    let (lp, lw, ls, lr) = (
        col(&lh, "participant_id"),
        col(&lh, "wave"),
        col(&lh, "score"),
        col(&lh, "reason"),
    );
    let logged: std::collections::BTreeSet<(String, String, String)> = lrows
        .iter()
        .inspect(|r| assert!(!r[lr].is_empty()))
        .map(|r| (r[lp].clone(), r[lw].clone(), r[ls].clone()))
        .collect();
    let (pc, wc) = (col(&h, "participant_id"), col(&h, "wave"));
    for r in &rows {
        for name in TOTALS {
            if r[col(&h, name)].is_empty() {
                assert!(
                    logged.contains(&(r[pc].clone(), r[wc].clone(), name.to_string())),
                    "missing {name} of {} {} not logged",
                    r[pc],
                    r[wc]
                );
            }
        }
    }
    // and truth.json carries the observed-scale truths of the defaults
    assert!(truth["observed_scale"]["arm_effects"].is_array());
    assert!(truth["observed_scale_origin"]
        .as_str()
        .unwrap()
        .starts_with("cached"));
}

#[test]
fn written_files_are_identical_for_the_same_seed() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = SimConfig::default();
    simulate(&cfg, 99)
        .unwrap()
        .with_observed_scale()
        .unwrap()
        .write(d1.path())
        .unwrap();
    simulate(&cfg, 99)
        .unwrap()
        .with_observed_scale()
        .unwrap()
        .write(d2.path())
        .unwrap();
    let mut names: Vec<_> = std::fs::read_dir(d1.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 7);
    for name in names {
        let a = std::fs::read(d1.path().join(&name)).unwrap();
        let b = std::fs::read(d2.path().join(&name)).unwrap();
        assert!(a == b, "{name:?} differs between two runs with seed 99");
    }
}

#[test]
fn default_simulation_is_fast_and_carries_the_cached_truth() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let sim = simulate(&SimConfig::default(), 2021).unwrap();
    let t1 = std::time::Instant::now();
    sim.write(dir.path()).unwrap();
    let t2 = std::time::Instant::now();
    eprintln!(
        "default trial: simulate {:.1} ms, write {:.1} ms",
        (t1 - t0).as_secs_f64() * 1e3,
        (t2 - t1).as_secs_f64() * 1e3
    );
    // the observed-scale truth comes from the cache, not from a 200,000-participant simulation
    assert!(sim.truth.observed_scale.is_some(), "cache missing or stale");
    assert!(sim.truth.observed_scale_origin.starts_with("cached"));
    // parameters the truth does not depend on keep the cache; others drop it
    let mut cfg = SimConfig::default();
    cfg.study.n_participants = 500;
    cfg.dropout.target = vec![0.0, 0.3, 0.3];
    cfg.admissions.rate_ratio = 0.7;
    assert!(cached_observed_scale(&cfg).is_some());
    cfg.effects.self_management = vec![0.0, 0.3, 0.3];
    assert!(cached_observed_scale(&cfg).is_none());
    assert!(simulate(&cfg, 1).unwrap().truth.observed_scale.is_none());
}

#[test]
fn cached_observed_scale_matches_a_fresh_computation() {
    let cached: ObservedScale = serde_json::from_str(DEFAULT_OBSERVED_SCALE_JSON).expect(
        "src/simulate/default_observed_scale.json does not parse: run \
         `cargo test --test simulate -- --ignored regenerate_default_observed_scale`",
    );
    let t0 = std::time::Instant::now();
    let fresh = observed_scale(&SimConfig::default()).unwrap();
    eprintln!(
        "observed-scale truth of the defaults: {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    // compare through JSON values with a relative tolerance of a few ulps (JSON float parsing)
    fn close(a: &serde_json::Value, b: &serde_json::Value, path: &str) {
        use serde_json::Value as V;
        match (a, b) {
            (V::Number(x), V::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 1e-14 * x.abs().max(y.abs()),
                    "{path}: cached {x} vs fresh {y}: the cache is stale, run \
                     `cargo test --test simulate -- --ignored regenerate_default_observed_scale`"
                );
            }
            (V::Array(x), V::Array(y)) => {
                assert_eq!(x.len(), y.len(), "{path}");
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    close(p, q, &format!("{path}[{i}]"));
                }
            }
            (V::Object(x), V::Object(y)) => {
                assert_eq!(x.len(), y.len(), "{path}");
                for (k, p) in x {
                    close(p, &y[k], &format!("{path}.{k}"));
                }
            }
            _ => assert_eq!(a, b, "{path}"),
        }
    }
    close(
        &serde_json::to_value(&cached).unwrap(),
        &serde_json::to_value(&fresh).unwrap(),
        "observed_scale",
    );
}

/// Rewrites src/simulate/default_observed_scale.json from the current defaults and model.
#[test]
#[ignore]
fn regenerate_default_observed_scale() {
    let obs = observed_scale(&SimConfig::default()).unwrap();
    let text = serde_json::to_string_pretty(&obs).unwrap() + "\n";
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/simulate/default_observed_scale.json");
    std::fs::write(&path, text).unwrap();
    eprintln!("wrote {}", path.display());
}

/// The default trial against "Simulation defaults" in docs/instruments.md, on the scored scale
/// (the cached 200,000-participant truth trial) and in a 3,000-participant trial with missing
/// data (admissions, dropout, attendance).
#[test]
fn defaults_follow_the_dutch_trial() {
    let obs = cached_observed_scale(&SimConfig::default()).expect("cached truth");
    let d = &obs.descriptives;
    let base = |name: &str| d.baseline.iter().find(|b| b.instrument == name).unwrap();
    // (instrument, mean, tolerance, SD, tolerance)
    let targets = [
        ("imrs_client", 3.45, 0.05, 0.57, 0.05),
        ("mhrm", 80.0, 3.0, 18.0, 2.5),
        ("bsi", 1.1, 0.12, 0.7, 0.1),
        ("sfs", 112.0, 2.0, 9.0, 1.2),
        ("honos", 10.0, 1.0, 5.5, 0.8),
    ];
    for (name, m, tm, sd, tsd) in targets {
        let b = base(name);
        eprintln!(
            "baseline {name}: mean {:.3} (target {m}), SD {:.3} (target {sd})",
            b.mean, b.sd
        );
        assert!(
            (b.mean - m).abs() <= tm,
            "{name} baseline mean {} vs {m}",
            b.mean
        );
        assert!(
            (b.sd - sd).abs() <= tsd,
            "{name} baseline SD {} vs {sd}",
            b.sd
        );
    }
    let cor = |a: &str, b: &str| {
        d.baseline_cor
            .iter()
            .find(|c| (c.var1 == a && c.var2 == b) || (c.var1 == b && c.var2 == a))
            .unwrap()
            .cor
    };
    for (a, b, r) in [
        ("imrs_client", "mhrm", 0.6),
        ("imrs_client", "bsi", -0.45),
        ("mhrm", "bsi", -0.5),
        ("mhrm", "sfs", 0.45),
        ("bsi", "sfs", -0.35),
    ] {
        let c = cor(a, b);
        eprintln!("baseline cor {a}-{b}: {c:.3} (target {r})");
        assert!((c - r).abs() <= 0.07, "cor {a}-{b} {c} vs {r}");
    }
    for icc in &d.icc_person {
        eprintln!("person ICC {}: {:.3}", icc.instrument, icc.icc);
    }
    for name in ["imrs_client", "mhrm", "bsi"] {
        let icc = d
            .icc_person
            .iter()
            .find(|i| i.instrument == name)
            .unwrap()
            .icc;
        assert!((0.5..=0.65).contains(&icc), "person ICC {name} {icc}");
    }
    let g = d.icc_group_imrs_client_last_wave.unwrap();
    eprintln!("group ICC imrs_client (IMR arm, last wave): {g:.3}");
    assert!((0.02..=0.09).contains(&g), "group ICC {g}");
    for e in &obs.arm_effects {
        let ds: Vec<String> = e
            .waves
            .iter()
            .map(|w| {
                format!(
                    "{} diff {:.3} d {:.3}",
                    w.wave, w.difference.estimate, w.d_baseline_sd
                )
            })
            .collect();
        eprintln!("arm effect {}: {}", e.instrument, ds.join(", "));
    }
    let imrs = obs
        .arm_effects
        .iter()
        .find(|e| e.instrument == "imrs_client")
        .unwrap();
    assert!(
        (imrs.waves[1].d_baseline_sd - 0.2).abs() < 0.05,
        "d T2 {}",
        imrs.waves[1].d_baseline_sd
    );
    assert!(
        (imrs.waves[2].d_baseline_sd - 0.34).abs() < 0.05,
        "d T3 {}",
        imrs.waves[2].d_baseline_sd
    );
    for e in obs
        .arm_effects
        .iter()
        .filter(|e| !e.instrument.starts_with("imrs"))
    {
        for w in &e.waves {
            assert!(
                w.d_baseline_sd.abs() < 0.15,
                "{} {}: d {}",
                e.instrument,
                w.wave,
                w.d_baseline_sd
            );
        }
    }
    let w = &obs.within_person;
    eprintln!(
        "within-person (scored): a1 {:.3} a2 {:.3} b1 {:.3} b2 {:.3} c' {:.3} c {:.3} a1b1 {:.3} a2b2 {:.3}",
        w.a1.estimate,
        w.a2.estimate,
        w.b1.estimate,
        w.b2.estimate,
        w.c_prime.estimate,
        w.c.estimate,
        w.indirect_a1b1.estimate,
        w.indirect_a2b2.estimate
    );
    let c = &obs.change_score_mediation;
    eprintln!(
        "change scores (scored): a1 {:.3} a2 {:.3} b1 {:.3} b2 {:.3} c' {:.3} c {:.3}",
        c.a1.estimate,
        c.a2.estimate,
        c.b1.estimate,
        c.b2.estimate,
        c.c_prime.estimate,
        c.c.estimate
    );
    // the direct path dominates, both indirect paths are weak (Roosenschoon et al. 2024)
    assert!(w.c_prime.estimate > 0.0);
    assert!(w.indirect_a1b1.estimate.abs() + w.indirect_a2b2.estimate.abs() < w.c_prime.estimate);

    // a 3,000-participant trial: sites, groups, sessions, dropout, admissions
    let n = 3000;
    let sim = simulate(&config_with(n), 8).unwrap();
    let r = &sim.truth.realised;
    eprintln!(
        "n {n}: arms {:?}; groups {}; sessions none {:.3} half+ {:.3} mean {:.1}",
        r.arms
            .iter()
            .map(|a| (a.label.as_str(), a.n))
            .collect::<Vec<_>>(),
        r.groups.len(),
        r.sessions_none_share_intervention,
        r.sessions_half_or_more_share_intervention,
        r.sessions_mean_intervention
    );
    for w in &r.waves {
        eprintln!(
            "wave {}: missed {:.3} (absent {}, empty rows {})",
            w.wave, w.share_missed, w.rows_absent, w.rows_all_empty
        );
    }
    let a = &r.admissions;
    eprintln!(
        "admissions: {} episodes, follow-up rate {:.3}/py, prior year {}, median stay {:?} d, involuntary {}, still admitted {}",
        a.episodes,
        a.rate_per_person_year_follow_up,
        a.in_prior_year,
        a.median_length_of_stay_days,
        a.involuntary,
        a.still_admitted_at_export
    );
    eprintln!(
        "item cells empty in assessed rows {:.4}; HoNOS 9s {}; IMRS item 13 n/a {}",
        r.item_cells_empty_share_assessed_rows,
        r.honos_not_known_cells,
        r.imrs_item13_not_applicable_participants
    );
    let imr = r.arms[1].n as f64 / n as f64;
    assert!((imr - 0.6).abs() < 0.015, "IMR share {imr}");
    assert!((r.sessions_none_share_intervention - 0.18).abs() < 0.03);
    assert!((r.sessions_half_or_more_share_intervention - 0.49).abs() < 0.05);
    assert!((0.14..=0.19).contains(&r.waves[1].share_missed));
    assert!((0.09..=0.15).contains(&r.waves[2].share_missed));
    assert!((a.rate_per_person_year_follow_up - 0.25).abs() < 0.04);
    let med = a.median_length_of_stay_days.unwrap();
    assert!((20.0..=30.0).contains(&med), "median stay {med}");
    // negative binomial counts in the follow-up window: moment estimate of k near 0.4
    let (ph, parts) = parse_csv(&sim.participants_csv);
    let rc = col(&ph, "randomized_on");
    let idx: BTreeMap<&str, (usize, i64)> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| (p[0].as_str(), (i, dates::parse_date(&p[rc]).unwrap())))
        .collect();
    let (_, adm) = parse_csv(&sim.admissions_csv);
    let mut counts = vec![0.0f64; n];
    for x in &adm {
        let (i, day0) = idx[x[0].as_str()];
        let dd = dates::parse_date(&x[1]).unwrap() - day0;
        if (1..=a.follow_up_days).contains(&dd) {
            counts[i] += 1.0;
        }
    }
    let mu = counts.iter().sum::<f64>() / n as f64;
    let var = counts.iter().map(|c| (c - mu).powi(2)).sum::<f64>() / (n as f64 - 1.0);
    let k = mu * mu / (var - mu);
    eprintln!("follow-up counts: mean {mu:.3}, variance {var:.3}, moment k {k:.3}");
    assert!((0.2..=0.8).contains(&k), "NB k {k}");

    // group sizes and site effects
    assert!(r.groups.iter().all(|g| (6..=10).contains(&g.size)));
    let dir = tempfile::tempdir().unwrap();
    sim.write(dir.path()).unwrap();
    let (trial, scored, _) = validate_and_score(dir.path());
    print_summary(&format!("defaults, n = {n}, seed 8"), &trial, &scored);
}

/// The observed-scale truth is what the trial's primary analysis of the scored data estimates:
/// in one 20,000-participant default trial with MAR dropout and item gaps,
/// `lmer(y ~ arm * wave + (1 | id))` recovers the cached arm differences per follow-up wave
/// (within 4 combined standard errors) for the primary and two secondary outcomes.
#[test]
fn observed_truth_is_what_the_mixed_model_on_scored_data_estimates() {
    use herstel::frame::Frame;
    use herstel::lmm::{fit_formula, LmmOptions};
    let n = 20_000;
    // SEED=n tries another trial (seeds 31-35 gave |z| <= 2.4, no systematic sign)
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(31);
    let sim = simulate(&config_with(n), seed).unwrap();
    let truth = sim.truth.observed_scale.clone().expect("cached truth");
    let dir = tempfile::tempdir().unwrap();
    sim.write(dir.path()).unwrap();
    let (trial, scored, _) = validate_and_score(dir.path());
    let rows = scored.n_rows();
    let text = |f: &dyn Fn(usize) -> String| (0..rows).map(|r| Some(f(r))).collect::<Vec<_>>();
    for name in ["imrs_client", "mhrm", "bsi"] {
        let mut frame = Frame::new();
        frame
            .push_numeric("y", scored.score(name).unwrap().to_vec())
            .unwrap();
        frame
            .push_factor(
                "arm",
                text(&|r| scored.arm_label(r).to_string()),
                Some(trial.study.arms.clone()),
            )
            .unwrap();
        frame
            .push_factor(
                "wave",
                text(&|r| scored.wave_label(r).to_string()),
                Some(trial.study.waves.iter().map(|w| w.label.clone()).collect()),
            )
            .unwrap();
        frame
            .push_factor("id", text(&|r| scored.participant_id(r).to_string()), None)
            .unwrap();
        let fit = fit_formula("y ~ arm * wave + (1 | id)", &frame, &LmmOptions::default()).unwrap();
        let names = fit.fixef_names().to_vec();
        let pos = |t: &str| names.iter().position(|x| x == t).unwrap();
        let effects = truth
            .arm_effects
            .iter()
            .find(|e| e.instrument == name)
            .unwrap();
        for (t, wave) in ["T2", "T3"].iter().enumerate() {
            let (a, i) = (pos("armIMR"), pos(&format!("armIMR:wave{wave}")));
            let est = fit.beta[a] + fit.beta[i];
            let var = fit.vcov[(a, a)] + fit.vcov[(i, i)] + 2.0 * fit.vcov[(a, i)];
            let want = &effects.waves[t + 1].difference;
            let z = (est - want.estimate) / (var + want.se.powi(2)).sqrt();
            eprintln!(
                "{name} {wave}: lmer {est:.4} (SE {:.4}) vs observed-scale truth {:.4} (MC SE {:.4}), z {z:.2}",
                var.sqrt(),
                want.estimate,
                want.se
            );
            assert!(z.abs() < 4.0, "{name} {wave}: z = {z}");
        }
    }
}
