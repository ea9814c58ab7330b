//! The mixed models of admissions per period (issue 15, point 3): with `i` the participant,
//! `k` the period, `E_ik` the person-years at risk and `b_i ~ N(0, sigma^2)`,
//! * the negative-binomial GLMM (glmmTMB `nbinom2`)
//!   `admissions_ik ~ NB(mu_ik, theta)`,
//!   `log mu_ik = log E_ik + (arm * period + prior)_ik beta + b_i`;
//! * the logistic GLMM (`lme4::glmer`, Laplace) of any admission starting in the period,
//!   `logit P(any_ik) = (arm * period + prior)_ik beta + b_i`.
//!
//! Both are fitted by [`crate::glmm::fit_glmm`]. Reported per period `k`: the intervention
//! over control ratio `exp(c_k' beta)` (rate or odds ratio), `c_k` the difference of the
//! design rows of the two arms in period `k`, with its Wald interval; `overall` is the mean of
//! the log ratios over the periods (emmeans' `emmeans(m, pairwise ~ arm)`, averaged over
//! `period`). The model-based marginal quantities average over the participants' covariates
//! (g-computation) and over the random intercept:
//! * rate per person-year `m_ak = exp(sigma^2 / 2) mean_i exp(x_iak' beta)` (log link:
//!   `E exp(b) = exp(sigma^2 / 2)`);
//! * risk `r_ak = mean_i int expit(x_iak' beta + sigma z) phi(z) dz` (Gauss-Hermite, 40
//!   nodes), and the marginal risk difference `r_1k - r_0k` (overall: the mean over periods).
//!
//! Their intervals are delta-method Wald intervals with the analytic gradient in
//! `(sigma, beta)` and the covariance of `(sigma, beta)` of the fit (rates on the log scale,
//! risks on the logit scale, risk differences on their own scale).
use std::collections::HashMap;

use super::periods::{Period, PeriodData};
use super::RandomizedParticipant;
use crate::formula::{build_model_frame, ModelFormula, ModelFrame};
use crate::frame::Frame;
use crate::glmm::family::{Family, Link};
use crate::glmm::quadrature::gauss_hermite;
use crate::glmm::{fit_glmm, glmm_data, GlmmFit, GlmmOptions};
use crate::results::{
    AdmissionPeriod, ExcludedRows, PerPeriodAdmissions, PeriodArmSummary, PeriodEffect,
    PeriodMarginal, PeriodModel,
};
use crate::stats::distributions::{pnorm_upper, qnorm};

/// The arms of the trial (study order, the reference first) and the intervention arm.
#[derive(Debug, Clone, Copy)]
pub struct ArmLabels<'a> {
    pub arms: &'a [String],
    pub intervention: &'a str,
}

/// How the per-period models are fitted.
#[derive(Debug, Clone, Copy)]
pub struct PeriodOptions {
    /// Confidence level of the intervals.
    pub level: f64,
    /// Admissions in the year before randomization as a covariate (`+ prior`).
    pub prior_covariate: bool,
    /// Quadrature points (1 = Laplace, glmer's default; up to 25: adaptive Gauss-Hermite).
    pub n_agq: usize,
    /// The count model: the negative binomial (default) or, with `poisson`, the Poisson GLMM
    /// (the negative binomial's limit when the random intercept holds all overdispersion).
    pub poisson: bool,
}

/// The per-period analysis: observed summaries, both GLMMs and their effects. A model that
/// cannot be fitted is reported in `errors`; the other is still fitted.
pub fn analyse_periods(
    participants: &[RandomizedParticipant],
    data: &PeriodData,
    periods: &[Period],
    arms: ArmLabels<'_>,
    opts: PeriodOptions,
) -> PerPeriodAdmissions {
    let level = opts.level;
    let mut out = PerPeriodAdmissions {
        periods: periods
            .iter()
            .map(|p| AdmissionPeriod {
                label: p.label.clone(),
                from_wave: p.from_wave.clone(),
                to_wave: p.to_wave.clone(),
                first_day: p.window.first,
                last_day: p.window.last,
            })
            .collect(),
        n_rows: data.rows.len() as u64,
        n_participants: {
            let mut seen: Vec<usize> = data.rows.iter().map(|r| r.participant).collect();
            seen.dedup();
            seen.len() as u64
        },
        excluded: excluded(participants, periods, data),
        observed: observed(participants, data, periods, arms.arms),
        ..Default::default()
    };
    let frame = match model_frame_data(participants, data, periods, arms.arms) {
        Ok(f) => f,
        Err(e) => {
            out.errors.push(format!("per-period data: {e}"));
            return out;
        }
    };
    let rhs = match (periods.len() > 1, opts.prior_covariate) {
        (true, true) => "arm * period + prior",
        (true, false) => "arm * period",
        (false, true) => "arm + prior",
        (false, false) => "arm",
    };
    let offset: Vec<f64> = data.rows.iter().map(|r| r.exposure_years().ln()).collect();
    let specs = [
        (
            "admissions",
            if opts.poisson {
                Family::Poisson
            } else {
                Family::NegativeBinomial { theta: 1.0 }
            },
            Some(offset),
        ),
        ("any_admission", Family::Binomial(Link::Logit), None),
    ];
    for (response, family, offset) in specs {
        let formula = format!("{response} ~ {rhs} + (1 | participant_id)");
        match fit_period_model(&formula, &frame, offset, family, level, opts.n_agq).and_then(
            |(mf, fit)| {
                let cf =
                    counterfactual_design(participants, data, periods, arms.arms, &formula, &mf)?;
                Ok(report_model(&formula, &fit, &cf, periods, arms, level))
            },
        ) {
            Ok(m) => match family {
                Family::Binomial(_) => out.logistic = Some(m),
                _ => out.negative_binomial = Some(m),
            },
            Err(e) => out.errors.push(format!("{formula}: {e}")),
        }
    }
    out
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Fits one GLMM on the participant-period frame (Laplace).
fn fit_period_model(
    formula: &str,
    frame: &Frame,
    offset: Option<Vec<f64>>,
    family: Family,
    level: f64,
    n_agq: usize,
) -> Result<(ModelFrame, GlmmFit), BoxError> {
    let f = ModelFormula::parse(formula)?;
    let mf = build_model_frame(&f, frame)?;
    let offset = offset.map(|o| mf.rows.iter().map(|&r| o[r]).collect());
    let d = glmm_data(&mf, None, offset, family)?;
    let fit = fit_glmm(
        &d,
        &GlmmOptions {
            family,
            n_agq,
            level,
        },
    )?;
    Ok((mf, fit))
}

/// The participant-period rows as a frame: `admissions`, `any_admission` (0/1), `prior`,
/// and the factors `arm` (study order), `period` (period order) and `participant_id`.
fn model_frame_data(
    participants: &[RandomizedParticipant],
    data: &PeriodData,
    periods: &[Period],
    arms: &[String],
) -> Result<Frame, BoxError> {
    let rows = &data.rows;
    let mut frame = Frame::new();
    let num = |f: &dyn Fn(&super::periods::PeriodRow) -> f64| -> Vec<Option<f64>> {
        rows.iter().map(|r| Some(f(r))).collect()
    };
    frame.push_numeric("admissions", num(&|r| f64::from(r.admissions)))?;
    frame.push_numeric(
        "any_admission",
        num(&|r| f64::from(u8::from(r.admissions > 0))),
    )?;
    frame.push_numeric("prior", num(&|r| f64::from(r.prior)))?;
    push_factors(
        &mut frame,
        rows.iter().map(|r| {
            (
                participants[r.participant].arm.clone(),
                r.period,
                r.participant,
            )
        }),
        participants,
        periods,
        arms,
    )?;
    Ok(frame)
}

/// Adds the factors `arm`, `period` and `participant_id` of `(arm, period, participant)` rows.
fn push_factors(
    frame: &mut Frame,
    rows: impl Iterator<Item = (String, usize, usize)>,
    participants: &[RandomizedParticipant],
    periods: &[Period],
    arms: &[String],
) -> Result<(), BoxError> {
    let (mut arm, mut period, mut id) = (Vec::new(), Vec::new(), Vec::new());
    for (a, k, i) in rows {
        arm.push(Some(a));
        period.push(Some(periods[k].label.clone()));
        id.push(Some(participants[i].id.clone()));
    }
    frame.push_factor("arm", arm, Some(arms.to_vec()))?;
    frame.push_factor(
        "period",
        period,
        Some(periods.iter().map(|p| p.label.clone()).collect()),
    )?;
    frame.push_factor("participant_id", id, None)?;
    Ok(())
}

/// The design rows of every analysed participant (with their covariates) in every arm and
/// period: `x[(a, k)]` is a list of rows, each in the fit's column order.
struct Counterfactual {
    /// `rows[a][k]`: the participants' design rows for arm `a` in period `k`.
    rows: Vec<Vec<Vec<Vec<f64>>>>,
}

/// Builds [`Counterfactual`] with the model's formula on a frame of every participant in
/// every arm and period (the response set to 0), and maps its columns onto the fit's.
fn counterfactual_design(
    participants: &[RandomizedParticipant],
    data: &PeriodData,
    periods: &[Period],
    arms: &[String],
    formula: &str,
    fitted: &ModelFrame,
) -> Result<Counterfactual, BoxError> {
    let mut people: Vec<(usize, u32)> =
        data.rows.iter().map(|r| (r.participant, r.prior)).collect();
    people.dedup_by_key(|p| p.0);
    let (na, nk, n) = (arms.len(), periods.len(), people.len());
    let mut cells = Vec::with_capacity(na * nk * n);
    for a in arms {
        for k in 0..nk {
            for &(i, prior) in &people {
                cells.push((a.clone(), k, i, prior));
            }
        }
    }
    let mut frame = Frame::new();
    let zeros = vec![Some(0.0); cells.len()];
    frame.push_numeric("admissions", zeros.clone())?;
    frame.push_numeric("any_admission", zeros)?;
    frame.push_numeric(
        "prior",
        cells.iter().map(|c| Some(f64::from(c.3))).collect(),
    )?;
    push_factors(
        &mut frame,
        cells.iter().map(|c| (c.0.clone(), c.1, c.2)),
        participants,
        periods,
        arms,
    )?;
    let mf = build_model_frame(&ModelFormula::parse(formula)?, &frame)?;
    let index: HashMap<&str, usize> = mf
        .x_names
        .iter()
        .enumerate()
        .map(|(j, s)| (s.as_str(), j))
        .collect();
    let map: Vec<usize> = fitted
        .x_names
        .iter()
        .map(|name| {
            index
                .get(name.as_str())
                .copied()
                .ok_or_else(|| format!("column `{name}` missing from the prediction design"))
        })
        .collect::<Result<_, _>>()?;
    let p_cf = mf.x_names.len();
    let mut rows = vec![vec![Vec::with_capacity(n); nk]; na];
    for c in 0..cells.len() {
        let (a, rest) = (c / (nk * n), c % (nk * n));
        let k = rest / n;
        let src = &mf.x[c * p_cf..(c + 1) * p_cf];
        rows[a][k].push(map.iter().map(|&j| src[j]).collect());
    }
    Ok(Counterfactual { rows })
}

/// The reported model: coefficients, ratios per period and overall, marginal rates or risks
/// and (logistic) risk differences.
fn report_model(
    formula: &str,
    fit: &GlmmFit,
    cf: &Counterfactual,
    periods: &[Period],
    arms: ArmLabels<'_>,
    level: f64,
) -> PeriodModel {
    let binomial = fit.family == "binomial";
    let p = fit.fixed_effects.len();
    let beta: Vec<f64> = fit.fixed_effects.iter().map(|t| t.estimate).collect();
    let z = qnorm(1.0 - (1.0 - level) / 2.0);
    let intervention = arms
        .arms
        .iter()
        .position(|a| a == arms.intervention)
        .unwrap_or(arms.arms.len().saturating_sub(1));
    // c_k = x(intervention, k) - x(reference, k) (the same for every participant)
    let contrasts: Vec<Vec<f64>> = (0..periods.len())
        .map(|k| {
            let (x1, x0) = (&cf.rows[intervention][k][0], &cf.rows[0][k][0]);
            x1.iter().zip(x0).map(|(a, b)| a - b).collect()
        })
        .collect();
    let mut effects: Vec<PeriodEffect> = periods
        .iter()
        .zip(&contrasts)
        .map(|(per, c)| ratio(&per.label, c, &beta, &fit.vcov, p, z))
        .collect();
    let mean_c: Vec<f64> = (0..p)
        .map(|j| contrasts.iter().map(|c| c[j]).sum::<f64>() / contrasts.len() as f64)
        .collect();
    effects.push(ratio("overall", &mean_c, &beta, &fit.vcov, p, z));
    let rule = gauss_hermite(40);
    let marginal_of = |a: usize, k: usize| -> (f64, Vec<f64>) {
        if binomial {
            marginal_risk(&cf.rows[a][k], &beta, fit.sd, &rule)
        } else {
            marginal_log_rate(&cf.rows[a][k], &beta, fit.sd)
        }
    };
    let v = &fit.vcov_sd_beta;
    let mut marginal = Vec::new();
    for (a, arm) in arms.arms.iter().enumerate() {
        for (k, per) in periods.iter().enumerate() {
            let (m, g) = marginal_of(a, k);
            let se = quad_form(&g, v).sqrt();
            let (estimate, conf_low, conf_high) = if binomial {
                let l = (m / (1.0 - m)).ln();
                let sl = se / (m * (1.0 - m));
                (m, expit(l - z * sl), expit(l + z * sl))
            } else {
                (m.exp(), (m - z * se).exp(), (m + z * se).exp())
            };
            marginal.push(PeriodMarginal {
                arm: arm.clone(),
                period: per.label.clone(),
                estimate,
                conf_low,
                conf_high,
            });
        }
    }
    let risk_differences = if binomial {
        let per_period: Vec<(f64, Vec<f64>)> = (0..periods.len())
            .map(|k| {
                let (r1, g1) = marginal_of(intervention, k);
                let (r0, g0) = marginal_of(0, k);
                (r1 - r0, g1.iter().zip(&g0).map(|(a, b)| a - b).collect())
            })
            .collect();
        let nk = per_period.len() as f64;
        let overall = (
            per_period.iter().map(|d| d.0).sum::<f64>() / nk,
            (0..=p)
                .map(|j| per_period.iter().map(|d| d.1[j]).sum::<f64>() / nk)
                .collect::<Vec<f64>>(),
        );
        periods
            .iter()
            .map(|per| per.label.as_str())
            .chain(std::iter::once("overall"))
            .zip(per_period.iter().chain(std::iter::once(&overall)))
            .map(|(label, (d, g))| {
                let se = quad_form(g, v).sqrt();
                PeriodEffect {
                    period: label.to_string(),
                    estimate: *d,
                    conf_low: d - z * se,
                    conf_high: d + z * se,
                    p_value: 2.0 * pnorm_upper((d / se).abs()),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    PeriodModel {
        model: if binomial {
            format!(
                "lme4::glmer({formula}, family = binomial, nAGQ = {})",
                fit.n_agq
            )
        } else {
            let with_offset = formula.replacen(" + (1", " + offset(log(exposure)) + (1", 1);
            if fit.family == "poisson" {
                format!(
                    "lme4::glmer({with_offset}, family = poisson, nAGQ = {})",
                    fit.n_agq
                )
            } else {
                // glmmTMB has no quadrature; glmer.nb passes nAGQ on to glmer
                if fit.n_agq > 1 {
                    format!("lme4::glmer.nb({with_offset}, nAGQ = {})", fit.n_agq)
                } else {
                    format!("glmmTMB::glmmTMB({with_offset}, family = nbinom2)")
                }
            }
        },
        ratio: if binomial { "odds_ratio" } else { "rate_ratio" }.into(),
        coefficients: super::trial::term_rows(&fit.fixed_effects),
        sd_participant: fit.sd,
        theta: fit.theta,
        loglik: fit.loglik,
        aic: fit.aic,
        converged: fit.converged,
        singular: fit.singular,
        warnings: fit.warnings.clone(),
        effects,
        risk_differences,
        marginal,
    }
}

/// `exp(c' beta)` with its Wald interval and z test.
fn ratio(label: &str, c: &[f64], beta: &[f64], vcov: &[f64], p: usize, z: f64) -> PeriodEffect {
    let est: f64 = c.iter().zip(beta).map(|(a, b)| a * b).sum();
    let var: f64 = (0..p)
        .flat_map(|i| (0..p).map(move |j| (i, j)))
        .map(|(i, j)| c[i] * vcov[i * p + j] * c[j])
        .sum();
    let se = var.max(0.0).sqrt();
    PeriodEffect {
        period: label.to_string(),
        estimate: est.exp(),
        conf_low: (est - z * se).exp(),
        conf_high: (est + z * se).exp(),
        p_value: 2.0 * pnorm_upper((est / se).abs()),
    }
}

/// `g' V g` for the `(sigma, beta)` covariance `V` (row-major, `g.len()` square).
fn quad_form(g: &[f64], v: &[f64]) -> f64 {
    let q = g.len();
    let mut s = 0.0;
    for i in 0..q {
        for j in 0..q {
            s += g[i] * v.get(i * q + j).copied().unwrap_or(f64::NAN) * g[j];
        }
    }
    s.max(0.0)
}

fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `log m = sigma^2 / 2 + log mean_i exp(x_i' beta)` and its gradient in `(sigma, beta)`.
fn marginal_log_rate(rows: &[Vec<f64>], beta: &[f64], sigma: f64) -> (f64, Vec<f64>) {
    let eta: Vec<f64> = rows.iter().map(|x| dot(x, beta)).collect();
    let top = eta.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = eta.iter().map(|e| (e - top).exp()).collect();
    let total: f64 = w.iter().sum();
    let mut g = vec![0.0; beta.len() + 1];
    g[0] = sigma;
    for (x, wi) in rows.iter().zip(&w) {
        for (j, xj) in x.iter().enumerate() {
            g[j + 1] += wi / total * xj;
        }
    }
    let log_mean = top + (total / rows.len() as f64).ln();
    (0.5 * sigma * sigma + log_mean, g)
}

/// `r = mean_i sum_q w_q expit(x_i' beta + sigma z_q)` and its gradient in `(sigma, beta)`.
fn marginal_risk(
    rows: &[Vec<f64>],
    beta: &[f64],
    sigma: f64,
    rule: &[(f64, f64)],
) -> (f64, Vec<f64>) {
    let n = rows.len() as f64;
    let mut r = 0.0;
    let mut g = vec![0.0; beta.len() + 1];
    for x in rows {
        let eta = dot(x, beta);
        let (mut pi, mut dpi, mut dsig) = (0.0, 0.0, 0.0);
        for &(zq, wq) in rule {
            let pr = expit(eta + sigma * zq);
            pi += wq * pr;
            dpi += wq * pr * (1.0 - pr);
            dsig += wq * pr * (1.0 - pr) * zq;
        }
        r += pi / n;
        g[0] += dsig / n;
        for (j, xj) in x.iter().enumerate() {
            g[j + 1] += dpi * xj / n;
        }
    }
    (r, g)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Participant-periods without a day at risk, as one group of excluded rows.
fn excluded(
    participants: &[RandomizedParticipant],
    periods: &[Period],
    data: &PeriodData,
) -> Vec<ExcludedRows> {
    if data.no_days_at_risk.is_empty() {
        return Vec::new();
    }
    vec![ExcludedRows {
        reason: "in hospital for the whole period: no day at risk (no exposure)".into(),
        count: data.no_days_at_risk.len() as u64,
        examples: data
            .no_days_at_risk
            .iter()
            .take(10)
            .map(|&(i, k)| format!("{} {}", participants[i].id, periods[k].label))
            .collect(),
    }]
}

/// Observed totals per arm (study order) and period.
fn observed(
    participants: &[RandomizedParticipant],
    data: &PeriodData,
    periods: &[Period],
    arms: &[String],
) -> Vec<PeriodArmSummary> {
    let mut out = Vec::new();
    for arm in arms {
        for (k, per) in periods.iter().enumerate() {
            let rows: Vec<_> = data
                .rows
                .iter()
                .filter(|r| r.period == k && &participants[r.participant].arm == arm)
                .collect();
            out.push(PeriodArmSummary {
                arm: arm.clone(),
                period: per.label.clone(),
                n: rows.len() as u64,
                admissions: rows.iter().map(|r| u64::from(r.admissions)).sum(),
                bed_days: rows.iter().map(|r| u64::from(r.bed_days)).sum(),
                person_years: rows.iter().map(|r| r.exposure_years()).sum(),
                with_admission: rows.iter().filter(|r| r.admissions > 0).count() as u64,
            });
        }
    }
    out
}
