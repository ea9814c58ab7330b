//! Mean trajectories per arm (marginal means with CIs) and individual trajectories.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{arm_color, de, draw_marker, font, legend_row, padded_range, AXIS, TICK, TITLE};
use crate::report::format::Labels;
use crate::results::{OutcomeResult, Results};

/// Months of a wave from the study description, else its position.
fn wave_months(results: &Results, wave: &str) -> f64 {
    results
        .study
        .waves
        .iter()
        .position(|w| w.label == wave)
        .and_then(|i| results.study.waves.get(i))
        .map(|w| w.months)
        .unwrap_or(f64::NAN)
}

/// Waves shown on the x axis: the study's, or those in the data in order of appearance.
fn axis_waves(o: &OutcomeResult, results: &Results) -> Vec<(String, f64)> {
    if !results.study.waves.is_empty() {
        return results
            .study
            .waves
            .iter()
            .map(|w| (w.label.clone(), w.months))
            .collect();
    }
    let mut v: Vec<(String, f64)> = Vec::new();
    for e in &o.emmeans {
        if !v.iter().any(|(w, _)| w == &e.wave) {
            let k = v.len() as f64;
            v.push((e.wave.clone(), k));
        }
    }
    v
}

fn month_of(waves: &[(String, f64)], results: &Results, wave: &str) -> f64 {
    let m = wave_months(results, wave);
    if m.is_finite() {
        m
    } else {
        waves
            .iter()
            .find(|(w, _)| w == wave)
            .map(|(_, m)| *m)
            .unwrap_or(f64::NAN)
    }
}

fn arms_of(o: &OutcomeResult, results: &Results) -> Vec<String> {
    let mut arms: Vec<String> = results.study.arms.clone();
    for e in &o.emmeans {
        if !arms.contains(&e.arm) {
            arms.push(e.arm.clone());
        }
    }
    arms
}

/// Draws wave tick labels (`T1`, `12 mo`) under the x axis of a chart.
fn wave_ticks<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    waves: &[(String, f64)],
    y_axis: f64,
) -> Result<(), String> {
    for (label, m) in waves {
        let (px, py) = chart.backend_coord(&(*m, y_axis));
        let (ox, oy) = root.get_base_pixel();
        let (px, py) = (px - ox, py - oy);
        root.draw(&PathElement::new(
            vec![(px, py), (px, py + 10)],
            BLACK.stroke_width(2),
        ))
        .map_err(de)?;
        root.draw(&Text::new(
            label.clone(),
            (px, py + 14),
            font(TICK).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(de)?;
        root.draw(&Text::new(
            format!("{} mo", crate::report::format::num(*m, 0)),
            (px, py + 46),
            font(TICK - 4.0)
                .color(&RGBColor(90, 90, 90))
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(de)?;
    }
    Ok(())
}

/// Estimated marginal means per arm over the waves, with CIs as error bars; arms slightly
/// dodged so the bars do not overlap.
pub fn draw_means<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    o: &OutcomeResult,
    results: &Results,
    labels: &Labels,
) -> Result<(), String> {
    let waves = axis_waves(o, results);
    let arms = arms_of(o, results);
    let (x0, x1) = padded_range(waves.iter().map(|w| w.1), 0.08);
    let (y0, y1) = padded_range(
        o.emmeans
            .iter()
            .flat_map(|e| [e.conf_low, e.conf_high, e.estimate]),
        0.12,
    );
    let dodge = (x1 - x0) * 0.012;
    let title = format!(
        "{} ({})",
        labels.outcome(&o.outcome),
        crate::report::format::analysis_set_label(&o.analysis_set)
    );
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        title,
        (w as i32 / 2, 28),
        super::bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let items: Vec<(String, RGBColor, usize)> = arms
        .iter()
        .enumerate()
        .map(|(i, a)| (a.clone(), arm_color(i), i))
        .collect();
    legend_row(root, &items, 76)?;
    let body = root.margin(100, 0, 10, 30);
    let mut chart = ChartBuilder::on(&body)
        .x_label_area_size(120)
        .y_label_area_size(120)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(de)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .y_desc(format!(
            "{} ({})",
            labels.outcome(&o.outcome),
            match o.family.as_deref() {
                Some(f) if f.starts_with("binomial") => "probability".to_string(),
                Some(_) => "rate".to_string(),
                None => labels.unit(&o.outcome),
            }
        ))
        .label_style(font(TICK))
        .axis_desc_style(font(AXIS))
        .axis_style(BLACK.stroke_width(2))
        .draw()
        .map_err(de)?;
    wave_ticks(&body, &chart, &waves, y0)?;
    let n = arms.len().max(1) as f64;
    for (i, arm) in arms.iter().enumerate() {
        let color = arm_color(i);
        let off = (i as f64 - (n - 1.0) / 2.0) * dodge * 2.0;
        let mut pts: Vec<(f64, f64, f64, f64)> = o
            .emmeans
            .iter()
            .filter(|e| &e.arm == arm)
            .map(|e| {
                (
                    month_of(&waves, results, &e.wave) + off,
                    e.estimate,
                    e.conf_low,
                    e.conf_high,
                )
            })
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                color.stroke_width(4),
            ))
            .map_err(de)?;
        // Error bars: the CI as a vertical line with caps.
        for p in pts.iter().filter(|p| p.2.is_finite() && p.3.is_finite()) {
            super::error_bar(&body, &chart, p.0, (p.2, p.3), color)?;
        }
        for p in &pts {
            let px = chart.backend_coord(&(p.0, p.1));
            let (ox, oy) = body.get_base_pixel();
            draw_marker(&body, i, (px.0 - ox, px.1 - oy), 9, color)?;
        }
    }
    // x-axis title under the wave labels.
    let (bw, bh) = body.dim_in_pixel();
    body.draw(&Text::new(
        "Months since randomization",
        ((bw as i32 + 120) / 2, bh as i32 - 4),
        font(AXIS).pos(Pos::new(HPos::Center, VPos::Bottom)),
    ))
    .map_err(de)?;
    Ok(())
}

/// Observed trajectories per participant as thin lines, one panel per arm, with the marginal
/// means as a thick black line.
pub fn draw_individual<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    o: &OutcomeResult,
    results: &Results,
    labels: &Labels,
) -> Result<(), String> {
    let Some(traj) = &o.trajectories else {
        return Ok(());
    };
    let waves = axis_waves(o, results);
    let arms = arms_of(o, results);
    let (x0, x1) = padded_range(waves.iter().map(|w| w.1), 0.06);
    let (y0, y1) = padded_range(
        traj.iter().flat_map(|t| t.points.iter().map(|p| p.value)),
        0.05,
    );
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        format!("{}: individual trajectories", labels.outcome(&o.outcome)),
        (w as i32 / 2, 28),
        super::bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let body = root.margin(60, 0, 24, 0);
    let panels = body.split_evenly((1, arms.len().max(1)));
    for (i, (arm, panel)) in arms.iter().zip(panels.iter()).enumerate() {
        let color = arm_color(i);
        let n = traj.iter().filter(|t| &t.arm == arm).count();
        let mut chart = ChartBuilder::on(panel)
            .margin_right(20)
            .margin_top(10)
            .caption(format!("{arm} (n = {n})"), font(AXIS).color(&color))
            .x_label_area_size(120)
            .y_label_area_size(if i == 0 { 120 } else { 70 })
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(de)?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh()
            .x_labels(0)
            .y_labels(6)
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(230, 230, 230))
            .label_style(font(TICK))
            .axis_desc_style(font(AXIS))
            .axis_style(BLACK.stroke_width(2));
        if i == 0 {
            mesh.y_desc(format!(
                "{} ({})",
                labels.outcome(&o.outcome),
                labels.unit(&o.outcome)
            ));
        }
        mesh.draw().map_err(de)?;
        wave_ticks(panel, &chart, &waves, y0)?;
        for t in traj.iter().filter(|t| &t.arm == arm) {
            let mut pts: Vec<(f64, f64)> = t
                .points
                .iter()
                .map(|p| {
                    let m = if p.months.is_finite() {
                        p.months
                    } else {
                        month_of(&waves, results, &p.wave)
                    };
                    (m, p.value)
                })
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            if pts.len() == 1 {
                chart
                    .draw_series(
                        pts.iter()
                            .map(|p| Circle::new(*p, 3, color.mix(0.5).filled())),
                    )
                    .map_err(de)?;
            } else {
                chart
                    .draw_series(LineSeries::new(pts, color.mix(0.35).stroke_width(2)))
                    .map_err(de)?;
            }
        }
        let mut means: Vec<(f64, f64)> = o
            .emmeans
            .iter()
            .filter(|e| &e.arm == arm)
            .map(|e| (month_of(&waves, results, &e.wave), e.estimate))
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        means.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(means.clone(), BLACK.stroke_width(6)))
            .map_err(de)?;
        chart
            .draw_series(means.iter().map(|p| Circle::new(*p, 8, BLACK.filled())))
            .map_err(de)?;
        let (pw, ph) = panel.dim_in_pixel();
        let left = if i == 0 { 120 } else { 70 };
        panel
            .draw(&Text::new(
                "Months since randomization",
                ((pw as i32 + left) / 2, ph as i32 - 4),
                font(AXIS).pos(Pos::new(HPos::Center, VPos::Bottom)),
            ))
            .map_err(de)?;
    }
    Ok(())
}
