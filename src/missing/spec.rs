//! The spec tables `[estimand]` and `[sensitivity_missing]` (README, "Estimand and missing
//! data"). Every key has a default; checks that need only the spec run when it is read
//! ([`SensitivityMissingSpec::validate`]), checks against the trial (arms, waves, outcome) when
//! the trial is known ([`SensitivityMissingSpec::validate_for`]). Each error names its key.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Strategy;
use crate::formula::Formula;

/// `[estimand]`: the estimand of the primary analysis (ICH E9(R1) addendum): population,
/// treatment, variable, intercurrent events with their strategies, population-level summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EstimandSpec {
    #[serde(default = "default_population")]
    pub population: String,
    /// Default: `<intervention> versus <control>` from study.toml.
    #[serde(default)]
    pub treatment: Option<String>,
    /// The outcome (default: the primary outcome).
    #[serde(default)]
    pub outcome: Option<String>,
    /// The wave of the variable (default: the last wave).
    #[serde(default)]
    pub wave: Option<String>,
    /// Default: the difference in means at the wave (intervention - control).
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default = "default_events")]
    pub intercurrent_events: Vec<IntercurrentEventSpec>,
}

fn default_population() -> String {
    "all randomized participants (intention to treat)".into()
}

fn default_events() -> Vec<IntercurrentEventSpec> {
    vec![
        IntercurrentEventSpec {
            event: "discontinuation of IMR sessions".into(),
            strategy: IceStrategy::TreatmentPolicy,
            handling: Some("outcomes are used as observed, whether or not sessions were attended".into()),
        },
        IntercurrentEventSpec {
            event: "dropout from follow-up (no further assessment)".into(),
            strategy: IceStrategy::Hypothetical,
            handling: Some("missing at random given the observed outcomes (mixed model); departures tested by reference-based imputation and a tipping-point analysis".into()),
        },
    ]
}

impl Default for EstimandSpec {
    fn default() -> Self {
        EstimandSpec {
            population: default_population(),
            treatment: None,
            outcome: None,
            wave: None,
            summary: None,
            intercurrent_events: default_events(),
        }
    }
}

/// One intercurrent event of the estimand.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IntercurrentEventSpec {
    pub event: String,
    pub strategy: IceStrategy,
    /// How the analysis implements it (shown in the estimand table).
    #[serde(default)]
    pub handling: Option<String>,
}

/// The ICH E9(R1) strategies for an intercurrent event.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IceStrategy {
    TreatmentPolicy,
    Hypothetical,
    WhileOnTreatment,
    Composite,
    PrincipalStratum,
}

impl IceStrategy {
    pub fn name(&self) -> &'static str {
        match self {
            IceStrategy::TreatmentPolicy => "treatment_policy",
            IceStrategy::Hypothetical => "hypothetical",
            IceStrategy::WhileOnTreatment => "while_on_treatment",
            IceStrategy::Composite => "composite",
            IceStrategy::PrincipalStratum => "principal_stratum",
        }
    }
}

/// `[sensitivity_missing]`: reference-based imputation of the primary outcome after dropout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SensitivityMissingSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Default: the estimand's outcome, else the primary outcome.
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub method: ImputationMethod,
    /// `MAR`, `J2R`, `CR`, `CIR`.
    #[serde(default = "default_strategies")]
    pub strategies: Vec<String>,
    /// The reference arm of J2R/CR/CIR (default: the control arm, the one that is not the
    /// intervention in study.toml).
    #[serde(default)]
    pub reference_arm: Option<String>,
    /// The imputation model (= MAR analysis model) over `baseline`, `arm`, `wave`, with an
    /// unstructured covariance of the follow-up waves common to both arms.
    #[serde(default = "default_imputation_model")]
    pub imputation_model: String,
    /// The intercurrent event: `"last_observed"` (every wave after the last observed value) or
    /// `{ column = "discontinued_on" }` (a participants.csv date column; see
    /// [`IceDefinition`]).
    #[serde(default)]
    pub ice: IceDefinition,
    #[serde(default)]
    pub delta: DeltaSpec,
    /// Approximate Bayesian multiple imputation beside the conditional mean
    /// (`[sensitivity_missing.approximate_bayes]`); absent = not run.
    #[serde(default)]
    pub approximate_bayes: Option<ApproximateBayesSpec>,
}

/// `[sensitivity_missing.approximate_bayes]`: M bootstrap fits of the imputation model, one
/// imputation each, Rubin's rules (rbmi `method_approxbayes`); seeded by the spec's `seed`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApproximateBayesSpec {
    /// Number of imputations M.
    #[serde(default = "default_m")]
    pub m: usize,
}

fn default_m() -> usize {
    100
}

fn default_true() -> bool {
    true
}
fn default_strategies() -> Vec<String> {
    ["MAR", "J2R", "CR", "CIR"].map(String::from).to_vec()
}
fn default_imputation_model() -> String {
    "{outcome} ~ baseline + arm * wave".into()
}

impl Default for SensitivityMissingSpec {
    fn default() -> Self {
        SensitivityMissingSpec {
            enabled: true,
            outcome: None,
            method: ImputationMethod::default(),
            strategies: default_strategies(),
            reference_arm: None,
            imputation_model: default_imputation_model(),
            ice: IceDefinition::default(),
            delta: DeltaSpec::default(),
            approximate_bayes: None,
        }
    }
}

/// How the missing values are imputed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ImputationMethod {
    /// Conditional mean imputation with jackknife (Wolbers et al. 2022; deterministic).
    #[default]
    ConditionalMean,
}

/// The definition of the intercurrent event (ICE), `ice = "last_observed"` (the default) or
/// `ice = { column = "discontinued_on" }`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum IceDefinition {
    /// `"last_observed"`: the first wave after the last observed value (earlier missing waves
    /// are intermittent, MAR). No value is observed after such an ICE.
    Keyword(IceKeyword),
    /// A date column of participants.csv: the day the participant stopped the intervention or
    /// the study (empty or `NA` = no ICE). A follow-up wave is post-ICE when its assessment
    /// date (or, without one, its nominal date `randomized_on + months x 30.4375` days) lies
    /// after that day; every later wave is post-ICE too. Observed post-ICE values are kept
    /// under MAR (rbmi's default for MAR strategies) and set aside, then imputed, under J2R,
    /// CR, CIR and in every delta-adjusted analysis (rbmi: "data after the ICE are excluded
    /// from the imputation model and imputed" for non-MAR strategies). Missing values of a
    /// participant without an ICE are imputed under MAR.
    Column(IceColumn),
}

/// The keyword form of [`IceDefinition`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IceKeyword {
    LastObserved,
}

/// `ice = { column = "..." }`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IceColumn {
    /// The participants.csv column holding the ICE date (`YYYY-MM-DD`).
    pub column: String,
}

impl Default for IceDefinition {
    fn default() -> Self {
        IceDefinition::Keyword(IceKeyword::LastObserved)
    }
}

impl IceDefinition {
    /// The date column, `None` for `last_observed`.
    pub fn column(&self) -> Option<&str> {
        match self {
            IceDefinition::Keyword(_) => None,
            IceDefinition::Column(c) => Some(&c.column),
        }
    }
}

/// The arms whose post-ICE imputed values are shifted: a list (each shifted by delta) or a
/// table of multipliers (`{ IMR = 1.0, TAU = 0.5 }`: arm k shifted by `m_k delta`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DeltaArms {
    List(Vec<String>),
    Multipliers(BTreeMap<String, f64>),
}

impl DeltaArms {
    /// `(arm, multiplier)` pairs.
    pub fn pairs(&self) -> Vec<(String, f64)> {
        match self {
            DeltaArms::List(v) => v.iter().map(|a| (a.clone(), 1.0)).collect(),
            DeltaArms::Multipliers(m) => m.iter().map(|(a, x)| (a.clone(), *x)).collect(),
        }
    }
}

/// One arm's axis of the two-dimensional tipping-point grid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeltaRange {
    #[serde(default)]
    pub grid: Option<Vec<f64>>,
    #[serde(default = "default_from")]
    pub from: f64,
    #[serde(default = "default_to")]
    pub to: f64,
    #[serde(default = "default_step")]
    pub step: f64,
}

/// `[sensitivity_missing.delta]`: the delta adjustment and tipping point.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeltaSpec {
    /// `score` (outcome units) or `sd` (pooled baseline SDs of the outcome).
    #[serde(default)]
    pub units: DeltaUnits,
    /// An explicit grid (must contain 0); otherwise `from`, `to`, `step`.
    #[serde(default)]
    pub grid: Option<Vec<f64>>,
    #[serde(default = "default_from")]
    pub from: f64,
    #[serde(default = "default_to")]
    pub to: f64,
    #[serde(default = "default_step")]
    pub step: f64,
    /// Strategies whose imputations are shifted (each gets a grid).
    #[serde(default = "default_delta_strategies")]
    pub strategies: Vec<String>,
    /// Arms whose post-ICE imputed values are shifted (default: the non-reference arm): a list
    /// (`["IMR"]`, each shifted by delta) or multipliers (`{ IMR = 1.0, TAU = 0.5 }`).
    #[serde(default)]
    pub arms: Option<DeltaArms>,
    /// Fixed deltas (delta units) added to the post-ICE imputed values of an arm at every grid
    /// point (`{ TAU = -0.2 }`), beside the arms' varying delta.
    #[serde(default)]
    pub fixed: Option<BTreeMap<String, f64>>,
    /// The two-dimensional tipping point: both arms' deltas vary independently, each over its
    /// range in `ranges` (default: this table's grid or `from`, `to`, `step`).
    #[serde(default)]
    pub grid2d: bool,
    /// Per-arm axes of the two-dimensional grid (`ranges.TAU = { from = -0.5, to = 0.5, step =
    /// 0.25 }`).
    #[serde(default)]
    pub ranges: Option<BTreeMap<String, DeltaRange>>,
    /// Wave of the tipping point (default: the estimand's wave, else the last).
    #[serde(default)]
    pub wave: Option<String>,
}

fn default_from() -> f64 {
    -1.5
}
fn default_to() -> f64 {
    0.5
}
fn default_step() -> f64 {
    0.1
}
fn default_delta_strategies() -> Vec<String> {
    vec!["MAR".into(), "J2R".into()]
}

impl Default for DeltaSpec {
    fn default() -> Self {
        DeltaSpec {
            units: DeltaUnits::default(),
            grid: None,
            from: default_from(),
            to: default_to(),
            step: default_step(),
            strategies: default_delta_strategies(),
            arms: None,
            fixed: None,
            grid2d: false,
            ranges: None,
            wave: None,
        }
    }
}

/// Units of delta.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeltaUnits {
    Score,
    /// Pooled within-arm SD of the outcome at baseline.
    #[default]
    Sd,
}

impl DeltaUnits {
    pub fn name(&self) -> &'static str {
        match self {
            DeltaUnits::Score => "score",
            DeltaUnits::Sd => "sd",
        }
    }
}

/// `[-1.5, -1.45, 0]`: at most 9 decimals, so that a computed grid prints without the
/// rounding noise of `from + k step`.
fn list(v: &[f64]) -> String {
    let s: Vec<String> = v
        .iter()
        .map(|x| {
            let t = format!("{x:.9}");
            let t = t.trim_end_matches('0').trim_end_matches('.');
            if t == "-0" {
                "0".to_string()
            } else {
                t.to_string()
            }
        })
        .collect();
    format!("[{}]", s.join(", "))
}

impl DeltaSpec {
    /// The grid: `grid`, or `from` to `to` by `step` (rounded to 1e-9 of the step so that 0 is
    /// exactly 0).
    pub fn values(&self) -> Result<Vec<f64>, String> {
        grid_values(
            self.grid.as_deref(),
            (self.from, self.to, self.step),
            "sensitivity_missing.delta",
        )
    }

    /// The axis of `arm` in the two-dimensional grid: `ranges.<arm>`, else [`Self::values`].
    pub fn values_for_arm(&self, arm: &str) -> Result<Vec<f64>, String> {
        match self.ranges.as_ref().and_then(|r| r.get(arm)) {
            Some(r) => grid_values(
                r.grid.as_deref(),
                (r.from, r.to, r.step),
                &format!("sensitivity_missing.delta.ranges.{arm}"),
            ),
            None => self.values(),
        }
    }
}

/// A delta grid (`grid`, or `from` to `to` by `step`), checked; errors name `base`.
fn grid_values(
    grid: Option<&[f64]>,
    (from, to, step): (f64, f64, f64),
    base: &str,
) -> Result<Vec<f64>, String> {
    let g = match grid {
        Some(g) => g.to_vec(),
        None => {
            let ordered = step > 0.0 && to >= from;
            if !ordered {
                return Err(format!(
                    "{base}: from = {from}, to = {to}, step = {step}: need from <= to and step > 0"
                ));
            }
            let k = ((to - from) / step + 1e-9).floor() as usize;
            if k > 10_000 {
                return Err(format!("{base}: {} grid points (at most 10000)", k + 1));
            }
            (0..=k)
                .map(|i| {
                    let v = from + i as f64 * step;
                    let r = (v / step).round() * step;
                    if (v - r).abs() < 1e-9 * step {
                        if r == 0.0 {
                            0.0
                        } else {
                            r
                        }
                    } else {
                        v
                    }
                })
                .collect()
        }
    };
    if g.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "{base}.grid = {}: every delta must be a finite number",
            list(&g)
        ));
    }
    if g.windows(2).any(|w| w[1] <= w[0]) {
        return Err(format!(
            "{base}.grid = {}: the deltas must increase",
            list(&g)
        ));
    }
    if !g.contains(&0.0) {
        let key = if grid.is_some() {
            format!("{base}.grid")
        } else {
            format!("{base} (from, to, step)")
        };
        return Err(format!(
            "{key} = {}: the grid must contain 0 (the unshifted analysis)",
            list(&g)
        ));
    }
    Ok(g)
}

impl SensitivityMissingSpec {
    /// The strategies, parsed.
    pub fn parsed_strategies(&self) -> Result<Vec<Strategy>, String> {
        parse_strategies(&self.strategies, "sensitivity_missing.strategies")
    }

    /// The delta strategies, parsed.
    pub fn parsed_delta_strategies(&self) -> Result<Vec<Strategy>, String> {
        parse_strategies(
            &self.delta.strategies,
            "sensitivity_missing.delta.strategies",
        )
    }

    /// The imputation model's right-hand side (after `{outcome} ~`).
    pub fn model_rhs(&self) -> Result<String, String> {
        let key = format!(
            "sensitivity_missing.imputation_model = \"{}\"",
            self.imputation_model
        );
        let Some((lhs, rhs)) = self.imputation_model.split_once('~') else {
            return Err(format!(
                "{key}: not a formula (write {{outcome}} ~ baseline + arm * wave)"
            ));
        };
        if lhs.trim() != "{outcome}" {
            return Err(format!(
                "{key}: the outcome is missing: the left-hand side must be {{outcome}} (write {{outcome}} ~ {})",
                rhs.trim()
            ));
        }
        let f =
            Formula::parse(&format!("y ~ {}", rhs.trim())).map_err(|e| format!("{key}: {e}"))?;
        for col in ["arm", "wave"] {
            if !f.uses_column(col) {
                return Err(format!(
                    "{key}: the model must contain `{col}` (arm means per wave are what the reference-based strategies copy)"
                ));
            }
        }
        if rhs.contains('|') {
            return Err(format!(
                "{key}: no random-effects terms (the covariance of the waves is unstructured)"
            ));
        }
        Ok(rhs.trim().to_string())
    }

    /// The checks that need only the spec.
    pub fn validate(&self) -> Result<(), String> {
        let s = self.parsed_strategies()?;
        if s.is_empty() {
            return Err(
                "sensitivity_missing.strategies = []: name at least one of MAR, J2R, CR, CIR"
                    .into(),
            );
        }
        let d = self.parsed_delta_strategies()?;
        if let Some(x) = d.iter().find(|x| !s.contains(x)) {
            return Err(format!(
                "sensitivity_missing.delta.strategies: {x} is not in sensitivity_missing.strategies ({})",
                self.strategies.join(", ")
            ));
        }
        self.delta.values()?;
        if let Some(r) = &self.delta.ranges {
            for a in r.keys() {
                self.delta.values_for_arm(a)?;
            }
        }
        if self.delta.grid2d && (self.delta.arms.is_some() || self.delta.fixed.is_some()) {
            return Err(
                "sensitivity_missing.delta.grid2d = true: both arms' deltas vary over the grid; leave out delta.arms and delta.fixed"
                    .into(),
            );
        }
        if self.delta.ranges.is_some() && !self.delta.grid2d {
            return Err(
                "sensitivity_missing.delta.ranges: per-arm ranges need grid2d = true".into(),
            );
        }
        let finite = |m: &BTreeMap<String, f64>, key: &str| -> Result<(), String> {
            match m.iter().find(|(_, v)| !v.is_finite()) {
                Some((a, v)) => Err(format!("{key}.{a} = {v}: not a finite number")),
                None => Ok(()),
            }
        };
        if let Some(DeltaArms::Multipliers(m)) = &self.delta.arms {
            finite(m, "sensitivity_missing.delta.arms")?;
        }
        if let Some(f) = &self.delta.fixed {
            finite(f, "sensitivity_missing.delta.fixed")?;
        }
        if let Some(c) = self.ice.column() {
            if c.trim().is_empty() {
                return Err(
                    "sensitivity_missing.ice.column = \"\": name a participants.csv date column"
                        .into(),
                );
            }
        }
        self.model_rhs()?;
        if let Some(ab) = &self.approximate_bayes {
            if !(2..=100_000).contains(&ab.m) {
                return Err(format!(
                    "sensitivity_missing.approximate_bayes.m = {}: between 2 and 100000 imputations",
                    ab.m
                ));
            }
        }
        Ok(())
    }

    /// The checks against the trial: the reference arm, the delta arms and wave exist.
    pub fn validate_for(&self, arms: &[String], follow_up: &[String]) -> Result<(), String> {
        let known = |v: &str| arms.iter().any(|a| a == v);
        if let Some(r) = &self.reference_arm {
            if !known(r) {
                return Err(format!(
                    "sensitivity_missing.reference_arm = \"{r}\": no such arm (arms: {})",
                    arms.join(", ")
                ));
            }
        }
        let named = [
            (
                "sensitivity_missing.delta.arms",
                self.delta
                    .arms
                    .as_ref()
                    .map(|a| a.pairs().into_iter().map(|(x, _)| x).collect::<Vec<_>>()),
            ),
            (
                "sensitivity_missing.delta.fixed",
                self.delta
                    .fixed
                    .as_ref()
                    .map(|f| f.keys().cloned().collect()),
            ),
            (
                "sensitivity_missing.delta.ranges",
                self.delta
                    .ranges
                    .as_ref()
                    .map(|f| f.keys().cloned().collect()),
            ),
        ];
        for (key, list) in named {
            for a in list.iter().flatten() {
                if !known(a) {
                    return Err(format!(
                        "{key}: \"{a}\": no such arm (arms: {})",
                        arms.join(", ")
                    ));
                }
            }
        }
        if let Some(w) = &self.delta.wave {
            if !follow_up.iter().any(|x| x == w) {
                return Err(format!(
                    "sensitivity_missing.delta.wave = \"{w}\": not a follow-up wave (waves: {})",
                    follow_up.join(", ")
                ));
            }
        }
        Ok(())
    }
}

fn parse_strategies(v: &[String], key: &str) -> Result<Vec<Strategy>, String> {
    v.iter()
        .map(|s| {
            Strategy::parse(s).ok_or_else(|| {
                format!("{key}: unknown strategy \"{s}\" (strategies: MAR, J2R, CR, CIR)")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_grid_has_21_points_and_an_exact_zero() {
        let g = DeltaSpec::default().values().unwrap();
        assert_eq!(g.len(), 21);
        assert!(g.contains(&0.0));
        assert_eq!(g[0], -1.5);
    }

    #[test]
    fn a_grid_without_zero_names_the_key() {
        let d = DeltaSpec {
            grid: Some(vec![-2.0, -1.0]),
            ..DeltaSpec::default()
        };
        let e = d.values().unwrap_err();
        assert!(
            e.contains("sensitivity_missing.delta.grid") && e.contains("0"),
            "{e}"
        );
        let d = DeltaSpec {
            from: -0.75,
            to: 0.5,
            step: 0.5,
            ..DeltaSpec::default()
        };
        assert!(d.values().unwrap_err().contains("must contain 0"));
    }

    #[test]
    fn an_imputation_model_without_the_outcome_names_the_key() {
        let s = SensitivityMissingSpec {
            imputation_model: "y ~ baseline + arm * wave".into(),
            ..SensitivityMissingSpec::default()
        };
        let e = s.validate().unwrap_err();
        assert!(
            e.contains("sensitivity_missing.imputation_model") && e.contains("outcome is missing"),
            "{e}"
        );
        let s = SensitivityMissingSpec {
            imputation_model: "{outcome} ~ baseline + wave".into(),
            ..SensitivityMissingSpec::default()
        };
        assert!(s.validate().unwrap_err().contains("`arm`"));
    }

    #[test]
    fn unknown_reference_arm_names_the_key_and_the_arms() {
        let s = SensitivityMissingSpec {
            reference_arm: Some("XYZ".into()),
            ..SensitivityMissingSpec::default()
        };
        let e = s
            .validate_for(&["CAU".into(), "IMR".into()], &["T1".into()])
            .unwrap_err();
        assert_eq!(
            e,
            "sensitivity_missing.reference_arm = \"XYZ\": no such arm (arms: CAU, IMR)"
        );
    }

    fn parse(text: &str) -> Result<SensitivityMissingSpec, String> {
        toml::from_str::<SensitivityMissingSpec>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_ice_is_a_keyword_or_a_date_column() {
        assert_eq!(
            parse("ice = \"last_observed\"").unwrap().ice,
            IceDefinition::default()
        );
        let s = parse("ice = { column = \"discontinued_on\" }").unwrap();
        assert_eq!(s.ice.column(), Some("discontinued_on"));
        assert!(parse("ice = \"first_missing\"").is_err());
        assert!(parse("ice = { col = \"x\" }").is_err());
        let s = parse("ice = { column = \" \" }").unwrap();
        assert!(s
            .validate()
            .unwrap_err()
            .contains("sensitivity_missing.ice.column"));
    }

    #[test]
    fn delta_arms_are_a_list_or_multipliers_and_fixed_deltas_name_their_arm() {
        let s = parse("[delta]\narms = [\"IMR\"]").unwrap();
        assert_eq!(
            s.delta.arms.unwrap().pairs(),
            vec![("IMR".to_string(), 1.0)]
        );
        let s = parse("[delta]\narms = { IMR = 1.0, CAU = 0.5 }\nfixed = { CAU = -0.2 }").unwrap();
        s.validate().unwrap();
        let pairs = s.delta.arms.as_ref().unwrap().pairs();
        assert!(pairs.contains(&("CAU".to_string(), 0.5)));
        let e = s
            .validate_for(&["TAU".into(), "IMR".into()], &["T1".into()])
            .unwrap_err();
        assert!(
            e.starts_with("sensitivity_missing.delta.arms: \"CAU\""),
            "{e}"
        );
        let s = parse("[delta]\nfixed = { XYZ = 1.0 }").unwrap();
        let e = s
            .validate_for(&["TAU".into(), "IMR".into()], &["T1".into()])
            .unwrap_err();
        assert!(
            e.starts_with("sensitivity_missing.delta.fixed: \"XYZ\""),
            "{e}"
        );
    }

    #[test]
    fn the_two_dimensional_grid_takes_per_arm_ranges() {
        let s =
            parse("[delta]\ngrid2d = true\nranges.TAU = { from = -0.5, to = 0.5, step = 0.25 }")
                .unwrap();
        s.validate().unwrap();
        assert_eq!(
            s.delta.values_for_arm("TAU").unwrap(),
            vec![-0.5, -0.25, 0.0, 0.25, 0.5]
        );
        assert_eq!(s.delta.values_for_arm("IMR").unwrap().len(), 21);
        let s = parse("[delta]\ngrid2d = true\nranges.TAU = { from = 0.5, to = 1.0, step = 0.25 }")
            .unwrap();
        let e = s.validate().unwrap_err();
        assert!(
            e.starts_with("sensitivity_missing.delta.ranges.TAU (from, to, step)"),
            "{e}"
        );
        let s = parse("[delta]\ngrid2d = true\nfixed = { TAU = 1.0 }").unwrap();
        assert!(s.validate().unwrap_err().contains("grid2d"));
        let s = parse("[delta]\nranges.TAU = { from = -1.0 }").unwrap();
        assert!(s.validate().unwrap_err().contains("need grid2d = true"));
    }

    #[test]
    fn unknown_strategy_is_an_error() {
        let s = SensitivityMissingSpec {
            strategies: vec!["MAR".into(), "LOCF".into()],
            ..SensitivityMissingSpec::default()
        };
        assert!(s.validate().unwrap_err().contains("LOCF"));
    }
}
