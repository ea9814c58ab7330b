//! Report layer: results.json round trip, tables in every format, figures (SVG and PNG),
//! the self-contained report.html (structure, no external resources, optional headless
//! Chromium rendering) and rendering speed.
use std::path::{Path, PathBuf};
use std::time::Instant;

use herstel::report::{self, html, ReportOptions};
use herstel::results::Results;

fn fixture() -> Results {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/results_example.json");
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture parses as Results")
}

fn write(results: &Results, opts: &ReportOptions) -> (tempfile::TempDir, report::ReportSummary) {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = report::write_all(results, dir.path(), opts).expect("report written");
    (dir, summary)
}

#[test]
fn results_json_round_trips() {
    let r = fixture();
    let (dir, _) = write(
        &r,
        &ReportOptions {
            plots: false,
            ..Default::default()
        },
    );
    let text = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
    let back: Results = serde_json::from_str(&text).unwrap();
    // Reads back to the same JSON (NaN, written as null, is not equal to itself in memory).
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&r).unwrap()
    );
    assert!(back
        .admissions
        .as_ref()
        .unwrap()
        .negative_binomial
        .as_ref()
        .unwrap()
        .coefficients[0]
        .df
        .is_nan());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Layout keys of results.json (README.md, "What a run produces").
    let o = &v["outcomes"][0];
    for key in [
        "outcome",
        "analysis_set",
        "model",
        "n_participants",
        "n_observations",
        "fixed_effects",
        "interaction_test",
        "emmeans",
        "contrasts",
    ] {
        assert!(o.get(key).is_some(), "outcome key {key}");
    }
    for key in [
        "wave",
        "contrast",
        "estimate",
        "std_error",
        "df",
        "conf_low",
        "conf_high",
        "p_value",
        "p_adjusted",
        "cohens_d",
        "d_conf_low",
        "d_conf_high",
    ] {
        assert!(o["contrasts"][0].get(key).is_some(), "contrast key {key}");
    }
    for key in ["negative_binomial", "poisson", "logistic", "bed_days"] {
        assert!(v["admissions"].get(key).is_some(), "admissions key {key}");
    }
    assert_eq!(v["mediation"][0]["paths"][0]["path"], "a1");
    assert!(v["mediation"][0]["indirect"][0]["bootstrap"]["conf_low"].is_number());
    for key in ["per_site", "meta_analysis", "shrunken", "ranks"] {
        assert!(v["sites"][0].get(key).is_some(), "sites key {key}");
    }
    for key in ["herstel_version", "spec", "inputs", "seed", "time"] {
        assert!(v["manifest"].get(key).is_some(), "manifest key {key}");
    }
}

#[test]
fn tables_in_every_format() {
    let r = fixture();
    let (dir, _) = write(
        &r,
        &ReportOptions {
            plots: false,
            ..Default::default()
        },
    );
    let t = dir.path().join("tables");
    for id in [
        "table1",
        "consort",
        "outcomes_emmeans",
        "outcomes_contrasts",
        "outcomes_interaction",
        "outcomes_fixed_effects",
        "admissions",
        "admissions_by_arm",
        "mediation_paths",
        "mediation_indirect",
        "sites_per_site",
        "sites_meta_analysis",
        "sites_shrunken",
    ] {
        for ext in ["csv", "md", "tex", "html"] {
            let p = t.join(format!("{id}.{ext}"));
            assert!(p.is_file(), "missing {}", p.display());
        }
    }
    // CSV: tidy, full precision, intervals split.
    let csv = std::fs::read_to_string(t.join("outcomes_contrasts.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "outcome,analysis_set,model,wave,contrast,estimate,std_error,df,conf_low,conf_high,p_value,p_adjusted,cohens_d,d_conf_low,d_conf_high"
    );
    let first = &r.outcomes[0].contrasts[0];
    let row = csv.lines().nth(1).unwrap();
    assert!(row.contains(&format!("{}", first.estimate)), "{row}");
    // Primary outcome has no adjusted p: empty field.
    assert!(row.contains(&format!(",{},,", first.p_value)), "{row}");
    // Display: APA p and d, 2 decimals.
    let md = std::fs::read_to_string(t.join("outcomes_contrasts.md")).unwrap();
    assert!(
        md.contains("Satterthwaite") && md.contains("REML"),
        "note names df method and REML"
    );
    assert!(md.contains("Holm"));
    let d = first.cohens_d.unwrap();
    assert!(md.contains(&herstel::report::format::effect_size(d, 2)));
    let tex = std::fs::read_to_string(t.join("outcomes_contrasts.tex")).unwrap();
    assert!(tex.contains("\\toprule") && tex.contains("\\bottomrule"));
    assert!(
        !tex.contains("imrs_client"),
        "labels, not raw names with underscores"
    );
    // Decimals are configurable.
    let (dir3, _) = write(
        &r,
        &ReportOptions {
            plots: false,
            decimals: 3,
            ..Default::default()
        },
    );
    let md3 = std::fs::read_to_string(dir3.path().join("tables/outcomes_emmeans.md")).unwrap();
    let e = &r.outcomes[0].emmeans[0];
    assert!(md3.contains(&format!("{:.3}", e.estimate)));
}

fn section_ids(page: &str) -> Vec<String> {
    page.match_indices("<section id=\"")
        .map(|(i, m)| {
            let rest = &page[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// A light well-formedness check: every opened element among those the report uses is closed
/// in order (void elements aside), and nothing is left open.
fn check_balanced(page: &str) {
    let body = &page[page.find("<html").unwrap()..];
    let mut stack: Vec<String> = Vec::new();
    let mut i = 0;
    let bytes = body.as_bytes();
    let void = ["meta", "br", "hr", "img", "input", "link"];
    while let Some(off) = body[i..].find('<') {
        let start = i + off;
        let end = start + body[start..].find('>').expect("tag closed");
        let tag = &body[start + 1..end];
        i = end + 1;
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        let self_closing = tag.ends_with('/');
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == ':')
            .collect::<String>()
            .to_lowercase();
        if name == "style" && !closing {
            // Skip the CSS.
            let close = body[i..].find("</style>").unwrap();
            i += close + "</style>".len();
            continue;
        }
        if self_closing || void.contains(&name.as_str()) {
            continue;
        }
        if closing {
            let top = stack.pop().unwrap_or_default();
            assert_eq!(
                top,
                name,
                "mismatched </{name}> near byte {start}: {}",
                String::from_utf8_lossy(&bytes[start.saturating_sub(120)..start + 10])
            );
        } else {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
}

#[test]
fn report_html_is_self_contained_and_complete() {
    let r = fixture();
    let (dir, summary) = write(&r, &ReportOptions::default());
    let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    // Every section in paper order.
    let ids = section_ids(&page);
    let expected: Vec<String> = html::SECTIONS
        .iter()
        .map(|(id, _)| id.to_string())
        .collect();
    assert_eq!(ids, expected);
    // Every figure inline, with its caption.
    let jobs = report::plots::jobs(&r);
    assert!(jobs.len() >= 15, "{} figures", jobs.len());
    for j in &jobs {
        assert!(
            page.contains(&format!("<figure id=\"fig-{}\">", j.id)),
            "figure {}",
            j.id
        );
        assert!(dir.path().join(format!("plots/{}.svg", j.id)).is_file());
        let png = dir.path().join(format!("plots/{}.png", j.id));
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", png.display());
        assert!(summary
            .files
            .contains(&PathBuf::from(format!("plots/{}.png", j.id))));
    }
    assert_eq!(page.matches("<svg").count(), jobs.len());
    // No external resources: no scripts, no links, no remote src/href/url().
    let lower = page.to_lowercase();
    for bad in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
        "<iframe",
    ] {
        assert!(!lower.contains(bad), "found {bad}");
    }
    // Only the SVG namespace may name a URL.
    let urls = lower.matches("http://").count() + lower.matches("https://").count();
    let ns = lower
        .matches("xmlns=\"http://www.w3.org/2000/svg\"")
        .count();
    assert_eq!(urls, ns, "URLs other than the SVG namespace");
    check_balanced(&page);
    // Manifest hashes and key numbers appear.
    assert!(page.contains(&r.manifest.inputs[0].sha256));
    assert!(page.contains("Primary outcome IMRS client"));
}

#[test]
fn absent_sections_are_skipped() {
    let mut r = fixture();
    r.mediation.clear();
    r.sites.clear();
    r.admissions = None;
    for o in &mut r.outcomes {
        o.diagnostics = None;
        o.trajectories = None;
    }
    let (dir, _) = write(
        &r,
        &ReportOptions {
            png: false,
            ..Default::default()
        },
    );
    let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let ids = section_ids(&page);
    assert_eq!(
        ids,
        ["study", "methods", "flow", "table1", "outcomes", "manifest"]
    );
    let plots: Vec<String> = std::fs::read_dir(dir.path().join("plots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(plots.iter().all(|p| !p.starts_with("sites")
        && !p.starts_with("mediation")
        && !p.starts_with("diagnostics")));
    assert!(plots
        .iter()
        .any(|p| p.starts_with("trajectories_imrs_client")));
    // An empty Results still renders.
    let (dir2, _) = write(&Results::default(), &ReportOptions::default());
    assert!(dir2.path().join("report.html").is_file());
}

#[test]
fn rendering_speed() {
    let r = fixture();
    // Warm up fonts and caches.
    let _ = write(
        &r,
        &ReportOptions {
            png: false,
            ..Default::default()
        },
    );
    let t = Instant::now();
    let (_dir, s) = write(&r, &ReportOptions::default());
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "report: {:.3} s total (tables {:.3} s, plots {:.3} s, html {:.3} s), {} files",
        secs,
        s.tables_seconds,
        s.plots_seconds,
        s.html_seconds,
        s.files.len()
    );
    if let Ok(out) = std::env::var("HERSTEL_REPORT_OUT") {
        report::write_all(&r, Path::new(&out), &ReportOptions::default()).unwrap();
    }
    // Generous bound for unoptimized test builds; the release figure is in the closing note.
    assert!(secs < 20.0);
}

#[test]
fn chromium_renders_the_report() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(chromium) = chromium else {
        eprintln!("chromium not installed: skipped the headless rendering check");
        return;
    };
    let r = fixture();
    let (dir, _) = write(
        &r,
        &ReportOptions {
            png: false,
            ..Default::default()
        },
    );
    let page = dir.path().join("report.html");
    let shot = dir.path().join("report.png");
    let profile = dir.path().join("chromium-profile");
    let status = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,3000",
            &format!("file://{}", page.display()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("chromium runs");
    assert!(status.success());
    let bytes = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        bytes.len() > 50_000,
        "screenshot suspiciously small: {} bytes",
        bytes.len()
    );
    if let Ok(keep) = std::env::var("HERSTEL_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, keep);
    }
}
