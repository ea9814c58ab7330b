//! Trial simulator: a documented latent model whose defaults follow the Dutch IMR trial
//! (Roosenschoon et al. 2021, Front Psychiatry 12:723435), written as a trial export
//! (`docs/trial-export.md`) plus `truth.json`.
//!
//! ```no_run
//! use herstel::simulate::{simulate, SimConfig};
//! let trial = simulate(&SimConfig::default(), 42).unwrap();   // in memory, milliseconds
//! // observed-scale truths: cached for the default parameters, else computed here (seconds)
//! let trial = trial.with_observed_scale().unwrap();
//! trial.write(std::path::Path::new("demo-trial")).unwrap();
//! ```
//!
//! The model is described in [`model`]; missing data in [`missing`]; admissions in
//! [`admissions`]; the observed-scale truths in [`observed`]. Randomness comes only from
//! ChaCha8 streams seeded with the seed (one stream per component), so the same seed and
//! configuration give the same bytes.
pub mod admissions;
pub mod config;
pub mod dates;
pub mod design;
pub mod export;
pub mod missing;
pub mod model;
pub mod observed;
mod rng;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use config::{Design, SimConfig};
pub use observed::{Estimate, ObservedScale};

use missing::WaveStatus;
use model::INSTRUMENTS;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulation config: `{field}` is {value}, expected {expected}")]
    InvalidConfig {
        field: String,
        value: String,
        expected: String,
    },
    #[error("simulation config: {message}")]
    ConfigParse { message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("truth.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("observed-scale truth: the large trial has too few complete participants")]
    ObservedScale,
}

/// A latent effect per wave.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatentEffect {
    pub scale: String,
    /// The instrument(s) measuring it.
    pub instrument: String,
    /// Intervention minus control on the latent scale, per wave.
    pub by_wave: Vec<f64>,
}

/// Effects implied by the parameters on the latent scales.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImpliedEffects {
    pub description: String,
    pub waves: Vec<String>,
    pub arm_differences: Vec<LatentEffect>,
    pub within_a1: f64,
    pub within_a2: f64,
    pub within_b1: f64,
    pub within_b2: f64,
    pub within_c_prime: f64,
    pub within_indirect_a1b1: f64,
    pub within_indirect_a2b2: f64,
    /// c' + a1 b1 + a2 b2: total within-person effect of S on M.
    pub within_total: f64,
    /// h_S + h_B a1: total within-person effect of S on H.
    pub within_honos_total: f64,
    /// Expected sessions attended in the intervention arm.
    pub expected_sessions: f64,
    /// Latent baseline variance shares of S: person, site, occasion (item noise excluded).
    pub self_management_variance_shares: [f64; 3],
    pub admissions_rate_ratio: f64,
    /// The intervention / control admission rate ratio per period between waves (`T1_T2`).
    #[serde(default)]
    pub admissions_rate_ratio_by_period: Vec<PeriodRateRatio>,
}

/// The true admission rate ratio of one period between waves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeriodRateRatio {
    /// `T1_T2`: the waves that start and end the period.
    pub period: String,
    pub rate_ratio: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Count {
    pub label: String,
    pub n: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SiteRealised {
    pub site_id: String,
    pub n_control: usize,
    pub n_intervention: usize,
    /// Latent site effects on S, B, F, M, H.
    pub effects: [f64; 5],
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupRealised {
    pub group_id: String,
    pub site_id: String,
    pub arm: String,
    pub size: usize,
    pub fidelity: Option<f64>,
    /// IMR group effect on S at follow-up waves.
    pub effect: f64,
    /// Cluster design: group intercept on S.
    pub intercept: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaveRealised {
    pub wave: String,
    pub share_missed: f64,
    pub rows_absent: usize,
    pub rows_all_empty: usize,
    /// Intercept of the MAR dropout model solved for the target share.
    pub dropout_intercept: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScoreRealised {
    pub instrument: String,
    /// Assessed participant x waves whose score is missing by the 80% rule.
    pub below_80_percent: usize,
    pub valid: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AdmissionsRealised {
    pub episodes: usize,
    pub before_randomization: usize,
    pub after_randomization: usize,
    /// Follow-up window: randomization (day 0) to the last wave's nominal day.
    pub follow_up_days: i64,
    pub episodes_in_follow_up: usize,
    pub person_years_follow_up: f64,
    pub rate_per_person_year_follow_up: f64,
    pub in_prior_year: usize,
    pub still_admitted_at_export: usize,
    pub median_length_of_stay_days: Option<f64>,
    pub involuntary: usize,
}

/// What this particular trial turned out to be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Realised {
    pub n_participants: usize,
    pub arms: Vec<Count>,
    pub sites: Vec<SiteRealised>,
    pub groups: Vec<GroupRealised>,
    pub export_date: String,
    pub sessions_none_share_intervention: f64,
    pub sessions_half_or_more_share_intervention: f64,
    pub sessions_mean_intervention: f64,
    pub sessions_not_recorded: usize,
    pub mean_effect_multiplier_intervention: f64,
    pub waves: Vec<WaveRealised>,
    pub item_cells_empty_share_assessed_rows: f64,
    pub honos_not_known_cells: usize,
    pub imrs_item13_not_applicable_participants: usize,
    pub scores: Vec<ScoreRealised>,
    pub admissions: AdmissionsRealised,
}

/// truth.json: parameters, implied and realised values, and the observed-scale truths.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Truth {
    pub generator: String,
    pub herstel_version: String,
    pub seed: u64,
    pub rng: String,
    pub model: Vec<String>,
    pub parameters: SimConfig,
    pub implied_effects: ImpliedEffects,
    pub realised: Realised,
    /// Present for the default parameters (cached, see [`observed`]) and after
    /// [`SimulatedTrial::with_observed_scale`]; `herstel simulate` always writes it unless
    /// `--skip-observed-scale`.
    pub observed_scale: Option<ObservedScale>,
    /// Where `observed_scale` comes from (cached defaults, computed now, or not computed).
    pub observed_scale_origin: String,
}

/// A simulated trial: the export tables as CSV/TOML text and its truth.
#[derive(Debug, Clone)]
pub struct SimulatedTrial {
    pub config: SimConfig,
    pub study_toml: String,
    pub sites_csv: String,
    pub groups_csv: String,
    pub participants_csv: String,
    pub assessments_csv: String,
    pub admissions_csv: String,
    pub truth: Truth,
}

const CACHED_ORIGIN: &str =
    "cached: computed for the default parameters (which these equal in everything the \
     truth depends on) by herstel::simulate::observed::observed_scale and stored in \
     src/simulate/default_observed_scale.json; see observed_scale.description";

fn model_text() -> Vec<String> {
    vec![
        "Latent scales on the metric of their scored outcome: S self-management (IMRS item mean), B clinical \
         recovery (BSI GSI, higher = worse), F functional recovery (SFS), M personal recovery (MHRM sum), H HoNOS sum."
            .into(),
        "Each = stable part P (latent.<scale>.mean + site effect + person effect; person effects correlated by \
         latent.person_cor; cluster design: + group intercept on S) + within-person part w."
            .into(),
        "wS = time_S[t] + e_S + IMR * (effects.self_management[t] * m_i + [t > 0] v_g); v_g ~ N(0, groups.effect_sd); \
         m_i = dose multiplier ((1 - w) + w sessions/offered, over its expectation) x (1 + fidelity_slope (fidelity_g - \
         fidelity_mean))."
            .into(),
        "wB = time_B[t] + a1 wS + e_B + IMR effects.clinical[t]; wF = time_F[t] + a2 wS + e_F + IMR effects.functional[t]."
            .into(),
        "wM = time_M[t] + c' wS + b1 wB + b2 wF + e_M + IMR effects.personal[t]; wH = time_H[t] + h_S wS + h_B wB + e_H + \
         IMR effects.honos[t] (HoNOS beside the chain)."
            .into(),
        "Items: clamp(round(latent per item + offset_j + N(0, noise))): IMRS client S; IMRS clinician S + shift + rater \
         person + rater occasion; BSI B; MHRM M / 30; HoNOS H / 12; SFS subscales F + person x subscale profile, one \
         decimal."
            .into(),
        "Missed waves MAR: logit P(miss wave t) = alpha_t + slope z(observed baseline IMRS client) + previous * missed(t-1), \
         alpha_t solved so the expected share equals dropout.target[t]; missed waves are intermittent."
            .into(),
        "Admissions: alternating process, negative-binomial counts via gamma frailty (shape nb_k), lognormal stays; see \
         parameters.admissions."
            .into(),
    ]
}

fn implied(cfg: &SimConfig) -> ImpliedEffects {
    let p = &cfg.paths;
    let e = &cfg.effects;
    let nw = cfg.n_waves();
    let at = |v: &Vec<f64>, t: usize| v.get(t).copied().unwrap_or(0.0);
    let (a1, a2, b1, b2, c) = (
        p.a1_clinical_on_self_management,
        p.a2_functional_on_self_management,
        p.b1_personal_on_clinical,
        p.b2_personal_on_functional,
        p.c_personal_on_self_management,
    );
    let (hs, hb) = (p.honos_on_self_management, p.honos_on_clinical);
    let per_wave = |f: &dyn Fn(usize) -> f64| (0..nw).map(f).collect::<Vec<f64>>();
    let es = |t| at(&e.self_management, t);
    let eb = |t| a1 * es(t) + at(&e.clinical, t);
    let ef = |t| a2 * es(t) + at(&e.functional, t);
    let arm_differences = vec![
        LatentEffect {
            scale: "S".into(),
            instrument: "imrs_client, imrs_clinician".into(),
            by_wave: per_wave(&es),
        },
        LatentEffect {
            scale: "B".into(),
            instrument: "bsi".into(),
            by_wave: per_wave(&eb),
        },
        LatentEffect {
            scale: "F".into(),
            instrument: "sfs".into(),
            by_wave: per_wave(&ef),
        },
        LatentEffect {
            scale: "M".into(),
            instrument: "mhrm".into(),
            by_wave: per_wave(&|t| c * es(t) + b1 * eb(t) + b2 * ef(t) + at(&e.personal, t)),
        },
        LatentEffect {
            scale: "H".into(),
            instrument: "honos".into(),
            by_wave: per_wave(&|t| hs * es(t) + hb * eb(t) + at(&e.honos, t)),
        },
    ];
    let s = &cfg.latent.self_management;
    let total = s.person_sd.powi(2) + s.site_sd.powi(2) + s.occasion_sd.powi(2);
    let share = |x: f64| if total > 0.0 { x.powi(2) / total } else { 0.0 };
    ImpliedEffects {
        description: "Latent-scale values implied by the parameters (ITT means: the effect multiplier has expectation 1 \
                      over the intervention arm). Scored outcomes attenuate them; see observed_scale."
            .into(),
        waves: cfg.study.waves.iter().map(|w| w.label.clone()).collect(),
        arm_differences,
        within_a1: a1,
        within_a2: a2,
        within_b1: b1,
        within_b2: b2,
        within_c_prime: c,
        within_indirect_a1b1: a1 * b1,
        within_indirect_a2b2: a2 * b2,
        within_total: c + a1 * b1 + a2 * b2,
        within_honos_total: hs + hb * a1,
        expected_sessions: design::expected_sessions(cfg),
        self_management_variance_shares: [share(s.person_sd), share(s.site_sd), share(s.occasion_sd)],
        admissions_rate_ratio: cfg.admissions.rate_ratio,
        admissions_rate_ratio_by_period: cfg
            .study
            .waves
            .windows(2)
            .enumerate()
            .map(|(k, w)| PeriodRateRatio {
                period: format!("{}_{}", w[0].label, w[1].label),
                rate_ratio: admissions::period_rate_ratio(cfg, k),
            })
            .collect(),
    }
}

fn share(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Simulates one trial in memory. The observed-scale truths are attached when they are cached
/// (the default parameters, [`observed::cached_observed_scale`]); for other parameters they
/// take seconds and are computed by [`SimulatedTrial::with_observed_scale`].
pub fn simulate(cfg: &SimConfig, seed: u64) -> Result<SimulatedTrial, SimError> {
    cfg.validate()?;
    let observed_scale = observed::cached_observed_scale(cfg);
    let design = design::draw_design(cfg, seed);
    let latent = model::draw_latent(cfg, &design, seed);
    let mut items = draw_all_items(cfg, &latent, seed);
    let miss = missing::apply(cfg, &design, &mut items, seed);
    let adm = admissions::draw(cfg, &design, &latent.z_honos, seed);
    let counts = model::item_counts(cfg);
    let drawn = Drawn {
        cfg,
        design: &design,
        latent: &latent,
        items: &items,
        miss: &miss,
        adm: &adm,
    };
    let realised = drawn.realised();
    let truth = Truth {
        generator: "herstel simulate".into(),
        herstel_version: env!("CARGO_PKG_VERSION").into(),
        seed,
        rng: "ChaCha8 (rand_chacha), seeded with seed_from_u64(seed), one stream per component: 1 design, 2 people, \
              3 latent, 4 items, 5 missing, 6 admissions"
            .into(),
        model: model_text(),
        parameters: cfg.clone(),
        implied_effects: implied(cfg),
        realised,
        observed_scale_origin: if observed_scale.is_some() {
            CACHED_ORIGIN.into()
        } else {
            "not computed (parameters differ from the defaults; `herstel simulate` computes it unless \
             --skip-observed-scale)"
                .into()
        },
        observed_scale,
    };
    Ok(SimulatedTrial {
        config: cfg.clone(),
        study_toml: export::study_toml(cfg),
        sites_csv: export::sites_csv(cfg),
        groups_csv: export::groups_csv(cfg, &design),
        participants_csv: export::participants_csv(cfg, &design),
        assessments_csv: export::assessments_csv(cfg, &design, &items, &miss, &counts),
        admissions_csv: export::admissions_csv(&design, &adm),
        truth,
    })
}

/// The complete items `[person][wave]` of every participant (stream `Items`), before
/// missingness.
fn draw_all_items(
    cfg: &SimConfig,
    latent: &model::LatentDraws,
    seed: u64,
) -> Vec<Vec<model::RowItems>> {
    let nw = cfg.n_waves();
    let mut item_rng = rng::Rng::new(seed, rng::Stream::Items);
    let mut items: Vec<Vec<model::RowItems>> = Vec::with_capacity(latent.waves.len());
    for (i, waves) in latent.waves.iter().enumerate() {
        let profile = latent.sfs_profile.get(i).map_or(&[][..], |p| p.as_slice());
        let mut rows = Vec::with_capacity(nw);
        for lat in waves {
            let mut row = model::empty_row();
            model::draw_items(cfg, lat, profile, &mut item_rng, &mut row);
            rows.push(row);
        }
        items.push(rows);
    }
    items
}

/// Everything drawn for one trial, from which the realised summaries are taken.
struct Drawn<'d> {
    cfg: &'d SimConfig,
    design: &'d design::TrialDesign,
    latent: &'d model::LatentDraws,
    items: &'d [Vec<model::RowItems>],
    miss: &'d missing::Missingness,
    adm: &'d [admissions::Admission],
}

/// Item cells of the assessed rows: counts and the scores' validity per instrument.
struct CellCounts {
    cells: usize,
    empty_cells: usize,
    not_known: usize,
    scores: Vec<ScoreRealised>,
}

impl Drawn<'_> {
    /// What this trial turned out to be (truth.json `realised`).
    fn realised(&self) -> Realised {
        let (cfg, design, latent, miss) = (self.cfg, self.design, self.latent, self.miss);
        let n = design.persons.len();
        let imr: Vec<usize> = (0..n).filter(|&i| design.persons[i].arm == 1).collect();
        let sessions: Vec<u32> = imr
            .iter()
            .filter_map(|&i| design.persons[i].sessions)
            .collect();
        let half = f64::from(cfg.sessions.offered) / 2.0;
        let cc = self.cell_counts();
        Realised {
            n_participants: n,
            arms: self.arm_counts(),
            sites: self.sites_realised(),
            groups: self.groups_realised(),
            export_date: dates::format_date(design.export_day),
            sessions_none_share_intervention: share(
                sessions.iter().filter(|&&s| s == 0).count(),
                sessions.len(),
            ),
            sessions_half_or_more_share_intervention: share(
                sessions.iter().filter(|&&s| f64::from(s) >= half).count(),
                sessions.len(),
            ),
            sessions_mean_intervention: if sessions.is_empty() {
                0.0
            } else {
                sessions.iter().map(|&s| f64::from(s)).sum::<f64>() / sessions.len() as f64
            },
            sessions_not_recorded: imr
                .iter()
                .filter(|&&i| !design.persons[i].sessions_recorded)
                .count(),
            mean_effect_multiplier_intervention: if imr.is_empty() {
                0.0
            } else {
                imr.iter()
                    .map(|&i| latent.multiplier.get(i).copied().unwrap_or(1.0))
                    .sum::<f64>()
                    / imr.len() as f64
            },
            waves: self.waves_realised(),
            item_cells_empty_share_assessed_rows: share(cc.empty_cells, cc.cells),
            honos_not_known_cells: cc.not_known,
            imrs_item13_not_applicable_participants: miss
                .item13_not_applicable
                .iter()
                .filter(|&&x| x)
                .count(),
            scores: cc.scores,
            admissions: self.admissions_realised(),
        }
    }

    /// Participants per arm.
    fn arm_counts(&self) -> Vec<Count> {
        let arm_n = |a: usize| self.design.persons.iter().filter(|p| p.arm == a).count();
        self.cfg
            .study
            .arms
            .iter()
            .enumerate()
            .map(|(a, l)| Count {
                label: l.clone(),
                n: arm_n(a),
            })
            .collect()
    }

    /// Participants per site and arm, and the site effects.
    fn sites_realised(&self) -> Vec<SiteRealised> {
        let design = self.design;
        self.cfg
            .sites
            .iter()
            .enumerate()
            .map(|(si, s)| SiteRealised {
                site_id: s.site_id.clone(),
                n_control: design
                    .persons
                    .iter()
                    .filter(|p| p.site == si && p.arm == 0)
                    .count(),
                n_intervention: design
                    .persons
                    .iter()
                    .filter(|p| p.site == si && p.arm == 1)
                    .count(),
                effects: self
                    .latent
                    .site_effects
                    .get(si)
                    .copied()
                    .unwrap_or([0.0; 5]),
            })
            .collect()
    }

    /// Every IMR group with its site, arm, size, fidelity and effects.
    fn groups_realised(&self) -> Vec<GroupRealised> {
        let (cfg, latent) = (self.cfg, self.latent);
        self.design
            .groups
            .iter()
            .enumerate()
            .map(|(gi, g)| GroupRealised {
                group_id: g.id.clone(),
                site_id: cfg
                    .sites
                    .get(g.site)
                    .map_or(String::new(), |s| s.site_id.clone()),
                arm: cfg.study.arms.get(g.arm).cloned().unwrap_or_default(),
                size: g.size,
                fidelity: g.fidelity,
                effect: latent.group_effects.get(gi).copied().unwrap_or(0.0),
                intercept: latent.group_intercepts.get(gi).copied().unwrap_or(0.0),
            })
            .collect()
    }

    /// Per wave: missed rows (absent or all empty) and the dropout intercept.
    fn waves_realised(&self) -> Vec<WaveRealised> {
        let miss = self.miss;
        let n = self.design.persons.len();
        self.cfg
            .study
            .waves
            .iter()
            .enumerate()
            .map(|(t, w)| {
                let st =
                    |s: WaveStatus| miss.status.iter().filter(|r| r.get(t) == Some(&s)).count();
                let absent = st(WaveStatus::Absent);
                let empty = st(WaveStatus::EmptyRow);
                WaveRealised {
                    wave: w.label.clone(),
                    share_missed: share(absent + empty, n),
                    rows_absent: absent,
                    rows_all_empty: empty,
                    dropout_intercept: miss.dropout_intercepts.get(t).copied().flatten(),
                }
            })
            .collect()
    }

    /// Counts the item cells of the present rows (empty, HoNOS not known) and whether each
    /// instrument's score is valid (at least 80 % of items).
    fn cell_counts(&self) -> CellCounts {
        let mut cc = CellCounts {
            cells: 0,
            empty_cells: 0,
            not_known: 0,
            scores: INSTRUMENTS
                .iter()
                .map(|i| ScoreRealised {
                    instrument: i.to_string(),
                    below_80_percent: 0,
                    valid: 0,
                })
                .collect(),
        };
        for (i, rows) in self.items.iter().enumerate() {
            for (t, row) in rows.iter().enumerate() {
                if self.miss.status.get(i).and_then(|r| r.get(t)) != Some(&WaveStatus::Present) {
                    continue;
                }
                for (k, inst) in row.iter().enumerate() {
                    cc.cells += inst.len();
                    cc.empty_cells += inst.iter().filter(|x| x.is_nan()).count();
                    if k == 5 {
                        cc.not_known += inst
                            .iter()
                            .filter(|&&x| x == model::HONOS_NOT_KNOWN)
                            .count();
                    }
                    if model::score(k, inst).is_some() {
                        cc.scores[k].valid += 1;
                    } else {
                        cc.scores[k].below_80_percent += 1;
                    }
                }
            }
        }
        cc
    }

    /// Admission episodes relative to randomization and the follow-up, lengths of stay.
    fn admissions_realised(&self) -> AdmissionsRealised {
        let (cfg, design, adm) = (self.cfg, self.design, self.adm);
        let n = design.persons.len();
        let follow_up_days =
            (cfg.study.waves.last().map_or(0.0, |w| w.months) * 30.4375).round() as i64;
        let rel = |a: &admissions::Admission| {
            a.admitted_on - design.persons.get(a.person).map_or(0, |p| p.randomized_on)
        };
        let mut los: Vec<f64> = adm
            .iter()
            .filter_map(|a| a.discharged_on.map(|d| (d - a.admitted_on) as f64))
            .collect();
        los.sort_by(f64::total_cmp);
        let median = if los.is_empty() {
            None
        } else if los.len() % 2 == 1 {
            Some(los[los.len() / 2])
        } else {
            Some(0.5 * (los[los.len() / 2 - 1] + los[los.len() / 2]))
        };
        let in_fu = adm
            .iter()
            .filter(|a| (1..=follow_up_days).contains(&rel(a)))
            .count();
        let py = n as f64 * follow_up_days as f64 / 365.25;
        AdmissionsRealised {
            episodes: adm.len(),
            before_randomization: adm.iter().filter(|a| rel(a) < 0).count(),
            after_randomization: adm.iter().filter(|a| rel(a) > 0).count(),
            follow_up_days,
            episodes_in_follow_up: in_fu,
            person_years_follow_up: py,
            rate_per_person_year_follow_up: if py > 0.0 { in_fu as f64 / py } else { 0.0 },
            in_prior_year: adm.iter().filter(|a| (-365..=-1).contains(&rel(a))).count(),
            still_admitted_at_export: adm.iter().filter(|a| a.discharged_on.is_none()).count(),
            median_length_of_stay_days: median,
            involuntary: adm.iter().filter(|a| a.involuntary).count(),
        }
    }
}

impl SimulatedTrial {
    /// Adds the observed-scale truths (one large trial, see [`observed`]) unless they are
    /// already there (cached for the default parameters).
    pub fn with_observed_scale(mut self) -> Result<SimulatedTrial, SimError> {
        if self.truth.observed_scale.is_none() {
            self.truth.observed_scale =
                Some(observed::observed_scale(&self.config).ok_or(SimError::ObservedScale)?);
            self.truth.observed_scale_origin = format!(
                "computed for these parameters: one simulated trial of {} participants (truth.seed {}), see \
                 observed_scale.description",
                self.config.truth.n_participants, self.config.truth.seed
            );
        }
        Ok(self)
    }

    /// truth.json text (pretty-printed, trailing newline).
    pub fn truth_json(&self) -> Result<String, SimError> {
        let mut s = serde_json::to_string_pretty(&self.truth)?;
        s.push('\n');
        Ok(s)
    }

    /// The files of the export, in a fixed order: (file name, contents).
    pub fn files(&self) -> Result<Vec<(&'static str, String)>, SimError> {
        Ok(vec![
            ("study.toml", self.study_toml.clone()),
            ("sites.csv", self.sites_csv.clone()),
            ("groups.csv", self.groups_csv.clone()),
            ("participants.csv", self.participants_csv.clone()),
            ("assessments.csv", self.assessments_csv.clone()),
            ("admissions.csv", self.admissions_csv.clone()),
            ("truth.json", self.truth_json()?),
        ])
    }

    /// Writes the export and truth.json into `dir` (created if needed), through
    /// [`crate::ingest::write_export_files`].
    pub fn write(&self, dir: &Path) -> Result<(), SimError> {
        crate::ingest::write_export_files(dir, &self.files()?)
            .map_err(|(path, source)| SimError::Write { path, source })
    }
}
