//! Conditional distributions and links of a GLMM (R's `binomial(link)`, `poisson()`), with
//! the log-density including every constant (`log choose(n, y)`, `-log y!`), as the
//! log-likelihoods of `lme4::glmer` and glmmTMB are reported. Separate from
//! [`crate::glm::Family`], which reproduces `glm.fit`'s logit thresholds exactly (its numbers
//! are checked against R's `glm` and `MASS::glm.nb`) and has no probit or cloglog link; here the
//! mean is kept in `(eps, 1 - eps)` as `binomial()$linkinv` does.
use crate::stats::distributions::{ln_gamma, pnorm};

/// Link function `eta = g(mu)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    Logit,
    Probit,
    Cloglog,
    Log,
}

/// The conditional distribution of a response given the random effects.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Successes out of `n` trials (0/1 data: `n = 1`).
    Binomial(Link),
    /// Counts, log link.
    Poisson,
    /// Counts, log link, variance `mu + mu^2 / theta` (NB2: glmmTMB's `nbinom2` with
    /// `sigma = theta`, MASS's and glmer.nb's `theta`).
    NegativeBinomial { theta: f64 },
}

/// Smallest and largest mean of a binomial proportion (R's `binomial()$linkinv` keeps it in
/// `(eps, 1 - eps)`).
const EPS: f64 = f64::EPSILON;

/// A row's log-density kernel, score, Fisher weight and Laplace curvature weight at one
/// linear predictor ([`Family::eval`]).
#[derive(Debug, Clone, Copy)]
pub struct RowEval {
    pub kernel: f64,
    pub score: f64,
    pub weight: f64,
    pub curvature: f64,
}

impl Link {
    /// `mu = g^-1(eta)`.
    pub fn inverse(self, eta: f64) -> f64 {
        match self {
            Link::Logit => (1.0 / (1.0 + (-eta).exp())).clamp(EPS, 1.0 - EPS),
            Link::Probit => pnorm(eta).clamp(EPS, 1.0 - EPS),
            Link::Cloglog => (-(-eta.exp()).exp_m1()).clamp(EPS, 1.0 - EPS),
            Link::Log => eta.exp().max(EPS),
        }
    }

    /// `d mu / d eta`.
    pub fn mu_eta(self, eta: f64) -> f64 {
        match self {
            Link::Logit => {
                let e = (-eta.abs()).exp();
                (e / ((1.0 + e) * (1.0 + e))).max(EPS)
            }
            Link::Probit => {
                ((-0.5 * eta * eta).exp() / (2.0 * std::f64::consts::PI).sqrt()).max(EPS)
            }
            Link::Cloglog => {
                let e = eta.min(700.0).exp();
                (e * (-e).exp()).max(EPS)
            }
            Link::Log => eta.exp().max(EPS),
        }
    }

    /// The name R prints.
    pub fn name(self) -> &'static str {
        match self {
            Link::Logit => "logit",
            Link::Probit => "probit",
            Link::Cloglog => "cloglog",
            Link::Log => "log",
        }
    }
}

impl Family {
    pub fn link(self) -> Link {
        match self {
            Family::Binomial(l) => l,
            Family::Poisson | Family::NegativeBinomial { .. } => Link::Log,
        }
    }

    /// The name R prints.
    pub fn name(self) -> &'static str {
        match self {
            Family::Binomial(_) => "binomial",
            Family::Poisson => "poisson",
            Family::NegativeBinomial { .. } => "negative binomial (nbinom2)",
        }
    }

    /// Variance function of one trial's mean (`mu (1 - mu)`, `mu`).
    pub fn variance(self, mu: f64) -> f64 {
        match self {
            Family::Binomial(_) => mu * (1.0 - mu),
            Family::Poisson => mu,
            Family::NegativeBinomial { theta } => mu + mu * mu / theta,
        }
    }

    /// `log f(y | mu)` with its constants; `n` is the number of trials (binomial; `y` is the
    /// number of successes) and ignored for the counts:
    /// [`Family::constant`] + [`Family::kernel`].
    pub fn log_density(self, y: f64, n: f64, mu: f64) -> f64 {
        self.kernel_mu(y, n, mu) + self.constant(y, n)
    }

    /// The part of `log f` free of `mu`: `log choose(n, y)`, `-log y!`, and for the negative
    /// binomial `lgamma(y + theta) - lgamma(theta) - y log theta - log y!` (see
    /// [`nb_log_rising`]; the kernel then holds `-(theta + y) log(1 + mu / theta)`).
    pub fn constant(self, y: f64, n: f64) -> f64 {
        match self {
            Family::Binomial(_) => ln_gamma(n + 1.0) - ln_gamma(y + 1.0) - ln_gamma(n - y + 1.0),
            Family::Poisson => -ln_gamma(y + 1.0),
            Family::NegativeBinomial { theta } => nb_log_rising(y, theta) - ln_gamma(y + 1.0),
        }
    }

    /// `log f - constant` at the linear predictor `eta` (the part the conditional modes and
    /// the quadrature need); for the log link `y log mu = y eta` (no logarithm per row).
    pub fn kernel(self, y: f64, n: f64, eta: f64) -> f64 {
        match self {
            Family::Poisson => {
                let mu = eta.exp();
                if mu > EPS {
                    return y * eta - mu;
                }
            }
            Family::NegativeBinomial { theta } => {
                let mu = eta.exp();
                if mu > EPS {
                    return y * eta - (theta + y) * (mu / theta).ln_1p();
                }
            }
            Family::Binomial(_) => {}
        }
        self.kernel_mu(y, n, self.link().inverse(eta))
    }

    /// [`Family::kernel`], [`Family::score`], [`Family::weight`] and [`Family::curvature`]
    /// of one row at `eta` in one pass (one exponential for the log link): the inner loop of
    /// the conditional modes.
    pub fn eval(self, y: f64, n: f64, eta: f64) -> RowEval {
        if let Family::Poisson | Family::NegativeBinomial { .. } = self {
            let mu = eta.exp();
            if mu > EPS {
                let (kernel, v, curvature) = match self {
                    Family::NegativeBinomial { theta } => (
                        y * eta - (theta + y) * (mu / theta).ln_1p(),
                        mu + mu * mu / theta,
                        (y + theta) * theta * mu / ((theta + mu) * (theta + mu)),
                    ),
                    _ => (y * eta - mu, mu, f64::NAN),
                };
                let v = v.max(1e-300);
                let weight = mu * mu / v;
                return RowEval {
                    kernel,
                    score: (y - mu) * mu / v,
                    weight,
                    curvature: if curvature.is_nan() {
                        weight
                    } else {
                        curvature
                    },
                };
            }
        }
        let (score, weight) = self.score_weight(y, n, eta);
        RowEval {
            kernel: self.kernel(y, n, eta),
            score,
            weight,
            curvature: self.curvature(y, n, eta),
        }
    }

    /// [`Family::score`] and [`Family::weight`] together (one evaluation of the inverse
    /// link).
    pub fn score_weight(self, y: f64, n: f64, eta: f64) -> (f64, f64) {
        let l = self.link();
        let mu = l.inverse(eta);
        let d = if l == Link::Log { mu } else { l.mu_eta(eta) };
        let v = self.variance(mu).max(1e-300);
        match self {
            Family::Binomial(_) => ((y - n * mu) * d / v, n * d * d / v),
            Family::Poisson | Family::NegativeBinomial { .. } => ((y - mu) * d / v, d * d / v),
        }
    }

    fn kernel_mu(self, y: f64, n: f64, mu: f64) -> f64 {
        match self {
            Family::Binomial(_) => {
                let a = if y > 0.0 { y * mu.ln() } else { 0.0 };
                let b = if n - y > 0.0 {
                    (n - y) * (1.0 - mu).ln()
                } else {
                    0.0
                };
                a + b
            }
            Family::Poisson => {
                let a = if y > 0.0 { y * mu.ln() } else { 0.0 };
                a - mu
            }
            Family::NegativeBinomial { theta } => {
                let a = if y > 0.0 { y * mu.ln() } else { 0.0 };
                a - (theta + y) * (mu / theta).ln_1p()
            }
        }
    }

    /// The weight of a row in the curvature of the Laplace approximation at `eta`: the
    /// Fisher weight ([`Family::weight`]) as lme4's penalized IRLS uses it (binomial,
    /// Poisson; for their canonical links it is the observed information), and the observed
    /// information `(y + theta) theta mu / (theta + mu)^2` for the negative binomial, as
    /// glmmTMB's Laplace approximation (the two differ for a non-canonical link).
    pub fn curvature(self, y: f64, n: f64, eta: f64) -> f64 {
        match self {
            Family::NegativeBinomial { theta } => {
                let mu = Link::Log.inverse(eta);
                (y + theta) * theta * mu / ((theta + mu) * (theta + mu))
            }
            _ => self.weight(eta, n),
        }
    }

    /// The Fisher (working) weight of a row with linear predictor `eta`:
    /// `n (d mu / d eta)^2 / V(mu)`, the weight of lme4's penalized IRLS.
    pub fn weight(self, eta: f64, n: f64) -> f64 {
        let l = self.link();
        let mu = l.inverse(eta);
        let d = l.mu_eta(eta);
        let v = self.variance(mu).max(1e-300);
        match self {
            Family::Binomial(_) => n * d * d / v,
            Family::Poisson | Family::NegativeBinomial { .. } => d * d / v,
        }
    }

    /// The score `d log f / d eta` of a row: `(y - n mu) (d mu / d eta) / V(mu)`.
    pub fn score(self, y: f64, n: f64, eta: f64) -> f64 {
        let l = self.link();
        let mu = l.inverse(eta);
        let d = l.mu_eta(eta);
        let v = self.variance(mu).max(1e-300);
        match self {
            Family::Binomial(_) => (y - n * mu) * d / v,
            Family::Poisson | Family::NegativeBinomial { .. } => (y - mu) * d / v,
        }
    }
}

/// `lgamma(y + theta) - lgamma(theta) - y log theta = sum_{j < y} log(1 + j / theta)` for a
/// count `y`: the negative binomial's theta-dependent constant with `theta log theta` moved
/// into the kernel as `-(theta + y) log(1 + mu / theta)`. Both stay of the size of the data as
/// theta grows (the textbook split `... + theta log theta` and `-(theta + y) log(theta + mu)`
/// cancels terms of size `theta log theta`: at theta = 5e4 the deviance lost six digits and
/// its numerical Hessian, so the standard errors, was wrong by a factor of two or more).
pub fn nb_log_rising(y: f64, theta: f64) -> f64 {
    if y.fract() == 0.0 && (0.0..=1e5).contains(&y) {
        (0..y as u64).map(|j| (j as f64 / theta).ln_1p()).sum()
    } else {
        ln_gamma(y + theta) - ln_gamma(theta) - y * theta.ln()
    }
}
