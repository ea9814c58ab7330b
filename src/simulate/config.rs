//! Every parameter of the trial simulator, with defaults that follow the Dutch IMR trial
//! (Roosenschoon et al. 2021, Front Psychiatry 12:723435; "Simulation defaults" in
//! `docs/instruments.md`). The TOML file format is this struct: a `--config FILE` may set
//! any subset of the fields, the rest keep their defaults. `analyses/simulate-default.toml`
//! lists every field with a comment.
//!
//! Latent scales (see [`crate::simulate::model`]): `S` self-management on the IMRS item-mean
//! metric (1-5), `B` clinical recovery on the BSI GSI metric (0-4, higher = worse), `F`
//! functional recovery on the SFS scaled-score metric (mean of 7 subscales), `M` personal
//! recovery on the MHRM sum metric (0-120), `H` HoNOS on its sum metric (0-48, higher = worse).
use serde::{Deserialize, Serialize};

use super::dates;
use super::SimError;

/// Randomization design.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Design {
    /// Participants randomized one by one; only the intervention arm is in training groups
    /// (partially nested).
    Individual,
    /// Whole groups randomized; every participant belongs to a group.
    Cluster,
}

/// The complete simulator configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    pub study: StudyConfig,
    pub sites: Vec<SiteConfig>,
    pub recruitment: RecruitmentConfig,
    pub groups: GroupConfig,
    pub sessions: SessionsConfig,
    pub demographics: DemographicsConfig,
    pub latent: LatentConfig,
    pub effects: EffectsConfig,
    pub paths: PathsConfig,
    pub clinician: ClinicianConfig,
    pub instruments: InstrumentsConfig,
    pub missing: MissingConfig,
    pub dropout: DropoutConfig,
    pub admissions: AdmissionsConfig,
    pub truth: TruthConfig,
}

/// What study.toml says, plus the sample size and allocation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StudyConfig {
    pub name: String,
    /// Arm labels; the first is the control (reference) arm.
    pub arms: Vec<String>,
    /// The arm that receives IMR in groups.
    pub intervention: String,
    pub design: Design,
    /// Number of randomized participants.
    pub n_participants: usize,
    /// Allocation weights per arm (same order as `arms`); the permuted block size is their sum.
    pub allocation: Vec<usize>,
    /// Waves in order; the first is baseline.
    pub waves: Vec<WaveConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WaveConfig {
    pub label: String,
    pub months: f64,
}

/// One institution.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub site_id: String,
    pub site_name: String,
    /// Relative share of the participants recruited here.
    pub weight: f64,
    /// Treatment teams (randomization strata) at this site.
    pub teams: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecruitmentConfig {
    /// First possible randomization day (YYYY-MM-DD).
    pub start: String,
    /// Randomization days are uniform over this many days from `start`.
    pub duration_days: u32,
    /// Baseline is assessed 1..=this many days before randomization.
    pub baseline_max_days_before: u32,
    /// SD (days) of follow-up assessment dates around the nominal month (30.4375 days each).
    pub assessment_jitter_sd_days: f64,
    /// Share of assessment rows with an empty `assessed_on`.
    pub assessed_on_missing: f64,
    /// The export is made this many days after the last participant's last nominal wave.
    pub export_after_last_wave_days: u32,
}

/// IMR training groups (and clusters in the cluster design).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GroupConfig {
    pub size_min: usize,
    pub size_max: usize,
    /// Target mean size; the number of groups per site is round(n / size_mean) within the
    /// limits that `size_min` and `size_max` allow.
    pub size_mean: f64,
    /// IMR Fidelity Scale (mean of 13 items, 1-5) per IMR group: normal, clamped to 1-5.
    pub fidelity_mean: f64,
    pub fidelity_sd: f64,
    /// SD of the group effect on latent S at follow-up waves, intervention arm only
    /// (gives the group ICC of self-management in the IMR arm).
    pub effect_sd: f64,
    /// Cluster design only: SD of a group intercept on latent S at every wave in both arms.
    pub cluster_intercept_sd: f64,
}

/// IMR sessions attended (intervention arm).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Sessions offered.
    pub offered: u32,
    /// Share attending no session.
    pub none_share: f64,
    /// Starters attend 1 + Binomial(offered - 1, p) with logit(p) ~ N(logit_mean, logit_sd).
    pub logit_mean: f64,
    pub logit_sd: f64,
    /// Share of intervention participants whose count is not recorded (empty cell).
    pub missing_share: f64,
    /// Weight of attendance in the individual effect: multiplier (1 - w) + w * sessions/offered,
    /// rescaled so that its expectation over the arm is 1 (the configured effects are ITT means).
    pub dose_weight: f64,
    /// Change of the effect multiplier per fidelity point above `groups.fidelity_mean`.
    pub fidelity_slope: f64,
}

/// A labelled category with its probability.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub label: String,
    pub p: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DemographicsConfig {
    pub age_mean: f64,
    pub age_sd: f64,
    pub age_min: u32,
    pub age_max: u32,
    pub sex: Vec<Category>,
    pub diagnosis: Vec<Category>,
}

/// Parameters of one latent scale.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScaleParams {
    /// Latent mean at baseline.
    pub mean: f64,
    /// Change from baseline per wave in both arms (first entry 0), own part only (changes of S
    /// reach the other scales through the within-person paths).
    pub time: Vec<f64>,
    /// SD of the stable person effect.
    pub person_sd: f64,
    /// SD of the site effect.
    pub site_sd: f64,
    /// SD of the occasion (person x wave) residual.
    pub occasion_sd: f64,
}

/// Latent scales and the correlation of their person effects.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LatentConfig {
    /// S: self-management, IMRS item-mean metric.
    pub self_management: ScaleParams,
    /// B: clinical recovery (symptoms), BSI GSI metric, higher = worse.
    pub clinical: ScaleParams,
    /// F: functional recovery, SFS metric.
    pub functional: ScaleParams,
    /// M: personal recovery, MHRM sum metric.
    pub personal: ScaleParams,
    /// H: HoNOS sum metric, higher = worse.
    pub honos: ScaleParams,
    /// Correlation matrix of the person effects in the order S, B, F, M, H.
    pub person_cor: Vec<Vec<f64>>,
}

/// Arm effects (intervention minus control) per wave on the latent scales, first entry 0.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EffectsConfig {
    /// ITT mean effect on S (IMRS item-mean units) per wave.
    pub self_management: Vec<f64>,
    /// Direct effects on the other scales (beyond what flows from S through the paths).
    pub clinical: Vec<f64>,
    pub functional: Vec<f64>,
    pub personal: Vec<f64>,
    pub honos: Vec<f64>,
}

/// Within-person structural paths: every within-person deviation (wave effects, arm effect,
/// group effect, occasion residual) of the cause moves the effect by this much.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PathsConfig {
    /// a1: S -> B (GSI points per IMRS point).
    pub a1_clinical_on_self_management: f64,
    /// a2: S -> F (SFS points per IMRS point).
    pub a2_functional_on_self_management: f64,
    /// b1: B -> M (MHRM points per GSI point).
    pub b1_personal_on_clinical: f64,
    /// b2: F -> M (MHRM points per SFS point).
    pub b2_personal_on_functional: f64,
    /// c': S -> M direct (MHRM points per IMRS point).
    pub c_personal_on_self_management: f64,
    /// S -> H (HoNOS points per IMRS point).
    pub honos_on_self_management: f64,
    /// B -> H (HoNOS points per GSI point).
    pub honos_on_clinical: f64,
}

/// IMRS clinician version: S as seen by the clinician.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClinicianConfig {
    pub shift: f64,
    /// SD of a stable rater-by-person deviation.
    pub person_sd: f64,
    /// SD of the rating residual per wave.
    pub occasion_sd: f64,
}

/// Item generation for one instrument: item = clamp(round(latent per item + offset + noise)).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ItemSim {
    pub min: f64,
    pub max: f64,
    /// SD of the item noise.
    pub noise: f64,
    /// Item difficulty offsets (one per item; their count is the number of items).
    pub offsets: Vec<f64>,
    /// Decimals kept (0 = integer items; SFS subscales have 1).
    pub decimals: u32,
    /// SFS only: SD of a stable person x subscale deviation (profile); 0 elsewhere.
    pub profile_sd: f64,
}

/// Which instruments are collected and how their items are generated. The latent each one
/// reads: imrs_client S, imrs_clinician S (+ rater terms), mhrm M / 30 per item, bsi B,
/// sfs F, honos H / 12 per item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InstrumentsConfig {
    pub imrs_client: ItemSim,
    pub imrs_clinician: ItemSim,
    pub mhrm: ItemSim,
    pub bsi: ItemSim,
    pub sfs: ItemSim,
    pub honos: ItemSim,
}

/// Item-level and instrument-level missingness in the assessments that took place.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MissingConfig {
    /// Probability that an item is empty in an ordinary row.
    pub item_rate: f64,
    /// Share of instrument x row cells that are sloppy (item rate `item_rate_high`), so that
    /// some scores fall below the 80% rule.
    pub sloppy_share: f64,
    pub item_rate_high: f64,
    /// Probability that a whole instrument is not filled in at an assessment.
    pub instrument_omission: f64,
    /// HoNOS: probability that an item is coded 9 (not known).
    pub honos_not_known: f64,
    /// Share of participants for whom IMRS item 13 (medication) is not applicable at every wave
    /// (client and clinician versions).
    pub imrs_item13_not_applicable: f64,
    /// Share of missed waves written as a row with every item empty (else no row).
    pub empty_row_share: f64,
}

/// Missing waves: MAR, intermittent (a missed wave does not end participation).
/// P(miss wave w) = logistic(alpha_w + slope * z + previous * missed(w-1)), z = the observed
/// baseline IMRS client score, standardized (0 if missing); alpha_w is solved per trial so that
/// the expected share missing equals `target[w]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DropoutConfig {
    /// Target share missing per wave (baseline 0).
    pub target: Vec<f64>,
    /// Log-odds per SD of baseline self-management (negative: low self-management drops out).
    pub slope_baseline_imrs: f64,
    /// Log-odds added when the previous wave was missed.
    pub previous_missed: f64,
}

/// Psychiatric admissions: an alternating process per participant. Time out of hospital until
/// the next admission is exponential with rate `rate_per_year` x G x
/// exp(honos_log_slope z_H − honos_log_slope^2 / 2) (x `rate_ratio` after randomization in the
/// intervention arm),
/// G ~ Gamma(k, 1/k) (so counts over a fixed window are negative binomial with size k);
/// lengths of stay are lognormal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionsConfig {
    /// Admissions per person-year at risk (out of hospital). Time in hospital is not at risk,
    /// so the rate per calendar person-year is lower: the default 0.27 gives about 0.25.
    pub rate_per_year: f64,
    /// Negative-binomial size k (gamma frailty shape); smaller = more overdispersed.
    pub nb_k: f64,
    /// The person frailty's distribution: `gamma` (shape and rate `nb_k`: whole-follow-up
    /// counts negative binomial, default) or `lognormal` (`exp(s Z - s^2 / 2)` with the same
    /// variance `1 / nb_k`, `s^2 = log(1 + 1 / nb_k)`: the normal random intercept of the
    /// per-period GLMMs holds exactly).
    #[serde(skip_serializing_if = "Frailty::is_gamma")]
    pub frailty: Frailty,
    /// Intervention / control rate ratio after randomization.
    pub rate_ratio: f64,
    /// Intervention / control rate ratio in each period between consecutive waves (one per
    /// period; the last continues after the last wave), in place of `rate_ratio` (which must
    /// then stay 1): the per-period truth of the admission GLMMs. Empty = `rate_ratio` in every
    /// period.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_ratio_by_period: Vec<f64>,
    /// Admission history generated from this many days before randomization.
    pub history_days: u32,
    /// Log rate per SD of the person HoNOS effect (mean-preserving).
    pub honos_log_slope: f64,
    pub los_median_days: f64,
    pub los_sdlog: f64,
    pub los_min_days: u32,
    pub los_max_days: u32,
    /// Minimum days between a discharge and the next admission.
    pub min_gap_days: u32,
    /// P(involuntary) = logistic(involuntary_logit + involuntary_honos x z_H).
    pub involuntary_logit: f64,
    pub involuntary_honos: f64,
}

/// The distribution of the admission frailty (`admissions.frailty`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Frailty {
    #[default]
    Gamma,
    Lognormal,
}

impl Frailty {
    fn is_gamma(&self) -> bool {
        *self == Frailty::Gamma
    }
}

/// How the observed-scale truths are computed (one very large trial).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TruthConfig {
    pub n_participants: usize,
    /// Fixed seed, so the truth is the same for every trial made with the same parameters.
    pub seed: u64,
}

fn v(x: &[f64]) -> Vec<f64> {
    x.to_vec()
}

/// Evenly spread item offsets in a scrambled order: values from -spread/2 to +spread/2.
fn offsets(n: usize, spread: f64, step: usize) -> Vec<f64> {
    if n < 2 {
        return vec![0.0; n];
    }
    (0..n)
        .map(|j| {
            let r = (j * step) % n;
            let x = spread * (r as f64 / (n - 1) as f64 - 0.5);
            (x * 1000.0).round() / 1000.0
        })
        .collect()
}

impl Default for StudyConfig {
    fn default() -> Self {
        StudyConfig {
            name: "IMR multicentre RCT (simulated)".into(),
            arms: vec!["CAU".into(), "IMR".into()],
            intervention: "IMR".into(),
            design: Design::Individual,
            n_participants: 190,
            allocation: vec![2, 3],
            waves: vec![
                WaveConfig {
                    label: "T1".into(),
                    months: 0.0,
                },
                WaveConfig {
                    label: "T2".into(),
                    months: 12.0,
                },
                WaveConfig {
                    label: "T3".into(),
                    months: 18.0,
                },
            ],
        }
    }
}

impl Default for RecruitmentConfig {
    fn default() -> Self {
        RecruitmentConfig {
            start: "2013-09-02".into(),
            duration_days: 540,
            baseline_max_days_before: 28,
            assessment_jitter_sd_days: 14.0,
            assessed_on_missing: 0.03,
            export_after_last_wave_days: 120,
        }
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            size_min: 6,
            size_max: 10,
            size_mean: 7.6,
            fidelity_mean: 3.94,
            fidelity_sd: 0.29,
            effect_sd: 0.13,
            cluster_intercept_sd: 0.08,
        }
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            offered: 40,
            none_share: 0.18,
            logit_mean: 0.4,
            logit_sd: 1.5,
            missing_share: 0.02,
            dose_weight: 0.6,
            fidelity_slope: 0.3,
        }
    }
}

impl Default for DemographicsConfig {
    fn default() -> Self {
        let c = |label: &str, p: f64| Category {
            label: label.into(),
            p,
        };
        DemographicsConfig {
            age_mean: 44.0,
            age_sd: 10.5,
            age_min: 18,
            age_max: 70,
            sex: vec![c("female", 0.45), c("male", 0.53), c("other", 0.02)],
            diagnosis: vec![
                c("schizophrenia spectrum", 0.55),
                c("bipolar", 0.15),
                c("depression", 0.1),
                c("personality", 0.12),
                c("other", 0.08),
            ],
        }
    }
}

impl Default for LatentConfig {
    fn default() -> Self {
        let s =
            |mean: f64, time: &[f64], person_sd: f64, site_sd: f64, occasion_sd: f64| ScaleParams {
                mean,
                time: v(time),
                person_sd,
                site_sd,
                occasion_sd,
            };
        LatentConfig {
            // Tuned so that the *scored* baseline marginals of the truth trial match the
            // "Simulation defaults" (means, SDs, person ICC ~.6, correlations); latent means
            // and SDs differ from the scored ones by rounding, clamping and item noise.
            self_management: s(3.5, &[0.0, 0.05, 0.07], 0.445, 0.08, 0.34),
            clinical: s(1.05, &[0.0, -0.03, -0.04], 0.66, 0.09, 0.5),
            functional: s(111.2, &[0.0, 0.5, 0.7], 6.6, 1.3, 5.2),
            personal: s(79.2, &[0.0, 1.0, 1.5], 14.3, 2.5, 11.2),
            honos: s(9.0, &[0.0, -0.3, -0.4], 4.9, 0.8, 3.0),
            person_cor: vec![
                v(&[1.0, -0.62, 0.5, 0.9, -0.3]),
                v(&[-0.62, 1.0, -0.6, -0.76, 0.5]),
                v(&[0.5, -0.6, 1.0, 0.68, -0.35]),
                v(&[0.9, -0.76, 0.68, 1.0, -0.4]),
                v(&[-0.3, 0.5, -0.35, -0.4, 1.0]),
            ],
        }
    }
}

impl Default for EffectsConfig {
    fn default() -> Self {
        EffectsConfig {
            self_management: v(&[0.0, 0.12, 0.2]),
            clinical: v(&[0.0, 0.0, 0.0]),
            functional: v(&[0.0, 0.0, 0.0]),
            personal: v(&[0.0, 0.0, 0.0]),
            honos: v(&[0.0, 0.0, 0.0]),
        }
    }
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            a1_clinical_on_self_management: -0.35,
            a2_functional_on_self_management: 4.0,
            b1_personal_on_clinical: -4.0,
            b2_personal_on_functional: 0.2,
            c_personal_on_self_management: 6.0,
            honos_on_self_management: -1.0,
            honos_on_clinical: 2.5,
        }
    }
}

impl Default for ClinicianConfig {
    fn default() -> Self {
        ClinicianConfig {
            shift: -0.1,
            person_sd: 0.25,
            occasion_sd: 0.22,
        }
    }
}

impl Default for InstrumentsConfig {
    fn default() -> Self {
        let items = |min: f64, max: f64, noise: f64, offsets: Vec<f64>| ItemSim {
            min,
            max,
            noise,
            offsets,
            decimals: 0,
            profile_sd: 0.0,
        };
        InstrumentsConfig {
            imrs_client: items(1.0, 5.0, 0.65, offsets(15, 1.1, 7)),
            imrs_clinician: items(1.0, 5.0, 0.55, offsets(15, 1.0, 4)),
            mhrm: items(0.0, 4.0, 0.75, offsets(30, 1.0, 7)),
            bsi: items(0.0, 4.0, 0.7, offsets(53, 1.2, 12)),
            sfs: ItemSim {
                min: 55.0,
                max: 145.0,
                noise: 5.0,
                offsets: v(&[-4.0, 3.0, 6.0, 2.0, -3.0, -6.0, 2.0]),
                decimals: 1,
                profile_sd: 5.0,
            },
            honos: items(0.0, 4.0, 0.6, offsets(12, 1.0, 5)),
        }
    }
}

impl Default for MissingConfig {
    fn default() -> Self {
        MissingConfig {
            item_rate: 0.015,
            sloppy_share: 0.05,
            item_rate_high: 0.2,
            instrument_omission: 0.015,
            honos_not_known: 0.02,
            imrs_item13_not_applicable: 0.05,
            empty_row_share: 0.3,
        }
    }
}

impl Default for DropoutConfig {
    fn default() -> Self {
        DropoutConfig {
            target: v(&[0.0, 0.165, 0.12]),
            slope_baseline_imrs: -0.4,
            previous_missed: 1.5,
        }
    }
}

impl Default for AdmissionsConfig {
    fn default() -> Self {
        AdmissionsConfig {
            rate_per_year: 0.27,
            nb_k: 0.4,
            frailty: Frailty::Gamma,
            rate_ratio: 1.0,
            rate_ratio_by_period: Vec::new(),
            history_days: 730,
            honos_log_slope: 0.3,
            los_median_days: 25.0,
            los_sdlog: 0.8,
            los_min_days: 1,
            los_max_days: 365,
            min_gap_days: 1,
            involuntary_logit: -1.6,
            involuntary_honos: 0.4,
        }
    }
}

impl Default for TruthConfig {
    fn default() -> Self {
        TruthConfig {
            n_participants: 200_000,
            seed: 20_240,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            study: StudyConfig::default(),
            sites: vec![
                SiteConfig {
                    site_id: "S1".into(),
                    site_name: "GGZ Noord".into(),
                    weight: 0.55,
                    teams: 4,
                },
                SiteConfig {
                    site_id: "S2".into(),
                    site_name: "GGZ Zuid, locatie Centrum".into(),
                    weight: 0.45,
                    teams: 3,
                },
            ],
            recruitment: RecruitmentConfig::default(),
            groups: GroupConfig::default(),
            sessions: SessionsConfig::default(),
            demographics: DemographicsConfig::default(),
            latent: LatentConfig::default(),
            effects: EffectsConfig::default(),
            paths: PathsConfig::default(),
            clinician: ClinicianConfig::default(),
            instruments: InstrumentsConfig::default(),
            missing: MissingConfig::default(),
            dropout: DropoutConfig::default(),
            admissions: AdmissionsConfig::default(),
            truth: TruthConfig::default(),
        }
    }
}

fn invalid(field: &str, value: impl std::fmt::Display, expected: &str) -> SimError {
    SimError::InvalidConfig {
        field: field.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

fn check_prob(field: &str, p: f64) -> Result<(), SimError> {
    if p.is_finite() && (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(invalid(field, p, "a probability in [0, 1]"))
    }
}

fn check_nonneg(field: &str, x: f64) -> Result<(), SimError> {
    if x.is_finite() && x >= 0.0 {
        Ok(())
    } else {
        Err(invalid(field, x, "a finite number >= 0"))
    }
}

fn check_finite(field: &str, x: f64) -> Result<(), SimError> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(invalid(field, x, "a finite number"))
    }
}

fn check_per_wave(field: &str, xs: &[f64], n_waves: usize) -> Result<(), SimError> {
    if xs.len() != n_waves {
        return Err(invalid(
            field,
            format!("{} values", xs.len()),
            &format!("one value per wave ({n_waves})"),
        ));
    }
    for x in xs {
        check_finite(field, *x)?;
    }
    Ok(())
}

fn check_categories(field: &str, cats: &[Category]) -> Result<(), SimError> {
    if cats.is_empty() {
        return Err(invalid(field, "[]", "at least one category"));
    }
    for c in cats {
        check_nonneg(field, c.p)?;
    }
    if cats.iter().map(|c| c.p).sum::<f64>() <= 0.0 {
        return Err(invalid(
            field,
            "all p = 0",
            "probabilities with a positive sum",
        ));
    }
    Ok(())
}

impl SimConfig {
    /// Reads a TOML configuration: every field is optional and defaults to the Dutch trial.
    pub fn from_toml_str(text: &str) -> Result<SimConfig, SimError> {
        let cfg: SimConfig = toml::from_str(text).map_err(|e| SimError::ConfigParse {
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Number of waves.
    pub fn n_waves(&self) -> usize {
        self.study.waves.len()
    }

    /// Index of the intervention arm in `study.arms`.
    pub fn intervention_index(&self) -> Option<usize> {
        self.study
            .arms
            .iter()
            .position(|a| *a == self.study.intervention)
    }

    /// Checks every parameter; the error names the field, the value and what was expected.
    pub fn validate(&self) -> Result<(), SimError> {
        self.check_study()?;
        self.check_sites()?;
        self.check_recruitment()?;
        self.check_groups_and_sessions()?;
        self.check_demographics()?;
        self.check_latent()?;
        self.check_effects_paths_clinician()?;
        self.check_instruments()?;
        self.check_missing_and_dropout()?;
        self.check_admissions_and_truth()?;
        Ok(())
    }

    /// `[study]`: two distinct arms with the intervention second, participants, allocation
    /// weights and the waves (increasing months from 0, unique labels).
    fn check_study(&self) -> Result<(), SimError> {
        let st = &self.study;
        if st.arms.len() != 2 {
            return Err(invalid(
                "study.arms",
                format!("{:?}", st.arms),
                "two arms: control first, then the intervention",
            ));
        }
        if st.arms[0] == st.arms[1] {
            return Err(invalid(
                "study.arms",
                format!("{:?}", st.arms),
                "two different labels",
            ));
        }
        if self.intervention_index() != Some(1) {
            return Err(invalid(
                "study.intervention",
                &st.intervention,
                "the second label of study.arms",
            ));
        }
        if st.n_participants < 2 {
            return Err(invalid(
                "study.n_participants",
                st.n_participants,
                "at least 2",
            ));
        }
        if st.allocation.len() != 2 || st.allocation.contains(&0) {
            return Err(invalid(
                "study.allocation",
                format!("{:?}", st.allocation),
                "two positive weights",
            ));
        }
        if st.waves.len() < 2 {
            return Err(invalid("study.waves", st.waves.len(), "at least two waves"));
        }
        for (i, w) in st.waves.iter().enumerate() {
            check_nonneg("study.waves.months", w.months)?;
            if w.label.is_empty() || w.label.contains(',') {
                return Err(invalid(
                    "study.waves.label",
                    &w.label,
                    "a non-empty label without commas",
                ));
            }
            if i > 0 && w.months <= st.waves[i - 1].months {
                return Err(invalid("study.waves.months", w.months, "increasing months"));
            }
            if st.waves[..i].iter().any(|o| o.label == w.label) {
                return Err(invalid("study.waves.label", &w.label, "unique wave labels"));
            }
        }
        if st.waves[0].months != 0.0 {
            return Err(invalid(
                "study.waves.months",
                st.waves[0].months,
                "0 for the baseline wave",
            ));
        }
        Ok(())
    }

    /// `[[sites]]`: at least one, unique ids, teams, weights with a positive sum.
    fn check_sites(&self) -> Result<(), SimError> {
        if self.sites.is_empty() {
            return Err(invalid("sites", "[]", "at least one site"));
        }
        for (i, s) in self.sites.iter().enumerate() {
            check_nonneg("sites.weight", s.weight)?;
            if s.teams == 0 {
                return Err(invalid("sites.teams", 0, "at least one team"));
            }
            if s.site_id.is_empty()
                || s.site_id.contains(',')
                || self.sites[..i].iter().any(|o| o.site_id == s.site_id)
            {
                return Err(invalid(
                    "sites.site_id",
                    &s.site_id,
                    "unique non-empty ids without commas",
                ));
            }
        }
        if self.sites.iter().map(|s| s.weight).sum::<f64>() <= 0.0 {
            return Err(invalid(
                "sites.weight",
                "all 0",
                "weights with a positive sum",
            ));
        }
        Ok(())
    }

    /// `[recruitment]`: start date, jitter, missing dates, the baseline window.
    fn check_recruitment(&self) -> Result<(), SimError> {
        dates::parse_date(&self.recruitment.start).ok_or_else(|| {
            invalid(
                "recruitment.start",
                &self.recruitment.start,
                "a date YYYY-MM-DD",
            )
        })?;
        check_nonneg(
            "recruitment.assessment_jitter_sd_days",
            self.recruitment.assessment_jitter_sd_days,
        )?;
        check_prob(
            "recruitment.assessed_on_missing",
            self.recruitment.assessed_on_missing,
        )?;
        if self.recruitment.baseline_max_days_before == 0 {
            return Err(invalid(
                "recruitment.baseline_max_days_before",
                0,
                "at least 1",
            ));
        }
        Ok(())
    }

    /// `[groups]` (sizes, fidelity, effects) and `[sessions]` (offered, attendance, dose).
    fn check_groups_and_sessions(&self) -> Result<(), SimError> {
        let g = &self.groups;
        if g.size_min == 0 || g.size_max < g.size_min {
            return Err(invalid(
                "groups.size_min/size_max",
                format!("{}/{}", g.size_min, g.size_max),
                "1 <= size_min <= size_max",
            ));
        }
        if !(g.size_mean.is_finite() && g.size_mean >= 1.0) {
            return Err(invalid("groups.size_mean", g.size_mean, "a number >= 1"));
        }
        check_finite("groups.fidelity_mean", g.fidelity_mean)?;
        check_nonneg("groups.fidelity_sd", g.fidelity_sd)?;
        check_nonneg("groups.effect_sd", g.effect_sd)?;
        check_nonneg("groups.cluster_intercept_sd", g.cluster_intercept_sd)?;
        let se = &self.sessions;
        if se.offered == 0 {
            return Err(invalid("sessions.offered", 0, "at least 1"));
        }
        check_prob("sessions.none_share", se.none_share)?;
        check_finite("sessions.logit_mean", se.logit_mean)?;
        check_nonneg("sessions.logit_sd", se.logit_sd)?;
        check_prob("sessions.missing_share", se.missing_share)?;
        check_prob("sessions.dose_weight", se.dose_weight)?;
        check_finite("sessions.fidelity_slope", se.fidelity_slope)?;
        Ok(())
    }

    /// `[demographics]`: age and the sex and diagnosis categories.
    fn check_demographics(&self) -> Result<(), SimError> {
        let d = &self.demographics;
        check_finite("demographics.age_mean", d.age_mean)?;
        check_nonneg("demographics.age_sd", d.age_sd)?;
        if d.age_max < d.age_min {
            return Err(invalid(
                "demographics.age_max",
                d.age_max,
                "at least age_min",
            ));
        }
        check_categories("demographics.sex", &d.sex)?;
        check_categories("demographics.diagnosis", &d.diagnosis)?;
        Ok(())
    }

    /// `[latent]`: each latent variable's mean, time course and SDs, and the 5 x 5 person
    /// correlation matrix (symmetric, unit diagonal, positive definite).
    fn check_latent(&self) -> Result<(), SimError> {
        let nw = self.n_waves();
        let l = &self.latent;
        for (name, s) in [
            ("latent.self_management", &l.self_management),
            ("latent.clinical", &l.clinical),
            ("latent.functional", &l.functional),
            ("latent.personal", &l.personal),
            ("latent.honos", &l.honos),
        ] {
            check_finite(&format!("{name}.mean"), s.mean)?;
            check_per_wave(&format!("{name}.time"), &s.time, nw)?;
            check_nonneg(&format!("{name}.person_sd"), s.person_sd)?;
            check_nonneg(&format!("{name}.site_sd"), s.site_sd)?;
            check_nonneg(&format!("{name}.occasion_sd"), s.occasion_sd)?;
        }
        if l.person_cor.len() != 5 || l.person_cor.iter().any(|r| r.len() != 5) {
            return Err(invalid(
                "latent.person_cor",
                "wrong shape",
                "a 5 x 5 matrix (S, B, F, M, H)",
            ));
        }
        for i in 0..5 {
            for j in 0..5 {
                let x = l.person_cor[i][j];
                if !x.is_finite()
                    || x.abs() > 1.0
                    || (i == j && x != 1.0)
                    || x != l.person_cor[j][i]
                {
                    return Err(invalid(
                        "latent.person_cor",
                        x,
                        "a symmetric correlation matrix with unit diagonal",
                    ));
                }
            }
        }
        if super::model::cholesky5(&l.person_cor).is_none() {
            return Err(invalid(
                "latent.person_cor",
                "not positive definite",
                "a positive definite correlation matrix",
            ));
        }
        Ok(())
    }

    /// `[effects]` per wave, the `[paths]` coefficients and the `[clinician]` rating parameters.
    fn check_effects_paths_clinician(&self) -> Result<(), SimError> {
        let nw = self.n_waves();
        let e = &self.effects;
        check_per_wave("effects.self_management", &e.self_management, nw)?;
        check_per_wave("effects.clinical", &e.clinical, nw)?;
        check_per_wave("effects.functional", &e.functional, nw)?;
        check_per_wave("effects.personal", &e.personal, nw)?;
        check_per_wave("effects.honos", &e.honos, nw)?;
        let p = &self.paths;
        for (name, x) in [
            (
                "paths.a1_clinical_on_self_management",
                p.a1_clinical_on_self_management,
            ),
            (
                "paths.a2_functional_on_self_management",
                p.a2_functional_on_self_management,
            ),
            ("paths.b1_personal_on_clinical", p.b1_personal_on_clinical),
            (
                "paths.b2_personal_on_functional",
                p.b2_personal_on_functional,
            ),
            (
                "paths.c_personal_on_self_management",
                p.c_personal_on_self_management,
            ),
            ("paths.honos_on_self_management", p.honos_on_self_management),
            ("paths.honos_on_clinical", p.honos_on_clinical),
        ] {
            check_finite(name, x)?;
        }
        check_finite("clinician.shift", self.clinician.shift)?;
        check_nonneg("clinician.person_sd", self.clinician.person_sd)?;
        check_nonneg("clinician.occasion_sd", self.clinician.occasion_sd)?;
        Ok(())
    }

    /// `[instruments]`: item offsets, ranges, noise and decimals; HoNOS below its not-known code 9.
    fn check_instruments(&self) -> Result<(), SimError> {
        let ins = &self.instruments;
        for (name, it, min_items) in [
            ("instruments.imrs_client", &ins.imrs_client, 13),
            ("instruments.imrs_clinician", &ins.imrs_clinician, 13),
            ("instruments.mhrm", &ins.mhrm, 1),
            ("instruments.bsi", &ins.bsi, 1),
            ("instruments.sfs", &ins.sfs, 1),
            ("instruments.honos", &ins.honos, 1),
        ] {
            if it.offsets.len() < min_items || it.offsets.len() > 99 {
                return Err(invalid(
                    &format!("{name}.offsets"),
                    format!("{} items", it.offsets.len()),
                    &format!("between {min_items} and 99 offsets (one per item)"),
                ));
            }
            for x in &it.offsets {
                check_finite(&format!("{name}.offsets"), *x)?;
            }
            check_finite(&format!("{name}.min"), it.min)?;
            if !(it.max.is_finite() && it.max > it.min) {
                return Err(invalid(
                    &format!("{name}.max"),
                    it.max,
                    "a number above min",
                ));
            }
            check_nonneg(&format!("{name}.noise"), it.noise)?;
            check_nonneg(&format!("{name}.profile_sd"), it.profile_sd)?;
            if it.decimals > 3 {
                return Err(invalid(&format!("{name}.decimals"), it.decimals, "0 to 3"));
            }
        }
        if ins.honos.max >= 9.0 {
            return Err(invalid(
                "instruments.honos.max",
                ins.honos.max,
                "below the not-known code 9",
            ));
        }
        Ok(())
    }

    /// `[missing]` shares and `[dropout]` targets per wave (0 at baseline) and slopes.
    fn check_missing_and_dropout(&self) -> Result<(), SimError> {
        let nw = self.n_waves();
        let m = &self.missing;
        check_prob("missing.item_rate", m.item_rate)?;
        check_prob("missing.sloppy_share", m.sloppy_share)?;
        check_prob("missing.item_rate_high", m.item_rate_high)?;
        check_prob("missing.instrument_omission", m.instrument_omission)?;
        check_prob("missing.honos_not_known", m.honos_not_known)?;
        check_prob(
            "missing.imrs_item13_not_applicable",
            m.imrs_item13_not_applicable,
        )?;
        check_prob("missing.empty_row_share", m.empty_row_share)?;
        let dr = &self.dropout;
        check_per_wave("dropout.target", &dr.target, nw)?;
        for (w, t) in dr.target.iter().enumerate() {
            if w == 0 && *t != 0.0 {
                return Err(invalid(
                    "dropout.target",
                    t,
                    "0 at baseline (everyone randomized has a baseline)",
                ));
            }
            if !(0.0..1.0).contains(t) {
                return Err(invalid("dropout.target", t, "a share in [0, 1)"));
            }
        }
        check_finite("dropout.slope_baseline_imrs", dr.slope_baseline_imrs)?;
        check_finite("dropout.previous_missed", dr.previous_missed)?;
        Ok(())
    }

    /// `[admissions]` rates and lengths of stay, and the `[truth]` sample size.
    fn check_admissions_and_truth(&self) -> Result<(), SimError> {
        let a = &self.admissions;
        check_nonneg("admissions.rate_per_year", a.rate_per_year)?;
        if !(a.nb_k.is_finite() && a.nb_k > 0.0) {
            return Err(invalid("admissions.nb_k", a.nb_k, "a number > 0"));
        }
        check_nonneg("admissions.rate_ratio", a.rate_ratio)?;
        if !a.rate_ratio_by_period.is_empty() {
            let periods = self.study.waves.len().saturating_sub(1);
            if a.rate_ratio_by_period.len() != periods {
                return Err(invalid(
                    "admissions.rate_ratio_by_period",
                    format!("{} values", a.rate_ratio_by_period.len()),
                    &format!("one per period between waves ({periods})"),
                ));
            }
            if a.rate_ratio != 1.0 {
                return Err(invalid(
                    "admissions.rate_ratio",
                    a.rate_ratio,
                    "1 when rate_ratio_by_period is given (set one of them)",
                ));
            }
            for &r in &a.rate_ratio_by_period {
                check_nonneg("admissions.rate_ratio_by_period", r)?;
            }
        }
        check_finite("admissions.honos_log_slope", a.honos_log_slope)?;
        if !(a.los_median_days.is_finite() && a.los_median_days > 0.0) {
            return Err(invalid(
                "admissions.los_median_days",
                a.los_median_days,
                "a number > 0",
            ));
        }
        check_nonneg("admissions.los_sdlog", a.los_sdlog)?;
        if a.los_min_days == 0 || a.los_max_days < a.los_min_days {
            return Err(invalid(
                "admissions.los_min_days/los_max_days",
                format!("{}/{}", a.los_min_days, a.los_max_days),
                "1 <= min <= max",
            ));
        }
        check_finite("admissions.involuntary_logit", a.involuntary_logit)?;
        check_finite("admissions.involuntary_honos", a.involuntary_honos)?;
        if self.truth.n_participants < 100 {
            return Err(invalid(
                "truth.n_participants",
                self.truth.n_participants,
                "at least 100",
            ));
        }
        Ok(())
    }
}
