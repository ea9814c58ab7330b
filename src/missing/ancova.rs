//! The analysis of a completed data set, rbmi's `ancova`: at each follow-up wave
//! `lm(y ~ arm + baseline)` over all participants; the treatment effect is the coefficient of the
//! active arm, the adjusted means are the predictions at the mean baseline (rbmi `lsmeans` with
//! `weights = "counterfactual"`, which for this linear model is the prediction at the mean).
//!
//! Delta adjustment adds `delta s` to the completed values (`s` = 1 at the shifted cells, 0
//! elsewhere). Least squares is linear in the response, so the effect of a shift is
//! `estimate(delta) = estimate(0) + delta c` with `c` the arm coefficient of the regression of
//! `s` on the same design; [`Ancova::shift_coefficient`] gives `c`.
use crate::glm::lm::ols_xy;

/// The ANCOVA design of one set of participants: `(1, active arm, baseline)`.
#[derive(Debug, Clone)]
pub struct Ancova {
    x: Vec<f64>,
    names: Vec<String>,
    mean_baseline: f64,
}

/// One wave's ANCOVA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AncovaFit {
    pub estimate: f64,
    /// The lm SE on the completed data (not valid inference after imputation).
    pub se_naive: f64,
    pub lsm_reference: f64,
    pub lsm_active: f64,
}

impl Ancova {
    /// `active[i]`: participant i is in the active arm; `term`: the coefficient's name
    /// (`armIMR`).
    pub fn new(active: &[bool], baseline: &[f64], term: &str) -> Ancova {
        let mut x = Vec::with_capacity(3 * active.len());
        for (a, b) in active.iter().zip(baseline) {
            x.extend_from_slice(&[1.0, if *a { 1.0 } else { 0.0 }, *b]);
        }
        Ancova {
            x,
            names: vec!["(Intercept)".into(), term.to_string(), "baseline".into()],
            mean_baseline: baseline.iter().sum::<f64>() / baseline.len().max(1) as f64,
        }
    }

    /// Fits one wave's completed values.
    pub fn fit(&self, y: &[f64]) -> Result<AncovaFit, String> {
        let f = ols_xy(&self.x, y, &self.names).map_err(|e| e.to_string())?;
        let b = &f.beta;
        Ok(AncovaFit {
            estimate: b[1],
            se_naive: f.vcov[(1, 1)].sqrt(),
            lsm_reference: b[0] + b[2] * self.mean_baseline,
            lsm_active: b[0] + b[1] + b[2] * self.mean_baseline,
        })
    }

    /// The arm coefficient of the regression of the shift indicator `s` (the change of the
    /// estimate per unit delta).
    pub fn shift_coefficient(&self, s: &[f64]) -> Result<f64, String> {
        if s.iter().all(|v| *v == 0.0) {
            return Ok(0.0);
        }
        let f = ols_xy(&self.x, s, &self.names).map_err(|e| e.to_string())?;
        Ok(f.beta[1])
    }
}
