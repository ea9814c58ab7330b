//! "Observed-scale" truths: what an analysis of the *scored* data estimates. Rounding,
//! clamping, item noise and floor effects attenuate the latent effects, so they are computed
//! from one very large simulated trial (default 200,000 participants, fixed seed) with the same
//! parameters and no missing data, scored with the reference rules, and analysed with simple
//! estimators whose large-sample values equal those of the reference analyses:
//! - arm effects: differences of arm means per wave (a saturated arm x wave model with complete
//!   data, e.g. `lmer(y ~ arm * wave + (1 | participant_id))`, estimates exactly these), and
//!   differences in mean change from baseline;
//! - within-person paths: OLS on scores centred on the person means and the wave means
//!   (the fixed-effects "within" estimator; in a balanced panel it is the coefficient of the
//!   person-mean-centred predictor in `y ~ x_w + x_b + wave + (1 | participant_id)`, Zhang,
//!   Zyphur & Preacher 2009). SEs are the OLS SEs (Monte Carlo precision, not design SEs).
//!
//! Computing them takes seconds, so the values for the default parameters are cached in
//! `default_observed_scale.json` beside this file ([`cached_observed_scale`]) and every
//! default trial carries them at no cost. The ignored test
//! `cargo test --test simulate -- --ignored regenerate_default_observed_scale` rewrites the
//! file; the test `cached_observed_scale_matches_a_fresh_computation` fails when it is stale.
//! Other parameters: [`observed_scale`] computes them (`herstel simulate` does so unless
//! `--skip-observed-scale`).
use crate::stats::linalg::least_squares;
use std::sync::OnceLock;

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::config::SimConfig;
use super::design::draw_design;
use super::model::{draw_items, draw_latent, empty_row, score, INSTRUMENTS};
use super::rng::{Rng, Stream};

/// The observed-scale truths of [`SimConfig::default`], computed by [`observed_scale`] and
/// stored as JSON (see the module documentation for how to regenerate them).
pub const DEFAULT_OBSERVED_SCALE_JSON: &str = include_str!("default_observed_scale.json");

/// The part of a configuration that the observed-scale truths depend on: everything except
/// the trial's own size and name, its missing data and its admissions (the truth trial has
/// `truth.n_participants` participants, no missing data, and admissions do not enter it).
pub fn truth_relevant(cfg: &SimConfig) -> SimConfig {
    let d = SimConfig::default();
    let mut c = cfg.clone();
    c.study.n_participants = d.study.n_participants;
    c.study.name = d.study.name;
    c.missing = d.missing;
    c.dropout = d.dropout;
    c.admissions = d.admissions;
    c
}

/// The cached observed-scale truths when `cfg` differs from the defaults only in parameters
/// they do not depend on ([`truth_relevant`]); `None` otherwise (or when the cache file does
/// not parse, e.g. while it is being regenerated).
pub fn cached_observed_scale(cfg: &SimConfig) -> Option<ObservedScale> {
    static CACHE: OnceLock<Option<ObservedScale>> = OnceLock::new();
    if truth_relevant(cfg) != SimConfig::default() {
        return None;
    }
    CACHE
        .get_or_init(|| serde_json::from_str(DEFAULT_OBSERVED_SCALE_JSON).ok())
        .clone()
}

/// An estimate with its Monte Carlo standard error.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Estimate {
    pub estimate: f64,
    pub se: f64,
}

/// Intervention minus control at one wave.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaveEffect {
    pub wave: String,
    pub months: f64,
    pub control_mean: f64,
    pub intervention_mean: f64,
    /// Difference of arm means.
    pub difference: Estimate,
    /// Difference of arm means of the change from baseline (None at baseline).
    pub change_difference: Option<Estimate>,
    /// `difference` over the pooled within-arm baseline SD (Cohen's d per wave).
    pub d_baseline_sd: f64,
}

/// One instrument's arm effects per wave.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstrumentEffects {
    pub instrument: String,
    pub waves: Vec<WaveEffect>,
}

/// Within-person paths of the mediation chain on the scored scale.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WithinPaths {
    pub description: String,
    pub n_participants: usize,
    pub n_observations: usize,
    /// bsi_w ~ imrs_client_w
    pub a1: Estimate,
    /// sfs_w ~ imrs_client_w
    pub a2: Estimate,
    /// mhrm_w ~ imrs_client_w + bsi_w + sfs_w: the bsi coefficient
    pub b1: Estimate,
    /// ... the sfs coefficient
    pub b2: Estimate,
    /// ... the imrs_client coefficient (direct effect)
    pub c_prime: Estimate,
    /// mhrm_w ~ imrs_client_w (total effect)
    pub c: Estimate,
    /// honos_w ~ imrs_client_w
    pub honos_on_imrs_client: Estimate,
    /// a1 * b1, SE by the delta method (Sobel)
    pub indirect_a1b1: Estimate,
    pub indirect_a2b2: Estimate,
    /// sum of both, SE ignoring their covariance
    pub indirect_sum: Estimate,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MeanSd {
    pub instrument: String,
    pub mean: f64,
    pub sd: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Correlation {
    pub var1: String,
    pub var2: String,
    pub cor: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Icc {
    pub instrument: String,
    pub icc: f64,
}

/// Marginals of the scored large trial.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Descriptives {
    pub baseline: Vec<MeanSd>,
    pub baseline_cor: Vec<Correlation>,
    /// One-way ANOVA ICC of participants over all waves, after removing arm x wave means.
    pub icc_person: Vec<Icc>,
    /// Intervention arm, last wave, imrs_client: ANOVA ICC of training groups after removing
    /// site means (None without groups).
    pub icc_group_imrs_client_last_wave: Option<f64>,
}

/// Change-score mediation (thesis chapter 7, Roosenschoon et al. 2024): D = last wave -
/// baseline, pooled over arms, every baseline level as covariate; OLS with intercept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChangePaths {
    pub description: String,
    pub n_participants: usize,
    /// d_bsi ~ d_imrs_client + imrs_client_0 + bsi_0
    pub a1: Estimate,
    /// d_sfs ~ d_imrs_client + imrs_client_0 + sfs_0
    pub a2: Estimate,
    /// d_mhrm ~ d_imrs_client + d_bsi + d_sfs + imrs_client_0 + bsi_0 + sfs_0 + mhrm_0
    pub b1: Estimate,
    pub b2: Estimate,
    pub c_prime: Estimate,
    /// d_mhrm ~ d_imrs_client + imrs_client_0 + mhrm_0
    pub c: Estimate,
    pub indirect_a1b1: Estimate,
    pub indirect_a2b2: Estimate,
}

/// Truths on the scale of the scored outcomes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObservedScale {
    pub description: String,
    pub n_participants: usize,
    pub seed: u64,
    pub arm_effects: Vec<InstrumentEffects>,
    pub within_person: WithinPaths,
    pub change_score_mediation: ChangePaths,
    pub descriptives: Descriptives,
}

fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = xs.iter().sum::<f64>() / n;
    let v = if xs.len() > 1 {
        xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        f64::NAN
    };
    (m, v)
}

/// OLS without intercept on centred data: coefficients and SEs (residual df given), by the
/// shared QR solve.
fn ols(x_cols: &[&Vec<f64>], y: &[f64], df: f64) -> Option<Vec<Estimate>> {
    let n = y.len();
    let k = x_cols.len();
    let x = DMatrix::from_fn(n, k, |i, j| x_cols[j][i]);
    let names: Vec<String> = (1..=k).map(|j| format!("x{j}")).collect();
    let ls = least_squares(&x, &DVector::from_column_slice(y), &names).ok()?;
    let sigma2 = ls.rss() / df;
    Some(
        (0..k)
            .map(|j| Estimate {
                estimate: ls.beta[j],
                se: (sigma2 * ls.unscaled_cov[(j, j)]).sqrt(),
            })
            .collect(),
    )
}

fn product(a: Estimate, b: Estimate) -> Estimate {
    Estimate {
        estimate: a.estimate * b.estimate,
        se: (a.estimate.powi(2) * b.se.powi(2) + b.estimate.powi(2) * a.se.powi(2)).sqrt(),
    }
}

/// Scores of the large trial: `scores[k][t][i]` for instrument `k` (in [`INSTRUMENTS`]
/// order), wave `t` and participant `i`.
type Scores = Vec<Vec<Vec<f64>>>;

/// Simulates the large trial and computes the observed-scale truths.
pub fn observed_scale(cfg: &SimConfig) -> Option<ObservedScale> {
    let mut big = cfg.clone();
    big.study.n_participants = cfg.truth.n_participants;
    let seed = cfg.truth.seed;
    let design = draw_design(&big, seed);
    let scores = score_large_trial(&big, &design, seed)?;
    let nw = big.n_waves();
    let n = design.persons.len();
    let arm: Vec<usize> = design.persons.iter().map(|p| p.arm).collect();
    let arm_effects = arm_effects(&big, &scores, &arm);
    // within-person paths: persons with every score at every wave
    let complete: Vec<usize> = (0..n)
        .filter(|&i| (0..6).all(|k| (0..nw).all(|t| !scores[k][t][i].is_nan())))
        .collect();
    if complete.len() < 10 {
        return None;
    }
    let within_person = within_person_paths(&scores, &complete, nw)?;
    let change_score_mediation = change_score_paths(&scores, &complete, nw)?;
    let icc_group = group_icc(&design, &scores[0][nw - 1], big.sites.len());
    Some(ObservedScale {
        description: format!(
            "One simulated trial of {} participants with the same parameters (seed {seed}, no missing waves or \
             items), scored with the reference rules (IMRS mean, MHRM and HoNOS prorated sums, BSI GSI, SFS mean); \
             arm effects are differences of arm means (what y ~ arm * wave with a participant random intercept \
             estimates with complete data), within-person paths are OLS on person- and wave-mean-centred scores. \
             `se` is the Monte Carlo standard error at this size. Compare estimates from scored data with these, \
             not with the latent values in implied_effects.",
            n
        ),
        n_participants: n,
        seed,
        arm_effects,
        within_person,
        change_score_mediation,
        descriptives: Descriptives {
            baseline: baseline_means(&scores),
            baseline_cor: baseline_correlations(&scores, n),
            icc_person: person_iccs(&scores, &complete, &arm, nw),
            icc_group_imrs_client_last_wave: icc_group,
        },
    })
}

/// Draws the latent model and the items of every participant at every wave (no missing
/// data) and scores them with the reference rules.
fn score_large_trial(
    big: &SimConfig,
    design: &super::design::TrialDesign,
    seed: u64,
) -> Option<Scores> {
    let latent = draw_latent(big, design, seed);
    let nw = big.n_waves();
    let n = design.persons.len();
    let mut rng = Rng::new(seed, Stream::Items);
    let mut row = empty_row();
    // scores[k][t][i]
    let mut scores = vec![vec![vec![f64::NAN; n]; nw]; 6];
    for i in 0..n {
        for t in 0..nw {
            let lat = latent.waves.get(i)?.get(t)?;
            draw_items(big, lat, latent.sfs_profile.get(i)?, &mut rng, &mut row);
            for (k, sk) in scores.iter_mut().enumerate() {
                sk[t][i] = score(k, &row[k]).unwrap_or(f64::NAN);
            }
        }
    }
    Some(scores)
}

/// Arm effects per instrument and wave: differences of arm means and of mean change from
/// baseline, and the difference over the pooled baseline SD.
fn arm_effects(big: &SimConfig, scores: &Scores, arm: &[usize]) -> Vec<InstrumentEffects> {
    let n = arm.len();
    let mut arm_effects = Vec::new();
    for (k, name) in INSTRUMENTS.iter().enumerate() {
        let by_arm = |t: usize, a: usize| -> Vec<f64> {
            (0..n)
                .filter(|&i| arm[i] == a && !scores[k][t][i].is_nan())
                .map(|i| scores[k][t][i])
                .collect()
        };
        let change = |t: usize, a: usize| -> Vec<f64> {
            (0..n)
                .filter(|&i| arm[i] == a)
                .map(|i| scores[k][t][i] - scores[k][0][i])
                .filter(|x| !x.is_nan())
                .collect()
        };
        let b0 = by_arm(0, 0);
        let b1 = by_arm(0, 1);
        let (_, v0) = mean_var(&b0);
        let (_, v1) = mean_var(&b1);
        let pooled_sd = (((b0.len() as f64 - 1.0) * v0 + (b1.len() as f64 - 1.0) * v1)
            / (b0.len() + b1.len()).saturating_sub(2).max(1) as f64)
            .sqrt();
        let mut waves = Vec::new();
        for (t, w) in big.study.waves.iter().enumerate() {
            let (m0, m1, d) = mean_difference(&by_arm(t, 0), &by_arm(t, 1));
            let change_difference =
                (t > 0).then(|| mean_difference(&change(t, 0), &change(t, 1)).2);
            waves.push(WaveEffect {
                wave: w.label.clone(),
                months: w.months,
                control_mean: m0,
                intervention_mean: m1,
                difference: d,
                change_difference,
                d_baseline_sd: d.estimate / pooled_sd,
            });
        }
        arm_effects.push(InstrumentEffects {
            instrument: name.to_string(),
            waves,
        });
    }
    arm_effects
}

/// The two means and their difference `x1 - x0` with its (unpooled) standard error.
fn mean_difference(x0: &[f64], x1: &[f64]) -> (f64, f64, Estimate) {
    let (m0, v0) = mean_var(x0);
    let (m1, v1) = mean_var(x1);
    (
        m0,
        m1,
        Estimate {
            estimate: m1 - m0,
            se: (v0 / x0.len() as f64 + v1 / x1.len() as f64).sqrt(),
        },
    )
}

/// Within-person paths: OLS on scores centred on the person and wave means of the complete
/// participants (the within estimator, Zhang, Zyphur & Preacher 2009).
fn within_person_paths(scores: &Scores, complete: &[usize], nw: usize) -> Option<WithinPaths> {
    let nc = complete.len();
    let demeaned = |k: usize| -> Vec<f64> {
        let pm: Vec<f64> = complete
            .iter()
            .map(|&i| (0..nw).map(|t| scores[k][t][i]).sum::<f64>() / nw as f64)
            .collect();
        let wm: Vec<f64> = (0..nw)
            .map(|t| complete.iter().map(|&i| scores[k][t][i]).sum::<f64>() / nc as f64)
            .collect();
        let gm = wm.iter().sum::<f64>() / nw as f64;
        let mut out = Vec::with_capacity(nc * nw);
        for (ci, &i) in complete.iter().enumerate() {
            for t in 0..nw {
                out.push(scores[k][t][i] - pm[ci] - wm[t] + gm);
            }
        }
        out
    };
    let imrs = demeaned(0);
    let mhrm = demeaned(2);
    let bsi = demeaned(3);
    let sfs = demeaned(4);
    let honos = demeaned(5);
    let nobs = nc * nw;
    let base_df = (nobs - nc - (nw - 1)) as f64;
    let a1 = ols(&[&imrs], &bsi, base_df - 1.0)?[0];
    let a2 = ols(&[&imrs], &sfs, base_df - 1.0)?[0];
    let bm = ols(&[&imrs, &bsi, &sfs], &mhrm, base_df - 3.0)?;
    let c = ols(&[&imrs], &mhrm, base_df - 1.0)?[0];
    let h = ols(&[&imrs], &honos, base_df - 1.0)?[0];
    let ind1 = product(a1, bm[1]);
    let ind2 = product(a2, bm[2]);
    Some(WithinPaths {
        description: "OLS on scores centred on person and wave means (within estimator), participants with every \
                      score at every wave; SEs are OLS SEs and measure Monte Carlo precision"
            .into(),
        n_participants: nc,
        n_observations: nobs,
        a1,
        a2,
        b1: bm[1],
        b2: bm[2],
        c_prime: bm[0],
        c,
        honos_on_imrs_client: h,
        indirect_a1b1: ind1,
        indirect_a2b2: ind2,
        indirect_sum: Estimate {
            estimate: ind1.estimate + ind2.estimate,
            se: (ind1.se.powi(2) + ind2.se.powi(2)).sqrt(),
        },
    })
}

/// Change-score mediation of the complete participants: last wave - baseline, every
/// baseline level as covariate, OLS with intercept.
fn change_score_paths(scores: &Scores, complete: &[usize], nw: usize) -> Option<ChangePaths> {
    let nc = complete.len();
    let last = nw - 1;
    let d = |k: usize| -> Vec<f64> {
        complete
            .iter()
            .map(|&i| scores[k][last][i] - scores[k][0][i])
            .collect()
    };
    let b0 = |k: usize| -> Vec<f64> { complete.iter().map(|&i| scores[k][0][i]).collect() };
    let ones = vec![1.0; nc];
    let (d_s, d_b, d_f, d_m) = (d(0), d(3), d(4), d(2));
    let (s0, bb0, f0, m0) = (b0(0), b0(3), b0(4), b0(2));
    let df = |k: usize| nc as f64 - k as f64;
    let ca1 = ols(&[&d_s, &s0, &bb0, &ones], &d_b, df(4))?[0];
    let ca2 = ols(&[&d_s, &s0, &f0, &ones], &d_f, df(4))?[0];
    let cb = ols(&[&d_s, &d_b, &d_f, &s0, &bb0, &f0, &m0, &ones], &d_m, df(8))?;
    let cc = ols(&[&d_s, &s0, &m0, &ones], &d_m, df(4))?[0];
    Some(ChangePaths {
        description: "change scores last wave - baseline of imrs_client (X), bsi (M1), sfs (M2), mhrm (Y), pooled over \
                      arms, OLS with every baseline level as covariate (the reference mediation_change models)"
            .into(),
        n_participants: nc,
        a1: ca1,
        a2: ca2,
        b1: cb[1],
        b2: cb[2],
        c_prime: cb[0],
        c: cc,
        indirect_a1b1: product(ca1, cb[1]),
        indirect_a2b2: product(ca2, cb[2]),
    })
}

/// Baseline mean and SD of each instrument's score.
fn baseline_means(scores: &Scores) -> Vec<MeanSd> {
    let mut baseline = Vec::new();
    for (k, name) in INSTRUMENTS.iter().enumerate() {
        let xs: Vec<f64> = scores[k][0]
            .iter()
            .copied()
            .filter(|x| !x.is_nan())
            .collect();
        let (m, v) = mean_var(&xs);
        baseline.push(MeanSd {
            instrument: name.to_string(),
            mean: m,
            sd: v.sqrt(),
        });
    }
    baseline
}

/// Baseline correlations of every pair of instruments (pairwise complete).
fn baseline_correlations(scores: &Scores, n: usize) -> Vec<Correlation> {
    let mut baseline_cor = Vec::new();
    for k1 in 0..6 {
        for k2 in (k1 + 1)..6 {
            let pairs: Vec<(f64, f64)> = (0..n)
                .map(|i| (scores[k1][0][i], scores[k2][0][i]))
                .filter(|(a, b)| !a.is_nan() && !b.is_nan())
                .collect();
            let xa: Vec<f64> = pairs.iter().map(|p| p.0).collect();
            let xb: Vec<f64> = pairs.iter().map(|p| p.1).collect();
            let (ma, va) = mean_var(&xa);
            let (mb, vb) = mean_var(&xb);
            let cov = pairs.iter().map(|(a, b)| (a - ma) * (b - mb)).sum::<f64>()
                / (pairs.len() as f64 - 1.0);
            baseline_cor.push(Correlation {
                var1: INSTRUMENTS[k1].into(),
                var2: INSTRUMENTS[k2].into(),
                cor: cov / (va * vb).sqrt(),
            });
        }
    }
    baseline_cor
}

/// One-way ANOVA ICC of participants over all waves per instrument, on the residuals from
/// the arm x wave means of the complete participants.
fn person_iccs(scores: &Scores, complete: &[usize], arm: &[usize], nw: usize) -> Vec<Icc> {
    let nc = complete.len();
    let mut icc_person = Vec::new();
    for (k, name) in INSTRUMENTS.iter().enumerate() {
        // residuals from arm x wave means, complete participants
        let mut cell = vec![[0.0f64; 2]; nw];
        let mut cnt = vec![[0usize; 2]; nw];
        for &i in complete {
            for t in 0..nw {
                cell[t][arm[i]] += scores[k][t][i];
                cnt[t][arm[i]] += 1;
            }
        }
        let mut msb = 0.0;
        let mut msw = 0.0;
        for &i in complete {
            let r: Vec<f64> = (0..nw)
                .map(|t| scores[k][t][i] - cell[t][arm[i]] / cnt[t][arm[i]].max(1) as f64)
                .collect();
            let rm = r.iter().sum::<f64>() / nw as f64;
            msb += nw as f64 * rm * rm;
            msw += r.iter().map(|x| (x - rm).powi(2)).sum::<f64>();
        }
        msb /= nc as f64 - 1.0;
        msw /= (nc * (nw - 1)) as f64;
        icc_person.push(Icc {
            instrument: name.to_string(),
            icc: (msb - msw) / (msb + (nw as f64 - 1.0) * msw),
        });
    }
    icc_person
}

/// ANOVA ICC(1) of intervention-arm groups for one wave's scores, after removing site means.
fn group_icc(design: &super::design::TrialDesign, y: &[f64], n_sites: usize) -> Option<f64> {
    let members: Vec<(usize, usize, f64)> = design
        .persons
        .iter()
        .enumerate()
        .filter(|(i, p)| p.arm == 1 && p.group.is_some() && !y.get(*i).is_none_or(|v| v.is_nan()))
        .map(|(i, p)| (p.site, p.group.unwrap_or(0), y[i]))
        .collect();
    let mut site_sum = vec![0.0; n_sites];
    let mut site_n = vec![0usize; n_sites];
    for &(s, _, v) in &members {
        site_sum[s] += v;
        site_n[s] += 1;
    }
    let ng = design.groups.len();
    let mut gsum = vec![0.0; ng];
    let mut gn = vec![0usize; ng];
    let resid: Vec<(usize, f64)> = members
        .iter()
        .map(|&(s, g, v)| (g, v - site_sum[s] / site_n[s].max(1) as f64))
        .collect();
    for &(g, r) in &resid {
        gsum[g] += r;
        gn[g] += 1;
    }
    let groups_used = gn.iter().filter(|&&c| c > 0).count();
    let total = resid.len() as f64;
    if groups_used < 2 || resid.len() <= groups_used {
        return None;
    }
    let grand = resid.iter().map(|r| r.1).sum::<f64>() / total;
    let mut ssb = 0.0;
    for g in 0..ng {
        if gn[g] > 0 {
            ssb += gn[g] as f64 * (gsum[g] / gn[g] as f64 - grand).powi(2);
        }
    }
    let ssw: f64 = resid
        .iter()
        .map(|&(g, r)| (r - gsum[g] / gn[g] as f64).powi(2))
        .sum();
    let msb = ssb / (groups_used as f64 - 1.0);
    let msw = ssw / (total - groups_used as f64);
    let n0 = (total - gn.iter().map(|&c| (c * c) as f64).sum::<f64>() / total)
        / (groups_used as f64 - 1.0);
    Some((msb - msw) / (msb + (n0 - 1.0) * msw))
}
