//! Site figures: caterpillar plot of (shrunken) site effects, forest plot of per-site contrasts
//! with the random-effects pooled estimate and prediction interval (as metafor's `forest`), and
//! the funnel plot (as metafor's `funnel`: estimate against its SE, pseudo 95% limits).
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{bold, de, font, padded_range, series_color, AXIS, GREY, TICK, TITLE};
use crate::report::format::Labels;
use crate::results::SiteResult;

const ROW: u32 = 46;
const TOP: u32 = 90;
const BOTTOM: u32 = 110;

/// Height of a figure with `n` rows.
pub fn rows_height(n: usize) -> u32 {
    TOP + BOTTOM + 40 + ROW * n.max(1) as u32
}

/// One row: label, estimate, interval, and whether it is the pooled summary (a diamond).
struct Row {
    label: String,
    estimate: f64,
    low: f64,
    high: f64,
    summary: bool,
}

fn draw_rows<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    xlab: &str,
    rows: &[Row],
    reference: Option<f64>,
) -> Result<(), String> {
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        title.to_string(),
        (w as i32 / 2, 30),
        bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let (x0, x1) = padded_range(
        rows.iter()
            .flat_map(|r| [r.low, r.high, r.estimate])
            .chain(reference),
        0.08,
    );
    let n = rows.len().max(1) as f64;
    let body = root.margin(TOP - 20, 0, 0, 40);
    let mut chart = ChartBuilder::on(&body)
        .margin_top(20)
        .x_label_area_size(BOTTOM as i32)
        .y_label_area_size(230)
        .build_cartesian_2d(x0..x1, (-0.5)..(n - 0.5))
        .map_err(de)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(7)
        .x_label_formatter(&|v| super::tick_label(*v))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(230, 230, 230))
        .x_desc(xlab)
        .label_style(font(TICK))
        .axis_desc_style(font(AXIS))
        .axis_style(BLACK.stroke_width(2))
        .draw()
        .map_err(de)?;
    if let Some(r) = reference.filter(|r| r.is_finite()) {
        chart
            .draw_series(LineSeries::new(
                vec![(r, -0.5), (r, n - 0.5)],
                GREY.stroke_width(2),
            ))
            .map_err(de)?;
    }
    let (ox, oy) = body.get_base_pixel();
    let color = series_color(0);
    for (k, r) in rows.iter().enumerate() {
        let y = n - 1.0 - k as f64;
        let (px, py) = chart.backend_coord(&(x0, y));
        let style = if r.summary { bold(TICK) } else { font(TICK) };
        body.draw(&Text::new(
            r.label.clone(),
            (px - ox - 14, py - oy),
            style.pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(de)?;
        if r.low.is_finite() && r.high.is_finite() {
            if r.summary {
                let pts: Vec<(i32, i32)> = [
                    (r.low, y),
                    (r.estimate, y + 0.3),
                    (r.high, y),
                    (r.estimate, y - 0.3),
                ]
                .iter()
                .map(|p| {
                    let (a, b) = chart.backend_coord(p);
                    (a - ox, b - oy)
                })
                .collect();
                body.draw(&Polygon::new(pts, series_color(1).filled()))
                    .map_err(de)?;
                continue;
            }
            chart
                .draw_series(LineSeries::new(
                    vec![(r.low, y), (r.high, y)],
                    color.stroke_width(3),
                ))
                .map_err(de)?;
        }
        if r.estimate.is_finite() {
            let (mx, my) = chart.backend_coord(&(r.estimate, y));
            body.draw(&Rectangle::new(
                [(mx - ox - 8, my - oy - 8), (mx - ox + 8, my - oy + 8)],
                color.filled(),
            ))
            .map_err(de)?;
        }
    }
    Ok(())
}

/// Caterpillar plot: shrunken site effects +- 1.96 conditional SD (or per-site estimates with
/// their CIs when there is no shrinkage model), ordered by size.
pub fn draw_caterpillar<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &SiteResult,
    labels: &Labels,
) -> Result<(), String> {
    let mut rows: Vec<Row> = if s.shrunken.is_empty() {
        s.per_site
            .iter()
            .map(|p| Row {
                label: p.site_id.clone(),
                estimate: p.estimate,
                low: p.conf_low,
                high: p.conf_high,
                summary: false,
            })
            .collect()
    } else {
        s.shrunken
            .iter()
            .map(|p| Row {
                label: p.site_id.clone(),
                estimate: p.arm_effect,
                low: p.arm_effect - 1.96 * p.conditional_sd,
                high: p.arm_effect + 1.96 * p.conditional_sd,
                summary: false,
            })
            .collect()
    };
    rows.sort_by(|a, b| b.estimate.total_cmp(&a.estimate));
    let xlab = if s.shrunken.is_empty() {
        "Intervention minus control (score units)"
    } else {
        "Site-by-arm effect, deviation from average (score units)"
    };
    draw_rows(
        root,
        &format!("{} at {}: site effects", labels.outcome(&s.outcome), s.wave),
        xlab,
        &rows,
        Some(0.0),
    )
}

/// Forest plot of per-site contrasts, the pooled estimate (diamond) and prediction interval.
pub fn draw_forest<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &SiteResult,
    labels: &Labels,
) -> Result<(), String> {
    let mut rows: Vec<Row> = s
        .per_site
        .iter()
        .map(|p| Row {
            label: format!("{} (n = {})", p.site_id, p.n_participants),
            estimate: p.estimate,
            low: p.conf_low,
            high: p.conf_high,
            summary: false,
        })
        .collect();
    if let Some(m) = &s.meta_analysis {
        rows.push(Row {
            label: "Pooled (RE)".into(),
            estimate: m.estimate,
            low: m.conf_low,
            high: m.conf_high,
            summary: true,
        });
        rows.push(Row {
            label: "Prediction interval".into(),
            estimate: f64::NAN,
            low: m.pi_low,
            high: m.pi_high,
            summary: false,
        });
    }
    draw_rows(
        root,
        &format!(
            "{} at {}: effect by site",
            labels.outcome(&s.outcome),
            s.wave
        ),
        "Intervention minus control (score units)",
        &rows,
        Some(0.0),
    )
}

/// Funnel plot: per-site estimate against its SE (SE axis reversed), pooled estimate and the
/// pseudo 95% limits estimate +- 1.96 SE.
pub fn draw_funnel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &SiteResult,
    labels: &Labels,
) -> Result<(), String> {
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        format!("{} at {}: funnel plot", labels.outcome(&s.outcome), s.wave),
        (w as i32 / 2, 30),
        bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let center = s.meta_analysis.as_ref().map_or(f64::NAN, |m| m.estimate);
    let se_max = s
        .per_site
        .iter()
        .map(|p| p.std_error)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let se_max = if se_max > 0.0 { se_max * 1.1 } else { 1.0 };
    let (x0, x1) = padded_range(
        s.per_site
            .iter()
            .map(|p| p.estimate)
            .chain([center - 1.96 * se_max, center + 1.96 * se_max]),
        0.05,
    );
    let body = root.margin(60, 0, 24, 40);
    let mut chart = ChartBuilder::on(&body)
        .margin_top(10)
        .x_label_area_size(100)
        .y_label_area_size(120)
        .build_cartesian_2d(x0..x1, se_max..0.0)
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&|v| super::tick_label(*v))
        .y_label_formatter(&|v| super::tick_label(*v))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(232, 232, 232))
        .x_desc("Intervention minus control (score units)")
        .y_desc("Standard error")
        .label_style(font(TICK))
        .axis_desc_style(font(AXIS))
        .axis_style(BLACK.stroke_width(2))
        .draw()
        .map_err(de)?;
    if center.is_finite() {
        chart
            .draw_series(std::iter::once(Polygon::new(
                vec![
                    (center, 0.0),
                    (center - 1.96 * se_max, se_max),
                    (center + 1.96 * se_max, se_max),
                ],
                RGBColor(240, 240, 240).filled(),
            )))
            .map_err(de)?;
        for sign in [-1.0, 1.0] {
            chart
                .draw_series(LineSeries::new(
                    vec![(center, 0.0), (center + sign * 1.96 * se_max, se_max)],
                    GREY.stroke_width(2),
                ))
                .map_err(de)?;
        }
        chart
            .draw_series(LineSeries::new(
                vec![(center, 0.0), (center, se_max)],
                BLACK.stroke_width(2),
            ))
            .map_err(de)?;
    }
    chart
        .draw_series(
            s.per_site
                .iter()
                .filter(|p| p.estimate.is_finite() && p.std_error.is_finite())
                .map(|p| Circle::new((p.estimate, p.std_error), 9, series_color(2).filled())),
        )
        .map_err(de)?;
    let (ox, oy) = body.get_base_pixel();
    for p in s
        .per_site
        .iter()
        .filter(|p| p.estimate.is_finite() && p.std_error.is_finite())
    {
        let (px, py) = chart.backend_coord(&(p.estimate, p.std_error));
        body.draw(&Text::new(
            p.site_id.clone(),
            (px - ox + 14, py - oy),
            font(22.0).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(de)?;
    }
    Ok(())
}

/// Funnel plot of routine outcome monitoring (Spiegelhalter 2005, Stat Med 24): each site's
/// case-mix-adjusted mean change against its number of participants, with the overall mean
/// and the 95% and 99.8% control limits `overall +/- z sigma / sqrt(n)`.
pub fn draw_routine_funnel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &crate::results::RoutineResult,
    labels: &Labels,
) -> Result<(), String> {
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        format!(
            "{}: change {} to {} by site, adjusted for case mix",
            labels.outcome(&r.outcome),
            r.baseline_wave,
            r.wave
        ),
        (w as i32 / 2, 30),
        bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let n_max = r.rows.iter().map(|x| x.n).max().unwrap_or(1).max(2) as f64 * 1.1;
    let n_min = (r.rows.iter().map(|x| x.n).min().unwrap_or(1) as f64 * 0.8).max(1.0);
    let sigma = r.residual_sd;
    let center = r.overall_mean_change;
    let z95 = r
        .rows
        .first()
        .map_or(1.96, |x| (x.limit95_high - center) / x.std_error);
    let z998 = r
        .rows
        .first()
        .map_or(3.09, |x| (x.limit998_high - center) / x.std_error);
    let limit = |z: f64, n: f64| z * sigma / n.sqrt();
    let (y0, y1) = padded_range(
        r.rows
            .iter()
            .map(|x| x.adjusted)
            .chain([center - limit(z998, n_min), center + limit(z998, n_min)]),
        0.05,
    );
    let body = root.margin(60, 0, 24, 40);
    let mut chart = ChartBuilder::on(&body)
        .margin_top(10)
        .margin_right(30)
        .x_label_area_size(100)
        .y_label_area_size(120)
        .build_cartesian_2d(0.0..n_max, y0..y1)
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&|v| super::tick_label(*v))
        .y_label_formatter(&|v| super::tick_label(*v))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(232, 232, 232))
        .x_desc("Participants")
        .y_desc("Adjusted mean change")
        .label_style(font(TICK))
        .axis_desc_style(font(AXIS))
        .axis_style(BLACK.stroke_width(2))
        .draw()
        .map_err(de)?;
    if center.is_finite() && sigma.is_finite() && z95.is_finite() && z998.is_finite() {
        let steps = 120;
        let ns: Vec<f64> = (0..=steps)
            .map(|i| n_min + (n_max - n_min) * i as f64 / steps as f64)
            .collect();
        for (z, color) in [(z95, GREY), (z998, BLACK)] {
            for sign in [-1.0, 1.0] {
                chart
                    .draw_series(LineSeries::new(
                        ns.iter().map(|&n| (n, center + sign * limit(z, n))),
                        color.stroke_width(2),
                    ))
                    .map_err(de)?;
            }
        }
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, center), (n_max, center)],
                BLACK.stroke_width(2),
            ))
            .map_err(de)?;
    }
    chart
        .draw_series(
            r.rows
                .iter()
                .filter(|x| x.adjusted.is_finite())
                .map(|x| Circle::new((x.n as f64, x.adjusted), 9, series_color(2).filled())),
        )
        .map_err(de)?;
    let (ox, oy) = body.get_base_pixel();
    for x in r.rows.iter().filter(|x| x.adjusted.is_finite()) {
        let (px, py) = chart.backend_coord(&(x.n as f64, x.adjusted));
        body.draw(&Text::new(
            x.site_id.clone(),
            (px - ox + 14, py - oy),
            font(22.0).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(de)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_funnel_plot_draws() {
        super::super::register_fonts();
        let row = |id: &str, n: u64, adj: f64| crate::results::RoutineSiteRow {
            site_id: id.into(),
            n,
            observed: adj,
            expected: 0.0,
            adjusted: adj,
            std_error: 2.0 / (n as f64).sqrt(),
            limit95_low: -1.959964 * 2.0 / (n as f64).sqrt(),
            limit95_high: 1.959964 * 2.0 / (n as f64).sqrt(),
            limit998_low: -3.090232 * 2.0 / (n as f64).sqrt(),
            limit998_high: 3.090232 * 2.0 / (n as f64).sqrt(),
            funnel: "within".into(),
            shrunken: 0.0,
            conditional_sd: 0.1,
        };
        let r = crate::results::RoutineResult {
            outcome: "honos".into(),
            baseline_wave: "T0".into(),
            wave: "T2".into(),
            model: String::new(),
            shrinkage_model: String::new(),
            n_participants: 90,
            n_excluded: 0,
            overall_mean_change: 0.0,
            residual_sd: 2.0,
            site_sd: 0.1,
            rows: vec![row("SiteA", 20, 0.5), row("SiteB", 70, -0.2)],
            warnings: Vec::new(),
        };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (1000, 800)).into_drawing_area();
            root.fill(&WHITE).unwrap();
            draw_routine_funnel(&root, &r, &Labels::default()).unwrap();
            root.present().unwrap();
        }
        assert!(
            svg.contains("SiteA") && svg.contains("SiteB"),
            "site labels drawn"
        );
        assert!(
            svg.matches("<polyline").count() >= 5,
            "four limits and the centre line"
        );
    }
}
