//! The tipping-point plot: the contrast with its confidence band against delta, one line per
//! strategy, the zero line, and the tipping point of each strategy marked.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    bold, de, draw_marker, font, legend_row, padded_range, tick_label, AXIS, OKABE_ITO, TICK, TITLE,
};
use crate::report::format::Labels;
use crate::results::missing::SensitivityMissing;

/// Colour of the i-th strategy: blue, vermillion, bluish green, reddish purple.
fn color(i: usize) -> RGBColor {
    const C: [usize; 4] = [5, 6, 3, 7];
    OKABE_ITO[C[i % C.len()]]
}

pub fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &SensitivityMissing,
    labels: &Labels,
) -> Result<(), String> {
    let Some(first) = s.tipping_point.first() else {
        return Ok(());
    };
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        format!(
            "{} at {}: tipping-point analysis",
            labels.outcome(&s.outcome),
            first.wave
        ),
        (w as i32 / 2, 30),
        bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let items: Vec<(String, RGBColor, usize)> = s
        .tipping_point
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let tip = t
                .tipping_delta
                .map_or(String::new(), |d| format!(", tipping point {d:.2}"));
            (format!("{}{tip}", t.strategy), color(i), i)
        })
        .collect();
    legend_row(root, &items, 80)?;
    let body = root.margin(110, 10, 20, 30);
    let xs = s
        .tipping_point
        .iter()
        .flat_map(|t| t.grid.iter().map(|g| g.delta));
    let (x0, x1) = padded_range(xs, 0.02);
    let ys = s
        .tipping_point
        .iter()
        .flat_map(|t| t.grid.iter().flat_map(|g| [g.conf_low, g.conf_high]))
        .chain(std::iter::once(0.0));
    let (y0, y1) = padded_range(ys, 0.06);
    let xdesc = match first.delta_units.as_str() {
        "sd" => format!(
            "Delta added after dropout in {} (baseline SDs; 1 SD = {:.3})",
            crate::report::sensitivity::shift_text(first),
            first.delta_scale
        ),
        _ => format!(
            "Delta added after dropout in {} (score points)",
            crate::report::sensitivity::shift_text(first)
        ),
    };
    let mut chart = ChartBuilder::on(&body)
        .x_label_area_size(80)
        .y_label_area_size(110)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(230, 230, 230))
        .x_desc(xdesc)
        .y_desc(format!(
            "{} minus {} ({:.0}% CI)",
            s.active_arm,
            s.reference_arm,
            100.0 * s.conf_level
        ))
        .label_style(font(TICK))
        .axis_desc_style(font(AXIS))
        .axis_style(BLACK.stroke_width(2))
        .draw()
        .map_err(de)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(x0, 0.0), (x1, 0.0)],
            BLACK.stroke_width(2),
        )))
        .map_err(de)?;
    for (i, t) in s.tipping_point.iter().enumerate() {
        let c = color(i);
        let mut band: Vec<(f64, f64)> = t.grid.iter().map(|g| (g.delta, g.conf_high)).collect();
        band.extend(t.grid.iter().rev().map(|g| (g.delta, g.conf_low)));
        chart
            .draw_series(std::iter::once(Polygon::new(band, c.mix(0.10).filled())))
            .map_err(de)?;
        for edge in [
            t.grid
                .iter()
                .map(|g| (g.delta, g.conf_low))
                .collect::<Vec<_>>(),
            t.grid.iter().map(|g| (g.delta, g.conf_high)).collect(),
        ] {
            chart
                .draw_series(DashedLineSeries::new(edge, 8, 6, c.stroke_width(2)))
                .map_err(de)?;
        }
        chart
            .draw_series(LineSeries::new(
                t.grid.iter().map(|g| (g.delta, g.estimate)),
                c.stroke_width(4),
            ))
            .map_err(de)?;
        let (ox, oy) = body.get_base_pixel();
        for g in &t.grid {
            let (px, py) = chart.backend_coord(&(g.delta, g.estimate));
            draw_marker(&body, i, (px - ox, py - oy), 6, c)?;
        }
        if let Some(d) = t.tipping_delta {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(d, y0), (d, y1)],
                    10,
                    8,
                    c.stroke_width(3),
                ))
                .map_err(de)?;
            let (px, _) = chart.backend_coord(&(d, y1));
            body.draw(&Text::new(
                format!("{d:.2}"),
                (px - ox + 8, 14 + 34 * i as i32),
                font(TICK).color(&c).pos(Pos::new(HPos::Left, VPos::Top)),
            ))
            .map_err(de)?;
        }
    }
    Ok(())
}
