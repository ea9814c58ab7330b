//! Tokenizer and recursive-descent parser for lme4 model formulas
//! (`y ~ a * b + (1 + x | g) + (1 | a/b)`), with byte positions for error messages.
//!
//! Operator precedence follows R's formula grammar: `|`/`||` (inside parentheses) lowest, then
//! `+`/`-`, then `*` and `/`, then `:`, then `^` (not supported).
use super::FormulaError;

/// A parsed formula expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A column name (bare or back-quoted).
    Var {
        name: String,
        pos: usize,
    },
    /// `factor(x)`: a numeric or string column used as a factor.
    FactorCall {
        column: String,
        pos: usize,
    },
    /// A number: `0`, `1` (intercept control) or `-1`.
    Num {
        value: f64,
        pos: usize,
    },
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    /// `-x` at the start of an expression (e.g. `-1`).
    Neg(Box<Expr>, usize),
    Mul(Box<Expr>, Box<Expr>),
    Colon(Box<Expr>, Box<Expr>),
    Slash(Box<Expr>, Box<Expr>),
    /// `(lhs | rhs)` or `(lhs || rhs)` (`double`).
    Bar {
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        double: bool,
        pos: usize,
    },
    Paren(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Num(f64),
    Plus,
    Minus,
    Star,
    Colon,
    Slash,
    Bar,
    DoubleBar,
    LParen,
    RParen,
    Tilde,
    Caret,
    Comma,
}

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, FormulaError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        let start = i;
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                i += 1;
                continue;
            }
            '+' => out.push((Tok::Plus, start)),
            '-' => out.push((Tok::Minus, start)),
            '*' => out.push((Tok::Star, start)),
            ':' => out.push((Tok::Colon, start)),
            '/' => out.push((Tok::Slash, start)),
            '^' => out.push((Tok::Caret, start)),
            ',' => out.push((Tok::Comma, start)),
            '(' => out.push((Tok::LParen, start)),
            ')' => out.push((Tok::RParen, start)),
            '~' => out.push((Tok::Tilde, start)),
            '|' => {
                if bytes.get(i + 1) == Some(&b'|') {
                    out.push((Tok::DoubleBar, start));
                    i += 1;
                } else {
                    out.push((Tok::Bar, start));
                }
            }
            '`' => {
                let end = src[i + 1..].find('`').ok_or_else(|| FormulaError::Syntax {
                    formula: src.to_string(),
                    pos: start,
                    message: "unterminated back-quoted name".into(),
                })?;
                out.push((Tok::Name(src[i + 1..i + 1 + end].to_string()), start));
                i += end + 2;
                continue;
            }
            c if c.is_ascii_digit()
                || (c == '.' && bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit())) =>
            {
                let mut j = i;
                while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
                    j += 1;
                }
                let v: f64 = src[i..j].parse().map_err(|_| FormulaError::Syntax {
                    formula: src.to_string(),
                    pos: start,
                    message: format!("`{}` is not a number", &src[i..j]),
                })?;
                out.push((Tok::Num(v), start));
                i = j;
                continue;
            }
            c if c.is_alphabetic() || c == '.' || c == '_' || !c.is_ascii() => {
                let mut j = i;
                while j < bytes.len() {
                    let ch = src[j..].chars().next().unwrap_or(' ');
                    if ch.is_alphanumeric() || ch == '.' || ch == '_' {
                        j += ch.len_utf8();
                    } else {
                        break;
                    }
                }
                if j == i {
                    return Err(FormulaError::Syntax {
                        formula: src.to_string(),
                        pos: start,
                        message: format!("unexpected character `{c}`"),
                    });
                }
                out.push((Tok::Name(src[i..j].to_string()), start));
                i = j;
                continue;
            }
            other => {
                return Err(FormulaError::Syntax {
                    formula: src.to_string(),
                    pos: start,
                    message: format!("unexpected character `{other}`"),
                })
            }
        }
        i += 1;
    }
    Ok(out)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.0)
    }
    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.src.len(), |t| t.1)
    }
    fn err<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, FormulaError> {
        Err(FormulaError::Syntax {
            formula: self.src.to_string(),
            pos,
            message: message.into(),
        })
    }

    /// sum := prod (('+' | '-') prod)*
    fn sum(&mut self, allow_bar: bool) -> Result<Expr, FormulaError> {
        let mut lhs = if self.peek() == Some(&Tok::Minus) {
            let p = self.pos();
            self.at += 1;
            Expr::Neg(Box::new(self.prod(allow_bar)?), p)
        } else {
            self.prod(allow_bar)?
        };
        loop {
            match self.peek() {
                Some(Tok::Plus) => {
                    self.at += 1;
                    let rhs = self.prod(allow_bar)?;
                    lhs = Expr::Add(Box::new(lhs), Box::new(rhs));
                }
                Some(Tok::Minus) => {
                    self.at += 1;
                    let rhs = self.prod(allow_bar)?;
                    lhs = Expr::Sub(Box::new(lhs), Box::new(rhs));
                }
                _ => return Ok(lhs),
            }
        }
    }

    /// prod := inter (('*' | '/') inter)*
    fn prod(&mut self, allow_bar: bool) -> Result<Expr, FormulaError> {
        let mut lhs = self.inter(allow_bar)?;
        loop {
            match self.peek() {
                Some(Tok::Star) => {
                    self.at += 1;
                    let rhs = self.inter(allow_bar)?;
                    lhs = Expr::Mul(Box::new(lhs), Box::new(rhs));
                }
                Some(Tok::Slash) => {
                    self.at += 1;
                    let rhs = self.inter(allow_bar)?;
                    lhs = Expr::Slash(Box::new(lhs), Box::new(rhs));
                }
                _ => return Ok(lhs),
            }
        }
    }

    /// inter := atom (':' atom)*
    fn inter(&mut self, allow_bar: bool) -> Result<Expr, FormulaError> {
        let mut lhs = self.atom(allow_bar)?;
        while self.peek() == Some(&Tok::Colon) {
            self.at += 1;
            let rhs = self.atom(allow_bar)?;
            lhs = Expr::Colon(Box::new(lhs), Box::new(rhs));
        }
        if self.peek() == Some(&Tok::Caret) {
            return self.err(
                self.pos(),
                "`^` is not supported; write the interactions out",
            );
        }
        Ok(lhs)
    }

    fn atom(&mut self, allow_bar: bool) -> Result<Expr, FormulaError> {
        let pos = self.pos();
        match self.peek().cloned() {
            Some(Tok::Name(name)) => {
                self.at += 1;
                if self.peek() == Some(&Tok::LParen) {
                    if name != "factor" && name != "as.factor" {
                        return self.err(
                            pos,
                            format!(
                                "function `{name}()` is not supported in formulas (only factor())"
                            ),
                        );
                    }
                    self.at += 1;
                    let inner_pos = self.pos();
                    let column = match self.peek().cloned() {
                        Some(Tok::Name(c)) => {
                            self.at += 1;
                            c
                        }
                        _ => return self.err(inner_pos, "expected a column name inside factor()"),
                    };
                    if self.peek() != Some(&Tok::RParen) {
                        return self.err(self.pos(), "expected `)`");
                    }
                    self.at += 1;
                    Ok(Expr::FactorCall { column, pos })
                } else {
                    Ok(Expr::Var { name, pos })
                }
            }
            Some(Tok::Num(v)) => {
                self.at += 1;
                Ok(Expr::Num { value: v, pos })
            }
            Some(Tok::LParen) => {
                self.at += 1;
                let inner = self.sum(allow_bar)?;
                let out = match self.peek() {
                    Some(Tok::Bar) | Some(Tok::DoubleBar) => {
                        if !allow_bar {
                            return self.err(
                                self.pos(),
                                "random-effects terms `( | )` belong on the right of `~`, not nested",
                            );
                        }
                        let double = self.peek() == Some(&Tok::DoubleBar);
                        let bar_pos = self.pos();
                        self.at += 1;
                        let rhs = self.sum(false)?;
                        Expr::Bar {
                            lhs: Box::new(inner),
                            rhs: Box::new(rhs),
                            double,
                            pos: bar_pos,
                        }
                    }
                    _ => Expr::Paren(Box::new(inner)),
                };
                if self.peek() != Some(&Tok::RParen) {
                    return self.err(self.pos(), "expected `)`");
                }
                self.at += 1;
                Ok(out)
            }
            Some(_) => self.err(pos, "expected a column name, a number or `(`"),
            None => self.err(pos, "unexpected end of formula"),
        }
    }
}

/// Parses `response ~ rhs`; returns the response column name and the right-hand side.
pub fn parse_formula(src: &str) -> Result<(String, usize, Expr), FormulaError> {
    let toks = tokenize(src)?;
    let mut p = Parser { src, toks, at: 0 };
    let resp_pos = p.pos();
    let response = match p.peek().cloned() {
        Some(Tok::Name(n)) => {
            p.at += 1;
            n
        }
        Some(Tok::Tilde) => return p.err(resp_pos, "the formula needs a response before `~`"),
        _ => return p.err(resp_pos, "expected the response column name"),
    };
    if p.peek() != Some(&Tok::Tilde) {
        return p.err(p.pos(), "expected `~` after the response");
    }
    p.at += 1;
    let rhs = p.sum(true)?;
    if p.at < p.toks.len() {
        return p.err(p.pos(), "unexpected token");
    }
    Ok((response, resp_pos, rhs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_random_terms() {
        let (resp, _, rhs) = parse_formula("y ~ a*b + (1 + x | g) + (x || h)").unwrap();
        assert_eq!(resp, "y");
        let s = format!("{rhs:?}");
        assert!(s.contains("double: true"));
        assert!(s.contains("Mul"));
    }

    #[test]
    fn error_positions() {
        match parse_formula("y ~ a + + b") {
            Err(FormulaError::Syntax { pos, .. }) => assert_eq!(pos, 8),
            other => panic!("{other:?}"),
        }
        match parse_formula("y ~ (1 | g") {
            Err(FormulaError::Syntax { pos, .. }) => assert_eq!(pos, 10),
            other => panic!("{other:?}"),
        }
    }
}
