//! The tables of the per-period admission analysis ([`PerPeriodAdmissions`]): the effects per
//! period and overall (rate ratio, odds ratio, marginal risk difference), and the observed and
//! model-based rates and risks per arm and period.
use super::format as f;
use super::tables::{est, text, Cell, Column, NumStyle, Table};
use crate::results::{PerPeriodAdmissions, PeriodEffect, PeriodModel};

/// The two per-period tables (effects; rates and risks by arm).
pub fn per_period_tables(pp: &PerPeriodAdmissions, ci: &str) -> Vec<Table> {
    vec![effects_table(pp, ci), by_arm_table(pp, ci)]
}

fn period_label(pp: &PerPeriodAdmissions, label: &str) -> String {
    pp.periods.iter().find(|p| p.label == label).map_or_else(
        || "Overall (mean over periods)".to_string(),
        |p| {
            format!(
                "{} to {} (days {}-{})",
                p.from_wave, p.to_wave, p.first_day, p.last_day
            )
        },
    )
}

fn effect_row(period: String, model: &str, effect: &str, e: &PeriodEffect) -> Vec<Cell> {
    vec![
        text(period),
        text(model),
        text(effect),
        est(e.estimate),
        Cell::Interval(e.conf_low, e.conf_high, NumStyle::Estimate),
        Cell::Num(e.p_value, NumStyle::P),
    ]
}

/// Rate ratios (NB GLMM), odds ratios and marginal risk differences (logistic GLMM) per
/// period and overall.
fn effects_table(pp: &PerPeriodAdmissions, ci: &str) -> Table {
    let columns = vec![
        Column::new("Period", "period"),
        Column::new("Model", "model"),
        Column::new("Effect", "effect"),
        Column::new("Estimate", "estimate"),
        Column::ci(&format!("{ci} CI"), "conf"),
        Column::new("p", "p_value"),
    ];
    let mut rows = Vec::new();
    let labels: Vec<String> = pp
        .periods
        .iter()
        .map(|p| p.label.clone())
        .chain(std::iter::once("overall".to_string()))
        .collect();
    for label in &labels {
        let period = period_label(pp, label);
        if let Some(nb) = &pp.negative_binomial {
            if let Some(e) = nb.effects.iter().find(|e| &e.period == label) {
                rows.push(effect_row(
                    period.clone(),
                    "Negative binomial GLMM",
                    "Rate ratio",
                    e,
                ));
            }
        }
        if let Some(lo) = &pp.logistic {
            if let Some(e) = lo.effects.iter().find(|e| &e.period == label) {
                rows.push(effect_row(period.clone(), "Logistic GLMM", "Odds ratio", e));
            }
            if let Some(e) = lo.risk_differences.iter().find(|e| &e.period == label) {
                let pct = PeriodEffect {
                    period: e.period.clone(),
                    estimate: 100.0 * e.estimate,
                    conf_low: 100.0 * e.conf_low,
                    conf_high: 100.0 * e.conf_high,
                    p_value: e.p_value,
                };
                rows.push(effect_row(
                    period.clone(),
                    "Logistic GLMM",
                    "Risk difference (percentage points)",
                    &pct,
                ));
            }
        }
    }
    Table {
        id: "admissions_per_period".into(),
        title: "Psychiatric admissions per period between waves: intervention effects".into(),
        columns,
        rows,
        note: Some(effects_note(pp)),
        group_columns: 1,
    }
}

fn model_note(name: &str, m: &PeriodModel) -> String {
    let mut s = format!(
        "{name}: {}; participant SD {}",
        m.model,
        f::num(m.sd_participant, 2)
    );
    match m.theta {
        Some(t) if t > crate::glmm::THETA_POISSON_LIMIT => {
            s.push_str(", theta > 10,000 (the Poisson limit)")
        }
        Some(t) => s.push_str(&format!(", theta {}", f::num(t, 2))),
        None => {}
    }
    if !m.converged {
        s.push_str(", NOT CONVERGED");
    }
    if m.singular {
        s.push_str(", singular fit");
    }
    for w in &m.warnings {
        s.push_str(&format!("; warning: {w}"));
    }
    s.push_str(". ");
    s
}

fn effects_note(pp: &PerPeriodAdmissions) -> String {
    let mut note = format!(
        "{} participant-periods of {} participants; exposure = days at risk (outside hospital). ",
        pp.n_rows, pp.n_participants
    );
    for e in &pp.excluded {
        note.push_str(&format!("Left out: {} ({}). ", e.count, e.reason));
    }
    if let Some(m) = &pp.negative_binomial {
        note.push_str(&model_note("Count model", m));
    }
    if let Some(m) = &pp.logistic {
        note.push_str(&model_note("Binary model", m));
    }
    for e in &pp.errors {
        note.push_str(&format!("Not fitted: {e}. "));
    }
    note.push_str(
        "Ratios and risk differences are intervention over (minus) control; overall = the mean \
         of the log ratios (risk differences) over the periods. Risk differences are marginal \
         (averaged over participants and the random intercept); Wald intervals (delta method).",
    );
    note
}

/// Observed and model-based rates per person-year and risks of any admission, per period
/// and arm.
fn by_arm_table(pp: &PerPeriodAdmissions, ci: &str) -> Table {
    let columns = vec![
        Column::new("Period", "period"),
        Column::new("Arm", "arm"),
        Column::new("n", "n"),
        Column::new("Admissions", "admissions"),
        Column::new("Bed days", "bed_days"),
        Column::new("Person-years at risk", "person_years"),
        Column::new("Rate, observed", "rate_observed"),
        Column::new("Rate, model", "rate_model"),
        Column::ci(&format!("{ci} CI"), "rate_model_conf"),
        Column::new("Any admission, n (%)", "with_admission"),
        Column::new("Risk, model", "risk_model"),
        Column::ci(&format!("{ci} CI"), "risk_model_conf"),
    ];
    let find = |m: &Option<PeriodModel>, arm: &str, period: &str| {
        m.as_ref().and_then(|m| {
            m.marginal
                .iter()
                .find(|x| x.arm == arm && x.period == period)
                .cloned()
        })
    };
    let rows = pp
        .observed
        .iter()
        .map(|o| {
            let rate = find(&pp.negative_binomial, &o.arm, &o.period);
            let risk = find(&pp.logistic, &o.arm, &o.period);
            let pct = if o.n > 0 {
                100.0 * o.with_admission as f64 / o.n as f64
            } else {
                f64::NAN
            };
            vec![
                text(period_label(pp, &o.period)),
                text(o.arm.clone()),
                Cell::Int(o.n),
                Cell::Int(o.admissions),
                Cell::Int(o.bed_days),
                Cell::Num(o.person_years, NumStyle::Fixed(1)),
                est(o.admissions as f64 / o.person_years),
                rate.as_ref().map_or(Cell::Empty, |r| est(r.estimate)),
                rate.as_ref().map_or(Cell::Empty, |r| {
                    Cell::Interval(r.conf_low, r.conf_high, NumStyle::Estimate)
                }),
                text(format!("{} ({}%)", o.with_admission, f::num(pct, 1))),
                risk.as_ref().map_or(Cell::Empty, |r| est(r.estimate)),
                risk.as_ref().map_or(Cell::Empty, |r| {
                    Cell::Interval(r.conf_low, r.conf_high, NumStyle::Estimate)
                }),
            ]
        })
        .collect();
    Table {
        id: "admissions_per_period_by_arm".into(),
        title: "Psychiatric admissions per period and arm: observed and model-based".into(),
        columns,
        rows,
        note: Some(
            "Rates are admissions per person-year at risk; model-based rates and risks are \
             marginal (g-computation over the participants' prior admissions and the random \
             intercept) from the negative binomial and logistic GLMMs."
                .into(),
        ),
        group_columns: 1,
    }
}
