//! The estimand table, the missing-data sensitivity tables and their methods text (issue 17),
//! rendered from [`Results::estimand`] and [`Results::sensitivity_missing`]. Computes nothing.
use crate::report::format as f;
use crate::report::tables::{html_escape as esc, Cell, Column, NumStyle, Table};
use crate::results::missing::{SensitivityMissing, TippingPoint, TippingPoint2d};
use crate::results::Results;

/// A name usable in a table id and file name (non-alphanumerics as `_`).
pub fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Every table of this module, in report order.
pub fn tables(r: &Results) -> Vec<Table> {
    let labels = f::Labels::of(r);
    let mut out = Vec::new();
    if let Some(e) = &r.estimand {
        let mut rows = vec![
            vec![
                Cell::Text("Population".into()),
                Cell::Text(e.population.clone()),
                Cell::Empty,
            ],
            vec![
                Cell::Text("Treatment".into()),
                Cell::Text(e.treatment.clone()),
                Cell::Empty,
            ],
            vec![
                Cell::Text("Variable".into()),
                Cell::Text(e.variable.clone()),
                Cell::Empty,
            ],
        ];
        for ice in &e.intercurrent_events {
            rows.push(vec![
                Cell::Text(format!("Intercurrent event: {}", ice.event)),
                Cell::Text(ice.strategy.replace('_', " ")),
                Cell::Text(ice.handling.clone()),
            ]);
        }
        rows.push(vec![
            Cell::Text("Population-level summary".into()),
            Cell::Text(e.summary.clone()),
            Cell::Empty,
        ]);
        out.push(Table {
            id: "estimand".into(),
            title: format!("Estimand of the primary analysis ({})", labels.outcome(&e.outcome)),
            columns: vec![
                Column::new("Attribute", "attribute"),
                Column::new("Definition / strategy", "definition"),
                Column::new("Handling in the analysis", "handling"),
            ],
            rows,
            note: Some("ICH E9(R1) addendum on estimands: strategies for intercurrent events are treatment policy, hypothetical, while on treatment, composite and principal stratum.".into()),
            group_columns: 0,
        });
    }
    for s in &r.sensitivity_missing {
        // The primary analysis of the same outcome (ITT, main model) beside the imputations.
        let primary = r
            .outcomes
            .iter()
            .find(|o| o.outcome == s.outcome && o.sensitivity.is_none() && o.analysis_set == "itt");
        out.push(strategies_table(s, primary, &labels));
        if !s.tipping_point.is_empty() {
            out.push(tipping_table(s, &labels));
        }
        for t in &s.tipping_point_2d {
            out.push(tipping_2d_table(s, t, &labels));
        }
        if let Some(mi) = &s.multiple_imputation {
            out.push(mi_table(s, mi, &labels));
        }
    }
    out
}

fn strategies_table(
    s: &SensitivityMissing,
    primary: Option<&crate::results::OutcomeResult>,
    labels: &f::Labels,
) -> Table {
    // one row: label, wave, the two arms' adjusted means (imputation strategies only), the
    // contrast with its SE, interval and p
    type Estimate = (f64, f64, f64, f64, f64);
    let row = |label: &str, wave: &str, lsm: Option<(f64, f64)>, (est, se, lo, hi, p): Estimate| {
        let (r, a) = match lsm {
            Some((r, a)) => (
                Cell::Num(r, NumStyle::Estimate),
                Cell::Num(a, NumStyle::Estimate),
            ),
            None => (Cell::Empty, Cell::Empty),
        };
        vec![
            Cell::Text(label.into()),
            Cell::Text(wave.into()),
            r,
            a,
            Cell::Num(est, NumStyle::Estimate),
            Cell::Num(se, NumStyle::Estimate),
            Cell::Interval(lo, hi, NumStyle::Estimate),
            Cell::Num(p, NumStyle::P),
        ]
    };
    let mut rows = Vec::new();
    for c in primary.iter().flat_map(|o| o.contrasts.iter()) {
        if s.waves.contains(&c.wave) {
            rows.push(row(
                "Primary analysis (mixed model, MAR)",
                &c.wave,
                None,
                (c.estimate, c.std_error, c.conf_low, c.conf_high, c.p_value),
            ));
        }
    }
    for m in &s.mmrm {
        rows.push(row(
            "MMRM (MAR, hypothetical)",
            &m.wave,
            None,
            (m.estimate, m.std_error, m.conf_low, m.conf_high, m.p_value),
        ));
    }
    for st in &s.strategies {
        for w in &st.waves {
            rows.push(row(
                strategy_label(&st.strategy),
                &w.wave,
                Some((w.lsm_reference, w.lsm_active)),
                (w.estimate, w.std_error, w.conf_low, w.conf_high, w.p_value),
            ));
        }
    }
    let c = &s.counts;
    let ice: usize = c.by_arm.iter().map(|a| a.with_ice).sum();
    let date_ice = s.ice_definition.starts_with("date_column:");
    Table {
        id: format!("sensitivity_missing_{}", file_safe(&s.outcome)),
        title: format!(
            "{}: missing-data sensitivity analyses, {} minus {} per follow-up wave",
            labels.outcome(&s.outcome),
            s.active_arm,
            s.reference_arm
        ),
        columns: vec![
            Column::new("Analysis", "analysis"),
            Column::new("Wave", "wave"),
            Column::new(&format!("Mean {}", s.reference_arm), "lsm_reference"),
            Column::new(&format!("Mean {}", s.active_arm), "lsm_active"),
            Column::new("Difference", "estimate"),
            Column::new("SE", "std_error"),
            Column::ci(&format!("{:.0}% CI", 100.0 * s.conf_level), "ci"),
            Column::new("p", "p_value"),
        ],
        rows,
        note: Some(format!(
            "Imputation model {} (unstructured covariance of the waves common to both arms, REML); \
             intercurrent event = {}. Conditional mean imputation with jackknife SEs and normal CIs \
             (Wolbers et al. 2022), analysis {}; means at the mean baseline. Reference arm {}. \
             n = {} ({} with {}, {} without any follow-up; {} randomized without baseline left out); \
             {} {} and {} {} missing values imputed. MMRM rows: Satterthwaite df.{}",
            s.imputation_model,
            ice_text(s),
            s.analysis_model,
            s.reference_arm,
            c.n,
            ice,
            if date_ice { "an ICE" } else { "dropout" },
            c.no_followup,
            c.excluded_no_baseline,
            c.post_ice_cells,
            if date_ice { "post-ICE" } else { "post-dropout" },
            c.intermittent_cells,
            if date_ice { "other (MAR)" } else { "intermittent" },
            primary.map_or(String::new(), |o| format!(
                " Primary analysis: {} ({}, baseline as a wave, all observed assessments; not adjusted for baseline, unlike the ANCOVA and MMRM rows, so its estimate differs from theirs by more than the handling of missing data).",
                o.model, o.analysis_set
            ))
        )),
        group_columns: 1,
    }
}

/// How the intercurrent event is defined, for the table note (the default text unchanged).
fn ice_text(s: &SensitivityMissing) -> String {
    let Some(col) = s.ice_definition.strip_prefix("date_column:") else {
        return "dropout (every wave after the last observed one; earlier missing \
                waves imputed under MAR)"
            .into();
    };
    let per_arm = |f: &dyn Fn(&crate::results::missing::ArmMissing) -> usize| -> String {
        s.counts
            .by_arm
            .iter()
            .map(|a| format!("{} {}", a.arm, f(a)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "the date in participants.csv column {col} (a wave dated after it, by its assessment \
         date or else its nominal date, and every later wave are post-ICE; missing values \
         without an ICE imputed under MAR): participants with an ICE {}; values observed after \
         the ICE and set aside (imputed) under J2R, CR, CIR and the delta adjustment, kept \
         under MAR: {}; ICE after the last wave (no post-ICE wave): {}",
        per_arm(&|a| a.with_ice),
        per_arm(&|a| a.post_ice_observed.unwrap_or(0)),
        per_arm(&|a| a.ice_after_last_wave.unwrap_or(0)),
    )
}

/// The arms shifted and how: `IMR` by default, `IMR (delta x 1), CAU (delta x 0.5)` with
/// multipliers, `; CAU fixed at -0.2` with fixed deltas.
pub fn shift_text(t: &TippingPoint) -> String {
    let mut out = match &t.delta_multipliers {
        None => t.delta_arms.join(", "),
        Some(m) => m
            .iter()
            .map(|(a, x)| {
                format!(
                    "{a} (delta x {})",
                    f::num(*x, 2).trim_end_matches('0').trim_end_matches('.')
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    if let Some(fx) = &t.fixed {
        for (a, x) in fx {
            out.push_str(&format!("; {a} fixed at {}", f::num(*x, 3)));
        }
    }
    out
}

/// The two-dimensional tipping point: the difference (p) at each pair of deltas, a row per
/// delta of the active arm, a column per delta of the reference arm, and the boundary where
/// significance is lost per column.
fn tipping_2d_table(s: &SensitivityMissing, t: &TippingPoint2d, labels: &f::Labels) -> Table {
    let alpha = 1.0 - s.conf_level;
    let a_txt = f::num(alpha, 3)
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string();
    let mut columns = vec![Column::new(&format!("Delta {}", t.row_arm), "delta_row")];
    for d in &t.column_deltas {
        columns.push(Column::new(
            &format!("{} {}", t.column_arm, f::num(*d, 2)),
            &format!("column_{}", file_safe(&f::num(*d, 3))),
        ));
    }
    let mut rows = Vec::new();
    for (k, d) in t.row_deltas.iter().enumerate() {
        let mut row = vec![Cell::Num(*d, NumStyle::Fixed(2))];
        for c in &t.columns {
            row.push(match c.grid.get(k) {
                Some(g) => Cell::Text(format!(
                    "{} (p {}){}",
                    f::num(g.estimate, 2),
                    f::p_value(g.p_value, 3),
                    if g.p_value < alpha { "" } else { " ns" }
                )),
                None => Cell::Empty,
            });
        }
        rows.push(row);
    }
    let mut boundary = vec![Cell::Text(format!("{} delta at p = {a_txt}", t.row_arm))];
    for c in &t.columns {
        boundary.push(match (c.tipping_delta, c.tipping_delta_exact) {
            (Some(_), Some(x)) | (None, Some(x)) => Cell::Num(x, NumStyle::Fixed(3)),
            (Some(d), None) => Cell::Num(d, NumStyle::Fixed(3)),
            (None, None) => Cell::Text(
                if c.note
                    .as_deref()
                    .is_some_and(|n| n.starts_with("not significant"))
                {
                    format!("ns at {} 0", t.row_arm)
                } else {
                    "not within the grid".into()
                },
            ),
        });
    }
    rows.push(boundary);
    Table {
        id: format!(
            "sensitivity_missing_tipping2d_{}_{}",
            file_safe(&t.strategy),
            file_safe(&s.outcome)
        ),
        title: format!(
            "{} at {}, {}: two-dimensional tipping point (delta added to the imputed values after the ICE, {} by row, {} by column)",
            labels.outcome(&s.outcome),
            t.wave,
            t.strategy,
            t.row_arm,
            t.column_arm
        ),
        columns,
        rows,
        note: Some(format!(
            "Cells: difference {} minus {} (jackknife p); ns = not significant at {a_txt}. Delta in {}. \
             Last row: the {} delta at which significance is lost for that {} delta (exact root of \
             p = {a_txt}; the estimate and every jackknife estimate are linear in both deltas; \
             ns at 0: not significant without a shift of the row arm).",
            s.active_arm,
            s.reference_arm,
            match t.delta_units.as_str() {
                "sd" => format!("pooled baseline SDs (1 SD = {:.3} score points)", t.delta_scale),
                _ => "score points".into(),
            },
            t.row_arm,
            t.column_arm
        )),
        group_columns: 0,
    }
}

/// `Jump to reference (J2R)` etc.
pub fn strategy_label(s: &str) -> &'static str {
    match s {
        "MAR" => "Missing at random (MAR)",
        "J2R" => "Jump to reference (J2R)",
        "CR" => "Copy reference (CR)",
        "CIR" => "Copy increments in reference (CIR)",
        _ => "other",
    }
}

fn units_label(t: &TippingPoint) -> String {
    match t.delta_units.as_str() {
        "sd" => format!(
            "pooled baseline SDs (1 SD = {:.3} score points)",
            t.delta_scale
        ),
        _ => "score points".into(),
    }
}

fn tipping_text(t: &TippingPoint) -> String {
    match (t.tipping_delta, t.tipping_delta_exact) {
        (Some(d), Some(x)) => format!(
            "{}: significance lost at delta = {:.3} (interpolated; exact {:.3})",
            t.strategy, d, x
        ),
        (Some(d), None) => format!("{}: significance lost at delta = {:.3}", t.strategy, d),
        _ => format!(
            "{}: {}",
            t.strategy,
            t.note.as_deref().unwrap_or("no tipping point")
        ),
    }
}

fn tipping_table(s: &SensitivityMissing, labels: &f::Labels) -> Table {
    let mut rows = Vec::new();
    for t in &s.tipping_point {
        for g in &t.grid {
            rows.push(vec![
                Cell::Text(t.strategy.clone()),
                Cell::Num(g.delta, NumStyle::Fixed(2)),
                Cell::Num(g.delta_score, NumStyle::Fixed(3)),
                Cell::Num(g.estimate, NumStyle::Estimate),
                Cell::Num(g.std_error, NumStyle::Estimate),
                Cell::Interval(g.conf_low, g.conf_high, NumStyle::Estimate),
                Cell::Num(g.p_value, NumStyle::P),
            ]);
        }
    }
    let first = &s.tipping_point[0];
    let tips: Vec<String> = s.tipping_point.iter().map(tipping_text).collect();
    Table {
        id: format!("sensitivity_missing_tipping_{}", file_safe(&s.outcome)),
        title: format!(
            "{} at {}: tipping-point analysis (delta added to the imputed values after dropout in {})",
            labels.outcome(&s.outcome),
            first.wave,
            shift_text(first)
        ),
        columns: vec![
            Column::new("Strategy", "strategy"),
            Column::new("Delta", "delta"),
            Column::new("Delta (score)", "delta_score"),
            Column::new("Difference", "estimate"),
            Column::new("SE", "std_error"),
            Column::ci(&format!("{:.0}% CI", 100.0 * s.conf_level), "ci"),
            Column::new("p", "p_value"),
        ],
        rows,
        note: Some(format!(
            "Delta in {}. {}.",
            units_label(first),
            tips.join("; ")
        )),
        group_columns: 1,
    }
}

fn mi_table(
    s: &SensitivityMissing,
    mi: &crate::results::missing::MultipleImputation,
    labels: &f::Labels,
) -> Table {
    let mut rows = Vec::new();
    for st in &mi.strategies {
        for w in &st.waves {
            rows.push(vec![
                Cell::Text(strategy_label(&st.strategy).into()),
                Cell::Text(w.wave.clone()),
                Cell::Num(w.estimate, NumStyle::Estimate),
                Cell::Num(w.std_error, NumStyle::Estimate),
                Cell::Num(w.df, NumStyle::Df),
                Cell::Interval(w.conf_low, w.conf_high, NumStyle::Estimate),
                Cell::Num(w.p_value, NumStyle::P),
                Cell::Num(w.fmi, NumStyle::Fixed(2)),
            ]);
        }
    }
    let tips: Vec<String> = mi
        .tipping_point
        .iter()
        .map(|t| match t.tipping_delta {
            Some(d) => format!("{}: significance lost at delta = {d:.3}", t.strategy),
            None => format!(
                "{}: {}",
                t.strategy,
                t.note.as_deref().unwrap_or("no tipping point")
            ),
        })
        .collect();
    Table {
        id: format!("sensitivity_missing_mi_{}", file_safe(&s.outcome)),
        title: format!(
            "{}: approximate Bayesian multiple imputation (M = {}), {} minus {}",
            labels.outcome(&s.outcome),
            mi.m,
            s.active_arm,
            s.reference_arm
        ),
        columns: vec![
            Column::new("Strategy", "strategy"),
            Column::new("Wave", "wave"),
            Column::new("Difference", "estimate"),
            Column::new("SE", "std_error"),
            Column::new("df", "df"),
            Column::ci(&format!("{:.0}% CI", 100.0 * s.conf_level), "ci"),
            Column::new("p", "p_value"),
            Column::new("FMI", "fmi"),
        ],
        rows,
        note: Some(format!(
            "Imputation model refitted to {} bootstrap samples (stratified by arm, seed {}; {} failed fits redrawn), one draw from the conditional distribution each; pooled by Rubin's rules with the Barnard-Rubin df; FMI = fraction of missing information (as mice::pool). Under reference-based strategies Rubin's variance exceeds the repeated-sampling variance (information anchoring; Cro et al. 2019), so these intervals are wider than the jackknife's.{}",
            mi.m,
            mi.seed,
            mi.failed_fits,
            if tips.is_empty() { String::new() } else { format!(" Tipping points: {}.", tips.join("; ")) }
        )),
        group_columns: 1,
    }
}

/// The methods paragraph on the estimand and the missing-data sensitivity analyses.
pub fn methods_html(r: &Results) -> String {
    let mut out = String::new();
    if let Some(e) = &r.estimand {
        let ices: Vec<String> = e
            .intercurrent_events
            .iter()
            .map(|i| {
                format!(
                    "{} ({} strategy)",
                    esc(&i.event),
                    esc(&i.strategy.replace('_', " "))
                )
            })
            .collect();
        out.push_str(&format!(
            "<p>Estimand (ICH E9(R1)): in {}, the effect of {} on {}, summarized as the {}. \
             Intercurrent events: {}.",
            esc(&e.population),
            esc(&e.treatment),
            esc(&e.variable),
            esc(&e.summary),
            if ices.is_empty() {
                "none specified".to_string()
            } else {
                ices.join("; ")
            }
        ));
        if e.intercurrent_events
            .iter()
            .any(|i| i.strategy == "hypothetical")
        {
            out.push_str(
                " The hypothetical strategy for dropout is estimated by the likelihood-based \
                 mixed models, valid when data are missing at random (MAR).",
            );
        }
        out.push_str("</p>\n");
    }
    for s in &r.sensitivity_missing {
        let strategies: Vec<String> = s
            .strategies
            .iter()
            .map(|x| strategy_label(&x.strategy).to_string())
            .collect();
        let mut p = format!(
            "<p>Missing data: the departure from MAR after dropout was examined by \
             reference-based imputation (Carpenter, Roger &amp; Kenward, 2013) of {} with {} as the \
             reference arm: {}. The imputation model was the MMRM <code>{}</code> with an \
             unstructured covariance of the follow-up waves common to both arms (REML); missing \
             values were replaced by their conditional mean given the participant's observed \
             values and inference used the jackknife over participants (Wolbers et al., 2022; \
             rbmi's <code>method_condmean</code>), the analysis being <code>{}</code>.",
            esc(&f::Labels::of(r).outcome(&s.outcome)),
            esc(&s.reference_arm),
            list(&strategies),
            esc(&s.imputation_model),
            esc(&s.analysis_model),
        );
        if let Some(t) = s.tipping_point.first() {
            p.push_str(&format!(
                " In a tipping-point analysis a shift delta (in {}) was added to the imputed values \
                 after dropout in {} over a grid of {} values; the tipping point is the delta at \
                 which the {} difference at {} loses significance.",
                esc(&units_label(t)),
                esc(&shift_text(t)),
                t.grid.len(),
                esc(&s.active_arm),
                esc(&t.wave)
            ));
        }
        if let Some(col) = s.ice_definition.strip_prefix("date_column:") {
            p.push_str(&format!(
                " The intercurrent event was the date in the participants' column <code>{}</code>: \
                 waves dated after it were post-ICE; values observed after the ICE were kept under \
                 MAR and set aside and imputed under the reference-based strategies and the delta \
                 adjustment (as rbmi); missing values without an ICE were imputed under MAR.",
                esc(col)
            ));
        }
        if let Some(t) = s.tipping_point_2d.first() {
            p.push_str(&format!(
                " A two-dimensional tipping-point analysis shifted the imputed values after the ICE \
                 in {} and in {} by separate deltas over a grid of {} x {} values.",
                esc(&t.row_arm),
                esc(&t.column_arm),
                t.row_deltas.len(),
                t.column_deltas.len()
            ));
        }
        p.push_str("</p>\n");
        out.push_str(&p);
    }
    out
}

fn list(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

/// The sentence that opens the sensitivity block of the outcomes section.
pub fn section_intro_html(r: &Results) -> String {
    let mut out = String::new();
    for s in &r.sensitivity_missing {
        let tips: Vec<String> = s.tipping_point.iter().map(tipping_text).collect();
        out.push_str(&format!(
            "<h3>Missing data: sensitivity of {} to the missing-at-random assumption</h3>\n",
            esc(&f::Labels::of(r).outcome(&s.outcome))
        ));
        if !tips.is_empty() {
            out.push_str(&format!(
                "<p>Tipping point: {}.</p>\n",
                esc(&tips.join("; "))
            ));
        }
    }
    out
}
