//! Forest plot of Cohen's d with CIs across outcomes, analysis sets, models and waves.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    de, draw_marker, font, legend_row, padded_range, series_color, AXIS, GREY, TICK, TITLE,
};
use crate::report::format::{analysis_set_label, sensitivity_label, Labels};
use crate::results::{OutcomeResult, Results};

const ROW: u32 = 56;
const TOP: u32 = 130;
const BOTTOM: u32 = 110;

fn rows(results: &Results) -> Vec<&OutcomeResult> {
    results
        .outcomes
        .iter()
        .filter(|o| {
            o.contrasts
                .iter()
                .any(|c| c.cohens_d.is_some_and(f64::is_finite))
        })
        .collect()
}

fn waves(results: &Results) -> Vec<String> {
    let mut w: Vec<String> = Vec::new();
    for o in rows(results) {
        for c in &o.contrasts {
            if c.cohens_d.is_some() && !w.contains(&c.wave) {
                w.push(c.wave.clone());
            }
        }
    }
    let order: Vec<&str> = results
        .study
        .waves
        .iter()
        .map(|w| w.label.as_str())
        .collect();
    w.sort_by_key(|x| order.iter().position(|o| o == x).unwrap_or(usize::MAX));
    w
}

/// Figure height for the number of rows.
pub fn height(results: &Results) -> u32 {
    TOP + BOTTOM + ROW * rows(results).len().max(1) as u32
}

/// Draws the forest plot; rows labelled on the left, one marker per follow-up wave.
pub fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &Results,
    labels: &Labels,
) -> Result<(), String> {
    let rows = rows(results);
    let waves = waves(results);
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        "Standardized effects (Cohen's d)",
        (w as i32 / 2, 28),
        super::bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let items: Vec<(String, plotters::style::RGBColor, usize)> = waves
        .iter()
        .enumerate()
        .map(|(i, wv)| (wv.clone(), series_color(i), i))
        .collect();
    legend_row(root, &items, 78)?;
    let label_w = 620;
    let (x0, x1) = padded_range(
        rows.iter()
            .flat_map(|o| o.contrasts.iter())
            .flat_map(|c| [c.d_conf_low, c.d_conf_high, c.cohens_d])
            .flatten()
            .chain([0.0]),
        0.08,
    );
    let n = rows.len().max(1) as f64;
    let body = root.margin(TOP - 20, 0, 0, 40);
    let mut chart = ChartBuilder::on(&body)
        .margin_top(20)
        .x_label_area_size(BOTTOM as i32)
        .y_label_area_size(label_w)
        .build_cartesian_2d(x0..x1, (-0.5)..(n - 0.5))
        .map_err(de)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(8)
        .x_label_formatter(&|v| crate::report::format::num(*v, 1))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(230, 230, 230))
        .x_desc("Cohen's d (intervention minus control)")
        .label_style(font(TICK))
        .axis_desc_style(font(AXIS))
        .axis_style(BLACK.stroke_width(2))
        .draw()
        .map_err(de)?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, -0.5), (0.0, n - 0.5)],
            GREY.stroke_width(2),
        ))
        .map_err(de)?;
    let (ox, oy) = body.get_base_pixel();
    let nw = waves.len().max(1) as f64;
    for (k, o) in rows.iter().enumerate() {
        // First row at the top.
        let yc = n - 1.0 - k as f64;
        if k % 2 == 0 {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, yc - 0.5), (x1, yc + 0.5)],
                    RGBColor(246, 246, 246).filled(),
                )))
                .map_err(de)?;
        }
        let label = format!(
            "{} \u{00b7} {} \u{00b7} {}",
            labels.outcome(&o.outcome),
            analysis_set_label(&o.analysis_set),
            sensitivity_label(o.sensitivity.as_deref())
        );
        let (px, py) = chart.backend_coord(&(x0, yc));
        let style = if o.primary {
            super::bold(TICK)
        } else {
            font(TICK)
        };
        body.draw(&Text::new(
            label,
            (px - ox - 14, py - oy),
            style.pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(de)?;
        for c in &o.contrasts {
            let Some(d) = c.cohens_d.filter(|d| d.is_finite()) else {
                continue;
            };
            let wi = waves.iter().position(|w| w == &c.wave).unwrap_or(0);
            let color = series_color(wi);
            let y = yc + (((nw - 1.0) / 2.0) - wi as f64) * (0.6 / nw);
            if let (Some(lo), Some(hi)) = (c.d_conf_low, c.d_conf_high) {
                if lo.is_finite() && hi.is_finite() {
                    chart
                        .draw_series(LineSeries::new(
                            vec![(lo, y), (hi, y)],
                            color.stroke_width(3),
                        ))
                        .map_err(de)?;
                }
            }
            let (mx, my) = chart.backend_coord(&(d, y));
            draw_marker(&body, wi, (mx - ox, my - oy), 8, color)?;
        }
    }
    Ok(())
}
