//! The statistical foundation every other module builds on; each algorithm has one home here:
//!
//! | module | what |
//! |---|---|
//! | [`distributions`] | normal, t, chi-square and F tails and quantiles to R's accuracy (`pnorm`, `qnorm`, `pt`, `qt`, `pchisq`, `pf`), log-gamma, digamma, trigamma |
//! | [`linalg`] | dense Cholesky factorizations (row-major, packed), triangular solves, least squares by QR with one rank rule |
//! | [`numderiv`] | Richardson-extrapolated Jacobian and Hessian (numDeriv) and the central-difference stencil of lme4's convergence check |
//! | [`newton`] | Newton's method with a finite-difference Hessian of an analytic gradient, and that Hessian alone |
//! | [`quantile`] | sample quantiles of R's types 1 and 7, bootstrap percentile limits (`boot.ci`) |
//! | [`rng`] | seeded random substreams: a draw depends only on (seed, tag, index) |
//! | [`lrt`] | the likelihood-ratio test of nested models |
//!
//! Nothing here knows about trials, formulas or files. The benchmarked kernels of the LMM
//! (`lmm::deviance`, `lmm::sparse`: column-major blocked Cholesky through faer, supernodal
//! factorization) stay in `lmm`, where their storage layout is part of the algorithm.
pub mod crossprod;
pub mod distributions;
pub mod linalg;
pub mod lrt;
pub mod newton;
pub mod numderiv;
pub mod quantile;
pub mod rng;
pub mod rubin;
