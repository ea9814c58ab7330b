//! Admissions per period between waves: observed and model-based rates per person-year (NB
//! GLMM) and risks of any admission (logistic GLMM) per arm, with the models' 95% intervals.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    arm_color, bold, category_chart, de, draw_marker, error_bar, font, legend_row, TICK, TITLE,
};
use crate::results::{PerPeriodAdmissions, PeriodModel};

/// One panel's points per arm: `(period index, observed, model, low, high)`.
type Points = Vec<Vec<(usize, f64, f64, f64, f64)>>;

fn points(
    pp: &PerPeriodAdmissions,
    arms: &[String],
    model: Option<&PeriodModel>,
    rate: bool,
) -> Points {
    arms.iter()
        .map(|arm| {
            pp.periods
                .iter()
                .enumerate()
                .map(|(k, per)| {
                    let obs = pp
                        .observed
                        .iter()
                        .find(|o| &o.arm == arm && o.period == per.label)
                        .map_or(f64::NAN, |o| {
                            if rate {
                                o.admissions as f64 / o.person_years
                            } else if o.n > 0 {
                                100.0 * o.with_admission as f64 / o.n as f64
                            } else {
                                f64::NAN
                            }
                        });
                    let scale = if rate { 1.0 } else { 100.0 };
                    let m = model.and_then(|m| {
                        m.marginal
                            .iter()
                            .find(|x| &x.arm == arm && x.period == per.label)
                    });
                    let (e, lo, hi) = m.map_or((f64::NAN, f64::NAN, f64::NAN), |m| {
                        (m.estimate * scale, m.conf_low * scale, m.conf_high * scale)
                    });
                    (k, obs, e, lo, hi)
                })
                .collect()
        })
        .collect()
}

/// Two panels: admissions per person-year at risk, and participants with an admission (%).
pub fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pp: &PerPeriodAdmissions,
    arms: &[String],
) -> Result<(), String> {
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        "Psychiatric admissions per period between waves",
        (w as i32 / 2, 28),
        bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let mut items: Vec<(String, RGBColor, usize)> = arms
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("{a}: model (95% CI)"), arm_color(i), i))
        .collect();
    items.push(("open circles: observed".into(), RGBColor(120, 120, 120), 0));
    legend_row(root, &items, 78)?;
    let body = root.margin(110, 0, 24, 20);
    let panels = body.split_evenly((1, 2));
    let specs = [
        (
            "Admissions per person-year at risk",
            points(pp, arms, pp.negative_binomial.as_ref(), true),
        ),
        (
            "Participants with an admission (%)",
            points(pp, arms, pp.logistic.as_ref(), false),
        ),
    ];
    let k = pp.periods.len().max(1);
    for (panel, (ylab, pts)) in panels.iter().zip(specs) {
        let ymax = pts
            .iter()
            .flatten()
            .flat_map(|p| [p.1, p.4])
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let ymax = if ymax > 0.0 { ymax * 1.12 } else { 1.0 };
        let mut chart = category_chart(panel, -0.5..(k as f64 - 0.5), ymax, ylab, 90)?;
        let (ox, oy) = panel.get_base_pixel();
        let n = arms.len().max(1) as f64;
        for (i, series) in pts.iter().enumerate() {
            let color = arm_color(i);
            let off = (i as f64 - (n - 1.0) / 2.0) * 0.16;
            let model: Vec<(f64, f64)> = series
                .iter()
                .filter(|p| p.2.is_finite())
                .map(|p| (p.0 as f64 + off, p.2))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    model.iter().copied(),
                    color.stroke_width(3),
                ))
                .map_err(de)?;
            for p in series {
                let x = p.0 as f64 + off;
                if p.3.is_finite() && p.4.is_finite() {
                    error_bar(panel, &chart, x, (p.3, p.4), color)?;
                }
                if p.2.is_finite() {
                    let (px, py) = chart.backend_coord(&(x, p.2));
                    draw_marker(panel, i, (px - ox, py - oy), 9, color)?;
                }
                if p.1.is_finite() {
                    let (px, py) = chart.backend_coord(&(x + 0.07, p.1));
                    panel
                        .draw(&Circle::new((px - ox, py - oy), 8, color.stroke_width(3)))
                        .map_err(de)?;
                }
            }
        }
        for (g, per) in pp.periods.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(g as f64, 0.0));
            let label = format!("{} to {}", per.from_wave, per.to_wave);
            panel
                .draw(&Text::new(
                    label,
                    (px - ox, py - oy + 14),
                    font(TICK).pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(de)?;
        }
    }
    Ok(())
}
