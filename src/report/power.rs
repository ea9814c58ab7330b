//! The power report (`herstel power`): `power.json`, `trials.csv` (every simulated trial with
//! how its fits ended), the table `tables/power.{csv,md,tex,html}`, the power curve
//! `plots/power_curve.{svg,png}` and a short `report.html`. Renders
//! [`crate::power::PowerResults`] only; computes no statistic. No timestamps or timings are
//! written, so a merged sharded run gives the same bytes as an unsharded one.
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::plots::{bold, de, font, register_fonts, series_color, tick_label, AXIS, TICK, TITLE};
use super::tables::{html_escape, Cell, Column, NumStyle, Table};
use super::{write_file, ReportError, ReportOptions};
use crate::power::{PowerResults, TrialRecord};

fn col(header: &str, key: &str, interval: bool) -> Column {
    Column {
        header: header.into(),
        key: key.into(),
        interval,
    }
}

fn unit_label(unit: &str) -> &'static str {
    if unit == "groups_per_arm" {
        "Groups per arm"
    } else {
        "Participants"
    }
}

/// The power table: one row per sample size.
pub fn power_table(r: &PowerResults) -> Table {
    let s = &r.summary;
    let columns = vec![
        col(unit_label(&s.size_unit), "size", false),
        col("Participants (mean)", "participants", false),
        col("Groups (mean)", "groups", false),
        col("Power", "power", false),
        col("95% MC CI", "power_ci", true),
        col("Type I error", "type1_error", false),
        col("95% MC CI", "type1_error_ci", true),
        col("Mean estimate", "mean_estimate", false),
        col("Bias", "bias", false),
        col("Empirical SE", "empirical_se", false),
        col("Mean model SE", "mean_model_se", false),
        col("Mean CI width", "mean_ci_width", false),
        col("Mean df", "mean_df", false),
        col(
            "Singular or non-converged (%)",
            "problem_fits_percent",
            false,
        ),
        col("Failed fits", "failed_fits", false),
    ];
    let rows = s
        .sizes
        .iter()
        .map(|z| {
            vec![
                Cell::Int(z.size as u64),
                Cell::Num(z.mean_participants, NumStyle::Fixed(1)),
                Cell::Num(z.mean_groups, NumStyle::Fixed(1)),
                Cell::Num(z.power.estimate, NumStyle::Fixed(3)),
                Cell::Interval(z.power.conf_low, z.power.conf_high, NumStyle::Fixed(3)),
                Cell::Num(z.type1_error.estimate, NumStyle::Fixed(3)),
                Cell::Interval(
                    z.type1_error.conf_low,
                    z.type1_error.conf_high,
                    NumStyle::Fixed(3),
                ),
                Cell::Num(z.mean_estimate, NumStyle::Fixed(3)),
                Cell::Num(z.bias, NumStyle::Fixed(3)),
                Cell::Num(z.empirical_se, NumStyle::Fixed(3)),
                Cell::Num(z.mean_model_se, NumStyle::Fixed(3)),
                Cell::Num(z.mean_ci_width, NumStyle::Fixed(3)),
                Cell::Num(z.mean_df, NumStyle::Df),
                Cell::Num(100.0 * z.share_problem_fits, NumStyle::Fixed(1)),
                Cell::Int((z.fits.failed + z.fits_null.failed) as u64),
            ]
        })
        .collect();
    Table {
        id: "power".into(),
        title: format!("Power by simulation: {}", r.title),
        columns,
        rows,
        note: Some(format!(
            "{} simulated trials per size (seed {}); model {}, {} df, alpha {} ({}-sided); \
             contrast {} (true value {}). Power and type I error (the same trials without the \
             effect) count failed fits as not rejecting; 95% Monte Carlo CIs are Wilson \
             intervals. Smallest size for {} power: {}.",
            r.plan.simulations,
            r.seed,
            r.model,
            r.df_method,
            r.plan.analysis.alpha,
            match r.plan.analysis.sided {
                crate::power::plan::Sided::Two => "two",
                crate::power::plan::Sided::One => "one",
            },
            r.contrast,
            tick_label(s.true_effect),
            s.required.target_power,
            s.required.note
        )),
        group_columns: 0,
    }
}

/// Size of the power curve figure in pixels.
pub const CURVE_SIZE: (u32, u32) = (1200, 820);

/// Draws the power curve: power and type I error per size with their Monte Carlo CIs, the
/// target power and the interpolated size with its range.
pub fn draw_curve<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &PowerResults,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(de)?;
    let s = &r.summary;
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        format!("Power curve: {}", r.contrast),
        (w as i32 / 2, 30),
        bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let xs: Vec<f64> = s.sizes.iter().map(|z| z.size as f64).collect();
    let (x_min, x_max) = match (xs.first(), xs.last()) {
        (Some(a), Some(b)) if b > a => (*a, *b),
        (Some(a), _) => (a - 1.0, a + 1.0),
        _ => (0.0, 1.0),
    };
    let pad = 0.05 * (x_max - x_min);
    let body = root.margin(60, 10, 20, 30);
    let mut chart = ChartBuilder::on(&body)
        .x_label_area_size(90)
        .y_label_area_size(110)
        .build_cartesian_2d((x_min - pad)..(x_max + pad), 0.0..1.0)
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(11)
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(232, 232, 232))
        .x_desc(unit_label(&s.size_unit))
        .y_desc("Rejection rate")
        .label_style(font(TICK))
        .axis_desc_style(font(AXIS))
        .axis_style(BLACK.stroke_width(2))
        .draw()
        .map_err(de)?;
    let req = &s.required;
    // The interpolated size and its Monte Carlo range.
    if let Some(n) = req.size {
        let lo = req.size_low.unwrap_or(x_min - pad);
        let hi = req.size_high.unwrap_or(x_max + pad);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(lo, 0.0), (hi, 1.0)],
                RGBColor(225, 238, 248).filled(),
            )))
            .map_err(de)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(n, 0.0), (n, 1.0)],
                RGBColor(0, 114, 178).stroke_width(2),
            )))
            .map_err(de)?;
    }
    // Target power and nominal alpha.
    for (y, label) in [
        (
            req.target_power,
            format!("target {}", tick_label(req.target_power)),
        ),
        (
            r.plan.analysis.alpha,
            format!("alpha {}", tick_label(r.plan.analysis.alpha)),
        ),
    ] {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x_min - pad, y), (x_max + pad, y)],
                10,
                6,
                RGBColor(120, 120, 120).stroke_width(2),
            ))
            .map_err(de)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (x_min - pad * 0.8, y + 0.035),
                font(TICK * 0.85),
            )))
            .map_err(de)?;
    }
    // (label, colour index, (estimate, CI low, CI high) per size)
    type Series<'a> = (&'a str, usize, Vec<(f64, f64, f64)>);
    let series: [Series; 2] = [
        (
            "power",
            0,
            s.sizes
                .iter()
                .map(|z| (z.power.estimate, z.power.conf_low, z.power.conf_high))
                .collect(),
        ),
        (
            "type I error (no effect)",
            1,
            s.sizes
                .iter()
                .map(|z| {
                    (
                        z.type1_error.estimate,
                        z.type1_error.conf_low,
                        z.type1_error.conf_high,
                    )
                })
                .collect(),
        ),
    ];
    for (label, ci, pts) in &series {
        let color = series_color(*ci);
        let line: Vec<(f64, f64)> = xs.iter().zip(pts).map(|(x, p)| (*x, p.0)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(3)))
            .map_err(de)?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        // Monte Carlo intervals: a vertical bar with caps (1% of the x range wide).
        let cap = 0.01 * (x_max - x_min + 2.0 * pad);
        for (x, p) in xs.iter().zip(pts) {
            for seg in [
                vec![(*x, p.1), (*x, p.2)],
                vec![(x - cap, p.1), (x + cap, p.1)],
                vec![(x - cap, p.2), (x + cap, p.2)],
            ] {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        seg,
                        color.stroke_width(2),
                    )))
                    .map_err(de)?;
            }
        }
        chart
            .draw_series(line.iter().map(|p| Circle::new(*p, 6, color.filled())))
            .map_err(de)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(font(TICK))
        .draw()
        .map_err(de)?;
    Ok(())
}

fn num(v: Option<f64>) -> String {
    v.map(super::format::raw).unwrap_or_default()
}

/// `trials.csv`: one row per simulated trial and data version (`alt` with the effect, `null`
/// without), with the fit's status and error.
pub fn trials_csv(records: &[TrialRecord], sizes: &[usize]) -> String {
    let mut out = String::from(
        "size_index,size,trial,version,n_participants,n_groups,status,estimate,std_error,df,p_value,conf_low,conf_high,reject,error\n",
    );
    for r in records {
        for (version, t) in [("alt", &r.alt), ("null", &r.null)] {
            let status = serde_json::to_value(t.status)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let fields = [
                r.size_index.to_string(),
                sizes
                    .get(r.size_index)
                    .map_or(String::new(), |s| s.to_string()),
                r.trial.to_string(),
                version.to_string(),
                r.n_participants.to_string(),
                r.n_groups.to_string(),
                status,
                num(t.estimate),
                num(t.std_error),
                num(t.df),
                num(t.p_value),
                num(t.conf_low),
                num(t.conf_high),
                t.reject.to_string(),
                super::tables::csv_quote(t.error.as_deref().unwrap_or("")),
            ];
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    out
}

/// The HTML page.
pub fn html(r: &PowerResults, table: &Table, svg: &str, opts: &ReportOptions) -> String {
    let s = &r.summary;
    let p = &r.plan;
    let esc = html_escape;
    let design = match p.design.kind {
        crate::power::plan::DesignKind::Individual => "individually randomized".to_string(),
        crate::power::plan::DesignKind::PartiallyNested => format!(
            "individually randomized, {} arm trained in groups (partially nested; mean group size {}, CV {})",
            p.arms.labels[1],
            p.design.group_size.map_or("-".into(), tick_label),
            tick_label(p.design.group_size_cv)
        ),
        crate::power::plan::DesignKind::Cluster => format!(
            "cluster randomized (whole groups; mean group size {}, CV {})",
            p.design.group_size.map_or("-".into(), tick_label),
            tick_label(p.design.group_size_cv)
        ),
    };
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>",
    );
    out.push_str(&esc(&r.title));
    out.push_str("</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}\
table.apa{border-collapse:collapse;margin:1em 0;font-size:90%}table.apa th,table.apa td{padding:2px 8px}\
table.apa thead{border-top:2px solid #000;border-bottom:1px solid #000}table.apa tbody{border-bottom:2px solid #000}\
td.num,th.num{text-align:right}caption{text-align:left;font-weight:bold}.answer{font-size:120%;background:#eef5fb;padding:.6em}\
svg{max-width:100%;height:auto}</style>\n</head>\n<body>\n");
    out.push_str(&format!("<h1>{}</h1>\n", esc(&r.title)));
    out.push_str(&format!(
        "<p class=\"answer\">Smallest size for {} power: {}.</p>\n",
        tick_label(s.required.target_power),
        esc(&s.required.note)
    ));
    out.push_str("<h2>Plan</h2>\n<ul>\n");
    for item in [
        format!("Design: {design}; {} site(s); allocation {:?} ({} : {}).", p.design.sites, p.arms.allocation, p.arms.labels[0], p.arms.labels[1]),
        format!("Waves: {} (months {:?}).", p.waves.labels.join(", "), p.months()),
        format!(
            "Outcome {}: baseline mean {}, SD {}; ICC participant {}, group {}, site {}; residual AR(1) {}; simulated at the {} level.",
            p.outcome.name,
            tick_label(p.outcome.baseline_mean),
            tick_label(p.outcome.baseline_sd),
            tick_label(p.outcome.icc_participant),
            tick_label(p.outcome.icc_group),
            tick_label(p.outcome.icc_site),
            tick_label(p.outcome.autocorrelation),
            match p.outcome.level {
                crate::power::plan::OutcomeLevel::Score => "score",
                crate::power::plan::OutcomeLevel::Item => "item",
            }
        ),
        format!("Effect: {} = {} score units.", r.contrast, tick_label(s.true_effect)),
        format!("Dropout ({:?}): {:?}.", p.dropout.mechanism, p.dropout.rates),
        format!("Analysis: {}, {} df, alpha {}.", r.model, r.df_method, p.analysis.alpha),
        format!("{} simulated trials per size, seed {}, herstel {}.", p.simulations, r.seed, r.herstel_version),
    ] {
        out.push_str(&format!("<li>{}</li>\n", esc(&item)));
    }
    out.push_str("</ul>\n<h2>Power curve</h2>\n<figure>\n");
    out.push_str(svg);
    out.push_str("<figcaption>Power (black) and type I error on the same trials without the effect (orange) per size, with 95% Monte Carlo intervals; dashed: target power and alpha; blue: the interpolated size and its Monte Carlo range.</figcaption>\n</figure>\n<h2>Results</h2>\n");
    out.push_str(&table.to_html(opts));
    let failures: Vec<String> = s
        .sizes
        .iter()
        .flat_map(|z| {
            z.fits
                .failure_reasons
                .iter()
                .chain(&z.fits_null.failure_reasons)
                .map(move |(m, n)| format!("{} {}: {n} x {m}", unit_label(&s.size_unit), z.size))
        })
        .collect();
    if !failures.is_empty() {
        out.push_str("<h2>Failed fits</h2>\n<ul>\n");
        for f in failures {
            out.push_str(&format!("<li>{}</li>\n", esc(&f)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<p>Every number is read from power.json of the same run; every simulated trial is in trials.csv.</p>\n</body>\n</html>\n");
    out
}

/// Writes every output of a power run into `out_dir`; returns the files written (relative).
pub fn write_power(
    r: &PowerResults,
    records: &[TrialRecord],
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<Vec<PathBuf>, ReportError> {
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|source| ReportError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    mkdir(out_dir)?;
    let mut files = Vec::new();
    let json = serde_json::to_string_pretty(r)? + "\n";
    write_file(out_dir, "power.json", json.as_bytes())?;
    files.push(PathBuf::from("power.json"));
    write_file(
        out_dir,
        "trials.csv",
        trials_csv(records, r.plan.sizes()).as_bytes(),
    )?;
    files.push(PathBuf::from("trials.csv"));
    let tables_dir = out_dir.join("tables");
    mkdir(&tables_dir)?;
    let table = power_table(r);
    for (ext, text) in [
        ("csv", table.to_csv()),
        ("md", table.to_markdown(opts)),
        ("tex", table.to_latex(opts)),
        ("html", table.to_html(opts)),
    ] {
        write_file(&tables_dir, &format!("power.{ext}"), text.as_bytes())?;
        files.push(PathBuf::from(format!("tables/power.{ext}")));
    }
    let mut svg = String::new();
    if opts.plots {
        register_fonts();
        let fail = |message: String| {
            ReportError::Plot(super::plots::PlotError {
                figure: "power_curve".into(),
                message,
            })
        };
        let plots_dir = out_dir.join("plots");
        mkdir(&plots_dir)?;
        {
            let root = SVGBackend::with_string(&mut svg, CURVE_SIZE).into_drawing_area();
            draw_curve(&root, r).map_err(fail)?;
            root.present().map_err(|e| fail(de(e)))?;
        }
        write_file(&plots_dir, "power_curve.svg", svg.as_bytes())?;
        files.push(PathBuf::from("plots/power_curve.svg"));
        if opts.png {
            let path = plots_dir.join("power_curve.png");
            crate::report::plots::write_png(&path, CURVE_SIZE, |root| draw_curve(root, r))
                .map_err(fail)?;
            files.push(PathBuf::from("plots/power_curve.png"));
        }
    }
    if opts.html {
        write_file(
            out_dir,
            "report.html",
            html(r, &table, &svg, opts).as_bytes(),
        )?;
        files.push(PathBuf::from("report.html"));
    }
    Ok(files)
}
