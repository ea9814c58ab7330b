//! Estimated marginal means on a reference grid, as R's `emmeans` (Lenth): every combination
//! of the levels of the factors in the model, numeric covariates at their means, and the
//! means of the requested factors averaged over the other factors with equal weights
//! (emmeans' default `weights = "equal"`). The result is a set of linear combinations
//! `L beta` of the fixed effects; their SEs and df come from the fitted model's general
//! contrast function, so every mean and contrast has its own Satterthwaite or Kenward-Roger df.
//!
//! Coefficients are matched by R's names: a term `armIMR:waveT2` is the product of the
//! indicators `arm == "IMR"` and `wave == "T2"`; a numeric term `months` is the covariate's
//! value on the grid.

/// A factor of the model with its levels (the first is the reference level) and the prefix
/// R puts before a level in coefficient names (`arm`, or `factor(x)`).
#[derive(Debug, Clone, PartialEq)]
pub struct GridFactor {
    pub name: String,
    pub prefix: String,
    pub levels: Vec<String>,
}

/// One point of the grid of the requested factors with its row of `L`.
#[derive(Debug, Clone, PartialEq)]
pub struct GridPoint {
    /// (factor name, level) for each requested factor.
    pub levels: Vec<(String, String)>,
    /// Coefficients of `L beta`, aligned with the model's fixed-effect names.
    pub l: Vec<f64>,
}

/// Error when a coefficient name cannot be decoded into the grid's variables.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("emmeans: cannot interpret the coefficient '{coef}' (part '{part}') with the factors {factors:?} and covariates {covariates:?}")]
pub struct GridError {
    pub coef: String,
    pub part: String,
    pub factors: Vec<String>,
    pub covariates: Vec<String>,
}

/// Value of one part of a coefficient name on a full grid cell.
#[derive(Debug, Clone)]
enum Part {
    Intercept,
    Indicator { factor: usize, level: usize },
    Covariate(f64),
}

/// Builds the rows of `L` for the marginal means of `specs` (factor names, in order; e.g.
/// `["arm", "wave"]` for `emmeans(m, ~ arm * wave)`), averaging with equal weights over the
/// other factors in `factors` and holding `covariates` (name, mean) at their means.
/// Grid points come in R's order: the first factor varies fastest.
pub fn reference_grid(
    coef_names: &[String],
    factors: &[GridFactor],
    covariates: &[(String, f64)],
    specs: &[&str],
) -> Result<Vec<GridPoint>, GridError> {
    let decoded = decode(coef_names, factors, covariates)?;
    let spec_idx: Vec<usize> = specs
        .iter()
        .filter_map(|s| factors.iter().position(|f| f.name == *s))
        .collect();
    let other_idx: Vec<usize> = (0..factors.len())
        .filter(|i| !spec_idx.contains(i))
        .collect();
    let spec_cells = cartesian(
        &spec_idx
            .iter()
            .map(|&i| factors[i].levels.len())
            .collect::<Vec<_>>(),
    );
    let other_cells = cartesian(
        &other_idx
            .iter()
            .map(|&i| factors[i].levels.len())
            .collect::<Vec<_>>(),
    );
    let w = 1.0 / other_cells.len().max(1) as f64;
    let mut out = Vec::with_capacity(spec_cells.len());
    for sc in &spec_cells {
        let mut l = vec![0.0; coef_names.len()];
        let mut cell = vec![0usize; factors.len()];
        for (k, &fi) in spec_idx.iter().enumerate() {
            cell[fi] = sc[k];
        }
        for oc in &other_cells {
            for (k, &fi) in other_idx.iter().enumerate() {
                cell[fi] = oc[k];
            }
            for (j, parts) in decoded.iter().enumerate() {
                let mut v = 1.0;
                for p in parts {
                    v *= match p {
                        Part::Intercept => 1.0,
                        Part::Indicator { factor, level } => {
                            if cell[*factor] == *level {
                                1.0
                            } else {
                                0.0
                            }
                        }
                        Part::Covariate(x) => *x,
                    };
                }
                l[j] += w * v;
            }
        }
        out.push(GridPoint {
            levels: spec_idx
                .iter()
                .zip(sc)
                .map(|(&fi, &lv)| (factors[fi].name.clone(), factors[fi].levels[lv].clone()))
                .collect(),
            l,
        });
    }
    Ok(out)
}

/// All index combinations with the first position varying fastest (R's `expand.grid`).
fn cartesian(sizes: &[usize]) -> Vec<Vec<usize>> {
    let total: usize = sizes.iter().product();
    (0..total)
        .map(|mut k| {
            sizes
                .iter()
                .map(|&s| {
                    let v = k % s.max(1);
                    k /= s.max(1);
                    v
                })
                .collect()
        })
        .collect()
}

fn decode(
    coef_names: &[String],
    factors: &[GridFactor],
    covariates: &[(String, f64)],
) -> Result<Vec<Vec<Part>>, GridError> {
    let err = |coef: &str, part: &str| GridError {
        coef: coef.to_string(),
        part: part.to_string(),
        factors: factors.iter().map(|f| f.name.clone()).collect(),
        covariates: covariates.iter().map(|c| c.0.clone()).collect(),
    };
    coef_names
        .iter()
        .map(|coef| {
            if coef == "(Intercept)" {
                return Ok(vec![Part::Intercept]);
            }
            coef.split(':')
                .map(|part| {
                    if let Some((_, x)) = covariates.iter().find(|(n, _)| n == part) {
                        return Ok(Part::Covariate(*x));
                    }
                    // Longest matching prefix wins (a factor named `wave` and one named `w`).
                    let mut best: Option<(usize, usize, usize)> = None;
                    for (fi, f) in factors.iter().enumerate() {
                        if let Some(rest) = part.strip_prefix(f.prefix.as_str()) {
                            if let Some(li) = f.levels.iter().position(|l| l == rest) {
                                if best.is_none_or(|b| f.prefix.len() > b.2) {
                                    best = Some((fi, li, f.prefix.len()));
                                }
                            }
                        }
                    }
                    best.map(|(factor, level, _)| Part::Indicator { factor, level })
                        .ok_or_else(|| err(coef, part))
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, levels: &[&str]) -> GridFactor {
        GridFactor {
            name: name.into(),
            prefix: name.into(),
            levels: levels.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn arm_by_wave_grid_rows() {
        let coefs: Vec<String> = [
            "(Intercept)",
            "armIMR",
            "waveT1",
            "waveT2",
            "armIMR:waveT1",
            "armIMR:waveT2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let g = reference_grid(
            &coefs,
            &[f("arm", &["CAU", "IMR"]), f("wave", &["T0", "T1", "T2"])],
            &[],
            &["arm", "wave"],
        )
        .unwrap();
        assert_eq!(g.len(), 6);
        // R order: arm varies fastest: (CAU,T0), (IMR,T0), (CAU,T1), ...
        assert_eq!(g[1].levels[0].1, "IMR");
        assert_eq!(g[1].levels[1].1, "T0");
        assert_eq!(g[5].l, vec![1.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(g[2].l, vec![1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn averages_over_other_factors_and_uses_covariate_means() {
        let coefs: Vec<String> = ["(Intercept)", "armIMR", "sexmale", "age"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let g = reference_grid(
            &coefs,
            &[f("arm", &["CAU", "IMR"]), f("sex", &["female", "male"])],
            &[("age".into(), 40.0)],
            &["arm"],
        )
        .unwrap();
        assert_eq!(g[0].l, vec![1.0, 0.0, 0.5, 40.0]);
        assert_eq!(g[1].l, vec![1.0, 1.0, 0.5, 40.0]);
    }

    #[test]
    fn unknown_coefficient_is_an_error() {
        let coefs = vec!["(Intercept)".to_string(), "bogus".to_string()];
        let e = reference_grid(&coefs, &[f("arm", &["A", "B"])], &[], &["arm"]).unwrap_err();
        assert_eq!(e.part, "bogus");
    }
}
