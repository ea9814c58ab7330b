//! Foundation tests: ingest and validation (one test per error class, located exactly),
//! a property test over mutated exports, and scoring against the R reference of trial-small.

use std::path::{Path, PathBuf};

use herstel::ingest::{read_export, Problem, ProblemKind, Severity, ValidateOptions};
use herstel::schema::Schema;
use herstel::scoring::score;
use herstel::table::{
    read_csv_via_polars, read_table_file, write_table_file, OutColumn, OutValues, RawTable,
    TableError,
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trial-small")
}

/// A fresh copy of the trial-small export in a temporary folder.
fn export_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture().join("export")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

/// Splits a CSV line on commas outside quotes (quotes kept).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut q = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                q = !q;
                out.last_mut().unwrap().push(ch);
            }
            ',' if !q => out.push(String::new()),
            _ => out.last_mut().unwrap().push(ch),
        }
    }
    out
}

fn read_lines(dir: &Path, file: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .lines()
        .map(split_csv)
        .collect()
}

fn write_lines(dir: &Path, file: &str, rows: &[Vec<String>]) {
    let text: String = rows.iter().map(|r| r.join(",") + "\n").collect();
    std::fs::write(dir.join(file), text).unwrap();
}

/// Sets the cell of 1-based file row `row` (header = 1) in `column`.
fn set_cell(dir: &Path, file: &str, row: usize, column: &str, value: &str) {
    let mut rows = read_lines(dir, file);
    let c = rows[0].iter().position(|h| h == column).unwrap();
    rows[row - 1][c] = value.to_string();
    write_lines(dir, file, &rows);
}

fn get_cell(dir: &Path, file: &str, row: usize, column: &str) -> String {
    let rows = read_lines(dir, file);
    let c = rows[0].iter().position(|h| h == column).unwrap();
    rows[row - 1][c].clone()
}

fn validate(dir: &Path) -> herstel::ingest::Ingested {
    read_export(
        dir,
        &Schema::embedded().unwrap(),
        &ValidateOptions::default(),
    )
}

fn errors(dir: &Path) -> Vec<Problem> {
    validate(dir)
        .report
        .problems
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .collect()
}

/// Asserts exactly one error, of this kind, at this table/row/column.
fn assert_one_error(
    dir: &Path,
    kind: ProblemKind,
    table: &str,
    row: Option<usize>,
    column: Option<&str>,
) -> Problem {
    let errs = errors(dir);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let e = errs.into_iter().next().unwrap();
    assert_eq!(e.kind, kind, "{e}");
    assert_eq!(e.table, table, "{e}");
    assert_eq!(e.row, row, "{e}");
    assert_eq!(e.column.as_deref(), column, "{e}");
    e
}

#[test]
fn trial_small_validates_without_errors() {
    let ing = validate(&fixture().join("export"));
    let report = &ing.report;
    assert_eq!(report.n_errors(), 0, "{report}");
    let trial = ing.trial.expect("trial");
    assert_eq!(trial.participants.len(), 120);
    assert_eq!(trial.sites.len(), 4);
    assert_eq!(trial.assessments.len(), 328);
    assert_eq!(trial.admissions.len(), 172);
    assert!(trial.exclusions.is_empty());
    assert_eq!(
        report.summary.participants_by_arm,
        vec![("TAU".to_string(), 60), ("IMR".to_string(), 60)]
    );
    assert_eq!(
        report.summary.admissions_before + report.summary.admissions_after,
        172
    );
    // the deliberate rows below the 80% line are reported as warnings
    assert!(report
        .warnings()
        .any(|w| w.kind == ProblemKind::ItemMissingness));
    // the extra sites column is carried along
    assert!(trial.site_extra.iter().any(|c| c.name == "fidelity"));
}

#[test]
fn error_missing_table() {
    let d = export_copy();
    // admissions.csv and sites.csv are optional (spec/trial-export.md); assessments is not
    std::fs::remove_file(d.path().join("assessments.csv")).unwrap();
    assert_one_error(
        d.path(),
        ProblemKind::MissingTable,
        "assessments",
        None,
        None,
    );
}

#[test]
fn error_missing_required_column() {
    let d = export_copy();
    let mut rows = read_lines(d.path(), "participants.csv");
    // randomized_on, age, sex, diagnosis, sessions_attended, group_id and site_id are
    // optional; arm is not
    let c = rows[0].iter().position(|h| h == "arm").unwrap();
    for r in rows.iter_mut() {
        r.remove(c);
    }
    write_lines(d.path(), "participants.csv", &rows);
    assert_one_error(
        d.path(),
        ProblemKind::MissingColumn,
        "participants",
        Some(1),
        Some("arm"),
    );
}

#[test]
fn error_missing_item_column() {
    let d = export_copy();
    let mut rows = read_lines(d.path(), "assessments.csv");
    let c = rows[0].iter().position(|h| h == "honos_07").unwrap();
    for r in rows.iter_mut() {
        r.remove(c);
    }
    write_lines(d.path(), "assessments.csv", &rows);
    assert_one_error(
        d.path(),
        ProblemKind::MissingColumn,
        "assessments",
        Some(1),
        Some("honos_07"),
    );
}

#[test]
fn error_duplicate_participant() {
    let d = export_copy();
    let mut rows = read_lines(d.path(), "participants.csv");
    let copy = rows[4].clone(); // file row 5
    rows.push(copy);
    let n = rows.len();
    write_lines(d.path(), "participants.csv", &rows);
    let e = assert_one_error(
        d.path(),
        ProblemKind::DuplicateKey,
        "participants",
        Some(n),
        Some("participant_id"),
    );
    assert!(e.expected.contains("row 5"), "{e}");
}

#[test]
fn error_duplicate_participant_wave() {
    let d = export_copy();
    let mut rows = read_lines(d.path(), "assessments.csv");
    let copy = rows[2].clone(); // file row 3
    rows.insert(10, copy); // becomes file row 11
    write_lines(d.path(), "assessments.csv", &rows);
    let e = assert_one_error(
        d.path(),
        ProblemKind::DuplicateKey,
        "assessments",
        Some(11),
        Some("participant_id, wave"),
    );
    assert_eq!(e.value.as_deref(), Some("P0001, T1"));
}

#[test]
fn error_unknown_site() {
    let d = export_copy();
    set_cell(d.path(), "participants.csv", 7, "site_id", "S99");
    let e = assert_one_error(
        d.path(),
        ProblemKind::UnknownReference,
        "participants",
        Some(7),
        Some("site_id"),
    );
    assert_eq!(e.value.as_deref(), Some("S99"));
}

#[test]
fn error_unknown_group() {
    let d = export_copy();
    // row 2 is P0001, an IMR participant in group S01-G1
    set_cell(d.path(), "participants.csv", 2, "group_id", "S01-G9");
    assert_one_error(
        d.path(),
        ProblemKind::UnknownReference,
        "participants",
        Some(2),
        Some("group_id"),
    );
}

#[test]
fn error_unknown_participant() {
    let d = export_copy();
    set_cell(d.path(), "admissions.csv", 4, "participant_id", "P9999");
    assert_one_error(
        d.path(),
        ProblemKind::UnknownReference,
        "admissions",
        Some(4),
        Some("participant_id"),
    );
    let d = export_copy();
    set_cell(d.path(), "assessments.csv", 9, "participant_id", "P9999");
    assert_one_error(
        d.path(),
        ProblemKind::UnknownReference,
        "assessments",
        Some(9),
        Some("participant_id"),
    );
}

#[test]
fn error_arm_not_in_study() {
    let d = export_copy();
    set_cell(d.path(), "participants.csv", 3, "arm", "CAU");
    let e = assert_one_error(
        d.path(),
        ProblemKind::UnknownArm,
        "participants",
        Some(3),
        Some("arm"),
    );
    assert!(e.expected.contains("TAU, IMR"), "{e}");
}

#[test]
fn error_wave_not_in_study() {
    let d = export_copy();
    set_cell(d.path(), "assessments.csv", 5, "wave", "T9");
    assert_one_error(
        d.path(),
        ProblemKind::UnknownWave,
        "assessments",
        Some(5),
        Some("wave"),
    );
}

#[test]
fn error_item_out_of_range_and_not_a_number() {
    let d = export_copy();
    set_cell(d.path(), "assessments.csv", 6, "imrs_client_03", "7");
    let e = assert_one_error(
        d.path(),
        ProblemKind::OutOfRange,
        "assessments",
        Some(6),
        Some("imrs_client_03"),
    );
    assert_eq!(e.value.as_deref(), Some("7"));

    let d = export_copy();
    set_cell(d.path(), "assessments.csv", 8, "bsi_12", "x");
    assert_one_error(
        d.path(),
        ProblemKind::NotANumber,
        "assessments",
        Some(8),
        Some("bsi_12"),
    );

    // an integer item given as a decimal
    let d = export_copy();
    set_cell(d.path(), "assessments.csv", 8, "mhrm_02", "2.5");
    assert_one_error(
        d.path(),
        ProblemKind::NotANumber,
        "assessments",
        Some(8),
        Some("mhrm_02"),
    );

    // HoNOS 9 is a not-known code, not out of range; 5 is out of range
    let d = export_copy();
    set_cell(d.path(), "assessments.csv", 8, "honos_02", "9");
    assert!(errors(d.path()).is_empty());
    set_cell(d.path(), "assessments.csv", 8, "honos_02", "5");
    assert_one_error(
        d.path(),
        ProblemKind::OutOfRange,
        "assessments",
        Some(8),
        Some("honos_02"),
    );

    // SFS scaled scores are numbers within 55-145
    let d = export_copy();
    set_cell(d.path(), "assessments.csv", 8, "sfs_04", "150.5");
    assert_one_error(
        d.path(),
        ProblemKind::OutOfRange,
        "assessments",
        Some(8),
        Some("sfs_04"),
    );
}

#[test]
fn error_unparseable_date() {
    let d = export_copy();
    set_cell(
        d.path(),
        "participants.csv",
        10,
        "randomized_on",
        "12/09/2013",
    );
    assert_one_error(
        d.path(),
        ProblemKind::BadDate,
        "participants",
        Some(10),
        Some("randomized_on"),
    );
    let d = export_copy();
    set_cell(d.path(), "admissions.csv", 3, "admitted_on", "2013-02-30");
    assert_one_error(
        d.path(),
        ProblemKind::BadDate,
        "admissions",
        Some(3),
        Some("admitted_on"),
    );
}

#[test]
fn error_discharge_before_admission() {
    let d = export_copy();
    // row 2: P0002 admitted 2012-07-15, discharged 2012-07-31
    set_cell(d.path(), "admissions.csv", 2, "discharged_on", "2012-07-01");
    assert_one_error(
        d.path(),
        ProblemKind::DischargeBeforeAdmission,
        "admissions",
        Some(2),
        Some("discharged_on"),
    );
}

#[test]
fn error_overlapping_admissions() {
    let d = export_copy();
    // rows 2 and 3: P0002 2012-07-15..2012-07-31, then 2013-04-01..2013-04-25
    assert_eq!(
        get_cell(d.path(), "admissions.csv", 3, "participant_id"),
        "P0002"
    );
    set_cell(d.path(), "admissions.csv", 3, "admitted_on", "2012-07-20");
    let e = assert_one_error(
        d.path(),
        ProblemKind::OverlappingAdmissions,
        "admissions",
        Some(3),
        Some("admitted_on"),
    );
    assert!(e.expected.contains("row 2"), "{e}");
    // an open stay (no discharge) overlaps every later admission
    let d = export_copy();
    set_cell(d.path(), "admissions.csv", 2, "discharged_on", "");
    let errs = errors(d.path());
    assert!(!errs.is_empty());
    assert!(errs
        .iter()
        .all(|e| e.kind == ProblemKind::OverlappingAdmissions && e.table == "admissions"));
    assert_eq!(errs[0].row, Some(3));
    assert_eq!(errs[0].column.as_deref(), Some("admitted_on"));
}

#[test]
fn error_group_on_control_participant() {
    let d = export_copy();
    assert_eq!(get_cell(d.path(), "participants.csv", 3, "arm"), "TAU");
    set_cell(d.path(), "participants.csv", 3, "group_id", "S01-G1");
    assert_one_error(
        d.path(),
        ProblemKind::GroupOnControl,
        "participants",
        Some(3),
        Some("group_id"),
    );
}

#[test]
fn error_participant_without_group_in_cluster_trial() {
    let d = export_copy();
    let study = std::fs::read_to_string(d.path().join("study.toml")).unwrap();
    std::fs::write(
        d.path().join("study.toml"),
        study.replace(
            "intervention = \"IMR\"",
            "intervention = \"IMR\"\ndesign = \"cluster\"",
        ),
    )
    .unwrap();
    let errs = errors(d.path());
    assert_eq!(errs.len(), 60, "every TAU participant lacks a group");
    let e = &errs[0];
    assert_eq!(e.kind, ProblemKind::MissingGroup);
    assert_eq!(e.table, "participants");
    assert_eq!(e.row, Some(3));
    assert_eq!(e.column.as_deref(), Some("group_id"));
}

#[test]
fn error_malformed_study_toml_with_line() {
    let d = export_copy();
    let study = std::fs::read_to_string(d.path().join("study.toml")).unwrap();
    // line 8 is `months = 0` of the first wave
    assert_eq!(study.lines().nth(7), Some("months = 0"));
    std::fs::write(
        d.path().join("study.toml"),
        study.replacen("months = 0", "months = zero", 1),
    )
    .unwrap();
    let errs = errors(d.path());
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].kind, ProblemKind::MalformedStudy);
    assert_eq!(errs[0].table, "study.toml");
    assert_eq!(errs[0].row, Some(8));

    // a semantic error: the line of the key
    let d = export_copy();
    std::fs::write(
        d.path().join("study.toml"),
        study.replace("intervention = \"IMR\"", "intervention = \"CBT\""),
    )
    .unwrap();
    let errs = errors(d.path());
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].kind, ProblemKind::MalformedStudy);
    assert_eq!(errs[0].row, Some(3));
}

#[test]
fn error_ragged_csv_row_is_located() {
    let d = export_copy();
    let mut text = std::fs::read_to_string(d.path().join("sites.csv")).unwrap();
    text.push_str("S05,Extra,1,2\n"); // file row 6 with one field too many
    std::fs::write(d.path().join("sites.csv"), text).unwrap();
    assert_one_error(
        d.path(),
        ProblemKind::MalformedTable,
        "sites",
        Some(6),
        None,
    );
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let d = export_copy();
    set_cell(d.path(), "participants.csv", 3, "arm", "CAU");
    set_cell(d.path(), "participants.csv", 5, "age", "old");
    set_cell(d.path(), "assessments.csv", 6, "imrs_client_03", "7");
    set_cell(d.path(), "admissions.csv", 2, "involuntary", "yes");
    let ing = validate(d.path());
    let mut found: Vec<(String, Option<usize>, ProblemKind)> = ing
        .report
        .errors()
        .map(|e| (e.table.clone(), e.row, e.kind))
        .collect();
    found.sort_by_key(|(t, r, _)| (t.clone(), *r));
    assert_eq!(
        found,
        vec![
            ("admissions".to_string(), Some(2), ProblemKind::BadFlag),
            ("assessments".to_string(), Some(6), ProblemKind::OutOfRange),
            ("participants".to_string(), Some(3), ProblemKind::UnknownArm),
            ("participants".to_string(), Some(5), ProblemKind::NotANumber),
        ]
    );
    // the rows with errors are excluded with their reasons; the rows of the excluded
    // participant (row 3) follow it
    let trial = ing.trial.unwrap();
    assert!(trial
        .exclusions
        .iter()
        .any(|x| x.table == "participants" && x.row == 3 && x.reason.contains("CAU")));
    assert!(trial
        .exclusions
        .iter()
        .any(|x| x.table == "assessments" && x.reason.contains("participants row 3")));
}

#[test]
fn parquet_tables_are_accepted() {
    let d = export_copy();
    let t = read_table_file(&d.path().join("participants.csv")).unwrap();
    let cols: Vec<OutColumn> = t
        .columns()
        .iter()
        .enumerate()
        .map(|(ci, name)| {
            let values: Vec<Option<String>> =
                t.column_cells(ci).map(|c| c.map(str::to_string)).collect();
            if name == "age" {
                OutColumn::new(
                    name.clone(),
                    OutValues::Int(
                        values
                            .iter()
                            .map(|v| v.as_ref().map(|s| s.parse().unwrap()))
                            .collect(),
                    ),
                )
            } else {
                OutColumn::new(name.clone(), OutValues::Text(values))
            }
        })
        .collect();
    std::fs::remove_file(d.path().join("participants.csv")).unwrap();
    write_table_file(&d.path().join("participants.parquet"), &cols).unwrap();
    let ing = validate(d.path());
    assert_eq!(ing.report.n_errors(), 0, "{}", ing.report);
    assert_eq!(ing.trial.unwrap().participants.len(), 120);
}

fn parse_opt(s: Option<&str>) -> Option<f64> {
    s.map(|v| v.parse::<f64>().unwrap())
}

fn assert_close(got: Option<f64>, want: Option<f64>, what: &str) {
    match (got, want) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1.0),
            "{what}: got {g}, want {w}"
        ),
        _ => panic!("{what}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn scores_equal_the_r_reference() {
    let ing = validate(&fixture().join("export"));
    let trial = ing.trial.unwrap();
    let scored = score(&trial, &trial.instruments);
    let want = read_table_file(&fixture().join("expected/scored.csv")).unwrap();
    assert_eq!(scored.n_rows(), want.n_rows());
    let col = |n: &str| want.column_index(n).unwrap();
    let mut compared = 0;
    for r in 0..want.n_rows() {
        assert_eq!(
            Some(scored.participant_id(r)),
            want.cell(r, col("participant_id"))
        );
        assert_eq!(Some(scored.wave_label(r)), want.cell(r, col("wave")));
        assert_eq!(Some(scored.arm_label(r)), want.cell(r, col("arm")));
        assert_eq!(Some(scored.site_id(r)), want.cell(r, col("site_id")));
        assert_eq!(
            scored.group_id(r),
            want.cell(r, col("group_id")).unwrap_or("")
        );
        assert_close(
            Some(scored.months()[r]),
            parse_opt(want.cell(r, col("months"))),
            "months",
        );
        for inst in [
            "imrs_client",
            "imrs_clinician",
            "mhrm",
            "honos",
            "bsi",
            "sfs",
        ] {
            let got = scored.score(inst).unwrap()[r];
            let w = parse_opt(want.cell(r, col(inst)));
            assert_close(got, w, &format!("{inst} row {}", r + 2));
            compared += usize::from(w.is_some());
        }
    }
    assert!(compared > 1500);
    // the exclusion log names every missing total
    let missing_totals = [
        "imrs_client",
        "imrs_clinician",
        "mhrm",
        "honos",
        "bsi",
        "sfs",
    ]
    .iter()
    .map(|i| {
        scored
            .score(i)
            .unwrap()
            .iter()
            .filter(|v| v.is_none())
            .count()
    })
    .sum::<usize>();
    let logged = scored
        .exclusions
        .iter()
        .filter(|e| trial.instruments.iter().any(|i| i.name == e.score))
        .count();
    assert_eq!(logged, missing_totals);
    assert!(scored
        .exclusions
        .iter()
        .any(|e| e.reason.starts_with("too few items answered: 11 of 15")));
}

#[test]
fn bsi_indices_equal_the_r_reference() {
    let ing = validate(&fixture().join("export"));
    let trial = ing.trial.unwrap();
    let scored = score(&trial, &trial.instruments);
    let want = read_table_file(&fixture().join("expected/bsi_indices.csv")).unwrap();
    assert_eq!(scored.n_rows(), want.n_rows());
    let pairs = [
        ("answered", "bsi_n_answered"),
        ("gsi", "bsi"),
        ("pst", "bsi_pst"),
        ("psdi", "bsi_psdi"),
        ("sum_answered", "bsi_sum_answered"),
        ("total_prorated", "bsi_total_prorated"),
        ("som", "bsi_som"),
        ("oc", "bsi_oc"),
        ("is", "bsi_is"),
        ("dep", "bsi_dep"),
        ("anx", "bsi_anx"),
        ("hos", "bsi_hos"),
        ("phob", "bsi_phob"),
        ("par", "bsi_par"),
        ("psy", "bsi_psy"),
    ];
    for r in 0..want.n_rows() {
        assert_eq!(
            Some(scored.participant_id(r)),
            want.cell(r, want.column_index("participant_id").unwrap())
        );
        for (theirs, ours) in pairs {
            let w = parse_opt(want.cell(r, want.column_index(theirs).unwrap()));
            let got = scored.score(ours).unwrap()[r];
            assert_close(got, w, &format!("{ours} row {}", r + 2));
        }
    }
}

#[test]
fn score_writes_csv_and_parquet() {
    let ing = validate(&fixture().join("export"));
    let trial = ing.trial.unwrap();
    let scored = score(&trial, &trial.instruments);
    let d = tempfile::tempdir().unwrap();
    for ext in ["csv", "parquet"] {
        let p = d.path().join(format!("scored.{ext}"));
        write_table_file(&p, &scored.to_out_columns()).unwrap();
        let t = read_table_file(&p).unwrap();
        assert_eq!(t.n_rows(), 360);
        assert_eq!(
            &t.columns()[..12],
            &[
                "participant_id",
                "site_id",
                "arm",
                "group_id",
                "wave",
                "months",
                "imrs_client",
                "imrs_clinician",
                "mhrm",
                "honos",
                "bsi",
                "sfs"
            ]
        );
        assert!(t.column_index("honos_n_answered").is_some());
        assert!(t.column_index("bsi_psdi").is_some());
        assert!(t.column_index("mhrm_spirituality").is_some());
        let c = t.column_index("mhrm").unwrap();
        let v: f64 = t.cell(0, c).unwrap().parse().unwrap();
        assert_eq!(v, 70.0);
    }
}

#[test]
fn schema_dir_overrides_an_instrument() {
    let d = export_copy();
    let schema_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(schema_dir.path().join("instruments")).unwrap();
    // HoNOS as a plain sum with all items needed
    let honos = include_str!("../data-schema/instruments/honos.toml")
        .replace("total = \"prorated_sum\"", "total = \"sum\"")
        .replace("min_answered_share = [4, 5]", "min_answered_share = [1, 1]");
    std::fs::write(schema_dir.path().join("instruments/honos.toml"), honos).unwrap();
    let schema = herstel::ingest::load_schema(Some(schema_dir.path())).unwrap();
    let ing = read_export(d.path(), &schema, &ValidateOptions::default());
    let trial = ing.trial.unwrap();
    let scored = score(&trial, &trial.instruments);
    let h = scored.score("honos").unwrap();
    let n = scored.score("honos_n_answered").unwrap();
    for (v, k) in h.iter().zip(n) {
        if v.is_some() {
            assert_eq!(*k, Some(12.0));
            assert_eq!(v.unwrap().fract(), 0.0);
        }
    }
}

mod mutations {
    use super::*;
    use proptest::prelude::*;

    const FILES: [&str; 5] = [
        "sites.csv",
        "groups.csv",
        "participants.csv",
        "assessments.csv",
        "admissions.csv",
    ];

    #[derive(Debug, Clone)]
    enum Mutation {
        Garbage {
            file: usize,
            row: usize,
            col: usize,
            text: String,
        },
        DeleteRow {
            file: usize,
            row: usize,
        },
        DuplicateRow {
            file: usize,
            row: usize,
        },
        DropColumn {
            file: usize,
            col: usize,
        },
        Truncate {
            file: usize,
            fraction: f64,
        },
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let garbage = prop_oneof![
            Just(String::new()),
            Just("x".to_string()),
            Just("-1".to_string()),
            Just("99".to_string()),
            Just("2013-13-45".to_string()),
            Just("\"a,b\"".to_string()),
            Just("1e308".to_string()),
            Just("NaN".to_string()),
            "[ -~]{0,6}",
        ];
        prop_oneof![
            (0..5usize, 0..400usize, 0..200usize, garbage).prop_map(|(file, row, col, text)| {
                Mutation::Garbage {
                    file,
                    row,
                    col,
                    text,
                }
            }),
            (0..5usize, 0..400usize).prop_map(|(file, row)| Mutation::DeleteRow { file, row }),
            (0..5usize, 0..400usize).prop_map(|(file, row)| Mutation::DuplicateRow { file, row }),
            (0..5usize, 0..200usize).prop_map(|(file, col)| Mutation::DropColumn { file, col }),
            (0..5usize, 0.0..1.0f64)
                .prop_map(|(file, fraction)| Mutation::Truncate { file, fraction }),
        ]
    }

    fn apply(dir: &Path, m: &Mutation) {
        match m {
            Mutation::Truncate { file, fraction } => {
                let p = dir.join(FILES[*file]);
                let bytes = std::fs::read(&p).unwrap();
                let cut = ((bytes.len() as f64) * fraction) as usize;
                std::fs::write(&p, &bytes[..cut]).unwrap();
            }
            Mutation::Garbage {
                file,
                row,
                col,
                text,
            } => {
                let mut rows = read_lines(dir, FILES[*file]);
                if rows.is_empty() {
                    return;
                }
                let r = row % rows.len();
                let width = rows[r].len();
                rows[r][col % width] = text.clone();
                write_lines(dir, FILES[*file], &rows);
            }
            Mutation::DeleteRow { file, row } => {
                let mut rows = read_lines(dir, FILES[*file]);
                if rows.is_empty() {
                    return;
                }
                let r = row % rows.len();
                rows.remove(r);
                write_lines(dir, FILES[*file], &rows);
            }
            Mutation::DuplicateRow { file, row } => {
                let mut rows = read_lines(dir, FILES[*file]);
                if rows.is_empty() {
                    return;
                }
                let r = row % rows.len();
                let copy = rows[r].clone();
                rows.insert(r, copy);
                write_lines(dir, FILES[*file], &rows);
            }
            Mutation::DropColumn { file, col } => {
                let mut rows = read_lines(dir, FILES[*file]);
                if rows.is_empty() {
                    return;
                }
                let c = col % rows[0].len();
                for r in rows.iter_mut() {
                    if c < r.len() {
                        r.remove(c);
                    }
                }
                write_lines(dir, FILES[*file], &rows);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn validate_never_panics_and_locates_errors(ms in proptest::collection::vec(mutation(), 1..4)) {
            let d = export_copy();
            for m in &ms {
                apply(d.path(), m);
            }
            let ing = validate(d.path());
            for e in ing.report.errors() {
                prop_assert!(!e.table.is_empty());
                let located = e.row.is_some()
                    || e.column.is_some()
                    || matches!(e.kind, ProblemKind::MissingTable | ProblemKind::MalformedTable);
                prop_assert!(located, "unlocated error {}", e);
            }
            if let Some(t) = &ing.trial {
                // scoring whatever survived must not panic either
                let s = score(t, &t.instruments);
                prop_assert_eq!(s.n_rows(), t.participants.len() * t.study.waves.len());
            }
        }
    }
}

/// Writes a simulated export of `n` participants x 3 waves (the default trial's parameters:
/// 6 instruments, 132 item columns, dropout, item gaps, admissions).
fn write_big_export(dir: &Path, n: usize) {
    let mut cfg = herstel::simulate::SimConfig::default();
    cfg.study.n_participants = n;
    let t0 = std::time::Instant::now();
    herstel::simulate::simulate(&cfg, 7)
        .unwrap()
        .write(dir)
        .unwrap();
    eprintln!(
        "simulated and wrote {n} participants in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Scale check: validate + score 100,000 participants x 3 waves.
/// `HERSTEL_BIG_EXPORT=/some/dir cargo test --test foundation -- --ignored scale --nocapture`
/// keeps the export there for measuring the binary with `/usr/bin/time -v herstel validate DIR`
/// and `herstel score DIR --out FILE` (see benches/scale.sh).
#[test]
#[ignore]
fn scale_100k_participants() {
    let keep = std::env::var_os("HERSTEL_BIG_EXPORT").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    write_big_export(&dir, 100_000);
    let t0 = std::time::Instant::now();
    let ing = validate(&dir);
    let t1 = std::time::Instant::now();
    assert_eq!(ing.report.n_errors(), 0, "{}", ing.report);
    let trial = ing.trial.unwrap();
    assert_eq!(trial.participants.len(), 100_000);
    assert!(trial.assessments.len() > 270_000);
    let scored = score(&trial, &trial.instruments);
    let t2 = std::time::Instant::now();
    assert_eq!(scored.n_rows(), 300_000);
    eprintln!(
        "validate {:.2} s, score {:.2} s, total {:.2} s",
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t2 - t0).as_secs_f64()
    );
}

/// Peak resident memory of this process so far (VmHWM, MB; Linux only, else 0).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) used by this process so far (Linux, 100 ticks a second).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            let u: f64 = f.get(11)?.parse().ok()?;
            let k: f64 = f.get(12)?.parse().ok()?;
            Some((u + k) / 100.0)
        })
        .unwrap_or(0.0)
}

/// Phases of validate + score on an export kept by `scale_100k_participants`
/// (`HERSTEL_BIG_EXPORT=DIR cargo test --test foundation -- --ignored big_export_phases --nocapture`).
#[test]
#[ignore]
fn big_export_phases() {
    let Some(dir) = std::env::var_os("HERSTEL_BIG_EXPORT").map(PathBuf::from) else {
        eprintln!("set HERSTEL_BIG_EXPORT to an export folder");
        return;
    };
    let (t, c) = (std::time::Instant::now(), cpu_seconds());
    let raw = read_table_file(&dir.join("assessments.csv")).unwrap();
    eprintln!(
        "read assessments.csv ({} rows x {} columns): {:.2} s (cpu {:.2} s), peak {:.0} MB",
        raw.n_rows(),
        raw.columns().len(),
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c,
        peak_rss_mb()
    );
    drop(raw);
    let (t, c) = (std::time::Instant::now(), cpu_seconds());
    let ing = validate(&dir);
    eprintln!(
        "validate: {:.2} s (cpu {:.2} s), peak {:.0} MB",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c,
        peak_rss_mb()
    );
    let trial = ing.trial.unwrap();
    let (t, c) = (std::time::Instant::now(), cpu_seconds());
    let scored = score(&trial, &trial.instruments);
    eprintln!(
        "score: {:.2} s (cpu {:.2} s, {} missing scores), peak {:.0} MB",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c,
        scored.exclusions.len(),
        peak_rss_mb()
    );
    let out = tempfile::tempdir().unwrap();
    let (t, c) = (std::time::Instant::now(), cpu_seconds());
    write_table_file(&out.path().join("s.parquet"), &scored.to_out_columns()).unwrap();
    eprintln!(
        "write scores: {:.2} s (cpu {:.2} s), peak {:.0} MB",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c,
        peak_rss_mb()
    );
    let (t, c) = (std::time::Instant::now(), cpu_seconds());
    write_table_file(&out.path().join("log.parquet"), &scored.exclusion_columns()).unwrap();
    eprintln!(
        "write log: {:.2} s (cpu {:.2} s), peak {:.0} MB",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c,
        peak_rss_mb()
    );
}

/// Every cell of a table, column by column.
fn table_cells(t: &RawTable) -> Vec<(String, Vec<Option<String>>)> {
    t.columns()
        .iter()
        .enumerate()
        .map(|(c, name)| {
            (
                name.clone(),
                t.column_cells(c).map(|v| v.map(str::to_string)).collect(),
            )
        })
        .collect()
}

#[test]
fn native_csv_reader_equals_polars() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        "a,b\n1,2\n3,4\n",
        "a,b\r\n1,2\r\n3,4\r\n",
        "a,b\n1,2\n\n3,4",
        "\u{feff}id,name\nP1,\"Doe, J\"\nP2,\"say \"\"hi\"\"\"\n",
        "a,b,c\n,,\n x , y ,\n",
        "a,b\n\"multi\nline\",2\n",
        "a\n1\n2\n",
        "a,b\n1,\n",
        "\"a\",\" b \"\n\"\",3\n",
        "a,b\n1,2\n\r\n3,4\n\n\n",
        "a,b\n\"\u{e9}t\u{e9}\",\u{20ac}\n",
    ];
    let mut files: Vec<PathBuf> = Vec::new();
    for (i, text) in cases.iter().enumerate() {
        let p = dir.path().join(format!("case{i}.csv"));
        std::fs::write(&p, text).unwrap();
        files.push(p);
    }
    // a simulated export (quoted site names, empty cells, decimals)
    let sim = dir.path().join("sim");
    let mut cfg = herstel::simulate::SimConfig::default();
    cfg.study.n_participants = 60;
    herstel::simulate::simulate(&cfg, 3)
        .unwrap()
        .write(&sim)
        .unwrap();
    for folder in [fixture().join("export"), sim] {
        for entry in std::fs::read_dir(folder).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "csv") {
                files.push(p);
            }
        }
    }
    for p in &files {
        let native = read_table_file(p).unwrap();
        let polars = read_csv_via_polars(p).unwrap();
        assert_eq!(native.n_rows(), polars.n_rows(), "{}", p.display());
        assert_eq!(
            table_cells(&native),
            table_cells(&polars),
            "{}",
            p.display()
        );
    }
}

#[test]
fn native_csv_reader_locates_malformed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [&[u8]; 6] = [
        b"a,b\n1,2\n3\n",
        b"a,b\n\"x,y\",2\n3,4,5\n",
        b"a,b\n1,\"2\n",
        b"a,b\n\n1,2\n\n3\n",
        b"a,a\n1,2\n",
        b"a,b\n1,\xff\n",
    ];
    // blank lines are rows (of empty cells), as in polars, so case 3's short row is row 5
    let want = [3, 3, 2, 5, 1, 2];
    for (i, (text, row)) in cases.iter().zip(want).enumerate() {
        let p = dir.path().join(format!("bad{i}.csv"));
        std::fs::write(&p, text).unwrap();
        match read_table_file(&p) {
            Err(TableError::Malformed {
                row: r, message, ..
            }) => {
                assert_eq!(r, Some(row), "case {i}: {message}")
            }
            other => panic!("case {i}: {other:?}"),
        }
        if i < 3 {
            // the polars path reports the same row (its structure scan)
            match read_csv_via_polars(&p) {
                Err(TableError::Malformed { row: r, .. }) => assert_eq!(r, Some(row), "case {i}"),
                other => panic!("case {i}: {other:?}"),
            }
        }
    }
    let p = dir.path().join("empty.csv");
    std::fs::write(&p, " \n").unwrap();
    assert!(matches!(
        read_table_file(&p),
        Err(TableError::Malformed { row: None, .. })
    ));
}
