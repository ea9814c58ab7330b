//! Residual diagnostics of one mixed model: normal QQ plot of the conditional residuals, normal
//! QQ plot of the random intercepts (conditional modes), residuals against fitted values.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{bold, de, font, padded_range, series_color, AXIS, GREY, TICK, TITLE};
use crate::report::format::{analysis_set_label, sensitivity_label, Labels};
use crate::results::{OutcomeResult, QqPlot};

/// At most this many points are drawn per panel (every k-th in order), to keep large models
/// fast to render; the reference lines use all values.
const MAX_POINTS: usize = 20_000;

/// A reference line as (intercept, slope).
pub type Line = (f64, f64);

/// The points and the reference line of a stored QQ plot.
fn qq_points(q: &QqPlot) -> (Vec<(f64, f64)>, Option<Line>) {
    let pts = q
        .theoretical
        .iter()
        .zip(&q.sample)
        .map(|(x, y)| (*x, *y))
        .collect();
    (pts, q.line)
}

fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let k = points.len().div_ceil(MAX_POINTS);
    points.into_iter().step_by(k).collect()
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    xlab: &str,
    ylab: &str,
    points: Vec<(f64, f64)>,
    line: Option<(f64, f64)>,
    color: RGBColor,
) -> Result<(), String> {
    let (x0, x1) = padded_range(points.iter().map(|p| p.0), 0.05);
    let (y0, y1) = padded_range(points.iter().map(|p| p.1), 0.05);
    let mut chart = ChartBuilder::on(area)
        .margin(16)
        .caption(title, font(AXIS))
        .x_label_area_size(90)
        .y_label_area_size(110)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(232, 232, 232))
        .x_desc(xlab)
        .y_desc(ylab)
        .label_style(font(TICK))
        .axis_desc_style(font(AXIS))
        .axis_style(BLACK.stroke_width(2))
        .draw()
        .map_err(de)?;
    if points.is_empty() {
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            "not available",
            (w as i32 / 2, h as i32 / 2),
            font(AXIS).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(de)?;
        return Ok(());
    }
    if let Some((a, b)) = line {
        // Clip the segment to the plotting window ourselves: plotters clamps out-of-range
        // points to the edge, which would bend the line (wrong slope and offset).
        let (mut xa, mut xb) = (x0, x1);
        if b.abs() > 1e-300 {
            let (ya, yb) = ((y0 - a) / b, (y1 - a) / b);
            let (lo, hi) = if ya < yb { (ya, yb) } else { (yb, ya) };
            xa = xa.max(lo);
            xb = xb.min(hi);
        }
        if xa < xb {
            chart
                .draw_series(LineSeries::new(
                    vec![(xa, a + b * xa), (xb, a + b * xb)],
                    GREY.stroke_width(3),
                ))
                .map_err(de)?;
        }
    }
    let r = if points.len() > 2000 { 2 } else { 4 };
    chart
        .draw_series(
            thin(points)
                .into_iter()
                .map(|p| Circle::new(p, r, color.mix(0.55).filled())),
        )
        .map_err(de)?;
    Ok(())
}

/// Draws the three diagnostic panels.
pub fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    o: &OutcomeResult,
    labels: &Labels,
) -> Result<(), String> {
    let Some(d) = &o.diagnostics else {
        return Ok(());
    };
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        format!(
            "Model diagnostics: {}, {} ({})",
            labels.outcome(&o.outcome),
            analysis_set_label(&o.analysis_set),
            sensitivity_label(o.sensitivity.as_deref())
        ),
        (w as i32 / 2, 28),
        bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let body = root.margin(56, 0, 0, 0);
    let panels = body.split_evenly((1, 3));
    let (res_pts, res_line) = qq_points(&d.qq_residuals);
    let group = d.qq_group.clone();
    let (ri_pts, ri_line) = qq_points(&d.qq_random_intercepts);
    let rvf: Vec<(f64, f64)> = d
        .fitted
        .iter()
        .zip(&d.residuals)
        .map(|(f, r)| (*f, *r))
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if let Some(p) = panels.first() {
        panel(
            p,
            "Residuals: normal QQ",
            "Theoretical quantiles (standard normal)",
            "Residual (score units)",
            res_pts,
            res_line,
            series_color(2),
        )?;
    }
    if let Some(p) = panels.get(1) {
        panel(
            p,
            &format!("Random intercepts ({})", group.as_deref().unwrap_or("none")),
            "Theoretical quantiles (standard normal)",
            "Conditional mode (score units)",
            ri_pts,
            ri_line,
            series_color(3),
        )?;
    }
    if let Some(p) = panels.get(2) {
        panel(
            p,
            "Residuals vs fitted",
            "Fitted value (score units)",
            "Residual (score units)",
            rvf,
            Some((0.0, 0.0)),
            series_color(1),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qq_matches_r_ppoints() {
        // R: qqnorm(c(3, 1, 2))$x = qnorm(ppoints(3)) = -0.8694237, 0, 0.8694237
        let (theoretical, sample, line) = crate::stats::quantile::normal_qq(&[3.0, 1.0, 2.0]);
        let (pts, line) = qq_points(&QqPlot {
            theoretical,
            sample,
            line,
        });
        assert_eq!(pts.len(), 3);
        assert!((pts[0].0 + 0.8694237).abs() < 1e-6);
        assert!(pts[1].0.abs() < 1e-12);
        assert_eq!(pts[2].1, 3.0);
        // qqline: quartiles 1.5 and 2.5 over qnorm(.25), qnorm(.75): slope 1/1.34898.
        let (a, b) = line.unwrap();
        assert!((b - 1.0 / 1.3489795).abs() < 1e-6);
        assert!((a - 2.0).abs() < 1e-9);
    }
}
