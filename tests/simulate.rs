//! Trial simulator: determinism, export layout, plausible marginals, item ranges, the cluster
//! design, configuration files and the `herstel simulate` command.
use std::collections::BTreeMap;
use std::path::Path;

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
            a[2].is_empty()
                .then_some(i64::MAX)
                .unwrap_or_else(|| dates::parse_date(&a[2]).unwrap()),
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
