//! `herstel import` (issue 13): the trial-small export written by haven as SPSS (.sav, .zsav),
//! Stata (.dta) in wide and long layout and as a Dutch-Excel CSV (tests/r/import_fixtures.R,
//! tests/fixtures/import/README.md), each imported with its committed map, must score exactly
//! as the CSV export; every user-missing code must end as a missing item with a log line; a
//! wrong map must give located errors; BtheB (HSAUR3) imported end to end must agree with lme4.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use herstel::ingest::import::{self, parse_map, problems::Level, LoadedMap};
use herstel::ingest::{load_trial, read_export, ProblemKind, Trial, ValidateOptions};
use herstel::pipeline::{self, spec::AnalysisSpec};
use herstel::progress::Silent;
use herstel::schema::Schema;
use herstel::scoring::score;
use herstel::table::{read_table_file, OutValues, RawTable};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fx(name: &str) -> PathBuf {
    fixtures().join("import").join(name)
}

fn map(name: &str) -> LoadedMap {
    import::load_map(&fx(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Imports `sources` with `map` into a temporary export folder.
fn import_to(
    sources: &[&str],
    lm: &LoadedMap,
    schema: &Schema,
) -> (tempfile::TempDir, import::Assembled) {
    let paths: Vec<PathBuf> = sources.iter().map(|s| fx(s)).collect();
    let a = import::import(&paths, lm, schema).unwrap_or_else(|e| panic!("{e}"));
    let errors: Vec<String> = a
        .problems
        .groups()
        .iter()
        .filter(|g| g.level == Level::Error)
        .map(|g| g.to_string())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    import::write_export(&out, &a).unwrap();
    (dir, a)
}

fn load(dir: &Path, schema: &Schema) -> Trial {
    match load_trial(dir, schema, &ValidateOptions::default()) {
        Ok((t, _)) => t,
        Err(report) => panic!("{report}"),
    }
}

/// Rows of a table as text, keyed by (participant, wave).
type Rows = HashMap<(String, String), Vec<Option<String>>>;

/// The scored table as text rows keyed by (participant, wave).
fn scored_rows(trial: &Trial) -> (Vec<String>, Rows) {
    let s = score(trial, &trial.instruments);
    let mut cols = s.to_out_columns();
    // by name: a map may list the instruments in another order than study.toml
    cols.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
    let text = |v: &OutValues, r: usize| -> Option<String> {
        match v {
            OutValues::Text(x) => x[r].clone(),
            OutValues::Float(x) => x[r].map(|f| format!("{f:.12}")),
            OutValues::Int(x) => x[r].map(|i| i.to_string()),
        }
    };
    let pc = names.iter().position(|n| n == "participant_id").unwrap();
    let wc = names.iter().position(|n| n == "wave").unwrap();
    let n = cols[0].values.len();
    let mut rows = HashMap::new();
    for r in 0..n {
        let row: Vec<Option<String>> = cols.iter().map(|c| text(&c.values, r)).collect();
        rows.insert((row[pc].clone().unwrap(), row[wc].clone().unwrap()), row);
    }
    (names, rows)
}

/// (participant, wave) of export assessment rows whose every item is empty.
fn empty_rows(dir: &Path) -> HashSet<(String, String)> {
    let t = read_table_file(&dir.join("assessments.csv")).unwrap();
    let first_item = 3;
    (0..t.n_rows())
        .filter(|&i| (first_item..t.columns().len()).all(|c| t.cell(i, c).is_none()))
        .map(|i| {
            (
                t.cell(i, 0).unwrap().to_string(),
                t.cell(i, 1).unwrap().to_string(),
            )
        })
        .collect()
}

/// Scores of an imported export against those of the CSV export. A wide file cannot tell an
/// export row with every item empty from an absent row (both are a missed wave, and every
/// score is missing either way): for those rows `*_n_answered` may be empty instead of 0.
fn assert_same_scores(imported: &Path, wide: bool) {
    assert_same_scores_but(imported, wide, &[]);
}

/// As [`assert_same_scores`], the columns `ignore` left out (ids a draft map does not recode).
fn assert_same_scores_but(imported: &Path, wide: bool, ignore: &[&str]) {
    let schema = Schema::embedded().unwrap();
    let reference = fixtures().join("trial-small/export");
    let drop = |(names, rows): (Vec<String>, Rows)| -> (Vec<String>, Rows) {
        let keep: Vec<usize> = (0..names.len())
            .filter(|&k| !ignore.contains(&names[k].as_str()))
            .collect();
        let names = keep.iter().map(|&k| names[k].clone()).collect();
        let rows = rows
            .into_iter()
            .map(|(key, r)| (key, keep.iter().map(|&k| r[k].clone()).collect()))
            .collect();
        (names, rows)
    };
    let (names, want) = drop(scored_rows(&load(&reference, &schema)));
    let (names2, got) = drop(scored_rows(&load(imported, &schema)));
    assert_eq!(names, names2);
    assert_eq!(want.len(), got.len());
    let empty = empty_rows(&reference);
    let mut relaxed = 0;
    for (key, w) in &want {
        let g = got.get(key).unwrap_or_else(|| panic!("{key:?} missing"));
        if g == w {
            continue;
        }
        assert!(
            wide && empty.contains(key),
            "{key:?}:\n want {w:?}\n  got {g:?}"
        );
        for (k, n) in names.iter().enumerate() {
            let ok = if n.ends_with("_n_answered") {
                g[k].is_none() && w[k].as_deref() == Some("0")
            } else {
                g[k] == w[k]
            };
            assert!(ok, "{key:?} {n}: want {:?} got {:?}", w[k], g[k]);
        }
        relaxed += 1;
    }
    if wide {
        assert_eq!(
            relaxed,
            empty.len(),
            "every empty export row is a missed wave in a wide file"
        );
    }
}

/// The export tables the map fills must equal the CSV export's.
fn assert_same_table(imported: &Path, table: &str, columns: &[&str]) {
    let reference = fixtures().join("trial-small/export");
    let a = read_table_file(&reference.join(format!("{table}.csv"))).unwrap();
    let b = read_table_file(&imported.join(format!("{table}.csv"))).unwrap();
    assert_eq!(a.n_rows(), b.n_rows(), "{table}");
    for c in columns {
        let (ca, cb) = (a.column_index(c).unwrap(), b.column_index(c).unwrap());
        for i in 0..a.n_rows() {
            assert_eq!(
                a.cell(i, ca),
                b.cell(i, cb),
                "{table} row {} column {c}",
                i + 2
            );
        }
    }
}

/// As [`assert_same_table`], in any row order (groups are written in order of appearance).
fn assert_same_rows(imported: &Path, table: &str, columns: &[&str]) {
    let rows = |dir: &Path| {
        let t = read_table_file(&dir.join(format!("{table}.csv"))).unwrap();
        let cols: Vec<usize> = columns.iter().map(|c| t.column_index(c).unwrap()).collect();
        let mut v: Vec<Vec<Option<String>>> = (0..t.n_rows())
            .map(|i| {
                cols.iter()
                    .map(|&c| t.cell(i, c).map(str::to_string))
                    .collect()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        rows(&fixtures().join("trial-small/export")),
        rows(imported),
        "{table}"
    );
}

const PARTICIPANT_COLUMNS: [&str; 10] = [
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
];

fn check_fixture(map_file: &str, sources: &[&str], wide: bool) {
    let schema = Schema::embedded().unwrap();
    let (dir, a) = import_to(sources, &map(map_file), &schema);
    let out = dir.path().join("export");
    let ing = read_export(&out, &schema, &ValidateOptions::default());
    assert_eq!(ing.report.n_errors(), 0, "{}", ing.report);
    assert_same_scores(&out, wide);
    assert_same_table(&out, "participants", &PARTICIPANT_COLUMNS);
    assert_same_table(
        &out,
        "admissions",
        &[
            "participant_id",
            "admitted_on",
            "discharged_on",
            "involuntary",
        ],
    );
    assert_same_table(&out, "sites", &["site_id", "site_name", "fidelity"]);
    assert_same_rows(&out, "groups", &["group_id", "site_id", "fidelity"]);
    check_missing_codes(&out, &a, wide);
}

/// Every cell listed in trial-small-missing-codes.csv is empty in the export and has one
/// `user-missing code` line in the log.
fn check_missing_codes(out: &Path, a: &import::Assembled, wide: bool) {
    let codes = read_table_file(&fx("trial-small-missing-codes.csv")).unwrap();
    let col = |n: &str| codes.column_index(n).unwrap();
    let assess = read_table_file(&out.join("assessments.csv")).unwrap();
    let mut rows: HashMap<(String, String), usize> = HashMap::new();
    for i in 0..assess.n_rows() {
        rows.insert(
            (
                assess.cell(i, 0).unwrap().into(),
                assess.cell(i, 1).unwrap().into(),
            ),
            i,
        );
    }
    let logged: HashSet<String> = a
        .log
        .entries
        .iter()
        .filter(|e| e.action == import::log::Action::MissingCode)
        .map(|e| e.export.clone())
        .collect();
    let mut n_cells = 0;
    for i in 0..codes.n_rows() {
        if !wide && codes.cell(i, col("in_long")) != Some("1") {
            continue;
        }
        let pid = codes.cell(i, col("participant_id")).unwrap();
        let wave = codes.cell(i, col("wave")).unwrap();
        let inst = codes.cell(i, col("instrument")).unwrap();
        for item in codes.cell(i, col("items")).unwrap().split(' ') {
            let n: usize = item.parse().unwrap();
            let name = format!("{inst}_{n:02}");
            if let Some(&r) = rows.get(&(pid.to_string(), wave.to_string())) {
                let c = assess.column_index(&name).unwrap();
                assert_eq!(
                    assess.cell(r, c),
                    None,
                    "{pid} {wave} {name} holds a missing code"
                );
            }
            let key = format!("assessments {pid} {wave} {name}");
            assert!(logged.contains(&key), "no log line for {key}");
            n_cells += 1;
        }
    }
    assert_eq!(logged.len(), n_cells, "log lines for user-missing codes");
}

#[test]
fn wide_sav_scores_as_the_csv_export() {
    check_fixture(
        "trial-small-wide-sav.toml",
        &["trial-small-wide.sav", "trial-small-admissions.sav"],
        true,
    );
}

#[test]
fn wide_zsav_scores_as_the_csv_export() {
    check_fixture(
        "trial-small-wide-zsav.toml",
        &["trial-small-wide.zsav", "trial-small-admissions.sav"],
        true,
    );
}

#[test]
fn wide_dta_scores_as_the_csv_export() {
    check_fixture(
        "trial-small-wide-dta.toml",
        &["trial-small-wide.dta", "trial-small-admissions.sav"],
        true,
    );
}

#[test]
fn long_sav_scores_as_the_csv_export() {
    check_fixture(
        "trial-small-long-sav.toml",
        &["trial-small-long.sav", "trial-small-admissions.sav"],
        false,
    );
}

#[test]
fn long_dta_scores_as_the_csv_export() {
    check_fixture(
        "trial-small-long-dta.toml",
        &["trial-small-long.dta", "trial-small-admissions.sav"],
        false,
    );
}

#[test]
fn dutch_excel_csv_scores_as_the_csv_export() {
    check_fixture(
        "trial-small-nl.toml",
        &["trial-small-nl.csv", "trial-small-nl-admissions.csv"],
        true,
    );
}

#[test]
fn the_dutch_csv_dialect_is_detected_without_settings() {
    let text = std::fs::read_to_string(fx("trial-small-nl.toml")).unwrap();
    let text = text
        .replace("separator = \";\"\n", "")
        .replace("decimal = \",\"\n", "")
        .replace("encoding = \"windows-1252\"\n", "");
    assert!(!text.contains("separator"));
    let lm = parse_map(&text, &fx("trial-small-nl.toml")).unwrap();
    let (dir, a) = import_to(
        &["trial-small-nl.csv", "trial-small-nl-admissions.csv"],
        &lm,
        &Schema::embedded().unwrap(),
    );
    assert!(
        a.notes.iter().any(|n| n.contains("separator ';'")
            && n.contains("decimal comma")
            && n.contains("windows-1252")),
        "{:?}",
        a.notes
    );
    assert_same_scores(&dir.path().join("export"), true);
}

#[test]
fn an_sfs_99_is_a_value_and_a_map_declaring_it_missing_loses_it() {
    let schema = Schema::embedded().unwrap();
    let (dir, _) = import_to(
        &["trial-small-nl.csv", "trial-small-nl-admissions.csv"],
        &map("trial-small-nl.toml"),
        &schema,
    );
    let t = read_table_file(&dir.path().join("export/assessments.csv")).unwrap();
    let cell = |t: &RawTable| {
        let r = (0..t.n_rows())
            .find(|&i| t.cell(i, 0) == Some("P0056") && t.cell(i, 1) == Some("T2"))
            .unwrap();
        t.cell(r, t.column_index("sfs_05").unwrap())
            .map(str::to_string)
    };
    assert_eq!(cell(&t).and_then(|v| v.parse::<f64>().ok()), Some(99.0));
    // the same code declared missing for every instrument
    let text = std::fs::read_to_string(fx("trial-small-nl.toml"))
        .unwrap()
        .replace(
            "missing = [999]           # 99 is a valid SFS scaled score",
            "missing = [99, 999]",
        );
    let lm = parse_map(&text, &fx("trial-small-nl.toml")).unwrap();
    let (dir, _) = import_to(
        &["trial-small-nl.csv", "trial-small-nl-admissions.csv"],
        &lm,
        &schema,
    );
    let t = read_table_file(&dir.path().join("export/assessments.csv")).unwrap();
    assert_eq!(cell(&t), None);
}

#[test]
fn nothing_is_lost_every_column_is_used_or_logged() {
    let schema = Schema::embedded().unwrap();
    let full = map("trial-small-wide-sav.toml");
    let (_, a) = import_to(
        &["trial-small-wide.sav", "trial-small-admissions.sav"],
        &full,
        &schema,
    );
    assert_eq!(
        a.log.count(import::log::Action::UnmappedColumn),
        0,
        "the map uses every column"
    );
    // without [groups] and [sites] the fidelity columns are logged with their counts
    let text = full
        .text
        .replace("fidelity = \"fid_groep\"", "")
        .replace("columns = { fidelity = \"fid_instelling\" }", "");
    let text = text.replace("[groups]", "").replace("[sites]", "");
    let lm = parse_map(&text, &full.file).unwrap();
    let (_, a) = import_to(
        &["trial-small-wide.sav", "trial-small-admissions.sav"],
        &lm,
        &schema,
    );
    let unmapped: Vec<&str> = a
        .log
        .entries
        .iter()
        .filter(|e| e.action == import::log::Action::UnmappedColumn)
        .filter_map(|e| e.column.as_deref())
        .collect();
    assert_eq!(unmapped, vec!["fid_groep", "fid_instelling"]);
    let counts: Vec<usize> = a
        .log
        .entries
        .iter()
        .filter(|e| e.action == import::log::Action::UnmappedColumn)
        .map(|e| e.count)
        .collect();
    let p = read_table_file(&fixtures().join("trial-small/export/participants.csv")).unwrap();
    let gc = p.column_index("group_id").unwrap();
    let grouped = (0..p.n_rows()).filter(|&i| p.cell(i, gc).is_some()).count();
    assert_eq!(
        counts,
        vec![grouped, p.n_rows()],
        "non-empty cells of each unmapped column"
    );
    let recoded: Vec<(&str, &str)> = a
        .log
        .entries
        .iter()
        .filter(|e| {
            e.action == import::log::Action::Recoded && e.column.as_deref() == Some("geslacht")
        })
        .map(|e| (e.value.as_deref().unwrap_or(""), e.export.as_str()))
        .collect();
    assert_eq!(recoded.len(), 3, "{recoded:?}");
    assert!(recoded.contains(&("1", "sex = female")));
    // each recode line counts its cells: all 120 participants
    let n: usize = a
        .log
        .entries
        .iter()
        .filter(|e| {
            e.action == import::log::Action::Recoded && e.column.as_deref() == Some("geslacht")
        })
        .map(|e| e.count)
        .sum();
    assert_eq!(n, 120);
}

#[test]
fn value_labels_are_carried_as_text_without_a_recode() {
    let text = std::fs::read_to_string(fx("trial-small-wide-sav.toml")).unwrap();
    let text = text.replace(
        "sex = { column = \"geslacht\", recode = { \"vrouw\" = \"female\", \"man\" = \"male\", \"anders\" = \"other\" } }",
        "sex = \"geslacht\"",
    );
    let lm = parse_map(&text, &fx("trial-small-wide-sav.toml")).unwrap();
    let (dir, _) = import_to(
        &["trial-small-wide.sav", "trial-small-admissions.sav"],
        &lm,
        &Schema::embedded().unwrap(),
    );
    let p = read_table_file(&dir.path().join("export/participants.csv")).unwrap();
    let c = p.column_index("sex").unwrap();
    let values: HashSet<&str> = (0..p.n_rows()).filter_map(|i| p.cell(i, c)).collect();
    assert_eq!(values, HashSet::from(["vrouw", "man", "anders"]));
}

fn errors_of(text: &str, sources: &[&str]) -> Vec<String> {
    let lm = match parse_map(text, &fx("trial-small-nl.toml")) {
        Ok(lm) => lm,
        Err(e) => return vec![e.to_string()],
    };
    let paths: Vec<PathBuf> = sources.iter().map(|s| fx(s)).collect();
    match import::import(&paths, &lm, &Schema::embedded().unwrap()) {
        Err(e) => vec![e.to_string()],
        Ok(a) => a
            .problems
            .groups()
            .iter()
            .filter(|g| g.level == Level::Error)
            .map(|g| g.to_string())
            .collect(),
    }
}

#[test]
fn a_wrong_map_gives_located_errors() {
    let good = std::fs::read_to_string(fx("trial-small-nl.toml")).unwrap();
    let src = ["trial-small-nl.csv", "trial-small-nl-admissions.csv"];
    let line_of = |needle: &str| good.lines().position(|l| l.contains(needle)).unwrap() + 1;
    // an unknown key: its line
    let e = errors_of(&good.replace("team = \"team\"", "teem = \"team\""), &src);
    assert!(
        e[0].contains(&format!("line {}", line_of("team = \"team\""))) && e[0].contains("teem"),
        "{e:?}"
    );
    // a column that is not there: the map line and the closest column
    let e = errors_of(
        &good.replace("age = \"leeftijd\"", "age = \"leeftijdd\""),
        &src,
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains(&format!("line {}", line_of("age = \"leeftijd\""))),
        "{e:?}"
    );
    assert!(e[0].contains("closest: leeftijd"), "{e:?}");
    // no date format: one grouped message with the count, the first rows and what to do
    let e = errors_of(
        &good.replace(
            "randomized_on = { column = \"randdatum\", format = \"%d-%m-%Y\" }",
            "randomized_on = \"randdatum\"",
        ),
        &src,
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("error: 120 values of trial-small-nl.csv column randdatum look like DD-MM-YYYY, e.g. row 2 \"12-09-2013\""),
        "{e:?}"
    );
    assert!(e[0].contains("format = \"%d-%m-%Y\""), "{e:?}");
    // the wrong separator: named, with the line
    let e = errors_of(
        &good.replacen("separator = \";\"", "separator = \",\"", 1),
        &src,
    );
    assert!(
        e[0].contains("trial-small-nl.csv")
            && e[0].contains("fields but the header has")
            && e[0].contains("separator ','"),
        "{e:?}"
    );
    // an offset that pushes items out of range: source file, column, row and value
    let e = errors_of(
        &good.replace(
            "items = \"imrs{n}_{wave}\"",
            "items = \"imrs{n}_{wave}\"\noffset = -1",
        ),
        &src,
    );
    assert!(
        e.iter()
            .any(|m| m.contains("trial-small-nl.csv column imrs")
                && m.contains("outside imrs_client's range 1-5 after offset -1")),
        "{e:?}"
    );
    // a pattern matching nothing
    let e = errors_of(
        &good.replace("items = \"bsi{n}_{wave}\"", "items = \"bsi_{nn}_{wave}\""),
        &src,
    );
    assert!(
        e.iter()
            .any(|m| m.contains("bsi_{nn}_{wave}") && m.contains("matches no column")),
        "{e:?}"
    );
    // codes of the CSV not declared: the missing codes show as out of range with the hint
    let e = errors_of(
        &good.replacen(
            "missing = [99, 999]      # niet afgenomen / geweigerd",
            "",
            1,
        ),
        &src,
    );
    assert!(
        e.iter().any(|m| m.contains("imrs")
            && m.contains("\"999\"")
            && m.contains("list them in `missing`")),
        "{e:?}"
    );
    // an arm value without a recode
    let e = errors_of(
        &good.replace("arms = [\"TAU\", \"IMR\"]", "arms = [\"CAU\", \"IMR\"]"),
        &src,
    );
    assert!(
        e.iter().any(|m| m.contains("column conditie")
            && m.contains("are not an arm")
            && m.contains("recode")),
        "{e:?}"
    );
}

#[test]
fn guess_drafts_a_map_that_places_the_instruments_and_the_arm() {
    let schema = Schema::embedded().unwrap();
    let empty = parse_map(
        "[study]\narms = [\"a\", \"b\"]\n[[waves]]\nlabel = \"T0\"\nmonths = 0\n[participants]\nid = \"id\"\narm = \"arm\"\n",
        Path::new("guess"),
    )
    .unwrap();
    let bound = import::bind::bind_sources(&[fx("trial-small-wide.sav")], &empty).unwrap();
    let (text, unplaced) = import::guess::guess_map(&bound, &schema);
    let lm = parse_map(&text, Path::new("draft.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let m = &lm.map;
    let patterns: Vec<(&str, &str)> = m
        .instruments
        .iter()
        .map(|i| (i.name.as_str(), i.items.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        patterns,
        vec![
            ("imrs_client", "imrs{n}_{wave}"),
            ("imrs_clinician", "imrsk{n}_{wave}"),
            ("mhrm", "MHRM_{nn}_{wave}"),
            ("bsi", "bsi{n}_{wave}"),
            ("sfs", "sfs{n}_{wave}"),
            ("honos", "honos{n}_{wave}"),
        ]
    );
    assert_eq!(m.study.arms, vec!["TAU", "IMR"]);
    assert_eq!(m.participants.arm.column, "conditie");
    assert_eq!(m.participants.id.column, "ID");
    assert_eq!(
        m.waves.iter().map(|w| w.label.as_str()).collect::<Vec<_>>(),
        vec!["T0", "T1", "T2"]
    );
    assert!(text.contains("# guess:"));
    assert!(unplaced.is_empty(), "{unplaced:?}");
    assert_eq!(
        m.groups.as_ref().map(|g| g.fidelity.column.as_str()),
        Some("fid_groep")
    );
    // the draft imports (the waves' months are guesses to review)
    let paths = [fx("trial-small-wide.sav")];
    let a = import::import(&paths, &lm, &schema).unwrap();
    assert!(!a.problems.has_errors(), "{:?}", a.problems.groups());
    assert_eq!(a.n_participants, 120);
}

/// BtheB (HSAUR3) end to end: imported from SPSS, validated, scored and analysed by the plan;
/// the ITT model agrees with lme4/lmerTest (btheb-expected.json); what the data cannot
/// support (site, groups, sessions, admissions) is skipped with notes.
#[test]
fn btheb_end_to_end_agrees_with_lme4() {
    let schema = Schema::load(Some(&fx("btheb-schema"))).unwrap();
    let (dir, _) = import_to(&["btheb.sav"], &map("btheb.toml"), &schema);
    let out = dir.path().join("export");
    let ing = read_export(&out, &schema, &ValidateOptions::default());
    assert_eq!(ing.report.n_errors(), 0, "{}", ing.report);
    let not_collected: Vec<String> = ing
        .report
        .warnings()
        .filter(|w| w.kind == ProblemKind::NotCollected)
        .map(|w| format!("{} {}", w.table, w.column.as_deref().unwrap_or("")))
        .collect();
    assert!(
        not_collected.contains(&"participants randomized_on".to_string()),
        "{not_collected:?}"
    );
    assert!(
        not_collected.contains(&"admissions ".to_string()),
        "{not_collected:?}"
    );
    let trial = ing.trial.unwrap();
    assert_eq!(trial.sites.len(), 1);
    assert!(!trial.admissions_collected);
    let scored = score(&trial, &trial.instruments);
    let spec = AnalysisSpec::from_toml(
        "[[outcomes]]\nname = \"bdi\"\nrole = \"primary\"\n",
        "btheb",
    )
    .unwrap();
    let results = pipeline::analyse(&trial, &scored, &spec, &Silent);
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx("btheb-expected.json")).unwrap()).unwrap();
    let itt = results
        .outcomes
        .iter()
        .find(|o| o.analysis_set == "itt" && o.sensitivity.is_none())
        .expect("the ITT model");
    assert_eq!(itt.n_observations, golden["data"]["nobs"].as_u64().unwrap());
    let mut worst: f64 = 0.0;
    for fe in golden["model"]["fixed_effects"].as_array().unwrap() {
        let term = fe["term"].as_str().unwrap().replace("treatment", "arm");
        let row = itt
            .fixed_effects
            .iter()
            .find(|r| r.term == term)
            .unwrap_or_else(|| panic!("term {term}"));
        for (have, key) in [(row.estimate, "estimate"), (row.std_error, "se")] {
            let want = fe[key].as_f64().unwrap();
            worst = worst.max((have - want).abs() / want.abs().max(1e-8));
        }
        let df = fe["df"].as_f64().unwrap();
        assert!(
            (row.df - df).abs() / df < 1e-3,
            "{term} df {} vs {df}",
            row.df
        );
    }
    assert!(
        worst < 1e-5,
        "worst relative error of fixed effects and SEs {worst:e}"
    );
    // the plan skipped what the data cannot support, with notes, and fitted nothing degenerate
    let w = results.warnings.join("\n");
    for needle in [
        "site sensitivity model skipped",
        "group sensitivity model skipped",
        "per-protocol",
        "admission analyses skipped",
    ] {
        assert!(w.contains(needle), "no note `{needle}` in:\n{w}");
    }
    assert!(results
        .outcomes
        .iter()
        .all(|o| o.sensitivity.as_deref() != Some("site")
            && o.sensitivity.as_deref() != Some("groups")));
    assert!(results
        .outcomes
        .iter()
        .all(|o| o.analysis_set != "per_protocol"));
    assert!(results.admissions.is_none());
    // Table 1 shows what there is: no age, sex, diagnosis or site rows
    let t1 = results.table1.as_ref().unwrap();
    let labels: Vec<&str> = t1.rows.iter().map(|r| r.variable.as_str()).collect();
    assert!(
        labels
            .iter()
            .all(|l| !l.starts_with("Age") && !l.starts_with("Sex") && !l.starts_with("Site")),
        "{labels:?}"
    );
    assert!(
        labels.iter().any(|l| l.ends_with("at baseline")),
        "{labels:?}"
    );
}

/// Point 8 of issue 13: a wide .sav of 100,000 participants x 3 waves x the six instruments
/// (133 columns per wave) imports in under 10 s. Run with
/// `cargo test --test import -- --ignored --nocapture scale` (the figure is printed).
#[test]
#[ignore]
fn scale_100k_wide_sav() {
    let schema = Schema::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sav = dir.path().join("big.sav");
    let n = 100_000;
    write_big_sav(&sav, n, &schema);
    let size = std::fs::metadata(&sav).unwrap().len();
    let text = std::fs::read_to_string(fx("trial-small-wide-sav.toml"))
        .unwrap()
        .replace("trial-small-wide.sav", "big.sav");
    let text = text[..text.find("[admissions]").unwrap()].replace(
        "[[sources]]\nfile = \"trial-small-admissions.sav\"\ntable = \"admissions\"\n",
        "",
    );
    let text = text
        .lines()
        .filter(|l| {
            ![
                "team",
                "group",
                "randomized_on",
                "age",
                "sex",
                "diagnosis",
                "sessions_attended",
                "site",
                "assessed_on",
                "fidelity",
                "columns",
                "[groups]",
                "[sites]",
            ]
            .iter()
            .any(|k| l.starts_with(&format!("{k} =")) || l.starts_with(k))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let lm = parse_map(&text, Path::new("big.toml")).unwrap();
    let t0 = std::time::Instant::now();
    let a = import::import(&[sav], &lm, &schema).unwrap();
    assert!(!a.problems.has_errors(), "{:?}", a.problems.groups());
    let out = dir.path().join("export");
    import::write_export(&out, &a).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    // peak resident memory of this process (Linux), the generated file included
    let peak_mb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0);
    eprintln!(
        "scale: {n} participants, {} assessment rows, .sav {:.0} MB, import + write {secs:.2} s, peak {peak_mb:.0} MB",
        a.n_assessments,
        size as f64 / 1e6
    );
    // what `herstel import` does next: validate the written export
    let t1 = std::time::Instant::now();
    let ing = read_export(&out, &schema, &ValidateOptions::default());
    let validate_secs = t1.elapsed().as_secs_f64();
    eprintln!(
        "scale: validation of the written export {validate_secs:.2} s ({} errors)",
        ing.report.n_errors()
    );
    assert_eq!(ing.report.n_errors(), 0);
    assert_eq!(a.n_participants, n);
    assert_eq!(a.n_assessments, 3 * n);
    assert!(secs < 10.0, "import took {secs:.1} s");
    assert!(
        peak_mb.is_nan() || peak_mb < 2048.0,
        "peak memory {peak_mb:.0} MB"
    );
}

/// A bytecode-compressed little-endian .sav with long variable names (subtype 13): `ID`,
/// `conditie` (value labels 1 TAU, 2 IMR) and the items of every instrument at T0, T1, T2.
fn write_big_sav(path: &Path, n: usize, schema: &Schema) {
    let mut names: Vec<String> = vec!["ID".into(), "conditie".into()];
    let stems = [
        ("imrs_client", "imrs{n}"),
        ("imrs_clinician", "imrsk{n}"),
        ("mhrm", "MHRM_{nn}"),
        ("honos", "honos{n}"),
        ("bsi", "bsi{n}"),
        ("sfs", "sfs{n}"),
    ];
    let mut ranges = vec![(0.0, 0.0), (1.0, 2.0)];
    for w in ["T0", "T1", "T2"] {
        for (inst, stem) in stems {
            let i = schema.instrument(inst).unwrap();
            for k in 1..=i.items {
                names.push(format!(
                    "{}_{w}",
                    stem.replace("{nn}", &format!("{k:02}"))
                        .replace("{n}", &k.to_string())
                ));
                ranges.push((i.min, i.max));
            }
        }
    }
    let mut b: Vec<u8> = Vec::new();
    let i32b = |b: &mut Vec<u8>, x: i32| b.extend_from_slice(&x.to_le_bytes());
    b.extend_from_slice(b"$FL2");
    b.extend_from_slice(&[b' '; 60]);
    for x in [2, names.len() as i32, 1, 0, n as i32] {
        i32b(&mut b, x);
    }
    b.extend_from_slice(&100f64.to_le_bytes());
    b.extend_from_slice(&[b' '; 84]);
    for (k, _) in names.iter().enumerate() {
        i32b(&mut b, 2);
        i32b(&mut b, if k == 0 { 8 } else { 0 });
        i32b(&mut b, 0);
        i32b(&mut b, 0);
        let fmt = if k == 0 {
            1 << 16 | 8 << 8
        } else {
            5 << 16 | 8 << 8
        };
        i32b(&mut b, fmt);
        i32b(&mut b, fmt);
        let mut s = format!("V{k}").into_bytes();
        s.resize(8, b' ');
        b.extend_from_slice(&s);
    }
    // value labels of conditie (record 2)
    i32b(&mut b, 3);
    i32b(&mut b, 2);
    for (v, l) in [(1.0f64, "TAU"), (2.0, "IMR")] {
        b.extend_from_slice(&v.to_le_bytes());
        b.push(l.len() as u8);
        let mut t = l.as_bytes().to_vec();
        t.resize(7, b' ');
        b.extend_from_slice(&t);
    }
    i32b(&mut b, 4);
    i32b(&mut b, 1);
    i32b(&mut b, 2);
    // long names
    let long: String = names
        .iter()
        .enumerate()
        .map(|(k, nm)| format!("V{k}={nm}"))
        .collect::<Vec<_>>()
        .join("\t");
    i32b(&mut b, 7);
    i32b(&mut b, 13);
    i32b(&mut b, 1);
    i32b(&mut b, long.len() as i32);
    b.extend_from_slice(long.as_bytes());
    i32b(&mut b, 999);
    i32b(&mut b, 0);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut units: Vec<(u8, Option<[u8; 8]>)> = Vec::with_capacity(names.len());
    for p in 0..n {
        units.clear();
        let mut id = format!("P{p:07}").into_bytes();
        id.truncate(8);
        units.push((253, Some(id.try_into().unwrap())));
        for (k, &(lo, hi)) in ranges.iter().enumerate().skip(1) {
            let r = rnd();
            let v = if k == 1 {
                1.0 + (p % 2) as f64
            } else {
                lo + (r % ((hi - lo) as u64 + 1)) as f64
            };
            if v.fract() == 0.0 && (-99.0..=151.0).contains(&v) {
                units.push(((v + 100.0) as u8, None));
            } else {
                units.push((253, Some(v.to_le_bytes())));
            }
        }
        for chunk in units.chunks(8) {
            let mut cmds = [0u8; 8];
            for (j, u) in chunk.iter().enumerate() {
                cmds[j] = u.0;
            }
            b.extend_from_slice(&cmds);
            for u in chunk {
                if let Some(raw) = u.1 {
                    b.extend_from_slice(&raw);
                }
            }
        }
    }
    std::fs::write(path, b).unwrap();
}

/// The parts of the SPSS format trial-small does not use (tests/r/sav_edge_cases.R): a
/// 300-byte very long string, a user-missing range plus a code, values outside the bytecode
/// range, value labels and a missing value on a string, dates; .sav and .zsav alike.
#[test]
fn sav_edge_cases_read_as_haven_reads_them() {
    use herstel::ingest::import::source::{Cell, Code};
    for file in ["edge-cases.sav", "edge-cases.zsav"] {
        let t = import::sav::read_sav(&fx(file)).unwrap();
        assert_eq!(t.n_rows, 4, "{file}");
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["id", "note", "score", "code", "datum"],
            "{file}"
        );
        let long = "abcdefghij".repeat(30);
        assert_eq!(t.cell(0, 1), Cell::Text(&long), "{file}");
        assert_eq!(t.cell(1, 1), Cell::Text("kort"));
        assert_eq!(t.cell(2, 1), Cell::Empty);
        assert_eq!(t.cell(3, 1), Cell::Text(&format!("{long}xyz")));
        let score = &t.columns[2];
        assert_eq!(score.label.as_deref(), Some("Score met bereik"));
        assert_eq!(score.user_missing.range, Some((900.0, 999.0)));
        assert!(score.user_missing.contains_num(99.0) && score.user_missing.contains_num(950.0));
        assert!(!score.user_missing.contains_num(1.5));
        let values: Vec<Cell> = (0..4).map(|i| t.cell(i, 2)).collect();
        assert_eq!(
            values,
            vec![
                Cell::Num(1.5),
                Cell::Num(950.0),
                Cell::Num(99.0),
                Cell::Num(1e6)
            ]
        );
        assert_eq!(score.label_of_num(999.0), Some("niet afgenomen"));
        let code = &t.columns[3];
        assert_eq!(code.label_of_text("x"), Some("ja"));
        assert!(code.user_missing.contains_text("NA"));
        assert!(code
            .value_labels
            .contains(&(Code::Text("y".into()), "nee".into())));
        let dates: Vec<Cell> = (0..4).map(|i| t.cell(i, 4)).collect();
        assert_eq!(
            dates,
            vec![
                Cell::Text("2013-07-19"),
                Cell::Empty,
                Cell::Text("1970-01-01"),
                Cell::Text("2024-02-29")
            ]
        );
    }
}

#[test]
fn the_shipped_example_map_parses() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("analyses/import-map.toml");
    let lm = import::load_map(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lm.map.waves.len(), 3);
    assert_eq!(lm.map.instruments.len(), 3);
    assert!(lm.map.admissions.is_some());
    assert_eq!(lm.map.sources[1].dialect().separator, Some(';'));
}

/// `herstel validate` on an export table written with semicolons: one message naming the
/// separator, not one "missing column" per column.
#[test]
fn a_semicolon_export_table_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("trial-small/export");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let p = dir.path().join("participants.csv");
    let text = std::fs::read_to_string(&p).unwrap();
    // the Dutch-Excel way: fields with a comma quoted, separators semicolons
    let semi: String = text.lines().map(|l| l.replace(',', ";") + "\r\n").collect();
    std::fs::write(&p, semi).unwrap();
    let ing = read_export(
        dir.path(),
        &Schema::embedded().unwrap(),
        &ValidateOptions::default(),
    );
    let errors: Vec<_> = ing.report.errors().collect();
    assert_eq!(errors.len(), 1, "{}", ing.report);
    assert_eq!(errors[0].kind, ProblemKind::MalformedTable);
    assert_eq!(errors[0].table, "participants");
    assert!(
        errors[0].expected.contains("separated by semicolons"),
        "{}",
        errors[0]
    );
}

/// One file per wave (CSV) joined to a participants file (Parquet) on the id: the layout of
/// trials that export each measurement separately. A duplicated row and a stray id are
/// logged, not lost.
#[test]
fn wave_files_and_parquet_join_on_the_participant_id() {
    use herstel::table::{write_table_file, OutColumn};
    let schema = Schema::embedded().unwrap();
    let export = fixtures().join("trial-small/export");
    let dir = tempfile::tempdir().unwrap();
    let p = read_table_file(&export.join("participants.csv")).unwrap();
    let text_col = |t: &RawTable, c: usize, rows: &[usize]| {
        OutValues::Text(
            rows.iter()
                .map(|&i| t.cell(i, c).map(str::to_string))
                .collect(),
        )
    };
    let all: Vec<usize> = (0..p.n_rows()).collect();
    let cols: Vec<OutColumn> = p
        .columns()
        .iter()
        .enumerate()
        .map(|(c, n)| OutColumn::new(n.clone(), text_col(&p, c, &all)))
        .collect();
    write_table_file(&dir.path().join("participants.parquet"), &cols).unwrap();
    let a = read_table_file(&export.join("assessments.csv")).unwrap();
    let mut sources = vec![dir.path().join("participants.parquet")];
    for wave in ["T0", "T1", "T2"] {
        let mut rows: Vec<usize> = (0..a.n_rows())
            .filter(|&i| a.cell(i, 1) == Some(wave))
            .collect();
        if wave == "T1" {
            rows.push(rows[0]); // a duplicate
        }
        let mut cols: Vec<OutColumn> = a
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, n)| n.as_str() != "wave")
            .map(|(c, n)| OutColumn::new(n.clone(), text_col(&a, c, &rows)))
            .collect();
        if wave == "T2" {
            // a participant who is not in the participants file
            for c in cols.iter_mut() {
                if let OutValues::Text(v) = &mut c.values {
                    v.push(Some(if c.name == "participant_id" {
                        "P9999".into()
                    } else {
                        "1".into()
                    }));
                }
            }
        }
        let f = dir.path().join(format!("wave-{wave}.csv"));
        write_table_file(&f, &cols).unwrap();
        sources.push(f);
    }
    let mut map = String::from(
        "[study]\nname = \"IMR multicentre RCT (synthetic)\"\narms = [\"TAU\", \"IMR\"]\nintervention = \"IMR\"\n",
    );
    for (w, m) in [("T0", 0), ("T1", 12), ("T2", 21)] {
        map.push_str(&format!("[[waves]]\nlabel = \"{w}\"\nmonths = {m}\n"));
    }
    map.push_str("[[sources]]\nfile = \"participants.parquet\"\n");
    for w in ["T0", "T1", "T2"] {
        map.push_str(&format!(
            "[[sources]]\nfile = \"wave-{w}.csv\"\nwave = \"{w}\"\n"
        ));
    }
    map.push_str("[participants]\nid = \"participant_id\"\narm = \"arm\"\nsite = \"site_id\"\nteam = \"team_id\"\ngroup = \"group_id\"\nrandomized_on = \"randomized_on\"\nage = \"age\"\nsex = \"sex\"\ndiagnosis = \"diagnosis\"\nsessions_attended = \"sessions_attended\"\n[assessments]\nassessed_on = \"assessed_on\"\n");
    for inst in [
        "imrs_client",
        "imrs_clinician",
        "mhrm",
        "honos",
        "bsi",
        "sfs",
    ] {
        map.push_str(&format!(
            "[[instruments]]\nname = \"{inst}\"\nitems = \"{inst}_{{nn}}\"\n"
        ));
    }
    let lm = parse_map(&map, &dir.path().join("map.toml")).unwrap();
    let a = import::import(&sources, &lm, &schema).unwrap();
    assert!(!a.problems.has_errors(), "{:?}", a.problems.groups());
    let warnings: Vec<String> = a.problems.groups().iter().map(|g| g.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("wave-T1.csv") && w.contains("repeat a participant id")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("wave-T2.csv") && w.contains("\"P9999\"")),
        "{warnings:?}"
    );
    let actions: Vec<(String, import::log::Action)> = a
        .log
        .entries
        .iter()
        .map(|e| (e.source.clone(), e.action))
        .collect();
    assert!(actions.contains(&("wave-T1.csv".into(), import::log::Action::DuplicateDropped)));
    assert!(actions.contains(&("wave-T2.csv".into(), import::log::Action::UnmatchedRow)));
    let out = dir.path().join("export");
    import::write_export(&out, &a).unwrap();
    // the participants file has no sites.csv beside it here: site ids come from participants
    assert_same_scores(&out, false);
    assert_same_table(&out, "participants", &PARTICIPANT_COLUMNS);
    // re-importing into the same folder replaces the earlier import
    import::write_export(&out, &a).unwrap();
    // a folder that is not an earlier import is refused
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    assert!(import::write_export(&other, &a).is_err());
}

/// The command: import, validation report and validation.txt, exit code 0; `--guess` prints
/// a draft map; an import with errors writes nothing and exits 1.
#[test]
fn the_import_command() {
    let bin = env!("CARGO_BIN_EXE_herstel");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let st = std::process::Command::new(bin)
        .arg("import")
        .arg(fx("trial-small-wide.sav"))
        .arg(fx("trial-small-admissions.sav"))
        .arg("--map")
        .arg(fx("trial-small-wide-sav.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&st.stderr);
    assert!(st.status.success(), "{stderr}");
    assert!(
        stderr.contains("trial-small-wide.sav: SPSS .sav, 120 rows x 411 columns"),
        "{stderr}"
    );
    for f in [
        "study.toml",
        "participants.csv",
        "assessments.csv",
        "sites.csv",
        "admissions.csv",
        "import-log.csv",
        "validation.txt",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert!(String::from_utf8_lossy(&st.stdout).contains("0 errors"));
    // --json: the import problems and the validation report as one JSON value
    let j = std::process::Command::new(bin)
        .arg("import")
        .arg(fx("btheb.sav"))
        .arg("--map")
        .arg(fx("btheb.toml"))
        .arg("--schema")
        .arg(fx("btheb-schema"))
        .arg("--out")
        .arg(dir.path().join("btheb"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(j.status.success(), "{}", String::from_utf8_lossy(&j.stderr));
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert!(v["import_problems"].is_array());
    assert_eq!(v["validation"]["summary"]["participants"], 100);
    let g = std::process::Command::new(bin)
        .arg("import")
        .arg(fx("btheb.sav"))
        .arg("--guess")
        .output()
        .unwrap();
    assert!(g.status.success());
    let draft = String::from_utf8_lossy(&g.stdout);
    assert!(draft.contains("arms = [\"TAU\", \"BtheB\"]"), "{draft}");
    let bad = dir.path().join("bad");
    let e = std::process::Command::new(bin)
        .arg("import")
        .arg(fx("trial-small-nl.csv"))
        .arg(fx("trial-small-nl-admissions.csv"))
        .arg("--map")
        .arg(fx("trial-small-wide-sav.toml"))
        .arg("--out")
        .arg(&bad)
        .output()
        .unwrap();
    // a map that does not fit the sources: exit 2, like an unreadable file
    assert_eq!(e.status.code(), Some(2));
    assert!(!bad.exists());
    assert!(String::from_utf8_lossy(&e.stderr).contains("not in the map"));
    // problems in the data: the grouped messages, nothing written, exit 1
    let text = std::fs::read_to_string(fx("trial-small-nl.toml"))
        .unwrap()
        .replace(
            "randomized_on = { column = \"randdatum\", format = \"%d-%m-%Y\" }",
            "randomized_on = \"randdatum\"",
        );
    let m = dir.path().join("no-date-format.toml");
    std::fs::write(&m, text).unwrap();
    let e = std::process::Command::new(bin)
        .arg("import")
        .arg(fx("trial-small-nl.csv"))
        .arg(fx("trial-small-nl-admissions.csv"))
        .arg("--map")
        .arg(&m)
        .arg("--out")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(1));
    assert!(!bad.exists());
    let stderr = String::from_utf8_lossy(&e.stderr);
    assert!(
        stderr.contains(
            "error: 120 values of trial-small-nl.csv column randdatum look like DD-MM-YYYY"
        ),
        "{stderr}"
    );
}

/// From `--guess` to a validated export without writing code: the draft map of the Dutch
/// CSV (dialect, date formats, missing codes per instrument, fidelity columns guessed)
/// imports without errors and scores as the CSV export.
#[test]
fn the_guessed_map_of_the_dutch_csv_imports_and_scores_as_the_export() {
    let schema = Schema::embedded().unwrap();
    let empty = parse_map(
        "[study]\narms = [\"a\", \"b\"]\n[[waves]]\nlabel = \"T0\"\nmonths = 0\n[participants]\nid = \"id\"\narm = \"arm\"\n",
        Path::new("guess"),
    )
    .unwrap();
    let bound = import::bind::bind_sources(&[fx("trial-small-nl.csv")], &empty).unwrap();
    let (text, unplaced) = import::guess::guess_map(&bound, &schema);
    assert!(unplaced.is_empty(), "{unplaced:?}");
    let lm = parse_map(&text, Path::new("draft.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let sfs = lm.map.instruments.iter().find(|i| i.name == "sfs").unwrap();
    assert!(
        sfs.missing.iter().all(|k| k.num() != Some(99.0)),
        "99 is a valid SFS score"
    );
    let (dir, _) = import_to(&["trial-small-nl.csv"], &lm, &schema);
    let out = dir.path().join("export");
    let ing = read_export(&out, &schema, &ValidateOptions::default());
    assert_eq!(ing.report.n_errors(), 0, "{}", ing.report);
    // the draft carries site names as site ids (no recode to S01 ...), and its waves' months
    // are placeholders to review (0, 1, 2)
    assert_same_scores_but(&out, true, &["site_id", "months"]);
}

/// No panic on any input: real SPSS, Stata and CSV files with bytes flipped, inserted or cut
/// are read or refused with an error.
#[test]
fn damaged_sources_are_errors_not_panics() {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "edge-cases.sav",
        "edge-cases.zsav",
        "btheb.sav",
        "trial-small-nl-admissions.csv",
        "trial-small-admissions.sav",
    ] {
        let bytes = std::fs::read(fx(file)).unwrap();
        for k in 0..150 {
            let mut b = bytes.clone();
            match k % 3 {
                0 => {
                    for _ in 0..1 + rnd() % 8 {
                        let i = (rnd() as usize) % b.len();
                        b[i] = rnd() as u8;
                    }
                }
                1 => b.truncate((rnd() as usize) % b.len()),
                _ => {
                    let i = (rnd() as usize) % b.len();
                    b.splice(i..i, (0..1 + rnd() % 16).map(|_| rnd() as u8));
                }
            }
            let p = dir.path().join(file);
            std::fs::write(&p, &b).unwrap();
            let r = import::source::read_source(&p, &import::dialect::DialectOverrides::default());
            if let Ok(t) = r {
                assert!(t.columns.iter().all(|c| c.data.len() == t.n_rows));
            }
        }
    }
    // a Stata file damaged the same way
    let bytes = std::fs::read(fx("trial-small-long.dta")).unwrap();
    for k in 0..40 {
        let mut b = bytes.clone();
        if k % 2 == 0 {
            b.truncate((rnd() as usize) % b.len());
        } else {
            let i = (rnd() as usize) % 2000.min(b.len());
            b[i] = rnd() as u8;
        }
        let p = dir.path().join("x.dta");
        std::fs::write(&p, &b).unwrap();
        let _ = import::source::read_source(&p, &import::dialect::DialectOverrides::default());
    }
}
