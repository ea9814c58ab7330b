//! Linear mixed models fitted by profiled REML/ML as lme4 does (Bates, Maechler, Bolker &
//! Walker 2015, J Stat Softw 67(1)), in the blocked layout of MixedModels.jl.
//!
//! * [`model`]: the cross-product blocks of `[Z X y]`, computed once.
//! * [`deviance`]: the blocked Cholesky factor and the profiled criterion per theta.
//! * [`sparse`]: supernodal factorization of the trailing block for crossed designs.
//! * [`classes`]: the first term's downdate by classes of identical levels (dense path).
//! * [`optimize`]: BOBYQA over theta, convergence and singularity checks, [`LmmFit`].
//! * [`inference`]: Wald, Satterthwaite (lmerTest), Kenward-Roger (pbkrtest), F tests, LRT.
//! * [`blups`]: conditional modes and conditional variances (`ranef(condVar = TRUE)`).
//! * [`summary`]: the `herstel fit` JSON layout and lme4-like printed summary.
//!
//! Typical use:
//! ```no_run
//! # use herstel::{frame::Frame, lmm::{fit_formula, LmmOptions, DfMethod}};
//! # fn f(frame: &Frame) -> Result<(), Box<dyn std::error::Error>> {
//! let fit = fit_formula("y ~ arm * wave + (1 | id)", frame, &LmmOptions::default())?;
//! let rows = fit.coef_table(DfMethod::Satterthwaite)?;
//! # Ok(()) }
//! ```
pub mod blups;
pub mod classes;
pub mod deviance;
pub mod inference;
pub mod model;
pub mod optimize;
pub mod sparse;
pub mod summary;
pub mod vcov_gradient;

use thiserror::Error;

pub use inference::{ContrastRow, DfMethod, DfSpec, FTest};
pub use optimize::{fit_at_theta, fit_formula, fit_model_frame, LmmFit, LmmOptions};

/// Errors from fitting or testing a mixed model.
#[derive(Debug, Error)]
pub enum LmmError {
    #[error(transparent)]
    Formula(#[from] crate::formula::FormulaError),
    #[error("the model has no random-effects terms")]
    NoRandomTerms,
    #[error("model too large: {what}")]
    TooLarge { what: String },
    #[error("optimizer failed: {0}")]
    Optimizer(String),
    #[error(
        "the deviance is not finite at the starting value; check for constant or collinear columns"
    )]
    BadStart,
    #[error(
        "contrast matrix has {got} columns but the model has {expected} fixed effects ({names})"
    )]
    ContrastDim {
        got: usize,
        expected: usize,
        names: String,
    },
    #[error("start_theta has {got} values but the model has {expected} theta parameters")]
    StartDim { got: usize, expected: usize },
    #[error("{0}")]
    Numerical(String),
    /// Denominator df (Satterthwaite, Kenward-Roger) cannot be computed.
    #[error("{0}")]
    Df(#[from] inference::DfError),
    #[error("models are not nested or not comparable: {0}")]
    NotNested(#[from] crate::stats::lrt::LrtError),
}
