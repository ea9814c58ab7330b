//! Admissions and bed days per person-year by arm, before randomization and in follow-up.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{arm_color, bold, de, font, legend_row, TICK, TITLE};
use crate::results::Results;

/// Two panels of grouped bars: admissions per person-year and bed days per person-year.
pub fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &Results,
) -> Result<(), String> {
    let Some(a) = &results.admissions else {
        return Ok(());
    };
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        "Psychiatric admissions by arm",
        (w as i32 / 2, 28),
        bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let items: Vec<(String, RGBColor, usize)> = a
        .by_arm
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("{} (n = {})", r.arm, r.n), arm_color(i), 2))
        .collect();
    legend_row(root, &items, 78)?;
    let body = root.margin(110, 0, 24, 20);
    let panels = body.split_evenly((1, 2));
    let rate = |count: u64, years: f64| {
        if years > 0.0 {
            count as f64 / years
        } else {
            f64::NAN
        }
    };
    type Getter = fn(&crate::results::AdmissionsByArm) -> (u64, u64);
    let specs: [(&str, Getter); 2] = [
        ("Admissions per person-year", |r| {
            (r.admissions_prior, r.admissions_followup)
        }),
        ("Bed days per person-year", |r| {
            (r.bed_days_prior, r.bed_days_followup)
        }),
    ];
    for (panel, (ylab, get)) in panels.iter().zip(specs) {
        let values: Vec<[f64; 2]> = a
            .by_arm
            .iter()
            .map(|r| {
                let (p, f) = get(r);
                [
                    rate(p, r.exposure_years_prior),
                    rate(f, r.exposure_years_followup),
                ]
            })
            .collect();
        let ymax = values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let ymax = if ymax > 0.0 { ymax * 1.15 } else { 1.0 };
        let mut chart = super::category_chart(panel, 0.0..2.0, ymax, ylab, 70)?;
        let k = a.by_arm.len().max(1) as f64;
        let bw = 0.7 / k;
        for (i, v) in values.iter().enumerate() {
            for (g, val) in v.iter().enumerate() {
                if !val.is_finite() {
                    continue;
                }
                let left = g as f64 + 0.15 + bw * i as f64;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(left, 0.0), (left + bw * 0.92, *val)],
                        arm_color(i).filled(),
                    )))
                    .map_err(de)?;
                let (px, py) = chart.backend_coord(&(left + bw * 0.46, *val));
                let (ox, oy) = panel.get_base_pixel();
                panel
                    .draw(&Text::new(
                        crate::report::format::num(*val, 2),
                        (px - ox, py - oy - 6),
                        font(22.0).pos(Pos::new(HPos::Center, VPos::Bottom)),
                    ))
                    .map_err(de)?;
            }
        }
        let (ox, oy) = panel.get_base_pixel();
        for (g, label) in ["Year before randomization", "Follow-up"]
            .iter()
            .enumerate()
        {
            let (px, py) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
            panel
                .draw(&Text::new(
                    label.to_string(),
                    (px - ox, py - oy + 14),
                    font(TICK).pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(de)?;
        }
    }
    Ok(())
}
