//! The plan of a trial to be run (`herstel power PLAN.toml`): arms, design, waves, the primary
//! outcome on the score scale, the effect to detect, dropout, the planned analysis and the
//! grid of sample sizes. Parsed from TOML ([`Plan::from_toml_str`]) and checked
//! ([`Plan::validate`]); every error names the plan key (`design.icc_group = 1.2: ...`).
//! The shipped example is `analyses/power-erh.toml`.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A plan error, naming the key and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The TOML does not parse or has an unknown key or a wrong type.
    #[error("power plan: {0}")]
    Parse(String),
    /// A key has a value outside its range.
    #[error("{key} = {value}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

fn invalid(key: &str, value: impl std::fmt::Display, reason: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    #[serde(default = "default_title")]
    pub title: String,
    /// Seed of every simulated trial (trial `j` of sample size `k` draws from its own stream
    /// `(seed, POWER, k, j)`); `--seed` overrides it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated trials per sample size.
    #[serde(default = "default_simulations")]
    pub simulations: usize,
    /// The power to reach (the smallest sample size reaching it is interpolated).
    #[serde(default = "default_target")]
    pub target_power: f64,
    pub arms: ArmsPlan,
    pub design: DesignPlan,
    pub waves: WavesPlan,
    pub outcome: OutcomePlan,
    pub effect: EffectPlan,
    #[serde(default)]
    pub dropout: DropoutPlan,
    #[serde(default)]
    pub analysis: AnalysisPlan,
    pub sample_size: SampleSizePlan,
}

fn default_title() -> String {
    "Power by simulation".into()
}
fn default_seed() -> u64 {
    20261203
}
fn default_simulations() -> usize {
    1000
}
fn default_target() -> f64 {
    0.8
}

/// `[arms]`: labels (control first; the effect is the second arm minus the first) and the
/// allocation ratio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmsPlan {
    pub labels: Vec<String>,
    #[serde(default = "default_allocation")]
    pub allocation: Vec<f64>,
}

fn default_allocation() -> Vec<f64> {
    vec![1.0, 1.0]
}

/// The three designs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesignKind {
    /// Participants randomized individually, no groups.
    Individual,
    /// Participants randomized individually; the intervention arm is trained in groups
    /// (the group effect acts at follow-up only), the control arm is not grouped.
    PartiallyNested,
    /// Whole groups randomized (as the e-IMR trial): every participant is in a group from
    /// baseline on.
    Cluster,
}

/// `[design]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesignPlan {
    #[serde(rename = "type")]
    pub kind: DesignKind,
    /// Mean group size (partially nested: intervention groups; cluster: participants per
    /// randomized group).
    #[serde(default)]
    pub group_size: Option<f64>,
    /// Coefficient of variation of the group sizes (0: equal sizes).
    #[serde(default)]
    pub group_size_cv: f64,
    /// Partially nested: a fixed number of intervention groups instead of
    /// `participants / group_size`.
    #[serde(default)]
    pub groups: Option<usize>,
    /// Number of sites (participants, or groups, spread evenly over the sites in each arm).
    #[serde(default = "one")]
    pub sites: usize,
}

fn one() -> usize {
    1
}

/// `[waves]`: labels (the first is baseline) and months since randomization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WavesPlan {
    pub labels: Vec<String>,
    #[serde(default)]
    pub months: Vec<f64>,
}

/// Score level (normal scores) or item level (items rounded and clamped to their range, the
/// score their mean).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeLevel {
    #[default]
    Score,
    Item,
}

/// `[outcome]`: the primary outcome on the score scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomePlan {
    #[serde(default = "default_outcome")]
    pub name: String,
    pub baseline_mean: f64,
    /// Total SD of one score at baseline (site, group in a cluster trial, participant and
    /// residual variance together).
    pub baseline_sd: f64,
    /// Share of the total variance that is stable between participants.
    #[serde(default)]
    pub icc_participant: f64,
    /// Group ICC. Cluster: share of the total variance between groups (all waves).
    /// Partially nested: the ICC within the treated arm at follow-up,
    /// `tau^2 / (tau^2 + sigma^2)` (Baldwin et al. 2011), the group variance added to it.
    #[serde(default)]
    pub icc_group: f64,
    /// Share of the total variance between sites.
    #[serde(default)]
    pub icc_site: f64,
    /// AR(1) correlation of the residuals from one wave to the next (0: compound symmetry).
    #[serde(default)]
    pub autocorrelation: f64,
    #[serde(default)]
    pub level: OutcomeLevel,
    /// Item level: number of items, their range and the SD of the item noise.
    #[serde(default)]
    pub items: Option<ItemPlan>,
}

fn default_outcome() -> String {
    "y".into()
}

/// `[outcome.items]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemPlan {
    pub count: usize,
    pub min: f64,
    pub max: f64,
    pub noise_sd: f64,
}

/// The unit of the effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EffectScale {
    /// Score units.
    #[default]
    Score,
    /// Cohen's d: score units over `outcome.baseline_sd`.
    D,
}

/// `[effect]`: intervention minus control per follow-up wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectPlan {
    #[serde(default)]
    pub scale: EffectScale,
    pub values: BTreeMap<String, f64>,
}

/// Dropout mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Mechanism {
    /// Missing completely at random.
    #[default]
    #[serde(alias = "mcar")]
    MCAR,
    /// Missing at random: the chance of dropping out before a wave rises as the last
    /// observed score falls.
    #[serde(alias = "mar")]
    MAR,
}

/// `[dropout]`: monotone dropout, the cumulative share without data at each wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DropoutPlan {
    #[serde(default)]
    pub mechanism: Mechanism,
    #[serde(default)]
    pub rates: BTreeMap<String, f64>,
    /// MAR: log-odds of dropping out per SD the last observed score lies below the baseline
    /// mean (default 0.5).
    #[serde(default = "default_mar")]
    pub mar_strength: f64,
}

fn default_mar() -> f64 {
    0.5
}

/// The model family of the planned analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// lme4/lmerTest LMM (without random terms: OLS, as `lm`).
    #[default]
    Lmm,
    /// MMRM (nlme's gls with a residual structure over waves).
    Mmrm,
}

/// Two-sided or one-sided test; one-sided tests in the direction of the planned effect (its
/// sign at the tested contrast; positive when it is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sided {
    #[default]
    Two,
    One,
}

/// How baseline enters the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BaselineUse {
    /// Baseline is a wave of the outcome (`y ~ arm * wave`, all waves).
    #[default]
    Outcome,
    /// Baseline is a covariate of the follow-up waves (ANCOVA, `y ~ baseline + arm * wave`).
    Covariate,
}

/// The tested contrast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ContrastKind {
    /// Intervention minus control at the test wave (or averaged over follow-up).
    #[default]
    Difference,
    /// The same minus the arm difference at baseline (difference in change).
    Change,
}

/// `[analysis]`: the planned analysis (the `[model]` of an analysis spec plus the test).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisPlan {
    #[serde(default)]
    pub model: ModelKind,
    /// lme4 formula on the columns `y`, `arm`, `wave`, `participant_id`, `group_id`,
    /// `site_id`, `imr`, `imr_fu`, `months`, `baseline`; default from the design
    /// ([`crate::power::analyse::default_formula`]).
    #[serde(default)]
    pub formula: Option<String>,
    /// MMRM residual structure (default `us(wave | participant_id)`).
    #[serde(default)]
    pub residual: Option<String>,
    #[serde(default = "yes")]
    pub reml: bool,
    #[serde(default)]
    pub df: crate::lmm::DfSpec,
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    #[serde(default)]
    pub sided: Sided,
    /// The wave whose contrast is tested, or `average` (mean over follow-up waves); default
    /// the last wave.
    #[serde(default)]
    pub test: Option<String>,
    #[serde(default)]
    pub contrast: ContrastKind,
    #[serde(default)]
    pub baseline: BaselineUse,
}

fn yes() -> bool {
    true
}
fn default_alpha() -> f64 {
    0.05
}

impl Default for AnalysisPlan {
    fn default() -> Self {
        AnalysisPlan {
            model: ModelKind::Lmm,
            formula: None,
            residual: None,
            reml: true,
            df: crate::lmm::DfSpec::Satterthwaite,
            alpha: 0.05,
            sided: Sided::Two,
            test: None,
            contrast: ContrastKind::Difference,
            baseline: BaselineUse::Outcome,
        }
    }
}

/// `[sample_size]`: total participants (individual, partially nested) or groups per arm
/// (cluster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SampleSizePlan {
    #[serde(default)]
    pub participants: Vec<usize>,
    #[serde(default)]
    pub groups_per_arm: Vec<usize>,
}

/// Most simulated trials per size and sizes per plan: a trial's random stream index is
/// `size << 28 | trial` below the 2^40 streams of one tag ([`crate::stats::rng::substream`]).
pub const MAX_SIMULATIONS: usize = 1 << 28;
/// See [`MAX_SIMULATIONS`].
pub const MAX_SIZES: usize = 1 << 12;
/// Most participants in one simulated trial.
pub const MAX_PARTICIPANTS: usize = 1_000_000;

/// What the test is on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TestTarget {
    /// One follow-up wave (index into the waves).
    Wave(usize),
    /// The mean over the follow-up waves.
    Average,
}

impl Plan {
    /// Parses a plan (unknown keys are errors).
    pub fn from_toml_str(text: &str) -> Result<Plan, PlanError> {
        toml::from_str(text).map_err(|e| PlanError::Parse(e.to_string().trim().to_string()))
    }

    /// The sample sizes of the grid (participants, or groups per arm for a cluster trial).
    pub fn sizes(&self) -> &[usize] {
        match self.design.kind {
            DesignKind::Cluster => &self.sample_size.groups_per_arm,
            _ => &self.sample_size.participants,
        }
    }

    /// What the sizes count (`participants` or `groups_per_arm`).
    pub fn size_unit(&self) -> &'static str {
        match self.design.kind {
            DesignKind::Cluster => "groups_per_arm",
            _ => "participants",
        }
    }

    /// The plan key of the sample-size grid.
    pub fn size_unit_key(&self) -> &'static str {
        match self.design.kind {
            DesignKind::Cluster => "sample_size.groups_per_arm",
            _ => "sample_size.participants",
        }
    }

    /// The effect per wave in score units (0 at baseline and at waves without an entry).
    pub fn effect_by_wave(&self) -> Vec<f64> {
        let k = match self.effect.scale {
            EffectScale::Score => 1.0,
            EffectScale::D => self.outcome.baseline_sd,
        };
        self.waves
            .labels
            .iter()
            .map(|w| self.effect.values.get(w).copied().unwrap_or(0.0) * k)
            .collect()
    }

    /// The cumulative dropout share per wave (0 at baseline).
    pub fn dropout_by_wave(&self) -> Vec<f64> {
        self.waves
            .labels
            .iter()
            .map(|w| self.dropout.rates.get(w).copied().unwrap_or(0.0))
            .collect()
    }

    /// Months per wave (0, 1, 2, ... when not given).
    pub fn months(&self) -> Vec<f64> {
        if self.waves.months.is_empty() {
            (0..self.waves.labels.len()).map(|i| i as f64).collect()
        } else {
            self.waves.months.clone()
        }
    }

    /// The tested wave or the follow-up average.
    pub fn test_target(&self) -> TestTarget {
        let n = self.waves.labels.len();
        match self.analysis.test.as_deref() {
            Some("average") => TestTarget::Average,
            Some(w) => TestTarget::Wave(
                self.waves
                    .labels
                    .iter()
                    .position(|l| l == w)
                    .unwrap_or(n - 1),
            ),
            None => TestTarget::Wave(n.saturating_sub(1)),
        }
    }

    /// Participants per arm for `n` in total, by the allocation ratio (largest remainder).
    pub fn split(&self, n: usize) -> Vec<usize> {
        let total: f64 = self.arms.allocation.iter().sum();
        let exact: Vec<f64> = self
            .arms
            .allocation
            .iter()
            .map(|w| n as f64 * w / total)
            .collect();
        let mut out: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
        let mut left = n - out.iter().sum::<usize>();
        let mut order: Vec<usize> = (0..out.len()).collect();
        order.sort_by(|&a, &b| {
            let ra = exact[a] - exact[a].floor();
            let rb = exact[b] - exact[b].floor();
            rb.total_cmp(&ra).then(a.cmp(&b))
        });
        for &i in order.iter().cycle().take(out.len() * 2) {
            if left == 0 {
                break;
            }
            out[i] += 1;
            left -= 1;
        }
        out
    }

    /// Checks every key; the first problem is returned, naming its key.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.simulations == 0 || self.simulations > MAX_SIMULATIONS {
            return Err(invalid(
                "simulations",
                self.simulations,
                format!("from 1 to {MAX_SIMULATIONS} simulated trials per size"),
            ));
        }
        if self.sizes().len() > MAX_SIZES {
            return Err(invalid(
                self.size_unit_key(),
                self.sizes().len(),
                format!("at most {MAX_SIZES} sample sizes"),
            ));
        }
        if !(self.target_power > 0.0 && self.target_power < 1.0) {
            return Err(invalid(
                "target_power",
                self.target_power,
                "a power must be in (0, 1)",
            ));
        }
        // arms
        let a = &self.arms;
        if a.labels.len() != 2 {
            return Err(invalid(
                "arms.labels",
                format!("{:?}", a.labels),
                "two arms are needed (control first, then the intervention)",
            ));
        }
        if a.labels[0] == a.labels[1] || a.labels.iter().any(|l| l.trim().is_empty()) {
            return Err(invalid(
                "arms.labels",
                format!("{:?}", a.labels),
                "arm labels must be distinct and non-empty",
            ));
        }
        if a.allocation.len() != a.labels.len() {
            return Err(invalid(
                "arms.allocation",
                format!("{:?}", a.allocation),
                "one weight per arm",
            ));
        }
        if a.allocation.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(invalid(
                "arms.allocation",
                format!("{:?}", a.allocation),
                "an allocation that leaves an arm empty: every weight must be positive",
            ));
        }
        // waves
        let w = &self.waves;
        if w.labels.is_empty() {
            return Err(invalid("waves.labels", "[]", "at least one wave"));
        }
        for (i, l) in w.labels.iter().enumerate() {
            if w.labels[..i].contains(l) {
                return Err(invalid("waves.labels", l, "wave labels must be distinct"));
            }
        }
        if !w.months.is_empty() && w.months.len() != w.labels.len() {
            return Err(invalid(
                "waves.months",
                format!("{:?}", w.months),
                format!("one month per wave ({} waves)", w.labels.len()),
            ));
        }
        // outcome
        let o = &self.outcome;
        if !o.baseline_mean.is_finite() {
            return Err(invalid(
                "outcome.baseline_mean",
                o.baseline_mean,
                "must be a number",
            ));
        }
        if !(o.baseline_sd.is_finite() && o.baseline_sd > 0.0) {
            return Err(invalid(
                "outcome.baseline_sd",
                o.baseline_sd,
                "an SD must be positive",
            ));
        }
        for (key, v) in [
            ("outcome.icc_participant", o.icc_participant),
            ("outcome.icc_group", o.icc_group),
            ("outcome.icc_site", o.icc_site),
        ] {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                return Err(invalid(key, v, "an ICC must be in [0, 1)"));
            }
        }
        let grouped_total = match self.design.kind {
            DesignKind::Cluster => o.icc_group,
            _ => 0.0,
        };
        let shared = o.icc_participant + o.icc_site + grouped_total;
        if shared >= 1.0 {
            return Err(invalid(
                "outcome.icc_participant",
                o.icc_participant,
                format!(
                    "the ICCs of participant, site{} add up to {shared} and leave no residual variance (must be < 1)",
                    if grouped_total > 0.0 { " and group" } else { "" }
                ),
            ));
        }
        if !(o.autocorrelation.is_finite() && o.autocorrelation > -1.0 && o.autocorrelation < 1.0) {
            return Err(invalid(
                "outcome.autocorrelation",
                o.autocorrelation,
                "a correlation must be in (-1, 1)",
            ));
        }
        if o.level == OutcomeLevel::Item {
            let Some(it) = &o.items else {
                return Err(invalid(
                    "outcome.items",
                    "missing",
                    "level = \"item\" needs [outcome.items] with count, min, max, noise_sd",
                ));
            };
            if it.count == 0 {
                return Err(invalid("outcome.items.count", 0, "at least one item"));
            }
            if !(it.min.is_finite() && it.max.is_finite() && it.max > it.min) {
                return Err(invalid(
                    "outcome.items.max",
                    it.max,
                    format!("must be above outcome.items.min = {}", it.min),
                ));
            }
            if !(it.noise_sd.is_finite() && it.noise_sd >= 0.0) {
                return Err(invalid(
                    "outcome.items.noise_sd",
                    it.noise_sd,
                    "an SD must be >= 0",
                ));
            }
        }
        // design
        let d = &self.design;
        if d.sites == 0 {
            return Err(invalid("design.sites", 0, "at least one site"));
        }
        if !(d.group_size_cv.is_finite() && d.group_size_cv >= 0.0) {
            return Err(invalid(
                "design.group_size_cv",
                d.group_size_cv,
                "a coefficient of variation must be >= 0",
            ));
        }
        match d.kind {
            DesignKind::Individual => {
                if o.icc_group > 0.0 {
                    return Err(invalid(
                        "outcome.icc_group",
                        o.icc_group,
                        "an individually randomized design has no groups (use design.type = \"partially_nested\" or \"cluster\")",
                    ));
                }
            }
            DesignKind::PartiallyNested | DesignKind::Cluster => {
                match (d.group_size, d.groups, d.kind) {
                    (None, None, _) | (None, Some(_), DesignKind::Cluster) => {
                        return Err(invalid(
                            "design.group_size",
                            "missing",
                            "a grouped design needs the mean group size",
                        ))
                    }
                    (Some(m), _, _) if !(m.is_finite() && m >= 1.0) => {
                        return Err(invalid(
                            "design.group_size",
                            m,
                            "a group has at least one participant",
                        ))
                    }
                    _ => {}
                }
                if d.groups == Some(0) {
                    return Err(invalid("design.groups", 0, "at least one group"));
                }
            }
        }
        if d.kind == DesignKind::Cluster && a.allocation[0] != a.allocation[1] {
            return Err(invalid(
                "arms.allocation",
                format!("{:?}", a.allocation),
                "a cluster plan randomizes sample_size.groups_per_arm groups to each arm: use equal weights",
            ));
        }
        if d.kind == DesignKind::Cluster && d.groups.is_some() {
            return Err(invalid(
                "design.groups",
                d.groups.unwrap_or(0),
                "a cluster trial takes its groups from sample_size.groups_per_arm",
            ));
        }
        // effect
        if self.effect.values.is_empty() {
            return Err(invalid(
                "effect.values",
                "{}",
                "give the effect at one follow-up wave at least",
            ));
        }
        for (wave, v) in &self.effect.values {
            let key = format!("effect.values.{wave}");
            match w.labels.iter().position(|l| l == wave) {
                None => {
                    return Err(invalid(
                        &key,
                        v,
                        format!(
                            "an effect on a wave that does not exist (waves: {:?})",
                            w.labels
                        ),
                    ))
                }
                Some(0) if w.labels.len() > 1 => {
                    return Err(invalid(
                        &key,
                        v,
                        "the first wave is baseline: randomization gives no effect there",
                    ))
                }
                _ => {}
            }
            if !v.is_finite() {
                return Err(invalid(&key, v, "must be a number"));
            }
        }
        // dropout
        let mut last = 0.0;
        for (i, l) in w.labels.iter().enumerate() {
            if let Some(&r) = self.dropout.rates.get(l) {
                let key = format!("dropout.rates.{l}");
                if i == 0 && r != 0.0 && w.labels.len() > 1 {
                    return Err(invalid(&key, r, "nobody drops out before baseline"));
                }
                if !(r.is_finite() && (0.0..1.0).contains(&r)) {
                    return Err(invalid(&key, r, "a dropout share must be in [0, 1)"));
                }
                if r < last {
                    return Err(invalid(
                        &key,
                        r,
                        format!(
                            "dropout is cumulative (monotone): below the {last} of an earlier wave"
                        ),
                    ));
                }
                last = r;
            }
        }
        for l in self.dropout.rates.keys() {
            if !w.labels.contains(l) {
                return Err(invalid(
                    &format!("dropout.rates.{l}"),
                    self.dropout.rates[l],
                    format!("a wave that does not exist (waves: {:?})", w.labels),
                ));
            }
        }
        if !self.dropout.mar_strength.is_finite() {
            return Err(invalid(
                "dropout.mar_strength",
                self.dropout.mar_strength,
                "must be a number",
            ));
        }
        // analysis
        let an = &self.analysis;
        if !(an.alpha > 0.0 && an.alpha < 0.5) {
            return Err(invalid("analysis.alpha", an.alpha, "must be in (0, 0.5)"));
        }
        match an.test.as_deref() {
            None | Some("average") => {}
            Some(t) => match w.labels.iter().position(|l| l == t) {
                None => {
                    return Err(invalid(
                        "analysis.test",
                        t,
                        format!(
                            "a wave that does not exist (waves: {:?}, or \"average\")",
                            w.labels
                        ),
                    ))
                }
                Some(0) if w.labels.len() > 1 => {
                    return Err(invalid(
                        "analysis.test",
                        t,
                        "the test wave must be a follow-up wave",
                    ))
                }
                _ => {}
            },
        }
        if w.labels.len() == 1
            && (an.baseline == BaselineUse::Covariate || an.contrast == ContrastKind::Change)
        {
            return Err(invalid(
                "analysis.baseline",
                "covariate",
                "a baseline covariate or a change contrast needs a baseline wave and a follow-up wave",
            ));
        }
        if an.baseline == BaselineUse::Covariate && an.contrast == ContrastKind::Change {
            return Err(invalid(
                "analysis.contrast",
                "change",
                "with baseline as a covariate the change contrast equals the difference; use contrast = \"difference\"",
            ));
        }
        if an.model == ModelKind::Mmrm && w.labels.len() < 2 {
            return Err(invalid(
                "analysis.model",
                "mmrm",
                "an MMRM needs repeated waves",
            ));
        }
        // sample sizes
        let (key, sizes, other) = match d.kind {
            DesignKind::Cluster => (
                "sample_size.groups_per_arm",
                &self.sample_size.groups_per_arm,
                ("sample_size.participants", &self.sample_size.participants),
            ),
            _ => (
                "sample_size.participants",
                &self.sample_size.participants,
                (
                    "sample_size.groups_per_arm",
                    &self.sample_size.groups_per_arm,
                ),
            ),
        };
        if !other.1.is_empty() {
            return Err(invalid(
                other.0,
                format!("{:?}", other.1),
                format!("the {:?} design takes its grid from {key}", d.kind),
            ));
        }
        if sizes.is_empty() {
            return Err(invalid(key, "[]", "give at least one sample size"));
        }
        for (i, &n) in sizes.iter().enumerate() {
            if i > 0 && n <= sizes[i - 1] {
                return Err(invalid(key, format!("{sizes:?}"), "sizes must increase"));
            }
        }
        for &n in sizes {
            let expected = match d.kind {
                DesignKind::Cluster => 2.0 * n as f64 * d.group_size.unwrap_or(1.0),
                _ => n as f64,
            };
            if expected > MAX_PARTICIPANTS as f64 {
                return Err(invalid(
                    key,
                    n,
                    format!("about {expected:.0} participants per simulated trial (at most {MAX_PARTICIPANTS})"),
                ));
            }
            match d.kind {
                DesignKind::Cluster => {
                    if n < 2 {
                        return Err(invalid(
                            key,
                            n,
                            "at least 2 groups per arm (a group variance needs them)",
                        ));
                    }
                }
                _ => {
                    let per_arm = self.split(n);
                    if let Some(arm) = per_arm.iter().position(|&c| c < 2) {
                        return Err(invalid(
                            key,
                            n,
                            format!(
                                "the allocation {:?} leaves arm {} with {} participants (at least 2)",
                                a.allocation, a.labels[arm], per_arm[arm]
                            ),
                        ));
                    }
                    if d.kind == DesignKind::PartiallyNested {
                        let treated = per_arm[1];
                        let groups = d.groups.unwrap_or_else(|| {
                            ((treated as f64 / d.group_size.unwrap_or(1.0)).round() as usize).max(1)
                        });
                        if groups > treated {
                            return Err(invalid(
                                "design.groups",
                                groups,
                                format!(
                                    "more groups than participants in the {} arm ({treated} at {key} = {n})",
                                    a.labels[1]
                                ),
                            ));
                        }
                        if groups < 2 {
                            return Err(invalid(
                                "design.group_size",
                                d.group_size.unwrap_or(0.0),
                                format!("only {groups} group at {key} = {n}: a group variance needs 2 at least"),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
