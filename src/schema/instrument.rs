//! Questionnaire instruments (`data-schema/instruments/*.toml`): items, response range,
//! "not known" codes, reverse keying, total rule, subscales and the minimum answered share.
//! Scale facts: `docs/instruments.md`.

use std::path::Path;

use serde::Deserialize;

use super::{parse_toml, SchemaError};

/// Whether item values are integers (questionnaire answers) or numbers (pre-scored scales).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    Integer,
    Number,
}

/// What a higher score means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherBetter,
    HigherWorse,
}

/// How a (sub)scale score is formed from the answered items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TotalRule {
    /// Mean of the answered items.
    Mean,
    /// Sum of the answered items (not prorated).
    Sum,
    /// Mean of the answered items times the number of items.
    ProratedSum,
}

/// Extra indices computed from the answered items of the whole instrument, only when the
/// total is valid (Derogatis' BSI indices; any instrument may ask for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// Positive Symptom Total: answered items above the range minimum.
    Pst,
    /// Positive Symptom Distress Index: sum of answered items / PST (missing when PST = 0).
    Psdi,
    /// Sum of the answered items.
    SumAnswered,
    /// Mean of the answered items times the number of items.
    TotalProrated,
}

impl IndexKind {
    /// Column suffix, e.g. `pst` in `bsi_pst`.
    pub fn suffix(self) -> &'static str {
        match self {
            IndexKind::Pst => "pst",
            IndexKind::Psdi => "psdi",
            IndexKind::SumAnswered => "sum_answered",
            IndexKind::TotalProrated => "total_prorated",
        }
    }
}

/// Minimum share of answered items as the integer rule `answered * of >= answered_share * k`
/// (written `[4, 5]` for 80%), so that "12 of 15" is exact, unlike a float comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(try_from = "[u32; 2]", into = "[u32; 2]")]
pub struct Share {
    pub numerator: u32,
    pub denominator: u32,
}

impl TryFrom<[u32; 2]> for Share {
    type Error = String;
    fn try_from(v: [u32; 2]) -> Result<Self, String> {
        let [numerator, denominator] = v;
        if denominator == 0 || numerator > denominator {
            return Err(format!(
                "min_answered_share [{numerator}, {denominator}] must be a fraction between 0 and 1"
            ));
        }
        Ok(Share {
            numerator,
            denominator,
        })
    }
}

impl From<Share> for [u32; 2] {
    fn from(s: Share) -> Self {
        [s.numerator, s.denominator]
    }
}

impl Share {
    /// True when `answered` of `k` items meet the share: `answered * den >= num * k`.
    pub fn met(self, answered: usize, k: usize) -> bool {
        (answered as u128) * u128::from(self.denominator)
            >= u128::from(self.numerator) * (k as u128)
    }

    /// The smallest number of answered items out of `k` that meets the share.
    pub fn min_items(self, k: usize) -> usize {
        (0..=k).find(|&a| self.met(a, k)).unwrap_or(k)
    }
}

/// A subscale (dimension) scored from a subset of the items.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Subscale {
    /// Column suffix: the score is `<instrument>_<name>`.
    pub name: String,
    #[serde(default)]
    pub title: String,
    /// 1-based item numbers.
    pub items: Vec<usize>,
    pub rule: TotalRule,
    /// Defaults to the instrument's share.
    pub min_answered_share: Option<Share>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstrument {
    name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    source: String,
    items: usize,
    value_type: ValueType,
    min: f64,
    max: f64,
    direction: Direction,
    #[serde(default)]
    not_known: Vec<f64>,
    #[serde(default)]
    reverse: Vec<usize>,
    total: TotalRule,
    min_answered_share: Share,
    #[serde(default)]
    indices: Vec<IndexKind>,
    #[serde(default)]
    subscales: Vec<Subscale>,
}

/// One instrument definition. Item columns are `<name>_<NN>` (two digits, or more when
/// there are 100 or more items).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Instrument {
    pub name: String,
    pub title: String,
    /// Short name in tables and plots (`HoNOS`); default: the name with spaces for `_`.
    pub label: String,
    /// What the total score is, for axis labels (`prorated sum, 0-48`); default `score`.
    pub unit: String,
    /// Citation of the scale and its scoring.
    pub source: String,
    /// Number of items.
    pub items: usize,
    pub value_type: ValueType,
    /// Response range (inclusive).
    pub min: f64,
    pub max: f64,
    pub direction: Direction,
    /// Codes that mean "not known" and count as missing (e.g. HoNOS 9).
    pub not_known: Vec<f64>,
    /// 1-based reverse-keyed items, scored as `min + max - value`.
    pub reverse: Vec<usize>,
    pub total: TotalRule,
    pub min_answered_share: Share,
    pub indices: Vec<IndexKind>,
    pub subscales: Vec<Subscale>,
}

impl Instrument {
    /// Parses and checks an instrument TOML file's text.
    pub fn from_toml(text: &str, file: &Path) -> Result<Instrument, SchemaError> {
        let r: RawInstrument = parse_toml(text, file)?;
        let bad = |message: String| SchemaError::Malformed {
            file: file.to_path_buf(),
            line: None,
            message,
        };
        if r.name.is_empty()
            || !r
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(bad(format!(
                "instrument name `{}` must be letters, digits and _",
                r.name
            )));
        }
        if r.items == 0 {
            return Err(bad("items must be at least 1".into()));
        }
        if !(r.min.is_finite() && r.max.is_finite() && r.min <= r.max) {
            return Err(bad(format!(
                "range min {} .. max {} is invalid",
                r.min, r.max
            )));
        }
        let check_items = |what: &str, items: &[usize]| -> Result<(), SchemaError> {
            match items.iter().find(|&&i| i == 0 || i > r.items) {
                Some(i) => Err(bad(format!("{what}: item {i} is outside 1..{}", r.items))),
                None => Ok(()),
            }
        };
        check_items("reverse", &r.reverse)?;
        for s in &r.subscales {
            if s.items.is_empty() {
                return Err(bad(format!("subscale `{}` has no items", s.name)));
            }
            check_items(&format!("subscale `{}`", s.name), &s.items)?;
        }
        Ok(Instrument {
            label: r.label.unwrap_or_else(|| r.name.replace('_', " ")),
            unit: r.unit.unwrap_or_else(|| "score".to_string()),
            name: r.name,
            title: r.title,
            source: r.source,
            items: r.items,
            value_type: r.value_type,
            min: r.min,
            max: r.max,
            direction: r.direction,
            not_known: r.not_known,
            reverse: r.reverse,
            total: r.total,
            min_answered_share: r.min_answered_share,
            indices: r.indices,
            subscales: r.subscales,
        })
    }

    /// Column name of item `i` (1-based), e.g. `honos_09`.
    pub fn item_column(&self, i: usize) -> String {
        let width = if self.items >= 100 { 3 } else { 2 };
        format!("{}_{:0width$}", self.name, i, width = width)
    }

    /// All item column names in item order.
    pub fn item_columns(&self) -> Vec<String> {
        (1..=self.items).map(|i| self.item_column(i)).collect()
    }

    /// True when `v` is one of the "not known" codes.
    pub fn is_not_known(&self, v: f64) -> bool {
        self.not_known.contains(&v)
    }

    /// Number of items needed for a valid total.
    pub fn min_answered(&self) -> usize {
        self.min_answered_share.min_items(self.items)
    }

    /// Column of a pre-scored total in assessments.csv: `<instrument>_total`.
    pub fn total_column(&self) -> String {
        format!("{}_total", self.name)
    }

    /// Column of a pre-scored subscale in assessments.csv: `<instrument>_<subscale>`.
    pub fn subscale_column(&self, s: &Subscale) -> String {
        format!("{}_{}", self.name, s.name)
    }

    /// Inclusive range of the total score: the item range under the total rule (mean:
    /// `[min, max]`; prorated sum: `[items x min, items x max]`; sum: from the fewest valid
    /// answered items at the minimum to every item at the maximum).
    pub fn total_range(&self) -> (f64, f64) {
        rule_range(
            self.total,
            self.items,
            self.min_answered(),
            self.min,
            self.max,
        )
    }

    /// Inclusive range of a subscale score, as [`Instrument::total_range`] for its items.
    pub fn subscale_range(&self, s: &Subscale) -> (f64, f64) {
        let k = s.items.len();
        let share = s.min_answered_share.unwrap_or(self.min_answered_share);
        rule_range(s.rule, k, share.min_items(k).max(1), self.min, self.max)
    }

    /// Item value after reverse keying (`min + max - v` for reverse-keyed items; `item`
    /// 0-based).
    pub fn keyed(&self, item: usize, v: f64) -> f64 {
        if self.reverse.contains(&(item + 1)) {
            self.min + self.max - v
        } else {
            v
        }
    }

    /// The total of one assessment's item values (`NaN` = missing, in item order, not yet
    /// reverse-keyed; not-known codes count as missing), by the instrument's rule; `None`
    /// when too few items are answered.
    /// The same rule as [`crate::scoring`], for checks below the scoring layer (a pre-scored
    /// total against its items in `herstel import`).
    pub fn total_of(&self, items: &[f64]) -> Option<f64> {
        let keyed = items.iter().enumerate().map(|(j, &v)| {
            if v.is_nan() || self.is_not_known(v) {
                f64::NAN
            } else {
                self.keyed(j, v)
            }
        });
        let (k, v) = scale_score(keyed, self.items, self.total);
        (k > 0 && self.min_answered_share.met(k, self.items)).then_some(v)
    }

    /// A subscale of one assessment's item values, as [`Instrument::total_of`].
    pub fn subscale_of(&self, s: &Subscale, items: &[f64]) -> Option<f64> {
        let values = s.items.iter().map(|&i| {
            let j = i.wrapping_sub(1);
            match items.get(j) {
                Some(&v) if !v.is_nan() && !self.is_not_known(v) => self.keyed(j, v),
                _ => f64::NAN,
            }
        });
        let (k, v) = scale_score(values, s.items.len(), s.rule);
        let share = s.min_answered_share.unwrap_or(self.min_answered_share);
        (k > 0 && share.met(k, s.items.len())).then_some(v)
    }
}

/// Range of a score by `rule` over `k` items rated `min`-`max`, valid with at least
/// `fewest` answered items.
fn rule_range(rule: TotalRule, k: usize, fewest: usize, min: f64, max: f64) -> (f64, f64) {
    let (k, fewest) = (k as f64, fewest.max(1) as f64);
    match rule {
        TotalRule::Mean => (min, max),
        TotalRule::ProratedSum => (k * min, k * max),
        TotalRule::Sum => ((fewest * min).min(k * min), (k * max).max(fewest * max)),
    }
}

/// Mean, sum or prorated sum (mean x `k`) of the answered values (`NaN` = missing), with the
/// number answered; the score is `NaN` when none is.
pub fn scale_score(values: impl Iterator<Item = f64>, k: usize, rule: TotalRule) -> (usize, f64) {
    let mut answered = 0usize;
    let mut sum = 0.0f64;
    for v in values.filter(|v| !v.is_nan()) {
        answered += 1;
        sum += v;
    }
    let mean = sum / answered as f64;
    let score = match rule {
        TotalRule::Mean => mean,
        TotalRule::Sum => sum,
        TotalRule::ProratedSum => mean * k as f64,
    };
    (answered, score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_an_integer_rule() {
        let s = Share::try_from([4, 5]).unwrap();
        assert!(s.met(12, 15));
        assert!(!s.met(11, 15));
        assert_eq!(s.min_items(53), 43);
        assert_eq!(s.min_items(30), 24);
        assert_eq!(s.min_items(12), 10);
        assert_eq!(s.min_items(7), 6);
        assert_eq!(s.min_items(4), 4);
        assert_eq!(s.min_items(5), 4);
        assert_eq!(s.min_items(6), 5);
        assert!(Share::try_from([5, 4]).is_err());
        assert!(Share::try_from([1, 0]).is_err());
    }

    #[test]
    fn score_ranges_follow_the_total_rule() {
        let s = crate::schema::Schema::embedded().unwrap();
        let honos = s.instrument("honos").unwrap();
        assert_eq!(honos.total_range(), (0.0, 48.0));
        assert_eq!(honos.subscale_range(&honos.subscales[0]), (0.0, 12.0));
        assert_eq!(
            s.instrument("imrs_client").unwrap().total_range(),
            (1.0, 5.0)
        );
        let mut sum = honos.clone();
        sum.total = TotalRule::Sum;
        sum.min = 1.0;
        // 10 of 12 items needed: the smallest valid sum is 10
        assert_eq!(sum.total_range(), (10.0, 48.0));
        let items = [1.0, 2.0, f64::NAN, 3.0];
        assert_eq!(
            scale_score(items.iter().copied(), 4, TotalRule::ProratedSum),
            (3, 8.0)
        );
        assert_eq!(honos.total_of(&[1.0; 12]), Some(12.0));
        assert_eq!(honos.total_of(&[f64::NAN; 12]), None);
        // 9 = not known: missing, the total prorated from the 11 others
        let mut nine = [1.0; 12];
        nine[0] = 9.0;
        assert_eq!(honos.total_of(&nine), Some(12.0));
        // behaviour (items 1-3) has 2 of 3 answered: below 80%; social (9-12) all four
        assert_eq!(honos.subscale_of(&honos.subscales[0], &nine), None);
        assert_eq!(honos.subscale_of(&honos.subscales[3], &nine), Some(4.0));
    }
}
