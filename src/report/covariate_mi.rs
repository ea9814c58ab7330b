//! The covariate MI tables (`[covariates] missing = "impute"`): per outcome the pooled arm
//! contrasts and fixed effects beside the complete-case primary analysis, and the imputation
//! model with the number of participants and analysis rows imputed per variable, rendered from
//! [`Results::covariate_mi`]. Computes nothing.
use crate::report::format as f;
use crate::report::sensitivity::file_safe;
use crate::report::tables::{Cell, Column, NumStyle, Table};
use crate::results::covariate_mi::{CovariateMi, PooledTerm};
use crate::results::Results;

/// Every table of this module, in report order.
pub fn tables(r: &Results) -> Vec<Table> {
    let labels = f::Labels::of(r);
    let level = r.study.conf_level;
    let mut out = Vec::new();
    for c in &r.covariate_mi {
        let primary = r.outcomes.iter().find(|o| {
            o.outcome == c.outcome && o.sensitivity.is_none() && o.analysis_set == c.analysis_set
        });
        out.push(pooled_table(c, primary, &labels, level));
        out.push(model_table(c, &labels));
    }
    out
}

fn pooled_row(label: &str, wave: &str, p: &PooledTerm) -> Vec<Cell> {
    vec![
        Cell::Text(label.into()),
        Cell::Text(wave.into()),
        Cell::Num(p.estimate, NumStyle::Estimate),
        Cell::Num(p.std_error, NumStyle::Estimate),
        Cell::Num(p.df, NumStyle::Df),
        Cell::Interval(p.conf_low, p.conf_high, NumStyle::Estimate),
        Cell::Num(p.p_value, NumStyle::P),
        Cell::Num(p.riv, NumStyle::Fixed(3)),
        Cell::Num(p.lambda, NumStyle::Fixed(3)),
        Cell::Num(p.fmi, NumStyle::Fixed(3)),
    ]
}

fn pooled_table(
    c: &CovariateMi,
    primary: Option<&crate::results::OutcomeResult>,
    labels: &f::Labels,
    level: f64,
) -> Table {
    let mut rows = Vec::new();
    if let Some(p) = primary {
        for k in &p.contrasts {
            rows.push(vec![
                Cell::Text(format!("Complete cases: {}", k.contrast)),
                Cell::Text(k.wave.clone()),
                Cell::Num(k.estimate, NumStyle::Estimate),
                Cell::Num(k.std_error, NumStyle::Estimate),
                Cell::Num(k.df, NumStyle::Df),
                Cell::Interval(k.conf_low, k.conf_high, NumStyle::Estimate),
                Cell::Num(k.p_value, NumStyle::P),
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
            ]);
        }
    }
    for k in &c.contrasts {
        rows.push(pooled_row(
            &format!("Imputed covariates: {}", k.term),
            k.wave.as_deref().unwrap_or(""),
            k,
        ));
    }
    for t in &c.fixed_effects {
        rows.push(pooled_row(&t.term, "", t));
    }
    Table {
        id: format!("covariate_mi_{}", file_safe(&c.outcome)),
        title: format!(
            "{}: multiple imputation of missing covariates (M = {}), pooled by Rubin's rules",
            labels.outcome(&c.outcome),
            c.m
        ),
        columns: vec![
            Column::new("Term", "term"),
            Column::new("Wave", "wave"),
            Column::new("Estimate", "estimate"),
            Column::new("SE", "std_error"),
            Column::new("df", "df"),
            Column::ci(&format!("{:.0}% CI", 100.0 * level), "ci"),
            Column::new("p", "p_value"),
            Column::new("RIV", "riv"),
            Column::new("lambda", "lambda"),
            Column::new("FMI", "fmi"),
        ],
        rows,
        note: Some(format!(
            "Model {} fitted to each of {} data sets completed by chained equations ({} sweeps, seed {}) \
             on the {} observed outcome rows of {} participants; the complete-case fit leaves out {} \
             participants with a missing covariate. Pooled as mice::pool: RIV = relative increase in \
             variance, lambda = proportion of variance due to nonresponse, FMI = fraction of missing \
             information; df by Barnard & Rubin (1999), the complete-data df of each term the mean of \
             its Satterthwaite df over the fits.",
            c.model,
            c.m,
            c.iterations,
            c.seed,
            c.n_observations,
            c.n_participants,
            c.n_participants_complete_case_dropped
        )),
        group_columns: 0,
    }
}

fn model_table(c: &CovariateMi, labels: &f::Labels) -> Table {
    let rows = c
        .imputation_model
        .iter()
        .map(|v| {
            vec![
                Cell::Text(v.variable.clone()),
                Cell::Text(v.role.clone()),
                Cell::Text(if v.method.is_empty() {
                    "(complete)".into()
                } else {
                    v.method.clone()
                }),
                Cell::Int(v.n_missing),
                if v.role == "covariate" {
                    Cell::Int(v.n_rows_imputed)
                } else {
                    Cell::Empty
                },
            ]
        })
        .collect();
    Table {
        id: format!("covariate_mi_model_{}", file_safe(&c.outcome)),
        title: format!(
            "{}: imputation model of the covariates ({} participants, one row each)",
            labels.outcome(&c.outcome),
            c.n_participants_imputation
        ),
        columns: vec![
            Column::new("Variable", "variable"),
            Column::new("Role", "role"),
            Column::new("Method", "method"),
            Column::new("Participants imputed", "n_missing"),
            Column::new("Analysis rows with an imputed value", "n_rows_imputed"),
        ],
        rows,
        note: Some(
            "Every variable predicts every other (mice's default predictor matrix); pmm = predictive \
             mean matching (5 donors, type-1 matching), logreg/polyreg = logistic/multinomial \
             regression on data augmented as White, Daniel & Royston (2010). The outcome at each \
             wave is imputed within the chained equations but its imputations are not analysed: \
             the outcome model uses the observed outcome rows (impute, then delete; von Hippel 2007)."
                .into(),
        ),
        group_columns: 0,
    }
}
