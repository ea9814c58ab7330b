//! Number formatting in APA style (Publication Manual of the American Psychological Association,
//! 7th ed., section 6.36): p-values exact to three decimals without a leading zero and
//! `< .001` below that; statistics that cannot exceed 1 (p, d as the project asks) without a
//! leading zero; confidence intervals in brackets. Labels for instruments, analysis sets and
//! models live here too so every output names things the same way.

use crate::results::{InstrumentInfo, Results};

/// Not available (R's `NA`) in a display table.
pub const NOT_AVAILABLE: &str = "\u{2014}";

/// Formats `x` with `decimals` decimals; `NaN` or infinite as an em dash. Negative zero
/// after rounding is printed without its sign.
pub fn num(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return NOT_AVAILABLE.to_string();
    }
    let s = format!("{x:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Drops the zero before the decimal point: `0.048` -> `.048`, `-0.34` -> `-.34`.
pub fn strip_leading_zero(s: &str) -> String {
    if let Some(rest) = s.strip_prefix("0.") {
        format!(".{rest}")
    } else if let Some(rest) = s.strip_prefix("-0.") {
        format!("-.{rest}")
    } else {
        s.to_string()
    }
}

/// A p-value in APA style with `decimals` decimals (3 in APA): `< .001`, `.048`, `> .999`.
pub fn p_value(p: f64, decimals: usize) -> String {
    if !p.is_finite() || !(0.0..=1.0).contains(&p) {
        return NOT_AVAILABLE.to_string();
    }
    let decimals = decimals.max(1);
    let floor = 10f64.powi(-(decimals as i32));
    if p < floor {
        return format!("< {}", strip_leading_zero(&num(floor, decimals)));
    }
    let s = num(p, decimals);
    if s.starts_with('1') {
        // Rounds to 1: say "> .999" rather than the impossible-looking "1.000".
        return format!("> {}", strip_leading_zero(&num(1.0 - floor, decimals)));
    }
    strip_leading_zero(&s)
}

/// `p = .048` or `p < .001`, for running text.
pub fn p_text(p: f64, decimals: usize) -> String {
    let s = p_value(p, decimals);
    if s.starts_with('<') || s.starts_with('>') {
        format!("p {s}")
    } else {
        format!("p = {s}")
    }
}

/// A standardized effect (Cohen's d) without a leading zero.
pub fn effect_size(d: f64, decimals: usize) -> String {
    strip_leading_zero(&num(d, decimals))
}

/// A confidence interval `[low, high]`.
pub fn interval(low: f64, high: f64, decimals: usize) -> String {
    if !low.is_finite() && !high.is_finite() {
        return NOT_AVAILABLE.to_string();
    }
    format!("[{}, {}]", num(low, decimals), num(high, decimals))
}

/// A confidence interval of an effect size, without leading zeros.
pub fn interval_no_zero(low: f64, high: f64, decimals: usize) -> String {
    if !low.is_finite() && !high.is_finite() {
        return NOT_AVAILABLE.to_string();
    }
    format!(
        "[{}, {}]",
        effect_size(low, decimals),
        effect_size(high, decimals)
    )
}

/// Degrees of freedom: one decimal when fractional (Satterthwaite), none when integral.
pub fn df(x: f64) -> String {
    if !x.is_finite() {
        return NOT_AVAILABLE.to_string();
    }
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        num(x, 1)
    }
}

/// `n (%)` with one decimal for the percentage.
pub fn count_percent(count: u64, percent: f64) -> String {
    format!("{count} ({})", num(percent, 1))
}

/// `mean (SD)`.
pub fn mean_sd(mean: f64, sd: f64, decimals: usize) -> String {
    format!("{} ({})", num(mean, decimals), num(sd, decimals))
}

/// `median [Q1, Q3]`.
pub fn median_iqr(median: f64, q1: f64, q3: f64, decimals: usize) -> String {
    format!(
        "{} [{}, {}]",
        num(median, decimals),
        num(q1, decimals),
        num(q3, decimals)
    )
}

/// A full-precision number for CSV (shortest representation that reads back exactly);
/// empty for `NaN` (R's `read.csv` reads an empty numeric cell as `NA`).
pub fn raw(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
    }
}

/// Display names and units of the outcomes of one run, from the instruments' schema
/// metadata in [`Results::instruments`] (nothing here names an instrument).
#[derive(Debug, Clone, Default)]
pub struct Labels {
    instruments: Vec<InstrumentInfo>,
    intervention: String,
}

impl Labels {
    pub fn of(r: &Results) -> Labels {
        Labels {
            instruments: r.instruments.clone(),
            intervention: r.study.intervention.clone(),
        }
    }

    /// The short name of a score: the instrument's label, `Arm (<intervention>)` for the
    /// treatment indicator, else the name with spaces for `_`.
    pub fn outcome(&self, name: &str) -> String {
        if let Some(i) = self.instruments.iter().find(|i| i.name == name) {
            return i.label.clone();
        }
        if name == "arm" && !self.intervention.is_empty() {
            return format!("Arm ({})", self.intervention);
        }
        name.replace('_', " ")
    }

    /// The intervention arm's label.
    pub fn intervention(&self) -> &str {
        &self.intervention
    }

    /// What a score is, for axis labels (`score` when the schema does not say).
    pub fn unit(&self, name: &str) -> String {
        self.instruments
            .iter()
            .find(|i| i.name == name)
            .map_or_else(|| "score".to_string(), |i| i.unit.clone())
    }
}

/// The display name of an analysis set.
pub fn analysis_set_label(name: &str) -> String {
    match name {
        "itt" => "ITT".into(),
        "per_protocol" | "completers" => "Per protocol".into(),
        "fidelity_high" => "High fidelity".into(),
        "fidelity_moderate" => "Moderate fidelity".into(),
        other => other.replace('_', " "),
    }
}

/// The display name of a sensitivity model (`None`: the main model).
pub fn sensitivity_label(name: Option<&str>) -> String {
    match name {
        None => "Main".into(),
        Some("site") => "+ site".into(),
        Some("groups") | Some("partially_nested") => "+ IMR groups".into(),
        Some("random_slope") => "+ random slope".into(),
        Some("random_slope_rejected") => "random slope not preferred (AIC)".into(),
        Some(other) => format!("+ {}", other.replace('_', " ")),
    }
}

/// The df method as a reader knows it.
pub fn df_method_label(name: &str) -> String {
    match name {
        "satterthwaite" => "Satterthwaite".into(),
        "kenward-roger" | "kenward_roger" | "kr" => "Kenward-Roger".into(),
        "none" | "asymptotic" => "asymptotic (z)".into(),
        other => other.into(),
    }
}

/// The name of a mediation analysis.
pub fn mediation_label(name: &str) -> String {
    match name {
        "change_scores" => "Change scores (last wave \u{2212} baseline)".into(),
        "within_person" => "Within person, all waves".into(),
        "treatment" => "Treatment level".into(),
        "within_person_random_slopes" => {
            "Within person, random slopes (average indirect effect)".into()
        }
        other => other.replace('_', " "),
    }
}

/// The display name of a mediation path.
pub fn path_label(path: &str) -> String {
    match path {
        "c_prime" => "c\u{2032}".into(),
        "a1b1" => "a1 \u{00d7} b1".into(),
        "a2b2" => "a2 \u{00d7} b2".into(),
        "ab" => "a \u{00d7} b".into(),
        "sum" => "Total indirect".into(),
        p if p.starts_with("cov_a") && p.len() >= 6 => {
            format!("cov(a{0}j, b{0}j)", &p[5..6])
        }
        p if p.starts_with("c_prime_") => format!("c\u{2032} (M{})", &p[8..]),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_in_apa_style() {
        assert_eq!(p_value(0.0004, 3), "< .001");
        assert_eq!(p_value(0.001, 3), ".001");
        assert_eq!(p_value(0.0482, 3), ".048");
        assert_eq!(p_value(0.5, 3), ".500");
        assert_eq!(p_value(0.9996, 3), "> .999");
        assert_eq!(p_value(0.0482, 2), ".05");
        assert_eq!(p_value(0.004, 2), "< .01");
        assert_eq!(p_value(f64::NAN, 3), NOT_AVAILABLE);
        assert_eq!(p_value(1.5, 3), NOT_AVAILABLE);
        assert_eq!(p_text(0.0482, 3), "p = .048");
        assert_eq!(p_text(0.00001, 3), "p < .001");
    }

    #[test]
    fn effect_sizes_lose_the_leading_zero() {
        assert_eq!(effect_size(0.341, 2), ".34");
        assert_eq!(effect_size(-0.341, 2), "-.34");
        assert_eq!(effect_size(1.234, 2), "1.23");
        assert_eq!(interval_no_zero(-0.05, 0.72, 2), "[-.05, .72]");
    }

    #[test]
    fn numbers_and_intervals() {
        assert_eq!(num(1.23456, 2), "1.23");
        assert_eq!(num(-0.001, 2), "0.00");
        assert_eq!(num(f64::NAN, 2), NOT_AVAILABLE);
        assert_eq!(interval(-1.0, 2.5, 2), "[-1.00, 2.50]");
        assert_eq!(df(171.0), "171");
        assert_eq!(df(171.234), "171.2");
        assert_eq!(count_percent(45, 38.79), "45 (38.8)");
        assert_eq!(mean_sd(41.2, 11.04, 1), "41.2 (11.0)");
        assert_eq!(raw(0.1), "0.1");
        assert_eq!(raw(f64::NAN), "");
    }
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn labels_come_from_the_schema_metadata() {
        let mut r = Results::default();
        r.study.intervention = "STAIRS".into();
        r.instruments.push(InstrumentInfo {
            name: "cans".into(),
            title: "Camberwell Assessment of Need".into(),
            label: "CANSAS".into(),
            unit: "unmet needs, 0-22".into(),
            ..InstrumentInfo::default()
        });
        let l = Labels::of(&r);
        assert_eq!(l.outcome("cans"), "CANSAS");
        assert_eq!(l.unit("cans"), "unmet needs, 0-22");
        assert_eq!(l.outcome("my_scale"), "my scale");
        assert_eq!(l.unit("my_scale"), "score");
        assert_eq!(l.outcome("arm"), "Arm (STAIRS)");
    }
}
