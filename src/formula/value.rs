//! A model formula as a value, changed by typed operations instead of text edits: add a
//! random-effects term, add a slope to a grouping factor's intercept term, ask which columns
//! it uses, and render it back as R deparses it (`y ~ arm * wave + (1 | participant_id)`).
//!
//! Analysis specs write formulas as templates with `{outcome}` for the response
//! (`{outcome} ~ arm * wave + (1 | participant_id)`): [`Formula::template`] parses them with the
//! modelling frame's response column `y`, and [`Formula::display`] shows the outcome's name.
use std::fmt;

use super::parse::{parse_formula, Expr};
use super::{deparse, FormulaError};

/// The placeholder of the response in spec formulas.
pub const OUTCOME_PLACEHOLDER: &str = "{outcome}";

/// A parsed formula `response ~ rhs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    response: String,
    rhs: Expr,
}

impl Formula {
    /// Parses `response ~ rhs` (lme4 syntax).
    pub fn parse(src: &str) -> Result<Formula, FormulaError> {
        let (response, _, rhs) = parse_formula(src)?;
        Ok(Formula { response, rhs })
    }

    /// Parses a spec template, `{outcome}` standing for the response, with `response` as the
    /// response column (the modelling frames call it `y`).
    pub fn template(src: &str, response: &str) -> Result<Formula, FormulaError> {
        Formula::parse(&src.replace(OUTCOME_PLACEHOLDER, response))
    }

    /// The response column.
    pub fn response(&self) -> &str {
        &self.response
    }

    /// The same formula with another response column.
    pub fn with_response(&self, response: &str) -> Formula {
        Formula {
            response: response.to_string(),
            rhs: self.rhs.clone(),
        }
    }

    /// The formula with `+ (lhs | group)` appended, e.g. `add_random("1", "site_id")` or
    /// `add_random("0 + imr", "group_id")`.
    pub fn add_random(&self, lhs: &str, group: &str) -> Result<Formula, FormulaError> {
        let term = Formula::parse(&format!("y ~ ({lhs} | {group})"))?.rhs;
        Ok(Formula {
            response: self.response.clone(),
            rhs: Expr::Add(Box::new(self.rhs.clone()), Box::new(term)),
        })
    }

    /// The formula with fixed-effect terms appended: `add_fixed("fidelity_c + wave:fidelity_c")`.
    pub fn add_fixed(&self, terms: &str) -> Result<Formula, FormulaError> {
        let t = Formula::parse(&format!("y ~ {terms}"))?.rhs;
        Ok(Formula {
            response: self.response.clone(),
            rhs: Expr::Add(Box::new(self.rhs.clone()), Box::new(t)),
        })
    }

    /// Whether a random-effects term is grouped by exactly `group`.
    pub fn has_grouping(&self, group: &str) -> bool {
        let mut found = false;
        visit_bars(&self.rhs, &mut |_, rhs| {
            if matches!(rhs, Expr::Var { name, .. } if name == group) {
                found = true;
            }
        });
        found
    }

    /// Whether the formula uses the column anywhere (fixed or random part, or as response).
    pub fn uses_column(&self, column: &str) -> bool {
        self.response == column || mentions(&self.rhs, column)
    }

    /// Every column the right-hand side names (fixed and random parts, `factor(x)` as `x`), in
    /// order of first appearance.
    pub fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_columns(&self.rhs, &mut out);
        out
    }

    /// The intercept-only term `(1 | group)` extended by a slope: `(1 + var | group)` (lme4's
    /// correlated random intercept and slope). `None` when there is no such term.
    pub fn add_slope(&self, group: &str, var: &str) -> Option<Formula> {
        let mut rhs = self.rhs.clone();
        let changed = extend_intercept_term(&mut rhs, group, var);
        changed.then(|| Formula {
            response: self.response.clone(),
            rhs,
        })
    }

    /// The text with `shown` as the response (e.g. the outcome's name instead of `y`).
    pub fn display(&self, shown: &str) -> String {
        format!("{shown} ~ {}", render(&self.rhs))
    }
}

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ~ {}", self.response, render(&self.rhs))
    }
}

/// The text of a right-hand side as R deparses it, random-effects terms in parentheses.
fn render(e: &Expr) -> String {
    deparse(e, true)
}

fn visit_bars(e: &Expr, f: &mut dyn FnMut(&Expr, &Expr)) {
    match e {
        Expr::Bar { lhs, rhs, .. } => f(lhs, rhs),
        Expr::Add(a, b)
        | Expr::Sub(a, b)
        | Expr::Mul(a, b)
        | Expr::Colon(a, b)
        | Expr::Slash(a, b) => {
            visit_bars(a, f);
            visit_bars(b, f);
        }
        Expr::Neg(x, _) | Expr::Paren(x) => visit_bars(x, f),
        Expr::Var { .. } | Expr::FactorCall { .. } | Expr::Num { .. } => {}
    }
}

fn collect_columns(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Var { name, .. } | Expr::FactorCall { column: name, .. } => {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        Expr::Num { .. } => {}
        Expr::Add(a, b)
        | Expr::Sub(a, b)
        | Expr::Mul(a, b)
        | Expr::Colon(a, b)
        | Expr::Slash(a, b)
        | Expr::Bar { lhs: a, rhs: b, .. } => {
            collect_columns(a, out);
            collect_columns(b, out);
        }
        Expr::Neg(x, _) | Expr::Paren(x) => collect_columns(x, out),
    }
}

fn mentions(e: &Expr, column: &str) -> bool {
    match e {
        Expr::Var { name, .. } => name == column,
        Expr::FactorCall { column: c, .. } => c == column,
        Expr::Num { .. } => false,
        Expr::Add(a, b)
        | Expr::Sub(a, b)
        | Expr::Mul(a, b)
        | Expr::Colon(a, b)
        | Expr::Slash(a, b) => mentions(a, column) || mentions(b, column),
        Expr::Bar { lhs, rhs, .. } => mentions(lhs, column) || mentions(rhs, column),
        Expr::Neg(x, _) | Expr::Paren(x) => mentions(x, column),
    }
}

fn is_intercept_only(e: &Expr) -> bool {
    match e {
        Expr::Num { value, .. } => *value == 1.0,
        Expr::Paren(x) => is_intercept_only(x),
        _ => false,
    }
}

fn extend_intercept_term(e: &mut Expr, group: &str, var: &str) -> bool {
    match e {
        Expr::Bar { lhs, rhs, .. } => {
            let grouped = matches!(rhs.as_ref(), Expr::Var { name, .. } if name == group);
            if grouped && is_intercept_only(lhs) {
                let pos = 0;
                **lhs = Expr::Add(
                    Box::new(Expr::Num { value: 1.0, pos }),
                    Box::new(Expr::Var {
                        name: var.to_string(),
                        pos,
                    }),
                );
                true
            } else {
                false
            }
        }
        Expr::Add(a, b)
        | Expr::Sub(a, b)
        | Expr::Mul(a, b)
        | Expr::Colon(a, b)
        | Expr::Slash(a, b) => {
            extend_intercept_term(a, group, var) || extend_intercept_term(b, group, var)
        }
        Expr::Neg(x, _) | Expr::Paren(x) => extend_intercept_term(x, group, var),
        Expr::Var { .. } | Expr::FactorCall { .. } | Expr::Num { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_lists_every_named_column_once() {
        let f = Formula::template(
            "{outcome} ~ arm * wave + age + factor(edu) + arm:age + (1 + months | participant_id)",
            "y",
        )
        .unwrap();
        assert_eq!(
            f.columns(),
            ["arm", "wave", "age", "edu", "months", "participant_id"]
        );
    }

    #[test]
    fn typed_operations_render_as_r_deparses() {
        let f = Formula::template("{outcome} ~ arm * wave + (1 | participant_id)", "y").unwrap();
        assert_eq!(f.to_string(), "y ~ arm * wave + (1 | participant_id)");
        assert_eq!(
            f.display("honos"),
            "honos ~ arm * wave + (1 | participant_id)"
        );
        let s = f.add_random("1", "site_id").unwrap();
        assert_eq!(
            s.to_string(),
            "y ~ arm * wave + (1 | participant_id) + (1 | site_id)"
        );
        let g = f.add_random("0 + imr", "group_id").unwrap();
        assert_eq!(
            g.to_string(),
            "y ~ arm * wave + (1 | participant_id) + (0 + imr | group_id)"
        );
        assert!(g.has_grouping("group_id") && g.uses_column("imr"));
        assert!(!f.has_grouping("group_id") && !f.uses_column("group_id"));
        let m = f.add_fixed("fidelity_c + wave:fidelity_c").unwrap();
        assert_eq!(
            m.display("honos"),
            "honos ~ arm * wave + (1 | participant_id) + fidelity_c + wave:fidelity_c"
        );
        assert_eq!(
            f.display(OUTCOME_PLACEHOLDER),
            "{outcome} ~ arm * wave + (1 | participant_id)"
        );
        let r = f.add_slope("participant_id", "months").unwrap();
        assert_eq!(
            r.to_string(),
            "y ~ arm * wave + (1 + months | participant_id)"
        );
    }

    #[test]
    fn slope_is_added_whatever_the_spacing_and_only_to_an_intercept_term() {
        let f = Formula::parse("y~arm*wave+(1|participant_id)").unwrap();
        let r = f.add_slope("participant_id", "months").unwrap();
        assert_eq!(
            r.to_string(),
            "y ~ arm * wave + (1 + months | participant_id)"
        );
        assert!(r.add_slope("participant_id", "months").is_none());
        assert!(f.add_slope("site_id", "months").is_none());
        let n = Formula::parse("y ~ x + (1 | site_id/participant_id)").unwrap();
        assert!(n.add_slope("participant_id", "months").is_none());
        assert_eq!(f.with_response("bsi").response(), "bsi");
    }
}
