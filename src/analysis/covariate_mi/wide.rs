//! The imputation model's data: one row per randomized participant with the formula's
//! covariates (incomplete and complete), the arm, and the outcome at each wave (wide), as a
//! trial statistician sets up `mice` for baseline covariates: the outcome belongs in the
//! imputation model (Moons et al. 2006, J Clin Epidemiol 59:1092; White, Royston & Wood 2011,
//! Stat Med 30:377, section 6.2), and in wide format every wave's outcome predicts the
//! covariates and the covariates every wave. Missing outcome values are imputed within the
//! chained equations too (pmm), as `mice` would in wide format, but only the covariate
//! imputations are used: the analysis model keeps the observed outcome rows ("impute, then
//! delete", von Hippel 2007, Sociol Methodol 37:83), which is valid under MAR since the mixed
//! model uses every observed wave.
use crate::frame::{r_collate_key, Column, Frame};
use crate::impute::{Method, Var, WideFrame};
use crate::ingest::Trial;
use crate::results::covariate_mi::ImputedVariable;
use crate::trial_data::covariates::{participant_index, Covariate, CovariateValues};

use super::spec::{parse_method, CovariatesSpec};

/// The wide data, the method of each variable, and the rows of the report's table.
pub struct ImputationModel {
    pub data: WideFrame,
    pub methods: Vec<Option<Method>>,
    pub variables: Vec<ImputedVariable>,
    /// Number of covariates (the first variables of `data`).
    pub n_covariates: usize,
}

/// A covariate as an imputation variable (a factor with its observed values as R-sorted
/// levels).
pub fn covariate_var(c: &Covariate) -> Var {
    match &c.values {
        CovariateValues::Numeric(v) => Var::Numeric(v.clone()),
        CovariateValues::Factor(v) => {
            let mut levels: Vec<String> = v.iter().flatten().cloned().collect();
            levels.sort_unstable();
            levels.dedup();
            levels.sort_by_cached_key(|s| r_collate_key(s));
            let codes = v
                .iter()
                .map(|x| {
                    x.as_ref()
                        .and_then(|x| levels.iter().position(|l| l == x).map(|p| p as u32))
                })
                .collect();
            Var::Factor { codes, levels }
        }
    }
}

/// The wide imputation data of `frame` (an outcome frame: `y`, `participant_id`, `wave`) for
/// every participant of the trial; `rows_of[i]` counts participant i's analysis rows.
pub fn build(
    trial: &Trial,
    frame: &Frame,
    waves: &[String],
    covariates: &[Covariate],
    spec: &CovariatesSpec,
) -> Result<(ImputationModel, Vec<usize>), String> {
    let n = trial.participants.len();
    let index = participant_index(trial);
    let (
        Some(Column::Factor {
            codes: pc,
            levels: pl,
        }),
        Some(Column::Factor {
            codes: wc,
            levels: wl,
        }),
        Some(Column::Numeric(y)),
    ) = (
        frame.column("participant_id"),
        frame.column("wave"),
        frame.column("y"),
    )
    else {
        return Err("the outcome frame lacks participant_id, wave or y".into());
    };
    let mut wide_y = vec![vec![None; n]; waves.len()];
    let mut rows_of = vec![0usize; n];
    for r in 0..y.len() {
        let (Some(p), Some(w)) = (pc[r], wc[r]) else {
            continue;
        };
        let Some(&i) = index.get(pl[p as usize].as_str()) else {
            continue;
        };
        let Some(wi) = waves.iter().position(|x| *x == wl[w as usize]) else {
            continue;
        };
        if y[r].is_finite() {
            wide_y[wi][i] = Some(y[r]);
            rows_of[i] += 1;
        }
    }
    let mut names = Vec::new();
    let mut vars = Vec::new();
    let mut methods = Vec::new();
    let mut variables = Vec::new();
    for c in covariates {
        let v = covariate_var(c);
        let missing = v.n_missing();
        let method = if missing == 0 {
            None
        } else {
            Some(match spec.method.get(&c.name) {
                Some(m) => parse_method(m).ok_or_else(|| {
                    format!("covariates.method.{} = \"{m}\": unknown method", c.name)
                })?,
                None => Method::default_for(&v),
            })
        };
        variables.push(ImputedVariable {
            variable: c.name.clone(),
            role: "covariate".into(),
            method: method.map_or(String::new(), |m| m.name().to_string()),
            n_missing: missing as u64,
            n_rows_imputed: (0..n)
                .filter(|&i| !v.observed(i))
                .map(|i| rows_of[i] as u64)
                .sum(),
        });
        names.push(c.name.clone());
        vars.push(v);
        methods.push(method);
    }
    let n_covariates = names.len();
    names.push("arm".into());
    vars.push(Var::Factor {
        codes: trial
            .participants
            .iter()
            .map(|p| Some(p.arm.index() as u32))
            .collect(),
        levels: trial.study.arms.clone(),
    });
    methods.push(None);
    variables.push(ImputedVariable {
        variable: "arm".into(),
        role: "arm".into(),
        ..Default::default()
    });
    for (w, col) in waves.iter().zip(wide_y) {
        let v = Var::Numeric(col);
        let missing = v.n_missing();
        if missing == n {
            // A wave nobody was assessed at carries no information.
            continue;
        }
        variables.push(ImputedVariable {
            variable: format!("y_{w}"),
            role: "outcome".into(),
            method: if missing > 0 {
                "pmm".into()
            } else {
                String::new()
            },
            n_missing: missing as u64,
            n_rows_imputed: 0,
        });
        names.push(format!("y_{w}"));
        methods.push((missing > 0).then_some(Method::Pmm));
        vars.push(v);
    }
    Ok((
        ImputationModel {
            data: WideFrame { names, vars },
            methods,
            variables,
            n_covariates,
        },
        rows_of,
    ))
}
