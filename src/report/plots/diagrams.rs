//! Box-and-arrow figures: the CONSORT flow diagram (Schulz, Altman & Moher 2010, CONSORT 2010
//! flow diagram) and the mediation path diagram.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{arm_color, arrow, bold, centered, de, font, label_box, TITLE};
use crate::report::format::{mediation_label, num, path_label, Labels};
use crate::results::{MediationResult, Results};

const LINE_H: i32 = 38;
const PAD: i32 = 16;
const GAP: i32 = 64;
const CONSORT_W: u32 = 1400;

struct FlowBox {
    cx: i32,
    top: i32,
    w: i32,
    lines: Vec<String>,
    color: RGBColor,
}

impl FlowBox {
    fn h(&self) -> i32 {
        self.lines.len() as i32 * LINE_H + 2 * PAD
    }
    fn bottom(&self) -> i32 {
        self.top + self.h()
    }
}

/// Boxes of the flow diagram: the randomized box, then per arm allocation, follow-up waves and
/// analysis; returns the boxes (randomized first, then arm columns top to bottom) and the
/// number of boxes per arm column.
fn consort_layout(results: &Results) -> (Vec<FlowBox>, usize) {
    let Some(c) = &results.consort else {
        return (Vec::new(), 0);
    };
    let k = c.arms.len().max(1) as i32;
    let w = CONSORT_W as i32;
    let mut boxes = vec![FlowBox {
        cx: w / 2,
        top: 70,
        w: 560,
        lines: vec![format!("Randomized (n = {})", c.randomized)],
        color: BLACK,
    }];
    let first = results.study.waves.first().map(|w| w.label.clone());
    let follow: Vec<(String, f64)> = results
        .study
        .waves
        .iter()
        .skip(1)
        .map(|w| (w.label.clone(), w.months))
        .collect();
    let any_attended = c.arms.iter().any(|a| a.attended_any_session.is_some());
    let any_completers = c.arms.iter().any(|a| a.completers.is_some());
    let mut per_column = 0;
    for (i, a) in c.arms.iter().enumerate() {
        let cx = w * (2 * i as i32 + 1) / (2 * k);
        let bw = w / k - 70;
        let mut top = 70 + LINE_H + 2 * PAD + GAP + 10;
        let mut column: Vec<FlowBox> = Vec::new();
        let mut alloc = vec![format!("Allocated to {} (n = {})", a.arm, a.randomized)];
        if let Some(f) = &first {
            let n = a.assessed.iter().find(|x| &x.wave == f).map(|x| x.n);
            alloc.push(format!(
                "Assessed at baseline ({f}): {}",
                n.map_or("\u{2014}".to_string(), |n| n.to_string())
            ));
        }
        if any_attended {
            alloc.push(match a.attended_any_session {
                Some(n) => format!("Attended \u{2265} 1 session: {n}"),
                None => "No sessions (control)".into(),
            });
        }
        if any_completers {
            alloc.push(match a.completers {
                Some(n) => format!("Completers (per protocol): {n}"),
                None => String::new(),
            });
        }
        column.push(FlowBox {
            cx,
            top,
            w: bw,
            lines: alloc,
            color: arm_color(i),
        });
        for (wave, months) in &follow {
            top = column.last().map_or(top, |b| b.bottom()) + GAP;
            let assessed = a.assessed.iter().find(|x| &x.wave == wave).map(|x| x.n);
            let lost = a.lost.iter().find(|x| &x.wave == wave).map(|x| x.n);
            column.push(FlowBox {
                cx,
                top,
                w: bw,
                lines: vec![
                    format!("Follow-up {wave} ({} months)", num(*months, 0)),
                    format!(
                        "Assessed: {}   Not assessed: {}",
                        assessed.map_or("\u{2014}".into(), |n| n.to_string()),
                        lost.map_or("\u{2014}".into(), |n| n.to_string())
                    ),
                ],
                color: arm_color(i),
            });
        }
        top = column.last().map_or(top, |b| b.bottom()) + GAP;
        column.push(FlowBox {
            cx,
            top,
            w: bw,
            lines: vec![format!("Analysed (ITT): {}", a.analysed)],
            color: arm_color(i),
        });
        per_column = column.len();
        boxes.extend(column);
    }
    (boxes, per_column)
}

/// Size of the CONSORT figure.
pub fn consort_size(results: &Results) -> (u32, u32) {
    let (boxes, _) = consort_layout(results);
    let bottom = boxes.iter().map(FlowBox::bottom).max().unwrap_or(200);
    (CONSORT_W, (bottom + 40).max(300) as u32)
}

fn draw_box<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, b: &FlowBox) -> Result<(), String> {
    let x0 = b.cx - b.w / 2;
    root.draw(&Rectangle::new(
        [(x0, b.top), (x0 + b.w, b.bottom())],
        WHITE.filled(),
    ))
    .map_err(de)?;
    root.draw(&Rectangle::new(
        [(x0, b.top), (x0 + b.w, b.bottom())],
        b.color.stroke_width(3),
    ))
    .map_err(de)?;
    for (k, l) in b.lines.iter().enumerate() {
        let y = b.top + PAD + LINE_H * k as i32 + LINE_H / 2;
        let style = if k == 0 { bold(26.0) } else { font(26.0) };
        root.draw(&Text::new(l.clone(), (b.cx, y), centered(style)))
            .map_err(de)?;
    }
    Ok(())
}

/// Draws the CONSORT flow diagram.
pub fn draw_consort<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &Results,
) -> Result<(), String> {
    let (boxes, per_column) = consort_layout(results);
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        "Participant flow",
        (w as i32 / 2, 30),
        bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let Some((top, rest)) = boxes.split_first() else {
        return Ok(());
    };
    draw_box(root, top)?;
    let line = BLACK.stroke_width(3);
    if per_column > 0 {
        let split_y = top.bottom() + GAP / 2;
        let firsts: Vec<&FlowBox> = rest.chunks(per_column).filter_map(|c| c.first()).collect();
        root.draw(&PathElement::new(
            vec![(top.cx, top.bottom()), (top.cx, split_y)],
            line,
        ))
        .map_err(de)?;
        if let (Some(l), Some(r)) = (firsts.first(), firsts.last()) {
            root.draw(&PathElement::new(
                vec![(l.cx, split_y), (r.cx, split_y)],
                line,
            ))
            .map_err(de)?;
        }
        for b in &firsts {
            arrow(root, (b.cx, split_y), (b.cx, b.top), line, false)?;
        }
        for column in rest.chunks(per_column) {
            for pair in column.windows(2) {
                if let [a, b] = pair {
                    arrow(root, (a.cx, a.bottom()), (b.cx, b.top), line, false)?;
                }
            }
            for b in column {
                draw_box(root, b)?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Mediation

fn var_label(labels: &Labels, name: &str) -> String {
    if name == "arm" {
        format!("Arm ({} vs control)", labels.intervention())
    } else {
        labels.outcome(name)
    }
}

fn path_text(m: &MediationResult, name: &str) -> Option<Vec<String>> {
    let p = m.paths.iter().find(|p| p.path == name)?;
    let mut first = format!("{} = {}", path_label(&p.path), num(p.estimate, 3));
    if let Some(b) = p.std_estimate.filter(|b| b.is_finite()) {
        first.push_str(&format!(
            " (\u{03b2} = {})",
            crate::report::format::effect_size(b, 2)
        ));
    }
    let second = match (p.conf_low, p.conf_high) {
        (Some(l), Some(h)) if l.is_finite() && h.is_finite() => {
            format!("[{}, {}]", num(l, 3), num(h, 3))
        }
        _ => format!("SE = {}", num(p.std_error, 3)),
    };
    Some(vec![first, second])
}

/// Where the segment from the centre of a `hw` x `hh` box at `c` towards `to` leaves the box.
fn box_exit(c: (f64, f64), to: (f64, f64), hw: f64, hh: f64) -> (i32, i32) {
    let (dx, dy) = (to.0 - c.0, to.1 - c.1);
    let tx = if dx.abs() > 1e-9 {
        hw / dx.abs()
    } else {
        f64::INFINITY
    };
    let ty = if dy.abs() > 1e-9 {
        hh / dy.abs()
    } else {
        f64::INFINITY
    };
    let t = tx.min(ty).min(1.0);
    ((c.0 + dx * t) as i32, (c.1 + dy * t) as i32)
}

/// Draws the path diagram X -> M1, M2 -> Y with the direct path, estimates and CIs on the
/// arrows and the indirect effects listed underneath.
pub fn draw_mediation<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    m: &MediationResult,
    labels: &Labels,
) -> Result<(), String> {
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as f64, h as f64);
    root.draw(&Text::new(
        format!("Mediation: {}", mediation_label(&m.analysis)),
        ((w / 2.0) as i32, 30),
        bold(TITLE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(de)?;
    let (hw, hh) = (150.0, 48.0);
    let x = (190.0, 400.0);
    let y = (w - 190.0, 400.0);
    let meds: Vec<(f64, f64)> = match m.mediators.len() {
        0 => vec![],
        1 => vec![(w / 2.0, 150.0)],
        _ => vec![(w / 2.0, 150.0), (w / 2.0, 650.0)],
    };
    let style = BLACK.stroke_width(3);
    let lab = font(24.0);
    // Direct path first so the boxes cover its ends.
    let (a, b) = (box_exit(x, y, hw, hh), box_exit(y, x, hw, hh));
    arrow(root, a, b, style, true)?;
    if let Some(t) = path_text(m, "c_prime") {
        label_box(
            root,
            &t,
            (((x.0 + y.0) / 2.0) as i32, (x.1 + 52.0) as i32),
            &lab,
        )?;
    }
    for (k, mc) in meds.iter().enumerate() {
        let (an, bn) = if m.mediators.len() == 1 {
            ("a", "b")
        } else if k == 0 {
            ("a1", "b1")
        } else {
            ("a2", "b2")
        };
        let an = if m.paths.iter().any(|p| p.path == an) {
            an
        } else if k == 0 {
            "a1"
        } else {
            "a"
        };
        let bn = if m.paths.iter().any(|p| p.path == bn) {
            bn
        } else if k == 0 {
            "b1"
        } else {
            "b"
        };
        let color = super::arm_color(k + 2);
        let st = color.stroke_width(3);
        arrow(
            root,
            box_exit(x, *mc, hw, hh),
            box_exit(*mc, x, hw, hh),
            st,
            false,
        )?;
        arrow(
            root,
            box_exit(*mc, y, hw, hh),
            box_exit(y, *mc, hw, hh),
            st,
            false,
        )?;
        let above = if mc.1 < x.1 { -1.0 } else { 1.0 };
        if let Some(t) = path_text(m, an) {
            let p = ((x.0 + mc.0) / 2.0 - 60.0, (x.1 + mc.1) / 2.0 + above * 10.0);
            label_box(root, &t, (p.0 as i32, p.1 as i32), &lab)?;
        }
        if let Some(t) = path_text(m, bn) {
            let p = ((y.0 + mc.0) / 2.0 + 60.0, (y.1 + mc.1) / 2.0 + above * 10.0);
            label_box(root, &t, (p.0 as i32, p.1 as i32), &lab)?;
        }
    }
    let mut nodes: Vec<((f64, f64), String, RGBColor)> = vec![
        (x, var_label(labels, &m.x), BLACK),
        (y, var_label(labels, &m.y), BLACK),
    ];
    for (k, (mc, name)) in meds.iter().zip(&m.mediators).enumerate() {
        nodes.push((*mc, var_label(labels, name), super::arm_color(k + 2)));
    }
    for (c, label, color) in nodes {
        let r = [
            ((c.0 - hw) as i32, (c.1 - hh) as i32),
            ((c.0 + hw) as i32, (c.1 + hh) as i32),
        ];
        root.draw(&Rectangle::new(r, WHITE.filled())).map_err(de)?;
        root.draw(&Rectangle::new(r, color.stroke_width(4)))
            .map_err(de)?;
        root.draw(&Text::new(
            label,
            (c.0 as i32, c.1 as i32),
            centered(bold(27.0)),
        ))
        .map_err(de)?;
    }
    // Indirect effects and the total effect underneath.
    let mut lines: Vec<String> = Vec::new();
    if let Some(t) = path_text(m, "c") {
        lines.push(format!("Total effect {} {}", t[0], t[1]));
    }
    for i in &m.indirect {
        let mut s = format!(
            "Indirect {} = {}",
            path_label(&i.effect),
            num(i.estimate, 3)
        );
        if let Some(ci) = i.monte_carlo {
            s.push_str(&format!(
                ", Monte Carlo CI [{}, {}]",
                num(ci.conf_low, 3),
                num(ci.conf_high, 3)
            ));
        }
        if let Some(ci) = i.bootstrap {
            s.push_str(&format!(
                ", bootstrap CI [{}, {}]",
                num(ci.conf_low, 3),
                num(ci.conf_high, 3)
            ));
        }
        lines.push(s);
    }
    lines.push(format!("n = {} used, {} excluded", m.n_used, m.n_excluded));
    let start = h - 20.0 - 34.0 * lines.len() as f64;
    for (k, l) in lines.iter().enumerate() {
        root.draw(&Text::new(
            l.clone(),
            ((w / 2.0) as i32, (start + 34.0 * k as f64) as i32),
            font(24.0).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(de)?;
    }
    Ok(())
}
