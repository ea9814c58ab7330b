//! lme4 model formulas: parsing (`parse`), expansion into R's terms (this file) and model
//! matrices with R's column names (`design`).
//!
//! Expansion follows R's `terms.formula`: `a*b = a + b + a:b`, `a/b = a + a:b`, `-` removes
//! terms, `0`/`-1` drop the intercept; terms are ordered by their number of variables (main
//! effects, then two-way interactions, ...) keeping the order of appearance; the variables in
//! an interaction appear in the order they first occur in the formula. Random terms follow
//! lme4's `findbars`/`expandDoubleVerts`/`expandSlash`: `(x || g)` becomes `(1 | g) + (0 + x | g)`,
//! `(1 | a/b)` becomes `(1 | a) + (1 | b:a)`.
pub mod design;
pub mod parse;
pub mod value;

use thiserror::Error;

pub use design::{build_model_frame, ModelFrame, ReTermData};
pub use parse::Expr;
pub use value::{Formula, OUTCOME_PLACEHOLDER};

/// Errors in a formula or in its match to the data.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FormulaError {
    /// A syntax error at byte `pos` of `formula`; `Display` draws a caret under it.
    #[error("formula syntax error: {message}\n  {formula}\n  {caret}^", caret = " ".repeat(*pos))]
    Syntax {
        formula: String,
        pos: usize,
        message: String,
    },
    #[error("column `{name}` in the formula is not in the data (columns: {available})")]
    UnknownColumn { name: String, available: String },
    #[error("the response `{name}` must be numeric, but the column holds text (e.g. `{example}`)")]
    NonNumericResponse { name: String, example: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("no rows left after dropping rows with missing values in the model variables ({dropped} dropped)")]
    NoRows { dropped: usize },
    #[error("grouping factor `{group}` has {levels} level(s) in the data used; a random effect needs at least 2")]
    TooFewLevels { group: String, levels: usize },
    #[error("number of levels of grouping factor `{group}` ({levels}) must be smaller than the number of observations ({n})")]
    LevelsNotBelowObs {
        group: String,
        levels: usize,
        n: usize,
    },
    #[error("number of observations ({n}) <= number of random effects ({q}) for term ({term}); the random-effects parameters and the residual variance are probably unidentifiable")]
    TooManyRandomEffects { term: String, q: usize, n: usize },
    #[error("the formula needs at least one random-effects term such as `(1 | group)`")]
    NoRandomTerms,
}

/// One variable of a formula: a column, possibly wrapped in `factor()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// Name as R prints it in coefficient names: `arm`, `factor(x)`.
    pub label: String,
    /// The data column.
    pub column: String,
    /// `factor(x)`: treat the column as a factor even when numeric.
    pub as_factor: bool,
}

/// A set of terms with intercept flag (a fixed part or the left side of a random term).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TermList {
    pub intercept: bool,
    /// Each term: indices into [`ModelFormula::vars`], ascending (= order of appearance).
    pub terms: Vec<Vec<usize>>,
}

/// One random-effects term `(lhs | group)` after `||` and `/` expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomSpec {
    pub lhs: TermList,
    /// Columns whose interaction is the grouping factor, in lme4's naming order
    /// (`["cask", "batch"]` for the inner level of `batch/cask`).
    pub group_columns: Vec<String>,
    /// lme4's name of the grouping factor (`cask:batch`).
    pub group_name: String,
    /// Source text of the term, for messages.
    pub text: String,
}

/// A parsed and expanded lme4 formula.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFormula {
    pub source: String,
    pub response: String,
    pub vars: Vec<Variable>,
    pub fixed: TermList,
    pub random: Vec<RandomSpec>,
}

#[derive(Default)]
struct Expansion {
    terms: Vec<Vec<usize>>,
    intercept: Option<bool>,
}

fn push_unique(terms: &mut Vec<Vec<usize>>, t: Vec<usize>) {
    if !terms.contains(&t) {
        terms.push(t);
    }
}

fn union(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut v: Vec<usize> = a.iter().chain(b).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl ModelFormula {
    /// Parses and expands an lme4 formula such as `y ~ arm * wave + (1 | participant_id)`.
    pub fn parse(src: &str) -> Result<Self, FormulaError> {
        let (response, _, rhs) = parse::parse_formula(src)?;
        let mut f = ModelFormula {
            source: src.to_string(),
            response,
            vars: Vec::new(),
            fixed: TermList::default(),
            random: Vec::new(),
        };
        let mut fixed_parts = Vec::new();
        let mut bars = Vec::new();
        split_top(&rhs, &mut fixed_parts, &mut bars, src)?;
        let mut fixed = Expansion::default();
        for part in &fixed_parts {
            let (e, negate) = part;
            let ex = f.expand(e, src)?;
            if *negate {
                fixed.terms.retain(|t| !ex.terms.contains(t));
                if ex.intercept == Some(true) {
                    fixed.intercept = Some(false);
                }
            } else {
                for t in ex.terms {
                    push_unique(&mut fixed.terms, t);
                }
                if ex.intercept.is_some() {
                    fixed.intercept = ex.intercept;
                }
            }
        }
        f.fixed = TermList {
            intercept: fixed.intercept.unwrap_or(true),
            terms: order_terms(fixed.terms),
        };
        for (lhs, rhs, double, text) in bars {
            let ex = f.expand(lhs, src)?;
            let lhs_list = TermList {
                intercept: ex.intercept.unwrap_or(true),
                terms: order_terms(ex.terms),
            };
            let groups = group_terms(rhs, src)?;
            for (cols, group_name) in groups {
                if double {
                    // expandDoubleVerts: intercept alone, then each term with `0 +`.
                    if lhs_list.intercept {
                        f.random.push(RandomSpec {
                            lhs: TermList {
                                intercept: true,
                                terms: vec![],
                            },
                            group_columns: cols.clone(),
                            group_name: group_name.clone(),
                            text: format!("1 | {group_name}"),
                        });
                    }
                    for t in &lhs_list.terms {
                        f.random.push(RandomSpec {
                            lhs: TermList {
                                intercept: false,
                                terms: vec![t.clone()],
                            },
                            group_columns: cols.clone(),
                            group_name: group_name.clone(),
                            text: format!("0 + {} | {group_name}", f.term_label(t)),
                        });
                    }
                } else {
                    f.random.push(RandomSpec {
                        lhs: lhs_list.clone(),
                        group_columns: cols.clone(),
                        group_name: group_name.clone(),
                        text: text.clone(),
                    });
                }
            }
        }
        Ok(f)
    }

    /// `a:b` label of a term.
    pub fn term_label(&self, t: &[usize]) -> String {
        t.iter()
            .filter_map(|&i| self.vars.get(i).map(|v| v.label.clone()))
            .collect::<Vec<_>>()
            .join(":")
    }

    fn var_index(&mut self, label: &str, column: &str, as_factor: bool) -> usize {
        if let Some(i) = self.vars.iter().position(|v| v.label == label) {
            return i;
        }
        self.vars.push(Variable {
            label: label.to_string(),
            column: column.to_string(),
            as_factor,
        });
        self.vars.len() - 1
    }

    fn expand(&mut self, e: &Expr, src: &str) -> Result<Expansion, FormulaError> {
        Ok(match e {
            Expr::Var { name, .. } => Expansion {
                terms: vec![vec![self.var_index(name, name, false)]],
                intercept: None,
            },
            Expr::FactorCall { column, .. } => {
                let label = format!("factor({column})");
                Expansion {
                    terms: vec![vec![self.var_index(&label, column, true)]],
                    intercept: None,
                }
            }
            Expr::Num { value, pos } => {
                if *value == 1.0 {
                    Expansion {
                        terms: vec![],
                        intercept: Some(true),
                    }
                } else if *value == 0.0 {
                    Expansion {
                        terms: vec![],
                        intercept: Some(false),
                    }
                } else {
                    return Err(FormulaError::Syntax {
                        formula: src.to_string(),
                        pos: *pos,
                        message: "only 0 and 1 may appear as numbers in a formula".into(),
                    });
                }
            }
            Expr::Paren(x) => self.expand(x, src)?,
            Expr::Add(a, b) => {
                let mut ea = self.expand(a, src)?;
                let eb = self.expand(b, src)?;
                for t in eb.terms {
                    push_unique(&mut ea.terms, t);
                }
                if eb.intercept.is_some() {
                    ea.intercept = eb.intercept;
                }
                ea
            }
            Expr::Sub(a, b) => {
                let mut ea = self.expand(a, src)?;
                let eb = self.expand(b, src)?;
                ea.terms.retain(|t| !eb.terms.contains(t));
                if eb.intercept == Some(true) {
                    ea.intercept = Some(false);
                }
                ea
            }
            Expr::Neg(x, _) => {
                let ex = self.expand(x, src)?;
                Expansion {
                    terms: vec![],
                    intercept: if ex.intercept == Some(true) {
                        Some(false)
                    } else {
                        None
                    },
                }
            }
            Expr::Colon(a, b) => {
                let ea = self.expand(a, src)?;
                let eb = self.expand(b, src)?;
                let mut terms = Vec::new();
                for ta in &ea.terms {
                    for tb in &eb.terms {
                        push_unique(&mut terms, union(ta, tb));
                    }
                }
                Expansion {
                    terms,
                    intercept: None,
                }
            }
            Expr::Mul(a, b) => {
                let ea = self.expand(a, src)?;
                let eb = self.expand(b, src)?;
                let mut terms = ea.terms.clone();
                for t in &eb.terms {
                    push_unique(&mut terms, t.clone());
                }
                for ta in &ea.terms {
                    for tb in &eb.terms {
                        push_unique(&mut terms, union(ta, tb));
                    }
                }
                Expansion {
                    terms,
                    intercept: ea.intercept.or(eb.intercept),
                }
            }
            Expr::Slash(a, b) => {
                let ea = self.expand(a, src)?;
                let eb = self.expand(b, src)?;
                let all_a: Vec<usize> = ea.terms.iter().fold(Vec::new(), |acc, t| union(&acc, t));
                let mut terms = ea.terms.clone();
                for tb in &eb.terms {
                    push_unique(&mut terms, union(&all_a, tb));
                }
                Expansion {
                    terms,
                    intercept: ea.intercept,
                }
            }
            Expr::Bar { pos, .. } => {
                return Err(FormulaError::Syntax {
                    formula: src.to_string(),
                    pos: *pos,
                    message: "a random-effects term cannot be combined with `*`, `:` or `/`".into(),
                })
            }
        })
    }
}

type Bar<'a> = (&'a Expr, &'a Expr, bool, String);

/// Splits the right-hand side at top-level `+`/`-` into fixed parts and random terms.
fn split_top<'a>(
    e: &'a Expr,
    fixed: &mut Vec<(&'a Expr, bool)>,
    bars: &mut Vec<Bar<'a>>,
    src: &str,
) -> Result<(), FormulaError> {
    match e {
        Expr::Add(a, b) => {
            split_top(a, fixed, bars, src)?;
            split_top(b, fixed, bars, src)
        }
        Expr::Sub(a, b) => {
            split_top(a, fixed, bars, src)?;
            if let Expr::Bar { pos, .. } = b.as_ref() {
                return Err(FormulaError::Syntax {
                    formula: src.to_string(),
                    pos: *pos,
                    message: "a random-effects term cannot be subtracted".into(),
                });
            }
            fixed.push((b, true));
            Ok(())
        }
        Expr::Bar {
            lhs, rhs, double, ..
        } => {
            bars.push((lhs, rhs, *double, String::new()));
            if let Some(last) = bars.last_mut() {
                last.3 = format!(
                    "{} {} {}",
                    expr_text(lhs),
                    if *double { "||" } else { "|" },
                    expr_text(rhs)
                );
            }
            Ok(())
        }
        Expr::Paren(x) if matches!(x.as_ref(), Expr::Bar { .. }) => split_top(x, fixed, bars, src),
        other => {
            fixed.push((other, false));
            Ok(())
        }
    }
}

/// Text of an expression as R deparses it (for messages and term labels); a bar as
/// `lhs | g` (its parentheses are the caller's).
pub fn expr_text(e: &Expr) -> String {
    deparse(e, false)
}

/// [`expr_text`], or with `bars_in_parens` every random-effects term as `(lhs | g)` (a whole
/// formula: the parser keeps `(lhs | g)` as one bar node).
pub(crate) fn deparse(e: &Expr, bars_in_parens: bool) -> String {
    let d = |x: &Expr| deparse(x, bars_in_parens);
    match e {
        Expr::Var { name, .. } => name.clone(),
        Expr::FactorCall { column, .. } => format!("factor({column})"),
        Expr::Num { value, .. } => format!("{value}"),
        Expr::Add(a, b) => format!("{} + {}", d(a), d(b)),
        Expr::Sub(a, b) => format!("{} - {}", d(a), d(b)),
        Expr::Neg(x, _) => format!("-{}", d(x)),
        Expr::Mul(a, b) => format!("{} * {}", d(a), d(b)),
        Expr::Colon(a, b) => format!("{}:{}", d(a), d(b)),
        Expr::Slash(a, b) => format!("{}/{}", d(a), d(b)),
        Expr::Bar {
            lhs, rhs, double, ..
        } => {
            let bar = format!("{} {} {}", d(lhs), if *double { "||" } else { "|" }, d(rhs));
            if bars_in_parens {
                format!("({bar})")
            } else {
                bar
            }
        }
        Expr::Paren(x) if bars_in_parens && matches!(x.as_ref(), Expr::Bar { .. }) => d(x),
        Expr::Paren(x) => format!("({})", d(x)),
    }
}

/// Grouping-factor specifications of the right side of a bar (lme4 `expandSlash`): the
/// columns whose interaction is the factor, and lme4's name (`b:a` for the inner level of
/// `a/b`, `id:(group:site)` for the innermost level of `site/group/id`).
fn group_terms(e: &Expr, src: &str) -> Result<Vec<(Vec<String>, String)>, FormulaError> {
    match e {
        Expr::Var { name, .. } => Ok(vec![(vec![name.clone()], name.clone())]),
        Expr::FactorCall { column, .. } => Ok(vec![(vec![column.clone()], column.clone())]),
        Expr::Paren(x) => group_terms(x, src),
        Expr::Colon(a, b) => {
            let ga = group_terms(a, src)?;
            let gb = group_terms(b, src)?;
            let mut out = Vec::new();
            for (xc, xn) in &ga {
                for (yc, yn) in &gb {
                    let mut v = xc.clone();
                    v.extend(yc.iter().cloned());
                    out.push((v, format!("{xn}:{yn}")));
                }
            }
            Ok(out)
        }
        Expr::Slash(a, b) => {
            let ga = group_terms(a, src)?;
            let gb = group_terms(b, src)?;
            let (outer_cols, outer_name) = ga.last().cloned().unwrap_or_default();
            let outer_label = if outer_cols.len() > 1 {
                format!("({outer_name})")
            } else {
                outer_name
            };
            let mut out = ga;
            for (yc, yn) in gb {
                let mut v = yc.clone();
                v.extend(outer_cols.iter().cloned());
                out.push((v, format!("{yn}:{outer_label}")));
            }
            Ok(out)
        }
        other => {
            let pos = match other {
                Expr::Num { pos, .. } | Expr::Neg(_, pos) | Expr::Bar { pos, .. } => *pos,
                _ => 0,
            };
            Err(FormulaError::Syntax {
                formula: src.to_string(),
                pos,
                message: format!(
                    "the grouping factor `{}` must be a column, `a:b` or `a/b`",
                    expr_text(other)
                ),
            })
        }
    }
}

/// Stable order by number of variables (R's term order).
fn order_terms(mut terms: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
    terms.sort_by_key(|t| t.len());
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(f: &ModelFormula, tl: &TermList) -> Vec<String> {
        tl.terms.iter().map(|t| f.term_label(t)).collect()
    }

    #[test]
    fn expands_like_r() {
        let f = ModelFormula::parse("y ~ arm * wave + (1 | id)").unwrap();
        assert_eq!(labels(&f, &f.fixed), vec!["arm", "wave", "arm:wave"]);
        assert!(f.fixed.intercept);
        let f = ModelFormula::parse("y ~ 0 + a:b + a - 1 + (1|g)").unwrap();
        assert_eq!(labels(&f, &f.fixed), vec!["a", "a:b"]);
        assert!(!f.fixed.intercept);
        let f = ModelFormula::parse("y ~ a*b*c - a:b:c + (1|g)").unwrap();
        assert_eq!(
            labels(&f, &f.fixed),
            vec!["a", "b", "c", "a:b", "a:c", "b:c"]
        );
    }

    #[test]
    fn random_terms_expand_like_lme4() {
        let f = ModelFormula::parse("y ~ 1 + (1 | batch/cask)").unwrap();
        let names: Vec<_> = f.random.iter().map(|r| r.group_name.clone()).collect();
        assert_eq!(names, vec!["batch", "cask:batch"]);
        let f = ModelFormula::parse("y ~ x + (x || g)").unwrap();
        assert_eq!(f.random.len(), 2);
        assert!(f.random[0].lhs.intercept && f.random[0].lhs.terms.is_empty());
        assert!(!f.random[1].lhs.intercept);
        let f = ModelFormula::parse("y ~ x + (1 | a:b)").unwrap();
        assert_eq!(f.random[0].group_name, "a:b");
        let f = ModelFormula::parse("y ~ x + (1 | site/group/id)").unwrap();
        let names: Vec<_> = f.random.iter().map(|r| r.group_name.clone()).collect();
        assert_eq!(names, vec!["site", "group:site", "id:(group:site)"]);
        assert_eq!(f.random[2].group_columns, vec!["id", "group", "site"]);
    }
}
